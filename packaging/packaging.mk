# SPDX-License-Identifier: GPL-2.0-only
#
# Package targets, included by the top-level Makefile:
#   make deb   packaging/out/virtio-iommu-fq-dkms_<VERSION>_all.deb (+ source
#              package, lintian report packaging/out/lintian-deb.txt)
#   make rpm   packaging/out/virtio-iommu-fq-dkms-<VERSION>-1.noarch.rpm (+ src.rpm)
# The version is the VERSION file's.

.PHONY: deb rpm packages

deb:
	bash packaging/build-deb.sh

rpm:
	bash packaging/build-rpm.sh

packages: deb rpm
