"""Rate limits and isolation (issue 4): an endpoint limited to 20/s is never sent more than its
token bucket allows; an endpoint that hangs holds at most its max_in_flight connections and
delays no other endpoint; the limit fields are validated and shown on the endpoint."""

import os
import time
import unittest

from harness import HookdTestCase, new_secret

ISSUE4_DEFAULTS = {"filters": None, "headers": {}, "max_in_flight": 10, "batch": None,
                   "circuit": "closed", "next_probe_at": None, "paused_until": None,
                   "disabled_reason": None}


class IsolationTest(HookdTestCase):

    def test_rate_limited_endpoint_never_exceeds_its_bucket(self):
        recv = self.start_receiver()
        fast = self.start_mock(name="fast")
        serve = self.start_serve()
        limited = self.create_endpoint(serve, recv.url + "/limited", events=["media.created"],
                                       rate_limit=20)
        self.assertEqual(limited["rate_limit"], 20, limited)
        free = self.create_endpoint(serve, fast.url + "/free", events=["media.created"])
        self.assertIn(free["rate_limit"], (None, 0), free)

        resp = self.ingest_many(serve, [{"event": "media.created", "data": {"i": i}}
                                        for i in range(100)])
        # The unlimited endpoint is not held back by the limited one's queue: it has all of its
        # 100 while the limited one's bucket still holds some back (those take >= 3.5 s, below).
        self.wait_for(lambda: len(fast.records()) == 100, 30, "100 requests to the free endpoint")
        self.assertLess(len(recv.snapshot()), 100,
                        "the unlimited endpoint waited behind the rate-limited one")
        self.wait_for(lambda: len(recv.snapshot()) >= 100, 40,
                      "100 requests to the rate-limited endpoint")
        times = sorted(r["mono"] for r in recv.snapshot())
        self.assertEqual(len(times), 100)
        # Token bucket of 20/s with a one-second burst: requests SENT within any 1 s hold at most
        # the burst plus one second of refill (20 + 20). The receiver sees arrival times, which a
        # loaded machine can squeeze together by up to a scheduling delay; a 0.8 s window of
        # arrivals covers at most 1 s of sends while that delay stays under 200 ms, so it holds
        # at most 40 as well (a broken limiter sends all 100 at once). (0.9 s and 100 ms failed
        # once in CI-like load: 41 arrivals, with sends delayed up to 167 ms.)
        worst = 0
        for i, t in enumerate(times):
            n = sum(1 for u in times[i:] if u < t + 0.8)
            worst = max(worst, n)
        self.assertLessEqual(worst, 40, "%d requests arrived within 0.8 s" % worst)
        span = times[-1] - times[0]
        # 20 at once, then 80 at 20/s: about 4 s; never faster than the bucket allows...
        self.assertGreaterEqual(span, 3.5, "100 requests in %.2f s at 20/s" % span)
        # ...and the limit is a rate, not a stall (about 4 s; headroom for a loaded machine).
        self.assertLessEqual(span, 12.0, "100 requests took %.2f s at 20/s" % span)
        # Nothing was sent twice and nothing failed.
        ids = sorted(r["headers"]["webhook-id"] for r in recv.snapshot())
        self.assertEqual(ids, sorted(e["id"] for e in resp))
        self.wait_for(lambda: len(self.list_all(serve, "/v1/deliveries?status=succeeded"))
                      == 200, 30, "all 200 deliveries succeeded")
        d = self.get_delivery(serve, self.deliveries_to(resp[-1], limited["id"])[0])
        self.assertEqual(d["attempt_count"], 1, "waiting for a token spends no attempt: %r" % d)

    def test_hanging_endpoint_holds_max_in_flight_and_delays_no_other(self):
        def hang(req):
            req_recv = slow if req["path"] == "/slow" else slow3
            req_recv.sleep(15)
            return 200
        slow = self.start_receiver(hang)
        slow3 = self.start_receiver(hang)
        secret = new_secret()
        fast = self.start_mock(secret=secret, name="fast")
        # --timeout 20s: the hanging requests stay open for the whole test.
        serve = self.start_serve("--timeout", "20s")
        ep_slow = self.create_endpoint(serve, slow.url + "/slow", events=["media.created"])
        self.assertEqual(ep_slow["max_in_flight"], 10, ep_slow)
        ep_slow3 = self.create_endpoint(serve, slow3.url + "/slow3", events=["media.created"],
                                        max_in_flight=3)
        self.assertEqual(ep_slow3["max_in_flight"], 3, ep_slow3)
        ep_fast = self.create_endpoint(serve, fast.url + "/fast", secret=secret,
                                       events=["media.created"])

        resp = self.ingest_many(serve, [{"event": "media.created", "data": {"i": i}}
                                        for i in range(300)])
        # Not delayed by the hanging endpoints: the fast one gets all 300 while every request to
        # them is still hanging (each hangs 15 s; none has been answered yet).
        self.wait_for(lambda: len(fast.records()) >= 300, 30,
                      "300 requests to the fast endpoint while the others hang")
        self.assertFalse(any("done_mono" in r for r in slow.snapshot() + slow3.snapshot()),
                         "the fast endpoint got its 300 events only after a hanging one answered")
        recs = fast.records()
        self.assertEqual(len(recs), 300)
        self.assertEqual(sorted(r["headers"]["webhook-id"] for r in recs),
                         sorted(e["id"] for e in resp))
        self.assertTrue(all(r["verified"] is True for r in recs))

        # The hanging endpoints fill their own limits and never go beyond them (every request
        # to them hangs, so each one ever made is still open).
        self.wait_for(lambda: slow.max_in_flight >= 10 and slow3.max_in_flight >= 3, 10,
                      "the hanging endpoints to reach their max_in_flight")
        # Measuring on purpose: a little longer, to see that nothing more is opened.
        time.sleep(0.5)
        self.assertEqual(slow.max_in_flight, 10, "connections to a max_in_flight 10 endpoint")
        self.assertEqual(len(slow.snapshot()), 10, "requests to the hanging endpoint")
        self.assertEqual(slow3.max_in_flight, 3, "connections to a max_in_flight 3 endpoint")
        self.assertEqual(len(slow3.snapshot()), 3, "requests to the max_in_flight 3 endpoint")
        # The API still answers and the others are pending, unspent.
        pending = self.list_all(serve, "/v1/deliveries?status=pending&endpoint_id="
                                + ep_slow["id"])
        self.assertEqual(len(pending), 300, "the hanging endpoint's deliveries are all pending")
        # At most the ten in flight can have an attempt counted.
        self.assertGreaterEqual(sum(1 for d in pending if d["attempt_count"] == 0), 290)
        # The mock records a request before hookd commits its attempt: poll the stored status.
        self.wait_for(lambda: len(self.list_all(
            serve, "/v1/deliveries?status=succeeded&endpoint_id=" + ep_fast["id"])) == 300,
            30, "the fast endpoint's 300 deliveries to be succeeded")

    def test_hanging_endpoints_get_a_fair_share_of_the_global_cap(self):
        """--max-in-flight 12 over three hanging endpoints (max_in_flight 10 each) and a fast
        one: while the fast one waits to send, each endpoint's cap is its share of the 12
        (about 12 / 4), so the hanging ones cannot take every slot and the fast one gets all its
        events while they still hang."""
        def hang(req):
            recvs[req["path"]].sleep(15)
            return 200
        recvs = {"/h%d" % i: self.start_receiver(hang) for i in range(3)}
        fast = self.start_mock(name="fast")
        serve = self.start_serve("--timeout", "20s", "--max-in-flight", "12")
        for path, recv in recvs.items():
            self.create_endpoint(serve, recv.url + path, events=["media.created"])
        self.create_endpoint(serve, fast.url + "/fast", events=["media.created"])
        # All four compete from the first event: on PostgreSQL an endpoint claimed before the
        # others would take its max_in_flight of the 12 alone, and requests out are not cut.
        self.wait_delivering(serve, 4)
        self.ingest_many(serve, [{"event": "media.created", "data": {"i": i}}
                                 for i in range(200)])
        self.wait_for(lambda: len(fast.records()) >= 200, 15,
                      "200 requests to the fast endpoint while the others hang")
        self.assertFalse(any("done_mono" in r for rv in recvs.values() for r in rv.snapshot()),
                         "the fast endpoint got its events only after a hanging one answered")
        for path, recv in recvs.items():
            self.assertLessEqual(recv.max_in_flight, 4, "requests open to " + path)

    def test_caps_hold_across_senders(self):
        """--senders 4: the transfers run on four threads, and each endpoint's max_in_flight
        still holds, since the dispatcher counts them whichever sender runs them."""
        def hang(req):
            recvs[req["path"]].sleep(15)
            return 200
        recvs = {"/slow3": self.start_receiver(hang), "/slow5": self.start_receiver(hang)}
        secret = new_secret()
        fast = self.start_mock(secret=secret, name="fast")
        serve = self.start_serve("--senders", "4", "--timeout", "20s")
        names = set()
        for tid in os.listdir("/proc/%d/task" % serve.p.pid):
            with open("/proc/%d/task/%s/comm" % (serve.p.pid, tid)) as f:
                names.add(f.read().strip())
        self.assertTrue({"hookd-send0", "hookd-send3"} <= names, names)
        for path, cap in (("/slow3", 3), ("/slow5", 5)):
            self.create_endpoint(serve, recvs[path].url + path, events=["media.created"],
                                 max_in_flight=cap)
        self.create_endpoint(serve, fast.url + "/fast", secret=secret, events=["media.created"],
                             max_in_flight=50)
        resp = self.ingest_many(serve, [{"event": "media.created", "data": {"i": i}}
                                        for i in range(100)])
        self.wait_for(lambda: len(fast.records()) >= 100, 30, "100 requests to the fast endpoint")
        recs = fast.records()
        self.assertEqual(sorted(r["headers"]["webhook-id"] for r in recs),
                         sorted(e["id"] for e in resp), "each event once")
        self.assertTrue(all(r["verified"] is True for r in recs))
        slow3, slow5 = recvs["/slow3"], recvs["/slow5"]
        self.wait_for(lambda: slow3.max_in_flight >= 3 and slow5.max_in_flight >= 5, 10,
                      "the hanging endpoints to reach their max_in_flight")
        # Measuring on purpose: a little longer, to see that nothing more is opened.
        time.sleep(0.5)
        self.assertEqual((slow3.max_in_flight, len(slow3.snapshot())), (3, 3))
        self.assertEqual((slow5.max_in_flight, len(slow5.snapshot())), (5, 5))

    def test_limit_fields_are_validated_and_shown(self):
        mock = self.start_mock()
        serve = self.start_serve()
        url = mock.url + "/x"
        ep = self.create_endpoint(serve, url)
        for k, v in ISSUE4_DEFAULTS.items():
            self.assertIn(k, ep, ep)
            self.assertEqual(ep[k], v, "default of %s: %r" % (k, ep))
        self.assertIn(ep["rate_limit"], (None, 0), ep)
        listed = self.list_all(serve, "/v1/endpoints")[0]
        for k in list(ISSUE4_DEFAULTS) + ["rate_limit"]:
            self.assertIn(k, listed, listed)

        bad = [
            ("rate_limit", -1), ("rate_limit", 10001), ("rate_limit", "20"),
            ("rate_limit", True), ("max_in_flight", 0), ("max_in_flight", 1001),
            ("max_in_flight", 2.5), ("max_in_flight", "10"),
            # Read-only: shown, never accepted.
            ("circuit", "open"), ("circuit", "closed"), ("next_probe_at", None),
            ("paused_until", None), ("disabled_reason", "because"),
        ]
        for field, value in bad:
            with self.subTest(field=field, value=value):
                self.assert_error(serve.api("POST", "/v1/endpoints", {"url": url, field: value}),
                                  400, "invalid_field", field)
                self.assert_error(serve.api("PATCH", "/v1/endpoints/" + ep["id"],
                                            {field: value}),
                                  400, "invalid_field", field)
        self.assertEqual(len(self.list_all(serve, "/v1/endpoints")), 1)

        got = self.create_endpoint(serve, url, rate_limit=0.5, max_in_flight=1)
        self.assertEqual((got["rate_limit"], got["max_in_flight"]), (0.5, 1), got)
        got = self.create_endpoint(serve, url, rate_limit=10000, max_in_flight=1000)
        self.assertEqual((got["rate_limit"], got["max_in_flight"]), (10000, 1000), got)
        status, got = serve.api("PATCH", "/v1/endpoints/" + got["id"],
                                {"rate_limit": None, "max_in_flight": 7})
        self.assertEqual(status, 200, got)
        self.assertIn(got["rate_limit"], (None, 0), got)
        self.assertEqual(got["max_in_flight"], 7, got)
        status, got = serve.api("PATCH", "/v1/endpoints/" + got["id"], {"rate_limit": 0})
        self.assertEqual(status, 200, got)
        self.assertIn(got["rate_limit"], (None, 0), got)


    def test_a_dead_endpoints_backlog_does_not_fill_the_window(self):
        """Issue 16 step 3: --window 200 and a receiver that never answers with a backlog of 600
        deliveries. Each endpoint holds at most its cap of rows in the window (the rest stay in
        the store), so a fast endpoint's new events are still delivered at once; without the
        cap the dead one's rows filled the window and the ready queues, and the fast ones waited
        for its requests to time out (30 s)."""
        def hang(req):
            dead.sleep(60)
            return 200
        dead = self.start_receiver(hang)
        fast = self.start_mock(name="fast")
        serve = self.start_serve("--timeout", "30s", "--window", "200")
        self.create_endpoint(serve, dead.url + "/dead", events=["media.backlog"])
        self.create_endpoint(serve, fast.url + "/fast", events=["media.created"])
        self.ingest_many(serve, [{"event": "media.backlog", "data": {"i": i}}
                                 for i in range(600)])
        self.wait_for(lambda: dead.in_flight >= 10, 10, "the dead endpoint's 10 requests open")
        # Events one at a time, each delivered well before the dead one's first timeout.
        for i in range(20):
            resp = self.ingest(serve, event="media.created", data={"i": i})
            self.wait_for(lambda: any(r["headers"]["webhook-id"] == resp["id"]
                                      for r in fast.records()), 5,
                          "event %d to the fast endpoint behind the dead one's backlog" % i)
        self.assertFalse(any("done_mono" in r for r in dead.snapshot()),
                         "the fast endpoint's events waited for the dead one's timeouts")

    def test_a_slow_endpoints_backlog_past_its_cap_is_delivered_once(self):
        """The rows the cap leaves in the store come back by refills as the endpoint drains:
        with --window 100 (a cap of 32 rows) a slow endpoint's 400 deliveries all arrive,
        each once, oldest first, while a fast endpoint is served beside it."""
        def slow_answer(req):
            slow.sleep(0.005)
            return 200
        slow = self.start_receiver(slow_answer)
        fast = self.start_mock(name="fast")
        serve = self.start_serve("--window", "100")
        ep = self.create_endpoint(serve, slow.url + "/slow", events=["media.backlog"],
                                  max_in_flight=1)
        self.create_endpoint(serve, fast.url + "/fast", events=["media.created"])
        resp = []
        for chunk in range(8):  # 8 batches: keys ordered batch by batch
            resp += self.ingest_many(serve, [{"event": "media.backlog", "data": {"i": i}}
                                             for i in range(chunk * 50, chunk * 50 + 50)])
            # The next batch's deliveries are due a millisecond later at least (ids break
            # ties within one): the clock turns within a millisecond.
            done_ms = int(time.time() * 1000)
            while int(time.time() * 1000) <= done_ms:
                pass
        fast_resp = self.ingest_many(serve, [{"event": "media.created", "data": {"i": i}}
                                             for i in range(50)])
        self.wait_for(lambda: len(fast.records()) >= 50, 15, "the fast endpoint's 50")
        self.wait_for(lambda: len(slow.snapshot()) >= 400, 60, "400 requests to the slow one")
        reqs = slow.snapshot()
        ids = [r["headers"]["webhook-id"] for r in reqs]
        self.assertEqual(len(ids), len(set(ids)), "a delivery sent twice")
        self.assertEqual(sorted(ids), sorted(e["id"] for e in resp))
        # One request at a time (max_in_flight 1), and the batches in the order they were
        # ingested: a refill brings the endpoint's oldest rows first.
        batch_of = {e["id"]: i // 50 for i, e in enumerate(resp)}
        order = [batch_of[x] for x in ids]
        self.assertEqual(order, sorted(order), "a later batch's event went before an older one")
        self.wait_for(lambda: len(self.list_all(
            serve, "/v1/deliveries?status=succeeded&endpoint_id=" + ep["id"])) == 400, 30,
            "the slow endpoint's 400 deliveries succeeded")
        self.assertEqual(len(fast.records()), len(fast_resp))

if __name__ == "__main__":
    unittest.main()
