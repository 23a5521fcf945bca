// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq KUnit: feature negotiation and configuration space
 * validation (main.c), against the fake device's configuration space.
 */

#include <kunit/device.h>
#include <kunit/test.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>

#include "viommu_fake.h"

#define F(x)	BIT_ULL(VIRTIO_IOMMU_F_##x)
#define BASE	(F(INPUT_RANGE) | F(DOMAIN_RANGE) | F(MAP_UNMAP) | F(PROBE))
#define RW	(VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE)

struct viommu_config_case {
	const char	*name;
	u64		features;
	u64		mask;
	u64		in_start, in_end;
	u32		dom_start, dom_end;
	u32		probe_size;
	int		ret;
	/* Expected results when ret is 0. */
	u64		pgsize;
	u64		exp_in_start, exp_in_end;
	u32		exp_first, exp_last;
	u32		exp_probe_size;
	bool		has_probe;
	u32		map_flags;
	bool		bypass_config, legacy_bypass;
};

#define GOOD	.mask = SZ_4K | SZ_2M, .in_start = 0, .in_end = SZ_4G - 1, \
		.dom_start = 1, .dom_end = 100, .probe_size = 512
#define GOOD_RESULT .pgsize = SZ_4K | SZ_2M, .exp_in_start = 0, \
		.exp_in_end = SZ_4G - 1, .exp_first = 1, .exp_last = 100, \
		.exp_probe_size = 512, .has_probe = true, .map_flags = RW

static const struct viommu_config_case viommu_config_cases[] = {
	{ "typical", BASE, GOOD, .ret = 0, GOOD_RESULT },
	{ "empty page_size_mask", BASE, GOOD, .mask = 0, .ret = -EINVAL },
	{ "granule above PAGE_SIZE", BASE, GOOD, .mask = SZ_64K | SZ_2M,
	  .ret = -EINVAL },
	{ "only a huge page size", BASE, GOOD, .mask = SZ_1G, .ret = -EINVAL },
	{ "byte granule", BASE, GOOD, .mask = 1, .ret = 0, GOOD_RESULT,
	  .pgsize = PAGE_SIZE },
	{ "sub-page granule with huge pages", BASE, GOOD, .mask = SZ_512 | SZ_2M,
	  .ret = 0, GOOD_RESULT, .pgsize = PAGE_SIZE | SZ_2M },
	{ "input range reversed", BASE, GOOD, .in_start = SZ_8K,
	  .in_end = SZ_4K, .ret = -EINVAL },
	{ "input range empty", BASE, GOOD, .in_start = SZ_4K,
	  .in_end = SZ_4K, .ret = -EINVAL },
	{ "input range below a page", BASE, GOOD, .in_start = 0,
	  .in_end = SZ_4K - 2, .ret = -EINVAL },
	{ "input range of one page", BASE, GOOD, .in_start = SZ_1M,
	  .in_end = SZ_1M + SZ_4K - 1, .ret = 0, GOOD_RESULT,
	  .exp_in_start = SZ_1M, .exp_in_end = SZ_1M + SZ_4K - 1 },
	{ "input range not negotiated", BASE & ~F(INPUT_RANGE), GOOD,
	  .in_start = 5, .in_end = 4, .ret = 0, GOOD_RESULT,
	  .exp_in_start = 0, .exp_in_end = U64_MAX },
	{ "domain range reversed", BASE, GOOD, .dom_start = 10, .dom_end = 5,
	  .ret = -EINVAL },
	{ "domain range only ID 0", BASE, GOOD, .dom_start = 0, .dom_end = 0,
	  .ret = -EINVAL },
	{ "domain range from 0", BASE, GOOD, .dom_start = 0, .dom_end = 7,
	  .ret = 0, GOOD_RESULT, .exp_first = 1, .exp_last = 7 },
	{ "domain range beyond INT_MAX", BASE, GOOD, .dom_start = 1,
	  .dom_end = U32_MAX, .ret = 0, GOOD_RESULT, .exp_last = INT_MAX },
	{ "domain range not negotiated", BASE & ~F(DOMAIN_RANGE), GOOD,
	  .dom_start = 9, .dom_end = 3, .ret = 0, GOOD_RESULT,
	  .exp_first = 1, .exp_last = INT_MAX },
	{ "probe_size 0", BASE, GOOD, .probe_size = 0, .ret = 0, GOOD_RESULT,
	  .exp_probe_size = 0 },
	{ "probe_size largest accepted", BASE, GOOD,
	  .probe_size = VIOMMU_PROBE_SIZE_MAX, .ret = 0, GOOD_RESULT,
	  .exp_probe_size = VIOMMU_PROBE_SIZE_MAX },
	{ "probe_size too big", BASE, GOOD,
	  .probe_size = VIOMMU_PROBE_SIZE_MAX + 1, .ret = -EINVAL },
	{ "probe_size huge", BASE, GOOD, .probe_size = U32_MAX, .ret = -EINVAL },
	{ "probe not negotiated", BASE & ~F(PROBE), GOOD,
	  .probe_size = U32_MAX, .ret = 0, GOOD_RESULT, .has_probe = false,
	  .exp_probe_size = 0 },
	{ "mmio", BASE | F(MMIO), GOOD, .ret = 0, GOOD_RESULT,
	  .map_flags = RW | VIRTIO_IOMMU_MAP_F_MMIO },
	{ "bypass_config", BASE | F(BYPASS_CONFIG), GOOD, .ret = 0, GOOD_RESULT,
	  .bypass_config = true },
	{ "legacy bypass", BASE | F(BYPASS), GOOD, .ret = 0, GOOD_RESULT,
	  .legacy_bypass = true },
	{ "both bypass features", BASE | F(BYPASS) | F(BYPASS_CONFIG), GOOD,
	  .ret = 0, GOOD_RESULT, .bypass_config = true },
};

static void viommu_config_case_desc(const struct viommu_config_case *c,
				    char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(viommu_config, viommu_config_cases, viommu_config_case_desc);

static struct viommu_dev *viommu_config_instance(struct kunit *test,
						 struct vfake *fake)
{
	struct viommu_dev *viommu;

	viommu = kunit_kzalloc(test, sizeof(*viommu), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, viommu);
	viommu->vdev = &fake->vdev;
	viommu->dev = kunit_device_register(test, "viommu-config");
	KUNIT_ASSERT_FALSE(test, IS_ERR(viommu->dev));
	return viommu;
}

/* viommu_read_config() accepts good configurations and refuses bad ones. */
static void viommu_config_validation(struct kunit *test)
{
	const struct viommu_config_case *c = test->param_value;
	struct vfake_cfg cfg = {
		.features = c->features, .page_size_mask = c->mask,
		.input_start = c->in_start, .input_end = c->in_end,
		.domain_start = c->dom_start, .domain_end = c->dom_end,
		.probe_size = c->probe_size,
	};
	struct vfake *fake = vfake_create(test, &cfg);
	struct viommu_dev *viommu = viommu_config_instance(test, fake);

	KUNIT_EXPECT_EQ(test, viommu_read_config(viommu), c->ret);
	/* Only bypass may ever be written; this driver writes nothing. */
	KUNIT_EXPECT_EQ(test, fake->config_writes, 0);
	/* bypass is neither written nor relied upon (ATTACH_F_BYPASS is). */
	KUNIT_EXPECT_EQ(test, fake->bypass_reads, 0);
	if (c->ret)
		return;
	KUNIT_EXPECT_EQ(test, viommu->pgsize_bitmap, c->pgsize);
	KUNIT_EXPECT_TRUE(test, viommu->pgsize_bitmap & PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, viommu->input_start, c->exp_in_start);
	KUNIT_EXPECT_EQ(test, viommu->input_end, c->exp_in_end);
	KUNIT_EXPECT_EQ(test, viommu->first_domain, c->exp_first);
	KUNIT_EXPECT_EQ(test, viommu->last_domain, c->exp_last);
	KUNIT_EXPECT_EQ(test, viommu->has_probe, c->has_probe);
	if (c->has_probe)
		KUNIT_EXPECT_EQ(test, viommu->probe_size, c->exp_probe_size);
	KUNIT_EXPECT_EQ(test, viommu->map_flags, c->map_flags);
	KUNIT_EXPECT_EQ(test, viommu->has_bypass_config, c->bypass_config);
	KUNIT_EXPECT_EQ(test, viommu->has_legacy_bypass, c->legacy_bypass);
}

static bool viommu_offers(unsigned int fbit)
{
	unsigned int i;

	for (i = 0; i < viommu_driver.feature_table_size; i++)
		if (viommu_driver.feature_table[i] == fbit)
			return true;
	return false;
}

/* The driver accepts every feature it implements, INPUT_RANGE,
 * DOMAIN_RANGE and PROBE included.
 */
static void viommu_config_feature_table(struct kunit *test)
{
	KUNIT_EXPECT_TRUE(test, viommu_offers(VIRTIO_IOMMU_F_INPUT_RANGE));
	KUNIT_EXPECT_TRUE(test, viommu_offers(VIRTIO_IOMMU_F_DOMAIN_RANGE));
	KUNIT_EXPECT_TRUE(test, viommu_offers(VIRTIO_IOMMU_F_MAP_UNMAP));
	KUNIT_EXPECT_TRUE(test, viommu_offers(VIRTIO_IOMMU_F_BYPASS));
	KUNIT_EXPECT_TRUE(test, viommu_offers(VIRTIO_IOMMU_F_PROBE));
	KUNIT_EXPECT_TRUE(test, viommu_offers(VIRTIO_IOMMU_F_MMIO));
	KUNIT_EXPECT_TRUE(test, viommu_offers(VIRTIO_IOMMU_F_BYPASS_CONFIG));
	/* Nothing it does not know. */
	KUNIT_EXPECT_EQ(test, viommu_driver.feature_table_size, 7);
	KUNIT_EXPECT_NULL(test, viommu_driver.feature_table_legacy);
}

/* A device without MAP_UNMAP is refused before anything is set up. */
static void viommu_config_requires_map_unmap(struct kunit *test)
{
	struct vfake_cfg cfg;
	struct vfake *fake;

	vfake_default_cfg(&cfg);
	cfg.features &= ~F(MAP_UNMAP);
	fake = vfake_create(test, &cfg);
	KUNIT_EXPECT_EQ(test, viommu_driver.probe(&fake->vdev), -ENODEV);
	KUNIT_EXPECT_NULL(test, fake->vdev.priv);
	KUNIT_EXPECT_EQ(test, fake->config_writes, 0);
	KUNIT_EXPECT_EQ(test, fake->nr_adds, 0);
}

/* Identity and blocking domains get IDs of their own inside the range. */
static void viommu_config_reserved_ids(struct kunit *test)
{
	struct vfake_cfg cfg;
	struct vfake_env *env;
	struct viommu_dev *viommu;

	vfake_default_cfg(&cfg);
	cfg.domain_start = 10;
	cfg.domain_end = 12;
	env = vfake_env_create(test, &cfg);
	viommu = env->viommu;
	KUNIT_EXPECT_GE(test, viommu->identity_id, 10);
	KUNIT_EXPECT_LE(test, viommu->identity_id, 12);
	KUNIT_EXPECT_GE(test, viommu->blocking_id, 10);
	KUNIT_EXPECT_LE(test, viommu->blocking_id, 12);
	KUNIT_EXPECT_NE(test, viommu->identity_id, viommu->blocking_id);
}

/* Too few domain IDs: no reserved IDs, paging domains still work. */
static void viommu_config_small_domain_range(struct kunit *test)
{
	struct vfake_cfg cfg;
	struct vfake_env *env;

	vfake_default_cfg(&cfg);
	cfg.domain_start = 5;
	cfg.domain_end = 6;
	env = vfake_env_create(test, &cfg);
	KUNIT_EXPECT_EQ(test, env->viommu->identity_id, 0);
	KUNIT_EXPECT_EQ(test, env->viommu->blocking_id, 0);
}

static struct kunit_case viommu_config_test_cases[] = {
	KUNIT_CASE_PARAM(viommu_config_validation, viommu_config_gen_params),
	KUNIT_CASE(viommu_config_feature_table),
	KUNIT_CASE(viommu_config_requires_map_unmap),
	KUNIT_CASE(viommu_config_reserved_ids),
	KUNIT_CASE(viommu_config_small_domain_range),
	{}
};

static struct kunit_suite viommu_config_suite = {
	.name = "viommu_config",
	.test_cases = viommu_config_test_cases,
};

kunit_test_suite(viommu_config_suite);
