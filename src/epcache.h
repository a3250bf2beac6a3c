/* epcache: every endpoint in memory, for fan-out at ingest and for the
 * dispatcher's sends, so neither touches the store for endpoint data. Entries
 * are immutable and reference-counted: an update replaces the entry, and a
 * reader keeps the version it took until it releases it. Thread-safe. */
#ifndef HOOKD_EPCACHE_H
#define HOOKD_EPCACHE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "filter.h"
#include "model.h"
#include "sign.h"
#include "store.h"

struct ep_entry {
	char id[ID_MAX];
	char *url;
	json_t *events;          /* array of strings */
	bool enabled;
	struct sign_key key;     /* prepared once per secret */
	/* The signature schemes it gets (SIGN_SCHEME_* bits, never 0): the
	 * endpoint's choice that key can make (sign_schemes_effective). chosen
	 * is the choice itself (0 = all): X-PixelPatrol-Timestamp goes with a
	 * chosen hex scheme, even to an Ed25519 endpoint, as before schemes
	 * could be chosen. */
	unsigned schemes, chosen;
	/* key's HMAC states for the dispatcher (sign_*_prepared), for the
	 * schemes only; NULL if they could not be made, then
	 * sign_standard/sign_hex with key do. */
	struct sign_prepared *prep;
	/* After a secret rotation the previous secret signs too, until
	 * prev_until (ms epoch; 0 = no previous, or one already expired when
	 * the entry was made). prev_prep as prep (NULL: sign with prev_key). */
	struct sign_key prev_key;
	struct sign_prepared *prev_prep;
	int64_t prev_until;
	/* Delivery control (docs/api.md#endpoint), from the endpoint as stored. */
	struct filter *filter;   /* compiled filters, NULL = none (epcache_match applies it) */
	json_t *headers;         /* custom headers {name: value}, never NULL (maybe {}) */
	/* The same headers ready for curl_slist_append, in order: "Name: value",
	 * or "Name;" for an empty value (curl drops a "Name:" header, it sends
	 * "Name;" as an empty one). Add them after hookd's own headers. */
	char **header_lines;
	size_t n_header_lines;
	double rate_limit;       /* requests per second, 0 = no limit */
	int max_in_flight;       /* 1..1000, the default applied */
	int batch_max_events;    /* 0 = not batched */
	int batch_max_wait_ms;   /* when batched */
	/* private */
	int refs;
};

struct epcache;

struct epcache *epcache_new(void);
void epcache_free(struct epcache *c);
/* Loads every endpoint from st. Returns 0 or -1. */
int epcache_load(struct epcache *c, struct store *st);
/* Inserts or replaces the entry for e->id. Returns 0 or -1 (bad secret / OOM). */
int epcache_put(struct epcache *c, const struct endpoint *e);
void epcache_remove(struct epcache *c, const char *id);
/* Returns a reference to the current entry (release it), or NULL. */
struct ep_entry *epcache_get(struct epcache *c, const char *id);
void ep_entry_release(struct ep_entry *e);
/* References to every entry, ordered by id (oldest first for generated
 * ids): a malloc'd array of *n; release each and free the array. NULL with
 * *n = 0 when there is none or out of memory. */
struct ep_entry **epcache_all(struct epcache *c, size_t *n);
/* How many endpoints the cache holds (any thread). */
size_t epcache_count(struct epcache *c);

/* True if an endpoint subscribed to `events` should receive an event of
 * `type`: "*" matches every type except operational ones (EVENT_DEAD_LETTERED
 * and anything starting "delivery." or "endpoint."), which must be named. */
bool epcache_events_match(json_t *events, const char *type);

/* Ids of every endpoint (enabled or not) that should receive an event of
 * `type` with `data`: its events list matches the type and its filters (if
 * any) hold for data. data may be NULL: filters then see no data (every
 * path missing). Returns a malloc'd array of *n ids (NULL when *n is 0). */
char (*epcache_match(struct epcache *c, const char *type, json_t *data, size_t *n))[ID_MAX];

/* The same for an event whose data is only at hand as JSON text (the
 * ingest fast path): the text is parsed only if an endpoint subscribed to
 * the type has filters, so events no filter looks at cost nothing more. */
char (*epcache_match_text(struct epcache *c, const char *type, const char *data_text,
			  size_t *n))[ID_MAX];

/* True if some cached endpoint has filters (a hint: it may change at once). */
bool epcache_has_filters(struct epcache *c);

#endif
