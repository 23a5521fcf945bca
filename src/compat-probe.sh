#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Print the -D flags that src/compat.h needs for the kernel whose source or
# headers tree is $1 (Kbuild's $(srctree)). Each probe looks for the API in
# the tree's headers; see compat.h for what each flag means.
inc="$1/include/linux"

grep -q 'int (\*attach_dev)(struct iommu_domain \*domain, struct device \*dev,$' \
	"$inc/iommu.h" 2>/dev/null && printf ' %s' -DVIOMMU_HAVE_ATTACH_DEV_OLD
grep -q 'void hrtimer_setup(' "$inc/hrtimer.h" 2>/dev/null &&
	printf ' %s' -DVIOMMU_HAVE_HRTIMER_SETUP
# A full source tree has dma-iommu's private header; headers packages do not.
dma="$1/drivers/iommu/dma-iommu.h"
grep -q 'void iommu_dma_get_resv_regions(' "$dma" 2>/dev/null &&
	printf ' %s' "-DVIOMMU_DMA_IOMMU_H='\"$dma\"'"
echo
