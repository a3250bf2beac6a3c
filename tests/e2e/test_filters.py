"""Filters (issue 4, DESIGN §5): an endpoint's `filters` decide at fan-out which events it gets.
The seed's example delivers exactly the matching events out of a mixed set and creates no
delivery for the others; bad filters are refused with 400 naming the key; `filters.events` and
`events` are one list (both given and different: 400)."""

import json
import unittest

from harness import HookdTestCase, new_secret

SEED_FILTER = {"events": ["media.moderated"], "status": ["rejected", "flagged"],
               "confidence": {">=": 0.8}}


class FiltersTest(HookdTestCase):

    def setUp(self):
        super().setUp()
        self.secret = new_secret()
        self.mock = self.start_mock(secret=self.secret)
        self.serve = self.start_serve()

    def test_seed_filter_delivers_exactly_the_matching_events(self):
        serve, mock = self.serve, self.mock
        seed = self.create_endpoint(serve, mock.url + "/seed", secret=self.secret,
                                    filters=SEED_FILTER)
        # filters.events given alone becomes the endpoint's events; filters come back as stored.
        self.assertEqual(seed["events"], ["media.moderated"], seed)
        self.assertEqual(seed["filters"], SEED_FILTER, seed)
        nested_filter = {"media.kind": "image", "size": {">": 100, "<=": 1000},
                         "owner": {"!=": "bot"}, "region": {"in": ["eu", "us"]}}
        nested = self.create_endpoint(serve, mock.url + "/nested", secret=self.secret,
                                      events=["media.created"], filters=nested_filter)
        self.assertEqual(nested["filters"], nested_filter, nested)
        self.assertEqual(nested["events"], ["media.created"], nested)
        # A control endpoint with no filters gets everything: the barrier for "nothing else".
        star = self.create_endpoint(serve, mock.url + "/all", secret=self.secret)
        self.assertIsNone(star["filters"], star)

        mm = "media.moderated"
        cases = [  # (event, data, seed matches, nested matches)
            (mm, {"status": "rejected", "confidence": 0.93}, True, False),
            (mm, {"status": "flagged", "confidence": 0.8}, True, False),         # >= boundary
            (mm, {"status": "flagged", "confidence": 1}, True, False),           # int vs 0.8
            (mm, {"status": "rejected", "confidence": 0.8000001, "x": [1]}, True, False),
            (mm, {"status": "flagged", "confidence": 0.79}, False, False),
            (mm, {"status": "approved", "confidence": 0.99}, False, False),
            (mm, {"status": "rejected"}, False, False),                          # missing path
            (mm, {"status": "rejected", "confidence": "0.9"}, False, False),     # string, not num
            (mm, {"status": "Rejected", "confidence": 0.9}, False, False),       # case matters
            (mm, {"status": ["rejected"], "confidence": 0.9}, False, False),     # list != item
            (mm, {"status": None, "confidence": 0.9}, False, False),
            (mm, {"confidence": 0.95}, False, False),
            ("media.created", {"status": "rejected", "confidence": 0.95}, False, False),
            ("media.created", {"media": {"kind": "image"}, "size": 500, "region": "eu"},
             False, True),                                            # owner missing: != holds
            ("media.created", {"media": {"kind": "image"}, "size": 1000, "region": "us",
                               "owner": "alice"}, False, True),
            ("media.created", {"media": {"kind": "image"}, "size": 1000, "region": "us",
                               "owner": "bot"}, False, False),
            ("media.created", {"media": {"kind": "image"}, "size": 100, "region": "us"},
             False, False),                                           # > is strict
            ("media.created", {"media": {"kind": "video"}, "size": 500, "region": "eu"},
             False, False),
            ("media.created", {"media": {"kind": "image"}, "size": 500, "region": "asia"},
             False, False),
            ("media.created", {"media": "image", "size": 500, "region": "eu"}, False, False),
            (mm, {"media": {"kind": "image"}, "size": 500, "region": "eu"}, False, False),
        ]
        resp = self.ingest_many(serve, [{"event": e, "data": d} for e, d, _, _ in cases])
        want = {seed["id"]: set(), nested["id"]: set()}
        for (event, data, m_seed, m_nested), got in zip(cases, resp):
            eps = {x["endpoint_id"] for x in got["deliveries"]}
            self.assertIn(star["id"], eps, got)
            self.assertEqual(seed["id"] in eps, m_seed, "seed filter on %s %r" % (event, data))
            self.assertEqual(nested["id"] in eps, m_nested,
                             "nested filter on %s %r" % (event, data))
            self.assertEqual(len(eps), 1 + m_seed + m_nested, got)
            if m_seed:
                want[seed["id"]].add(got["id"])
            if m_nested:
                want[nested["id"]].add(got["id"])
        self.assertEqual(len(want[seed["id"]]), 4)
        self.assertEqual(len(want[nested["id"]]), 2)

        total = len(cases) + 4 + 2
        self.wait_for(lambda: len(self.list_all(serve, "/v1/deliveries?status=succeeded"))
                      == total, 15, "all %d deliveries to succeed" % total)
        # Non-matching events created no delivery for the filtered endpoints...
        for ep in (seed, nested):
            ds = self.list_all(serve, "/v1/deliveries?endpoint_id=" + ep["id"])
            self.assertEqual({d["event_id"] for d in ds}, want[ep["id"]], ds)
            self.assertEqual(len(ds), len(want[ep["id"]]), ds)
        # ...and the receiver saw exactly the matching ones, each once, signed.
        recs = mock.records()
        self.assertEqual(len(recs), total,
                         [(r["path"], r["headers"].get("webhook-id")) for r in recs])
        by_path = {}
        for r in recs:
            self.assertIs(r["verified"], True, r)
            by_path.setdefault(r["path"], []).append(r["headers"]["webhook-id"])
        self.assertEqual(sorted(by_path["/seed"]), sorted(want[seed["id"]]))
        self.assertEqual(sorted(by_path["/nested"]), sorted(want[nested["id"]]))
        self.assertEqual(sorted(by_path["/all"]), sorted(g["id"] for g in resp))
        for r in recs:
            if r["path"] == "/seed":
                body = json.loads(r["body"])
                self.assertEqual(body["event"], "media.moderated")
                self.assertIn(body["data"]["status"], ("rejected", "flagged"))
                self.assertGreaterEqual(body["data"]["confidence"], 0.8)

        # PATCH replaces the filters; events not named in filters stay as they were.
        status, ep = serve.api("PATCH", "/v1/endpoints/" + seed["id"],
                               {"filters": {"status": "approved"}})
        self.assertEqual(status, 200, ep)
        self.assertEqual(ep["filters"], {"status": "approved"}, ep)
        self.assertEqual(ep["events"], ["media.moderated"], ep)
        a = self.ingest(serve, mm, {"status": "approved", "confidence": 0.1})
        r = self.ingest(serve, mm, {"status": "rejected", "confidence": 0.9})
        self.assertEqual(len(self.deliveries_to(a, seed["id"])), 1, a)
        self.assertEqual(self.deliveries_to(r, seed["id"]), [], r)
        # filters null: every event of its types again.
        status, ep = serve.api("PATCH", "/v1/endpoints/" + seed["id"], {"filters": None})
        self.assertEqual(status, 200, ep)
        self.assertIsNone(ep["filters"], ep)
        self.assertEqual(ep["events"], ["media.moderated"], ep)
        r = self.ingest(serve, mm, {"anything": True})
        self.assertEqual(len(self.deliveries_to(r, seed["id"])), 1, r)
        c = self.ingest(serve, "media.created", {"anything": True})
        self.assertEqual(self.deliveries_to(c, seed["id"]), [], c)
        self.wait_delivery(serve, self.deliveries_to(r, seed["id"])[0], "succeeded")

    def test_bad_filters_are_refused_naming_the_key(self):
        serve = self.serve
        url = self.mock.url + "/bad"
        bad = [
            ({"confidence": {"~=": 0.8}}, "filters.confidence.~="),
            ({"confidence": {">=": [0.8]}}, "filters.confidence.>="),
            ({"confidence": {">": True}}, "filters.confidence.>"),
            ({"confidence": {"in": 0.8}}, "filters.confidence.in"),
            ({"status": {}}, "filters.status"),
            ({"status": []}, "filters.status"),
            ({"status": {"x": 1}}, "filters.status.x"),
            ({"status": {"eq": "a"}, "ok": 1}, "filters.status.eq"),
            ({"a..b": 1}, "filters.a..b"),
            ({"data": {"nested": {"=": 1}}}, "filters.data.nested"),
            ({"status": ["a", ["b"]]}, "filters.status"),
            ([], "filters"),
            ("status=rejected", "filters"),
            (5, "filters"),
        ]
        for filters, field in bad:
            with self.subTest(filters=filters):
                err = self.assert_error(serve.api("POST", "/v1/endpoints",
                                                  {"url": url, "filters": filters}),
                                        400, "invalid_field", field)
                self.assertTrue(err["message"], err)
        # filters.events must be a list of event types like events.
        for fe in ("media.moderated", [], [5], ["bad type!"]):
            with self.subTest(filters_events=fe):
                err = self.assert_error(serve.api("POST", "/v1/endpoints",
                                                  {"url": url, "filters": {"events": fe}}),
                                        400, "invalid_field", check_field=False)
                self.assertTrue(str(err["field"]).startswith("filters.events"), err)
        # Nothing was created by the refused requests.
        self.assertEqual(self.list_all(serve, "/v1/endpoints"), [])

        # A PATCH with a bad filter is refused and changes nothing.
        ep = self.create_endpoint(serve, url, filters={"status": "ok"})
        self.assert_error(serve.api("PATCH", "/v1/endpoints/" + ep["id"],
                                    {"filters": {"confidence": {">=": {}}}, "description": "x"}),
                          400, "invalid_field", "filters.confidence.>=")
        got = self.get_endpoint(serve, ep["id"])
        self.assertEqual(got["filters"], {"status": "ok"}, got)
        self.assertEqual(got["description"], "", got)

    def test_filters_events_and_events_are_one_list(self):
        serve = self.serve
        url = self.mock.url + "/one"
        # Both given and different (as sets): 400 on filters.events.
        for events, fe in ((["media.created"], ["media.moderated"]),
                           (["a", "b"], ["a"]),
                           (["*"], ["a"])):
            with self.subTest(events=events, filters_events=fe):
                self.assert_error(serve.api("POST", "/v1/endpoints", {
                    "url": url, "events": events, "filters": {"events": fe}}),
                    400, "invalid_field", "filters.events")
        # The same set in another order is fine.
        ep = self.create_endpoint(serve, url, events=["a.x", "b.y"],
                                  filters={"events": ["b.y", "a.x"], "k": 1})
        self.assertEqual(set(ep["events"]), {"a.x", "b.y"}, ep)
        # A PATCH of events that contradicts the stored filters.events, or the other way round,
        # is refused; giving both consistently changes both.
        self.assert_error(serve.api("PATCH", "/v1/endpoints/" + ep["id"], {
            "events": ["c.z"], "filters": {"events": ["a.x"]}}),
            400, "invalid_field", "filters.events")
        status, got = serve.api("PATCH", "/v1/endpoints/" + ep["id"], {
            "events": ["c.z"], "filters": {"events": ["c.z"], "k": 1}})
        self.assertEqual(status, 200, got)
        self.assertEqual(got["events"], ["c.z"], got)
        # The event list from filters.events decides fan-out.
        r = self.ingest(serve, "c.z", {"k": 1})
        self.assertEqual(len(self.deliveries_to(r, ep["id"])), 1, r)
        r = self.ingest(serve, "a.x", {"k": 1})
        self.assertEqual(self.deliveries_to(r, ep["id"]), [], r)
        r = self.ingest(serve, "c.z", {"k": 2})
        self.assertEqual(self.deliveries_to(r, ep["id"]), [], r)


if __name__ == "__main__":
    unittest.main()
