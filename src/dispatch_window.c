/* dispatch_window: the dispatcher's bounded window (see dispatch_window.h). */
#include "dispatch_window.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* One held row: a delivery is its (seq, id), since the store may give a
 * deleted row's seq to a new row (store.h). */
struct dwin_slot {
	int64_t seq;            /* the delivery's row number: the hash and the first compare */
	int count;              /* 0 = empty slot */
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

int dwin_hold(struct dwin *w, int64_t seq, const char *id)
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
	size_t n = strnlen(id, ID_MAX - 1);
	memcpy(w->slots[i].id, id, n);
	w->slots[i].id[n] = '\0';
	w->slot_n++;
	return 0;
}

void dwin_release(struct dwin *w, int64_t seq, const char *id)
{
	size_t mask = w->slot_cap - 1;
	size_t i = slot_find(w->slots, w->slot_cap, seq, id);
	if (w->slots[i].count == 0)
		return;
	if (--w->slots[i].count > 0)
		return;
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

/* ---- window rules ---- */

int dwin_init(struct dwin *w, size_t window)
{
	memset(w, 0, sizeof *w);
	w->window = window > 0 ? window : 1;
	/* Room for the window, its slack, and results awaiting a commit. */
	size_t want = 2 * (w->window + w->window / 4 + 64);
	size_t cap = 64;
	while (cap < want)
		cap *= 2;
	w->slots = calloc(cap, sizeof *w->slots);
	if (w->slots == NULL)
		return -1;
	w->slot_cap = cap;
	dwin_rescan(w);
	return 0;
}

void dwin_free(struct dwin *w)
{
	free(w->heap);
	free(w->slots);
	memset(w, 0, sizeof *w);
}

bool dwin_covered(const struct dwin *w, int64_t at, const char *id)
{
	if (!w->overflow)
		return true;
	return dwin_key_cmp(at, id, w->w_at, w->w_id) <= 0;
}

/* Holds p and puts it in the heap; on failure nothing changes. */
static int hold_and_push(struct dwin *w, const struct pending *p)
{
	if (dwin_hold(w, p->seq, p->id) != 0)
		return -1;
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
	if (!dwin_covered(w, p->next_attempt_at, p->id))
		return DWIN_ABOVE;
	if (hold_and_push(w, p) != 0)
		return DWIN_NOMEM;
	return DWIN_INSERTED;
}

bool dwin_reschedule(struct dwin *w, const struct pending *p)
{
	if (dwin_covered(w, p->next_attempt_at, p->id) || w->page_outstanding) {
		if (dwin_push(w, p) == 0)
			return true;
		/* Out of memory: the row is in the store; make sure a page
		 * finds it again. */
		dwin_rescan(w);
	}
	dwin_release(w, p->seq, p->id);
	return false;
}

bool dwin_want_page(const struct dwin *w, size_t *limit)
{
	if (!w->overflow || w->page_outstanding)
		return false;
	const struct pending *min = dwin_peek(w);
	bool want = w->n < w->window / 2 || min == NULL ||
		    dwin_key_cmp(min->next_attempt_at, min->id, w->w_at, w->w_id) > 0;
	if (!want)
		return false;
	/* A floor so a nearly full heap still pages in useful amounts, but
	 * small enough that a tiny window is not overfilled and evicted. */
	size_t floor = w->window / 4 + 1;
	if (floor > DWIN_PAGE_MIN)
		floor = DWIN_PAGE_MIN;
	size_t l = w->window > w->n ? w->window - w->n : 0;
	*limit = l > floor ? l : floor;
	return true;
}

unsigned dwin_page_begin(struct dwin *w, size_t limit, int64_t *after_at, char after_id[ID_MAX])
{
	w->page_outstanding = true;
	w->page_limit = limit;
	*after_at = w->w_at;
	memcpy(after_id, w->w_id, ID_MAX);
	return w->page_gen;
}

size_t dwin_page_done(struct dwin *w, unsigned gen, const struct pending *items, size_t n)
{
	w->page_outstanding = false;
	if (gen != w->page_gen)
		return 0;
	size_t inserted = 0;
	for (size_t i = 0; i < n; i++) {
		if (dwin_held(w, items[i].seq, items[i].id))
			continue;
		if (hold_and_push(w, &items[i]) != 0) {
			/* W must not move past rows we failed to keep. */
			dwin_rescan(w);
			return inserted;
		}
		inserted++;
	}
	if (n > 0) {
		w->w_at = items[n - 1].next_attempt_at;
		memcpy(w->w_id, items[n - 1].id, ID_MAX);
		w->w_id[ID_MAX - 1] = '\0';
	}
	if (n < w->page_limit)
		w->overflow = false;
	return inserted;
}

void dwin_page_failed(struct dwin *w, unsigned gen)
{
	(void)gen;
	w->page_outstanding = false;
}

static int pending_qsort_cmp(const void *a, const void *b)
{
	return pending_cmp(a, b);
}

size_t dwin_evict(struct dwin *w)
{
	size_t slack = w->window / 4;
	if (w->n <= w->window + slack || w->page_outstanding)
		return 0;
	size_t keep = w->window * 3 / 4;
	if (keep == 0)
		keep = 1;
	/* A sorted array is a valid min-heap, so no rebuild is needed. */
	qsort(w->heap, w->n, sizeof *w->heap, pending_qsort_cmp);
	for (size_t i = keep; i < w->n; i++)
		dwin_release(w, w->heap[i].seq, w->heap[i].id);
	size_t evicted = w->n - keep;
	w->n = keep;
	const struct pending *last = &w->heap[keep - 1];
	if (!w->overflow ||
	    dwin_key_cmp(last->next_attempt_at, last->id, w->w_at, w->w_id) < 0) {
		w->w_at = last->next_attempt_at;
		memcpy(w->w_id, last->id, ID_MAX);
	}
	w->overflow = true;
	return evicted;
}

void dwin_rescan(struct dwin *w)
{
	w->overflow = true;
	w->w_at = INT64_MIN;
	w->w_id[0] = '\0';
	w->page_gen++;
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
