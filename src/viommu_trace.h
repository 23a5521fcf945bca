/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-iommu-fq: tracepoints of the request engine (request.c), under
 * events/virtio_iommu_fq/ in tracefs. They cost a patched-out branch each
 * while disabled; the completion latency is measured only while
 * viommu_request_complete is enabled.
 */

#undef TRACE_SYSTEM
#define TRACE_SYSTEM virtio_iommu_fq

#if !defined(VIOMMU_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define VIOMMU_TRACE_H

#include <linux/tracepoint.h>

#include "viommu.h"

#define viommu_show_type(type)						\
	__print_symbolic(type,						\
			 { VIRTIO_IOMMU_T_ATTACH, "ATTACH" },		\
			 { VIRTIO_IOMMU_T_DETACH, "DETACH" },		\
			 { VIRTIO_IOMMU_T_MAP, "MAP" },			\
			 { VIRTIO_IOMMU_T_UNMAP, "UNMAP" },		\
			 { VIRTIO_IOMMU_T_PROBE, "PROBE" })

#define viommu_show_cause(cause)					\
	__print_symbolic(cause,						\
			 { VIOMMU_CAUSE_TIMER, "timer" },		\
			 { VIOMMU_CAUSE_FULL, "full" },			\
			 { VIOMMU_CAUSE_FLUSH, "flush" },		\
			 { VIOMMU_CAUSE_SYNC, "sync" },			\
			 { VIOMMU_CAUSE_MAP_SYNC, "map_sync" })

#ifndef VIOMMU_TRACE_HELPERS
#define VIOMMU_TRACE_HELPERS
/*
 * The fields of a request that say what it is about: its domain and
 * address range (MAP, UNMAP), domain and endpoint (ATTACH, DETACH) or
 * endpoint (PROBE). Fields a type does not have are 0.
 */
struct viommu_trace_req {
	u64	start;
	u64	end;
	u32	domain;
	u32	endpoint;
	u8	type;
};

static inline struct viommu_trace_req
viommu_trace_describe(const struct viommu_req *req)
{
	const void *data = req->ext ?: (const void *)&req->buf;
	const struct virtio_iommu_req_attach *at = data;
	const struct virtio_iommu_req_map *map = data;
	const struct virtio_iommu_req_unmap *unmap = data;
	const struct virtio_iommu_req_probe *probe = data;
	struct viommu_trace_req d = { .type = at->head.type };

	switch (d.type) {
	case VIRTIO_IOMMU_T_ATTACH:
	case VIRTIO_IOMMU_T_DETACH:
		d.domain = le32_to_cpu(at->domain);
		d.endpoint = le32_to_cpu(at->endpoint);
		break;
	case VIRTIO_IOMMU_T_MAP:
		d.domain = le32_to_cpu(map->domain);
		d.start = le64_to_cpu(map->virt_start);
		d.end = le64_to_cpu(map->virt_end);
		break;
	case VIRTIO_IOMMU_T_UNMAP:
		d.domain = le32_to_cpu(unmap->domain);
		d.start = le64_to_cpu(unmap->virt_start);
		d.end = le64_to_cpu(unmap->virt_end);
		break;
	case VIRTIO_IOMMU_T_PROBE:
		d.endpoint = le32_to_cpu(probe->endpoint);
		break;
	}
	return d;
}
#endif

DECLARE_EVENT_CLASS(viommu_request_class,
		    TP_PROTO(const struct viommu_req *req, int err,
			     u64 latency_ns),
		    TP_ARGS(req, err, latency_ns),
		    TP_STRUCT__entry(__field(u64, seq)
				     __field(u64, start)
				     __field(u64, end)
				     __field(u64, latency_ns)
				     __field(u32, domain)
				     __field(u32, endpoint)
				     __field(int, err)
				     __field(u8, type)
				     __field(bool, deferred)),
		    TP_fast_assign(struct viommu_trace_req d =
					   viommu_trace_describe(req);

				   __entry->type = d.type;
				   __entry->domain = d.domain;
				   __entry->endpoint = d.endpoint;
				   __entry->start = d.start;
				   __entry->end = d.end;
				   __entry->seq = req->seq;
				   __entry->deferred = req->deferred;
				   __entry->err = err;
				   __entry->latency_ns = latency_ns;),
		    TP_printk("seq=%llu type=%s domain=%u endpoint=%u range=0x%llx-0x%llx deferred=%d err=%d latency_ns=%llu",
			      __entry->seq, viommu_show_type(__entry->type),
			      __entry->domain, __entry->endpoint,
			      __entry->start, __entry->end, __entry->deferred,
			      __entry->err, __entry->latency_ns)
);

/* A request reaches the virtqueue (err is that of the queue; latency 0). */
DEFINE_EVENT(viommu_request_class, viommu_request_submit,
	     TP_PROTO(const struct viommu_req *req, int err, u64 latency_ns),
	     TP_ARGS(req, err, latency_ns)
);

/* The device returned a request: its result and the time since submit. */
DEFINE_EVENT(viommu_request_class, viommu_request_complete,
	     TP_PROTO(const struct viommu_req *req, int err, u64 latency_ns),
	     TP_ARGS(req, err, latency_ns)
);

/* A caller waited for the device: how long, and how it ended. */
TRACE_EVENT(viommu_sync_wait,
	    TP_PROTO(u64 wait_ns, unsigned int inflight, int ret),
	    TP_ARGS(wait_ns, inflight, ret),
	    TP_STRUCT__entry(__field(u64, wait_ns)
			     __field(unsigned int, inflight)
			     __field(int, ret)),
	    TP_fast_assign(__entry->wait_ns = wait_ns;
			   __entry->inflight = inflight;
			   __entry->ret = ret;),
	    TP_printk("wait_ns=%llu inflight=%u ret=%d", __entry->wait_ns,
		      __entry->inflight, __entry->ret)
);

/* Deferred UNMAPs handed to the device, and what made them go. */
TRACE_EVENT(viommu_deferred_submit,
	    TP_PROTO(unsigned int count, unsigned int cause, unsigned int left),
	    TP_ARGS(count, cause, left),
	    TP_STRUCT__entry(__field(unsigned int, count)
			     __field(unsigned int, cause)
			     __field(unsigned int, left)),
	    TP_fast_assign(__entry->count = count;
			   __entry->cause = cause;
			   __entry->left = left;),
	    TP_printk("count=%u cause=%s left=%u", __entry->count,
		      viommu_show_cause(__entry->cause), __entry->left)
);

#endif /* VIOMMU_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE viommu_trace
#include <trace/define_trace.h>
