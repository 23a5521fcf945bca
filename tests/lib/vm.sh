# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# tests/lib/vm.sh - boot a test guest under QEMU TCG and collect its results.
#
# Source this file. The guest is always: q35 (or virt, VM_ARCH=arm64),
# -accel tcg,thread=multi, -cpu max, -smp 2, -m 2G, a virtio-iommu-pci, an
# NVMe disk and a virtio-blk disk (sparse raw files in the run directory),
# no network, serial port 0 = kernel console (console.log), serial port 1
# (arm64: a virtio console) = the results port (results.log, see
# guest-lib.sh), panic=-1 and -no-reboot so that a panic, a poweroff or a
# reboot all end QEMU at once.
#
#   viommu_vm_run DIR KERNEL INITRD [APPEND] [-- QEMU ARGS...]
#
# boots once; if that boot is an infrastructure failure it boots once more
# (an early-boot crash under multi-threaded TCG, e.g. an int3 during kernel
# text patching, or a guest that printed nothing). Each attempt keeps its
# logs in DIR/attempt-<n>/; the last attempt's logs are linked as
# DIR/console.log and DIR/results.log. Knobs (environment):
#   VM_TIMEOUT   seconds before QEMU is killed (default 600)
#   VM_START_TIMEOUT  seconds the guest has to reach /init (GUEST-START)
#                before the boot counts as hung in early boot (default 180;
#                an early-boot hang under TCG is an infrastructure failure)
#   VM_SHUTDOWN_CAP  seconds QEMU may run after the guest's SHUTDOWN line
#                before it is ended (default 120; VM_STATUS=shutdown-capped)
#   VM_DISK_SIZE size of each disk image (default 256M)
#   VM_KEEP_DISKS=1  keep DIR/nvme.img and DIR/vblk.img after the run, and
#                boot the ones already there (files or symlinks) instead of
#                fresh ones: a second run boots the same disks, e.g. to
#                resume from hibernation. The caller removes them.
#   VM_SMP VM_MEM          (default 2, 2G)
# QEMU's monitor is DIR/attempt-<n>/qmp.sock. A guest line
# "HOST-QMP <delay-seconds> <json> [<json>...]" on the results port makes the
# host send those QMP commands (each a JSON object without spaces) after the
# delay; the replies are logged in DIR/attempt-<n>/qmp.log.
#   VM_IOMMU=0             no virtio-iommu-pci (e.g. for a no-IOMMU baseline)
#   VM_ARCH=arm64          qemu-system-aarch64 -M virt (device tree) instead
#                          of q35; kernel console on ttyAMA0, results on a
#                          virtio console (/dev/hvc0) on virtio-mmio
#   VM_MACHINE_OPTS        appended to -machine, e.g. iommu=smmuv3 (virt's
#                          emulated SMMUv3) or intel-iommu options of q35
# Sets, for the caller:
#   VM_STATUS    ok | infra | timeout | nostart | shutdown-capped
#                (of the last attempt)
#   VM_ATTEMPTS  human-readable summary of every attempt
#   VM_SHUTDOWN_S  host seconds from the guest's SHUTDOWN line to QEMU's exit
#                  (empty if the guest never announced a shutdown)
#   VM_WALL_S    host seconds the last attempt took
# Returns 0 if the guest started its test script (GUEST-START seen).
#
#   viommu_vm_results DIR: judge DIR/results.log: prints one line per case
#   ("PASS|FAIL|SKIP <case> <detail>", a PLAN-ned case without RESULT is a
#   FAIL), and sets VM_PASS VM_FAIL VM_SKIP counts.

VM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The guest keeps time with the HPET, not the TSC. Under TCG the guest's TSC
# is the host's, read raw, while the HPET and the local APIC timer follow
# the host's monotonic clock. A host that is itself a VM may be paused and
# resumed (e.g. snapshotted): its TSC then moves on by the pause and its
# monotonic clock does not, so a guest on the TSC sees its clock jump, and
# every timeout and watchdog in it fires at once (seen: an RCU stall
# reported at guest time 195 s in a boot that took 49 s of host time).
# Costs about 4 % of an e2e boot's wall time.
VM_CLOCK="clocksource=hpet tsc=unstable"
VM_TIMEOUT=${VM_TIMEOUT:-600}
VM_START_TIMEOUT=${VM_START_TIMEOUT:-180}
VM_SHUTDOWN_CAP=${VM_SHUTDOWN_CAP:-120}
VM_DISK_SIZE=${VM_DISK_SIZE:-256M}
VM_SMP=${VM_SMP:-2}
VM_MEM=${VM_MEM:-2G}
VM_IOMMU=${VM_IOMMU:-1}
VM_ARCH=${VM_ARCH:-x86_64}
VM_MACHINE_OPTS=${VM_MACHINE_OPTS:-}
VM_KEEP_DISKS=${VM_KEEP_DISKS:-0}
export VM_SHUTDOWN_S VM_WALL_S VM_ATTEMPTS VM_STATUS

# _vm_now_us: the host's wall clock in microseconds (no fork).
_vm_now_us() {
	local t=$EPOCHREALTIME
	echo $((${t%.*} * 1000000 + 10#${t#*.}))
}

# _vm_us_to_s US DIGITS: microseconds as seconds with 1 or 2 decimals.
_vm_us_to_s() {
	if [ "$2" = 1 ]; then
		printf '%d.%01d' $(($1 / 1000000)) $(($1 % 1000000 / 100000))
	else
		printf '%d.%02d' $(($1 / 1000000)) $(($1 % 1000000 / 10000))
	fi
}

# _vm_kill PID: end QEMU, forcefully if it does not go within a second.
_vm_kill() {
	kill "$1" 2>/dev/null || true
	sleep 1
	kill -9 "$1" 2>/dev/null || true
}

# _vm_host_qmp ADIR "DELAY JSON...": the guest asked the host for an event
# from outside (hot-plug, wake-up): after DELAY seconds, send each JSON
# command to QEMU's monitor; replies go to ADIR/qmp.log.
_vm_host_qmp() {
	local adir=$1 delay=${2%% *} rest=${2#* } cmds=()
	read -r -a cmds <<<"$rest"
	printf '%s request: after %ss: %s\n' "$EPOCHREALTIME" "$delay" "$rest" >>"$adir/qmp.log"
	(
		sleep "$delay"
		python3 "$VM_LIB_DIR/qmp.py" "$adir/qmp.sock" "${cmds[@]}"
	) >>"$adir/qmp.log" 2>&1 &
}

# _vm_hang_dump ADIR PID: the guest is about to be ended for hanging; first
# have it say where it is. Through QEMU's monitor: every vCPU's registers,
# then SysRq-w (blocked tasks) and SysRq-l (a backtrace of every CPU) typed
# on the guest's keyboard (the guests boot with sysrq_always_enabled), whose
# output reaches the console; then the registers again. A monitor that does
# not answer means QEMU itself is stuck: its threads' states and (with gdb)
# their stacks follow. Everything goes to ADIR/hang.log. A guest that only
# missed a wake-up may go on after the key presses: the console shows it.
_vm_hang_dump() {
	local adir=$1 pid=$2 k regs sysrq=() t
	regs='{"execute":"human-monitor-command","arguments":{"command-line":"info registers -a"}}'
	for k in w l; do
		sysrq+=("{\"execute\":\"send-key\",\"arguments\":{\"keys\":[{\"type\":\"qcode\",\"data\":\"alt\"},{\"type\":\"qcode\",\"data\":\"sysrq\"},{\"type\":\"qcode\",\"data\":\"$k\"}]}}")
	done
	{
		echo "== $(date -u +%T) registers, then SysRq-w and SysRq-l"
		timeout 20 python3 "$VM_LIB_DIR/qmp.py" "$adir/qmp.sock" "$regs" "${sysrq[@]}"
		sleep 5
		echo "== $(date -u +%T) registers 5 s later"
		timeout 20 python3 "$VM_LIB_DIR/qmp.py" "$adir/qmp.sock" "$regs" ||
			echo "== the monitor did not answer"
		echo "== QEMU's threads: tid name state wchan"
		for t in /proc/"$pid"/task/*; do
			echo "${t##*/} $(cat "$t/comm") $(awk '{print $3}' "$t/stat") $(cat "$t/wchan")"
		done
		if command -v gdb >/dev/null; then
			echo "== QEMU's threads' stacks"
			timeout 60 gdb -p "$pid" -batch -nx -ex 'thread apply all bt 12'
		fi
	} >>"$adir/hang.log" 2>&1
	sleep 5
}

# _viommu_vm_boot_once ADIR KERNEL INITRD APPEND QEMU-ARGS...
_viommu_vm_boot_once() {
	local adir=$1 kernel=$2 initrd=$3 append=$4 pid start now sd_at="" end started=""
	shift 4
	local qemu="qemu-system-x86_64" args
	# shellcheck disable=SC2054 # commas belong to QEMU's option syntax
	if [ "$VM_ARCH" = arm64 ]; then
		# virt has one UART (the console): results go to a virtio console
		# on virtio-mmio, outside the IOMMU's reach (guest-init.sh).
		qemu="qemu-system-aarch64"
		args=(
			-machine "virt${VM_MACHINE_OPTS:+,$VM_MACHINE_OPTS}" -accel tcg,thread=multi -cpu max
			-smp "$VM_SMP" -m "$VM_MEM"
			-display none -monitor none -nic none -no-reboot
			-serial "file:$adir/console.log"
			-device virtio-serial-device
			-chardev "file,id=results,path=$adir/results.log"
			-device virtconsole,chardev=results
			-qmp "unix:$adir/qmp.sock,server=on,wait=off"
			-kernel "$kernel" -initrd "$initrd"
			-append "console=ttyAMA0 panic=-1 printk.time=1 sysrq_always_enabled VIOMMU_RESULTS_TTY=/dev/hvc0 viommu_results_mod=virtio_mmio $append"
		)
	else
		args=(
			-machine "q35${VM_MACHINE_OPTS:+,$VM_MACHINE_OPTS}" -accel tcg,thread=multi -cpu max
			-smp "$VM_SMP" -m "$VM_MEM"
			-display none -monitor none -nic none -no-reboot
			-serial "file:$adir/console.log" -serial "file:$adir/results.log"
			-qmp "unix:$adir/qmp.sock,server=on,wait=off"
			-kernel "$kernel" -initrd "$initrd"
			-append "console=ttyS0,115200 panic=-1 printk.time=1 sysrq_always_enabled $VM_CLOCK $append"
		)
	fi
	[ "$VM_IOMMU" = 1 ] && args+=(-device virtio-iommu-pci)
	args+=(
		-drive "if=none,id=nvm,format=raw,file=$adir/../nvme.img"
		-device "nvme,serial=viommu-nvme,drive=nvm"
		-drive "if=none,id=vblk,format=raw,file=$adir/../vblk.img"
		-device "virtio-blk-pci,drive=vblk"
	)
	mkdir -p "$adir"
	: >"$adir/console.log"
	: >"$adir/results.log"
	rm -f "$adir/qmp.sock"
	printf '%q ' "$qemu" "${args[@]}" "$@" >"$adir/qemu.cmd"
	echo >>"$adir/qemu.cmd"
	# The wait below forks nothing per tick (builtins only, results.log
	# read incrementally), so the host stays quiet while the guest runs.
	start=$(_vm_now_us)
	"$qemu" "${args[@]}" "$@" >"$adir/qemu.out" 2>&1 &
	pid=$!
	VM_STATUS=ok
	local rfd tfd line="" part now
	exec {rfd}<"$adir/results.log"
	exec {tfd}<> <(:)
	while kill -0 "$pid" 2>/dev/null; do
		now=$(_vm_now_us)
		while IFS= read -r -u "$rfd" part; do
			line+=$part
			case $line in
			GUEST-START*) started=1 ;;
			SHUTDOWN\ *) [ -n "$sd_at" ] || sd_at=$now ;;
			HOST-QMP\ *) _vm_host_qmp "$adir" "${line#HOST-QMP }" ;;
			esac
			line=""
		done
		line+=$part
		if [ -z "$started" ] && [ $((now - start)) -gt $((VM_START_TIMEOUT * 1000000)) ]; then
			VM_STATUS=timeout
			echo "no GUEST-START after ${VM_START_TIMEOUT}s (early-boot hang): killed" >"$adir/runner.log"
			_vm_kill "$pid"
			break
		fi
		if [ -n "$sd_at" ] && [ $((now - sd_at)) -gt $((VM_SHUTDOWN_CAP * 1000000)) ]; then
			VM_STATUS=shutdown-capped
			echo "QEMU still running ${VM_SHUTDOWN_CAP}s after the guest's SHUTDOWN line: killed (state: hang.log, console.log)" >"$adir/runner.log"
			_vm_hang_dump "$adir" "$pid"
			_vm_kill "$pid"
			break
		fi
		if [ $((now - start)) -gt $((VM_TIMEOUT * 1000000)) ]; then
			VM_STATUS=timeout
			_vm_hang_dump "$adir" "$pid"
			_vm_kill "$pid"
			break
		fi
		read -r -t 0.2 -u "$tfd" _ || true
	done
	exec {rfd}<&- {tfd}<&-
	wait "$pid" 2>/dev/null || true
	end=$(_vm_now_us)
	VM_WALL_S=$(_vm_us_to_s $((end - start)) 1)
	VM_SHUTDOWN_S=""
	if [ -n "$sd_at" ] && [ "$VM_STATUS" = ok ]; then
		VM_SHUTDOWN_S=$(_vm_us_to_s $((end - sd_at)) 2)
	fi
	tr -d '\r' <"$adir/results.log" >"$adir/results.tmp" && mv "$adir/results.tmp" "$adir/results.log"
	if ! grep -q '^GUEST-START ' "$adir/results.log"; then
		# The guest never reached /init: an infrastructure failure if the
		# kernel died or said nothing; otherwise still "nostart".
		if grep -qE 'Kernel panic|int3|general protection fault|BUG:' "$adir/console.log" ||
			[ ! -s "$adir/console.log" ] || [ "$VM_STATUS" = timeout ]; then
			VM_STATUS=infra
		else
			VM_STATUS=nostart
		fi
	fi
}

# _vm_platform_fault ADIR: print why the emulated machine itself broke
# during the attempt, if it did; print nothing otherwise. The evidence
# counted is a CPU state no guest software can create: an RFLAGS value with
# a reserved bit set (3, 5, 15, 22-63), in a register dump the guest kernel
# printed (an Oops or WARNING) or in QEMU's own view of a vCPU (hang.log).
# POPF, IRET and SYSRET never load those bits, so such a value means the
# emulator's CPU state is corrupt, whatever the guest did. Seen under
# multi-threaded TCG after an S3 wake-up (QEMU 7.2): garbage RFLAGS on the
# boot CPU and the second CPU left running firmware code.
_vm_platform_fault() {
	local adir=$1 v what
	while read -r what v; do
		[ -n "$v" ] || continue
		if (((0x$v & ~0x3f7fd7) != 0)); then
			echo "$what RFLAGS $v has reserved bits set: the emulated CPU state is corrupt"
			return
		fi
	done < <(
		grep -ahoE 'EFLAGS: [0-9a-f]{8,16}' "$adir/console.log" 2>/dev/null | sed 's/^EFLAGS:/guest-printed/'
		grep -ahoE 'RFL=[0-9a-f]{8,16}' "$adir/hang.log" 2>/dev/null | sed 's/^RFL=/vCPU /'
	)
}

# _viommu_vm_why ADIR: a one-line reason for a failed attempt.
_viommu_vm_why() {
	local l
	l=$(_vm_platform_fault "$1")
	[ -n "$l" ] || l=$(cat "$1/runner.log" 2>/dev/null)
	[ -n "$l" ] || l=$(grep -m1 -E 'Kernel panic|int3|general protection fault|BUG:' "$1/console.log" 2>/dev/null | tr -d '\r' | cut -c1-160)
	[ -n "$l" ] || { [ -s "$1/console.log" ] && l="no GUEST-START; last console line: $(tr -d '\r' <"$1/console.log" | grep -v '^$' | tail -n1 | cut -c1-120)"; }
	echo "${l:-no console output}"
}

viommu_vm_run() {
	local dir=$1 kernel=$2 initrd=$3 append="" n
	shift 3
	if [ $# -gt 0 ] && [ "$1" != "--" ]; then append=$1; shift; fi
	[ "${1:-}" = "--" ] && shift
	[ -f "$kernel" ] || die "kernel $kernel not found"
	[ -f "$initrd" ] || die "initrd $initrd not found"
	mkdir -p "$dir"
	rm -rf "$dir"/attempt-*
	VM_ATTEMPTS=""
	for n in 1 2; do
		# Fresh, empty disks for every attempt (unless kept).
		if [ "$VM_KEEP_DISKS" != 1 ] || [ ! -e "$dir/nvme.img" ] || [ ! -e "$dir/vblk.img" ]; then
			rm -f "$dir/nvme.img" "$dir/vblk.img"
			truncate -s "$VM_DISK_SIZE" "$dir/nvme.img" "$dir/vblk.img"
		fi
		_viommu_vm_boot_once "$dir/attempt-$n" "$kernel" "$initrd" "$append" "$@"
		[ -z "$(_vm_platform_fault "$dir/attempt-$n")" ] || VM_STATUS=infra
		ln -sfn "attempt-$n/console.log" "$dir/console.log"
		ln -sfn "attempt-$n/results.log" "$dir/results.log"
		case $VM_STATUS in
		infra)
			VM_ATTEMPTS+="attempt $n: infrastructure failure after ${VM_WALL_S}s ($(_viommu_vm_why "$dir/attempt-$n")); "
			;;
		*)
			VM_ATTEMPTS+="attempt $n: $VM_STATUS in ${VM_WALL_S}s"
			[ "$VM_STATUS" = nostart ] && VM_ATTEMPTS+=" ($(_viommu_vm_why "$dir/attempt-$n"))"
			break
			;;
		esac
	done
	[ "$VM_KEEP_DISKS" = 1 ] || rm -f "$dir/nvme.img" "$dir/vblk.img"
	[ "$VM_STATUS" != infra ] && [ "$VM_STATUS" != nostart ]
}

viommu_vm_results() {
	local log=$1/results.log c s d
	VM_PASS=0 VM_FAIL=0 VM_SKIP=0
	declare -A seen=()
	while read -r _ c s d; do
		case $s in
		PASS) VM_PASS=$((VM_PASS + 1)) ;;
		SKIP) VM_SKIP=$((VM_SKIP + 1)) ;;
		*) VM_FAIL=$((VM_FAIL + 1)); s=FAIL ;;
		esac
		seen[$c]=1
		echo "$s $c $d"
	done < <(grep '^RESULT ' "$log" 2>/dev/null)
	# shellcheck disable=SC2013 # case names are single words
	for c in $(grep '^PLAN ' "$log" 2>/dev/null | cut -d' ' -f2-); do
		if [ -z "${seen[$c]:-}" ]; then
			seen[$c]=1
			VM_FAIL=$((VM_FAIL + 1))
			echo "FAIL $c no result (guest stopped early; see $1/console.log)"
		fi
	done
}
