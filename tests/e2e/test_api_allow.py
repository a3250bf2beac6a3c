"""--api-allow: API callers whose address is outside the list get 403 forbidden before their key
is looked at; callers inside it are served as usual. Loopback gives two distinct client addresses:
127.0.0.1 and 127.0.0.2 (Linux routes all of 127/8 to lo)."""

import unittest

from harness import HookdTestCase


class ApiAllowTest(HookdTestCase):

    def assert_forbidden(self, resp):
        err = self.assert_error(resp, 403, "forbidden")
        self.assertIn("--api-allow", err["message"])

    def test_outside_the_list_gets_403_before_auth(self):
        serve = self.start_serve("--api-allow", "127.0.0.1/32")
        # Inside: the API works, and a wrong key is still 401.
        st, body = serve.api("GET", "/v1/endpoints", source="127.0.0.1")
        self.assertEqual(st, 200, body)
        self.assert_error(serve.api("GET", "/v1/endpoints", key="wrong-key-123",
                                    source="127.0.0.1"), 401, "unauthorized")
        st, body = serve.api("POST", "/v1/events", {"event": "a.b", "data": {}},
                             source="127.0.0.1")
        self.assertEqual(st, 202, body)

        # Outside: 403 whatever the key (a right one, a wrong one, none), on every route.
        for key in (True, "wrong-key-123", None):
            with self.subTest(key=key):
                self.assert_forbidden(serve.api("GET", "/v1/endpoints", key=key,
                                                source="127.0.0.2"))
        self.assert_forbidden(serve.api("POST", "/v1/events",
                                        {"id": "from-outside", "event": "a.b", "data": {}},
                                        source="127.0.0.2"))
        self.assert_forbidden(serve.api("GET", "/healthz", key=None, source="127.0.0.2"))
        self.assert_forbidden(serve.api("GET", "/no/such/route", source="127.0.0.2"))

        # Nothing the refused caller sent was stored.
        self.assert_error(serve.api("GET", "/v1/events/from-outside", source="127.0.0.1"),
                          404, "not_found")
        self.stop_clean(serve)

    def test_a_list_of_networks(self):
        serve = self.start_serve("--api-allow", "10.0.0.0/8, 127.0.0.2, fd00::/8")
        st, body = serve.api("GET", "/v1/endpoints", source="127.0.0.2")
        self.assertEqual(st, 200, body)
        self.assert_forbidden(serve.api("GET", "/v1/endpoints", source="127.0.0.1"))
        self.assert_forbidden(serve.api("GET", "/v1/endpoints", source="127.0.0.3"))

    def test_a_whole_network(self):
        serve = self.start_serve("--api-allow", "127.0.0.0/30")
        for src in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            st, body = serve.api("GET", "/v1/endpoints", source=src)
            self.assertEqual(st, 200, (src, body))
        self.assert_forbidden(serve.api("GET", "/v1/endpoints", source="127.0.0.4"))

    def test_a_bad_list_is_refused_at_start(self):
        for bad in ("127.0.0.1/33", "not-an-address", "127.0.0.1,,10.0.0.0/8", "0177.0.0.1"):
            with self.subTest(value=bad):
                r = self.run_hookd("serve", "--listen", "127.0.0.1:0", "--api-key", "test-key",
                                   "--db", "sqlite:" + self.tmp + "/bad.db",
                                   "--api-allow", bad)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("--api-allow", r.stderr)


if __name__ == "__main__":
    unittest.main()
