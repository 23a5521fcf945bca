#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Create (once) a debootstrapped Debian sid chroot holding the newest sid
# kernel headers and sid's own compiler, so the module is built for that
# kernel with the toolchain it was built with. Prints the kernel version.
#
#   scripts/sid-chroot.sh            create/update, print kver
#   scripts/sid-chroot.sh run CMD..  run CMD inside (with /proc mounted
#                                    while it runs)
set -euo pipefail
. "$(dirname "$0")/common.sh"

ensure_chroot() {
	local kver
	kver=$(newest_sid_kver)
	[ -n "$kver" ] || die "no sid linux-headers package found"
	if [ ! -d "$SID_CHROOT/usr/src/linux-headers-$kver" ]; then
		if [ ! -x "$SID_CHROOT/usr/bin/gcc" ]; then
			log "debootstrap sid (headers $kver) into $SID_CHROOT"
			rm -rf "$SID_CHROOT"
			debootstrap --variant=minbase \
				--include=make,gcc,libc6-dev,linux-headers-"$kver" \
				sid "$SID_CHROOT" "$(debian_mirror)" >"$VIOMMU_CACHE/debootstrap-sid.log" 2>&1 ||
				{ tail -n 20 "$VIOMMU_CACHE/debootstrap-sid.log" >&2; die "debootstrap failed"; }
		else
			log "installing linux-headers-$kver into the sid chroot"
			chroot "$SID_CHROOT" apt-get update -qq
			chroot "$SID_CHROOT" env DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq --no-install-recommends "linux-headers-$kver" >&2
		fi
	fi
	echo "$kver"
}

# run_in_chroot CMD...: CMD inside, with /proc mounted for as long as it
# runs (the lock below serialises the users of the chroot).
run_in_chroot() {
	local rc=0
	mountpoint -q "$SID_CHROOT/proc" || mount -t proc proc "$SID_CHROOT/proc"
	trap 'umount "$SID_CHROOT/proc" 2>/dev/null || true' EXIT
	chroot "$SID_CHROOT" "$@" || rc=$?
	umount "$SID_CHROOT/proc"
	trap - EXIT
	return "$rc"
}

mkdir -p "$VIOMMU_CACHE"
exec 9>"$VIOMMU_CACHE/sid-chroot.lock"
flock 9
case "${1:-}" in
run) shift; ensure_chroot >/dev/null; run_in_chroot "$@" ;;
*) ensure_chroot ;;
esac
