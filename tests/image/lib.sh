# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# Helpers for the disk-image install test (tests/image/): mounting a raw ext4
# image with its chroot API file systems, running apt inside it, extracting its
# kernel and initramfs, and booting it under QEMU with the root disk on an NVMe
# controller behind a virtio-iommu. Source after scripts/common.sh.

IMG_CACHE=${IMG_CACHE:-$VIOMMU_CACHE/image}
HEAVY_LOCK=$VIOMMU_CACHE/heavy.lock
# Every mount point this process created, innermost last (for cleanup).
IMG_MOUNTS=()

# Security archive: the host's own debian-security URI, else the default.
security_mirror() {
	local uri
	uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '{print $2}' | grep security | head -n1)
	[ -n "$uri" ] || uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null |
		awk '{print $2}' | grep security | head -n1)
	echo "${uri:-http://deb.debian.org/debian-security}"
}

# img_mount IMG MNT: loop-mount IMG at MNT with /proc /sys /dev /dev/pts
# and a policy-rc.d that keeps services from starting inside the chroot.
img_mount() {
	local img=$1 mnt=$2
	mkdir -p "$mnt"
	mount -o loop "$img" "$mnt"
	IMG_MOUNTS+=("$mnt")
	img_mount_api "$mnt"
}

# img_mount_api MNT: the API file systems and policy-rc.d for a chroot.
img_mount_api() {
	local mnt=$1
	mount -t proc proc "$mnt/proc"
	mount -t sysfs sysfs "$mnt/sys"
	mount --bind /dev "$mnt/dev"
	mount --bind /dev/pts "$mnt/dev/pts"
	if [ -d "$mnt/usr/sbin" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$mnt/usr/sbin/policy-rc.d"
		chmod 755 "$mnt/usr/sbin/policy-rc.d"
	fi
}

# chroot_pids MNT: processes (left by commands we ran) whose root is MNT.
chroot_pids() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$1" ] && echo "${p#/proc/}"
	done
	return 0
}

# img_umount MNT: undo img_mount (removes the policy-rc.d it added). The
# image must be fully released before QEMU boots it: a straggler left
# inside the chroot is ended (by pid) and the unmount retried; a lazy
# unmount is only accepted once the image's loop device has gone.
img_umount() {
	local mnt=$1 i pids img
	mountpoint -q "$mnt" || return 0
	rm -f "$mnt/usr/sbin/policy-rc.d"
	sync -f "$mnt" 2>/dev/null || true
	if ! umount -R "$mnt" 2>/dev/null; then
		pids=$(chroot_pids "$mnt")
		if [ -n "$pids" ]; then
			log "ending processes left in the chroot $mnt: ${pids//$'\n'/ }"
			# shellcheck disable=SC2086
			kill $pids 2>/dev/null || true
			sleep 2
			# shellcheck disable=SC2086
			kill -9 $pids 2>/dev/null || true
			sleep 1
		fi
		if ! umount -R "$mnt"; then
			img=$(findmnt -no SOURCE "$mnt" 2>/dev/null || true)
			umount -R -l "$mnt"
			for _ in $(seq 30); do
				[ -z "$img" ] || ! losetup "$img" >/dev/null 2>&1 || break
				sleep 1
			done
			[ -z "$img" ] || ! losetup "$img" >/dev/null 2>&1 ||
				die "$mnt: image still attached to $img after a lazy unmount"
		fi
	fi
	for i in "${!IMG_MOUNTS[@]}"; do
		[ "${IMG_MOUNTS[$i]}" != "$mnt" ] || unset "IMG_MOUNTS[$i]"
	done
}

img_umount_all() {
	local m
	for m in "${IMG_MOUNTS[@]}"; do
		img_umount "$m" || true
	done
}

# in_chroot MNT CMD...: run CMD inside the image with a clean environment.
in_chroot() {
	local mnt=$1
	shift
	chroot "$mnt" /usr/bin/env -i \
		PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
		DEBIAN_FRONTEND=noninteractive "$@"
}

# in_chroot_heavy MNT CMD...: same, holding the team's heavy-build lock
# (DKMS builds and initramfs generation happen inside these commands).
in_chroot_heavy() {
	local mnt=$1
	shift
	flock "$HEAVY_LOCK" chroot "$mnt" /usr/bin/env -i \
		PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
		DEBIAN_FRONTEND=noninteractive "$@"
}

# img_extract_boot MNT KVER DIR: copy the image's kernel and initramfs out.
img_extract_boot() {
	local mnt=$1 kver=$2 dir=$3
	mkdir -p "$dir"
	[ -f "$mnt/boot/vmlinuz-$kver" ] || die "image has no /boot/vmlinuz-$kver"
	[ -f "$mnt/boot/initrd.img-$kver" ] || die "image has no /boot/initrd.img-$kver"
	cp "$mnt/boot/vmlinuz-$kver" "$dir/vmlinuz"
	cp "$mnt/boot/initrd.img-$kver" "$dir/initrd.img"
}

# boot_image NAME ROOTIMG DATAIMG BOOTDIR IOMMU(0|1) TIMEOUT EXTRA_APPEND [OFFCAP]
# Boots under TCG and writes $WORK/NAME.console: one line per console line,
# "<host epoch seconds> <text>". Also writes $WORK/NAME.times with
# "start=<epoch> end=<epoch> rc=<qemu exit code>". With OFFCAP, QEMU is
# ended OFFCAP seconds after the guest's RESULT-DONE line if it has not
# exited by then, and $WORK/NAME.capped is created. Returns 0.
boot_image() {
	local name=$1 root=$2 data=$3 bootdir=$4 iommu=$5 tmo=$6 extra=$7 offcap=${8:-}
	local con=$WORK/$name.console pidf=$WORK/$name.pid start end rc line watcher=""
	# shellcheck disable=SC2054
	local args=(
		-M q35 -accel tcg,thread=multi -cpu max -smp 2 -m 2G
		-nodefaults -display none -monitor none -serial stdio -nic none
		-no-reboot
		-kernel "$bootdir/vmlinuz" -initrd "$bootdir/initrd.img"
		-append "root=/dev/nvme0n1 console=ttyS0 panic=-1 $extra"
		-drive "file=$root,if=none,id=rootdisk,format=raw,cache=unsafe"
		-device "nvme,serial=viommuroot,drive=rootdisk"
	)
	[ "$iommu" = 0 ] || args+=(-device virtio-iommu-pci)
	if [ -n "$data" ]; then
		args+=(-drive "file=$data,if=none,id=datadisk,format=raw,cache=unsafe"
			-device "virtio-blk-pci,drive=datadisk,serial=viommudata,iommu_platform=on,disable-legacy=on")
	fi
	log "boot $name (iommu=$iommu, timeout ${tmo}s)"
	printf '%s\n' "qemu-system-x86_64 ${args[*]}" >"$WORK/$name.cmdline"
	rm -f "$pidf" "$WORK/$name.capped"
	: >"$con"
	if [ -n "$offcap" ]; then
		_boot_offcap "$con" "$pidf" "$offcap" "$WORK/$name.capped" &
		watcher=$!
	fi
	start=$EPOCHREALTIME
	set +e
	{
		timeout -k 10 "$tmo" qemu-system-x86_64 "${args[@]}" </dev/null 2>"$WORK/$name.qemu-stderr" &
		echo $! >"$pidf"
		wait $!
	} | while IFS= read -r line || [ -n "$line" ]; do
		printf '%s %s\n' "$EPOCHREALTIME" "${line//$'\r'/}"
	done >"$con"
	rc=${PIPESTATUS[0]}
	[ -z "$watcher" ] || { kill "$watcher" 2>/dev/null; wait "$watcher" 2>/dev/null; }
	set -e
	end=$EPOCHREALTIME
	echo "start=$start end=$end rc=$rc" >"$WORK/$name.times"
	log "boot $name ended: qemu rc=$rc after $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')s"
}

# _boot_offcap CONSOLE PIDFILE SECS MARKER: once CONSOLE has a RESULT-DONE
# line, give the QEMU in PIDFILE SECS seconds, then end it and create MARKER.
_boot_offcap() {
	local con=$1 pidf=$2 cap=$3 marker=$4 pid="" done_at=""
	while [ -z "$pid" ]; do
		sleep 1
		[ -s "$pidf" ] && pid=$(<"$pidf")
	done
	while kill -0 "$pid" 2>/dev/null; do
		if [ -z "$done_at" ] && grep -q ' RESULT-DONE' "$con"; then
			done_at=$SECONDS
		fi
		if [ -n "$done_at" ] && [ $((SECONDS - done_at)) -ge "$cap" ]; then
			: >"$marker"
			kill "$pid" 2>/dev/null
			return 0
		fi
		sleep 1
	done
}

# console_first NAME REGEX: host epoch of the first console line matching
# REGEX (ERE, matched against the text after the timestamp), or empty.
console_first() {
	awk -v re="$2" '{ t=$1; sub(/^[^ ]+ /, ""); if ($0 ~ re) { print t; exit } }' "$WORK/$1.console"
}

# console_text NAME: the console log without timestamps.
console_text() {
	sed 's/^[^ ]* //' "$WORK/$1.console"
}

# times_get NAME KEY: a field of $WORK/NAME.times.
times_get() {
	tr ' ' '\n' <"$WORK/$1.times" | sed -n "s/^$2=//p"
}

# fdiff A B: B - A in seconds, one decimal.
fdiff() {
	awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'
}
