/* queue_depth: an in-memory, always-current view of the delivery queue,
 * overall and per endpoint: pending deliveries (split at read time into
 * due, scheduled and waiting), dead letters, and how long the oldest due
 * delivery has been due ("how late are we").
 *
 * It is seeded from the store once at start (queue_depth_seed, one grouped
 * read) and then kept current by the commit thread: each op that moves
 * deliveries feeds its moves in its done()/committed() callback, after the
 * group committed, so a rolled-back op never changes the figures. Reads
 * (a stats request, a scrape) cost O(distinct seconds) per endpoint and
 * never touch the store.
 *
 * Per endpoint it keeps the dead count and a multiset of its pending
 * deliveries keyed by the whole second of their next_attempt_at (an open
 * addressing table: second -> count, and the earliest ms added to it).
 * Due vs scheduled is decided when read: a second whose earliest ms has
 * come is due. Times are therefore exact to the second: a delivery may
 * count as due up to 1 s before its next_attempt_at, and an age may be up
 * to 1 s too large.
 *
 * Locking: one mutex. A writer takes it once for all the moves of one
 * committed op (queue_depth_lock ... queue_depth_unlock around the
 * queue_depth_*_locked calls, or one call of a batch helper), never per
 * delivery; readers take it for the length of a read. Memory is allocated
 * only when an endpoint is first seen and when an endpoint's table of
 * seconds grows or shrinks, not per delivery. Every function accepts
 * q == NULL and then does nothing (reads give zeros), so modules run
 * without one in tests. */
#ifndef HOOKD_QUEUE_DEPTH_H
#define HOOKD_QUEUE_DEPTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* The queue as GET /v1/stats shows it (docs/api.md "queue"). pending = due
 * + scheduled + waiting. due: the next attempt time has come, on an
 * endpoint that can send (deliveries in flight count here until their
 * result is committed). scheduled: next attempt in the future (a retry's
 * backoff). waiting: on an endpoint that cannot send now (disabled,
 * paused, circuit open), whatever its time. oldest_pending_age_s: now
 * minus the earliest next_attempt_at among due deliveries, in seconds; 0
 * when nothing is due. */
struct queue_figures {
	int64_t pending, due, scheduled, waiting, dead;
	double oldest_pending_age_s;
};

/* Tells whether an endpoint cannot send now (disabled, paused, circuit
 * open): its pending deliveries are then "waiting". Called with the
 * module's lock held, once per endpoint read: it must not call
 * queue_depth functions, and may take another lock only if no holder of
 * that lock calls into the view (the dispatcher's and the endpoint cache's
 * locks qualify: the feeds never run under them). NULL means every
 * endpoint can send. For hookd:
 * !epcache enabled || dispatch_endpoint_status().paused_until > now ||
 * circuit is "open" (an unknown endpoint, deleted meanwhile, may answer
 * either way: it has no figures left). */
typedef bool (*queue_depth_blocked_fn)(const char *endpoint_id, void *arg);

struct queue_depth;

/* A new, empty view; NULL if out of memory. */
struct queue_depth *queue_depth_new(void);
/* Frees q (NULL is fine). No other thread may use it any more. */
void queue_depth_free(struct queue_depth *q);

/* Replaces q's figures with the store's (store_queue_seed: one grouped read
 * of the pending and dead rows). Call it at start, before anything writes.
 * Returns STORE_OK, the store's error, or STORE_ERROR if memory ran out
 * (q is then empty). */
int queue_depth_seed(struct queue_depth *q, struct store *st);

/* Replaces q's figures with the store's again while hookd runs (several
 * nodes on one PostgreSQL: each node's feeds see only its own commits, see
 * queue_refresh.h). The store is read into a view of its own first, with
 * q's lock not held (feeds never wait for the database), then swapped in
 * under the lock at once. A move committed while the read ran may be
 * counted twice or not at all until the next refresh. STORE_OK, or the
 * store's error / STORE_ERROR out of memory (q then unchanged). */
int queue_depth_refresh(struct queue_depth *q, struct store *st);

/* ---- feeding: the commit thread, after a successful commit ---- */

/* Takes and releases the lock around the *_locked calls of one committed
 * op. */
void queue_depth_lock(struct queue_depth *q);
void queue_depth_unlock(struct queue_depth *q);

/* n deliveries of endpoint_id became pending with next_attempt_at = at
 * (new, replayed, retried from the DLQ, or rescheduled by a failed attempt). */
void queue_depth_add_pending_locked(struct queue_depth *q, const char *endpoint_id, int64_t at,
				    int64_t n);
/* One pending delivery of endpoint_id whose next_attempt_at was at left
 * that state (an attempt's result; a rescheduled one is then added again
 * at its new time). A delivery the view does not hold at that second
 * (which a correct caller never asks) is taken from the endpoint's
 * earliest second instead, so the counts stay right; it is counted in
 * queue_depth_misses. */
void queue_depth_remove_pending_locked(struct queue_depth *q, const char *endpoint_id,
				       int64_t at);
/* n dead letters of endpoint_id appeared (n > 0: an attempt's result) or
 * went away (n < 0: a DLQ retry, a purge). The count never goes below 0. */
void queue_depth_add_dead_locked(struct queue_depth *q, const char *endpoint_id, int64_t n);

/* Batch helpers, each taking the lock once. created: items became pending
 * at their next_attempt_at (ingest, test, replays, dead-letter notices,
 * a DLQ retry of one). dead_retried: n dead letters of endpoint_id became
 * pending at `at` (a DLQ retry of the endpoint). endpoint_deleted: the
 * endpoint and its deliveries are gone: its figures are dropped. */
void queue_depth_created(struct queue_depth *q, const struct pending *items, size_t n);
void queue_depth_dead_retried(struct queue_depth *q, const char *endpoint_id, int64_t at,
			      int64_t n);
void queue_depth_endpoint_deleted(struct queue_depth *q, const char *endpoint_id);

/* ---- reading: any thread ---- */

/* Fills *out with endpoint_id's figures at wall time now_ms, or with the
 * whole queue's when endpoint_id is NULL (oldest age: the largest of the
 * endpoints'). An endpoint the view does not know reads as zeros. blocked
 * (may be NULL) says which endpoints cannot send; see its type. */
void queue_depth_read(struct queue_depth *q, const char *endpoint_id, int64_t now_ms,
		      queue_depth_blocked_fn blocked, void *blocked_arg,
		      struct queue_figures *out);

/* Calls fn for every endpoint the view knows (some may be all zeros, e.g.
 * an endpoint whose deliveries all succeeded), in no particular order, with
 * its figures at now_ms, under the lock: fn must not call queue_depth
 * functions. Stops at the first non-zero fn result and returns it; else 0. */
int queue_depth_each(struct queue_depth *q, int64_t now_ms, queue_depth_blocked_fn blocked,
		     void *blocked_arg,
		     int (*fn)(const char *endpoint_id, const struct queue_figures *f, void *arg),
		     void *arg);

/* How many removals found nothing where the caller said (a sign of a feed
 * out of step with the store; 0 in a correct run), and how many adds were
 * lost to a failed allocation. For tests and a warning in the log. */
struct queue_depth_health {
	uint64_t misses;
	uint64_t lost;
};
void queue_depth_health(struct queue_depth *q, struct queue_depth_health *out);

#endif
