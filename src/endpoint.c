// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq: endpoints.
 *
 * An endpoint is a device whose DMA the virtio-iommu translates. It has one
 * or more endpoint IDs (its fwspec IDs, from ACPI VIOT or the device tree).
 * On probe the driver sends one PROBE request per ID and keeps the reserved
 * regions the device describes. Attaching sends one ATTACH per ID; the
 * driver counts the endpoints of each domain, because the device destroys
 * a domain, mappings included, when its last endpoint leaves it.
 */

#include <linux/device.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/virtio_config.h>

#include "viommu.h"

#define VIOMMU_SW_MSI_BASE	0x8000000
#define VIOMMU_SW_MSI_LENGTH	0x100000

struct viommu_resv {
	struct list_head	list;
	u64			start;
	u64			last;
	u8			subtype;
};

static LIST_HEAD(viommu_instances);
static DEFINE_MUTEX(viommu_instances_lock);

void viommu_register_instance(struct viommu_dev *viommu)
{
	mutex_lock(&viommu_instances_lock);
	list_add_tail(&viommu->list, &viommu_instances);
	mutex_unlock(&viommu_instances_lock);
}

void viommu_unregister_instance(struct viommu_dev *viommu)
{
	mutex_lock(&viommu_instances_lock);
	list_del(&viommu->list);
	mutex_unlock(&viommu_instances_lock);
}

/**
 * viommu_find_instance() - the instance an endpoint's fwspec points to
 * @fwnode: the fwspec's iommu_fwnode, the firmware node of the transport
 *	device (the virtio-pci function, or the virtio-mmio node)
 *
 * Return: the instance or NULL.
 */
struct viommu_dev *viommu_find_instance(struct fwnode_handle *fwnode)
{
	struct viommu_dev *viommu, *found = NULL;

	mutex_lock(&viommu_instances_lock);
	list_for_each_entry(viommu, &viommu_instances, list) {
		if (viommu->hwdev && dev_fwnode(viommu->hwdev) == fwnode) {
			found = viommu;
			break;
		}
	}
	mutex_unlock(&viommu_instances_lock);
	return found;
}

static void viommu_add_resv(struct viommu_endpoint *ep,
			    const struct virtio_iommu_probe_resv_mem *prop)
{
	u64 start = le64_to_cpu(prop->start);
	u64 last = le64_to_cpu(prop->end);
	struct viommu_resv *resv;

	if (start > last) {
		dev_warn(ep->dev, "ignoring reversed reserved region 0x%llx-0x%llx\n",
			 start, last);
		return;
	}
	resv = kzalloc(sizeof(*resv), GFP_KERNEL);
	if (!resv)
		return;
	resv->start = start;
	resv->last = last;
	/* Unknown subtypes are plain reserved regions. */
	resv->subtype = prop->subtype == VIRTIO_IOMMU_RESV_MEM_T_MSI ?
			VIRTIO_IOMMU_RESV_MEM_T_MSI :
			VIRTIO_IOMMU_RESV_MEM_T_RESERVED;
	list_add_tail(&resv->list, &ep->resv_regions);
}

/**
 * viommu_parse_probe() - parse the properties of a PROBE reply
 * @ep: the endpoint; reserved regions are added to it
 * @props: the properties area
 * @len: its size, probe_size
 *
 * Properties with non-zero reserved type bits, unknown types and too short
 * RESV_MEM properties are ignored and parsing goes on. A property that runs
 * past the end of the area stops parsing.
 *
 * Return: the number of properties used, or -EINVAL if the list was
 * truncated (properties before it are kept).
 */
int viommu_parse_probe(struct viommu_endpoint *ep, const void *props,
		       size_t len)
{
	const size_t resv_len = sizeof(struct virtio_iommu_probe_resv_mem) -
				sizeof(struct virtio_iommu_probe_property);
	const struct virtio_iommu_probe_property *prop;
	size_t off = 0, plen;
	int used = 0;
	u16 type;

	while (off + sizeof(*prop) <= len) {
		prop = props + off;
		type = le16_to_cpu(prop->type);
		plen = le16_to_cpu(prop->length);
		if (!(type & VIRTIO_IOMMU_PROBE_T_MASK))
			break;	/* NONE: end of the list */
		if (plen > len - off - sizeof(*prop)) {
			dev_warn(ep->dev, "truncated probe property at offset %zu\n",
				 off);
			return -EINVAL;
		}
		if (type & ~VIRTIO_IOMMU_PROBE_T_MASK) {
			/* Reserved bits set: ignore the property. */
		} else if (type == VIRTIO_IOMMU_PROBE_T_RESV_MEM) {
			if (plen >= resv_len) {
				viommu_add_resv(ep, (const void *)prop);
				used++;
			} else {
				dev_warn(ep->dev, "short RESV_MEM property (%zu bytes)\n",
					 plen);
			}
		}
		off += sizeof(*prop) + plen;
	}
	return used;
}

static int viommu_probe_endpoint(struct viommu_endpoint *ep,
				 struct iommu_fwspec *fwspec)
{
	struct viommu_dev *viommu = ep->viommu;
	unsigned int i;
	void *props;
	int ret;

	if (!viommu->has_probe || !viommu->probe_size)
		return 0;
	for (i = 0; i < fwspec->num_ids; i++) {
		ret = viommu_send_probe(&viommu->engine, fwspec->ids[i],
					viommu->probe_size, &props);
		if (ret)
			return ret;
		viommu_parse_probe(ep, props, viommu->probe_size);
		kfree(props);
	}
	return 0;
}

static void viommu_free_endpoint(struct viommu_endpoint *ep)
{
	struct viommu_resv *resv, *next;

	list_for_each_entry_safe(resv, next, &ep->resv_regions, list)
		kfree(resv);
	kfree(ep);
}

static bool viommu_dev_untrusted(struct device *dev)
{
	return dev_is_pci(dev) && to_pci_dev(dev)->untrusted;
}

/**
 * viommu_probe_device() - iommu_ops.probe_device
 * @dev: a device whose fwspec names one of our instances
 *
 * Return: the instance's iommu_device, or an ERR_PTR.
 */
struct iommu_device *viommu_probe_device(struct device *dev)
{
	struct iommu_fwspec *fwspec = dev_iommu_fwspec_get(dev);
	struct viommu_endpoint *ep;
	struct viommu_dev *viommu;
	int ret;

	if (!fwspec || !fwspec->num_ids)
		return ERR_PTR(-ENODEV);
	viommu = viommu_find_instance(fwspec->iommu_fwnode);
	if (!viommu)
		return ERR_PTR(-ENODEV);
	ep = kzalloc(sizeof(*ep), GFP_KERNEL);
	if (!ep)
		return ERR_PTR(-ENOMEM);
	ep->dev = dev;
	ep->viommu = viommu;
	ep->untrusted = viommu_dev_untrusted(dev);
	INIT_LIST_HEAD(&ep->resv_regions);
	ret = viommu_probe_endpoint(ep, fwspec);
	if (ret) {
		dev_err(dev, "PROBE request failed: %d\n", ret);
		viommu_free_endpoint(ep);
		return ERR_PTR(ret);
	}
	/*
	 * The endpoint consumes the IOMMU: at shutdown it must quiesce before
	 * the IOMMU is reset, which the device link's ordering guarantees.
	 * See viommu_release_device() for how the link goes away.
	 */
	ep->linked = !!device_link_add(dev, viommu->dev, DL_FLAG_STATELESS);
	if (!ep->linked)
		dev_warn(dev, "cannot link to %s\n", dev_name(viommu->dev));
	if (!ep->untrusted)
		viommu_set_shadow_on_flush(dev,
					   READ_ONCE(viommu->engine.knobs.shadow_on_flush));
	dev_iommu_priv_set(dev, ep);
	mutex_lock(&viommu->attach_lock);
	hlist_add_head(&ep->node, &viommu->endpoints);
	mutex_unlock(&viommu->attach_lock);
	return &viommu->iommu;
}

/* Send one ATTACH or DETACH per endpoint ID. */
static int viommu_send_ep(struct viommu_endpoint *ep, u8 type, u32 domain,
			  u32 flags)
{
	struct iommu_fwspec *fwspec = dev_iommu_fwspec_get(ep->dev);
	struct virtio_iommu_req_attach attach;
	struct virtio_iommu_req_detach detach;
	unsigned int i;
	int ret;

	for (i = 0; i < fwspec->num_ids; i++) {
		if (type == VIRTIO_IOMMU_T_ATTACH) {
			memset(&attach, 0, sizeof(attach));
			attach.head.type = type;
			attach.domain = cpu_to_le32(domain);
			attach.endpoint = cpu_to_le32(fwspec->ids[i]);
			attach.flags = cpu_to_le32(flags);
			ret = viommu_send_sync(&ep->viommu->engine, &attach,
					       sizeof(attach));
		} else {
			memset(&detach, 0, sizeof(detach));
			detach.head.type = type;
			detach.domain = cpu_to_le32(domain);
			detach.endpoint = cpu_to_le32(fwspec->ids[i]);
			ret = viommu_send_sync(&ep->viommu->engine, &detach,
					       sizeof(detach));
		}
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Forget the endpoint's current attachment, after the device moved it.
 * A domain whose last endpoint left no longer exists on the device.
 */
static void viommu_leave_locked(struct viommu_endpoint *ep)
{
	struct viommu_dev *viommu = ep->viommu;
	struct viommu_domain *vdom = ep->vdomain;

	switch (ep->attached) {
	case VIOMMU_ATTACHED_PAGING:
		if (ep->untrusted)
			vdom->nr_untrusted--;
		if (!--vdom->nr_endpoints)
			viommu_domain_gone(vdom);
		ep->vdomain = NULL;
		break;
	case VIOMMU_ATTACHED_IDENTITY:
		if (viommu->has_bypass_config)
			viommu->identity_users--;
		break;
	case VIOMMU_ATTACHED_BLOCKED:
		viommu->blocking_users--;
		break;
	case VIOMMU_DETACHED:
		break;
	}
	ep->attached = VIOMMU_DETACHED;
}

/*
 * Is the endpoint attached to a domain on the device? In identity mode with
 * the legacy BYPASS feature, and blocked without a blocking domain ID
 * (viommu_attach_blocked()), it is detached.
 */
static bool viommu_in_device_domain(struct viommu_endpoint *ep)
{
	switch (ep->attached) {
	case VIOMMU_ATTACHED_PAGING:
		return true;
	case VIOMMU_ATTACHED_IDENTITY:
		return ep->viommu->has_bypass_config;
	case VIOMMU_ATTACHED_BLOCKED:
		return ep->viommu->blocking_id;
	default:
		return false;
	}
}

static u32 viommu_current_domain_id(struct viommu_endpoint *ep)
{
	switch (ep->attached) {
	case VIOMMU_ATTACHED_PAGING:
		return ep->vdomain->id;
	case VIOMMU_ATTACHED_IDENTITY:
		return ep->viommu->identity_id;
	case VIOMMU_ATTACHED_BLOCKED:
		return ep->viommu->blocking_id;
	default:
		return 0;
	}
}

/**
 * viommu_paging_attach() - attach an endpoint to a paging domain
 * @ep: the endpoint
 * @vdom: a domain of the same instance
 *
 * Return: 0 or a negative errno; on error the endpoint stays where it was
 * unless the device moved it, in which case the bookkeeping follows it.
 */
int viommu_paging_attach(struct viommu_endpoint *ep, struct viommu_domain *vdom)
{
	struct viommu_dev *viommu = ep->viommu;
	int ret;

	mutex_lock(&viommu->attach_lock);
	if (ep->attached == VIOMMU_ATTACHED_PAGING && ep->vdomain == vdom) {
		mutex_unlock(&viommu->attach_lock);
		return 0;
	}
	ret = viommu_send_ep(ep, VIRTIO_IOMMU_T_ATTACH, vdom->id, 0);
	if (ret) {
		mutex_unlock(&viommu->attach_lock);
		return ret;
	}
	viommu_leave_locked(ep);
	ep->attached = VIOMMU_ATTACHED_PAGING;
	ep->vdomain = vdom;
	if (ep->untrusted)
		vdom->nr_untrusted++;
	if (!vdom->nr_endpoints++)
		ret = viommu_domain_replay(vdom);
	mutex_unlock(&viommu->attach_lock);
	return ret;
}

int viommu_attach_identity(struct iommu_domain *domain, struct device *dev)
{
	struct viommu_endpoint *ep = dev_iommu_priv_get(dev);
	struct viommu_dev *viommu = ep->viommu;
	int ret = 0;

	mutex_lock(&viommu->attach_lock);
	if (ep->attached == VIOMMU_ATTACHED_IDENTITY)
		goto out;
	if (viommu->has_bypass_config && viommu->identity_id) {
		ret = viommu_send_ep(ep, VIRTIO_IOMMU_T_ATTACH,
				     viommu->identity_id,
				     VIRTIO_IOMMU_ATTACH_F_BYPASS);
		if (ret)
			goto out;
		viommu_leave_locked(ep);
		viommu->identity_users++;
	} else if (viommu->has_legacy_bypass) {
		/* Unattached endpoints bypass the IOMMU. */
		if (viommu_in_device_domain(ep)) {
			ret = viommu_send_ep(ep, VIRTIO_IOMMU_T_DETACH,
					     viommu_current_domain_id(ep), 0);
			if (ret)
				goto out;
		}
		viommu_leave_locked(ep);
	} else {
		ret = -EOPNOTSUPP;
		goto out;
	}
	ep->attached = VIOMMU_ATTACHED_IDENTITY;
out:
	mutex_unlock(&viommu->attach_lock);
	return ret;
}

/*
 * Block by detaching, for a device whose domain range left no blocking
 * domain ID. A detached endpoint is blocked unless the legacy BYPASS
 * feature was accepted or the bypass field is 1: the field is cleared
 * first (endpoints not attached yet are blocked too, which is what the
 * core expects of them). With legacy BYPASS nothing but a reset blocks.
 */
static int viommu_block_by_detach_locked(struct viommu_endpoint *ep)
{
	struct viommu_dev *viommu = ep->viommu;

	if (viommu->has_legacy_bypass)
		return -EOPNOTSUPP;
	if (viommu->has_bypass_config)
		virtio_cwrite8(viommu->vdev,
			       offsetof(struct virtio_iommu_config, bypass), 0);
	if (!viommu_in_device_domain(ep))
		return 0;
	return viommu_send_ep(ep, VIRTIO_IOMMU_T_DETACH,
			      viommu_current_domain_id(ep), 0);
}

/*
 * The core cannot fall back when the blocked domain fails to attach (VFIO's
 * ownership claims fail, must-succeed paths warn), so this does not fail:
 * when the endpoint cannot be blocked, the device is declared broken, which
 * resets it so that no endpoint reaches memory, this one included.
 */
int viommu_attach_blocked(struct iommu_domain *domain, struct device *dev)
{
	struct viommu_endpoint *ep = dev_iommu_priv_get(dev);
	struct viommu_dev *viommu = ep->viommu;
	int ret = 0;

	mutex_lock(&viommu->attach_lock);
	if (ep->attached == VIOMMU_ATTACHED_BLOCKED)
		goto out;
	if (!viommu_engine_broken(&viommu->engine)) {
		/* An empty domain that never gets mappings blocks all DMA. */
		if (viommu->blocking_id)
			ret = viommu_send_ep(ep, VIRTIO_IOMMU_T_ATTACH,
					     viommu->blocking_id, 0);
		else
			ret = viommu_block_by_detach_locked(ep);
		if (ret)
			viommu_engine_break(&viommu->engine,
					    "cannot block an endpoint");
		ret = 0;
	}
	viommu_leave_locked(ep);
	viommu->blocking_users++;
	ep->attached = VIOMMU_ATTACHED_BLOCKED;
out:
	mutex_unlock(&viommu->attach_lock);
	return ret;
}

static const struct iommu_domain_ops viommu_identity_ops = {
	.attach_dev = viommu_attach_identity_dev,
};

static const struct iommu_domain_ops viommu_blocked_ops = {
	.attach_dev = viommu_attach_blocked_dev,
};

struct iommu_domain viommu_identity_domain = {
	.type = IOMMU_DOMAIN_IDENTITY,
	.ops = &viommu_identity_ops,
};

struct iommu_domain viommu_blocked_domain = {
	.type = IOMMU_DOMAIN_BLOCKED,
	.ops = &viommu_blocked_ops,
};

/**
 * viommu_release_device() - iommu_ops.release_device
 * @dev: the endpoint's device
 *
 * Detaches the endpoint from whatever it is attached to, drops its device
 * link and frees it. The core calls this when the device is deleted
 * (hot-unplug, sysfs remove), when the instance goes away (driver unbind,
 * module unload), and when its own probe fails after probe_device.
 *
 * UNMAPs that wait in the driver (lazy domains) are completed before the
 * DETACH is sent: when the endpoint is the domain's last, the DETACH makes
 * the device destroy the domain, and they must reach it while it exists,
 * whatever order the device gives the requests of one notification.
 */
void viommu_release_device(struct device *dev)
{
	struct viommu_endpoint *ep = dev_iommu_priv_get(dev);
	struct viommu_dev *viommu = ep->viommu;
	int ret;

	mutex_lock(&viommu->attach_lock);
	if (ep->attached == VIOMMU_ATTACHED_PAGING) {
		ret = viommu_sync(&viommu->engine, VIOMMU_CAUSE_SYNC);
		if (ret)
			dev_warn(dev, "pending UNMAPs not completed: %d\n", ret);
	}
	if (viommu_in_device_domain(ep)) {
		ret = viommu_send_ep(ep, VIRTIO_IOMMU_T_DETACH,
				     viommu_current_domain_id(ep), 0);
		if (ret)
			dev_warn(dev, "DETACH failed: %d\n", ret);
	}
	viommu_leave_locked(ep);
	hlist_del_init(&ep->node);
	mutex_unlock(&viommu->attach_lock);
	/*
	 * device_del() purges every link of a device being deleted before the
	 * bus notifier has the core call us, so on hot-unplug and sysfs
	 * removal the link is already gone and its memory on its way to being
	 * freed. device_link_remove() looks the link up by its two ends and
	 * drops it only if it still exists: the other paths, where the
	 * endpoint stays registered, still hold it.
	 */
	if (ep->linked)
		device_link_remove(dev, viommu->dev);
	/*
	 * No dev_iommu_priv_set(dev, NULL): the core calls release_device
	 * without iommu_probe_device_lock (lockdep warns) and frees dev->iommu
	 * right after.
	 */
	viommu_free_endpoint(ep);
}

/**
 * viommu_get_resv_regions() - iommu_ops.get_resv_regions
 * @dev: the endpoint's device
 * @head: list to add the regions to
 *
 * The device's RESV_MEM properties, plus a software MSI window when the
 * device describes no MSI doorbell (the MSI controller's doorbell then
 * needs a mapping of its own), plus the generic DMA reserved regions.
 */
void viommu_get_resv_regions(struct device *dev, struct list_head *head)
{
	struct viommu_endpoint *ep = dev_iommu_priv_get(dev);
	struct iommu_resv_region *region;
	struct viommu_resv *resv;
	const int msi_prot = IOMMU_READ | IOMMU_WRITE | IOMMU_MMIO;
	bool has_msi = false;

	list_for_each_entry(resv, &ep->resv_regions, list) {
		/*
		 * The length of [0, U64_MAX] does not fit: one byte short, the
		 * region still covers every page.
		 */
		size_t len = resv->last - resv->start >= SIZE_MAX ? SIZE_MAX :
			     resv->last - resv->start + 1;

		if (resv->subtype == VIRTIO_IOMMU_RESV_MEM_T_MSI) {
			has_msi = true;
			region = iommu_alloc_resv_region(resv->start, len, msi_prot,
							 IOMMU_RESV_MSI,
							 GFP_KERNEL);
		} else {
			region = iommu_alloc_resv_region(resv->start, len, 0,
							 IOMMU_RESV_RESERVED,
							 GFP_KERNEL);
		}
		if (region)
			list_add_tail(&region->list, head);
	}
	if (!has_msi) {
		region = iommu_alloc_resv_region(VIOMMU_SW_MSI_BASE,
						 VIOMMU_SW_MSI_LENGTH, msi_prot,
						 IOMMU_RESV_SW_MSI, GFP_KERNEL);
		if (region)
			list_add_tail(&region->list, head);
	}
	viommu_dma_get_resv_regions(dev, head);
}

/**
 * viommu_def_domain_type() - iommu_ops.def_domain_type
 * @dev: the endpoint's device
 *
 * Return: IOMMU_DOMAIN_DMA when the kernel's default is passthrough but
 * the device cannot provide identity domains, 0 (no preference, the
 * kernel's strict or lazy default applies) otherwise.
 */
int viommu_def_domain_type(struct device *dev)
{
	struct viommu_endpoint *ep = dev_iommu_priv_get(dev);
	struct viommu_dev *viommu = ep->viommu;

	if ((viommu->has_bypass_config && viommu->identity_id) ||
	    viommu->has_legacy_bypass || !iommu_default_passthrough())
		return 0;
	return IOMMU_DOMAIN_DMA;
}
