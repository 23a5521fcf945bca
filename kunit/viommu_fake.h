/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-iommu-fq KUnit: a fake virtio-iommu device.
 *
 * The fake sits behind struct viommu_queue_ops, where the production driver
 * has a virtqueue, and behind a fake virtio configuration space. It keeps
 * the state a device would keep (domains, endpoints, mappings), checks
 * every request against the virtio-iommu specification, records every
 * request, and can be told to answer any status, to run out of descriptors,
 * to complete late or out of order, or to never answer. When the driver
 * gives up on it (the queue's block operation), it behaves as a device
 * reset with bypass cleared, and any later request is a violation.
 *
 * A check that fails is a "violation": it is counted and the first message
 * is kept. Every suite's exit checks that the driver caused none.
 *
 * The environment (struct vfake_env) puts a real struct viommu_dev on top
 * of the fake: configuration read by the production viommu_read_config(),
 * the production request engine, domain IDs reserved as at probe, and
 * endpoints probed by the production viommu_probe_device().
 */
#ifndef VIOMMU_FAKE_H
#define VIOMMU_FAKE_H

#include <kunit/test.h>
#include <linux/device.h>
#include <linux/fwnode.h>
#include <linux/ktime.h>
#include <linux/spinlock.h>
#include <linux/virtio.h>
#include <uapi/linux/virtio_iommu.h>

#include "../src/viommu.h"

#define VFAKE_MAX_DOMAINS	64
#define VFAKE_MAX_ENDPOINTS	16
#define VFAKE_MAX_MAPPINGS	4096
#define VFAKE_MAX_RECORDS	2048
#define VFAKE_MAX_QUEUE		256
#define VFAKE_MAX_INJECT	8
#define VFAKE_MSG_LEN		256

/* Special "statuses" for vfake_inject(). */
#define VFAKE_ANSWER_ZERO_LEN	0x100	/* return the buffer unwritten */
#define VFAKE_ANSWER_SHORT_LEN	0x101	/* used length shorter than the tail */

enum vfake_mode {
	VFAKE_IMMEDIATE,	/* process and complete when notified */
	VFAKE_LATE,		/* process when notified, complete after
				 * @delay_polls calls of get_used
				 */
	VFAKE_SILENT,		/* never look at the queue (until woken) */
};

struct vfake_record {
	u8		type;
	u8		status;
	u32		domain;
	u32		endpoint;
	u32		flags;
	u64		start;
	u64		end;
	u64		phys;
	unsigned int	batch;		/* notification that carried it */
	ktime_t		at;		/* when the device processed it */
};

struct vfake_mapping {
	bool	used;
	u32	domain;
	u64	start;
	u64	last;
	u64	phys;
	u32	flags;
};

struct vfake_domain {
	bool		exists;
	u32		id;
	bool		bypass;
	unsigned int	nr_endpoints;
};

struct vfake_endpoint {
	bool		exists;
	u32		id;
	bool		probed;
	u32		domain;		/* 0: not attached */
	const void	*props;		/* PROBE properties to answer */
	size_t		props_len;
};

struct vfake_slot {
	struct list_head	node;
	void			*token;
	void			*out;
	unsigned int		out_len;
	void			*in;
	unsigned int		in_len;
	unsigned int		used_len;
};

struct vfake_inject {
	u8		type;		/* 0: any type */
	unsigned int	countdown;	/* answer the countdown-th request */
	unsigned int	status;		/* status or VFAKE_ANSWER_* */
};

struct vfake {
	struct kunit			*test;
	spinlock_t			lock;	/* everything below */

	/* Configuration space and features offered. */
	struct virtio_device		vdev;
	struct virtio_iommu_config	config;
	unsigned int			config_writes;	/* not bypass */
	unsigned int			bypass_writes;
	unsigned int			bypass_reads;
	unsigned int			find_vqs_calls;

	/* Behaviour. */
	enum vfake_mode			mode;
	unsigned int			delay_polls;
	unsigned int			polls_left;
	bool				reverse;	/* complete each batch backwards */
	unsigned int			capacity;	/* requests the queue takes */
	int				add_error;	/* add() fails with it */
	bool				tail_garbage;	/* non-zero tail reserved */
	struct vfake_inject		inject[VFAKE_MAX_INJECT];
	u8				refuse_status;	/* MAPs that touch */
	u64				refuse_start;	/* [refuse_start, */
	u64				refuse_last;	/* refuse_last] get it */
	unsigned int			resets;		/* blocked by the driver */

	/* Device state. */
	struct vfake_domain		domains[VFAKE_MAX_DOMAINS];
	struct vfake_endpoint		endpoints[VFAKE_MAX_ENDPOINTS];
	struct vfake_mapping		mappings[VFAKE_MAX_MAPPINGS];
	unsigned int			nr_mappings;

	/* Queue. */
	struct vfake_slot		slots[VFAKE_MAX_QUEUE];
	struct list_head		free, avail, processed, used;
	unsigned int			outstanding;	/* added, not yet reaped */
	unsigned int			max_outstanding;
	unsigned int			added_since_kick;

	/* Observations. */
	unsigned int			nr_adds;
	unsigned int			nr_enospc;
	unsigned int			nr_kick_prepare;
	unsigned int			nr_notify;
	unsigned int			nr_type[VIRTIO_IOMMU_T_PROBE + 1];
	unsigned int			nr_records;	/* total, even if not kept */
	struct vfake_record		records[VFAKE_MAX_RECORDS];
	unsigned int			nr_violations;
	char				violation[VFAKE_MSG_LEN];
};

extern const struct viommu_queue_ops vfake_queue_ops;

/* Configuration of a fake device and of the driver instance on top of it. */
struct vfake_cfg {
	u64		features;	/* BIT_ULL(VIRTIO_IOMMU_F_*) */
	u64		page_size_mask;
	u64		input_start, input_end;
	u32		domain_start, domain_end;
	u32		probe_size;
	unsigned int	nr_slots;	/* request pool (0: VIOMMU_NR_SLOTS) */
	unsigned int	capacity;	/* queue size (0: 128) */
};

/* The configuration most suites use: a typical QEMU device. */
void vfake_default_cfg(struct vfake_cfg *cfg);

struct vfake *vfake_create(struct kunit *test, const struct vfake_cfg *cfg);
void vfake_set_mode(struct vfake *fake, enum vfake_mode mode,
		    unsigned int delay_polls);
void vfake_wake(struct vfake *fake);
void vfake_inject(struct vfake *fake, u8 type, unsigned int nth,
		  unsigned int status);
void vfake_refuse_maps(struct vfake *fake, u64 start, u64 last, u8 status);
void vfake_add_endpoint(struct vfake *fake, u32 id, const void *props,
			size_t props_len);
unsigned int vfake_count_type(struct vfake *fake, u8 type);
void vfake_forget_locked(struct vfake *fake);
const struct vfake_record *vfake_last(struct vfake *fake, u8 type);
const struct vfake_mapping *vfake_find_mapping(struct vfake *fake, u32 domain,
					       u64 iova);
unsigned int vfake_nr_mappings(struct vfake *fake, u32 domain);
u32 vfake_endpoint_domain(struct vfake *fake, u32 id);
const struct vfake_domain *vfake_domain(struct vfake *fake, u32 id);
void vfake_reset_counts(struct vfake *fake);

/* A driver instance on a fake device, with its endpoints and domains. */
struct vfake_ep {
	struct device		*dev;
	struct pci_dev		*pdev;		/* for PCI endpoints */
	struct dev_iommu	*iommu;
	bool			probed;
	char			name[32];
};

#define VFAKE_MAX_ENV_EPS	8
#define VFAKE_MAX_ENV_DOMS	32

struct vfake_env {
	struct kunit		*test;
	struct vfake		*fake;
	struct viommu_dev	*viommu;
	struct device		*vdev_dev;	/* the "virtio device" */
	struct device		hwdev;		/* the transport: holds fwnode */
	struct fwnode_handle	fwnode;
	struct vfake_ep		eps[VFAKE_MAX_ENV_EPS];
	unsigned int		nr_eps;
	struct iommu_domain	*doms[VFAKE_MAX_ENV_DOMS];
	unsigned int		nr_doms;
	unsigned int		expected_violations;
	unsigned int		id;
	char			name[16];
};

struct vfake_env *vfake_env_create(struct kunit *test,
				   const struct vfake_cfg *cfg);
struct vfake_env *vfake_env_default(struct kunit *test);
/* Create an endpoint device with the given IDs and probe it. */
struct viommu_endpoint *vfake_env_endpoint(struct vfake_env *env,
					   const u32 *ids, unsigned int nr_ids,
					   bool pci_untrusted);
/* The same, returning probe_device's error; @fwnode names the instance. */
struct viommu_endpoint *vfake_env_try_endpoint(struct vfake_env *env,
					       const u32 *ids,
					       unsigned int nr_ids,
					       bool pci_untrusted,
					       struct fwnode_handle *fwnode);
struct viommu_endpoint *vfake_env_simple_endpoint(struct vfake_env *env,
						  u32 id);
/* Allocate a paging domain through the production ops. */
struct viommu_domain *vfake_env_domain(struct vfake_env *env,
				       struct viommu_endpoint *ep,
				       unsigned int type);
void vfake_env_free_domain(struct vfake_env *env, struct viommu_domain *vdom);
void vfake_env_release_endpoint(struct vfake_env *env,
				struct viommu_endpoint *ep);

/* Assertions on the device's view. */
void vfake_expect_no_violations(struct kunit *test, struct vfake *fake);
void vfake_expect_same_mappings(struct kunit *test, struct vfake *fake,
				struct viommu_domain *vdom);

bool vfake_range_consistent(struct vfake *fake, struct viommu_domain *vdom,
			    u64 start, u64 last);

/* Driver-side helpers. */
int vfake_map(struct viommu_domain *vdom, u64 iova, u64 paddr, u64 size,
	      int prot);
int vfake_map_sync(struct viommu_domain *vdom, u64 iova, u64 paddr, u64 size,
		   int prot);
/* One map_pages call of one piece, and an iotlb_sync_map, as the core does. */
int vfake_map_piece(struct viommu_domain *vdom, u64 iova, u64 paddr, int prot);
int vfake_sync_map(struct viommu_domain *vdom, u64 iova, u64 size);
size_t vfake_unmap(struct viommu_domain *vdom, u64 iova, u64 size,
		   bool lazy);
unsigned int vfake_free_req_slots(struct viommu_engine *eng);

#endif /* VIOMMU_FAKE_H */
