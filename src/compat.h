/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Kernel API differences between the kernels virtio-iommu-fq supports
 * (6.12 LTS up to the newest mainline release). Every difference is handled
 * here; the rest of the code uses the helpers below.
 *
 * Differences are detected at build time by compiling a small snippet per
 * API against the target kernel (compat-probe.sh, called from Kbuild with
 * the build's compiler and flags), not by comparing version numbers or
 * reading header text, so that distribution kernels with backports build:
 *   VIOMMU_HAVE_ATTACH_DEV_OLD  attach_dev() takes the old domain (6.19)
 *   VIOMMU_HAVE_HRTIMER_SETUP   hrtimer_setup() replaces hrtimer_init() (6.13)
 *   VIOMMU_DMA_IOMMU_H          path of drivers/iommu/dma-iommu.h, if present
 *   VIOMMU_CORE61               the 6.1 iommu core: core61.c replaces the
 *                               iommu_ops of main.c (Debian 12's arm64 6.1)
 *   VIOMMU_HAVE_FIND_VQS_CALLBACKS
 *                               virtio_find_vqs() takes callback and name
 *                               arrays (before 6.11)
 */
#ifndef VIOMMU_FQ_COMPAT_H
#define VIOMMU_FQ_COMPAT_H

#include <linux/hrtimer.h>
#include <linux/iommu.h>

/*
 * attach_dev() callbacks with the target kernel's signature. The driver keeps
 * its own record of the previous attachment, so the old domain that newer
 * kernels pass is not needed.
 */
int viommu_attach_paging(struct iommu_domain *domain, struct device *dev);
int viommu_attach_identity(struct iommu_domain *domain, struct device *dev);
int viommu_attach_blocked(struct iommu_domain *domain, struct device *dev);

#ifdef VIOMMU_HAVE_ATTACH_DEV_OLD
static inline int viommu_attach_paging_dev(struct iommu_domain *domain,
					   struct device *dev,
					   struct iommu_domain *old)
{
	return viommu_attach_paging(domain, dev);
}

static inline int viommu_attach_identity_dev(struct iommu_domain *domain,
					     struct device *dev,
					     struct iommu_domain *old)
{
	return viommu_attach_identity(domain, dev);
}

static inline int viommu_attach_blocked_dev(struct iommu_domain *domain,
					    struct device *dev,
					    struct iommu_domain *old)
{
	return viommu_attach_blocked(domain, dev);
}
#else
static inline int viommu_attach_paging_dev(struct iommu_domain *domain,
					   struct device *dev)
{
	return viommu_attach_paging(domain, dev);
}

static inline int viommu_attach_identity_dev(struct iommu_domain *domain,
					     struct device *dev)
{
	return viommu_attach_identity(domain, dev);
}

static inline int viommu_attach_blocked_dev(struct iommu_domain *domain,
					    struct device *dev)
{
	return viommu_attach_blocked(domain, dev);
}
#endif

/*
 * Whether dma-iommu gives the endpoint its single flush queue (6.12's
 * shadow_on_flush). The 6.1 core has no such queue: nothing to set.
 */
static inline void viommu_set_shadow_on_flush(struct device *dev,
					      unsigned int on)
{
#ifndef VIOMMU_CORE61
	dev->iommu->shadow_on_flush = on;
#endif
}

static inline void
viommu_hrtimer_setup(struct hrtimer *timer,
		     enum hrtimer_restart (*fn)(struct hrtimer *),
		     clockid_t clock, enum hrtimer_mode mode)
{
#ifdef VIOMMU_HAVE_HRTIMER_SETUP
	hrtimer_setup(timer, fn, clock, mode);
#else
	hrtimer_init(timer, clock, mode);
	timer->function = fn;
#endif
}

/*
 * dma-iommu exports iommu_dma_get_resv_regions() (the reserved regions every
 * DMA domain needs, e.g. ITS doorbells on arm64) but declares it in a header
 * private to drivers/iommu/. When the target tree has that header
 * (VIOMMU_DMA_IOMMU_H, a full source tree such as the KUnit build), it is
 * used, so that a change of the prototype breaks the build; a headers
 * package lacks it, and only then is the prototype declared here.
 */
#if IS_ENABLED(CONFIG_IOMMU_DMA)
#ifdef VIOMMU_DMA_IOMMU_H
#include VIOMMU_DMA_IOMMU_H
#else
void iommu_dma_get_resv_regions(struct device *dev, struct list_head *list);
#endif
static inline void viommu_dma_get_resv_regions(struct device *dev,
					       struct list_head *list)
{
	iommu_dma_get_resv_regions(dev, list);
}
#else
static inline void viommu_dma_get_resv_regions(struct device *dev,
					       struct list_head *list)
{
}
#endif

#endif /* VIOMMU_FQ_COMPAT_H */
