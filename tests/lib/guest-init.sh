#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# /init of the test initramfs (busybox sh). Mounts the pseudo filesystems,
# announces itself on the results port, runs /test.sh, and powers the guest
# off if the test did not already. Kernel command-line words of the form
# key=value that the kernel does not know arrive here as environment
# variables (e.g. viommu_order=after); /test.sh sees them too.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs -o size=512m tmpfs /tmp
mkdir -p /sys/kernel/debug /dev/hugepages
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
. /lib/viommu/guest-lib.sh
# arm64 guests report through a virtio console on virtio-mmio (QEMU's virt
# machine has one UART, the kernel's), whose transport is a module.
if [ -n "${viommu_results_mod:-}" ]; then
	modload "$viommu_results_mod"
	# The console driver, where it is a module (Debian's arm64 6.1) and
	# the harness put it in the image.
	if [ -f /lib/modules/deps/virtio_console ]; then
		modload virtio_console
	fi
	i=0
	while [ ! -e "$VIOMMU_RESULTS_TTY" ] && [ $i -lt 100 ]; do
		usleep 100000
		i=$((i + 1))
	done
fi
guest_start
/bin/sh /test.sh
rc=$?
info "test script exited with status $rc"
guest_done
shutdown_now poweroff
