"""GET /v1/events (issue 11): events newest first with type, since/until, endpoint_id, a cursor
and a limit; the event_type/since/until filters of GET /v1/deliveries and GET /v1/dlq; 400 for
every bad query parameter (naming it); 403 for an ingest-scoped key."""

import os
import re
import time
import unittest
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlencode

from harness import HookdTestCase, free_port, parse_time, RFC3339_MS


def rfc3339(ts):
    """Unix seconds -> RFC 3339 UTC with milliseconds."""
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


class EventsListTest(HookdTestCase):

    def setUp(self):
        super().setUp()
        self.mock = self.start_mock()
        self.serve = self.start_serve()
        s = self.serve
        self.ep_orders = self.create_endpoint(s, self.mock.url + "/orders",
                                              events=["order.paid", "order.refunded"])
        self.ep_users = self.create_endpoint(s, self.mock.url + "/users",
                                             events=["user.created"])
        # One attempt, to a port nobody listens on: its deliveries become dead letters.
        self.ep_dead = self.create_endpoint(s, "http://127.0.0.1:%d/x" % free_port(),
                                            events=["order.refunded"])
        self.s = s
        # Several types to several endpoints (misc.note to none), one at a time so each
        # has its own created_at order; the 202 says each event's created_at.
        types = ["order.paid", "user.created", "misc.note", "order.refunded", "order.paid",
                 "user.created", "order.paid", "misc.note", "order.refunded", "user.created"]
        self.events = []
        for i, t in enumerate(types):
            ev = self.ingest(s, t, {"i": i, "text": "a \"quoted\" <b>x</b>", "n": [1.5, None]})
            ev["data"] = {"i": i, "text": "a \"quoted\" <b>x</b>", "n": [1.5, None]}
            self.events.append(ev)
            # The next one in a later millisecond, so the time windows below have edges
            # between events (same-millisecond order is in the store's unit tests).
            at = parse_time(ev["created_at"])
            self.wait_for(lambda: time.time() >= at + 0.002, 2, "the clock to move on")
        self.to = {self.ep_orders["id"]: {"order.paid", "order.refunded"},
                   self.ep_users["id"]: {"user.created"},
                   self.ep_dead["id"]: {"order.refunded"}}

    def expected(self, type_=None, since=None, until=None, endpoint_id=None):
        """The ingested events the filters select, newest first (created_at, then the order
        they were stored in)."""
        out = []
        for i, ev in enumerate(self.events):
            at = parse_time(ev["created_at"])
            if type_ and ev["event"] != type_:
                continue
            if since is not None and at < parse_time(since):
                continue
            if until is not None and at >= parse_time(until):
                continue
            if endpoint_id and ev["event"] not in self.to[endpoint_id]:
                continue
            out.append((at, i, ev["id"]))
        return [x[2] for x in sorted(out, reverse=True)]

    def list_ids(self, path, query, limit=1000):
        items = self.list_all(self.s, path + "?" + urlencode(query) if query else path,
                              limit=limit)
        return items, [x["id"] for x in items]

    def test_list_filters_and_pages(self):
        evs = self.events
        # No filter, one page, then pages of 3 and of 1: the same events in the same order.
        items, ids = self.list_ids("/v1/events", {})
        self.assertEqual(ids, self.expected())
        for limit in (3, 1):
            _, paged = self.list_ids("/v1/events", {}, limit=limit)
            self.assertEqual(paged, ids, "limit %d" % limit)
        status, page = self.s.api("GET", "/v1/events?limit=4")
        self.assertEqual(status, 200, page)
        self.assertEqual([x["id"] for x in page["data"]], ids[:4])
        self.assertRegex(page["next_cursor"], r"^c\d+$")
        status, last = self.s.api("GET", "/v1/events?limit=100")
        self.assertIsNone(last["next_cursor"])

        # Each item: id, event, created_at and data, as GET /v1/events/{id} shows them.
        by_id = {e["id"]: e for e in evs}
        for x in items:
            self.assertEqual(list(x.keys()), ["id", "event", "created_at", "data"], x)
            self.assertRegex(x["created_at"], RFC3339_MS)
            want = by_id[x["id"]]
            self.assertEqual((x["event"], x["created_at"], x["data"]),
                             (want["event"], want["created_at"], want["data"]))
        status, one = self.s.api("GET", "/v1/events/" + items[0]["id"])
        self.assertEqual(status, 200, one)
        one.pop("deliveries")
        self.assertEqual(one, items[0])

        # type
        for t in ("order.paid", "user.created", "misc.note", "no.such"):
            with self.subTest(type=t):
                _, got = self.list_ids("/v1/events", {"type": t}, limit=2)
                self.assertEqual(got, self.expected(type_=t))
        # endpoint_id: events with at least one delivery there (misc.note has none).
        for ep in (self.ep_orders, self.ep_users, self.ep_dead):
            with self.subTest(endpoint=ep["url"]):
                _, got = self.list_ids("/v1/events", {"endpoint_id": ep["id"]}, limit=2)
                self.assertEqual(got, self.expected(endpoint_id=ep["id"]))
                self.assertTrue(got)
        _, got = self.list_ids("/v1/events", {"endpoint_id": "ep_nosuch"})
        self.assertEqual(got, [])

        # since (inclusive) and until (exclusive), at the events' own times and between them.
        times = sorted({e["created_at"] for e in evs})
        self.assertEqual(len(times), len(evs))
        mid = times[len(times) // 2]
        after_last = rfc3339(parse_time(times[-1]) + 0.001)
        windows = [(mid, None), (None, mid), (times[1], times[-1]), (times[0], after_last),
                   (after_last, None), (None, times[0])]
        for since, until in windows:
            q = {k: v for k, v in (("since", since), ("until", until)) if v}
            with self.subTest(**q):
                _, got = self.list_ids("/v1/events", q, limit=2)
                self.assertEqual(got, self.expected(since=since, until=until))
        # An offset other than Z is the same instant.
        t = parse_time(mid)
        plus_one = (datetime.fromtimestamp(t, timezone.utc).astimezone(
            timezone(timedelta(hours=1))).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+01:00")
        _, got = self.list_ids("/v1/events", {"since": plus_one})
        self.assertEqual(got, self.expected(since=mid))

        # Everything together.
        q = {"type": "order.paid", "endpoint_id": self.ep_orders["id"], "since": times[1]}
        _, got = self.list_ids("/v1/events", q, limit=1)
        self.assertEqual(got, self.expected("order.paid", times[1], None, self.ep_orders["id"]))

    def test_delivery_lists_filter_by_type_and_time(self):
        s = self.s
        all_d = self.list_all(s, "/v1/deliveries")
        self.assertEqual(len(all_d), 3 + 3 + 2 * 2)  # paid x3, user x3, refunded x2 to 2 eps
        for t in ("order.paid", "order.refunded", "user.created", "misc.note"):
            with self.subTest(event_type=t):
                _, got = self.list_ids("/v1/deliveries", {"event_type": t}, limit=2)
                self.assertEqual(got, [d["id"] for d in all_d if d["event"] == t])
        times = sorted({d["created_at"] for d in all_d})
        since, until = times[1], times[-1]
        _, got = self.list_ids("/v1/deliveries", {"since": since, "until": until}, limit=3)
        self.assertEqual(got, [d["id"] for d in all_d if since <= d["created_at"] < until])
        self.assertTrue(got)
        q = {"endpoint_id": self.ep_orders["id"], "event_type": "order.paid", "since": since}
        _, got = self.list_ids("/v1/deliveries", q, limit=1)
        self.assertEqual(got, [d["id"] for d in all_d if d["endpoint_id"] == self.ep_orders["id"]
                               and d["event"] == "order.paid" and d["created_at"] >= since])

        # The dead letters (the refunds to the unreachable endpoint), filtered the same way.
        dead_ids = [d["id"] for d in all_d if d["endpoint_id"] == self.ep_dead["id"]]
        self.assertEqual(len(dead_ids), 2)
        self.wait_for(lambda: len(self.list_all(s, "/v1/dlq")) == 2, 20, "two dead letters")
        _, got = self.list_ids("/v1/dlq", {"event_type": "order.refunded"}, limit=1)
        self.assertEqual(got, dead_ids)
        _, got = self.list_ids("/v1/dlq", {"event_type": "order.paid"})
        self.assertEqual(got, [])
        newest = max(d["created_at"] for d in all_d if d["id"] in dead_ids)
        _, got = self.list_ids("/v1/dlq", {"since": newest, "endpoint_id": self.ep_dead["id"]})
        self.assertEqual(got, [d["id"] for d in all_d
                               if d["id"] in dead_ids and d["created_at"] >= newest])
        _, got = self.list_ids("/v1/dlq", {"until": newest})
        self.assertEqual(got, [d["id"] for d in all_d
                               if d["id"] in dead_ids and d["created_at"] < newest])

    def test_bad_parameters_are_400_naming_them(self):
        s = self.s
        t = self.events[3]["created_at"]
        cases = [
            ("/v1/events?bogus=1", "bogus"),
            ("/v1/events?status=dead", "status"),
            ("/v1/events?type=a&type=b", "type"),
            ("/v1/events?type", "type"),
            ("/v1/events?type=*", "type"),
            ("/v1/events?type=" + quote("bad type!"), "type"),
            ("/v1/events?type=" + "a" * 129, "type"),
            ("/v1/events?since=yesterday", "since"),
            ("/v1/events?since=2026-13-01T00:00:00Z", "since"),
            ("/v1/events?until=" + quote("2026-01-01 00:00:00"), "until"),
            ("/v1/events?until=1700000000", "until"),
            ("/v1/events?since=%s&until=%s" % (quote(t), quote(t)), "until"),
            ("/v1/events?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),
            ("/v1/events?endpoint_id=" + "e" * 65, "endpoint_id"),
            ("/v1/events?limit=0", "limit"),
            ("/v1/events?limit=1001", "limit"),
            ("/v1/events?limit=ten", "limit"),
            ("/v1/events?cursor=nope", "cursor"),
            ("/v1/events?cursor=c999999999", "cursor"),
            ("/v1/deliveries?bogus=1", "bogus"),
            ("/v1/deliveries?event_type=" + quote("no spaces"), "event_type"),
            ("/v1/deliveries?since=x", "since"),
            ("/v1/deliveries?until=2026-01-01T00:00:00Z&since=2026-01-01T00:00:00Z", "until"),
            ("/v1/dlq?status=dead", "status"),
            ("/v1/dlq?event_type=*", "event_type"),
            ("/v1/dlq?until=soon", "until"),
        ]
        for path, field in cases:
            with self.subTest(path=path):
                self.assert_error(s.api("GET", path), 400, "invalid_field", field)
        # An empty segment (a trailing or doubled "&") is not a parameter.
        for path in ("/v1/events?limit=5&", "/v1/events?&&type=order.paid", "/v1/dlq?&"):
            with self.subTest(path=path):
                st, page = s.api("GET", path)
                self.assertEqual(st, 200, page)
        # The old filters still work next to the new ones.
        st, page = s.api("GET", "/v1/deliveries?status=pending&event_type=order.paid&limit=5")
        self.assertEqual(st, 200, page)

    def test_ingest_key_cannot_list_and_post_still_works(self):
        db = os.path.join(self.tmp, "hookd.db")  # start_serve's
        r = self.run_hookd("key", "create", "--scope", "ingest", "--db", "sqlite:" + db)
        self.assertEqual(r.returncode, 0, r.stderr)
        key = re.search(r"^key:[ \t]*(\S+)$", r.stdout, re.M).group(1)
        err = self.assert_error(self.s.api("GET", "/v1/events", key=key), 403,
                                "insufficient_scope")
        self.assertIn("ingest", err["message"])
        self.assert_error(self.s.api("GET", "/v1/events?type=order.paid", key=key), 403,
                          "insufficient_scope")
        st, ev = self.s.api("POST", "/v1/events", {"event": "order.paid", "data": {}}, key=key)
        self.assertEqual(st, 202, ev)
        # The admin key sees it, first.
        st, page = self.s.api("GET", "/v1/events?limit=1")
        self.assertEqual((st, page["data"][0]["id"]), (200, ev["id"]))
        # Another method on /v1/events: 405 with both allowed.
        st, body, headers = self.s.api_full("DELETE", "/v1/events")
        self.assertEqual(st, 405, body)
        self.assertEqual(headers.get("allow"), "GET, POST")


if __name__ == "__main__":
    unittest.main()
