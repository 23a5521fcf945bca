// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq: the request engine's queue operations on a virtqueue.
 */

#include <linux/scatterlist.h>
#include <linux/virtio.h>

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

static unsigned int viommu_vq_free_slots(void *queue)
{
	return ((struct virtqueue *)queue)->num_free;
}

const struct viommu_queue_ops viommu_virtqueue_ops = {
	.add		= viommu_vq_add,
	.kick_prepare	= viommu_vq_kick_prepare,
	.notify		= viommu_vq_notify,
	.get_used	= viommu_vq_get_used,
	.free_slots	= viommu_vq_free_slots,
};
