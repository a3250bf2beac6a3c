/* store_pg_endpoints: the PostgreSQL backend's operations on endpoints (see
 * store_pg.c; the SQLite twin is store_sqlite_endpoints.c). */
#include "store_pg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The fields in the order bind_endpoint gives them ($1..$18), the same in
 * both statements. An update keeps created_at: $7 is only checked there,
 * because every parameter of a prepared statement needs a type. */
static const struct pg_stmt EP_INSERT = {
	"endpoint_insert",
	"INSERT INTO endpoints (id, url, description, events, secret, enabled, created_at,"
	" updated_at, filters, headers, rate_limit, max_in_flight, batch_max_events,"
	" batch_max_wait_ms, disabled_reason, secret_previous, secret_previous_until, signing)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
	" ON CONFLICT DO NOTHING"};
static const struct pg_stmt EP_UPDATE = {
	"endpoint_update",
	"UPDATE endpoints SET url = $2, description = $3, events = $4, secret = $5,"
	" enabled = $6, updated_at = $8, filters = $9, headers = $10, rate_limit = $11,"
	" max_in_flight = $12, batch_max_events = $13, batch_max_wait_ms = $14,"
	" disabled_reason = $15, secret_previous = $16, secret_previous_until = $17,"
	" signing = $18 WHERE id = $1 AND $7::bigint IS NOT NULL"};
static const struct pg_stmt EP_DELETE = {"endpoint_delete",
					 "DELETE FROM endpoints WHERE id = $1"};
static const struct pg_stmt EP_DELETE_ATTEMPTS = {
	"endpoint_delete attempts", "DELETE FROM attempts WHERE delivery_id IN"
				    " (SELECT id FROM deliveries WHERE endpoint_id = $1)"};
static const struct pg_stmt EP_DELETE_DELIVERIES = {
	"endpoint_delete deliveries", "DELETE FROM deliveries WHERE endpoint_id = $1"};
static const struct pg_stmt EPS_DELETE = {
	"endpoint_delete state", "DELETE FROM endpoint_state WHERE endpoint_id = $1"};
static const struct pg_stmt EPS_PUT = {
	"endpoint_state_put",
	"INSERT INTO endpoint_state (endpoint_id, circuit, failures, cooldown_ms, open_until,"
	" paused_until, pause_reason, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
	" ON CONFLICT (endpoint_id) DO UPDATE SET circuit = EXCLUDED.circuit,"
	" failures = EXCLUDED.failures, cooldown_ms = EXCLUDED.cooldown_ms,"
	" open_until = EXCLUDED.open_until, paused_until = EXCLUDED.paused_until,"
	" pause_reason = EXCLUDED.pause_reason, updated_at = EXCLUDED.updated_at"};
static const struct pg_stmt EPS_EACH = {
	"endpoint_state_each", "SELECT endpoint_id, circuit, failures, cooldown_ms, open_until,"
			       " paused_until, pause_reason, updated_at FROM endpoint_state"};
static const struct pg_stmt EP_GET = {"endpoint_get",
				      "SELECT " PG_EP_COLS " FROM endpoints WHERE id = $1"};
static const struct pg_stmt EP_LIST = {
	"endpoint_list",
	"SELECT " PG_EP_COLS " FROM endpoints WHERE seq < $1 ORDER BY seq DESC LIMIT $2"};
static const struct pg_stmt EP_EACH = {"endpoint_each",
				       "SELECT " PG_EP_COLS " FROM endpoints ORDER BY seq"};
static const struct pg_stmt EP_DISABLE = {
	"endpoint_disable", "UPDATE endpoints SET enabled = 0, disabled_reason = $2,"
			    " updated_at = $3 WHERE id = $1"};

/* Reads row `row` of PG_EP_COLS into e (zeroed first). */
static int read_endpoint(const PGresult *r, int row, struct endpoint *e)
{
	memset(e, 0, sizeof *e);
	if (pg_get_id(r, row, 0, e->id) || pg_get_dup(r, row, 1, &e->url) ||
	    pg_get_dup(r, row, 2, &e->description) || pg_get_json(r, row, 3, &e->events) ||
	    pg_get_dup(r, row, 4, &e->secret) || pg_get_json(r, row, 8, &e->filters) ||
	    pg_get_json(r, row, 9, &e->headers) || pg_get_dup(r, row, 14, &e->disabled_reason) ||
	    pg_get_dup(r, row, 15, &e->secret_previous)) {
		endpoint_clear(e);
		return STORE_ERROR;
	}
	e->enabled = pg_get_int64(r, row, 5) != 0;
	e->created_at = pg_get_int64(r, row, 6);
	e->updated_at = pg_get_int64(r, row, 7);
	e->rate_limit = pg_get_double(r, row, 10);
	e->max_in_flight = (int)pg_get_int64(r, row, 11);
	e->batch_max_events = (int)pg_get_int64(r, row, 12);
	e->batch_max_wait_ms = (int)pg_get_int64(r, row, 13);
	e->secret_previous_until = pg_get_int64(r, row, 16);
	return STORE_OK;
}

/* Fills p with $1..$18 of EP_INSERT/EP_UPDATE; the JSON texts are kept in
 * *t for the caller to free after the statement ran. -1: out of memory. */
static int bind_endpoint(struct pg_params *p, const struct endpoint *e, struct store_ep_texts *t)
{
	if (store_ep_texts_make(e, t) != 0)
		return -1;
	pg_params_init(p);
	pg_param_text(p, e->id);
	pg_param_text(p, e->url);
	pg_param_text(p, e->description ? e->description : "");
	pg_param_text(p, t->events);
	pg_param_text(p, e->secret);
	pg_param_int(p, e->enabled ? 1 : 0);
	pg_param_int(p, e->created_at);
	pg_param_int(p, e->updated_at);
	pg_param_text(p, t->filters);
	pg_param_text(p, t->headers);
	pg_param_double(p, e->rate_limit > 0 ? e->rate_limit : 0);
	pg_param_int(p, endpoint_max_in_flight(e));
	pg_param_int(p, e->batch_max_events > 0 ? e->batch_max_events : 0);
	pg_param_int(p, e->batch_max_events > 0 ? e->batch_max_wait_ms : 0);
	pg_param_text(p, e->disabled_reason);
	pg_param_text(p, e->secret_previous);
	pg_param_int(p, e->secret_previous ? e->secret_previous_until : 0);
	bool ed25519 = e->secret && strncmp(e->secret, "whsk_", 5) == 0;
	pg_param_text(p, ed25519 ? "ed25519" : "hmac");
	return 0;
}

/* Runs EP_INSERT or EP_UPDATE for e; *changed says how many rows it wrote. */
static int write_endpoint(struct pg *c, const struct pg_stmt *s, const struct endpoint *e,
			  int64_t *changed)
{
	struct store_ep_texts t;
	struct pg_params p;
	PGresult *r = NULL;
	int rc = STORE_ERROR;
	*changed = 0;
	if (bind_endpoint(&p, e, &t) != 0) {
		log_error("store: out of memory op=%s", s->op);
		goto out;
	}
	rc = pg_exec(c, s, &p, &r);
	if (rc == STORE_OK)
		*changed = pg_affected(r);
	PQclear(r);
	pg_params_free(&p);
out:
	store_ep_texts_free(&t);
	return rc;
}

int pg_endpoint_insert(void *conn, const struct endpoint *e)
{
	int64_t changed;
	int rc = write_endpoint(conn, &EP_INSERT, e, &changed);
	if (rc == STORE_OK && changed == 0)
		return STORE_CONFLICT;
	if (rc == STORE_OK)
		pg_notes_endpoint(conn, e->id);
	return rc;
}

int pg_endpoint_update(void *conn, const struct endpoint *e)
{
	int64_t changed;
	int rc = write_endpoint(conn, &EP_UPDATE, e, &changed);
	if (rc == STORE_OK && changed == 0)
		return STORE_NOTFOUND;
	if (rc == STORE_OK)
		pg_notes_endpoint(conn, e->id);
	return rc;
}

/* Runs s with the one text parameter v; *changed rows. */
static int exec_text(struct pg *c, const struct pg_stmt *s, const char *v, int64_t *changed)
{
	struct pg_params p;
	PGresult *r = NULL;
	pg_params_init(&p);
	pg_param_text(&p, v);
	int rc = pg_exec(c, s, &p, &r);
	if (changed)
		*changed = rc == STORE_OK ? pg_affected(r) : 0;
	PQclear(r);
	return rc;
}

int pg_endpoint_delete(void *conn, const char *id)
{
	struct pg *c = conn;
	struct pg_op op;
	int64_t changed = 0;
	int rc = pg_op_begin(c, &op);
	if (rc != STORE_OK)
		return rc;
	rc = exec_text(c, &EP_DELETE, id, &changed);
	if (rc == STORE_OK && changed == 0)
		rc = STORE_NOTFOUND;
	if (rc == STORE_OK)
		rc = exec_text(c, &EP_DELETE_ATTEMPTS, id, NULL);
	if (rc == STORE_OK)
		rc = exec_text(c, &EP_DELETE_DELIVERIES, id, NULL);
	if (rc == STORE_OK)
		rc = exec_text(c, &EPS_DELETE, id, NULL);
	if (rc == STORE_OK)
		pg_notes_endpoint(c, id); /* forgotten by pg_op_end if it fails */
	return pg_op_end(c, &op, rc);
}

int pg_endpoint_get(void *conn, const char *id, struct endpoint *out)
{
	struct pg_params p;
	PGresult *r = NULL;
	memset(out, 0, sizeof *out);
	pg_params_init(&p);
	pg_param_text(&p, id);
	int rc = pg_exec(conn, &EP_GET, &p, &r);
	if (rc == STORE_OK)
		rc = PQntuples(r) == 0 ? STORE_NOTFOUND : read_endpoint(r, 0, out);
	PQclear(r);
	return rc;
}

/* Reads every row of r into a malloc'd array (NULL when empty). */
static int read_endpoints(const PGresult *r, int rows, struct endpoint **out)
{
	*out = NULL;
	if (rows == 0)
		return STORE_OK;
	struct endpoint *arr = calloc((size_t)rows, sizeof *arr);
	if (!arr) {
		log_error("store: out of memory op=endpoint_list");
		return STORE_ERROR;
	}
	for (int i = 0; i < rows; i++) {
		if (read_endpoint(r, i, &arr[i]) != STORE_OK) {
			for (int j = 0; j < i; j++)
				endpoint_clear(&arr[j]);
			free(arr);
			return STORE_ERROR;
		}
	}
	*out = arr;
	return STORE_OK;
}

int pg_endpoint_list(void *conn, const char *cursor, int limit, struct endpoint **out, size_t *n,
		     char next_cursor[STORE_CURSOR_MAX])
{
	int64_t before;
	*out = NULL;
	*n = 0;
	next_cursor[0] = '\0';
	if (store_cursor_parse(cursor, &before)) {
		log_warn("store: malformed cursor op=endpoint_list");
		return STORE_ERROR;
	}
	limit = store_limit_clamp(limit);
	struct pg_params p;
	PGresult *r = NULL;
	pg_params_init(&p);
	pg_param_int(&p, before);
	/* One row more than asked: it says whether there is a next page. */
	pg_param_int(&p, limit + 1);
	int rc = pg_exec(conn, &EP_LIST, &p, &r);
	if (rc == STORE_OK) {
		int rows = PQntuples(r);
		if (rows > limit) {
			rows = limit;
			store_cursor_format(pg_get_int64(r, rows - 1, PG_EP_COL_SEQ), next_cursor);
		}
		rc = read_endpoints(r, rows, out);
		if (rc == STORE_OK)
			*n = (size_t)rows;
		else
			next_cursor[0] = '\0';
	}
	PQclear(r);
	return rc;
}

int pg_endpoint_each(void *conn, int (*fn)(const struct endpoint *e, void *arg), void *arg)
{
	/* One result holds them all: endpoints are few (thousands at most). */
	PGresult *r = NULL;
	int rc = pg_exec(conn, &EP_EACH, NULL, &r);
	for (int i = 0; rc == STORE_OK && i < PQntuples(r); i++) {
		struct endpoint e;
		rc = read_endpoint(r, i, &e);
		if (rc != STORE_OK)
			break;
		rc = fn(&e, arg);
		endpoint_clear(&e);
	}
	PQclear(r);
	return rc;
}

int pg_endpoint_disable(void *conn, const char *id, const char *reason, int64_t now)
{
	struct pg_params p;
	PGresult *r = NULL;
	pg_params_init(&p);
	pg_param_text(&p, id);
	pg_param_text(&p, reason);
	pg_param_int(&p, now);
	int rc = pg_exec(conn, &EP_DISABLE, &p, &r);
	if (rc == STORE_OK && pg_affected(r) == 0)
		rc = STORE_NOTFOUND;
	else if (rc == STORE_OK)
		pg_notes_endpoint(conn, id);
	PQclear(r);
	return rc;
}

int pg_endpoint_state_put(void *conn, const struct endpoint_state *st)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, st->endpoint_id);
	pg_param_text(&p, st->circuit);
	pg_param_int(&p, st->failures);
	pg_param_int(&p, st->cooldown_ms);
	pg_param_int(&p, st->open_until);
	pg_param_int(&p, st->paused_until);
	pg_param_text(&p, st->pause_reason);
	pg_param_int(&p, st->updated_at);
	int rc = pg_exec(conn, &EPS_PUT, &p, NULL);
	pg_params_free(&p);
	return rc;
}

int pg_endpoint_state_each(void *conn, int (*fn)(const struct endpoint_state *s, void *arg),
			   void *arg)
{
	PGresult *r = NULL;
	int rc = pg_exec(conn, &EPS_EACH, NULL, &r);
	int rows = rc == STORE_OK ? PQntuples(r) : 0;
	for (int i = 0; i < rows && rc == STORE_OK; i++) {
		struct endpoint_state st = {0};
		if (pg_get_id(r, i, 0, st.endpoint_id) ||
		    pg_get_text(r, i, 1, st.circuit, sizeof st.circuit) ||
		    pg_get_text(r, i, 6, st.pause_reason, sizeof st.pause_reason)) {
			log_error("store: endpoint_state: a malformed row, skipped");
			continue;
		}
		st.failures = pg_get_int64(r, i, 2);
		st.cooldown_ms = pg_get_int64(r, i, 3);
		st.open_until = pg_get_int64(r, i, 4);
		st.paused_until = pg_get_int64(r, i, 5);
		st.updated_at = pg_get_int64(r, i, 7);
		rc = fn(&st, arg);
	}
	PQclear(r);
	return rc;
}
