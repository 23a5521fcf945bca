#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build the module for one kernel, outside the clone:
#   scripts/build-module.sh <kver> [make args, e.g. W=1 C=1]
# The sources (Makefile, VERSION, src/) are copied (rsync by content: a file
# that differs is written anew and so is newer than its object, a file that
# does not is left alone, so rebuilds are incremental even when the cache was
# last built from another clone) to $VIOMMU_CACHE/build/<kver>/tree and built
# there; the result is $VIOMMU_CACHE/build/<kver>/virtio-iommu.ko, whose path
# is printed on stdout. With extra make arguments the build is a full one in
# a separate clean tree ($VIOMMU_CACHE/build/<kver>/args/), so that W=1 and
# C=1 see every file. The full compiler output is in
# $VIOMMU_CACHE/build/<kver>/build.log and is also shown on stderr.
#
# Where it builds:
#  - a kernel whose headers the host has or can install from its own archive
#    (Debian 12's 6.12): on the host, KDIR=/usr/src/linux-headers-<kver>;
#  - otherwise sid's kernel: inside the sid chroot (scripts/sid-chroot.sh),
#    with sid's own gcc and headers; the tree is copied into the chroot.
# C=1/C=2 in a chroot build installs sparse inside the chroot first.
set -euo pipefail
. "$(dirname "$0")/common.sh"

[ $# -ge 1 ] || die "usage: $0 <kver> [make args...]"
kver=$1
shift
case $kver in
*/* | "" | .*) die "bad kernel version '$kver'" ;;
esac
for a in "$@"; do
	case $a in
	*=*) ;;
	*) die "make argument '$a' is not VAR=value" ;;
	esac
done

out=$VIOMMU_CACHE/build/$kver
mkdir -p "$out"
# One build per kernel at a time (suites may build concurrently).
exec 8>"$out/.lock"
flock 8
# A build with extra make arguments (W=1, C=1, ...) starts from a clean copy
# of its own, so that every file is compiled (and checked) again, and leaves
# the plain build alone: $VIOMMU_CACHE/build/<kver>/args/virtio-iommu.ko.
cdir=$kver
if [ $# -gt 0 ]; then
	out=$out/args
	cdir=$kver-args
	rm -rf "$out/tree" "${SID_CHROOT:?}/build/$cdir"
	mkdir -p "$out"
fi
rm -f "$out/virtio-iommu.ko"

sync_tree() { # DEST
	mkdir -p "$1"
	rsync -rl --checksum "$VIOMMU_TOP/Makefile" "$VIOMMU_TOP/VERSION" "$1/"
	rsync -rl --checksum --delete --filter='P *.o' --filter='P *.ko' --filter='P *.mod*' \
		--filter='P .*.cmd' --filter='P Module.symvers' --filter='P modules.order' \
		--filter='P .tmp*' --filter='P *.a' \
		"$VIOMMU_TOP/src/" "$1/src/"
}

wants_sparse() {
	local a
	for a in "$@"; do
		case $a in C=1 | C=2) return 0 ;; esac
	done
	return 1
}

status=0
if [ ! -d "/usr/src/linux-headers-$kver" ] &&
	apt-cache show "linux-headers-$kver" >/dev/null 2>&1; then
	log "installing linux-headers-$kver on the host"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"linux-headers-$kver" >&2
fi
if [ -d "/usr/src/linux-headers-$kver" ]; then
	sync_tree "$out/tree"
	log "building for $kver on the host $*"
	if ! make -C "$out/tree" KDIR="/usr/src/linux-headers-$kver" "$@" 2>&1 |
		tee "$out/build.log" >&2; then
		status=1
	fi
	ko=$out/tree/src/virtio-iommu.ko
else
	sidkver=$("$VIOMMU_TOP/scripts/sid-chroot.sh")
	[ "$sidkver" = "$kver" ] ||
		die "no headers for $kver: not in the host's archive, and sid's newest is $sidkver"
	if wants_sparse "$@"; then
		"$VIOMMU_TOP/scripts/sid-chroot.sh" run sh -c \
			'command -v sparse >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends sparse; }' >&2
	fi
	sync_tree "$SID_CHROOT/build/$cdir"
	log "building for $kver in the sid chroot $*"
	if ! "$VIOMMU_TOP/scripts/sid-chroot.sh" run make -C "/build/$cdir" \
		KDIR="/usr/src/linux-headers-$kver" "$@" 2>&1 |
		tee "$out/build.log" >&2; then
		status=1
	fi
	ko=$SID_CHROOT/build/$cdir/src/virtio-iommu.ko
fi
if [ "$status" -ne 0 ] || [ ! -f "$ko" ]; then
	die "build for $kver failed (log: $out/build.log)"
fi
cp "$ko" "$out/virtio-iommu.ko"
echo "$out/virtio-iommu.ko"
