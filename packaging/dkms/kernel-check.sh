#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Can virtio-iommu-fq be built and used with a kernel? Reads the kernel's
# .config (from its headers) and prints one line per reason it cannot.
#
#   kernel-check.sh <kernel source/headers dir> [<kernel version>]
#
# Exit status: 0 supported, 1 unsupported (reasons on stdout),
#              2 cannot tell (no .config there: DKMS reports the missing
#                headers itself).
#
# Kernels from MIN_KERNEL on are supported. A 6.1 kernel is supported only
# where src/core61.c applies: an arm64 kernel with CONFIG_OF (endpoints
# described by the device tree; 6.1 kernels without the in-tree driver have
# no ACPI VIOT either) on which src/compat-probe.sh finds the 6.1 iommu
# core. That probe compiles against the kernel's headers with its compiler,
# through the kernel's own make (ARCH and CROSS_COMPILE are taken from the
# environment when set, as Kbuild does).
#
# dkms.conf runs this for every kernel DKMS considers, so that a kernel that
# cannot use the module is refused with these reasons (DKMS exit status 77,
# "skipped") rather than with a compiler error.

# Oldest kernel whose API src/compat.h covers.
MIN_KERNEL=6.12
# The one older series src/core61.c covers (arm64, device tree).
CORE61_SERIES=6.1

ksrc=${1:-}
kver=${2:-}
config=$ksrc/.config

if [ -z "$ksrc" ] || [ ! -r "$config" ]; then
	echo "no kernel configuration at ${config}"
	exit 2
fi

# Value of CONFIG_$1 in the target kernel: y, m, a string, or empty if unset.
val() {
	sed -n "s/^CONFIG_$1=//p" "$config" | head -n 1
}

# core61_probe: does src/compat-probe.sh find the 6.1 iommu core with this
# kernel's compiler and flags? Runs the kernel's make on a directory whose
# Kbuild only prints the probe's verdict.
core61_probe() {
	probe=$(cd "$(dirname "$0")/../../src" 2>/dev/null && pwd)/compat-probe.sh
	[ -r "$probe" ] || return 1
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/viommu-kcheck.XXXXXX") || return 1
	cat >"$tmp/Kbuild" <<EOF
\$(info viommu-core61:\$(filter -DVIOMMU_CORE61,\$(shell VIOMMU_SRCTREE=\$(srctree) \$(CONFIG_SHELL) $probe "\$(CC)" \$(KBUILD_CPPFLAGS) \$(LINUXINCLUDE) \$(KBUILD_CFLAGS))))
EOF
	make -C "$ksrc" M="$tmp" modules >"$tmp/out" 2>&1
	grep -q '^viommu-core61:-DVIOMMU_CORE61$' "$tmp/out"
	found=$?
	rm -rf "$tmp"
	return $found
}

rc=0
bad() {
	echo "$*"
	rc=1
}

if [ -z "$kver" ]; then
	kver=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' \
		"$ksrc/include/generated/utsrelease.h" 2>/dev/null)
fi
if [ -n "$kver" ]; then
	base=${kver%%-*}
	base=${base%%+*}
	major=${base%%.*}
	rest=${base#*.}
	minor=${rest%%.*}
	min_major=${MIN_KERNEL%%.*}
	min_minor=${MIN_KERNEL#*.}
	case "$major.$minor" in
	*[!0-9.]* | .* | *.) ;;
	*)
		if [ "$major.$minor" = "$CORE61_SERIES" ] &&
		   [ "$(val ARM64)" = y ] && [ "$(val OF)" = y ]; then
			core61_probe ||
				bad "kernel $kver: src/compat-probe.sh does not find the 6.1 iommu core that src/core61.c needs"
		elif [ "$major" -lt "$min_major" ] ||
		   { [ "$major" -eq "$min_major" ] && [ "$minor" -lt "$min_minor" ]; }; then
			bad "kernel $kver is older than $MIN_KERNEL, the oldest kernel API the module supports"
		fi
		;;
	esac
fi

[ "$(val MODULES)" = y ] ||
	bad "CONFIG_MODULES is not set: the kernel cannot load modules"
case "$(val VIRTIO)" in
y | m) ;;
*) bad "CONFIG_VIRTIO is not set: the kernel has no virtio core" ;;
esac
[ "$(val IOMMU_API)" = y ] ||
	bad "CONFIG_IOMMU_API is not set: the kernel has no IOMMU API"
[ "$(val IOMMU_DMA)" = y ] ||
	bad "CONFIG_IOMMU_DMA is not set: DMA domains (DMA, DMA-FQ) are unavailable"
if [ "$(val ACPI_VIOT)" != y ] && [ "$(val OF)" != y ]; then
	bad "neither CONFIG_ACPI_VIOT nor CONFIG_OF is set: the kernel cannot discover which devices sit behind a virtio-iommu"
fi
[ "$(val VIRTIO_IOMMU)" = y ] &&
	bad "CONFIG_VIRTIO_IOMMU=y: the in-tree driver is built in and cannot be replaced by a module"
exit $rc
