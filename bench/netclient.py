#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Host side of the benchmark's network job (job C, bench/guest.sh net_job).

Waits until the guest announces the job ("INFO job C-net start" in its
results port log), then drives the guest's virtio-net device through QEMU's user
networking (hostfwd ports on 127.0.0.1), one phase after the other:

  rx  the host sends to the guest's sink for RUNTIME seconds; the rate
      counts until the guest has read everything (its end closes)
  tx  the host reads the guest's source for RUNTIME seconds
  rr  one byte to the guest's echo and back, as often as possible, for
      RUNTIME seconds (request-response, TCP_NODELAY)

and writes OUT (JSON): rx_mbit_s (with rx_bytes and rx_s, what it was
computed from), tx_mbit_s, rr_per_s, rr_mean_us, and "error" when a
phase failed.

    bench/netclient.py --logs GLOB --out OUT --ports RR,SINK,SOURCE --runtime S
"""
import argparse
import glob
import json
import socket
import sys
import time

CHUNK = 64 * 1024


def wait_start(pattern, timeout):
    """Poll the boot attempts' logs, each read once: only what was added
    since the last look (the guest's fio jobs run meanwhile)."""
    end = time.monotonic() + timeout
    seen = {}
    while time.monotonic() < end:
        for path in glob.glob(pattern):
            try:
                with open(path, "rb") as f:
                    f.seek(seen.get(path, 0))
                    new = f.read()
            except OSError:
                continue
            # Only whole lines count; a partial one is read again.
            whole = new[:new.rfind(b"\n") + 1]
            seen[path] = seen.get(path, 0) + len(whole)
            if any(line.startswith(b"INFO job C-net start") for line in whole.splitlines()):
                return True
        time.sleep(0.5)
    return False


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def rx(port, runtime):
    s = connect(port)
    buf = b"\0" * CHUNK
    sent = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < runtime:
        s.sendall(buf)
        sent += CHUNK
    s.shutdown(socket.SHUT_WR)
    s.settimeout(30)
    while s.recv(CHUNK):
        pass
    t = time.monotonic() - t0
    s.close()
    return sent * 8 / t / 1e6, sent, t


def tx(port, runtime):
    s = connect(port)
    got = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < runtime:
        n = len(s.recv(CHUNK))
        if not n:
            break
        got += n
    t = time.monotonic() - t0
    s.close()
    return got * 8 / t / 1e6


def rr(port, runtime):
    s = connect(port)
    n = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < runtime:
        s.sendall(b"x")
        if not s.recv(1):
            break
        n += 1
    t = time.monotonic() - t0
    s.close()
    return n / t, (t / n * 1e6 if n else None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--logs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ports", required=True)
    ap.add_argument("--runtime", type=float, required=True)
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    p_rr, p_sink, p_source = (int(x) for x in a.ports.split(","))
    res = {}
    if not wait_start(a.logs, a.timeout):
        res["error"] = "the guest never started the network job"
    else:
        time.sleep(1)
        try:
            res["rx_mbit_s"], res["rx_bytes"], res["rx_s"] = rx(p_sink, a.runtime)
            res["tx_mbit_s"] = tx(p_source, a.runtime)
            res["rr_per_s"], res["rr_mean_us"] = rr(p_rr, a.runtime)
        except OSError as e:
            res["error"] = f"{type(e).__name__}: {e}"
    with open(a.out, "w") as f:
        json.dump(res, f)
    return 0 if "error" not in res else 1


if __name__ == "__main__":
    sys.exit(main())
