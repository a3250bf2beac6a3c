/* store_pg_queue: the PostgreSQL backend's queue operations: the
 * dispatcher's pending pages, dead-letter retries and the purge, the queue
 * figures' seed, and the reads of an endpoint's deliveries (replay's
 * events, the endpoint count). See store_pg_deliveries.c for the rules
 * every statement here follows (one round trip, no error on a conflict). */
#include "store_pg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

#define PENDING_COLS "id, event_id, endpoint_id, attempt_count, schedule_index, next_attempt_at, seq"
/* A pending row d waits for its batch's retry (struct pending's batch_wait):
 * a failed batch recorded it with batch_id and a retry after its update (a
 * dead-letter retry sets both times alike). 1 or 0, as an 8th column. */
#define PG_BATCH_WAIT "(d.batch_id IS NOT NULL AND d.next_attempt_at > d.updated_at)"
#define PENDING_WAIT ", CASE WHEN " PG_BATCH_WAIT " THEN 1 ELSE 0 END"

/* Fills p from row r of res (PENDING_COLS from column 0). */
static int read_pending(const PGresult *res, int r, struct pending *p)
{
	memset(p, 0, sizeof *p);
	if (pg_get_id(res, r, 0, p->id) || pg_get_id(res, r, 1, p->event_id) ||
	    pg_get_id(res, r, 2, p->endpoint_id))
		return STORE_ERROR;
	p->attempt_count = (int)pg_get_int64(res, r, 3);
	p->schedule_index = (int)pg_get_int64(res, r, 4);
	p->next_attempt_at = pg_get_int64(res, r, 5);
	p->seq = pg_get_int64(res, r, 6);
	p->batch_wait = PQnfields(res) > 7 && pg_get_int64(res, r, 7) != 0;
	return STORE_OK;
}

/* Runs a pending page statement (params $1 after_at, $2 after_id, $3
 * limit, then extra) and reads up to limit rows into *out. */
static int pending_rows(struct pg *c, const struct pg_stmt *stmt, struct pg_params *p, int limit,
			struct pending **out, size_t *n)
{
	PGresult *res = NULL;
	int rc = pg_exec(c, stmt, p, &res);
	pg_params_free(p);
	if (rc != STORE_OK)
		return rc;
	int rows = PQntuples(res);
	struct pending *arr = calloc((size_t)limit, sizeof *arr);
	if (arr == NULL) {
		log_error("store: out of memory op=pending_page");
		rc = STORE_ERROR;
	}
	for (int r = 0; r < rows && r < limit && rc == STORE_OK; r++)
		rc = read_pending(res, r, &arr[r]);
	PQclear(res);
	if (rc != STORE_OK) {
		free(arr);
		return rc;
	}
	*out = arr;
	*n = (size_t)(rows < limit ? rows : limit);
	return STORE_OK;
}

/* The endpoint's page: the endpoint ($4) checked once (enabled, and owned
 * in PAGE_OWNED), then its pending rows above the key on
 * deliveries_pending_endpoint in a LATERAL subquery whose LIMIT stops the
 * walk early. Checking the endpoint per row (a probe of endpoints, and of
 * endpoint_owner, for each row read) cost as much again as reading it. */
#define PAGE_SELECT \
	"SELECT d.id, d.event_id, d.endpoint_id, d.attempt_count, d.schedule_index," \
	" d.next_attempt_at, d.seq" PENDING_WAIT " FROM endpoints AS e"
/* The owner probe, the node id being parameter N. */
#define PAGE_OWNED(N) \
	" CROSS JOIN LATERAL (SELECT 1 FROM endpoint_owner AS o" \
	" WHERE o.endpoint_id = e.id AND o.node_id = $" N " LIMIT 1) AS o"
#define PAGE_ROWS \
	" CROSS JOIN LATERAL (SELECT * FROM deliveries AS d WHERE d.status = 0" \
	" AND d.endpoint_id = e.id AND (d.next_attempt_at, d.id) > ($1, $2)" \
	" ORDER BY d.next_attempt_at, d.id LIMIT $3) AS d" \
	" WHERE e.id = $4 AND e.enabled = 1 ORDER BY d.next_attempt_at, d.id"

/* Runs a page statement: `plain`, or `owned` when this connection has a node
 * id (its id the last parameter); endpoint_id is $4. */
static int page_rows(struct pg *c, const struct pg_stmt *plain, const struct pg_stmt *owned,
		     const char *endpoint_id, int64_t after_at, const char *after_id, int limit,
		     struct pending **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (limit < 1)
		limit = 1;
	struct pg_params p;
	pg_params_init(&p);
	pg_param_int(&p, after_at);
	pg_param_text(&p, after_id ? after_id : "");
	pg_param_int(&p, limit);
	pg_param_text(&p, endpoint_id);
	if (c->node_id[0] != '\0')
		pg_param_text(&p, c->node_id);
	return pending_rows(c, c->node_id[0] != '\0' ? owned : plain, &p, limit, out, n);
}

int pg_pending_endpoints(void *conn, char (**ids)[ID_MAX], size_t *n)
{
	/* One probe of deliveries_pending_endpoint per enabled endpoint: a
	 * LATERAL subquery with a LIMIT, which the planner cannot turn into a
	 * hash join over every pending row (a backlog of millions). With a
	 * node id (docs/architecture.md#several-nodes) only the endpoints this
	 * node owns. */
	static const struct pg_stmt PLAIN = {
		"pending_endpoints",
		"SELECT e.id FROM endpoints AS e CROSS JOIN LATERAL (SELECT 1 FROM deliveries AS d"
		" WHERE d.endpoint_id = e.id AND d.status = 0 LIMIT 1) AS d WHERE e.enabled = 1"};
	static const struct pg_stmt OWNED = {
		"pending_endpoints owned",
		"SELECT e.id FROM endpoints AS e CROSS JOIN LATERAL (SELECT 1 FROM endpoint_owner AS o"
		" WHERE o.endpoint_id = e.id AND o.node_id = $1 LIMIT 1) AS o"
		" CROSS JOIN LATERAL (SELECT 1 FROM deliveries AS d"
		" WHERE d.endpoint_id = e.id AND d.status = 0 LIMIT 1) AS d WHERE e.enabled = 1"};
	struct pg *c = conn;
	bool owned = c->node_id[0] != '\0';
	struct pg_params p;
	pg_params_init(&p);
	if (owned)
		pg_param_text(&p, c->node_id);
	PGresult *res = NULL;
	int rc = pg_exec(c, owned ? &OWNED : &PLAIN, &p, &res);
	pg_params_free(&p);
	if (rc != STORE_OK)
		return rc;
	int rows = PQntuples(res);
	char(*arr)[ID_MAX] = rows > 0 ? calloc((size_t)rows, sizeof *arr) : NULL;
	if (rows > 0 && arr == NULL) {
		log_error("store: out of memory op=pending_endpoints");
		rc = STORE_ERROR;
	}
	for (int r = 0; r < rows && rc == STORE_OK; r++)
		rc = pg_get_id(res, r, 0, arr[r]);
	PQclear(res);
	if (rc != STORE_OK) {
		free(arr);
		return rc;
	}
	*ids = arr;
	*n = (size_t)rows;
	return STORE_OK;
}

int pg_pending_page_endpoint(void *conn, const char *endpoint_id, int64_t after_at,
			     const char *after_id, int limit, struct pending **out, size_t *n)
{
	/* One endpoint's ($4) pending rows (PAGE_ROWS). The ids compare in
	 * the column's collation, which must be bytewise (COLLATE "C", the
	 * window's strcmp). With a node id (docs/architecture.md#several-nodes):
	 * nothing unless this node owns the endpoint (one probe of
	 * endpoint_owner's primary key). */
	static const struct pg_stmt PENDING_EP = {"pending_page endpoint", PAGE_SELECT PAGE_ROWS};
	static const struct pg_stmt PENDING_EP_OWNED = {"pending_page endpoint owned",
							PAGE_SELECT PAGE_OWNED("5") PAGE_ROWS};
	return page_rows(conn, &PENDING_EP, &PENDING_EP_OWNED, endpoint_id, after_at, after_id,
			 limit, out, n);
}

int pg_batch_members(void *conn, int64_t seq, const char *id, int64_t at, char batch_id[ID_MAX],
		     struct pending **out, size_t *n)
{
	/* Its endpoint's pending index entries at $3, few. */
	static const struct pg_stmt MEMBERS = {
		"batch_members",
		"SELECT d.id, d.event_id, d.endpoint_id, d.attempt_count, d.schedule_index,"
		" d.next_attempt_at, d.seq, 1, d.batch_id FROM deliveries AS o"
		" JOIN deliveries AS d ON d.endpoint_id = o.endpoint_id AND d.batch_id = o.batch_id"
		" WHERE o.seq = $1 AND o.id = $2"
		" AND d.status = 0 AND d.next_attempt_at = $3 AND " PG_BATCH_WAIT
		" ORDER BY d.seq LIMIT $4"};
	struct pg_params p;
	pg_params_init(&p);
	pg_param_int(&p, seq);
	pg_param_text(&p, id);
	pg_param_int(&p, at);
	pg_param_int(&p, STORE_BATCH_MEMBERS_MAX);
	PGresult *res = NULL;
	int rc = pg_exec(conn, &MEMBERS, &p, &res);
	pg_params_free(&p);
	int rows = rc == STORE_OK ? PQntuples(res) : 0;
	struct pending *items = rows > 0 ? calloc((size_t)rows, sizeof *items) : NULL;
	if (rows > 0 && items == NULL)
		rc = STORE_ERROR;
	for (int r = 0; r < rows && rc == STORE_OK; r++)
		rc = read_pending(res, r, &items[r]);
	if (rc == STORE_OK && rows > 0 && pg_get_id(res, 0, 8, batch_id) != 0)
		rc = STORE_ERROR;
	PQclear(res);
	if (rc != STORE_OK || rows == 0) {
		free(items);
		batch_id[0] = '\0';
		return rc;
	}
	*out = items;
	*n = (size_t)rows;
	return STORE_OK;
}

static int cmp_seq(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* seqs as runs of consecutive values, two bigint[] literals ("{1,7}" and
 * "{5,7}" for 1..5 and 7), malloc'd into *lo and *hi; *runs the runs and
 * *span the values they cover (6 here). -1 if out of memory. */
static int seq_runs(const int64_t *seqs, size_t n, char **lo, char **hi, size_t *runs,
		    size_t *span)
{
	int64_t *s = malloc(n * sizeof *s);
	size_t cap = 3 + n * 21, at_lo = 0, at_hi = 0;
	*lo = malloc(cap);
	*hi = malloc(cap);
	if (s == NULL || *lo == NULL || *hi == NULL) {
		free(s);
		free(*lo);
		free(*hi);
		*lo = *hi = NULL;
		return -1;
	}
	memcpy(s, seqs, n * sizeof *s);
	qsort(s, n, sizeof *s, cmp_seq);
	(*lo)[at_lo++] = '{';
	(*hi)[at_hi++] = '{';
	*runs = *span = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && s[j + 1] <= s[j] + 1) /* a run; duplicates join it */
			j++;
		*runs += 1;
		*span += (size_t)(s[j] - s[i]) + 1;
		at_lo += (size_t)snprintf(*lo + at_lo, cap - at_lo, "%s%lld", i ? "," : "",
					  (long long)s[i]);
		at_hi += (size_t)snprintf(*hi + at_hi, cap - at_hi, "%s%lld", i ? "," : "",
					  (long long)s[j]);
		i = j + 1;
	}
	snprintf(*lo + at_lo, cap - at_lo, "}");
	snprintf(*hi + at_hi, cap - at_hi, "}");
	free(s);
	return 0;
}

/* Row r's event from columns 8..10 (type, created_at, data, its id being
 * the delivery's event_id) into *ev; data NULL leaves it zeroed. */
static int read_fetched_event(const PGresult *res, int r, const struct pending *p,
			      struct event *ev)
{
	memset(ev, 0, sizeof *ev);
	if (PQgetisnull(res, r, 10))
		return STORE_OK; /* past the bytes carried, or no such event */
	memcpy(ev->id, p->event_id, sizeof ev->id);
	ev->created_at = pg_get_int64(res, r, 9);
	if (pg_get_dup(res, r, 8, &ev->type) || pg_get_dup(res, r, 10, &ev->data) ||
	    ev->type == NULL || ev->data == NULL) {
		event_clear(ev);
		return STORE_ERROR;
	}
	return STORE_OK;
}

/* The rows of res (PENDING_COLS, the batch wait, then with events their columns) into
 * *out and, if events, *events. */
static int read_fetched(const PGresult *res, struct pending **out, struct event **events,
			size_t *n_out)
{
	int rows = PQntuples(res), rc = STORE_OK;
	if (rows == 0)
		return STORE_OK;
	struct pending *items = calloc((size_t)rows, sizeof *items);
	struct event *evs = events != NULL ? calloc((size_t)rows, sizeof *evs) : NULL;
	if (items == NULL || (events != NULL && evs == NULL))
		rc = STORE_ERROR;
	for (int r = 0; r < rows && rc == STORE_OK; r++) {
		rc = read_pending(res, r, &items[r]);
		if (rc == STORE_OK && evs != NULL)
			rc = read_fetched_event(res, r, &items[r], &evs[r]);
	}
	if (rc != STORE_OK) {
		for (int r = 0; evs != NULL && r < rows; r++)
			event_clear(&evs[r]);
		free(evs);
		free(items);
		return rc;
	}
	*out = items;
	if (events != NULL)
		*events = evs;
	*n_out = (size_t)rows;
	return STORE_OK;
}

/* A probe (one endpoint's rows in one run, on deliveries_endpoint) costs
 * about what reading this many rows of a scan does: pg_pending_by_seq
 * probes when the endpoints this node holds times the runs, times this, is
 * at most the rows the runs span. In buffers (test_store_pg_plans.c,
 * a_nodes_fetch_probes_its_own_endpoints) a probe's descent costs about 6,
 * a scanned row 0.4 (plan memoizing the endpoint checks) to 3.8 (not):
 * 2 to 15 rows, and 8 sits between. */
#define BY_SEQ_PROBE_ROWS 8

int pg_pending_by_seq(void *conn, const int64_t *seqs, size_t n, struct pending **out,
		      struct event **events, size_t *n_out)
{
	/* The listed seqs as runs of consecutive values (a commit group's rows
	 * have consecutive seqs). Two ways to read them:
	 *
	 * Scan: each run as one range of the primary key. The rows of a run
	 * sit together in the table, so a run of 1,000 costs about 25 buffers
	 * where 1,000 lookups of one seq cost 3,000 (bench/pgcost.py). The
	 * ORDER BY and LIMIT keep each run a walk of the primary key: without
	 * them a plan made while the table's statistics were those of an empty
	 * one scanned every pending row instead (30-90 ms a call under load).
	 * The endpoint checks as pending_page's (LATERAL with a LIMIT,
	 * memoized per endpoint); with a node id, only the rows of endpoints
	 * this node owns are kept.
	 *
	 * Probe (a node id, and few endpoints held against the rows spanned):
	 * for each endpoint this node owns, its rows in each run, on
	 * deliveries_endpoint (endpoint_id, seq). Every node hears of every
	 * other node's new rows; a scan reads them all to keep its share (each
	 * of three nodes read three rows for each it kept, and N nodes N), a
	 * probe reads only its own.
	 *
	 * With the events, each row's is joined after the rows are in key
	 * order, so the sort moves the narrow delivery rows only, not the
	 * events' data; the data is carried while the data read so far (key
	 * order) stays within $3 bytes. The events were read back one
	 * statement per dispatcher turn before (400-500 statements for 24,000
	 * deliveries over three nodes, bench/pgcost.py). */
#define COLS \
	"SELECT d.id, d.event_id, d.endpoint_id, d.attempt_count, d.schedule_index," \
	" d.next_attempt_at, d.seq" PENDING_WAIT
#define SCAN \
	" FROM unnest($1::bigint[], $2::bigint[]) AS r(lo, hi)" \
	" CROSS JOIN LATERAL (SELECT * FROM deliveries AS d WHERE d.seq BETWEEN r.lo AND r.hi" \
	" ORDER BY d.seq LIMIT r.hi - r.lo + 1) AS d" \
	" CROSS JOIN LATERAL (SELECT 1 FROM endpoints AS e" \
	" WHERE e.id = d.endpoint_id AND e.enabled = 1 LIMIT 1) AS e"
#define SCAN_OWNED(n) \
	SCAN " CROSS JOIN LATERAL (SELECT 1 FROM endpoint_owner AS o" \
	" WHERE o.endpoint_id = d.endpoint_id AND o.node_id = $" n " LIMIT 1) AS o" \
	" WHERE d.status = 0"
#define PROBE(n) \
	" FROM endpoint_owner AS o CROSS JOIN LATERAL (SELECT 1 FROM endpoints AS e" \
	" WHERE e.id = o.endpoint_id AND e.enabled = 1 LIMIT 1) AS e" \
	" CROSS JOIN unnest($1::bigint[], $2::bigint[]) AS r(lo, hi)" \
	" CROSS JOIN LATERAL (SELECT * FROM deliveries AS d WHERE d.endpoint_id = o.endpoint_id" \
	" AND d.seq BETWEEN r.lo AND r.hi ORDER BY d.endpoint_id, d.seq" \
	" LIMIT r.hi - r.lo + 1) AS d WHERE o.node_id = $" n " AND d.status = 0"
#define ORDER " ORDER BY d.next_attempt_at, d.id"
#define WITH_EVENTS(rows) \
	COLS ", ev.type, ev.created_at, CASE WHEN sum(octet_length(ev.data)) OVER" \
	" (ORDER BY d.next_attempt_at, d.id) <= $3 THEN ev.data END" \
	" FROM (SELECT d.*" rows ORDER ") AS d" \
	" LEFT JOIN LATERAL (SELECT x.type, x.data, x.created_at FROM events AS x" \
	" WHERE x.id = d.event_id LIMIT 1) AS ev ON true" ORDER
	static const struct pg_stmt STMTS[6] = {
		{"pending_by_seq", COLS SCAN " WHERE d.status = 0" ORDER},
		{"pending_by_seq owned", COLS SCAN_OWNED("3") ORDER},
		{"pending_by_seq probe", COLS PROBE("3") ORDER},
		{"pending_by_seq events", WITH_EVENTS(SCAN " WHERE d.status = 0")},
		{"pending_by_seq owned events", WITH_EVENTS(SCAN_OWNED("4"))},
		{"pending_by_seq probe events", WITH_EVENTS(PROBE("4"))},
	};
#undef COLS
#undef SCAN
#undef SCAN_OWNED
#undef PROBE
#undef ORDER
#undef WITH_EVENTS
	struct pg *c = conn;
	*out = NULL;
	*n_out = 0;
	if (n == 0)
		return STORE_OK;
	char *lo = NULL, *hi = NULL;
	size_t runs = 0, span = 0;
	if (seq_runs(seqs, n, &lo, &hi, &runs, &span) != 0) {
		log_error("store: out of memory op=pending_by_seq n=%zu", n);
		return STORE_ERROR;
	}
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, lo);
	pg_param_text(&p, hi);
	if (events != NULL)
		pg_param_int(&p, STORE_FETCH_EVENT_BYTES);
	bool owned = c->node_id[0] != '\0';
	if (owned)
		pg_param_text(&p, c->node_id);
	int plan = !owned ? 0 : pg_leases_held() * runs * BY_SEQ_PROBE_ROWS <= span ? 2 : 1;
	PGresult *res = NULL;
	int rc = pg_exec(c, &STMTS[(events != NULL ? 3 : 0) + plan], &p, &res);
	pg_params_free(&p);
	free(lo);
	free(hi);
	if (rc == STORE_OK)
		rc = read_fetched(res, out, events, n_out);
	PQclear(res);
	return rc;
}

int pg_dlq_retry_one(void *conn, const char *delivery_id, int64_t now, struct pending *out)
{
	/* One round trip: the retried row, or, when nothing changed, the row
	 * as it is (event_id NULL: it exists but is not dead), or nothing (no
	 * such delivery). The outer SELECT sees the rows as before the UPDATE. */
	static const struct pg_stmt RETRY_ONE = {
		"dlq_retry_one",
		"WITH u AS (UPDATE deliveries SET status = 0, next_attempt_at = $2,"
		" schedule_index = 0, updated_at = $2 WHERE id = $1 AND status = 2"
		" RETURNING " PENDING_COLS ")"
		" SELECT " PENDING_COLS " FROM u"
		" UNION ALL SELECT id, NULL, NULL, NULL, NULL, NULL, NULL FROM deliveries"
		" WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM u)"};
	struct pg *c = conn;
	memset(out, 0, sizeof *out);
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, delivery_id);
	pg_param_int(&p, now);
	PGresult *res = NULL;
	int rc = pg_exec(c, &RETRY_ONE, &p, &res);
	pg_params_free(&p);
	if (rc != STORE_OK)
		return rc;
	if (PQntuples(res) == 0) {
		rc = STORE_NOTFOUND;
	} else if (pg_is_null(res, 0, 1)) {
		rc = STORE_CONFLICT;
	} else {
		rc = read_pending(res, 0, out);
		c->txn_wrote = true; /* its status says SELECT */
		if (rc == STORE_OK)
			pg_notes_pending(c, out->seq);
	}
	PQclear(res);
	return rc;
}

int pg_dlq_retry_endpoint(void *conn, const char *endpoint_id, int64_t now, int64_t *count)
{
	/* Walks the endpoint's dead letters on their partial index. */
	static const struct pg_stmt RETRY_EP = {
		"dlq_retry_endpoint",
		"UPDATE deliveries SET status = 0, next_attempt_at = $2, schedule_index = 0,"
		" updated_at = $2 WHERE endpoint_id = $1 AND status = 2"};
	*count = 0;
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, endpoint_id);
	pg_param_int(&p, now);
	PGresult *res = NULL;
	int rc = pg_exec(conn, &RETRY_EP, &p, &res);
	if (rc == STORE_OK)
		*count = pg_affected(res);
	/* Any number of rows: the other nodes page them in (a rescan), as
	 * this one does. */
	if (rc == STORE_OK && *count > 0)
		pg_notes_pending_all(conn);
	PQclear(res);
	pg_params_free(&p);
	return rc;
}

/* Tells fn how many dead letters of each endpoint the purge before
 * `before` deletes (the same rows purge_batch then deletes: the commit
 * thread is the only writer). */
static int purge_counts(struct pg *c, int64_t before,
			int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg)
{
	static const struct pg_stmt PURGE_COUNTS = {
		"purge_dead counts", "SELECT endpoint_id, count(*) FROM deliveries"
				     " WHERE status = 2 AND updated_at < $1 GROUP BY endpoint_id"};
	struct pg_params p;
	pg_params_init(&p);
	pg_param_int(&p, before);
	PGresult *res = NULL;
	int rc = pg_exec(c, &PURGE_COUNTS, &p, &res);
	pg_params_free(&p);
	for (int r = 0; rc == STORE_OK && r < PQntuples(res); r++)
		rc = fn(PQgetvalue(res, r, 0), pg_get_int64(res, r, 1), arg);
	PQclear(res);
	return rc;
}

/* How many dead letters one statement of the purge deletes. Each batch
 * starts where the last one ended (its updated_at), so it does not walk
 * again over the index entries of rows this transaction already deleted
 * (they stay in the index until a vacuum). */
#define PURGE_BATCH 5000

/* Deletes up to PURGE_BATCH dead letters (and their attempts) updated in
 * [*from, before), oldest first; *deleted says how many, *from moves to
 * the last one's updated_at. */
static int purge_batch(struct pg *c, int64_t before, int64_t *from, int64_t *deleted)
{
	static const struct pg_stmt PURGE = {
		"purge_dead",
		"WITH b AS (SELECT seq, id, updated_at FROM deliveries"
		" WHERE status = 2 AND updated_at < $1 AND updated_at >= $2"
		" ORDER BY updated_at LIMIT $3),"
		" a AS (DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM b)),"
		" d AS (DELETE FROM deliveries WHERE seq IN (SELECT seq FROM b) RETURNING 1)"
		" SELECT (SELECT count(*) FROM d), (SELECT max(updated_at) FROM b)"};
	struct pg_params p;
	pg_params_init(&p);
	pg_param_int(&p, before);
	pg_param_int(&p, *from);
	pg_param_int(&p, PURGE_BATCH);
	PGresult *res = NULL;
	*deleted = 0;
	int rc = pg_exec(c, &PURGE, &p, &res);
	pg_params_free(&p);
	if (rc == STORE_OK && PQntuples(res) == 1) {
		*deleted = pg_get_int64(res, 0, 0);
		if (!pg_is_null(res, 0, 1))
			*from = pg_get_int64(res, 0, 1);
		if (*deleted > 0)
			c->txn_wrote = true; /* its status says SELECT */
	} else if (rc == STORE_OK) {
		rc = STORE_ERROR;
	}
	PQclear(res);
	return rc;
}

int pg_purge_dead(void *conn, int64_t before, int64_t *count,
		  int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg)
{
	struct pg *c = conn;
	*count = 0;
	struct pg_op op;
	int rc = pg_op_begin(c, &op);
	if (rc != STORE_OK)
		return rc;
	/* One node at a time: another's purge holds the lock, this one skips. */
	bool got = false;
	rc = pg_periodic_lock(c, &got);
	if (rc == STORE_OK && !got)
		return pg_op_end(c, &op, STORE_OK);
	if (fn != NULL && rc == STORE_OK)
		rc = purge_counts(c, before, fn, arg);
	int64_t from = INT64_MIN, total = 0, deleted = PURGE_BATCH;
	while (rc == STORE_OK && deleted == PURGE_BATCH) {
		rc = purge_batch(c, before, &from, &deleted);
		total += deleted;
	}
	rc = pg_op_end(c, &op, rc);
	if (rc == STORE_OK)
		*count = total;
	return rc;
}

int pg_queue_seed(void *conn, int (*fn)(const struct store_queue_group *g, void *arg), void *arg)
{
	/* One statement: one snapshot. Pending rows through the pending index
	 * (succeeded ones are not read), dead ones through theirs. */
	static const struct pg_stmt SEED = {
		"queue_seed",
		"SELECT endpoint_id, 0, greatest(next_attempt_at, 0) / 1000 AS sec, count(*),"
		" min(next_attempt_at) FROM deliveries WHERE status = 0 GROUP BY endpoint_id, sec"
		" UNION ALL"
		" SELECT endpoint_id, 2, 0, count(*), 0 FROM deliveries WHERE status = 2"
		" GROUP BY endpoint_id"};
	PGresult *res = NULL;
	int rc = pg_exec(conn, &SEED, NULL, &res);
	for (int r = 0; rc == STORE_OK && r < PQntuples(res); r++) {
		struct store_queue_group g = {
			.endpoint_id = PQgetvalue(res, r, 0),
			.status = (enum delivery_status)(int)pg_get_int64(res, r, 1),
			.second = pg_get_int64(res, r, 2),
			.count = pg_get_int64(res, r, 3),
			.min_at = pg_get_int64(res, r, 4),
		};
		rc = fn(&g, arg);
	}
	PQclear(res);
	return rc;
}

/* Copies row r of "id, type, created_at" into ref; -1 if a cell is bad. */
static int read_event_ref(const PGresult *res, int r, struct store_event_ref *ref)
{
	const char *type = PQgetvalue(res, r, 1);
	size_t tlen = strlen(type);
	if (pg_get_id(res, r, 0, ref->id) || tlen == 0 || tlen >= STORE_TYPE_MAX) {
		log_error("store: bad event row op=endpoint_events");
		return -1;
	}
	memcpy(ref->type, type, tlen + 1);
	ref->created_at = pg_get_int64(res, r, 2);
	return 0;
}

int pg_endpoint_events(void *conn, const char *endpoint_id, int64_t since, int64_t until,
		       size_t max, struct store_event_ref **out, size_t *n)
{
	/* The endpoint's deliveries lead (their index), each event found by
	 * id; oldest first, ties by id as in the SQLite backend. */
	static const struct pg_stmt EP_EVENTS = {
		"endpoint_events",
		"SELECT DISTINCT e.id, e.type, e.created_at FROM deliveries AS d"
		" JOIN events AS e ON e.id = d.event_id"
		" WHERE d.endpoint_id = $1 AND e.created_at >= $2 AND e.created_at < $3"
		" ORDER BY e.created_at, e.id LIMIT $4"};
	*out = NULL;
	*n = 0;
	if (max == 0)
		return STORE_OK;
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, endpoint_id);
	pg_param_int(&p, since);
	pg_param_int(&p, until);
	pg_param_int(&p, max > INT64_MAX ? INT64_MAX : (int64_t)max);
	PGresult *res = NULL;
	int rc = pg_exec(conn, &EP_EVENTS, &p, &res);
	pg_params_free(&p);
	int rows = rc == STORE_OK ? PQntuples(res) : 0;
	struct store_event_ref *arr = NULL;
	if (rows > 0) {
		arr = calloc((size_t)rows, sizeof *arr);
		if (arr == NULL) {
			log_error("store: out of memory op=endpoint_events");
			rc = STORE_ERROR;
		}
	}
	for (int r = 0; r < rows && rc == STORE_OK; r++) {
		if (read_event_ref(res, r, &arr[r]) != 0)
			rc = STORE_ERROR;
	}
	PQclear(res);
	if (rc != STORE_OK) {
		free(arr);
		return rc;
	}
	*out = arr;
	*n = (size_t)rows;
	return STORE_OK;
}

int pg_endpoint_count(void *conn, int64_t *n)
{
	static const struct pg_stmt EP_COUNT = {"endpoint_count", "SELECT count(*) FROM endpoints"};
	*n = 0;
	PGresult *res = NULL;
	int rc = pg_exec(conn, &EP_COUNT, NULL, &res);
	if (rc == STORE_OK)
		*n = pg_get_int64(res, 0, 0);
	PQclear(res);
	return rc;
}
