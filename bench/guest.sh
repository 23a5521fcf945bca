#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Guest side of the benchmark (busybox ash, run by /init as /test.sh).
# One boot = one configuration. Parameters come from the kernel command line
# (bench/run.sh sets them):
#   bench_cfg     configuration name (for the log)
#   bench_drv     none | intree | ours | vtd | smmu
#   bench_type    DMA | DMA-FQ   wanted type of the null NVMe's IOMMU group
#                 (ours: set through the group, unbind/write/rebind; intree
#                 vtd and smmu: set by iommu.strict on the command line, checked)
#   bench_map     map_batching for ours (0/1)
#   bench_sq      shadow_on_flush for ours (0/1)
#   bench_rt      fio runtime per job, seconds
#   bench_bufs    comma list of buffer kinds: huge (hugetlbfs 2 MiB pages),
#                 ordinary (fio's default malloc buffers)
#   bench_jobs    comma list of jobs: A (randwrite 64k qd16, one job per
#                 vCPU), B (randrw 50/50 4k qd128, one job) and C (network:
#                 a virtio-net device behind the IOMMU, on QEMU's user
#                 networking; the host drives it, bench/netclient.py)
#   bench_verify  1: a short fio crc32c verify on the file-backed NVMe
#   bench_prof    1: at the end, /proc/kallsyms's functions, gzipped, onto
#                 the raw virtio-blk disk (bench/run.sh --insn-profile)
#   bench_lockprof 1: QEMU runs with -enable-sync-profile; each fio job asks
#                 the host (HOST-QMP) to reset QEMU's lock profile at its
#                 start and to log it (info sync-profile) at its end
#                 (bench/run.sh --lock-profile)
#
# Reports (second serial port, guest-lib.sh protocol):
#   RESULT setup|mode|<job>-<buf>|verify|kallsyms|dmesg PASS|FAIL ...
#   METRIC fio:<job>-<buf> <fio JSON on one line>
#   METRIC ctr:<job>-<buf> name=value,...   (ours: counters after the job,
#                                            reset just before it)
#   METRIC huge:<job>-<buf> <hugepages in use during the job>
#   RESULT C-net, METRIC ctr:C-net            (job C: the guest side; the
#                                            figures are the host's)
#   METRIC steady:<job>-<buf> <disk I/Os at mark 3> <at mark 4>  (--insns)
. /lib/viommu/guest-lib.sh

DRV=${bench_drv:-none}
TYPE=${bench_type:-DMA-FQ}
MAP=${bench_map:-1}
SQ=${bench_sq:-0}
RT=${bench_rt:-8}
BUFS=$(echo "${bench_bufs:-huge}" | tr ',' ' ')
JOBS=$(echo "${bench_jobs:-A,B}" | tr ',' ' ')
VERIFY=${bench_verify:-0}
RTTY=$VIOMMU_RESULTS_TTY
NSMP=$(grep -c '^processor' /proc/cpuinfo)

_p="setup mode"
for _j in $JOBS; do
	case $_j in
	C) _p="$_p C-net" ;;
	*) for _b in $BUFS; do _p="$_p $_j-$_b"; done ;;
	esac
done
[ "$VERIFY" = 1 ] && _p="$_p verify"
[ "${bench_prof:-0}" = 1 ] && _p="$_p kallsyms"
plan "$_p dmesg"
info "bench config ${bench_cfg:-?}: drv=$DRV type=$TYPE map=$MAP sq=$SQ rt=$RT bufs='$BUFS' jobs='$JOBS' vcpus=$NSMP cmdline: $(cat /proc/cmdline)"

fail_rest() { # REASON: fail every remaining planned case and stop
	for _j in $JOBS; do
		case $_j in
		C) result C-net FAIL "not run: $1" ;;
		*) for _b in $BUFS; do result "$_j-$_b" FAIL "not run: $1"; done ;;
		esac
	done
	[ "$VERIFY" = 1 ] && result verify FAIL "not run: $1"
	[ "${bench_prof:-0}" = 1 ] && result kallsyms FAIL "not run: $1"
	_bad=$(dmesg_bad | head -n 20)
	result dmesg "$([ -z "$_bad" ] && echo PASS || echo FAIL)" "$_bad"
	exit 1
}

# nvme_ctrl_by_serial SERIAL: the nvme controller (nvmeN) with that serial.
nvme_ctrl_by_serial() {
	for _c in /sys/class/nvme/nvme*; do
		[ -e "$_c/serial" ] || continue
		[ "$(sed 's/ *$//' "$_c/serial")" = "$1" ] && { basename "$_c"; return 0; }
	done
	return 1
}

# nvme_disk SERIAL: wait (up to 30 s) for that controller's namespace; print
# "BDF DISK".
nvme_disk() {
	_i=0
	while [ $_i -lt 300 ]; do
		if _c=$(nvme_ctrl_by_serial "$1"); then
			_bdf=$(basename "$(readlink -f "/sys/class/nvme/$_c/device")")
			if _d=$(blkdev_of "$_bdf") && [ -b "/dev/$_d" ]; then
				echo "$_bdf $_d"
				return 0
			fi
		fi
		usleep 100000
		_i=$((_i + 1))
	done
	return 1
}

# ---- setup ----------------------------------------------------------------

mkdir -p /mnt/huge
if ! mount -t hugetlbfs -o pagesize=2M none /mnt/huge; then
	result setup FAIL "cannot mount hugetlbfs"
	fail_rest "no hugetlbfs"
fi
echo 16 >/proc/sys/vm/nr_hugepages
NRH=$(cat /proc/sys/vm/nr_hugepages)

_rc=0
case $DRV in
ours) load_viommu ours map_batching="$MAP" shadow_on_flush="$SQ" || _rc=$? ;;
intree) load_viommu intree || _rc=$? ;;
none | vtd | smmu) ;;
*) _rc=99 ;;
esac
[ $_rc -eq 0 ] || { result setup FAIL "loading the IOMMU driver ($DRV) failed: rc=$_rc $(dmesg | tail -n 3)"; fail_rest "driver"; }
modload nvme || { result setup FAIL "modload nvme failed"; fail_rest "nvme"; }
# shellcheck disable=SC2046
set -- $(nvme_disk bench-null) || true
NBDF=${1:-} NDISK=${2:-}
[ -n "$NDISK" ] || { result setup FAIL "null NVMe (serial bench-null) not found; $(dmesg | tail -n 3)"; fail_rest "no disk"; }
if [ "$NRH" -lt 8 ]; then
	result setup FAIL "only $NRH huge pages"
	fail_rest "huge pages"
fi
result setup PASS "driver $DRV, null NVMe $NBDF=$NDISK, $NRH huge pages of 2 MiB"

# ---- mode -----------------------------------------------------------------

GRP=$(group_of "$NBDF" 2>/dev/null)
if [ "$DRV" = none ]; then
	if [ -z "$GRP" ]; then
		result mode PASS "no IOMMU group for $NBDF (no IOMMU)"
	else
		result mode FAIL "$NBDF is in IOMMU group $GRP although no IOMMU was configured"
		fail_rest "mode"
	fi
else
	[ -n "$GRP" ] || { result mode FAIL "$NBDF has no IOMMU group"; fail_rest "mode"; }
	_t0=$(group_type "$GRP")
	if [ "$DRV" = ours ] && [ "$_t0" != "$TYPE" ]; then
		set_group_type "$NBDF" "$TYPE" || { result mode FAIL "set group $GRP to $TYPE: $SGT_ERR"; fail_rest "mode"; }
		# shellcheck disable=SC2046
		set -- $(nvme_disk bench-null) || true
		NBDF=${1:-} NDISK=${2:-}
		[ -n "$NDISK" ] || { result mode FAIL "null NVMe gone after rebind"; fail_rest "mode"; }
	fi
	_t=$(group_type "$GRP")
	_d="group $GRP type $_t (was $_t0)"
	_ok=1
	[ "$_t" = "$TYPE" ] || _ok=0
	if [ "$DRV" = ours ]; then
		_fq=$(fqdir)
		_km=$(cat "$_fq/map_batching") _ks=$(cat "$_fq/shadow_on_flush")
		_d="$_d, $(viommu_inst): map_batching=$_km shadow_on_flush=$_ks flush_timeout_ms=$(cat "$_fq/flush_timeout_ms") version $(cat /sys/module/virtio_iommu/version 2>/dev/null)"
		[ "$_km" = "$MAP" ] && [ "$_ks" = "$SQ" ] || _ok=0
		[ -n "$(cat /sys/module/virtio_iommu/version 2>/dev/null)" ] || { _ok=0; _d="$_d (not our module?)"; }
	fi
	if [ $_ok = 1 ]; then
		result mode PASS "$_d"
	else
		result mode FAIL "$_d; wanted $TYPE map=$MAP sq=$SQ"
		fail_rest "mode"
	fi
fi

# ---- network job (C) -------------------------------------------------------

# virtio_net_iface: wait (up to 10 s) for the virtio-net interface; print it.
virtio_net_iface() {
	_k=0
	while [ $_k -lt 100 ]; do
		for _n in /sys/class/net/*; do
			if [ "$(basename "$(readlink -f "$_n/device/driver" 2>/dev/null)")" = virtio_net ]; then
				basename "$_n"
				return 0
			fi
		done
		usleep 100000
		_k=$((_k + 1))
	done
	return 1
}

# net_job: bring up the virtio-net device (with VIRTIO_F_ACCESS_PLATFORM, so
# its buffers are mapped through the IOMMU, in the same domain type as the
# NVMe), start the three servers bench/netclient.py talks to through QEMU's
# user networking (echo on 5202, sink on 5203, source on 5204), announce the
# job and keep it open while the host drives it: a receive stream, a
# transmit stream and request-response, RT seconds each.
net_job() {
	_nic="" _bdf=""
	modload virtio_net || { result C-net FAIL "modload virtio_net failed"; return; }
	_nic=$(virtio_net_iface) || { result C-net FAIL "no virtio-net interface"; return; }
	# The PCI function above the virtio device.
	_bdf=$(basename "$(dirname "$(readlink -f "/sys/class/net/$_nic/device")")")
	if [ "$DRV" = ours ] && [ "$(group_type "$(group_of "$_bdf")")" != "$TYPE" ]; then
		set_group_type "$_bdf" "$TYPE" || { result C-net FAIL "set $_bdf to $TYPE: $SGT_ERR"; return; }
		_nic=$(virtio_net_iface) || { result C-net FAIL "virtio-net gone after rebind"; return; }
	fi
	_gt=none
	[ "$DRV" = none ] || _gt=$(group_type "$(group_of "$_bdf")")
	if ! ip link set "$_nic" up || ! ip addr add 10.0.2.15/24 dev "$_nic"; then
		result C-net FAIL "cannot configure $_nic"
		return
	fi
	printf '#!/bin/sh\nexec cat >/dev/null\n' >/tmp/net-sink
	printf '#!/bin/sh\nexec cat /dev/zero\n' >/tmp/net-source
	chmod +x /tmp/net-sink /tmp/net-source
	nc -ll -p 5202 -e /bin/cat &
	_s1=$!
	nc -ll -p 5203 -e /tmp/net-sink &
	_s2=$!
	nc -ll -p 5204 -e /tmp/net-source &
	_s3=$!
	[ "$DRV" = ours ] && reset_counters
	info "job C-net start ($_nic at $_bdf, group type $_gt)"
	# Three phases of RT seconds, with room for connecting and draining.
	sleep $((3 * (RT + 4)))
	_ctr=""
	[ "$DRV" = ours ] && _ctr=$(counters)
	[ -n "$_ctr" ] && metric "ctr:C-net" "$_ctr"
	kill "$_s1" "$_s2" "$_s3" 2>/dev/null
	result C-net PASS "$_nic at $_bdf up, group type $_gt; figures measured by the host"
}

# ---- fio jobs ----------------------------------------------------------------

# jobfile JOB BUF: write /tmp/<job>-<buf>.fio
jobfile() {
	_f=/tmp/$1-$2.fio
	{
		echo "[global]"
		echo "filename=/dev/$NDISK"
		echo "ioengine=libaio"
		echo "direct=1"
		echo "time_based"
		echo "runtime=$RT"
		echo "size=1G"
		echo "group_reporting"
		case $1 in
		A) printf 'rw=randwrite\nbs=64k\niodepth=16\n' ; _n=$NSMP ;;
		B) printf 'rw=randrw\nrwmixread=50\nrwmixwrite=50\nbs=4k\niodepth=128\n' ; _n=1 ;;
		esac
		_k=0
		while [ "$_k" -lt "$_n" ]; do
			echo "[$1$_k]"
			[ "$2" = huge ] && echo "iomem=mmaphuge:/mnt/huge/$1$_k"
			_k=$((_k + 1))
		done
	} >"$_f"
	echo "$_f"
}

# disk_ios: I/Os the benchmark disk has completed (reads + writes).
disk_ios() {
	awk '{ print $1 + $5 }' "/sys/block/$NDISK/stat"
}

# steady_window TAG (in the background of a fio job of RT seconds): marks
# 3 and 4 around the job's steady state, from 0.5 s after the disk's first
# I/O of the job to 1 s before the job's planned end; the disk's I/O count
# at both ends in /tmp/steady.TAG.
steady_window() {
	_t0=$(uptime_s)
	_i0=$(disk_ios)
	_k=0
	while [ "$(disk_ios)" = "$_i0" ] && [ $_k -lt $((RT * 5)) ]; do
		sleep 0.2
		_k=$((_k + 1))
	done
	sleep 0.5
	disk_ios >"/tmp/steady.$1"
	/bin/viommu-mark 3
	_left=$(echo "$(uptime_s) $_t0 $RT" | awk '{ d = $2 + $3 - 1 - $1; print (d > 0.2 ? d : 0.2) }')
	sleep "$_left"
	/bin/viommu-mark 4
	disk_ios >>"/tmp/steady.$1"
}

counters() {
	_out=""
	for _f in "$(fqdir)"/*; do
		_n=$(basename "$_f")
		case $_n in reset_counters | map_batching | shadow_on_flush | flush_timeout_ms) continue ;; esac
		_out="$_out${_out:+,}$_n=$(cat "$_f")"
	done
	echo "$_out"
}

# With bench/run.sh --insn-profile, where the kernel and its modules' code
# lie in this boot (KASLR), so that the host can name the functions.
if [ -x /bin/viommu-mark ]; then
	metric ksym:_text "$(awk '$3 == "_text" { print $1; exit }' /proc/kallsyms)"
	for _s in /sys/module/*/sections/.text*; do
		[ -r "$_s" ] || continue
		_m=${_s#/sys/module/}
		metric "sect:${_m%%/*}:${_s##*/}" "$(cat "$_s")"
	done
fi

for _j in $JOBS; do
	[ "$_j" = C ] && continue
	for _b in $BUFS; do
		_tag=$_j-$_b
		_jf=$(jobfile "$_j" "$_b")
		[ "$DRV" = ours ] && reset_counters
		info "job $_tag start"
		# Huge pages in use, sampled in the middle of the job.
		( sleep $((RT / 2 + 1)); awk '/HugePages_Total/{t=$2} /HugePages_Free/{f=$2} END{print t-f}' /proc/meminfo >"/tmp/huge.$_tag" ) &
		_sp=$!
		# With bench/run.sh --insns, the plugin counts the guest's
		# instructions between marks 1 and 2 (the whole job, fio's start
		# and exit included), and between marks 3 and 4: the steady
		# state (steady_window), with the I/Os the disk completed in it.
		_ss=""
		if [ -x /bin/viommu-mark ]; then
			/bin/viommu-mark 1
			if [ "$RT" -ge 3 ]; then
				steady_window "$_tag" &
				_ss=$!
			fi
		fi
		if [ "${bench_lockprof:-0}" = 1 ]; then
			host_qmp 0 '{"execute":"human-monitor-command","arguments":{"command-line":"sync-profile\u0020reset"}}'
			sleep 1
		fi
		fio --output-format=json --percentile_list=50:99 "$_jf" >"/tmp/$_tag.json" 2>"/tmp/$_tag.err"
		_rc=$?
		if [ "${bench_lockprof:-0}" = 1 ]; then
			host_qmp 0 '{"execute":"human-monitor-command","arguments":{"command-line":"info\u0020sync-profile\u00201000"}}'
			sleep 1
		fi
		[ ! -x /bin/viommu-mark ] || /bin/viommu-mark 2
		if [ -n "$_ss" ]; then
			wait "$_ss"
			metric "steady:$_tag" "$(tr '\n' ' ' <"/tmp/steady.$_tag")"
		fi
		_ctr=""
		[ "$DRV" = ours ] && _ctr=$(counters)
		wait $_sp
		_hu=$(cat "/tmp/huge.$_tag" 2>/dev/null)
		# The raw JSON goes to the results port only (not the console).
		printf 'METRIC fio:%s %s\n' "$_tag" "$(sed -n '/^{/,$p' "/tmp/$_tag.json" | tr -d '\n\t' | sed 's/   */ /g')" >"$RTTY"
		[ -n "$_ctr" ] && metric "ctr:$_tag" "$_ctr"
		metric "huge:$_tag" "${_hu:-?}"
		_ios=$(sed -n 's/.*"total_ios" *: *\([0-9]*\).*/\1/p' "/tmp/$_tag.json" | awk '{s+=$1} END{print s+0}')
		if [ $_rc -eq 0 ] && [ "${_ios:-0}" -gt 0 ] && ! grep -q '"error" *: *[1-9]' "/tmp/$_tag.json"; then
			result "$_tag" PASS "fio ok, $_ios I/Os, huge pages in use mid-job: ${_hu:-?}"
		else
			result "$_tag" FAIL "fio rc=$_rc ios=${_ios:-?}: $(head -c 300 "/tmp/$_tag.err")"
		fi
	done
done

case " $JOBS " in *" C "*) net_job ;; esac

if [ "$VERIFY" = 1 ]; then
	# shellcheck disable=SC2046
	set -- $(nvme_disk viommu-nvme) || true
	if [ -n "${2:-}" ]; then
		if fio_verify "$2" 16M; then
			result verify PASS "crc32c verify on file-backed $2: $FIO_DETAIL"
		else
			result verify FAIL "crc32c verify on file-backed $2: $FIO_DETAIL"
		fi
	else
		result verify FAIL "file-backed NVMe (serial viommu-nvme) not found"
	fi
fi

# Release the NVMe controllers while the IOMMU still translates: at poweroff
# the kernel shuts devices down in PCI order, and a controller shut down
# after the virtio-iommu device has been reset waits for its admin command
# timeouts (measured: about two minutes with the in-tree driver). How a
# driver behaves at shutdown is the end-to-end suite's business, not the
# benchmark's.
_t0=$(uptime_s)
for _c in /sys/bus/pci/drivers/nvme/0000:*; do
	[ -e "$_c" ] && basename "$_c" >/sys/bus/pci/drivers/nvme/unbind
done
info "nvme controllers unbound in $(echo "$(uptime_s) $_t0" | awk '{printf "%.2f", $1-$2}') s"

# With bench/run.sh --insn-profile, the kernel's and modules' function
# addresses of this boot (KASLR), gzipped onto the virtio-blk disk, where
# the host names the profiled blocks with them.
if [ "${bench_prof:-0}" = 1 ]; then
	modload virtio_blk
	_k=0
	while [ ! -b /dev/vda ] && [ $_k -lt 100 ]; do sleep 0.1; _k=$((_k + 1)); done
	if [ -b /dev/vda ] &&
		awk '$2 ~ /^[tTwW]$/' /proc/kallsyms | gzip -c | dd of=/dev/vda bs=64k conv=fsync 2>/dev/null; then
		result kallsyms PASS "function addresses written to /dev/vda"
	else
		result kallsyms FAIL "could not write /proc/kallsyms to /dev/vda"
	fi
fi

_bad=$(dmesg_bad | head -n 20)
if [ -z "$_bad" ]; then
	result dmesg PASS "no warnings, oopses or BUGs in the kernel log"
else
	result dmesg FAIL "$_bad"
fi
