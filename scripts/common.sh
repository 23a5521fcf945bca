# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# Shared helpers for the project's scripts: cache locations, the sid apt
# configuration, and "newest available version" lookups. Source this file.

# These are read by the scripts that source this file.
# shellcheck disable=SC2034
VIOMMU_CACHE=${VIOMMU_CACHE:-/var/cache/virtio-iommu-fq}
# shellcheck disable=SC2034
VIOMMU_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SID_APT=$VIOMMU_CACHE/sid-apt
# shellcheck disable=SC2034
SID_CHROOT=$VIOMMU_CACHE/sid-chroot

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The archive URI the host's own apt sources use (deb822 or one-line format).
debian_mirror() {
	local uri
	uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '{print $2}' | grep -v security | head -n1)
	[ -n "$uri" ] || uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null |
		awk '{print $2}' | grep -v security | head -n1)
	echo "${uri:-http://deb.debian.org/debian}"
}

# apt options that point apt-get/apt-cache at the package lists, cache and
# sources.list kept under DIR instead of the host's.
private_apt_opts() { # DIR
	echo "-o Dir::Etc::sourcelist=$1/sources.list" \
	     "-o Dir::Etc::sourceparts=-" \
	     "-o Dir::State::Lists=$1/lists" \
	     "-o Dir::Cache=$1/cache" \
	     "-o Dir::Cache::archives=$1/archives" \
	     "-o APT::Get::List-Cleanup=0"
}

# apt options that point apt-get/apt-cache at a private sid package list.
sid_apt_opts() { private_apt_opts "$SID_APT"; }

sid_apt_update() {
	mkdir -p "$SID_APT/lists/partial" "$SID_APT/cache" "$SID_APT/archives/partial"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) sid main" \
		>"$SID_APT/sources.list"
	# Refresh at most once an hour.
	if [ -z "$(find "$SID_APT/lists" -maxdepth 1 -name '*Packages*' -mmin -60 2>/dev/null)" ]; then
		# shellcheck disable=SC2046
		apt-get $(sid_apt_opts) update -qq >&2
	fi
}

# Newest Debian 12 6.12 kernel ABI on the host's archive, e.g. 6.12.117+deb12-amd64.
newest_bookworm_kver() {
	apt-cache search --names-only '^linux-headers-6\.12\.[0-9]+\+deb12-amd64$' |
		awk '{print $1}' | sed 's/^linux-headers-//' | sort -V | tail -n1
}

# Newest sid kernel ABI, e.g. 7.2.13+deb14-amd64.
newest_sid_kver() {
	sid_apt_update
	# shellcheck disable=SC2046
	apt-cache $(sid_apt_opts) search --names-only '^linux-headers-[0-9][0-9.]*\+deb[0-9]+-amd64$' |
		awk '{print $1}' | sed 's/^linux-headers-//' | sort -V | tail -n1
}

# Path of an extracted Debian linux-source-6.12 tree (checkpatch.pl, KUnit),
# extracted once into the cache from the host's linux-source-6.12 package.
linux_source_tree() {
	local tarball dir
	tarball=$(find /usr/src -maxdepth 1 -name 'linux-source-6.12.tar.*' | sort | head -n1)
	[ -n "$tarball" ] || die "linux-source-6.12 is not installed (scripts/host-deps.sh)"
	dir=$VIOMMU_CACHE/src/linux-source-6.12
	if [ ! -f "$dir/.extracted" ] || [ "$tarball" -nt "$dir/.extracted" ]; then
		log "extracting $tarball"
		rm -rf "$dir"
		mkdir -p "$VIOMMU_CACHE/src"
		tar -C "$VIOMMU_CACHE/src" -xf "$tarball"
		touch "$dir/.extracted"
	fi
	echo "$dir"
}
