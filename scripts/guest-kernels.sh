#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Fetch and unpack the guest kernels the end-to-end tests and the benchmark
# boot: Debian 12's newest 6.12 (linux-image-<kver>-unsigned, from the host's
# archive) and sid's newest (linux-binary-<kver> + linux-modules-<kver>, plus
# the small linux-base-<kver> they depend on, which holds the config and
# modules.builtin).
# Each lands in $VIOMMU_CACHE/kernels/<kver>/ as an unpacked tree
# (boot/vmlinuz-<kver>, lib/modules/<kver>/ with modules.dep from depmod -b).
# Prints the kernel versions, one per line (6.12 first). Idempotent: a tree
# whose .complete stamp lists the same packages is not fetched again.
#
#   scripts/guest-kernels.sh            both kernels
#   scripts/guest-kernels.sh bookworm   only the 6.12 kernel
#   scripts/guest-kernels.sh sid        only sid's newest
#   scripts/guest-kernels.sh bookworm-arm64 | sid-arm64
#                                       the same kernels built for arm64
#                                       (private apt lists, arm64-lib.sh)
#   scripts/guest-kernels.sh bookworm61-arm64
#                                       Debian 12's own arm64 6.1 kernel
#                                       (linux-image-6.1.0-<abi>-arm64-unsigned)
set -euo pipefail
. "$(dirname "$0")/common.sh"
# shellcheck source=scripts/arm64-lib.sh
. "$(dirname "$0")/arm64-lib.sh"

KDIR_BASE=$VIOMMU_CACHE/kernels
DEB_CACHE=$VIOMMU_CACHE/debs

# unpack <kver> <deb>...: dpkg -x every package into a fresh tree, depmod it.
unpack() {
	local kver=$1 dest=$KDIR_BASE/$1 tmp deb
	shift
	tmp=$dest.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp"
	for deb in "$@"; do
		dpkg -x "$deb" "$tmp"
	done
	# Packages may put files under usr/lib/modules (usr-merged) or
	# lib/modules; merge them into one lib/modules/<kver>.
	if [ -d "$tmp/usr/lib/modules/$kver" ]; then
		mkdir -p "$tmp/lib/modules/$kver"
		cp -a "$tmp/usr/lib/modules/$kver/." "$tmp/lib/modules/$kver/"
		rm -rf "$tmp/usr/lib/modules/$kver"
	fi
	# sid's linux-binary ships the image as lib/modules/<kver>/vmlinuz.
	if [ ! -f "$tmp/boot/vmlinuz-$kver" ] && [ -f "$tmp/lib/modules/$kver/vmlinuz" ]; then
		mkdir -p "$tmp/boot"
		cp "$tmp/lib/modules/$kver/vmlinuz" "$tmp/boot/vmlinuz-$kver"
	fi
	if [ ! -f "$tmp/boot/config-$kver" ] && [ -f "$tmp/lib/modules/$kver/config" ]; then
		cp "$tmp/lib/modules/$kver/config" "$tmp/boot/config-$kver"
	fi
	[ -f "$tmp/boot/vmlinuz-$kver" ] || die "no boot/vmlinuz-$kver in $*"
	[ -d "$tmp/lib/modules/$kver/kernel" ] || die "no lib/modules/$kver/kernel in $*"
	depmod -b "$tmp" "$kver"
	[ -s "$tmp/lib/modules/$kver/modules.dep" ] || die "depmod produced no modules.dep for $kver"
	rm -rf "$dest"
	mv "$tmp" "$dest"
	printf '%s\n' "${@##*/}" >"$dest/.complete"
}

# fetch <apt opts...> -- <package>...: apt-get download into $DEB_CACHE,
# printing the .deb paths.
fetch() {
	local opts=() pkg f
	while [ "$1" != "--" ]; do opts+=("$1"); shift; done
	shift
	mkdir -p "$DEB_CACHE"
	for pkg in "$@"; do
		f=$(find "$DEB_CACHE" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n1)
		if [ -z "$f" ]; then
			log "downloading $pkg"
			(cd "$DEB_CACHE" && apt-get "${opts[@]}" download -qq "$pkg" >&2) ||
				die "apt-get download $pkg failed"
			f=$(find "$DEB_CACHE" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n1)
		fi
		[ -n "$f" ] || die "no .deb for $pkg"
		echo "$f"
	done
}

# is_complete <kver> <package>...: the tree exists and was unpacked from
# exactly these packages.
is_complete() {
	local kver=$1 stamp=$KDIR_BASE/$1/.complete
	shift
	[ -f "$stamp" ] || return 1
	[ "$(sed 's/_.*//' "$stamp")" = "$(printf '%s\n' "$@")" ]
}

bookworm() {
	local kver debs
	kver=$(newest_bookworm_kver)
	[ -n "$kver" ] || die "no 6.12 kernel found in the host's archive (apt-get update?)"
	if ! is_complete "$kver" "linux-image-$kver-unsigned"; then
		mapfile -t debs < <(fetch -- "linux-image-$kver-unsigned")
		log "unpacking $kver"
		unpack "$kver" "${debs[@]}"
	fi
	echo "$kver"
}

sid() {
	local kver debs opts
	kver=$(newest_sid_kver)
	[ -n "$kver" ] || die "no sid kernel found"
	if ! is_complete "$kver" "linux-binary-$kver" "linux-modules-$kver" "linux-base-$kver"; then
		read -r -a opts <<<"$(sid_apt_opts)"
		mapfile -t debs < <(fetch "${opts[@]}" -- "linux-binary-$kver" "linux-modules-$kver" \
			"linux-base-$kver")
		log "unpacking $kver"
		unpack "$kver" "${debs[@]}"
	fi
	echo "$kver"
}

# arm64 SUITE: the newest Debian arm64 kernel of SUITE (bookworm: 6.12,
# bookworm-6.1: 6.1, sid), through the private arm64 apt lists of
# scripts/arm64-lib.sh.
arm64() {
	local kver debs opts pkgs
	arm64_setup "$1"
	apt_update arm64
	kver=$(arm64_kver)
	if [ "$1" = bookworm ] || [ "$1" = bookworm-6.1 ]; then
		pkgs=("linux-image-$kver-unsigned")
	else
		pkgs=("linux-binary-$kver" "linux-modules-$kver" "linux-base-$kver")
	fi
	if ! is_complete "$kver" "${pkgs[@]}"; then
		read -r -a opts <<<"$(apt_opts arm64)"
		mapfile -t debs < <(fetch "${opts[@]}" -- "${pkgs[@]}")
		log "unpacking $kver"
		unpack "$kver" "${debs[@]}"
	fi
	echo "$kver"
}

command -v depmod >/dev/null || die "depmod missing: run scripts/host-deps.sh"
mkdir -p "$KDIR_BASE"
exec 8>"$VIOMMU_CACHE/guest-kernels.lock"
flock 8
case "${1:-all}" in
bookworm) bookworm ;;
sid) sid ;;
bookworm-arm64) arm64 bookworm ;;
sid-arm64) arm64 sid ;;
bookworm61-arm64) arm64 bookworm-6.1 ;;
all) bookworm; sid ;;
*) die "usage: $0 [bookworm|sid|bookworm-arm64|sid-arm64|bookworm61-arm64|all]" ;;
esac
