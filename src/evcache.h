/* evcache: the events the dispatcher was handed with their new deliveries,
 * so it need not read them back from the store.
 *
 * Why: a delivery's request needs its event (type, data, created_at). The
 * ingest path has it in memory when its commit lands; reading it back cost
 * the dispatcher a store query per delivery, and the pages just written
 * were not in its connection's cache (reads from the WAL file). Bounded:
 * the oldest entries go first once the cache holds EVCACHE_MAX_BYTES or
 * EVCACHE_MAX_ENTRIES; a delivery whose event is gone (a backlog, a
 * retry) reads it from the store as before. Not thread-safe: the
 * dispatcher's thread only (entries are made on any thread, then handed
 * over). */
#ifndef HOOKD_EVCACHE_H
#define HOOKD_EVCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "idtable.h"
#include "model.h"

#define EVCACHE_MAX_BYTES (8u << 20)
#define EVCACHE_MAX_ENTRIES 16384

/* One event, in a single allocation (evcache_entry_new). */
struct evcache_entry {
	struct evcache_entry *next;      /* a list being handed over; then FIFO order */
	int64_t created_at;
	size_t bytes;
	char *type; /* into buf */
	char *data; /* into buf */
	char id[ID_MAX];
	char buf[];
};

struct evcache {
	struct idtable ids;             /* the entries by id */
	struct evcache_entry *oldest, *newest;
	size_t n;
	size_t bytes;
};

/* A copy of ev as an entry (malloc'd), or NULL if out of memory. */
struct evcache_entry *evcache_entry_new(const struct event *ev);

struct pending;

/* Of the list events (linked by next), the entries some delivery of
 * items[0..n) belongs to (its event_id) whose endpoint keep(endpoint_id,
 * arg) says to keep; the others are freed. Returns the kept list, in its
 * order (NULL if none). Out of memory, the list is returned whole. Why:
 * with several nodes an ingest hands the dispatcher every event it wrote,
 * and most of their deliveries are other nodes' to send; cached, they would
 * push out the events this node does send (dispatch.c, handle_enqueue). */
struct evcache_entry *evcache_keep(struct evcache_entry *events, const struct pending *items,
				   size_t n, bool (*keep)(const char *endpoint_id, const void *arg),
				   const void *arg);

/* 0, or -1 if out of memory (then the cache stays empty and unused). */
int evcache_init(struct evcache *c);
void evcache_free(struct evcache *c);

/* Takes e. An id already cached keeps its entry (e is freed). */
void evcache_put(struct evcache *c, struct evcache_entry *e);

/* Fills out with the cached event id itself: out's strings point into the
 * entry and are not the caller's to free or change (no event_clear). They
 * stay valid until the next evcache_put or evcache_free on c, so a caller
 * uses them before it hands the cache anything. Returns 0, or 1 if id is
 * not cached. Why: the dispatcher builds a request's body from its event
 * and drops the event right after; a copy (two strdup, two free) cost
 * about 1.7k instructions a delivery (docs/performance.md, session 10). */
int evcache_view(const struct evcache *c, const char *id, struct event *out);

#endif
