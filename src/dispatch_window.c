/* dispatch_window: the dispatcher's bounded window (see dispatch_window.h). */
#include "dispatch_window.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* One held row: a delivery is its (seq, id), since the store may give a
 * deleted row's seq to a new row (store.h). */
struct dwin_slot {
	int64_t seq;            /* the delivery's row number: the hash and the first compare */
	int count;              /* 0 = empty slot */
	struct dwin_ep *ep;     /* its endpoint, counted in ep->held (NULL: not counted) */
	char id[ID_MAX];
};

int dwin_key_cmp(int64_t a_at, const char *a_id, int64_t b_at, const char *b_id)
{
	if (a_at != b_at)
		return a_at < b_at ? -1 : 1;
	/* strcmp orders like SQLite's BINARY collation for these ASCII ids. */
	return strcmp(a_id, b_id);
}

static int pending_cmp(const struct pending *a, const struct pending *b)
{
	return dwin_key_cmp(a->next_attempt_at, a->id, b->next_attempt_at, b->id);
}

static void ep_row_gone(struct dwin *w, struct dwin_ep *e);

/* ---- the held rows ---- */

/* Fibonacci hashing: rows come in runs of consecutive seq, which this
 * spreads over the table. */
static size_t seq_hash(int64_t seq, size_t mask)
{
	return (size_t)(((uint64_t)seq * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

static bool slot_is(const struct dwin_slot *s, int64_t seq, const char *id)
{
	return s->seq == seq && strcmp(s->id, id) == 0;
}

/* Index of (seq, id)'s slot, or of the empty slot where it would go. */
static size_t slot_find(const struct dwin_slot *slots, size_t cap, int64_t seq, const char *id)
{
	size_t mask = cap - 1;
	size_t i = seq_hash(seq, mask);
	while (slots[i].count > 0 && !slot_is(&slots[i], seq, id))
		i = (i + 1) & mask;
	return i;
}

static int slots_grow(struct dwin *w)
{
	size_t cap = w->slot_cap * 2;
	struct dwin_slot *s = calloc(cap, sizeof *s);
	if (s == NULL)
		return -1;
	for (size_t i = 0; i < w->slot_cap; i++) {
		if (w->slots[i].count == 0)
			continue;
		s[slot_find(s, cap, w->slots[i].seq, w->slots[i].id)] = w->slots[i];
	}
	free(w->slots);
	w->slots = s;
	w->slot_cap = cap;
	return 0;
}

/* dwin_hold, a new row counted in its endpoint e (NULL: none). */
static int hold_row(struct dwin *w, int64_t seq, const char *id, struct dwin_ep *e)
{
	size_t i = slot_find(w->slots, w->slot_cap, seq, id);
	if (w->slots[i].count > 0) {
		w->slots[i].count++;
		return 0;
	}
	/* Keep the load at most 1/2 so probes stay short. */
	if ((w->slot_n + 1) * 2 > w->slot_cap) {
		if (slots_grow(w) != 0)
			return -1;
		i = slot_find(w->slots, w->slot_cap, seq, id);
	}
	w->slots[i].seq = seq;
	w->slots[i].count = 1;
	w->slots[i].ep = e;
	size_t n = strnlen(id, ID_MAX - 1);
	memcpy(w->slots[i].id, id, n);
	w->slots[i].id[n] = '\0';
	w->slot_n++;
	if (e != NULL)
		e->held++;
	return 0;
}

int dwin_hold(struct dwin *w, int64_t seq, const char *id)
{
	return hold_row(w, seq, id, NULL);
}

void dwin_release(struct dwin *w, int64_t seq, const char *id)
{
	size_t mask = w->slot_cap - 1;
	size_t i = slot_find(w->slots, w->slot_cap, seq, id);
	if (w->slots[i].count == 0)
		return;
	if (--w->slots[i].count > 0)
		return;
	struct dwin_ep *e = w->slots[i].ep;
	w->slot_n--;
	/* Backward-shift deletion: pull later members of the probe run into
	 * the hole so lookups never stop early at it. */
	size_t j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (w->slots[j].count == 0)
			break;
		size_t k = seq_hash(w->slots[j].seq, mask);
		bool movable = (j > i) ? (k <= i || k > j) : (k <= i && k > j);
		if (movable) {
			w->slots[i] = w->slots[j];
			w->slots[j].count = 0;
			i = j;
		}
	}
	w->slots[i].count = 0;
	if (e != NULL)
		ep_row_gone(w, e);
}

int dwin_hold_count(const struct dwin *w, int64_t seq, const char *id)
{
	return w->slots[slot_find(w->slots, w->slot_cap, seq, id)].count;
}

bool dwin_held(const struct dwin *w, int64_t seq, const char *id)
{
	return dwin_hold_count(w, seq, id) > 0;
}

/* ---- the heap ---- */

static void sift_up(struct pending *h, size_t i)
{
	struct pending tmp = h[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (pending_cmp(&h[parent], &tmp) <= 0)
			break;
		h[i] = h[parent];
		i = parent;
	}
	h[i] = tmp;
}

static void sift_down(struct pending *h, size_t n, size_t i)
{
	struct pending tmp = h[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && pending_cmp(&h[c + 1], &h[c]) < 0)
			c++;
		if (pending_cmp(&tmp, &h[c]) <= 0)
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = tmp;
}

int dwin_push(struct dwin *w, const struct pending *p)
{
	struct pending *heap = array_grow(w->heap, &w->cap, w->n + 1, sizeof *heap, 64);
	if (heap == NULL)
		return -1;
	w->heap = heap;
	w->heap[w->n] = *p;
	sift_up(w->heap, w->n);
	w->n++;
	return 0;
}

const struct pending *dwin_peek(const struct dwin *w)
{
	return w->n > 0 ? &w->heap[0] : NULL;
}

void dwin_pop(struct dwin *w, struct pending *out)
{
	if (w->n == 0)
		return;
	if (out != NULL)
		*out = w->heap[0];
	w->n--;
	if (w->n > 0) {
		w->heap[0] = w->heap[w->n];
		sift_down(w->heap, w->n, 0);
	}
}

/* ---- the per-endpoint cap ---- */

size_t dwin_ep_cap_start(size_t window)
{
	size_t cap = window / DWIN_EP_SHARE;
	if (cap < DWIN_EP_CAP_MIN)
		cap = DWIN_EP_CAP_MIN;
	return cap < window ? cap : window;
}

const struct dwin_ep *dwin_ep_find(const struct dwin *w, const char *endpoint_id)
{
	return idtable_find(&w->eps, endpoint_id);
}

size_t dwin_ep_cap(const struct dwin *w, const struct dwin_ep *e)
{
	size_t cap = e->cap > e->need ? e->cap : e->need;
	return cap < w->window ? cap : w->window;
}

static bool above_lim(const struct dwin_ep *e, int64_t at, const char *id)
{
	return e->more && dwin_key_cmp(at, id, e->lim_at, e->lim_id) > 0;
}

bool dwin_covered_row(const struct dwin *w, const struct pending *p)
{
	const struct dwin_ep *e = dwin_ep_find(w, p->endpoint_id);
	return e == NULL || !above_lim(e, p->next_attempt_at, p->id);
}

/* Frees e once nothing refers to it: no held row, nothing in the store
 * it must fetch back, no refill asked or wanted. */
static void ep_maybe_free(struct dwin *w, struct dwin_ep *e)
{
	if (e->held > 0 || e->more || e->wanted || e->refilling)
		return;
	idtable_remove(&w->eps, e->id);
	free(e);
}

/* Whether `more` endpoint e wants its rows back now: it has drained to
 * half its cap, or the window holds under half its free part (it may take
 * rows past its cap there, as an offer may: a lone busy endpoint is not held
 * to its small cap, with its in-flight requests and their results counted
 * in it, while the window is empty). */
static bool ep_wants_refill(const struct dwin *w, const struct dwin_ep *e)
{
	return e->more && (e->held <= dwin_ep_cap(w, e) / 2 || w->slot_n < w->free_rows / 2);
}

/* Puts e on the refill list if it wants its rows back. */
static void ep_check_refill(struct dwin *w, struct dwin_ep *e)
{
	if (e->wanted || e->refilling || !ep_wants_refill(w, e))
		return;
	struct dwin_ep **r = w->refills;
	if (w->n_refills == w->cap_refills) {
		size_t cap = w->cap_refills ? w->cap_refills * 2 : 16;
		r = malloc(cap * sizeof *r);
		if (r == NULL)
			return; /* asked again at its next release */
		for (size_t i = 0; i < w->n_refills; i++)
			r[i] = w->refills[(w->refills_head + i) % w->cap_refills];
		free(w->refills);
		w->refills = r;
		w->cap_refills = cap;
		w->refills_head = 0;
	}
	w->refills[(w->refills_head + w->n_refills) % w->cap_refills] = e;
	w->n_refills++;
	e->wanted = true;
}

/* A held row of e was forgotten. */
static void ep_row_gone(struct dwin *w, struct dwin_ep *e)
{
	e->held--;
	ep_check_refill(w, e);
	ep_maybe_free(w, e);
}

/* e's rows above (at, id) may be only in the store: e is `more`, its lim
 * at most that key. A refill out now may have read the store before those
 * rows were left there: its end must not move lim past the key (the cut). */
static void ep_lower_lim(struct dwin_ep *e, int64_t at, const char *id)
{
	if (!e->more || dwin_key_cmp(at, id, e->lim_at, e->lim_id) < 0) {
		e->lim_at = at;
		snprintf(e->lim_id, sizeof e->lim_id, "%s", id);
	}
	e->more = true;
	if (e->refilling && (!e->cut || dwin_key_cmp(at, id, e->cut_at, e->cut_id) < 0)) {
		e->cut = true;
		e->cut_at = at;
		snprintf(e->cut_id, sizeof e->cut_id, "%s", id);
	}
}

/* e's rows from a key at time `at` on stay in the store. (at - 1, "") is
 * below every id at `at`: a refill then reads the rows at `at` again,
 * skipping those held. */
static void ep_leave_from(struct dwin_ep *e, int64_t at)
{
	ep_lower_lim(e, at > INT64_MIN ? at - 1 : INT64_MIN, "");
}

/* The endpoint entry of p (made if missing). NULL when out of memory. */
static struct dwin_ep *ep_get(struct dwin *w, const char *endpoint_id)
{
	struct dwin_ep *e = idtable_find(&w->eps, endpoint_id);
	if (e != NULL)
		return e;
	e = calloc(1, sizeof *e);
	if (e == NULL)
		return NULL;
	snprintf(e->id, sizeof e->id, "%s", endpoint_id);
	e->cap = w->ep_cap;
	void *old;
	if (idtable_put(&w->eps, e, &old) != 0) {
		free(e);
		return NULL;
	}
	return e;
}

/* Whether p (not held) may be held under its endpoint's cap; *ep gets the
 * endpoint to count it in. A row above a `more` endpoint's lim, or past a
 * full cap, is left in the store for the endpoint's refill. Out of memory
 * for the entry: left in the store too, and a rescan finds it. */
static bool ep_admits(struct dwin *w, const struct pending *p, struct dwin_ep **ep)
{
	*ep = ep_get(w, p->endpoint_id);
	struct dwin_ep *e = *ep;
	if (e == NULL) {
		dwin_rescan(w);
		return false;
	}
	if (w->rescan || w->listing_outstanding) {
		/* Its older rows may be in the store and not in memory: taking
		 * this one would send it before them. It becomes `more` from the
		 * lowest key, as the listing would make it; its refills read
		 * them all in key order. */
		ep_lower_lim(e, INT64_MIN, "");
		ep_check_refill(w, e);
		return false;
	}
	if (above_lim(e, p->next_attempt_at, p->id))
		return false;
	if (e->held < dwin_ep_cap(w, e))
		return true;
	/* While the window is half free nobody is kept out by this row, and a
	 * lone busy endpoint is not held to its small cap with its requests
	 * in flight and their results counted in it (step b: a quarter still
	 * cost 10 % of its rate, docs/performance.md). Rows past their
	 * endpoints' caps stay under half the window, so the others' offers
	 * and refills always find room. */
	if (w->slot_n < w->free_rows)
		return true;
	ep_leave_from(e, p->next_attempt_at);
	return false;
}

void dwin_ep_need(struct dwin *w, const char *endpoint_id, size_t need)
{
	struct dwin_ep *e = idtable_find(&w->eps, endpoint_id);
	if (e == NULL)
		return;
	e->need = need;
	ep_check_refill(w, e);
}

bool dwin_refill_next(struct dwin *w, struct dwin_refill *r)
{
	while (w->n_refills > 0 && w->refills_out < DWIN_REFILLS_MAX && w->n < w->window) {
		struct dwin_ep *e = w->refills[w->refills_head];
		w->refills_head = (w->refills_head + 1) % w->cap_refills;
		w->n_refills--;
		e->wanted = false;
		size_t cap = dwin_ep_cap(w, e);
		if (!ep_wants_refill(w, e)) {
			ep_maybe_free(w, e);
			continue;
		}
		e->refilling = true;
		e->cut = false;
		/* Up to its cap, or the free part's room if that is more. */
		size_t to_cap = cap > e->held ? cap - e->held : 0;
		size_t to_free = w->free_rows > w->slot_n ? w->free_rows - w->slot_n : 0;
		e->refill_limit = to_cap > to_free ? to_cap : to_free;
		/* Many endpoints waiting share the room: each takes its part,
		 * not its whole cap, so their rows are spread over them as the
		 * store's key order would spread them (a thousand endpoints each
		 * refilled whole left most of them without a row ready). */
		size_t room = w->window - w->n;
		size_t part = room / (w->n_refills + 1);
		if (part < DWIN_REFILL_PART_MIN)
			part = DWIN_REFILL_PART_MIN;
		if (e->refill_limit > part)
			e->refill_limit = part;
		if (e->refill_limit > w->window - w->n)
			e->refill_limit = w->window - w->n; /* the rest when there is room */
		e->refill_held = e->held;
		w->refills_out++;
		memcpy(r->endpoint_id, e->id, ID_MAX);
		r->after_at = e->lim_at;
		memcpy(r->after_id, e->lim_id, ID_MAX);
		r->limit = e->refill_limit;
		return true;
	}
	return false;
}

static int hold_and_push(struct dwin *w, const struct pending *p, struct dwin_ep *e);

/* Takes the refill's items while e is under its cap; returns how many
 * were inserted, *last the index of the last item taken or already held
 * (-1: none), *nomem if an insert failed. */
static size_t refill_take(struct dwin *w, struct dwin_ep *e, const struct pending *items, size_t n,
			  long *last, bool *nomem)
{
	size_t inserted = 0;
	size_t cap = dwin_ep_cap(w, e);
	*last = -1;
	*nomem = false;
	for (size_t i = 0; i < n; i++) {
		if (!dwin_held(w, items[i].seq, items[i].id)) {
			if (e->held >= cap && w->slot_n >= w->free_rows)
				break; /* its cap, and no free part left */
			if (hold_and_push(w, &items[i], e) != 0) {
				*nomem = true;
				break;
			}
			inserted++;
		}
		*last = (long)i;
	}
	return inserted;
}

size_t dwin_refill_done(struct dwin *w, const char *endpoint_id, const struct pending *items,
			size_t n)
{
	struct dwin_ep *e = idtable_find(&w->eps, endpoint_id);
	if (e == NULL || !e->refilling)
		return 0;
	e->refilling = false;
	w->refills_out--;
	long last;
	bool nomem;
	size_t inserted = refill_take(w, e, items, n, &last, &nomem);
	if (nomem)
		dwin_rescan(w);
	/* lim moves to the last row taken (all of them: the store had no
	 * more), but not past the cut: rows were left to the store meanwhile
	 * that the refill may not have seen. A cut below where the refill
	 * began has put lim there already. */
	bool all = last + 1 == (long)n && n < e->refill_limit;
	if (!nomem) {
		const int64_t *to_at = NULL;
		const char *to_id = NULL;
		if (last >= 0) {
			to_at = &items[last].next_attempt_at;
			to_id = items[last].id;
		}
		if (e->cut && (all || (to_at != NULL && dwin_key_cmp(*to_at, to_id, e->cut_at,
								       e->cut_id) > 0))) {
			to_at = &e->cut_at;
			to_id = e->cut_id;
		}
		if (to_at != NULL && dwin_key_cmp(*to_at, to_id, e->lim_at, e->lim_id) > 0) {
			e->lim_at = *to_at;
			snprintf(e->lim_id, sizeof e->lim_id, "%s", to_id);
		}
		if (all && !e->cut)
			e->more = false; /* every row of it in the store is held now */
	}
	e->cut = false;
	/* It sent an eighth of its cap or more while the refill was out: the
	 * round trip holds it back, so it may hold more. A cap settles near
	 * eight round trips' worth of what the endpoint sends. */
	size_t before = e->held - inserted;
	if (e->refill_held > before && e->refill_held - before >= dwin_ep_cap(w, e) / 8 &&
	    e->cap < w->window)
		e->cap = e->cap * 2 < w->window ? e->cap * 2 : w->window;
	ep_check_refill(w, e);
	ep_maybe_free(w, e);
	return inserted;
}

void dwin_refill_failed(struct dwin *w, const char *endpoint_id)
{
	struct dwin_ep *e = idtable_find(&w->eps, endpoint_id);
	if (e == NULL || !e->refilling)
		return;
	e->refilling = false;
	w->refills_out--;
	ep_check_refill(w, e);
}

static void eps_free(struct dwin *w)
{
	size_t pos = 0;
	struct dwin_ep *e;
	while ((e = idtable_next(&w->eps, &pos)) != NULL)
		free(e);
	idtable_free(&w->eps);
	free(w->refills);
}

/* ---- window rules ---- */

int dwin_init(struct dwin *w, size_t window, size_t ep_cap)
{
	memset(w, 0, sizeof *w);
	w->window = window > 0 ? window : 1;
	if (ep_cap < 1)
		ep_cap = 1;
	w->ep_cap = ep_cap < w->window ? ep_cap : w->window;
	w->free_rows = w->window / DWIN_FREE_SHARE;
	if (idtable_init(&w->eps, offsetof(struct dwin_ep, id), 0, 64) != 0)
		return -1;
	/* Room for the window, its slack, and results awaiting a commit. */
	size_t want = 2 * (w->window + w->window / 4 + 64);
	size_t cap = 64;
	while (cap < want)
		cap *= 2;
	w->slots = calloc(cap, sizeof *w->slots);
	if (w->slots == NULL) {
		idtable_free(&w->eps);
		return -1;
	}
	w->slot_cap = cap;
	dwin_rescan(w);
	return 0;
}

void dwin_free(struct dwin *w)
{
	eps_free(w);
	free(w->heap);
	free(w->slots);
	memset(w, 0, sizeof *w);
}

/* Holds p (counted in its endpoint e, NULL: none) and puts it in the heap;
 * on failure nothing changes. */
static int hold_and_push(struct dwin *w, const struct pending *p, struct dwin_ep *e)
{
	if (hold_row(w, p->seq, p->id, e) != 0) {
		if (e != NULL)
			ep_maybe_free(w, e);
		return -1;
	}
	if (dwin_push(w, p) != 0) {
		dwin_release(w, p->seq, p->id);
		return -1;
	}
	return 0;
}

enum dwin_offer dwin_offer(struct dwin *w, const struct pending *p)
{
	if (dwin_held(w, p->seq, p->id))
		return DWIN_DUPLICATE;
	struct dwin_ep *e;
	if (!ep_admits(w, p, &e))
		return DWIN_CAPPED;
	if (hold_and_push(w, p, e) != 0)
		return DWIN_NOMEM;
	return DWIN_INSERTED;
}

bool dwin_reschedule(struct dwin *w, const struct pending *p)
{
	/* A refill of its endpoint may have read the old row. */
	const struct dwin_ep *e = dwin_ep_find(w, p->endpoint_id);
	if (dwin_covered_row(w, p) || (e != NULL && e->refilling)) {
		if (dwin_push(w, p) == 0)
			return true;
		/* Out of memory: the row is in the store; make sure a refill
		 * finds it again. */
		dwin_rescan(w);
	}
	dwin_release(w, p->seq, p->id);
	return false;
}

bool dwin_want_listing(const struct dwin *w)
{
	return w->rescan && !w->listing_outstanding;
}

void dwin_listing_begin(struct dwin *w)
{
	w->listing_outstanding = true;
	/* What is released from now on the listing may not see: the next
	 * rescan asks again. */
	w->rescan = false;
}

int dwin_listing_done(struct dwin *w, const char (*ids)[ID_MAX], size_t n)
{
	w->listing_outstanding = false;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		struct dwin_ep *e = ep_get(w, ids[i]);
		if (e == NULL) {
			rc = -1;
			continue;
		}
		/* Below every key: a refill reads all its pending rows,
		 * skipping the held ones. */
		ep_lower_lim(e, INT64_MIN, "");
		ep_check_refill(w, e);
		ep_maybe_free(w, e);
	}
	if (rc != 0)
		w->rescan = true;
	return rc;
}

void dwin_listing_failed(struct dwin *w)
{
	w->listing_outstanding = false;
	w->rescan = true;
}

static int pending_qsort_cmp(const void *a, const void *b)
{
	return pending_cmp(a, b);
}

size_t dwin_evict(struct dwin *w)
{
	size_t slack = w->window / 4;
	if (w->n <= w->window + slack)
		return 0;
	size_t keep = w->window * 3 / 4;
	if (keep == 0)
		keep = 1;
	/* A sorted array is a valid min-heap, so no rebuild is needed. */
	qsort(w->heap, w->n, sizeof *w->heap, pending_qsort_cmp);
	for (size_t i = keep; i < w->n; i++) {
		const struct pending *p = &w->heap[i];
		struct dwin_ep *e = idtable_find(&w->eps, p->endpoint_id);
		if (e != NULL)
			ep_leave_from(e, p->next_attempt_at); /* before its entry may go */
		else
			dwin_rescan(w); /* held uncounted: nothing records it left */
		dwin_release(w, p->seq, p->id);
	}
	size_t evicted = w->n - keep;
	w->n = keep;
	return evicted;
}

void dwin_rescan(struct dwin *w)
{
	w->rescan = true;
}

size_t dwin_drop_if(struct dwin *w, bool (*drop)(const struct pending *p, void *arg), void *arg)
{
	size_t kept = 0, dropped = 0;
	for (size_t i = 0; i < w->n; i++) {
		if (drop(&w->heap[i], arg)) {
			dwin_release(w, w->heap[i].seq, w->heap[i].id);
			dropped++;
		} else {
			w->heap[kept++] = w->heap[i];
		}
	}
	w->n = kept;
	if (dropped > 0) /* a sorted array is a valid min-heap */
		qsort(w->heap, w->n, sizeof *w->heap, pending_qsort_cmp);
	return dropped;
}
