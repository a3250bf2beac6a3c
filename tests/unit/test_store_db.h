/* test_store_db: a fresh, empty database for one store test, on the backend
 * the run asks for. Without HOOKD_TEST_PG_URL: a SQLite file in a temporary
 * directory of the test's own (test_tmpdir.h). With it (the admin URL of a
 * database of the binary's own, set by tests/pg/with-cluster.sh: in the run's
 * shared cluster or a throwaway one): a PostgreSQL schema
 * of the test's own in that cluster, which the URL store_open gets selects
 * through libpq's `options` (search_path), so every test starts on an
 * empty schema and hookd creates its tables there. Header-only: each store
 * test binary includes it; they link libpq through the store. */
#ifndef HOOKD_TEST_STORE_DB_H
#define HOOKD_TEST_STORE_DB_H

#include <criterion/criterion.h>
#include <ctype.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "test_tmpdir.h"

struct test_db {
	bool pg;
	char dir[4096];   /* SQLite: the test's temporary directory */
	char path[4200];  /* SQLite: the database file in it */
	char schema[96];  /* PostgreSQL: the test's schema */
	char url[8192];   /* what store_open takes */
};

/* The cluster's admin URL, or NULL for a SQLite run. */
static inline const char *test_db_pg_admin(void)
{
	const char *u = getenv("HOOKD_TEST_PG_URL");
	return u && *u ? u : NULL;
}

/* Runs sql (a command or a query) on the admin URL; the test fails if it
 * cannot. */
static inline void test_db_admin_exec(const char *sql)
{
	PGconn *c = PQconnectdb(test_db_pg_admin());
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "admin connect: %s", PQerrorMessage(c));
	PGresult *r = PQexec(c, sql);
	cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
		  "%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

/* Writes into out the admin URL with search_path set to schema. */
static inline void test_db_pg_url(const char *schema, char *out, size_t len)
{
	const char *admin = test_db_pg_admin();
	snprintf(out, len, "%s%soptions=-csearch_path%%3D%s", admin, strchr(admin, '?') ? "&" : "?",
		 schema);
}

/* Makes db: a new database named after prefix ("hookd-store"). */
static inline void test_db_make(struct test_db *db, const char *prefix)
{
	static unsigned counter;
	memset(db, 0, sizeof *db);
	if (!test_db_pg_admin()) {
		test_tmpdir_make(db->dir, sizeof db->dir, prefix);
		snprintf(db->path, sizeof db->path, "%s/hookd.db", db->dir);
		snprintf(db->url, sizeof db->url, "sqlite:%s", db->path);
		return;
	}
	db->pg = true;
	int n = snprintf(db->schema, sizeof db->schema, "t_%s_%d_%u", prefix, (int)getpid(),
			 counter++);
	for (int i = 0; i < n && db->schema[i]; i++) {
		if (!isalnum((unsigned char)db->schema[i]))
			db->schema[i] = '_';
	}
	char sql[160];
	snprintf(sql, sizeof sql, "CREATE SCHEMA %s", db->schema);
	test_db_admin_exec(sql);
	test_db_pg_url(db->schema, db->url, sizeof db->url);
}

/* Removes what test_db_make made (every store on it closed first). */
static inline void test_db_remove(struct test_db *db)
{
	if (db->pg) {
		char sql[160];
		snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", db->schema);
		test_db_admin_exec(sql);
	} else if (db->dir[0]) {
		test_tmpdir_remove(db->dir);
	}
	memset(db, 0, sizeof *db);
}

/* A store open on db (the test fails with the store's message if not). */
static inline struct store *test_db_open(const struct test_db *db)
{
	struct store *st = NULL;
	char err[256] = "";
	cr_assert_eq(store_open(db->url, &st, err, sizeof err), STORE_OK, "open: %s", err);
	return st;
}

/* Closes *st (NULL after) and removes db: the suites' teardown. */
static inline void test_db_close(struct test_db *db, struct store **st)
{
	store_close(*st);
	*st = NULL;
	test_db_remove(db);
}

/* Runs sql on db's own schema (PostgreSQL only): for a test that sets up
 * what the store API cannot. */
static inline void test_db_pg_exec(const struct test_db *db, const char *sql)
{
	PGconn *c = PQconnectdb(db->url);
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "connect: %s", PQerrorMessage(c));
	PGresult *r = PQexec(c, sql);
	cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
		  "%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

/* Inserts endpoint id (every event type, a fixed secret, enabled or not)
 * through st; the test fails if the store refuses it. */
static inline void test_db_add_endpoint(struct store *st, const char *id, bool enabled)
{
	struct endpoint e = {.url = "https://hooks.example.com/in",
			     .secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			     .enabled = enabled,
			     .created_at = 1,
			     .updated_at = 1};
	snprintf(e.id, sizeof e.id, "%s", id);
	cr_assert_eq(store_endpoint_insert(st, &e), STORE_OK, "%s", id);
}

#endif
