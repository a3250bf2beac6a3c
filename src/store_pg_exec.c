/* store_pg_exec: running statements on a PostgreSQL connection and reading
 * their results, for every store_pg*.c file (contracts in
 * store_pg_internal.h). Failures are classified here: a lost connection or
 * a full disk becomes the connection's fault (store_fault_take), damage the
 * store's health, a unique violation STORE_CONFLICT. */
#include "store_pg_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_health.h"
#include "util.h"

void pg_params_init(struct pg_params *p) { memset(p, 0, sizeof *p); }

void pg_params_free(struct pg_params *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->owned[i]);
	pg_params_init(p);
}

/* The next slot, or NULL (overflow set) if there is none. */
static int next_slot(struct pg_params *p)
{
	if (p->n >= PG_PARAMS_MAX) {
		p->overflow = true;
		return -1;
	}
	return p->n++;
}

void pg_param_text(struct pg_params *p, const char *v)
{
	int i = next_slot(p);
	if (i >= 0)
		p->vals[i] = v;
}

void pg_param_int(struct pg_params *p, int64_t v)
{
	int i = next_slot(p);
	if (i < 0)
		return;
	snprintf(p->nums[i], sizeof p->nums[i], "%" PRId64, v);
	p->vals[i] = p->nums[i];
}

void pg_param_double(struct pg_params *p, double v)
{
	int i = next_slot(p);
	if (i < 0)
		return;
	/* %.17g keeps every bit of a double. */
	snprintf(p->nums[i], sizeof p->nums[i], "%.17g", v);
	p->vals[i] = p->nums[i];
}

void pg_param_bytes(struct pg_params *p, const void *v, size_t len)
{
	int i = next_slot(p);
	if (i < 0)
		return;
	if (len > INT32_MAX) {
		p->overflow = true;
		return;
	}
	p->vals[i] = v;
	p->lens[i] = (int)len;
	p->fmts[i] = 1;
}

void pg_param_text_array(struct pg_params *p, const char *const *ids, size_t n)
{
	int i = next_slot(p);
	if (i < 0)
		return;
	size_t cap = 3;
	for (size_t k = 0; k < n; k++)
		cap += 2 * strlen(ids[k]) + 3; /* quotes, escapes, comma */
	char *buf = malloc(cap);
	if (!buf) {
		p->overflow = true;
		return;
	}
	size_t at = 0;
	buf[at++] = '{';
	for (size_t k = 0; k < n; k++) {
		if (k > 0)
			buf[at++] = ',';
		buf[at++] = '"';
		for (const char *s = ids[k]; *s; s++) {
			if (*s == '"' || *s == '\\')
				buf[at++] = '\\';
			buf[at++] = *s;
		}
		buf[at++] = '"';
	}
	buf[at++] = '}';
	buf[at] = '\0';
	p->owned[i] = buf;
	p->vals[i] = buf;
}

void pg_array_init(struct pg_array *a) { memset(a, 0, sizeof *a); }

void pg_array_free(struct pg_array *a)
{
	free(a->buf);
	pg_array_init(a);
}

/* The array's binary form (PostgreSQL's array_send): a header of ndim,
 * has-null flag, element type, length and lower bound (int32s, network
 * order), then each element as an int32 length (-1: NULL) and its bytes
 * (text as is, bigint as 8 bytes big-endian). The server copies that in
 * instead of parsing a quoted literal; the elements start after the header. */
#define ARRAY_HEADER 20
#define OID_INT8 20u
#define OID_TEXT 25u

static void put_be(unsigned char *at, uint64_t v, int bytes)
{
	for (int k = bytes - 1; k >= 0; k--, v >>= 8)
		at[k] = (unsigned char)(v & 0xff);
}

/* Room for need more bytes (the header reserved first). */
static bool array_room(struct pg_array *a, size_t need)
{
	if (a->oom)
		return false;
	if (a->len == 0)
		need += ARRAY_HEADER;
	if (a->len + need <= a->cap) {
		a->len = a->len ? a->len : ARRAY_HEADER;
		return true;
	}
	size_t cap = a->cap ? a->cap : 256;
	while (cap < a->len + need)
		cap *= 2;
	char *b = realloc(a->buf, cap);
	if (b == NULL) {
		a->oom = true;
		return false;
	}
	a->buf = b;
	a->cap = cap;
	a->len = a->len ? a->len : ARRAY_HEADER;
	return true;
}

/* Appends one element's length word; false (and oom set) if the array
 * already holds elements of another type. */
static bool array_element(struct pg_array *a, unsigned oid, int32_t len)
{
	if (oid != 0 && a->oid != 0 && a->oid != oid) {
		a->oom = true; /* a column of two types: refused at pg_param_array */
		return false;
	}
	if (oid != 0)
		a->oid = oid;
	a->has_null |= len < 0;
	put_be((unsigned char *)a->buf + a->len, (uint32_t)len, 4);
	a->len += 4;
	a->n++;
	return true;
}

void pg_array_text(struct pg_array *a, const char *v)
{
	size_t n = v ? strlen(v) : 0;
	if (n > INT32_MAX) {
		a->oom = true;
		return;
	}
	if (!array_room(a, 4 + n) || !array_element(a, v ? OID_TEXT : 0, v ? (int32_t)n : -1))
		return;
	memcpy(a->buf + a->len, v ? v : "", n);
	a->len += n;
}

void pg_array_int(struct pg_array *a, int64_t v)
{
	if (!array_room(a, 12) || !array_element(a, OID_INT8, 8))
		return;
	put_be((unsigned char *)a->buf + a->len, (uint64_t)v, 8);
	a->len += 8;
}

/* An array of no element or only NULLs, whose element type is unknown
 * here: as a literal ({} or {NULL,...}), which takes the statement's type. */
static char *array_literal(const struct pg_array *a)
{
	char *lit = malloc(2 + 5 * a->n + 1);
	if (lit == NULL)
		return NULL;
	size_t at = 0;
	lit[at++] = '{';
	for (size_t i = 0; i < a->n; i++) {
		memcpy(lit + at, i ? ",NULL" : "NULL", i ? 5 : 4);
		at += i ? 5 : 4;
	}
	lit[at++] = '}';
	lit[at] = '\0';
	return lit;
}

void pg_param_array(struct pg_params *p, struct pg_array *a)
{
	int i = next_slot(p);
	if (i < 0 || a->oom || a->len > INT32_MAX) {
		p->overflow = true;
		pg_array_free(a);
		return;
	}
	if (a->oid == 0) {
		p->owned[i] = array_literal(a);
		p->vals[i] = p->owned[i];
		p->overflow |= p->owned[i] == NULL;
		pg_array_free(a);
		return;
	}
	unsigned char *h = (unsigned char *)a->buf;
	put_be(h, 1, 4);			/* one dimension */
	put_be(h + 4, a->has_null ? 1 : 0, 4);
	put_be(h + 8, a->oid, 4);
	put_be(h + 12, (uint32_t)a->n, 4); /* its length */
	put_be(h + 16, 1, 4);			/* and lower bound */
	p->owned[i] = a->buf;
	p->vals[i] = a->buf;
	p->lens[i] = (int)a->len;
	p->fmts[i] = 1;
	pg_array_init(a);
}

/* The fault a failure's SQLSTATE means (docs/operations.md#postgresql).
 * NULL: the server sent none (the connection is gone). */
static enum store_fault fault_of(const char *state)
{
	if (!state)
		return STORE_FAULT_UNREACHABLE;
	/* 08 connection exception, 57P01-03 the server shut down or cannot
	 * accept connections now: the server is unreachable, not failing. */
	if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
	    strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0)
		return STORE_FAULT_UNREACHABLE;
	if (strcmp(state, "53100") == 0) /* disk_full */
		return STORE_FAULT_FULL;
	/* 08 connection exception, 53 insufficient resources, 57P admin or
	 * crash shutdown, cannot connect now, 58 system error (I/O), 25006
	 * read-only transaction (a standby), 40 rollbacks (serialization,
	 * deadlock), 55P03 lock not available, 57014 a statement cancelled
	 * (statement_timeout: store_set_timeouts). */
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
	    strncmp(state, "57P", 3) == 0 || strncmp(state, "58", 2) == 0 ||
	    strncmp(state, "40", 2) == 0 || strcmp(state, "25006") == 0 ||
	    strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0)
		return STORE_FAULT_WRITE;
	return STORE_FAULT_NONE;
}

static bool is_damage(const char *state)
{
	return state && (strcmp(state, "XX001") == 0 || strcmp(state, "XX002") == 0);
}

/* The first line of a message. */
static void first_line(const char *msg, char *out, size_t len)
{
	snprintf(out, len, "%s", msg ? msg : "");
	out[strcspn(out, "\n")] = '\0';
}

/* Lines about an unreachable server: every statement of every connection
 * fails while it is away, so at most one line per PG_UNREACHABLE_LOG_MS
 * (the store's health says when it starts and ends). */
#define PG_UNREACHABLE_LOG_MS 10000
static struct log_limit unreachable_log;

/* Logs a failed statement: a full disk at debug level (the store's health
 * says it once), an unreachable server rate-limited, others each time. */
static void log_failure(enum store_fault f, const char *state, const char *msg, const char *op)
{
	uint64_t dropped;
	if (f == STORE_FAULT_FULL)
		log_debug("store: postgres failed op=%s sqlstate=%s err=\"%s\"", op, state, msg);
	else if (f != STORE_FAULT_UNREACHABLE)
		log_error("store: postgres failed op=%s sqlstate=%s err=\"%s\"", op,
			  state ? state : "none", msg);
	else if (log_limit_allow(&unreachable_log, PG_UNREACHABLE_LOG_MS, &dropped))
		log_error("store: postgres unreachable op=%s sqlstate=%s err=\"%s\" "
			  "failures_not_logged=%llu", op, state ? state : "none", msg,
			  (unsigned long long)dropped);
}

/* Notes a failed statement: logs it, keeps the worst fault, reports
 * damage. */
static void note_failure(struct pg *c, const PGresult *r, const char *op)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char msg[256];
	first_line(primary ? primary : PQerrorMessage(c->db), msg, sizeof msg);
	if (is_damage(state)) {
		struct store_health *h = store_health_current();
		if (store_health_has(h, STORE_COND_CORRUPT))
			return;
		char detail[STORE_HEALTH_REASON_MAX];
		snprintf(detail, sizeof detail,
			 "PostgreSQL reports damaged data (%.120s, op=%s): see its log", msg, op);
		if (h)
			store_health_set(h, STORE_COND_CORRUPT, detail, now_ms());
		else
			log_error("store: %s", detail);
		return;
	}
	enum store_fault f = fault_of(state);
	if (f > c->fault) {
		c->fault = f;
		snprintf(c->fault_detail, sizeof c->fault_detail, "%.127s", msg);
	}
	log_failure(f, state, msg, op);
}

static struct log_limit reconnect_log;

/* Reconnects a lost connection when no transaction is open (one that was
 * open is gone with the connection; the caller's rollback ends it) and the
 * back-off allows: a failed try doubles the wait, up to
 * PG_RECONNECT_MAX_MS; until then statements fail at once. */
static void ensure_connected(struct pg *c)
{
	if (c->in_txn)
		return;
	/* A session the server ended while it was idle (a restart, a
	 * terminated backend) is found before a statement is sent, so the
	 * statement runs on a new one: the server's goodbye and the end of
	 * the stream wait in the socket. Non-blocking reads: the first takes
	 * the goodbye, the second meets the end (or nothing, on a live one). */
	if (PQstatus(c->db) == CONNECTION_OK && PQtransactionStatus(c->db) == PQTRANS_IDLE &&
	    PQconsumeInput(c->db) == 1)
		PQconsumeInput(c->db);
	if (PQstatus(c->db) != CONNECTION_BAD)
		return;
	int64_t now = mono_ms();
	if (now < c->retry_at)
		return;
	PQreset(c->db);
	if (PQstatus(c->db) != CONNECTION_OK) {
		c->backoff_ms = c->backoff_ms == 0 ? PG_RECONNECT_MIN_MS : c->backoff_ms * 2;
		if (c->backoff_ms > PG_RECONNECT_MAX_MS)
			c->backoff_ms = PG_RECONNECT_MAX_MS;
		c->retry_at = now + c->backoff_ms;
		char msg[256];
		uint64_t dropped;
		first_line(PQerrorMessage(c->db), msg, sizeof msg);
		if (log_limit_allow(&reconnect_log, PG_UNREACHABLE_LOG_MS, &dropped))
			log_warn("store: postgres reconnect failed err=\"%s\" next_try_ms=%lld "
				 "failures_not_logged=%llu", msg, (long long)c->backoff_ms,
				 (unsigned long long)dropped);
		return;
	}
	c->backoff_ms = 0;
	c->retry_at = 0;
	c->n_prepared = 0; /* they died with the old session */
	if (pg_session_setup(c) != STORE_OK)
		log_warn("store: postgres session setup failed after reconnecting");
	else
		log_info("store: postgres connection re-established");
}

/* Takes a finished result: STORE_OK with *out, or the failure's code. */
static int finish(struct pg *c, PGresult *r, PGresult **out, const char *op)
{
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		const char *cmd = PQcmdStatus(r);
		if (pg_affected(r) > 0 && (strncmp(cmd, "INSERT", 6) == 0 ||
					   strncmp(cmd, "UPDATE", 6) == 0 ||
					   strncmp(cmd, "DELETE", 6) == 0))
			c->txn_wrote = true;
		if (out)
			*out = r;
		else
			PQclear(r);
		return STORE_OK;
	}
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	int rc = STORE_ERROR;
	if (state && strcmp(state, "23505") == 0)
		rc = STORE_CONFLICT; /* the transaction is aborted all the same */
	else
		note_failure(c, r, op);
	PQclear(r);
	return rc;
}

/* The cache slot of s, preparing it first if needed; -1: run it unnamed. */
static int prepared_slot(struct pg *c, const struct pg_stmt *s, int nparams)
{
	for (int i = 0; i < c->n_prepared; i++) {
		if (c->prepared[i] == s)
			return i;
	}
	if (c->n_prepared == PG_PREPARED_MAX)
		return -1;
	char name[16];
	int i = c->n_prepared;
	snprintf(name, sizeof name, "hk%d", i);
	PGresult *r = PQprepare(c->db, name, s->sql, nparams, NULL);
	int rc = finish(c, r, NULL, s->op);
	if (rc != STORE_OK)
		return -2;
	c->prepared[i] = s;
	c->n_prepared++;
	return i;
}

static int query_once(struct pg *c, const char *sql, const struct pg_params *p, PGresult **out,
		      const char *op)
{
	ensure_connected(c);
	PGresult *r = PQexecParams(c->db, sql, p->n, NULL, p->vals, p->lens, p->fmts, 0);
	return finish(c, r, out, op);
}

static int exec_once(struct pg *c, const struct pg_stmt *s, const struct pg_params *p,
		     PGresult **out)
{
	ensure_connected(c);
	int slot = prepared_slot(c, s, p->n);
	if (slot == -2)
		return STORE_ERROR;
	if (slot < 0)
		return query_once(c, s->sql, p, out, s->op);
	char name[16];
	snprintf(name, sizeof name, "hk%d", slot);
	PGresult *r = PQexecPrepared(c->db, name, p->n, p->vals, p->lens, p->fmts, 0);
	return finish(c, r, out, s->op);
}

/* The checks every entry point makes first: out cleared, p defaulted.
 * STORE_ERROR if p overflowed. */
static int exec_start(const struct pg_params **p, PGresult **out, const char *op)
{
	static const struct pg_params none;
	if (out)
		*out = NULL;
	if (!*p)
		*p = &none;
	if ((*p)->overflow) {
		log_error("store: too many or too large parameters op=%s", op);
		return STORE_ERROR;
	}
	return STORE_OK;
}

int pg_deferred_flush(struct pg *c)
{
	enum pg_defer d = c->deferred;
	if (d == PG_DEFER_NONE)
		return STORE_OK;
	c->deferred = PG_DEFER_NONE;
	if (d == PG_DEFER_RELEASE)
		return pg_simple(c, "RELEASE SAVEPOINT hookd_op", "release");
	/* As pg_begin did before deferring: the session may still be reset. */
	c->in_txn = false;
	int rc = pg_simple(c, "BEGIN", "begin");
	c->in_txn = rc == STORE_OK;
	return rc;
}

int pg_exec(struct pg *c, const struct pg_stmt *s, const struct pg_params *p, PGresult **out)
{
	if (exec_start(&p, out, s->op) != STORE_OK || pg_deferred_flush(c) != STORE_OK)
		return STORE_ERROR;
	return exec_once(c, s, p, out);
}

int pg_query(struct pg *c, const char *sql, const struct pg_params *p, PGresult **out,
	     const char *op)
{
	if (exec_start(&p, out, op) != STORE_OK || pg_deferred_flush(c) != STORE_OK)
		return STORE_ERROR;
	return query_once(c, sql, p, out, op);
}

int pg_simple(struct pg *c, const char *sql, const char *op)
{
	if (pg_deferred_flush(c) != STORE_OK)
		return STORE_ERROR;
	ensure_connected(c);
	return finish(c, PQexec(c->db, sql), NULL, op);
}

int pg_multi(struct pg *c, const char *sql, PGresult **out, const char *op)
{
	if (out)
		*out = NULL;
	if (pg_deferred_flush(c) != STORE_OK)
		return STORE_ERROR;
	ensure_connected(c);
	return finish(c, PQexec(c->db, sql), out, op);
}

int64_t pg_affected(const PGresult *r)
{
	const char *t = PQcmdTuples((PGresult *)r);
	if (t && *t)
		return strtoll(t, NULL, 10);
	return PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r) : 0;
}

bool pg_is_null(const PGresult *r, int row, int col) { return PQgetisnull(r, row, col) != 0; }

int64_t pg_get_int64(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return 0;
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

double pg_get_double(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return 0;
	return strtod(PQgetvalue(r, row, col), NULL);
}

int pg_get_text(const PGresult *r, int row, int col, char *out, size_t cap)
{
	if (PQgetisnull(r, row, col))
		return -1;
	size_t n = (size_t)PQgetlength(r, row, col);
	if (n >= cap)
		return -1;
	memcpy(out, PQgetvalue(r, row, col), n);
	out[n] = '\0';
	return 0;
}

int pg_get_id(const PGresult *r, int row, int col, char out[ID_MAX])
{
	if (pg_get_text(r, row, col, out, ID_MAX) != 0 || out[0] == '\0') {
		log_error("store: bad id in database column=%d", col);
		return -1;
	}
	return 0;
}

int pg_get_dup(const PGresult *r, int row, int col, char **out)
{
	*out = NULL;
	if (PQgetisnull(r, row, col))
		return 0;
	size_t n = (size_t)PQgetlength(r, row, col);
	char *p = malloc(n + 1);
	if (!p)
		return -1;
	memcpy(p, PQgetvalue(r, row, col), n);
	p[n] = '\0';
	*out = p;
	return 0;
}

void pg_get_code(const PGresult *r, int row, int col, char out[MODEL_CODE_MAX])
{
	model_code_set(out, PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col));
}

int pg_get_json(const PGresult *r, int row, int col, json_t **out)
{
	*out = NULL;
	if (PQgetisnull(r, row, col))
		return 0;
	json_error_t jerr;
	*out = json_loadb(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col),
			  JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!*out) {
		log_error("store: bad JSON in database column=%d line=%d", col, jerr.line);
		return -1;
	}
	return 0;
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int pg_get_bytes(const PGresult *r, int row, int col, unsigned char *out, size_t len)
{
	/* Text results show bytea as "\x" and two hex digits a byte (the
	 * default bytea_output, which pg_session_setup sets). */
	if (PQgetisnull(r, row, col))
		return -1;
	const char *t = PQgetvalue(r, row, col);
	if ((size_t)PQgetlength(r, row, col) != 2 + 2 * len || t[0] != '\\' || t[1] != 'x')
		return -1;
	for (size_t i = 0; i < len; i++) {
		int hi = hex_digit(t[2 + 2 * i]), lo = hex_digit(t[3 + 2 * i]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int pg_event_row(const PGresult *r, int row, struct event *out)
{
	memset(out, 0, sizeof *out);
	if (pg_get_id(r, row, 0, out->id) || pg_get_dup(r, row, 1, &out->type) ||
	    pg_get_dup(r, row, 2, &out->data) || !out->type || !out->data) {
		event_clear(out);
		return STORE_ERROR;
	}
	out->created_at = pg_get_int64(r, row, 3);
	return STORE_OK;
}

enum { OP_NONE, OP_TXN, OP_SAVEPOINT };

int pg_op_begin(struct pg *c, struct pg_op *op)
{
	op->kind = OP_NONE;
	if (pg_deferred_flush(c) != STORE_OK)
		return STORE_ERROR;
	PGTransactionStatusType ts = PQtransactionStatus(c->db);
	if (ts == PQTRANS_IDLE || ts == PQTRANS_UNKNOWN) {
		int rc = pg_simple(c, "BEGIN", "op_begin");
		if (rc == STORE_OK) {
			op->kind = OP_TXN;
			c->in_txn = true;
		}
		return rc;
	}
	if (ts != PQTRANS_INTRANS)
		return STORE_ERROR; /* an aborted transaction: only a rollback helps */
	if (c->caller_savepoint)
		return STORE_OK;
	int rc = pg_simple(c, "SAVEPOINT store_op", "op_savepoint");
	if (rc == STORE_OK) {
		op->kind = OP_SAVEPOINT;
		pg_notes_mark(c, &op->notes);
		c->savepoints++;
	}
	return rc;
}

int pg_op_end(struct pg *c, struct pg_op *op, int rc)
{
	int end = STORE_OK;
	switch (op->kind) {
	case OP_TXN:
		if (rc == STORE_OK) {
			end = pg_notes_commit(c, NULL, "op_commit");
			if (end == STORE_OK && c->txn_wrote)
				c->wrote = true;
		} else {
			pg_notes_clear(c);
			end = pg_simple(c, "ROLLBACK", "op_rollback");
		}
		c->txn_wrote = false;
		c->in_txn = false;
		break;
	case OP_SAVEPOINT:
		if (rc != STORE_OK)
			pg_notes_rewind(c, &op->notes);
		end = pg_simple(c, rc == STORE_OK ? "RELEASE SAVEPOINT store_op"
						  : "ROLLBACK TO SAVEPOINT store_op;"
						    " RELEASE SAVEPOINT store_op",
				"op_end");
		break;
	default:
		break;
	}
	op->kind = OP_NONE;
	if (end != STORE_OK)
		return STORE_ERROR;
	return rc;
}
