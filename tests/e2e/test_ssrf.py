"""The destination guard (issue 5, DESIGN §7): http:// is refused unless --allow-http; without
--allow-private-networks no delivery reaches a loopback, private, link-local, multicast or
reserved address in any spelling libcurl accepts (IPv6 forms, decimal, octal, hex, short forms,
localhost, a name pinned with --resolve), and each attempt says which address was blocked and
why; --allow-cidr opens one network; --source-address sets the address receivers see; and
--max-response-bytes bounds what is read of a response."""

import unittest

from harness import HookdTestCase

# (host part of the URL, substring of the attempt's message). The mock listens on 127.0.0.1, so
# a form that reaches 127.0.0.1 would be recorded if the guard let it through; the others would
# fail with a network error code instead of blocked_destination.
PRIVATE_FORMS = [
    ("127.0.0.1", "blocked 127.0.0.1: loopback"),
    ("127.0.0.2", "blocked 127.0.0.2: loopback"),
    ("10.0.0.1", "blocked 10.0.0.1: private network (RFC 1918)"),
    ("172.16.0.1", "blocked 172.16.0.1: private network (RFC 1918)"),
    ("192.168.1.1", "blocked 192.168.1.1: private network (RFC 1918)"),
    ("100.64.0.1", "blocked 100.64.0.1: shared address space (CGNAT"),
    ("169.254.169.254", "blocked 169.254.169.254: link-local (cloud metadata)"),
    ("0.0.0.0", "blocked 0.0.0.0: \"this network\""),
    ("224.0.0.1", "blocked 224.0.0.1: multicast"),
    ("240.0.0.1", "blocked 240.0.0.1: reserved"),
    ("255.255.255.255", "blocked 255.255.255.255: broadcast"),
    ("[::1]", "blocked ::1: loopback"),
    ("[::]", "blocked ::: unspecified"),
    ("[fc00::1]", "blocked fc00::1: unique local"),
    ("[fd12:3456::1]", "blocked fd12:3456::1: unique local"),
    ("[fe80::1]", "blocked fe80::1: link-local"),
    ("[ff02::1]", "blocked ff02::1: multicast"),
    ("[::ffff:127.0.0.1]", "blocked ::ffff:127.0.0.1: loopback in IPv4-mapped IPv6"),
    ("[::ffff:169.254.169.254]", "link-local (cloud metadata) in IPv4-mapped IPv6"),
    ("[::127.0.0.1]", "IPv4-compatible IPv6"),
    ("[64:ff9b::7f00:1]", "blocked 64:ff9b::7f00:1: loopback in NAT64"),
    ("[2002:7f00:1::1]", "blocked 2002:7f00:1::1: loopback in 6to4"),
    ("[2001::1]", "blocked 2001::1: Teredo"),
    # Numeric spellings libcurl turns into 127.0.0.1 (the guard sees the address dialled).
    ("2130706433", "blocked 127.0.0.1: loopback"),
    ("0177.0.0.1", "blocked 127.0.0.1: loopback"),
    ("0x7f.0.0.1", "blocked 127.0.0.1: loopback"),
    ("0x7f000001", "blocked 127.0.0.1: loopback"),
    ("127.1", "blocked 127.0.0.1: loopback"),
    ("017700000001", "blocked 127.0.0.1: loopback"),
    # Names: localhost (::1 or 127.0.0.1, whichever curl tries first) and one pinned by --resolve.
    ("localhost", ": loopback"),
    ("pinned.test", "blocked 127.0.0.1: loopback"),
]


class SsrfTest(HookdTestCase):

    serve_schedule = "0"  # one attempt: a blocked delivery goes dead at once

    def endpoint_per_form(self, serve, port, forms):
        """One endpoint per host form, each on its own path; returns {endpoint id: form}."""
        out = {}
        for i, (host, want) in enumerate(forms):
            ep = self.create_endpoint(serve, "http://%s:%d/form-%d" % (host, port, i))
            out[ep["id"]] = (host, want)
        return out

    def test_http_endpoint_refused_without_allow_http(self):
        serve = self.start_serve(allow_http=False, allow_private=False)
        resp = serve.api("POST", "/v1/endpoints", {"url": "http://127.0.0.1:9/hook"})
        err = self.assert_error(resp, 400, "invalid_field", "url")
        self.assertIn("--allow-http", err["message"])
        # https:// is what the default accepts.
        self.create_endpoint(serve, "https://hooks.example.com/hook")

    def test_private_forms_never_reach_a_listener(self):
        # A URL at a literal blocked address is refused when it is saved (test_strict_api.py);
        # these were saved while --allow-private-networks was on, and are still blocked on every
        # dial once it is off.
        mock = self.start_mock()
        db = self.tmp + "/hookd.db"
        saving = self.start_serve(db=db, allow_private=True)
        eps = self.endpoint_per_form(saving, mock.port, PRIVATE_FORMS)
        self.stop_clean(saving)
        serve = self.start_serve("--resolve", "pinned.test:%d:127.0.0.1" % mock.port, db=db,
                                 allow_private=False)
        for host, _ in PRIVATE_FORMS:
            if host not in ("localhost", "pinned.test"):
                self.assert_error(serve.api("POST", "/v1/endpoints", {
                    "url": "http://%s:%d/again" % (host, mock.port)}), 400, "invalid_field", "url")
        resp = self.ingest(serve)
        self.assertEqual(len(resp["deliveries"]), len(PRIVATE_FORMS), resp)
        for ref in resp["deliveries"]:
            host, want = eps[ref["endpoint_id"]]
            d = self.wait_delivery(serve, ref["id"], "dead")
            self.assertEqual(len(d["attempts"]), 1, (host, d))
            a = d["attempts"][0]
            self.assertIsNone(a["status"], (host, a))
            self.assertEqual(a["error"]["code"], "blocked_destination", (host, a))
            self.assertIn(want, a["error"]["message"], host)
            self.assertIn("--allow-private-networks or --allow-cidr", a["error"]["message"])
        self.assertEqual(mock.records(), [], "a blocked delivery reached the mock")
        self.assertEqual(mock.request_lines(), [])

    def test_allow_cidr_lets_one_network_through(self):
        mock = self.start_mock()
        # 127.0.0.2 by a name: the literal address would be refused when saved.
        serve = self.start_serve("--allow-cidr", "127.0.0.1/32", "--resolve",
                                 "other.test:%d:127.0.0.2" % mock.port, allow_private=False)
        ok = self.create_endpoint(serve, mock.url + "/ok")
        other = self.create_endpoint(serve, "http://other.test:%d/other" % mock.port)
        resp = self.ingest(serve)
        dlv = {x["endpoint_id"]: x["id"] for x in resp["deliveries"]}
        self.wait_delivery(serve, dlv[ok["id"]], "succeeded")
        d = self.wait_delivery(serve, dlv[other["id"]], "dead")
        self.assertEqual(d["attempts"][0]["error"]["code"], "blocked_destination", d)
        self.assertIn("blocked 127.0.0.2: loopback", d["attempts"][0]["error"]["message"])
        paths = [r["path"] for r in mock.records()]
        self.assertEqual(paths, ["/ok"])

    def test_allow_private_networks_lets_everything_through(self):
        mock = self.start_mock()
        serve = self.start_serve(allow_private=True)
        ep = self.create_endpoint(serve, "http://127.1:%d/short" % mock.port)
        resp = self.ingest(serve)
        self.wait_delivery(serve, resp["deliveries"][0]["id"], "succeeded")
        self.assertEqual([r["path"] for r in mock.records()], ["/short"], ep)

    def test_proxy_environment_is_ignored(self):
        # A proxy from the environment would make the guard judge the proxy's address and let
        # the proxy reach anything: hookd connects to the receiver directly.
        mock = self.start_mock(name="receiver")
        proxy = self.start_mock(name="proxy")
        env = {k: proxy.url for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                                      "all_proxy", "ALL_PROXY")}
        serve = self.start_serve("--allow-cidr", "127.0.0.1", allow_private=False, env=env)
        self.create_endpoint(serve, mock.url + "/direct")
        resp = self.ingest(serve)
        self.wait_delivery(serve, resp["deliveries"][0]["id"], "succeeded")
        self.assertEqual([r["path"] for r in mock.records()], ["/direct"])
        self.assertEqual(proxy.records(), [])

    def test_bad_flag_values_are_refused_at_start(self):
        for flag, value, says in [("--allow-cidr", "10.0.0.0/33", "10.0.0.0/33"),
                                  ("--allow-cidr", "0177.0.0.1", "0177.0.0.1"),
                                  ("--source-address", "localhost", "localhost"),
                                  ("--resolve", "pinned.test:80", "pinned.test:80"),
                                  ("--resolve", "h:80:127.1", "h:80:127.1"),
                                  ("--source-address", "192.0.2.77", "cannot bind")]:
            r = self.run_hookd("serve", "--listen", "127.0.0.1:0", "--api-key",
                               "test-key-1234", "--db", "sqlite:" + self.tmp + "/bad.db",
                               flag, value)
            self.assertNotEqual(r.returncode, 0, (flag, value))
            self.assertIn(says, r.stderr, (flag, value, r.stderr))

    def test_source_address_is_what_the_receiver_sees(self):
        mock = self.start_mock()
        serve = self.start_serve("--source-address", "127.0.0.2")
        ep = self.create_endpoint(serve, mock.url + "/src")
        resp = self.ingest(serve)
        self.wait_delivery(serve, resp["deliveries"][0]["id"], "succeeded")
        recs = mock.records()
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0]["remote_addr"], "127.0.0.2", (ep, recs))
        # Without the flag the kernel picks 127.0.0.1 for a loopback destination.
        serve2 = self.start_serve(db=self.tmp + "/other.db")
        self.create_endpoint(serve2, mock.url + "/default")
        resp = self.ingest(serve2)
        self.wait_delivery(serve2, resp["deliveries"][0]["id"], "succeeded")
        rec = [r for r in mock.records() if r["path"] == "/default"]
        self.assertEqual(rec[0]["remote_addr"], "127.0.0.1", rec)


class ResponseLimitTest(HookdTestCase):
    """--max-response-bytes: hookd reads at most that many bytes of a response body, keeps the
    first 4096 of them, and stops reading there; the status line decides the outcome."""

    serve_schedule = "0"

    def test_at_and_just_past_the_limit(self):
        limit = 100
        bodies = {"/at": b"a" * limit, "/past": b"b" * (limit + 1),
                  "/past500": b"c" * (limit + 1), "/at500": b"d" * limit}

        def respond(req):
            status = 500 if req["path"].endswith("500") else 200
            return status, {"Content-Type": "text/plain"}, bodies[req["path"]]
        rcv = self.start_receiver(respond)
        serve = self.start_serve("--max-response-bytes", str(limit))
        at = self.deliver_one(serve, rcv.url + "/at")
        self.assertEqual(at["status"], "succeeded", at)
        self.assertEqual(at["attempts"][0]["response_body"], "a" * limit)
        past = self.deliver_one(serve, rcv.url + "/past")
        # The status decides: a 2xx with a long body is a success; the rest is not read.
        self.assertEqual(past["status"], "succeeded", past)
        self.assertEqual(past["attempts"][0]["status"], 200)
        self.assertEqual(past["attempts"][0]["response_body"], "b" * limit)
        at500 = self.deliver_one(serve, rcv.url + "/at500")
        a = at500["attempts"][0]
        self.assertEqual((a["status"], a["error"]["code"], a["error"]["message"]),
                         (500, "http_status", "HTTP 500"), a)
        self.assertEqual(a["response_body"], "d" * limit)
        past500 = self.deliver_one(serve, rcv.url + "/past500")
        a = past500["attempts"][0]
        self.assertEqual((a["status"], a["error"]["code"]), (500, "http_status"), a)
        self.assertIn("--max-response-bytes %d" % limit, a["error"]["message"])
        self.assertEqual(a["response_body"], "c" * limit)

    def test_default_limit_is_64k(self):
        bodies = {"/fits": b"y" * 65536, "/big": b"x" * (65536 + 1)}
        rcv = self.start_receiver(lambda req: (500, {}, bodies[req["path"]]))
        serve = self.start_serve()
        fits = self.deliver_one(serve, rcv.url + "/fits")["attempts"][0]
        self.assertEqual(fits["error"]["message"], "HTTP 500", fits)
        self.assertEqual(fits["response_body"], "y" * 4096)
        big = self.deliver_one(serve, rcv.url + "/big")["attempts"][0]
        self.assertIn("--max-response-bytes 65536", big["error"]["message"], big)
        self.assertEqual(big["response_body"], "x" * 4096)

if __name__ == "__main__":
    unittest.main()
