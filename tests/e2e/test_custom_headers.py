"""Custom headers (issue 4): an endpoint's `headers` arrive with every delivery request, after
hookd's own; names hookd sets (each reserved family) and values with CR/LF are refused with 400
naming "headers.<Name>"."""

import json
import unittest

from harness import HookdTestCase, new_secret

# One or more names of each reserved family, in the case a user might write them.
RESERVED = ["webhook-id", "Webhook-Timestamp", "webhook-signature", "Webhook-Anything",
            "X-PixelPatrol-Event", "x-pixelpatrol-signature", "X-Pixelpatrol-Custom",
            "X-Webhook-Signature", "Content-Type", "content-length", "Host", "User-Agent",
            "Connection", "Transfer-Encoding"]


class CustomHeadersTest(HookdTestCase):

    def setUp(self):
        super().setUp()
        self.secret = new_secret()
        self.mock = self.start_mock(secret=self.secret)
        self.serve = self.start_serve()

    def test_custom_headers_arrive_with_every_request(self):
        serve, mock = self.serve, self.mock
        headers = {"X-Tenant": "acme", "Authorization": "Bearer rcv-token-1",
                   "X-Empty-ish": "a b\tc", "x-lower": "v"}
        ep = self.create_endpoint(serve, mock.url + "/h", secret=self.secret, headers=headers)
        self.assertEqual(ep["headers"], headers, ep)
        self.assertEqual(self.get_endpoint(serve, ep["id"])["headers"], headers)
        plain = self.create_endpoint(serve, mock.url + "/plain", secret=self.secret)
        self.assertEqual(plain["headers"], {}, plain)

        evs = self.ingest_many(serve, [{"event": "media.created", "data": {"i": i}}
                                       for i in range(3)])
        for e in evs:
            for d in e["deliveries"]:
                self.wait_delivery(serve, d["id"], "succeeded")
        recs = mock.records()
        self.assertEqual(len(recs), 6, [(r["path"], r["headers"].get("webhook-id")) for r in recs])
        for r in recs:
            h = r["headers"]
            # Adding headers does not disturb signing.
            self.assertIs(r["verified"], True, r)
            self.assert_verifies(r, self.secret)
            self.assertEqual(h["x-pixelpatrol-event"], "media.created")
            self.assertTrue(h["user-agent"].startswith("hookd/"), h)
            self.assertTrue(h["content-type"].startswith("application/json"), h)
            if r["path"] == "/h":
                self.assertEqual(h.get("x-tenant"), "acme", h)
                self.assertEqual(h.get("authorization"), "Bearer rcv-token-1", h)
                self.assertEqual(h.get("x-empty-ish"), "a b\tc", h)
                self.assertEqual(h.get("x-lower"), "v", h)
            else:
                for k in ("x-tenant", "authorization", "x-empty-ish", "x-lower"):
                    self.assertNotIn(k, h)

        # PATCH replaces them; the next delivery carries the new set only.
        status, got = serve.api("PATCH", "/v1/endpoints/" + ep["id"],
                                {"headers": {"X-Tenant": "globex"}})
        self.assertEqual(status, 200, got)
        self.assertEqual(got["headers"], {"X-Tenant": "globex"}, got)
        ev = self.ingest(serve, "media.created", {"after": "patch"})
        self.wait_delivery(serve, self.deliveries_to(ev, ep["id"])[0], "succeeded")
        r = [x for x in mock.records_for(ev["id"]) if x["path"] == "/h"]
        self.assertEqual(len(r), 1, r)
        self.assertEqual(r[0]["headers"].get("x-tenant"), "globex", r[0])
        self.assertNotIn("authorization", r[0]["headers"])
        self.assertEqual(json.loads(r[0]["body"])["data"], {"after": "patch"})

    def test_reserved_and_malformed_headers_are_refused(self):
        serve = self.serve
        url = self.mock.url + "/r"
        for name in RESERVED:
            with self.subTest(name=name):
                self.assert_error(serve.api("POST", "/v1/endpoints", {
                    "url": url, "headers": {"X-Fine": "1", name: "x"}}),
                    400, "invalid_field", "headers." + name)
        for value in ("a\r\nX-Injected: 1", "line\nbreak", "cr\ronly", "tab\u0001", "caf\u00e9"):
            with self.subTest(value=value):
                self.assert_error(serve.api("POST", "/v1/endpoints", {
                    "url": url, "headers": {"X-Bad": value}}),
                    400, "invalid_field", "headers.X-Bad")
        for name in ("X-Bad\r\nX-Injected", "X Space", "X:Colon", "", "X-\u00e9"):
            with self.subTest(name=name):
                err = self.assert_error(serve.api("POST", "/v1/endpoints", {
                    "url": url, "headers": {name: "v"}}),
                    400, "invalid_field", check_field=False)
                self.assertTrue(str(err["field"]).startswith("headers"), err)
        for value in (1, True, None, ["a"], {"a": "b"}):
            with self.subTest(value=value):
                self.assert_error(serve.api("POST", "/v1/endpoints", {
                    "url": url, "headers": {"X-Num": value}}),
                    400, "invalid_field", "headers.X-Num")
        # Size caps (32 headers, 64-byte names, 1024-byte values).
        self.assert_error(serve.api("POST", "/v1/endpoints", {
            "url": url, "headers": {"X-Long": "v" * 1025}}), 400, "invalid_field", "headers.X-Long")
        long_name = "X-" + "n" * 63
        self.assert_error(serve.api("POST", "/v1/endpoints", {
            "url": url, "headers": {long_name: "v"}}), 400, "invalid_field", "headers." + long_name)
        err = self.assert_error(serve.api("POST", "/v1/endpoints", {
            "url": url, "headers": {"X-H%d" % i: "v" for i in range(33)}}),
            400, "invalid_field", check_field=False)
        self.assertTrue(str(err["field"]).startswith("headers"), err)
        # The same name twice in different case.
        err = self.assert_error(serve.api("POST", "/v1/endpoints", {
            "url": url, "headers": {"X-Dup": "1", "x-dup": "2"}}),
            400, "invalid_field", check_field=False)
        self.assertTrue(str(err["field"]).startswith("headers"), err)
        self.assert_error(serve.api("POST", "/v1/endpoints", {"url": url, "headers": ["X-A: 1"]}),
                          400, "invalid_field", "headers")
        self.assertEqual(self.list_all(serve, "/v1/endpoints"), [])

        # At the limits it is accepted.
        ok = {"X-H%d" % i: "v" for i in range(31)}
        ok["X-" + "n" * 62] = "v" * 1024
        ep = self.create_endpoint(serve, url, headers=ok)
        self.assertEqual(ep["headers"], ok)
        # A PATCH with a reserved name is refused and changes nothing.
        self.assert_error(serve.api("PATCH", "/v1/endpoints/" + ep["id"], {
            "headers": {"Webhook-Signature": "v1,forged"}}),
            400, "invalid_field", "headers.Webhook-Signature")
        self.assertEqual(self.get_endpoint(serve, ep["id"])["headers"], ok)


if __name__ == "__main__":
    unittest.main()
