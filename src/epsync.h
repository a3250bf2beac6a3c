/* epsync: what the in-memory state does once an endpoint change has
 * committed, whichever node made it. The API's own writes (api_endpoints.c,
 * from their done() on the commit thread) and the changes another node made
 * (listen.c's reload ops, on the commit thread too) both go through here,
 * so every node's endpoint cache and dispatcher follow the same rules
 * (docs/architecture.md#several-nodes-notifications). */
#ifndef HOOKD_EPSYNC_H
#define HOOKD_EPSYNC_H

#include <stdbool.h>

#include "model.h"

struct epcache;
struct dispatch;
struct queue_depth;
struct metrics;

/* The state an endpoint change touches. dispatch, queue and metrics may be
 * NULL (none). */
struct epsync {
	struct epcache *cache;
	struct dispatch *dispatch;
	struct queue_depth *queue;
	struct metrics *metrics;
};

/* e (as stored now) was created or changed (PATCH, enable/disable, secret
 * rotation, a 410's disable): the cache takes it, and if the endpoint can
 * send now where the cache had it disabled or did not have it, the
 * dispatcher pages the store again from the start (its deliveries waited,
 * maybe below the paging watermark). fresh: e was created by this commit on
 * this node, so nothing of it can be waiting yet (no rescan). Commit thread,
 * after the change committed. */
void epsync_put(const struct epsync *s, const struct endpoint *e, bool fresh);

/* Endpoint id was deleted: it leaves the cache, the queue figures and the
 * metrics, and the dispatcher frees its state once idle. Commit thread,
 * after the delete committed. */
void epsync_deleted(const struct epsync *s, const char *id);

#endif
