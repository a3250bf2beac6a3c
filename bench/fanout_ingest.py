#!/usr/bin/env python3
"""bench/fanout_ingest.py: what the ingest of ONE event for M endpoints costs (issue 16, step 3).

Why: in bench/shapes.py's steady phase each event fans out to 100 endpoints, and most of the
fast endpoints' latency is spent before the first request leaves: the single event's ingest
(filter matching, M delivery rows with their index entries, the commit, the hand-over to the
dispatcher). This counts that path alone, load-insensitively:

  python3 bench/fanout_ingest.py --hookd build-bench/hookd 200 /tmp/fi.out [--endpoints 100] \
      [-- SERVE FLAGS]
  callgrind_annotate --inclusive=yes /tmp/fi.out | head -60

`hookd serve` runs under `valgrind --tool=callgrind` with collection off while it starts, while
the M endpoints are created (paused, subscribed to "bench.fan": their deliveries are written and
handed to the dispatcher, which holds them, so no request is sent) and during --warm single-event
posts (500: each endpoint's index entries then span several 16 KiB pages, as on a server that
has run a while, so each event touches one leaf per endpoint in each per-endpoint index); then on for N single-event POSTs (`{"event": "bench.fan", "data": {"t_us": …}}`, one
after another on one keep-alive connection, as shapes.py's steady loader sends them, one
delivery row per endpoint each); then off. Divide the counts by N for instructions per event,
by N × M per delivery. The server's `hops:` lines (src/hops.c, printed at its clean stop) are
printed too.

`--latency` runs hookd natively instead and prints the 202's p50/p99 over the N posts with the
load average beside it (wall-clock: indicative only on a shared machine).

Needs valgrind (`apt-get install valgrind`) unless --latency.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

def post_events(c, n, out=None):
    for _ in range(n):
        body = json.dumps({"event": "bench.fan", "data": {"t_us": time.time_ns() // 1000}})
        t0 = time.monotonic()
        st, data = c.request("POST", "/v1/events", body.encode())
        t1 = time.monotonic()
        if st != 202:
            raise B.BenchError("ingest: %d %r" % (st, data[:200]))
        if out is not None:
            out.append((t1 - t0) * 1000)


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100 * len(xs)))], 2) if xs else None


def main():
    ap = argparse.ArgumentParser(description="one event's ingest for M endpoints")
    ap.add_argument("--hookd", required=True, help="the hookd binary (release build)")
    ap.add_argument("n", type=int, help="single-event posts to count")
    ap.add_argument("out", nargs="?", default=None, help="callgrind output file")
    ap.add_argument("--endpoints", type=int, default=100, help="subscribed endpoints (M)")
    ap.add_argument("--warm", type=int, default=500,
                    help="events posted before counting (default 500: each endpoint's rows "
                         "then span several index pages, as on a server that has run a while)")
    ap.add_argument("--latency", action="store_true",
                    help="run hookd natively and print the 202's p50/p99 instead")
    ap.add_argument("serve_args", nargs="*", help="extra `hookd serve` flags (after --)")
    o = ap.parse_args()
    if not o.latency and (o.out is None or shutil.which("valgrind") is None):
        sys.exit("bench/fanout_ingest.py: needs OUT and valgrind (apt-get install valgrind)")
    o.hookd = os.path.abspath(o.hookd)
    o.quick, o.verify, o.signatures = True, False, None
    tmp = tempfile.mkdtemp(prefix="hookd-fanout-ingest-")
    b = B.Bench(o, tmp)
    try:
        cg = [] if o.latency else ["valgrind", "--tool=callgrind",
                                   "--callgrind-out-file=" + o.out, "--instr-atstart=no"]
        args = [o.hookd, "serve", "--listen", "127.0.0.1:0", "--db",
                "sqlite:" + os.path.join(tmp, "serve.db"), "--api-key", b.key,
                "--allow-http", "--allow-private-networks"] + o.serve_args
        serve = B.Proc("serve", cg + args, tmp).wait_listening(deadline_s=120)
        api = B.Client(serve.port, b.key)
        for i in range(o.endpoints):
            api.json("POST", "/v1/endpoints", {"url": "http://127.0.0.1:9/fan/%d" % i,
                                               "events": ["bench.fan"], "enabled": False},
                     expect=(201,))
        post_events(api, o.warm)
        lat = []
        load0 = os.getloadavg()
        if not o.latency:
            subprocess.run(["callgrind_control", "-i", "on", str(serve.p.pid)], check=True,
                           capture_output=True)
        post_events(api, o.n, lat)
        if not o.latency:
            subprocess.run(["callgrind_control", "-i", "off", str(serve.p.pid)], check=True,
                           capture_output=True)
        load1 = os.getloadavg()
        vm = serve.vm()
        api.close()
        serve.stop()
        with open(serve.err_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if "hops:" in line:
                    print(line.rstrip())
        print("202 latency over %d posts: p50 %.2f ms, p99 %.2f ms%s; load average %.2f -> %.2f"
              % (o.n, pct(lat, 50), pct(lat, 99), "" if o.latency else " (under valgrind)",
                 load0[0], load1[0]))
        if o.latency:
            print("hookd serve VmHWM %.1f MiB, VmRSS %.1f MiB" % (
                vm.get("VmHWM", 0) / 1024, vm.get("VmRSS", 0) / 1024))
        if not o.latency:
            print("wrote %s: divide its counts by %d events (%d deliveries)" % (
                o.out, o.n, o.n * o.endpoints))
    finally:
        B.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
