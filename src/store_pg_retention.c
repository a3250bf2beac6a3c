/* store_pg_retention: the PostgreSQL backend's retention: the purge of old,
 * final events and of the idempotency keys whose events are gone (store.h
 * store_purge_events), and the size of hookd's own tables. */
#include "store_pg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* hookd's tables, with their indexes and TOAST (pg_total_relation_size),
 * resolved through the connection's search_path like every other statement:
 * a database shared with other applications reports only hookd's data, and
 * schema_version (shared between applications) is left out. The WAL is the
 * cluster's, not hookd's, and free space inside the tables is not known
 * without reading every page (pgstattuple): both are -1. */
int pg_size(void *conn, struct store_size *out)
{
	static const struct pg_stmt SIZE = {
		"size",
		"SELECT coalesce(sum(pg_total_relation_size(to_regclass(t))), 0)::bigint"
		" FROM unnest(ARRAY['endpoints', 'events', 'idempotency_keys', 'deliveries',"
		" 'attempts', 'api_keys']) AS t WHERE to_regclass(t) IS NOT NULL"};
	out->file_bytes = out->wal_bytes = out->free_bytes = -1;
	PGresult *res = NULL;
	int rc = pg_exec(conn, &SIZE, NULL, &res);
	if (rc == STORE_OK)
		out->file_bytes = pg_get_int64(res, 0, 0);
	PQclear(res);
	return rc;
}

/* The events of the window from the cursor, oldest first, with how many
 * deliveries each has and whether one of them is not final yet. */
static const struct pg_stmt RET_SCAN = {
	"ret_scan",
	"SELECT e.seq, e.id, e.created_at,"
	" (SELECT count(*) FROM deliveries d WHERE d.event_id = e.id),"
	" EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND (d.status = 0"
	" OR (d.status = 2 AND d.updated_at >= $4)))"
	" FROM events e WHERE e.created_at < $1 AND (e.created_at, e.seq) > ($2, $3)"
	" ORDER BY e.created_at, e.seq LIMIT $5"};

/* Chooses from the scan's rows the batch's events (ids into out, *n of
 * them) under max_events and max_deliveries, moving *cur past what it
 * looked at; *end when the scan reached the window's end. */
static void pick(const PGresult *res, const struct store_retention *r,
		 struct store_retention_cursor *cur, const char **out, size_t *n, bool *end)
{
	int rows = PQntuples(res), seen = 0;
	int64_t deliveries = 0;
	*n = 0;
	for (int i = 0; i < rows; i++) {
		bool live = PQgetvalue(res, i, 4)[0] == 't';
		int64_t k = pg_get_int64(res, i, 3);
		if (!live && *n > 0 && deliveries + k > r->max_deliveries)
			break; /* the next batch starts with it */
		seen++;
		cur->event_at = pg_get_int64(res, i, 2);
		cur->event_pos = pg_get_int64(res, i, 0);
		if (!live) {
			out[(*n)++] = PQgetvalue(res, i, 1);
			deliveries += k;
			if (*n == (size_t)r->max_events)
				break;
		}
	}
	*end = seen == rows && rows < r->max_scan;
}

/* Tells fn how many dead letters of each endpoint the events take along. */
static int count_dead(struct pg *c, const struct pg_params *ids,
		      int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg)
{
	static const struct pg_stmt DEAD = {
		"ret_dead", "SELECT endpoint_id, count(*) FROM deliveries"
			    " WHERE event_id = ANY($1::text[]) AND status = 2 GROUP BY endpoint_id"};
	PGresult *res = NULL;
	int rc = pg_exec(c, &DEAD, ids, &res);
	for (int i = 0; rc == STORE_OK && i < PQntuples(res); i++)
		rc = fn(PQgetvalue(res, i, 0), pg_get_int64(res, i, 1), arg);
	PQclear(res);
	return rc;
}

/* Deletes the events with their deliveries and attempts: one statement. */
static int delete_events(struct pg *c, const struct pg_params *ids,
			 struct store_retention_result *out)
{
	static const struct pg_stmt DEL = {
		"ret_delete",
		"WITH d AS (DELETE FROM deliveries WHERE event_id = ANY($1::text[]) RETURNING id),"
		" a AS (DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM d) RETURNING 1),"
		" e AS (DELETE FROM events WHERE id = ANY($1::text[]) RETURNING 1)"
		" SELECT (SELECT count(*) FROM e), (SELECT count(*) FROM d), (SELECT count(*) FROM a)"};
	PGresult *res = NULL;
	int rc = pg_exec(c, &DEL, ids, &res);
	if (rc == STORE_OK) {
		out->events = pg_get_int64(res, 0, 0);
		out->deliveries = pg_get_int64(res, 0, 1);
		out->attempts = pg_get_int64(res, 0, 2);
	}
	PQclear(res);
	return rc;
}

static int purge_event_batch(struct pg *c, const struct store_retention *r,
			     struct store_retention_cursor *cur, struct store_retention_result *out,
			     bool *end, int (*fn)(const char *endpoint_id, int64_t n, void *arg),
			     void *arg)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_int(&p, r->before);
	pg_param_int(&p, cur->event_at);
	pg_param_int(&p, cur->event_pos);
	pg_param_int(&p, r->dead_before);
	pg_param_int(&p, r->max_scan);
	PGresult *res = NULL;
	int rc = pg_exec(c, &RET_SCAN, &p, &res);
	pg_params_free(&p);
	const char **ids = rc == STORE_OK ? calloc((size_t)r->max_events, sizeof *ids) : NULL;
	if (rc == STORE_OK && ids == NULL)
		rc = STORE_ERROR;
	size_t n = 0;
	if (rc == STORE_OK)
		pick(res, r, cur, ids, &n, end);
	if (rc == STORE_OK && n > 0) {
		pg_params_init(&p);
		pg_param_text_array(&p, ids, n);
		if (fn != NULL)
			rc = count_dead(c, &p, fn, arg);
		if (rc == STORE_OK)
			rc = delete_events(c, &p, out);
		pg_params_free(&p);
	}
	free(ids);
	PQclear(res);
	return rc;
}

/* Deletes, among up to max_scan keys of the window from the cursor, those
 * none of whose events is stored; one statement. */
static int purge_keys(struct pg *c, const struct store_retention *r,
		      struct store_retention_cursor *cur, struct store_retention_result *out,
		      bool *end)
{
	static const struct pg_stmt KEYS = {
		"ret_keys",
		"WITH k AS (SELECT seq, key, event_ids, created_at FROM idempotency_keys"
		" WHERE created_at < $1 AND (created_at, seq) > ($2, $3)"
		" ORDER BY created_at, seq LIMIT $4),"
		" g AS (DELETE FROM idempotency_keys i USING k WHERE i.key = k.key AND NOT EXISTS"
		" (SELECT 1 FROM events e WHERE e.id = ANY"
		" (ARRAY(SELECT jsonb_array_elements_text(k.event_ids::jsonb)))) RETURNING 1),"
		" l AS (SELECT created_at, seq FROM k ORDER BY created_at DESC, seq DESC LIMIT 1)"
		" SELECT (SELECT count(*) FROM g), (SELECT count(*) FROM k),"
		" (SELECT created_at FROM l), (SELECT seq FROM l)"};
	struct pg_params p;
	pg_params_init(&p);
	pg_param_int(&p, r->before);
	pg_param_int(&p, cur->key_at);
	pg_param_int(&p, cur->key_pos);
	pg_param_int(&p, r->max_scan);
	PGresult *res = NULL;
	int rc = pg_exec(c, &KEYS, &p, &res);
	pg_params_free(&p);
	if (rc == STORE_OK) {
		out->keys = pg_get_int64(res, 0, 0);
		int64_t seen = pg_get_int64(res, 0, 1);
		if (seen > 0) {
			cur->key_at = pg_get_int64(res, 0, 2);
			cur->key_pos = pg_get_int64(res, 0, 3);
		}
		*end = seen < r->max_scan;
	}
	PQclear(res);
	return rc;
}

int pg_purge_events(void *conn, const struct store_retention *r,
		    struct store_retention_cursor *cur, struct store_retention_result *res,
		    int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg)
{
	struct pg *c = conn;
	struct store_retention_cursor was = *cur;
	memset(res, 0, sizeof *res);
	if (r->max_events < 1 || r->max_events > STORE_LIMIT_MAX || r->max_scan < r->max_events ||
	    r->max_deliveries < 1)
		return STORE_ERROR;
	struct pg_op op;
	int rc = pg_op_begin(c, &op);
	if (rc != STORE_OK)
		return rc;
	/* One node at a time: while another node's batch holds the lock,
	 * this run ends quietly (done, nothing deleted). */
	bool got = false;
	rc = pg_periodic_lock(c, &got);
	if (rc == STORE_OK && !got) {
		res->done = true;
		return pg_op_end(c, &op, STORE_OK);
	}
	bool events_end = false, keys_end = false;
	if (rc == STORE_OK)
		rc = purge_event_batch(c, r, cur, res, &events_end, fn, arg);
	if (rc == STORE_OK)
		rc = purge_keys(c, r, cur, res, &keys_end);
	rc = pg_op_end(c, &op, rc);
	if (rc != STORE_OK) {
		*cur = was;
		memset(res, 0, sizeof *res);
		return rc;
	}
	res->done = events_end && keys_end;
	return STORE_OK;
}
