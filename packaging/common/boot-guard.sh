# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=sh
#
# virtio-iommu-fq boot guard: shell functions pasted into the packages'
# removal scripts (the deb's prerm, the rpm's %preun) when they are built.
#
# Removing the package rebuilds the initramfs. Neither Debian's
# initramfs-tools nor dracut put virtio_iommu into an initramfs by themselves,
# so on a machine whose root (or /usr) disk sits behind a virtio-iommu the
# rebuilt initramfs would stop at "/dev/... does not exist". The removal
# therefore refuses on such a machine until the administrator has put the
# in-tree driver into the initramfs through the generator's own
# configuration, which the package must not edit (Debian policy 10.7.4).

# Everything below reads ${VIOMMU_FQ_SYSROOT}/sys and /proc/self/mountinfo;
# the variable is empty except in the package's own unit test.

# Succeeds if the sysfs device directory $1, or one of its parents, is
# translated by a virtio-iommu (virtio device ID 23, 0x0017).
viommu_fq_behind_viommu() {
	_p=$1
	while [ -n "$_p" ] && [ "$_p" != "${VIOMMU_FQ_SYSROOT:-}/sys/devices" ] &&
	      [ "$_p" != "${VIOMMU_FQ_SYSROOT:-}" ] && [ "$_p" != / ]; do
		if [ -L "$_p/iommu" ]; then
			_i=$(readlink -f "$_p/iommu")
			# .../virtioN/iommu/virtioN: the parent is the virtio device.
			if [ "$(cat "${_i%/iommu/*}/device" 2>/dev/null)" = 0x0017 ]; then
				return 0
			fi
		fi
		_p=${_p%/*}
	done
	return 1
}

# Prints the block devices (MAJ:MIN) that the initramfs must reach: those
# mounted at / and /usr, and, through device-mapper and md, what they sit on.
viommu_fq_boot_devices() {
	awk '$5 == "/" || $5 == "/usr" { print $3 }' \
		"${VIOMMU_FQ_SYSROOT:-}/proc/self/mountinfo" 2>/dev/null |
	while read -r _mm; do
		_todo=$_mm
		while [ -n "$_todo" ]; do
			# shellcheck disable=SC2086 # split the work list on purpose
			set -- $_todo
			_d=$1
			shift
			_todo=$*
			echo "$_d"
			for _s in "${VIOMMU_FQ_SYSROOT:-}/sys/dev/block/$_d"/slaves/*; do
				[ -e "$_s/dev" ] && _todo="$_todo $(cat "$_s/dev")"
			done
		done
	done
}

# Prints "/dev/<name> (MAJ:MIN)" for each boot device behind a
# virtio-iommu; fails if there is none.
viommu_fq_boot_behind_viommu() {
	_found=1
	for _mm in $(viommu_fq_boot_devices); do
		_dev=$(readlink -f "${VIOMMU_FQ_SYSROOT:-}/sys/dev/block/$_mm" 2>/dev/null) || continue
		[ -n "$_dev" ] || continue
		if viommu_fq_behind_viommu "$_dev"; then
			echo "/dev/${_dev##*/} ($_mm)"
			_found=0
		fi
	done
	return $_found
}

# Succeeds if one of the given configuration files (globs allowed) names
# virtio_iommu on a line that is not a comment.
viommu_fq_named_in() {
	for _f in "$@"; do
		[ -f "$_f" ] || continue
		grep -Eqs '^[^#]*(^|[^[:alnum:]_-])virtio[-_]iommu([^[:alnum:]_-]|$)' "$_f" && return 0
	done
	return 1
}

# $1: what the administrator should do (printed). Remaining arguments: the
# initramfs generator's configuration files that may name virtio_iommu.
# Fails (and says why) if removing the package would strand this machine.
viommu_fq_removal_guard() {
	_fix=$1
	shift
	if [ "${VIRTIO_IOMMU_FQ_FORCE_REMOVE:-0}" = 1 ]; then
		return 0
	fi
	_devs=$(viommu_fq_boot_behind_viommu) || return 0
	viommu_fq_named_in "$@" && return 0
	cat >&2 <<EOT
virtio-iommu-fq: refusing to remove the package: this machine boots from a
disk behind a virtio-iommu:
$(echo "$_devs" | sed 's/^/    /')
Removing the package rebuilds the initramfs, and the initramfs generator does
not add virtio_iommu by itself: the next boot would stop in the initramfs
("... does not exist"). Keep the in-tree driver in the initramfs first:
    $_fix
then remove the package again. To remove it anyway, set
VIRTIO_IOMMU_FQ_FORCE_REMOVE=1 in the environment of the removal command.
EOT
	return 1
}
