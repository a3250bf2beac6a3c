"""The bench's loaders (bench/bench.py), against two real `hookd serve`s: what bench/run and
bench/pg.py report rests on them sending what they say. load_batches sends every batch once,
over all the ports it is given; paced_sender sends event i to port i mod N. Nothing else in the
suite runs them: a change that broke paced_sender (its workers given an argument they did not
take) once left phase w sending nothing while every test passed."""

import json
import os
import sys
import unittest

from harness import API_KEY, HookdTestCase

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "bench"))
import bench as B  # noqa: E402


class BenchLoadersTest(HookdTestCase):

    def two_serves(self):
        a = self.start_serve(db=os.path.join(self.tmp, "a.db"))
        b = self.start_serve(db=os.path.join(self.tmp, "b.db"))
        return a, b

    def events_in(self, serve):
        st, body = serve.api("GET", "/v1/events?limit=100")
        self.assertEqual(st, 200, body)
        self.assertIsNone(body.get("next_cursor"), "more than a page: raise the limit")
        return body["data"]

    def test_load_batches_sends_each_batch_once_over_every_port(self):
        a, b = self.two_serves()
        batch = ('{"events":[' + ",".join(
            B.event_json("bench.load", {"n": i}) for i in range(3)) + "]}").encode()
        res = B.load_batches([a.port, b.port], API_KEY, batch, 20, 4, 60)
        self.assertEqual(res["errors"], 0, res["first_error"])
        self.assertEqual(res["ok"], 20)
        got_a, got_b = len(self.events_in(a)), len(self.events_in(b))
        self.assertEqual(got_a + got_b, 60, "every batch once, no more")
        # Connections 0 and 2 go to a, 1 and 3 to b, and all four start at once.
        self.assertGreater(got_a, 0)
        self.assertGreater(got_b, 0)
        # One port, as bench.py's steps call it.
        res = B.load_batches(a.port, API_KEY, batch, 2, 2, 60)
        self.assertEqual((res["ok"], res["errors"]), (2, 0), res["first_error"])
        self.assertEqual(len(self.events_in(a)), got_a + 6)

    def test_paced_sender_sends_event_i_to_port_i_mod_n(self):
        a, b = self.two_serves()
        res = B.paced_sender([a.port, b.port], API_KEY,
                             lambda i: "bench.paced.%d" % (i % 2), 40, 1, conns=4)
        self.assertEqual((res["sent"], res["ok"], res["errors"]), (40, 40, 0),
                         res["first_error"])
        self.assertEqual(len(res["ack_us"]), 40)
        for serve, want in ((a, "bench.paced.0"), (b, "bench.paced.1")):
            evs = self.events_in(serve)
            self.assertEqual(len(evs), 20)
            self.assertEqual({e["event"] for e in evs}, {want}, json.dumps(evs[:2]))


if __name__ == "__main__":
    unittest.main()
