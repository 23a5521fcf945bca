#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Guest kernel instructions per I/O, by function, from bench/run.sh --insn-profile.

The TCG plugin (bench/plugin/insn-count.c, prof=) appends, at each marker,
the execution count of every kernel translation block. The difference
between the markers around a fio job, times the instructions of each block,
divided by the job's I/Os, is what every kernel function cost per I/O:
exact, and independent of the host. Blocks are named with the function
addresses the guest itself reported for that boot (its /proc/kallsyms,
modules included, which bench/guest.sh writes to the virtio-blk disk).

    bench/insn-profile.py [--top N] OUT

OUT is a bench/run.sh results directory. Prints Markdown: for each job, the
configurations side by side by component (core kernel, each module) and by
function (the functions whose cost differs most between configurations).
"""
import argparse
import bisect
import collections
import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402  (bench/report.py: one reading of a boot's results)


def read_kallsyms(path):
    """Sorted [(address, component, function)] of one boot."""
    syms = []
    with open(path, errors="replace") as f:
        for line in f:
            p = line.split()
            if len(p) < 3:
                continue
            comp = p[3].strip("[]") if len(p) > 3 else "kernel"
            syms.append((int(p[0], 16), comp, p[2]))
    syms.sort()
    return syms


def symbolizer(syms, ours):
    addrs = [a for a, _, _ in syms]

    def lookup(vaddr):
        i = bisect.bisect_right(addrs, vaddr) - 1
        if i < 0:
            return "kernel", "?"
        comp = syms[i][1]
        if ours and comp == "virtio_iommu":
            comp = "virtio_iommu (this module)"
        return comp, syms[i][2]
    return lookup


def read_prof(path):
    """[(mark id, {vaddr: (insns, execs)})] in file order."""
    dumps, cur = [], None
    with open(path) as f:
        for line in f:
            if line.startswith("prof "):
                cur = {}
                dumps.append((int(line.split()[1]), cur))
            elif line.startswith("end"):
                cur = None
            elif cur is not None:
                a, n, e = line.split()
                cur[int(a, 16)] = (int(n), int(e))
    return dumps


def read_run(rundir):
    """Config, driver, fio job tags in order, I/Os per job, steady-state I/Os
    per job: report.py's reading of the boot."""
    run = report.parse_run(rundir)
    drv = next((m.group(1) for m in (re.match(r"bench config \S+: drv=(\S+)", i)
                                     for i in run["info"]) if m), None)
    ios = {tag: f["ios"] for tag, f in run["figures"].items() if f}
    return run["config"], drv, list(run["fio"]), ios, run["steady_ios"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()

    # (job, config) -> function -> instructions; and -> I/Os, boots
    per_fn = collections.defaultdict(collections.Counter)
    per_comp = collections.defaultdict(collections.Counter)
    ios_of = collections.Counter()
    boots = collections.Counter()
    order = []
    for rundir in sorted(glob.glob(os.path.join(a.out, "*-*"))):
        ksyms = os.path.join(rundir, "kallsyms.txt")
        if not all(os.path.isfile(os.path.join(rundir, f)) and
                   os.path.getsize(os.path.join(rundir, f))
                   for f in ("prof-blocks.txt", "kallsyms.txt", "results.log")):
            continue
        cfg, drv, tags, ios, steady = read_run(rundir)
        if not cfg:
            continue
        if cfg not in order:
            order.append(cfg)
        lookup = symbolizer(read_kallsyms(ksyms), drv == "ours")
        dumps = read_prof(os.path.join(rundir, "prof-blocks.txt"))
        # The steady state of each job (marks 3 and 4, with the disk's
        # I/Os meanwhile), or else the whole job (marks 1 and 2).
        use_steady = bool(steady)
        first, last = (3, 4) if use_steady else (1, 2)
        start, j = None, 0
        for i in range(len(dumps)):
            if dumps[i][0] == first:
                start = dumps[i][1]
            if dumps[i][0] != last or start is None:
                continue
            if j >= len(tags):
                break
            tag = tags[j]
            j += 1
            n_ios = steady.get(tag) if use_steady else ios.get(tag)
            if not n_ios:
                continue
            before, after, start = start, dumps[i][1], None
            key = (tag, cfg)
            for vaddr, (n, e) in after.items():
                d = e - before.get(vaddr, (n, 0))[1]
                if d <= 0:
                    continue
                comp, fn = lookup(vaddr)
                per_fn[key][(comp, fn)] += n * d
                per_comp[key][comp] += n * d
            ios_of[key] += n_ios
            boots[key] += 1

    jobs = sorted({k[0] for k in ios_of})
    if not jobs:
        sys.exit("no profile in %s (bench/run.sh --insn-profile)" % a.out)
    print("# Guest kernel instructions per I/O, by function\n")
    print("From `bench/run.sh --insn-profile` in `%s`: a TCG plugin counts every "
          "kernel block the guest executes in each fio job's steady state (from "
          "0.5 s after the disk's first I/O to 1 s before the job's end; the whole "
          "job when it is shorter than 3 s); instructions per I/O are summed over the boots of "
          "a configuration and divided by the I/Os the disk completed "
          "meanwhile." % a.out)
    for job in jobs:
        cfgs = [c for c in order if (job, c) in ios_of]
        print("\n## Job %s\n" % job)
        print("| component | " + " | ".join(
            "%s (%d boot%s)" % (c, boots[(job, c)], "" if boots[(job, c)] == 1 else "s")
            for c in cfgs) + " |")
        print("|---|" + "---|" * len(cfgs))
        comps = sorted({k for c in cfgs for k in per_comp[(job, c)]},
                       key=lambda k: -max(per_comp[(job, c)][k] / ios_of[(job, c)]
                                          for c in cfgs))
        for comp in comps:
            vals = [per_comp[(job, c)][comp] / ios_of[(job, c)] for c in cfgs]
            if max(vals) < 20:
                continue
            print("| %s | %s |" % (comp, " | ".join("%.0f" % v for v in vals)))
        print("| **total** | %s |" % " | ".join(
            "**%.0f**" % (sum(per_comp[(job, c)].values()) / ios_of[(job, c)])
            for c in cfgs))
        # The functions whose cost differs most between configurations, and
        # the most expensive ones.
        fns = {k for c in cfgs for k in per_fn[(job, c)]}

        def cost(k, c):
            return per_fn[(job, c)][k] / ios_of[(job, c)]
        spread = sorted(fns, key=lambda k: -(max(cost(k, c) for c in cfgs) -
                                             min(cost(k, c) for c in cfgs)))
        top = sorted(fns, key=lambda k: -max(cost(k, c) for c in cfgs))
        pick = []
        for k in spread[:a.top] + top[:a.top // 2]:
            if k not in pick:
                pick.append(k)
        pick.sort(key=lambda k: -max(cost(k, c) for c in cfgs))
        print("\nFunctions (instructions per I/O): the %d whose cost differs most "
              "between the configurations, and the %d most expensive.\n"
              % (a.top, a.top // 2))
        print("| function | component | " + " | ".join(cfgs) + " |")
        print("|---|---|" + "---|" * len(cfgs))
        for k in pick:
            print("| `%s` | %s | %s |" % (k[1], k[0], " | ".join(
                "%.0f" % cost(k, c) for c in cfgs)))


if __name__ == "__main__":
    main()
