// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq request engine.
 *
 * Requests live in a fixed pool of slots, so the hot path never allocates.
 * A request is first queued on a driver-side list, where MAPs of one
 * mapping call and adjacent UNMAPs are merged, then submitted to the device
 * in one batch when somebody needs the result (a sync), when too many are
 * pending, or when the deferral timer fires. Deferred UNMAPs (of lazy
 * domains) wait on a list of their own, so that nothing on the path of a
 * MAP walks them; both lists are submitted in the order of queueing
 * (viommu_req.qseq), merged as they go to the device. Two small hash
 * tables find a deferred UNMAP by either end, so that a new one extends an
 * adjacent one without a search.
 *
 * Requests are numbered when they are handed to the device. The device may
 * complete them in any order; done_seq is the highest number below which
 * every submitted request has completed, which is what a sync waits for.
 *
 * A map sync submits the MAPs but leaves deferred UNMAPs (of lazy domains)
 * pending until VIOMMU_PIGGYBACK_MIN of them wait: dma-iommu does not reuse
 * their IOVAs before flush_iotlb_all, so they may reach the device after
 * later MAPs, and the longer they wait the more of them merge into one
 * request. Then they ride along with the map sync, which saves a kick.
 *
 * A device that does not complete a request within the bounded wait, or
 * that does not apply an UNMAP, is declared broken (once: one log line and
 * the device_broken counter). From then on nothing is sent to it, every
 * request fails with -EIO, and the queue's block operation resets it so
 * that no endpoint can reach memory. Whoever returns an error because the
 * device is broken first waits for that reset (see viommu_wait_blocked()),
 * so that a failed unmap or sync never hands back memory that the device
 * can still reach.
 *
 * The engine lock is only held to manipulate the lists and the queue. A CPU
 * notifies the device and polls for completions with the lock released, so
 * that other CPUs can keep queueing and reaping while the device works.
 * While one CPU notifies, others that need a notification let it notify
 * once more on their behalf instead of trapping to the device themselves.
 */

#include <linux/delay.h>
#include <linux/hardirq.h>
#include <linux/hash.h>
#include <linux/ktime.h>
#include <linux/preempt.h>
#include <linux/ratelimit.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/workqueue.h>

#include "viommu.h"

#define CREATE_TRACE_POINTS
#include "viommu_trace.h"

#define VIOMMU_TAIL_LEN	sizeof(struct virtio_iommu_req_tail)
#define VIOMMU_PROBE_OUT_LEN	offsetof(struct virtio_iommu_req_probe, properties)

u64 viommu_stat_read(struct viommu_engine *eng, enum viommu_stat stat)
{
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += per_cpu_ptr(eng->stats, cpu)->count[stat];
	return sum;
}

void viommu_stats_reset(struct viommu_engine *eng)
{
	unsigned long flags;
	int cpu;

	for_each_possible_cpu(cpu)
		memset(per_cpu_ptr(eng->stats, cpu), 0, sizeof(struct viommu_stats));
	spin_lock_irqsave(&eng->lock, flags);
	eng->max_batch = 0;
	spin_unlock_irqrestore(&eng->lock, flags);
}

/**
 * viommu_status_to_errno() - translate a request status into an errno
 * @status: the status byte the device wrote in the request tail
 *
 * Return: 0 for VIRTIO_IOMMU_S_OK, otherwise a negative errno. Unknown
 * status values are treated as I/O errors.
 */
int viommu_status_to_errno(u8 status)
{
	switch (status) {
	case VIRTIO_IOMMU_S_OK:
		return 0;
	case VIRTIO_IOMMU_S_UNSUPP:
		return -EOPNOTSUPP;
	case VIRTIO_IOMMU_S_INVAL:
		return -EINVAL;
	case VIRTIO_IOMMU_S_RANGE:
		return -ERANGE;
	case VIRTIO_IOMMU_S_NOENT:
		return -ENOENT;
	case VIRTIO_IOMMU_S_FAULT:
		return -EFAULT;
	case VIRTIO_IOMMU_S_NOMEM:
		return -ENOMEM;
	case VIRTIO_IOMMU_S_IOERR:
	case VIRTIO_IOMMU_S_DEVERR:
	default:
		return -EIO;
	}
}

static enum viommu_stat viommu_status_stat(u8 status)
{
	switch (status) {
	case VIRTIO_IOMMU_S_IOERR:
		return VIOMMU_STAT_ERR_IOERR;
	case VIRTIO_IOMMU_S_UNSUPP:
		return VIOMMU_STAT_ERR_UNSUPP;
	case VIRTIO_IOMMU_S_DEVERR:
		return VIOMMU_STAT_ERR_DEVERR;
	case VIRTIO_IOMMU_S_INVAL:
		return VIOMMU_STAT_ERR_INVAL;
	case VIRTIO_IOMMU_S_RANGE:
		return VIOMMU_STAT_ERR_RANGE;
	case VIRTIO_IOMMU_S_NOENT:
		return VIOMMU_STAT_ERR_NOENT;
	case VIRTIO_IOMMU_S_FAULT:
		return VIOMMU_STAT_ERR_FAULT;
	case VIRTIO_IOMMU_S_NOMEM:
		return VIOMMU_STAT_ERR_NOMEM;
	default:
		return VIOMMU_STAT_ERR_UNKNOWN;
	}
}

static enum viommu_stat viommu_type_stat(u8 type)
{
	switch (type) {
	case VIRTIO_IOMMU_T_ATTACH:
		return VIOMMU_STAT_REQ_ATTACH;
	case VIRTIO_IOMMU_T_DETACH:
		return VIOMMU_STAT_REQ_DETACH;
	case VIRTIO_IOMMU_T_MAP:
		return VIOMMU_STAT_REQ_MAP;
	case VIRTIO_IOMMU_T_UNMAP:
		return VIOMMU_STAT_REQ_UNMAP;
	default:
		return VIOMMU_STAT_REQ_PROBE;
	}
}

static void viommu_block_work_fn(struct work_struct *work)
{
	struct viommu_engine *eng = container_of(work, struct viommu_engine,
						 block_work);

	if (eng->ops->block)
		eng->ops->block(eng->queue);
	/* Pairs with viommu_wait_blocked(): the reset is done before. */
	smp_store_release(&eng->blocked, true);
}

/*
 * Declare the device broken, once. The reset runs from a workqueue: the
 * transports' reset sleeps, and this may be called with interrupts off.
 */
static void viommu_break_locked(struct viommu_engine *eng, const char *why)
{
	if (eng->broken)
		return;
	WRITE_ONCE(eng->broken, true);
	viommu_stat_add(eng, VIOMMU_STAT_DEVICE_BROKEN, 1);
	dev_err(eng->dev,
		"%s: device declared broken; it is reset so that no endpoint reaches memory, and map and attach fail from now on\n",
		why);
	queue_work(system_unbound_wq, &eng->block_work);
}

/*
 * Return once a broken device can no longer reach memory. A caller that
 * cannot sleep spins, bounded, while another CPU runs the reset; on a
 * single CPU with preemption off it cannot run, and the caller goes on
 * after VIOMMU_BLOCK_WAIT_MS with a log line.
 */
static void viommu_wait_blocked(struct viommu_engine *eng)
{
	ktime_t deadline;

	/* Pairs with viommu_block_work_fn(). */
	if (!READ_ONCE(eng->broken) || smp_load_acquire(&eng->blocked))
		return;
	if (preemptible()) {
		flush_work(&eng->block_work);
		return;
	}
	deadline = ktime_add_ms(ktime_get(), VIOMMU_BLOCK_WAIT_MS);
	while (!smp_load_acquire(&eng->blocked)) {	/* as above */
		if (ktime_after(ktime_get(), deadline)) {
			dev_err_ratelimited(eng->dev,
					    "reset of the broken device still pending\n");
			return;
		}
		cpu_relax();
	}
}

/**
 * viommu_engine_broken() - whether the device was declared broken
 * @eng: the engine
 *
 * Return: true once the device stopped answering or did not apply an
 * UNMAP; nothing is sent to it any more.
 */
bool viommu_engine_broken(struct viommu_engine *eng)
{
	return READ_ONCE(eng->broken);
}

/**
 * viommu_engine_break() - declare the device broken and wait for its reset
 * @eng: the engine
 * @why: reason for the log line (the first reason only is logged)
 *
 * For failures the engine cannot see by itself (a request that could not
 * be queued, a blocking ATTACH that failed). Returns once no endpoint can
 * reach memory, within the bound of viommu_wait_blocked().
 */
void viommu_engine_break(struct viommu_engine *eng, const char *why)
{
	unsigned long flags;

	spin_lock_irqsave(&eng->lock, flags);
	viommu_break_locked(eng, why);
	spin_unlock_irqrestore(&eng->lock, flags);
	viommu_wait_blocked(eng);
}

static inline void *viommu_req_data(struct viommu_req *req)
{
	return req->ext ? req->ext : (void *)&req->buf;
}

static inline u8 viommu_req_type(struct viommu_req *req)
{
	return ((struct virtio_iommu_req_head *)viommu_req_data(req))->type;
}

static void viommu_release_locked(struct viommu_engine *eng,
				  struct viommu_req *req)
{
	kfree(req->ext);
	req->ext = NULL;
	req->vdomain = NULL;
	list_add(&req->node, &eng->free_list);
}

/*
 * A request nobody waits for is done with. A failed MAP is not returned to
 * the pool: it goes to its domain's records, where the map sync of its
 * mapping finds it (viommu_domain_collect_failures()).
 */
static void viommu_retire_locked(struct viommu_engine *eng,
				 struct viommu_req *req)
{
	if (req->err && req->vdomain &&
	    viommu_req_type(req) == VIRTIO_IOMMU_T_MAP) {
		list_add_tail(&req->node, &req->vdomain->failed_maps);
		return;
	}
	viommu_release_locked(eng, req);
}

static void viommu_complete_locked(struct viommu_engine *eng,
				   struct viommu_req *req, unsigned int len)
{
	u8 type = viommu_req_type(req);
	struct virtio_iommu_req_tail *tail;

	req->done = true;
	if (len < VIOMMU_TAIL_LEN) {
		/* The device did not write the tail: the request failed. */
		req->err = -EIO;
		viommu_stat_add(eng, VIOMMU_STAT_ERR_NOSTATUS, 1);
	} else {
		tail = viommu_req_data(req) + req->out_len + req->in_len -
		       VIOMMU_TAIL_LEN;
		req->err = viommu_status_to_errno(tail->status);
		if (req->err)
			viommu_stat_add(eng, viommu_status_stat(tail->status), 1);
	}
	if (trace_viommu_request_complete_enabled())
		trace_viommu_request_complete(req, req->err,
					      req->submitted_at ?
					      ktime_to_ns(ktime_sub(ktime_get(),
								    req->submitted_at)) : 0);
	if (!req->err)
		return;
	/*
	 * The ranges would stay mapped while their memory is reused. NOENT
	 * means that the domain, mappings included, no longer exists.
	 */
	if (type == VIRTIO_IOMMU_T_UNMAP && req->err != -ENOENT)
		viommu_break_locked(eng, "UNMAP not applied");
	if (!req->waited || req->abandoned)
		dev_err_ratelimited(eng->dev, "request type %u failed: %d\n",
				    type, req->err);
}

/* Collect completed requests and advance done_seq. */
static void viommu_reap_locked(struct viommu_engine *eng)
{
	struct viommu_req *req;
	unsigned int len;

	if (eng->frozen)
		return;
	while ((req = eng->ops->get_used(eng->queue, &len)))
		viommu_complete_locked(eng, req, len);

	while ((req = list_first_entry_or_null(&eng->inflight,
					       struct viommu_req, node))) {
		if (!req->done)
			break;
		eng->done_seq = req->seq;
		list_del_init(&req->node);
		if (!req->waited || req->abandoned)
			viommu_retire_locked(eng, req);
	}
}

static void viommu_cancel_timer_locked(struct viommu_engine *eng)
{
	if (!eng->nr_deferred)
		hrtimer_try_to_cancel(&eng->flush_timer);
}

static struct hlist_head *viommu_merge_bucket(struct hlist_head *table,
					      u32 domain_id, u64 addr)
{
	return &table[hash_64(addr ^ ((u64)domain_id << 48),
			      VIOMMU_MERGE_HASH_BITS)];
}

/*
 * Enter a deferred UNMAP in the tables: by its first address, and by the
 * address after its last (none when it ends at U64_MAX: nothing follows).
 */
static void viommu_hash_deferred(struct viommu_engine *eng,
				 struct viommu_req *req)
{
	struct virtio_iommu_req_unmap *unmap = &req->buf.unmap;
	u32 domain_id = le32_to_cpu(unmap->domain);
	u64 end = le64_to_cpu(unmap->virt_end);

	hlist_add_head(&req->by_start,
		       viommu_merge_bucket(eng->by_start, domain_id,
					   le64_to_cpu(unmap->virt_start)));
	if (end != U64_MAX)
		hlist_add_head(&req->by_next,
			       viommu_merge_bucket(eng->by_next, domain_id,
						   end + 1));
}

static void viommu_unhash_deferred(struct viommu_req *req)
{
	hlist_del_init(&req->by_start);
	hlist_del_init(&req->by_next);
}

/*
 * The next request to submit: the first of @pending, or the first of
 * @deferred if it was queued earlier (and deferred UNMAPs are submitted).
 */
static struct viommu_req *viommu_next_locked(struct viommu_engine *eng,
					     bool keep_deferred)
{
	struct viommu_req *req, *unmap;

	req = list_first_entry_or_null(&eng->pending, struct viommu_req, node);
	if (keep_deferred || !eng->nr_deferred)
		return req;
	unmap = list_first_entry(&eng->deferred, struct viommu_req, node);
	return !req || unmap->qseq < req->qseq ? unmap : req;
}

/*
 * Hand pending requests to the queue, in order, until the queue is full.
 * A map sync may leave deferred UNMAPs pending. Return the number of requests
 * still pending that should have been submitted.
 */
static unsigned int viommu_submit_locked(struct viommu_engine *eng,
					 enum viommu_submit_cause cause)
{
	static const enum viommu_stat cause_stat[] = {
		[VIOMMU_CAUSE_TIMER] = VIOMMU_STAT_DEFERRED_TIMER,
		[VIOMMU_CAUSE_FULL] = VIOMMU_STAT_DEFERRED_FULL,
		[VIOMMU_CAUSE_FLUSH] = VIOMMU_STAT_DEFERRED_FLUSH,
		[VIOMMU_CAUSE_SYNC] = VIOMMU_STAT_DEFERRED_SYNC,
		[VIOMMU_CAUSE_MAP_SYNC] = VIOMMU_STAT_DEFERRED_MAP_SYNC,
	};
	bool keep_deferred = cause == VIOMMU_CAUSE_MAP_SYNC &&
			     eng->nr_deferred < VIOMMU_PIGGYBACK_MIN &&
			     !eng->deferred_conflict;
	struct scatterlist *out = &eng->sg[0], *in = &eng->sg[1];
	unsigned int batch = 0, deferred = 0;
	struct viommu_req *req;
	void *data;
	int ret;

	if (eng->frozen)
		return 0;
	while ((req = viommu_next_locked(eng, keep_deferred))) {
		data = viommu_req_data(req);
		sg_set_buf(out, data, req->out_len);
		sg_set_buf(in, data + req->out_len, req->in_len);
		ret = eng->ops->add(eng->queue, out, in, req);
		if (ret == -ENOSPC) {
			viommu_stat_add(eng, VIOMMU_STAT_QUEUE_FULL, 1);
			break;
		}
		req->seq = ++eng->submit_seq;
		req->submitted_at = trace_viommu_request_complete_enabled() ?
				    ktime_get() : 0;
		trace_viommu_request_submit(req, ret, 0);
		list_move_tail(&req->node, &eng->inflight);
		eng->nr_pending--;
		if (req->deferred) {
			viommu_unhash_deferred(req);
			deferred++;
			eng->nr_deferred--;
		}
		viommu_stat_add(eng, viommu_type_stat(viommu_req_type(req)), 1);
		batch++;
		if (ret) {
			/* A broken queue: fail the request right away. */
			req->done = true;
			req->err = ret;
			viommu_stat_add(eng, VIOMMU_STAT_ERR_IOERR, 1);
			if (viommu_req_type(req) == VIRTIO_IOMMU_T_UNMAP)
				viommu_break_locked(eng, "UNMAP not queued");
			dev_err_ratelimited(eng->dev, "cannot queue request: %d\n",
					    ret);
		}
	}
	if (deferred) {
		viommu_stat_add(eng, cause_stat[cause], deferred);
		trace_viommu_deferred_submit(deferred, cause, eng->nr_deferred);
	}
	if (batch > eng->max_batch)
		eng->max_batch = batch;
	if (!eng->nr_deferred)
		eng->deferred_conflict = false;
	viommu_cancel_timer_locked(eng);
	return keep_deferred ? eng->nr_pending - eng->nr_deferred :
			       eng->nr_pending;
}

/*
 * Notify the device if the queue asks for it. Drops the engine lock while
 * notifying and retakes it before returning.
 *
 * If another CPU is already notifying, ask it to notify once more instead
 * (kick_again). Before doing so, the notifying CPU reaps: when the device
 * already completed everything the others added (it consumes the whole
 * queue when notified), the extra notification is skipped and one kick
 * served several CPUs. The notifying CPU does not migrate, so a context
 * nested on the same CPU notifies by itself rather than waiting for the
 * context it interrupted.
 *
 * The notifying CPU runs with preemption off, so it serves others for at
 * most VIOMMU_KICK_ROUNDS notifications. Then the next kick notifies
 * whatever the queue says (force_kick), and a CPU waiting for its request
 * notifies by itself after VIOMMU_REKICK_US.
 */
static void viommu_kick_locked(struct viommu_engine *eng, unsigned long *flags)
	__must_hold(&eng->lock)
{
	unsigned int cpu, rounds;

	if (eng->broken || eng->frozen)
		return;
	if (!eng->ops->kick_prepare(eng->queue) && !eng->force_kick)
		return;
	eng->force_kick = false;
	cpu = smp_processor_id();
	if (eng->kicking && eng->kicker_cpu != cpu) {
		eng->kick_again = true;
		eng->kick_again_seq = eng->submit_seq;
		return;
	}
	if (eng->kicking) {
		/* Nested on the notifying CPU: notify ourselves. */
		spin_unlock_irqrestore(&eng->lock, *flags);
		eng->ops->notify(eng->queue);
		viommu_stat_add(eng, VIOMMU_STAT_KICKS, 1);
		spin_lock_irqsave(&eng->lock, *flags);
		return;
	}
	eng->kicking = true;
	eng->kicker_cpu = cpu;
	preempt_disable();
	for (rounds = 1;; rounds++) {
		eng->kick_again = false;
		spin_unlock_irqrestore(&eng->lock, *flags);
		eng->ops->notify(eng->queue);
		viommu_stat_add(eng, VIOMMU_STAT_KICKS, 1);
		spin_lock_irqsave(&eng->lock, *flags);
		if (!eng->kick_again)
			break;
		viommu_reap_locked(eng);
		if (eng->done_seq >= eng->kick_again_seq) {
			viommu_stat_add(eng, VIOMMU_STAT_SHARED_KICKS, 1);
			break;
		}
		if (rounds == VIOMMU_KICK_ROUNDS) {
			eng->force_kick = true;
			break;
		}
	}
	eng->kick_again = false;
	eng->kicking = false;
	preempt_enable();
}

/*
 * Poll until @done returns true, with the lock released between polls.
 *
 * Every VIOMMU_REKICK_US without completion the device is notified again.
 * Requests are added while the device works, and a device that reads the
 * available index before another CPU's addition becomes visible, but
 * publishes its notification threshold after that CPU checked it, would
 * otherwise leave them unnoticed until somebody else kicks; the extra
 * notification costs nothing when the device is only slow.
 *
 * The clock is read only once @done is found false: a device that
 * completed the requests while it was notified costs no clock read. When
 * @waited_ns is not NULL, it receives the time spent polling (0 then).
 *
 * Returns 0, -ETIMEDOUT after the engine's bounded wait (the device is
 * then declared broken), -EIO as soon as the device is broken, or
 * -EBUSY when the engine is frozen (pm.c) before @done.
 */
static int viommu_poll_locked(struct viommu_engine *eng, unsigned long *flags,
			      bool (*done)(struct viommu_engine *eng,
					   const void *arg),
			      const void *arg, u64 *waited_ns)
	__must_hold(&eng->lock)
{
	ktime_t start, now, deadline, rekick;
	bool notify;
	int ret = 0;

	if (waited_ns)
		*waited_ns = 0;
	viommu_reap_locked(eng);
	if (done(eng, arg))
		return 0;
	if (eng->broken)
		return -EIO;
	if (eng->frozen)
		return -EBUSY;
	start = ktime_get();
	now = start;
	deadline = ktime_add_ns(now, eng->timeout_ns);
	rekick = ktime_add_us(now, VIOMMU_REKICK_US);
	for (;;) {
		now = ktime_get();
		notify = ktime_after(now, rekick);
		if (notify)
			rekick = ktime_add_us(now, VIOMMU_REKICK_US);
		eng->outside++;
		spin_unlock_irqrestore(&eng->lock, *flags);
		if (notify) {
			eng->ops->notify(eng->queue);
			viommu_stat_add(eng, VIOMMU_STAT_REKICKS, 1);
		} else {
			cpu_relax();
		}
		spin_lock_irqsave(&eng->lock, *flags);
		eng->outside--;
		viommu_reap_locked(eng);
		if (done(eng, arg))
			break;
		if (eng->broken) {
			ret = -EIO;
			break;
		}
		if (eng->frozen) {
			ret = -EBUSY;
			break;
		}
		if (ktime_after(now, deadline)) {
			viommu_stat_add(eng, VIOMMU_STAT_ERR_TIMEOUT, 1);
			viommu_break_locked(eng, "did not answer within the bounded wait");
			ret = -ETIMEDOUT;
			break;
		}
	}
	if (waited_ns)
		*waited_ns = ktime_to_ns(ktime_sub(ktime_get(), start));
	return ret;
}

static bool viommu_seq_done(struct viommu_engine *eng, const void *arg)
{
	return eng->done_seq >= *(const u64 *)arg;
}

static bool viommu_has_room(struct viommu_engine *eng, const void *arg)
{
	return !eng->frozen && eng->ops->free_slots(eng->queue) > 0;
}

static bool viommu_slot_free(struct viommu_engine *eng, const void *arg)
{
	return !list_empty(&eng->free_list);
}

static bool viommu_req_done(struct viommu_engine *eng, const void *arg)
{
	return ((const struct viommu_req *)arg)->done;
}

/*
 * A synchronous wait: notify the device and poll until @done. The time
 * counted is the polling after the notification; an emulated device that
 * does its work during the notification (a trap to the hypervisor) adds
 * none, and then no clock is read.
 */
static int viommu_kick_and_wait_locked(struct viommu_engine *eng,
				       unsigned long *flags,
				       bool (*done)(struct viommu_engine *eng,
						    const void *arg),
				       const void *arg)
{
	int ret;
	u64 ns;

	viommu_stat_add(eng, VIOMMU_STAT_SYNC_WAITS, 1);
	viommu_kick_locked(eng, flags);
	ret = viommu_poll_locked(eng, flags, done, arg, &ns);
	if (!ret && ns)
		viommu_stat_add(eng, VIOMMU_STAT_SYNC_WAIT_NS, ns);
	trace_viommu_sync_wait(ns, eng->submit_seq - eng->done_seq, ret);
	return ret;
}

/* Submit every pending request, waiting for room when the queue is full. */
static int viommu_submit_all_locked(struct viommu_engine *eng,
				    unsigned long *flags,
				    enum viommu_submit_cause cause)
{
	int ret;

	if (eng->broken)
		return -EIO;
	while (viommu_submit_locked(eng, cause)) {
		viommu_kick_locked(eng, flags);
		ret = viommu_poll_locked(eng, flags, viommu_has_room, NULL,
					 NULL);
		if (ret)
			return ret;
	}
	return 0;
}

/* Take a free slot, making room if the pool is exhausted. */
static struct viommu_req *viommu_get_slot_locked(struct viommu_engine *eng,
						 unsigned long *flags)
{
	struct viommu_req *req;
	int ret;

	if (eng->broken)
		return ERR_PTR(-EIO);
	if (list_empty(&eng->free_list))
		viommu_reap_locked(eng);
	if (list_empty(&eng->free_list)) {
		viommu_stat_add(eng, VIOMMU_STAT_QUEUE_FULL, 1);
		ret = viommu_submit_all_locked(eng, flags, VIOMMU_CAUSE_FULL);
		if (!ret) {
			viommu_kick_locked(eng, flags);
			ret = viommu_poll_locked(eng, flags, viommu_slot_free,
						 NULL, NULL);
		}
		if (ret)
			return ERR_PTR(ret);
	}
	req = list_first_entry(&eng->free_list, struct viommu_req, node);
	list_del(&req->node);
	req->vdomain = NULL;
	req->owner = 0;
	req->replay = false;
	req->deferred = false;
	req->waited = false;
	req->abandoned = false;
	req->done = false;
	req->err = 0;
	req->ext = NULL;
	return req;
}

static void viommu_append_locked(struct viommu_engine *eng,
				 struct viommu_req *req)
{
	req->qseq = ++eng->queue_seq;
	list_add_tail(&req->node, req->deferred ? &eng->deferred : &eng->pending);
	eng->nr_pending++;
}

/* Submit, notify and wait for everything queued so far. */
static int viommu_sync_locked(struct viommu_engine *eng, unsigned long *flags,
			      enum viommu_submit_cause cause)
{
	u64 before = eng->submit_seq, target;
	int ret;

	ret = viommu_submit_all_locked(eng, flags, cause);
	if (ret)
		return ret;
	target = eng->submit_seq;
	/*
	 * Requests just submitted have hardly ever completed before their
	 * notification (the poll after it reaps them in any case): reap
	 * first only when nothing new was submitted.
	 */
	if (target == before)
		viommu_reap_locked(eng);
	if (eng->done_seq < target)
		ret = viommu_kick_and_wait_locked(eng, flags, viommu_seq_done,
						  &target);
	/* An UNMAP that completed in error broke the device. */
	if (!ret && eng->broken)
		ret = -EIO;
	return ret;
}

/**
 * viommu_sync() - submit all pending requests and wait for completion
 * @eng: the engine
 * @cause: why pending deferred UNMAPs are being submitted (statistics)
 *
 * Nothing is kicked when nothing is outstanding.
 *
 * Return: 0; -ETIMEDOUT when the device did not complete the requests
 * within the bounded wait, or -EIO when it is broken: in both cases the
 * device has been reset (within the bound of viommu_wait_blocked()), so
 * that it no longer reaches any memory, before this returns.
 */
int viommu_sync(struct viommu_engine *eng, enum viommu_submit_cause cause)
{
	unsigned long flags;
	int ret;

	spin_lock_irqsave(&eng->lock, flags);
	ret = viommu_sync_locked(eng, &flags, cause);
	spin_unlock_irqrestore(&eng->lock, flags);
	if (ret)
		viommu_wait_blocked(eng);
	return ret;
}

/*
 * Queue a request that the caller waits for, submit everything up to it and
 * wait for it. The request is released here unless it is still owned by the
 * device or by the in-flight list, in which case reaping releases it.
 */
static int viommu_send_req_locked(struct viommu_engine *eng,
				  unsigned long *flags, struct viommu_req *req,
				  void *result, const void *src, size_t len)
{
	int ret;

	req->waited = true;
	viommu_append_locked(eng, req);
	ret = viommu_submit_all_locked(eng, flags, VIOMMU_CAUSE_SYNC);
	if (!ret)
		ret = viommu_kick_and_wait_locked(eng, flags, viommu_req_done,
						  req);
	if (!ret) {
		ret = req->err;
		if (!ret && result)
			memcpy(result, src, len);
	}
	if (list_empty(&req->node))
		viommu_release_locked(eng, req);
	else
		req->abandoned = true;
	return ret;
}

/**
 * viommu_send_sync() - send one fixed-size request and wait for its status
 * @eng: the engine
 * @buf: the request, including its tail (ATTACH or DETACH)
 * @len: size of @buf
 *
 * Requests queued earlier are submitted first, in order.
 *
 * Return: 0 or the errno of the request's status, -ETIMEDOUT if the device
 * did not answer, -EIO if it returned the request without a status.
 */
int viommu_send_sync(struct viommu_engine *eng, const void *buf, size_t len)
{
	struct viommu_req *req;
	unsigned long flags;
	int ret;

	if (WARN_ON(len > sizeof(req->buf) ||
		    len < sizeof(struct virtio_iommu_req_head) + VIOMMU_TAIL_LEN))
		return -EINVAL;
	spin_lock_irqsave(&eng->lock, flags);
	req = viommu_get_slot_locked(eng, &flags);
	if (IS_ERR(req)) {
		spin_unlock_irqrestore(&eng->lock, flags);
		return PTR_ERR(req);
	}
	memcpy(&req->buf, buf, len);
	req->out_len = len - VIOMMU_TAIL_LEN;
	req->in_len = VIOMMU_TAIL_LEN;
	ret = viommu_send_req_locked(eng, &flags, req, NULL, NULL, 0);
	spin_unlock_irqrestore(&eng->lock, flags);
	return ret;
}

/**
 * viommu_send_probe() - send a PROBE request for one endpoint
 * @eng: the engine
 * @endpoint: endpoint ID
 * @probe_size: size of the properties area (from the config space)
 * @props: on success, a kmalloc'ed copy of the @probe_size bytes of
 *	properties; the caller frees it
 *
 * Return: 0 or a negative errno as for viommu_send_sync().
 */
int viommu_send_probe(struct viommu_engine *eng, u32 endpoint,
		      size_t probe_size, void **props)
{
	struct virtio_iommu_req_probe *probe;
	size_t len = VIOMMU_PROBE_OUT_LEN + probe_size + VIOMMU_TAIL_LEN;
	struct viommu_req *req;
	unsigned long flags;
	int ret;

	probe = kzalloc(len, GFP_KERNEL);
	*props = kmalloc(probe_size, GFP_KERNEL);
	if (!probe || !*props) {
		kfree(probe);
		kfree(*props);
		*props = NULL;
		return -ENOMEM;
	}
	probe->head.type = VIRTIO_IOMMU_T_PROBE;
	probe->endpoint = cpu_to_le32(endpoint);

	spin_lock_irqsave(&eng->lock, flags);
	req = viommu_get_slot_locked(eng, &flags);
	if (IS_ERR(req)) {
		spin_unlock_irqrestore(&eng->lock, flags);
		kfree(probe);
		ret = PTR_ERR(req);
		goto err_props;
	}
	req->ext = probe;
	req->out_len = VIOMMU_PROBE_OUT_LEN;
	req->in_len = probe_size + VIOMMU_TAIL_LEN;
	/* The request owns @probe from here on. */
	ret = viommu_send_req_locked(eng, &flags, req, *props, probe->properties,
				     probe_size);
	spin_unlock_irqrestore(&eng->lock, flags);
	if (!ret)
		return 0;
err_props:
	kfree(*props);
	*props = NULL;
	return ret;
}

/*
 * @start follows @last directly. Nothing follows U64_MAX: the address space
 * does not wrap, and a merge across its end would cover all of it.
 */
static bool viommu_adjacent(u64 last, u64 start)
{
	return last != U64_MAX && last + 1 == start;
}

/* The calling context, so that merging stays within one mapping call. */
static unsigned long viommu_caller_token(void)
{
	if (in_task())
		return (unsigned long)current;
	return ((raw_smp_processor_id() + 1UL) << 24) |
	       (preempt_count() & (NMI_MASK | HARDIRQ_MASK | SOFTIRQ_MASK)) | 1;
}

/* Submit early when too much is pending; does not wait for completion. */
static void viommu_limit_pending_locked(struct viommu_engine *eng,
					unsigned long *flags)
{
	if (eng->nr_pending < VIOMMU_MAX_PENDING)
		return;
	if (!viommu_submit_all_locked(eng, flags, VIOMMU_CAUSE_FULL))
		viommu_kick_locked(eng, flags);
}

/*
 * A MAP that overlaps a deferred UNMAP still pending (an IOVA reused before
 * the flush, which dma-iommu never does) must not overtake it: make the
 * next sync submit everything in order. The range that the deferred UNMAPs
 * span rules out most MAPs without a walk.
 */
static void viommu_check_deferred_conflict(struct viommu_engine *eng,
					   u32 domain_id, u64 iova, u64 last)
{
	struct virtio_iommu_req_unmap *unmap;
	struct viommu_req *req;

	if (!eng->nr_deferred || eng->deferred_conflict ||
	    last < eng->deferred_lo || iova > eng->deferred_hi)
		return;
	list_for_each_entry(req, &eng->deferred, node) {
		unmap = &req->buf.unmap;
		if (le32_to_cpu(unmap->domain) == domain_id &&
		    le64_to_cpu(unmap->virt_start) <= last &&
		    le64_to_cpu(unmap->virt_end) >= iova) {
			eng->deferred_conflict = true;
			return;
		}
	}
}

/**
 * viommu_queue_map() - queue a MAP request
 * @eng: the engine
 * @vdom: the domain, which must exist on the device
 * @iova: first address
 * @last: last address (inclusive)
 * @paddr: physical address of @iova
 * @flags: VIRTIO_IOMMU_MAP_F_* flags
 * @gen: generation of the mapping the request sends (viommu_mapping.gen)
 * @merged: NULL when the request must stay separate (map_batching is 0, or
 *	a replay of existing mappings); otherwise set when the range was
 *	appended to the previous pending MAP of the same caller instead of
 *	taking a request of its own
 * @replay: the caller is viommu_domain_replay(), under its map_lock: return
 *	-EAGAIN instead of waiting when no request slot is free, never submit
 *	early (which may wait for room in the queue), and leave a failure to
 *	the replay's collection
 *
 * The request reaches the device at the next sync. A failure is kept in
 * the domain and reported by viommu_domain_collect_failures().
 *
 * Return: 0, -EAGAIN (@replay), or a negative errno when no request slot
 * could be obtained.
 */
int viommu_queue_map(struct viommu_engine *eng, struct viommu_domain *vdom,
		     u64 iova, u64 last, phys_addr_t paddr, u32 flags,
		     u64 gen, bool *merged, bool replay)
{
	unsigned long token = merged ? viommu_caller_token() : 0;
	struct virtio_iommu_req_map *map;
	struct viommu_req *req;
	unsigned long irqflags;
	u64 size;

	spin_lock_irqsave(&eng->lock, irqflags);
	if (eng->broken) {
		spin_unlock_irqrestore(&eng->lock, irqflags);
		return -EIO;
	}
	viommu_check_deferred_conflict(eng, vdom->id, iova, last);
	req = list_empty(&eng->pending) ? NULL :
	      list_last_entry(&eng->pending, struct viommu_req, node);
	if (merged)
		*merged = false;
	/*
	 * Extending an earlier MAP would move the range ahead of the deferred
	 * UNMAPs queued since: not when one of them overlaps it.
	 */
	if (merged && req && !req->ext && !eng->deferred_conflict &&
	    req->buf.head.type == VIRTIO_IOMMU_T_MAP && req->vdomain == vdom &&
	    req->owner == token) {
		map = &req->buf.map;
		size = le64_to_cpu(map->virt_end) - le64_to_cpu(map->virt_start) + 1;
		if (viommu_adjacent(le64_to_cpu(map->virt_end), iova) &&
		    le64_to_cpu(map->phys_start) + size == paddr &&
		    le32_to_cpu(map->flags) == flags) {
			map->virt_end = cpu_to_le64(last);
			viommu_stat_add(eng, VIOMMU_STAT_MERGED_MAPS, 1);
			*merged = true;
			spin_unlock_irqrestore(&eng->lock, irqflags);
			return 0;
		}
	}
	if (replay) {
		viommu_reap_locked(eng);
		if (list_empty(&eng->free_list)) {
			spin_unlock_irqrestore(&eng->lock, irqflags);
			return -EAGAIN;
		}
	}
	req = viommu_get_slot_locked(eng, &irqflags);
	if (IS_ERR(req)) {
		spin_unlock_irqrestore(&eng->lock, irqflags);
		return PTR_ERR(req);
	}
	map = &req->buf.map;
	memset(map, 0, sizeof(*map));
	map->head.type = VIRTIO_IOMMU_T_MAP;
	map->domain = cpu_to_le32(vdom->id);
	map->virt_start = cpu_to_le64(iova);
	map->virt_end = cpu_to_le64(last);
	map->phys_start = cpu_to_le64(paddr);
	map->flags = cpu_to_le32(flags);
	req->out_len = sizeof(*map) - VIOMMU_TAIL_LEN;
	req->in_len = VIOMMU_TAIL_LEN;
	req->vdomain = vdom;
	req->owner = token;
	req->gen = gen;
	req->replay = replay;
	viommu_append_locked(eng, req);
	/*
	 * A caller that cannot wait (replay, under its map_lock with
	 * interrupts off) syncs by itself once the pool runs out.
	 */
	if (!replay)
		viommu_limit_pending_locked(eng, &irqflags);
	spin_unlock_irqrestore(&eng->lock, irqflags);
	return 0;
}

/* @req unmaps a range exactly adjacent to [iova, last]. */
static bool viommu_unmap_adjacent(struct viommu_req *req, u64 iova, u64 last)
{
	struct virtio_iommu_req_unmap *unmap = &req->buf.unmap;

	return viommu_adjacent(le64_to_cpu(unmap->virt_end), iova) ||
	       viommu_adjacent(last, le64_to_cpu(unmap->virt_start));
}

/*
 * Find a strict UNMAP of @domain_id on @pending exactly adjacent to
 * [iova, last] that can absorb it. It must not move ahead of a request of
 * the same domain queued after the UNMAP it would join, so the search
 * stops there.
 */
static struct viommu_req *viommu_find_strict_merge(struct viommu_engine *eng,
						   u32 domain_id, u64 iova,
						   u64 last)
{
	struct viommu_req *req;

	list_for_each_entry_reverse(req, &eng->pending, node) {
		if (req->ext || le32_to_cpu(req->buf.unmap.domain) != domain_id)
			continue;
		if (req->buf.head.type != VIRTIO_IOMMU_T_UNMAP)
			return NULL;
		if (viommu_unmap_adjacent(req, iova, last))
			return req;
	}
	return NULL;
}

/*
 * Find a deferred UNMAP of @domain_id exactly adjacent to [iova, last] that
 * can absorb it: one that ends just before @iova, or else one that starts
 * just after @last, each found in its table. A deferred UNMAP may move
 * ahead of the MAPs queued after it (see the top of this file), not ahead
 * of one that overlaps its range nor of another request of its domain
 * (ATTACH, DETACH): those are on @pending, which is short.
 */
static struct viommu_req *viommu_find_deferred_merge(struct viommu_engine *eng,
						     u32 domain_id, u64 iova,
						     u64 last)
{
	struct viommu_req *req, *found = NULL;

	hlist_for_each_entry(req, viommu_merge_bucket(eng->by_next, domain_id,
						      iova), by_next) {
		if (le32_to_cpu(req->buf.unmap.domain) == domain_id &&
		    viommu_adjacent(le64_to_cpu(req->buf.unmap.virt_end), iova)) {
			found = req;
			break;
		}
	}
	if (!found && last != U64_MAX) {
		hlist_for_each_entry(req, viommu_merge_bucket(eng->by_start,
							      domain_id,
							      last + 1),
				     by_start) {
			if (le32_to_cpu(req->buf.unmap.domain) == domain_id &&
			    le64_to_cpu(req->buf.unmap.virt_start) == last + 1) {
				found = req;
				break;
			}
		}
	}
	if (!found)
		return NULL;
	list_for_each_entry_reverse(req, &eng->pending, node) {
		if (req->qseq < found->qseq)
			break;
		if (req->ext || le32_to_cpu(req->buf.unmap.domain) != domain_id)
			continue;
		if (req->buf.head.type != VIRTIO_IOMMU_T_MAP ||
		    (le64_to_cpu(req->buf.map.virt_end) >= iova &&
		     le64_to_cpu(req->buf.map.virt_start) <= last))
			return NULL;
	}
	return found;
}

static void viommu_arm_timer_locked(struct viommu_engine *eng,
				    unsigned int ms)
{
	hrtimer_start(&eng->flush_timer,
		      ktime_add_ms(eng->oldest_deferred, ms),
		      HRTIMER_MODE_ABS_SOFT);
}

/**
 * viommu_queue_unmap() - queue an UNMAP request
 * @eng: the engine
 * @domain_id: domain on the device
 * @iova: first address, the start of a mapping
 * @last: last address (inclusive), the end of a mapping
 * @deferred: the caller does not sync (lazy domain): the request may wait
 *	for a flush, a map sync, a full queue or flush_timeout_ms, whichever
 *	comes first
 *
 * An UNMAP exactly adjacent to a pending one of the same domain extends it.
 *
 * Return: 0, or a negative errno when no request slot could be obtained
 * within the bounded wait: the device is then broken and has been reset
 * (within the bound of viommu_wait_blocked()) before this returns.
 */
int viommu_queue_unmap(struct viommu_engine *eng, u32 domain_id, u64 iova,
		       u64 last, bool deferred)
{
	struct virtio_iommu_req_unmap *unmap;
	struct viommu_req *req;
	unsigned long flags;
	unsigned int ms;

	spin_lock_irqsave(&eng->lock, flags);
	req = deferred ? viommu_find_deferred_merge(eng, domain_id, iova, last) :
			 viommu_find_strict_merge(eng, domain_id, iova, last);
	if (req) {
		unmap = &req->buf.unmap;
		if (deferred)
			viommu_unhash_deferred(req);
		if (iova < le64_to_cpu(unmap->virt_start))
			unmap->virt_start = cpu_to_le64(iova);
		else
			unmap->virt_end = cpu_to_le64(last);
		if (deferred)
			viommu_hash_deferred(eng, req);
		viommu_stat_add(eng, VIOMMU_STAT_MERGED_UNMAPS, 1);
	} else {
		req = viommu_get_slot_locked(eng, &flags);
		if (IS_ERR(req)) {
			viommu_break_locked(eng, "no request slot for an UNMAP");
			spin_unlock_irqrestore(&eng->lock, flags);
			viommu_wait_blocked(eng);
			return PTR_ERR(req);
		}
		unmap = &req->buf.unmap;
		memset(unmap, 0, sizeof(*unmap));
		unmap->head.type = VIRTIO_IOMMU_T_UNMAP;
		unmap->domain = cpu_to_le32(domain_id);
		unmap->virt_start = cpu_to_le64(iova);
		unmap->virt_end = cpu_to_le64(last);
		req->out_len = sizeof(*unmap) - VIOMMU_TAIL_LEN;
		req->in_len = VIOMMU_TAIL_LEN;
		req->deferred = deferred;
		viommu_append_locked(eng, req);
		if (deferred)
			viommu_hash_deferred(eng, req);
		if (deferred && !eng->nr_deferred++) {
			eng->oldest_deferred = ktime_get();
			eng->deferred_lo = iova;
			eng->deferred_hi = last;
			ms = READ_ONCE(eng->knobs.flush_timeout_ms);
			if (ms)
				viommu_arm_timer_locked(eng, ms);
		}
	}
	if (deferred) {
		eng->deferred_lo = min(eng->deferred_lo, iova);
		eng->deferred_hi = max(eng->deferred_hi, last);
	}
	if (deferred && !READ_ONCE(eng->knobs.flush_timeout_ms)) {
		if (!viommu_submit_all_locked(eng, &flags, VIOMMU_CAUSE_TIMER))
			viommu_kick_locked(eng, &flags);
	} else {
		viommu_limit_pending_locked(eng, &flags);
	}
	spin_unlock_irqrestore(&eng->lock, flags);
	return 0;
}

/**
 * viommu_domain_collect_failures() - report failed MAPs of a range
 * @eng: the engine
 * @vdom: the domain
 * @iova: first address of the range
 * @last: last address of the range
 * @replay: collect the failures of viommu_domain_replay()'s MAPs (the
 *	range is then the whole space) instead of those of mapping calls
 *
 * Call after a sync that covered the MAPs of the range. A failed MAP is
 * reported to one caller only, the one that created its mapping: the
 * range of a mapping call belongs to that call until its map sync, and the
 * replay's MAPs are told apart from those of a mapper running meanwhile.
 * A failure whose mapping is gone (unmapped without a map sync, when a
 * later piece of the call failed) or was sent again since (a replay) is
 * stale: it is dropped here, without being reported to anybody, so that
 * the next mapping of the same addresses does not inherit it.
 *
 * Return: 0 if no MAP of the range failed, otherwise -EIO.
 */
int viommu_domain_collect_failures(struct viommu_engine *eng,
				   struct viommu_domain *vdom,
				   u64 iova, u64 last, bool replay)
{
	struct viommu_req *req, *next;
	unsigned long flags;
	u64 start;
	int ret = 0;

	/* Filled under the engine lock by the reaper, ordered by our sync. */
	if (list_empty(&vdom->failed_maps))
		return 0;
	spin_lock_irqsave(&vdom->map_lock, flags);
	spin_lock(&eng->lock);
	list_for_each_entry_safe(req, next, &vdom->failed_maps, node) {
		start = le64_to_cpu(req->buf.map.virt_start);
		if (viommu_mapping_current(vdom, start, req->gen)) {
			if (req->replay != replay || start > last ||
			    le64_to_cpu(req->buf.map.virt_end) < iova)
				continue;
			ret = -EIO;
		}
		list_del(&req->node);
		viommu_release_locked(eng, req);
	}
	spin_unlock(&eng->lock);
	spin_unlock_irqrestore(&vdom->map_lock, flags);
	return ret;
}

/**
 * viommu_engine_forget_domain() - drop references to a domain being freed
 * @eng: the engine
 * @vdom: the domain
 *
 * Requests that never completed (the device stopped answering) may still
 * point at the domain; its failed MAPs not yet reported return to the pool.
 */
void viommu_engine_forget_domain(struct viommu_engine *eng,
				 struct viommu_domain *vdom)
{
	struct viommu_req *req, *next;
	unsigned long flags;

	spin_lock_irqsave(&eng->lock, flags);
	list_for_each_entry(req, &eng->inflight, node)
		if (req->vdomain == vdom)
			req->vdomain = NULL;
	list_for_each_entry(req, &eng->pending, node)
		if (req->vdomain == vdom)
			req->vdomain = NULL;
	/* Deferred UNMAPs have no vdomain. */
	list_for_each_entry_safe(req, next, &vdom->failed_maps, node) {
		list_del(&req->node);
		viommu_release_locked(eng, req);
	}
	spin_unlock_irqrestore(&eng->lock, flags);
}

/**
 * viommu_pending_unmaps() - deferred UNMAPs not yet given to the device
 * @eng: the engine
 * @age_us: age of the oldest one in microseconds (0 when none)
 *
 * Return: the number of deferred UNMAP requests waiting in the driver.
 */
unsigned int viommu_pending_unmaps(struct viommu_engine *eng, u64 *age_us)
{
	unsigned long flags;
	unsigned int nr;

	spin_lock_irqsave(&eng->lock, flags);
	nr = eng->nr_deferred;
	*age_us = nr ? ktime_us_delta(ktime_get(), eng->oldest_deferred) : 0;
	spin_unlock_irqrestore(&eng->lock, flags);
	return nr;
}

/**
 * viommu_engine_set_flush_timeout() - change flush_timeout_ms
 * @eng: the engine
 * @ms: new timeout; 0 submits deferred UNMAPs at once
 *
 * Takes effect immediately: UNMAPs already waiting get the new deadline,
 * counted from when the oldest of them was queued.
 */
void viommu_engine_set_flush_timeout(struct viommu_engine *eng,
				     unsigned int ms)
{
	unsigned long flags;

	spin_lock_irqsave(&eng->lock, flags);
	WRITE_ONCE(eng->knobs.flush_timeout_ms, ms);
	if (eng->nr_deferred) {
		if (!ms) {
			if (!viommu_submit_all_locked(eng, &flags,
						      VIOMMU_CAUSE_TIMER))
				viommu_kick_locked(eng, &flags);
		} else {
			viommu_arm_timer_locked(eng, ms);
		}
	}
	spin_unlock_irqrestore(&eng->lock, flags);
}

static enum hrtimer_restart viommu_flush_timer_fn(struct hrtimer *timer)
{
	struct viommu_engine *eng = container_of(timer, struct viommu_engine,
						 flush_timer);
	unsigned long flags;
	bool submit;

	spin_lock_irqsave(&eng->lock, flags);
	/*
	 * Nobody waits for these UNMAPs, so nobody would notice a lost
	 * notification: notify even if the queue says it is not needed.
	 * A softirq does not wait for room in a full queue: what does not
	 * fit is tried again shortly. A device that stops answering is
	 * caught by the next sync (a flush, at the latest dma-iommu's).
	 */
	submit = eng->nr_deferred && !eng->broken && !eng->frozen;
	if (submit) {
		viommu_submit_locked(eng, VIOMMU_CAUSE_TIMER);
		eng->force_kick = true;
		viommu_kick_locked(eng, &flags);
	}
	viommu_reap_locked(eng);
	if (submit && eng->nr_deferred)
		hrtimer_start(&eng->flush_timer,
			      ktime_add_us(ktime_get(), VIOMMU_REKICK_US),
			      HRTIMER_MODE_ABS_SOFT);
	spin_unlock_irqrestore(&eng->lock, flags);
	return HRTIMER_NORESTART;
}

/*
 * Drop the requests not handed to the device. Their effect is in the
 * driver's records (mappings, attachments), which restore sends again; a
 * caller still waiting for one gets -EBUSY and releases it.
 */
static void viommu_drop_pending_locked(struct viommu_engine *eng)
{
	struct viommu_req *req, *next;

	list_for_each_entry(req, &eng->deferred, node)
		viommu_unhash_deferred(req);
	list_splice_tail_init(&eng->deferred, &eng->pending);
	list_for_each_entry_safe(req, next, &eng->pending, node) {
		list_del_init(&req->node);
		if (req->waited && !req->abandoned) {
			req->done = true;
			req->err = -EBUSY;
		} else {
			viommu_release_locked(eng, req);
		}
	}
	eng->nr_pending = 0;
	eng->nr_deferred = 0;
	eng->deferred_conflict = false;
}

/**
 * viommu_engine_freeze() - stop using the queue, before a device reset
 * @eng: the engine, drained by the caller if the device still answers
 *
 * From now on nothing reaches the queue: requests queued meanwhile stay in
 * the driver and are dropped by viommu_engine_thaw(), a wait for a request
 * not yet completed ends with -EBUSY, a sync with nothing in flight
 * returns 0. Requests not yet submitted are dropped. Knobs and counters
 * are kept.
 */
void viommu_engine_freeze(struct viommu_engine *eng)
{
	unsigned long flags;

	spin_lock_irqsave(&eng->lock, flags);
	eng->frozen = true;
	viommu_drop_pending_locked(eng);
	spin_unlock_irqrestore(&eng->lock, flags);
	hrtimer_cancel(&eng->flush_timer);
}

/**
 * viommu_engine_stopped() - the device was reset: forget what it held
 * @eng: a frozen engine
 *
 * Requests in flight will never complete: those not completed yet end with
 * -EBUSY. Returns once no CPU polls the queue with the engine lock
 * released, so that the caller may free the queue. May sleep.
 */
void viommu_engine_stopped(struct viommu_engine *eng)
{
	struct viommu_req *req, *next;
	unsigned long flags;

	spin_lock_irqsave(&eng->lock, flags);
	WARN_ON(!eng->frozen);
	list_for_each_entry_safe(req, next, &eng->inflight, node) {
		list_del_init(&req->node);
		if (!req->done) {
			req->done = true;
			req->err = -EBUSY;
		}
		if (!req->waited || req->abandoned)
			viommu_release_locked(eng, req);
	}
	eng->done_seq = eng->submit_seq;
	/*
	 * Pollers see the engine frozen when they retake the lock and leave.
	 * Sleep meanwhile: one of them may be a task preempted on this CPU.
	 */
	while (eng->outside || eng->kicking) {
		spin_unlock_irqrestore(&eng->lock, flags);
		usleep_range(10, 100);
		spin_lock_irqsave(&eng->lock, flags);
	}
	spin_unlock_irqrestore(&eng->lock, flags);
}

/**
 * viommu_engine_thaw() - use a new queue after a device reset
 * @eng: a stopped engine
 * @queue: the new argument of the engine's queue operations
 *
 * Requests queued while the engine was frozen are dropped, as by
 * viommu_engine_freeze().
 */
void viommu_engine_thaw(struct viommu_engine *eng, void *queue)
{
	unsigned long flags;

	spin_lock_irqsave(&eng->lock, flags);
	viommu_drop_pending_locked(eng);
	WARN_ON(!list_empty(&eng->inflight));
	eng->queue = queue;
	eng->kick_again = false;
	eng->force_kick = false;
	eng->frozen = false;
	spin_unlock_irqrestore(&eng->lock, flags);
}

/**
 * viommu_engine_init() - set up a request engine
 * @eng: the engine, zeroed by the caller except for its knobs
 * @dev: device for messages
 * @ops: queue operations
 * @queue: argument of @ops
 * @nr_slots: size of the request pool
 *
 * Return: 0 or -ENOMEM.
 */
int viommu_engine_init(struct viommu_engine *eng, struct device *dev,
		       const struct viommu_queue_ops *ops, void *queue,
		       unsigned int nr_slots)
{
	unsigned int i;

	spin_lock_init(&eng->lock);
	INIT_LIST_HEAD(&eng->free_list);
	INIT_LIST_HEAD(&eng->pending);
	INIT_LIST_HEAD(&eng->deferred);
	INIT_LIST_HEAD(&eng->inflight);
	eng->dev = dev;
	eng->ops = ops;
	eng->queue = queue;
	eng->timeout_ns = (u64)VIOMMU_SYNC_TIMEOUT_MS * NSEC_PER_MSEC;
	eng->slots = kcalloc(nr_slots, sizeof(*eng->slots), GFP_KERNEL);
	eng->stats = alloc_percpu(struct viommu_stats);
	if (!eng->slots || !eng->stats) {
		kfree(eng->slots);
		free_percpu(eng->stats);
		eng->slots = NULL;
		eng->stats = NULL;
		return -ENOMEM;
	}
	for (i = 0; i < nr_slots; i++)
		list_add_tail(&eng->slots[i].node, &eng->free_list);
	sg_init_table(&eng->sg[0], 1);
	sg_init_table(&eng->sg[1], 1);
	viommu_hrtimer_setup(&eng->flush_timer, viommu_flush_timer_fn,
			     CLOCK_MONOTONIC, HRTIMER_MODE_ABS_SOFT);
	INIT_WORK(&eng->block_work, viommu_block_work_fn);
	return 0;
}

/**
 * viommu_engine_stop() - wait for a pending reset of a broken device
 * @eng: the engine
 *
 * Call before resetting the device for removal, so that the reset of a
 * device declared broken does not run after it.
 */
void viommu_engine_stop(struct viommu_engine *eng)
{
	flush_work(&eng->block_work);
}

/**
 * viommu_engine_destroy() - free an engine
 * @eng: the engine
 *
 * The device must have been reset, so that it no longer owns any request.
 */
void viommu_engine_destroy(struct viommu_engine *eng)
{
	struct viommu_req *req, *next;

	cancel_work_sync(&eng->block_work);
	hrtimer_cancel(&eng->flush_timer);
	/* Deferred UNMAPs have no extension. */
	list_for_each_entry_safe(req, next, &eng->pending, node)
		kfree(req->ext);
	list_for_each_entry_safe(req, next, &eng->inflight, node)
		kfree(req->ext);
	kfree(eng->slots);
	free_percpu(eng->stats);
	eng->slots = NULL;
	eng->stats = NULL;
}
