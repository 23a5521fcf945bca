// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq KUnit: failing closed. A device that stops answering, or
 * does not apply an UNMAP, is declared broken and reset so that no endpoint
 * reaches memory; merges never cross the end of the address space; and the
 * edges of negotiation, reserved regions and default domains.
 */

#include <kunit/test.h>
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

static struct kunit_case viommu_failclosed_test_cases[] = {
	KUNIT_CASE(viommu_failclosed_unmap_wrap),
	KUNIT_CASE(viommu_failclosed_map_wrap),
	{}
};

static struct kunit_suite viommu_failclosed_suite = {
	.name = "viommu_failclosed",
	.test_cases = viommu_failclosed_test_cases,
};

kunit_test_suite(viommu_failclosed_suite);
