# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# tests/install/chroot.sh - the Debian 12 root the install suite installs
# packages into, so that this host gets none of them. Source it after
# scripts/common.sh.
#
#   ichroot_base ARCH PKG...  sets ICHROOT_BASE, the pristine base root of
#                             ARCH (amd64, arm64): debootstrap of bookworm plus PKG...,
#                             built once under $VIOMMU_CACHE/install-chroot/
#                             <arch>/base and rebuilt when its inputs (suite,
#                             mirror, ARCH, PKG..., ICHROOT_FORMAT) change
#   ichroot_up BASE DIR       a fresh overlay of BASE at DIR/root (changes go
#                             to DIR/upper, the base is never written), with
#                             /proc, /sys, /dev and /run mounted; sets ICHROOT.
#                             BASE is a directory or a file system image
#                             (mounted read only at DIR/lower)
#   inch CMD...               run CMD in $ICHROOT with a clean environment
#   ichroot_umount_under DIR  unmount everything mounted under DIR, deepest
#                             first (also what a killed run left behind)
#
# A foreign root's initramfs-tools builds with MODULES=list (see below).
#
# Foreign architectures run under qemu-user through binfmt_misc
# (qemu-user-static registers its interpreters with the F flag, so nothing
# has to be copied into the root): ichroot_binfmt ARCH sets that up and
# ichroot_binfmt_restore undoes what it did.

# Bump when the way the base is built changes: the next run rebuilds it.
ICHROOT_FORMAT=1
ICHROOT_SUITE=bookworm
ICHROOT=""
ICHROOT_BASE=""
ICHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

ichroot_umount_under() { # DIR
	local m
	[ -n "$1" ] || return 0
	# findmnt's TARGET escapes nothing we create; sort -r puts children first.
	findmnt -rn -o TARGET | awk -v d="$1/" 'index($0 "/", d) == 1' | sort -r |
		while read -r m; do
			umount "$m" 2>/dev/null || umount -l "$m"
		done
	! findmnt -rn -o TARGET | awk -v d="$1/" 'index($0 "/", d) == 1' | grep -q .
}

# ichroot_mount_api ROOT: what dpkg, DKMS and the maintainer scripts need:
# the API file systems, and the usual policy-rc.d of a chroot (no daemon
# starts inside).
ichroot_mount_api() {
	printf '#!/bin/sh\nexit 101\n' >"$1/usr/sbin/policy-rc.d" &&
		chmod 755 "$1/usr/sbin/policy-rc.d" &&
		mount -t proc proc "$1/proc" &&
		mount -t sysfs -o ro sysfs "$1/sys" &&
		mount --bind /dev "$1/dev" &&
		mount -t tmpfs -o mode=755 tmpfs "$1/run"
}

# _inroot ROOT CMD...: CMD in ROOT, environment reduced to what a root shell
# has (the caller's variables and the host's locale stay out).
_inroot() {
	local root=$1
	shift
	chroot "$root" /usr/bin/env -i PATH="$ICHROOT_PATH" HOME=/root LANG=C.UTF-8 \
		TERM=dumb DEBIAN_FRONTEND=noninteractive "$@"
}
inch() { _inroot "$ICHROOT" "$@"; }

# sources.list of the root: the suite with its updates and security
# archives, where Debian 12's 6.12 kernels come from.
_ichroot_sources() { # MIRROR
	echo "deb $1 $ICHROOT_SUITE main"
	echo "deb $1 $ICHROOT_SUITE-updates main"
	echo "deb ${1%/debian}/debian-security $ICHROOT_SUITE-security main"
}

ichroot_base() { # ARCH PKG...
	local arch=$1 dir mirror inputs new log foreign
	shift
	dir=$VIOMMU_CACHE/install-chroot/$arch
	mirror=$(debian_mirror)
	inputs=$(printf 'format %s\nsuite %s\narch %s\nmirror %s\npackages %s\n' \
		"$ICHROOT_FORMAT" "$ICHROOT_SUITE" "$arch" "$mirror" "$(printf '%s\n' "$@" | sort | tr '\n' ' ')")
	foreign=""
	[ "$arch" = "$(dpkg --print-architecture)" ] || foreign=1
	[ -z "$foreign" ] || inputs+=$'\ninitramfs MODULES=list'
	# shellcheck disable=SC2034 # read by the caller
	ICHROOT_BASE=$dir/base
	if [ -d "$dir/base" ] && [ "$(cat "$dir/base.inputs" 2>/dev/null)" = "$inputs" ]; then
		return 0
	fi
	new=$dir/base.new
	log=$dir/base-build.log
	mkdir -p "$dir"
	ichroot_umount_under "$new" || { log "cannot unmount what is left under $new"; return 1; }
	rm -rf "$new" "$dir/base" "$dir/base.inputs"
	log "debootstrap $ICHROOT_SUITE $arch into $new (log: $log)"
	debootstrap --arch="$arch" --variant=minbase "$ICHROOT_SUITE" "$new" "$mirror" >"$log" 2>&1 ||
		{ tail -n 20 "$log" >&2; return 1; }
	_ichroot_sources "$mirror" >"$new/etc/apt/sources.list"
	if [ -n "$foreign" ]; then
		# initramfs-tools' default (MODULES=most) copies every storage,
		# network and file system module, decompressing each with its own
		# xz: under qemu-user that is most of an hour per initramfs on a
		# 2-core host. A foreign root's initramfs holds the modules named
		# for it only, which is where the package's hook adds virtio_iommu.
		mkdir -p "$new/etc/initramfs-tools/conf.d"
		printf '# %s\nMODULES=list\n' "tests/install/chroot.sh: a foreign root, run under qemu-user" \
			>"$new/etc/initramfs-tools/conf.d/foreign-arch.conf"
	fi
	log "installing $* into the $arch base"
	if ! ichroot_mount_api "$new" ||
		! _inroot "$new" apt-get update -qq >>"$log" 2>&1 ||
		! _inroot "$new" apt-get install -y --no-install-recommends "$@" >>"$log" 2>&1 ||
		! _inroot "$new" apt-get clean >>"$log" 2>&1; then
		ichroot_umount_under "$new" || true
		tail -n 30 "$log" >&2
		return 1
	fi
	ichroot_umount_under "$new" || return 1
	mv "$new" "$dir/base"
	echo "$inputs" >"$dir/base.inputs"
}

ichroot_up() { # BASE DIR
	local base=$1 dir=$2
	ichroot_umount_under "$dir" || die "cannot unmount what is left under $dir"
	rm -rf "$dir"
	mkdir -p "$dir/upper" "$dir/work" "$dir/root"
	if [ -f "$base" ]; then
		# A disk image (the image suite's base): its file system, read only.
		mkdir -p "$dir/lower"
		mount -o loop,ro "$base" "$dir/lower" || return 1
		base=$dir/lower
	fi
	mount -t overlay overlay -o "lowerdir=$base,upperdir=$dir/upper,workdir=$dir/work" "$dir/root" ||
		return 1
	ichroot_mount_api "$dir/root" || return 1
	ICHROOT=$dir/root
}

# --- binfmt_misc for a foreign ARCH ---------------------------------------

ICHROOT_BINFMT_MOUNTED=0
ICHROOT_BINFMT_ENABLED=""
ichroot_binfmt() { # ARCH (Debian's name)
	local q
	case $1 in
	amd64) return 0 ;;
	arm64) q=qemu-aarch64 ;;
	*) die "no qemu-user mapping for $1" ;;
	esac
	[ -e /usr/share/binfmts/$q ] || die "qemu-user-static is not installed (scripts/host-deps.sh)"
	if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
		# Nothing mounted it on this machine (no systemd at boot, say).
		mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || die "cannot mount binfmt_misc"
		ICHROOT_BINFMT_MOUNTED=1
	fi
	if [ ! -e /proc/sys/fs/binfmt_misc/$q ]; then
		update-binfmts --enable $q || die "update-binfmts --enable $q failed"
		ICHROOT_BINFMT_ENABLED=$q
	fi
	grep -qx enabled /proc/sys/fs/binfmt_misc/$q || die "binfmt_misc entry $q is disabled"
	grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/$q ||
		die "binfmt_misc entry $q lacks the F flag: the interpreter would have to be inside the root"
}

ichroot_binfmt_restore() {
	local rc=0
	if [ -n "$ICHROOT_BINFMT_ENABLED" ]; then
		update-binfmts --disable "$ICHROOT_BINFMT_ENABLED" >/dev/null 2>&1 || rc=1
		ICHROOT_BINFMT_ENABLED=""
	fi
	if [ "$ICHROOT_BINFMT_MOUNTED" = 1 ]; then
		umount /proc/sys/fs/binfmt_misc || rc=1
		ICHROOT_BINFMT_MOUNTED=0
	fi
	return $rc
}
