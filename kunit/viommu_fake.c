// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq KUnit: the fake virtio-iommu device and the test
 * environment built on it. See viommu_fake.h.
 */

#include <kunit/test.h>
#include <linux/device.h>
#include <linux/iommu.h>
#include <linux/pci.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/virtio_config.h>

#include "viommu_fake.h"

#define VFAKE_TAIL_LEN		sizeof(struct virtio_iommu_req_tail)
#define VFAKE_PROBE_OUT_LEN	offsetof(struct virtio_iommu_req_probe, properties)

static __printf(2, 3) void vfake_violation(struct vfake *fake, const char *fmt, ...)
{
	va_list args;

	if (!fake->nr_violations++) {
		va_start(args, fmt);
		vsnprintf(fake->violation, sizeof(fake->violation), fmt, args);
		va_end(args);
	}
}

static bool vfake_bit(struct vfake *fake, unsigned int fbit)
{
	return fake->vdev.features & BIT_ULL(fbit);
}

/* Configuration space: reads are served, any write is a violation. */

static void vfake_config_get(struct virtio_device *vdev, unsigned int offset,
			     void *buf, unsigned int len)
{
	struct vfake *fake = container_of(vdev, struct vfake, vdev);

	if (offset + len > sizeof(fake->config)) {
		vfake_violation(fake, "config read beyond the layout at %u+%u",
				offset, len);
		memset(buf, 0, len);
		return;
	}
	if (offset <= offsetof(struct virtio_iommu_config, bypass) &&
	    offset + len > offsetof(struct virtio_iommu_config, bypass))
		fake->bypass_reads++;
	memcpy(buf, (u8 *)&fake->config + offset, len);
}

static void vfake_config_set(struct virtio_device *vdev, unsigned int offset,
			     const void *buf, unsigned int len)
{
	struct vfake *fake = container_of(vdev, struct vfake, vdev);

	/* The one field a driver may write, with BYPASS_CONFIG. */
	if (offset == offsetof(struct virtio_iommu_config, bypass) && len == 1 &&
	    vfake_bit(fake, VIRTIO_IOMMU_F_BYPASS_CONFIG)) {
		fake->config.bypass = *(const u8 *)buf;
		fake->bypass_writes++;
		return;
	}
	fake->config_writes++;
	vfake_violation(fake, "driver wrote config offset %u (%u bytes)",
			offset, len);
}

/* The fake has no virtqueues: a probe that gets this far is refused here. */
static int vfake_find_vqs(struct virtio_device *vdev, unsigned int nvqs,
			  struct virtqueue *vqs[],
			  struct virtqueue_info vqs_info[],
			  struct irq_affinity *desc)
{
	struct vfake *fake = container_of(vdev, struct vfake, vdev);

	fake->find_vqs_calls++;
	return -EIO;
}

static const struct virtio_config_ops vfake_config_ops = {
	.get = vfake_config_get,
	.set = vfake_config_set,
	.find_vqs = vfake_find_vqs,
};

/* Device state helpers, called with the fake's lock held. */

static struct vfake_domain *vfake_dom(struct vfake *fake, u32 id)
{
	unsigned int i;

	for (i = 0; i < VFAKE_MAX_DOMAINS; i++)
		if (fake->domains[i].exists && fake->domains[i].id == id)
			return &fake->domains[i];
	return NULL;
}

static struct vfake_domain *vfake_dom_create(struct vfake *fake, u32 id,
					     bool bypass)
{
	unsigned int i;

	for (i = 0; i < VFAKE_MAX_DOMAINS; i++) {
		if (!fake->domains[i].exists) {
			fake->domains[i] = (struct vfake_domain) {
				.exists = true, .id = id, .bypass = bypass,
			};
			return &fake->domains[i];
		}
	}
	return NULL;
}

static struct vfake_endpoint *vfake_ep(struct vfake *fake, u32 id)
{
	unsigned int i;

	for (i = 0; i < VFAKE_MAX_ENDPOINTS; i++)
		if (fake->endpoints[i].exists && fake->endpoints[i].id == id)
			return &fake->endpoints[i];
	return NULL;
}

static void vfake_drop_mappings(struct vfake *fake, u32 domain)
{
	unsigned int i;

	for (i = 0; i < VFAKE_MAX_MAPPINGS; i++) {
		if (fake->mappings[i].used && fake->mappings[i].domain == domain) {
			fake->mappings[i].used = false;
			fake->nr_mappings--;
		}
	}
}

/* Detach an endpoint; a domain without endpoints ceases to exist. */
static void vfake_detach_ep(struct vfake *fake, struct vfake_endpoint *ep)
{
	struct vfake_domain *dom;

	if (!ep->domain)
		return;
	dom = vfake_dom(fake, ep->domain);
	ep->domain = 0;
	if (dom && !--dom->nr_endpoints) {
		vfake_drop_mappings(fake, dom->id);
		dom->exists = false;
	}
}

static bool vfake_domain_in_range(struct vfake *fake, u32 domain)
{
	if (!vfake_bit(fake, VIRTIO_IOMMU_F_DOMAIN_RANGE))
		return true;
	return domain >= le32_to_cpu(fake->config.domain_range.start) &&
	       domain <= le32_to_cpu(fake->config.domain_range.end);
}

static bool vfake_input_in_range(struct vfake *fake, u64 start, u64 end)
{
	if (!vfake_bit(fake, VIRTIO_IOMMU_F_INPUT_RANGE))
		return true;
	return start >= le64_to_cpu(fake->config.input_range.start) &&
	       end <= le64_to_cpu(fake->config.input_range.end);
}

static bool vfake_zero(const u8 *p, size_t len)
{
	return !memchr_inv(p, 0, len);
}

static u8 vfake_dev_attach(struct vfake *fake,
			   const struct virtio_iommu_req_attach *req,
			   struct vfake_record *rec)
{
	u32 domain = le32_to_cpu(req->domain);
	u32 flags = le32_to_cpu(req->flags);
	bool bypass = flags & VIRTIO_IOMMU_ATTACH_F_BYPASS;
	struct vfake_endpoint *ep;
	struct vfake_domain *dom;

	rec->domain = domain;
	rec->endpoint = le32_to_cpu(req->endpoint);
	rec->flags = flags;
	if (!vfake_zero(req->reserved, sizeof(req->reserved))) {
		vfake_violation(fake, "ATTACH reserved not zero");
		return VIRTIO_IOMMU_S_INVAL;
	}
	if (flags & ~VIRTIO_IOMMU_ATTACH_F_BYPASS) {
		vfake_violation(fake, "ATTACH undefined flags 0x%x", flags);
		return VIRTIO_IOMMU_S_INVAL;
	}
	if (bypass && !vfake_bit(fake, VIRTIO_IOMMU_F_BYPASS_CONFIG)) {
		vfake_violation(fake, "ATTACH_F_BYPASS without BYPASS_CONFIG");
		return VIRTIO_IOMMU_S_INVAL;
	}
	if (!vfake_domain_in_range(fake, domain)) {
		vfake_violation(fake, "ATTACH domain %u outside domain_range", domain);
		return VIRTIO_IOMMU_S_RANGE;
	}
	ep = vfake_ep(fake, rec->endpoint);
	if (!ep)
		return VIRTIO_IOMMU_S_NOENT;
	if (vfake_bit(fake, VIRTIO_IOMMU_F_PROBE) &&
	    le32_to_cpu(fake->config.probe_size) && !ep->probed)
		vfake_violation(fake, "ATTACH of endpoint %u before its PROBE",
				ep->id);
	dom = vfake_dom(fake, domain);
	if (dom && dom->bypass != bypass) {
		vfake_violation(fake, "ATTACH bypass flag %d inconsistent with domain %u",
				bypass, domain);
		return VIRTIO_IOMMU_S_INVAL;
	}
	if (ep->domain == domain)
		return VIRTIO_IOMMU_S_OK;
	if (!dom) {
		dom = vfake_dom_create(fake, domain, bypass);
		if (!dom)
			return VIRTIO_IOMMU_S_NOMEM;
	}
	/* As if the driver had sent a DETACH first. */
	dom->nr_endpoints++;
	vfake_detach_ep(fake, ep);
	ep->domain = domain;
	return VIRTIO_IOMMU_S_OK;
}

static u8 vfake_dev_detach(struct vfake *fake,
			   const struct virtio_iommu_req_detach *req,
			   struct vfake_record *rec)
{
	u32 domain = le32_to_cpu(req->domain);
	struct vfake_endpoint *ep;

	rec->domain = domain;
	rec->endpoint = le32_to_cpu(req->endpoint);
	if (!vfake_zero(req->reserved, sizeof(req->reserved)))
		vfake_violation(fake, "DETACH reserved not zero");
	if (!vfake_domain_in_range(fake, domain)) {
		vfake_violation(fake, "DETACH domain %u outside domain_range", domain);
		return VIRTIO_IOMMU_S_RANGE;
	}
	ep = vfake_ep(fake, rec->endpoint);
	if (!ep)
		return VIRTIO_IOMMU_S_NOENT;
	if (ep->domain != domain) {
		vfake_violation(fake, "DETACH of endpoint %u from domain %u, attached to %u",
				ep->id, domain, ep->domain);
		return VIRTIO_IOMMU_S_INVAL;
	}
	vfake_detach_ep(fake, ep);
	return VIRTIO_IOMMU_S_OK;
}

static u8 vfake_dev_map(struct vfake *fake,
			const struct virtio_iommu_req_map *req,
			struct vfake_record *rec)
{
	u64 granule = le64_to_cpu(fake->config.page_size_mask);
	u32 domain = le32_to_cpu(req->domain);
	u64 start = le64_to_cpu(req->virt_start);
	u64 end = le64_to_cpu(req->virt_end);
	u64 phys = le64_to_cpu(req->phys_start);
	u32 flags = le32_to_cpu(req->flags);
	const u32 known = VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE |
			  VIRTIO_IOMMU_MAP_F_MMIO;
	struct vfake_domain *dom;
	struct vfake_mapping *m;
	unsigned int i;

	granule &= -granule;
	rec->domain = domain;
	rec->start = start;
	rec->end = end;
	rec->phys = phys;
	rec->flags = flags;
	if (!vfake_domain_in_range(fake, domain)) {
		vfake_violation(fake, "MAP domain %u outside domain_range", domain);
		return VIRTIO_IOMMU_S_RANGE;
	}
	if (end <= start) {
		vfake_violation(fake, "MAP virt_end 0x%llx not above virt_start 0x%llx",
				end, start);
		return VIRTIO_IOMMU_S_INVAL;
	}
	if (!vfake_input_in_range(fake, start, end)) {
		vfake_violation(fake, "MAP 0x%llx-0x%llx outside input_range", start, end);
		return VIRTIO_IOMMU_S_RANGE;
	}
	if (flags & ~known) {
		vfake_violation(fake, "MAP undefined flags 0x%x", flags);
		return VIRTIO_IOMMU_S_INVAL;
	}
	if ((flags & VIRTIO_IOMMU_MAP_F_MMIO) &&
	    !vfake_bit(fake, VIRTIO_IOMMU_F_MMIO)) {
		vfake_violation(fake, "MAP_F_MMIO without the MMIO feature");
		return VIRTIO_IOMMU_S_INVAL;
	}
	if ((start | phys | (end + 1)) & (granule - 1)) {
		vfake_violation(fake, "MAP 0x%llx-0x%llx -> 0x%llx not aligned on 0x%llx",
				start, end, phys, granule);
		return VIRTIO_IOMMU_S_RANGE;
	}
	dom = vfake_dom(fake, domain);
	if (!dom) {
		vfake_violation(fake, "MAP on domain %u that does not exist", domain);
		return VIRTIO_IOMMU_S_NOENT;
	}
	if (dom->bypass) {
		vfake_violation(fake, "MAP on bypass domain %u", domain);
		return VIRTIO_IOMMU_S_INVAL;
	}
	for (i = 0; i < VFAKE_MAX_MAPPINGS; i++) {
		m = &fake->mappings[i];
		if (m->used && m->domain == domain && m->start <= end &&
		    m->last >= start) {
			vfake_violation(fake, "MAP 0x%llx-0x%llx overlaps mapping 0x%llx-0x%llx",
					start, end, m->start, m->last);
			return VIRTIO_IOMMU_S_INVAL;
		}
	}
	for (i = 0; i < VFAKE_MAX_MAPPINGS; i++) {
		m = &fake->mappings[i];
		if (!m->used) {
			*m = (struct vfake_mapping) {
				.used = true, .domain = domain, .start = start,
				.last = end, .phys = phys, .flags = flags,
			};
			fake->nr_mappings++;
			return VIRTIO_IOMMU_S_OK;
		}
	}
	return VIRTIO_IOMMU_S_NOMEM;
}

static u8 vfake_dev_unmap(struct vfake *fake,
			  const struct virtio_iommu_req_unmap *req,
			  struct vfake_record *rec)
{
	u32 domain = le32_to_cpu(req->domain);
	u64 start = le64_to_cpu(req->virt_start);
	u64 end = le64_to_cpu(req->virt_end);
	struct vfake_domain *dom;
	struct vfake_mapping *m;
	unsigned int i;

	rec->domain = domain;
	rec->start = start;
	rec->end = end;
	if (!vfake_zero(req->reserved, sizeof(req->reserved)))
		vfake_violation(fake, "UNMAP reserved not zero");
	if (!vfake_domain_in_range(fake, domain)) {
		vfake_violation(fake, "UNMAP domain %u outside domain_range", domain);
		return VIRTIO_IOMMU_S_RANGE;
	}
	if (end < start) {
		vfake_violation(fake, "UNMAP virt_end 0x%llx below virt_start 0x%llx",
				end, start);
		return VIRTIO_IOMMU_S_INVAL;
	}
	if (!vfake_input_in_range(fake, start, end)) {
		vfake_violation(fake, "UNMAP 0x%llx-0x%llx outside input_range", start, end);
		return VIRTIO_IOMMU_S_RANGE;
	}
	dom = vfake_dom(fake, domain);
	if (!dom) {
		vfake_violation(fake, "UNMAP on domain %u that does not exist", domain);
		return VIRTIO_IOMMU_S_NOENT;
	}
	if (dom->bypass) {
		vfake_violation(fake, "UNMAP on bypass domain %u", domain);
		return VIRTIO_IOMMU_S_INVAL;
	}
	for (i = 0; i < VFAKE_MAX_MAPPINGS; i++) {
		m = &fake->mappings[i];
		if (m->used && m->domain == domain && m->start <= end &&
		    m->last >= start && (m->start < start || m->last > end)) {
			vfake_violation(fake, "UNMAP 0x%llx-0x%llx splits mapping 0x%llx-0x%llx",
					start, end, m->start, m->last);
			return VIRTIO_IOMMU_S_RANGE;
		}
	}
	for (i = 0; i < VFAKE_MAX_MAPPINGS; i++) {
		m = &fake->mappings[i];
		if (m->used && m->domain == domain && m->start >= start &&
		    m->last <= end) {
			m->used = false;
			fake->nr_mappings--;
		}
	}
	return VIRTIO_IOMMU_S_OK;
}

static u8 vfake_dev_probe(struct vfake *fake, struct vfake_slot *slot,
			  struct vfake_record *rec)
{
	const struct virtio_iommu_req_probe *req = slot->out;
	u32 probe_size = le32_to_cpu(fake->config.probe_size);
	struct vfake_endpoint *ep;

	rec->endpoint = le32_to_cpu(req->endpoint);
	if (!vfake_zero(req->reserved, sizeof(req->reserved)))
		vfake_violation(fake, "PROBE reserved not zero");
	if (slot->in_len != probe_size + VFAKE_TAIL_LEN) {
		vfake_violation(fake, "PROBE properties of %u bytes, probe_size is %u",
				slot->in_len - (unsigned int)VFAKE_TAIL_LEN,
				probe_size);
		return VIRTIO_IOMMU_S_INVAL;
	}
	ep = vfake_ep(fake, rec->endpoint);
	if (!ep)
		return VIRTIO_IOMMU_S_NOENT;
	memset(slot->in, 0, probe_size);
	if (ep->props_len)
		memcpy(slot->in, ep->props, min_t(size_t, ep->props_len, probe_size));
	ep->probed = true;
	return VIRTIO_IOMMU_S_OK;
}

/* Take an injected answer for a request of @type, if one is due. */
static bool vfake_injected(struct vfake *fake, u8 type, unsigned int *status)
{
	bool fired = false;
	unsigned int i;

	for (i = 0; i < VFAKE_MAX_INJECT; i++) {
		struct vfake_inject *inj = &fake->inject[i];

		if (!inj->countdown || (inj->type && inj->type != type))
			continue;
		if (--inj->countdown || fired)
			continue;
		*status = inj->status;
		fired = true;
	}
	return fired;
}

static const unsigned int vfake_out_len[] = {
	[VIRTIO_IOMMU_T_ATTACH] = sizeof(struct virtio_iommu_req_attach),
	[VIRTIO_IOMMU_T_DETACH] = sizeof(struct virtio_iommu_req_detach),
	[VIRTIO_IOMMU_T_MAP] = sizeof(struct virtio_iommu_req_map),
	[VIRTIO_IOMMU_T_UNMAP] = sizeof(struct virtio_iommu_req_unmap),
};

static bool vfake_map_refused(struct vfake *fake,
			      const struct virtio_iommu_req_map *req)
{
	return le64_to_cpu(req->virt_start) <= fake->refuse_last &&
	       le64_to_cpu(req->virt_end) >= fake->refuse_start;
}

/* Process one request: check it, apply it, write its status. */
static void vfake_process(struct vfake *fake, struct vfake_slot *slot)
{
	const struct virtio_iommu_req_head *head = slot->out;
	struct vfake_record rec = { .at = ktime_get(), .batch = fake->nr_notify };
	struct virtio_iommu_req_tail *tail;
	unsigned int injected;
	u8 status;

	slot->used_len = 0;
	if (slot->out_len < sizeof(*head) || slot->in_len < VFAKE_TAIL_LEN) {
		vfake_violation(fake, "request too short: out %u in %u",
				slot->out_len, slot->in_len);
		return;
	}
	rec.type = head->type;
	if (!vfake_zero(head->reserved, sizeof(head->reserved)))
		vfake_violation(fake, "request head reserved not zero");
	if (head->type < VIRTIO_IOMMU_T_ATTACH || head->type > VIRTIO_IOMMU_T_PROBE) {
		vfake_violation(fake, "unknown request type %u", head->type);
		return;	/* not written, used length 0 */
	}
	if (head->type == VIRTIO_IOMMU_T_PROBE) {
		if (slot->out_len != VFAKE_PROBE_OUT_LEN)
			vfake_violation(fake, "PROBE device-readable part of %u bytes",
					slot->out_len);
	} else if (slot->out_len != vfake_out_len[head->type] - VFAKE_TAIL_LEN ||
		   slot->in_len != VFAKE_TAIL_LEN) {
		vfake_violation(fake, "type %u request with out %u in %u bytes",
				head->type, slot->out_len, slot->in_len);
		return;
	}
	if (head->type == VIRTIO_IOMMU_T_PROBE && !vfake_bit(fake, VIRTIO_IOMMU_F_PROBE)) {
		vfake_violation(fake, "PROBE without the PROBE feature");
		return;
	}
	fake->nr_type[head->type]++;

	injected = UINT_MAX;
	if (vfake_injected(fake, head->type, &injected) &&
	    injected >= VFAKE_ANSWER_ZERO_LEN) {
		if (injected == VFAKE_ANSWER_SHORT_LEN)
			slot->used_len = 1;
		rec.status = 0xff;
		goto record;
	}
	if (injected == UINT_MAX && head->type == VIRTIO_IOMMU_T_MAP &&
	    fake->refuse_status && vfake_map_refused(fake, slot->out))
		injected = fake->refuse_status;
	if (injected != UINT_MAX) {
		/* The device rejects the request without applying it. */
		status = injected;
	} else {
		switch (head->type) {
		case VIRTIO_IOMMU_T_ATTACH:
			status = vfake_dev_attach(fake, slot->out, &rec);
			break;
		case VIRTIO_IOMMU_T_DETACH:
			status = vfake_dev_detach(fake, slot->out, &rec);
			break;
		case VIRTIO_IOMMU_T_MAP:
			status = vfake_dev_map(fake, slot->out, &rec);
			break;
		case VIRTIO_IOMMU_T_UNMAP:
			status = vfake_dev_unmap(fake, slot->out, &rec);
			break;
		default:
			status = vfake_dev_probe(fake, slot, &rec);
			break;
		}
	}
	tail = slot->in + slot->in_len - VFAKE_TAIL_LEN;
	tail->status = status;
	memset(tail->reserved, fake->tail_garbage ? 0xa5 : 0,
	       sizeof(tail->reserved));
	slot->used_len = slot->in_len;
	rec.status = status;
record:
	if (fake->nr_records < VFAKE_MAX_RECORDS)
		fake->records[fake->nr_records] = rec;
	fake->nr_records++;
}

/* Make processed requests available to get_used, in order or backwards. */
static void vfake_publish(struct vfake *fake)
{
	struct vfake_slot *slot, *next;

	list_for_each_entry_safe(slot, next, &fake->processed, node) {
		if (fake->reverse)
			list_move(&slot->node, &fake->used);
		else
			list_move_tail(&slot->node, &fake->used);
	}
}

static void vfake_process_avail(struct vfake *fake)
{
	bool idle = list_empty(&fake->processed);
	struct vfake_slot *slot, *next;

	list_for_each_entry_safe(slot, next, &fake->avail, node) {
		vfake_process(fake, slot);
		list_move_tail(&slot->node, &fake->processed);
	}
	if (fake->mode == VFAKE_IMMEDIATE)
		vfake_publish(fake);
	else if (idle)
		/* The countdown starts with the oldest unpublished request. */
		fake->polls_left = fake->delay_polls;
}

/* struct viommu_queue_ops */

static int vfake_q_add(void *queue, struct scatterlist *out,
		       struct scatterlist *in, void *token)
{
	struct vfake *fake = queue;
	struct vfake_slot *slot;
	unsigned long flags;
	int ret = 0;

	spin_lock_irqsave(&fake->lock, flags);
	fake->nr_adds++;
	if (fake->resets)
		vfake_violation(fake, "request added after the device was reset");
	if (fake->add_error) {
		ret = fake->add_error;
		goto out;
	}
	if (fake->outstanding >= fake->capacity) {
		fake->nr_enospc++;
		ret = -ENOSPC;
		goto out;
	}
	slot = list_first_entry_or_null(&fake->free, struct vfake_slot, node);
	if (WARN_ON(!slot)) {
		ret = -ENOSPC;
		goto out;
	}
	if (sg_next(out) || sg_next(in))
		vfake_violation(fake, "request split over several buffers");
	slot->token = token;
	slot->out = sg_virt(out);
	slot->out_len = out->length;
	slot->in = sg_virt(in);
	slot->in_len = in->length;
	slot->used_len = 0;
	list_move_tail(&slot->node, &fake->avail);
	fake->outstanding++;
	fake->max_outstanding = max(fake->max_outstanding, fake->outstanding);
	fake->added_since_kick++;
out:
	spin_unlock_irqrestore(&fake->lock, flags);
	return ret;
}

static bool vfake_q_kick_prepare(void *queue)
{
	struct vfake *fake = queue;
	unsigned long flags;
	bool kick;

	spin_lock_irqsave(&fake->lock, flags);
	fake->nr_kick_prepare++;
	kick = fake->added_since_kick;
	fake->added_since_kick = 0;
	spin_unlock_irqrestore(&fake->lock, flags);
	return kick;
}

static void vfake_q_notify(void *queue)
{
	struct vfake *fake = queue;
	unsigned long flags;

	spin_lock_irqsave(&fake->lock, flags);
	fake->nr_notify++;
	if (fake->mode != VFAKE_SILENT)
		vfake_process_avail(fake);
	spin_unlock_irqrestore(&fake->lock, flags);
}

static void *vfake_q_get_used(void *queue, unsigned int *len)
{
	struct vfake *fake = queue;
	struct vfake_slot *slot;
	unsigned long flags;
	void *token = NULL;

	spin_lock_irqsave(&fake->lock, flags);
	if (fake->mode == VFAKE_LATE && !list_empty(&fake->processed)) {
		if (!fake->polls_left)
			vfake_publish(fake);
		else
			fake->polls_left--;
	}
	slot = list_first_entry_or_null(&fake->used, struct vfake_slot, node);
	if (slot) {
		token = slot->token;
		*len = slot->used_len;
		list_move(&slot->node, &fake->free);
		fake->outstanding--;
	}
	spin_unlock_irqrestore(&fake->lock, flags);
	return token;
}

static unsigned int vfake_q_free_slots(void *queue)
{
	struct vfake *fake = queue;
	unsigned long flags;
	unsigned int free;

	spin_lock_irqsave(&fake->lock, flags);
	free = fake->capacity - min(fake->capacity, fake->outstanding);
	spin_unlock_irqrestore(&fake->lock, flags);
	return free;
}

/*
 * What a device reset forgets: every attachment, domain and mapping, and
 * every request it was given, answered or not. Its endpoints (hardware)
 * and configuration stay. Called with the fake's lock held.
 */
void vfake_forget_locked(struct vfake *fake)
{
	unsigned int i;

	for (i = 0; i < VFAKE_MAX_ENDPOINTS; i++)
		fake->endpoints[i].domain = 0;
	memset(fake->domains, 0, sizeof(fake->domains));
	memset(fake->mappings, 0, sizeof(fake->mappings));
	fake->nr_mappings = 0;
	list_splice_init(&fake->avail, &fake->free);
	list_splice_init(&fake->processed, &fake->free);
	list_splice_init(&fake->used, &fake->free);
	fake->outstanding = 0;
}

/*
 * The driver gave up on the device: a reset, after which no endpoint is
 * attached, no domain or mapping exists, the queues are empty, and bypass
 * is 0, so that no endpoint reaches memory.
 */
static void vfake_q_block(void *queue)
{
	struct vfake *fake = queue;
	unsigned long flags;

	spin_lock_irqsave(&fake->lock, flags);
	fake->resets++;
	vfake_forget_locked(fake);
	fake->config.bypass = 0;
	spin_unlock_irqrestore(&fake->lock, flags);
}

const struct viommu_queue_ops vfake_queue_ops = {
	.add		= vfake_q_add,
	.kick_prepare	= vfake_q_kick_prepare,
	.notify		= vfake_q_notify,
	.get_used	= vfake_q_get_used,
	.free_slots	= vfake_q_free_slots,
	.block		= vfake_q_block,
};

/* Test-facing API. */

void vfake_default_cfg(struct vfake_cfg *cfg)
{
	*cfg = (struct vfake_cfg) {
		.features = BIT_ULL(VIRTIO_F_VERSION_1) |
			    BIT_ULL(VIRTIO_IOMMU_F_INPUT_RANGE) |
			    BIT_ULL(VIRTIO_IOMMU_F_DOMAIN_RANGE) |
			    BIT_ULL(VIRTIO_IOMMU_F_MAP_UNMAP) |
			    BIT_ULL(VIRTIO_IOMMU_F_PROBE) |
			    BIT_ULL(VIRTIO_IOMMU_F_MMIO) |
			    BIT_ULL(VIRTIO_IOMMU_F_BYPASS_CONFIG),
		.page_size_mask = SZ_4K | SZ_2M | SZ_1G,
		.input_start = 0,
		.input_end = (1ULL << 48) - 1,
		.domain_start = 1,
		.domain_end = 1000,
		.probe_size = 512,
	};
}

struct vfake *vfake_create(struct kunit *test, const struct vfake_cfg *cfg)
{
	struct vfake *fake;
	unsigned int i;

	fake = kunit_kzalloc(test, sizeof(*fake), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, fake);
	fake->test = test;
	spin_lock_init(&fake->lock);
	INIT_LIST_HEAD(&fake->free);
	INIT_LIST_HEAD(&fake->avail);
	INIT_LIST_HEAD(&fake->processed);
	INIT_LIST_HEAD(&fake->used);
	for (i = 0; i < VFAKE_MAX_QUEUE; i++)
		list_add_tail(&fake->slots[i].node, &fake->free);
	fake->capacity = min_t(unsigned int, cfg->capacity ?: 128, VFAKE_MAX_QUEUE);

	fake->vdev.config = &vfake_config_ops;
	fake->vdev.dev.driver = &viommu_driver.driver;
	for (i = 0; i < 64; i++)
		if (cfg->features & BIT_ULL(i))
			__virtio_set_bit(&fake->vdev, i);
	fake->config.page_size_mask = cpu_to_le64(cfg->page_size_mask);
	fake->config.input_range.start = cpu_to_le64(cfg->input_start);
	fake->config.input_range.end = cpu_to_le64(cfg->input_end);
	fake->config.domain_range.start = cpu_to_le32(cfg->domain_start);
	fake->config.domain_range.end = cpu_to_le32(cfg->domain_end);
	fake->config.probe_size = cpu_to_le32(cfg->probe_size);
	return fake;
}

void vfake_set_mode(struct vfake *fake, enum vfake_mode mode,
		    unsigned int delay_polls)
{
	unsigned long flags;

	spin_lock_irqsave(&fake->lock, flags);
	fake->mode = mode;
	fake->delay_polls = delay_polls;
	spin_unlock_irqrestore(&fake->lock, flags);
}

/* A silent device comes back: it processes and completes what it holds. */
void vfake_wake(struct vfake *fake)
{
	unsigned long flags;

	spin_lock_irqsave(&fake->lock, flags);
	fake->mode = VFAKE_IMMEDIATE;
	vfake_process_avail(fake);
	vfake_publish(fake);
	spin_unlock_irqrestore(&fake->lock, flags);
}

/* Answer the @nth next request of @type (0: any) with @status. */
void vfake_inject(struct vfake *fake, u8 type, unsigned int nth,
		  unsigned int status)
{
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&fake->lock, flags);
	for (i = 0; i < VFAKE_MAX_INJECT; i++) {
		if (!fake->inject[i].countdown) {
			fake->inject[i] = (struct vfake_inject) {
				.type = type, .countdown = nth, .status = status,
			};
			break;
		}
	}
	spin_unlock_irqrestore(&fake->lock, flags);
	KUNIT_ASSERT_LT(fake->test, i, VFAKE_MAX_INJECT);
}

/* Refuse with @status every MAP that touches [@start, @last]; 0: stop. */
void vfake_refuse_maps(struct vfake *fake, u64 start, u64 last, u8 status)
{
	unsigned long flags;

	spin_lock_irqsave(&fake->lock, flags);
	fake->refuse_start = start;
	fake->refuse_last = last;
	fake->refuse_status = status;
	spin_unlock_irqrestore(&fake->lock, flags);
}

void vfake_add_endpoint(struct vfake *fake, u32 id, const void *props,
			size_t props_len)
{
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&fake->lock, flags);
	for (i = 0; i < VFAKE_MAX_ENDPOINTS; i++) {
		if (!fake->endpoints[i].exists) {
			fake->endpoints[i] = (struct vfake_endpoint) {
				.exists = true, .id = id, .props = props,
				.props_len = props_len,
			};
			break;
		}
	}
	spin_unlock_irqrestore(&fake->lock, flags);
	KUNIT_ASSERT_LT(fake->test, i, VFAKE_MAX_ENDPOINTS);
}

unsigned int vfake_count_type(struct vfake *fake, u8 type)
{
	return READ_ONCE(fake->nr_type[type]);
}

/*
 * Under the fake's lock: a request's type count goes up before its record is
 * stored, in the same critical section, so a test that saw the count on
 * another CPU finds the record here.
 */
const struct vfake_record *vfake_last(struct vfake *fake, u8 type)
{
	const struct vfake_record *found = NULL;
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&fake->lock, flags);
	i = min_t(unsigned int, fake->nr_records, VFAKE_MAX_RECORDS);
	while (i--) {
		if (fake->records[i].type == type) {
			found = &fake->records[i];
			break;
		}
	}
	spin_unlock_irqrestore(&fake->lock, flags);
	return found;
}

const struct vfake_mapping *vfake_find_mapping(struct vfake *fake, u32 domain,
					       u64 iova)
{
	unsigned int i;

	for (i = 0; i < VFAKE_MAX_MAPPINGS; i++) {
		const struct vfake_mapping *m = &fake->mappings[i];

		if (m->used && m->domain == domain && m->start <= iova &&
		    m->last >= iova)
			return m;
	}
	return NULL;
}

unsigned int vfake_nr_mappings(struct vfake *fake, u32 domain)
{
	unsigned int i, nr = 0;

	for (i = 0; i < VFAKE_MAX_MAPPINGS; i++)
		if (fake->mappings[i].used && fake->mappings[i].domain == domain)
			nr++;
	return nr;
}

u32 vfake_endpoint_domain(struct vfake *fake, u32 id)
{
	struct vfake_endpoint *ep = vfake_ep(fake, id);

	return ep ? ep->domain : 0;
}

const struct vfake_domain *vfake_domain(struct vfake *fake, u32 id)
{
	return vfake_dom(fake, id);
}

void vfake_reset_counts(struct vfake *fake)
{
	unsigned long flags;

	spin_lock_irqsave(&fake->lock, flags);
	fake->nr_adds = 0;
	fake->nr_enospc = 0;
	fake->nr_kick_prepare = 0;
	fake->nr_notify = 0;
	fake->nr_records = 0;
	fake->max_outstanding = fake->outstanding;
	memset(fake->nr_type, 0, sizeof(fake->nr_type));
	spin_unlock_irqrestore(&fake->lock, flags);
}

void vfake_expect_no_violations(struct kunit *test, struct vfake *fake)
{
	KUNIT_EXPECT_EQ_MSG(test, fake->nr_violations, 0,
			    "first violation: %s", fake->violation);
	KUNIT_EXPECT_EQ(test, fake->config_writes, 0);
}

/*
 * The driver's interval tree and the device's table hold the same mappings.
 * Expectations allocate, so they are checked after the lock is dropped.
 */
void vfake_expect_same_mappings(struct kunit *test, struct vfake *fake,
				struct viommu_domain *vdom)
{
	const struct vfake_mapping *fm;
	struct viommu_mapping *m;
	struct rb_node *node;
	unsigned int nr = 0, bad = 0;
	u64 bad_start = 0, bad_last = 0;
	unsigned long flags;

	spin_lock_irqsave(&vdom->map_lock, flags);
	for (node = rb_first_cached(&vdom->mappings); node; node = rb_next(node)) {
		m = rb_entry(node, struct viommu_mapping, rb);
		nr++;
		fm = vfake_find_mapping(fake, vdom->id, m->start);
		if (fm && fm->start == m->start && fm->last == m->last &&
		    fm->phys == (u64)m->paddr && fm->flags == m->flags)
			continue;
		if (!bad++) {
			bad_start = m->start;
			bad_last = m->last;
		}
	}
	spin_unlock_irqrestore(&vdom->map_lock, flags);
	KUNIT_EXPECT_EQ_MSG(test, bad, 0,
			    "driver mapping 0x%llx-0x%llx missing or different on the device (%u such)",
			    bad_start, bad_last, bad);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(fake, vdom->id), nr);
}

/*
 * The driver's nodes and the device's mappings overlapping [start, last]
 * are the same. Safe against concurrent requests for other ranges.
 */
bool vfake_range_consistent(struct vfake *fake, struct viommu_domain *vdom,
			    u64 start, u64 last)
{
	unsigned long flags, fflags;
	unsigned int i, nodes = 0, maps = 0;
	struct viommu_mapping *m;
	struct rb_node *node;
	bool ok = true;

	spin_lock_irqsave(&vdom->map_lock, flags);
	spin_lock_irqsave(&fake->lock, fflags);
	for (node = rb_first_cached(&vdom->mappings); node; node = rb_next(node)) {
		const struct vfake_mapping *fm;

		m = rb_entry(node, struct viommu_mapping, rb);
		if (m->last < start || m->start > last)
			continue;
		nodes++;
		fm = vfake_find_mapping(fake, vdom->id, m->start);
		if (!fm || fm->start != m->start || fm->last != m->last ||
		    fm->phys != m->paddr || fm->flags != m->flags)
			ok = false;
	}
	for (i = 0; i < VFAKE_MAX_MAPPINGS; i++) {
		const struct vfake_mapping *fm = &fake->mappings[i];

		if (fm->used && fm->domain == vdom->id && fm->start <= last &&
		    fm->last >= start)
			maps++;
	}
	spin_unlock_irqrestore(&fake->lock, fflags);
	spin_unlock_irqrestore(&vdom->map_lock, flags);
	return ok && nodes == maps;
}

/* The environment. */

static atomic_t vfake_env_ids = ATOMIC_INIT(0);

static void vfake_pdev_release(struct device *dev)
{
	kfree(to_pci_dev(dev));
}

/* What the core does on removal: release_device, then free dev->iommu. */
static void vfake_release(struct vfake_ep *e)
{
	viommu_release_device(e->dev);
	e->dev->iommu->priv = NULL;
	e->probed = false;
}

void vfake_env_release_endpoint(struct vfake_env *env, struct viommu_endpoint *ep)
{
	unsigned int i;

	for (i = 0; i < env->nr_eps; i++) {
		struct vfake_ep *e = &env->eps[i];

		if (!e->probed || dev_iommu_priv_get(e->dev) != ep)
			continue;
		vfake_release(e);
		return;
	}
	KUNIT_FAIL(env->test, "unknown endpoint");
}

static void vfake_env_put_ep(struct vfake_env *env, struct vfake_ep *e)
{
	if (e->probed)
		vfake_release(e);
	if (e->iommu) {
		kfree(e->iommu->fwspec);
		kfree(e->iommu);
		e->dev->iommu = NULL;
		e->iommu = NULL;
	}
	if (e->pdev)
		put_device(&e->pdev->dev);
	else if (e->dev)
		root_device_unregister(e->dev);
	e->dev = NULL;
}

static void vfake_env_cleanup(void *data)
{
	struct vfake_env *env = data;
	struct viommu_dev *viommu = env->viommu;
	unsigned int i;

	/* Requests still in the device complete, so that teardown can sync. */
	vfake_wake(env->fake);
	env->fake->add_error = 0;
	memset(env->fake->inject, 0, sizeof(env->fake->inject));
	if (viommu && viommu->engine.slots) {
		for (i = 0; i < env->nr_eps; i++)
			if (env->eps[i].probed)
				vfake_release(&env->eps[i]);
		for (i = 0; i < env->nr_doms; i++)
			if (env->doms[i])
				viommu_paging_ops.free(env->doms[i]);
		env->nr_doms = 0;
		KUNIT_EXPECT_EQ_MSG(env->test, env->fake->nr_violations,
				    env->expected_violations,
				    "first violation: %s", env->fake->violation);
		KUNIT_EXPECT_EQ(env->test, env->fake->config_writes, 0);
	}
	for (i = 0; i < env->nr_eps; i++)
		vfake_env_put_ep(env, &env->eps[i]);
	if (viommu) {
		viommu_unregister_instance(viommu);
		if (viommu->engine.slots)
			viommu_engine_destroy(&viommu->engine);
		ida_destroy(&viommu->domain_ids);
		kfree(viommu);
	}
	if (env->vdev_dev)
		root_device_unregister(env->vdev_dev);
}

struct vfake_env *vfake_env_create(struct kunit *test, const struct vfake_cfg *cfg)
{
	struct viommu_dev *viommu;
	struct vfake_env *env;
	int ret;

	env = kunit_kzalloc(test, sizeof(*env), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, env);
	env->test = test;
	env->id = atomic_inc_return(&vfake_env_ids);
	env->fake = vfake_create(test, cfg);
	fwnode_init(&env->fwnode, NULL);
	env->hwdev.fwnode = &env->fwnode;

	viommu = kzalloc(sizeof(*viommu), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, viommu);
	env->viommu = viommu;
	INIT_LIST_HEAD(&viommu->list);
	ida_init(&viommu->domain_ids);
	mutex_init(&viommu->attach_lock);
	viommu_register_instance(viommu);
	ret = kunit_add_action_or_reset(test, vfake_env_cleanup, env);
	KUNIT_ASSERT_EQ(test, ret, 0);

	snprintf(env->name, sizeof(env->name), "vfake%u", env->id);
	env->vdev_dev = root_device_register(env->name);
	KUNIT_ASSERT_FALSE(test, IS_ERR(env->vdev_dev));
	viommu->vdev = &env->fake->vdev;
	viommu->dev = env->vdev_dev;
	viommu->hwdev = &env->hwdev;

	ret = viommu_read_config(viommu);
	KUNIT_ASSERT_EQ(test, ret, 0);
	viommu_knobs_defaults(&viommu->engine.knobs);
	ret = viommu_engine_init(&viommu->engine, viommu->dev, &vfake_queue_ops,
				 env->fake, cfg->nr_slots ?: VIOMMU_NR_SLOTS);
	KUNIT_ASSERT_EQ(test, ret, 0);
	viommu_reserve_domain_ids(viommu);
	return env;
}

struct vfake_env *vfake_env_default(struct kunit *test)
{
	struct vfake_cfg cfg;

	vfake_default_cfg(&cfg);
	return vfake_env_create(test, &cfg);
}

struct viommu_endpoint *vfake_env_try_endpoint(struct vfake_env *env,
					       const u32 *ids,
					       unsigned int nr_ids,
					       bool pci_untrusted,
					       struct fwnode_handle *fwnode)
{
	struct kunit *test = env->test;
	struct iommu_fwspec *fwspec;
	struct iommu_device *idev;
	struct vfake_ep *e;
	char *name;

	KUNIT_ASSERT_LT(test, env->nr_eps, VFAKE_MAX_ENV_EPS);
	e = &env->eps[env->nr_eps++];
	name = e->name;
	snprintf(name, sizeof(e->name), "vfake%u-ep%u", env->id, env->nr_eps);
	if (pci_untrusted) {
		e->pdev = kzalloc(sizeof(*e->pdev), GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, e->pdev);
		device_initialize(&e->pdev->dev);
		e->pdev->dev.release = vfake_pdev_release;
		e->pdev->dev.bus = &pci_bus_type;
		e->pdev->untrusted = 1;
		KUNIT_ASSERT_EQ(test, dev_set_name(&e->pdev->dev, "%s", name), 0);
		e->dev = &e->pdev->dev;
	} else {
		e->dev = root_device_register(name);
		KUNIT_ASSERT_FALSE(test, IS_ERR(e->dev));
	}
	e->iommu = kzalloc(sizeof(*e->iommu), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, e->iommu);
	mutex_init(&e->iommu->lock);
	fwspec = kzalloc(struct_size(fwspec, ids, nr_ids), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, fwspec);
	fwspec->iommu_fwnode = fwnode;
	fwspec->num_ids = nr_ids;
	memcpy(fwspec->ids, ids, nr_ids * sizeof(*ids));
	e->iommu->fwspec = fwspec;
	e->dev->iommu = e->iommu;

	/* The core probes with iommu_probe_device_lock held. */
	mutex_lock(&iommu_probe_device_lock);
	idev = viommu_probe_device(e->dev);
	mutex_unlock(&iommu_probe_device_lock);
	if (IS_ERR(idev))
		return ERR_CAST(idev);
	KUNIT_ASSERT_PTR_EQ(test, idev, &env->viommu->iommu);
	e->probed = true;
	return dev_iommu_priv_get(e->dev);
}

struct viommu_endpoint *vfake_env_endpoint(struct vfake_env *env,
					   const u32 *ids, unsigned int nr_ids,
					   bool pci_untrusted)
{
	struct viommu_endpoint *ep;

	ep = vfake_env_try_endpoint(env, ids, nr_ids, pci_untrusted,
				    &env->fwnode);
	KUNIT_ASSERT_FALSE_MSG(env->test, IS_ERR(ep), "probe_device: %ld",
			       PTR_ERR(ep));
	return ep;
}

struct viommu_endpoint *vfake_env_simple_endpoint(struct vfake_env *env, u32 id)
{
	vfake_add_endpoint(env->fake, id, NULL, 0);
	return vfake_env_endpoint(env, &id, 1, false);
}

struct viommu_domain *vfake_env_domain(struct vfake_env *env,
				       struct viommu_endpoint *ep,
				       unsigned int type)
{
	struct kunit *test = env->test;
	struct iommu_domain *d;

	KUNIT_ASSERT_LT(test, env->nr_doms, VFAKE_MAX_ENV_DOMS);
	d = viommu_domain_alloc_paging(ep->dev);
	KUNIT_ASSERT_FALSE_MSG(test, IS_ERR(d), "domain_alloc_paging: %ld",
			       PTR_ERR(d));
	d->type = type;
	env->doms[env->nr_doms++] = d;
	return to_viommu_domain(d);
}

void vfake_env_free_domain(struct vfake_env *env, struct viommu_domain *vdom)
{
	unsigned int i;

	for (i = 0; i < env->nr_doms; i++) {
		if (env->doms[i] == &vdom->domain) {
			env->doms[i] = NULL;
			viommu_paging_ops.free(&vdom->domain);
			return;
		}
	}
	KUNIT_FAIL(env->test, "unknown domain");
}

/* Map like the core does: map_pages in 4 KiB pieces of one call. */
int vfake_map(struct viommu_domain *vdom, u64 iova, u64 paddr, u64 size,
	      int prot)
{
	size_t mapped = 0;

	return viommu_paging_ops.map_pages(&vdom->domain, iova, paddr, SZ_4K,
					   size / SZ_4K, prot, GFP_KERNEL,
					   &mapped);
}

int vfake_map_sync(struct viommu_domain *vdom, u64 iova, u64 paddr, u64 size,
		   int prot)
{
	int ret = vfake_map(vdom, iova, paddr, size, prot);

	if (ret)
		return ret;
	return viommu_paging_ops.iotlb_sync_map(&vdom->domain, iova, size);
}

int vfake_map_piece(struct viommu_domain *vdom, u64 iova, u64 paddr, int prot)
{
	size_t mapped = 0;
	int ret;

	ret = viommu_paging_ops.map_pages(&vdom->domain, iova, paddr, SZ_4K, 1,
					  prot, GFP_KERNEL, &mapped);
	if (!ret && mapped != SZ_4K)
		ret = -EFAULT;
	return ret;
}

int vfake_sync_map(struct viommu_domain *vdom, u64 iova, u64 size)
{
	return viommu_paging_ops.iotlb_sync_map(&vdom->domain, iova, size);
}

/* Unmap like dma-iommu: strict syncs at once, lazy leaves it to the FQ. */
size_t vfake_unmap(struct viommu_domain *vdom, u64 iova, u64 size, bool lazy)
{
	struct iommu_iotlb_gather gather;
	size_t ret;

	iommu_iotlb_gather_init(&gather);
	gather.queued = lazy;
	ret = viommu_paging_ops.unmap_pages(&vdom->domain, iova, SZ_4K,
					    size / SZ_4K, &gather);
	if (!lazy)
		viommu_paging_ops.iotlb_sync(&vdom->domain, &gather);
	return ret;
}

unsigned int vfake_free_req_slots(struct viommu_engine *eng)
{
	struct list_head *pos;
	unsigned long flags;
	unsigned int nr = 0;

	spin_lock_irqsave(&eng->lock, flags);
	list_for_each(pos, &eng->free_list)
		nr++;
	spin_unlock_irqrestore(&eng->lock, flags);
	return nr;
}
