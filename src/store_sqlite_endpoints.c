/* store_sqlite_endpoints: the SQLite backend's operations on endpoints,
 * events and idempotency keys (see store_sqlite.c). */
#include "store_sqlite_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

static int read_endpoint(sqlite3_stmt *s, struct endpoint *e)
{
	json_t *sigs = NULL;
	memset(e, 0, sizeof *e);
	int bad = sq_col_json(s, 17, &sigs) || store_ep_signatures(e, sigs);
	json_decref(sigs);
	if (bad || sq_col_id(s, 0, e->id) || sq_col_dup(s, 1, &e->url) ||
	    sq_col_dup(s, 2, &e->description) || sq_col_json(s, 3, &e->events) ||
	    sq_col_dup(s, 4, &e->secret) || sq_col_json(s, 8, &e->filters) ||
	    sq_col_json(s, 9, &e->headers) || sq_col_dup(s, 14, &e->disabled_reason) ||
	    sq_col_dup(s, 15, &e->secret_previous)) {
		endpoint_clear(e);
		return STORE_ERROR;
	}
	e->enabled = sqlite3_column_int(s, 5) != 0;
	e->created_at = sqlite3_column_int64(s, 6);
	e->updated_at = sqlite3_column_int64(s, 7);
	e->rate_limit = sqlite3_column_double(s, 10);
	e->max_in_flight = sqlite3_column_int(s, 11);
	e->batch_max_events = sqlite3_column_int(s, 12);
	e->batch_max_wait_ms = sqlite3_column_int(s, 13);
	e->secret_previous_until = sqlite3_column_int64(s, 16);
	return STORE_OK;
}

/* Binds an endpoint's fields but created_at/updated_at (?7, ?8); the texts
 * bound are kept in *t for the caller to free after the step. */
static int bind_endpoint(sqlite3_stmt *s, const struct endpoint *e, struct store_ep_texts *t)
{
	if (store_ep_texts_make(e, t) != 0)
		return -1;
	int rc = sq_bind_text(s, 1, e->id);
	rc |= sq_bind_text(s, 2, e->url);
	rc |= sq_bind_text(s, 3, e->description ? e->description : "");
	rc |= sq_bind_text(s, 4, t->events);
	rc |= sq_bind_text(s, 5, e->secret);
	rc |= sqlite3_bind_int(s, 6, e->enabled ? 1 : 0);
	rc |= sq_bind_text(s, 9, t->filters);
	rc |= sq_bind_text(s, 10, t->headers);
	rc |= sqlite3_bind_double(s, 11, e->rate_limit > 0 ? e->rate_limit : 0);
	rc |= sqlite3_bind_int(s, 12, endpoint_max_in_flight(e));
	rc |= sqlite3_bind_int(s, 13, e->batch_max_events > 0 ? e->batch_max_events : 0);
	rc |= sqlite3_bind_int(s, 14, e->batch_max_events > 0 ? e->batch_max_wait_ms : 0);
	rc |= sq_bind_text(s, 15, e->disabled_reason);
	/* Secret rotation's previous secret; `signing` mirrors the
	 * secret's prefix (sign.h) for whoever reads the table. */
	rc |= sq_bind_text(s, 16, e->secret_previous);
	rc |= sqlite3_bind_int64(s, 17, e->secret_previous ? e->secret_previous_until : 0);
	bool ed25519 = e->secret && strncmp(e->secret, "whsk_", 5) == 0;
	rc |= sq_bind_text(s, 18, ed25519 ? "ed25519" : "hmac");
	rc |= sq_bind_text(s, 19, t->signatures);
	return rc == SQLITE_OK ? 0 : -1;
}

int sq_endpoint_insert(void *conn, const struct endpoint *e)
{
	struct sq *c = conn;
	struct store_ep_texts t = {0};
	int rc = STORE_ERROR;
	sqlite3_stmt *s = sq_stmt_get(c, S_EP_INSERT);
	if (!s)
		goto out;
	if (bind_endpoint(s, e, &t) || sqlite3_bind_int64(s, 7, e->created_at) ||
	    sqlite3_bind_int64(s, 8, e->updated_at)) {
		sq_log_error(c, "endpoint_insert bind", 0);
		sq_stmt_done(s);
		goto out;
	}
	rc = sq_exec_stmt(c, s, "endpoint_insert");
out:
	store_ep_texts_free(&t);
	return rc;
}

int sq_endpoint_update(void *conn, const struct endpoint *e)
{
	struct sq *c = conn;
	struct store_ep_texts t = {0};
	int rc = STORE_ERROR;
	sqlite3_stmt *s = sq_stmt_get(c, S_EP_UPDATE);
	if (!s)
		goto out;
	if (bind_endpoint(s, e, &t) || sqlite3_bind_int64(s, 7, e->updated_at)) {
		sq_log_error(c, "endpoint_update bind", 0);
		sq_stmt_done(s);
		goto out;
	}
	rc = sq_exec_stmt(c, s, "endpoint_update");
	if (rc == STORE_OK && sqlite3_changes(c->db) == 0)
		rc = STORE_NOTFOUND;
out:
	store_ep_texts_free(&t);
	return rc;
}

/* Runs a statement with one text parameter to completion. */
static int exec_with_text(struct sq *c, enum stmt_id id, const char *v, const char *op)
{
	sqlite3_stmt *s = sq_stmt_get(c, id);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, v);
	return sq_exec_stmt(c, s, op);
}

int sq_endpoint_delete(void *conn, const char *id)
{
	struct sq *c = conn;
	int rc = sq_op_begin(c);
	if (rc != STORE_OK)
		return rc;
	rc = exec_with_text(c, S_EP_DELETE, id, "endpoint_delete");
	if (rc == STORE_OK && sqlite3_changes(c->db) == 0)
		rc = STORE_NOTFOUND;
	if (rc == STORE_OK)
		rc = exec_with_text(c, S_EP_DELETE_ATTEMPTS, id, "endpoint_delete attempts");
	if (rc == STORE_OK)
		rc = exec_with_text(c, S_EP_DELETE_DELIVERIES, id, "endpoint_delete deliveries");
	if (rc == STORE_OK)
		rc = exec_with_text(c, S_EPS_DELETE, id, "endpoint_delete state");
	return sq_op_end(c, rc);
}

int sq_endpoint_get(void *conn, const char *id, struct endpoint *out)
{
	struct sq *c = conn;
	memset(out, 0, sizeof *out);
	sqlite3_stmt *s = sq_stmt_get(c, S_EP_GET);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, id);
	int rc = sqlite3_step(s);
	int out_rc;
	if (rc == SQLITE_ROW)
		out_rc = read_endpoint(s, out);
	else if (rc == SQLITE_DONE)
		out_rc = STORE_NOTFOUND;
	else {
		sq_log_error(c, "endpoint_get", rc);
		out_rc = STORE_ERROR;
	}
	sq_stmt_done(s);
	return out_rc;
}

static int rd_endpoint(sqlite3_stmt *s, void *p) { return read_endpoint(s, p); }
static void clr_endpoint(void *p) { endpoint_clear(p); }

int sq_endpoint_list(void *conn, const char *cursor, int limit, struct endpoint **out, size_t *n,
		     char next_cursor[STORE_CURSOR_MAX])
{
	struct sq *c = conn;
	int64_t before;
	void *arr = NULL;

	*out = NULL;
	*n = 0;
	next_cursor[0] = '\0';
	if (store_cursor_parse(cursor, &before)) {
		log_warn("store: malformed cursor op=endpoint_list");
		return STORE_ERROR;
	}
	limit = store_limit_clamp(limit);
	sqlite3_stmt *s = sq_stmt_get(c, S_EP_LIST);
	if (!s)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, before);
	/* One row more than asked: it says whether there is a next page. */
	sqlite3_bind_int(s, 2, limit + 1);
	int rc = sq_read_page(c, s, limit, sizeof **out, EP_COL_SEQ, rd_endpoint, clr_endpoint,
			      &arr, n, next_cursor, "endpoint_list");
	*out = arr;
	return rc;
}

int sq_endpoint_each(void *conn, int (*fn)(const struct endpoint *e, void *arg), void *arg)
{
	struct sq *c = conn;
	sqlite3_stmt *s = sq_stmt_get(c, S_EP_EACH);
	if (!s)
		return STORE_ERROR;
	int rc = STORE_OK;
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		struct endpoint e;
		if (read_endpoint(s, &e) != STORE_OK) {
			rc = STORE_ERROR;
			break;
		}
		rc = fn(&e, arg);
		endpoint_clear(&e);
		if (rc != 0)
			break;
	}
	if (rc == STORE_OK && step != SQLITE_DONE) {
		sq_log_error(c, "endpoint_each", step);
		rc = STORE_ERROR;
	}
	sq_stmt_done(s);
	return rc;
}

int sq_endpoint_disable(void *conn, const char *id, const char *reason, int64_t now)
{
	struct sq *c = conn;
	sqlite3_stmt *s = sq_stmt_get(c, S_EP_DISABLE);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, id);
	sq_bind_text(s, 2, reason);
	sqlite3_bind_int64(s, 3, now);
	int rc = sq_exec_stmt(c, s, "endpoint_disable");
	if (rc == STORE_OK && sqlite3_changes(c->db) == 0)
		rc = STORE_NOTFOUND;
	return rc;
}

int sq_endpoint_events(void *conn, const char *endpoint_id, int64_t since, int64_t until,
		       size_t max, struct store_event_ref **out, size_t *n)
{
	struct sq *c = conn;
	struct store_event_ref *arr = NULL;
	size_t got = 0, cap = 0;
	int rc = STORE_OK;
	int step;

	*out = NULL;
	*n = 0;
	if (max == 0)
		return STORE_OK;
	sqlite3_stmt *s = sq_stmt_get(c, S_EP_EVENTS);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, endpoint_id);
	sqlite3_bind_int64(s, 2, since);
	sqlite3_bind_int64(s, 3, until);
	sqlite3_bind_int64(s, 4, max > INT64_MAX ? INT64_MAX : (sqlite3_int64)max);
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		void *grown = array_grow(arr, &cap, got + 1, sizeof *arr, 64);
		if (grown == NULL) {
			log_error("store: out of memory op=endpoint_events");
			rc = STORE_ERROR;
			goto out;
		}
		arr = grown;
		struct store_event_ref *r = &arr[got];
		const unsigned char *type = sqlite3_column_text(s, 1);
		int tlen = sqlite3_column_bytes(s, 1);
		if (sq_col_id(s, 0, r->id) || !type || tlen <= 0 || tlen >= STORE_TYPE_MAX) {
			log_error("store: bad event row op=endpoint_events");
			rc = STORE_ERROR;
			goto out;
		}
		memcpy(r->type, type, (size_t)tlen);
		r->type[tlen] = '\0';
		r->created_at = sqlite3_column_int64(s, 2);
		got++;
	}
	if (step != SQLITE_DONE) {
		sq_log_error(c, "endpoint_events", step);
		rc = STORE_ERROR;
	}
out:
	sq_stmt_done(s);
	if (rc != STORE_OK) {
		free(arr);
		return rc;
	}
	*out = arr;
	*n = got;
	return STORE_OK;
}

int sq_event_insert(void *conn, const struct event *e)
{
	struct sq *c = conn;
	sqlite3_stmt *s = sq_stmt_get(c, S_EV_INSERT);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, e->id);
	sq_bind_text(s, 2, e->type);
	sq_bind_text(s, 3, e->data);
	sqlite3_bind_int64(s, 4, e->created_at);
	return sq_exec_stmt(c, s, "event_insert");
}

int sq_event_row(sqlite3_stmt *s, struct event *out)
{
	memset(out, 0, sizeof *out);
	if (sq_col_id(s, 0, out->id) || sq_col_dup(s, 1, &out->type) ||
	    sq_col_dup(s, 2, &out->data)) {
		event_clear(out);
		return STORE_ERROR;
	}
	out->created_at = sqlite3_column_int64(s, 3);
	return STORE_OK;
}

int sq_event_get(void *conn, const char *id, struct event *out)
{
	struct sq *c = conn;
	memset(out, 0, sizeof *out);
	sqlite3_stmt *s = sq_stmt_get(c, S_EV_GET);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, id);
	int step = sqlite3_step(s);
	int rc = STORE_OK;
	if (step == SQLITE_ROW) {
		rc = sq_event_row(s, out);
	} else if (step == SQLITE_DONE) {
		rc = STORE_NOTFOUND;
	} else {
		sq_log_error(c, "event_get", step);
		rc = STORE_ERROR;
	}
	sq_stmt_done(s);
	return rc;
}

int sq_idem_get(void *conn, const char *key, json_t **event_ids)
{
	struct sq *c = conn;
	*event_ids = NULL;
	sqlite3_stmt *s = sq_stmt_get(c, S_IDEM_GET);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, key);
	int step = sqlite3_step(s);
	int rc = STORE_OK;
	if (step == SQLITE_ROW) {
		if (sq_col_json(s, 0, event_ids) || !*event_ids)
			rc = STORE_ERROR;
	} else if (step == SQLITE_DONE) {
		rc = STORE_NOTFOUND;
	} else {
		sq_log_error(c, "idem_get", step);
		rc = STORE_ERROR;
	}
	sq_stmt_done(s);
	return rc;
}

int sq_idem_put(void *conn, const char *key, json_t *event_ids, int64_t at)
{
	struct sq *c = conn;
	char *text = event_ids ? json_dumps(event_ids, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	int rc = STORE_ERROR;
	if (!text) {
		log_error("store: idem_put without event ids");
		goto out;
	}
	sqlite3_stmt *s = sq_stmt_get(c, S_IDEM_PUT);
	if (!s)
		goto out;
	sq_bind_text(s, 1, key);
	sq_bind_text(s, 2, text);
	sqlite3_bind_int64(s, 3, at);
	rc = sq_exec_stmt(c, s, "idem_put");
out:
	free(text);
	return rc;
}

int sq_endpoint_state_put(void *conn, const struct endpoint_state *st)
{
	struct sq *c = conn;
	sqlite3_stmt *s = sq_stmt_get(c, S_EPS_PUT);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, st->endpoint_id);
	sq_bind_text(s, 2, st->circuit);
	sqlite3_bind_int64(s, 3, st->failures);
	sqlite3_bind_int64(s, 4, st->cooldown_ms);
	sqlite3_bind_int64(s, 5, st->open_until);
	sqlite3_bind_int64(s, 6, st->paused_until);
	sq_bind_text(s, 7, st->pause_reason);
	sqlite3_bind_int64(s, 8, st->updated_at);
	return sq_exec_stmt(c, s, "endpoint_state_put");
}

/* Copies text column i into out[0..cap); -1 if NULL or too long. */
static int col_text(sqlite3_stmt *s, int i, char *out, size_t cap)
{
	const unsigned char *v = sqlite3_column_text(s, i);
	if (v == NULL || (size_t)sqlite3_column_bytes(s, i) >= cap)
		return -1;
	memcpy(out, v, (size_t)sqlite3_column_bytes(s, i) + 1);
	return 0;
}

int sq_endpoint_state_each(void *conn, int (*fn)(const struct endpoint_state *s, void *arg),
			   void *arg)
{
	struct sq *c = conn;
	sqlite3_stmt *s = sq_stmt_get(c, S_EPS_EACH);
	if (!s)
		return STORE_ERROR;
	int rc, out = STORE_OK;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct endpoint_state st = {0};
		if (sq_col_id(s, 0, st.endpoint_id) ||
		    col_text(s, 1, st.circuit, sizeof st.circuit) ||
		    col_text(s, 6, st.pause_reason, sizeof st.pause_reason)) {
			log_error("store: endpoint_state: a malformed row, skipped");
			continue;
		}
		st.failures = sqlite3_column_int64(s, 2);
		st.cooldown_ms = sqlite3_column_int64(s, 3);
		st.open_until = sqlite3_column_int64(s, 4);
		st.paused_until = sqlite3_column_int64(s, 5);
		st.updated_at = sqlite3_column_int64(s, 7);
		if ((out = fn(&st, arg)) != 0)
			break;
	}
	if (out == STORE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
		sq_log_error(c, "endpoint_state_each", rc);
		out = STORE_ERROR;
	}
	sq_stmt_done(s);
	return out;
}
