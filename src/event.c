// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq: the event virtqueue.
 *
 * The driver keeps the event queue full of device-writable buffers. The
 * device reports faults in them; each report is logged (rate-limited),
 * counted, and its buffer given back to the device.
 */

#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/virtio.h>

#include "viommu.h"

static const char *viommu_fault_reason(u8 reason)
{
	switch (reason) {
	case VIRTIO_IOMMU_FAULT_R_DOMAIN:
		return "endpoint not attached";
	case VIRTIO_IOMMU_FAULT_R_MAPPING:
		return "address not mapped or access not allowed";
	default:
		/* Unknown reasons are treated as UNKNOWN. */
		return "unknown";
	}
}

/**
 * viommu_handle_fault() - handle one fault report
 * @viommu: the instance
 * @fault: the report
 * @len: bytes the device wrote
 *
 * Reports with non-zero reserved bytes or too short to hold a fault are
 * ignored, as are undefined flags and the reserved1 field.
 */
void viommu_handle_fault(struct viommu_dev *viommu,
			 const struct virtio_iommu_fault *fault,
			 unsigned int len)
{
	u32 flags, endpoint;

	if (len < sizeof(*fault)) {
		dev_warn_ratelimited(viommu->dev, "short fault report (%u bytes)\n",
				     len);
		return;
	}
	if (fault->reserved[0] || fault->reserved[1] || fault->reserved[2])
		return;
	flags = le32_to_cpu(fault->flags);
	endpoint = le32_to_cpu(fault->endpoint);
	viommu_stat_add(&viommu->engine, VIOMMU_STAT_FAULTS, 1);
	if (flags & VIRTIO_IOMMU_FAULT_F_ADDRESS)
		dev_err_ratelimited(viommu->dev,
				    "fault from endpoint 0x%x: %s at 0x%llx%s%s\n",
				    endpoint, viommu_fault_reason(fault->reason),
				    le64_to_cpu(fault->address),
				    flags & VIRTIO_IOMMU_FAULT_F_READ ? " read" : "",
				    flags & VIRTIO_IOMMU_FAULT_F_WRITE ? " write" : "");
	else
		dev_err_ratelimited(viommu->dev,
				    "fault from endpoint 0x%x: %s%s%s\n",
				    endpoint, viommu_fault_reason(fault->reason),
				    flags & VIRTIO_IOMMU_FAULT_F_READ ? " read" : "",
				    flags & VIRTIO_IOMMU_FAULT_F_WRITE ? " write" : "");
}

static int viommu_add_event_buf(struct virtqueue *vq,
				struct virtio_iommu_fault *evt)
{
	struct scatterlist sg;

	sg_init_one(&sg, evt, sizeof(*evt));
	return virtqueue_add_inbuf(vq, &sg, 1, evt, GFP_ATOMIC);
}

/**
 * viommu_event_handler() - callback of the event virtqueue
 * @vq: the event virtqueue
 */
void viommu_event_handler(struct virtqueue *vq)
{
	struct viommu_dev *viommu = vq->vdev->priv;
	struct virtio_iommu_fault *evt;
	unsigned int len;

	while ((evt = virtqueue_get_buf(vq, &len))) {
		viommu_handle_fault(viommu, evt, len);
		memset(evt, 0, sizeof(*evt));
		if (viommu_add_event_buf(vq, evt))
			dev_err_ratelimited(viommu->dev, "cannot recycle event buffer\n");
	}
	virtqueue_kick(vq);
}

/**
 * viommu_events_init() - fill the event queue
 * @viommu: the instance, with evt_vq set
 *
 * Return: 0 or a negative errno.
 */
int viommu_events_init(struct viommu_dev *viommu)
{
	unsigned int i, nr = virtqueue_get_vring_size(viommu->evt_vq);
	int ret;

	viommu->evts = kcalloc(nr, sizeof(*viommu->evts), GFP_KERNEL);
	if (!viommu->evts)
		return -ENOMEM;
	viommu->nr_evts = nr;
	for (i = 0; i < nr; i++) {
		ret = viommu_add_event_buf(viommu->evt_vq, &viommu->evts[i]);
		if (ret)
			return ret;
	}
	virtqueue_kick(viommu->evt_vq);
	return 0;
}
