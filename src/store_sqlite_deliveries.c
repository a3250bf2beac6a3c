/* store_sqlite_deliveries: the SQLite backend's operations on deliveries,
 * attempts, the pending queue and the dead-letter queue (see
 * store_sqlite.c). */
#include "store_sqlite_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

static int read_delivery(sqlite3_stmt *s, struct delivery *d)
{
	memset(d, 0, sizeof *d);
	if (sq_col_id(s, 0, d->id) || sq_col_id(s, 1, d->event_id) ||
	    sq_col_id(s, 2, d->endpoint_id) ||
	    sq_col_dup(s, 3, &d->event_type) || sq_col_dup(s, 12, &d->batch_id)) {
		delivery_clear(d);
		return STORE_ERROR;
	}
	d->status = (enum delivery_status)sqlite3_column_int(s, 4);
	d->attempt_count = sqlite3_column_int(s, 5);
	d->schedule_index = sqlite3_column_int(s, 6);
	d->next_attempt_at = sqlite3_column_int64(s, 7);
	d->created_at = sqlite3_column_int64(s, 8);
	d->updated_at = sqlite3_column_int64(s, 9);
	d->last_status = sqlite3_column_int(s, 10);
	sq_col_code(s, 11, d->last_error);
	d->seq = sqlite3_column_int64(s, DLV_COL_SEQ);
	return STORE_OK;
}

/* Integer column i, or ATTEMPT_TIMING_NONE for SQL NULL. */
static int64_t col_us(sqlite3_stmt *s, int i)
{
	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return ATTEMPT_TIMING_NONE;
	return sqlite3_column_int64(s, i);
}

/* The timing columns (schema version 5): NULL in rows from before them. */
static void read_attempt_timings(sqlite3_stmt *s, struct attempt *a)
{
	int64_t *us[] = {&a->timings.dns_us, &a->timings.connect_us, &a->timings.tls_us,
			 &a->timings.ttfb_us, &a->timings.total_us};
	for (int i = 0; i < 5; i++)
		*us[i] = col_us(s, ATT_COL_TIMINGS + i);
	const unsigned char *ip = sqlite3_column_text(s, ATT_COL_REMOTE_IP);
	size_t n = ip != NULL ? strnlen((const char *)ip, sizeof a->remote_ip - 1) : 0;
	if (n > 0)
		memcpy(a->remote_ip, ip, n);
	a->remote_ip[n] = '\0';
	a->reused = sqlite3_column_int(s, ATT_COL_REUSED) != 0;
}

static int read_attempt(sqlite3_stmt *s, struct attempt *a)
{
	memset(a, 0, sizeof *a);
	if (sq_col_id(s, 0, a->delivery_id) || sq_col_dup(s, 3, &a->url) ||
	    sq_col_dup(s, 6, &a->response_body) || sq_col_dup(s, 7, &a->headers) ||
	    sq_col_dup(s, 9, &a->error_message)) {
		attempt_clear(a);
		return STORE_ERROR;
	}
	a->attempt = sqlite3_column_int(s, 1);
	a->at = sqlite3_column_int64(s, 2);
	a->status = sqlite3_column_int(s, 4);
	a->duration_ms = sqlite3_column_int64(s, 5);
	sq_col_code(s, 8, a->error_code);
	read_attempt_timings(s, a);
	return STORE_OK;
}

static int read_pending(sqlite3_stmt *s, struct pending *p)
{
	memset(p, 0, sizeof *p);
	if (sq_col_id(s, 0, p->id) || sq_col_id(s, 1, p->event_id) ||
	    sq_col_id(s, 2, p->endpoint_id))
		return STORE_ERROR;
	p->attempt_count = sqlite3_column_int(s, 3);
	p->schedule_index = sqlite3_column_int(s, 4);
	p->next_attempt_at = sqlite3_column_int64(s, 5);
	p->seq = sqlite3_column_int64(s, 6);
	p->batch_wait = sqlite3_column_count(s) > 7 && sqlite3_column_int(s, 7) != 0;
	return STORE_OK;
}

int sq_delivery_insert(void *conn, struct delivery *d)
{
	struct sq *c = conn;
	sqlite3_stmt *s = sq_stmt_get(c, S_DLV_INSERT);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, d->id);
	sq_bind_text(s, 2, d->event_id);
	sq_bind_text(s, 3, d->endpoint_id);
	sq_bind_text(s, 4, d->event_type);
	sqlite3_bind_int(s, 5, (int)d->status);
	sqlite3_bind_int(s, 6, d->attempt_count);
	sqlite3_bind_int(s, 7, d->schedule_index);
	sqlite3_bind_int64(s, 8, d->next_attempt_at);
	sqlite3_bind_int64(s, 9, d->created_at);
	sqlite3_bind_int64(s, 10, d->updated_at);
	sqlite3_bind_int(s, 11, d->last_status);
	sq_bind_text(s, 12, d->last_error[0] ? d->last_error : NULL);
	int rc = sq_exec_stmt(c, s, "delivery_insert");
	d->seq = rc == STORE_OK ? sqlite3_last_insert_rowid(c->db) : 0;
	return rc;
}

int sq_delivery_update_state(void *conn, const struct delivery *d)
{
	struct sq *c = conn;
	/* By row when the dispatcher knows it: a rowid lookup instead of a
	 * search of the id index. The id must match too, since a deleted
	 * delivery's seq can be given to a new row. */
	sqlite3_stmt *s = sq_stmt_get(c, d->seq > 0 ? S_DLV_UPDATE_SEQ : S_DLV_UPDATE);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, d->id);
	if (d->seq > 0)
		sqlite3_bind_int64(s, 9, d->seq);
	sqlite3_bind_int(s, 2, (int)d->status);
	sqlite3_bind_int(s, 3, d->attempt_count);
	sqlite3_bind_int(s, 4, d->schedule_index);
	sqlite3_bind_int64(s, 5, d->next_attempt_at);
	sqlite3_bind_int64(s, 6, d->updated_at);
	sqlite3_bind_int(s, 7, d->last_status);
	sq_bind_text(s, 8, d->last_error[0] ? d->last_error : NULL);
	int rc = sq_exec_stmt(c, s, "delivery_update_state");
	if (rc == STORE_OK && sqlite3_changes(c->db) == 0)
		rc = STORE_NOTFOUND;
	return rc;
}

int sq_delivery_set_batch(void *conn, const char *batch_id, const char *const *ids, size_t n)
{
	struct sq *c = conn;
	sqlite3_stmt *s = sq_stmt_get(c, S_DLV_SET_BATCH);
	if (!s)
		return STORE_ERROR;
	int rc = sq_op_begin(c);
	if (rc != STORE_OK)
		return rc;
	for (size_t i = 0; i < n && rc == STORE_OK; i++) {
		sq_bind_text(s, 1, batch_id);
		sq_bind_text(s, 2, ids[i]);
		rc = sq_exec_stmt(c, s, "delivery_set_batch");
	}
	return sq_op_end(c, rc);
}

int sq_delivery_get(void *conn, const char *id, struct delivery *out)
{
	struct sq *c = conn;
	memset(out, 0, sizeof *out);
	sqlite3_stmt *s = sq_stmt_get(c, S_DLV_GET);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, id);
	int step = sqlite3_step(s);
	int rc;
	if (step == SQLITE_ROW)
		rc = read_delivery(s, out);
	else if (step == SQLITE_DONE)
		rc = STORE_NOTFOUND;
	else {
		sq_log_error(c, "delivery_get", step);
		rc = STORE_ERROR;
	}
	sq_stmt_done(s);
	return rc;
}

/* How many rows one page of a list by status alone may walk: no index
 * leads to the pending or succeeded rows in seq order (keeping one cost
 * every delivery three index writes), so such a page walks seq downwards,
 * at most this far, and may come back short with a next_cursor. The
 * event_type, since and until filters are windowed the same way, whatever
 * index leads (but an event's few deliveries): an index on either column
 * would cost every delivery insert a write, and created_at does not follow
 * seq exactly, so it cannot bound the walk. */
#define STATUS_SCAN_ROWS 262144

/* True if a list by q walks seq in windows (see STATUS_SCAN_ROWS). */
static bool list_windowed(const struct delivery_query *q)
{
	bool residual = q->event_type != NULL || q->has_since || q->has_until;
	if (q->event_id)
		return false;
	if (residual)
		return true;
	return q->status >= 0 && q->status != DELIVERY_DEAD && !q->endpoint_id;
}

/* The cached list statement for this combination of filters. The status
 * is written into the SQL (not bound) so the partial dead-letter indexes
 * can serve "status = 2". The index is named: without statistics the
 * planner can pick a worse one. The most selective filter leads: an event
 * has a few deliveries, an endpoint many, a status most. A windowed list
 * walks seq within [?5, ?1); ?6 is the event type, created_at is in
 * [?7, ?8). */
static sqlite3_stmt *list_stmt(struct sq *c, const struct delivery_query *q, bool windowed)
{
	bool by_endpoint = q->endpoint_id != NULL, by_event = q->event_id != NULL;
	bool by_type = q->event_type != NULL, by_time = q->has_since || q->has_until;
	int status = q->status;
	int slot = (by_endpoint ? 1 : 0) | (by_event ? 2 : 0) | ((status + 1) << 2) |
		   (by_type ? 16 : 0) | (by_time ? 32 : 0);
	if (c->list_stmt[slot])
		return c->list_stmt[slot];
	char sql[640];
	char status_sql[32] = "";
	const char *index = "";
	if (status >= 0)
		snprintf(status_sql, sizeof status_sql, " AND status = %d", status);
	if (by_event)
		index = " INDEXED BY deliveries_event";
	else if (by_endpoint && status == DELIVERY_DEAD)
		index = " INDEXED BY deliveries_dead_endpoint";
	else if (by_endpoint)
		index = " INDEXED BY deliveries_endpoint";
	else if (status == DELIVERY_DEAD)
		index = " INDEXED BY deliveries_dead";
	snprintf(sql, sizeof sql,
		 "SELECT " DLV_COLS " FROM deliveries%s WHERE seq < ?1%s%s%s%s%s%s"
		 " ORDER BY seq DESC LIMIT ?4",
		 index, windowed ? " AND seq >= ?5" : "",
		 by_endpoint ? " AND endpoint_id = ?2" : "", by_event ? " AND event_id = ?3" : "",
		 status_sql, by_type ? " AND event_type = ?6" : "",
		 by_time ? " AND created_at >= ?7 AND created_at < ?8" : "");
	c->list_stmt[slot] = sq_prepare(c, sql, "delivery_list prepare");
	return c->list_stmt[slot];
}

/* The highest seq below `below`, or 0 if there is none. */
static int seq_below(struct sq *c, int64_t below, int64_t *out)
{
	sqlite3_stmt *s = sq_stmt_get(c, S_DLV_SEQ_BELOW);
	if (!s)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, below);
	int step = sqlite3_step(s);
	*out = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sq_stmt_done(s);
	if (step != SQLITE_ROW) {
		sq_log_error(c, "delivery_list", step);
		return STORE_ERROR;
	}
	return STORE_OK;
}

static int rd_delivery(sqlite3_stmt *s, void *p) { return read_delivery(s, p); }
static void clr_delivery(void *p) { delivery_clear(p); }

/* Binds and reads one page of q below `before`. A windowed list reads
 * only the window of STATUS_SCAN_ROWS rows below it; *floor is then the
 * window's lowest seq (0 when the window reached the first row). */
static int list_page(struct sq *c, const struct delivery_query *q, bool windowed, int64_t before,
		     int limit, struct delivery **out, size_t *n, char next_cursor[STORE_CURSOR_MAX],
		     int64_t *floor)
{
	sqlite3_stmt *s = list_stmt(c, q, windowed);
	if (!s)
		return STORE_ERROR;
	*floor = 0;
	if (windowed) {
		/* The window starts at the newest row below the cursor. */
		int64_t top;
		if (seq_below(c, before, &top) != STORE_OK)
			return STORE_ERROR;
		*floor = top > STATUS_SCAN_ROWS ? top - STATUS_SCAN_ROWS + 1 : 0;
		sqlite3_bind_int64(s, 5, *floor);
	}
	sqlite3_bind_int64(s, 1, before);
	if (q->endpoint_id)
		sq_bind_text(s, 2, q->endpoint_id);
	if (q->event_id)
		sq_bind_text(s, 3, q->event_id);
	sqlite3_bind_int(s, 4, limit + 1);
	if (q->event_type)
		sq_bind_text(s, 6, q->event_type);
	if (q->has_since || q->has_until) {
		sqlite3_bind_int64(s, 7, q->has_since ? q->since : INT64_MIN);
		sqlite3_bind_int64(s, 8, q->has_until ? q->until : INT64_MAX);
	}
	void *arr = NULL;
	int rc = sq_read_page(c, s, limit, sizeof **out, DLV_COL_SEQ, rd_delivery, clr_delivery,
			      &arr, n, next_cursor, "delivery_list");
	*out = arr;
	return rc;
}

/* A windowed page walks at most this many windows: an
 * empty window goes on to the next, so a page comes back short (with a
 * next_cursor) only after about a million rows without a match. */
#define STATUS_SCAN_WINDOWS 4

int sq_delivery_list(void *conn, const struct delivery_query *q, struct delivery **out, size_t *n,
		     char next_cursor[STORE_CURSOR_MAX])
{
	struct sq *c = conn;
	int64_t before;

	*out = NULL;
	*n = 0;
	next_cursor[0] = '\0';
	if (store_cursor_parse(q->cursor, &before)) {
		log_warn("store: malformed cursor op=delivery_list");
		return STORE_ERROR;
	}
	if (q->status < -1 || q->status > DELIVERY_DEAD) {
		log_error("store: bad status filter op=delivery_list status=%d", q->status);
		return STORE_ERROR;
	}
	if (q->has_since && q->has_until && q->since >= q->until)
		return STORE_OK; /* an empty window */
	int limit = store_limit_clamp(q->limit);
	bool windowed = list_windowed(q);
	for (int w = 0;; w++) {
		int64_t floor, older = 0;
		int rc = list_page(c, q, windowed, before, limit, out, n, next_cursor, &floor);
		if (rc != STORE_OK || next_cursor[0] != '\0' || floor == 0)
			return rc;
		/* The window ended before the page filled: go on below it if
		 * anything is there, in this request while the page is empty. */
		rc = seq_below(c, floor, &older);
		if (rc == STORE_OK && older > 0 && (*n > 0 || w + 1 == STATUS_SCAN_WINDOWS))
			store_cursor_format(older + 1, next_cursor);
		if (rc != STORE_OK || older == 0 || next_cursor[0] != '\0') {
			if (rc != STORE_OK) {
				for (size_t i = 0; i < *n; i++)
					delivery_clear(&(*out)[i]);
				free(*out);
				*out = NULL;
				*n = 0;
			}
			return rc;
		}
		free(*out); /* an empty page */
		*out = NULL;
		before = older + 1;
	}
}

int sq_attempt_insert(void *conn, const struct attempt *a)
{
	struct sq *c = conn;
	sqlite3_stmt *s = sq_stmt_get(c, S_ATT_INSERT);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, a->delivery_id);
	sqlite3_bind_int(s, 2, a->attempt);
	sqlite3_bind_int64(s, 3, a->at);
	sq_bind_text(s, 4, a->url);
	sqlite3_bind_int(s, 5, a->status);
	sqlite3_bind_int64(s, 6, a->duration_ms);
	sq_bind_text(s, 7, a->response_body);
	sq_bind_text(s, 8, a->headers);
	sq_bind_text(s, 9, a->error_code[0] ? a->error_code : NULL);
	sq_bind_text(s, 10, a->error_message);
	const int64_t us[] = {a->timings.dns_us, a->timings.connect_us, a->timings.tls_us,
			      a->timings.ttfb_us, a->timings.total_us};
	for (int i = 0; i < 5; i++) {
		if (us[i] < 0)
			sqlite3_bind_null(s, 11 + i);
		else
			sqlite3_bind_int64(s, 11 + i, us[i]);
	}
	sq_bind_text(s, 16, a->remote_ip[0] != '\0' ? a->remote_ip : NULL);
	if (a->timings.total_us < 0)
		sqlite3_bind_null(s, 17); /* nothing ran: no connection to speak of */
	else
		sqlite3_bind_int(s, 17, a->reused);
	return sq_exec_stmt(c, s, "attempt_insert");
}

int sq_attempt_list(void *conn, const char *delivery_id, struct attempt **out, size_t *n)
{
	struct sq *c = conn;
	struct attempt *arr = NULL;
	size_t got = 0, cap = 0;
	int rc = STORE_OK;
	int step;

	*out = NULL;
	*n = 0;
	sqlite3_stmt *s = sq_stmt_get(c, S_ATT_LIST);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, delivery_id);
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		void *grown = array_grow(arr, &cap, got + 1, sizeof *arr, 8);
		if (grown == NULL) {
			log_error("store: out of memory op=attempt_list");
			rc = STORE_ERROR;
			goto out;
		}
		arr = grown;
		if (read_attempt(s, &arr[got]) != STORE_OK) {
			rc = STORE_ERROR;
			goto out;
		}
		got++;
	}
	if (step != SQLITE_DONE) {
		sq_log_error(c, "attempt_list", step);
		rc = STORE_ERROR;
	}
out:
	sq_stmt_done(s);
	if (rc != STORE_OK) {
		for (size_t i = 0; i < got; i++)
			attempt_clear(&arr[i]);
		free(arr);
		return rc;
	}
	if (!arr) {
		/* Always hand back an array, even an empty one. */
		arr = calloc(1, sizeof *arr);
		if (!arr)
			return STORE_ERROR;
	}
	*out = arr;
	*n = got;
	return STORE_OK;
}

/* S_PENDING_EP: up to limit rows. */
static int pending_rows(struct sq *c, const char *endpoint_id, int64_t after_at,
			const char *after_id, int limit, struct pending **out, size_t *n)
{
	struct pending *arr = NULL;
	size_t got = 0;
	int rc = STORE_OK;
	int step;

	*out = NULL;
	*n = 0;
	if (limit < 1)
		limit = 1;
	arr = calloc((size_t)limit, sizeof *arr);
	if (!arr) {
		log_error("store: out of memory op=pending_page");
		return STORE_ERROR;
	}
	sqlite3_stmt *s = sq_stmt_get(c, S_PENDING_EP);
	if (!s) {
		free(arr);
		return STORE_ERROR;
	}
	sqlite3_bind_int64(s, 1, after_at);
	sq_bind_text(s, 2, after_id ? after_id : "");
	sqlite3_bind_int(s, 3, limit);
	sq_bind_text(s, 4, endpoint_id);
	while ((step = sqlite3_step(s)) == SQLITE_ROW && got < (size_t)limit) {
		if (read_pending(s, &arr[got]) != STORE_OK) {
			rc = STORE_ERROR;
			break;
		}
		got++;
	}
	if (rc == STORE_OK && step != SQLITE_DONE && step != SQLITE_ROW) {
		sq_log_error(c, "pending_page", step);
		rc = STORE_ERROR;
	}
	sq_stmt_done(s);
	if (rc != STORE_OK) {
		free(arr);
		return rc;
	}
	*out = arr;
	*n = got;
	return STORE_OK;
}

int sq_pending_endpoints(void *conn, char (**ids)[ID_MAX], size_t *n)
{
	struct sq *c = conn;
	sqlite3_stmt *s = sq_stmt_get(c, S_PENDING_ENDPOINTS);
	if (!s)
		return STORE_ERROR;
	char(*arr)[ID_MAX] = NULL;
	size_t got = 0, cap = 0;
	int rc = STORE_OK, step;
	while (rc == STORE_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
		char(*grown)[ID_MAX] = array_grow(arr, &cap, got + 1, sizeof *arr, 64);
		if (grown == NULL) {
			log_error("store: out of memory op=pending_endpoints");
			rc = STORE_ERROR;
			break;
		}
		arr = grown;
		const char *id = (const char *)sqlite3_column_text(s, 0);
		snprintf(arr[got++], ID_MAX, "%s", id ? id : "");
	}
	if (rc == STORE_OK && step != SQLITE_DONE) {
		sq_log_error(c, "pending_endpoints", step);
		rc = STORE_ERROR;
	}
	sq_stmt_done(s);
	if (rc != STORE_OK) {
		free(arr);
		return rc;
	}
	*ids = arr;
	*n = got;
	return STORE_OK;
}

int sq_pending_page_endpoint(void *conn, const char *endpoint_id, int64_t after_at,
			     const char *after_id, int limit, struct pending **out, size_t *n)
{
	return pending_rows(conn, endpoint_id, after_at, after_id, limit, out, n);
}

int sq_batch_members(void *conn, int64_t seq, const char *id, int64_t at, char batch_id[ID_MAX],
		     struct pending **out, size_t *n)
{
	struct sq *c = conn;
	size_t got = 0, cap = 0;
	struct pending *arr = NULL;
	int rc = STORE_OK, step;
	sqlite3_stmt *s = sq_stmt_get(c, S_BATCH_MEMBERS);
	if (!s)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, seq);
	sq_bind_text(s, 2, id);
	sqlite3_bind_int64(s, 3, at);
	sqlite3_bind_int(s, 4, STORE_BATCH_MEMBERS_MAX);
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		if (got == cap) {
			cap = cap ? cap * 2 : 16;
			struct pending *m = realloc(arr, cap * sizeof *arr);
			if (m == NULL) {
				rc = STORE_ERROR;
				break;
			}
			arr = m;
		}
		if (read_pending(s, &arr[got]) != STORE_OK ||
		    (got == 0 && sq_col_id(s, 8, batch_id))) {
			rc = STORE_ERROR;
			break;
		}
		got++;
	}
	if (rc == STORE_OK && step != SQLITE_DONE) {
		sq_log_error(c, "batch_members", step);
		rc = STORE_ERROR;
	}
	sq_stmt_done(s);
	if (rc != STORE_OK || got == 0) {
		free(arr);
		batch_id[0] = '\0';
		return rc;
	}
	*out = arr;
	*n = got;
	return STORE_OK;
}

int sq_dlq_retry_one(void *conn, const char *delivery_id, int64_t now, struct pending *out)
{
	struct sq *c = conn;
	memset(out, 0, sizeof *out);
	sqlite3_stmt *s = sq_stmt_get(c, S_DLQ_RETRY_ONE);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, delivery_id);
	sqlite3_bind_int64(s, 2, now);
	int rc = STORE_NOTFOUND;
	int step;
	/* RETURNING: the change is made on the first step; step to the end so
	 * the statement completes. */
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		if (read_pending(s, out) != STORE_OK) {
			rc = STORE_ERROR;
			break;
		}
		rc = STORE_OK;
	}
	if (rc != STORE_ERROR && step != SQLITE_DONE) {
		sq_log_error(c, "dlq_retry_one", step);
		rc = STORE_ERROR;
	}
	sq_stmt_done(s);
	if (rc != STORE_NOTFOUND)
		return rc;

	/* Nothing changed: tell an unknown id from one that is not dead. */
	s = sq_stmt_get(c, S_DLV_STATUS);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, delivery_id);
	step = sqlite3_step(s);
	if (step == SQLITE_ROW)
		rc = STORE_CONFLICT;
	else if (step == SQLITE_DONE)
		rc = STORE_NOTFOUND;
	else {
		sq_log_error(c, "dlq_retry_one status", step);
		rc = STORE_ERROR;
	}
	sq_stmt_done(s);
	return rc;
}

int sq_dlq_retry_endpoint(void *conn, const char *endpoint_id, int64_t now, int64_t *count)
{
	struct sq *c = conn;
	*count = 0;
	sqlite3_stmt *s = sq_stmt_get(c, S_DLQ_RETRY_EP);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, endpoint_id);
	sqlite3_bind_int64(s, 2, now);
	int rc = sq_exec_stmt(c, s, "dlq_retry_endpoint");
	if (rc == STORE_OK)
		*count = sqlite3_changes(c->db);
	return rc;
}

/* Tells fn how many dead letters of each endpoint the purge before
 * `before` deletes. */
static int purge_counts(struct sq *c, int64_t before,
			int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg)
{
	sqlite3_stmt *s = sq_stmt_get(c, S_PURGE_BY_ENDPOINT);
	if (!s)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, before);
	int rc = STORE_OK;
	int step = SQLITE_DONE;
	while (rc == STORE_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(s, 0);
		rc = fn(id ? id : "", sqlite3_column_int64(s, 1), arg);
	}
	if (rc == STORE_OK && step != SQLITE_DONE) {
		sq_log_error(c, "purge_dead counts", step);
		rc = STORE_ERROR;
	}
	sq_stmt_done(s);
	return rc;
}

int sq_purge_dead(void *conn, int64_t before, int64_t *count,
		  int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg)
{
	struct sq *c = conn;
	*count = 0;
	int rc = sq_op_begin(c);
	if (rc != STORE_OK)
		return rc;
	if (fn != NULL)
		rc = purge_counts(c, before, fn, arg);
	sqlite3_stmt *s = rc == STORE_OK ? sq_stmt_get(c, S_PURGE_ATTEMPTS) : NULL;
	if (rc == STORE_OK) {
		rc = STORE_ERROR;
		if (s) {
			sqlite3_bind_int64(s, 1, before);
			rc = sq_exec_stmt(c, s, "purge_dead attempts");
		}
	}
	if (rc == STORE_OK) {
		s = sq_stmt_get(c, S_PURGE_DELIVERIES);
		rc = STORE_ERROR;
		if (s) {
			sqlite3_bind_int64(s, 1, before);
			rc = sq_exec_stmt(c, s, "purge_dead deliveries");
		}
		if (rc == STORE_OK)
			*count = sqlite3_changes(c->db);
	}
	rc = sq_op_end(c, rc);
	if (rc != STORE_OK)
		*count = 0;
	return rc;
}

int sq_queue_seed(void *conn, int (*fn)(const struct store_queue_group *g, void *arg), void *arg)
{
	struct sq *c = conn;
	sqlite3_stmt *s = sq_stmt_get(c, S_QUEUE_SEED);
	if (!s)
		return STORE_ERROR;
	int rc = STORE_OK;
	int step = SQLITE_DONE;
	while (rc == STORE_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(s, 0);
		struct store_queue_group g = {
			.endpoint_id = id ? id : "",
			.status = (enum delivery_status)sqlite3_column_int(s, 1),
			.second = sqlite3_column_int64(s, 2),
			.count = sqlite3_column_int64(s, 3),
			.min_at = sqlite3_column_int64(s, 4),
		};
		rc = fn(&g, arg);
	}
	if (rc == STORE_OK && step != SQLITE_DONE) {
		sq_log_error(c, "queue_seed", step);
		rc = STORE_ERROR;
	}
	sq_stmt_done(s);
	return rc;
}
