"""`hookd mock` as the bench's receiver: --quiet, /_mock/stats, --record-us, --threads."""

import json
import threading
import time

from harness import HookdTestCase, http_request, new_secret, signed_headers

BODY = b'{"id":"evt_1","event":"media.created","created_at":"2026-01-01T00:00:00.000Z",' \
       b'"data":{"k":"v"}}'
STATS_KEYS = {"requests", "verified", "unverified", "skipped", "replied_2xx", "replied_other",
              "body_bytes", "first_at_us", "last_at_us", "now_us", "verifying", "reset"}


class MockStatsTest(HookdTestCase):

    def stats(self, mock, method="GET"):
        st, h, raw = http_request(mock.host, mock.port, method, "/_mock/stats")
        self.assertEqual(st, 200, raw)
        self.assertTrue(h.get("content-type", "").startswith("application/json"), h)
        s = json.loads(raw)
        self.assertEqual(set(s.keys()), STATS_KEYS, s)
        return s

    def post(self, mock, body=BODY, headers=None, path="/hook"):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        st, _, raw = http_request(mock.host, mock.port, "POST", path, body, h)
        return st, raw

    def test_counts_verification_and_reset(self):
        secret = new_secret()
        mock = self.start_mock("--quiet", secret=secret, record=False)
        s = self.stats(mock)
        self.assertEqual(s["requests"], 0, s)
        self.assertIsNone(s["first_at_us"], s)
        self.assertIsNone(s["last_at_us"], s)
        self.assertIs(s["verifying"], True, s)
        self.assertIs(s["reset"], False, s)

        before = int(time.time() * 1e6)
        self.assertEqual(self.post(mock, headers=signed_headers(secret, "evt_1", BODY))[0], 200)
        self.assertEqual(self.post(mock, headers=signed_headers(secret, "evt_2", BODY))[0], 200)
        bad = signed_headers(new_secret(), "evt_3", BODY)
        self.assertEqual(self.post(mock, headers=bad)[0], 200)
        after = int(time.time() * 1e6)

        s = self.stats(mock)
        self.assertEqual((s["requests"], s["verified"], s["unverified"], s["skipped"]),
                         (3, 2, 1, 0), s)
        self.assertEqual((s["replied_2xx"], s["replied_other"]), (3, 0), s)
        self.assertEqual(s["body_bytes"], 3 * len(BODY), s)
        self.assertLessEqual(before - 1000, s["first_at_us"], s)
        self.assertLessEqual(s["first_at_us"], s["last_at_us"], s)
        self.assertLessEqual(s["last_at_us"], after + 1000, s)
        self.assertGreaterEqual(s["now_us"], s["last_at_us"], s)
        # Asking for the stats is not a request it counts.
        self.assertEqual(self.stats(mock)["requests"], 3)

        # DELETE answers the counters it had, then starts again from zero.
        s = self.stats(mock, "DELETE")
        self.assertEqual((s["requests"], s["verified"], s["unverified"]), (3, 2, 1), s)
        self.assertIs(s["reset"], True, s)
        s = self.stats(mock)
        self.assertEqual((s["requests"], s["verified"], s["unverified"], s["body_bytes"]),
                         (0, 0, 0, 0), s)
        self.assertIsNone(s["first_at_us"], s)

        self.stop_clean(mock)
        # --quiet: the listening line and nothing per request.
        self.assertEqual(mock.request_lines(), [], mock.lines)
        self.assertEqual(len(mock.lines), 1, mock.lines)

    def test_without_quiet_lines_are_printed_and_stats_are_not(self):
        mock = self.start_mock(record=False)
        self.assertEqual(self.post(mock)[0], 200)
        s = self.stats(mock)
        self.assertEqual((s["requests"], s["skipped"], s["verified"]), (1, 1, 0), s)
        self.assertIs(s["verifying"], False, s)
        self.stop_clean(mock)
        lines = mock.request_lines()
        self.assertEqual(len(lines), 1, mock.lines)
        self.assertTrue(lines[0].startswith("mock: POST /hook "), lines)

    def test_stats_route_takes_no_sequence_number(self):
        # --fail-first counts deliveries only: asking for the stats first does not use it up.
        mock = self.start_mock("--quiet", "--fail-first", "1", record=False)
        self.stats(mock)
        self.stats(mock, "DELETE")
        self.assertEqual(self.post(mock)[0], 500)
        self.assertEqual(self.post(mock)[0], 200)
        s = self.stats(mock)
        self.assertEqual((s["requests"], s["replied_2xx"], s["replied_other"]), (2, 1, 1), s)
        # Only GET and DELETE are the mock's own: a POST there is a request like any other.
        self.assertEqual(self.post(mock, path="/_mock/stats")[0], 200)
        self.assertEqual(self.stats(mock)["requests"], 3)

    def test_record_us_adds_microseconds(self):
        mock = self.start_mock("--quiet", "--record-us")
        self.assertEqual(self.post(mock)[0], 200)
        rec = self.wait_for(lambda: mock.records(), 5, "a record line")[0]
        self.assertIsInstance(rec["at_us"], int, rec)
        self.assertEqual(rec["at"], rec["at_us"] // 1000, rec)
        self.assertLess(abs(rec["at_us"] - time.time() * 1e6), 5e6, rec)
        s = self.stats(mock)
        self.assertEqual(s["first_at_us"], rec["at_us"], s)

        # Without --record-us the record format is unchanged.
        plain = self.start_mock("--quiet", name="plain")
        self.assertEqual(self.post(plain)[0], 200)
        rec = self.wait_for(lambda: plain.records(), 5, "a record line")[0]
        self.assertNotIn("at_us", rec)

    def test_pool_counts_concurrent_requests(self):
        mock = self.start_mock("--quiet", "--threads", "3", record=False)
        statuses = []
        lock = threading.Lock()

        def worker():
            for _ in range(10):
                st, _ = self.post(mock)
                with lock:
                    statuses.append(st)
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(statuses, [200] * 80)
        s = self.stats(mock)
        self.assertEqual((s["requests"], s["replied_2xx"], s["body_bytes"]),
                         (80, 80, 80 * len(BODY)), s)

    def test_latency_mode_still_counts(self):
        mock = self.start_mock("--quiet", "--latency", "50", record=False)
        t0 = time.monotonic()
        self.assertEqual(self.post(mock)[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.05)
        self.assertEqual(self.stats(mock)["requests"], 1)

    def test_bad_new_flags_exit_2(self):
        for args in (["--threads", "0"], ["--threads", "65"], ["--threads", "x"],
                     ["--record-us"], ["--quiet=1"], ["--threads", "2", "--latency", "10"]):
            res = self.run_hookd("mock", "--listen", "127.0.0.1:0", *args, timeout=10)
            self.assertEqual(res.returncode, 2, (args, res.stdout, res.stderr))
            self.assertIn("hookd mock:", res.stderr, args)
        res = self.run_hookd("mock", "--help", timeout=10)
        self.assertEqual(res.returncode, 0)
        for flag in ("--quiet", "--record-us", "--threads", "/_mock/stats"):
            self.assertIn(flag, res.stdout, flag)
