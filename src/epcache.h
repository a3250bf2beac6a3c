/* epcache: every endpoint in memory, for fan-out at ingest and for the
 * dispatcher's sends, so neither touches the store for endpoint data. Entries
 * are immutable and reference-counted: an update replaces the entry, and a
 * reader keeps the version it took until it releases it. Thread-safe. */
#ifndef HOOKD_EPCACHE_H
#define HOOKD_EPCACHE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "model.h"
#include "sign.h"
#include "store.h"

struct ep_entry {
	char id[ID_MAX];
	char *url;
	json_t *events;          /* array of strings */
	bool enabled;
	struct sign_key key;     /* prepared once per secret */
	/* key's HMAC states for the dispatcher (sign_*_prepared); NULL if they
	 * could not be made, then sign_standard/sign_hex with key do. */
	struct sign_prepared *prep;
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

/* True if an endpoint subscribed to `events` should receive an event of
 * `type`: "*" matches every type except operational ones (EVENT_DEAD_LETTERED
 * and anything starting "delivery." or "endpoint."), which must be named. */
bool epcache_events_match(json_t *events, const char *type);

/* Ids of every endpoint (enabled or not) that should receive an event of
 * `type` with `data` (data is for the filters of a later issue; may be NULL).
 * Returns a malloc'd array of *n ids (NULL when *n is 0). */
char (*epcache_match(struct epcache *c, const char *type, json_t *data, size_t *n))[ID_MAX];

#endif
