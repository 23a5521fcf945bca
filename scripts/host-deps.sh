#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Install everything the project's scripts need on a fresh Debian 12 host:
# build tools, the newest Debian 12 6.12 kernel headers and sources, QEMU,
# fio, busybox, packaging tools, qemu-user for the arm64 install chroot
# (tests/install/run.sh --arch arm64). Idempotent; cheap when all is present.
set -euo pipefail
. "$(dirname "$0")/common.sh"

PKGS=(
	build-essential bc bison flex libelf-dev libssl-dev dwarves rsync
	gcc-aarch64-linux-gnu
	kmod cpio zstd xz-utils sparse python3 git python3-matplotlib
	qemu-system-x86 qemu-system-arm qemu-utils gdb fio busybox-static
	debootstrap acpica-tools shellcheck qemu-user-static binfmt-support
	debhelper dh-dkms dkms fakeroot lintian rpm rpmlint openssl
	linux-source-6.12
)

stamp=$VIOMMU_CACHE/host-deps.stamp
mkdir -p "$VIOMMU_CACHE"
kver=""
if [ ! -f "$stamp" ] || [ "$(find "$stamp" -mmin +720)" ]; then
	log "apt-get update"
	apt-get update -qq
fi
kver=$(newest_bookworm_kver)
[ -n "$kver" ] || die "no linux-headers-6.12.*+deb12-amd64 in the archive"
missing=()
for p in "${PKGS[@]}" "linux-headers-$kver"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing: ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >&2
fi
touch "$stamp"
echo "$kver"
