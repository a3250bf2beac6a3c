#!/usr/bin/env python3
"""bench/fanout.py: what one large fan-out costs hookd and the other clients (issue 12, item 6).

    bench/fanout.py --hookd build-bench/hookd [--events 100] [--endpoints 1000]
                    [--probe-ms 10] [--tmpdir DIR] [-- SERVE FLAGS...]

Starts `hookd serve` (loopback, a temp dir of its own), creates --endpoints paused endpoints
subscribed to "bulk.made" (their deliveries are created and wait, so the figures are the ingest
path's, not delivery's) and one paused endpoint for "solo.made". Then, while a prober posts one
"solo.made" event every --probe-ms on a connection of its own (another client), it posts one batch
of --events "bulk.made" events: events x endpoints deliveries in one request. Prints, as JSON:
the large request's time, status and response size and the CPU time the commit thread spent
meanwhile (load-independent: divided by the parts, about what one part holds the writer for on an
idle machine); the server's RSS before and after and its
peak (VmHWM) over the run; the prober's single-ingest latency (p50, p99, max) while idle and while
the large request was being written. Stops every process it started.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

KEY = "bench-fanout-key"
LISTEN = re.compile(r"^hookd listening on http://([^\s:]+):(\d+)\s*$")


def start_serve(hookd, tmp, extra):
    args = [hookd, "serve", "--listen", "127.0.0.1:0", "--db", "sqlite:" + tmp + "/h.db",
            "--api-key", KEY, "--allow-http", "--allow-private-networks"] + extra
    err = open(os.path.join(tmp, "serve.stderr"), "wb")
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        m = LISTEN.match(line or "")
        if m:
            return p, int(m.group(2))
        if not line and p.poll() is not None:
            break
    p.kill()
    sys.exit("bench/fanout.py: hookd serve did not start; see %s/serve.stderr" % tmp)


class Client:
    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        self.c.request(method, path, data, {"Authorization": "Bearer " + KEY,
                                            "Content-Type": "application/json"})
        r = self.c.getresponse()
        return r.status, r.read()


def rss(pid):
    """(VmRSS, VmHWM) in MB."""
    with open("/proc/%d/status" % pid) as f:
        v = dict(re.findall(r"^(Vm\w+):\s+(\d+) kB", f.read(), re.M))
    return int(v["VmRSS"]) / 1024, int(v["VmHWM"]) / 1024


def commit_cpu_s(pid):
    """CPU seconds (user + system) the hookd-commit thread has used."""
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() != "hookd-commit":
                    continue
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return None


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100 * len(xs)))], 2)


def make_endpoints(port, n, event):
    def one(i):
        c = Client(port)
        st, body = c.call("POST", "/v1/endpoints", {"url": "http://127.0.0.1:9/%s/%d" % (
            event, i), "events": [event], "enabled": False})
        if st != 201:
            sys.exit("create endpoint: %d %r" % (st, body[:200]))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(n)))


def probe(port, every_s, stop, out):
    """Posts one solo.made event every every_s until stop is set; out gets (t_sent, ms)."""
    c = Client(port)
    while not stop.is_set():
        t0 = time.monotonic()
        st, _ = c.call("POST", "/v1/events", {"event": "solo.made", "data": {"n": 1}})
        t1 = time.monotonic()
        if st != 202:
            sys.exit("probe ingest: %d" % st)
        out.append((t0, t1, (t1 - t0) * 1000))
        time.sleep(max(0, every_s - (t1 - t0)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hookd", required=True)
    ap.add_argument("--events", type=int, default=100)
    ap.add_argument("--endpoints", type=int, default=1000)
    ap.add_argument("--probe-ms", type=float, default=10)
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument("serve_flags", nargs="*")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="hookd-fanout-", dir=a.tmpdir)
    serve, port = start_serve(a.hookd, tmp, a.serve_flags)
    try:
        make_endpoints(port, a.endpoints, "bulk.made")
        make_endpoints(port, 1, "solo.made")
        # The prober alone first: the idle figure.
        samples, stop = [], threading.Event()
        t = threading.Thread(target=probe, args=(port, a.probe_ms / 1000, stop, samples))
        t.start()
        time.sleep(2)
        idle = [s[2] for s in samples]
        rss_before, _ = rss(serve.pid)
        body = {"events": [{"event": "bulk.made", "data": {"i": i, "pad": "x" * 64}}
                           for i in range(a.events)]}
        big = Client(port)
        cpu0 = commit_cpu_s(serve.pid)
        t0 = time.monotonic()
        st, resp = big.call("POST", "/v1/events", body)
        t1 = time.monotonic()
        cpu1 = commit_cpu_s(serve.pid)
        time.sleep(0.5)
        stop.set()
        t.join()
        rss_after, peak = rss(serve.pid)
        during = [s[2] for s in samples if s[1] > t0 and s[0] < t1]
        out = {
            "deliveries": a.events * a.endpoints,
            "large_request": {"status": st, "seconds": round(t1 - t0, 3),
                              "response_bytes": len(resp),
                              # The writer's CPU for it (the probes' share is small): what a
                              # part costs on an idle machine, times the number of parts.
                              "commit_thread_cpu_s": None if cpu0 is None or cpu1 is None
                              else round(cpu1 - cpu0, 2)},
            "rss_mb": {"before": round(rss_before, 1), "after": round(rss_after, 1),
                       "peak": round(peak, 1)},
            "single_ingest_ms_idle": {"n": len(idle), "p50": pct(idle, 50),
                                      "p99": pct(idle, 99), "max": pct(idle, 100)},
            "single_ingest_ms_during": {"n": len(during), "p50": pct(during, 50),
                                        "p99": pct(during, 99), "max": pct(during, 100)},
        }
        if st != 202:
            out["large_request"]["error"] = resp[:300].decode(errors="replace")
        print(json.dumps(out, indent=2))
    finally:
        serve.terminate()
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
