/* queue_refresh: keeps a node's queue figures (queue_depth) close to the
 * database when other processes write it too (several hookd nodes on one
 * PostgreSQL; store_shared). Each node's figures are fed only by its own
 * committed ops, so without this they drift from the truth by whatever the
 * other nodes ingest and deliver. A thread of its own reads the grouped
 * seed query (store_queue_seed) on a connection of its own every period
 * and swaps the result in (queue_depth_refresh): GET /v1/stats and
 * /metrics are then at most one period plus one read behind the database
 * (docs/operations.md#several-nodes-queue-figures). Its reads also feed the
 * store's health (store_note_read), so an unreachable server is seen, and
 * seen to return, even while nothing else touches the store. */
#ifndef HOOKD_QUEUE_REFRESH_H
#define HOOKD_QUEUE_REFRESH_H

#include <stddef.h>
#include <stdint.h>

#include "queue_depth.h"
#include "store_health.h"

/* The period of the refresh, milliseconds: the staleness bound's main part. */
#define QUEUE_REFRESH_MS 5000

struct queue_refresh;

/* Starts the thread on a new connection to db_url, refreshing q every
 * every_ms and telling h (may be NULL) what its reads ran into. Returns 0
 * and the handle in *out, or -1 with a reason in err. q and h must outlive
 * queue_refresh_stop. */
int queue_refresh_start(const char *db_url, struct queue_depth *q, struct store_health *h,
			int64_t every_ms, struct queue_refresh **out, char *err, size_t errlen);
/* Stops the thread (a read in progress ends first), closes its connection
 * and frees r. NULL is fine. */
void queue_refresh_stop(struct queue_refresh *r);

#endif
