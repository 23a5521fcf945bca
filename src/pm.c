// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq: suspend to RAM and hibernation.
 *
 * The virtio core calls .freeze before the system sleeps or writes a
 * hibernation image (and before a restore kernel jumps into an image), and
 * .restore afterwards, once it has reset the device and negotiated the same
 * features again. A device that went through a reset, which QEMU does to
 * every device on an x86 wake-up, has forgotten every domain, endpoint and
 * mapping, so restore rebuilds them from the driver's own records:
 *
 *   freeze   send everything queued, deferred UNMAPs included, and wait for
 *            it; mark the paging domains absent from the device; stop the
 *            request engine; reset the device; forget what it had in
 *            flight; free the virtqueues.
 *   restore  check that the configuration still describes the same device;
 *            create the virtqueues; restart the engine; re-attach every
 *            endpoint to the domain it had (paging, identity, blocked),
 *            replaying the mappings of each paging domain as its first
 *            endpoint comes back.
 *
 * Endpoints are consumers of the IOMMU through a device link, so the PM core
 * freezes them before it and restores them after it: their DMA stops before
 * freeze and resumes once restore has replayed every mapping.
 *
 * Between freeze and restore nothing touches the device. map and unmap only
 * change the driver's records (no domain is on the device), syncs return at
 * once (the device holds nothing to sync), and requests that need the
 * device's answer (ATTACH, DETACH, PROBE) fail with -EBUSY. Calls that
 * change attachments wait while freeze or restore run (attach_lock). Knobs
 * and counters belong to the request engine, which is kept.
 */

#include <linux/device.h>
#include <linux/ktime.h>
#include <linux/slab.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>

#include "viommu.h"

/*
 * Mark every paging domain with an endpoint as gone from the device: map and
 * unmap only change the driver's records until restore replays them.
 */
static void viommu_pm_domains_gone(struct viommu_dev *viommu)
{
	struct viommu_endpoint *ep;

	hlist_for_each_entry(ep, &viommu->endpoints, node)
		if (ep->attached == VIOMMU_ATTACHED_PAGING)
			viommu_domain_gone(ep->vdomain);
}

/* Stop using the device; reset it unless the virtio core already did. */
static void viommu_pm_stop(struct viommu_dev *viommu,
			   const struct viommu_pm_ops *ops, bool reset)
{
	viommu_pm_domains_gone(viommu);
	viommu_engine_freeze(&viommu->engine);
	if (reset)
		ops->reset(viommu);
	viommu_engine_stopped(&viommu->engine);
	ops->del_queues(viommu);
}

/**
 * viommu_pm_freeze() - quiesce the instance and reset its device
 * @viommu: the instance
 * @ops: the transport
 *
 * Return: 0. A device that does not drain in time is reset all the same:
 * the driver's records are what restore sends again.
 */
int viommu_pm_freeze(struct viommu_dev *viommu, const struct viommu_pm_ops *ops)
{
	int ret;

	mutex_lock(&viommu->attach_lock);
	if (viommu->engine.frozen)
		goto out;
	ret = viommu_sync(&viommu->engine, VIOMMU_CAUSE_FLUSH);
	if (ret)
		dev_warn(viommu->dev,
			 "freeze: queued requests not completed (%d), resetting the device anyway\n",
			 ret);
	viommu_pm_stop(viommu, ops, true);
out:
	mutex_unlock(&viommu->attach_lock);
	return 0;
}

/* What the domains and endpoints were made for; must survive a reset. */
struct viommu_pm_config {
	u64	pgsize_bitmap;
	u64	input_start;
	u64	input_end;
	u32	first_domain;
	u32	last_domain;
	u32	probe_size;
	u32	map_flags;
	bool	has_probe;
	bool	has_bypass_config;
	bool	has_legacy_bypass;
};

static void viommu_pm_save_config(struct viommu_dev *viommu,
				  struct viommu_pm_config *c)
{
	*c = (struct viommu_pm_config) {
		.pgsize_bitmap		= viommu->pgsize_bitmap,
		.input_start		= viommu->input_start,
		.input_end		= viommu->input_end,
		.first_domain		= viommu->first_domain,
		.last_domain		= viommu->last_domain,
		.probe_size		= viommu->probe_size,
		.map_flags		= viommu->map_flags,
		.has_probe		= viommu->has_probe,
		.has_bypass_config	= viommu->has_bypass_config,
		.has_legacy_bypass	= viommu->has_legacy_bypass,
	};
}

static void viommu_pm_load_config(struct viommu_dev *viommu,
				  const struct viommu_pm_config *c)
{
	viommu->pgsize_bitmap = c->pgsize_bitmap;
	viommu->input_start = c->input_start;
	viommu->input_end = c->input_end;
	viommu->first_domain = c->first_domain;
	viommu->last_domain = c->last_domain;
	viommu->probe_size = c->probe_size;
	viommu->map_flags = c->map_flags;
	viommu->has_probe = c->has_probe;
	viommu->has_bypass_config = c->has_bypass_config;
	viommu->has_legacy_bypass = c->has_legacy_bypass;
}

/*
 * Read the configuration again. What the existing domains and attachments
 * depend on (page sizes, input range, domain IDs, MAP flags, bypass) must
 * not have changed; a new probe_size only matters to endpoints probed from
 * now on. On a mismatch the old values are kept and the device stays
 * unused.
 */
static int viommu_pm_check_config(struct viommu_dev *viommu)
{
	struct viommu_pm_config old, now;
	int ret;

	viommu_pm_save_config(viommu, &old);
	ret = viommu_read_config(viommu);
	if (ret)
		goto err;
	viommu_pm_save_config(viommu, &now);
	if (now.pgsize_bitmap == old.pgsize_bitmap &&
	    now.input_start == old.input_start &&
	    now.input_end == old.input_end &&
	    now.first_domain == old.first_domain &&
	    now.last_domain == old.last_domain &&
	    now.map_flags == old.map_flags &&
	    now.has_bypass_config == old.has_bypass_config &&
	    now.has_legacy_bypass == old.has_legacy_bypass)
		return 0;
	dev_err(viommu->dev,
		"restore: the configuration changed: page sizes 0x%llx, input 0x%llx-0x%llx, domains %u-%u, MAP flags 0x%x (was 0x%llx, 0x%llx-0x%llx, %u-%u, 0x%x)\n",
		now.pgsize_bitmap, now.input_start, now.input_end,
		now.first_domain, now.last_domain, now.map_flags,
		old.pgsize_bitmap, old.input_start, old.input_end,
		old.first_domain, old.last_domain, old.map_flags);
	ret = -EINVAL;
err:
	viommu_pm_load_config(viommu, &old);
	return ret;
}

/* One ATTACH per endpoint ID. */
static int viommu_pm_attach(struct viommu_endpoint *ep, u32 domain, u32 flags)
{
	struct iommu_fwspec *fwspec = dev_iommu_fwspec_get(ep->dev);
	struct virtio_iommu_req_attach req = {
		.head.type	= VIRTIO_IOMMU_T_ATTACH,
		.domain		= cpu_to_le32(domain),
		.flags		= cpu_to_le32(flags),
	};
	unsigned int i;
	int ret;

	for (i = 0; i < fwspec->num_ids; i++) {
		req.endpoint = cpu_to_le32(fwspec->ids[i]);
		ret = viommu_send_sync(&ep->viommu->engine, &req, sizeof(req));
		if (ret)
			return ret;
	}
	return 0;
}

static unsigned long viommu_pm_nr_mappings(struct viommu_domain *vdom)
{
	unsigned long flags, nr = 0;
	struct rb_node *node;

	spin_lock_irqsave(&vdom->map_lock, flags);
	for (node = rb_first_cached(&vdom->mappings); node; node = rb_next(node))
		nr++;
	spin_unlock_irqrestore(&vdom->map_lock, flags);
	return nr;
}

struct viommu_pm_tally {
	unsigned int	endpoints;
	unsigned int	domains;
	unsigned long	mappings;
	unsigned int	failed;
};

/* Give one endpoint its attachment back; replay its domain if first. */
static void viommu_pm_reattach(struct viommu_endpoint *ep,
			       struct viommu_pm_tally *tally)
{
	struct viommu_dev *viommu = ep->viommu;
	struct viommu_domain *vdom = ep->vdomain;
	int ret = 0;

	switch (ep->attached) {
	case VIOMMU_ATTACHED_PAGING:
		ret = viommu_pm_attach(ep, vdom->id, 0);
		if (ret || vdom->live)
			break;
		tally->domains++;
		tally->mappings += viommu_pm_nr_mappings(vdom);
		ret = viommu_domain_replay(vdom);
		break;
	case VIOMMU_ATTACHED_IDENTITY:
		/* With the legacy BYPASS feature, detached is identity. */
		if (viommu->has_bypass_config)
			ret = viommu_pm_attach(ep, viommu->identity_id,
					       VIRTIO_IOMMU_ATTACH_F_BYPASS);
		break;
	case VIOMMU_ATTACHED_BLOCKED:
		/* Without a blocking domain ID it is detached, so blocked. */
		if (viommu->blocking_id)
			ret = viommu_pm_attach(ep, viommu->blocking_id, 0);
		break;
	case VIOMMU_DETACHED:
		return;
	}
	if (ret) {
		tally->failed++;
		dev_err(ep->dev, "restore: cannot restore the IOMMU attachment: %d\n",
			ret);
	} else {
		tally->endpoints++;
	}
}

/**
 * viommu_pm_restore() - bring a reset device back to the driver's state
 * @viommu: the instance
 * @ops: the transport
 *
 * Called after the device was reset and its features negotiated again,
 * before the endpoints resume. An endpoint that cannot be re-attached is
 * reported and the others are restored.
 *
 * Return: 0, or a negative errno when the device cannot be used again (it
 * was declared broken, its configuration changed, its queues cannot be
 * created); the engine then stays frozen, so that calls fail instead of
 * waiting for the device.
 */
int viommu_pm_restore(struct viommu_dev *viommu, const struct viommu_pm_ops *ops)
{
	struct viommu_pm_tally tally = {};
	struct viommu_endpoint *ep;
	ktime_t start = ktime_get();
	void *queue;
	int ret;

	mutex_lock(&viommu->attach_lock);
	/* Restored without a freeze: the virtio core reset the device. */
	if (!viommu->engine.frozen)
		viommu_pm_stop(viommu, ops, false);
	/*
	 * A device declared broken stays broken (see request.c): the reset of
	 * the wake-up may have let unattached endpoints bypass it again, so
	 * block them and keep the engine frozen, every call failing.
	 */
	if (READ_ONCE(viommu->engine.broken)) {
		ops->block(viommu);
		dev_err(viommu->dev,
			"restore: the device was declared broken: it stays reset, every endpoint blocked\n");
		ret = -EIO;
		goto out;
	}
	ret = viommu_pm_check_config(viommu);
	if (ret)
		goto out;
	ret = ops->find_queues(viommu, &queue);
	if (ret) {
		dev_err(viommu->dev, "restore: cannot create the virtqueues: %d\n",
			ret);
		goto out;
	}
	ops->ready(viommu);
	viommu_engine_thaw(&viommu->engine, queue);
	hlist_for_each_entry(ep, &viommu->endpoints, node)
		viommu_pm_reattach(ep, &tally);
	dev_info(viommu->dev,
		 "restored after reset: %u endpoints re-attached (%u failed), %u paging domains with %lu mappings replayed in %lld us\n",
		 tally.endpoints, tally.failed, tally.domains, tally.mappings,
		 ktime_us_delta(ktime_get(), start));
out:
	mutex_unlock(&viommu->attach_lock);
	return ret;
}

/* The virtio transport. */

static void viommu_pm_vdev_reset(struct viommu_dev *viommu)
{
	virtio_reset_device(viommu->vdev);
}

static void viommu_pm_vdev_del_queues(struct viommu_dev *viommu)
{
	viommu->vdev->config->del_vqs(viommu->vdev);
	viommu->req_vq = NULL;
	viommu->evt_vq = NULL;
}

static int viommu_pm_vdev_find_queues(struct viommu_dev *viommu, void **queue)
{
	int ret = viommu_init_vqs(viommu);

	*queue = viommu->req_vq;
	return ret;
}

static void viommu_pm_vdev_ready(struct viommu_dev *viommu)
{
	int ret;

	virtio_device_ready(viommu->vdev);
	kfree(viommu->evts);
	viommu->evts = NULL;
	ret = viommu_events_init(viommu);
	if (ret)
		dev_warn(viommu->dev, "restore: event queue not filled (%d): faults go unreported\n",
			 ret);
}

/*
 * With BYPASS_CONFIG negotiated (the virtio core negotiated the features
 * again before restore), unattached endpoints bypass when the config's
 * bypass field is 1, as a reset may leave it: clear it. Without the
 * feature, none was accepted that lets them bypass.
 */
static void viommu_pm_vdev_block(struct viommu_dev *viommu)
{
	if (virtio_has_feature(viommu->vdev, VIRTIO_IOMMU_F_BYPASS_CONFIG))
		virtio_cwrite8(viommu->vdev,
			       offsetof(struct virtio_iommu_config, bypass), 0);
}

static const struct viommu_pm_ops viommu_pm_virtio = {
	.reset		= viommu_pm_vdev_reset,
	.del_queues	= viommu_pm_vdev_del_queues,
	.find_queues	= viommu_pm_vdev_find_queues,
	.ready		= viommu_pm_vdev_ready,
	.block		= viommu_pm_vdev_block,
};

/**
 * viommu_freeze() - virtio_driver.freeze
 * @vdev: the virtio device
 *
 * Return: 0.
 */
int viommu_freeze(struct virtio_device *vdev)
{
	return viommu_pm_freeze(vdev->priv, &viommu_pm_virtio);
}

/**
 * viommu_restore() - virtio_driver.restore
 * @vdev: the virtio device, reset, its features negotiated again
 *
 * Return: 0 or a negative errno, see viommu_pm_restore().
 */
int viommu_restore(struct virtio_device *vdev)
{
	return viommu_pm_restore(vdev->priv, &viommu_pm_virtio);
}
