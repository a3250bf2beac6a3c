/* client_print: tables and views for hookd's API client (client_print.h). */
#include "client_print.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int cp_table_init(struct cp_table *t, size_t ncols, const char *const *headers)
{
	memset(t, 0, sizeof *t);
	t->ncols = ncols;
	t->cell_max = CP_CELL_MAX;
	return cp_table_add(t, headers);
}

/* A copy of s with control characters replaced by '?', cut at max bytes
 * (on a UTF-8 boundary) with "...". */
static char *cell_copy(const char *s, size_t max)
{
	size_t n = strlen(s), cut = n > max ? max : n;
	while (cut < n && cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
		cut--;
	char *out = malloc(cut + 4);
	if (!out)
		return NULL;
	for (size_t i = 0; i < cut; i++) {
		unsigned char ch = (unsigned char)s[i];
		out[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	strcpy(out + cut, cut < n ? "..." : "");
	return out;
}

int cp_table_add(struct cp_table *t, const char *const *cells)
{
	char **grown = array_grow(t->cells, &t->cap, (t->nrows + 1) * t->ncols, sizeof *t->cells,
				  16 * t->ncols);
	if (!grown)
		return -1;
	t->cells = grown;
	char **row = t->cells + t->nrows * t->ncols;
	for (size_t i = 0; i < t->ncols; i++) {
		row[i] = cell_copy(cells[i] ? cells[i] : "-", t->cell_max);
		if (!row[i]) {
			while (i-- > 0)
				free(row[i]);
			return -1;
		}
	}
	t->nrows++;
	return 0;
}

/* Characters shown for s: UTF-8 continuation bytes take no column. */
static size_t width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xC0) != 0x80;
	return w;
}

void cp_table_print(const struct cp_table *t, FILE *f)
{
	size_t w[32] = {0};
	size_t nc = t->ncols < 32 ? t->ncols : 32;
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < nc; c++) {
			size_t cw = width(t->cells[r * t->ncols + c]);
			w[c] = cw > w[c] ? cw : w[c];
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < nc; c++) {
			const char *s = t->cells[r * t->ncols + c];
			if (c + 1 == nc)
				fprintf(f, "%s\n", s);
			else
				fprintf(f, "%s%*s", s, (int)(w[c] - width(s) + 2), "");
		}
	}
}

void cp_table_free(struct cp_table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof *t);
}

void cp_time(const char *s, bool with_ms, char out[40])
{
	int64_t ms;
	if (!s) {
		strcpy(out, "-");
		return;
	}
	if (rfc3339_parse(s, &ms) != 0) {
		snprintf(out, 40, "%s", s);
		return;
	}
	rfc3339_format(ms, out); /* "2026-11-27T13:02:31.123Z" */
	if (!with_ms && strlen(out) == 24)
		strcpy(out + 19, "Z");
}

static bool is_time_key(const char *key)
{
	size_t n = key ? strlen(key) : 0;
	return n > 0 && (strcmp(key, "at") == 0 || (n > 3 && strcmp(key + n - 3, "_at") == 0) ||
			 (n > 6 && strcmp(key + n - 6, "_until") == 0) || strcmp(key, "t") == 0);
}

/* An array of strings joined with ','; false if it holds anything else. */
static bool join_strings(json_t *arr, char *out, size_t outlen)
{
	size_t i, j = 0;
	json_t *it;
	out[0] = 0;
	json_array_foreach(arr, i, it) {
		if (!json_is_string(it))
			return false;
	}
	json_array_foreach(arr, i, it) {
		int n = snprintf(out + j, outlen - j, "%s%s", i ? "," : "", json_string_value(it));
		if (n < 0 || (size_t)n >= outlen - j)
			break;
		j += (size_t)n;
	}
	return true;
}

void cp_value(const char *key, json_t *v, bool short_time, char *out, size_t outlen)
{
	char t[40];
	if (!v || json_is_null(v)) {
		snprintf(out, outlen, "-");
	} else if (json_is_string(v) && is_time_key(key)) {
		cp_time(json_string_value(v), !short_time, t);
		snprintf(out, outlen, "%s", t);
	} else if (json_is_string(v)) {
		snprintf(out, outlen, "%s", json_string_value(v));
	} else if (json_is_integer(v)) {
		snprintf(out, outlen, "%lld", (long long)json_integer_value(v));
	} else if (json_is_real(v)) {
		snprintf(out, outlen, "%g", json_real_value(v));
	} else if (json_is_boolean(v)) {
		snprintf(out, outlen, "%s", json_is_true(v) ? "true" : "false");
	} else if (!(json_is_array(v) && json_array_size(v) > 0 && join_strings(v, out, outlen))) {
		char *dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		snprintf(out, outlen, "%s", dump ? dump : "?");
		free(dump);
	}
}

/* "name: value" for each key of obj in order, then any key not named
 * (a newer server's), skipping the keys in skip. */
static void kv(FILE *f, json_t *obj, const char *const *order, const char *const *skip)
{
	struct cp_table t;
	const char *key;
	json_t *v;
	char *val = malloc(CP_VIEW_MAX);
	if (!val || cp_table_init(&t, 2, (const char *const[]){"", ""}) != 0) {
		free(val);
		return;
	}
	t.cell_max = CP_VIEW_MAX;
	for (size_t i = 0; order[i]; i++) {
		if (!(v = json_object_get(obj, order[i])))
			continue;
		cp_value(order[i], v, false, val, CP_VIEW_MAX);
		char label[64];
		snprintf(label, sizeof label, "%s:", order[i]);
		cp_table_add(&t, (const char *const[]){label, val});
	}
	json_object_foreach(obj, key, v) {
		bool known = false;
		for (size_t i = 0; order[i] && !known; i++)
			known = strcmp(order[i], key) == 0;
		for (size_t i = 0; skip && skip[i] && !known; i++)
			known = strcmp(skip[i], key) == 0;
		if (known)
			continue;
		cp_value(key, v, false, val, CP_VIEW_MAX);
		char label[64];
		snprintf(label, sizeof label, "%.60s:", key);
		cp_table_add(&t, (const char *const[]){label, val});
	}
	/* Row 0 is the empty header: print from row 1. */
	struct cp_table body = t;
	body.cells += 2;
	body.nrows--;
	cp_table_print(&body, f);
	cp_table_free(&t);
	free(val);
}

void cp_endpoint(FILE *f, json_t *ep)
{
	static const char *const order[] = {
		"id", "url", "description", "events", "enabled", "disabled_reason", "signing",
		"secret", "public_key", "secret_previous_until", "filters", "headers", "rate_limit",
		"max_in_flight", "batch", "signatures", "circuit", "next_probe_at", "paused_until", "created_at",
		"updated_at", NULL};
	kv(f, ep, order, NULL);
}

static void list_table(FILE *f, json_t *data, size_t ncols, const char *const *heads,
		       const char *const *keys);

/* A table of the "deliveries" of an event or an ingest answer. */
static void delivery_refs(FILE *f, json_t *list)
{
	if (!json_is_array(list))
		return;
	fputs("\ndeliveries:\n", f);
	if (json_array_size(list) == 0) {
		fputs("(none: no endpoint matched)\n", f);
		return;
	}
	/* An ingest's answer lists only ids; an event's, whole Deliveries. */
	if (json_object_get(json_array_get(list, 0), "status")) {
		cp_deliveries(f, list);
		return;
	}
	static const char *const h[] = {"ID", "ENDPOINT"}, *const k[] = {"id", "endpoint_id"};
	list_table(f, list, 2, h, k);
}

void cp_event(FILE *f, json_t *ev)
{
	static const char *const order[] = {"id", "event", "created_at", "duplicate",
					    "deliveries_count", "deliveries_truncated", "data",
					    NULL};
	static const char *const skip[] = {"deliveries", NULL};
	kv(f, ev, order, skip);
	delivery_refs(f, json_object_get(ev, "deliveries"));
}

static void attempts_table(FILE *f, json_t *list)
{
	struct cp_table t;
	static const char *const h[] = {"#", "AT", "STATUS", "DURATION", "ERROR", "REMOTE", "URL"};
	if (cp_table_init(&t, 7, h) != 0)
		return;
	size_t i;
	json_t *a;
	json_array_foreach(list, i, a) {
		char n[24], at[40], st[24], dur[32], err[512], ip[64], url[512];
		cp_value(NULL, json_object_get(a, "attempt"), true, n, sizeof n);
		cp_value("at", json_object_get(a, "at"), false, at, sizeof at);
		cp_value(NULL, json_object_get(a, "status"), true, st, sizeof st);
		json_t *d = json_object_get(a, "duration_ms");
		snprintf(dur, sizeof dur, json_is_integer(d) ? "%lld ms" : "-",
			 (long long)json_integer_value(d));
		json_t *e = json_object_get(a, "error");
		cp_value(NULL, json_object_get(e, "message"), true, err, sizeof err);
		cp_value(NULL, json_object_get(a, "remote_ip"), true, ip, sizeof ip);
		cp_value(NULL, json_object_get(a, "url"), true, url, sizeof url);
		cp_table_add(&t, (const char *const[]){n, at, st, dur, err, ip, url});
	}
	cp_table_print(&t, f);
	cp_table_free(&t);
}

void cp_delivery(FILE *f, json_t *d)
{
	static const char *const order[] = {
		"id", "event_id", "endpoint_id", "event", "status", "attempt_count",
		"next_attempt_at", "last_status", "last_error", "batch_id", "created_at",
		"updated_at", NULL};
	static const char *const skip[] = {"attempts", NULL};
	kv(f, d, order, skip);
	json_t *att = json_object_get(d, "attempts");
	if (json_is_array(att)) {
		fputs("\nattempts:\n", f);
		if (json_array_size(att) == 0)
			fputs("(none yet)\n", f);
		else
			attempts_table(f, att);
	}
}

void cp_accepted(FILE *f, json_t *body)
{
	json_t *events = json_object_get(body, "events");
	if (!json_is_array(events)) {
		cp_event(f, body);
		return;
	}
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev) {
		if (i)
			fputc('\n', f);
		cp_event(f, ev);
	}
}

/* One table row per element of data, cells from keys (NULL key: empty). */
static void list_table(FILE *f, json_t *data, size_t ncols, const char *const *heads,
		       const char *const *keys)
{
	struct cp_table t;
	if (cp_table_init(&t, ncols, heads) != 0)
		return;
	size_t i;
	json_t *it;
	json_array_foreach(data, i, it) {
		char vals[8][4 * CP_CELL_MAX]; /* longer than a cell: cp_table_add cuts it with "..." */
		const char *row[8];
		for (size_t c = 0; c < ncols && c < 8; c++) {
			json_t *v = json_object_get(it, keys[c]);
			/* A delivery's LAST: the last status, else the last failure code. */
			if (strcmp(keys[c], "last_status") == 0 && json_is_null(v))
				v = json_object_get(it, "last_error");
			cp_value(keys[c], v, true, vals[c], sizeof vals[c]);
			row[c] = vals[c];
		}
		cp_table_add(&t, row);
	}
	cp_table_print(&t, f);
	cp_table_free(&t);
}

void cp_endpoints(FILE *f, json_t *data)
{
	static const char *const h[] = {"ID", "URL", "EVENTS", "ENABLED", "CIRCUIT", "CREATED",
					"DESCRIPTION"};
	static const char *const k[] = {"id", "url", "events", "enabled", "circuit", "created_at",
					"description"};
	list_table(f, data, 7, h, k);
}

void cp_events(FILE *f, json_t *data)
{
	static const char *const h[] = {"ID", "TYPE", "CREATED", "DATA"};
	static const char *const k[] = {"id", "event", "created_at", "data"};
	list_table(f, data, 4, h, k);
}

void cp_deliveries(FILE *f, json_t *data)
{
	static const char *const h[] = {"ID", "EVENT", "ENDPOINT", "STATUS", "ATTEMPTS", "LAST",
					"NEXT ATTEMPT", "CREATED"};
	static const char *const k[] = {"id", "event", "endpoint_id", "status", "attempt_count",
					"last_status", "next_attempt_at", "created_at"};
	list_table(f, data, 8, h, k);
}
