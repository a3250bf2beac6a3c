#!/usr/bin/env python3
"""bench/bench.py: the measurements behind bench/run (standard library only).

bench/run installs the tools and builds hookd, then runs this. It starts `hookd mock` (the
receiver) and `hookd serve` on loopback ports they pick, in a temporary directory of its own,
drives them with wrk (bench/post.lua) and with the small HTTP loaders below, and prints each
figure with its ratio to the loopback ceiling:

  a  ceiling: wrk POSTing the same ~1 KiB signed body hookd delivers, straight to the mock
  b  end-to-end deliveries/s: batch ingest of N events -> store -> signed POST -> mock,
     counted at the mock from its first to its last arrival
  c  single-event ingest requests/s (wrk; every reply must be 202, i.e. committed) with an
     endpoint subscribed: first with the endpoint paused (each 202 still wrote the event and
     its delivery row; delivered after the run), then with deliveries running at the same
     time; and batch ingest events/s
  d  latency from the ingest call to the mock's arrival, p50/p99, at a fixed rate (open loop)
  e  a backlog of pending deliveries (endpoint disabled while loading): hookd's peak RSS and
     the drain rate once the endpoint is enabled, against the empty-queue rate of b

Every process it starts is stopped before it exits (also on SIGTERM/SIGINT); every wait has a
deadline. Nothing here is a test: it measures and prints.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import itertools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
POST_LUA = os.path.join(HERE, "post.lua")

BATCH = 500          # events per batch ingest request (500 x ~1 KiB stays under --max-body 1 MiB)
DATA_BYTES = 1024    # each event's "data" object, serialised
LOAD_CONNS = 4       # concurrent batch ingest connections
WRK_THREADS = 2
WRK_CONNS = 64
# Endpoints the bench delivers to allow as many requests in flight as wrk opens connections
# in the ceiling (a), so b and a compare the same concurrency. An endpoint's default is 10.
EP_MAX_IN_FLIGHT = WRK_CONNS

SIZES = {
    "full": {"ceiling_s": 10, "e2e_events": 200_000, "single_s": 10, "latency_rate": 1000,
             "latency_s": 10, "backlog": 1_000_000, "load_deadline_s": 900,
             "drain_deadline_s": 900, "metrics_pairs": 3},
    "quick": {"ceiling_s": 3, "e2e_events": 20_000, "single_s": 3, "latency_rate": 1000,
              "latency_s": 4, "backlog": 50_000, "load_deadline_s": 60,
              "drain_deadline_s": 60, "metrics_pairs": 1},
}
STALL_S = 30.0  # a wait gives up when nothing arrives at the receiver for this long

LISTEN_RE = re.compile(r"listening on https?://(127\.0\.0\.1):(\d+)\s*$", re.M)


class BenchError(Exception):
    pass


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


def now_us():
    return time.time_ns() // 1000


# ---- processes -------------------------------------------------------------------------------

class Proc:
    """A child process with stdout and stderr in files under the temp dir."""

    started = []

    def __init__(self, name, args, tmp):
        self.name = name
        self.out_path = os.path.join(tmp, name + ".stdout")
        self.err_path = os.path.join(tmp, name + ".stderr")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                      cwd=tmp)
        Proc.started.append(self)
        self.port = None

    def wait_listening(self, deadline_s=20.0):
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            with open(self.out_path, "r", encoding="utf-8", errors="replace") as f:
                m = LISTEN_RE.search(f.read())
            if m:
                self.port = int(m.group(2))
                return self
            if self.p.poll() is not None:
                raise BenchError("%s exited %s before listening:\n%s" % (
                    self.name, self.p.returncode, self.stderr_tail()))
            time.sleep(0.02)
        raise BenchError("%s did not listen within %.0f s" % (self.name, deadline_s))

    def stderr_tail(self, n=20):
        try:
            with open(self.err_path, "r", encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def vm(self):
        """VmHWM and VmRSS from /proc/<pid>/status, in KiB."""
        out = {}
        try:
            with open("/proc/%d/status" % self.p.pid) as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in ("VmHWM", "VmRSS"):
                        out[k] = int(v.split()[0])
        except OSError:
            pass
        return out

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log("%s did not stop within 20 s of SIGTERM: killing it" % self.name)
                self.p.kill()
                self.p.wait(timeout=10)
        if self in Proc.started:
            Proc.started.remove(self)
        return self.p.returncode


def stop_all():
    for p in list(reversed(Proc.started)):
        try:
            p.stop()
        except Exception as e:  # keep stopping the others
            log("stopping %s: %r" % (p.name, e))


# ---- HTTP ------------------------------------------------------------------------------------

class Client:
    """One keep-alive HTTP/1.1 connection; reconnects once if the server closed it. With tls
    (an ssl.SSLContext) it speaks HTTPS."""

    def __init__(self, port, key=None, timeout=120, tls=None):
        self.port = port
        self.key = key
        self.timeout = timeout
        self.tls = tls
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        h = {}
        if self.key:
            h["Authorization"] = "Bearer " + self.key
        if body is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        for attempt in (0, 1):
            if self.conn is None and self.tls is not None:
                self.conn = http.client.HTTPSConnection("127.0.0.1", self.port,
                                                        timeout=self.timeout, context=self.tls)
            elif self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=h)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, data
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def json(self, method, path, obj=None, expect=(200,)):
        body = json.dumps(obj).encode() if obj is not None else None
        st, data = self.request(method, path, body)
        if st not in expect:
            raise BenchError("%s %s -> %d %s" % (method, path, st, data[:300]))
        return json.loads(data) if data else None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---- payloads and signatures -----------------------------------------------------------------

def new_secret():
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def padded_data(extra=None, size=DATA_BYTES):
    """A JSON object of exactly size bytes: extra's fields plus a "pad" string."""
    obj = dict(extra or {})
    obj["pad"] = ""
    base = len(json.dumps(obj, separators=(",", ":")))
    obj["pad"] = "x" * max(0, size - base)
    return obj


def event_json(event_type, data):
    return json.dumps({"event": event_type, "data": data}, separators=(",", ":"))


def signed_headers(secret, msg_id, body, event_type):
    """The headers hookd sends with a delivery, signed the way hookd signs them."""
    ts = int(time.time())
    key = base64.b64decode(secret[len("whsec_"):])
    std = base64.b64encode(hmac.new(key, b"%s.%d.%s" % (msg_id.encode(), ts, body),
                                    hashlib.sha256).digest()).decode()
    hexsig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "User-Agent": "hookd-bench",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": "v1," + std,
        "X-PixelPatrol-Event": event_type,
        "X-PixelPatrol-Timestamp": str(int(time.time() * 1000)),
        "X-PixelPatrol-Signature": hexsig,
        "X-Webhook-Signature": "sha256=" + hexsig,
        "X-PixelPatrol-Delivery": "dlv_01BENCHBENCHBENCHBENCHBENC",
    }


# ---- wrk -------------------------------------------------------------------------------------

def run_wrk(url, seconds, body_path, headers_path, count, tmp):
    args = ["wrk", "-t%d" % WRK_THREADS, "-c%d" % WRK_CONNS, "-d%ds" % seconds,
            "--timeout", "10s", "-s", POST_LUA, url, "--", body_path, headers_path or "-"]
    if count:
        args.append("count")
    res = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, cwd=tmp)
    if res.returncode != 0:
        raise BenchError("wrk failed (%d): %s" % (res.returncode, res.stderr[-2000:]))
    summary = statuses = None
    for line in res.stdout.splitlines():
        if line.startswith("BENCH_SUMMARY "):
            summary = json.loads(line[len("BENCH_SUMMARY "):])
        elif line.startswith("BENCH_STATUSES "):
            statuses = {int(k): v for k, v in json.loads(line[len("BENCH_STATUSES "):]).items()}
    if summary is None:
        raise BenchError("wrk printed no summary:\n" + res.stdout[-2000:])
    summary["rate"] = summary["requests"] / (summary["duration_us"] / 1e6)
    summary["statuses"] = statuses or {}
    summary["errors"] = sum(summary[k] for k in ("connect_errors", "read_errors",
                                                 "write_errors", "timeouts"))
    return summary


# ---- loaders ---------------------------------------------------------------------------------

def load_batches(port, key, body, n_batches, conns, deadline_s):
    """POSTs body (one batch) n_batches times over conns keep-alive connections.
    Returns counts and the time from the first send to the last 202. port may be a list
    (several nodes): connection i goes to port i mod its length, and every connection takes
    the next batch from one shared count, as clients behind a load balancer would (a node
    that answers sooner gets more, and no node is left with a tail of its own)."""
    ports = list(port) if isinstance(port, (list, tuple)) else [port]
    counter = itertools.count()
    lock = threading.Lock()
    res = {"ok": 0, "deliveries": 0, "errors": 0, "first_error": None}
    end = time.monotonic() + deadline_s
    stop = threading.Event()

    def worker(port):
        c = Client(port, key)
        try:
            while not stop.is_set():
                i = next(counter)
                if i >= n_batches:
                    return
                if time.monotonic() > end:
                    with lock:
                        res["first_error"] = res["first_error"] or "deadline reached"
                    stop.set()
                    return
                try:
                    st, data = c.request("POST", "/v1/events", body)
                except (OSError, http.client.HTTPException) as e:
                    st, data = None, repr(e).encode()
                with lock:
                    if st == 202:
                        res["ok"] += 1
                        res["deliveries"] += data.count(b'"endpoint_id"')
                    else:
                        res["errors"] += 1
                        if res["first_error"] is None:
                            res["first_error"] = "%s %s" % (st, data[:200])
                        if res["errors"] > 20:
                            stop.set()
        finally:
            c.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(ports[i % len(ports)],), daemon=True)
               for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res["seconds"] = time.monotonic() - t0
    return res


def paced_sender(port, key, event_type, rate, seconds, conns=100):
    """Open loop: event i is due at t0 + i/rate whatever the replies before it did. Each carries
    its send time (unix us) in data.sent_us. Returns acks and how far the sender fell behind.
    conns is well above rate x the slowest ack expected, so one slow reply does not hold back
    the sends due after it. port may be a list (several nodes): event i goes to port i mod its
    length; event_type may be a function of i."""
    ports = list(port) if isinstance(port, (list, tuple)) else [port]
    n = int(rate * seconds)
    counter = itertools.count()
    lock = threading.Lock()
    res = {"sent": 0, "ok": 0, "errors": 0, "first_error": None, "max_behind_ms": 0.0,
           "late": 0, "ack_us": []}
    pad = padded_data({"seq": 0, "sent_us": now_us()})["pad"]
    t0 = time.monotonic() + 0.2

    def worker():
        cs = [Client(p, key, timeout=30) for p in ports]
        try:
            while True:
                i = next(counter)
                if i >= n:
                    return
                due = t0 + i / rate
                behind = time.monotonic() - due
                if behind < 0:
                    time.sleep(-behind)
                sent = now_us()
                body = ('{"event":"%s","data":{"seq":%d,"sent_us":%d,"pad":"%s"}}' % (
                    event_type(i) if callable(event_type) else event_type, i, sent,
                    pad)).encode()
                try:
                    st, data = cs[i % len(cs)].request("POST", "/v1/events", body)
                except (OSError, http.client.HTTPException) as e:
                    st, data = None, repr(e).encode()
                ack = now_us() - sent
                with lock:
                    res["sent"] += 1
                    if behind > 0.001:
                        res["late"] += 1
                    res["max_behind_ms"] = max(res["max_behind_ms"], behind * 1000)
                    if st == 202:
                        res["ok"] += 1
                        res["ack_us"].append(ack)
                    else:
                        res["errors"] += 1
                        if res["first_error"] is None:
                            res["first_error"] = "%s %s" % (st, data[:200])
        finally:
            for c in cs:
                c.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
    return res


def arrival_latencies(rec):
    """From a mock's --record --record-us file of paced_sender's events: each event's ingest ->
    receiver time in us (its first arrival: a later one is a retry), ascending, and how many
    arrivals were repeats."""
    lat, dup, seen = [], 0, set()
    with open(rec, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            d = json.loads(r["body"])["data"]
            if d["seq"] in seen:
                dup += 1
                continue
            seen.add(d["seq"])
            lat.append(r["at_us"] - d["sent_us"])
    lat.sort()
    return lat, dup


def thread_cpu(pid):
    """CPU seconds (user + system) of each thread of pid, summed by thread name, from
    /proc/PID/task/*/stat (hookd names its threads: hookd-dispatch, hookd-send-N, ...)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    base = "/proc/%d/task" % pid
    for tid in os.listdir(base):
        try:
            with open("%s/%s/stat" % (base, tid)) as f:
                st = f.read()
        except OSError:
            continue  # the thread ended
        name = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def process_cpu(pid):
    """CPU seconds (user + system) of every thread of pid so far."""
    return sum(thread_cpu(pid).values())


def self_cpu():
    """CPU seconds of this Python process (every thread: the loaders, the pollers) and of the
    children it has waited for (wrk), as (own, children)."""
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


def thread_cpu_delta(before, after, seconds):
    """{name: {"cpu_s", "share_of_one_core"}} between two thread_cpu() samples, busiest first."""
    rows = sorted(((n, after[n] - before.get(n, 0.0)) for n in after), key=lambda x: -x[1])
    return {n: {"cpu_s": round(c, 2), "share_of_one_core": round(c / seconds, 3) if seconds else None}
            for n, c in rows if c > 0}


def pct(sorted_vals, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, math.ceil(p / 100.0 * len(sorted_vals)) - 1))
    return sorted_vals[k]


# ---- the bench -------------------------------------------------------------------------------

class Bench:
    def __init__(self, opts, tmp):
        self.o = opts
        self.sz = SIZES["quick" if opts.quick else "full"]
        self.tmp = tmp
        self.key = "hk_bench_" + base64.urlsafe_b64encode(os.urandom(12)).decode()
        self.r = {}
        self.load_body = event_json("bench.load", padded_data({"n": 0}))

    # -- processes

    def start_mock(self, name, *extra, secret=None):
        args = [self.o.hookd, "mock", "--listen", "127.0.0.1:0", "--quiet"]
        if secret:
            args += ["--secret", secret]
        return Proc(name, args + list(extra), self.tmp).wait_listening()

    def start_serve(self, name, extra=()):
        db = os.path.join(self.tmp, name + ".db")
        args = [self.o.hookd, "serve", "--listen", "127.0.0.1:0", "--db", "sqlite:" + db,
                "--api-key", self.key, "--allow-http", "--allow-private-networks"]
        args += self.o.serve_args + list(extra)
        s = Proc(name, args, self.tmp).wait_listening()
        s.db = db
        Client(s.port).json("GET", "/healthz")
        return s

    def mock_stats(self, mock, reset=False):
        return Client(mock.port, tls=getattr(mock, "tls", None)).json(
            "DELETE" if reset else "GET", "/_mock/stats")

    def wait_mock(self, mock, target, deadline_s, what):
        """Polls the mock until it counted target requests; gives up at the deadline or when
        nothing new arrived for STALL_S. Returns the last stats."""
        end = time.monotonic() + deadline_s
        last_n, last_change = -1, time.monotonic()
        c = Client(mock.port, tls=getattr(mock, "tls", None))
        while True:
            st = c.json("GET", "/_mock/stats")
            n = st["requests"]
            if n >= target:
                return st
            t = time.monotonic()
            if n != last_n:
                last_n, last_change = n, t
            if t > end or t - last_change > STALL_S:
                log("%s: gave up waiting: %d of %d arrived" % (what, n, target))
                return st
            time.sleep(0.05 if target - n < 1000 else 0.2)

    def create_endpoint(self, serve, mock, path, events, secret=None, enabled=True,
                        signatures=None):
        body = {"url": "http://127.0.0.1:%d%s" % (mock.port, path), "events": events,
                "enabled": enabled, "max_in_flight": EP_MAX_IN_FLIGHT}
        if secret:
            body["secret"] = secret
        signatures = signatures or getattr(self.o, "signatures", None)
        if signatures:
            body["signatures"] = signatures
        ep = Client(serve.port, self.key).json("POST", "/v1/endpoints", body, expect=(201,))
        return ep

    def pending_empty(self, serve):
        page = Client(serve.port, self.key).json("GET", "/v1/deliveries?status=pending&limit=1")
        return not page["data"]

    def wait_pending_empty(self, serve, deadline_s, what):
        end = time.monotonic() + deadline_s
        while not self.pending_empty(serve):
            if time.monotonic() > end:
                log("%s: deliveries still pending after %.0f s" % (what, deadline_s))
                return False
            time.sleep(0.2)
        return True

    # -- phases

    def ceiling_files(self):
        """Step a's request for wrk: the event hookd would send in b, signed with the mock's
        secret (a new one if the mock checks none), written to the temp dir. Returns (body,
        body file, header file)."""
        body = json.dumps({"id": "evt_01BENCHBENCHBENCHBENCHBENC", "event": "bench.load",
                           "created_at": "2026-01-01T00:00:00.000Z",
                           "data": json.loads(self.load_body)["data"]},
                          separators=(",", ":")).encode()
        body_path = os.path.join(self.tmp, "ceiling-body.json")
        hdr_path = os.path.join(self.tmp, "ceiling-headers.txt")
        with open(body_path, "wb") as f:
            f.write(body)
        secret = self.mock_secret or new_secret()
        with open(hdr_path, "w") as f:
            for k, v in signed_headers(secret, "evt_01BENCHBENCHBENCHBENCHBENC", body,
                                       "bench.load").items():
                f.write("%s: %s\n" % (k, v))
        return body, body_path, hdr_path

    def phase_ceiling(self, mock, when, seconds=None):
        seconds = seconds or self.sz["ceiling_s"]
        log("a: ceiling (%s b): wrk -> mock for %d s" % (when, seconds))
        body, body_path, hdr_path = self.ceiling_files()
        self.mock_stats(mock, reset=True)
        mock0, (_, kids0) = process_cpu(mock.p.pid), self_cpu()
        w = run_wrk("http://127.0.0.1:%d/ceiling" % mock.port, seconds, body_path,
                    hdr_path, False, self.tmp)
        mock1, (_, kids1) = process_cpu(mock.p.pid), self_cpu()
        st = self.mock_stats(mock, reset=True)
        n = max(st["requests"], 1)
        self.r["a_" + when] = {"rate": w["rate"], "requests": w["requests"], "errors": w["errors"],
                       "status_errors": w["status_errors"], "body_bytes": len(body),
                       "mock_requests": st["requests"], "mock_verified": st["verified"],
                       "mock_unverified": st["unverified"], "latency_p99_us":
                       w["latency_p99_us"],
                       # CPU per request: the receiver, and the client (wrk)
                       "cpu_us": {"mock": 1e6 * (mock1 - mock0) / n,
                                  "client": 1e6 * (kids1 - kids0) / n}}
        if self.mock_secret and st["unverified"]:
            log("a: the mock failed to verify %d requests" % st["unverified"])
        log("a: %.0f req/s" % w["rate"])

    def ceiling_mean(self):
        """a: the mean of the ceilings measured around b. The machine's speed drifts over
        minutes (other guests on the host: 78,686 and 93,859 req/s one minute apart in one run);
        measuring the ceiling on both sides of each b keeps a drift from landing on b's ratio
        alone."""
        runs = [self.r[k] for k in ("a_before", "a_between", "a_after") if k in self.r]
        self.r["a"] = dict(runs[0], rate=sum(x["rate"] for x in runs) / len(runs),
                           rates=[x["rate"] for x in runs],
                           cpu_us={k: sum(x["cpu_us"][k] for x in runs) / len(runs)
                                   for k in ("mock", "client")})

    def e2e_mean(self):
        """b: the mean of the end-to-end runs (one in --quick, two in a full run, each on a
        fresh server and database), for the same reason as ceiling_mean."""
        runs = [self.r[k] for k in ("b1", "b2") if k in self.r]
        rates = [x["rate"] for x in runs]
        mean = None if None in rates else sum(rates) / len(rates)
        ingest = [x["ingest_events_per_s"] for x in runs]
        self.r["b"] = dict(runs[0], rate=mean, rates=rates,
                           ingest_events_per_s=sum(ingest) / len(ingest))

    def phase_e2e(self, serve, mock, key):
        n = self.sz["e2e_events"]
        n_batches = (n + BATCH - 1) // BATCH
        n = n_batches * BATCH
        log("b: end-to-end (%s): %d events in batches of %d -> hookd -> mock" % (key, n, BATCH))
        ep = self.create_endpoint(serve, mock, "/webhooks", ["bench.load"],
                                  secret=self.mock_secret)
        if key == "b1":
            self.ep_load = ep  # the later phases use the first server
        batch = ('{"events":[' + ",".join([self.load_body] * BATCH) + "]}").encode()
        self.mock_stats(mock, reset=True)
        t_send = now_us()
        cpu0 = thread_cpu(serve.p.pid)
        mock0, (own0, _) = process_cpu(mock.p.pid), self_cpu()
        ld = load_batches(serve.port, self.key, batch, n_batches, LOAD_CONNS,
                          self.sz["load_deadline_s"])
        if ld["errors"]:
            log("b: %d batch requests failed, first: %s" % (ld["errors"], ld["first_error"]))
        st = self.wait_mock(mock, ld["deliveries"], self.sz["drain_deadline_s"], "b")
        cpu1 = thread_cpu(serve.p.pid)
        mock1, (own1, _) = process_cpu(mock.p.pid), self_cpu()
        threads = thread_cpu_delta(cpu0, cpu1, (now_us() - t_send) / 1e6)
        self.mock_stats(mock, reset=True)
        per = max(st["requests"], 1)
        cpu_us = {"hookd": 1e6 * (sum(cpu1.values()) - sum(cpu0.values())) / per,
                  "mock": 1e6 * (mock1 - mock0) / per,
                  "client": 1e6 * (own1 - own0) / per}
        span = (st["last_at_us"] - st["first_at_us"]) / 1e6 if st["first_at_us"] else 0
        got = st["requests"]
        self.r[key] = {
            "events": ld["ok"] * BATCH, "deliveries_expected": ld["deliveries"],
            "delivered": got, "verified": st["verified"], "unverified": st["unverified"],
            "non_2xx_replies": st["replied_other"],
            "rate": (got - 1) / span if span > 0 else None,
            "wall_rate": got / ((st["last_at_us"] - t_send) / 1e6) if st["last_at_us"] else None,
            "ingest_events_per_s": ld["ok"] * BATCH / ld["seconds"],
            "ingest_errors": ld["errors"], "first_error": ld["first_error"],
            "thread_cpu": threads,
            # CPU per delivery: hookd (all threads), the receiver, the client (this Python:
            # the batch loaders and the pollers)
            "cpu_us": cpu_us,
        }
        log("b: %s thread CPU (s, share of one core): %s" % (key, ", ".join(
            "%s %.2f %.0f%%" % (n, t["cpu_s"], 100 * (t["share_of_one_core"] or 0))
            for n, t in threads.items())))
        log("b: %s CPU per delivery: hookd %.1f us, mock %.1f us, loader %.1f us" % (
            key, cpu_us["hookd"], cpu_us["mock"], cpu_us["client"]))
        log("b: %s deliveries/s (%d of %d delivered), batch ingest %.0f events/s" % (
            fmt_rate(self.r[key]["rate"]), got, ld["deliveries"],
            self.r[key]["ingest_events_per_s"]))

    def phase_metrics_cost(self, mock):
        """m: what the metrics cost (issue 11): step b's shape on a fresh server with
        `--metrics off` and with metrics on (the default), alternated in pairs whose order flips
        each time, so the machine's drift lands on both sides. The figure is the mean rate with
        metrics on over the mean rate without them."""
        on, off = [], []
        for i in range(self.sz["metrics_pairs"]):
            order = [("off", ["--metrics", "off"]), ("on", [])]
            if i % 2:
                order.reverse()
            for label, extra in order:
                key = "m_%s_%d" % (label, i)
                serve = self.start_serve("serve-" + key, extra)
                self.phase_e2e(serve, mock, key)
                serve.stop()
                rate = self.r.pop(key)["rate"]
                (on if label == "on" else off).append(rate)
        if None in on or None in off:
            self.r["m"] = {"on": on, "off": off, "ratio": None}
            return
        mean_on, mean_off = sum(on) / len(on), sum(off) / len(off)
        self.r["m"] = {"on": on, "off": off, "on_mean": mean_on, "off_mean": mean_off,
                       "ratio": mean_on / mean_off}
        log("m: metrics on %.0f /s, off %.0f /s: %.3f" % (mean_on, mean_off, mean_on / mean_off))

    def phase_single(self, serve, mock, paused):
        """c: wrk posts single events for single_s seconds. paused: the subscribed endpoint is
        disabled during the run, so every 202 still wrote its event and its delivery row but
        no CPU goes to delivering (that is b's figure); it is enabled afterwards and every
        acknowledged event must arrive. Not paused: deliveries run at the same time."""
        key = "c" if paused else "c_delivering"
        log("c: single-event ingest: wrk -> POST /v1/events for %d s (%s)" % (
            self.sz["single_s"], "endpoint paused, delivered after" if paused
            else "deliveries running"))
        body_path = os.path.join(self.tmp, "single-body.json")
        hdr_path = os.path.join(self.tmp, "single-headers.txt")
        with open(body_path, "w") as f:
            f.write(self.load_body)
        with open(hdr_path, "w") as f:
            f.write("Authorization: Bearer %s\n" % self.key)
        api = Client(serve.port, self.key)
        ep_path = "/v1/endpoints/" + self.ep_load["id"]
        if paused:
            api.json("PATCH", ep_path, {"enabled": False})
        self.mock_stats(mock, reset=True)
        w = run_wrk("http://127.0.0.1:%d/v1/events" % serve.port, self.sz["single_s"],
                    body_path, hdr_path, True, self.tmp)
        ok = w["statuses"].get(202, 0)
        other = {k: v for k, v in w["statuses"].items() if k != 202}
        during = self.mock_stats(mock)
        if paused:
            api.json("PATCH", ep_path, {"enabled": True})
        drained = self.wait_pending_empty(serve, self.sz["drain_deadline_s"], "c")
        st = self.mock_stats(mock, reset=True)
        self.r[key] = {"rate_202": ok / (w["duration_us"] / 1e6), "ok": ok, "other_statuses":
                       other, "socket_errors": w["errors"], "latency_p50_us":
                       w["latency_p50_us"], "latency_p99_us": w["latency_p99_us"],
                       "delivered_during": during["requests"], "delivered": st["requests"],
                       "drained": drained, "paused": paused}
        if other or w["errors"]:
            log("c: not 202: %r, socket errors %d" % (other, w["errors"]))
        log("c: %.0f acknowledged requests/s (202), p99 %.1f ms" % (
            self.r[key]["rate_202"], w["latency_p99_us"] / 1000))

    def phase_latency(self, serve):
        rate, secs = self.sz["latency_rate"], self.sz["latency_s"]
        log("d: latency: %d events/s for %d s, open loop" % (rate, secs))
        secret = new_secret()
        rec = os.path.join(self.tmp, "latency.jsonl")
        mock = self.start_mock("mock-latency", "--record", rec, "--record-us", secret=secret)
        self.create_endpoint(serve, mock, "/latency", ["bench.latency"], secret=secret)
        snd = paced_sender(serve.port, self.key, "bench.latency", rate, secs)
        if snd["errors"]:
            log("d: %d ingest calls failed, first: %s" % (snd["errors"], snd["first_error"]))
        st = self.wait_mock(mock, snd["ok"], 60, "d")
        lat, dup = arrival_latencies(rec)
        mock.stop()
        acks = sorted(snd["ack_us"])
        self.r["d"] = {"rate": rate, "seconds": secs, "sent": snd["sent"], "ok": snd["ok"],
                       "errors": snd["errors"], "arrived": len(lat), "duplicates": dup,
                       "verified": st["verified"], "unverified": st["unverified"],
                       "p50_ms": ms(pct(lat, 50)), "p99_ms": ms(pct(lat, 99)),
                       "max_ms": ms(lat[-1] if lat else None),
                       "ack_p50_ms": ms(pct(acks, 50)), "ack_p99_ms": ms(pct(acks, 99)),
                       "sender_late": snd["late"], "sender_max_behind_ms":
                       round(snd["max_behind_ms"], 2)}
        log("d: p50 %s ms, p99 %s ms (%d of %d arrived; sender late %d times, by <= %.1f ms)" % (
            self.r["d"]["p50_ms"], self.r["d"]["p99_ms"], len(lat), snd["ok"], snd["late"],
            snd["max_behind_ms"]))

    def phase_backlog(self, mock):
        n = self.sz["backlog"]
        n_batches = (n + BATCH - 1) // BATCH
        n = n_batches * BATCH
        log("e: backlog: %d events to a disabled endpoint on a fresh hookd" % n)
        serve = self.start_serve("serve-backlog")
        ep = self.create_endpoint(serve, mock, "/backlog", ["bench.backlog"],
                                  secret=self.mock_secret, enabled=False)
        body = event_json("bench.backlog", padded_data({"n": 0}))
        batch = ('{"events":[' + ",".join([body] * BATCH) + "]}").encode()
        self.mock_stats(mock, reset=True)
        ld = load_batches(serve.port, self.key, batch, n_batches, LOAD_CONNS,
                          self.sz["load_deadline_s"])
        if ld["errors"]:
            log("e: %d batch requests failed, first: %s" % (ld["errors"], ld["first_error"]))
        loaded = ld["deliveries"]
        vm_loaded = serve.vm()
        early = self.mock_stats(mock, reset=True)["requests"]
        if early:
            log("e: %d deliveries arrived while the endpoint was disabled" % early)
        db_bytes = sum(os.path.getsize(serve.db + s) for s in ("", "-wal")
                       if os.path.exists(serve.db + s))
        log("e: %d pending after %.1f s (%.0f events/s), RSS %d MiB, peak %d MiB; enabling" % (
            loaded, ld["seconds"], ld["ok"] * BATCH / ld["seconds"],
            vm_loaded.get("VmRSS", 0) // 1024, vm_loaded.get("VmHWM", 0) // 1024))
        Client(serve.port, self.key).json("PATCH", "/v1/endpoints/" + ep["id"],
                                          {"enabled": True})
        peak_rss = [0]
        done = threading.Event()

        def sample():
            while not done.wait(0.5):
                peak_rss[0] = max(peak_rss[0], serve.vm().get("VmRSS", 0))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        st = self.wait_mock(mock, loaded, self.sz["drain_deadline_s"], "e")
        done.set()
        sampler.join()
        vm_end = serve.vm()
        self.mock_stats(mock, reset=True)
        span = (st["last_at_us"] - st["first_at_us"]) / 1e6 if st["first_at_us"] else 0
        got = st["requests"]
        self.r["e"] = {
            "pending": loaded, "load_seconds": ld["seconds"],
            "ingest_events_per_s": ld["ok"] * BATCH / ld["seconds"],
            "ingest_errors": ld["errors"], "delivered_while_disabled": early,
            "db_bytes": db_bytes,
            "rss_after_load_mib": vm_loaded.get("VmRSS", 0) / 1024,
            "peak_rss_mib": max(vm_end.get("VmHWM", 0), vm_loaded.get("VmHWM", 0)) / 1024,
            "peak_rss_drain_sampled_mib": peak_rss[0] / 1024,
            "delivered": got, "verified": st["verified"], "unverified": st["unverified"],
            "drain_rate": (got - 1) / span if span > 0 else None,
            "drain_seconds": span,
        }
        serve.stop()
        log("e: drained %d of %d at %s deliveries/s, peak RSS %.0f MiB" % (
            got, loaded, fmt_rate(self.r["e"]["drain_rate"]), self.r["e"]["peak_rss_mib"]))

    def run(self):
        self.mock_secret = new_secret() if self.o.verify else None
        mock = self.start_mock("mock", secret=self.mock_secret)
        # A warm-up, not counted: a ceiling taken on a cold receiver and an idle machine would
        # be the lowest of the three and flatter every ratio.
        self.phase_ceiling(mock, "warm-up", seconds=1 if self.o.quick else 3)
        self.phase_ceiling(mock, "before")
        serve = self.start_serve("serve")
        self.phase_e2e(serve, mock, "b1")
        if not self.o.quick:
            self.phase_ceiling(mock, "between")
            serve2 = self.start_serve("serve-b2")
            self.phase_e2e(serve2, mock, "b2")
            serve2.stop()
        self.phase_ceiling(mock, "after")
        self.ceiling_mean()
        self.e2e_mean()
        self.phase_single(serve, mock, paused=True)
        self.phase_single(serve, mock, paused=False)
        if not self.o.skip_metrics_cost:
            self.phase_metrics_cost(mock)
        self.phase_latency(serve)
        self.r["serve_peak_rss_mib"] = serve.vm().get("VmHWM", 0) / 1024
        serve.stop()
        if not self.o.skip_backlog:
            self.phase_backlog(mock)
        mock.stop()
        return self.r


# ---- output ----------------------------------------------------------------------------------

def ms(us):
    return None if us is None else round(us / 1000.0, 2)


def fmt_rate(v):
    return "-" if v is None else "{:,.0f}".format(v)


def ratio(v, ceiling):
    return "-" if v is None or not ceiling else "%.2f" % (v / ceiling)


def machine_ticks():
    """(all, idle) clock ticks of the machine so far (/proc/stat; idle counts iowait)."""
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:]))
    return sum(v[:8]), v[3] + v[4]


def machine_info(hookd):
    info = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count()}
    try:
        with open("/proc/loadavg") as f:
            info["loadavg"] = " ".join(f.read().split()[:3])
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
            info["cpu"] = m.group(1) if m else "?"
    except OSError:
        pass
    for key, cmd in (("hookd", [hookd, "version"]),
                     ("commit", ["git", "-C", REPO, "rev-parse", "--short", "HEAD"]),
                     ("wrk", ["wrk", "--version"])):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            words = (out.stdout or out.stderr).split()[:2]
            # `wrk --version` exits 1 after printing its version.
            ok = words and (out.returncode == 0 or key == "wrk")
            info[key] = " ".join(words) if ok else "?"
        except (OSError, subprocess.SubprocessError):
            info[key] = "?"
    try:
        out = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            info["commit"] += " (+%d modified files)" % len(out.stdout.strip().splitlines())
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def print_report(o, r, info_start, info_end):
    sz = SIZES["quick" if o.quick else "full"]
    a = r["a"]["rate"]
    rows = []

    def row(name, value, rat, target, meets):
        rows.append((name, value, rat, target, meets))

    def check(ok):
        return "-" if ok is None else ("yes" if ok else "NO")

    b = r.get("b", {})
    c = r.get("c", {})
    c2 = r.get("c_delivering", {})
    d = r.get("d", {})
    e = r.get("e")
    row("a ceiling: wrk -> mock, %d B signed POST (*)" % r["a"]["body_bytes"],
        fmt_rate(a) + " req/s", "1.00", "", "")
    brate = b.get("rate")
    row("b end-to-end deliveries/s (%s events)" % "{:,}".format(b.get("events", 0)),
        fmt_rate(brate) + " /s", ratio(brate, a), ">= 0.30 x ceiling",
        check(None if brate is None else brate >= 0.30 * a))
    row("c single-event ingest, 202s (wrk -c%d)" % WRK_CONNS,
        fmt_rate(c.get("rate_202")) + " req/s", ratio(c.get("rate_202"), a), ">= 20,000/s",
        check(None if c.get("rate_202") is None else c["rate_202"] >= 20000))
    row("c single-event ingest, delivering meanwhile",
        fmt_rate(c2.get("rate_202")) + " req/s", ratio(c2.get("rate_202"), a), "", "")
    row("c batch ingest, %d/batch, delivering (b)" % BATCH,
        fmt_rate(b.get("ingest_events_per_s")) + " ev/s", ratio(b.get("ingest_events_per_s"), a),
        ">= 50,000/s", check(None if b.get("ingest_events_per_s") is None
                            else b["ingest_events_per_s"] >= 50000))
    if e:
        row("c batch ingest, %d/batch, endpoint off (e)" % BATCH,
            fmt_rate(e["ingest_events_per_s"]) + " ev/s", ratio(e["ingest_events_per_s"], a),
            ">= 50,000/s", check(e["ingest_events_per_s"] >= 50000))
    row("d latency ingest->receiver p50 @%d/s" % d.get("rate", 0),
        "%s ms" % d.get("p50_ms"), "", "", "")
    row("d latency ingest->receiver p99 @%d/s" % d.get("rate", 0),
        "%s ms" % d.get("p99_ms"), "", "<= 5 ms",
        check(None if d.get("p99_ms") is None else d["p99_ms"] <= 5))
    m = r.get("m")
    if m:
        row("m deliveries/s, metrics on / off (%d pairs)" % len(m["on"]),
            "%s / %s" % (fmt_rate(m.get("on_mean")), fmt_rate(m.get("off_mean"))),
            "%.3f" % m["ratio"] if m["ratio"] else "-", ">= 0.97 (on/off)",
            check(None if m["ratio"] is None else m["ratio"] >= 0.97))
    if e:
        row("e backlog %s pending: peak RSS (VmHWM)" % "{:,}".format(e["pending"]),
            "%.0f MiB" % e["peak_rss_mib"], "", "<= 200 MiB", check(e["peak_rss_mib"] <= 200))
        row("e backlog drain rate", fmt_rate(e["drain_rate"]) + " /s",
            ratio(e["drain_rate"], a) + " (%s of b)" % ratio(e["drain_rate"], brate),
            ">= 0.80 x b", check(None if e["drain_rate"] is None or brate is None
                                 else e["drain_rate"] >= 0.8 * brate))

    w = [max(len(str(x[i])) for x in rows + [("figure", "value", "ratio to a", "target (issue 3)",
                                                "met")]) for i in range(5)]
    out = sys.stdout
    out.write("\nhookd bench (%s) %s\n" % ("quick" if o.quick else "full", info_start["date"]))
    out.write("  machine: %s CPUs, %s; load average at start %s, at end %s\n" % (
        info_start["cpus"], info_start.get("cpu", "?"), info_start.get("loadavg"),
        info_end.get("loadavg")))
    out.write("  hookd: %s, commit %s; %s\n" % (info_start["hookd"], info_start["commit"],
                                                info_start["wrk"]))
    out.write("  receiver: hookd mock --quiet (thread pool), %s\n" % (
        "WITH --secret: every request HMAC-verified (3 schemes)" if o.verify else
        "without --secret: no verification in a, b, c, e (d verifies)"))
    out.write("  serve extra flags: %s\n" % (" ".join(o.serve_args) or "(none: defaults)"))
    out.write("  sizes: %s\n\n" % ", ".join("%s=%s" % kv for kv in sz.items()))
    hdr = ("figure", "value", "ratio to a", "target (issue 3)", "met")
    for line in [hdr, tuple("-" * n for n in w)] + rows:
        out.write("  " + "  ".join(str(line[i]).ljust(w[i]) if i == 0 else
                                   str(line[i]).rjust(w[i]) if i < 3 else
                                   str(line[i]).ljust(w[i]) for i in range(5)).rstrip() + "\n")
    notes = ["(*) a: the mean of %d runs around b: %s req/s" % (
        len(r["a"]["rates"]), ", ".join(fmt_rate(x) for x in r["a"]["rates"]))]
    if b:
        if len(b["rates"]) > 1:
            notes.append("b: the mean of %d runs, each on a fresh server: %s deliveries/s "
                         "(ratios to the ceilings around each: %s); batch ingest, the mean "
                         "of the runs" % (
                             len(b["rates"]), ", ".join(fmt_rate(x) for x in b["rates"]),
                             ", ".join(ratio(x, (r["a"]["rates"][i] + r["a"]["rates"][i + 1]) / 2)
                                       for i, x in enumerate(b["rates"]))))
        ac = r["a"].get("cpu_us")
        bc = [r[k]["cpu_us"] for k in ("b1", "b2") if k in r and "cpu_us" in r[k]]
        if ac and bc:
            bh, bm, bl = (sum(x[k] for x in bc) / len(bc) for k in ("hookd", "mock", "client"))
            notes.append("CPU: a %.1f us per request (mock %.1f + wrk %.1f); b %.1f us per "
                         "delivery (hookd %.1f + mock %.1f + loader %.1f); a/b %.2f: the ratio "
                         "b would reach if both used the same CPU time" % (
                             ac["mock"] + ac["client"], ac["mock"], ac["client"],
                             bh + bm + bl, bh, bm, bl,
                             (ac["mock"] + ac["client"]) / (bh + bm + bl)))
        for key in ("b1", "b2"):
            bb = r.get(key)
            if not bb:
                continue
            notes.append("%s: %d of %d deliveries arrived (wall rate from first send %s/s), "
                         "%d non-2xx replies, verified %d, batch ingest %s events/s, ingest "
                         "errors %d" % (
                             key, bb["delivered"], bb["deliveries_expected"],
                             fmt_rate(bb["wall_rate"]), bb["non_2xx_replies"], bb["verified"],
                             fmt_rate(bb["ingest_events_per_s"]), bb["ingest_errors"]))
    for name, cc in (("c", c), ("c delivering", c2)):
        if not cc:
            continue
        notes.append("%s: %d x 202, other statuses %s, socket errors %d, wrk latency p50 %.1f ms "
                     "p99 %.1f ms; %d delivered during the run, %d in all%s" % (
                         name, cc["ok"], cc["other_statuses"] or "none", cc["socket_errors"],
                         cc["latency_p50_us"] / 1000, cc["latency_p99_us"] / 1000,
                         cc["delivered_during"], cc["delivered"],
                         "" if cc["drained"] else " (NOT drained)"))
    if d:
        notes.append("d: %d sent, %d acknowledged (ack p50 %s ms, p99 %s ms), %d arrived, max %s "
                     "ms, %d verified, %d duplicates; sender late %d times (max %.1f ms)" % (
                         d["sent"], d["ok"], d["ack_p50_ms"], d["ack_p99_ms"], d["arrived"],
                         d["max_ms"], d["verified"], d["duplicates"], d["sender_late"],
                         d["sender_max_behind_ms"]))
    if m:
        notes.append("m: metrics on %s, off %s deliveries/s (alternating, fresh server each)" % (
            ", ".join(fmt_rate(x) for x in m["on"]), ", ".join(fmt_rate(x) for x in m["off"])))
    if e:
        notes.append("e: loaded in %.1f s, %d delivered while disabled, db %.0f MiB, RSS after "
                     "load %.0f MiB, drained %d of %d in %.1f s, serve (a-d) peak RSS %.0f MiB" % (
                         e["load_seconds"], e["delivered_while_disabled"],
                         e["db_bytes"] / 1048576, e["rss_after_load_mib"], e["delivered"],
                         e["pending"], e["drain_seconds"], r.get("serve_peak_rss_mib", 0)))
    out.write("\n" + "".join("  " + n + "\n" for n in notes))
    out.flush()


def main():
    ap = argparse.ArgumentParser(description="hookd bench (run it through bench/run)")
    ap.add_argument("--hookd", required=True, help="the hookd binary (release build)")
    ap.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    ap.add_argument("--verify", action="store_true",
                    help="run the receiver with --secret (HMAC-verify every request)")
    ap.add_argument("--skip-backlog", action="store_true", help="leave out phase e")
    ap.add_argument("--skip-metrics-cost", action="store_true",
                    help="leave out phase m (metrics on vs off)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    ap.add_argument("--tmpdir", default=None, help="where the temp dir goes (default $TMPDIR)")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    ap.add_argument("--signatures", default=None, type=lambda s: s.split(","),
                    help="the bench endpoints' signature schemes, comma-separated (default: "
                         "all three), e.g. standard")
    ap.add_argument("serve_args", nargs="*", help="extra `hookd serve` flags (after --)")
    o = ap.parse_args()
    o.hookd = os.path.abspath(o.hookd)

    def on_term(sig, frame):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    tmp = tempfile.mkdtemp(prefix="hookd-bench-", dir=o.tmpdir)
    info_start = machine_info(o.hookd)
    ok = False
    try:
        r = Bench(o, tmp).run()
        info_end = machine_info(o.hookd)
        print_report(o, r, info_start, info_end)
        if o.json:
            with open(o.json, "w") as f:
                json.dump({"machine": info_start, "end": info_end, "quick": o.quick,
                           "verify": o.verify, "serve_args": o.serve_args, "results": r},
                          f, indent=2)
        ok = True
    except BenchError as e:
        log("failed: %s" % e)
    finally:
        stop_all()
        if o.keep:
            log("temp dir kept: %s" % tmp)
        elif not ok:
            # The logs help to see what went wrong; the databases (GBs for a full run) go.
            for name in os.listdir(tmp):
                if re.search(r"\.db(-wal|-shm)?$", name):
                    os.unlink(os.path.join(tmp, name))
            log("temp dir kept (without databases): %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
