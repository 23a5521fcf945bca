# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# scripts/arm64-lib.sh - Debian arm64 packages on this x86-64 host, through
# private apt lists under $VIOMMU_CACHE/arm64/apt-<suite>-<arch> (nothing is
# installed on the host). Source it after common.sh, then:
#
#   arm64_setup SUITE       bookworm | bookworm-6.1 | sid: sets $suite,
#                           $suites (the apt suites), $top
#                           ($VIOMMU_CACHE/arm64/<suite>) and $kseries
#                           (bookworm-6.1: Debian 12's own 6.1 kernel,
#                           from the same apt lists as bookworm)
#   apt_opts ARCH           apt-get/apt-cache options for those lists
#   apt_update ARCH         refresh the lists (at most once an hour)
#   fetch ARCH PACKAGE      the .deb's path, downloaded once into $top/debs
#   arm64_kver              the newest arm64 kernel ABI of the suite,
#                           e.g. 6.12.118+deb12-arm64 (bookworm-6.1:
#                           6.1.0-57-arm64)

arm64_setup() {
	suite=$1
	kseries=""
	case $suite in
	bookworm) suites="bookworm bookworm-updates" ;;
	bookworm-6.1) suites="bookworm bookworm-updates" kseries=6.1 ;;
	sid) suites="sid" ;;
	*) die "unknown suite '$suite' (bookworm, bookworm-6.1 or sid)" ;;
	esac
	top=$VIOMMU_CACHE/arm64/$suite
	mkdir -p "$top"
}

# The apt lists of a suite (bookworm-6.1 shares bookworm's).
apt_dir() { echo "$VIOMMU_CACHE/arm64/apt-${suite%-6.1}-$1"; }

apt_opts() {
	echo "-o APT::Architecture=$1 -o APT::Architectures::=$1" \
		"$(private_apt_opts "$(apt_dir "$1")")" \
		"-o APT::Sandbox::User=root"
}

apt_update() { # ARCH
	local d s mirror
	d=$(apt_dir "$1")
	mkdir -p "$d/lists/partial" "$d/cache" "$d/archives/partial"
	mirror=$(debian_mirror)
	: >"$d/sources.list.new"
	for s in $suites; do
		echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $s main" \
			>>"$d/sources.list.new"
	done
	if [ "${suite%-6.1}" = bookworm ]; then
		echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/debian}/debian-security bookworm-security main" \
			>>"$d/sources.list.new"
	fi
	mv "$d/sources.list.new" "$d/sources.list"
	if [ -z "$(find "$d/lists" -maxdepth 1 -name '*Packages*' -mmin -60 2>/dev/null)" ]; then
		# shellcheck disable=SC2046 # options are words
		apt-get $(apt_opts "$1") update -qq >&2
	fi
}

fetch() { # ARCH PACKAGE
	local f
	mkdir -p "$top/debs"
	f=$(find "$top/debs" -maxdepth 1 -name "${2}_*_$1.deb" -o -maxdepth 1 -name "${2}_*_all.deb" | head -n1)
	if [ -z "$f" ]; then
		# shellcheck disable=SC2046 # options are words
		(cd "$top/debs" && apt-get $(apt_opts "$1") download -qq "$2" >&2) ||
			die "cannot download $2 ($1, $suite)"
		f=$(find "$top/debs" -maxdepth 1 -name "${2}_*.deb" | head -n1)
	fi
	echo "$f"
}

arm64_kver() {
	local k re='^linux-headers-[0-9][0-9.]*\+deb[0-9]+-arm64$'
	# Debian 12's own kernel is named by its ABI: 6.1.0-<abi>-arm64.
	[ "$kseries" = 6.1 ] && re='^linux-headers-6\.1\.0-[0-9]+-arm64$'
	# shellcheck disable=SC2046 # options are words
	k=$(apt-cache $(apt_opts arm64) search --names-only "$re" |
		awk '{print $1}' | sed 's/^linux-headers-//' | sort -V | tail -n1)
	[ -n "$k" ] || die "no arm64 kernel headers in $suite"
	echo "$k"
}
