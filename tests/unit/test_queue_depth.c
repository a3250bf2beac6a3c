/* Unit tests for queue_depth: the figures after each kind of move (a
 * table), retries becoming due as time passes, waiting endpoints, the
 * seed from a real SQLite store, and randomized runs against a brute-force
 * reference over a list of deliveries, fed through real store calls and
 * compared again after a "restart" (a new view seeded from the store). */
#include <criterion/criterion.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "queue_depth.h"
#include "store.h"
#include "test_store_db.h"

#define T0 INT64_C(1700000000000) /* a wall time in ms, on a whole second */

/* ---- blocked endpoints ---- */

/* blocked_fn's argument: endpoint ids that cannot send, NULL-terminated. */
static bool blocked_fn(const char *endpoint_id, void *arg)
{
	for (const char *const *b = arg; b != NULL && *b != NULL; b++)
		if (strcmp(*b, endpoint_id) == 0)
			return true;
	return false;
}

static void read_fig(struct queue_depth *q, const char *ep, int64_t now, const char *const *blocked,
		     struct queue_figures *f)
{
	queue_depth_read(q, ep, now, blocked_fn, (void *)blocked, f);
}

static void assert_fig(const struct queue_figures *got, const struct queue_figures *want,
		       const char *what)
{
	cr_assert_eq(got->pending, want->pending, "%s: pending %" PRId64 " want %" PRId64, what,
		     got->pending, want->pending);
	cr_assert_eq(got->due, want->due, "%s: due %" PRId64 " want %" PRId64, what, got->due,
		     want->due);
	cr_assert_eq(got->scheduled, want->scheduled, "%s: scheduled %" PRId64 " want %" PRId64,
		     what, got->scheduled, want->scheduled);
	cr_assert_eq(got->waiting, want->waiting, "%s: waiting %" PRId64 " want %" PRId64, what,
		     got->waiting, want->waiting);
	cr_assert_eq(got->dead, want->dead, "%s: dead %" PRId64 " want %" PRId64, what, got->dead,
		     want->dead);
	cr_assert(fabs(got->oldest_pending_age_s - want->oldest_pending_age_s) < 1e-9,
		  "%s: oldest age %.3f want %.3f", what, got->oldest_pending_age_s,
		  want->oldest_pending_age_s);
	cr_assert_eq(got->pending, got->due + got->scheduled + got->waiting,
		     "%s: pending is not due + scheduled + waiting", what);
}

/* ---- the table: moves as the commit thread feeds them ---- */

enum step_kind {
	STEP_END = 0,
	STEP_CREATE,   /* n new pending at `at` (ingest, test, replay) */
	STEP_SUCCEED,  /* n results: pending at `at` -> succeeded, one group */
	STEP_RETRY,    /* n results: pending at `at` -> pending at `to` (a batch moves as one) */
	STEP_DEAD,     /* n results: pending at `at` -> dead */
	STEP_DLQ,      /* n dead -> pending at `to` (DLQ retry) */
	STEP_PURGE,    /* n dead purged */
	STEP_DELETE,   /* the endpoint is deleted */
};

struct step {
	enum step_kind kind;
	const char *ep;
	int64_t at;
	int64_t n;
	int64_t to;
};

struct check {
	const char *ep;            /* NULL: the whole queue */
	int64_t now;
	const char *blocked[3];
	struct queue_figures want; /* pending, due, scheduled, waiting, dead, age */
};

struct qd_case {
	const char *name;
	struct step steps[8];
	struct check checks[5];
};

/* Runs a step the way its committed op feeds it. */
static void run_step(struct queue_depth *q, const struct step *s)
{
	switch (s->kind) {
	case STEP_CREATE: {
		struct pending p[16];
		cr_assert_leq(s->n, 16);
		memset(p, 0, sizeof p);
		for (int64_t i = 0; i < s->n; i++) {
			snprintf(p[i].endpoint_id, sizeof p[i].endpoint_id, "%s", s->ep);
			p[i].next_attempt_at = s->at;
		}
		queue_depth_created(q, p, (size_t)s->n);
		break;
	}
	case STEP_SUCCEED:
	case STEP_RETRY:
	case STEP_DEAD:
		queue_depth_lock(q);
		for (int64_t i = 0; i < s->n; i++) {
			queue_depth_remove_pending_locked(q, s->ep, s->at);
			if (s->kind == STEP_RETRY)
				queue_depth_add_pending_locked(q, s->ep, s->to, 1);
			else if (s->kind == STEP_DEAD)
				queue_depth_add_dead_locked(q, s->ep, 1);
		}
		queue_depth_unlock(q);
		break;
	case STEP_DLQ:
		queue_depth_dead_retried(q, s->ep, s->to, s->n);
		break;
	case STEP_PURGE:
		queue_depth_lock(q);
		queue_depth_add_dead_locked(q, s->ep, -s->n);
		queue_depth_unlock(q);
		break;
	case STEP_DELETE:
		queue_depth_endpoint_deleted(q, s->ep);
		break;
	case STEP_END:
		break;
	}
}

static const struct qd_case cases[] = {
	{"new deliveries are due at once, aged since ingest",
	 {{STEP_CREATE, "ep_a", T0 + 200, 3, 0}},
	 {{"ep_a", T0 + 700, {NULL}, {3, 3, 0, 0, 0, 0.5}},
	  {NULL, T0 + 2200, {NULL}, {3, 3, 0, 0, 0, 2.0}},
	  {"ep_b", T0 + 700, {NULL}, {0, 0, 0, 0, 0, 0.0}}}},
	{"a delivery due later in the current second is not yet due",
	 {{STEP_CREATE, "ep_a", T0 + 900, 1, 0}},
	 {{"ep_a", T0 + 850, {NULL}, {1, 0, 1, 0, 0, 0.0}},
	  {"ep_a", T0 + 950, {NULL}, {1, 1, 0, 0, 0, 0.05}}}},
	{"a success leaves the queue",
	 {{STEP_CREATE, "ep_a", T0, 2, 0}, {STEP_SUCCEED, "ep_a", T0, 1, 0}},
	 {{"ep_a", T0 + 1000, {NULL}, {1, 1, 0, 0, 0, 1.0}},
	  {NULL, T0 + 1000, {NULL}, {1, 1, 0, 0, 0, 1.0}}}},
	{"a retry is scheduled, then due as time passes",
	 {{STEP_CREATE, "ep_a", T0, 1, 0}, {STEP_RETRY, "ep_a", T0, 1, T0 + 60000}},
	 {{"ep_a", T0 + 1000, {NULL}, {1, 0, 1, 0, 0, 0.0}},
	  {"ep_a", T0 + 59999, {NULL}, {1, 0, 1, 0, 0, 0.0}},
	  {"ep_a", T0 + 60000, {NULL}, {1, 1, 0, 0, 0, 0.0}},
	  {"ep_a", T0 + 65500, {NULL}, {1, 1, 0, 0, 0, 5.5}}}},
	{"a batch of five moves as one group",
	 {{STEP_CREATE, "ep_a", T0, 5, 0},
	  {STEP_CREATE, "ep_a", T0 + 3000, 1, 0},
	  {STEP_RETRY, "ep_a", T0, 5, T0 + 10000}},
	 {{"ep_a", T0 + 4000, {NULL}, {6, 1, 5, 0, 0, 1.0}},
	  {"ep_a", T0 + 12000, {NULL}, {6, 6, 0, 0, 0, 9.0}}}},
	{"the oldest due is the earliest among the due, not the scheduled",
	 {{STEP_CREATE, "ep_a", T0 + 5000, 1, 0},
	  {STEP_CREATE, "ep_b", T0 + 2000, 2, 0},
	  {STEP_RETRY, "ep_b", T0 + 2000, 1, T0 + 99000}},
	 {{NULL, T0 + 10000, {NULL}, {3, 2, 1, 0, 0, 8.0}},
	  {"ep_a", T0 + 10000, {NULL}, {1, 1, 0, 0, 0, 5.0}}}},
	{"an endpoint that cannot send holds waiting deliveries, outside the oldest age",
	 {{STEP_CREATE, "ep_a", T0 + 4000, 1, 0},
	  {STEP_CREATE, "ep_b", T0, 3, 0},
	  {STEP_RETRY, "ep_b", T0, 1, T0 + 50000}},
	 {{NULL, T0 + 6000, {"ep_b", NULL}, {4, 1, 0, 3, 0, 2.0}},
	  {"ep_b", T0 + 6000, {"ep_b", NULL}, {3, 0, 0, 3, 0, 0.0}},
	  {NULL, T0 + 6000, {"ep_a", "ep_b", NULL}, {4, 0, 0, 4, 0, 0.0}},
	  {NULL, T0 + 6000, {NULL}, {4, 3, 1, 0, 0, 6.0}}}},
	{"dead letters, retried one and all, then purged",
	 {{STEP_CREATE, "ep_a", T0, 4, 0},
	  {STEP_DEAD, "ep_a", T0, 4, 0},
	  {STEP_DLQ, "ep_a", 0, 1, T0 + 7000},
	  {STEP_DLQ, "ep_a", 0, 2, T0 + 8000},
	  {STEP_DEAD, "ep_a", T0 + 7000, 1, 0},
	  {STEP_PURGE, "ep_a", 0, 1, 0}},
	 {{"ep_a", T0 + 9000, {NULL}, {2, 2, 0, 0, 1, 1.0}}}},
	{"a purge never takes the dead count below zero",
	 {{STEP_CREATE, "ep_a", T0, 1, 0}, {STEP_DEAD, "ep_a", T0, 1, 0},
	  {STEP_PURGE, "ep_a", 0, 3, 0}},
	 {{"ep_a", T0, {NULL}, {0, 0, 0, 0, 0, 0.0}}}},
	{"deleting an endpoint drops its figures only",
	 {{STEP_CREATE, "ep_a", T0, 2, 0},
	  {STEP_CREATE, "ep_b", T0 + 1000, 1, 0},
	  {STEP_DEAD, "ep_a", T0, 1, 0},
	  {STEP_DELETE, "ep_a", 0, 0, 0}},
	 {{"ep_a", T0 + 3000, {NULL}, {0, 0, 0, 0, 0, 0.0}},
	  {NULL, T0 + 3000, {NULL}, {1, 1, 0, 0, 0, 2.0}}}},
	{"a delivery created for a deleted endpoint counts again (the store keeps it)",
	 {{STEP_CREATE, "ep_a", T0, 1, 0}, {STEP_DELETE, "ep_a", 0, 0, 0},
	  {STEP_CREATE, "ep_a", T0 + 1000, 1, 0}},
	 {{"ep_a", T0 + 1000, {NULL}, {1, 1, 0, 0, 0, 0.0}}}},
};

Test(queue_depth, moves_table)
{
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct queue_depth *q = queue_depth_new();
		cr_assert_not_null(q);
		for (const struct step *s = cases[c].steps; s->kind != STEP_END; s++)
			run_step(q, s);
		for (const struct check *k = cases[c].checks; k->now != 0; k++) {
			struct queue_figures f;
			char what[256];
			snprintf(what, sizeof what, "%s [%s at +%" PRId64 "ms]", cases[c].name,
				 k->ep ? k->ep : "all", k->now - T0);
			read_fig(q, k->ep, k->now, k->blocked, &f);
			assert_fig(&f, &k->want, what);
		}
		queue_depth_free(q);
	}
}

Test(queue_depth, a_removal_where_nothing_is_takes_the_earliest_and_is_counted)
{
	struct queue_depth *q = queue_depth_new();
	struct step steps[] = {{STEP_CREATE, "ep_a", T0, 1, 0},
			       {STEP_CREATE, "ep_a", T0 + 30000, 1, 0},
			       {STEP_SUCCEED, "ep_a", T0 + 9000, 1, 0}, /* no such second */
			       {STEP_SUCCEED, "ep_b", T0, 1, 0}};      /* no such endpoint */
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
		run_step(q, &steps[i]);
	struct queue_figures f;
	read_fig(q, "ep_a", T0 + 40000, NULL, &f);
	struct queue_figures want = {1, 1, 0, 0, 0, 10.0};
	assert_fig(&f, &want, "the earliest second was taken");
	struct queue_depth_health h;
	queue_depth_health(q, &h);
	cr_assert_eq(h.misses, 2);
	cr_assert_eq(h.lost, 0);
	queue_depth_free(q);
}

struct each_seen {
	int n;
	int64_t pending, dead;
};

static int each_count(const char *endpoint_id, const struct queue_figures *f, void *arg)
{
	struct each_seen *s = arg;
	cr_assert(strcmp(endpoint_id, "ep_a") == 0 || strcmp(endpoint_id, "ep_b") == 0,
		  "unexpected endpoint %s", endpoint_id);
	s->n++;
	s->pending += f->pending;
	s->dead += f->dead;
	return 0;
}

static int each_stop(const char *endpoint_id, const struct queue_figures *f, void *arg)
{
	(void)endpoint_id;
	(void)f;
	(*(int *)arg)++;
	return 7;
}

Test(queue_depth, each_visits_every_endpoint_and_stops_when_asked)
{
	struct queue_depth *q = queue_depth_new();
	struct step steps[] = {{STEP_CREATE, "ep_a", T0, 2, 0},
			       {STEP_CREATE, "ep_b", T0, 3, 0},
			       {STEP_DEAD, "ep_b", T0, 1, 0},
			       {STEP_CREATE, "ep_c", T0, 1, 0},
			       {STEP_DELETE, "ep_c", 0, 0, 0}};
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
		run_step(q, &steps[i]);
	struct each_seen seen = {0};
	cr_assert_eq(queue_depth_each(q, T0, NULL, NULL, each_count, &seen), 0);
	cr_assert_eq(seen.n, 2);
	cr_assert_eq(seen.pending, 4);
	cr_assert_eq(seen.dead, 1);
	int calls = 0;
	cr_assert_eq(queue_depth_each(q, T0, NULL, NULL, each_stop, &calls), 7);
	cr_assert_eq(calls, 1);
	queue_depth_free(q);
}

Test(queue_depth, a_null_view_reads_zeros_and_takes_feeds)
{
	struct queue_figures f = {.pending = 9};
	struct step s = {STEP_CREATE, "ep_a", T0, 1, 0};
	run_step(NULL, &s);
	queue_depth_read(NULL, NULL, T0, NULL, NULL, &f);
	struct queue_figures zero = {0};
	assert_fig(&f, &zero, "NULL view");
}

Test(queue_depth, many_distinct_seconds_grow_and_shrink_the_table)
{
	struct queue_depth *q = queue_depth_new();
	/* A backlog spread over 5000 seconds, then drained. */
	for (int64_t i = 0; i < 5000; i++) {
		struct step s = {STEP_CREATE, "ep_a", T0 + i * 1000 + i % 1000, 2, 0};
		run_step(q, &s);
	}
	struct queue_figures f;
	read_fig(q, "ep_a", T0 + 2499999, NULL, &f);
	struct queue_figures want = {10000, 5000, 5000, 0, 0, 2499.999};
	assert_fig(&f, &want, "spread backlog");
	for (int64_t i = 0; i < 5000; i++) {
		struct step s = {STEP_SUCCEED, "ep_a", T0 + i * 1000 + i % 1000, 2, 0};
		run_step(q, &s);
	}
	read_fig(q, "ep_a", T0 + 2499999, NULL, &f);
	struct queue_figures empty = {0};
	assert_fig(&f, &empty, "drained");
	struct queue_depth_health h;
	queue_depth_health(q, &h);
	cr_assert_eq(h.misses, 0);
	queue_depth_free(q);
}

/* ---- a real store ---- */

/* On the backend the run asks for (test_store_db.h): tests/meson.build runs
 * suite queue_depth_store on PostgreSQL too. */
static struct test_db tdb;
#define db_url (tdb.url)
static struct store *st;

static void store_setup(void)
{
	test_db_make(&tdb, "hookd-qd");
	char err[256] = "";
	store_set_sync(STORE_SYNC_NORMAL);
	cr_assert_eq(store_open(db_url, &st, err, sizeof err), STORE_OK, "open: %s", err);
}

static void store_teardown(void)
{
	store_close(st);
	st = NULL;
	test_db_remove(&tdb);
}

/* Closes the store and opens it again, as a restart does. */
static void reopen(void)
{
	char err[256] = "";
	store_close(st);
	cr_assert_eq(store_open(db_url, &st, err, sizeof err), STORE_OK, "reopen: %s", err);
}

static void add_endpoint(const char *id)
{
	struct endpoint e = {.url = "https://hooks.example.com/in",
			     .description = "",
			     .secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			     .enabled = true,
			     .created_at = T0,
			     .updated_at = T0};
	snprintf(e.id, sizeof e.id, "%s", id);
	e.events = json_pack("[s]", "*");
	cr_assert_eq(store_endpoint_insert(st, &e), STORE_OK, "insert %s", id);
	json_decref(e.events);
}

static void add_delivery(const char *id, const char *ep, enum delivery_status status,
			 int64_t next_at, int64_t updated_at)
{
	struct delivery d = {.event_type = "media.moderated",
			     .status = status,
			     .next_attempt_at = next_at,
			     .created_at = T0,
			     .updated_at = updated_at};
	snprintf(d.id, sizeof d.id, "%s", id);
	snprintf(d.event_id, sizeof d.event_id, "evt_%s", id);
	snprintf(d.endpoint_id, sizeof d.endpoint_id, "%s", ep);
	cr_assert_eq(store_delivery_insert(st, &d), STORE_OK, "insert %s", id);
}

TestSuite(queue_depth_store, .init = store_setup, .fini = store_teardown);

Test(queue_depth_store, seed_reads_the_store_grouped_by_endpoint_and_second)
{
	add_endpoint("ep_a");
	add_endpoint("ep_b");
	add_delivery("a1", "ep_a", DELIVERY_PENDING, T0 + 700, T0);
	add_delivery("a2", "ep_a", DELIVERY_PENDING, T0 + 200, T0);  /* same second, earlier */
	add_delivery("a3", "ep_a", DELIVERY_PENDING, T0 + 90000, T0);
	add_delivery("a4", "ep_a", DELIVERY_SUCCEEDED, 0, T0);
	add_delivery("a5", "ep_a", DELIVERY_DEAD, 0, T0);
	add_delivery("b1", "ep_b", DELIVERY_DEAD, 0, T0);
	add_delivery("b2", "ep_b", DELIVERY_DEAD, 0, T0);
	add_delivery("b3", "ep_b", DELIVERY_SUCCEEDED, 0, T0);
	add_delivery("x1", "ep_gone", DELIVERY_PENDING, T0 + 5000, T0); /* no endpoint row */

	struct queue_depth *q = queue_depth_new();
	cr_assert_eq(queue_depth_seed(q, st), STORE_OK);
	struct queue_figures f;
	read_fig(q, "ep_a", T0 + 1200, NULL, &f);
	struct queue_figures want_a = {3, 2, 1, 0, 1, 1.0};
	assert_fig(&f, &want_a, "ep_a");
	read_fig(q, "ep_b", T0 + 1200, NULL, &f);
	struct queue_figures want_b = {0, 0, 0, 0, 2, 0.0};
	assert_fig(&f, &want_b, "ep_b");
	read_fig(q, NULL, T0 + 6000, NULL, &f);
	struct queue_figures want_all = {4, 3, 1, 0, 3, 5.8};
	assert_fig(&f, &want_all, "all");

	/* Seeding again replaces, never adds. */
	cr_assert_eq(queue_depth_seed(q, st), STORE_OK);
	read_fig(q, NULL, T0 + 6000, NULL, &f);
	assert_fig(&f, &want_all, "all, seeded twice");
	queue_depth_free(q);
}

/* A refresh replaces the figures with the store's, rows written by someone
 * else (another node) included and figures no row backs dropped; a feed
 * after it applies on top; an endpoint the store no longer has goes. */
Test(queue_depth_store, refresh_replaces_the_figures_with_the_stores)
{
	add_endpoint("ep_a");
	add_delivery("a1", "ep_a", DELIVERY_PENDING, T0 + 700, T0);
	struct queue_depth *q = queue_depth_new();
	cr_assert_eq(queue_depth_seed(q, st), STORE_OK);
	/* This process's feed of a delivery of an endpoint with no row... */
	queue_depth_lock(q);
	queue_depth_add_pending_locked(q, "ep_local", T0 + 100, 4);
	queue_depth_unlock(q);
	/* ...and rows another node wrote. */
	add_delivery("a2", "ep_a", DELIVERY_PENDING, T0 + 2500, T0);
	add_delivery("a3", "ep_a", DELIVERY_DEAD, 0, T0);
	struct queue_figures f;
	read_fig(q, NULL, T0 + 1200, NULL, &f);
	cr_assert_eq(f.pending, 5, "before: the local figures only");

	cr_assert_eq(queue_depth_refresh(q, st), STORE_OK);
	read_fig(q, "ep_a", T0 + 1200, NULL, &f);
	struct queue_figures want_a = {2, 1, 1, 0, 1, 0.5};
	assert_fig(&f, &want_a, "ep_a after the refresh");
	read_fig(q, "ep_local", T0 + 1200, NULL, &f);
	cr_assert_eq(f.pending, 0, "a figure no row backs is gone");
	queue_depth_lock(q);
	queue_depth_remove_pending_locked(q, "ep_a", T0 + 700);
	queue_depth_unlock(q);
	read_fig(q, NULL, T0 + 1200, NULL, &f);
	cr_assert_eq(f.pending, 1, "feeds go on after the refresh");
	struct queue_depth_health h;
	queue_depth_health(q, &h);
	cr_assert_eq(h.misses, 0);
	queue_depth_free(q);
}

struct purged {
	char ids[8][ID_MAX];
	int64_t n[8];
	int len;
};

static int note_purged(const char *endpoint_id, int64_t n, void *arg)
{
	struct purged *p = arg;
	cr_assert_lt(p->len, 8);
	snprintf(p->ids[p->len], ID_MAX, "%s", endpoint_id);
	p->n[p->len++] = n;
	return STORE_OK;
}

static int64_t purged_of(const struct purged *p, const char *ep)
{
	for (int i = 0; i < p->len; i++)
		if (strcmp(p->ids[i], ep) == 0)
			return p->n[i];
	return 0;
}

Test(queue_depth_store, the_purge_tells_its_counts_per_endpoint)
{
	add_delivery("a1", "ep_a", DELIVERY_DEAD, 0, T0 - 5000);
	add_delivery("a2", "ep_a", DELIVERY_DEAD, 0, T0 - 4000);
	add_delivery("a3", "ep_a", DELIVERY_DEAD, 0, T0 + 1); /* too young */
	add_delivery("b1", "ep_b", DELIVERY_DEAD, 0, T0 - 1);
	add_delivery("b2", "ep_b", DELIVERY_SUCCEEDED, 0, T0 - 9000);
	add_delivery("c1", "ep_c", DELIVERY_PENDING, T0, T0 - 9000);

	struct purged p = {0};
	int64_t count = -1;
	cr_assert_eq(store_purge_dead(st, T0, &count, note_purged, &p), STORE_OK);
	cr_assert_eq(count, 3);
	cr_assert_eq(p.len, 2);
	cr_assert_eq(purged_of(&p, "ep_a"), 2);
	cr_assert_eq(purged_of(&p, "ep_b"), 1);

	struct queue_depth *q = queue_depth_new();
	cr_assert_eq(queue_depth_seed(q, st), STORE_OK);
	struct queue_figures f;
	read_fig(q, NULL, T0, NULL, &f);
	struct queue_figures want = {1, 1, 0, 0, 1, 0.0};
	assert_fig(&f, &want, "after the purge");
	queue_depth_free(q);
}

static int refuse(const char *endpoint_id, int64_t n, void *arg)
{
	(void)endpoint_id;
	(void)n;
	(void)arg;
	return STORE_ERROR;
}

Test(queue_depth_store, a_purge_whose_counts_fail_deletes_nothing)
{
	add_delivery("a1", "ep_a", DELIVERY_DEAD, 0, T0 - 5000);
	int64_t count = -1;
	cr_assert_eq(store_purge_dead(st, T0, &count, refuse, NULL), STORE_ERROR);
	cr_assert_eq(count, 0);
	struct delivery d;
	cr_assert_eq(store_delivery_get(st, "a1", &d), STORE_OK);
	delivery_clear(&d);
}

/* ---- randomized: real store calls, a brute-force reference, a restart ---- */

#define N_EPS 5
#define MAX_DLV 400

struct ref_dlv {
	char id[ID_MAX];
	int ep;
	enum delivery_status status;
	int64_t at;         /* next_attempt_at when pending */
	int64_t updated_at;
	bool gone;          /* deleted with its endpoint or purged */
};

struct world {
	struct queue_depth *q;
	struct ref_dlv d[MAX_DLV];
	int n;
	bool ep_exists[N_EPS];
	int64_t clock;      /* the fake wall clock, ms */
	bool whole_seconds; /* every time a multiple of 1000: the figures are exact */
	unsigned seed;
};

static const char *const ep_names[N_EPS] = {"ep_0", "ep_1", "ep_2", "ep_3", "ep_4"};

static unsigned rnd(struct world *w, unsigned n)
{
	w->seed = w->seed * 1103515245u + 12345u;
	return (w->seed >> 8) % n;
}

/* A time near the clock: the past, now, or a retry's future. */
static int64_t rnd_time(struct world *w)
{
	int64_t t = w->clock + ((int64_t)rnd(w, 120000) - 40000);
	return w->whole_seconds ? t - t % 1000 : t;
}

static void op_create(struct world *w)
{
	if (w->n == MAX_DLV)
		return;
	int ep = (int)rnd(w, N_EPS);
	if (!w->ep_exists[ep]) {
		add_endpoint(ep_names[ep]);
		w->ep_exists[ep] = true;
	}
	struct ref_dlv *r = &w->d[w->n];
	snprintf(r->id, sizeof r->id, "dlv_%d", w->n);
	r->ep = ep;
	r->status = DELIVERY_PENDING;
	r->at = rnd_time(w);
	r->updated_at = w->clock;
	add_delivery(r->id, ep_names[ep], DELIVERY_PENDING, r->at, r->updated_at);
	w->n++;
	/* ingest's committed(): its new pending rows. */
	struct pending p = {.next_attempt_at = r->at};
	snprintf(p.endpoint_id, sizeof p.endpoint_id, "%s", ep_names[ep]);
	queue_depth_created(w->q, &p, 1);
}

/* A live delivery in the given state, or NULL. */
static struct ref_dlv *pick(struct world *w, enum delivery_status status)
{
	if (w->n == 0)
		return NULL;
	int start = (int)rnd(w, (unsigned)w->n);
	for (int k = 0; k < w->n; k++) {
		struct ref_dlv *r = &w->d[(start + k) % w->n];
		if (!r->gone && r->status == status)
			return r;
	}
	return NULL;
}

/* An attempt's result on up to 3 pending deliveries of one endpoint,
 * recorded as the dispatcher's record op does: the store rows, then the
 * moves under one lock. */
static void op_result(struct world *w)
{
	struct ref_dlv *first = pick(w, DELIVERY_PENDING);
	if (first == NULL)
		return;
	struct ref_dlv *batch[3] = {first};
	int n = 1;
	for (int i = 0; i < w->n && n < 3; i++) {
		struct ref_dlv *r = &w->d[i];
		if (r != first && !r->gone && r->status == DELIVERY_PENDING && r->ep == first->ep &&
		    rnd(w, 2) == 0)
			batch[n++] = r;
	}
	unsigned outcome = rnd(w, 3);
	int64_t to = rnd_time(w);
	int64_t was[3];
	for (int i = 0; i < n; i++) {
		struct ref_dlv *r = batch[i];
		was[i] = r->at;
		r->status = outcome == 0 ? DELIVERY_SUCCEEDED
					 : outcome == 1 ? DELIVERY_PENDING : DELIVERY_DEAD;
		r->at = outcome == 1 ? to : 0;
		r->updated_at = w->clock;
		struct delivery d = {.status = r->status,
				     .attempt_count = 1,
				     .next_attempt_at = r->at,
				     .updated_at = r->updated_at};
		snprintf(d.id, sizeof d.id, "%s", r->id);
		cr_assert_eq(store_delivery_update_state(st, &d), STORE_OK);
	}
	queue_depth_lock(w->q);
	for (int i = 0; i < n; i++) {
		const char *ep = ep_names[batch[i]->ep];
		queue_depth_remove_pending_locked(w->q, ep, was[i]);
		if (batch[i]->status == DELIVERY_PENDING)
			queue_depth_add_pending_locked(w->q, ep, batch[i]->at, 1);
		else if (batch[i]->status == DELIVERY_DEAD)
			queue_depth_add_dead_locked(w->q, ep, 1);
	}
	queue_depth_unlock(w->q);
}

static void op_retry_one(struct world *w)
{
	struct ref_dlv *r = pick(w, DELIVERY_DEAD);
	if (r == NULL)
		return;
	struct pending p;
	int64_t now = w->whole_seconds ? w->clock - w->clock % 1000 : w->clock;
	cr_assert_eq(store_dlq_retry_one(st, r->id, now, &p), STORE_OK);
	r->status = DELIVERY_PENDING;
	r->at = now;
	r->updated_at = now;
	queue_depth_dead_retried(w->q, p.endpoint_id, p.next_attempt_at, 1);
}

static void op_retry_all(struct world *w)
{
	int ep = (int)rnd(w, N_EPS);
	int64_t now = w->whole_seconds ? w->clock - w->clock % 1000 : w->clock;
	int64_t count = 0, want = 0;
	cr_assert_eq(store_dlq_retry_endpoint(st, ep_names[ep], now, &count), STORE_OK);
	for (int i = 0; i < w->n; i++) {
		struct ref_dlv *r = &w->d[i];
		if (!r->gone && r->ep == ep && r->status == DELIVERY_DEAD) {
			r->status = DELIVERY_PENDING;
			r->at = now;
			r->updated_at = now;
			want++;
		}
	}
	cr_assert_eq(count, want);
	queue_depth_dead_retried(w->q, ep_names[ep], now, count);
}

static void op_purge(struct world *w)
{
	int64_t before = w->clock - (int64_t)rnd(w, 30000);
	struct purged p = {0};
	int64_t count = 0, want = 0;
	cr_assert_eq(store_purge_dead(st, before, &count, note_purged, &p), STORE_OK);
	for (int i = 0; i < w->n; i++) {
		struct ref_dlv *r = &w->d[i];
		if (!r->gone && r->status == DELIVERY_DEAD && r->updated_at < before) {
			r->gone = true;
			want++;
		}
	}
	cr_assert_eq(count, want);
	queue_depth_lock(w->q);
	for (int i = 0; i < p.len; i++)
		queue_depth_add_dead_locked(w->q, p.ids[i], -p.n[i]);
	queue_depth_unlock(w->q);
}

static void op_delete(struct world *w)
{
	int ep = (int)rnd(w, N_EPS);
	if (!w->ep_exists[ep])
		return;
	cr_assert_eq(store_endpoint_delete(st, ep_names[ep]), STORE_OK);
	w->ep_exists[ep] = false;
	for (int i = 0; i < w->n; i++)
		if (w->d[i].ep == ep)
			w->d[i].gone = true;
	queue_depth_endpoint_deleted(w->q, ep_names[ep]);
}

/* The reference figures from the list. loose: a delivery counts as due
 * from the start of its second (the view's granularity); else from its ms. */
static void ref_read(const struct world *w, int ep, int64_t now, unsigned blocked, bool loose,
		     struct queue_figures *f)
{
	int64_t oldest = INT64_MAX;
	memset(f, 0, sizeof *f);
	for (int i = 0; i < w->n; i++) {
		const struct ref_dlv *r = &w->d[i];
		if (r->gone || (ep >= 0 && r->ep != ep))
			continue;
		if (r->status == DELIVERY_DEAD)
			f->dead++;
		if (r->status != DELIVERY_PENDING)
			continue;
		f->pending++;
		int64_t at = loose ? r->at - r->at % 1000 : r->at;
		if (blocked & (1u << r->ep))
			f->waiting++;
		else if (at <= now) {
			f->due++;
			if (at < oldest)
				oldest = at;
		} else
			f->scheduled++;
	}
	f->oldest_pending_age_s = oldest == INT64_MAX ? 0 : (double)(now - oldest) / 1000.0;
}

/* The view agrees with the reference: exactly with whole seconds, else
 * between the strict and the loose reading. */
static void compare(const struct world *w, struct queue_depth *q, const char *what)
{
	for (int k = 0; k < 4; k++) {
		unsigned blocked = k == 0 ? 0 : (unsigned)(w->seed >> (k * 5)) & ((1u << N_EPS) - 1);
		const char *names[N_EPS + 1] = {NULL};
		for (int e = 0, j = 0; e < N_EPS; e++)
			if (blocked & (1u << e))
				names[j++] = ep_names[e];
		int64_t now = w->clock + (k - 1) * 20000 + (w->whole_seconds ? 0 : k * 333);
		for (int ep = -1; ep < N_EPS; ep++) {
			struct queue_figures got, strict, loose;
			char label[160];
			snprintf(label, sizeof label, "%s: %s at %+" PRId64 " blocked=%#x", what,
				 ep < 0 ? "all" : ep_names[ep], now - w->clock, blocked);
			read_fig(q, ep < 0 ? NULL : ep_names[ep], now, names, &got);
			ref_read(w, ep, now, blocked, false, &strict);
			ref_read(w, ep, now, blocked, true, &loose);
			if (w->whole_seconds) {
				assert_fig(&got, &strict, label);
				continue;
			}
			cr_assert_eq(got.pending, strict.pending, "%s: pending", label);
			cr_assert_eq(got.waiting, strict.waiting, "%s: waiting", label);
			cr_assert_eq(got.dead, strict.dead, "%s: dead", label);
			cr_assert_eq(got.pending, got.due + got.scheduled + got.waiting, "%s", label);
			cr_assert(strict.due <= got.due && got.due <= loose.due, "%s: due", label);
			cr_assert(got.oldest_pending_age_s >= strict.oldest_pending_age_s - 1e-9 &&
					  got.oldest_pending_age_s <= loose.oldest_pending_age_s + 1e-9,
				  "%s: age %.3f not in [%.3f, %.3f]", label, got.oldest_pending_age_s,
				  strict.oldest_pending_age_s, loose.oldest_pending_age_s);
		}
	}
}

static void random_run(unsigned seed, bool whole_seconds)
{
	static struct world w;
	memset(&w, 0, sizeof w);
	w.q = queue_depth_new();
	w.seed = seed;
	w.whole_seconds = whole_seconds;
	w.clock = T0 + (whole_seconds ? 0 : 123);
	cr_assert_eq(store_begin(st), STORE_OK);
	for (int i = 0; i < 900; i++) {
		w.clock += rnd(&w, 3000);
		unsigned op = rnd(&w, 20);
		if (op < 8)
			op_create(&w);
		else if (op < 14)
			op_result(&w);
		else if (op < 16)
			op_retry_one(&w);
		else if (op < 17)
			op_retry_all(&w);
		else if (op < 19)
			op_purge(&w);
		else
			op_delete(&w);
		if (i % 60 == 0)
			compare(&w, w.q, "live");
	}
	cr_assert_eq(store_commit(st), STORE_OK);
	compare(&w, w.q, "live, at the end");
	struct queue_depth_health h;
	queue_depth_health(w.q, &h);
	cr_assert_eq(h.misses, 0, "misses %" PRIu64, h.misses);
	cr_assert_eq(h.lost, 0);

	/* A restart: a new view seeded from the store, read the same way. */
	reopen();
	struct queue_depth *seeded = queue_depth_new();
	cr_assert_eq(queue_depth_seed(seeded, st), STORE_OK);
	compare(&w, seeded, "seeded after a restart");
	queue_depth_free(seeded);
	queue_depth_free(w.q);
}

Test(queue_depth_store, random_whole_seconds_exact_live_and_after_restart)
{
	for (unsigned seed = 1; seed <= 3; seed++) {
		random_run(seed * 7919u, true);
		store_teardown();
		store_setup();
	}
}

Test(queue_depth_store, random_ms_within_a_second_live_and_after_restart)
{
	for (unsigned seed = 1; seed <= 3; seed++) {
		random_run(seed * 104729u, false);
		store_teardown();
		store_setup();
	}
}
