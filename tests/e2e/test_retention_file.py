"""Retention and the SQLite file (docs/operations.md#retention): the database's size is reported
(GET /v1/stats, /metrics) as the file's, and under repeated rounds of load with a short
--retention the file stops growing (freed pages are reused or given back). SQLite only: the
behaviour tests, run on both stores, are in test_retention.py."""

import os
import unittest

from harness import HookdTestCase, new_secret

MIB = 1 << 20


class RetentionFileTest(HookdTestCase):

    def setUp(self):
        super().setUp()
        self.secret = new_secret()
        self.healthy = self.start_mock(secret=self.secret, name="healthy")

    def store_size(self, serve):
        status, stats = serve.api("GET", "/v1/stats?window=5m")
        self.assertEqual(status, 200, stats)
        return stats["store"]["size"]

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
