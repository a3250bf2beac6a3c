"""Testing tools (issue 4): POST /v1/endpoints/{id}/test sends a test.webhook to that endpoint
only, whatever its events and filters; POST /v1/events/{id}/replay sends an event again as new
deliveries with the same webhook-id (to all endpoints that had it, or one); POST
/v1/endpoints/{id}/replay resends exactly the events of a since/until window."""

import json
import time
import unittest

from harness import HookdTestCase, RFC3339_MS, new_secret, parse_time


class ReplayTest(HookdTestCase):

    def setUp(self):
        super().setUp()
        self.secret = new_secret()
        self.mock = self.start_mock(secret=self.secret)
        self.serve = self.start_serve()

    def succeeded(self, ids, timeout=10):
        for dv in ids:
            self.wait_delivery(self.serve, dv, "succeeded", timeout=timeout)

    def test_test_webhook_goes_to_that_endpoint_only(self):
        serve, mock = self.serve, self.mock
        # Neither its events nor its filters would let a test.webhook through.
        target = self.create_endpoint(serve, mock.url + "/target", secret=self.secret,
                                      events=["media.moderated"],
                                      filters={"status": "rejected"})
        star = self.create_endpoint(serve, mock.url + "/star", secret=self.secret)
        subscribed = self.create_endpoint(serve, mock.url + "/subscribed", secret=self.secret,
                                          events=["test.webhook"])

        status, resp = serve.api("POST", "/v1/endpoints/%s/test" % target["id"],
                                 {"data": {"hello": "world", "n": 1}})
        self.assertEqual(status, 202, resp)
        self.assertEqual(set(resp.keys()), {"id", "event", "created_at", "deliveries"}, resp)
        self.assertTrue(resp["id"].startswith("evt_"), resp)
        self.assertEqual(resp["event"], "test.webhook")
        self.assertRegex(resp["created_at"], RFC3339_MS)
        self.assertEqual(len(resp["deliveries"]), 1, resp)
        self.assertEqual(resp["deliveries"][0]["endpoint_id"], target["id"])
        self.succeeded([resp["deliveries"][0]["id"]])

        # Without a body: a test event with some data object.
        status, resp2 = serve.api("POST", "/v1/endpoints/%s/test" % target["id"])
        self.assertEqual(status, 202, resp2)
        self.assertEqual([x["endpoint_id"] for x in resp2["deliveries"]], [target["id"]])
        self.succeeded([resp2["deliveries"][0]["id"]])

        recs = mock.records()
        self.assertEqual([r["path"] for r in recs], ["/target", "/target"], recs)
        for r, sent in zip(recs, (resp, resp2)):
            self.assertIs(r["verified"], True, r)
            self.assert_verifies(r, self.secret)
            self.assertEqual(r["headers"]["x-pixelpatrol-event"], "test.webhook")
            self.assertEqual(r["headers"]["webhook-id"], sent["id"])
            body = json.loads(r["body"])
            self.assertEqual(list(body.keys()), ["id", "event", "created_at", "data"])
            self.assertEqual((body["id"], body["event"], body["created_at"]),
                             (sent["id"], "test.webhook", sent["created_at"]))
            self.assertIsInstance(body["data"], dict)
        self.assertEqual(json.loads(recs[0]["body"])["data"], {"hello": "world", "n": 1})
        status, ev = serve.api("GET", "/v1/events/" + resp["id"])
        self.assertEqual(status, 200, ev)
        self.assertEqual([x["endpoint_id"] for x in ev["deliveries"]], [target["id"]])
        for ep in (star, subscribed):
            self.assertEqual(self.list_all(serve, "/v1/deliveries?endpoint_id=" + ep["id"]), [])

        # Unknown endpoints are 404; data must be an object.
        self.assert_error(serve.api("POST", "/v1/endpoints/ep_nope/test"), 404, "not_found",
                          check_field=False)
        self.assert_error(serve.api("POST", "/v1/endpoints/%s/test" % target["id"],
                                    {"data": [1]}), 400, "invalid_field", "data")

    def test_event_replay_resends_with_the_same_webhook_id(self):
        serve, mock = self.serve, self.mock
        a = self.create_endpoint(serve, mock.url + "/a", secret=self.secret,
                                 events=["media.created"])
        b = self.create_endpoint(serve, mock.url + "/b", secret=self.secret,
                                 events=["media.created"])
        c = self.create_endpoint(serve, mock.url + "/c", secret=self.secret, events=["other"])
        ev = self.ingest(serve, "media.created", {"v": 1})
        orig = {x["endpoint_id"]: x["id"] for x in ev["deliveries"]}
        self.assertEqual(set(orig), {a["id"], b["id"]})
        self.succeeded(orig.values())
        first_bodies = {r["path"]: r["body"] for r in mock.records_for(ev["id"])}

        # To every endpoint that had a delivery of it.
        status, rep = serve.api("POST", "/v1/events/%s/replay" % ev["id"])
        self.assertEqual(status, 202, rep)
        self.assertEqual(rep["id"], ev["id"])
        new = {x["endpoint_id"]: x["id"] for x in rep["deliveries"]}
        self.assertEqual(set(new), {a["id"], b["id"]}, rep)
        self.assertFalse(set(new.values()) & set(orig.values()), "replays are new deliveries")
        self.succeeded(new.values())
        recs = mock.records_for(ev["id"])
        self.assertEqual(sorted(r["path"] for r in recs), ["/a", "/a", "/b", "/b"])
        for r in recs:
            self.assertIs(r["verified"], True, r)
            self.assertEqual(r["body"], first_bodies[r["path"]], "a replay sends the same body")
        self.assertEqual({r["headers"]["x-pixelpatrol-delivery"] for r in recs},
                         set(orig.values()) | set(new.values()))

        # To one endpoint: only that one; it need not have had a delivery of the event.
        status, rep = serve.api("POST", "/v1/events/%s/replay" % ev["id"],
                                {"endpoint_id": a["id"]})
        self.assertEqual(status, 202, rep)
        self.assertEqual([x["endpoint_id"] for x in rep["deliveries"]], [a["id"]])
        self.succeeded([rep["deliveries"][0]["id"]])
        status, rep = serve.api("POST", "/v1/events/%s/replay" % ev["id"],
                                {"endpoint_id": c["id"]})
        self.assertEqual(status, 202, rep)
        self.assertEqual([x["endpoint_id"] for x in rep["deliveries"]], [c["id"]])
        self.succeeded([rep["deliveries"][0]["id"]])
        recs = mock.records_for(ev["id"])
        self.assertEqual(sorted(r["path"] for r in recs), ["/a", "/a", "/a", "/b", "/b", "/c"])
        self.assertEqual([r for r in recs if r["path"] == "/c"][0]["body"], first_bodies["/a"])

        # The event lists every delivery, old and new.
        status, got = serve.api("GET", "/v1/events/" + ev["id"])
        self.assertEqual(status, 200, got)
        self.assertEqual(len(got["deliveries"]), 6, got)

        self.assert_error(serve.api("POST", "/v1/events/evt_nope/replay"), 404, "not_found",
                          check_field=False)
        self.assert_error(serve.api("POST", "/v1/events/%s/replay" % ev["id"],
                                    {"endpoint_id": "ep_nope"}), 404, "not_found",
                          check_field=False)
        self.assertEqual(len(mock.records_for(ev["id"])), 6)

    def test_endpoint_replay_resends_exactly_the_window(self):
        serve, mock = self.serve, self.mock
        r = self.create_endpoint(serve, mock.url + "/r", secret=self.secret, events=["win"])
        self.create_endpoint(serve, mock.url + "/o", secret=self.secret, events=["other"])

        def ingest_later(event, after):
            """Ingests once the clock is past `after` (a created_at), so times are distinct."""
            if after is not None:
                self.wait_for(lambda: time.time() > parse_time(after["created_at"]) + 0.005, 2,
                              "the clock to move on")
            return self.ingest(serve, event, {"e": event})
        e1 = ingest_later("win", None)
        e2 = ingest_later("win", e1)
        x = ingest_later("other", e2)       # in the window, but r had no delivery of it
        e3 = ingest_later("win", x)
        e4 = ingest_later("win", e3)
        evs = [e1, e2, x, e3, e4]
        times = [parse_time(e["created_at"]) for e in evs]
        self.assertEqual(times, sorted(set(times)), "distinct, increasing created_at")
        self.succeeded([d["id"] for e in evs for d in e["deliveries"]])

        def count(e):
            return len([q for q in mock.records_for(e["id"]) if q["path"] == "/r"])

        # [since, until): e2 and e3, not e1 (before) nor e4 (== until), nor x (not r's).
        status, rep = serve.api("POST", "/v1/endpoints/%s/replay" % r["id"],
                                {"since": e2["created_at"], "until": e4["created_at"]})
        self.assertEqual((status, rep), (202, {"replayed": 2}))

        def replays_done(n):
            ds = self.list_all(serve, "/v1/deliveries?endpoint_id=" + r["id"])
            return len(ds) == n and all(d["status"] == "succeeded" for d in ds)
        self.wait_for(lambda: replays_done(6), 10, "the two replays to be delivered")
        self.assertEqual([count(e) for e in (e1, e2, e3, e4)], [1, 2, 2, 1])
        for e in (e2, e3):
            recs = [q for q in mock.records_for(e["id"]) if q["path"] == "/r"]
            self.assertEqual(recs[0]["body"], recs[1]["body"])
            self.assertIs(recs[1]["verified"], True, recs[1])
            self.assertEqual(recs[1]["headers"]["webhook-id"], e["id"])
        self.assertEqual(len([q for q in mock.records() if q["path"] == "/o"]), 1)

        # until defaults to now; an event with two deliveries to r is replayed once.
        status, rep = serve.api("POST", "/v1/endpoints/%s/replay" % r["id"],
                                {"since": e3["created_at"]})
        self.assertEqual((status, rep), (202, {"replayed": 2}))
        self.wait_for(lambda: replays_done(8), 10, "the replays since e3 to be delivered")
        self.assertEqual([count(e) for e in (e1, e2, e3, e4)], [1, 2, 3, 2])

        # An empty window replays nothing.
        status, rep = serve.api("POST", "/v1/endpoints/%s/replay" % r["id"], {
            "since": "2001-01-01T00:00:00.000Z", "until": "2001-01-02T00:00:00.000Z"})
        self.assertEqual((status, rep), (202, {"replayed": 0}))

        bad = [({}, "since"), ({"since": "yesterday"}, "since"), ({"since": 5}, "since"),
               ({"since": e2["created_at"], "until": "tomorrow"}, "until")]
        for body, field in bad:
            with self.subTest(body=body):
                self.assert_error(serve.api("POST", "/v1/endpoints/%s/replay" % r["id"], body),
                                  400, "invalid_field", field)
        for since, until in ((e3["created_at"], e2["created_at"]),
                             (e2["created_at"], e2["created_at"])):
            with self.subTest(since=since, until=until):
                self.assert_error(serve.api("POST", "/v1/endpoints/%s/replay" % r["id"],
                                            {"since": since, "until": until}),
                                  400, "invalid_field", check_field=False)
        self.assert_error(serve.api("POST", "/v1/endpoints/ep_nope/replay",
                                    {"since": e1["created_at"]}), 404, "not_found",
                          check_field=False)
        self.assertTrue(replays_done(8))


if __name__ == "__main__":
    unittest.main()
