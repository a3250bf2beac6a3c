/* store_pg: the PostgreSQL backend of the store (store_backend.h), through
 * libpq.
 *
 * One connection per struct store (PQconnectdb with the URL as given:
 * postgres://user:password@host:port/db?param=..., or a bare postgres://
 * that leaves everything to libpq's PGHOST, PGPORT, PGUSER, PGDATABASE,
 * PGPASSWORD... variables), used by one thread at a time. PostgreSQL's
 * MVCC gives what the interface asks of readers: they see committed rows
 * and never block the commit thread's writes.
 *
 * This file holds the connection, the schema, the transactions and the
 * function table; store_pg_exec.c runs statements and reads results
 * (store_pg_internal.h, whose header says how), store_pg_endpoints.c,
 * store_pg_events.c, store_pg_keys.c and store_pg_deliveries.c the
 * operations on each table, as the SQLite backend splits them.
 *
 * Savepoints. Every SAVEPOINT is a subtransaction in PostgreSQL. The commit
 * thread (commit.c) opens one per op of a group, or one per run of
 * consecutive rerun_ok ops (ingest), so a transaction holds at most
 * COMMIT_GROUP_MAX (4096) of them, all released or rolled back before the
 * COMMIT; the backend opens none of its own inside one of those
 * (pg_op_begin). Past 64 subtransactions that wrote, a session's cache of
 * subtransaction ids overflows and other sessions' snapshots must look
 * them up in pg_subtrans until the commit: a group of more than 64 write
 * ops that are not rerun_ok costs the readers something. */
#include "store_pg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The schema, one script per version: migrations[i] takes version i to
 * i + 1. Append new versions; never edit a shipped one. Tables and columns
 * have the names of the SQLite backend's (store_sqlite.c, schema version
 * 6), SQLite's INTEGER as BIGINT, REAL as DOUBLE PRECISION, BLOB as BYTEA;
 * JSON stays TEXT so its bytes are kept exactly. Every `seq` is an identity
 * column (SQLite's rowid): the order of lists and cursors, the dispatcher's
 * key of a pending delivery; unlike a rowid it is never reused. Ids are
 * COLLATE "C": they order bytewise, as the dispatcher's window does. */
static const char *const migrations[] = {
	/* 1: the schema of SQLite's version 6. */
	"CREATE TABLE endpoints ("
	" seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	" id TEXT COLLATE \"C\" NOT NULL UNIQUE,"
	" url TEXT NOT NULL,"
	" description TEXT NOT NULL DEFAULT '',"
	" events TEXT NOT NULL,"
	" secret TEXT NOT NULL,"
	" enabled BIGINT NOT NULL,"
	" created_at BIGINT NOT NULL,"
	" updated_at BIGINT NOT NULL,"
	" filters TEXT,"
	" headers TEXT NOT NULL DEFAULT '{}',"
	" rate_limit DOUBLE PRECISION NOT NULL DEFAULT 0,"
	" max_in_flight BIGINT NOT NULL DEFAULT 10,"
	" batch_max_events BIGINT NOT NULL DEFAULT 0,"
	" batch_max_wait_ms BIGINT NOT NULL DEFAULT 0,"
	" disabled_reason TEXT,"
	" secret_previous TEXT,"
	" secret_previous_until BIGINT NOT NULL DEFAULT 0,"
	" signing TEXT NOT NULL DEFAULT 'hmac');"
	"CREATE TABLE events ("
	" seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	" id TEXT COLLATE \"C\" NOT NULL UNIQUE,"
	" type TEXT NOT NULL,"
	" data TEXT NOT NULL,"
	" created_at BIGINT NOT NULL);"
	/* SQLite's index entries end with the rowid; here seq is named. */
	"CREATE INDEX events_created ON events(created_at, seq);"
	"CREATE TABLE idempotency_keys ("
	" key TEXT COLLATE \"C\" PRIMARY KEY,"
	" event_ids TEXT NOT NULL,"
	" created_at BIGINT NOT NULL);"
	"CREATE TABLE deliveries ("
	" seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	" id TEXT COLLATE \"C\" NOT NULL UNIQUE,"
	" event_id TEXT COLLATE \"C\" NOT NULL,"
	" endpoint_id TEXT COLLATE \"C\" NOT NULL,"
	" event_type TEXT NOT NULL,"
	" status BIGINT NOT NULL,"
	" attempt_count BIGINT NOT NULL DEFAULT 0,"
	" schedule_index BIGINT NOT NULL DEFAULT 0,"
	" next_attempt_at BIGINT NOT NULL DEFAULT 0,"
	" created_at BIGINT NOT NULL,"
	" updated_at BIGINT NOT NULL,"
	" last_status BIGINT NOT NULL DEFAULT 0,"
	" last_error TEXT,"
	" batch_id TEXT);"
	"CREATE INDEX deliveries_pending ON deliveries(next_attempt_at, id) WHERE status = 0;"
	"CREATE INDEX deliveries_endpoint ON deliveries(endpoint_id, seq);"
	"CREATE INDEX deliveries_event ON deliveries(event_id, seq);"
	"CREATE INDEX deliveries_dead_endpoint ON deliveries(endpoint_id, seq) WHERE status = 2;"
	"CREATE INDEX deliveries_dead_age ON deliveries(updated_at) WHERE status = 2;"
	"CREATE INDEX deliveries_dead ON deliveries(seq) WHERE status = 2;"
	"CREATE TABLE attempts ("
	" delivery_id TEXT COLLATE \"C\" NOT NULL,"
	" attempt BIGINT NOT NULL,"
	" at BIGINT NOT NULL,"
	" url TEXT NOT NULL,"
	" status BIGINT NOT NULL DEFAULT 0,"
	" duration_ms BIGINT NOT NULL DEFAULT 0,"
	" response_body TEXT,"
	" headers TEXT,"
	" error_code TEXT,"
	" error_message TEXT,"
	" dns_us BIGINT,"
	" connect_us BIGINT,"
	" tls_us BIGINT,"
	" ttfb_us BIGINT,"
	" total_us BIGINT,"
	" remote_ip TEXT,"
	" reused BIGINT,"
	" PRIMARY KEY (delivery_id, attempt));"
	"CREATE TABLE api_keys ("
	" seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	" id TEXT COLLATE \"C\" NOT NULL UNIQUE,"
	" hash BYTEA NOT NULL UNIQUE,"
	" prefix TEXT NOT NULL,"
	" scope TEXT NOT NULL,"
	" name TEXT NOT NULL DEFAULT '',"
	" created_at BIGINT NOT NULL,"
	" revoked_at BIGINT);",
	/* 2: SQLite's version 8, durable endpoint state
	 * (docs/architecture.md#durable-endpoint-state). */
	"CREATE TABLE endpoint_state ("
	" endpoint_id TEXT COLLATE \"C\" PRIMARY KEY,"
	" circuit TEXT NOT NULL,"
	" failures BIGINT NOT NULL,"
	" cooldown_ms BIGINT NOT NULL,"
	" open_until BIGINT NOT NULL,"
	" paused_until BIGINT NOT NULL,"
	" pause_reason TEXT NOT NULL,"
	" updated_at BIGINT NOT NULL);",
	/* 3: retention walks idempotency keys by age (SQLite's version 7 index);
	 * seq is the keys' position for its cursor. */
	"ALTER TABLE idempotency_keys ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY;"
	"CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at, seq);",
	/* 4: several nodes (docs/architecture.md#several-nodes): who is alive,
	 * and which node owns each endpoint until when (the database's clock). */
	"CREATE TABLE nodes ("
	" id TEXT COLLATE \"C\" PRIMARY KEY,"
	" started_at TIMESTAMPTZ NOT NULL,"
	" heartbeat_at TIMESTAMPTZ NOT NULL);"
	"CREATE TABLE endpoint_owner ("
	" endpoint_id TEXT COLLATE \"C\" PRIMARY KEY,"
	" node_id TEXT COLLATE \"C\" NOT NULL,"
	" lease_until TIMESTAMPTZ NOT NULL);"
	"CREATE INDEX endpoint_owner_node ON endpoint_owner(node_id);",
	/* 5: SQLite's version 9, the signature schemes an endpoint gets
	 * (docs/api.md#endpoint); existing endpoints keep all three. */
	"ALTER TABLE endpoints ADD COLUMN signatures TEXT NOT NULL"
	" DEFAULT '[\"standard\",\"pixelpatrol\",\"webhook_signature\"]';",
	/* 6: SQLite's version 10, the window's per-endpoint refill
	 * (docs/architecture.md#the-window-and-paging): one endpoint's pending
	 * rows in key order without walking the others'. */
	"CREATE INDEX deliveries_pending_endpoint ON deliveries(endpoint_id, next_attempt_at, id)"
	" WHERE status = 0;",
	/* 7: SQLite's version 11, every endpoint pages itself
	 * (docs/architecture.md#the-window-and-paging): one pending index. */
	"DROP INDEX deliveries_pending;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* What marks a schema as hookd's: the one row of schema_version. */
#define PG_APPLICATION "hookd"
/* The advisory lock migrations take (with the schema's name hashed as the
 * second key): two nodes starting at once migrate one after the other. */
#define PG_MIGRATE_LOCK 0x686b6400 /* "hkd" */

/* How long a connection attempt may take unless the URL (connect_timeout)
 * or PGCONNECT_TIMEOUT says otherwise. */
#define PG_CONNECT_TIMEOUT_S "10"
/* How long data sent on a TCP connection may stay unacknowledged before
 * the connection counts as lost (a network cut), unless the URL says. */
#define PG_TCP_USER_TIMEOUT_MS "20000"

/* What the current schema holds (schema_state). */
enum schema_kind { SCHEMA_NEW, SCHEMA_HOOKD, SCHEMA_FOREIGN };

/* One row: whether the current schema exists, its table count, whether
 * schema_version is there, and hookd's row in it. */
static const struct pg_stmt STATE = {
	"schema_state",
	"SELECT current_schema() IS NOT NULL,"
	" (SELECT count(*) FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
	"  WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f')),"
	" EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema()"
	"  AND tablename = 'schema_version')"};

/* Reads what the current schema is: new (no tables), hookd's at *version,
 * or foreign. -1 with a reason in err. */
static int schema_state(struct pg *c, enum schema_kind *kind, int *version, char *err,
			size_t errlen)
{
	PGresult *r = NULL;
	if (pg_exec(c, &STATE, NULL, &r) != STORE_OK) {
		snprintf(err, errlen, "cannot read the schema: %s", PQerrorMessage(c->db));
		return -1;
	}
	bool has_schema = PQgetvalue(r, 0, 0)[0] == 't';
	int64_t tables = pg_get_int64(r, 0, 1);
	bool has_version = PQgetvalue(r, 0, 2)[0] == 't';
	PQclear(r);
	if (!has_schema) {
		snprintf(err, errlen, "the search_path names no existing schema to create tables in");
		return -1;
	}
	*version = 0;
	*kind = tables == 0 ? SCHEMA_NEW : SCHEMA_FOREIGN;
	if (!has_version)
		return 0;
	if (pg_query(c, "SELECT version FROM schema_version WHERE application = '" PG_APPLICATION
		     "'", NULL, &r, "schema_version") != STORE_OK) {
		snprintf(err, errlen, "cannot read schema_version");
		return -1;
	}
	if (PQntuples(r) == 1) {
		*kind = SCHEMA_HOOKD;
		*version = (int)pg_get_int64(r, 0, 0);
	}
	PQclear(r);
	return 0;
}

/* Refuses a schema hookd must not touch; 0 if it is new or hookd's at a
 * version this hookd knows. */
static int schema_acceptable(enum schema_kind kind, int version, char *err, size_t errlen)
{
	if (kind == SCHEMA_FOREIGN) {
		snprintf(err, errlen,
			 "the database schema has tables but is not hookd's (no schema_version "
			 "row); give hookd an empty database or schema");
		return -1;
	}
	if (version > SCHEMA_VERSION || version < 0) {
		snprintf(err, errlen, "database schema version %d is newer than this hookd (%d)",
			 version, SCHEMA_VERSION);
		return -1;
	}
	return 0;
}

/* Runs the migrations from *version on, inside the caller's transaction. */
static int apply_migrations(struct pg *c, enum schema_kind kind, int version, char *err,
			    size_t errlen)
{
	if (kind == SCHEMA_NEW &&
	    (pg_simple(c, "CREATE TABLE schema_version (application TEXT NOT NULL,"
			  " version BIGINT NOT NULL);"
			  " INSERT INTO schema_version VALUES ('" PG_APPLICATION "', 0)",
		       "schema_version create") != STORE_OK)) {
		snprintf(err, errlen, "cannot create schema_version: %s", PQerrorMessage(c->db));
		return -1;
	}
	for (int v = version; v < SCHEMA_VERSION; v++) {
		struct pg_params p;
		pg_params_init(&p);
		pg_param_int(&p, v + 1);
		if (pg_simple(c, migrations[v], "migrate") != STORE_OK ||
		    pg_query(c, "UPDATE schema_version SET version = $1", &p, NULL,
			     "migrate version") != STORE_OK) {
			snprintf(err, errlen, "schema migration to version %d failed: %s", v + 1,
				 PQerrorMessage(c->db));
			return -1;
		}
		log_info("store: schema migrated version=%d", v + 1);
	}
	return 0;
}

/* Brings the schema to SCHEMA_VERSION under the migration lock. The state is
 * read first without it: an up-to-date schema (every open but the first)
 * costs one round trip. */
static int migrate(struct pg *c, char *err, size_t errlen)
{
	enum schema_kind kind;
	int version;
	if (schema_state(c, &kind, &version, err, errlen) ||
	    schema_acceptable(kind, version, err, errlen))
		return -1;
	if (kind == SCHEMA_HOOKD && version == SCHEMA_VERSION)
		return 0;
	if (pg_simple(c, "BEGIN", "migrate begin") != STORE_OK) {
		snprintf(err, errlen, "cannot begin the migration: %s", PQerrorMessage(c->db));
		return -1;
	}
	c->in_txn = true; /* a connection lost now is not silently reopened */
	struct pg_params p;
	pg_params_init(&p);
	pg_param_int(&p, PG_MIGRATE_LOCK);
	if (pg_query(c, "SELECT pg_advisory_xact_lock($1::int, hashtext(current_schema()))", &p,
		     NULL, "migrate lock") != STORE_OK) {
		snprintf(err, errlen, "cannot take the migration lock: %s", PQerrorMessage(c->db));
		goto fail;
	}
	/* Again under the lock: another node may have migrated meanwhile. */
	if (schema_state(c, &kind, &version, err, errlen) ||
	    schema_acceptable(kind, version, err, errlen) ||
	    apply_migrations(c, kind, version, err, errlen))
		goto fail;
	if (pg_simple(c, "COMMIT", "migrate commit") != STORE_OK) {
		snprintf(err, errlen, "cannot commit the migration: %s", PQerrorMessage(c->db));
		goto fail;
	}
	c->in_txn = false;
	return 0;
fail:
	pg_simple(c, "ROLLBACK", "migrate rollback");
	c->in_txn = false;
	return -1;
}

int pg_session_setup(struct pg *c)
{
	/* synchronous_commit: FULL waits for the commit's WAL flush (and a
	 * synchronous standby's, if configured); NORMAL does not, so a crash
	 * of the PostgreSQL server (not of hookd) may lose the last commits.
	 * The timeouts are store_set_timeouts' when it set them (otherwise
	 * whatever the server, the role or the URL's options say). */
	char sql[256];
	int len = snprintf(sql, sizeof sql,
			   "SET synchronous_commit = %s; SET bytea_output = 'hex';"
			   " SET client_encoding = 'UTF8'",
			   c->sync == STORE_SYNC_NORMAL ? "off" : "on");
	if (c->statement_timeout_ms > 0 || c->lock_timeout_ms > 0)
		snprintf(sql + len, sizeof sql - (size_t)len,
			 "; SET statement_timeout = %lld; SET lock_timeout = %lld",
			 (long long)c->statement_timeout_ms, (long long)c->lock_timeout_ms);
	return pg_simple(c, sql, "session setup");
}

/* store_set_timeouts: kept for reconnections, applied now. */
static int pg_set_timeouts(void *conn, int64_t statement_ms, int64_t lock_ms)
{
	struct pg *c = conn;
	c->statement_timeout_ms = statement_ms > 0 ? statement_ms : 0;
	c->lock_timeout_ms = lock_ms > 0 ? lock_ms : 0;
	return pg_session_setup(c);
}

/* libpq's notices (a server's goodbye on a session it ends, warnings) go
 * to the log, one line each, instead of libpq's bare stderr lines. */
static void notice_to_log(void *arg, const char *message)
{
	(void)arg;
	char msg[256];
	snprintf(msg, sizeof msg, "%s", message ? message : "");
	msg[strcspn(msg, "\n")] = '\0';
	log_info("store: postgres notice msg=\"%s\"", msg);
}

struct pg *pg_connect(const char *url, const struct store_open_opts *o, const char *app,
		      char *err, size_t errlen)
{
	struct pg *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->sync = o->sync;
	if (o->node_id != NULL)
		snprintf(c->node_id, sizeof c->node_id, "%s", o->node_id);
	/* The URL is expanded in place of dbname, so what it says wins over
	 * the defaults before it: a name for pg_stat_activity, a connect
	 * timeout (libpq's default waits as long as TCP does, minutes, while
	 * serve starts or the commit thread reconnects), and a TCP connection
	 * whose peer went silent (a network cut, a failed host) found dead in
	 * about 20 s rather than after the kernel's default of hours
	 * (keepalives; tcp_user_timeout for data sent and never acknowledged).
	 * Unix sockets ignore the TCP ones. */
	const char *keys[8] = {"fallback_application_name", "keepalives_idle", "keepalives_interval",
			       "keepalives_count", "tcp_user_timeout"};
	const char *vals[8] = {app, "10", "5", "2", PG_TCP_USER_TIMEOUT_MS};
	int n = 5;
	if (!getenv("PGCONNECT_TIMEOUT")) {
		keys[n] = "connect_timeout";
		vals[n++] = PG_CONNECT_TIMEOUT_S;
	}
	keys[n] = "dbname";
	vals[n] = url;
	c->db = PQconnectdbParams(keys, vals, 1);
	if (!c->db || PQstatus(c->db) != CONNECTION_OK) {
		char msg[256];
		snprintf(msg, sizeof msg, "%s", c->db ? PQerrorMessage(c->db) : "out of memory");
		msg[strcspn(msg, "\n")] = '\0';
		snprintf(err, errlen, "cannot connect to PostgreSQL: %s", msg);
		PQfinish(c->db);
		free(c);
		return NULL;
	}
	PQsetNoticeProcessor(c->db, notice_to_log, NULL);
	if (pg_session_setup(c) != STORE_OK) {
		snprintf(err, errlen, "cannot set up the PostgreSQL session: %s",
			 PQerrorMessage(c->db));
		PQfinish(c->db);
		free(c);
		return NULL;
	}
	return c;
}

void pg_disconnect(struct pg *c)
{
	if (!c)
		return;
	PQfinish(c->db);
	pg_notes_free(c);
	free(c);
}

static void pg_close(void *conn)
{
	pg_disconnect(conn);
}

static int pg_open(const char *url, const struct store_open_opts *o, void **conn, char *err,
		   size_t errlen)
{
	*conn = NULL;
	struct pg *c = pg_connect(url, o, "hookd", err, errlen);
	if (!c)
		return STORE_ERROR;
	if (migrate(c, err, errlen) != 0) {
		pg_close(c);
		return STORE_ERROR;
	}
	*conn = c;
	return STORE_OK;
}

/* store_check for PostgreSQL: the server answers and the schema is
 * hookd's (at a version this hookd knows) or empty. Reads only. */
static int pg_check(const char *url, char *err, size_t errlen)
{
	const struct store_open_opts o = {.sync = STORE_SYNC_FULL};
	struct pg *c = pg_connect(url, &o, "hookd", err, errlen);
	if (!c)
		return STORE_ERROR;
	enum schema_kind kind;
	int version;
	int rc = STORE_OK;
	if (schema_state(c, &kind, &version, err, errlen) ||
	    schema_acceptable(kind, version, err, errlen))
		rc = STORE_ERROR;
	pg_close(c);
	return rc;
}

/* store_verify: PostgreSQL checks its own pages (data checksums, amcheck
 * for whoever runs it); nothing for hookd to do. */
static int pg_verify(const char *url, bool full, char *err, size_t errlen)
{
	(void)url;
	(void)full;
	(void)err;
	(void)errlen;
	return STORE_OK;
}

/* The BEGIN is sent with the transaction's first statement: in the same
 * round trip as the first SAVEPOINT (a commit group's case), else on its
 * own just before (pg_deferred_flush). Until then a lost connection may
 * still be reset. */
static int pg_begin(void *conn)
{
	struct pg *c = conn;
	c->in_txn = false;
	c->deferred = PG_DEFER_BEGIN;
	c->caller_savepoint = false;
	c->savepoints = 0;
	c->txn_wrote = false;
	pg_notes_clear(c);
	return STORE_OK;
}

/* Ends the transaction's bookkeeping. */
static void txn_over(struct pg *c)
{
	c->in_txn = false;
	c->caller_savepoint = false;
	c->txn_wrote = false;
}

static int pg_commit(void *conn)
{
	struct pg *c = conn;
	const struct pg_notes *n = &c->notes;
	bool notes = n->n > 0 || n->all || n->n_eps > 0 || n->eps_all;
	if (c->deferred == PG_DEFER_BEGIN && !notes) {
		/* Nothing was sent: nothing to commit. */
		c->deferred = PG_DEFER_NONE;
		txn_over(c);
		return STORE_OK;
	}
	if (c->deferred == PG_DEFER_BEGIN && pg_deferred_flush(c) != STORE_OK) {
		pg_notes_clear(c);
		txn_over(c);
		return STORE_ERROR;
	}
	c->deferred = PG_DEFER_NONE; /* a RELEASE: the COMMIT releases it */
	/* COMMIT of a failed transaction answers "ROLLBACK" and succeeds:
	 * only "COMMIT" is one. */
	if (PQtransactionStatus(c->db) != PQTRANS_INTRANS) {
		log_error("store: postgres commit of a failed transaction");
		return STORE_ERROR;
	}
	PGresult *r = NULL;
	/* With what the transaction tells the other nodes, in one round trip. */
	int rc = pg_notes_commit(c, &r, "commit");
	if (rc == STORE_OK && strcmp(PQcmdStatus(r), "COMMIT") != 0)
		rc = STORE_ERROR;
	PQclear(r);
	if (rc == STORE_OK && c->txn_wrote)
		c->wrote = true;
	txn_over(c);
	return rc;
}

static int pg_rollback(void *conn)
{
	struct pg *c = conn;
	enum pg_defer d = c->deferred;
	c->deferred = PG_DEFER_NONE;
	PGTransactionStatusType ts = PQtransactionStatus(c->db);
	txn_over(c);
	pg_notes_clear(c);
	if (d == PG_DEFER_BEGIN)
		return STORE_OK; /* nothing was sent */
	/* Nothing open, or the connection is gone (the server rolled back). */
	if (ts == PQTRANS_IDLE || ts == PQTRANS_UNKNOWN)
		return STORE_OK;
	return pg_simple(c, "ROLLBACK", "rollback");
}

/* One round trip with a deferred BEGIN or RELEASE (struct pg's deferred). */
static int pg_savepoint(void *conn)
{
	struct pg *c = conn;
	enum pg_defer d = c->deferred;
	c->deferred = PG_DEFER_NONE;
	if (d == PG_DEFER_BEGIN)
		c->in_txn = false; /* as pg_deferred_flush: the session may be reset */
	static const char *const sql[] = {
		[PG_DEFER_NONE] = "SAVEPOINT hookd_op",
		[PG_DEFER_BEGIN] = "BEGIN; SAVEPOINT hookd_op",
		[PG_DEFER_RELEASE] = "RELEASE SAVEPOINT hookd_op; SAVEPOINT hookd_op",
	};
	int rc = pg_simple(c, sql[d], "savepoint");
	if (d == PG_DEFER_BEGIN) {
		PGTransactionStatusType ts = PQtransactionStatus(c->db);
		c->in_txn = ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR;
		if (!c->in_txn)
			c->deferred = PG_DEFER_BEGIN; /* no transaction began: the next op tries */
	}
	if (rc == STORE_OK) {
		c->caller_savepoint = true;
		c->savepoints++;
		pg_notes_mark(c, &c->savepoint_notes);
	}
	return rc;
}

/* Refuses to end a savepoint that is not open: PostgreSQL would abort the
 * whole transaction over it. */
static bool savepoint_open(struct pg *c, const char *op)
{
	if (c->caller_savepoint)
		return true;
	log_error("store: postgres %s without an open savepoint", op);
	return false;
}

static int pg_release(void *conn)
{
	struct pg *c = conn;
	if (!savepoint_open(c, "release"))
		return STORE_ERROR;
	c->caller_savepoint = false;
	c->deferred = PG_DEFER_RELEASE; /* with the next SAVEPOINT, or the COMMIT's */
	return STORE_OK;
}

static int pg_rollback_to(void *conn)
{
	struct pg *c = conn;
	if (!savepoint_open(c, "rollback_to"))
		return STORE_ERROR;
	c->caller_savepoint = false;
	pg_notes_rewind(c, &c->savepoint_notes);
	/* Released too, so the next op reuses the name without nesting. */
	return pg_simple(c, "ROLLBACK TO SAVEPOINT hookd_op; RELEASE SAVEPOINT hookd_op",
			 "rollback_to");
}

static enum store_fault pg_fault_take(void *conn, char *detail, size_t len, bool *wrote)
{
	struct pg *c = conn;
	enum store_fault f = c->fault;
	*wrote = c->wrote;
	c->wrote = false;
	if (f != STORE_FAULT_NONE && len > 0)
		snprintf(detail, len, "%s", c->fault_detail);
	c->fault = STORE_FAULT_NONE;
	c->fault_detail[0] = '\0';
	return f;
}

/* PostgreSQL manages its own WAL: nothing to give back. */
static int pg_wal_truncate(void *conn)
{
	(void)conn;
	return STORE_OK;
}

const struct store_backend store_backend_pg = {
	.name = "postgres",
	.shared = true,
	.open = pg_open,
	.close = pg_close,
	.check = pg_check,
	.verify = pg_verify,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.savepoint = pg_savepoint,
	.release = pg_release,
	.rollback_to = pg_rollback_to,
	.fault_take = pg_fault_take,
	.wal_truncate = pg_wal_truncate,
	.endpoint_insert = pg_endpoint_insert,
	.endpoint_update = pg_endpoint_update,
	.endpoint_delete = pg_endpoint_delete,
	.endpoint_get = pg_endpoint_get,
	.endpoint_list = pg_endpoint_list,
	.endpoint_each = pg_endpoint_each,
	.endpoint_disable = pg_endpoint_disable,
	.event_insert = pg_event_insert,
	.event_get = pg_event_get,
	.event_get_many = pg_event_get_many,
	.event_list = pg_event_list,
	.idem_get = pg_idem_get,
	.idem_put = pg_idem_put,
	.api_key_insert = pg_api_key_insert,
	.api_key_find = pg_api_key_find,
	.api_key_list = pg_api_key_list,
	.api_key_revoke = pg_api_key_revoke,
	.endpoint_events = pg_endpoint_events,
	.delivery_insert = pg_delivery_insert,
	.delivery_update_state = pg_delivery_update_state,
	.delivery_set_batch = pg_delivery_set_batch,
	.delivery_get = pg_delivery_get,
	.delivery_list = pg_delivery_list,
	.attempt_insert = pg_attempt_insert,
	.event_insert_many = pg_event_insert_many,
	.delivery_insert_many = pg_delivery_insert_many,
	.record_results = pg_record_results,
	.attempt_list = pg_attempt_list,
	.pending_endpoints = pg_pending_endpoints,
	.pending_page_endpoint = pg_pending_page_endpoint,
	.batch_members = pg_batch_members,
	.dlq_retry_one = pg_dlq_retry_one,
	.dlq_retry_endpoint = pg_dlq_retry_endpoint,
	.purge_dead = pg_purge_dead,
	.purge_events = pg_purge_events,
	.size = pg_size,
	.queue_seed = pg_queue_seed,
	.endpoint_count = pg_endpoint_count,
	.endpoint_state_put = pg_endpoint_state_put,
	.endpoint_state_each = pg_endpoint_state_each,
	.pending_by_seq = pg_pending_by_seq,
	.listen_open = pg_listen_open,
	.listen_wait = pg_listen_wait,
	.listen_close = pg_close,
	.node_heartbeat = pg_node_heartbeat,
	.nodes_live = pg_nodes_live,
	.lease_renew = pg_lease_renew,
	.lease_claim = pg_lease_claim,
	.lease_release = pg_lease_release,
	.node_leave = pg_node_leave,
	.set_timeouts = pg_set_timeouts,
};
