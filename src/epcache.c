/* epcache: the endpoints in memory. A chained hash table under a rwlock;
 * entries are immutable and reference-counted, so a reader may keep one after
 * the lock is dropped while a writer replaces it. */
#include "epcache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct slot {
	struct ep_entry *entry;
	struct slot *next;
};

struct epcache {
	pthread_rwlock_t lock;
	struct slot **buckets;
	size_t n_buckets;
	size_t count;
	size_t n_filtered;   /* entries with a filter; atomic reads outside the lock */
};

static uint64_t hash_id(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

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
	c->n_buckets = 64;
	c->buckets = calloc(c->n_buckets, sizeof *c->buckets);
	if (!c->buckets) {
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
	for (size_t i = 0; i < c->n_buckets; i++) {
		struct slot *s = c->buckets[i];
		while (s) {
			struct slot *next = s->next;
			ep_entry_release(s->entry);
			free(s);
			s = next;
		}
	}
	free(c->buckets);
	pthread_rwlock_destroy(&c->lock);
	free(c);
}

/* Doubles the table when it is full; called with the write lock held.
 * A failed allocation just keeps the longer chains. */
static void grow(struct epcache *c)
{
	size_t n = c->n_buckets * 2;
	struct slot **b = calloc(n, sizeof *b);
	if (!b)
		return;
	for (size_t i = 0; i < c->n_buckets; i++) {
		struct slot *s = c->buckets[i];
		while (s) {
			struct slot *next = s->next;
			size_t j = hash_id(s->entry->id) & (n - 1);
			s->next = b[j];
			b[j] = s;
			s = next;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->n_buckets = n;
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
	if (!e->secret_previous || e->secret_previous_until <= now_ms())
		return;
	if (sign_key_init(&n->prev_key, e->secret_previous, err, sizeof err) != 0) {
		log_error("epcache: previous secret ignored id=%s: %s", e->id, err);
		memset(&n->prev_key, 0, sizeof n->prev_key);
		return;
	}
	n->prev_prep = sign_prepare(&n->prev_key);
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
	n->prep = sign_prepare(&n->key);
	previous_key(n, e);

	pthread_rwlock_wrlock(&c->lock);
	size_t i = hash_id(n->id) & (c->n_buckets - 1);
	struct slot *s;
	for (s = c->buckets[i]; s; s = s->next) {
		if (strcmp(s->entry->id, n->id) == 0)
			break;
	}
	int rc = 0;
	if (s) {
		if (s->entry->filter)
			__atomic_sub_fetch(&c->n_filtered, 1, __ATOMIC_RELAXED);
		ep_entry_release(s->entry);
		s->entry = n;
	} else if ((s = malloc(sizeof *s))) {
		s->entry = n;
		s->next = c->buckets[i];
		c->buckets[i] = s;
		if (++c->count > c->n_buckets)
			grow(c);
	} else {
		entry_free(n);
		n = NULL;
		rc = -1;
	}
	if (n && n->filter)
		__atomic_add_fetch(&c->n_filtered, 1, __ATOMIC_RELAXED);
	pthread_rwlock_unlock(&c->lock);
	return rc;
}

void epcache_remove(struct epcache *c, const char *id)
{
	pthread_rwlock_wrlock(&c->lock);
	struct slot **pp = &c->buckets[hash_id(id) & (c->n_buckets - 1)];
	for (; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->entry->id, id) == 0) {
			struct slot *s = *pp;
			*pp = s->next;
			if (s->entry->filter)
				__atomic_sub_fetch(&c->n_filtered, 1, __ATOMIC_RELAXED);
			ep_entry_release(s->entry);
			free(s);
			c->count--;
			break;
		}
	}
	pthread_rwlock_unlock(&c->lock);
}

struct ep_entry *epcache_get(struct epcache *c, const char *id)
{
	struct ep_entry *found = NULL;
	pthread_rwlock_rdlock(&c->lock);
	for (struct slot *s = c->buckets[hash_id(id) & (c->n_buckets - 1)]; s; s = s->next) {
		if (strcmp(s->entry->id, id) == 0) {
			found = s->entry;
			__atomic_add_fetch(&found->refs, 1, __ATOMIC_ACQ_REL);
			break;
		}
	}
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
	if (c->count > 0 && (all = malloc(c->count * sizeof *all)) != NULL) {
		for (size_t i = 0; i < c->n_buckets; i++) {
			for (struct slot *s = c->buckets[i]; s; s = s->next) {
				__atomic_add_fetch(&s->entry->refs, 1, __ATOMIC_ACQ_REL);
				all[(*n)++] = s->entry;
			}
		}
	}
	pthread_rwlock_unlock(&c->lock);
	if (*n > 1)
		qsort(all, *n, sizeof *all, by_id);
	return all;
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
	for (size_t i = 0; i < c->n_buckets; i++) {
		for (struct slot *s = c->buckets[i]; s; s = s->next) {
			if (!epcache_events_match(s->entry->events, type) ||
			    !filter_passes(s->entry, data, text, &parsed, &tried))
				continue;
			void *grown = array_grow(ids, &cap, len + 1, sizeof *ids, 8);
			if (grown == NULL)
				goto oom;
			ids = grown;
			memcpy(ids[len++], s->entry->id, ID_MAX);
		}
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
