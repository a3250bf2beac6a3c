/* Unit tests for retention in the store (store_purge_events, store_size,
 * store_reclaim) on a database in a fresh temporary directory per test:
 * which rows go and which stay. A second backend must pass them too. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "test_tmpdir.h"

static char dir[4096];
static char db_url[4300];
static struct store *st;

static void setup(void)
{
	test_tmpdir_make(dir, sizeof dir, "hookd-retention");
	snprintf(db_url, sizeof db_url, "sqlite:%s/hookd.db", dir);
	char err[256] = "";
	cr_assert_eq(store_open(db_url, &st, err, sizeof err), STORE_OK, "open: %s", err);
}

static void teardown(void)
{
	store_close(st);
	st = NULL;
	test_tmpdir_remove(dir);
}

TestSuite(retention, .init = setup, .fini = teardown);
/* What only SQLite has (the file's free pages, incremental vacuum): tests/meson.build runs
 * only `retention` on PostgreSQL. */
TestSuite(retention_sqlite, .init = setup, .fini = teardown);

/* Times: the window ends at T (events created before it may go); dead
 * letters updated before D are past their --dlq-retention. */
#define T 10000
#define D 5000

static void add_event(const char *id, int64_t at)
{
	struct event e = {.type = "media.created", .data = "{\"n\":1}", .created_at = at};
	snprintf(e.id, sizeof e.id, "%s", id);
	cr_assert_eq(store_event_insert(st, &e), STORE_OK, "event %s", id);
}

static void add_delivery(const char *id, const char *event_id, enum delivery_status status,
			 int64_t updated_at)
{
	struct delivery d = {.event_type = "media.created",
			     .status = status,
			     .next_attempt_at = status == DELIVERY_PENDING ? updated_at : 0,
			     .created_at = 100,
			     .updated_at = updated_at};
	snprintf(d.id, sizeof d.id, "%s", id);
	snprintf(d.event_id, sizeof d.event_id, "%s", event_id);
	snprintf(d.endpoint_id, sizeof d.endpoint_id, "ep_%c", id[4]);
	cr_assert_eq(store_delivery_insert(st, &d), STORE_OK, "delivery %s", id);
	struct attempt a = {.attempt = 1, .at = 200, .url = "https://hooks.example.com/in",
			    .status = 500, .error_code = "http_status"};
	snprintf(a.delivery_id, sizeof a.delivery_id, "%s", id);
	attempt_measure_none(&a);
	cr_assert_eq(store_attempt_insert(st, &a), STORE_OK);
}

static bool event_exists(const char *id)
{
	struct event e;
	int rc = store_event_get(st, id, &e);
	event_clear(&e);
	return rc == STORE_OK;
}

static bool delivery_exists(const char *id)
{
	struct delivery d;
	int rc = store_delivery_get(st, id, &d);
	delivery_clear(&d);
	return rc == STORE_OK;
}

static size_t attempts_of(const char *id)
{
	struct attempt *arr = NULL;
	size_t n = 0;
	cr_assert_eq(store_attempt_list(st, id, &arr, &n), STORE_OK);
	for (size_t i = 0; i < n; i++)
		attempt_clear(&arr[i]);
	free(arr);
	return n;
}

static bool key_exists(const char *key)
{
	json_t *ids = NULL;
	int rc = store_idem_get(st, key, &ids);
	json_decref(ids);
	return rc == STORE_OK;
}

static void add_key(const char *key, int64_t at, const char *ev1, const char *ev2)
{
	json_t *ids = ev2 ? json_pack("[s, s]", ev1, ev2) : json_pack("[s]", ev1);
	cr_assert_eq(store_idem_put(st, key, ids, at), STORE_OK);
	json_decref(ids);
}

/* Dead letters the purge reports, per endpoint "ep_X" (X in a..z). */
struct dead_seen {
	int64_t n[26];
	int calls;
	int refuse; /* non-zero: the callback returns it */
};

static int note_dead(const char *endpoint_id, int64_t n, void *arg)
{
	struct dead_seen *s = arg;
	s->calls++;
	if (s->refuse)
		return s->refuse;
	cr_assert(strlen(endpoint_id) == 4 && endpoint_id[3] >= 'a' && endpoint_id[3] <= 'z');
	s->n[endpoint_id[3] - 'a'] += n;
	return 0;
}

/* Runs batches from the start until done (at most 100). */
static struct store_retention_result purge_all(const struct store_retention *r,
					       struct dead_seen *seen)
{
	struct store_retention_cursor cur = STORE_RETENTION_START;
	struct store_retention_result sum = {0}, res;
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(store_purge_events(st, r, &cur, &res, note_dead, seen), STORE_OK);
		sum.events += res.events;
		sum.deliveries += res.deliveries;
		sum.attempts += res.attempts;
		sum.keys += res.keys;
		if (res.done) {
			sum.done = true;
			return sum;
		}
	}
	cr_assert_fail("the purge never finished");
	return sum;
}

/* Which events go: the table of cases. Delivery ids are "dlv_X..." where X
 * names the endpoint (ep_X). */
Test(retention, final_old_events_go_the_rest_stay)
{
	add_event("evt_ok", 100);             /* every delivery succeeded: goes */
	add_delivery("dlv_a_ok1", "evt_ok", DELIVERY_SUCCEEDED, 200);
	add_delivery("dlv_b_ok2", "evt_ok", DELIVERY_SUCCEEDED, 200);
	add_event("evt_none", 100);           /* matched no endpoint: goes */
	add_event("evt_deadold", 200);        /* succeeded + dead past dlq retention: goes */
	add_delivery("dlv_a_do1", "evt_deadold", DELIVERY_SUCCEEDED, 300);
	add_delivery("dlv_c_do2", "evt_deadold", DELIVERY_DEAD, D - 1);
	add_event("evt_pending", 100);        /* a delivery due (or in flight): stays */
	add_delivery("dlv_a_pe1", "evt_pending", DELIVERY_SUCCEEDED, 200);
	add_delivery("dlv_b_pe2", "evt_pending", DELIVERY_PENDING, 150);
	add_event("evt_sched", 100);          /* a retry scheduled later: stays */
	add_delivery("dlv_a_sc1", "evt_sched", DELIVERY_PENDING, T + 60000);
	add_event("evt_deadnew", 100);        /* a dead letter still kept: stays */
	add_delivery("dlv_a_dn1", "evt_deadnew", DELIVERY_SUCCEEDED, 200);
	add_delivery("dlv_c_dn2", "evt_deadnew", DELIVERY_DEAD, D);
	add_event("evt_young", T);            /* final but in the window: stays */
	add_delivery("dlv_a_yo1", "evt_young", DELIVERY_SUCCEEDED, T);

	struct store_retention r = {.before = T, .dead_before = D, .max_events = 500,
				    .max_deliveries = 2000, .max_scan = 5000};
	struct dead_seen seen = {0};
	struct store_retention_result sum = purge_all(&r, &seen);
	cr_assert_eq(sum.events, 3);
	cr_assert_eq(sum.deliveries, 4);
	cr_assert_eq(sum.attempts, 4);
	cr_assert_eq(seen.n['c' - 'a'], 1, "the expired dead letter is reported");
	cr_assert_eq(seen.n[0] + seen.n[1], 0);

	cr_assert(!event_exists("evt_ok"));
	cr_assert(!event_exists("evt_none"));
	cr_assert(!event_exists("evt_deadold"));
	static const char *const gone[] = {"dlv_a_ok1", "dlv_b_ok2", "dlv_a_do1", "dlv_c_do2"};
	for (size_t i = 0; i < 4; i++) {
		cr_assert(!delivery_exists(gone[i]), "%s", gone[i]);
		cr_assert_eq(attempts_of(gone[i]), 0, "%s", gone[i]);
	}
	static const char *const kept_ev[] = {"evt_pending", "evt_sched", "evt_deadnew",
					      "evt_young"};
	for (size_t i = 0; i < 4; i++)
		cr_assert(event_exists(kept_ev[i]), "%s", kept_ev[i]);
	static const char *const kept[] = {"dlv_a_pe1", "dlv_b_pe2", "dlv_a_sc1",
					   "dlv_a_dn1", "dlv_c_dn2", "dlv_a_yo1"};
	for (size_t i = 0; i < 6; i++) {
		cr_assert(delivery_exists(kept[i]), "%s", kept[i]);
		cr_assert_eq(attempts_of(kept[i]), 1, "%s", kept[i]);
	}

	/* Again: nothing more goes. */
	sum = purge_all(&r, &seen);
	cr_assert_eq(sum.events + sum.deliveries + sum.attempts, 0);
}

Test(retention, keys_go_once_their_events_are_gone_and_they_are_old)
{
	add_event("evt_gone1", 100);
	add_event("evt_gone2", 100);
	add_event("evt_kept", 100);
	add_delivery("dlv_a_k1", "evt_kept", DELIVERY_PENDING, 100);
	add_event("evt_young", T + 1);
	add_key("k_gone", 100, "evt_gone1", "evt_gone2"); /* both events go: goes */
	add_key("k_half", 100, "evt_gone1", "evt_kept");  /* one event stays: stays */
	add_key("k_missing", 100, "evt_never", NULL);     /* no event stored: goes */
	add_key("k_young", T, "evt_gone2", NULL);         /* in the window: stays */
	add_key("k_young_ev", 100, "evt_young", NULL);    /* its event in the window: stays */

	struct store_retention r = {.before = T, .dead_before = D, .max_events = 500,
				    .max_deliveries = 2000, .max_scan = 5000};
	struct dead_seen seen = {0};
	struct store_retention_result sum = purge_all(&r, &seen);
	cr_assert_eq(sum.events, 2);
	cr_assert_eq(sum.keys, 2);
	cr_assert(!key_exists("k_gone"));
	cr_assert(!key_exists("k_missing"));
	cr_assert(key_exists("k_half"));
	cr_assert(key_exists("k_young"));
	cr_assert(key_exists("k_young_ev"));
	/* A key that is gone can be used again. */
	add_key("k_gone", T + 5, "evt_young", NULL);
	cr_assert(key_exists("k_gone"));
}

/* Batches are bounded (max_events deleted, max_scan looked at) and a run
 * walks past events that stay instead of stopping at them. */
Test(retention, batches_are_bounded_and_walk_past_kept_events)
{
	char id[32], dlv[32];
	for (int i = 0; i < 30; i++) {
		snprintf(id, sizeof id, "evt_kept%02d", i);
		add_event(id, 100 + i); /* the oldest 30 stay */
		snprintf(dlv, sizeof dlv, "dlv_a_k%02d", i);
		add_delivery(dlv, id, DELIVERY_PENDING, 100);
	}
	for (int i = 0; i < 25; i++) {
		snprintf(id, sizeof id, "evt_old%02d", i);
		/* Five in each millisecond: the cursor's position breaks ties. */
		add_event(id, 1000 + i / 5);
	}
	struct store_retention r = {.before = T, .dead_before = D, .max_events = 4,
				    .max_deliveries = 100, .max_scan = 10};
	struct store_retention_cursor cur = STORE_RETENTION_START;
	struct store_retention_result res;
	int batches = 0;
	int64_t total = 0;
	do {
		cr_assert_eq(store_purge_events(st, &r, &cur, &res, NULL, NULL), STORE_OK);
		cr_assert_leq(res.events, 4, "at most max_events a batch");
		total += res.events;
		cr_assert_lt(++batches, 50);
	} while (!res.done);
	cr_assert_eq(total, 25);
	cr_assert_geq(batches, 10, "30 kept + 25 gone need at least 3 + 7 batches, got %d", batches);
	for (int i = 0; i < 25; i++) {
		snprintf(id, sizeof id, "evt_old%02d", i);
		cr_assert(!event_exists(id), "%s", id);
	}
	for (int i = 0; i < 30; i++) {
		snprintf(id, sizeof id, "evt_kept%02d", i);
		cr_assert(event_exists(id), "%s", id);
	}
}

Test(retention, a_refusing_callback_deletes_nothing)
{
	add_event("evt_dead", 100);
	add_delivery("dlv_c_d1", "evt_dead", DELIVERY_DEAD, 100);
	add_event("evt_ok", 100);
	add_delivery("dlv_a_o1", "evt_ok", DELIVERY_SUCCEEDED, 100);
	struct store_retention r = {.before = T, .dead_before = D, .max_events = 500,
				    .max_deliveries = 2000, .max_scan = 5000};
	struct store_retention_cursor cur = STORE_RETENTION_START, start = STORE_RETENTION_START;
	struct store_retention_result res;
	struct dead_seen seen = {.refuse = STORE_ERROR};
	cr_assert_eq(store_purge_events(st, &r, &cur, &res, note_dead, &seen), STORE_ERROR);
	cr_assert_eq(seen.calls, 1);
	cr_assert_eq(res.events, 0);
	cr_assert(memcmp(&cur, &start, sizeof cur) == 0, "the cursor is unchanged");
	cr_assert(event_exists("evt_dead") && event_exists("evt_ok"));
	cr_assert(delivery_exists("dlv_c_d1") && delivery_exists("dlv_a_o1"));
	cr_assert_eq(attempts_of("dlv_c_d1"), 1);
}

Test(retention, bad_bounds_are_refused)
{
	struct store_retention_cursor cur = STORE_RETENTION_START;
	struct store_retention_result res;
	struct store_retention r = {.before = T, .dead_before = D, .max_events = 0,
				    .max_deliveries = 10, .max_scan = 10};
	cr_assert_eq(store_purge_events(st, &r, &cur, &res, NULL, NULL), STORE_ERROR);
	r.max_events = 20;
	cr_assert_eq(store_purge_events(st, &r, &cur, &res, NULL, NULL), STORE_ERROR);
	r.max_events = 5;
	r.max_deliveries = 0;
	cr_assert_eq(store_purge_events(st, &r, &cur, &res, NULL, NULL), STORE_ERROR);
}

/* A batch stops adding events once their deliveries would pass
 * max_deliveries, and an event with more than that goes alone. */
Test(retention, batches_are_bounded_by_deliveries)
{
	static const struct {
		const char *event;
		int deliveries;
	} evs[] = {{"evt_1", 2}, {"evt_2", 2}, {"evt_3", 7}, {"evt_4", 1}, {"evt_5", 0},
		   {"evt_6", 3}};
	char dlv[32];
	for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
		add_event(evs[i].event, 100 + (int64_t)i);
		for (int k = 0; k < evs[i].deliveries; k++) {
			snprintf(dlv, sizeof dlv, "dlv_a_%zu_%d", i, k);
			add_delivery(dlv, evs[i].event, DELIVERY_SUCCEEDED, 200);
		}
	}
	struct store_retention r = {.before = T, .dead_before = D, .max_events = 500,
				    .max_deliveries = 4, .max_scan = 5000};
	struct store_retention_cursor cur = STORE_RETENTION_START;
	struct store_retention_result res;
	/* evt_1 + evt_2 (4), evt_3 alone (7), evt_4 + evt_5 + evt_6 (4). */
	static const int64_t want_events[] = {2, 1, 3}, want_deliveries[] = {4, 7, 4};
	for (int b = 0; b < 3; b++) {
		cr_assert_eq(store_purge_events(st, &r, &cur, &res, NULL, NULL), STORE_OK);
		cr_assert_eq(res.events, want_events[b], "batch %d: %lld events", b,
			     (long long)res.events);
		cr_assert_eq(res.deliveries, want_deliveries[b], "batch %d", b);
		cr_assert_eq(res.attempts, want_deliveries[b], "batch %d", b);
	}
	cr_assert_eq(store_purge_events(st, &r, &cur, &res, NULL, NULL), STORE_OK);
	cr_assert(res.done);
	cr_assert_eq(res.events, 0);
	for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
		cr_assert(!event_exists(evs[i].event), "%s", evs[i].event);
}

/* The size figures follow the data, and the pages freed go back to the file
 * system in steps (a new database is made with auto_vacuum=INCREMENTAL). */
Test(retention_sqlite, size_and_reclaim)
{
	struct store_size before, grown, after;
	cr_assert_eq(store_size(st, &before), STORE_OK);
	cr_assert_gt(before.file_bytes, 0);
	cr_assert_geq(before.wal_bytes, 0);
	cr_assert_geq(before.free_bytes, 0);

	char *blob = malloc(8001);
	cr_assert_not_null(blob);
	memset(blob, 'x', 8000);
	blob[8000] = '\0';
	char data[8100];
	snprintf(data, sizeof data, "{\"b\":\"%s\"}", blob);
	free(blob);
	cr_assert_eq(store_begin(st), STORE_OK);
	for (int i = 0; i < 500; i++) {
		struct event e = {.type = "media.created", .data = data, .created_at = 100};
		snprintf(e.id, sizeof e.id, "evt_%04d", i);
		cr_assert_eq(store_event_insert(st, &e), STORE_OK);
	}
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert_eq(store_wal_truncate(st), STORE_OK);
	cr_assert_eq(store_size(st, &grown), STORE_OK);
	cr_assert_gt(grown.file_bytes, before.file_bytes + 3000000, "%lld -> %lld",
		     (long long)before.file_bytes, (long long)grown.file_bytes);

	struct store_retention r = {.before = T, .dead_before = D, .max_events = 500,
				    .max_deliveries = 2000, .max_scan = 5000};
	struct dead_seen seen = {0};
	cr_assert_eq(store_begin(st), STORE_OK);
	struct store_retention_result sum = purge_all(&r, &seen);
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert_eq(sum.events, 500);
	cr_assert_eq(store_wal_truncate(st), STORE_OK);
	cr_assert_eq(store_size(st, &after), STORE_OK);
	cr_assert_gt(after.free_bytes, 3000000, "the freed pages are on the free list");

	int64_t freed = 0, total = 0;
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(store_begin(st), STORE_OK);
		cr_assert_eq(store_reclaim(st, 16, &freed), STORE_OK);
		cr_assert_eq(store_commit(st), STORE_OK);
		cr_assert_leq(freed, 16 * 16384, "one step frees at most its pages");
		total += freed;
		if (freed == 0)
			break;
	}
	cr_assert_eq(store_wal_truncate(st), STORE_OK);
	cr_assert_eq(store_size(st, &after), STORE_OK);
	cr_assert_eq(after.free_bytes, 0);
	cr_assert_gt(total, 3000000);
	cr_assert_lt(after.file_bytes, grown.file_bytes - 3000000, "%lld -> %lld",
		     (long long)grown.file_bytes, (long long)after.file_bytes);
}
