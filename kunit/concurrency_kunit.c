// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq KUnit: several kthreads map and unmap, strictly and
 * lazily, in private and shared domains, while the knobs change under
 * them. The fake device checks every request; at the end the device and
 * the driver must hold the same (empty) set of mappings.
 */

#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/random.h>

#include "viommu_fake.h"

#define NR_WORKERS	4
#define NR_ITERS	150
#define RW		(IOMMU_READ | IOMMU_WRITE)

struct viommu_worker {
	struct kunit		*test;
	struct vfake		*fake;
	struct viommu_domain	*vdom;
	u64			base;
	unsigned int		idx;
	int			err;
	const char		*what;
	u64			where;
	struct completion	done;
};

static void viommu_worker_fail(struct viommu_worker *w, const char *what,
			       u64 where, int err)
{
	if (!w->err) {
		w->err = err ?: -EINVAL;
		w->what = what;
		w->where = where;
	}
}

static int viommu_worker_fn(void *data)
{
	struct viommu_worker *w = data;
	struct iommu_domain *d = &w->vdom->domain;
	unsigned int i, j, pages, slot;
	bool lazy, scattered;
	size_t mapped, ret;
	u64 iova, pa;
	int err;

	for (i = 0; i < NR_ITERS && !w->err; i++) {
		pages = 1 + get_random_u32_below(8);
		slot = get_random_u32_below(16);
		lazy = get_random_u32_below(2);
		scattered = get_random_u32_below(2);
		iova = w->base + slot * SZ_64K;
		pa = SZ_4G + (u64)w->idx * SZ_256M + (u64)i * SZ_64K;
		for (j = 0; j < pages; j++) {
			err = viommu_paging_ops.map_pages(d, iova + j * SZ_4K,
					scattered ? pa + j * SZ_1M : pa + j * SZ_4K,
					SZ_4K, 1, RW, GFP_KERNEL, &mapped);
			if (err)
				viommu_worker_fail(w, "map_pages", iova, err);
		}
		err = viommu_paging_ops.iotlb_sync_map(d, iova, pages * SZ_4K);
		if (err)
			viommu_worker_fail(w, "iotlb_sync_map", iova, err);
		/* Synced: the device holds exactly what the driver recorded. */
		if (!vfake_range_consistent(w->fake, w->vdom, iova,
					    iova + pages * SZ_4K - 1))
			viommu_worker_fail(w, "device and driver disagree", iova, 0);
		for (j = 0; j < pages; j++)
			if (viommu_paging_ops.iova_to_phys(d, iova + j * SZ_4K + 4) !=
			    (scattered ? pa + j * SZ_1M : pa + j * SZ_4K) + 4)
				viommu_worker_fail(w, "iova_to_phys", iova + j * SZ_4K, 0);
		ret = vfake_unmap(w->vdom, iova, pages * SZ_4K, lazy);
		if (ret != pages * SZ_4K)
			viommu_worker_fail(w, "unmap", iova, -ERANGE);
		if (!(i % 32))
			viommu_paging_ops.flush_iotlb_all(d);
		if (!(i % 8))
			cond_resched();
	}
	complete(&w->done);
	return 0;
}

struct viommu_stress_case {
	const char	*name;
	enum vfake_mode	mode;
	bool		reverse;
	unsigned int	capacity;
	unsigned int	nr_slots;
};

static const struct viommu_stress_case viommu_stress_cases[] = {
	{ "immediate device", VFAKE_IMMEDIATE, false, 128, 0 },
	{ "small queue, late out-of-order device", VFAKE_LATE, true, 4, 0 },
	{ "small pool and queue", VFAKE_IMMEDIATE, false, 3, 6 },
};

static void viommu_stress_case_desc(const struct viommu_stress_case *c,
				    char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(viommu_stress, viommu_stress_cases, viommu_stress_case_desc);

static void viommu_concurrent_map_unmap(struct kunit *test)
{
	static const unsigned int timeouts[] = { 0, 1, 5, 10, 1000 };
	const struct viommu_stress_case *c = test->param_value;
	struct viommu_worker *w;
	struct viommu_domain *shared, *doms[NR_WORKERS];
	struct viommu_endpoint *ep;
	struct task_struct *t;
	struct viommu_engine *eng;
	struct vfake_env *env;
	struct vfake_cfg cfg;
	unsigned int i, n = 0, running;
	u64 age;

	vfake_default_cfg(&cfg);
	cfg.capacity = c->capacity;
	cfg.nr_slots = c->nr_slots;
	env = vfake_env_create(test, &cfg);
	eng = &env->viommu->engine;
	vfake_set_mode(env->fake, c->mode, 3);
	env->fake->reverse = c->reverse;
	w = kunit_kcalloc(test, NR_WORKERS, sizeof(*w), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, w);

	/* Workers 0 and 1 share a domain; 2 and 3 have their own. */
	ep = vfake_env_simple_endpoint(env, 10);
	shared = vfake_env_domain(env, ep, IOMMU_DOMAIN_DMA_FQ);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&shared->domain, ep->dev), 0);
	for (i = 0; i < NR_WORKERS; i++) {
		if (i < 2) {
			doms[i] = shared;
		} else {
			ep = vfake_env_simple_endpoint(env, 10 + i);
			doms[i] = vfake_env_domain(env, ep, IOMMU_DOMAIN_DMA_FQ);
			KUNIT_ASSERT_EQ(test, viommu_attach_paging(&doms[i]->domain,
								   ep->dev), 0);
		}
		w[i].test = test;
		w[i].fake = env->fake;
		w[i].vdom = doms[i];
		w[i].idx = i;
		w[i].base = SZ_1G + (u64)i * SZ_16M;
		init_completion(&w[i].done);
	}
	for (i = 0; i < NR_WORKERS; i++) {
		t = kthread_run(viommu_worker_fn, &w[i], "viommu-kunit-%u", i);
		KUNIT_ASSERT_FALSE(test, IS_ERR(t));
	}

	/* Meanwhile, turn the knobs. */
	do {
		viommu_engine_set_flush_timeout(eng, timeouts[n % ARRAY_SIZE(timeouts)]);
		WRITE_ONCE(eng->knobs.map_batching, n & 1);
		WRITE_ONCE(eng->knobs.shadow_on_flush, (n >> 1) & 1);
		if (!(n % 7))
			viommu_stats_reset(eng);
		viommu_pending_unmaps(eng, &age);
		n++;
		usleep_range(200, 400);
		running = 0;
		for (i = 0; i < NR_WORKERS; i++)
			running += !completion_done(&w[i].done);
	} while (running);

	for (i = 0; i < NR_WORKERS; i++)
		KUNIT_EXPECT_EQ_MSG(test, w[i].err, 0, "worker %u: %s at 0x%llx", i,
				    w[i].what ?: "-", w[i].where);
	for (i = 0; i < NR_WORKERS; i++)
		viommu_paging_ops.flush_iotlb_all(&doms[i]->domain);
	KUNIT_EXPECT_EQ(test, viommu_pending_unmaps(eng, &age), 0);
	for (i = 0; i < NR_WORKERS; i++) {
		KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, doms[i]->id), 0);
		vfake_expect_same_mappings(test, env->fake, doms[i]);
	}
	vfake_expect_no_violations(test, env->fake);
	KUNIT_EXPECT_GT(test, n, 1);
	kunit_info(test, "%u knob changes, %u requests, max batch %llu\n", n,
		   env->fake->nr_records, eng->max_batch);
}

static struct kunit_case viommu_concurrency_test_cases[] = {
	KUNIT_CASE_PARAM(viommu_concurrent_map_unmap, viommu_stress_gen_params),
	{}
};

static struct kunit_suite viommu_concurrency_suite = {
	.name = "viommu_concurrency",
	.test_cases = viommu_concurrency_test_cases,
};

kunit_test_suite(viommu_concurrency_suite);
