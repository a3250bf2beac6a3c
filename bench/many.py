#!/usr/bin/env python3
"""bench/many.py: issue 16 step 2, many endpoints over HTTPS.

    bench/many.py --hookd build-bench/hookd [--quick] [--tmpdir DIR] [--keep]
                  [-- SERVE FLAGS...]

In its temp dir: a throwaway CA and one certificate whose subjectAltName lists every loopback
address used (127.0.0.1 and 127.0.x.y for each endpoint), and one `hookd mock --tls-cert` bound
to 0.0.0.0, so each endpoint reaches it through an address of its own: N distinct hosts for
libcurl's connection cache and TLS session cache, one receiver process.

1. One endpoint (the reference): bench/https.py's end to end, E events -> one endpoint
   (max_in_flight 64) on a fresh `hookd serve --ca-file CA`; deliveries/s at the mock.
2. Many endpoints: a fresh serve, N endpoints at https://127.0.x.y:PORT/many/i (default
   max_in_flight), all subscribed to one event; D/N events give D deliveries. Deliveries/s at
   the mock (first to last arrival) and its ratio to 1. Meanwhile a thread samples hookd's
   established connections to the mock (/proc/PID/net/tcp) every 50 ms: the peak. From
   /metrics: connections opened and TLS handshakes per 1,000 deliveries.
3. Steady: 10 more endpoints subscribed to another event; an open-loop sender posts R events/s
   (each to those 10: 10 R deliveries/s) for S s; ingest -> receiver latency from each event's
   send time (data.sent_us) to the mock's arrival time (--record-us), p50 / p99 over every
   delivery. Then hookd's peak RSS (VmHWM, over 2 and 3).
Every process it starts is stopped. Figures are JSON on stdout; progress on stderr.
"""
import argparse
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402  (processes, clients, loaders)
import https as h  # noqa: E402  (certificates, step 1's end to end, /metrics counters)
from shapes import established  # noqa: E402  (hookd's sockets to a port, /proc)

SIZES = {"full": {"endpoints": 1000, "deliveries": 100_000, "one_events": 100_000,
                  "steady_rate": 1000, "steady_s": 10, "deadline_s": 300},
         "quick": {"endpoints": 200, "deliveries": 10_000, "one_events": 10_000,
                   "steady_rate": 1000, "steady_s": 3, "deadline_s": 120}}
STEADY_FANOUT = 10
MANY_BATCH = 10  # events per ingest request: 10 x N deliveries (compact answer)
# The mock's threads: libmicrohttpd shares its connections out over them, and each thread's
# turn costs more the more connections it holds; with 1,000+ connections 2 threads answered a
# kept-alive request in 0.6 s on average, 8 in 0.15 s (loaded machine, docs/performance.md).
MOCK_THREADS = 8
ANY_LISTEN = re.compile(r"listening on https://0\.0\.0\.0:(\d+)\s*$", re.M)


def addr(i):
    """The loopback address of endpoint i: 127.0.1.1, 127.0.1.2, ... (250 per /24)."""
    return "127.0.%d.%d" % (1 + i // 250, 1 + i % 250)


def make_certs(tmp, n):
    """The CA and one certificate valid for 127.0.0.1 and addr(0..n-1): (ca, cert, key)."""
    return h.make_certs(tmp, ["127.0.0.1"] + [addr(i) for i in range(n)])


def start_mock(o, tmp, name, ca, cert, key, record=False):
    """A TLS mock on 0.0.0.0 (reached through every 127.x address); with record, its arrivals
    go to NAME.jsonl with their time (mock.rec)."""
    args = [o.hookd, "mock", "--listen", "0.0.0.0:0", "--quiet", "--tls-cert", cert,
            "--tls-key", key, "--threads", str(MOCK_THREADS)]
    rec = os.path.join(tmp, name + ".jsonl")
    if record:
        args += ["--record", rec, "--record-us"]
    m = b.Proc(name, args, tmp)
    end = time.monotonic() + 20
    while m.port is None:
        with open(m.out_path, encoding="utf-8", errors="replace") as f:
            hit = ANY_LISTEN.search(f.read())
        if hit:
            m.port = int(hit.group(1))
        elif m.p.poll() is not None or time.monotonic() > end:
            raise b.BenchError("%s did not listen:\n%s" % (name, m.stderr_tail()))
        else:
            time.sleep(0.02)
    m.tls = ssl.create_default_context(cafile=ca)  # for GET /_mock/stats
    m.rec = rec
    return m


def start_serve(o, bn, tmp, name, ca):
    s = b.Proc(name, [o.hookd, "serve", "--listen", "127.0.0.1:0", "--db",
                      "sqlite:" + os.path.join(tmp, name + ".db"), "--api-key", bn.key,
                      "--allow-private-networks", "--ca-file", ca] + o.serve_args,
               tmp).wait_listening()
    b.Client(s.port).json("GET", "/healthz")
    return s


class PeakConns:
    """Samples established(pid, port) every 50 ms in a thread until stopped: the peak."""

    def __init__(self, pid, port):
        self.peak, self.samples = 0, 0
        self.stop_ev = threading.Event()

        def run():
            while not self.stop_ev.is_set():
                try:
                    self.peak = max(self.peak, established(pid, port))
                    self.samples += 1
                except OSError:
                    return
                self.stop_ev.wait(0.05)
        self.t = threading.Thread(target=run, daemon=True)
        self.t.start()

    def stop(self):
        self.stop_ev.set()
        self.t.join()
        return self.peak


def create_endpoints(serve, key, urls, event):
    c = b.Client(serve.port, key)
    for u in urls:
        c.json("POST", "/v1/endpoints", {"url": u, "events": [event]}, expect=(201,))
    c.close()


def gauge(serve, key, name):
    """A gauge from hookd's /metrics (None if it has none: an older hookd)."""
    st, raw = b.Client(serve.port, key).request("GET", "/metrics")
    hit = re.search("^" + name + r" (\d+)$", raw.decode(), re.M) if st == 200 else None
    return int(hit.group(1)) if hit else None


def phase_many(bn, serve, mock, sz):
    n, d = sz["endpoints"], sz["deliveries"]
    b.log("many: %d endpoints over HTTPS, %d deliveries" % (n, d))
    create_endpoints(serve, bn.key, ["https://%s:%d/many/%d" % (addr(i), mock.port, i)
                                     for i in range(n)], "many.load")
    per_req = MANY_BATCH * n
    n_req = (d + per_req - 1) // per_req
    body = ('{"events":[' + ",".join(
        [b.event_json("many.load", b.padded_data({"n": 0}))] * MANY_BATCH) + "]}").encode()
    bn.mock_stats(mock, reset=True)
    peak = PeakConns(serve.p.pid, mock.port)
    opened0, full0, res0 = h.connection_counters(serve, bn.key)
    ld = b.load_batches(serve.port, bn.key, body, n_req, 2, sz["deadline_s"])
    if ld["errors"]:
        peak.stop()
        raise b.BenchError("many: %d ingest requests failed, first: %s" % (
            ld["errors"], ld["first_error"]))
    want = n_req * per_req
    st = bn.wait_mock(mock, want, sz["deadline_s"], "many")
    conns = peak.stop()
    if st["requests"] < want // 2:
        raise b.BenchError("many: %d of %d deliveries arrived" % (st["requests"], want))
    # A few short: attempts failed and wait for their retry (the log says why); the rate is
    # over what arrived, and "missing" says how many.
    opened, full, res = h.connection_counters(serve, bn.key)
    opened, full, res = opened - opened0, full - full0, res - res0
    open_now = gauge(serve, bn.key, "hookd_connections_open")
    span = (st["last_at_us"] - st["first_at_us"]) / 1e6
    rate = (st["requests"] - 1) / span if span > 0 else None
    b.log("many: %.0f deliveries/s; peak %d connections; %d opened, %d+%d handshakes" % (
        rate or 0, conns, opened, full, res))
    return {"endpoints": n, "deliveries": st["requests"], "missing": want - st["requests"],
            "deliveries_per_s": round(rate) if rate else None,
            "ingest_s": round(ld["seconds"], 2), "peak_connections": conns,
            "connections_open_after": open_now,
            "conn_samples": peak.samples, "connections_opened": opened,
            "tls_full": full, "tls_resumed": res,
            "connections_per_1000": round(1000 * opened / st["requests"], 2),
            "handshakes_per_1000": round(1000 * (full + res) / st["requests"], 2)}


def phase_steady(bn, serve, mock, sz):
    rate, secs = sz["steady_rate"], sz["steady_s"]
    b.log("steady: %d events/s x %d endpoints for %d s" % (rate, STEADY_FANOUT, secs))
    create_endpoints(serve, bn.key, ["https://%s:%d/steady/%d" % (addr(i), mock.port, i)
                                     for i in range(STEADY_FANOUT)], "steady.load")
    snd = b.paced_sender(serve.port, bn.key, "steady.load", rate, secs)
    if snd["errors"]:
        b.log("steady: %d ingest calls failed, first: %s" % (snd["errors"], snd["first_error"]))
    bn.wait_mock(mock, snd["ok"] * STEADY_FANOUT, 60, "steady")
    lat = []
    with open(mock.rec, "rb") as f:
        for line in f:
            if b'"/steady/' not in line:
                continue
            r = json.loads(line)
            lat.append(r["at_us"] - json.loads(r["body"])["data"]["sent_us"])
    lat.sort()
    out = {"events_per_s": rate, "fanout": STEADY_FANOUT, "seconds": secs,
           "events_ok": snd["ok"], "arrived": len(lat),
           "p50_ms": b.ms(b.pct(lat, 50)), "p99_ms": b.ms(b.pct(lat, 99)),
           "max_ms": b.ms(lat[-1] if lat else None), "sender_late": snd["late"],
           "sender_max_behind_ms": round(snd["max_behind_ms"], 2)}
    b.log("steady: p50 %s ms, p99 %s ms (%d of %d arrived)" % (
        out["p50_ms"], out["p99_ms"], len(lat), snd["ok"] * STEADY_FANOUT))
    return out


def run(o, tmp):
    sz = SIZES["quick" if o.quick else "full"]
    bn = b.Bench(o, tmp)
    ca, cert, key = make_certs(tmp, sz["endpoints"] + STEADY_FANOUT)
    mock = start_mock(o, tmp, "many-mock", ca, cert, key)
    b.log("one: %d events to one HTTPS endpoint" % sz["one_events"])
    serve = start_serve(o, bn, tmp, "one-serve", ca)
    one_rate, _ = h.e2e(bn, serve, mock, sz["one_events"], sz["deadline_s"])
    serve.stop()
    serve = start_serve(o, bn, tmp, "many-serve", ca)
    many = phase_many(bn, serve, mock, sz)
    many["one_endpoint_per_s"] = round(one_rate) if one_rate else None
    many["ratio"] = (round(many["deliveries_per_s"] / one_rate, 3)
                     if one_rate and many["deliveries_per_s"] else None)
    many["goal_ratio"] = 0.7
    many["connection_cap"] = max(flag(o.serve_args, "--max-in-flight", 256),
                                 flag(o.serve_args, "--max-connections", 1536))
    mock.stop()
    rec = start_mock(o, tmp, "steady-mock", ca, cert, key, record=True)
    steady = phase_steady(bn, serve, rec, sz)
    many["peak_rss_mb"] = round(serve.vm().get("VmHWM", 0) / 1024, 1)
    serve.stop()
    return {"many_endpoints": many, "steady": steady}


def flag(serve_args, name, default):
    """An integer serve flag as passed after -- (else hookd's default). The connection cap is
    --max-connections, raised to --max-in-flight (docs/operations.md#delivery-connections)."""
    for i, a in enumerate(serve_args):
        if a == name and i + 1 < len(serve_args):
            return int(serve_args[i + 1])
        if a.startswith(name + "="):
            return int(a.split("=", 1)[1])
    return default


def main():
    ap = argparse.ArgumentParser(description="hookd many-endpoints HTTPS bench (bench/run)")
    ap.add_argument("--hookd", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument("serve_args", nargs="*", help="extra `hookd serve` flags (after --)")
    o = ap.parse_args()
    o.hookd = os.path.abspath(o.hookd)

    def on_term(sig, frame):  # timeout(1) in bench/run: stop the children on the way out
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    tmp = tempfile.mkdtemp(prefix="hookd-many-", dir=o.tmpdir)
    ok = False
    try:
        t0 = time.monotonic()
        out = run(o, tmp)
        out["seconds"] = round(time.monotonic() - t0, 1)
        print(json.dumps(out, indent=1))
        ok = True
    except (b.BenchError, subprocess.CalledProcessError, OSError) as e:
        b.log("failed: %s" % e)
    finally:
        b.stop_all()
        if o.keep or not ok:
            b.log("temp dir kept: %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
