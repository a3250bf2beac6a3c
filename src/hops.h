/* hops: where an event's time goes between its ingest and its send, per
 * stage, in process-wide histograms (docs/performance.md, "Where phase w's
 * time goes").
 *
 * Each stage is timed with the monotonic clock by the thread that ends it
 * and added here with relaxed atomic increments (a few ns); hookd prints
 * one line per stage that saw samples when it stops (hops_log), like the
 * writer's checkpoint line. For benchmarks and for finding waits, not an
 * API: the names and stages may change. */
#ifndef HOOKD_HOPS_H
#define HOOKD_HOPS_H

#include <stdint.h>

enum hop {
	HOP_NONE = 0,
	/* A commit op timed by commit.c (commit_op.hop names the first of
	 * its three): queued (submit → its apply starts), apply (its own
	 * statements), after (its apply's end → done(): the group's other
	 * ops and the COMMIT). */
	HOP_INGEST_QUEUE,
	HOP_INGEST_APPLY,
	HOP_INGEST_AFTER,
	HOP_FETCH_QUEUE,
	HOP_FETCH_APPLY,
	HOP_FETCH_AFTER,
	HOP_RECORD_QUEUE,
	HOP_RECORD_APPLY,
	HOP_RECORD_AFTER,
	/* The COMMIT of a group that ran (with its notifications). */
	HOP_GROUP_COMMIT,
	/* The listener read a hookd_pending notification → the dispatcher
	 * took its seqs from the inbox. */
	HOP_LISTEN_TO_DISPATCH,
	/* A fetch's done() → the dispatcher handled its rows. */
	HOP_FETCH_BACK,
	/* The dispatcher handed a request to a sender → the sender started it. */
	HOP_SENDER_PICKUP,
	/* A request's transfer (curl's total: connection, request, reply). */
	HOP_SEND,
	HOP_N
};

/* Adds one sample of us microseconds to stage h (any thread; negative
 * samples count as 0). */
void hops_add(enum hop h, int64_t us);
/* Adds now - since_us (mono_us) to stage h; nothing if since_us is 0. */
void hops_since(enum hop h, int64_t since_us);
/* Logs one line per stage with samples: count, p50, p90, p99, max (µs). */
void hops_log(void);

#endif
