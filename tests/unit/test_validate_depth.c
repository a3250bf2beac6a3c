/* --max-json-depth: validate_json_depth on raw text, and the ingest fast
 * path, which must leave a body nested past the limit to the full path (the
 * API then refuses it with validate_json_depth's answer). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"

Test(validate_depth, table)
{
	static const struct {
		const char *text;
		int depth; /* the smallest max that passes */
	} cases[] = {
		{"1", 0},
		{"\"{[{[\"", 0},
		{"{}", 1},
		{"[]", 1},
		{"{\"a\":{}}", 2},
		{"{\"a\":[1,{\"b\":[]}]}", 4},
		{"{\"a\":[],\"b\":{},\"c\":[[]]}", 3},
		/* Brackets inside strings, escaped quotes and backslashes. */
		{"{\"k\":\"[[[{{{\"}", 1},
		{"{\"k\":\"\\\"[[[\"}", 1},
		{"{\"k\":\"\\\\\",\"j\":[[]]}", 3},
		{"{\"k\":\"\\u005b\"}", 1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *t = cases[i].text;
		int d = cases[i].depth;
		cr_expect_eq(validate_json_depth(t, strlen(t), d), 0, "%s at %d", t, d);
		if (d > 0)
			cr_expect_eq(validate_json_depth(t, strlen(t), d - 1), -1, "%s at %d", t,
				     d - 1);
	}
}

/* {"event":"a","data":{"k":{"k":...1...}}}: a body nesting `depth` levels
 * (the body itself is 1, data 2). */
static char *single_body(int depth)
{
	size_t cap = 64 + (size_t)depth * 8;
	char *s = malloc(cap);
	cr_assert_not_null(s);
	strcpy(s, "{\"event\":\"a\",\"data\":");
	for (int i = 2; i <= depth; i++)
		strcat(s, i == depth ? "{}" : "{\"k\":");
	for (int i = 2; i < depth; i++)
		strcat(s, "}");
	strcat(s, "}");
	return s;
}

/* {"events":[{"event":"a","data":{...}}]}: the data object is level 4. */
static char *batch_body(int depth)
{
	char *inner = single_body(depth - 2);
	char *s = malloc(strlen(inner) + 32);
	cr_assert_not_null(s);
	sprintf(s, "{\"events\":[%s]}", inner);
	free(inner);
	return s;
}

/* The fast path's answer, checked against validate_json_depth and the full
 * path: it takes the body only if both would. */
static int fast(const char *body, int max)
{
	struct validate_fast v;
	int rc = validate_ingest_fast(body, strlen(body), max, &v);
	if (rc == 0) {
		json_error_t jerr;
		struct validate_ingest full;
		struct validate_error err;
		cr_assert_eq(validate_json_depth(body, strlen(body), max), 0, "%s", body);
		json_t *j = json_loads(body, JSON_REJECT_DUPLICATES, &jerr);
		cr_assert_not_null(j, "%s", body);
		cr_assert_eq(validate_ingest(j, &full, &err), 0, "%s", body);
		validate_ingest_free(&full);
		json_decref(j);
	}
	validate_fast_free(&v);
	return rc;
}

Test(validate_depth, fast_path_at_and_past_the_limit)
{
	for (int max = 2; max <= 33; max++) {
		char *at = single_body(max), *past = single_body(max + 1);
		cr_expect_eq(validate_json_depth(at, strlen(at), max), 0, "%s", at);
		cr_expect_eq(validate_json_depth(past, strlen(past), max), -1, "%s", past);
		/* The fast path takes up to 32 levels inside data. */
		cr_expect_eq(fast(at, max), max - 1 <= 32 ? 0 : 1, "max %d: %s", max, at);
		cr_expect_eq(fast(past, max), 1, "max %d: %s", max, past);
		free(at);
		free(past);
	}
	for (int max = 4; max <= 20; max++) {
		char *at = batch_body(max), *past = batch_body(max + 1);
		cr_expect_eq(validate_json_depth(at, strlen(at), max), 0, "%s", at);
		cr_expect_eq(validate_json_depth(past, strlen(past), max), -1, "%s", past);
		cr_expect_eq(fast(at, max), 0, "max %d: %s", max, at);
		cr_expect_eq(fast(past, max), 1, "max %d: %s", max, past);
		free(at);
		free(past);
	}
	/* A batch cannot fit in fewer than 4 levels. */
	const char *b = "{\"events\":[{\"event\":\"a\",\"data\":{}}]}";
	cr_expect_eq(fast(b, 3), 1);
	cr_expect_eq(validate_json_depth(b, strlen(b), 3), -1);
}
