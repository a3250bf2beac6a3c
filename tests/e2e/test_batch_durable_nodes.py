"""Durable batches with several nodes (issue 14, item 2): a failed batch whose owner is killed
with kill -9 before its retry is retried by the next owner, at its time, with the same batch_id
and the same events. PostgreSQL only (e2e_batch_durable_nodes_pg, through with-cluster.sh)."""

import os
import time
import unittest

from test_batch_durable import SCHEDULE, BatchDurableBase


@unittest.skipUnless(os.environ.get("HOOKD_TEST_PG_URL"), "needs PostgreSQL (with-cluster.sh)")
class BatchDurableNodesTest(BatchDurableBase):

    def test_a_failed_batch_is_retried_whole_by_the_next_owner(self):
        recv = self.fail_first_receiver()
        nodes = self.start_nodes(2, schedule=SCHEDULE)
        _, dlvs, batch_id, ids, retry_at = self.make_batch(nodes[0], recv, nodes=nodes)
        owner = self.node_of(recv.snapshot("/b")[0])
        dead = next(n for n in nodes if n.node_id == owner)
        alive = next(n for n in nodes if n is not dead)
        dead.kill9()
        self.assertLess(time.time(), retry_at, "killed before the retry was due")
        self.assert_same_batch_retried(alive, recv, dlvs, batch_id, ids, retry_at)
        self.assertEqual(self.node_of(recv.snapshot("/b")[1]), alive.node_id,
                         "the next owner sent the retry")


if __name__ == "__main__":
    unittest.main()
