// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq KUnit: failing closed. A device that stops answering, or
 * does not apply an UNMAP, is declared broken and reset so that no endpoint
 * reaches memory; merges never cross the end of the address space; and the
 * edges of negotiation, reserved regions and default domains.
 */

#include <kunit/test.h>
#include <kunit/test-bug.h>
#include <linux/delay.h>
#include <linux/iommu.h>
#include <linux/virtio_config.h>

#include "viommu_fake.h"

#define RW		(IOMMU_READ | IOMMU_WRITE)
#define TOP_PAGE	(U64_MAX - SZ_4K + 1)
#define TIMEOUT_MS	50

/* An instance whose input range is the whole 64-bit space. */
static struct vfake_env *viommu_fc_env(struct kunit *test,
				       unsigned int nr_slots)
{
	struct vfake_cfg cfg;

	vfake_default_cfg(&cfg);
	cfg.input_end = U64_MAX;
	cfg.nr_slots = nr_slots;
	return vfake_env_create(test, &cfg);
}

static struct viommu_domain *viommu_fc_attached(struct kunit *test,
						struct vfake_env *env, u32 id)
{
	struct viommu_endpoint *ep = vfake_env_simple_endpoint(env, id);
	struct viommu_domain *vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_DMA_FQ);

	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	return vdom;
}

/*
 * Lazy UNMAPs of the last page and of page 0 are not adjacent: merged,
 * they would remove every mapping of the domain on the device.
 */
static void viommu_failclosed_unmap_wrap(struct kunit *test)
{
	static const u64 order[2][2] = { { TOP_PAGE, 0 }, { 0, TOP_PAGE } };
	struct vfake_env *env = viommu_fc_env(test, 0);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_domain *vdom = viommu_fc_attached(test, env, 3);
	unsigned int i;

	viommu_engine_set_flush_timeout(eng, VIOMMU_FLUSH_TIMEOUT_MAX_MS);
	for (i = 0; i < ARRAY_SIZE(order); i++) {
		KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, 0, SZ_4M, SZ_4K, RW), 0);
		KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_8M, SZ_4K, RW), 0);
		KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, TOP_PAGE, SZ_16M, SZ_4K,
						     RW), 0);
		KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, order[i][0], SZ_4K, true), SZ_4K);
		KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, order[i][1], SZ_4K, true), SZ_4K);
		viommu_paging_ops.flush_iotlb_all(&vdom->domain);
		KUNIT_EXPECT_NOT_NULL(test, vfake_find_mapping(env->fake, vdom->id, SZ_1M));
		vfake_expect_same_mappings(test, env->fake, vdom);
		KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_MERGED_UNMAPS), 0);
		KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M, SZ_4K, false), SZ_4K);
	}
}

/*
 * Pieces of one mapping call at the last page and at page 0, physically
 * contiguous, stay two MAP requests: one would end below its start.
 */
static void viommu_failclosed_map_wrap(struct kunit *test)
{
	struct vfake_env *env = viommu_fc_env(test, 0);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_domain *vdom = viommu_fc_attached(test, env, 3);

	KUNIT_ASSERT_EQ(test, vfake_map_piece(vdom, TOP_PAGE, SZ_4M, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_piece(vdom, 0, SZ_4M + SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_sync_map(vdom, TOP_PAGE, SZ_4K), 0);
	KUNIT_EXPECT_EQ(test, vfake_sync_map(vdom, 0, SZ_4K), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_MERGED_MAPS), 0);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, vdom->id), 2);
	vfake_expect_same_mappings(test, env->fake, vdom);
	KUNIT_EXPECT_EQ(test, env->fake->nr_violations, 0);
}

/* What every case of a broken device checks: declared once, reset once. */
static void viommu_fc_expect_blocked(struct kunit *test, struct vfake_env *env,
				     struct viommu_domain *vdom)
{
	struct viommu_engine *eng = &env->viommu->engine;

	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_DEVICE_BROKEN), 1);
	KUNIT_EXPECT_EQ(test, env->fake->resets, 1);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, vdom->id), 0);
	KUNIT_EXPECT_EQ(test, vfake_endpoint_domain(env->fake, 3), 0);
}

/*
 * A strict unmap whose UNMAP the device never completes: when unmap and
 * sync return, the device has been reset and maps nothing. From then on
 * map and attach fail without sending anything; blocking still works.
 */
static void viommu_failclosed_silent_strict_unmap(struct kunit *test)
{
	struct vfake_env *env = viommu_fc_env(test, 0);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_domain *vdom = viommu_fc_attached(test, env, 3);
	struct viommu_endpoint *ep2;
	struct viommu_domain *vdom2;
	unsigned int adds;

	vfake_add_endpoint(env->fake, 4, NULL, 0);
	ep2 = vfake_env_endpoint(env, (u32[]){ 4 }, 1, false);
	vdom2 = vfake_env_domain(env, ep2, IOMMU_DOMAIN_DMA);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_4M, SZ_8K, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_4M, SZ_8M, SZ_4K, RW), 0);
	eng->timeout_ns = TIMEOUT_MS * NSEC_PER_MSEC;
	vfake_set_mode(env->fake, VFAKE_SILENT, 0);
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M, SZ_8K, false), SZ_8K);
	viommu_fc_expect_blocked(test, env, vdom);
	/* One bounded wait, not one per later sync. */
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_4M, SZ_4K, false), SZ_4K);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_ERR_TIMEOUT), 1);

	adds = env->fake->nr_adds;
	vfake_wake(env->fake);
	KUNIT_EXPECT_LT(test, vfake_map_sync(vdom, SZ_2M, SZ_4M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, (u64)vdom->domain.ops->iova_to_phys(&vdom->domain,
								  SZ_2M), 0);
	KUNIT_EXPECT_LT(test, viommu_attach_paging(&vdom2->domain, ep2->dev), 0);
	KUNIT_EXPECT_LT(test, viommu_attach_identity(&viommu_identity_domain,
						     ep2->dev), 0);
	KUNIT_EXPECT_EQ(test, viommu_attach_blocked(&viommu_blocked_domain,
						    ep2->dev), 0);
	KUNIT_EXPECT_EQ(test, env->fake->nr_adds, adds);
	/* Declared once, however many requests fail afterwards. */
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_DEVICE_BROKEN), 1);
	KUNIT_EXPECT_EQ(test, env->fake->resets, 1);
}

/*
 * No request slot for an UNMAP (the pool is held by a silent device): the
 * unmap reports done only once the device has been reset.
 */
static void viommu_failclosed_no_slot_unmap(struct kunit *test)
{
	struct vfake_env *env = viommu_fc_env(test, 1);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_domain *vdom = viommu_fc_attached(test, env, 3);

	viommu_engine_set_flush_timeout(eng, VIOMMU_FLUSH_TIMEOUT_MAX_MS);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_4M, SZ_4K, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_2M, SZ_8M, SZ_4K, RW), 0);
	eng->timeout_ns = TIMEOUT_MS * NSEC_PER_MSEC;
	vfake_set_mode(env->fake, VFAKE_SILENT, 0);
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M, SZ_4K, true), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_2M, SZ_4K, true), SZ_4K);
	viommu_fc_expect_blocked(test, env, vdom);
}

/*
 * The device refuses a merged UNMAP (no status, or RANGE although every
 * range covers whole mappings): the mappings must not stay reachable.
 */
static void viommu_failclosed_unmap_refused(struct kunit *test)
{
	struct vfake_env *env = viommu_fc_env(test, 0);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_domain *vdom = viommu_fc_attached(test, env, 3);

	viommu_engine_set_flush_timeout(eng, VIOMMU_FLUSH_TIMEOUT_MAX_MS);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_4M, SZ_4K, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_1M + SZ_4K, SZ_8M, SZ_4K,
					     RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M, SZ_4K, true), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M + SZ_4K, SZ_4K, true), SZ_4K);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_MERGED_UNMAPS), 1);
	vfake_inject(env->fake, VIRTIO_IOMMU_T_UNMAP, 1, VIRTIO_IOMMU_S_RANGE);
	viommu_paging_ops.flush_iotlb_all(&vdom->domain);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_ERR_RANGE), 1);
	viommu_fc_expect_blocked(test, env, vdom);
}

/* Attaching the blocked domain cannot fail: the core has no fallback. */
static void viommu_failclosed_blocked_attach(struct kunit *test)
{
	struct vfake_env *env = viommu_fc_env(test, 0);
	struct viommu_domain *vdom = viommu_fc_attached(test, env, 3);
	struct device *dev = env->eps[0].dev;
	struct viommu_endpoint *ep = dev_iommu_priv_get(dev);

	KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_4M, SZ_4K, RW), 0);
	vfake_inject(env->fake, VIRTIO_IOMMU_T_ATTACH, 1, VIRTIO_IOMMU_S_DEVERR);
	KUNIT_EXPECT_EQ(test, viommu_attach_blocked(&viommu_blocked_domain, dev), 0);
	KUNIT_EXPECT_EQ(test, ep->attached, VIOMMU_ATTACHED_BLOCKED);
	KUNIT_EXPECT_EQ(test, vdom->nr_endpoints, 0);
	viommu_fc_expect_blocked(test, env, vdom);
}

/*
 * An instance whose domain range leaves no blocking domain ID, endpoint 3
 * in a paging domain with one mapping, then blocked: the attach succeeds,
 * as the core requires.
 */
static struct vfake_env *viommu_fc_block_no_id(struct kunit *test,
					       struct vfake_cfg *cfg, u8 bypass,
					       struct viommu_domain **vdom)
{
	struct viommu_endpoint *ep;
	struct vfake_env *env;

	cfg->domain_start = 5;
	cfg->domain_end = 6;
	env = vfake_env_create(test, cfg);
	KUNIT_ASSERT_EQ(test, env->viommu->blocking_id, 0);
	env->fake->config.bypass = bypass;
	ep = vfake_env_simple_endpoint(env, 3);
	*vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_DMA);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&(*vdom)->domain, ep->dev), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(*vdom, SZ_1M, SZ_4M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, viommu_attach_blocked(&viommu_blocked_domain,
						    ep->dev), 0);
	KUNIT_EXPECT_EQ(test, ep->attached, VIOMMU_ATTACHED_BLOCKED);
	return env;
}

/*
 * Blocking without a blocking domain ID (the domain range is too small to
 * keep one) still succeeds, as the core requires. The endpoint is
 * detached, with the bypass field cleared, so that the device blocks it.
 * With legacy BYPASS a detached endpoint would bypass: the device is
 * declared broken and reset instead.
 */
static void viommu_failclosed_blocked_no_id(struct kunit *test)
{
	struct viommu_domain *vdom;
	struct device *dev;
	struct vfake_env *env;
	struct vfake_cfg cfg;

	vfake_default_cfg(&cfg);
	env = viommu_fc_block_no_id(test, &cfg, 1, &vdom);
	dev = env->eps[0].dev;
	KUNIT_EXPECT_EQ(test, vfake_endpoint_domain(env->fake, 3), 0);
	KUNIT_EXPECT_EQ(test, env->fake->config.bypass, 0);
	KUNIT_EXPECT_FALSE(test, viommu_engine_broken(&env->viommu->engine));
	/* Blocked twice, then back to the paging domain. */
	KUNIT_EXPECT_EQ(test, viommu_attach_blocked(&viommu_blocked_domain, dev), 0);
	KUNIT_EXPECT_EQ(test, viommu_attach_paging(&vdom->domain, dev), 0);
	KUNIT_EXPECT_EQ(test, vfake_endpoint_domain(env->fake, 3), vdom->id);
	vfake_expect_same_mappings(test, env->fake, vdom);

	cfg.features &= ~BIT_ULL(VIRTIO_IOMMU_F_BYPASS_CONFIG);
	cfg.features |= BIT_ULL(VIRTIO_IOMMU_F_BYPASS);
	env = viommu_fc_block_no_id(test, &cfg, 0, &vdom);
	KUNIT_ASSERT_TRUE(test, env->viommu->has_legacy_bypass);
	viommu_fc_expect_blocked(test, env, vdom);
}

/* Deferred UNMAPs taken along by a synchronous request are not flushes. */
static void viommu_failclosed_sync_cause(struct kunit *test)
{
	struct vfake_env *env = viommu_fc_env(test, 0);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_domain *vdom = viommu_fc_attached(test, env, 3);
	struct viommu_endpoint *ep2;

	viommu_engine_set_flush_timeout(eng, VIOMMU_FLUSH_TIMEOUT_MAX_MS);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_4M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M, SZ_4K, true), SZ_4K);
	vfake_add_endpoint(env->fake, 4, NULL, 0);
	ep2 = vfake_env_endpoint(env, (u32[]){ 4 }, 1, false);
	KUNIT_EXPECT_EQ(test, viommu_attach_paging(&vdom->domain, ep2->dev), 0);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, vdom->id), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_DEFERRED_FLUSH), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_DEFERRED_SYNC), 1);
}

/*
 * Without identity domains the driver has no preference, so the kernel's
 * default (lazy or strict) applies; only a passthrough default needs DMA.
 */
static void viommu_failclosed_def_domain_type(struct kunit *test)
{
	struct vfake_cfg cfg;
	struct vfake_env *env;
	struct viommu_endpoint *ep;

	vfake_default_cfg(&cfg);
	cfg.features &= ~BIT_ULL(VIRTIO_IOMMU_F_BYPASS_CONFIG);
	env = vfake_env_create(test, &cfg);
	ep = vfake_env_simple_endpoint(env, 3);
	KUNIT_EXPECT_EQ(test, viommu_def_domain_type(ep->dev),
			iommu_default_passthrough() ? (int)IOMMU_DOMAIN_DMA : 0);
}

/* With BYPASS_CONFIG offered, the legacy BYPASS feature is not accepted. */
static void viommu_failclosed_legacy_bypass(struct kunit *test)
{
	struct vfake_cfg cfg;
	struct vfake *fake;

	vfake_default_cfg(&cfg);
	cfg.features |= BIT_ULL(VIRTIO_IOMMU_F_BYPASS);
	fake = vfake_create(test, &cfg);
	KUNIT_EXPECT_EQ(test, viommu_driver.validate(&fake->vdev), 0);
	KUNIT_EXPECT_FALSE(test, virtio_has_feature(&fake->vdev, VIRTIO_IOMMU_F_BYPASS));
	KUNIT_EXPECT_TRUE(test, virtio_has_feature(&fake->vdev,
						   VIRTIO_IOMMU_F_BYPASS_CONFIG));

	/* Without BYPASS_CONFIG, BYPASS is the only way to identity domains. */
	cfg.features &= ~BIT_ULL(VIRTIO_IOMMU_F_BYPASS_CONFIG);
	fake = vfake_create(test, &cfg);
	KUNIT_EXPECT_EQ(test, viommu_driver.validate(&fake->vdev), 0);
	KUNIT_EXPECT_TRUE(test, virtio_has_feature(&fake->vdev, VIRTIO_IOMMU_F_BYPASS));
}

/* A device without VIRTIO_F_VERSION_1 is refused before anything is set up. */
static void viommu_failclosed_version_1(struct kunit *test)
{
	struct vfake_cfg cfg;
	struct vfake *fake;

	vfake_default_cfg(&cfg);
	cfg.features &= ~BIT_ULL(VIRTIO_F_VERSION_1);
	fake = vfake_create(test, &cfg);
	KUNIT_EXPECT_EQ(test, viommu_driver.probe(&fake->vdev), -ENODEV);
	KUNIT_EXPECT_EQ(test, fake->find_vqs_calls, 0);
	KUNIT_EXPECT_NULL(test, fake->vdev.priv);

	/* With it, the probe goes on (to the fake's missing virtqueues). */
	vfake_default_cfg(&cfg);
	fake = vfake_create(test, &cfg);
	KUNIT_EXPECT_EQ(test, viommu_driver.probe(&fake->vdev), -EIO);
	KUNIT_EXPECT_EQ(test, fake->find_vqs_calls, 1);
}

/* A reserved region covering the whole space keeps a non-zero length. */
static void viommu_failclosed_resv_whole_space(struct kunit *test)
{
	static struct virtio_iommu_probe_resv_mem prop = {
		.head.type = cpu_to_le16(VIRTIO_IOMMU_PROBE_T_RESV_MEM),
		.head.length = cpu_to_le16(sizeof(prop) - sizeof(prop.head)),
		.subtype = VIRTIO_IOMMU_RESV_MEM_T_RESERVED,
		.start = 0,
		.end = cpu_to_le64(U64_MAX),
	};
	struct vfake_env *env = vfake_env_default(test);
	struct iommu_resv_region *region;
	struct viommu_endpoint *ep;
	unsigned int found = 0;
	LIST_HEAD(regions);

	vfake_add_endpoint(env->fake, 3, &prop, sizeof(prop));
	ep = vfake_env_endpoint(env, (u32[]){ 3 }, 1, false);
	viommu_get_resv_regions(ep->dev, &regions);
	list_for_each_entry(region, &regions, list) {
		if (region->type != IOMMU_RESV_RESERVED)
			continue;
		found++;
		KUNIT_EXPECT_EQ(test, (u64)region->start, 0);
		KUNIT_EXPECT_EQ(test, (u64)region->length, (u64)SIZE_MAX);
	}
	KUNIT_EXPECT_EQ(test, found, 1);
	iommu_put_resv_regions(ep->dev, &regions);
}

/*
 * Failed MAPs are reported to the mapping call they belong to, however
 * many fail at once: seventeen refused MAPs, sixteen of one call and one
 * of another call made meanwhile. Each call's map sync reports its own,
 * and every request slot returns to the pool.
 */
static void viommu_failclosed_failures_many(struct kunit *test)
{
	struct vfake_env *env = viommu_fc_env(test, 0);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_domain *vdom = viommu_fc_attached(test, env, 3);
	unsigned int i, slots = vfake_free_req_slots(eng);

	WRITE_ONCE(eng->knobs.map_batching, 1);
	vfake_refuse_maps(env->fake, SZ_1M, SZ_16M - 1, VIRTIO_IOMMU_S_NOMEM);
	/* Scattered pages: one MAP each. */
	for (i = 0; i < 16; i++)
		KUNIT_ASSERT_EQ(test, vfake_map_piece(vdom, SZ_1M + i * SZ_4K,
						      SZ_64M + i * SZ_64K, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_piece(vdom, SZ_8M, SZ_128M, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_sync_map(vdom, SZ_1M, 16 * SZ_4K), -EIO);
	KUNIT_EXPECT_EQ(test, vfake_sync_map(vdom, SZ_8M, SZ_4K), -EIO);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_ERR_NOMEM), 17);
	/* iommu_map() unmaps a call whose map sync failed. */
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M, 16 * SZ_4K, false),
			16 * SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_8M, SZ_4K, false), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_free_req_slots(eng), slots);
	KUNIT_EXPECT_FALSE(test, viommu_engine_broken(eng));
}

/*
 * A failed MAP whose mapping is gone is not reported to the next mapping
 * of the same addresses. The core skips the map sync when a later piece
 * of the call fails, unmaps the call, and the IOVA is reused.
 */
static void viommu_failclosed_failure_stale(struct kunit *test)
{
	struct vfake_env *env = viommu_fc_env(test, 0);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_domain *vdom = viommu_fc_attached(test, env, 3);
	unsigned int slots = vfake_free_req_slots(eng);

	WRITE_ONCE(eng->knobs.map_batching, 1);
	vfake_refuse_maps(env->fake, SZ_1M, SZ_1M + SZ_4K - 1,
			  VIRTIO_IOMMU_S_NOMEM);
	KUNIT_ASSERT_EQ(test, vfake_map_piece(vdom, SZ_1M, SZ_64M, RW), 0);
	/* The strict unmap's sync sends the MAP, refused, and the UNMAP. */
	KUNIT_ASSERT_EQ(test, vfake_unmap(vdom, SZ_1M, SZ_4K, false), SZ_4K);
	KUNIT_ASSERT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_ERR_NOMEM), 1);
	vfake_refuse_maps(env->fake, 0, 0, 0);
	KUNIT_EXPECT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_128M, SZ_4K, RW), 0);
	vfake_expect_same_mappings(test, env->fake, vdom);
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M, SZ_4K, false), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_free_req_slots(eng), slots);
}

/*
 * The replay of a domain's mappings at its first attach reports the
 * failures of its own MAPs only. The domain is live once the replay
 * starts, so a mapper may map into it while the replay waits for the
 * device; its failure stays its own. One thread plays both sides: a
 * mapping is made while the domain is not live, then another mapper's
 * MAP is queued, then the replay runs.
 */
static void viommu_failclosed_replay_failures(struct kunit *test)
{
	struct vfake_env *env = viommu_fc_env(test, 0);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_domain *vdom = viommu_fc_attached(test, env, 3);
	unsigned int slots = vfake_free_req_slots(eng);
	unsigned long flags;

	WRITE_ONCE(eng->knobs.map_batching, 1);
	spin_lock_irqsave(&vdom->map_lock, flags);
	vdom->live = false;
	spin_unlock_irqrestore(&vdom->map_lock, flags);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_64M, SZ_4K, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_MAP), 0);
	spin_lock_irqsave(&vdom->map_lock, flags);
	vdom->live = true;
	spin_unlock_irqrestore(&vdom->map_lock, flags);

	vfake_refuse_maps(env->fake, SZ_8M, SZ_8M + SZ_4K - 1,
			  VIRTIO_IOMMU_S_NOMEM);
	KUNIT_ASSERT_EQ(test, vfake_map_piece(vdom, SZ_8M, SZ_128M, RW), 0);
	KUNIT_EXPECT_EQ(test, viommu_domain_replay(vdom), 0);
	KUNIT_EXPECT_EQ(test, vfake_sync_map(vdom, SZ_8M, SZ_4K), -EIO);
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_8M, SZ_4K, false), SZ_4K);
	vfake_expect_same_mappings(test, env->fake, vdom);

	/* A replayed MAP that fails is the replay's failure. */
	spin_lock_irqsave(&vdom->map_lock, flags);
	vdom->live = false;
	spin_unlock_irqrestore(&vdom->map_lock, flags);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_8M, SZ_128M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, viommu_domain_replay(vdom), -EIO);
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_8M, SZ_4K, false), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M, SZ_4K, false), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_free_req_slots(eng), slots);
}

/*
 * A queue wrapper whose every notification is followed by a request from
 * "another CPU" asking the notifying CPU for one more notification, for a
 * request that does not complete. The first hundred times.
 */
struct viommu_fc_storm {
	struct viommu_queue_ops	ops;
	struct viommu_engine	*eng;
	unsigned int		notifies;
};

static void viommu_fc_storm_notify(void *queue)
{
	struct viommu_fc_storm *st = kunit_get_current_test()->priv;
	unsigned long flags;

	vfake_queue_ops.notify(queue);
	spin_lock_irqsave(&st->eng->lock, flags);
	if (++st->notifies < 100 && st->eng->kicking) {
		st->eng->kick_again = true;
		st->eng->kick_again_seq = U64_MAX;
	}
	spin_unlock_irqrestore(&st->eng->lock, flags);
}

/*
 * The notifying CPU, preemption off, serves the others for a bounded
 * number of notifications, however many keep asking.
 */
static void viommu_failclosed_kick_rounds(struct kunit *test)
{
	struct vfake_env *env = viommu_fc_env(test, 0);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_domain *vdom = viommu_fc_attached(test, env, 3);
	struct viommu_fc_storm *st = kunit_kzalloc(test, sizeof(*st), GFP_KERNEL);
	const struct viommu_queue_ops *ops = eng->ops;

	KUNIT_ASSERT_NOT_NULL(test, st);
	st->ops = *ops;
	st->ops.notify = viommu_fc_storm_notify;
	st->eng = eng;
	test->priv = st;
	eng->ops = &st->ops;
	KUNIT_EXPECT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_4M, SZ_4K, RW), 0);
	eng->ops = ops;
	KUNIT_EXPECT_EQ(test, st->notifies, VIOMMU_KICK_ROUNDS);
	/* The next kick notifies whatever the queue says. */
	KUNIT_EXPECT_TRUE(test, eng->force_kick);
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M, SZ_4K, false), SZ_4K);
	KUNIT_EXPECT_FALSE(test, eng->force_kick);
	KUNIT_EXPECT_FALSE(test, viommu_engine_broken(eng));
}

/*
 * The flush timer runs in softirq context: it submits the deferred UNMAPs
 * that fit in the queue and never waits for room. A silent device is not
 * declared broken by it; once the device answers, the timer gets the rest
 * through by itself.
 */
static void viommu_failclosed_timer_no_wait(struct kunit *test)
{
	struct viommu_engine *eng;
	struct viommu_domain *vdom;
	struct vfake_env *env;
	struct vfake_cfg cfg;
	unsigned int i;
	u64 age;

	vfake_default_cfg(&cfg);
	cfg.capacity = 2;
	env = vfake_env_create(test, &cfg);
	eng = &env->viommu->engine;
	vdom = viommu_fc_attached(test, env, 3);
	for (i = 0; i < 4; i++)
		KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_1M + i * SZ_8K,
						     SZ_4M, SZ_4K, RW), 0);
	eng->timeout_ns = TIMEOUT_MS * NSEC_PER_MSEC;
	vfake_set_mode(env->fake, VFAKE_SILENT, 0);
	viommu_engine_set_flush_timeout(eng, 1);
	for (i = 0; i < 4; i++)
		KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M + i * SZ_8K, SZ_4K,
						  true), SZ_4K);
	/* The timer fires; a wait for room would give up after TIMEOUT_MS. */
	msleep(4 * TIMEOUT_MS);
	KUNIT_EXPECT_EQ(test, env->fake->outstanding, 2);
	KUNIT_EXPECT_FALSE(test, viommu_engine_broken(eng));
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_ERR_TIMEOUT), 0);

	vfake_wake(env->fake);
	for (i = 0; i < 50 && viommu_pending_unmaps(eng, &age); i++)
		msleep(20);
	KUNIT_EXPECT_EQ(test, viommu_pending_unmaps(eng, &age), 0);
	for (i = 0; i < 50 && vfake_nr_mappings(env->fake, vdom->id); i++)
		msleep(20);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, vdom->id), 0);
	KUNIT_EXPECT_FALSE(test, viommu_engine_broken(eng));
}

static struct kunit_case viommu_failclosed_test_cases[] = {
	KUNIT_CASE(viommu_failclosed_unmap_wrap),
	KUNIT_CASE(viommu_failclosed_silent_strict_unmap),
	KUNIT_CASE(viommu_failclosed_no_slot_unmap),
	KUNIT_CASE(viommu_failclosed_unmap_refused),
	KUNIT_CASE(viommu_failclosed_blocked_attach),
	KUNIT_CASE(viommu_failclosed_blocked_no_id),
	KUNIT_CASE(viommu_failclosed_sync_cause),
	KUNIT_CASE(viommu_failclosed_def_domain_type),
	KUNIT_CASE(viommu_failclosed_legacy_bypass),
	KUNIT_CASE(viommu_failclosed_version_1),
	KUNIT_CASE(viommu_failclosed_resv_whole_space),
	KUNIT_CASE(viommu_failclosed_map_wrap),
	KUNIT_CASE(viommu_failclosed_failures_many),
	KUNIT_CASE(viommu_failclosed_failure_stale),
	KUNIT_CASE(viommu_failclosed_replay_failures),
	KUNIT_CASE(viommu_failclosed_kick_rounds),
	KUNIT_CASE(viommu_failclosed_timer_no_wait),
	{}
};

static struct kunit_suite viommu_failclosed_suite = {
	.name = "viommu_failclosed",
	.test_cases = viommu_failclosed_test_cases,
};

kunit_test_suite(viommu_failclosed_suite);
