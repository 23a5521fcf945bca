// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq KUnit: deferred UNMAPs (lazy domains). An UNMAP of a
 * lazy domain waits in the driver until a flush, a map sync, a full queue
 * or flush_timeout_ms, whichever comes first; an untrusted endpoint never
 * gets deferred UNMAPs.
 */

#include <kunit/test.h>
#include <linux/delay.h>
#include <linux/ktime.h>
#include <linux/pci.h>

#include "viommu_fake.h"

#define RW		(IOMMU_READ | IOMMU_WRITE)
#define SLACK_MS	3000	/* TCG under load; the bound is the lower limit */

struct viommu_lazy_ctx {
	struct vfake_env	*env;
	struct vfake		*fake;
	struct viommu_engine	*eng;
	struct viommu_endpoint	*ep;
	struct viommu_domain	*vdom;
};

static void viommu_lazy_setup(struct kunit *test, struct viommu_lazy_ctx *c,
			      unsigned int timeout_ms, bool untrusted)
{
	u32 id = 3;

	c->env = vfake_env_default(test);
	c->fake = c->env->fake;
	c->eng = &c->env->viommu->engine;
	viommu_engine_set_flush_timeout(c->eng, timeout_ms);
	vfake_add_endpoint(c->fake, id, NULL, 0);
	c->ep = vfake_env_endpoint(c->env, &id, 1, untrusted);
	c->vdom = vfake_env_domain(c->env, c->ep, IOMMU_DOMAIN_DMA_FQ);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&c->vdom->domain, c->ep->dev), 0);
}

static unsigned int viommu_pending(struct viommu_engine *eng)
{
	u64 age;

	return viommu_pending_unmaps(eng, &age);
}

/* Map @nr scattered pages (so that nothing merges) in one call. */
static void viommu_map_scattered(struct kunit *test, struct viommu_domain *vdom,
				 unsigned int nr)
{
	unsigned int i;

	for (i = 0; i < nr; i++)
		KUNIT_ASSERT_EQ(test, vfake_map(vdom, SZ_1M + i * SZ_8K,
						SZ_16M + i * SZ_64K, SZ_4K, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_sync_map(vdom, SZ_1M, nr * SZ_8K), 0);
}

/* Lazy UNMAPs stay in the driver until flush_iotlb_all. */
static void viommu_deferral_until_flush(struct kunit *test)
{
	struct viommu_lazy_ctx c;
	unsigned int i;

	viommu_lazy_setup(test, &c, VIOMMU_FLUSH_TIMEOUT_MAX_MS, false);
	viommu_map_scattered(test, c.vdom, 4);
	for (i = 0; i < 4; i++)
		KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M + i * SZ_8K,
						  SZ_4K, true), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP), 0);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 4);
	KUNIT_EXPECT_EQ(test, viommu_pending(c.eng), 4);
	/* The driver forgot them at once. */
	KUNIT_EXPECT_EQ(test, viommu_paging_ops.iova_to_phys(&c.vdom->domain,
							     SZ_1M), 0);

	viommu_paging_ops.flush_iotlb_all(&c.vdom->domain);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP), 4);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 0);
	KUNIT_EXPECT_EQ(test, viommu_pending(c.eng), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_DEFERRED_FLUSH), 4);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_DEFERRED_TIMER), 0);
}

/* Adjacent lazy UNMAPs travel as one request. */
static void viommu_deferral_merge(struct kunit *test)
{
	struct viommu_lazy_ctx c;
	unsigned int i;

	viommu_lazy_setup(test, &c, VIOMMU_FLUSH_TIMEOUT_MAX_MS, false);
	for (i = 0; i < 4; i++)
		KUNIT_ASSERT_EQ(test, vfake_map_sync(c.vdom, SZ_1M + i * SZ_4K,
						     SZ_16M + i * SZ_64K, SZ_4K, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 4);
	/* Out of order: 2, 1, 3, 0. */
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M + 2 * SZ_4K, SZ_4K, true), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M + 1 * SZ_4K, SZ_4K, true), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M + 3 * SZ_4K, SZ_4K, true), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M, SZ_4K, true), SZ_4K);
	KUNIT_EXPECT_EQ(test, viommu_pending(c.eng), 1);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_MERGED_UNMAPS), 3);
	viommu_paging_ops.flush_iotlb_all(&c.vdom->domain);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP), 1);
	KUNIT_EXPECT_EQ(test, vfake_last(c.fake, VIRTIO_IOMMU_T_UNMAP)->start, SZ_1M);
	KUNIT_EXPECT_EQ(test, vfake_last(c.fake, VIRTIO_IOMMU_T_UNMAP)->end,
			SZ_1M + SZ_16K - 1);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 0);
}

/* A map sync takes the pending UNMAPs along, ahead of the new MAPs. */
static void viommu_deferral_map_sync(struct kunit *test)
{
	const struct vfake_record *r;
	struct viommu_lazy_ctx c;
	unsigned int i, first;

	viommu_lazy_setup(test, &c, VIOMMU_FLUSH_TIMEOUT_MAX_MS, false);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(c.vdom, SZ_1M, SZ_16M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M, SZ_4K, true), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP), 0);
	first = c.fake->nr_records;
	/* The same IOVA again, as after an IOVA reuse. */
	KUNIT_EXPECT_EQ(test, vfake_map_sync(c.vdom, SZ_1M, SZ_32M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, viommu_pending(c.eng), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_DEFERRED_MAP_SYNC), 1);
	KUNIT_ASSERT_EQ(test, c.fake->nr_records, first + 2);
	for (i = first; i < first + 2; i++) {
		r = &c.fake->records[i];
		KUNIT_EXPECT_EQ(test, r->type, i == first ? VIRTIO_IOMMU_T_UNMAP :
							     VIRTIO_IOMMU_T_MAP);
		KUNIT_EXPECT_EQ(test, r->status, VIRTIO_IOMMU_S_OK);
	}
	vfake_expect_same_mappings(test, c.fake, c.vdom);
}

/*
 * A map sync of other IOVAs leaves fewer than VIOMMU_PIGGYBACK_MIN deferred
 * UNMAPs waiting (more may merge), and takes them along from that many on.
 */
static void viommu_deferral_map_sync_threshold(struct kunit *test)
{
	unsigned int i, nr = VIOMMU_PIGGYBACK_MIN, seen, pending;
	struct viommu_lazy_ctx c;
	ktime_t start;

	viommu_lazy_setup(test, &c, VIOMMU_FLUSH_TIMEOUT_MAX_MS, false);
	viommu_map_scattered(test, c.vdom, nr);
	start = ktime_get();
	for (i = 0; i < nr - 1; i++)
		KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M + i * SZ_8K,
						  SZ_4K, true), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_map_sync(c.vdom, SZ_1G, SZ_16M, SZ_4K, RW), 0);
	seen = vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP);
	pending = viommu_pending(c.eng);
	if (ktime_ms_delta(ktime_get(), start) >= VIOMMU_FLUSH_TIMEOUT_MAX_MS)
		kunit_skip(test, "too slow to stay below flush_timeout_ms");
	KUNIT_EXPECT_EQ(test, seen, 0);
	KUNIT_EXPECT_EQ(test, pending, nr - 1);
	KUNIT_EXPECT_NOT_NULL(test, vfake_find_mapping(c.fake, c.vdom->id, SZ_1G));

	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M + i * SZ_8K, SZ_4K, true),
			SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_map_sync(c.vdom, SZ_2G, SZ_32M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP), nr);
	KUNIT_EXPECT_EQ(test, viommu_pending(c.eng), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_DEFERRED_MAP_SYNC), nr);
	vfake_expect_same_mappings(test, c.fake, c.vdom);
}

/*
 * Deferred UNMAPs wait apart from the other requests, but reach the device
 * in the order they were queued in when everything is submitted.
 */
static void viommu_deferral_queue_order(struct kunit *test)
{
	static const struct { u8 type; u64 start; } want[] = {
		{ VIRTIO_IOMMU_T_UNMAP, SZ_1M },
		{ VIRTIO_IOMMU_T_MAP, SZ_2M },
		{ VIRTIO_IOMMU_T_UNMAP, SZ_1M + SZ_8K },
		{ VIRTIO_IOMMU_T_MAP, SZ_2M + SZ_8K },
	};
	const struct vfake_record *r;
	struct viommu_lazy_ctx c;
	unsigned int i, first;

	viommu_lazy_setup(test, &c, VIOMMU_FLUSH_TIMEOUT_MAX_MS, false);
	viommu_map_scattered(test, c.vdom, 2);
	first = c.fake->nr_records;
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M, SZ_4K, true), SZ_4K);
	KUNIT_ASSERT_EQ(test, vfake_map(c.vdom, SZ_2M, SZ_32M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M + SZ_8K, SZ_4K, true), SZ_4K);
	KUNIT_ASSERT_EQ(test, vfake_map(c.vdom, SZ_2M + SZ_8K, SZ_64M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, c.fake->nr_records, first);
	viommu_paging_ops.flush_iotlb_all(&c.vdom->domain);
	KUNIT_ASSERT_EQ(test, c.fake->nr_records, first + ARRAY_SIZE(want));
	for (i = 0; i < ARRAY_SIZE(want); i++) {
		r = &c.fake->records[first + i];
		KUNIT_EXPECT_EQ_MSG(test, r->type, want[i].type, "request %u", i);
		KUNIT_EXPECT_EQ_MSG(test, r->start, want[i].start, "request %u", i);
		KUNIT_EXPECT_EQ(test, r->status, VIRTIO_IOMMU_S_OK);
	}
	vfake_expect_same_mappings(test, c.fake, c.vdom);
}

/*
 * A deferred UNMAP extends an adjacent one however many wait after it, at
 * either end: found by its ends, not by a search.
 */
static void viommu_deferral_merge_ends(struct kunit *test)
{
	unsigned int i, nr = VIOMMU_PIGGYBACK_MIN - 2, first;
	const struct vfake_record *r;
	struct viommu_lazy_ctx c;

	viommu_lazy_setup(test, &c, VIOMMU_FLUSH_TIMEOUT_MAX_MS, false);
	/* Pages 8 KiB apart, and the pages around the first. */
	viommu_map_scattered(test, c.vdom, nr);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(c.vdom, SZ_1M - SZ_4K, SZ_1G, SZ_4K, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(c.vdom, SZ_1M + SZ_4K, SZ_1G + SZ_64K,
					     SZ_4K, RW), 0);
	for (i = 0; i < nr; i++)
		KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M + i * SZ_8K,
						  SZ_4K, true), SZ_4K);
	KUNIT_EXPECT_EQ(test, viommu_pending(c.eng), nr);
	/* Just before the oldest, then just after it. */
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M - SZ_4K, SZ_4K, true), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M + SZ_4K, SZ_4K, true), SZ_4K);
	KUNIT_EXPECT_EQ(test, viommu_pending(c.eng), nr);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_MERGED_UNMAPS), 2);
	first = c.fake->nr_records;
	viommu_paging_ops.flush_iotlb_all(&c.vdom->domain);
	KUNIT_ASSERT_EQ(test, c.fake->nr_records, first + nr);
	r = &c.fake->records[first];
	KUNIT_EXPECT_EQ(test, r->type, VIRTIO_IOMMU_T_UNMAP);
	KUNIT_EXPECT_EQ(test, r->start, SZ_1M - SZ_4K);
	KUNIT_EXPECT_EQ(test, r->end, SZ_1M + SZ_8K - 1);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 0);
	vfake_expect_same_mappings(test, c.fake, c.vdom);
}

/*
 * A MAP of an IOVA whose deferred UNMAP still waits is not merged into an
 * earlier MAP of the same call: that would move it ahead of the UNMAP,
 * which would then remove the new mapping.
 */
static void viommu_deferral_map_merge_conflict(struct kunit *test)
{
	struct viommu_lazy_ctx c;

	viommu_lazy_setup(test, &c, VIOMMU_FLUSH_TIMEOUT_MAX_MS, false);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(c.vdom, SZ_2M, SZ_16M, SZ_4K, RW), 0);
	/* A call maps the page before, its UNMAP is queued, the call goes on. */
	KUNIT_ASSERT_EQ(test, vfake_map(c.vdom, SZ_2M - SZ_4K, SZ_32M - SZ_4K,
					SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_2M, SZ_4K, true), SZ_4K);
	KUNIT_ASSERT_EQ(test, vfake_map(c.vdom, SZ_2M, SZ_32M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_MERGED_MAPS), 0);
	KUNIT_EXPECT_EQ(test, vfake_sync_map(c.vdom, SZ_2M - SZ_4K, SZ_8K), 0);
	KUNIT_EXPECT_EQ(test, viommu_pending(c.eng), 0);
	KUNIT_EXPECT_NOT_NULL(test, vfake_find_mapping(c.fake, c.vdom->id, SZ_2M));
	vfake_expect_same_mappings(test, c.fake, c.vdom);
}

/* Too many pending requests: they are submitted without waiting. */
static void viommu_deferral_queue_full(struct kunit *test)
{
	unsigned int i, nr = VIOMMU_MAX_PENDING, seen, pending;
	struct viommu_lazy_ctx c;
	ktime_t start;

	viommu_lazy_setup(test, &c, VIOMMU_FLUSH_TIMEOUT_MAX_MS, false);
	viommu_map_scattered(test, c.vdom, nr);
	start = ktime_get();
	for (i = 0; i < nr - 1; i++)
		KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M + i * SZ_8K,
						  SZ_4K, true), SZ_4K);
	seen = vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP);
	pending = viommu_pending(c.eng);
	if (ktime_ms_delta(ktime_get(), start) >= VIOMMU_FLUSH_TIMEOUT_MAX_MS)
		kunit_skip(test, "too slow to stay below flush_timeout_ms");
	KUNIT_EXPECT_EQ(test, seen, 0);
	KUNIT_EXPECT_EQ(test, pending, nr - 1);
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M + i * SZ_8K, SZ_4K, true),
			SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP), nr);
	KUNIT_EXPECT_EQ(test, viommu_pending(c.eng), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_DEFERRED_FULL), nr);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 0);
}

/* Wait until the device has seen @nr UNMAPs; return when, or 0. */
static ktime_t viommu_wait_unmaps(struct vfake *fake, unsigned int nr)
{
	ktime_t deadline = ktime_add_ms(ktime_get(), 2 * SLACK_MS);
	const struct vfake_record *r;

	while (vfake_count_type(fake, VIRTIO_IOMMU_T_UNMAP) < nr) {
		if (ktime_after(ktime_get(), deadline))
			return 0;
		usleep_range(500, 1000);
	}
	r = vfake_last(fake, VIRTIO_IOMMU_T_UNMAP);
	return r ? r->at : 0;
}

struct viommu_timer_case {
	const char	*name;
	unsigned int	timeout_ms;
};

static const struct viommu_timer_case viommu_timer_cases[] = {
	{ "1 ms", 1 },
	{ "10 ms (default)", 10 },
	{ "50 ms", 50 },
};

static void viommu_timer_case_desc(const struct viommu_timer_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(viommu_timer, viommu_timer_cases, viommu_timer_case_desc);

/* Without any flush, an UNMAP reaches the device after flush_timeout_ms:
 * never before, and within the bound (plus scheduling slack).
 */
static void viommu_deferral_timeout(struct kunit *test)
{
	const struct viommu_timer_case *t = test->param_value;
	unsigned int pending, seen;
	struct viommu_lazy_ctx c;
	ktime_t start, at;
	u64 age;

	viommu_lazy_setup(test, &c, t->timeout_ms, false);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(c.vdom, SZ_1M, SZ_16M, SZ_4K, RW), 0);
	start = ktime_get();
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M, SZ_4K, true), SZ_4K);
	/* Read first, then make sure the bound had not passed yet. */
	pending = viommu_pending_unmaps(c.eng, &age);
	seen = vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP);
	if (t->timeout_ms >= 50 && ktime_ms_delta(ktime_get(), start) < 40) {
		KUNIT_EXPECT_EQ(test, pending, 1);
		KUNIT_EXPECT_EQ(test, seen, 0);
	}
	at = viommu_wait_unmaps(c.fake, 1);
	KUNIT_ASSERT_NE_MSG(test, at, 0, "UNMAP never reached the device");
	KUNIT_EXPECT_GE(test, ktime_ms_delta(at, start), t->timeout_ms);
	KUNIT_EXPECT_LT(test, ktime_ms_delta(at, start), t->timeout_ms + SLACK_MS);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_DEFERRED_TIMER), 1);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 0);
	KUNIT_EXPECT_EQ(test, viommu_pending(c.eng), 0);
}

/* flush_timeout_ms 0: lazy UNMAPs are submitted at once. */
static void viommu_deferral_timeout_zero(struct kunit *test)
{
	struct viommu_lazy_ctx c;

	viommu_lazy_setup(test, &c, 0, false);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(c.vdom, SZ_1M, SZ_16M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M, SZ_4K, true), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP), 1);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 0);
	KUNIT_EXPECT_EQ(test, viommu_pending(c.eng), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_DEFERRED_TIMER), 1);
}

/* Changing flush_timeout_ms applies to UNMAPs already waiting. */
static void viommu_deferral_timeout_change(struct kunit *test)
{
	struct viommu_lazy_ctx c;
	ktime_t start, at;

	viommu_lazy_setup(test, &c, VIOMMU_FLUSH_TIMEOUT_MAX_MS, false);
	viommu_map_scattered(test, c.vdom, 2);
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M, SZ_4K, true), SZ_4K);
	viommu_engine_set_flush_timeout(c.eng, 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP), 1);
	KUNIT_EXPECT_EQ(test, viommu_pending(c.eng), 0);

	viommu_engine_set_flush_timeout(c.eng, VIOMMU_FLUSH_TIMEOUT_MAX_MS);
	start = ktime_get();
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M + SZ_8K, SZ_4K, true), SZ_4K);
	viommu_engine_set_flush_timeout(c.eng, 20);
	at = viommu_wait_unmaps(c.fake, 2);
	KUNIT_ASSERT_NE(test, at, 0);
	KUNIT_EXPECT_GE(test, ktime_ms_delta(at, start), 20);
	KUNIT_EXPECT_LT(test, ktime_ms_delta(at, start), VIOMMU_FLUSH_TIMEOUT_MAX_MS);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 0);
}

/* A strict domain: the UNMAP is on the device when iotlb_sync returns. */
static void viommu_deferral_strict(struct kunit *test)
{
	struct iommu_iotlb_gather gather;
	struct viommu_lazy_ctx c;

	viommu_lazy_setup(test, &c, VIOMMU_FLUSH_TIMEOUT_MAX_MS, false);
	c.vdom->domain.type = IOMMU_DOMAIN_DMA;
	KUNIT_ASSERT_EQ(test, vfake_map_sync(c.vdom, SZ_1M, SZ_16M, SZ_8K, RW), 0);
	iommu_iotlb_gather_init(&gather);
	KUNIT_EXPECT_EQ(test, viommu_paging_ops.unmap_pages(&c.vdom->domain,
							    SZ_1M, SZ_4K, 2, &gather),
			SZ_8K);
	KUNIT_EXPECT_EQ(test, viommu_pending(c.eng), 0);
	viommu_paging_ops.iotlb_sync(&c.vdom->domain, &gather);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP), 1);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_DEFERRED_FLUSH), 0);
}

/* Pending UNMAPs reach the device before the endpoint leaves the domain. */
static void viommu_deferral_before_detach(struct kunit *test)
{
	struct viommu_lazy_ctx c;

	viommu_lazy_setup(test, &c, VIOMMU_FLUSH_TIMEOUT_MAX_MS, false);
	viommu_map_scattered(test, c.vdom, 3);
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M, SZ_4K, true), SZ_4K);
	KUNIT_ASSERT_EQ(test, viommu_attach_blocked(&viommu_blocked_domain,
						    c.ep->dev), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP), 1);
	KUNIT_EXPECT_EQ(test, viommu_pending(c.eng), 0);
	/* Had it come later, the device would have answered NOENT. */
	KUNIT_EXPECT_EQ(test, vfake_last(c.fake, VIRTIO_IOMMU_T_UNMAP)->status,
			VIRTIO_IOMMU_S_OK);
	vfake_expect_no_violations(test, c.fake);
}

/* The trust policy: an untrusted endpoint's UNMAPs are never deferred. */
static void viommu_deferral_untrusted(struct kunit *test)
{
	struct viommu_lazy_ctx c;
	unsigned int i;

	viommu_lazy_setup(test, &c, VIOMMU_FLUSH_TIMEOUT_MAX_MS, true);
	KUNIT_EXPECT_TRUE(test, c.ep->untrusted);
	KUNIT_EXPECT_EQ(test, c.vdom->nr_untrusted, 1);
	viommu_map_scattered(test, c.vdom, 3);
	for (i = 0; i < 3; i++) {
		KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M + i * SZ_8K,
						  SZ_4K, true), SZ_4K);
		/* On the device when unmap returns. */
		KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP),
				i + 1);
		KUNIT_EXPECT_EQ(test, viommu_pending(c.eng), 0);
	}
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_DEFERRED_FLUSH), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_DEFERRED_TIMER), 0);

	/* Once the untrusted endpoint left, deferral is allowed again. */
	KUNIT_ASSERT_EQ(test, viommu_attach_blocked(&viommu_blocked_domain,
						    c.ep->dev), 0);
	KUNIT_EXPECT_EQ(test, c.vdom->nr_untrusted, 0);
}

/* A trusted endpoint sharing the domain with an untrusted one: strict. */
static void viommu_deferral_mixed_trust(struct kunit *test)
{
	struct viommu_lazy_ctx c;
	struct viommu_endpoint *trusted;

	viommu_lazy_setup(test, &c, VIOMMU_FLUSH_TIMEOUT_MAX_MS, true);
	trusted = vfake_env_simple_endpoint(c.env, 4);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&c.vdom->domain, trusted->dev), 0);
	KUNIT_EXPECT_EQ(test, c.vdom->nr_endpoints, 2);
	KUNIT_EXPECT_EQ(test, c.vdom->nr_untrusted, 1);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(c.vdom, SZ_1M, SZ_16M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M, SZ_4K, true), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP), 1);
	KUNIT_EXPECT_EQ(test, viommu_pending(c.eng), 0);
}

/* IOMMU_CAP_DEFERRED_FLUSH is refused to untrusted PCI devices only; an
 * untrusted endpoint never gets dma-iommu's single flush queue.
 */
static void viommu_deferral_capable(struct kunit *test)
{
	struct viommu_lazy_ctx c;
	struct viommu_endpoint *trusted;
	struct pci_dev *pdev;

	viommu_lazy_setup(test, &c, 10, true);
	KUNIT_EXPECT_FALSE(test, viommu_ops.capable(c.ep->dev,
						    IOMMU_CAP_DEFERRED_FLUSH));
	KUNIT_EXPECT_TRUE(test, viommu_ops.capable(c.ep->dev,
						   IOMMU_CAP_CACHE_COHERENCY));
	trusted = vfake_env_simple_endpoint(c.env, 4);
	KUNIT_EXPECT_TRUE(test, viommu_ops.capable(trusted->dev,
						   IOMMU_CAP_DEFERRED_FLUSH));
	KUNIT_EXPECT_FALSE(test, viommu_ops.capable(trusted->dev,
						    IOMMU_CAP_ENFORCE_CACHE_COHERENCY));
	/* The same PCI device, trusted. */
	pdev = to_pci_dev(c.ep->dev);
	pdev->untrusted = 0;
	KUNIT_EXPECT_TRUE(test, viommu_ops.capable(c.ep->dev,
						   IOMMU_CAP_DEFERRED_FLUSH));
	pdev->untrusted = 1;

	WRITE_ONCE(c.eng->knobs.shadow_on_flush, 1);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&c.vdom->domain, c.ep->dev), 0);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&c.vdom->domain, trusted->dev), 0);
	/* Re-attaching to the same domain is a no-op; attach elsewhere first. */
	KUNIT_ASSERT_EQ(test, viommu_attach_blocked(&viommu_blocked_domain,
						    c.ep->dev), 0);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&c.vdom->domain, c.ep->dev), 0);
	KUNIT_EXPECT_FALSE(test, c.ep->dev->iommu->shadow_on_flush);
	KUNIT_EXPECT_TRUE(test, trusted->dev->iommu->shadow_on_flush);
}

static struct kunit_case viommu_deferral_test_cases[] = {
	KUNIT_CASE(viommu_deferral_until_flush),
	KUNIT_CASE(viommu_deferral_merge),
	KUNIT_CASE(viommu_deferral_map_sync),
	KUNIT_CASE(viommu_deferral_map_sync_threshold),
	KUNIT_CASE(viommu_deferral_queue_order),
	KUNIT_CASE(viommu_deferral_merge_ends),
	KUNIT_CASE(viommu_deferral_map_merge_conflict),
	KUNIT_CASE(viommu_deferral_queue_full),
	KUNIT_CASE_PARAM(viommu_deferral_timeout, viommu_timer_gen_params),
	KUNIT_CASE(viommu_deferral_timeout_zero),
	KUNIT_CASE(viommu_deferral_timeout_change),
	KUNIT_CASE(viommu_deferral_strict),
	KUNIT_CASE(viommu_deferral_before_detach),
	KUNIT_CASE(viommu_deferral_untrusted),
	KUNIT_CASE(viommu_deferral_mixed_trust),
	KUNIT_CASE(viommu_deferral_capable),
	{}
};

static struct kunit_suite viommu_deferral_suite = {
	.name = "viommu_deferral",
	.test_cases = viommu_deferral_test_cases,
};

kunit_test_suite(viommu_deferral_suite);
