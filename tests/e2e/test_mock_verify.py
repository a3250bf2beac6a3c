"""`hookd mock` driven directly with hand-signed requests, and `hookd verify` on what it records."""

import json
import os
import re
import time
import unittest

from harness import HookdTestCase, http_request, new_secret, sign_hex, signed_headers

RECORD_KEYS = {"seq", "at", "method", "path", "remote_addr", "headers", "body", "status",
               "verified", "checks", "reason"}
LINE_RE = re.compile(r"^mock: (\S+) (\S+) id=(\S*) event=(\S*) verified=(yes|no|skipped) "
                     r"status=(\d+)(?: reason=\"(.*)\")?$")


class MockTest(HookdTestCase):

    def post(self, mock, path, body, headers):
        st, h, raw = http_request(mock.host, mock.port, "POST", path, body, headers)
        return st, raw

    def last_line(self, mock, count):
        """Waits for the count-th request line on stdout and parses it."""
        self.wait_for(lambda: len(mock.request_lines()) >= count, 5,
                      "mock line %d" % count)
        line = mock.request_lines()[count - 1]
        m = LINE_RE.match(line)
        self.assertIsNotNone(m, "bad mock line: %r" % line)
        return m

    def last_record(self, mock, count):
        self.wait_for(lambda: len(mock.records()) >= count, 5, "record %d" % count)
        return mock.records()[count - 1]

    def test_signatures_are_checked_and_recorded(self):
        secret = new_secret()
        mock = self.start_mock(secret=secret)
        body = b'{"id":"msg_1","event":"media.created","created_at":"2026-01-01T00:00:00.000Z",' \
               b'"data":{"k":"v"}}'
        n = 0

        def send(path, body, headers, verified, checks, reason=False):
            nonlocal n
            st, raw = self.post(mock, path, body, headers)
            n += 1
            self.assertEqual(st, 200, raw)
            self.assertEqual(json.loads(raw), {"received": True})
            m = self.last_line(mock, n)
            rec = self.last_record(mock, n)
            self.assertEqual(set(rec.keys()), RECORD_KEYS, rec)
            self.assertEqual(rec["seq"], n)
            self.assertEqual(rec["remote_addr"], "127.0.0.1", rec)
            self.assertLess(abs(rec["at"] - time.time() * 1000), 5000, rec)
            self.assertEqual(rec["method"], "POST")
            self.assertEqual(rec["path"], path)
            self.assertEqual(rec["body"], body.decode())
            self.assertEqual(rec["status"], 200)
            for k in rec["headers"]:
                self.assertEqual(k, k.lower(), rec["headers"])
            self.assertEqual(rec["checks"], checks, rec)
            self.assertEqual(m.group(1), "POST")
            self.assertEqual(m.group(2), path)
            self.assertEqual(m.group(3), headers.get("webhook-id", ""))
            self.assertEqual(m.group(4), headers.get("X-PixelPatrol-Event", ""))
            self.assertEqual(m.group(6), "200")
            if verified:
                self.assertIs(rec["verified"], True, rec)
                self.assertIsNone(rec["reason"], rec)
                self.assertEqual(m.group(5), "yes", m.group(0))
            else:
                self.assertIs(rec["verified"], False, rec)
                self.assertIsInstance(rec["reason"], str, rec)
                self.assertTrue(rec["reason"])
                self.assertEqual(m.group(5), "no", m.group(0))
                self.assertTrue(m.group(7), "a failed check prints a reason: %r" % m.group(0))
            return rec

        all3 = {"standard": True, "pixelpatrol": True, "webhook_signature": True}
        h = signed_headers(secret, "msg_1", body)
        send("/hook", body, h, True, all3)
        # Each scheme alone is enough.
        send("/a", body, signed_headers(secret, "msg_2", body, schemes=("standard",)), True,
             {"standard": True, "pixelpatrol": None, "webhook_signature": None})
        send("/b", body, signed_headers(secret, "msg_3", body, schemes=("pixelpatrol",)), True,
             {"standard": None, "pixelpatrol": True, "webhook_signature": None})
        send("/c", body, signed_headers(secret, "msg_4", body, schemes=("webhook_signature",)),
             True, {"standard": None, "pixelpatrol": None, "webhook_signature": True})
        # Rotation: several space-separated v1 entries, one of them valid.
        hr = signed_headers(secret, "msg_5", body, schemes=("standard",))
        other = signed_headers(new_secret(), "msg_5", body, ts=int(hr["webhook-timestamp"]),
                               schemes=("standard",))
        hr["webhook-signature"] = other["webhook-signature"] + " " + hr["webhook-signature"]
        send("/rot", body, hr, True, {"standard": True, "pixelpatrol": None,
                                      "webhook_signature": None})

        # Tampered body: every scheme fails.
        tampered = body.replace(b'"v"', b'"w"')
        rec = send("/t", tampered, h, False, {"standard": False, "pixelpatrol": False,
                                               "webhook_signature": False})
        # One bad scheme among good ones fails the request.
        hb = dict(h)
        hb["X-Webhook-Signature"] = "sha256=" + sign_hex(secret, b"other")
        send("/one-bad", body, hb, False, {"standard": True, "pixelpatrol": True,
                                           "webhook_signature": False})
        # Wrong secret.
        send("/wrong", body, signed_headers(new_secret(), "msg_6", body), False,
             {"standard": False, "pixelpatrol": False, "webhook_signature": False})
        # Stale timestamps (10 minutes old), correctly signed for that time.
        old = time.time() - 600
        send("/stale", body, signed_headers(secret, "msg_7", body, ts=int(old),
                                            ts_ms=int(old * 1000)), False,
             {"standard": False, "pixelpatrol": False, "webhook_signature": True})
        # Timestamps in the future beyond 300 s fail too; within 300 s pass.
        fut = time.time() + 200
        send("/near-future", body, signed_headers(secret, "msg_8", body, ts=int(fut),
                                                  ts_ms=int(fut * 1000)), True, all3)
        # No signature header at all is not verified.
        send("/none", body, {"Content-Type": "application/json", "webhook-id": "msg_9",
                             "X-PixelPatrol-Event": "media.created"}, False,
             {"standard": None, "pixelpatrol": None, "webhook_signature": None})
        # Standard Webhooks signature without its id/timestamp headers.
        hm = signed_headers(secret, "msg_10", body, schemes=("standard",))
        del hm["webhook-timestamp"]
        send("/no-ts", body, hm, False, {"standard": False, "pixelpatrol": None,
                                         "webhook_signature": None})
        self.assertEqual(len(mock.records()), n)
        self.assertEqual([r["seq"] for r in mock.records()], list(range(1, n + 1)))

    def test_known_standard_webhooks_vector_verifies(self):
        # The Standard Webhooks reference vector, sent with its own (old) timestamp: the mock
        # must reject it for age, and `hookd verify --ignore-timestamp` must accept it.
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        body = b'{"test": 2432232314}'
        headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
                   "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
        req = os.path.join(self.tmp, "vector.json")
        with open(req, "w") as f:
            json.dump({"headers": headers, "body": body.decode()}, f)
        res = self.run_hookd("verify", "--secret", secret, "--request", req)
        self.assertEqual(res.returncode, 1, (res.stdout, res.stderr))
        self.assertTrue(res.stdout.startswith("not verified: "), res.stdout)
        res = self.run_hookd("verify", "--secret", secret, "--request", req,
                             "--ignore-timestamp")
        self.assertEqual(res.returncode, 0, (res.stdout, res.stderr))
        self.assertTrue(res.stdout.startswith("verified: "), res.stdout)
        age = int(time.time()) - 1614265330 + 3600
        res = self.run_hookd("verify", "--secret", secret, "--request", req,
                             "--tolerance", str(age))
        self.assertEqual(res.returncode, 0, (res.stdout, res.stderr))

    def test_no_secret_skips_and_reject_invalid_replies_401(self):
        plain = self.start_mock()
        body = b'{"a":1}'
        st, raw = self.post(plain, "/p", body, {"Content-Type": "application/json",
                                                "webhook-id": "x"})
        self.assertEqual(st, 200)
        m = self.last_line(plain, 1)
        self.assertEqual(m.group(5), "skipped")
        rec = self.last_record(plain, 1)
        self.assertIsNone(rec["verified"], rec)

        secret = new_secret()
        strict = self.start_mock("--reject-invalid", secret=secret)
        st, _ = self.post(strict, "/p", body, signed_headers(secret, "m1", body))
        self.assertEqual(st, 200)
        st, _ = self.post(strict, "/p", body, signed_headers(new_secret(), "m2", body))
        self.assertEqual(st, 401)
        m = self.last_line(strict, 2)
        self.assertEqual((m.group(5), m.group(6)), ("no", "401"))
        self.assertEqual(self.last_record(strict, 2)["status"], 401)

    def test_failure_injection(self):
        body = b"{}"
        h = {"Content-Type": "application/json"}
        ff = self.start_mock("--fail-first", "2")
        self.assertEqual([self.post(ff, "/", body, h)[0] for _ in range(4)], [500, 500, 200, 200])
        self.assertEqual([r["status"] for r in ff.records()], [500, 500, 200, 200])
        ffs = self.start_mock("--fail-first", "1", "--status", "429")
        self.assertEqual([self.post(ffs, "/", body, h)[0] for _ in range(3)], [429, 200, 200])
        st = self.start_mock("--status", "503")
        self.assertEqual([self.post(st, "/", body, h)[0] for _ in range(3)], [503, 503, 503])
        r1 = self.start_mock("--fail-rate", "1")
        self.assertEqual({self.post(r1, "/", body, h)[0] for _ in range(5)}, {500})
        r0 = self.start_mock("--fail-rate", "0")
        self.assertEqual({self.post(r0, "/", body, h)[0] for _ in range(5)}, {200})
        slow = self.start_mock("--latency", "400")
        t0 = time.monotonic()
        self.assertEqual(self.post(slow, "/", body, h)[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.38)
        self.wait_for(lambda: len(slow.request_lines()) == 1, 5, "the slow request's line")

    def test_bad_mock_usage_exits_2(self):
        for args in (["--status", "abc"], ["--fail-first", "-1"], ["--fail-rate", "2"],
                     ["--latency", "x"], ["--listen", "nonsense"], ["--bogus"]):
            with self.subTest(args=args):
                res = self.run_hookd("mock", *args, timeout=10)
                self.assertEqual(res.returncode, 2, (args, res.stdout, res.stderr))
                self.assertTrue(res.stderr.strip(), "a message on stderr")
                self.assertIn(args[0].lstrip("-").split("-")[0], res.stderr.lower(), res.stderr)
        res = self.run_hookd("mock", "--help", timeout=10)
        self.assertEqual(res.returncode, 0, res.stderr)
        for flag in ("--listen", "--secret", "--record", "--status", "--fail-first",
                     "--fail-rate", "--latency", "--reject-invalid"):
            self.assertIn(flag, res.stdout)

    def test_verify_recorded_requests(self):
        secret = new_secret()
        mock = self.start_mock(secret=secret)
        body = b'{"id":"evt_1","event":"media.created","data":{}}'
        st, _ = self.post(mock, "/v", body, signed_headers(secret, "evt_1", body))
        self.assertEqual(st, 200)
        self.wait_for(lambda: len(mock.records()) == 1, 5, "the record line")
        with open(mock.record_path) as f:
            line = f.read().splitlines()[0]
        req = os.path.join(self.tmp, "req.json")
        with open(req, "w") as f:
            f.write(line + "\n")

        res = self.run_hookd("verify", "--secret", secret, "--request", req)
        self.assertEqual(res.returncode, 0, (res.stdout, res.stderr))
        self.assertRegex(res.stdout, r"^verified: \S")
        # stdin
        res = self.run_hookd("verify", "--secret", secret, "--request", "-", input=line)
        self.assertEqual(res.returncode, 0, (res.stdout, res.stderr))
        # Wrong secret
        res = self.run_hookd("verify", "--secret", new_secret(), "--request", req)
        self.assertEqual(res.returncode, 1, (res.stdout, res.stderr))
        self.assertRegex(res.stdout, r"^not verified: \S")
        # Tampered body
        rec = json.loads(line)
        rec["body"] = rec["body"].replace("media.created", "media.deleted")
        bad = os.path.join(self.tmp, "bad.json")
        with open(bad, "w") as f:
            json.dump(rec, f)
        res = self.run_hookd("verify", "--secret", secret, "--request", bad)
        self.assertEqual(res.returncode, 1, (res.stdout, res.stderr))
        self.assertRegex(res.stdout, r"^not verified: \S")
        # Headers file (curl -D style, with a status line and CRLFs) + body file.
        rec = json.loads(line)
        hdr = os.path.join(self.tmp, "headers.txt")
        with open(hdr, "w", newline="") as f:
            f.write("POST /v HTTP/1.1\r\n")
            for k, v in rec["headers"].items():
                f.write("%s: %s\r\n" % (k, v))
            f.write("\r\n")
        bodyf = os.path.join(self.tmp, "body.bin")
        with open(bodyf, "wb") as f:
            f.write(rec["body"].encode())
        res = self.run_hookd("verify", "--secret", secret, "--headers", hdr, "--body", bodyf)
        self.assertEqual(res.returncode, 0, (res.stdout, res.stderr))
        with open(bodyf, "ab") as f:
            f.write(b" ")
        res = self.run_hookd("verify", "--secret", secret, "--headers", hdr, "--body", bodyf)
        self.assertEqual(res.returncode, 1, (res.stdout, res.stderr))
        # Usage errors: exit 2.
        for args in ([], ["--secret", secret], ["--request", req],
                     ["--secret", secret, "--request", req, "--bogus"],
                     ["--secret", secret, "--headers", hdr],
                     ["--secret", secret, "--request", req, "--tolerance", "abc"]):
            with self.subTest(args=args):
                res = self.run_hookd("verify", *args)
                self.assertEqual(res.returncode, 2, (args, res.stdout, res.stderr))
                self.assertTrue(res.stderr.strip(), "a usage message on stderr")


if __name__ == "__main__":
    unittest.main()
