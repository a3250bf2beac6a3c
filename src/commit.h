/* commit: the one thread that writes to the store, with group commit. Any
 * thread submits an op; the commit thread takes every op queued so far, runs
 * their apply() in one transaction, commits (one fsync for the whole group),
 * then calls each op's done() with the outcome. Ops that fail inside apply()
 * are rolled back alone, so one bad op never sinks the others in its group:
 * each op runs in a savepoint of its own, except a run of ops marked
 * rerun_ok, which share one (see rerun_ok). The whole protocol, and why
 * done() runs in submission order: docs/architecture.md#the-commit-protocol.
 *
 * Ordering contract (the dispatcher's paging is correct only with it:
 * docs/architecture.md#the-window-and-paging; tests/unit/test_commit.c
 * checks it):
 * - Submission order is the order in which commit_submit calls joined the
 *   queue (they take one lock): program order within one thread; between
 *   threads, a call that returned before another began comes first.
 * - Every accepted op (commit_run_sync's too) has its done() called exactly
 *   once, on the commit thread, in submission order, with no exception:
 *   groups are taken from the head of the queue in order, and every done()
 *   of a group runs before the next group's first apply().
 * - A failing op, or a run of rerun_ok ops undone and applied again one by
 *   one, changes only the rcs: apply() may run twice, done() still once and
 *   in place. A group whose commit fails gives every op STORE_ERROR, in
 *   order too.
 * - An `alone` op is a group of its own: the ops before it are done before
 *   it is applied, the ops after it are applied after it is done.
 * - The one exception to submission order: an `early` op (a read) is applied
 *   and done before the next group, ahead of the ops queued before it that
 *   are not yet applied; never ahead of a group already running.
 * - Stop: once commit_stop has begun, commit_submit refuses: done(op,
 *   STORE_ERROR) runs at once on the caller's thread, before commit_submit
 *   returns, without apply(). Such an op comes after every accepted one,
 *   yet its done() may run before theirs; the ops accepted before the stop
 *   are still applied and done on the commit thread, in order. */
#ifndef HOOKD_COMMIT_H
#define HOOKD_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct commit_op {
	/* Runs on the commit thread inside the group's transaction. Returns
	 * STORE_OK to keep its writes, anything else to roll them back. */
	int (*apply)(struct store *st, struct commit_op *op);
	/* Runs on the commit thread after the group committed (rc = the op's
	 * apply result) or failed to commit (rc = STORE_ERROR), in submission
	 * order (above); on the submitting thread only for an op refused by
	 * the stop. It may free op. */
	void (*done)(struct commit_op *op, int rc);
	/* Set by the submitter if apply() may run again after its writes were
	 * rolled back, with the same effect as running once (it resets what it
	 * hands back before writing). Consecutive such ops share one savepoint,
	 * which is far cheaper than one each; if one of them fails, the
	 * shared savepoint is undone and they are applied again one by one,
	 * each in its own savepoint, so the outcome is the same. Left false,
	 * apply() runs exactly once. */
	bool rerun_ok;
	/* Set by the submitter when nobody waits on the outcome (the
	 * dispatcher's attempt records): while ops keep arriving, a group of
	 * only such ops waits up to COMMIT_LINGER_MS for more to gather, so
	 * each commit writes the pages it touches for more of them. Any other
	 * op ends the wait at once. */
	bool can_wait;
	/* Set by the submitter for a large op (one part of a large fan-out,
	 * ingest.h INGEST_PART_DELIVERIES): it is committed in a group of its
	 * own, and the ops queued before it form the group before, so their
	 * writers wait for at most one such op, never for a whole request. */
	bool alone;
	/* Set by the submitter for a read that needs no one else's commit: its
	 * apply() only reads, with one statement (a consistent snapshot
	 * without a transaction of its own), and its submitter accepts that
	 * it is ordered before the ops it submitted earlier that are still
	 * queued. The commit thread takes every queued early op before the
	 * next group, applies each outside any transaction and calls its
	 * done() at once: it waits for the group in progress, never for the
	 * next group's writes and COMMIT (the fetch of rows another node made
	 * pending, dispatch_fetch.c; docs/architecture.md#several-nodes-notifications). */
	bool early;
	/* Set by the commit thread before done(): the store fault (enum
	 * store_fault) of the group, STORE_FAULT_NONE if it ran into none. A
	 * failed op with STORE_FAULT_UNREACHABLE failed because the database
	 * server could not be reached: nothing of it was written. */
	int fault;
	/* Set by the submitter to time the op (hops.h): the first of its
	 * three stages (queued, apply, after); HOP_NONE (0) = not timed. */
	int hop;
	/* private to commit.c */
	struct commit_op *next;
	int rc;
	int64_t submitted_us, started_us, applied_us; /* mono_us, when hop is set */
};

struct commit;

/* Starts the commit thread on a new connection to db_url. Returns 0 and the
 * handle in *out, or -1 with a reason in err. */
int commit_start(const char *db_url, struct commit **out, char *err, size_t errlen);
/* Queues op (thread-safe, never blocks on I/O) at the end of the submission
 * order. After commit_stop has begun, op->done is called at once with
 * STORE_ERROR, on this thread, and nothing is queued; c must not be used
 * once commit_stop has returned. */
void commit_submit(struct commit *c, struct commit_op *op);
/* Feeds m (NULL: nothing) with each group's size and commit time from the
 * next group on (docs/operations.md#metrics). */
struct metrics;
void commit_set_metrics(struct commit *c, struct metrics *m);
/* Where the writer reports the store's conditions (a failed commit, a full
 * disk); NULL = nowhere. Set before the first op; h must outlive c. */
struct store_health;
void commit_set_health(struct commit *c, struct store_health *h);
/* --min-free-space (docs/operations.md#faults-and-what-hookd-does): from now on, the commit thread looks at the
 * free space of the volume holding path (statvfs) at most once a second,
 * and sets STORE_COND_LOW_SPACE in the health (commit_set_health) while it
 * is below bytes, clearing it when it is back. bytes 0 or path NULL turns
 * the watch off. Returns 0, or -1 if out of memory (nothing changed). */
int commit_set_min_free(struct commit *c, const char *path, uint64_t bytes);
/* Runs every queued op, stops the thread, closes the store and frees c. */
void commit_stop(struct commit *c);

/* Submits op and blocks the calling thread until done() has run; returns the
 * op's rc. For management paths (start-up, tests); op->done may be NULL here. */
int commit_run_sync(struct commit *c, struct commit_op *op);

#endif
