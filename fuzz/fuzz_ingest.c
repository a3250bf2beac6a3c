/* fuzz_ingest: POST /v1/events body validation, both paths, differential.
 *
 * The input is a request body. The full path (json_loadb rejecting
 * duplicate keys, validate_ingest, validate_json_text of each data) and the
 * fast path (validate_ingest_fast) both run, the fast path with the default
 * --max-json-depth (32) and with a small one; when the fast path answers,
 * the body must pass validate_json_depth at that depth and the full path
 * must accept it with the same events, ids, types, data text and form (batch
 * or not): the comparison of tests/unit/test_validate.c's check_same. Also
 * checked: validate_json_depth, which scans raw text, finds the depth of the
 * tree jansson builds; each stored data text reads back to itself. A
 * disagreement aborts. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The events one path gives, flattened for comparison. */
struct ingest_view {
	size_t n;
	bool batch;
	char **id;
	char **type;
	char **data;
};

static void view_free(struct ingest_view *v)
{
	for (size_t i = 0; i < v->n; i++) {
		free(v->id[i]);
		free(v->type[i]);
		free(v->data[i]);
	}
	free(v->id);
	free(v->type);
	free(v->data);
	memset(v, 0, sizeof *v);
}

static void view_alloc(struct ingest_view *v, size_t n)
{
	v->n = n;
	v->id = calloc(n ? n : 1, sizeof *v->id);
	v->type = calloc(n ? n : 1, sizeof *v->type);
	v->data = calloc(n ? n : 1, sizeof *v->data);
	if (!v->id || !v->type || !v->data)
		abort();
}

static char *dup_or_die(const char *s)
{
	char *d = strdup(s);
	if (!d)
		abort();
	return d;
}

/* The full path: 0 and the events in *v, or -1 if it refuses the body. */
static int full_path(const char *body, size_t len, struct ingest_view *v)
{
	json_error_t jerr;
	struct validate_ingest in;
	struct validate_error err;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL || !json_is_object(j) || validate_ingest(j, &in, &err) != 0) {
		json_decref(j);
		return -1;
	}
	view_alloc(v, in.n);
	v->batch = in.batch;
	for (size_t i = 0; i < in.n; i++) {
		v->id[i] = dup_or_die(in.events[i].id ? in.events[i].id : "");
		v->type[i] = dup_or_die(in.events[i].type);
		v->data[i] = validate_json_text(in.events[i].data);
		if (!v->data[i])
			abort();
	}
	validate_ingest_free(&in);
	json_decref(j);
	return 0;
}

/* The fast path: 0 with the events in *v, 1 (full path needed). */
static int fast_path(const char *body, size_t len, int max_depth, struct ingest_view *v)
{
	struct validate_fast f;
	int rc = validate_ingest_fast(body, len, max_depth, &f);
	if (rc == -1)
		abort(); /* out of memory: not a finding the fuzzer should chase */
	if (rc != 0) {
		if (f.n != 0 || f.events != NULL) {
			fprintf(stderr, "fast path said 1 but left %zu events\n", f.n);
			abort();
		}
		validate_fast_free(&f);
		return rc;
	}
	view_alloc(v, f.n);
	v->batch = f.batch;
	for (size_t i = 0; i < f.n; i++) {
		v->id[i] = dup_or_die(f.events[i].id);
		v->type[i] = dup_or_die(f.events[i].type);
		v->data[i] = dup_or_die(f.events[i].data);
	}
	validate_fast_free(&f);
	return 0;
}

static void disagree(const char *what, const uint8_t *body, size_t len, const char *fast,
		     const char *full)
{
	fprintf(stderr, "fast and full paths disagree (%s)\nbody: %.*s\nfast: %s\nfull: %s\n",
		what, (int)(len > 4096 ? 4096 : len), (const char *)body, fast ? fast : "-",
		full ? full : "-");
	abort();
}

/* Nesting depth of a JSON value: arrays and objects count, the outermost
 * being level 1 ({"a":{}} is 2); a scalar is 0. */
static int tree_depth(json_t *j)
{
	int d = 0;
	if (json_is_object(j)) {
		const char *k;
		json_t *v;
		json_object_foreach(j, k, v) {
			int c = tree_depth(v);
			d = c > d ? c : d;
		}
		return d + 1;
	}
	if (json_is_array(j)) {
		size_t i;
		json_t *v;
		json_array_foreach(j, i, v) {
			int c = tree_depth(v);
			d = c > d ? c : d;
		}
		return d + 1;
	}
	return 0;
}

/* validate_json_depth on raw text agrees with the depth of jansson's tree. */
static void check_depth(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	/* Without duplicate keys: jansson keeps only a repeated key's last value,
	 * so an earlier, deeper one would be missing from the tree. */
	json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL)
		return;
	int d = tree_depth(j);
	json_decref(j);
	if (d == 0)
		return; /* a bare scalar */
	if (validate_json_depth((const char *)data, size, d) != 0)
		disagree("validate_json_depth refuses the text at its own depth", data, size, NULL,
			 NULL);
	if (d > 1 && validate_json_depth((const char *)data, size, d - 1) == 0)
		disagree("validate_json_depth takes the text one level short", data, size, NULL,
			 NULL);
}

/* The fast path at max_depth against the full path's answer. */
static void compare(const uint8_t *data, size_t size, int max_depth, int frc,
		    const struct ingest_view *full)
{
	struct ingest_view fast = {0};
	const char *body = (const char *)data;

	if (fast_path(body, size, max_depth, &fast) == 0) {
		if (validate_json_depth(body, size, max_depth) != 0)
			disagree("fast took a body nested past max_depth", data, size, NULL, NULL);
		if (frc != 0)
			disagree("fast took a body the full path refuses", data, size, NULL, NULL);
		if (fast.n != full->n || fast.batch != full->batch)
			disagree("event count or form", data, size, NULL, NULL);
		for (size_t i = 0; i < fast.n; i++) {
			if (strcmp(fast.id[i], full->id[i]) != 0)
				disagree("id", data, size, fast.id[i], full->id[i]);
			if (strcmp(fast.type[i], full->type[i]) != 0)
				disagree("event type", data, size, fast.type[i], full->type[i]);
			if (strcmp(fast.data[i], full->data[i]) != 0)
				disagree("data text", data, size, fast.data[i], full->data[i]);
		}
	}
	view_free(&fast);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ingest_view full = {0};
	int frc = full_path((const char *)data, size, &full);

	compare(data, size, 32, frc, &full);          /* --max-json-depth's default */
	compare(data, size, 2 + (int)(size % 5), frc, &full);
	check_depth(data, size);

	/* The stored text must read back as the same JSON value. */
	for (size_t i = 0; i < full.n; i++) {
		json_error_t jerr;
		json_t *back = json_loads(full.data[i], JSON_REJECT_DUPLICATES, &jerr);
		if (back == NULL || !json_is_object(back))
			disagree("data text does not read back as an object", data, size, NULL,
				 full.data[i]);
		char *again = validate_json_text(back);
		if (again == NULL)
			abort();
		if (strcmp(again, full.data[i]) != 0)
			disagree("data text is not a fixed point", data, size, again, full.data[i]);
		free(again);
		json_decref(back);
	}
	view_free(&full);
	return 0;
}
