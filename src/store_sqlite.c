/* store_sqlite: the SQLite backend of the store (store_backend.h).
 *
 * One connection per struct store, used by one thread at a time, so it is
 * opened SQLITE_OPEN_NOMUTEX. The file is in WAL mode: the commit thread
 * writes while reader connections on other threads keep reading. With
 * synchronous=FULL every COMMIT fsyncs the WAL, so an acknowledged event
 * survives kill -9 and power loss; the commit thread's group commit is what
 * keeps that affordable. Statements are prepared once per connection and
 * reset after each use: inserts are the hot path.
 *
 * This file holds the connection, the schema, the statement cache and the
 * transactions; store_sqlite_endpoints.c and store_sqlite_deliveries.c hold
 * the operations on each table (store_sqlite_internal.h joins them). */
#include "store_sqlite_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store_health.h"
#include "store_sqlite_check.h"
#include "store_sqlite_ckpt.h"
#include "store_sqlite_reads.h"
#include "util.h"

/* The attempts table's columns and key, as version 1 made it and version 4
 * made it again (WITHOUT ROWID). */
#define ATTEMPTS_TABLE                                                                             \
	" delivery_id TEXT NOT NULL,"                                                              \
	" attempt INTEGER NOT NULL,"                                                               \
	" at INTEGER NOT NULL,"                                                                    \
	" url TEXT NOT NULL,"                                                                      \
	" status INTEGER NOT NULL DEFAULT 0,"                                                      \
	" duration_ms INTEGER NOT NULL DEFAULT 0,"                                                 \
	" response_body TEXT,"                                                                     \
	" headers TEXT," /* JSON object */                                                         \
	" error_code TEXT,"                                                                        \
	" error_message TEXT,"                                                                     \
	" PRIMARY KEY (delivery_id, attempt))"

/* The schema, one script per version: migrations[i] takes user_version i to
 * i + 1. Append new versions; never edit a shipped one. */
static const char *const migrations[] = {
	/* 1: the first schema. Every table has an INTEGER PRIMARY KEY `seq`
	 * (the rowid) that gives lists their newest-first order and cursors;
	 * the public id is UNIQUE. deliveries has no foreign key to endpoints:
	 * a delivery may race an endpoint delete and the dispatcher copes. */
	"CREATE TABLE endpoints ("
	" seq INTEGER PRIMARY KEY,"
	" id TEXT NOT NULL UNIQUE,"
	" url TEXT NOT NULL,"
	" description TEXT NOT NULL DEFAULT '',"
	" events TEXT NOT NULL," /* JSON array of type strings */
	" secret TEXT NOT NULL,"
	" enabled INTEGER NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL);"
	"CREATE TABLE events ("
	" seq INTEGER PRIMARY KEY,"
	" id TEXT NOT NULL UNIQUE,"
	" type TEXT NOT NULL,"
	" data TEXT NOT NULL," /* compact JSON text, sent verbatim */
	" created_at INTEGER NOT NULL);"
	"CREATE TABLE idempotency_keys ("
	" key TEXT PRIMARY KEY,"
	" event_ids TEXT NOT NULL," /* JSON array of event ids */
	" created_at INTEGER NOT NULL);"
	"CREATE TABLE deliveries ("
	" seq INTEGER PRIMARY KEY,"
	" id TEXT NOT NULL UNIQUE,"
	" event_id TEXT NOT NULL,"
	" endpoint_id TEXT NOT NULL,"
	" event_type TEXT NOT NULL,"
	" status INTEGER NOT NULL," /* enum delivery_status */
	" attempt_count INTEGER NOT NULL DEFAULT 0,"
	" schedule_index INTEGER NOT NULL DEFAULT 0,"
	" next_attempt_at INTEGER NOT NULL DEFAULT 0,"
	" created_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL,"
	" last_status INTEGER NOT NULL DEFAULT 0,"
	" last_error TEXT);"
	/* The dispatcher pages due work by (next_attempt_at, id). */
	"CREATE INDEX deliveries_pending ON deliveries(next_attempt_at, id) WHERE status = 0;"
	/* Inspector lists, newest first; also the endpoint delete cascade. */
	"CREATE INDEX deliveries_endpoint ON deliveries(endpoint_id, seq);"
	"CREATE INDEX deliveries_event ON deliveries(event_id, seq);"
	"CREATE INDEX deliveries_status ON deliveries(status, seq);"
	/* Dead letters are few: small partial indexes for the DLQ of one
	 * endpoint (list and retry) and for the retention purge. */
	"CREATE INDEX deliveries_dead_endpoint ON deliveries(endpoint_id, seq) WHERE status = 2;"
	"CREATE INDEX deliveries_dead_age ON deliveries(updated_at) WHERE status = 2;"
	"CREATE TABLE attempts (" ATTEMPTS_TABLE ";",
	/* 2: delivery control (docs/api.md#endpoint). Added columns with
	 * defaults, so a version 1 database upgrades in place: its endpoints
	 * get no filters, no custom headers, no rate limit, max_in_flight 10,
	 * no batching. */
	"ALTER TABLE endpoints ADD COLUMN filters TEXT;" /* JSON object as given, NULL = none */
	"ALTER TABLE endpoints ADD COLUMN headers TEXT NOT NULL DEFAULT '{}';" /* JSON object */
	"ALTER TABLE endpoints ADD COLUMN rate_limit REAL NOT NULL DEFAULT 0;"
	"ALTER TABLE endpoints ADD COLUMN max_in_flight INTEGER NOT NULL DEFAULT 10;"
	"ALTER TABLE endpoints ADD COLUMN batch_max_events INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE endpoints ADD COLUMN batch_max_wait_ms INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE endpoints ADD COLUMN disabled_reason TEXT;"
	"ALTER TABLE deliveries ADD COLUMN batch_id TEXT;",
	/* 3: security (docs/security.md). Secret rotation keeps the previous secret
	 * signing beside the new one until secret_previous_until (ms epoch);
	 * `signing` is 'hmac' (v1, whsec_) or 'ed25519' (v1a, whsk_ secret).
	 * API keys created with `hookd key create` are stored only as the
	 * SHA-256 of the key; scope is 'admin' or 'ingest'. */
	"ALTER TABLE endpoints ADD COLUMN secret_previous TEXT;"
	"ALTER TABLE endpoints ADD COLUMN secret_previous_until INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE endpoints ADD COLUMN signing TEXT NOT NULL DEFAULT 'hmac';"
	"CREATE TABLE api_keys ("
	" seq INTEGER PRIMARY KEY,"
	" id TEXT NOT NULL UNIQUE,"          /* key_..., shown by `hookd key list` */
	" hash BLOB NOT NULL UNIQUE,"        /* SHA-256 of the whole key */
	" prefix TEXT NOT NULL,"             /* first characters of the key, for humans */
	" scope TEXT NOT NULL,"              /* 'admin' | 'ingest' */
	" name TEXT NOT NULL DEFAULT '',"
	" created_at INTEGER NOT NULL,"
	" revoked_at INTEGER);",
	/* 4: cheaper writes. Every delivery moved through
	 * deliveries_status three times (inserted as pending, then deleted and
	 * inserted again as succeeded or dead) for the one query that lists by
	 * status alone, which now walks seq in bounded windows instead
	 * (store_sqlite_deliveries.c); dead letters, few, keep an index of
	 * their own. attempts becomes WITHOUT ROWID: its primary key was a
	 * second b-tree beside the table, written on every attempt. */
	"DROP INDEX deliveries_status;"
	"CREATE INDEX deliveries_dead ON deliveries(seq) WHERE status = 2;"
	"CREATE TABLE attempts_v4 (" ATTEMPTS_TABLE " WITHOUT ROWID;"
	"INSERT INTO attempts_v4 SELECT delivery_id, attempt, at, url, status, duration_ms,"
	" response_body, headers, error_code, error_message FROM attempts;"
	"DROP TABLE attempts;"
	"ALTER TABLE attempts_v4 RENAME TO attempts;",
	/* 5: attempt timings (docs/api.md#attempt). Each attempt's phases in
	 * µs (NULL = the phase did not happen), the address dialled and
	 * whether the connection was reused (0/1). Older attempts keep NULL in all: not
	 * measured. */
	"ALTER TABLE attempts ADD COLUMN dns_us INTEGER;"
	"ALTER TABLE attempts ADD COLUMN connect_us INTEGER;"
	"ALTER TABLE attempts ADD COLUMN tls_us INTEGER;"
	"ALTER TABLE attempts ADD COLUMN ttfb_us INTEGER;"
	"ALTER TABLE attempts ADD COLUMN total_us INTEGER;"
	"ALTER TABLE attempts ADD COLUMN remote_ip TEXT;"
	"ALTER TABLE attempts ADD COLUMN reused INTEGER;",
	/* 6: the events list. GET /v1/events goes newest first
	 * and filters on created_at (since, until): without an index a page
	 * would sort, or walk, the whole events table, whose rows carry the
	 * payloads. This one index (its entries end with the rowid, which
	 * orders events of the same millisecond) gives the order, the time
	 * window and the cursor; the type and endpoint filters are checked on
	 * the rows it walks, a bounded number per page
	 * (store_sqlite_events.c). It costs ingest one more b-tree insert per
	 * event, at the index's right edge. Measured (callgrind, the store
	 * alone: 10,000 events of 400 bytes with 2 deliveries each, a
	 * savepoint per event, 500 per commit, synchronous=NORMAL): 247.6k
	 * instructions per event with it, 230.4k without, +7 %; the HTTP,
	 * JSON and dispatch work of a real ingest are not in that figure. */
	"CREATE INDEX events_created ON events(created_at);",
	/* 7: retention (docs/operations.md#retention). The purge walks the
	 * idempotency keys oldest first, as it walks events on
	 * events_created; only requests that carry a key pay for this index. */
	"CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);",
	/* 8: durable endpoint state (docs/architecture.md#durable-endpoint-state):
	 * an endpoint's circuit and Retry-After pause, written by the
	 * dispatcher on their transitions only, read once at start. */
	"CREATE TABLE endpoint_state ("
	" endpoint_id TEXT PRIMARY KEY,"
	" circuit TEXT NOT NULL,"
	" failures INTEGER NOT NULL,"
	" cooldown_ms INTEGER NOT NULL,"
	" open_until INTEGER NOT NULL,"
	" paused_until INTEGER NOT NULL,"
	" pause_reason TEXT NOT NULL,"
	" updated_at INTEGER NOT NULL);",
	/* 9: the signature schemes an endpoint gets (docs/api.md#endpoint),
	 * a JSON array of names; existing endpoints keep all three. */
	"ALTER TABLE endpoints ADD COLUMN signatures TEXT NOT NULL"
	" DEFAULT '[\"standard\",\"pixelpatrol\",\"webhook_signature\"]';",
	/* 10: the window's per-endpoint refill (docs/architecture.md#the-window-and-paging)
	 * reads one endpoint's pending rows in key order: on deliveries_pending
	 * it would walk every other endpoint's pending rows between them. A
	 * partial index like deliveries_pending: a row is in it while pending. */
	"CREATE INDEX deliveries_pending_endpoint ON deliveries(endpoint_id, next_attempt_at, id)"
	" WHERE status = 0;",
	/* 11: every endpoint pages itself (docs/architecture.md#the-window-and-paging):
	 * deliveries_pending_endpoint serves the window, the batch members and
	 * the queue's seed, and a delivery is in one pending index again. */
	"DROP INDEX deliveries_pending;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

#define PENDING_SET "status = 0, next_attempt_at = ?2, schedule_index = 0, updated_at = ?2"

static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_BEGIN_READ] = "BEGIN", /* a read transaction (store_sqlite_reads.c) */
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	/* The caller's per-op savepoint (they do not nest, one name does). */
	[S_SAVEPOINT] = "SAVEPOINT hookd_op",
	[S_RELEASE] = "RELEASE hookd_op",
	[S_ROLLBACK_TO] = "ROLLBACK TO hookd_op",
	/* The backend's own, making a multi-statement op atomic inside or
	 * outside the caller's transaction. */
	[S_OP_SAVEPOINT] = "SAVEPOINT store_op",
	[S_OP_RELEASE] = "RELEASE store_op",
	[S_OP_ROLLBACK_TO] = "ROLLBACK TO store_op",
	/* ?9.. are the fields added after schema version 1, at the same places
	 * in both. */
	[S_EP_INSERT] = "INSERT INTO endpoints (id, url, description, events, secret, enabled, "
			"created_at, updated_at, filters, headers, rate_limit, max_in_flight, "
			"batch_max_events, batch_max_wait_ms, disabled_reason, secret_previous, "
			"secret_previous_until, signing, signatures) VALUES (?1, ?2, ?3, ?4, ?5, "
			"?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
	[S_EP_UPDATE] = "UPDATE endpoints SET url = ?2, description = ?3, events = ?4, secret = ?5,"
			" enabled = ?6, updated_at = ?7, filters = ?9, headers = ?10,"
			" rate_limit = ?11, max_in_flight = ?12, batch_max_events = ?13,"
			" batch_max_wait_ms = ?14, disabled_reason = ?15, secret_previous = ?16,"
			" secret_previous_until = ?17, signing = ?18, signatures = ?19 WHERE id = ?1",
	[S_EP_DELETE] = "DELETE FROM endpoints WHERE id = ?1",
	[S_EP_DELETE_ATTEMPTS] = "DELETE FROM attempts WHERE delivery_id IN"
				 " (SELECT id FROM deliveries WHERE endpoint_id = ?1)",
	[S_EP_DELETE_DELIVERIES] = "DELETE FROM deliveries WHERE endpoint_id = ?1",
	[S_EPS_PUT] = "INSERT INTO endpoint_state (endpoint_id, circuit, failures, cooldown_ms,"
		      " open_until, paused_until, pause_reason, updated_at)"
		      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(endpoint_id) DO UPDATE"
		      " SET circuit = excluded.circuit, failures = excluded.failures,"
		      " cooldown_ms = excluded.cooldown_ms, open_until = excluded.open_until,"
		      " paused_until = excluded.paused_until,"
		      " pause_reason = excluded.pause_reason, updated_at = excluded.updated_at",
	[S_EPS_EACH] = "SELECT endpoint_id, circuit, failures, cooldown_ms, open_until,"
		       " paused_until, pause_reason, updated_at FROM endpoint_state",
	[S_EPS_DELETE] = "DELETE FROM endpoint_state WHERE endpoint_id = ?1",
	[S_EP_GET] = "SELECT " EP_COLS " FROM endpoints WHERE id = ?1",
	[S_EP_LIST] = "SELECT " EP_COLS " FROM endpoints WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
	[S_EP_EACH] = "SELECT " EP_COLS " FROM endpoints ORDER BY seq",
	[S_EP_DISABLE] = "UPDATE endpoints SET enabled = 0, disabled_reason = ?2, updated_at = ?3"
			 " WHERE id = ?1",
	/* The endpoint's deliveries lead (its index), each event found by id:
	 * events has no index on created_at, and ingest should not pay for one
	 * that only replay would use. */
	[S_EP_EVENTS] = "SELECT DISTINCT e.id, e.type, e.created_at"
			" FROM deliveries AS d INDEXED BY deliveries_endpoint"
			" CROSS JOIN events AS e ON e.id = d.event_id"
			" WHERE d.endpoint_id = ?1 AND e.created_at >= ?2 AND e.created_at < ?3"
			" ORDER BY e.created_at, e.id LIMIT ?4",
	[S_EV_INSERT] = "INSERT INTO events (id, type, data, created_at) VALUES (?1, ?2, ?3, ?4)",
	[S_EV_GET] = "SELECT id, type, data, created_at FROM events WHERE id = ?1",
	/* A run of ids in one pass over the id index (store_sqlite_reads.c). */
	[S_EV_RANGE] = "SELECT id, type, data, created_at FROM events WHERE id >= ?1 AND id <= ?2"
		       " ORDER BY id LIMIT ?3",
	/* Where a cursor of the events list resumes (store_sqlite_events.c). */
	[S_EV_SEQ_TIME] = "SELECT created_at FROM events WHERE seq = ?1",
	[S_IDEM_GET] = "SELECT event_ids FROM idempotency_keys WHERE key = ?1",
	[S_IDEM_PUT] = "INSERT INTO idempotency_keys (key, event_ids, created_at)"
		       " VALUES (?1, ?2, ?3)",
	[S_DLV_INSERT] = "INSERT INTO deliveries (id, event_id, endpoint_id, event_type, status,"
			 " attempt_count, schedule_index, next_attempt_at, created_at, updated_at,"
			 " last_status, last_error)"
			 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	[S_DLV_UPDATE] = "UPDATE deliveries SET status = ?2, attempt_count = ?3,"
			 " schedule_index = ?4, next_attempt_at = ?5, updated_at = ?6,"
			 " last_status = ?7, last_error = ?8"
			 " WHERE id = ?1",
	[S_DLV_UPDATE_SEQ] = "UPDATE deliveries SET status = ?2, attempt_count = ?3,"
			     " schedule_index = ?4, next_attempt_at = ?5, updated_at = ?6,"
			     " last_status = ?7, last_error = ?8"
			     " WHERE seq = ?9 AND id = ?1",
	[S_DLV_GET] = "SELECT " DLV_COLS " FROM deliveries WHERE id = ?1",
	[S_DLV_STATUS] = "SELECT status FROM deliveries WHERE id = ?1",
	[S_DLV_SET_BATCH] = "UPDATE deliveries SET batch_id = ?1 WHERE id = ?2",
	[S_DLV_SEQ_BELOW] = "SELECT max(seq) FROM deliveries WHERE seq < ?1",
	[S_ATT_INSERT] = "INSERT INTO attempts (" ATT_COLS ")"
			 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
			 " ?16, ?17)",
	[S_ATT_LIST] = "SELECT " ATT_COLS " FROM attempts WHERE delivery_id = ?1 ORDER BY attempt",
	/* The window's listing: one probe of the pending index per enabled
	 * endpoint. */
	[S_PENDING_ENDPOINTS] = "SELECT e.id FROM endpoints AS e WHERE e.enabled = 1 AND EXISTS"
				" (SELECT 1 FROM deliveries AS d"
				" INDEXED BY deliveries_pending_endpoint"
				" WHERE d.endpoint_id = e.id AND d.status = 0)",
	/* The window's refill: endpoint ?4's pending rows in key order on its
	 * partial index, so LIMIT stops the walk early. */
	[S_PENDING_EP] = "SELECT d.id, d.event_id, d.endpoint_id, d.attempt_count,"
			 " d.schedule_index, d.next_attempt_at, d.seq, " SQ_BATCH_WAIT
			 " FROM endpoints AS e CROSS JOIN deliveries AS d"
			 " INDEXED BY deliveries_pending_endpoint"
			 " WHERE e.id = ?4 AND e.enabled = 1"
			 " AND d.status = 0 AND d.endpoint_id = ?4"
			 " AND (d.next_attempt_at, d.id) > (?1, ?2)"
			 " ORDER BY d.next_attempt_at, d.id LIMIT ?3",
	/* The rows waiting with (?1, ?2) for its batch's retry at ?3: its
	 * endpoint's pending index entries at ?3, few. */
	[S_BATCH_MEMBERS] = "SELECT d.id, d.event_id, d.endpoint_id, d.attempt_count,"
			    " d.schedule_index, d.next_attempt_at, d.seq, 1, d.batch_id"
			    " FROM deliveries AS o, deliveries AS d"
			    " INDEXED BY deliveries_pending_endpoint"
			    " WHERE o.seq = ?1 AND o.id = ?2 AND d.endpoint_id = o.endpoint_id"
			    " AND d.status = 0 AND d.next_attempt_at = ?3 AND " SQ_BATCH_WAIT
			    " AND d.batch_id = o.batch_id"
			    " ORDER BY d.seq LIMIT ?4",
	[S_DLQ_RETRY_ONE] = "UPDATE deliveries SET " PENDING_SET " WHERE id = ?1 AND status = 2"
			    " RETURNING id, event_id, endpoint_id, attempt_count, schedule_index,"
			    " next_attempt_at, seq",
	[S_DLQ_RETRY_EP] = "UPDATE deliveries SET " PENDING_SET
			   " WHERE endpoint_id = ?1 AND status = 2",
	/* Without statistics the planner would walk every dead row through
	 * a status index; the age index finds only the expired ones. */
	[S_PURGE_ATTEMPTS] = "DELETE FROM attempts WHERE delivery_id IN"
			     " (SELECT id FROM deliveries INDEXED BY deliveries_dead_age"
			     " WHERE status = 2 AND updated_at < ?1)",
	[S_PURGE_DELIVERIES] = "DELETE FROM deliveries INDEXED BY deliveries_dead_age"
			       " WHERE status = 2 AND updated_at < ?1",
	/* What the purge is about to delete, per endpoint (same rows). */
	[S_PURGE_BY_ENDPOINT] = "SELECT endpoint_id, count(*) FROM deliveries"
				" INDEXED BY deliveries_dead_age"
				" WHERE status = 2 AND updated_at < ?1 GROUP BY endpoint_id",
	/* The queue's shape for queue_depth's seed: pending rows grouped by
	 * endpoint and second (through the pending index, already in that
	 * order, so succeeded rows are not read), then dead rows by endpoint
	 * (the dead index, in endpoint order). One statement: one read
	 * snapshot. */
	[S_QUEUE_SEED] = "SELECT endpoint_id, 0, max(next_attempt_at, 0) / 1000 AS sec, count(*),"
			 " min(next_attempt_at)"
			 " FROM deliveries INDEXED BY deliveries_pending_endpoint WHERE status = 0"
			 " GROUP BY endpoint_id, sec"
			 " UNION ALL"
			 " SELECT endpoint_id, 2, 0, count(*), 0"
			 " FROM deliveries INDEXED BY deliveries_dead_endpoint WHERE status = 2"
			 " GROUP BY endpoint_id",
	/* Retention (store_sqlite_retention.c). Events oldest first from a
	 * cursor (the index's entries end with the rowid, so no sort). */
	[S_RET_EVENTS] = "SELECT seq, id, created_at FROM events INDEXED BY events_created"
			 " WHERE created_at < ?1 AND (created_at, seq) > (?2, ?3)"
			 " ORDER BY created_at, seq LIMIT ?4",
	/* An event's deliveries, and whether one keeps it: pending, or dead
	 * and young. */
	[S_RET_LIVE] = "SELECT count(*), coalesce(max(status = 0 OR (status = 2 AND"
		       " updated_at >= ?2)), 0) FROM deliveries INDEXED BY deliveries_event"
		       " WHERE event_id = ?1",
	[S_RET_DEAD_BY_EP] = "SELECT endpoint_id, count(*) FROM deliveries"
			     " INDEXED BY deliveries_event WHERE event_id = ?1 AND status = 2"
			     " GROUP BY endpoint_id",
	[S_RET_ATTEMPTS] = "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries"
			   " INDEXED BY deliveries_event WHERE event_id = ?1)",
	[S_RET_DELIVERIES] = "DELETE FROM deliveries INDEXED BY deliveries_event"
			     " WHERE event_id = ?1",
	[S_RET_EVENT] = "DELETE FROM events WHERE seq = ?1",
	[S_RET_KEYS] = "SELECT rowid, event_ids, created_at FROM idempotency_keys"
		       " INDEXED BY idempotency_keys_created"
		       " WHERE created_at < ?1 AND (created_at, rowid) > (?2, ?3)"
		       " ORDER BY created_at, rowid LIMIT ?4",
	[S_RET_EV_EXISTS] = "SELECT 1 FROM events WHERE id = ?1",
	[S_RET_KEY_DELETE] = "DELETE FROM idempotency_keys WHERE rowid = ?1",
};

/* The fault a failed call's result code (extended) and errno mean. */
static enum store_fault sq_fault_of(int rc, int sys_errno)
{
	int primary = rc & 0xff;
	if (primary == SQLITE_FULL || sys_errno == ENOSPC || sys_errno == EDQUOT)
		return STORE_FAULT_FULL;
	if (primary == SQLITE_IOERR || primary == SQLITE_READONLY || primary == SQLITE_BUSY ||
	    primary == SQLITE_LOCKED || primary == SQLITE_CANTOPEN || primary == SQLITE_NOMEM)
		return STORE_FAULT_WRITE;
	return STORE_FAULT_NONE;
}

/* A statement found the file damaged: the store's health turns failing
 * (store_health logs that once); later failures of the kind are not logged
 * again, so a reader retrying every second does not fill the log. */
static void report_corrupt(struct sq *c, const char *op, int rc)
{
	struct store_health *sq_health = store_health_current();
	if (store_health_has(sq_health, STORE_COND_CORRUPT))
		return;
	char detail[STORE_HEALTH_REASON_MAX];
	snprintf(detail, sizeof detail,
		 "the database file is damaged (%s, rc=%d, op=%s): stop hookd and restore it from "
		 "a backup",
		 sqlite3_errmsg(c->db), rc, op);
	if (sq_health)
		store_health_set(sq_health, STORE_COND_CORRUPT, detail, now_ms());
	else
		log_error("store: %s", detail);
}

void sq_log_error(struct sq *c, const char *op, int rc)
{
	int code = rc != 0 ? rc : sqlite3_extended_errcode(c->db);
	if ((code & 0xff) == SQLITE_CORRUPT || (code & 0xff) == SQLITE_NOTADB) {
		report_corrupt(c, op, code);
		return;
	}
	enum store_fault f = sq_fault_of(rc, sqlite3_system_errno(c->db));
	if (f > c->fault) {
		c->fault = f;
		snprintf(c->fault_detail, sizeof c->fault_detail, "%s", sqlite3_errmsg(c->db));
	}
	if (f == STORE_FAULT_FULL)
		log_debug("store: sqlite failed op=%s rc=%d err=\"%s\"", op, rc,
			  sqlite3_errmsg(c->db));
	else
		log_error("store: sqlite failed op=%s rc=%d err=\"%s\"", op, rc,
			  sqlite3_errmsg(c->db));
}

static enum store_fault sq_fault_take(void *conn, char *detail, size_t len, bool *wrote)
{
	struct sq *c = conn;
	enum store_fault f = c->fault;
	*wrote = c->wrote;
	c->wrote = false;
	if (f != STORE_FAULT_NONE && len > 0)
		snprintf(detail, len, "%s", c->fault_detail);
	c->fault = STORE_FAULT_NONE;
	c->fault_detail[0] = '\0';
	return f;
}

static int sq_wal_truncate(void *conn)
{
	struct sq *c = conn;
	/* No waiting for readers: a TRUNCATE checkpoint would otherwise block
	 * the commit thread up to the busy timeout. With a reader in the way
	 * it copies what it can and leaves the file as it is (SQLITE_BUSY);
	 * the next failed write tries again. */
	sqlite3_busy_timeout(c->db, 0);
	int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);
	return rc == SQLITE_OK ? STORE_OK : STORE_ERROR;
}

/* Microseconds on clk (CLOCK_MONOTONIC, or the thread's CPU time). */
static uint64_t sq_clock_us(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A PASSIVE checkpoint in the connection's own commit (its wal hook), timed
 * into c->wal.self_*. */
static void sq_self_checkpoint(struct sq *c, sqlite3 *db, const char *name)
{
	int log_frames = -1, done = -1;
	uint64_t t0 = sq_clock_us(CLOCK_MONOTONIC), c0 = sq_clock_us(CLOCK_THREAD_CPUTIME_ID);
	int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &done);
	uint64_t us = sq_clock_us(CLOCK_MONOTONIC) - t0;
	c->wal.self_ckpts++;
	c->wal.self_us += us;
	c->wal.self_cpu_us += sq_clock_us(CLOCK_THREAD_CPUTIME_ID) - c0;
	if (us > c->wal.self_max_us)
		c->wal.self_max_us = us;
	if (rc == SQLITE_OK && done >= 0) {
		c->wal.self_frames += (uint64_t)(done >= c->wal_last_done ? done - c->wal_last_done
									  : done);
		c->wal_last_done = done;
	}
}

/* The wal hook of every connection, in place of wal_autocheckpoint: after
 * each commit, the log holds frames pages. The writer hands the checkpoint
 * to its checkpointer and runs one itself only at SQ_WAL_CAP_PAGES (the
 * checkpointer fell behind, or readers hold it back: the log stays
 * bounded as before); any other connection runs one at
 * SQ_WAL_CHECKPOINT_PAGES, as wal_autocheckpoint did. */
static int sq_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	static struct log_limit limit;
	uint64_t dropped;
	struct sq *c = arg;
	if ((uint64_t)frames > c->wal.frames_max)
		c->wal.frames_max = (uint64_t)frames;
	if (c->ckpt == NULL) {
		if (frames >= SQ_WAL_CHECKPOINT_PAGES)
			sq_self_checkpoint(c, db, name);
		return SQLITE_OK;
	}
	if (frames < SQ_WAL_CAP_PAGES) {
		sq_ckpt_note(c->ckpt, frames);
		return SQLITE_OK;
	}
	if (log_limit_allow(&limit, 60000, &dropped))
		log_warn("store: the write-ahead log reached %d pages before its checkpointer copied "
			 "it; the writer checkpoints it (a long read holds it back?) not_logged=%llu",
			 frames, (unsigned long long)dropped);
	/* One checkpoint at a time: while the checkpointer's run holds the
	 * lock (a thread descheduled on a loaded machine can hold it for a
	 * long while), the writer's gets SQLITE_BUSY at once, and each commit
	 * meanwhile made the log longer (10.8 MiB seen in e2e test_storage).
	 * So the writer waits for that run to end, keeps the thread from
	 * starting another, and checkpoints: the log stays at the cap plus
	 * one commit unless a read holds it back. */
	sq_ckpt_pause(c->ckpt, SQ_WAL_CAP_WAIT_MS);
	sq_self_checkpoint(c, db, name);
	sq_ckpt_resume(c->ckpt);
	return SQLITE_OK;
}

static void sq_wal_counts(void *conn, struct store_wal_counts *out)
{
	struct sq *c = conn;
	*out = c->wal;
	out->ckpt_idle = true;
	if (c->ckpt != NULL)
		sq_ckpt_counts(c->ckpt, out);
}

/* The writer's figures at close, one line: where its checkpoints ran. */
static void sq_log_wal_counts(struct sq *c)
{
	struct store_wal_counts n;
	sq_wal_counts(c, &n);
	log_info("store: writer wal checkpoints commits=%llu commit_ms=%llu self=%llu self_ms=%llu "
		 "self_max_ms=%llu checkpointer=%llu checkpointer_ms=%llu checkpointer_max_ms=%llu "
		 "self_frames=%llu checkpointer_frames=%llu busy=%llu cap_waits_given_up=%llu "
		 "longest_log=%llu",
		 (unsigned long long)n.commits, (unsigned long long)(n.commit_us / 1000),
		 (unsigned long long)n.self_ckpts, (unsigned long long)(n.self_us / 1000),
		 (unsigned long long)(n.self_max_us / 1000), (unsigned long long)n.ckpt_runs,
		 (unsigned long long)(n.ckpt_us / 1000), (unsigned long long)(n.ckpt_max_us / 1000),
		 (unsigned long long)n.self_frames, (unsigned long long)n.ckpt_frames,
		 (unsigned long long)n.ckpt_busy, (unsigned long long)n.cap_waits_given_up,
		 (unsigned long long)n.frames_max);
}

sqlite3_stmt *sq_prepare(struct sq *c, const char *sql, const char *op)
{
	sqlite3_stmt *s = NULL;
	c->tx_fresh = false; /* a statement may run in the transaction */
	int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
	if (rc != SQLITE_OK) {
		sq_log_error(c, op, rc);
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

/* The cached statement for id, prepared on first use; NULL on failure (logged). */
sqlite3_stmt *sq_stmt_get(struct sq *c, enum stmt_id id)
{
	c->tx_fresh = false; /* a statement may run in the transaction */
	if (!c->stmt[id])
		c->stmt[id] = sq_prepare(c, stmt_sql[id], "prepare");
	return c->stmt[id];
}

/* Readies a used statement for its next use and drops pointers to the
 * caller's memory (the text binds are SQLITE_STATIC). */
void sq_stmt_done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

static bool is_conflict(int rc)
{
	return rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY;
}

/* Steps a statement that returns no rows to completion and resets it.
 * STORE_OK, STORE_CONFLICT (unique or primary key), or STORE_ERROR (logged).
 * sqlite3_changes() stays valid afterwards. */
int sq_exec_stmt(struct sq *c, sqlite3_stmt *s, const char *op)
{
	int rc = sqlite3_step(s);
	int out = STORE_OK;
	if (rc != SQLITE_DONE) {
		if (is_conflict(rc)) {
			out = STORE_CONFLICT;
		} else {
			sq_log_error(c, op, rc);
			out = STORE_ERROR;
		}
	}
	sq_stmt_done(s);
	return out;
}

/* Runs a statement by id with no parameters (transaction control). */
static int exec_id(struct sq *c, enum stmt_id id, const char *op)
{
	sqlite3_stmt *s = sq_stmt_get(c, id);
	if (!s)
		return STORE_ERROR;
	return sq_exec_stmt(c, s, op);
}

int sq_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (!v)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

/* Copies column i into an id buffer; -1 if it is NULL or too long. */
int sq_col_id(sqlite3_stmt *s, int i, char out[ID_MAX])
{
	const unsigned char *t = sqlite3_column_text(s, i);
	int n = sqlite3_column_bytes(s, i);
	if (!t || n <= 0 || n >= ID_MAX) {
		log_error("store: bad id in database column=%d len=%d", i, n);
		return -1;
	}
	memcpy(out, t, (size_t)n);
	out[n] = '\0';
	return 0;
}

void sq_col_code(sqlite3_stmt *s, int i, char out[MODEL_CODE_MAX])
{
	const unsigned char *t = NULL;
	if (sqlite3_column_type(s, i) != SQLITE_NULL)
		t = sqlite3_column_text(s, i);
	model_code_set(out, (const char *)t);
}

/* A malloc'd copy of text column i in *out (NULL for SQL NULL); -1 if out of memory. */
int sq_col_dup(sqlite3_stmt *s, int i, char **out)
{
	*out = NULL;
	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return 0;
	const unsigned char *t = sqlite3_column_text(s, i);
	int n = sqlite3_column_bytes(s, i);
	if (!t)
		return -1; /* out of memory converting the value */
	char *p = malloc((size_t)n + 1);
	if (!p)
		return -1;
	memcpy(p, t, (size_t)n);
	p[n] = '\0';
	*out = p;
	return 0;
}

/* Parses JSON text column i into *out (NULL for SQL NULL); -1 on bad JSON. */
int sq_col_json(sqlite3_stmt *s, int i, json_t **out)
{
	*out = NULL;
	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return 0;
	const char *t = (const char *)sqlite3_column_text(s, i);
	if (!t)
		return -1;
	json_error_t jerr;
	*out = json_loads(t, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!*out) {
		log_error("store: bad JSON in database column=%d line=%d", i, jerr.line);
		return -1;
	}
	return 0;
}

/* Steps s (already bound) for up to limit rows, reading each with rd into
 * an array of elements of `size` bytes; one extra row tells whether a next
 * page exists. The position of row i is column poscol. */
int sq_read_page(struct sq *c, sqlite3_stmt *s, int limit, size_t size, int poscol,
		 int (*rd)(sqlite3_stmt *, void *), void (*clear)(void *), void **out,
		 size_t *n, char next_cursor[STORE_CURSOR_MAX], const char *op)
{
	char *arr = calloc((size_t)limit, size);
	size_t got = 0;
	int64_t last_pos = 0;
	int rc = STORE_OK;
	int step;

	next_cursor[0] = '\0';
	if (!arr) {
		log_error("store: out of memory op=%s", op);
		rc = STORE_ERROR;
		goto out;
	}
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		if (got == (size_t)limit) {
			store_cursor_format(last_pos, next_cursor);
			step = SQLITE_DONE;
			break;
		}
		if (rd(s, arr + got * size) != STORE_OK) {
			rc = STORE_ERROR;
			goto out;
		}
		last_pos = sqlite3_column_int64(s, poscol);
		got++;
	}
	if (step != SQLITE_DONE) {
		sq_log_error(c, op, step);
		rc = STORE_ERROR;
	}
out:
	sq_stmt_done(s);
	if (rc != STORE_OK) {
		for (size_t i = 0; i < got; i++)
			clear(arr + i * size);
		free(arr);
		arr = NULL;
		got = 0;
		next_cursor[0] = '\0';
	}
	*out = arr;
	*n = got;
	return rc;
}

/* Runs a fixed pragma or script; logs and returns -1 on failure. */
static int exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Reads an integer pragma such as user_version into *v. */
static int pragma_int(sqlite3 *db, const char *sql, int *v, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		snprintf(err, errlen, "%s: %s", sql, sqlite3_errmsg(db));
		sqlite3_finalize(s);
		return -1;
	}
	*v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return 0;
}

/* Brings the schema to SCHEMA_VERSION and marks the file as hookd's
 * (application_id; an older hookd's file, adopted by sq_check_identity,
 * gets it here). The version is read again inside an IMMEDIATE transaction
 * so two processes opening a new file at once do not both create it. */
static int migrate(sqlite3 *db, char *err, size_t errlen)
{
	int version, app_id;
	if (pragma_int(db, "PRAGMA user_version", &version, err, errlen) ||
	    pragma_int(db, "PRAGMA application_id", &app_id, err, errlen))
		return -1;
	if (version == SCHEMA_VERSION && (uint32_t)app_id == SQ_APPLICATION_ID)
		return 0;
	if (exec_sql(db, "BEGIN IMMEDIATE", err, errlen))
		return -1;
	if (pragma_int(db, "PRAGMA user_version", &version, err, errlen))
		goto fail;
	if (version > SCHEMA_VERSION || version < 0) {
		snprintf(err, errlen, "database schema version %d is newer than this hookd (%d)",
			 version, SCHEMA_VERSION);
		goto fail;
	}
	for (int v = version; v < SCHEMA_VERSION; v++) {
		char sql[64];
		if (exec_sql(db, migrations[v], err, errlen))
			goto fail;
		snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
		if (exec_sql(db, sql, err, errlen))
			goto fail;
		log_info("store: schema migrated version=%d", v + 1);
	}
	if (exec_sql(db, "PRAGMA application_id = " SQ_APPLICATION_ID_TEXT, err, errlen))
		goto fail;
	if (exec_sql(db, "COMMIT", err, errlen))
		goto fail;
	return 0;
fail:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static void sq_close(void *conn)
{
	struct sq *c = conn;
	if (!c)
		return;
	if (c->writer)
		sq_log_wal_counts(c);
	sq_ckpt_stop(c->ckpt);
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(c->stmt[i]);
	for (int i = 0; i < LIST_SLOTS; i++)
		sqlite3_finalize(c->list_stmt[i]);
	for (int i = 0; i < EVENT_LIST_SLOTS; i++)
		sqlite3_finalize(c->event_list_stmt[i]);
	int rc = sqlite3_close(c->db);
	if (rc != SQLITE_OK)
		log_error("store: sqlite close failed rc=%d", rc);
	free(c);
}

/* Process-wide SQLite settings, made before the library initializes. */
static void sq_global_config(void)
{
	/* Memory statistics take a global mutex around every allocation
	 * SQLite makes, which the commit thread does thousands of times a
	 * second; nothing reads them (sqlite3_memory_used, soft heap limit).
	 * Fails harmlessly (SQLITE_MISUSE) if SQLite is already in use. */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* The log kept bounded (docs/operations.md#disk-space): a checkpoint every
 * SQ_WAL_CHECKPOINT_PAGES pages instead of SQLite's 1000 (16 MiB with our
 * pages), by sq_wal_hook in place of wal_autocheckpoint, on the writer's
 * checkpointer thread for the writer; and the file cut back to
 * SQ_WAL_LIMIT_BYTES when it is reset, so a small volume that ran full gets
 * its space back once space is freed, without a restart. */
static int sq_wal_setup(struct sq *c, const char *path, const struct store_open_opts *o, char *err,
			size_t errlen)
{
	if (exec_sql(c->db, "PRAGMA journal_size_limit = " SQ_WAL_LIMIT_BYTES_TEXT, err, errlen))
		return -1;
	if (o->writer && sq_ckpt_start(path, o->sync, &c->ckpt, err, errlen) != STORE_OK)
		return -1;
	c->writer = o->writer;
	sqlite3_wal_hook(c->db, sq_wal_hook, c);
	return 0;
}

static int sq_open(const char *path, const struct store_open_opts *o, void **conn, char *err,
		   size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, sq_global_config);
	struct sq *c = NULL;
	char jm[16] = "";
	sqlite3_stmt *s = NULL;
	int rc;

	*conn = NULL;
	/* Nothing is written to a file that is not hookd's: this reads only. */
	bool is_new;
	if (sq_check_identity(path, SCHEMA_VERSION, &is_new, err, errlen) != 0)
		return STORE_ERROR;
	/* A new file is created below, an empty one filled by migrate. */
	/* The file holds endpoint secrets: create it owner-only. SQLite gives
	 * its -wal and -shm files the database file's mode. */
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	else if (errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return STORE_ERROR;
	}
	c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return STORE_ERROR;
	}
	rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path,
			 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);

	/* 16 KiB pages for a new database (an existing one keeps its own: a
	 * WAL database's page size cannot change). Every commit writes each
	 * page it touched to the WAL, two pwrite calls a page, and a
	 * checkpoint copies them back: with four times fewer, larger pages the
	 * commit thread spent 14-17 instead of 17-22 µs per delivery (bench/
	 * knobs.py e2e, docs/performance.md), for the same page cache bytes. */
	if (exec_sql(c->db, "PRAGMA page_size = " SQ_PAGE_SIZE_TEXT, err, errlen))
		goto fail;
	/* A new database can give the pages retention frees back to the file
	 * system (store_reclaim). An existing one keeps its mode: only a
	 * VACUUM changes it (docs/operations.md#retention); SQLite still
	 * reuses its free pages for new rows. */
	if (is_new && exec_sql(c->db, "PRAGMA auto_vacuum = INCREMENTAL", err, errlen))
		goto fail;
	rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_text(s, 0))
		snprintf(jm, sizeof jm, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	if (strcmp(jm, "wal") != 0) {
		snprintf(err, errlen, "cannot put %s in WAL mode: %s", path,
			 rc == SQLITE_ROW ? jm : sqlite3_errmsg(c->db));
		goto fail;
	}
	/* FULL: in WAL mode every commit fsyncs the log, so an acknowledged
	 * write survives power loss, not only a process crash.
	 * temp_store MEMORY keeps the savepoint sub-journals in RAM: the commit
	 * thread opens one savepoint per op, and with the default (a temporary
	 * file) each op wrote its sub-journal pages to that file (~6 pwrite
	 * calls per op). Measured, 100k delivery inserts, 1000 per commit and
	 * a savepoint each: 50-78k rows/s before, 72-110k after. */
	if (exec_sql(c->db, o->sync == STORE_SYNC_NORMAL
				    ? "PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY"
				    : "PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY",
		     err, errlen))
		goto fail;
	/* The writer's page cache holds a transaction's dirty pages: past it
	 * SQLite spills them to the WAL mid-transaction (and writes them again
	 * at the commit) and reads evicted pages back from the file. SQLite's
	 * 2 MiB are 125 of our pages; one event for 100 endpoints dirties
	 * ~245 (a leaf per endpoint in each per-endpoint index). */
	if (o->writer && exec_sql(c->db, "PRAGMA cache_size = " SQ_WRITER_CACHE_TEXT, err, errlen))
		goto fail;
	if (sq_wal_setup(c, path, o, err, errlen) || migrate(c->db, err, errlen))
		goto fail;
	*conn = c;
	return STORE_OK;
fail:
	sq_close(c);
	return STORE_ERROR;
}

/* store_check for SQLite: the file is hookd's (or new) and writable. */
static int sq_check(const char *path, char *err, size_t errlen)
{
	bool is_new;
	if (sq_check_identity(path, SCHEMA_VERSION, &is_new, err, errlen) != 0 ||
	    sq_check_writable(path, err, errlen) != 0)
		return STORE_ERROR;
	return STORE_OK;
}

static int sq_verify(const char *path, bool full, char *err, size_t errlen)
{
	return sq_check_pages(path, full, err, errlen) == 0 ? STORE_OK : STORE_ERROR;
}

static int sq_begin(void *conn)
{
	struct sq *c = conn;
	c->changes_at_begin = sqlite3_total_changes64(c->db);
	c->sp_virtual = false;
	c->sp_nested = 0;
	int rc = exec_id(c, S_BEGIN, "begin");
	c->tx_fresh = rc == STORE_OK;
	return rc;
}

static int sq_commit(void *conn)
{
	struct sq *c = conn;
	c->tx_fresh = c->sp_virtual = false;
	c->sp_nested = 0;
	uint64_t t0 = sq_clock_us(CLOCK_MONOTONIC), c0 = sq_clock_us(CLOCK_THREAD_CPUTIME_ID);
	int rc = exec_id(c, S_COMMIT, "commit");
	c->wal.commits++;
	c->wal.commit_us += sq_clock_us(CLOCK_MONOTONIC) - t0;
	c->wal.commit_cpu_us += sq_clock_us(CLOCK_THREAD_CPUTIME_ID) - c0;
	if (rc == STORE_OK && sqlite3_total_changes64(c->db) != c->changes_at_begin)
		c->wrote = true;
	return rc;
}
static int sq_rollback(void *conn)
{
	struct sq *c = conn;
	c->tx_fresh = c->sp_virtual = false;
	c->sp_nested = 0;
	/* A COMMIT that failed for lack of space may have ended the
	 * transaction already: nothing is left to roll back. */
	if (sqlite3_get_autocommit(c->db))
		return STORE_OK;
	return exec_id(conn, S_ROLLBACK, "rollback");
}

/* A savepoint makes SQLite copy every page its writes touch into the
 * sub-journal (16 KiB each, in memory: temp_store) and free the copies at
 * its release. The commit thread opens one per op, or per run of rerun_ok
 * ops, so the first of a group, before anything was written, paid that
 * for nothing: undoing to it is undoing the whole transaction. That one is
 * kept here only (sp_virtual), and rolled back as the transaction
 * (sq_rollback_to). A group of one op (a single ingest between quiet
 * moments) then writes its pages once: a 100-endpoint event's ingest spent
 * ~22 % of its instructions in that copy and its release
 * (docs/performance.md, "The 100-endpoint ingest"). */
static int sq_savepoint(void *conn)
{
	struct sq *c = conn;
	if (c->tx_fresh && !c->sp_virtual && !sqlite3_get_autocommit(c->db) &&
	    sqlite3_total_changes64(c->db) == c->changes_at_begin) {
		c->tx_fresh = false;
		c->sp_virtual = true;
		return STORE_OK;
	}
	int rc = exec_id(c, S_SAVEPOINT, "savepoint");
	if (rc == STORE_OK && c->sp_virtual)
		c->sp_nested++;
	return rc;
}

static int sq_release(void *conn)
{
	struct sq *c = conn;
	if (c->sp_virtual && c->sp_nested == 0) {
		c->sp_virtual = false;
		return STORE_OK;
	}
	int rc = exec_id(c, S_RELEASE, "release");
	if (rc == STORE_OK && c->sp_nested > 0)
		c->sp_nested--;
	return rc;
}

static int sq_rollback_to(void *conn)
{
	struct sq *c = conn;
	if (c->sp_virtual && c->sp_nested == 0) {
		/* Nothing came before the savepoint: the transaction, begun
		 * again, is what it held. changes_at_begin is kept, as a
		 * ROLLBACK TO would have kept the count. */
		c->sp_virtual = false;
		int rc = exec_id(c, S_ROLLBACK, "rollback_to");
		if (rc == STORE_OK)
			rc = exec_id(c, S_BEGIN, "rollback_to");
		c->tx_fresh = rc == STORE_OK;
		return rc;
	}
	/* ROLLBACK TO keeps the savepoint open; release it so the next op can
	 * reuse the name without nesting. */
	int rc = exec_id(conn, S_ROLLBACK_TO, "rollback_to");
	if (rc == STORE_OK)
		rc = exec_id(conn, S_RELEASE, "rollback_to");
	if (rc == STORE_OK && c->sp_nested > 0)
		c->sp_nested--;
	return rc;
}

/* The backend's own savepoint around a multi-statement op: end it with
 * sq_op_end(c, rc), which keeps the writes if rc is STORE_OK, else undoes them. */
int sq_op_begin(struct sq *c) { return exec_id(c, S_OP_SAVEPOINT, "op_savepoint"); }

int sq_op_end(struct sq *c, int rc)
{
	if (rc != STORE_OK && exec_id(c, S_OP_ROLLBACK_TO, "op_rollback_to") != STORE_OK)
		return STORE_ERROR;
	if (exec_id(c, S_OP_RELEASE, "op_release") != STORE_OK)
		return STORE_ERROR;
	return rc;
}

const struct store_backend store_backend_sqlite = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.check = sq_check,
	.verify = sq_verify,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.savepoint = sq_savepoint,
	.release = sq_release,
	.rollback_to = sq_rollback_to,
	.fault_take = sq_fault_take,
	.wal_truncate = sq_wal_truncate,
	.wal_counts = sq_wal_counts,
	.endpoint_insert = sq_endpoint_insert,
	.endpoint_update = sq_endpoint_update,
	.endpoint_delete = sq_endpoint_delete,
	.endpoint_get = sq_endpoint_get,
	.endpoint_list = sq_endpoint_list,
	.endpoint_each = sq_endpoint_each,
	.endpoint_disable = sq_endpoint_disable,
	.endpoint_events = sq_endpoint_events,
	.event_insert = sq_event_insert,
	.event_get = sq_event_get,
	.event_get_many = sq_event_get_many,
	.event_list = sq_event_list,
	.idem_get = sq_idem_get,
	.idem_put = sq_idem_put,
	.delivery_insert = sq_delivery_insert,
	.delivery_update_state = sq_delivery_update_state,
	.delivery_set_batch = sq_delivery_set_batch,
	.delivery_get = sq_delivery_get,
	.delivery_list = sq_delivery_list,
	.attempt_insert = sq_attempt_insert,
	.attempt_list = sq_attempt_list,
	.pending_endpoints = sq_pending_endpoints,
	.pending_page_endpoint = sq_pending_page_endpoint,
	.batch_members = sq_batch_members,
	.dlq_retry_one = sq_dlq_retry_one,
	.dlq_retry_endpoint = sq_dlq_retry_endpoint,
	.purge_dead = sq_purge_dead,
	.queue_seed = sq_queue_seed,
	.purge_events = sq_purge_events,
	.size = sq_size,
	.reclaim = sq_reclaim,
	.api_key_insert = sq_api_key_insert,
	.api_key_find = sq_api_key_find,
	.api_key_list = sq_api_key_list,
	.api_key_revoke = sq_api_key_revoke,
	.endpoint_count = sq_endpoint_count,
	.endpoint_state_put = sq_endpoint_state_put,
	.endpoint_state_each = sq_endpoint_state_each,
};
