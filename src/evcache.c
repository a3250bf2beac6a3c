/* evcache: see evcache.h. An id table (idtable.h) over a FIFO list. */
#include "evcache.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "pending.h"
#include "util.h"

/* Places in the id table: twice EVCACHE_MAX_ENTRIES, so it never grows. */
#define EVCACHE_PLACES (2u * EVCACHE_MAX_ENTRIES)

struct evcache_entry *evcache_entry_new(const struct event *ev)
{
	const char *type = ev->type ? ev->type : "";
	const char *data = ev->data ? ev->data : "null";
	size_t tl = strlen(type) + 1, dl = strlen(data) + 1;
	struct evcache_entry *e = malloc(sizeof *e + tl + dl);
	if (e == NULL)
		return NULL;
	e->next = NULL;
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

struct evcache_entry *evcache_keep(struct evcache_entry *events, const struct pending *items,
				   size_t n, bool (*keep)(const char *endpoint_id, const void *arg),
				   const void *arg)
{
	struct idtable wanted; /* items kept, by event_id */
	if (events == NULL ||
	    idtable_init(&wanted, offsetof(struct pending, event_id), 0, n + n / 3 + 1) != 0)
		return events;
	for (size_t i = 0; i < n; i++) {
		void *old = NULL;
		if (keep(items[i].endpoint_id, arg) &&
		    idtable_put(&wanted, (void *)&items[i], &old) != 0) {
			idtable_free(&wanted);
			return events;
		}
	}
	struct evcache_entry *head = NULL, **tail = &head;
	while (events != NULL) {
		struct evcache_entry *e = events;
		events = e->next;
		e->next = NULL;
		if (idtable_find(&wanted, e->id) != NULL) {
			*tail = e;
			tail = &e->next;
		} else {
			free(e);
		}
	}
	idtable_free(&wanted);
	return head;
}

int evcache_init(struct evcache *c)
{
	memset(c, 0, sizeof *c);
	return idtable_init(&c->ids, offsetof(struct evcache_entry, id), 0, EVCACHE_PLACES);
}

void evcache_free(struct evcache *c)
{
	while (c->oldest != NULL) {
		struct evcache_entry *e = c->oldest;
		c->oldest = e->next;
		free(e);
	}
	idtable_free(&c->ids);
	memset(c, 0, sizeof *c);
}

/* Drops the oldest entry. */
static void evict(struct evcache *c)
{
	struct evcache_entry *e = c->oldest;
	idtable_remove(&c->ids, e->id);
	c->oldest = e->next;
	if (c->oldest == NULL)
		c->newest = NULL;
	c->n--;
	c->bytes -= e->bytes;
	free(e);
}

void evcache_put(struct evcache *c, struct evcache_entry *e)
{
	void *old;
	if (c->ids.slots == NULL || idtable_find(&c->ids, e->id) != NULL ||
	    e->bytes > EVCACHE_MAX_BYTES) {
		free(e);
		return;
	}
	while (c->n > 0 && (c->n >= EVCACHE_MAX_ENTRIES || c->bytes + e->bytes > EVCACHE_MAX_BYTES))
		evict(c);
	if (idtable_put(&c->ids, e, &old) != 0) { /* cannot happen: it never grows */
		free(e);
		return;
	}
	e->next = NULL;
	if (c->newest != NULL)
		c->newest->next = e;
	else
		c->oldest = e;
	c->newest = e;
	c->n++;
	c->bytes += e->bytes;
}

int evcache_view(const struct evcache *c, const char *id, struct event *out)
{
	const struct evcache_entry *e = c->ids.slots != NULL ? idtable_find(&c->ids, id) : NULL;
	if (e == NULL)
		return 1;
	memcpy(out->id, e->id, ID_MAX);
	out->type = e->type;
	out->data = e->data;
	out->created_at = e->created_at;
	return 0;
}
