"""Retry then success: failed attempts are retried on the schedule (±10 % jitter), each attempt
re-signed with its own timestamp under the same webhook-id."""

import json
import unittest

from harness import HookdTestCase, new_secret, parse_time


class RetryTest(HookdTestCase):

    def test_fail_twice_then_succeed_on_third_attempt(self):
        secret = new_secret()
        mock = self.start_mock("--fail-first", "2", secret=secret)
        serve = self.start_serve(schedule="0,1s,1s,1s")
        url = mock.url + "/retry"
        ep = self.create_endpoint(serve, url, secret=secret)
        resp = self.ingest(serve, "media.moderated", {"status": "flagged"})
        dlv = resp["deliveries"][0]["id"]

        # While it is being retried it is pending, with the failure recorded and a next time.
        def after_first_failure():
            d = self.get_delivery(serve, dlv)
            return d if d["attempt_count"] >= 1 else None
        d = self.wait_for(after_first_failure, 10, "the first attempt to be recorded")
        if d["status"] == "pending" and d["attempt_count"] == 1:
            self.assertEqual(d["last_status"], 500, d)
            self.assertEqual(d["last_error"], "http_status", d)
            nxt = parse_time(d["next_attempt_at"])
            first_at = parse_time(d["attempts"][0]["at"])
            self.assertGreaterEqual(nxt - first_at, 0.9 - 0.01, d)
            # next_attempt_at counts from when the attempt ended, not from when it started.
            took = d["attempts"][0]["duration_ms"] / 1000
            self.assertLessEqual(nxt - first_at, took + 1.1 + 0.2, d)

        d = self.wait_delivery(serve, dlv, "succeeded", timeout=20)
        self.assertEqual(d["attempt_count"], 3, d)
        self.assertEqual(d["last_status"], 200, d)
        self.assertIsNone(d["last_error"], d)
        self.assertIsNone(d["next_attempt_at"], d)
        attempts = d["attempts"]
        self.assertEqual([a["attempt"] for a in attempts], [1, 2, 3])
        self.assertEqual([a["status"] for a in attempts], [500, 500, 200])
        self.assertEqual([(a["error"] or {}).get("code") for a in attempts],
                         ["http_status", "http_status", None])
        for a in attempts:
            self.assertEqual(a["url"], url)
        times = [parse_time(a["at"]) for a in attempts]
        for prev, cur in zip(times, times[1:]):
            gap = cur - prev
            # 1 s ±10 % jitter, measured from the start of the previous attempt (which itself
            # takes a few ms). Never early; late by at most a second on a loaded test machine.
            self.assertGreaterEqual(gap, 0.9 - 0.02, "attempts too close: %r" % times)
            self.assertLessEqual(gap, 1.1 + 1.0, "attempts too far apart: %r" % times)

        # The receiver saw three requests: same webhook-id, each with its own timestamp and a
        # signature over that timestamp.
        recs = mock.records_for(resp["id"])
        self.assertEqual(len(recs), 3, recs)
        self.assertEqual([r["status"] for r in recs], [500, 500, 200])
        ts_ms = []
        for r in recs:
            self.assertIs(r["verified"], True, r)
            self.assert_verifies(r, secret)
            h = r["headers"]
            self.assertEqual(h["webhook-id"], resp["id"])
            self.assertEqual(h["x-pixelpatrol-delivery"], dlv)
            ts_ms.append(int(h["x-pixelpatrol-timestamp"]))
            self.assertLessEqual(abs(int(h["x-pixelpatrol-timestamp"]) // 1000
                                     - int(h["webhook-timestamp"])), 1, h)
            self.assertLess(abs(int(h["x-pixelpatrol-timestamp"]) - r["at"]), 2000, r)
        for prev, cur in zip(ts_ms, ts_ms[1:]):
            self.assertGreaterEqual(cur - prev, 880, "each attempt is signed at its own time: %r"
                                    % ts_ms)
        # Same bytes every time: the body does not change between attempts.
        self.assertEqual(len({r["body"] for r in recs}), 1)
        self.assertEqual(json.loads(recs[0]["body"])["id"], resp["id"])
        # Standard Webhooks signatures differ whenever the timestamp does.
        std = [(r["headers"]["webhook-timestamp"], r["headers"]["webhook-signature"]) for r in recs]
        self.assertEqual(len({s for _, s in std}), len({t for t, _ in std}), std)

        status, ev = serve.api("GET", "/v1/events/" + resp["id"])
        self.assertEqual(status, 200)
        self.assertEqual(ev["deliveries"][0]["status"], "succeeded")
        self.assertEqual(ev["deliveries"][0]["endpoint_id"], ep["id"])

    def test_connection_refused_is_retried_and_classified(self):
        # Nothing listens on the endpoint's port: every attempt fails with connection_refused.
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # bound then closed: nothing listens there
        serve = self.start_serve(schedule="0,200ms,200ms")
        self.create_endpoint(serve, "http://127.0.0.1:%d/nobody" % port)
        resp = self.ingest(serve)
        d = self.wait_delivery(serve, resp["deliveries"][0]["id"], "dead", timeout=15)
        self.assertEqual(d["attempt_count"], 3, d)
        self.assertIsNone(d["last_status"], d)
        self.assertEqual(d["last_error"], "connection_refused", d)
        for a in d["attempts"]:
            self.assertIsNone(a["status"], a)
            self.assertEqual(a["error"]["code"], "connection_refused", a)
            self.assertIsNone(a["response_body"], a)

    def test_timeout_is_a_failure(self):
        mock = self.start_mock("--latency", "3000")
        serve = self.start_serve("--timeout", "500ms", schedule="0")
        self.create_endpoint(serve, mock.url + "/slow")
        resp = self.ingest(serve)
        d = self.wait_delivery(serve, resp["deliveries"][0]["id"], "dead", timeout=15)
        self.assertEqual(d["attempt_count"], 1, d)
        self.assertEqual(d["last_error"], "timeout", d)
        a = d["attempts"][0]
        self.assertIsNone(a["status"], a)
        self.assertEqual(a["error"]["code"], "timeout", a)
        self.assertGreaterEqual(a["duration_ms"], 400, a)
        self.assertLess(a["duration_ms"], 2900, a)


if __name__ == "__main__":
    unittest.main()
