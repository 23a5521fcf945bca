#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The main job, for a newcomer on a fresh Debian 12 machine (`make demo`):
# install what is needed, build the module for Debian 12's newest 6.12
# kernel, boot that kernel under QEMU (TCG) with a virtio-iommu, an NVMe and
# a virtio-blk disk, load our module, and show
#   - the bound module (version, srcversion, description),
#   - each endpoint's IOMMU group and mode,
#   - a short fio figure on the NVMe disk in DMA-FQ (lazy) mode,
#   - the driver's counters for that run, per I/O.
# About 1-2 minutes once the caches under /var/cache/virtio-iommu-fq are warm.
#
#   scripts/demo.sh           x86-64 guest (q35, ACPI VIOT)
#   scripts/demo.sh arm64     arm64 guest (virt, device tree): Debian 12's
#                             arm64 6.12 kernel, the module cross-built by
#                             scripts/cross-arm64.sh (make demo-arm64)
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tests/lib/initramfs.sh
. "$TOP/tests/lib/initramfs.sh"
# shellcheck source=../tests/lib/vm.sh
. "$TOP/tests/lib/vm.sh"

[ "$(id -u)" = 0 ] || die "run as root (installs packages, uses /var/cache)"
arch=x86_64
case ${1:-} in
"") ;;
arm64) arch=arm64 ;;
*) die "usage: $0 [arm64]" ;;
esac
t0=$(date +%s)
log "1/4 host packages"
"$TOP/scripts/host-deps.sh" >/dev/null
log "2/4 guest kernel"
if [ "$arch" = arm64 ]; then
	kver=$("$TOP/scripts/guest-kernels.sh" bookworm-arm64 | tail -n1)
	log "3/4 cross-building the module for $kver"
	ko=$("$TOP/scripts/cross-arm64.sh" bookworm 2>"$VIOMMU_CACHE/demo-build.log" | tail -n1) ||
		die "module build failed, see $VIOMMU_CACHE/demo-build.log"
	# The results port of arm64 guests is a virtio console on virtio-mmio.
	VIOMMU_GUEST_MODULES="$VIOMMU_GUEST_MODULES virtio_mmio"
else
	kver=$("$TOP/scripts/guest-kernels.sh" bookworm | tail -n1)
	log "3/4 building the module for $kver"
	ko=$("$TOP/scripts/build-module.sh" "$kver" 2>"$VIOMMU_CACHE/demo-build.log" | tail -n1) ||
		die "module build failed, see $VIOMMU_CACHE/demo-build.log"
fi
tree=$VIOMMU_CACHE/kernels/$kver

out=$VIOMMU_CACHE/demo-$arch
mkdir -p "$out"
guest=$out/demo-guest.sh
cat >"$guest" <<'EOF'
#!/bin/sh
# Guest side of scripts/demo.sh.
. /lib/viommu/guest-lib.sh
plan demo-load demo-fio
insmod "$VIOMMU_OURS_KO" || { result demo-load FAIL "insmod failed: $(dmesg | tail -n 3)"; exit 1; }
modload nvme
modload virtio_blk
N=$(nvme_bdf)
V=$(vblk_bdf)
ND=$(wait_blkdev "$N" 30)
VD=$(wait_blkdev "$V" 30)
M=/sys/module/virtio_iommu
info "SHOW module virtio_iommu: version $(cat $M/version), srcversion $(cat $M/srcversion), instance $(viommu_inst)"
info "SHOW knobs: shadow_on_flush=$(cnt shadow_on_flush) flush_timeout_ms=$(cnt flush_timeout_ms) map_batching=$(cnt map_batching)"
for b in "$N" "$V"; do
	g=$(group_of "$b")
	info "SHOW endpoint $b ($(pci_driver "$b"), disk $(blkdev_of "$b")): iommu group $g, mode $(group_type "$g")"
done
if [ -n "$ND" ] && [ -n "$VD" ]; then
	result demo-load PASS "disks $ND $VD behind virtio-iommu"
else
	result demo-load FAIL "disks '$ND' '$VD'"
fi
reset_counters
fio --name=demo --filename="/dev/$ND" --direct=1 --ioengine=libaio --rw=randread \
	--bs=4k --iodepth=16 --runtime=5 --time_based --output-format=terse \
	--terse-version=3 >/tmp/demo.out 2>/tmp/demo.err
rc=$?
line=$(grep '^3;' /tmp/demo.out | tail -n1)
kb=$(echo "$line" | cut -d';' -f6)
iops=$(echo "$line" | cut -d';' -f8)
ios=$((${kb:-0} / 4))
per() { echo "$1 $ios" | awk '{ if ($2 > 0) printf "%.2f", $1 / $2; else print "?" }'; }
info "SHOW fio randread 4k, iodepth 16, 5 s on $ND in $(group_type "$(group_of "$N")") mode: ${iops:-?} IOPS, $ios I/Os (TCG: compare ratios, not absolutes)"
info "SHOW per I/O: kicks $(per "$(cnt kicks)"), MAP $(per "$(cnt req_map)"), UNMAP $(per "$(cnt req_unmap)"), sync waits $(per "$(cnt sync_waits)"); deferred UNMAPs submitted by map sync $(cnt deferred_map_sync), by flush $(cnt deferred_flush), by timer $(cnt deferred_timer); merged UNMAPs $(cnt merged_unmaps); largest batch $(cnt max_batch)"
if [ "$rc" -eq 0 ] && [ "$ios" -gt 0 ]; then
	result demo-fio PASS "$iops IOPS"
else
	result demo-fio FAIL "fio rc=$rc: $(head -n 3 /tmp/demo.err)"
fi
EOF
initrd=$out/initrd.img
viommu_initramfs "$initrd" "$tree" "$kver" "$guest" "$ko:lib/modules/ours/virtio-iommu.ko"
log "4/4 booting $kver under QEMU TCG (virtio-iommu-pci, NVMe, virtio-blk)"
VM_ARCH=$arch VM_TIMEOUT=300 viommu_vm_run "$out/run" "$tree/boot/vmlinuz-$kver" "$initrd" ||
	die "the guest did not start: $VM_ATTEMPTS (console: $out/run/console.log)"
echo
echo "== virtio-iommu-fq demo on $kver =="
grep '^INFO SHOW ' "$out/run/results.log" | sed 's/^INFO SHOW /  /'
echo
viommu_vm_results "$out/run" >"$out/run/verdict.txt"
sed 's/^/  /' "$out/run/verdict.txt"
echo "  (boot: $VM_ATTEMPTS; whole demo $(($(date +%s) - t0)) s; logs in $out/run/)"
[ "$VM_FAIL" -eq 0 ]
