"""Issue 12, item 7: three small faults.

- A duplicate answer to an ingest-scoped key (an event id stored before, or an Idempotency-Key
  used before) carries only what that key sent, never the stored event's type, time or
  deliveries; an admin key still gets the original.
- A request with two different Content-Length values is refused 400 naming the header, and
  nothing is stored; identical repeats are one value.
- A receiver that closes inside its response headers (status line, no empty line) has not
  acknowledged anything: the attempt fails as invalid_response and is retried."""

import json
import os
import re
import socket
import threading
import time
import unittest

from harness import HookdTestCase

KEY_RE = r"^hk_[A-Za-z0-9_-]{43}$"


def raw_exchange(host, port, data, timeout=10.0):
    """Sends data as is on a fresh connection and reads until the server closes it or one
    whole response (headers + Content-Length body) is in. Returns (status, headers, body)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
                if m and len(rest) >= int(m.group(1)):
                    break
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


class CutHeadersReceiver:
    """A receiver on a raw socket: reads each request whole, then writes a status line and one
    header without the empty line that ends the section, and closes."""

    REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d/hook" % self.port

    def count(self):
        with self.lock:
            return len(self.requests)

    def _read_request(self, c):
        buf = b""
        while b"\r\n\r\n" not in buf and len(buf) < 1 << 20:
            chunk = c.recv(65536)
            if not chunk:
                return None
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
        want = int(m.group(1)) if m else 0
        while len(body) < want:
            chunk = c.recv(65536)
            if not chunk:
                return None
            body += chunk
        return head, body

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with c:
                c.settimeout(5)
                try:
                    req = self._read_request(c)
                    if req is None:
                        continue
                    with self.lock:
                        self.requests.append(req)
                    c.sendall(self.REPLY)
                except OSError:
                    continue

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


class SmallFaultsTest(HookdTestCase):

    serve_schedule = "0,200ms"  # two attempts, then dead

    def create_ingest_key(self, db):
        # Before serve's first start: --create makes the database (issue 15).
        r = self.run_hookd("key", "create", "--scope", "ingest", "--create", "--db", "sqlite:" + db)
        self.assertEqual(r.returncode, 0, r.stderr)
        fields = dict(re.findall(r"^(\w+):[ \t]*(.*)$", r.stdout, re.M))
        self.assertRegex(fields.get("key", ""), KEY_RE, r.stdout)
        return fields["key"]

    # -- 1. duplicate answers to an ingest-scoped key ---------------------------------------------

    def test_duplicate_answer_to_an_ingest_key_reveals_nothing_stored(self):
        db = os.path.join(self.tmp, "hookd.db")
        ingest_key = self.create_ingest_key(db)
        serve = self.start_serve(db=db, schedule="1h")  # nothing is sent while the test runs
        ep = self.create_endpoint(serve, "http://127.0.0.1:9/hook", events=["payroll.secret"])

        # The original, by the admin: a type, a time and a delivery to the endpoint.
        orig = self.ingest(serve, "payroll.secret", {"salary": 1}, id="evt_payroll_1")
        self.assertEqual([d["endpoint_id"] for d in orig["deliveries"]], [ep["id"]], orig)

        # The ingest key re-posts the id under another type: it learns that the id is taken,
        # nothing of the stored event.
        st, body = serve.api("POST", "/v1/events",
                             {"id": "evt_payroll_1", "event": "probe.x", "data": {}},
                             key=ingest_key)
        self.assertEqual(st, 202, body)
        self.assertEqual(body, {"id": "evt_payroll_1", "duplicate": True})

        # In a batch, the duplicate element is as brief; a new one is answered in full.
        st, body = serve.api("POST", "/v1/events", {"events": [
            {"id": "evt_payroll_1", "event": "probe.x", "data": {}},
            {"id": "evt_new_1", "event": "payroll.secret", "data": {"salary": 2}}]},
            key=ingest_key)
        self.assertEqual(st, 202, body)
        dup, new = body["events"]
        self.assertEqual(dup, {"id": "evt_payroll_1", "duplicate": True})
        self.assertEqual(new["id"], "evt_new_1")
        self.assertNotIn("duplicate", new)
        self.assertEqual([d["endpoint_id"] for d in new["deliveries"]], [ep["id"]], new)

        # The admin key still gets the original (what GET /v1/events/{id} would show it).
        st, body = serve.api("POST", "/v1/events",
                             {"id": "evt_payroll_1", "event": "probe.x", "data": {}})
        self.assertEqual(st, 202, body)
        self.assertEqual(body["event"], "payroll.secret")
        self.assertEqual(body["created_at"], orig["created_at"])
        self.assertEqual(body["deliveries"], orig["deliveries"])
        self.assertIs(body["duplicate"], True)

        # Nothing was stored for the probes: one event under that id, with its one delivery.
        st, ev = serve.api("GET", "/v1/events/evt_payroll_1")
        self.assertEqual(st, 200, ev)
        self.assertEqual(ev["event"], "payroll.secret")
        self.assertEqual(len(ev["deliveries"]), 1, ev)

    def test_idempotency_replay_to_an_ingest_key_reveals_nothing_stored(self):
        db = os.path.join(self.tmp, "hookd.db")
        ingest_key = self.create_ingest_key(db)
        serve = self.start_serve(db=db, schedule="1h")
        self.create_endpoint(serve, "http://127.0.0.1:9/hook", events=["payroll.secret"])

        # The admin's request with a key; the ingest key guesses the key.
        orig = self.ingest(serve, "payroll.secret", {"salary": 1},
                           headers={"Idempotency-Key": "payroll-2026-12"})
        st, body = serve.api("POST", "/v1/events", {"event": "probe.x", "data": {}},
                             headers={"Idempotency-Key": "payroll-2026-12"}, key=ingest_key)
        self.assertEqual(st, 202, body)
        # The id is all a retrying client needs, and it opens nothing to an ingest key.
        self.assertEqual(body, {"id": orig["id"], "duplicate": True})
        # The admin's own replay is the original in full.
        st, body = serve.api("POST", "/v1/events", {"event": "probe.x", "data": {}},
                             headers={"Idempotency-Key": "payroll-2026-12"})
        self.assertEqual(st, 202, body)
        self.assertEqual((body["event"], body["created_at"], body["deliveries"]),
                         (orig["event"], orig["created_at"], orig["deliveries"]))

        # The ingest key's own retry: the first answer in full, the repeat only the id.
        st, first = serve.api("POST", "/v1/events", {"event": "payroll.secret", "data": {}},
                              headers={"Idempotency-Key": "mine-1"}, key=ingest_key)
        self.assertEqual(st, 202, first)
        self.assertEqual(len(first["deliveries"]), 1, first)
        st, again = serve.api("POST", "/v1/events", {"event": "payroll.secret", "data": {}},
                              headers={"Idempotency-Key": "mine-1"}, key=ingest_key)
        self.assertEqual(st, 202, again)
        self.assertEqual(again, {"id": first["id"], "duplicate": True})

    # -- 2. conflicting Content-Length ------------------------------------------------------------

    def post_raw(self, serve, lengths, body):
        head = ("POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Authorization: Bearer %s\r\nContent-Type: application/json\r\n" % serve.api_key)
        head += "".join("Content-Length: %s\r\n" % n for n in lengths)
        return raw_exchange(serve.host, serve.port, head.encode() + b"\r\n" + body)

    def events_stored(self, serve):
        st, page = serve.api("GET", "/v1/events")
        self.assertEqual(st, 200, page)
        return [e["id"] for e in page["data"]]

    def test_conflicting_content_length_is_refused(self):
        serve = self.start_serve()
        body = json.dumps({"id": "evt_cl_1", "event": "order.paid", "data": {}}).encode()
        short = len(body) - 10
        for lengths in [(len(body), short), (short, len(body)), (len(body), len(body) + 1),
                        (0, len(body))]:
            st, rh, raw = self.post_raw(serve, lengths, body)
            self.assertEqual(st, 400, (lengths, raw))
            err = json.loads(raw)["error"]
            self.assertEqual(err["code"], "invalid_field", err)
            self.assertEqual(err["field"], "Content-Length", err)
            # Where the body ends is unknown: the connection is not used again.
            self.assertEqual(rh.get("connection", "").lower(), "close", rh)
        # Two values in one field: libmicrohttpd itself refuses it (its own 400, not JSON).
        st, _, raw = self.post_raw(serve, ["%d, %d" % (len(body), short)], body)
        self.assertEqual(st, 400, raw)
        self.assertEqual(self.events_stored(serve), [])

        # The same value twice is one value (RFC 9112 allows it): accepted.
        st, _, raw = self.post_raw(serve, [len(body), len(body)], body)
        self.assertEqual(st, 202, raw)
        self.assertEqual(self.events_stored(serve), ["evt_cl_1"])

    # -- 3. a response cut inside its header section ----------------------------------------------

    def test_response_cut_inside_headers_is_a_failure_and_retried(self):
        rx = CutHeadersReceiver()
        self.addCleanup(rx.close)
        serve = self.start_serve()
        self.create_endpoint(serve, rx.url, events=["order.paid"])
        resp = self.ingest(serve, "order.paid", {"n": 1})
        dlv = resp["deliveries"][0]["id"]

        d = self.wait_delivery(serve, dlv, "dead", timeout=20)
        self.assertEqual(d["attempt_count"], 2, d)
        self.assertEqual(rx.count(), 2, "the failed attempt was retried")
        self.assertEqual(d["last_error"], "invalid_response", d)
        for a in d["attempts"]:
            self.assertEqual(a["status"], 200, a)
            self.assertEqual(a["error"]["code"], "invalid_response", a)
            self.assertIn("inside the response headers", a["error"]["message"], a)

        st, stats = serve.api("GET", "/v1/stats")
        self.assertEqual(st, 200, stats)
        by = stats["attempts"]["by_outcome"]
        self.assertEqual((by["invalid_response"], by["2xx"]), (2, 0), by)
        st, _, text = serve.request("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertRegex(text.decode(),
                         r'hookd_attempts_total\{[^}]*outcome="invalid_response"[^}]*\} 2\b')


if __name__ == "__main__":
    unittest.main()
