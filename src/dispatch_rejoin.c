/* dispatch_rejoin: a failed batch carries on after its members left memory
 * (docs/api.md#batches). While a failed batch waits for its retry, the
 * dispatcher keeps it on its endpoint (struct dbatch); after a restart, a
 * kill -9, a move of ownership to another node or anything that dropped
 * it, its rows come back through the window one by one, each marked as
 * waiting for its batch (struct pending's batch_wait). When the first of
 * them is due, the batch is rebuilt from the store: the same batch_id and
 * every member still waiting, and goes out as that batch's retry. */
#include "dispatch.h"

#include <stdlib.h>
#include <string.h>

#include "dispatch_ep.h"
#include "dispatch_window.h"
#include "log.h"
#include "dispatch_internal.h"

static bool same_row(const struct pending *a, const struct pending *b)
{
	return a->seq == b->seq && strcmp(a->id, b->id) == 0;
}

/* An empty batch for n members with id and due time; NULL if out of memory. */
static struct dbatch *batch_new(const char *id, int64_t due_at, size_t n)
{
	struct dbatch *b = calloc(1, sizeof *b);
	if (b == NULL || (b->m = malloc(n * sizeof *b->m)) == NULL ||
	    (b->quiet = calloc(n, 1)) == NULL ||
	    (b->created_at = calloc(n, sizeof *b->created_at)) == NULL) {
		dispatch_batch_free(b);
		return NULL;
	}
	memcpy(b->id, id, ID_MAX);
	b->due_at = due_at;
	return b;
}

/* The members held already (want[i]) that wait in the window's heap: all
 * are due at `at`, as p was, so they are among the heap's entries at `at`,
 * which are taken out; those found join (got[i], their hold with them), the
 * others go back. A member held elsewhere (in flight, its result not yet
 * committed) is not found and stays out of the batch. */
static void take_from_heap(struct dispatch *d, const struct pending *m, size_t n,
			   const bool *want, bool *got, struct pending *slot, int64_t at)
{
	struct pending *back = NULL;
	size_t nb = 0, cap = 0;
	const struct pending *top;
	while ((top = dwin_peek(&d->win)) != NULL && top->next_attempt_at == at) {
		struct pending x;
		dwin_pop(&d->win, &x);
		size_t i = 0;
		while (i < n && !(want[i] && !got[i] && same_row(&m[i], &x)))
			i++;
		if (i < n) {
			got[i] = true;
			slot[i] = x;
			continue;
		}
		if (nb == cap) {
			size_t c = cap ? cap * 2 : 16;
			struct pending *nbk = realloc(back, c * sizeof *back);
			if (nbk == NULL) {
				/* Out of memory: x back, the rest stay where they are. */
				if (dwin_push(&d->win, &x) != 0) {
					dwin_release(&d->win, x.seq, x.id);
					dwin_rescan(&d->win);
				}
				break;
			}
			back = nbk;
			cap = c;
		}
		back[nb++] = x;
	}
	for (size_t j = 0; j < nb; j++)
		if (dwin_push(&d->win, &back[j]) != 0) {
			dwin_release(&d->win, back[j].seq, back[j].id);
			dwin_rescan(&d->win);
		}
	free(back);
}

/* Fills b with p and the other members m[0..n) it can have, in m's order:
 * p's hold goes with p, a member not held is held now, a held one joins if
 * it is found in the heap (take_from_heap). */
static void gather(struct dispatch *d, struct dbatch *b, const struct pending *p,
		   const struct pending *m, size_t n, bool *want, bool *got)
{
	for (size_t i = 0; i < n; i++) {
		if (same_row(&m[i], p)) {
			b->m[i] = *p;
			got[i] = true;
		} else if (dwin_held(&d->win, m[i].seq, m[i].id)) {
			want[i] = true;
		} else if (dwin_hold(&d->win, m[i].seq, m[i].id) == 0) {
			b->m[i] = m[i];
			got[i] = true;
		}
	}
	take_from_heap(d, m, n, want, got, b->m, p->next_attempt_at);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (got[i])
			b->m[k++] = b->m[i];
	b->n = k;
}

/* Whether e's endpoint sends batches now. */
static bool batched(struct dispatch *d, const struct dispatch_ep *e)
{
	struct ep_entry *ep = epcache_get(d->cache, e->id);
	bool yes = ep != NULL && ep->batch_max_events > 0;
	ep_entry_release(ep);
	return yes;
}

bool dispatch_batch_rejoin(struct dispatch *d, struct dispatch_ep *e, const struct pending *p)
{
	if (!p->batch_wait || !batched(d, e))
		return false;
	char id[ID_MAX];
	struct pending *m = NULL;
	size_t n = 0;
	if (store_batch_members(d->st, p->seq, p->id, p->next_attempt_at, id, &m, &n) != STORE_OK) {
		/* Goes on alone, in a new batch. */
		store_note_read(d->st, d->cfg.health);
		log_warn("dispatch: cannot read the batch of id=%s endpoint=%s", p->id, e->id);
		return false;
	}
	size_t at_p = 0;
	while (at_p < n && !same_row(&m[at_p], p))
		at_p++;
	if (at_p == n) { /* its row no longer waits */
		free(m);
		return false;
	}
	struct dbatch *b = batch_new(id, p->next_attempt_at, n);
	bool *flags = b != NULL ? calloc(2 * n, sizeof *flags) : NULL;
	if (flags == NULL) {
		log_error("dispatch: out of memory rebuilding batch=%s", id);
		dispatch_batch_free(b);
		free(m);
		return false;
	}
	gather(d, b, p, m, n, flags, flags + n);
	free(flags);
	free(m);
	b->next = e->retry;
	e->retry = b;
	d->ready_total += b->n;
	dispatch_run_add(d, e);
	log_info("batch rejoined id=%s endpoint=%s size=%zu", b->id, e->id, b->n);
	return true;
}
