"""Batch webhooks (issue 4): due deliveries of an endpoint with `batch` go out together as
{"batch_id","events":[…]}, signed over the whole body with the three schemes, retried as a unit
under the same batch id; every delivery records the batch it went in."""

import json
import unittest

from harness import HookdTestCase, new_secret, sign_hex, sign_standard


class BatchTest(HookdTestCase):

    def assert_batch_request(self, rec, secret):
        """Checks one recorded batch request's headers, body shape and signatures (computed here
        over the whole body); returns (batch_id, [event ids in order], parsed body)."""
        h = rec["headers"]
        raw = rec["body"].encode()
        body = json.loads(raw)
        self.assertEqual(list(body.keys()), ["batch_id", "events"], rec["body"][:300])
        bid = body["batch_id"]
        self.assertTrue(isinstance(bid, str) and bid.startswith("bat_"), bid)
        self.assertEqual(h["webhook-id"], bid, h)
        self.assertEqual(h["x-pixelpatrol-delivery"], bid, h)
        self.assertEqual(h["x-pixelpatrol-event"], "batch", h)
        self.assertEqual(int(h["x-pixelpatrol-batch-size"]), len(body["events"]), h)
        self.assertTrue(h["content-type"].startswith("application/json"), h)
        # The three signatures over the whole body, checked with our own HMACs.
        sigs = h["webhook-signature"].split(" ")
        self.assertIn(sign_standard(secret, bid, h["webhook-timestamp"], raw), sigs,
                      "webhook-signature of a batch does not verify")
        self.assertEqual(h["x-pixelpatrol-signature"], sign_hex(secret, raw))
        self.assertEqual(h["x-webhook-signature"], "sha256=" + sign_hex(secret, raw))
        self.assertIs(rec["verified"], True, rec)
        ids = []
        for el in body["events"]:
            self.assertEqual(list(el.keys()), ["id", "event", "created_at", "data"], el)
            ids.append(el["id"])
        return bid, ids, body

    def test_120_events_arrive_in_a_handful_of_signed_batches(self):
        secret = new_secret()
        mock = self.start_mock(secret=secret)
        serve = self.start_serve()
        bep = self.create_endpoint(serve, mock.url + "/batch", secret=secret,
                                   events=["media.created"], batch={"max_events": 50})
        self.assertEqual(bep["batch"]["max_events"], 50, bep)
        self.assertEqual(bep["batch"].get("max_wait_ms", 1000), 1000, bep)
        # The same events to a plain endpoint: each batch element must be byte-identical to
        # the single-delivery body of that event.
        sep = self.create_endpoint(serve, mock.url + "/single", secret=secret,
                                   events=["media.created"])
        self.assertIsNone(sep["batch"], sep)

        events = [{"event": "media.created", "data": {"i": i, "s": "x\u00e9\"%d" % i}}
                  for i in range(120)]
        resp = self.ingest_many(serve, events)
        ids = [e["id"] for e in resp]
        self.assertEqual(len(set(ids)), 120)
        by_id = {e["id"]: e for e in resp}

        def batch_recs():
            return [r for r in mock.records() if r["path"] == "/batch"]

        def events_in_batches():
            n = 0
            for r in batch_recs():
                body = json.loads(r["body"])
                self.assertIn("batch_id", body, "not a batch body: %s" % r["body"][:200])
                n += len(body["events"])
            return n >= 120
        self.wait_for(events_in_batches, 15, "120 events in batches")
        self.wait_for(lambda: len([r for r in mock.records() if r["path"] == "/single"]) == 120,
                      15, "120 single deliveries")

        def batch_deliveries_done():
            ds = self.list_all(serve, "/v1/deliveries?endpoint_id=" + bep["id"])
            return ds if len(ds) == 120 and all(d["status"] == "succeeded" for d in ds) else None
        bdlv = self.wait_for(batch_deliveries_done, 15,
                             "the batch endpoint's 120 deliveries to succeed")

        singles = {json.loads(r["body"])["id"]: r["body"]
                   for r in mock.records() if r["path"] == "/single"}
        self.assertEqual(set(singles), set(ids))
        recs = batch_recs()
        self.assertLessEqual(len(recs), 5, "120 events in %d requests" % len(recs))
        self.assertGreaterEqual(len(recs), 3, "max_events 50 means at least 3 requests")
        seen = []
        batches = {}
        for r in recs:
            self.assertEqual(r["status"], 200, r)
            bid, bids, body = self.assert_batch_request(r, secret)
            self.assertLessEqual(len(bids), 50, "a batch over max_events")
            self.assertNotIn(bid, batches, "batch id reused by another request")
            batches[bid] = bids
            seen.extend(bids)
            # Body exactly: the singles' bytes joined.
            want = '{"batch_id":"%s","events":[%s]}' % (bid, ",".join(singles[i] for i in bids))
            self.assertEqual(r["body"], want, "batch body is not the single bodies joined")
            for el in body["events"]:
                src = by_id[el["id"]]
                self.assertEqual(el["event"], "media.created")
                self.assertEqual(el["created_at"], src["created_at"])
                self.assertEqual(el["data"], events[ids.index(el["id"])]["data"])
        self.assertEqual(sorted(seen), sorted(ids), "each event exactly once")
        self.assertEqual(len(seen), 120)

        # Each delivery records the batch it went in, and the attempt.
        per_batch = {}
        for d in bdlv:
            self.assertIn("batch_id", d, d)
            self.assertIn(d["batch_id"], batches, d)
            per_batch.setdefault(d["batch_id"], set()).add(d["event_id"])
        self.assertEqual(per_batch, {b: set(v) for b, v in batches.items()})
        for d in bdlv[:3] + bdlv[-3:]:
            full = self.get_delivery(serve, d["id"])
            self.assertEqual(full["batch_id"], d["batch_id"])
            self.assertEqual(full["attempt_count"], 1, full)
            self.assertEqual([a["status"] for a in full["attempts"]], [200], full)
        for d in self.list_all(serve, "/v1/deliveries?endpoint_id=" + sep["id"]):
            self.assertIsNone(d["batch_id"], d)

        # batch null: back to one request per event.
        status, got = serve.api("PATCH", "/v1/endpoints/" + bep["id"], {"batch": None})
        self.assertEqual(status, 200, got)
        self.assertIsNone(got["batch"], got)
        ev = self.ingest(serve, "media.created", {"after": 1})
        d = self.wait_delivery(serve, self.deliveries_to(ev, bep["id"])[0], "succeeded")
        self.assertIsNone(d["batch_id"], d)
        r = [x for x in mock.records_for(ev["id"]) if x["path"] == "/batch"]
        self.assertEqual(len(r), 1, r)
        self.assertEqual(json.loads(r[0]["body"])["id"], ev["id"])
        self.assertEqual(r[0]["headers"]["x-pixelpatrol-event"], "media.created")

    def test_batch_is_retried_as_a_unit_with_the_same_batch_id(self):
        secret = new_secret()
        mock = self.start_mock("--fail-first", "1", secret=secret)
        serve = self.start_serve(schedule="0,1s")
        ep = self.create_endpoint(serve, mock.url + "/b", secret=secret,
                                  batch={"max_events": 10, "max_wait_ms": 200})
        self.assertEqual(ep["batch"], {"max_events": 10, "max_wait_ms": 200}, ep)
        resp = self.ingest_many(serve, [{"event": "media.created", "data": {"i": i}}
                                        for i in range(5)])
        dlvs = [e["deliveries"][0]["id"] for e in resp]
        for dv in dlvs:
            self.wait_delivery(serve, dv, "succeeded", timeout=10)
        recs = mock.records()
        self.assertEqual(len(recs), 2, [(r["status"], r["headers"].get("webhook-id"),
                                         r["body"][:80]) for r in recs])
        self.assertEqual([r["status"] for r in recs], [500, 200])
        b1, ids1, _ = self.assert_batch_request(recs[0], secret)
        b2, ids2, _ = self.assert_batch_request(recs[1], secret)
        self.assertEqual(b1, b2, "a retried batch keeps its batch id")
        self.assertEqual(sorted(ids1), sorted(e["id"] for e in resp))
        self.assertEqual(sorted(ids2), sorted(ids1))
        self.assertGreaterEqual(int(recs[1]["headers"]["x-pixelpatrol-timestamp"])
                                - int(recs[0]["headers"]["x-pixelpatrol-timestamp"]), 850,
                                "the retry follows the schedule")
        for dv in dlvs:
            d = self.get_delivery(serve, dv)
            self.assertEqual(d["batch_id"], b1, d)
            self.assertEqual([a["status"] for a in d["attempts"]], [500, 200], d)
            self.assertEqual(d["attempt_count"], 2, d)

    def test_bad_batch_settings_are_refused(self):
        mock = self.start_mock()
        serve = self.start_serve()
        url = mock.url + "/x"
        bad = [
            ({"max_events": 0}, "batch.max_events"),
            ({"max_events": 1001}, "batch.max_events"),
            ({"max_events": "50"}, "batch.max_events"),
            ({"max_events": 2.5}, "batch.max_events"),
            ({"max_events": 10, "max_wait_ms": -1}, "batch.max_wait_ms"),
            ({"max_events": 10, "max_wait_ms": 60001}, "batch.max_wait_ms"),
            ({"max_events": 10, "extra": 1}, "batch.extra"),
            (50, "batch"),
            ([50], "batch"),
        ]
        for batch, field in bad:
            with self.subTest(batch=batch):
                self.assert_error(serve.api("POST", "/v1/endpoints", {"url": url,
                                                                      "batch": batch}),
                                  400, "invalid_field", field)
        self.assertEqual(self.list_all(serve, "/v1/endpoints"), [])
        for batch in ({"max_events": 1, "max_wait_ms": 0}, {"max_events": 1000,
                                                            "max_wait_ms": 60000}):
            ep = self.create_endpoint(serve, url, batch=batch)
            self.assertEqual(ep["batch"], batch, ep)


if __name__ == "__main__":
    unittest.main()
