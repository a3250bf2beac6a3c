/* idtable: the one hash table of items keyed by an id (or by bytes). */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idtable.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
/* For loops of many thousand checks: an assertion only when one fails
 * (Criterion reports every assertion with --full-stats, at a cost each). */
#define CHECK(cond, ...) do { if (!(cond)) cr_assert_fail(__VA_ARGS__); } while (0)

struct item {
	int value;
	char id[32];
};

struct bitem {
	unsigned char key[8];
	int value;
};

static struct item *item_new(const char *id, int value)
{
	struct item *it = calloc(1, sizeof *it);
	cr_assert_not_null(it);
	snprintf(it->id, sizeof it->id, "%s", id);
	it->value = value;
	return it;
}

static void table_init(struct idtable *t, size_t min_cap)
{
	cr_assert_eq(idtable_init(t, offsetof(struct item, id), 0, min_cap), 0);
}

/* Each step puts (value > 0), removes (value 0) or finds (value < 0: the
 * value expected, or -1 for none), on a table of 8 places that never grows
 * past it: runs wrap around its end and removals shift later items back. */
Test(idtable, steps)
{
	static const struct {
		char op;          /* p put, r remove, f find */
		const char *id;
		int value;        /* put: the value; find/remove: expected (0 = none) */
		size_t n;         /* items after the step */
	} steps[] = {
		{'f', "a", 0, 0},
		{'p', "a", 1, 1},
		{'f', "a", 1, 1},
		{'p', "b", 2, 2},
		{'p', "a", 3, 2},   /* replaces a */
		{'f', "a", 3, 2},
		{'f', "c", 0, 2},
		{'r', "c", 0, 2},
		{'p', "c", 4, 3},
		{'p', "d", 5, 4},
		{'p', "e", 6, 5},
		{'r', "b", 2, 4},
		{'f', "b", 0, 4},
		{'f', "c", 4, 4},
		{'f', "d", 5, 4},
		{'f', "e", 6, 4},
		{'r', "a", 3, 3},
		{'r', "a", 0, 3},
		{'p', "", 7, 4},    /* the empty id is a key like any other */
		{'f', "", 7, 4},
		{'r', "e", 6, 3},
		{'r', "d", 5, 2},
		{'r', "c", 4, 1},
		{'r', "", 7, 0},
		{'f', "c", 0, 0},
	};
	struct idtable t;
	struct item *made[N_ELEMS(steps)] = {0};
	table_init(&t, 8);
	for (size_t i = 0; i < N_ELEMS(steps); i++) {
		struct item *it;
		void *old = NULL;
		switch (steps[i].op) {
		case 'p':
			made[i] = item_new(steps[i].id, steps[i].value);
			cr_assert_eq(idtable_put(&t, made[i], &old), 0, "step %zu", i);
			break;
		case 'r':
			it = idtable_remove(&t, steps[i].id);
			cr_expect_eq(it ? it->value : 0, steps[i].value, "step %zu", i);
			break;
		default:
			it = idtable_find(&t, steps[i].id);
			cr_expect_eq(it ? it->value : 0, steps[i].value, "step %zu", i);
		}
		cr_expect_eq(t.n, steps[i].n, "step %zu", i);
		cr_expect_eq(t.cap, 8, "step %zu", i);
		/* A replaced item comes back to its owner. */
		if (old != NULL)
			cr_expect_str_eq(((struct item *)old)->id, steps[i].id, "step %zu", i);
	}
	for (size_t i = 0; i < N_ELEMS(steps); i++)
		free(made[i]);
	idtable_free(&t);
}

/* Past 3/4 full the table doubles, and every item stays findable. */
Test(idtable, grows_and_keeps_many_keys)
{
	enum { N = 100000 };
	struct idtable t;
	struct item *items = calloc(N, sizeof *items);
	cr_assert_not_null(items);
	table_init(&t, 0);
	cr_expect_eq(t.cap, 8);
	for (int i = 0; i < N; i++) {
		void *old;
		snprintf(items[i].id, sizeof items[i].id, "ep_%d", i);
		items[i].value = i;
		CHECK(idtable_put(&t, &items[i], &old) == 0, "put ep_%d", i);
		CHECK(old == NULL, "a new key replaced an item");
		CHECK(t.n * 4 <= t.cap * 3, "%zu items in %zu places", t.n, t.cap);
	}
	cr_expect_eq(t.n, N);
	cr_expect_eq(t.cap, 262144); /* the first power of two with N <= 3/4 of it */
	for (int i = 0; i < N; i++) {
		struct item *it = idtable_find(&t, items[i].id);
		CHECK(it == &items[i], "ep_%d", i);
	}
	/* Iteration sees each item once. */
	char *seen = calloc(N, 1);
	size_t count = 0;
	struct item *it;
	for (size_t pos = 0; (it = idtable_next(&t, &pos)) != NULL; count++) {
		CHECK(seen[it->value] == 0, "ep_%d seen twice", it->value);
		seen[it->value] = 1;
	}
	cr_expect_eq(count, N);
	/* Remove every other, then the rest are still found. */
	for (int i = 0; i < N; i += 2)
		CHECK(idtable_remove(&t, items[i].id) == &items[i], "remove ep_%d", i);
	for (int i = 0; i < N; i++)
		CHECK(idtable_find(&t, items[i].id) == (i % 2 ? &items[i] : NULL), "ep_%d", i);
	idtable_clear(&t);
	cr_expect_eq(t.n, 0);
	cr_expect_null(idtable_find(&t, items[1].id));
	free(seen);
	free(items);
	idtable_free(&t);
}

/* Random puts, replaces and removes against a plain array of the truth,
 * over few keys (heavy collisions, wrapping runs) and over many. */
static void random_against_reference(int keys, int ops, unsigned seed)
{
	struct idtable t;
	struct item *pool = calloc((size_t)ops, sizeof *pool);
	struct item **truth = calloc((size_t)keys, sizeof *truth);
	size_t live = 0;
	cr_assert(pool != NULL && truth != NULL);
	table_init(&t, 8);
	srand(seed);
	for (int i = 0; i < ops; i++) {
		int k = rand() % keys;
		char id[32];
		snprintf(id, sizeof id, "k%d", k);
		if (rand() % 3 == 0) {
			CHECK(idtable_remove(&t, id) == truth[k], "op %d", i);
			live -= truth[k] != NULL;
			truth[k] = NULL;
		} else {
			void *old;
			snprintf(pool[i].id, sizeof pool[i].id, "%s", id);
			CHECK(idtable_put(&t, &pool[i], &old) == 0, "op %d", i);
			CHECK(old == truth[k], "op %d", i);
			live += truth[k] == NULL;
			truth[k] = &pool[i];
		}
		CHECK(t.n == live, "op %d", i);
		int probe = rand() % keys;
		snprintf(id, sizeof id, "k%d", probe);
		CHECK(idtable_find(&t, id) == truth[probe], "op %d key %d", i, probe);
	}
	for (int k = 0; k < keys; k++) {
		char id[32];
		snprintf(id, sizeof id, "k%d", k);
		CHECK(idtable_find(&t, id) == truth[k], "key %d", k);
	}
	free(truth);
	free(pool);
	idtable_free(&t);
}

Test(idtable, random_few_keys) { random_against_reference(6, 20000, 1); }
Test(idtable, random_many_keys) { random_against_reference(5000, 50000, 2); }

/* A key of fixed bytes (the API key cache's hashes): NULs inside count. */
Test(idtable, byte_keys)
{
	struct idtable t;
	struct bitem a = {{0, 0, 0, 0, 0, 0, 0, 1}, 1}, b = {{0, 0, 0, 0, 0, 0, 0, 2}, 2};
	unsigned char none[8] = {0};
	void *old;
	cr_assert_eq(idtable_init(&t, offsetof(struct bitem, key), sizeof a.key, 4), 0);
	cr_assert_eq(idtable_put(&t, &a, &old), 0);
	cr_assert_eq(idtable_put(&t, &b, &old), 0);
	cr_expect_eq(idtable_find(&t, a.key), &a);
	cr_expect_eq(idtable_find(&t, b.key), &b);
	cr_expect_null(idtable_find(&t, none));
	cr_expect_eq(idtable_remove(&t, a.key), &a);
	cr_expect_null(idtable_find(&t, a.key));
	cr_expect_eq(idtable_find(&t, b.key), &b);
	idtable_free(&t);
}
