#!/usr/bin/env python3
"""bench/knobs.py: measures one setting's effect (docs/performance.md, "Knobs").

Two small experiments built on bench.py's pieces (same mock, same loaders, same temp-dir and
process hygiene), each printing its rate and the CPU every thread of hookd and of the mock used:

  drain N      N events (1 KiB each) ingested for a disabled endpoint, which is then enabled:
               deliveries/s from the receiver's first to its last arrival, and hookd's peak RSS
  e2e N        N events as batch ingests for an enabled endpoint, as bench.py's step b: the
               delivery rate at the receiver, and where the CPU went (loader included)
  single S     wrk POSTing single events for S seconds with the subscribed endpoint paused:
               acknowledged (202) requests/s and the latency wrk saw
  ceiling S    wrk -> the mock for S seconds, as bench.py's step a: the mock's CPU per request
               (and wrk's), to set beside e2e's per delivery

CPU is printed per thread with its context switches; --syscalls (root) adds each thread's
system calls per delivery or request, counted by `perf trace --summary` (root, and Debian's
linux-perf, which bench/run does not install; it slows the traced threads several times over,
so take its counts, not the CPU figures of the same run).

  python3 bench/knobs.py --hookd build-bench/hookd drain 100000 --endpoint-max-in-flight 64 \\
      -- --max-in-flight 16
  python3 bench/knobs.py --hookd build-bench/hookd single 5 --conns 256 -- --sync normal

Flags after `--` go to `hookd serve`. Build the binary first (bench/run does, into build-bench/).
Runs on one machine vary by 10-15 %: compare settings by alternating runs, on an idle machine.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402


def thread_cpu_ticks(pid):
    """{thread name: [user+system clock ticks, voluntary, involuntary context switches, minor
    page faults]} of one process, threads of a name summed."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                s = f.read()
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                status = f.read()
        except OSError:
            continue  # the thread ended
        name = s[s.index("(") + 1:s.rindex(")")]
        fields = s[s.rindex(")") + 2:].split()
        sw = dict(re.findall(r"^(\w+_ctxt_switches):\s+(\d+)", status, re.M))
        row = out.setdefault(name, [0, 0, 0, 0])
        row[0] += int(fields[11]) + int(fields[12])
        row[1] += int(sw.get("voluntary_ctxt_switches", 0))
        row[2] += int(sw.get("nonvoluntary_ctxt_switches", 0))
        row[3] += int(fields[7])
    return out


class CpuWatch:
    """CPU used by each thread of some processes, and by the machine, between start and stop."""

    def __init__(self, procs):
        self.procs = procs
        self.before = [thread_cpu_ticks(p.p.pid) for p in procs]
        self.m0 = B.machine_ticks()
        self.t0 = time.monotonic()

    def report(self, units, unit_name):
        hz = os.sysconf("SC_CLK_TCK")
        elapsed = time.monotonic() - self.t0
        m1 = B.machine_ticks()
        for p, before in zip(self.procs, self.before):
            after = thread_cpu_ticks(p.p.pid)
            tot = [0, 0, 0, 0]
            for name in sorted(after):
                d = [a - b for a, b in zip(after[name], before.get(name, [0, 0, 0, 0]))]
                tot = [t + x for t, x in zip(tot, d)]
                s = d[0] / hz
                if s / elapsed >= 0.02:
                    print("  %-6s %-16s %5.1f %% of a CPU, %5.1f us per %s, per %s: switches "
                          "%.2f voluntary, %.2f involuntary, page faults %.2f" % (
                              p.name, name, 100 * s / elapsed, 1e6 * s / max(units, 1),
                              unit_name, unit_name, d[1] / max(units, 1),
                              d[2] / max(units, 1), d[3] / max(units, 1)))
            print("  %-6s %-16s %5.1f %% of a CPU, %5.1f us per %s, per %s: switches "
                  "%.2f voluntary, %.2f involuntary, page faults %.2f" % (
                      p.name, "(all threads)", 100 * tot[0] / hz / elapsed,
                      1e6 * tot[0] / hz / max(units, 1), unit_name, unit_name,
                      tot[1] / max(units, 1), tot[2] / max(units, 1), tot[3] / max(units, 1)))
        all_t, idle_t = m1[0] - self.m0[0], m1[1] - self.m0[1]
        print("  machine busy %.1f %% of its CPUs" % (100 * (1 - idle_t / max(all_t, 1))))


class SyscallWatch:
    """System calls of each thread of some processes between start and stop, counted by
    `perf trace --summary` (root; the counts are exact, but the traced threads run several times
    slower, so the CPU figures of the same run are not comparable)."""

    HEAD = re.compile(r"^\s*(.+?) \((\d+)\), \d+ events")
    ROW = re.compile(r"^\s+([a-z_0-9]+)\s+(\d+)\s+(\d+)\s+[\d.]+")

    def __init__(self, procs, tmp, on):
        self.runs = []
        if not on:
            return
        if B.shutil.which("perf") is None:
            raise B.BenchError("--syscalls needs perf: apt-get install linux-perf")
        for p in procs:
            out = os.path.join(tmp, "perf-trace-%s.txt" % p.name)
            pt = subprocess.Popen(["perf", "trace", "--summary", "-p", str(p.p.pid),
                                   "-o", out], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
            self.runs.append((p, pt, out))
        time.sleep(1.0)  # perf attaches to every thread before the load starts

    def report(self, units, unit_name):
        for p, pt, out in self.runs:
            pt.send_signal(B.signal.SIGINT)
            try:
                pt.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pt.kill()
                pt.wait()
            per = {}
            name = None
            with open(out) as f:
                for line in f:
                    m = self.HEAD.match(line)
                    if m:
                        name = m.group(1)
                        continue
                    m = self.ROW.match(line)
                    if m and name is not None:
                        row = per.setdefault(name, {})
                        row[m.group(1)] = row.get(m.group(1), 0) + int(m.group(2))
            for name in sorted(per):
                calls = per[name]
                total = sum(calls.values())
                if total < units / 100:
                    continue
                top = sorted(calls.items(), key=lambda x: -x[1])[:8]
                print("  %-6s %-16s %.2f syscalls per %s: %s" % (
                    p.name, name, total / max(units, 1), unit_name, ", ".join(
                        "%s %.2f" % (k, v / max(units, 1)) for k, v in top)))


class InFlightWatch:
    """Samples hookd's deliveries in flight (`hookd_deliveries_in_flight` on /metrics) every
    interval_s while a run goes on: how full the senders keep the receiver. Under a CPU-bound
    run the endpoint's max_in_flight stays reached; bubbles in the hand-offs show as lower
    samples."""

    def __init__(self, serve, key, on, interval_s=0.01):
        self.samples = []
        self.stop_ev = B.threading.Event()
        self.t = None
        if not on:
            return
        self.client = B.Client(serve.port, key)
        self.interval_s = interval_s
        self.t = B.threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop_ev.is_set():
            st, body = self.client.request("GET", "/metrics")
            if st == 200:
                m = re.search(rb"^hookd_deliveries_in_flight (\d+)", body, re.M)
                if m:
                    self.samples.append(int(m.group(1)))
            time.sleep(self.interval_s)

    def report(self, cap):
        if self.t is None:
            return
        self.stop_ev.set()
        self.t.join(timeout=10)
        busy = sorted(v for v in self.samples if v > 0)  # 0: before the first or after the last
        if not busy:
            return
        print("  in flight (%d samples while > 0): mean %.1f, p10 %d, median %d, at the cap "
              "%d %%, below half of it %d %%" % (
                  len(busy), sum(busy) / len(busy), B.pct(busy, 10), B.pct(busy, 50),
                  100 * sum(v >= cap for v in busy) // len(busy),
                  100 * sum(v < cap / 2 for v in busy) // len(busy)))


def setup(o, tmp):
    b = B.Bench(o, tmp)
    b.mock_secret = None
    mock = b.start_mock("mock")
    serve = b.start_serve("serve")
    return b, mock, serve


def drain(o, tmp):
    b, mock, serve = setup(o, tmp)
    ep = b.create_endpoint(serve, mock, "/drain", ["bench.drain"], enabled=False)
    api = B.Client(serve.port, b.key)
    api.json("PATCH", "/v1/endpoints/" + ep["id"], {"max_in_flight": o.endpoint_max_in_flight})
    body = B.event_json("bench.drain", B.padded_data({"n": 0}))
    batch = ('{"events":[' + ",".join([body] * B.BATCH) + "]}").encode()
    ld = B.load_batches(serve.port, b.key, batch, max(o.n // B.BATCH, 1), B.LOAD_CONNS, 900)
    print("loaded %d deliveries in %.1f s (%.0f events/s)" % (
        ld["deliveries"], ld["seconds"], ld["deliveries"] / ld["seconds"]))
    b.mock_stats(mock, reset=True)
    watch = CpuWatch([serve, mock])
    api.json("PATCH", "/v1/endpoints/" + ep["id"], {"enabled": True})
    st = b.wait_mock(mock, ld["deliveries"], 900, "drain")
    span = (st["last_at_us"] - st["first_at_us"]) / 1e6 if st["first_at_us"] else 0
    rate = (st["requests"] - 1) / span if span > 0 else 0
    print("drained %d of %d: %.0f deliveries/s; hookd peak RSS %d MiB" % (
        st["requests"], ld["deliveries"], rate, serve.vm().get("VmHWM", 0) // 1024))
    watch.report(st["requests"], "delivery")


def e2e(o, tmp):
    b, mock, serve = setup(o, tmp)
    ep = b.create_endpoint(serve, mock, "/e2e", ["bench.load"])
    body = B.event_json("bench.load", B.padded_data({"n": 0}))
    batch = ('{"events":[' + ",".join([body] * o.batch) + "]}").encode()
    b.mock_stats(mock, reset=True)
    calls = SyscallWatch([serve, mock], tmp, o.syscalls)
    flight = InFlightWatch(serve, b.key, o.in_flight)
    watch = CpuWatch([serve, mock])
    self_cpu0 = os.times()
    ld = B.load_batches(serve.port, b.key, batch, max(o.n // o.batch, 1), o.loaders, 900)
    st = b.wait_mock(mock, ld["deliveries"], 900, "e2e")
    span = (st["last_at_us"] - st["first_at_us"]) / 1e6 if st["first_at_us"] else 0
    rate = (st["requests"] - 1) / span if span > 0 else 0
    self_cpu1 = os.times()
    print("ingested %d events at %.0f events/s; %d delivered at %.0f deliveries/s" % (
        ld["ok"] * o.batch, ld["ok"] * o.batch / ld["seconds"], st["requests"], rate))
    watch.report(st["requests"], "delivery")
    calls.report(st["requests"], "delivery")
    flight.report(B.EP_MAX_IN_FLIGHT)
    loader = (self_cpu1.user - self_cpu0.user) + (self_cpu1.system - self_cpu0.system)
    print("  loader (this python) %.1f us per delivery" % (1e6 * loader / max(st["requests"], 1)))
    serve.stop()
    for line in serve.stderr_tail(40).splitlines():
        if "commit thread stopped" in line:  # group commit: how many ops shared an fsync
            print("  " + line.strip())
    _ = ep


def single(o, tmp):
    b, mock, serve = setup(o, tmp)
    b.create_endpoint(serve, mock, "/single", ["bench.load"], enabled=False)
    body_path = os.path.join(tmp, "single-body.json")
    hdr_path = os.path.join(tmp, "single-headers.txt")
    with open(body_path, "w") as f:
        f.write(b.load_body)
    with open(hdr_path, "w") as f:
        f.write("Authorization: Bearer %s\n" % b.key)
    B.WRK_CONNS = o.conns
    watch = CpuWatch([serve])
    w = B.run_wrk("http://127.0.0.1:%d/v1/events" % serve.port, o.n, body_path, hdr_path,
                  True, tmp)
    ok = w["statuses"].get(202, 0)
    other = {k: v for k, v in w["statuses"].items() if k != 202}
    print("wrk -c%d: %.0f acknowledged requests/s (202), latency p50 %.1f ms p99 %.1f ms%s" % (
        o.conns, ok / (w["duration_us"] / 1e6), w["latency_p50_us"] / 1000,
        w["latency_p99_us"] / 1000, ", other statuses %r" % other if other else ""))
    watch.report(ok, "request")


def ceiling(o, tmp):
    """wrk -> the mock alone, as bench.py's step a: the mock's CPU (and wrk's) per request."""
    b = B.Bench(o, tmp)
    b.mock_secret = None
    mock = b.start_mock("mock")
    _, body_path, hdr_path = b.ceiling_files()
    B.run_wrk("http://127.0.0.1:%d/ceiling" % mock.port, 1, body_path, hdr_path, False, tmp)
    b.mock_stats(mock, reset=True)
    calls = SyscallWatch([mock], tmp, o.syscalls)
    watch = CpuWatch([mock])
    kids0 = os.times()
    w = B.run_wrk("http://127.0.0.1:%d/ceiling" % mock.port, o.n, body_path, hdr_path, False,
                  tmp)
    kids1 = os.times()
    st = b.mock_stats(mock)
    n = st["requests"]
    print("wrk -c%d: %.0f requests/s, %d at the mock" % (B.WRK_CONNS, w["rate"], n))
    watch.report(n, "request")
    calls.report(n, "request")
    wrk = (kids1.children_user - kids0.children_user) + (
        kids1.children_system - kids0.children_system)
    print("  wrk    (all threads)      %.1f us per request" % (1e6 * wrk / max(n, 1)))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hookd", required=True, help="the hookd binary (release build)")
    ap.add_argument("--endpoint-max-in-flight", type=int, default=B.EP_MAX_IN_FLIGHT,
                    help="drain: the endpoint's max_in_flight (default %(default)s)")
    ap.add_argument("--loaders", type=int, default=B.LOAD_CONNS,
                    help="e2e: connections posting batches (default %(default)s; 1 with small "
                         "batches keeps ingest below delivery, a steady state)")
    ap.add_argument("--batch", type=int, default=B.BATCH,
                    help="e2e: events per batch request (default %(default)s)")
    ap.add_argument("--conns", type=int, default=B.WRK_CONNS,
                    help="single: wrk connections (default %(default)s)")
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument("--syscalls", action="store_true",
                    help="e2e, ceiling: also count system calls per thread (perf trace; root)")
    ap.add_argument("--in-flight", action="store_true",
                    help="e2e: also sample hookd's deliveries in flight every 10 ms (/metrics)")
    ap.add_argument("what", choices=("drain", "e2e", "single", "ceiling"))
    ap.add_argument("n", type=int, help="drain, e2e: events; single, ceiling: seconds")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    o = ap.parse_args(argv[:cut])
    o.serve_args = argv[cut + 1:]  # extra `hookd serve` flags
    o.quick = True
    o.hookd = os.path.abspath(o.hookd)  # the processes run in the temp dir
    tmp = tempfile.mkdtemp(prefix="hookd-knobs-", dir=o.tmpdir)
    try:
        {"drain": drain, "e2e": e2e, "single": single, "ceiling": ceiling}[o.what](o, tmp)
    finally:
        B.stop_all()
        B.shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
