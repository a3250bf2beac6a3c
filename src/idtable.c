/* idtable: see idtable.h. Each place keeps its item's hash, so a probe
 * compares keys only on a full hash match and growing never reads items. */
#include "idtable.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define IDTABLE_MIN 8

/* FNV-1a over the key (a string up to its NUL, else key_len bytes), its
 * bits then mixed (murmur3's finalizer): the low bits pick the place, and
 * ids that differ in their last character must not land side by side. */
static uint32_t key_hash(const struct idtable *t, const void *key)
{
	const unsigned char *p = key;
	uint32_t h = 2166136261u;
	if (t->key_len == 0) {
		for (; *p; p++)
			h = (h ^ *p) * 16777619u;
	} else {
		for (size_t i = 0; i < t->key_len; i++)
			h = (h ^ p[i]) * 16777619u;
	}
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	return h ^ (h >> 16);
}

static bool key_eq(const struct idtable *t, const void *item, const void *key)
{
	const char *k = (const char *)item + t->key_off;
	return t->key_len == 0 ? strcmp(k, key) == 0 : memcmp(k, key, t->key_len) == 0;
}

/* The place of key, or of the empty place ending its run. */
static size_t seek(const struct idtable *t, uint32_t h, const void *key)
{
	size_t mask = t->cap - 1;
	size_t i = h & mask;
	while (t->slots[i].item != NULL &&
	       (t->slots[i].hash != h || !key_eq(t, t->slots[i].item, key)))
		i = (i + 1) & mask;
	return i;
}

int idtable_init(struct idtable *t, size_t key_off, size_t key_len, size_t min_cap)
{
	size_t cap = IDTABLE_MIN;
	while (cap < min_cap && cap <= SIZE_MAX / 4)
		cap *= 2;
	memset(t, 0, sizeof *t);
	t->key_off = key_off;
	t->key_len = key_len;
	t->slots = calloc(cap, sizeof *t->slots);
	if (t->slots == NULL)
		return -1;
	t->cap = cap;
	return 0;
}

void idtable_free(struct idtable *t)
{
	free(t->slots);
	t->slots = NULL;
	t->cap = t->n = 0;
}

void *idtable_find(const struct idtable *t, const void *key)
{
	if (t->cap == 0)
		return NULL;
	return t->slots[seek(t, key_hash(t, key), key)].item;
}

/* Moves the items into a table of cap places; -1 (t unchanged) if out of memory. */
static int resize(struct idtable *t, size_t cap)
{
	struct idtable_slot *s = calloc(cap, sizeof *s);
	if (s == NULL)
		return -1;
	for (size_t i = 0; i < t->cap; i++) {
		if (t->slots[i].item == NULL)
			continue;
		size_t j = t->slots[i].hash & (cap - 1);
		while (s[j].item != NULL)
			j = (j + 1) & (cap - 1);
		s[j] = t->slots[i];
	}
	free(t->slots);
	t->slots = s;
	t->cap = cap;
	return 0;
}

int idtable_put(struct idtable *t, void *item, void **old)
{
	const void *key = (const char *)item + t->key_off;
	uint32_t h = key_hash(t, key);
	*old = NULL;
	if (t->cap == 0)
		return -1;
	size_t i = seek(t, h, key);
	if (t->slots[i].item != NULL) {
		*old = t->slots[i].item;
		t->slots[i].item = item;
		return 0;
	}
	if ((t->n + 1) * 4 > t->cap * 3) {
		/* Past 3/4 a failed growth still uses the room left. */
		if ((t->cap > SIZE_MAX / 2 / sizeof *t->slots || resize(t, t->cap * 2) != 0) &&
		    t->n + 1 >= t->cap)
			return -1;
		i = seek(t, h, key);
	}
	t->slots[i].hash = h;
	t->slots[i].item = item;
	t->n++;
	return 0;
}

void *idtable_remove(struct idtable *t, const void *key)
{
	if (t->cap == 0)
		return NULL;
	size_t mask = t->cap - 1;
	size_t i = seek(t, key_hash(t, key), key);
	void *item = t->slots[i].item;
	if (item == NULL)
		return NULL;
	t->slots[i].item = NULL;
	t->n--;
	/* Shift back each later item of the run whose home is not in (i, j]. */
	for (size_t j = (i + 1) & mask; t->slots[j].item != NULL; j = (j + 1) & mask) {
		size_t home = t->slots[j].hash & mask;
		bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (stays)
			continue;
		t->slots[i] = t->slots[j];
		t->slots[j].item = NULL;
		i = j;
	}
	return item;
}

void idtable_clear(struct idtable *t)
{
	if (t->slots != NULL)
		memset(t->slots, 0, t->cap * sizeof *t->slots);
	t->n = 0;
}

void *idtable_next(const struct idtable *t, size_t *pos)
{
	for (; *pos < t->cap; (*pos)++) {
		if (t->slots[*pos].item != NULL)
			return t->slots[(*pos)++].item;
	}
	return NULL;
}
