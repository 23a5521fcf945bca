#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build the noarch DKMS rpm (and its source rpm) of virtio-iommu-fq with
# rpmbuild (Debian's rpm package provides it).
#
#   packaging/build-rpm.sh [TREE [OUTDIR]]
#
# TREE defaults to the repository, OUTDIR to TREE/packaging/out. The version
# is TREE/VERSION. Prints the path of the binary rpm on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
tree=$(cd "${1:-$here/..}" && pwd)
out=${2:-$tree/packaging/out}
name=virtio-iommu-fq

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v rpmbuild >/dev/null || die "rpmbuild missing: run scripts/host-deps.sh (package rpm)"
[ -r "$tree/VERSION" ] || die "no VERSION file in $tree"
version=$(tr -d '[:space:]' <"$tree/VERSION")
# rpm's Version may not contain '-'.
[[ $version =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || die "VERSION '$version' is not a valid rpm version"
compgen -G "$tree/src/*.c" >/dev/null || die "no src/*.c in $tree"
[ -r "$tree/docs/INSTALL.md" ] || die "no docs/INSTALL.md in $tree"

mkdir -p "$out"
out=$(cd "$out" && pwd)
top=$out/rpmbuild
rm -rf "$top"
mkdir -p "$top"/{SOURCES,SPECS,BUILD,RPMS,SRPMS}

# Source tarball: the files the package installs, in the repository layout.
stage=$top/stage/$name-$version
mkdir -p "$stage/src" "$stage/packaging/dkms" "$stage/packaging/rpm"
cp "$tree/dkms.conf" "$tree/VERSION" "$stage/"
cp -p "$tree/src/Kbuild" "$stage/src/"
for f in "$tree"/src/*.c "$tree"/src/*.h "$tree"/src/*.sh; do
	case $f in
	*.mod.c | */\*.*) continue ;; # modpost output; no match
	esac
	cp -p "$f" "$stage/src/"
done
cp "$tree/packaging/dkms/kernel-check.sh" "$stage/packaging/dkms/"
cp "$here/rpm/90-virtio-iommu-fq.conf" "$stage/packaging/rpm/"
mkdir -p "$stage/tools"
cp -p "$tree/tools/viommu-fq" "$tree/tools/viommu-fq.8" "$stage/tools/"
mkdir -p "$stage/docs"
cp "$tree/docs/INSTALL.md" "$stage/docs/"
tar -C "$top/stage" --sort=name --owner=0 --group=0 --numeric-owner \
	-czf "$top/SOURCES/$name-$version.tar.gz" "$name-$version"

if epoch=$(git -C "$tree" log -1 --format=%ct 2>/dev/null) && [ -n "$epoch" ]; then
	:
else
	epoch=$(date +%s)
fi
cldate=$(LC_ALL=C date -u -d "@$epoch" '+%a %b %d %Y')
awk -v guard="$here/common/boot-guard.sh" -v ver="$version" -v cl="$cldate" '
	# "%" starts an rpm macro: the pasted shell code gets "%%".
	/^#BOOT_GUARD#$/ {
		while ((getline l < guard) > 0)
			if (l !~ /^# SPDX/) { gsub(/%/, "%%", l); print l }
		next
	}
	{ gsub(/@VERSION@/, ver); gsub(/@CHANGELOG_DATE@/, cl); print }' \
	"$here/rpm/$name-dkms.spec.in" >"$top/SPECS/$name-dkms.spec"

log "rpmbuild $name $version"
SOURCE_DATE_EPOCH=$epoch rpmbuild --define "_topdir $top" --define "packager virtio-iommu-fq maintainers <virtio-iommu-fq@lists.virtio-iommu-fq.org>" --nodeps -ba "$top/SPECS/$name-dkms.spec" \
	>"$top/rpmbuild.log" 2>&1 || {
	tail -n 30 "$top/rpmbuild.log" >&2
	die "rpmbuild failed (log: $top/rpmbuild.log)"
}
rpm=$top/RPMS/noarch/$name-dkms-$version-1.noarch.rpm
[ -f "$rpm" ] || die "no $rpm produced"
rm -f "$out/$name-dkms-"*.noarch.rpm "$out/$name-dkms-"*.src.rpm
cp "$rpm" "$top"/SRPMS/*.src.rpm "$out/"
echo "$out/${rpm##*/}"
