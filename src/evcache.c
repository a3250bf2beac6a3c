/* evcache: see evcache.h. A chained hash table over a FIFO list. */
#include "evcache.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define EVCACHE_BUCKETS 32768u /* a power of two, twice EVCACHE_MAX_ENTRIES */

static size_t bucket_of(const char *id)
{
	return str_hash(id) & (EVCACHE_BUCKETS - 1);
}

struct evcache_entry *evcache_entry_new(const struct event *ev)
{
	const char *type = ev->type ? ev->type : "";
	const char *data = ev->data ? ev->data : "null";
	size_t tl = strlen(type) + 1, dl = strlen(data) + 1;
	struct evcache_entry *e = malloc(sizeof *e + tl + dl);
	if (e == NULL)
		return NULL;
	e->next = e->hash_next = NULL;
	e->created_at = ev->created_at;
	e->bytes = sizeof *e + tl + dl;
	memcpy(e->id, ev->id, ID_MAX);
	e->id[ID_MAX - 1] = '\0';
	memcpy(e->buf, type, tl);
	memcpy(e->buf + tl, data, dl);
	e->type = e->buf;
	e->data = e->buf + tl;
	return e;
}

int evcache_init(struct evcache *c)
{
	memset(c, 0, sizeof *c);
	c->buckets = calloc(EVCACHE_BUCKETS, sizeof *c->buckets);
	return c->buckets != NULL ? 0 : -1;
}

void evcache_free(struct evcache *c)
{
	while (c->oldest != NULL) {
		struct evcache_entry *e = c->oldest;
		c->oldest = e->next;
		free(e);
	}
	free(c->buckets);
	memset(c, 0, sizeof *c);
}

static struct evcache_entry *find(const struct evcache *c, const char *id)
{
	for (struct evcache_entry *e = c->buckets[bucket_of(id)]; e != NULL; e = e->hash_next)
		if (strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

/* Drops the oldest entry. */
static void evict(struct evcache *c)
{
	struct evcache_entry *e = c->oldest;
	struct evcache_entry **pp = &c->buckets[bucket_of(e->id)];
	while (*pp != e)
		pp = &(*pp)->hash_next;
	*pp = e->hash_next;
	c->oldest = e->next;
	if (c->oldest == NULL)
		c->newest = NULL;
	c->n--;
	c->bytes -= e->bytes;
	free(e);
}

void evcache_put(struct evcache *c, struct evcache_entry *e)
{
	if (c->buckets == NULL || find(c, e->id) != NULL || e->bytes > EVCACHE_MAX_BYTES) {
		free(e);
		return;
	}
	while (c->n > 0 && (c->n >= EVCACHE_MAX_ENTRIES || c->bytes + e->bytes > EVCACHE_MAX_BYTES))
		evict(c);
	size_t b = bucket_of(e->id);
	e->hash_next = c->buckets[b];
	c->buckets[b] = e;
	e->next = NULL;
	if (c->newest != NULL)
		c->newest->next = e;
	else
		c->oldest = e;
	c->newest = e;
	c->n++;
	c->bytes += e->bytes;
}

int evcache_copy(const struct evcache *c, const char *id, struct event *out)
{
	const struct evcache_entry *e = c->buckets != NULL ? find(c, id) : NULL;
	if (e == NULL)
		return 1;
	memset(out, 0, sizeof *out);
	memcpy(out->id, e->id, ID_MAX);
	out->type = strdup(e->type);
	out->data = strdup(e->data);
	out->created_at = e->created_at;
	if (out->type == NULL || out->data == NULL) {
		event_clear(out);
		return -1;
	}
	return 0;
}
