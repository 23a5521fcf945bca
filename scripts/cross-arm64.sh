#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Cross-build the module for a Debian arm64 kernel on this x86-64 host:
#   scripts/cross-arm64.sh bookworm|bookworm-6.1|sid [make args, e.g. W=1 C=1]
# (bookworm: Debian 12's newest arm64 6.12; bookworm-6.1: Debian 12's own
# arm64 6.1 kernel, linux-image-6.1.0-<abi>-arm64, for which the module
# builds src/core61.c; sid: sid's newest)
# Prints the path of the arm64 virtio-iommu.ko on stdout; the compiler
# output is in $VIOMMU_CACHE/arm64/<suite>/build.log and on stderr.
#
# Why this way: Debian's arm64 headers package has arm64 programs in
# scripts/ (fixdep, modpost, ...), which this host cannot run without
# binfmt emulation, and emulating them makes every build slow and depends
# on a host setting. So the kernel side is prepared here, once per kernel
# version, from the kernel's own sources (Debian's linux-source package of
# the same version) with Debian's arm64 configuration and Module.symvers
# (both taken from the arm64 headers package, unpacked, never installed),
# by the cross compiler, out of tree (O=):
#   make ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- olddefconfig modules_prepare
# The module is then built against that directory like any external
# module, and modpost checks its symbols against the real kernel's exports.
# Packages come through private apt lists (scripts/arm64-lib.sh): nothing is
# installed on the host but the cross compiler (scripts/host-deps.sh).
set -euo pipefail
. "$(dirname "$0")/common.sh"
# shellcheck source=scripts/arm64-lib.sh
. "$(dirname "$0")/arm64-lib.sh"

[ $# -ge 1 ] || die "usage: $0 bookworm|bookworm-6.1|sid [make args...]"
suite=$1
shift
for a in "$@"; do
	case $a in
	*=*) ;;
	*) die "make argument '$a' is not VAR=value" ;;
	esac
done
arm64_setup "$suite"
CROSS=aarch64-linux-gnu-
command -v "${CROSS}gcc" >/dev/null || die "${CROSS}gcc missing (scripts/host-deps.sh)"
exec 8>"$top/.lock"
flock 8

apt_update arm64
apt_update amd64
kver=$(arm64_kver)
upstream=${kver%%+*}                 # 6.12.118
if [ "$kseries" = 6.1 ]; then
	# 6.1.0-57-arm64 names the ABI, not the version: ask the package.
	# shellcheck disable=SC2046 # options are words
	upstream=$(apt-cache $(apt_opts arm64) show "linux-headers-$kver" |
		sed -n 's/^Version: \([0-9][0-9.]*\)-.*/\1/p' | sort -V | tail -n1)  # 6.1.192
	[ -n "$upstream" ] || die "no version for linux-headers-$kver"
fi
series=$(echo "$upstream" | cut -d. -f1-2)  # 6.12
log "arm64 kernel $kver (linux-source-$series $upstream, $suite)"

kdir=$top/$kver
if [ ! -f "$kdir/.prepared" ]; then
	rm -rf "$kdir"
	mkdir -p "$kdir/hdr" "$kdir/src-deb" "$kdir/build"
	hdeb=$(fetch arm64 "linux-headers-$kver")
	sdeb=$(fetch amd64 "linux-source-$series")
	log "unpacking $(basename "$hdeb") and $(basename "$sdeb")"
	dpkg-deb -x "$hdeb" "$kdir/hdr"
	dpkg-deb -x "$sdeb" "$kdir/src-deb"
	tarball=$(find "$kdir/src-deb/usr/src" -maxdepth 1 -name "linux-source-$series.tar.*" | head -n1)
	[ -n "$tarball" ] || die "no source tarball in $(basename "$sdeb")"
	tar -C "$kdir" -xf "$tarball"
	rm -rf "$kdir/src-deb"
	src=$kdir/linux-source-$series
	have=$(awk '/^VERSION =/ {v=$3} /^PATCHLEVEL =/ {p=$3} /^SUBLEVEL =/ {s=$3}
		END {print v "." p "." s}' "$src/Makefile")
	[ "$have" = "$upstream" ] || die "linux-source-$series is $have, the arm64 headers $upstream"
	cp "$kdir/hdr/usr/src/linux-headers-$kver/.config" "$kdir/build/.config"
	cp "$kdir/hdr/usr/src/linux-headers-$kver/Module.symvers" "$kdir/build/Module.symvers"
	rm -rf "$kdir/hdr"
	log "preparing the arm64 build directory (olddefconfig, modules_prepare)"
	make -C "$src" O="$kdir/build" ARCH=arm64 CROSS_COMPILE=$CROSS \
		KERNELRELEASE="$kver" olddefconfig modules_prepare >"$kdir/prepare.log" 2>&1 ||
		{ tail -n 30 "$kdir/prepare.log" >&2; die "modules_prepare failed"; }
	touch "$kdir/.prepared"
fi
src=$kdir/linux-source-$series

# A clean copy of the module's sources for each build.
mod=$top/module
rm -rf "$mod"
mkdir -p "$mod"
cp -r "$VIOMMU_TOP/src" "$VIOMMU_TOP/VERSION" "$mod/"
status=0
make -C "$src" O="$kdir/build" ARCH=arm64 CROSS_COMPILE=$CROSS KERNELRELEASE="$kver" \
	M="$mod/src" VIOMMU_FQ_VERSION="$(cat "$VIOMMU_TOP/VERSION")" "$@" modules \
	>"$top/build.log" 2>&1 || status=$?
grep -vE '^  [A-Z0-9]+ |^make(\[[0-9]+\])?: (Entering|Leaving)' "$top/build.log" >&2 || true
if [ "$status" -ne 0 ] || [ ! -f "$mod/src/virtio-iommu.ko" ]; then
	die "arm64 build for $kver failed"
fi
echo "$mod/src/virtio-iommu.ko"
