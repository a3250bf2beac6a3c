/* store_pg_deliveries: the PostgreSQL backend's operations on deliveries
 * and attempts (see store_pg.c); the queue's (pending pages, dead letters,
 * the purge, the seed) are in store_pg_queue.c.
 *
 * PostgreSQL is often across a network, so each operation is one round
 * trip where the SQLite backend loops a statement per row, and conflicts
 * never raise an error: an aborted transaction would take the commit
 * thread's whole group with it (ON CONFLICT DO NOTHING, then the row count
 * says whether the row was new). */
#include "store_pg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define ATT_COL_TIMINGS 10 /* dns_us, the first of the five phases */
#define ATT_COL_REMOTE_IP 15
#define ATT_COL_REUSED 16

/* Fills d from row r of res (PG_DLV_COLS from column `col`). */
static int read_delivery(const PGresult *res, int r, int col, struct delivery *d)
{
	memset(d, 0, sizeof *d);
	if (pg_get_id(res, r, col + 0, d->id) || pg_get_id(res, r, col + 1, d->event_id) ||
	    pg_get_id(res, r, col + 2, d->endpoint_id) ||
	    pg_get_dup(res, r, col + 3, &d->event_type) ||
	    pg_get_dup(res, r, col + 12, &d->batch_id)) {
		delivery_clear(d);
		return STORE_ERROR;
	}
	d->status = (enum delivery_status)(int)pg_get_int64(res, r, col + 4);
	d->attempt_count = (int)pg_get_int64(res, r, col + 5);
	d->schedule_index = (int)pg_get_int64(res, r, col + 6);
	d->next_attempt_at = pg_get_int64(res, r, col + 7);
	d->created_at = pg_get_int64(res, r, col + 8);
	d->updated_at = pg_get_int64(res, r, col + 9);
	d->last_status = (int)pg_get_int64(res, r, col + 10);
	pg_get_code(res, r, col + 11, d->last_error);
	d->seq = pg_get_int64(res, r, col + PG_DLV_COL_SEQ);
	return STORE_OK;
}

/* Integer cell, or ATTEMPT_TIMING_NONE for SQL NULL. */
static int64_t cell_us(const PGresult *res, int r, int col)
{
	return pg_is_null(res, r, col) ? ATTEMPT_TIMING_NONE : pg_get_int64(res, r, col);
}

static int read_attempt(const PGresult *res, int r, struct attempt *a)
{
	memset(a, 0, sizeof *a);
	if (pg_get_id(res, r, 0, a->delivery_id) || pg_get_dup(res, r, 3, &a->url) ||
	    pg_get_dup(res, r, 6, &a->response_body) || pg_get_dup(res, r, 7, &a->headers) ||
	    pg_get_dup(res, r, 9, &a->error_message)) {
		attempt_clear(a);
		return STORE_ERROR;
	}
	a->attempt = (int)pg_get_int64(res, r, 1);
	a->at = pg_get_int64(res, r, 2);
	a->status = (int)pg_get_int64(res, r, 4);
	a->duration_ms = pg_get_int64(res, r, 5);
	pg_get_code(res, r, 8, a->error_code);
	int64_t *us[] = {&a->timings.dns_us, &a->timings.connect_us, &a->timings.tls_us,
			 &a->timings.ttfb_us, &a->timings.total_us};
	for (int i = 0; i < 5; i++)
		*us[i] = cell_us(res, r, ATT_COL_TIMINGS + i);
	if (pg_get_text(res, r, ATT_COL_REMOTE_IP, a->remote_ip, sizeof a->remote_ip) != 0)
		a->remote_ip[0] = '\0'; /* none (or not an address) */
	a->reused = pg_get_int64(res, r, ATT_COL_REUSED) != 0;
	return STORE_OK;
}

static const struct pg_stmt DLV_INSERT = {
	"delivery_insert",
	"INSERT INTO deliveries (id, event_id, endpoint_id, event_type, status, attempt_count,"
	" schedule_index, next_attempt_at, created_at, updated_at, last_status, last_error)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
	" ON CONFLICT (id) DO NOTHING RETURNING seq"};

int pg_delivery_insert(void *conn, struct delivery *d)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, d->id);
	pg_param_text(&p, d->event_id);
	pg_param_text(&p, d->endpoint_id);
	pg_param_text(&p, d->event_type);
	pg_param_int(&p, (int64_t)d->status);
	pg_param_int(&p, d->attempt_count);
	pg_param_int(&p, d->schedule_index);
	pg_param_int(&p, d->next_attempt_at);
	pg_param_int(&p, d->created_at);
	pg_param_int(&p, d->updated_at);
	pg_param_int(&p, d->last_status);
	pg_param_text(&p, d->last_error[0] ? d->last_error : NULL);
	PGresult *res = NULL;
	d->seq = 0;
	int rc = pg_exec(conn, &DLV_INSERT, &p, &res);
	if (rc == STORE_OK && PQntuples(res) == 0)
		rc = STORE_CONFLICT; /* the id exists */
	else if (rc == STORE_OK)
		d->seq = pg_get_int64(res, 0, 0);
	/* The other nodes hear of it at the commit (store_pg_notify.c). */
	if (rc == STORE_OK && d->status == DELIVERY_PENDING)
		pg_notes_pending(conn, d->seq);
	PQclear(res);
	pg_params_free(&p);
	return rc;
}

#define DLV_UPDATE_SET                                                                             \
	"UPDATE deliveries SET status = $2, attempt_count = $3, schedule_index = $4,"              \
	" next_attempt_at = $5, updated_at = $6, last_status = $7, last_error = $8"
static const struct pg_stmt DLV_UPDATE = {"delivery_update_state",
					  DLV_UPDATE_SET " WHERE id = $1"};
/* By row when the dispatcher knows it (the primary key); the id must match
 * too, as in the SQLite backend. */
static const struct pg_stmt DLV_UPDATE_SEQ = {"delivery_update_state",
					      DLV_UPDATE_SET " WHERE seq = $9 AND id = $1"};

int pg_delivery_update_state(void *conn, const struct delivery *d)
{
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, d->id);
	pg_param_int(&p, (int64_t)d->status);
	pg_param_int(&p, d->attempt_count);
	pg_param_int(&p, d->schedule_index);
	pg_param_int(&p, d->next_attempt_at);
	pg_param_int(&p, d->updated_at);
	pg_param_int(&p, d->last_status);
	pg_param_text(&p, d->last_error[0] ? d->last_error : NULL);
	if (d->seq > 0)
		pg_param_int(&p, d->seq);
	PGresult *res = NULL;
	int rc = pg_exec(conn, d->seq > 0 ? &DLV_UPDATE_SEQ : &DLV_UPDATE, &p, &res);
	if (rc == STORE_OK && pg_affected(res) == 0)
		rc = STORE_NOTFOUND;
	PQclear(res);
	pg_params_free(&p);
	return rc;
}

/* One statement for the whole batch: all or none, one round trip. Ids with
 * no row match nothing. */
static const struct pg_stmt DLV_SET_BATCH = {
	"delivery_set_batch", "UPDATE deliveries SET batch_id = $1 WHERE id = ANY ($2::text[])"};

int pg_delivery_set_batch(void *conn, const char *batch_id, const char *const *ids, size_t n)
{
	if (n == 0)
		return STORE_OK;
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, batch_id);
	pg_param_text_array(&p, ids, n);
	int rc = pg_exec(conn, &DLV_SET_BATCH, &p, NULL);
	pg_params_free(&p);
	return rc;
}

static const struct pg_stmt DLV_GET = {"delivery_get",
				       "SELECT " PG_DLV_COLS " FROM deliveries WHERE id = $1"};

int pg_delivery_get(void *conn, const char *id, struct delivery *out)
{
	memset(out, 0, sizeof *out);
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, id);
	PGresult *res = NULL;
	int rc = pg_exec(conn, &DLV_GET, &p, &res);
	if (rc == STORE_OK)
		rc = PQntuples(res) == 0 ? STORE_NOTFOUND : read_delivery(res, 0, 0, out);
	PQclear(res);
	pg_params_free(&p);
	return rc;
}

/* s as PostgreSQL text takes it (valid UTF-8): s itself, or, if some bytes
 * are not part of a valid sequence, a malloc'd copy in *copy with each of
 * them replaced by '?'. dispatch_http.c cleans what a receiver sends
 * already; this keeps one odd attempt from failing a whole record group.
 * -1 if out of memory. */
int pg_text(const char *s, const char **out, char **copy)
{
	*out = s;
	*copy = NULL;
	if (s == NULL)
		return 0;
	size_t len = strlen(s), i = 0, n;
	while (i < len && (n = utf8_seq_len((const unsigned char *)s + i, len - i)) > 0)
		i += n;
	if (i == len)
		return 0;
	char *c = malloc(len + 1);
	if (c == NULL)
		return -1;
	memcpy(c, s, len + 1);
	while (i < len) {
		n = utf8_seq_len((const unsigned char *)c + i, len - i);
		if (n == 0)
			c[i] = '?';
		i += n > 0 ? n : 1;
	}
	*out = *copy = c;
	return 0;
}

static const struct pg_stmt ATT_INSERT = {
	"attempt_insert",
	"INSERT INTO attempts (" PG_ATT_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
	" $11, $12, $13, $14, $15, $16, $17) ON CONFLICT (delivery_id, attempt) DO NOTHING"};

/* Binds a's timings, address and reuse ($11..$17). */
static void bind_attempt_timings(struct pg_params *p, const struct attempt *a)
{
	const int64_t us[] = {a->timings.dns_us, a->timings.connect_us, a->timings.tls_us,
			      a->timings.ttfb_us, a->timings.total_us};
	for (int i = 0; i < 5; i++) {
		if (us[i] < 0)
			pg_param_text(p, NULL);
		else
			pg_param_int(p, us[i]);
	}
	pg_param_text(p, a->remote_ip[0] != '\0' ? a->remote_ip : NULL);
	if (a->timings.total_us < 0)
		pg_param_text(p, NULL); /* nothing ran: no connection to speak of */
	else
		pg_param_int(p, a->reused ? 1 : 0);
}

int pg_attempt_insert(void *conn, const struct attempt *a)
{
	/* The texts a receiver's response fills. */
	const char *body, *headers, *message;
	char *copies[3] = {NULL, NULL, NULL};
	int rc = STORE_ERROR;
	struct pg_params p;
	pg_params_init(&p);
	if (pg_text(a->response_body, &body, &copies[0]) || pg_text(a->headers, &headers, &copies[1]) ||
	    pg_text(a->error_message, &message, &copies[2])) {
		log_error("store: out of memory op=attempt_insert");
		goto out;
	}
	pg_param_text(&p, a->delivery_id);
	pg_param_int(&p, a->attempt);
	pg_param_int(&p, a->at);
	pg_param_text(&p, a->url);
	pg_param_int(&p, a->status);
	pg_param_int(&p, a->duration_ms);
	pg_param_text(&p, body);
	pg_param_text(&p, headers);
	pg_param_text(&p, a->error_code[0] ? a->error_code : NULL);
	pg_param_text(&p, message);
	bind_attempt_timings(&p, a);
	PGresult *res = NULL;
	rc = pg_exec(conn, &ATT_INSERT, &p, &res);
	if (rc == STORE_OK && pg_affected(res) == 0)
		rc = STORE_CONFLICT; /* that attempt of that delivery exists */
	PQclear(res);
out:
	pg_params_free(&p);
	for (int i = 0; i < 3; i++)
		free(copies[i]);
	return rc;
}

static const struct pg_stmt ATT_LIST = {
	"attempt_list",
	"SELECT " PG_ATT_COLS " FROM attempts WHERE delivery_id = $1 ORDER BY attempt"};

int pg_attempt_list(void *conn, const char *delivery_id, struct attempt **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	struct pg_params p;
	pg_params_init(&p);
	pg_param_text(&p, delivery_id);
	PGresult *res = NULL;
	int rc = pg_exec(conn, &ATT_LIST, &p, &res);
	pg_params_free(&p);
	if (rc != STORE_OK)
		return rc;
	int rows = PQntuples(res);
	/* Always an array, even an empty one. */
	struct attempt *arr = calloc(rows > 0 ? (size_t)rows : 1, sizeof *arr);
	if (arr == NULL) {
		log_error("store: out of memory op=attempt_list");
		PQclear(res);
		return STORE_ERROR;
	}
	int got = 0;
	while (got < rows && rc == STORE_OK) {
		rc = read_attempt(res, got, &arr[got]);
		if (rc == STORE_OK)
			got++;
	}
	PQclear(res);
	if (rc != STORE_OK) {
		for (int i = 0; i < got; i++)
			attempt_clear(&arr[i]);
		free(arr);
		return rc;
	}
	*out = arr;
	*n = (size_t)rows;
	return STORE_OK;
}

/* How far one window of a list with no index for its filter walks seq
 * (status pending or succeeded alone, event_type, since, until): as the
 * SQLite backend (store_sqlite_deliveries.c), so both page the same way. A
 * page walks at most LIST_SCAN_WINDOWS windows while it finds nothing. */
#define LIST_SCAN_ROWS 262144
#define LIST_SCAN_WINDOWS 4

/* True if a list by q walks seq in windows (see LIST_SCAN_ROWS). */
static bool list_windowed(const struct delivery_query *q)
{
	bool residual = q->event_type != NULL || q->has_since || q->has_until;
	if (q->event_id)
		return false;
	if (residual)
		return true;
	return q->status >= 0 && q->status != DELIVERY_DEAD && !q->endpoint_id;
}

/* Appends q's filters to sql as " AND ..." with their parameters (numbered
 * after those already in p). The status is written into the SQL, not bound,
 * so the partial dead-letter indexes serve "status = 2". */
static void list_filters(const struct delivery_query *q, struct pg_params *p, char *sql,
			 size_t len)
{
	size_t at = strlen(sql);
	if (q->endpoint_id) {
		pg_param_text(p, q->endpoint_id);
		at += (size_t)snprintf(sql + at, len - at, " AND endpoint_id = $%d", p->n);
	}
	if (q->event_id) {
		pg_param_text(p, q->event_id);
		at += (size_t)snprintf(sql + at, len - at, " AND event_id = $%d", p->n);
	}
	if (q->status >= 0)
		at += (size_t)snprintf(sql + at, len - at, " AND status = %d", q->status);
	if (q->event_type) {
		pg_param_text(p, q->event_type);
		at += (size_t)snprintf(sql + at, len - at, " AND event_type = $%d", p->n);
	}
	if (q->has_since || q->has_until) {
		pg_param_int(p, q->has_since ? q->since : INT64_MIN);
		pg_param_int(p, q->has_until ? q->until : INT64_MAX);
		snprintf(sql + at, len - at, " AND created_at >= $%d AND created_at < $%d", p->n - 1,
			 p->n);
	}
}

/* The list's SQL for q below `before` ($1), with LIMIT limit + 1, and its
 * parameters in p. A windowed list's rows come after two columns: the
 * window's lowest seq (0 when it reached the first row) and the highest seq
 * below it (0 if none); an empty window is one row of NULLs after them.
 * The window starts at the newest row below the cursor, so a gap in seq
 * costs nothing. */
static void list_sql(const struct delivery_query *q, bool windowed, int limit, int64_t before,
		     struct pg_params *p, char *sql, size_t len)
{
	char where[512] = "seq < $1";
	pg_param_int(p, before);
	if (windowed)
		snprintf(where + strlen(where), sizeof where - strlen(where), " AND seq >= w.floor");
	list_filters(q, p, where, sizeof where);
	pg_param_int(p, (int64_t)limit + 1);
	if (!windowed) {
		snprintf(sql, len,
			 "SELECT " PG_DLV_COLS " FROM deliveries WHERE %s ORDER BY seq DESC LIMIT $%d",
			 where, p->n);
		return;
	}
	snprintf(sql, len,
		 "WITH f AS MATERIALIZED (SELECT CASE WHEN max(seq) > %d THEN max(seq) - %d + 1"
		 " ELSE 0 END AS floor FROM deliveries WHERE seq < $1),"
		 " w AS MATERIALIZED (SELECT floor, coalesce((SELECT max(seq) FROM deliveries"
		 " WHERE seq < f.floor), 0) AS older FROM f)"
		 " SELECT w.floor, w.older, d.* FROM w LEFT JOIN LATERAL (SELECT " PG_DLV_COLS
		 " FROM deliveries WHERE %s ORDER BY seq DESC LIMIT $%d) AS d ON true"
		 " ORDER BY d.seq DESC",
		 LIST_SCAN_ROWS, LIST_SCAN_ROWS, where, p->n);
}

static void free_deliveries(struct delivery *arr, size_t n)
{
	for (size_t i = 0; i < n; i++)
		delivery_clear(&arr[i]);
	free(arr);
}

/* Reads up to limit deliveries (columns from col) of res into a new array;
 * a further row sets next_cursor to the last one's seq. Rows whose id is
 * NULL (an empty window) are not deliveries. */
static int read_page(const PGresult *res, int col, int limit, struct delivery **out, size_t *n,
		     char next_cursor[STORE_CURSOR_MAX])
{
	int rows = PQntuples(res);
	struct delivery *arr = calloc((size_t)limit, sizeof *arr);
	size_t got = 0;
	if (arr == NULL) {
		log_error("store: out of memory op=delivery_list");
		return STORE_ERROR;
	}
	for (int r = 0; r < rows && !pg_is_null(res, r, col); r++) {
		if (got == (size_t)limit) {
			store_cursor_format(arr[got - 1].seq, next_cursor);
			break;
		}
		if (read_delivery(res, r, col, &arr[got]) != STORE_OK) {
			free_deliveries(arr, got);
			next_cursor[0] = '\0';
			return STORE_ERROR;
		}
		got++;
	}
	*out = arr;
	*n = got;
	return STORE_OK;
}

/* One page of q below `before`: its rows, and for a windowed list the
 * window's floor and the highest seq below it (*older). */
static int list_page(struct pg *c, const struct delivery_query *q, bool windowed, int64_t before,
		     int limit, struct delivery **out, size_t *n, char next_cursor[STORE_CURSOR_MAX],
		     int64_t *floor, int64_t *older)
{
	struct pg_params p;
	char sql[1536];
	pg_params_init(&p);
	list_sql(q, windowed, limit, before, &p, sql, sizeof sql);
	PGresult *res = NULL;
	*floor = 0;
	*older = 0;
	int rc = pg_query(c, sql, &p, &res, "delivery_list");
	if (rc == STORE_OK && windowed && PQntuples(res) > 0) {
		*floor = pg_get_int64(res, 0, 0);
		*older = pg_get_int64(res, 0, 1);
	}
	if (rc == STORE_OK)
		rc = read_page(res, windowed ? 2 : 0, limit, out, n, next_cursor);
	PQclear(res);
	pg_params_free(&p);
	return rc;
}

int pg_delivery_list(void *conn, const struct delivery_query *q, struct delivery **out, size_t *n,
		     char next_cursor[STORE_CURSOR_MAX])
{
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
		int64_t floor, older;
		int rc = list_page(conn, q, windowed, before, limit, out, n, next_cursor, &floor,
				   &older);
		if (rc != STORE_OK || next_cursor[0] != '\0' || floor == 0)
			return rc;
		/* The window ended before the page filled: go on below it if
		 * anything is there, in this request while the page is empty. */
		if (older > 0 && (*n > 0 || w + 1 == LIST_SCAN_WINDOWS))
			store_cursor_format(older + 1, next_cursor);
		if (older == 0 || next_cursor[0] != '\0')
			return STORE_OK;
		free(*out); /* an empty page */
		*out = NULL;
		before = older + 1;
	}
}
