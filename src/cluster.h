/* cluster: endpoint ownership among several `hookd serve` nodes on one
 * PostgreSQL database (docs/architecture.md#several-nodes, docs/scaling.md).
 *
 * Each endpoint is owned by at most one node at a time through a lease row
 * (endpoint_owner); the owner does all of that endpoint's scheduling. The
 * `hookd-cluster` thread, on a connection of its own, ticks every tenth of
 * the lease: it moves its node's heartbeat, reads the live nodes, renews its
 * leases, decides by rendezvous hashing over the live nodes which endpoints
 * of the endpoint cache this node should own, claims the free or expired
 * ones among them, and asks the dispatcher to release the ones another live
 * node should own (the dispatcher deletes the lease once the endpoint is
 * idle and its results are committed). A node that cannot renew stops
 * delivering at its local deadline (the dispatcher enforces it: see
 * dispatch_own_deadline), before its leases expire in the database.
 *
 * Only on a backend with the cluster operations (store_cluster_supported);
 * on SQLite cluster_open makes nothing and the dispatcher owns every
 * endpoint. */
#ifndef HOOKD_CLUSTER_H
#define HOOKD_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define CLUSTER_TICK_MIN_MS 100

/* ---- the pure rules (cluster_plan.c) ---- */

/* The rendezvous score of (node_id, endpoint_id): the node with the highest
 * score over an endpoint owns it. */
uint64_t cluster_score(const char *node_id, const char *endpoint_id);
/* The index in nodes[0..n) (n >= 1) of the node that should own
 * endpoint_id: the highest score, the smaller id on a tie. */
size_t cluster_owner(const char (*nodes)[ID_MAX], size_t n, const char *endpoint_id);
/* The tick for a lease: a tenth of it, at least CLUSTER_TICK_MIN_MS. */
int64_t cluster_tick_ms(int64_t lease_ms);
/* Until when (monotonic ms) a node may schedule its endpoints after a renew
 * that STARTED at renew_started_mono succeeded: start + lease - one tick,
 * so it stops before the lease it renewed can run out in the database. */
int64_t cluster_deadline(int64_t renew_started_mono, int64_t lease_ms);
/* The wait before the next try after `failures` failed ticks in a row
 * (>= 1): a tick, doubling, at most half the lease. */
int64_t cluster_backoff_ms(int64_t lease_ms, unsigned failures);
/* The bounds of the cluster connection's statements (store_set_timeouts):
 * a quarter of the lease for a statement, a tick for a lock wait, so a
 * renew or a claim that hangs fails and is tried again well before the
 * local deadline (docs/scaling.md#a-node-cut-off-from-the-database). */
int64_t cluster_statement_timeout_ms(int64_t lease_ms);
int64_t cluster_lock_timeout_ms(int64_t lease_ms);

/* ---- the thread (cluster.c) ---- */

struct cluster;
struct dispatch;
struct epcache;

struct cluster_config {
	const char *db_url;
	const char *node_id;   /* this node's id (config's node_id) */
	int64_t lease_ms;      /* --node-lease */
	struct epcache *cache; /* the endpoints to share out; must outlive the cluster */
};

/* Opens the cluster's own store connection. Returns 0 with *out set, or 0
 * with *out NULL when the backend runs a single node (SQLite: nothing to
 * do, the dispatcher owns everything), or -1 with a reason in err. cfg's
 * strings must outlive the cluster. */
int cluster_open(const struct cluster_config *cfg, struct cluster **out, char *err,
		 size_t errlen);
/* Starts the hookd-cluster thread, which tells d what it gains and loses.
 * Returns 0, or -1 with a reason in err. */
int cluster_run(struct cluster *c, struct dispatch *d, char *err, size_t errlen);
/* The stop begins: from now on the thread only keeps the heartbeat and the
 * leases alive (no claims, nothing told to the dispatcher) while the
 * dispatcher finishes what is in flight. NULL is fine. */
void cluster_quiesce(struct cluster *c);
/* Stops the thread (within a tick and a statement), then, if leave, deletes
 * this node's leases and its nodes row, so the other nodes take its
 * endpoints over at their next tick rather than after the lease. Call it
 * after the dispatcher stopped and its results were committed. Frees c
 * (NULL is fine). */
void cluster_stop(struct cluster *c, bool leave);

#endif
