/* Unit tests of what only the PostgreSQL backend has: its schema's identity
 * and migrations (two nodes starting at once), the sync mode's mapping,
 * atomic operations without the caller's savepoint, and a lost connection.
 * Registered only through tests/pg/with-cluster.sh (tests/meson.build). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_pg_internal.h"
#include "test_store_db.h"

static struct test_db tdb;
static struct store *st;

static void setup(void)
{
	cr_assert_not_null(test_db_pg_admin(), "HOOKD_TEST_PG_URL (run through with-cluster.sh)");
	test_db_make(&tdb, "hookd-pg");
	st = test_db_open(&tdb);
}

static void teardown(void)
{
	test_db_close(&tdb, &st);
}

TestSuite(postgres, .init = setup, .fini = teardown);

/* One text cell of sql run on st's own connection. */
static void query_one(const char *sql, char *out, size_t len)
{
	PGresult *r = NULL;
	cr_assert_eq(pg_query(st->conn, sql, NULL, &r, "test"), STORE_OK, "%s", sql);
	cr_assert_eq(PQntuples(r), 1, "%s", sql);
	snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
}

static bool endpoint_exists(const char *id)
{
	struct endpoint e;
	int rc = store_endpoint_get(st, id, &e);
	endpoint_clear(&e);
	return rc == STORE_OK;
}

Test(postgres, schema_is_hookds_at_version_7)
{
	char v[64];
	query_one("SELECT application || ' ' || version FROM schema_version", v, sizeof v);
	cr_assert_str_eq(v, "hookd 7");
	/* Ids compare bytewise, as the dispatcher's window does. */
	query_one("SELECT collation_name FROM information_schema.columns"
		  " WHERE table_schema = current_schema() AND table_name = 'deliveries'"
		  " AND column_name = 'id'",
		  v, sizeof v);
	cr_assert_str_eq(v, "C");
	char err[256];
	cr_assert_eq(store_check(tdb.url, err, sizeof err), STORE_OK, "%s", err);
}

Test(postgres, refuses_a_newer_schema)
{
	test_db_pg_exec(&tdb, "UPDATE schema_version SET version = 99");
	char err[256] = "";
	struct store *s2 = (struct store *)1;
	cr_assert_eq(store_open(tdb.url, &s2, err, sizeof err), STORE_ERROR);
	cr_assert_null(s2);
	cr_assert(strstr(err, "newer"), "%s", err);
	cr_assert_eq(store_check(tdb.url, err, sizeof err), STORE_ERROR);
}

Test(postgres, refuses_a_schema_that_is_not_hookds)
{
	struct test_db other;
	test_db_make(&other, "hookd-pg-foreign");
	test_db_pg_exec(&other, "CREATE TABLE invoices (id int)");
	char err[256] = "";
	struct store *s2 = NULL;
	cr_assert_eq(store_check(other.url, err, sizeof err), STORE_ERROR);
	cr_assert(strstr(err, "not hookd's"), "%s", err);
	cr_assert_eq(store_open(other.url, &s2, err, sizeof err), STORE_ERROR);
	cr_assert_null(s2);
	test_db_remove(&other);
}

struct opener {
	const char *url;
	int rc;
	char err[256];
};

static void *open_one(void *arg)
{
	struct opener *o = arg;
	struct store *s = NULL;
	o->rc = store_open(o->url, &s, o->err, sizeof o->err);
	store_close(s);
	return NULL;
}

/* Nodes starting at once on an empty schema: the advisory lock lets one
 * create it; the others find it made. */
Test(postgres, first_opens_at_once_migrate_once)
{
	struct test_db fresh;
	test_db_make(&fresh, "hookd-pg-race");
	enum { N = 6 };
	struct opener o[N];
	pthread_t t[N];
	for (int i = 0; i < N; i++) {
		o[i] = (struct opener){.url = fresh.url};
		cr_assert_eq(pthread_create(&t[i], NULL, open_one, &o[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(o[i].rc, STORE_OK, "opener %d: %s", i, o[i].err);
	}
	struct store *s = NULL;
	char err[256];
	cr_assert_eq(store_open(fresh.url, &s, err, sizeof err), STORE_OK, "%s", err);
	PGresult *r = NULL;
	cr_assert_eq(pg_query(s->conn, "SELECT count(*) FROM schema_version", NULL, &r, "t"),
		     STORE_OK);
	cr_assert_str_eq(PQgetvalue(r, 0, 0), "1");
	PQclear(r);
	store_close(s);
	test_db_remove(&fresh);
}

Test(postgres, sync_mode_maps_to_synchronous_commit)
{
	char v[16];
	query_one("SHOW synchronous_commit", v, sizeof v);
	cr_assert_str_eq(v, "on", "FULL, the default");
	store_set_sync(STORE_SYNC_NORMAL);
	struct store *s = NULL;
	char err[256];
	cr_assert_eq(store_open(tdb.url, &s, err, sizeof err), STORE_OK, "%s", err);
	store_set_sync(STORE_SYNC_FULL);
	PGresult *r = NULL;
	cr_assert_eq(pg_query(s->conn, "SHOW synchronous_commit", NULL, &r, "t"), STORE_OK);
	cr_assert_str_eq(PQgetvalue(r, 0, 0), "off");
	PQclear(r);
	store_close(s);
}

/* The cascade's last statement fails (a trigger refuses): the endpoint
 * comes back, alone or inside a transaction, which stays usable. */
Test(postgres, endpoint_delete_is_atomic_and_keeps_the_transaction)
{
	test_db_add_endpoint(st, "ep_1", true);
	test_db_pg_exec(&tdb, "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
			      " $$BEGIN RAISE EXCEPTION 'refused'; END$$;"
			      " CREATE TRIGGER no_del BEFORE DELETE ON deliveries"
			      " FOR EACH STATEMENT EXECUTE FUNCTION refuse()");
	cr_assert_eq(store_endpoint_delete(st, "ep_1"), STORE_ERROR);
	cr_assert(endpoint_exists("ep_1"));

	cr_assert_eq(store_begin(st), STORE_OK);
	test_db_add_endpoint(st, "ep_2", true);
	cr_assert_eq(store_endpoint_delete(st, "ep_1"), STORE_ERROR);
	test_db_add_endpoint(st, "ep_3", true);
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert(endpoint_exists("ep_1"));
	cr_assert(endpoint_exists("ep_2"));
	cr_assert(endpoint_exists("ep_3"));
}

/* Ends st's session from another one, as a restart of the server does to
 * every session (57P01). */
static void terminate_session(void)
{
	struct pg *c = st->conn;
	char sql[96];
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d, 10000)",
		 PQbackendPID(c->db));
	test_db_admin_exec(sql);
}

/* A session the server ended, found by a statement outside a transaction:
 * the statement never ran, so it runs again on a new connection and
 * succeeds; no fault is left (a restart of PostgreSQL costs no request). */
Test(postgres, ended_session_outside_a_transaction_reconnects_and_runs_again)
{
	test_db_add_endpoint(st, "ep_1", true);
	terminate_session();
	struct endpoint e;
	cr_assert_eq(store_endpoint_get(st, "ep_1", &e), STORE_OK, "run again on a new session");
	endpoint_clear(&e);
	char detail[128];
	bool wrote;
	cr_assert_eq(store_fault_take(st, detail, sizeof detail, &wrote), STORE_FAULT_NONE);
}

/* Inside a transaction the session's end loses the transaction: the
 * statement fails with an unreachable fault, the next transaction
 * reconnects. (The transaction begins on the server with its first
 * statement: the BEGIN goes with it.) */
Test(postgres, lost_connection_is_a_fault_then_reconnects)
{
	test_db_add_endpoint(st, "ep_1", true);
	cr_assert_eq(store_begin(st), STORE_OK);
	struct endpoint e;
	cr_assert_eq(store_endpoint_get(st, "ep_1", &e), STORE_OK);
	endpoint_clear(&e);
	terminate_session();
	cr_assert_eq(store_endpoint_get(st, "ep_1", &e), STORE_ERROR);
	cr_assert_eq(store_rollback(st), STORE_OK);
	char detail[128];
	bool wrote;
	cr_assert_eq(store_fault_take(st, detail, sizeof detail, &wrote), STORE_FAULT_UNREACHABLE);
	cr_assert_eq(store_begin(st), STORE_OK, "reconnected");
	cr_assert_eq(store_endpoint_get(st, "ep_1", &e), STORE_OK);
	endpoint_clear(&e);
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert_eq(store_fault_take(st, detail, sizeof detail, &wrote), STORE_FAULT_NONE);
}

/* The set-based writes' columns (struct pg_array) travel in the binary
 * array format and come back as they went: texts with quotes, backslashes,
 * braces, commas and UTF-8, the empty text, NULLs in a text and in a bigint
 * column, the extreme bigints, a column of only NULLs (sent as a literal)
 * and an empty one. */
Test(postgres, array_columns_go_in_binary_and_round_trip)
{
	static const char *const texts[] = {"a\"b\\c", "{x,y}", "", NULL, "caf\xc3\xa9 \xe2\x9c\x93",
					    "NULL"};
	static const int64_t ints[] = {INT64_MIN, -1, 0, 1, INT64_MAX, 42};
	struct pg_array col[4];
	for (int k = 0; k < 4; k++)
		pg_array_init(&col[k]);
	for (int i = 0; i < 6; i++) {
		pg_array_text(&col[0], texts[i]);
		if (i == 2)
			pg_array_text(&col[1], NULL); /* a NULL in a bigint column */
		else
			pg_array_int(&col[1], ints[i]);
		pg_array_text(&col[2], NULL);
	}
	struct pg_params p;
	pg_params_init(&p);
	for (int k = 0; k < 4; k++)
		pg_param_array(&p, &col[k]);
	cr_assert_not(p.overflow);
	cr_expect_eq(p.fmts[0], 1, "a text column in binary");
	cr_expect_eq(p.fmts[1], 1, "a bigint column in binary");
	cr_expect_eq(p.fmts[2], 0, "a column of NULLs as a literal");
	cr_expect_eq(p.fmts[3], 0, "an empty column as a literal");
	PGresult *r = NULL;
	cr_assert_eq(pg_query(st->conn,
			      "SELECT t, t IS NULL, i, i IS NULL, n IS NULL,"
			      " (SELECT count(*) FROM unnest($4::bigint[]))"
			      " FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v(t, i, n)",
			      &p, &r, "test"),
		     STORE_OK);
	pg_params_free(&p);
	cr_assert_eq(PQntuples(r), 6);
	for (int i = 0; i < 6; i++) {
		if (texts[i] == NULL)
			cr_expect_str_eq(PQgetvalue(r, i, 1), "t", "row %d", i);
		else
			cr_expect_str_eq(PQgetvalue(r, i, 0), texts[i], "row %d", i);
		if (i == 2)
			cr_expect_str_eq(PQgetvalue(r, i, 3), "t");
		else
			cr_expect_eq(strtoll(PQgetvalue(r, i, 2), NULL, 10), ints[i], "row %d", i);
		cr_expect_str_eq(PQgetvalue(r, i, 4), "t", "row %d", i);
		cr_expect_str_eq(PQgetvalue(r, i, 5), "0");
	}
	PQclear(r);
}

/* A column of two types is refused before anything is sent. */
Test(postgres, array_column_of_two_types_is_refused)
{
	struct pg_array a;
	pg_array_init(&a);
	pg_array_int(&a, 1);
	pg_array_text(&a, "x");
	struct pg_params p;
	pg_params_init(&p);
	pg_param_array(&p, &a);
	cr_expect(p.overflow);
	pg_params_free(&p);
}

/* The state of st's session as the server sees it (pg_stat_activity). */
static void session_state(char *out, size_t len)
{
	char sql[160];
	snprintf(sql, sizeof sql, "SELECT state FROM pg_stat_activity WHERE pid = %d",
		 PQbackendPID(((struct pg *)st->conn)->db));
	PGconn *a = PQconnectdb(test_db_pg_admin());
	cr_assert_eq(PQstatus(a), CONNECTION_OK);
	PGresult *r = PQexec(a, sql);
	cr_assert_eq(PQntuples(r), 1);
	snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(a);
}

/* A commit group's transaction control costs two round trips, not four: the
 * BEGIN goes with the first SAVEPOINT, a RELEASE with the next SAVEPOINT
 * or not at all before the COMMIT; what the savepoints undo stays right. */
Test(postgres, begin_and_release_go_with_the_next_statement)
{
	char state[64];
	cr_assert_eq(store_begin(st), STORE_OK);
	session_state(state, sizeof state);
	cr_expect_str_eq(state, "idle", "the BEGIN waits for the first statement");
	cr_assert_eq(store_savepoint(st), STORE_OK);
	session_state(state, sizeof state);
	cr_expect_str_eq(state, "idle in transaction", "BEGIN and SAVEPOINT went together");
	test_db_add_endpoint(st, "ep_kept", true);
	cr_assert_eq(store_release(st), STORE_OK);
	/* The next op: RELEASE and SAVEPOINT in one round trip; its write is
	 * undone alone. */
	cr_assert_eq(store_savepoint(st), STORE_OK);
	test_db_add_endpoint(st, "ep_undone", true);
	cr_assert_eq(store_rollback_to(st), STORE_OK);
	cr_assert_eq(store_savepoint(st), STORE_OK);
	cr_assert_eq(store_release(st), STORE_OK);
	cr_assert_eq(store_commit(st), STORE_OK, "the COMMIT releases the last savepoint");
	session_state(state, sizeof state);
	cr_expect_str_eq(state, "idle");
	cr_expect(endpoint_exists("ep_kept"));
	cr_expect(!endpoint_exists("ep_undone"));
	/* A transaction that ran nothing commits and rolls back as nothing. */
	cr_assert_eq(store_begin(st), STORE_OK);
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert_eq(store_begin(st), STORE_OK);
	cr_assert_eq(store_rollback(st), STORE_OK);
	session_state(state, sizeof state);
	cr_expect_str_eq(state, "idle");
}
