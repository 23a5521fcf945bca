// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq KUnit: the request engine (request.c) against the fake
 * device: status codes, unwritten buffers, a silent device, late and
 * out-of-order completion, a full queue and an exhausted request pool.
 */

#include <kunit/test.h>
#include <linux/delay.h>
#include <linux/ktime.h>

#include "viommu_fake.h"

#define RW	(IOMMU_READ | IOMMU_WRITE)

struct viommu_status_case {
	u8		status;
	int		err;
	enum viommu_stat stat;
	const char	*name;
};

static const struct viommu_status_case viommu_status_cases[] = {
	{ VIRTIO_IOMMU_S_OK, 0, VIOMMU_STAT_NR, "OK" },
	{ VIRTIO_IOMMU_S_IOERR, -EIO, VIOMMU_STAT_ERR_IOERR, "IOERR" },
	{ VIRTIO_IOMMU_S_UNSUPP, -EOPNOTSUPP, VIOMMU_STAT_ERR_UNSUPP, "UNSUPP" },
	{ VIRTIO_IOMMU_S_DEVERR, -EIO, VIOMMU_STAT_ERR_DEVERR, "DEVERR" },
	{ VIRTIO_IOMMU_S_INVAL, -EINVAL, VIOMMU_STAT_ERR_INVAL, "INVAL" },
	{ VIRTIO_IOMMU_S_RANGE, -ERANGE, VIOMMU_STAT_ERR_RANGE, "RANGE" },
	{ VIRTIO_IOMMU_S_NOENT, -ENOENT, VIOMMU_STAT_ERR_NOENT, "NOENT" },
	{ VIRTIO_IOMMU_S_FAULT, -EFAULT, VIOMMU_STAT_ERR_FAULT, "FAULT" },
	{ VIRTIO_IOMMU_S_NOMEM, -ENOMEM, VIOMMU_STAT_ERR_NOMEM, "NOMEM" },
	{ 9, -EIO, VIOMMU_STAT_ERR_UNKNOWN, "undefined 9" },
	{ 0xff, -EIO, VIOMMU_STAT_ERR_UNKNOWN, "undefined 255" },
};

static void viommu_status_case_desc(const struct viommu_status_case *c,
				    char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(viommu_status, viommu_status_cases, viommu_status_case_desc);

/* Every status byte becomes its errno, end to end, and is counted. */
static void viommu_request_status_errno(struct kunit *test)
{
	const struct viommu_status_case *c = test->param_value;
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_endpoint *ep = vfake_env_simple_endpoint(env, 3);
	struct viommu_domain *vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
	int ret;

	KUNIT_EXPECT_EQ(test, viommu_status_to_errno(c->status), c->err);
	/* An injected status is answered without applying the request. */
	if (c->status != VIRTIO_IOMMU_S_OK)
		vfake_inject(env->fake, VIRTIO_IOMMU_T_ATTACH, 1, c->status);
	ret = viommu_attach_paging(&vdom->domain, ep->dev);
	KUNIT_EXPECT_EQ(test, ret, c->err);
	if (c->stat != VIOMMU_STAT_NR)
		KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, c->stat), 1);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_ATTACH), 1);
	if (c->err) {
		/* The device rejected it: the endpoint stays where it was. */
		KUNIT_EXPECT_EQ(test, ep->attached, VIOMMU_DETACHED);
		KUNIT_EXPECT_EQ(test, vdom->nr_endpoints, 0);
		KUNIT_EXPECT_FALSE(test, vdom->live);
		KUNIT_EXPECT_EQ(test, vfake_endpoint_domain(env->fake, 3), 0);
	} else {
		KUNIT_EXPECT_EQ(test, ep->attached, VIOMMU_ATTACHED_PAGING);
		KUNIT_EXPECT_EQ(test, vfake_endpoint_domain(env->fake, 3), vdom->id);
	}
	KUNIT_EXPECT_EQ(test, vfake_free_req_slots(eng), VIOMMU_NR_SLOTS);
}

/* A buffer returned unwritten (used length 0, or too short for the tail)
 * is a failed request.
 */
static void viommu_request_unwritten(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_endpoint *ep = vfake_env_simple_endpoint(env, 3);
	struct viommu_domain *vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);

	vfake_inject(env->fake, VIRTIO_IOMMU_T_ATTACH, 1, VFAKE_ANSWER_ZERO_LEN);
	KUNIT_EXPECT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), -EIO);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_ERR_NOSTATUS), 1);
	KUNIT_EXPECT_EQ(test, ep->attached, VIOMMU_DETACHED);

	vfake_inject(env->fake, VIRTIO_IOMMU_T_ATTACH, 1, VFAKE_ANSWER_SHORT_LEN);
	KUNIT_EXPECT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), -EIO);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_ERR_NOSTATUS), 2);

	/* A MAP returned unwritten is reported by the map sync. */
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	vfake_inject(env->fake, VIRTIO_IOMMU_T_MAP, 1, VFAKE_ANSWER_ZERO_LEN);
	KUNIT_EXPECT_LT(test, vfake_map_sync(vdom, SZ_1M, SZ_1M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_ERR_NOSTATUS), 3);
}

/* The reserved bytes of the tail are ignored. */
static void viommu_request_tail_reserved(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_endpoint *ep = vfake_env_simple_endpoint(env, 3);
	struct viommu_domain *vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);

	env->fake->tail_garbage = true;
	KUNIT_EXPECT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	KUNIT_EXPECT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_2M, SZ_8K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, vdom->id), 1);
}

/* Every request's head has zero reserved bytes (checked by the fake). */
static void viommu_request_head_reserved(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_endpoint *ep = vfake_env_simple_endpoint(env, 3);
	struct viommu_domain *vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);

	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	KUNIT_EXPECT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_2M, SZ_8K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M, SZ_8K, false), SZ_8K);
	vfake_env_release_endpoint(env, ep);
	/* PROBE, ATTACH, MAP, UNMAP, DETACH all seen, none flagged. */
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_PROBE), 1);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_ATTACH), 1);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_MAP), 1);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_UNMAP), 1);
	KUNIT_EXPECT_EQ(test, vfake_count_type(env->fake, VIRTIO_IOMMU_T_DETACH), 1);
	vfake_expect_no_violations(test, env->fake);
}

#define VIOMMU_TEST_TIMEOUT_MS	50
/* Generous: TCG under load. The bound itself is the lower limit. */
#define VIOMMU_TEST_SLACK_MS	3000

/*
 * A silent device: the request fails within the bounded wait, and the
 * device is declared broken and reset, for good.
 */
static void viommu_request_silent_device(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_endpoint *ep = vfake_env_simple_endpoint(env, 3);
	struct viommu_domain *vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
	ktime_t start;
	s64 ms;

	eng->timeout_ns = VIOMMU_TEST_TIMEOUT_MS * NSEC_PER_MSEC;
	vfake_set_mode(env->fake, VFAKE_SILENT, 0);
	start = ktime_get();
	KUNIT_EXPECT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev),
			-ETIMEDOUT);
	ms = ktime_ms_delta(ktime_get(), start);
	KUNIT_EXPECT_GE(test, ms, VIOMMU_TEST_TIMEOUT_MS);
	KUNIT_EXPECT_LT(test, ms, VIOMMU_TEST_TIMEOUT_MS + VIOMMU_TEST_SLACK_MS);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_ERR_TIMEOUT), 1);
	KUNIT_EXPECT_EQ(test, ep->attached, VIOMMU_DETACHED);

	/* The device comes back too late: it stays broken. */
	vfake_wake(env->fake);
	KUNIT_EXPECT_EQ(test, viommu_sync(eng, VIOMMU_CAUSE_SYNC), -EIO);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_DEVICE_BROKEN), 1);
	KUNIT_EXPECT_EQ(test, env->fake->resets, 1);
	KUNIT_EXPECT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), -EIO);
}

/* A silent device during a map sync; the core then unmaps the range. */
static void viommu_request_silent_map_sync(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_endpoint *ep = vfake_env_simple_endpoint(env, 3);
	struct viommu_domain *vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
	ktime_t start;
	s64 ms;

	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	eng->timeout_ns = VIOMMU_TEST_TIMEOUT_MS * NSEC_PER_MSEC;
	vfake_set_mode(env->fake, VFAKE_SILENT, 0);
	start = ktime_get();
	KUNIT_EXPECT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_1M, SZ_16K, RW),
			-ETIMEDOUT);
	ms = ktime_ms_delta(ktime_get(), start);
	KUNIT_EXPECT_LT(test, ms, VIOMMU_TEST_TIMEOUT_MS + VIOMMU_TEST_SLACK_MS);
	/* iommu_map() undoes a failed mapping. */
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M, SZ_16K, false), SZ_16K);
	vfake_wake(env->fake);
	KUNIT_EXPECT_EQ(test, viommu_sync(eng, VIOMMU_CAUSE_SYNC), -EIO);
	/* The device was reset when declared broken: nothing stays mapped. */
	KUNIT_EXPECT_EQ(test, env->fake->resets, 1);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, vdom->id), 0);
	vfake_expect_same_mappings(test, env->fake, vdom);
}

/* Completion after many polls, and in reverse order, is waited for. */
static void viommu_request_late_out_of_order(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_endpoint *ep = vfake_env_simple_endpoint(env, 3);
	struct viommu_domain *vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
	unsigned int i;

	vfake_set_mode(env->fake, VFAKE_LATE, 200);
	env->fake->reverse = true;
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	for (i = 0; i < 6; i++)
		KUNIT_ASSERT_EQ(test, vfake_map(vdom, SZ_1M + i * SZ_64K,
						SZ_4M + i * SZ_1M, SZ_8K, RW), 0);
	KUNIT_EXPECT_EQ(test, viommu_paging_ops.iotlb_sync_map(&vdom->domain,
							       SZ_1M, 6 * SZ_64K), 0);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, vdom->id), 6);
	KUNIT_EXPECT_EQ(test, eng->done_seq, eng->submit_seq);
	vfake_expect_same_mappings(test, env->fake, vdom);
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M, 6 * SZ_64K, false),
			6 * SZ_64K);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, vdom->id), 0);
	KUNIT_EXPECT_EQ(test, vfake_free_req_slots(eng), VIOMMU_NR_SLOTS);
}

struct viommu_full_case {
	const char	*name;
	unsigned int	nr_slots;
	unsigned int	capacity;
	enum vfake_mode	mode;
	bool		reverse;
};

static const struct viommu_full_case viommu_full_cases[] = {
	{ "queue of 2", 0, 2, VFAKE_IMMEDIATE, false },
	{ "queue of 1, late", 0, 1, VFAKE_LATE, false },
	{ "pool of 4", 4, 128, VFAKE_IMMEDIATE, false },
	{ "pool of 4, queue of 3, late, reversed", 4, 3, VFAKE_LATE, true },
	{ "pool of 1", 1, 128, VFAKE_IMMEDIATE, false },
};

static void viommu_full_case_desc(const struct viommu_full_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(viommu_full, viommu_full_cases, viommu_full_case_desc);

/* More requests than the queue or the pool holds all reach the device. */
static void viommu_request_queue_full(struct kunit *test)
{
	const struct viommu_full_case *c = test->param_value;
	struct vfake_cfg cfg;
	struct vfake_env *env;
	struct viommu_engine *eng;
	struct viommu_endpoint *ep;
	struct viommu_domain *vdom;
	unsigned int i, nr = 40;

	vfake_default_cfg(&cfg);
	cfg.nr_slots = c->nr_slots;
	cfg.capacity = c->capacity;
	env = vfake_env_create(test, &cfg);
	eng = &env->viommu->engine;
	vfake_set_mode(env->fake, c->mode, 5);
	env->fake->reverse = c->reverse;
	ep = vfake_env_simple_endpoint(env, 3);
	vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);

	for (i = 0; i < nr; i++)
		KUNIT_ASSERT_EQ(test, vfake_map(vdom, SZ_1M + i * SZ_64K,
						SZ_4M + i * SZ_1M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, viommu_paging_ops.iotlb_sync_map(&vdom->domain,
							       SZ_1M, nr * SZ_64K), 0);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, vdom->id), nr);
	KUNIT_EXPECT_GT(test, viommu_stat_read(eng, VIOMMU_STAT_QUEUE_FULL), 0);
	vfake_expect_same_mappings(test, env->fake, vdom);
	for (i = 0; i < nr; i++)
		KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M + i * SZ_64K,
						  SZ_4K, true), SZ_4K);
	viommu_paging_ops.flush_iotlb_all(&vdom->domain);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, vdom->id), 0);
	KUNIT_EXPECT_EQ(test, vfake_free_req_slots(eng),
			c->nr_slots ?: VIOMMU_NR_SLOTS);
}

/* A full queue and a silent device: an error, not a hang. */
static void viommu_request_full_and_silent(struct kunit *test)
{
	struct vfake_cfg cfg;
	struct vfake_env *env;
	struct viommu_engine *eng;
	struct viommu_endpoint *ep;
	struct viommu_domain *vdom;
	unsigned int i;
	int ret = 0;

	vfake_default_cfg(&cfg);
	cfg.nr_slots = 4;
	cfg.capacity = 2;
	env = vfake_env_create(test, &cfg);
	eng = &env->viommu->engine;
	ep = vfake_env_simple_endpoint(env, 3);
	vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);
	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	eng->timeout_ns = VIOMMU_TEST_TIMEOUT_MS * NSEC_PER_MSEC;
	vfake_set_mode(env->fake, VFAKE_SILENT, 0);
	for (i = 0; i < 10 && !ret; i++)
		ret = vfake_map(vdom, SZ_1M + i * SZ_64K, SZ_4M, SZ_4K, RW);
	if (!ret)
		ret = viommu_paging_ops.iotlb_sync_map(&vdom->domain, SZ_1M,
						       10 * SZ_64K);
	KUNIT_EXPECT_EQ(test, ret, -ETIMEDOUT);
	KUNIT_EXPECT_GE(test, viommu_stat_read(eng, VIOMMU_STAT_ERR_TIMEOUT), 1);
}

/* A queue that refuses requests: the MAP's failure is reported. */
static void viommu_request_broken_queue(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_endpoint *ep = vfake_env_simple_endpoint(env, 3);
	struct viommu_domain *vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);

	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	env->fake->add_error = -EIO;
	KUNIT_EXPECT_LT(test, vfake_map_sync(vdom, SZ_1M, SZ_1M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, vdom->id), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_ERR_IOERR), 1);
	/* An ATTACH that cannot be queued fails too. */
	KUNIT_EXPECT_EQ(test, viommu_attach_identity(&viommu_identity_domain, ep->dev),
			-EIO);
	env->fake->add_error = 0;
	KUNIT_EXPECT_EQ(test, vfake_unmap(vdom, SZ_1M, SZ_4K, false), SZ_4K);
	KUNIT_EXPECT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_1M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, vfake_nr_mappings(env->fake, vdom->id), 1);
	vfake_expect_same_mappings(test, env->fake, vdom);
}

/*
 * The wait counted is the polling after the notification: none for a
 * device that completes when notified, some for one that completes later.
 */
static void viommu_request_wait_time(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_engine *eng = &env->viommu->engine;
	struct viommu_endpoint *ep = vfake_env_simple_endpoint(env, 3);
	struct viommu_domain *vdom = vfake_env_domain(env, ep, IOMMU_DOMAIN_UNMANAGED);

	KUNIT_ASSERT_EQ(test, viommu_attach_paging(&vdom->domain, ep->dev), 0);
	viommu_stats_reset(eng);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_1M, SZ_4M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_SYNC_WAITS), 1);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_SYNC_WAIT_NS), 0);

	vfake_set_mode(env->fake, VFAKE_LATE, 20);
	KUNIT_ASSERT_EQ(test, vfake_map_sync(vdom, SZ_2M, SZ_8M, SZ_4K, RW), 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_SYNC_WAITS), 2);
	KUNIT_EXPECT_GT(test, viommu_stat_read(eng, VIOMMU_STAT_SYNC_WAIT_NS), 0);
	vfake_expect_same_mappings(test, env->fake, vdom);
}

/* A sync with nothing outstanding does not notify the device. */
static void viommu_request_idle_sync(struct kunit *test)
{
	struct vfake_env *env = vfake_env_default(test);
	struct viommu_engine *eng = &env->viommu->engine;

	KUNIT_EXPECT_EQ(test, viommu_sync(eng, VIOMMU_CAUSE_SYNC), 0);
	KUNIT_EXPECT_EQ(test, viommu_sync(eng, VIOMMU_CAUSE_FLUSH), 0);
	KUNIT_EXPECT_EQ(test, env->fake->nr_notify, 0);
	KUNIT_EXPECT_EQ(test, viommu_stat_read(eng, VIOMMU_STAT_KICKS), 0);
}

static struct kunit_case viommu_request_test_cases[] = {
	KUNIT_CASE_PARAM(viommu_request_status_errno, viommu_status_gen_params),
	KUNIT_CASE(viommu_request_unwritten),
	KUNIT_CASE(viommu_request_tail_reserved),
	KUNIT_CASE(viommu_request_head_reserved),
	KUNIT_CASE(viommu_request_silent_device),
	KUNIT_CASE(viommu_request_silent_map_sync),
	KUNIT_CASE(viommu_request_late_out_of_order),
	KUNIT_CASE_PARAM(viommu_request_queue_full, viommu_full_gen_params),
	KUNIT_CASE(viommu_request_full_and_silent),
	KUNIT_CASE(viommu_request_broken_queue),
	KUNIT_CASE(viommu_request_wait_time),
	KUNIT_CASE(viommu_request_idle_sync),
	{}
};

static struct kunit_suite viommu_request_suite = {
	.name = "viommu_request",
	.test_cases = viommu_request_test_cases,
};

kunit_test_suite(viommu_request_suite);
