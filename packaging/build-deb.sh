#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build the Debian source and binary packages of virtio-iommu-fq from a tree.
#
#   packaging/build-deb.sh [--no-lintian] [TREE [OUTDIR]]
#
# TREE defaults to the repository, OUTDIR to TREE/packaging/out. The version
# is TREE/VERSION. Prints the path of the .deb on stdout; the source package,
# .changes and lintian report (lintian-deb.txt) stay in OUTDIR.
set -euo pipefail

lint=1
if [ "${1:-}" = --no-lintian ]; then
	lint=0
	shift
fi
here=$(cd "$(dirname "$0")" && pwd)
tree=$(cd "${1:-$here/..}" && pwd)
out=${2:-$tree/packaging/out}
name=virtio-iommu-fq
pkg=$name-dkms

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for t in dpkg-buildpackage dh dh_dkms; do
	command -v "$t" >/dev/null || die "$t missing: run scripts/host-deps.sh (debhelper dh-dkms dpkg-dev)"
done
[ -r "$tree/VERSION" ] || die "no VERSION file in $tree"
version=$(tr -d '[:space:]' <"$tree/VERSION")
# A native Debian version: no hyphen, starts with a digit.
[[ $version =~ ^[0-9][0-9A-Za-z.+~]*$ ]] ||
	die "VERSION '$version' is not a valid native Debian version"
[ -r "$tree/src/Kbuild" ] || die "no src/Kbuild in $tree"
compgen -G "$tree/src/*.c" >/dev/null || die "no src/*.c in $tree"

mkdir -p "$out"
out=$(cd "$out" && pwd)
build=$out/build-deb
src=$build/$name-$version
rm -rf "$build"
mkdir -p "$src/src" "$src/packaging/dkms"

# The shipped tree: what DKMS needs and nothing else.
cp "$tree/dkms.conf" "$tree/VERSION" "$src/"
# src/: Kbuild, C sources and headers, and the helper scripts Kbuild runs
# (compat probes); never build products.
cp -p "$tree/src/Kbuild" "$src/src/"
for f in "$tree"/src/*.c "$tree"/src/*.h "$tree"/src/*.sh; do
	case $f in
	*.mod.c | */\*.*) continue ;; # modpost output; no match
	esac
	cp -p "$f" "$src/src/"
done
cp "$tree/packaging/dkms/kernel-check.sh" "$src/packaging/dkms/"
# The viommu-fq command and its man page (/usr/sbin, section 8).
mkdir -p "$src/tools"
cp -p "$tree/tools/viommu-fq" "$tree/tools/viommu-fq.8" "$src/tools/"
cp -a "$here/deb" "$src/debian"

# Maintainer scripts: paste the shared boot guard into the templates.
for t in "$src"/debian/*.in; do
	awk -v guard="$here/common/boot-guard.sh" '
		/^#BOOT_GUARD#$/ { while ((getline l < guard) > 0) if (l !~ /^# SPDX/) print l; next }
		{ print }' "$t" >"${t%.in}"
	rm "$t"
done

# debian/changelog from VERSION; the date is that of the last commit so
# that rebuilding the same commit gives the same package.
if date_r=$(git -C "$tree" log -1 --format=%cD 2>/dev/null) && [ -n "$date_r" ]; then
	rev=$(git -C "$tree" rev-parse --short HEAD)
	dirty=$(git -C "$tree" status --porcelain -- dkms.conf VERSION src packaging 2>/dev/null | head -n 1)
	what="Built from commit $rev${dirty:+ with local changes}."
else
	date_r=$(date -R)
	what="Built from a tree without git history."
fi
cat >"$src/debian/changelog" <<EOT
$name ($version) unstable; urgency=medium

  * Release $version. $what

 -- virtio-iommu-fq maintainers <virtio-iommu-fq@lists.virtio-iommu-fq.org>  $date_r
EOT

log "dpkg-buildpackage $name $version"
(cd "$src" && dpkg-buildpackage --no-sign -d -sa >"$build/dpkg-buildpackage.log" 2>&1) || {
	tail -n 30 "$build/dpkg-buildpackage.log" >&2
	die "dpkg-buildpackage failed (log: $build/dpkg-buildpackage.log)"
}
deb=${pkg}_${version}_all.deb
[ -f "$build/$deb" ] || die "no $deb produced"
rm -f "$out/${pkg}"_*_all.deb
cp "$build/$deb" "$out/"
cp "$build/${name}_${version}".dsc "$build/${name}_${version}".tar.* "$out/"
cp "$build/${name}_${version}_"*.changes "$out/"

if [ $lint = 1 ]; then
	command -v lintian >/dev/null || die "lintian missing"
	log "lintian"
	# --fail-on error,warning: an unjustified warning fails the build.
	if ! lintian --info --display-info --pedantic --fail-on error,warning \
		"$build/${name}_${version}_"*.changes >"$out/lintian-deb.txt" 2>&1; then
		cat "$out/lintian-deb.txt" >&2
		die "lintian found problems (see $out/lintian-deb.txt)"
	fi
	sed 's/^/lintian: /' "$out/lintian-deb.txt" >&2
fi
echo "$out/$deb"
