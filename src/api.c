/* api: the HTTP server (libmicrohttpd), authentication, body limits,
 * routing, the JSON error shape and the suspend/resume plumbing that lets a
 * write wait for its group commit without holding a server thread. The
 * handlers live in api_endpoints.c, api_events.c and api_deliveries.c;
 * who may call and the request limits (--api-allow, API keys and scopes,
 * --ingest-rate, URL and header sizes) in api_guard.c. */
#include "api_internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api_conns.h"
#include "api_listen.h"
#include "log.h"
#include "store_health.h"

/* A refused or oversized body is read and dropped, up to this many times
 * max_body, so the error reaches clients that send the whole body before
 * reading; past it the connection is closed. */
#define API_DISCARD_FACTOR 4

#define M(x) (1u << (x))

static void healthz(struct api_req *r);

/* The query parameters each route takes (docs/api.md, Lists and
 * pagination): any other is a 400 naming it, on every route; a route and
 * method not listed in route_args takes none. */
static const char *const page_args[] = {"limit", "cursor", NULL};
static const char *const events_args[] = {"type", "since", "until", "endpoint_id",
					  "limit", "cursor", NULL};
static const char *const deliveries_args[] = {"endpoint_id", "event_id", "status",
					      "event_type", "since", "until", "limit",
					      "cursor", NULL};
static const char *const dlq_args[] = {"endpoint_id", "event_type", "since", "until",
				       "limit", "cursor", NULL};
static const char *const stats_args[] = {"window", "endpoint_id", NULL};

static const struct route_args {
	const char *pattern;      /* as in routes[] */
	enum api_method method;
	const char *const *args;
} route_args[] = {
	{"/v1/endpoints", API_GET, page_args},
	{"/v1/events", API_GET, events_args},
	{"/v1/deliveries", API_GET, deliveries_args},
	{"/v1/dlq", API_GET, dlq_args},
	{"/v1/stats", API_GET, stats_args},
};

static const struct api_route routes[] = {
	{"/healthz", M(API_GET), "GET", {[API_GET] = healthz}},
	{"/v1/endpoints", M(API_GET) | M(API_POST), "GET, POST",
	 {[API_GET] = api_endpoints_list, [API_POST] = api_endpoints_create}},
	{"/v1/endpoints/{}", M(API_GET) | M(API_PATCH) | M(API_DELETE), "GET, PATCH, DELETE",
	 {[API_GET] = api_endpoints_get, [API_PATCH] = api_endpoints_patch,
	  [API_DELETE] = api_endpoints_delete}},
	{"/v1/endpoints/{}/test", M(API_POST), "POST", {[API_POST] = api_endpoints_test}},
	{"/v1/endpoints/{}/secret/rotate", M(API_POST), "POST",
	 {[API_POST] = api_endpoints_rotate}},
	{"/v1/endpoints/{}/replay", M(API_POST), "POST", {[API_POST] = api_endpoints_replay}},
	{"/v1/events", M(API_GET) | M(API_POST), "GET, POST",
	 {[API_GET] = api_events_list, [API_POST] = api_events_ingest}},
	{"/v1/events/{}", M(API_GET), "GET", {[API_GET] = api_events_get}},
	{"/v1/events/{}/replay", M(API_POST), "POST", {[API_POST] = api_events_replay}},
	{"/v1/deliveries", M(API_GET), "GET", {[API_GET] = api_deliveries_list}},
	{"/v1/deliveries/{}", M(API_GET), "GET", {[API_GET] = api_deliveries_get}},
	{"/v1/dlq", M(API_GET), "GET", {[API_GET] = api_dlq_list}},
	{"/v1/dlq/retry", M(API_POST), "POST", {[API_POST] = api_dlq_retry_endpoint}},
	{"/v1/dlq/{}/retry", M(API_POST), "POST", {[API_POST] = api_dlq_retry_one}},
	{"/v1/stats", M(API_GET), "GET", {[API_GET] = api_stats}},
	{"/metrics", M(API_GET), "GET", {[API_GET] = api_metrics}},
	{"/ui", M(API_GET), "GET", {[API_GET] = api_ui_redirect}},
	{"/ui/", M(API_GET), "GET", {[API_GET] = api_ui_index}},
	{"/ui/{}", M(API_GET), "GET", {[API_GET] = api_ui_file}},
};

#define N_ROUTES (sizeof routes / sizeof routes[0])
_Static_assert(N_ROUTES < METRICS_API_ROUTES, "metrics count requests of every route");

size_t api_route_count(void)
{
	return N_ROUTES;
}

bool api_route_label(size_t i, char *buf, size_t len)
{
	if (i > N_ROUTES || len == 0)
		return false;
	if (i == N_ROUTES) {
		snprintf(buf, len, "unmatched");
		return true;
	}
	size_t o = 0;
	for (const char *p = routes[i].pattern; *p && o + 4 < len; p++) {
		if (p[0] == '{' && p[1] == '}') {
			memcpy(buf + o, "{id}", 4);
			o += 4;
			p++;
		} else {
			buf[o++] = *p;
		}
	}
	buf[o] = '\0';
	return true;
}

/* ---- responses ---- */

void api_reply(struct api_req *r, unsigned status, json_t *body)
{
	json_decref(r->resp);
	free(r->text);
	r->text = NULL;
	r->text_len = 0;
	r->status = status;
	r->resp = body;
	if (body == NULL && status != MHD_HTTP_NO_CONTENT) {
		/* Building the body ran out of memory. */
		r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

void api_reply_text(struct api_req *r, unsigned status, char *text, size_t len)
{
	api_reply(r, status, NULL);
	r->status = status;
	r->text = text;
	r->text_len = len;
	if (text == NULL)
		r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
}

void api_error(struct api_req *r, unsigned status, const char *code, const char *field,
	       const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_t *body = json_pack("{s:{s:s, s:s, s:s?}}", "error", "code", code, "message", msg,
				 "field", field);
	api_reply(r, status, body);
}

void api_invalid(struct api_req *r, const struct validate_error *err)
{
	api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_field", err->field[0] ? err->field : NULL,
		  "%s", err->message);
}

void api_internal_error(struct api_req *r, const char *what)
{
	log_error("api: internal error in %s", what);
	api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
		  "internal error; see the server log");
}

void api_storage_full(struct api_req *r, const char *why)
{
	r->retry_after = API_STORAGE_RETRY_AFTER_S;
	api_error(r, MHD_HTTP_INSUFFICIENT_STORAGE, "storage_full", NULL, "%s", why);
}

void api_store_unavailable(struct api_req *r)
{
	r->retry_after = API_STORE_UNAVAILABLE_RETRY_AFTER_S;
	api_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "store_unavailable", NULL,
		  "the database server cannot be reached; nothing of this request was "
		  "stored or done; retry later (see GET /healthz)");
}

void api_store_error(struct api_req *r, int rc, const char *what)
{
	/* A write that failed for lack of space (see op_done). */
	if (rc == STORE_ERROR && r->op != NULL && r->op->storage_full)
		api_storage_full(r, "no space left on the database's volume; nothing of this "
				    "request was stored; retry later");
	else if (rc == STORE_ERROR &&
		 ((r->op != NULL && r->op->op.fault == STORE_FAULT_UNREACHABLE) ||
		  store_health_has(r->api->cfg.health, STORE_COND_UNREACHABLE)))
		api_store_unavailable(r);
	else if (rc == STORE_NOTFOUND)
		api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no such %s", what);
	else if (rc == STORE_CONFLICT)
		api_error(r, MHD_HTTP_CONFLICT, "conflict", NULL,
			  "the %s conflicts with its current state", what);
	else
		api_internal_error(r, what);
}

char *api_dump(json_t *j)
{
	return validate_json_text(j);
}

static enum MHD_Result send_response(struct api_req *r)
{
	char *text = NULL;
	size_t len = 0;
	unsigned status = r->status ? r->status : MHD_HTTP_INTERNAL_SERVER_ERROR;
	struct MHD_Response *resp = r->raw;
	r->raw = NULL;
	if (resp != NULL) {
		/* built whole by the handler (api_ui.c) */
	} else if (r->text != NULL) {
		text = r->text;
		len = r->text_len;
		r->text = NULL;
	} else if (r->resp != NULL) {
		text = api_dump(r->resp);
		if (text == NULL) {
			status = MHD_HTTP_INTERNAL_SERVER_ERROR;
			text = strdup("{\"error\":{\"code\":\"internal\","
				      "\"message\":\"out of memory\",\"field\":null}}");
		}
		len = text ? strlen(text) : 0;
	}
	if (resp == NULL)
		resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(text);
		return MHD_NO;
	}
	if (r->ui)
		api_ui_headers(resp);
	if (text != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					r->ctype ? r->ctype : "application/json");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED && r->route != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->route->allow);
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (r->close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	if (r->retry_after > 0) {
		char ra[16];
		snprintf(ra, sizeof ra, "%u", r->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	/* A 507, or a 503 with Retry-After (store_unavailable), is the
	 * store's condition, which store_health logs once. */
	if (status >= 500 && status != MHD_HTTP_INSUFFICIENT_STORAGE &&
	    !(status == MHD_HTTP_SERVICE_UNAVAILABLE && r->retry_after > 0))
		log_warn("api: request failed status=%u", status);
	enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	metrics_api_request(r->api->cfg.metrics, r->route ? (size_t)(r->route - routes) : N_ROUTES,
			    status, (uint64_t)(mono_us() - r->t0_us));
	return ret;
}

/* ---- request helpers ---- */

json_t *api_body_json(struct api_req *r)
{
	json_error_t jerr;
	int depth = r->api->cfg.max_json_depth;
	if (r->body.len == 0) {
		api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_json", NULL,
			  "the request needs a JSON object body");
		return NULL;
	}
	if (validate_json_depth(r->body.data, r->body.len, depth) != 0) {
		api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_json", NULL,
			  "arrays and objects nest deeper than %d levels (--max-json-depth)",
			  depth);
		return NULL;
	}
	json_t *j = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_json", NULL,
			  "the body is not valid JSON: %s (line %d, column %d)", jerr.text,
			  jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_json", NULL,
			  "the body must be a JSON object");
		return NULL;
	}
	return j;
}

const char *api_arg(struct api_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* The first query parameter api_args_known refuses. */
struct args_check {
	const char *const *allowed;
	unsigned seen;            /* bit i: allowed[i] was given */
	char bad[65];             /* the refused name, printable */
	const char *why;          /* NULL while every parameter is fine */
};

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				 const char *value)
{
	struct args_check *a = cls;
	(void)kind;
	if (key[0] == '\0' && (value == NULL || value[0] == '\0'))
		return MHD_YES; /* an empty segment: "?a=1&&b=2", a trailing "&" */
	a->why = "is not a parameter of this route";
	for (unsigned i = 0; a->allowed[i] != NULL && i < 32; i++) {
		if (strcmp(key, a->allowed[i]) != 0)
			continue;
		if (value == NULL) {
			a->why = "needs a value";
		} else if ((a->seen & (1u << i)) != 0) {
			a->why = "is given more than once";
		} else {
			a->seen |= 1u << i;
			a->why = NULL;
			return MHD_YES;
		}
		break;
	}
	/* The name goes back in the JSON error: keep it short and ASCII. */
	size_t n = 0;
	for (; key[n] != '\0' && n < sizeof a->bad - 1; n++)
		a->bad[n] = key[n] > ' ' && key[n] < 0x7f ? key[n] : '?';
	a->bad[n] = '\0';
	return MHD_NO;
}

int api_args_known(struct api_req *r, const char *const *allowed)
{
	static const char *const none[] = {NULL};
	struct args_check a = {.allowed = allowed != NULL ? allowed : none};
	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, check_arg, &a);
	if (a.why == NULL)
		return 0;
	/* The parameters the route takes, for the message. */
	char takes[256] = "no query parameters";
	size_t o = 0;
	for (unsigned i = 0; a.allowed[i] != NULL && o < sizeof takes; i++)
		o += (size_t)snprintf(takes + o, sizeof takes - o, "%s%s", i ? ", " : "",
				      a.allowed[i]);
	api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_field", a.bad[0] ? a.bad : NULL,
		  "query parameter \"%s\" %s (this route takes %s)", a.bad, a.why, takes);
	return -1;
}

int api_page_args(struct api_req *r, int *limit, const char **cursor)
{
	struct validate_error err;
	*cursor = api_arg(r, "cursor");
	if (validate_limit(api_arg(r, "limit"), limit, &err) != 0 ||
	    validate_cursor(*cursor, &err) != 0) {
		api_invalid(r, &err);
		return -1;
	}
	if (*cursor != NULL && !store_cursor_valid(*cursor)) {
		api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_field", "cursor",
			  "not a cursor this server handed out");
		return -1;
	}
	return 0;
}

json_t *api_list(json_t *items, const char *next_cursor)
{
	if (items == NULL)
		return NULL;
	return json_pack("{s:o, s:s?}", "data", items, "next_cursor",
			 next_cursor && next_cursor[0] ? next_cursor : NULL);
}

/* ---- read connections ---- */

struct store *api_store_get(struct api *a)
{
	struct store *st = NULL;
	pthread_mutex_lock(&a->pool_mu);
	for (;;) {
		for (size_t i = 0; i < a->pool_n; i++) {
			if (!a->pool_busy[i]) {
				a->pool_busy[i] = true;
				st = a->pool[i];
				goto out;
			}
		}
		if (a->pool_n == 0)
			goto out;
		pthread_cond_wait(&a->pool_cv, &a->pool_mu);
	}
out:
	pthread_mutex_unlock(&a->pool_mu);
	return st;
}

void api_store_put(struct api *a, struct store *st)
{
	/* A read's fault feeds the health (an unreachable server: 503s and
	 * /healthz), and a read that reached the server clears it. */
	store_note_read(st, a->cfg.health);
	pthread_mutex_lock(&a->pool_mu);
	for (size_t i = 0; i < a->pool_n; i++) {
		if (a->pool[i] == st)
			a->pool_busy[i] = false;
	}
	pthread_cond_signal(&a->pool_cv);
	pthread_mutex_unlock(&a->pool_mu);
}

static void healthz(struct api_req *r)
{
	struct store *st = api_store_get(r->api);
	struct event ev = {0};
	/* A primary-key lookup that touches the database file. */
	int rc = st ? store_event_get(st, "healthz-probe", &ev) : STORE_ERROR;
	event_clear(&ev);
	if (st)
		api_store_put(r->api, st);
	struct store_health_view hv;
	store_health_read(r->api->cfg.health, &hv);
	if (rc != STORE_OK && rc != STORE_NOTFOUND && hv.level != STORE_HEALTH_FAILING) {
		/* The probe itself failed: the store cannot be read. */
		hv.level = STORE_HEALTH_FAILING;
		snprintf(hv.reason, sizeof hv.reason, "the store cannot be read");
	}
	/* Degraded still answers 200 (hookd delivers; see the reason);
	 * failing is a 503 so a load balancer or supervisor acts on it. */
	const char *level = store_health_level_name(hv.level);
	api_reply(r, hv.level == STORE_HEALTH_FAILING ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK,
		  hv.level == STORE_HEALTH_OK
			  ? json_pack("{s:s, s:s}", "status", "ok", "store", "ok")
			  : json_pack("{s:s, s:s, s:s}", "status", level, "store", level, "reason",
				      hv.reason));
}

/* ---- writes through the commit thread ---- */

/* Commit thread: record the outcome, run the post-commit side effects, and
 * wake the request. After the resume the request may end at any moment, so
 * nothing of it is touched afterwards. */
static void op_done(struct commit_op *op, int rc)
{
	struct api_op *o = (struct api_op *)op;
	struct MHD_Connection *conn = o->req->conn;
	o->rc = rc;
	/* The commit thread noted the fault in the health before this runs. */
	o->storage_full = rc != STORE_OK &&
			  store_health_has(o->req->api->cfg.health, STORE_COND_FULL);
	if (rc == STORE_OK && o->committed != NULL)
		o->committed(o);
	if (rc == STORE_OK && o->next_part != NULL && o->next_part(o)) {
		commit_submit(o->req->api->writer, &o->op);
		return;
	}
	MHD_resume_connection(conn);
}

static void unwait(struct api *a)
{
	pthread_mutex_lock(&a->wait_mu);
	a->waiting--;
	if (a->stopping && a->waiting == 0)
		pthread_cond_broadcast(&a->wait_cv);
	pthread_mutex_unlock(&a->wait_mu);
}

void api_submit(struct api_req *r, struct api_op *o)
{
	struct api *a = r->api;
	o->req = r;
	o->op.done = op_done;
	r->op = o;
	if (store_health_has(a->cfg.health, STORE_COND_CORRUPT)) {
		/* A damaged file: writing on could spread the damage, and an
		 * event taken now might never be delivered. Nothing is acked. */
		r->op = NULL;
		o->destroy(o);
		api_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "store_failing", NULL,
			  "the database is damaged; nothing was written (see GET /healthz)");
		return;
	}
	pthread_mutex_lock(&a->wait_mu);
	if (a->stopping) {
		pthread_mutex_unlock(&a->wait_mu);
		r->op = NULL;
		o->destroy(o);
		api_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "internal", NULL, "shutting down");
		return;
	}
	a->waiting++;
	r->waiting = true;
	pthread_mutex_unlock(&a->wait_mu);
	/* Suspend first: done() may resume before commit_submit returns. */
	MHD_suspend_connection(r->conn);
	commit_submit(a->writer, &o->op);
}

/* ---- the access handler ---- */

static enum api_method parse_method(const char *m)
{
	if (strcmp(m, "GET") == 0)
		return API_GET;
	if (strcmp(m, "POST") == 0)
		return API_POST;
	if (strcmp(m, "PATCH") == 0)
		return API_PATCH;
	if (strcmp(m, "DELETE") == 0)
		return API_DELETE;
	return API_OTHER;
}

/* Matches url against pattern segment by segment; "{}" takes one segment
 * (an id: 1..ID_MAX-1 chars) into id. */
static bool route_match(const char *pattern, const char *url, char id[ID_MAX])
{
	const char *p = pattern, *u = url;
	while (*p && *u) {
		if (p[0] == '{' && p[1] == '}') {
			size_t n = strcspn(u, "/");
			if (n == 0 || n >= ID_MAX)
				return false;
			memcpy(id, u, n);
			id[n] = '\0';
			u += n;
			p += 2;
		} else if (*p == *u) {
			p++;
			u++;
		} else {
			return false;
		}
	}
	return *p == '\0' && *u == '\0';
}

/* Content-Length as RFC 9112 §6.3 reads it: every field of that name, each
 * a comma-separated list, must give one and the same number; otherwise the
 * body's length is unknown (libmicrohttpd would take the first). */
struct cl_scan {
	char first[24]; /* the first value's digits, leading zeros dropped */
	bool seen;
	bool bad;       /* not a number, or a number other than the first */
};

/* One element of a Content-Length list (n bytes at p, blanks around it)
 * into out as digits without leading zeros; false unless 1..20 digits. */
static bool cl_digits(const char *p, size_t n, char out[24])
{
	while (n > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n == 0 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
	}
	while (n > 1 && *p == '0') {
		p++;
		n--;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

static enum MHD_Result scan_content_length(void *cls, enum MHD_ValueKind kind, const char *key,
					   const char *value)
{
	struct cl_scan *s = cls;
	(void)kind;
	if (key == NULL || strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0)
		return MHD_YES;
	const char *p = value != NULL ? value : "";
	for (;;) {
		size_t n = strcspn(p, ",");
		char d[24];
		if (!cl_digits(p, n, d) || (s->seen && strcmp(d, s->first) != 0)) {
			s->bad = true;
			return MHD_NO; /* stops the iteration */
		}
		if (!s->seen)
			memcpy(s->first, d, sizeof d);
		s->seen = true;
		if (p[n] == '\0')
			return MHD_YES;
		p += n + 1;
	}
}

/* A request whose Content-Length fields disagree (or are not numbers) is
 * refused 400 and its connection closed: where its body ends is unknown,
 * so nothing after its headers can be trusted. Returns true if refused. */
static bool check_content_length(struct api_req *r)
{
	struct cl_scan s = {.seen = false, .bad = false};
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, scan_content_length, &s);
	if (!s.bad)
		return false;
	r->close = true;
	api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_field", MHD_HTTP_HEADER_CONTENT_LENGTH,
		  "Content-Length must be one number (repeated fields must agree)");
	return true;
}

/* The query parameters route takes with method (NULL: none). */
static const char *const *route_args_of(const struct api_route *route, enum api_method method)
{
	for (size_t i = 0; i < sizeof route_args / sizeof route_args[0]; i++) {
		if (route_args[i].method == method &&
		    strcmp(route_args[i].pattern, route->pattern) == 0)
			return route_args[i].args;
	}
	return NULL;
}

/* First call for a request (headers only): everything that can be refused
 * before reading the body. Returns true if a response was set. */
static bool check_headers(struct api_req *r, const char *url, const char *method)
{
	struct api *a = r->api;
	const struct api_route *route = NULL;
	const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_TRANSFER_ENCODING);
	const char *expect = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
							 MHD_HTTP_HEADER_EXPECT);
	unsigned long long announced = cl ? strtoull(cl, NULL, 10) : 0;
	r->announced = announced;
	r->has_body = announced > 0 || te != NULL;
	r->expect_continue = expect != NULL && strcasecmp(expect, "100-continue") == 0;
	r->ui = api_ui_path(url);
	if (api_guard_admit(r) || check_content_length(r))
		return true;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0] && route == NULL; i++) {
		if (route_match(routes[i].pattern, url, r->id))
			route = &routes[i];
	}
	r->route = route;
	if ((strncmp(url, "/v1/", 4) == 0 || strcmp(url, "/v1") == 0 ||
	     strcmp(url, "/metrics") == 0) &&
	    api_guard_auth(r, url, method))
		return true;
	if (route == NULL) {
		api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no such route");
		return true;
	}
	if (r->method == API_OTHER || (route->methods & M(r->method)) == 0) {
		api_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", NULL,
			  "%s allows %s", url, route->allow);
		return true;
	}
	if (api_args_known(r, route_args_of(route, r->method)) != 0)
		return true;
	if (announced > a->cfg.max_body) {
		api_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large", NULL,
			  "the body is over the limit of %zu bytes (--max-body)", a->cfg.max_body);
		return true;
	}
	if (r->has_body && (r->method == API_POST || r->method == API_PATCH) &&
	    !validate_content_type_json(MHD_lookup_connection_value(
		    r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE))) {
		api_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", NULL,
			  "the body must be sent as Content-Type: application/json");
		return true;
	}
	return false;
}

/* Most bytes of a refused body read and dropped before answering. */
static size_t drain_cap(const struct api *a)
{
	return API_DISCARD_FACTOR * a->cfg.max_body;
}

static struct api_req *new_req(struct api *a, struct MHD_Connection *conn, size_t url_len)
{
	struct api_req *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->api = a;
	r->conn = conn;
	r->url_len = url_len;
	r->t0_us = mono_us();
	dynbuf_init(&r->body, a->cfg.max_body);
	return r;
}

/* The raw request target, before libmicrohttpd splits off and decodes the
 * query: its length is what --max-url limits. The request starts here. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	return new_req(cls, conn, strlen(uri));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct api *a = cls;
	struct api_req *r = *con_cls;
	(void)version;

	if (r == NULL || !r->started) {
		if (r == NULL && (r = new_req(a, conn, strlen(url))) == NULL)
			return MHD_NO;
		r->started = true;
		r->method = parse_method(method);
		*con_cls = r;
		if (!check_headers(r, url, method) || (!r->has_body && !r->close))
			return MHD_YES; /* a bodyless refusal is sent on the next call */
		/* Refused, with a body on its way. Answering now closes the
		 * connection with the body unread, and a client still sending
		 * (or whose unread bytes make the close a reset) may never see
		 * the answer; so a body of bounded size is read and dropped
		 * first. Only a client that waits (Expect: 100-continue) or
		 * announces more than the drain cap is answered at once. */
		if (r->expect_continue || r->close || r->announced > drain_cap(a))
			return send_response(r);
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (r->status == 0 && !r->too_large &&
		    dynbuf_append(&r->body, upload, *upload_size) != 0) {
			r->too_large = true;
			dynbuf_free(&r->body);
		}
		if (r->status != 0 || r->too_large) {
			r->discarded += *upload_size;
			if (r->discarded > drain_cap(a))
				return MHD_NO;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (!r->read_whole) {
		/* Header and body are in: --api-request-timeout stops counting. */
		r->read_whole = true;
		api_conns_request_read(a->conns, conn);
	}
	if (r->status != 0 && !r->dispatched) {
		/* Refused from the headers alone. */
	} else if (!r->dispatched) {
		r->dispatched = true;
		if (r->too_large) {
			api_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large", NULL,
				  "the body is over the limit of %zu bytes (--max-body)",
				  a->cfg.max_body);
		} else {
			r->route->handler[r->method](r);
		}
		if (r->op != NULL)
			return MHD_YES; /* suspended until the commit */
	} else if (r->op != NULL && r->waiting) {
		/* Resumed after the commit. */
		r->waiting = false;
		unwait(a);
		r->op->respond(r, r->op);
	}
	return send_response(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct api *a = cls;
	struct api_req *r = *con_cls;
	(void)toe;
	api_conns_request_done(a->conns, conn);
	if (r == NULL)
		return;
	if (r->waiting)
		unwait(r->api);
	if (r->op != NULL)
		r->op->destroy(r->op);
	if (r->raw != NULL)
		MHD_destroy_response(r->raw);
	json_decref(r->resp);
	free(r->text);
	dynbuf_free(&r->body);
	free(r);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	msg[strcspn(msg, "\r\n")] = '\0';
	api_conns_library_log(cls, msg); /* rate-limited: one a connection under a flood */
}

/* ---- start and stop ---- */

/* "host:port" or "[v6]:port" -> a socket address. */
int api_resolve_listen(const char *listen, struct sockaddr_storage *out, char *err,
		       size_t errlen)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	if (colon == NULL || colon[1] == '\0' || (size_t)(colon - listen) >= sizeof host) {
		snprintf(err, errlen, "listen address must be HOST:PORT");
		return -1;
	}
	size_t hlen = (size_t)(colon - listen);
	const char *h = listen;
	if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(hlen ? host : NULL, colon + 1, &hints, &res);
	if (gai != 0) {
		snprintf(err, errlen, "cannot resolve listen address %s: %s", listen,
			 gai_strerror(gai));
		return -1;
	}
	memcpy(out, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

/* libmicrohttpd's own connection limit, which it splits evenly between its
 * threads: high enough that one thread's share never binds before the total
 * cap of api_conns_accept (which refuses, counts and logs) does. */
static unsigned mhd_connection_limit(const struct api_config *cfg, unsigned threads)
{
	/* At most 65536 x 64 + 64: no overflow. */
	return cfg->max_connections * threads + threads;
}

static int start_conns(struct api *a, const struct api_config *cfg, char *err, size_t errlen)
{
	struct api_conns_config cc = {
		.max_total = cfg->max_connections > 0 ? cfg->max_connections : 1,
		.max_per_address = cfg->max_connections_per_address,
		.request_timeout_ms = cfg->request_timeout_ms > 0 ? cfg->request_timeout_ms : 60000,
	};
	return api_conns_new(&cc, &a->conns, err, errlen);
}

static void close_pool(struct api *a)
{
	for (size_t i = 0; i < a->pool_n; i++)
		store_close(a->pool[i]);
	a->pool_n = 0;
}

/* Frees what api_start made besides the daemon (stopped, or never started). */
static void api_free(struct api *a)
{
	api_conns_free(a->conns);
	close_pool(a);
	api_guard_free(a->guard);
	pthread_mutex_destroy(&a->pool_mu);
	pthread_cond_destroy(&a->pool_cv);
	pthread_mutex_destroy(&a->wait_mu);
	pthread_cond_destroy(&a->wait_cv);
	free(a);
}

/* The sockets of cfg that api_start still owns after a failure: those not
 * yet handed to libmicrohttpd (taken: see api_start). */
static void api_close_fds(const struct api_config *cfg, int taken)
{
	if (taken < 1 && cfg->listen_fd > 0)
		close(cfg->listen_fd);
	if (taken < 2 && cfg->metrics_listen_fd > 0)
		close(cfg->metrics_listen_fd);
}

int api_start(const struct api_config *cfg, struct commit *writer, struct epcache *cache,
	      struct dispatch *dispatch, struct api **out, char *err, size_t errlen)
{
	struct sockaddr_storage addr;
	int fds_taken = 0; /* 1: listen_fd is libmicrohttpd's; 2: both are */
	struct api *a = calloc(1, sizeof *a);
	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		api_close_fds(cfg, 0);
		return -1;
	}
	a->cfg = *cfg;
	a->writer = writer;
	a->cache = cache;
	a->dispatch = dispatch;
	pthread_mutex_init(&a->pool_mu, NULL);
	pthread_cond_init(&a->pool_cv, NULL);
	pthread_mutex_init(&a->wait_mu, NULL);
	pthread_cond_init(&a->wait_cv, NULL);
	unsigned threads = cfg->threads > 0 ? (unsigned)cfg->threads : 1;

	if (api_resolve_listen(cfg->listen, &addr, err, errlen) != 0 ||
	    (cfg->listen_fd > 0 && api_listen_start(cfg->listen_fd, cfg->listen, err, errlen) != 0) ||
	    netguard_init(&a->netguard, cfg->allow_private_networks, cfg->allow_cidr, err,
			  errlen) != 0 ||
	    api_guard_new(cfg, &a->guard, err, errlen) != 0 ||
	    start_conns(a, cfg, err, errlen) != 0)
		goto fail;
	/* One read connection per server thread: a handler never waits for one. */
	size_t want = threads < API_POOL_MAX ? threads : API_POOL_MAX;
	for (; a->pool_n < want; a->pool_n++) {
		if (store_open(cfg->db_url, &a->pool[a->pool_n], err, errlen) != STORE_OK)
			goto fail;
	}
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_ERROR_LOG;
	/* epoll, not poll: poll() saves the two epoll_ctl calls a suspended
	 * request costs (about 3 us of 17 per request, measured), but costs
	 * O(connections) per wake-up: with 3,000 idle keep-alive connections
	 * a request cost 110 us instead of 28. */
	if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
		flags |= MHD_USE_EPOLL;
	if (addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* The port argument only shows in libmicrohttpd's messages; the
	 * address given by MHD_OPTION_SOCK_ADDR is what is bound. */
	uint16_t port = ntohs(addr.ss_family == AF_INET6 ?
				      ((struct sockaddr_in6 *)&addr)->sin6_port :
				      ((struct sockaddr_in *)&addr)->sin_port);
	unsigned idle_s = (unsigned)((cfg->idle_timeout_ms + 999) / 1000);
	/* The socket serve bound, or the address to bind. */
	struct MHD_OptionItem listen_opts[] = {
		{MHD_OPTION_SOCK_ADDR, 0, &addr},
		{MHD_OPTION_END, 0, NULL},
	};
	if (cfg->listen_fd > 0)
		listen_opts[0] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, cfg->listen_fd, NULL};
	fds_taken = 1; /* a failed start may have closed it: not closed again */
	a->daemon = MHD_start_daemon(
		flags, port, api_conns_accept, a->conns, on_request, a,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, a->conns,
		MHD_OPTION_ARRAY, listen_opts,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, a,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, api_guard_memory_limit(cfg),
		MHD_OPTION_NOTIFY_CONNECTION, api_conns_notify, a->conns,
		MHD_OPTION_CONNECTION_TIMEOUT, idle_s > 0 ? idle_s : 30u,
		MHD_OPTION_CONNECTION_LIMIT, mhd_connection_limit(cfg, threads),
		MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
		MHD_OPTION_THREAD_POOL_SIZE, threads > 1 ? threads : 0u,
		MHD_OPTION_END);
	if (a->daemon == NULL) {
		snprintf(err, errlen, "the address is in use or cannot be bound");
		goto fail;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->daemon,
								MHD_DAEMON_INFO_BIND_PORT);
	a->port = info ? info->port : 0;
	fds_taken = 2;
	if (cfg->metrics_listen != NULL && api_metrics_listen_start(a, err, errlen) != 0) {
		MHD_stop_daemon(a->daemon);
		goto fail;
	}
	log_info("api listening port=%u threads=%u max_body=%zu api_allow=%s ingest_rate=%d "
		 "max_connections=%u max_connections_per_address=%u request_timeout_ms=%lld "
		 "idle_timeout_s=%u", a->port, threads, cfg->max_body,
		 cfg->api_allow ? cfg->api_allow : "any", cfg->ingest_rate, cfg->max_connections,
		 cfg->max_connections_per_address, (long long)cfg->request_timeout_ms,
		 idle_s > 0 ? idle_s : 30u);
	*out = a;
	return 0;
fail:
	api_close_fds(cfg, fds_taken);
	api_free(a);
	return -1;
}

unsigned api_port(const struct api *a)
{
	return a->port;
}

unsigned api_metrics_port(const struct api *a)
{
	return a->metrics_port;
}

void api_stop(struct api *a)
{
	if (a == NULL)
		return;
	/* libmicrohttpd must not be stopped with suspended connections: let the
	 * commit thread (still running) finish the writes in progress. Writes that
	 * arrive meanwhile get 503 (see the stopping check where requests are
	 * held). No MHD_quiesce_daemon: with a thread pool over epoll it races the
	 * workers' own removal of the listen socket and can abort the process
	 * ("Failed to remove listen FD from epoll set", seen once in the e2e tests). */
	pthread_mutex_lock(&a->wait_mu);
	a->stopping = true;
	while (a->waiting > 0)
		pthread_cond_wait(&a->wait_cv, &a->wait_mu);
	pthread_mutex_unlock(&a->wait_mu);
	api_metrics_listen_stop(a);
	MHD_stop_daemon(a->daemon);
	api_free(a);
}
