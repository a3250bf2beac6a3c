"""Every error in the contract gets its status and JSON body {"error":{code,message,field}}, and
after all of them the events accepted earlier are still there and delivered. Also pagination."""

import json
import unittest
from urllib.parse import quote

from harness import HookdTestCase, new_secret, parse_time

MAX_BODY = 4096


class ApiErrorsTest(HookdTestCase):

    def test_every_bad_input_gets_its_error_and_earlier_events_stay(self):
        secret = new_secret()
        mock = self.start_mock(secret=secret)
        serve = self.start_serve("--max-body", str(MAX_BODY))
        ep = self.create_endpoint(serve, mock.url + "/ok", secret=secret)
        accepted = [self.ingest(serve, "media.created", {"i": i}) for i in range(3)]
        accepted.append(self.ingest(serve, "media.created", {"i": 3}, id="keep-me"))

        api = serve.api
        err = self.assert_error

        # -- 400 invalid_json ---------------------------------------------------------------
        for raw in (b"{", b"not json", b"", b"{\"event\":\"a\",}", b"\xff\xfe"):
            st, _, body = serve.request("POST", "/v1/events", raw,
                                        {"Content-Type": "application/json"})
            self.assertEqual(st, 400, (raw, body))
            e = json.loads(body)["error"]
            self.assertEqual(e["code"], "invalid_json", (raw, e))
            self.assertIsNone(e["field"], (raw, e))
        st, _, body = serve.request("POST", "/v1/endpoints", b"[1,2",
                                    {"Content-Type": "application/json"})
        self.assertEqual(json.loads(body)["error"]["code"], "invalid_json")
        self.assertEqual(st, 400)

        # -- 400 invalid_field: endpoints ---------------------------------------------------
        good_url = mock.url + "/x"
        cases = [
            ({}, "url"),
            ({"url": 5}, "url"),
            ({"url": "not a url"}, "url"),
            ({"url": "ftp://example.com/x"}, "url"),
            ({"url": "https://example.com/" + "a" * 2048}, "url"),
            ({"url": good_url, "description": 5}, "description"),
            ({"url": good_url, "description": "d" * 1025}, "description"),
            ({"url": good_url, "events": []}, "events"),
            ({"url": good_url, "events": "media.created"}, "events"),
            ({"url": good_url, "events": ["media.created", 5]}, "events[1]"),
            ({"url": good_url, "events": ["ok", "bad type!"]}, "events[1]"),
            ({"url": good_url, "events": ["e%d" % i for i in range(257)]}, "events"),
            ({"url": good_url, "secret": "nope"}, "secret"),
            ({"url": good_url, "secret": "whsec_" + "QUJD"}, "secret"),  # 3 bytes: too short
            ({"url": good_url, "secret": 7}, "secret"),
            ({"url": good_url, "enabled": "yes"}, "enabled"),
            ({"url": good_url, "bogus": 1}, "bogus"),
        ]
        for body, field in cases:
            with self.subTest(endpoint=str(body)[:80]):
                err(api("POST", "/v1/endpoints", body), 400, "invalid_field", field)
        st, one = api("POST", "/v1/endpoints", ["url"])
        self.assertEqual(st, 400, one)
        self.assertIn(one["error"]["code"], ("invalid_field", "invalid_json"), one)
        for body, field in [({"url": 5}, "url"), ({"enabled": 1}, "enabled"),
                            ({"events": []}, "events"), ({"bogus": True}, "bogus"),
                            ({"secret": "whsec_!!"}, "secret")]:
            with self.subTest(patch=str(body)):
                err(api("PATCH", "/v1/endpoints/" + ep["id"], body), 400, "invalid_field", field)

        # -- 400 invalid_field: events ------------------------------------------------------
        ev_cases = [
            ({"data": {}}, "event"),
            ({"event": 5, "data": {}}, "event"),
            ({"event": "", "data": {}}, "event"),
            ({"event": "has space", "data": {}}, "event"),
            ({"event": "x" * 129, "data": {}}, "event"),
            ({"event": "delivery.dead_lettered", "data": {}}, "event"),
            ({"event": "delivery.anything", "data": {}}, "event"),
            ({"event": "endpoint.created", "data": {}}, "event"),
            ({"event": "media.created", "data": "str"}, "data"),
            ({"event": "media.created", "data": [1]}, "data"),
            ({"event": "media.created", "data": {}, "id": "bad id!"}, "id"),
            ({"event": "media.created", "data": {}, "id": ""}, "id"),
            ({"event": "media.created", "data": {}, "id": "a" * 65}, "id"),
            ({"event": "media.created", "data": {}, "id": 12}, "id"),
            ({"event": "media.created", "data": {}, "extra": 1}, "extra"),
            ({"events": []}, "events"),
            ({"events": "x"}, "events"),
            ({"events": [{"event": "ok", "data": {}}, 5]}, "events[1]"),
            ({"events": [{"event": "ok", "data": {}}, {"event": "ok", "data": {}},
                         {"event": "bad type!", "data": {}}]}, "events[2].event"),
            ({"events": [{"event": "ok", "data": 1}]}, "events[0].data"),
            ({"events": [{"event": "ok", "data": {}, "id": "no/slash"}]}, "events[0].id"),
            ({"events": [{"event": "ok", "data": {}, "zzz": 1}]}, "events[0].zzz"),
        ]
        for body, field in ev_cases:
            with self.subTest(event=str(body)[:80]):
                err(api("POST", "/v1/events", body), 400, "invalid_field", field)
        # A batch over 1000 events (small enough to fit under a larger --max-body, so it is the
        # count that is refused): checked on a second server below. Idempotency-Key limits:
        for key in ("k" * 256, "cl\u00e9"):
            st, _, body = serve.request("POST", "/v1/events",
                                        json.dumps({"event": "a", "data": {}}),
                                        {"Content-Type": "application/json",
                                         "Idempotency-Key": key})
            self.assertEqual(st, 400, body)
            self.assertEqual(json.loads(body)["error"]["code"], "invalid_field")
        # A rejected batch stores nothing, not even its valid events.
        err(api("POST", "/v1/events", {"events": [
            {"id": "batch-ok-0", "event": "ok", "data": {}},
            {"id": "batch-bad-1", "event": "delivery.x", "data": {}}]}),
            400, "invalid_field", "events[1].event")
        err(api("GET", "/v1/events/batch-ok-0"), 404, "not_found", check_field=False)

        # -- 401 ----------------------------------------------------------------------------
        for key in (False, "wrong-key", "test-key-but-longer", "test-ke"):
            with self.subTest(key=key):
                err(api("GET", "/v1/endpoints", key=key), 401, "unauthorized", check_field=False)
                err(api("POST", "/v1/events", {"event": "a", "data": {}}, key=key), 401,
                    "unauthorized", check_field=False)
        for auth in ("Basic dGVzdC1rZXk6", "Bearer", "Bearer ", "test-key", "Bearer wrong test-key"):
            with self.subTest(auth=auth):
                st, _, body = serve.request("GET", "/v1/endpoints", key=False,
                                            headers={"Authorization": auth})
                self.assertEqual(st, 401, (auth, body))
                self.assertEqual(json.loads(body)["error"]["code"], "unauthorized")
        st, health = api("GET", "/healthz", key=False)
        self.assertEqual((st, health), (200, {"status": "ok", "store": "ok"}))

        # -- 404 ----------------------------------------------------------------------------
        for method, path in [("GET", "/v1/endpoints/ep_nope"), ("PATCH", "/v1/endpoints/ep_nope"),
                             ("DELETE", "/v1/endpoints/ep_nope"), ("GET", "/v1/events/evt_nope"),
                             ("GET", "/v1/deliveries/dlv_nope"), ("GET", "/v1/nothing"),
                             ("GET", "/nothing"), ("POST", "/v1/dlq/dlv_nope/retry"),
                             ("GET", "/v1/endpoints/" + ep["id"] + "/extra")]:
            with self.subTest(path=path, method=method):
                body = {"enabled": True} if method == "PATCH" else None
                err(api(method, path, body), 404, "not_found", check_field=False)

        # -- 405 with Allow -----------------------------------------------------------------
        for method, path, allowed in [
                ("DELETE", "/v1/events", {"POST"}),
                ("PUT", "/v1/endpoints", {"GET", "POST"}),
                ("PUT", "/v1/endpoints/" + ep["id"], {"GET", "PATCH", "DELETE"}),
                ("POST", "/v1/deliveries", {"GET"}),
                ("DELETE", "/v1/dlq", {"GET"}),
                ("GET", "/v1/dlq/retry", {"POST"}),
                ("POST", "/healthz", {"GET"})]:
            with self.subTest(method=method, path=path):
                st, body, headers = serve.api_full(method, path)
                err((st, body), 405, "method_not_allowed", check_field=False)
                self.assertIn("allow", headers, headers)
                got = {m.strip() for m in headers["allow"].split(",")}
                self.assertTrue(allowed <= got, (allowed, headers["allow"]))

        # -- 413 over --max-body ------------------------------------------------------------
        big = {"event": "media.created", "data": {"blob": "x" * (MAX_BODY + 10)}}
        err(api("POST", "/v1/events", big), 413, "payload_too_large", check_field=False)
        err(api("POST", "/v1/endpoints", {"url": good_url, "description": "d" * MAX_BODY}),
            413, "payload_too_large", check_field=False)
        fits = {"event": "media.created", "data": {"blob": "y" * (MAX_BODY - 100)}}
        self.assertLessEqual(len(json.dumps(fits)), MAX_BODY)
        st, fits_resp = api("POST", "/v1/events", fits)
        self.assertEqual(st, 202, fits_resp)
        accepted.append(fits_resp)

        # -- 415 ----------------------------------------------------------------------------
        payload = json.dumps({"event": "media.created", "data": {}})
        for ctype in ("text/plain", "application/x-www-form-urlencoded", None,
                      "application/jsonx"):
            with self.subTest(content_type=ctype):
                h = {"Content-Type": ctype} if ctype else {}
                st, _, body = serve.request("POST", "/v1/events", payload, h)
                self.assertEqual(st, 415, (ctype, body))
                e = json.loads(body)["error"]
                self.assertEqual(e["code"], "unsupported_media_type")
        st, _, body = serve.request("PATCH", "/v1/endpoints/" + ep["id"], '{"enabled":true}',
                                    {"Content-Type": "text/plain"})
        self.assertEqual(st, 415, body)
        st, _, body = serve.request("POST", "/v1/events", payload,
                                    {"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(st, 202, body)
        accepted.append(json.loads(body))

        # -- bad list parameters ------------------------------------------------------------
        for path, field in [("/v1/endpoints?limit=0", "limit"),
                            ("/v1/endpoints?limit=1001", "limit"),
                            ("/v1/endpoints?limit=abc", "limit"),
                            ("/v1/endpoints?limit=-1", "limit"),
                            ("/v1/deliveries?limit=5x", "limit"),
                            ("/v1/dlq?limit=100000", "limit"),
                            ("/v1/endpoints?cursor=" + quote("!!not a cursor!!"), "cursor"),
                            ("/v1/deliveries?cursor=zzzz", "cursor"),
                            ("/v1/deliveries?status=bogus", "status"),
                            ("/v1/deliveries?status=DEAD", "status")]:
            with self.subTest(path=path):
                err(api("GET", path), 400, "invalid_field", field)
        st, page = api("GET", "/v1/endpoints?limit=1000")
        self.assertEqual(st, 200, page)

        # -- http:// refused without --allow-http -------------------------------------------
        strict = self.start_serve(allow_http=False, db=self.tmp + "/strict.db")
        # A batch of 1001 events is refused by count (the body limit here is the default 1 MiB).
        batch = [{"event": "a", "data": {}} for _ in range(1001)]
        err(strict.api("POST", "/v1/events", {"events": batch}), 400, "invalid_field", "events")
        st, ok = strict.api("POST", "/v1/events", {"events": batch[:1000]})
        self.assertEqual(st, 202, ok)
        self.assertEqual(len(ok["events"]), 1000)
        err(strict.api("POST", "/v1/endpoints", {"url": "http://example.com/hook"}), 400,
            "invalid_field", "url")
        # (disabled: nothing is ever sent to example.com)
        st, https_ep = strict.api("POST", "/v1/endpoints", {"url": "https://example.com/hook",
                                                            "enabled": False})
        self.assertEqual(st, 201, https_ep)
        err(strict.api("PATCH", "/v1/endpoints/" + https_ep["id"],
                       {"url": "http://example.com/hook"}), 400, "invalid_field", "url")
        self.stop_clean(strict)

        # -- after all of it: everything accepted is still there and delivered --------------
        self.assertEqual(len(accepted), 6)
        for ev in accepted:
            self.assertEqual(len(ev["deliveries"]), 1, ev)
            self.wait_delivery(serve, ev["deliveries"][0]["id"], "succeeded")
            st, got = api("GET", "/v1/events/" + ev["id"])
            self.assertEqual(st, 200, got)
            self.assertEqual(got["created_at"], ev["created_at"])
            self.assertEqual(len(mock.records_for(ev["id"])), 1, ev["id"])
        self.assertEqual(len(mock.records()), len(accepted),
                         "a rejected request must not have been delivered")
        st, got = api("GET", "/v1/events/keep-me")
        self.assertEqual((st, got["data"]), (200, {"i": 3}))
        st, health = api("GET", "/healthz", key=False)
        self.assertEqual((st, health), (200, {"status": "ok", "store": "ok"}))

    def test_pagination_newest_first_and_endpoint_lifecycle(self):
        serve = self.start_serve()
        created = []
        for i in range(7):
            # Disabled: their deliveries are created and wait; nothing is sent anywhere.
            created.append(self.create_endpoint(serve, "https://example.com/h%d" % i,
                                                description="n%d" % i, enabled=False))
        ids = [e["id"] for e in created]
        self.assertEqual(len(set(ids)), 7)
        # Walk with limit=3: pages of 3, 3, 1; newest first; no secret in lists.
        seen = []
        cursor = None
        pages = 0
        while True:
            path = "/v1/endpoints?limit=3" + ("&cursor=" + quote(cursor, safe="") if cursor
                                              else "")
            st, page = serve.api("GET", path)
            self.assertEqual(st, 200, page)
            self.assertEqual(set(page.keys()), {"data", "next_cursor"})
            pages += 1
            for x in page["data"]:
                self.assertNotIn("secret", x)
            seen += [x["id"] for x in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            self.assertIsInstance(cursor, str)
            self.assertLess(pages, 10)
        self.assertEqual(sorted(seen), sorted(ids), "each endpoint exactly once")
        self.assertIn(pages, (3, 4))
        by_id = {e["id"]: parse_time(e["created_at"]) for e in created}
        times = [by_id[i] for i in seen]
        self.assertEqual(times, sorted(times, reverse=True), "newest first")
        self.assertEqual(seen[0], ids[-1] if times[0] > times[1] else seen[0])
        st, page = serve.api("GET", "/v1/endpoints")
        self.assertEqual(len(page["data"]), 7)
        self.assertIsNone(page["next_cursor"])

        # PATCH changes only what is given; the secret can be replaced.
        target = created[2]
        new = new_secret(32)
        st, ep = serve.api("PATCH", "/v1/endpoints/" + target["id"],
                           {"description": "changed", "events": ["a.b", "c"], "secret": new})
        self.assertEqual(st, 200, ep)
        self.assertEqual(ep["description"], "changed")
        self.assertEqual(ep["events"], ["a.b", "c"])
        self.assertEqual(ep["secret"], new)
        self.assertEqual(ep["url"], target["url"])
        self.assertEqual(ep["created_at"], target["created_at"])
        self.assertGreaterEqual(parse_time(ep["updated_at"]), parse_time(target["updated_at"]))
        st, got = serve.api("GET", "/v1/endpoints/" + target["id"])
        self.assertEqual((st, got), (200, ep))
        # A generated secret is whsec_ + base64 of 24 bytes.
        import base64
        gen = created[0]["secret"]
        self.assertTrue(gen.startswith("whsec_"), gen)
        self.assertEqual(len(base64.b64decode(gen[6:], validate=True)), 24)
        self.assertNotEqual(created[0]["secret"], created[1]["secret"])

        # DELETE: 204, then 404 everywhere, and its deliveries go with it.
        ev = None
        st, ev = serve.api("POST", "/v1/events", {"event": "a.b", "data": {}})
        self.assertEqual(st, 202, ev)
        dlv = [d["id"] for d in ev["deliveries"] if d["endpoint_id"] == target["id"]][0]
        st, _, raw = serve.request("DELETE", "/v1/endpoints/" + target["id"])
        self.assertEqual((st, raw), (204, b""))
        self.assert_error(serve.api("GET", "/v1/endpoints/" + target["id"]), 404, "not_found",
                          check_field=False)
        self.assert_error(serve.api("DELETE", "/v1/endpoints/" + target["id"]), 404,
                          "not_found", check_field=False)
        self.assert_error(serve.api("GET", "/v1/deliveries/" + dlv), 404, "not_found",
                          check_field=False)
        st, page = serve.api("GET", "/v1/deliveries?endpoint_id=" + target["id"])
        self.assertEqual((st, page["data"]), (200, []))
        st, page = serve.api("GET", "/v1/endpoints")
        self.assertEqual(len(page["data"]), 6)

        # Deliveries list pagination over many events (filters combine).
        st, batch = serve.api("POST", "/v1/events",
                              {"events": [{"event": "zz.%d" % i, "data": {}} for i in range(5)]})
        self.assertEqual(st, 202, batch)
        st, page = serve.api("GET", "/v1/deliveries?endpoint_id=%s&limit=2" % created[0]["id"])
        self.assertEqual(len(page["data"]), 2)
        self.assertIsNotNone(page["next_cursor"])
        all_items = self.list_all(serve, "/v1/deliveries?endpoint_id=" + created[0]["id"], 2)
        self.assertEqual(len(all_items), 6)  # a.b + 5 batch events to the `*` endpoint
        self.assertEqual(len({x["id"] for x in all_items}), 6)
        one_event = batch["events"][0]["id"]
        st, page = serve.api("GET", "/v1/deliveries?endpoint_id=%s&event_id=%s"
                             % (created[0]["id"], one_event))
        self.assertEqual([x["event_id"] for x in page["data"]], [one_event])


if __name__ == "__main__":
    unittest.main()
