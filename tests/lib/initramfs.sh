# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# tests/lib/initramfs.sh - build busybox+fio initramfs images for guest tests.
#
# Source this file (it sources scripts/common.sh). An image is the
# concatenation of three compressed cpio archives, which the kernel unpacks
# in order over one rootfs:
#
#   1. base      busybox (static), fio and every shared library ldd reports
#                for it, from the host's Debian packages. Cached in
#                $VIOMMU_CACHE/initramfs/base-<hash>.cpio.zst, rebuilt only
#                when busybox or fio change.
#   2. modules   decompressed kernel modules of one guest kernel tree
#                (scripts/guest-kernels.sh) with all their dependencies, plus
#                /lib/modules/deps/<name>: the insmod order for <name>, as
#                computed on the host by `modprobe --show-depends`. Cached per
#                kernel and module list.
#   3. payload   /init (lib/guest-init.sh), the test library
#                (lib/guest-lib.sh), the suite's guest script as /test.sh,
#                the viommu-fq command (tools/) as /usr/sbin/viommu-fq,
#                and optional extra files such as our virtio-iommu.ko.
#                Small; rebuilt every time.
#
# Functions:
#   viommu_initramfs_base                      print path of the base archive
#   viommu_initramfs_base_arm64                the same for arm64 guests
#   viommu_initramfs_modules TREE KVER MOD...  print path of a modules archive
#   viommu_initramfs_payload OUT SCRIPT [SRC:DST]...
#                                              write a payload archive to OUT
#   viommu_initramfs OUT TREE KVER SCRIPT [SRC:DST]...
#                                              whole image for the default
#                                              module list ($VIOMMU_GUEST_MODULES)
#
# In the guest, `modload NAME [PARAMS]` (guest-lib.sh) loads a module with its
# dependencies; the in-tree virtio_iommu is at /lib/modules/intree/virtio-iommu.ko
# so that a test can load it explicitly, and nothing is auto-loaded (no udev).

# shellcheck source=../../scripts/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/common.sh"

VIOMMU_TESTLIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VIOMMU_INITRAMFS_CACHE=$VIOMMU_CACHE/initramfs

# Modules every guest gets (dependencies are added automatically).
VIOMMU_GUEST_MODULES=${VIOMMU_GUEST_MODULES:-nvme virtio_blk virtio_iommu}

# _viommu_cpio DIR OUT: pack DIR into a zstd-compressed newc cpio.
_viommu_cpio() {
	(cd "$1" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --quiet) | zstd -q -T0 -10 -f -o "$2"
}

viommu_initramfs_base() {
	local key out tmp lib f
	for f in /bin/busybox /usr/bin/fio; do
		[ -x "$f" ] || die "$f missing: run scripts/host-deps.sh"
	done
	key=$(dpkg-query -W -f='${Package}=${Version}\n' busybox-static fio | sha256sum | cut -c1-12)
	out=$VIOMMU_INITRAMFS_CACHE/base-$key.cpio.zst
	if [ -s "$out" ]; then
		echo "$out"
		return
	fi
	log "building initramfs base (busybox + fio + libraries)"
	mkdir -p "$VIOMMU_INITRAMFS_CACHE"
	tmp=$(mktemp -d "$VIOMMU_INITRAMFS_CACHE/base.XXXXXX")
	mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,lib64,lib/x86_64-linux-gnu,dev,proc,sys,tmp,run,mnt,etc}
	cp /bin/busybox "$tmp/bin/busybox"
	# One symlink per applet, as `busybox --install -s` would do.
	for f in $(/bin/busybox --list-full); do
		[ -e "$tmp/$f" ] || ln -s /bin/busybox "$tmp/$f"
	done
	cp /usr/bin/fio "$tmp/usr/bin/fio"
	# Copy each library to the path ldd resolved (following symlinks, so the
	# file keeps its SONAME-visible name).
	ldd /usr/bin/fio | awk '/=> \//{print $3} /^[[:space:]]*\/lib64\//{print $1}' |
		while read -r lib; do
			mkdir -p "$tmp$(dirname "$lib")"
			cp -L "$lib" "$tmp$lib"
		done
	[ -e "$tmp/lib64/ld-linux-x86-64.so.2" ] || die "ld.so not collected for fio"
	echo 'root:x:0:0:root:/root:/bin/sh' >"$tmp/etc/passwd"
	_viommu_cpio "$tmp" "$out.tmp"
	mv "$out.tmp" "$out"
	rm -rf "$tmp"
	echo "$out"
}

# viommu_initramfs_base_arm64: the same base for arm64 guests, from Debian
# 12's arm64 packages (busybox-static, fio and the packages fio depends on,
# downloaded through the private arm64 apt lists of scripts/arm64-lib.sh and
# unpacked, never installed). fio's libraries are those its ELF headers
# need, followed library by library (RUNPATH, then the multiarch
# directories), found with the cross binutils' readelf. Cached by the exact
# package versions.
viommu_initramfs_base_arm64() {
	local pkgs key out tmp stage lib f need dir found todo=() seen=" "
	# shellcheck source=scripts/arm64-lib.sh
	. "$VIOMMU_TOP/scripts/arm64-lib.sh"
	command -v aarch64-linux-gnu-readelf >/dev/null ||
		die "aarch64-linux-gnu-readelf missing: run scripts/host-deps.sh"
	arm64_setup bookworm
	apt_update arm64
	# The dependency closure of fio and busybox-static (real packages only).
	# shellcheck disable=SC2046 # options are words
	pkgs=$(apt-cache $(apt_opts arm64) depends --recurse --no-recommends --no-suggests \
		--no-conflicts --no-breaks --no-replaces --no-enhances fio busybox-static |
		grep -v '^[ <]' | sort -u)
	# shellcheck disable=SC2046,SC2086
	key=$(apt-cache $(apt_opts arm64) policy $pkgs | grep -E '^[^ ]|Candidate' | sha256sum | cut -c1-12)
	out=$VIOMMU_INITRAMFS_CACHE/base-arm64-$key.cpio.zst
	if [ -s "$out" ]; then
		echo "$out"
		return
	fi
	log "building the arm64 initramfs base (busybox + fio + libraries)"
	mkdir -p "$VIOMMU_INITRAMFS_CACHE" "$top/userland"
	rm -f "$top"/userland/*.deb
	# shellcheck disable=SC2046,SC2086
	(cd "$top/userland" && apt-get $(apt_opts arm64) download -qq $pkgs >&2) ||
		die "cannot download the arm64 userland ($pkgs)"
	stage=$(mktemp -d "$VIOMMU_INITRAMFS_CACHE/stage-arm64.XXXXXX")
	for f in "$top"/userland/*.deb; do
		dpkg-deb -x "$f" "$stage"
	done
	tmp=$(mktemp -d "$VIOMMU_INITRAMFS_CACHE/base-arm64.XXXXXX")
	mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,lib,dev,proc,sys,tmp,run,mnt,etc}
	cp "$stage/bin/busybox" "$tmp/bin/busybox"
	# One symlink per applet, as `busybox --install -s` would do (the
	# host's busybox names the same applets: same version, same config).
	for f in $(/bin/busybox --list-full); do
		[ -e "$tmp/$f" ] || ln -s /bin/busybox "$tmp/$f"
	done
	cp "$stage/usr/bin/fio" "$tmp/usr/bin/fio"
	# The loader, at the path fio's program header names.
	f=$(aarch64-linux-gnu-readelf -l "$stage/usr/bin/fio" | sed -n 's/.*interpreter: \(.*\)\]/\1/p')
	[ -n "$f" ] || die "no program interpreter in arm64 fio"
	mkdir -p "$tmp$(dirname "$f")"
	cp -L "$stage$f" "$tmp$f" 2>/dev/null || cp -L "$stage/usr$f" "$tmp$f" ||
		die "arm64 loader $f not found"
	todo=(/usr/bin/fio)
	while [ ${#todo[@]} -gt 0 ]; do
		lib=${todo[0]}
		todo=("${todo[@]:1}")
		for need in $(aarch64-linux-gnu-readelf -d "$tmp$lib" |
			sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
			case $seen in *" $need "*) continue ;; esac
			seen="$seen$need "
			found=""
			for dir in $(aarch64-linux-gnu-readelf -d "$tmp$lib" |
				sed -nE 's/.*\((RUNPATH|RPATH)\).*\[(.*)\]/\2/p' | tr ':' ' ' |
				sed "s|\$ORIGIN|$(dirname "$lib")|g") \
				/lib/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu; do
				if [ -e "$stage$dir/$need" ]; then
					found=$dir/$need
					break
				fi
			done
			[ -n "$found" ] || die "arm64 library $need (needed by $lib) not in the downloaded packages"
			mkdir -p "$tmp$(dirname "$found")"
			cp -L "$stage$found" "$tmp$found"
			todo+=("$found")
		done
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$tmp/etc/passwd"
	_viommu_cpio "$tmp" "$out.tmp"
	mv "$out.tmp" "$out"
	rm -rf "$tmp" "$stage"
	echo "$out"
}

# viommu_initramfs_modules TREE KVER MOD...: TREE is the unpacked kernel tree
# (its lib/modules/KVER has modules.dep). Modules built into the kernel are
# skipped; a module missing from the tree is an error.
viommu_initramfs_modules() {
	local tree=$1 kver=$2 key out tmp m line path name deps
	shift 2
	key=$(printf '%s\n' "$kver" "$@" "$(stat -c %Y "$tree/.complete" 2>/dev/null)" | sha256sum | cut -c1-12)
	out=$VIOMMU_INITRAMFS_CACHE/modules-$kver-$key.cpio.zst
	if [ -s "$out" ]; then
		echo "$out"
		return
	fi
	log "building initramfs modules for $kver: $*"
	mkdir -p "$VIOMMU_INITRAMFS_CACHE"
	tmp=$(mktemp -d "$VIOMMU_INITRAMFS_CACHE/modules.XXXXXX")
	mkdir -p "$tmp/lib/modules/deps" "$tmp/lib/modules/ko" "$tmp/lib/modules/intree"
	for m in "$@"; do
		deps=$tmp/lib/modules/deps/$m
		: >"$deps"
		modprobe -d "$tree" -S "$kver" --show-depends "$m" >"$tmp/show" ||
			die "modprobe --show-depends $m failed for $kver"
		while read -r line; do
			case $line in
			builtin*) continue ;;
			insmod*) ;;
			*) die "unexpected modprobe output: $line" ;;
			esac
			path=$(echo "$line" | awk '{print $2}')
			name=$(basename "$path")
			name=${name%.xz}
			name=${name%.zst}
			name=${name%.gz}
			case $path in
			*.xz) xz -dc "$path" >"$tmp/lib/modules/ko/$name" ;;
			*.zst) zstd -qdc "$path" >"$tmp/lib/modules/ko/$name" ;;
			*.gz) gzip -dc "$path" >"$tmp/lib/modules/ko/$name" ;;
			*) cp "$path" "$tmp/lib/modules/ko/$name" ;;
			esac
			echo "/lib/modules/ko/$name" >>"$deps"
		done <"$tmp/show"
	done
	rm -f "$tmp/show"
	# The in-tree IOMMU driver is kept apart so that loading it is explicit.
	if [ -f "$tmp/lib/modules/ko/virtio-iommu.ko" ]; then
		mv "$tmp/lib/modules/ko/virtio-iommu.ko" "$tmp/lib/modules/intree/virtio-iommu.ko"
		sed -i 's|/lib/modules/ko/virtio-iommu.ko|/lib/modules/intree/virtio-iommu.ko|' \
			"$tmp"/lib/modules/deps/*
	fi
	echo "$kver" >"$tmp/lib/modules/kver"
	_viommu_cpio "$tmp" "$out.tmp"
	mv "$out.tmp" "$out"
	rm -rf "$tmp"
	echo "$out"
}

# viommu_initramfs_payload OUT SCRIPT [SRC:DST]...: /init, guest-lib.sh,
# SCRIPT as /test.sh, and each SRC copied to DST inside the image.
viommu_initramfs_payload() {
	local out=$1 script=$2 tmp spec
	shift 2
	[ -f "$script" ] || die "guest script $script not found"
	tmp=$(mktemp -d)
	install -m 0755 "$VIOMMU_TESTLIB/guest-init.sh" "$tmp/init"
	install -D -m 0644 "$VIOMMU_TESTLIB/guest-lib.sh" "$tmp/lib/viommu/guest-lib.sh"
	install -m 0755 "$script" "$tmp/test.sh"
	install -D -m 0755 "$VIOMMU_TESTLIB/../../tools/viommu-fq" "$tmp/usr/sbin/viommu-fq"
	for spec in "$@"; do
		[ -f "${spec%%:*}" ] || die "payload file ${spec%%:*} not found"
		if [ -x "${spec%%:*}" ]; then
			install -D -m 0755 "${spec%%:*}" "$tmp/${spec#*:}"
		else
			install -D -m 0644 "${spec%%:*}" "$tmp/${spec#*:}"
		fi
	done
	_viommu_cpio "$tmp" "$out"
	rm -rf "$tmp"
}

# viommu_initramfs OUT TREE KVER SCRIPT [SRC:DST]...: the whole image (for
# arm64 when KVER ends in -arm64).
viommu_initramfs() {
	local out=$1 tree=$2 kver=$3 script=$4 base mods
	shift 4
	# Each step is checked: callers often run this where set -e does not
	# apply (in an if or a || list), and an image without its modules
	# would boot and fail in confusing ways.
	case $kver in
	*-arm64) base=$(viommu_initramfs_base_arm64) || return 1 ;;
	*) base=$(viommu_initramfs_base) || return 1 ;;
	esac
	# shellcheck disable=SC2086
	mods=$(viommu_initramfs_modules "$tree" "$kver" $VIOMMU_GUEST_MODULES) || return 1
	viommu_initramfs_payload "$out.payload" "$script" "$@" || return 1
	cat "$base" "$mods" "$out.payload" >"$out" || return 1
	rm -f "$out.payload"
}
