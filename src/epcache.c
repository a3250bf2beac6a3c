/* epcache: the endpoints in memory. An id table (idtable.h) under a rwlock;
 * entries are immutable and reference-counted, so a reader may keep one after
 * the lock is dropped while a writer replaces it. */
#include "epcache.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idtable.h"
#include "log.h"

struct epcache {
	pthread_rwlock_t lock;
	struct idtable entries; /* struct ep_entry by id */
	size_t n_filtered;   /* entries with a filter; atomic reads outside the lock */
};

static void entry_free(struct ep_entry *e)
{
	free(e->url);
	json_decref(e->events);
	filter_free(e->filter);
	json_decref(e->headers);
	for (size_t i = 0; i < e->n_header_lines; i++)
		free(e->header_lines[i]);
	free(e->header_lines);
	/* The prepared key is secret material: do not leave it in freed memory. */
	memset(&e->key, 0, sizeof e->key);
	memset(&e->prev_key, 0, sizeof e->prev_key);
	sign_prepared_free(e->prep);
	sign_prepared_free(e->prev_prep);
	free(e);
}

void ep_entry_release(struct ep_entry *e)
{
	if (e && __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0)
		entry_free(e);
}

struct epcache *epcache_new(void)
{
	struct epcache *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	if (idtable_init(&c->entries, offsetof(struct ep_entry, id), 0, 64) != 0) {
		free(c);
		return NULL;
	}
	pthread_rwlock_init(&c->lock, NULL);
	return c;
}

void epcache_free(struct epcache *c)
{
	if (!c)
		return;
	struct ep_entry *e;
	for (size_t pos = 0; (e = idtable_next(&c->entries, &pos)) != NULL;)
		ep_entry_release(e);
	idtable_free(&c->entries);
	pthread_rwlock_destroy(&c->lock);
	free(c);
}

/* The entry's curl-ready header lines from its headers object. */
static int header_lines(struct ep_entry *n)
{
	size_t count = json_object_size(n->headers);
	const char *name;
	json_t *value;
	if (count == 0)
		return 0;
	n->header_lines = calloc(count, sizeof *n->header_lines);
	if (!n->header_lines)
		return -1;
	json_object_foreach(n->headers, name, value) {
		const char *v = json_string_value(value);
		char *line = NULL;
		if (!v) /* validated as strings when saved; never send anything else */
			continue;
		int len = *v ? asprintf(&line, "%s: %s", name, v) : asprintf(&line, "%s;", name);
		if (len < 0)
			return -1;
		n->header_lines[n->n_header_lines++] = line;
	}
	return 0;
}

/* Fills the delivery-control fields of n from e. Returns 0, or -1 with a reason. */
static int control_fields(struct ep_entry *n, const struct endpoint *e, char *err, size_t errlen)
{
	char field[128];
	n->rate_limit = e->rate_limit > 0 ? e->rate_limit : 0;
	n->max_in_flight = endpoint_max_in_flight(e);
	n->batch_max_events = e->batch_max_events > 0 ? e->batch_max_events : 0;
	n->batch_max_wait_ms = n->batch_max_events > 0 ? e->batch_max_wait_ms : 0;
	n->headers = e->headers ? json_deep_copy(e->headers) : json_object();
	if (!n->headers || header_lines(n) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* Compiled once here, evaluated at every fan-out. */
	if (e->filters && filter_compile(e->filters, &n->filter, field, sizeof field, err,
					 errlen) != 0)
		return -1;
	return 0;
}

/* The previous secret of a rotation still in its overlap, prepared like
 * the current one. A bad previous secret is logged and dropped: the
 * current one still signs. */
static void previous_key(struct ep_entry *n, const struct endpoint *e)
{
	char err[256];
	/* Only webhook-signature carries it: without that scheme, nothing to do. */
	if (!e->secret_previous || e->secret_previous_until <= now_ms() ||
	    !(n->schemes & SIGN_SCHEME_STANDARD))
		return;
	if (sign_key_init(&n->prev_key, e->secret_previous, err, sizeof err) != 0) {
		log_error("epcache: previous secret ignored id=%s: %s", e->id, err);
		memset(&n->prev_key, 0, sizeof n->prev_key);
		return;
	}
	n->prev_prep = sign_prepare_schemes(&n->prev_key, SIGN_SCHEME_STANDARD);
	n->prev_until = e->secret_previous_until;
}

int epcache_put(struct epcache *c, const struct endpoint *e)
{
	struct ep_entry *n = calloc(1, sizeof *n);
	char err[256];
	if (!n)
		return -1;
	snprintf(n->id, sizeof n->id, "%s", e->id);
	n->url = strdup(e->url);
	n->events = json_deep_copy(e->events);
	n->enabled = e->enabled;
	n->refs = 1;
	snprintf(err, sizeof err, "out of memory");
	if (!n->url || !n->events || sign_key_init(&n->key, e->secret, err, sizeof err) != 0 ||
	    control_fields(n, e, err, sizeof err) != 0) {
		log_error("epcache: cannot load endpoint id=%s: %s", e->id, err);
		entry_free(n);
		return -1;
	}
	/* Without it the dispatcher signs the slower way: not worth refusing. */
	n->chosen = e->signatures;
	n->schemes = sign_schemes_effective(n->key.alg, e->signatures);
	if (n->schemes == 0)
		n->schemes = SIGN_SCHEME_STANDARD; /* never unsigned (the API refuses this) */
	n->prep = sign_prepare_schemes(&n->key, n->schemes);
	previous_key(n, e);

	pthread_rwlock_wrlock(&c->lock);
	void *old_item;
	int rc = idtable_put(&c->entries, n, &old_item);
	struct ep_entry *old = old_item;
	if (old) {
		if (old->filter)
			__atomic_sub_fetch(&c->n_filtered, 1, __ATOMIC_RELAXED);
		ep_entry_release(old);
	}
	if (rc == 0 && n->filter)
		__atomic_add_fetch(&c->n_filtered, 1, __ATOMIC_RELAXED);
	pthread_rwlock_unlock(&c->lock);
	if (rc != 0)
		entry_free(n);
	return rc;
}

void epcache_remove(struct epcache *c, const char *id)
{
	pthread_rwlock_wrlock(&c->lock);
	struct ep_entry *e = idtable_remove(&c->entries, id);
	if (e) {
		if (e->filter)
			__atomic_sub_fetch(&c->n_filtered, 1, __ATOMIC_RELAXED);
		ep_entry_release(e);
	}
	pthread_rwlock_unlock(&c->lock);
}

struct ep_entry *epcache_get(struct epcache *c, const char *id)
{
	pthread_rwlock_rdlock(&c->lock);
	struct ep_entry *found = idtable_find(&c->entries, id);
	if (found)
		__atomic_add_fetch(&found->refs, 1, __ATOMIC_ACQ_REL);
	pthread_rwlock_unlock(&c->lock);
	return found;
}

static int by_id(const void *a, const void *b)
{
	return strcmp((*(struct ep_entry *const *)a)->id, (*(struct ep_entry *const *)b)->id);
}

struct ep_entry **epcache_all(struct epcache *c, size_t *n)
{
	struct ep_entry **all = NULL;
	*n = 0;
	pthread_rwlock_rdlock(&c->lock);
	if (c->entries.n > 0 && (all = malloc(c->entries.n * sizeof *all)) != NULL) {
		struct ep_entry *e;
		for (size_t pos = 0; (e = idtable_next(&c->entries, &pos)) != NULL;) {
			__atomic_add_fetch(&e->refs, 1, __ATOMIC_ACQ_REL);
			all[(*n)++] = e;
		}
	}
	pthread_rwlock_unlock(&c->lock);
	if (*n > 1)
		qsort(all, *n, sizeof *all, by_id);
	return all;
}

size_t epcache_count(struct epcache *c)
{
	pthread_rwlock_rdlock(&c->lock);
	size_t n = c->entries.n;
	pthread_rwlock_unlock(&c->lock);
	return n;
}

static bool is_operational(const char *type)
{
	return strncmp(type, "delivery.", 9) == 0 || strncmp(type, "endpoint.", 9) == 0;
}

bool epcache_events_match(json_t *events, const char *type)
{
	size_t i;
	json_t *v;
	json_array_foreach(events, i, v) {
		const char *want = json_string_value(v);
		if (!want)
			continue;
		if (strcmp(want, type) == 0)
			return true;
		if (strcmp(want, "*") == 0 && !is_operational(type))
			return true;
	}
	return false;
}

bool epcache_has_filters(struct epcache *c)
{
	return __atomic_load_n(&c->n_filtered, __ATOMIC_RELAXED) > 0;
}

/* Does e's filter let the event through? data, or else text parsed once
 * into *parsed on first need (*tried remembers a failed parse). */
static bool filter_passes(const struct ep_entry *e, json_t *data, const char *text,
			  json_t **parsed, bool *tried)
{
	if (!e->filter)
		return true;
	if (!data && text) {
		if (!*tried) {
			json_error_t jerr;
			*tried = true;
			*parsed = json_loads(text, JSON_ALLOW_NUL, &jerr);
			/* The text was validated at ingest: only memory can fail. */
			if (!*parsed)
				log_error("epcache: cannot parse event data for filters: %s",
					  jerr.text);
		}
		data = *parsed;
	}
	return filter_match(e->filter, data);
}

static char (*match(struct epcache *c, const char *type, json_t *data, const char *text,
		    size_t *n))[ID_MAX]
{
	char(*ids)[ID_MAX] = NULL;
	size_t len = 0, cap = 0;
	json_t *parsed = NULL;
	bool tried = false;
	pthread_rwlock_rdlock(&c->lock);
	struct ep_entry *e;
	for (size_t pos = 0; (e = idtable_next(&c->entries, &pos)) != NULL;) {
		if (!epcache_events_match(e->events, type) ||
		    !filter_passes(e, data, text, &parsed, &tried))
			continue;
		void *grown = array_grow(ids, &cap, len + 1, sizeof *ids, 8);
		if (grown == NULL)
			goto oom;
		ids = grown;
		memcpy(ids[len++], e->id, ID_MAX);
	}
	pthread_rwlock_unlock(&c->lock);
	json_decref(parsed);
	*n = len;
	return ids;
oom:
	pthread_rwlock_unlock(&c->lock);
	json_decref(parsed);
	log_error("epcache: out of memory matching type=%s", type);
	free(ids);
	*n = 0;
	return NULL;
}

char (*epcache_match(struct epcache *c, const char *type, json_t *data, size_t *n))[ID_MAX]
{
	return match(c, type, data, NULL, n);
}

char (*epcache_match_text(struct epcache *c, const char *type, const char *data_text,
			  size_t *n))[ID_MAX]
{
	return match(c, type, NULL, data_text, n);
}

static int load_one(const struct endpoint *e, void *arg)
{
	/* A row with a bad secret is logged and skipped rather than blocking start-up. */
	epcache_put(arg, e);
	return 0;
}

int epcache_load(struct epcache *c, struct store *st)
{
	return store_endpoint_each(st, load_one, c) == STORE_OK ? 0 : -1;
}
