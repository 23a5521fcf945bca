// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq KUnit: fault reports from the event queue (event.c).
 */

#include <kunit/test.h>

#include "viommu_fake.h"

struct viommu_fault_case {
	const char	*name;
	unsigned int	len;
	u8		reason;
	u32		flags;
	u8		reserved;
	u32		reserved1;
	bool		counted;
};

#define FULL		sizeof(struct virtio_iommu_fault)
#define F_RW		(VIRTIO_IOMMU_FAULT_F_READ | VIRTIO_IOMMU_FAULT_F_WRITE)

static const struct viommu_fault_case viommu_fault_cases[] = {
	{ "mapping fault with address", FULL, VIRTIO_IOMMU_FAULT_R_MAPPING,
	  F_RW | VIRTIO_IOMMU_FAULT_F_ADDRESS, 0, 0, true },
	{ "domain fault without address", FULL, VIRTIO_IOMMU_FAULT_R_DOMAIN,
	  VIRTIO_IOMMU_FAULT_F_READ, 0, 0, true },
	{ "unknown reason", FULL, VIRTIO_IOMMU_FAULT_R_UNKNOWN, 0, 0, 0, true },
	{ "undefined reason", FULL, 0x42, VIRTIO_IOMMU_FAULT_F_ADDRESS, 0, 0, true },
	{ "undefined flags ignored", FULL, VIRTIO_IOMMU_FAULT_R_MAPPING,
	  0xffff0000 | VIRTIO_IOMMU_FAULT_F_WRITE | VIRTIO_IOMMU_FAULT_F_ADDRESS,
	  0, 0, true },
	{ "reserved1 ignored", FULL, VIRTIO_IOMMU_FAULT_R_MAPPING, 0, 0,
	  0xdeadbeef, true },
	{ "reserved set: report ignored", FULL, VIRTIO_IOMMU_FAULT_R_MAPPING,
	  VIRTIO_IOMMU_FAULT_F_ADDRESS, 1, 0, false },
	{ "short report ignored", FULL - 8, VIRTIO_IOMMU_FAULT_R_MAPPING, 0, 0, 0,
	  false },
	{ "empty buffer ignored", 0, 0, 0, 0, 0, false },
	{ "longer report accepted", FULL + 16, VIRTIO_IOMMU_FAULT_R_DOMAIN, 0, 0,
	  0, true },
};

static void viommu_fault_case_desc(const struct viommu_fault_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(viommu_fault, viommu_fault_cases, viommu_fault_case_desc);

/* Valid reports are counted (and logged); malformed ones are ignored. */
static void viommu_fault_report(struct kunit *test)
{
	const struct viommu_fault_case *c = test->param_value;
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_engine *eng = &env->viommu->engine;
	struct {
		struct virtio_iommu_fault f;
		u8 more[16];
	} *buf;

	buf = kunit_kzalloc(test, sizeof(*buf), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, buf);
	buf->f.reason = c->reason;
	buf->f.reserved[1] = c->reserved;
	buf->f.flags = cpu_to_le32(c->flags);
	buf->f.endpoint = cpu_to_le32(3);
	/* The spec's reserved1, called reserved2 in the uapi header. */
	memcpy(buf->f.reserved2, &c->reserved1, sizeof(buf->f.reserved2));
	buf->f.address = cpu_to_le64(0xdead000);
	viommu_handle_fault(env->viommu, &buf->f, c->len);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_FAULTS),
			c->counted ? 1 : 0);
	/* A fault changes nothing on either side. */
	KUNIT_EXPECT_EQ(test, env->fake->nr_adds, 0);
}

/* Many reports in a row: each counted, logging rate-limited. */
static void viommu_fault_storm(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct virtio_iommu_fault f = {
		.reason = VIRTIO_IOMMU_FAULT_R_MAPPING,
		.flags = cpu_to_le32(VIRTIO_IOMMU_FAULT_F_ADDRESS),
	};
	unsigned int i;

	for (i = 0; i < 1000; i++) {
		f.address = cpu_to_le64(i * SZ_4K);
		viommu_handle_fault(env->viommu, &f, sizeof(f));
	}
	KUNIT_EXPECT_EQ(test, viommu_stat_read(&env->viommu->engine,
					       VIOMMU_STAT_FAULTS), 1000);
}

static struct kunit_case viommu_fault_test_cases[] = {
	KUNIT_CASE_PARAM(viommu_fault_report, viommu_fault_gen_params),
	KUNIT_CASE(viommu_fault_storm),
	{}
};

static struct kunit_suite viommu_fault_suite = {
	.name = "viommu_fault",
	.test_cases = viommu_fault_test_cases,
};

kunit_test_suite(viommu_fault_suite);
