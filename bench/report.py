#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Benchmark report: reads the run directories bench/run.sh left in a results
directory and writes results.json (every run, raw), summary.md (tables) and
chart.png (if python3-matplotlib is installed).

  report.py DIR [--elapsed S] [--boot-failures N] [--publish DIR2]
  report.py --quick RUNDIR        one run's figures, for the progress log
"""
import argparse
import json
import os
import re
import shutil
import statistics
import sys

DEFAULT = "lazy+map-mq"
ORDER = ["no-iommu", "intree-strict", "intree-lazy", "vtd-strict", "vtd-lazy", "smmu-strict", "smmu-lazy",
         "strict", "strict+map", "lazy-mq", "lazy-sq", "lazy+map-mq", "lazy+map-sq"]
FAMILY = {"no-iommu": "none", "intree-strict": "intree", "intree-lazy": "intree",
          "vtd-strict": "vtd", "vtd-lazy": "vtd", "smmu-strict": "smmu", "smmu-lazy": "smmu"}
LABEL = {"intree": "in-tree virtio-iommu", "vtd": "emulated VT-d", "smmu": "emulated SMMUv3",
         "ours": "this module"}
# The emulated hardware IOMMU compared with: VT-d on x86-64, SMMUv3 on arm64.
PEER_SHORT = {"vtd": "VT-d", "smmu": "SMMUv3"}
BUFDESC = {
    "huge": "fio buffers in hugetlbfs (2 MiB pages)",
    "ordinary": "ordinary fio buffers (malloc; the guest kernel has THP=always)",
}
CTR_PER_IO = ["kicks", "rekicks", "shared_kicks", "req_map", "req_unmap", "sync_waits", "deferred_timer",
              "deferred_full", "deferred_flush", "deferred_map_sync", "merged_maps",
              "merged_unmaps", "queue_full"]


def family(cfg):
    return FAMILY.get(cfg, "ours")


def peer_family(cfgs):
    """The hardware IOMMU these configurations compare with."""
    return "smmu" if any(family(c) == "smmu" for c in cfgs) else "vtd"


def parse_run(d):
    """One boot's directory -> dict."""
    m = re.match(r"r(\d+)-(.+)$", os.path.basename(d.rstrip("/")))
    run = {"dir": d, "round": int(m.group(1)) if m else 0,
           "config": m.group(2) if m else os.path.basename(d),
           "cases": {}, "fio": {}, "counters": {}, "huge_pages_in_use": {}, "steady_ios": {},
           "info": [], "guest_done": False}
    for name, key in (("attempts.txt", "attempts"), ("boot_failures", "boot_failures"),
                      ("loadavg", "host_loadavg_after")):
        p = os.path.join(d, name)
        if os.path.exists(p):
            v = open(p).read().strip()
            run[key] = int(v) if key == "boot_failures" and v.isdigit() else v
    p = os.path.join(d, "results.log")
    if not os.path.exists(p):
        return run
    for line in open(p, errors="replace"):
        line = line.rstrip("\n")
        if line.startswith("RESULT "):
            parts = line.split(" ", 3)
            if len(parts) >= 3:
                run["cases"][parts[1]] = {"status": parts[2],
                                          "detail": parts[3] if len(parts) > 3 else ""}
        elif line.startswith("METRIC fio:"):
            tag, _, js = line[len("METRIC fio:"):].partition(" ")
            try:
                run["fio"][tag] = json.loads(js[js.index("{"):])
            except (ValueError, json.JSONDecodeError) as e:
                run["fio"][tag] = {"parse_error": str(e)}
        elif line.startswith("METRIC ctr:"):
            tag, _, kv = line[len("METRIC ctr:"):].partition(" ")
            c = {}
            for item in kv.split(","):
                k, _, v = item.partition("=")
                try:
                    c[k] = int(v)
                except ValueError:
                    c[k] = v
            run["counters"][tag] = c
        elif line.startswith("METRIC steady:"):
            # I/Os the disk completed between marks 3 and 4 (--insns).
            tag, _, v = line[len("METRIC steady:"):].partition(" ")
            ends = v.split()
            if len(ends) == 2 and all(x.isdigit() for x in ends):
                run["steady_ios"][tag] = int(ends[1]) - int(ends[0])
        elif line.startswith("METRIC huge:"):
            tag, _, v = line[len("METRIC huge:"):].partition(" ")
            run["huge_pages_in_use"][tag] = v
        elif line.startswith("INFO "):
            run["info"].append(line[5:300])
        elif line.startswith("GUEST-DONE"):
            run["guest_done"] = True
    run["figures"] = {tag: figures(j) for tag, j in run["fio"].items()}
    # Guest instructions during each job (bench/run.sh --insns).
    for n in sorted(os.listdir(d)):
        m = re.match(r"insn-(.+)\.txt$", n)
        f = run["figures"].get(m.group(1)) if m else None
        if not f:
            continue
        c = dict(line.split() for line in open(os.path.join(d, n)) if len(line.split()) == 2)
        # The steady state when measured (bench/guest.sh marks 3 and 4):
        # fio's start and exit, a fixed cost, left out.
        try:
            if "steady_ios" in c:
                f["guest_kinsn_per_io"] = int(c["steady_kernel"]) / int(c["steady_ios"])
                f["guest_uinsn_per_io"] = int(c["steady_user"]) / int(c["steady_ios"])
                f["guest_insn_window"] = "steady"
            else:
                f["guest_kinsn_per_io"] = int(c["kernel"]) / f["ios"]
                f["guest_uinsn_per_io"] = int(c["user"]) / f["ios"]
                f["guest_insn_window"] = "job"
        except (KeyError, ValueError, ZeroDivisionError):
            pass
    # QEMU's lock profile over each fio job (bench/run.sh --lock-profile):
    # the "info sync-profile" replies in the monitor log, in job order.
    qlog = os.path.join(os.path.dirname(os.path.realpath(os.path.join(d, "results.log"))), "qmp.log")
    if os.path.exists(qlog):
        profiles = []
        # The guest's request may end in the serial line's \r.
        text = open(qlog, errors="replace", newline="").read().replace("\r", "")
        for line in text.split("\n"):
            # tests/lib/qmp.py: "OK <command> -> <reply>"
            if not line.startswith("OK {") or " -> " not in line:
                continue
            try:
                ret = json.loads(line.split(" -> ", 1)[1]).get("return")
            except ValueError:
                continue
            if isinstance(ret, str) and "Wait Time" in ret:
                profiles.append(sync_profile(ret))
        tags = [t for t in run["fio"]]
        for tag, prof in zip(tags, profiles):
            f = run["figures"].get(tag)
            if f:
                f["bql_wait_us_per_io"] = prof["bql"] * 1e6 / f["ios"]
                f["lock_wait_us_per_io"] = prof["all"] * 1e6 / f["ios"]
    # The network job's figures, measured by the host (bench/netclient.py).
    p = os.path.join(d, "net-C.json")
    if os.path.exists(p):
        try:
            run["net"] = json.load(open(p))
        except ValueError:
            run["net"] = {"error": "unreadable net-C.json"}
    # Host CPU time of the QEMU process during each job (bench/run.sh job_watch).
    run["qemu_cpu"] = {}
    for n in sorted(os.listdir(d)):
        m = re.match(r"cpu-(.+)\.txt$", n)
        if not m:
            continue
        c = {"threads": {}}
        for line in open(os.path.join(d, n)):
            k, _, v = line.strip().rpartition(" ")
            try:
                v = float(v)
            except ValueError:
                continue
            if k.startswith("thread:"):
                name = re.sub(r"CPU_\d+/TCG", "vCPUs", k[7:]).replace("_", " ")
                c["threads"][name] = c["threads"].get(name, 0.0) + v
            else:
                c[k] = v
        run["qemu_cpu"][m.group(1)] = c
        f = run["figures"].get(m.group(1))
        if f and c.get("cpu_s", 0) > 0 and c.get("wall_s", 0) > 0:
            f["qemu_cpu_us_per_io"] = c["cpu_s"] * 1e6 / f["ios"]
            f["qemu_cpu_share"] = c["cpu_s"] / c["wall_s"] if c.get("wall_s") else None
            f["qemu_main_thread_share"] = c["threads"].get("qemu-system-x86", 0.0) / c["cpu_s"]
    return run


def sync_profile(text):
    """QEMU's "info sync-profile" -> wait seconds for the BQL and for all mutexes."""
    bql = total = 0.0
    for line in text.splitlines():
        m = re.match(r"(BQL mutex|\S+)\s+\S+(?:\s+\d+\])?\s+\S+\s+([0-9.]+)\s+\d+\s+[0-9.]+\s*$", line)
        if not m:
            continue
        if m.group(1) == "condvar":
            continue        # a thread waiting for work, not for a lock
        total += float(m.group(2))
        if m.group(1) == "BQL mutex":
            bql += float(m.group(2))
    return {"bql": bql, "all": total}


def figures(j):
    """fio JSON (group_reporting) -> bandwidth, IOPS, latency, I/O count."""
    try:
        job = j["jobs"][0]
    except (KeyError, IndexError, TypeError):
        return None
    ios = bw = iops = 0
    clat_w = lat_w = 0.0
    for dirn in ("read", "write"):
        s = job[dirn]
        n = s.get("total_ios", 0)
        ios += n
        bw += s.get("bw_bytes", 0)
        iops += s.get("iops", 0.0)
        clat_w += s.get("clat_ns", {}).get("mean", 0.0) * n
        lat_w += s.get("lat_ns", {}).get("mean", 0.0) * n
    if ios == 0:
        return None
    return {"bw_mib": bw / 2**20, "iops": iops, "clat_us": clat_w / ios / 1000,
            "lat_us": lat_w / ios / 1000, "ios": ios, "error": job.get("error", 0)}


def per_io(counters, ios):
    out = {k: counters.get(k, 0) / ios for k in CTR_PER_IO if isinstance(counters.get(k), int)}
    out["requests"] = sum(counters.get(k, 0) for k in
                          ("req_map", "req_unmap", "req_attach", "req_detach", "req_probe")) / ios
    out["sync_wait_us"] = counters.get("sync_wait_ns", 0) / ios / 1000
    sw = counters.get("sync_waits", 0)
    out["us_per_sync_wait"] = counters.get("sync_wait_ns", 0) / sw / 1000 if sw else 0.0
    out["max_batch"] = counters.get("max_batch", 0)
    out["errors"] = sum(v for k, v in counters.items() if k.startswith("err_") and isinstance(v, int))
    return out


def quick(d):
    run = parse_run(d)
    n = run.get("net")
    if n:
        print(f"    {run['config']} C-net: " + (n["error"] if "error" in n else
              f"rx {n['rx_mbit_s']:.0f} Mbit/s, tx {n['tx_mbit_s']:.0f} Mbit/s, "
              f"rr {n['rr_per_s']:.0f}/s ({n['rr_mean_us']:.0f} us)"))
    for tag, f in sorted(run.get("figures", {}).items()):
        if not f:
            print(f"    {run['config']} {tag}: no figures")
            continue
        s = (f"    {run['config']} {tag}: {f['bw_mib']:.0f} MiB/s {f['iops']:.0f} IOPS "
             f"clat {f['clat_us']:.0f} us ({f['ios']} I/Os)")
        c = run["counters"].get(tag)
        if c:
            p = per_io(c, f["ios"])
            s += (f"; per I/O: kicks {p['kicks']:.2f} rekicks {p.get('rekicks', 0):.2f} map {p['req_map']:.2f} unmap "
                  f"{p['req_unmap']:.2f} sync_waits {p['sync_waits']:.2f} "
                  f"wait {p['sync_wait_us']:.1f} us")
        print(s)


def med(xs):
    return statistics.median(xs) if xs else None


def rng(xs, fmt):
    return f"{fmt.format(min(xs))}-{fmt.format(max(xs))}" if xs else "n/a"


def summarize(runs, buffers):
    """-> {buf: {cfg: {metric: {...}}}} with medians, ranges and ratios."""
    summ = {}
    metrics = (("A", "bw_mib"), ("B", "iops"), ("B", "clat_us"),
               ("A", "qemu_cpu_us_per_io"), ("B", "qemu_cpu_us_per_io"),
               ("A", "qemu_cpu_share"), ("B", "qemu_cpu_share"),
               ("A", "qemu_main_thread_share"), ("B", "qemu_main_thread_share"),
               ("A", "guest_kinsn_per_io"), ("B", "guest_kinsn_per_io"),
               ("A", "guest_uinsn_per_io"), ("B", "guest_uinsn_per_io"),
               ("A", "bql_wait_us_per_io"), ("B", "bql_wait_us_per_io"),
               ("A", "lock_wait_us_per_io"), ("B", "lock_wait_us_per_io"))
    for buf in buffers:
        base = {}
        for r in runs:
            if r["config"] == "no-iommu":
                base[r["round"]] = r
        cfgs = {}
        for cfg in ORDER + sorted({r["config"] for r in runs} - set(ORDER)):
            rs = [r for r in runs if r["config"] == cfg]
            if not rs:
                continue
            ent = {}
            for job, key in metrics:
                tag = f"{job}-{buf}"
                vals, ratios = [], []
                for r in rs:
                    f = r.get("figures", {}).get(tag)
                    if not f or f.get(key) is None:
                        continue
                    vals.append(f[key])
                    b = base.get(r["round"], {}).get("figures", {}).get(tag)
                    if b and b.get(key):
                        ratios.append(f[key] / b[key])
                ent[f"{job}.{key}"] = {"values": vals, "median": med(vals),
                                       "ratios": ratios, "ratio_median": med(ratios)}
            ctrs = {}
            for job in ("A", "B"):
                tag = f"{job}-{buf}"
                pis = [per_io(r["counters"][tag], r["figures"][tag]["ios"]) for r in rs
                       if tag in r["counters"] and r.get("figures", {}).get(tag)]
                if pis:
                    ctrs[job] = {k: (max(p[k] for p in pis) if k in ("max_batch", "errors")
                                     else med([p[k] for p in pis])) for k in pis[0]}
                    ctrs[job]["runs"] = len(pis)
            ent["counters_per_io"] = ctrs
            ent["runs"] = len(rs)
            ent["ok_runs"] = sum(1 for r in rs if r.get("ok"))
            cfgs[cfg] = ent
        summ[buf] = cfgs
    return summ


NET_KEYS = (("rx_mbit_s", "receive Mbit/s"), ("tx_mbit_s", "transmit Mbit/s"),
            ("rr_per_s", "request-response /s"))


def net_summary(runs):
    """Job C: {cfg: {key: {values, median, ratios, ratio_median}}}."""
    base = {r["round"]: r.get("net", {}) for r in runs if r["config"] == "no-iommu"}
    out = {}
    for cfg in ORDER + sorted({r["config"] for r in runs} - set(ORDER)):
        rs = [r for r in runs if r["config"] == cfg and r.get("net")]
        if not rs:
            continue
        ent = {}
        for key, _ in NET_KEYS:
            vals = [r["net"][key] for r in rs if r["net"].get(key)]
            ratios = [r["net"][key] / base[r["round"]][key] for r in rs
                      if r["net"].get(key) and base.get(r["round"], {}).get(key)]
            ent[key] = {"values": vals, "median": med(vals), "ratios": ratios,
                        "ratio_median": med(ratios)}
        ent["runs"] = len(rs)
        out[cfg] = ent
    return out


def net_table(net):
    L = ["### Job C: network (virtio-net behind the IOMMU, QEMU user networking)", "",
         "Measured by the host (bench/netclient.py) through QEMU's user networking, one phase after "
         "the other: a receive stream (host to guest), a transmit stream (guest to host) and one-byte "
         "request-response over TCP. Medians over rounds [min-max] and the median of per-round "
         "ratios to the same round's no-iommu run (higher is better).", "",
         "| configuration | runs | " + " | ".join(f"{label} | ratio" for _, label in NET_KEYS) + " |",
         "|---|---|" + "---|---|" * len(NET_KEYS)]
    for cfg, e in net.items():
        row = [cfg + (" (default)" if cfg == DEFAULT else ""), str(e["runs"])]
        for key, _ in NET_KEYS:
            x = e[key]
            row.append(med_rng(x, "{:.0f}"))
            row.append(fmt(x["ratio_median"]))
        L.append("| " + " | ".join(row) + " |")
    return L


def best(cfgs, fam, key, lower=False):
    cands = [(c, e[key]["ratio_median"] if e[key]["ratio_median"] is not None else e[key]["median"])
             for c, e in cfgs.items() if family(c) == fam and e[key]["median"] is not None]
    if not cands:
        return None, None
    return (min if lower else max)(cands, key=lambda x: x[1])


def fmt(v, f="{:.2f}"):
    return "n/a" if v is None else f.format(v)


def table(cfgs, buf):
    L = [f"### {BUFDESC.get(buf, buf)}", "",
         "Medians over rounds, [min-max], and the median of per-round ratios to the same "
         "round's no-iommu run (bandwidth and IOPS: higher is better; latency: lower is better).", "",
         "| configuration | runs | A bandwidth MiB/s | A ratio | B IOPS | B ratio | B mean clat µs | B clat ratio |",
         "|---|---|---|---|---|---|---|---|"]
    for cfg, e in cfgs.items():
        a, b, lat = e["A.bw_mib"], e["B.iops"], e["B.clat_us"]
        name = cfg + (" (default)" if cfg == DEFAULT else "")
        L.append(f"| {name} | {e['ok_runs']}/{e['runs']} | "
                 + " | ".join(f"{med_rng(x, '{:.0f}')} | {fmt(x['ratio_median'])} [{rng(x['ratios'], '{:.2f}')}]"
                              for x in (a, b, lat)) + " |")
    return L


def job_table(heading, text, columns, cfgs, key, cells):
    """A table with one row per configuration that has figures for KEY on
    job A or B: CELLS(entry, job) gives each job's cells, A then B.
    Empty when no configuration has any."""
    L = [heading, "", text, "",
         "| configuration | " + " | ".join(columns) + " |",
         "|---|" + "---|" * len(columns)]
    for cfg, e in cfgs.items():
        a, b = e.get(f"A.{key}"), e.get(f"B.{key}")
        if not a or (a["median"] is None and b["median"] is None):
            continue
        row = [cfg + (" (default)" if cfg == DEFAULT else "")]
        for job in ("A", "B"):
            row += cells(e, job)
        L.append("| " + " | ".join(row) + " |")
    return L if len(L) > 6 else []


def med_rng(x, f):
    """A figure's median [min-max]."""
    return f"{fmt(x['median'], f)} [{rng(x['values'], f)}]"


def cpu_table(cfgs, buf):
    def cells(e, job):
        x = e[f"{job}.qemu_cpu_us_per_io"]
        ms = e[f"{job}.qemu_main_thread_share"]["median"]
        return [med_rng(x, "{:.0f}"),
                f"{fmt(x['ratio_median'])} [{rng(x['ratios'], '{:.2f}')}]",
                fmt(e[f"{job}.qemu_cpu_share"]["median"]),
                "n/a" if ms is None else f"{100 * ms:.0f}%"]
    return job_table(
        f"#### Host CPU time of QEMU per I/O ({buf} buffers)",
        "CPU time (user + system, all threads) the QEMU process used from the start of each fio job to its "
        "end, divided by the job's I/Os: the emulation cost of one I/O, which is far less sensitive to the "
        "other work on the machine than throughput (a starved QEMU does fewer I/Os but also uses less CPU). "
        "Lower is better; ratio to the same round's no-iommu. \"CPU share\" is the QEMU process's CPU time "
        "over wall time (2.00 = both host CPUs); \"main loop\" is the share of QEMU's CPU time spent in its "
        "main-loop thread (device emulation outside the vCPU threads).",
        ["A µs/IO", "A ratio", "A CPU share", "A main loop",
         "B µs/IO", "B ratio", "B CPU share", "B main loop"],
        cfgs, "qemu_cpu_us_per_io", cells)


def insn_table(cfgs, buf):
    def cells(e, job):
        x = e[f"{job}.guest_kinsn_per_io"]
        return [med_rng(x, "{:.0f}"), fmt(x["ratio_median"]),
                fmt(e[f"{job}.guest_uinsn_per_io"]["median"], "{:.0f}")]
    return job_table(
        f"#### Guest instructions per I/O ({buf} buffers)",
        "Instructions the guest executed (all vCPUs), counted by a TCG plugin (bench/run.sh "
        "--insns), kernel and user apart, per I/O: in each fio job's steady state (from 0.5 s after "
        "the disk's first I/O to 1 s before the job's end, divided by the I/Os the disk completed "
        "meanwhile); for "
        "jobs shorter than 3 s, over the whole job, fio's start and exit included, divided by "
        "its I/Os. Unlike throughput this does not depend on the host's load or speed. Medians "
        "over rounds [min-max]; ratio of the kernel figure to the same round's no-iommu.",
        ["A kernel", "A ratio", "A user", "B kernel", "B ratio", "B user"],
        cfgs, "guest_kinsn_per_io", cells)


def iqr(xs):
    """Interquartile range of per-round ratios, or None with fewer than 2."""
    if len(xs) < 2:
        return None
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def lock_table(cfgs, buf):
    def cells(e, job):
        return [med_rng(e[f"{job}.{key}"], "{:.1f}")
                for key in ("bql_wait_us_per_io", "lock_wait_us_per_io")]
    return job_table(
        f"#### QEMU lock wait per I/O ({buf} buffers)",
        "From QEMU's lock profile (bench/run.sh --lock-profile: -enable-sync-profile, reset at each "
        "fio job's start, read at its end): the time QEMU's threads waited for its global lock (BQL), "
        "and for all its mutexes, divided by the job's I/Os. Medians over rounds [min-max].",
        ["A BQL µs/IO", "A all locks µs/IO", "B BQL µs/IO", "B all locks µs/IO"],
        cfgs, "bql_wait_us_per_io", cells)


def headline(cfgs):
    peer = peer_family(cfgs)
    pn = PEER_SHORT[peer]
    L = [f"| metric (ratio to no-iommu) | this module default (lazy+map-mq) [IQR] | this module best | in-tree best [IQR] | {pn} best | default / in-tree best | IQRs apart | default / {pn} best | best / in-tree best |",
         "|---|---|---|---|---|---|---|---|---|"]
    for key, label, lower in (("A.bw_mib", "A randwrite bandwidth", False),
                              ("B.iops", "B randrw IOPS", False),
                              ("B.clat_us", "B mean completion latency", True),
                              ("A.guest_kinsn_per_io", "A guest kernel instructions per I/O", True),
                              ("B.guest_kinsn_per_io", "B guest kernel instructions per I/O", True)):
        d = cfgs.get(DEFAULT, {}).get(key, {})
        if d.get("median") is None:
            continue
        dv = d.get("ratio_median") if d.get("ratio_median") is not None else d.get("median")
        ob, ov = best(cfgs, "ours", key, lower)
        ib, iv = best(cfgs, "intree", key, lower)
        vb, vv = best(cfgs, peer, key, lower)
        di = iqr(d.get("ratios", []))
        ii = iqr(cfgs.get(ib, {}).get(key, {}).get("ratios", [])) if ib else None

        def rel(x, y):
            if x is None or y is None or y == 0:
                return "n/a"
            return f"{(y / x if lower else x / y):.2f}×"

        def span(q):
            return f" [{q[0]:.2f}-{q[1]:.2f}]" if q else ""
        apart = "n/a"
        if di and ii:
            apart = "yes" if di[1] < ii[0] or ii[1] < di[0] else "no"
        L.append(f"| {label} | {fmt(dv)}{span(di)} | {fmt(ov)} ({ob}) | {fmt(iv)}{span(ii)} ({ib}) "
                 f"| {fmt(vv)} ({vb}) | {rel(dv, iv)} | {apart} | {rel(dv, vv)} | {rel(ov, iv)} |")
    L.append("")
    L.append("(Relative figures: ratio of the two median ratios; for latency and instructions, "
             "inverted so that above 1.00× means this module is faster or leaner. IQR: interquartile "
             "range of the per-round ratios; \"IQRs apart\": the two ranges do not overlap. The "
             "module's targets: default ≥ 1.15× in-tree best on A bandwidth and on B IOPS with IQRs "
             "apart, guest instructions per I/O ≤ 0.9× the in-tree driver's.)")
    return L


def opt(c, k):
    return f"{c[k]:.3f}" if k in c else "n/a"


def counter_table(cfgs):
    L = ["| mode | job | kicks/IO | rekicks/IO | shared kicks/IO | MAP/IO | UNMAP/IO | requests/IO | sync waits/IO | wait µs/IO | µs per wait | deferred timer/full/flush/map_sync per IO | merged map/unmap per IO | max batch | queue full/IO | errors |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for cfg, e in cfgs.items():
        for job, c in sorted(e.get("counters_per_io", {}).items()):
            L.append(f"| {cfg} | {job} | {c['kicks']:.2f} | {opt(c, 'rekicks')} | {opt(c, 'shared_kicks')} | {c['req_map']:.2f} | {c['req_unmap']:.2f} | "
                     f"{c['requests']:.2f} | {c['sync_waits']:.2f} | {c['sync_wait_us']:.1f} | "
                     f"{c['us_per_sync_wait']:.1f} | {c.get('deferred_timer', 0):.3f}/{c.get('deferred_full', 0):.3f}/"
                     f"{c.get('deferred_flush', 0):.3f}/{c.get('deferred_map_sync', 0):.3f} | "
                     f"{c.get('merged_maps', 0):.3f}/{c.get('merged_unmaps', 0):.3f} | {c['max_batch']} | "
                     f"{c.get('queue_full', 0):.3f} | {c['errors']} |")
    return L


def chart(summ, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "python3-matplotlib is not installed: no chart (scripts/host-deps.sh installs it)"
    bufs = list(summ)
    metrics = [("A.bw_mib", "A: randwrite 64k bandwidth\n(ratio to no-iommu, higher better)"),
               ("B.iops", "B: randrw 4k IOPS\n(ratio to no-iommu, higher better)"),
               ("B.clat_us", "B: mean completion latency\n(ratio to no-iommu, lower better)")]
    if any(e.get("A.qemu_cpu_us_per_io", {}).get("ratios") for b in bufs for e in summ[b].values()):
        metrics += [("A.qemu_cpu_us_per_io", "A: host CPU time of QEMU per I/O\n(ratio to no-iommu, lower better)"),
                    ("B.qemu_cpu_us_per_io", "B: host CPU time of QEMU per I/O\n(ratio to no-iommu, lower better)")]
    colors = {"none": "#888888", "intree": "#d62728", "vtd": "#ff7f0e", "smmu": "#ff7f0e",
              "ours": "#1f77b4"}
    ncol = 3
    rows_per_buf = (len(metrics) + ncol - 1) // ncol
    nrows = rows_per_buf * len(bufs)
    fig, axes = plt.subplots(nrows, ncol, figsize=(15, (0.4 * len(ORDER) + 1.2) * nrows + 0.8),
                             squeeze=False)
    for i, buf in enumerate(bufs):
        cfgs = summ[buf]
        names = [c for c in cfgs]
        for k in range(rows_per_buf * ncol):
            ax = axes[i * rows_per_buf + k // ncol][k % ncol]
            if k >= len(metrics):
                ax.axis("off")
                ax.text(0.0, 0.5, "grey: no IOMMU\nred: in-tree virtio-iommu\n"
                        f"orange: {LABEL[peer_family(cfgs)]}\n"
                        "blue: this module (framed: default lazy+map-mq)\n\n"
                        f"{BUFDESC.get(buf, buf)}", fontsize=9, va="center")
                continue
            key, title = metrics[k]
            ys = list(range(len(names)))[::-1]
            vals, lo, hi = [], [], []
            for c in names:
                e = cfgs[c].get(key, {"ratios": [], "ratio_median": None})
                rs = e["ratios"]
                v = e["ratio_median"] if e["ratio_median"] is not None else 0
                vals.append(v)
                lo.append(v - min(rs) if rs else 0)
                hi.append(max(rs) - v if rs else 0)
            ax.barh(ys, vals, xerr=[lo, hi], color=[colors[family(c)] for c in names],
                    capsize=2, edgecolor=["black" if c == DEFAULT else "none" for c in names])
            ax.set_yticks(ys)
            ax.set_yticklabels(names if k % ncol == 0 else [""] * len(names))
            ax.axvline(1.0, color="black", lw=0.8, ls="--")
            for y, v in zip(ys, vals):
                if v:
                    ax.text(v, y, f" {v:.2f}", va="center", fontsize=7)
            ax.set_title(title + f" — {buf} buffers", fontsize=9)
    fig.suptitle("virtio-iommu-fq benchmark, QEMU TCG guest, 2 vCPUs, null NVMe: median of per-round "
                 "ratios to the same round's no-iommu (whiskers: min-max over rounds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--elapsed", type=int, default=None)
    ap.add_argument("--boot-failures", type=int, default=None)
    ap.add_argument("--publish", default=None)
    a = ap.parse_args()
    if a.quick:
        quick(a.dir)
        return 0
    meta = {}
    mp = os.path.join(a.dir, "meta.json")
    if os.path.exists(mp):
        meta = json.load(open(mp))
    runs = []
    for n in sorted(os.listdir(a.dir)):
        p = os.path.join(a.dir, n)
        if os.path.isdir(p) and re.match(r"r\d+-", n):
            r = parse_run(p)
            r["ok"] = (r["guest_done"] and bool(r["cases"]) and
                       all(c["status"] == "PASS" for c in r["cases"].values()))
            runs.append(r)
    buffers = meta.get("buffers") or ["huge"]
    summ = summarize(runs, buffers)
    meta["elapsed_s"] = a.elapsed
    meta["boot_failures_retried"] = a.boot_failures
    json.dump({"meta": meta, "runs": runs, "summary": summ, "network": net_summary(runs)},
              open(os.path.join(a.dir, "results.json"), "w"), indent=1)
    json.dump({"meta": meta, "summary": summ,
               "runs": [{k: r.get(k) for k in ("round", "config", "ok", "attempts", "boot_failures",
                                               "figures", "counters", "net", "host_loadavg_after")}
                        for r in runs]},
              open(os.path.join(a.dir, "results-summary.json"), "w"), indent=1)

    L = ["# Benchmark results", ""]
    L.append(f"Command: `{meta.get('command', '?')}`, started {meta.get('started_utc', '?')}, "
             f"{meta.get('rounds', '?')} round(s), {meta.get('runtime_s', '?')} s per fio job"
             + (f", took {a.elapsed // 60} min {a.elapsed % 60} s" if a.elapsed is not None else "") + ".")
    h = meta.get("host", {})
    L.append(f"Host: {h.get('cpu', '?')}, {h.get('cpus', '?')} CPUs, {h.get('mem', '?')}, "
             f"{h.get('os', '?')}, kernel {h.get('kernel', '?')}, {h.get('qemu', '?')}, {h.get('fio', '?')}. "
             f"Guest: {meta.get('guest_kernel', '?')}, {meta.get('qemu', '?')}. "
             f"Module {meta.get('module_version', '?')} (srcversion {meta.get('module_srcversion', '?')}, "
             f"git {meta.get('git', '?')}{', src/ with uncommitted changes' if meta.get('src_uncommitted_files') else ''}).")
    failed = [r for r in runs if not r["ok"]]
    bf = sum(r.get("boot_failures", 0) or 0 for r in runs)
    loads = [float(r["host_loadavg_after"].split()[0]) for r in runs
             if r.get("host_loadavg_after", "").split()]
    if loads:
        L.append(f"Host load average (1 min) after each boot: median {statistics.median(loads):.1f}, "
                 f"min {min(loads):.1f}, max {max(loads):.1f} (2 CPUs; one guest of the benchmark "
                 f"takes about 2 of it, the rest is other work on the machine).")
    L.append(f"Boots: {len(runs)} runs, {len(runs) - len(failed)} with figures and every case passed, "
             f"{len(failed)} failed; {bf} early-boot failure(s) retried (not counted as runs).")
    for r in failed:
        bad = [f"{k}: {v['detail'][:150]}" for k, v in r["cases"].items() if v["status"] != "PASS"]
        L.append(f"- FAILED: round {r['round']} {r['config']}: {'; '.join(bad) or 'no results (' + str(r.get('attempts')) + ')'}")
    L.append("")
    for buf in buffers:
        cfgs = summ[buf]
        L += table(cfgs, buf)
        L.append("")
        ct = cpu_table(cfgs, buf)
        if ct:
            L += ct
            L.append("")
        it = insn_table(cfgs, buf)
        if it:
            L += it
            L.append("")
        lt = lock_table(cfgs, buf)
        if lt:
            L += lt
            L.append("")
        if any(family(c) == "ours" for c in cfgs):
            L.append(f"#### This module against the others ({buf} buffers)")
            L.append("")
            L += headline(cfgs)
            L.append("")
            L.append(f"#### This module's counters per I/O ({buf} buffers; medians over rounds; counters reset before each job, divided by fio's total I/O count)")
            L.append("")
            L += counter_table(cfgs)
            L.append("")
    net = net_summary(runs)
    if net:
        L += net_table(net)
        L.append("")
    err = chart(summ, os.path.join(a.dir, "chart.png"))
    L.append(err or "Chart: chart.png")
    L.append("")
    open(os.path.join(a.dir, "summary.md"), "w").write("\n".join(L))
    if a.publish:
        os.makedirs(a.publish, exist_ok=True)
        for f in ("summary.md", "results-summary.json", "chart.png"):
            p = os.path.join(a.dir, f)
            if os.path.exists(p):
                shutil.copy(p, os.path.join(a.publish, f))
    return 0


if __name__ == "__main__":
    sys.exit(main())
