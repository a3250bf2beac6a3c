#!/usr/bin/env python3
"""bench/pg.py: hookd on PostgreSQL against hookd on SQLite, in the same run (bench/run --db
postgres runs this; standard library only).

It starts a throwaway PostgreSQL 15 cluster of its own (tests/pg/cluster.sh: initdb + pg_ctl in
a temp dir, a free loopback port, as the `postgres` user when run as root) with durable settings
(fsync on, full_page_writes on; hookd's --sync full sets synchronous_commit on), `hookd mock`,
and a fresh `hookd serve` (and database) for every measurement. The runs alternate between the
backends (SQLite, PostgreSQL, then PostgreSQL, SQLite...), so the machine's drift lands on both:

  b   end-to-end deliveries/s: batch ingest of N events -> store -> signed POST -> mock, counted
      at the mock from its first to its last arrival (bench.py's phase b)
  i   batch ingest events/s with the endpoints disabled (every 202 committed its event and
      delivery rows; nothing delivered)
  c   single-event ingest requests/s (wrk, endpoints disabled), every reply a 202
  n   with --nodes N (> 1): phase b on N `hookd serve` processes on one database, the batches
      spread over their APIs, against one node on the same shape (several endpoints, so that
      ownership can spread)
  w   with --nodes N (> 1): ingest -> receiver latency on N nodes: single-event POSTs at a steady
      WAKE_RATE events/s (open loop, paced by the clock, spread over the nodes' APIs, each event
      to one of the endpoints), for a fixed time; the mock records each arrival; p50/p99 of
      arrival - send time (bench.py's phase d). Target: p99 < 20 ms at 500 events/s, 3 nodes

pg_stat_statements (preloaded) counts the statements of the first PostgreSQL run of b and i:
the report gives statements per delivery (per event for i) and the busiest statements with
their rows per call. Every process is stopped before it exits; every wait has a deadline.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as B  # noqa: E402  (bench.py's processes, clients, loaders)

CLUSTER_SH = os.path.join(B.REPO, "tests", "pg", "cluster.sh")
# Durable, as a production server would be (cluster.sh's defaults are for tests: fsync off).
PG_SETTINGS = ("-c fsync=on -c full_page_writes=on -c synchronous_commit=on "
               "-c shared_buffers=128MB -c wal_buffers=16MB -c max_wal_size=4GB "
               "-c checkpoint_timeout=15min -c shared_preload_libraries=pg_stat_statements "
               "-c pg_stat_statements.track=all -c pg_stat_statements.max=1000")

SIZES = {
    "full": {"e2e_events": 100_000, "rounds": 2, "ingest_events": 100_000, "single_s": 10,
             "deadline_s": 600},
    "quick": {"e2e_events": 10_000, "rounds": 1, "ingest_events": 10_000, "single_s": 3,
              "deadline_s": 120},
}
NODE_ENDPOINTS = 12  # endpoints in phase n (each event goes to one of them)
WAKE_RATE = 500  # events/s in phase w
WAKE_SECONDS = {"full": 30, "quick": 8}
WAKE_P99_MS = 20


def psql_bin():
    p = "/usr/lib/postgresql/15/bin/psql"
    return p if os.access(p, os.X_OK) else (shutil.which("psql") or "psql")


class Cluster:
    """The throwaway PostgreSQL cluster: cluster.sh start/stop, psql, databases."""

    def __init__(self):
        # A short path: the unix socket lives in it (at most 107 bytes).
        self.dir = tempfile.mkdtemp(prefix="hookd-pgb.", dir="/tmp")
        os.rmdir(self.dir)  # cluster.sh makes it (empty) and gives it to postgres
        env = dict(os.environ, HOOKD_PG_SETTINGS=PG_SETTINGS)
        res = subprocess.run([CLUSTER_SH, "start", self.dir], capture_output=True, text=True,
                             timeout=120, env=env)
        if res.returncode != 0:
            raise B.BenchError("cluster.sh start failed: %s" % res.stderr[-2000:])
        self.admin = res.stdout.strip().splitlines()[-1]
        self.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        self.n_db = 0

    def sql(self, statement, url=None):
        """Runs one statement; returns rows as lists of fields."""
        res = subprocess.run([psql_bin(), "-X", "-v", "ON_ERROR_STOP=1", "-tA", "-F", "\x1f",
                              "-R", "\x1e", "-c", statement, url or self.admin],
                             capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise B.BenchError("psql: %s: %s" % (statement[:80], res.stderr[-500:]))
        return [[f.strip() for f in r.split("\x1f")] for r in res.stdout.split("\x1e")
                if r.strip()]

    def new_db(self):
        """A fresh database; returns (name, the --db URL for it). The one before is dropped
        and a checkpoint written first, so every run starts on the same cluster: runs on a
        cluster keeping every earlier database (about 300 MB a full run, against 128 MB of
        shared buffers) went slower one after another, by up to a third, as new pages had to
        evict the earlier runs' dirty ones."""
        if self.n_db:
            self.sql("DROP DATABASE IF EXISTS bench_%d WITH (FORCE)" % self.n_db)
            self.sql("CHECKPOINT")
        self.n_db += 1
        name = "bench_%d" % self.n_db
        self.sql("CREATE DATABASE " + name)
        return name, self.admin.replace(":///postgres?", ":///%s?" % name, 1)

    def settings(self):
        names = ("server_version", "fsync", "synchronous_commit", "full_page_writes",
                 "shared_buffers", "wal_buffers", "max_wal_size", "checkpoint_timeout")
        rows = self.sql("SELECT " + ", ".join("current_setting('%s')" % n for n in names))
        return dict(zip(names, rows[0]))

    def stats_reset(self):
        self.sql("SELECT pg_stat_statements_reset()")

    def stats(self, db):
        """The statements run in db since the reset: [(calls, rows, ms, query)]."""
        rows = self.sql("SELECT calls, rows, round(total_exec_time::numeric, 1), "
                        "regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_statements "
                        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '%s') "
                        "ORDER BY calls DESC" % db)
        return [(int(r[0]), int(r[1]), float(r[2]), r[3]) for r in rows]

    def stop(self):
        subprocess.run([CLUSTER_SH, "stop", self.dir], capture_output=True, timeout=120)


class PgBench(B.Bench):
    def __init__(self, opts, tmp, cluster):
        super().__init__(opts, tmp)
        self.psz = dict(SIZES["quick" if opts.quick else "full"])
        if opts.events:
            self.psz["e2e_events"] = opts.events
        self.pg = cluster

    def start_serve(self, name, extra=(), db=None):
        """db: a PostgreSQL URL, or None for a fresh SQLite file."""
        if db is None:
            return super().start_serve(name, extra)
        args = [self.o.hookd, "serve", "--listen", "127.0.0.1:0", "--db", db,
                "--api-key", self.key, "--allow-http", "--allow-private-networks"]
        s = B.Proc(name, args + self.o.serve_args + list(extra), self.tmp).wait_listening()
        s.db = db
        B.Client(s.port).json("GET", "/healthz")
        return s

    def start_nodes(self, backend, key):
        """One `hookd serve` on a fresh database; returns ([serve], pg database or None)."""
        db = dbname = None
        if backend == "pg":
            dbname, db = self.pg.new_db()
        first = self.start_serve("serve-%s-%s" % (key, backend), db=db)
        return [first], dbname

    def more_nodes(self, serves, backend, key, nodes):
        for i in range(1, nodes):
            serves.append(self.start_serve("serve-%s-%s-%d" % (key, backend, i),
                                           ["--node-id", "bench-%d" % i], db=serves[0].db))
        if nodes > 1:
            self.wait_owned(serves, NODE_ENDPOINTS)

    def wait_owned(self, serves, k, deadline_s=30.0):
        """Polls GET /v1/stats on every node until the k endpoints are owned and the owners
        stayed the same for 2 s (ownership settled before the load starts: rendezvous hashing
        may leave a node none); logs and goes on at the deadline."""
        end = time.monotonic() + deadline_s
        owned, last, since = [], None, time.monotonic()
        while time.monotonic() < end:
            owned = []
            for s in serves:
                node = B.Client(s.port, self.key).json("GET", "/v1/stats").get("node") or {}
                owned.append(node.get("endpoints_owned") or 0)
            if owned != last:
                last, since = owned, time.monotonic()
            elif sum(owned) == k and time.monotonic() - since >= 2:
                B.log("n: endpoints owned per node: %s" % owned)
                self.r.setdefault("n_owned", []).append(owned)
                return
            time.sleep(0.2)
        B.log("n: ownership not settled after %.0f s: %s" % (deadline_s, owned))

    def endpoints(self, serve, mock, k, enabled=True):
        """k endpoints, endpoint i subscribed to bench.load.i only."""
        return [self.create_endpoint(serve, mock, "/webhooks/%d" % i, ["bench.load.%d" % i],
                                     secret=self.mock_secret, enabled=enabled)
                for i in range(k)]

    def batch_body(self, k):
        evs = [B.event_json("bench.load.%d" % (i % k), B.padded_data({"n": i}))
               for i in range(B.BATCH)]
        return ('{"events":[' + ",".join(evs) + "]}").encode()

    def load(self, serves, body, n_batches, conns=B.LOAD_CONNS):
        """bench.py's load_batches over the nodes' APIs: conns connections, connection i to node
        i mod N, all taking batches from one count (a node that answers sooner takes more)."""
        return B.load_batches([s.port for s in serves], self.key, body, n_batches,
                              max(conns, len(serves)), self.psz["deadline_s"])

    def node_conns(self):
        """Phase n's client connections, the same in its 1-node and N-node runs: LOAD_CONNS
        rounded up to a multiple of --nodes, so each of N nodes has as many (4 over 3 nodes
        would be 2/1/1, and the nodes with one would ingest a batch at a time)."""
        n = self.o.nodes
        return (B.LOAD_CONNS + n - 1) // n * n

    def counted(self, backend, dbname, run, label):
        """Keeps pg_stat_statements' view of run's database (first PostgreSQL run of label)."""
        if backend == "pg" and label not in self.r.setdefault("statements", {}):
            self.r["statements"][label] = {"stats": self.pg.stats(dbname), "units": run}

    def phase_e2e(self, mock, backend, key, nodes=1, k=1, conns=B.LOAD_CONNS):
        """b (and n): N events, each to one of k endpoints, batch ingest over conns client
        connections; the delivery rate at the mock."""
        serves, dbname = self.start_nodes(backend, key)
        self.endpoints(serves[0], mock, k)
        self.more_nodes(serves, backend, key, nodes)
        n_batches = (self.psz["e2e_events"] + B.BATCH - 1) // B.BATCH
        body = self.batch_body(k)
        B.log("%s: %s, %d node(s), %d endpoint(s): %d events" % (
            key, backend, nodes, k, n_batches * B.BATCH))
        if backend == "pg":
            self.pg.stats_reset()
        self.mock_stats(mock, reset=True)
        t_send = B.now_us()
        m0 = B.machine_ticks()
        ld = self.load(serves, body, n_batches, conns)
        if ld["errors"]:
            B.log("%s: %d batch requests failed, first: %s" % (key, ld["errors"],
                                                                ld["first_error"]))
        st = self.wait_mock(mock, ld["deliveries"], self.psz["deadline_s"], key)
        m1 = B.machine_ticks()
        self.mock_stats(mock, reset=True)
        for s in reversed(serves):
            s.stop()
        span = (st["last_at_us"] - st["first_at_us"]) / 1e6 if st["first_at_us"] else 0
        got = st["requests"]
        run = {"backend": backend, "nodes": nodes, "endpoints": k, "delivered": got,
               "expected": ld["deliveries"], "non_2xx": st["replied_other"],
               "rate": (got - 1) / span if span > 0 and got >= ld["deliveries"] else None,
               "wall_rate": got / ((st["last_at_us"] - t_send) / 1e6) if st["last_at_us"]
               else None, "ingest_events_per_s": ld["ok"] * B.BATCH / ld["seconds"],
               "ingest_errors": ld["errors"]}
        # The whole machine's CPU from the first batch sent to the last delivery counted: how
        # busy it was, and the CPU time per 1,000 deliveries (every process: the nodes,
        # PostgreSQL, the mock, this client).
        busy, idle = m1[0] - m0[0] - (m1[1] - m0[1]), m1[1] - m0[1]
        run["cpu_busy"] = busy / (busy + idle) if busy + idle else None
        run["cpu_ms_per_1000"] = (1e6 * busy / os.sysconf("SC_CLK_TCK") / got) if got else None
        if got < ld["deliveries"]:
            B.log("%s: only %d of %d deliveries arrived: no rate" % (key, got,
                                                                      ld["deliveries"]))
        self.counted(backend, dbname, got, "b (per delivery)" if nodes == 1 and k == 1
                     else "n%d (per delivery)" % nodes)
        B.log("%s: %s deliveries/s (%d of %d), batch ingest %.0f events/s" % (
            key, B.fmt_rate(run["rate"]), got, ld["deliveries"], run["ingest_events_per_s"]))
        return run

    def phase_ingest(self, mock, backend, key):
        """i: batch ingest with the endpoint disabled: events/s, all 202."""
        serves, dbname = self.start_nodes(backend, key)
        self.endpoints(serves[0], mock, 1, enabled=False)
        n_batches = (self.psz["ingest_events"] + B.BATCH - 1) // B.BATCH
        if backend == "pg":
            self.pg.stats_reset()
        ld = self.load(serves, self.batch_body(1), n_batches)
        serves[0].stop()
        run = {"backend": backend, "events_per_s": ld["ok"] * B.BATCH / ld["seconds"],
               "errors": ld["errors"], "first_error": ld["first_error"]}
        self.counted(backend, dbname, ld["ok"] * B.BATCH, "i (per event)")
        B.log("%s: %s: batch ingest %.0f events/s, %d errors" % (
            key, backend, run["events_per_s"], ld["errors"]))
        return run

    def phase_single(self, mock, backend, key):
        """c: wrk posts single events (endpoint disabled); 202s per second."""
        serves, _ = self.start_nodes(backend, key)
        self.endpoints(serves[0], mock, 1, enabled=False)
        body_path = os.path.join(self.tmp, "single-body.json")
        hdr_path = os.path.join(self.tmp, "single-headers.txt")
        with open(body_path, "w") as f:
            f.write(B.event_json("bench.load.0", B.padded_data({"n": 0})))
        with open(hdr_path, "w") as f:
            f.write("Authorization: Bearer %s\n" % self.key)
        w = B.run_wrk("http://127.0.0.1:%d/v1/events" % serves[0].port, self.psz["single_s"],
                      body_path, hdr_path, True, self.tmp)
        serves[0].stop()
        ok = w["statuses"].get(202, 0)
        run = {"backend": backend, "rate_202": ok / (w["duration_us"] / 1e6),
               "other": {k: v for k, v in w["statuses"].items() if k != 202},
               "socket_errors": w["errors"], "p99_ms": w["latency_p99_us"] / 1000}
        B.log("%s: %s: %.0f requests/s (202), p99 %.1f ms, other %r" % (
            key, backend, run["rate_202"], run["p99_ms"], run["other"]))
        return run

    def phase_wake(self, nodes):
        """w: ingest -> receiver latency at WAKE_RATE events/s on nodes nodes (PostgreSQL)."""
        secs = WAKE_SECONDS["quick" if self.o.quick else "full"]
        self.wake_n = getattr(self, "wake_n", 0) + 1
        rec = os.path.join(self.tmp, "wake-%d.jsonl" % self.wake_n)  # one per run
        mock = self.start_mock("mock-wake", "--record", rec, "--record-us",
                               secret=self.mock_secret)
        serves, _ = self.start_nodes("pg", "w")
        self.endpoints(serves[0], mock, NODE_ENDPOINTS)
        self.more_nodes(serves, "pg", "w", nodes)
        if nodes == 1:
            self.wait_owned(serves, NODE_ENDPOINTS)  # one node claims them at its first tick
        B.log("w: %d events/s for %d s, single-event POSTs over %d node(s), open loop" % (
            WAKE_RATE, secs, nodes))
        snd = B.paced_sender([s.port for s in serves], self.key,
                             lambda i: "bench.load.%d" % (i % NODE_ENDPOINTS), WAKE_RATE, secs)
        if snd["errors"]:
            B.log("w: %d ingest calls failed, first: %s" % (snd["errors"], snd["first_error"]))
        self.wait_mock(mock, snd["ok"], 60, "w")
        for s in reversed(serves):
            s.stop()
        mock.stop()
        hops = [node_hops(s) for s in serves]
        lat, dup = B.arrival_latencies(rec)
        acks = sorted(snd["ack_us"])
        run = {"nodes": nodes, "rate": WAKE_RATE, "seconds": secs, "sent": snd["sent"],
               "ok": snd["ok"], "errors": snd["errors"], "arrived": len(lat),
               "duplicates": dup, "p50_ms": B.ms(B.pct(lat, 50)),
               "p99_ms": B.ms(B.pct(lat, 99)), "max_ms": B.ms(lat[-1] if lat else None),
               "ack_p99_ms": B.ms(B.pct(acks, 99)), "sender_late": snd["late"],
               "sender_max_behind_ms": round(snd["max_behind_ms"], 2), "hops": hops}
        B.log("w: p50 %s ms, p99 %s ms (%d of %d arrived; sender late %d times, by <= %.1f ms)"
              % (run["p50_ms"], run["p99_ms"], len(lat), snd["ok"], snd["late"],
                 snd["max_behind_ms"]))
        return run

    def run_only_wake(self):
        """--only w: phase w alone, --wake-runs times, on --nodes nodes (1 allowed)."""
        self.r["pg_settings"] = self.pg.settings()
        self.r["w_runs"] = [self.phase_wake(self.o.nodes) for _ in range(self.o.wake_runs)]
        self.r["w"] = self.r["w_runs"][0]
        return self.r

    def run_nodes(self, mock, pairs):
        """Phase n: pairs of runs (one node, --nodes nodes), the order alternating."""
        for r in range(pairs):
            order = (1, self.o.nodes) if r % 2 == 0 else (self.o.nodes, 1)
            for n in order:
                self.r.setdefault("n", []).append(
                    self.phase_e2e(mock, "pg", "n%d" % r, nodes=n, k=NODE_ENDPOINTS,
                                   conns=self.node_conns()))

    def run_pg(self):
        if self.o.only == "w":
            return self.run_only_wake()
        mock = self.start_mock("mock", secret=self.mock_secret)
        self.r["pg_settings"] = self.pg.settings()
        if self.o.only == "n":
            self.run_nodes(mock, self.o.n_runs)
            mock.stop()
            return self.r
        for r in range(self.psz["rounds"]):
            order = ("sqlite", "pg") if r % 2 == 0 else ("pg", "sqlite")
            for be in order:
                self.r.setdefault("b", []).append(self.phase_e2e(mock, be, "b%d" % r))
        for be in ("sqlite", "pg"):
            self.r.setdefault("i", []).append(self.phase_ingest(mock, be, "i"))
        for be in ("pg", "sqlite"):
            self.r.setdefault("c", []).append(self.phase_single(mock, be, "c"))
        if self.o.nodes > 1:
            self.run_nodes(mock, self.psz["rounds"])
        if self.o.nodes > 1:
            self.r["w"] = self.phase_wake(self.o.nodes)
        mock.stop()
        return self.r


# ---- output ----------------------------------------------------------------------------------

def node_hops(serve):
    """The `hops:` lines a stopped node logged (src/hops.h): {stage: {n, p50_us, ...}}."""
    out = {}
    for path in (serve.out_path, serve.err_path):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                at = line.find(" hops: ")
                if at < 0:
                    continue
                words = line[at + 7:].split()
                out[words[0]] = {k: float(v) for k, v in (w.split("=", 1) for w in words[1:])}
    return out


def print_hops(out, runs):
    """Per stage: the median over runs of each node's p50 and p99 (µs), and the nodes' max."""
    stages = []
    for w in runs:
        for h in w.get("hops", []):
            stages += [k for k in h if k not in stages]
    if not stages:
        return
    out.write("\n  w, where the time went (src/hops.h; per node, median over runs, us):\n")
    rows = []
    for st in stages:
        nodes = max(len(w.get("hops", [])) for w in runs)
        for i in range(nodes):
            vals = [w["hops"][i][st] for w in runs
                    if i < len(w.get("hops", [])) and st in w["hops"][i]]
            if not vals:
                continue
            rows.append((st, i, int(median([v["n"] for v in vals])),
                         "%.0f" % median([v["p50_us"] for v in vals]),
                         "%.0f" % median([v["p90_us"] for v in vals]),
                         "%.0f" % median([v["p99_us"] for v in vals]),
                         "%.0f" % max(v["max_us"] for v in vals)))
    print_table(out, ("stage", "node", "n", "p50", "p90", "p99", "max"), rows)


def mean(vals):
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def median(vals):
    vals = sorted(v for v in vals if v is not None)
    return vals[len(vals) // 2] if vals else None


def by_backend(runs, field, **match):
    """The values of field in runs, per backend (or per node count with nodes=True)."""
    out = {}
    for r in runs:
        if all(r.get(k) == v for k, v in match.items()):
            out.setdefault(r["backend"], []).append(r.get(field))
    return out


def fmt_runs(vals):
    return ", ".join(B.fmt_rate(v) for v in vals)


def comparison_rows(r):
    rows = []
    for name, runs, field, target in (
            ("b end-to-end deliveries/s", r.get("b", []), "rate", 0.5),
            ("b batch ingest while delivering, events/s", r.get("b", []),
             "ingest_events_per_s", None),
            ("i batch ingest (endpoint off), events/s", r.get("i", []), "events_per_s", None),
            ("c single-event ingest, 202/s (wrk -c%d)" % B.WRK_CONNS, r.get("c", []),
             "rate_202", None)):
        v = by_backend(runs, field)
        s, p = mean(v.get("sqlite", [])), mean(v.get("pg", []))
        ratio = p / s if s and p else None
        met = "" if target is None else ("-" if ratio is None else
                                         ("yes" if ratio >= target else "NO"))
        rows.append((name, fmt_runs(v.get("sqlite", [])), fmt_runs(v.get("pg", [])),
                     "-" if ratio is None else "%.2f" % ratio,
                     "" if target is None else ">= %.2f" % target, met))
    return rows


def print_table(out, hdr, rows):
    w = [max(len(str(x[i])) for x in rows + [hdr]) for i in range(len(hdr))]
    for line in [hdr, tuple("-" * n for n in w)] + rows:
        out.write("  " + "  ".join(str(line[i]).ljust(w[i]) if i == 0 else
                                   str(line[i]).rjust(w[i]) for i in range(len(hdr))).rstrip()
                  + "\n")


def print_statements(out, label, st):
    stats, units = st["stats"], max(1, st["units"])
    calls = sum(s[0] for s in stats)
    out.write("\n  statements, %s: %d statements for %d, %.2f each (pg_stat_statements, "
              "transaction control included)\n" % (label, calls, units, calls / units))
    rows = []
    for c, n, ms, q in stats[:12]:
        rows.append((q[:70], c, "%.3f" % (c / units), "%.1f" % (n / c if c else 0),
                     "%.0f" % ms))
    print_table(out, ("statement", "calls", "per unit", "rows/call", "ms"), rows)


def print_nodes(out, r, nodes):
    runs = r.get("n", [])
    one = [x["rate"] for x in runs if x["nodes"] == 1]
    many = [x["rate"] for x in runs if x["nodes"] == nodes]
    m1, mn = mean(one), mean(many)
    out.write("\n  n: %d endpoints, PostgreSQL: 1 node %s /s; %d nodes %s /s; ratio %s "
              "(target >= 1.00)\n" % (
                  NODE_ENDPOINTS, fmt_runs(one), nodes, fmt_runs(many),
                  "-" if not (m1 and mn) else "%.2f" % (mn / m1)))
    pairs = [(a["rate"], b["rate"]) if a["nodes"] == 1 else (b["rate"], a["rate"])
             for a, b in zip(runs[0::2], runs[1::2])]
    ratios = [m / o for o, m in pairs if o and m]
    if ratios:
        out.write("     per pair (N nodes / 1 node, the order alternating): %s; mean %.2f, "
                  "min %.2f, max %.2f\n" % (", ".join("%.2f" % x for x in ratios), mean(ratios),
                                            min(ratios), max(ratios)))
    for x in runs:
        out.write("     %d node(s): %s /s, %d of %d delivered, %d non-2xx, batch ingest %s ev/s; "
                  "machine CPU busy %s, %s CPU ms per 1,000 deliveries\n" % (
                      x["nodes"], B.fmt_rate(x["rate"]), x["delivered"], x["expected"],
                      x["non_2xx"], B.fmt_rate(x["ingest_events_per_s"]),
                      "-" if x.get("cpu_busy") is None else "%.0f%%" % (100 * x["cpu_busy"]),
                      "-" if x.get("cpu_ms_per_1000") is None else "%.0f" % x["cpu_ms_per_1000"]))
    for n in (1, nodes):
        busy = [x["cpu_busy"] for x in runs if x["nodes"] == n and x.get("cpu_busy")]
        cost = [x["cpu_ms_per_1000"] for x in runs if x["nodes"] == n and x.get("cpu_ms_per_1000")]
        if busy and cost:
            out.write("     %d node(s), mean: machine CPU busy %.0f%%, %.0f CPU ms per 1,000 "
                      "deliveries\n" % (n, 100 * mean(busy), mean(cost)))
    if r.get("n_owned"):
        out.write("     endpoints owned per node: %s\n" % r["n_owned"])


def print_wake(out, w):
    met = "-" if w["p99_ms"] is None or w["arrived"] < w["ok"] else (
        "yes" if w["p99_ms"] < WAKE_P99_MS else "NO")
    out.write("\n  w: ingest -> receiver, %d nodes, %d events/s for %d s (single-event POSTs "
              "spread over the nodes): p50 %s ms, p99 %s ms, max %s ms (target p99 < %d ms: "
              "%s)\n" % (w["nodes"], w["rate"], w["seconds"], w["p50_ms"], w["p99_ms"],
                         w["max_ms"], WAKE_P99_MS, met))
    out.write("     %d of %d acknowledged arrived (%d repeats), %d ingest errors; 202 p99 %s ms; "
              "sender late %d times, by <= %s ms\n" % (
                  w["arrived"], w["ok"], w["duplicates"], w["errors"], w["ack_p99_ms"],
                  w["sender_late"], w["sender_max_behind_ms"]))


def print_report(o, r, info_start, info_end):
    out = sys.stdout
    sz = dict(SIZES["quick" if o.quick else "full"])
    if o.events:
        sz["e2e_events"] = o.events
    out.write("\nhookd bench, PostgreSQL vs SQLite (%s) %s\n" % (
        "quick" if o.quick else "full", info_start["date"]))
    out.write("  machine: %s CPUs, %s; load average at start %s, at end %s\n" % (
        info_start["cpus"], info_start.get("cpu", "?"), info_start.get("loadavg"),
        info_end.get("loadavg")))
    out.write("  hookd: %s, commit %s\n" % (info_start["hookd"], info_start["commit"]))
    out.write("  PostgreSQL: %s\n" % ", ".join(
        "%s=%s" % kv for kv in sorted(r["pg_settings"].items())))
    out.write("  serve extra flags: %s\n" % (" ".join(o.serve_args) or "(none: defaults)"))
    out.write("  sizes: %s (runs alternate between the backends, each on a fresh server and "
              "database)\n\n" % ", ".join("%s=%s" % kv for kv in sz.items()))
    if o.only is None:
        print_table(out, ("figure", "SQLite runs", "PostgreSQL runs", "PG/SQLite", "target",
                          "met"), comparison_rows(r))
    for x in r.get("b", []):
        if x["delivered"] < x["expected"] or x["non_2xx"] or x["ingest_errors"]:
            out.write("  b %s: %d of %d delivered, %d non-2xx, %d ingest errors\n" % (
                x["backend"], x["delivered"], x["expected"], x["non_2xx"],
                x["ingest_errors"]))
    for x in r.get("c", []):
        if x["other"] or x["socket_errors"]:
            out.write("  c %s: other statuses %r, socket errors %d\n" % (
                x["backend"], x["other"], x["socket_errors"]))
    if o.nodes > 1:
        print_nodes(out, r, o.nodes)
    for w in r.get("w_runs", [r["w"]] if r.get("w") else []):
        print_wake(out, w)
    if len(r.get("w_runs", [])) > 1:
        runs = r["w_runs"]
        out.write("\n  w, median of %d runs: p50 %s ms, p99 %s ms, 202 p99 %s ms\n" % (
            len(runs), median([x["p50_ms"] for x in runs]), median([x["p99_ms"] for x in runs]),
            median([x["ack_p99_ms"] for x in runs])))
    print_hops(out, r.get("w_runs", [r["w"]] if r.get("w") else []))
    for label, st in sorted(r.get("statements", {}).items()):
        print_statements(out, label, st)
    out.flush()


def main():
    ap = argparse.ArgumentParser(description="hookd on PostgreSQL vs SQLite (run it through "
                                 "bench/run --db postgres)")
    ap.add_argument("--hookd", required=True, help="the hookd binary (release build)")
    ap.add_argument("--quick", action="store_true", help="small sizes, a minute or two")
    ap.add_argument("--nodes", type=int, default=1,
                    help="also run phase n: this many serve processes on one database")
    ap.add_argument("--only", choices=("w", "n"), default=None,
                    help="run only this phase: w (ingest -> receiver latency on --nodes nodes, "
                    "one node allowed) or n (one node against --nodes nodes, --n-runs pairs)")
    ap.add_argument("--n-runs", type=int, default=1,
                    help="with --only n: this many pairs (1 node, N nodes), alternating order")
    ap.add_argument("--events", type=int, default=None,
                    help="events per end-to-end run (default: 10,000 with --quick, else 100,000)")
    ap.add_argument("--wake-runs", type=int, default=1,
                    help="with --only w: run phase w this many times (each on fresh nodes and "
                    "database) and print each run and their medians")
    ap.add_argument("--verify", action="store_true",
                    help="run the receiver with --secret (HMAC-verify every request)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    ap.add_argument("--tmpdir", default=None, help="where the temp dir goes (default $TMPDIR)")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    ap.add_argument("serve_args", nargs="*", help="extra `hookd serve` flags (after --)")
    o = ap.parse_args()
    o.hookd = os.path.abspath(o.hookd)
    if o.nodes < 1 or o.nodes > 16:
        ap.error("--nodes must be 1..16")
    if o.wake_runs < 1 or o.wake_runs > 20:
        ap.error("--wake-runs must be 1..20")
    if o.n_runs < 1 or o.n_runs > 20:
        ap.error("--n-runs must be 1..20")
    if o.only == "n" and o.nodes < 2:
        ap.error("--only n needs --nodes 2 or more")
    if o.events is not None and not 500 <= o.events <= 10_000_000:
        ap.error("--events must be 500..10000000")

    def on_term(sig, frame):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    tmp = tempfile.mkdtemp(prefix="hookd-bench-pg-", dir=o.tmpdir)
    info_start = B.machine_info(o.hookd)
    ok = False
    cluster = None
    try:
        cluster = Cluster()
        b = PgBench(o, tmp, cluster)
        b.mock_secret = B.new_secret() if o.verify else None
        r = b.run_pg()
        info_end = B.machine_info(o.hookd)
        print_report(o, r, info_start, info_end)
        if o.json:
            import json
            with open(o.json, "w") as f:
                json.dump({"machine": info_start, "end": info_end, "quick": o.quick,
                           "nodes": o.nodes, "serve_args": o.serve_args, "results": r},
                          f, indent=2)
        ok = True
    except B.BenchError as e:
        B.log("failed: %s" % e)
    finally:
        B.stop_all()
        if cluster is not None:
            cluster.stop()
        if o.keep or not ok:
            B.log("temp dir kept: %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
