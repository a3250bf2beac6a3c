"""Receiver signals (issue 4): 429/503 with Retry-After (seconds or HTTP date) pause the whole
endpoint until then without spending the attempt, bounded by --max-retry-after; 410 Gone disables
the endpoint and emits endpoint.disabled; a 3xx is a failure and is never followed."""

import json
import time
import unittest
from email.utils import formatdate

from harness import HookdTestCase, RFC3339_MS, new_secret, parse_time

DISABLED_KEYS = {"endpoint_id", "url", "reason", "disabled_at"}


class SignalsTest(HookdTestCase):

    def test_429_retry_after_seconds_pauses_the_endpoint_without_spending_the_attempt(self):
        def respond(req):
            if req["path"] == "/ra" and recv.snapshot("/ra")[0] is req:
                return (429, {"Retry-After": "2"}, b'{"error":"slow down"}')
            return 200
        recv = self.start_receiver(respond)
        # One attempt in the schedule: had the 429 spent it, the delivery would be dead.
        serve = self.start_serve(schedule="0")
        ra = self.create_endpoint(serve, recv.url + "/ra", events=["a"])
        other = self.create_endpoint(serve, recv.url + "/other", events=["b"])

        e1 = self.ingest(serve, "a", {"n": 1})
        d1 = self.deliveries_to(e1, ra["id"])[0]
        self.wait_for(lambda: recv.snapshot("/ra"), 5, "the first request")
        first = recv.snapshot("/ra")[0]
        ep = self.wait_endpoint(serve, ra["id"], lambda e: e.get("paused_until"), 1.5,
                                "paused_until to be set during the pause")
        until = parse_time(ep["paused_until"])
        self.assertGreaterEqual(until - first["at"], 1.9, ep)
        self.assertLessEqual(until - first["at"], 3.0, ep)
        self.assertEqual(ep["enabled"], True, ep)
        self.assertIsNone(ep["disabled_reason"], ep)

        # During the pause a new event for the paused endpoint waits; another endpoint (same
        # receiver host) is not paused.
        e2 = self.ingest(serve, "a", {"n": 2})
        d2 = self.deliveries_to(e2, ra["id"])[0]
        e3 = self.ingest(serve, "b", {"n": 3})
        self.wait_for(lambda: recv.snapshot("/other"), 1.5, "the other endpoint's delivery")
        self.assertLess(recv.snapshot("/other")[0]["mono"], first["mono"] + 1.9,
                        "the other endpoint was paused too")
        self.wait_delivery(serve, self.deliveries_to(e3, other["id"])[0], "succeeded")

        d = self.wait_delivery(serve, d1, "succeeded", timeout=8)
        self.wait_delivery(serve, d2, "succeeded", timeout=5)
        reqs = recv.snapshot("/ra")
        self.assertEqual(len(reqs), 3, [(r["headers"].get("webhook-id"), r["mono"]) for r in reqs])
        for r in reqs[1:]:
            gap = r["mono"] - first["mono"]
            self.assertGreaterEqual(gap, 1.95, "a request %.2f s into a 2 s Retry-After" % gap)
            self.assertLessEqual(gap, 4.0, "the pause ended %.2f s after a 2 s Retry-After" % gap)
        self.assertEqual(sorted(r["headers"]["webhook-id"] for r in reqs[1:]),
                         sorted([e1["id"], e2["id"]]))
        # The 429 is in the attempt log; the delivery still succeeded on a one-attempt schedule.
        self.assertEqual([a["status"] for a in d["attempts"]], [429, 200], d)
        self.assertEqual(d["attempts"][0]["headers"].get("retry-after"), "2", d["attempts"][0])
        self.assertEqual(d["last_status"], 200, d)
        d2v = self.get_delivery(serve, d2)
        self.assertEqual([a["status"] for a in d2v["attempts"]], [200], d2v)
        ep = self.get_endpoint(serve, ra["id"])
        self.assertTrue(ep["paused_until"] is None or parse_time(ep["paused_until"])
                        <= time.time() + 0.05, ep)

    def test_503_http_date_and_max_retry_after_and_plain_429(self):
        state = {}

        def respond(req):
            path = req["path"]
            first = recv.snapshot(path)[0] is req
            if path == "/date" and first:
                state["date"] = int(time.time()) + 3
                return (503, {"Retry-After": formatdate(state["date"], usegmt=True)}, b"")
            if path == "/long" and first:
                return (429, {"Retry-After": "3600"}, b"")
            if path == "/plain429":
                return 429
            if path == "/plain503":
                return 503
            return 200
        recv = self.start_receiver(respond)
        serve = self.start_serve("--max-retry-after", "3s", schedule="0")
        eps = {}
        for p in ("date", "long", "plain429", "plain503"):
            eps[p] = self.create_endpoint(serve, recv.url + "/" + p, events=[p])
        dl = {p: self.deliveries_to(self.ingest(serve, p), eps[p]["id"])[0] for p in eps}

        # Without Retry-After, 429 and 503 are ordinary failures: dead after the one attempt.
        for p, code in (("plain429", 429), ("plain503", 503)):
            d = self.wait_delivery(serve, dl[p], "dead", timeout=5)
            self.assertEqual([a["status"] for a in d["attempts"]], [code], d)
            self.assertEqual(d["last_error"], "http_status", d)
            self.assertIsNone(self.get_endpoint(serve, eps[p]["id"])["paused_until"])

        # HTTP-date: no request before that second.
        d = self.wait_delivery(serve, dl["date"], "succeeded", timeout=8)
        self.assertEqual([a["status"] for a in d["attempts"]], [503, 200], d)
        reqs = recv.snapshot("/date")
        self.assertEqual(len(reqs), 2, reqs)
        self.assertGreaterEqual(reqs[1]["at"], state["date"] - 0.05,
                                "sent again before the Retry-After date")
        self.assertLessEqual(reqs[1]["at"], state["date"] + 2.0)

        # Retry-After: 3600 is cut to --max-retry-after 3s.
        d = self.wait_delivery(serve, dl["long"], "succeeded", timeout=8)
        self.assertEqual([a["status"] for a in d["attempts"]], [429, 200], d)
        reqs = recv.snapshot("/long")
        self.assertEqual(len(reqs), 2, reqs)
        gap = reqs[1]["mono"] - reqs[0]["mono"]
        self.assertGreaterEqual(gap, 2.9, "the bounded pause ended after %.2f s" % gap)
        self.assertLessEqual(gap, 5.0, "--max-retry-after 3s, the pause took %.2f s" % gap)

    def test_410_disables_the_endpoint_and_emits_endpoint_disabled(self):
        mode = {"gone": True}

        def respond(req):
            return 410 if mode["gone"] else 200
        recv = self.start_receiver(respond)
        secret = new_secret()
        mock = self.start_mock(secret=secret)
        serve = self.start_serve(schedule="0")
        url = recv.url + "/gone"
        gone = self.create_endpoint(serve, url, events=["media.created"])
        notify = self.create_endpoint(serve, mock.url + "/notify", secret=secret,
                                      events=["endpoint.disabled"])
        star = self.create_endpoint(serve, mock.url + "/star", secret=secret)

        e1 = self.ingest(serve, "media.created", {"n": 1})
        d1 = self.deliveries_to(e1, gone["id"])[0]
        self.assertNotIn(notify["id"], [x["endpoint_id"] for x in e1["deliveries"]])
        ep = self.wait_endpoint(serve, gone["id"], lambda e: e.get("enabled") is False, 5,
                                "the endpoint to be disabled by the 410")
        reason = ep["disabled_reason"]
        self.assertIsInstance(reason, str, ep)
        self.assertIn("410", reason, ep)
        t_disabled = time.time()

        # The 410 attempt is recorded; the delivery waits (not dead on a one-attempt schedule).
        d = self.get_delivery(serve, d1)
        self.assertEqual(d["status"], "pending", d)
        self.assertEqual([a["status"] for a in d["attempts"]], [410], d)

        # endpoint.disabled goes to the endpoint that names it, signed, with its data.
        def notes():
            return [r for r in mock.records()
                    if r["headers"].get("x-pixelpatrol-event") == "endpoint.disabled"]
        self.wait_for(notes, 10, "the endpoint.disabled notification")
        n = notes()
        self.assertEqual(len(n), 1, n)
        self.assertEqual(n[0]["path"], "/notify")
        self.assertIs(n[0]["verified"], True, n[0])
        self.assert_verifies(n[0], secret)
        body = json.loads(n[0]["body"])
        self.assertEqual(list(body.keys()), ["id", "event", "created_at", "data"])
        self.assertEqual(body["event"], "endpoint.disabled")
        self.assertEqual(set(body["data"].keys()), DISABLED_KEYS, body)
        self.assertEqual(body["data"]["endpoint_id"], gone["id"])
        self.assertEqual(body["data"]["url"], url)
        self.assertIsInstance(body["data"]["reason"], str)
        self.assertTrue(body["data"]["reason"], body)
        self.assertRegex(body["data"]["disabled_at"], RFC3339_MS)
        self.assertLess(abs(parse_time(body["data"]["disabled_at"]) - t_disabled), 5, body)
        status, ev = serve.api("GET", "/v1/events/" + body["id"])
        self.assertEqual(status, 200, ev)
        self.assertEqual([x["endpoint_id"] for x in ev["deliveries"]], [notify["id"]],
                         "\"*\" does not include endpoint.disabled")

        # While disabled, new deliveries wait without attempts.
        e2 = self.ingest(serve, "media.created", {"n": 2})
        d2 = self.deliveries_to(e2, gone["id"])[0]
        self.wait_delivery(serve, self.deliveries_to(e2, star["id"])[0], "succeeded")
        self.wait_delivery(serve, self.deliveries_to(e1, star["id"])[0], "succeeded")
        d = self.get_delivery(serve, d2)
        self.assertEqual((d["status"], d["attempt_count"]), ("pending", 0), d)
        self.assertEqual(len(recv.snapshot()), 1, "requests to a disabled endpoint")
        self.assertEqual(sorted(r["path"] for r in mock.records()),
                         ["/notify", "/star", "/star"])

        # Enabling it again clears the reason and releases both deliveries.
        mode["gone"] = False
        status, ep = serve.api("PATCH", "/v1/endpoints/" + gone["id"], {"enabled": True})
        self.assertEqual(status, 200, ep)
        self.assertIs(ep["enabled"], True)
        self.assertIsNone(ep["disabled_reason"], ep)
        d = self.wait_delivery(serve, d1, "succeeded")
        self.assertEqual([a["status"] for a in d["attempts"]], [410, 200], d)
        d = self.wait_delivery(serve, d2, "succeeded")
        self.assertEqual([a["status"] for a in d["attempts"]], [200], d)
        self.assertEqual(len(notes()), 1, "one notification per disable")

    def test_redirects_are_failures_and_never_followed(self):
        codes = {"/r301": 301, "/r303": 303, "/r307": 307, "/r308": 308}

        def respond(req):
            code = codes.get(req["path"])
            if code:
                return (code, {"Location": "/target"}, b"moved")
            return 200
        recv = self.start_receiver(respond)
        serve = self.start_serve(schedule="0")
        eps = {}
        for path in codes:
            eps[self.create_endpoint(serve, recv.url + path)["id"]] = path
        ev = self.ingest(serve, "media.created")
        self.assertEqual(len(ev["deliveries"]), 4)
        for ref in ev["deliveries"]:
            code = codes[eps[ref["endpoint_id"]]]
            d = self.wait_delivery(serve, ref["id"], "dead", timeout=5)
            self.assertEqual(d["attempt_count"], 1, d)
            self.assertEqual(d["last_status"], code, d)
            self.assertEqual(d["last_error"], "http_status", d)
            a = d["attempts"][0]
            self.assertEqual(a["status"], code, a)
            self.assertEqual(a["error"]["code"], "http_status", a)
            self.assertEqual(a["headers"].get("location"), "/target", a)
        self.assertEqual(sorted(r["path"] for r in recv.snapshot()), sorted(codes))
        self.assertEqual(recv.snapshot("/target"), [], "a redirect was followed")
        for eid in eps:
            ep = self.get_endpoint(serve, eid)
            self.assertIs(ep["enabled"], True, "a 3xx does not disable: %r" % ep)
            self.assertIsNone(ep.get("paused_until"), ep)


if __name__ == "__main__":
    unittest.main()
