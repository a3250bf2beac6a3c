"""Signing secrets (issue 5): POST /v1/endpoints/{id}/secret/rotate and Ed25519 endpoints.

After a rotation the old secret keeps signing beside the new one for --secret-overlap: one entry per
valid secret in webhook-signature, the new one first, while X-PixelPatrol-Signature and
X-Webhook-Signature carry the new secret only. Once the overlap has passed only the new secret signs.
An endpoint created with "signing": "ed25519" sends "v1a,..." entries, checked here with
`hookd mock --secret whpk_...` (the interop suite checks them with Node's own crypto)."""

import time
import unittest

from harness import HookdTestCase, new_secret, parse_time, sign_hex, sign_standard

OVERLAP_S = 4  # long enough for a delivery under ASan, short enough to wait out


class SigningCase(HookdTestCase):
    """A serve with a short --secret-overlap, and the helpers both test classes use."""

    def setUp(self):
        super().setUp()
        self.serve = self.start_serve("--secret-overlap", "%ds" % OVERLAP_S)

    def deliver(self, serve, mock, ep_id, path):
        """Ingests one event, waits for its delivery to ep_id and returns the mock's record."""
        ev = self.ingest(serve, "media.created", {"at": time.time()})
        self.wait_delivery(serve, self.deliveries_to(ev, ep_id)[0], "succeeded")
        recs = [r for r in mock.records_for(ev["id"]) if r["path"] == path]
        self.assertEqual(len(recs), 1, recs)
        return recs[0]

    def rotate(self, serve, ep_id, body=None):
        status, got = serve.api("POST", "/v1/endpoints/%s/secret/rotate" % ep_id, body)
        self.assertEqual(status, 200, got)
        return got

    def wait_overlap_over(self, until_text):
        """Polls the clock until the previous secret's end has passed."""
        until = parse_time(until_text)
        self.wait_for(lambda: time.time() > until + 0.05, OVERLAP_S + 5,
                      "the overlap to end at %s" % until_text)

    def entries(self, record):
        h = record["headers"]["webhook-signature"]
        self.assertNotIn("  ", h)
        self.assertEqual(h, h.strip())
        return h.split(" ")


class RotationTest(SigningCase):

    def test_old_and_new_secret_sign_until_the_overlap_ends(self):
        serve = self.serve
        old = new_secret()
        mock = self.start_mock(secret=old)  # the receiver still holds the old secret
        ep = self.create_endpoint(serve, mock.url + "/h", secret=old)
        self.assertEqual(ep["signing"], "hmac")
        self.assertIsNone(ep["public_key"])
        self.assertIsNone(ep["secret_previous_until"])

        before = time.time()
        got = self.rotate(serve, ep["id"])
        new = got["secret"]
        self.assertTrue(new.startswith("whsec_") and new != old, got)
        until = parse_time(got["secret_previous_until"])
        self.assertGreaterEqual(until, before + OVERLAP_S - 0.01, got)
        self.assertLessEqual(until, time.time() + OVERLAP_S + 0.01, got)
        shown = self.get_endpoint(serve, ep["id"])
        self.assertEqual(shown["secret"], new)
        self.assertEqual(shown["secret_previous_until"], got["secret_previous_until"])

        # During the overlap: both sign, the new one first; the hex headers use the new one.
        r = self.deliver(serve, mock, ep["id"], "/h")
        h, body = r["headers"], r["body"].encode()
        sigs = self.entries(r)
        self.assertEqual(sigs, [sign_standard(new, h["webhook-id"], h["webhook-timestamp"], body),
                                sign_standard(old, h["webhook-id"], h["webhook-timestamp"], body)])
        self.assertEqual(h["x-pixelpatrol-signature"], sign_hex(new, body))
        self.assertEqual(h["x-webhook-signature"], "sha256=" + sign_hex(new, body))
        # The mock holds the old secret: webhook-signature passes, the hex headers do not.
        self.assertIs(r["checks"]["standard"], True, r)
        self.assertIs(r["checks"]["pixelpatrol"], False, r)

        # After the overlap: only the new secret signs; the old one verifies nothing.
        self.wait_overlap_over(got["secret_previous_until"])
        r = self.deliver(serve, mock, ep["id"], "/h")
        h, body = r["headers"], r["body"].encode()
        self.assertEqual(self.entries(r),
                         [sign_standard(new, h["webhook-id"], h["webhook-timestamp"], body)])
        self.assertIs(r["verified"], False, r)
        self.assertIs(r["checks"]["standard"], False, r)
        self.assert_verifies(r, new)

    def test_one_previous_kept_chosen_secret_and_restart(self):
        serve = self.serve
        a, b = new_secret(), new_secret()
        mock = self.start_mock()
        ep = self.create_endpoint(serve, mock.url + "/h", secret=a)
        self.assertEqual(self.rotate(serve, ep["id"], {"secret": b})["secret"], b)
        # Rotating again during the overlap: b becomes the previous, a is dropped.
        c = self.rotate(serve, ep["id"], {"signing": "hmac"})["secret"]
        self.assertNotIn(c, (a, b))
        r = self.deliver(serve, mock, ep["id"], "/h")
        h, body = r["headers"], r["body"].encode()
        ts = h["webhook-timestamp"]
        self.assertEqual(self.entries(r), [sign_standard(c, h["webhook-id"], ts, body),
                                           sign_standard(b, h["webhook-id"], ts, body)])

        # The previous secret is stored: it still signs after a restart.
        self.stop_clean(serve)
        serve = self.start_serve("--secret-overlap", "%ds" % OVERLAP_S)
        r = self.deliver(serve, mock, ep["id"], "/h")
        h, body = r["headers"], r["body"].encode()
        ts = h["webhook-timestamp"]
        self.assertEqual(self.entries(r), [sign_standard(c, h["webhook-id"], ts, body),
                                           sign_standard(b, h["webhook-id"], ts, body)])

        # PATCH replaces the secret at once: no overlap, the previous one is gone.
        d = new_secret()
        status, got = serve.api("PATCH", "/v1/endpoints/" + ep["id"], {"secret": d})
        self.assertEqual(status, 200, got)
        self.assertIsNone(got["secret_previous_until"], got)
        r = self.deliver(serve, mock, ep["id"], "/h")
        self.assert_verifies(r, d)
        self.assertEqual(len(self.entries(r)), 1, r)

    def test_zero_overlap_stops_the_old_secret_at_once(self):
        # A database of its own: setUp's serve holds the default one (one serve per file).
        serve = self.start_serve("--secret-overlap", "0", db=self.tmp + "/zero.db")
        mock = self.start_mock()
        ep = self.create_endpoint(serve, mock.url + "/h", secret=new_secret())
        got = self.rotate(serve, ep["id"])
        self.assertIsNone(got["secret_previous_until"], got)
        r = self.deliver(serve, mock, ep["id"], "/h")
        self.assertEqual(len(self.entries(r)), 1, r)
        self.assert_verifies(r, got["secret"])

    def test_rotate_errors(self):
        serve = self.serve
        ep = self.create_endpoint(serve, "http://127.0.0.1:9/h", secret=new_secret())
        path = "/v1/endpoints/%s/secret/rotate" % ep["id"]
        self.assert_error(serve.api("POST", "/v1/endpoints/ep_nope/secret/rotate"), 404,
                          "not_found", check_field=False)
        for body, field in [({"secret": "whsec_short"}, "secret"),
                            ({"secret": 5}, "secret"),
                            ({"signing": "rsa"}, "signing"),
                            ({"signing": "ed25519", "secret": new_secret()}, "secret"),
                            ({"secret": "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
                             "secret"),
                            ({"colour": "blue"}, "colour"),
                            ({"secret": ep["secret"]}, "secret")]:
            with self.subTest(body=body):
                self.assert_error(serve.api("POST", path, body), 400, "invalid_field", field)
        self.assert_error(serve.api("GET", path), 405, "method_not_allowed", check_field=False)
        # Nothing above changed the secret.
        self.assertEqual(self.get_endpoint(serve, ep["id"])["secret"], ep["secret"])


class Ed25519Test(SigningCase):

    def test_ed25519_endpoint_sends_v1a_and_rotates(self):
        serve = self.serve
        ep = self.create_endpoint(serve, "http://127.0.0.1:9/placeholder", signing="ed25519")
        self.assertEqual(ep["signing"], "ed25519")
        self.assertTrue(ep["secret"].startswith("whsk_"), ep)
        pub = ep["public_key"]
        self.assertTrue(pub.startswith("whpk_") and len(pub) == 5 + 44, ep)
        # The private key is shown only where it was made: not on GET, PATCH or in the list.
        shown = self.get_endpoint(serve, ep["id"])
        self.assertNotIn("secret", shown)
        self.assertEqual(shown["public_key"], pub)
        mock = self.start_mock("--reject-invalid", secret=pub)
        status, got = serve.api("PATCH", "/v1/endpoints/" + ep["id"], {"url": mock.url + "/e"})
        self.assertEqual(status, 200, got)
        self.assertNotIn("secret", got)
        listed = [e for e in self.list_all(serve, "/v1/endpoints") if e["id"] == ep["id"]]
        self.assertEqual(listed[0]["public_key"], pub)

        r = self.deliver(serve, mock, ep["id"], "/e")
        h = r["headers"]
        self.assertEqual(len(self.entries(r)), 1, h)
        self.assertTrue(h["webhook-signature"].startswith("v1a,"), h)
        self.assertIs(r["verified"], True, r)
        # The hex schemes are HMAC: an Ed25519 endpoint sends neither.
        self.assertNotIn("x-pixelpatrol-signature", h)
        self.assertNotIn("x-webhook-signature", h)
        self.assertIn("x-pixelpatrol-timestamp", h)

        # Rotation: a new key pair; the old key's v1a keeps the old public key's receiver happy.
        got = self.rotate(serve, ep["id"])
        self.assertTrue(got["secret"].startswith("whsk_") and got["secret"] != ep["secret"])
        self.assertNotEqual(got["public_key"], pub)
        r = self.deliver(serve, mock, ep["id"], "/e")
        sigs = self.entries(r)
        self.assertEqual(len(sigs), 2, r)
        self.assertTrue(all(s.startswith("v1a,") for s in sigs), sigs)
        self.assertIs(r["verified"], True, r)
        # A receiver with the new public key accepts it too.
        new_mock = self.start_mock("--reject-invalid", secret=got["public_key"])
        status, _ = serve.api("PATCH", "/v1/endpoints/" + ep["id"], {"url": new_mock.url + "/e"})
        self.assertEqual(status, 200)
        r = self.deliver(serve, new_mock, ep["id"], "/e")
        self.assertIs(r["verified"], True, r)

        # Switching kinds by rotation: HMAC from now on, the old Ed25519 key beside it.
        got = self.rotate(serve, ep["id"], {"signing": "hmac"})
        self.assertTrue(got["secret"].startswith("whsec_"), got)
        self.assertIsNone(got["public_key"])
        self.assertEqual(self.get_endpoint(serve, ep["id"])["secret"], got["secret"])
        r = self.deliver(serve, new_mock, ep["id"], "/e")
        sigs = self.entries(r)
        self.assertEqual([s.split(",")[0] for s in sigs], ["v1", "v1a"], sigs)
        self.assertIs(r["verified"], True, r)  # the whpk_ receiver checks the v1a entry
        h, body = r["headers"], r["body"].encode()
        self.assertEqual(sigs[0], sign_standard(got["secret"], h["webhook-id"],
                                                h["webhook-timestamp"], body))
        self.assertEqual(h["x-pixelpatrol-signature"], sign_hex(got["secret"], body))

    def test_create_validation(self):
        serve = self.serve
        url = "http://127.0.0.1:9/x"
        ep = self.create_endpoint(serve, url, signing="ed25519")
        for body, field in [({"url": url, "signing": "rsa"}, "signing"),
                            ({"url": url, "signing": 1}, "signing"),
                            ({"url": url, "signing": "ed25519", "secret": new_secret()},
                             "secret"),
                            ({"url": url, "signing": "hmac", "secret": ep["secret"]}, "secret"),
                            ({"url": url, "secret": ep["public_key"]}, "secret"),
                            ({"url": url, "public_key": ep["public_key"]}, "public_key")]:
            with self.subTest(body=body):
                self.assert_error(serve.api("POST", "/v1/endpoints", body), 400,
                                  "invalid_field", field)
        # A whsk_ secret given on create chooses Ed25519 by itself.
        again = self.create_endpoint(serve, url, secret=ep["secret"])
        self.assertEqual((again["signing"], again["public_key"]), ("ed25519", ep["public_key"]))
        self.assert_error(serve.api("PATCH", "/v1/endpoints/" + ep["id"], {"signing": "hmac"}),
                          400, "invalid_field", "signing")


if __name__ == "__main__":
    unittest.main()
