#!/usr/bin/env python3
"""bench/pgcost.py: what one delivery costs on PostgreSQL with one node and with N nodes, in CPU
time and statements rather than in deliveries per second (standard library only).

A shared, busy machine distorts rates a lot and CPU time per delivery little, so this measures the
work: phase n's shape of bench/pg.py (12 endpoints, batch ingest spread over the nodes' APIs,
every event delivered to `hookd mock`) with 1 node and with N, alternating (1, N, N, 1 with
--rounds 2), each on a fresh database, and for each run:

  - CPU seconds (user + system, /proc/PID/stat) from the first batch sent to the last delivery
    counted at the mock, summed over: every hookd node (and per thread name from
    /proc/PID/task: hookd-commit, hookd-dispatch, hookd-send-N, hookd-listen, ...), every
    PostgreSQL process (the postmaster's children, each client backend labelled by its
    pg_stat_activity application_name and last statement; backends that exited meanwhile through
    the postmaster's cutime), and the mock;
  - the same for an idle spell before the load (nothing ingested: the nodes' ticks, refreshes),
    as CPU ms per second, so what scales with time is told apart from what scales with work;
  - pg_stat_statements (calls, rows, time per statement), commits (pg_stat_database) and WAL
    (pg_stat_wal: records, bytes, full-page images, syncs), per delivery.

    python3 bench/pgcost.py --hookd build-bench/hookd [--nodes 3] [--events 24000] [--rounds 1]
                            [--sqlite: first, one node on SQLite, the same load, for comparison]
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as B  # noqa: E402
import pg as P  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
IDLE_S = 4.0  # the idle spell measured before each load


def proc_stat(pid):
    """(ppid, utime+stime, cutime+cstime) of pid in seconds, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return None
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK,
            (int(fields[13]) + int(fields[14])) / TICK)


def children(ppid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = proc_stat(int(name))
            if s is not None and s[0] == ppid:
                out.append(int(name))
    return out


class Sampler:
    """CPU of the hookd nodes (per thread name), the mock and every PostgreSQL process."""

    def __init__(self, cluster, serves, mock):
        self.pg, self.serves, self.mock = cluster, serves, mock
        with open(os.path.join(cluster.dir, "data", "postmaster.pid")) as f:
            self.postmaster = int(f.readline())

    def sample(self):
        hookd = {}
        for s in self.serves:
            for name, c in B.thread_cpu(s.p.pid).items():
                hookd[name] = hookd.get(name, 0.0) + c
        pg = {pid: proc_stat(pid)[1] for pid in children(self.postmaster)
              if proc_stat(pid) is not None}
        pm = proc_stat(self.postmaster)
        return {"t": time.monotonic(), "hookd": hookd, "pg": pg,
                "pg_reaped": pm[1] + pm[2], "mock": proc_stat(self.mock.p.pid)[1]}

    def labels(self):
        """pid -> a label: application_name + the last statement's start, or the type."""
        rows = self.pg.sql("SELECT pid, backend_type, application_name, "
                           "left(regexp_replace(query, '\\s+', ' ', 'g'), 48) "
                           "FROM pg_stat_activity")
        out = {}
        for pid, btype, app, q in rows:
            out[int(pid)] = ("%s: %s" % (app or "?", q) if btype == "client backend"
                             else btype)
        return out


def delta(a, b, labels):
    """CPU seconds between two samples, grouped."""
    hookd = {n: b["hookd"][n] - a["hookd"].get(n, 0.0) for n in b["hookd"]}
    pg = {}
    for pid, c in b["pg"].items():
        lab = labels.get(pid, "other (exited or not listed)")
        pg[lab] = pg.get(lab, 0.0) + c - a["pg"].get(pid, 0.0)
    gone = sum(c for pid, c in a["pg"].items() if pid not in b["pg"])
    pg["exited processes"] = b["pg_reaped"] - a["pg_reaped"] - gone
    return {"seconds": b["t"] - a["t"], "hookd": hookd, "pg": pg,
            "mock": b["mock"] - a["mock"]}


def totals(d):
    """CPU seconds of hookd, PostgreSQL (without the bench's own sampler's backend, listed
    apart), the mock, and all three."""
    h = sum(d["hookd"].values())
    p = sum(c for name, c in d["pg"].items() if not name.startswith("bench:"))
    return {"hookd": h, "pg": p, "mock": d["mock"], "all": h + p + d["mock"]}


class Waits(threading.Thread):
    """Samples pg_stat_activity every SAMPLE_S through one psql session of its own while the
    load runs: what each backend of the database was doing (running a statement, waiting on a
    lock, an I/O, or for hookd), and which statements each ran, to name its role."""

    SAMPLE_S = 0.02

    def __init__(self, cluster, db):
        super().__init__(daemon=True)
        self.p = subprocess.Popen([P.psql_bin(), "-X", "-q", "-tA", "-F", "\x1f", cluster.admin],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  bufsize=1)
        self.q = ("SELECT pid, state, coalesce(wait_event_type || ':' || wait_event, 'CPU'), "
                  "left(regexp_replace(query, '\\s+', ' ', 'g'), 40) FROM pg_stat_activity "
                  "WHERE datname = '%s' AND pid <> pg_backend_pid();" % db)
        self.pid = int(self.ask("SELECT pg_backend_pid();")[0][0])
        self.stop_ev = threading.Event()
        self.waits = {}    # (state, wait) -> samples, active backends only
        self.queries = {}  # pid -> {query: samples seen active}
        self.n = 0

    def ask(self, q):
        self.p.stdin.write(q + "\n\\echo __end__\n")
        self.p.stdin.flush()
        rows = []
        while True:
            line = self.p.stdout.readline()
            if not line or line.strip() == "__end__":
                return rows
            if line.strip():
                rows.append(line.rstrip("\n").split("\x1f"))

    def run(self):
        while not self.stop_ev.is_set():
            self.n += 1
            for r in self.ask(self.q):
                if len(r) < 4 or r[1] != "active":
                    continue
                self.waits[r[2]] = self.waits.get(r[2], 0) + 1
                qs = self.queries.setdefault(int(r[0]), {})
                qs[r[3]] = qs.get(r[3], 0) + 1
            time.sleep(self.SAMPLE_S)

    def finish(self):
        self.stop_ev.set()
        self.join(timeout=10)
        self.p.stdin.close()
        self.p.wait(timeout=10)
        return {"samples": self.n, "waits": self.waits,
                "roles": {pid: max(qs.items(), key=lambda kv: kv[1])[0]
                          for pid, qs in self.queries.items()}}


class CostBench(P.PgBench):
    def pg_counters(self, db):
        r = self.pg.sql("SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = '%s'),"
                        " wal_records, wal_bytes, wal_sync, wal_fpi FROM pg_stat_wal" % db)[0]
        return {"commits": int(r[0]), "wal_records": int(r[1]), "wal_bytes": int(r[2]),
                "wal_syncs": int(r[3]), "wal_fpi": int(r[4])}

    def statements(self, db):
        """pg_stat_statements of db: [(calls, rows, ms, query, shared blocks hit, WAL bytes)]."""
        rows = self.pg.sql("SELECT calls, rows, round(total_exec_time::numeric, 1), "
                           "regexp_replace(query, '\\s+', ' ', 'g'), shared_blks_hit, wal_bytes "
                           "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
                           "WHERE datname = '%s') ORDER BY calls DESC" % db)
        return [(int(r[0]), int(r[1]), float(r[2]), r[3], int(r[4]), int(r[5])) for r in rows]

    def perf_start(self, smp, key):
        """With --perf: `perf record -g` of every PostgreSQL process and hookd node during the
        load, into perf-KEY.data in the temp dir (perf report -i it)."""
        if not self.o.perf:
            return None
        pids = children(smp.postmaster) + [s.p.pid for s in smp.serves]
        out = os.path.join(self.tmp, "perf-%s.data" % key)
        B.log("%s: perf record into %s" % (key, out))
        return subprocess.Popen(["perf", "record", "-q", "-F", "999", "-g", "-o", out, "-p",
                                 ",".join(str(p) for p in pids)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def perf_stop(self, p):
        if p is not None:
            p.send_signal(signal.SIGINT)
            p.wait(timeout=60)

    def one(self, mock, nodes, key, backend="pg"):
        """One measured run on a fresh database (backend "sqlite": one node on a fresh SQLite
        file, no PostgreSQL figures); returns its figures."""
        serves, dbname = self.start_nodes(backend, key)
        self.endpoints(serves[0], mock, P.NODE_ENDPOINTS)
        self.more_nodes(serves, backend, key, nodes)
        pg_db = dbname or "postgres"  # SQLite: the counters and statements are not looked at
        smp = Sampler(self.pg, serves, mock)
        n_batches = (self.o.events + B.BATCH - 1) // B.BATCH
        body = self.batch_body(P.NODE_ENDPOINTS)
        i0 = smp.sample()
        time.sleep(IDLE_S)
        i1 = smp.sample()
        self.pg.stats_reset()
        c0 = self.pg_counters(pg_db)
        self.mock_stats(mock, reset=True)
        waits = Waits(self.pg, dbname or "(no database)")
        waits.start()
        a = smp.sample()
        perf = self.perf_start(smp, key)
        ld = self.load(serves, body, n_batches, self.node_conns())
        st = self.wait_mock(mock, ld["deliveries"], self.psz["deadline_s"], key)
        b = smp.sample()
        self.perf_stop(perf)
        w = waits.finish()
        labels = smp.labels()
        for pid, q in w["roles"].items():
            labels[pid] = "hookd: " + q
        labels[waits.pid] = "bench: pg_stat_activity sampler"
        c1 = self.pg_counters(pg_db)
        stats = self.statements(dbname) if dbname else []
        if dbname is None:
            c1 = c0
        self.mock_stats(mock, reset=True)
        for s in reversed(serves):
            s.stop()
        got = st["requests"]
        if got < ld["deliveries"] or ld["errors"]:
            B.log("%s: %d of %d delivered, %d ingest errors" % (key, got, ld["deliveries"],
                                                                 ld["errors"]))
        run = {"nodes": nodes, "backend": backend, "delivered": got, "expected": ld["deliveries"],
               "load": delta(a, b, labels), "idle": delta(i0, i1, labels),
               "counters": {k: c1[k] - c0[k] for k in c0}, "statements": stats,
               "waits": w["waits"], "wait_samples": w["samples"],
               "owned": self.r.get("n_owned", [None])[-1] if nodes > 1 else None}
        t = totals(run["load"])
        B.log("%s: %s, %d node(s): %d deliveries in %.1f s; CPU ms per 1,000 deliveries: all %.0f "
              "(hookd %.0f, PostgreSQL %.0f, mock %.0f)" % (
                  key, backend, nodes, got, run["load"]["seconds"], 1e6 * t["all"] / got,
                  1e6 * t["hookd"] / got, 1e6 * t["pg"] / got, 1e6 * t["mock"] / got))
        return run

    def run_cost(self):
        mock = self.start_mock("mock", secret=self.mock_secret)
        runs = [self.one(mock, 1, "cost-sqlite", "sqlite")] if self.o.sqlite else []
        for r in range(self.o.rounds):
            order = (1, self.o.nodes) if r % 2 == 0 else (self.o.nodes, 1)
            for n in order:
                runs.append(self.one(mock, n, "cost%d-%d" % (r, n)))
        mock.stop()
        return runs


# ---- output ----------------------------------------------------------------------------------

def per_k(sec, n):
    return 1e6 * sec / n if n else 0.0


def grouped(runs, part, n_of):
    """{name: [ms per 1,000 deliveries, per run]} for one part (hookd threads, pg labels)."""
    names = {}
    for i, r in enumerate(runs):
        for name, c in r["load"][part].items():
            key = name
            if part == "hookd" and name.startswith("hookd-send"):
                key = "hookd-send-*"
            if part == "pg" and ":" in name:
                key = name.split(":", 1)[0] + ": " + name.split(":", 1)[1].strip()[:28]
            names.setdefault(key, [0.0] * len(runs))[i] += per_k(c, n_of(r))
    return names


def print_report(o, runs, info):
    out = sys.stdout
    out.write("\nhookd cost per delivery, PostgreSQL, 1 node vs %d (%s)\n" % (o.nodes,
                                                                          info["date"]))
    out.write("  machine: %s CPUs; load average %s; hookd %s, commit %s\n" % (
        info["cpus"], info.get("loadavg"), info["hookd"], info["commit"]))
    out.write("  %d events a run, %d endpoints, batches of %d; CPU = user + system\n\n" % (
        o.events, P.NODE_ENDPOINTS, B.BATCH))
    n_of = (lambda r: r["delivered"])
    hdr = ("CPU ms per 1,000 deliveries",) + tuple(
        "SQLite" if r.get("backend") == "sqlite" else
        "%d node%s" % (r["nodes"], "s" if r["nodes"] > 1 else "") for r in runs)
    rows = []
    tot = [totals(r["load"]) for r in runs]
    for k in ("all", "hookd", "pg", "mock"):
        rows.append((k + " (total)" if k == "all" else
                     "pg (the bench's sampler apart)" if k == "pg" else k,) + tuple(
            "%.0f" % per_k(t[k], n_of(r)) for t, r in zip(tot, runs)))
    for part in ("hookd", "pg"):
        g = grouped(runs, part, n_of)
        for name, vals in sorted(g.items(), key=lambda kv: -max(kv[1])):
            if max(vals) >= 2:
                rows.append(("  " + name[:60],) + tuple("%.0f" % v for v in vals))
    P.print_table(out, hdr, rows)
    rows = [("seconds (load to last delivery)",) + tuple(
        "%.1f" % r["load"]["seconds"] for r in runs)]
    rows.append(("deliveries/s (noise on a shared machine)",) + tuple(
        "%.0f" % (r["delivered"] / r["load"]["seconds"]) for r in runs))
    rows.append(("idle CPU ms per second (all)",) + tuple(
        "%.0f" % (1e3 * totals(r["idle"])["all"] / r["idle"]["seconds"]) for r in runs))
    rows.append(("idle CPU ms per second (hookd)",) + tuple(
        "%.0f" % (1e3 * totals(r["idle"])["hookd"] / r["idle"]["seconds"]) for r in runs))
    for k in ("commits", "wal_records", "wal_bytes", "wal_fpi", "wal_syncs"):
        rows.append((k + " per delivery",) + tuple(
            "%.3f" % (r["counters"][k] / max(1, n_of(r))) for r in runs))
    rows.append(("statements per delivery",) + tuple(
        "%.4f" % (sum(s[0] for s in r["statements"]) / max(1, n_of(r))) for r in runs))
    rows.append(("buffers hit per delivery (all statements)",) + tuple(
        "%.1f" % (sum(s[4] for s in r["statements"]) / max(1, n_of(r))) for r in runs))
    rows.append(("statement time, ms per 1,000 deliveries",) + tuple(
        "%.0f" % (1e3 * sum(s[2] for s in r["statements"]) / max(1, n_of(r))) for r in runs))
    out.write("\n")
    P.print_table(out, ("figure",) + hdr[1:], rows)
    out.write("\n  active backends of the database, sampled every %.0f ms during the load "
              "(mean number in each state):\n" % (1e3 * Waits.SAMPLE_S))
    names = sorted({k for r in runs for k in r["waits"]},
                   key=lambda k: -max(r["waits"].get(k, 0) / max(1, r["wait_samples"])
                                      for r in runs))
    P.print_table(out, ("state",) + hdr[1:], [(k,) + tuple(
        "%.2f" % (r["waits"].get(k, 0) / max(1, r["wait_samples"])) for r in runs)
        for k in names])
    for r in runs:
        if r.get("backend") == "sqlite":
            continue
        out.write("\n  statements, %d node(s), %d deliveries (owned per node %s):\n" % (
            r["nodes"], r["delivered"], r["owned"]))
        srows = []
        for c, n, ms, q, hit, wal in sorted(r["statements"], key=lambda s: -s[2])[:o.top]:
            srows.append((q[:64], c, "%.4f" % (c / max(1, n_of(r))),
                          "%.1f" % (n / c if c else 0), "%.0f" % ms,
                          "%.1f" % (hit / max(1, n_of(r))), "%.0f" % (wal / max(1, n_of(r)))))
        P.print_table(out, ("statement (by total time)", "calls", "per delivery",
                            "rows/call", "ms", "blks hit/dlv", "WAL B/dlv"), srows)
    out.flush()


def main():
    ap = argparse.ArgumentParser(description="CPU and statements per delivery, 1 node vs N "
                                 "(PostgreSQL)")
    ap.add_argument("--hookd", required=True, help="the hookd binary (release build)")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--events", type=int, default=24000, help="events per run")
    ap.add_argument("--rounds", type=int, default=1, help="1: 1 then N; 2: 1, N, N, 1; ...")
    ap.add_argument("--sqlite", action="store_true", help="first, the same load on one node "
                    "on SQLite, for its CPU per delivery (hookd and the mock; no PostgreSQL)")
    ap.add_argument("--top", type=int, default=12, help="statements listed per run")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, and the "
                    "PostgreSQL server's log as postgresql.log)")
    ap.add_argument("--pg-settings", default="", help="more server settings, e.g. '-c "
                    "session_preload_libraries=auto_explain -c auto_explain.log_min_duration=50'")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    ap.add_argument("--perf", action="store_true", help="perf record each load (implies "
                    "--keep)")
    ap.add_argument("serve_args", nargs="*", help="extra `hookd serve` flags (after --)")
    o = ap.parse_args()
    o.hookd = os.path.abspath(o.hookd)
    o.quick, o.verify, o.tmpdir = True, False, None
    o.keep = o.keep or o.perf
    if not 2 <= o.nodes <= 16 or o.events < B.BATCH or o.rounds < 1:
        ap.error("--nodes 2..16, --events >= %d, --rounds >= 1" % B.BATCH)

    def on_term(sig, frame):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    tmp = tempfile.mkdtemp(prefix="hookd-pgcost-")
    info = B.machine_info(o.hookd)
    ok, cluster = False, None
    try:
        if o.pg_settings:
            P.PG_SETTINGS += " " + o.pg_settings
        cluster = P.Cluster()
        b = CostBench(o, tmp, cluster)
        b.mock_secret = None
        runs = b.run_cost()
        print_report(o, runs, info)
        if o.json:
            import json
            with open(o.json, "w") as f:
                json.dump({"machine": info, "events": o.events, "runs": runs}, f, indent=2)
        ok = True
    except B.BenchError as e:
        B.log("failed: %s" % e)
    finally:
        B.stop_all()
        if cluster is not None:
            if o.keep or not ok:
                shutil.copy(os.path.join(cluster.dir, "server.log"),
                            os.path.join(tmp, "postgresql.log"))
            cluster.stop()
        if o.keep or not ok:
            B.log("temp dir kept: %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
