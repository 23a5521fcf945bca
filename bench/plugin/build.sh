#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build the instruction-counting TCG plugin (insn-count.c) against the
# qemu-plugin.h of the QEMU the host runs, and the guest's marker program
# (mark.c) for the guest's architecture. The header comes from Debian's
# source package of exactly the installed qemu-system-x86 version (a pinned
# input, downloaded once into the cache; qemu-system-arm is built from the
# same source package). Prints two lines: the plugin's path, the marker's
# path.
#
#   bench/plugin/build.sh [x86_64|arm64]
set -euo pipefail
arch=${1:-x86_64}
case $arch in
x86_64) cc=gcc ;;
arm64) cc=aarch64-linux-gnu-gcc ;;
*) echo "usage: $0 [x86_64|arm64]" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/common.sh
. "$here/../../scripts/common.sh"

ver=$(dpkg-query -W -f='${source:Version}' qemu-system-x86 2>/dev/null) ||
	die "qemu-system-x86 is not installed (scripts/host-deps.sh)"
[ -n "$ver" ] || die "no version for qemu-system-x86"
out=$VIOMMU_CACHE/plugin/${ver//[:~]/_}
hdr=$out/include/qemu-plugin.h
mkdir -p "$out"
exec 8>"$out/.lock"
flock 8

if [ ! -s "$hdr" ]; then
	src=$out/src
	rm -rf "$src"
	mkdir -p "$src/lists/partial"
	echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) bookworm main" \
		>"$src/sources.list"
	opts=(-o "Dir::Etc::sourcelist=$src/sources.list" -o Dir::Etc::sourceparts=-
		-o "Dir::State::Lists=$src/lists")
	log "downloading the qemu $ver source package for qemu-plugin.h"
	apt-get "${opts[@]}" update -qq >&2
	(cd "$src" && apt-get "${opts[@]}" source --download-only "qemu=$ver" >&2 2>"$src/apt.err") ||
		die "apt-get source qemu=$ver failed: $(tail -n2 "$src/apt.err")"
	orig=$(find "$src" -maxdepth 1 -name 'qemu_*.orig.tar.*' | head -n1)
	[ -n "$orig" ] || die "no qemu orig tarball in $src"
	member=$(tar -tf "$orig" | awk '/\/include\/qemu\/qemu-plugin\.h$/ && !n++')
	[ -n "$member" ] || die "no qemu-plugin.h in $orig"
	mkdir -p "$out/include"
	tar -xOf "$orig" "$member" >"$hdr.tmp"
	mv "$hdr.tmp" "$hdr"
	rm -rf "$src"
fi

so=$out/insn-count.so
mark=$out/viommu-mark-$arch
if [ ! -s "$so" ] || [ "$here/insn-count.c" -nt "$so" ]; then
	gcc -O2 -shared -fPIC -Wall -Wextra -Wno-unused-parameter -I"$out/include" \
		-o "$so" "$here/insn-count.c"
fi
if [ ! -s "$mark" ] || [ "$here/mark.c" -nt "$mark" ]; then
	"$cc" -O2 -static -nostdlib -fno-stack-protector -fno-pie -no-pie -Wall \
		-o "$mark" "$here/mark.c"
fi
echo "$so"
echo "$mark"
