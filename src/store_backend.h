/* store_backend: the table of functions a storage backend implements
 * (OpenSMTPD's scheduler_backend style). Private to store.c and the backends:
 * the rest of hookd calls the store_* functions of store.h, which are thin
 * calls through this table. Each function gets the backend's own connection
 * (the `conn` of struct store) and has the contract of its store.h twin. */
#ifndef HOOKD_STORE_BACKEND_H
#define HOOKD_STORE_BACKEND_H

#include "store.h"

/* How store_open wants a connection: what serve chose for every backend
 * (store_set_sync); each backend maps it to its own settings. */
struct store_open_opts {
	enum store_sync sync;
	/* The node the connection works for (store_set_node_id), NULL or ""
	 * for none. A backend that tells other nodes of its writes prefixes
	 * its payloads with it; a backend with the cluster operations below
	 * reads only this node's endpoints in pending_endpoints and
	 * pending_page_endpoint when it is set. */
	const char *node_id;
	/* store_open_writer: the process's one writer. */
	bool writer;
};

struct store_backend {
	const char *name;
	/* Other processes may write the database while this one has it open
	 * (several hookd nodes on one PostgreSQL); false where one hookd has
	 * it to itself (SQLite's lock). See store_shared. */
	bool shared;

	/* target is the URL with any scheme prefix the backend does not need
	 * removed (for SQLite: the file path; PostgreSQL gets the whole URL).
	 * Returns STORE_OK and a new connection in *conn, or STORE_ERROR with
	 * a reason in err. */
	int (*open)(const char *target, const struct store_open_opts *o, void **conn, char *err,
		    size_t errlen);
	void (*close)(void *conn);
	/* store_check and store_verify, on target as open gets it. */
	int (*check)(const char *target, char *err, size_t errlen);
	int (*verify)(const char *target, bool full, char *err, size_t errlen);

	int (*begin)(void *conn);
	int (*commit)(void *conn);
	int (*rollback)(void *conn);
	int (*savepoint)(void *conn);
	int (*release)(void *conn);
	int (*rollback_to)(void *conn);
	/* Optional (NULL: STORE_FAULT_NONE and STORE_OK). */
	enum store_fault (*fault_take)(void *conn, char *detail, size_t len, bool *wrote);
	int (*wal_truncate)(void *conn);
	/* Optional (NULL: zeros): store_wal_counts. */
	void (*wal_counts)(void *conn, struct store_wal_counts *out);

	int (*endpoint_insert)(void *conn, const struct endpoint *e);
	int (*endpoint_update)(void *conn, const struct endpoint *e);
	int (*endpoint_delete)(void *conn, const char *id);
	int (*endpoint_get)(void *conn, const char *id, struct endpoint *out);
	int (*endpoint_list)(void *conn, const char *cursor, int limit, struct endpoint **out,
			     size_t *n, char next_cursor[STORE_CURSOR_MAX]);
	int (*endpoint_each)(void *conn, int (*fn)(const struct endpoint *e, void *arg), void *arg);
	int (*endpoint_disable)(void *conn, const char *id, const char *reason, int64_t now);
	int (*endpoint_events)(void *conn, const char *endpoint_id, int64_t since, int64_t until,
			       size_t max, struct store_event_ref **out, size_t *n);

	int (*event_insert)(void *conn, const struct event *e);
	int (*event_get)(void *conn, const char *id, struct event *out);
	/* Optional (NULL: n event_get calls): store_event_get_many, for n >= 4. */
	void (*event_get_many)(void *conn, const char *const *ids, size_t n, struct event *out,
			       int *rcs);
	int (*event_list)(void *conn, const struct event_query *q, struct event **out, size_t *n,
			  char next_cursor[STORE_CURSOR_MAX]);

	int (*idem_get)(void *conn, const char *key, json_t **event_ids);
	int (*idem_put)(void *conn, const char *key, json_t *event_ids, int64_t at);

	int (*delivery_insert)(void *conn, struct delivery *d);
	int (*delivery_update_state)(void *conn, const struct delivery *d);
	/* Optional (NULL: a loop of the one-row calls in store.c): the
	 * set-based writes of store.h, store_event_insert_many,
	 * store_delivery_insert_many and store_record_results. */
	int (*event_insert_many)(void *conn, const struct event *evs, size_t n, int *rcs);
	int (*delivery_insert_many)(void *conn, struct delivery *ds, size_t n);
	int (*record_results)(void *conn, struct store_result *rs, size_t n);
	int (*delivery_set_batch)(void *conn, const char *batch_id, const char *const *ids,
				  size_t n);
	int (*delivery_get)(void *conn, const char *id, struct delivery *out);
	int (*delivery_list)(void *conn, const struct delivery_query *q, struct delivery **out,
			     size_t *n, char next_cursor[STORE_CURSOR_MAX]);

	int (*attempt_insert)(void *conn, const struct attempt *a);
	int (*attempt_list)(void *conn, const char *delivery_id, struct attempt **out, size_t *n);

	int (*pending_endpoints)(void *conn, char (**ids)[ID_MAX], size_t *n);
	int (*pending_page_endpoint)(void *conn, const char *endpoint_id, int64_t after_at,
				     const char *after_id, int limit, struct pending **out,
				     size_t *n);
	int (*batch_members)(void *conn, int64_t seq, const char *id, int64_t at,
			     char batch_id[ID_MAX], struct pending **out, size_t *n);

	int (*dlq_retry_one)(void *conn, const char *delivery_id, int64_t now, struct pending *out);
	int (*dlq_retry_endpoint)(void *conn, const char *endpoint_id, int64_t now,
				  int64_t *count);
	int (*purge_dead)(void *conn, int64_t before, int64_t *count,
			  int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg);
	/* Retention (store.h store_purge_events, store_size, store_reclaim).
	 * Optional: NULL purge_events keeps every event (--retention then
	 * deletes nothing: docs/operations.md#retention says so); NULL size
	 * reports every figure as -1 (null in the API, no gauge); NULL reclaim frees nothing (a backend
	 * that gives space back on its own, as PostgreSQL's autovacuum does
	 * for reuse). A backend implementing purge_events must pass
	 * tests/unit/test_store_retention.c. */
	int (*purge_events)(void *conn, const struct store_retention *r,
			    struct store_retention_cursor *cur, struct store_retention_result *res,
			    int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg);
	int (*size)(void *conn, struct store_size *out);
	int (*reclaim)(void *conn, int pages, int64_t *freed);
	int (*queue_seed)(void *conn, int (*fn)(const struct store_queue_group *g, void *arg),
			  void *arg);

	int (*api_key_insert)(void *conn, const struct store_api_key *k);
	int (*api_key_find)(void *conn, const unsigned char hash[STORE_KEY_HASH_LEN],
			    struct store_api_key *out);
	int (*api_key_list)(void *conn, struct store_api_key **out, size_t *n);
	int (*api_key_revoke)(void *conn, const char *id, int64_t now);
	int (*endpoint_count)(void *conn, int64_t *n);
	int (*endpoint_state_put)(void *conn, const struct endpoint_state *s);
	int (*endpoint_state_each)(void *conn, int (*fn)(const struct endpoint_state *s, void *arg),
				   void *arg);
	/* Several nodes (store.h store_pending_by_seq, store_listen_*).
	 * Optional: NULL in a backend one node uses alone (SQLite). */
	int (*pending_by_seq)(void *conn, const int64_t *seqs, size_t n, struct pending **out,
			      struct event **events, size_t *n_out);
	int (*listen_open)(const char *target, const struct store_open_opts *o, void **conn,
			   char *err, size_t errlen);
	int (*listen_wait)(void *conn, int timeout_ms,
			   void (*fn)(const char *channel, const char *payload, void *arg),
			   void *arg);
	void (*listen_close)(void *conn);

	/* Several nodes (store.h store_node_heartbeat ...). Optional, all or
	 * none: NULL on a single-node backend (SQLite). */
	int (*node_heartbeat)(void *conn, const char *node_id);
	int (*nodes_live)(void *conn, int64_t lease_ms, char (**out)[ID_MAX], size_t *n);
	int (*lease_renew)(void *conn, const char *node_id, int64_t lease_ms,
			   char (**out)[ID_MAX], size_t *n);
	int (*lease_claim)(void *conn, const char *node_id, int64_t lease_ms,
			   const char *const *ids, size_t n, char (**out)[ID_MAX], size_t *n_out);
	int (*lease_release)(void *conn, const char *node_id, const char *endpoint_id);
	int (*node_leave)(void *conn, const char *node_id);
	/* store_set_timeouts; optional (NULL: nothing to bound). */
	int (*set_timeouts)(void *conn, int64_t statement_ms, int64_t lock_ms);
};

extern const struct store_backend store_backend_sqlite;
extern const struct store_backend store_backend_pg;

/* The tracker store_set_health set (NULL: none), for a backend whose
 * statement found the database damaged. */
struct store_health *store_health_current(void);

/* Cursors are "c" + the decimal position (a backend's sequence number) of
 * the last row of the previous page. Returns 0 and sets *pos, or -1 if c is
 * not such a string. NULL or "" means the first page: *pos = INT64_MAX. */
int store_cursor_parse(const char *c, int64_t *pos);
/* Writes the cursor for position pos into out. */
void store_cursor_format(int64_t pos, char out[STORE_CURSOR_MAX]);

/* The JSON texts an endpoint row stores, the same in every backend
 * (malloc'd; free with store_ep_texts_free). */
struct store_ep_texts {
	char *events;  /* ["*"] when the endpoint has none */
	char *filters; /* NULL: no filters */
	char *headers; /* {} when none */
	char *signatures; /* the scheme names, all three when none were chosen */
};
/* Encodes e's events, filters, headers and signatures as compact JSON into t. Returns
 * 0, or -1 out of memory (t then holds what was made: free it anyway). */
int store_ep_texts_make(const struct endpoint *e, struct store_ep_texts *t);
void store_ep_texts_free(struct store_ep_texts *t);
/* Sets e->signatures from a stored signatures column (sigs: its parsed
 * JSON; NULL, a SQL NULL, reads as all three). A damaged value is logged
 * and read as all three, as a row from before the column had. Returns 0. */
int store_ep_signatures(struct endpoint *e, json_t *sigs);

/* Page sizes outside 1..STORE_LIMIT_MAX are clamped into it. */
#define STORE_LIMIT_MAX 1000
int store_limit_clamp(int limit);

#endif
