"""Every request limit at its boundary (accepted) and just past it (the right 4xx and a JSON error
naming the limit's flag): --max-body, --max-json-depth, --max-headers, --max-header-bytes,
--max-url, --max-endpoints, --max-custom-headers, and --ingest-rate (429 with Retry-After).
Header and URL sizes are exact because those requests are written byte by byte on a socket."""

import json
import re
import socket
import time
import unittest

from harness import API_KEY, HookdTestCase


def raw_request(serve, method, target, headers, body=b"", timeout=30):
    """Sends exactly this request (headers: list of (name, value)) and reads the answer until
    the server closes or the body is complete. Returns (status, headers dict, body bytes)."""
    head = "%s %s HTTP/1.1\r\n" % (method, target)
    head += "".join("%s: %s\r\n" % hv for hv in headers) + "\r\n"
    with socket.create_connection((serve.host, serve.port), timeout=timeout) as s:
        s.sendall(head.encode() + body)
        data = b""
        while True:
            if b"\r\n\r\n" in data:
                top, rest = data.split(b"\r\n\r\n", 1)
                m = re.search(rb"(?im)^content-length:\s*(\d+)", top)
                if m and len(rest) >= int(m.group(1)):
                    break
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    top, _, rest = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, rest


def padded_headers(count, total_bytes, key=API_KEY):
    """count header fields whose names and values add up to exactly total_bytes."""
    hdrs = [("Host", "x"), ("Authorization", "Bearer " + key)]
    pads = count - len(hdrs)
    left = total_bytes - sum(len(k) + len(v) for k, v in hdrs)
    for i in range(pads):
        name = "X-Pad-%03d" % i
        n = left // (pads - i)
        assert n >= len(name), "not enough bytes for %d fields" % count
        hdrs.append((name, "v" * (n - len(name))))
        left -= n
    assert left == 0 and len(hdrs) == count
    return hdrs


class LimitsTest(HookdTestCase):

    def assert_limit_error(self, status, body, want_status, code, flag):
        self.assertEqual(status, want_status, body)
        err = json.loads(body)["error"]
        self.assertEqual(err["code"], code, err)
        self.assertIn(flag, err["message"])
        return err

    def test_max_body(self):
        serve = self.start_serve("--max-body", "1024")

        def body_of(size):
            base = '{"event":"a.b","data":{"s":""}}'
            return base.replace('""', '"%s"' % ("x" * (size - len(base))))
        ct = {"Content-Type": "application/json"}
        st, _, raw = serve.request("POST", "/v1/events", body_of(1024), ct)
        self.assertEqual(st, 202, raw)
        st, _, raw = serve.request("POST", "/v1/events", body_of(1025), ct)
        self.assert_limit_error(st, raw, 413, "payload_too_large", "--max-body")

    def test_max_json_depth(self):
        serve = self.start_serve("--max-json-depth", "5")
        ct = {"Content-Type": "application/json"}

        def nest(levels, leaf="1"):
            return '{"k":' * levels + leaf + "}" * levels

        # depth 5: the body, data, then three more objects. A plain body takes the fast path;
        # a 19-digit integer sends the same shape through the full path (jansson).
        for leaf in ("1", "1234567890123456789"):
            with self.subTest(leaf=leaf):
                at = '{"event":"a.b","data":%s}' % nest(4, leaf)
                past = '{"event":"a.b","data":%s}' % nest(5, leaf)
                st, _, raw = serve.request("POST", "/v1/events", at, ct)
                self.assertEqual(st, 202, raw)
                st, _, raw = serve.request("POST", "/v1/events", past, ct)
                err = self.assert_limit_error(st, raw, 400, "invalid_json", "--max-json-depth")
                self.assertIn("5", err["message"])
        # A batch: the body, "events", the event and data are four levels.
        at = '{"events":[{"event":"a.b","data":%s}]}' % nest(2)
        past = '{"events":[{"event":"a.b","data":%s}]}' % nest(3)
        st, _, raw = serve.request("POST", "/v1/events", at, ct)
        self.assertEqual(st, 202, raw)
        st, _, raw = serve.request("POST", "/v1/events", past, ct)
        self.assert_limit_error(st, raw, 400, "invalid_json", "--max-json-depth")
        # Every JSON body has the limit, not only events: arrays count as levels too.
        deep = {"url": "http://127.0.0.1:9/x", "filters": {"a": {"in": [[[[1]]]]}}}
        st, _, raw = serve.request("POST", "/v1/endpoints", json.dumps(deep), ct)
        self.assert_limit_error(st, raw, 400, "invalid_json", "--max-json-depth")
        # Brackets inside strings are not nesting.
        st, _, raw = serve.request("POST", "/v1/events",
                                   '{"event":"a.b","data":{"s":"[[[[{{{{"}}', ct)
        self.assertEqual(st, 202, raw)

    def test_max_headers_and_header_bytes(self):
        serve = self.start_serve("--max-headers", "10", "--max-header-bytes", "2048")
        st, _, raw = raw_request(serve, "GET", "/v1/endpoints", padded_headers(10, 1500))
        self.assertEqual(st, 200, raw)
        st, _, raw = raw_request(serve, "GET", "/v1/endpoints", padded_headers(11, 1500))
        err = self.assert_limit_error(st, raw, 431, "headers_too_large", "--max-headers")
        self.assertIn("10", err["message"])

        st, _, raw = raw_request(serve, "GET", "/v1/endpoints", padded_headers(5, 2048))
        self.assertEqual(st, 200, raw)
        st, _, raw = raw_request(serve, "GET", "/v1/endpoints", padded_headers(5, 2049))
        err = self.assert_limit_error(st, raw, 431, "headers_too_large", "--max-header-bytes")
        self.assertIn("2048", err["message"])
        # Checked before the key: a caller without one learns the same.
        hdrs = [h for h in padded_headers(5, 2049) if h[0] != "Authorization"]
        hdrs.append(("X-Pad-End", "v" * (2049 - sum(len(k) + len(v) for k, v in hdrs) - 9)))
        st, _, raw = raw_request(serve, "GET", "/v1/endpoints", hdrs)
        self.assert_limit_error(st, raw, 431, "headers_too_large", "--max-header-bytes")

    def test_huge_header_gets_a_clean_error(self):
        """Far past the limits, past what the server reads into memory: libmicrohttpd answers
        431 itself and closes the connection; no hang, and the server goes on serving."""
        serve = self.start_serve()
        started = time.monotonic()
        st, hdrs, _ = raw_request(serve, "GET", "/v1/endpoints",
                                  [("Host", "x"), ("Authorization", "Bearer " + API_KEY),
                                   ("X-Huge", "h" * (1 << 20))], timeout=20)
        self.assertEqual(st, 431)
        self.assertLess(time.monotonic() - started, 20)
        st, _, raw = raw_request(serve, "GET", "/" + "u" * 200000, [("Host", "x")], timeout=20)
        self.assertIn(st, (414, 431), raw[:200])
        st, body = serve.api("GET", "/v1/endpoints")
        self.assertEqual(st, 200, body)

    def test_max_url(self):
        serve = self.start_serve("--max-url", "300")
        hdrs = [("Host", "x"), ("Authorization", "Bearer " + API_KEY)]

        def target(size):
            t = "/v1/endpoints?limit=5&pad="
            return t + "p" * (size - len(t))
        # At the limit the request reaches its route, which refuses the unknown parameter
        # "pad" (a 400 naming it, not a 414); one byte more is a 414.
        st, _, raw = raw_request(serve, "GET", target(300), hdrs)
        self.assertEqual((st, json.loads(raw)["error"]["field"]), (400, "pad"), raw)
        st, _, raw = raw_request(serve, "GET", target(301), hdrs)
        err = self.assert_limit_error(st, raw, 414, "url_too_long", "--max-url")
        self.assertIn("300", err["message"])
        # The raw target counts, percent-encoding included.
        t = "/healthz?pad=" + "%41" * 90
        t += "p" * (300 - len(t))
        st, _, raw = raw_request(serve, "GET", t, hdrs)
        self.assertEqual((st, json.loads(raw)["error"]["field"]), (400, "pad"), raw)
        st, _, raw = raw_request(serve, "GET", t + "p", hdrs)
        self.assert_limit_error(st, raw, 414, "url_too_long", "--max-url")

    def test_max_endpoints(self):
        serve = self.start_serve("--max-endpoints", "2")
        url = "http://127.0.0.1:9/hook"
        a = self.create_endpoint(serve, url)
        self.create_endpoint(serve, url)
        st, body = serve.api("POST", "/v1/endpoints", {"url": url})
        err = self.assert_error((st, body), 409, "limit_reached")
        self.assertIn("--max-endpoints", err["message"])
        self.assertIn("2", err["message"])
        self.assertEqual(len(self.list_all(serve, "/v1/endpoints")), 2)
        st, _ = serve.api("DELETE", "/v1/endpoints/" + a["id"])
        self.assertEqual(st, 204)
        self.create_endpoint(serve, url)
        self.assert_error(serve.api("POST", "/v1/endpoints", {"url": url}), 409,
                          "limit_reached")

    def test_max_custom_headers(self):
        serve = self.start_serve("--max-custom-headers", "2")
        url = "http://127.0.0.1:9/hook"
        two = {"X-A": "1", "X-B": "2"}
        three = dict(two, **{"X-C": "3"})
        ep = self.create_endpoint(serve, url, headers=two)
        self.assertEqual(ep["headers"], two)
        err = self.assert_error(serve.api("POST", "/v1/endpoints", {"url": url,
                                                                     "headers": three}),
                                400, "invalid_field", "headers")
        self.assertIn("--max-custom-headers", err["message"])
        self.assert_error(serve.api("PATCH", "/v1/endpoints/" + ep["id"], {"headers": three}),
                          400, "invalid_field", "headers")
        st, body = serve.api("PATCH", "/v1/endpoints/" + ep["id"], {"headers": {"X-Z": "9"}})
        self.assertEqual(st, 200, body)

    def test_ingest_rate(self):
        """--ingest-rate 1: each key's bucket holds one request and refills one a second.
        Whatever the machine's speed, n requests sent within t seconds can have at most
        1 + t accepted, so 20 quick ones must meet a 429."""
        other = "other-key-456"
        serve = self.start_serve("--ingest-rate", "1", "--api-key", other)
        ev = {"event": "a.b", "data": {}}
        statuses, retry = [], None
        started = time.monotonic()
        for _ in range(20):
            st, body, hdrs = serve.api_full("POST", "/v1/events", ev)
            statuses.append(st)
            if st == 429:
                self.assertEqual(body["error"]["code"], "rate_limited", body)
                self.assertIn("--ingest-rate", body["error"]["message"])
                self.assertIsNone(body["error"]["field"])
                self.assertRegex(hdrs.get("retry-after", ""), r"^[1-9][0-9]*$", hdrs)
                retry = int(hdrs["retry-after"])
            else:
                self.assertEqual(st, 202, body)
        elapsed = time.monotonic() - started
        self.assertEqual(statuses[0], 202)
        self.assertLessEqual(statuses.count(202), 1 + int(elapsed) + 1, statuses)
        self.assertIn(429, statuses)
        self.assertLessEqual(retry, 1)

        # Another key has its own bucket; other routes are not limited.
        st, body = serve.api("POST", "/v1/events", ev, key=other)
        self.assertEqual(st, 202, body)
        st, body = serve.api("GET", "/v1/endpoints")
        self.assertEqual(st, 200, body)
        # Retry-After is honest: after waiting it, the key is served again.
        time.sleep(retry)
        st, body = serve.api("POST", "/v1/events", ev)
        self.assertEqual(st, 202, body)

    def test_ingest_rate_with_a_stored_key(self):
        db = self.tmp + "/hookd.db"
        serve = self.start_serve("--ingest-rate", "1", db=db)
        r = self.run_hookd("key", "create", "--scope", "ingest", "--db", "sqlite:" + db)
        self.assertEqual(r.returncode, 0, r.stderr)
        key = re.search(r"^key:\s+(\S+)$", r.stdout, re.M).group(1)
        ev = {"event": "a.b", "data": {}}
        started = time.monotonic()
        statuses = [serve.api("POST", "/v1/events", ev, key=key)[0] for _ in range(20)]
        elapsed = time.monotonic() - started
        self.assertEqual(statuses[0], 202)
        self.assertIn(429, statuses)
        self.assertLessEqual(statuses.count(202), 1 + int(elapsed) + 1, statuses)
        self.assertEqual(set(statuses), {202, 429})


if __name__ == "__main__":
    unittest.main()
