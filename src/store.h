/* store: durable state behind one backend interface
 * (docs/architecture.md#the-store-interface). A `struct store` is one
 * connection, used by one thread at a time. All writes run on the commit
 * thread (commit.h) inside store_begin/store_commit, so the backends never
 * see two writers. Two backends implement the table of functions
 * (store_backend.h): SQLite (store_sqlite*.c) and PostgreSQL (store_pg*.c). */
#ifndef HOOKD_STORE_H
#define HOOKD_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "pending.h"

enum store_rc {
	STORE_OK = 0,
	STORE_NOTFOUND,   /* no such row */
	STORE_CONFLICT,   /* a row with that id/key exists, or the state forbids it */
	STORE_ERROR,      /* I/O, constraint or backend failure: logged by the backend */
};

/* Filters for store_delivery_list; NULL / -1 / false mean "any". */
struct delivery_query {
	const char *endpoint_id;
	const char *event_id;
	int status;             /* enum delivery_status or -1 */
	const char *event_type; /* exact event type */
	bool has_since, has_until;
	int64_t since;          /* created_at >= since (ms), if has_since */
	int64_t until;          /* created_at < until (ms), if has_until */
	const char *cursor;     /* opaque, from a previous page's next_cursor; NULL = first page */
	int limit;              /* 1..1000 */
};

#define STORE_CURSOR_MAX 32

/* True if c is a well-formed cursor ("c" + decimal digits, as next_cursor
 * returns). The API checks a client's cursor with this first (400 if not);
 * the list functions return STORE_ERROR for a malformed one. */
bool store_cursor_valid(const char *c);

struct store_backend;
struct store {
	const struct store_backend *be;
	void *conn;
};

/* Opens a connection for `url` ("sqlite:PATH" or a bare PATH, or
 * "postgres://..." / "postgresql://..." as libpq reads it). The first
 * open of a database creates the schema (idempotent migrations). Returns
 * STORE_OK and a new handle in *out, or STORE_ERROR with a reason in err. */
int store_open(const char *url, struct store **out, char *err, size_t errlen);
/* store_open for the process's one writer (the commit thread, commit.h). The
 * backend may give this connection helpers of its own: on SQLite a thread
 * that checkpoints the write-ahead log on a connection of its own, so the
 * writer's commits never run a checkpoint (docs/operations.md#disk-space).
 * Same results as store_open; store_close stops the helpers. */
int store_open_writer(const char *url, struct store **out, char *err, size_t errlen);

/* How a commit reaches the disk, for every connection opened after the call
 * (serve sets it once, before its threads start); each backend maps it to
 * its own settings when it opens a connection. FULL (the default): each
 * commit is fsynced before it returns, so it survives power loss. NORMAL: a
 * commit is written to the log but fsynced only at checkpoints; it survives
 * the process being killed, not the machine losing power (SQLite:
 * synchronous FULL / NORMAL; PostgreSQL: synchronous_commit on / off, where
 * NORMAL may lose the last commits if the database server crashes). */
enum store_sync { STORE_SYNC_FULL = 0, STORE_SYNC_NORMAL };
void store_set_sync(enum store_sync mode);

/* Start-up checks (docs/operations.md#faults-and-what-hookd-does), run before any connection to the database is
 * open in this process; each only reads, so a refused database is left as
 * it was. store_check: the database is hookd's, an older hookd's, or new
 * (empty or absent), and hookd can write it (for SQLite: the file, its -wal
 * and -shm, and their directory). store_verify: its pages are sound (SQLite:
 * PRAGMA quick_check, or integrity_check if full). Both return STORE_OK, or
 * STORE_ERROR with a one-line reason in err. */
int store_check(const char *url, char *err, size_t errlen);
int store_verify(const char *url, bool full, char *err, size_t errlen);

/* Where statements that find the database damaged report it (the store's
 * health, STORE_COND_CORRUPT), for every connection: serve sets it once
 * before its threads start and clears it (NULL) after they stop. NULL: such
 * failures are only logged. */
struct store_health;
void store_set_health(struct store_health *h);
void store_close(struct store *st);

/* Transactions (commit thread only). A savepoint wraps each op of a group so
 * one failing op can be undone alone: savepoint, then release (keep) or
 * rollback_to (undo and release). */
int store_begin(struct store *st);
int store_commit(struct store *st);
int store_rollback(struct store *st);
int store_savepoint(struct store *st);
int store_release(struct store *st);
int store_rollback_to(struct store *st);

/* What the failed writes of a connection ran into, for the store's health
 * (docs/operations.md#faults-and-what-hookd-does): no space left on the volume (SQLITE_FULL, ENOSPC, EDQUOT),
 * another write failure (I/O, read-only, locked), or none of those (a
 * constraint, a bad value: the op's own fault, not the store's). */
/* UNREACHABLE: the database server cannot be reached (PostgreSQL: a lost
 * or refused connection); it outranks the others. */
enum store_fault { STORE_FAULT_NONE = 0, STORE_FAULT_FULL, STORE_FAULT_WRITE, STORE_FAULT_UNREACHABLE };
/* The worst fault of the failures on st since the last call, with a short
 * detail (the backend's message, no data) in detail, and in *wrote whether
 * a commit that changed rows went through meanwhile (a commit of a group
 * that only read proves nothing about the disk); forgets them. */
enum store_fault store_fault_take(struct store *st, char *detail, size_t len, bool *wrote);
/* True if other processes may write st's database meanwhile (PostgreSQL:
 * several nodes), so what this process keeps in memory about the rows
 * (queue figures) must be read again now and then. */
bool store_shared(const struct store *st);
struct store_health;
/* After reads on st, a connection other than the commit thread's (the
 * API's read pool, the dispatcher's, the queue figures'): the fault they
 * ran into goes to h (store_health.h; NULL: none). An unreachable server
 * turns STORE_COND_UNREACHABLE on; reads that reached it turn it off, so
 * /healthz recovers without a write. Other faults of a read are left to
 * the writes that see them. Returns the fault taken (store_fault_take). */
enum store_fault store_note_read(struct store *st, struct store_health *h);
/* Copies the write-ahead log back into the database and truncates it to
 * nothing, so a volume that ran full gets the log's space back (commit
 * thread, outside a transaction). STORE_OK, or STORE_ERROR if it could not
 * finish (readers in the way, or still no space); harmless either way. A
 * backend without such a log returns STORE_OK. */
int store_wal_truncate(struct store *st);
/* Where a connection's write-ahead log checkpoints ran, since it opened
 * (SQLite; another backend leaves every figure 0). Times in microseconds;
 * "self" = in this connection's own COMMITs (its wal hook), "ckpt" = on the
 * checkpointer thread of a store_open_writer connection. */
struct store_wal_counts {
	uint64_t commits, commit_us, commit_cpu_us; /* COMMITs, checkpoints included */
	uint64_t self_ckpts, self_us, self_cpu_us, self_max_us, self_frames;
	uint64_t ckpt_runs, ckpt_us, ckpt_max_us, ckpt_frames, ckpt_busy;
	/* the writer's waits at the cap that ran out before the checkpointer's
	 * run ended (SQLite, store_sqlite_ckpt.h sq_ckpt_pause) */
	uint64_t cap_waits_given_up;
	uint64_t frames_max; /* the longest log a commit left, in pages */
	bool ckpt_idle;      /* the checkpointer has no run going or due (true without one) */
};
/* Fills *out (zeros first). On the thread that uses st (its own figures
 * have no lock; the checkpointer's are read under its mutex). */
void store_wal_counts(struct store *st, struct store_wal_counts *out);

/* Endpoints. insert: STORE_CONFLICT if the id exists. update: all fields but
 * id/created_at (disabled_reason included); STORE_NOTFOUND. delete: also
 * deletes its deliveries, their attempts and its endpoint_state; STORE_NOTFOUND. get: fills *out
 * (caller clears it). */
int store_endpoint_insert(struct store *st, const struct endpoint *e);
int store_endpoint_update(struct store *st, const struct endpoint *e);
int store_endpoint_delete(struct store *st, const char *id);
int store_endpoint_get(struct store *st, const char *id, struct endpoint *out);
/* Newest first. *out is a malloc'd array of *n endpoints (caller clears each
 * and frees the array); next_cursor is "" when this is the last page. */
int store_endpoint_list(struct store *st, const char *cursor, int limit, struct endpoint **out,
			size_t *n, char next_cursor[STORE_CURSOR_MAX]);
/* Calls fn for every endpoint (to fill the cache at start); stops and
 * returns fn's value if it is non-zero. */
int store_endpoint_each(struct store *st, int (*fn)(const struct endpoint *e, void *arg), void *arg);
/* hookd disables an endpoint itself (a 410 from the receiver): enabled =
 * false, disabled_reason = reason (shown on the endpoint until a PATCH sets
 * enabled = true), updated_at = now. Its deliveries then wait, as for any
 * disabled endpoint. STORE_NOTFOUND if there is no such endpoint. */
int store_endpoint_disable(struct store *st, const char *id, const char *reason, int64_t now);

#define STORE_TYPE_MAX 129 /* an event type (1..128 chars) and its NUL */

/* An event an endpoint had a delivery of (store_endpoint_events). */
struct store_event_ref {
	char id[ID_MAX];
	char type[STORE_TYPE_MAX];
	int64_t created_at;
};

/* The distinct events endpoint_id has at least one delivery of whose
 * created_at is in [since, until), oldest first, at most max of them: pass
 * one more than you allow to tell "too many". *out is a malloc'd array of *n
 * (caller frees; NULL when *n is 0). For POST /v1/endpoints/{id}/replay. */
int store_endpoint_events(struct store *st, const char *endpoint_id, int64_t since, int64_t until,
			  size_t max, struct store_event_ref **out, size_t *n);

/* Events. insert: STORE_CONFLICT if the id exists. */
int store_event_insert(struct store *st, const struct event *e);
int store_event_get(struct store *st, const char *id, struct event *out);
/* Reads the events ids[0..n) as n store_event_get calls would, out[i] with
 * its result in rcs[i] (the caller clears each out[i] read), but from one
 * read snapshot where the backend has them: the dispatcher reads a batch of
 * due deliveries' events this way, paying the transaction once. */
void store_event_get_many(struct store *st, const char *const *ids, size_t n, struct event *out,
			  int *rcs);

/* Filters for store_event_list; NULL / false mean "any". */
struct event_query {
	const char *type;        /* exact event type */
	const char *endpoint_id; /* events with at least one delivery to this endpoint */
	bool has_since, has_until;
	int64_t since;           /* created_at >= since (ms), if has_since */
	int64_t until;           /* created_at < until (ms), if has_until */
	const char *cursor;      /* from a previous page's next_cursor; NULL = first page */
	int limit;               /* 1..1000 */
	size_t max_bytes;        /* end the page once the events' data adds up to this
				  * many bytes (0: no limit); a page holds at least one */
};

/* How many events one page of store_event_list may look at when a type or
 * endpoint_id filter is given: no index leads to those events, so the page
 * walks the time index and may come back short, even empty, with a
 * next_cursor. Measured on 100,000 events (SQLite, -O2, a loaded 2-core
 * machine): 10,000 of them cost about 4 ms to check by type and 42 ms by
 * endpoint (a lookup of the event's deliveries each). */
#define STORE_EVENT_SCAN_ROWS 10000

/* Events newest first (created_at, and the order they were stored for the
 * same millisecond), filtered by q. Ownership as store_endpoint_list (each
 * event cleared with event_clear). STORE_NOTFOUND if q->cursor names no
 * stored event; STORE_ERROR for a malformed one. */
int store_event_list(struct store *st, const struct event_query *q, struct event **out,
		     size_t *n, char next_cursor[STORE_CURSOR_MAX]);

/* Idempotency keys: key -> the JSON array of event ids the first request made.
 * get: STORE_NOTFOUND or a new reference in *event_ids. put: STORE_CONFLICT if
 * the key exists. */
int store_idem_get(struct store *st, const char *key, json_t **event_ids);
int store_idem_put(struct store *st, const char *key, json_t *event_ids, int64_t at);

/* A delivery's seq: the backend's integer number for its row (SQLite: the
 * rowid; PostgreSQL: an identity column), set by insert and by every read
 * (struct delivery, struct pending). The contract:
 * - unique among live rows: no two deliveries in the store share one;
 * - stable: a row keeps its seq for its life;
 * - it MAY be given again to a new row once the row that had it is deleted
 *   (SQLite gives the highest deleted rowid to the next insert; an endpoint
 *   delete takes its deliveries with it, retention and the dead-letter
 *   purge delete old ones). So a seq names a row only together
 *   with the delivery's id: whoever keeps a seq across a commit that may
 *   delete (the dispatcher's window holds, dispatch_window.h) keys by
 *   (seq, id), and update_state checks both;
 * - a new row's seq is greater than every live row's (lists newest first,
 *   their cursors and windowed walks rely on it); not necessarily dense.
 *
 * insert: a new delivery (usually pending); sets d->seq. update_state writes
 * status, attempt_count, schedule_index, next_attempt_at, updated_at,
 * last_status and last_error of d->id (by d->seq and d->id when d->seq > 0,
 * else by id alone); STORE_NOTFOUND if no such row. */
int store_delivery_insert(struct store *st, struct delivery *d);
int store_delivery_update_state(struct store *st, const struct delivery *d);

/* Set-based twins of the writes above, for the commit thread's groups: the
 * same rows and results as the calls one by one, in fewer round trips where
 * the backend can (PostgreSQL: one statement each; elsewhere a loop).
 *
 * event_insert_many inserts evs[0..n) in order: rcs[i] is STORE_OK, or
 * STORE_CONFLICT if the id existed (before, or earlier in evs). Returns
 * STORE_OK, or an error (then no rcs[i] is meaningful and the caller rolls
 * back). delivery_insert_many inserts ds[0..n) in order and sets each seq;
 * STORE_CONFLICT if any id exists (the caller rolls back: which rows went
 * in is then unspecified). */
int store_event_insert_many(struct store *st, const struct event *evs, size_t n, int *rcs);
int store_delivery_insert_many(struct store *st, struct delivery *ds, size_t n);

/* One attempt's result to record: the delivery's new state and its attempt.
 * missing is an output. */
struct store_result {
	const struct delivery *dl;
	const struct attempt *a;
	bool missing; /* no such delivery (deleted with its endpoint): nothing written */
};
/* For each rs[i]: store_delivery_update_state(rs[i].dl) and, if the row was
 * there, store_attempt_insert(rs[i].a); else sets missing. Returns STORE_OK,
 * STORE_CONFLICT if an attempt existed, or an error (the caller rolls back).
 * The deliveries should be distinct rows (a backend may fall back to one
 * statement per row when they are not). */
int store_record_results(struct store *st, struct store_result *rs, size_t n);
/* Records that the deliveries ids[0..n) went out in batch batch_id (NULL
 * clears it), all or none. Ids with no delivery (deleted meanwhile with
 * their endpoint) are skipped. */
int store_delivery_set_batch(struct store *st, const char *batch_id, const char *const *ids,
			     size_t n);
int store_delivery_get(struct store *st, const char *id, struct delivery *out);

/* An endpoint's delivery state the dispatcher keeps across restarts
 * (docs/architecture.md#durable-endpoint-state): its circuit breaker and its
 * Retry-After pause. Times are wall-clock ms since the epoch; 0 = none. */
#define ENDPOINT_CIRCUIT_MAX 16
#define ENDPOINT_PAUSE_REASON_MAX 16
struct endpoint_state {
	char endpoint_id[ID_MAX];
	char circuit[ENDPOINT_CIRCUIT_MAX];  /* "closed", "open", "half_open" */
	int64_t failures;                    /* consecutive failed attempts */
	int64_t cooldown_ms;                 /* the next open period */
	int64_t open_until;                  /* open: when the next probe may go */
	int64_t paused_until;                /* a Retry-After pause's end */
	char pause_reason[ENDPOINT_PAUSE_REASON_MAX]; /* "429", "503" or "" */
	int64_t updated_at;
};
/* Writes s as its endpoint's state (inserted or replaced whole). Called by
 * the commit thread inside the group that records the attempt results that
 * caused it. Deleting the endpoint (store_endpoint_delete) deletes it. */
int store_endpoint_state_put(struct store *st, const struct endpoint_state *s);
/* Calls fn for every stored endpoint state (to seed the dispatcher at
 * start); stops and returns fn's value if it is non-zero. */
int store_endpoint_state_each(struct store *st,
			      int (*fn)(const struct endpoint_state *s, void *arg), void *arg);
/* Newest first, filtered by q. Same ownership as store_endpoint_list.
 * Where no index leads to the matching rows in order (status pending or
 * succeeded, event_type, since or until, without event_id), a page walks
 * seq downwards in bounded windows and may come back short, even empty,
 * with a next_cursor (the SQLite backend: store_sqlite_deliveries.c). */
int store_delivery_list(struct store *st, const struct delivery_query *q, struct delivery **out,
			size_t *n, char next_cursor[STORE_CURSOR_MAX]);

/* Calls fn for every delivery of event_id (newest first), paging through
 * store_delivery_list, so callers need no cursor loop of their own. Stops at
 * the first non-zero value fn returns and returns it; else STORE_OK or the
 * store's error. The delivery passed to fn is valid only during the call. */
int store_delivery_each_of_event(struct store *st, const char *event_id,
				 int (*fn)(const struct delivery *d, void *arg), void *arg);

/* Attempts: insert one; list all of a delivery, oldest first (caller clears
 * each and frees the array). */
int store_attempt_insert(struct store *st, const struct attempt *a);
int store_attempt_list(struct store *st, const char *delivery_id, struct attempt **out, size_t *n);

/* The *enabled* endpoints that have pending deliveries, in no given order
 * (the window's rescan, docs/architecture.md#the-window-and-paging): one
 * probe of the pending index per endpoint. On a backend with the cluster
 * operations and a node id, only those whose lease this node holds. *ids
 * is a malloc'd array (caller frees; NULL when none). */
int store_pending_endpoints(struct store *st, char (**ids)[ID_MAX], size_t *n);
/* Up to `limit` pending deliveries of endpoint_id, if it is enabled, whose
 * key (next_attempt_at, id) is strictly greater than (after_at, after_id),
 * in key order (the window's refill). Pass after_at = INT64_MIN, after_id =
 * "" for the first page. On a backend with the cluster operations and a
 * node id, nothing unless this node holds the endpoint's lease. *out is a
 * malloc'd array (caller frees). */
int store_pending_page_endpoint(struct store *st, const char *endpoint_id, int64_t after_at,
				const char *after_id, int limit, struct pending **out, size_t *n);

/* The most members store_batch_members returns (a batch holds at most
 * VALIDATE_BATCH_EVENTS_MAX). */
#define STORE_BATCH_MEMBERS_MAX 10000
/* The pending rows waiting for the retry of the batch that the row (seq,
 * id) last went in (struct pending's batch_wait): the rows of that
 * batch_id still pending at next_attempt_at `at` and waiting, (seq, id)
 * included, oldest row first, at most STORE_BATCH_MEMBERS_MAX; the id into
 * batch_id. *out is malloc'd (caller frees; NULL when *n is 0: the row no
 * longer waits, batch_id ""). */
int store_batch_members(struct store *st, int64_t seq, const char *id, int64_t at,
			char batch_id[ID_MAX], struct pending **out, size_t *n);

/* Dead letters. retry_one: a dead delivery becomes pending at `now` with
 * schedule_index 0 (its attempt log stays); fills *out. STORE_NOTFOUND if no
 * such delivery, STORE_CONFLICT if it is not dead. retry_endpoint: the same
 * for every dead delivery of an endpoint; *count says how many. */
int store_dlq_retry_one(struct store *st, const char *delivery_id, int64_t now, struct pending *out);
int store_dlq_retry_endpoint(struct store *st, const char *endpoint_id, int64_t now, int64_t *count);
/* Deletes dead deliveries (and their attempts) last updated before `before`;
 * *count says how many. If fn is not NULL it is first called once per
 * endpoint with how many of that endpoint's dead letters go (queue_depth
 * keeps per-endpoint figures); a non-zero return stops the purge, which
 * then deletes nothing and returns that value. */
int store_purge_dead(struct store *st, int64_t before, int64_t *count,
		     int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg);

/* Retention (docs/operations.md#retention). Where a purge_events batch
 * resumes: the (created_at, position) of the last event and of the last
 * idempotency key it looked at, in the backend's own order. Opaque to the
 * caller: zero it (STORE_RETENTION_START) for a run's first batch, then pass
 * back what the previous batch left in it. */
struct store_retention_cursor {
	int64_t event_at, event_pos;
	int64_t key_at, key_pos;
};
#define STORE_RETENTION_START {INT64_MIN, INT64_MIN, INT64_MIN, INT64_MIN}

struct store_retention {
	int64_t before;      /* events and keys created before this (ms epoch) may go */
	int64_t dead_before; /* a dead delivery last updated before this is final */
	int max_events;      /* delete at most this many events (1..STORE_LIMIT_MAX) */
	int64_t max_deliveries; /* and stop adding events once their deliveries would pass
				 * this (> 0); an event with more goes in a batch of its own */
	int max_scan;        /* look at most at this many events, and as many keys */
};

/* What one purge_events batch did. */
struct store_retention_result {
	int64_t events, deliveries, attempts, keys; /* rows deleted */
	bool done; /* nothing created before `before` is left past the cursor */
};

/* One batch of retention, inside the caller's transaction and atomic on its
 * own. Walks the events created before r->before, oldest first, from *cur
 * (at most r->max_scan of them), and deletes, with their deliveries and
 * those deliveries' attempts, up to r->max_events (and r->max_deliveries
 * deliveries, but always at least one event) whose every delivery is
 * final: succeeded, or dead and last updated before r->dead_before (an
 * event with no delivery is final too). An event with a pending delivery
 * (due, scheduled, in flight, or waiting for a disabled endpoint) or a dead
 * letter still in its --dlq-retention stays, and is looked at again by the
 * next run. Then walks as many idempotency keys created before r->before
 * and deletes those none of whose events is stored any more. Advances *cur
 * past what it looked at and fills *res. If fn is not NULL it is first
 * told, per endpoint, how many of that endpoint's dead letters go
 * (queue_depth counts them; an endpoint may be named more than once, the
 * counts add up); a non-zero return stops the batch, which then deletes
 * nothing and returns that value (*cur unchanged). STORE_ERROR on
 * failure, nothing deleted. A backend without it (NULL in the table)
 * returns STORE_OK with nothing deleted and res->done set. */
int store_purge_events(struct store *st, const struct store_retention *r,
		       struct store_retention_cursor *cur, struct store_retention_result *res,
		       int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg);

/* The database's size on disk (docs/api.md#get-v1stats): the main file,
 * the write-ahead log, and the bytes of free pages inside the file, which
 * new rows reuse before the file grows. -1 in a figure the backend does not
 * know. STORE_OK, or STORE_ERROR (logged) with every figure -1. A backend
 * without it returns STORE_OK with every figure -1. Any connection. */
struct store_size {
	int64_t file_bytes;
	int64_t wal_bytes;
	int64_t free_bytes;
};
int store_size(struct store *st, struct store_size *out);

/* Gives up to `pages` free pages back to the file system (SQLite:
 * PRAGMA incremental_vacuum, on a database with auto_vacuum=INCREMENTAL),
 * inside the caller's transaction (commit thread). *freed says how many
 * bytes went; 0 when the database keeps its free pages (a database made
 * before hookd set auto_vacuum: docs/operations.md#retention). A backend
 * without it returns STORE_OK and 0. */
int store_reclaim(struct store *st, int pages, int64_t *freed);

/* One group of the queue's shape (store_queue_seed). status is
 * DELIVERY_PENDING: count pending deliveries of endpoint_id whose
 * next_attempt_at falls in `second` (max(next_attempt_at, 0) / 1000), the
 * earliest of them at min_at; or DELIVERY_DEAD: count dead letters of
 * endpoint_id (second and min_at 0). */
struct store_queue_group {
	const char *endpoint_id;
	enum delivery_status status;
	int64_t second;
	int64_t min_at;
	int64_t count;
};
/* Calls fn for every group of the pending and dead deliveries, from one
 * read snapshot (succeeded ones are not read). It reads every pending and
 * dead row: for queue_depth's seed at start, never per request. The group
 * passed to fn is valid only during the call. Stops and returns fn's value
 * if non-zero; else STORE_OK or STORE_ERROR. */
int store_queue_seed(struct store *st, int (*fn)(const struct store_queue_group *g, void *arg),
		     void *arg);

/* API keys (`hookd key`, docs/security.md#api-keys-and-scopes): only the
 * SHA-256 of a key is stored. scope is "admin" or "ingest" (apikeys.h parses it). */
#define STORE_KEY_HASH_LEN 32
#define STORE_KEY_PREFIX_MAX 16
#define STORE_KEY_NAME_MAX 64
struct store_api_key {
	char id[ID_MAX];                       /* key_... */
	unsigned char hash[STORE_KEY_HASH_LEN];
	char prefix[STORE_KEY_PREFIX_MAX];     /* the key's first characters */
	char scope[8];
	char name[STORE_KEY_NAME_MAX + 1];
	int64_t created_at;
	int64_t revoked_at;                    /* 0 = not revoked */
};
/* insert: STORE_CONFLICT if the id or the hash exists. find: the key with
 * this hash, revoked or not (the caller checks revoked_at); STORE_NOTFOUND.
 * list: every key, oldest first, in a malloc'd array of *n (caller frees;
 * NULL when *n is 0). revoke: sets revoked_at = now; STORE_NOTFOUND if no
 * such key, STORE_CONFLICT if it was already revoked. Each is one statement,
 * so the `hookd key` CLI runs them outside a transaction. */
int store_api_key_insert(struct store *st, const struct store_api_key *k);
int store_api_key_find(struct store *st, const unsigned char hash[STORE_KEY_HASH_LEN],
		       struct store_api_key *out);
int store_api_key_list(struct store *st, struct store_api_key **out, size_t *n);
int store_api_key_revoke(struct store *st, const char *id, int64_t now);

/* Several nodes on one database (docs/architecture.md#several-nodes). A
 * backend without them (SQLite, single node) answers store_cluster_supported
 * false; then heartbeat, live, renew and claim return STORE_ERROR (and log
 * that it is not supported), release and leave do nothing and return
 * STORE_OK (a single node holds no lease). Lease times are the database's
 * clock. Arrays of ids are malloc'd (caller frees; NULL when *n is 0). */
bool store_cluster_supported(const struct store *st);
/* Creates node_id's row in nodes, or moves its heartbeat to now. */
int store_node_heartbeat(struct store *st, const char *node_id);
/* The nodes whose heartbeat is younger than lease_ms, by id. */
int store_nodes_live(struct store *st, int64_t lease_ms, char (**ids)[ID_MAX], size_t *n);
/* Extends every lease node_id holds to now + lease_ms (expired ones no
 * other node took included) and returns their endpoints. */
int store_lease_renew(struct store *st, const char *node_id, int64_t lease_ms,
		      char (**ids)[ID_MAX], size_t *n);
/* Claims for node_id, until now + lease_ms, those of ids[0..n) whose lease
 * is free or expired (a valid lease, anyone's, is never taken); returns the
 * ones it got. */
int store_lease_claim(struct store *st, const char *node_id, int64_t lease_ms,
		      const char *const *ids, size_t n, char (**got)[ID_MAX], size_t *n_got);
/* Deletes node_id's lease on endpoint_id (none: nothing happens). */
int store_lease_release(struct store *st, const char *node_id, const char *endpoint_id);
/* Deletes every lease of node_id and its nodes row (a graceful stop). */
int store_node_leave(struct store *st, const char *node_id);
/* Bounds every later statement on st's connection (reconnections
 * included): one that runs longer than statement_ms, or waits longer than
 * lock_ms for a lock, fails (STORE_ERROR, the connection's fault
 * STORE_FAULT_WRITE) and the connection stays usable. 0 = no bound. The
 * cluster thread's connection uses it so that a hung lease statement
 * cannot outlast the lease (docs/scaling.md). A backend without such bounds
 * (SQLite: its own busy timeout) does nothing and returns STORE_OK. */
int store_set_timeouts(struct store *st, int64_t statement_ms, int64_t lock_ms);

/* How many endpoints are stored (for --max-endpoints; the commit thread
 * counts inside the create's transaction, so concurrent creates cannot
 * overshoot). */
int store_endpoint_count(struct store *st, int64_t *n);

/* ---- Several nodes on one database (docs/architecture.md#several-nodes-notifications) ---- */

/* This node's id (--node-id, 1..STORE_NODE_ID_MAX of [A-Za-z0-9._-]) for
 * every connection opened after the call (serve sets it once, before its
 * threads start; NULL or "": none). A backend shared by several nodes
 * (PostgreSQL) then tells the others, at each commit, of the deliveries
 * that became pending (STORE_CHANNEL_PENDING, payload "<node_id> <seq
 * ranges>" as seqrange.h writes them, or "<node_id> *": too many to list)
 * and of the endpoints written (STORE_CHANNEL_ENDPOINTS, "<node_id>
 * <endpoint id>" or "<node_id> *"). Records of a node's own attempts (a
 * retry rescheduled by update_state) tell nothing. On a backend with the
 * cluster operations (store_cluster_supported), store_pending_endpoints and
 * store_pending_page_endpoint then read only the endpoints whose lease this
 * node holds. */
#define STORE_NODE_ID_MAX 64
#define STORE_CHANNEL_PENDING "hookd_pending"
#define STORE_CHANNEL_ENDPOINTS "hookd_endpoints"
void store_set_node_id(const char *node_id);

/* The deliveries among seqs[0..n) that are pending now, of enabled
 * endpoints, as store_pending_page_endpoint returns them (key order). *out is a
 * malloc'd array of *n_out (caller frees; NULL when none). events: NULL,
 * or it receives a malloc'd array parallel to *out (NULL when none) with
 * each row's event, read in the same statement so that the node need not
 * read it back: rows in key order until their events' data add up to
 * STORE_FETCH_EVENT_BYTES, the others zeroed (data NULL: not carried);
 * event_clear each, then free. STORE_ERROR if the backend has no other
 * nodes to hear from (SQLite). */
#define STORE_FETCH_EVENT_BYTES (4u << 20)
int store_pending_by_seq(struct store *st, const int64_t *seqs, size_t n, struct pending **out,
			 struct event **events, size_t *n_out);

/* A connection that hears the other nodes' notifications. */
struct store_listen;
/* True if url's backend has them (PostgreSQL). */
bool store_listen_supported(const char *url);
/* Opens one (listening on both channels). STORE_OK and *out, or STORE_ERROR
 * with a reason in err (also for a backend without them). */
int store_listen_open(const char *url, struct store_listen **out, char *err, size_t errlen);
/* Waits up to timeout_ms for notifications and calls fn(channel, payload,
 * arg) for each one that arrived (this node's own included), on this
 * thread. STORE_OK (maybe none came), or STORE_ERROR: the connection is
 * lost (close it and open another; what was sent meanwhile is lost). */
int store_listen_wait(struct store_listen *l, int timeout_ms,
		      void (*fn)(const char *channel, const char *payload, void *arg), void *arg);
/* l may be NULL. */
void store_listen_close(struct store_listen *l);

#endif
