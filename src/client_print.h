/* client_print: the human output of hookd's API client (docs/cli.md):
 * aligned tables and "name: value" views of the API's objects, times as
 * ISO 8601 UTC. Text from the server is printed with control characters
 * replaced, so a description cannot drive the terminal. --json output does
 * not come through here: it is the API's body, unchanged. */
#ifndef HOOKD_CLIENT_PRINT_H
#define HOOKD_CLIENT_PRINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#define CP_CELL_MAX 256     /* longest table cell, in bytes, before it is cut with "..." */
#define CP_VIEW_MAX 65536   /* longest value of a single object's view */

/* A table of text cells; row 0 is the header. */
struct cp_table {
	size_t ncols, nrows, cap;
	size_t cell_max; /* cut cells past this many bytes (cp_table_init: CP_CELL_MAX) */
	char **cells;    /* nrows * ncols, each malloc'd */
};

/* Starts a table with its header. Returns 0, or -1 out of memory. */
int cp_table_init(struct cp_table *t, size_t ncols, const char *const *headers);
/* Adds a row of ncols cells (copied, sanitized, cut past t->cell_max; NULL
 * prints "-"). Returns 0, or -1 out of memory. */
int cp_table_add(struct cp_table *t, const char *const *cells);
/* Prints the table with each column as wide as its widest cell, two spaces
 * between columns, no trailing blanks. */
void cp_table_print(const struct cp_table *t, FILE *f);
void cp_table_free(struct cp_table *t);

/* The API time s ("2026-11-27T13:02:31.123Z") as ISO 8601 UTC, to the
 * second unless with_ms; "-" for NULL; s as it is if it is not a time. */
void cp_time(const char *s, bool with_ms, char out[40]);

/* A JSON value as a cell: strings as they are (times, by the key's name,
 * through cp_time), numbers, true/false, "-" for null or missing, an array
 * of strings joined with ',', anything else as compact JSON. Writes at most
 * outlen - 1 bytes. */
void cp_value(const char *key, json_t *v, bool short_time, char *out, size_t outlen);

/* Views of one object: every field as "name: value" in the API's order
 * (nested lists as tables below it). */
void cp_endpoint(FILE *f, json_t *ep);
void cp_event(FILE *f, json_t *ev);
void cp_delivery(FILE *f, json_t *d);
/* The answer to an ingest, a test or a replay: the event id(s) and the
 * deliveries made; {"events": [...]} too. */
void cp_accepted(FILE *f, json_t *body);

/* Tables of a list's "data" array. */
void cp_endpoints(FILE *f, json_t *data);
void cp_events(FILE *f, json_t *data);
void cp_deliveries(FILE *f, json_t *data);

#endif
