"""Retention (docs/operations.md#retention), its behaviour on either store: with a short
--retention, old events whose deliveries are all final go with their deliveries, attempts and
idempotency keys (the API answers 404, and the id and key can be used again); an event with a
pending delivery stays; a dead letter keeps its event for --dlq-retention. Also run on
PostgreSQL (e2e_retention_pg); what is about the SQLite file (its size, reclaimed pages) is in
test_retention_file.py."""

import os
import unittest

from harness import HookdTestCase, new_secret


class RetentionTest(HookdTestCase):

    def setUp(self):
        super().setUp()
        self.secret = new_secret()
        self.healthy = self.start_mock(secret=self.secret, name="healthy")
        self.failing = self.start_mock("--status", "500", secret=self.secret, name="failing")

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

    def test_dead_letter_keeps_its_event_for_the_dlq_retention(self):
        db = os.path.join(self.tmp, "dlq.db")
        serve = self.start_serve("--retention", "1s", "--dlq-retention", "1h", db=db,
                                 schedule="0")
        self.create_endpoint(serve, self.healthy.url + "/ok", secret=self.secret,
                             events=["ok.sent"])
        bad = self.create_endpoint(serve, self.failing.url + "/bad", secret=self.secret,
                                   events=["bad.sent"])
        dead = self.ingest(serve, "bad.sent", {"n": 1})
        dead_dlv = dead["deliveries"][0]["id"]
        self.wait_delivery(serve, dead_dlv, "dead")
        # An event made after the dead letter died, purged: a run walked past the older one.
        later = self.ingest(serve, "ok.sent", {"n": 2})
        self.wait_delivery(serve, later["deliveries"][0]["id"], "succeeded")
        self.wait_for(lambda: serve.api("GET", "/v1/events/" + later["id"])[0] == 404, 20,
                      "the later, delivered event to be purged")
        status, ev = serve.api("GET", "/v1/events/" + dead["id"])
        self.assertEqual(status, 200, "a dead letter younger than --dlq-retention keeps it")
        status, dlq = serve.api("GET", "/v1/dlq?endpoint_id=" + bad["id"])
        self.assertEqual([x["id"] for x in dlq["data"]], [dead_dlv], dlq)
        self.stop_clean(serve)

        # Past --dlq-retention the dead letter goes, and the event with it.
        serve = self.start_serve("--retention", "1s", "--dlq-retention", "1s", db=db,
                                 schedule="0")
        self.wait_for(lambda: serve.api("GET", "/v1/events/" + dead["id"])[0] == 404, 20,
                      "the event of an expired dead letter to be purged")
        self.assertEqual(serve.api("GET", "/v1/deliveries/" + dead_dlv)[0], 404)
        status, dlq = serve.api("GET", "/v1/dlq?endpoint_id=" + bad["id"])
        self.assertEqual((status, dlq["data"]), (200, []), dlq)


if __name__ == "__main__":
    unittest.main()
