/* Unit tests for store_event_get_many: the same results as store_event_get
 * one by one, for small batches (read one by one) and large ones (one read
 * transaction, a pass over the id index), ids near and far apart, and the
 * read transaction never outlives the call. */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"
#include "test_store_db.h"

/* The test's database (test_store_db.h: SQLite or PostgreSQL). */
static struct test_db db;
static struct store *st, *writer;

static void setup(void)
{
	test_db_make(&db, "hookd-reads");
	char err[256] = "";
	cr_assert_eq(store_open(db.url, &writer, err, sizeof err), STORE_OK, "open: %s", err);
	cr_assert_eq(store_open(db.url, &st, err, sizeof err), STORE_OK, "open: %s", err);
}

static void teardown(void)
{
	store_close(st);
	store_close(writer);
	test_db_remove(&db);
}

TestSuite(reads, .init = setup, .fini = teardown);

static void insert_event(int i)
{
	char type[32], data[64];
	struct event e;
	memset(&e, 0, sizeof e);
	snprintf(e.id, sizeof e.id, "evt_%03d", i);
	snprintf(type, sizeof type, "type.%d", i % 3);
	snprintf(data, sizeof data, "{\"i\":%d}", i);
	e.type = type;
	e.data = data;
	e.created_at = 1700000000000 + i;
	cr_assert_eq(store_begin(writer), STORE_OK);
	cr_assert_eq(store_event_insert(writer, &e), STORE_OK);
	cr_assert_eq(store_commit(writer), STORE_OK);
}

/* Reads ids[0..n) both ways and compares every field and result. */
static void compare(const char *const *ids, size_t n)
{
	struct event *many = calloc(n, sizeof *many);
	int *rcs = calloc(n, sizeof *rcs);
	cr_assert(many != NULL && rcs != NULL);
	store_event_get_many(st, ids, n, many, rcs);
	for (size_t i = 0; i < n; i++) {
		struct event one;
		int rc = store_event_get(st, ids[i], &one);
		cr_assert_eq(rcs[i], rc, "id %s: %d vs %d", ids[i], rcs[i], rc);
		if (rc == STORE_OK) {
			cr_assert_str_eq(many[i].id, one.id);
			cr_assert_str_eq(many[i].type, one.type);
			cr_assert_str_eq(many[i].data, one.data);
			cr_assert_eq(many[i].created_at, one.created_at);
			event_clear(&one);
			event_clear(&many[i]);
		}
	}
	free(many);
	free(rcs);
}

Test(reads, same_as_one_by_one)
{
	for (int i = 0; i < 40; i++)
		insert_event(i);
	static const char *ids[] = {
		"evt_000", "evt_missing", "evt_039", "evt_005", "evt_005", "evt_017",
		"evt_020", "evt_021", "evt_022", "evt_023", "evt_nope", "evt_030",
	};
	size_t total = sizeof ids / sizeof ids[0];
	/* Every batch size, so both the one-by-one and the transaction path run. */
	for (size_t n = 1; n <= total; n++)
		compare(ids, n);
	struct event e;
	int rc = -1;
	store_event_get_many(st, ids, 0, &e, &rc);
	cr_assert_eq(rc, -1, "nothing read for n = 0");
}

/* Ids far apart: the pass over the id index stops at its row limit (four
 * rows per wanted id) and the rest are looked up one by one, same results. */
Test(reads, ids_far_apart_past_the_pass_limit)
{
	for (int i = 0; i < 40; i++)
		insert_event(i);
	static const char *ids[] = {"evt_039", "evt_000", "evt_020", "evt_038", "evt_zzz"};
	compare(ids, sizeof ids / sizeof ids[0]);
}

/* After a batch the reader holds no snapshot: a row committed later by
 * another connection is seen by the next batch (a transaction left open
 * would keep showing the old snapshot). */
Test(reads, snapshot_ends_with_the_call)
{
	for (int i = 0; i < 8; i++)
		insert_event(i);
	const char *ids[8] = {"evt_000", "evt_001", "evt_002", "evt_003",
			      "evt_004", "evt_005", "evt_006", "evt_100"};
	struct event evs[8];
	int rcs[8];
	for (int round = 0; round < 2; round++) {
		memset(evs, 0, sizeof evs);
		store_event_get_many(st, ids, 8, evs, rcs);
		for (int i = 0; i < 7; i++)
			cr_assert_eq(rcs[i], STORE_OK, "round %d id %s", round, ids[i]);
		cr_assert_eq(rcs[7], round == 0 ? STORE_NOTFOUND : STORE_OK, "round %d", round);
		for (int i = 0; i < 8; i++)
			event_clear(&evs[i]);
		if (round == 0)
			insert_event(100);
	}
}
