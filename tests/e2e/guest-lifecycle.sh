# shellcheck shell=sh
# SPDX-License-Identifier: GPL-2.0-only
# shellcheck disable=SC2154 # viommu_* come from the kernel command line
#
# The lifecycle boot (viommu_role=lifecycle), sourced by guest.sh: every way
# an endpoint leaves and comes back, with I/O running. The boot has a third
# disk, an NVMe controller ("LC") on a hot-pluggable PCIe root port at
# 00:07.0 whose backing file stays with QEMU (run.sh), so it can be unplugged
# (QMP device_del, asked of the host with host_qmp) and plugged again
# (device_add of the same controller on the same drive).
#
# Each case: fio writes and reads the LC disk; while it runs, the endpoint
# leaves (hot-unplug, sysfs remove, driver unbind, nvme module unload); then
# it comes back (device_add, rescan, bind, module load), must sit in an IOMMU
# group of the type the kernel chose for it at boot, and a crc32c fio verify
# of $LC_FSIZE must read back every byte. The deferred-* cases repeat that
# with UNMAPs held in the driver (the single flush queue and
# flush_timeout_ms=1000) and require pending_unmaps > 0 when the endpoint
# leaves and no failed request at all.
#
# With the in-tree driver (viommu_mod=intree) the same sequence runs and
# each outcome is a FIGURE line, never a result: these cases are not planned
# then, and the deferred ones do not apply (it has no deferral).
#   viommu_lc_cycles      hot-unplug / re-plug cycles (default 10)
#   viommu_lc_fio_size    size of each verify (default 4M)

LC_PORT=0000:00:07.0
LC_CYCLES=${viommu_lc_cycles:-10}
LC_FSIZE=${viommu_lc_fio_size:-4M}
LC_DEL='{"execute":"device_del","arguments":{"id":"lcnvme"}}'
LC_ADD='{"execute":"device_add","arguments":{"driver":"nvme","bus":"lcport","id":"lcnvme","drive":"lcdisk","serial":"viommu-lc"}}'
LC_ERRS="err_ioerr err_unsupp err_deverr err_inval err_range err_noent err_fault err_nomem err_nostatus err_timeout"
# Set once the in-tree driver lost the disk: later cases cannot run.
LC_BROKEN=
# (Variables are global in ash: names here avoid those of guest-lib.sh and
# guest.sh that these functions call, e.g. _l of _emit and _mname of
# modload; lc_case's attempt counter is _lc_try for that reason.)

now_s() { uptime_s; }
since() { echo "$(uptime_s) $1" | awk '{printf "%.1f", $1 - $2}'; }

# lc_bdf: the function behind the LC root port, if any.
lc_bdf() {
	for _p in "/sys/bus/pci/devices/$LC_PORT"/0000:*; do
		[ -e "$_p/class" ] && { basename "$_p"; return 0; }
	done
	return 1
}

# lc_wait_gone BDF SECONDS
lc_wait_gone() {
	_i=0
	while [ -e "/sys/bus/pci/devices/$1" ]; do
		[ "$_i" -ge "$(($2 * 10))" ] && return 1
		usleep 100000
		_i=$((_i + 1))
	done
}

# lc_wait_back SECONDS: wait for the LC function and its disk; sets LC, LCD.
lc_wait_back() {
	_i=0
	LC=''
	LCD=''
	while ! LC=$(lc_bdf); do
		[ "$_i" -ge "$(($1 * 10))" ] && return 1
		usleep 100000
		_i=$((_i + 1))
	done
	LCD=$(wait_blkdev "$LC" "$1")
}

# lc_ios DISK: completed reads + writes of the disk.
lc_ios() { awk '{print $1 + $5}' "/sys/block/$1/stat" 2>/dev/null || echo 0; }

# lc_load_start DISK [SECONDS]: fio writing and reading the disk in the
# background until it fails or SECONDS (60) pass; returns once I/O completes
# on the disk.
lc_load_start() {
	_ios0=$(lc_ios "$1")
	fio --name=load --filename="/dev/$1" --direct=1 --ioengine=libaio --iodepth=16 \
		--rw=randrw --bsrange=4k-64k --size=16M --time_based --runtime="${2:-60}" \
		--output-format=terse --terse-version=3 >/tmp/lc-load.out 2>/tmp/lc-load.err &
	LOAD_PID=$!
	_i=0
	while [ "$(lc_ios "$1")" -lt $((_ios0 + 32)) ] && [ $_i -lt 200 ]; do
		usleep 50000
		_i=$((_i + 1))
	done
}

# lc_load_end SECONDS: wait for the background fio (it ends with an error
# once its disk is gone); sets LOAD_DETAIL; returns 1 if it had to be killed.
lc_load_end() {
	_i=0
	while kill -0 "$LOAD_PID" 2>/dev/null && [ $_i -lt $(($1 * 10)) ]; do
		usleep 100000
		_i=$((_i + 1))
	done
	if kill -0 "$LOAD_PID" 2>/dev/null; then
		kill -9 "$LOAD_PID" 2>/dev/null
		wait "$LOAD_PID" 2>/dev/null
		LOAD_DETAIL="load fio still running ${1}s later (killed)"
		return 1
	fi
	wait "$LOAD_PID"
	_rc=$?
	_e=$(grep -m1 -i 'error' /tmp/lc-load.err | cut -c1-100)
	LOAD_DETAIL="load fio ended rc=$_rc (${_e:-no error reported})"
}

lc_errs() {
	_s=0
	for _c in $LC_ERRS; do _s=$((_s + $(cnt "$_c"))); done
	echo $_s
}

# lc_pending SECONDS: wait until the driver holds deferred UNMAPs; prints
# their number (0 if none within SECONDS).
lc_pending() {
	_i=0
	while [ $_i -lt $(($1 * 20)) ]; do
		_n=$(cnt pending_unmaps)
		[ "$_n" -gt 0 ] && { echo "$_n"; return 0; }
		usleep 50000
		_i=$((_i + 1))
	done
	echo 0
}

# lc_report CASE OK DETAIL: a result with our driver, a figure in-tree.
lc_report() {
	if ours && [ "$2" = 1 ]; then
		result "$1" PASS "$3"
	elif ours; then
		result "$1" FAIL "$3"
	elif [ "$2" = 1 ]; then
		figure "$1" "in-tree driver: came back and verified: $3"
	else
		figure "$1" "in-tree driver: did not come back whole: $3"
		LC_BROKEN=1
	fi
}

# lc_back_and_verify: after the endpoint came back (LC, LCD set): its group
# is of the type the kernel chose at boot, or of the type the group had when
# the endpoint left (LC_TYPE_LEFT), which a group that outlives its endpoint
# keeps: on QEMU's virt machine (arm64) the LC shares its group with its root
# port, so a type the test set stays (on q35 the LC has a group of its own).
# Then verify. Sets BV_DETAIL; returns 0 if all is well.
lc_back_and_verify() {
	_g=$(group_of "$LC")
	_t=$(group_type "$_g" 2>/dev/null)
	BV_DETAIL="back as $LC disk $LCD group $_g type $_t"
	[ -n "$LCD" ] || { BV_DETAIL="$BV_DETAIL; no disk"; return 1; }
	if [ -z "$_t" ] || { [ "$_t" != "$LC_TYPE0" ] && [ "$_t" != "$LC_TYPE_LEFT" ]; }; then
		BV_DETAIL="$BV_DETAIL (boot type $LC_TYPE0, type when it left $LC_TYPE_LEFT)"
		return 1
	fi
	[ "$_t" = "$LC_TYPE0" ] || BV_DETAIL="$BV_DETAIL (as when it left; boot type $LC_TYPE0)"
	if fio_verify "$LCD" "$LC_FSIZE"; then
		BV_DETAIL="$BV_DETAIL; verify $FIO_DETAIL"
	else
		BV_DETAIL="$BV_DETAIL; verify FAILED $FIO_DETAIL"
		return 1
	fi
}

# Ways to leave and come back. Each sets ACT_DETAIL and returns 0 if the
# endpoint left and came back (LC, LCD set).

leave_hotplug() {
	_b=$LC _t0=$(now_s)
	host_qmp 0 "$LC_DEL"
	if ! lc_wait_gone "$_b" 60; then
		ACT_DETAIL="device_del: $_b still present after 60 s"
		lc_load_end 10
		return 1
	fi
	_tg=$(since "$_t0")
	lc_load_end 60
	_lrc=$?
	_t1=$(now_s)
	# QEMU frees the ID once the guest has ejected the slot, just after the
	# function disappears here: ask a second later, and again if nothing
	# came (a refused duplicate changes nothing; see qmp.log).
	host_qmp 1 "$LC_ADD"
	if ! lc_wait_back 20; then
		host_qmp 0 "$LC_ADD"
		if ! lc_wait_back 40; then
			ACT_DETAIL="unplugged in ${_tg}s, $LOAD_DETAIL; device_add (twice): no function or disk after 60 s"
			return 1
		fi
	fi
	ACT_DETAIL="unplugged under I/O in ${_tg}s, $LOAD_DETAIL; re-plugged in $(since "$_t1")s"
	return $_lrc
}

leave_remove() {
	_b=$LC _t0=$(now_s)
	echo 1 >"/sys/bus/pci/devices/$_b/remove"
	if ! lc_wait_gone "$_b" 60; then
		ACT_DETAIL="sysfs remove: $_b still present after 60 s"
		lc_load_end 10
		return 1
	fi
	_tg=$(since "$_t0")
	lc_load_end 60
	_lrc=$?
	_t1=$(now_s)
	echo 1 >/sys/bus/pci/rescan
	if ! lc_wait_back 60; then
		ACT_DETAIL="removed in ${_tg}s, $LOAD_DETAIL; rescan: no function or disk after 60 s"
		return 1
	fi
	ACT_DETAIL="removed under I/O in ${_tg}s, $LOAD_DETAIL; rescanned in $(since "$_t1")s"
	return $_lrc
}

leave_unbind() {
	_b=$LC _t0=$(now_s)
	if ! echo "$_b" >/sys/bus/pci/drivers/nvme/unbind; then
		ACT_DETAIL="unbind refused"
		lc_load_end 10
		return 1
	fi
	_tg=$(since "$_t0")
	lc_load_end 60
	_lrc=$?
	_t1=$(now_s)
	if ! echo "$_b" >/sys/bus/pci/drivers/nvme/bind || ! lc_wait_back 60; then
		ACT_DETAIL="unbound in ${_tg}s, $LOAD_DETAIL; bind: no disk after 60 s"
		return 1
	fi
	ACT_DETAIL="unbound under I/O in ${_tg}s, $LOAD_DETAIL; bound again in $(since "$_t1")s"
	return $_lrc
}

# The nvme module cannot go while fio holds its disk open (an open namespace
# holds a reference on it; busybox rmmod does not wait: EAGAIN). The load
# here runs 3 s: rmmod is tried every 20 ms and goes through the moment fio
# closes the disk, with that I/O's UNMAPs just issued. LEAVE_PENDING: the
# driver's pending UNMAPs just before the rmmod that went through.
leave_module() {
	_t0=$(now_s)
	_try=0
	_o1=
	LEAVE_PENDING=0
	while :; do
		ours && LEAVE_PENDING=$(cnt pending_unmaps)
		_o=$(rmmod nvme 2>&1) && break
		[ -n "$_o1" ] || _o1=$_o
		_try=$((_try + 1))
		if [ $_try -ge 1500 ]; then
			ACT_DETAIL="rmmod nvme refused $_try times, still: $_o"
			lc_load_end 10
			return 1
		fi
		usleep 20000
	done
	_tg=$(since "$_t0")
	lc_load_end 60
	_lrc=$?
	_t1=$(now_s)
	if ! modload nvme || ! lc_wait_back 60; then
		ACT_DETAIL="nvme unloaded in ${_tg}s, $LOAD_DETAIL; reload: no LC disk after 60 s"
		return 1
	fi
	NDISK=$(wait_blkdev "$NVME" 30)
	ACT_DETAIL="rmmod nvme refused $_try times while fio ran (${_o1:-never refused}), went through ${_tg}s after the first try, $LOAD_DETAIL; reloaded in $(since "$_t1")s, first NVMe disk '$NDISK'"
	[ -n "$NDISK" ] || return 1
	return $_lrc
}

# lc_case CASE WAY [deferred]: one leave-and-come-back under fio.
lc_case() {
	_case=$1 _way=$2 _def=${3:-}
	if [ -n "$LC_BROKEN" ] || [ -z "$LCD" ]; then
		lc_report "$_case" 0 "not run: the LC disk was lost earlier"
		return
	fi
	# The rmmod goes through when fio closes the disk, a moment the test
	# does not choose: when no UNMAP was pending in the driver then, the
	# case did not test what it is for, and runs again (at most 3 times;
	# only after an attempt that passed otherwise: nothing is reset away).
	_again=""
	_lc_try=1
	while :; do
		ours && reset_counters
		if [ "$_way" = module ]; then
			lc_load_start "$LCD" 3
		else
			lc_load_start "$LCD"
		fi
		_pend=""
		LC_TYPE_LEFT=$(group_type "$(group_of "$LC" 2>/dev/null)" 2>/dev/null)
		if [ -n "$_def" ]; then
			_pend=$(lc_pending 10)
			_pend="; $_pend UNMAPs pending in the driver when the removal began"
		fi
		"leave_$_way"
		_ok=$?
		if [ -n "$_def" ] && [ "$_way" = module ]; then
			_pend="; $LEAVE_PENDING UNMAPs pending in the driver at the rmmod that went through$_again"
		fi
		_d="$ACT_DETAIL$_pend"
		if [ $_ok -eq 0 ] && lc_back_and_verify; then
			_d="$_d; $BV_DETAIL"
		else
			[ $_ok -eq 0 ] && _d="$_d; $BV_DETAIL"
			_ok=1
		fi
		if ! { [ $_ok -eq 0 ] && [ -n "$_def" ] && [ "$_way" = module ] &&
			[ "$LEAVE_PENDING" = 0 ] && [ "$_lc_try" -lt 3 ] && ours &&
			[ "$(lc_errs)" = 0 ]; }; then
			break
		fi
		_again="$_again (attempt $_lc_try: none pending, the case ran again)"
		_lc_try=$((_lc_try + 1))
	done
	if ours; then
		_e=$(lc_errs)
		_d="$_d; failed requests $_e ($(cnt_nonzero))"
		[ "$_e" = 0 ] || _ok=1
		case $_pend in "; 0 "*) _ok=1 ;; esac
	fi
	if [ "$_ok" -eq 0 ]; then
		lc_report "$_case" 1 "$_d"
	else
		lc_report "$_case" 0 "$_d"
	fi
}

lc_cases() {
	_cy=1
	while [ $_cy -le "$LC_CYCLES" ]; do
		lc_case "hotplug-$(printf %02d $_cy)" hotplug
		_cy=$((_cy + 1))
	done
	lc_case remove-rescan remove
	lc_case unbind-bind unbind
	if [ "$(grep -c '/nvme\.ko$' /lib/modules/deps/nvme 2>/dev/null)" = 1 ]; then
		lc_case module-reload module
	elif ours; then
		result module-reload SKIP "nvme is built into this kernel"
	else
		figure module-reload "not run: nvme is built into this kernel"
	fi
}

lc_deferred_cases() {
	if [ -n "$LC_BROKEN" ] || [ -z "$LCD" ]; then
		for _c in hotplug remove-rescan unbind-bind module-reload; do
			result "deferred-$_c" FAIL "not run: the LC disk was lost earlier"
		done
		return
	fi
	# The single flush queue (dma-iommu flushes once a second) and the
	# longest deferral: UNMAPs wait in the driver for up to a second.
	knob_set flush_timeout_ms 1000
	knob_set shadow_on_flush 1
	if ! set_group_type "$LC" DMA || ! set_group_type "$LC" DMA-FQ ||
		! LCD=$(wait_blkdev "$LC" 30); then
		for _c in hotplug remove-rescan unbind-bind module-reload; do
			result "deferred-$_c" FAIL "applying shadow_on_flush to $LC failed: $SGT_ERR"
		done
		return
	fi
	lc_case deferred-hotplug hotplug deferred
	lc_case deferred-remove-rescan remove deferred
	lc_case deferred-unbind-bind unbind deferred
	lc_case deferred-module-reload module deferred
	knob_set flush_timeout_ms 10
	knob_set shadow_on_flush 0
}

lifecycle_main() {
	_cases="lc-initial"
	_n=1
	while [ $_n -le "$LC_CYCLES" ]; do
		_cases="$_cases hotplug-$(printf %02d $_n)"
		_n=$((_n + 1))
	done
	_cases="$_cases remove-rescan unbind-bind module-reload"
	_cases="$_cases deferred-hotplug deferred-remove-rescan deferred-unbind-bind deferred-module-reload"
	if ours; then
		# shellcheck disable=SC2086
		plan "load-$TAG" $_cases "dmesg-clean-$ROLE-$TAG"
	else
		plan "load-$TAG"
	fi
	bring_up
	LC=$(lc_bdf)
	LCD=
	[ -n "$LC" ] && LCD=$(wait_blkdev "$LC" 30)
	LC_TYPE0=$(group_type "$(group_of "$LC" 2>/dev/null)" 2>/dev/null)
	_d="LC $LC disk '$LCD' group $(group_of "$LC") type '$LC_TYPE0'"
	if [ -n "$LCD" ] && [ -n "$LC_TYPE0" ] && fio_verify "$LCD" "$LC_FSIZE"; then
		lc_report lc-initial 1 "$_d; verify $FIO_DETAIL"
	else
		lc_report lc-initial 0 "$_d; verify ${FIO_DETAIL:-not run}"
	fi
	lc_cases
	if ours; then
		lc_deferred_cases
		case_dmesg
	else
		_bad=$(dmesg_bad)
		if [ -z "$_bad" ]; then
			figure "dmesg-clean-$ROLE-$TAG" "in-tree driver: kernel log clean after the lifecycle cases"
		else
			figure "dmesg-clean-$ROLE-$TAG" "in-tree driver: $(echo "$_bad" | head -n 3)"
			dmesg | sed 's/^/DMESG /' >"$VIOMMU_RESULTS_TTY"
		fi
	fi
}
