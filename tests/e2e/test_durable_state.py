"""Durable endpoint state (issue 14, item 2): an endpoint's open circuit and its Retry-After pause
are kept in the store (table endpoint_state), so a restart of `hookd serve`, clean or by kill -9,
carries them on instead of resetting them: no request goes to such an endpoint before its probe
time or the pause's end, while other endpoints are delivered as usual."""

import time
import unittest

from harness import HookdTestCase, parse_time

SCHEDULE = ",".join(["0"] + ["1s"] * 10)


class DurableStateTest(HookdTestCase):

    def wait_recorded(self, serve, dlv_ids, attempts=1):
        """Waits until each delivery shows its attempts in the store: the endpoint's state was
        committed with them, so a crash now cannot lose it."""
        self.wait_for(lambda: all(self.get_delivery(serve, d)["attempt_count"] >= attempts
                                  for d in dlv_ids), 15, "the attempts recorded")

    def assert_quiet_while_others_deliver(self, serve, recv, before, healthy_ep, settle_until):
        """An event to the healthy endpoint is delivered; up to settle_until (epoch s) and
        until then, recv gets no request beyond `before`."""
        o = self.ingest(serve, "other")
        self.wait_delivery(serve, self.deliveries_to(o, healthy_ep)[0], "succeeded", timeout=15)
        self.wait_for(lambda: time.time() >= settle_until, settle_until - time.time() + 5,
                      "the held deliveries' retry times to pass")
        self.assertEqual(len(recv.snapshot()), before,
                         "a request went to the held endpoint after the restart")

    def open_circuit_survives(self, restart):
        recv = self.start_receiver(lambda req: 500)
        healthy = self.start_mock(name="healthy")
        flags = ("--breaker-failures", "2", "--breaker-cooldown", "60s")
        serve = self.start_serve(*flags, schedule=SCHEDULE)
        ep = self.create_endpoint(serve, recv.url + "/b", events=["media.created"])
        other = self.create_endpoint(serve, healthy.url + "/ok", events=["other"])
        resp = self.ingest_many(serve, [{"event": "media.created", "data": {"i": i}}
                                        for i in range(2)])
        dlvs = [self.deliveries_to(e, ep["id"])[0] for e in resp]
        opened = self.wait_endpoint(serve, ep["id"], lambda e: e.get("circuit") == "open", 15,
                                    "the circuit to open")
        probe_at = parse_time(opened["next_probe_at"])
        self.wait_recorded(serve, dlvs)
        before = len(recv.snapshot())
        self.assertEqual(before, 2, "two failed attempts open the circuit")

        restart(serve)
        serve = self.start_serve(*flags, schedule=SCHEDULE)
        ep2 = self.get_endpoint(serve, ep["id"])
        self.assertEqual(ep2["circuit"], "open", ep2)
        self.assertAlmostEqual(parse_time(ep2["next_probe_at"]), probe_at, delta=0.01)
        # The failed deliveries' retries (1 s after their attempt) are due now: without the
        # stored circuit they would go out at once.
        last = max(parse_time(self.get_delivery(serve, d)["next_attempt_at"]) for d in dlvs)
        self.assertLess(last + 2, probe_at)
        self.assert_quiet_while_others_deliver(serve, recv, before, other["id"], last + 2)
        self.assertEqual(self.get_endpoint(serve, ep["id"])["circuit"], "open")

    def test_open_circuit_survives_a_clean_restart(self):
        self.open_circuit_survives(self.stop_clean)

    def test_open_circuit_survives_kill9(self):
        self.open_circuit_survives(lambda s: s.kill9())

    def test_retry_after_pause_survives_kill9(self):
        recv = self.start_receiver(lambda req: (429, {"Retry-After": "3600"}, b'{"e":"slow"}'))
        healthy = self.start_mock(name="healthy")
        serve = self.start_serve(schedule=SCHEDULE)
        ep = self.create_endpoint(serve, recv.url + "/p", events=["media.created"])
        other = self.create_endpoint(serve, healthy.url + "/ok", events=["other"])
        dlv = self.deliveries_to(self.ingest(serve), ep["id"])[0]
        paused = self.wait_endpoint(serve, ep["id"], lambda e: e.get("paused_until"), 15,
                                    "the pause")
        until = parse_time(paused["paused_until"])
        self.assertGreater(until - time.time(), 3500, paused)
        self.wait_recorded(serve, [dlv])
        before = len(recv.snapshot())
        self.assertEqual(before, 1)

        serve.kill9()
        serve = self.start_serve(schedule=SCHEDULE)
        ep2 = self.get_endpoint(serve, ep["id"])
        self.assertIsNotNone(ep2["paused_until"], ep2)
        self.assertAlmostEqual(parse_time(ep2["paused_until"]), until, delta=0.01)
        # More work for the paused endpoint waits too; the other endpoint is delivered.
        self.ingest(serve)
        self.assert_quiet_while_others_deliver(serve, recv, before, other["id"],
                                               time.time() + 2)
        d = self.get_delivery(serve, dlv)
        self.assertEqual((d["status"], d["attempt_count"]), ("pending", 1), d)


if __name__ == "__main__":
    unittest.main()
