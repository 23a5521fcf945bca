// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq: a virtio-iommu guest driver with batched MAP syncs,
 * deferred UNMAPs and a bounded deferral window.
 *
 * This file binds the virtio device: feature negotiation, validation of
 * the configuration space, virtqueues, registration with the IOMMU core.
 */

#include <linux/module.h>
#include <linux/of.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "viommu.h"

#define VIOMMU_RESERVED_IDS	2	/* identity and blocking domains */

/* On the 6.1 iommu core, core61.c has the iommu_ops instead. */
#ifndef VIOMMU_CORE61
static bool viommu_capable(struct device *dev, enum iommu_cap cap)
{
	switch (cap) {
	case IOMMU_CAP_CACHE_COHERENCY:
		return true;
	case IOMMU_CAP_DEFERRED_FLUSH:
		/* The trust policy: untrusted endpoints stay strict. */
		return !(dev_is_pci(dev) && to_pci_dev(dev)->untrusted);
	default:
		return false;
	}
}

static struct iommu_group *viommu_device_group(struct device *dev)
{
	if (dev_is_pci(dev))
		return pci_device_group(dev);
	return generic_device_group(dev);
}

static int viommu_of_xlate(struct device *dev,
			   const struct of_phandle_args *args)
{
	if (args->args_count != 1)
		return -EINVAL;
	return iommu_fwspec_add_ids(dev, args->args, 1);
}

const struct iommu_ops viommu_ops = {
	.capable		= viommu_capable,
	.domain_alloc_paging	= viommu_domain_alloc_paging,
	.probe_device		= viommu_probe_device,
	.release_device		= viommu_release_device,
	.device_group		= viommu_device_group,
	.get_resv_regions	= viommu_get_resv_regions,
	.of_xlate		= viommu_of_xlate,
	.def_domain_type	= viommu_def_domain_type,
	.identity_domain	= &viommu_identity_domain,
	.blocked_domain		= &viommu_blocked_domain,
	.owner			= THIS_MODULE,
	.default_domain_ops	= &viommu_paging_ops,
};
#endif

/*
 * Read and check the configuration space. A malformed configuration makes
 * the probe fail with a message rather than leave a half-working IOMMU.
 * Not static: the KUnit suites run it against a fake configuration space.
 */
int viommu_read_config(struct viommu_dev *viommu)
{
	struct virtio_device *vdev = viommu->vdev;
	u64 mask, granule;

	virtio_cread_le(vdev, struct virtio_iommu_config, page_size_mask, &mask);
	if (!mask) {
		dev_err(viommu->dev, "invalid config: empty page_size_mask\n");
		return -EINVAL;
	}
	granule = mask & -mask;
	if (granule > PAGE_SIZE) {
		dev_err(viommu->dev,
			"invalid config: page granule 0x%llx larger than PAGE_SIZE\n",
			granule);
		return -EINVAL;
	}
	/*
	 * Pieces smaller than a CPU page are of no use to the DMA API. A
	 * granule of at most PAGE_SIZE divides PAGE_SIZE, so CPU pages can
	 * always be mapped, whatever larger sizes the device also offers.
	 */
	viommu->pgsize_bitmap = (mask & ~(PAGE_SIZE - 1)) | PAGE_SIZE;

	viommu->input_start = 0;
	viommu->input_end = U64_MAX;
	virtio_cread_le_feature(vdev, VIRTIO_IOMMU_F_INPUT_RANGE,
				struct virtio_iommu_config, input_range.start,
				&viommu->input_start);
	virtio_cread_le_feature(vdev, VIRTIO_IOMMU_F_INPUT_RANGE,
				struct virtio_iommu_config, input_range.end,
				&viommu->input_end);
	if (viommu->input_start > viommu->input_end ||
	    viommu->input_end - viommu->input_start < PAGE_SIZE - 1) {
		dev_err(viommu->dev, "invalid config: input range 0x%llx-0x%llx\n",
			viommu->input_start, viommu->input_end);
		return -EINVAL;
	}

	viommu->first_domain = 0;
	viommu->last_domain = U32_MAX;
	virtio_cread_le_feature(vdev, VIRTIO_IOMMU_F_DOMAIN_RANGE,
				struct virtio_iommu_config, domain_range.start,
				&viommu->first_domain);
	virtio_cread_le_feature(vdev, VIRTIO_IOMMU_F_DOMAIN_RANGE,
				struct virtio_iommu_config, domain_range.end,
				&viommu->last_domain);
	if (viommu->first_domain > viommu->last_domain) {
		dev_err(viommu->dev, "invalid config: domain range %u-%u\n",
			viommu->first_domain, viommu->last_domain);
		return -EINVAL;
	}
	/* The ida works on int; ID 0 is kept for "none". */
	viommu->first_domain = max(viommu->first_domain, 1U);
	viommu->last_domain = min_t(u32, viommu->last_domain, INT_MAX);
	if (viommu->first_domain > viommu->last_domain) {
		dev_err(viommu->dev, "invalid config: no usable domain ID\n");
		return -EINVAL;
	}

	viommu->has_probe = virtio_has_feature(vdev, VIRTIO_IOMMU_F_PROBE);
	if (viommu->has_probe) {
		virtio_cread_le(vdev, struct virtio_iommu_config, probe_size,
				&viommu->probe_size);
		if (viommu->probe_size > VIOMMU_PROBE_SIZE_MAX) {
			dev_err(viommu->dev, "invalid config: probe_size %u\n",
				viommu->probe_size);
			return -EINVAL;
		}
		if (!viommu->probe_size)
			dev_warn(viommu->dev,
				 "probe_size is 0: endpoints will not be probed\n");
	}

	viommu->map_flags = VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE;
	if (virtio_has_feature(vdev, VIRTIO_IOMMU_F_MMIO))
		viommu->map_flags |= VIRTIO_IOMMU_MAP_F_MMIO;
	viommu->has_bypass_config =
		virtio_has_feature(vdev, VIRTIO_IOMMU_F_BYPASS_CONFIG);
	viommu->has_legacy_bypass = !viommu->has_bypass_config &&
		virtio_has_feature(vdev, VIRTIO_IOMMU_F_BYPASS);
	return 0;
}

/* Keep two domain IDs for the identity and blocking domains, if possible. */
void viommu_reserve_domain_ids(struct viommu_dev *viommu)
{
	int id;

	if (viommu->last_domain - viommu->first_domain < VIOMMU_RESERVED_IDS) {
		dev_warn(viommu->dev,
			 "domain range too small for identity and blocking domains\n");
		return;
	}
	if (viommu->has_bypass_config) {
		id = ida_alloc_range(&viommu->domain_ids, viommu->first_domain,
				     viommu->last_domain, GFP_KERNEL);
		if (id > 0)
			viommu->identity_id = id;
	}
	id = ida_alloc_range(&viommu->domain_ids, viommu->first_domain,
			     viommu->last_domain, GFP_KERNEL);
	if (id > 0)
		viommu->blocking_id = id;
}

/* Not static: restore after a device reset creates the queues again. */
#ifdef VIOMMU_HAVE_FIND_VQS_CALLBACKS
int viommu_init_vqs(struct viommu_dev *viommu)
{
	vq_callback_t *callbacks[] = { NULL, viommu_event_handler };
	static const char * const names[] = { "request", "event" };
	struct virtqueue *vqs[ARRAY_SIZE(names)];
	int ret;

	ret = virtio_find_vqs(viommu->vdev, ARRAY_SIZE(vqs), vqs, callbacks,
			      names, NULL);
	if (ret)
		return ret;
	viommu->req_vq = vqs[0];
	viommu->evt_vq = vqs[1];
	return 0;
}
#else
int viommu_init_vqs(struct viommu_dev *viommu)
{
	struct virtqueue_info vqs_info[] = {
		{ "request" },
		{ "event", viommu_event_handler },
	};
	struct virtqueue *vqs[ARRAY_SIZE(vqs_info)];
	int ret;

	ret = virtio_find_vqs(viommu->vdev, ARRAY_SIZE(vqs), vqs, vqs_info,
			      NULL);
	if (ret)
		return ret;
	viommu->req_vq = vqs[0];
	viommu->evt_vq = vqs[1];
	return 0;
}
#endif

static int viommu_probe(struct virtio_device *vdev)
{
	struct device *hwdev = vdev->dev.parent;
	struct viommu_dev *viommu;
	unsigned int nr_slots;
	int ret;

	/* The request layouts are those of virtio 1.0 and later. */
	if (!virtio_has_feature(vdev, VIRTIO_F_VERSION_1)) {
		dev_err(&vdev->dev, "device does not offer VIRTIO_F_VERSION_1\n");
		return -ENODEV;
	}
	if (!virtio_has_feature(vdev, VIRTIO_IOMMU_F_MAP_UNMAP)) {
		dev_err(&vdev->dev, "device does not offer MAP/UNMAP requests\n");
		return -ENODEV;
	}
	viommu = kzalloc(sizeof(*viommu), GFP_KERNEL);
	if (!viommu)
		return -ENOMEM;
	viommu->vdev = vdev;
	viommu->dev = &vdev->dev;
	viommu->hwdev = hwdev;
	ida_init(&viommu->domain_ids);
	mutex_init(&viommu->attach_lock);
	INIT_LIST_HEAD(&viommu->list);
	vdev->priv = viommu;

	ret = viommu_read_config(viommu);
	if (ret)
		goto err_free;
	ret = viommu_init_vqs(viommu);
	if (ret)
		goto err_free;
	nr_slots = min_t(unsigned int, VIOMMU_NR_SLOTS,
			 virtqueue_get_vring_size(viommu->req_vq));
	viommu_knobs_defaults(&viommu->engine.knobs);
	ret = viommu_engine_init(&viommu->engine, viommu->dev,
				 &viommu_virtqueue_ops, viommu->req_vq,
				 nr_slots);
	if (ret)
		goto err_vqs;
	virtio_device_ready(vdev);
	ret = viommu_events_init(viommu);
	if (ret)
		goto err_reset;
	viommu_reserve_domain_ids(viommu);

	viommu_register_instance(viommu);
	ret = iommu_device_sysfs_add(&viommu->iommu, viommu->dev,
				     viommu_sysfs_groups, "%s",
				     dev_name(viommu->dev));
	if (ret)
		goto err_unregister;
	ret = iommu_device_register(&viommu->iommu, &viommu_ops, hwdev);
	if (ret)
		goto err_sysfs;
	viommu_core_registered(viommu);

	dev_info(viommu->dev,
		 "virtio-iommu-fq %s: input 0x%llx-0x%llx, domains %u-%u, page sizes 0x%llx%s%s%s\n",
		 VIOMMU_FQ_VERSION, viommu->input_start, viommu->input_end,
		 viommu->first_domain, viommu->last_domain,
		 viommu->pgsize_bitmap,
		 viommu->has_probe ? ", probe" : "",
		 viommu->has_bypass_config ? ", bypass-config" : "",
		 viommu->map_flags & VIRTIO_IOMMU_MAP_F_MMIO ? ", mmio" : "");
	return 0;

err_sysfs:
	iommu_device_sysfs_remove(&viommu->iommu);
err_unregister:
	viommu_unregister_instance(viommu);
err_reset:
	virtio_reset_device(vdev);
	viommu_engine_destroy(&viommu->engine);
err_vqs:
	vdev->config->del_vqs(vdev);
err_free:
	kfree(viommu->evts);
	ida_destroy(&viommu->domain_ids);
	kfree(viommu);
	return ret;
}

static void viommu_remove(struct virtio_device *vdev)
{
	struct viommu_dev *viommu = vdev->priv;

	iommu_device_sysfs_remove(&viommu->iommu);
	iommu_device_unregister(&viommu->iommu);
	viommu_unregister_instance(viommu);

	/* Stop the device before freeing the buffers it may still own. */
	viommu_engine_stop(&viommu->engine);
	virtio_reset_device(vdev);
	viommu_engine_destroy(&viommu->engine);
	vdev->config->del_vqs(vdev);
	kfree(viommu->evts);
	ida_destroy(&viommu->domain_ids);
	kfree(viommu);
	dev_info(&vdev->dev, "virtio-iommu-fq removed\n");
}

/*
 * Do not negotiate VIRTIO_RING_F_EVENT_IDX for the queues. Requests are
 * added while the device works on earlier ones; a device that publishes its
 * avail_event threshold without a full barrier before re-reading the
 * available index (seen with QEMU under TCG) can miss such a request, and
 * from then on the threshold tells the driver that no notification is
 * needed, stalling the queue. Without the feature the driver notifies
 * unless the device sets VRING_USED_F_NO_NOTIFY.
 *
 * Do not accept the legacy VIRTIO_IOMMU_F_BYPASS when BYPASS_CONFIG is
 * offered: with it, every unattached endpoint would bypass the IOMMU
 * whatever the bypass field says, which BYPASS_CONFIG replaces. The KUnit
 * suites call it through viommu_driver.
 */
static int viommu_validate(struct virtio_device *vdev)
{
	__virtio_clear_bit(vdev, VIRTIO_RING_F_EVENT_IDX);
	if (virtio_has_feature(vdev, VIRTIO_IOMMU_F_BYPASS_CONFIG))
		__virtio_clear_bit(vdev, VIRTIO_IOMMU_F_BYPASS);
	return 0;
}

static void viommu_config_changed(struct virtio_device *vdev)
{
	dev_warn(&vdev->dev, "configuration change ignored\n");
}

static unsigned int viommu_features[] = {
	VIRTIO_IOMMU_F_INPUT_RANGE,
	VIRTIO_IOMMU_F_DOMAIN_RANGE,
	VIRTIO_IOMMU_F_MAP_UNMAP,
	VIRTIO_IOMMU_F_BYPASS,
	VIRTIO_IOMMU_F_PROBE,
	VIRTIO_IOMMU_F_MMIO,
	VIRTIO_IOMMU_F_BYPASS_CONFIG,
};

static const struct virtio_device_id viommu_id_table[] = {
	{ VIRTIO_ID_IOMMU, VIRTIO_DEV_ANY_ID },
	{ 0 },
};
MODULE_DEVICE_TABLE(virtio, viommu_id_table);

/* Not static: the KUnit suites check its feature table and probe refusal. */
struct virtio_driver viommu_driver = {
	.driver.name		= KBUILD_MODNAME,
	.driver.suppress_bind_attrs = true,
	.feature_table		= viommu_features,
	.feature_table_size	= ARRAY_SIZE(viommu_features),
	.id_table		= viommu_id_table,
	.validate		= viommu_validate,
	.probe			= viommu_probe,
	.remove			= viommu_remove,
	.config_changed		= viommu_config_changed,
	.freeze			= viommu_freeze,
	.restore		= viommu_restore,
};
module_virtio_driver(viommu_driver);

MODULE_DESCRIPTION("virtio-iommu-fq: virtio-iommu driver with batched and deferred flushes");
MODULE_AUTHOR("The virtio-iommu-fq developers");
MODULE_LICENSE("GPL");
MODULE_VERSION(VIOMMU_FQ_VERSION);
