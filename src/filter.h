/* filter: an endpoint's conditions on an event's data (docs/api.md#filters), compiled
 * once when the endpoint is saved and evaluated at fan-out. Pure: no store,
 * no locks.
 *
 * A filters object holds conditions that must all hold. Each key but
 * "events" is a dot path into the event's `data` ("media.status",
 * "labels.0"); its value is
 *   - a list: the data value equals one of its items (membership),
 *   - a scalar (string, number, bool, null): the data value equals it,
 *   - an operator object {"=","!=",">",">=","<","<=","in"}: every operator holds.
 * Equality is by JSON type and value (1 equals 1.0, never "1"). Ordering
 * compares two numbers or two strings (bytewise, so ISO 8601 times order);
 * other pairs never match. A missing path fails every operator but "!=",
 * which holds (the value is not equal to anything), as in MongoDB. */
#ifndef HOOKD_FILTER_H
#define HOOKD_FILTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define FILTER_CONDITIONS_MAX 32
#define FILTER_PATH_MAX 256
#define FILTER_PATH_DEPTH 8
#define FILTER_LIST_MAX 256
#define FILTER_STRING_MAX 1024

struct filter;

/* Compiles `filters` (a JSON object; "events" is skipped here: the caller
 * treats it as the endpoint's event list). Returns 0 and a new filter in
 * *out (NULL when there is no condition), or -1 with the offending key path
 * ("filters.confidence.>=") in field and a reason in msg. */
int filter_compile(json_t *filters, struct filter **out, char *field, size_t fieldlen, char *msg,
		   size_t msglen);

/* True if every condition holds for `data` (an event's data object). A NULL
 * filter matches everything. */
bool filter_match(const struct filter *f, json_t *data);

void filter_free(struct filter *f);

#endif
