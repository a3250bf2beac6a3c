/* store_sqlite_endpoints: the SQLite backend's operations on endpoints,
 * events and idempotency keys (see store_sqlite.c). */
#include "store_sqlite_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

static int read_endpoint(sqlite3_stmt *s, struct endpoint *e)
{
	memset(e, 0, sizeof *e);
	if (sq_col_id(s, 0, e->id) || sq_col_dup(s, 1, &e->url) ||
	    sq_col_dup(s, 2, &e->description) || sq_col_json(s, 3, &e->events) ||
	    sq_col_dup(s, 4, &e->secret)) {
		endpoint_clear(e);
		return STORE_ERROR;
	}
	e->enabled = sqlite3_column_int(s, 5) != 0;
	e->created_at = sqlite3_column_int64(s, 6);
	e->updated_at = sqlite3_column_int64(s, 7);
	return STORE_OK;
}

/* Binds an endpoint's fields; *events_text is malloc'd for the caller to free. */
static int bind_endpoint(sqlite3_stmt *s, const struct endpoint *e, char **events_text)
{
	*events_text = e->events ? json_dumps(e->events, JSON_COMPACT | JSON_ENCODE_ANY)
				 : strdup("[\"*\"]");
	if (!*events_text)
		return -1;
	int rc = sq_bind_text(s, 1, e->id);
	rc |= sq_bind_text(s, 2, e->url);
	rc |= sq_bind_text(s, 3, e->description ? e->description : "");
	rc |= sq_bind_text(s, 4, *events_text);
	rc |= sq_bind_text(s, 5, e->secret);
	rc |= sqlite3_bind_int(s, 6, e->enabled ? 1 : 0);
	return rc == SQLITE_OK ? 0 : -1;
}

int sq_endpoint_insert(void *conn, const struct endpoint *e)
{
	struct sq *c = conn;
	char *events = NULL;
	int rc = STORE_ERROR;
	sqlite3_stmt *s = sq_stmt_get(c, S_EP_INSERT);
	if (!s)
		goto out;
	if (bind_endpoint(s, e, &events) || sqlite3_bind_int64(s, 7, e->created_at) ||
	    sqlite3_bind_int64(s, 8, e->updated_at)) {
		sq_log_error(c, "endpoint_insert bind", 0);
		sq_stmt_done(s);
		goto out;
	}
	rc = sq_exec_stmt(c, s, "endpoint_insert");
out:
	free(events);
	return rc;
}

int sq_endpoint_update(void *conn, const struct endpoint *e)
{
	struct sq *c = conn;
	char *events = NULL;
	int rc = STORE_ERROR;
	sqlite3_stmt *s = sq_stmt_get(c, S_EP_UPDATE);
	if (!s)
		goto out;
	if (bind_endpoint(s, e, &events) || sqlite3_bind_int64(s, 7, e->updated_at)) {
		sq_log_error(c, "endpoint_update bind", 0);
		sq_stmt_done(s);
		goto out;
	}
	rc = sq_exec_stmt(c, s, "endpoint_update");
	if (rc == STORE_OK && sqlite3_changes(c->db) == 0)
		rc = STORE_NOTFOUND;
out:
	free(events);
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
	int rc = sq_read_page(c, s, limit, sizeof **out, 8, rd_endpoint, clr_endpoint, &arr,
			      n, next_cursor, "endpoint_list");
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
		if (sq_col_id(s, 0, out->id) || sq_col_dup(s, 1, &out->type) ||
		    sq_col_dup(s, 2, &out->data)) {
			event_clear(out);
			rc = STORE_ERROR;
		}
		out->created_at = sqlite3_column_int64(s, 3);
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
