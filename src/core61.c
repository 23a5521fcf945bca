// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq: the iommu_ops for the 6.1 iommu core.
 *
 * Built instead of the iommu_ops of main.c when compat-probe.sh finds the
 * 6.1 core (VIOMMU_CORE61), for Debian 12's arm64 kernel, which does not
 * build the in-tree driver. Endpoints are found through the device tree
 * only: that kernel has no ACPI VIOT support. How the 6.1 core differs and
 * what this file does about it:
 *
 * - domain_alloc(type) is not told the device, so a paging domain does not
 *   know its instance when it is allocated. Its first attach binds it: the
 *   domain ID, the page sizes and the aperture come from the instance of
 *   that endpoint. Until then it maps nothing (dma-iommu attaches before
 *   it maps, and so does VFIO).
 * - There are no static identity and blocked domains: domain_alloc()
 *   allocates one per request, freed by the core.
 * - iotlb_sync_map() returns void, so a MAP failure it found could not
 *   reach the caller. map_batching is therefore 0 and every map_pages()
 *   syncs its own MAP; iotlb_sync_map is not provided.
 * - dma-iommu has no single flush queue (shadow_on_flush is 0) and the
 *   core has no IOMMU_CAP_DEFERRED_FLUSH: it keeps untrusted devices in
 *   strict domains itself.
 * - iommu_device_unregister() does not clear the buses' iommu_ops: a
 *   registered instance pins the module (viommu_core_registered()).
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/of.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "viommu.h"

/* Serialises the binding of paging domains to their instance. */
static DEFINE_MUTEX(viommu_bind_lock);

static bool viommu_capable61(struct device *dev, enum iommu_cap cap)
{
	return cap == IOMMU_CAP_CACHE_COHERENCY;
}

static struct iommu_group *viommu_device_group61(struct device *dev)
{
	if (dev_is_pci(dev))
		return pci_device_group(dev);
	return generic_device_group(dev);
}

static int viommu_of_xlate61(struct device *dev, struct of_phandle_args *args)
{
	if (args->args_count != 1)
		return -EINVAL;
	return iommu_fwspec_add_ids(dev, args->args, 1);
}

/* A paging domain's instance, or NULL before its first attach. */
static struct viommu_dev *viommu_bound(struct iommu_domain *domain)
{
	/* Pairs with the release in viommu_attach_paging61(). */
	return smp_load_acquire(&to_viommu_domain(domain)->viommu);
}

/*
 * The paging operations of domain.c, for a domain that is bound to its
 * instance; those that have nothing to do before do nothing.
 */
static int viommu_map_pages61(struct iommu_domain *domain, unsigned long iova,
			      phys_addr_t paddr, size_t pgsize, size_t pgcount,
			      int prot, gfp_t gfp, size_t *mapped)
{
	if (!viommu_bound(domain))
		return -ENODEV;
	return viommu_paging_ops.map_pages(domain, iova, paddr, pgsize,
					   pgcount, prot, gfp, mapped);
}

static size_t viommu_unmap_pages61(struct iommu_domain *domain,
				   unsigned long iova, size_t pgsize,
				   size_t pgcount,
				   struct iommu_iotlb_gather *gather)
{
	if (!viommu_bound(domain))
		return 0;
	return viommu_paging_ops.unmap_pages(domain, iova, pgsize, pgcount,
					     gather);
}

static void viommu_flush_iotlb_all61(struct iommu_domain *domain)
{
	if (viommu_bound(domain))
		viommu_paging_ops.flush_iotlb_all(domain);
}

static void viommu_iotlb_sync61(struct iommu_domain *domain,
				struct iommu_iotlb_gather *gather)
{
	if (viommu_bound(domain))
		viommu_paging_ops.iotlb_sync(domain, gather);
}

static phys_addr_t viommu_iova_to_phys61(struct iommu_domain *domain,
					 dma_addr_t iova)
{
	if (!viommu_bound(domain))
		return 0;
	return viommu_paging_ops.iova_to_phys(domain, iova);
}

static void viommu_domain_free61(struct iommu_domain *domain)
{
	if (viommu_bound(domain))
		viommu_paging_ops.free(domain);
	else
		kfree(to_viommu_domain(domain));
}

/*
 * The first attach binds the domain to the endpoint's instance; a later
 * attach from another instance is refused by viommu_attach_paging().
 */
static int viommu_attach_paging61(struct iommu_domain *domain,
				  struct device *dev)
{
	struct viommu_endpoint *ep = dev_iommu_priv_get(dev);
	struct viommu_domain *vdom = to_viommu_domain(domain);
	struct viommu_dev *viommu = ep->viommu;
	int id;

	mutex_lock(&viommu_bind_lock);
	if (!vdom->viommu) {
		id = ida_alloc_range(&viommu->domain_ids, viommu->first_domain,
				     viommu->last_domain, GFP_KERNEL);
		if (id < 0) {
			mutex_unlock(&viommu_bind_lock);
			return id;
		}
		vdom->id = id;
		domain->pgsize_bitmap = viommu->pgsize_bitmap;
		domain->geometry.aperture_start = viommu->input_start;
		domain->geometry.aperture_end = viommu->input_end;
		domain->geometry.force_aperture = true;
		/* The ID and the geometry are set before the instance. */
		smp_store_release(&vdom->viommu, viommu);
	}
	mutex_unlock(&viommu_bind_lock);
	return viommu_attach_paging(domain, dev);
}

static const struct iommu_domain_ops viommu_paging_ops61 = {
	.attach_dev		= viommu_attach_paging61,
	.map_pages		= viommu_map_pages61,
	.unmap_pages		= viommu_unmap_pages61,
	.flush_iotlb_all	= viommu_flush_iotlb_all61,
	.iotlb_sync		= viommu_iotlb_sync61,
	.iova_to_phys		= viommu_iova_to_phys61,
	.free			= viommu_domain_free61,
};

static void viommu_free_plain61(struct iommu_domain *domain)
{
	kfree(domain);
}

static const struct iommu_domain_ops viommu_identity_ops61 = {
	.attach_dev	= viommu_attach_identity_dev,
	.free		= viommu_free_plain61,
};

static const struct iommu_domain_ops viommu_blocked_ops61 = {
	.attach_dev	= viommu_attach_blocked_dev,
	.free		= viommu_free_plain61,
};

/*
 * The core sets the domain's type and the DMA cookie after this returns,
 * and takes NULL for a failure.
 */
static struct iommu_domain *viommu_domain_alloc61(unsigned int type)
{
	struct viommu_domain *vdom;
	struct iommu_domain *domain;

	switch (type) {
	case IOMMU_DOMAIN_UNMANAGED:
	case IOMMU_DOMAIN_DMA:
	case IOMMU_DOMAIN_DMA_FQ:
		vdom = kzalloc(sizeof(*vdom), GFP_KERNEL);
		if (!vdom)
			return NULL;
		spin_lock_init(&vdom->map_lock);
		vdom->mappings = RB_ROOT_CACHED;
		INIT_LIST_HEAD(&vdom->failed_maps);
		vdom->domain.ops = &viommu_paging_ops61;
		/*
		 * Until the first attach sets the instance's: the core's
		 * direct mappings of a new default domain, made before its
		 * attach, need a page size (there are none on a device tree).
		 */
		vdom->domain.pgsize_bitmap = PAGE_SIZE;
		return &vdom->domain;
	case IOMMU_DOMAIN_IDENTITY:
	case IOMMU_DOMAIN_BLOCKED:
		domain = kzalloc(sizeof(*domain), GFP_KERNEL);
		if (!domain)
			return NULL;
		domain->ops = type == IOMMU_DOMAIN_IDENTITY ?
			      &viommu_identity_ops61 : &viommu_blocked_ops61;
		return domain;
	default:
		return NULL;
	}
}

const struct iommu_ops viommu_ops = {
	.capable		= viommu_capable61,
	.domain_alloc		= viommu_domain_alloc61,
	.probe_device		= viommu_probe_device,
	.release_device		= viommu_release_device,
	.device_group		= viommu_device_group61,
	.get_resv_regions	= viommu_get_resv_regions,
	.of_xlate		= viommu_of_xlate61,
	.def_domain_type	= viommu_def_domain_type,
	.owner			= THIS_MODULE,
	.default_domain_ops	= &viommu_paging_ops61,
};

/**
 * viommu_core_registered() - an instance was registered with the iommu core
 * @viommu: the instance
 *
 * Pins the module: it can no longer be removed. The 6.1 core's
 * iommu_device_register() points the iommu_ops of the platform, PCI and
 * AMBA buses at viommu_ops, and iommu_device_unregister() leaves them
 * there. After an unload, the next device added to one of those buses
 * would have the core read the freed viommu_ops (iommu_probe_device()),
 * and loading the module again would fail with -EBUSY, the buses' ops not
 * being its own. Each registered instance holds one module reference,
 * never dropped.
 */
void viommu_core_registered(struct viommu_dev *viommu)
{
	__module_get(THIS_MODULE);
	dev_info(viommu->dev,
		 "module pinned: the 6.1 iommu core keeps its ops after unregistering\n");
}

/**
 * viommu_knob_refused() - may a knob take a value with this kernel?
 * @name: the knob (parameter or attribute name)
 * @val: the value written
 *
 * map_batching and shadow_on_flush stay 0 on the 6.1 core: a batched MAP
 * sync there could not report a failed MAP, and dma-iommu has no single
 * flush queue.
 *
 * Return: 0, or -EOPNOTSUPP (with a message) for any other value of those.
 */
int viommu_knob_refused(const char *name, unsigned int val)
{
	const char *why;

	if (!val)
		return 0;
	if (!strcmp(name, "map_batching"))
		why = "its iotlb_sync_map() cannot report a failed MAP";
	else if (!strcmp(name, "shadow_on_flush"))
		why = "its dma-iommu has no single flush queue";
	else
		return 0;
	pr_warn_ratelimited("%s=%u refused: with this kernel %s; it stays 0\n",
			    name, val, why);
	return -EOPNOTSUPP;
}
