# SPDX-License-Identifier: GPL-2.0-only
#
# virtio-iommu-fq: top-level make targets. See README.md.

KVER ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KVER)/build
VERSION := $(shell cat VERSION)
CACHE ?= /var/cache/virtio-iommu-fq

.PHONY: all modules clean demo demo-arm64 check check-all bench kunit

all: modules

modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR)/src VIOMMU_FQ_VERSION=$(VERSION) modules

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR)/src clean

# The main job: set up a fresh machine, build the module, boot a guest with it.
demo:
	bash scripts/demo.sh

demo-arm64:
	bash scripts/demo.sh arm64

# The benchmark (see docs/BENCHMARKS.md); BENCH_ARGS="--rounds 3" etc.
bench:
	bash bench/run.sh $(BENCH_ARGS)

# KUnit suites only.
kunit:
	bash kunit/run.sh

# Every test suite; prints each runner's summary and a final "N passed, N failed".
check:
	bash tests/run-all.sh

# make check, then the new e2e boots again on the kernel's own driver (the
# comparison column: figures only).
check-all:
	bash tests/run-all.sh --all

-include packaging/packaging.mk
