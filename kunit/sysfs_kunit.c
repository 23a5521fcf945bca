// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq KUnit: knobs and counters (sysfs.c): input validation,
 * the per-instance attributes' store and show, and the attribute set the
 * team contract fixes.
 */

#include <kunit/test.h>
#include <linux/device.h>
#include <linux/sysfs.h>

#include "viommu_fake.h"

struct viommu_knob_case {
	const char	*name;
	const char	*input;
	int		count;		/* -1: strlen(input) */
	unsigned int	max;
	int		ret;
	unsigned int	val;
};

static const struct viommu_knob_case viommu_knob_cases[] = {
	{ "zero", "0", -1, 1, 0, 0 },
	{ "one", "1", -1, 1, 0, 1 },
	{ "newline", "1\n", -1, 1, 0, 1 },
	{ "largest", "1000", -1, 1000, 0, 1000 },
	{ "leading zeros", "0010\n", -1, 1000, 0, 10 },
	{ "not NUL-terminated", "10", 1, 1000, 0, 1 },
	{ "above max", "1001", -1, 1000, -EINVAL },
	{ "above max 1", "2", -1, 1, -EINVAL },
	{ "empty", "", 0, 1, -EINVAL },
	{ "only newline", "\n", -1, 1, -EINVAL },
	{ "negative", "-1", -1, 1000, -EINVAL },
	{ "letters", "abc", -1, 1000, -EINVAL },
	{ "trailing space", "1 ", -1, 1000, -EINVAL },
	{ "leading space", " 1", -1, 1000, -EINVAL },
	{ "hex", "0x10", -1, 1000, -EINVAL },
	{ "two newlines", "1\n\n", -1, 1000, -EINVAL },
	{ "overflow", "4294967296", -1, UINT_MAX, -EINVAL },
	{ "eleven digits", "12345678901", -1, UINT_MAX, -EINVAL },
	{ "too long", "000000000001", -1, 1000, -EINVAL },
};

static void viommu_knob_case_desc(const struct viommu_knob_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(viommu_knob, viommu_knob_cases, viommu_knob_case_desc);

/* viommu_parse_knob() accepts numbers, refuses the rest and then changes
 * nothing.
 */
static void viommu_knob_parse(struct kunit *test)
{
	const struct viommu_knob_case *c = test->param_value;
	size_t count = c->count < 0 ? strlen(c->input) : c->count;
	unsigned int val = 0xdead;

	KUNIT_EXPECT_EQ(test, viommu_parse_knob(c->input, count, c->max, &val),
			c->ret);
	KUNIT_EXPECT_EQ(test, val, c->ret ? 0xdead : c->val);
}

static struct device_attribute *viommu_attr(struct kunit *test, const char *name)
{
	struct attribute **a;

	KUNIT_ASSERT_STREQ(test, viommu_sysfs_groups[0]->name, "virtio-iommu-fq");
	for (a = viommu_sysfs_groups[0]->attrs; *a; a++)
		if (!strcmp((*a)->name, name))
			return container_of(*a, struct device_attribute, attr);
	KUNIT_FAIL(test, "no attribute %s", name);
	return NULL;
}

static ssize_t viommu_store(struct kunit *test, struct device *dev,
			    const char *name, const char *buf)
{
	struct device_attribute *attr = viommu_attr(test, name);

	KUNIT_ASSERT_NOT_NULL(test, attr);
	KUNIT_ASSERT_NOT_NULL(test, attr->store);
	return attr->store(dev, attr, buf, strlen(buf));
}

static char *viommu_show(struct kunit *test, struct device *dev, const char *name)
{
	struct device_attribute *attr = viommu_attr(test, name);
	char *buf;

	KUNIT_ASSERT_NOT_NULL(test, attr);
	KUNIT_ASSERT_NOT_NULL(test, attr->show);
	buf = kunit_kzalloc(test, PAGE_SIZE, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, buf);
	KUNIT_EXPECT_GT(test, attr->show(dev, attr, buf), 0);
	return buf;
}

static struct device *viommu_sysfs_dev(struct vfake_env *env)
{
	/* What iommu_device_sysfs_add() sets up for the group's callbacks. */
	dev_set_drvdata(env->vdev_dev, &env->viommu->iommu);
	return env->vdev_dev;
}

/* The per-instance knobs: good values change them, bad ones do not. */
static void viommu_knob_attributes(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_knobs *k = &env->viommu->engine.knobs;
	struct device *dev = viommu_sysfs_dev(env);

	KUNIT_EXPECT_STREQ(test, viommu_show(test, dev, "flush_timeout_ms"), "10\n");
	KUNIT_EXPECT_STREQ(test, viommu_show(test, dev, "map_batching"), "1\n");
	KUNIT_EXPECT_STREQ(test, viommu_show(test, dev, "shadow_on_flush"), "0\n");

	KUNIT_EXPECT_EQ(test, viommu_store(test, dev, "flush_timeout_ms", "25\n"), 3);
	KUNIT_EXPECT_EQ(test, k->flush_timeout_ms, 25);
	KUNIT_EXPECT_EQ(test, viommu_store(test, dev, "flush_timeout_ms", "1001"),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, viommu_store(test, dev, "flush_timeout_ms", "x"),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, k->flush_timeout_ms, 25);
	KUNIT_EXPECT_STREQ(test, viommu_show(test, dev, "flush_timeout_ms"), "25\n");
	KUNIT_EXPECT_EQ(test, viommu_store(test, dev, "flush_timeout_ms", "1000"), 4);
	KUNIT_EXPECT_EQ(test, k->flush_timeout_ms, 1000);
	KUNIT_EXPECT_EQ(test, viommu_store(test, dev, "flush_timeout_ms", "0"), 1);
	KUNIT_EXPECT_EQ(test, k->flush_timeout_ms, 0);

	KUNIT_EXPECT_EQ(test, viommu_store(test, dev, "map_batching", "0"), 1);
	KUNIT_EXPECT_EQ(test, k->map_batching, 0);
	KUNIT_EXPECT_EQ(test, viommu_store(test, dev, "map_batching", "2"), -EINVAL);
	KUNIT_EXPECT_EQ(test, viommu_store(test, dev, "map_batching", "-1"), -EINVAL);
	KUNIT_EXPECT_EQ(test, k->map_batching, 0);

	KUNIT_EXPECT_EQ(test, viommu_store(test, dev, "shadow_on_flush", "1\n"), 2);
	KUNIT_EXPECT_EQ(test, k->shadow_on_flush, 1);
	KUNIT_EXPECT_EQ(test, viommu_store(test, dev, "shadow_on_flush", ""), -EINVAL);
	KUNIT_EXPECT_EQ(test, k->shadow_on_flush, 1);
}

/* Counters: values, pending UNMAPs and their age, and the reset. */
static void viommu_counter_attributes(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct device *dev = viommu_sysfs_dev(env);
	struct viommu_endpoint *ep = vfake_env_simple_endpoint(env, 3);
	struct viommu_domain *vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_DMA_FQ);
	unsigned long long age;

	viommu_engine_set_flush_timeout(&env->viommu->engine, 1000);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_4M, SZ_8K,
					     IOMMU_READ), 0);
	KUNIT_EXPECT_STREQ(test, viommu_show(test, dev, "req_attach"), "1\n");
	KUNIT_EXPECT_STREQ(test, viommu_show(test, dev, "req_map"), "1\n");
	KUNIT_EXPECT_STREQ(test, viommu_show(test, dev, "req_probe"), "1\n");
	KUNIT_EXPECT_STREQ(test, viommu_show(test, dev, "pending_unmaps"), "0\n");
	KUNIT_EXPECT_STREQ(test, viommu_show(test, dev, "oldest_pending_unmap_us"), "0\n");
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M, SZ_8K, true), SZ_8K);
	KUNIT_EXPECT_STREQ(test, viommu_show(test, dev, "pending_unmaps"), "1\n");
	KUNIT_EXPECT_EQ(test, kstrtoull(viommu_show(test, dev, "oldest_pending_unmap_us"),
					10, &age), 0);
	KUNIT_EXPECT_LT(test, age, 1000ULL * USEC_PER_MSEC + 1);
	viommu_paging_ops.flush_iotlb_all(&vdom->domain);
	KUNIT_EXPECT_STREQ(test, viommu_show(test, dev, "deferred_flush"), "1\n");
	KUNIT_EXPECT_STREQ(test, viommu_show(test, dev, "req_unmap"), "1\n");

	KUNIT_EXPECT_EQ(test, viommu_store(test, dev, "reset_counters", "0"), -EINVAL);
	KUNIT_EXPECT_STREQ(test, viommu_show(test, dev, "req_map"), "1\n");
	KUNIT_EXPECT_EQ(test, viommu_store(test, dev, "reset_counters", "1\n"), 2);
	KUNIT_EXPECT_STREQ(test, viommu_show(test, dev, "req_map"), "0\n");
	KUNIT_EXPECT_STREQ(test, viommu_show(test, dev, "max_batch"), "0\n");
	KUNIT_EXPECT_STREQ(test, viommu_show(test, dev, "kicks"), "0\n");
}

/* The attribute set is the contract: names, one value per file, modes. */
static void viommu_attribute_contract(struct kunit *test)
{
	static const char * const counters[] = {
		"req_attach", "req_detach", "req_map", "req_unmap", "req_probe",
		"kicks", "sync_waits", "sync_wait_ns", "deferred_timer",
		"deferred_full", "deferred_flush", "deferred_map_sync",
		"max_batch", "queue_full", "err_ioerr", "err_unsupp",
		"err_deverr", "err_inval", "err_range", "err_noent",
		"err_fault", "err_nomem", "err_nostatus", "err_timeout",
		"faults", "pending_unmaps", "oldest_pending_unmap_us",
		"merged_maps", "merged_unmaps", "deferred_sync", "device_broken",
	};
	static const char * const knobs[] = {
		"shadow_on_flush", "flush_timeout_ms", "map_batching",
	};
	struct vfake_env *env = vfake_env_default(test);
	struct device *dev = viommu_sysfs_dev(env);
	struct device_attribute *a;
	unsigned int i;
	char *s;

	for (i = 0; i < ARRAY_SIZE(counters); i++) {
		a = viommu_attr(test, counters[i]);
		if (!a)
			continue;
		KUNIT_EXPECT_EQ_MSG(test, a->attr.mode, 0444, "%s", counters[i]);
		s = viommu_show(test, dev, counters[i]);
		KUNIT_EXPECT_STREQ_MSG(test, s, "0\n", "%s", counters[i]);
	}
	for (i = 0; i < ARRAY_SIZE(knobs); i++) {
		a = viommu_attr(test, knobs[i]);
		if (a)
			KUNIT_EXPECT_EQ_MSG(test, a->attr.mode, 0644, "%s", knobs[i]);
	}
	a = viommu_attr(test, "reset_counters");
	if (a) {
		KUNIT_EXPECT_EQ(test, a->attr.mode, 0200);
		KUNIT_EXPECT_NULL(test, a->show);
	}
}

static struct kunit_case viommu_knobs_test_cases[] = {
	KUNIT_CASE_PARAM(viommu_knob_parse, viommu_knob_gen_params),
	KUNIT_CASE(viommu_knob_attributes),
	KUNIT_CASE(viommu_counter_attributes),
	KUNIT_CASE(viommu_attribute_contract),
	{}
};

static struct kunit_suite viommu_knobs_suite = {
	.name = "viommu_knobs",
	.test_cases = viommu_knobs_test_cases,
};

kunit_test_suite(viommu_knobs_suite);
