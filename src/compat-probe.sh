#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# compat-probe.sh CC CFLAGS...: print the -D flags that src/compat.h needs
# for the kernel being built against. Each probe compiles a small snippet
# that uses one API the way the driver does, with the compiler and the
# flags Kbuild compiles the module with (called from Kbuild, in the
# kernel's object tree), so that a kernel whose headers declare the API
# differently, or reflow its declaration, is judged by what compiles, not
# by what the text looks like. See compat.h for what each flag means.
#
# VIOMMU_PROBE_LOG=FILE keeps every snippet's compiler output.
# VIOMMU_SRCTREE=DIR is the kernel's source tree (Kbuild's $(srctree)).

cc=$1
shift
tmp=$(mktemp -d "${TMPDIR:-/tmp}/viommu-probe.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# probe FLAG: compile the snippet on stdin; print FLAG if it compiles.
probe() {
	flag=$1
	shift
	cat >"$tmp/probe.c"
	if $cc "$@" -Werror=incompatible-pointer-types \
		-Werror=implicit-function-declaration -Werror=int-conversion \
		-fsyntax-only -c "$tmp/probe.c" >"$tmp/out" 2>&1; then
		printf ' %s' "-D$flag"
	fi
	[ -z "${VIOMMU_PROBE_LOG:-}" ] ||
		{ echo "== $flag"; cat "$tmp/out"; } >>"$VIOMMU_PROBE_LOG"
}

# attach_dev() takes the domain the device leaves (6.19).
probe VIOMMU_HAVE_ATTACH_DEV_OLD "$@" <<'SNIPPET'
#include <linux/iommu.h>
static int viommu_probe_attach(struct iommu_domain *domain, struct device *dev,
			       struct iommu_domain *old)
{
	return 0;
}
const struct iommu_domain_ops viommu_probe_ops = {
	.attach_dev = viommu_probe_attach,
};
SNIPPET

# hrtimer_setup() initialises a timer with its callback (6.13).
probe VIOMMU_HAVE_HRTIMER_SETUP "$@" <<'SNIPPET'
#include <linux/hrtimer.h>
void viommu_probe_timer(struct hrtimer *t,
			enum hrtimer_restart (*fn)(struct hrtimer *));
void viommu_probe_timer(struct hrtimer *t,
			enum hrtimer_restart (*fn)(struct hrtimer *))
{
	hrtimer_setup(t, fn, CLOCK_MONOTONIC, HRTIMER_MODE_REL);
}
SNIPPET

# The 6.1 iommu core (core61.c): domain_alloc(type) without a device, no
# static identity or blocked domains, of_xlate() and iommu_fwspec_add_ids()
# without const, an iotlb_sync_map() that cannot report an error. The
# snippet declares the ops the way core61.c does; a newer core (const
# of_xlate arguments since 6.9, int iotlb_sync_map since 6.8) rejects it.
probe VIOMMU_CORE61 "$@" <<'SNIPPET'
#include <linux/iommu.h>
#include <linux/of.h>
static struct iommu_domain *viommu_probe_alloc(unsigned int type)
{
	return NULL;
}
static int viommu_probe_xlate(struct device *dev, struct of_phandle_args *args)
{
	return iommu_fwspec_add_ids(dev, args->args, 1);
}
static void viommu_probe_sync_map(struct iommu_domain *domain,
				  unsigned long iova, size_t size)
{
}
const struct iommu_domain_ops viommu_probe_domain_ops = {
	.iotlb_sync_map = viommu_probe_sync_map,
};
const struct iommu_ops viommu_probe_ops = {
	.domain_alloc = viommu_probe_alloc,
	.of_xlate = viommu_probe_xlate,
	.default_domain_ops = &viommu_probe_domain_ops,
};
SNIPPET

# virtio_find_vqs() takes arrays of callbacks and names (before 6.11's
# struct virtqueue_info).
probe VIOMMU_HAVE_FIND_VQS_CALLBACKS "$@" <<'SNIPPET'
#include <linux/virtio_config.h>
int viommu_probe_vqs(struct virtio_device *vdev, struct virtqueue *vqs[2],
		     vq_callback_t *cb);
int viommu_probe_vqs(struct virtio_device *vdev, struct virtqueue *vqs[2],
		     vq_callback_t *cb)
{
	vq_callback_t *callbacks[] = { NULL, cb };
	static const char * const names[] = { "request", "event" };

	return virtio_find_vqs(vdev, 2, vqs, callbacks, names, NULL);
}
SNIPPET

# dma-iommu's private header (a full source tree has it, such as the KUnit
# build; headers packages do not), if it declares iommu_dma_get_resv_regions()
# as the driver calls it: then compat.h includes it instead of declaring the
# prototype itself.
dma=${VIOMMU_SRCTREE:-}/drivers/iommu/dma-iommu.h
case $dma in
/*) ;;
*) dma=$PWD/$dma ;;
esac
if [ -n "${VIOMMU_SRCTREE:-}" ] && [ -f "$dma" ]; then
	probe "VIOMMU_DMA_IOMMU_H='\"$dma\"'" "$@" <<SNIPPET
#include <linux/iommu.h>
#include "$dma"
void (*viommu_probe_resv)(struct device *dev, struct list_head *list) =
	iommu_dma_get_resv_regions;
SNIPPET
fi
echo
