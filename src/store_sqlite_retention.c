/* store_sqlite_retention: retention for the SQLite backend
 * (docs/operations.md#retention): one bounded batch of old, final events
 * with their deliveries and attempts, then old idempotency keys whose
 * events are gone; the database's size; and giving free pages back with
 * PRAGMA incremental_vacuum. Each batch runs as one op on the commit thread
 * (retention.c), so it never competes with ingest for SQLite's one write
 * lock: it only waits its turn in the commit queue. */
#include "store_sqlite_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

/* An event the batch deletes. */
struct victim {
	int64_t seq;
	char id[ID_MAX];
};

/* 1 if the event has a delivery that is not final, 0 if not, -1 on error;
 * *n says how many deliveries it has. */
static int event_live(struct sq *c, const char *id, int64_t dead_before, int64_t *n)
{
	sqlite3_stmt *s = sq_stmt_get(c, S_RET_LIVE);
	if (!s)
		return -1;
	sq_bind_text(s, 1, id);
	sqlite3_bind_int64(s, 2, dead_before);
	int step = sqlite3_step(s), live = -1;
	if (step == SQLITE_ROW) {
		*n = sqlite3_column_int64(s, 0);
		live = sqlite3_column_int(s, 1) != 0;
	} else {
		sq_log_error(c, "retention live", step);
	}
	sq_stmt_done(s);
	return live;
}

/* Walks the events of the window from *cur and collects up to
 * r->max_events final ones into v (*n of them); moves *cur past the last
 * event looked at; *end tells whether the walk reached the window's end. */
static int pick_events(struct sq *c, const struct store_retention *r,
		       struct store_retention_cursor *cur, struct victim *v, size_t *n, bool *end)
{
	sqlite3_stmt *s = sq_stmt_get(c, S_RET_EVENTS);
	if (!s)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, r->before);
	sqlite3_bind_int64(s, 2, cur->event_at);
	sqlite3_bind_int64(s, 3, cur->event_pos);
	sqlite3_bind_int(s, 4, r->max_scan);
	int rc = STORE_OK, step, seen = 0;
	int64_t deliveries = 0, k = 0;
	*n = 0;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		struct victim *x = &v[*n];
		int live = sq_col_id(s, 1, x->id) != 0 ? -1
							: event_live(c, x->id, r->dead_before, &k);
		if (live < 0) {
			rc = STORE_ERROR;
			break;
		}
		if (live == 0 && *n > 0 && deliveries + k > r->max_deliveries)
			break; /* the next batch starts with it: the cursor stays before it */
		seen++;
		cur->event_at = sqlite3_column_int64(s, 2);
		cur->event_pos = sqlite3_column_int64(s, 0);
		if (live == 0) {
			x->seq = cur->event_pos;
			deliveries += k;
			if (++*n == (size_t)r->max_events)
				break;
		}
	}
	if (rc == STORE_OK && step != SQLITE_ROW && step != SQLITE_DONE) {
		sq_log_error(c, "retention events", step);
		rc = STORE_ERROR;
	}
	*end = rc == STORE_OK && step == SQLITE_DONE && seen < r->max_scan;
	sq_stmt_done(s);
	return rc;
}

/* Tells fn how many dead letters of each endpoint event id takes with it. */
static int count_dead(struct sq *c, const char *id,
		      int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg)
{
	sqlite3_stmt *s = sq_stmt_get(c, S_RET_DEAD_BY_EP);
	if (!s)
		return STORE_ERROR;
	sq_bind_text(s, 1, id);
	int rc = STORE_OK, step = SQLITE_DONE;
	while (rc == STORE_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
		const char *ep = (const char *)sqlite3_column_text(s, 0);
		rc = fn(ep ? ep : "", sqlite3_column_int64(s, 1), arg);
	}
	if (rc == STORE_OK && step != SQLITE_DONE) {
		sq_log_error(c, "retention dead counts", step);
		rc = STORE_ERROR;
	}
	sq_stmt_done(s);
	return rc;
}

/* Runs a bound DELETE by id (text) or seq and adds the rows it took to *count. */
static int delete_by(struct sq *c, enum stmt_id id, const char *text, int64_t seq,
		     int64_t *count, const char *op)
{
	sqlite3_stmt *s = sq_stmt_get(c, id);
	if (!s)
		return STORE_ERROR;
	if (text != NULL)
		sq_bind_text(s, 1, text);
	else
		sqlite3_bind_int64(s, 1, seq);
	int rc = sq_exec_stmt(c, s, op);
	if (rc == STORE_OK)
		*count += sqlite3_changes(c->db);
	return rc;
}

static int delete_event(struct sq *c, const struct victim *x, struct store_retention_result *res)
{
	int rc = delete_by(c, S_RET_ATTEMPTS, x->id, 0, &res->attempts, "retention attempts");
	if (rc == STORE_OK)
		rc = delete_by(c, S_RET_DELIVERIES, x->id, 0, &res->deliveries,
			       "retention deliveries");
	if (rc == STORE_OK)
		rc = delete_by(c, S_RET_EVENT, NULL, x->seq, &res->events, "retention event");
	return rc;
}

/* 1 if one of the events the key names is stored, 0 if none, -1 on error. */
static int key_live(struct sq *c, const json_t *ids)
{
	sqlite3_stmt *s = sq_stmt_get(c, S_RET_EV_EXISTS);
	if (!s)
		return -1;
	size_t i;
	json_t *v;
	json_array_foreach(ids, i, v)
	{
		if (!json_is_string(v))
			continue;
		sq_bind_text(s, 1, json_string_value(v));
		int step = sqlite3_step(s);
		sq_stmt_done(s);
		if (step == SQLITE_ROW)
			return 1;
		if (step != SQLITE_DONE) {
			sq_log_error(c, "retention key event", step);
			return -1;
		}
	}
	return 0;
}

/* Walks up to r->max_scan keys from *cur; collects the rowids of those
 * whose events are all gone into dead (*n); *end as pick_events. */
static int pick_keys(struct sq *c, const struct store_retention *r,
		     struct store_retention_cursor *cur, int64_t *dead, size_t *n, bool *end)
{
	sqlite3_stmt *s = sq_stmt_get(c, S_RET_KEYS);
	if (!s)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, r->before);
	sqlite3_bind_int64(s, 2, cur->key_at);
	sqlite3_bind_int64(s, 3, cur->key_pos);
	sqlite3_bind_int(s, 4, r->max_scan);
	int rc = STORE_OK, step, seen = 0;
	*n = 0;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		seen++;
		cur->key_pos = sqlite3_column_int64(s, 0);
		cur->key_at = sqlite3_column_int64(s, 2);
		json_t *ids = NULL;
		int live = sq_col_json(s, 1, &ids) != 0 ? 1 : key_live(c, ids);
		json_decref(ids);
		if (live < 0) {
			rc = STORE_ERROR;
			break;
		}
		if (live == 0)
			dead[(*n)++] = cur->key_pos;
	}
	if (rc == STORE_OK && step != SQLITE_DONE) {
		sq_log_error(c, "retention keys", step);
		rc = STORE_ERROR;
	}
	*end = rc == STORE_OK && seen < r->max_scan;
	sq_stmt_done(s);
	return rc;
}

static int purge_keys(struct sq *c, const struct store_retention *r,
		      struct store_retention_cursor *cur, struct store_retention_result *res,
		      bool *end)
{
	int64_t *dead = calloc((size_t)r->max_scan, sizeof *dead);
	size_t n = 0;
	if (dead == NULL)
		return STORE_ERROR;
	int rc = pick_keys(c, r, cur, dead, &n, end);
	for (size_t i = 0; rc == STORE_OK && i < n; i++)
		rc = delete_by(c, S_RET_KEY_DELETE, NULL, dead[i], &res->keys, "retention key");
	free(dead);
	return rc;
}

/* The events part: pick, report dead letters, delete. */
static int purge_events(struct sq *c, const struct store_retention *r,
			struct store_retention_cursor *cur, struct store_retention_result *res,
			bool *end, int (*fn)(const char *endpoint_id, int64_t n, void *arg),
			void *arg)
{
	struct victim *v = calloc((size_t)r->max_events, sizeof *v);
	size_t n = 0;
	if (v == NULL)
		return STORE_ERROR;
	int rc = pick_events(c, r, cur, v, &n, end);
	for (size_t i = 0; rc == STORE_OK && fn != NULL && i < n; i++)
		rc = count_dead(c, v[i].id, fn, arg);
	for (size_t i = 0; rc == STORE_OK && i < n; i++)
		rc = delete_event(c, &v[i], res);
	free(v);
	return rc;
}

int sq_purge_events(void *conn, const struct store_retention *r,
		    struct store_retention_cursor *cur, struct store_retention_result *res,
		    int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg)
{
	struct sq *c = conn;
	struct store_retention_cursor was = *cur;
	memset(res, 0, sizeof *res);
	if (r->max_events < 1 || r->max_events > STORE_LIMIT_MAX || r->max_scan < r->max_events ||
	    r->max_deliveries < 1)
		return STORE_ERROR;
	int rc = sq_op_begin(c);
	if (rc != STORE_OK)
		return rc;
	bool events_end = false, keys_end = false;
	rc = purge_events(c, r, cur, res, &events_end, fn, arg);
	if (rc == STORE_OK)
		rc = purge_keys(c, r, cur, res, &keys_end);
	rc = sq_op_end(c, rc);
	if (rc != STORE_OK) {
		*cur = was;
		memset(res, 0, sizeof *res);
		return rc;
	}
	res->done = events_end && keys_end;
	return STORE_OK;
}

/* An integer pragma's value, or -1 (logged). */
static int64_t pragma_value(struct sq *c, const char *sql)
{
	sqlite3_stmt *s = sq_prepare(c, sql, "size");
	if (s == NULL)
		return -1;
	int step = sqlite3_step(s);
	int64_t v = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
	if (step != SQLITE_ROW)
		sq_log_error(c, sql, step);
	sqlite3_finalize(s);
	return v;
}

/* The size of path + suffix in bytes: 0 if it does not exist, -1 if it
 * cannot be read. */
static int64_t file_bytes(const char *path, const char *suffix)
{
	char name[4096];
	struct stat sb;
	if ((size_t)snprintf(name, sizeof name, "%s%s", path, suffix) >= sizeof name)
		return -1;
	if (stat(name, &sb) != 0)
		return errno == ENOENT ? 0 : -1;
	return (int64_t)sb.st_size;
}

int sq_size(void *conn, struct store_size *out)
{
	struct sq *c = conn;
	const char *path = sqlite3_db_filename(c->db, "main");
	out->file_bytes = out->wal_bytes = out->free_bytes = -1;
	if (path == NULL || *path == '\0')
		return STORE_ERROR;
	int64_t free_pages = pragma_value(c, "PRAGMA freelist_count");
	int64_t page_size = pragma_value(c, "PRAGMA page_size");
	out->file_bytes = file_bytes(path, "");
	out->wal_bytes = file_bytes(path, "-wal");
	if (free_pages >= 0 && page_size > 0)
		out->free_bytes = free_pages * page_size;
	return out->file_bytes >= 0 ? STORE_OK : STORE_ERROR;
}

int sq_reclaim(void *conn, int pages, int64_t *freed)
{
	struct sq *c = conn;
	*freed = 0;
	if (pragma_value(c, "PRAGMA auto_vacuum") != 2) /* INCREMENTAL */
		return STORE_OK;
	int64_t before = pragma_value(c, "PRAGMA page_count");
	char sql[64];
	snprintf(sql, sizeof sql, "PRAGMA incremental_vacuum(%d)", pages);
	sqlite3_stmt *s = sq_prepare(c, sql, "reclaim");
	if (s == NULL)
		return STORE_ERROR;
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW)
		;
	if (step != SQLITE_DONE)
		sq_log_error(c, "reclaim", step);
	sqlite3_finalize(s);
	if (step != SQLITE_DONE)
		return STORE_ERROR;
	int64_t after = pragma_value(c, "PRAGMA page_count");
	int64_t page_size = pragma_value(c, "PRAGMA page_size");
	if (before > after && page_size > 0)
		*freed = (before - after) * page_size;
	return STORE_OK;
}
