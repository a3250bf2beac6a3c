"""Delivery: one event reaches its receiver once, signed three ways, with the contract's body and
headers; fan-out with event filters; disabled endpoints wait; idempotent ingest; redirects fail."""

import http.server
import json
import threading
import time
import unittest

from harness import HookdTestCase, RFC3339_MS, new_secret, parse_time, sign_hex

ENDPOINT_KEYS = {"id", "url", "description", "events", "enabled", "created_at", "updated_at",
                 "filters", "headers", "rate_limit", "max_in_flight", "batch", "circuit",
                 "next_probe_at", "paused_until", "disabled_reason",
                 "signing", "public_key", "secret_previous_until",  # issue 5
                 "signatures"}  # issue 16
DELIVERY_KEYS = {"id", "event_id", "endpoint_id", "event", "status", "attempt_count",
                 "next_attempt_at", "last_status", "last_error", "batch_id", "created_at",
                 "updated_at"}
ATTEMPT_KEYS = {"attempt", "at", "url", "status", "duration_ms", "response_body", "headers",
                "error", "timings", "remote_ip", "connection_reused"}


class DeliveryTest(HookdTestCase):

    def test_single_event_delivered_once_signed_with_contract_body_and_headers(self):
        secret = new_secret()
        mock = self.start_mock(secret=secret)
        serve = self.start_serve()
        url = mock.url + "/hooks/pp"

        ep = self.create_endpoint(serve, url, description="main receiver", secret=secret)
        self.assertEqual(set(ep.keys()), ENDPOINT_KEYS | {"secret"}, ep)
        self.assertTrue(ep["id"].startswith("ep_"), ep)
        self.assertEqual(ep["url"], url)
        self.assertEqual(ep["description"], "main receiver")
        self.assertEqual(ep["events"], ["*"])
        self.assertIs(ep["enabled"], True)
        self.assertEqual(ep["secret"], secret)
        self.assertRegex(ep["created_at"], RFC3339_MS)
        self.assertRegex(ep["updated_at"], RFC3339_MS)

        data = {"media_id": "m_1", "status": "rejected", "confidence": 0.93,
                "labels": ["nsfw", "gore"], "nested": {"a": [1, 2, {"b": None}]},
                "text": "caf\u00e9 \u2603 \"quoted\""}
        t_before = time.time()
        resp = self.ingest(serve, "media.moderated", data)
        self.assertEqual(set(resp.keys()), {"id", "event", "created_at", "deliveries"}, resp)
        evt_id = resp["id"]
        self.assertTrue(evt_id.startswith("evt_"), resp)
        self.assertEqual(resp["event"], "media.moderated")
        created = parse_time(resp["created_at"])
        self.assertLess(abs(created - t_before), 5, resp)
        self.assertEqual(len(resp["deliveries"]), 1, resp)
        dlv_ref = resp["deliveries"][0]
        self.assertEqual(set(dlv_ref.keys()), {"id", "endpoint_id"}, dlv_ref)
        self.assertTrue(dlv_ref["id"].startswith("dlv_"), dlv_ref)
        self.assertEqual(dlv_ref["endpoint_id"], ep["id"])

        d = self.wait_delivery(serve, dlv_ref["id"], "succeeded")
        recs = mock.records_for(evt_id)
        self.assertEqual(len(recs), 1, "expected exactly one request, got %r" % recs)
        rec = recs[0]
        self.assertEqual(rec["method"], "POST")
        self.assertEqual(rec["path"], "/hooks/pp")
        self.assertEqual(rec["status"], 200)
        self.assertIs(rec["verified"], True, rec)
        self.assertEqual(rec["checks"], {"standard": True, "pixelpatrol": True,
                                         "webhook_signature": True}, rec)
        self.assertIsNone(rec["reason"], rec)
        self.assert_verifies(rec, secret)

        # Body: exactly {"id","event","created_at","data"}, data unchanged.
        body = json.loads(rec["body"])
        self.assertEqual(list(body.keys()), ["id", "event", "created_at", "data"], rec["body"])
        self.assertEqual(body, {"id": evt_id, "event": "media.moderated",
                                "created_at": resp["created_at"], "data": data})

        h = rec["headers"]
        self.assertTrue(h["content-type"].startswith("application/json"), h)
        _, ver = self.run_hookd("version").stdout.split("\n")[0].split(" ", 1)
        self.assertEqual(h["user-agent"], "hookd/" + ver.strip(), h)
        self.assertEqual(h["webhook-id"], evt_id)
        self.assertEqual(h["x-pixelpatrol-event"], "media.moderated")
        self.assertEqual(h["x-pixelpatrol-delivery"], dlv_ref["id"])
        ts = int(h["webhook-timestamp"])
        ts_ms = int(h["x-pixelpatrol-timestamp"])
        self.assertLess(abs(ts - rec["at"] / 1000), 5, (h, rec["at"]))
        self.assertLess(abs(ts_ms - rec["at"]), 5000, (h, rec["at"]))
        self.assertLessEqual(abs(ts_ms // 1000 - ts), 1, h)
        self.assertGreaterEqual(ts_ms / 1000, created - 1, "signed before the event existed")

        # The mock's stdout line for it.
        line = [l for l in mock.request_lines() if ("id=" + evt_id) in l]
        self.assertEqual(len(line), 1, mock.request_lines())
        self.assertIn("mock: POST /hooks/pp ", line[0])
        self.assertIn("event=media.moderated", line[0])
        self.assertIn("verified=yes", line[0])
        self.assertIn("status=200", line[0])

        # The API's view of it.
        self.assertEqual(set(d.keys()), DELIVERY_KEYS | {"attempts"}, d)
        self.assertEqual(d["event_id"], evt_id)
        self.assertEqual(d["endpoint_id"], ep["id"])
        self.assertEqual(d["event"], "media.moderated")
        self.assertEqual(d["attempt_count"], 1)
        self.assertIsNone(d["next_attempt_at"])
        self.assertEqual(d["last_status"], 200)
        self.assertIsNone(d["last_error"])
        self.assertEqual(len(d["attempts"]), 1, d)
        a = d["attempts"][0]
        self.assertEqual(set(a.keys()), ATTEMPT_KEYS, a)
        self.assertEqual(a["attempt"], 1)
        self.assertEqual(a["status"], 200)
        self.assertEqual(a["url"], url)
        self.assertIsNone(a["error"])
        self.assertIsInstance(a["duration_ms"], int)
        self.assertGreaterEqual(a["duration_ms"], 0)
        self.assertIn("received", a["response_body"])
        self.assertIsInstance(a["headers"], dict)
        self.assertTrue(all(k == k.lower() for k in a["headers"]), a["headers"])
        self.assertTrue(a["headers"].get("content-type", "").startswith("application/json"),
                        a["headers"])
        self.assertLess(abs(parse_time(a["at"]) - ts_ms / 1000), 2, (a, h))

        status, ev = serve.api("GET", "/v1/events/" + evt_id)
        self.assertEqual(status, 200, ev)
        self.assertEqual(set(ev.keys()), {"id", "event", "created_at", "data", "deliveries"}, ev)
        self.assertEqual(ev["data"], data)
        self.assertEqual(ev["created_at"], resp["created_at"])
        self.assertEqual(len(ev["deliveries"]), 1)
        self.assertEqual(ev["deliveries"][0]["id"], dlv_ref["id"])
        self.assertEqual(ev["deliveries"][0]["status"], "succeeded")
        self.assertNotIn("attempts", ev["deliveries"][0])

        # Lists: the delivery shows up filtered by endpoint, event and status; endpoints list
        # does not carry the secret, GET one does.
        for q in ("endpoint_id=" + ep["id"], "event_id=" + evt_id, "status=succeeded"):
            status, page = serve.api("GET", "/v1/deliveries?" + q)
            self.assertEqual(status, 200, page)
            self.assertEqual([x["id"] for x in page["data"]], [dlv_ref["id"]], (q, page))
            self.assertIsNone(page["next_cursor"])
        status, page = serve.api("GET", "/v1/deliveries?status=pending")
        self.assertEqual((status, page["data"]), (200, []), page)
        status, page = serve.api("GET", "/v1/endpoints")
        self.assertEqual(status, 200)
        self.assertEqual(len(page["data"]), 1)
        self.assertEqual(set(page["data"][0].keys()), ENDPOINT_KEYS, page)
        status, one = serve.api("GET", "/v1/endpoints/" + ep["id"])
        self.assertEqual((status, one), (200, ep))

        status, health = serve.api("GET", "/healthz", key=False)
        self.assertEqual((status, health), (200, {"status": "ok", "store": "ok"}))

    def deliver_one(self, serve, mock, ep_id):
        """Ingests one event, waits for its delivery to ep_id, returns the mock's record."""
        ev = self.ingest(serve, "media.created", {"at": time.time()})
        self.wait_delivery(serve, self.deliveries_to(ev, ep_id)[0], "succeeded")
        recs = mock.records_for(ev["id"])
        self.assertEqual(len(recs), 1, recs)
        return recs[0]

    def test_signatures_choose_the_schemes_and_their_headers(self):
        """Issue 16: an endpoint's `signatures` choose which signature headers it gets; stored,
        so a restart (and a GET, read from the database) keep the choice."""
        secret = new_secret()
        mock = self.start_mock("--reject-invalid", secret=secret)
        serve = self.start_serve()
        default = self.create_endpoint(serve, mock.url + "/all", secret=secret,
                                       events=["other.type"])
        self.assertEqual(default["signatures"], ["standard", "pixelpatrol", "webhook_signature"])
        ep = self.create_endpoint(serve, mock.url + "/std", secret=secret,
                                  signatures=["standard"])
        self.assertEqual(ep["signatures"], ["standard"])

        standard = {"webhook-timestamp", "webhook-signature"}
        hex_headers = {"x-pixelpatrol-timestamp", "x-pixelpatrol-signature",
                       "x-webhook-signature"}
        always = {"webhook-id", "x-pixelpatrol-event", "x-pixelpatrol-delivery"}
        rec = self.deliver_one(serve, mock, ep["id"])
        h = set(rec["headers"])
        self.assertTrue(standard | always <= h, rec["headers"])
        self.assertFalse(hex_headers & h, rec["headers"])
        self.assertIs(rec["verified"], True, rec)
        self.assertIs(rec["checks"]["standard"], True, rec)

        # PATCH to the hex schemes (any order, shown in the API's order); kept across a restart.
        status, got = serve.api("PATCH", "/v1/endpoints/" + ep["id"],
                                {"signatures": ["webhook_signature", "pixelpatrol"]})
        self.assertEqual(status, 200, got)
        self.assertEqual(got["signatures"], ["pixelpatrol", "webhook_signature"])
        self.stop_clean(serve)
        serve = self.start_serve()
        self.assertEqual(self.get_endpoint(serve, ep["id"])["signatures"],
                         ["pixelpatrol", "webhook_signature"])
        rec = self.deliver_one(serve, mock, ep["id"])
        h = set(rec["headers"])
        self.assertTrue(hex_headers | always <= h, rec["headers"])
        self.assertFalse(standard & h, rec["headers"])
        self.assertIs(rec["verified"], True, rec)
        body = rec["body"].encode()
        self.assertEqual(rec["headers"]["x-pixelpatrol-signature"], sign_hex(secret, body))
        self.assertEqual(rec["headers"]["x-webhook-signature"], "sha256=" + sign_hex(secret, body))

    def test_signatures_validation(self):
        serve = self.start_serve()
        url = "http://127.0.0.1:9/x"
        ep = self.create_endpoint(serve, url)
        for bad in [[], ["rsa"], ["standard", "v1"], "standard", [1], None, {"standard": True}]:
            with self.subTest(signatures=bad):
                self.assert_error(serve.api("POST", "/v1/endpoints",
                                            {"url": url, "signatures": bad}),
                                  400, "invalid_field", "signatures")
                self.assert_error(serve.api("PATCH", "/v1/endpoints/" + ep["id"],
                                            {"signatures": bad}),
                                  400, "invalid_field", "signatures")
        self.assertEqual(self.get_endpoint(serve, ep["id"])["signatures"],
                         ["standard", "pixelpatrol", "webhook_signature"])
        # An Ed25519 endpoint signs with "standard" (v1a) only: its list must hold it.
        self.assert_error(serve.api("POST", "/v1/endpoints", {"url": url, "signing": "ed25519",
                                                              "signatures": ["pixelpatrol"]}),
                          400, "invalid_field", "signatures")
        ed = self.create_endpoint(serve, url, signing="ed25519")
        self.assert_error(serve.api("PATCH", "/v1/endpoints/" + ed["id"],
                                    {"signatures": ["webhook_signature"]}),
                          400, "invalid_field", "signatures")
        status, got = serve.api("PATCH", "/v1/endpoints/" + ep["id"],
                                {"signatures": ["pixelpatrol"]})
        self.assertEqual((status, got["signatures"]), (200, ["pixelpatrol"]), got)
        self.assert_error(serve.api("POST", "/v1/endpoints/%s/secret/rotate" % ep["id"],
                                    {"signing": "ed25519"}),
                          400, "invalid_field", "signing")

    def test_batch_fans_out_by_event_filter(self):
        secret = new_secret()
        mock = self.start_mock(secret=secret)
        serve = self.start_serve()
        all_ep = self.create_endpoint(serve, mock.url + "/all", secret=secret)
        only_ep = self.create_endpoint(serve, mock.url + "/only", secret=secret,
                                       events=["media.created"])
        self.assertEqual(only_ep["events"], ["media.created"])

        batch = [{"event": "media.created", "data": {"i": i}} for i in range(3)]
        batch += [{"event": "media.moderated", "data": {"i": i}} for i in range(3, 5)]
        batch.append({"id": "given-id_1", "event": "media.created", "data": {"i": 5}})
        status, resp = serve.api("POST", "/v1/events", {"events": batch})
        self.assertEqual(status, 202, resp)
        self.assertEqual(list(resp.keys()), ["events"], resp)
        self.assertEqual(len(resp["events"]), len(batch))
        self.assertEqual(resp["events"][5]["id"], "given-id_1")
        expect = {}  # event id -> set of paths
        for sent, got in zip(batch, resp["events"]):
            self.assertEqual(got["event"], sent["event"])
            eps = {x["endpoint_id"] for x in got["deliveries"]}
            if sent["event"] == "media.created":
                self.assertEqual(eps, {all_ep["id"], only_ep["id"]}, got)
                expect[got["id"]] = {"/all", "/only"}
            else:
                self.assertEqual(eps, {all_ep["id"]}, got)
                expect[got["id"]] = {"/all"}
        self.assertEqual(len(set(expect)), len(batch), "event ids must be distinct")

        total = sum(len(v) for v in expect.values())
        self.wait_for(lambda: len(mock.records()) >= total, 15,
                      "%d deliveries at the mock" % total)
        self.wait_for(lambda: len(self.list_all(serve, "/v1/deliveries?status=succeeded"))
                      == total, 15, "all %d deliveries succeeded" % total)
        recs = mock.records()
        self.assertEqual(len(recs), total, recs)
        got = {}
        for r in recs:
            self.assertIs(r["verified"], True, r)
            got.setdefault(r["headers"]["webhook-id"], set()).add(r["path"])
            body = json.loads(r["body"])
            self.assertEqual(body["id"], r["headers"]["webhook-id"])
            self.assertEqual(body["event"], r["headers"]["x-pixelpatrol-event"])
        self.assertEqual(got, expect)

    def test_disabled_endpoint_waits_until_enabled(self):
        secret = new_secret()
        mock = self.start_mock(secret=secret)
        serve = self.start_serve()
        live = self.create_endpoint(serve, mock.url + "/live", secret=secret)
        paused = self.create_endpoint(serve, mock.url + "/paused", secret=secret, enabled=False)
        self.assertIs(paused["enabled"], False)

        resp = self.ingest(serve, "media.created", {"x": 1})
        by_ep = {x["endpoint_id"]: x["id"] for x in resp["deliveries"]}
        self.assertEqual(set(by_ep), {live["id"], paused["id"]},
                         "a disabled endpoint still gets its delivery created")
        # The enabled one is delivered; by then the paused one has spent no attempt.
        self.wait_delivery(serve, by_ep[live["id"]], "succeeded")
        d = self.get_delivery(serve, by_ep[paused["id"]])
        self.assertEqual(d["status"], "pending", d)
        self.assertEqual(d["attempt_count"], 0, d)
        self.assertEqual(d["attempts"], [], d)
        self.assertEqual([r["path"] for r in mock.records()], ["/live"])

        status, ep = serve.api("PATCH", "/v1/endpoints/" + paused["id"], {"enabled": True})
        self.assertEqual(status, 200, ep)
        self.assertIs(ep["enabled"], True)
        self.assertEqual(ep["secret"], secret)
        self.assertGreaterEqual(parse_time(ep["updated_at"]), parse_time(paused["updated_at"]))
        d = self.wait_delivery(serve, by_ep[paused["id"]], "succeeded")
        self.assertEqual(d["attempt_count"], 1, d)
        self.assertEqual(sorted(r["path"] for r in mock.records()), ["/live", "/paused"])

    def test_repeated_id_or_idempotency_key_is_a_noop(self):
        secret = new_secret()
        mock = self.start_mock(secret=secret)
        serve = self.start_serve()
        self.create_endpoint(serve, mock.url + "/h", secret=secret)

        first = self.ingest(serve, "media.created", {"v": 1}, id="order-123")
        self.assertEqual(first["id"], "order-123")
        self.assertNotIn("duplicate", first)
        again = self.ingest(serve, "media.created", {"v": 2}, id="order-123")
        self.assertIs(again.pop("duplicate"), True, again)
        self.assertEqual(again, first)

        k1 = self.ingest(serve, "media.created", {"k": 1}, headers={"Idempotency-Key": "key-1"})
        self.assertTrue(k1["id"].startswith("evt_"))
        k2 = self.ingest(serve, "media.created", {"k": 2}, headers={"Idempotency-Key": "key-1"})
        self.assertIs(k2.pop("duplicate"), True, k2)
        self.assertEqual(k2, k1)
        # A different key is a different event.
        k3 = self.ingest(serve, "media.created", {"k": 3}, headers={"Idempotency-Key": "key-2"})
        self.assertNotEqual(k3["id"], k1["id"])

        for ev in (first, k1, k3):
            self.wait_delivery(serve, ev["deliveries"][0]["id"], "succeeded")
        # The originals are kept, one delivery each, one request each.
        status, got = serve.api("GET", "/v1/events/order-123")
        self.assertEqual(status, 200)
        self.assertEqual(got["data"], {"v": 1})
        self.assertEqual(len(got["deliveries"]), 1)
        status, got = serve.api("GET", "/v1/events/" + k1["id"])
        self.assertEqual(got["data"], {"k": 1})
        for ev in (first, k1, k3):
            status, page = serve.api("GET", "/v1/deliveries?event_id=" + ev["id"])
            self.assertEqual(len(page["data"]), 1, page)
            recs = mock.records_for(ev["id"])
            self.assertEqual(len(recs), 1, recs)
        self.assertEqual(json.loads(mock.records_for("order-123")[0]["body"])["data"], {"v": 1})

        # In a batch too: an id seen before is returned as a duplicate, the new one is stored.
        status, resp = serve.api("POST", "/v1/events", {"events": [
            {"id": "order-123", "event": "media.created", "data": {"v": 3}},
            {"id": "order-124", "event": "media.created", "data": {"v": 4}}]})
        self.assertEqual(status, 202, resp)
        self.assertIs(resp["events"][0].get("duplicate"), True, resp)
        self.assertEqual(resp["events"][0]["deliveries"], first["deliveries"])
        self.assertNotIn("duplicate", resp["events"][1])
        self.wait_delivery(serve, resp["events"][1]["deliveries"][0]["id"], "succeeded")
        self.assertEqual(len(mock.records_for("order-123")), 1)

    def test_secrets_of_every_size_verify_and_patch_changes_the_signing_secret(self):
        serve = self.start_serve()
        mocks = {}
        for nbytes in (24, 32, 48, 64):
            secret = new_secret(nbytes)
            mock = self.start_mock(secret=secret, name="s%d" % nbytes)
            ep = self.create_endpoint(serve, mock.url + "/s", secret=secret,
                                      events=["size.%d" % nbytes])
            self.assertEqual(ep["secret"], secret)
            mocks[nbytes] = (mock, secret, ep)
            ev = self.ingest(serve, "size.%d" % nbytes)
            self.wait_delivery(serve, ev["deliveries"][0]["id"], "succeeded")
            rec = mock.records_for(ev["id"])[0]
            self.assertIs(rec["verified"], True, (nbytes, rec))
            self.assert_verifies(rec, secret)
        # Change the 24-byte endpoint's secret to the 64-byte one's: its next delivery is
        # signed with the new secret (and so fails the old mock's verification).
        mock24, old_secret, ep24 = mocks[24]
        _, new, _ = mocks[64]
        status, ep = serve.api("PATCH", "/v1/endpoints/" + ep24["id"], {"secret": new})
        self.assertEqual((status, ep["secret"]), (200, new), ep)
        ev = self.ingest(serve, "size.24")
        self.wait_delivery(serve, ev["deliveries"][0]["id"], "succeeded")
        rec = mock24.records_for(ev["id"])[0]
        self.assertIs(rec["verified"], False, rec)
        self.assert_verifies(rec, new)

    def test_endpoint_changes_apply_to_pending_deliveries(self):
        failing = self.start_mock("--status", "500", name="failing")
        healthy = self.start_mock(name="healthy")
        serve = self.start_serve(schedule="0,1s,1s,1s")
        ep = self.create_endpoint(serve, failing.url + "/a")
        ev = self.ingest(serve)
        dlv = ev["deliveries"][0]["id"]
        self.wait_for(lambda: self.get_delivery(serve, dlv)["attempt_count"] >= 1, 10,
                      "the first attempt")
        # Disabled while a retry is pending: no attempt is spent until it is enabled again.
        status, _ = serve.api("PATCH", "/v1/endpoints/" + ep["id"],
                              {"enabled": False, "url": healthy.url + "/b"})
        self.assertEqual(status, 200)
        n = self.get_delivery(serve, dlv)["attempt_count"]
        # Another endpoint's delivery, made after the pause, is a barrier in time: once it has
        # gone through its schedule step the paused one would have been retried too.
        probe = self.create_endpoint(serve, healthy.url + "/probe", events=["probe"])
        t_probe = time.monotonic()
        pr = self.ingest(serve, "probe")
        self.wait_delivery(serve, [x["id"] for x in pr["deliveries"]
                                   if x["endpoint_id"] == probe["id"]][0], "succeeded")
        self.wait_for(lambda: time.monotonic() - t_probe > 1.5, 3, "1.5 s to pass")
        d = self.get_delivery(serve, dlv)
        self.assertEqual(d["status"], "pending", d)
        self.assertEqual(d["attempt_count"], n, "a disabled endpoint spends no attempts: %r" % d)
        self.assertEqual(healthy.records_for(ev["id"]), [])
        status, _ = serve.api("PATCH", "/v1/endpoints/" + ep["id"], {"enabled": True})
        self.assertEqual(status, 200)
        d = self.wait_delivery(serve, dlv, "succeeded")
        self.assertEqual(d["attempts"][-1]["url"], healthy.url + "/b", d)
        self.assertEqual(d["attempts"][0]["url"], failing.url + "/a", d)
        self.assertEqual([r["path"] for r in healthy.records_for(ev["id"])], ["/b"])

    def test_delete_endpoint_with_deliveries_in_flight_and_pending(self):
        # The receiver holds every request until the endpoint is deleted, so the delete surely
        # happens with a request in flight (the scenario under test), however slow the box is.
        release = threading.Event()
        self.addCleanup(release.set)

        def hold(req):
            release.wait(30)

        slow = self.start_receiver(hold)
        serve = self.start_serve(schedule="0,1s")
        # max_in_flight 3: three requests held in flight, the other seven pending behind them.
        ep = self.create_endpoint(serve, slow.url + "/slow", max_in_flight=3)
        other_mock = self.start_mock(name="other")
        other = self.create_endpoint(serve, other_mock.url + "/other", events=["x.y"])
        status, resp = serve.api("POST", "/v1/events", {"events": [
            {"event": "media.created", "data": {"i": i}} for i in range(10)]})
        self.assertEqual(status, 202, resp)
        dlvs = [e["deliveries"][0]["id"] for e in resp["events"]]
        self.wait_for(lambda: slow.snapshot("/slow"), 15, "a request in flight at the receiver")
        # Delete while the first requests are still held by the receiver.
        st, _, _ = serve.request("DELETE", "/v1/endpoints/" + ep["id"])
        self.assertEqual(st, 204)
        self.assertTrue(all("status" not in r for r in slow.snapshot()),
                        "a request was answered before the delete")
        for d in dlvs:
            self.assert_error(serve.api("GET", "/v1/deliveries/" + d), 404, "not_found",
                              check_field=False)
        # The in-flight ones finish at the receiver; nothing comes back to life.
        release.set()
        self.wait_for(lambda: all("done_mono" in r for r in slow.snapshot()), 15,
                      "the receiver to answer the in-flight requests")
        ev = self.ingest(serve, "x.y")
        self.wait_delivery(serve, ev["deliveries"][0]["id"], "succeeded")
        for d in dlvs:
            self.assertEqual(serve.api("GET", "/v1/deliveries/" + d)[0], 404)
        # No slot was free before the delete, so any request beyond the three held ones would
        # be a pending delivery sent after its endpoint was deleted.
        self.assertLessEqual(len(slow.snapshot()), 3, "requests to the deleted endpoint")
        self.assertEqual(self.list_all(serve, "/v1/deliveries?endpoint_id=" + ep["id"]), [])
        status, page = serve.api("GET", "/v1/deliveries?status=pending")
        self.assertEqual(page["data"], [])
        self.assertEqual(other["events"], ["x.y"])

    def test_slow_endpoint_does_not_delay_others(self):
        latency = 8.0  # the slow receiver's; well above what 20 fast deliveries take under ASan
        slow = self.start_mock("--latency", str(int(latency * 1000)), name="slow")
        fast = self.start_mock(name="fast")
        serve = self.start_serve("--timeout", "20s")
        slow_ep = self.create_endpoint(serve, slow.url + "/slow")
        fast_ep = self.create_endpoint(serve, fast.url + "/fast")
        t0 = time.monotonic()
        status, resp = serve.api("POST", "/v1/events", {"events": [
            {"event": "media.created", "data": {"i": i}} for i in range(20)]})
        self.assertEqual(status, 202, resp)
        fast_ids = {x["id"] for e in resp["events"] for x in e["deliveries"]
                    if x["endpoint_id"] == fast_ep["id"]}
        slow_ids = {x["id"] for e in resp["events"] for x in e["deliveries"]
                    if x["endpoint_id"] == slow_ep["id"]}
        self.assertEqual((len(fast_ids), len(slow_ids)), (20, 20), resp)
        self.wait_for(lambda: len(fast.records()) == 20, 15, "20 deliveries to the fast endpoint")
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, latency * 0.75,
                        "the fast endpoint waited behind the slow one (%.1f s)" % elapsed)

        # The receiver logs a request before hookd commits its attempt: poll the stored status.
        def succeeded():
            status, page = serve.api("GET", "/v1/deliveries?status=succeeded&limit=1000")
            self.assertEqual(status, 200, page)
            ids = {d["id"] for d in page["data"]}
            return ids if fast_ids <= ids else None
        done = self.wait_for(succeeded, 15, "the fast endpoint's deliveries to be succeeded")
        if time.monotonic() - t0 < latency:
            # No slow delivery can be answered yet, so none may be marked succeeded.
            self.assertEqual(done & slow_ids, set(), "only the fast endpoint's are done yet")
        self.assertEqual(done - fast_ids - slow_ids, set(), done)

    def test_redirect_is_not_followed_and_fails(self):
        # A receiver that answers 302 with a Location to a second path, counting hits on both.
        hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                hits.append(self.path)
                if self.path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", "/target")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)

        mock = self.start_mock("--status", "302")
        serve = self.start_serve(schedule="0")  # one attempt: dead right after it
        moved = self.create_endpoint(serve, "http://127.0.0.1:%d/moved" % srv.server_address[1])
        m302 = self.create_endpoint(serve, mock.url + "/m302")
        resp = self.ingest(serve, "media.created")
        for ref in resp["deliveries"]:
            d = self.wait_delivery(serve, ref["id"], "dead")
            self.assertEqual(d["attempt_count"], 1, d)
            self.assertEqual(d["last_status"], 302, d)
            self.assertEqual(d["last_error"], "http_status", d)
            a = d["attempts"][0]
            self.assertEqual(a["status"], 302, a)
            self.assertEqual(a["error"]["code"], "http_status", a)
            self.assertIsInstance(a["error"]["message"], str)
            if ref["endpoint_id"] == moved["id"]:
                self.assertEqual(a["headers"].get("location"), "/target", a)
        self.assertEqual(hits, ["/moved"], "the redirect must not be followed")
        self.assertEqual(len(mock.records()), 1)
        self.assertEqual(mock.records()[0]["status"], 302)
        status, dlq = serve.api("GET", "/v1/dlq?endpoint_id=" + m302["id"])
        self.assertEqual(status, 200)
        self.assertEqual(len(dlq["data"]), 1, dlq)


if __name__ == "__main__":
    unittest.main()
