/* store_pg_batch: the PostgreSQL backend's set-based writes (store.h
 * store_event_insert_many, store_delivery_insert_many,
 * store_record_results). Each is one statement whatever the number of rows:
 * every column travels as one array parameter and `unnest` turns the arrays
 * back into rows, so a commit group of 500 events costs two round trips
 * instead of a thousand (PostgreSQL is often across a network, and even on
 * loopback a round trip costs more than the row it writes).
 *
 * INSERT ... SELECT inserts, and RETURNING returns, rows in the order the
 * arrays list them; the readers below check it rather than trust it. */
#include "store_pg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

static const struct pg_stmt EV_INSERT_MANY = {
	"event_insert_many",
	"INSERT INTO events (id, type, data, created_at)"
	" SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])"
	" ON CONFLICT (id) DO NOTHING RETURNING id"};

int pg_event_insert_many(void *conn, const struct event *evs, size_t n, int *rcs)
{
	struct pg_array col[4];
	for (int k = 0; k < 4; k++)
		pg_array_init(&col[k]);
	for (size_t i = 0; i < n; i++) {
		pg_array_text(&col[0], evs[i].id);
		pg_array_text(&col[1], evs[i].type);
		pg_array_text(&col[2], evs[i].data);
		pg_array_int(&col[3], evs[i].created_at);
	}
	struct pg_params p;
	pg_params_init(&p);
	for (int k = 0; k < 4; k++)
		pg_param_array(&p, &col[k]);
	PGresult *r = NULL;
	int rc = pg_exec(conn, &EV_INSERT_MANY, &p, &r);
	pg_params_free(&p);
	if (rc != STORE_OK)
		return rc;
	/* The new rows are a subsequence of evs: the first of equal ids went
	 * in, any later one (and any id stored before) conflicted. */
	int rows = PQntuples(r), j = 0;
	for (size_t i = 0; i < n; i++) {
		bool mine = j < rows && strcmp(PQgetvalue(r, j, 0), evs[i].id) == 0;
		rcs[i] = mine ? STORE_OK : STORE_CONFLICT;
		j += mine;
	}
	PQclear(r);
	if (j != rows) {
		log_error("store: postgres op=event_insert_many: %d of %d new rows not matched",
			  rows - j, rows);
		return STORE_ERROR;
	}
	return STORE_OK;
}

/* A plain INSERT, not `ON CONFLICT DO NOTHING`: delivery ids are made here
 * (util.c id_new), so an existing one is an error the caller rolls back
 * (store.h), and the unique violation says so (STORE_CONFLICT) as well as
 * an empty RETURNING would. ON CONFLICT costs every row a speculative
 * insertion: a probe of the id index before the insert, a lock, and one
 * more WAL record to confirm it (docs/performance.md, issue 14). */
static const struct pg_stmt DLV_INSERT_MANY = {
	"delivery_insert_many",
	"INSERT INTO deliveries (id, event_id, endpoint_id, event_type, status, attempt_count,"
	" schedule_index, next_attempt_at, created_at, updated_at, last_status, last_error)"
	" SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],"
	" $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[],"
	" $12::text[]) RETURNING id, seq"};

/* The 12 columns of DLV_INSERT_MANY, row by row. */
static void delivery_columns(const struct delivery *ds, size_t n, struct pg_params *p)
{
	struct pg_array col[12];
	for (int k = 0; k < 12; k++)
		pg_array_init(&col[k]);
	for (size_t i = 0; i < n; i++) {
		const struct delivery *d = &ds[i];
		pg_array_text(&col[0], d->id);
		pg_array_text(&col[1], d->event_id);
		pg_array_text(&col[2], d->endpoint_id);
		pg_array_text(&col[3], d->event_type);
		pg_array_int(&col[4], (int64_t)d->status);
		pg_array_int(&col[5], d->attempt_count);
		pg_array_int(&col[6], d->schedule_index);
		pg_array_int(&col[7], d->next_attempt_at);
		pg_array_int(&col[8], d->created_at);
		pg_array_int(&col[9], d->updated_at);
		pg_array_int(&col[10], d->last_status);
		pg_array_text(&col[11], d->last_error[0] ? d->last_error : NULL);
	}
	for (int k = 0; k < 12; k++)
		pg_param_array(p, &col[k]);
}

int pg_delivery_insert_many(void *conn, struct delivery *ds, size_t n)
{
	struct pg_params p;
	pg_params_init(&p);
	delivery_columns(ds, n, &p);
	PGresult *r = NULL;
	for (size_t i = 0; i < n; i++)
		ds[i].seq = 0;
	int rc = pg_exec(conn, &DLV_INSERT_MANY, &p, &r);
	pg_params_free(&p);
	if (rc != STORE_OK)
		return rc;
	if ((size_t)PQntuples(r) != n) {
		PQclear(r);
		return STORE_CONFLICT; /* some id exists */
	}
	for (size_t i = 0; i < n && rc == STORE_OK; i++) {
		if (strcmp(PQgetvalue(r, (int)i, 0), ds[i].id) != 0) {
			log_error("store: postgres op=delivery_insert_many: rows out of order");
			rc = STORE_ERROR;
		}
		ds[i].seq = pg_get_int64(r, (int)i, 1);
		/* The other nodes hear of it at the commit (store_pg_notify.c). */
		if (rc == STORE_OK && ds[i].status == DELIVERY_PENDING)
			pg_notes_pending(conn, ds[i].seq);
	}
	PQclear(r);
	return rc;
}

/* The deliveries' new states ($1..$9) and their attempts ($10..$26); an
 * attempt goes in only if its delivery's row was updated. Returns the
 * updated ids, each with the number of attempts inserted. An attempt that
 * exists is a unique violation (STORE_CONFLICT, which the caller rolls
 * back, store.h), not `ON CONFLICT DO NOTHING`: that cost every attempt a
 * speculative insertion (as DLV_INSERT_MANY above). */
static const struct pg_stmt RECORD = {
	"record_results",
	"WITH v AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[],"
	" $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[])"
	" AS v(id, seq, status, attempt_count, schedule_index, next_attempt_at, updated_at,"
	" last_status, last_error)),"
	" u AS (UPDATE deliveries d SET status = v.status, attempt_count = v.attempt_count,"
	" schedule_index = v.schedule_index, next_attempt_at = v.next_attempt_at,"
	" updated_at = v.updated_at, last_status = v.last_status, last_error = v.last_error"
	" FROM v WHERE d.id = v.id AND (v.seq = 0 OR d.seq = v.seq) RETURNING d.id),"
	" a AS (INSERT INTO attempts (" PG_ATT_COLS ") SELECT x.* FROM unnest($10::text[],"
	" $11::bigint[], $12::bigint[], $13::text[], $14::bigint[], $15::bigint[], $16::text[],"
	" $17::text[], $18::text[], $19::text[], $20::bigint[], $21::bigint[], $22::bigint[],"
	" $23::bigint[], $24::bigint[], $25::text[], $26::bigint[]) AS x(delivery_id, attempt,"
	" at, url, status, duration_ms, response_body, headers, error_code, error_message,"
	" dns_us, connect_us, tls_us, ttfb_us, total_us, remote_ip, reused)"
	" WHERE x.delivery_id IN (SELECT id FROM u) RETURNING 1)"
	" SELECT id, (SELECT count(*) FROM a) FROM u"};

static void state_columns(const struct store_result *rs, size_t n, struct pg_params *p)
{
	struct pg_array col[9];
	for (int k = 0; k < 9; k++)
		pg_array_init(&col[k]);
	for (size_t i = 0; i < n; i++) {
		const struct delivery *d = rs[i].dl;
		pg_array_text(&col[0], d->id);
		pg_array_int(&col[1], d->seq > 0 ? d->seq : 0);
		pg_array_int(&col[2], (int64_t)d->status);
		pg_array_int(&col[3], d->attempt_count);
		pg_array_int(&col[4], d->schedule_index);
		pg_array_int(&col[5], d->next_attempt_at);
		pg_array_int(&col[6], d->updated_at);
		pg_array_int(&col[7], d->last_status);
		pg_array_text(&col[8], d->last_error[0] ? d->last_error : NULL);
	}
	for (int k = 0; k < 9; k++)
		pg_param_array(p, &col[k]);
}

/* A timing in µs, NULL when unknown (as pg_attempt_insert binds it). */
static void array_us(struct pg_array *a, int64_t us)
{
	if (us < 0)
		pg_array_text(a, NULL);
	else
		pg_array_int(a, us);
}

/* Appends attempt a's texts (made valid UTF-8) to col[6], col[7], col[9]. */
static int attempt_texts(struct pg_array *col, const struct attempt *a)
{
	const char *t[3];
	char *copies[3] = {NULL, NULL, NULL};
	int rc = 0;
	if (pg_text(a->response_body, &t[0], &copies[0]) ||
	    pg_text(a->headers, &t[1], &copies[1]) || pg_text(a->error_message, &t[2], &copies[2]))
		rc = -1;
	else {
		pg_array_text(&col[6], t[0]);
		pg_array_text(&col[7], t[1]);
		pg_array_text(&col[9], t[2]);
	}
	for (int k = 0; k < 3; k++)
		free(copies[k]);
	return rc;
}

static int attempt_columns(const struct store_result *rs, size_t n, struct pg_params *p)
{
	struct pg_array col[17];
	int rc = 0;
	for (int k = 0; k < 17; k++)
		pg_array_init(&col[k]);
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct attempt *a = rs[i].a;
		pg_array_text(&col[0], a->delivery_id);
		pg_array_int(&col[1], a->attempt);
		pg_array_int(&col[2], a->at);
		pg_array_text(&col[3], a->url);
		pg_array_int(&col[4], a->status);
		pg_array_int(&col[5], a->duration_ms);
		rc = attempt_texts(col, a);
		pg_array_text(&col[8], a->error_code[0] ? a->error_code : NULL);
		const int64_t us[] = {a->timings.dns_us, a->timings.connect_us, a->timings.tls_us,
				      a->timings.ttfb_us, a->timings.total_us};
		for (int k = 0; k < 5; k++)
			array_us(&col[10 + k], us[k]);
		pg_array_text(&col[15], a->remote_ip[0] != '\0' ? a->remote_ip : NULL);
		/* nothing ran: no connection to speak of */
		array_us(&col[16], a->timings.total_us < 0 ? -1 : (a->reused ? 1 : 0));
	}
	for (int k = 0; k < 17; k++) {
		if (rc == 0)
			pg_param_array(p, &col[k]);
		else
			pg_array_free(&col[k]);
	}
	return rc;
}

static int result_cmp(const void *a, const void *b)
{
	const struct store_result *x = *(const struct store_result *const *)a;
	const struct store_result *y = *(const struct store_result *const *)b;
	return strcmp(x->dl->id, y->dl->id);
}

/* rs by delivery id into *out (malloc'd). 0, 1 if an id repeats, -1 if out
 * of memory. */
static int sort_results(struct store_result *rs, size_t n, struct store_result ***out)
{
	struct store_result **by = malloc(n * sizeof *by);
	*out = by;
	if (by == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		by[i] = &rs[i];
	qsort(by, n, sizeof *by, result_cmp);
	for (size_t i = 1; i < n; i++)
		if (strcmp(by[i - 1]->dl->id, by[i]->dl->id) == 0)
			return 1;
	return 0;
}

static struct store_result *find_result(struct store_result **by, size_t n, const char *id)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(by[mid]->dl->id, id);
		if (c == 0)
			return by[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Marks the results whose row RECORD updated; STORE_CONFLICT if fewer
 * attempts went in than rows were updated. */
static int read_recorded(const PGresult *r, struct store_result *rs, size_t n,
			 struct store_result **by)
{
	for (size_t i = 0; i < n; i++)
		rs[i].missing = true;
	int rows = PQntuples(r);
	for (int j = 0; j < rows; j++) {
		struct store_result *x = find_result(by, n, PQgetvalue(r, j, 0));
		if (x == NULL) {
			log_error("store: postgres op=record_results: an updated row not asked for");
			return STORE_ERROR;
		}
		x->missing = false;
	}
	if (rows > 0 && pg_get_int64(r, 0, 1) != rows)
		return STORE_CONFLICT; /* that attempt of that delivery exists */
	return STORE_OK;
}

/* Row by row (a delivery listed twice: one UPDATE cannot change a row twice). */
static int record_each(void *conn, struct store_result *rs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = pg_delivery_update_state(conn, rs[i].dl);
		rs[i].missing = rc == STORE_NOTFOUND;
		if (rc == STORE_NOTFOUND)
			continue;
		if (rc == STORE_OK)
			rc = pg_attempt_insert(conn, rs[i].a);
		if (rc != STORE_OK)
			return rc;
	}
	return STORE_OK;
}

int pg_record_results(void *conn, struct store_result *rs, size_t n)
{
	struct store_result **by = NULL;
	int sorted = sort_results(rs, n, &by);
	if (sorted != 0) {
		free(by);
		return sorted < 0 ? STORE_ERROR : record_each(conn, rs, n);
	}
	struct pg_params p;
	pg_params_init(&p);
	state_columns(rs, n, &p);
	if (attempt_columns(rs, n, &p) != 0) {
		log_error("store: out of memory op=record_results");
		pg_params_free(&p);
		free(by);
		return STORE_ERROR;
	}
	PGresult *r = NULL;
	int rc = pg_exec(conn, &RECORD, &p, &r);
	pg_params_free(&p);
	if (rc == STORE_OK)
		rc = read_recorded(r, rs, n, by);
	PQclear(r);
	free(by);
	return rc;
}
