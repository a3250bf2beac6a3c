#!/usr/bin/env python3
"""bench/retention.py: what retention (docs/operations.md#retention) does to storage and to the
rest of hookd (standard library only; helpers from bench/bench.py).

  a  steady: events at a fixed rate for 10 minutes with a short --retention (60 s), delivered to
     `hookd mock`; prints the database's size (file, WAL, free pages, from GET /v1/stats) once a
     minute. The file should stop growing after the first window.
  b  purge: a database holding N old, delivered events (N = 1,000,000: 1M events, 1M deliveries,
     1M attempts), then the same window twice: once with --retention off and once with
     --retention 1s, so the purge of the N old events runs through the window. In the window:
     single-event ingest at a fixed rate (open loop; ack p50/p99) to one endpoint, and a backlog
     of deliveries to another endpoint, enabled at the window's start (deliveries/s at its mock).
     The issue asks both to stay within 20 % of the figures without the purge.

--quick runs both with small sizes (about a minute in all) to show the script works; its figures
say little. Usage, from the repository (a release build, as bench/run makes one):

  meson setup build-bench --buildtype=release -Dtests=false && ninja -C build-bench hookd
  python3 bench/retention.py --hookd build-bench/hookd [--quick] [--only a|b] [--keep]
                             [--template FILE]

--template FILE: phase b copies its database of old events from FILE instead of loading it
(FILE is made by the first run that names it), so A/B runs of two builds start alike.

Every process it starts is stopped before it exits; every wait has a deadline.
"""

import argparse
import json
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (BenchError, Client, Proc, event_json, log, paced_sender,  # noqa: E402
                   padded_data, pct, stop_all)

SIZES = {
    "full": {"steady_s": 600, "steady_rate": 200, "steady_retention": "60s", "sample_s": 60,
             "old_events": 1_000_000, "backlog": 200_000, "window_s": 30, "window_rate": 500,
             "deadline_s": 1800},
    "quick": {"steady_s": 20, "steady_rate": 100, "steady_retention": "3s", "sample_s": 2,
              "old_events": 20_000, "backlog": 5_000, "window_s": 5, "window_rate": 200,
              "deadline_s": 120},
}
BATCH = 500


class RetentionBench:
    def __init__(self, o, tmp):
        self.o = o
        self.sz = SIZES["quick" if o.quick else "full"]
        self.tmp = tmp
        self.key = "hk_bench_retention_key_1"

    def start_serve(self, name, db, *extra):
        args = [self.o.hookd, "serve", "--listen", "127.0.0.1:0", "--db", "sqlite:" + db,
                "--api-key", self.key, "--allow-http", "--allow-private-networks",
                "--retry-schedule", "0"] + list(extra)
        s = Proc(name, args, self.tmp).wait_listening()
        Client(s.port).json("GET", "/healthz")
        return s

    def start_mock(self, name):
        return Proc(name, [self.o.hookd, "mock", "--listen", "127.0.0.1:0", "--quiet"],
                    self.tmp).wait_listening()

    def api(self, serve):
        return Client(serve.port, self.key)

    def endpoint(self, serve, mock, events, enabled=True):
        body = {"url": "http://127.0.0.1:%d/in" % mock.port, "events": events,
                "enabled": enabled, "max_in_flight": 64}
        return self.api(serve).json("POST", "/v1/endpoints", body, expect=(201,))

    def size(self, serve):
        return self.api(serve).json("GET", "/v1/stats?window=5m")["store"]["size"]

    def wait(self, what, predicate, deadline_s):
        end = time.monotonic() + deadline_s
        while not predicate():
            if time.monotonic() > end:
                raise BenchError("%s: not within %.0f s" % (what, deadline_s))
            time.sleep(0.2)

    def no_pending(self, serve):
        page = self.api(serve).json("GET", "/v1/deliveries?status=pending&limit=1")
        return not page["data"]

    def load(self, serve, event_type, n):
        """n events in batches of BATCH over one connection."""
        body_one = json.loads(event_json(event_type, padded_data({"n": 0})))
        c = self.api(serve)
        for start in range(0, n, BATCH):
            k = min(BATCH, n - start)
            c.json("POST", "/v1/events", {"events": [body_one] * k}, expect=(202,))

    # -- a: steady rate, size per interval

    def phase_steady(self):
        sz = self.sz
        mock = self.start_mock("steady-mock")
        db = os.path.join(self.tmp, "steady.db")
        serve = self.start_serve("steady", db, "--retention", sz["steady_retention"])
        self.endpoint(serve, mock, ["bench.steady"])
        log("a: %d events/s for %d s, --retention %s" % (
            sz["steady_rate"], sz["steady_s"], sz["steady_retention"]))
        samples, stop = [], threading.Event()

        def sampler():
            t0 = time.monotonic()
            while not stop.wait(sz["sample_s"]):
                s = self.size(serve)
                s["t"] = round(time.monotonic() - t0)
                samples.append(s)
                log("a: t=%ds file=%d wal=%d free=%d" % (
                    s["t"], s["file_bytes"], s["wal_bytes"], s["free_bytes"]))
        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        res = paced_sender(serve.port, self.key, "bench.steady", sz["steady_rate"], sz["steady_s"])
        stop.set()
        th.join(timeout=30)
        serve.stop()
        mock.stop()
        return {"rate": sz["steady_rate"], "seconds": sz["steady_s"],
                "retention": sz["steady_retention"], "acked": res["ok"], "errors": res["errors"],
                "samples": samples}

    # -- b: ingest and delivery during a purge, against the same without it

    def count_old(self, db):
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=30)
        try:
            return con.execute("SELECT count(*) FROM events WHERE type = 'bench.old'").fetchone()[0]
        finally:
            con.close()

    def window(self, serve, mocks, backlog_ep, db):
        """Loads the backlog (its endpoint disabled), then for window_s: enables it, runs the
        paced ingest; returns ack percentiles, backlog deliveries/s and old events deleted."""
        sz = self.sz
        c = self.api(serve)
        c.json("PATCH", "/v1/endpoints/" + backlog_ep, {"enabled": False})
        self.load(serve, "bench.backlog", sz["backlog"])
        before = Client(mocks["backlog"].port).json("GET", "/_mock/stats")["requests"]
        old_before = self.count_old(db)
        t0 = time.monotonic()
        c.json("PATCH", "/v1/endpoints/" + backlog_ep, {"enabled": True})
        res = paced_sender(serve.port, self.key, "bench.live", sz["window_rate"], sz["window_s"])
        took = time.monotonic() - t0
        after = Client(mocks["backlog"].port).json("GET", "/_mock/stats")["requests"]
        old_after = self.count_old(db)
        acks = sorted(res["ack_us"])
        self.wait("the window's deliveries to finish", lambda: self.no_pending(serve),
                  sz["deadline_s"])
        return {"ingest_ok": res["ok"], "ingest_errors": res["errors"],
                "ack_p50_ms": pct(acks, 50) / 1000.0 if acks else None,
                "ack_p99_ms": pct(acks, 99) / 1000.0 if acks else None,
                "backlog_per_s": (after - before) / took,
                "old_deleted_in_window": old_before - old_after, "old_left": old_after}

    def purge_db(self, db, mocks):
        """A serve (--retention off) on a database holding the old events, delivered; the
        backlog endpoint's id. With --template: copied from it if it exists (its endpoints are
        moved to this run's mocks), else made and then saved there for the next runs."""
        tpl = self.o.template
        if tpl and os.path.exists(tpl):
            log("b: copying the old events from %s" % tpl)
            shutil.copyfile(tpl, db)
            if os.path.exists(tpl + "-wal"):
                shutil.copyfile(tpl + "-wal", db + "-wal")
            serve = self.start_serve("purge-load", db, "--retention", "off")
            eps = self.api(serve).json("GET", "/v1/endpoints?limit=10")["data"]
            by_type = {e["events"][0].split(".")[1]: e["id"] for e in eps}
            for k, m in mocks.items():
                self.api(serve).json("PATCH", "/v1/endpoints/" + by_type[k],
                                     {"url": "http://127.0.0.1:%d/in" % m.port})
            return serve, by_type["backlog"]
        serve = self.start_serve("purge-load", db, "--retention", "off")
        self.endpoint(serve, mocks["old"], ["bench.old"])
        self.endpoint(serve, mocks["live"], ["bench.live"])
        backlog_ep = self.endpoint(serve, mocks["backlog"], ["bench.backlog"])["id"]
        log("b: loading %d old events and delivering them" % self.sz["old_events"])
        self.load(serve, "bench.old", self.sz["old_events"])
        self.wait("the old events' deliveries", lambda: self.no_pending(serve),
                  self.sz["deadline_s"])
        if tpl:
            serve.stop()  # checkpoints: the file alone is the database
            shutil.copyfile(db, tpl)
            if os.path.exists(db + "-wal"):
                shutil.copyfile(db + "-wal", tpl + "-wal")
            log("b: saved the loaded database as %s" % tpl)
            serve = self.start_serve("purge-load", db, "--retention", "off")
        return serve, backlog_ep

    def phase_purge(self):
        sz = self.sz
        mocks = {k: self.start_mock("purge-" + k) for k in ("old", "live", "backlog")}
        db = os.path.join(self.tmp, "purge.db")
        serve, backlog_ep = self.purge_db(db, mocks)
        out = {"old_events": sz["old_events"], "backlog": sz["backlog"],
               "window_s": sz["window_s"], "window_rate": sz["window_rate"]}
        log("b: window without retention")
        out["without"] = self.window(serve, mocks, backlog_ep, db)
        serve.stop()
        serve = self.start_serve("purge-on", db, "--retention", "1s")
        log("b: window with --retention 1s (purging the old events)")
        out["with"] = self.window(serve, mocks, backlog_ep, db)
        out["size_after"] = self.size(serve)
        serve.stop()
        for m in mocks.values():
            m.stop()
        return out


def report(r):
    if "steady" in r:
        a = r["steady"]
        print("a  steady %d events/s for %d s, --retention %s: %d acked, %d errors" % (
            a["rate"], a["seconds"], a["retention"], a["acked"], a["errors"]))
        print("   %6s %12s %10s %10s" % ("t (s)", "file bytes", "wal", "free"))
        for s in a["samples"]:
            print("   %6d %12d %10d %10d" % (s["t"], s["file_bytes"], s["wal_bytes"],
                                             s["free_bytes"]))
    if "purge" in r:
        b = r["purge"]
        print("b  %d old events; window %d s at %d events/s; backlog %d" % (
            b["old_events"], b["window_s"], b["window_rate"], b["backlog"]))
        for k in ("without", "with"):
            w = b[k]
            print("   %-7s ack p50 %.2f ms  p99 %.2f ms  backlog %.0f deliveries/s  "
                  "old deleted in window %d, left %d  (ingest errors %d)" % (
                      k, w["ack_p50_ms"] or -1, w["ack_p99_ms"] or -1, w["backlog_per_s"],
                      w["old_deleted_in_window"], w["old_left"], w["ingest_errors"]))


def main():
    ap = argparse.ArgumentParser(description="hookd retention bench")
    ap.add_argument("--hookd", required=True, help="the hookd binary (a release build)")
    ap.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    ap.add_argument("--only", choices=["a", "b"], help="run one phase")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument("--json", default=None, help="also write the results to this file")
    ap.add_argument("--template", default=None,
                    help="b: a database file with the old events; made there if missing, "
                         "copied if present (A/B runs without reloading them)")
    o = ap.parse_args()
    o.hookd = os.path.abspath(o.hookd)
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(128 + sig))
    tmp = tempfile.mkdtemp(prefix="hookd-bench-retention-", dir=o.tmpdir)
    ok, r = False, {"quick": o.quick}
    try:
        b = RetentionBench(o, tmp)
        if o.only in (None, "a"):
            r["steady"] = b.phase_steady()
        if o.only in (None, "b"):
            r["purge"] = b.phase_purge()
        report(r)
        if o.json:
            with open(o.json, "w") as f:
                json.dump(r, f, indent=2)
        ok = True
    except BenchError as e:
        log("failed: %s" % e)
    finally:
        stop_all()
        if o.keep or not ok:
            log("temp dir kept: %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
