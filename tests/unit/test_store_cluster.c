/* Unit tests of the PostgreSQL backend's cluster operations
 * (docs/architecture.md#several-nodes): heartbeats and live nodes, and the
 * endpoint leases: a valid lease is never taken, an expired one is, a
 * renew keeps a node's leases, a release and a leave give them back, and a
 * pending page of a node reads only its own endpoints' rows. Two store
 * connections play two nodes. Registered only through
 * tests/pg/with-cluster.sh (tests/meson.build). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_pg_internal.h"
#include "test_store_db.h"
#include "util.h"

#define LEASE_MS 60000

static struct test_db tdb;
static struct store *a, *b; /* node "a" and node "b" */

static void open_node(const char *node, struct store **out)
{
	char err[256] = "";
	store_set_node_id(node);
	cr_assert_eq(store_open(tdb.url, out, err, sizeof err), STORE_OK, "open: %s", err);
	store_set_node_id(NULL);
}

static void setup(void)
{
	test_db_make(&tdb, "hookd-cluster");
	open_node("a", &a);
	open_node("b", &b);
}

static void teardown(void)
{
	store_close(a);
	store_close(b);
	a = b = NULL;
	test_db_remove(&tdb);
}

TestSuite(cluster, .init = setup, .fini = teardown);

/* Claims ids for node on st; returns how many it got (the got ids in got). */
static size_t claim(struct store *st, const char *node, const char *const *ids, size_t n,
		    char got[][ID_MAX])
{
	char(*out)[ID_MAX] = NULL;
	size_t n_out = 0;
	cr_assert_eq(store_lease_claim(st, node, LEASE_MS, ids, n, &out, &n_out), STORE_OK);
	for (size_t i = 0; got != NULL && i < n_out; i++)
		memcpy(got[i], out[i], ID_MAX);
	free(out);
	return n_out;
}

static size_t renew(struct store *st, const char *node)
{
	char(*out)[ID_MAX] = NULL;
	size_t n = 0;
	cr_assert_eq(store_lease_renew(st, node, LEASE_MS, &out, &n), STORE_OK);
	free(out);
	return n;
}

Test(cluster, heartbeat_makes_a_node_live)
{
	cr_assert(store_cluster_supported(a));
	cr_assert_eq(store_node_heartbeat(a, "a"), STORE_OK);
	cr_assert_eq(store_node_heartbeat(b, "b"), STORE_OK);
	cr_assert_eq(store_node_heartbeat(a, "a"), STORE_OK); /* again: an update */
	char(*live)[ID_MAX] = NULL;
	size_t n = 0;
	cr_assert_eq(store_nodes_live(a, LEASE_MS, &live, &n), STORE_OK);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(live[0], "a");
	cr_assert_str_eq(live[1], "b");
	free(live);
	/* A heartbeat older than the lease is not live. */
	test_db_pg_exec(&tdb, "UPDATE nodes SET heartbeat_at = now() - interval '2 minutes'"
			      " WHERE id = 'b'");
	cr_assert_eq(store_nodes_live(a, LEASE_MS, &live, &n), STORE_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(live[0], "a");
	free(live);
	/* A node silent for more than a day loses its row at the next heartbeat. */
	test_db_pg_exec(&tdb, "UPDATE nodes SET heartbeat_at = now() - interval '25 hours'"
			      " WHERE id = 'b'");
	cr_assert_eq(store_node_heartbeat(a, "a"), STORE_OK);
	test_db_pg_exec(&tdb, "DO $$ BEGIN IF (SELECT count(*) FROM nodes) <> 1 THEN"
			      " RAISE 'the old row stayed'; END IF; END $$");
}

Test(cluster, a_valid_lease_is_never_taken)
{
	const char *ids[] = {"ep_1", "ep_2"};
	char got[2][ID_MAX];
	cr_assert_eq(claim(a, "a", ids, 2, got), 2);
	/* b asks for both and for a free one: it gets only the free one. */
	const char *more[] = {"ep_1", "ep_2", "ep_3"};
	cr_assert_eq(claim(b, "b", more, 3, got), 1);
	cr_assert_str_eq(got[0], "ep_3");
	cr_assert_eq(renew(a, "a"), 2);
	cr_assert_eq(renew(b, "b"), 1);
}

Test(cluster, an_expired_lease_is_taken)
{
	const char *ids[] = {"ep_1", "ep_2"};
	char got[2][ID_MAX];
	cr_assert_eq(claim(a, "a", ids, 2, got), 2);
	test_db_pg_exec(&tdb, "UPDATE endpoint_owner SET lease_until = now() - interval '1 second'"
			      " WHERE endpoint_id = 'ep_2'");
	cr_assert_eq(claim(b, "b", ids, 2, got), 1);
	cr_assert_str_eq(got[0], "ep_2");
	/* a's renew no longer returns it: a lost it. */
	char(*mine)[ID_MAX] = NULL;
	size_t n = 0;
	cr_assert_eq(store_lease_renew(a, "a", LEASE_MS, &mine, &n), STORE_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(mine[0], "ep_1");
	free(mine);
}

/* The figure a node's fetch chooses its plan by (pg_leases_held): what
 * the last renewal returned, plus what was claimed since. One process here
 * holds two nodes' stores, so b's claim counts too; in hookd a process is
 * one node. */
Test(cluster, the_leases_held_follow_claims_and_renewals)
{
	pg_leases_held_set(0);
	const char *ids[] = {"ep_1", "ep_2"}, *third[] = {"ep_3"};
	cr_assert_eq(claim(a, "a", ids, 2, NULL), 2);
	cr_assert_eq(pg_leases_held(), 2);
	cr_assert_eq(claim(a, "a", ids, 2, NULL), 0, "held already: nothing claimed");
	cr_assert_eq(pg_leases_held(), 2);
	cr_assert_eq(claim(a, "a", third, 1, NULL), 1);
	cr_assert_eq(pg_leases_held(), 3);
	test_db_pg_exec(&tdb, "UPDATE endpoint_owner SET lease_until = now() - interval '1 second'"
			      " WHERE endpoint_id = 'ep_2'");
	cr_assert_eq(claim(b, "b", ids, 2, NULL), 1);
	cr_assert_eq(renew(a, "a"), 2);
	cr_assert_eq(pg_leases_held(), 2, "a renewal sets the figure to what it returned");
}

Test(cluster, a_renew_keeps_an_expired_lease_nobody_took)
{
	const char *ids[] = {"ep_1"};
	cr_assert_eq(claim(a, "a", ids, 1, NULL), 1);
	test_db_pg_exec(&tdb, "UPDATE endpoint_owner SET lease_until = now() - interval '1 second'");
	cr_assert_eq(renew(a, "a"), 1);
	/* Valid again: b cannot take it. */
	cr_assert_eq(claim(b, "b", ids, 1, NULL), 0);
}

Test(cluster, release_and_leave_give_leases_back)
{
	const char *ids[] = {"ep_1", "ep_2", "ep_3"};
	cr_assert_eq(claim(a, "a", ids, 3, NULL), 3);
	cr_assert_eq(store_node_heartbeat(a, "a"), STORE_OK);
	/* b's release of a's lease does nothing. */
	cr_assert_eq(store_lease_release(b, "b", "ep_1"), STORE_OK);
	cr_assert_eq(claim(b, "b", ids, 1, NULL), 0);
	cr_assert_eq(store_lease_release(a, "a", "ep_1"), STORE_OK);
	cr_assert_eq(claim(b, "b", ids, 1, NULL), 1);
	cr_assert_eq(store_node_leave(a, "a"), STORE_OK);
	cr_assert_eq(renew(a, "a"), 0);
	cr_assert_eq(claim(b, "b", ids, 3, NULL), 2);
	char(*live)[ID_MAX] = NULL;
	size_t n = 0;
	cr_assert_eq(store_nodes_live(b, LEASE_MS, &live, &n), STORE_OK);
	cr_assert_eq(n, 0); /* a's row went with it */
	free(live);
}

static void add_pending(const char *ep, const char *dlv)
{
	char sql[1024];
	snprintf(sql, sizeof sql,
		 "INSERT INTO endpoints (id, url, events, secret, enabled, created_at, updated_at)"
		 " VALUES ('%s', 'https://h.test/', '[\"*\"]', 'whsec_x', 1, 0, 0)"
		 " ON CONFLICT DO NOTHING;"
		 "INSERT INTO deliveries (id, event_id, endpoint_id, event_type, status,"
		 " next_attempt_at, created_at, updated_at)"
		 " VALUES ('%s', 'evt_1', '%s', 't', 0, 1, 1, 1)",
		 ep, dlv, ep);
	test_db_pg_exec(&tdb, sql);
}

/* The window's rescan on a node lists only the endpoints it owns. */
Test(cluster, a_listing_reads_only_the_nodes_own_endpoints)
{
	add_pending("ep_1", "dlv_1");
	add_pending("ep_2", "dlv_2");
	add_pending("ep_3", "dlv_3"); /* nobody's */
	const char *one[] = {"ep_1"}, *two[] = {"ep_2"};
	cr_assert_eq(claim(a, "a", one, 1, NULL), 1);
	cr_assert_eq(claim(b, "b", two, 1, NULL), 1);
	char(*ids)[ID_MAX] = NULL;
	size_t n = 0;
	cr_assert_eq(store_pending_endpoints(a, &ids, &n), STORE_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(ids[0], "ep_1");
	free(ids);
	cr_assert_eq(store_pending_endpoints(b, &ids, &n), STORE_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(ids[0], "ep_2");
	free(ids);
	/* A connection without a node id lists every one (one node). */
	struct store *all = NULL;
	open_node("", &all);
	cr_assert_eq(store_pending_endpoints(all, &ids, &n), STORE_OK);
	cr_assert_eq(n, 3);
	free(ids);
	store_close(all);
}

/* The window's refill on a node reads the endpoint's rows only while the
 * node holds its lease. */
Test(cluster, a_refill_reads_only_an_owned_endpoint)
{
	add_pending("ep_1", "dlv_1");
	add_pending("ep_2", "dlv_2");
	const char *one[] = {"ep_1"};
	cr_assert_eq(claim(a, "a", one, 1, NULL), 1);
	struct pending *p = NULL;
	size_t n = 0;
	cr_assert_eq(store_pending_page_endpoint(a, "ep_1", INT64_MIN, "", 100, &p, &n), STORE_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(p[0].id, "dlv_1");
	free(p);
	cr_assert_eq(store_pending_page_endpoint(a, "ep_2", INT64_MIN, "", 100, &p, &n), STORE_OK);
	cr_assert_eq(n, 0, "another node's (or nobody's) endpoint");
	free(p);
	cr_assert_eq(store_pending_page_endpoint(b, "ep_1", INT64_MIN, "", 100, &p, &n), STORE_OK);
	cr_assert_eq(n, 0);
	free(p);
}

/* The periodic jobs run on one node at a time: while another connection
 * holds the advisory lock, the dead-letter purge and a retention batch do
 * nothing and say so by no error; once it is free they do their work. */
Test(cluster, periodic_jobs_skip_while_another_node_holds_the_lock)
{
	add_pending("ep_1", "dlv_1");
	test_db_pg_exec(&tdb, "UPDATE deliveries SET status = 2, updated_at = 5");
	PGconn *other = PQconnectdb(tdb.url);
	cr_assert_eq(PQstatus(other), CONNECTION_OK);
	PGresult *r = PQexec(other, "BEGIN; SELECT pg_advisory_xact_lock(1751871488,"
				    " hashtext(current_schema()))");
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(other));
	PQclear(r);
	int64_t count = -1;
	cr_assert_eq(store_purge_dead(a, 1000, &count, NULL, NULL), STORE_OK);
	cr_assert_eq(count, 0);
	struct store_retention ret = {.before = 1000, .dead_before = 1000, .max_events = 10,
				      .max_deliveries = 100, .max_scan = 100};
	struct store_retention_cursor cur = STORE_RETENTION_START;
	struct store_retention_result res;
	cr_assert_eq(store_purge_events(a, &ret, &cur, &res, NULL, NULL), STORE_OK);
	cr_assert(res.done);
	cr_assert_eq(res.deliveries, 0);
	r = PQexec(other, "COMMIT");
	PQclear(r);
	PQfinish(other);
	cr_assert_eq(store_purge_dead(a, 1000, &count, NULL, NULL), STORE_OK);
	cr_assert_eq(count, 1);
}

/* Renews node's leases on st; returns the store's answer. */
static int renew_rc(struct store *st, const char *node)
{
	char(*out)[ID_MAX] = NULL;
	size_t n = 0;
	int rc = store_lease_renew(st, node, LEASE_MS, &out, &n);
	free(out);
	return rc;
}

/* docs/scaling.md#a-node-cut-off-from-the-database: the cluster
 * connection's statements are bounded. b holds a's lease rows locked in an
 * open transaction (as a node frozen inside one would); a's renew, which
 * would wait for as long as b's transaction lasts, fails at its bound with
 * the write fault, and the connection works again once the rows are free. */
static void renew_fails_within(int64_t statement_ms, int64_t lock_ms, int64_t bound_ms)
{
	const char *ids[] = {"ep_1"};
	cr_assert_eq(claim(a, "a", ids, 1, NULL), 1);
	cr_assert_eq(store_set_timeouts(a, statement_ms, lock_ms), STORE_OK);
	cr_assert_eq(store_begin(b), STORE_OK);
	cr_assert_eq(renew(b, "a"), 1); /* b now holds the row's lock */
	int64_t t0 = mono_ms();
	cr_assert_neq(renew_rc(a, "a"), STORE_OK);
	int64_t took = mono_ms() - t0;
	char detail[128];
	bool wrote = false;
	cr_expect_eq(store_fault_take(a, detail, sizeof detail, &wrote), STORE_FAULT_WRITE);
	cr_expect_geq(took, bound_ms - 50, "failed after %lld ms", (long long)took);
	cr_expect_lt(took, bound_ms + 2000, "failed after %lld ms", (long long)took);
	cr_assert_eq(store_rollback(b), STORE_OK);
	cr_assert_eq(renew(a, "a"), 1);
}

Test(cluster, a_statement_past_its_timeout_fails, .timeout = 30)
{
	renew_fails_within(300, 0, 300);
}

Test(cluster, a_lock_wait_past_its_timeout_fails, .timeout = 30)
{
	renew_fails_within(20000, 200, 200);
}
