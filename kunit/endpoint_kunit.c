// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq KUnit: endpoints (endpoint.c): probe, attach to paging,
 * identity and blocked domains, release, PROBE property parsing and the
 * reserved regions reported to the core; the device link and the deferred
 * UNMAPs of an endpoint that leaves.
 */

#include <kunit/test.h>
#include <linux/device.h>
#include <linux/iommu.h>
#include <linux/kref.h>

#include "viommu_fake.h"

#define RW	(IOMMU_READ | IOMMU_WRITE)
#define F(x)	BIT_ULL(VIRTIO_IOMMU_F_##x)

/* Attach, detach, identity and blocked domains. */

static void viommu_attach_paging_domain(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_endpoint *ep = vfake_env_simple_endpoint(env, 3);
	struct viommu_domain *vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
	const struct vfake_record *r;

	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	r = vfake_last(env->fake, VIRTIO_IOMMU_T_ATTACH);
	KUNIT_ASSERT_NOT_NULL(test, r);
	KUNIT_EXPECT_EQ(test, r->domain, vdom->id);
	KUNIT_EXPECT_EQ(test, r->endpoint, 3);
	KUNIT_EXPECT_EQ(test, r->flags, 0);
	KUNIT_EXPECT_EQ(test, vfake_endpoint_domain(env->fake, 3), vdom->id);
	KUNIT_EXPECT_EQ(test, ep->attached, VIOMMU_ATTACHED_PAGING);
	KUNIT_EXPECT_PTR_EQ(test, ep->vdomain, vdom);
	KUNIT_EXPECT_EQ(test, vdom->nr_endpoints, 1);
	KUNIT_EXPECT_TRUE(test, vdom->live);
	/* Attaching again to the same domain sends nothing. */
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_ATTACH), 1);
	KUNIT_EXPECT_EQ(test, vdom->nr_endpoints, 1);
}

/* Moving an endpoint: the old domain ceases to exist on the device when its
 * last endpoint leaves, and the driver stops sending requests for it.
 */
static void viommu_attach_move(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_endpoint *ep = vfake_env_simple_endpoint(env, 3);
	struct viommu_domain *a = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
	struct viommu_domain *b = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
	unsigned int unmaps;

	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&a->domain, ep->dev), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(a, SZ_1M, SZ_4M, SZ_8K, RW), 0);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&b->domain, ep->dev), 0);
	KUNIT_EXPECT_EQ(test, vfake_endpoint_domain(env->fake, 3), b->id);
	KUNIT_EXPECT_NULL(test, vfake_domain(env->fake, a->id));
	KUNIT_EXPECT_FALSE(test, a->live);
	KUNIT_EXPECT_TRUE(test, b->live);
	KUNIT_EXPECT_EQ(test, a->nr_endpoints, 0);
	/* Unmapping in the dead domain does not reach the device. */
	unmaps = vfake_count_type(env->fake, VIRTIO_IOMMU_T_UNMAP);
	KUNIT_EXPECT_EQ(test, vfake_unmap(a, SZ_1M, SZ_8K, false), SZ_8K);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_UNMAP), unmaps);
	/* Nor does mapping in it. */
	KUNIT_EXPECT_EQ(test, vfake_map_sync(a, SZ_2M, SZ_4M, SZ_8K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_MAP), 1);
	/* The freed domain's requests never outlive it. */
	vfake_env_free_domain(env, a);
}

/* Two endpoints share a domain; the domain lives until both left. */
static void viommu_attach_shared(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_endpoint *ep1 = vfake_env_simple_endpoint(env, 3);
	struct viommu_endpoint *ep2 = vfake_env_simple_endpoint(env, 4);
	struct viommu_domain *vdom = vfake_env_domain(env, ep1, IOMMU_DOMAIN_UNMANAGED);

	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep1->dev), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_4M, SZ_8K, RW), 0);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep2->dev), 0);
	/* The second ATTACH does not replay the mappings. */
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_MAP), 1);
	KUNIT_EXPECT_EQ(test, vdom->nr_endpoints, 2);
	vfake_env_release_endpoint(env, ep1);
	KUNIT_EXPECT_EQ(test, vfake_last(env->fake, VIRTIO_IOMMU_T_DETACH)->domain,
			vdom->id);
	KUNIT_EXPECT_TRUE(test, vdom->live);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, vdom->id), 1);
	vfake_env_release_endpoint(env, ep2);
	KUNIT_EXPECT_FALSE(test, vdom->live);
	KUNIT_EXPECT_NULL(test, vfake_domain(env->fake, vdom->id));
}

/* An endpoint with several IDs: one request per ID, PROBE first. */
static void viommu_attach_multi_id(struct kunit *test)
{
	static const u32 ids[] = { 8, 9 };
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_endpoint *ep;
	struct viommu_domain *vdom;
	unsigned int i;

	vfake_add_endpoint(env->fake, 8, NULL, 0);
	vfake_add_endpoint(env->fake, 9, NULL, 0);
	ep = vfake_env_endpoint(env, ids, 2, false);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_PROBE), 2);
	vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_ATTACH), 2);
	KUNIT_EXPECT_EQ(test, vfake_endpoint_domain(env->fake, 8), vdom->id);
	KUNIT_EXPECT_EQ(test, vfake_endpoint_domain(env->fake, 9), vdom->id);
	/* Requests in order: PROBE 8, PROBE 9, ATTACH 8, ATTACH 9. */
	for (i = 0; i < 4; i++) {
		KUNIT_EXPECT_EQ(test, env->fake->records[i].type,
				i < 2 ? VIRTIO_IOMMU_T_PROBE : VIRTIO_IOMMU_T_ATTACH);
		KUNIT_EXPECT_EQ(test, env->fake->records[i].endpoint, ids[i % 2]);
	}
	vfake_env_release_endpoint(env, ep);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_DETACH), 2);
	KUNIT_EXPECT_EQ(test, vfake_endpoint_domain(env->fake, 8), 0);
}

/* Identity domain with BYPASS_CONFIG: an ATTACH with ATTACH_F_BYPASS. */
static void viommu_attach_identity_bypass_config(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_dev *viommu = env->viommu;
	struct viommu_endpoint *ep1 = vfake_env_simple_endpoint(env, 3);
	struct viommu_endpoint *ep2 = vfake_env_simple_endpoint(env, 4);
	const struct vfake_record *r;

	KUNIT_EXPECT_EQ(test, viommu_def_domain_type(ep1->dev), 0);
	/* Bypass domains cannot be given MAP or UNMAP requests at all. */
	KUNIT_EXPECT_NULL(test, viommu_identity_domain.ops->map_pages);
	KUNIT_EXPECT_NULL(test, viommu_identity_domain.ops->unmap_pages);
	KUNIT_EXPECT_NULL(test, viommu_blocked_domain.ops->map_pages);
	KUNIT_ASSERT_EQ(test, viommu_attach_identity(&viommu_identity_domain,
						     ep1->dev), 0);
	r = vfake_last(env->fake, VIRTIO_IOMMU_T_ATTACH);
	KUNIT_ASSERT_NOT_NULL(test, r);
	KUNIT_EXPECT_EQ(test, r->domain, viommu->identity_id);
	KUNIT_EXPECT_EQ(test, r->flags, VIRTIO_IOMMU_ATTACH_F_BYPASS);
	KUNIT_ASSERT_NOT_NULL(test, vfake_domain(env->fake, viommu->identity_id));
	KUNIT_EXPECT_TRUE(test, vfake_domain(env->fake, viommu->identity_id)->bypass);
	KUNIT_EXPECT_EQ(test, ep1->attached, VIOMMU_ATTACHED_IDENTITY);
	/* Again: nothing sent. The second endpoint joins with the flag set. */
	KUNIT_ASSERT_EQ(test, viommu_attach_identity(&viommu_identity_domain,
						     ep1->dev), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_ATTACH), 1);
	KUNIT_ASSERT_EQ(test, viommu_attach_identity(&viommu_identity_domain,
						     ep2->dev), 0);
	KUNIT_EXPECT_EQ(test, viommu->identity_users, 2);
	vfake_env_release_endpoint(env, ep1);
	r = vfake_last(env->fake, VIRTIO_IOMMU_T_DETACH);
	KUNIT_ASSERT_NOT_NULL(test, r);
	KUNIT_EXPECT_EQ(test, r->domain, viommu->identity_id);
	KUNIT_EXPECT_GT(test, viommu->identity_users, 0U);
	vfake_env_release_endpoint(env, ep2);
	KUNIT_EXPECT_EQ(test, viommu->identity_users, 0U);
	KUNIT_EXPECT_NULL(test, vfake_domain(env->fake, viommu->identity_id));
}

/* Identity domain with the legacy BYPASS feature: a DETACH. */
static void viommu_attach_identity_legacy(struct kunit *test)
{
	struct vfake_cfg cfg;
	struct vfake_env *env;
	struct viommu_endpoint *ep;
	struct viommu_domain *vdom;
	unsigned int detaches;

	vfake_default_cfg(&cfg);
	cfg.features &= ~F(BYPASS_CONFIG);
	cfg.features |= F(BYPASS);
	env = vfake_env_create(test, &cfg);
	KUNIT_EXPECT_EQ(test, env->viommu->identity_id, 0);
	ep = vfake_env_simple_endpoint(env, 3);
	KUNIT_EXPECT_EQ(test, viommu_def_domain_type(ep->dev), 0);
	/* Not attached yet: already bypassing, nothing to send. */
	KUNIT_ASSERT_EQ(test, viommu_attach_identity(&viommu_identity_domain,
						     ep->dev), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_DETACH), 0);
	vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	KUNIT_ASSERT_EQ(test, viommu_attach_identity(&viommu_identity_domain,
						     ep->dev), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_DETACH), 1);
	KUNIT_EXPECT_EQ(test, vfake_endpoint_domain(env->fake, 3), 0);
	KUNIT_EXPECT_FALSE(test, vdom->live);
	/* No ATTACH ever carried the bypass flag (the fake checks it). */
	detaches = vfake_count_type(env->fake, VIRTIO_IOMMU_T_DETACH);
	vfake_env_release_endpoint(env, ep);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_DETACH),
			detaches);
}

/* No bypass support at all: identity refused, DMA domains preferred. */
static void viommu_attach_identity_unsupported(struct kunit *test)
{
	struct vfake_cfg cfg;
	struct vfake_env *env;
	struct viommu_endpoint *ep;

	vfake_default_cfg(&cfg);
	cfg.features &= ~(F(BYPASS_CONFIG) | F(BYPASS));
	env = vfake_env_create(test, &cfg);
	ep = vfake_env_simple_endpoint(env, 3);
	/* No preference unless identity is the kernel's default. */
	KUNIT_EXPECT_EQ(test, viommu_def_domain_type(ep->dev),
			iommu_default_passthrough() ? (int)IOMMU_DOMAIN_DMA : 0);
	KUNIT_EXPECT_EQ(test, viommu_attach_identity(&viommu_identity_domain,
						     ep->dev), -EOPNOTSUPP);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_ATTACH), 0);
	KUNIT_EXPECT_EQ(test, ep->attached, VIOMMU_DETACHED);
}

/* Blocked domain: an empty non-bypass domain that never gets mappings. */
static void viommu_attach_blocked_domain(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_dev *viommu = env->viommu;
	struct viommu_endpoint *ep = vfake_env_simple_endpoint(env, 3);
	const struct vfake_domain *d;
	const struct vfake_record *r;

	KUNIT_ASSERT_EQ(test, viommu_attach_blocked(&viommu_blocked_domain,
						    ep->dev), 0);
	r = vfake_last(env->fake, VIRTIO_IOMMU_T_ATTACH);
	KUNIT_ASSERT_NOT_NULL(test, r);
	KUNIT_EXPECT_EQ(test, r->domain, viommu->blocking_id);
	KUNIT_EXPECT_EQ(test, r->flags, 0);
	d = vfake_domain(env->fake, viommu->blocking_id);
	KUNIT_ASSERT_NOT_NULL(test, d);
	KUNIT_EXPECT_FALSE(test, d->bypass);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, viommu->blocking_id), 0);
	KUNIT_EXPECT_EQ(test, ep->attached, VIOMMU_ATTACHED_BLOCKED);
	KUNIT_ASSERT_EQ(test, viommu_attach_blocked(&viommu_blocked_domain,
						    ep->dev), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_ATTACH), 1);
	/* From blocked to identity and back. */
	KUNIT_ASSERT_EQ(test, viommu_attach_identity(&viommu_identity_domain,
						     ep->dev), 0);
	KUNIT_EXPECT_EQ(test, viommu->blocking_users, 0U);
	KUNIT_ASSERT_EQ(test, viommu_attach_blocked(&viommu_blocked_domain,
						    ep->dev), 0);
	KUNIT_EXPECT_EQ(test, vfake_endpoint_domain(env->fake, 3), viommu->blocking_id);
	KUNIT_EXPECT_EQ(test, viommu->identity_users, 0U);
}

/*
 * No domain ID left for the blocking domain: blocking a detached endpoint
 * sends nothing (detached is blocked once bypass is 0), and releasing it
 * sends no DETACH either.
 */
static void viommu_attach_blocked_unavailable(struct kunit *test)
{
	struct vfake_cfg cfg;
	struct vfake_env *env;
	struct viommu_endpoint *ep;

	vfake_default_cfg(&cfg);
	cfg.domain_start = 1;
	cfg.domain_end = 2;
	env = vfake_env_create(test, &cfg);
	ep = vfake_env_simple_endpoint(env, 3);
	KUNIT_EXPECT_EQ(test, viommu_attach_blocked(&viommu_blocked_domain, ep->dev),
			0);
	KUNIT_EXPECT_EQ(test, ep->attached, VIOMMU_ATTACHED_BLOCKED);
	KUNIT_EXPECT_EQ(test, env->fake->config.bypass, 0);
	vfake_env_release_endpoint(env, ep);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_ATTACH), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_DETACH), 0);
}

/* A domain of another instance cannot be attached. */
static void viommu_attach_other_instance(struct kunit *test)
{
	struct vfake_env *env1 = vfake_env_default(test);
	struct vfake_env *env2 = vfake_env_default(test);
	struct viommu_endpoint *ep1 = vfake_env_simple_endpoint(env1, 3);
	struct viommu_endpoint *ep2 = vfake_env_simple_endpoint(env2, 3);
	struct viommu_domain *vdom2 = vfake_env_domain(env2, ep2, IOMMU_DOMAIN_UNMANAGED);

	KUNIT_EXPECT_EQ(test, viommu_attach_paging(&vdom2->domain, ep1->dev), -EINVAL);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env1->fake, VIRTIO_IOMMU_T_ATTACH), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env2->fake, VIRTIO_IOMMU_T_ATTACH), 0);
}

/* probe_device refuses devices that are not ours. */
static void viommu_attach_probe_refused(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct fwnode_handle other;
	struct viommu_endpoint *ep;
	u32 id = 3;

	fwnode_init(&other, NULL);
	vfake_add_endpoint(env->fake, id, NULL, 0);
	ep = vfake_env_try_endpoint(env, &id, 1, false, &other);
	KUNIT_EXPECT_EQ(test, PTR_ERR_OR_ZERO(ep), -ENODEV);
	ep = vfake_env_try_endpoint(env, &id, 0, false, &env->fwnode);
	KUNIT_EXPECT_EQ(test, PTR_ERR_OR_ZERO(ep), -ENODEV);
	/* A PROBE the device rejects fails the probe. */
	vfake_inject(env->fake, VIRTIO_IOMMU_T_PROBE, 1, VIRTIO_IOMMU_S_NOENT);
	ep = vfake_env_try_endpoint(env, &id, 1, false, &env->fwnode);
	KUNIT_EXPECT_EQ(test, PTR_ERR_OR_ZERO(ep), -ENOENT);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_ATTACH), 0);
}

/* PROBE requests: sizes, and only when negotiated with a probe_size. */
struct viommu_probe_req_case {
	const char	*name;
	bool		feature;
	u32		probe_size;
	unsigned int	probes;
};

static const struct viommu_probe_req_case viommu_probe_req_cases[] = {
	{ "probe_size 512", true, 512, 1 },
	{ "probe_size 4", true, 4, 1 },
	{ "probe_size 64K", true, SZ_64K, 1 },
	{ "probe_size 0", true, 0, 0 },
	{ "no PROBE feature", false, 512, 0 },
};

static void viommu_probe_req_case_desc(const struct viommu_probe_req_case *c,
				       char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(viommu_probe_req, viommu_probe_req_cases,
		  viommu_probe_req_case_desc);

static void viommu_probe_request(struct kunit *test)
{
	const struct viommu_probe_req_case *p = test->param_value;
	struct viommu_endpoint *ep;
	struct viommu_domain *vdom;
	struct vfake_env *env;
	struct vfake_cfg cfg;

	vfake_default_cfg(&cfg);
	cfg.probe_size = p->probe_size;
	if (!p->feature)
		cfg.features &= ~F(PROBE);
	env = vfake_env_create(test, &cfg);
	ep = vfake_env_simple_endpoint(env, 3);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_PROBE),
			p->probes);
	vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
	KUNIT_EXPECT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	/* Sizes, reserved bytes and PROBE-before-ATTACH: the fake's checks. */
	vfake_expect_no_violations(test, env->fake);
}

/* PROBE properties. */

struct viommu_props {
	u8	buf[256];
	size_t	len;
};

static void viommu_prop(struct viommu_props *p, u16 type, u16 len,
			const void *val)
{
	struct virtio_iommu_probe_property hdr = {
		.type = cpu_to_le16(type), .length = cpu_to_le16(len),
	};

	memcpy(p->buf + p->len, &hdr, sizeof(hdr));
	if (val)
		memcpy(p->buf + p->len + sizeof(hdr), val, len);
	p->len += sizeof(hdr) + len;
}

static void viommu_resv(struct viommu_props *p, u16 type, u16 len, u8 subtype,
			u64 start, u64 end, u8 reserved)
{
	struct virtio_iommu_probe_resv_mem r = {
		.subtype = subtype,
		.reserved = { reserved, reserved, reserved },
		.start = cpu_to_le64(start),
		.end = cpu_to_le64(end),
	};
	u8 val[64] = {};

	memcpy(val, (u8 *)&r + sizeof(r.head), sizeof(r) - sizeof(r.head));
	viommu_prop(p, type, len, val);
}

#define RESV_LEN	(sizeof(struct virtio_iommu_probe_resv_mem) - \
			 sizeof(struct virtio_iommu_probe_property))
#define T_RESV		VIRTIO_IOMMU_PROBE_T_RESV_MEM
#define S_RSV		VIRTIO_IOMMU_RESV_MEM_T_RESERVED
#define S_MSI		VIRTIO_IOMMU_RESV_MEM_T_MSI

struct viommu_region {
	u64			start;
	u64			last;
	enum iommu_resv_type	type;
};

struct viommu_parse_case {
	const char		*name;
	void			(*build)(struct viommu_props *p);
	size_t			len;		/* 0: the built length */
	int			ret;
	struct viommu_region	regions[3];	/* without the SW MSI */
	unsigned int		nr_regions;
	bool			sw_msi;
};

static void build_empty(struct viommu_props *p) { }

static void build_reserved(struct viommu_props *p)
{
	viommu_resv(p, T_RESV, RESV_LEN, S_RSV, 0x10000, 0x1ffff, 0);
}

static void build_msi(struct viommu_props *p)
{
	viommu_resv(p, T_RESV, RESV_LEN, S_MSI, 0xfee00000, 0xfeefffff, 0);
}

static void build_unknown_subtype(struct viommu_props *p)
{
	viommu_resv(p, T_RESV, RESV_LEN, 7, 0x10000, 0x1ffff, 0);
}

static void build_unknown_type(struct viommu_props *p)
{
	u8 junk[12] = { 0xff, 0xff, 0xff, 0xff };

	viommu_prop(p, 0x2, sizeof(junk), junk);
	viommu_prop(p, 0xabc, 0, NULL);
	build_msi(p);
}

static void build_type_reserved_bits(struct viommu_props *p)
{
	/* An MSI region with a reserved type bit: ignored, parsing goes on. */
	viommu_resv(p, T_RESV | 0x1000, RESV_LEN, S_MSI, 0xfee00000, 0xfeefffff, 0);
	viommu_resv(p, T_RESV | 0x8000, RESV_LEN, S_MSI, 0xfee00000, 0xfeefffff, 0);
	build_reserved(p);
}

static void build_resv_reserved_bytes(struct viommu_props *p)
{
	viommu_resv(p, T_RESV, RESV_LEN, S_MSI, 0xfee00000, 0xfeefffff, 0x5a);
}

static void build_long_resv(struct viommu_props *p)
{
	/* Longer than the driver knows: the next one is at length + 4. */
	viommu_resv(p, T_RESV, RESV_LEN + 12, S_RSV, 0x10000, 0x1ffff, 0);
	build_msi(p);
}

static void build_short_resv(struct viommu_props *p)
{
	viommu_resv(p, T_RESV, 8, S_MSI, 0xfee00000, 0xfeefffff, 0);
	build_reserved(p);
}

static void build_truncated(struct viommu_props *p)
{
	build_reserved(p);
	/* Claims more bytes than are left. */
	viommu_resv(p, T_RESV, RESV_LEN, S_MSI, 0xfee00000, 0xfeefffff, 0);
	p->len -= 4;
}

static void build_header_cut(struct viommu_props *p)
{
	build_reserved(p);
	build_msi(p);
}

static void build_overlapping(struct viommu_props *p)
{
	viommu_resv(p, T_RESV, RESV_LEN, S_RSV, 0x10000, 0x2ffff, 0);
	viommu_resv(p, T_RESV, RESV_LEN, S_RSV, 0x20000, 0x3ffff, 0);
}

static void build_reversed(struct viommu_props *p)
{
	viommu_resv(p, T_RESV, RESV_LEN, S_RSV, 0x2ffff, 0x10000, 0);
	build_msi(p);
}

static void build_none_ends(struct viommu_props *p)
{
	build_reserved(p);
	viommu_prop(p, 0, 0, NULL);
	build_msi(p);
}

static void build_huge_length(struct viommu_props *p)
{
	build_reserved(p);
	viommu_prop(p, T_RESV, 0xffff, NULL);
	p->len = 256;
}

static const struct viommu_parse_case viommu_parse_cases[] = {
	{ "empty", build_empty, 64, 0, {}, 0, true },
	{ "reserved region", build_reserved, 0, 1,
	  { { 0x10000, 0x1ffff, IOMMU_RESV_RESERVED } }, 1, true },
	{ "MSI region", build_msi, 0, 1,
	  { { 0xfee00000, 0xfeefffff, IOMMU_RESV_MSI } }, 1, false },
	{ "unknown subtype is reserved", build_unknown_subtype, 0, 1,
	  { { 0x10000, 0x1ffff, IOMMU_RESV_RESERVED } }, 1, true },
	{ "unknown types skipped", build_unknown_type, 0, 1,
	  { { 0xfee00000, 0xfeefffff, IOMMU_RESV_MSI } }, 1, false },
	{ "reserved type bits ignored", build_type_reserved_bits, 0, 1,
	  { { 0x10000, 0x1ffff, IOMMU_RESV_RESERVED } }, 1, true },
	{ "RESV_MEM reserved bytes ignored", build_resv_reserved_bytes, 0, 1,
	  { { 0xfee00000, 0xfeefffff, IOMMU_RESV_MSI } }, 1, false },
	{ "longer RESV_MEM", build_long_resv, 0, 2,
	  { { 0x10000, 0x1ffff, IOMMU_RESV_RESERVED },
	    { 0xfee00000, 0xfeefffff, IOMMU_RESV_MSI } }, 2, false },
	{ "short RESV_MEM skipped", build_short_resv, 0, 1,
	  { { 0x10000, 0x1ffff, IOMMU_RESV_RESERVED } }, 1, true },
	{ "truncated property", build_truncated, 0, -EINVAL,
	  { { 0x10000, 0x1ffff, IOMMU_RESV_RESERVED } }, 1, true },
	{ "area ends inside a header", build_header_cut,
	  (RESV_LEN + 4) + 2, 1,
	  { { 0x10000, 0x1ffff, IOMMU_RESV_RESERVED } }, 1, true },
	{ "overlapping regions", build_overlapping, 0, 2,
	  { { 0x10000, 0x2ffff, IOMMU_RESV_RESERVED },
	    { 0x20000, 0x3ffff, IOMMU_RESV_RESERVED } }, 2, true },
	{ "reversed region ignored", build_reversed, 0, -1,
	  { { 0xfee00000, 0xfeefffff, IOMMU_RESV_MSI } }, 1, false },
	{ "NONE ends the list", build_none_ends, 0, 1,
	  { { 0x10000, 0x1ffff, IOMMU_RESV_RESERVED } }, 1, true },
	{ "length beyond probe_size", build_huge_length, 0, -EINVAL,
	  { { 0x10000, 0x1ffff, IOMMU_RESV_RESERVED } }, 1, true },
};

static void viommu_parse_case_desc(const struct viommu_parse_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(viommu_parse, viommu_parse_cases, viommu_parse_case_desc);

static void viommu_expect_regions(struct kunit *test, struct device *dev,
				  const struct viommu_region *want,
				  unsigned int nr, bool sw_msi)
{
	struct iommu_resv_region *r;
	unsigned int i = 0, msi = 0;
	LIST_HEAD(list);

	viommu_get_resv_regions(dev, &list);
	list_for_each_entry(r, &list, list) {
		if (r->type == IOMMU_RESV_SW_MSI) {
			msi++;
			KUNIT_EXPECT_EQ(test, r->prot, IOMMU_READ | IOMMU_WRITE |
					IOMMU_MMIO);
			continue;
		}
		if (i >= nr) {
			KUNIT_FAIL(test, "unexpected region 0x%llx+0x%zx type %d",
				   (u64)r->start, r->length, r->type);
			continue;
		}
		KUNIT_EXPECT_EQ(test, (u64)r->start, want[i].start);
		KUNIT_EXPECT_EQ(test, (u64)(r->start + r->length - 1), want[i].last);
		KUNIT_EXPECT_EQ(test, r->type, want[i].type);
		if (want[i].type == IOMMU_RESV_RESERVED)
			KUNIT_EXPECT_EQ(test, r->prot, 0);
		i++;
	}
	KUNIT_EXPECT_EQ(test, i, nr);
	KUNIT_EXPECT_EQ(test, msi, sw_msi ? 1 : 0);
	iommu_put_resv_regions(dev, &list);
}

/* viommu_parse_probe() on well-formed and malformed property lists. */
static void viommu_probe_parse(struct kunit *test)
{
	const struct viommu_parse_case *c = test->param_value;
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_endpoint *ep = vfake_env_simple_endpoint(env, 3);
	struct viommu_props *p;
	int ret;

	p = kunit_kzalloc(test, sizeof(*p), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, p);
	c->build(p);
	ret = viommu_parse_probe(ep, p->buf, c->len ?: p->len);
	if (c->ret >= 0 || c->ret == -EINVAL)
		KUNIT_EXPECT_EQ(test, ret, c->ret);
	viommu_expect_regions(test, ep->dev, c->regions, c->nr_regions, c->sw_msi);
}

/* End to end: the device's properties become the endpoint's regions. */
static void viommu_probe_end_to_end(struct kunit *test)
{
	static const struct viommu_region want[] = {
		{ 0x10000, 0x1ffff, IOMMU_RESV_RESERVED },
		{ 0xfee00000, 0xfeefffff, IOMMU_RESV_MSI },
	};
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_endpoint *ep;
	struct viommu_props *p;
	u32 id = 5;

	p = kunit_kzalloc(test, sizeof(*p), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, p);
	build_long_resv(p);
	vfake_add_endpoint(env->fake, id, p->buf, p->len);
	ep = vfake_env_endpoint(env, &id, 1, false);
	viommu_expect_regions(test, ep->dev, want, ARRAY_SIZE(want), false);
}

/* Leaving and coming back: the device link and deferred UNMAPs. */

/*
 * Links from @consumer to @supplier and the references they hold. The
 * driver core keeps its link lock to itself; nothing else links these
 * test devices, so the lists are read as they are.
 */
static unsigned int viommu_links(struct device *consumer,
				 struct device *supplier, unsigned int *refs)
{
	struct device_link *link;
	unsigned int nr = 0;

	*refs = 0;
	list_for_each_entry(link, &supplier->links.consumers, s_node) {
		if (link->consumer != consumer)
			continue;
		nr++;
		*refs += kref_read(&link->kref);
	}
	return nr;
}

/*
 * An endpoint device the test registers and deletes itself, as the driver
 * core does for a hot-plugged function: device_add(), the IOMMU probe,
 * then device_del() before release_device (the bus notifier's order).
 */
struct viommu_lc_dev {
	struct device		dev;
	struct dev_iommu	iommu;
};

static void viommu_lc_dev_release(struct device *dev)
{
	kfree(container_of(dev, struct viommu_lc_dev, dev));
}

static struct viommu_lc_dev *viommu_lc_dev_add(struct kunit *test, u32 id)
{
	static atomic_t nr = ATOMIC_INIT(0);
	struct iommu_fwspec *fwspec;
	struct viommu_lc_dev *d;

	d = kzalloc(sizeof(*d), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, d);
	device_initialize(&d->dev);
	d->dev.release = viommu_lc_dev_release;
	KUNIT_ASSERT_EQ(test, dev_set_name(&d->dev, "viommu-lc%d",
					   atomic_inc_return(&nr)), 0);
	KUNIT_ASSERT_EQ(test, device_add(&d->dev), 0);
	fwspec = kzalloc(struct_size(fwspec, ids, 1), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, fwspec);
	fwspec->num_ids = 1;
	fwspec->ids[0] = id;
	mutex_init(&d->iommu.lock);
	d->iommu.fwspec = fwspec;
	d->dev.iommu = &d->iommu;
	return d;
}

static struct viommu_endpoint *viommu_lc_probe(struct kunit *test,
					       struct vfake_env *env,
					       struct viommu_lc_dev *d)
{
	struct iommu_device *idev;

	d->iommu.fwspec->iommu_fwnode = &env->fwnode;
	mutex_lock(&iommu_probe_device_lock);
	idev = viommu_probe_device(&d->dev);
	mutex_unlock(&iommu_probe_device_lock);
	KUNIT_ASSERT_PTR_EQ(test, idev, &env->viommu->iommu);
	return dev_iommu_priv_get(&d->dev);
}

/* What the core does after release_device: forget the private data. */
static void viommu_lc_release(struct viommu_lc_dev *d)
{
	viommu_release_device(&d->dev);
	d->iommu.priv = NULL;
}

static void viommu_lc_put(struct viommu_lc_dev *d)
{
	kfree(d->iommu.fwspec);
	d->dev.iommu = NULL;
	put_device(&d->dev);
}

/*
 * Probe makes one link to the virtio device; release with the endpoint
 * still registered (the instance going away: driver unbind, module unload;
 * or the core's own probe failing after probe_device) drops it; a new
 * probe makes exactly one again.
 */
static void viommu_link_release_registered(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_lc_dev *d;
	unsigned int refs;

	vfake_add_endpoint(env->fake, 3, NULL, 0);
	d = viommu_lc_dev_add(test, 3);
	viommu_lc_probe(test, env, d);
	KUNIT_EXPECT_EQ(test, viommu_links(&d->dev, env->vdev_dev, &refs), 1);
	KUNIT_EXPECT_EQ(test, refs, 1);
	viommu_lc_release(d);
	KUNIT_EXPECT_EQ(test, viommu_links(&d->dev, env->vdev_dev, &refs), 0);

	viommu_lc_probe(test, env, d);
	KUNIT_EXPECT_EQ(test, viommu_links(&d->dev, env->vdev_dev, &refs), 1);
	KUNIT_EXPECT_EQ(test, refs, 1);
	viommu_lc_release(d);
	KUNIT_EXPECT_EQ(test, viommu_links(&d->dev, env->vdev_dev, &refs), 0);
	device_del(&d->dev);
	viommu_lc_put(d);
}

/*
 * Hot-unplug and sysfs removal: device_del() purges the endpoint's links
 * before the core calls release_device. Release must not drop the link a
 * second time (a kref underflow and a list_del of a deleted entry, which
 * the kernel reports), and the endpoint must still detach.
 */
static void viommu_link_purged_by_device_del(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_endpoint *ep;
	struct viommu_domain *vdom;
	struct viommu_lc_dev *d;
	unsigned int refs;

	vfake_add_endpoint(env->fake, 3, NULL, 0);
	d = viommu_lc_dev_add(test, 3);
	ep = viommu_lc_probe(test, env, d);
	vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_DMA_FQ);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, &d->dev), 0);
	KUNIT_EXPECT_EQ(test, viommu_links(&d->dev, env->vdev_dev, &refs), 1);

	device_del(&d->dev);
	KUNIT_EXPECT_EQ(test, viommu_links(&d->dev, env->vdev_dev, &refs), 0);
	viommu_lc_release(d);
	KUNIT_EXPECT_EQ(test, viommu_links(&d->dev, env->vdev_dev, &refs), 0);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_DETACH), 1);
	KUNIT_EXPECT_EQ(test, vfake_endpoint_domain(env->fake, 3), 0);
	KUNIT_EXPECT_NULL(test, vfake_domain(env->fake, vdom->id));
	KUNIT_EXPECT_EQ(test, vdom->nr_endpoints, 0);
	viommu_lc_put(d);

	/* The function comes back: a new device, one new link. */
	d = viommu_lc_dev_add(test, 3);
	viommu_lc_probe(test, env, d);
	KUNIT_EXPECT_EQ(test, viommu_links(&d->dev, env->vdev_dev, &refs), 1);
	KUNIT_EXPECT_EQ(test, refs, 1);
	device_del(&d->dev);
	viommu_lc_release(d);
	viommu_lc_put(d);
}

/* A probe that fails (the device rejects PROBE) leaves no link behind. */
static void viommu_link_probe_failure(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_endpoint *ep;
	unsigned int refs;
	u32 id = 3;

	vfake_add_endpoint(env->fake, id, NULL, 0);
	vfake_inject(env->fake, VIRTIO_IOMMU_T_PROBE, 1, VIRTIO_IOMMU_S_NOENT);
	ep = vfake_env_try_endpoint(env, &id, 1, false, &env->fwnode);
	KUNIT_ASSERT_EQ(test, PTR_ERR_OR_ZERO(ep), -ENOENT);
	KUNIT_EXPECT_EQ(test, viommu_links(env->eps[env->nr_eps - 1].dev,
					   env->vdev_dev, &refs), 0);
}

/*
 * UNMAPs deferred in a lazy domain reach the device, and complete, before
 * the DETACH that destroys the domain is even sent: the device may take
 * the requests of one notification in any order, and an UNMAP taken after
 * the DETACH would find no domain.
 */
static void viommu_release_flushes_deferred(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_engine *eng = &env->viommu->engine;
	const struct vfake_record *unmap, *detach;
	struct viommu_endpoint *ep;
	struct viommu_domain *vdom;
	u64 age;

	viommu_engine_set_flush_timeout(eng, VIOMMU_FLUSH_TIMEOUT_MAX_MS);
	ep = vfake_env_simple_endpoint(env, 3);
	vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_DMA_FQ);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_16M, SZ_4K, RW), 0);
	KUNIT_ASSERT_EQ(test, vfake_unmap(vdom, SZ_1M, SZ_4K, true), SZ_4K);
	/* Too slow a machine may have let the timer submit it already. */
	if (!viommu_pending_unmaps(eng, &age))
		kunit_skip(test, "the deferral timer fired before the release");

	vfake_env_release_endpoint(env, ep);
	unmap = vfake_last(env->fake, VIRTIO_IOMMU_T_UNMAP);
	detach = vfake_last(env->fake, VIRTIO_IOMMU_T_DETACH);
	KUNIT_ASSERT_NOT_NULL(test, unmap);
	KUNIT_ASSERT_NOT_NULL(test, detach);
	KUNIT_EXPECT_EQ(test, unmap->status, VIRTIO_IOMMU_S_OK);
	KUNIT_EXPECT_EQ(test, unmap->domain, vdom->id);
	KUNIT_EXPECT_LT(test, unmap->batch, detach->batch);
	KUNIT_EXPECT_EQ(test, viommu_pending_unmaps(eng, &age), 0);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, vdom->id), 0);
	KUNIT_EXPECT_FALSE(test, vdom->live);
}

static struct kunit_case viommu_lifecycle_test_cases[] = {
	KUNIT_CASE(viommu_link_release_registered),
	KUNIT_CASE(viommu_link_purged_by_device_del),
	KUNIT_CASE(viommu_link_probe_failure),
	KUNIT_CASE(viommu_release_flushes_deferred),
	{}
};

static struct kunit_suite viommu_lifecycle_suite = {
	.name = "viommu_lifecycle",
	.test_cases = viommu_lifecycle_test_cases,
};

static struct kunit_case viommu_attach_test_cases[] = {
	KUNIT_CASE(viommu_attach_paging_domain),
	KUNIT_CASE(viommu_attach_move),
	KUNIT_CASE(viommu_attach_shared),
	KUNIT_CASE(viommu_attach_multi_id),
	KUNIT_CASE(viommu_attach_identity_bypass_config),
	KUNIT_CASE(viommu_attach_identity_legacy),
	KUNIT_CASE(viommu_attach_identity_unsupported),
	KUNIT_CASE(viommu_attach_blocked_domain),
	KUNIT_CASE(viommu_attach_blocked_unavailable),
	KUNIT_CASE(viommu_attach_other_instance),
	KUNIT_CASE(viommu_attach_probe_refused),
	{}
};

static struct kunit_suite viommu_attach_suite = {
	.name = "viommu_attach",
	.test_cases = viommu_attach_test_cases,
};

static struct kunit_case viommu_probe_test_cases[] = {
	KUNIT_CASE_PARAM(viommu_probe_request, viommu_probe_req_gen_params),
	KUNIT_CASE_PARAM(viommu_probe_parse, viommu_parse_gen_params),
	KUNIT_CASE(viommu_probe_end_to_end),
	{}
};

static struct kunit_suite viommu_probe_suite = {
	.name = "viommu_probe",
	.test_cases = viommu_probe_test_cases,
};

kunit_test_suites(&viommu_attach_suite, &viommu_probe_suite,
		  &viommu_lifecycle_suite);
