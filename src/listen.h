/* listen: the thread that hears the other hookd nodes on the same database
 * (docs/architecture.md#several-nodes-notifications). Thread `hookd-listen`,
 * its own connection (store_listen_*): deliveries another node made pending
 * go to the dispatcher (dispatch_fetch, or a rescan), endpoints another
 * node changed are read again on the commit thread and applied in memory as
 * the API's own changes are (epsync.h). On every (re)connect it reloads
 * every endpoint and has the dispatcher rescan, since what was sent while
 * it was away is lost. A lost connection is opened again after 100 ms,
 * doubling up to 5 s; each change of state is logged once. Only for a
 * backend with notifications (store_listen_supported). */
#ifndef HOOKD_LISTEN_H
#define HOOKD_LISTEN_H

#include <stddef.h>

#include "commit.h"
#include "epsync.h"

struct listen_config {
	const char *db_url;   /* must outlive the listener */
	const char *node_id;  /* this node's (its own payloads are ignored); outlives it */
	struct commit *writer;
	struct epsync sync;   /* cache and dispatcher the changes go to */
};

struct listen;

/* Starts the thread (it connects on its own, retrying). Returns 0 and *out,
 * or -1 with a reason in err. */
int listen_start(const struct listen_config *cfg, struct listen **out, char *err, size_t errlen);
/* Stops the thread, waits for the ops it submitted to be done and frees l
 * (NULL: nothing). Call it before the dispatcher stops. */
void listen_stop(struct listen *l);

#endif
