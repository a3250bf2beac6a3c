"""Fan-out bounds (issue 12, item 6): one POST /v1/events may create at most
--max-deliveries-per-request deliveries (events x matching endpoints), refused with 422
too_many_deliveries before anything is written, for any key; a 202 with more than
--max-listed-deliveries deliveries gives a count per event instead of every id; a large fan-out is
written in parts, so another client's ingest is acknowledged while it is still being written."""

import re
import threading
import unittest
from concurrent.futures import ThreadPoolExecutor

from harness import HookdTestCase


class FanoutTest(HookdTestCase):

    def make_endpoints(self, serve, n, url, events, enabled=True):
        """Creates n endpoints (four requests at a time); returns their ids."""
        def one(i):
            st, ep = serve.api("POST", "/v1/endpoints",
                               {"url": "%s/ep%d" % (url, i), "events": events,
                                "enabled": enabled})
            self.assertEqual(st, 201, ep)
            return ep["id"]
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(one, range(n)))

    def ingest_key(self, db):
        r = self.run_hookd("key", "create", "--scope", "ingest", "--db", "sqlite:" + db)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r"^key:[ \t]*(\S+)$", r.stdout, re.M)
        self.assertIsNotNone(m, r.stdout)
        return m.group(1)

    def stats_created(self, serve):
        st, s = serve.api("GET", "/v1/stats")
        self.assertEqual(st, 200, s)
        return s["deliveries"]["created"]

    def test_limit_refuses_before_writing_for_any_key(self):
        db = self.tmp + "/hookd.db"
        serve = self.start_serve("--max-deliveries-per-request", "50", db=db)
        mock = self.start_mock()
        self.make_endpoints(serve, 10, mock.url, ["a.b"])
        key = self.ingest_key(db)
        six = {"events": [{"id": "evt_big_%d" % i, "event": "a.b", "data": {"i": i}}
                          for i in range(6)]}
        for k in (True, key):  # the admin key, then an ingest-scoped one
            err = self.assert_error(serve.api("POST", "/v1/events", six, key=k), 422,
                                    "too_many_deliveries", "events")
            self.assertIn("60", err["message"], "names the count")
            self.assertIn("50", err["message"], "names the limit")
            self.assertIn("--max-deliveries-per-request", err["message"])
        # Nothing was written: no event, no delivery, nothing counted as created.
        self.assertEqual(self.list_all(serve, "/v1/events"), [])
        self.assertEqual(self.list_all(serve, "/v1/deliveries"), [])
        st, got = serve.api("GET", "/v1/events/evt_big_0")
        self.assertEqual(st, 404, got)
        self.assertEqual(self.stats_created(serve), 0)
        # Not a duplicate afterwards: the ids were never stored, so five of them go through
        # (50 deliveries: the limit itself is allowed).
        five = {"events": six["events"][:5]}
        st, resp = serve.api("POST", "/v1/events", five, key=key)
        self.assertEqual(st, 202, resp)
        self.assertEqual([len(e["deliveries"]) for e in resp["events"]], [10] * 5)
        self.assertTrue(all("duplicate" not in e for e in resp["events"]), resp)
        self.assertEqual(len(self.list_all(serve, "/v1/deliveries")), 50)

    def test_compact_response_above_the_listed_limit(self):
        serve = self.start_serve("--max-listed-deliveries", "20")
        mock = self.start_mock()
        eps = set(self.make_endpoints(serve, 10, mock.url, ["a.b"]))
        # 20 deliveries: listed one by one, as always.
        st, small = serve.api("POST", "/v1/events", {"events": [
            {"event": "a.b", "data": {"i": i}} for i in range(2)]})
        self.assertEqual(st, 202, small)
        for e in small["events"]:
            self.assertNotIn("deliveries_count", e)
            self.assertNotIn("deliveries_truncated", e)
            self.assertEqual({d["endpoint_id"] for d in e["deliveries"]}, eps)
        st, one = serve.api("POST", "/v1/events", {"event": "a.b", "data": {}})
        self.assertEqual((st, len(one["deliveries"])), (202, 10), one)
        # 30 deliveries: a count per event, said to be one.
        batch = {"events": [{"event": "a.b", "data": {"i": i}} for i in range(3)]}
        hdr = {"Idempotency-Key": "fanout-compact-1"}
        st, big = serve.api("POST", "/v1/events", batch, headers=hdr)
        self.assertEqual(st, 202, big)
        self.assertEqual(len(big["events"]), 3)
        for e in big["events"]:
            self.assertEqual(set(e), {"id", "event", "created_at", "deliveries_count",
                                      "deliveries_truncated"}, e)
            self.assertEqual((e["deliveries_count"], e["deliveries_truncated"]), (10, True))
            st, full = serve.api("GET", "/v1/events/" + e["id"])
            self.assertEqual({d["endpoint_id"] for d in full["deliveries"]}, eps, full)
        # The same key again: the same events, still compact.
        st, again = serve.api("POST", "/v1/events", batch, headers=hdr)
        self.assertEqual(st, 202, again)
        self.assertEqual([(e["id"], e["deliveries_count"]) for e in again["events"]],
                         [(e["id"], 10) for e in big["events"]])
        self.assertEqual(len(self.list_all(serve, "/v1/deliveries")), 20 + 10 + 30)

    def test_large_fanout_is_written_in_parts_between_other_requests(self):
        n_events, n_eps = 20, 1000
        mock = self.start_mock()
        serve = self.start_serve()
        # One endpoint takes every event to the mock; the rest are paused, so their deliveries
        # are created and wait (the test stays light on a busy machine).
        live = self.make_endpoints(serve, 1, mock.url, ["bulk.made"])[0]
        self.make_endpoints(serve, n_eps - 1, mock.url, ["bulk.made"], enabled=False)
        done = {}

        def large():
            body = {"events": [{"id": "evt_bulk_%02d" % i, "event": "bulk.made",
                                "data": {"i": i}} for i in range(n_events)]}
            done["large"] = serve.api("POST", "/v1/events", body)
        t = threading.Thread(target=large)

        def visible():
            return len(self.list_all(serve, "/v1/events?type=bulk.made"))
        t.start()
        try:
            # Some of its events are committed (visible) while the request runs on: the
            # request is written in parts, not as one transaction.
            first = self.wait_for(lambda: visible() or "large" in done, 60,
                                  "the first part of the large request", interval=0.01)
            self.assertNotIn("large", done, "answered before any part of it was visible")
            self.assertLess(first, n_events,
                            "all %d events became visible at once: not written in parts" % first)
            # Another client's single ingest is committed between two parts: acknowledged
            # while some of the large request's events are still unwritten.
            st, solo = serve.api("POST", "/v1/events", {"event": "solo.made", "data": {}})
            self.assertEqual(st, 202, solo)
            self.assertEqual(solo["deliveries"], [])
            after = visible()
            self.assertLess(after, n_events, "the single ingest was acknowledged only after "
                            "the whole large request was written")
        finally:
            t.join(120)
        self.assertFalse(t.is_alive(), "the large request never ended")
        st, resp = done["large"]
        self.assertEqual(st, 202, resp)
        self.assertEqual([(e["id"], e["deliveries_count"], e["deliveries_truncated"])
                          for e in resp["events"]],
                         [("evt_bulk_%02d" % i, n_eps, True) for i in range(n_events)])
        self.assertEqual(self.stats_created(serve), n_events * n_eps)
        st, ev = serve.api("GET", "/v1/events/evt_bulk_07")
        self.assertEqual((st, len(ev["deliveries"])), (200, n_eps), ev.get("error"))
        # The enabled endpoint got every event (the dispatcher was handed each part).
        self.wait_for(lambda: len({r["headers"].get("webhook-id") for r in mock.records()}) ==
                      n_events, 30, "the live endpoint's %d deliveries" % n_events)
        got = self.list_all(serve, "/v1/deliveries?endpoint_id=%s&status=succeeded" % live)
        self.assertEqual(len(got), n_events)

    def test_kill9_between_parts_keeps_whole_events_and_a_retry_completes(self):
        n_events, n_eps = 20, 1000
        db = self.tmp + "/hookd.db"
        serve = self.start_serve(db=db)
        mock = self.start_mock()
        self.make_endpoints(serve, n_eps, mock.url, ["bulk.made"], enabled=False)
        body = {"events": [{"id": "evt_k_%02d" % i, "event": "bulk.made", "data": {"i": i}}
                           for i in range(n_events)]}
        done = {}

        def large():
            try:
                done["resp"] = serve.api("POST", "/v1/events", body)
            except OSError as e:  # the kill cuts the connection
                done["error"] = e
        t = threading.Thread(target=large)
        t.start()
        try:
            self.wait_for(lambda: self.list_all(serve, "/v1/events?type=bulk.made") or
                          "resp" in done, 60, "the first part", interval=0.01)
            serve.kill9()
        finally:
            t.join(60)
        self.assertNotIn("resp", done, "answered before the kill: nothing to check")
        serve = self.start_serve(db=db)
        # What survived is whole events: each with every one of its deliveries.
        kept = self.list_all(serve, "/v1/events?type=bulk.made")
        self.assertTrue(0 < len(kept) < n_events, "%d events survived" % len(kept))
        for e in kept:
            st, ev = serve.api("GET", "/v1/events/" + e["id"])
            self.assertEqual(len(ev["deliveries"]), n_eps, e["id"])
        # The client's retry: the kept ones are duplicates, the rest are stored now.
        st, resp = serve.api("POST", "/v1/events", body)
        self.assertEqual(st, 202, resp)
        kept_ids = {e["id"] for e in kept}
        for e in resp["events"]:
            self.assertEqual(e.get("duplicate", False), e["id"] in kept_ids, e)
            self.assertEqual(e["deliveries_count"], n_eps, e)
        self.assertEqual(len(self.list_all(serve, "/v1/deliveries?status=pending")),
                         n_events * n_eps)


if __name__ == "__main__":
    unittest.main()
