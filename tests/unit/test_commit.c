/* commit: group commit runs every op, isolates a failing op, and reports. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commit.h"
#include "store.h"

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
