/* commit: group commit runs every op, isolates a failing op, and reports. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commit.h"
#include "epcache.h"
#include "ingest.h"
#include "store.h"
#include "store_health.h"

static char dir[256];
static char url[300];

static void setup(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(dir, sizeof dir, "%s/commit-XXXXXX", tmp);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(url, sizeof url, "sqlite:%s/t.db", dir);
}

static void teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	cr_expect_eq(system(cmd), 0);
}

struct insert_op {
	struct commit_op op;
	char id[ID_MAX];
	int done_rc;
	int done_calls;
};

static int insert_apply(struct store *st, struct commit_op *op)
{
	struct insert_op *o = (struct insert_op *)op;
	struct event ev = {.type = "media.created", .data = "{}", .created_at = 1};
	snprintf(ev.id, sizeof ev.id, "%s", o->id);
	return store_event_insert(st, &ev);
}

static void insert_done(struct commit_op *op, int rc)
{
	struct insert_op *o = (struct insert_op *)op;
	o->done_rc = rc;
	o->done_calls++;
}

TestSuite(commit, .init = setup, .fini = teardown);

Test(commit, ops_commit_and_a_failing_op_is_undone_alone)
{
	struct commit *c;
	char err[256];
	cr_assert_eq(commit_start(url, &c, err, sizeof err), 0, "%s", err);

	enum { N = 200 };
	static struct insert_op ops[N];
	for (int i = 0; i < N; i++) {
		ops[i] = (struct insert_op){.op = {.apply = insert_apply, .done = insert_done}};
		/* Every 10th op repeats the id of the op before it: a conflict. */
		snprintf(ops[i].id, sizeof ops[i].id, "evt_%d", i % 10 == 9 ? i - 1 : i);
		commit_submit(c, &ops[i].op);
	}
	/* run_sync queues behind them, so when it returns every op above is done. */
	struct insert_op last = {.op = {.apply = insert_apply, .done = insert_done}, .id = "evt_last"};
	cr_assert_eq(commit_run_sync(c, &last.op), STORE_OK);
	cr_assert_eq(last.done_calls, 1);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(ops[i].done_calls, 1, "op %d done once", i);
		cr_assert_eq(ops[i].done_rc, i % 10 == 9 ? STORE_CONFLICT : STORE_OK, "op %d rc", i);
	}
	commit_stop(c);

	/* What was acknowledged is on disk; the conflicting ops left nothing behind. */
	struct store *st;
	cr_assert_eq(store_open(url, &st, err, sizeof err), STORE_OK);
	struct event ev = {0};
	cr_assert_eq(store_event_get(st, "evt_0", &ev), STORE_OK);
	event_clear(&ev);
	cr_assert_eq(store_event_get(st, "evt_last", &ev), STORE_OK);
	event_clear(&ev);
	cr_assert_eq(store_event_get(st, "evt_9", &ev), STORE_NOTFOUND);
	store_close(st);
}

Test(commit, submit_after_stop_fails_at_once)
{
	struct commit *c;
	char err[256];
	cr_assert_eq(commit_start(url, &c, err, sizeof err), 0, "%s", err);
	struct insert_op o = {.op = {.apply = insert_apply, .done = insert_done}, .id = "evt_a"};
	commit_submit(c, &o.op);
	commit_stop(c); /* drains the queue first */
	cr_assert_eq(o.done_calls, 1);
	cr_assert_eq(o.done_rc, STORE_OK);
}

Test(commit, bad_database_url_is_an_error)
{
	struct commit *c = NULL;
	char err[256] = "";
	cr_assert_eq(commit_start("sqlite:/nonexistent-dir/x/y.db", &c, err, sizeof err), -1);
	cr_assert_neq(err[0], 0, "a reason is given");
}

/* ---- ops marked rerun_ok share a savepoint ---- */

/* Holds the commit thread in its first op until released, so every op
 * submitted meanwhile lands in one group. */
struct gate_op {
	struct commit_op op;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool open;
	bool entered;     /* the commit thread is inside gate_apply */
};

static int gate_apply(struct store *st, struct commit_op *op)
{
	struct gate_op *g = (struct gate_op *)op;
	(void)st;
	pthread_mutex_lock(&g->mu);
	g->entered = true;
	pthread_cond_broadcast(&g->cv);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
	return STORE_OK;
}

static void gate_init(struct gate_op *g)
{
	memset(g, 0, sizeof *g);
	g->op.apply = gate_apply;
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
}

/* Waits until the commit thread runs the gate's group, so ops submitted
 * after this land in the next group. */
static void gate_wait_entered(struct gate_op *g)
{
	pthread_mutex_lock(&g->mu);
	while (!g->entered)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static void gate_open(struct gate_op *g)
{
	pthread_mutex_lock(&g->mu);
	g->open = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

/* Two writes, so a failing op leaves a partial write for the rollback to
 * undo: the event, then (unless it fails) a delivery of it. */
struct pair_op {
	struct commit_op op;
	char id[16];
	bool fail;
	int applied;
	int done_rc;
	int done_calls;
};

static int pair_apply(struct store *st, struct commit_op *op)
{
	struct pair_op *o = (struct pair_op *)op;
	struct event ev = {.type = "a.b", .data = "{}", .created_at = 1};
	o->applied++;
	snprintf(ev.id, sizeof ev.id, "%s", o->id);
	int rc = store_event_insert(st, &ev);
	if (rc != STORE_OK)
		return rc;
	if (o->fail)
		return STORE_ERROR;
	struct delivery d = {.status = DELIVERY_PENDING, .event_type = "a.b", .created_at = 1,
			     .updated_at = 1};
	snprintf(d.id, sizeof d.id, "dlv_%s", o->id);
	snprintf(d.event_id, sizeof d.event_id, "%s", o->id);
	snprintf(d.endpoint_id, sizeof d.endpoint_id, "ep_1");
	return store_delivery_insert(st, &d);
}

static void pair_done(struct commit_op *op, int rc)
{
	struct pair_op *o = (struct pair_op *)op;
	o->done_rc = rc;
	o->done_calls++;
}

static bool event_exists(struct store *st, const char *id)
{
	struct event ev = {0};
	int rc = store_event_get(st, id, &ev);
	event_clear(&ev);
	cr_assert(rc == STORE_OK || rc == STORE_NOTFOUND);
	return rc == STORE_OK;
}

static bool delivery_exists(struct store *st, const char *id)
{
	struct delivery d = {0};
	int rc = store_delivery_get(st, id, &d);
	delivery_clear(&d);
	cr_assert(rc == STORE_OK || rc == STORE_NOTFOUND);
	return rc == STORE_OK;
}

Test(commit, rerun_ok_ops_share_a_savepoint_and_a_failure_stays_alone)
{
	struct commit *c;
	char err[256];
	cr_assert_eq(commit_start(url, &c, err, sizeof err), 0, "%s", err);
	struct gate_op gate;
	gate_init(&gate);
	commit_submit(c, &gate.op);

	/* One group: rerun_ok runs with failures inside, broken up by ops
	 * that are not rerun_ok (which must run exactly once). */
	enum { N = 60 };
	static struct pair_op ops[N];
	for (int i = 0; i < N; i++) {
		ops[i] = (struct pair_op){.op = {.apply = pair_apply, .done = pair_done}};
		ops[i].op.rerun_ok = i % 7 != 3;
		ops[i].fail = i % 11 == 5 || i == 3;
		snprintf(ops[i].id, sizeof ops[i].id, "evt_%d", i);
		commit_submit(c, &ops[i].op);
	}
	gate_open(&gate);
	struct insert_op last = {.op = {.apply = insert_apply, .done = insert_done}, .id = "evt_x"};
	cr_assert_eq(commit_run_sync(c, &last.op), STORE_OK);
	commit_stop(c);

	struct store *st;
	cr_assert_eq(store_open(url, &st, err, sizeof err), STORE_OK);
	for (int i = 0; i < N; i++) {
		char dlv[32];
		snprintf(dlv, sizeof dlv, "dlv_%s", ops[i].id);
		cr_expect_eq(ops[i].done_calls, 1, "op %d", i);
		cr_expect_eq(ops[i].done_rc, ops[i].fail ? STORE_ERROR : STORE_OK, "op %d", i);
		cr_expect_eq(event_exists(st, ops[i].id), !ops[i].fail, "op %d", i);
		cr_expect_eq(delivery_exists(st, dlv), !ops[i].fail, "op %d", i);
		if (!ops[i].op.rerun_ok)
			cr_expect_eq(ops[i].applied, 1, "op %d (not rerun_ok) applied once", i);
		else
			cr_expect(ops[i].applied == 1 || ops[i].applied == 2, "op %d", i);
	}
	/* A run without a failure was applied once. */
	cr_expect_eq(ops[59].applied, 1);
	store_close(st);
	pthread_mutex_destroy(&gate.mu);
	pthread_cond_destroy(&gate.cv);
}

/* ---- ops that can wait ---- */

/* An insert whose done() signals the test thread. */
struct signal_op {
	struct insert_op ins;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void signal_done(struct commit_op *op, int rc)
{
	struct signal_op *o = (struct signal_op *)op;
	pthread_mutex_lock(&o->mu);
	insert_done(op, rc);
	pthread_cond_signal(&o->cv);
	pthread_mutex_unlock(&o->mu);
}

static void signal_init(struct signal_op *o, const char *id)
{
	memset(o, 0, sizeof *o);
	o->ins.op = (struct commit_op){.apply = insert_apply, .done = signal_done, .can_wait = true};
	snprintf(o->ins.id, sizeof o->ins.id, "%s", id);
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
}

/* Starts a commit thread and queues r (can_wait) while the thread commits
 * another group, so the group r lands in waits for company. */
static struct commit *queue_behind_a_group(struct signal_op *r, const char *id)
{
	struct commit *c;
	char err[256];
	cr_assert_eq(commit_start(url, &c, err, sizeof err), 0, "%s", err);
	static struct gate_op gate;
	gate_init(&gate);
	commit_submit(c, &gate.op);
	gate_wait_entered(&gate);
	signal_init(r, id);
	commit_submit(c, &r->ins.op);
	gate_open(&gate);
	return c;
}

/* Alone, an op waiting for company (up to COMMIT_LINGER_MS) is still
 * committed: nothing else is submitted here, so only the end of the wait
 * can commit it. */
Test(commit, a_can_wait_op_with_nothing_after_it_is_committed)
{
	struct signal_op r;
	struct commit *c = queue_behind_a_group(&r, "evt_r");
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&r.mu);
	while (r.ins.done_calls == 0 && pthread_cond_timedwait(&r.cv, &r.mu, &until) == 0)
		;
	int calls = r.ins.done_calls, rc = r.ins.done_rc;
	pthread_mutex_unlock(&r.mu);
	cr_assert_eq(calls, 1, "committed without another op to end the wait");
	cr_assert_eq(rc, STORE_OK);
	commit_stop(c);
}

/* A stop ends the wait: the op waiting for company is committed by it. */
Test(commit, a_stop_commits_an_op_that_waits_for_company)
{
	struct signal_op r;
	struct commit *c = queue_behind_a_group(&r, "evt_s");
	commit_stop(c);
	cr_assert_eq(r.ins.done_calls, 1);
	cr_assert_eq(r.ins.done_rc, STORE_OK);
	struct store *st;
	char err[256];
	cr_assert_eq(store_open(url, &st, err, sizeof err), STORE_OK, "%s", err);
	cr_assert(event_exists(st, "evt_s"));
	store_close(st);
}

/* ---- ingest runs again from the batch as prepared ---- */

struct ingest_test_op {
	struct commit_op op;
	struct ingest_batch batch;
	int fail_on_run;   /* fails (after writing) on this run; 0: never */
	int runs;
	int done_rc;
};

static int ingest_test_apply(struct store *st, struct commit_op *op)
{
	struct ingest_test_op *o = (struct ingest_test_op *)op;
	int rc = ingest_apply(st, &o->batch);
	if (++o->runs == o->fail_on_run || o->fail_on_run < 0)
		return STORE_ERROR;
	return rc;
}

static void ingest_test_done(struct commit_op *op, int rc)
{
	((struct ingest_test_op *)op)->done_rc = rc;
}

static void ingest_test_init(struct ingest_test_op *o, struct epcache *cache, const char *id,
			     const char *data, const char *key, int fail_on_run)
{
	memset(o, 0, sizeof *o);
	o->op.apply = ingest_test_apply;
	o->op.done = ingest_test_done;
	o->op.rerun_ok = true;
	o->fail_on_run = fail_on_run;
	o->batch.items = calloc(1, sizeof *o->batch.items);
	cr_assert_not_null(o->batch.items);
	o->batch.n = 1;
	o->batch.idem_key = key ? strdup(key) : NULL;
	cr_assert_eq(ingest_item_prepare(&o->batch.items[0], cache, id, strdup("a.b"),
					 strdup(data), NULL, 1000), 0);
}

Test(commit, ingest_rerun_starts_from_the_prepared_batch)
{
	struct commit *c;
	char err[256];
	struct epcache *cache = epcache_new();
	cr_assert_not_null(cache);
	cr_assert_eq(commit_start(url, &c, err, sizeof err), 0, "%s", err);
	struct gate_op gate;
	gate_init(&gate);
	commit_submit(c, &gate.op);

	/* a takes id e1; b (same id) and d (same key) first see a's writes and
	 * become its duplicate and replay; f fails, so the run is replayed one
	 * op at a time, and then a fails: b and d must be new after all. */
	struct ingest_test_op a, b, d, f, g, h;
	ingest_test_init(&a, cache, "e1", "{\"who\":\"a\"}", "k1", 2);
	ingest_test_init(&b, cache, "e1", "{\"who\":\"b\"}", NULL, 0);
	ingest_test_init(&d, cache, "e2", "{\"who\":\"d\"}", "k1", 0);
	ingest_test_init(&f, cache, "e3", "{\"who\":\"f\"}", NULL, -1);
	/* And a duplicate that stays one: g is new, h repeats its id. */
	ingest_test_init(&g, cache, "e4", "{\"who\":\"g\"}", NULL, 0);
	ingest_test_init(&h, cache, "e4", "{\"who\":\"h\"}", NULL, 0);
	struct ingest_test_op *all[] = {&a, &b, &d, &f, &g, &h};
	for (size_t i = 0; i < 6; i++)
		commit_submit(c, &all[i]->op);
	gate_open(&gate);
	struct insert_op last = {.op = {.apply = insert_apply, .done = insert_done}, .id = "evt_x"};
	cr_assert_eq(commit_run_sync(c, &last.op), STORE_OK);
	commit_stop(c);

	cr_expect_eq(a.done_rc, STORE_ERROR);
	cr_expect_eq(f.done_rc, STORE_ERROR);
	cr_expect_eq(b.done_rc, STORE_OK);
	cr_expect_eq(d.done_rc, STORE_OK);
	cr_expect_eq(b.runs, 2, "b ran in the shared savepoint, then alone");
	cr_expect_not(b.batch.items[0].duplicate);
	cr_expect_str_eq(b.batch.items[0].ev.data, "{\"who\":\"b\"}");
	cr_expect_not(d.batch.idem_replay);
	cr_expect_str_eq(d.batch.items[0].ev.id, "e2");
	cr_expect(h.batch.items[0].duplicate);
	cr_expect_str_eq(h.batch.items[0].ev.data, "{\"who\":\"g\"}");

	struct store *st;
	cr_assert_eq(store_open(url, &st, err, sizeof err), STORE_OK);
	struct event ev = {0};
	cr_assert_eq(store_event_get(st, "e1", &ev), STORE_OK);
	cr_expect_str_eq(ev.data, "{\"who\":\"b\"}");
	event_clear(&ev);
	cr_expect(event_exists(st, "e2"));
	cr_expect_not(event_exists(st, "e3"));
	json_t *ids = NULL;
	cr_assert_eq(store_idem_get(st, "k1", &ids), STORE_OK);
	cr_expect_str_eq(json_string_value(json_array_get(ids, 0)), "e2");
	json_decref(ids);
	store_close(st);
	for (size_t i = 0; i < 6; i++)
		ingest_batch_clear(&all[i]->batch);
	epcache_free(cache);
	pthread_mutex_destroy(&gate.mu);
	pthread_cond_destroy(&gate.cv);
}

/* The 202 body's text is the compact dump of ingest_item_to_json. */
Test(commit, ingest_item_text_matches_the_json_view)
{
	struct ingest_item it = {0};
	snprintf(it.ev.id, sizeof it.ev.id, "evt_01ABC");
	it.ev.created_at = 1764250951123;
	for (int k = 0; k < 4; k++) {
		it.ev.type = strdup(k == 3 ? "odd\"type\\\x01\t" : "order.created");
		it.n = (size_t)k;
		it.duplicate = k == 2;
		it.endpoint_ids = calloc(4, ID_MAX);
		it.delivery_ids = calloc(4, ID_MAX);
		cr_assert(it.ev.type && it.endpoint_ids && it.delivery_ids);
		for (int i = 0; i < k; i++) {
			snprintf(it.endpoint_ids[i], ID_MAX, "ep_%d", i);
			snprintf(it.delivery_ids[i], ID_MAX, "dlv_%d", i);
		}
		json_t *j = ingest_item_to_json(&it);
		cr_assert_not_null(j);
		char *want = json_dumps(j, JSON_COMPACT);
		struct dynbuf b;
		dynbuf_init(&b, SIZE_MAX);
		cr_assert_eq(ingest_item_append_text(&b, &it), 0);
		cr_expect_str_eq(b.data, want, "item with %d deliveries", k);
		dynbuf_free(&b);
		free(want);
		json_decref(j);
		free(it.ev.type);
		free(it.endpoint_ids);
		free(it.delivery_ids);
	}
}

/* ---- ops marked alone (a part of a large fan-out) ---- */

/* Records the order of applies and dones: ops of one group are all applied
 * before any is done. */
struct order_op {
	struct commit_op op;
	char name;
	char *log; /* shared, written on the commit thread only */
};

static int order_apply(struct store *st, struct commit_op *op)
{
	struct order_op *o = (struct order_op *)op;
	(void)st;
	size_t n = strlen(o->log);
	o->log[n] = 'a';
	o->log[n + 1] = o->name;
	return STORE_OK;
}

static void order_done(struct commit_op *op, int rc)
{
	struct order_op *o = (struct order_op *)op;
	size_t n = strlen(o->log);
	cr_expect_eq(rc, STORE_OK);
	o->log[n] = 'd';
	o->log[n + 1] = o->name;
}

Test(commit, an_alone_op_is_a_group_of_its_own)
{
	struct commit *c;
	char err[256];
	static char log[64];
	cr_assert_eq(commit_start(url, &c, err, sizeof err), 0, "%s", err);
	struct gate_op gate;
	gate_init(&gate);
	commit_submit(c, &gate.op);
	gate_wait_entered(&gate);
	/* Queued while the gate's group runs: A, then the alone B, then C, D. */
	struct order_op ops[4];
	for (int i = 0; i < 4; i++) {
		ops[i] = (struct order_op){.op = {.apply = order_apply, .done = order_done},
					   .name = (char)('A' + i), .log = log};
		ops[i].op.alone = i == 1;
		ops[i].op.rerun_ok = i != 1;
		commit_submit(c, &ops[i].op);
	}
	gate_open(&gate);
	struct insert_op last = {.op = {.apply = insert_apply, .done = insert_done}, .id = "evt_y"};
	cr_assert_eq(commit_run_sync(c, &last.op), STORE_OK);
	commit_stop(c);
	/* A is done before B is applied (the ops before an alone op commit
	 * without it); B is done before C is applied; C and D share a group. */
	cr_expect_str_eq(log, "aAdAaBdBaCaDdCdD");
}

Test(commit, an_early_op_goes_ahead_of_queued_ops_and_is_done_before_their_group)
{
	struct commit *c;
	char err[256];
	static char log[64];
	cr_assert_eq(commit_start(url, &c, err, sizeof err), 0, "%s", err);
	struct gate_op gate;
	gate_init(&gate);
	commit_submit(c, &gate.op);
	gate_wait_entered(&gate);
	/* Queued while the gate's group runs: A, the early E, then B. */
	struct order_op ops[3];
	const char names[3] = {'A', 'E', 'B'};
	for (int i = 0; i < 3; i++) {
		ops[i] = (struct order_op){.op = {.apply = order_apply, .done = order_done},
					   .name = names[i], .log = log};
		ops[i].op.rerun_ok = true;
		ops[i].op.early = names[i] == 'E';
		commit_submit(c, &ops[i].op);
	}
	cr_expect_str_eq(log, "", "nothing goes ahead of the group in progress");
	gate_open(&gate);
	struct insert_op last = {.op = {.apply = insert_apply, .done = insert_done}, .id = "evt_e"};
	cr_assert_eq(commit_run_sync(c, &last.op), STORE_OK);
	commit_stop(c);
	/* E is applied and done before A is applied (it waits for neither A's
	 * nor B's commit); A and B then share a group, in order. */
	cr_expect_str_eq(log, "aEdEaAaBdAdB");
}

Test(commit, ingest_parts_hold_whole_events_of_about_the_part_size)
{
	static const size_t fan[] = {600, 600, 600, 5000, 10, 10, 999, 1, 7};
	struct ingest_item items[sizeof fan / sizeof fan[0]];
	struct ingest_batch b = {.items = items, .n = sizeof fan / sizeof fan[0]};
	memset(items, 0, sizeof items);
	for (size_t i = 0; i < b.n; i++)
		items[i].n = fan[i];
	/* 600+600 reaches 1000; 600 alone (5000 more would pass twice the size);
	 * 5000 alone (one event is never split); 10+10+999; the rest at the end. */
	static const size_t ends[] = {2, 3, 4, 7, 9};
	size_t from = 0;
	for (size_t k = 0; k < sizeof ends / sizeof ends[0]; k++) {
		size_t to = ingest_part_end(&b, from);
		cr_expect_eq(to, ends[k], "part %zu: [%zu, %zu)", k, from, to);
		from = to;
	}
	cr_expect_eq(from, b.n);
}

/* Polls store_health_has(h, cond) == want for up to 5 s. */
static bool health_becomes(struct store_health *h, enum store_cond cond, bool want)
{
	for (int i = 0; i < 500; i++) {
		if (store_health_has(h, cond) == want)
			return true;
		usleep(10000);
	}
	return false;
}

/* --min-free-space (issue 12): the commit thread looks at the volume on its
 * own, with no op queued, and sets or clears the low-space condition. */
Test(commit, min_free_space_sets_and_clears_low_space)
{
	struct commit *c = NULL;
	char err[256];
	struct store_health *h = store_health_new();
	cr_assert_not_null(h);
	cr_assert_eq(commit_start(url, &c, err, sizeof err), 0, "%s", err);
	commit_set_health(c, h);
	char path[320];
	snprintf(path, sizeof path, "%s/t.db", dir);
	/* No volume has 2^62 bytes free. */
	cr_assert_eq(commit_set_min_free(c, path, UINT64_C(1) << 62), 0);
	cr_expect(health_becomes(h, STORE_COND_LOW_SPACE, true), "low space never set");
	struct store_health_view v;
	store_health_read(h, &v);
	cr_expect_eq(v.level, STORE_HEALTH_DEGRADED);
	cr_expect(strstr(v.reason, "--min-free-space") != NULL, "reason: %s", v.reason);
	/* One byte is always free on a volume that holds a test database. */
	cr_assert_eq(commit_set_min_free(c, path, 1), 0);
	cr_expect(health_becomes(h, STORE_COND_LOW_SPACE, false), "low space never cleared");
	cr_assert_eq(commit_set_min_free(c, path, UINT64_C(1) << 62), 0);
	cr_expect(health_becomes(h, STORE_COND_LOW_SPACE, true));
	/* 0 turns the watch off, and the condition with it. */
	cr_assert_eq(commit_set_min_free(c, NULL, 0), 0);
	cr_expect(!store_health_has(h, STORE_COND_LOW_SPACE));
	commit_stop(c);
	store_health_free(h);
}

/* ---- done() runs in submission order (commit.h; the dispatcher's paging
 * relies on it) ---- */

enum { SEQ_THREADS = 4, SEQ_PER_THREAD = 400, SEQ_TOTAL = SEQ_THREADS * SEQ_PER_THREAD };

struct seq_log;

/* One op of the order tests: seq is its place in submission order. */
struct seq_op {
	struct commit_op op;
	struct seq_log *log;
	long seq;
	pthread_t submitter;
	char id[ID_MAX];
	int expect_rc;
	int applied;        /* apply() runs (commit thread only) */
	int done_calls;
	int done_rc;
	bool done_by_submitter;
	pthread_t done_by;
};

struct seq_log {
	struct commit *c;
	/* Held around each commit_submit, so the order of seq is the order in
	 * which the ops joined the commit queue. */
	pthread_mutex_t submit_mu;
	long next_seq;
	/* The seq of each done(), in the order they ran. */
	pthread_mutex_t done_mu;
	pthread_cond_t done_cv;
	long done_seq[SEQ_TOTAL * 2];
	size_t n_done;
	long submitted;
	struct seq_op ops[SEQ_THREADS][SEQ_PER_THREAD * 2];
	bool stopping;            /* stop test: the stopper thread was started */
	bool stop_seen[SEQ_THREADS];
};

/* The op whose done() just ran on this thread (a refusal by the stop). */
static _Thread_local struct seq_op *seq_done_here;

static int seq_apply(struct store *st, struct commit_op *op)
{
	struct seq_op *o = (struct seq_op *)op;
	o->applied++;
	struct event ev = {.type = "media.created", .data = "{}", .created_at = 1};
	snprintf(ev.id, sizeof ev.id, "%s", o->id);
	return store_event_insert(st, &ev);
}

static void seq_done(struct commit_op *op, int rc)
{
	struct seq_op *o = (struct seq_op *)op;
	struct seq_log *l = o->log;
	o->done_calls++;
	o->done_rc = rc;
	o->done_by = pthread_self();
	o->done_by_submitter = pthread_equal(o->done_by, o->submitter);
	if (o->done_by_submitter)
		seq_done_here = o;
	pthread_mutex_lock(&l->done_mu);
	l->done_seq[l->n_done++] = o->seq;
	pthread_cond_broadcast(&l->done_cv);
	pthread_mutex_unlock(&l->done_mu);
}

/* Thread t's op j: a mix of the kinds the commit thread groups apart. Each
 * thread's first op inserts evt_dup_<t>; every 13th op inserts it again
 * and fails (a conflict), mostly inside a run of rerun_ok ops, whose
 * shared savepoint is then undone and the run applied again one by one.
 * Every 50th op is alone (a large fan-out's part); some are can_wait (the
 * dispatcher's records), some plain. */
static void seq_op_init(struct seq_log *l, int t, int j, struct seq_op *o)
{
	memset(o, 0, sizeof *o);
	o->op.apply = seq_apply;
	o->op.done = seq_done;
	o->log = l;
	o->submitter = pthread_self();
	bool dup = j % 13 == 12;
	if (j == 0 || dup)
		snprintf(o->id, sizeof o->id, "evt_dup_%d", t);
	else
		snprintf(o->id, sizeof o->id, "evt_%d_%d", t, j);
	o->expect_rc = dup ? STORE_CONFLICT : STORE_OK;
	o->op.alone = j % 50 == 49;
	o->op.rerun_ok = !o->op.alone && j % 7 != 3;
	o->op.can_wait = j % 5 == 0;
}

/* Submits op under submit_mu; returns true if it was accepted (its done()
 * did not run at once on this thread with STORE_ERROR). */
static bool seq_submit(struct seq_log *l, struct seq_op *o)
{
	pthread_mutex_lock(&l->submit_mu);
	o->seq = l->next_seq++;
	seq_done_here = NULL;
	commit_submit(l->c, &o->op);
	bool refused = seq_done_here == o;
	pthread_mutex_unlock(&l->submit_mu);
	pthread_mutex_lock(&l->done_mu);
	l->submitted++;
	pthread_cond_broadcast(&l->done_cv);
	pthread_mutex_unlock(&l->done_mu);
	return !refused;
}

struct seq_thread {
	struct seq_log *l;
	int t;
	bool until_refused; /* stop test: go on until commit_stop refuses one */
	pthread_t th;
};

static void *seq_submitter(void *arg)
{
	struct seq_thread *s = arg;
	int j;
	for (j = 0; j < SEQ_PER_THREAD; j++) {
		seq_op_init(s->l, s->t, j, &s->l->ops[s->t][j]);
		seq_submit(s->l, &s->l->ops[s->t][j]);
	}
	if (!s->until_refused)
		return NULL;
	pthread_mutex_lock(&s->l->done_mu);
	while (!s->l->stopping)
		pthread_cond_wait(&s->l->done_cv, &s->l->done_mu);
	pthread_mutex_unlock(&s->l->done_mu);
	/* Up to SEQ_PER_THREAD more, 5 ms apart: the stop has 2 s to begin. */
	while (j < SEQ_PER_THREAD * 2) {
		seq_op_init(s->l, s->t, j, &s->l->ops[s->t][j]);
		if (!seq_submit(s->l, &s->l->ops[s->t][j++])) {
			s->l->stop_seen[s->t] = true;
			break;
		}
		usleep(5000);
	}
	return NULL;
}

static struct seq_log *seq_log_new(struct commit *c)
{
	struct seq_log *l = calloc(1, sizeof *l);
	cr_assert_not_null(l);
	l->c = c;
	pthread_mutex_init(&l->submit_mu, NULL);
	pthread_mutex_init(&l->done_mu, NULL);
	pthread_cond_init(&l->done_cv, NULL);
	return l;
}

static void seq_wait_submitted(struct seq_log *l, long n)
{
	pthread_mutex_lock(&l->done_mu);
	while (l->submitted < n)
		pthread_cond_wait(&l->done_cv, &l->done_mu);
	pthread_mutex_unlock(&l->done_mu);
}

/* Every accepted op's done() ran once, on one thread that submitted none of
 * them, in exactly the order of seq; returns how many were accepted. */
static size_t seq_check_accepted(struct seq_log *l, int per_thread)
{
	size_t accepted = 0;
	bool rerun = false;
	pthread_t commit_thread = l->ops[0][0].done_by;
	for (size_t i = 0; i < l->n_done; i++) {
		struct seq_op *o = NULL;
		for (int t = 0; t < SEQ_THREADS && o == NULL; t++)
			for (int j = 0; j < per_thread && o == NULL; j++)
				if (l->ops[t][j].seq == l->done_seq[i] && l->ops[t][j].op.done)
					o = &l->ops[t][j];
		cr_assert_not_null(o);
		if (o->done_by_submitter)
			continue; /* refused by the stop: seq_check_refused */
		cr_assert_eq(l->done_seq[i], (long)accepted,
			     "done() #%zu ran for op seq %ld, want seq %zu (submission order)", i,
			     l->done_seq[i], accepted);
		cr_assert_eq(o->done_calls, 1);
		cr_assert_eq(o->done_rc, o->expect_rc, "op %s seq %ld rc %d", o->id, o->seq,
			     o->done_rc);
		cr_assert(pthread_equal(o->done_by, commit_thread), "every done() on the commit thread");
		rerun |= o->applied > 1;
		accepted++;
	}
	cr_expect(rerun, "some run of rerun_ok ops failed and was applied again");
	return accepted;
}

Test(commit, done_runs_in_submission_order_across_submitters_groups_reruns_and_alone_ops,
     .timeout = 60)
{
	struct commit *c;
	char err[256];
	cr_assert_eq(commit_start(url, &c, err, sizeof err), 0, "%s", err);
	struct seq_log *l = seq_log_new(c);
	/* Hold the commit thread until half the ops are queued, so the first
	 * groups are large and mix every thread's ops; the rest are submitted
	 * while groups commit. */
	struct gate_op gate;
	gate_init(&gate);
	commit_submit(c, &gate.op);
	gate_wait_entered(&gate);
	struct seq_thread th[SEQ_THREADS];
	for (int t = 0; t < SEQ_THREADS; t++) {
		th[t] = (struct seq_thread){.l = l, .t = t};
		cr_assert_eq(pthread_create(&th[t].th, NULL, seq_submitter, &th[t]), 0);
	}
	seq_wait_submitted(l, SEQ_TOTAL / 2);
	gate_open(&gate);
	for (int t = 0; t < SEQ_THREADS; t++)
		pthread_join(th[t].th, NULL);
	struct insert_op last = {.op = {.apply = insert_apply, .done = insert_done}, .id = "evt_z"};
	cr_assert_eq(commit_run_sync(c, &last.op), STORE_OK);
	commit_stop(c);
	cr_assert_eq(l->n_done, (size_t)SEQ_TOTAL);
	cr_assert_eq(seq_check_accepted(l, SEQ_PER_THREAD), (size_t)SEQ_TOTAL);
	free(l);
}

static void *seq_stopper(void *arg)
{
	commit_stop(arg);
	return NULL;
}

/* commit_stop while ops arrive: every op queued before the stop began is
 * still applied and done on the commit thread, in order; every op after it
 * is refused, its done(STORE_ERROR) run at once on the submitting thread. */
Test(commit, stop_runs_queued_ops_in_order_and_refuses_later_ones_on_the_callers_thread,
     .timeout = 60)
{
	struct commit *c;
	char err[256];
	cr_assert_eq(commit_start(url, &c, err, sizeof err), 0, "%s", err);
	struct seq_log *l = seq_log_new(c);
	struct gate_op gate;
	gate_init(&gate);
	commit_submit(c, &gate.op);
	gate_wait_entered(&gate);
	struct seq_thread th[SEQ_THREADS];
	for (int t = 0; t < SEQ_THREADS; t++) {
		th[t] = (struct seq_thread){.l = l, .t = t, .until_refused = true};
		cr_assert_eq(pthread_create(&th[t].th, NULL, seq_submitter, &th[t]), 0);
	}
	seq_wait_submitted(l, SEQ_TOTAL);
	/* The commit thread is held in the gate, so c stays alive until every
	 * submitter has seen a refusal and stopped. */
	pthread_t stopper;
	cr_assert_eq(pthread_create(&stopper, NULL, seq_stopper, c), 0);
	pthread_mutex_lock(&l->done_mu);
	l->stopping = true;
	pthread_cond_broadcast(&l->done_cv);
	pthread_mutex_unlock(&l->done_mu);
	for (int t = 0; t < SEQ_THREADS; t++)
		pthread_join(th[t].th, NULL);
	gate_open(&gate);
	pthread_join(stopper, NULL);
	size_t accepted = seq_check_accepted(l, SEQ_PER_THREAD * 2);
	cr_assert_geq(accepted, (size_t)SEQ_TOTAL);
	for (int t = 0; t < SEQ_THREADS; t++) {
		cr_assert(l->stop_seen[t], "thread %d saw a refusal", t);
		for (int j = 0; j < SEQ_PER_THREAD * 2; j++) {
			struct seq_op *o = &l->ops[t][j];
			if (o->op.done == NULL || !o->done_by_submitter)
				continue;
			cr_assert_eq(o->done_rc, STORE_ERROR);
			cr_assert_eq(o->applied, 0);
			cr_assert_geq(o->seq, (long)accepted, "refused only after every accepted op");
		}
	}
	cr_assert_eq(l->n_done, accepted + SEQ_THREADS);
	free(l);
}
