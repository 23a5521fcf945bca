// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-iommu-fq: knobs and counters.
 *
 * Each knob is a module parameter, the default for instances probed
 * afterwards, and a read-write attribute of every instance in
 * /sys/class/iommu/<instance>/virtio-iommu-fq/. Counters are read-only
 * attributes in the same group, one value per file; writing 1 to
 * reset_counters zeroes them. Documentation/ABI/testing/
 * sysfs-class-iommu-virtio-iommu-fq describes every file.
 */

#include <linux/device.h>
#include <linux/kernel.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <linux/sysfs.h>

#include "viommu.h"

/* Longest accepted input: a number of up to 10 digits and a newline. */
#define VIOMMU_KNOB_MAX_INPUT	11

/**
 * viommu_parse_knob() - parse a knob value written by the user
 * @buf: the input, not necessarily NUL-terminated
 * @count: its length
 * @max: largest accepted value
 * @val: the value, only written on success
 *
 * Accepts a decimal number with an optional trailing newline.
 *
 * Return: 0, or -EINVAL for empty, oversized, non-numeric or out of range
 * input.
 */
int viommu_parse_knob(const char *buf, size_t count, unsigned int max,
		      unsigned int *val)
{
	char tmp[VIOMMU_KNOB_MAX_INPUT + 1];
	unsigned int v;

	if (!count || count > VIOMMU_KNOB_MAX_INPUT)
		return -EINVAL;
	memcpy(tmp, buf, count);
	tmp[count] = '\0';
	if (tmp[0] == '\n' || kstrtouint(tmp, 10, &v) || v > max)
		return -EINVAL;
	*val = v;
	return 0;
}

struct viommu_knob_param {
	unsigned int	*value;
	unsigned int	max;
};

static unsigned int viommu_default_shadow_on_flush;
static unsigned int viommu_default_flush_timeout_ms = VIOMMU_FLUSH_TIMEOUT_DEFAULT_MS;
static unsigned int viommu_default_map_batching = VIOMMU_MAP_BATCHING_DEFAULT;

static int viommu_param_set(const char *val, const struct kernel_param *kp)
{
	const struct viommu_knob_param *knob = kp->arg;
	unsigned int v;
	int ret;

	ret = viommu_parse_knob(val, strlen(val), knob->max, &v);
	if (ret)
		return ret;
	ret = viommu_knob_refused(kp->name, v);
	if (ret)
		return ret;
	WRITE_ONCE(*knob->value, v);
	return 0;
}

static int viommu_param_get(char *buffer, const struct kernel_param *kp)
{
	const struct viommu_knob_param *knob = kp->arg;

	return sysfs_emit(buffer, "%u\n", READ_ONCE(*knob->value));
}

static const struct kernel_param_ops viommu_knob_param_ops = {
	.set = viommu_param_set,
	.get = viommu_param_get,
};

static struct viommu_knob_param viommu_param_shadow_on_flush = {
	.value = &viommu_default_shadow_on_flush, .max = 1,
};

static struct viommu_knob_param viommu_param_flush_timeout_ms = {
	.value = &viommu_default_flush_timeout_ms,
	.max = VIOMMU_FLUSH_TIMEOUT_MAX_MS,
};

static struct viommu_knob_param viommu_param_map_batching = {
	.value = &viommu_default_map_batching, .max = 1,
};

module_param_cb(shadow_on_flush, &viommu_knob_param_ops,
		&viommu_param_shadow_on_flush, 0644);
MODULE_PARM_DESC(shadow_on_flush, VIOMMU_SHADOW_ON_FLUSH_DESC);
module_param_cb(flush_timeout_ms, &viommu_knob_param_ops,
		&viommu_param_flush_timeout_ms, 0644);
MODULE_PARM_DESC(flush_timeout_ms,
		 "Longest time in ms a deferred UNMAP waits before reaching the device (0-1000, default 10)");
module_param_cb(map_batching, &viommu_knob_param_ops,
		&viommu_param_map_batching, 0644);
MODULE_PARM_DESC(map_batching, VIOMMU_MAP_BATCHING_DESC);

/**
 * viommu_knobs_defaults() - knobs of a new instance
 * @knobs: filled from the module parameters
 */
void viommu_knobs_defaults(struct viommu_knobs *knobs)
{
	knobs->shadow_on_flush = READ_ONCE(viommu_default_shadow_on_flush);
	knobs->flush_timeout_ms = READ_ONCE(viommu_default_flush_timeout_ms);
	knobs->map_batching = READ_ONCE(viommu_default_map_batching);
}

static struct viommu_dev *viommu_from_sysfs(struct device *dev)
{
	return container_of(dev_to_iommu_device(dev), struct viommu_dev, iommu);
}

/* Knob attributes: one show and one store for the three knobs. */

struct viommu_knob_attr {
	struct device_attribute	attr;
	size_t			offset;	/* in struct viommu_knobs */
	unsigned int		max;
};

static unsigned int *viommu_knob_ptr(struct device *dev,
				     struct device_attribute *attr)
{
	struct viommu_knob_attr *ka = container_of(attr, struct viommu_knob_attr,
						   attr);

	return (void *)&viommu_from_sysfs(dev)->engine.knobs + ka->offset;
}

static ssize_t viommu_knob_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(*viommu_knob_ptr(dev, attr)));
}

static ssize_t viommu_knob_store(struct device *dev,
				 struct device_attribute *attr,
				 const char *buf, size_t count)
{
	struct viommu_knob_attr *ka = container_of(attr, struct viommu_knob_attr,
						   attr);
	struct viommu_engine *eng = &viommu_from_sysfs(dev)->engine;
	unsigned int v;
	int ret;

	if (viommu_parse_knob(buf, count, ka->max, &v))
		return -EINVAL;
	ret = viommu_knob_refused(attr->attr.name, v);
	if (ret)
		return ret;
	if (ka->offset == offsetof(struct viommu_knobs, flush_timeout_ms))
		/* Also re-arms the deadline of UNMAPs already waiting. */
		viommu_engine_set_flush_timeout(eng, v);
	else
		WRITE_ONCE(*viommu_knob_ptr(dev, attr), v);
	return count;
}

static struct viommu_knob_attr viommu_knob_attrs[] = {
	{
		.attr	= __ATTR(shadow_on_flush, 0644, viommu_knob_show,
				 viommu_knob_store),
		.offset	= offsetof(struct viommu_knobs, shadow_on_flush),
		.max	= 1,
	}, {
		.attr	= __ATTR(flush_timeout_ms, 0644, viommu_knob_show,
				 viommu_knob_store),
		.offset	= offsetof(struct viommu_knobs, flush_timeout_ms),
		.max	= VIOMMU_FLUSH_TIMEOUT_MAX_MS,
	}, {
		.attr	= __ATTR(map_batching, 0644, viommu_knob_show,
				 viommu_knob_store),
		.offset	= offsetof(struct viommu_knobs, map_batching),
		.max	= 1,
	},
};

/* Counter attributes. */

struct viommu_stat_attr {
	struct device_attribute	attr;
	enum viommu_stat	stat;
};

static ssize_t viommu_stat_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	struct viommu_stat_attr *sa = container_of(attr, struct viommu_stat_attr,
						   attr);

	return sysfs_emit(buf, "%llu\n",
			  viommu_stat_read(&viommu_from_sysfs(dev)->engine,
					   sa->stat));
}

#define VIOMMU_STAT_ATTR(_name, _stat)					\
	struct viommu_stat_attr viommu_stat_attr_##_name = {		\
		.attr = __ATTR(_name, 0444, viommu_stat_show, NULL),	\
		.stat = _stat,						\
	}

static VIOMMU_STAT_ATTR(req_attach, VIOMMU_STAT_REQ_ATTACH);
static VIOMMU_STAT_ATTR(req_detach, VIOMMU_STAT_REQ_DETACH);
static VIOMMU_STAT_ATTR(req_map, VIOMMU_STAT_REQ_MAP);
static VIOMMU_STAT_ATTR(req_unmap, VIOMMU_STAT_REQ_UNMAP);
static VIOMMU_STAT_ATTR(req_probe, VIOMMU_STAT_REQ_PROBE);
static VIOMMU_STAT_ATTR(kicks, VIOMMU_STAT_KICKS);
static VIOMMU_STAT_ATTR(shared_kicks, VIOMMU_STAT_SHARED_KICKS);
static VIOMMU_STAT_ATTR(rekicks, VIOMMU_STAT_REKICKS);
static VIOMMU_STAT_ATTR(sync_waits, VIOMMU_STAT_SYNC_WAITS);
static VIOMMU_STAT_ATTR(sync_wait_ns, VIOMMU_STAT_SYNC_WAIT_NS);
static VIOMMU_STAT_ATTR(flushes, VIOMMU_STAT_FLUSHES);
static VIOMMU_STAT_ATTR(deferred_timer, VIOMMU_STAT_DEFERRED_TIMER);
static VIOMMU_STAT_ATTR(deferred_full, VIOMMU_STAT_DEFERRED_FULL);
static VIOMMU_STAT_ATTR(deferred_flush, VIOMMU_STAT_DEFERRED_FLUSH);
static VIOMMU_STAT_ATTR(deferred_map_sync, VIOMMU_STAT_DEFERRED_MAP_SYNC);
static VIOMMU_STAT_ATTR(queue_full, VIOMMU_STAT_QUEUE_FULL);
static VIOMMU_STAT_ATTR(err_ioerr, VIOMMU_STAT_ERR_IOERR);
static VIOMMU_STAT_ATTR(err_unsupp, VIOMMU_STAT_ERR_UNSUPP);
static VIOMMU_STAT_ATTR(err_deverr, VIOMMU_STAT_ERR_DEVERR);
static VIOMMU_STAT_ATTR(err_inval, VIOMMU_STAT_ERR_INVAL);
static VIOMMU_STAT_ATTR(err_range, VIOMMU_STAT_ERR_RANGE);
static VIOMMU_STAT_ATTR(err_noent, VIOMMU_STAT_ERR_NOENT);
static VIOMMU_STAT_ATTR(err_fault, VIOMMU_STAT_ERR_FAULT);
static VIOMMU_STAT_ATTR(err_nomem, VIOMMU_STAT_ERR_NOMEM);
static VIOMMU_STAT_ATTR(err_unknown, VIOMMU_STAT_ERR_UNKNOWN);
static VIOMMU_STAT_ATTR(err_nostatus, VIOMMU_STAT_ERR_NOSTATUS);
static VIOMMU_STAT_ATTR(err_timeout, VIOMMU_STAT_ERR_TIMEOUT);
static VIOMMU_STAT_ATTR(faults, VIOMMU_STAT_FAULTS);
static VIOMMU_STAT_ATTR(merged_maps, VIOMMU_STAT_MERGED_MAPS);
static VIOMMU_STAT_ATTR(merged_unmaps, VIOMMU_STAT_MERGED_UNMAPS);
static VIOMMU_STAT_ATTR(deferred_sync, VIOMMU_STAT_DEFERRED_SYNC);
static VIOMMU_STAT_ATTR(device_broken, VIOMMU_STAT_DEVICE_BROKEN);

static ssize_t max_batch_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n",
			  READ_ONCE(viommu_from_sysfs(dev)->engine.max_batch));
}
static DEVICE_ATTR_RO(max_batch);

static ssize_t pending_unmaps_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	u64 age;

	return sysfs_emit(buf, "%u\n",
			  viommu_pending_unmaps(&viommu_from_sysfs(dev)->engine,
						&age));
}
static DEVICE_ATTR_RO(pending_unmaps);

static ssize_t oldest_pending_unmap_us_show(struct device *dev,
					    struct device_attribute *attr,
					    char *buf)
{
	u64 age;

	viommu_pending_unmaps(&viommu_from_sysfs(dev)->engine, &age);
	return sysfs_emit(buf, "%llu\n", age);
}
static DEVICE_ATTR_RO(oldest_pending_unmap_us);

static ssize_t reset_counters_store(struct device *dev,
				    struct device_attribute *attr,
				    const char *buf, size_t count)
{
	unsigned int v;

	if (viommu_parse_knob(buf, count, 1, &v) || v != 1)
		return -EINVAL;
	viommu_stats_reset(&viommu_from_sysfs(dev)->engine);
	return count;
}
static DEVICE_ATTR_WO(reset_counters);

static struct attribute *viommu_fq_attrs[] = {
	&viommu_knob_attrs[0].attr.attr,
	&viommu_knob_attrs[1].attr.attr,
	&viommu_knob_attrs[2].attr.attr,
	&viommu_stat_attr_req_attach.attr.attr,
	&viommu_stat_attr_req_detach.attr.attr,
	&viommu_stat_attr_req_map.attr.attr,
	&viommu_stat_attr_req_unmap.attr.attr,
	&viommu_stat_attr_req_probe.attr.attr,
	&viommu_stat_attr_kicks.attr.attr,
	&viommu_stat_attr_shared_kicks.attr.attr,
	&viommu_stat_attr_rekicks.attr.attr,
	&viommu_stat_attr_sync_waits.attr.attr,
	&viommu_stat_attr_sync_wait_ns.attr.attr,
	&viommu_stat_attr_flushes.attr.attr,
	&viommu_stat_attr_deferred_timer.attr.attr,
	&viommu_stat_attr_deferred_full.attr.attr,
	&viommu_stat_attr_deferred_flush.attr.attr,
	&viommu_stat_attr_deferred_map_sync.attr.attr,
	&viommu_stat_attr_queue_full.attr.attr,
	&viommu_stat_attr_err_ioerr.attr.attr,
	&viommu_stat_attr_err_unsupp.attr.attr,
	&viommu_stat_attr_err_deverr.attr.attr,
	&viommu_stat_attr_err_inval.attr.attr,
	&viommu_stat_attr_err_range.attr.attr,
	&viommu_stat_attr_err_noent.attr.attr,
	&viommu_stat_attr_err_fault.attr.attr,
	&viommu_stat_attr_err_nomem.attr.attr,
	&viommu_stat_attr_err_unknown.attr.attr,
	&viommu_stat_attr_err_nostatus.attr.attr,
	&viommu_stat_attr_err_timeout.attr.attr,
	&viommu_stat_attr_faults.attr.attr,
	&viommu_stat_attr_merged_maps.attr.attr,
	&viommu_stat_attr_merged_unmaps.attr.attr,
	&viommu_stat_attr_deferred_sync.attr.attr,
	&viommu_stat_attr_device_broken.attr.attr,
	&dev_attr_max_batch.attr,
	&dev_attr_pending_unmaps.attr,
	&dev_attr_oldest_pending_unmap_us.attr,
	&dev_attr_reset_counters.attr,
	NULL,
};

static const struct attribute_group viommu_fq_group = {
	.name	= "virtio-iommu-fq",
	.attrs	= viommu_fq_attrs,
};

const struct attribute_group *viommu_sysfs_groups[] = {
	&viommu_fq_group,
	NULL,
};
