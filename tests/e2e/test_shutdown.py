"""Stopping `hookd serve` (issue 15, part 6). The first SIGTERM/SIGINT logs one line with the
deliveries in flight and the longest it will wait for them, then waits; a second signal stops at
once, and the deliveries it cut are sent again after the restart (at-least-once); the last line
says it stopped. (tests/e2e/test_signals.py is about a receiver's HTTP signals: 429, 410, 3xx.)"""

import re
import signal
import threading
import time
import unittest

from harness import HookdTestCase

STOPPING_RE = re.compile(r"level=info stopping signal=(SIGTERM|SIGINT) deliveries_in_flight=(\d+) "
                         r"wait_max_ms=(\d+) note=\".*send SIGINT or SIGTERM again to stop at "
                         r"once.*at-least-once\)\"$", re.M)
NOW_RE = re.compile(r"level=warn stopping now signal=(SIGTERM|SIGINT) deliveries_in_flight=(\d+) "
                    r"note=\".*sent again after the restart \(at-least-once\)\"$", re.M)
STOPPED_RE = re.compile(r"level=info hookd stopped ms=(\d+) abandoned=(\d+)$")


class ShutdownTest(HookdTestCase):

    def gated_receiver(self):
        """A receiver that holds every request until gate is set (or the receiver closes)."""
        gate = threading.Event()

        def respond(req):
            while not gate.is_set() and not recv._closing.is_set():
                gate.wait(0.05)
            return 200
        recv = self.start_receiver(respond)
        return recv, gate

    def held(self, serve, recv, n):
        """Sends n events to one endpoint of recv and waits until all n requests are held."""
        ep = self.create_endpoint(serve, recv.url + "/slow")
        ids = []
        for i in range(n):
            ev = self.ingest(serve, "media.created", {"n": i})
            ids.append((ev["id"], self.deliveries_to(ev, ep["id"])[0]))
        self.wait_for(lambda: len(recv.snapshot()) >= n, 10, "%d requests at the receiver" % n)
        return ids

    def line(self, serve, regex, what, timeout=10):
        return self.wait_for(lambda: regex.search(serve.stderr_text()), timeout, what)

    def test_first_signal_says_what_it_waits_for_and_waits(self):
        recv, gate = self.gated_receiver()
        serve = self.start_serve("--timeout", "20s")
        ids = self.held(serve, recv, 3)
        serve.p.send_signal(signal.SIGTERM)
        m = self.line(serve, STOPPING_RE, "the stopping line")
        self.assertEqual(m.group(1), "SIGTERM")
        self.assertEqual(int(m.group(2)), 3, m.group(0))
        self.assertEqual(int(m.group(3)), 21000, "--timeout plus the 1 s grace")
        # It waits for them: still running while the receiver holds the requests (and had it
        # not waited, they would be pending and sent again after the restart below).
        self.assertIsNone(serve.p.poll(), "serve did not wait for the deliveries in flight")
        gate.set()
        self.assertEqual(serve.p.wait(timeout=15), 0, serve.stderr_tail())
        self.stop_clean(serve)
        err = serve.stderr_text().rstrip("\n").splitlines()
        self.assertRegex(err[-1], STOPPED_RE, "the last line says it stopped")
        self.assertEqual(STOPPED_RE.search(err[-1]).group(2), "0", err[-1])
        self.assertNotIn("stopping now", "\n".join(err))
        # They were delivered and recorded: after a restart nothing is sent again.
        serve = self.start_serve()
        for _, dlv in ids:
            self.assertEqual(self.get_delivery(serve, dlv)["status"], "succeeded")
        self.assertEqual(len(recv.snapshot()), 3)

    def test_second_signal_stops_at_once_and_the_deliveries_are_sent_again(self):
        recv, gate = self.gated_receiver()
        serve = self.start_serve("--timeout", "60s")
        ids = self.held(serve, recv, 2)
        serve.p.send_signal(signal.SIGINT)
        m = self.line(serve, STOPPING_RE, "the stopping line")
        self.assertEqual((m.group(1), m.group(2)), ("SIGINT", "2"), m.group(0))
        t0 = time.monotonic()
        serve.p.send_signal(signal.SIGTERM)
        self.assertEqual(serve.p.wait(timeout=15), 0, serve.stderr_tail())
        took = time.monotonic() - t0
        self.assertLess(took, 10, "the second signal took %.1f s of a 61 s wait" % took)
        self.stop_clean(serve)
        text = serve.stderr_text()
        now = NOW_RE.search(text)
        self.assertIsNotNone(now, text[-2000:])
        self.assertEqual(now.group(2), "2", now.group(0))
        last = text.rstrip("\n").splitlines()[-1]
        self.assertRegex(last, STOPPED_RE)
        self.assertEqual(STOPPED_RE.search(last).group(2), "2", last)

        # After the restart the two deliveries go out again and succeed.
        gate.set()
        serve = self.start_serve()
        for evt, dlv in ids:
            d = self.wait_delivery(serve, dlv, "succeeded")
            self.assertEqual(d["attempts"][-1]["status"], 200, d)
        sent = [r["headers"].get("webhook-id") for r in recv.snapshot()]
        for evt, _ in ids:
            self.assertGreaterEqual(sent.count(evt), 2, "event %s was not sent again: %r" % (
                evt, sent))

    def test_idle_stop_logs_both_lines(self):
        serve = self.start_serve()
        self.stop_clean(serve, signal.SIGINT)
        text = serve.stderr_text()
        m = STOPPING_RE.search(text)
        self.assertIsNotNone(m, text[-2000:])
        self.assertEqual(m.group(2), "0")
        self.assertRegex(text.rstrip("\n").splitlines()[-1], STOPPED_RE)


if __name__ == "__main__":
    unittest.main()
