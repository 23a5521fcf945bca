#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Install suite: the packages, built from this tree and used on this host as
# an administrator would.
#
#   tests/install/run.sh [--no-e2e]
#
#  1. builds the .deb (lintian must be clean) and the .rpm (rpmlint), checks
#     their file lists, dkms.conf version and scriptlets; installs the rpm's
#     payload into a scratch rpm database (payload only: its scriptlets need
#     a Fedora userland);
#  2. unit checks: packaging/dkms/kernel-check.sh against real and edited
#     kernel configurations, the removal guard against a constructed sysfs;
#  3. on this host (Debian 12 with linux-headers-<newest 6.12>, the matching
#     linux-image, and Debian's newest 6.1 headers as the unsupported kernel):
#     a Secure Boot key pair in /var/lib/dkms, `apt-get install ./deb`,
#     modinfo / modprobe -S / lsinitramfs resolve to the DKMS build, which is
#     signed with that key; DKMS's kernel hooks skip the 6.1 kernel with the
#     reason and rebuild for 6.12; the DKMS-built .ko boots in the end-to-end
#     guest (tests/lib, tests/e2e/guest.sh; --no-e2e skips that); then
#     `apt-get purge` removes every file and the in-tree module resolves again.
#
# The host is put back as it was at the end, also on failure or interruption
# (and, after a hard kill, at the start of the next run): the package purged,
# headers this run installed purged, /var/lib/dkms/mok.* restored.
# Prints "PASS|FAIL|SKIP install/<check> <detail>" lines and
# `SUITE install: N passed, N failed, N skipped`; exits non-zero on failure.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/common.sh
. "$TOP/scripts/common.sh"

E2E=1
while [ $# -gt 0 ]; do
	case $1 in
	--no-e2e) E2E=0 ;;
	-h | --help) sed -n '3,29p' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || die "the install suite needs root (it installs packages)"

PKG=virtio-iommu-fq-dkms
MODNAME=virtio-iommu-fq
STATE=$VIOMMU_CACHE/install-test
WORK=$STATE/work
OUT=$STATE/out
VERSION=$(tr -d '[:space:]' <"$TOP/VERSION")
export DEBIAN_FRONTEND=noninteractive
# Other package operations may hold the dpkg lock for a while: wait for it.
APT=(apt-get -o DPkg::Lock::Timeout=900)

pass=0 fail=0 skip=0
t_start=$(date +%s)
PASS() { echo "PASS install/$1 ${*:2}"; pass=$((pass + 1)); }
FAIL() { echo "FAIL install/$1 ${*:2}"; fail=$((fail + 1)); }
SKIP() { echo "SKIP install/$1 ${*:2}"; skip=$((skip + 1)); }
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
	echo "TIME install/$name $(($(date +%s) - t0)) s" >&3
	return $rc
}
pkg_state() { dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | tr -d ' ' || true; }
installed() { case $(pkg_state "$1") in ii* | iF* | iU* | iH* | rc* | ri*) return 0 ;; esac; return 1; }

# --- host state: record, and put back ------------------------------------

# $STATE/installed-by-test: packages this run installed (purged at the end);
# $STATE/mok-backup/: the host's /var/lib/dkms/mok.* before the run;
# $STATE/mok-none: the host had no key pair; $STATE/test-key.sha256: ours.
restore_host() {
	local rc=0 p
	if [ -f "$STATE/rpm-scriptlets" ]; then
		# The rpm scriptlet run's payload copy, unless dpkg owns it now.
		if ! dpkg -S "/usr/src/$MODNAME-$VERSION" >/dev/null 2>&1; then
			dkms remove "$MODNAME/$VERSION" --all >/dev/null 2>&1 || true
			rm -rf "/usr/src/$MODNAME-$VERSION"
		fi
		rm -f "$STATE/rpm-scriptlets"
	fi
	if installed "$PKG"; then
		log "restore: purging $PKG"
		VIRTIO_IOMMU_FQ_FORCE_REMOVE=1 "${APT[@]}" purge -y -qq "$PKG" >"$STATE/restore-purge.log" 2>&1 || rc=1
	fi
	if [ -s "$STATE/installed-by-test" ]; then
		local pk=()
		while read -r p; do installed "$p" && pk+=("$p"); done <"$STATE/installed-by-test"
		if [ ${#pk[@]} -gt 0 ]; then
			log "restore: purging ${pk[*]}"
			"${APT[@]}" purge -y -qq "${pk[@]}" >"$STATE/restore-headers.log" 2>&1 || rc=1
		fi
		rm -f "$STATE/installed-by-test"
	fi
	if [ -f "$STATE/test-key.sha256" ]; then
		# Remove our test key pair only if it is still ours.
		if sha256sum --status -c "$STATE/test-key.sha256" 2>/dev/null; then
			rm -f /var/lib/dkms/mok.key /var/lib/dkms/mok.pub
		fi
		rm -f "$STATE/test-key.sha256"
	fi
	if [ -d "$STATE/mok-backup" ]; then
		for p in "$STATE"/mok-backup/mok.*; do
			[ -e "$p" ] && mv -f "$p" /var/lib/dkms/
		done
		rmdir "$STATE/mok-backup"
	fi
	if [ -f "$STATE/mok-none" ]; then
		# DKMS creates a key pair on its first signing build: the host had
		# none, so leave none.
		rm -f /var/lib/dkms/mok.key /var/lib/dkms/mok.pub "$STATE/mok-none"
	fi
	rm -f "$STATE/running"
	return $rc
}

on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -f "$STATE/running" ]; then
		restore_host || { echo "FAIL install/restore-host the host could not be put back (logs in $STATE)"; rc=1; }
	fi
	exit $rc
}

mkdir -p "$STATE"
if [ -f "$STATE/running" ]; then
	log "a previous run did not finish: putting the host back first"
	restore_host || die "could not restore the host after the previous run (see $STATE)"
fi
# Never touch a package or DKMS tree that is not ours to touch.
if installed "$PKG"; then
	die "$PKG is installed on this host (not by this suite): purge it first (apt-get purge $PKG)"
fi
if [ -e "/var/lib/dkms/$MODNAME" ] || compgen -G "/usr/src/$MODNAME-*" >/dev/null; then
	die "/var/lib/dkms/$MODNAME or /usr/src/$MODNAME-* exists (a manual dkms add?): remove it first (dkms remove $MODNAME/<version> --all; rm -r /usr/src/$MODNAME-*)"
fi

log "host dependencies"
KVER=$(bash "$TOP/scripts/host-deps.sh" | tail -n1)
[ -n "$KVER" ] || die "scripts/host-deps.sh printed no kernel version"
[ -e "/usr/src/linux-headers-$KVER/.config" ] || die "linux-headers-$KVER is not installed"
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

log "building the .rpm"
rpmf=""
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

# ---- 3. on this host -----------------------------------------------------

if [ -z "$deb" ]; then
	SKIP host-install "no .deb was built"
	echo "TIME install/suite $(($(date +%s) - t_start)) s"
	echo "SUITE install: $pass passed, $fail failed, $skip skipped"
	exit 1
fi

touch "$STATE/running"
trap on_exit EXIT
trap 'exit 130' INT TERM

# The kernel image (the in-tree module, the initramfs) for $KVER.
if ! installed "linux-image-$KVER" && ! installed "linux-image-$KVER-unsigned"; then
	log "installing linux-image-$KVER (the in-tree module and initramfs this suite checks)"
	"${APT[@]}" install -y -qq --no-install-recommends "linux-image-$KVER" >"$WORK/image.log" 2>&1 ||
		die "could not install linux-image-$KVER (see $WORK/image.log)"
fi
[ -f "/boot/initrd.img-$KVER" ] || update-initramfs -c -k "$KVER" >"$WORK/initrd.log" 2>&1
intree=$(find "/lib/modules/$KVER/kernel/drivers/iommu" -name 'virtio-iommu.ko*' | head -n1)
[ -n "$intree" ] || die "no in-tree virtio-iommu module in /lib/modules/$KVER/kernel"
intree_sum=$(sha256sum "$intree" | cut -d' ' -f1)

# Debian 12's newest 6.1 headers: a kernel the module cannot serve.
OLD=$(apt-cache search --names-only '^linux-headers-6\.1\.0-[0-9]+-amd64$' | awk '{print $1}' |
	sed 's/^linux-headers-//' | sort -V | tail -n1)
if [ -n "$OLD" ] && ! installed "linux-headers-$OLD"; then
	log "installing linux-headers-$OLD (unsupported kernel)"
	before=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' | awk '$2 ~ /^ii/ {print $1}' | sort)
	if timed install-old-headers "${APT[@]}" install -y --no-install-recommends "linux-headers-$OLD" \
		>"$WORK/old-headers.log" 2>&1; then
		comm -13 <(echo "$before") <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' |
			awk '$2 ~ /^ii/ {print $1}' | sort) >"$STATE/installed-by-test"
	else
		FAIL old-headers "apt-get install linux-headers-$OLD failed: $(tail -n 5 "$WORK/old-headers.log" | tr '\n' '|')"
		OLD=""
	fi
fi

# A Secure Boot key pair, DKMS's default location.
mkdir -p /var/lib/dkms
if [ -e /var/lib/dkms/mok.key ] || [ -e /var/lib/dkms/mok.pub ]; then
	mkdir -p "$STATE/mok-backup"
	mv -f /var/lib/dkms/mok.key /var/lib/dkms/mok.pub "$STATE/mok-backup/" 2>/dev/null || true
else
	touch "$STATE/mok-none"
fi
CN="virtio-iommu-fq install test $$"
openssl req -new -x509 -nodes -days 2 -subj "/CN=$CN" -newkey rsa:2048 \
	-keyout /var/lib/dkms/mok.key -outform DER -out /var/lib/dkms/mok.pub >/dev/null 2>&1
chmod 600 /var/lib/dkms/mok.key
sha256sum /var/lib/dkms/mok.key /var/lib/dkms/mok.pub >"$STATE/test-key.sha256"
serial=$(openssl x509 -inform DER -in /var/lib/dkms/mok.pub -noout -serial | sed 's/^serial=//')

# --- the rpm's DKMS scriptlets, run against this host's DKMS ---
# The payload goes where rpm would put it (/usr/src/$MODNAME-$VERSION), then
# %post (install), %posttrans, %preun and %postun (erase) run as rpm would
# run them. Their dracut steps do nothing here (Debian has no dracut), so
# the initramfs side of the rpm is covered only by the checks above.
if [ -n "$rpmf" ] && [ -f "$WORK/rpm-postinstall.sh" ]; then
	touch "$STATE/rpm-scriptlets"
	cp -a "$WORK/rpm-x/usr/src/$MODNAME-$VERSION" /usr/src/
	out=$(timed rpm-post sh "$WORK/rpm-postinstall.sh" 1 2>&1) && rc=0 || rc=$?
	grep -v readelf <<<"$out" | grep -E "^$MODNAME|Error|skipped|^This indicates" | sed 's/^/  rpm %post: /' || true
	n=$(modinfo -k "$KVER" -n virtio_iommu 2>/dev/null || true)
	ok=1
	[ "$rc" = 0 ] && [[ $n == /lib/modules/$KVER/updates/dkms/* ]] || ok=0
	if [ -n "$OLD" ]; then
		grep -q "^$MODNAME: not built for $OLD: neither CONFIG_ACPI_VIOT nor CONFIG_OF" <<<"$out" || ok=0
		grep -q "^$MODNAME: skipped kernel $OLD" <<<"$out" || ok=0
		ls /lib/modules/"$OLD"/updates/dkms/virtio-iommu.ko* >/dev/null 2>&1 && ok=0
	fi
	check rpm-scriptlet-post "%post exit $rc: modinfo -n $n${OLD:+; $OLD skipped with the reason}" test $ok = 1
	out=$(sh "$WORK/rpm-posttrans.sh" 2>&1) && rc=0 || rc=$?
	check rpm-scriptlet-posttrans "%posttrans exit $rc (no dracut here: nothing to do)" test "$rc" = 0
	out=$(timed rpm-preun sh "$WORK/rpm-preuninstall.sh" 0 2>&1) && rc=0 || rc=$?
	n=$(modinfo -k "$KVER" -n virtio_iommu 2>/dev/null || true)
	check rpm-scriptlet-preun "%preun (erase) exit $rc: modinfo -n $n; /var/lib/dkms/$MODNAME $([ -e "/var/lib/dkms/$MODNAME" ] && echo left || echo gone)" \
		bash -c "[ $rc = 0 ] && [[ '$n' == */kernel/drivers/iommu/* ]] && [ ! -e '/var/lib/dkms/$MODNAME' ]"
	out=$(sh "$WORK/rpm-postuninstall.sh" 0 2>&1) && rc=0 || rc=$?
	check rpm-scriptlet-postun "%postun (erase) exit $rc" test "$rc" = 0
	rm -rf "/usr/src/$MODNAME-$VERSION"
	rm -f "$STATE/rpm-scriptlets"
fi

# --- install with only an unsupported kernel's headers ---
# In a private mount namespace of the apt-get process tree, the 6.12
# headers are hidden (an empty directory over /lib/modules/$KVER/build), so
# the package's postinst sees the 6.1 headers only. The package is really
# installed; nothing else on the host sees the hiding. The namespace also
# sees update_initramfs=no (a copy of update-initramfs.conf over the real
# one): nothing is built here, so the initramfs would not change, and the
# regeneration (minutes on this machine) is checked in the install below.
if [ -n "$OLD" ]; then
	log "apt-get install ./$(basename "$deb") with only linux-headers-$OLD visible"
	mkdir -p "$WORK/empty"
	hdr=$(readlink -f "/lib/modules/$KVER/build")
	uic=/etc/initramfs-tools/update-initramfs.conf
	sed 's/^update_initramfs=.*/update_initramfs=no/' "$uic" >"$WORK/update-initramfs.conf"
	# shellcheck disable=SC2016 # expanded by the inner bash
	if timed apt-install-unsupported-only unshare --mount --propagation private bash -c \
		'mount --bind "$1" "$2" && mount --bind "$3" "$4" && shift 4 && exec "$@"' _ \
		"$WORK/empty" "$hdr" "$WORK/update-initramfs.conf" "$uic" \
		"${APT[@]}" install -y "$deb" >"$WORK/apt-install-old-only.log" 2>&1; then
		rc=0
	else
		rc=$?
	fi
	grep -E "^$MODNAME: |Skipped|Building|skipped|headers" "$WORK/apt-install-old-only.log" | sed 's/^/  apt (6.1 headers only): /' || true
	st=$(dkms status "$MODNAME" 2>/dev/null | grep -v readelf || true)
	ok=1
	[ "$rc" = 0 ] || ok=0
	grep -q "^$MODNAME: not built for $OLD: neither CONFIG_ACPI_VIOT nor CONFIG_OF" \
		"$WORK/apt-install-old-only.log" || ok=0
	# (apt's log lines may end in a carriage return)
	grep -q '^Skipped\.' "$WORK/apt-install-old-only.log" || ok=0
	[ "$(pkg_state "$PKG")" = ii ] || ok=0
	grep -q ': installed' <<<"$st" && ok=0
	n=$(modinfo -k "$KVER" -n virtio_iommu 2>/dev/null || true)
	[[ $n == */kernel/drivers/iommu/* ]] || ok=0
	check install-unsupported-only "apt-get install exit $rc, package state '$(pkg_state "$PKG")'; postinst: '$(grep -m1 "^$MODNAME: not built for $OLD" "$WORK/apt-install-old-only.log")', then 'Skipped.'; dkms status: ${st:-none}; modinfo -n: $n" \
		test $ok = 1
fi

# --- install (over the previous one, if any): builds for $KVER ---
log "apt-get install ./$(basename "$deb")"
if timed apt-install "${APT[@]}" install -y --reinstall "$deb" >"$WORK/apt-install.log" 2>&1; then
	PASS apt-install "apt-get install ./$(basename "$deb") exit 0"
else
	FAIL apt-install "$(grep -v readelf "$WORK/apt-install.log" | tail -n 15 | tr '\n' '|')"
fi
grep -E "^$MODNAME: |Skipped|Building|Installing to|update-initramfs" "$WORK/apt-install.log" | sed 's/^/  apt: /' || true

dkms_st=$(dkms status "$MODNAME" 2>/dev/null | grep -v readelf || true)
echo "  dkms status: $dkms_st"
check dkms-installed "$(grep "$KVER" <<<"$dkms_st" || echo "not installed for $KVER")" \
	grep -q "$MODNAME/$VERSION, $KVER, x86_64: installed" <<<"$dkms_st"
# viommu-fq: installed, runs, has its man page; this host has no
# virtio-iommu, so status must say so and fail.
vh_rc=0
vh=$(/usr/sbin/viommu-fq --help 2>&1) || vh_rc=$?
vs_rc=0
vs=$(/usr/sbin/viommu-fq status 2>&1) || vs_rc=$?
vm=$(man -w viommu-fq 2>/dev/null || true)
# shellcheck disable=SC2016 # the inner shell expands its own arguments
check tool-installed "/usr/sbin/viommu-fq $(stat -c %A /usr/sbin/viommu-fq 2>/dev/null): --help exit $vh_rc ($(head -n1 <<<"$vh")); status exit $vs_rc ($vs); man -w: ${vm:-none}" \
	bash -c '[ -x /usr/sbin/viommu-fq ] && [ "$1" = 0 ] && grep -q "^Usage: viommu-fq status" <<<"$2" &&
		[ "$3" = 1 ] && grep -q "no virtio-iommu-fq instance" <<<"$4" && [ -n "$5" ]' \
	_ "$vh_rc" "$vh" "$vs_rc" "$vs" "$vm"
mi=$(modinfo -k "$KVER" virtio_iommu 2>&1 || true)
grep -E '^(filename|version|description|srcversion|vermagic|signer|sig_key|sig_hashalgo):' <<<"$mi" | sed 's/^/  modinfo: /'
fname=$(modinfo -k "$KVER" -F filename virtio_iommu 2>/dev/null || true)
check modinfo-filename "modinfo -k $KVER virtio_iommu: $fname" \
	bash -c "[[ '$fname' == /lib/modules/$KVER/updates/dkms/virtio-iommu.ko* ]]"
check modinfo-version "version: $(modinfo -k "$KVER" -F version virtio_iommu 2>/dev/null)" \
	test "$(modinfo -k "$KVER" -F version virtio_iommu 2>/dev/null)" = "$VERSION"
desc=$(modinfo -k "$KVER" -F description virtio_iommu 2>/dev/null || true)
check modinfo-description "description: $desc" bash -c "[[ '$desc' == virtio-iommu-fq* ]]"
n=$(modinfo -k "$KVER" -n virtio_iommu 2>/dev/null || true)
check modinfo-n "modinfo -k $KVER -n virtio_iommu: $n" bash -c "[[ '$n' == /lib/modules/$KVER/updates/dkms/* ]]"
sd=$(modprobe -S "$KVER" --show-depends virtio_iommu 2>&1 || true)
echo "  modprobe -S $KVER --show-depends virtio_iommu: $sd"
check modprobe-show-depends "$(tail -n1 <<<"$sd")" \
	bash -c "grep -q '^insmod /lib/modules/$KVER/updates/dkms/virtio-iommu.ko' <<<'$sd' && ! grep -q 'kernel/drivers/iommu' <<<'$sd'"
check intree-untouched "the in-tree $intree is still in place, unchanged" \
	test "$(sha256sum "$intree" 2>/dev/null | cut -d' ' -f1)" = "$intree_sum"
lsi=$(lsinitramfs "/boot/initrd.img-$KVER" 2>/dev/null | grep 'virtio-iommu\.ko' || true)
echo "  lsinitramfs /boot/initrd.img-$KVER: ${lsi:-no virtio-iommu.ko}"
check initramfs-has-ours "lsinitramfs: $lsi" \
	bash -c "grep -q 'updates/dkms/virtio-iommu\.ko' <<<'$lsi' && ! grep -q 'kernel/drivers/iommu/virtio-iommu' <<<'$lsi'"
# The module in the initramfs is the DKMS build, byte for byte.
rm -rf "$WORK/initrd-x" && mkdir -p "$WORK/initrd-x"
if unmkinitramfs "/boot/initrd.img-$KVER" "$WORK/initrd-x" 2>/dev/null; then
	im=$(find "$WORK/initrd-x" -path '*updates/dkms/virtio-iommu.ko*' | head -n1)
	check initramfs-module-is-dkms-build "srcversion in the initramfs $(modinfo -F srcversion "$im" 2>/dev/null) = installed $(modinfo -k "$KVER" -F srcversion virtio_iommu 2>/dev/null)" \
		test -n "$im" -a "$(modinfo -F srcversion "$im" 2>/dev/null)" = "$(modinfo -k "$KVER" -F srcversion virtio_iommu 2>/dev/null)"
else
	FAIL initramfs-module-is-dkms-build "unmkinitramfs failed"
fi
rm -rf "$WORK/initrd-x"
signer=$(modinfo -k "$KVER" -F signer virtio_iommu 2>/dev/null || true)
sigkey=$(modinfo -k "$KVER" -F sig_key virtio_iommu 2>/dev/null | tr -d ':' || true)
check secure-boot-signature "signer '$signer', sig_key $sigkey = serial of /var/lib/dkms/mok.pub ($serial)" \
	bash -c "[ '$signer' = '$CN' ] && [ '${sigkey^^}' = '${serial^^}' ]"

# --- DKMS's kernel hooks: new kernels ---
if [ -n "$OLD" ]; then
	out=$(timed hook-unsupported /etc/kernel/header_postinst.d/dkms "$OLD" 2>&1) && rc=0 || rc=$?
	grep -v readelf <<<"$out" | sed 's/^/  header_postinst.d\/dkms: /'
	check hook-unsupported-kernel "exit $rc; reason given; nothing installed for $OLD" \
		bash -c "[ $rc = 0 ] && grep -q '^$MODNAME: not built for $OLD: neither CONFIG_ACPI_VIOT nor CONFIG_OF' <<<\"\$1\" &&
			! ls /lib/modules/$OLD/updates/dkms/virtio-iommu.ko* >/dev/null 2>&1" _ "$out"
	out=$(dkms build -m "$MODNAME" -v "$VERSION" -k "$OLD" 2>&1) && rc=0 || rc=$?
	check build-unsupported-kernel "dkms build -k $OLD: exit $rc (77 = skipped), $(grep -c "^$MODNAME: not built" <<<"$out") reason line(s)" \
		bash -c "[ $rc = 77 ] && grep -q '^$MODNAME: not built for $OLD' <<<\"\$1\"" _ "$out"
	check install-skipped-unsupported "the package's postinst skipped $OLD with the reason" \
		grep -q "^$MODNAME: not built for $OLD: " "$WORK/apt-install.log"
else
	SKIP hook-unsupported-kernel "no linux-headers-6.1.*-amd64 in the archive"
fi
# A kernel gaining the module through the same hook (as after a kernel
# upgrade): drop the build for $KVER, run the hook, expect it back.
dkms unbuild "$MODNAME/$VERSION" -k "$KVER" >"$WORK/dkms-unbuild.log" 2>&1 || true
gone=$(modinfo -k "$KVER" -n virtio_iommu 2>/dev/null || true)
out=$(timed hook-supported /etc/kernel/header_postinst.d/dkms "$KVER" 2>&1) && rc=0 || rc=$?
back=$(modinfo -k "$KVER" -n virtio_iommu 2>/dev/null || true)
check hook-supported-kernel "after dkms unbuild: $gone; header_postinst.d/dkms $KVER exit $rc: $back" \
	bash -c "[[ '$gone' == */kernel/drivers/iommu/* ]] && [ $rc = 0 ] && [[ '$back' == */updates/dkms/* ]]"

# --- the DKMS-built module in the end-to-end guest ---
if [ $E2E = 0 ]; then
	SKIP e2e-boot "--no-e2e given"
elif [[ "$back" != */updates/dkms/* ]]; then
	FAIL e2e-boot "no DKMS-built module to boot"
else
	ko=$WORK/virtio-iommu.ko
	case $back in
	*.xz) xz -dc "$back" >"$ko" ;;
	*.zst) zstd -qdc "$back" >"$ko" ;;
	*.gz) gzip -dc "$back" >"$ko" ;;
	*) cp "$back" "$ko" ;;
	esac
	gk=$("$TOP/scripts/guest-kernels.sh" bookworm 2>"$WORK/guest-kernels.err" | tail -n1 || true)
	if [ "$gk" != "$KVER" ]; then
		FAIL e2e-boot "the e2e guest kernel is '$gk', the DKMS build is for $KVER"
	elif grep -q -- '--ko' "$TOP/tests/e2e/run.sh"; then
		out=$(timed e2e-boot bash "$TOP/tests/e2e/run.sh" --ko "$ko" --boots main bookworm 2>"$WORK/e2e.err") && rc=0 || rc=$?
		echo "$out" | grep -E '^(PASS|FAIL|SKIP|SUITE)' | sed 's/^/  e2e: /'
		line=$(grep '^SUITE ' <<<"$out" | tail -n1)
		check e2e-boot "tests/e2e/run.sh --ko (DKMS build): ${line:-no SUITE line}" \
			bash -c "[ $rc = 0 ] && grep -qE ' [1-9][0-9]* passed, 0 failed' <<<'$line'"
	else
		# The e2e runner's own pieces (tests/lib, tests/e2e/guest.sh), with
		# the DKMS-built module in place of a fresh build.
		(
			# shellcheck source=tests/lib/initramfs.sh
			. "$TOP/tests/lib/initramfs.sh"
			# shellcheck source=tests/lib/vm.sh
			. "$TOP/tests/lib/vm.sh"
			tree=$VIOMMU_CACHE/kernels/$KVER
			d=$WORK/e2e
			mkdir -p "$d"
			viommu_initramfs "$d/initrd.img" "$tree" "$KVER" "$TOP/tests/e2e/guest.sh" \
				"$ko:lib/modules/ours/virtio-iommu.ko" >"$d/initramfs.log" 2>&1
			append="viommu_role=main viommu_order=before viommu_shutdown=poweroff viommu_mod=ours"
			append+=" viommu_expect_type=DMA-FQ viommu_fio_size=32M"
			append+=" viommu_version=$(modinfo -F version "$ko") viommu_srcversion=$(modinfo -F srcversion "$ko")"
			t0=$(date +%s)
			ok=1
			viommu_vm_run "$d/main" "$tree/boot/vmlinuz-$KVER" "$d/initrd.img" "$append" >"$d/vm.log" 2>&1 || ok=0
			viommu_vm_results "$d/main" >"$d/results.txt"
			echo "TIME install/e2e-boot $(($(date +%s) - t0)) s ($VM_ATTEMPTS)" >&2
			sed 's/^/  e2e: /' "$d/results.txt" >&2
			echo "$VM_PASS $VM_FAIL $VM_SKIP"
			[ $ok = 1 ] && grep -q '^GUEST-DONE' "$d/main/results.log" &&
				[ "$VM_FAIL" = 0 ] && [ "$VM_PASS" -gt 0 ] &&
				grep -q '^PASS module-ours' "$d/results.txt" && grep -q '^PASS fio' "$d/results.txt"
		) >"$WORK/e2e-counts.txt" 2>"$WORK/e2e-out.txt" && rc=0 || rc=$?
		cat "$WORK/e2e-out.txt"
		read -r vp vf vs <"$WORK/e2e-counts.txt" 2>/dev/null || true
		check e2e-boot "DKMS-built .ko in the 6.12 guest (tests/lib + tests/e2e/guest.sh, main boot): ${vp:-?} guest cases passed, ${vf:-?} failed, ${vs:-?} skipped; module-ours and fio verify among the passes (logs: $WORK/e2e)" \
			test "$rc" = 0
	fi
fi

# --- purge ---
# The guard would refuse only on a machine booting behind a virtio-iommu.
log "apt-get purge $PKG"
if timed apt-purge "${APT[@]}" purge -y "$PKG" >"$WORK/apt-purge.log" 2>&1; then
	PASS apt-purge "apt-get purge $PKG exit 0"
else
	FAIL apt-purge "$(grep -v readelf "$WORK/apt-purge.log" | tail -n 15 | tr '\n' '|')"
fi
check purge-dpkg-state "dpkg status: '$(pkg_state "$PKG")' (not installed, no config files)" \
	bash -c "! dpkg-query -W -f='\${db:Status-Abbrev}' '$PKG' 2>/dev/null | grep -qE '^(ii|rc|i|r)'"
left=()
while read -r f; do
	case $f in */) continue ;; esac
	[ -e "$f" ] && left+=("$f")
done <"$WORK/deb-files.txt"
for f in "/usr/src/$MODNAME-$VERSION" "/var/lib/dkms/$MODNAME" /var/lib/dpkg/info/"$PKG".* \
	/lib/modules/*/updates/dkms/virtio-iommu.ko*; do
	[ -e "$f" ] && left+=("$f")
done
check purge-no-files "no file of the package, the DKMS tree or the DKMS modules left${left[*]:+: ${left[*]}}" \
	test ${#left[@]} -eq 0
n=$(modinfo -k "$KVER" -n virtio_iommu 2>/dev/null || true)
check purge-modinfo-intree "modinfo -k $KVER -n virtio_iommu: $n" \
	bash -c "[[ '$n' == /lib/modules/$KVER/kernel/drivers/iommu/virtio-iommu.ko* ]]"
sd=$(modprobe -S "$KVER" --show-depends virtio_iommu 2>&1 || true)
check purge-modprobe-intree "$(tail -n1 <<<"$sd")" \
	grep -q "^insmod /lib/modules/$KVER/kernel/drivers/iommu/virtio-iommu.ko" <<<"$sd"
check purge-intree-untouched "the in-tree module is unchanged" \
	test "$(sha256sum "$intree" 2>/dev/null | cut -d' ' -f1)" = "$intree_sum"
lsi=$(lsinitramfs "/boot/initrd.img-$KVER" 2>/dev/null | grep 'virtio-iommu\.ko' || true)
check purge-initramfs-rebuilt "lsinitramfs: ${lsi:-no virtio-iommu.ko} (this host has no virtio-iommu and no admin entry)" \
	bash -c "! grep -q 'updates/dkms' <<<'$lsi'"

log "restoring the host"
if restore_host; then
	PASS restore-host "host back as before: $PKG not installed, test headers purged, /var/lib/dkms/mok.* restored"
else
	FAIL restore-host "see $STATE/restore-*.log"
fi
trap - EXIT INT TERM

echo "TIME install/suite $(($(date +%s) - t_start)) s"
echo "SUITE install: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
