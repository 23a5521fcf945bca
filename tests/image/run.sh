#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The install-path test: a Debian 12 system whose root file system sits on an
# NVMe disk behind a virtio-iommu, with our .deb installed the way a user does
# it, booted for real under QEMU (TCG). See docs/INSTALL-TEST.md.
#
#   bash tests/image/run.sh
#
# Scenarios (each boot is a full systemd boot of the image's own kernel and
# initramfs; a unit inside the guest runs the checks and powers off):
#   stock      no package, virtio-iommu present: must stop in the initramfs
#   control    the same stock image without virtio-iommu: must boot
#   install    apt-get install ./virtio-iommu-fq-dkms_<V>.deb, reboot: ours bound
#   upgrade    install <V>.1 over it, reboot: the new one bound, nothing old left
#   purge      apt-get purge, reboot: in-tree driver bound, nothing of ours left
#   noheaders  headers removed, then install: configures, says why, boots in-tree
# Prints "SUITE image: N passed, N failed, N skipped"; exits 1 on any failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source=SCRIPTDIR/../../scripts/common.sh
. "$top/scripts/common.sh"
# shellcheck source=SCRIPTDIR/lib.sh
. "$here/lib.sh"

PKG=virtio-iommu-fq-dkms
KNOB=flush_timeout_ms=7
BOOT_TIMEOUT=${VIOMMU_IMAGE_BOOT_TIMEOUT:-600}
# The in-tree driver's poweroff is measured, never judged: it is given this
# many seconds after the test's last line, then QEMU is ended.
INTREE_OFF_CAP=${VIOMMU_INTREE_OFF_CAP:-120}
WORK=$IMG_CACHE/work
NPASS=0 NFAIL=0 NSKIP=0
T0=$SECONDS
declare -A BOOT_SECS=()

result() { # name PASS|FAIL|SKIP evidence
	local name=$1 r=$2
	shift 2
	case $r in
	PASS) NPASS=$((NPASS + 1)); printf 'ok   %s: %s\n' "$name" "$*" ;;
	SKIP) NSKIP=$((NSKIP + 1)); printf 'SKIP %s: %s\n' "$name" "$*" ;;
	*) NFAIL=$((NFAIL + 1)); printf 'FAIL %s: %s\n' "$name" "$*" ;;
	esac
	printf '%s %s %s\n' "$r" "$name" "$*" >>"$WORK/results.txt"
}

figure() { # name evidence: a measurement of a peer, neither passed nor failed
	local name=$1
	shift
	printf 'fig  %s: %s\n' "$name" "$*"
	printf 'FIGURE %s %s\n' "$name" "$*" >>"$WORK/results.txt"
}

summary() {
	local wall=$((SECONDS - T0)) k
	echo "--- image suite timings"
	for k in "${!BOOT_SECS[@]}"; do
		echo "boot-time $k: ${BOOT_SECS[$k]}"
	done | sort
	echo "wall time: ${wall}s"
	echo "SUITE image: $NPASS passed, $NFAIL failed, $NSKIP skipped"
}

skip_all() {
	echo "image suite skipped: $*"
	NSKIP=1
	echo "SUITE image: 0 passed, 0 failed, 1 skipped"
	exit 0
}

# --- can this machine run it at all? -----------------------------------------
[ "$(id -u)" = 0 ] || skip_all "needs root (debootstrap, loop mounts, chroot)"
[ "$(uname -m)" = x86_64 ] || skip_all "needs an x86-64 host (found $(uname -m))"
if ! losetup -f >/dev/null 2>&1; then
	modprobe loop 2>/dev/null || true
	losetup -f >/dev/null 2>&1 || skip_all "no free loop device (loop devices unavailable here)"
fi

kver=$(bash "$top/scripts/host-deps.sh")
[ -n "$kver" ] || die "no Debian 12 6.12 kernel found"
mkdir -p "$IMG_CACHE"
exec 7>"$IMG_CACHE/run.lock"
flock -n 7 || die "another tests/image/run.sh is running (lock $IMG_CACHE/run.lock)"
rm -rf "$WORK"
mkdir -p "$WORK"
: >"$WORK/results.txt"
trap 'img_umount_all' EXIT
log "image suite: kernel $kver, work dir $WORK"

base=$(bash "$here/build-base.sh" "$kver")
result base-image PASS "$(basename "$base") kernel=$kver built/reused in $((SECONDS - T0))s"

# --- packages under test ------------------------------------------------------
# build_deb VERSION: build the .deb from a scratch copy of the tree whose
# VERSION file says VERSION (the clone itself is never written to). Prints
# the .deb's path.
build_deb() {
	local ver=$1 dir=$IMG_CACHE/debsrc/$1 deb
	rm -rf "$dir"
	mkdir -p "$dir/tree"
	if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
		(cd "$top" && git ls-files -z --cached --others --exclude-standard) |
			rsync -a --from0 --files-from=- "$top/" "$dir/tree/"
	else
		rsync -a --exclude=.git "$top/" "$dir/tree/"
	fi
	echo "$ver" >"$dir/tree/VERSION"
	# The packaging's own builder (lintian is the packaging suite's job);
	# else the Makefile's deb target.
	if [ -x "$dir/tree/packaging/build-deb.sh" ]; then
		bash "$dir/tree/packaging/build-deb.sh" --no-lintian "$dir/tree" "$dir/out" >"$dir/build.log" 2>&1
	else
		make -C "$dir/tree" deb >"$dir/build.log" 2>&1
	fi || {
		tail -n 15 "$dir/build.log" >&2
		return 1
	}
	deb=$(find "$dir" -name "${PKG}_${ver}_all.deb" -newer "$dir/tree/VERSION" | head -n1)
	[ -n "$deb" ] || { echo "make deb made no ${PKG}_${ver}_all.deb" >&2; return 1; }
	echo "$deb"
}

v1=$(cat "$top/VERSION")
v2=$v1.1
deb1="" deb2=""
if deb1=$(build_deb "$v1"); then
	result deb-build PASS "$(basename "$deb1") from a scratch copy of the tree (packaging/build-deb.sh, else make deb)"
else
	result deb-build FAIL "make deb failed for $v1 (log $IMG_CACHE/debsrc/$v1/build.log)"
	deb1=""
fi
if [ -n "$deb1" ] && deb2=$(build_deb "$v2"); then
	result deb-build-upgrade PASS "$(basename "$deb2") from a scratch copy with VERSION=$v2"
else
	[ -z "$deb1" ] || result deb-build-upgrade FAIL "make deb failed for $v2 (log $IMG_CACHE/debsrc/$v2/build.log)"
	deb2=""
fi

# --- helpers for scenarios --------------------------------------------------------
new_image() { # name -> path of a fresh copy of the base image
	local img=$WORK/$1.img
	cp --sparse=always --reflink=auto "$base" "$img"
	echo "$img"
}

# prepare_guest MNT DRIVER VERSION KNOB [ACTION]: install the test unit and
# its config.
prepare_guest() {
	local mnt=$1
	install -m 755 "$here/guest/viommu-image-test" "$mnt/usr/local/sbin/viommu-image-test"
	install -m 644 "$here/guest/viommu-image-test.service" "$mnt/etc/systemd/system/"
	ln -sf ../viommu-image-test.service \
		"$mnt/etc/systemd/system/multi-user.target.wants/viommu-image-test.service"
	# Units that only cost boot/shutdown time under TCG and have nothing to
	# do with the IOMMU (docs/INSTALL-TEST.md): masked.
	local u
	for u in getty-static.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount \
		systemd-update-utmp.service systemd-update-utmp-runlevel.service \
		systemd-user-sessions.service; do
		ln -sfn /dev/null "$mnt/etc/systemd/system/$u"
	done
	local fio=32M
	[ "$2" != none ] || fio=0
	printf 'EXPECT_DRIVER=%s\nEXPECT_VERSION=%s\nEXPECT_KNOB=%s\nACTION=%s\nFIO_SIZE=%s\n' \
		"$2" "$3" "$4" "${5:-}" "$fio" >"$mnt/etc/viommu-image-test.conf"
}

# initrd_modules MNT: the virtio-iommu.ko paths inside the image's initramfs.
initrd_viommu() {
	in_chroot "$1" lsinitramfs "/boot/initrd.img-$kver" | grep '/virtio-iommu\.ko' | tr '\n' ' ' || true
}

# initrd_version MNT: MODULE_VERSION of the virtio-iommu.ko inside the initramfs.
initrd_version() {
	local d=$WORK/unmk
	rm -rf "$d"
	in_chroot "$1" unmkinitramfs "/boot/initrd.img-$kver" /tmp/unmk >/dev/null 2>&1 || true
	find "$1/tmp/unmk" -name 'virtio-iommu.ko*' -exec modinfo -F version {} \; 2>/dev/null | head -n1 || true
	rm -rf "$1/tmp/unmk"
}

# dkms_name MNT: PACKAGE_NAME from the installed dkms.conf.
dkms_name() {
	sed -n 's/^PACKAGE_NAME="\{0,1\}\([^"]*\)"\{0,1\}/\1/p' "$1"/usr/src/*/dkms.conf 2>/dev/null |
		grep -v '^$' | head -n1 || true
}

# boot_and_check NAME IMG DRIVER VERSION KNOB IOMMU [ACTION]: boot, then turn
# the guest's RESULT lines (and the host's timing) into results NAME/<check>.
boot_and_check() {
	local name=$1 img=$2 drv=$3 ver=$4 knob=$5 iommu=$6 action=${7:-} mnt=$WORK/mnt-$1
	local data=$WORK/$name-data.img checks c line t_start t_reach t_done t_end rc
	img_mount "$img" "$mnt"
	prepare_guest "$mnt" "$drv" "$ver" "$knob" "$action"
	img_extract_boot "$mnt" "$kver" "$WORK/boot-$name"
	img_umount "$mnt"
	rm -f "$data"
	truncate -s 256M "$data"
	local cap=""
	[ "$drv" != intree ] || cap=$INTREE_OFF_CAP
	boot_image "$name" "$img" "$data" "$WORK/boot-$name" "$iommu" "$BOOT_TIMEOUT" "" "$cap"
	rm -f "$data"
	t_start=$(times_get "$name" start)
	t_end=$(times_get "$name" end)
	rc=$(times_get "$name" rc)
	t_reach=$(console_first "$name" '^RESULT reached ')
	t_done=$(console_first "$name" '^RESULT-DONE')
	case $drv in
	ours) checks="reached driver-ours root-dma-fq fio-verify modprobe-knob" ;;
	intree) checks="reached driver-intree root-behind-iommu fio-verify" ;;
	none) checks="reached driver-none root-no-iommu" ;;
	esac
	[ "$action" != try-purge ] || checks+=" purge-refused"
	for c in $checks; do
		line=$(console_text "$name" | grep -m1 "^RESULT $c " || true)
		case $line in
		"RESULT $c PASS "*) result "$name/$c" PASS "${line#RESULT "$c" PASS }" ;;
		"RESULT $c FAIL "*) result "$name/$c" FAIL "${line#RESULT "$c" FAIL }" ;;
		*) result "$name/$c" FAIL "no result on the console (qemu rc=$rc; see $WORK/$name.console)" ;;
		esac
	done
	if [ -n "$t_reach" ]; then
		BOOT_SECS[$name]="$(fdiff "$t_start" "$t_reach")s from QEMU start to the test unit"
	else
		BOOT_SECS[$name]="did not reach the test unit"
		console_text "$name" | tail -n 25 | sed "s/^/  $name console: /"
	fi
	if [ "$drv" = intree ]; then
		# The in-tree driver is not ours to judge: with its root NVMe
		# behind virtio-iommu, a Debian 12 guest has been measured to
		# spend ~60 s in device shutdown after "Powering off." (NVMe admin
		# timeout), and sometimes to hang for good (RCU grace period
		# blocked under nvme_dev_disable); see docs/INSTALL-TEST.md. The
		# figure is recorded; the wait is capped by boot_image.
		local off
		if [ -z "$t_done" ]; then
			figure "$name/poweroff" "in-tree driver: the test never finished (qemu rc=$rc)"
		elif [ -e "$WORK/$name.capped" ]; then
			figure "$name/poweroff" "in-tree driver: did not power off within ${INTREE_OFF_CAP}s after the test's last line (QEMU ended by the test)"
		else
			off=$(fdiff "$t_done" "$t_end")
			figure "$name/poweroff" "in-tree driver: QEMU exited (rc $rc) ${off}s after the test's last line"
		fi
	elif [ -n "$t_done" ]; then
		local off
		off=$(fdiff "$t_done" "$t_end")
		if [ "$rc" = 0 ] && awk -v s="$off" 'BEGIN{exit !(s <= 10)}'; then
			result "$name/poweroff" PASS "QEMU exited (rc 0) ${off}s after the test's last line"
		else
			result "$name/poweroff" FAIL "QEMU rc=$rc ${off}s after the test's last line (limit 10s)"
		fi
	else
		result "$name/poweroff" FAIL "test never finished (qemu rc=$rc)"
	fi
}

# apt_in MNT LOG ARGS...: apt-get ARGS inside the image, under the heavy lock.
apt_in() {
	local mnt=$1 alog=$2
	shift 2
	set +e
	in_chroot_heavy "$mnt" apt-get -y --no-install-recommends "$@" >"$alog" 2>&1
	local rc=$?
	set -e
	return $rc
}

pkg_status() { # MNT -> "status version"
	# shellcheck disable=SC2016
	in_chroot "$1" dpkg-query -W -f='${Status} ${Version}' "$PKG" 2>/dev/null || echo "not-installed"
}

# host_module_checks NAME MNT VERSION: DKMS built VERSION for the image's
# kernel only, that copy is what modinfo/modprobe resolve, and the
# initramfs carries it.
host_module_checks() {
	local name=$1 mnt=$2 ver=$3 dname st f iv hostk
	dname=$(dkms_name "$mnt")
	st=$(in_chroot "$mnt" dkms status 2>/dev/null | grep -F "$dname/" | tr '\n' ';' || true)
	hostk=$(uname -r)
	f=$(in_chroot "$mnt" modinfo -k "$kver" -n virtio_iommu 2>&1 || true)
	if [[ $st == *"$dname/$ver, $kver, x86_64: installed"* ]] && [[ $st != *"$hostk"* ]] &&
		{ [ ! -e "$mnt/lib/modules/$hostk" ] || [ "$hostk" = "$kver" ]; }; then
		result "$name/dkms-image-kernel" PASS "dkms status: $st (host kernel $hostk untouched)"
	else
		result "$name/dkms-image-kernel" FAIL "dkms status: $st; host kernel $hostk"
	fi
	iv=$(in_chroot "$mnt" modinfo -k "$kver" -F version virtio_iommu 2>&1 || true)
	if [[ $f == /lib/modules/$kver/updates/dkms/virtio-iommu.ko* ]] && [ "$iv" = "$ver" ]; then
		result "$name/modinfo" PASS "modinfo -k $kver -n virtio_iommu = $f, version $iv"
	else
		result "$name/modinfo" FAIL "modinfo -n = $f, version $iv (want updates/dkms, $ver)"
	fi
	local inmods inver inconf
	inmods=$(initrd_viommu "$mnt")
	inver=$(initrd_version "$mnt")
	inconf=$(in_chroot "$mnt" lsinitramfs "/boot/initrd.img-$kver" | grep -c 'etc/modprobe.d/viommu-image-test.conf' || true)
	if [[ $inmods == *updates/dkms/virtio-iommu.ko* ]] && [ "$inver" = "$ver" ] && [ "$inconf" -ge 1 ]; then
		result "$name/initramfs" PASS "lsinitramfs: $inmods(version $inver; modprobe.d conf included)"
	else
		result "$name/initramfs" FAIL "lsinitramfs: '$inmods' version '$inver' conf=$inconf (want updates/dkms, $ver)"
	fi
}

# =============================================================================
# stock: no package, root NVMe behind virtio-iommu -> must stop in the initramfs
img=$(new_image stock)
mnt=$WORK/mnt-stock
img_mount "$img" "$mnt"
prepare_guest "$mnt" none "" ""
img_extract_boot "$mnt" "$kver" "$WORK/boot-stock"
img_umount "$mnt"
boot_image stock "$img" "" "$WORK/boot-stock" 1 300 "rootdelay=10"
alert=$(console_text stock | grep -E 'does not exist|Gave up waiting for root' | head -n2 | tr -s ' ' | tr '\n' ' ' || true)
if [ -n "$alert" ] && ! console_text stock | grep -q '^RESULT reached'; then
	t=$(fdiff "$(times_get stock start)" "$(console_first stock 'does not exist|Gave up waiting')")
	result stock/stops-in-initramfs PASS "after ${t}s: $alert"
else
	result stock/stops-in-initramfs FAIL "no 'does not exist' on the console (see $WORK/stock.console)"
	console_text stock | tail -n 15 | sed 's/^/  stock console: /'
fi

# control: the same stock image without the virtio-iommu boots fine
boot_and_check control "$img" none "" "" 0
rm -f "$img"

# =============================================================================
# install / upgrade / purge, all in one image
if [ -z "$deb1" ]; then
	result install SKIP "no package was built (see deb-build above)"
else
	img=$(new_image main)
	mnt=$WORK/mnt-main
	img_mount "$img" "$mnt"
	echo "options virtio_iommu ${KNOB%%=*}=${KNOB#*=}" >"$mnt/etc/modprobe.d/viommu-image-test.conf"
	cp "$deb1" "$mnt/root/"
	tstart=$SECONDS
	if apt_in "$mnt" "$WORK/install-apt.log" install "./root/$(basename "$deb1")"; then
		st=$(pkg_status "$mnt")
		result install/apt-get PASS "apt-get install ./$(basename "$deb1"): $st in $((SECONDS - tstart))s"
	else
		result install/apt-get FAIL "apt-get install failed: $(tail -n 3 "$WORK/install-apt.log" | tr '\n' ' ')"
	fi
	host_module_checks install "$mnt" "$v1"
	img_umount "$mnt"
	boot_and_check install "$img" ours "$v1" "$KNOB" 1

	# ---- upgrade
	if [ -n "$deb2" ]; then
		img_mount "$img" "$mnt"
		dname=$(dkms_name "$mnt")
		cp "$deb2" "$mnt/root/"
		tstart=$SECONDS
		if apt_in "$mnt" "$WORK/upgrade-apt.log" install "./root/$(basename "$deb2")"; then
			result upgrade/apt-get PASS "apt-get install ./$(basename "$deb2"): $(pkg_status "$mnt") in $((SECONDS - tstart))s"
		else
			result upgrade/apt-get FAIL "apt-get install failed: $(tail -n 3 "$WORK/upgrade-apt.log" | tr '\n' ' ')"
		fi
		host_module_checks upgrade "$mnt" "$v2"
		# Leave apt's package cache valid for the dpkg status as it is now,
		# as on any system where apt ran last: the guest's own apt-get purge
		# below then needn't rebuild it under TCG.
		in_chroot "$mnt" apt-cache stats >/dev/null 2>&1 || true
		old=$( (
			ls -d "$mnt/var/lib/dkms/$dname/$v1" "$mnt/usr/src/$dname-$v1" 2>/dev/null
			# shellcheck disable=SC2016
			find "$mnt/lib/modules" "$mnt/var/lib/dkms" -name 'virtio-iommu.ko*' -print0 2>/dev/null |
				xargs -0 -r -n1 sh -c 'v=$(modinfo -F version "$1"); [ "$v" != "$0" ] || echo "$1"' "$v1"
		) | sed "s|^$mnt||" | tr '\n' ' ' || true)
		left=$(find "$mnt/var/lib/dkms/$dname" -maxdepth 1 -mindepth 1 -printf '%f ' 2>/dev/null || true)
		if [ -z "$old" ]; then
			result upgrade/old-version-gone PASS "no $v1 under /var/lib/dkms, /usr/src, /lib/modules; /var/lib/dkms/$dname holds: $left"
		else
			result upgrade/old-version-gone FAIL "left over from $v1: $old"
		fi
		img_umount "$mnt"
		# The guest also tries "apt-get purge" on itself: with its root
		# behind the virtio-iommu the package must refuse (prerm guard).
		boot_and_check upgrade "$img" ours "$v2" "$KNOB" 1 try-purge
	else
		result upgrade SKIP "no upgrade package was built (see deb-build-upgrade above)"
	fi

	# ---- purge
	img_mount "$img" "$mnt"
	dname=$(dkms_name "$mnt")
	files=$(in_chroot "$mnt" dpkg -L "$PKG" 2>/dev/null || true)
	# What the refusal message (and the package's README.Debian) tells the
	# administrator to do first: keep the in-tree driver in every initramfs
	# through initramfs-tools' own configuration.
	echo virtio_iommu >>"$mnt/etc/initramfs-tools/modules"
	tstart=$SECONDS
	if apt_in "$mnt" "$WORK/purge-apt.log" purge "$PKG"; then
		result purge/apt-get PASS "apt-get purge $PKG in $((SECONDS - tstart))s; now: $(pkg_status "$mnt")"
	else
		result purge/apt-get FAIL "apt-get purge failed: $(tail -n 3 "$WORK/purge-apt.log" | tr '\n' ' ')"
	fi
	left=""
	while IFS= read -r f; do
		[ -n "$f" ] && [ ! -d "$mnt$f" ] && { [ -e "$mnt$f" ] || [ -L "$mnt$f" ]; } && left+="$f "
	done <<<"$files"
	# shellcheck disable=SC2012
	[ -z "$dname" ] || left+=$(ls -d "$mnt/var/lib/dkms/$dname" "$mnt/usr/src/$dname"-* 2>/dev/null | sed "s|^$mnt||" | tr '\n' ' ' || true)
	left+=$(find "$mnt/lib/modules" -path '*/updates/*' -name 'virtio-iommu.ko*' 2>/dev/null | sed "s|^$mnt||" | tr '\n' ' ' || true)
	case $(pkg_status "$mnt") in
	not-installed | *" not-installed"*) ;;
	*) left+="dpkg:$(pkg_status "$mnt") " ;;
	esac
	nfiles=$(grep -c . <<<"$files" || true)
	if [ -z "$left" ] && [ "$nfiles" -gt 0 ]; then
		result purge/nothing-left PASS "none of the package's $nfiles paths, no /var/lib/dkms/$dname, no /usr/src/$dname-*, no updates/ module; dpkg: not-installed"
	else
		result purge/nothing-left FAIL "left: ${left:-(package file list was empty)}"
	fi
	f=$(in_chroot "$mnt" modinfo -k "$kver" -n virtio_iommu 2>&1 || true)
	inmods=$(initrd_viommu "$mnt")
	if [[ $f == /lib/modules/$kver/kernel/drivers/iommu/virtio-iommu.ko* ]] &&
		[[ $inmods == *kernel/drivers/iommu/virtio-iommu.ko* ]]; then
		result purge/in-tree-restored PASS "modinfo -n = $f; lsinitramfs: $inmods"
	else
		result purge/in-tree-restored FAIL "modinfo -n = $f; lsinitramfs: '${inmods}' (a root behind virtio-iommu needs it in the initramfs)"
	fi
	img_umount "$mnt"
	boot_and_check purge "$img" intree "" "" 1
	rm -f "$img"
fi

# =============================================================================
# noheaders: DKMS cannot build; the package must still configure and the
# system must still boot on the in-tree driver.
if [ -z "$deb1" ]; then
	result noheaders SKIP "no package was built (see deb-build above)"
else
	img=$(new_image noheaders)
	mnt=$WORK/mnt-noheaders
	img_mount "$img" "$mnt"
	# Removing headers builds nothing: no heavy lock needed.
	in_chroot "$mnt" apt-get -y purge "linux-headers-$kver" >"$WORK/noheaders-remove.log" 2>&1 ||
		die "could not remove linux-headers-$kver from the image"
	cp "$deb1" "$mnt/root/"
	if apt_in "$mnt" "$WORK/noheaders-apt.log" install "./root/$(basename "$deb1")"; then
		result noheaders/apt-get PASS "apt-get install without headers: $(pkg_status "$mnt")"
	else
		result noheaders/apt-get FAIL "apt-get install failed without headers: $(tail -n 3 "$WORK/noheaders-apt.log" | tr '\n' ' ')"
	fi
	why=$(grep -iE -A1 'skipped|headers .*not|not built' "$WORK/noheaders-apt.log" | head -n2 | tr '\n' ' ' || true)
	if [ -n "$why" ]; then
		result noheaders/says-why PASS "$why"
	else
		result noheaders/says-why FAIL "apt output never mentions the missing headers (see $WORK/noheaders-apt.log)"
	fi
	f=$(in_chroot "$mnt" modinfo -k "$kver" -n virtio_iommu 2>&1 || true)
	inmods=$(initrd_viommu "$mnt")
	if [[ $f == */kernel/drivers/iommu/virtio-iommu.ko* ]] && [[ $inmods == *kernel/drivers/iommu/virtio-iommu.ko* ]]; then
		result noheaders/in-tree-in-initramfs PASS "modinfo -n = $f; lsinitramfs: $inmods"
	else
		result noheaders/in-tree-in-initramfs FAIL "modinfo -n = $f; lsinitramfs: '${inmods}'"
	fi
	img_umount "$mnt"
	boot_and_check noheaders "$img" intree "" "" 1
	rm -f "$img"
fi

summary | tee "$WORK/summary.txt"
[ "$NFAIL" = 0 ]
