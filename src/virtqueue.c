// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq: the request engine's queue operations on a virtqueue.
 */

#include <linux/scatterlist.h>
#include <linux/stddef.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>

#include "viommu.h"

static int viommu_vq_add(void *queue, struct scatterlist *out,
			 struct scatterlist *in, void *token)
{
	struct scatterlist *sgs[2] = { out, in };

	return virtqueue_add_sgs(queue, sgs, 1, 1, token, GFP_ATOMIC);
}

static bool viommu_vq_kick_prepare(void *queue)
{
	return virtqueue_kick_prepare(queue);
}

static void viommu_vq_notify(void *queue)
{
	virtqueue_notify(queue);
}

static void *viommu_vq_get_used(void *queue, unsigned int *len)
{
	return virtqueue_get_buf(queue, len);
}

/*
 * A request takes two descriptors (one device-readable, one device-writable
 * buffer), or one with indirect descriptors: count requests that surely
 * fit, so that a wait for room never ends while add() still has none.
 */
static unsigned int viommu_vq_free_slots(void *queue)
{
	return ((struct virtqueue *)queue)->num_free / 2;
}

/*
 * Leave no endpoint able to reach memory. After a reset no endpoint is
 * attached to any domain, and the device should not let unattached
 * endpoints that are not in bypass mode reach memory. With BYPASS_CONFIG,
 * unattached endpoints bypass when the bypass field is 1 (QEMU starts with
 * 1), whether or not features are negotiated, and the field should not
 * change on a device reset: write 0 while the feature is still negotiated,
 * then reset. A device that restores bypass on reset anyway gets the
 * feature negotiated again and 0 written once more. The device is left
 * without DRIVER_OK: its queues are gone, and removal resets it again.
 * Without BYPASS_CONFIG no feature is accepted after the reset, so the
 * legacy BYPASS no longer applies either.
 */
static void viommu_vq_block(void *queue)
{
	struct virtio_device *vdev = ((struct virtqueue *)queue)->vdev;
	const unsigned int bypass = offsetof(struct virtio_iommu_config, bypass);
	bool config = virtio_has_feature(vdev, VIRTIO_IOMMU_F_BYPASS_CONFIG);

	if (config)
		virtio_cwrite8(vdev, bypass, 0);
	virtio_reset_device(vdev);
	if (!config || !(virtio_cread8(vdev, bypass) & 1))
		return;
	__virtio_clear_bit(vdev, VIRTIO_IOMMU_F_BYPASS);
	virtio_add_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	virtio_add_status(vdev, VIRTIO_CONFIG_S_DRIVER);
	if (!vdev->config->finalize_features(vdev)) {
		virtio_add_status(vdev, VIRTIO_CONFIG_S_FEATURES_OK);
		if (vdev->config->get_status(vdev) & VIRTIO_CONFIG_S_FEATURES_OK) {
			virtio_cwrite8(vdev, bypass, 0);
			return;
		}
	}
	dev_err(&vdev->dev, "cannot clear bypass after the reset\n");
}

const struct viommu_queue_ops viommu_virtqueue_ops = {
	.add		= viommu_vq_add,
	.kick_prepare	= viommu_vq_kick_prepare,
	.notify		= viommu_vq_notify,
	.get_used	= viommu_vq_get_used,
	.free_slots	= viommu_vq_free_slots,
	.block		= viommu_vq_block,
};
