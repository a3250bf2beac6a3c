"""Crash safety: after `kill -9` and a restart on the same database every acknowledged event is
delivered (at-least-once: receivers dedupe by webhook-id), pending retries keep their times, an
attempt in flight is sent again, and nothing half-written breaks start-up."""

import http.server
import json
import os
import sys
import threading
import time
import unittest

from harness import HookdTestCase, new_secret, parse_time


class Streamer:
    """Threads POSTing single events as fast as they can, recording every id acknowledged with
    202. A request that fails (the server died) is not counted: it was never acknowledged."""

    def __init__(self, serve, threads=4):
        self.serve = serve
        self.acked = []
        self.errors = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self, n):
        i = 0
        while not self.stop.is_set():
            i += 1
            body = json.dumps({"event": "media.created", "data": {"worker": n, "i": i}})
            try:
                st, _, raw = self.serve.request("POST", "/v1/events", body,
                                                {"Content-Type": "application/json"}, timeout=10)
            except OSError:
                with self.lock:
                    self.errors += 1
                if self.serve.p.poll() is not None:
                    return
                continue
            if st == 202:
                with self.lock:
                    self.acked.append(json.loads(raw)["id"])

    def count(self):
        with self.lock:
            return len(self.acked)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=20)
        with self.lock:
            return list(self.acked)


class CrashTest(HookdTestCase):

    def test_kill9_during_ingest_stream_loses_no_acknowledged_event(self):
        self.kill9_during_ingest_stream()

    def test_kill9_with_sync_normal_loses_no_acknowledged_event(self):
        # --sync normal skips the fsync per commit, but a commit is in the
        # kernel's page cache before its 202, so killing hookd loses nothing.
        self.kill9_during_ingest_stream("--sync", "normal")

    def kill9_during_ingest_stream(self, *extra):
        secret = new_secret()
        mock = self.start_mock("--latency", "20", secret=secret)
        db = os.path.join(self.tmp, "hookd.db")
        schedule = "0,300ms,300ms,300ms,300ms,300ms"
        serve = self.start_serve(*extra, db=db, schedule=schedule)
        self.create_endpoint(serve, mock.url + "/crash", secret=secret)

        acked = []
        # Three crashes in a row: later ones hit a database that already went through one.
        for round_no in range(3):
            st = Streamer(serve)
            self.wait_for(lambda: st.count() >= 150, 30,
                          "150 acknowledged ingests in round %d" % round_no)
            serve.kill9()
            acked += st.finish()
            serve = self.start_serve(*extra, db=db, schedule=schedule)
            status, health = serve.api("GET", "/healthz", key=False)
            self.assertEqual((status, health), (200, {"status": "ok", "store": "ok"}))

        self.assertEqual(len(acked), len(set(acked)), "ids are unique")
        want = set(acked)

        def missing():
            got = {r["headers"].get("webhook-id") for r in mock.records()}
            left = want - got
            return left
        deadline = time.monotonic() + 90
        left = missing()
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = missing()
        self.assertEqual(left, set(), "%d of %d acknowledged events never delivered" % (
            len(left), len(want)))
        recs = mock.records()
        sys.stderr.write("crash stream: %d acknowledged, %d requests received, %d distinct ids\n"
                         % (len(want), len(recs), len({r["headers"].get("webhook-id")
                                                       for r in recs})))
        # Every delivery of them reached succeeded, and the events are readable.
        for evt_id in list(want)[:50]:
            status, ev = serve.api("GET", "/v1/events/" + evt_id)
            self.assertEqual(status, 200, (evt_id, ev))
        self.wait_for(lambda: self.list_all(serve, "/v1/deliveries?status=pending") == [], 30,
                      "no pending delivery left")
        for r in mock.records():
            self.assertIs(r["verified"], True, r)
        status, dlq = serve.api("GET", "/v1/dlq")
        self.assertEqual((status, dlq["data"]), (200, []))
        # The database is sound for a fresh start with --check too.
        self.stop_clean(serve)
        res = self.run_hookd("serve", "--check", "--db", "sqlite:" + db, "--api-key", "check-key-1")
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_pending_retry_keeps_its_time_across_kill9(self):
        secret = new_secret()
        mock = self.start_mock("--fail-first", "1", secret=secret)
        db = os.path.join(self.tmp, "hookd.db")
        serve = self.start_serve(db=db, schedule="0,4s")
        self.create_endpoint(serve, mock.url + "/later", secret=secret)
        ev = self.ingest(serve)
        dlv = ev["deliveries"][0]["id"]

        def failed_once():
            d = self.get_delivery(serve, dlv)
            return d if d["attempt_count"] == 1 and d["status"] == "pending" else None
        d = self.wait_for(failed_once, 10, "the first attempt to fail and be recorded")
        next_at = parse_time(d["next_attempt_at"])
        first_at = parse_time(d["attempts"][0]["at"])
        self.assertGreaterEqual(next_at - first_at, 3.6 - 0.01, d)
        # next_attempt_at counts from when the attempt ended, not from when it started.
        took = d["attempts"][0]["duration_ms"] / 1000
        self.assertLessEqual(next_at - first_at, took + 4.4 + 0.2, d)
        serve.kill9()

        serve = self.start_serve(db=db, schedule="0,4s")
        restarted = time.time()
        d2 = self.get_delivery(serve, dlv)
        if restarted < next_at - 0.3:
            self.assertEqual(d2["status"], "pending", d2)
            self.assertEqual(d2["next_attempt_at"], d["next_attempt_at"],
                             "the retry time must survive the restart")
            self.assertEqual(len(mock.records_for(ev["id"])), 1, "not retried early at start-up")
        d3 = self.wait_delivery(serve, dlv, "succeeded", timeout=20)
        self.assertEqual([a["status"] for a in d3["attempts"]], [500, 200], d3)
        recs = mock.records_for(ev["id"])
        self.assertEqual([r["status"] for r in recs], [500, 200])
        self.assertGreaterEqual(recs[1]["at"], next_at * 1000 - 50,
                                "the retry went out before its time")
        self.assertLessEqual(recs[1]["at"], max(next_at, restarted) * 1000 + 3000,
                             "the retry went out long after its time")
        self.assertGreaterEqual(parse_time(d3["attempts"][1]["at"]), next_at - 0.05)

    def test_attempt_in_flight_at_kill9_is_sent_again(self):
        hits = []
        hold = threading.Event()
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                with lock:
                    hits.append(self.headers.get("webhook-id"))
                    first = len(hits) == 1
                if first:
                    hold.wait(60)  # never answer the first attempt: it is in flight at the kill
                    return
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        self.addCleanup(hold.set)

        db = os.path.join(self.tmp, "hookd.db")
        serve = self.start_serve("--timeout", "5s", db=db, schedule="0,1s,1s")
        self.create_endpoint(serve, "http://127.0.0.1:%d/inflight" % srv.server_address[1])
        ev = self.ingest(serve)
        self.wait_for(lambda: len(hits) >= 1, 10, "the first attempt to reach the receiver")
        serve.kill9()
        serve = self.start_serve("--timeout", "5s", db=db, schedule="0,1s,1s")
        self.wait_for(lambda: len(hits) >= 2, 20, "the in-flight attempt to be sent again")
        self.assertEqual(hits[:2], [ev["id"], ev["id"]])
        d = self.wait_delivery(serve, ev["deliveries"][0]["id"], "succeeded", timeout=10)
        self.assertEqual(d["last_status"], 200, d)
        self.assertEqual(d["attempts"][-1]["status"], 200, d)


if __name__ == "__main__":
    unittest.main()
