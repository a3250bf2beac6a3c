"""Retention (docs/operations.md#retention): with a short --retention, old events whose deliveries
are all final go with their deliveries, attempts and idempotency keys (the API answers 404, and
the id and key can be used again); an event with a pending delivery stays; and under repeated
rounds of load the database file stops growing."""

import os
import unittest

from harness import HookdTestCase, new_secret

MIB = 1 << 20


class RetentionTest(HookdTestCase):

    def setUp(self):
        super().setUp()
        self.secret = new_secret()
        self.healthy = self.start_mock(secret=self.secret, name="healthy")
        self.failing = self.start_mock("--status", "500", secret=self.secret, name="failing")

    def store_size(self, serve):
        status, stats = serve.api("GET", "/v1/stats?window=5m")
        self.assertEqual(status, 200, stats)
        return stats["store"]["size"]

    def test_final_old_events_go_pending_ones_stay(self):
        # A retry scheduled an hour later keeps its delivery pending throughout the test.
        serve = self.start_serve("--retention", "2s", schedule="0,1h")
        ok_ep = self.create_endpoint(serve, self.healthy.url + "/ok", secret=self.secret,
                                     events=["ok.sent"])
        self.create_endpoint(serve, self.failing.url + "/bad", secret=self.secret,
                             events=["bad.sent"])
        old = self.ingest(serve, "ok.sent", {"n": 1}, headers={"Idempotency-Key": "key-old"},
                          id="evt-chosen-1")
        old_dlv = old["deliveries"][0]["id"]
        kept = self.ingest(serve, "bad.sent", {"n": 2})
        kept_dlv = kept["deliveries"][0]["id"]
        self.wait_delivery(serve, old_dlv, "succeeded")
        self.wait_for(lambda: self.get_delivery(serve, kept_dlv)["attempt_count"] == 1, 15,
                      "the failing delivery's first attempt")

        self.wait_for(lambda: serve.api("GET", "/v1/events/evt-chosen-1")[0] == 404, 20,
                      "the old, delivered event to be purged")
        self.assertEqual(serve.api("GET", "/v1/deliveries/" + old_dlv)[0], 404,
                         "its delivery (and its attempts) go with it")
        status, page = serve.api("GET", "/v1/deliveries?event_id=evt-chosen-1")
        self.assertEqual((status, page["data"]), (200, []), page)
        status, body = serve.api("POST", "/v1/events/evt-chosen-1/replay")
        self.assertEqual(status, 404, body)

        # The event with a pending (scheduled) delivery stays, older than the window or not.
        status, ev = serve.api("GET", "/v1/events/" + kept["id"])
        self.assertEqual(status, 200, ev)
        d = self.get_delivery(serve, kept_dlv)
        self.assertEqual(d["status"], "pending", d)
        self.assertEqual(len(d["attempts"]), 1, d)

        # The key and the id can be used again: a new event, not a duplicate.
        again = self.ingest(serve, "ok.sent", {"n": 3}, headers={"Idempotency-Key": "key-old"})
        self.assertNotIn("duplicate", again)
        self.assertNotEqual(again["id"], "evt-chosen-1")
        self.assertEqual([x["endpoint_id"] for x in again["deliveries"]], [ok_ep["id"]])
        reused = self.ingest(serve, "ok.sent", {"n": 4}, id="evt-chosen-1")
        self.assertNotIn("duplicate", reused)
        self.assertEqual(reused["id"], "evt-chosen-1")
        status, ev = serve.api("GET", "/v1/events/evt-chosen-1")
        self.assertEqual((status, ev["data"]), (200, {"n": 4}), ev)

    def test_size_is_reported(self):
        serve = self.start_serve("--retention", "off")
        size = self.store_size(serve)
        db = os.path.join(self.tmp, "hookd.db")
        self.assertEqual(size["file_bytes"], os.path.getsize(db), size)
        self.assertGreaterEqual(size["wal_bytes"], 0)
        self.assertGreaterEqual(size["free_bytes"], 0)
        status, _, raw = serve.request("GET", "/metrics")
        self.assertEqual(status, 200)
        text = raw.decode()
        self.assertIn('hookd_store_size_bytes{file="database"}', text)
        self.assertIn("hookd_store_free_bytes", text)

    def round_of_load(self, serve, n_events, payload):
        """Sends n_events in batches, waits until every one is delivered, then until retention
        has deleted them all; returns the store's size then."""
        for start in range(0, n_events, 250):
            batch = [{"event": "load.sent", "data": {"i": i, "p": payload}}
                     for i in range(start, min(n_events, start + 250))]
            status, resp = serve.api("POST", "/v1/events", {"events": batch})
            self.assertEqual(status, 202, resp)

        def settled():
            status, stats = serve.api("GET", "/v1/stats?window=5m")
            return stats["queue"]["pending"] == 0

        self.wait_for(settled, 120, "every delivery of the round to finish", interval=0.2)

        def purged():
            status, page = serve.api("GET", "/v1/events?limit=1")
            return status == 200 and page["data"] == []

        self.wait_for(purged, 60, "retention to delete the round's events", interval=0.2)
        return self.store_size(serve)

    def test_file_size_stays_flat_over_rounds(self):
        serve = self.start_serve("--retention", "1s", schedule="0")
        self.create_endpoint(serve, self.healthy.url + "/load", secret=self.secret,
                             events=["load.sent"])
        payload = "x" * 2000
        sizes = []
        for _ in range(4):
            size = self.round_of_load(serve, 1500, payload)
            sizes.append(size)
            self.assertLessEqual(size["wal_bytes"], 8 * MIB,
                                 "the write-ahead log stays bounded: %r" % size)
        first = sizes[0]["file_bytes"]
        self.assertGreater(first, MIB, "a round writes some megabytes: %r" % sizes)
        for i, s in enumerate(sizes[1:], start=2):
            self.assertLessEqual(s["file_bytes"], first + MIB,
                                 "after round %d the file grew: %r" % (i, sizes))


if __name__ == "__main__":
    unittest.main()
