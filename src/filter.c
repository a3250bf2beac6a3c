/* filter: compile a filters object into a flat list of conditions, then
 * evaluate them against event data. See filter.h for the language. */
#include "filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum filter_op { OP_EQ, OP_NE, OP_GT, OP_GE, OP_LT, OP_LE, OP_IN };

static const char *const op_names[] = {"=", "!=", ">", ">=", "<", "<=", "in"};
#define N_OPS (sizeof op_names / sizeof op_names[0])

struct condition {
	char *path[FILTER_PATH_DEPTH]; /* split once at compile time */
	size_t depth;
	enum filter_op op;
	json_t *operand;               /* a scalar, or an array for OP_IN */
};

struct filter {
	struct condition *conds;
	size_t n;
};

static void cond_clear(struct condition *c)
{
	for (size_t i = 0; i < c->depth; i++)
		free(c->path[i]);
	json_decref(c->operand);
}

void filter_free(struct filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		cond_clear(&f->conds[i]);
	free(f->conds);
	free(f);
}

static bool is_scalar(const json_t *v)
{
	return json_is_string(v) || json_is_number(v) || json_is_boolean(v) || json_is_null(v);
}

/* Splits "a.b.0" into segments. Returns 0 or -1 with a reason. */
static int split_path(const char *key, struct condition *c, char *msg, size_t msglen)
{
	size_t len = strlen(key);
	if (len == 0 || len > FILTER_PATH_MAX) {
		snprintf(msg, msglen, "a filter path must be 1..%d characters", FILTER_PATH_MAX);
		return -1;
	}
	const char *p = key;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t seg = dot ? (size_t)(dot - p) : strlen(p);
		if (seg == 0) {
			snprintf(msg, msglen, "a filter path has an empty segment");
			return -1;
		}
		if (c->depth == FILTER_PATH_DEPTH) {
			snprintf(msg, msglen, "a filter path has at most %d segments", FILTER_PATH_DEPTH);
			return -1;
		}
		c->path[c->depth] = strndup(p, seg);
		if (!c->path[c->depth]) {
			snprintf(msg, msglen, "out of memory");
			return -1;
		}
		c->depth++;
		if (!dot)
			return 0;
		p = dot + 1;
	}
}

static int check_operand(enum filter_op op, json_t *v, char *msg, size_t msglen)
{
	if (op == OP_IN) {
		if (!json_is_array(v) || json_array_size(v) == 0 ||
		    json_array_size(v) > FILTER_LIST_MAX) {
			snprintf(msg, msglen, "\"in\" takes a list of 1..%d values", FILTER_LIST_MAX);
			return -1;
		}
		size_t i;
		json_t *item;
		json_array_foreach(v, i, item) {
			if (check_operand(OP_EQ, item, msg, msglen) != 0)
				return -1;
		}
		return 0;
	}
	if (!is_scalar(v)) {
		snprintf(msg, msglen, "a condition compares with a string, number, boolean or null");
		return -1;
	}
	if (json_is_string(v) && json_string_length(v) > FILTER_STRING_MAX) {
		snprintf(msg, msglen, "a filter string is at most %d bytes", FILTER_STRING_MAX);
		return -1;
	}
	if (op >= OP_GT && op <= OP_LE && !json_is_number(v) && !json_is_string(v)) {
		snprintf(msg, msglen, "\"%s\" compares with a number or a string", op_names[op]);
		return -1;
	}
	return 0;
}

/* Appends one condition; takes a new reference to operand. */
static int add_cond(struct filter *f, const char *key, enum filter_op op, json_t *operand,
		    char *msg, size_t msglen)
{
	if (f->n == FILTER_CONDITIONS_MAX) {
		snprintf(msg, msglen, "at most %d filter conditions", FILTER_CONDITIONS_MAX);
		return -1;
	}
	if (check_operand(op, operand, msg, msglen) != 0)
		return -1;
	struct condition *c = &f->conds[f->n];
	memset(c, 0, sizeof *c);
	if (split_path(key, c, msg, msglen) != 0) {
		cond_clear(c);
		return -1;
	}
	c->op = op;
	c->operand = json_incref(operand);
	f->n++;
	return 0;
}

int filter_compile(json_t *filters, struct filter **out, char *field, size_t fieldlen, char *msg,
		   size_t msglen)
{
	*out = NULL;
	if (!json_is_object(filters)) {
		snprintf(field, fieldlen, "filters");
		snprintf(msg, msglen, "filters must be an object");
		return -1;
	}
	struct filter *f = calloc(1, sizeof *f);
	if (f)
		f->conds = calloc(FILTER_CONDITIONS_MAX, sizeof *f->conds);
	if (!f || !f->conds) {
		free(f);
		snprintf(field, fieldlen, "filters");
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	const char *key;
	json_t *v;
	json_object_foreach(filters, key, v) {
		if (strcmp(key, "events") == 0)
			continue;
		snprintf(field, fieldlen, "filters.%s", key);
		int rc;
		if (json_is_array(v)) {
			rc = add_cond(f, key, OP_IN, v, msg, msglen);
		} else if (json_is_object(v)) {
			if (json_object_size(v) == 0) {
				snprintf(msg, msglen, "an operator object needs at least one operator");
				rc = -1;
			} else {
				rc = 0;
				const char *opname;
				json_t *operand;
				json_object_foreach(v, opname, operand) {
					size_t op = 0;
					while (op < N_OPS && strcmp(op_names[op], opname) != 0)
						op++;
					if (op == N_OPS) {
						snprintf(field, fieldlen, "filters.%s.%s", key, opname);
						snprintf(msg, msglen,
							 "unknown operator (use =, !=, >, >=, <, <= or in)");
						rc = -1;
						break;
					}
					rc = add_cond(f, key, (enum filter_op)op, operand, msg, msglen);
					if (rc != 0) {
						snprintf(field, fieldlen, "filters.%s.%s", key, opname);
						break;
					}
				}
			}
		} else {
			rc = add_cond(f, key, OP_EQ, v, msg, msglen);
		}
		if (rc != 0) {
			filter_free(f);
			return -1;
		}
	}
	if (f->n == 0) {
		filter_free(f);
		return 0;
	}
	*out = f;
	return 0;
}

/* Follows the path through objects (by key) and arrays (by decimal index). */
static json_t *lookup(json_t *data, const struct condition *c)
{
	json_t *v = data;
	for (size_t i = 0; i < c->depth && v; i++) {
		if (json_is_object(v)) {
			v = json_object_get(v, c->path[i]);
		} else if (json_is_array(v)) {
			char *end;
			unsigned long idx = strtoul(c->path[i], &end, 10);
			v = (*end || c->path[i][0] < '0' || c->path[i][0] > '9') ? NULL
									      : json_array_get(v, idx);
		} else {
			return NULL;
		}
	}
	return v;
}

static bool scalar_equal(json_t *a, json_t *b)
{
	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	return json_equal(a, b) == 1 && is_scalar(a);
}

/* -1, 0, 1 for an ordered pair; 2 when the pair has no order. */
static int compare(json_t *a, json_t *b)
{
	if (json_is_number(a) && json_is_number(b)) {
		double x = json_number_value(a), y = json_number_value(b);
		return x < y ? -1 : x > y ? 1 : 0;
	}
	if (json_is_string(a) && json_is_string(b)) {
		size_t la = json_string_length(a), lb = json_string_length(b);
		int c = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
		if (c == 0)
			c = la < lb ? -1 : la > lb ? 1 : 0;
		return c < 0 ? -1 : c > 0 ? 1 : 0;
	}
	return 2;
}

static bool cond_holds(const struct condition *c, json_t *data)
{
	json_t *v = lookup(data, c);
	if (!v)
		return c->op == OP_NE;
	int cmp;
	switch (c->op) {
	case OP_EQ:
		return scalar_equal(v, c->operand);
	case OP_NE:
		return !scalar_equal(v, c->operand);
	case OP_IN: {
		size_t i;
		json_t *item;
		json_array_foreach(c->operand, i, item) {
			if (scalar_equal(v, item))
				return true;
		}
		return false;
	}
	case OP_GT:
		cmp = compare(v, c->operand);
		return cmp == 1;
	case OP_GE:
		cmp = compare(v, c->operand);
		return cmp == 1 || cmp == 0;
	case OP_LT:
		cmp = compare(v, c->operand);
		return cmp == -1;
	case OP_LE:
		cmp = compare(v, c->operand);
		return cmp == -1 || cmp == 0;
	}
	return false;
}

bool filter_match(const struct filter *f, json_t *data)
{
	if (!f)
		return true;
	for (size_t i = 0; i < f->n; i++) {
		if (!cond_holds(&f->conds[i], data))
			return false;
	}
	return true;
}
