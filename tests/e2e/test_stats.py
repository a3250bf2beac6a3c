"""GET /v1/stats: deliveries to a `hookd mock` that answers 200, one that answers 500 and a closed
port, then the window's figures must equal what was sent: counts, rates, attempts by outcome,
latency counts, the series, each window, the endpoint_id filter; bad parameters get 400 naming
them, an unknown endpoint 404, an ingest-scoped key 403, and --metrics off 404."""

import re
import time
import unittest

from harness import HookdTestCase, free_port

N_EVENTS = 4
OUTCOME_KEYS = {"2xx", "3xx", "4xx", "5xx", "timeout", "connection_refused", "dns", "tls_error",
                "connection", "response_too_large", "blocked_destination", "internal",
                "invalid_response"}
WINDOWS = {"5m": (300, 60, 5), "1h": (3600, 60, 60), "24h": (86400, 900, 96)}


class StatsTest(HookdTestCase):

    serve_schedule = "0,100ms"  # two attempts, then dead

    def stats(self, serve, query=""):
        st, body = serve.api("GET", "/v1/stats" + query)
        self.assertEqual(st, 200, body)
        return body

    def setup_three(self, serve):
        ok = self.start_mock("--quiet", record=False)
        failing = self.start_mock("--quiet", "--status", "500", record=False)
        ep_ok = self.create_endpoint(serve, ok.url + "/hook", events=["order.paid"])
        ep_500 = self.create_endpoint(serve, failing.url + "/hook", events=["order.paid"])
        ep_closed = self.create_endpoint(serve, "http://127.0.0.1:%d/hook" % free_port(),
                                         events=["order.paid"])
        return ep_ok, ep_500, ep_closed

    def send_and_settle(self, serve, n_deliveries):
        t0 = time.monotonic()
        for i in range(N_EVENTS):
            self.ingest(serve, "order.paid", {"i": i})

        def settled():
            d = self.stats(serve)["deliveries"]
            return d if d["succeeded"] + d["dead"] == n_deliveries else None
        self.wait_for(settled, 20, "every delivery to succeed or die")
        return time.monotonic() - t0

    def test_figures_equal_what_was_sent(self):
        serve = self.start_serve()
        ep_ok, ep_500, ep_closed = self.setup_three(serve)
        elapsed = self.send_and_settle(serve, 3 * N_EVENTS)

        for window, (seconds, step, points) in WINDOWS.items():
            s = self.stats(serve, "?window=" + window)
            self.assertEqual((s["window"], s["window_seconds"]), (window, seconds))
            self.assertIsNone(s["endpoint_id"])
            self.assertEqual(s["events"], {"ingested": N_EVENTS}, window)
            d = s["deliveries"]
            self.assertEqual((d["created"], d["succeeded"], d["dead"]),
                             (3 * N_EVENTS, N_EVENTS, 2 * N_EVENTS), window)
            self.assertAlmostEqual(d["success_rate"], 1 / 3, places=6)
            self.assertAlmostEqual(d["error_rate"], 2 / 3, places=6)
            a = s["attempts"]
            total = N_EVENTS + 2 * 2 * N_EVENTS  # the failing ones try twice
            self.assertEqual((a["total"], a["succeeded"], a["failed"]),
                             (total, N_EVENTS, total - N_EVENTS), window)
            self.assertAlmostEqual(a["success_rate"], N_EVENTS / total, places=6)
            self.assertAlmostEqual(a["error_rate"], 1 - N_EVENTS / total, places=6)
            self.assertEqual(set(a["by_outcome"]), OUTCOME_KEYS)
            want = dict.fromkeys(OUTCOME_KEYS, 0)
            want.update({"2xx": N_EVENTS, "5xx": 2 * N_EVENTS,
                         "connection_refused": 2 * N_EVENTS})
            self.assertEqual(a["by_outcome"], want, window)
            lat = s["latency"]
            self.assertEqual(lat["attempt_ms"]["count"], total)
            self.assertEqual(lat["ingest_to_delivered_ms"]["count"], N_EVENTS)
            for name in ("attempt_ms", "ingest_to_delivered_ms"):
                x = lat[name]
                self.assertLessEqual(0, x["p50"])
                self.assertLessEqual(x["p50"], x["p95"])
                self.assertLessEqual(x["p95"], x["p99"])
                self.assertLessEqual(x["p99"], elapsed * 1000 * 1.2 + 1, name)
                self.assertLessEqual(x["avg"], elapsed * 1000 + 1, name)
            self.assertEqual(s["queue"]["in_flight"], 0)
            # The series covers the window, oldest first, and adds up to the totals.
            series = s["series"]
            self.assertEqual(series["step_seconds"], step)
            pts = series["points"]
            self.assertEqual(len(pts), points)
            ts = [self.parse(p["t"]) for p in pts]
            self.assertEqual([b - a for a, b in zip(ts, ts[1:])], [step] * (points - 1))
            self.assertEqual(self.parse(s["from"]), ts[0])
            self.assertLessEqual(ts[-1], self.parse(s["to"]))
            self.assertEqual(sum(p["attempts"] for p in pts), total)
            self.assertEqual(sum(p["succeeded"] for p in pts), N_EVENTS)
            self.assertEqual(sum(p["failed"] for p in pts), total - N_EVENTS)
            self.assertEqual(sum(p["events"] for p in pts), N_EVENTS)
            self.assertEqual(sum(p["deliveries"] for p in pts), 3 * N_EVENTS)
            busy = [p for p in pts if p["attempts"]]
            self.assertTrue(all(p["attempt_p50_ms"] is not None for p in busy), busy)
            self.assertTrue(all(p["attempt_p95_ms"] is None for p in pts if not p["attempts"]))
            # Every endpoint, with its state and window figures.
            eps = {e["id"]: e for e in s["endpoints"]}
            self.assertEqual(set(eps), {ep_ok["id"], ep_500["id"], ep_closed["id"]})
            self.assertEqual((eps[ep_ok["id"]]["attempts"], eps[ep_ok["id"]]["success_rate"]),
                             (N_EVENTS, 1.0))
            self.assertEqual(eps[ep_500["id"]]["attempts"], 2 * N_EVENTS)
            self.assertEqual(eps[ep_500["id"]]["success_rate"], 0.0)
            for e in eps.values():
                self.assertEqual((e["enabled"], e["circuit"], e["paused_until"], e["in_flight"]),
                                 (True, "closed", None, 0), e)
                self.assertIsNotNone(e["attempt_p95_ms"], e)

    def test_endpoint_filter(self):
        serve = self.start_serve()
        ep_ok, ep_500, _ = self.setup_three(serve)
        self.send_and_settle(serve, 3 * N_EVENTS)
        s = self.stats(serve, "?endpoint_id=%s&window=5m" % ep_500["id"])
        self.assertEqual(s["endpoint_id"], ep_500["id"])
        self.assertEqual(s["events"], {"ingested": None})
        self.assertEqual((s["deliveries"]["created"], s["deliveries"]["succeeded"],
                          s["deliveries"]["dead"]), (N_EVENTS, 0, N_EVENTS))
        self.assertEqual(s["deliveries"]["error_rate"], 1.0)
        self.assertEqual(s["attempts"]["total"], 2 * N_EVENTS)
        self.assertEqual(s["attempts"]["by_outcome"]["5xx"], 2 * N_EVENTS)
        self.assertEqual(s["attempts"]["by_outcome"]["connection_refused"], 0)
        self.assertEqual(s["latency"]["ingest_to_delivered_ms"],
                         {"count": 0, "avg": None, "p50": None, "p95": None, "p99": None})
        self.assertEqual([e["id"] for e in s["endpoints"]], [ep_500["id"]])
        self.assertEqual(sum(p["attempts"] for p in s["series"]["points"]), 2 * N_EVENTS)
        self.assertTrue(all(p["events"] is None for p in s["series"]["points"]))
        ok = self.stats(serve, "?endpoint_id=" + ep_ok["id"])
        self.assertEqual(ok["attempts"]["success_rate"], 1.0)
        self.assertEqual(ok["latency"]["ingest_to_delivered_ms"]["count"], N_EVENTS)

    def test_empty_server_has_nulls_not_nans(self):
        serve = self.start_serve()
        s = self.stats(serve)
        self.assertEqual(s["window"], "1h")
        self.assertEqual(s["attempts"]["total"], 0)
        for k in ("success_rate", "error_rate"):
            self.assertIsNone(s["attempts"][k])
            self.assertIsNone(s["deliveries"][k])
        self.assertIsNone(s["latency"]["attempt_ms"]["p99"])
        self.assertEqual(s["endpoints"], [])
        self.assertLessEqual(self.parse(s["started_at"]), self.parse(s["to"]))

    def test_a_batch_counts_each_delivery(self):
        serve = self.start_serve()
        mock = self.start_mock("--quiet")
        ep = self.create_endpoint(serve, mock.url + "/hook", events=["b.c"],
                                  batch={"max_events": 3, "max_wait_ms": 5000})
        self.ingest_many(serve, [{"event": "b.c", "data": {"i": i}} for i in range(3)])

        def delivered():
            s = self.stats(serve, "?endpoint_id=" + ep["id"])
            return s if s["deliveries"]["succeeded"] == 3 else None
        s = self.wait_for(delivered, 15, "the batch to be delivered")
        self.assertEqual(len(mock.records()), 1, "one request for the three")
        self.assertEqual(s["attempts"]["total"], 3, "an attempt per delivery, as stored")
        self.assertEqual(s["latency"]["ingest_to_delivered_ms"]["count"], 3)

    def test_duplicates_and_replayed_keys_count_once(self):
        serve = self.start_serve()
        self.ingest(serve, "x.y", id="evt_same")
        self.ingest(serve, "x.y", id="evt_same")
        key = {"Idempotency-Key": "k-1"}
        self.ingest(serve, "x.y", headers=key)
        self.ingest(serve, "x.y", headers=key)
        self.ingest_many(serve, [{"event": "x.y", "data": {}}, {"event": "x.z", "data": {}}])
        s = self.stats(serve, "?window=5m")
        self.assertEqual(s["events"]["ingested"], 4)
        self.assertEqual(s["deliveries"]["created"], 0, "nobody subscribed")
        self.assertEqual(sum(p["events"] for p in s["series"]["points"]), 4)

    def test_bad_parameters_and_scopes(self):
        serve = self.start_serve()
        for q, field in (("?window=2h", "window"), ("?window=", "window"),
                         ("?since=1", "since"), ("?window=1h&limit=5", "limit")):
            self.assert_error(serve.api("GET", "/v1/stats" + q), 400, "invalid_field", field)
        self.assert_error(serve.api("GET", "/v1/stats?endpoint_id=ep_nope"), 404, "not_found",
                          "endpoint_id")
        self.assert_error(serve.api("GET", "/v1/stats", key=False), 401, "unauthorized")
        r = self.run_hookd("key", "create", "--scope", "ingest", "--db",
                           "sqlite:" + self.tmp + "/hookd.db")
        self.assertEqual(r.returncode, 0, r.stderr)
        key = re.search(r"^key:\s*(\S+)$", r.stdout, re.M).group(1)
        self.assert_error(serve.api("GET", "/v1/stats", key=key), 403, "insufficient_scope")
        self.assert_error(serve.api("POST", "/v1/stats", {}), 405, "method_not_allowed")

    def test_metrics_off(self):
        serve = self.start_serve("--metrics", "off")
        self.assert_error(serve.api("GET", "/v1/stats"), 404, "metrics_disabled")
        st, h, raw = serve.request("GET", "/metrics")
        self.assertEqual(st, 404, raw)
        self.assertIn(b'"metrics_disabled"', raw)
        bad = self.run_hookd("serve", "--metrics", "maybe", "--check")
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("--metrics", bad.stderr)
        # Nothing to serve on a metrics listener: start-up says so.
        r = self.run_hookd("serve", "--listen", "127.0.0.1:0", "--db",
                           "sqlite:" + self.tmp + "/other.db", "--api-key", "test-key",
                           "--metrics", "off", "--metrics-listen", "127.0.0.1:0")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--metrics-listen needs --metrics on", r.stderr)

    def test_queue_figures_and_restart(self):
        """Deliveries scheduled for a retry an hour away, deliveries waiting on a disabled
        endpoint, then a restart on the same database: the queue figures are the same after it
        (seeded from the store), and they follow the endpoint when it is enabled."""
        db = self.tmp + "/queue.db"
        serve = self.start_serve(db=db, schedule="0,1h")
        ok = self.start_mock("--quiet", record=False)
        failing = self.start_mock("--quiet", "--status", "500", record=False)
        ep_fail = self.create_endpoint(serve, failing.url + "/hook", events=["q.fail"])
        ep_off = self.create_endpoint(serve, ok.url + "/hook", events=["q.off"], enabled=False)
        for i in range(2):
            self.ingest(serve, "q.fail", {"i": i})
        for i in range(3):
            self.ingest(serve, "q.off", {"i": i})
        want = {"pending": 5, "due": 0, "scheduled": 2, "waiting": 3, "in_flight": 0, "dead": 0,
                "oldest_pending_age_seconds": 0}

        def queue_is(s, w):
            q = self.stats(s)["queue"]
            return q if q == w else None
        self.wait_for(lambda: queue_is(serve, want), 15, "the queue figures %r" % want)
        one = self.stats(serve, "?endpoint_id=" + ep_off["id"])
        self.assertEqual(one["queue"]["waiting"], 3, one["queue"])
        self.assertEqual(one["queue"]["pending"], 3, one["queue"])
        [row] = one["endpoints"]
        self.assertEqual((row["pending"], row["dead"]), (3, 0), row)

        self.assertEqual(serve.stop(), 0)
        serve = self.start_serve(db=db, schedule="0,1h")
        # Right at once after the restart, not only after some traffic.
        self.assertEqual(self.stats(serve)["queue"], want)

        st, body = serve.api("PATCH", "/v1/endpoints/" + ep_off["id"], {"enabled": True})
        self.assertEqual(st, 200, body)
        want = dict(want, pending=2, waiting=0)
        self.wait_for(lambda: queue_is(serve, want), 15, "the enabled endpoint to drain")
        one = self.stats(serve, "?endpoint_id=" + ep_fail["id"])
        self.assertEqual(one["queue"]["scheduled"], 2, one["queue"])

    @staticmethod
    def parse(t):
        from harness import parse_time
        return parse_time(t)


if __name__ == "__main__":
    unittest.main()
