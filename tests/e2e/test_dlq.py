"""Dead letters: after the last attempt a delivery is dead, listed in /v1/dlq, announced with a
`delivery.dead_lettered` event to endpoints that name it (not to `*`), and can be retried."""

import json
import os
import time
import unittest
from urllib.parse import quote

from harness import HookdTestCase, new_secret, parse_time

SCHEDULE = "0,200ms,200ms"  # three attempts
NOTIFY_KEYS = {"delivery_id", "event_id", "endpoint_id", "url", "attempts", "last_error",
               "last_status"}


class DlqTest(HookdTestCase):

    def setUp(self):
        super().setUp()
        self.secret = new_secret()
        self.failing = self.start_mock("--status", "500", secret=self.secret, name="failing")
        self.healthy = self.start_mock(secret=self.secret, name="healthy")
        self.serve = self.start_serve(schedule=SCHEDULE)

    def dead_lettered(self, mock):
        recs = [r for r in mock.records()
                if r["headers"].get("x-pixelpatrol-event") == "delivery.dead_lettered"]
        return recs

    def test_dead_after_last_attempt_notified_then_retried(self):
        serve = self.serve
        url = self.failing.url + "/app"
        app = self.create_endpoint(serve, url, secret=self.secret, events=["media.moderated"])
        notify = self.create_endpoint(serve, self.healthy.url + "/notify", secret=self.secret,
                                      events=["delivery.dead_lettered"])
        star = self.create_endpoint(serve, self.healthy.url + "/star", secret=self.secret)

        e1 = self.ingest(serve, "media.moderated", {"n": 1})
        e2 = self.ingest(serve, "media.moderated", {"n": 2})
        d1_id = [x["id"] for x in e1["deliveries"] if x["endpoint_id"] == app["id"]][0]
        d2_id = [x["id"] for x in e2["deliveries"] if x["endpoint_id"] == app["id"]][0]
        # Ingest never names an endpoint only subscribed to the operational event.
        self.assertNotIn(notify["id"], [x["endpoint_id"] for x in e1["deliveries"]])

        for dlv_id in (d1_id, d2_id):
            d = self.wait_delivery(serve, dlv_id, "dead", timeout=15)
            self.assertEqual(d["attempt_count"], 3, d)
            self.assertEqual([a["status"] for a in d["attempts"]], [500, 500, 500])
            self.assertEqual(d["last_status"], 500)
            self.assertEqual(d["last_error"], "http_status")
            self.assertIsNone(d["next_attempt_at"], d)
        self.assertEqual(len(self.failing.records_for(e1["id"])), 3)

        status, dlq = serve.api("GET", "/v1/dlq")
        self.assertEqual(status, 200, dlq)
        self.assertEqual({x["id"] for x in dlq["data"]}, {d1_id, d2_id}, dlq)
        for x in dlq["data"]:
            self.assertEqual(x["status"], "dead")
            self.assertNotIn("attempts", x)
        status, dlq = serve.api("GET", "/v1/dlq?endpoint_id=" + star["id"])
        self.assertEqual((status, dlq["data"]), (200, []))
        status, dlq = serve.api("GET", "/v1/dlq?endpoint_id=" + app["id"] + "&limit=1")
        self.assertEqual(status, 200)
        self.assertEqual(len(dlq["data"]), 1, dlq)
        self.assertIsNotNone(dlq["next_cursor"])
        status, rest = serve.api("GET", "/v1/dlq?endpoint_id=%s&limit=1&cursor=%s"
                                 % (app["id"], quote(dlq["next_cursor"], safe="")))
        self.assertEqual(status, 200, rest)
        self.assertEqual({dlq["data"][0]["id"], rest["data"][0]["id"]}, {d1_id, d2_id})
        status, page = serve.api("GET", "/v1/deliveries?status=dead")
        self.assertEqual({x["id"] for x in page["data"]}, {d1_id, d2_id})

        # The admin notification, once per dead delivery, to the endpoint that names it.
        self.wait_for(lambda: len(self.dead_lettered(self.healthy)) >= 2, 10,
                      "two delivery.dead_lettered notifications")
        notes = self.dead_lettered(self.healthy)
        self.assertEqual(len(notes), 2, notes)
        seen = {}
        for r in notes:
            self.assertEqual(r["path"], "/notify", r)
            self.assertIs(r["verified"], True, r)
            self.assert_verifies(r, self.secret)
            body = json.loads(r["body"])
            self.assertEqual(list(body.keys()), ["id", "event", "created_at", "data"])
            self.assertEqual(body["event"], "delivery.dead_lettered")
            self.assertEqual(body["id"], r["headers"]["webhook-id"])
            self.assertEqual(set(body["data"].keys()), NOTIFY_KEYS, body)
            seen[body["data"]["delivery_id"]] = body
        self.assertEqual(set(seen), {d1_id, d2_id})
        data = seen[d1_id]["data"]
        self.assertEqual(data, {"delivery_id": d1_id, "event_id": e1["id"],
                                "endpoint_id": app["id"], "url": url, "attempts": 3,
                                "last_error": "http_status", "last_status": 500})
        # It is an event like any other in the API.
        status, ev = serve.api("GET", "/v1/events/" + seen[d1_id]["id"])
        self.assertEqual(status, 200, ev)
        self.assertEqual(ev["event"], "delivery.dead_lettered")
        self.assertEqual([x["endpoint_id"] for x in ev["deliveries"]], [notify["id"]])

        # `*` does not include operational events.
        star_deliveries = self.list_all(serve, "/v1/deliveries?endpoint_id=" + star["id"])
        self.assertEqual({x["event"] for x in star_deliveries}, {"media.moderated"},
                         star_deliveries)
        self.assertEqual([r for r in self.healthy.records() if r["path"] == "/star"
                          and r["headers"]["x-pixelpatrol-event"] != "media.moderated"], [])

        # Retry one after moving the endpoint to a healthy receiver.
        healthy_url = self.healthy.url + "/app-fixed"
        status, ep = serve.api("PATCH", "/v1/endpoints/" + app["id"], {"url": healthy_url})
        self.assertEqual((status, ep["url"]), (200, healthy_url), ep)
        status, d = serve.api("POST", "/v1/dlq/%s/retry" % d1_id)
        self.assertEqual(status, 202, d)
        self.assertEqual(d["id"], d1_id)
        self.assertEqual(d["status"], "pending", d)
        self.assertIsNotNone(d["next_attempt_at"], d)
        d = self.wait_delivery(serve, d1_id, "succeeded")
        self.assertEqual(d["attempt_count"], 4, "the attempt log is kept: %r" % d)
        self.assertEqual([a["attempt"] for a in d["attempts"]], [1, 2, 3, 4])
        self.assertEqual([a["status"] for a in d["attempts"]], [500, 500, 500, 200])
        self.assertEqual(d["attempts"][3]["url"], healthy_url)
        self.assertEqual(d["last_status"], 200)
        recs = [r for r in self.healthy.records_for(e1["id"]) if r["path"] != "/star"]
        self.assertEqual([r["path"] for r in recs], ["/app-fixed"])
        self.assertEqual(json.loads(recs[0]["body"])["data"], {"n": 1})

        # Retrying something that is not dead is a conflict; unknown is 404.
        self.assert_error(serve.api("POST", "/v1/dlq/%s/retry" % d1_id), 409, "conflict",
                          check_field=False)
        self.assert_error(serve.api("POST", "/v1/dlq/dlv_doesnotexist/retry"), 404, "not_found",
                          check_field=False)

        # Retry all of the endpoint's dead letters: only d2 is left.
        status, body = serve.api("POST", "/v1/dlq/retry", {"endpoint_id": app["id"]})
        self.assertEqual((status, body), (202, {"retried": 1}))
        d = self.wait_delivery(serve, d2_id, "succeeded")
        self.assertEqual(d["attempt_count"], 4)
        status, dlq = serve.api("GET", "/v1/dlq")
        self.assertEqual((status, dlq["data"]), (200, []))
        status, body = serve.api("POST", "/v1/dlq/retry", {"endpoint_id": app["id"]})
        self.assertEqual((status, body), (202, {"retried": 0}))
        self.assert_error(serve.api("POST", "/v1/dlq/retry", {}), 400, "invalid_field",
                          "endpoint_id")
        self.assert_error(serve.api("POST", "/v1/dlq/retry", {"endpoint_id": "ep_nope"}),
                          404, "not_found", check_field=False)
        # Success after a retry emits no new notification.
        self.assertEqual(len(self.dead_lettered(self.healthy)), 2)

    def test_retried_dead_letter_starts_the_schedule_again(self):
        serve = self.serve
        app = self.create_endpoint(serve, self.failing.url + "/app", secret=self.secret)
        ev = self.ingest(serve)
        dlv = ev["deliveries"][0]["id"]
        self.wait_delivery(serve, dlv, "dead", timeout=15)
        # Still failing: the retry goes through the whole schedule again and dies again.
        status, d = serve.api("POST", "/v1/dlq/%s/retry" % dlv)
        self.assertEqual(status, 202, d)
        self.wait_for(lambda: self.get_delivery(serve, dlv)["attempt_count"] == 6, 15,
                      "three more attempts after the retry")
        d = self.wait_delivery(serve, dlv, "dead")
        self.assertEqual(d["attempt_count"], 6, d)
        self.assertEqual(len(self.failing.records_for(ev["id"])), 6)
        status, dlq = serve.api("GET", "/v1/dlq?endpoint_id=" + app["id"])
        self.assertEqual([x["id"] for x in dlq["data"]], [dlv])

    def test_dead_notification_never_emits_another(self):
        serve = self.serve
        app = self.create_endpoint(serve, self.failing.url + "/app", secret=self.secret,
                                   events=["media.created"])
        good = self.create_endpoint(serve, self.healthy.url + "/notify", secret=self.secret,
                                    events=["delivery.dead_lettered"])
        # This one fails too: the notification to it dies in turn.
        bad = self.create_endpoint(serve, self.failing.url + "/notify-bad", secret=self.secret,
                                   events=["delivery.dead_lettered", "media.other"])
        ev = self.ingest(serve, "media.created")
        self.wait_delivery(serve, ev["deliveries"][0]["id"], "dead", timeout=15)

        # The notification to `bad` dies after its own three attempts.
        def bad_notification():
            ds = self.list_all(serve, "/v1/deliveries?endpoint_id=" + bad["id"])
            dead = [x for x in ds if x["event"] == "delivery.dead_lettered"
                    and x["status"] == "dead"]
            return dead
        dead = self.wait_for(bad_notification, 15, "the notification to the failing endpoint "
                             "to die")
        self.assertEqual(len(dead), 1, dead)
        self.assertEqual(dead[0]["attempt_count"], 3)
        # Wait until nothing is pending any more, then count: exactly one notification was ever
        # made (for the application event's dead letter), to each subscriber.
        self.wait_for(lambda: self.list_all(serve, "/v1/deliveries?status=pending") == [], 15,
                      "no pending deliveries")
        for ep in (good, bad):
            ds = self.list_all(serve, "/v1/deliveries?endpoint_id=" + ep["id"])
            self.assertEqual(len(ds), 1, ds)
        notes = self.dead_lettered(self.healthy)
        self.assertEqual(len(notes), 1, notes)
        self.assertEqual(json.loads(notes[0]["body"])["data"]["endpoint_id"], app["id"])
        # The dead notification is in the DLQ like any dead delivery.
        status, dlq = serve.api("GET", "/v1/dlq?endpoint_id=" + bad["id"])
        self.assertEqual([x["id"] for x in dlq["data"]], [dead[0]["id"]])

    def test_dead_letters_older_than_retention_are_purged(self):
        # With --dlq-retention 4s hookd purges every second, so a dead letter is gone
        # 4..5 s after it died while one that died 2 s later is still there then.
        self.stop_clean(self.serve)
        db = os.path.join(self.tmp, "purge.db")
        serve = self.start_serve("--dlq-retention", "4s", db=db, schedule="0")
        ep = self.create_endpoint(serve, self.failing.url + "/old", secret=self.secret,
                                  events=["media.created"])
        ok = self.create_endpoint(serve, self.healthy.url + "/ok", secret=self.secret,
                                  events=["keep.me"])
        old = self.ingest(serve, "media.created")["deliveries"][0]["id"]
        died = parse_time(self.wait_delivery(serve, old, "dead")["updated_at"])
        kept = [x["id"] for x in self.ingest(serve, "keep.me")["deliveries"]
                if x["endpoint_id"] == ok["id"]][0]
        self.wait_delivery(serve, kept, "succeeded")
        # On the clock on purpose: the retention is what is tested.
        time.sleep(max(0.0, died + 2 - time.time()))
        young = self.ingest(serve, "media.created")["deliveries"][0]["id"]
        self.wait_delivery(serve, young, "dead")

        self.wait_for(lambda: serve.api("GET", "/v1/deliveries/" + old)[0] == 404, 10,
                      "the dead letter older than the retention to be purged")
        self.assertGreaterEqual(time.time(), died + 4, "not purged before its retention")
        status, dlq = serve.api("GET", "/v1/dlq?endpoint_id=" + ep["id"])
        self.assertEqual([x["id"] for x in dlq["data"]], [young], "a young dead letter stays")
        self.assertEqual(self.get_delivery(serve, kept)["status"], "succeeded",
                         "succeeded deliveries are not purged")


if __name__ == "__main__":
    unittest.main()
