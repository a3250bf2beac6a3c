"""Durable batches (issue 14, item 2): a batch that failed and waits for its retry carries on after
a restart of `hookd serve` (clean or kill -9) and, with several nodes, after its owner dies
(test_batch_durable_nodes.py): the
retry goes out at its scheduled time with the same batch_id and the same events, so a receiver
may dedupe batches by their id (docs/api.md#batches)."""

import json
import threading
import time
import unittest

from harness import HookdTestCase, parse_time

# The retry waits long enough for a restart or a takeover to happen before it.
SCHEDULE = "0,5s"
N_EVENTS = 5


class BatchDurableBase(HookdTestCase):
    """The receiver and the checks; the tests are below and in test_batch_durable_nodes.py
    (several nodes, PostgreSQL only)."""

    def fail_first_receiver(self):
        """A receiver answering 500 to its first request, 200 to the rest."""
        first = threading.Lock()
        state = {"n": 0}

        def respond(req):
            with first:
                state["n"] += 1
                return 500 if state["n"] == 1 else 200
        return self.start_receiver(respond)

    def make_batch(self, serve, recv, nodes=None):
        """A batched endpoint (owned by one of nodes first, if given), N_EVENTS events to it,
        and its first (failed) batch recorded: returns (endpoint, delivery ids, batch id, event
        ids of the batch, retry time in s)."""
        ep = self.create_endpoint(serve, recv.url + "/b", events=["media.created"],
                                  batch={"max_events": 10, "max_wait_ms": 300})
        if nodes:
            self.wait_owned([ep["id"]], nodes)
        resp = self.ingest_many(serve, [{"event": "media.created", "data": {"i": i}}
                                        for i in range(N_EVENTS)])
        dlvs = [self.deliveries_to(e, ep["id"])[0] for e in resp]
        self.wait_for(lambda: all(self.get_delivery(serve, d)["attempt_count"] >= 1
                                  for d in dlvs), 15, "the failed batch recorded")
        reqs = recv.snapshot("/b")
        self.assertEqual(len(reqs), 1, [r["body"][:80] for r in reqs])
        self.assertEqual(reqs[0]["status"], 500)
        body = json.loads(reqs[0]["body"])
        self.assertEqual(sorted(e["id"] for e in body["events"]), sorted(e["id"] for e in resp))
        retry_at = {parse_time(self.get_delivery(serve, d)["next_attempt_at"]) for d in dlvs}
        self.assertEqual(len(retry_at), 1, "a batch's members share their retry time")
        return ep, dlvs, body["batch_id"], [e["id"] for e in body["events"]], retry_at.pop()

    def assert_same_batch_retried(self, serve, recv, dlvs, batch_id, ids, retry_at):
        """The retry arrives once, at its time, as the same batch: its id and its events."""
        for d in dlvs:
            self.wait_delivery(serve, d, "succeeded", timeout=30)
        reqs = recv.snapshot("/b")
        self.assertEqual(len(reqs), 2, [(r["headers"].get("webhook-id"), r["body"][:80])
                                        for r in reqs])
        second = reqs[1]
        body = json.loads(second["body"])
        self.assertEqual(body["batch_id"], batch_id, "the retry carries the batch's id")
        self.assertEqual(second["headers"]["webhook-id"], batch_id)
        self.assertEqual(sorted(e["id"] for e in body["events"]), sorted(ids),
                         "the retry carries the batch's events")
        self.assertEqual(int(second["headers"]["x-pixelpatrol-batch-size"]), len(ids))
        self.assertGreaterEqual(second["at"], retry_at - 0.05, "the retry kept its time")
        for d in dlvs:
            got = self.get_delivery(serve, d)
            self.assertEqual(got["batch_id"], batch_id, got)
            self.assertEqual([a["status"] for a in got["attempts"]], [500, 200], got)


class BatchDurableTest(BatchDurableBase):

    def retry_survives(self, restart):
        recv = self.fail_first_receiver()
        serve = self.start_serve(schedule=SCHEDULE)
        _, dlvs, batch_id, ids, retry_at = self.make_batch(serve, recv)
        restart(serve)
        self.assertLess(time.time(), retry_at, "restarted before the retry was due")
        serve = self.start_serve(schedule=SCHEDULE)
        self.assert_same_batch_retried(serve, recv, dlvs, batch_id, ids, retry_at)

    def test_a_failed_batch_is_retried_whole_after_a_clean_restart(self):
        self.retry_survives(self.stop_clean)

    def test_a_failed_batch_is_retried_whole_after_kill9(self):
        self.retry_survives(lambda s: s.kill9())


if __name__ == "__main__":
    unittest.main()
