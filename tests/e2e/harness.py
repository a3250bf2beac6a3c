"""End-to-end harness: runs the real `hookd serve` and `hookd mock` on loopback ports picked at
run time, each test in its own temporary directory.

Standard library (Debian 12's python3.11), plus python3-yaml and python3-jsonschema for
openapi_check.py, which checks every response of `hookd serve` against docs/openapi.yaml. The binary comes from $HOOKD_BIN (meson sets it);
when run by hand without it, the first hookd found in the repository's build directories is used.

Every wait has a condition and a deadline (`wait_for`); a wait that runs out fails the test with a
message. Every process started is stopped in a cleanup, even when the test fails; `hookd serve` and
`hookd mock` must exit 0 on SIGTERM (a sanitizer report makes the exit status non-zero, so a leak or
a UBSan error fails the test that caused it). When a test fails, the stderr of each process it
started is printed.
"""

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
from datetime import datetime, timezone

import openapi_check

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

START_DEADLINE = 15.0  # seconds for a process to print its "listening" line (ASan builds are slow)
STOP_DEADLINE = 15.0   # seconds for a clean exit after SIGTERM (leak checking takes a moment)
API_KEY = "test-key"

RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
LISTEN_RE = {
    "serve": re.compile(r"^hookd listening on http://([^\s:]+|\[[^\]]+\]):(\d+)\s*$"),
    "mock": re.compile(r"^mock listening on https?://([^\s:]+|\[[^\]]+\]):(\d+)\s*$"),
}


def psql_bin():
    """psql of the PostgreSQL the tests use (Debian's 15 first), or None."""
    for p in ("/usr/lib/postgresql/15/bin/psql", shutil.which("psql")):
        if p and os.access(p, os.X_OK):
            return p
    return None


def pg_sql(url, statement):
    """Runs one SQL statement with psql on url; returns its output (tuples only)."""
    res = subprocess.run([psql_bin() or "psql", "-X", "-v", "ON_ERROR_STOP=1", "-tA", "-c",
                          statement, url], capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise AssertionError("%s: %s" % (statement, res.stderr))
    return res.stdout.strip()


def db_schema(path):
    """The PostgreSQL schema db_url gives the test database kept at path."""
    return "e2e_" + hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:16]


def db_url(path):
    """The --db of a test database kept at path: "sqlite:PATH", or, when HOOKD_TEST_PG_URL names
    a database (tests/pg/with-cluster.sh: the test module's own), a PostgreSQL schema of that
    path's own in it (made on first use; the same path gives the same schema, so a restart finds
    its data)."""
    admin = os.environ.get("HOOKD_TEST_PG_URL")
    if not admin:
        return "sqlite:" + path
    schema = db_schema(path)
    pg_sql(admin, "CREATE SCHEMA IF NOT EXISTS " + schema)
    sep = "&" if "?" in admin else "?"
    return admin + sep + urllib.parse.urlencode({"options": "-csearch_path=" + schema})


def hookd_bin():
    """Path of the hookd binary under test."""
    path = os.environ.get("HOOKD_BIN")
    if path:
        return path
    for d in ("build-test", "build-e", "build", "build-release"):
        candidate = os.path.join(REPO, d, "hookd")
        if os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("HOOKD_BIN is not set and no built hookd was found under " + REPO)


def clean_env(extra=None):
    """The environment for a hookd process: no proxies (loopback only), no stray HOOKD_*."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().endswith("_PROXY") and not k.startswith("HOOKD_")}
    if extra:
        env.update(extra)
    return env


def parse_time(s):
    """RFC 3339 UTC with milliseconds -> unix seconds (float)."""
    if not isinstance(s, str) or not RFC3339_MS.match(s):
        raise AssertionError("not an RFC 3339 UTC time with ms: %r" % (s,))
    dt = datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return dt.timestamp()


def new_secret(nbytes=24):
    """A fresh endpoint secret: "whsec_" + padded base64 of nbytes random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(nbytes)).decode()


def sign_standard(secret, msg_id, ts, body):
    """Standard Webhooks "v1,<b64>" for a body (bytes)."""
    key = base64.b64decode(secret[len("whsec_"):])
    msg = msg_id.encode() + b"." + str(ts).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()


def sign_hex(secret, body):
    """PixelPatrol hex HMAC of the body keyed with the whole secret string."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_headers(secret, msg_id, body, event="media.created", ts=None, ts_ms=None,
                   schemes=("standard", "pixelpatrol", "webhook_signature")):
    """The headers hookd would send for body (bytes), signed with secret."""
    now = time.time()
    ts = int(now) if ts is None else ts
    ts_ms = int(now * 1000) if ts_ms is None else ts_ms
    h = {"Content-Type": "application/json", "webhook-id": msg_id,
         "X-PixelPatrol-Event": event}
    if "standard" in schemes:
        h["webhook-timestamp"] = str(ts)
        h["webhook-signature"] = sign_standard(secret, msg_id, ts, body)
    if "pixelpatrol" in schemes:
        h["X-PixelPatrol-Timestamp"] = str(ts_ms)
        h["X-PixelPatrol-Signature"] = sign_hex(secret, body)
    if "webhook_signature" in schemes:
        h["X-Webhook-Signature"] = "sha256=" + sign_hex(secret, body)
    return h


def free_port():
    """A port nothing listens on right now (for tests that need one before starting)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_request(host, port, method, path, body=None, headers=None, timeout=30, source=None):
    """One HTTP request on a fresh connection. body: bytes, str, or None. source: a local
    address to connect from (e.g. "127.0.0.2"), default any.
    Returns (status, headers dict with lowercase names, raw body bytes)."""
    if isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection(host, port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Length", str(len(body)))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        if body:
            conn.send(body)
        resp = conn.getresponse()
        data = resp.read()
        rh = {}
        for k, v in resp.getheaders():
            rh[k.lower()] = v
        return resp.status, rh, data
    finally:
        conn.close()


class Proc:
    """A hookd subprocess: stdout read by a thread into `lines`, stderr kept in a file."""

    def __init__(self, name, args, tmp, env=None):
        self.name = name
        self.args = args
        self.stderr_path = os.path.join(tmp, "%s-%d.stderr" % (name, id(self)))
        self.stdout_path = os.path.join(tmp, "%s-%d.stdout" % (name, id(self)))
        self._stderr = open(self.stderr_path, "wb")
        self._stdout_log = open(self.stdout_path, "w", encoding="utf-8", errors="replace")
        self.lines = []
        self._cond = threading.Condition()
        self.killed = False  # set when the test kill -9s it on purpose
        self.stopped = False
        self.signalled = False  # begin_stop sent the stop signal; stop only waits
        self.returncode = None
        self.p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=self._stderr, env=env if env is not None else clean_env(),
                                  cwd=tmp)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.p.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._stdout_log.write(line + "\n")
            self._stdout_log.flush()
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_line(self, regex, deadline_s, start=0):
        """Waits for a stdout line (from index start) matching regex; returns the match.
        Raises AssertionError with the stderr tail if the process exits or time runs out."""
        deadline = time.monotonic() + deadline_s
        i = start
        with self._cond:
            while True:
                while i < len(self.lines):
                    m = regex.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                if self.p.poll() is not None and not self._reader.is_alive():
                    raise AssertionError("%s exited with %s before printing %r\nstderr:\n%s" % (
                        self.name, self.p.returncode, regex.pattern, self.stderr_tail()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s did not print %r within %.0f s\nstderr:\n%s" % (
                        self.name, regex.pattern, deadline_s, self.stderr_tail()))
                self._cond.wait(min(left, 0.2))

    def stderr_text(self):
        if not self._stderr.closed:
            self._stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr_tail(self, n=60):
        return "\n".join(self.stderr_text().splitlines()[-n:])

    def kill9(self):
        """SIGKILL, as a crash; the exit status is not checked afterwards."""
        self.killed = True
        self.p.send_signal(signal.SIGKILL)
        self.returncode = self.p.wait(timeout=STOP_DEADLINE)
        self._reader.join(timeout=5)

    def begin_stop(self, sig=signal.SIGTERM):
        """Sends sig if the process runs and was sent none yet; stop() then waits for the exit
        without sending it again (a second signal means "stop at once")."""
        if not self.stopped and not self.signalled and self.p.poll() is None:
            self.p.send_signal(sig)
            self.signalled = True

    def stop(self, sig=signal.SIGTERM):
        """Sends sig (unless begin_stop did), waits for the exit (killing after STOP_DEADLINE).
        Returns the exit status, or None if it had to be killed."""
        if self.stopped:
            return self.returncode
        self.stopped = True
        if self.p.poll() is None:
            if not self.signalled:
                self.p.send_signal(sig)
                self.signalled = True
            try:
                self.returncode = self.p.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=STOP_DEADLINE)
                self.returncode = None
        else:
            self.returncode = self.p.returncode
        self._reader.join(timeout=5)
        if not self._reader.is_alive():
            self.p.stdout.close()
        self._stderr.close()
        self._stdout_log.close()
        return self.returncode


class Serve(Proc):
    """`hookd serve` with an API helper bound to its port."""

    def __init__(self, args, tmp, env=None, api_key=API_KEY):
        super().__init__("serve", args, tmp, env)
        self.api_key = api_key
        self.host = "127.0.0.1"
        self.port = None

    def wait_listening(self):
        """Waits for the "hookd listening on" line and takes the port from it."""
        m = self.wait_line(LISTEN_RE["serve"], START_DEADLINE)
        self.host = m.group(1).strip("[]")
        self.port = int(m.group(2))
        return self

    @property
    def base_url(self):
        return "http://%s:%d" % (self.host, self.port)

    def request(self, method, path, body=None, headers=None, key=True, timeout=30, source=None):
        """Raw request: body is bytes/str (sent as is) or None; source: see http_request.
        Returns (status, headers, bytes)."""
        h = {}
        if key is True:
            h["Authorization"] = "Bearer " + self.api_key
        elif key:
            h["Authorization"] = "Bearer " + key
        h.update(headers or {})
        status, rh, data = http_request(self.host, self.port, method, path, body, h, timeout,
                                        source)
        # Every response a test receives must match docs/openapi.yaml (openapi_check.py).
        openapi_check.check_response(method, path, status, rh, data)
        return status, rh, data

    def api_full(self, method, path, body=None, headers=None, key=True, source=None):
        """JSON request: body is a JSON-able object (sent as application/json) or None.
        Returns (status, parsed JSON or None, response headers)."""
        h = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        status, rh, raw = self.request(method, path, data, h, key, source=source)
        parsed = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                raise AssertionError("%s %s -> %d with a body that is not JSON: %r" % (
                    method, path, status, raw[:300]))
        return status, parsed, rh

    def api(self, method, path, body=None, headers=None, key=True, source=None):
        """JSON request; returns (status, parsed JSON or None)."""
        status, parsed, _ = self.api_full(method, path, body, headers, key, source)
        return status, parsed


class Mock(Proc):
    """`hookd mock` with its record file."""

    def __init__(self, args, tmp, record_path, env=None):
        super().__init__("mock", args, tmp, env)
        self.record_path = record_path
        m = self.wait_line(LISTEN_RE["mock"], START_DEADLINE)
        self.host = m.group(1).strip("[]")
        self.port = int(m.group(2))
        self.scheme = "https" if "https://" in m.group(0) else "http"  # --tls-cert

    @property
    def url(self):
        return "%s://%s:%d" % (self.scheme, self.host, self.port)

    def records(self):
        """Every complete JSON line of the record file so far."""
        try:
            with open(self.record_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        lines = data.split(b"\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                # A line is appended with a single write; only the last one can be incomplete,
                # while it is being written.
                if i != len(lines) - 1:
                    raise AssertionError("malformed record line: %r" % line[:300])
        return out

    def records_for(self, webhook_id):
        return [r for r in self.records() if r.get("headers", {}).get("webhook-id") == webhook_id]

    def request_lines(self):
        return [l for l in self.lines if l.startswith("mock: ")]


class Receiver:
    """A programmable loopback HTTP receiver (python http.server) for what `hookd mock` cannot do:
    answering 410, 429/503 with Retry-After, a redirect, sleeping long on one path, switching
    behaviour mid-test, timing arrivals and counting concurrent connections.

    `respond(req)` decides each reply (it may be replaced at any time, e.g. to make a failing
    receiver recover). req is a dict: seq, at (time.time() at arrival), mono (time.monotonic()),
    client (the sender's address), method, path, headers (lowercase names), raw (body bytes),
    body (the body as text, so
    HookdTestCase.assert_verifies works on it); once answered also status and done_mono (when
    the reply was written). It returns None (200 {"received":true}), a status
    int, or (status, {header: value}, body bytes). A responder that waits calls `receiver.sleep(s)`,
    which returns early when the receiver closes; requests are recorded before respond runs.
    Replies are HTTP/1.0 (one request per connection), so connections in flight = requests in
    flight: `in_flight` now, `max_in_flight` the most ever seen; per path, from a request's
    arrival until its answer is about to be written, `path_in_flight` and `path_max_in_flight`."""

    BODY_MAX = 64 * 1024 * 1024

    def __init__(self, respond=None):
        self.respond = respond
        self.requests = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.path_in_flight = {}      # path -> requests being answered now
        self.path_max_in_flight = {}  # path -> the most ever answered at once
        self._cond = threading.Condition()
        self._closing = threading.Event()
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def setup(self):
                super().setup()
                with recv._cond:
                    recv.in_flight += 1
                    recv.max_in_flight = max(recv.max_in_flight, recv.in_flight)
                    recv._cond.notify_all()

            def finish(self):
                try:
                    super().finish()
                finally:
                    with recv._cond:
                        recv.in_flight -= 1
                        recv._cond.notify_all()

            def _handle(self):
                at, mono = time.time(), time.monotonic()
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(min(n, recv.BODY_MAX)) if n > 0 else b""
                req = {"at": at, "mono": mono, "method": self.command, "path": self.path,
                       "headers": {k.lower(): v for k, v in self.headers.items()},
                       "raw": raw, "body": raw.decode("utf-8", "replace"),
                       "client": self.client_address[0]}
                with recv._cond:
                    req["seq"] = len(recv.requests) + 1
                    recv.requests.append(req)
                    recv._path_enter(self.path)
                    recv._cond.notify_all()
                try:
                    fn = recv.respond
                    out = fn(req) if fn else None
                finally:
                    # Counted until just before the answer is written: once hookd reads it,
                    # it may send the next request, which may arrive before this thread runs
                    # again.
                    with recv._cond:
                        recv.path_in_flight[self.path] -= 1
                        recv._cond.notify_all()
                self._answer(req, out)

            def _answer(self, req, out):
                if recv._closing.is_set():
                    return  # closing: drop the connection without an answer
                status, hdrs, body = 200, {}, b'{"received":true}'
                if isinstance(out, int):
                    status = out
                elif out is not None:
                    status, hdrs, body = out
                    hdrs = dict(hdrs or {})
                    body = body if body is not None else b""
                try:
                    self.send_response(status)
                    if not any(k.lower() == "content-type" for k in hdrs):
                        self.send_header("Content-Type", "application/json")
                    for k, v in hdrs.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                except OSError:
                    pass  # the client gave up (timeout, shutdown): nothing to answer
                req["status"] = status
                req["done_mono"] = time.monotonic()

            do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

            def handle_error(self, request, client_address):
                pass  # a reset connection is the client's business, not a test failure

        self._srv = Server(("127.0.0.1", 0), Handler)
        self.host, self.port = "127.0.0.1", self._srv.server_address[1]
        self._thread = threading.Thread(target=self._srv.serve_forever, kwargs={
            "poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def _path_enter(self, path):
        """Counts a request to path as being answered (caller holds _cond)."""
        n = self.path_in_flight.get(path, 0) + 1
        self.path_in_flight[path] = n
        self.path_max_in_flight[path] = max(self.path_max_in_flight.get(path, 0), n)

    def sleep(self, seconds):
        """For a responder: waits seconds, or less when the receiver closes."""
        self._closing.wait(seconds)

    def snapshot(self, path=None):
        """The requests so far (optionally only those to path), oldest first."""
        with self._cond:
            reqs = list(self.requests)
        return [r for r in reqs if path is None or r["path"] == path]

    def close(self):
        """Stops accepting, releases sleeping responders (their connections are dropped)."""
        self._closing.set()
        self._srv.shutdown()
        self._srv.server_close()
        self._thread.join(timeout=5)


class HookdTestCase(unittest.TestCase):
    """Base class: a temp dir per test, process helpers with guaranteed cleanup, wait_for."""

    serve_schedule = "0,1s,1s"

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hookd-e2e-")
        self.procs = []
        self.bin = hookd_bin()
        self.addCleanup(self._cleanup)

    # -- processes ---------------------------------------------------------------------------

    def start_serve(self, *extra, db=None, api_key=API_KEY, schedule=None, allow_http=True,
                    allow_private=True, env=None, wait=True, listen="127.0.0.1:0"):
        """Starts `hookd serve` on a free loopback port with the test defaults."""
        db = db or os.path.join(self.tmp, "hookd.db")
        args = [self.bin, "serve"]
        if listen is not None:
            args += ["--listen", listen]
        if db is not False:
            args += ["--db", db_url(db)]
        if api_key:
            args += ["--api-key", api_key]
        if allow_http:
            args.append("--allow-http")
        if allow_private:
            args.append("--allow-private-networks")
        sched = schedule if schedule is not None else self.serve_schedule
        if sched:
            args += ["--retry-schedule", sched]
        if os.environ.get("HOOKD_TEST_PG_URL") and "--node-id" not in extra:
            # One stable node name, as docs/scaling.md advises: a serve restarted after kill -9
            # takes its endpoints' leases back at once instead of waiting for them to run out.
            args += ["--node-id", "e2e"]
        args += list(extra)
        return self.spawn_serve(args[2:], env=env, api_key=api_key or API_KEY, wait=wait)

    def spawn_serve(self, args, env=None, api_key=API_KEY, wait=True):
        """Starts `hookd serve <args>` exactly as given (no test defaults) with clean_env(env)."""
        s = Serve([self.bin, "serve"] + list(args), self.tmp, env=clean_env(env),
                  api_key=api_key)
        self.procs.append(s)  # before waiting: a start-up failure still gets it stopped
        if wait:
            s.wait_listening()
        return s

    def start_mock(self, *extra, secret=None, record=True, name="rec"):
        """Starts `hookd mock` on a free loopback port, recording to <tmp>/<name>.jsonl."""
        record_path = os.path.join(self.tmp, "%s-%d.jsonl" % (name, len(self.procs)))
        args = [self.bin, "mock", "--listen", "127.0.0.1:0"]
        if record:
            args += ["--record", record_path]
        if secret:
            args += ["--secret", secret]
        args += list(extra)
        m = Mock(args, self.tmp, record_path, env=clean_env())
        self.procs.append(m)
        return m

    def stop_clean(self, proc, sig=signal.SIGTERM):
        """Stops proc and asserts it exited 0."""
        rc = proc.stop(sig)
        if rc != 0:
            self.fail("%s did not exit 0 on signal %d (rc=%r)\nstderr:\n%s" % (
                proc.name, sig, rc, proc.stderr_tail()))

    def run_hookd(self, *args, env=None, timeout=30, input=None):
        """Runs a short hookd command; returns CompletedProcess (text). A `--db sqlite:PATH`
        among args means the test's database at PATH: db_url(PATH) (PostgreSQL runs)."""
        args = list(args)
        for i in range(1, len(args)):
            if args[i - 1] == "--db" and args[i].startswith("sqlite:"):
                args[i] = db_url(args[i][len("sqlite:"):])
        return subprocess.run([self.bin] + args, env=clean_env(env), cwd=self.tmp,
                              capture_output=True, text=True, timeout=timeout, input=input)

    def _failed(self):
        """Whether this test has failed so far. unittest resets its own success flag around each
        cleanup, so look for this test among the result's failures and errors instead."""
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is None:
            return True
        for test, _ in list(getattr(result, "failures", [])) + list(getattr(result, "errors", [])):
            if test is self or getattr(test, "test_case", None) is self:
                return True
        return False

    def _cleanup(self):
        problems = []
        # Every process still running is sent SIGTERM first, then each exit is waited for: the
        # stops (a leak check each) overlap instead of adding up. Newest first, as before.
        was_running = {id(p): p.p.poll() is None for p in self.procs}
        for p in reversed(self.procs):
            if not p.killed:
                p.begin_stop()
        for p in reversed(self.procs):
            if p.killed:
                p.stop()
                continue
            rc = p.stop()
            if rc != 0:
                problems.append("%s (%s) exited %r%s" % (
                    p.name, " ".join(p.args[1:3]), rc,
                    " on SIGTERM" if was_running[id(p)] else " before the test ended"))
        if problems or self._failed():
            for p in self.procs:
                sys.stderr.write("\n----- %s %s: stderr (%s) -----\n%s\n" % (
                    p.name, " ".join(p.args[1:]), p.stderr_path, p.stderr_tail(80)))
            sys.stderr.write("----- temp dir kept: %s -----\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if problems:
            raise AssertionError("; ".join(problems))

    # -- waiting -------------------------------------------------------------------------------

    def wait_for(self, predicate, timeout=10.0, message="condition", interval=0.05):
        """Polls predicate until it returns something truthy (returned), or fails the test after
        timeout seconds with message and the last value seen."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = predicate()
            if last:
                return last
            if time.monotonic() >= deadline:
                self.fail("timed out after %.1f s waiting for %s (last value: %r)" % (
                    timeout, message, last))
            time.sleep(interval)

    # -- API conveniences ----------------------------------------------------------------------

    def create_endpoint(self, serve, url, **fields):
        body = {"url": url}
        body.update(fields)
        status, ep = serve.api("POST", "/v1/endpoints", body)
        self.assertEqual(status, 201, "create endpoint %r: %r" % (body, ep))
        return ep

    def ingest(self, serve, event="media.created", data=None, headers=None, **fields):
        body = {"event": event, "data": data if data is not None else {"n": 1}}
        body.update(fields)
        status, resp = serve.api("POST", "/v1/events", body, headers=headers)
        self.assertEqual(status, 202, "ingest %r: %r" % (body, resp))
        return resp

    def get_delivery(self, serve, dlv_id):
        status, d = serve.api("GET", "/v1/deliveries/" + dlv_id)
        self.assertEqual(status, 200, "GET delivery %s: %r" % (dlv_id, d))
        return d

    def wait_delivery(self, serve, dlv_id, status, timeout=15.0):
        """Waits until the delivery has the given status; returns it (with attempts)."""
        def check():
            d = self.get_delivery(serve, dlv_id)
            return d if d["status"] == status else None
        return self.wait_for(check, timeout, "delivery %s to be %s" % (dlv_id, status))

    def deliver_one(self, serve, url, timeout=15.0):
        """Creates an endpoint at url subscribed to a type of its own, ingests one event of that
        type (so no other endpoint gets it) and waits until the delivery is no longer pending;
        returns the delivery (with attempts)."""
        self._deliver_one_n = getattr(self, "_deliver_one_n", 0) + 1
        event = "probe.n%d" % self._deliver_one_n
        ep = self.create_endpoint(serve, url, events=[event])
        resp = self.ingest(serve, event)
        self.assertEqual([x["endpoint_id"] for x in resp["deliveries"]], [ep["id"]], resp)
        dlv = resp["deliveries"][0]["id"]

        def done():
            d = self.get_delivery(serve, dlv)
            return d if d["status"] != "pending" else None
        return self.wait_for(done, timeout, "delivery %s to finish" % dlv)

    def list_all(self, serve, path, limit=1000):
        """Follows next_cursor through a list route; returns every item."""
        items = []
        sep = "&" if "?" in path else "?"
        cursor = None
        for _ in range(10000):
            p = "%s%slimit=%d" % (path, sep, limit)
            if cursor:
                p += "&cursor=" + urllib.parse.quote(cursor, safe="")
            status, page = serve.api("GET", p)
            self.assertEqual(status, 200, "GET %s: %r" % (p, page))
            items.extend(page["data"])
            cursor = page["next_cursor"]
            if not cursor:
                return items
        self.fail("pagination of %s never ended" % path)

    def assert_error(self, resp, status, code, field=None, expect_status=None, check_field=True):
        """resp is (status, body[, headers]) from api()/api_full(): checks the error shape."""
        got_status, body = resp[0], resp[1]
        self.assertEqual(got_status, status, "expected %d %s (field %r), got %d %r" % (
            status, code, field, got_status, body))
        self.assertIsInstance(body, dict, "error body is not a JSON object: %r" % (body,))
        self.assertIn("error", body, body)
        err = body["error"]
        self.assertEqual(set(err.keys()), {"code", "message", "field"}, err)
        self.assertEqual(err["code"], code, err)
        self.assertIsInstance(err["message"], str, err)
        self.assertTrue(err["message"], err)
        if check_field:
            self.assertEqual(err["field"], field, err)
        return err

    def assert_verifies(self, record, secret):
        """Checks every signature header of a recorded request ourselves (not trusting the mock)."""
        h = record["headers"]
        body = record["body"].encode()
        sigs = h["webhook-signature"].split(" ")
        for s in sigs:
            self.assertTrue(s.startswith("v1,"), h["webhook-signature"])
        self.assertIn(sign_standard(secret, h["webhook-id"], h["webhook-timestamp"], body), sigs,
                      "webhook-signature does not verify")
        self.assertEqual(h["x-pixelpatrol-signature"], sign_hex(secret, body),
                         "X-PixelPatrol-Signature does not verify")
        self.assertEqual(h["x-webhook-signature"], "sha256=" + sign_hex(secret, body),
                         "X-Webhook-Signature does not verify")

    # -- issue 4 helpers -----------------------------------------------------------------------

    def start_receiver(self, respond=None):
        """A Receiver (see the class) on a free loopback port, closed when the test ends."""
        r = Receiver(respond)
        self.addCleanup(r.close)
        return r

    def get_endpoint(self, serve, ep_id):
        status, ep = serve.api("GET", "/v1/endpoints/" + ep_id)
        self.assertEqual(status, 200, "GET endpoint %s: %r" % (ep_id, ep))
        return ep

    def wait_endpoint(self, serve, ep_id, predicate, timeout=10.0, message="endpoint state"):
        """Waits until predicate(endpoint) is truthy; returns the endpoint."""
        def check():
            ep = self.get_endpoint(serve, ep_id)
            return ep if predicate(ep) else None
        return self.wait_for(check, timeout, "%s (%s)" % (message, ep_id))

    def ingest_many(self, serve, events):
        """Ingests [{"event", "data", ...}, ...] in batch requests of at most 1000; returns the
        per-event responses in order."""
        out = []
        for i in range(0, len(events), 1000):
            chunk = events[i:i + 1000]
            status, resp = serve.api("POST", "/v1/events", {"events": chunk})
            self.assertEqual(status, 202, "batch ingest: %r" % (resp,))
            self.assertEqual(len(resp["events"]), len(chunk), resp)
            out.extend(resp["events"])
        return out

    def deliveries_to(self, resp, ep_id):
        """The delivery ids of an ingest/replay response (one event) that go to ep_id."""
        return [x["id"] for x in resp["deliveries"] if x["endpoint_id"] == ep_id]

    # -- several nodes on one PostgreSQL database (issue 14 item 2) ----------------------------

    def require_pg(self):
        """Skips the test unless a PostgreSQL cluster is given (tests/pg/with-cluster.sh): several
        nodes on one database exist only there."""
        if not os.environ.get("HOOKD_TEST_PG_URL"):
            self.skipTest("several nodes need PostgreSQL (run through tests/pg/with-cluster.sh)")

    def start_node(self, node_id, *extra, db=None, lease="2s", **kw):
        """Starts one node: `hookd serve --node-id node_id --node-lease lease` on the test's
        database (all nodes of a test share db: the same schema) with the same API key as every
        other node, on a free port of its own, delivering from a loopback address of its own
        (--source-address 127.0.0.<k>, the same for the same node_id): a Receiver's req["client"]
        names the node that sent (node_of). Returns the Serve, with .node_id and .source set."""
        addrs = self.__dict__.setdefault("_node_addrs", {})
        addr = addrs.setdefault(node_id, "127.0.0.%d" % (len(addrs) + 1))
        s = self.start_serve("--node-id", node_id, "--node-lease", lease,
                             "--source-address", addr, *extra,
                             db=db or os.path.join(self.tmp, "cluster.db"), **kw)
        s.node_id, s.source = node_id, addr
        return s

    def node_of(self, req):
        """The node id (start_node) that sent a request a Receiver recorded, or None."""
        for node_id, addr in self.__dict__.get("_node_addrs", {}).items():
            if addr == req.get("client"):
                return node_id
        return None

    def start_nodes(self, n, *extra, first=0, **kw):
        """Starts n nodes "node-<first>" .. on the test's database; returns their Serves."""
        return [self.start_node("node-%d" % i, *extra, **kw) for i in range(first, first + n)]

    def db_rows(self, sql, db=None):
        """Rows (lists of text columns) of one SQL query on the test's PostgreSQL schema."""
        path = db or os.path.join(self.tmp, "cluster.db")
        admin = os.environ["HOOKD_TEST_PG_URL"]
        out = pg_sql(admin, "SET search_path TO %s; %s" % (db_schema(path), sql))
        return [line.split("|") for line in out.splitlines() if line and line != "SET"]

    def endpoint_owners(self, db=None):
        """endpoint id -> node id of every endpoint whose lease is valid now (the database's
        clock), from the endpoint_owner table of the cluster design."""
        rows = self.db_rows("SELECT endpoint_id, node_id FROM endpoint_owner "
                            "WHERE lease_until > now()", db)
        return {r[0]: r[1] for r in rows}

    def wait_owned(self, ep_ids, nodes, timeout=15.0, db=None):
        """Waits until every endpoint of ep_ids has a valid lease held by one of nodes (Serves)
        and every node of nodes has them in its endpoint cache (wait_known), so that an ingest
        on any of them fans out to them; returns endpoint id -> node id."""
        names = {n.node_id for n in nodes}

        def check():
            own = self.endpoint_owners(db)
            if all(own.get(e) in names for e in ep_ids):
                return {e: own[e] for e in ep_ids}
            return None
        owners = self.wait_for(check, timeout, "every endpoint owned by one of %s" %
                               sorted(names), interval=0.1)
        self.wait_known(ep_ids, nodes, timeout)
        return owners

    def wait_known(self, ep_ids, nodes, timeout=10.0):
        """Waits until every node of nodes (Serves) has every endpoint of ep_ids in its endpoint
        cache (the endpoints GET /v1/stats lists). An ingest fans out over the cache of the node
        it reaches, and a node reads an endpoint another node created when that creation's
        notification reaches it (docs/scaling.md), through its commit thread: the owner's claim
        says nothing about the other nodes. (An ingest made on a node as soon as another had
        claimed the endpoint fanned out to nothing: test_cluster's
        test_wait_owned_waits_for_every_nodes_fan_out.)"""
        want = set(ep_ids)

        def known():
            for n in nodes:
                status, body = n.api("GET", "/v1/stats")
                self.assertEqual(status, 200, body)
                if not want <= {e["id"] for e in body["endpoints"]}:
                    return None
            return True
        self.wait_for(known, timeout, "every node of %s to know the endpoints" %
                      sorted(getattr(n, "node_id", "?") for n in nodes))

    def wait_delivering(self, serve, n):
        """On PostgreSQL, waits until serve's dispatcher owns n endpoints (GET /v1/stats,
        node.endpoints_owned): a node delivers an endpoint only once it has claimed it, shortly
        after its creation (docs/scaling.md), and a test whose endpoints must compete from the
        first event waits for that. On SQLite (endpoints_owned null) every endpoint is the node's
        from its creation."""
        def owned():
            status, body = serve.api("GET", "/v1/stats")
            self.assertEqual(status, 200, body)
            got = body["node"]["endpoints_owned"]
            return got is None or got >= n
        self.wait_for(owned, 10, "the node to own %d endpoints" % n)

    def node_attempts(self, serve):
        """endpoint id -> attempts this node made to it (every outcome), from its /metrics
        `hookd_attempts_total` counters (endpoints past --metrics-max-endpoints are "other")."""
        st, _, raw = serve.request("GET", "/metrics")
        self.assertEqual(st, 200, raw[:300])
        return metrics_attempts(raw.decode())


METRIC_LINE = re.compile(r'^hookd_attempts_total\{([^}]*)\}\s+([0-9.eE+]+)\s*$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metrics_attempts(text):
    """endpoint -> sum of hookd_attempts_total over outcomes, from a Prometheus text scrape."""
    out = {}
    for line in text.splitlines():
        m = METRIC_LINE.match(line)
        if not m:
            continue
        labels = dict(LABEL.findall(m.group(1)))
        ep = labels.get("endpoint", "")
        out[ep] = out.get(ep, 0) + int(float(m.group(2)))
    return out


class RoundRobin:
    """Threads POSTing single events to several nodes in turn (event i to node i mod n, a node
    that stopped answering skipped), recording each 202: (event id, node id, time.monotonic()
    before the request). A request that failed was never acknowledged and is not counted.
    make_body(i) gives event i's JSON object. rate (events a second, all threads together) paces
    the stream: event i is not sent before rate has allowed it, so the backlog stays bounded by
    what the receivers take in however fast the nodes acknowledge."""

    def __init__(self, nodes, make_body, threads=3, limit=None, rate=None):
        self.nodes = list(nodes)
        self.make_body = make_body
        self.limit = limit
        self.rate = rate
        self._t0 = time.monotonic()
        self.acked = []
        self.failed = 0
        self._next = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _take(self):
        with self.lock:
            if self.limit is not None and self._next >= self.limit:
                return None, None
            i = self._next
            self._next += 1
            live = [n for n in self.nodes if n.p.poll() is None and not n.killed]
            return i, (live[i % len(live)] if live else None)

    def _run(self):
        while not self.stop.is_set():
            i, node = self._take()
            if node is None:
                return
            if self.rate and self.stop.wait(max(0.0, self._t0 + i / self.rate -
                                                time.monotonic())):
                return
            body = json.dumps(self.make_body(i))
            t0 = time.monotonic()
            try:
                st, _, raw = node.request("POST", "/v1/events", body,
                                          {"Content-Type": "application/json"}, timeout=10)
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.failed += 1
                continue
            if st == 202:
                with self.lock:
                    self.acked.append((json.loads(raw)["id"], node.node_id, t0))

    def count(self):
        with self.lock:
            return len(self.acked)

    def finish(self):
        """Stops the threads; returns every acknowledgement."""
        self.stop.set()
        for t in self.threads:
            t.join(timeout=20)
        with self.lock:
            return list(self.acked)
