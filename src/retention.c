/* retention: the periodic purge of old, final events and the return of
 * free pages (see retention.h; docs/operations.md#retention). The thread
 * only sleeps and submits: every write is an op on the commit thread, run
 * with commit_run_sync, one at a time, so the writer is never held by more
 * than one batch and queue_depth hears of deleted dead letters in commit
 * order (the op's done()). */
#include "retention.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commit.h"
#include "log.h"
#include "queue_depth.h"
#include "store.h"
#include "util.h"

#define EVERY_MIN_MS 1000
#define EVERY_MAX_MS (60 * 1000)
#define PAUSE_MIN_MS 20
#define PAUSE_MAX_MS 5000
#define RESERVE_MIN_BYTES (4LL << 20)

struct retention {
	struct retention_config cfg;
	struct commit *writer;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC */
	bool stopping;     /* under mu */
};

/* What a batch's dead letters do to the queue figures: endpoint, count. */
struct dead_count {
	char endpoint_id[ID_MAX];
	int64_t n;
};

/* One batch: a commit op (the first member, so an op is its batch). */
struct batch_op {
	struct commit_op op;
	struct retention *r;
	struct store_retention args;
	struct store_retention_cursor cur;
	struct store_retention_result res;
	struct dead_count *dead;
	size_t n_dead, cap_dead;
	int64_t t0_us;   /* when the apply began (monotonic) */
	int64_t took_us; /* the apply's time on the commit thread: sizes the batches */
	int64_t held_us; /* from the apply to done(): with the group's commit and any
			  * checkpoint it ran, what the writer spent: paces them */
};

int64_t retention_every_ms(int64_t retention_ms)
{
	int64_t every = retention_ms / 4;
	return every < EVERY_MIN_MS ? EVERY_MIN_MS : every > EVERY_MAX_MS ? EVERY_MAX_MS : every;
}

int64_t retention_pause_ms(int64_t op_ms)
{
	if (op_ms > PAUSE_MAX_MS / 3)
		return PAUSE_MAX_MS;
	return op_ms * 3 < PAUSE_MIN_MS ? PAUSE_MIN_MS : op_ms * 3;
}

int retention_next_batch(int events, int64_t op_us)
{
	int next = events;
	if (op_us > RETENTION_BATCH_TARGET_US)
		next = events / 2;
	else if (op_us < RETENTION_BATCH_TARGET_US / 3)
		next = events > RETENTION_BATCH_EVENTS / 2 ? RETENTION_BATCH_EVENTS : events * 2;
	return next < RETENTION_BATCH_MIN ? RETENTION_BATCH_MIN
	       : next > RETENTION_BATCH_EVENTS ? RETENTION_BATCH_EVENTS : next;
}

int retention_reclaim_due(int64_t free_bytes, int64_t file_bytes)
{
	if (free_bytes < 0 || file_bytes < 0)
		return 0;
	int64_t reserve = file_bytes / 8;
	if (reserve < RESERVE_MIN_BYTES)
		reserve = RESERVE_MIN_BYTES;
	return free_bytes > reserve;
}

static int note_dead(const char *endpoint_id, int64_t n, void *arg)
{
	struct batch_op *b = arg;
	struct dead_count *d = array_grow(b->dead, &b->cap_dead, b->n_dead + 1, sizeof *d, 16);
	if (d == NULL)
		return STORE_ERROR;
	b->dead = d;
	d = &b->dead[b->n_dead++];
	snprintf(d->endpoint_id, sizeof d->endpoint_id, "%s", endpoint_id);
	d->n = n;
	return STORE_OK;
}

static int batch_apply(struct store *st, struct commit_op *op)
{
	struct batch_op *b = (struct batch_op *)op;
	b->t0_us = mono_us();
	b->n_dead = 0;
	int rc = store_purge_events(st, &b->args, &b->cur, &b->res,
				    b->r->cfg.queue != NULL ? note_dead : NULL, b);
	b->took_us = mono_us() - b->t0_us;
	return rc;
}

/* The commit thread, after the group: the dead letters leave the figures. */
static void batch_done(struct commit_op *op, int rc)
{
	struct batch_op *b = (struct batch_op *)op;
	struct queue_depth *q = b->r->cfg.queue;
	b->held_us = mono_us() - b->t0_us;
	if (rc != STORE_OK || q == NULL || b->n_dead == 0)
		return;
	queue_depth_lock(q);
	for (size_t i = 0; i < b->n_dead; i++)
		queue_depth_add_dead_locked(q, b->dead[i].endpoint_id, -b->dead[i].n);
	queue_depth_unlock(q);
}

/* Waits ms (monotonic) or until stopped; true if stopping. */
static bool pause_for(struct retention *r, int64_t ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->mu);
	int w = 0;
	while (!r->stopping && w != ETIMEDOUT)
		w = pthread_cond_timedwait(&r->cv, &r->mu, &until);
	bool stopping = r->stopping;
	pthread_mutex_unlock(&r->mu);
	return stopping;
}

/* Deletes what the window lets go, batch after batch; false if stopped. */
static bool purge_run(struct retention *r)
{
	int64_t now = now_ms(), t0 = mono_ms();
	struct batch_op b = {
		.op = {.apply = batch_apply, .done = batch_done},
		.r = r,
		.args = {.before = now - r->cfg.retention_ms,
			 .dead_before = now - r->cfg.dlq_retention_ms,
			 .max_events = RETENTION_BATCH_FIRST,
			 .max_deliveries = 4 * RETENTION_BATCH_FIRST,
			 .max_scan = RETENTION_BATCH_SCAN},
		.cur = STORE_RETENTION_START,
	};
	struct store_retention_result sum = {0};
	int batches = 0, rc = STORE_OK;
	bool stopped = false;
	while (batches < RETENTION_MAX_BATCHES && sum.events < RETENTION_MAX_RUN_EVENTS) {
		rc = commit_run_sync(r->writer, &b.op);
		batches++;
		if (rc != STORE_OK)
			break;
		log_debug("retention batch events=%lld deliveries=%lld attempts=%lld keys=%lld "
			  "us=%lld held_us=%lld",
			  (long long)b.res.events, (long long)b.res.deliveries,
			  (long long)b.res.attempts, (long long)b.res.keys, (long long)b.took_us,
			  (long long)b.held_us);
		b.args.max_events = retention_next_batch(b.args.max_events, b.took_us);
		b.args.max_deliveries = 4 * (int64_t)b.args.max_events;
		sum.events += b.res.events;
		sum.deliveries += b.res.deliveries;
		sum.attempts += b.res.attempts;
		sum.keys += b.res.keys;
		int64_t pause = retention_pause_ms((b.held_us + 999) / 1000);
		if (b.res.done || (stopped = pause_for(r, pause)))
			break;
	}
	free(b.dead);
	if (rc != STORE_OK)
		log_warn("retention: a batch failed rc=%d; the next run starts over", rc);
	if (sum.events + sum.keys > 0)
		log_info("retention purged events=%lld deliveries=%lld attempts=%lld "
			 "idempotency_keys=%lld batches=%d ms=%lld%s",
			 (long long)sum.events, (long long)sum.deliveries, (long long)sum.attempts,
			 (long long)sum.keys, batches, (long long)(mono_ms() - t0),
			 b.res.done || rc != STORE_OK ? "" : " more=true");
	return !stopped;
}

/* One reclaim step: a commit op (the first member). */
struct reclaim_op {
	struct commit_op op;
	int64_t freed;
	bool due;
	int64_t t0_us;
	int64_t held_us; /* from the apply to done(), as a batch's */
};

static int reclaim_apply(struct store *st, struct commit_op *op)
{
	struct reclaim_op *x = (struct reclaim_op *)op;
	x->t0_us = mono_us();
	struct store_size sz;
	x->freed = 0;
	int rc = store_size(st, &sz);
	x->due = rc == STORE_OK && retention_reclaim_due(sz.free_bytes, sz.file_bytes);
	if (x->due)
		rc = store_reclaim(st, RETENTION_RECLAIM_PAGES, &x->freed);
	return rc;
}

static void reclaim_done(struct commit_op *op, int rc)
{
	struct reclaim_op *x = (struct reclaim_op *)op;
	(void)rc;
	x->held_us = mono_us() - x->t0_us;
}

/* Gives free pages above the reserve back, a step at a time. */
static void reclaim_run(struct retention *r)
{
	struct reclaim_op x = {.op = {.apply = reclaim_apply, .done = reclaim_done}};
	int64_t total = 0;
	for (int i = 0; i < RETENTION_RECLAIM_STEPS; i++) {
		if (commit_run_sync(r->writer, &x.op) != STORE_OK || !x.due || x.freed == 0)
			break;
		log_debug("retention reclaim step bytes=%lld held_us=%lld", (long long)x.freed,
			  (long long)x.held_us);
		total += x.freed;
		if (pause_for(r, retention_pause_ms((x.held_us + 999) / 1000)))
			break;
	}
	if (total > 0)
		log_info("retention reclaimed bytes=%lld", (long long)total);
}

static void *run(void *arg)
{
	struct retention *r = arg;
	int64_t every = retention_every_ms(r->cfg.retention_ms);
	while (!pause_for(r, every)) {
		if (purge_run(r))
			reclaim_run(r);
	}
	return NULL;
}

int retention_start(const struct retention_config *cfg, struct commit *writer,
		    struct retention **out, char *err, size_t errlen)
{
	*out = NULL;
	struct retention *r = calloc(1, sizeof *r);
	pthread_condattr_t ca;
	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->cfg = *cfg;
	r->writer = writer;
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	int rc = pthread_create(&r->thread, NULL, run, r);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the retention thread: %s", strerror(rc));
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		free(r);
		return -1;
	}
	pthread_setname_np(r->thread, "hookd-retention");
	*out = r;
	return 0;
}

void retention_stop(struct retention *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->stopping = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
