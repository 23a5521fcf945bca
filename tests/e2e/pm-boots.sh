# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# tests/e2e/pm-boots.sh - host side of the suspend and hibernation boots of
# the end-to-end suite (sourced by run.sh; the guest side is guest-pm.sh).
#
#   suspend    one boot, `-global ICH9-LPC.disable_s3=0` so that the guest
#              offers S3; the guest suspends to RAM viommu_cycles times and
#              asks, with HOST-QMP lines, for QMP system_wakeup; QEMU resets
#              its devices on the wake-up.
#   hibernate  two boots on the same disks (VM_KEEP_DISKS): the first writes
#              a hibernation image to swap on the virtio-blk disk and powers
#              off; the second loads the drivers and resumes from the image
#              (resume=/dev/vda on the command line, written to
#              /sys/power/resume by the guest script), where the first
#              boot's script goes on with its checks.
#
# Our module's cases are judged (PASS/FAIL). With --intree the same boots
# run on the kernel's own driver and what it does is printed as FIGURE lines,
# never as a failure; as that driver may hang the guest for good after a
# wake-up, such a boot ends PM_INTREE_TIMEOUT s after it started (or
# VM_SHUTDOWN_CAP s after the guest started hibernating).

PM_QEMU_ARGS=(-global ICH9-LPC.disable_s3=0)
PM_INTREE_TIMEOUT=${PM_INTREE_TIMEOUT:-180}
PM_CYCLES=${PM_CYCLES:-5}
PM_SHUTDOWN_CAP=${PM_SHUTDOWN_CAP:-15}

# pm_initrd OUT TREE KVER [SRC:DST]...: the PM initramfs (guest-pm.sh).
pm_initrd() {
	local out=$1 tree=$2 kver=$3
	shift 3
	viommu_initramfs "$out" "$tree" "$kver" "$TOP/tests/e2e/guest-pm.sh" "$@"
}

# _pm_console DIR: the console lines that tell what went wrong, if any.
_pm_console() {
	tr -d '\r' <"$1/console.log" 2>/dev/null |
		grep -m3 -E 'soft lockup|hard LOCKUP|blocked for more than|did not answer|BUG:|WARNING:|Kernel panic' |
		sed 's/^\[ *[0-9.]*\] //' | tr '\n' '|'
}

# _pm_last_guest DIR: the guest's last result-port line.
_pm_last_guest() {
	grep -v '^HOST-QMP' "$1/results.log" 2>/dev/null | tail -n1 | cut -c1-160
}

# _pm_results KVER BOOT DIR OK: the guest's cases, figures and metrics, and
# the host's "boot" case (a FIGURE for the in-tree driver).
_pm_results() {
	local kver=$1 b=$2 dir=$3 ok=$4
	viommu_vm_results "$dir" | sed "s|^\([A-Z]*\) |\1 $kver $b/|"
	sed -n "s|^FIGURE \([^ ]*\) |FIGURE $kver $b/\1 |p" "$dir/results.log"
	grep '^METRIC ' "$dir/results.log" | sed "s|^METRIC |METRIC $kver $b/|" || true
	if [ "$ok" = 1 ] && grep -q '^GUEST-DONE' "$dir/results.log"; then
		echo "PASS $kver $b/boot $VM_ATTEMPTS"
	elif [ "$MOD" = intree ]; then
		echo "FIGURE $kver $b/boot in-tree driver: guest script did not finish: $VM_ATTEMPTS; last guest line: '$(_pm_last_guest "$dir")'; console: $(_pm_console "$dir")"
	else
		echo "FAIL $kver $b/boot $VM_ATTEMPTS; guest script did not finish (see $dir/console.log): $(_pm_console "$dir")"
	fi
}

# pm_boot BOOT KVER TREE OUT INITRD: run one PM boot, print its lines.
pm_boot() {
	local b=$1 kver=$2 tree=$3 out=$4 initrd=$5 dir=$4/$1 ok=1 append kernel
	local timeout=$VM_TIMEOUT t0=$SECONDS
	kernel=$tree/boot/vmlinuz-$kver
	append="viommu_role=$b viommu_mod=$MOD viommu_cycles=$PM_CYCLES viommu_fio_size=8M no_console_suspend"
	[ "$MOD" = intree ] && timeout=$PM_INTREE_TIMEOUT
	case $b in
	suspend)
		log "$kver: boot 'suspend' ($PM_CYCLES S3 cycles, $MOD driver)"
		# After S3 cycles the guest's ACPI poweroff has been seen not to end
		# QEMU (6.12, QEMU 7.2); the poweroff is a figure here, not a case.
		VM_SHUTDOWN_CAP=$PM_SHUTDOWN_CAP VM_TIMEOUT=$timeout \
			viommu_vm_run "$dir" "$kernel" "$initrd" "$append" -- "${PM_QEMU_ARGS[@]}" || ok=0
		_pm_results "$kver" "$b" "$dir" $ok
		if grep -q '^SHUTDOWN ' "$dir/results.log"; then
			echo "FIGURE $kver $b/poweroff-after-s3 $MOD driver: $(if [ -n "$VM_SHUTDOWN_S" ]; then
				echo "QEMU exited ${VM_SHUTDOWN_S}s after 'poweroff -f'"
			else
				echo "QEMU still running ${PM_SHUTDOWN_CAP}s after 'poweroff -f' ('reboot: Power down' $(grep -q 'reboot: Power down' "$dir/console.log" && echo seen || echo 'not seen')): ended"
			fi)"
		fi
		;;
	hibernate)
		append+=" resume=/dev/vda"
		log "$kver: boot 'hibernate' (first boot: write the image, $MOD driver)"
		rm -f "$dir/nvme.img" "$dir/vblk.img"
		VM_KEEP_DISKS=1 VM_TIMEOUT=$timeout viommu_vm_run "$dir" "$kernel" "$initrd" "$append" -- "${PM_QEMU_ARGS[@]}" || ok=0
		_pm_hibernated "$kver" "$dir" $ok
		if [ -n "$PM_IMAGE" ]; then
			log "$kver: boot 'hibernate' (second boot: resume from the image)"
			mkdir -p "$dir/resume"
			ln -sfn ../nvme.img "$dir/resume/nvme.img"
			ln -sfn ../vblk.img "$dir/resume/vblk.img"
			ok=1
			VM_KEEP_DISKS=1 VM_TIMEOUT=$timeout viommu_vm_run "$dir/resume" "$kernel" "$initrd" \
				"${append/viommu_role=hibernate/viommu_role=resume}" -- "${PM_QEMU_ARGS[@]}" || ok=0
			_pm_results "$kver" "$b" "$dir/resume" $ok
		fi
		rm -f "$dir/nvme.img" "$dir/vblk.img"
		;;
	esac
	echo "TIME $kver $b boot(s) took $((SECONDS - t0)) s wall clock ($MOD driver)"
}

# _pm_hibernated KVER DIR OK: judge the first hibernation boot; sets
# PM_IMAGE when the guest wrote its image and powered off.
_pm_hibernated() {
	local kver=$1 dir=$2 ok=$3 d
	PM_IMAGE=""
	viommu_vm_results "$dir" | sed "s|^\([A-Z]*\) |\1 $kver hibernate/|"
	sed -n "s|^FIGURE \([^ ]*\) |FIGURE $kver hibernate/\1 |p" "$dir/results.log"
	d="QEMU $VM_STATUS, ${VM_SHUTDOWN_S:-?}s from 'echo disk' to QEMU's exit; console: $(tr -d '\r' <"$dir/console.log" |
		grep -E 'Image size after compression|Wrote [0-9]+ kbytes|Image saving done|reboot: Power down' |
		sed 's/^\[ *[0-9.]*\] //' | tr '\n' '|')"
	if [ "$ok" = 1 ] && [ -n "$VM_SHUTDOWN_S" ] && grep -q '^SHUTDOWN hibernate' "$dir/results.log" &&
		tr -d '\r' <"$dir/console.log" | grep -q 'Image saving done'; then
		PM_IMAGE=1
		if [ "$MOD" = intree ]; then
			echo "FIGURE $kver hibernate/image-written in-tree driver: $d"
		else
			echo "PASS $kver hibernate/image-written $d"
		fi
	elif [ "$MOD" = intree ]; then
		echo "FIGURE $kver hibernate/image-written in-tree driver: no image written: $VM_ATTEMPTS; last guest line: '$(_pm_last_guest "$dir")'; console: $(_pm_console "$dir")"
	else
		echo "FAIL $kver hibernate/image-written $VM_ATTEMPTS; $d; $(_pm_console "$dir")"
	fi
}
