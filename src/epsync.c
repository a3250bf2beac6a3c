/* epsync: the in-memory side of a committed endpoint change (epsync.h). */
#include "epsync.h"

#include "dispatch.h"
#include "epcache.h"
#include "log.h"
#include "metrics.h"
#include "queue_depth.h"

void epsync_put(const struct epsync *s, const struct endpoint *e, bool fresh)
{
	struct ep_entry *old = epcache_get(s->cache, e->id);
	bool was_enabled = old != NULL && old->enabled;
	ep_entry_release(old);
	if (epcache_put(s->cache, e) != 0)
		log_error("endpoint stored but not cached (out of memory?) id=%s", e->id);
	/* Its deliveries waited while it was disabled (or unknown here),
	 * maybe below the dispatcher's paging watermark. */
	if (!fresh && !was_enabled && e->enabled && s->dispatch != NULL)
		dispatch_rescan(s->dispatch);
}

void epsync_deleted(const struct epsync *s, const char *id)
{
	epcache_remove(s->cache, id);
	queue_depth_endpoint_deleted(s->queue, id);
	metrics_ep_forget(s->metrics, id);
	dispatch_endpoint_deleted(s->dispatch, id);
}
