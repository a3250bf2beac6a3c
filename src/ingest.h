/* ingest: turns accepted events into stored events plus one pending delivery
 * per matching endpoint. Used by POST /v1/events and by hookd's own
 * operational events (delivery.dead_lettered). The caller validates and
 * fans out beforehand (outside the commit thread); ingest_apply runs on the
 * commit thread inside the group's transaction. */
#ifndef HOOKD_INGEST_H
#define HOOKD_INGEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "epcache.h"
#include "model.h"
#include "store.h"
#include "util.h"

struct ingest_item {
	struct event ev;                 /* id (given or generated), type, data text, created_at */
	char (*endpoint_ids)[ID_MAX];    /* fan-out result, malloc'd */
	char (*delivery_ids)[ID_MAX];    /* one pre-generated id per endpoint, malloc'd */
	size_t n;
	/* Set by ingest_apply: the event id existed already, so nothing was
	 * written; ev/endpoint_ids/delivery_ids now describe the original. */
	bool duplicate;
};

struct ingest_batch {
	struct ingest_item *items;
	size_t n;
	char *idem_key;                  /* Idempotency-Key header, or NULL */
	/* Set by the caller: new deliveries are due this long after their
	 * event's created_at (--retry-schedule's first delay; 0 = at once). */
	int64_t first_delay_ms;
	/* Set by ingest_apply: the key was seen before; items were replaced by
	 * the original request's events. */
	bool idem_replay;
	/* Set by ingest_apply: the new pending deliveries to hand to the
	 * dispatcher after the commit (malloc'd). */
	struct pending *new_pending;
	size_t n_new_pending;
	/* Private: the items as prepared, kept when a run of ingest_apply
	 * replaced some (a duplicate, a replayed key), so that a run after a
	 * rollback (commit.h rerun_ok) starts from them again. */
	struct ingest_item *prepared;
	size_t n_prepared;
	/* Set by the caller when the batch is written in parts
	 * (ingest_apply_part), each part applied exactly once: no copy of the
	 * prepared items is kept. */
	bool in_parts;
};

/* A request whose fan-out is larger than this many deliveries is written in
 * parts of about this size (whole events: one event and all its deliveries
 * are always in one transaction), each committed on its own so that other
 * clients' writes are committed in between (commit.h alone). */
#define INGEST_PART_DELIVERIES 1000

/* Fills item: generates the event id if ev.id is empty, sets created_at to
 * now, fans out through the cache (events lists and filters: data is the
 * parsed data_text, or NULL to have it parsed only if a filter needs it) and
 * generates one delivery id per endpoint. Takes ownership of type and
 * data_text (malloc'd). Returns 0 or -1 (OOM). */
int ingest_item_prepare(struct ingest_item *item, struct epcache *cache, const char *given_id,
			char *type, char *data_text, json_t *data, int64_t now);

/* Inside a transaction: honours the idempotency key and event ids, then
 * inserts every new event and its deliveries (pending, due at created_at).
 * Returns STORE_OK or the store's error. May run again on the same batch
 * after its writes were rolled back, with the same result as one run. */
int ingest_apply(struct store *st, struct ingest_batch *b);

/* The end (exclusive) of the part of b that starts at item from: whole
 * items adding up to at least INGEST_PART_DELIVERIES deliveries (at least
 * one item; fewer at the end of the batch). */
size_t ingest_part_end(const struct ingest_batch *b, size_t from);

/* Inside a transaction, for a batch written in parts (b->in_parts): like
 * ingest_apply for the items [from, to) only. The idempotency key is looked
 * up in the first part (a hit replays the original request: idem_replay
 * set, items replaced, and no part follows) and stored with the last, so a
 * key is only ever stored for a request written whole. new_pending holds
 * this part's deliveries. Runs once per part (commit.h rerun_ok unset).
 * Returns STORE_OK or the store's error. */
int ingest_apply_part(struct store *st, struct ingest_batch *b, size_t from, size_t to);

/* Frees item's id arrays, keeping its count n (an item counted but not to
 * be written, or one whose response lists counts only). */
void ingest_item_drop_ids(struct ingest_item *item);

/* Frees everything the batch holds (not b itself). */
void ingest_batch_clear(struct ingest_batch *b);

/* The response view of one item: {"id","event","created_at","deliveries":
 * [{"id","endpoint_id"}…]} plus "duplicate": true when it was not new. */
json_t *ingest_item_to_json(const struct ingest_item *item);
/* The same view as compact JSON text (what json_dumps gives for it),
 * appended to b: the 202 body is written without building the tree.
 * Returns 0 or -1 (out of memory). */
int ingest_item_append_text(struct dynbuf *b, const struct ingest_item *item);
/* The compact view, for a request with more deliveries than the 202 lists:
 * {"id","event","created_at","deliveries_count":n,"deliveries_truncated":
 * true} (plus "duplicate": true), appended to b. Returns 0 or -1 (OOM). */
int ingest_item_append_count(struct dynbuf *b, const struct ingest_item *item);
/* The brief view of a duplicate, {"id":…,"duplicate":true}, appended to b:
 * for a caller that may not read the stored event (an ingest-scoped key).
 * Returns 0 or -1 (out of memory). */
int ingest_item_append_brief(struct dynbuf *b, const struct ingest_item *item);

#endif
