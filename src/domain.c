// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq: paging domains.
 *
 * The device holds the page tables; the driver keeps an interval tree of
 * the mappings it asked for, one node per MAP request, to answer
 * iova_to_phys and to replay the mappings when the domain is (re)created on
 * the device by its first ATTACH.
 *
 * map_pages queues MAP requests; they reach the device at the map sync
 * (iotlb_sync_map), or at once when map_batching is 0. unmap_pages queues
 * UNMAP requests; a strict domain syncs them in iotlb_sync, a lazy (DMA-FQ)
 * domain lets them wait for flush_iotlb_all, a map sync, a full queue or
 * flush_timeout_ms.
 *
 * When the device is broken (see request.c), map_pages fails and the other
 * operations return once the device has been reset: iotlb_sync and
 * flush_iotlb_all cannot report an error, and an unmap is reported done
 * either because its UNMAP was queued or because the device no longer has
 * any mapping at all.
 */

#include <linux/interval_tree_generic.h>
#include <linux/slab.h>

#include "viommu.h"

#define VIOMMU_MAPPING_START(m)	((m)->start)
#define VIOMMU_MAPPING_LAST(m)	((m)->last)

INTERVAL_TREE_DEFINE(struct viommu_mapping, rb, u64, subtree_last,
		     VIOMMU_MAPPING_START, VIOMMU_MAPPING_LAST, static,
		     viommu_itree)

static u32 viommu_prot_to_flags(struct viommu_dev *viommu, int prot)
{
	u32 flags = 0;

	if (prot & IOMMU_READ)
		flags |= VIRTIO_IOMMU_MAP_F_READ;
	if (prot & IOMMU_WRITE)
		flags |= VIRTIO_IOMMU_MAP_F_WRITE;
	if (prot & IOMMU_MMIO)
		flags |= VIRTIO_IOMMU_MAP_F_MMIO;
	return flags & viommu->map_flags;
}

/**
 * viommu_domain_alloc_paging() - allocate a paging domain for a device
 * @dev: an endpoint of the instance that will hold the domain
 *
 * The domain ID is taken from the device's domain range at once: a domain
 * belongs to one instance.
 *
 * Return: the domain, or an ERR_PTR.
 */
struct iommu_domain *viommu_domain_alloc_paging(struct device *dev)
{
	struct viommu_endpoint *ep = dev ? dev_iommu_priv_get(dev) : NULL;
	struct viommu_domain *vdom;
	struct viommu_dev *viommu;
	int id;

	/* A domain belongs to one instance: it needs a device to tell which. */
	if (!ep)
		return ERR_PTR(-ENODEV);
	viommu = ep->viommu;
	vdom = kzalloc(sizeof(*vdom), GFP_KERNEL);
	if (!vdom)
		return ERR_PTR(-ENOMEM);
	id = ida_alloc_range(&viommu->domain_ids, viommu->first_domain,
			     viommu->last_domain, GFP_KERNEL);
	if (id < 0) {
		kfree(vdom);
		return ERR_PTR(id);
	}
	vdom->id = id;
	vdom->viommu = viommu;
	spin_lock_init(&vdom->map_lock);
	vdom->mappings = RB_ROOT_CACHED;
	INIT_LIST_HEAD(&vdom->failed_maps);
	vdom->domain.ops = &viommu_paging_ops;
	vdom->domain.pgsize_bitmap = viommu->pgsize_bitmap;
	vdom->domain.geometry.aperture_start = viommu->input_start;
	vdom->domain.geometry.aperture_end = viommu->input_end;
	vdom->domain.geometry.force_aperture = true;
	return &vdom->domain;
}

static void viommu_domain_free(struct iommu_domain *domain)
{
	struct viommu_domain *vdom = to_viommu_domain(domain);
	struct viommu_dev *viommu = vdom->viommu;
	struct viommu_mapping *m, *next;

	WARN_ON(vdom->nr_endpoints);
	/* Requests for this domain must not outlive it. */
	viommu_sync(&viommu->engine, VIOMMU_CAUSE_FLUSH);
	viommu_engine_forget_domain(&viommu->engine, vdom);
	rbtree_postorder_for_each_entry_safe(m, next, &vdom->mappings.rb_root, rb)
		kfree(m);
	ida_free(&viommu->domain_ids, vdom->id);
	kfree(vdom);
}

/*
 * The core hands one mapping call over in page-size pieces. Pieces that the
 * engine merged into one MAP request become one node as well, so that the
 * tree still has one node per device mapping.
 */
static void viommu_merge_with_previous(struct viommu_domain *vdom,
				       struct viommu_mapping *m)
{
	struct viommu_mapping *prev;
	unsigned long flags;

	spin_lock_irqsave(&vdom->map_lock, flags);
	prev = viommu_itree_iter_first(&vdom->mappings, m->start - 1,
				       m->start - 1);
	if (!WARN_ON(!prev || prev->last + 1 != m->start ||
		     prev->paddr + (prev->last - prev->start + 1) != m->paddr ||
		     prev->flags != m->flags)) {
		viommu_itree_remove(m, &vdom->mappings);
		viommu_itree_remove(prev, &vdom->mappings);
		prev->last = m->last;
		viommu_itree_insert(prev, &vdom->mappings);
		kfree(m);
	}
	spin_unlock_irqrestore(&vdom->map_lock, flags);
}

static void viommu_forget_mapping(struct viommu_domain *vdom,
				  struct viommu_mapping *m)
{
	unsigned long flags;

	spin_lock_irqsave(&vdom->map_lock, flags);
	viommu_itree_remove(m, &vdom->mappings);
	spin_unlock_irqrestore(&vdom->map_lock, flags);
	kfree(m);
}

static int viommu_map_pages(struct iommu_domain *domain, unsigned long iova,
			    phys_addr_t paddr, size_t pgsize, size_t pgcount,
			    int prot, gfp_t gfp, size_t *mapped)
{
	struct viommu_domain *vdom = to_viommu_domain(domain);
	struct viommu_dev *viommu = vdom->viommu;
	struct viommu_engine *eng = &viommu->engine;
	u64 size = (u64)pgsize * pgcount;
	u64 last = iova + size - 1;
	bool batching = READ_ONCE(eng->knobs.map_batching);
	struct viommu_mapping *m;
	unsigned long flags;
	bool live, merged;
	int ret;

	if (!size || last < iova || iova < viommu->input_start ||
	    last > viommu->input_end)
		return -EINVAL;
	if (viommu_engine_broken(eng))
		return -EIO;
	m = kzalloc(sizeof(*m), gfp);
	if (!m)
		return -ENOMEM;
	m->start = iova;
	m->last = last;
	m->paddr = paddr;
	m->flags = viommu_prot_to_flags(viommu, prot);

	spin_lock_irqsave(&vdom->map_lock, flags);
	if (viommu_itree_iter_first(&vdom->mappings, iova, last)) {
		spin_unlock_irqrestore(&vdom->map_lock, flags);
		kfree(m);
		return -EEXIST;
	}
	viommu_itree_insert(m, &vdom->mappings);
	live = vdom->live;
	m->on_device = live;
	m->gen = ++vdom->map_gen;
	spin_unlock_irqrestore(&vdom->map_lock, flags);

	if (live) {
		merged = false;
		ret = viommu_queue_map(eng, vdom, iova, last, paddr, m->flags,
				       m->gen, batching ? &merged : NULL, false);
		if (ret) {
			viommu_forget_mapping(vdom, m);
			return ret;
		}
		if (!batching) {
			ret = viommu_sync(eng, VIOMMU_CAUSE_MAP_SYNC);
			if (ret == -ETIMEDOUT)
				/* The device may still create it later. */
				viommu_queue_unmap(eng, vdom->id, iova, last,
						   false);
			else if (!ret)
				ret = viommu_domain_collect_failures(eng, vdom,
								     iova, last,
								     false);
			if (ret) {
				viommu_forget_mapping(vdom, m);
				return ret;
			}
		} else if (merged) {
			viommu_merge_with_previous(vdom, m);
		}
	}
	*mapped = size;
	return 0;
}

static size_t viommu_unmap_pages(struct iommu_domain *domain,
				 unsigned long iova, size_t pgsize,
				 size_t pgcount,
				 struct iommu_iotlb_gather *gather)
{
	struct viommu_domain *vdom = to_viommu_domain(domain);
	struct viommu_engine *eng = &vdom->viommu->engine;
	u64 last = iova + (u64)pgsize * pgcount - 1;
	struct viommu_mapping *m, *next;
	u64 end = 0;
	unsigned long flags;
	bool deferred, live, found = false;

	spin_lock_irqsave(&vdom->map_lock, flags);
	m = viommu_itree_iter_first(&vdom->mappings, iova, last);
	if (m && m->start < iova) {
		/* A mapping is only ever removed whole. */
		spin_unlock_irqrestore(&vdom->map_lock, flags);
		dev_warn_ratelimited(eng->dev,
				     "refusing to split mapping 0x%llx-0x%llx at 0x%lx\n",
				     m->start, m->last, iova);
		return 0;
	}
	while (m) {
		next = viommu_itree_iter_next(m, iova, last);
		end = max(end, m->last);
		viommu_itree_remove(m, &vdom->mappings);
		kfree(m);
		found = true;
		m = next;
	}
	live = vdom->live;
	deferred = iommu_iotlb_gather_queued(gather) && !vdom->nr_untrusted;
	spin_unlock_irqrestore(&vdom->map_lock, flags);

	if (!found)
		return 0;
	/* The last mapping may end beyond the range: it goes whole. */
	end = max(end, last);
	if (live) {
		if (viommu_queue_unmap(eng, vdom->id, iova, end, deferred))
			/* Done all the same: the device was reset. */
			viommu_engine_break(eng, "UNMAP not queued");
		else if (!deferred && iommu_iotlb_gather_queued(gather))
			/* Untrusted endpoint in a lazy domain: never defer. */
			viommu_sync(eng, VIOMMU_CAUSE_SYNC);
	}
	return end - iova + 1;
}

/*
 * The 6.1 core's iotlb_sync_map() returns void, which would lose a failed
 * MAP: there map_batching is 0 and map_pages syncs itself (core61.c).
 */
#ifndef VIOMMU_CORE61
static int viommu_iotlb_sync_map(struct iommu_domain *domain,
				 unsigned long iova, size_t size)
{
	struct viommu_domain *vdom = to_viommu_domain(domain);
	struct viommu_engine *eng = &vdom->viommu->engine;
	int ret;

	if (!size)
		return 0;
	ret = viommu_sync(eng, VIOMMU_CAUSE_MAP_SYNC);
	if (ret)
		return ret;
	return viommu_domain_collect_failures(eng, vdom, iova, iova + size - 1,
					      false);
}
#endif

static void viommu_iotlb_sync(struct iommu_domain *domain,
			      struct iommu_iotlb_gather *gather)
{
	viommu_sync(&to_viommu_domain(domain)->viommu->engine,
		    VIOMMU_CAUSE_SYNC);
}

static void viommu_flush_iotlb_all(struct iommu_domain *domain)
{
	struct viommu_engine *eng = &to_viommu_domain(domain)->viommu->engine;

	viommu_stat_add(eng, VIOMMU_STAT_FLUSHES, 1);
	viommu_sync(eng, VIOMMU_CAUSE_FLUSH);
}

static phys_addr_t viommu_iova_to_phys(struct iommu_domain *domain,
				       dma_addr_t iova)
{
	struct viommu_domain *vdom = to_viommu_domain(domain);
	struct viommu_mapping *m;
	phys_addr_t paddr = 0;
	unsigned long flags;

	spin_lock_irqsave(&vdom->map_lock, flags);
	m = viommu_itree_iter_first(&vdom->mappings, iova, iova);
	if (m)
		paddr = m->paddr + (iova - m->start);
	spin_unlock_irqrestore(&vdom->map_lock, flags);
	return paddr;
}

/**
 * viommu_domain_replay() - create the mappings of a domain on the device
 * @vdom: a domain that an ATTACH request just created on the device
 *
 * From now on map and unmap reach the device: mappings made from now on
 * are marked on_device and sent by their mapper. The mappings made while
 * the domain had no endpoint are sent here, one MAP each, and synced.
 * Called with the instance's attach_lock held, in process context. When
 * the request pool runs out, the map_lock is dropped while the queue
 * drains, so no CPU waits for the device with interrupts disabled; a
 * mapping removed meanwhile is simply not sent.
 *
 * Return: 0, or the first error of the replay.
 */
int viommu_domain_replay(struct viommu_domain *vdom)
{
	struct viommu_engine *eng = &vdom->viommu->engine;
	struct viommu_mapping *m;
	unsigned long flags;
	bool any = false;
	u64 next = 0;
	int ret = 0, failed;

	spin_lock_irqsave(&vdom->map_lock, flags);
	vdom->live = true;
	m = viommu_itree_iter_first(&vdom->mappings, 0, U64_MAX);
	while (m) {
		if (!m->on_device) {
			/* Earlier failures of this mapping are stale now. */
			m->gen = ++vdom->map_gen;
			ret = viommu_queue_map(eng, vdom, m->start, m->last,
					       m->paddr, m->flags, m->gen, NULL,
					       true);
			if (ret == -EAGAIN) {
				next = m->start;
				spin_unlock_irqrestore(&vdom->map_lock, flags);
				ret = viommu_sync(eng, VIOMMU_CAUSE_SYNC);
				spin_lock_irqsave(&vdom->map_lock, flags);
				if (ret)
					break;
				m = viommu_itree_iter_first(&vdom->mappings,
							    next, U64_MAX);
				continue;
			}
			if (ret)
				break;
			m->on_device = true;
			any = true;
		}
		m = viommu_itree_iter_next(m, 0, U64_MAX);
	}
	spin_unlock_irqrestore(&vdom->map_lock, flags);
	if (!any)
		return ret;
	if (!ret)
		ret = viommu_sync(eng, VIOMMU_CAUSE_SYNC);
	/* Even after an error: the records go back to the pool. */
	failed = viommu_domain_collect_failures(eng, vdom, 0, U64_MAX, true);
	return ret ?: failed;
}

/**
 * viommu_mapping_current() - is a failed MAP about the mapping there now?
 * @vdom: the domain, its map_lock held
 * @start: first address of the MAP
 * @gen: generation of the MAP
 *
 * Return: true if the mapping starting at @start is the one that MAP sent.
 */
bool viommu_mapping_current(struct viommu_domain *vdom, u64 start, u64 gen)
{
	struct viommu_mapping *m;

	lockdep_assert_held(&vdom->map_lock);
	m = viommu_itree_iter_first(&vdom->mappings, start, start);
	return m && m->start == start && m->gen == gen;
}

/**
 * viommu_domain_gone() - the device destroyed the domain
 * @vdom: a domain whose last endpoint just left it
 *
 * Map and unmap no longer reach the device, and every mapping must be
 * replayed if an endpoint attaches again.
 */
void viommu_domain_gone(struct viommu_domain *vdom)
{
	struct viommu_mapping *m;
	unsigned long flags;

	spin_lock_irqsave(&vdom->map_lock, flags);
	vdom->live = false;
	for (m = viommu_itree_iter_first(&vdom->mappings, 0, U64_MAX); m;
	     m = viommu_itree_iter_next(m, 0, U64_MAX))
		m->on_device = false;
	spin_unlock_irqrestore(&vdom->map_lock, flags);
}

int viommu_attach_paging(struct iommu_domain *domain, struct device *dev)
{
	struct viommu_endpoint *ep = dev_iommu_priv_get(dev);
	struct viommu_domain *vdom = to_viommu_domain(domain);

	if (vdom->viommu != ep->viommu)
		return -EINVAL;
	if (domain->type & __IOMMU_DOMAIN_DMA_API)
		viommu_set_shadow_on_flush(dev, !ep->untrusted &&
					   READ_ONCE(ep->viommu->engine.knobs.shadow_on_flush));
	return viommu_paging_attach(ep, vdom);
}

const struct iommu_domain_ops viommu_paging_ops = {
	.attach_dev		= viommu_attach_paging_dev,
	.map_pages		= viommu_map_pages,
	.unmap_pages		= viommu_unmap_pages,
	.flush_iotlb_all	= viommu_flush_iotlb_all,
#ifndef VIOMMU_CORE61
	.iotlb_sync_map		= viommu_iotlb_sync_map,
#endif
	.iotlb_sync		= viommu_iotlb_sync,
	.iova_to_phys		= viommu_iova_to_phys,
	.free			= viommu_domain_free,
};
