/* store_pg_cluster: the PostgreSQL backend's cluster operations
 * (docs/architecture.md#several-nodes): the nodes table's heartbeats, the
 * endpoints' leases in endpoint_owner, and the advisory lock that keeps the
 * periodic jobs (dead-letter purge, retention) to one node at a time.
 *
 * Every lease time is the DATABASE's clock (clock_timestamp()), never a
 * node's: nodes whose clocks disagree still agree on who holds a lease.
 * Each operation is one statement (one round trip), run outside the commit
 * thread's transactions on the cluster thread's own connection, except the
 * release, which the commit thread runs inside its group. */
#include "store_pg_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The advisory lock of the periodic jobs (with the schema's name hashed as
 * the second key, as the migration lock): "hkp". */
#define PG_PERIODIC_LOCK 0x686b7000

int pg_periodic_lock(struct pg *c, bool *got)
{
	static const struct pg_stmt LOCK = {
		"periodic_lock", "SELECT pg_try_advisory_xact_lock($1::int, hashtext(current_schema()))"};
	struct pg_params p;
	pg_params_init(&p);
	pg_param_int(&p, PG_PERIODIC_LOCK);
	PGresult *res = NULL;
	*got = false;
	int rc = pg_exec(c, &LOCK, &p, &res);
	if (rc == STORE_OK && PQntuples(res) == 1)
		*got = PQgetvalue(res, 0, 0)[0] == 't';
	else if (rc == STORE_OK)
		rc = STORE_ERROR;
	PQclear(res);
	return rc;
}

/* Copies column 0 of every row of res (ids) into a malloc'd array. */
static int read_ids(const PGresult *res, char (**out)[ID_MAX], size_t *n)
{
	int rows = PQntuples(res);
	*out = NULL;
	*n = 0;
	if (rows == 0)
		return STORE_OK;
	char(*ids)[ID_MAX] = calloc((size_t)rows, sizeof *ids);
	if (ids == NULL) {
		log_error("store: out of memory op=cluster ids");
		return STORE_ERROR;
	}
	for (int r = 0; r < rows; r++) {
		if (pg_get_id(res, r, 0, ids[r]) != 0) {
			free(ids);
			return STORE_ERROR;
		}
	}
	*out = ids;
	*n = (size_t)rows;
	return STORE_OK;
}

/* Runs s with p and reads its rows' first column as ids. */
static int exec_ids(struct pg *c, const struct pg_stmt *s, struct pg_params *p,
		    char (**out)[ID_MAX], size_t *n)
{
	PGresult *res = NULL;
	*out = NULL;
	*n = 0;
	int rc = pg_exec(c, s, p, &res);
	pg_params_free(p);
	if (rc == STORE_OK)
		rc = read_ids(res, out, n);
	PQclear(res);
	return rc;
}

int pg_node_heartbeat(void *conn, const char *node_id)
{
	/* Rows of nodes silent for a day go too (a node killed under a random
	 * id never comes back for its row). */
	static const struct pg_stmt BEAT = {
		"node_heartbeat",
		"WITH gone AS (DELETE FROM nodes WHERE heartbeat_at < clock_timestamp() - interval"
		" '1 day')"
		" INSERT INTO nodes (id, started_at, heartbeat_at)"
		" VALUES ($1, clock_timestamp(), clock_timestamp())"
		" ON CONFLICT (id) DO UPDATE SET heartbeat_at = clock_timestamp()"};
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, node_id);
	int rc = pg_exec(conn, &BEAT, &p, NULL);
	pg_params_free(&p);
	return rc;
}

int pg_nodes_live(void *conn, int64_t lease_ms, char (**out)[ID_MAX], size_t *n)
{
	static const struct pg_stmt LIVE = {
		"nodes_live", "SELECT id FROM nodes WHERE heartbeat_at >"
			      " clock_timestamp() - $1 * interval '1 millisecond' ORDER BY id"};
	struct pg_params p;
	pg_params_init(&p);
	pg_param_int(&p, lease_ms);
	return exec_ids(conn, &LIVE, &p, out, n);
}

/* The leases this process's node held at its last renewal, plus those it
 * claimed since: a figure for pg_pending_by_seq to choose its plan by, not
 * a fact anything relies on (a fetch returns the same rows whichever plan
 * runs). Written by the cluster thread, read by the commit thread. */
static _Atomic size_t leases_held;

size_t pg_leases_held(void) { return atomic_load_explicit(&leases_held, memory_order_relaxed); }

void pg_leases_held_set(size_t n) { atomic_store_explicit(&leases_held, n, memory_order_relaxed); }

int pg_lease_renew(void *conn, const char *node_id, int64_t lease_ms, char (**out)[ID_MAX],
		   size_t *n)
{
	/* Its own leases only (node_id = me), expired ones too: a lease that
	 * ran out and that no other node took is still this node's. */
	static const struct pg_stmt RENEW = {
		"lease_renew",
		"UPDATE endpoint_owner SET lease_until = clock_timestamp() + $2 * interval"
		" '1 millisecond' WHERE node_id = $1 RETURNING endpoint_id"};
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, node_id);
	pg_param_int(&p, lease_ms);
	int rc = exec_ids(conn, &RENEW, &p, out, n);
	if (rc == STORE_OK)
		atomic_store_explicit(&leases_held, *n, memory_order_relaxed);
	return rc;
}

int pg_lease_claim(void *conn, const char *node_id, int64_t lease_ms, const char *const *ids,
		   size_t n, char (**out)[ID_MAX], size_t *n_out)
{
	/* One set-based statement: a free endpoint gets a row, an expired
	 * lease changes hands, a valid one (anyone's) is left alone. */
	static const struct pg_stmt CLAIM = {
		"lease_claim",
		"INSERT INTO endpoint_owner (endpoint_id, node_id, lease_until)"
		" SELECT DISTINCT unnest($2::text[]), $1::text,"
		" clock_timestamp() + $3 * interval '1 millisecond'"
		" ON CONFLICT (endpoint_id) DO UPDATE SET node_id = EXCLUDED.node_id,"
		" lease_until = EXCLUDED.lease_until"
		" WHERE endpoint_owner.lease_until < clock_timestamp()"
		" RETURNING endpoint_id"};
	*out = NULL;
	*n_out = 0;
	if (n == 0)
		return STORE_OK;
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, node_id);
	pg_param_text_array(&p, ids, n);
	pg_param_int(&p, lease_ms);
	int rc = exec_ids(conn, &CLAIM, &p, out, n_out);
	if (rc == STORE_OK)
		atomic_fetch_add_explicit(&leases_held, *n_out, memory_order_relaxed);
	return rc;
}

int pg_lease_release(void *conn, const char *node_id, const char *endpoint_id)
{
	static const struct pg_stmt RELEASE = {
		"lease_release", "DELETE FROM endpoint_owner WHERE endpoint_id = $1 AND node_id = $2"};
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, endpoint_id);
	pg_param_text(&p, node_id);
	int rc = pg_exec(conn, &RELEASE, &p, NULL);
	pg_params_free(&p);
	return rc;
}

int pg_node_leave(void *conn, const char *node_id)
{
	static const struct pg_stmt LEAVE = {
		"node_leave", "WITH o AS (DELETE FROM endpoint_owner WHERE node_id = $1)"
			      " DELETE FROM nodes WHERE id = $1"};
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, node_id);
	int rc = pg_exec(conn, &LEAVE, &p, NULL);
	pg_params_free(&p);
	return rc;
}
