#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# shellcheck disable=SC2154 # viommu_* come from the kernel command line
#
# Guest side of the suspend and hibernation boots of the end-to-end suite
# (busybox ash, run by /init as /test.sh of the PM initramfs, see run.sh).
# Kernel command line:
#   viommu_role    suspend    S3 cycles: fio verify before, suspend to RAM
#                             (the host wakes the guest with QMP
#                             system_wakeup), verify after
#                  hibernate  first boot: swap on the virtio-blk disk, data on
#                             the NVMe, `echo disk > /sys/power/state`; the
#                             kernel writes its image and powers off
#                  resume     second boot on the same disks: load the drivers,
#                             write the resume= device to /sys/power/resume;
#                             the kernel jumps into the image, where the
#                             hibernate boot's script goes on with its checks
#   viommu_mod     ours | intree (intree: the kernel's own driver; what it
#                             does is reported as FIGURE lines, never judged)
#   viommu_cycles  S3 cycles (default 5)
#   viommu_fio_size  size of each verify run (default 8M)
#   viommu_io_cap  seconds a fio run may take before the guest gives up on it
#                  (intree only, default 60)
# FIGURE lines ("FIGURE <case> <text>") are figures the host prints as such.
# shellcheck source=../lib/guest-lib.sh
. /lib/viommu/guest-lib.sh

ROLE=${viommu_role:-suspend}
MOD=${viommu_mod:-ours}
CYCLES=${viommu_cycles:-5}
FSIZE=${viommu_fio_size:-8M}
IO_CAP=${viommu_io_cap:-60}
RESTORED="restored after reset"

ours() { [ "$MOD" = ours ]; }
figure() { _emit "FIGURE $*"; }
since() { echo "$(uptime_s) $1" | awk '{printf "%.2f", $1 - $2}'; }
restores() { dmesg | grep -c "$RESTORED"; }

# bring_up: the IOMMU driver first, then the disks' drivers; the NVMe keeps
# its default (lazy, DMA-FQ) domain, the virtio-blk disk is switched to a
# strict (DMA) domain, so that both kinds are restored.
bring_up() {
	_t0=$(uptime_s)
	load_viommu "$MOD" && modload nvme && modload virtio_blk
	_rc=$?
	NVME=$(nvme_bdf)
	VBLK=$(vblk_bdf)
	NDISK=$(wait_blkdev "$NVME" 30)
	VDISK=$(wait_blkdev "$VBLK" 30)
	if [ $_rc -eq 0 ] && [ -n "$NDISK" ] && [ -n "$VDISK" ]; then
		result "load-$ROLE" PASS "$MOD driver, disks $NDISK $VDISK in $(since "$_t0")s"
	else
		result "load-$ROLE" FAIL "rc=$_rc nvme '$NDISK' virtio-blk '$VDISK'; $(dmesg | tail -n 5)"
		return 1
	fi
}

strict_vblk() {
	if set_group_type "$VBLK" DMA && VDISK=$(wait_blkdev "$VBLK" 30); then
		info "virtio-blk $VBLK group $(group_of "$VBLK") type $(group_type "$(group_of "$VBLK")")"
	else
		info "switching virtio-blk to DMA failed: $SGT_ERR"
	fi
}

# verify CASE DISK SEED [FIO ARGS]: a crc32c write+verify (or, with
# --verify_only, a check of what an earlier run with SEED wrote) as a case.
verify() {
	_c=$1 _dk=$2 _seed=$3
	shift 3
	if fio_verify "$_dk" "$FSIZE" --randseed="$_seed" "$@"; then
		result "$_c" PASS "$_dk: $FIO_DETAIL"
	else
		result "$_c" FAIL "$_dk: $FIO_DETAIL"
	fi
}

# capped_verify DISK SEED [FIO ARGS]: the same for the in-tree driver, given
# up after IO_CAP seconds; prints "ok DETAIL", "failed DETAIL" or "stuck".
capped_verify() {
	rm -f /tmp/cv
	(if fio_verify "$@"; then echo "ok $FIO_DETAIL"; else echo "failed $FIO_DETAIL"; fi >/tmp/cv) &
	_p=$!
	_i=0
	while kill -0 $_p 2>/dev/null && [ $_i -lt $((IO_CAP * 10)) ]; do
		usleep 100000
		_i=$((_i + 1))
	done
	if kill -0 $_p 2>/dev/null; then
		echo "stuck after ${IO_CAP}s"
	else
		cat /tmp/cv 2>/dev/null || echo "failed: no status"
	fi
}

dmesg_case() {
	_bad=$(dmesg_bad)
	if [ -z "$_bad" ]; then
		result "dmesg-clean-$ROLE" PASS "no WARN/BUG/Oops/lockup/timeout"
	else
		result "dmesg-clean-$ROLE" FAIL "$(echo "$_bad" | head -n 5)"
		dmesg | sed 's/^/DMESG /' >"$VIOMMU_RESULTS_TTY"
	fi
}

# A knob set to a non-default value and the counters must survive.
knobs_before() {
	ours || return 0
	knob_set flush_timeout_ms 20
	KICKS_BEFORE=$(cnt kicks)
	MAPS_BEFORE=$(cnt req_map)
}

knobs_after() {
	ours || return 0
	_ft=$(cat "$(fqdir)/flush_timeout_ms")
	_k=$(cnt kicks)
	_m=$(cnt req_map)
	_d="flush_timeout_ms $_ft (set 20); kicks $KICKS_BEFORE -> $_k, req_map $MAPS_BEFORE -> $_m"
	if [ "$_ft" = 20 ] && [ "$_k" -ge "$KICKS_BEFORE" ] && [ "$_m" -gt "$MAPS_BEFORE" ]; then
		result "$1" PASS "$_d"
	else
		result "$1" FAIL "$_d"
	fi
	knob_set flush_timeout_ms 10
}

# ---- suspend to RAM --------------------------------------------------------

# sleep_mem: ask the host for a wake-up, then suspend to RAM. The host sends
# QMP system_wakeup 3 s after the request (the usual case) and again after 10
# and 25 s in case the guest took longer to suspend (a wake-up that arrives
# before the guest sleeps is refused by QEMU and logged in qmp.log).
sleep_mem() {
	host_qmp 3 '{"execute":"system_wakeup"}'
	host_qmp 10 '{"execute":"system_wakeup"}'
	host_qmp 25 '{"execute":"system_wakeup"}'
	SLEEP_ERR=$(printf 'mem' | dd of=/sys/power/state 2>&1 >/dev/null)
	_src=$?
	SLEEP_ERR=$(echo "$SLEEP_ERR" | grep -v 'records')
	return $_src
}

s3_prepare() {
	_states=$(cat /sys/power/state)
	_ms=$(cat /sys/power/mem_sleep 2>/dev/null)
	case "$_states $_ms" in
	*mem*deep*) echo deep >/sys/power/mem_sleep ;;
	*)
		S3_ERR="no suspend to RAM offered: state '$_states' mem_sleep '$_ms'"
		return 1 ;;
	esac
}

suspend_ours() {
	_plan="load-$ROLE s3-offered"
	_n=1
	while [ $_n -le "$CYCLES" ]; do
		_plan="$_plan s3-$_n-before s3-$_n-resume s3-$_n-after-nvme s3-$_n-after-vblk"
		_n=$((_n + 1))
	done
	plan "$_plan s3-knobs-counters dmesg-clean-$ROLE"
	bring_up || return
	strict_vblk
	if s3_prepare; then
		result s3-offered PASS "state: $(cat /sys/power/state); mem_sleep: $(cat /sys/power/mem_sleep)"
	else
		result s3-offered FAIL "$S3_ERR"
		return
	fi
	knobs_before
	_n=1
	while [ $_n -le "$CYCLES" ]; do
		verify "s3-$_n-before" "$NDISK" $((100 + _n))
		_r0=$(restores)
		_t0=$(uptime_s)
		sleep_mem
		_rc=$?
		_dt=$(since "$_t0")
		_r1=$(restores)
		metric "s3_cycle${_n}_s" "$_dt"
		_d="echo mem rc=$_rc ($SLEEP_ERR) back after ${_dt}s; driver restores $_r0 -> $_r1: $(dmesg | grep "$RESTORED" | tail -n1 | sed 's/^\[[^]]*\] //')"
		if [ $_rc -eq 0 ] && [ "$_r1" -eq $((_r0 + 1)) ]; then
			result "s3-$_n-resume" PASS "$_d"
		else
			result "s3-$_n-resume" FAIL "$_d"
		fi
		# What was written before the sleep reads back intact, then the
		# NVMe (lazy) and the virtio-blk disk (strict) carry new I/O.
		if ! fio_verify "$NDISK" "$FSIZE" --randseed=$((100 + _n)) --verify_only; then
			result "s3-$_n-after-nvme" FAIL "$NDISK: pre-sleep data: $FIO_DETAIL"
		else
			_pre=$FIO_DETAIL
			if fio_verify "$NDISK" "$FSIZE" --randseed=$((200 + _n)); then
				result "s3-$_n-after-nvme" PASS "$NDISK: pre-sleep data intact ($_pre); new data: $FIO_DETAIL"
			else
				result "s3-$_n-after-nvme" FAIL "$NDISK: pre-sleep data intact ($_pre); new data: $FIO_DETAIL"
			fi
		fi
		verify "s3-$_n-after-vblk" "$VDISK" $((300 + _n))
		_n=$((_n + 1))
	done
	knobs_after s3-knobs-counters
	dmesg_case
}

# The in-tree driver: the same sequence, reported as figures; stops at the
# first cycle that does not come back.
suspend_intree() {
	plan "load-$ROLE"
	bring_up || return
	strict_vblk
	if ! s3_prepare; then
		figure s3 "in-tree driver: $S3_ERR"
		return
	fi
	_n=1
	while [ $_n -le "$CYCLES" ]; do
		_b=$(capped_verify "$NDISK" "$FSIZE" --randseed=$((100 + _n)))
		_t0=$(uptime_s)
		info "s3 cycle $_n: before: $_b; suspending"
		sleep_mem
		_rc=$?
		_dt=$(since "$_t0")
		info "s3 cycle $_n: echo mem rc=$_rc ($SLEEP_ERR) after ${_dt}s"
		_a=$(capped_verify "$NDISK" "$FSIZE" --randseed=$((200 + _n)))
		_v=$(capped_verify "$VDISK" "$FSIZE" --randseed=$((300 + _n)))
		figure "s3-cycle$_n" "in-tree driver: before $_b; echo mem rc=$_rc back after ${_dt}s; after: nvme $_a; virtio-blk $_v; $(dmesg_bad | head -n 2)"
		case "$_a/$_v" in
		ok*/ok*) ;;
		*) figure s3 "in-tree driver: I/O broken after resume $_n; giving up"; return ;;
		esac
		_n=$((_n + 1))
	done
	figure s3 "in-tree driver: $CYCLES cycles completed; $(dmesg_bad | head -n 2)"
}

# ---- hibernation -----------------------------------------------------------

# The resume= device of the kernel command line (/dev/NAME) as MAJ:MIN.
resume_dev() {
	_r=$(tr ' ' '\n' </proc/cmdline | sed -n 's|^resume=/dev/||p' | tail -n1)
	[ -n "$_r" ] && cat "/sys/class/block/$_r/dev" 2>/dev/null
}

hibernate_ours() {
	plan "load-$ROLE hib-swap hib-before-nvme"
	bring_up || return
	strict_vblk
	_dev=$(resume_dev)
	if [ "$(cat "/sys/class/block/$VDISK/dev")" = "$_dev" ] &&
		mkswap "/dev/$VDISK" >/tmp/mkswap.log 2>&1 && swapon "/dev/$VDISK" &&
		echo "$_dev" >/sys/power/resume; then
		result hib-swap PASS "swap on $VDISK ($_dev), resume device set; disk modes: $(cat /sys/power/disk)"
	else
		result hib-swap FAIL "resume= '$_dev', $VDISK is $(cat "/sys/class/block/$VDISK/dev"): $(cat /tmp/mkswap.log)"
		return
	fi
	verify hib-before-nvme "$NDISK" 401
	knobs_before
	hibernate_now
	# Here either in the restored image (second boot) or back in the first
	# boot after a failure; the kernel's debug message tells which.
	if dmesg | grep -q 'Hibernation image restored successfully'; then
		_d="echo disk rc=$HIB_RC ($HIB_ERR), image restored; driver: $(dmesg | grep "$RESTORED" | tail -n1 | sed 's/^\[[^]]*\] //')"
		if [ "$(restores)" -gt "$HIB_RESTORES" ]; then
			result hib-resumed PASS "$_d"
		else
			result hib-resumed FAIL "$_d (no driver restore after the image)"
		fi
		verify hib-verify-nvme "$NDISK" 401 --verify_only
		verify hib-after-nvme "$NDISK" 402
		swapoff "/dev/$VDISK"
		verify hib-after-vblk "$VDISK" 403
		knobs_after hib-knobs-counters
		dmesg_case
	else
		result hib-image FAIL "echo disk returned rc=$HIB_RC ($HIB_ERR) without restoring an image: $(dmesg | grep -i 'hibernat\|PM:' | tail -n 4)"
	fi
}

# hibernate_now: write the image and power off; returns in the image once it
# is restored (or here on failure). HIB_RC HIB_ERR HIB_RESTORES are set.
hibernate_now() {
	echo shutdown >/sys/power/disk
	echo 0 >/sys/power/image_size
	echo 1 >/sys/power/pm_debug_messages
	HIB_RESTORES=$(restores)
	sync
	_emit "SHUTDOWN hibernate $(uptime_s)"
	HIB_ERR=$(printf 'disk' | dd of=/sys/power/state 2>&1 >/dev/null)
	HIB_RC=$?
	HIB_ERR=$(echo "$HIB_ERR" | grep -v 'records')
}

hibernate_intree() {
	plan "load-$ROLE"
	bring_up || return
	strict_vblk
	_dev=$(resume_dev)
	mkswap "/dev/$VDISK" >/dev/null 2>&1 && swapon "/dev/$VDISK" && echo "$_dev" >/sys/power/resume
	_b=$(capped_verify "$NDISK" "$FSIZE" --randseed=401)
	info "hibernate: before: $_b; writing the image"
	hibernate_now
	if dmesg | grep -q 'Hibernation image restored successfully'; then
		_a=$(capped_verify "$NDISK" "$FSIZE" --randseed=401 --verify_only)
		_v=$(capped_verify "$NDISK" "$FSIZE" --randseed=402)
		figure hibernate "in-tree driver: image written and restored (echo disk rc=$HIB_RC); pre-hibernation data: $_a; new I/O: $_v; $(dmesg_bad | head -n 2)"
	else
		figure hibernate "in-tree driver: echo disk returned rc=$HIB_RC ($HIB_ERR) without an image"
	fi
}

# Second boot: plan what the restored image will report, then resume.
resume_boot() {
	if ours; then
		plan "load-$ROLE hib-resumed hib-verify-nvme hib-after-nvme hib-after-vblk hib-knobs-counters dmesg-clean-hibernate"
	else
		plan "load-$ROLE"
	fi
	bring_up || return
	_dev=$(resume_dev)
	info "resuming from $_dev (resume= $(tr ' ' '\n' </proc/cmdline | grep '^resume='))"
	echo 1 >/sys/power/pm_debug_messages
	_err=$(printf '%s' "$_dev" | dd of=/sys/power/resume 2>&1 >/dev/null | grep -v 'records')
	# Still here: no image was restored.
	if ours; then
		result hib-resumed FAIL "writing $_dev to /sys/power/resume returned ($_err): $(dmesg | grep -i 'hibernat\|PM:' | tail -n 4)"
	else
		figure hibernate "in-tree driver: no image restored ($_err): $(dmesg | grep -i 'hibernat' | tail -n 2)"
	fi
}

case $ROLE in
suspend) if ours; then suspend_ours; else suspend_intree; fi ;;
hibernate) if ours; then hibernate_ours; else hibernate_intree; fi ;;
resume) resume_boot ;;
esac
guest_done
shutdown_now poweroff
