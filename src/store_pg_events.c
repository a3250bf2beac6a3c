/* store_pg_events: the PostgreSQL backend's events and idempotency keys
 * (the SQLite twins: store_sqlite_endpoints.c, store_sqlite_events.c and
 * store_sqlite_reads.c).
 *
 * The events list (GET /v1/events) walks events_created (created_at, seq)
 * downwards, as SQLite's does, with the same page rules
 * (store_event_list): the type and endpoint filters have no index, so a
 * filtered page looks at STORE_EVENT_SCAN_ROWS events at most and may come
 * back short with a next_cursor. PostgreSQL is often across a network, and
 * a query cannot stop where the walk would, so a page is two round trips:
 * the walk over (seq, matches?, data size) only, decided here exactly as
 * SQLite's loop decides, then the payloads of the events it kept. */
#include "store_pg_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const struct pg_stmt EV_INSERT = {
	"event_insert", "INSERT INTO events (id, type, data, created_at) VALUES ($1, $2, $3, $4)"
			" ON CONFLICT DO NOTHING"};
static const struct pg_stmt EV_GET = {"event_get",
				      "SELECT " PG_EV_COLS " FROM events WHERE id = $1"};
static const struct pg_stmt EV_MANY = {
	"event_get_many", "SELECT " PG_EV_COLS " FROM events WHERE id = ANY($1::text[])"};
static const struct pg_stmt EV_SEQ_TIME = {"event_list cursor",
					   "SELECT created_at FROM events WHERE seq = $1"};
static const struct pg_stmt EV_BY_SEQ = {
	"event_list rows", "SELECT " PG_EV_COLS " FROM events WHERE seq = ANY($1::bigint[])"
			   " ORDER BY created_at DESC, seq DESC"};
static const struct pg_stmt IDEM_GET = {"idem_get",
					"SELECT event_ids FROM idempotency_keys WHERE key = $1"};
static const struct pg_stmt IDEM_PUT = {
	"idem_put", "INSERT INTO idempotency_keys (key, event_ids, created_at) VALUES ($1, $2, $3)"
		    " ON CONFLICT DO NOTHING"};

/* The walk: (created_at, seq) < ($2, $3) and created_at >= $1, newest
 * first, $4 rows at most; columns seq, matches, octet_length(data). */
#define WALK(match)                                                                                \
	"SELECT e.seq, " match ", octet_length(e.data) FROM events AS e"                           \
	" WHERE e.created_at >= $1 AND (e.created_at, e.seq) < ($2, $3)"                           \
	" ORDER BY e.created_at DESC, e.seq DESC LIMIT $4"
#define MATCH_ENDPOINT(k)                                                                          \
	"EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_id = e.id AND d.endpoint_id = $" k ")"
static const struct pg_stmt EV_WALK[4] = {
	{"event_list", WALK("true")},
	{"event_list type", WALK("e.type = $5")},
	{"event_list endpoint", WALK(MATCH_ENDPOINT("5"))},
	{"event_list type endpoint", WALK("e.type = $5 AND " MATCH_ENDPOINT("6"))},
};

int pg_event_insert(void *conn, const struct event *e)
{
	struct pg_params p;
	PGresult *r = NULL;
	pg_params_init(&p);
	pg_param_text(&p, e->id);
	pg_param_text(&p, e->type);
	pg_param_text(&p, e->data);
	pg_param_int(&p, e->created_at);
	int rc = pg_exec(conn, &EV_INSERT, &p, &r);
	if (rc == STORE_OK && pg_affected(r) == 0)
		rc = STORE_CONFLICT;
	PQclear(r);
	return rc;
}

int pg_event_get(void *conn, const char *id, struct event *out)
{
	struct pg_params p;
	PGresult *r = NULL;
	memset(out, 0, sizeof *out);
	pg_params_init(&p);
	pg_param_text(&p, id);
	int rc = pg_exec(conn, &EV_GET, &p, &r);
	if (rc == STORE_OK)
		rc = PQntuples(r) == 0 ? STORE_NOTFOUND : pg_event_row(r, 0, out);
	PQclear(r);
	return rc;
}

/* One statement is one snapshot: the n events in one round trip, matched
 * back to their ids (a wanted id may repeat). */
void pg_event_get_many(void *conn, const char *const *ids, size_t n, struct event *out,
		       int *rcs)
{
	struct pg_params p;
	PGresult *r = NULL;
	pg_params_init(&p);
	pg_param_text_array(&p, ids, n);
	int rc = pg_exec(conn, &EV_MANY, &p, &r);
	pg_params_free(&p);
	for (size_t i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof out[i]);
		rcs[i] = rc == STORE_OK ? STORE_NOTFOUND : rc;
	}
	for (int row = 0; rc == STORE_OK && row < PQntuples(r); row++) {
		const char *id = PQgetvalue(r, row, 0);
		for (size_t i = 0; i < n; i++) {
			if (rcs[i] == STORE_NOTFOUND && strcmp(ids[i], id) == 0)
				rcs[i] = pg_event_row(r, row, &out[i]);
		}
	}
	PQclear(r);
}

/* The walk's range from the filters and the cursor: created_at >= *lo and
 * (created_at, seq) < (*hi, *hi_seq). STORE_NOTFOUND if the cursor names
 * no event. */
static int walk_range(struct pg *c, const struct event_query *q, int64_t *lo, int64_t *hi,
		      int64_t *hi_seq)
{
	int64_t pos;
	if (store_cursor_parse(q->cursor, &pos)) {
		log_warn("store: malformed cursor op=event_list");
		return STORE_ERROR;
	}
	*lo = q->has_since ? q->since : INT64_MIN;
	/* created_at <= until - 1 at any seq (until > INT64_MIN: checked). */
	*hi = q->has_until ? q->until - 1 : INT64_MAX;
	*hi_seq = INT64_MAX;
	if (pos == INT64_MAX)
		return STORE_OK; /* the first page */
	struct pg_params p;
	PGresult *r = NULL;
	pg_params_init(&p);
	pg_param_int(&p, pos);
	int rc = pg_exec(c, &EV_SEQ_TIME, &p, &r);
	if (rc == STORE_OK && PQntuples(r) == 0)
		rc = STORE_NOTFOUND;
	if (rc == STORE_OK && pg_get_int64(r, 0, 0) <= *hi) {
		*hi = pg_get_int64(r, 0, 0);
		*hi_seq = pos;
	}
	PQclear(r);
	return rc;
}

/* Decides the page from the walk's rows as SQLite's walk loop does: the
 * seqs of the events kept into keep (*kept of them), next_cursor set if
 * the walk stopped before its end. */
static void walk_decide(const PGresult *r, const struct event_query *q, bool filtered, int limit,
			int64_t *keep, int *kept, char next_cursor[STORE_CURSOR_MAX])
{
	size_t bytes = 0;
	int64_t scanned = 0, last = 0;
	*kept = 0;
	for (int row = 0; row < PQntuples(r); row++) {
		if (*kept == limit || (q->max_bytes > 0 && bytes >= q->max_bytes) ||
		    (filtered && scanned == STORE_EVENT_SCAN_ROWS)) {
			store_cursor_format(last, next_cursor);
			return;
		}
		scanned++;
		last = pg_get_int64(r, row, 0);
		if (PQgetvalue(r, row, 1)[0] != 't')
			continue; /* filtered out */
		keep[(*kept)++] = last;
		bytes += (size_t)pg_get_int64(r, row, 2);
	}
}

/* Reads the events at seqs keep[0..kept) into arr, newest first. */
static int read_kept(struct pg *c, const int64_t *keep, int kept, struct event *arr, size_t *got)
{
	/* A bigint[] literal: kept numbers of at most 20 digits and a comma. */
	char *lit = malloc((size_t)kept * 21 + 3);
	if (!lit) {
		log_error("store: out of memory op=event_list");
		return STORE_ERROR;
	}
	size_t at = 0;
	lit[at++] = '{';
	for (int i = 0; i < kept; i++)
		at += (size_t)sprintf(lit + at, "%s%" PRId64, i ? "," : "", keep[i]);
	lit[at++] = '}';
	lit[at] = '\0';
	struct pg_params p;
	PGresult *r = NULL;
	pg_params_init(&p);
	pg_param_text(&p, lit);
	int rc = pg_exec(c, &EV_BY_SEQ, &p, &r);
	for (int row = 0; rc == STORE_OK && row < PQntuples(r) && row < kept; row++) {
		rc = pg_event_row(r, row, &arr[*got]);
		if (rc == STORE_OK)
			(*got)++;
	}
	PQclear(r);
	free(lit);
	return rc;
}

/* Runs the walk for q and reads the page into arr (room for limit). */
static int list_page(struct pg *c, const struct event_query *q, int limit, struct event *arr,
		     size_t *got, char next_cursor[STORE_CURSOR_MAX])
{
	int64_t lo, hi, hi_seq;
	int rc = walk_range(c, q, &lo, &hi, &hi_seq);
	if (rc != STORE_OK)
		return rc;
	bool filtered = q->type || q->endpoint_id;
	struct pg_params p;
	pg_params_init(&p);
	pg_param_int(&p, lo);
	pg_param_int(&p, hi);
	pg_param_int(&p, hi_seq);
	/* The walk's loop needs one row past where it stops. */
	pg_param_int(&p, (filtered ? STORE_EVENT_SCAN_ROWS : limit) + 1);
	if (q->type)
		pg_param_text(&p, q->type);
	if (q->endpoint_id)
		pg_param_text(&p, q->endpoint_id);
	PGresult *r = NULL;
	rc = pg_exec(c, &EV_WALK[(q->type ? 1 : 0) | (q->endpoint_id ? 2 : 0)], &p, &r);
	int64_t *keep = rc == STORE_OK ? malloc(((size_t)limit + 1) * sizeof *keep) : NULL;
	int kept = 0;
	if (rc == STORE_OK && !keep) {
		log_error("store: out of memory op=event_list");
		rc = STORE_ERROR;
	}
	if (rc == STORE_OK)
		walk_decide(r, q, filtered, limit, keep, &kept, next_cursor);
	PQclear(r);
	if (rc == STORE_OK && kept > 0)
		rc = read_kept(c, keep, kept, arr, got);
	free(keep);
	return rc;
}

int pg_event_list(void *conn, const struct event_query *q, struct event **out, size_t *n,
		  char next_cursor[STORE_CURSOR_MAX])
{
	size_t got = 0;
	*out = NULL;
	*n = 0;
	next_cursor[0] = '\0';
	if (q->has_until && (q->until == INT64_MIN || (q->has_since && q->since >= q->until)))
		return STORE_OK; /* an empty window */
	int limit = store_limit_clamp(q->limit);
	struct event *arr = calloc((size_t)limit, sizeof *arr);
	if (!arr) {
		log_error("store: out of memory op=event_list");
		return STORE_ERROR;
	}
	int rc = list_page(conn, q, limit, arr, &got, next_cursor);
	if (rc != STORE_OK) {
		for (size_t i = 0; i < got; i++)
			event_clear(&arr[i]);
		free(arr);
		next_cursor[0] = '\0';
		return rc;
	}
	*out = arr;
	*n = got;
	return STORE_OK;
}

int pg_idem_get(void *conn, const char *key, json_t **event_ids)
{
	struct pg_params p;
	PGresult *r = NULL;
	*event_ids = NULL;
	pg_params_init(&p);
	pg_param_text(&p, key);
	int rc = pg_exec(conn, &IDEM_GET, &p, &r);
	if (rc == STORE_OK && PQntuples(r) == 0)
		rc = STORE_NOTFOUND;
	else if (rc == STORE_OK && (pg_get_json(r, 0, 0, event_ids) || !*event_ids))
		rc = STORE_ERROR;
	PQclear(r);
	return rc;
}

int pg_idem_put(void *conn, const char *key, json_t *event_ids, int64_t at)
{
	char *text = event_ids ? json_dumps(event_ids, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (!text) {
		log_error("store: idem_put without event ids");
		return STORE_ERROR;
	}
	struct pg_params p;
	PGresult *r = NULL;
	pg_params_init(&p);
	pg_param_text(&p, key);
	pg_param_text(&p, text);
	pg_param_int(&p, at);
	int rc = pg_exec(conn, &IDEM_PUT, &p, &r);
	if (rc == STORE_OK && pg_affected(r) == 0)
		rc = STORE_CONFLICT;
	PQclear(r);
	free(text);
	return rc;
}
