#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The benchmark (DESIGN.md section 5): boots the Debian 12 6.12 guest under
# QEMU TCG (q35, 2 vCPUs) once per configuration, configurations alternating
# round after round, and runs two fio workloads on an NVMe device with a null
# backend (QEMU null-co):
#   A  randwrite, bs=64k, iodepth=16, one job per vCPU        -> bandwidth
#   B  randrw 50/50, bs=4k, iodepth=128, one job              -> IOPS, mean
#                                                                completion latency
# with fio's buffers in hugetlbfs 2 MiB pages ("huge") and, with --ordinary,
# also in fio's default malloc buffers ("ordinary", a separate table); and,
# with --jobs A,B,C, a network job:
#   C  a virtio-net device behind the IOMMU (iommu_platform=on) on QEMU's
#      user networking, driven from the host (bench/netclient.py): receive
#      and transmit streams (Mbit/s) and one-byte request-response
#      (transactions/s), --runtime s each
# With --arch arm64, the guest is Debian 12's arm64 6.12 kernel under
# qemu-system-aarch64 -M virt -cpu max (device tree), the module cross-built
# (scripts/cross-arm64.sh), and the hardware-IOMMU peer is QEMU's emulated
# SMMUv3 (-M virt,iommu=smmuv3) instead of VT-d.
#
#   bench/run.sh [--arch x86_64|arm64] [--rounds N] [--runtime S] [--configs a,b,...] [--ordinary]
#                [--bufs L] [--verify] [--smoke] [--out DIR] [--profile S] [--insns]
#                [--insn-profile] [--lock-profile] [--jobs L] [--list]
#
#   --arch A       the guest's architecture: x86_64 (default) or arm64
#   --rounds N     rounds (default 8, the fewest for headline figures); each
#                  round boots every configuration once
#   --runtime S    seconds per fio job (default 8)
#   --configs L    comma-separated configurations (default: all; --list shows them)
#   --ordinary     also run both jobs with ordinary buffers (second table)
#   --bufs L       buffer kinds explicitly: huge, ordinary or huge,ordinary
#   --verify       in each boot of this module, also a 16 MiB fio crc32c verify
#                  on the file-backed NVMe
#   --smoke        CI: 1 round of no-iommu and lazy+map-mq, runtime 2 s;
#                  figures only, no thresholds
#   --out DIR      results directory (default $VIOMMU_CACHE/bench/<UTC timestamp>)
#   --profile S    record the host's QEMU process with perf (cpu-clock samples,
#                  all threads) for S seconds from each job's start; reports
#                  by thread, by DSO and by symbol in each run directory
#                  (perf-<job>.txt); needs S < runtime
#   --insns        count the guest's instructions per I/O, kernel and user
#                  apart (a TCG plugin, bench/plugin/): a figure that does
#                  not depend on the host's load or speed; slows TCG a little
#   --jobs L       comma-separated jobs among A, B, C (default A,B)
#   --lock-profile QEMU's lock profile (-enable-sync-profile) over each fio
#                  job: the time QEMU's threads waited for its global lock
#                  (BQL) and for all its locks, per I/O (slows QEMU a little)
#   --insn-profile with --insns, also the guest kernel's instructions per I/O
#                  by component and function (DIR/insn-profile.md, from
#                  bench/insn-profile.py); slows TCG further, so the
#                  throughput figures of such a run are not headline figures
#
# Output: DIR/<round>-<config>/ (QEMU logs, results.log), DIR/results.json
# (every run: fio's JSON, this module's counters, boot attempts), DIR/summary.md
# (tables), DIR/chart.png; a copy of summary.md, results-summary.json and
# chart.png in bench/results/ (bench/results/arm64/ for arm64; not for --smoke). The last line is
# `SUITE bench: N passed, N failed, N skipped`, one case per boot
# (configuration x round): it passes when the configuration ran and produced
# figures. A boot that dies in early boot is retried (tests/lib/vm.sh retries
# once; this script calls it up to twice) and counted in the report.
set -euo pipefail
# The whole script is one compound command, parsed before it runs: editing
# this file during a long run cannot change the running benchmark.
{
TOP=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tests/lib/initramfs.sh
. "$TOP/tests/lib/initramfs.sh"
# shellcheck source=../tests/lib/vm.sh
. "$TOP/tests/lib/vm.sh"

# name  driver  group-type  map_batching  shadow_on_flush  guest-cmdline-extra
# (driver vtd: x86_64 only; smmu: arm64 only)
ALL_CONFIGS=(
	"no-iommu       none    -       - - -"
	"intree-strict  intree  DMA     - - iommu.strict=1"
	"intree-lazy    intree  DMA-FQ  - - iommu.strict=0"
	"vtd-strict     vtd     DMA     - - intel_iommu=on iommu.strict=1"
	"vtd-lazy       vtd     DMA-FQ  - - intel_iommu=on iommu.strict=0"
	"smmu-strict    smmu    DMA     - - iommu.strict=1"
	"smmu-lazy      smmu    DMA-FQ  - - iommu.strict=0"
	"strict         ours    DMA     0 0 -"
	"strict+map     ours    DMA     1 0 -"
	"lazy-mq        ours    DMA-FQ  0 0 -"
	"lazy-sq        ours    DMA-FQ  0 1 -"
	"lazy+map-mq    ours    DMA-FQ  1 0 -"
	"lazy+map-sq    ours    DMA-FQ  1 1 -"
)

ARCH=x86_64 ROUNDS=8 RUNTIME=8 CONFIGS="" ORDINARY=0 BUFS="" VERIFY=0 SMOKE=0 OUT="" PROFILE=0 INSNS=0 INSN_PROFILE=0 LOCK_PROFILE=0 JOBS=A,B
ARGS_GIVEN="$*"
usage() { sed -n '3,55p' "$0" | sed 's/^# \{0,1\}//'; }
need_arg() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi; }
while [ $# -gt 0 ]; do
	case $1 in
	--arch) need_arg "$@"; ARCH=$2; shift ;;
	--rounds) need_arg "$@"; ROUNDS=$2; shift ;;
	--runtime) need_arg "$@"; RUNTIME=$2; shift ;;
	--configs) need_arg "$@"; CONFIGS=$2; shift ;;
	--ordinary) ORDINARY=1 ;;
	--bufs) need_arg "$@"; BUFS=$2; shift ;;
	--verify) VERIFY=1 ;;
	--smoke) SMOKE=1 ;;
	--out) need_arg "$@"; OUT=$2; shift ;;
	--profile) need_arg "$@"; PROFILE=$2; shift ;;
	--insns) INSNS=1 ;;
	--insn-profile) INSNS=1 INSN_PROFILE=1 ;;
	--jobs) need_arg "$@"; JOBS=$2; shift ;;
	--lock-profile) LOCK_PROFILE=1 ;;
	--list) LIST=1 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done
case $ARCH in
x86_64) NOT_HERE=smmu QEMU=qemu-system-x86_64 ;;
arm64) NOT_HERE=vtd QEMU=qemu-system-aarch64 ;;
*) die "--arch must be x86_64 or arm64, got '$ARCH'" ;;
esac
# The configurations of this architecture.
ARCH_CONFIGS=()
for c in "${ALL_CONFIGS[@]}"; do
	read -r _ drv _ <<<"$c"
	[ "$drv" = "$NOT_HERE" ] || ARCH_CONFIGS+=("$c")
done
if [ "${LIST:-0}" = 1 ]; then
	for c in "${ARCH_CONFIGS[@]}"; do echo "${c%% *}"; done
	exit 0
fi
if [ "$SMOKE" = 1 ]; then
	ROUNDS=1 RUNTIME=2
	[ -n "$CONFIGS" ] || CONFIGS=no-iommu,lazy+map-mq
fi
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || die "--rounds must be 1..99, got '$ROUNDS'"
[[ $JOBS =~ ^[ABC](,[ABC]){0,2}$ ]] || die "--jobs must list A, B and/or C, got '$JOBS'"
NET=0
[[ ,$JOBS, == *,C,* ]] && NET=1
NFIO=0
[[ ,$JOBS, == *,A,* ]] && NFIO=$((NFIO + 1))
[[ ,$JOBS, == *,B,* ]] && NFIO=$((NFIO + 1))
[[ $RUNTIME =~ ^[1-9][0-9]{0,2}$ ]] || die "--runtime must be 1..999 seconds, got '$RUNTIME'"
[[ $PROFILE =~ ^[0-9]{1,3}$ ]] || die "--profile must be a number of seconds, got '$PROFILE'"
if [ "$PROFILE" -gt 0 ]; then
	[ "$PROFILE" -lt "$RUNTIME" ] || die "--profile $PROFILE must be shorter than --runtime $RUNTIME"
	command -v perf >/dev/null || die "--profile needs perf (Debian package linux-perf)"
fi

# Selected configurations, in the canonical order.
declare -A CFG=()
for c in "${ARCH_CONFIGS[@]}"; do CFG[${c%% *}]=$c; done
SEL=()
if [ -z "$CONFIGS" ]; then
	for c in "${ARCH_CONFIGS[@]}"; do SEL+=("${c%% *}"); done
else
	for c in ${CONFIGS//,/ }; do
		[ -n "${CFG[$c]:-}" ] || die "unknown configuration '$c' on $ARCH (known: $(bash "$0" --arch "$ARCH" --list | tr '\n' ' '))"
		SEL+=("$c")
	done
fi
[ ${#SEL[@]} -gt 0 ] || die "no configuration selected"
if [ -z "$BUFS" ]; then
	BUFS=huge
	[ "$ORDINARY" = 1 ] && BUFS=huge,ordinary
fi
case $BUFS in
huge | ordinary) NBUFS=1 ;;
huge,ordinary | ordinary,huge) NBUFS=2 ;;
*) die "--bufs must be huge, ordinary or huge,ordinary, got '$BUFS'" ;;
esac

command -v "$QEMU" >/dev/null || die "$QEMU missing: run scripts/host-deps.sh"
command -v fio >/dev/null || die "fio missing: run scripts/host-deps.sh"
[ -x /usr/bin/python3 ] || die "/usr/bin/python3 missing: run scripts/host-deps.sh"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
[ -n "$OUT" ] || OUT=$VIOMMU_CACHE/bench/$STAMP
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
T0=$(date +%s)

# ---- kernel, module, initramfs ---------------------------------------------------

export VM_ARCH=$ARCH
if [ "$ARCH" = arm64 ]; then
	kver=$("$TOP/scripts/guest-kernels.sh" bookworm-arm64 | tail -n1)
	ko=$("$TOP/scripts/cross-arm64.sh" bookworm 2>"$OUT/build.log" | tail -n1) ||
		die "cross-building the module for arm64 failed (see $OUT/build.log)"
	# The results port is a virtio console on virtio-mmio (tests/lib/vm.sh).
	VIOMMU_GUEST_MODULES+=" virtio_mmio"
else
	kver=$("$TOP/scripts/guest-kernels.sh" bookworm | tail -n1)
	ko=$("$TOP/scripts/build-module.sh" "$kver" 2>"$OUT/build.log" | tail -n1) ||
		die "building the module for $kver failed (see $OUT/build.log)"
fi
tree=$VIOMMU_CACHE/kernels/$kver
kernel=$tree/boot/vmlinuz-$kver
[ -f "$ko" ] || die "no module built (see $OUT/build.log)"
modver=$(modinfo -F version "$ko")
modsrc=$(modinfo -F srcversion "$ko")
initrd=$OUT/initrd.img
extra=("$ko:lib/modules/ours/virtio-iommu.ko")
PLUGIN=""
if [ "$INSNS" = 1 ]; then
	{ read -r PLUGIN && read -r mark; } < <(bash "$TOP/bench/plugin/build.sh" "$ARCH") ||
		die "building the instruction-counting plugin failed"
	extra+=("$mark:bin/viommu-mark")
fi
# The network job's NIC driver.
[ "$NET" = 1 ] && VIOMMU_GUEST_MODULES+=" virtio_net"
viommu_initramfs "$initrd" "$tree" "$kver" "$TOP/bench/guest.sh" "${extra[@]}"
git_rev=$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$(git -C "$TOP" status --porcelain --untracked-files=no -- src 2>/dev/null | wc -l)

# meta.json: the machine and the command.
/usr/bin/python3 - "$OUT/meta.json" <<EOF
import json, os, platform, subprocess, sys
def sh(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return ""
json.dump({
    "command": "bench/run.sh $ARGS_GIVEN",
    "arch": "$ARCH",
    "started_utc": "$STAMP",
    "rounds": $ROUNDS, "runtime_s": $RUNTIME, "buffers": "$BUFS".split(","),
    "configs": "${SEL[*]}".split(), "smoke": $SMOKE, "verify": $VERIFY,
    "guest_kernel": "$kver", "module_version": "$modver", "module_srcversion": "$modsrc",
    "git": "$git_rev", "src_uncommitted_files": $git_dirty,
    "host": {
        "cpu": sh("sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1"),
        "cpus": os.cpu_count(),
        "mem": sh("free -g | awk '/^Mem:/{print \$2\" GiB\"}'"),
        "kernel": platform.release(),
        "os": sh(". /etc/os-release && echo \$PRETTY_NAME"),
        "qemu": sh("$QEMU --version | head -n1"),
        "fio": sh("fio --version"),
        "loadavg_start": sh("cat /proc/loadavg"),
    },
    "qemu": "$([ "$ARCH" = arm64 ] && echo virt || echo q35), -accel tcg,thread=multi -cpu max, -smp $VM_SMP -m $VM_MEM",
}, open(sys.argv[1], "w"), indent=1)
EOF

# ---- runs ---------------------------------------------------------------------------

NSEL=${#SEL[@]}
TOTAL=$((ROUNDS * NSEL))
# First guess of one boot's wall time: ~30 s of boot and setup, ~4 s of fio
# start-up per job.
EST_BOOT=$((30 + NFIO * NBUFS * (RUNTIME + 4) + NET * 3 * (RUNTIME + 4) + VERIFY * 10))
done_n=0 done_s=0 passed=0 failed=0 skipped=0 boot_failures=0
FINDINGS=$VIOMMU_CACHE/bench-findings.md

fmt_s() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }

# record_finding RUNDIR CFG ROUND WHAT: append a console excerpt for the lead.
record_finding() ( # runs in a subshell: a failing grep must not end the benchmark
	set +e +o pipefail
	local d=$1 what=$4 excerpt
	excerpt=$(tr -d '\r' <"$d/console.log" | grep -n -m1 -E 'BUG:|Oops|WARNING:|general protection|Kernel panic|Call Trace|did not answer|timed out' |
		cut -d: -f1)
	{
		echo
		echo "## $(date -u +%FT%TZ) bench: configuration $2, round $3: $what"
		echo
		echo "Run directory: \`$d\` (module $modver srcversion $modsrc, git $git_rev)."
		echo
		echo '```'
		grep -E '^(RESULT .* FAIL|INFO bench)' "$d/results.log" 2>/dev/null | cut -c1-400 || true
		grep -E '^METRIC ctr:' "$d/results.log" 2>/dev/null | cut -c1-600 || true
		echo '--- console: virtio_iommu lines'
		tr -d '\r' <"$d/console.log" | grep -E 'virtio_iommu|iommu group' | head -n 20 || true
		echo '--- console: excerpt'
		if [ -n "$excerpt" ]; then
			tr -d '\r' <"$d/console.log" | sed -n "$((excerpt > 5 ? excerpt - 5 : 1)),$((excerpt + 45))p"
		else
			tr -d '\r' <"$d/console.log" | tail -n 30
		fi
		echo '```'
	} >>"$FINDINGS"
	log "finding recorded in $FINDINGS"
)

# qemu_ticks PID: sets TICKS to a time stamp, then "<name> <ticks>" per
# thread of PID (utime + stime in clock ticks; thread names come from -name
# debug-threads=on, spaces as _), and a "total" line for the whole process.
# Fails if the process is gone. Builtins only: it runs every 0.2 s.
qemu_ticks() {
	local t c v line f out
	out="$EPOCHREALTIME"$'\n'
	for t in /proc/"$1"/task/*; do
		{ read -r c <"$t/comm" && read -r line <"$t/stat"; } 2>/dev/null || continue
		read -r -a f <<<"${line##*) }"
		out+="${c// /_} $((f[11] + f[12]))"$'\n'
	done
	{ read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
	read -r -a f <<<"${line##*) }"
	v=$((f[11] + f[12]))
	TICKS="${out}total $v"$'\n'
}

# job_close RUNDIR TAG HZ: RUNDIR/cpu-TAG.txt from the job's first sample and
# the last one taken while it ran (wall seconds, CPU seconds per thread).
job_close() {
	local d=$1 tag=$2 hz=$3
	[ -s "$d/.cpu-start-$tag" ] && [ -s "$d/.cpu-last" ] || return 0
	awk -v hz="$hz" 'NR == FNR { if (FNR == 1) t0 = $1; else a[$1] += $2; next }
		FNR == 1 { wall = $1 - t0; next }
		{ b[$1] += $2 }
		END {
			if (!("total" in a) || !("total" in b) || b["total"] < a["total"] || wall <= 0) exit 1
			printf "wall_s %.3f\n", wall
			for (k in b) if (k in a) printf "%s %.3f\n", (k == "total" ? "cpu_s" : "thread:" k), (b[k] - a[k]) / hz
		}' "$d/.cpu-start-$tag" "$d/.cpu-last" >"$d/cpu-$tag.txt" || rm -f "$d/cpu-$tag.txt"
	rm -f "$d/.cpu-start-$tag"
}

# free_ports N: N TCP ports free on 127.0.0.1 now, comma-separated.
free_ports() {
	/usr/bin/python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(",".join(str(s.getsockname()[1]) for s in ss))
' "$1"
}

# job_insns RUNDIR: RUNDIR/insn-<tag>.txt from the plugin's marks
# (RUNDIR/insns.txt) and the order of the jobs in results.log: "kernel N",
# "user N", guest instructions from just before to just after the job's
# fio; "steady_kernel N", "steady_user N", "steady_ios N", the same over
# the job's steady state (marks 3 and 4, bench/guest.sh) and the disk's
# I/Os in it.
job_insns() {
	local d=$1
	awk 'FNR == NR { if ($1 == "mark") { id[++n] = $2; k[n] = $6; u[n] = $8 }; next }
		/^INFO job .* start/ { tags[++t] = $3 }
		/^METRIC steady:/ { sub(/^steady:/, "", $2); sios[$2] = $4 - $3 }
		END {
			j = 0; s = 0; a1 = 0; a3 = 0
			for (i = 1; i <= n; i++) {
				if (id[i] == 1)
					a1 = i
				if (id[i] == 3)
					a3 = i
				if (id[i] == 2 && a1 && ++j <= t) {
					f = dir "/insn-" tags[j] ".txt"
					printf "kernel %d\nuser %d\n", k[i] - k[a1], u[i] - u[a1] >>f
					close(f)
					a1 = 0
				}
				if (id[i] == 4 && a3 && ++s <= t && sios[tags[s]] > 0) {
					f = dir "/insn-" tags[s] ".txt"
					printf "steady_kernel %d\nsteady_user %d\nsteady_ios %d\n",
						k[i] - k[a3], u[i] - u[a3], sios[tags[s]] >>f
					close(f)
					a3 = 0
				}
			}
		}' dir="$d" "$d/insns.txt" "$d/results.log" 2>/dev/null || true
}

# job_watch RUNDIR (background, killed when the boot ends): for each fio job
# of the guest, from its "INFO job <tag> start" line to its "RESULT <tag>"
# line, the host CPU time the QEMU process used (per thread), written to
# RUNDIR/cpu-<tag>.txt. The end mark is the last sample taken (every 0.2 s
# while a job runs) before the RESULT line was seen, so that a guest that
# powers off right after its last job cannot leave a half-read sample. With
# --profile, also perf-record the QEMU process for $PROFILE seconds from the
# job's start.
job_watch() {
	set +e +o pipefail
	local d=$1 tag pid="" p seen=" " ended=" " hz active rfd="" tfd part line="" arg args
	hz=$(getconf CLK_TCK)
	# Each tick forks nothing: results.log is read incrementally, /proc
	# with builtins (tests/lib/vm.sh waits the same way).
	exec {tfd}<> <(:)
	while read -r -t 0.2 -u "$tfd" _ || true; do
		if [ -z "$pid" ] || [ ! -d "/proc/$pid" ]; then
			pid=""
			[ -z "$rfd" ] || exec {rfd}<&-
			rfd="" line=""
			for p in $(pgrep -f "^$QEMU "); do
				mapfile -d '' args <"/proc/$p/cmdline" 2>/dev/null
				for arg in "${args[@]}"; do
					case $arg in
					"file:$d/attempt-"*/results.log) pid=$p; exec {rfd}<"${arg#file:}" ;;
					esac
				done
				[ -z "$pid" ] || break
			done
			[ -n "$pid" ] || continue
		fi
		# New result lines: job starts and ends.
		while IFS= read -r -u "$rfd" part; do
			line+=$part
			case $line in
			"INFO job "*" start"*)
				tag=${line#INFO job }
				tag=${tag%% *}
				case $seen in *" $tag "*) ;; *)
					seen+="$tag "
					rm -f "$d/.cpu-start-$tag"
					! qemu_ticks "$pid" || printf '%s' "$TICKS" >"$d/.cpu-start-$tag"
					if [ "$PROFILE" -gt 0 ]; then
						perf record -q -e cpu-clock -F 499 -p "$pid" -o "$d/perf-$tag.data" -- sleep "$PROFILE" \
							>/dev/null 2>"$d/perf-$tag.err" &
					fi
					;;
				esac
				;;
			"RESULT "*)
				tag=${line#RESULT }
				tag=${tag%% *}
				case $seen in *" $tag "*) ;; *) tag="" ;; esac
				case $ended in *" $tag "*) tag="" ;; esac
				[ -n "$tag" ] && job_close "$d" "$tag" "$hz"
				[ -z "$tag" ] || ended+="$tag "
				;;
			esac
			line=""
		done
		line+=$part
		active=0
		for tag in $seen; do
			case $ended in *" $tag "*) ;; *) active=1 ;; esac
		done
		if [ $active = 1 ] && qemu_ticks "$pid"; then
			printf '%s' "$TICKS" >"$d/.cpu-last"
		fi
	done
}

# profile_report RUNDIR: perf-<tag>.txt from each perf-<tag>.data.
profile_report() (
	set +e +o pipefail
	local f out
	for f in "$1"/perf-*.data; do
		[ -f "$f" ] || continue
		out=${f%.data}.txt
		{
			echo "# $(basename "$1") $(basename "$f" .data): perf record -e cpu-clock -F 499 -p <qemu> for ${PROFILE}s"
			echo "## by thread and DSO"
			perf report -i "$f" --stdio --sort comm,dso 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 16
			echo "## by DSO"
			perf report -i "$f" --stdio --sort dso 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 12
			echo "## by thread and symbol (top 40)"
			perf report -i "$f" --stdio --sort comm,dso,sym 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 40
			echo "## symbols of device emulation (iommu, virtio, nvme, address space, BQL, events)"
			perf report -i "$f" --stdio --sort sym 2>/dev/null | grep -v '^#' |
				grep -iE 'iommu|virtio|nvme|address_space|flatview|iotlb|qemu_mutex|bql|aio_|event_notifier|g_tree|vtd_' | head -n 30
		} >"$out"
	done
)

run_one() { # ROUND CONFIG
	local r=$1 name=$2 drv type map sq extra d append status t1 n tries qargs=()
	read -r _ drv type map sq extra <<<"${CFG[$name]}"
	d=$OUT/r$r-$name
	append="bench_cfg=$name bench_drv=$drv bench_type=$type bench_rt=$RUNTIME bench_bufs=$BUFS bench_jobs=$JOBS"
	append+=" bench_verify=$([ "$drv" = ours ] && echo "$VERIFY" || echo 0)"
	[ "$map" != - ] && append+=" bench_map=$map bench_sq=$sq"
	[ "$INSN_PROFILE" = 1 ] && append+=" bench_prof=1"
	if [ "$LOCK_PROFILE" = 1 ]; then
		append+=" bench_lockprof=1"
		qargs+=(-enable-sync-profile)
	fi
	[ "$extra" != - ] && append+=" $extra"
	local iommu=1 machine=""
	case $drv in
	none) iommu=0 ;;
	# Interrupt remapping off: under TCG the guest's IO-APIC timer check
	# through a remapped IO-APIC fails now and then (early-boot panic "timer
	# doesn't work through Interrupt-remapped IO-APIC"); DMA remapping, the
	# part compared here, is unaffected.
	vtd) iommu=0; qargs+=(-device "intel-iommu,intremap=off") ;;
	smmu) iommu=0 machine=iommu=smmuv3 ;;
	esac
	# Named QEMU threads (CPU 0/TCG, ...) for the CPU accounting and --profile.
	qargs+=(-name "bench-$name,debug-threads=on")
	qargs+=(-blockdev "driver=null-co,node-name=benchnull,size=8589934592"
		-device "nvme,serial=bench-null,drive=benchnull")
	if [ -n "$PLUGIN" ]; then
		rm -f "$d/insns.txt" "$d/prof-blocks.txt"
		if [ "$INSN_PROFILE" = 1 ]; then
			qargs+=(-plugin "$PLUGIN,out=$d/insns.txt,prof=$d/prof-blocks.txt")
		else
			qargs+=(-plugin "$PLUGIN,out=$d/insns.txt")
		fi
	fi
	t1=$(date +%s)
	local netclient=""
	if [ "$NET" = 1 ]; then
		local ports port fwd="" gport=5202
		# Host ports for the guest's echo, sink and source (5202-5204).
		ports=$(free_ports 3)
		for port in ${ports//,/ }; do
			fwd+=",hostfwd=tcp:127.0.0.1:$port-10.0.2.15:$gport"
			gport=$((gport + 1))
		done
		# virtio-net rather than e1000e: QEMU's e1000e receives at a few
		# Mbit/s from user networking here, with or without an IOMMU.
		# shellcheck disable=SC2054 # commas belong to QEMU's option syntax
		qargs+=(-netdev "user,id=benchnet,net=10.0.2.0/24$fwd"
			-device virtio-net-pci,netdev=benchnet,iommu_platform=on,disable-legacy=on)
		mkdir -p "$d"
		rm -f "$d/net-C.json"
		/usr/bin/python3 "$TOP/bench/netclient.py" --logs "$d/attempt-*/results.log" \
			--out "$d/net-C.json" --ports "$ports" --runtime "$RUNTIME" --timeout 900 \
			>"$d/netclient.log" 2>&1 &
		netclient=$!
	fi
	job_watch "$d" &
	local watcher=$!
	status=fail tries=""
	for n in 1 2; do
		if VM_MACHINE_OPTS=$machine VM_KEEP_DISKS=$INSN_PROFILE VM_IOMMU=$iommu VM_TIMEOUT=$((150 + NFIO * NBUFS * (RUNTIME + 15) + NET * 3 * (RUNTIME + 10))) VM_DISK_SIZE=64M \
			viommu_vm_run "$d" "$kernel" "$initrd" "$append" -- "${qargs[@]}"; then
			tries+="$VM_ATTEMPTS"
			status=ok
			break
		fi
		tries+="$VM_ATTEMPTS"
		# QEMU refusing its command line is not an early-boot crash.
		if grep -qs "^$QEMU: " "$d"/attempt-*/qemu.out; then
			tries+=" [QEMU error: $(grep -hm1 "^$QEMU: " "$d"/attempt-*/qemu.out | head -n1 | cut -c1-200)]"
			status=qemu-error
			break
		fi
		[ "$VM_STATUS" = infra ] || break
		tries+=" | "
	done
	kill "$watcher" 2>/dev/null || true
	if [ -n "$netclient" ]; then
		kill "$netclient" 2>/dev/null || true
		wait "$netclient" 2>/dev/null || true
	fi
	wait "$watcher" 2>/dev/null || true
	rm -f "$d"/.cpu-*
	rm -f "$d"/insn-*.txt
	[ -z "$PLUGIN" ] || job_insns "$d"
	if [ "$INSN_PROFILE" = 1 ]; then
		# The guest's function addresses (bench/guest.sh, bench_prof).
		gzip -dc <"$d/vblk.img" 2>/dev/null >"$d/kallsyms.txt" || true
		rm -f "$d/nvme.img" "$d/vblk.img"
	fi
	[ "$PROFILE" -gt 0 ] && profile_report "$d"
	n=$(grep -o 'infrastructure failure' <<<"$tries" | wc -l || true)
	[ "$status" = qemu-error ] && n=0
	boot_failures=$((boot_failures + n))
	echo "$tries" >"$d/attempts.txt"
	echo "$n" >"$d/boot_failures"
	cat /proc/loadavg >"$d/loadavg"
	local cases fails
	cases=$(viommu_vm_results "$d" || true)
	fails=$(grep -c '^FAIL' <<<"$cases" || true)
	if [ "$NET" = 1 ] && ! /usr/bin/python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if r.get("rr_per_s", 0) > 0 and "error" not in r else 1)' "$d/net-C.json" 2>/dev/null; then
		cases+=$'\n'"FAIL network job: no host figures ($(head -c 200 "$d/net-C.json" 2>/dev/null; tail -n 2 "$d/netclient.log" 2>/dev/null | tr '\n' ' '))"
		fails=$((fails + 1))
	fi
	if [ "$status" = ok ] && [ "$fails" -eq 0 ] && grep -q '^GUEST-DONE' "$d/results.log"; then
		passed=$((passed + 1))
		echo "PASS bench $name round $r ($tries)"
	else
		failed=$((failed + 1))
		echo "FAIL bench $name round $r ($tries)"
		grep '^FAIL' <<<"$cases" | sed 's/^/    /' | cut -c1-300 || true
		record_finding "$d" "$name" "$r" "$(grep -m1 '^FAIL' <<<"$cases" | cut -c1-200)${status:+ [boot: $status]}"
	fi
	if [ "$fails" -eq 0 ]; then
		local warn=""
		grep -qE 'BUG:|Oops|WARNING:|general protection|Call Trace' "$d/console.log" 2>/dev/null &&
			warn="kernel warning in the console"
		grep -qE 'virtio_iommu.*(did not answer|timed out|timeout|fault)' "$d/console.log" 2>/dev/null &&
			warn="${warn:+$warn; }virtio_iommu error in the console: $(grep -m1 -E 'virtio_iommu.*(did not answer|timed out|timeout|fault)' "$d/console.log" | tr -d '\r' | cut -c1-150)"
		grep -qE '^METRIC ctr:.*err_[a-z]*=[1-9]' "$d/results.log" 2>/dev/null &&
			warn="${warn:+$warn; }error counters: $(grep -E '^METRIC ctr:' "$d/results.log" | grep -oE '(ctr:[A-Z]-[a-z]+|err_[a-z]*=[1-9][0-9]*)' | tr '\n' ' ')"
		if [ -n "$warn" ]; then
			echo "    WARNING: $warn (figures kept; recorded in $FINDINGS)"
			record_finding "$d" "$name" "$r" "$warn (every case passed)"
		fi
	fi
	/usr/bin/python3 "$TOP/bench/report.py" --quick "$d" || true
	done_n=$((done_n + 1))
	done_s=$((done_s + $(date +%s) - t1))
}

log "bench ($ARCH): ${#SEL[@]} configurations x $ROUNDS rounds, ${RUNTIME}s per job, buffers $BUFS, guest $kver, module $modver ($modsrc), results in $OUT"
for r in $(seq 1 "$ROUNDS"); do
	# Rotate the order every round so that no configuration always runs
	# right after the same neighbour (drift and warm-up effects cancel).
	for i in $(seq 0 $((NSEL - 1))); do
		name=${SEL[$(((i + r - 1) % NSEL))]}
		left=$((TOTAL - done_n))
		per=$EST_BOOT
		[ "$done_n" -gt 0 ] && per=$((done_s / done_n))
		log "round $r/$ROUNDS, configuration $((i + 1))/$NSEL: $name (boot $((done_n + 1))/$TOTAL, elapsed $(fmt_s $(($(date +%s) - T0))), about $(fmt_s $((left * per))) left, load $(cut -d' ' -f1-3 /proc/loadavg))"
		run_one "$r" "$name"
	done
done

# ---- report -------------------------------------------------------------------------

elapsed=$(($(date +%s) - T0))
rep_args=("$OUT" --elapsed "$elapsed" --boot-failures "$boot_failures")
if [ "$SMOKE" = 0 ]; then
	pub=$TOP/bench/results
	[ "$ARCH" = x86_64 ] || pub+=/$ARCH
	rep_args+=(--publish "$pub")
fi
/usr/bin/python3 "$TOP/bench/report.py" "${rep_args[@]}" || {
	log "report generation failed"
	failed=$((failed + 1))
}
[ -f "$OUT/summary.md" ] && cat "$OUT/summary.md"
if [ "$INSN_PROFILE" = 1 ]; then
	if /usr/bin/python3 "$TOP/bench/insn-profile.py" "$OUT" >"$OUT/insn-profile.md"; then
		echo "guest kernel instructions per I/O by function: $OUT/insn-profile.md"
	else
		log "instruction profile failed"
		failed=$((failed + 1))
	fi
fi
echo
echo "results: $OUT (total $(fmt_s "$elapsed"), $boot_failures early-boot failures retried)"
echo "SUITE bench: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
exit
}
