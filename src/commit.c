/* commit: the store's single writer thread, with group commit.
 *
 * Why one thread: SQLite has one writer at a time anyway, and batching every
 * op that queued up while the previous group was being fsynced into one
 * transaction turns N fsyncs into one. Throughput then grows with load
 * instead of being capped by the disk's fsync rate. */
#include "commit.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "hops.h"
#include "log.h"
#include "metrics.h"
#include "store_health.h"
#include "util.h"

/* A group never holds more ops than this, so one transaction stays bounded
 * even when producers outpace the disk. */
#define COMMIT_GROUP_MAX 4096
/* How long a group of can_wait ops may wait for company, and how many
 * queued ops end the wait early. Measured (docs/performance.md): groups of
 * records four times larger cut the commit thread's CPU per delivery by
 * about a tenth; the wait delays nothing anyone is waiting for. */
#define COMMIT_LINGER_MS 2
#define COMMIT_LINGER_OPS 64
/* The free space of the database's volume is looked at no more often than
 * this (docs/operations.md#faults-and-what-hookd-does): statvfs is cheap, but not worth doing per group. */
#define COMMIT_SPACE_EVERY_MS 1000

struct commit {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct commit_op *head;
	struct commit_op *tail;
	size_t queued;
	size_t queued_can_wait; /* of queued, ops with can_wait set */
	bool stopping;
	struct store *st;
	/* Commit thread only: totals for the log line at stop (group size is
	 * what makes group commit pay). */
	unsigned long long groups;
	unsigned long long ops;
	struct metrics *metrics; /* under mu; NULL = off */
	struct store_health *health; /* under mu; NULL = none */
	/* --min-free-space (under mu): the file whose volume is watched
	 * (malloc'd; NULL = not watched) and the bytes it must keep free. */
	char *space_path;
	uint64_t min_free;
	/* Commit thread only: when the space was last looked at, and when the
	 * log was last truncated after a write failed for space (monotonic ms;
	 * at most once a COMMIT_SPACE_EVERY_MS: a checkpoint copies up to the
	 * whole log, too much to repeat for every refused request). */
	int64_t space_checked;
	int64_t truncated_at;
};

/* A savepoint that cannot be rolled back: the connection is gone (the
 * store's health says so once) or the transaction is broken. Rate-limited:
 * while the server is away every group ends here. */
static void group_abandoned(void)
{
	static struct log_limit limit;
	uint64_t dropped;
	if (log_limit_allow(&limit, 10000, &dropped))
		log_error("commit: rollback to savepoint failed; abandoning the group "
			  "groups_not_logged=%llu", (unsigned long long)dropped);
}

/* op->apply, timed when the op asks (hops.h). */
static int apply_op(struct store *st, struct commit_op *op)
{
	if (op->hop == HOP_NONE)
		return op->apply(st, op);
	op->started_us = mono_us();
	int rc = op->apply(st, op);
	op->applied_us = mono_us();
	return rc;
}

/* A timed op's three stages, just before its done(). */
static void op_hops(const struct commit_op *op, int64_t now)
{
	if (op->hop == HOP_NONE || op->applied_us == 0)
		return;
	hops_add((enum hop)op->hop, op->started_us - op->submitted_us);
	hops_add((enum hop)(op->hop + 1), op->applied_us - op->started_us);
	hops_add((enum hop)(op->hop + 2), now - op->applied_us);
}

/* Runs one op in a savepoint of its own. Returns false if the transaction
 * can no longer be used. */
static bool run_alone(struct store *st, struct commit_op *op)
{
	if (store_savepoint(st) != STORE_OK) {
		op->rc = STORE_ERROR;
		return true;
	}
	op->rc = apply_op(st, op);
	if (op->rc == STORE_OK) {
		if (store_release(st) != STORE_OK)
			op->rc = STORE_ERROR;
	} else if (store_rollback_to(st) != STORE_OK) {
		group_abandoned();
		return false;
	}
	return true;
}

/* Runs the ops from op up to (not including) stop, all rerun_ok, in one
 * savepoint: a savepoint copies every page its writes touch, once per
 * savepoint, which cost more than the writes themselves when each op had
 * one. If one fails, the run is undone and replayed one op per savepoint.
 * Returns false if the transaction can no longer be used. */
static bool run_shared(struct store *st, struct commit_op *op, struct commit_op *stop)
{
	struct commit_op *o;
	if (op->next == stop)
		return run_alone(st, op);
	if (store_savepoint(st) != STORE_OK) {
		for (o = op; o != stop; o = o->next)
			o->rc = STORE_ERROR;
		return true;
	}
	for (o = op; o != stop; o = o->next) {
		o->rc = apply_op(st, o);
		if (o->rc != STORE_OK)
			break;
	}
	if (o == stop) {
		if (store_release(st) != STORE_OK) {
			for (o = op; o != stop; o = o->next)
				o->rc = STORE_ERROR;
		}
		return true;
	}
	if (store_rollback_to(st) != STORE_OK) {
		group_abandoned();
		return false;
	}
	for (o = op; o != stop; o = o->next) {
		if (!run_alone(st, o))
			return false;
	}
	return true;
}

/* After a group: what its failures ran into goes to the store's health
 * (before any done() runs, so a caller that sees its op fail can ask it);
 * a group that committed changes with no fault clears the write conditions
 * (one that only read, such as a page of pending deliveries, proves
 * nothing about the disk). After a write failed for space, the log is
 * checkpointed and cut back so freeing space on the volume is enough to
 * recover. */
static enum store_fault note_health(struct commit *c, struct store_health *h, bool committed,
				    bool commit_failed)
{
	char detail[128], why[STORE_HEALTH_REASON_MAX];
	bool wrote;
	enum store_fault f = store_fault_take(c->st, detail, sizeof detail, &wrote);
	if (f == STORE_FAULT_NONE && commit_failed) {
		log_error("commit: group commit failed");
		f = STORE_FAULT_WRITE;
		snprintf(detail, sizeof detail, "the commit failed");
	}
	if (f == STORE_FAULT_FULL) {
		snprintf(why, sizeof why, "no space left on the database's volume (%s)", detail);
		store_health_set(h, STORE_COND_FULL, why, now_ms());
		int64_t now = mono_ms();
		if (c->truncated_at == 0 || now - c->truncated_at >= COMMIT_SPACE_EVERY_MS) {
			c->truncated_at = now;
			store_wal_truncate(c->st);
		}
	} else if (f == STORE_FAULT_WRITE) {
		snprintf(why, sizeof why, "a write to the database failed (%s)", detail);
		store_health_set(h, STORE_COND_WRITE, why, now_ms());
	} else if (f == STORE_FAULT_UNREACHABLE) {
		store_health_unreachable(h, detail, now_ms());
	} else if (committed) {
		/* Any commit proves the server is reachable again. */
		store_health_clear(h, STORE_COND_UNREACHABLE);
	}
	if (f == STORE_FAULT_NONE && committed && wrote) {
		store_health_clear(h, STORE_COND_FULL);
		store_health_clear(h, STORE_COND_WRITE);
	}
	return f;
}

static void run_group(struct commit *c, struct commit_op *group, size_t n, struct metrics *m,
		      struct store_health *h)
{
	struct store *st = c->st;
	bool commit_failed = false;
	bool began = store_begin(st) == STORE_OK;
	bool in_tx = began;

	for (struct commit_op *op = group; op && in_tx;) {
		struct commit_op *stop = op->next;
		if (op->rerun_ok) {
			while (stop && stop->rerun_ok)
				stop = stop->next;
			in_tx = run_shared(st, op, stop);
		} else {
			in_tx = run_alone(st, op);
		}
		op = stop;
	}
	if (began && !in_tx)
		store_rollback(st);
	int64_t t0 = mono_us();
	if (in_tx && store_commit(st) != STORE_OK) {
		store_rollback(st);
		in_tx = false;
		commit_failed = true;
	}
	int64_t t1 = mono_us();
	if (in_tx) {
		hops_add(HOP_GROUP_COMMIT, t1 - t0);
		if (m != NULL)
			metrics_commit_group(m, n, (uint64_t)(t1 - t0));
	}
	enum store_fault f = note_health(c, h, in_tx, commit_failed);
	for (struct commit_op *op = group; op; op = op->next) {
		if (!in_tx)
			op->rc = STORE_ERROR;
		op->fault = (int)f;
	}
	/* done() may free the op, so step before calling it. */
	struct commit_op *op = group;
	while (op) {
		struct commit_op *next = op->next;
		op_hops(op, mono_us());
		if (op->done)
			op->done(op, op->rc);
		op = next;
	}
}

/* With c->mu held: takes every queued early op out of the queue, in
 * order; returns them linked by next (NULL if none). */
static struct commit_op *take_early(struct commit *c)
{
	struct commit_op *first = NULL, **out = &first, **at = &c->head, *prev = NULL;
	while (*at != NULL) {
		struct commit_op *op = *at;
		if (!op->early) {
			prev = op;
			at = &op->next;
			continue;
		}
		*at = op->next;
		if (c->tail == op)
			c->tail = prev;
		c->queued--;
		c->queued_can_wait -= op->can_wait;
		op->next = NULL;
		*out = op;
		out = &op->next;
	}
	return first;
}

/* Applies early ops (take_early) outside any transaction and calls each
 * one's done() at once: they only read, so nothing waits for a commit. */
static void run_early(struct commit *c, struct commit_op *op, struct store_health *h)
{
	while (op != NULL) {
		struct commit_op *next = op->next;
		op->rc = apply_op(c->st, op);
		/* A read that worked proves the server reachable, not the disk. */
		op->fault = (int)note_health(c, h, op->rc == STORE_OK, false);
		op_hops(op, mono_us());
		if (op->done)
			op->done(op, op->rc);
		op = next;
	}
}

/* With c->mu held and ops queued: while every queued op can wait, waits
 * for more, up to COMMIT_LINGER_MS or COMMIT_LINGER_OPS. */
static void linger(struct commit *c)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += COMMIT_LINGER_MS * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (c->queued == c->queued_can_wait && c->queued < COMMIT_LINGER_OPS && !c->stopping)
		if (pthread_cond_timedwait(&c->cv, &c->mu, &until) != 0)
			break; /* the time is up */
}

/* With c->mu held: if --min-free-space is on and COMMIT_SPACE_EVERY_MS have
 * passed, looks at the volume's free space (statvfs: the space an
 * unprivileged user may still use, a few microseconds on a local volume)
 * and sets or clears STORE_COND_LOW_SPACE. */
static void check_space(struct commit *c)
{
	int64_t now = mono_ms();
	if (c->space_path == NULL || now - c->space_checked < COMMIT_SPACE_EVERY_MS)
		return;
	c->space_checked = now;
	struct statvfs v;
	if (statvfs(c->space_path, &v) != 0)
		return; /* nothing known: leave the condition as it is */
	uint64_t free_bytes = (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
	if (free_bytes >= c->min_free) {
		store_health_clear(c->health, STORE_COND_LOW_SPACE);
		return;
	}
	char why[STORE_HEALTH_REASON_MAX];
	snprintf(why, sizeof why,
		 "%llu bytes free on the database's volume, below --min-free-space "
		 "%llu; new events are refused",
		 (unsigned long long)free_bytes, (unsigned long long)c->min_free);
	store_health_set(c->health, STORE_COND_LOW_SPACE, why, now_ms());
}

/* With c->mu held: waits for an op or the stop; wakes for check_space's
 * next look meanwhile when the space is watched. */
static void wait_work(struct commit *c)
{
	while (!c->head && !c->stopping) {
		check_space(c);
		if (c->space_path == NULL) {
			pthread_cond_wait(&c->cv, &c->mu);
			continue;
		}
		int64_t due = c->space_checked + COMMIT_SPACE_EVERY_MS;
		struct timespec until = {.tv_sec = due / 1000, .tv_nsec = (due % 1000) * 1000000L};
		pthread_cond_timedwait(&c->cv, &c->mu, &until);
	}
	check_space(c);
}

static void *commit_thread(void *arg)
{
	struct commit *c = arg;
	/* A name of its own, so top -H and profiles tell it from the others. */
	pthread_setname_np(pthread_self(), "hookd-commit");
	for (;;) {
		pthread_mutex_lock(&c->mu);
		/* Ops that arrived while the last group committed: under load. */
		bool busy = c->head != NULL;
		wait_work(c);
		if (!c->head) {
			pthread_mutex_unlock(&c->mu);
			break; /* stopping and drained */
		}
		if (busy)
			linger(c);
		struct commit_op *early = take_early(c);
		if (c->head == NULL) {
			struct store_health *h = c->health;
			pthread_mutex_unlock(&c->mu);
			run_early(c, early, h);
			continue;
		}
		struct commit_op *group = c->head;
		struct commit_op *last = group;
		size_t n = 1, n_can_wait = group->can_wait;
		/* An op marked alone is a group by itself (commit.h). */
		while (!last->alone && last->next && !last->next->alone && n < COMMIT_GROUP_MAX) {
			last = last->next;
			n++;
			n_can_wait += last->can_wait;
		}
		c->head = last->next;
		if (!c->head)
			c->tail = NULL;
		c->queued -= n;
		c->queued_can_wait -= n_can_wait;
		last->next = NULL;
		struct metrics *m = c->metrics;
		struct store_health *h = c->health;
		pthread_mutex_unlock(&c->mu);

		run_early(c, early, h);
		c->groups++;
		c->ops += n;
		run_group(c, group, n, m, h);
	}
	log_info("commit thread stopped groups=%llu ops=%llu", c->groups, c->ops);
	return NULL;
}

void commit_set_metrics(struct commit *c, struct metrics *m)
{
	pthread_mutex_lock(&c->mu);
	c->metrics = m;
	pthread_mutex_unlock(&c->mu);
}

void commit_set_health(struct commit *c, struct store_health *h)
{
	pthread_mutex_lock(&c->mu);
	c->health = h;
	pthread_mutex_unlock(&c->mu);
}

int commit_set_min_free(struct commit *c, const char *path, uint64_t bytes)
{
	char *p = NULL;
	if (path != NULL && bytes > 0 && (p = strdup(path)) == NULL)
		return -1;
	pthread_mutex_lock(&c->mu);
	free(c->space_path);
	c->space_path = p;
	c->min_free = bytes;
	c->space_checked = mono_ms() - COMMIT_SPACE_EVERY_MS;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (p == NULL)
		store_health_clear(c->health, STORE_COND_LOW_SPACE);
	return 0;
}

int commit_start(const char *db_url, struct commit **out, char *err, size_t errlen)
{
	struct commit *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (store_open_writer(db_url, &c->st, err, errlen) != STORE_OK) {
		free(c);
		return -1;
	}
	pthread_mutex_init(&c->mu, NULL);
	/* linger() waits against the monotonic clock. */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&c->thread, NULL, commit_thread, c) != 0) {
		snprintf(err, errlen, "cannot start the commit thread");
		store_close(c->st);
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->cv);
		free(c);
		return -1;
	}
	*out = c;
	return 0;
}

void commit_submit(struct commit *c, struct commit_op *op)
{
	op->next = NULL;
	op->rc = STORE_OK;
	op->started_us = op->applied_us = 0;
	op->submitted_us = op->hop != HOP_NONE ? mono_us() : 0;
	pthread_mutex_lock(&c->mu);
	if (c->stopping) {
		pthread_mutex_unlock(&c->mu);
		if (op->done)
			op->done(op, STORE_ERROR);
		return;
	}
	if (c->tail)
		c->tail->next = op;
	else
		c->head = op;
	c->tail = op;
	c->queued++;
	c->queued_can_wait += op->can_wait;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

void commit_stop(struct commit *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stopping = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	store_close(c->st);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c->space_path);
	free(c);
}

/* commit_run_sync wraps the caller's op so it can wait for done(). */
struct sync_op {
	struct commit_op op;
	struct commit_op *inner;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool finished;
	int rc;
};

static int sync_apply(struct store *st, struct commit_op *op)
{
	struct sync_op *s = (struct sync_op *)op;
	return s->inner->apply(st, s->inner);
}

static void sync_done(struct commit_op *op, int rc)
{
	struct sync_op *s = (struct sync_op *)op;
	if (s->inner->done)
		s->inner->done(s->inner, rc);
	pthread_mutex_lock(&s->mu);
	s->rc = rc;
	s->finished = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

int commit_run_sync(struct commit *c, struct commit_op *op)
{
	struct sync_op s = {
		.op = {.apply = sync_apply, .done = sync_done},
		.inner = op,
	};
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	commit_submit(c, &s.op);
	pthread_mutex_lock(&s.mu);
	while (!s.finished)
		pthread_cond_wait(&s.cv, &s.mu);
	pthread_mutex_unlock(&s.mu);
	pthread_mutex_destroy(&s.mu);
	pthread_cond_destroy(&s.cv);
	return s.rc;
}
