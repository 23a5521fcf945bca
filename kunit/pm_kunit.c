// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq KUnit: suspend and hibernation (pm.c). The production
 * freeze and restore run against the fake device through a transport whose
 * reset makes the fake forget every domain, attachment, mapping and request,
 * as QEMU's virtio-iommu does on an x86 wake-up. Each queue the engine is
 * given is a new generation; once freeze frees it, any use is counted.
 */

#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/kthread.h>

#include "viommu_fake.h"

#define RW		(IOMMU_READ | IOMMU_WRITE)
#define PM_MAX_QUEUES	64
#define PM_CYCLES	10
#define PM_TEST_TIMEOUT_MS	50

/* One generation of the request queue: the fake behind the engine's ops. */
struct pm_queue {
	struct vfake	*fake;
	bool		freed;
	atomic_t	used_after_free;
};

struct pm_state {
	struct vfake_env	*env;
	struct pm_queue		*queues[PM_MAX_QUEUES];
	unsigned int		nr_queues;
	unsigned int		resets;
	unsigned int		readies;
	unsigned int		blocks;
	unsigned int		unmaps_at_reset;
	int			find_error;
};

/* The test running now; the suites run one test at a time. */
static struct pm_state *pm_cur;

static bool pm_q_freed(void *queue)
{
	struct pm_queue *q = queue;

	if (!READ_ONCE(q->freed))
		return false;
	atomic_inc(&q->used_after_free);
	return true;
}

static int pm_q_add(void *queue, struct scatterlist *out,
		    struct scatterlist *in, void *token)
{
	if (pm_q_freed(queue))
		return -EIO;
	return vfake_queue_ops.add(((struct pm_queue *)queue)->fake, out, in,
				   token);
}

static bool pm_q_kick_prepare(void *queue)
{
	if (pm_q_freed(queue))
		return false;
	return vfake_queue_ops.kick_prepare(((struct pm_queue *)queue)->fake);
}

static void pm_q_notify(void *queue)
{
	if (!pm_q_freed(queue))
		vfake_queue_ops.notify(((struct pm_queue *)queue)->fake);
}

static void *pm_q_get_used(void *queue, unsigned int *len)
{
	if (pm_q_freed(queue))
		return NULL;
	return vfake_queue_ops.get_used(((struct pm_queue *)queue)->fake, len);
}

static unsigned int pm_q_free_slots(void *queue)
{
	if (pm_q_freed(queue))
		return 0;
	return vfake_queue_ops.free_slots(((struct pm_queue *)queue)->fake);
}

static void pm_q_block(void *queue)
{
	if (!pm_q_freed(queue))
		vfake_queue_ops.block(((struct pm_queue *)queue)->fake);
}

static const struct viommu_queue_ops pm_queue_ops = {
	.block		= pm_q_block,
	.add		= pm_q_add,
	.kick_prepare	= pm_q_kick_prepare,
	.notify		= pm_q_notify,
	.get_used	= pm_q_get_used,
	.free_slots	= pm_q_free_slots,
};

static struct pm_queue *pm_new_queue(struct pm_state *st)
{
	struct kunit *test = st->env->test;
	struct pm_queue *q;

	KUNIT_ASSERT_LT(test, st->nr_queues, PM_MAX_QUEUES);
	/* Freed by pm_state_clear(), after the environment's teardown. */
	q = kzalloc(sizeof(*q), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, q);
	q->fake = st->env->fake;
	atomic_set(&q->used_after_free, 0);
	st->queues[st->nr_queues++] = q;
	return q;
}

/*
 * A device reset, as far as the fake is concerned (vfake_forget_locked()),
 * with the notification state of the gone queue cleared too.
 */
static void pm_fake_reset(struct vfake *fake)
{
	unsigned long flags;

	spin_lock_irqsave(&fake->lock, flags);
	vfake_forget_locked(fake);
	fake->added_since_kick = 0;
	fake->polls_left = 0;
	spin_unlock_irqrestore(&fake->lock, flags);
}

/* The transport of the fake. */

static void pm_t_reset(struct viommu_dev *viommu)
{
	pm_cur->unmaps_at_reset = vfake_count_type(pm_cur->env->fake,
						   VIRTIO_IOMMU_T_UNMAP);
	pm_fake_reset(pm_cur->env->fake);
	pm_cur->resets++;
}

static void pm_t_del_queues(struct viommu_dev *viommu)
{
	WRITE_ONCE(pm_cur->queues[pm_cur->nr_queues - 1]->freed, true);
}

static int pm_t_find_queues(struct viommu_dev *viommu, void **queue)
{
	if (pm_cur->find_error)
		return pm_cur->find_error;
	*queue = pm_new_queue(pm_cur);
	return 0;
}

static void pm_t_ready(struct viommu_dev *viommu)
{
	pm_cur->readies++;
}

static void pm_t_block(struct viommu_dev *viommu)
{
	pm_cur->blocks++;
}

static const struct viommu_pm_ops pm_transport = {
	.block		= pm_t_block,
	.reset		= pm_t_reset,
	.del_queues	= pm_t_del_queues,
	.find_queues	= pm_t_find_queues,
	.ready		= pm_t_ready,
};

static void pm_state_clear(void *data)
{
	struct pm_state *st = data;
	unsigned int i;

	for (i = 0; i < st->nr_queues; i++)
		kfree(st->queues[i]);
	pm_cur = NULL;
}

/* The default environment, its engine on a first queue generation. */
static struct vfake_env *pm_env(struct kunit *test)
{
	struct vfake_env *env;
	struct pm_state *st;

	/*
	 * Registered before the environment, so run after its teardown,
	 * which still sends requests through the last queue.
	 */
	st = kunit_kzalloc(test, sizeof(*st), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, st);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, pm_state_clear, st), 0);
	env = vfake_env_default(test);
	st->env = env;
	pm_cur = st;
	/* The engine is idle: give it the first generation. */
	env->viommu->engine.ops = &pm_queue_ops;
	env->viommu->engine.queue = pm_new_queue(st);
	return env;
}

static int pm_freeze(struct vfake_env *env)
{
	return viommu_pm_freeze(env->viommu, &pm_transport);
}

static int pm_restore(struct vfake_env *env)
{
	return viommu_pm_restore(env->viommu, &pm_transport);
}

/* No queue was used after freeze freed it. */
static void pm_expect_queues_unused(struct kunit *test)
{
	unsigned int i;

	for (i = 0; i < pm_cur->nr_queues; i++)
		KUNIT_EXPECT_EQ_MSG(test, atomic_read(&pm_cur->queues[i]->used_after_free),
				    0, "queue generation %u used after free", i);
}

static void pm_expect_attached(struct kunit *test, struct vfake *fake, u32 id,
			       u32 domain)
{
	KUNIT_EXPECT_EQ_MSG(test, vfake_endpoint_domain(fake, id), domain,
			    "endpoint %u", id);
}

/*
 * Every kind of attachment comes back after a reset: two endpoints sharing
 * a lazy domain, one in a strict domain, identity, blocked, and one never
 * attached. Each paging domain is replayed once, with exactly the mappings
 * the driver holds; a deferred UNMAP reaches the device before the reset;
 * a domain without endpoints stays off the device; knobs and counters are
 * kept; no queue is touched after it was freed.
 */
static void viommu_pm_restore_reattaches_and_replays(struct kunit *test)
{
	struct vfake_env *env = pm_env(test);
	struct viommu_dev *viommu = env->viommu;
	struct viommu_engine *eng = &viommu->engine;
	struct vfake *fake = env->fake;
	struct viommu_endpoint *ep[7];
	struct viommu_domain *a, *b, *c;
	unsigned int i, maps, attaches, unmaps;
	u64 req_map, age;

	for (i = 1; i <= 6; i++)
		ep[i] = vfake_env_simple_endpoint(env, i);
	a = vfake_env_domain(env, ep[1], IOMMU_DOMAIN_DMA_FQ);
	b = vfake_env_domain(env, ep[3], IOMMU_DOMAIN_DMA);
	c = vfake_env_domain(env, ep[6], IOMMU_DOMAIN_UNMANAGED);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&a->domain, ep[1]->dev), 0);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&a->domain, ep[2]->dev), 0);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&b->domain, ep[3]->dev), 0);
	KUNIT_ASSERT_EQ(test, viommu_attach_identity(&viommu_identity_domain,
						     ep[4]->dev), 0);
	KUNIT_ASSERT_EQ(test, viommu_attach_blocked(&viommu_blocked_domain,
						    ep[5]->dev), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(a, SZ_1M, SZ_1G, SZ_16K, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(a, SZ_2M, SZ_1G + SZ_1M, SZ_4K, IOMMU_READ), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(a, SZ_4M, SZ_1G + SZ_2M, SZ_8K, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(b, SZ_1M, SZ_2G, SZ_2M, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(b, SZ_1G, SZ_2G + SZ_4M, SZ_4K, RW), 0);
	/* Mapped while c has no endpoint: not on the device. */
	KUNIT_ASSERT_EQ(test, vfake_map_sync(c, SZ_1M, SZ_4G, SZ_4K, RW), 0);

	/* Non-default knobs, and a lazy UNMAP left waiting in the driver. */
	viommu_engine_set_flush_timeout(eng, 1000);
	WRITE_ONCE(eng->knobs.map_batching, 0);
	WRITE_ONCE(eng->knobs.shadow_on_flush, 1);
	KUNIT_ASSERT_EQ(test, vfake_unmap(a, SZ_4M, SZ_8K, true), SZ_8K);
	KUNIT_ASSERT_EQ(test, viommu_pending_unmaps(eng, &age), 1);
	unmaps = vfake_count_type(fake, VIRTIO_IOMMU_T_UNMAP);
	req_map = viommu_stat_read(eng, VIOMMU_STAT_REQ_MAP);

	KUNIT_ASSERT_EQ(test, pm_freeze(env), 0);
	KUNIT_EXPECT_EQ(test, pm_cur->resets, 1);
	/* The deferred UNMAP reached the device before the reset. */
	KUNIT_EXPECT_EQ(test, pm_cur->unmaps_at_reset, unmaps + 1);
	KUNIT_EXPECT_EQ(test, viommu_pending_unmaps(eng, &age), 0);
	KUNIT_EXPECT_TRUE(test, eng->frozen);
	KUNIT_EXPECT_FALSE(test, a->live);
	KUNIT_EXPECT_FALSE(test, b->live);
	KUNIT_EXPECT_NULL(test, vfake_domain(fake, a->id));
	pm_expect_attached(test, fake, 1, 0);
	KUNIT_EXPECT_TRUE(test, pm_cur->queues[0]->freed);

	maps = vfake_count_type(fake, VIRTIO_IOMMU_T_MAP);
	attaches = vfake_count_type(fake, VIRTIO_IOMMU_T_ATTACH);
	KUNIT_ASSERT_EQ(test, pm_restore(env), 0);
	KUNIT_EXPECT_FALSE(test, eng->frozen);
	KUNIT_EXPECT_EQ(test, pm_cur->readies, 1);
	pm_expect_attached(test, fake, 1, a->id);
	pm_expect_attached(test, fake, 2, a->id);
	pm_expect_attached(test, fake, 3, b->id);
	pm_expect_attached(test, fake, 4, viommu->identity_id);
	KUNIT_ASSERT_NOT_NULL(test, vfake_domain(fake, viommu->identity_id));
	KUNIT_EXPECT_TRUE(test, vfake_domain(fake, viommu->identity_id)->bypass);
	pm_expect_attached(test, fake, 5, viommu->blocking_id);
	KUNIT_ASSERT_NOT_NULL(test, vfake_domain(fake, viommu->blocking_id));
	KUNIT_EXPECT_FALSE(test, vfake_domain(fake, viommu->blocking_id)->bypass);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(fake, viommu->blocking_id), 0);
	pm_expect_attached(test, fake, 6, 0);
	/* One ATTACH per attached endpoint, one MAP per mapping: no more. */
	KUNIT_EXPECT_EQ(test, vfake_count_type(fake, VIRTIO_IOMMU_T_ATTACH),
			attaches + 5);
	KUNIT_EXPECT_EQ(test, vfake_count_type(fake, VIRTIO_IOMMU_T_MAP), maps + 4);
	KUNIT_EXPECT_TRUE(test, a->live);
	KUNIT_EXPECT_TRUE(test, b->live);
	KUNIT_EXPECT_FALSE(test, c->live);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(fake, a->id), 2);
	vfake_expect_same_mappings(test, fake, a);
	vfake_expect_same_mappings(test, fake, b);
	KUNIT_EXPECT_NULL(test, vfake_domain(fake, c->id));
	/* Knobs and counters survive. */
	KUNIT_EXPECT_EQ(test, READ_ONCE(eng->knobs.flush_timeout_ms), 1000);
	KUNIT_EXPECT_EQ(test, READ_ONCE(eng->knobs.map_batching), 0);
	KUNIT_EXPECT_EQ(test, READ_ONCE(eng->knobs.shadow_on_flush), 1);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_REQ_MAP), req_map + 4);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_ERR_TIMEOUT), 0);

	/* The instance works on: map, unmap, and c replayed on its attach. */
	KUNIT_EXPECT_EQ(test, vfake_map_sync(a, SZ_8M, SZ_1G + SZ_8M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_unmap(b, SZ_1G, SZ_4K, false), SZ_4K);
	KUNIT_EXPECT_EQ(test, viommu_attach_paging(&c->domain, ep[6]->dev), 0);
	vfake_expect_same_mappings(test, fake, a);
	vfake_expect_same_mappings(test, fake, b);
	vfake_expect_same_mappings(test, fake, c);
	KUNIT_EXPECT_EQ(test, vfake_free_req_slots(eng), VIOMMU_NR_SLOTS);
	pm_expect_queues_unused(test);
	vfake_expect_no_violations(test, fake);
}

/*
 * Between freeze and restore: map, unmap, syncs and knob writes return at
 * once without reaching the device; ATTACH and PROBE fail with -EBUSY and
 * change nothing; an endpoint released meanwhile is not re-attached.
 * Restore then gives the device what the driver holds.
 */
static void viommu_pm_calls_while_frozen(struct kunit *test)
{
	struct vfake_env *env = pm_env(test);
	struct viommu_dev *viommu = env->viommu;
	struct viommu_engine *eng = &viommu->engine;
	struct vfake *fake = env->fake;
	struct viommu_endpoint *ep1, *ep2, *ep3, *ep;
	struct viommu_domain *a, *b;
	unsigned int adds;
	u32 id = 7;

	ep1 = vfake_env_simple_endpoint(env, 1);
	ep2 = vfake_env_simple_endpoint(env, 2);
	ep3 = vfake_env_simple_endpoint(env, 3);
	a = vfake_env_domain(env, ep1, IOMMU_DOMAIN_DMA_FQ);
	b = vfake_env_domain(env, ep3, IOMMU_DOMAIN_DMA);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&a->domain, ep1->dev), 0);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&b->domain, ep3->dev), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(a, SZ_1M, SZ_1G, SZ_8K, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(a, SZ_2M, SZ_1G + SZ_1M, SZ_8K, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(b, SZ_1M, SZ_2G, SZ_4K, RW), 0);
	KUNIT_ASSERT_EQ(test, pm_freeze(env), 0);

	adds = fake->nr_adds;
	KUNIT_EXPECT_EQ(test, vfake_map_sync(a, SZ_4M, SZ_1G + SZ_4M, SZ_16K, RW), 0);
	KUNIT_EXPECT_EQ(test, viommu_paging_ops.iova_to_phys(&a->domain, SZ_4M + 8),
			(phys_addr_t)SZ_1G + SZ_4M + 8);
	KUNIT_EXPECT_EQ(test, vfake_unmap(a, SZ_1M, SZ_8K, false), SZ_8K);
	KUNIT_EXPECT_EQ(test, vfake_unmap(a, SZ_2M, SZ_8K, true), SZ_8K);
	viommu_paging_ops.flush_iotlb_all(&a->domain);
	KUNIT_EXPECT_EQ(test, viommu_sync(eng, VIOMMU_CAUSE_SYNC), 0);
	viommu_engine_set_flush_timeout(eng, 0);
	viommu_engine_set_flush_timeout(eng, 10);
	/* Requests that need the device's answer fail and change nothing. */
	KUNIT_EXPECT_EQ(test, viommu_attach_paging(&a->domain, ep2->dev), -EBUSY);
	KUNIT_EXPECT_EQ(test, ep2->attached, VIOMMU_DETACHED);
	KUNIT_EXPECT_EQ(test, viommu_attach_identity(&viommu_identity_domain,
						     ep1->dev), -EBUSY);
	KUNIT_EXPECT_EQ(test, ep1->attached, VIOMMU_ATTACHED_PAGING);
	KUNIT_EXPECT_PTR_EQ(test, ep1->vdomain, a);
	vfake_add_endpoint(fake, id, NULL, 0);
	ep = vfake_env_try_endpoint(env, &id, 1, false, &env->fwnode);
	KUNIT_EXPECT_EQ(test, PTR_ERR_OR_ZERO(ep), -EBUSY);
	/* Released while frozen: its DETACH fails, it is forgotten. */
	vfake_env_release_endpoint(env, ep3);
	KUNIT_EXPECT_EQ(test, b->nr_endpoints, 0);
	/* Nothing reached the device, nothing waited for it. */
	KUNIT_EXPECT_EQ(test, fake->nr_adds, adds);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_ERR_TIMEOUT), 0);

	KUNIT_ASSERT_EQ(test, pm_restore(env), 0);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(fake, a->id), 1);
	vfake_expect_same_mappings(test, fake, a);
	KUNIT_EXPECT_NULL(test, vfake_domain(fake, b->id));
	KUNIT_EXPECT_FALSE(test, b->live);
	pm_expect_attached(test, fake, 3, 0);
	/* The refused calls now succeed. */
	KUNIT_EXPECT_EQ(test, viommu_attach_paging(&a->domain, ep2->dev), 0);
	pm_expect_attached(test, fake, 2, a->id);
	ep = vfake_env_try_endpoint(env, &id, 1, false, &env->fwnode);
	KUNIT_EXPECT_FALSE(test, IS_ERR(ep));
	KUNIT_EXPECT_EQ(test, vfake_free_req_slots(eng), VIOMMU_NR_SLOTS);
	pm_expect_queues_unused(test);
	vfake_expect_no_violations(test, fake);
}

/*
 * A device that stopped answering before freeze is declared broken by the
 * bounded wait and reset with every endpoint blocked. It stays broken across
 * suspend: restore blocks it again (the wake-up's reset may have let
 * unattached endpoints bypass it), attaches nothing, replays nothing, and
 * keeps the engine frozen, so that later calls fail at once.
 */
static void viommu_pm_freeze_silent_device(struct kunit *test)
{
	struct vfake_env *env = pm_env(test);
	struct viommu_engine *eng = &env->viommu->engine;
	struct vfake *fake = env->fake;
	struct viommu_endpoint *ep = vfake_env_simple_endpoint(env, 1);
	struct viommu_domain *a = vfake_env_domain(env, ep, IOMMU_DOMAIN_DMA_FQ);
	unsigned int adds;

	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&a->domain, ep->dev), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(a, SZ_1M, SZ_1G, SZ_8K, RW), 0);
	viommu_engine_set_flush_timeout(eng, 1000);
	KUNIT_ASSERT_EQ(test, vfake_unmap(a, SZ_1M, SZ_8K, true), SZ_8K);
	eng->timeout_ns = PM_TEST_TIMEOUT_MS * NSEC_PER_MSEC;
	vfake_set_mode(fake, VFAKE_SILENT, 0);

	KUNIT_ASSERT_EQ(test, pm_freeze(env), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_ERR_TIMEOUT), 1);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_DEVICE_BROKEN), 1);
	/* After the reset the device would answer again: it is not asked. */
	vfake_set_mode(fake, VFAKE_IMMEDIATE, 0);
	adds = fake->nr_adds;
	KUNIT_EXPECT_EQ(test, pm_restore(env), -EIO);
	KUNIT_EXPECT_EQ(test, pm_cur->blocks, 1);
	KUNIT_EXPECT_TRUE(test, eng->frozen);
	KUNIT_EXPECT_EQ(test, vfake_endpoint_domain(fake, 1), 0);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(fake, a->id), 0);
	KUNIT_EXPECT_LT(test, vfake_map_sync(a, SZ_4M, SZ_1G + SZ_4M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, fake->nr_adds, adds);
	pm_expect_queues_unused(test);
}

/*
 * A device whose configuration changed across the reset is not used: restore
 * fails, the driver keeps its old view, and calls fail instead of waiting.
 * Restored again with the original configuration, it comes back. A restore
 * whose queues cannot be created fails the same way.
 */
static void viommu_pm_restore_refused(struct kunit *test)
{
	struct vfake_env *env = pm_env(test);
	struct viommu_dev *viommu = env->viommu;
	struct viommu_engine *eng = &viommu->engine;
	struct vfake *fake = env->fake;
	struct viommu_endpoint *ep1 = vfake_env_simple_endpoint(env, 1);
	struct viommu_endpoint *ep2 = vfake_env_simple_endpoint(env, 2);
	struct viommu_domain *a = vfake_env_domain(env, ep1, IOMMU_DOMAIN_DMA);
	__le64 mask = fake->config.page_size_mask;
	u64 pgsizes = viommu->pgsize_bitmap;

	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&a->domain, ep1->dev), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(a, SZ_1M, SZ_1G, SZ_8K, RW), 0);
	KUNIT_ASSERT_EQ(test, pm_freeze(env), 0);

	fake->config.page_size_mask = cpu_to_le64(SZ_4K | SZ_2M);
	KUNIT_EXPECT_EQ(test, pm_restore(env), -EINVAL);
	KUNIT_EXPECT_TRUE(test, eng->frozen);
	KUNIT_EXPECT_EQ(test, viommu->pgsize_bitmap, pgsizes);
	KUNIT_EXPECT_EQ(test, viommu_attach_paging(&a->domain, ep2->dev), -EBUSY);
	KUNIT_EXPECT_EQ(test, vfake_map_sync(a, SZ_2M, SZ_1G + SZ_2M, SZ_4K, RW), 0);

	fake->config.page_size_mask = mask;
	pm_cur->find_error = -ENOMEM;
	KUNIT_EXPECT_EQ(test, pm_restore(env), -ENOMEM);
	KUNIT_EXPECT_TRUE(test, eng->frozen);
	KUNIT_EXPECT_EQ(test, fake->nr_mappings, 0);

	pm_cur->find_error = 0;
	KUNIT_ASSERT_EQ(test, pm_restore(env), 0);
	pm_expect_attached(test, fake, 1, a->id);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(fake, a->id), 2);
	vfake_expect_same_mappings(test, fake, a);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_ERR_TIMEOUT), 0);
	pm_expect_queues_unused(test);
	vfake_expect_no_violations(test, fake);
}

/* Callers that keep running while the instance is frozen and restored. */
struct pm_worker {
	struct vfake_env	*env;
	struct viommu_domain	*vdom;
	struct viommu_endpoint	*ep;
	struct viommu_domain	*other;
	bool			stop;
	unsigned int		calls;
	unsigned int		refused;
	int			err;
	struct completion	done;
};

/* What dma-iommu's flush queue timer and strict unmappers do. */
static int pm_flusher_fn(void *data)
{
	struct pm_worker *w = data;
	int ret;

	while (!READ_ONCE(w->stop)) {
		viommu_paging_ops.flush_iotlb_all(&w->vdom->domain);
		ret = viommu_sync(&w->env->viommu->engine, VIOMMU_CAUSE_SYNC);
		if (ret == -EBUSY)
			w->refused++;
		else if (ret && !w->err)
			w->err = ret;
		w->calls++;
		cond_resched();
	}
	complete(&w->done);
	return 0;
}

/* Unmaps, lazily and strictly, ranges mapped before the test started. */
static int pm_unmapper_fn(void *data)
{
	struct pm_worker *w = data;
	unsigned int i;

	for (i = 0; i < 256 && !READ_ONCE(w->stop); i++) {
		if (vfake_unmap(w->vdom, SZ_1G + (u64)i * SZ_64K, SZ_4K, i & 1) != SZ_4K &&
		    !w->err)
			w->err = -ERANGE;
		w->calls++;
		usleep_range(20, 50);
	}
	complete(&w->done);
	return 0;
}

/* Moves an endpoint between a paging domain and identity. */
static int pm_attacher_fn(void *data)
{
	struct pm_worker *w = data;
	struct device *dev = w->ep->dev;
	int ret;

	while (!READ_ONCE(w->stop)) {
		if (w->calls & 1)
			ret = viommu_attach_paging(&w->other->domain, dev);
		else
			ret = viommu_attach_identity(&viommu_identity_domain, dev);
		if (ret == -EBUSY)
			w->refused++;
		else if (ret && !w->err)
			w->err = ret;
		w->calls++;
		usleep_range(20, 50);
	}
	complete(&w->done);
	return 0;
}

static int (* const pm_worker_fns[])(void *) = {
	pm_flusher_fn, pm_unmapper_fn, pm_attacher_fn,
};

/*
 * Freeze and restore again and again while other threads flush, unmap and
 * move an endpoint between domains: every call returns (succeeds, or fails
 * with -EBUSY while frozen), the engine never waits out its timeout, no
 * freed queue is touched, and at the end the device holds exactly what the
 * driver holds.
 */
static void viommu_pm_transition_under_load(struct kunit *test)
{
	struct vfake_env *env = pm_env(test);
	struct viommu_engine *eng = &env->viommu->engine;
	struct vfake *fake = env->fake;
	struct viommu_endpoint *ep1 = vfake_env_simple_endpoint(env, 1);
	struct viommu_endpoint *ep2 = vfake_env_simple_endpoint(env, 2);
	struct viommu_domain *a = vfake_env_domain(env, ep1, IOMMU_DOMAIN_DMA_FQ);
	struct viommu_domain *b = vfake_env_domain(env, ep2, IOMMU_DOMAIN_DMA);
	struct pm_worker *w;
	struct task_struct *t;
	unsigned int i, cycle;
	u32 want;

	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&a->domain, ep1->dev), 0);
	for (i = 0; i < 256; i++)
		KUNIT_ASSERT_EQ(test, vfake_map_sync(a, SZ_1G + (u64)i * SZ_64K,
						     SZ_4G + (u64)i * SZ_4K, SZ_4K, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(b, SZ_1M, SZ_2G, SZ_8K, RW), 0);
	w = kunit_kcalloc(test, ARRAY_SIZE(pm_worker_fns), sizeof(*w), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, w);
	for (i = 0; i < ARRAY_SIZE(pm_worker_fns); i++) {
		w[i].env = env;
		w[i].vdom = a;
		w[i].ep = ep2;
		w[i].other = b;
		init_completion(&w[i].done);
	}
	for (i = 0; i < ARRAY_SIZE(pm_worker_fns); i++) {
		t = kthread_run(pm_worker_fns[i], &w[i], "viommu-pm-%u", i);
		KUNIT_ASSERT_FALSE(test, IS_ERR(t));
	}
	for (cycle = 0; cycle < PM_CYCLES; cycle++) {
		usleep_range(500, 1000);
		KUNIT_EXPECT_EQ(test, pm_freeze(env), 0);
		usleep_range(200, 400);
		KUNIT_EXPECT_EQ(test, pm_restore(env), 0);
	}
	for (i = 0; i < ARRAY_SIZE(pm_worker_fns); i++)
		WRITE_ONCE(w[i].stop, true);
	for (i = 0; i < ARRAY_SIZE(pm_worker_fns); i++)
		wait_for_completion(&w[i].done);

	for (i = 0; i < ARRAY_SIZE(pm_worker_fns); i++)
		KUNIT_EXPECT_EQ_MSG(test, w[i].err, 0, "worker %u (%u calls, %u refused)",
				    i, w[i].calls, w[i].refused);
	KUNIT_EXPECT_EQ(test, pm_cur->resets, PM_CYCLES);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_ERR_TIMEOUT), 0);
	viommu_paging_ops.flush_iotlb_all(&a->domain);
	vfake_expect_same_mappings(test, fake, a);
	/* The device and the driver agree on where the moving endpoint is. */
	switch (ep2->attached) {
	case VIOMMU_ATTACHED_PAGING:
		want = b->id;
		break;
	case VIOMMU_ATTACHED_IDENTITY:
		want = env->viommu->identity_id;
		break;
	default:
		want = 0;
		break;
	}
	pm_expect_attached(test, fake, 2, want);
	if (ep2->attached == VIOMMU_ATTACHED_PAGING)
		vfake_expect_same_mappings(test, fake, b);
	KUNIT_EXPECT_EQ(test, vfake_free_req_slots(eng), VIOMMU_NR_SLOTS);
	pm_expect_queues_unused(test);
	vfake_expect_no_violations(test, fake);
	kunit_info(test, "%u cycles; flusher %u calls (%u refused), unmapper %u, attacher %u (%u refused)\n",
		   PM_CYCLES, w[0].calls, w[0].refused, w[1].calls, w[2].calls,
		   w[2].refused);
}

static struct kunit_case viommu_pm_test_cases[] = {
	KUNIT_CASE(viommu_pm_restore_reattaches_and_replays),
	KUNIT_CASE(viommu_pm_calls_while_frozen),
	KUNIT_CASE(viommu_pm_freeze_silent_device),
	KUNIT_CASE(viommu_pm_restore_refused),
	KUNIT_CASE(viommu_pm_transition_under_load),
	{}
};

static struct kunit_suite viommu_pm_suite = {
	.name = "viommu_pm",
	.test_cases = viommu_pm_test_cases,
};

kunit_test_suite(viommu_pm_suite);
