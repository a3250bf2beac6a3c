"""A strict, seed-compatible API (issue 15, part 4): unknown query parameters are a 400 naming
them on every route; the seed's `custom_headers` is `headers` under a second name; the first
`--retry-schedule` delay is waited before attempt 1; an endpoint URL at a literal address the
address guard blocks is refused when it is saved, and a blocked attempt's log line says why;
`--check` prints durations as durations."""

import os
import re
import time
import unittest

import json

from harness import HookdTestCase, http_request, parse_time


class QueryParameterTest(HookdTestCase):

    def test_unknown_parameters_are_refused_on_every_route(self):
        serve = self.start_serve()
        ep = self.create_endpoint(serve, "https://hooks.example.com/q")
        dlv = self.ingest(serve, data={"n": 1})["deliveries"][0]["id"]
        # The example: a typo must not silently list every delivery.
        err = self.assert_error(serve.api("GET", "/v1/deliveries?staus=dead"), 400,
                                "invalid_field", "staus")
        self.assertIn("status", err["message"])  # it lists what the route takes
        for method, path in [("GET", "/v1/endpoints?foo=1"),
                             ("GET", "/v1/endpoints/%s?verbose=1" % ep["id"]),
                             ("GET", "/v1/deliveries/%s?x=1" % dlv),
                             ("GET", "/v1/dlq?status=dead"),
                             ("GET", "/v1/stats?window=5m&x=1"),
                             ("GET", "/healthz?x=1"),
                             ("GET", "/v1/events?types=a"),
                             ("DELETE", "/v1/endpoints/%s?force=1" % ep["id"])]:
            with self.subTest(path=path):
                bad = re.search(r"[?&](\w+)=1?[^&]*$", path).group(1)
                self.assert_error(serve.api(method, path), 400, "invalid_field", bad)
        # A write with an unknown parameter stores nothing.
        before = len(self.list_all(serve, "/v1/events"))
        self.assert_error(serve.api("POST", "/v1/events?dry_run=1",
                                    {"event": "media.created", "data": {}}),
                          400, "invalid_field", "dry_run")
        self.assertEqual(len(self.list_all(serve, "/v1/events")), before)
        # The endpoint was not deleted by the refused DELETE.
        self.get_endpoint(serve, ep["id"])
        # Given twice, or without a value.
        self.assert_error(serve.api("GET", "/v1/endpoints?limit=1&limit=2"), 400,
                          "invalid_field", "limit")
        self.assert_error(serve.api("GET", "/v1/endpoints?cursor"), 400, "invalid_field",
                          "cursor")
        # What each route takes still works.
        for path in ["/v1/endpoints?limit=1", "/v1/stats?window=5m&endpoint_id=" + ep["id"],
                     "/v1/deliveries?status=pending&limit=5", "/v1/dlq?limit=5",
                     "/v1/events?type=media.created&limit=5"]:
            with self.subTest(path=path):
                status, body = serve.api("GET", path)
                self.assertEqual(status, 200, (path, body))

    def test_metrics_listener_refuses_parameters_as_the_api_does(self):
        serve = self.start_serve("--metrics-listen", "127.0.0.1:0")
        m = serve.wait_line(re.compile(r"^hookd metrics on http://([^\s:]+):(\d+)/metrics$"), 5)
        host, port = m.group(1), int(m.group(2))
        api = self.assert_error(serve.api("GET", "/metrics?name=x"), 400, "invalid_field",
                                "name")
        st, _, raw = http_request(host, port, "GET", "/metrics?name=x")
        self.assertEqual(st, 400, raw)
        self.assertEqual(json.loads(raw)["error"], api)  # the same error, the same words
        st, _, raw = http_request(host, port, "GET", "/metrics?debug")
        self.assertEqual((st, json.loads(raw)["error"]["field"]), (400, "debug"))
        st, _, raw = http_request(host, port, "GET", "/metrics")
        self.assertEqual(st, 200, raw[:300])


class CustomHeadersSeedNameTest(HookdTestCase):

    def test_custom_headers_is_headers_under_the_seeds_name(self):
        mock = self.start_mock()
        serve = self.start_serve()
        seed = {"X-API-Key": "your-api-key", "X-Environment": "production"}
        ep = self.create_endpoint(serve, mock.url + "/seed", custom_headers=seed,
                                  events=["seed.test"])
        # Responses use the canonical field only.
        self.assertEqual(ep["headers"], seed, ep)
        self.assertNotIn("custom_headers", ep)
        resp = self.ingest(serve, "seed.test")
        self.wait_delivery(serve, resp["deliveries"][0]["id"], "succeeded")
        rec = [r for r in mock.records() if r["path"] == "/seed"]
        self.assertEqual(len(rec), 1, rec)
        self.assertEqual(rec[0]["headers"].get("x-api-key"), "your-api-key", rec[0])
        self.assertEqual(rec[0]["headers"].get("x-environment"), "production", rec[0])
        # PATCH replaces the set under either name; null removes it.
        status, got = serve.api("PATCH", "/v1/endpoints/" + ep["id"],
                                {"custom_headers": {"X-Tenant": "acme"}})
        self.assertEqual((status, got["headers"]), (200, {"X-Tenant": "acme"}), got)
        status, got = serve.api("PATCH", "/v1/endpoints/" + ep["id"], {"custom_headers": None})
        self.assertEqual((status, got["headers"]), (200, {}), got)

    def test_same_rules_errors_name_the_field_as_given(self):
        serve = self.start_serve()
        url = "https://hooks.example.com/h"
        err = self.assert_error(serve.api("POST", "/v1/endpoints", {
            "url": url, "headers": {"X-A": "1"}, "custom_headers": {"X-A": "1"}}),
            400, "invalid_field", "custom_headers")
        self.assertIn("not both", err["message"])
        self.assert_error(serve.api("POST", "/v1/endpoints", {
            "url": url, "custom_headers": {"Host": "evil"}}),
            400, "invalid_field", "custom_headers.Host")
        self.assert_error(serve.api("POST", "/v1/endpoints", {
            "url": url, "custom_headers": {"X-Bad": "a\r\nb"}}),
            400, "invalid_field", "custom_headers.X-Bad")
        self.assert_error(serve.api("POST", "/v1/endpoints", {"url": url, "custom_headers": 7}),
                          400, "invalid_field", "custom_headers")
        self.assertEqual(self.list_all(serve, "/v1/endpoints"), [])


class FirstDelayTest(HookdTestCase):

    def test_first_schedule_entry_is_waited_before_attempt_1(self):
        mock = self.start_mock()
        serve = self.start_serve(schedule="2s,1s")
        ep = self.create_endpoint(serve, mock.url + "/late", events=["late.test"])
        t0 = time.time()
        resp = self.ingest(serve, "late.test")
        dlv = resp["deliveries"][0]["id"]
        d = self.get_delivery(serve, dlv)
        created = parse_time(d["created_at"])
        self.assertEqual(d["status"], "pending", d)
        self.assertAlmostEqual(parse_time(d["next_attempt_at"]) - created, 2.0, delta=0.01)
        d = self.wait_delivery(serve, dlv, "succeeded", timeout=15)
        self.assertGreaterEqual(parse_time(d["attempts"][0]["at"]) - created, 1.99, d)
        recs = mock.records()
        self.assertEqual(len(recs), 1, recs)
        self.assertGreaterEqual(time.time() - t0, 1.9)
        self.assertEqual(ep["id"], d["endpoint_id"])

    def test_zero_first_delay_sends_at_once(self):
        mock = self.start_mock()
        serve = self.start_serve(schedule="0,1s")
        self.create_endpoint(serve, mock.url + "/now", events=["now.test"])
        dlv = self.ingest(serve, "now.test")["deliveries"][0]["id"]
        d = self.wait_delivery(serve, dlv, "succeeded")
        self.assertLess(parse_time(d["attempts"][0]["at"]) - parse_time(d["created_at"]), 1.5)


class LiteralAddressTest(HookdTestCase):

    BLOCKED = [("https://127.0.0.1/hook", "blocked 127.0.0.1: loopback"),
               ("https://[::1]/", "blocked ::1: loopback"),
               ("https://10.1.2.3:8443/x", "blocked 10.1.2.3: private network"),
               ("https://169.254.169.254/latest", "blocked 169.254.169.254: link-local"),
               ("http://2130706433/h", "blocked 127.0.0.1: loopback"),
               ("http://127.1:9/h", "blocked 127.0.0.1: loopback"),
               ("https://[::ffff:10.0.0.1]/", "private network")]

    def test_blocked_literal_is_refused_at_create_and_patch(self):
        serve = self.start_serve(allow_private=False)
        for url, why in self.BLOCKED:
            with self.subTest(url=url):
                err = self.assert_error(serve.api("POST", "/v1/endpoints", {"url": url}), 400,
                                        "invalid_field", "url")
                self.assertIn(why, err["message"])
                self.assertIn("--allow-private-networks", err["message"])
        self.assertEqual(self.list_all(serve, "/v1/endpoints"), [])
        # A public address and a host name are fine (a name is judged when it is dialled).
        ep = self.create_endpoint(serve, "https://93.184.216.34/hook")
        self.create_endpoint(serve, "https://hooks.example.com/hook")
        err = self.assert_error(serve.api("PATCH", "/v1/endpoints/" + ep["id"],
                                          {"url": "https://192.168.1.5/x"}),
                                400, "invalid_field", "url")
        self.assertIn("--allow-private-networks", err["message"])
        self.assertEqual(self.get_endpoint(serve, ep["id"])["url"], "https://93.184.216.34/hook")

    def test_the_flags_that_allow_them(self):
        serve = self.start_serve("--allow-cidr", "10.0.0.0/8", allow_private=False)
        self.create_endpoint(serve, "https://10.1.2.3:8443/x")
        self.assert_error(serve.api("POST", "/v1/endpoints", {"url": "https://127.0.0.1/"}),
                          400, "invalid_field", "url")
        serve2 = self.start_serve(db=os.path.join(self.tmp, "open.db"), allow_private=True)
        for url, _ in self.BLOCKED:
            self.create_endpoint(serve2, url)

    def test_blocked_attempt_log_says_why(self):
        # Saved while the flag was on; the server restarted without it: each attempt is blocked
        # and the log says which address, which rule and which flag.
        mock = self.start_mock()
        db = os.path.join(self.tmp, "hookd.db")
        first = self.start_serve(db=db, allow_private=True)
        self.create_endpoint(first, mock.url + "/private", events=["blocked.test"])
        self.stop_clean(first)
        serve = self.start_serve(db=db, allow_private=False, schedule="0")
        dlv = self.ingest(serve, "blocked.test")["deliveries"][0]["id"]
        d = self.wait_delivery(serve, dlv, "dead")
        self.assertEqual(d["attempts"][0]["error"]["code"], "blocked_destination", d)
        want = re.compile(r"delivery dead id=%s .*error=blocked_destination .*reason=\"blocked "
                          r"127\.0\.0\.1: loopback \(allow with --allow-private-networks" % dlv)
        self.wait_for(lambda: want.search(serve.stderr_text()), 10,
                      "the blocked attempt's log line")
        self.assertEqual(mock.records(), [])


class CheckDurationsTest(HookdTestCase):

    def test_check_prints_durations(self):
        res = self.run_hookd("serve", "--check", "--db", "sqlite:" + os.path.join(self.tmp, "c.db"),
                             "--api-key", "check-key-123456", "--retry-schedule", "0,90m,2h30m",
                             "--timeout", "1500ms", "--dlq-retention", "30d")
        self.assertEqual(res.returncode, 0, res.stderr)
        lines = dict(l.split(" = ", 1) for l in res.stdout.splitlines() if " = " in l)
        self.assertEqual(lines["retry-schedule"], "0,1h30m,2h30m", res.stdout)
        self.assertEqual(lines["timeout"], "1s500ms", res.stdout)
        self.assertEqual(lines["dlq-retention"], "30d", res.stdout)
        self.assertEqual(lines["api-request-timeout"], "1m", res.stdout)
        # Every printed duration reads back as one (what --check prints can be pasted).
        again = self.run_hookd("serve", "--check", "--db",
                               "sqlite:" + os.path.join(self.tmp, "c.db"), "--api-key",
                               "check-key-123456", "--retry-schedule", lines["retry-schedule"],
                               "--timeout", lines["timeout"])
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("retry-schedule = 0,1h30m,2h30m", again.stdout)


if __name__ == "__main__":
    unittest.main()
