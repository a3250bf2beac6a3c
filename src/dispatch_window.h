/* dispatch_window: the dispatcher's bounded in-memory window of pending
 * deliveries (docs/architecture.md#the-window-and-paging), as plain data
 * structures and pure rules so they can be tested without threads, curl or a
 * store. Used by one thread only.
 *
 * - A min-heap of struct pending keyed by (next_attempt_at, id).
 * - Holds: a counted set of delivery rows that hookd must not load again from
 *   the store. A row is held while it is in the heap or in flight (one hold)
 *   and while an attempt result for it is waiting to be committed (one hold
 *   per result), because until then the store still shows the old state.
 * - Every endpoint pages itself. An endpoint holds at most its cap of rows,
 *   so a backlog of a few slow or dead endpoints cannot fill the window; rows
 *   past it stay in the store. Such an endpoint is `more`, with a watermark
 *   `lim`: the invariant is that every pending delivery of an enabled
 *   endpoint is held, unless its endpoint is `more` and the key is above the
 *   endpoint's lim. A `more` endpoint gets its rows above lim back by a
 *   refill (store_pending_page_endpoint) once it holds half its cap or less.
 *   An endpoint with no entry holds nothing and has nothing in the store
 *   that the window lacks.
 * - A rescan (the window may lack rows of any endpoint: at the start, after a
 *   failed write, a gained endpoint…) asks the store which endpoints have
 *   pending rows (the listing) and makes each `more` from the lowest key, so
 *   refills read them all back, skipping those held.
 * - The window as a whole: refills fill the heap up to `window` rows; a heap
 *   grown past it by new deliveries is trimmed by dwin_evict, whose evicted
 *   rows become their endpoints' `more` again.
 *
 * Correct paging relies on the commit thread calling done() in submission
 * order, so a refill's result and the enqueue/record messages reach the
 * dispatcher in the order their writes happened. */
#ifndef HOOKD_DISPATCH_WINDOW_H
#define HOOKD_DISPATCH_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "idtable.h"
#include "pending.h"

/* The per-endpoint cap an endpoint starts with: the window over
 * DWIN_EP_SHARE, at least DWIN_EP_CAP_MIN (dwin_ep_cap_start). An
 * endpoint that sent an eighth of its cap or more while its refill was
 * out doubles it (up to the window): a fast endpoint is not held back by
 * the round trip of its refills; a slow one keeps the start. At most
 * DWIN_REFILLS_MAX refills are outstanding at once (a rescan of many
 * endpoints goes through them that many at a time). */
#define DWIN_EP_SHARE 64
#define DWIN_EP_CAP_MIN 32
/* An offer past its endpoint's cap is taken all the same while the window
 * holds fewer rows than its DWIN_FREE_SHARE-th part (free_rows, the free
 * part); a `more` endpoint may refill into it while the window holds under
 * half of it. */
#define DWIN_FREE_SHARE 2
#define DWIN_REFILLS_MAX 16
/* A refill takes at most the room left over the endpoints waiting for
 * one, but never fewer than this many rows. */
#define DWIN_REFILL_PART_MIN 16

struct dwin_slot;
struct dwin_ep;

struct dwin {
	struct pending *heap;
	size_t n, cap;
	size_t window;              /* target number of deliveries in the heap */

	struct dwin_slot *slots;    /* open addressing, linear probing */
	size_t slot_cap;            /* power of two */
	size_t slot_n;              /* distinct rows held */

	bool rescan;                /* a listing is wanted (dwin_want_listing) */
	bool listing_outstanding;

	size_t ep_cap;              /* an endpoint's cap when it starts */
	size_t free_rows;           /* window / DWIN_FREE_SHARE (dwin_init) */
	struct idtable eps;         /* struct dwin_ep by id: those holding rows or `more` */
	struct dwin_ep **refills;   /* endpoints wanting a refill, oldest first */
	size_t refills_head, n_refills, cap_refills;
	size_t refills_out;         /* refills outstanding */
};

/* One endpoint's part of the window. */
struct dwin_ep {
	char id[ID_MAX];
	size_t held;                /* distinct rows of it held (in flight too) */
	size_t cap;                 /* its cap (doubles, see DWIN_EP_SHARE) */
	size_t need;                /* the dispatcher's floor (dwin_ep_need) */
	bool more;                  /* rows above lim may be only in the store */
	int64_t lim_at;
	char lim_id[ID_MAX];
	bool wanted;                /* on the refill list */
	bool refilling;             /* a refill is outstanding */
	size_t refill_limit;
	size_t refill_held;         /* held when the refill began */
	/* The lowest key from which rows were left to the store while the
	 * refill was out (a cap reached, an eviction): the refill may have
	 * read the store before them, so its lim stops there. */
	bool cut;
	int64_t cut_at;
	char cut_id[ID_MAX];
};

/* Compares keys (at, id): <0, 0, >0 like strcmp. */
int dwin_key_cmp(int64_t a_at, const char *a_id, int64_t b_at, const char *b_id);

/* Initialises an empty window for `window` deliveries (at least 1), each
 * endpoint starting at a cap of `ep_cap` rows (clamped to 1..window), with
 * a rescan wanted, so the first thing it asks for is the listing. Returns 0
 * or -1 (out of memory). */
int dwin_init(struct dwin *w, size_t window, size_t ep_cap);
void dwin_free(struct dwin *w);

/* Holds, by the delivery's row: its (seq, id), struct pending's. The store
 * may give a deleted row's seq to a new row (store.h), and a deleted
 * delivery can still be held (in flight, its result not yet committed, in
 * the heap), so seq alone would take the new row for the old one and drop
 * it. seq is the hash (an integer hashes for a fraction of what an id
 * costs); the id is compared only when seq matches. dwin_hold adds one hold
 * on the row; returns 0 or -1 (out of memory, no change). dwin_release
 * drops one; the row is forgotten at zero. */
int dwin_hold(struct dwin *w, int64_t seq, const char *id);
void dwin_release(struct dwin *w, int64_t seq, const char *id);
bool dwin_held(const struct dwin *w, int64_t seq, const char *id);
/* Number of holds on the row (0 if not held). */
int dwin_hold_count(const struct dwin *w, int64_t seq, const char *id);

/* Heap. push copies p (no hold change); returns 0 or -1 (out of memory).
 * peek returns the smallest key or NULL; pop removes it into *out. */
int dwin_push(struct dwin *w, const struct pending *p);
const struct pending *dwin_peek(const struct dwin *w);
void dwin_pop(struct dwin *w, struct pending *out);

enum dwin_offer {
	DWIN_INSERTED,        /* held and in the heap */
	DWIN_DUPLICATE,       /* already held: dropped */
	DWIN_NOMEM,           /* dropped; the caller should rescan */
	DWIN_CAPPED,          /* its endpoint is at its cap: dropped, a refill loads it */
};

/* A newly committed pending delivery (dispatch_enqueue): inserted if it is
 * not held and its endpoint is under its cap and not `more` with the key
 * above its lim (DWIN_CAPPED: a refill loads it). During a rescan (a listing
 * wanted or out) nothing is inserted: the endpoint becomes `more` from the
 * lowest key, so its rows reach memory in key order. */
enum dwin_offer dwin_offer(struct dwin *w, const struct pending *p);

/* A held delivery in flight failed and is pending again with p's new key.
 * Keeps it (heap, hold unchanged) if it must be in memory
 * (dwin_covered_row) or a refill of its endpoint is outstanding (that may
 * have read the old row); otherwise releases its in-memory hold: a later
 * refill reads the new row. Returns true if kept. */
bool dwin_reschedule(struct dwin *w, const struct pending *p);

/* Whether to ask the store now which endpoints have pending rows: a rescan
 * is wanted and no listing is outstanding. */
bool dwin_want_listing(const struct dwin *w);
/* Marks the listing as outstanding. */
void dwin_listing_begin(struct dwin *w);
/* The listing came back: ids[0..n) have pending rows in the store. Each
 * becomes `more` from the lowest key (its refills read every pending row
 * of it, skipping those held). Returns 0, or -1 when out of memory (a
 * rescan is wanted again). */
int dwin_listing_done(struct dwin *w, const char (*ids)[ID_MAX], size_t n);
/* The listing failed: the rescan is still wanted. */
void dwin_listing_failed(struct dwin *w);

/* If the heap has grown past the window plus slack: keeps the lowest 3/4
 * of the window, releases the rest, and makes each released row's endpoint
 * `more` from that row's key on. Returns how many were evicted. */
size_t dwin_evict(struct dwin *w);

/* Takes out of the heap every delivery drop(p, arg) says to, releasing its
 * hold (the store keeps the row: a later rescan finds it). Returns how
 * many. */
size_t dwin_drop_if(struct dwin *w, bool (*drop)(const struct pending *p, void *arg), void *arg);

/* Pending rows of any endpoint may be missing from memory: asks for a
 * listing (dwin_want_listing). */
void dwin_rescan(struct dwin *w);

/* ---- the per-endpoint cap ---- */

/* The cap an endpoint starts with for a window of `window` rows. */
size_t dwin_ep_cap_start(size_t window);
/* The fewest rows endpoint_id must be allowed to hold (its in-flight cap
 * times its batch size, say): its cap is at least that (at most the
 * window). Ignored for an endpoint holding nothing. */
void dwin_ep_need(struct dwin *w, const char *endpoint_id, size_t need);
/* The endpoint's state, NULL if it holds nothing and is not `more`. */
const struct dwin_ep *dwin_ep_find(const struct dwin *w, const char *endpoint_id);
/* The cap in force for e. */
size_t dwin_ep_cap(const struct dwin *w, const struct dwin_ep *e);
/* True if p must be in memory: not above its endpoint's lim when that
 * endpoint is `more`. */
bool dwin_covered_row(const struct dwin *w, const struct pending *p);

/* A refill to ask of the store. */
struct dwin_refill {
	char endpoint_id[ID_MAX];
	int64_t after_at;           /* rows strictly above this key */
	char after_id[ID_MAX];
	size_t limit;
};
/* The next endpoint that wants its rows back (`more`, holding half its
 * cap or less, no refill outstanding), fewer than DWIN_REFILLS_MAX
 * outstanding and the heap below the window: fills *r (at most the room
 * left in the window), marks the refill outstanding and returns true. */
bool dwin_refill_next(struct dwin *w, struct dwin_refill *r);
/* The refill of endpoint_id came back (items: its pending rows above the
 * key asked, in key order, n <= the limit): inserts those not held while
 * it is under its cap, moves its lim to the last row taken, clears `more`
 * if the refill was short and all taken, doubles its cap if it sent an
 * eighth of it meanwhile. Returns how many were inserted. */
size_t dwin_refill_done(struct dwin *w, const char *endpoint_id, const struct pending *items,
			size_t n);
/* The refill failed: nothing changes but the outstanding flag; the
 * endpoint is asked for again. */
void dwin_refill_failed(struct dwin *w, const char *endpoint_id);

#endif
