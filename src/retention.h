/* retention: the job that keeps storage bounded (docs/operations.md#retention).
 * A thread of its own wakes every retention_every_ms, deletes old, final
 * events (with their deliveries, attempts and idempotency keys) in small
 * batches, each one op on the commit thread (store_purge_events), with a
 * pause after each so ingest and delivery keep the writer most of the time,
 * then gives free pages above a reserve back to the file system in small
 * steps (store_reclaim). It only waits for its own ops: ingest never waits
 * for more than one batch. */
#ifndef HOOKD_RETENTION_H
#define HOOKD_RETENTION_H

#include <stddef.h>
#include <stdint.h>

struct commit;
struct queue_depth;

/* Events deleted per batch at most (a batch also stops at four deliveries
 * per event; an event with more goes alone), the least and the first batch,
 * events looked at per batch, and batches per run. */
#define RETENTION_BATCH_EVENTS 500
#define RETENTION_BATCH_MIN 10
#define RETENTION_BATCH_FIRST 50
#define RETENTION_BATCH_SCAN 5000
/* The time a batch may take on the commit thread, in microseconds
 * (retention_next_batch). */
#define RETENTION_BATCH_TARGET_US 2000
#define RETENTION_MAX_BATCHES 1000
#define RETENTION_MAX_RUN_EVENTS 100000 /* a run ends once it deleted this many */
/* Pages one reclaim step gives back, and steps per run. */
#define RETENTION_RECLAIM_PAGES 64
#define RETENTION_RECLAIM_STEPS 256

struct retention_config {
	int64_t retention_ms;     /* --retention: > 0 (off is no job at all) */
	int64_t dlq_retention_ms; /* --dlq-retention: dead letters count as final after it */
	struct queue_depth *queue; /* dead letters deleted are taken off it; may be NULL */
};

struct retention;

/* Starts the job's thread; its ops go to writer, which must outlive it.
 * Returns 0 and the handle in *out, or -1 with a reason in err. */
int retention_start(const struct retention_config *cfg, struct commit *writer,
		    struct retention **out, char *err, size_t errlen);
/* Ends the run in progress after its current op and joins the thread, then
 * frees r (NULL: nothing). Call before commit_stop. */
void retention_stop(struct retention *r);

/* How often a run starts: a quarter of the retention, between 1 s and 60 s. */
int64_t retention_every_ms(int64_t retention_ms);
/* The pause after a batch whose op held the writer op_ms (its apply, its
 * group's commit and any checkpoint that ran): three times as long (the
 * job holds the writer at most a quarter of the time), at least 20 ms, at
 * most 5 s. */
int64_t retention_pause_ms(int64_t op_ms);
/* The size of the next batch (events) after one of `events` that took
 * op_us microseconds: halved (down to RETENTION_BATCH_MIN) if it took longer
 * than RETENTION_BATCH_TARGET_US, doubled (up to RETENTION_BATCH_EVENTS) if
 * it took less than a third of that, else the same. So an ingest waits for
 * at most about the target, whatever the rows cost on this machine. */
int retention_next_batch(int events, int64_t op_us);
/* Whether free_bytes of free pages in a file of file_bytes are more than
 * the reserve kept for new rows (an eighth of the file, at least 4 MiB), so
 * a reclaim step is due. Unknown figures (< 0): no. */
int retention_reclaim_due(int64_t free_bytes, int64_t file_bytes);

#endif
