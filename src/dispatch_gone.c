/* dispatch_gone: frees the dispatcher's per-endpoint state (dispatch_ep.h)
 * of deleted endpoints, so that the table holds only endpoints that exist
 * (docs/architecture.md#threads-and-what-each-owns).
 *
 * The dispatcher learns of a delete two ways: the API's delete op posts
 * MSG_EP_DELETED from its done() (dispatch_endpoint_deleted), and pick finds
 * the endpoint missing from the cache when it comes to queued work (which
 * also catches a state made again for a delivery of the endpoint left in the
 * window). Either way the state joins the gone list; it is freed once
 * nothing points at it: a request in flight carries it (its sched), its ready
 * queue and waiting batches hold deliveries, and the run ring and the
 * sleepers list it. The sleepers are left at once; the ready queue and the
 * batches are dropped by the next pick; requests in flight come back. */
#include "dispatch_internal.h"

void dispatch_ep_gone(struct dispatch *d, struct dispatch_ep *e)
{
	if (!e->gone) {
		e->gone = true;
		e->next_gone = d->gone;
		d->gone = e;
	}
	if (!e->sleeping)
		return;
	for (size_t i = 0; i < d->n_sleepers; i++) {
		if (d->sleepers[i] == e) {
			d->sleepers[i] = d->sleepers[--d->n_sleepers];
			break;
		}
	}
	e->sleeping = false;
	/* With work left, pick drops it (its endpoint is not in the cache). */
	dispatch_run_add(d, e);
}

void dispatch_reap_gone(struct dispatch *d)
{
	struct dispatch_ep **pp = &d->gone;
	while (*pp != NULL) {
		struct dispatch_ep *e = *pp;
		if (!dispatch_ep_idle(e)) {
			pp = &e->next_gone;
			continue;
		}
		*pp = e->next_gone;
		dispatch_eps_remove(&d->eps, e);
	}
}
