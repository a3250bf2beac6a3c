/* idtable: a hash table of pointers to items that carry their own key (an
 * id string or a fixed number of bytes inside the item), with open
 * addressing, linear probing and backward-shift deletion (no tombstones, so
 * a table never clogs). Kept at most 3/4 full; it grows, never shrinks. A
 * lookup allocates nothing. Not thread-safe: the owner locks. Used by the
 * endpoint cache, the dispatcher's endpoint state, the event cache, the API
 * key cache and the queue depth's endpoints. */
#ifndef HOOKD_IDTABLE_H
#define HOOKD_IDTABLE_H

#include <stddef.h>
#include <stdint.h>

struct idtable_slot {
	uint32_t hash;
	void *item;             /* NULL: an empty place */
};

struct idtable {
	struct idtable_slot *slots;
	size_t cap;             /* a power of two */
	size_t n;               /* items held */
	size_t key_off;         /* where an item's key starts (offsetof) */
	size_t key_len;         /* 0: a NUL-terminated string; else that many bytes */
};

/* An empty table for items whose key is at key_off (key_len bytes, or a
 * string when 0), with room for at least min_cap * 3/4 items before it
 * grows. Returns 0, or -1 if out of memory (t is then empty and unusable,
 * idtable_free is still safe). */
int idtable_init(struct idtable *t, size_t key_off, size_t key_len, size_t min_cap);

/* Frees the table's own memory, not the items. */
void idtable_free(struct idtable *t);

/* The item whose key equals key, or NULL. */
void *idtable_find(const struct idtable *t, const void *key);

/* Adds item, or puts it in the place of the item with the same key, which
 * is then returned in *old (else *old is NULL). Returns 0, or -1 if the
 * table is full and could not grow (t unchanged, *old NULL). */
int idtable_put(struct idtable *t, void *item, void **old);

/* Takes out the item whose key equals key and returns it, or NULL. */
void *idtable_remove(struct idtable *t, const void *key);

/* Empties t (not the items); it keeps its size. */
void idtable_clear(struct idtable *t);

/* Iteration, in no order: start with *pos = 0; each call returns the next
 * item, or NULL at the end. t must not change meanwhile. */
void *idtable_next(const struct idtable *t, size_t *pos);

#endif
