"""Several nodes on one PostgreSQL (issue 14): an endpoint change on one node takes effect on every
node within 1 s (docs/architecture.md#several-nodes-notifications).

Two `hookd serve` processes share one --db. Each keeps its endpoints in memory (the fan-out of an
ingest reads that cache, not the store), so what is asserted here is each node's own view: its API
and the endpoints its ingest fans out to. Each endpoint is delivered by the node that owns it (a
lease, docs/scaling.md): the wake-up test makes endpoints until node 2 owns one. PostgreSQL only
(the e2e_*_pg suite, through tests/pg/with-cluster.sh)."""

import os
import re
import time
import unittest

from harness import (HookdTestCase, db_url, new_secret, pg_sql, sign_hex, sign_standard)

PROPAGATION_S = 1.0  # the goal: a change takes effect on every node within this


@unittest.skipUnless(os.environ.get("HOOKD_TEST_PG_URL"), "PostgreSQL only (with-cluster.sh)")
class EndpointSyncTest(HookdTestCase):

    def setUp(self):
        super().setUp()
        self.db = os.path.join(self.tmp, "shared.db")
        tag = "%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000)
        self.ids = ["n1-" + tag, "n2-" + tag]
        self.mock = self.start_mock()
        self.n1 = self.start_serve("--node-id", self.ids[0], db=self.db)
        self.n2 = self.start_serve("--node-id", self.ids[1], db=self.db)

    def fans_out(self, serve, event, ep_id):
        """Ingests one event of type event on serve: whether its fan-out chose ep_id."""
        resp = self.ingest(serve, event)
        return ep_id in [x["endpoint_id"] for x in resp["deliveries"]]

    def within(self, predicate, what):
        """Polls predicate (no sleep between: each poll is an API call) and asserts it held
        within PROPAGATION_S of now; returns the time it took."""
        t0 = time.monotonic()
        self.wait_for(predicate, 10.0, what, interval=0.02)
        took = time.monotonic() - t0
        self.assertLess(took, PROPAGATION_S, "%s took %.3f s" % (what, took))
        return took

    def test_create_patch_delete_reach_the_other_node(self):
        ep = self.create_endpoint(self.n1, self.mock.url + "/a", events=["sync.one"])
        # The other node's API reads the store: listed at once.
        listed = [e["id"] for e in self.list_all(self.n2, "/v1/endpoints")]
        self.assertIn(ep["id"], listed)
        # Its fan-out reads its own cache: that is what the notification updates.
        self.within(lambda: self.fans_out(self.n2, "sync.one", ep["id"]),
                    "node 2's fan-out to the endpoint node 1 created")

        status, got = self.n2.api("PATCH", "/v1/endpoints/" + ep["id"], {"events": ["sync.two"]})
        self.assertEqual(status, 200, got)
        self.within(lambda: self.fans_out(self.n1, "sync.two", ep["id"]),
                    "node 1's fan-out after node 2's PATCH of the event types")
        self.assertFalse(self.fans_out(self.n1, "sync.one", ep["id"]),
                         "node 1 still fans out the event type the PATCH removed")

        filters = {"kind": "big"}
        status, got = self.n2.api("PATCH", "/v1/endpoints/" + ep["id"], {"filters": filters})
        self.assertEqual(status, 200, got)
        small = lambda: ep["id"] not in [  # noqa: E731
            x["endpoint_id"] for x in
            self.ingest(self.n1, "sync.two", {"kind": "small"})["deliveries"]]
        self.within(small, "node 1's fan-out after node 2's PATCH of the filters")
        big = self.ingest(self.n1, "sync.two", {"kind": "big"})
        self.assertIn(ep["id"], [x["endpoint_id"] for x in big["deliveries"]])

        status, _ = self.n1.api("DELETE", "/v1/endpoints/" + ep["id"])
        self.assertEqual(status, 204)
        gone = lambda: ep["id"] not in [  # noqa: E731
            x["endpoint_id"] for x in
            self.ingest(self.n2, "sync.two", {"kind": "big"})["deliveries"]]
        self.within(gone, "node 2's fan-out to stop after node 1's delete")
        status, _ = self.n2.api("GET", "/v1/endpoints/" + ep["id"])
        self.assertEqual(status, 404)

    def test_rotation_on_one_node_signs_on_the_other(self):
        old, new = new_secret(), new_secret()
        ep = self.create_endpoint(self.n1, self.mock.url + "/r", events=["sync.rot"], secret=old)
        self.within(lambda: self.fans_out(self.n2, "sync.rot", ep["id"]),
                    "node 2's fan-out to the new endpoint")
        status, got = self.n1.api("POST", "/v1/endpoints/%s/secret/rotate" % ep["id"],
                                  {"secret": new})
        self.assertEqual(status, 200, got)

        def signed_with_new():
            # An event ingested on node 2 is sent at once by node 2 (and maybe by node 1 too):
            # every request that reached the receiver must carry the new secret's signature.
            ev = self.ingest(self.n2, "sync.rot", {"at": time.time()})
            recs = self.wait_for(lambda: self.mock.records_for(ev["id"]), 15.0,
                                 "the delivery of %s" % ev["id"])
            for r in recs:
                h, body = r["headers"], r["body"].encode()
                mine = sign_standard(new, h["webhook-id"], h["webhook-timestamp"], body)
                if mine not in h["webhook-signature"].split(" "):
                    return False
                self.assertEqual(h["x-pixelpatrol-signature"], sign_hex(new, body))
            return True
        self.wait_for(signed_with_new, 10.0, "node 2 to sign with the rotated secret",
                      interval=0.02)
        self.assertTrue(signed_with_new())

    def test_a_killed_listen_connection_comes_back_and_catches_up(self):
        ep = self.create_endpoint(self.n1, self.mock.url + "/k", events=["sync.k1"])
        self.within(lambda: self.fans_out(self.n2, "sync.k1", ep["id"]),
                    "node 2's fan-out to the new endpoint")
        # A change nobody is told of, as one made while node 2 was not listening is lost.
        pg_sql(db_url(self.db), "UPDATE endpoints SET events = '[\"sync.k2\"]' WHERE id = '%s'"
               % ep["id"])
        self.assertTrue(self.fans_out(self.n2, "sync.k1", ep["id"]),
                        "node 2 changed its cache without being told")
        before = self.n2.stderr_text().count("listen: connected")
        self.assertEqual(before, 1, self.n2.stderr_tail())
        killed = pg_sql(os.environ["HOOKD_TEST_PG_URL"],
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE application_name = 'hookd listen %s'"
                        " AND datname = current_database()" % self.ids[1])
        self.assertEqual(killed, "1", "node 2's listening connection")
        self.wait_for(lambda: self.n2.stderr_text().count("listen: connected") == 2, 10.0,
                      "node 2's listener to reconnect")
        log = self.n2.stderr_text()
        self.assertEqual(log.count("listen: connection lost"), 1, log[-3000:])
        # On reconnecting it reads every endpoint again.
        self.within(lambda: self.fans_out(self.n2, "sync.k2", ep["id"]),
                    "node 2 to pick up the change made while it was away")
        # And hears the next change again.
        status, got = self.n1.api("PATCH", "/v1/endpoints/" + ep["id"], {"events": ["sync.k3"]})
        self.assertEqual(status, 200, got)
        self.within(lambda: self.fans_out(self.n2, "sync.k3", ep["id"]),
                    "node 2's fan-out after the reconnect")
        # The start-up line names the node, once (docs/operations.md --node-id).
        self.assertEqual(len(re.findall(r"hookd started .* node=%s(?:\s|$)"
                                        % re.escape(self.ids[1]), log, re.M)), 1, log[:3000])


@unittest.skipUnless(os.environ.get("HOOKD_TEST_PG_URL"), "PostgreSQL only (with-cluster.sh)")
class WakeTest(HookdTestCase):
    """An event ingested on node 1 reaches a receiver that only node 2 can send to: node 2 must
    hear of the new rows at once (hookd_pending), since its window already holds everything it
    paged in. Node 1 cannot send at all: its one request slot (--max-in-flight 1) hangs on a
    receiver that answers after a minute, so nothing of what is measured is node 1's, and no
    attempt of the two nodes collides (until endpoint ownership lands both would send)."""

    SAMPLES = 10

    def test_an_event_ingested_on_one_node_is_sent_by_the_other_at_once(self):
        db = os.path.join(self.tmp, "shared.db")
        rec = self.start_mock()
        # wake.test reaches the receiver from node 2 only; node 1 dials an address nothing
        # listens on (refused at once).
        pin = "wake.test:%d:" % rec.port
        n1 = self.start_serve("--node-id", "wake-n1", "--resolve", pin + "127.0.0.2", db=db)
        n2 = self.start_serve("--node-id", "wake-n2", "--resolve", pin + "127.0.0.1", db=db)
        n1.node_id, n2.node_id = "wake-n1", "wake-n2"
        # Only an endpoint's owner sends to it (a lease, docs/scaling.md): make endpoints on
        # node 1 until node 2 owns one (rendezvous hashing gives it half of them).
        for _ in range(20):
            ep = self.create_endpoint(n1, "http://wake.test:%d/w" % rec.port,
                                      events=["sync.wake"])
            if self.wait_owned([ep["id"]], [n1, n2], db=db)[ep["id"]] == n2.node_id:
                break
            self.assertEqual(n1.api("DELETE", "/v1/endpoints/" + ep["id"])[0], 204)
        else:
            self.fail("node 2 owns none of 20 endpoints")
        took = []
        for i in range(self.SAMPLES):
            ev = self.ingest(n1, "sync.wake", {"i": i})
            t0 = time.monotonic()  # after the 202: the rows are committed
            self.wait_for(lambda: rec.records_for(ev["id"]), 10.0,
                          "node 2 to send %s" % ev["id"], interval=0.002)
            took.append(time.monotonic() - t0)
        self.assertLess(max(took), PROPAGATION_S, "202 on node 1 to the receiver via node 2: %s"
                        % ["%.3f" % t for t in took])

if __name__ == "__main__":
    unittest.main()
