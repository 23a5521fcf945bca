/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-iommu-fq: types shared by the parts of the driver.
 *
 * The driver is split by concern:
 *   request.c    request engine: request pool, pending queue, submission,
 *                kicks, completion polling, deferral timer, statistics
 *   virtqueue.c  the engine's queue operations on a real virtqueue
 *   domain.c     iommu_domain_ops: paging domains, map/unmap, syncs
 *   endpoint.c   endpoints: probe/release, PROBE properties, attach
 *   event.c      event virtqueue and fault reports
 *   sysfs.c      knobs (module parameters and per-instance attributes)
 *                and counters
 *   pm.c         suspend and hibernation: freeze and restore
 *   main.c       virtio driver: feature negotiation, config, iommu_ops
 *   core61.c     iommu_ops for the 6.1 iommu core, instead of main.c's
 */
#ifndef VIOMMU_FQ_H
#define VIOMMU_FQ_H

#include <linux/hrtimer.h>
#include <linux/iommu.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/rbtree.h>
#include <linux/scatterlist.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/workqueue.h>
#include <uapi/linux/virtio_iommu.h>

#include "compat.h"

struct scatterlist;
struct virtio_device;
struct virtio_driver;
struct virtqueue;

/* Largest accepted probe_size: anything bigger is a malformed config. */
#define VIOMMU_PROBE_SIZE_MAX		SZ_64K
/* Request slots per instance; also bounds the requests in flight. */
#define VIOMMU_NR_SLOTS			128
/* Pending requests that force a submission ("full queue" deferral cause). */
#define VIOMMU_MAX_PENDING		64
/* A waiter notifies the device again after this long without completion. */
#define VIOMMU_REKICK_US		500
/* Notifications one CPU makes for others before leaving it to them. */
#define VIOMMU_KICK_ROUNDS		4
/* Deferred UNMAPs that a map sync takes along (fewer wait for more merges). */
#define VIOMMU_PIGGYBACK_MIN		32
/* Buckets (log2) of the tables that find a deferred UNMAP by its ends. */
#define VIOMMU_MERGE_HASH_BITS		6
/* Default bounded wait for the device to complete a request. */
#define VIOMMU_SYNC_TIMEOUT_MS		5000
/* Knob limits. */
#define VIOMMU_FLUSH_TIMEOUT_MAX_MS	1000
#define VIOMMU_FLUSH_TIMEOUT_DEFAULT_MS	10
/* Longest wait, when the caller cannot sleep, for a broken device's reset. */
#define VIOMMU_BLOCK_WAIT_MS		1000
/* Failed MAP ranges remembered per domain until a map sync collects them. */

/**
 * struct viommu_queue_ops - how the request engine reaches the device
 * @add: expose one request to the device: @out is device-readable, @in is
 *	device-writable; @token comes back from @get_used. Returns 0,
 *	-ENOSPC when the queue has no room, or another negative errno.
 * @kick_prepare: after adds, tell whether the device must be notified.
 *	Called with the engine lock held, like @add and @get_used.
 * @notify: notify the device. Called without the engine lock.
 * @get_used: return the token of a completed request and the number of
 *	bytes the device wrote in @len, or NULL if none is completed.
 * @free_slots: number of requests that @add can still take.
 * @block: make the device unable to translate for any endpoint, once it
 *	has been declared broken: reset it so that no endpoint is attached,
 *	with unattached endpoints denied access to memory. Called once, from
 *	a workqueue (it may sleep), never with the engine lock held. Optional.
 *
 * The production implementation wraps a virtqueue (virtqueue.c); the KUnit
 * suites put a fake device behind the same operations.
 */
struct viommu_queue_ops {
	int (*add)(void *queue, struct scatterlist *out, struct scatterlist *in,
		   void *token);
	bool (*kick_prepare)(void *queue);
	void (*notify)(void *queue);
	void *(*get_used)(void *queue, unsigned int *len);
	unsigned int (*free_slots)(void *queue);
	void (*block)(void *queue);
};

extern const struct viommu_queue_ops viommu_virtqueue_ops;

/* Counters; keep in sync with viommu_stat_names in sysfs.c. */
enum viommu_stat {
	VIOMMU_STAT_REQ_ATTACH,
	VIOMMU_STAT_REQ_DETACH,
	VIOMMU_STAT_REQ_MAP,
	VIOMMU_STAT_REQ_UNMAP,
	VIOMMU_STAT_REQ_PROBE,
	VIOMMU_STAT_KICKS,
	VIOMMU_STAT_SHARED_KICKS,
	VIOMMU_STAT_REKICKS,
	VIOMMU_STAT_SYNC_WAITS,
	VIOMMU_STAT_SYNC_WAIT_NS,
	VIOMMU_STAT_FLUSHES,
	VIOMMU_STAT_DEFERRED_TIMER,
	VIOMMU_STAT_DEFERRED_FULL,
	VIOMMU_STAT_DEFERRED_FLUSH,
	VIOMMU_STAT_DEFERRED_MAP_SYNC,
	VIOMMU_STAT_QUEUE_FULL,
	VIOMMU_STAT_ERR_IOERR,
	VIOMMU_STAT_ERR_UNSUPP,
	VIOMMU_STAT_ERR_DEVERR,
	VIOMMU_STAT_ERR_INVAL,
	VIOMMU_STAT_ERR_RANGE,
	VIOMMU_STAT_ERR_NOENT,
	VIOMMU_STAT_ERR_FAULT,
	VIOMMU_STAT_ERR_NOMEM,
	VIOMMU_STAT_ERR_UNKNOWN,
	VIOMMU_STAT_ERR_NOSTATUS,
	VIOMMU_STAT_ERR_TIMEOUT,
	VIOMMU_STAT_FAULTS,
	VIOMMU_STAT_MERGED_MAPS,
	VIOMMU_STAT_MERGED_UNMAPS,
	VIOMMU_STAT_DEFERRED_SYNC,
	VIOMMU_STAT_DEVICE_BROKEN,
	VIOMMU_STAT_NR,
};

struct viommu_stats {
	u64 count[VIOMMU_STAT_NR];
};

/* Why pending UNMAPs were handed to the device before a strict sync. */
enum viommu_submit_cause {
	VIOMMU_CAUSE_SYNC,	/* a strict sync or a synchronous request */
	VIOMMU_CAUSE_TIMER,	/* flush_timeout_ms expired (or is 0) */
	VIOMMU_CAUSE_FULL,	/* too many pending requests */
	VIOMMU_CAUSE_FLUSH,	/* flush_iotlb_all */
	VIOMMU_CAUSE_MAP_SYNC,	/* piggybacked on a map sync */
};

struct viommu_domain;

/**
 * struct viommu_req - one request slot of the pool
 * @node: link in the engine's free, pending or in-flight list
 * @seq: submission order, assigned when the request reaches the queue
 * @vdomain: domain of a MAP request, to report its failure
 * @owner: context that queued a MAP (merging stays within one caller)
 * @gen: generation of the mapping a MAP request sends (see
 *	viommu_domain_collect_failures())
 * @replay: a MAP sent by viommu_domain_replay(), whose failure only the
 *	replay collects
 * @submitted_at: when it reached the queue, while its completion is traced
 * @deferred: UNMAP that may wait for the deferral timer
 * @waited: a caller waits for this request and releases it itself
 * @abandoned: the waiter gave up; release on completion
 * @done: the device returned the request
 * @err: result of the request (0 or a negative errno)
 * @out_len: device-readable bytes at @buf (or @ext)
 * @in_len: device-writable bytes following them
 * @ext: caller-provided buffer for variable-size requests (PROBE)
 * @buf: fixed-size request, including its tail
 */
struct viommu_req {
	struct list_head	node;
	struct hlist_node	by_start;	/* deferred UNMAPs, see request.c */
	struct hlist_node	by_next;
	u64			seq;
	u64			qseq;
	struct viommu_domain	*vdomain;
	unsigned long		owner;
	u64			gen;
	bool			replay;
	ktime_t			submitted_at;
	bool			deferred;
	bool			waited;
	bool			abandoned;
	bool			done;
	int			err;
	unsigned int		out_len;
	unsigned int		in_len;
	void			*ext;
	union {
		struct virtio_iommu_req_head	head;
		struct virtio_iommu_req_attach	attach;
		struct virtio_iommu_req_detach	detach;
		struct virtio_iommu_req_map	map;
		struct virtio_iommu_req_unmap	unmap;
	} buf;
};

/**
 * struct viommu_knobs - tunables of one instance (see sysfs.c)
 * @shadow_on_flush: give new endpoints dma-iommu's single flush queue
 * @flush_timeout_ms: longest time an UNMAP waits before submission
 * @map_batching: sync MAPs once per mapping call instead of each MAP
 */
struct viommu_knobs {
	unsigned int shadow_on_flush;
	unsigned int flush_timeout_ms;
	unsigned int map_batching;
};

/**
 * struct viommu_engine - the request engine of one instance
 * @lock: protects everything below except @stats and @knobs
 * @ops: queue operations, @queue their argument
 * @dev: device for log messages
 * @slots: request pool; @free_list, @pending, @deferred and @inflight hold
 *	its slots
 * @pending: requests not yet submitted, except deferred UNMAPs
 * @deferred: deferred UNMAPs not yet submitted
 * @queue_seq: queue order of the last request put on @pending or @deferred
 *	(viommu_req.qseq), by which the two are submitted
 * @nr_pending: requests on @pending and @deferred
 * @nr_deferred: requests on @deferred
 * @by_start: requests on @deferred by domain and first address
 * @by_next: requests on @deferred by domain and the address after their last
 * @sg: the two one-entry scatterlists (out, in) a request is submitted
 *	with, set up once: submission only points them at its buffers
 * @deferred_lo: lowest address unmapped by a request on @deferred
 * @deferred_hi: highest address unmapped by a request on @deferred
 * @oldest_deferred: queue time of the oldest deferred UNMAP
 * @submit_seq: sequence number of the last request handed to the device
 * @done_seq: every submitted request up to this number has completed
 * @kicking: a CPU is notifying the device outside the lock
 * @kick_again: requests were added during that notification
 * @force_kick: notify even if the queue does not ask for it
 * @deferred_conflict: a pending MAP overlaps a pending deferred UNMAP
 * @kick_again_seq: the last request queued when kick_again was set
 * @kicker_cpu: the CPU that is notifying
 * @flush_timer: submits deferred UNMAPs after flush_timeout_ms
 * @timeout_ns: bounded wait for a completion
 * @max_batch: largest number of requests submitted at once
 * @broken: the device stopped answering, or did not apply an UNMAP; no
 *	request is sent to it any more
 * @blocked: @block_work has run: no endpoint can reach memory
 * @block_work: runs the queue's block operation once the device is broken
 * @knobs: tunables, read with READ_ONCE()
 * @stats: per-CPU counters
 * @frozen: the device is being or has been reset for suspend (pm.c):
 *	nothing touches the queue until viommu_engine_thaw()
 * @outside: CPUs polling with the lock released, which may still use
 *	the queue
 */
struct viommu_engine {
	spinlock_t			lock;	/* see above */
	const struct viommu_queue_ops	*ops;
	void				*queue;
	struct device			*dev;
	struct viommu_req		*slots;
	struct list_head		free_list;
	struct list_head		pending;
	struct list_head		deferred;
	struct list_head		inflight;
	u64				queue_seq;
	unsigned int			nr_pending;
	unsigned int			nr_deferred;
	struct hlist_head		by_start[1 << VIOMMU_MERGE_HASH_BITS];
	struct hlist_head		by_next[1 << VIOMMU_MERGE_HASH_BITS];
	struct scatterlist		sg[2];
	u64				deferred_lo;
	u64				deferred_hi;
	ktime_t				oldest_deferred;
	u64				submit_seq;
	u64				done_seq;
	bool				kicking;
	bool				kick_again;
	bool				force_kick;
	bool				deferred_conflict;
	u64				kick_again_seq;
	unsigned int			kicker_cpu;
	struct hrtimer			flush_timer;
	u64				timeout_ns;
	u64				max_batch;
	bool				broken;
	bool				blocked;
	struct work_struct		block_work;
	struct viommu_knobs		knobs;
	struct viommu_stats __percpu	*stats;
	bool				frozen;
	unsigned int			outside;
};

/* One virtio-iommu instance. */
struct viommu_dev {
	struct iommu_device		iommu;
	struct device			*dev;		/* the virtio device */
	struct device			*hwdev;		/* its transport (fwnode) */
	struct virtio_device		*vdev;
	struct list_head		list;		/* viommu_instances */
	struct viommu_engine		engine;
	struct ida			domain_ids;
	struct virtqueue		*req_vq;
	struct virtqueue		*evt_vq;
	struct virtio_iommu_fault	*evts;
	unsigned int			nr_evts;

	/* Device properties, fixed after probe. */
	u64				pgsize_bitmap;
	u64				input_start;
	u64				input_end;
	u32				first_domain;
	u32				last_domain;
	u32				probe_size;
	u32				map_flags;	/* accepted MAP flags */
	bool				has_probe;
	bool				has_bypass_config;
	bool				has_legacy_bypass;
	/* Reserved domain IDs: 0 when not available. */
	u32				identity_id;
	u32				blocking_id;
	unsigned int			identity_users;
	unsigned int			blocking_users;
	struct mutex			attach_lock;	/* the above and attach */
	/* Probed endpoints (under attach_lock), for restore after a reset. */
	struct hlist_head		endpoints;
};

struct viommu_mapping {
	struct rb_node		rb;
	u64			start;
	u64			last;
	u64			subtree_last;
	phys_addr_t		paddr;
	u32			flags;
	bool			on_device;	/* its MAP was queued */
	u64			gen;		/* the MAP that sent it */
};

/**
 * struct viommu_domain - a paging domain
 * @domain: the core's domain
 * @viommu: the instance that allocated it
 * @id: domain ID on the device
 * @map_lock: protects @mappings, @live and @map_gen; taken before the
 *	engine lock when both are held
 * @mappings: interval tree of the mappings, one node per MAP request
 * @map_gen: generation of the last MAP request created for a mapping
 * @live: the domain exists on the device (an endpoint is attached), so
 *	map and unmap reach the device
 * @nr_endpoints: attached endpoints (under viommu->attach_lock)
 * @nr_untrusted: attached endpoints the kernel does not trust
 * @failed_maps: failed MAP requests not yet reported (under the engine
 *	lock), kept out of the request pool until then
 */
struct viommu_domain {
	struct iommu_domain	domain;
	struct viommu_dev	*viommu;
	u32			id;
	spinlock_t		map_lock;	/* see above */
	struct rb_root_cached	mappings;
	bool			live;
	unsigned int		nr_endpoints;
	unsigned int		nr_untrusted;
	u64			map_gen;
	struct list_head	failed_maps;
};

static inline struct viommu_domain *to_viommu_domain(struct iommu_domain *d)
{
	return container_of(d, struct viommu_domain, domain);
}

enum viommu_attachment {
	VIOMMU_DETACHED,
	VIOMMU_ATTACHED_PAGING,
	VIOMMU_ATTACHED_IDENTITY,
	VIOMMU_ATTACHED_BLOCKED,
};

/* Per-endpoint state, the device's dev_iommu private data. */
struct viommu_endpoint {
	struct device		*dev;
	struct viommu_dev	*viommu;
	enum viommu_attachment	attached;
	struct viommu_domain	*vdomain;	/* when ATTACHED_PAGING */
	struct list_head	resv_regions;
	bool			linked;		/* made a device link */
	bool			untrusted;
	struct hlist_node	node;		/* in viommu->endpoints */
};

/* request.c */
int viommu_engine_init(struct viommu_engine *eng, struct device *dev,
		       const struct viommu_queue_ops *ops, void *queue,
		       unsigned int nr_slots);
void viommu_engine_destroy(struct viommu_engine *eng);
void viommu_engine_stop(struct viommu_engine *eng);
bool viommu_engine_broken(struct viommu_engine *eng);
void viommu_engine_break(struct viommu_engine *eng, const char *why);
int viommu_status_to_errno(u8 status);
int viommu_send_sync(struct viommu_engine *eng, const void *req,
		     size_t len);
int viommu_send_probe(struct viommu_engine *eng, u32 endpoint,
		      size_t probe_size, void **props);
int viommu_queue_map(struct viommu_engine *eng, struct viommu_domain *vdom,
		     u64 iova, u64 last, phys_addr_t paddr, u32 flags,
		     u64 gen, bool *merged, bool replay);
int viommu_queue_unmap(struct viommu_engine *eng, u32 domain_id, u64 iova,
		       u64 last, bool deferred);
int viommu_sync(struct viommu_engine *eng, enum viommu_submit_cause cause);
void viommu_engine_set_flush_timeout(struct viommu_engine *eng,
				     unsigned int ms);
int viommu_domain_collect_failures(struct viommu_engine *eng,
				   struct viommu_domain *vdom,
				   u64 iova, u64 last, bool replay);
bool viommu_mapping_current(struct viommu_domain *vdom, u64 start, u64 gen);
void viommu_engine_forget_domain(struct viommu_engine *eng,
				 struct viommu_domain *vdom);
unsigned int viommu_pending_unmaps(struct viommu_engine *eng, u64 *age_us);
/* Add to a counter; cheap enough for every request (a per-CPU add). */
static inline void viommu_stat_add(struct viommu_engine *eng,
				   enum viommu_stat stat, u64 val)
{
	this_cpu_add(eng->stats->count[stat], val);
}

u64 viommu_stat_read(struct viommu_engine *eng, enum viommu_stat stat);
void viommu_stats_reset(struct viommu_engine *eng);
void viommu_engine_freeze(struct viommu_engine *eng);
void viommu_engine_stopped(struct viommu_engine *eng);
void viommu_engine_thaw(struct viommu_engine *eng, void *queue);

/* domain.c */
extern const struct iommu_domain_ops viommu_paging_ops;
struct iommu_domain *viommu_domain_alloc_paging(struct device *dev);
int viommu_domain_replay(struct viommu_domain *vdom);
void viommu_domain_gone(struct viommu_domain *vdom);

/* endpoint.c */
int viommu_paging_attach(struct viommu_endpoint *ep, struct viommu_domain *vdom);
extern struct iommu_domain viommu_identity_domain;
extern struct iommu_domain viommu_blocked_domain;
struct iommu_device *viommu_probe_device(struct device *dev);
void viommu_release_device(struct device *dev);
void viommu_get_resv_regions(struct device *dev, struct list_head *head);
int viommu_parse_probe(struct viommu_endpoint *ep, const void *props,
		       size_t len);
int viommu_def_domain_type(struct device *dev);
struct viommu_dev *viommu_find_instance(struct fwnode_handle *fwnode);
void viommu_register_instance(struct viommu_dev *viommu);
void viommu_unregister_instance(struct viommu_dev *viommu);

/* event.c */
int viommu_events_init(struct viommu_dev *viommu);
void viommu_event_handler(struct virtqueue *vq);
void viommu_handle_fault(struct viommu_dev *viommu,
			 const struct virtio_iommu_fault *fault,
			 unsigned int len);

/* sysfs.c */
extern const struct attribute_group *viommu_sysfs_groups[];
void viommu_knobs_defaults(struct viommu_knobs *knobs);
int viommu_parse_knob(const char *buf, size_t count, unsigned int max,
		      unsigned int *val);

/* pm.c */

/**
 * struct viommu_pm_ops - what freeze and restore do to the transport
 * @reset: reset the device: it stops using the queues and forgets every
 *	domain, endpoint and mapping
 * @del_queues: free the virtqueues (after @reset)
 * @find_queues: create the virtqueues again; set *@queue to the argument
 *	of the engine's queue operations
 * @ready: tell the device that the driver is ready, refill the event queue
 * @block: make the device, reset and not ready, let no endpoint reach
 *	memory (a device declared broken stays so across a reset)
 *
 * The production implementation drives the virtio device; the KUnit suites
 * put a fake device behind the same operations.
 */
struct viommu_pm_ops {
	void (*reset)(struct viommu_dev *viommu);
	void (*del_queues)(struct viommu_dev *viommu);
	int (*find_queues)(struct viommu_dev *viommu, void **queue);
	void (*ready)(struct viommu_dev *viommu);
	void (*block)(struct viommu_dev *viommu);
};

int viommu_pm_freeze(struct viommu_dev *viommu, const struct viommu_pm_ops *ops);
int viommu_pm_restore(struct viommu_dev *viommu, const struct viommu_pm_ops *ops);
int viommu_freeze(struct virtio_device *vdev);
int viommu_restore(struct virtio_device *vdev);

/*
 * core61.c, the 6.1 iommu core (VIOMMU_CORE61): map_batching and
 * shadow_on_flush are 0 and refuse other values, and a registered
 * instance pins the module.
 */
#ifdef VIOMMU_CORE61
#define VIOMMU_MAP_BATCHING_DEFAULT	0
#define VIOMMU_MAP_BATCHING_DESC \
	"Always 0 with this kernel: its iommu core cannot report a failed MAP sync"
#define VIOMMU_SHADOW_ON_FLUSH_DESC \
	"Always 0 with this kernel: its dma-iommu has no single flush queue"
void viommu_core_registered(struct viommu_dev *viommu);
int viommu_knob_refused(const char *name, unsigned int val);
#else
#define VIOMMU_MAP_BATCHING_DEFAULT	1
#define VIOMMU_MAP_BATCHING_DESC \
	"Sync MAP requests once per mapping call (1) or after every MAP (0); default 1"
#define VIOMMU_SHADOW_ON_FLUSH_DESC \
	"Use dma-iommu's single flush queue for endpoints of new instances (0/1, default 0)"
static inline void viommu_core_registered(struct viommu_dev *viommu)
{
}

static inline int viommu_knob_refused(const char *name, unsigned int val)
{
	return 0;
}
#endif

/* main.c */
extern const struct iommu_ops viommu_ops;
extern struct virtio_driver viommu_driver;
int viommu_read_config(struct viommu_dev *viommu);
void viommu_reserve_domain_ids(struct viommu_dev *viommu);
int viommu_init_vqs(struct viommu_dev *viommu);

#endif /* VIOMMU_FQ_H */
