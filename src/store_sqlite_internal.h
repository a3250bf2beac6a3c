/* store_sqlite_internal: what the files of the SQLite backend share: the
 * connection, the cached statements and the helpers that run them. Private
 * to store_sqlite.c, store_sqlite_endpoints.c and store_sqlite_deliveries.c;
 * everyone else goes through store_backend_sqlite. */
#ifndef HOOKD_STORE_SQLITE_INTERNAL_H
#define HOOKD_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store_backend.h"

struct sq_ckpt;

/* Column lists in the order the row readers expect; seq comes last. */
#define EP_COLS                                                                                    \
	"id, url, description, events, secret, enabled, created_at, updated_at, filters, "        \
	"headers, rate_limit, max_in_flight, batch_max_events, batch_max_wait_ms, "                \
	"disabled_reason, secret_previous, secret_previous_until, signatures, seq"
#define EP_COL_SEQ 18
#define DLV_COLS                                                                                   \
	"id, event_id, endpoint_id, event_type, status, attempt_count, schedule_index, "           \
	"next_attempt_at, created_at, updated_at, last_status, last_error, batch_id, seq"
/* A pending row d waits for its batch's retry (struct pending's batch_wait):
 * a failed batch recorded it with batch_id and a retry after its update (a
 * dead-letter retry sets both times alike, a single attempt leaves no
 * batch_id on a row never batched). */
#define SQ_BATCH_WAIT "(d.batch_id IS NOT NULL AND d.next_attempt_at > d.updated_at)"
#define DLV_COL_SEQ 13
#define ATT_COLS                                                                                   \
	"delivery_id, attempt, at, url, status, duration_ms, response_body, headers, error_code, " \
	"error_message, dns_us, connect_us, tls_us, ttfb_us, total_us, remote_ip, reused"
#define ATT_COL_TIMINGS 10 /* dns_us, the first of the five phases */
#define ATT_COL_REMOTE_IP 15
#define ATT_COL_REUSED 16

/* The fixed statements; their SQL is stmt_sql in store_sqlite.c. */
enum stmt_id {
	S_BEGIN,
	S_BEGIN_READ,
	S_COMMIT,
	S_ROLLBACK,
	S_SAVEPOINT,
	S_RELEASE,
	S_ROLLBACK_TO,
	S_OP_SAVEPOINT,
	S_OP_RELEASE,
	S_OP_ROLLBACK_TO,
	S_EP_INSERT,
	S_EP_UPDATE,
	S_EP_DELETE,
	S_EP_DELETE_ATTEMPTS,
	S_EP_DELETE_DELIVERIES,
	S_EP_GET,
	S_EP_LIST,
	S_EP_EACH,
	S_EP_DISABLE,
	S_EP_EVENTS,
	S_EV_INSERT,
	S_EV_GET,
	S_EV_RANGE,
	S_EV_SEQ_TIME,
	S_IDEM_GET,
	S_IDEM_PUT,
	S_DLV_INSERT,
	S_DLV_UPDATE,
	S_DLV_UPDATE_SEQ,
	S_DLV_GET,
	S_DLV_STATUS,
	S_DLV_SET_BATCH,
	S_DLV_SEQ_BELOW,
	S_ATT_INSERT,
	S_ATT_LIST,
	S_PENDING_ENDPOINTS,
	S_PENDING_EP,
	S_BATCH_MEMBERS,
	S_DLQ_RETRY_ONE,
	S_DLQ_RETRY_EP,
	S_PURGE_ATTEMPTS,
	S_PURGE_DELIVERIES,
	S_PURGE_BY_ENDPOINT,
	S_QUEUE_SEED,
	S_RET_EVENTS,
	S_RET_LIVE,
	S_RET_DEAD_BY_EP,
	S_RET_ATTEMPTS,
	S_RET_DELIVERIES,
	S_RET_EVENT,
	S_RET_KEYS,
	S_RET_EV_EXISTS,
	S_RET_KEY_DELETE,
	S_EPS_PUT,
	S_EPS_EACH,
	S_EPS_DELETE,
	S_COUNT
};

/* store_delivery_list builds its SQL from the filters present: one cached
 * statement per combination (endpoint?, event?, status any/0/1/2, event
 * type?, time?). */
/* The page size of a database hookd creates (store_sqlite.c). */
#define SQ_PAGE_SIZE 16384
#define SQ_PAGE_SIZE_TEXT "16384"
/* The write-ahead log's bounds (docs/operations.md#disk-space): a checkpoint after 256 pages
 * (4 MiB) and the file truncated to 4 MiB when the log restarts. The
 * writer's checkpoints run on its checkpointer (store_sqlite_ckpt.h); if
 * that falls behind and the log reaches SQ_WAL_CAP_PAGES (8 MiB), the
 * writer checkpoints in its commits again, as every connection without a
 * checkpointer does past SQ_WAL_CHECKPOINT_PAGES. */
#define SQ_WAL_CHECKPOINT_PAGES 256
#define SQ_WAL_CAP_PAGES 512
/* How long the writer waits, at the cap, for a checkpointer run in
 * progress to end before it checkpoints itself (store_sqlite.c). */
#define SQ_WAL_CAP_WAIT_MS 2000
/* The writer's page cache in KiB (PRAGMA cache_size's negative form): 512
 * pages of 16 KiB, twice what one 100-endpoint event dirties (store_sqlite.c,
 * sq_open). The other connections keep SQLite's 2 MiB. */
#define SQ_WRITER_CACHE_TEXT "-8192"
/* How long a statement waits for a lock another connection holds. */
#define SQ_BUSY_TIMEOUT_MS 5000
#define SQ_WAL_LIMIT_BYTES_TEXT "4194304"

#define LIST_SLOTS 64
/* store_event_list's walks: one per combination (type?, endpoint?). */
#define EVENT_LIST_SLOTS 4

/* One connection: the `conn` of struct store. */
struct sq {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT];
	sqlite3_stmt *list_stmt[LIST_SLOTS];
	sqlite3_stmt *event_list_stmt[EVENT_LIST_SLOTS];
	/* The worst fault since store_fault_take last asked (sq_log_error
	 * notes it), and the message that came with it. */
	enum store_fault fault;
	char fault_detail[128];
	/* Rows changed when the write transaction began, and whether a
	 * commit that changed rows went through since store_fault_take. */
	sqlite3_int64 changes_at_begin;
	bool wrote;
	/* The caller's savepoint (store_savepoint) taken while the write
	 * transaction has done nothing yet is not opened in SQLite: undoing to
	 * it is undoing the transaction (sq_rollback_to), so nothing needs the
	 * sub-journal, which copies every page the op touches (store_sqlite.c,
	 * sq_savepoint). tx_fresh: BEGIN ran and no statement since (cleared
	 * by sq_prepare and sq_stmt_get); sp_virtual: such a savepoint is
	 * open; sp_nested: real ones opened inside it, not yet ended. */
	bool tx_fresh;
	bool sp_virtual;
	int sp_nested;
	/* store_open_writer's connection: its checkpointer (NULL for the
	 * others), and where this connection's checkpoints ran (self_* and
	 * commit*; its thread only). */
	bool writer;
	struct sq_ckpt *ckpt;
	struct store_wal_counts wal;
	int wal_last_done; /* frames copied when the last self checkpoint ended */
};

/* Logs a failed SQLite call with the connection's error message, and notes
 * its fault (store_fault_take). A full volume is logged at debug level only:
 * the store's health says it once (store_health). */
void sq_log_error(struct sq *c, const char *op, int rc);
/* A new persistent statement for sql; NULL on failure (logged). */
sqlite3_stmt *sq_prepare(struct sq *c, const char *sql, const char *op);
/* The cached statement for id, prepared on first use; NULL on failure (logged). */
sqlite3_stmt *sq_stmt_get(struct sq *c, enum stmt_id id);
/* Resets a used statement and clears its bindings. */
void sq_stmt_done(sqlite3_stmt *s);
/* Steps a statement that returns no rows to completion and resets it.
 * STORE_OK, STORE_CONFLICT (unique or primary key), or STORE_ERROR (logged). */
int sq_exec_stmt(struct sq *c, sqlite3_stmt *s, const char *op);
/* Binds v (NULL binds SQL NULL) without copying: v must outlive the step. */
int sq_bind_text(sqlite3_stmt *s, int i, const char *v);
/* Copies column i into an id buffer; -1 if it is NULL or too long. */
int sq_col_id(sqlite3_stmt *s, int i, char out[ID_MAX]);
/* Fills out from a row of "id, type, data, created_at" (out zeroed first).
 * Returns STORE_OK or STORE_ERROR (out of memory; out cleared). */
int sq_event_row(sqlite3_stmt *s, struct event *out);
/* A malloc'd copy of text column i in *out (NULL for SQL NULL); -1 if out of memory. */
int sq_col_dup(sqlite3_stmt *s, int i, char **out);
/* A failure code from text column i into out ("" for SQL NULL), cut at
 * MODEL_CODE_MAX - 1 bytes. */
void sq_col_code(sqlite3_stmt *s, int i, char out[MODEL_CODE_MAX]);
/* Parses JSON text column i into *out (NULL for SQL NULL); -1 on bad JSON. */
int sq_col_json(sqlite3_stmt *s, int i, json_t **out);
/* Steps s (bound with LIMIT limit + 1) into a malloc'd array of up to limit
 * elements of `size` bytes read by rd; sets next_cursor from column poscol
 * when a further row exists. On failure frees what it read with clear. */
int sq_read_page(struct sq *c, sqlite3_stmt *s, int limit, size_t size, int poscol,
		 int (*rd)(sqlite3_stmt *, void *), void (*clear)(void *), void **out,
		 size_t *n, char next_cursor[STORE_CURSOR_MAX], const char *op);
/* Opens the backend's own savepoint around a multi-statement op. */
int sq_op_begin(struct sq *c);
/* Ends it: keeps the writes if rc is STORE_OK, else undoes them. Returns rc,
 * or STORE_ERROR if the savepoint could not be ended. */
int sq_op_end(struct sq *c, int rc);

/* store_sqlite_endpoints.c: the store_backend operations of the same names. */
int sq_endpoint_insert(void *conn, const struct endpoint *e);
int sq_endpoint_update(void *conn, const struct endpoint *e);
int sq_endpoint_delete(void *conn, const char *id);
int sq_endpoint_get(void *conn, const char *id, struct endpoint *out);
int sq_endpoint_list(void *conn, const char *cursor, int limit, struct endpoint **out, size_t *n,
		     char next_cursor[STORE_CURSOR_MAX]);
int sq_endpoint_each(void *conn, int (*fn)(const struct endpoint *e, void *arg), void *arg);
int sq_endpoint_disable(void *conn, const char *id, const char *reason, int64_t now);
int sq_endpoint_events(void *conn, const char *endpoint_id, int64_t since, int64_t until,
		       size_t max, struct store_event_ref **out, size_t *n);
int sq_event_insert(void *conn, const struct event *e);
int sq_event_get(void *conn, const char *id, struct event *out);
/* store_sqlite_events.c: the events list. */
int sq_event_list(void *conn, const struct event_query *q, struct event **out, size_t *n,
		  char next_cursor[STORE_CURSOR_MAX]);
int sq_idem_get(void *conn, const char *key, json_t **event_ids);
int sq_idem_put(void *conn, const char *key, json_t *event_ids, int64_t at);

/* store_sqlite_deliveries.c: likewise. */
int sq_delivery_insert(void *conn, struct delivery *d);
int sq_delivery_update_state(void *conn, const struct delivery *d);
int sq_delivery_set_batch(void *conn, const char *batch_id, const char *const *ids, size_t n);
int sq_delivery_get(void *conn, const char *id, struct delivery *out);
int sq_delivery_list(void *conn, const struct delivery_query *q, struct delivery **out, size_t *n,
		     char next_cursor[STORE_CURSOR_MAX]);
int sq_attempt_insert(void *conn, const struct attempt *a);
int sq_attempt_list(void *conn, const char *delivery_id, struct attempt **out, size_t *n);
int sq_pending_endpoints(void *conn, char (**ids)[ID_MAX], size_t *n);
int sq_pending_page_endpoint(void *conn, const char *endpoint_id, int64_t after_at,
			     const char *after_id, int limit, struct pending **out, size_t *n);
int sq_batch_members(void *conn, int64_t seq, const char *id, int64_t at, char batch_id[ID_MAX],
		     struct pending **out, size_t *n);
int sq_dlq_retry_one(void *conn, const char *delivery_id, int64_t now, struct pending *out);
int sq_dlq_retry_endpoint(void *conn, const char *endpoint_id, int64_t now, int64_t *count);
int sq_purge_dead(void *conn, int64_t before, int64_t *count,
		  int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg);
int sq_queue_seed(void *conn, int (*fn)(const struct store_queue_group *g, void *arg), void *arg);

/* store_sqlite_retention.c: retention, the database's size, giving free
 * pages back. */
int sq_purge_events(void *conn, const struct store_retention *r,
		    struct store_retention_cursor *cur, struct store_retention_result *res,
		    int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg);
int sq_size(void *conn, struct store_size *out);
int sq_reclaim(void *conn, int pages, int64_t *freed);

/* store_sqlite_keys.c: API keys and the endpoint count. */
int sq_api_key_insert(void *conn, const struct store_api_key *k);
int sq_api_key_find(void *conn, const unsigned char hash[STORE_KEY_HASH_LEN],
		    struct store_api_key *out);
int sq_api_key_list(void *conn, struct store_api_key **out, size_t *n);
int sq_api_key_revoke(void *conn, const char *id, int64_t now);
int sq_endpoint_count(void *conn, int64_t *n);
int sq_endpoint_state_put(void *conn, const struct endpoint_state *s);
int sq_endpoint_state_each(void *conn, int (*fn)(const struct endpoint_state *s, void *arg),
			   void *arg);

#endif
