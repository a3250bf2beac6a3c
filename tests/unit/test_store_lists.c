/* Unit tests for the lists of issue 11: store_event_list (GET /v1/events)
 * and the event_type / since / until filters of store_delivery_list, on a
 * database in a fresh temporary directory per test. */
#include <criterion/criterion.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"
#include "test_store_db.h"

/* The test's database (test_store_db.h): every test here runs on both
 * backends. */
static struct test_db tdb;
#define db_path (tdb.path)
static struct store *st;

static void setup(void)
{
	test_db_make(&tdb, "hookd-lists");
	st = test_db_open(&tdb);
}

static void teardown(void)
{
	test_db_close(&tdb, &st);
}

TestSuite(store_lists, .init = setup, .fini = teardown);

static void add_event(const char *id, const char *type, int64_t at)
{
	char data[128];
	snprintf(data, sizeof data, "{\"n\":\"%s\",\"s\":\"a b\\\"c\"}", id);
	struct event e = {.type = (char *)type, .data = data, .created_at = at};
	snprintf(e.id, sizeof e.id, "%s", id);
	cr_assert_eq(store_event_insert(st, &e), STORE_OK, "insert %s", id);
}

static void add_delivery(const char *id, const char *event_id, const char *endpoint_id,
			 const char *type, int64_t at, enum delivery_status status)
{
	struct delivery d = {.event_type = (char *)type, .status = status, .created_at = at,
			     .updated_at = at, .next_attempt_at = at};
	snprintf(d.id, sizeof d.id, "%s", id);
	snprintf(d.event_id, sizeof d.event_id, "%s", event_id);
	snprintf(d.endpoint_id, sizeof d.endpoint_id, "%s", endpoint_id);
	cr_assert_eq(store_delivery_insert(st, &d), STORE_OK, "insert %s", id);
}

/* Every page of q, following next_cursor: the ids joined by "," in buf,
 * the number of pages in *pages. */
static void events_all(struct event_query q, char *buf, size_t buflen, int *pages)
{
	char cursor[STORE_CURSOR_MAX] = "";
	buf[0] = '\0';
	*pages = 0;
	do {
		struct event *arr = NULL;
		size_t n = 0;
		char next[STORE_CURSOR_MAX];
		q.cursor = cursor[0] ? cursor : NULL;
		cr_assert_eq(store_event_list(st, &q, &arr, &n, next), STORE_OK);
		cr_assert_leq(n, (size_t)q.limit);
		for (size_t i = 0; i < n; i++) {
			strncat(buf, arr[i].id, buflen - strlen(buf) - 1);
			strncat(buf, ",", buflen - strlen(buf) - 1);
			event_clear(&arr[i]);
		}
		free(arr);
		snprintf(cursor, sizeof cursor, "%s", next);
		(*pages)++;
		cr_assert_lt(*pages, 100);
	} while (cursor[0]);
}

static void deliveries_all(struct delivery_query q, char *buf, size_t buflen, int *pages)
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

/* Events stored out of time order, two in the same millisecond, with
 * deliveries to two endpoints (e3 twice to ep_1, as after a replay). */
static void add_fixture(void)
{
	add_event("e1", "order.paid", 1000);
	add_event("e3", "order.paid", 3000);
	add_event("e2", "user.created", 2000);
	add_event("e4", "user.created", 4000);
	add_event("e5a", "order.paid", 5000);
	add_event("e5b", "user.created", 5000); /* same ms, stored after e5a */
	add_event("e6", "order.refunded", 6000);
	add_delivery("d1", "e1", "ep_1", "order.paid", 1000, DELIVERY_SUCCEEDED);
	add_delivery("d3", "e3", "ep_1", "order.paid", 3000, DELIVERY_DEAD);
	add_delivery("d3r", "e3", "ep_1", "order.paid", 7000, DELIVERY_PENDING);
	add_delivery("d3b", "e3", "ep_2", "order.paid", 3000, DELIVERY_SUCCEEDED);
	add_delivery("d4", "e4", "ep_2", "user.created", 4000, DELIVERY_DEAD);
	add_delivery("d5b", "e5b", "ep_1", "user.created", 5000, DELIVERY_SUCCEEDED);
}

Test(store_lists, events_newest_first_with_filters_and_pages)
{
	add_fixture();
	static const struct {
		const char *type;
		const char *endpoint_id;
		int64_t since, until; /* -1: not given */
		int limit;
		const char *want;
		int pages;
	} table[] = {
		{NULL, NULL, -1, -1, 100, "e6,e5b,e5a,e4,e3,e2,e1,", 1},
		{NULL, NULL, -1, -1, 7, "e6,e5b,e5a,e4,e3,e2,e1,", 1},
		{NULL, NULL, -1, -1, 3, "e6,e5b,e5a,e4,e3,e2,e1,", 3},
		{NULL, NULL, -1, -1, 1, "e6,e5b,e5a,e4,e3,e2,e1,", 7},
		{"order.paid", NULL, -1, -1, 2, "e5a,e3,e1,", 2},
		{"user.created", NULL, -1, -1, 10, "e5b,e4,e2,", 1},
		{"no.such", NULL, -1, -1, 10, "", 1},
		/* since inclusive, until exclusive, on created_at. */
		{NULL, NULL, 3000, -1, 10, "e6,e5b,e5a,e4,e3,", 1},
		{NULL, NULL, -1, 3000, 10, "e2,e1,", 1},
		{NULL, NULL, 2000, 5000, 1, "e4,e3,e2,", 3},
		{NULL, NULL, 5000, 5001, 1, "e5b,e5a,", 2},
		{NULL, NULL, 6001, -1, 10, "", 1},
		{NULL, NULL, 3000, 3000, 10, "", 1},
		/* At least one delivery to the endpoint; e3 once although
		 * it has two there. */
		{NULL, "ep_1", -1, -1, 10, "e5b,e3,e1,", 1},
		{NULL, "ep_1", -1, -1, 1, "e5b,e3,e1,", 3},
		{NULL, "ep_2", -1, -1, 10, "e4,e3,", 1},
		{NULL, "ep_none", -1, -1, 10, "", 1},
		{"order.paid", "ep_1", -1, -1, 10, "e3,e1,", 1},
		{"order.paid", "ep_1", 2000, 4000, 10, "e3,", 1},
		{"user.created", "ep_2", 4000, -1, 10, "e4,", 1},
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		struct event_query q = {.type = table[i].type,
					.endpoint_id = table[i].endpoint_id,
					.has_since = table[i].since >= 0,
					.since = table[i].since,
					.has_until = table[i].until >= 0,
					.until = table[i].until,
					.limit = table[i].limit};
		char buf[256];
		int pages;
		events_all(q, buf, sizeof buf, &pages);
		cr_assert_str_eq(buf, table[i].want, "row %zu", i);
		cr_assert_eq(pages, table[i].pages, "row %zu", i);
	}
}

Test(store_lists, events_carry_their_fields)
{
	add_event("evt_x", "media.moderated", 1234);
	struct event_query q = {.limit = 10};
	struct event *arr = NULL;
	size_t n = 0;
	char next[STORE_CURSOR_MAX];
	cr_assert_eq(store_event_list(st, &q, &arr, &n, next), STORE_OK);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(arr[0].id, "evt_x");
	cr_assert_str_eq(arr[0].type, "media.moderated");
	cr_assert_str_eq(arr[0].data, "{\"n\":\"evt_x\",\"s\":\"a b\\\"c\"}");
	cr_assert_eq(arr[0].created_at, 1234);
	cr_assert_str_eq(next, "");
	event_clear(&arr[0]);
	free(arr);
}

Test(store_lists, events_empty_store)
{
	struct event_query q = {.limit = 10, .type = "a.b", .has_since = true, .since = 0};
	struct event *arr = NULL;
	size_t n = 9;
	char next[STORE_CURSOR_MAX];
	cr_assert_eq(store_event_list(st, &q, &arr, &n, next), STORE_OK);
	cr_assert_eq(n, 0);
	cr_assert_str_eq(next, "");
	free(arr);
	q = (struct event_query){.limit = 10};
	cr_assert_eq(store_event_list(st, &q, &arr, &n, next), STORE_OK);
	cr_assert_eq(n, 0);
	cr_assert_str_eq(next, "");
	free(arr);
}

/* A cursor resumes below its event even when events arrive meanwhile,
 * and one that names no stored event, or is malformed, is an error. */
Test(store_lists, events_cursor_is_stable_and_checked)
{
	add_fixture();
	struct event_query q = {.limit = 2};
	struct event *arr = NULL;
	size_t n = 0;
	char next[STORE_CURSOR_MAX];
	cr_assert_eq(store_event_list(st, &q, &arr, &n, next), STORE_OK);
	cr_assert_eq(n, 2);
	for (size_t i = 0; i < n; i++)
		event_clear(&arr[i]);
	free(arr);
	add_event("e9", "order.paid", 9000); /* newer: not on later pages */
	add_event("e0", "order.paid", 500);  /* older: shows up at the end */
	char cursor[STORE_CURSOR_MAX];
	memcpy(cursor, next, sizeof cursor);
	q.cursor = cursor;
	q.limit = 100;
	cr_assert_eq(store_event_list(st, &q, &arr, &n, next), STORE_OK);
	char buf[128] = "";
	for (size_t i = 0; i < n; i++) {
		strcat(buf, arr[i].id);
		strcat(buf, ",");
		event_clear(&arr[i]);
	}
	free(arr);
	cr_assert_str_eq(buf, "e5a,e4,e3,e2,e1,e0,");

	q.cursor = "c999999";
	cr_assert_eq(store_event_list(st, &q, &arr, &n, next), STORE_NOTFOUND);
	cr_assert_eq(n, 0);
	q.cursor = "x12";
	cr_assert_eq(store_event_list(st, &q, &arr, &n, next), STORE_ERROR);
	cr_assert_eq(n, 0);
}

/* max_bytes ends a page early, but never before its first event. */
Test(store_lists, events_page_bytes_cap)
{
	add_fixture();
	/* Each data text is 23 or 24 bytes. */
	struct event_query q = {.limit = 100, .max_bytes = 40};
	char buf[256];
	int pages;
	events_all(q, buf, sizeof buf, &pages);
	cr_assert_str_eq(buf, "e6,e5b,e5a,e4,e3,e2,e1,");
	cr_assert_eq(pages, 4);
	q.max_bytes = 1;
	events_all(q, buf, sizeof buf, &pages);
	cr_assert_str_eq(buf, "e6,e5b,e5a,e4,e3,e2,e1,");
	cr_assert_eq(pages, 7);
}

/* With a type or endpoint filter a page looks at STORE_EVENT_SCAN_ROWS
 * events at most: past that many non-matching ones it comes back empty
 * with a cursor, which leads on to the match. */
Test(store_lists, events_filtered_walk_is_bounded)
{
	cr_assert_eq(store_begin(st), STORE_OK);
	add_event("rare", "rare.type", 1);
	add_delivery("d_rare", "rare", "ep_r", "rare.type", 1, DELIVERY_SUCCEEDED);
	for (int i = 0; i < STORE_EVENT_SCAN_ROWS + 10; i++) {
		char id[32];
		snprintf(id, sizeof id, "c%d", i);
		add_event(id, "common.type", 10 + i);
	}
	cr_assert_eq(store_commit(st), STORE_OK);
	static const struct event_query qs[] = {
		{.type = "rare.type", .limit = 10},
		{.endpoint_id = "ep_r", .limit = 10},
	};
	for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
		struct event_query q = qs[k];
		struct event *arr = NULL;
		size_t n = 9;
		char next[STORE_CURSOR_MAX];
		cr_assert_eq(store_event_list(st, &q, &arr, &n, next), STORE_OK);
		cr_assert_eq(n, 0, "query %zu", k);
		cr_assert_neq(next[0], '\0', "query %zu", k);
		free(arr);
		char buf[64];
		int pages;
		events_all(q, buf, sizeof buf, &pages);
		cr_assert_str_eq(buf, "rare,", "query %zu", k);
		cr_assert_eq(pages, 2, "query %zu", k);
	}
	/* Unfiltered, a page is simply full. */
	struct event_query q = {.limit = 5, .has_until = true, .until = 12};
	char buf[64];
	int pages;
	events_all(q, buf, sizeof buf, &pages);
	cr_assert_str_eq(buf, "c1,c0,rare,");
	cr_assert_eq(pages, 1);
}

/* --- deliveries: event_type, since, until ---------------------------------- */

Test(store_lists, deliveries_type_and_time_filters)
{
	add_fixture();
	static const struct {
		const char *endpoint_id;
		const char *event_id;
		int status;
		const char *type;
		int64_t since, until; /* -1: not given */
		int limit;
		const char *want;
	} table[] = {
		{NULL, NULL, -1, NULL, -1, -1, 100, "d5b,d4,d3b,d3r,d3,d1,"},
		{NULL, NULL, -1, "order.paid", -1, -1, 1, "d3b,d3r,d3,d1,"},
		{NULL, NULL, -1, "user.created", -1, -1, 10, "d5b,d4,"},
		{NULL, NULL, -1, "no.such", -1, -1, 10, ""},
		/* On the delivery's created_at: d3r (a replay) is at 7000. */
		{NULL, NULL, -1, NULL, 5000, -1, 10, "d5b,d3r,"},
		{NULL, NULL, -1, NULL, -1, 3000, 10, "d1,"},
		{NULL, NULL, -1, NULL, 3000, 5000, 2, "d4,d3b,d3,"},
		{NULL, NULL, -1, NULL, 7001, -1, 10, ""},
		{"ep_1", NULL, -1, "order.paid", -1, -1, 1, "d3r,d3,d1,"},
		{"ep_1", NULL, -1, NULL, 3000, 7000, 10, "d5b,d3,"},
		{"ep_2", NULL, -1, "user.created", 4000, 4001, 10, "d4,"},
		{NULL, "e3", -1, NULL, 3000, 3001, 10, "d3b,d3,"},
		{NULL, "e3", -1, "order.paid", 7000, -1, 10, "d3r,"},
		{NULL, NULL, DELIVERY_DEAD, NULL, 3500, -1, 10, "d4,"},
		{NULL, NULL, DELIVERY_DEAD, "order.paid", -1, -1, 10, "d3,"},
		{"ep_1", NULL, DELIVERY_DEAD, NULL, -1, 3000, 10, ""},
		{NULL, NULL, DELIVERY_SUCCEEDED, "user.created", -1, -1, 10, "d5b,"},
		{"ep_2", NULL, DELIVERY_SUCCEEDED, NULL, 1000, 3001, 10, "d3b,"},
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		struct delivery_query q = {.endpoint_id = table[i].endpoint_id,
					   .event_id = table[i].event_id,
					   .status = table[i].status,
					   .event_type = table[i].type,
					   .has_since = table[i].since >= 0,
					   .since = table[i].since,
					   .has_until = table[i].until >= 0,
					   .until = table[i].until,
					   .limit = table[i].limit};
		char buf[256];
		int pages;
		deliveries_all(q, buf, sizeof buf, &pages);
		cr_assert_str_eq(buf, table[i].want, "row %zu", i);
	}
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

/* The new filters walk seq in windows like a list by status: rows a
 * million apart come back on later pages, nothing skipped or repeated,
 * whichever index leads. */
Test(store_lists, deliveries_filters_walk_seq_in_windows)
{
	add_delivery("old", "e1", "ep_1", "t.a", 100, DELIVERY_DEAD);
	add_delivery("old_b", "e1", "ep_1", "t.b", 100, DELIVERY_DEAD);
	add_delivery("mid", "e2", "ep_1", "t.a", 200, DELIVERY_DEAD);
	add_delivery("new", "e3", "ep_1", "t.a", 300, DELIVERY_DEAD);
	shift_seq("id = 'new'", 2000000);
	shift_seq("id = 'mid'", 1000000);
	static const struct delivery_query qs[] = {
		{.status = -1, .event_type = "t.a", .limit = 10},
		{.endpoint_id = "ep_1", .status = -1, .event_type = "t.a", .limit = 10},
		{.status = DELIVERY_DEAD, .event_type = "t.a", .limit = 10},
		{.endpoint_id = "ep_1", .status = DELIVERY_DEAD, .has_until = true, .until = 301,
		 .event_type = "t.a", .limit = 10},
	};
	for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
		char buf[128];
		int pages;
		deliveries_all(qs[k], buf, sizeof buf, &pages);
		cr_assert_str_eq(buf, "new,mid,old,", "query %zu", k);
		cr_assert_eq(pages, 3, "query %zu", k);
	}
	/* An event's deliveries are few: that list is not windowed. */
	struct delivery_query q = {.event_id = "e1", .status = -1, .has_since = true, .since = 100,
				   .limit = 10};
	char buf[128];
	int pages;
	deliveries_all(q, buf, sizeof buf, &pages);
	cr_assert_str_eq(buf, "old_b,old,");
	cr_assert_eq(pages, 1);
}
