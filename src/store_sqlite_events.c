/* store_sqlite_events: the SQLite backend's events list (store_event_list,
 * GET /v1/events).
 *
 * A page walks the events_created index (schema version 5) downwards: its
 * entries are (created_at, rowid), so the walk is already newest first,
 * the since/until window is a range of it, and a cursor (the seq of the
 * last event looked at) resumes just below that event's entry. The type
 * and endpoint_id filters have no index of their own (ingest would pay for
 * one on every event): each event the walk reaches is checked, the
 * endpoint by a lookup in deliveries_event, and a page stops after
 * STORE_EVENT_SCAN_ROWS of them with a next_cursor, full or not. An
 * event's data is read only if it matches. */
#include "store_sqlite_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* What a filter adds to the walk: the data column, NULL for an event that
 * does not match. */
#define MATCH_TYPE "e.type = ?4"
#define MATCH_ENDPOINT                                                                             \
	"EXISTS (SELECT 1 FROM deliveries AS d INDEXED BY deliveries_event"                        \
	" WHERE d.event_id = e.id AND d.endpoint_id = ?5)"

/* The cached walk for this combination of filters. Columns: id, type,
 * data (NULL: no match), created_at (sq_event_row's), then seq. ?1..?3 are
 * the range: created_at in [?1, ?2], and below seq ?3 at created_at ?2. */
static sqlite3_stmt *walk_stmt(struct sq *c, bool by_type, bool by_endpoint)
{
	int slot = (by_type ? 1 : 0) | (by_endpoint ? 2 : 0);
	if (c->event_list_stmt[slot])
		return c->event_list_stmt[slot];
	char data[256] = "e.data";
	if (by_type || by_endpoint)
		snprintf(data, sizeof data, "CASE WHEN %s%s%s THEN e.data END",
			 by_type ? MATCH_TYPE : "", by_type && by_endpoint ? " AND " : "",
			 by_endpoint ? MATCH_ENDPOINT : "");
	char sql[640];
	snprintf(sql, sizeof sql,
		 "SELECT e.id, e.type, %s, e.created_at, e.seq"
		 " FROM events AS e INDEXED BY events_created"
		 " WHERE e.created_at >= ?1 AND e.created_at <= ?2"
		 " AND (e.created_at < ?2 OR e.seq < ?3)"
		 " ORDER BY e.created_at DESC, e.seq DESC",
		 data);
	c->event_list_stmt[slot] = sq_prepare(c, sql, "event_list prepare");
	return c->event_list_stmt[slot];
}

/* The created_at of the event at seq: STORE_NOTFOUND if there is none. */
static int seq_time(struct sq *c, int64_t seq, int64_t *at)
{
	sqlite3_stmt *s = sq_stmt_get(c, S_EV_SEQ_TIME);
	if (!s)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, seq);
	int step = sqlite3_step(s);
	int rc = STORE_OK;
	if (step == SQLITE_ROW) {
		*at = sqlite3_column_int64(s, 0);
	} else if (step == SQLITE_DONE) {
		rc = STORE_NOTFOUND;
	} else {
		sq_log_error(c, "event_list cursor", step);
		rc = STORE_ERROR;
	}
	sq_stmt_done(s);
	return rc;
}

/* The walk's range from the filters and the cursor: created_at in
 * [*lo, *hi], and at *hi only seq below *hi_seq. */
static int walk_range(struct sq *c, const struct event_query *q, int64_t *lo, int64_t *hi,
		      int64_t *hi_seq)
{
	int64_t pos, at;
	if (store_cursor_parse(q->cursor, &pos)) {
		log_warn("store: malformed cursor op=event_list");
		return STORE_ERROR;
	}
	*lo = q->has_since ? q->since : INT64_MIN;
	*hi = q->has_until ? q->until - 1 : INT64_MAX; /* until > INT64_MIN: checked */
	*hi_seq = INT64_MAX;
	if (pos == INT64_MAX)
		return STORE_OK; /* the first page */
	int rc = seq_time(c, pos, &at);
	if (rc == STORE_OK && at <= *hi) {
		*hi = at;
		*hi_seq = pos;
	}
	return rc;
}

/* Steps the bound walk s into arr (room for limit events), stopping when
 * the page is full, over max_bytes, or (filtered) STORE_EVENT_SCAN_ROWS
 * events were looked at; next_cursor is set only if a further event
 * exists. On error the events read are left for the caller to clear. */
static int walk(struct sq *c, sqlite3_stmt *s, const struct event_query *q, bool filtered,
		int limit, struct event *arr, size_t *got, char next_cursor[STORE_CURSOR_MAX])
{
	size_t bytes = 0;
	int64_t scanned = 0, last = 0;
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		if (*got == (size_t)limit || (q->max_bytes > 0 && bytes >= q->max_bytes) ||
		    (filtered && scanned == STORE_EVENT_SCAN_ROWS)) {
			store_cursor_format(last, next_cursor);
			return STORE_OK;
		}
		scanned++;
		last = sqlite3_column_int64(s, 4);
		if (sqlite3_column_type(s, 2) == SQLITE_NULL)
			continue; /* filtered out */
		if (sq_event_row(s, &arr[*got]) != STORE_OK) {
			log_error("store: cannot read an event op=event_list");
			return STORE_ERROR;
		}
		bytes += arr[*got].data ? strlen(arr[*got].data) : 0;
		(*got)++;
	}
	if (step != SQLITE_DONE) {
		sq_log_error(c, "event_list", step);
		return STORE_ERROR;
	}
	return STORE_OK;
}

int sq_event_list(void *conn, const struct event_query *q, struct event **out, size_t *n,
		  char next_cursor[STORE_CURSOR_MAX])
{
	struct sq *c = conn;
	int64_t lo, hi, hi_seq;
	size_t got = 0;

	*out = NULL;
	*n = 0;
	next_cursor[0] = '\0';
	if (q->has_until && (q->until == INT64_MIN || (q->has_since && q->since >= q->until)))
		return STORE_OK; /* an empty window */
	int rc = walk_range(c, q, &lo, &hi, &hi_seq);
	if (rc != STORE_OK)
		return rc;
	int limit = store_limit_clamp(q->limit);
	struct event *arr = calloc((size_t)limit, sizeof *arr);
	sqlite3_stmt *s = walk_stmt(c, q->type != NULL, q->endpoint_id != NULL);
	if (!arr || !s) {
		if (!arr)
			log_error("store: out of memory op=event_list");
		free(arr);
		return STORE_ERROR;
	}
	sqlite3_bind_int64(s, 1, lo);
	sqlite3_bind_int64(s, 2, hi);
	sqlite3_bind_int64(s, 3, hi_seq);
	if (q->type)
		sq_bind_text(s, 4, q->type);
	if (q->endpoint_id)
		sq_bind_text(s, 5, q->endpoint_id);
	rc = walk(c, s, q, q->type || q->endpoint_id, limit, arr, &got, next_cursor);
	sq_stmt_done(s);
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
