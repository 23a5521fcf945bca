// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq KUnit: the fake device's own checks. Every other suite
 * relies on the fake flagging requests that break the specification; here
 * raw requests, good and bad, go straight through its queue operations and
 * the case asserts the verdict, so that a check that never fires would be
 * noticed.
 */

#include <kunit/test.h>
#include <linux/scatterlist.h>
#include <linux/virtio_config.h>

#include "viommu_fake.h"

#define TAIL	sizeof(struct virtio_iommu_req_tail)
#define F(x)	BIT_ULL(VIRTIO_IOMMU_F_##x)

/* Send one request; return its status, or 0x100 if returned unwritten. */
static unsigned int vft_send(struct kunit *test, struct vfake *fake, void *req,
			     size_t out_len, size_t in_len)
{
	struct scatterlist out, in;
	unsigned int len;
	void *token;

	sg_init_one(&out, req, out_len);
	sg_init_one(&in, req + out_len, in_len);
	KUNIT_ASSERT_EQ(test, vfake_queue_ops.add(fake, &out, &in, req), 0);
	KUNIT_ASSERT_TRUE(test, vfake_queue_ops.kick_prepare(fake));
	vfake_queue_ops.notify(fake);
	token = vfake_queue_ops.get_used(fake, &len);
	KUNIT_ASSERT_PTR_EQ(test, token, req);
	if (len < TAIL)
		return 0x100;
	return ((struct virtio_iommu_req_tail *)(req + out_len + in_len - TAIL))->status;
}

static unsigned int vft_attach(struct kunit *test, struct vfake *fake, u32 domain,
			       u32 ep, u32 flags, u8 reserved)
{
	struct virtio_iommu_req_attach r = {
		.head.type = VIRTIO_IOMMU_T_ATTACH,
		.domain = cpu_to_le32(domain), .endpoint = cpu_to_le32(ep),
		.flags = cpu_to_le32(flags), .reserved = { reserved },
	};

	return vft_send(test, fake, &r, sizeof(r) - TAIL, TAIL);
}

static unsigned int vft_detach(struct kunit *test, struct vfake *fake, u32 domain,
			       u32 ep)
{
	struct virtio_iommu_req_detach r = {
		.head.type = VIRTIO_IOMMU_T_DETACH,
		.domain = cpu_to_le32(domain), .endpoint = cpu_to_le32(ep),
	};

	return vft_send(test, fake, &r, sizeof(r) - TAIL, TAIL);
}

static unsigned int vft_map(struct kunit *test, struct vfake *fake, u32 domain,
			    u64 start, u64 end, u64 phys, u32 flags)
{
	struct virtio_iommu_req_map r = {
		.head.type = VIRTIO_IOMMU_T_MAP,
		.domain = cpu_to_le32(domain), .virt_start = cpu_to_le64(start),
		.virt_end = cpu_to_le64(end), .phys_start = cpu_to_le64(phys),
		.flags = cpu_to_le32(flags),
	};

	return vft_send(test, fake, &r, sizeof(r) - TAIL, TAIL);
}

static unsigned int vft_unmap(struct kunit *test, struct vfake *fake, u32 domain,
			      u64 start, u64 end, u8 reserved)
{
	struct virtio_iommu_req_unmap r = {
		.head.type = VIRTIO_IOMMU_T_UNMAP,
		.domain = cpu_to_le32(domain), .virt_start = cpu_to_le64(start),
		.virt_end = cpu_to_le64(end), .reserved = { reserved },
	};

	return vft_send(test, fake, &r, sizeof(r) - TAIL, TAIL);
}

static unsigned int vft_probe(struct kunit *test, struct vfake *fake, u32 ep,
			      size_t props)
{
	struct {
		struct virtio_iommu_req_probe r;
		u8 props[512 + TAIL];
	} *p = kunit_kzalloc(test, sizeof(*p), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, p);
	p->r.head.type = VIRTIO_IOMMU_T_PROBE;
	p->r.endpoint = cpu_to_le32(ep);
	return vft_send(test, fake, p, sizeof(p->r), props + TAIL);
}

#define RW	(VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE)

/* Each setup leaves endpoint 3 probed and attached to domain 5, with a
 * mapping 0x10000-0x1ffff; endpoint 4 attached to bypass domain 6.
 */
static void vft_setup(struct kunit *test, struct vfake *fake)
{
	vfake_add_endpoint(fake, 3, NULL, 0);
	vfake_add_endpoint(fake, 4, NULL, 0);
	KUNIT_ASSERT_EQ(test, vft_probe(test, fake, 3, 512), VIRTIO_IOMMU_S_OK);
	KUNIT_ASSERT_EQ(test, vft_probe(test, fake, 4, 512), VIRTIO_IOMMU_S_OK);
	KUNIT_ASSERT_EQ(test, vft_attach(test, fake, 5, 3, 0, 0), VIRTIO_IOMMU_S_OK);
	KUNIT_ASSERT_EQ(test, vft_attach(test, fake, 6, 4,
					 VIRTIO_IOMMU_ATTACH_F_BYPASS, 0),
			VIRTIO_IOMMU_S_OK);
	KUNIT_ASSERT_EQ(test, vft_map(test, fake, 5, 0x10000, 0x1ffff, 0x80000, RW),
			VIRTIO_IOMMU_S_OK);
	KUNIT_ASSERT_EQ(test, fake->nr_violations, 0);
}

struct vft_case {
	const char	*name;
	unsigned int	(*run)(struct kunit *test, struct vfake *fake);
	unsigned int	status;
	bool		violation;
};

static unsigned int vft_good_map(struct kunit *test, struct vfake *fake)
{
	return vft_map(test, fake, 5, 0x40000, 0x4ffff, 0x90000, RW);
}

static unsigned int vft_good_unmap(struct kunit *test, struct vfake *fake)
{
	return vft_unmap(test, fake, 5, 0, 0xfffff, 0);
}

static unsigned int vft_good_unmap_nothing(struct kunit *test, struct vfake *fake)
{
	return vft_unmap(test, fake, 5, 0x100000, 0x1fffff, 0);
}

static unsigned int vft_good_detach(struct kunit *test, struct vfake *fake)
{
	return vft_detach(test, fake, 5, 3);
}

static unsigned int vft_good_join_bypass(struct kunit *test, struct vfake *fake)
{
	return vft_attach(test, fake, 6, 3, VIRTIO_IOMMU_ATTACH_F_BYPASS, 0);
}

static unsigned int vft_attach_reserved(struct kunit *test, struct vfake *fake)
{
	return vft_attach(test, fake, 7, 3, 0, 1);
}

static unsigned int vft_attach_flags(struct kunit *test, struct vfake *fake)
{
	return vft_attach(test, fake, 7, 3, 2, 0);
}

static unsigned int vft_attach_bypass_mismatch(struct kunit *test, struct vfake *fake)
{
	return vft_attach(test, fake, 5, 4, VIRTIO_IOMMU_ATTACH_F_BYPASS, 0);
}

static unsigned int vft_attach_nobypass_mismatch(struct kunit *test, struct vfake *fake)
{
	return vft_attach(test, fake, 6, 3, 0, 0);
}

static unsigned int vft_attach_range(struct kunit *test, struct vfake *fake)
{
	return vft_attach(test, fake, 1001, 3, 0, 0);
}

static unsigned int vft_detach_wrong(struct kunit *test, struct vfake *fake)
{
	return vft_detach(test, fake, 6, 3);
}

static unsigned int vft_map_empty(struct kunit *test, struct vfake *fake)
{
	return vft_map(test, fake, 5, 0x40000, 0x40000, 0x90000, RW);
}

static unsigned int vft_map_reversed(struct kunit *test, struct vfake *fake)
{
	return vft_map(test, fake, 5, 0x40000, 0x3ffff, 0x90000, RW);
}

static unsigned int vft_map_input(struct kunit *test, struct vfake *fake)
{
	return vft_map(test, fake, 5, 1ULL << 48, (1ULL << 48) + 0xfff, 0, RW);
}

static unsigned int vft_map_flags(struct kunit *test, struct vfake *fake)
{
	return vft_map(test, fake, 5, 0x40000, 0x40fff, 0x90000, RW | 8);
}

static unsigned int vft_map_align(struct kunit *test, struct vfake *fake)
{
	return vft_map(test, fake, 5, 0x40800, 0x417ff, 0x90000, RW);
}

static unsigned int vft_map_noent(struct kunit *test, struct vfake *fake)
{
	return vft_map(test, fake, 9, 0x40000, 0x40fff, 0x90000, RW);
}

static unsigned int vft_map_overlap(struct kunit *test, struct vfake *fake)
{
	return vft_map(test, fake, 5, 0x1f000, 0x20fff, 0x90000, RW);
}

static unsigned int vft_map_bypass(struct kunit *test, struct vfake *fake)
{
	return vft_map(test, fake, 6, 0x40000, 0x40fff, 0x90000, RW);
}

static unsigned int vft_unmap_split_start(struct kunit *test, struct vfake *fake)
{
	return vft_unmap(test, fake, 5, 0x11000, 0x1ffff, 0);
}

static unsigned int vft_unmap_split_end(struct kunit *test, struct vfake *fake)
{
	return vft_unmap(test, fake, 5, 0x10000, 0x17fff, 0);
}

static unsigned int vft_unmap_reserved(struct kunit *test, struct vfake *fake)
{
	return vft_unmap(test, fake, 5, 0x10000, 0x1ffff, 1);
}

static unsigned int vft_unmap_bypass(struct kunit *test, struct vfake *fake)
{
	return vft_unmap(test, fake, 6, 0x10000, 0x1ffff, 0);
}

static unsigned int vft_unmap_noent(struct kunit *test, struct vfake *fake)
{
	return vft_unmap(test, fake, 9, 0x10000, 0x1ffff, 0);
}

static unsigned int vft_probe_size(struct kunit *test, struct vfake *fake)
{
	return vft_probe(test, fake, 3, 256);
}

static unsigned int vft_head_reserved(struct kunit *test, struct vfake *fake)
{
	struct virtio_iommu_req_detach r = {
		.head = { .type = VIRTIO_IOMMU_T_DETACH, .reserved = { 0, 1 } },
		.domain = cpu_to_le32(5), .endpoint = cpu_to_le32(3),
	};

	return vft_send(test, fake, &r, sizeof(r) - TAIL, TAIL);
}

static unsigned int vft_unknown_type(struct kunit *test, struct vfake *fake)
{
	struct virtio_iommu_req_detach r = { .head.type = 42 };

	return vft_send(test, fake, &r, sizeof(r) - TAIL, TAIL);
}

static unsigned int vft_wrong_size(struct kunit *test, struct vfake *fake)
{
	struct virtio_iommu_req_map r = { .head.type = VIRTIO_IOMMU_T_MAP };

	return vft_send(test, fake, &r, sizeof(r) - TAIL - 8, TAIL + 8);
}

static unsigned int vft_attach_unprobed(struct kunit *test, struct vfake *fake)
{
	vfake_add_endpoint(fake, 8, NULL, 0);
	return vft_attach(test, fake, 5, 8, 0, 0);
}

static unsigned int vft_config_write(struct kunit *test, struct vfake *fake)
{
	u8 one = 1;

	fake->vdev.config->set(&fake->vdev,
			       offsetof(struct virtio_iommu_config, probe_size),
			       &one, 1);
	return VIRTIO_IOMMU_S_OK;
}

/* bypass is the one field a driver may write (with BYPASS_CONFIG). */
static unsigned int vft_bypass_write(struct kunit *test, struct vfake *fake)
{
	u8 one = 1;

	fake->vdev.config->set(&fake->vdev,
			       offsetof(struct virtio_iommu_config, bypass),
			       &one, 1);
	KUNIT_EXPECT_EQ(test, fake->config.bypass, 1);
	KUNIT_EXPECT_EQ(test, fake->config_writes, 0);
	return VIRTIO_IOMMU_S_OK;
}

static const struct vft_case vft_cases[] = {
	{ "good MAP", vft_good_map, VIRTIO_IOMMU_S_OK, false },
	{ "good UNMAP spilling over", vft_good_unmap, VIRTIO_IOMMU_S_OK, false },
	{ "good UNMAP of nothing", vft_good_unmap_nothing, VIRTIO_IOMMU_S_OK, false },
	{ "good DETACH", vft_good_detach, VIRTIO_IOMMU_S_OK, false },
	{ "good join of a bypass domain", vft_good_join_bypass, VIRTIO_IOMMU_S_OK, false },
	{ "ATTACH reserved", vft_attach_reserved, VIRTIO_IOMMU_S_INVAL, true },
	{ "ATTACH undefined flag", vft_attach_flags, VIRTIO_IOMMU_S_INVAL, true },
	{ "ATTACH bypass flag, paging domain", vft_attach_bypass_mismatch,
	  VIRTIO_IOMMU_S_INVAL, true },
	{ "ATTACH no bypass flag, bypass domain", vft_attach_nobypass_mismatch,
	  VIRTIO_IOMMU_S_INVAL, true },
	{ "ATTACH outside domain_range", vft_attach_range, VIRTIO_IOMMU_S_RANGE, true },
	{ "ATTACH before PROBE", vft_attach_unprobed, VIRTIO_IOMMU_S_OK, true },
	{ "DETACH from another domain", vft_detach_wrong, VIRTIO_IOMMU_S_INVAL, true },
	{ "MAP virt_end == virt_start", vft_map_empty, VIRTIO_IOMMU_S_INVAL, true },
	{ "MAP reversed", vft_map_reversed, VIRTIO_IOMMU_S_INVAL, true },
	{ "MAP outside input_range", vft_map_input, VIRTIO_IOMMU_S_RANGE, true },
	{ "MAP undefined flag", vft_map_flags, VIRTIO_IOMMU_S_INVAL, true },
	{ "MAP unaligned", vft_map_align, VIRTIO_IOMMU_S_RANGE, true },
	{ "MAP on a missing domain", vft_map_noent, VIRTIO_IOMMU_S_NOENT, true },
	{ "MAP overlapping", vft_map_overlap, VIRTIO_IOMMU_S_INVAL, true },
	{ "MAP on a bypass domain", vft_map_bypass, VIRTIO_IOMMU_S_INVAL, true },
	{ "UNMAP starting inside a mapping", vft_unmap_split_start,
	  VIRTIO_IOMMU_S_RANGE, true },
	{ "UNMAP ending inside a mapping", vft_unmap_split_end, VIRTIO_IOMMU_S_RANGE,
	  true },
	{ "UNMAP reserved", vft_unmap_reserved, VIRTIO_IOMMU_S_OK, true },
	{ "UNMAP on a bypass domain", vft_unmap_bypass, VIRTIO_IOMMU_S_INVAL, true },
	{ "UNMAP on a missing domain", vft_unmap_noent, VIRTIO_IOMMU_S_NOENT, true },
	{ "PROBE of the wrong size", vft_probe_size, VIRTIO_IOMMU_S_INVAL, true },
	{ "head reserved", vft_head_reserved, VIRTIO_IOMMU_S_OK, true },
	{ "unknown type", vft_unknown_type, 0x100, true },
	{ "request of the wrong size", vft_wrong_size, 0x100, true },
	{ "config write", vft_config_write, VIRTIO_IOMMU_S_OK, true },
	{ "bypass write", vft_bypass_write, VIRTIO_IOMMU_S_OK, false },
};

static void vft_case_desc(const struct vft_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(vft, vft_cases, vft_case_desc);

static void viommu_fake_verdict(struct kunit *test)
{
	const struct vft_case *c = test->param_value;
	struct vfake_cfg cfg;
	struct vfake *fake;

	vfake_default_cfg(&cfg);
	fake = vfake_create(test, &cfg);
	vft_setup(test, fake);
	KUNIT_EXPECT_EQ(test, c->run(test, fake), c->status);
	if (c->violation)
		KUNIT_EXPECT_GT_MSG(test, fake->nr_violations, 0, "not flagged");
	else
		KUNIT_EXPECT_EQ_MSG(test, fake->nr_violations, 0, "%s", fake->violation);
}

/* MAP_F_MMIO is flagged only when MMIO was not offered. */
static void viommu_fake_mmio(struct kunit *test)
{
	const u32 mmio = RW | VIRTIO_IOMMU_MAP_F_MMIO;
	struct vfake_cfg cfg;
	struct vfake *fake;

	vfake_default_cfg(&cfg);
	fake = vfake_create(test, &cfg);
	vft_setup(test, fake);
	KUNIT_EXPECT_EQ(test, vft_map(test, fake, 5, 0x40000, 0x40fff, 0, mmio),
			VIRTIO_IOMMU_S_OK);
	KUNIT_EXPECT_EQ(test, fake->nr_violations, 0);

	cfg.features &= ~F(MMIO);
	fake = vfake_create(test, &cfg);
	vft_setup(test, fake);
	KUNIT_EXPECT_EQ(test, vft_map(test, fake, 5, 0x40000, 0x40fff, 0, mmio),
			VIRTIO_IOMMU_S_INVAL);
	KUNIT_EXPECT_GT(test, fake->nr_violations, 0);
}

/* The queue refuses what it cannot hold. */
static void viommu_fake_capacity(struct kunit *test)
{
	struct virtio_iommu_req_detach r[3] = {};
	struct scatterlist out, in;
	struct vfake_cfg cfg;
	struct vfake *fake;
	unsigned int i;

	vfake_default_cfg(&cfg);
	cfg.capacity = 2;
	fake = vfake_create(test, &cfg);
	for (i = 0; i < 3; i++) {
		sg_init_one(&out, &r[i], sizeof(r[i]) - TAIL);
		sg_init_one(&in, (void *)&r[i] + sizeof(r[i]) - TAIL, TAIL);
		KUNIT_EXPECT_EQ(test, vfake_queue_ops.add(fake, &out, &in, &r[i]),
				i < 2 ? 0 : -ENOSPC);
	}
	KUNIT_EXPECT_EQ(test, vfake_queue_ops.free_slots(fake), 0);
}

static struct kunit_case viommu_fake_test_cases[] = {
	KUNIT_CASE_PARAM(viommu_fake_verdict, vft_gen_params),
	KUNIT_CASE(viommu_fake_mmio),
	KUNIT_CASE(viommu_fake_capacity),
	{}
};

static struct kunit_suite viommu_fake_suite = {
	.name = "viommu_fake",
	.test_cases = viommu_fake_test_cases,
};

kunit_test_suite(viommu_fake_suite);
