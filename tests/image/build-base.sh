#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build (or reuse) the pristine Debian 12 base disk image for the install test:
# a raw 4 GiB image holding one ext4 file system (no partition table; the guest
# mounts it as root=/dev/nvme0n1), debootstrapped from the host's mirror, with
# the newest Debian 12 linux-image-6.12.*+deb12-amd64 kernel (chosen at run
# time), its headers, initramfs-tools, dkms, fio and systemd as init.
#
#   tests/image/build-base.sh KVER     prints the path of the base image
#
# The image is cached under $VIOMMU_CACHE/image/ keyed by the kernel version,
# the mirror and this script's contents; a cached image is reused as is.
# Scenarios never write to it: they copy it first (tests/image/run.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/../../scripts/common.sh
. "$here/../../scripts/common.sh"
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

kver=${1:?usage: build-base.sh KVER}
[[ $kver =~ ^6\.12\.[0-9]+\+deb12-amd64$ ]] || die "not a Debian 12 6.12 kernel ABI: $kver"
mirror=$(debian_mirror)
secmirror=$(security_mirror)
PKGS=(
	"linux-image-$kver-unsigned" "linux-headers-$kver"
	initramfs-tools zstd dkms fio kmod udev systemd-sysv e2fsprogs util-linux
)
key=$( { echo "$kver $mirror $secmirror ${PKGS[*]}"; cat "$0"; } | sha256sum | cut -c1-12)
base=$IMG_CACHE/base-$key.img
if [ -f "$base" ] && [ -f "$base.ok" ]; then
	log "base image cached: $base"
	echo "$base"
	exit 0
fi

mkdir -p "$IMG_CACHE/debootstrap-cache" "$IMG_CACHE/apt-archives/partial"
exec 8>"$IMG_CACHE/build-base.lock"
flock 8
tmp=$base.tmp
mnt=$IMG_CACHE/mnt-base.$$
blog=$IMG_CACHE/build-base.log
cleanup() { img_umount_all; rmdir "$mnt" 2>/dev/null || true; }
trap cleanup EXIT
: >"$blog"
t0=$SECONDS

log "building base image $base (kernel $kver, mirror $mirror); log: $blog"
rm -f "$tmp"
truncate -s 4G "$tmp"
mkfs.ext4 -q -F -L viommu-root "$tmp"
mkdir -p "$mnt"
mount -o loop "$tmp" "$mnt"
IMG_MOUNTS+=("$mnt")

log "debootstrap bookworm (minbase)"
debootstrap --variant=minbase --cache-dir="$IMG_CACHE/debootstrap-cache" \
	--include=systemd-sysv,udev,kmod,e2fsprogs,ca-certificates \
	bookworm "$mnt" "$mirror" >>"$blog" 2>&1 ||
	{ tail -n 30 "$blog" >&2; die "debootstrap failed"; }

cat >"$mnt/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $secmirror bookworm-security main
EOF
img_mount_api "$mnt"
mount --bind "$IMG_CACHE/apt-archives" "$mnt/var/cache/apt/archives"
cp /etc/resolv.conf "$mnt/etc/resolv.conf" 2>/dev/null || true

log "apt-get install ${PKGS[*]}"
in_chroot "$mnt" apt-get update -q >>"$blog" 2>&1 ||
	{ tail -n 30 "$blog" >&2; die "apt-get update in the image failed"; }
in_chroot "$mnt" apt-get install -y -q --no-install-recommends --download-only "${PKGS[@]}" >>"$blog" 2>&1 ||
	{ tail -n 30 "$blog" >&2; die "downloading the image's packages failed"; }
# The kernel's postinst generates the initramfs: hold the heavy lock.
in_chroot_heavy "$mnt" apt-get install -y -q --no-install-recommends "${PKGS[@]}" >>"$blog" 2>&1 ||
	{ tail -n 30 "$blog" >&2; die "installing the image's packages failed"; }
[ -f "$mnt/boot/vmlinuz-$kver" ] || die "kernel $kver missing from the image"
[ -f "$mnt/boot/initrd.img-$kver" ] || die "initramfs for $kver missing from the image"
[ -d "$mnt/usr/src/linux-headers-$kver" ] || die "headers for $kver missing from the image"

log "configuring the guest"
echo viommu-guest >"$mnt/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tviommu-guest\n' >"$mnt/etc/hosts"
printf '/dev/nvme0n1\t/\text4\terrors=remount-ro\t0\t1\n' >"$mnt/etc/fstab"
: >"$mnt/etc/resolv.conf"
# No network in the guest, no login needed: keep boot short and the console
# free for the test unit's output.
in_chroot "$mnt" systemctl set-default multi-user.target >>"$blog" 2>&1
in_chroot "$mnt" systemctl mask apt-daily.timer apt-daily-upgrade.timer \
	e2scrub_all.timer e2scrub_reap.service fstrim.timer dpkg-db-backup.timer \
	getty@tty1.service serial-getty@ttyS0.service >>"$blog" 2>&1
umount "$mnt/var/cache/apt/archives"
in_chroot "$mnt" apt-get clean >>"$blog" 2>&1

img_umount "$mnt"
e2fsck -fy "$tmp" >>"$blog" 2>&1 || [ $? -le 1 ] || die "e2fsck of the new base image failed"
mv "$tmp" "$base"
touch "$base.ok"
# Older base images (another kernel or builder version) are dead weight.
find "$IMG_CACHE" -maxdepth 1 -name 'base-*.img*' ! -name "base-$key.img*" -delete
log "base image ready in $((SECONDS - t0))s: $base ($(du -h "$base" | cut -f1) used)"
echo "$base"
