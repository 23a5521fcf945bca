# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=sh
# shellcheck disable=SC2154,SC2153 # viommu_* come from the kernel command line, NVME etc. from guest.sh
#
# viommu-fq in a guest (boot "tool"): sourced by guest.sh, whose bring_up,
# fio_case, case_dmesg and variables (NVME VBLK NDISK VDISK MOD FSIZE) it
# uses. The command is /usr/sbin/viommu-fq (tests/lib/initramfs.sh puts it
# there). Each case checks what the command prints, its exit status, and the
# state of the system it acts on (group types, drivers, knobs, the flush
# queues dma-iommu allocated, the driver's counters).

VF=/usr/sbin/viommu-fq

# vf ARGS...: run the command; VF_RC, VF_OUT, VF_ERR (newlines kept).
vf() {
	"$VF" "$@" >/tmp/vf.out 2>/tmp/vf.err
	VF_RC=$?
	VF_OUT=$(cat /tmp/vf.out)
	VF_ERR=$(cat /tmp/vf.err)
}

oneline() { printf '%s' "$1" | tr '\n' '|'; }
figure() { _emit "FIGURE $*"; }

# sq_count: single flush queues dma-iommu has allocated (vmalloc areas of
# iommu_dma_init_fq).
sq_count() { grep -c 'iommu_dma_init_fq' /proc/vmallocinfo; }

# state: what a refused or failed command must leave unchanged.
state() {
	{ echo "nvme:$(group_type "$(group_of "$NVME")"):$(pci_driver "$NVME")" \
		"vblk:$(group_type "$(group_of "$VBLK")"):$(pci_driver "$VBLK")" \
		"sof:$(cat "$(fqdir)/shadow_on_flush"):$(cat /sys/module/virtio_iommu/parameters/shadow_on_flush)" \
		"sq:$(sq_count)"; } 2>/dev/null
}

# shell_broke: the command failed with a shell error rather than a message.
shell_broke() {
	printf '%s' "$VF_ERR" | grep -qE 'not found|syntax error|unexpected|parameter not set|bad number|Illegal'
}

# refused CMD...: the command must fail (non-zero, a message on stderr of its
# own) and change nothing. Appends to RF_BAD on failure,
# RF_N counts the commands.
refused() {
	_before=$(state)
	vf "$@"
	_after=$(state)
	RF_N=$((RF_N + 1))
	if [ "$VF_RC" -eq 0 ] || [ -z "$VF_ERR" ] || shell_broke ||
		! printf '%s' "$VF_ERR" | grep -q '^viommu-fq: '; then
		RF_BAD="$RF_BAD [$*: rc=$VF_RC err='$(oneline "$VF_ERR")']"
	fi
	[ "$_before" = "$_after" ] || RF_BAD="$RF_BAD [$*: state $_before -> $_after]"
	RF_LOG="$RF_LOG [$* -> $VF_RC: $(printf '%s' "$VF_ERR" | head -n 1)]"
}

refused_case() {
	if [ -z "$RF_BAD" ]; then
		result "$1" PASS "$RF_N commands refused with a message, non-zero exit, nothing changed:$RF_LOG"
	else
		result "$1" FAIL "$RF_BAD; all:$RF_LOG"
	fi
	RF_BAD="" RF_LOG="" RF_N=0
}
RF_BAD="" RF_LOG="" RF_N=0

# ---- before the module is loaded ------------------------------------------

case_no_instance() {
	for _c in "status" "stat -c 1" "reset" "mode 0000:00:04.0 lazy-sq"; do
		# shellcheck disable=SC2086 # word splitting intended
		refused $_c
	done
	case $RF_LOG in
	*"module is not loaded"*) ;;
	*) RF_BAD="$RF_BAD [no message names the unloaded module]" ;;
	esac
	refused_case tool-no-instance
}

# ---- help, status, reset -------------------------------------------------

case_help() {
	_f=""
	vf --help
	[ "$VF_RC" -eq 0 ] || _f="$_f --help rc=$VF_RC;"
	for _w in status mode stat reset strict lazy lazy-sq identity --force --json; do
		printf '%s' "$VF_OUT" | grep -q -- "$_w" || _f="$_f --help lacks '$_w';"
	done
	for _c in status mode stat reset; do
		vf "$_c" --help
		[ "$VF_RC" -eq 0 ] && printf '%s' "$VF_OUT" | grep -q '^Usage:' || _f="$_f $_c --help rc=$VF_RC;"
	done
	if [ -z "$_f" ]; then
		result tool-help PASS "--help and '<command> --help' print the usage, exit 0"
	else
		result tool-help FAIL "$_f"
	fi
}

# status_row BDF: the endpoint's line of `viommu-fq status`.
status_row() { printf '%s\n' "$VF_OUT" | grep "^  $1 "; }

case_status() {
	vf status
	printf '%s\n' "$VF_OUT" | while read -r _l; do info "status| $_l"; done
	_f=""
	[ "$VF_RC" -eq 0 ] || _f="$_f rc=$VF_RC err=$(oneline "$VF_ERR");"
	printf '%s\n' "$VF_OUT" | head -n 1 | grep -q "virtio-iommu-fq $viommu_version" ||
		_f="$_f first line lacks version $viommu_version;"
	printf '%s\n' "$VF_OUT" | grep -q "^instance $(viommu_inst) " || _f="$_f no instance line;"
	printf '%s\n' "$VF_OUT" | grep '^  features:' | grep -q 'MAP_UNMAP' || _f="$_f features lack MAP_UNMAP;"
	printf '%s\n' "$VF_OUT" | grep '^  knobs:' |
		grep -q 'shadow_on_flush=0 flush_timeout_ms=10 map_batching=1' || _f="$_f knobs line wrong;"
	_gn=$(group_of "$NVME") _gv=$(group_of "$VBLK")
	# The mode the kernel's default domain type gives (Debian's arm64
	# kernels default to strict).
	_dm=lazy
	[ "$EXPECT_TYPE" = DMA ] && _dm=strict
	# ENDPOINT DRIVER DEVICES GROUP MODE TRUSTED MOUNTED
	# shellcheck disable=SC2046 # split into fields
	set -- $(status_row "$NVME")
	[ "$2 $3 $4 $5 $6 $7" = "nvme $NDISK $_gn $_dm yes no" ] ||
		_f="$_f nvme row '$(status_row "$NVME")' (want nvme $NDISK $_gn $_dm yes no);"
	# shellcheck disable=SC2046 # split into fields
	set -- $(status_row "$VBLK")
	[ "$2 $3 $4 $5 $6 $7" = "virtio-pci/virtio_blk $VDISK $_gv $_dm yes no" ] ||
		_f="$_f virtio-blk row '$(status_row "$VBLK")';"
	if [ -z "$_f" ]; then
		result tool-status PASS "instance, version, features, knobs and both endpoints (driver, disk, group, $_dm, trusted, not mounted) shown"
	else
		result tool-status FAIL "$_f output: $(oneline "$VF_OUT")"
	fi
}

case_reset() {
	fio --name=r --filename="/dev/$NDISK" --direct=1 --ioengine=libaio --rw=randread \
		--bs=4k --size=2M --output-format=terse >/dev/null 2>&1
	_k=$(cnt kicks) _m=$(cnt req_map)
	vf reset
	_k2=$(cnt kicks) _m2=$(cnt req_map)
	if [ "$VF_RC" -eq 0 ] && [ "$_k" -gt 0 ] && [ "$_m" -gt 0 ] && [ "$_k2" = 0 ] && [ "$_m2" = 0 ] &&
		printf '%s' "$VF_OUT" | grep -q 'counters reset'; then
		result tool-reset PASS "kicks $_k -> $_k2, req_map $_m -> $_m2: '$(oneline "$VF_OUT")'"
	else
		result tool-reset FAIL "rc=$VF_RC kicks $_k -> $_k2, req_map $_m -> $_m2: '$(oneline "$VF_OUT")' '$(oneline "$VF_ERR")'"
	fi
}

# ---- bad input ---------------------------------------------------------------

# iommu_pci: the PCI function of the virtio-iommu itself.
iommu_pci() {
	_p=$(readlink -f "/sys/class/iommu/$(viommu_inst)/device")
	_p=${_p%/*}
	echo "${_p##*/}"
}

case_bad_input() {
	refused mode nosuchdisk strict
	refused mode 0000:00:1f.7 strict
	refused mode "$NDISK" fast
	refused mode "$NDISK" LAZY
	refused mode "$NDISK"
	refused mode
	refused mode --bogus "$NDISK" strict
	refused mode "$NDISK" strict extra
	refused mode lo strict
	refused mode "$(iommu_pci)" strict
	refused stat -i 0 -c 1
	refused stat -i abc -c 1
	refused stat -i -1 -c 1
	refused stat -i 99999 -c 1
	refused stat -i 1e3 -c 1
	refused stat -c 0
	refused stat -c 1.5
	refused stat -c x
	refused stat -c
	refused stat --bogus
	refused stat -c 1 nosuchinstance
	refused reset nosuchinstance
	refused frobnicate
	refused
	refused_case tool-bad-input
	# A user without root: mode and reset refuse, status still works.
	grep -q '^nobody:' /etc/passwd || echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >>/etc/passwd
	_before=$(state)
	_o=$(su -s /bin/sh nobody -c "$VF mode $NDISK strict" 2>&1)
	_r1=$?
	_o2=$(su -s /bin/sh nobody -c "$VF reset" 2>&1)
	_r2=$?
	_o3=$(su -s /bin/sh nobody -c "$VF status" 2>&1)
	_r3=$?
	_after=$(state)
	_d="mode: rc=$_r1 '$_o'; reset: rc=$_r2 '$_o2'; status: rc=$_r3"
	if [ $_r1 -ne 0 ] && [ $_r2 -ne 0 ] && [ $_r3 -eq 0 ] && [ "$_before" = "$_after" ] &&
		printf '%s' "$_o" | grep -q 'must be run as root' && printf '%s' "$_o2" | grep -q 'must be run as root'; then
		result tool-not-root PASS "$_d; nothing changed"
	else
		result tool-not-root FAIL "$_d; state $_before -> $_after"
	fi
}

# ---- stat ----------------------------------------------------------------------

load_start() {
	fio --name=load --filename="/dev/$NDISK" --direct=1 --ioengine=libaio --rw=randread \
		--bs=4k --iodepth=8 --time_based --runtime="$1" --output-format=terse >/dev/null 2>&1 &
	LOAD_PID=$!
	usleep 500000
}

case_stat_table() {
	load_start 4
	vf stat -i 1 -c 2
	wait "$LOAD_PID"
	printf '%s\n' "$VF_OUT" | while read -r _l; do info "stat| $_l"; done
	_hdr=$(printf '%s\n' "$VF_OUT" | head -n 1)
	_rows=$(printf '%s\n' "$VF_OUT" | grep -c " $(viommu_inst) ")
	_map=$(printf '%s\n' "$VF_OUT" | sed -n 2p | awk '{print $3}')
	if [ "$VF_RC" -eq 0 ] && [ "$_rows" = 2 ] && [ "$(printf '%s\n' "$VF_OUT" | wc -l)" = 3 ] &&
		printf '%s' "$_hdr" | grep -q '^time *instance *map/s *unmap/s' &&
		awk -v m="$_map" 'BEGIN { exit !(m > 0) }'; then
		result tool-stat PASS "header and 2 rows, map/s $_map under load"
	else
		result tool-stat FAIL "rc=$VF_RC rows=$_rows header '$_hdr' map/s '$_map': $(oneline "$VF_OUT") $(oneline "$VF_ERR")"
	fi
}

# jget LINE SECTION KEY: a number from one --json line.
jget() {
	printf '%s\n' "$1" | sed -n "s/.*\"$2\":{\([^}]*\)}.*/\1/p" | tr ',' '\n' | sed -n "s/^\"$3\"://p"
}

# The JSON samples against the counters themselves: every sample's counters
# lie between the values read before and after the command, each delta is
# the difference of consecutive samples' counters, and rate x interval is
# the delta (within rounding of the printed interval).
case_stat_json() {
	load_start 5
	_b_map=$(cnt req_map) _b_kicks=$(cnt kicks) _b_unmap=$(cnt req_unmap)
	vf stat -i 1 -c 3 --json
	_a_map=$(cnt req_map) _a_kicks=$(cnt kicks) _a_unmap=$(cnt req_unmap)
	wait "$LOAD_PID"
	printf '%s\n' "$VF_OUT" | head -n 1 | while read -r _l; do info "stat-json| $_l"; done
	_f=""
	[ "$VF_RC" -eq 0 ] || _f="$_f rc=$VF_RC $(oneline "$VF_ERR");"
	[ "$(printf '%s\n' "$VF_OUT" | grep -c '^{"time":"[-0-9T:]*Z","instance":"')" = 3 ] || _f="$_f not 3 JSON lines;"
	for _k in req_map kicks req_unmap; do
		eval "_lo=\$_b_${_k#req_} _hi=\$_a_${_k#req_}"
		_prev=""
		_n=0
		while read -r _l; do
			_n=$((_n + 1))
			_c=$(jget "$_l" counters "$_k") _d=$(jget "$_l" deltas "$_k") _r=$(jget "$_l" rates "$_k")
			_t=$(printf '%s\n' "$_l" | sed -n 's/.*"interval_s":\([0-9.]*\).*/\1/p')
			if [ -z "$_c" ] || [ -z "$_d" ] || [ -z "$_r" ] || [ -z "$_t" ]; then
				_f="$_f sample $_n lacks $_k;"
				continue
			fi
			[ $((_c - _d)) -ge "$_lo" ] || _f="$_f $_k sample $_n starts at $((_c - _d)) < $_lo read before;"
			[ "$_c" -le "$_hi" ] || _f="$_f $_k sample $_n $_c > $_hi read after;"
			[ -z "$_prev" ] || [ "$_d" -eq $((_c - _prev)) ] || _f="$_f $_k sample $_n delta $_d != $_c - $_prev;"
			awk -v r="$_r" -v t="$_t" -v d="$_d" 'BEGIN { x = r * t - d; if (x < 0) x = -x; exit !(x <= 0.01 * d + 1) }' ||
				_f="$_f $_k sample $_n rate $_r x ${_t}s != delta $_d;"
			_prev=$_c
		done <<EOF
$VF_OUT
EOF
	done
	_r=$(jget "$(printf '%s\n' "$VF_OUT" | sed -n 2p)" rates req_map)
	awk -v r="${_r:-0}" 'BEGIN { exit !(r > 0) }' || _f="$_f no MAP rate under load;"
	if [ -z "$_f" ]; then
		result tool-stat-json PASS "3 samples; req_map/kicks/req_unmap: counters within [$_b_map..$_a_map] etc., deltas = differences, rate x interval = delta; req_map rate $_r/s"
	else
		result tool-stat-json FAIL "$_f $(oneline "$(printf '%s\n' "$VF_OUT" | head -n 1)")"
	fi
}

# ---- modes -----------------------------------------------------------------

# measure: fio verify on the NVMe disk with fresh counters. Sets M_OK (fio
# verified everything), M_FPS (flush_iotlb_all calls per second of the
# run), M_FLUSH, M_DEFER (deferred UNMAP submissions), M_MAP, M_UNMAP, M_S,
# M_D (a summary).
measure() {
	reset_counters
	_t0=$(uptime_s)
	fio_verify "$NDISK" "$FSIZE"
	M_OK=$?
	_t1=$(uptime_s)
	M_S=$(echo "$_t1 $_t0" | awk '{printf "%.2f", $1 - $2}')
	M_FLUSH=$(cnt flushes) M_MAP=$(cnt req_map) M_UNMAP=$(cnt req_unmap)
	M_DEFER=$(($(cnt deferred_timer) + $(cnt deferred_full) + $(cnt deferred_flush) + $(cnt deferred_map_sync)))
	M_FPS=$(echo "$M_FLUSH $M_S" | awk '{printf "%.1f", $1 / $2}')
	M_D="fio $FIO_DETAIL in ${M_S}s: flush_iotlb_all $M_FLUSH ($M_FPS/s), deferred $M_DEFER, MAP $M_MAP, UNMAP $M_UNMAP"
}

# switch_to CASE MODE TYPE: viommu-fq mode NVMe-disk MODE; then the group
# type must be TYPE, the disk back, status must agree, and the command must
# have said how it verified. Sets SW_OK and SW_D.
switch_to() {
	vf mode "$NDISK" "$2"
	NDISK=$(wait_blkdev "$NVME" 30)
	_t=$(group_type "$(group_of "$NVME")")
	SW_D="rc=$VF_RC '$(oneline "$VF_OUT")' err '$(oneline "$VF_ERR")'; type $_t, disk '$NDISK'"
	SW_OK=0
	_st=$("$VF" status | grep "^  $NVME " | awk '{print $5}')
	SW_D="$SW_D; status says $_st"
	if [ "$VF_RC" -eq 0 ] && [ "$_t" = "$3" ] && [ -n "$NDISK" ] && [ "$_st" = "$2" ] &&
		printf '%s' "$VF_OUT" | grep -Eq "now $2; verified|already $2"; then
		SW_OK=1
	fi
}

case_modes() {
	# 1. lazy, the boot default.
	switch_to tool-mode-lazy lazy DMA-FQ
	measure
	F_LAZY=$M_FPS
	if [ $SW_OK = 1 ] && [ $M_OK -eq 0 ] && [ "$M_FLUSH" -gt 0 ] && [ "$M_DEFER" -gt 0 ]; then
		result tool-mode-lazy PASS "$SW_D; $M_D"
	else
		result tool-mode-lazy FAIL "$SW_D; $M_D (want flushes and deferred UNMAPs)"
	fi
	# 2. lazy -> lazy-sq: flush_iotlb_all calls per second drop 10x or more.
	switch_to tool-mode-lazy-sq lazy-sq DMA-FQ
	measure
	F_SQ=$M_FPS
	metric tool_lazy_flushes_per_s "$F_LAZY"
	metric tool_lazy_sq_flushes_per_s "$F_SQ"
	if [ $SW_OK = 1 ] && [ $M_OK -eq 0 ] && printf '%s' "$VF_OUT" | grep -q 'single flush queue' &&
		awk -v a="$F_SQ" -v b="$F_LAZY" 'BEGIN { exit !(b > 0 && a * 10 <= b) }'; then
		result tool-mode-lazy-sq PASS "$SW_D; $M_D; lazy had $F_LAZY/s: 10x or more fewer"
	else
		result tool-mode-lazy-sq FAIL "$SW_D; $M_D; lazy had $F_LAZY/s (want 10x fewer)"
	fi
	# 3. strict: nothing deferred, no flush queue.
	switch_to tool-mode-strict strict DMA
	measure
	if [ $SW_OK = 1 ] && [ $M_OK -eq 0 ] && [ "$M_FLUSH" = 0 ] && [ "$M_DEFER" = 0 ] && [ "$M_UNMAP" -gt 0 ]; then
		result tool-mode-strict PASS "$SW_D; $M_D"
	else
		result tool-mode-strict FAIL "$SW_D; $M_D (want UNMAPs, no flush, nothing deferred)"
	fi
	# 4. strict -> lazy-sq: a DMA group needs the longer detour.
	switch_to tool-mode-lazy-sq-from-strict lazy-sq DMA-FQ
	measure
	if [ $SW_OK = 1 ] && [ $M_OK -eq 0 ] && printf '%s' "$VF_OUT" | grep -q 'single flush queue' &&
		awk -v a="$M_FPS" -v b="$F_LAZY" 'BEGIN { exit !(b > 0 && a * 10 <= b) }'; then
		result tool-mode-lazy-sq-from-strict PASS "$SW_D; $M_D; lazy had $F_LAZY/s"
	else
		result tool-mode-lazy-sq-from-strict FAIL "$SW_D; $M_D; lazy had $F_LAZY/s (want 10x fewer)"
	fi
	# 5. identity: no translation, so no MAP or UNMAP at all.
	switch_to tool-mode-identity identity identity
	measure
	if [ $SW_OK = 1 ] && [ $M_OK -eq 0 ] && [ "$M_MAP" = 0 ] && [ "$M_UNMAP" = 0 ] && [ "$M_FLUSH" = 0 ]; then
		result tool-mode-identity PASS "$SW_D; $M_D"
	else
		result tool-mode-identity FAIL "$SW_D; $M_D (want no MAP, UNMAP or flush)"
	fi
	# 6. identity -> lazy: per-CPU queues again.
	switch_to tool-mode-lazy-from-identity lazy DMA-FQ
	measure
	if [ $SW_OK = 1 ] && [ $M_OK -eq 0 ] && printf '%s' "$VF_OUT" | grep -q 'per-CPU' &&
		[ "$M_DEFER" -gt 0 ] && awk -v a="$M_FPS" -v b="$F_SQ" 'BEGIN { exit !(a > 0 && a >= 10 * b) }'; then
		result tool-mode-lazy-from-identity PASS "$SW_D; $M_D; lazy-sq had $F_SQ/s"
	else
		result tool-mode-lazy-from-identity FAIL "$SW_D; $M_D; lazy-sq had $F_SQ/s (want 10x more, deferred UNMAPs)"
	fi
}

# The raw sysfs sequences the documentation describes, proven by the flush
# queues dma-iommu allocates: writing DMA-FQ onto a DMA-FQ group keeps its
# domain (the knob does not apply); DMA then DMA-FQ makes a new one (it does).
case_raw_sysfs() {
	_g=$(group_of "$NVME")
	_sof=$(fqdir)/shadow_on_flush
	echo 1 >"$_sof"
	_s0=$(sq_count)
	set_group_type "$NVME" DMA-FQ
	_rc1=$?
	_s1=$(sq_count)
	NDISK=$(wait_blkdev "$NVME" 30)
	_drv=$(pci_driver "$NVME")
	echo "$NVME" >"/sys/bus/pci/drivers/$_drv/unbind"
	echo DMA >"/sys/kernel/iommu_groups/$_g/type"
	_s2=$(sq_count)
	echo DMA-FQ >"/sys/kernel/iommu_groups/$_g/type"
	_s3=$(sq_count)
	echo "$NVME" >"/sys/bus/pci/drivers/$_drv/bind"
	echo 0 >"$_sof"
	NDISK=$(wait_blkdev "$NVME" 30)
	_d="shadow_on_flush=1; unbind, DMA-FQ onto DMA-FQ, bind: rc=$_rc1, single queues $_s0 -> $_s1; unbind, DMA, DMA-FQ, bind: $_s2 -> $_s3, type $(group_type "$_g"), disk '$NDISK'"
	if [ $_rc1 -eq 0 ] && [ "$_s1" = "$_s0" ] && [ "$_s3" -eq $((_s2 + 1)) ] && [ -n "$NDISK" ]; then
		result tool-raw-sysfs PASS "$_d"
	else
		result tool-raw-sysfs FAIL "$_d"
	fi
	# Back to per-CPU queues with the command (checked by tool-rollback's state).
	vf mode "$NDISK" lazy
	NDISK=$(wait_blkdev "$NVME" 30)
}

# A step that fails makes the command restore the previous state.
case_rollback() {
	_f="" _d=""
	for _spec in bind:strict type-DMA-FQ:lazy-sq knob:lazy-sq; do
		_before=$(state)
		_mb=$("$VF" status | grep "^  $NVME " | awk '{print $5}')
		VIOMMU_FQ_FAIL_STEP=${_spec%%:*} "$VF" mode "$NDISK" "${_spec#*:}" >/tmp/vf.out 2>/tmp/vf.err
		_rc=$?
		NDISK=$(wait_blkdev "$NVME" 30)
		_after=$(state)
		_ma=$("$VF" status | grep "^  $NVME " | awk '{print $5}')
		_d="$_d [${_spec}: rc=$_rc '$(oneline "$(cat /tmp/vf.err)")' mode $_mb -> $_ma]"
		[ $_rc -ne 0 ] && grep -q 'rolled back' /tmp/vf.err && [ "$_before" = "$_after" ] &&
			[ "$_mb" = "$_ma" ] && [ -n "$NDISK" ] || _f="$_f [$_spec: state $_before -> $_after]"
	done
	fio_verify "$NDISK" 8M || _f="$_f fio after: $FIO_DETAIL"
	if [ -z "$_f" ]; then
		result tool-rollback PASS "failures injected at 3 steps, each rolled back to the same group type, driver, knobs and flush queues:$_d; fio verify after: $FIO_DETAIL"
	else
		result tool-rollback FAIL "$_f;$_d"
	fi
}

# A disk with a mounted filesystem is refused; the mount keeps working.
case_refuse_mounted() {
	if ! modload ext4; then
		result tool-refuse-mounted FAIL "cannot load ext4"
		return
	fi
	mke2fs "/dev/$VDISK" >/tmp/mkfs.log 2>&1
	mkdir -p /mnt
	if ! mount -t ext4 "/dev/$VDISK" /mnt 2>/tmp/mount.log; then
		result tool-refuse-mounted FAIL "mount failed: $(cat /tmp/mkfs.log /tmp/mount.log | tr '\n' ' ')"
		return
	fi
	echo data >/mnt/f
	refused mode "$VDISK" strict
	refused mode "$VBLK" identity
	_row=$("$VF" status | grep "^  $VBLK ")
	case $RF_LOG in *"refusing"*"/mnt"*) ;; *) RF_BAD="$RF_BAD [no refusal names /mnt]" ;; esac
	case $_row in *"$VDISK on /mnt"*) ;; *) RF_BAD="$RF_BAD [status row '$_row' does not show the mount]" ;; esac
	sync
	echo 3 >/proc/sys/vm/drop_caches
	[ "$(cat /mnt/f 2>/dev/null)" = data ] || RF_BAD="$RF_BAD [/mnt/f unreadable after]"
	umount /mnt
	refused_case tool-refuse-mounted
}

# ---- tracepoints --------------------------------------------------------------

# trace_has EVENT REGEX: an event line of /tmp/trace.txt whose fields, after
# "EVENT: ", match REGEX (the format README.md documents).
trace_has() {
	grep -qE " $1: $2\$" /tmp/trace.txt || TR_BAD="$TR_BAD [no $1 line matching '$2']"
}

# The events fire under I/O with the fields README.md documents: requests
# submitted and completed (with a latency), waits, deferred submissions.
# Runs after case_modes, which leaves the NVMe lazy, whatever the kernel's
# default.
case_trace() {
	_t=/sys/kernel/tracing
	[ -e "$_t/trace" ] || mount -t tracefs nodev "$_t" 2>/dev/null
	_ev=$_t/events/virtio_iommu_fq
	if [ ! -d "$_ev" ]; then
		result tool-trace FAIL "no $_ev"
		return
	fi
	echo 0 >"$_t/tracing_on"
	: >"$_t/trace"
	echo 1 >"$_ev/enable"
	echo 1 >"$_t/tracing_on"
	load_start 1
	wait "$LOAD_PID"
	echo 0 >"$_ev/enable"
	cat "$_t/trace" >/tmp/trace.txt
	TR_BAD=""
	_r='seq=[0-9]+ type=(MAP|UNMAP) domain=[0-9]+ endpoint=0 range=0x[0-9a-f]+-0x[0-9a-f]+'
	trace_has viommu_request_submit "$_r deferred=[01] err=0 latency_ns=0"
	trace_has viommu_request_complete "$_r deferred=[01] err=0 latency_ns=[1-9][0-9]*"
	trace_has viommu_request_complete "seq=[0-9]+ type=MAP domain=[0-9]+ endpoint=0 range=0x[0-9a-f]+-0x[0-9a-f]+ deferred=0 err=0 latency_ns=[1-9][0-9]*"
	trace_has viommu_sync_wait "wait_ns=[0-9]+ inflight=[0-9]+ ret=0"
	trace_has viommu_deferred_submit "count=[1-9][0-9]* cause=(timer|full|flush|sync|map_sync) left=[0-9]+"
	_n=$(grep -c ' viommu_' /tmp/trace.txt)
	for _e in viommu_request_submit viommu_request_complete viommu_sync_wait viommu_deferred_submit; do
		info "trace| $(grep -m 1 " $_e: " /tmp/trace.txt)"
	done
	if [ -z "$TR_BAD" ]; then
		result tool-trace PASS "$_n events in 1 s of fio, all four kinds with their documented fields"
	else
		result tool-trace FAIL "$_n events:$TR_BAD"
	fi
}

# ---- in-tree driver ----------------------------------------------------------

intree_figures() {
	for _c in "status" "stat -c 1" "reset" "mode $NDISK lazy-sq" "mode $NVME strict"; do
		# shellcheck disable=SC2086 # word splitting intended
		vf $_c
		figure "tool-intree/$(echo "$_c" | tr ' ' '_') viommu-fq $_c on the in-tree driver: exit $VF_RC, stderr '$(oneline "$VF_ERR")'$(shell_broke && echo ' (SHELL ERROR)'), stdout '$(oneline "$VF_OUT" | cut -c1-200)'"
	done
}

# ---- the boot --------------------------------------------------------------

TOOL_CASES="tool-help tool-status tool-reset tool-bad-input tool-not-root tool-stat tool-stat-json
tool-mode-lazy tool-mode-lazy-sq tool-mode-strict tool-mode-lazy-sq-from-strict tool-mode-identity
tool-mode-lazy-from-identity tool-raw-sysfs tool-rollback tool-refuse-mounted tool-trace"

tool_boot() {
	if [ "$MOD" = ours ]; then
		# shellcheck disable=SC2086 # a list of names
		plan "load-$TAG" tool-no-instance $TOOL_CASES "dmesg-clean-$ROLE-$TAG"
	else
		plan "load-$TAG" tool-no-instance "dmesg-clean-$ROLE-$TAG"
	fi
	case_no_instance
	bring_up
	if [ "$MOD" != ours ]; then
		intree_figures
		return
	fi
	case_help
	case_status
	case_reset
	case_bad_input
	case_stat_table
	case_stat_json
	case_modes
	case_trace
	case_raw_sysfs
	case_rollback
	case_refuse_mounted
}
