#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Install suite: the packages, built from this tree and installed as an
# administrator would, in a Debian 12 chroot rather than on this host.
#
#   tests/install/run.sh [--arch amd64|arm64] [--no-e2e]
#
#  1. builds the .deb (lintian must be clean) and checks its file list,
#     dkms.conf version and maintainer scripts; amd64 only: the .rpm
#     (rpmlint), its file list and scriptlets, and its payload in a scratch
#     rpm database (payload only: its scriptlets need a Fedora userland);
#  2. amd64 only: unit checks: packaging/dkms/kernel-check.sh against real
#     and edited kernel configurations (this host's 6.12 headers, a declared
#     dependency), the removal guard against a constructed sysfs and on this
#     host (read only);
#  3. in a fresh overlay of a Debian 12 root of ARCH (tests/install/chroot.sh;
#     amd64: the image suite's base disk, tests/image/build-base.sh, read
#     only, one debootstrap for both suites; arm64: a cached debootstrapped
#     root) holding dkms, initramfs-tools, linux-image and linux-headers of
#     Debian 12's newest 6.12 kernel and the headers of its newest 6.1
#     kernel (amd64: unsupported; arm64: supported, src/core61.c): a Secure
#     Boot key pair in the root's /var/lib/dkms; amd64: the rpm's DKMS
#     scriptlets; `apt-get install ./deb` with only the 6.1 headers visible
#     (amd64: skipped with the reason; arm64: built), then with all;
#     modinfo / modprobe -S / lsinitramfs resolve to the DKMS build, signed
#     with that key, with the kernel's vermagic; DKMS's kernel hooks skip
#     the 6.1 kernel with the reason (amd64) or rebuild for it (arm64) and
#     rebuild for 6.12; the DKMS-built .ko boots in the end-to-end guest of
#     ARCH (tests/lib, tests/e2e/guest.sh; --no-e2e skips that); then
#     `apt-get purge` removes every file and the in-tree module resolves
#     again.
#
# --arch arm64 runs step 1's .deb part and step 3 in an arm64 root under
# qemu-user (binfmt_misc, qemu-user-static), against Debian's arm64 kernels;
# it prints `SUITE install-arm64: ...`. The rpm and the unit checks do not
# depend on the architecture and are left to the amd64 run. The arm64 root's
# initramfs-tools uses MODULES=list, not Debian's default "most" (too slow
# under qemu-user: see tests/install/chroot.sh), so there the initramfs
# checks see only what the package's hook puts in.
#
# The root stands for a machine running Debian 12's 6.1 kernel with 6.12
# installed next to it (a Debian 12 machine on its way to 6.12): its `uname -r`
# says the 6.1 release, not this host's, so the package's postinst takes the
# path it takes on such a machine (the running kernel and the newest), not
# the one for a chroot whose running kernel it does not know.
#
# This host gets no package and no DKMS state (its /var/lib/dkms is never
# touched); the root's mounts are undone and its copy removed at the end,
# also on failure or interruption (and, after a hard kill, at the start of
# the next run). Prints "PASS|FAIL|SKIP <suite>/<check> <detail>" lines and
# `SUITE <suite>: N passed, N failed, N skipped` (suite install or
# install-arm64); exits non-zero on failure.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/common.sh
. "$TOP/scripts/common.sh"
# shellcheck source=tests/install/chroot.sh
. "$TOP/tests/install/chroot.sh"

E2E=1
ARCH=amd64
while [ $# -gt 0 ]; do
	case $1 in
	--no-e2e) E2E=0 ;;
	--arch) ARCH=${2:-}; shift ;;
	--arch=*) ARCH=${1#--arch=} ;;
	-h | --help) sed -n '3,50p' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done
case $ARCH in
amd64) S=install DKMS_ARCH=x86_64 ELF_MACHINE="Advanced Micro Devices X86-64" E2E_GUEST=bookworm ;;
arm64) S=install-arm64 DKMS_ARCH=aarch64 ELF_MACHINE=AArch64 E2E_GUEST=bookworm-arm64 ;;
*) die "unknown architecture '$ARCH' (amd64 or arm64)" ;;
esac
[ "$(id -u)" = 0 ] || die "the install suite needs root (debootstrap, chroot, mounts)"

PKG=virtio-iommu-fq-dkms
MODNAME=virtio-iommu-fq
STATE=$VIOMMU_CACHE/install-test/$ARCH
WORK=$STATE/work
OUT=$STATE/out
CROOT=$VIOMMU_CACHE/install-chroot/$ARCH
RUN=$CROOT/run
VERSION=$(tr -d '[:space:]' <"$TOP/VERSION")
export DEBIAN_FRONTEND=noninteractive
# Other package operations may hold the dpkg lock for a while: wait for it.
APT=(apt-get -o DPkg::Lock::Timeout=900)

pass=0 fail=0 skip=0
t_start=$(date +%s)
PASS() { echo "PASS $S/$1 ${*:2}"; pass=$((pass + 1)); }
FAIL() { echo "FAIL $S/$1 ${*:2}"; fail=$((fail + 1)); }
SKIP() { echo "SKIP $S/$1 ${*:2}"; skip=$((skip + 1)); }
# check NAME DETAIL CMD...: PASS if CMD succeeds, else FAIL.
check() {
	local name=$1 detail=$2
	shift 2
	if "$@"; then PASS "$name" "$detail"; else FAIL "$name" "$detail"; fi
}
# The suite's own output, also from inside $(...).
exec 3>&1
timed() { # NAME CMD...: run CMD, print a TIME line, keep its status
	local name=$1 t0 rc=0
	shift
	t0=$(date +%s)
	"$@" || rc=$?
	echo "TIME $S/$name $(($(date +%s) - t0)) s" >&3
	return $rc
}
summary() {
	echo "TIME $S/suite $(($(date +%s) - t_start)) s"
	echo "SUITE $S: $pass passed, $fail failed, $skip skipped"
}
# ko_unpack SRC DEST: the module file SRC (as DKMS installed it: plain, .xz,
# .zst or .gz) uncompressed at DEST; an empty DEST if SRC cannot be read.
ko_unpack() {
	case $1 in
	*.xz) xz -dc "$1" >"$2" ;;
	*.zst) zstd -qdc "$1" >"$2" ;;
	*.gz) gzip -dc "$1" >"$2" ;;
	*) cp "$1" "$2" 2>/dev/null || : >"$2" ;;
	esac
}
# Package state inside the root.
# shellcheck disable=SC2016 # a dpkg-query format
pkg_state() { inch dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | tr -d ' ' || true; }

# --- the root: set up, and always taken down --------------------------------

# One run per architecture at a time (the base, the overlay, $STATE).
mkdir -p "$CROOT" "$STATE"
exec 9>"$CROOT/.lock"
flock -n 9 || die "another install run for $ARCH holds $CROOT/.lock"

# Unmounts everything under $CROOT (the overlay, /proc, /sys, /dev, /run in
# it; a base being built), removes the run's copy, undoes the binfmt_misc
# set-up of a foreign architecture.
teardown() {
	local rc=0
	ichroot_umount_under "$CROOT" || rc=1
	if [ $rc = 0 ]; then rm -rf "$RUN" || rc=1; fi
	ichroot_binfmt_restore || rc=1
	return $rc
}
on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	teardown || { echo "FAIL $S/chroot-cleanup mounts under $CROOT could not all be undone"; rc=1; }
	exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT TERM
# What a killed run left.
teardown || die "could not undo the mounts a previous run left under $CROOT"

log "host dependencies"
KVER=$(bash "$TOP/scripts/host-deps.sh" | tail -n1)
[ -n "$KVER" ] || die "scripts/host-deps.sh printed no kernel version"
[ -e "/usr/src/linux-headers-$KVER/.config" ] || die "linux-headers-$KVER is not installed"
# This host's DKMS tree, to show it unchanged at the end.
host_dkms() { find /var/lib/dkms -printf '%p %y %s %T@\n' 2>/dev/null | sort | sha256sum | cut -d' ' -f1; }
host_dkms_before=$(host_dkms)
host_pkg() { dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$PKG" 2>/dev/null || true; }
host_pkg_before=$(host_pkg)
rm -rf "$WORK" "$OUT"
mkdir -p "$WORK" "$OUT"

# ---- 1. packages ---------------------------------------------------------

log "building the .deb"
deb=""
if deb=$(timed build-deb bash "$TOP/packaging/build-deb.sh" "$TOP" "$OUT" 2>"$WORK/build-deb.err" | tail -n1) &&
	[ -f "$deb" ]; then
	PASS build-deb "$(basename "$deb") built; lintian --pedantic: $(grep -cE '^[EWIPX]: ' "$OUT/lintian-deb.txt" || true) tags (overrides in packaging/deb, each justified)"
else
	FAIL build-deb "$(tail -n 20 "$WORK/build-deb.err" | tr '\n' '|')"
	deb=""
fi
grep -E '^[EWIPXO]: ' "$OUT/lintian-deb.txt" 2>/dev/null | sed 's/^/  lintian: /' || true

if [ -n "$deb" ]; then
	check deb-name "$(basename "$deb") is ${PKG}_${VERSION}_all.deb" \
		test "$(basename "$deb")" = "${PKG}_${VERSION}_all.deb"
	dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$WORK/deb-files.txt"
	echo "  deb file list:"
	sed 's/^/    /' "$WORK/deb-files.txt"
	src=/usr/src/$MODNAME-$VERSION
	want=("$src/dkms.conf" "$src/VERSION" "$src/src/Kbuild" "$src/packaging/dkms/kernel-check.sh"
		"/usr/share/initramfs-tools/hooks/$PKG" "/usr/share/doc/$PKG/copyright"
		/usr/sbin/viommu-fq /usr/share/man/man8/viommu-fq.8.gz)
	for f in "$TOP"/src/*.c "$TOP"/src/*.h "$TOP"/src/*.sh; do
		case $f in *.mod.c | */\*.*) continue ;; esac
		want+=("$src/src/${f##*/}")
	done
	missing=()
	for f in "${want[@]}"; do grep -qxF "$f" "$WORK/deb-files.txt" || missing+=("$f"); done
	check deb-files "${#want[@]} expected files present${missing[*]:+; missing: ${missing[*]}}" \
		test ${#missing[@]} -eq 0
	extra=$(grep -E '\.(o|ko|mod|mod\.c|cmd)$|/modules\.order$|/Module\.symvers$' "$WORK/deb-files.txt" || true)
	check deb-no-build-products "no .o/.ko/.mod.c/.cmd in the package${extra:+: $extra}" test -z "$extra"
	rm -rf "$WORK/deb-x" && dpkg-deb -R "$deb" "$WORK/deb-x"
	conf=$WORK/deb-x$src/dkms.conf
	check deb-dkms-version "dkms.conf: $(grep '^PACKAGE_VERSION=' "$conf")" \
		grep -qx "PACKAGE_VERSION=\"$VERSION\"" "$conf"
	check deb-dkms-conf "BUILT_MODULE_NAME virtio-iommu, DEST_MODULE_LOCATION /updates/dkms, AUTOINSTALL yes, BUILD_EXCLUSIVE_CONFIG, no REMAKE_INITRD" \
		bash -c "grep -qx 'BUILT_MODULE_NAME\[0\]=\"virtio-iommu\"' '$conf' &&
			grep -qx 'DEST_MODULE_LOCATION\[0\]=\"/updates/dkms\"' '$conf' &&
			grep -qx 'AUTOINSTALL=\"yes\"' '$conf' && grep -q '^BUILD_EXCLUSIVE_CONFIG=' '$conf' &&
			! grep -q '^[^#]*REMAKE_INITRD' '$conf'"
	check deb-trigger "triggers: $(grep -v '^#' "$WORK/deb-x/DEBIAN/triggers" | tr '\n' ' ')" \
		grep -qx 'activate-noawait update-initramfs' "$WORK/deb-x/DEBIAN/triggers"
	check deb-prerm-guard "prerm runs the boot guard on remove, then dh-dkms's dkms remove" \
		bash -c "grep -q 'viommu_fq_removal_guard' '$WORK/deb-x/DEBIAN/prerm' &&
			grep -q 'dkms remove -m \$DKMS_NAME' '$WORK/deb-x/DEBIAN/prerm' &&
			sh -n '$WORK/deb-x/DEBIAN/prerm' && sh -n '$WORK/deb-x/DEBIAN/postinst'"
	check deb-depends "Depends: $(dpkg-deb -f "$deb" Depends)" \
		bash -c "dpkg-deb -f '$deb' Depends | grep -q 'dkms (>= 3'"
fi

rpmf=""
if [ "$ARCH" = amd64 ]; then
	log "building the .rpm"
	if rpmf=$(timed build-rpm bash "$TOP/packaging/build-rpm.sh" "$TOP" "$OUT" 2>"$WORK/build-rpm.err" | tail -n1) &&
		[ -f "$rpmf" ]; then
		PASS build-rpm "$(basename "$rpmf") built with rpmbuild $(rpmbuild --version | awk '{print $3}')"
	else
		FAIL build-rpm "$(tail -n 20 "$WORK/build-rpm.err" | tr '\n' '|')"
		rpmf=""
	fi
	if [ -n "$rpmf" ]; then
		check rpm-noarch "$(rpm -qp --qf '%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}' "$rpmf" 2>/dev/null)" \
			test "$(rpm -qp --qf '%{NAME} %{VERSION} %{ARCH}' "$rpmf" 2>/dev/null)" = "$PKG $VERSION noarch"
		rpm -qpl "$rpmf" 2>/dev/null >"$WORK/rpm-files.txt"
		echo "  rpm file list:"
		sed 's/^/    /' "$WORK/rpm-files.txt"
		src=/usr/src/$MODNAME-$VERSION
		missing=()
		for f in "$src/dkms.conf" "$src/VERSION" "$src/src/Kbuild" "$src/src/main.c" \
			"$src/packaging/dkms/kernel-check.sh" /usr/lib/dracut/dracut.conf.d/90-virtio-iommu-fq.conf; do
			grep -qxF "$f" "$WORK/rpm-files.txt" || missing+=("$f")
		done
		grep -qE '^/usr/share/man/man8/viommu-fq\.8(\.gz|\.xz|\.bz2)?$' "$WORK/rpm-files.txt" ||
			missing+=(/usr/share/man/man8/viommu-fq.8)
		grep -qxF /usr/sbin/viommu-fq "$WORK/rpm-files.txt" || missing+=(/usr/sbin/viommu-fq)
		check rpm-files "dkms tree, dracut conf, viommu-fq and its man page present${missing[*]:+; missing: ${missing[*]}}" \
			test ${#missing[@]} -eq 0
		rm -rf "$WORK/rpm-x" && mkdir -p "$WORK/rpm-x"
		(cd "$WORK/rpm-x" && rpm2cpio "$rpmf" | cpio -idm --quiet)
		check rpm-dkms-version "dkms.conf: $(grep '^PACKAGE_VERSION=' "$WORK/rpm-x$src/dkms.conf")" \
			grep -qx "PACKAGE_VERSION=\"$VERSION\"" "$WORK/rpm-x$src/dkms.conf"
		check rpm-dracut-conf "$(grep -v '^#' "$WORK/rpm-x/usr/lib/dracut/dracut.conf.d/90-virtio-iommu-fq.conf")" \
			grep -qx 'add_drivers+=" virtio_iommu "' "$WORK/rpm-x/usr/lib/dracut/dracut.conf.d/90-virtio-iommu-fq.conf"
		rpm -qp --scripts "$rpmf" 2>/dev/null >"$WORK/rpm-scripts.txt"
		# Split the scriptlets and check each one's shell syntax.
		awk -v d="$WORK" '/^[a-z]+ scriptlet \(using \/bin\/sh\):$/ { f = d "/rpm-" $1 ".sh"; next } f { print > f }' \
			"$WORK/rpm-scripts.txt"
		sc_ok=1
		for s in postinstall preuninstall postuninstall posttrans; do
			[ -f "$WORK/rpm-$s.sh" ] && sh -n "$WORK/rpm-$s.sh" || sc_ok=0
		done
		check rpm-scriptlets-syntax "%post %preun %postun %posttrans present, sh -n clean" test $sc_ok = 1
		check rpm-post "%post: dkms add, build and install per kernel, exit 77 = skipped" \
			bash -c "grep -q 'dkms add -m $MODNAME' '$WORK/rpm-postinstall.sh' &&
				grep -q 'dkms build -m $MODNAME' '$WORK/rpm-postinstall.sh' &&
				grep -q 'dkms install -m $MODNAME' '$WORK/rpm-postinstall.sh' && grep -q '^	77)' '$WORK/rpm-postinstall.sh'"
		check rpm-preun "%preun: boot guard on erase, dkms remove --all" \
			bash -c "grep -q 'viommu_fq_removal_guard' '$WORK/rpm-preuninstall.sh' &&
				grep -q '\${_i%/iommu/\*}' '$WORK/rpm-preuninstall.sh' &&
				grep -q 'dkms remove -m $MODNAME -v $VERSION --all' '$WORK/rpm-preuninstall.sh'"
		check rpm-posttrans "%posttrans: dracut -f; %postun on erase: dracut -f" \
			bash -c "grep -q 'dracut -f' '$WORK/rpm-posttrans.sh' && grep -q 'dracut -f' '$WORK/rpm-postuninstall.sh'"
		if command -v rpmlint >/dev/null; then
			rpmlint -c "$TOP/packaging/rpm/rpmlint.toml" "$rpmf" "$OUT"/*.src.rpm \
				"$OUT/rpmbuild/SPECS/$PKG.spec" >"$OUT/rpmlint.txt" 2>&1 || true
			summary=$(grep -E '[0-9]+ errors, [0-9]+ warnings' "$OUT/rpmlint.txt" | tail -n1)
			sed -n '/^=*$/d; /: [EW]: /p' "$OUT/rpmlint.txt" | sed 's/^/  rpmlint: /'
			check rpmlint "${summary:-no summary}" grep -qE ' 0 errors' <<<"$summary"
		else
			SKIP rpmlint "rpmlint is not installed"
		fi
		# Payload into a scratch root: a real rpm database and file placement,
		# verify, erase. --noscripts --nodeps: the scriptlets need dkms and
		# dracut from a Fedora userland, which this Debian host cannot provide.
		root=$WORK/rpmroot
		rm -rf "$root" && mkdir -p "$root"
		if rpm --root "$root" --initdb 2>"$WORK/rpm-root.err" &&
			rpm --root "$root" -i --nodeps --noscripts --ignoreos "$rpmf" 2>>"$WORK/rpm-root.err" &&
			[ -f "$root$src/dkms.conf" ] && rpm --root "$root" -V --nodeps "$PKG" >>"$WORK/rpm-root.err" 2>&1 &&
			rpm --root "$root" -e --nodeps --noscripts "$PKG" 2>>"$WORK/rpm-root.err" &&
			[ ! -e "$root$src" ] && [ ! -e "$root/usr/lib/dracut/dracut.conf.d/90-virtio-iommu-fq.conf" ]; then
			PASS rpm-root-payload "rpm --root scratch: installed, rpm -V clean, erased without leftovers (payload only; scriptlets not run)"
		else
			FAIL rpm-root-payload "$(tr '\n' '|' <"$WORK/rpm-root.err")"
		fi
	fi

	# ---- 2. unit checks: kernel check and removal guard ----------------------

	kc=$TOP/packaging/dkms/kernel-check.sh
	kconf=$WORK/kconf
	mkdir -p "$kconf"
	# kcase NAME EXPECT(0|1) PATTERN SED...: edit 6.12's .config, run the check.
	kcase() {
		local name=$1 expect=$2 pat=$3 out rc=0
		shift 3
		mkdir -p "$kconf/$name"
		sed "$@" "/usr/src/linux-headers-$KVER/.config" >"$kconf/$name/.config"
		out=$(sh "$kc" "$kconf/$name" "$KVER") || rc=$?
		if [ "$rc" = "$expect" ] && { [ -z "$pat" ] || grep -q "$pat" <<<"$out"; }; then
			PASS "kernel-check-$name" "exit $rc${out:+: $(tr '\n' ';' <<<"$out")}"
		else
			FAIL "kernel-check-$name" "exit $rc (want $expect)${out:+: $out}"
		fi
	}
	kcase debian-6.12 0 "" -e ''
	kcase no-virtio 1 "CONFIG_VIRTIO is not set" -e 's/^CONFIG_VIRTIO=.*/# CONFIG_VIRTIO is not set/'
	kcase no-iommu-api 1 "CONFIG_IOMMU_API is not set" -e 's/^CONFIG_IOMMU_API=.*/# CONFIG_IOMMU_API is not set/'
	kcase no-viot-no-of 1 "neither CONFIG_ACPI_VIOT nor CONFIG_OF" -e '/^CONFIG_ACPI_VIOT=/d' -e '/^CONFIG_OF=/d'
	# shellcheck disable=SC2016 # a sed script
	kcase of-only 0 "" -e '/^CONFIG_ACPI_VIOT=/d' -e '$aCONFIG_OF=y'
	kcase virtio-iommu-builtin 1 "CONFIG_VIRTIO_IOMMU=y" -e 's/^CONFIG_VIRTIO_IOMMU=.*/CONFIG_VIRTIO_IOMMU=y/'
	kcase virtio-iommu-unset 0 "" -e 's/^CONFIG_VIRTIO_IOMMU=.*/# CONFIG_VIRTIO_IOMMU is not set/'
	out=$(sh "$kc" "$WORK/nonexistent" 2>&1) && rc=0 || rc=$?
	check kernel-check-no-config "exit $rc: $out" test "$rc" = 2

	# The removal guard, against a constructed sysfs (the real case, a guest
	# whose root NVMe sits behind a virtio-iommu, is tests/image's).
	R=$WORK/fakesys
	guard() { # EXPECT(0|1) NAME [VAR=value...]: run the guard in a subshell
		local expect=$1 name=$2 rc=0 out
		shift 2
		# shellcheck disable=SC2016 # expanded by the inner sh
		out=$(env "$@" VIOMMU_FQ_SYSROOT="$R" sh -c '. "$1"; viommu_fq_removal_guard "FIX-COMMAND" "$2"' \
			sh "$TOP/packaging/common/boot-guard.sh" "$R/modules" 2>&1) || rc=$?
		if [ "$rc" = "$expect" ] && { [ "$expect" = 0 ] || grep -q 'FIX-COMMAND' <<<"$out"; }; then
			PASS "removal-guard-$name" "exit $rc${out:+: $(head -n 3 <<<"$out" | tr '\n' ' ')}"
		else
			FAIL "removal-guard-$name" "exit $rc (want $expect): $out"
		fi
	}
	mkfake() { # ROOT-MAJMIN IOMMU-DEVICE-ID
		rm -rf "$R"
		local pci=$R/sys/devices/pci0000:00 blk
		mkdir -p "$R/proc/self" "$R/sys/dev/block" "$pci/0000:00:02.0/virtio0/iommu/virtio0"
		echo "$2" >"$pci/0000:00:02.0/virtio0/device"
		blk=$pci/0000:00:03.0/nvme/nvme0/nvme0n1/nvme0n1p1
		mkdir -p "$blk" "$R/sys/devices/virtual/block/dm-0/slaves"
		echo 259:1 >"$blk/dev"
		ln -s "$pci/0000:00:02.0/virtio0/iommu/virtio0" "$pci/0000:00:03.0/iommu"
		ln -s "$blk" "$R/sys/dev/block/259:1"
		echo 254:0 >"$R/sys/devices/virtual/block/dm-0/dev"
		ln -s "$blk" "$R/sys/devices/virtual/block/dm-0/slaves/nvme0n1p1"
		ln -s "$R/sys/devices/virtual/block/dm-0" "$R/sys/dev/block/254:0"
		echo "27 1 $1 / / rw,relatime shared:1 - ext4 /dev/root rw" >"$R/proc/self/mountinfo"
		: >"$R/modules"
	}
	mkfake 259:1 0x0017
	guard 1 nvme-root-behind-viommu
	echo "# virtio_iommu" >"$R/modules"
	guard 1 commented-line-is-not-enough
	echo "virtio_iommu" >"$R/modules"
	guard 0 in-tree-module-listed
	: >"$R/modules"
	guard 0 forced VIRTIO_IOMMU_FQ_FORCE_REMOVE=1
	mkfake 254:0 0x0017
	guard 1 dm-root-on-nvme-behind-viommu
	mkfake 259:1 0x0001
	guard 0 other-iommu
	# shellcheck disable=SC2016 # expanded by the inner sh
	out=$(sh -c '. "$1"; viommu_fq_removal_guard FIX /etc/initramfs-tools/modules' sh \
		"$TOP/packaging/common/boot-guard.sh" 2>&1) && rc=0 || rc=$?
	check removal-guard-this-host "exit $rc: this host's root is not behind a virtio-iommu${out:+: $out}" test "$rc" = 0
fi

# ---- 3. in a Debian 12 root of $ARCH --------------------------------------

if [ -z "$deb" ]; then
	SKIP chroot-install "no .deb was built"
	summary
	exit 1
fi

# The kernels of $ARCH: Debian 12's newest 6.12 (the e2e guest's) and its
# newest 6.1, which the module serves on arm64 only (src/core61.c needs a
# device tree; docs/LINUX-6.1-ARM64.md): OLD_BUILDS says which.
if [ "$ARCH" = amd64 ]; then
	OLD=$(apt-cache search --names-only '^linux-headers-6\.1\.0-[0-9]+-amd64$' | awk '{print $1}' |
		sed 's/^linux-headers-//' | sort -V | tail -n1)
	have_pkg() { [ -n "$(apt-cache show --no-all-versions "$1" 2>/dev/null)" ]; }
else
	# shellcheck source=scripts/arm64-lib.sh
	. "$TOP/scripts/arm64-lib.sh"
	arm64_setup bookworm
	apt_update arm64
	KVER=$(arm64_kver)
	# shellcheck disable=SC2046 # options are words
	OLD=$(apt-cache $(apt_opts arm64) search --names-only '^linux-headers-6\.1\.0-[0-9]+-arm64$' |
		awk '{print $1}' | sed 's/^linux-headers-//' | sort -V | tail -n1)
	# shellcheck disable=SC2046 # options are words
	have_pkg() { [ -n "$(apt-cache $(apt_opts arm64) show --no-all-versions "$1" 2>/dev/null)" ]; }
fi
OLD_BUILDS=0
[ "$ARCH" = arm64 ] && OLD_BUILDS=1
[[ $KVER == 6.12.*-$ARCH ]] || die "no Debian 12 6.12 kernel for $ARCH (got '$KVER')"
# Debian 12 ships the 6.12 images unsigned (the signed ones are 6.1's).
IMAGE=linux-image-$KVER
have_pkg "$IMAGE" || IMAGE=linux-image-$KVER-unsigned
have_pkg "$IMAGE" || die "neither linux-image-$KVER nor $IMAGE is in the archive"
BASE_PKGS=(dkms build-essential initramfs-tools zstd kmod man-db openssl
	"$IMAGE" "linux-headers-$KVER")
# old_reasons < TEXT (amd64, OLD_BUILDS=0): TEXT holds the package's reasons
# for skipping $OLD: its version, and the missing ACPI VIOT and device tree.
old_reasons() {
	local t
	t=$(cat)
	grep -q "^$MODNAME: not built for $OLD: kernel $OLD is older than 6.12," <<<"$t" &&
		grep -q "^$MODNAME: not built for $OLD: neither CONFIG_ACPI_VIOT nor CONFIG_OF" <<<"$t"
}
if [ -n "$OLD" ]; then
	BASE_PKGS+=("linux-headers-$OLD")
else
	log "no linux-headers-6.1.0-*-$ARCH in the archive: the unsupported-kernel checks are skipped"
fi

ichroot_binfmt "$ARCH"
log "the $ARCH root: $IMAGE, linux-headers-$KVER${OLD:+, linux-headers-$OLD}"
EXTRA_PKGS=()
if [ "$ARCH" = amd64 ]; then
	# The image suite's pristine disk (tests/image/build-base.sh: debootstrap
	# of Debian 12 with $IMAGE, its headers, dkms and initramfs-tools) is
	# the base: one debootstrap serves both suites. What it lacks comes into
	# the overlay below.
	EXTRA_PKGS=(man-db ${OLD:+"linux-headers-$OLD"})
	if ICHROOT_BASE=$(timed chroot-base bash "$TOP/tests/image/build-base.sh" "$KVER" \
		2>"$WORK/build-base.err" | tail -n1) && [ -f "$ICHROOT_BASE" ]; then
		PASS chroot-base "$ICHROOT_BASE: the image suite's Debian 12 base (tests/image/build-base.sh $KVER), read only; + ${EXTRA_PKGS[*]} in the overlay"
	else
		FAIL chroot-base "building the image suite's base failed: $(tail -n 5 "$WORK/build-base.err" | tr '\n' '|')"
		summary
		exit 1
	fi
elif timed chroot-base ichroot_base "$ARCH" "${BASE_PKGS[@]}"; then
	PASS chroot-base "$ICHROOT_BASE: debootstrap $ICHROOT_SUITE $ARCH + ${BASE_PKGS[*]} (inputs: $CROOT/base.inputs)"
else
	FAIL chroot-base "building the base root failed (see $CROOT/base-build.log)"
	summary
	exit 1
fi
ichroot_up "$ICHROOT_BASE" "$RUN" || die "could not mount an overlay of $ICHROOT_BASE at $RUN/root"
R=$ICHROOT
if [ ${#EXTRA_PKGS[@]} -gt 0 ]; then
	# Downloads land in the image suite's package cache (kept between runs).
	acache=$VIOMMU_CACHE/image/apt-archives
	mkdir -p "$acache/partial"
	# The image's resolv.conf is empty (its guest has no network).
	cp /etc/resolv.conf "$R/etc/resolv.conf"
	extra_install() { inch apt-get update -q && inch apt-get install -y -q --no-install-recommends "$@"; }
	if ! { mount --bind "$acache" "$R/var/cache/apt/archives" &&
		timed chroot-extra-packages extra_install "${EXTRA_PKGS[@]}" >"$WORK/extra-packages.log" 2>&1 &&
		umount "$R/var/cache/apt/archives"; }; then
		die "installing ${EXTRA_PKGS[*]} into the root failed (see $WORK/extra-packages.log)"
	fi
fi

# The release the root's `uname -r` gives: see the header. The real uname
# is diverted (in the run's copy only) and a wrapper takes its place: apt
# runs maintainer scripts with its own PATH (DPkg::Path, no /usr/local), so
# a wrapper earlier in PATH would not reach them. Everything else uname says
# (the machine: aarch64 under qemu-user) comes from the real one.
RUNNING=${OLD:-$KVER}
inch dpkg-divert --local --rename --divert /bin/uname.real --add /bin/uname >"$WORK/uname-divert.log" 2>&1 ||
	die "could not divert the root's /bin/uname (see $WORK/uname-divert.log)"
cat >"$R/bin/uname" <<EOT
#!/bin/sh
# The kernel this root stands for a machine running (tests/install/run.sh).
/bin/uname.real "\$@" | sed "s/\$(/bin/uname.real -r)/$RUNNING/g"
EOT
chmod 755 "$R/bin/uname"
[ "$(inch /bin/sh -c 'PATH=/usr/sbin:/usr/bin:/sbin:/bin uname -r')" = "$RUNNING" ] ||
	die "uname -r in the root says '$(inch uname -r)', not $RUNNING"
[ "$(inch uname -m)" = "$DKMS_ARCH" ] || die "uname -m in the root says '$(inch uname -m)', not $DKMS_ARCH"

# The kernel image's in-tree module and initramfs.
[ -f "$R/boot/initrd.img-$KVER" ] || die "the base root has no /boot/initrd.img-$KVER"
intree=$(cd "$R" && find "lib/modules/$KVER/kernel/drivers/iommu" -name 'virtio-iommu.ko*' | head -n1)
[ -n "$intree" ] || die "no in-tree virtio-iommu module in the root's /lib/modules/$KVER/kernel"
intree=/$intree
intree_sum=$(sha256sum "$R$intree" | cut -d' ' -f1)
intree_vermagic=$(inch modinfo -F vermagic "$intree")

# A Secure Boot key pair where DKMS looks for one.
mkdir -p "$R/var/lib/dkms"
CN="virtio-iommu-fq install test $$"
openssl req -new -x509 -nodes -days 2 -subj "/CN=$CN" -newkey rsa:2048 \
	-keyout "$R/var/lib/dkms/mok.key" -outform DER -out "$R/var/lib/dkms/mok.pub" >/dev/null 2>&1
chmod 600 "$R/var/lib/dkms/mok.key"
serial=$(openssl x509 -inform DER -in "$R/var/lib/dkms/mok.pub" -noout -serial | sed 's/^serial=//')
debc=/root/$(basename "$deb")
cp "$deb" "$R$debc"

# --- the rpm's DKMS scriptlets, run against the root's DKMS ---
# The payload goes where rpm would put it (/usr/src/$MODNAME-$VERSION), then
# %post (install), %posttrans, %preun and %postun (erase) run as rpm would
# run them. Their dracut steps do nothing here (Debian has no dracut), so
# the initramfs side of the rpm is covered only by the checks above.
if [ -n "$rpmf" ] && [ -f "$WORK/rpm-postinstall.sh" ]; then
	cp -a "$WORK/rpm-x/usr/src/$MODNAME-$VERSION" "$R/usr/src/"
	mkdir -p "$R/root/rpm"
	cp "$WORK"/rpm-*.sh "$R/root/rpm/"
	out=$(timed rpm-post inch sh /root/rpm/rpm-postinstall.sh 1 2>&1) && rc=0 || rc=$?
	grep -v readelf <<<"$out" | grep -E "^$MODNAME|Error|skipped|^This indicates" | sed 's/^/  rpm %post: /' || true
	n=$(inch modinfo -k "$KVER" -n virtio_iommu 2>/dev/null || true)
	ok=1
	[ "$rc" = 0 ] && [[ $n == /lib/modules/$KVER/updates/dkms/* ]] || ok=0
	if [ -n "$OLD" ]; then
		old_reasons <<<"$out" || ok=0
		grep -q "^$MODNAME: skipped kernel $OLD" <<<"$out" || ok=0
		ls "$R/lib/modules/$OLD"/updates/dkms/virtio-iommu.ko* >/dev/null 2>&1 && ok=0
	fi
	check rpm-scriptlet-post "%post exit $rc: modinfo -n $n${OLD:+; $OLD skipped with the reason}" test $ok = 1
	out=$(inch sh /root/rpm/rpm-posttrans.sh 2>&1) && rc=0 || rc=$?
	check rpm-scriptlet-posttrans "%posttrans exit $rc (no dracut here: nothing to do)" test "$rc" = 0
	out=$(timed rpm-preun inch sh /root/rpm/rpm-preuninstall.sh 0 2>&1) && rc=0 || rc=$?
	n=$(inch modinfo -k "$KVER" -n virtio_iommu 2>/dev/null || true)
	check rpm-scriptlet-preun "%preun (erase) exit $rc: modinfo -n $n; /var/lib/dkms/$MODNAME $([ -e "$R/var/lib/dkms/$MODNAME" ] && echo left || echo gone)" \
		bash -c "[ $rc = 0 ] && [[ '$n' == */kernel/drivers/iommu/* ]] && [ ! -e '$R/var/lib/dkms/$MODNAME' ]"
	out=$(inch sh /root/rpm/rpm-postuninstall.sh 0 2>&1) && rc=0 || rc=$?
	check rpm-scriptlet-postun "%postun (erase) exit $rc" test "$rc" = 0
	rm -rf "$R/usr/src/$MODNAME-$VERSION" "$R/root/rpm"
fi

# --- install with only the 6.1 kernel's headers ---
# amd64: the module cannot serve 6.1, the postinst must say why and skip it;
# arm64: DKMS builds it for 6.1. In a private mount namespace of the apt-get process tree, the 6.12
# headers are hidden (an empty directory over the root's
# /usr/src/linux-headers-$KVER, where /lib/modules/$KVER/build points), so
# the package's postinst sees the 6.1 headers only. The namespace also sees
# update_initramfs=no (a copy of update-initramfs.conf over the root's):
# nothing is built here, so the initramfs would not change, and the
# regeneration (minutes) is checked in the install below.
if [ -n "$OLD" ]; then
	log "apt-get install ./$(basename "$deb") with only linux-headers-$OLD visible"
	mkdir -p "$WORK/empty"
	uic=$R/etc/initramfs-tools/update-initramfs.conf
	sed 's/^update_initramfs=.*/update_initramfs=no/' "$uic" >"$WORK/update-initramfs.conf"
	# shellcheck disable=SC2016 # expanded by the inner bash
	if timed apt-install-6.1-only unshare --mount --propagation private bash -c \
		'mount --bind "$1" "$2" && mount --bind "$3" "$4" && shift 4 && exec "$@"' _ \
		"$WORK/empty" "$R/usr/src/linux-headers-$KVER" "$WORK/update-initramfs.conf" "$uic" \
		chroot "$R" /usr/bin/env -i PATH="$ICHROOT_PATH" HOME=/root LANG=C.UTF-8 TERM=dumb \
		DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y "$debc" \
		>"$WORK/apt-install-old-only.log" 2>&1; then
		rc=0
	else
		rc=$?
	fi
	grep -E "^$MODNAME: |Skipped|Building|skipped|headers|chroot" "$WORK/apt-install-old-only.log" | sed 's/^/  apt (6.1 headers only): /' || true
	st=$(inch dkms status "$MODNAME" 2>/dev/null | grep -v readelf || true)
	ok=1
	n=$(inch modinfo -k "$KVER" -n virtio_iommu 2>/dev/null || true)
	[[ $n == */kernel/drivers/iommu/* ]] || ok=0
	[ "$rc" = 0 ] || ok=0
	[ "$(pkg_state "$PKG")" = ii ] || ok=0
	grep -q "belongs to a chroot's host" "$WORK/apt-install-old-only.log" && ok=0
fi
if [ -n "$OLD" ] && [ $OLD_BUILDS = 1 ]; then
	no=$(inch modinfo -k "$OLD" -n virtio_iommu 2>/dev/null || true)
	grep -q "$MODNAME/$VERSION, $OLD, $DKMS_ARCH: installed" <<<"$st" || ok=0
	[[ $no == /lib/modules/$OLD/updates/dkms/* ]] || ok=0
	check install-6.1-only "apt-get install exit $rc, package state '$(pkg_state "$PKG")' (6.12 headers hidden); dkms status: ${st:-none}; modinfo -k $OLD -n: ${no:-none}; modinfo -k $KVER -n: $n" \
		test "$ok" = 1
elif [ -n "$OLD" ]; then
	old_reasons <"$WORK/apt-install-old-only.log" || ok=0
	# (apt's log lines may end in a carriage return)
	grep -q '^Skipped\.' "$WORK/apt-install-old-only.log" || ok=0
	grep -q ': installed' <<<"$st" && ok=0
	check install-unsupported-only "apt-get install exit $rc, package state '$(pkg_state "$PKG")'; postinst: '$(grep -m1 "^$MODNAME: not built for $OLD" "$WORK/apt-install-old-only.log")', then 'Skipped.'; $(grep -m1 '^Module build for kernel' "$WORK/apt-install-old-only.log" | tr -d '\r') (6.12 headers hidden); dkms status: ${st:-none}; modinfo -n: $n" \
		test "$ok" = 1
fi

# --- install (over the previous one, if any): builds for $KVER ---
log "apt-get install ./$(basename "$deb")"
if timed apt-install inch "${APT[@]}" install -y --reinstall "$debc" >"$WORK/apt-install.log" 2>&1; then
	PASS apt-install "apt-get install ./$(basename "$deb") exit 0"
else
	FAIL apt-install "$(grep -v readelf "$WORK/apt-install.log" | tail -n 15 | tr '\n' '|')"
fi
grep -E "^$MODNAME: |Skipped|Building|Installing to|update-initramfs|chroot" "$WORK/apt-install.log" | sed 's/^/  apt: /' || true
# The postinst (DKMS's common.postinst) builds for the running kernel and
# the newest installed one (/boot/config-*), as on a machine booted into
# $RUNNING: "Building for <running> <newest>". In a root whose `uname -r`
# names no installed kernel it would say so and list every kernel in
# /lib/modules instead ("Building for <a> and <b>").
bf=$(grep -m1 '^Building for ' "$WORK/apt-install.log" | tr -d '\r' || true)
bf_want="Building for $KVER"
[ -n "$OLD" ] && bf_want="Building for $OLD $KVER"
check postinst-kernels "running kernel $RUNNING: '$bf'" \
	bash -c "[ \"\$1\" = \"\$2\" ] && ! grep -q \"belongs to a chroot's host\" \"\$3\"" _ "$bf" "$bf_want" "$WORK/apt-install.log"

dkms_st=$(inch dkms status "$MODNAME" 2>/dev/null | grep -v readelf || true)
echo "  dkms status: $dkms_st"
check dkms-installed "$(grep "$KVER" <<<"$dkms_st" || echo "not installed for $KVER")" \
	grep -q "$MODNAME/$VERSION, $KVER, $DKMS_ARCH: installed" <<<"$dkms_st"
# viommu-fq: installed, runs, has its man page; this host (whose /sys the
# root sees) has no virtio-iommu, so status must say so and fail.
vh_rc=0
vh=$(inch /usr/sbin/viommu-fq --help 2>&1) || vh_rc=$?
vs_rc=0
vs=$(inch /usr/sbin/viommu-fq status 2>&1) || vs_rc=$?
vm=$(inch man -w viommu-fq 2>/dev/null || true)
# shellcheck disable=SC2016 # the inner shell expands its own arguments
check tool-installed "/usr/sbin/viommu-fq $(stat -c %A "$R/usr/sbin/viommu-fq" 2>/dev/null): --help exit $vh_rc ($(head -n1 <<<"$vh")); status exit $vs_rc ($vs); man -w: ${vm:-none}" \
	bash -c '[ -x "$6/usr/sbin/viommu-fq" ] && [ "$1" = 0 ] && grep -q "^Usage: viommu-fq status" <<<"$2" &&
		[ "$3" = 1 ] && grep -q "no virtio-iommu-fq instance" <<<"$4" && [ -n "$5" ]' \
	_ "$vh_rc" "$vh" "$vs_rc" "$vs" "$vm" "$R"
mi=$(inch modinfo -k "$KVER" virtio_iommu 2>&1 || true)
grep -E '^(filename|version|description|srcversion|vermagic|signer|sig_key|sig_hashalgo):' <<<"$mi" | sed 's/^/  modinfo: /'
fname=$(inch modinfo -k "$KVER" -F filename virtio_iommu 2>/dev/null || true)
check modinfo-filename "modinfo -k $KVER virtio_iommu: $fname" \
	bash -c "[[ '$fname' == /lib/modules/$KVER/updates/dkms/virtio-iommu.ko* ]]"
mver=$(inch modinfo -k "$KVER" -F version virtio_iommu 2>/dev/null || true)
check modinfo-version "version: $mver" test "$mver" = "$VERSION"
desc=$(inch modinfo -k "$KVER" -F description virtio_iommu 2>/dev/null || true)
check modinfo-description "description: $desc" bash -c "[[ '$desc' == virtio-iommu-fq* ]]"
n=$(inch modinfo -k "$KVER" -n virtio_iommu 2>/dev/null || true)
check modinfo-n "modinfo -k $KVER -n virtio_iommu: $n" bash -c "[[ '$n' == /lib/modules/$KVER/updates/dkms/* ]]"
# Built for this kernel by this architecture's compiler: an ELF of the
# machine, and the vermagic of the kernel's own modules.
ours=$WORK/ours.ko
ko_unpack "$R$n" "$ours"
machine=$(readelf -h "$ours" 2>/dev/null | sed -n 's/^ *Machine: *//p')
vermagic=$(modinfo -F vermagic "$ours" 2>/dev/null || true)
check module-elf "$(readelf -h "$ours" 2>/dev/null | sed -n 's/^ *Class: *//p') $machine relocatable (want $ELF_MACHINE)" \
	bash -c "[ '$machine' = '$ELF_MACHINE' ] && readelf -h '$ours' | grep -q 'Type: *REL '"
check modinfo-vermagic "vermagic '$vermagic' = the in-tree module's '$intree_vermagic'" \
	bash -c "[ -n '$vermagic' ] && [ '$vermagic' = '$intree_vermagic' ] && [[ '$vermagic' == '$KVER '* ]]"
sd=$(inch modprobe -S "$KVER" --show-depends virtio_iommu 2>&1 || true)
echo "  modprobe -S $KVER --show-depends virtio_iommu: $sd"
check modprobe-show-depends "$(tail -n1 <<<"$sd")" \
	bash -c "grep -q '^insmod /lib/modules/$KVER/updates/dkms/virtio-iommu.ko' <<<'$sd' && ! grep -q 'kernel/drivers/iommu' <<<'$sd'"
check intree-untouched "the in-tree $intree is still in place, unchanged" \
	test "$(sha256sum "$R$intree" 2>/dev/null | cut -d' ' -f1)" = "$intree_sum"
lsi=$(inch lsinitramfs "/boot/initrd.img-$KVER" 2>/dev/null | grep 'virtio-iommu\.ko' || true)
echo "  lsinitramfs /boot/initrd.img-$KVER: ${lsi:-no virtio-iommu.ko}"
check initramfs-has-ours "lsinitramfs: $lsi" \
	bash -c "grep -q 'updates/dkms/virtio-iommu\.ko' <<<'$lsi' && ! grep -q 'kernel/drivers/iommu/virtio-iommu' <<<'$lsi'"
# The module in the initramfs is the DKMS build, byte for byte.
rm -rf "$R/root/initrd-x"
if inch unmkinitramfs "/boot/initrd.img-$KVER" /root/initrd-x 2>/dev/null; then
	im=$(cd "$R" && find root/initrd-x -path '*updates/dkms/virtio-iommu.ko*' | head -n1)
	isv=""
	[ -z "$im" ] || isv=$(inch modinfo -F srcversion "/$im" 2>/dev/null || true)
	msv=$(inch modinfo -k "$KVER" -F srcversion virtio_iommu 2>/dev/null || true)
	check initramfs-module-is-dkms-build "srcversion in the initramfs $isv = installed $msv" \
		test -n "$isv" -a "$isv" = "$msv"
else
	FAIL initramfs-module-is-dkms-build "unmkinitramfs failed"
fi
rm -rf "$R/root/initrd-x"
signer=$(inch modinfo -k "$KVER" -F signer virtio_iommu 2>/dev/null || true)
sigkey=$(inch modinfo -k "$KVER" -F sig_key virtio_iommu 2>/dev/null | tr -d ':' || true)
check secure-boot-signature "signer '$signer', sig_key $sigkey = serial of the root's /var/lib/dkms/mok.pub ($serial)" \
	bash -c "[ '$signer' = '$CN' ] && [ '${sigkey^^}' = '${serial^^}' ]"

# --- DKMS's kernel hooks: new kernels ---
if [ -n "$OLD" ] && [ $OLD_BUILDS = 1 ]; then
	# As for 6.12 below: the build dropped, the hook brings it back.
	inch dkms unbuild "$MODNAME/$VERSION" -k "$OLD" >"$WORK/dkms-unbuild-old.log" 2>&1 || true
	gone=$(inch modinfo -k "$OLD" -n virtio_iommu 2>/dev/null || true)
	out=$(timed hook-6.1 inch /etc/kernel/header_postinst.d/dkms "$OLD" 2>&1) && rc=0 || rc=$?
	back=$(inch modinfo -k "$OLD" -n virtio_iommu 2>/dev/null || true)
	check hook-6.1-kernel "after dkms unbuild: ${gone:-none}; header_postinst.d/dkms $OLD exit $rc: ${back:-none}" \
		bash -c "[[ '$gone' != */updates/dkms/* ]] && [ $rc = 0 ] && [[ '$back' == /lib/modules/$OLD/updates/dkms/* ]]"
	oko=$WORK/ours-6.1.ko
	ko_unpack "$R$back" "$oko"
	ovm=$(modinfo -F vermagic "$oko" 2>/dev/null || true)
	omach=$(readelf -h "$oko" 2>/dev/null | sed -n 's/^ *Machine: *//p')
	check module-6.1 "the $OLD build: $omach, vermagic '$ovm'" \
		bash -c "[ '$omach' = '$ELF_MACHINE' ] && [[ '$ovm' == '$OLD '* ]]"
	check install-built-6.1 "the package's postinst built for $OLD too (dkms status)" \
		grep -q "$MODNAME/$VERSION, $OLD, $DKMS_ARCH: installed" <<<"$dkms_st"
elif [ -n "$OLD" ]; then
	out=$(timed hook-unsupported inch /etc/kernel/header_postinst.d/dkms "$OLD" 2>&1) && rc=0 || rc=$?
	grep -v readelf <<<"$out" | sed 's/^/  header_postinst.d\/dkms: /'
	ok=1
	[ "$rc" = 0 ] && old_reasons <<<"$out" || ok=0
	ls "$R/lib/modules/$OLD"/updates/dkms/virtio-iommu.ko* >/dev/null 2>&1 && ok=0
	check hook-unsupported-kernel "exit $rc; reason given; nothing installed for $OLD" test $ok = 1
	out=$(inch dkms build -m "$MODNAME" -v "$VERSION" -k "$OLD" 2>&1) && rc=0 || rc=$?
	echo "  dkms build -k $OLD: $(grep "^$MODNAME: not built" <<<"$out" | tr '\n' '|')"
	check build-unsupported-kernel "dkms build -k $OLD: exit $rc (77 = skipped), $(grep -c "^$MODNAME: not built" <<<"$out") reason line(s)" \
		bash -c "[ $rc = 77 ] && grep -q '^$MODNAME: not built for $OLD' <<<\"\$1\"" _ "$out"
	check install-skipped-unsupported "the package's postinst skipped $OLD with the reason" \
		old_reasons <"$WORK/apt-install.log"
else
	SKIP hook-unsupported-kernel "no linux-headers-6.1.0-*-$ARCH in the archive"
fi
# A kernel gaining the module through the same hook (as after a kernel
# upgrade): drop the build for $KVER, run the hook, expect it back.
inch dkms unbuild "$MODNAME/$VERSION" -k "$KVER" >"$WORK/dkms-unbuild.log" 2>&1 || true
gone=$(inch modinfo -k "$KVER" -n virtio_iommu 2>/dev/null || true)
out=$(timed hook-supported inch /etc/kernel/header_postinst.d/dkms "$KVER" 2>&1) && rc=0 || rc=$?
back=$(inch modinfo -k "$KVER" -n virtio_iommu 2>/dev/null || true)
check hook-supported-kernel "after dkms unbuild: $gone; header_postinst.d/dkms $KVER exit $rc: $back" \
	bash -c "[[ '$gone' == */kernel/drivers/iommu/* ]] && [ $rc = 0 ] && [[ '$back' == */updates/dkms/* ]]"

# --- the DKMS-built module in the end-to-end guest ---
if [ $E2E = 0 ]; then
	SKIP e2e-boot "--no-e2e given"
elif [[ "$back" != */updates/dkms/* ]]; then
	FAIL e2e-boot "no DKMS-built module to boot"
else
	ko=$WORK/virtio-iommu.ko
	ko_unpack "$R$back" "$ko"
	gk=$("$TOP/scripts/guest-kernels.sh" "$E2E_GUEST" 2>"$WORK/guest-kernels.err" | tail -n1 || true)
	if [ "$gk" != "$KVER" ]; then
		FAIL e2e-boot "the e2e guest kernel is '$gk', the DKMS build is for $KVER"
	elif grep -q -- '--ko' "$TOP/tests/e2e/run.sh"; then
		out=$(timed e2e-boot bash "$TOP/tests/e2e/run.sh" --ko "$ko" --boots main "$E2E_GUEST" 2>"$WORK/e2e.err") && rc=0 || rc=$?
		echo "$out" | grep -E '^(PASS|FAIL|SKIP|SUITE)' | sed 's/^/  e2e: /'
		line=$(grep '^SUITE ' <<<"$out" | tail -n1)
		check e2e-boot "tests/e2e/run.sh --ko (DKMS build): ${line:-no SUITE line}" \
			bash -c "[ $rc = 0 ] && grep -qE ' [1-9][0-9]* passed, 0 failed' <<<'$line'"
	else
		# The e2e runner's own pieces (tests/lib, tests/e2e/guest.sh), with
		# the DKMS-built module in place of a fresh build; on arm64 QEMU's
		# virt machine (device tree, virtio-mmio), as tests/e2e/run.sh boots it.
		(
			# shellcheck source=tests/lib/initramfs.sh
			. "$TOP/tests/lib/initramfs.sh"
			# shellcheck source=tests/lib/vm.sh
			. "$TOP/tests/lib/vm.sh"
			tree=$VIOMMU_CACHE/kernels/$KVER
			d=$WORK/e2e
			mkdir -p "$d"
			vm_arch=x86_64 modules=$VIOMMU_GUEST_MODULES
			if [ "$ARCH" = arm64 ]; then
				vm_arch=arm64
				modules+=" virtio_mmio"
			fi
			expect=DMA-FQ
			grep -q '^CONFIG_IOMMU_DEFAULT_DMA_STRICT=y' "$tree/boot/config-$KVER" && expect=DMA
			VIOMMU_GUEST_MODULES=$modules viommu_initramfs "$d/initrd.img" "$tree" "$KVER" \
				"$TOP/tests/e2e/guest.sh" "$ko:lib/modules/ours/virtio-iommu.ko" >"$d/initramfs.log" 2>&1
			append="viommu_role=main viommu_order=before viommu_shutdown=poweroff viommu_mod=ours"
			append+=" viommu_expect_type=$expect viommu_fio_size=32M"
			append+=" viommu_version=$(modinfo -F version "$ko") viommu_srcversion=$(modinfo -F srcversion "$ko")"
			t0=$(date +%s)
			ok=1
			VM_ARCH=$vm_arch viommu_vm_run "$d/main" "$tree/boot/vmlinuz-$KVER" "$d/initrd.img" "$append" >"$d/vm.log" 2>&1 || ok=0
			viommu_vm_results "$d/main" >"$d/results.txt"
			echo "TIME $S/e2e-boot $(($(date +%s) - t0)) s ($VM_ATTEMPTS)" >&2
			sed 's/^/  e2e: /' "$d/results.txt" >&2
			echo "$VM_PASS $VM_FAIL $VM_SKIP"
			[ $ok = 1 ] && grep -q '^GUEST-DONE' "$d/main/results.log" &&
				[ "$VM_FAIL" = 0 ] && [ "$VM_PASS" -gt 0 ] &&
				grep -q '^PASS module-ours' "$d/results.txt" && grep -q '^PASS fio' "$d/results.txt"
		) >"$WORK/e2e-counts.txt" 2>"$WORK/e2e-out.txt" && rc=0 || rc=$?
		cat "$WORK/e2e-out.txt"
		read -r vp vf vs <"$WORK/e2e-counts.txt" 2>/dev/null || true
		check e2e-boot "DKMS-built .ko in the $KVER guest (tests/lib + tests/e2e/guest.sh, main boot): ${vp:-?} guest cases passed, ${vf:-?} failed, ${vs:-?} skipped; module-ours and fio verify among the passes (logs: $WORK/e2e)" \
			test "$rc" = 0
	fi
fi

# --- purge ---
# The guard would refuse only on a machine booting behind a virtio-iommu.
log "apt-get purge $PKG"
if timed apt-purge inch "${APT[@]}" purge -y "$PKG" >"$WORK/apt-purge.log" 2>&1; then
	PASS apt-purge "apt-get purge $PKG exit 0"
else
	FAIL apt-purge "$(grep -v readelf "$WORK/apt-purge.log" | tail -n 15 | tr '\n' '|')"
fi
st=$(pkg_state "$PKG")
check purge-dpkg-state "dpkg status: '$st' (not installed, no config files)" \
	bash -c "! grep -qE '^(ii|rc|i|r)' <<<'$st'"
left=()
while read -r f; do
	case $f in */) continue ;; esac
	[ -e "$R$f" ] && left+=("$f")
done <"$WORK/deb-files.txt"
for f in "$R/usr/src/$MODNAME-$VERSION" "$R/var/lib/dkms/$MODNAME" "$R"/var/lib/dpkg/info/"$PKG".* \
	"$R"/lib/modules/*/updates/dkms/virtio-iommu.ko*; do
	[ -e "$f" ] && left+=("${f#"$R"}")
done
check purge-no-files "no file of the package, the DKMS tree or the DKMS modules left${left[*]:+: ${left[*]}}" \
	test ${#left[@]} -eq 0
n=$(inch modinfo -k "$KVER" -n virtio_iommu 2>/dev/null || true)
check purge-modinfo-intree "modinfo -k $KVER -n virtio_iommu: $n" \
	bash -c "[[ '$n' == /lib/modules/$KVER/kernel/drivers/iommu/virtio-iommu.ko* ]]"
sd=$(inch modprobe -S "$KVER" --show-depends virtio_iommu 2>&1 || true)
check purge-modprobe-intree "$(tail -n1 <<<"$sd")" \
	grep -q "^insmod /lib/modules/$KVER/kernel/drivers/iommu/virtio-iommu.ko" <<<"$sd"
check purge-intree-untouched "the in-tree module is unchanged" \
	test "$(sha256sum "$R$intree" 2>/dev/null | cut -d' ' -f1)" = "$intree_sum"
lsi=$(inch lsinitramfs "/boot/initrd.img-$KVER" 2>/dev/null | grep 'virtio-iommu\.ko' || true)
check purge-initramfs-rebuilt "lsinitramfs: ${lsi:-no virtio-iommu.ko} (no virtio-iommu on this host, no admin entry)" \
	bash -c "! grep -q 'updates/dkms' <<<'$lsi'"

# --- the root taken down, this host as it was ---
log "taking the root down"
trap - EXIT INT TERM
if teardown && [ ! -e "$RUN" ] &&
	! findmnt -rn -o TARGET | awk -v d="$CROOT/" 'index($0 "/", d) == 1' | grep -q .; then
	PASS chroot-cleanup "nothing mounted under $CROOT, the run's copy removed, binfmt_misc as found"
else
	FAIL chroot-cleanup "mounts or files left under $CROOT"
fi
hleft=()
[ "$(host_pkg)" = "$host_pkg_before" ] || hleft+=("$PKG in this host's dpkg: '$host_pkg_before' before, '$(host_pkg)' after")
[ "$(host_dkms)" = "$host_dkms_before" ] || hleft+=("/var/lib/dkms changed")
check host-untouched "$PKG in this host's dpkg as before (${host_pkg_before:-not known to it}), its /var/lib/dkms unchanged${hleft[*]:+: ${hleft[*]}}" \
	test ${#hleft[@]} -eq 0

summary
[ "$fail" -eq 0 ]
