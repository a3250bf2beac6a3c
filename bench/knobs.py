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

  python3 bench/knobs.py --hookd build-bench/hookd drain 100000 --endpoint-max-in-flight 64 \\
      -- --max-in-flight 16
  python3 bench/knobs.py --hookd build-bench/hookd single 5 --conns 256 -- --sync normal

Flags after `--` go to `hookd serve`. Build the binary first (bench/run does, into build-bench/).
Runs on one machine vary by 10-15 %: compare settings by alternating runs, on an idle machine.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402


def thread_cpu_ticks(pid):
    """{thread name: user+system clock ticks} of one process, threads of a name summed."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                s = f.read()
        except OSError:
            continue  # the thread ended
        name = s[s.index("(") + 1:s.rindex(")")]
        fields = s[s.rindex(")") + 2:].split()
        out[name] = out.get(name, 0) + int(fields[11]) + int(fields[12])
    return out


def machine_ticks():
    """(all, idle) clock ticks of the machine so far."""
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:]))
    return sum(v), v[3] + v[4]


class CpuWatch:
    """CPU used by each thread of some processes, and by the machine, between start and stop."""

    def __init__(self, procs):
        self.procs = procs
        self.before = [thread_cpu_ticks(p.p.pid) for p in procs]
        self.m0 = machine_ticks()
        self.t0 = time.monotonic()

    def report(self, units, unit_name):
        hz = os.sysconf("SC_CLK_TCK")
        elapsed = time.monotonic() - self.t0
        m1 = machine_ticks()
        for p, before in zip(self.procs, self.before):
            after = thread_cpu_ticks(p.p.pid)
            for name in sorted(after):
                s = (after[name] - before.get(name, 0)) / hz
                if s / elapsed >= 0.02:
                    print("  %-6s %-16s %5.1f %% of a CPU, %5.1f us per %s" % (
                        p.name, name, 100 * s / elapsed, 1e6 * s / max(units, 1), unit_name))
        all_t, idle_t = m1[0] - self.m0[0], m1[1] - self.m0[1]
        print("  machine busy %.1f %% of its CPUs" % (100 * (1 - idle_t / max(all_t, 1))))


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
    ap.add_argument("what", choices=("drain", "e2e", "single"))
    ap.add_argument("n", type=int, help="drain, e2e: events; single: seconds")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    o = ap.parse_args(argv[:cut])
    o.serve_args = argv[cut + 1:]  # extra `hookd serve` flags
    o.quick = True
    o.hookd = os.path.abspath(o.hookd)  # the processes run in the temp dir
    tmp = tempfile.mkdtemp(prefix="hookd-knobs-", dir=o.tmpdir)
    try:
        {"drain": drain, "e2e": e2e, "single": single}[o.what](o, tmp)
    finally:
        B.stop_all()
        B.shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
