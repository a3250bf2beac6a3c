"""PostgreSQL (issue 14, one node): `hookd serve --db postgres://...` on a throwaway cluster
(tests/pg/cluster.sh, or the one tests/pg/with-cluster.sh gave in HOOKD_TEST_PG_URL), each test
on a schema of its own: an event reaches its receiver, everything survives a restart, keys made
with `hookd key` work, and the URL's password never shows."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest
import urllib.parse

from harness import HookdTestCase, new_secret

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER_SH = os.path.join(HERE, "..", "pg", "cluster.sh")


def psql_bin():
    for p in ("/usr/lib/postgresql/15/bin/psql", shutil.which("psql")):
        if p and os.access(p, os.X_OK):
            return p
    raise unittest.SkipTest("psql not found (scripts/install-deps --test installs postgresql)")


class PgCluster:
    """The admin URL of a running cluster: HOOKD_TEST_PG_URL's, or one started here."""

    def __init__(self):
        self.dir = None
        self.url = os.environ.get("HOOKD_TEST_PG_URL")
        if self.url:
            return
        self.dir = tempfile.mkdtemp(prefix="hookd-pg.", dir="/tmp")
        res = subprocess.run([CLUSTER_SH, "start", self.dir], capture_output=True, text=True,
                             timeout=120)
        if res.returncode != 0:
            self.stop()
            raise RuntimeError("cannot start a PostgreSQL cluster: " + res.stderr)
        self.url = res.stdout.strip()

    def sql(self, statement, url=None):
        res = subprocess.run([psql_bin(), "-X", "-v", "ON_ERROR_STOP=1", "-tA", "-c", statement,
                              url or self.url], capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise AssertionError("%s: %s" % (statement, res.stderr))
        return res.stdout.strip()

    def stop(self):
        if self.dir:
            subprocess.run([CLUSTER_SH, "stop", self.dir], capture_output=True, timeout=120)
            self.dir = None


class PostgresTest(HookdTestCase):

    @classmethod
    def setUpClass(cls):
        psql_bin()
        cls.cluster = PgCluster()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()

    def setUp(self):
        super().setUp()
        self.schema = "e2e_%d_%s" % (os.getpid(), self.id().rsplit(".", 1)[-1][:40])
        self.cluster.sql("CREATE SCHEMA %s" % self.schema)
        self.addCleanup(self.cluster.sql, "DROP SCHEMA IF EXISTS %s CASCADE" % self.schema)
        # The test schema through libpq's options; a password that trust auth ignores and
        # that must never be shown.
        sep = "&" if "?" in self.cluster.url else "?"
        self.url = self.cluster.url + sep + urllib.parse.urlencode(
            {"options": "-csearch_path=" + self.schema, "password": "pg-e2e-secret-5512"})

    def serve(self, *extra, api_key="pg-e2e-admin-key"):
        return self.start_serve("--db", self.url, *extra, db=False, api_key=api_key)

    def test_event_delivered_and_kept_across_a_restart(self):
        secret = new_secret()
        mock = self.start_mock(secret=secret)
        serve = self.serve()
        ep = self.create_endpoint(serve, mock.url + "/in", secret=secret,
                                  events=["order.paid"])
        resp = self.ingest(serve, "order.paid", {"n": 1, "text": "caf\u00e9 \"q\""},
                           headers={"Idempotency-Key": "pg-key-1"})
        dlv = resp["deliveries"][0]["id"]
        d = self.wait_delivery(serve, dlv, "succeeded")
        self.assertEqual(d["attempt_count"], 1, d)
        recs = mock.records_for(resp["id"])
        self.assertEqual(len(recs), 1, recs)
        self.assertIs(recs[0]["verified"], True, recs[0])
        self.assert_verifies(recs[0], secret)
        self.assertEqual([a["status"] for a in d["attempts"]], [200], d)
        # The rows are in PostgreSQL, in the test's schema.
        self.assertEqual(self.cluster.sql(
            "SELECT status FROM %s.deliveries WHERE id = '%s'" % (self.schema, dlv)), "1")
        self.stop_clean(serve)

        # A restart finds the endpoint, the event, the idempotency key.
        serve = self.serve()
        self.assertEqual(self.get_endpoint(serve, ep["id"])["url"], mock.url + "/in")
        again = self.ingest(serve, "order.paid", {"n": 1, "text": "caf\u00e9 \"q\""},
                            headers={"Idempotency-Key": "pg-key-1"})
        self.assertEqual(again["id"], resp["id"], "the same key answers the first request")
        second = self.ingest(serve, "order.paid", {"n": 2})
        self.wait_delivery(serve, second["deliveries"][0]["id"], "succeeded")
        status, events = serve.api("GET", "/v1/events?limit=10")
        self.assertEqual(status, 200, events)
        self.assertEqual([e["id"] for e in events["data"]], [second["id"], resp["id"]])
        self.stop_clean(serve)
        for proc in (serve,):
            self.assertNotIn("pg-e2e-secret-5512", proc.stderr_text() + "\n".join(proc.lines))
        self.assertIn("password=***", serve.stderr_text())

    def test_keys_made_with_hookd_key_on_postgres(self):
        res = self.run_hookd("key", "create", "--scope", "ingest", "--name", "pg", "--db",
                             self.url)
        self.assertEqual(res.returncode, 0, res.stderr)
        fields = dict(re.findall(r"^(\w+):[ \t]*(.*)$", res.stdout, re.M))
        key, key_id = fields.get("key", ""), fields.get("id", "")
        self.assertTrue(key.startswith("hk_") and key_id.startswith("key_"), res.stdout)
        serve = self.serve()
        status, _ = serve.api("POST", "/v1/events", {"event": "a.b", "data": {}}, key=key)
        self.assertEqual(status, 202)
        status, _ = serve.api("GET", "/v1/endpoints", key=key)
        self.assertEqual(status, 403, "an ingest key may only ingest")
        listed = self.run_hookd("key", "list", "--db", self.url)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn(key_id, listed.stdout)
        res = self.run_hookd("key", "revoke", key_id, "--db", self.url)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.wait_for(lambda: serve.api("POST", "/v1/events", {"event": "a.b", "data": {}},
                                        key=key)[0] == 401, message="the revoked key refused")
        self.stop_clean(serve)

    def test_no_api_key_is_refused_in_one_line(self):
        res = self.run_hookd("serve", "--db", self.url, "--listen", "127.0.0.1:0")
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(len(res.stderr.strip().splitlines()), 1, res.stderr)
        self.assertIn("--api-key-file", res.stderr)
        keyfile = os.path.join(self.tmp, "pg.key")
        serve = self.serve("--api-key-file", keyfile, api_key=None)
        with open(keyfile) as f:
            serve.api_key = f.read().strip()
        self.assertEqual(serve.api("GET", "/v1/endpoints")[0], 200)
        self.stop_clean(serve)


if __name__ == "__main__":
    unittest.main()
