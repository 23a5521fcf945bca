#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Run the virtio-iommu-fq KUnit suites under QEMU (TCG) with kunit.py.
#
#   kunit/run.sh [--arch=arm64] [SOURCE]
#                               SOURCE: a kernel source tarball or tree
#                               (default: Debian's linux-source-6.12 tarball)
#   KUNIT_SOURCE=...            same as the argument
#   KUNIT_FILTER='glob'         run only matching suites (kunit.py filter_glob)
#   KUNIT_PREPARE_ONLY=1        prepare the tree, do not build or run
#   --arch=arm64, KUNIT_ARCH=arm64
#                               the same suites in an arm64 kernel, cross-built
#                               (aarch64-linux-gnu-) and run under
#                               qemu-system-aarch64 -M virt (TCG); its build
#                               directory and SUITE line (kunit-arm64) are
#                               its own
#
# The kernel tree is a cache copy under $VIOMMU_CACHE/kunit/, never the
# user's tree: the module's src/ and kunit/ are copied into
# drivers/iommu/virtio-iommu-fq/ there and one line is added to
# drivers/iommu/Kconfig and drivers/iommu/Makefile. The build directory is
# kept, so reruns are incremental. Prints KUnit's own totals, fails on any
# report of KASAN, lockdep, UBSAN, kmemleak or a WARN/BUG in the kernel log,
# and ends with "SUITE kunit: N passed, N failed, N skipped".
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/common.sh disable=SC1091
. "$TOP/scripts/common.sh"

KCACHE=$VIOMMU_CACHE/kunit
ARCH=${KUNIT_ARCH:-x86_64}
case ${1:-} in
--arch=*) ARCH=${1#--arch=}; shift ;;
esac
SOURCE=${1:-${KUNIT_SOURCE:-}}
FILTER=${KUNIT_FILTER:-}
LOCK=$VIOMMU_CACHE/heavy.lock
case $ARCH in
x86_64) SUITE=kunit ;;
arm64) SUITE=kunit-arm64 ;;
*) echo "KUNIT_ARCH must be x86_64 or arm64, not '$ARCH'" >&2; exit 2 ;;
esac

summary() {
	echo "SUITE $SUITE: $1 passed, $2 failed, $3 skipped"
}

fail_early() {
	log "error: $*"
	summary 0 1 0
	exit 1
}

# Build dependencies (qemu, flex, bison, libelf, linux-source-6.12, ...).
if [ -z "${KUNIT_SKIP_DEPS:-}" ]; then
	bash "$TOP/scripts/host-deps.sh" >/dev/null ||
		fail_early "scripts/host-deps.sh failed"
fi

mkdir -p "$KCACHE"
if [ -z "$SOURCE" ]; then
	SOURCE=$(find /usr/src -maxdepth 1 -name 'linux-source-6.12.tar.*' | sort | head -n1)
	[ -n "$SOURCE" ] || fail_early "no /usr/src/linux-source-6.12.tar.* (apt-get install linux-source-6.12)"
fi
[ -e "$SOURCE" ] || fail_early "kernel source $SOURCE does not exist"

# The cache tree and build directory, named after the source.
if [ -d "$SOURCE" ]; then
	name=$(basename "$(cd "$SOURCE" && pwd)")
else
	name=$(basename "$SOURCE")
	name=${name%%.tar*}
fi
TREE=$KCACHE/$name
BUILD=$KCACHE/build
[ "$name" = linux-source-6.12 ] || BUILD=$KCACHE/build-$name
[ "$ARCH" = x86_64 ] || BUILD=$BUILD-$ARCH

if [ ! -f "$TREE/.extracted" ] || [ "$SOURCE" -nt "$TREE/.extracted" ]; then
	log "preparing kernel tree $TREE from $SOURCE"
	rm -rf "$TREE" "$BUILD"
	if [ -d "$SOURCE" ]; then
		mkdir -p "$TREE"
		rsync -a --exclude=.git "$SOURCE"/ "$TREE"/
	else
		tmp=$KCACHE/.extract.$$
		rm -rf "$tmp"
		mkdir -p "$tmp"
		tar -C "$tmp" -xf "$SOURCE"
		top=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d | head -n1)
		if [ -z "$top" ] || [ ! -f "$top/Makefile" ]; then
			fail_early "$SOURCE does not contain a kernel tree"
		fi
		mv "$top" "$TREE"
		rm -rf "$tmp"
	fi
	touch "$TREE/.extracted"
fi
[ -x "$TREE/tools/testing/kunit/kunit.py" ] || fail_early "$TREE has no kunit.py"

# Place the module: production sources and the suites, side by side.
DEST=$TREE/drivers/iommu/virtio-iommu-fq
# Copied files get the current time (no -t): a file edited before the last
# build but copied after it must still be rebuilt. Unchanged files are left
# alone (--checksum), so reruns stay incremental.
mkdir -p "$DEST"
rsync -rl --delete --checksum --exclude='*.o' --exclude='.*.cmd' "$TOP/src/" "$DEST/src/"
rsync -rl --delete --checksum --exclude='*.o' --exclude='.*.cmd' --exclude=run.sh \
	"$TOP/kunit/" "$DEST/kunit/"
rsync -rl --checksum "$TOP/VERSION" "$DEST/VERSION"
kline='source "drivers/iommu/virtio-iommu-fq/kunit/Kconfig"'
# shellcheck disable=SC2016 # a make variable, not a shell one
mline='obj-$(CONFIG_VIRTIO_IOMMU_FQ) += virtio-iommu-fq/kunit/'
grep -qxF "$kline" "$TREE/drivers/iommu/Kconfig" ||
	printf '\n%s\n' "$kline" >>"$TREE/drivers/iommu/Kconfig"
grep -qxF "$mline" "$TREE/drivers/iommu/Makefile" ||
	printf '%s\n' "$mline" >>"$TREE/drivers/iommu/Makefile"

if [ -n "${KUNIT_PREPARE_ONLY:-}" ]; then
	log "tree ready: $TREE (build directory $BUILD)"
	exit 0
fi

OUT=$BUILD/run-output.txt
mkdir -p "$BUILD"
# no5lvl: 4-level paging, the common case (with -cpu max the guest would
# use 5-level paging, where an early-boot KASAN report was seen once).
if [ "$ARCH" = arm64 ]; then
	# kunit.py's arm64 machine: -machine virt -cpu max (TCG).
	args=(run --arch=arm64 --cross_compile=aarch64-linux-gnu- --build_dir="$BUILD"
	      --kunitconfig="$DEST/kunit/.kunitconfig"
	      --jobs="$(nproc)" --timeout=1800
	      --qemu_args="-smp 2 -accel tcg,thread=multi")
else
	args=(run --arch=x86_64 --build_dir="$BUILD"
	      --kunitconfig="$DEST/kunit/.kunitconfig"
	      --jobs="$(nproc)" --timeout=900 --kernel_args=no5lvl
	      --qemu_args="-smp 2 -cpu max -accel tcg,thread=multi")
fi
[ -z "$FILTER" ] || args+=("$FILTER")

REPORT='BUG:|WARNING:|UBSAN:|kmemleak:|Kernel panic|general protection fault'
LOG=$BUILD/test.log

# Run kunit.py once; set rc, passed, failed, skipped, early_only.
run_once() {
	local totals reports early start_line start
	log "kunit.py ${args[*]} (waiting for $LOCK)"
	start=$(date +%s)
	set +e
	(cd "$TREE" && flock "$LOCK" python3 tools/testing/kunit/kunit.py "${args[@]}") 2>&1 |
		tee "$OUT"
	rc=${PIPESTATUS[0]}
	set -e
	log "kunit.py exited $rc after $(( $(date +%s) - start )) s"

	# KUnit's own totals, e.g. "Testing complete. Ran 90 tests: passed: 90".
	totals=$(sed 's/\x1b\[[0-9;]*m//g' "$OUT" | grep -o 'Testing complete\. Ran [0-9]* tests.*' | tail -n1 || true)
	passed=$(count "$totals" passed)
	failed=$(( $(count "$totals" failed) + $(count "$totals" crashed) + $(count "$totals" errors) ))
	skipped=$(count "$totals" skipped)
	if [ -z "$totals" ]; then
		log "no KUnit totals in the output (build or boot failure)"
		failed=$(( failed + 1 ))
	fi
	echo "KUnit totals: ${totals:-none}"

	# Reports of the kernel's debugging checks fail the run: every report
	# once the tests started, and any earlier one that involves this
	# module. A report before the tests from the kernel alone is not ours,
	# but it taints the kernel and switches lockdep off: run again, once.
	early_only=""
	if [ ! -f "$LOG" ]; then
		log "no kernel log $LOG"
		failed=$(( failed + 1 ))
		return
	fi
	start_line=$(grep -n -m1 'KTAP version' "$LOG" | cut -d: -f1 || true)
	start_line=${start_line:-1}
	reports=$(tail -n "+$start_line" "$LOG" | grep -E "$REPORT" || true)
	early=$(head -n "$start_line" "$LOG" | grep -E "$REPORT" || true)
	if [ -n "$early" ]; then
		if head -n "$start_line" "$LOG" | grep -qE 'viommu|vfake|virtio_iommu|virtio-iommu'; then
			reports=$(printf '%s\n%s' "$early" "$reports")
		else
			log "kernel report before the tests started, not involving this module:"
			echo "$early" | head -n 10 >&2
			early_only=1
		fi
	fi
	if [ -n "$reports" ]; then
		log "kernel debugging reports in $LOG:"
		echo "$reports" | head -n 40 >&2
		failed=$(( failed + 1 ))
	fi
}

count() { echo "$1" | grep -o "$2: [0-9]*" | grep -o '[0-9]*$' || echo 0; }

run_once
if [ -n "$early_only" ]; then
	log "running again: the first boot's debugging was not trustworthy"
	run_once
	[ -z "$early_only" ] || failed=$(( failed + 1 ))
fi
[ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1

summary "$passed" "$failed" "$skipped"
[ "$failed" -eq 0 ]
