// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq KUnit: paging domains (domain.c): mapping bookkeeping,
 * iova_to_phys, replay on attach, map batching and merging.
 */

#include <kunit/test.h>

#include "viommu_fake.h"

#define RW	(IOMMU_READ | IOMMU_WRITE)

struct viommu_dom_ctx {
	struct vfake_env	*env;
	struct vfake		*fake;
	struct viommu_engine	*eng;
	struct viommu_endpoint	*ep;
	struct viommu_domain	*vdom;
};

/* An instance, one endpoint (ID 3) and a paging domain it is attached to. */
static void viommu_dom_setup(struct kunit *test, struct viommu_dom_ctx *ctx,
			     bool attach)
{
	ctx->env = vfake_env_default(test);
	ctx->fake = ctx->env->fake;
	ctx->eng = &ctx->env->viommu->engine;
	ctx->ep = vfake_env_simple_endpoint(ctx->env, 3);
	ctx->vdom = vfake_env_domain(ctx->env, ctx->ep, IOMMU_DOMAIN_UNMANAGED);
	if (attach)
		KUNIT_ASSERT_EQ(test, viommu_attach_paging(&ctx->vdom->domain,
							   ctx->ep->dev), 0);
}

static phys_addr_t viommu_i2p(struct viommu_domain *vdom, u64 iova)
{
	return viommu_paging_ops.iova_to_phys(&vdom->domain, iova);
}

/* The domain describes the device: page sizes and aperture. */
static void viommu_mapping_geometry(struct kunit *test)
{
	struct viommu_dom_ctx c;

	viommu_dom_setup(test, &c, false);
	KUNIT_EXPECT_EQ(test, c.vdom->domain.pgsize_bitmap, SZ_4K | SZ_2M | SZ_1G);
	KUNIT_EXPECT_EQ(test, c.vdom->domain.geometry.aperture_start, 0);
	KUNIT_EXPECT_EQ(test, c.vdom->domain.geometry.aperture_end, (1ULL << 48) - 1);
	KUNIT_EXPECT_TRUE(test, c.vdom->domain.geometry.force_aperture);
	KUNIT_EXPECT_GE(test, c.vdom->id, 1);
	KUNIT_EXPECT_LE(test, c.vdom->id, 1000);
	KUNIT_EXPECT_NE(test, c.vdom->id, c.env->viommu->identity_id);
	KUNIT_EXPECT_NE(test, c.vdom->id, c.env->viommu->blocking_id);
}

/* Domain IDs come from domain_range and run out cleanly. */
static void viommu_mapping_domain_ids(struct kunit *test)
{
	struct vfake_cfg cfg;
	struct vfake_env *env;
	struct viommu_endpoint *ep;
	struct iommu_domain *d;
	struct viommu_domain *v[3];
	unsigned int i;

	vfake_default_cfg(&cfg);
	cfg.domain_start = 20;
	cfg.domain_end = 24;	/* 2 reserved, 3 for paging domains */
	env = vfake_env_create(test, &cfg);
	ep = vfake_env_simple_endpoint(env, 3);
	for (i = 0; i < 3; i++) {
		v[i] = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
		KUNIT_EXPECT_GE(test, v[i]->id, 20);
		KUNIT_EXPECT_LE(test, v[i]->id, 24);
	}
	d = viommu_domain_alloc_paging(ep->dev);
	KUNIT_EXPECT_TRUE(test, IS_ERR(d));
	if (!IS_ERR(d))
		viommu_paging_ops.free(d);
	/* A freed ID is reused. */
	i = v[1]->id;
	vfake_env_free_domain(env, v[1]);
	v[1] = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
	KUNIT_EXPECT_EQ(test, v[1]->id, i);
}

/* map, iova_to_phys and unmap agree with what the device holds. */
static void viommu_mapping_basic(struct kunit *test)
{
	const struct vfake_mapping *m;
	struct viommu_dom_ctx c;

	viommu_dom_setup(test, &c, true);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(c.vdom, SZ_1M, 0x40000000, SZ_16K,
					     RW), 0);
	m = vfake_find_mapping(c.fake, c.vdom->id, SZ_1M);
	KUNIT_ASSERT_NOT_NULL(test, m);
	KUNIT_EXPECT_EQ(test, m->start, SZ_1M);
	KUNIT_EXPECT_EQ(test, m->last, SZ_1M + SZ_16K - 1);
	KUNIT_EXPECT_EQ(test, m->phys, 0x40000000);
	KUNIT_EXPECT_EQ(test, m->flags, VIRTIO_IOMMU_MAP_F_READ |
					VIRTIO_IOMMU_MAP_F_WRITE);
	KUNIT_EXPECT_EQ(test, viommu_i2p(c.vdom, SZ_1M), 0x40000000);
	KUNIT_EXPECT_EQ(test, viommu_i2p(c.vdom, SZ_1M + 0x1234), 0x40001234);
	KUNIT_EXPECT_EQ(test, viommu_i2p(c.vdom, SZ_1M + SZ_16K - 1),
			0x40000000 + SZ_16K - 1);
	KUNIT_EXPECT_EQ(test, viommu_i2p(c.vdom, SZ_1M + SZ_16K), 0);
	KUNIT_EXPECT_EQ(test, viommu_i2p(c.vdom, SZ_1M - 1), 0);
	vfake_expect_same_mappings(test, c.fake, c.vdom);

	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M, SZ_16K, false), SZ_16K);
	KUNIT_EXPECT_EQ(test, viommu_i2p(c.vdom, SZ_1M), 0);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 0);
}

struct viommu_prot_case {
	const char	*name;
	int		prot;
	bool		mmio_feature;
	u32		flags;
};

static const struct viommu_prot_case viommu_prot_cases[] = {
	{ "read", IOMMU_READ, true, VIRTIO_IOMMU_MAP_F_READ },
	{ "write", IOMMU_WRITE, true, VIRTIO_IOMMU_MAP_F_WRITE },
	{ "read-write", RW, true, VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE },
	{ "mmio", RW | IOMMU_MMIO, true, VIRTIO_IOMMU_MAP_F_READ |
	  VIRTIO_IOMMU_MAP_F_WRITE | VIRTIO_IOMMU_MAP_F_MMIO },
	{ "mmio without the feature", RW | IOMMU_MMIO, false,
	  VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE },
	{ "cache and noexec ignored", RW | IOMMU_CACHE | IOMMU_NOEXEC | IOMMU_PRIV,
	  true, VIRTIO_IOMMU_MAP_F_READ | VIRTIO_IOMMU_MAP_F_WRITE },
};

static void viommu_prot_case_desc(const struct viommu_prot_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(viommu_prot, viommu_prot_cases, viommu_prot_case_desc);

/* IOMMU_* protections become MAP flags; MMIO only when negotiated, READ
 * whenever reads are allowed, no undefined flag ever (checked by the fake).
 */
static void viommu_mapping_flags(struct kunit *test)
{
	const struct viommu_prot_case *p = test->param_value;
	const struct vfake_mapping *m;
	struct viommu_endpoint *ep;
	struct viommu_domain *vdom;
	struct vfake_env *env;
	struct vfake_cfg cfg;

	vfake_default_cfg(&cfg);
	if (!p->mmio_feature)
		cfg.features &= ~BIT_ULL(VIRTIO_IOMMU_F_MMIO);
	env = vfake_env_create(test, &cfg);
	ep = vfake_env_simple_endpoint(env, 3);
	vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_2M, SZ_4M, SZ_4K, p->prot), 0);
	m = vfake_find_mapping(env->fake, vdom->id, SZ_2M);
	KUNIT_ASSERT_NOT_NULL(test, m);
	KUNIT_EXPECT_EQ(test, m->flags, p->flags);
}

/* Overlapping mappings are refused before anything reaches the device. */
static void viommu_mapping_overlap(struct kunit *test)
{
	struct viommu_dom_ctx c;
	unsigned int maps;

	viommu_dom_setup(test, &c, true);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(c.vdom, SZ_1M, SZ_4M, SZ_16K, RW), 0);
	maps = vfake_count_type(c.fake, VIRTIO_IOMMU_T_MAP);
	KUNIT_EXPECT_EQ(test, vfake_map(c.vdom, SZ_1M, SZ_8M, SZ_4K, RW), -EEXIST);
	KUNIT_EXPECT_EQ(test, vfake_map(c.vdom, SZ_1M + SZ_8K, SZ_8M, SZ_4K, RW),
			-EEXIST);
	KUNIT_EXPECT_EQ(test, vfake_map(c.vdom, SZ_1M - SZ_4K, SZ_8M, SZ_8K, RW),
			-EEXIST);
	KUNIT_EXPECT_EQ(test, vfake_map(c.vdom, SZ_1M - SZ_4K, SZ_8M, SZ_64K, RW),
			-EEXIST);
	KUNIT_EXPECT_EQ(test, viommu_sync(c.eng, VIOMMU_CAUSE_SYNC), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_MAP), maps);
	KUNIT_EXPECT_EQ(test, viommu_i2p(c.vdom, SZ_1M), SZ_4M);
	vfake_expect_same_mappings(test, c.fake, c.vdom);
}

/* Bad ranges are refused with -EINVAL and change nothing. */
static void viommu_mapping_bad_range(struct kunit *test)
{
	struct vfake_cfg cfg;
	struct vfake_env *env;
	struct viommu_endpoint *ep;
	struct viommu_domain *vdom;

	vfake_default_cfg(&cfg);
	cfg.input_start = SZ_1M;
	cfg.input_end = SZ_1G - 1;
	env = vfake_env_create(test, &cfg);
	ep = vfake_env_simple_endpoint(env, 3);
	vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	KUNIT_EXPECT_EQ(test, vfake_map(vdom, 0, SZ_4M, SZ_4K, RW), -EINVAL);
	KUNIT_EXPECT_EQ(test, vfake_map(vdom, SZ_1M - SZ_4K, SZ_4M, SZ_8K, RW),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, vfake_map(vdom, SZ_1G - SZ_4K, SZ_4M, SZ_8K, RW),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, vfake_map(vdom, SZ_2M, SZ_4M, 0, RW), -EINVAL);
	KUNIT_EXPECT_EQ(test, viommu_sync(&env->viommu->engine, VIOMMU_CAUSE_SYNC), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_MAP), 0);
	/* The edges of input_range are usable. */
	KUNIT_EXPECT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_4M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_map_sync(vdom, SZ_1G - SZ_4K, SZ_8M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, vdom->id), 2);
}

/*
 * UNMAP never splits a mapping: a range starting inside one is refused, a
 * range ending inside one takes it whole. Follows the spec's examples.
 */
static void viommu_mapping_partial_unmap(struct kunit *test)
{
	struct viommu_dom_ctx c;
	unsigned int unmaps;

	viommu_dom_setup(test, &c, true);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(c.vdom, SZ_1M, SZ_4M, SZ_64K, RW), 0);
	unmaps = vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP);

	/* Starts inside: nothing unmapped, nothing sent. */
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M + SZ_4K, SZ_4K, false), 0);
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M + SZ_32K, SZ_64K, false), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP), unmaps);
	KUNIT_EXPECT_EQ(test, viommu_i2p(c.vdom, SZ_1M + SZ_4K), SZ_4M + SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 1);

	/* Starts at its start, ends inside: the whole mapping goes. */
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M, SZ_4K, false), SZ_64K);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP), unmaps + 1);
	KUNIT_EXPECT_EQ(test, vfake_last(c.fake, VIRTIO_IOMMU_T_UNMAP)->end,
			SZ_1M + SZ_64K - 1);
	KUNIT_EXPECT_EQ(test, viommu_i2p(c.vdom, SZ_1M + SZ_4K), 0);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 0);
	vfake_expect_no_violations(test, c.fake);
}

/* One UNMAP covers several mappings and the holes between them. */
static void viommu_mapping_unmap_several(struct kunit *test)
{
	struct viommu_dom_ctx c;
	unsigned int unmaps;

	viommu_dom_setup(test, &c, true);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(c.vdom, SZ_1M, SZ_4M, SZ_8K, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(c.vdom, SZ_1M + SZ_8K, SZ_8M, SZ_8K,
					     RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(c.vdom, SZ_1M + SZ_64K, SZ_16M, SZ_4K,
					     RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 3);
	unmaps = vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP);
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M, SZ_128K, false), SZ_128K);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP),
			unmaps + 1);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 0);
	/* Unmapping nothing sends nothing. */
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M, SZ_128K, false), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP),
			unmaps + 1);
	vfake_expect_same_mappings(test, c.fake, c.vdom);
}

/* Mappings made before the first attach are replayed by it. */
static void viommu_mapping_replay(struct kunit *test)
{
	struct viommu_dom_ctx c;

	viommu_dom_setup(test, &c, false);
	KUNIT_EXPECT_EQ(test, vfake_map_sync(c.vdom, SZ_1M, SZ_4M, SZ_8K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_map_sync(c.vdom, SZ_2M, SZ_8M, SZ_4K, IOMMU_READ), 0);
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_2M, SZ_4K, false), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_map_sync(c.vdom, SZ_4M, SZ_16M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, viommu_i2p(c.vdom, SZ_1M + SZ_4K), SZ_4M + SZ_4K);
	/* Nothing reaches the device while the domain does not exist there. */
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_MAP), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_UNMAP), 0);

	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&c.vdom->domain, c.ep->dev), 0);
	KUNIT_EXPECT_TRUE(test, c.vdom->live);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_MAP), 2);
	vfake_expect_same_mappings(test, c.fake, c.vdom);

	/* The last endpoint leaves: the device forgets, the driver keeps. */
	KUNIT_ASSERT_EQ(test, viommu_attach_blocked(&viommu_blocked_domain,
						    c.ep->dev), 0);
	KUNIT_EXPECT_FALSE(test, c.vdom->live);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 0);
	KUNIT_EXPECT_NULL(test, vfake_domain(c.fake, c.vdom->id));
	KUNIT_EXPECT_EQ(test, viommu_i2p(c.vdom, SZ_1M), SZ_4M);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&c.vdom->domain, c.ep->dev), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_MAP), 4);
	vfake_expect_same_mappings(test, c.fake, c.vdom);
}

/* A replay larger than the request pool and the queue. */
static void viommu_mapping_replay_large(struct kunit *test)
{
	struct vfake_cfg cfg;
	struct vfake_env *env;
	struct viommu_endpoint *ep;
	struct viommu_domain *vdom;
	unsigned int i, nr = 80;

	vfake_default_cfg(&cfg);
	cfg.nr_slots = 8;
	cfg.capacity = 4;
	env = vfake_env_create(test, &cfg);
	ep = vfake_env_simple_endpoint(env, 3);
	vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
	for (i = 0; i < nr; i++)
		KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_1M + i * SZ_8K,
						     SZ_16M + i * SZ_64K, SZ_4K, RW), 0);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_MAP), nr);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, vdom->id), nr);
	vfake_expect_same_mappings(test, env->fake, vdom);
}

/* A failed replay is reported by the attach. */
static void viommu_mapping_replay_failure(struct kunit *test)
{
	struct viommu_dom_ctx c;

	viommu_dom_setup(test, &c, false);
	KUNIT_EXPECT_EQ(test, vfake_map_sync(c.vdom, SZ_1M, SZ_4M, SZ_8K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_map_sync(c.vdom, SZ_2M, SZ_8M, SZ_8K, RW), 0);
	vfake_inject(c.fake, VIRTIO_IOMMU_T_MAP, 2, VIRTIO_IOMMU_S_NOMEM);
	KUNIT_EXPECT_LT(test, viommu_attach_paging(&c.vdom->domain, c.ep->dev), 0);
}

/* Pieces of one mapping call travel as one MAP, after one kick. */
struct viommu_batch_case {
	const char	*name;
	unsigned int	batching;
	unsigned int	pieces;
	bool		contiguous;
	unsigned int	maps;		/* MAP requests expected */
	unsigned int	kicks;		/* notifications expected */
};

static const struct viommu_batch_case viommu_batch_cases[] = {
	{ "batched, contiguous", 1, 8, true, 1, 1 },
	{ "batched, scattered", 1, 8, false, 8, 1 },
	{ "unbatched, contiguous", 0, 8, true, 8, 8 },
	{ "unbatched, scattered", 0, 8, false, 8, 8 },
	{ "batched, one piece", 1, 1, true, 1, 1 },
};

static void viommu_batch_case_desc(const struct viommu_batch_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(viommu_batch, viommu_batch_cases, viommu_batch_case_desc);

static void viommu_map_batching_kicks(struct kunit *test)
{
	const struct viommu_batch_case *b = test->param_value;
	struct viommu_dom_ctx c;
	unsigned int i, kicks, notifies;
	u64 iova, pa;

	viommu_dom_setup(test, &c, true);
	WRITE_ONCE(c.eng->knobs.map_batching, b->batching);
	kicks = viommu_stat_read(c.eng, VIOMMU_STAT_KICKS);
	notifies = c.fake->nr_notify;
	vfake_reset_counts(c.fake);
	/* The core's way: one map_pages per page-size piece, then one sync. */
	for (i = 0; i < b->pieces; i++) {
		iova = SZ_1M + i * SZ_4K;
		pa = b->contiguous ? SZ_4M + i * SZ_4K : SZ_4M + i * SZ_64K;
		KUNIT_ASSERT_EQ(test, vfake_map_piece(c.vdom, iova, pa, RW), 0);
	}
	KUNIT_EXPECT_EQ(test, vfake_sync_map(c.vdom, SZ_1M, b->pieces * SZ_4K), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_MAP), b->maps);
	KUNIT_EXPECT_EQ(test, c.fake->nr_notify, b->kicks);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_KICKS) - kicks,
			b->kicks);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_REQ_MAP), b->maps);
	if (b->batching && b->contiguous)
		KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_MERGED_MAPS),
				b->pieces - 1);
	/* One driver node per device mapping. */
	vfake_expect_same_mappings(test, c.fake, c.vdom);
	for (i = 0; i < b->pieces; i++)
		KUNIT_EXPECT_EQ(test, viommu_i2p(c.vdom, SZ_1M + i * SZ_4K + 8),
				(b->contiguous ? SZ_4M + i * SZ_4K :
				 SZ_4M + i * SZ_64K) + 8);
	/* Unmapping the whole call removes every mapping of it. */
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M, b->pieces * SZ_4K, false),
			b->pieces * SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 0);
	(void)notifies;
}

/* Merging stops at different flags, a physical gap or another domain. */
static void viommu_map_batching_merge_limits(struct kunit *test)
{
	struct viommu_dom_ctx c;
	struct viommu_domain *other;
	struct viommu_endpoint *ep2;

	viommu_dom_setup(test, &c, true);
	ep2 = vfake_env_simple_endpoint(c.env, 4);
	other = vfake_env_domain(c.env, ep2, IOMMU_DOMAIN_UNMANAGED);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&other->domain, ep2->dev), 0);
	vfake_reset_counts(c.fake);

	KUNIT_ASSERT_EQ(test, vfake_map_piece(c.vdom, SZ_1M, SZ_4M, RW), 0);
	/* Same call, read-only: a new MAP. */
	KUNIT_ASSERT_EQ(test, vfake_map_piece(c.vdom, SZ_1M + SZ_4K, SZ_4M + SZ_4K,
					      IOMMU_READ), 0);
	/* Physical gap: a new MAP. */
	KUNIT_ASSERT_EQ(test, vfake_map_piece(c.vdom, SZ_1M + SZ_8K, SZ_8M,
					      IOMMU_READ), 0);
	/* Another domain, contiguous addresses: a new MAP. */
	KUNIT_ASSERT_EQ(test, vfake_map_piece(other, SZ_1M + SZ_8K + SZ_4K,
					      SZ_8M + SZ_4K, IOMMU_READ), 0);
	KUNIT_EXPECT_EQ(test, vfake_sync_map(c.vdom, SZ_1M, SZ_16K), 0);
	KUNIT_EXPECT_EQ(test, vfake_sync_map(other, SZ_1M, SZ_16K), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(c.fake, VIRTIO_IOMMU_T_MAP), 4);
	vfake_expect_same_mappings(test, c.fake, c.vdom);
	vfake_expect_same_mappings(test, c.fake, other);
}

/* A MAP failing in the middle of a batch is reported by the map sync of
 * the call it belongs to, and only by it.
 */
static void viommu_map_batching_failure(struct kunit *test)
{
	struct viommu_dom_ctx c;
	unsigned int i;

	viommu_dom_setup(test, &c, true);
	/* Five scattered pieces: five MAPs in one batch, the third fails. */
	for (i = 0; i < 5; i++)
		KUNIT_ASSERT_EQ(test, vfake_map(c.vdom, SZ_1M + i * SZ_4K,
						SZ_4M + i * SZ_64K, SZ_4K, RW), 0);
	vfake_inject(c.fake, VIRTIO_IOMMU_T_MAP, 3, VIRTIO_IOMMU_S_NOMEM);
	KUNIT_EXPECT_LT(test, vfake_sync_map(c.vdom, SZ_1M, 5 * SZ_4K), 0);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 4);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(c.eng, VIOMMU_STAT_ERR_NOMEM), 1);
	/* iommu_map() unmaps the whole call on error. */
	KUNIT_EXPECT_EQ(test, vfake_unmap(c.vdom, SZ_1M, 5 * SZ_4K, false),
			5 * SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(c.fake, c.vdom->id), 0);
	vfake_expect_same_mappings(test, c.fake, c.vdom);

	/* The failure was consumed: the next call succeeds. */
	KUNIT_EXPECT_EQ(test, vfake_map_sync(c.vdom, SZ_1M, SZ_4M, SZ_4K, RW), 0);
	/* A failure outside the synced range is not reported for it. */
	KUNIT_ASSERT_EQ(test, vfake_map(c.vdom, SZ_2M, SZ_8M, SZ_4K, RW), 0);
	vfake_inject(c.fake, VIRTIO_IOMMU_T_MAP, 1, VIRTIO_IOMMU_S_INVAL);
	KUNIT_ASSERT_EQ(test, vfake_map(c.vdom, SZ_4M, SZ_16M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_sync_map(c.vdom, SZ_4M, SZ_4K), 0);
	KUNIT_EXPECT_LT(test, vfake_sync_map(c.vdom, SZ_2M, SZ_4K), 0);
}

/* With map_batching 0 a failed MAP fails the map_pages call itself. */
static void viommu_map_unbatched_failure(struct kunit *test)
{
	struct viommu_dom_ctx c;

	viommu_dom_setup(test, &c, true);
	WRITE_ONCE(c.eng->knobs.map_batching, 0);
	vfake_inject(c.fake, VIRTIO_IOMMU_T_MAP, 1, VIRTIO_IOMMU_S_RANGE);
	KUNIT_EXPECT_LT(test, vfake_map(c.vdom, SZ_1M, SZ_4M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, viommu_i2p(c.vdom, SZ_1M), 0);
	KUNIT_EXPECT_EQ(test, vfake_map(c.vdom, SZ_1M, SZ_4M, SZ_4K, RW), 0);
	vfake_expect_same_mappings(test, c.fake, c.vdom);
}

static struct kunit_case viommu_mapping_test_cases[] = {
	KUNIT_CASE(viommu_mapping_geometry),
	KUNIT_CASE(viommu_mapping_domain_ids),
	KUNIT_CASE(viommu_mapping_basic),
	KUNIT_CASE_PARAM(viommu_mapping_flags, viommu_prot_gen_params),
	KUNIT_CASE(viommu_mapping_overlap),
	KUNIT_CASE(viommu_mapping_bad_range),
	KUNIT_CASE(viommu_mapping_partial_unmap),
	KUNIT_CASE(viommu_mapping_unmap_several),
	KUNIT_CASE(viommu_mapping_replay),
	KUNIT_CASE(viommu_mapping_replay_large),
	KUNIT_CASE(viommu_mapping_replay_failure),
	{}
};

static struct kunit_suite viommu_mapping_suite = {
	.name = "viommu_mapping",
	.test_cases = viommu_mapping_test_cases,
};

static struct kunit_case viommu_map_batching_test_cases[] = {
	KUNIT_CASE_PARAM(viommu_map_batching_kicks, viommu_batch_gen_params),
	KUNIT_CASE(viommu_map_batching_merge_limits),
	KUNIT_CASE(viommu_map_batching_failure),
	KUNIT_CASE(viommu_map_unbatched_failure),
	{}
};

static struct kunit_suite viommu_map_batching_suite = {
	.name = "viommu_map_batching",
	.test_cases = viommu_map_batching_test_cases,
};

kunit_test_suites(&viommu_mapping_suite, &viommu_map_batching_suite);
