#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# shellcheck disable=SC2154 # viommu_* come from the kernel command line
#
# Guest side of the end-to-end suite (busybox ash, run by /init as /test.sh).
# Which boot this is comes from the kernel command line (see run.sh):
#   viommu_role      main | shutdown | unload | untrusted | lifecycle | tool |
#                    knobs (lifecycle: guest-lifecycle.sh, tool: guest-tool.sh)
#   viommu_order     before | after   (virtio_iommu loaded before or after
#                                      the nvme and virtio_blk drivers)
#   viommu_shutdown  poweroff | reboot (how this boot ends; the host times it)
#   viommu_mod       ours | intree    (intree: harness self-test with the
#                                      kernel's own driver; our-module cases
#                                      are then reported as SKIP)
#   viommu_version, viommu_srcversion  what the built .ko's modinfo says
#   viommu_expect_type                 expected default group type (DMA-FQ)
#   viommu_fio_size                    size of each verify run (e.g. 32M)
#   viommu_core61                      1: the kernel has the 6.1 iommu core
#                                      (src/core61.c): map_batching and
#                                      shadow_on_flush must stay 0 and
#                                      refuse 1, rmmod must be refused
. /lib/viommu/guest-lib.sh

ROLE=${viommu_role:-main}
ORDER=${viommu_order:-before}
SHUT=${viommu_shutdown:-poweroff}
MOD=${viommu_mod:-ours}
EXPECT_TYPE=${viommu_expect_type:-DMA-FQ}
FSIZE=${viommu_fio_size:-32M}
PARAMS=/sys/module/virtio_iommu/parameters
TAG=$ORDER
CORE61=${viommu_core61:-0}

ours() { [ "$MOD" = ours ]; }
core61() { [ "$CORE61" = 1 ]; }
# knob_forced KNOB: a knob that the 6.1 core keeps at 0.
knob_forced() {
	core61 && { [ "$1" = map_batching ] || [ "$1" = shadow_on_flush ]; }
}

# ---- bring-up -------------------------------------------------------------

load_endpoints() {
	modload nvme && modload virtio_blk
}

load_all() {
	# The virtio PCI transport, where it is a module (Debian's arm64 6.1):
	# first, in both orders, as udev loads it at boot. Its devices behind
	# the IOMMU wait (probe deferral) until virtio_iommu registers.
	if [ -f /lib/modules/deps/virtio_pci ]; then
		modload virtio_pci || return 1
	fi
	if [ "$ORDER" = before ]; then
		load_viommu "$MOD" && load_endpoints
	else
		load_endpoints && usleep 200000 && load_viommu "$MOD"
	fi
}

# bring_up: load the modules in the boot's order, at most 90 s; a load that
# hangs is reported with the kernel's view of blocked and running tasks.
bring_up() {
	_t0=$(uptime_s)
	load_all &
	_lp=$!
	_i=0
	while kill -0 $_lp 2>/dev/null && [ $_i -lt 900 ]; do
		usleep 100000
		_i=$((_i + 1))
	done
	if kill -0 $_lp 2>/dev/null; then
		info "module loading still running after 90 s: dumping blocked tasks and CPUs (console)"
		echo 1 >/proc/sys/kernel/sysrq
		echo w >/proc/sysrq-trigger
		echo l >/proc/sysrq-trigger
		for _k in /proc/[0-9]*; do
			case $(cat "$_k/comm" 2>/dev/null) in
			kworker* | insmod | nvme*)
				if [ -s "$_k/stack" ] && ! grep -q 'worker_thread' "$_k/stack"; then
					info "stack of $(basename "$_k") $(cat "$_k/comm"): $(tr '\n' ' ' <"$_k/stack")"
				fi ;;
			esac
		done
		_rc=124
	else
		wait $_lp
		_rc=$?
	fi
	NVME=$(nvme_bdf)
	VBLK=$(vblk_bdf)
	NDISK=$(wait_blkdev "$NVME" 30)
	VDISK=$(wait_blkdev "$VBLK" 30)
	info "loaded ($ORDER, $MOD) rc=$_rc in $(echo "$(uptime_s) $_t0" | awk '{printf "%.2f", $1-$2}')s: nvme $NVME=$NDISK virtio-blk $VBLK=$VDISK"
	if [ $_rc -eq 0 ] && [ -n "$NDISK" ] && [ -n "$VDISK" ]; then
		result "load-$TAG" PASS "modules loaded, disks $NDISK $VDISK present"
	else
		result "load-$TAG" FAIL "rc=$_rc nvme disk '${NDISK}' virtio-blk disk '${VDISK}'; $(dmesg | tail -n 5)"
	fi
}

case_module_ours() {
	_v=$(cat /sys/module/virtio_iommu/version 2>/dev/null)
	_s=$(cat /sys/module/virtio_iommu/srcversion 2>/dev/null)
	if ! ours; then
		result module-ours SKIP "in-tree run: virtio_iommu version='${_v}' srcversion=$_s"
		return
	fi
	if [ "$_v" = "$viommu_version" ] && [ -n "$_s" ] && [ "$_s" = "$viommu_srcversion" ]; then
		result module-ours PASS "version $_v srcversion $_s match the built .ko"
	else
		result module-ours FAIL "guest version='$_v' srcversion='$_s', built .ko version='$viommu_version' srcversion='$viommu_srcversion'"
	fi
}

# groups-TAG: both endpoints in an IOMMU group of the expected type, and
# each group holds only that endpoint's function(s).
case_groups() {
	_d=""
	_ok=1
	for _b in "$NVME" "$VBLK"; do
		_g=$(group_of "$_b") || { _ok=0; _d="$_d $_b: no iommu group;"; continue; }
		_t=$(group_type "$_g")
		_d="$_d $_b: group $_g type $_t;"
		[ "$_t" = "$EXPECT_TYPE" ] || _ok=0
	done
	[ "$(group_of "$NVME")" != "$(group_of "$VBLK")" ] || { _ok=0; _d="$_d same group;"; }
	if [ $_ok = 1 ]; then
		result "groups-$TAG" PASS "expected $EXPECT_TYPE:$_d"
	else
		result "groups-$TAG" FAIL "expected $EXPECT_TYPE:$_d"
	fi
}

# fio_case CASE DISK SIZE [FIO ARGS]: one verify run as one case.
fio_case() {
	_c=$1 _dk=$2 _sz=$3
	shift 3
	if [ -z "$_dk" ] || [ ! -b "/dev/$_dk" ]; then
		result "$_c" FAIL "no block device '$_dk'"
		return 1
	fi
	if fio_verify "$_dk" "$_sz" "$@"; then
		result "$_c" PASS "$_dk: $FIO_DETAIL"
	else
		result "$_c" FAIL "$_dk: $FIO_DETAIL"
		return 1
	fi
}

# switch_mode MODE: change both endpoints' groups at runtime, then verify.
mode_name() { echo "$1" | tr '[:upper:]' '[:lower:]'; }
switch_and_verify() {
	_mode=$1 _suffix=${2:-}
	_m=$(mode_name "$_mode")$_suffix
	for _b in "$NVME" "$VBLK"; do
		_n=nvme
		[ "$_b" = "$VBLK" ] && _n=vblk
		if set_group_type "$_b" "$_mode"; then
			_t=$(group_type "$(group_of "$_b")")
			_dk=$(wait_blkdev "$_b" 30)
			if [ "$_t" = "$_mode" ] && [ -n "$_dk" ]; then
				result "switch-$_m-$_n" PASS "group $(group_of "$_b") now $_t, disk $_dk back"
			else
				result "switch-$_m-$_n" FAIL "group type '$_t' (wanted $_mode), disk '$_dk'"
			fi
		else
			result "switch-$_m-$_n" FAIL "$SGT_ERR"
		fi
		[ "$_b" = "$NVME" ] && NDISK=$(blkdev_of "$NVME")
		[ "$_b" = "$VBLK" ] && VDISK=$(blkdev_of "$VBLK")
	done
	fio_case "fio-$_m-nvme" "$NDISK" "$FSIZE"
	fio_case "fio-$_m-vblk" "$VDISK" "$FSIZE"
}

case_dmesg() {
	_bad=$(dmesg_bad)
	if [ -z "$_bad" ]; then
		result "dmesg-clean-$ROLE-$TAG" PASS "no WARN/BUG/Oops/Unknown symbol"
	else
		result "dmesg-clean-$ROLE-$TAG" FAIL "$(echo "$_bad" | head -n 5)"
		dmesg | sed 's/^/DMESG /' >"$VIOMMU_RESULTS_TTY"
	fi
}

# ---- knobs ----------------------------------------------------------------

KNOBS="shadow_on_flush flush_timeout_ms map_batching"
COUNTERS="req_attach req_detach req_map req_unmap req_probe kicks sync_waits sync_wait_ns
flushes deferred_timer deferred_full deferred_flush deferred_map_sync max_batch queue_full
err_ioerr err_unsupp err_deverr err_inval err_range err_noent err_fault err_nomem
err_nostatus err_timeout faults pending_unmaps oldest_pending_unmap_us merged_maps merged_unmaps
deferred_sync device_broken"

knob_default() {
	case $1 in
	shadow_on_flush) echo 0 ;;
	flush_timeout_ms) echo 10 ;;
	map_batching) if core61; then echo 0; else echo 1; fi ;;
	esac
}
knob_valid() {
	case $1 in
	flush_timeout_ms) echo "0 1000 1 10" ;;
	*) echo "1 0" ;;
	esac
}
knob_max() { [ "$1" = flush_timeout_ms ] && echo 1000 || echo 1; }

# The bad inputs, as tokens: EMPTY (a lone newline), LONG (5000 digits),
# PADDED (a valid value behind 100 zeros: oversized input).
knob_bad() {
	if [ "$1" = flush_timeout_ms ]; then
		echo "1001 -1 abc 10abc 4294967296 0x10 EMPTY LONG PADDED"
	else
		echo "2 -1 10 abc 1x 0x1 EMPTY LONG PADDED"
	fi
}

# write_token FILE TOKEN: write the bad input TOKEN stands for.
write_token() {
	case $2 in
	EMPTY) sysfs_write_nl "$1" "" ;;
	LONG) sysfs_write "$1" "$(printf '%05000d' 0 | tr 0 1)" ;;
	PADDED) sysfs_write "$1" "$(printf '%0100d' 1)" ;;
	*) sysfs_write "$1" "$2" ;;
	esac
}

case_knobs_present() {
	_f=""
	for _k in $KNOBS; do
		for _dir in "$PARAMS" "$(fqdir)"; do
			_v=$(cat "$_dir/$_k" 2>/dev/null) || { _f="$_f $_dir/$_k unreadable;"; continue; }
			[ "$_v" = "$(knob_default "$_k")" ] || _f="$_f $_dir/$_k=$_v (default $(knob_default "$_k"));"
		done
	done
	if [ -z "$_f" ]; then
		result knobs-defaults PASS "3 knobs readable in parameters/ and $(fqdir), defaults $(knob_default shadow_on_flush)/$(knob_default flush_timeout_ms)/$(knob_default map_batching)"
	else
		result knobs-defaults FAIL "$_f"
	fi
	_f=""
	for _c in $COUNTERS; do
		_v=$(cat "$(fqdir)/$_c" 2>/dev/null) || { _f="$_f $_c missing;"; continue; }
		case $_v in '' | *[!0-9]*) _f="$_f $_c='$_v' not a number;" ;; esac
	done
	[ -e "$(fqdir)/reset_counters" ] || _f="$_f reset_counters missing;"
	if [ -z "$_f" ]; then
		result counters-present PASS "$(echo "$COUNTERS" | wc -w) counters, all numeric, reset_counters present"
	else
		result counters-present FAIL "$_f"
	fi
}

# knob_rw LOCATION DIR: every knob written with valid values (read back) and
# every bad input rejected with EINVAL, value unchanged.
knob_rw() {
	_loc=$1 _dir=$2
	for _k in $KNOBS; do
		_f="" _n=0
		_orig=$(cat "$_dir/$_k")
		if knob_forced "$_k"; then
			knob_forced_rw "$_loc" "$_dir" "$_k"
			continue
		fi
		for _v in $(knob_valid "$_k"); do
			sysfs_write "$_dir/$_k" "$_v" || _f="$_f write $_v failed ($SYSFS_ERR);"
			[ "$(cat "$_dir/$_k")" = "$_v" ] || _f="$_f wrote $_v read $(cat "$_dir/$_k");"
			_n=$((_n + 1))
		done
		# With a trailing newline, as echo writes it.
		sysfs_write_nl "$_dir/$_k" "$(knob_max "$_k")" || _f="$_f echo max failed ($SYSFS_ERR);"
		[ "$(cat "$_dir/$_k")" = "$(knob_max "$_k")" ] || _f="$_f echo max not read back;"
		if [ -z "$_f" ]; then
			result "knob-write-$_loc-$_k" PASS "$_n values and echo $(knob_max "$_k") written and read back"
		else
			result "knob-write-$_loc-$_k" FAIL "$_f"
		fi
		_f="" _n=0
		for _bad in $(knob_bad "$_k"); do
			# Start from a value that is not the default, so "unchanged"
			# cannot pass by accident of a reset.
			_before=$(cat "$_dir/$_k")
			if write_token "$_dir/$_k" "$_bad"; then
				_f="$_f '$_bad' accepted;"
			else
				case $SYSFS_ERR in
				*"Invalid argument"*) ;;
				*) _f="$_f '$_bad' error '$SYSFS_ERR' (want EINVAL);" ;;
				esac
			fi
			_after=$(cat "$_dir/$_k")
			[ "$_after" = "$_before" ] || _f="$_f '$_bad' changed $_before->$_after;"
			_n=$((_n + 1))
		done
		if [ -z "$_f" ]; then
			result "knob-reject-$_loc-$_k" PASS "$_n bad inputs ($(knob_bad "$_k")): EINVAL, value $_before kept"
		else
			result "knob-reject-$_loc-$_k" FAIL "$_f"
		fi
		sysfs_write "$_dir/$_k" "$_orig"
	done
}

# knob_forced_rw LOCATION DIR KNOB: on the 6.1 core the knob reads 0,
# writing 1 (plain and as echo writes it) fails with EOPNOTSUPP and leaves
# 0, writing 0 is accepted; malformed input is still EINVAL.
knob_forced_rw() {
	_f=""
	[ "$(cat "$2/$3")" = 0 ] || _f="$_f reads $(cat "$2/$3");"
	for _w in plain nl; do
		if [ $_w = plain ]; then sysfs_write "$2/$3" 1; else sysfs_write_nl "$2/$3" 1; fi && _f="$_f '1' ($_w) accepted;"
		case $SYSFS_ERR in
		*"not supported"*) ;;
		*) _f="$_f '1' ($_w) error '$SYSFS_ERR' (want EOPNOTSUPP);" ;;
		esac
		[ "$(cat "$2/$3")" = 0 ] || _f="$_f now $(cat "$2/$3");"
	done
	sysfs_write "$2/$3" 0 || _f="$_f writing 0 failed ($SYSFS_ERR);"
	sysfs_write "$2/$3" abc && _f="$_f 'abc' accepted;"
	case $SYSFS_ERR in *"Invalid argument"*) ;; *) _f="$_f 'abc' error '$SYSFS_ERR';" ;; esac
	_msg=$(dmesg | grep -c "$3=1 refused")
	[ "$_msg" -gt 0 ] || _f="$_f no 'refused' message in dmesg;"
	if [ -z "$_f" ]; then
		result "knob-forced-$1-$3" PASS "reads 0; 1 refused (Operation not supported, $_msg kernel messages), 0 accepted, abc EINVAL"
	else
		result "knob-forced-$1-$3" FAIL "$_f"
	fi
}

# A buffer file whose pages are physically scattered: its pages were
# allocated alternately with those of a second file, so no two consecutive
# pages of it are adjacent. fio maps it (--iomem=mmap:FILE) and every I/O
# then spans several physically discontiguous pieces, i.e. several MAPs per
# mapping call: the case where batching MAPs can show.
make_fragmented_buffer() {
	rm -f /tmp/fragbuf /tmp/fragbuf.keep /tmp/fragpad
	# THP faults and proactive compaction move pages: off while the buffer
	# is in use. Its pages were still found contiguous in some runs on
	# arm64 (1.0 MAPs per 64 KiB I/O in one run, 15.7 in the next on the
	# same buffer); batch_run checks every run and makes the buffer again.
	echo never >/sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null
	echo 0 >/proc/sys/vm/compaction_proactiveness 2>/dev/null
	# One CPU, so both files draw from the same per-CPU page list.
	# shellcheck disable=SC2016 # expanded by the inner shell
	taskset 1 sh -c '
		n=$1 i=0
		while [ $i -lt "$n" ]; do
			dd if=/dev/zero of=/tmp/fragbuf.keep bs=4096 count=1 seek=$i conv=notrunc 2>/dev/null
			dd if=/dev/zero of=/tmp/fragpad bs=4096 count=1 seek=$i conv=notrunc 2>/dev/null
			i=$((i + 1))
		done' sh "$1"
}

# fio unlinks its --iomem=mmap file when done: give it a second name of the
# same pages before every run, so every run uses the very same buffer.
link_fragmented_buffer() {
	rm -f /tmp/fragbuf
	ln /tmp/fragbuf.keep /tmp/fragbuf
}

# run_counted NAME FIO-ARGS...: reset counters, run one fio job on the NVMe
# disk, print "ios kicks req_map req_unmap sync_waits flushes
# deferred_timer deferred_map_sync runtime_ms" (runtime from fio; flushes
# counts flush_iotlb_all calls).
run_counted() {
	_name=$1
	shift
	reset_counters
	fio --name="$_name" --filename="/dev/$NDISK" --direct=1 --ioengine=libaio \
		--output-format=terse --terse-version=3 "$@" >/tmp/fio.out 2>/tmp/fio.err || return 1
	_line=$(grep '^3;' /tmp/fio.out | tail -n1)
	# terse v3: read ios are not printed, so count from bytes and bs.
	_rkb=$(echo "$_line" | cut -d';' -f6)
	_rt=$(echo "$_line" | cut -d';' -f9)
	echo "$_rkb $(cnt kicks) $(cnt req_map) $(cnt req_unmap) $(cnt sync_waits) $(cnt flushes) $(cnt deferred_timer) $(cnt deferred_map_sync) $_rt"
}

# cnt_nonzero: "name=value" for every non-zero counter (for the log).
cnt_nonzero() {
	for _c in $COUNTERS; do
		_v=$(cnt "$_c")
		[ "$_v" = 0 ] || printf '%s=%s ' "$_c" "$_v"
	done
}

ratio() { echo "$1 $2" | awk '{ if ($2 > 0) printf "%.3f", $1 / $2; else print "nan" }'; }

# batch_run N: one fio run with map_batching=N on the fragmented buffer;
# prints run_counted's figures. A run that got fewer than 1.5 MAPs per I/O
# found its buffer contiguous after all (the kernel may have moved its
# pages): the buffer is made again and the run repeated, at most 3 times.
batch_run() {
	knob_set map_batching "$1" >&2
	_try=1
	while :; do
		link_fragmented_buffer
		# shellcheck disable=SC2086
		_r=$(run_counted "batch$1" $_job) || return 1
		# shellcheck disable=SC2086 # word splitting wanted
		set -- "$1" $_r
		awk -v k="$2" -v m="$4" 'BEGIN { exit !(k > 0 && m / (k / 64) >= 1.5) }' && break
		[ $_try -lt 3 ] || break
		info "map_batching=$1: $4 MAPs for $(($2 / 64)) I/Os, the buffer was not fragmented: made again" >&2
		make_fragmented_buffer 66 >&2
		_try=$((_try + 1))
	done
	echo "$_r"
}

case_batching() {
	# 64 KiB reads, 4 in flight: a 65-page buffer (+1 for fio's alignment).
	make_fragmented_buffer 66
	_job="--rw=read --bs=64k --iodepth=4 --size=32M --iomem=mmap:/tmp/fragbuf"
	_r0=$(batch_run 0) || { result map-batching-kicks FAIL "fio failed: $(head -n3 /tmp/fio.err)"; return; }
	_r1=$(batch_run 1) || { result map-batching-kicks FAIL "fio failed: $(head -n3 /tmp/fio.err)"; return; }
	# shellcheck disable=SC2086 # word splitting wanted
	set -- $_r0
	_ios0=$(($1 / 64)) _k0=$2 _m0=$3
	# shellcheck disable=SC2086
	set -- $_r1
	_ios1=$(($1 / 64)) _k1=$2 _m1=$3
	_kpio0=$(ratio "$_k0" "$_ios0") _kpio1=$(ratio "$_k1" "$_ios1")
	_mpio0=$(ratio "$_m0" "$_ios0") _mpio1=$(ratio "$_m1" "$_ios1")
	metric map_batching0_kicks_per_io "$_kpio0"
	metric map_batching1_kicks_per_io "$_kpio1"
	metric map_batching0_maps_per_io "$_mpio0"
	metric map_batching1_maps_per_io "$_mpio1"
	_kpm0=$(ratio "$_k0" "$_m0") _kpm1=$(ratio "$_k1" "$_m1")
	metric map_batching0_kicks_per_map "$_kpm0"
	metric map_batching1_kicks_per_map "$_kpm1"
	_d="map_batching=0: $_kpio0 kicks/IO, $_mpio0 MAPs/IO, $_kpm0 kicks/MAP; map_batching=1: $_kpio1 kicks/IO, $_mpio1 MAPs/IO, $_kpm1 kicks/MAP ($_ios0/$_ios1 I/Os)"
	if [ "$_ios0" -eq 0 ] || [ "$_ios1" -eq 0 ]; then
		result map-batching-kicks FAIL "no I/O counted: $_d"
	elif ! awk -v a="$_mpio0" -v b="$_mpio1" 'BEGIN { exit !(a >= 1.5 && b >= 1.5) }'; then
		# One MAP per I/O cannot show batching: the buffer was not
		# fragmented as intended. A harness problem, reported as such.
		result map-batching-kicks FAIL "workload did not give several MAPs per I/O in both runs: $_d"
	elif awk -v a="$_kpio1" -v b="$_kpio0" -v c="$_kpm1" -v d="$_kpm0" 'BEGIN { exit !(a < b && c < d) }'; then
		result map-batching-kicks PASS "$_d"
	else
		result map-batching-kicks FAIL "$_d"
	fi
}

# Apply the instance's shadow_on_flush to the NVMe endpoint the documented
# way (unbind, group type, rebind), via DMA so a new DMA-FQ domain is made.
apply_sof() {
	knob_set shadow_on_flush "$1" || return 1
	set_group_type "$NVME" DMA || return 1
	set_group_type "$NVME" DMA-FQ || return 1
	NDISK=$(wait_blkdev "$NVME" 30)
	[ -n "$NDISK" ]
}

case_shadow_on_flush() {
	_job="--rw=randread --bs=4k --iodepth=16 --size=16M"
	knob_set flush_timeout_ms 1000
	_res=""
	for _s in 0 1; do
		if ! apply_sof $_s; then
			result shadow-on-flush FAIL "applying shadow_on_flush=$_s failed: $SGT_ERR $SYSFS_ERR"
			knob_set flush_timeout_ms 10
			return
		fi
		# shellcheck disable=SC2086
		_r=$(run_counted sof$_s $_job) || { result shadow-on-flush FAIL "fio failed"; return; }
		# shellcheck disable=SC2086
		set -- $_r
		_ios=$(($1 / 4))
		_res="$_res $_s:$_ios:$5:$6:$7:$8:$9"
		metric "sof${_s}_flushes_per_s" "$(ratio "$6" "$(ratio "$9" 1000)")"
		metric "sof${_s}_sync_waits_per_io" "$(ratio "$5" "$_ios")"
		info "shadow_on_flush=$_s: ios=$_ios sync_waits=$5 flushes=$6 deferred_timer=$7 deferred_map_sync=$8 runtime=${9}ms"
	done
	knob_set flush_timeout_ms 10
	# Judge flush_iotlb_all calls per second of I/O.
	# shellcheck disable=SC2046
	set -- $(echo "$_res" | tr ':' ' ')
	_f0=$(ratio "$4" "$(ratio "$7" 1000)") _f1=$(ratio "${11}" "$(ratio "${14}" 1000)")
	_i0=$(ratio "$4" "$2") _i1=$(ratio "${11}" "$9")
	_d="flush_iotlb_all calls per second: mq $_f0, sq $_f1 (per I/O: $_i0, $_i1; flush_timeout_ms 1000; sof:ios:sync_waits:flushes:deferred_timer:deferred_map_sync:runtime_ms =$_res)"
	if awk -v a="$_f1" -v b="$_f0" 'BEGIN { exit !(b > 0 && a < b / 2) }'; then
		result shadow-on-flush PASS "$_d"
	else
		result shadow-on-flush FAIL "$_d"
	fi
}

# With the single flush queue (dma-iommu flushes only every second), UNMAPs
# may wait in the driver until its own timeout. While a burst of I/O runs and
# for 300 ms after it, sample the number of pending UNMAPs and the age of the
# oldest: that age must never exceed flush_timeout_ms (plus TCG slack), and
# nothing may be pending at the end. The same with the longest timeout is
# the control: it shows whether UNMAPs do wait longer when not bounded.
# watch_pending: sets W_MAXAGE (us) W_MAXN W_FINAL W_SAMPLES.
watch_pending() {
	W_MAXAGE=0 W_MAXN=0 W_SAMPLES=0
	fio --name=burst --filename="/dev/$NDISK" --direct=1 --ioengine=libaio \
		--rw=randread --bs=4k --iodepth=8 --size=4M --output-format=terse >/dev/null 2>&1 &
	_pid=$!
	_end=""
	while :; do
		_n=$(cnt pending_unmaps)
		_a=$(cnt oldest_pending_unmap_us)
		W_SAMPLES=$((W_SAMPLES + 1))
		[ "$_n" -gt "$W_MAXN" ] && W_MAXN=$_n
		[ "$_a" -gt "$W_MAXAGE" ] && W_MAXAGE=$_a
		if [ -z "$_end" ]; then
			kill -0 $_pid 2>/dev/null || _end=$(uptime_s)
		elif awk -v n="$(uptime_s)" -v e="$_end" 'BEGIN { exit !(n - e >= 0.3) }'; then
			break
		fi
	done
	wait $_pid
	W_FINAL=$(cnt pending_unmaps)
}
case_timeout_bound() {
	if ! apply_sof 1; then
		result flush-timeout-bound FAIL "applying shadow_on_flush=1 failed: $SGT_ERR $SYSFS_ERR"
		return
	fi
	knob_set flush_timeout_ms 1000
	reset_counters
	watch_pending
	_ctl="control 1000 ms: max $W_MAXN pending, oldest $((W_MAXAGE / 1000)) ms, $W_FINAL pending 300 ms after ($W_SAMPLES samples; $(cnt_nonzero))"
	usleep 1200000
	knob_set flush_timeout_ms 50
	reset_counters
	watch_pending
	_d="flush_timeout_ms=50: max $W_MAXN pending, oldest $((W_MAXAGE / 1000)) ms, $W_FINAL pending 300 ms after ($W_SAMPLES samples; $(cnt_nonzero)); $_ctl"
	metric timeout50_max_age_ms $((W_MAXAGE / 1000))
	# 50 ms, plus 100 ms for timer slack and a stalled vCPU under TCG.
	if [ "$W_FINAL" = 0 ] && [ "$W_MAXAGE" -le 150000 ]; then
		result flush-timeout-bound PASS "$_d"
	else
		result flush-timeout-bound FAIL "$_d"
	fi
	knob_set flush_timeout_ms 10
	apply_sof 0 || info "restoring shadow_on_flush=0 failed: $SGT_ERR"
}

case_reset_counters() {
	_k=$(cnt kicks) _m=$(cnt req_map)
	reset_counters
	_k2=$(cnt kicks) _m2=$(cnt req_map) _mb=$(cnt max_batch)
	if [ "$_k" -gt 0 ] && [ "$_m" -gt 0 ] && [ "$_k2" -eq 0 ] && [ "$_m2" -eq 0 ] && [ "$_mb" -eq 0 ]; then
		result reset-counters PASS "kicks $_k->$_k2, req_map $_m->$_m2, max_batch -> $_mb"
	else
		result reset-counters FAIL "kicks $_k->$_k2, req_map $_m->$_m2, max_batch -> $_mb"
	fi
}

# fio verify on both disks while every knob is flipped as fast as the shell
# can; nothing may be lost.
case_knobs_under_io() {
	fio --name=nv --filename="/dev/$NDISK" --direct=1 --ioengine=libaio --iodepth=16 \
		--rw=randwrite --bsrange=4k-128k --size="$FSIZE" --verify=crc32c --do_verify=1 \
		--verify_fatal=1 --output-format=terse --terse-version=3 >/tmp/fio-n.out 2>/tmp/fio-n.err &
	_pn=$!
	fio --name=vb --filename="/dev/$VDISK" --direct=1 --ioengine=libaio --iodepth=16 \
		--rw=randwrite --bsrange=4k-128k --size="$FSIZE" --verify=crc32c --do_verify=1 \
		--verify_fatal=1 --output-format=terse --terse-version=3 >/tmp/fio-v.out 2>/tmp/fio-v.err &
	_pv=$!
	_n=0
	while kill -0 $_pn 2>/dev/null || kill -0 $_pv 2>/dev/null; do
		for _v in 0 1 10 1000 5; do knob_set flush_timeout_ms $_v; done
		knob_set map_batching $((_n % 2))
		knob_set shadow_on_flush $((_n % 2))
		sysfs_write "$PARAMS/map_batching" $((_n % 2))
		reset_counters
		_n=$((_n + 1))
	done
	wait $_pn
	_rn=$?
	wait $_pv
	_rv=$?
	knob_set flush_timeout_ms 10
	knob_set map_batching 1
	knob_set shadow_on_flush 0
	sysfs_write "$PARAMS/map_batching" 1
	cp /tmp/fio-n.out /tmp/fio.out
	cp /tmp/fio-n.err /tmp/fio.err
	fio_parse $_rn "$FSIZE"
	_okn=$? _dn=$FIO_DETAIL
	cp /tmp/fio-v.out /tmp/fio.out
	cp /tmp/fio-v.err /tmp/fio.err
	fio_parse $_rv "$FSIZE"
	_okv=$? _dv=$FIO_DETAIL
	_d="$_n rounds of knob writes; nvme $_dn; virtio-blk $_dv"
	if [ $_okn -eq 0 ] && [ $_okv -eq 0 ] && [ $_n -gt 0 ]; then
		result knobs-under-io PASS "$_d"
	else
		result knobs-under-io FAIL "$_d"
	fi
}

knob_cases() {
	if ! ours; then
		for _c in knobs-defaults counters-present knob-rw reset-counters map-batching-kicks \
			shadow-on-flush flush-timeout-bound knobs-under-io; do
			result "$_c" SKIP "in-tree run: no virtio-iommu-fq knobs"
		done
		return
	fi
	if ! viommu_inst >/dev/null; then
		result knobs-defaults FAIL "no /sys/class/iommu/*/virtio-iommu-fq: $(ls /sys/class/iommu)"
		return
	fi
	info "instance $(viommu_inst)"
	case_knobs_present
	knob_rw param "$PARAMS"
	knob_rw inst "$(fqdir)"
	case_reset_counters
	if core61; then
		result map-batching-kicks SKIP "6.1 iommu core: map_batching is forced to 0 (iotlb_sync_map cannot report a failed MAP)"
		result shadow-on-flush SKIP "6.1 iommu core: dma-iommu has no single flush queue, shadow_on_flush is forced to 0"
		result flush-timeout-bound SKIP "6.1 iommu core: the case needs shadow_on_flush=1 (UNMAPs left to the driver's timeout)"
	else
		case_batching
		case_shadow_on_flush
		case_timeout_bound
	fi
	case_knobs_under_io
}

# ---- unload ---------------------------------------------------------------

case_unload() {
	_out=$(rmmod virtio_iommu 2>&1)
	_rc=$?
	if core61; then
		# Pinned: the 6.1 core keeps the buses' iommu_ops after unregister.
		_ref=$(cat /sys/module/virtio_iommu/refcnt 2>/dev/null)
		if [ $_rc -ne 0 ] && mod_loaded virtio_iommu && [ "${_ref:-0}" -gt 0 ] &&
			dmesg | grep -q 'module pinned' && fio_verify "$NDISK" 8M; then
			result "unload-attached" PASS "6.1 core: rmmod refused ($_out), refcnt $_ref, 'module pinned' logged, I/O still verified: $FIO_DETAIL"
		else
			result "unload-attached" FAIL "6.1 core: rmmod rc=$_rc ($_out), loaded=$(mod_loaded virtio_iommu && echo y || echo n), refcnt '$_ref', pinned message $(dmesg | grep -c 'module pinned'), $FIO_DETAIL"
		fi
		return
	fi
	if [ $_rc -ne 0 ]; then
		# Refused: the module must still be there and still carry I/O.
		if mod_loaded virtio_iommu && fio_verify "$NDISK" 8M; then
			result "unload-attached" PASS "rmmod refused ($_out); module stays, I/O still verified: $FIO_DETAIL"
		else
			result "unload-attached" FAIL "rmmod refused ($_out) but afterwards: loaded=$(mod_loaded virtio_iommu && echo y || echo n) $FIO_DETAIL"
		fi
	else
		# Accepted: it must have gone cleanly (no WARN/BUG) and the guest
		# must live on.
		_bad=$(dmesg_bad)
		if [ -z "$_bad" ] && ! mod_loaded virtio_iommu; then
			result "unload-attached" PASS "rmmod succeeded cleanly; groups now: $(find /sys/kernel/iommu_groups -mindepth 1 -maxdepth 1 | wc -l)"
		else
			result "unload-attached" FAIL "rmmod succeeded but: $(echo "$_bad" | head -n3)"
		fi
	fi
}

# ---- trust policy ---------------------------------------------------------

# The boot has a second NVMe controller behind a PCIe root port that an SSDT
# marks external-facing (run.sh): the kernel marks that controller untrusted
# (and removable). It must never get lazy (DMA-FQ) flushing: not by default,
# not when asked for through the group type, and its I/O must produce no
# deferred UNMAP at all.
ext_nvme_bdf() {
	for _p in /sys/bus/pci/devices/*; do
		[ "$(cat "$_p/class")" = 0x010802 ] || continue
		case $(basename "$_p") in 0000:00:*) continue ;; esac
		basename "$_p"
		return 0
	done
	return 1
}

case_untrusted() {
	_e=$(ext_nvme_bdf) || { result untrusted-marked FAIL "no NVMe behind the root port: $(ls /sys/bus/pci/devices)"; return; }
	_ed=$(wait_blkdev "$_e" 30)
	_rm=$(cat "/sys/bus/pci/devices/$_e/removable" 2>/dev/null)
	if [ "$_rm" != removable ]; then
		result untrusted-marked FAIL "$_e removable='$_rm': the external-facing marking did not take ($(dmesg | grep -i -m2 'table upgrade\|SSDT'))"
		for _c in untrusted-default-type untrusted-refuses-lazy untrusted-no-deferral; do
			result "$_c" SKIP "device not marked untrusted"
		done
		return
	fi
	result untrusted-marked PASS "$_e (disk $_ed) behind an external-facing root port: removable=$_rm"
	_g=$(group_of "$_e")
	_t=$(group_type "$_g")
	if [ "$_t" != DMA-FQ ] && [ "$_t" != identity ] && [ -n "$_t" ]; then
		result untrusted-default-type PASS "group $_g type $_t (trusted NVMe: $(group_type "$(group_of "$NVME")"))"
	else
		result untrusted-default-type FAIL "group $_g type '$_t'"
	fi
	set_group_type "$_e" DMA-FQ
	_rc=$?
	_t2=$(group_type "$_g")
	_ed=$(wait_blkdev "$_e" 30)
	if [ "$_t2" != DMA-FQ ]; then
		result untrusted-refuses-lazy PASS "writing DMA-FQ: rc=$_rc ($SGT_ERR), type stays $_t2"
	else
		# The core accepted the type: the driver must still not defer.
		result untrusted-refuses-lazy SKIP "the kernel accepted DMA-FQ for the untrusted group (type $_t2); see untrusted-no-deferral"
	fi
	reset_counters
	fio --name=ut --filename="/dev/$_ed" --direct=1 --ioengine=libaio --rw=randread \
		--bs=4k --iodepth=16 --size=8M --output-format=terse >/dev/null 2>&1
	_frc=$?
	usleep 100000
	_def=$(cnt_deferred)
	_d="fio rc=$_frc on $_ed (type $(group_type "$_g")): req_unmap=$(cnt req_unmap) deferred submissions=$_def pending=$(cnt pending_unmaps)"
	if [ $_frc -eq 0 ] && [ "$(cnt req_unmap)" -gt 0 ] && [ "$_def" -eq 0 ] && [ "$(cnt pending_unmaps)" = 0 ]; then
		result untrusted-no-deferral PASS "$_d"
	else
		result untrusted-no-deferral FAIL "$_d"
	fi
}

# ---- main -----------------------------------------------------------------

# On the 6.1 core (where the tool boot, which measures the modes, does not
# run): in DMA-FQ the NVMe's UNMAPs are deferred and reach the device at
# flush_iotlb_all (dma-iommu's per-CPU flush queues) or the deferral timer,
# and none is left waiting once the I/O is over.
case_lazy_deferral() {
	reset_counters
	fio --name=lazy --filename="/dev/$NDISK" --direct=1 --ioengine=libaio --rw=randread \
		--bs=4k --iodepth=16 --size=16M --output-format=terse >/dev/null 2>&1
	_frc=$?
	usleep 200000
	_def=$(cnt_deferred)
	_d="fio rc=$_frc on $NDISK (type $(group_type "$(group_of "$NVME")")): req_map=$(cnt req_map) req_unmap=$(cnt req_unmap) flushes=$(cnt flushes) deferred submissions=$_def (timer $(cnt deferred_timer), flush $(cnt deferred_flush), map-sync $(cnt deferred_map_sync)) pending=$(cnt pending_unmaps)"
	if [ $_frc -eq 0 ] && [ "$(group_type "$(group_of "$NVME")")" = DMA-FQ ] &&
		[ "$(cnt req_unmap)" -gt 0 ] && [ "$(cnt flushes)" -gt 0 ] && [ "$_def" -gt 0 ] &&
		[ "$(cnt pending_unmaps)" = 0 ]; then
		result lazy-deferral PASS "$_d"
	else
		result lazy-deferral FAIL "$_d"
	fi
}

# On the 6.1 core a load that asks for map_batching=1 or
# shadow_on_flush=1 must fail, and leave nothing behind.
case_load_param_refused() {
	_f=""
	for _p in map_batching=1 shadow_on_flush=1; do
		_out=$(load_viommu ours "$_p" 2>&1) && _f="$_f $_p: insmod succeeded;"
		mod_loaded virtio_iommu && { _f="$_f $_p: module loaded;"; rmmod virtio_iommu 2>/dev/null; }
		dmesg | grep -q "${_p} refused" || _f="$_f $_p: no 'refused' message;"
	done
	if [ -z "$_f" ]; then
		result load-param-refused PASS "insmod with map_batching=1 and with shadow_on_flush=1 failed ($_out), refused in dmesg, nothing loaded"
	else
		result load-param-refused FAIL "$_f"
	fi
}

case $ROLE in
main)
	plan "load-$TAG" module-ours "groups-$TAG"
	if ours && core61; then
		case_load_param_refused
	fi
	bring_up
	case_module_ours
	case_groups
	fio_case "fio-default-nvme" "$NDISK" "$FSIZE"
	fio_case "fio-default-vblk" "$VDISK" "$FSIZE"
	switch_and_verify DMA
	switch_and_verify identity
	switch_and_verify DMA-FQ
	if ours && core61; then
		case_lazy_deferral
	fi
	knob_cases
	case_dmesg
	;;
shutdown)
	plan "load-$TAG" "groups-$TAG" "fio-$SHUT-$TAG" "dmesg-clean-$ROLE-$TAG"
	bring_up
	case_groups
	fio_case "fio-$SHUT-$TAG" "$NDISK" 8M
	case_dmesg
	;;
untrusted)
	plan "load-$TAG" untrusted-marked untrusted-default-type untrusted-refuses-lazy \
		untrusted-no-deferral "dmesg-clean-$ROLE-$TAG"
	bring_up
	if ours; then
		case_untrusted
	else
		for _c in untrusted-marked untrusted-default-type untrusted-refuses-lazy untrusted-no-deferral; do
			result "$_c" SKIP "in-tree run: no counters"
		done
	fi
	case_dmesg
	;;
tool)
	# The viommu-fq command (guest-tool.sh).
	# shellcheck source=guest-tool.sh
	. /lib/viommu/guest-tool.sh
	tool_boot
	case_dmesg
	;;
knobs)
	# Development aid: only the knob cases.
	bring_up
	knob_cases
	case_dmesg
	;;
lifecycle)
	# shellcheck source-path=SCRIPTDIR source=guest-lifecycle.sh
	. /lib/viommu/guest-lifecycle.sh
	lifecycle_main
	;;
unload)
	plan "load-$TAG" unload-attached "dmesg-clean-$ROLE-$TAG"
	bring_up
	case_unload
	case_dmesg
	;;
esac
guest_done
shutdown_now "$SHUT"
