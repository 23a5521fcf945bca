#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# End-to-end suite: our virtio-iommu.ko in real guests (QEMU q35 under TCG,
# virtio-iommu-pci, an NVMe and a virtio-blk disk), on Debian 12's 6.12
# kernel and on sid's newest kernel.
#
#   tests/e2e/run.sh [--intree] [--boots LIST] [bookworm] [sid]
#                    [bookworm-arm64] [sid-arm64] [bookworm61-arm64]
#
# With no kernel named, bookworm and sid run. bookworm61-arm64 is Debian
# 12's own arm64 6.1 kernel, where the module builds src/core61.c: the
# cases that cannot apply there are reported as SKIP with the reason. --intree boots the kernel's own
# virtio_iommu instead of ours (a self-test of the harness; the cases about
# our module are reported as SKIP; the lifecycle, tool, suspend and
# hibernation boots report FIGURE lines). --boots runs only some boots
# (comma separated: main,after-reboot,before-reboot,after-poweroff,unload,
# untrusted,lifecycle,tool,suspend,hibernate; see pm-boots.sh for the last
# two).
#
# Per kernel it prints one line per case ("PASS|FAIL|SKIP <kver> <boot>/<case>
# <detail>"), then `SUITE e2e-<kver>: N passed, N failed, N skipped`; the exit
# status is non-zero if any case failed. Logs: $VIOMMU_CACHE/e2e/<kver>/<boot>/.
# VIOMMU_E2E_APPEND adds to every guest's kernel command line (e.g.
# "initcall_debug" to have each device's shutdown logged).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../lib/initramfs.sh
. "$TOP/tests/lib/initramfs.sh"
# shellcheck source=../lib/vm.sh
. "$TOP/tests/lib/vm.sh"
# shellcheck source=pm-boots.sh
. "$TOP/tests/e2e/pm-boots.sh"

MOD=ours
BOOTS_GIVEN=""
BOOTS=main,after-reboot,before-reboot,after-poweroff,unload,untrusted,lifecycle,tool,suspend,hibernate
KERNELS=()
while [ $# -gt 0 ]; do
	case $1 in
	--intree) MOD=intree ;;
	--boots) BOOTS=$2; BOOTS_GIVEN=1; shift ;;
	bookworm | sid | bookworm-arm64 | sid-arm64 | bookworm61-arm64) KERNELS+=("$1") ;;
	-h | --help) sed -n '3,23p' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done
[ ${#KERNELS[@]} -gt 0 ] || KERNELS=(bookworm sid)

# boot NAME -> "role order shutdown"
boot_spec() {
	case $1 in
	main) echo "main before poweroff" ;;
	after-reboot) echo "shutdown after reboot" ;;
	before-reboot) echo "shutdown before reboot" ;;
	after-poweroff) echo "shutdown after poweroff" ;;
	unload) echo "unload before poweroff" ;;
	untrusted) echo "untrusted before poweroff" ;;
	knobs) echo "knobs before poweroff" ;;
	lifecycle) echo "lifecycle before poweroff" ;;
	tool) echo "tool before poweroff" ;;
	suspend | hibernate) echo "$1 before poweroff" ;; # pm-boots.sh
	*) die "unknown boot '$1'" ;;
	esac
}

# The trust-policy boot: a second NVMe controller (null backend) behind a
# PCIe root port at 00:06.0, which an SSDT marks external-facing. QEMU names
# the port's ACPI device S<devfn> (devfn 0x30 -> S30).
EXT_PORT_ADDR=0x6
EXT_PORT_ACPI=S30
EXT_QEMU_ARGS=(
	-device "pcie-root-port,id=extport,bus=pcie.0,addr=$EXT_PORT_ADDR,chassis=9"
	-blockdev "driver=null-co,node-name=extnull,size=268435456,read-zeroes=on"
	-device "nvme,bus=extport,serial=viommu-ext,drive=extnull"
)

# untrusted_initrd INITRD OUT: prepend an uncompressed cpio holding the SSDT
# (kernel/firmware/acpi/, the kernel's initrd table upgrade) to INITRD.
untrusted_initrd() {
	local tmp
	command -v iasl >/dev/null || die "iasl missing: run scripts/host-deps.sh (acpica-tools)"
	tmp=$(mktemp -d)
	mkdir -p "$tmp/kernel/firmware/acpi"
	sed "s/PORT/$EXT_PORT_ACPI/g" "$TOP/tests/e2e/external-port.asl" >"$tmp/extport.asl"
	iasl -p "$tmp/extport" "$tmp/extport.asl" >"$tmp/iasl.log" 2>&1 ||
		die "iasl failed: $(cat "$tmp/iasl.log")"
	mv "$tmp/extport.aml" "$tmp/kernel/firmware/acpi/extport.aml"
	(cd "$tmp" && find kernel | cpio -o -H newc --owner=0:0 --quiet) >"$2"
	cat "$1" >>"$2"
	rm -rf "$tmp"
}

# The lifecycle boot: a third NVMe controller on a hot-pluggable PCIe root
# port at 00:07.0, on a file the host keeps, so that the guest can have it
# unplugged (QMP device_del) and plugged again (device_add of the same
# controller on the same drive); see guest-lifecycle.sh.
lc_qemu_args() { # DISK-FILE
	LC_QEMU_ARGS=(
		-device "pcie-root-port,id=lcport,bus=pcie.0,addr=0x7,chassis=10"
		-blockdev "driver=file,filename=$1,node-name=lcdisk"
		-device "nvme,bus=lcport,id=lcnvme,drive=lcdisk,serial=viommu-lc"
	)
}

# The longest a guest may take from its SHUTDOWN line to QEMU's exit.
SHUTDOWN_LIMIT_S=10

run_kernel() {
	local which=$1 kver tree ko="" version="" srcversion="" out initrd b role order shut
	local pass=0 fail=0 skip=0 t0 s arch=x86_64 boots=$BOOTS expect modules=$VIOMMU_GUEST_MODULES
	local suite=${which%-arm64} core61=0 skipped=() kappend=""
	t0=$(date +%s)
	if [[ $which == *-arm64 ]]; then
		# QEMU's virt machine, device tree. Not here: the untrusted boot
		# (an ACPI table marks its port), suspend and hibernation (virt
		# has no S3). The lifecycle boot (PCIe native hot-plug on virt)
		# runs when named (--boots lifecycle; make check-all).
		arch=arm64
		[ -n "$BOOTS_GIVEN" ] || boots=main,after-reboot,before-reboot,after-poweroff,unload,tool
		modules+=" virtio_mmio"
	fi
	if [ "$which" = bookworm61-arm64 ]; then
		# The 6.1 iommu core (src/core61.c). The tool boot is not run:
		# the viommu-fq command's modes and several of its cases are
		# built on shadow_on_flush, which 6.1 does not have.
		suite=bookworm-6.1 core61=1
		# No in-tree virtio_iommu to compare with; virtio_pci (guest.sh
		# loads it first, as udev would) and virtio_console (the results
		# port, guest-init.sh) are modules there.
		modules="${modules//virtio_iommu/} virtio_pci virtio_console"
		# On 6.1 an endpoint is translated only if virtio_iommu
		# registers before the deferred-probe timeout (10 s after the
		# late initcalls); later, its driver binds without the IOMMU.
		# Under TCG this guest reaches /init after those 10 s (17 s
		# measured), so the timeout is raised; a real boot loads the
		# module from the initramfs well within it.
		kappend="deferred_probe_timeout=120"
		if [ -z "$BOOTS_GIVEN" ]; then
			boots=main,after-reboot,before-reboot,after-poweroff,unload
			skipped=("tool/boot 6.1 iommu core: the viommu-fq command's modes are built on shadow_on_flush, which 6.1 lacks")
		fi
	fi
	# (set -e does not apply here: run_kernel is called in a || list.)
	kver=$("$TOP/scripts/guest-kernels.sh" "$which" | tail -n1)
	if [ -z "$kver" ] || [ ! -f "$VIOMMU_CACHE/kernels/$kver/.complete" ]; then
		echo "FAIL $which fetching the guest kernel failed"
		echo "SUITE e2e-$which: 0 passed, 1 failed, 0 skipped"
		return 1
	fi
	tree=$VIOMMU_CACHE/kernels/$kver
	out=$VIOMMU_CACHE/e2e/$kver
	mkdir -p "$out"
	local extra=()
	# The default domain type the kernel was configured with.
	expect=DMA-FQ
	grep -q '^CONFIG_IOMMU_DEFAULT_DMA_STRICT=y' "$tree/boot/config-$kver" && expect=DMA
	if [ "$MOD" = ours ]; then
		if [ "$arch" = arm64 ]; then
			ko=$("$TOP/scripts/cross-arm64.sh" "$suite" 2>"$out/cross-build.log" | tail -n1) || ko=""
		else
			ko=$("$TOP/scripts/build-module.sh" "$kver" | tail -n1) || ko=""
		fi
		if [ -z "$ko" ] || [ ! -f "$ko" ]; then
			echo "FAIL $kver build the module failed (see $VIOMMU_CACHE/build/$kver/build.log or $out/cross-build.log)"
			echo "SUITE e2e-$kver: 0 passed, 1 failed, 0 skipped"
			return 1
		fi
		version=$(modinfo -F version "$ko")
		srcversion=$(modinfo -F srcversion "$ko")
		extra=("$ko:lib/modules/ours/virtio-iommu.ko")
		echo "INFO $kver module $ko version $version srcversion $srcversion"
	fi
	extra+=("$TOP/tests/e2e/guest-lifecycle.sh:lib/viommu/guest-lifecycle.sh")
	initrd=$out/initrd.img
	# The viommu-fq cases (boot "tool"); ext4 for a mounted filesystem.
	extra+=("$TOP/tests/e2e/guest-tool.sh:lib/viommu/guest-tool.sh")
	if ! (VIOMMU_GUEST_MODULES="$modules ext4" \
		viommu_initramfs "$initrd" "$tree" "$kver" "$TOP/tests/e2e/guest.sh" "${extra[@]}"); then
		echo "FAIL $kver building the initramfs failed"
		echo "SUITE e2e-$kver: 0 passed, 1 failed, 0 skipped"
		return 1
	fi
	local results=$out/results.txt pm_img=""
	: >"$results"
	for s in "${skipped[@]}"; do
		echo "SKIP $kver $s" | tee -a "$results"
	done
	for b in ${boots//,/ }; do
		read -r role order shut <<<"$(boot_spec "$b")"
		if [ "$role" = suspend ] || [ "$role" = hibernate ]; then
			if [ -z "$pm_img" ]; then
				pm_img=$out/initrd-pm.img
				if ! (pm_initrd "$pm_img" "$tree" "$kver" "${extra[@]}"); then
					echo "FAIL $kver $b/boot building the PM initramfs failed" | tee -a "$results"
					pm_img=""
					continue
				fi
			fi
			pm_boot "$b" "$kver" "$tree" "$out" "$pm_img" | tee -a "$results"
			continue
		fi
		local append="viommu_role=$role viommu_order=$order viommu_shutdown=$shut viommu_mod=$MOD"
		append+=" viommu_expect_type=$expect viommu_fio_size=32M viommu_core61=$core61"
		[ -n "$kappend" ] && append+=" $kappend"
		[ -n "$version" ] && append+=" viommu_version=$version viommu_srcversion=$srcversion"
		[ -n "${VIOMMU_E2E_APPEND:-}" ] && append+=" $VIOMMU_E2E_APPEND"
		log "$kver: boot '$b' ($role, virtio_iommu $order the endpoint drivers, ends with $shut)"
		local ok=1 boot_initrd=$initrd qargs=()
		local mem=2G
		if [ "$b" = untrusted ]; then
			boot_initrd=$out/initrd-untrusted.img
			if ! (untrusted_initrd "$initrd" "$boot_initrd"); then
				echo "FAIL $kver $b/boot could not build the SSDT initrd" | tee -a "$results"
				continue
			fi
			qargs=("${EXT_QEMU_ARGS[@]}")
			# Untrusted devices bounce unaligned buffers through swiotlb,
			# which x86 only sets up with memory above 4 GiB.
			mem=5G
		fi
		if [ "$b" = lifecycle ]; then
			mkdir -p "$out/$b"
			rm -f "$out/$b/lc.img"
			truncate -s 64M "$out/$b/lc.img"
			lc_qemu_args "$out/$b/lc.img"
			qargs=("${LC_QEMU_ARGS[@]}")
		fi
		VM_ARCH=$arch VM_MEM=$mem viommu_vm_run "$out/$b" "$tree/boot/vmlinuz-$kver" "$boot_initrd" "$append" -- "${qargs[@]}" || ok=0
		{
			viommu_vm_results "$out/$b" | sed "s|^\([A-Z]*\) |\1 $kver $b/|"
			grep '^FIGURE ' "$out/$b/results.log" | sed "s|^FIGURE \([^ ]*\) |FIGURE $kver $b/\1 |" || true
			if [ $ok = 1 ] && grep -q '^GUEST-DONE' "$out/$b/results.log"; then
				echo "PASS $kver $b/boot $VM_ATTEMPTS"
			elif [ "$MOD" = intree ] && [ "$b" = lifecycle ]; then
				# What the in-tree driver does here is a figure.
				echo "FIGURE $kver $b/boot in-tree driver: guest script did not finish ($VM_ATTEMPTS; last console lines: $(tr -d '\r' <"$out/$b/console.log" | tail -n 3 | tr '\n' '|'))"
			else
				echo "FAIL $kver $b/boot $VM_ATTEMPTS; guest script did not finish (see $out/$b/console.log)"
			fi
			if grep -q '^SHUTDOWN ' "$out/$b/results.log"; then
				local want="reboot: Power down"
				[ "$shut" = reboot ] && want="reboot: Restarting system"
				local guest_t
				guest_t=$(guest_shutdown_s "$out/$b")
				if [ "$MOD" = intree ]; then
					# The in-tree driver's shutdown is a figure, not a verdict.
					if [ -n "$VM_SHUTDOWN_S" ]; then
						echo "FIGURE $kver $b/$shut-$order in-tree driver: ${VM_SHUTDOWN_S}s host (${guest_t}s guest) from '$shut -f' to QEMU exit, '$want' $(grep -q "$want" "$out/$b/console.log" && echo seen || echo 'not seen')"
					else
						echo "FIGURE $kver $b/$shut-$order in-tree driver: QEMU did not exit within ${VM_SHUTDOWN_CAP}s of '$shut -f' ($VM_ATTEMPTS)"
					fi
				elif [ -n "$VM_SHUTDOWN_S" ] && grep -q "$want" "$out/$b/console.log" &&
					[ "$(echo "$VM_SHUTDOWN_S < $SHUTDOWN_LIMIT_S" | bc)" = 1 ]; then
					echo "PASS $kver $b/$shut-$order ${VM_SHUTDOWN_S}s host (${guest_t}s guest) from '$shut -f' to QEMU exit, '$want' seen"
				else
					echo "FAIL $kver $b/$shut-$order host ${VM_SHUTDOWN_S:-?}s guest ${guest_t}s (limit ${SHUTDOWN_LIMIT_S}s), '$want' $(grep -q "$want" "$out/$b/console.log" && echo seen || echo 'not seen'); last console lines: $(tr -d '\r' <"$out/$b/console.log" | tail -n 3 | tr '\n' '|')"
				fi
			elif [ "$MOD" = intree ] && [ "$b" = lifecycle ]; then
				echo "FIGURE $kver $b/$shut-$order in-tree driver: the guest never reached its shutdown"
			else
				echo "FAIL $kver $b/$shut-$order the guest never reached its shutdown"
			fi
			grep '^METRIC ' "$out/$b/results.log" | sed "s|^METRIC |METRIC $kver $b/|" || true
		} | tee -a "$results"
		rm -f "$out/$b/lc.img"
	done
	while read -r s _; do
		case $s in
		PASS) pass=$((pass + 1)) ;;
		FAIL) fail=$((fail + 1)) ;;
		SKIP) skip=$((skip + 1)) ;;
		esac
	done <"$results"
	echo "TIME $kver e2e suite took $(($(date +%s) - t0)) s wall clock"
	echo "SUITE e2e-$kver: $pass passed, $fail failed, $skip skipped"
	[ "$fail" -eq 0 ]
}

# guest_shutdown_s DIR: guest seconds from the SHUTDOWN line's uptime to the
# kernel's last "reboot:" message (printk time).
guest_shutdown_s() {
	local up end
	up=$(grep -m1 '^SHUTDOWN ' "$1/results.log" | awk '{print $3}')
	end=$(tr -d '\r' <"$1/console.log" | grep -E '\] reboot: (Power down|Restarting)' | tail -n1 |
		sed 's/^\[ *\([0-9.]*\)\].*/\1/')
	if [ -n "$up" ] && [ -n "$end" ]; then
		echo "$end $up" | awk '{printf "%.2f", $1 - $2}'
	else
		echo "?"
	fi
}

for q in qemu-system-x86_64 qemu-system-aarch64; do
	command -v $q >/dev/null || die "$q missing: run scripts/host-deps.sh"
done
status=0
for k in "${KERNELS[@]}"; do
	run_kernel "$k" || status=1
done
exit $status
