#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build and style checks of the module, as a suite:
#  - builds warning-free with W=1 and with C=1 (sparse) on Debian 12's newest
#    6.12 kernel headers;
#  - builds warning-free with W=1 on sid's newest kernel (in the sid chroot);
#  - cross-builds warning-free with W=1 for Debian's arm64 6.12, 6.1 (the
#    6.1 iommu core, src/core61.c; with C=1 too, since that core is built
#    nowhere else) and sid kernels (scripts/cross-arm64.sh), with the
#    vermagic of those kernels;
#  - scripts/checkpatch.pl --strict --no-tree -f is clean on every source file;
#  - modinfo shows the version from VERSION;
#  - every shell script of the project is shellcheck-clean (all severities;
#    SC1091, "cannot follow a sourced file given at run time", excepted).
# Prints one line per case and `SUITE style: N passed, N failed, N skipped`.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
. "$TOP/scripts/common.sh"

pass=0 fail=0
report() { # CASE PASS|FAIL DETAIL
	echo "$2 style/$1 ${3:-}"
	if [ "$2" = PASS ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
}

# The compiler's own diagnostics (the lines that name a source file).
diagnostics() { grep -E '(warning|error):' "$1" | grep -v '^make' || true; }

check_build() { # CASE KVER MAKEARGS...
	local name=$1 kver=$2 out log ko
	shift 2
	log=$VIOMMU_CACHE/style-$name.log
	if ko=$(bash "$TOP/scripts/build-module.sh" "$kver" "$@" 2>"$log"); then
		out=$(diagnostics "$log")
		if [ -z "$out" ]; then
			report "$name" PASS "$kver $*: no warnings ($(basename "$ko"))"
		else
			report "$name" FAIL "$kver $*: $(echo "$out" | head -n3 | tr '\n' ' ')"
		fi
	else
		report "$name" FAIL "$kver $*: build failed: $(diagnostics "$log" | head -n3 | tr '\n' ' ')"
	fi
}

check_arm64() { # SUITE [MAKEARGS...] (W=1 is always given)
	local suite=$1 name=arm64-w1-$1 log ko out vm
	shift
	log=$VIOMMU_CACHE/style-$name.log
	set -- W=1 "$@"
	if ko=$(bash "$TOP/scripts/cross-arm64.sh" "$suite" "$@" 2>"$log"); then
		out=$(diagnostics "$log")
		vm=$(modinfo -F vermagic "$ko" 2>/dev/null || true)
		if [ -n "$out" ]; then
			report "$name" FAIL "$suite $*: $(echo "$out" | head -n3 | tr '\n' ' ')"
		elif ! echo "$vm" | grep -q -- '-arm64 .*aarch64'; then
			report "$name" FAIL "$suite: vermagic '$vm' is not an arm64 kernel's"
		else
			report "$name" PASS "$suite $*: no warnings, vermagic $vm"
		fi
	else
		report "$name" FAIL "$suite $*: build failed: $(diagnostics "$log" | head -n3 | tr '\n' ' ')$(tail -n1 "$log")"
	fi
}

bookworm=$(bash "$TOP/scripts/host-deps.sh")
sid=$(bash "$TOP/scripts/sid-chroot.sh")

check_build w1-bookworm "$bookworm" W=1
check_build sparse-bookworm "$bookworm" C=1 W=1
check_build w1-sid "$sid" W=1
check_arm64 bookworm
check_arm64 bookworm-6.1 C=1
check_arm64 sid

# The sparse build above (a plain build may not exist yet on a cold cache).
ko=$VIOMMU_CACHE/build/$bookworm/args/virtio-iommu.ko
want=$(cat "$TOP/VERSION")
got=$(modinfo -F version "$ko" 2>/dev/null || true)
if [ "$got" = "$want" ] && modinfo -F description "$ko" | grep -q '^virtio-iommu-fq'; then
	report modinfo PASS "version $got, name $(modinfo -F name "$ko")"
else
	report modinfo FAIL "version '$got', expected '$want'"
fi

tree=$(linux_source_tree)
files=$(cd "$TOP" && find src -maxdepth 1 \( -name '*.c' -o -name '*.h' \) ! -name '*.mod.c' | sort)
bad=""
for f in $files; do
	if ! out=$(cd "$TOP" && perl "$tree/scripts/checkpatch.pl" --strict --no-tree \
		--quiet -f "$f" 2>&1) || [ -n "$out" ]; then
		bad="$bad $f"
		echo "$out" | head -n 20 >&2
	fi
done
if [ -z "$bad" ]; then
	report checkpatch PASS "$(echo "$files" | wc -w) files clean with --strict"
else
	report checkpatch FAIL "not clean:$bad"
fi

# Every tracked shell script: *.sh, .ci/run and files with a sh/bash shebang.
scripts=()
while IFS= read -r f; do
	case $f in
	*.sh | .ci/run) scripts+=("$f") ;;
	*) head -c 64 "$TOP/$f" 2>/dev/null | head -n1 | grep -qE '^#!/bin/(ba)?sh|^#!/usr/bin/env (ba)?sh' &&
		scripts+=("$f") ;;
	esac
done < <(cd "$TOP" && git ls-files)
if ! command -v shellcheck >/dev/null; then
	report shellcheck FAIL "shellcheck missing (scripts/host-deps.sh installs it)"
elif out=$(cd "$TOP" && shellcheck -x -e SC1091 -f gcc "${scripts[@]}" 2>&1); then
	report shellcheck PASS "${#scripts[@]} scripts clean"
else
	echo "$out" | head -n 20 >&2
	report shellcheck FAIL "$(echo "$out" | grep -c ': note:\|: warning:\|: error:\|: style:') findings in: $(echo "$out" | cut -d: -f1 | sort -u | tr '\n' ' ')"
fi

echo "SUITE style: $pass passed, $fail failed, 0 skipped"
[ "$fail" -eq 0 ]
