"""Per-attempt timing breakdown (issue 11): every attempt shows its phases (`timings`: dns,
connect, tls, ttfb and total, each phase's own duration in ms, null when it did not happen), the
address dialled (`remote_ip`) and whether a kept-alive connection carried it
(`connection_reused`), measured by libcurl in the real `hookd serve` against `hookd mock`."""

import json
import re
import shutil
import unittest

from harness import HookdTestCase, free_port
from test_tls import make_ca, make_server_cert

PHASES = ["dns_ms", "connect_ms", "tls_ms", "ttfb_ms", "total_ms"]
LATENCY_MS = 200  # the mock's wait before answering: all of it is in ttfb


class TimingsTest(HookdTestCase):

    serve_schedule = "0"  # one attempt: a failure is dead at once

    def attempt_of(self, d):
        self.assertEqual(len(d["attempts"]), 1, d)
        a = d["attempts"][0]
        self.assertEqual(sorted(a["timings"].keys()), sorted(PHASES), a)
        for k in PHASES:
            v = a["timings"][k]
            if v is not None:
                self.assertIsInstance(v, (int, float), a)
                self.assertGreaterEqual(v, 0, a)
        return a

    def deliver(self, serve, ep, event):
        resp = self.ingest(serve, event)
        dlv = resp["deliveries"][0]["id"]
        self.assertEqual(resp["deliveries"][0]["endpoint_id"], ep["id"], resp)
        return self.attempt_of(self.wait_delivery(serve, dlv, "succeeded"))

    def test_fresh_connection_then_reused_one(self):
        mock = self.start_mock("--latency", str(LATENCY_MS))
        # One sender: both deliveries go through the same connection cache.
        serve = self.start_serve("--senders", "1")
        ep = self.create_endpoint(serve, mock.url + "/t", events=["t.one"])

        first = self.deliver(serve, ep, "t.one")
        t = first["timings"]
        self.assertIs(first["connection_reused"], False, first)
        self.assertEqual(first["remote_ip"], "127.0.0.1", first)
        self.assertIsNone(t["dns_ms"], "an IP literal has no lookup: %r" % first)
        self.assertIsNotNone(t["connect_ms"], first)
        self.assertIsNone(t["tls_ms"], "plain http: %r" % first)
        self.assertGreaterEqual(t["ttfb_ms"], LATENCY_MS, first)
        self.assertGreaterEqual(t["total_ms"], t["connect_ms"] + t["ttfb_ms"], first)

        second = self.deliver(serve, ep, "t.one")
        t = second["timings"]
        self.assertIs(second["connection_reused"], True, second)
        self.assertEqual(second["remote_ip"], "127.0.0.1", second)
        self.assertIsNone(t["dns_ms"], second)
        self.assertIsNone(t["connect_ms"], "a reused connection was not connected: %r" % second)
        self.assertIsNone(t["tls_ms"], second)
        self.assertGreaterEqual(t["ttfb_ms"], LATENCY_MS, second)
        self.assertGreaterEqual(t["total_ms"], t["ttfb_ms"], second)

    def test_a_host_name_is_looked_up(self):
        mock = self.start_mock()
        serve = self.start_serve()
        port = mock.url.rsplit(":", 1)[1]
        d = self.deliver_one(serve, "http://localhost:" + port + "/name")
        self.assertEqual(d["status"], "succeeded", d)
        a = self.attempt_of(d)
        self.assertIsNotNone(a["timings"]["dns_ms"], a)
        self.assertIsNotNone(a["timings"]["connect_ms"], a)
        self.assertEqual(a["remote_ip"], "127.0.0.1", a)

    @unittest.skipUnless(shutil.which("openssl"), "needs the openssl command (scripts/install-deps)")
    def test_https_has_a_tls_phase(self):
        ca = make_ca(self.tmp, "ca")
        srv = make_server_cert(self.tmp, "server", ca)
        mock = self.start_mock("--tls-cert", srv[0], "--tls-key", srv[1])
        serve = self.start_serve("--ca-file", ca[0], allow_http=False)
        d = self.deliver_one(serve, mock.url + "/tls")
        self.assertEqual(d["status"], "succeeded", d)
        a = self.attempt_of(d)
        t = a["timings"]
        self.assertIsNotNone(t["tls_ms"], a)
        self.assertIsNotNone(t["connect_ms"], a)
        self.assertIsNotNone(t["ttfb_ms"], a)
        self.assertGreaterEqual(t["total_ms"], t["connect_ms"] + t["tls_ms"] + t["ttfb_ms"], a)
        self.assertIs(a["connection_reused"], False, a)

    def test_a_closed_port_has_an_address_but_no_answer(self):
        serve = self.start_serve()
        d = self.deliver_one(serve, "http://127.0.0.1:%d/closed" % free_port())
        self.assertEqual(d["status"], "dead", d)
        a = self.attempt_of(d)
        self.assertEqual(a["error"]["code"], "connection_refused", a)
        self.assertEqual(a["remote_ip"], "127.0.0.1", "the address dialled: %r" % a)
        t = a["timings"]
        self.assertIsNone(t["connect_ms"], a)
        self.assertIsNone(t["tls_ms"], a)
        self.assertIsNone(t["ttfb_ms"], a)
        self.assertIsNotNone(t["total_ms"], a)
        self.assertIs(a["connection_reused"], False, a)

    def test_an_address_the_guard_refuses_is_never_dialled(self):
        mock = self.start_mock()
        # By a name pinned to the mock: a literal 127.0.0.1 would be refused when saved.
        serve = self.start_serve("--resolve", "guarded.test:%d:127.0.0.1" % mock.port,
                                 allow_private=False)
        d = self.deliver_one(serve, "http://guarded.test:%d/guarded" % mock.port)
        self.assertEqual(d["status"], "dead", d)
        a = self.attempt_of(d)
        self.assertEqual(a["error"]["code"], "blocked_destination", a)
        self.assertIsNone(a["remote_ip"], a)
        # The name was looked up (dns_ms), then nothing was dialled.
        for k in ["connect_ms", "tls_ms", "ttfb_ms"]:
            self.assertIsNone(a["timings"][k], a)
        self.assertIsNotNone(a["timings"]["total_ms"], "the transfer ran: %r" % a)
        self.assertEqual(mock.records(), [])

    def test_batch_members_share_their_requests_timings(self):
        mock = self.start_mock()
        serve = self.start_serve()
        ep = self.create_endpoint(serve, mock.url + "/batch", events=["b.two"],
                                  batch={"max_events": 2, "max_wait_ms": 5000})
        resp = self.ingest_many(serve, [{"event": "b.two", "data": {"i": i}} for i in range(2)])
        ids = [e["deliveries"][0]["id"] for e in resp]
        ds = [self.wait_delivery(serve, i, "succeeded") for i in ids]
        self.assertEqual(ds[0]["batch_id"], ds[1]["batch_id"], ds)
        self.assertIsNotNone(ds[0]["batch_id"], ds)
        a, b = self.attempt_of(ds[0]), self.attempt_of(ds[1])
        self.assertIsNotNone(a["timings"]["ttfb_ms"], a)
        for k in ["timings", "remote_ip", "connection_reused"]:
            self.assertEqual(a[k], b[k], "one request, one measure: %r %r" % (a, b))
        self.assertEqual(ep["id"], ds[0]["endpoint_id"])

    def test_milliseconds_keep_microsecond_precision(self):
        mock = self.start_mock()
        serve = self.start_serve()
        d = self.deliver_one(serve, mock.url + "/precise")
        status, _, raw = serve.request("GET", "/v1/deliveries/" + d["id"])
        self.assertEqual(status, 200, raw)
        text = raw.decode()
        m = re.search(r'"timings":\s*(\{[^}]*\})', text)
        self.assertIsNotNone(m, text)
        numbers = re.findall(r'"(\w+_ms)":\s*(-?[0-9.eE+-]+)', m.group(1))
        self.assertIn("total_ms", [k for k, _ in numbers], m.group(1))
        for k, v in numbers:
            # At most three decimals (µs), written plainly, not 0.41199999999999998.
            self.assertRegex(v, r"^\d+(\.\d{1,3})?$", "%s in %s" % (k, m.group(1)))
        self.assertEqual(json.loads(m.group(1)), d["attempts"][0]["timings"])


if __name__ == "__main__":
    unittest.main()
