# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=sh
#
# Guest-side test library (busybox ash), installed in the initramfs as
# /lib/viommu/guest-lib.sh and sourced by /init and /test.sh.
#
# Reporting protocol, written to the second serial port (/dev/ttyS1, the
# host's results.log; the kernel console stays on ttyS0 so kernel messages
# never interleave with results). One line each:
#   GUEST-START <kver> <uptime>        /init reached (boot was fine)
#   PLAN <case>...                     cases this boot will report
#   RESULT <case> PASS|FAIL|SKIP <detail>
#   INFO <text>                        free text for the log
#   METRIC <name> <value>              a figure for the report (never judged)
#   FIGURE <case> <text>               what a peer (the in-tree driver) did in
#                                      a case: reported, never judged
#   GUEST-DONE                         the script ran to its end
#   SHUTDOWN <poweroff|reboot> <uptime>  about to call reboot(2)
#   HOST-QMP <delay-s> <json>...       ask the host to send these QMP commands
#                                      to QEMU after delay-s seconds (events
#                                      from outside: hot-plug, wake-up)
# The host fails every planned case that has no RESULT.

VIOMMU_RESULTS_TTY=${VIOMMU_RESULTS_TTY:-/dev/ttyS1}
VIOMMU_OURS_KO=/lib/modules/ours/virtio-iommu.ko
VIOMMU_INTREE_KO=/lib/modules/intree/virtio-iommu.ko

_emit() {
	# One line, no newlines inside; to the results port and the console.
	_l=$(printf '%s' "$*" | tr '\n\r\t' '   ')
	echo "$_l" >"$VIOMMU_RESULTS_TTY"
	echo "$_l"
}

uptime_s() { cut -d' ' -f1 /proc/uptime; }
guest_start() { _emit "GUEST-START $(uname -r) $(uptime_s)"; }
guest_done() { _emit "GUEST-DONE"; }
plan() { _emit "PLAN $*"; }
info() { _emit "INFO $*"; }
metric() { _emit "METRIC $1 $2"; }
figure() { _f=$1; shift; _emit "FIGURE $_f $*"; }
# host_qmp DELAY JSON...: each JSON one QMP command object without spaces.
host_qmp() { _emit "HOST-QMP $*"; }

# result CASE PASS|FAIL|SKIP DETAIL...
result() {
	_c=$1 _s=$2
	shift 2
	_emit "RESULT $_c $_s $*"
}

# check CASE DETAIL -- CMD...: PASS if CMD succeeds, FAIL otherwise.
check() {
	_c=$1 _d=$2
	shift 3
	if "$@"; then result "$_c" PASS "$_d"; else result "$_c" FAIL "$_d"; fi
}

# shutdown_now poweroff|reboot: report, then reboot(2) at once (-f: no init
# to ask). The host measures the time from this line to QEMU's exit.
shutdown_now() {
	sync
	_emit "SHUTDOWN $1 $(uptime_s)"
	sleep 0.2
	"$1" -f
	sleep 60
}

# ---- modules --------------------------------------------------------------

mod_loaded() { [ -d "/sys/module/$(echo "$1" | tr - _)" ]; }

# modload NAME [PARAM=V...]: insmod NAME and its dependencies (list computed
# on the host); parameters go to NAME itself.
modload() {
	_m=$1
	shift
	[ -f "/lib/modules/deps/$_m" ] || { info "modload: no module $_m"; return 1; }
	_last=$(tail -n1 "/lib/modules/deps/$_m")
	while read -r _f; do
		_mname=$(basename "$_f" .ko)
		mod_loaded "$_mname" && continue
		if [ "$_f" = "$_last" ]; then
			insmod "$_f" "$@" || return 1
		else
			insmod "$_f" || return 1
		fi
	done <"/lib/modules/deps/$_m"
}

# load_viommu ours|intree [PARAM=V...]
load_viommu() {
	_w=$1
	shift
	case $_w in
	ours) insmod "$VIOMMU_OURS_KO" "$@" ;;
	intree) insmod "$VIOMMU_INTREE_KO" "$@" ;;
	*) return 1 ;;
	esac
}

# ---- PCI, groups, block devices ------------------------------------------

# pci_by_id VENDOR DEVICE: BDF of the first matching PCI function.
pci_by_id() {
	for _p in /sys/bus/pci/devices/*; do
		[ "$(cat "$_p/vendor")" = "$1" ] && [ "$(cat "$_p/device")" = "$2" ] &&
			{ basename "$_p"; return 0; }
	done
	return 1
}

# pci_by_class CLASS: BDF of the first function of that class (e.g. 0x010802).
pci_by_class() {
	for _p in /sys/bus/pci/devices/*; do
		[ "$(cat "$_p/class")" = "$1" ] && { basename "$_p"; return 0; }
	done
	return 1
}

nvme_bdf() { pci_by_class 0x010802; }
# virtio-blk: modern (0x1042) or transitional (0x1001) device id.
vblk_bdf() { pci_by_id 0x1af4 0x1042 || pci_by_id 0x1af4 0x1001; }

pci_driver() {
	[ -e "/sys/bus/pci/devices/$1/driver" ] || return 1
	basename "$(readlink "/sys/bus/pci/devices/$1/driver")"
}

group_of() {
	[ -e "/sys/bus/pci/devices/$1/iommu_group" ] || return 1
	basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")"
}

group_type() { cat "/sys/kernel/iommu_groups/$1/type"; }

# blkdev_of BDF: the whole-disk block device under that PCI function.
blkdev_of() {
	for _b in /sys/block/*; do
		case $(readlink -f "$_b") in
		*"/$1/"*) basename "$_b"; return 0 ;;
		esac
	done
	return 1
}

# wait_blkdev BDF [SECONDS]: wait for the disk to appear, print its name.
wait_blkdev() {
	_i=0
	while [ "$_i" -lt "$((${2:-20} * 10))" ]; do
		if blkdev_of "$1" >/dev/null && [ -b "/dev/$(blkdev_of "$1")" ]; then
			blkdev_of "$1"
			return 0
		fi
		usleep 100000
		_i=$((_i + 1))
	done
	return 1
}

# sysfs_write FILE VALUE: write VALUE (without a newline unless it has one),
# set SYSFS_ERR to the error text; return the write's status.
sysfs_write() {
	# dd (one write(2) of the whole value) reports the errno text, which
	# the shell's own redirection does not.
	SYSFS_ERR=$(printf '%s' "$2" | dd of="$1" bs=65536 2>&1 >/dev/null)
}

# sysfs_write_nl FILE VALUE: the same, with a trailing newline (as echo).
sysfs_write_nl() {
	SYSFS_ERR=$(printf '%s\n' "$2" | dd of="$1" bs=65536 2>&1 >/dev/null)
}

# set_group_type BDF TYPE: unbind the endpoint's driver, write the group
# type, rebind (the documented way to change a running device's mode).
# Sets SGT_ERR on failure.
set_group_type() {
	SGT_ERR=
	_drv=$(pci_driver "$1") || { SGT_ERR="$1 has no driver"; return 1; }
	_g=$(group_of "$1") || { SGT_ERR="$1 has no iommu group"; return 1; }
	echo "$1" >"/sys/bus/pci/drivers/$_drv/unbind" || { SGT_ERR="unbind failed"; return 1; }
	sysfs_write "/sys/kernel/iommu_groups/$_g/type" "$2"
	_rc=$?
	[ $_rc -eq 0 ] || SGT_ERR="write type $2: $SYSFS_ERR"
	echo "$1" >"/sys/bus/pci/drivers/$_drv/bind" || { SGT_ERR="$SGT_ERR; rebind failed"; return 1; }
	return $_rc
}

# ---- our instance: knobs and counters ------------------------------------

# viommu_inst: the /sys/class/iommu entry that has virtio-iommu-fq/.
viommu_inst() {
	for _d in /sys/class/iommu/*; do
		[ -d "$_d/virtio-iommu-fq" ] && { basename "$_d"; return 0; }
	done
	return 1
}

fqdir() { echo "/sys/class/iommu/$(viommu_inst)/virtio-iommu-fq"; }
cnt() { cat "$(fqdir)/$1"; }
# cnt_deferred: deferred UNMAP submissions, by every cause.
cnt_deferred() {
	echo $(($(cnt deferred_timer) + $(cnt deferred_full) + $(cnt deferred_flush) + $(cnt deferred_map_sync) + $(cnt deferred_sync)))
}
knob_set() { sysfs_write "$(fqdir)/$1" "$2"; }
reset_counters() { echo 1 >"$(fqdir)/reset_counters"; }

# ---- fio ------------------------------------------------------------------

# fio_verify DEV SIZE [FIO ARGS...]: write SIZE with random block sizes and
# crc32c checksums, read everything back and verify. Sets FIO_DETAIL; returns
# 0 only if fio succeeded, reported no error, and verified all SIZE bytes.
fio_verify() {
	_dev=$1 _size=$2
	shift 2
	fio --name=verify --filename="/dev/$_dev" --direct=1 --ioengine=libaio \
		--iodepth=16 --rw=randwrite --bsrange=4k-128k --bs_unaligned=0 \
		--size="$_size" --verify=crc32c --do_verify=1 --verify_fatal=1 \
		--output-format=terse --terse-version=3 "$@" >/tmp/fio.out 2>/tmp/fio.err
	_rc=$?
	fio_parse "$_rc" "$_size"
}

# fio_parse RC SIZE: judge /tmp/fio.out and /tmp/fio.err of a verify run.
fio_parse() {
	_line=$(grep '^3;' /tmp/fio.out | tail -n1)
	_err=$(echo "$_line" | cut -d';' -f5)
	_rkb=$(echo "$_line" | cut -d';' -f6)
	_want=$(($(echo "$2" | sed 's/[mM]$//') * 1024))
	FIO_DETAIL="rc=$1 err=${_err:-?} verified=${_rkb:-?}KiB/${_want}KiB"
	if grep -qi 'verify' /tmp/fio.err; then
		FIO_DETAIL="$FIO_DETAIL stderr: $(grep -i verify /tmp/fio.err | head -n3)"
	fi
	[ "$1" -eq 0 ] && [ "${_err:-1}" = 0 ] && [ "${_rkb:-0}" -eq "$_want" ]
}

# ---- kernel log -----------------------------------------------------------

# dmesg_bad: print kernel log lines that must never appear: warnings, bugs,
# oopses, unresolved symbols, stalls and lockups, and the driver's own
# "device did not answer" (QEMU's device always answers; a bounded wait that
# expires here means a lost request or notification).
dmesg_bad() {
	dmesg | grep -E 'WARNING:|BUG:|Unknown symbol|Oops|general protection|cut here|Call Trace|kernel BUG|list_del corruption|refcount_t:|detected stalls|soft lockup|blocked for more than|did not answer' || true
}
