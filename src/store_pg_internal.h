/* store_pg_internal: what the files of the PostgreSQL backend share: the
 * connection, the statement helpers and the row readers. Private to
 * store_pg*.c; everyone else goes through store_backend_pg.
 *
 * How a store_pg_*.c file runs a statement:
 *
 *     static const struct pg_stmt EP_GET = {
 *         "endpoint_get", "SELECT " PG_EP_COLS " FROM endpoints WHERE id = $1"};
 *     struct pg_params p;
 *     pg_params_init(&p);
 *     pg_param_text(&p, id);                      // $1
 *     PGresult *r = NULL;
 *     int rc = pg_exec(c, &EP_GET, &p, &r);       // STORE_OK: r holds the rows
 *     if (rc == STORE_OK && PQntuples(r) == 0)
 *         rc = STORE_NOTFOUND;
 *     ...read cells with pg_get_*...
 *     PQclear(r);                                  // NULL is fine
 *     pg_params_free(&p);
 *
 * A `static const struct pg_stmt` is prepared on its connection the first
 * time it runs (one round trip, once) and executed by name afterwards; SQL
 * built at run time goes through pg_query instead (unnamed, parsed every
 * time, still one round trip). Parameters are text ($1, $2, ... in the
 * order of the pg_param_* calls) except pg_param_bytes (binary); results
 * are text.
 *
 * Rules every operation keeps (docs/architecture.md#what-a-backend-must-promise):
 * - Conflicts never raise: write `INSERT ... ON CONFLICT DO NOTHING` and
 *   return STORE_CONFLICT when pg_affected() is 0. A unique violation
 *   aborts the whole transaction in PostgreSQL (every later statement of
 *   the group would fail); pg_exec still maps SQLSTATE 23505 to
 *   STORE_CONFLICT, but only as a last resort.
 * - An operation of several statements wraps them in pg_op_begin/pg_op_end
 *   so it is atomic inside or outside the caller's transaction.
 * - Ids are TEXT COLLATE "C" in the schema: they compare bytewise, as the
 *   dispatcher's window does (strcmp). Compare and order by the column,
 *   never by an expression that loses the collation.
 * - Times, counts and flags are BIGINT (like SQLite's INTEGER); JSON is
 *   TEXT, kept byte for byte. PostgreSQL text must be valid UTF-8 and hold
 *   no NUL byte: text from outside that may be neither (a receiver's
 *   response body or headers) must be made so before it is bound.
 */
#ifndef HOOKD_STORE_PG_INTERNAL_H
#define HOOKD_STORE_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store_backend.h"

/* Column lists in the order the row readers expect; seq comes last (the
 * same order as the SQLite backend's). */
#define PG_EP_COLS                                                                                 \
	"id, url, description, events, secret, enabled, created_at, updated_at, filters, "        \
	"headers, rate_limit, max_in_flight, batch_max_events, batch_max_wait_ms, "                \
	"disabled_reason, secret_previous, secret_previous_until, signatures, seq"
#define PG_EP_COL_SEQ 18
#define PG_EV_COLS "id, type, data, created_at"
#define PG_DLV_COLS                                                                                \
	"id, event_id, endpoint_id, event_type, status, attempt_count, schedule_index, "           \
	"next_attempt_at, created_at, updated_at, last_status, last_error, batch_id, seq"
#define PG_DLV_COL_SEQ 13
#define PG_ATT_COLS                                                                                \
	"delivery_id, attempt, at, url, status, duration_ms, response_body, headers, error_code, " \
	"error_message, dns_us, connect_us, tls_us, ttfb_us, total_us, remote_ip, reused"

/* A fixed statement. Define each one `static const` (its address is its
 * identity in the connection's cache of prepared statements). */
struct pg_stmt {
	const char *op;  /* names it in logs: "endpoint_get" */
	const char *sql; /* $1.. parameters */
};

/* Statements a connection keeps prepared, at most (beyond that a statement
 * runs unnamed, which works but parses every time). */
#define PG_PREPARED_MAX 128

/* What a transaction tells the other nodes at its commit
 * (store_pg_notify.c): seqs of deliveries that became pending (or all:
 * too many to list), ids of endpoints written (or all). */
#define PG_NOTES_EPS_MAX 64
struct pg_notes {
	int64_t *seqs;
	size_t n, cap;
	bool all;
	char eps[PG_NOTES_EPS_MAX][ID_MAX];
	size_t n_eps;
	bool eps_all;
};
/* How far the notes went when a savepoint was opened. */
struct pg_notes_mark {
	size_t n, n_eps;
	bool all, eps_all;
};

/* One connection: the `conn` of struct store. One thread at a time. */
/* A channel's name: "hookd_pending" and a schema's suffix (pg_channels). */
#define PG_CHANNEL_MAX 64

struct pg {
	PGconn *db;
	enum store_sync sync;        /* as opened: synchronous_commit on (FULL) or off */
	const struct pg_stmt *prepared[PG_PREPARED_MAX]; /* slot i is prepared as "hk<i>" */
	int n_prepared;
	bool in_txn;                 /* a transaction is open (store_begin, or pg_op_begin's) */
	bool caller_savepoint;       /* the caller's savepoint (store_savepoint) is open */
	int savepoints;              /* savepoints opened in this transaction (both kinds) */
	bool txn_wrote;              /* a statement of this transaction changed rows */
	/* A BEGIN or a RELEASE of the caller's savepoint not sent yet: it goes
	 * with the next statement (pg_deferred_flush), in the same round trip
	 * as the next SAVEPOINT, or not at all (a COMMIT releases every
	 * savepoint; a transaction that ran nothing needs no BEGIN). */
	enum pg_defer { PG_DEFER_NONE, PG_DEFER_BEGIN, PG_DEFER_RELEASE } deferred;
	/* The worst fault since store_fault_take last asked (pg_note_failure
	 * notes it), its message, and whether a commit that changed rows went
	 * through since. */
	enum store_fault fault;
	char fault_detail[128];
	bool wrote;
	/* Several nodes: this node's id (store_open_opts.node_id), "" if
	 * none; when set, pending pages read only its endpoints' rows
	 * (store_pg_queue.c) and it prefixes the payloads (store_pg_notify.c:
	 * "": notify nothing). What the open transaction noted, and the notes
	 * as they were when the caller's savepoint opened. */
	char node_id[STORE_NODE_ID_MAX + 1];
	struct pg_notes notes;
	struct pg_notes_mark savepoint_notes;
	/* Reconnecting a lost connection (pg_exec's): not before retry_at
	 * (monotonic ms), the wait doubling from PG_RECONNECT_MIN_MS to
	 * PG_RECONNECT_MAX_MS while the server stays away; statements fail at
	 * once meanwhile. */
	int64_t retry_at;
	int64_t backoff_ms;
	/* store_set_timeouts' bounds (0: none), set again by pg_session_setup
	 * on every (re)connection. */
	int64_t statement_timeout_ms;
	int64_t lock_timeout_ms;
	/* The notification channels of this connection's schema
	 * (pg_channels), "" until first needed. */
	char chan_pending[PG_CHANNEL_MAX];
	char chan_endpoints[PG_CHANNEL_MAX];
};
#define PG_RECONNECT_MIN_MS 100
#define PG_RECONNECT_MAX_MS 2000

/* Parameters of one statement. Fill with pg_param_* in $-order; free with
 * pg_params_free (it frees what pg_param_text_array allocated). Values are
 * not copied (but numbers): they must outlive the pg_exec call. */
#define PG_PARAMS_MAX 32
struct pg_params {
	int n;
	bool overflow; /* more than PG_PARAMS_MAX were given: pg_exec fails */
	const char *vals[PG_PARAMS_MAX];
	int lens[PG_PARAMS_MAX];
	int fmts[PG_PARAMS_MAX];
	char nums[PG_PARAMS_MAX][32];
	char *owned[PG_PARAMS_MAX];
};
void pg_params_init(struct pg_params *p);
void pg_params_free(struct pg_params *p);
/* v NULL binds SQL NULL. */
void pg_param_text(struct pg_params *p, const char *v);
void pg_param_int(struct pg_params *p, int64_t v);
void pg_param_double(struct pg_params *p, double v);
/* len bytes as a bytea (binary format). */
void pg_param_bytes(struct pg_params *p, const void *v, size_t len);
/* ids[0..n) as a text[] literal, for `= ANY($k::text[])`. Each element is
 * quoted; the literal is malloc'd and freed by pg_params_free. Out of
 * memory sets overflow (pg_exec then fails). */
void pg_param_text_array(struct pg_params *p, const char *const *ids, size_t n);

/* An array built element by element, for the set-based statements
 * (`unnest($1::text[], $2::bigint[], ...)`): one parameter carries a column
 * of every row, in the binary array format (no quoting for the client to do
 * nor parsing for the server: a 500-row batch's literals cost PostgreSQL's
 * array_in about a tenth of its CPU). A column is all text or all bigint
 * (NULLs aside); one of only NULLs, or empty, goes as a literal.
 * pg_param_array hands the buffer to p (freed by pg_params_free) and resets
 * a; out of memory on the way, or two types in one column, sets p's
 * overflow there (pg_exec then fails). */
struct pg_array {
	char *buf;
	size_t len, cap;
	size_t n;     /* elements */
	unsigned oid; /* their type; 0 until a non-NULL one */
	bool has_null;
	bool oom;
};
void pg_array_init(struct pg_array *a);
/* v NULL appends SQL NULL (in a column of either type). */
void pg_array_text(struct pg_array *a, const char *v);
void pg_array_int(struct pg_array *a, int64_t v);
void pg_array_free(struct pg_array *a);
void pg_param_array(struct pg_params *p, struct pg_array *a);

/* Runs s with p (NULL: no parameters), prepared on this connection the
 * first time. STORE_OK with the result in *out (rows or a command; the
 * caller PQclears it; out may be NULL to discard it), STORE_CONFLICT for a
 * unique violation, else STORE_ERROR (logged with s->op, the connection's
 * fault noted, the database health told of damage). *out is NULL unless
 * STORE_OK. Reconnects first if the connection was lost and no transaction
 * is open (with the back-off above); outside a transaction, a session the
 * server ended while idle (a restart of PostgreSQL) is noticed before the
 * statement is sent, so a restart costs no request. */
int pg_exec(struct pg *c, const struct pg_stmt *s, const struct pg_params *p, PGresult **out);
/* The same for SQL built at run time (never prepared). */
int pg_query(struct pg *c, const char *sql, const struct pg_params *p, PGresult **out,
	     const char *op);
/* Runs SQL without parameters (it may hold several statements; one round
 * trip): transaction control, session settings. As pg_exec, no result. */
int pg_simple(struct pg *c, const char *sql, const char *op);
/* Sends a deferred BEGIN or RELEASE (struct pg's deferred) on its own;
 * every entry point above calls it before its statement, so what runs
 * always runs after them. STORE_OK if there was none. */
int pg_deferred_flush(struct pg *c);
/* The same, with the last statement's result in *out (out may be NULL). */
int pg_multi(struct pg *c, const char *sql, PGresult **out, const char *op);
/* store_pg.c: a new connection for url with o's settings (no migration),
 * named app in pg_stat_activity unless the URL names it, or NULL with a
 * one-line reason in err; pg_disconnect closes it. */
struct pg *pg_connect(const char *url, const struct store_open_opts *o, const char *app,
		      char *err, size_t errlen);
void pg_disconnect(struct pg *c);
/* store_pg.c: the session settings a new or re-established connection gets
 * (synchronous_commit from the sync mode, bytea_output). STORE_OK or
 * STORE_ERROR (logged). */
int pg_session_setup(struct pg *c);
/* Rows a command changed (INSERT/UPDATE/DELETE, also with RETURNING), or
 * returned (SELECT); 0 if unknown. */
int64_t pg_affected(const PGresult *r);

/* Cell readers. row, col index the result; a NULL cell reads as 0, "",
 * NULL as each says. */
bool pg_is_null(const PGresult *r, int row, int col);
int64_t pg_get_int64(const PGresult *r, int row, int col);
double pg_get_double(const PGresult *r, int row, int col);
/* Copies an id; -1 if the cell is NULL, empty or too long (logged). */
int pg_get_id(const PGresult *r, int row, int col, char out[ID_MAX]);
/* Copies text into out[0..cap); -1 if NULL or too long. */
int pg_get_text(const PGresult *r, int row, int col, char *out, size_t cap);
/* A malloc'd copy in *out (NULL for SQL NULL); -1 if out of memory. */
int pg_get_dup(const PGresult *r, int row, int col, char **out);
/* A failure code into out ("" for NULL), cut at MODEL_CODE_MAX - 1. */
void pg_get_code(const PGresult *r, int row, int col, char out[MODEL_CODE_MAX]);
/* Parses JSON text into *out (NULL for SQL NULL); -1 on bad JSON (logged). */
int pg_get_json(const PGresult *r, int row, int col, json_t **out);
/* A bytea of exactly len bytes into out; -1 if NULL or another length. */
int pg_get_bytes(const PGresult *r, int row, int col, unsigned char *out, size_t len);
/* Fills out from row `row` of PG_EV_COLS at columns 0..3 (out zeroed
 * first). STORE_OK or STORE_ERROR (out cleared). */
int pg_event_row(const PGresult *r, int row, struct event *out);

/* The backend's own atomicity around an operation of several statements.
 * pg_op_begin opens a transaction (none is open), a savepoint (a
 * transaction without the caller's savepoint), or nothing (the caller's
 * savepoint is open: the commit thread rolls back to it on any result but
 * STORE_OK, so one more subtransaction would buy nothing). pg_op_end keeps
 * the writes if rc is STORE_OK, else undoes what pg_op_begin opened, and
 * returns rc, or STORE_ERROR if the end failed. */
struct pg_op {
	int kind;
	struct pg_notes_mark notes; /* rewound to if its savepoint is undone */
};
int pg_op_begin(struct pg *c, struct pg_op *op);
int pg_op_end(struct pg *c, struct pg_op *op, int rc);

/* store_pg_notify.c: the notes of the open transaction. pending: seq
 * became pending (insert, dead-letter retry); pending_all: too many to
 * list (a bulk retry); endpoint: id was written. Outside a transaction
 * (the write committed on its own) they are sent at once. */
void pg_notes_pending(struct pg *c, int64_t seq);
void pg_notes_pending_all(struct pg *c);
void pg_notes_endpoint(struct pg *c, const char *id);
/* Savepoints: mark when one opens, rewind when it is rolled back. */
void pg_notes_mark(const struct pg *c, struct pg_notes_mark *m);
void pg_notes_rewind(struct pg *c, const struct pg_notes_mark *m);
/* Forgets the notes (begin, rollback); free releases their memory. */
void pg_notes_clear(struct pg *c);
void pg_notes_free(struct pg *c);
/* Sends the notes' pg_notify() calls and COMMIT in one round trip; the
 * notes are forgotten. As pg_multi (the COMMIT's result in *out). */
int pg_notes_commit(struct pg *c, PGresult **out, const char *op);
/* Sends the notes at once if no transaction is open. */
/* Fills c's channel names for its schema (current_schema()) if not yet
 * known: STORE_CHANNEL_PENDING and STORE_CHANNEL_ENDPOINTS as they are in
 * the schema "public", suffixed with "_" and 16 hex digits of a hash of
 * any other schema's name, so deployments in different schemas of one
 * database do not hear each other (docs/scaling.md#notifications-between-nodes).
 * STORE_OK, or the query's error. */
int pg_channels(struct pg *c);
/* The channel base (a STORE_CHANNEL_*) has in schema, into out: base in
 * "public" (or an unknown schema, NULL), else base + "_" + 16 hex digits of
 * the 64-bit FNV-1a hash of the schema's name. */
void pg_channel_name(const char *base, const char *schema, char out[PG_CHANNEL_MAX]);
void pg_notes_autoflush(struct pg *c);
/* The listening connection (store_backend's listen_*). */
int pg_listen_open(const char *url, const struct store_open_opts *o, void **conn, char *err,
		   size_t errlen);
int pg_listen_wait(void *conn, int timeout_ms,
		   void (*fn)(const char *channel, const char *payload, void *arg), void *arg);

/* store_pg_endpoints.c */
int pg_endpoint_insert(void *conn, const struct endpoint *e);
int pg_endpoint_update(void *conn, const struct endpoint *e);
int pg_endpoint_delete(void *conn, const char *id);
int pg_endpoint_get(void *conn, const char *id, struct endpoint *out);
int pg_endpoint_list(void *conn, const char *cursor, int limit, struct endpoint **out, size_t *n,
		     char next_cursor[STORE_CURSOR_MAX]);
int pg_endpoint_each(void *conn, int (*fn)(const struct endpoint *e, void *arg), void *arg);
int pg_endpoint_disable(void *conn, const char *id, const char *reason, int64_t now);

/* store_pg_events.c */
int pg_event_insert(void *conn, const struct event *e);
int pg_event_get(void *conn, const char *id, struct event *out);
void pg_event_get_many(void *conn, const char *const *ids, size_t n, struct event *out,
		       int *rcs);
int pg_event_list(void *conn, const struct event_query *q, struct event **out, size_t *n,
		  char next_cursor[STORE_CURSOR_MAX]);
int pg_idem_get(void *conn, const char *key, json_t **event_ids);
int pg_idem_put(void *conn, const char *key, json_t *event_ids, int64_t at);

/* store_pg_keys.c */
int pg_api_key_insert(void *conn, const struct store_api_key *k);
int pg_api_key_find(void *conn, const unsigned char hash[STORE_KEY_HASH_LEN],
		    struct store_api_key *out);
int pg_api_key_list(void *conn, struct store_api_key **out, size_t *n);
int pg_api_key_revoke(void *conn, const char *id, int64_t now);

/* store_pg_deliveries.c (pgdeliv): the store_backend operations of the
 * same names. store_pg.c's table names them once that file is built. */
int pg_endpoint_events(void *conn, const char *endpoint_id, int64_t since, int64_t until,
		       size_t max, struct store_event_ref **out, size_t *n);
int pg_endpoint_count(void *conn, int64_t *n);
int pg_endpoint_state_put(void *conn, const struct endpoint_state *s);
int pg_endpoint_state_each(void *conn, int (*fn)(const struct endpoint_state *s, void *arg),
			   void *arg);
int pg_delivery_insert(void *conn, struct delivery *d);
int pg_delivery_update_state(void *conn, const struct delivery *d);
int pg_batch_members(void *conn, int64_t seq, const char *id, int64_t at, char batch_id[ID_MAX],
		     struct pending **out, size_t *n);
int pg_delivery_set_batch(void *conn, const char *batch_id, const char *const *ids, size_t n);
int pg_delivery_get(void *conn, const char *id, struct delivery *out);
int pg_delivery_list(void *conn, const struct delivery_query *q, struct delivery **out, size_t *n,
		     char next_cursor[STORE_CURSOR_MAX]);
int pg_attempt_insert(void *conn, const struct attempt *a);
/* s as PostgreSQL text: *out is s itself when it is valid UTF-8, else a
 * malloc'd copy in *copy (free it) with the bad bytes replaced by '?'. -1
 * if out of memory. NULL stays NULL. */
int pg_text(const char *s, const char **out, char **copy);
int pg_attempt_list(void *conn, const char *delivery_id, struct attempt **out, size_t *n);
int pg_pending_endpoints(void *conn, char (**ids)[ID_MAX], size_t *n);
int pg_pending_page_endpoint(void *conn, const char *endpoint_id, int64_t after_at,
			     const char *after_id, int limit, struct pending **out, size_t *n);
int pg_pending_by_seq(void *conn, const int64_t *seqs, size_t n, struct pending **out,
		      struct event **events, size_t *n_out);
int pg_dlq_retry_one(void *conn, const char *delivery_id, int64_t now, struct pending *out);
int pg_dlq_retry_endpoint(void *conn, const char *endpoint_id, int64_t now, int64_t *count);
int pg_purge_dead(void *conn, int64_t before, int64_t *count,
		  int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg);
int pg_queue_seed(void *conn, int (*fn)(const struct store_queue_group *g, void *arg), void *arg);

/* store_pg_batch.c: the optional set-based writes (store_backend.h). */
int pg_event_insert_many(void *conn, const struct event *evs, size_t n, int *rcs);
int pg_delivery_insert_many(void *conn, struct delivery *ds, size_t n);
int pg_record_results(void *conn, struct store_result *rs, size_t n);

/* store_pg_retention.c */
int pg_size(void *conn, struct store_size *out);
int pg_purge_events(void *conn, const struct store_retention *r,
		    struct store_retention_cursor *cur, struct store_retention_result *res,
		    int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg);

/* store_pg_cluster.c (docs/architecture.md#several-nodes): the store_backend
 * operations of the same names. */
int pg_node_heartbeat(void *conn, const char *node_id);
int pg_nodes_live(void *conn, int64_t lease_ms, char (**out)[ID_MAX], size_t *n);
/* The leases this process's node holds, as its last renewal and claims
 * left them (a cost figure for pg_pending_by_seq's plan). */
size_t pg_leases_held(void);
/* Sets that figure (the tests, to run each of the fetch's plans). */
void pg_leases_held_set(size_t n);
int pg_lease_renew(void *conn, const char *node_id, int64_t lease_ms, char (**out)[ID_MAX],
		   size_t *n);
int pg_lease_claim(void *conn, const char *node_id, int64_t lease_ms, const char *const *ids,
		   size_t n, char (**out)[ID_MAX], size_t *n_out);
int pg_lease_release(void *conn, const char *node_id, const char *endpoint_id);
int pg_node_leave(void *conn, const char *node_id);
/* Tries the periodic jobs' advisory lock for the current transaction (call
 * it inside pg_op_begin's): *got says whether this node has it; false when
 * another node's job holds it. STORE_OK or STORE_ERROR. */
int pg_periodic_lock(struct pg *c, bool *got);

#endif
