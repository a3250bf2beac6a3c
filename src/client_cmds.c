/* client_cmds: the API client's verbs (client_internal.h): each builds its
 * request from the options, calls the route docs/api.md describes, and
 * prints the answer (client_print.c, or the body unchanged with --json). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "client_print.h"

#define PATH_MAX_BYTES 16384
#define LIST_MAX_PAGES 100   /* --all follows next_cursor this many pages at most */
#define LIST_ALL_LIMIT "1000" /* --all's page size unless --limit */
#define JSON_FILE_MAX (16 << 20) /* --data @PATH: the largest file read */

typedef void (*view_fn)(FILE *f, json_t *body);

static int oom(const struct cmd_args *a)
{
	fprintf(stderr, "%s: out of memory\n", a->prog);
	return CLIENT_EXIT_API;
}

/* path = base [+ escaped id + suffix]. Returns 0 or -1. */
static int make_path(struct dynbuf *p, const char *base, const char *id, const char *suffix)
{
	dynbuf_init(p, PATH_MAX_BYTES);
	if (dynbuf_append(p, base, strlen(base)) != 0)
		return -1;
	if (id && (client_path_add_id(p, id) != 0 || dynbuf_append(p, suffix, strlen(suffix)) != 0))
		return -1;
	return 0;
}

/* Prints the body as it came, ending in a newline (nothing for none). */
static void print_raw(const struct client_resp *r)
{
	if (r->body.len == 0)
		return;
	fwrite(r->body.data, 1, r->body.len, stdout);
	if (r->body.data[r->body.len - 1] != '\n')
		putchar('\n');
}

/* The answer: unchanged with --json, else through view (NULL: nothing). */
static int emit(const struct cmd_args *a, const struct client_resp *r, view_fn view)
{
	if (a->json) {
		print_raw(r);
		return CLIENT_EXIT_OK;
	}
	if (!view)
		return CLIENT_EXIT_OK;
	if (!json_is_object(r->json)) {
		fprintf(stderr, "%s: the answer (HTTP %ld) is not a JSON object\n", a->prog,
			r->status);
		return CLIENT_EXIT_API;
	}
	view(stdout, r->json);
	return CLIENT_EXIT_OK;
}

/* One request with body (NULL: none) and its answer printed by view. */
static int call_view(struct client *c, struct cmd_args *a, const char *method, struct dynbuf *path,
		     json_t *body, view_fn view)
{
	struct client_resp r;
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (body && !text)
		return oom(a);
	int rc = client_call(c, method, path->data, text, &r);
	if (rc == CLIENT_EXIT_OK)
		rc = emit(a, &r, view);
	client_resp_free(&r);
	free(text);
	return rc;
}

/* A GET/DELETE/POST of base/ID[suffix] without a body. */
static int call_id(struct client *c, struct cmd_args *a, const char *method, const char *base,
		   const char *suffix, view_fn view)
{
	struct dynbuf p;
	int rc = make_path(&p, base, a->pos, suffix) == 0 ? call_view(c, a, method, &p, NULL, view)
							    : oom(a);
	dynbuf_free(&p);
	return rc;
}

/* --since/--until: RFC 3339 as given, or a duration before now. */
static const char *time_arg(const char *val, char buf[32])
{
	int64_t ms;
	if (val && duration_parse_ms(val, &ms) == 0) {
		rfc3339_format(now_ms() - ms, buf);
		return buf;
	}
	return val;
}

/* Reads "@PATH" (or "@-": stdin) into b, at most JSON_FILE_MAX bytes.
 * Returns 0, or exit 2 after a message. */
static int read_at_file(const struct cmd_args *a, const char *flag, const char *path,
			struct dynbuf *b)
{
	char chunk[65536];
	size_t n;
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (!f)
		return cmd_usage_error(a, "--%s @%s: %s", flag, path, strerror(errno));
	int rc = 0;
	while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (dynbuf_append(b, chunk, n) != 0)
			rc = cmd_usage_error(a, "--%s @%s: larger than %d MiB", flag, path,
					     JSON_FILE_MAX >> 20);
	if (rc == 0 && ferror(f))
		rc = cmd_usage_error(a, "--%s @%s: cannot read it", flag, path);
	if (f != stdin)
		fclose(f);
	return rc;
}

/* Parses a JSON option into *out: the text itself, or "@PATH" / "@-" for a
 * file or stdin. Returns 0, or exit 2 after a message. */
static int json_arg(const struct cmd_args *a, const char *flag, const char *text, json_t **out)
{
	json_error_t err;
	struct dynbuf b;
	dynbuf_init(&b, JSON_FILE_MAX);
	*out = NULL;
	if (text[0] == '@') {
		int rc = read_at_file(a, flag, text + 1, &b);
		if (rc != 0) {
			dynbuf_free(&b);
			return rc;
		}
		*out = json_loadb(b.data ? b.data : "", b.len, JSON_DECODE_ANY, &err);
	} else {
		*out = json_loads(text, JSON_DECODE_ANY, &err);
	}
	dynbuf_free(&b);
	if (*out)
		return 0;
	return cmd_usage_error(a, "--%s is not valid JSON: %s (line %d, column %d)", flag, err.text,
			       err.line, err.column);
}

/* ---- lists ---- */

/* One page: the body unchanged with --json, else a table and, when there is
 * more, the cursor of the next page on stderr. */
static int list_one(struct client *c, struct cmd_args *a, struct dynbuf *p, view_fn table)
{
	char lim[16];
	snprintf(lim, sizeof lim, "%d", a->limit);
	if ((a->limit && client_query_add(p, "limit", lim) != 0) ||
	    client_query_add(p, "cursor", a->cursor) != 0)
		return oom(a);
	struct client_resp r;
	int rc = client_call(c, "GET", p->data, NULL, &r);
	json_t *data = json_object_get(r.json, "data");
	if (rc == CLIENT_EXIT_OK && a->json) {
		print_raw(&r);
	} else if (rc == CLIENT_EXIT_OK && !json_is_array(data)) {
		fprintf(stderr, "%s: the answer has no \"data\" list\n", a->prog);
		rc = CLIENT_EXIT_API;
	} else if (rc == CLIENT_EXIT_OK) {
		table(stdout, data);
		const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
		if (next)
			fprintf(stderr, "more: --all, or the next page with --cursor %s\n", next);
	}
	client_resp_free(&r);
	return rc;
}

/* Fetches one page of base (its filters in the query) into merged; *next
 * becomes the page's next_cursor (malloc'd) or NULL. */
static int list_page(struct client *c, struct cmd_args *a, const struct dynbuf *base,
		     json_t *merged, char **next)
{
	struct dynbuf p;
	struct client_resp r;
	char lim[16];
	snprintf(lim, sizeof lim, "%d", a->limit);
	make_path(&p, "", NULL, NULL);
	const char *cur = *next ? *next : a->cursor;
	if (dynbuf_append(&p, base->data, base->len) != 0 ||
	    client_query_add(&p, "limit", a->limit ? lim : LIST_ALL_LIMIT) != 0 ||
	    client_query_add(&p, "cursor", cur) != 0) {
		dynbuf_free(&p);
		return oom(a);
	}
	int rc = client_call(c, "GET", p.data, NULL, &r);
	dynbuf_free(&p);
	json_t *data = json_object_get(r.json, "data");
	if (rc == CLIENT_EXIT_OK && !json_is_array(data)) {
		fprintf(stderr, "%s: the answer has no \"data\" list\n", a->prog);
		rc = CLIENT_EXIT_API;
	}
	free(*next);
	*next = NULL;
	if (rc == CLIENT_EXIT_OK) {
		const char *nc = json_string_value(json_object_get(r.json, "next_cursor"));
		if (json_array_extend(merged, data) != 0 || (nc && !(*next = strdup(nc))))
			rc = oom(a);
	}
	client_resp_free(&r);
	return rc;
}

/* --all: follows next_cursor up to LIST_MAX_PAGES pages and prints one
 * list ({"data": [...], "next_cursor": where it stopped or null}). */
static int list_all(struct client *c, struct cmd_args *a, const struct dynbuf *base,
		    view_fn table)
{
	json_t *merged = json_array();
	char *next = NULL;
	int rc = merged ? CLIENT_EXIT_OK : oom(a), pages = 0;
	while (rc == CLIENT_EXIT_OK && pages < LIST_MAX_PAGES) {
		rc = list_page(c, a, base, merged, &next);
		pages++;
		if (!next)
			break;
	}
	if (rc == CLIENT_EXIT_OK && next)
		fprintf(stderr, "%s: stopped after %d pages; go on with --cursor %s\n", a->prog,
			pages, next);
	if (rc == CLIENT_EXIT_OK && a->json) {
		json_t *out = json_pack("{s:O,s:s?}", "data", merged, "next_cursor", next);
		char *text = out ? json_dumps(out, CLIENT_JSON_FLAGS) : NULL;
		if (text)
			puts(text);
		else
			rc = oom(a);
		free(text);
		json_decref(out);
	} else if (rc == CLIENT_EXIT_OK) {
		table(stdout, merged);
	}
	json_decref(merged);
	free(next);
	return rc;
}

/* A list route: base holds the route and its filters. */
static int list_run(struct client *c, struct cmd_args *a, struct dynbuf *base, view_fn table)
{
	int rc = a->all ? list_all(c, a, base, table) : list_one(c, a, base, table);
	dynbuf_free(base);
	return rc;
}

/* Adds the filters given to a list's query. Returns 0 or -1. */
static int add_filters(struct cmd_args *a, struct dynbuf *p)
{
	const char *since = time_arg(a->since, a->since_buf);
	const char *until = time_arg(a->until, a->until_buf);
	return client_query_add(p, "status", a->status) || client_query_add(p, "type", a->type) ||
			       client_query_add(p, "endpoint_id", a->endpoint) ||
			       client_query_add(p, "event_id", a->event) ||
			       client_query_add(p, "event_type", a->event_type) ||
			       client_query_add(p, "since", since) ||
			       client_query_add(p, "until", until)
		       ? -1
		       : 0;
}

static int list_route(struct client *c, struct cmd_args *a, const char *route, view_fn table)
{
	struct dynbuf p;
	if (make_path(&p, route, NULL, NULL) != 0 || add_filters(a, &p) != 0) {
		dynbuf_free(&p);
		return oom(a);
	}
	return list_run(c, a, &p, table);
}

int cmd_endpoint_list(struct client *c, struct cmd_args *a)
{
	return list_route(c, a, "/v1/endpoints", cp_endpoints);
}

int cmd_event_list(struct client *c, struct cmd_args *a)
{
	return list_route(c, a, "/v1/events", cp_events);
}

int cmd_delivery_list(struct client *c, struct cmd_args *a)
{
	return list_route(c, a, "/v1/deliveries", cp_deliveries);
}

int cmd_dlq_list(struct client *c, struct cmd_args *a)
{
	return list_route(c, a, "/v1/dlq", cp_deliveries);
}

/* ---- endpoints ---- */

int cmd_endpoint_get(struct client *c, struct cmd_args *a)
{
	return call_id(c, a, "GET", "/v1/endpoints/", "", cp_endpoint);
}

int cmd_endpoint_delete(struct client *c, struct cmd_args *a)
{
	struct dynbuf p;
	struct client_resp r;
	if (make_path(&p, "/v1/endpoints/", a->pos, "") != 0) {
		dynbuf_free(&p);
		return oom(a);
	}
	int rc = client_call(c, "DELETE", p.data, NULL, &r);
	if (rc == CLIENT_EXIT_OK && a->json)
		print_raw(&r);
	else if (rc == CLIENT_EXIT_OK)
		printf("deleted %s\n", a->pos);
	client_resp_free(&r);
	dynbuf_free(&p);
	return rc;
}

/* A comma-separated option (--events "a,b", --signatures) as a JSON array. */
static json_t *split_list(const char *s)
{
	json_t *arr = json_array();
	while (arr && s) {
		const char *comma = strchr(s, ',');
		size_t n = comma ? (size_t)(comma - s) : strlen(s);
		while (n > 0 && (*s == ' ' || *s == '\t'))
			s++, n--;
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		if (json_array_append_new(arr, json_stringn(s, n)) != 0) {
			json_decref(arr);
			return NULL;
		}
		s = comma ? comma + 1 : NULL;
	}
	return arr;
}

/* --rate-limit: a number >= 0 (0: none). Returns 0 or exit 2. */
static int rate_arg(const struct cmd_args *a, json_t *body)
{
	char *end;
	double r = strtod(a->rate_limit, &end);
	if (*end || end == a->rate_limit || !isfinite(r) || r < 0)
		return cmd_usage_error(a, "--rate-limit must be a number of requests a second "
					  "(0: no limit)");
	json_t *v = r == floor(r) && r < 1e15 ? json_integer((json_int_t)r) : json_real(r);
	return json_object_set_new(body, "rate_limit", v) == 0 ? 0 : oom(a);
}

/* A JSON option into body[field]. Returns 0 or exit 2. */
static int set_json(const struct cmd_args *a, json_t *body, const char *flag, const char *field,
		    const char *text)
{
	json_t *v;
	if (!text)
		return 0;
	int rc = json_arg(a, flag, text, &v);
	if (rc == 0 && json_object_set_new(body, field, v) != 0)
		rc = oom(a);
	return rc;
}

/* The endpoint fields given, into body. Returns 0 or exit 2/1. */
static int endpoint_body(const struct cmd_args *a, json_t *body)
{
	int rc;
	if (a->headers && a->no_headers)
		return cmd_usage_error(a, "--header and --no-headers together");
	if ((a->url && json_object_set_new(body, "url", json_string(a->url)) != 0) ||
	    (a->events && json_object_set_new(body, "events", split_list(a->events)) != 0) ||
	    (a->signatures &&
	     json_object_set_new(body, "signatures", split_list(a->signatures)) != 0) ||
	    (a->description_set &&
	     json_object_set_new(body, "description", json_string(a->description)) != 0) ||
	    (a->secret && json_object_set_new(body, "secret", json_string(a->secret)) != 0) ||
	    (a->signing && json_object_set_new(body, "signing", json_string(a->signing)) != 0) ||
	    (a->headers && json_object_set(body, "headers", a->headers) != 0) ||
	    (a->no_headers && json_object_set_new(body, "headers", json_object()) != 0) ||
	    (a->max_in_flight &&
	     json_object_set_new(body, "max_in_flight", json_integer(a->max_in_flight)) != 0) ||
	    (a->disabled && json_object_set_new(body, "enabled", json_false()) != 0))
		return cmd_usage_error(a, "a value is not valid UTF-8");
	if ((rc = set_json(a, body, "filters", "filters", a->filters)) != 0 ||
	    (rc = set_json(a, body, "batch", "batch", a->batch)) != 0)
		return rc;
	return a->rate_limit ? rate_arg(a, body) : 0;
}

static int endpoint_write(struct client *c, struct cmd_args *a, const char *method, json_t *body)
{
	struct dynbuf p;
	int made = a->pos ? make_path(&p, "/v1/endpoints/", a->pos, "")
			  : make_path(&p, "/v1/endpoints", NULL, NULL);
	int rc = made == 0 ? call_view(c, a, method, &p, body, cp_endpoint) : oom(a);
	dynbuf_free(&p);
	return rc;
}

int cmd_endpoint_create(struct client *c, struct cmd_args *a)
{
	json_t *body = json_object();
	int rc = body ? endpoint_body(a, body) : oom(a);
	if (rc == 0)
		rc = endpoint_write(c, a, "POST", body);
	json_decref(body);
	return rc;
}

int cmd_endpoint_update(struct client *c, struct cmd_args *a)
{
	json_t *body = json_object();
	int rc = body ? endpoint_body(a, body) : oom(a);
	if (rc == 0 && json_object_size(body) == 0)
		rc = cmd_usage_error(a, "nothing to change: give --url, --events, --description, "
					"--secret, --filters, --header, --no-headers, --rate-limit, "
					"--max-in-flight, --batch or --signatures");
	if (rc == 0)
		rc = endpoint_write(c, a, "PATCH", body);
	json_decref(body);
	return rc;
}

static int set_enabled(struct client *c, struct cmd_args *a, bool on)
{
	json_t *body = json_pack("{s:b}", "enabled", on);
	int rc = body ? endpoint_write(c, a, "PATCH", body) : oom(a);
	json_decref(body);
	return rc;
}

int cmd_endpoint_pause(struct client *c, struct cmd_args *a)
{
	return set_enabled(c, a, false);
}

int cmd_endpoint_resume(struct client *c, struct cmd_args *a)
{
	return set_enabled(c, a, true);
}

/* POST base/ID/suffix with body (NULL: none), the answer through view. */
static int post_id(struct client *c, struct cmd_args *a, const char *base, const char *suffix,
		   json_t *body, view_fn view)
{
	struct dynbuf p;
	int rc = make_path(&p, base, a->pos, suffix) == 0 ? call_view(c, a, "POST", &p, body, view)
							    : oom(a);
	dynbuf_free(&p);
	return rc;
}

int cmd_endpoint_test(struct client *c, struct cmd_args *a)
{
	json_t *body = NULL;
	int rc = CLIENT_EXIT_OK;
	if (a->data && !(body = json_object()))
		rc = oom(a);
	if (rc == 0 && a->data)
		rc = set_json(a, body, "data", "data", a->data);
	if (rc == 0)
		rc = post_id(c, a, "/v1/endpoints/", "/test", body, cp_accepted);
	json_decref(body);
	return rc;
}

int cmd_endpoint_rotate(struct client *c, struct cmd_args *a)
{
	json_t *body = NULL;
	if (a->secret || a->signing)
		body = json_pack("{s:s*,s:s*}", "secret", a->secret, "signing", a->signing);
	if ((a->secret || a->signing) && !body)
		return cmd_usage_error(a, "--secret and --signing must be UTF-8");
	int rc = post_id(c, a, "/v1/endpoints/", "/secret/rotate", body, cp_endpoint);
	json_decref(body);
	return rc;
}

static void view_replayed(FILE *f, json_t *body)
{
	fprintf(f, "replayed %lld events\n",
		(long long)json_integer_value(json_object_get(body, "replayed")));
}

int cmd_endpoint_replay(struct client *c, struct cmd_args *a)
{
	json_t *body = json_pack("{s:s,s:s*}", "since", time_arg(a->since, a->since_buf), "until",
				 time_arg(a->until, a->until_buf));
	int rc = body ? post_id(c, a, "/v1/endpoints/", "/replay", body, view_replayed)
		      : cmd_usage_error(a, "--since and --until must be UTF-8");
	json_decref(body);
	return rc;
}

/* ---- events ---- */

/* Sets c->extra_header to "Idempotency-Key: K" in buf. Returns 0 or exit 2. */
static int idempotency(struct client *c, const struct cmd_args *a, char *buf, size_t len)
{
	const char *k = a->idempotency_key;
	if (!k)
		return 0;
	for (const char *p = k; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			return cmd_usage_error(a, "--idempotency-key must be printable ASCII");
	if (strlen(k) > 255)
		return cmd_usage_error(a, "--idempotency-key must be at most 255 characters");
	snprintf(buf, len, "Idempotency-Key: %s", k);
	c->extra_header = buf;
	return 0;
}

int cmd_event_send(struct client *c, struct cmd_args *a)
{
	char hdr[300];
	json_t *data = NULL, *body = NULL;
	int rc = json_arg(a, "data", a->data ? a->data : "{}", &data);
	if (rc == 0)
		rc = idempotency(c, a, hdr, sizeof hdr);
	if (rc == 0 && !(body = json_pack("{s:s,s:O,s:s*}", "event", a->type, "data", data, "id",
					  a->id)))
		rc = cmd_usage_error(a, "--type and --id must be UTF-8");
	struct dynbuf p;
	if (rc == 0) {
		rc = make_path(&p, "/v1/events", NULL, NULL) == 0
			     ? call_view(c, a, "POST", &p, body, cp_accepted)
			     : oom(a);
		dynbuf_free(&p);
	}
	c->extra_header = NULL;
	json_decref(data);
	json_decref(body);
	return rc;
}

int cmd_event_get(struct client *c, struct cmd_args *a)
{
	return call_id(c, a, "GET", "/v1/events/", "", cp_event);
}

int cmd_event_replay(struct client *c, struct cmd_args *a)
{
	json_t *body = a->endpoint ? json_pack("{s:s}", "endpoint_id", a->endpoint) : NULL;
	if (a->endpoint && !body)
		return cmd_usage_error(a, "--endpoint must be UTF-8");
	int rc = post_id(c, a, "/v1/events/", "/replay", body, cp_accepted);
	json_decref(body);
	return rc;
}

/* ---- deliveries and the DLQ ---- */

int cmd_delivery_get(struct client *c, struct cmd_args *a)
{
	return call_id(c, a, "GET", "/v1/deliveries/", "", cp_delivery);
}

int cmd_delivery_retry(struct client *c, struct cmd_args *a)
{
	return call_id(c, a, "POST", "/v1/dlq/", "/retry", cp_delivery);
}

static void view_retried(FILE *f, json_t *body)
{
	fprintf(f, "retried %lld dead deliveries\n",
		(long long)json_integer_value(json_object_get(body, "retried")));
}

int cmd_dlq_retry(struct client *c, struct cmd_args *a)
{
	if ((a->pos != NULL) == (a->endpoint != NULL))
		return cmd_usage_error(a, "give either a delivery id or --endpoint, not %s",
				       a->pos ? "both" : "neither");
	if (a->pos)
		return cmd_delivery_retry(c, a);
	json_t *body = json_pack("{s:s}", "endpoint_id", a->endpoint);
	if (!body)
		return cmd_usage_error(a, "--endpoint must be UTF-8");
	struct dynbuf p;
	int rc = make_path(&p, "/v1/dlq/retry", NULL, NULL) == 0
			 ? call_view(c, a, "POST", &p, body, view_retried)
			 : oom(a);
	dynbuf_free(&p);
	json_decref(body);
	return rc;
}
