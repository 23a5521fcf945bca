#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Every test suite of the project, from a fresh Debian 12 machine or a warm
# cache: installs what is needed, then runs the suites one after another
# (the machine has two cores; suites never run concurrently):
#   style    W=1 / sparse / sid W=1 builds, checkpatch --strict
#   kunit    KUnit suites against a fake device (kunit.py, x86_64 QEMU)
#   kunit-arm64  the same suites in an arm64 kernel (kunit.py --arch=arm64,
#            cross-built, qemu-system-aarch64 -M virt)
#   e2e      the module in real 6.12 and sid guests (QEMU, virtio-iommu-pci)
#   e2e-arm64  the same boots that apply on arm64 in Debian 12's two arm64
#            kernels, 6.12 and 6.1 (qemu-system-aarch64 -M virt, device
#            tree), with the module cross-built (scripts/cross-arm64.sh)
#   install  the .deb/.rpm packages, installed with DKMS in a Debian 12 amd64
#            chroot (a fresh overlay of the image suite's base each run;
#            this host gets no package)
#   image    a Debian 12 disk image booting from NVMe behind the IOMMU
#   bench    smoke round of the benchmark (figures only, no thresholds)
# and, only when named (make check-all):
#   e2e-arm64-sid  the arm64 boots in sid's arm64 kernel (its build is in
#            the style suite)
#   e2e-arm64-lifecycle  the lifecycle boot in Debian 12's arm64 6.12 kernel
#            (hot-unplug, remove, unbind, module reload under I/O)
#   install-arm64  the .deb installed with DKMS in a Debian 12 arm64 chroot
#            under qemu-user, for Debian's arm64 6.12 and 6.1 kernels, its
#            build booted in the arm64 e2e guest (tests/install/run.sh
#            --arch arm64)
#   e2e-intree  the e2e boots of the lifecycle, tool, suspend and hibernate
#            cases on the kernel's own driver: the comparison column, FIGURE
#            lines only (tests/e2e/run.sh --intree)
#   e2e-arm64-intree  the arm64 boots, lifecycle included, on the kernel's
#            own driver (figures)
# Each suite prints its own results and a `SUITE <name>: ...` line; this
# script ends with the totals over all suites: `N passed, N failed`.
#
#   tests/run-all.sh [SUITE...]     (default: all but the last three, in the order above)
#   tests/run-all.sh --all          every suite, the in-tree runs last
set -uo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$TOP/scripts/common.sh"

declare -A SUITES=(
	[style]="tests/style/run.sh"
	[kunit]="kunit/run.sh"
	[kunit-arm64]="kunit/run.sh --arch=arm64"
	[e2e]="tests/e2e/run.sh"
	[e2e-arm64]="tests/e2e/run.sh bookworm-arm64 bookworm61-arm64"
	[e2e-arm64-sid]="tests/e2e/run.sh sid-arm64"
	[install]="tests/install/run.sh"
	[install-arm64]="tests/install/run.sh --arch arm64"
	[image]="tests/image/run.sh"
	[bench]="bench/run.sh --smoke"
	[e2e-intree]="tests/e2e/run.sh --intree --boots lifecycle,tool,suspend,hibernate"
	[e2e-arm64-lifecycle]="tests/e2e/run.sh --boots lifecycle bookworm-arm64"
	[e2e-arm64-intree]="tests/e2e/run.sh --intree --boots main,after-reboot,before-reboot,after-poweroff,unload,tool,lifecycle bookworm-arm64"
)
ORDER=(style kunit kunit-arm64 e2e e2e-arm64 install image bench)
[ "${1:-}" = --all ] && set -- "${ORDER[@]}" e2e-arm64-sid e2e-arm64-lifecycle install-arm64 e2e-intree e2e-arm64-intree
[ $# -gt 0 ] && ORDER=("$@")

bash "$TOP/scripts/host-deps.sh" >/dev/null || die "host dependencies could not be installed"

mkdir -p "$VIOMMU_CACHE/logs"
passed=0 failed=0 skipped=0 broken=()
for s in "${ORDER[@]}"; do
	cmd=${SUITES[$s]:-}
	[ -n "$cmd" ] || die "unknown suite '$s' (known: ${ORDER[*]})"
	log=$VIOMMU_CACHE/logs/$s.log
	start=$(date +%s)
	log "=== suite $s: $cmd"
	# shellcheck disable=SC2086
	(cd "$TOP" && bash $cmd) 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	lines=$(grep -E '^SUITE [^:]+: [0-9]+ passed, [0-9]+ failed' "$log" || true)
	if [ -z "$lines" ]; then
		log "suite $s printed no SUITE line (exit $rc): counted as 1 failure"
		failed=$((failed + 1))
		broken+=("$s")
		continue
	fi
	while read -r line; do
		p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")
		f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
		k=$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<<"$line")
		passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + ${k:-0}))
	done <<<"$lines"
	if [ "$rc" -ne 0 ] && ! grep -qE ' [1-9][0-9]* failed' <<<"$lines"; then
		log "suite $s exited $rc without a counted failure: counted as 1 failure"
		failed=$((failed + 1))
		broken+=("$s")
	fi
	log "=== suite $s done in $(($(date +%s) - start)) s (exit $rc)"
done

echo
for s in "${ORDER[@]}"; do grep -h -E '^SUITE ' "$VIOMMU_CACHE/logs/$s.log" 2>/dev/null; done
[ ${#broken[@]} -eq 0 ] || echo "suites that broke: ${broken[*]}"
echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
