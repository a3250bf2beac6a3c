/* fuzz_filter: endpoint filters, compiled then evaluated.
 *
 * The input is two JSON objects one after the other: a filters object
 * (filter_compile) and an event's data (filter_match), e.g.
 *   {"media.status":"ready","confidence":{">=":0.8}}{"media":{"status":"ready"}}
 * Besides surviving any input, evaluation must be consistent: for each
 * top-level condition `key: scalar` of the filters, "=" and "!=" on the same
 * path and value give opposite answers, ">=" is ">" or "=" and "<=" is "<"
 * or "=" (when the value may be ordered). A broken law aborts. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* filter_match of the single condition {key: {op: operand}}; -1 when it
 * does not compile (the key is not a valid path). */
static int match_one(const char *key, const char *op, json_t *operand, json_t *event)
{
	char field[160], msg[160];
	struct filter *f = NULL;
	json_t *cond = json_pack("{s:{s:O}}", key, op, operand);
	if (cond == NULL)
		abort();
	int rc = filter_compile(cond, &f, field, sizeof field, msg, sizeof msg);
	json_decref(cond);
	if (rc != 0)
		return -1;
	if (f == NULL) {
		fprintf(stderr, "one condition compiled to no filter: %s %s\n", key, op);
		abort();
	}
	int m = filter_match(f, event) ? 1 : 0;
	filter_free(f);
	return m;
}

static void broken(const char *law, const char *key)
{
	fprintf(stderr, "filter law broken: %s (key %.200s)\n", law, key);
	abort();
}

/* The laws between operators, for each `key: scalar` of filters. */
static void check_laws(json_t *filters, json_t *event)
{
	const char *key;
	json_t *v;
	json_object_foreach(filters, key, v) {
		if (strcmp(key, "events") == 0 || json_is_array(v) || json_is_object(v))
			continue;
		int eq = match_one(key, "=", v, event);
		int ne = match_one(key, "!=", v, event);
		if (eq < 0 || ne < 0) {
			if (eq != ne)
				broken("= and != compile alike", key);
			continue;
		}
		if (eq == ne)
			broken("!= is not =", key);
		if (!json_is_number(v) && !json_is_string(v))
			continue;
		int gt = match_one(key, ">", v, event), ge = match_one(key, ">=", v, event);
		int lt = match_one(key, "<", v, event), le = match_one(key, "<=", v, event);
		if (gt < 0 || ge < 0 || lt < 0 || le < 0)
			broken("ordering operators compile where = does", key);
		if (ge != (gt || eq))
			broken(">= is > or =", key);
		if (le != (lt || eq))
			broken("<= is < or =", key);
		if (gt && lt)
			broken("> and < at once", key);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	const char *text = (const char *)data;
	/* The first object ends where jansson stops reading (it stores the bytes
	 * read in jerr.position with JSON_DISABLE_EOF_CHECK). */
	json_t *filters = json_loadb(text, size, JSON_DISABLE_EOF_CHECK, &jerr);
	if (filters == NULL)
		return 0;
	size_t used = (size_t)jerr.position;
	if (used > size)
		abort();
	json_t *event = json_loadb(text + used, size - used, 0, &jerr);
	if (event == NULL)
		event = json_object(); /* evaluate against empty data all the same */

	char field[160] = "", msg[160] = "";
	struct filter *f = NULL;
	if (filter_compile(filters, &f, field, sizeof field, msg, sizeof msg) == 0) {
		bool m1 = filter_match(f, event);
		bool m2 = filter_match(f, event);
		if (m1 != m2)
			broken("the same filter and data give one answer", "");
		filter_free(f);
		if (json_is_object(filters))
			check_laws(filters, event);
	} else if (field[0] == '\0' || msg[0] == '\0') {
		fprintf(stderr, "filter_compile failed without naming a field and a reason\n");
		abort();
	}
	json_decref(filters);
	json_decref(event);
	return 0;
}
