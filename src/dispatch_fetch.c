/* dispatch_fetch: deliveries another node made pending, heard of by the
 * listener (listen.c), read and offered to the window
 * (docs/architecture.md#several-nodes-notifications).
 *
 * dispatch_fetch leaves the seqs in the inbox; the dispatcher gathers them
 * and submits at most one fetch op per loop turn. The fetch is an early op
 * of the commit thread (commit.h): it reads, in one statement outside any
 * transaction, after every group already done and before the next, and its
 * done() reaches the inbox at that place in the order: before the
 * MSG_RECORD and MSG_PAGE of this node's ops still queued when it ran. A
 * row it finds pending is either not held here (offered, as a MSG_ENQUEUE
 * row is: not covered by the watermark → dropped, a later page reads it)
 * or held (in the heap, in flight, or its result still queued: ignored;
 * the record's MSG_RECORD, which comes after, settles it). So going ahead
 * of queued records and pages is the same as having been submitted before
 * them, and it reads only committed rows: it never waits for the next
 * group's writes and COMMIT (docs/performance.md, phase w). */
#include <stdlib.h>
#include <string.h>

#include "hops.h"
#include "log.h"
#include "dispatch_internal.h"

/* Seqs gathered for one fetch, at most; past it the window rescans. */
#define FETCH_MAX 10000

struct fetch_req_msg {
	struct msg m;
	int64_t put_us; /* mono_us (hops.h) */
	size_t n;
	int64_t seqs[];
};

void dispatch_fetch(struct dispatch *d, const int64_t *seqs, size_t n)
{
	if (d == NULL || n == 0)
		return;
	struct fetch_req_msg *f = n <= FETCH_MAX ? malloc(sizeof *f + n * sizeof *seqs) : NULL;
	if (f == NULL) {
		dispatch_rescan(d); /* too many, or out of memory: page them in */
		return;
	}
	f->m.kind = MSG_FETCH_REQ;
	f->put_us = mono_us();
	f->n = n;
	memcpy(f->seqs, seqs, n * sizeof *seqs);
	dispatch_inbox_put(&d->inbox, &f->m, false);
}

void dispatch_fetch_gather(struct dispatch *d, struct msg *m)
{
	struct fetch_req_msg *f = CONTAINER_OF(m, struct fetch_req_msg, m);
	hops_since(HOP_LISTEN_TO_DISPATCH, f->put_us);
	if (d->stopping || d->fetch_rescan) {
		free(f);
		return;
	}
	size_t need = d->n_fetch + f->n;
	int64_t *s = need <= FETCH_MAX ? array_grow(d->fetch_seqs, &d->cap_fetch, need,
						       sizeof *s, 256)
				       : NULL;
	if (s == NULL) {
		d->fetch_rescan = true; /* dispatch_fetch_submit rescans instead */
	} else {
		d->fetch_seqs = s;
		memcpy(s + d->n_fetch, f->seqs, f->n * sizeof *s);
		d->n_fetch = need;
	}
	free(f);
}

/* Frees what a fetch read. */
static void fetch_free_rows(struct fetch_op *f)
{
	for (size_t i = 0; f->events != NULL && i < f->n; i++)
		event_clear(&f->events[i]);
	free(f->events);
	free(f->items);
	f->events = NULL;
	f->items = NULL;
	f->n = 0;
}

static int fetch_apply(struct store *st, struct commit_op *op)
{
	struct fetch_op *f = CONTAINER_OF(op, struct fetch_op, op);
	fetch_free_rows(f); /* from a try rolled back with its group */
	f->rc = store_pending_by_seq(st, f->seqs, f->n_seqs, &f->items, &f->events, &f->n);
	return f->rc;
}

/* The events the fetch carried go to the event cache, as an ingest's own
 * do (dispatch_enqueue_events): the rows are sent without reading them
 * back. */
static void cache_events(struct dispatch *d, const struct fetch_op *f)
{
	for (size_t i = 0; f->events != NULL && i < f->n; i++) {
		if (f->events[i].data == NULL)
			continue; /* not carried: read when sent */
		struct evcache_entry *e = evcache_entry_new(&f->events[i]);
		if (e != NULL)
			evcache_put(&d->events, e);
	}
}

static void fetch_done(struct commit_op *op, int rc)
{
	struct fetch_op *f = CONTAINER_OF(op, struct fetch_op, op);
	if (rc != STORE_OK)
		f->rc = rc;
	f->done_us = mono_us();
	dispatch_inbox_put(&f->d->inbox, &f->m, true);
}

void dispatch_fetch_submit(struct dispatch *d)
{
	if (d->fetch_rescan) {
		d->fetch_rescan = false;
		d->n_fetch = 0;
		dwin_rescan(&d->win);
		return;
	}
	if (d->n_fetch == 0 || d->stopping)
		return;
	struct fetch_op *f = calloc(1, sizeof *f);
	if (f == NULL) {
		d->n_fetch = 0;
		dwin_rescan(&d->win);
		return;
	}
	f->m.kind = MSG_FETCH;
	f->d = d;
	f->seqs = d->fetch_seqs;
	f->n_seqs = d->n_fetch;
	d->fetch_seqs = NULL;
	d->n_fetch = d->cap_fetch = 0;
	f->op.apply = fetch_apply;
	f->op.done = fetch_done;
	f->op.rerun_ok = true; /* it only reads */
	/* One statement, read outside the next group: why it may go ahead of
	 * this node's queued records and pages is in dispatch_fetch_submit's
	 * comment. */
	f->op.early = true;
	f->op.hop = HOP_FETCH_QUEUE;
	dispatch_submit(d, &f->op);
}

void dispatch_fetch_done(struct dispatch *d, struct msg *m)
{
	struct fetch_op *f = CONTAINER_OF(m, struct fetch_op, m);
	hops_since(HOP_FETCH_BACK, f->done_us);
	if (f->rc != STORE_OK) {
		/* They are in the store: a page finds them. */
		log_warn("dispatch: reading notified deliveries failed rc=%d n=%zu", f->rc,
			 f->n_seqs);
		dwin_rescan(&d->win);
	} else if (!d->stopping) {
		cache_events(d, f);
		dispatch_offer_all(d, f->items, f->n);
	}
	fetch_free_rows(f);
	free(f->seqs);
	free(f);
}
