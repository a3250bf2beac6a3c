/* Unit tests for the store (store.c + a backend) on a fresh database per
 * test: the conformance suite of the backends (test_store_db.h picks
 * SQLite or PostgreSQL). */
#include <criterion/criterion.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sign.h"
#include "store.h"
#include "test_store_db.h"

/* The test's database (test_store_db.h: SQLite, or PostgreSQL when
 * HOOKD_TEST_PG_URL is set) and its store. Suite `store` is the backends'
 * conformance suite; suite `store_sqlite` holds what only SQLite has (the
 * file, WAL, pragmas, its old schema versions): tests/meson.build runs
 * only `store` on PostgreSQL. */
static struct test_db tdb;
#define db_path (tdb.path)
#define db_url (tdb.url)
static struct store *st;

static void setup(void)
{
	test_db_make(&tdb, "hookd-store");
	st = test_db_open(&tdb);
}

static void teardown(void)
{
	test_db_close(&tdb, &st);
}

TestSuite(store, .init = setup, .fini = teardown);
TestSuite(store_sqlite, .init = setup, .fini = teardown);

/* Builders for records; strings point at literals (the store copies). */
static struct endpoint mk_endpoint(const char *id, bool enabled, int64_t at)
{
	struct endpoint e = {.url = "https://hooks.example.com/in",
			     .description = "desc",
			     .secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			     .enabled = enabled,
			     .created_at = at,
			     .updated_at = at};
	snprintf(e.id, sizeof e.id, "%s", id);
	return e;
}

static void add_endpoint(const char *id, bool enabled)
{
	struct endpoint e = mk_endpoint(id, enabled, 1000);
	e.events = json_pack("[s]", "*");
	cr_assert_eq(store_endpoint_insert(st, &e), STORE_OK, "insert %s", id);
	json_decref(e.events);
}

static struct delivery mk_delivery(const char *id, const char *event_id, const char *endpoint_id,
				   enum delivery_status status, int64_t next_at)
{
	struct delivery d = {.event_type = "media.moderated",
			     .status = status,
			     .next_attempt_at = next_at,
			     .created_at = 500,
			     .updated_at = 500};
	snprintf(d.id, sizeof d.id, "%s", id);
	snprintf(d.event_id, sizeof d.event_id, "%s", event_id);
	snprintf(d.endpoint_id, sizeof d.endpoint_id, "%s", endpoint_id);
	return d;
}

static void add_delivery(const char *id, const char *event_id, const char *endpoint_id,
			 enum delivery_status status, int64_t next_at)
{
	struct delivery d = mk_delivery(id, event_id, endpoint_id, status, next_at);
	cr_assert_eq(store_delivery_insert(st, &d), STORE_OK, "insert %s", id);
}

static void add_attempt(const char *delivery_id, int n)
{
	struct attempt a = {.attempt = n, .at = 100 * n, .url = "https://hooks.example.com/in",
			    .status = 500, .duration_ms = 7, .error_code = "http_status",
			    .error_message = "HTTP 500"};
	snprintf(a.delivery_id, sizeof a.delivery_id, "%s", delivery_id);
	attempt_measure_none(&a);
	a.timings.connect_us = 250;
	a.timings.total_us = 7000;
	snprintf(a.remote_ip, sizeof a.remote_ip, "192.0.2.7");
	cr_assert_eq(store_attempt_insert(st, &a), STORE_OK);
}

/* Takes the database db (opened on db_path, the store closed) from version 8
 * back to 4: the attempts' timing columns (issue 11) dropped. */
static void downgrade_to_version_4(sqlite3 *db)
{
	/* 11 -> 10: deliveries_pending (the global page's index) again. */
	cr_assert_eq(sqlite3_exec(db,
				  "CREATE INDEX deliveries_pending ON deliveries(next_attempt_at, id)"
				  " WHERE status = 0",
				  NULL, NULL, NULL),
		     SQLITE_OK);
	/* 10 -> 9: no deliveries_pending_endpoint. */
	cr_assert_eq(sqlite3_exec(db, "DROP INDEX deliveries_pending_endpoint", NULL, NULL, NULL),
		     SQLITE_OK);
	/* 9 -> 8: no signatures column. */
	cr_assert_eq(sqlite3_exec(db, "ALTER TABLE endpoints DROP COLUMN signatures", NULL, NULL,
				  NULL),
		     SQLITE_OK);
	/* 8 -> 7: no endpoint_state. 7 -> 6: no idempotency_keys_created. 6 -> 5: no events_created.
	 * 5 -> 4: no timing columns. */
	cr_assert_eq(sqlite3_exec(db, "DROP TABLE endpoint_state", NULL, NULL, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "DROP INDEX idempotency_keys_created", NULL, NULL, NULL),
		     SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "DROP INDEX events_created", NULL, NULL, NULL), SQLITE_OK);
	static const char *const cols[] = {"dns_us", "connect_us", "tls_us", "ttfb_us",
					   "total_us", "remote_ip", "reused"};
	for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
		char sql[128];
		snprintf(sql, sizeof sql, "ALTER TABLE attempts DROP COLUMN %s", cols[i]);
		cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s: %s", sql,
			     sqlite3_errmsg(db));
	}
	cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version = 4", NULL, NULL, NULL), SQLITE_OK);
}

/* The one delivery q lists (the test fails if there are more or none). */
static struct delivery list_only(struct delivery_query q)
{
	struct delivery *arr = NULL;
	size_t n = 0;
	char next[STORE_CURSOR_MAX];
	cr_assert_eq(store_delivery_list(st, &q, &arr, &n, next), STORE_OK);
	cr_assert_eq(n, 1);
	struct delivery d = arr[0];
	free(arr);
	return d;
}

static size_t count_attempts(const char *delivery_id)
{
	struct attempt *arr = NULL;
	size_t n = 99;
	cr_assert_eq(store_attempt_list(st, delivery_id, &arr, &n), STORE_OK);
	for (size_t i = 0; i < n; i++)
		attempt_clear(&arr[i]);
	free(arr);
	return n;
}

static bool delivery_exists(const char *id)
{
	struct delivery d;
	int rc = store_delivery_get(st, id, &d);
	cr_assert(rc == STORE_OK || rc == STORE_NOTFOUND);
	delivery_clear(&d);
	return rc == STORE_OK;
}

static bool endpoint_exists(const char *id)
{
	struct endpoint e;
	int rc = store_endpoint_get(st, id, &e);
	cr_assert(rc == STORE_OK || rc == STORE_NOTFOUND);
	endpoint_clear(&e);
	return rc == STORE_OK;
}

/* --- opening ------------------------------------------------------------ */

Test(store_sqlite, open_creates_wal_schema_owner_only)
{
	struct stat sb;
	cr_assert_eq(stat(db_path, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600, "mode %o", sb.st_mode & 0777);

	sqlite3 *db;
	cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	sqlite3_stmt *s;
	cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
	cr_assert_str_eq((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
	cr_assert_eq(sqlite3_column_int(s, 0), 11);
	sqlite3_finalize(s);
	sqlite3_close(db);

	/* The write-ahead log inherits the mode. */
	add_endpoint("ep_1", true);
	char wal[4300];
	snprintf(wal, sizeof wal, "%s-wal", db_path);
	cr_assert_eq(stat(wal, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600, "wal mode %o", sb.st_mode & 0777);
}

static int page_size_of(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &s, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
	int n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

/* A new database gets 16 KiB pages (fewer WAL frames per commit); one made
 * with SQLite's default 4 KiB pages keeps them and works as before. */
Test(store_sqlite, new_database_pages_16k_old_ones_keep_theirs)
{
	cr_assert_eq(page_size_of(db_path), 16384);

	char old_path[4300], old_url[4400];
	snprintf(old_path, sizeof old_path, "%s/old.db", tdb.dir);
	snprintf(old_url, sizeof old_url, "sqlite:%s", old_path);
	sqlite3 *db;
	cr_assert_eq(sqlite3_open(old_path, &db), SQLITE_OK);
	/* No table: a file with another program's tables is refused. */
	cr_assert_eq(sqlite3_exec(db, "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL;",
				  NULL, NULL, NULL),
		     SQLITE_OK);
	sqlite3_close(db);
	struct store *old = NULL;
	char err[256] = "";
	cr_assert_eq(store_open(old_url, &old, err, sizeof err), STORE_OK, "%s", err);
	struct endpoint e = mk_endpoint("ep_old", true, 1);
	cr_assert_eq(store_endpoint_insert(old, &e), STORE_OK);
	store_close(old);
	cr_assert_eq(page_size_of(old_path), 4096);
}

Test(store_sqlite, open_bare_path)
{
	char err[256];
	struct store *s2 = NULL;

	/* A bare path opens the same database. */
	add_endpoint("ep_a", true);
	cr_assert_eq(store_open(db_path, &s2, err, sizeof err), STORE_OK, "%s", err);
	struct endpoint e;
	cr_assert_eq(store_endpoint_get(s2, "ep_a", &e), STORE_OK);
	endpoint_clear(&e);
	store_close(s2);
}

Test(store, open_url_forms)
{
	char err[256];
	struct store *s2 = NULL;

	static const struct {
		const char *url;
		const char *reason;
	} bad[] = {
		/* PostgreSQL URLs go to libpq: nothing listens on port 1. */
		{"postgres://u@127.0.0.1:1/hookd", "cannot connect to PostgreSQL"},
		{"postgresql://127.0.0.1:1/hookd", "cannot connect to PostgreSQL"},
		{"mysql://localhost/x", "unsupported"},
		{"", "empty"},
		{"sqlite:", "empty"},
		{"sqlite:/nonexistent-dir-hookd/x.db", "cannot"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		s2 = (struct store *)1;
		err[0] = '\0';
		cr_assert_eq(store_open(bad[i].url, &s2, err, sizeof err), STORE_ERROR, "%s",
			     bad[i].url);
		cr_assert_null(s2);
		cr_assert(strstr(err, bad[i].reason), "%s: err=%s", bad[i].url, err);
	}
}

Test(store_sqlite, open_refuses_newer_schema)
{
	store_close(st);
	sqlite3 *db;
	cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	char err[256] = "";
	st = (struct store *)1;
	cr_assert_eq(store_open(tdb.url, &st, err, sizeof err), STORE_ERROR);
	cr_assert_null(st);
	cr_assert(strstr(err, "newer"), "%s", err);
}

/* --- endpoints ---------------------------------------------------------- */

Test(store, endpoint_insert_get_conflict)
{
	struct endpoint e = mk_endpoint("ep_1", true, 1234);
	e.events = json_pack("[ss]", "media.moderated", "delivery.dead_lettered");
	cr_assert_eq(store_endpoint_insert(st, &e), STORE_OK);
	cr_assert_eq(store_endpoint_insert(st, &e), STORE_CONFLICT);

	struct endpoint got;
	cr_assert_eq(store_endpoint_get(st, "ep_1", &got), STORE_OK);
	cr_assert_str_eq(got.id, "ep_1");
	cr_assert_str_eq(got.url, e.url);
	cr_assert_str_eq(got.description, "desc");
	cr_assert_str_eq(got.secret, e.secret);
	cr_assert(json_equal(got.events, e.events));
	cr_assert(got.enabled);
	cr_assert_eq(got.created_at, 1234);
	cr_assert_eq(got.updated_at, 1234);
	endpoint_clear(&got);
	json_decref(e.events);

	cr_assert_eq(store_endpoint_get(st, "ep_nope", &got), STORE_NOTFOUND);
	endpoint_clear(&got);
}

Test(store, endpoint_defaults_for_null_fields)
{
	/* NULL events and description are stored as the defaults. */
	struct endpoint e = mk_endpoint("ep_d", false, 1);
	e.description = NULL;
	cr_assert_eq(store_endpoint_insert(st, &e), STORE_OK);
	struct endpoint got;
	cr_assert_eq(store_endpoint_get(st, "ep_d", &got), STORE_OK);
	cr_assert_str_eq(got.description, "");
	cr_assert_eq(json_array_size(got.events), 1);
	cr_assert_str_eq(json_string_value(json_array_get(got.events, 0)), "*");
	cr_assert(!got.enabled);
	endpoint_clear(&got);
}

Test(store, endpoint_update)
{
	add_endpoint("ep_1", true);
	struct endpoint e = mk_endpoint("ep_1", false, 5000);
	e.url = "https://new.example.com/hook";
	e.description = "changed";
	e.secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
	e.events = json_pack("[s]", "a.b");
	e.created_at = 1; /* ignored by update */
	e.updated_at = 6000;
	cr_assert_eq(store_endpoint_update(st, &e), STORE_OK);

	struct endpoint got;
	cr_assert_eq(store_endpoint_get(st, "ep_1", &got), STORE_OK);
	cr_assert_str_eq(got.url, "https://new.example.com/hook");
	cr_assert_str_eq(got.description, "changed");
	cr_assert_str_eq(got.secret, e.secret);
	cr_assert(json_equal(got.events, e.events));
	cr_assert(!got.enabled);
	cr_assert_eq(got.created_at, 1000);
	cr_assert_eq(got.updated_at, 6000);
	endpoint_clear(&got);

	/* An update that changes nothing still finds the row. */
	cr_assert_eq(store_endpoint_update(st, &e), STORE_OK);
	snprintf(e.id, sizeof e.id, "ep_missing");
	cr_assert_eq(store_endpoint_update(st, &e), STORE_NOTFOUND);
	json_decref(e.events);
}

Test(store, endpoint_delete_cascades)
{
	add_endpoint("ep_1", true);
	add_endpoint("ep_2", true);
	add_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_PENDING, 10);
	add_delivery("dlv_2", "evt_1", "ep_1", DELIVERY_DEAD, 0);
	add_delivery("dlv_3", "evt_1", "ep_2", DELIVERY_PENDING, 10);
	add_attempt("dlv_1", 1);
	add_attempt("dlv_2", 1);
	add_attempt("dlv_2", 2);
	add_attempt("dlv_3", 1);

	cr_assert_eq(store_endpoint_delete(st, "ep_1"), STORE_OK);
	cr_assert(!endpoint_exists("ep_1"));
	cr_assert(!delivery_exists("dlv_1"));
	cr_assert(!delivery_exists("dlv_2"));
	cr_assert_eq(count_attempts("dlv_1"), 0);
	cr_assert_eq(count_attempts("dlv_2"), 0);
	/* The other endpoint keeps everything. */
	cr_assert(endpoint_exists("ep_2"));
	cr_assert(delivery_exists("dlv_3"));
	cr_assert_eq(count_attempts("dlv_3"), 1);

	cr_assert_eq(store_endpoint_delete(st, "ep_1"), STORE_NOTFOUND);
}

Test(store_sqlite, endpoint_delete_is_atomic)
{
	/* Make the last step of the cascade fail (a trigger refuses to delete
	 * the deliveries): the endpoint and the attempts already deleted in
	 * that op must come back. */
	add_endpoint("ep_1", true);
	add_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_PENDING, 10);
	add_attempt("dlv_1", 1);
	sqlite3 *db;
	cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "CREATE TRIGGER no_del BEFORE DELETE ON deliveries"
				      " BEGIN SELECT RAISE(ABORT, 'refused'); END",
				  NULL, NULL, NULL),
		     SQLITE_OK);
	sqlite3_close(db);

	cr_assert_eq(store_endpoint_delete(st, "ep_1"), STORE_ERROR);
	cr_assert(endpoint_exists("ep_1"));
	cr_assert(delivery_exists("dlv_1"));
	cr_assert_eq(count_attempts("dlv_1"), 1);
}

Test(store, endpoint_list_pages_newest_first)
{
	char id[16];
	for (int i = 1; i <= 5; i++) {
		snprintf(id, sizeof id, "ep_%d", i);
		add_endpoint(id, true);
	}
	static const char *const want[] = {"ep_5", "ep_4", "ep_3", "ep_2", "ep_1"};
	size_t seen = 0;
	char cursor[STORE_CURSOR_MAX] = "";
	int pages = 0;
	do {
		struct endpoint *arr = NULL;
		size_t n = 0;
		char next[STORE_CURSOR_MAX];
		cr_assert_eq(store_endpoint_list(st, pages ? cursor : NULL, 2, &arr, &n, next),
			     STORE_OK);
		cr_assert_leq(n, 2);
		for (size_t i = 0; i < n; i++) {
			cr_assert_lt(seen, 5);
			cr_assert_str_eq(arr[i].id, want[seen++]);
			cr_assert_not_null(arr[i].secret);
			endpoint_clear(&arr[i]);
		}
		free(arr);
		if (next[0])
			cr_assert(store_cursor_valid(next), "cursor %s", next);
		snprintf(cursor, sizeof cursor, "%s", next);
		pages++;
	} while (cursor[0]);
	cr_assert_eq(seen, 5);
	cr_assert_eq(pages, 3);

	/* An exact fit has no next page. */
	struct endpoint *arr = NULL;
	size_t n = 0;
	char next[STORE_CURSOR_MAX];
	cr_assert_eq(store_endpoint_list(st, NULL, 5, &arr, &n, next), STORE_OK);
	cr_assert_eq(n, 5);
	cr_assert_str_eq(next, "");
	for (size_t i = 0; i < n; i++)
		endpoint_clear(&arr[i]);
	free(arr);

	/* Malformed cursor: an error, not a silent first page. */
	arr = (struct endpoint *)1;
	cr_assert_eq(store_endpoint_list(st, "c1x", 5, &arr, &n, next), STORE_ERROR);
	cr_assert_null(arr);
	cr_assert_eq(n, 0);
}

Test(store, endpoint_list_empty)
{
	struct endpoint *arr = NULL;
	size_t n = 7;
	char next[STORE_CURSOR_MAX] = "x";
	cr_assert_eq(store_endpoint_list(st, NULL, 100, &arr, &n, next), STORE_OK);
	cr_assert_eq(n, 0);
	cr_assert_str_eq(next, "");
	free(arr);
}

static int collect_ids(const struct endpoint *e, void *arg)
{
	char *buf = arg;
	strcat(buf, e->id);
	strcat(buf, ",");
	return 0;
}

static int stop_at_second(const struct endpoint *e, void *arg)
{
	int *calls = arg;
	(void)e;
	return ++*calls == 2 ? 42 : 0;
}

Test(store, endpoint_each)
{
	add_endpoint("ep_b", true);
	add_endpoint("ep_a", false);
	add_endpoint("ep_c", true);
	char buf[128] = "";
	cr_assert_eq(store_endpoint_each(st, collect_ids, buf), 0);
	cr_assert_str_eq(buf, "ep_b,ep_a,ep_c,"); /* insertion order, disabled included */
	int calls = 0;
	cr_assert_eq(store_endpoint_each(st, stop_at_second, &calls), 42);
	cr_assert_eq(calls, 2);
}

Test(store, endpoint_delivery_control_fields)
{
	/* Defaults: a zeroed struct stores no filters, {} headers, no rate
	 * limit, max_in_flight 10, no batch, no reason. */
	add_endpoint("ep_0", true);
	struct endpoint got;
	cr_assert_eq(store_endpoint_get(st, "ep_0", &got), STORE_OK);
	cr_assert_null(got.filters);
	cr_assert(json_is_object(got.headers) && json_object_size(got.headers) == 0);
	cr_assert_eq(got.rate_limit, 0);
	cr_assert_eq(got.max_in_flight, 10);
	cr_assert_eq(got.batch_max_events, 0);
	cr_assert_null(got.disabled_reason);
	cr_assert_eq(got.signatures, SIGN_SCHEMES_ALL);
	endpoint_clear(&got);

	struct endpoint e = mk_endpoint("ep_1", true, 1000);
	e.signatures = SIGN_SCHEME_STANDARD;
	e.events = json_pack("[s]", "media.moderated");
	e.filters = json_pack("{s:[s], s:[ss], s:{s:f}}", "events", "media.moderated", "status",
			      "rejected", "flagged", "confidence", ">=", 0.8);
	e.headers = json_pack("{s:s, s:s}", "X-Tenant", "acme", "X-Empty", "");
	e.rate_limit = 0.5;
	e.max_in_flight = 3;
	e.batch_max_events = 50;
	e.batch_max_wait_ms = 250;
	cr_assert_eq(store_endpoint_insert(st, &e), STORE_OK);
	cr_assert_eq(store_endpoint_get(st, "ep_1", &got), STORE_OK);
	cr_assert(json_equal(got.filters, e.filters));
	cr_assert(json_equal(got.headers, e.headers));
	cr_assert_float_eq(got.rate_limit, 0.5, 1e-12);
	cr_assert_eq(got.max_in_flight, 3);
	cr_assert_eq(got.batch_max_events, 50);
	cr_assert_eq(got.batch_max_wait_ms, 250);
	cr_assert_eq(got.signatures, SIGN_SCHEME_STANDARD);
	endpoint_clear(&got);

	/* update writes them all, the reason included. */
	json_decref(e.filters);
	e.filters = NULL;
	e.rate_limit = 0;
	e.batch_max_events = 0;
	e.disabled_reason = "410 Gone from the receiver";
	e.enabled = false;
	e.signatures = SIGN_SCHEME_PIXELPATROL | SIGN_SCHEME_WEBHOOK_SIGNATURE;
	cr_assert_eq(store_endpoint_update(st, &e), STORE_OK);
	cr_assert_eq(store_endpoint_get(st, "ep_1", &got), STORE_OK);
	cr_assert_null(got.filters);
	cr_assert_eq(got.rate_limit, 0);
	cr_assert_eq(got.batch_max_events, 0);
	cr_assert_eq(got.batch_max_wait_ms, 0);
	cr_assert_str_eq(got.disabled_reason, "410 Gone from the receiver");
	cr_assert_eq(got.signatures, SIGN_SCHEME_PIXELPATROL | SIGN_SCHEME_WEBHOOK_SIGNATURE);
	endpoint_clear(&got);
	json_decref(e.events);
	json_decref(e.headers);
}

Test(store, endpoint_disable)
{
	add_endpoint("ep_1", true);
	add_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_PENDING, 10);
	cr_assert_eq(store_endpoint_disable(st, "ep_1", "410 Gone from the receiver", 5000),
		     STORE_OK);
	struct endpoint got;
	cr_assert_eq(store_endpoint_get(st, "ep_1", &got), STORE_OK);
	cr_assert_not(got.enabled);
	cr_assert_str_eq(got.disabled_reason, "410 Gone from the receiver");
	cr_assert_eq(got.updated_at, 5000);
	cr_assert_eq(got.created_at, 1000);
	endpoint_clear(&got);
	/* Its deliveries wait: the window's reads skip disabled endpoints. */
	struct pending *p = NULL;
	size_t n = 9;
	cr_assert_eq(store_pending_page_endpoint(st, "ep_1", INT64_MIN, "", 10, &p, &n), STORE_OK);
	cr_assert_eq(n, 0);
	free(p);
	char(*ids)[ID_MAX] = NULL;
	cr_assert_eq(store_pending_endpoints(st, &ids, &n), STORE_OK);
	cr_assert_eq(n, 0);
	free(ids);
	cr_assert_eq(store_endpoint_disable(st, "ep_nope", "x", 1), STORE_NOTFOUND);
}

Test(store, delivery_set_batch)
{
	add_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_PENDING, 10);
	add_delivery("dlv_2", "evt_2", "ep_1", DELIVERY_PENDING, 10);
	add_delivery("dlv_3", "evt_3", "ep_1", DELIVERY_PENDING, 10);
	const char *ids[] = {"dlv_1", "dlv_3", "dlv_gone"};
	cr_assert_eq(store_delivery_set_batch(st, "bat_1", ids, 3), STORE_OK);
	struct delivery got;
	cr_assert_eq(store_delivery_get(st, "dlv_1", &got), STORE_OK);
	cr_assert_str_eq(got.batch_id, "bat_1");
	delivery_clear(&got);
	cr_assert_eq(store_delivery_get(st, "dlv_2", &got), STORE_OK);
	cr_assert_null(got.batch_id);
	delivery_clear(&got);
	/* Lists read it too. */
	got = list_only((struct delivery_query){.event_id = "evt_3", .status = -1, .limit = 10});
	cr_assert_str_eq(got.batch_id, "bat_1");
	delivery_clear(&got);
	/* A retry of the batch keeps it; NULL clears. */
	cr_assert_eq(store_delivery_set_batch(st, NULL, ids, 1), STORE_OK);
	cr_assert_eq(store_delivery_get(st, "dlv_1", &got), STORE_OK);
	cr_assert_null(got.batch_id);
	delivery_clear(&got);
}

/* docs/api.md#batches: a failed batch's members (batch_id set, a retry
 * after their last update) are marked in the pending page as waiting, and
 * read back together by any one of them; a row revived at its update time
 * (a dead-letter retry) or of another retry time is not one of them. */
Test(store, batch_members_of_a_waiting_batch)
{
	add_endpoint("ep_1", true);
	add_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_PENDING, 1000);
	add_delivery("dlv_2", "evt_2", "ep_1", DELIVERY_PENDING, 1000);
	add_delivery("dlv_3", "evt_3", "ep_1", DELIVERY_PENDING, 1000); /* in no batch */
	add_delivery("dlv_4", "evt_4", "ep_1", DELIVERY_PENDING, 2000); /* another time */
	add_delivery("dlv_5", "evt_5", "ep_1", DELIVERY_PENDING, 500);  /* revived */
	const char *ids[] = {"dlv_1", "dlv_2", "dlv_4", "dlv_5"};
	cr_assert_eq(store_delivery_set_batch(st, "bat_1", ids, 4), STORE_OK);
	struct pending *p = NULL;
	size_t n = 0;
	cr_assert_eq(store_pending_page_endpoint(st, "ep_1", INT64_MIN, "", 10, &p, &n), STORE_OK);
	cr_assert_eq(n, 5);
	int64_t seq1 = 0, seq3 = 0, seq5 = 0;
	for (size_t i = 0; i < n; i++) {
		bool want = strcmp(p[i].id, "dlv_1") == 0 || strcmp(p[i].id, "dlv_2") == 0 ||
			    strcmp(p[i].id, "dlv_4") == 0;
		cr_expect_eq(p[i].batch_wait, want, "%s", p[i].id);
		seq1 = strcmp(p[i].id, "dlv_1") == 0 ? p[i].seq : seq1;
		seq3 = strcmp(p[i].id, "dlv_3") == 0 ? p[i].seq : seq3;
		seq5 = strcmp(p[i].id, "dlv_5") == 0 ? p[i].seq : seq5;
	}
	free(p);
	char bid[ID_MAX];
	struct pending *m = NULL;
	cr_assert_eq(store_batch_members(st, seq1, "dlv_1", 1000, bid, &m, &n), STORE_OK);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(bid, "bat_1");
	cr_assert_str_eq(m[0].id, "dlv_1");
	cr_assert_str_eq(m[1].id, "dlv_2");
	cr_assert(m[0].batch_wait && m[1].batch_wait);
	free(m);
	cr_assert_eq(store_batch_members(st, seq3, "dlv_3", 1000, bid, &m, &n), STORE_OK);
	cr_assert_eq(n, 0);
	cr_assert_str_eq(bid, "");
	cr_assert_eq(store_batch_members(st, seq5, "dlv_5", 500, bid, &m, &n), STORE_OK);
	cr_assert_eq(n, 0);
}

static void add_event(const char *id, const char *type, int64_t at)
{
	struct event e = {.type = (char *)type, .data = "{}", .created_at = at};
	snprintf(e.id, sizeof e.id, "%s", id);
	cr_assert_eq(store_event_insert(st, &e), STORE_OK);
}

Test(store, endpoint_events_window)
{
	add_event("evt_1", "a", 100);
	add_event("evt_2", "b", 200);
	add_event("evt_3", "a", 300);
	add_event("evt_4", "a", 400);
	add_event("evt_x", "a", 250);
	add_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_SUCCEEDED, 0);
	add_delivery("dlv_2", "evt_2", "ep_1", DELIVERY_DEAD, 0);
	add_delivery("dlv_3", "evt_3", "ep_1", DELIVERY_PENDING, 0);
	add_delivery("dlv_3b", "evt_3", "ep_1", DELIVERY_SUCCEEDED, 0); /* a replay: once */
	add_delivery("dlv_4", "evt_4", "ep_1", DELIVERY_SUCCEEDED, 0);
	add_delivery("dlv_x", "evt_x", "ep_2", DELIVERY_SUCCEEDED, 0); /* not ep_1's */

	struct store_event_ref *r = NULL;
	size_t n = 0;
	cr_assert_eq(store_endpoint_events(st, "ep_1", 200, 400, 100, &r, &n), STORE_OK);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(r[0].id, "evt_2");
	cr_assert_str_eq(r[0].type, "b");
	cr_assert_eq(r[0].created_at, 200);
	cr_assert_str_eq(r[1].id, "evt_3");
	free(r);
	/* max caps it (oldest first). */
	cr_assert_eq(store_endpoint_events(st, "ep_1", 0, 1000, 3, &r, &n), STORE_OK);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(r[2].id, "evt_3");
	free(r);
	cr_assert_eq(store_endpoint_events(st, "ep_1", 500, 1000, 10, &r, &n), STORE_OK);
	cr_assert_eq(n, 0);
	cr_assert_null(r);
}

Test(store_sqlite, version_1_database_upgrades_in_place)
{
	/* Take the database back to version 1 (the issue 3, 4 and 5 columns,
	 * tables and indexes undone), with rows in it, and open it again. */
	add_endpoint("ep_1", false);
	add_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_PENDING, 10);
	add_delivery("dlv_2", "evt_2", "ep_1", DELIVERY_DEAD, 10);
	add_attempt("dlv_1", 1);
	add_attempt("dlv_1", 2);
	store_close(st);
	st = NULL;
	sqlite3 *db;
	cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	downgrade_to_version_4(db);
	/* Version 4 -> 3: the status index back, attempts a rowid table. */
	cr_assert_eq(sqlite3_exec(db,
				  "DROP INDEX deliveries_dead;"
				  "CREATE INDEX deliveries_status ON deliveries(status, seq);"
				  "ALTER TABLE attempts RENAME TO attempts_old;"
				  "CREATE TABLE attempts (delivery_id TEXT NOT NULL,"
				  " attempt INTEGER NOT NULL, at INTEGER NOT NULL, url TEXT NOT NULL,"
				  " status INTEGER NOT NULL DEFAULT 0,"
				  " duration_ms INTEGER NOT NULL DEFAULT 0, response_body TEXT,"
				  " headers TEXT, error_code TEXT, error_message TEXT,"
				  " PRIMARY KEY (delivery_id, attempt));"
				  "INSERT INTO attempts SELECT * FROM attempts_old;"
				  "DROP TABLE attempts_old;",
				  NULL, NULL, NULL),
		     SQLITE_OK, "%s", sqlite3_errmsg(db));
	static const char *const drop[] = {"endpoints DROP COLUMN filters",
					   "endpoints DROP COLUMN headers",
					   "endpoints DROP COLUMN rate_limit",
					   "endpoints DROP COLUMN max_in_flight",
					   "endpoints DROP COLUMN batch_max_events",
					   "endpoints DROP COLUMN batch_max_wait_ms",
					   "endpoints DROP COLUMN disabled_reason",
					   "deliveries DROP COLUMN batch_id",
					   "endpoints DROP COLUMN secret_previous",
					   "endpoints DROP COLUMN secret_previous_until",
					   "endpoints DROP COLUMN signing"};
	for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++) {
		char sql[128];
		snprintf(sql, sizeof sql, "ALTER TABLE %s", drop[i]);
		cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s: %s", sql,
			     sqlite3_errmsg(db));
	}
	cr_assert_eq(sqlite3_exec(db, "DROP TABLE api_keys", NULL, NULL, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	char err[256] = "";
	cr_assert_eq(store_open(tdb.url, &st, err, sizeof err), STORE_OK, "reopen: %s", err);
	struct endpoint got;
	cr_assert_eq(store_endpoint_get(st, "ep_1", &got), STORE_OK);
	cr_assert_str_eq(got.url, "https://hooks.example.com/in");
	cr_assert_not(got.enabled);
	cr_assert_null(got.filters);
	cr_assert_eq(json_object_size(got.headers), 0);
	cr_assert_eq(got.max_in_flight, 10);
	cr_assert_eq(got.batch_max_events, 0);
	cr_assert_null(got.disabled_reason);
	cr_assert_null(got.secret_previous);
	cr_assert_eq(got.secret_previous_until, 0);
	cr_assert_eq(got.signatures, SIGN_SCHEMES_ALL, "an old endpoint keeps all three schemes");
	endpoint_clear(&got);
	struct delivery d;
	cr_assert_eq(store_delivery_get(st, "dlv_1", &d), STORE_OK);
	cr_assert_null(d.batch_id);
	delivery_clear(&d);
	/* Version 4 rebuilt attempts and the status lists' indexes. */
	cr_assert_eq(count_attempts("dlv_1"), 2);
	d = list_only((struct delivery_query){.status = DELIVERY_DEAD, .limit = 10});
	cr_assert_str_eq(d.id, "dlv_2");
	delivery_clear(&d);
	sqlite3 *check;
	cr_assert_eq(sqlite3_open(db_path, &check), SQLITE_OK);
	sqlite3_stmt *s;
	cr_assert_eq(sqlite3_prepare_v2(check, "SELECT count(*) FROM sqlite_schema WHERE"
					       " name = 'deliveries_status'",
					-1, &s, NULL),
		     SQLITE_OK);
	cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
	cr_assert_eq(sqlite3_column_int(s, 0), 0);
	sqlite3_finalize(s);
	/* Version 5 made the events list's index. */
	cr_assert_eq(sqlite3_prepare_v2(check, "SELECT count(*) FROM sqlite_schema WHERE"
					       " name = 'events_created'",
					-1, &s, NULL),
		     SQLITE_OK);
	cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
	cr_assert_eq(sqlite3_column_int(s, 0), 1);
	sqlite3_finalize(s);
	sqlite3_close(check);
}

/* --- events and idempotency keys ---------------------------------------- */

Test(store, event_insert_get)
{
	struct event e = {.type = "media.moderated",
			  .data = "{ \"status\" : \"rejected\" , \"x\": 1.50 }",
			  .created_at = 777};
	snprintf(e.id, sizeof e.id, "evt_1");
	cr_assert_eq(store_event_insert(st, &e), STORE_OK);
	cr_assert_eq(store_event_insert(st, &e), STORE_CONFLICT);

	struct event got;
	cr_assert_eq(store_event_get(st, "evt_1", &got), STORE_OK);
	cr_assert_str_eq(got.id, "evt_1");
	cr_assert_str_eq(got.type, "media.moderated");
	cr_assert_str_eq(got.data, e.data); /* byte for byte */
	cr_assert_eq(got.created_at, 777);
	event_clear(&got);

	cr_assert_eq(store_event_get(st, "evt_2", &got), STORE_NOTFOUND);
	event_clear(&got);
}

Test(store, idempotency_keys)
{
	json_t *ids = NULL;
	cr_assert_eq(store_idem_get(st, "key-1", &ids), STORE_NOTFOUND);
	cr_assert_null(ids);

	json_t *put = json_pack("[ss]", "evt_1", "evt_2");
	cr_assert_eq(store_idem_put(st, "key-1", put, 1000), STORE_OK);
	cr_assert_eq(store_idem_put(st, "key-1", put, 2000), STORE_CONFLICT);
	cr_assert_eq(store_idem_get(st, "key-1", &ids), STORE_OK);
	cr_assert(json_equal(ids, put));
	json_decref(ids);
	json_decref(put);

	/* Keys are exact: case matters. */
	cr_assert_eq(store_idem_get(st, "KEY-1", &ids), STORE_NOTFOUND);
}

/* --- deliveries and attempts -------------------------------------------- */

Test(store, delivery_insert_get_update)
{
	struct delivery d = mk_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_PENDING, 9000);
	cr_assert_eq(store_delivery_insert(st, &d), STORE_OK);
	int64_t seq = d.seq; /* the row the insert made */
	cr_assert_gt(seq, 0);
	cr_assert_eq(store_delivery_insert(st, &d), STORE_CONFLICT);
	cr_assert_eq(d.seq, 0);
	d.seq = seq;

	struct delivery got;
	cr_assert_eq(store_delivery_get(st, "dlv_1", &got), STORE_OK);
	cr_assert_str_eq(got.id, "dlv_1");
	cr_assert_str_eq(got.event_id, "evt_1");
	cr_assert_str_eq(got.endpoint_id, "ep_1");
	cr_assert_str_eq(got.event_type, "media.moderated");
	cr_assert_eq(got.status, DELIVERY_PENDING);
	cr_assert_eq(got.attempt_count, 0);
	cr_assert_eq(got.next_attempt_at, 9000);
	cr_assert_eq(got.created_at, 500);
	cr_assert_eq(got.last_status, 0);
	cr_assert_str_eq(got.last_error, "");
	delivery_clear(&got);

	d.status = DELIVERY_DEAD;
	d.attempt_count = 5;
	d.schedule_index = 5;
	d.next_attempt_at = 0;
	d.updated_at = 9999;
	d.last_status = 503;
	model_code_set(d.last_error, "http_status");
	d.created_at = 1; /* not written by update_state */
	cr_assert_eq(store_delivery_update_state(st, &d), STORE_OK);
	cr_assert_eq(store_delivery_get(st, "dlv_1", &got), STORE_OK);
	cr_assert_eq(got.status, DELIVERY_DEAD);
	cr_assert_eq(got.attempt_count, 5);
	cr_assert_eq(got.schedule_index, 5);
	cr_assert_eq(got.next_attempt_at, 0);
	cr_assert_eq(got.updated_at, 9999);
	cr_assert_eq(got.created_at, 500);
	cr_assert_eq(got.last_status, 503);
	cr_assert_str_eq(got.last_error, "http_status");
	delivery_clear(&got);

	/* That update went by seq; by id alone (seq unknown) finds the row
	 * too. */
	d.seq = 0;
	d.attempt_count = 6;
	cr_assert_eq(store_delivery_update_state(st, &d), STORE_OK);
	cr_assert_eq(store_delivery_get(st, "dlv_1", &got), STORE_OK);
	cr_assert_eq(got.attempt_count, 6);
	cr_assert_eq(got.seq, seq);
	delivery_clear(&got);

	snprintf(d.id, sizeof d.id, "dlv_missing");
	cr_assert_eq(store_delivery_update_state(st, &d), STORE_NOTFOUND);
	cr_assert_eq(store_delivery_get(st, "dlv_missing", &got), STORE_NOTFOUND);
	delivery_clear(&got);
	/* A seq whose row has another id (the delivery was deleted and its
	 * seq given to a new row) changes nothing. */
	d.seq = seq;
	d.attempt_count = 7;
	cr_assert_eq(store_delivery_update_state(st, &d), STORE_NOTFOUND);
	cr_assert_eq(store_delivery_get(st, "dlv_1", &got), STORE_OK);
	cr_assert_eq(got.attempt_count, 6);
	delivery_clear(&got);
}

Test(store, attempts_oldest_first)
{
	add_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_PENDING, 0);
	struct attempt a2 = {.attempt = 2, .at = 200, .url = "https://b.test/", .status = 200,
			     .duration_ms = 12, .response_body = "ok"};
	snprintf(a2.delivery_id, sizeof a2.delivery_id, "dlv_1");
	a2.headers = "{\"content-type\":\"text/plain\"}";
	struct attempt a1 = {.attempt = 1, .at = 100, .url = "https://a.test/",
			     .duration_ms = 30000, .error_code = "timeout",
			     .error_message = "no response"};
	snprintf(a1.delivery_id, sizeof a1.delivery_id, "dlv_1");
	cr_assert_eq(store_attempt_insert(st, &a2), STORE_OK);
	cr_assert_eq(store_attempt_insert(st, &a1), STORE_OK);
	cr_assert_eq(store_attempt_insert(st, &a1), STORE_CONFLICT);

	struct attempt *arr = NULL;
	size_t n = 0;
	cr_assert_eq(store_attempt_list(st, "dlv_1", &arr, &n), STORE_OK);
	cr_assert_eq(n, 2);
	cr_assert_eq(arr[0].attempt, 1);
	cr_assert_str_eq(arr[0].url, "https://a.test/");
	cr_assert_eq(arr[0].status, 0);
	cr_assert_eq(arr[0].duration_ms, 30000);
	cr_assert_null(arr[0].response_body);
	cr_assert_null(arr[0].headers);
	cr_assert_str_eq(arr[0].error_code, "timeout");
	cr_assert_str_eq(arr[0].error_message, "no response");
	cr_assert_eq(arr[1].attempt, 2);
	cr_assert_eq(arr[1].at, 200);
	cr_assert_eq(arr[1].status, 200);
	cr_assert_str_eq(arr[1].response_body, "ok");
	cr_assert_str_eq(arr[1].headers, a2.headers);
	cr_assert_str_eq(arr[1].error_code, "");
	for (size_t i = 0; i < n; i++)
		attempt_clear(&arr[i]);
	free(arr);

	cr_assert_eq(count_attempts("dlv_other"), 0);
}

/* Issue 11: an attempt's phases, address and reuse come back as stored; a
 * phase that did not happen stays none (not 0), and an attempt that never
 * ran (nothing measured) comes back with nothing measured. */
Test(store, attempt_timings_round_trip)
{
	add_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_SUCCEEDED, 0);
	struct attempt fresh = {.attempt = 1, .at = 100, .url = "https://a.test/",
				.status = 200, .duration_ms = 3,
				.timings = {.dns_us = 0, .connect_us = 1303, .tls_us = 9043,
					    .ttfb_us = 43138, .total_us = 52396},
				.remote_ip = "2001:db8::1",
				.reused = false};
	struct attempt kept = {.attempt = 2, .at = 200, .url = "https://a.test/", .status = 200,
			       .duration_ms = 1};
	attempt_measure_none(&kept);
	kept.timings.ttfb_us = 292;
	kept.timings.total_us = 412;
	snprintf(kept.remote_ip, sizeof kept.remote_ip, "127.0.0.1");
	kept.reused = true;
	struct attempt never = {.attempt = 3, .at = 300, .url = "http://a.test/",
				.error_code = "blocked_destination", .error_message = "no"};
	attempt_measure_none(&never);
	struct attempt *in[] = {&fresh, &kept, &never};
	for (size_t i = 0; i < 3; i++) {
		snprintf(in[i]->delivery_id, sizeof in[i]->delivery_id, "dlv_1");
		cr_assert_eq(store_attempt_insert(st, in[i]), STORE_OK);
	}

	struct attempt *arr = NULL;
	size_t n = 0;
	cr_assert_eq(store_attempt_list(st, "dlv_1", &arr, &n), STORE_OK);
	cr_assert_eq(n, 3);
	for (size_t i = 0; i < 3; i++) {
		const struct attempt_timings *w = &in[i]->timings, *g = &arr[i].timings;
		cr_expect_eq(g->dns_us, w->dns_us, "attempt %zu dns", i + 1);
		cr_expect_eq(g->connect_us, w->connect_us, "attempt %zu connect", i + 1);
		cr_expect_eq(g->tls_us, w->tls_us, "attempt %zu tls", i + 1);
		cr_expect_eq(g->ttfb_us, w->ttfb_us, "attempt %zu ttfb", i + 1);
		cr_expect_eq(g->total_us, w->total_us, "attempt %zu total", i + 1);
		cr_expect_str_eq(arr[i].remote_ip, in[i]->remote_ip, "attempt %zu", i + 1);
		cr_expect_eq(arr[i].reused, in[i]->reused, "attempt %zu reused", i + 1);
		attempt_clear(&arr[i]);
	}
	free(arr);
}

/* Text of a receiver's that is not valid UTF-8 is stored all the same
 * (dispatch_http.c cleans what it captures; this is the store's own
 * guard): the valid parts come back as they were, and on PostgreSQL, whose
 * text must be UTF-8, each bad byte as '?'. */
Test(store, attempt_text_not_utf8_is_stored)
{
	add_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_DEAD, 0);
	struct attempt a = {.attempt = 1, .at = 100, .url = "https://a.test/", .status = 500,
			    .duration_ms = 1, .response_body = "ok\xff\xc3(\xe2\x82\xac",
			    .headers = "{\"x\":\"\xc3\xa9\"}", .error_code = "http_status",
			    .error_message = "bad \x80"};
	snprintf(a.delivery_id, sizeof a.delivery_id, "dlv_1");
	attempt_measure_none(&a);
	cr_assert_eq(store_attempt_insert(st, &a), STORE_OK);
	struct attempt *arr = NULL;
	size_t n = 0;
	cr_assert_eq(store_attempt_list(st, "dlv_1", &arr, &n), STORE_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(arr[0].headers, a.headers);
	if (tdb.pg) {
		cr_assert_str_eq(arr[0].response_body, "ok?" "?(\xe2\x82\xac");
		cr_assert_str_eq(arr[0].error_message, "bad ?");
	} else {
		cr_assert_str_eq(arr[0].response_body, a.response_body);
		cr_assert_str_eq(arr[0].error_message, a.error_message);
	}
	attempt_clear(&arr[0]);
	free(arr);
}

/* --- the set-based writes (store_event_insert_many, store_delivery_insert_many,
 * store_record_results): the same rows and answers as the one-row calls ---- */

Test(store, event_insert_many_marks_each_conflict)
{
	struct event old = {.type = "a", .data = "{}", .created_at = 1};
	snprintf(old.id, sizeof old.id, "evt_0");
	cr_assert_eq(store_event_insert(st, &old), STORE_OK);
	/* Texts an array literal must carry byte for byte. */
	const char *data[] = {"{\"q\":\"a\\\"b\",\"s\":\"c\\\\d\"}", "{}", "{\"x\":\"{,} NULL \\u00e9 \xc3\xa9\"}",
			      "{\"y\":\"\\n\"}", "[]"};
	const char *ids[] = {"evt_1", "evt_0", "evt_2", "evt_1", "evt_3"};
	struct event evs[5];
	for (int i = 0; i < 5; i++) {
		evs[i] = (struct event){.type = i == 2 ? "NULL" : "t.x", .data = (char *)data[i],
					.created_at = 10 + i};
		snprintf(evs[i].id, sizeof evs[i].id, "%s", ids[i]);
	}
	int rcs[5];
	cr_assert_eq(store_event_insert_many(st, evs, 5, rcs), STORE_OK);
	const int want[] = {STORE_OK, STORE_CONFLICT, STORE_OK, STORE_CONFLICT, STORE_OK};
	for (int i = 0; i < 5; i++)
		cr_expect_eq(rcs[i], want[i], "item %d", i);
	const int stored[] = {0, 2, 4};
	for (int k = 0; k < 3; k++) {
		struct event got;
		const struct event *w = &evs[stored[k]];
		cr_assert_eq(store_event_get(st, w->id, &got), STORE_OK);
		cr_expect_str_eq(got.type, w->type);
		cr_expect_str_eq(got.data, w->data);
		cr_expect_eq(got.created_at, w->created_at);
		event_clear(&got);
	}
	struct event got;
	cr_assert_eq(store_event_get(st, "evt_0", &got), STORE_OK);
	cr_expect_str_eq(got.type, "a"); /* the conflict changed nothing */
	event_clear(&got);
}

Test(store, delivery_insert_many_sets_each_seq)
{
	struct delivery ds[3];
	for (int i = 0; i < 3; i++) {
		char id[16];
		snprintf(id, sizeof id, "dlv_%d", 3 - i); /* not in id order */
		ds[i] = mk_delivery(id, "evt_1", "ep_1", DELIVERY_PENDING, 100 + i);
	}
	model_code_set(ds[1].last_error, "x\"y");
	cr_assert_eq(store_delivery_insert_many(st, ds, 3), STORE_OK);
	for (int i = 0; i < 3; i++) {
		cr_assert_gt(ds[i].seq, i > 0 ? ds[i - 1].seq : 0, "row %d", i);
		struct delivery got;
		cr_assert_eq(store_delivery_get(st, ds[i].id, &got), STORE_OK);
		cr_expect_eq(got.seq, ds[i].seq);
		cr_expect_eq(got.next_attempt_at, 100 + i);
		cr_expect_str_eq(got.event_type, "media.moderated");
		cr_expect_str_eq(got.last_error, ds[i].last_error);
		delivery_clear(&got);
	}
	struct delivery again[2] = {mk_delivery("dlv_9", "evt_1", "ep_1", DELIVERY_PENDING, 0),
				    mk_delivery("dlv_2", "evt_1", "ep_1", DELIVERY_PENDING, 0)};
	cr_assert_eq(store_delivery_insert_many(st, again, 2), STORE_CONFLICT);
}

/* Three results: two rows there (one by seq, one by id alone) and one
 * deleted meanwhile; then the same attempt again is a conflict. */
Test(store, record_results_writes_states_and_attempts)
{
	struct delivery d1 = mk_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_PENDING, 0);
	struct delivery d2 = mk_delivery("dlv_2", "evt_1", "ep_1", DELIVERY_PENDING, 0);
	cr_assert_eq(store_delivery_insert(st, &d1), STORE_OK);
	cr_assert_eq(store_delivery_insert(st, &d2), STORE_OK);
	struct delivery d3 = mk_delivery("dlv_gone", "evt_1", "ep_1", DELIVERY_PENDING, 0);
	d1.status = DELIVERY_SUCCEEDED;
	d1.attempt_count = 1;
	d1.last_status = 200;
	d2.seq = 0;
	d2.attempt_count = 1;
	d2.next_attempt_at = 5000;
	d2.last_status = 500;
	model_code_set(d2.last_error, "http_status");
	struct attempt a[3];
	const struct delivery *dl[3] = {&d1, &d2, &d3};
	for (int i = 0; i < 3; i++) {
		a[i] = (struct attempt){.attempt = 1, .at = 100, .url = "https://a.test/",
					.status = 200 + 300 * (i == 1), .duration_ms = 4,
					.response_body = "b\"\\\n{,}\xff", .headers = "{\"k\":\"v\"}"};
		attempt_measure_none(&a[i]);
		snprintf(a[i].delivery_id, sizeof a[i].delivery_id, "%s", dl[i]->id);
	}
	a[0].timings.total_us = 900;
	a[0].reused = true;
	snprintf(a[0].remote_ip, sizeof a[0].remote_ip, "127.0.0.1");
	struct store_result rs[3] = {{.dl = &d1, .a = &a[0]}, {.dl = &d2, .a = &a[1]},
				     {.dl = &d3, .a = &a[2]}};
	cr_assert_eq(store_record_results(st, rs, 3), STORE_OK);
	cr_expect(!rs[0].missing && !rs[1].missing && rs[2].missing);
	struct delivery got;
	cr_assert_eq(store_delivery_get(st, "dlv_2", &got), STORE_OK);
	cr_expect_eq(got.next_attempt_at, 5000);
	cr_expect_str_eq(got.last_error, "http_status");
	delivery_clear(&got);
	struct attempt *arr = NULL;
	size_t n = 0;
	cr_assert_eq(store_attempt_list(st, "dlv_1", &arr, &n), STORE_OK);
	cr_assert_eq(n, 1);
	cr_expect_str_eq(arr[0].response_body, tdb.pg ? "b\"\\\n{,}?" : a[0].response_body);
	cr_expect_eq(arr[0].timings.total_us, 900);
	cr_expect_eq(arr[0].timings.dns_us, ATTEMPT_TIMING_NONE);
	cr_expect(arr[0].reused);
	cr_expect_str_eq(arr[0].remote_ip, "127.0.0.1");
	attempt_clear(&arr[0]);
	free(arr);
	cr_assert_eq(store_attempt_list(st, "dlv_gone", &arr, &n), STORE_OK);
	cr_expect_eq(n, 0);
	free(arr);
	cr_assert_eq(store_record_results(st, rs, 2), STORE_CONFLICT);
}

/* A delivery listed twice (not what the dispatcher sends, but allowed):
 * both attempts go in, the later state wins. */
Test(store, record_results_same_delivery_twice)
{
	struct delivery d1 = mk_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_PENDING, 0);
	cr_assert_eq(store_delivery_insert(st, &d1), STORE_OK);
	struct delivery later = d1;
	d1.attempt_count = 1;
	later.attempt_count = 2;
	struct attempt a[2];
	for (int i = 0; i < 2; i++) {
		a[i] = (struct attempt){.attempt = i + 1, .at = 100, .url = "https://a.test/"};
		attempt_measure_none(&a[i]);
		snprintf(a[i].delivery_id, sizeof a[i].delivery_id, "dlv_1");
	}
	struct store_result rs[2] = {{.dl = &d1, .a = &a[0]}, {.dl = &later, .a = &a[1]}};
	cr_assert_eq(store_record_results(st, rs, 2), STORE_OK);
	struct delivery got;
	cr_assert_eq(store_delivery_get(st, "dlv_1", &got), STORE_OK);
	cr_expect_eq(got.attempt_count, 2);
	delivery_clear(&got);
	struct attempt *arr = NULL;
	size_t n = 0;
	cr_assert_eq(store_attempt_list(st, "dlv_1", &arr, &n), STORE_OK);
	cr_expect_eq(n, 2);
	for (size_t i = 0; i < n; i++)
		attempt_clear(&arr[i]);
	free(arr);
}

/* A version 4 database (before issue 11) gains the timing columns in place:
 * its attempts read back with nothing measured, new ones keep theirs. */
Test(store_sqlite, version_4_database_gains_attempt_timings)
{
	add_endpoint("ep_1", true);
	add_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_PENDING, 10);
	add_attempt("dlv_1", 1);
	store_close(st);
	st = NULL;
	sqlite3 *db;
	cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	downgrade_to_version_4(db);
	sqlite3_close(db);

	char err[256] = "";
	cr_assert_eq(store_open(tdb.url, &st, err, sizeof err), STORE_OK, "reopen: %s", err);
	add_attempt("dlv_1", 2);
	struct attempt *arr = NULL;
	size_t n = 0;
	cr_assert_eq(store_attempt_list(st, "dlv_1", &arr, &n), STORE_OK);
	cr_assert_eq(n, 2);
	/* The old row: its other fields intact, no timings, no address. */
	cr_assert_eq(arr[0].status, 500);
	cr_assert_str_eq(arr[0].error_code, "http_status");
	cr_assert_eq(arr[0].timings.dns_us, ATTEMPT_TIMING_NONE);
	cr_assert_eq(arr[0].timings.connect_us, ATTEMPT_TIMING_NONE);
	cr_assert_eq(arr[0].timings.tls_us, ATTEMPT_TIMING_NONE);
	cr_assert_eq(arr[0].timings.ttfb_us, ATTEMPT_TIMING_NONE);
	cr_assert_eq(arr[0].timings.total_us, ATTEMPT_TIMING_NONE);
	cr_assert_str_eq(arr[0].remote_ip, "");
	cr_assert_not(arr[0].reused);
	/* A row written after the upgrade keeps what add_attempt gave it. */
	cr_assert_eq(arr[1].timings.connect_us, 250);
	cr_assert_eq(arr[1].timings.total_us, 7000);
	cr_assert_eq(arr[1].timings.dns_us, ATTEMPT_TIMING_NONE);
	cr_assert_str_eq(arr[1].remote_ip, "192.0.2.7");
	for (size_t i = 0; i < n; i++)
		attempt_clear(&arr[i]);
	free(arr);
	sqlite3 *check;
	cr_assert_eq(sqlite3_open(db_path, &check), SQLITE_OK);
	sqlite3_stmt *s;
	cr_assert_eq(sqlite3_prepare_v2(check, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
	cr_assert_eq(sqlite3_column_int(s, 0), 11);
	sqlite3_finalize(s);
	sqlite3_close(check);
}

/* Reads every page of q into a comma-joined id string. */
static void list_all(struct delivery_query q, char *buf, size_t buflen, int *pages)
{
	char cursor[STORE_CURSOR_MAX] = "";
	buf[0] = '\0';
	*pages = 0;
	do {
		struct delivery *arr = NULL;
		size_t n = 0;
		char next[STORE_CURSOR_MAX];
		q.cursor = cursor[0] ? cursor : NULL;
		cr_assert_eq(store_delivery_list(st, &q, &arr, &n, next), STORE_OK);
		cr_assert_leq(n, (size_t)q.limit);
		for (size_t i = 0; i < n; i++) {
			strncat(buf, arr[i].id, buflen - strlen(buf) - 1);
			strncat(buf, ",", buflen - strlen(buf) - 1);
			delivery_clear(&arr[i]);
		}
		free(arr);
		snprintf(cursor, sizeof cursor, "%s", next);
		(*pages)++;
		cr_assert_lt(*pages, 100);
	} while (cursor[0]);
}

Test(store, delivery_list_filters_and_pages)
{
	/* Inserted in this order, so newest first is the reverse. */
	add_delivery("d1", "evt_a", "ep_1", DELIVERY_PENDING, 1);
	add_delivery("d2", "evt_a", "ep_2", DELIVERY_DEAD, 0);
	add_delivery("d3", "evt_b", "ep_1", DELIVERY_SUCCEEDED, 0);
	add_delivery("d4", "evt_b", "ep_2", DELIVERY_PENDING, 1);
	add_delivery("d5", "evt_c", "ep_1", DELIVERY_DEAD, 0);
	add_delivery("d6", "evt_c", "ep_2", DELIVERY_DEAD, 0);
	add_delivery("d7", "evt_d", "ep_1", DELIVERY_DEAD, 0);

	static const struct {
		const char *endpoint_id;
		const char *event_id;
		int status;
		int limit;
		const char *want;
		int pages;
	} table[] = {
		{NULL, NULL, -1, 100, "d7,d6,d5,d4,d3,d2,d1,", 1},
		{NULL, NULL, -1, 3, "d7,d6,d5,d4,d3,d2,d1,", 3},
		{NULL, NULL, -1, 7, "d7,d6,d5,d4,d3,d2,d1,", 1},
		{NULL, NULL, -1, 1, "d7,d6,d5,d4,d3,d2,d1,", 7},
		{"ep_1", NULL, -1, 2, "d7,d5,d3,d1,", 2},
		{"ep_2", NULL, -1, 2, "d6,d4,d2,", 2},
		{NULL, "evt_c", -1, 1, "d6,d5,", 2},
		{NULL, NULL, DELIVERY_DEAD, 2, "d7,d6,d5,d2,", 2},
		{NULL, NULL, DELIVERY_PENDING, 5, "d4,d1,", 1},
		{NULL, NULL, DELIVERY_SUCCEEDED, 5, "d3,", 1},
		{"ep_1", NULL, DELIVERY_DEAD, 1, "d7,d5,", 2},
		{"ep_2", "evt_a", -1, 10, "d2,", 1},
		{"ep_2", "evt_a", DELIVERY_PENDING, 10, "", 1},
		{"ep_1", "evt_c", DELIVERY_DEAD, 10, "d5,", 1},
		{"ep_none", NULL, -1, 10, "", 1},
		{"ep_1", NULL, DELIVERY_PENDING, 10, "d1,", 1},
		{"ep_1", NULL, DELIVERY_SUCCEEDED, 10, "d3,", 1},
		{"ep_2", NULL, DELIVERY_PENDING, 1, "d4,", 1},
		{NULL, "evt_c", DELIVERY_DEAD, 1, "d6,d5,", 2},
		{NULL, "evt_a", DELIVERY_PENDING, 10, "d1,", 1},
		{NULL, "evt_b", DELIVERY_SUCCEEDED, 10, "d3,", 1},
		{"ep_1", "evt_b", DELIVERY_SUCCEEDED, 10, "d3,", 1},
	};
	/* The rows above cover all 16 filter combinations (each has its own SQL). */
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		struct delivery_query q = {.endpoint_id = table[i].endpoint_id,
					   .event_id = table[i].event_id,
					   .status = table[i].status,
					   .limit = table[i].limit};
		char buf[256];
		int pages;
		list_all(q, buf, sizeof buf, &pages);
		cr_assert_str_eq(buf, table[i].want, "row %zu", i);
		cr_assert_eq(pages, table[i].pages, "row %zu", i);
	}

	/* Bad status filter and malformed cursor: errors. */
	struct delivery *arr = NULL;
	size_t n = 0;
	char next[STORE_CURSOR_MAX];
	struct delivery_query q = {.status = 3, .limit = 10};
	cr_assert_eq(store_delivery_list(st, &q, &arr, &n, next), STORE_ERROR);
	q.status = -1;
	q.cursor = "12";
	cr_assert_eq(store_delivery_list(st, &q, &arr, &n, next), STORE_ERROR);
	cr_assert_null(arr);
}

/* Moves the deliveries matching `where` (SQL) up by `by` in seq, opening
 * the gaps deleted rows leave, on either backend. PostgreSQL's seq is an
 * identity column: the UPDATE needs it BY DEFAULT for a moment. */
static void shift_seq(const char *where, long long by)
{
	char sql[512];
	if (tdb.pg) {
		snprintf(sql, sizeof sql,
			 "ALTER TABLE deliveries ALTER COLUMN seq SET GENERATED BY DEFAULT;"
			 " UPDATE deliveries SET seq = seq + %lld WHERE %s;"
			 " ALTER TABLE deliveries ALTER COLUMN seq SET GENERATED ALWAYS",
			 by, where);
		test_db_pg_exec(&tdb, sql);
		return;
	}
	sqlite3 *db;
	cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	snprintf(sql, sizeof sql, "UPDATE deliveries SET seq = seq + %lld WHERE %s", by, where);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_close(db);
}

/* A list by status alone walks seq in windows (STATUS_SCAN_ROWS, 262,144
 * rows): rows further apart than that come back on later pages, each
 * page short but with a cursor, and nothing is skipped or repeated. */
Test(store, delivery_list_by_status_walks_seq_in_windows)
{
	add_delivery("old_p", "evt_1", "ep_1", DELIVERY_PENDING, 1);
	add_delivery("old_s", "evt_1", "ep_2", DELIVERY_SUCCEEDED, 0);
	add_delivery("mid_s", "evt_2", "ep_1", DELIVERY_SUCCEEDED, 0);
	add_delivery("new_p", "evt_3", "ep_1", DELIVERY_PENDING, 1);
	add_delivery("new_s", "evt_3", "ep_2", DELIVERY_SUCCEEDED, 0);
	/* Open gaps of a million rows (deleted rows leave such gaps). */
	shift_seq("id IN ('new_p', 'new_s')", 2000000);
	shift_seq("id = 'mid_s'", 1000000);

	char buf[256];
	int pages;
	struct delivery_query q = {.status = DELIVERY_PENDING, .limit = 10};
	list_all(q, buf, sizeof buf, &pages);
	cr_assert_str_eq(buf, "new_p,old_p,");
	/* Page 1 ends with its window; page 2 walks the empty window of
	 * mid_s on to old_p's. */
	cr_assert_eq(pages, 2);
	q.status = DELIVERY_SUCCEEDED;
	list_all(q, buf, sizeof buf, &pages);
	cr_assert_str_eq(buf, "new_s,mid_s,old_s,");
	cr_assert_eq(pages, 3);
	q.limit = 1;
	list_all(q, buf, sizeof buf, &pages);
	cr_assert_str_eq(buf, "new_s,mid_s,old_s,");

	/* The first page alone: one row and a cursor that leads on. */
	struct delivery *arr = NULL;
	size_t n = 0;
	char next[STORE_CURSOR_MAX];
	q.status = DELIVERY_PENDING;
	q.limit = 10;
	cr_assert_eq(store_delivery_list(st, &q, &arr, &n, next), STORE_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(arr[0].id, "new_p");
	cr_assert_neq(next[0], '\0');
	delivery_clear(&arr[0]);
	free(arr);
}

Test(store, delivery_list_full_fields)
{
	struct delivery d = mk_delivery("dlv_f", "evt_f", "ep_f", DELIVERY_DEAD, 0);
	d.attempt_count = 3;
	d.last_status = 404;
	model_code_set(d.last_error, "http_status");
	cr_assert_eq(store_delivery_insert(st, &d), STORE_OK);
	struct delivery_query q = {.endpoint_id = "ep_f", .status = DELIVERY_DEAD, .limit = 10};
	struct delivery *arr = NULL;
	size_t n = 0;
	char next[STORE_CURSOR_MAX];
	cr_assert_eq(store_delivery_list(st, &q, &arr, &n, next), STORE_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(arr[0].event_id, "evt_f");
	cr_assert_str_eq(arr[0].event_type, "media.moderated");
	cr_assert_eq(arr[0].attempt_count, 3);
	cr_assert_eq(arr[0].last_status, 404);
	cr_assert_str_eq(arr[0].last_error, "http_status");
	delivery_clear(&arr[0]);
	free(arr);
}

/* --- pending pages ------------------------------------------------------ */

/* The window's rescan: the enabled endpoints with a pending delivery,
 * and only those. */
Test(store, pending_endpoints_lists_enabled_endpoints_with_pending_rows)
{
	add_endpoint("ep_on", true);
	add_endpoint("ep_on2", true);
	add_endpoint("ep_off", false);
	add_endpoint("ep_done", true);
	add_endpoint("ep_empty", true);
	add_delivery("p_a", "e1", "ep_on", DELIVERY_PENDING, 300);
	add_delivery("p_b", "e2", "ep_on", DELIVERY_PENDING, 200);
	add_delivery("p_c", "e2", "ep_on2", DELIVERY_PENDING, -5);
	add_delivery("p_off", "e1", "ep_off", DELIVERY_PENDING, 100);  /* disabled endpoint */
	add_delivery("p_gone", "e1", "ep_gone", DELIVERY_PENDING, 100); /* deleted endpoint */
	add_delivery("s_1", "e1", "ep_done", DELIVERY_SUCCEEDED, 150);
	add_delivery("x_1", "e1", "ep_done", DELIVERY_DEAD, 150);
	const char *want[2][4] = {{"ep_on", "ep_on2", NULL}, {"ep_off", "ep_on", "ep_on2", NULL}};
	for (int round = 0; round < 2; round++) {
		char(*ids)[ID_MAX] = NULL;
		size_t n = 0;
		cr_assert_eq(store_pending_endpoints(st, &ids, &n), STORE_OK);
		qsort(ids, n, sizeof *ids, (int (*)(const void *, const void *))strcmp);
		size_t k = 0;
		for (; want[round][k] != NULL; k++) {
			cr_assert_lt(k, n, "round %d: %zu listed", round, n);
			cr_expect_str_eq(ids[k], want[round][k], "round %d", round);
		}
		cr_expect_eq(n, k, "round %d", round);
		free(ids);
		/* Enabling the endpoint lists it. */
		struct endpoint e = mk_endpoint("ep_off", true, 1000);
		cr_assert_eq(store_endpoint_update(st, &e), STORE_OK);
	}
}

/* The window's refill: one endpoint's pending rows (of an enabled
 * endpoint), strictly above the key, in key order, up to the limit. */
Test(store, pending_page_endpoint_reads_one_endpoint)
{
	add_endpoint("ep_a", true);
	add_endpoint("ep_b", true);
	add_endpoint("ep_off", false);
	add_delivery("a_3", "e1", "ep_a", DELIVERY_PENDING, 300);
	add_delivery("a_1", "e2", "ep_a", DELIVERY_PENDING, 100);
	add_delivery("b_1", "e2", "ep_b", DELIVERY_PENDING, 150);
	add_delivery("a_2b", "e3", "ep_a", DELIVERY_PENDING, 200);
	add_delivery("a_2a", "e4", "ep_a", DELIVERY_PENDING, 200);
	add_delivery("a_done", "e5", "ep_a", DELIVERY_SUCCEEDED, 50);
	add_delivery("a_dead", "e6", "ep_a", DELIVERY_DEAD, 60);
	add_delivery("off_1", "e1", "ep_off", DELIVERY_PENDING, 10);
	const struct {
		const char *ep;
		int64_t at;
		const char *id;
		int limit;
		const char *want;
	} cases[] = {
		{"ep_a", INT64_MIN, "", 10, "a_1,a_2a,a_2b,a_3,"},
		{"ep_a", INT64_MIN, "", 2, "a_1,a_2a,"},
		{"ep_a", 200, "a_2a", 10, "a_2b,a_3,"},
		{"ep_a", 199, "", 10, "a_2a,a_2b,a_3,"},
		{"ep_a", 300, "a_3", 10, ""},
		{"ep_b", INT64_MIN, "", 10, "b_1,"},
		{"ep_off", INT64_MIN, "", 10, ""},  /* disabled: nothing */
		{"ep_none", INT64_MIN, "", 10, ""},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct pending *arr = NULL;
		size_t n = 0;
		cr_assert_eq(store_pending_page_endpoint(st, cases[c].ep, cases[c].at, cases[c].id,
							 cases[c].limit, &arr, &n),
			     STORE_OK, "case %zu", c);
		char buf[256] = "";
		for (size_t i = 0; i < n; i++) {
			cr_expect_str_eq(arr[i].endpoint_id, cases[c].ep);
			strncat(buf, arr[i].id, sizeof buf - strlen(buf) - 1);
			strncat(buf, ",", sizeof buf - strlen(buf) - 1);
		}
		cr_expect_str_eq(buf, cases[c].want, "case %zu", c);
		free(arr);
	}
}

Test(store, pending_page_carries_schedule)
{
	add_endpoint("ep_1", true);
	struct delivery d = mk_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_PENDING, 42);
	d.attempt_count = 3;
	d.schedule_index = 1;
	cr_assert_eq(store_delivery_insert(st, &d), STORE_OK);
	struct pending *arr = NULL;
	size_t n = 0;
	cr_assert_eq(store_pending_page_endpoint(st, "ep_1", INT64_MIN, "", 10, &arr, &n), STORE_OK);
	cr_assert_eq(n, 1);
	cr_assert_eq(arr[0].attempt_count, 3);
	cr_assert_eq(arr[0].schedule_index, 1);
	cr_assert_eq(arr[0].next_attempt_at, 42);
	free(arr);
}

/* --- dead letters ------------------------------------------------------- */

Test(store, dlq_retry_one)
{
	add_endpoint("ep_1", true);
	struct delivery d = mk_delivery("dlv_dead", "evt_1", "ep_1", DELIVERY_DEAD, 0);
	d.attempt_count = 5;
	d.schedule_index = 5;
	d.last_status = 500;
	model_code_set(d.last_error, "http_status");
	cr_assert_eq(store_delivery_insert(st, &d), STORE_OK);
	add_attempt("dlv_dead", 1);
	add_attempt("dlv_dead", 2);
	add_delivery("dlv_pending", "evt_1", "ep_1", DELIVERY_PENDING, 10);
	add_delivery("dlv_ok", "evt_1", "ep_1", DELIVERY_SUCCEEDED, 0);

	struct pending p;
	cr_assert_eq(store_dlq_retry_one(st, "dlv_nope", 7000, &p), STORE_NOTFOUND);
	cr_assert_eq(store_dlq_retry_one(st, "dlv_pending", 7000, &p), STORE_CONFLICT);
	cr_assert_eq(store_dlq_retry_one(st, "dlv_ok", 7000, &p), STORE_CONFLICT);

	cr_assert_eq(store_dlq_retry_one(st, "dlv_dead", 7000, &p), STORE_OK);
	cr_assert_str_eq(p.id, "dlv_dead");
	cr_assert_str_eq(p.event_id, "evt_1");
	cr_assert_str_eq(p.endpoint_id, "ep_1");
	cr_assert_eq(p.attempt_count, 5);
	cr_assert_eq(p.schedule_index, 0);
	cr_assert_eq(p.next_attempt_at, 7000);

	struct delivery got;
	cr_assert_eq(store_delivery_get(st, "dlv_dead", &got), STORE_OK);
	cr_assert_eq(got.status, DELIVERY_PENDING);
	cr_assert_eq(got.schedule_index, 0);
	cr_assert_eq(got.attempt_count, 5);
	cr_assert_eq(got.next_attempt_at, 7000);
	cr_assert_eq(got.updated_at, 7000);
	delivery_clear(&got);
	cr_assert_eq(count_attempts("dlv_dead"), 2); /* the log stays */

	/* Now pending: a second retry conflicts. */
	cr_assert_eq(store_dlq_retry_one(st, "dlv_dead", 8000, &p), STORE_CONFLICT);
}

Test(store, dlq_retry_endpoint)
{
	add_delivery("a1", "e", "ep_a", DELIVERY_DEAD, 0);
	add_delivery("a2", "e", "ep_a", DELIVERY_DEAD, 0);
	add_delivery("a3", "e", "ep_a", DELIVERY_SUCCEEDED, 0);
	add_delivery("a4", "e", "ep_a", DELIVERY_PENDING, 5);
	add_delivery("b1", "e", "ep_b", DELIVERY_DEAD, 0);

	int64_t count = -1;
	cr_assert_eq(store_dlq_retry_endpoint(st, "ep_a", 9000, &count), STORE_OK);
	cr_assert_eq(count, 2);

	static const struct {
		const char *id;
		enum delivery_status status;
		int64_t next_at;
	} want[] = {
		{"a1", DELIVERY_PENDING, 9000},
		{"a2", DELIVERY_PENDING, 9000},
		{"a3", DELIVERY_SUCCEEDED, 0},
		{"a4", DELIVERY_PENDING, 5},
		{"b1", DELIVERY_DEAD, 0},
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		struct delivery got;
		cr_assert_eq(store_delivery_get(st, want[i].id, &got), STORE_OK);
		cr_assert_eq(got.status, want[i].status, "%s", want[i].id);
		cr_assert_eq(got.next_attempt_at, want[i].next_at, "%s", want[i].id);
		delivery_clear(&got);
	}

	cr_assert_eq(store_dlq_retry_endpoint(st, "ep_a", 9500, &count), STORE_OK);
	cr_assert_eq(count, 0);
	cr_assert_eq(store_dlq_retry_endpoint(st, "ep_unknown", 9500, &count), STORE_OK);
	cr_assert_eq(count, 0);
}

Test(store, purge_dead)
{
	struct delivery d = mk_delivery("old_dead", "e", "ep", DELIVERY_DEAD, 0);
	d.updated_at = 100;
	cr_assert_eq(store_delivery_insert(st, &d), STORE_OK);
	d = mk_delivery("edge_dead", "e", "ep", DELIVERY_DEAD, 0);
	d.updated_at = 200; /* not before 200: kept */
	cr_assert_eq(store_delivery_insert(st, &d), STORE_OK);
	d = mk_delivery("new_dead", "e", "ep", DELIVERY_DEAD, 0);
	d.updated_at = 300;
	cr_assert_eq(store_delivery_insert(st, &d), STORE_OK);
	d = mk_delivery("old_ok", "e", "ep", DELIVERY_SUCCEEDED, 0);
	d.updated_at = 100;
	cr_assert_eq(store_delivery_insert(st, &d), STORE_OK);
	d = mk_delivery("old_pending", "e", "ep", DELIVERY_PENDING, 50);
	d.updated_at = 100;
	cr_assert_eq(store_delivery_insert(st, &d), STORE_OK);
	add_attempt("old_dead", 1);
	add_attempt("old_dead", 2);
	add_attempt("edge_dead", 1);
	add_attempt("new_dead", 1);

	int64_t count = -1;
	cr_assert_eq(store_purge_dead(st, 200, &count, NULL, NULL), STORE_OK);
	cr_assert_eq(count, 1);
	cr_assert(!delivery_exists("old_dead"));
	cr_assert_eq(count_attempts("old_dead"), 0);
	cr_assert(delivery_exists("edge_dead"));
	cr_assert_eq(count_attempts("edge_dead"), 1);
	cr_assert(delivery_exists("new_dead"));
	cr_assert_eq(count_attempts("new_dead"), 1);
	cr_assert(delivery_exists("old_ok"));
	cr_assert(delivery_exists("old_pending"));

	cr_assert_eq(store_purge_dead(st, 200, &count, NULL, NULL), STORE_OK);
	cr_assert_eq(count, 0);
}

/* Each endpoint's share of a purge, as store_purge_dead tells it. */
struct purge_tally {
	int64_t n[3]; /* ep_0, ep_1, ep_2 */
	int calls;
};

static int tally_purge(const char *endpoint_id, int64_t n, void *arg)
{
	struct purge_tally *t = arg;
	int k = endpoint_id[3] - '0';
	cr_assert(strncmp(endpoint_id, "ep_", 3) == 0 && k >= 0 && k < 3, "%s", endpoint_id);
	t->n[k] += n;
	t->calls++;
	return STORE_OK;
}

/* More dead letters than one statement of the PostgreSQL backend deletes
 * (it goes in batches, oldest first), many sharing an updated_at across a
 * batch's end: every expired one goes with its attempts, each endpoint is
 * told its count once, the younger ones stay. */
Test(store, purge_dead_in_batches)
{
	enum { N = 12345 };
	cr_assert_eq(store_begin(st), STORE_OK);
	for (int i = 0; i < N; i++) {
		char id[32], ep[8];
		snprintf(id, sizeof id, "dead_%05d", i);
		snprintf(ep, sizeof ep, "ep_%d", i % 3);
		struct delivery d = mk_delivery(id, "e", ep, DELIVERY_DEAD, 0);
		d.updated_at = i / 1500; /* 0..8, 1500 rows each */
		cr_assert_eq(store_delivery_insert(st, &d), STORE_OK);
		if (i % 100 == 0)
			add_attempt(id, 1);
	}
	cr_assert_eq(store_commit(st), STORE_OK);

	struct purge_tally t = {0};
	int64_t count = -1;
	cr_assert_eq(store_purge_dead(st, 8, &count, tally_purge, &t), STORE_OK);
	cr_assert_eq(count, 12000); /* updated_at 0..7 */
	cr_assert_eq(t.calls, 3);
	cr_assert_eq(t.n[0], 4000);
	cr_assert_eq(t.n[1], 4000);
	cr_assert_eq(t.n[2], 4000);
	cr_assert(!delivery_exists("dead_00000"));
	cr_assert(!delivery_exists("dead_05000"));
	cr_assert(!delivery_exists("dead_11999"));
	cr_assert_eq(count_attempts("dead_11900"), 0);
	cr_assert(delivery_exists("dead_12000"));
	cr_assert_eq(count_attempts("dead_12000"), 1);

	cr_assert_eq(store_purge_dead(st, 100, &count, NULL, NULL), STORE_OK);
	cr_assert_eq(count, N - 12000);
	cr_assert(!delivery_exists("dead_12344"));
}

/* --- transactions, reopening, several connections ------------------------ */

Test(store, savepoint_rollback_to_undoes_only_that_op)
{
	cr_assert_eq(store_begin(st), STORE_OK);

	cr_assert_eq(store_savepoint(st), STORE_OK);
	add_delivery("keep_1", "e", "ep", DELIVERY_PENDING, 1);
	cr_assert_eq(store_release(st), STORE_OK);

	cr_assert_eq(store_savepoint(st), STORE_OK);
	add_delivery("undo_1", "e", "ep", DELIVERY_PENDING, 1);
	add_attempt("undo_1", 1);
	/* The op then fails (a duplicate) and is undone as a whole. */
	struct delivery dup = mk_delivery("keep_1", "e", "ep", DELIVERY_PENDING, 1);
	cr_assert_eq(store_delivery_insert(st, &dup), STORE_CONFLICT);
	cr_assert_eq(store_rollback_to(st), STORE_OK);
	/* rollback_to also released the savepoint: nothing left to release. */
	cr_assert_eq(store_release(st), STORE_ERROR);

	cr_assert_eq(store_savepoint(st), STORE_OK);
	add_delivery("keep_2", "e", "ep", DELIVERY_PENDING, 1);
	cr_assert_eq(store_release(st), STORE_OK);

	cr_assert_eq(store_commit(st), STORE_OK);

	cr_assert(delivery_exists("keep_1"));
	cr_assert(delivery_exists("keep_2"));
	cr_assert(!delivery_exists("undo_1"));
	cr_assert_eq(count_attempts("undo_1"), 0);
}

/* The first savepoint of a transaction that has written nothing yet (the
 * commit thread's first op of a group; SQLite keeps it without opening it,
 * store_sqlite.c sq_savepoint): undoing it leaves a usable transaction in
 * which the next op's writes commit, and it is ended only once. */
Test(store, first_savepoint_rolled_back_leaves_the_transaction_usable)
{
	cr_assert_eq(store_begin(st), STORE_OK);
	cr_assert_eq(store_savepoint(st), STORE_OK);
	add_delivery("undo_1", "e", "ep", DELIVERY_PENDING, 1);
	add_attempt("undo_1", 1);
	cr_assert_eq(store_rollback_to(st), STORE_OK);
	cr_assert_eq(store_release(st), STORE_ERROR);
	cr_assert_eq(store_rollback_to(st), STORE_ERROR);

	/* Again first: the transaction holds nothing. */
	cr_assert_eq(store_savepoint(st), STORE_OK);
	add_delivery("undo_2", "e", "ep", DELIVERY_PENDING, 1);
	cr_assert_eq(store_rollback_to(st), STORE_OK);

	cr_assert_eq(store_savepoint(st), STORE_OK);
	add_delivery("keep_1", "e", "ep", DELIVERY_PENDING, 1);
	cr_assert_eq(store_release(st), STORE_OK);
	cr_assert_eq(store_release(st), STORE_ERROR);
	cr_assert_eq(store_commit(st), STORE_OK);

	cr_assert(delivery_exists("keep_1"));
	cr_assert(!delivery_exists("undo_1"));
	cr_assert(!delivery_exists("undo_2"));
	cr_assert_eq(count_attempts("undo_1"), 0);
}

/* Writes made in the transaction before its first savepoint (an op run
 * without one) are not undone with it: only what came after. */
Test(store, savepoint_after_unsaved_writes_undoes_only_its_own)
{
	cr_assert_eq(store_begin(st), STORE_OK);
	add_delivery("before_1", "e", "ep", DELIVERY_PENDING, 1);
	cr_assert_eq(store_savepoint(st), STORE_OK);
	add_delivery("undo_1", "e", "ep", DELIVERY_PENDING, 1);
	cr_assert_eq(store_rollback_to(st), STORE_OK);
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert(delivery_exists("before_1"));
	cr_assert(!delivery_exists("undo_1"));
}

/* A savepoint inside the first one ends before it, as SQLite nests them
 * (the store's contract is one level, store.h; PostgreSQL keeps one level,
 * store_pg.c, so this is suite store_sqlite, which runs on SQLite only). */
Test(store_sqlite, savepoint_nested_in_the_first_one)
{
	cr_assert_eq(store_begin(st), STORE_OK);
	cr_assert_eq(store_savepoint(st), STORE_OK);
	add_delivery("outer_1", "e", "ep", DELIVERY_PENDING, 1);
	cr_assert_eq(store_savepoint(st), STORE_OK);
	add_delivery("inner_1", "e", "ep", DELIVERY_PENDING, 1);
	cr_assert_eq(store_rollback_to(st), STORE_OK);
	cr_assert_eq(store_savepoint(st), STORE_OK);
	add_delivery("inner_2", "e", "ep", DELIVERY_PENDING, 1);
	cr_assert_eq(store_release(st), STORE_OK);
	cr_assert_eq(store_release(st), STORE_OK);
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert(delivery_exists("outer_1"));
	cr_assert(!delivery_exists("inner_1"));
	cr_assert(delivery_exists("inner_2"));
}

/* A conflict inside a transaction leaves it usable: the commit thread's
 * group goes on after an op that met an existing id (PostgreSQL aborts a
 * transaction on a unique violation: the backend must not raise one). */
Test(store, conflict_leaves_the_transaction_usable)
{
	cr_assert_eq(store_begin(st), STORE_OK);
	add_endpoint("ep_1", true);
	struct endpoint e = mk_endpoint("ep_1", true, 1000);
	cr_assert_eq(store_endpoint_insert(st, &e), STORE_CONFLICT);
	struct event ev = {.type = "t", .data = "{}", .created_at = 1};
	snprintf(ev.id, sizeof ev.id, "evt_1");
	cr_assert_eq(store_event_insert(st, &ev), STORE_OK);
	cr_assert_eq(store_event_insert(st, &ev), STORE_CONFLICT);
	json_t *ids = json_pack("[s]", "evt_1");
	cr_assert_eq(store_idem_put(st, "key-1", ids, 1), STORE_OK);
	cr_assert_eq(store_idem_put(st, "key-1", ids, 2), STORE_CONFLICT);
	json_decref(ids);
	struct store_api_key k = {.scope = "admin", .prefix = "hk_ab", .created_at = 1};
	snprintf(k.id, sizeof k.id, "key_1");
	cr_assert_eq(store_api_key_insert(st, &k), STORE_OK);
	snprintf(k.id, sizeof k.id, "key_2"); /* same hash */
	cr_assert_eq(store_api_key_insert(st, &k), STORE_CONFLICT);
	add_endpoint("ep_2", true);
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert(endpoint_exists("ep_1"));
	cr_assert(endpoint_exists("ep_2"));
	struct event got;
	cr_assert_eq(store_event_get(st, "evt_1", &got), STORE_OK);
	event_clear(&got);
	struct store_api_key *keys = NULL;
	size_t n = 0;
	cr_assert_eq(store_api_key_list(st, &keys, &n), STORE_OK);
	cr_assert_eq(n, 1);
	free(keys);
}

Test(store, rollback_undoes_everything)
{
	add_endpoint("ep_1", true);
	cr_assert_eq(store_begin(st), STORE_OK);
	add_delivery("dlv_1", "e", "ep_1", DELIVERY_PENDING, 1);
	cr_assert_eq(store_endpoint_delete(st, "ep_1"), STORE_OK);
	cr_assert_eq(store_rollback(st), STORE_OK);
	cr_assert(endpoint_exists("ep_1"));
	cr_assert(!delivery_exists("dlv_1"));

	/* A commit without a transaction is an error, not a crash. */
	cr_assert_eq(store_commit(st), STORE_ERROR);
}

Test(store, reopen_keeps_everything)
{
	add_endpoint("ep_1", true);
	struct event ev = {.type = "t.x", .data = "{\"k\":1}", .created_at = 5};
	snprintf(ev.id, sizeof ev.id, "evt_1");
	cr_assert_eq(store_event_insert(st, &ev), STORE_OK);
	json_t *ids = json_pack("[s]", "evt_1");
	cr_assert_eq(store_idem_put(st, "k1", ids, 5), STORE_OK);
	json_decref(ids);
	cr_assert_eq(store_begin(st), STORE_OK);
	add_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_PENDING, 77);
	add_attempt("dlv_1", 1);
	cr_assert_eq(store_commit(st), STORE_OK);

	store_close(st);
	char err[256];
	cr_assert_eq(store_open(tdb.url, &st, err, sizeof err), STORE_OK, "%s", err);

	cr_assert(endpoint_exists("ep_1"));
	struct event got;
	cr_assert_eq(store_event_get(st, "evt_1", &got), STORE_OK);
	cr_assert_str_eq(got.data, "{\"k\":1}");
	event_clear(&got);
	cr_assert_eq(store_idem_get(st, "k1", &ids), STORE_OK);
	json_decref(ids);
	cr_assert_eq(count_attempts("dlv_1"), 1);
	struct pending *p = NULL;
	size_t n = 0;
	cr_assert_eq(store_pending_page_endpoint(st, "ep_1", INT64_MIN, "", 10, &p, &n), STORE_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(p[0].id, "dlv_1");
	free(p);
}

Test(store, two_connections)
{
	char err[256];
	struct store *reader = NULL;
	cr_assert_eq(store_open(db_url, &reader, err, sizeof err), STORE_OK, "%s", err);

	cr_assert_eq(store_begin(st), STORE_OK);
	add_endpoint("ep_1", true);
	add_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_PENDING, 10);

	/* Not committed yet: the reader does not see it, and is not blocked. */
	struct endpoint e;
	cr_assert_eq(store_endpoint_get(reader, "ep_1", &e), STORE_NOTFOUND);
	endpoint_clear(&e);

	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert_eq(store_endpoint_get(reader, "ep_1", &e), STORE_OK);
	endpoint_clear(&e);
	struct pending *arr = NULL;
	size_t n = 0;
	cr_assert_eq(store_pending_page_endpoint(reader, "ep_1", INT64_MIN, "", 10, &arr, &n),
		     STORE_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(arr[0].id, "dlv_1");
	free(arr);

	/* And the other way round: a write through the second connection. */
	struct delivery d = mk_delivery("dlv_1", "evt_1", "ep_1", DELIVERY_SUCCEEDED, 0);
	d.updated_at = 600;
	cr_assert_eq(store_delivery_update_state(reader, &d), STORE_OK);
	struct delivery got;
	cr_assert_eq(store_delivery_get(st, "dlv_1", &got), STORE_OK);
	cr_assert_eq(got.status, DELIVERY_SUCCEEDED);
	delivery_clear(&got);

	store_close(reader);
}

/* Writer and reader threads, one connection each, at the same time. */
#define CONC_TX 50
#define CONC_PER_TX 20

struct conc {
	struct store *st;
	int failures;
	size_t last_seen;
	_Atomic int *writer_done;
};

static void *conc_writer(void *arg)
{
	struct conc *w = arg;
	for (int t = 0; t < CONC_TX; t++) {
		if (store_begin(w->st) != STORE_OK) {
			w->failures++;
			continue;
		}
		for (int i = 0; i < CONC_PER_TX; i++) {
			char id[32];
			snprintf(id, sizeof id, "dlv_%04d", t * CONC_PER_TX + i);
			struct delivery d = mk_delivery(id, "evt", "ep", DELIVERY_PENDING, t);
			if (store_delivery_insert(w->st, &d) != STORE_OK)
				w->failures++;
		}
		if (store_commit(w->st) != STORE_OK)
			w->failures++;
	}
	*w->writer_done = 1;
	return NULL;
}

static void *conc_reader(void *arg)
{
	struct conc *r = arg;
	/* Reads until it has seen every row; each read sees whole
	 * transactions only, and never fewer rows than before. */
	while (r->last_seen < CONC_TX * CONC_PER_TX && r->failures == 0) {
		/* If the writer failed, one last read after it ended, then stop. */
		int done = *r->writer_done;
		struct delivery_query q = {.status = -1, .limit = 1000};
		struct delivery *arr = NULL;
		size_t n = 0;
		char next[STORE_CURSOR_MAX];
		if (store_delivery_list(r->st, &q, &arr, &n, next) != STORE_OK) {
			r->failures++;
			break;
		}
		if (n < r->last_seen || n % CONC_PER_TX != 0)
			r->failures++;
		r->last_seen = n;
		for (size_t i = 0; i < n; i++)
			delivery_clear(&arr[i]);
		free(arr);
		if (done)
			break;
	}
	return NULL;
}

Test(store, writer_and_reader_threads)
{
	char err[256];
	_Atomic int writer_done = 0;
	struct conc w = {.st = st, .writer_done = &writer_done};
	struct conc r = {.writer_done = &writer_done};
	cr_assert_eq(store_open(db_url, &r.st, err, sizeof err), STORE_OK, "%s", err);
	pthread_t tw, tr;
	cr_assert_eq(pthread_create(&tr, NULL, conc_reader, &r), 0);
	cr_assert_eq(pthread_create(&tw, NULL, conc_writer, &w), 0);
	pthread_join(tw, NULL);
	pthread_join(tr, NULL);
	store_close(r.st);
	cr_assert_eq(w.failures, 0);
	cr_assert_eq(r.failures, 0);
	cr_assert_eq(r.last_seen, CONC_TX * CONC_PER_TX);
}

Test(store, cursor_valid)
{
	static const struct {
		const char *c;
		bool ok;
	} table[] = {
		{"c1", true},       {"c9223372036854775807", true},
		{"c42", true},      {NULL, false},
		{"", false},        {"c", false},
		{"1", false},       {"C1", false},
		{"c-1", false},     {"c+1", false},
		{"c1a", false},     {"c 1", false},
		{"c0", false},      {"c9223372036854775808", false},
		{"c00", false},     {"x12", false},
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		cr_assert_eq(store_cursor_valid(table[i].c), table[i].ok, "%s",
			     table[i].c ? table[i].c : "(null)");
}

struct each_count {
	size_t n;
	size_t stop_after; /* 0: never stop */
	bool wrong_event;
};

static int count_each(const struct delivery *d, void *arg)
{
	struct each_count *c = arg;
	if (strcmp(d->event_id, "evt_many") != 0)
		c->wrong_event = true;
	c->n++;
	return c->stop_after && c->n == c->stop_after ? 42 : STORE_OK;
}

Test(store, delivery_each_of_event_walks_every_page)
{
	add_endpoint("ep_a", true);
	cr_assert_eq(store_begin(st), STORE_OK);
	/* More than one page (1000) of deliveries for one event, a few for another. */
	for (int i = 0; i < 1003; i++) {
		char id[ID_MAX];
		snprintf(id, sizeof id, "dlv_m%04d", i);
		add_delivery(id, "evt_many", "ep_a", DELIVERY_PENDING, 1000 + i);
	}
	add_delivery("dlv_o1", "evt_other", "ep_a", DELIVERY_PENDING, 1);
	add_delivery("dlv_o2", "evt_other", "ep_a", DELIVERY_PENDING, 2);
	cr_assert_eq(store_commit(st), STORE_OK);

	struct each_count c = {0};
	cr_assert_eq(store_delivery_each_of_event(st, "evt_many", count_each, &c), STORE_OK);
	cr_assert_eq(c.n, 1003, "every delivery once, across pages: %zu", c.n);
	cr_assert(!c.wrong_event);

	struct each_count stop = {.stop_after = 5};
	cr_assert_eq(store_delivery_each_of_event(st, "evt_many", count_each, &stop), 42,
		     "fn's non-zero value stops the walk and is returned");
	cr_assert_eq(stop.n, 5);

	struct each_count none = {0};
	cr_assert_eq(store_delivery_each_of_event(st, "evt_missing", count_each, &none), STORE_OK);
	cr_assert_eq(none.n, 0);
}

/* ---- endpoint_state (docs/architecture.md#durable-endpoint-state) ---- */

#define STATES_MAX 8
struct states {
	struct endpoint_state s[STATES_MAX];
	size_t n;
};

static int collect_state(const struct endpoint_state *s, void *arg)
{
	struct states *out = arg;
	cr_assert_lt(out->n, STATES_MAX);
	out->s[out->n++] = *s;
	return 0;
}

static const struct endpoint_state *state_of(const struct states *all, const char *id)
{
	for (size_t i = 0; i < all->n; i++)
		if (strcmp(all->s[i].endpoint_id, id) == 0)
			return &all->s[i];
	return NULL;
}

static struct endpoint_state mk_state(const char *id, const char *circuit, int64_t open_until,
				      int64_t paused_until)
{
	struct endpoint_state s = {.failures = 2, .cooldown_ms = 60000, .open_until = open_until,
				   .paused_until = paused_until, .updated_at = 1000};
	snprintf(s.endpoint_id, sizeof s.endpoint_id, "%s", id);
	snprintf(s.circuit, sizeof s.circuit, "%s", circuit);
	snprintf(s.pause_reason, sizeof s.pause_reason, "%s", paused_until > 0 ? "429" : "");
	return s;
}

Test(store, endpoint_state_put_replaces_and_each_reads_all)
{
	add_endpoint("ep_1", true);
	add_endpoint("ep_2", true);
	struct endpoint_state a = mk_state("ep_1", "open", 1767225600000, 0);
	struct endpoint_state b = mk_state("ep_2", "closed", 0, 1767229200000);
	cr_assert_eq(store_endpoint_state_put(st, &a), STORE_OK);
	cr_assert_eq(store_endpoint_state_put(st, &b), STORE_OK);
	/* A later transition replaces the row whole. */
	a = mk_state("ep_1", "closed", 0, 0);
	a.failures = 0;
	a.cooldown_ms = 30000;
	a.updated_at = 2000;
	cr_assert_eq(store_endpoint_state_put(st, &a), STORE_OK);

	struct states all = {0};
	cr_assert_eq(store_endpoint_state_each(st, collect_state, &all), STORE_OK);
	cr_assert_eq(all.n, 2);
	const struct endpoint_state *g = state_of(&all, "ep_1");
	cr_assert_not_null(g);
	cr_assert_str_eq(g->circuit, "closed");
	cr_assert_eq(g->failures, 0);
	cr_assert_eq(g->cooldown_ms, 30000);
	cr_assert_eq(g->open_until, 0);
	cr_assert_eq(g->updated_at, 2000);
	g = state_of(&all, "ep_2");
	cr_assert_not_null(g);
	cr_assert_str_eq(g->circuit, "closed");
	cr_assert_eq(g->paused_until, 1767229200000);
	cr_assert_str_eq(g->pause_reason, "429");
	cr_assert_eq(g->failures, 2);
	cr_assert_eq(g->cooldown_ms, 60000);
}

static int stop_at_first(const struct endpoint_state *s, void *arg)
{
	(void)s;
	(*(int *)arg)++;
	return 7;
}

Test(store, endpoint_state_each_stops_on_nonzero)
{
	struct endpoint_state a = mk_state("ep_1", "open", 5, 0);
	struct endpoint_state b = mk_state("ep_2", "open", 5, 0);
	cr_assert_eq(store_endpoint_state_put(st, &a), STORE_OK);
	cr_assert_eq(store_endpoint_state_put(st, &b), STORE_OK);
	int calls = 0;
	cr_assert_eq(store_endpoint_state_each(st, stop_at_first, &calls), 7);
	cr_assert_eq(calls, 1);
}

Test(store, endpoint_state_goes_with_its_endpoint)
{
	add_endpoint("ep_1", true);
	add_endpoint("ep_2", true);
	struct endpoint_state a = mk_state("ep_1", "open", 5, 9);
	struct endpoint_state b = mk_state("ep_2", "half_open", 5, 0);
	cr_assert_eq(store_endpoint_state_put(st, &a), STORE_OK);
	cr_assert_eq(store_endpoint_state_put(st, &b), STORE_OK);
	cr_assert_eq(store_endpoint_delete(st, "ep_1"), STORE_OK);
	struct states all = {0};
	cr_assert_eq(store_endpoint_state_each(st, collect_state, &all), STORE_OK);
	cr_assert_eq(all.n, 1);
	cr_assert_not_null(state_of(&all, "ep_2"));
	cr_assert_str_eq(all.s[0].circuit, "half_open");
}

Test(store, endpoint_state_commits_with_the_transaction_or_not_at_all)
{
	add_endpoint("ep_1", true);
	struct endpoint_state a = mk_state("ep_1", "open", 5, 0);
	cr_assert_eq(store_begin(st), STORE_OK);
	cr_assert_eq(store_endpoint_state_put(st, &a), STORE_OK);
	cr_assert_eq(store_rollback(st), STORE_OK);
	struct states all = {0};
	cr_assert_eq(store_endpoint_state_each(st, collect_state, &all), STORE_OK);
	cr_assert_eq(all.n, 0);
	cr_assert_eq(store_begin(st), STORE_OK);
	cr_assert_eq(store_endpoint_state_put(st, &a), STORE_OK);
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert_eq(store_endpoint_state_each(st, collect_state, &all), STORE_OK);
	cr_assert_eq(all.n, 1);
}

/* store_size counts the stored data on every backend: 500 events of 8 kB
 * make the database (file and log together) grow by more than 3 MB. */
Test(store, size_grows_with_the_data)
{
	struct store_size before, grown;
	cr_assert_eq(store_size(st, &before), STORE_OK);
	cr_assert_gt(before.file_bytes, 0);
	cr_assert_geq(before.wal_bytes, -1);
	cr_assert_geq(before.free_bytes, -1);

	static char data[8100];
	memset(data, 0, sizeof data);
	memcpy(data, "{\"b\":\"", 6);
	memset(data + 6, 'x', 8000);
	memcpy(data + 8006, "\"}", 2);
	uint64_t x = 88172645463325252u;
	cr_assert_eq(store_begin(st), STORE_OK);
	for (int i = 0; i < 500; i++) {
		/* Random payloads: PostgreSQL compresses what repeats. */
		struct event e = {.type = "media.created", .data = data, .created_at = 100};
		for (int k = 0; k < 8000; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			data[6 + k] = (char)('a' + x % 26);
		}
		snprintf(e.id, sizeof e.id, "evt_%04d", i);
		cr_assert_eq(store_event_insert(st, &e), STORE_OK);
	}
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert_eq(store_size(st, &grown), STORE_OK);
	int64_t was = before.file_bytes + (before.wal_bytes > 0 ? before.wal_bytes : 0);
	int64_t now = grown.file_bytes + (grown.wal_bytes > 0 ? grown.wal_bytes : 0);
	cr_assert_gt(now, was + 3000000, "%lld -> %lld", (long long)was, (long long)now);
}

/* Several nodes share a PostgreSQL database only: SQLite has no other
 * node to hear from (no listener, no fetch by seq), and says so rather than
 * pretending. */
Test(store, other_nodes_are_heard_on_postgresql_only)
{
	cr_assert_eq(store_listen_supported(tdb.url), tdb.pg);
	struct store_listen *l = NULL;
	char err[256] = "";
	int rc = store_listen_open(tdb.url, &l, err, sizeof err);
	cr_assert_eq(rc, tdb.pg ? STORE_OK : STORE_ERROR, "%s", err);
	cr_assert_eq(l != NULL, tdb.pg);
	store_listen_close(l);
	int64_t seq = 1;
	struct pending *items = (struct pending *)1;
	size_t n = 9;
	rc = store_pending_by_seq(st, &seq, 1, &items, NULL, &n);
	cr_assert_eq(rc, tdb.pg ? STORE_OK : STORE_ERROR);
	cr_assert_null(items);
	cr_assert_eq(n, 0);
}
