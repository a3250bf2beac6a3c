/* validate: pure checks of API input. See validate.h. */
#include "validate.h"
#include "validate_fast_internal.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "custom_headers.h"
#include "filter.h"
#include "model.h"
#include "sign.h"
#include "store.h"
#include "util.h"

__attribute__((format(printf, 3, 4))) static int fail(struct validate_error *err,
						      const char *field, const char *fmt, ...)
{
	va_list ap;
	snprintf(err->field, sizeof err->field, "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return -1;
}

/* prefix is "" or "events[3]." */
static void path(char out[128], const char *prefix, const char *name)
{
	snprintf(out, 128, "%s%s", prefix, name);
}

static bool type_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == ':' || c == '-';
}

int validate_event_type(const char *type, bool subscription, const char *field,
			struct validate_error *err)
{
	if (type == NULL)
		return fail(err, field, "must be a string");
	if (subscription && (strcmp(type, "*") == 0 || strcmp(type, EVENT_DEAD_LETTERED) == 0 ||
			     strcmp(type, EVENT_ENDPOINT_DISABLED) == 0))
		return 0;
	size_t len = strlen(type);
	if (len == 0 || len > VALIDATE_TYPE_MAX)
		return fail(err, field, "an event type is 1..%d characters", VALIDATE_TYPE_MAX);
	for (size_t i = 0; i < len; i++) {
		if (!type_char((unsigned char)type[i]))
			return fail(err, field,
				    "an event type may only contain A-Z a-z 0-9 _ . : -");
	}
	if (strncmp(type, "delivery.", 9) == 0 || strncmp(type, "endpoint.", 9) == 0) {
		if (subscription)
			return fail(err, field, "unknown operational event type (known: %s, %s)",
				    EVENT_DEAD_LETTERED, EVENT_ENDPOINT_DISABLED);
		return fail(err, field, "event types starting \"delivery.\" or \"endpoint.\" are "
				       "reserved for hookd");
	}
	return 0;
}

int validate_event_id(const char *id, const char *field, struct validate_error *err)
{
	if (id == NULL)
		return fail(err, field, "must be a string");
	if (!id_is_valid_client(id))
		return fail(err, field, "an event id is 1..64 characters of A-Z a-z 0-9 _ -");
	return 0;
}

static bool host_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_';
}

/* port: "" (absent) is fine, else 1..65535 in decimal. */
static bool port_ok(const char *s, size_t len)
{
	if (len == 0 || len > 5)
		return false;
	long v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

int validate_url(const char *url, bool allow_http, struct validate_error *err)
{
	if (url == NULL)
		return fail(err, "url", "must be a string");
	size_t len = strlen(url);
	if (len == 0 || len > VALIDATE_URL_MAX)
		return fail(err, "url", "a URL is 1..%d characters", VALIDATE_URL_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c <= 0x20 || c >= 0x7f)
			return fail(err, "url", "a URL may only contain visible ASCII characters "
						"(percent-encode the rest)");
	}
	const char *p;
	if (strncasecmp(url, "https://", 8) == 0) {
		p = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		if (!allow_http)
			return fail(err, "url", "http:// URLs are refused unless hookd runs with "
						"--allow-http; use https://");
		p = url + 7;
	} else {
		return fail(err, "url", "must be an absolute http:// or https:// URL");
	}
	size_t alen = strcspn(p, "/?#");
	if (alen == 0)
		return fail(err, "url", "the URL has no host");
	if (memchr(p, '@', alen) != NULL)
		return fail(err, "url", "user info (user:password@) in the URL is not supported");
	const char *port;
	size_t plen;
	if (p[0] == '[') {
		const char *close = memchr(p, ']', alen);
		if (close == NULL)
			return fail(err, "url", "unterminated IPv6 address in the URL");
		size_t hlen = (size_t)(close - p - 1);
		char addr[64];
		unsigned char bin[16];
		if (hlen == 0 || hlen >= sizeof addr)
			return fail(err, "url", "bad IPv6 address in the URL");
		memcpy(addr, p + 1, hlen);
		addr[hlen] = '\0';
		if (inet_pton(AF_INET6, addr, bin) != 1)
			return fail(err, "url", "bad IPv6 address in the URL");
		const char *after = close + 1;
		size_t rest = alen - (size_t)(after - p);
		if (rest == 0) {
			port = NULL;
			plen = 0;
		} else if (after[0] == ':') {
			port = after + 1;
			plen = rest - 1;
		} else {
			return fail(err, "url", "bad host in the URL");
		}
	} else {
		const char *colon = memchr(p, ':', alen);
		size_t hlen = colon ? (size_t)(colon - p) : alen;
		if (hlen == 0)
			return fail(err, "url", "the URL has no host");
		for (size_t i = 0; i < hlen; i++) {
			if (!host_char((unsigned char)p[i]))
				return fail(err, "url", "bad character in the URL's host");
		}
		port = colon ? colon + 1 : NULL;
		plen = colon ? alen - hlen - 1 : 0;
	}
	if (port != NULL && !port_ok(port, plen))
		return fail(err, "url", "the URL's port must be 1..65535");
	return 0;
}

/* Refuses any key of obj not in allowed (NULL-terminated). */
static int no_unknown(json_t *obj, const char *prefix, const char *const *allowed,
		      struct validate_error *err)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v) {
		bool known = false;
		for (size_t i = 0; allowed[i] != NULL && !known; i++)
			known = strcmp(key, allowed[i]) == 0;
		if (!known) {
			char f[128];
			path(f, prefix, key);
			return fail(err, f, "unknown field");
		}
	}
	return 0;
}

static int check_event(json_t *obj, const char *prefix, struct validate_event *out,
		       struct validate_error *err)
{
	static const char *const allowed[] = {"id", "event", "data", NULL};
	char f[128];
	if (no_unknown(obj, prefix, allowed, err) != 0)
		return -1;
	json_t *id = json_object_get(obj, "id");
	out->id = NULL;
	path(f, prefix, "id");
	/* An explicit null id means "none", as clients often serialize an unset
	 * optional field. */
	if (id != NULL && !json_is_null(id)) {
		if (validate_event_id(json_string_value(id), f, err) != 0)
			return -1;
		out->id = json_string_value(id);
	}
	json_t *type = json_object_get(obj, "event");
	path(f, prefix, "event");
	if (type == NULL)
		return fail(err, f, "required: the event type");
	if (validate_event_type(json_string_value(type), false, f, err) != 0)
		return -1;
	out->type = json_string_value(type);
	json_t *data = json_object_get(obj, "data");
	path(f, prefix, "data");
	if (data == NULL)
		return fail(err, f, "required: a JSON object");
	if (!json_is_object(data))
		return fail(err, f, "must be a JSON object");
	out->data = data;
	return 0;
}

int validate_ingest(json_t *body, struct validate_ingest *out, struct validate_error *err)
{
	memset(out, 0, sizeof *out);
	if (!json_is_object(body))
		return fail(err, NULL, "the body must be a JSON object");
	json_t *events = json_object_get(body, "events");
	if (events == NULL) {
		out->events = calloc(1, sizeof *out->events);
		if (out->events == NULL)
			return fail(err, NULL, "out of memory");
		out->n = 1;
		if (check_event(body, "", &out->events[0], err) != 0)
			goto bad;
		return 0;
	}
	static const char *const allowed[] = {"events", NULL};
	if (no_unknown(body, "", allowed, err) != 0)
		return -1;
	out->batch = true;
	size_t n = json_array_size(events);
	if (!json_is_array(events) || n == 0 || n > VALIDATE_BATCH_MAX)
		return fail(err, "events", "must be an array of 1..%d events", VALIDATE_BATCH_MAX);
	out->events = calloc(n, sizeof *out->events);
	if (out->events == NULL)
		return fail(err, NULL, "out of memory");
	out->n = n;
	for (size_t i = 0; i < n; i++) {
		char prefix[64];
		json_t *ev = json_array_get(events, i);
		if (!json_is_object(ev)) {
			snprintf(prefix, sizeof prefix, "events[%zu]", i);
			fail(err, prefix, "must be an event object {id?, event, data}");
			goto bad;
		}
		snprintf(prefix, sizeof prefix, "events[%zu].", i);
		if (check_event(ev, prefix, &out->events[i], err) != 0)
			goto bad;
	}
	return 0;
bad:
	validate_ingest_free(out);
	return -1;
}

void validate_ingest_free(struct validate_ingest *v)
{
	free(v->events);
	v->events = NULL;
	v->n = 0;
}

/* Characters, not bytes: jansson has already checked the string is UTF-8. */
static size_t utf8_len(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* An events list; name is its field ("events" or "filters.events"). */
static int check_events_list(json_t *events, const char *name, struct validate_error *err)
{
	size_t n = json_array_size(events);
	if (!json_is_array(events) || n == 0 || n > VALIDATE_EVENTS_MAX)
		return fail(err, name, "must be an array of 1..%d event types or \"*\"",
			    VALIDATE_EVENTS_MAX);
	for (size_t i = 0; i < n; i++) {
		char f[48];
		snprintf(f, sizeof f, "%s[%zu]", name, i);
		const char *type = json_string_value(json_array_get(events, i));
		if (validate_event_type(type, true, f, err) != 0)
			return -1;
	}
	return 0;
}

/* True if every string of a is in b. */
static bool events_within(json_t *a, json_t *b)
{
	size_t i, j;
	json_t *x, *y;
	json_array_foreach(a, i, x) {
		bool found = false;
		json_array_foreach(b, j, y) {
			if (json_equal(x, y)) {
				found = true;
				break;
			}
		}
		if (!found)
			return false;
	}
	return true;
}

bool validate_events_same(json_t *a, json_t *b)
{
	return events_within(a, b) && events_within(b, a);
}

/* "filters": null, or an object filter_compile accepts whose "events" (if
 * any) is an events list. */
static int check_filters(json_t *v, struct validate_endpoint *out, struct validate_error *err)
{
	if (json_is_null(v)) {
		out->filters = NULL;
		return 0;
	}
	if (!json_is_object(v))
		return fail(err, "filters", "must be an object of conditions, or null");
	json_t *fe = json_object_get(v, "events");
	if (fe != NULL && check_events_list(fe, "filters.events", err) != 0)
		return -1;
	struct filter *f = NULL;
	char field[128], msg[256];
	if (filter_compile(v, &f, field, sizeof field, msg, sizeof msg) != 0)
		return fail(err, field, "%s", msg);
	filter_free(f);
	out->filters = v;
	out->filter_events = fe;
	return 0;
}

static int check_rate_limit(json_t *v, struct validate_endpoint *out, struct validate_error *err)
{
	if (json_is_null(v)) {
		out->rate_limit = 0;
		return 0;
	}
	double r = json_is_number(v) ? json_number_value(v) : -1;
	if (r < 0 || r > VALIDATE_RATE_LIMIT_MAX)
		return fail(err, "rate_limit", "must be null or 0 (no limit), or requests per "
					       "second up to %d",
			    VALIDATE_RATE_LIMIT_MAX);
	out->rate_limit = r;
	return 0;
}

/* An integer lo..hi at field name into *out. */
static int check_int(json_t *v, const char *name, json_int_t lo, json_int_t hi, int *out,
		     struct validate_error *err)
{
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return fail(err, name, "must be an integer %lld..%lld", (long long)lo,
			    (long long)hi);
	*out = (int)json_integer_value(v);
	return 0;
}

static int check_batch(json_t *v, struct validate_endpoint *out, struct validate_error *err)
{
	static const char *const allowed[] = {"max_events", "max_wait_ms", NULL};
	out->batch_max_events = 0;
	out->batch_max_wait_ms = 0;
	if (json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return fail(err, "batch", "must be null or {\"max_events\", \"max_wait_ms\"}");
	if (no_unknown(v, "batch.", allowed, err) != 0)
		return -1;
	json_t *me = json_object_get(v, "max_events");
	if (me == NULL)
		return fail(err, "batch.max_events", "required: the most events in one request");
	if (check_int(me, "batch.max_events", 1, VALIDATE_BATCH_EVENTS_MAX,
		      &out->batch_max_events, err) != 0)
		return -1;
	json_t *mw = json_object_get(v, "max_wait_ms");
	out->batch_max_wait_ms = ENDPOINT_BATCH_WAIT_DEFAULT;
	if (mw != NULL && check_int(mw, "batch.max_wait_ms", 0, VALIDATE_BATCH_WAIT_MAX,
				    &out->batch_max_wait_ms, err) != 0)
		return -1;
	return 0;
}

/* The fields hookd sets and shows, which a client may not send. */
static int no_read_only(json_t *body, struct validate_error *err)
{
	static const char *const read_only[] = {"circuit", "next_probe_at", "paused_until",
						"disabled_reason", "id", "created_at",
						"updated_at", "public_key",
						"secret_previous_until", NULL};
	for (size_t i = 0; read_only[i] != NULL; i++) {
		if (json_object_get(body, read_only[i]) != NULL)
			return fail(err, read_only[i], "read-only: hookd sets this field");
	}
	return 0;
}

/* "headers", or the seed's spelling "custom_headers" (one of them). */
static int check_headers_field(json_t *body, struct validate_endpoint *out,
			       struct validate_error *err)
{
	json_t *v = json_object_get(body, "headers");
	json_t *seed = json_object_get(body, "custom_headers");
	if (v != NULL && seed != NULL)
		return fail(err, "custom_headers",
			    "give headers or custom_headers (one field under two names), not both");
	out->headers_field = v != NULL ? "headers" : "custom_headers";
	if (v == NULL && (v = seed) == NULL)
		return 0;
	char field[128], named[160], msg[256];
	if (!json_is_null(v) &&
	    custom_headers_validate(v, field, sizeof field, msg, sizeof msg) != 0) {
		/* field is "headers" or "headers.<Name>": name it as given. */
		snprintf(named, sizeof named, "%s%s", out->headers_field,
			 field + strlen("headers"));
		return fail(err, named, "%s", msg);
	}
	out->headers = json_is_null(v) ? NULL : v;
	out->fields |= VALIDATE_EP_HEADERS;
	return 0;
}

/* "secret" and "signing" (create only), checked together by sign_choice. */
static int check_secret(json_t *body, bool create, struct validate_endpoint *out,
			struct validate_error *err)
{
	json_t *v = json_object_get(body, "secret"), *sg = json_object_get(body, "signing");
	const char *field;
	char why[192];
	if (v == NULL && sg == NULL)
		return 0;
	if ((v && !json_is_string(v)) || (sg && !json_is_string(sg)))
		return fail(err, v && !json_is_string(v) ? "secret" : "signing", "must be a string");
	if (sg && !create)
		return fail(err, "signing", "set at creation; change it with POST "
					    "/v1/endpoints/{id}/secret/rotate");
	if (sign_choice(json_string_value(v), json_string_value(sg), &out->signing, &field, why,
			sizeof why) != 0)
		return fail(err, field, "%s", why);
	out->secret = json_string_value(v);
	out->fields |= (v ? VALIDATE_EP_SECRET : 0) | (sg ? VALIDATE_EP_SIGNING : 0);
	return 0;
}

/* filters.events and events are one list under two spellings. */
static int one_events_list(struct validate_endpoint *out, struct validate_error *err)
{
	if (out->filter_events == NULL)
		return 0;
	if (out->events == NULL) {
		out->events = out->filter_events;
		out->fields |= VALIDATE_EP_EVENTS;
	} else if (!validate_events_same(out->events, out->filter_events)) {
		return fail(err, "filters.events",
			    "differs from events: they are one list, give it once or the same in "
			    "both");
	}
	return 0;
}

/* rate_limit, max_in_flight and batch, the ones given. */
static int check_control(json_t *body, struct validate_endpoint *out, struct validate_error *err)
{
	json_t *v;
	if ((v = json_object_get(body, "rate_limit")) != NULL) {
		if (check_rate_limit(v, out, err) != 0)
			return -1;
		out->fields |= VALIDATE_EP_RATE_LIMIT;
	}
	if ((v = json_object_get(body, "max_in_flight")) != NULL) {
		if (check_int(v, "max_in_flight", 1, VALIDATE_MAX_IN_FLIGHT_MAX,
			      &out->max_in_flight, err) != 0)
			return -1;
		out->fields |= VALIDATE_EP_MAX_IN_FLIGHT;
	}
	if ((v = json_object_get(body, "batch")) != NULL) {
		if (check_batch(v, out, err) != 0)
			return -1;
		out->fields |= VALIDATE_EP_BATCH;
	}
	return 0;
}

/* "signatures": a non-empty array of scheme names, each known; on a create
 * with an Ed25519 secret it must hold "standard", its only scheme. */
static int check_signatures(json_t *body, bool create, struct validate_endpoint *out,
			    struct validate_error *err)
{
	json_t *v = json_object_get(body, "signatures"), *el;
	size_t i;
	if (v == NULL)
		return 0;
	if (!json_is_array(v) || json_array_size(v) == 0)
		return fail(err, "signatures",
			    "must be a non-empty array of \"standard\", \"pixelpatrol\", "
			    "\"webhook_signature\"");
	json_array_foreach(v, i, el) {
		const char *name = json_string_value(el);
		unsigned bit = name ? sign_scheme_bit(name) : 0;
		if (bit == 0)
			return fail(err, "signatures",
				    "unknown scheme%s%.64s%s: give \"standard\", \"pixelpatrol\" or "
				    "\"webhook_signature\"",
				    name ? " \"" : "", name ? name : "", name ? "\"" : "");
		out->signatures |= bit;
	}
	if (create && out->signing != SIGN_HMAC && !(out->signatures & SIGN_SCHEME_STANDARD))
		return fail(err, "signatures", "an Ed25519 endpoint signs with \"standard\" (v1a) "
					       "only: the list must hold it");
	out->fields |= VALIDATE_EP_SIGNATURES;
	return 0;
}

int validate_endpoint(json_t *body, bool create, bool allow_http, struct validate_endpoint *out,
		      struct validate_error *err)
{
	static const char *const allowed[] = {"url", "description", "events", "secret", "enabled",
					      "filters", "headers", "rate_limit",
					      "max_in_flight", "batch", "signing",
					      "custom_headers", "signatures", NULL};
	memset(out, 0, sizeof *out);
	if (!json_is_object(body))
		return fail(err, NULL, "the body must be a JSON object");
	if (no_read_only(body, err) != 0 || no_unknown(body, "", allowed, err) != 0)
		return -1;
	json_t *v = json_object_get(body, "url");
	if (v != NULL) {
		if (validate_url(json_string_value(v), allow_http, err) != 0)
			return -1;
		out->url = json_string_value(v);
		out->fields |= VALIDATE_EP_URL;
	} else if (create) {
		return fail(err, "url", "required: the URL deliveries are POSTed to");
	}
	if ((v = json_object_get(body, "description")) != NULL) {
		if (!json_is_string(v))
			return fail(err, "description", "must be a string");
		if (utf8_len(json_string_value(v)) > VALIDATE_DESCRIPTION_MAX)
			return fail(err, "description", "at most %d characters",
				    VALIDATE_DESCRIPTION_MAX);
		out->description = json_string_value(v);
		out->fields |= VALIDATE_EP_DESCRIPTION;
	}
	if ((v = json_object_get(body, "events")) != NULL) {
		if (check_events_list(v, "events", err) != 0)
			return -1;
		out->events = v;
		out->fields |= VALIDATE_EP_EVENTS;
	}
	if (check_secret(body, create, out, err) != 0)
		return -1;
	if ((v = json_object_get(body, "enabled")) != NULL) {
		if (!json_is_boolean(v))
			return fail(err, "enabled", "must be true or false");
		out->enabled = json_is_true(v);
		out->fields |= VALIDATE_EP_ENABLED;
	}
	if ((v = json_object_get(body, "filters")) != NULL) {
		if (check_filters(v, out, err) != 0)
			return -1;
		out->fields |= VALIDATE_EP_FILTERS;
	}
	if (one_events_list(out, err) != 0)
		return -1;
	if (check_headers_field(body, out, err) != 0)
		return -1;
	if (check_control(body, out, err) != 0)
		return -1;
	return check_signatures(body, create, out, err);
}

/* A small request body: a JSON object with only the allowed keys. */
static int object_body(json_t *body, const char *const *allowed, struct validate_error *err)
{
	if (!json_is_object(body))
		return fail(err, NULL, "the body must be a JSON object");
	return no_unknown(body, "", allowed, err);
}

int validate_dlq_retry(json_t *body, const char **endpoint_id, struct validate_error *err)
{
	static const char *const allowed[] = {"endpoint_id", NULL};
	if (object_body(body, allowed, err) != 0)
		return -1;
	json_t *v = json_object_get(body, "endpoint_id");
	if (v == NULL)
		return fail(err, "endpoint_id",
			    "required: the endpoint whose dead letters to retry");
	if (!json_is_string(v))
		return fail(err, "endpoint_id", "must be a string");
	if (validate_query_id(json_string_value(v), "endpoint_id", err) != 0)
		return -1;
	*endpoint_id = json_string_value(v);
	return 0;
}

int validate_test_body(json_t *body, json_t **data, struct validate_error *err)
{
	static const char *const allowed[] = {"data", NULL};
	*data = NULL;
	if (body == NULL)
		return 0;
	if (object_body(body, allowed, err) != 0)
		return -1;
	json_t *v = json_object_get(body, "data");
	if (v != NULL && !json_is_object(v))
		return fail(err, "data", "must be a JSON object");
	*data = v;
	return 0;
}

int validate_event_replay(json_t *body, const char **endpoint_id, struct validate_error *err)
{
	static const char *const allowed[] = {"endpoint_id", NULL};
	*endpoint_id = NULL;
	if (body == NULL)
		return 0;
	if (object_body(body, allowed, err) != 0)
		return -1;
	json_t *v = json_object_get(body, "endpoint_id");
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return fail(err, "endpoint_id", "must be a string");
	if (validate_query_id(json_string_value(v), "endpoint_id", err) != 0)
		return -1;
	*endpoint_id = json_string_value(v);
	return 0;
}

/* An RFC 3339 time at field name of body into *ms. */
static int check_time(json_t *v, const char *name, int64_t *ms, struct validate_error *err)
{
	const char *s = json_string_value(v);
	if (s == NULL || strlen(s) > 64 || rfc3339_parse(s, ms) != 0)
		return fail(err, name, "must be an RFC 3339 time, e.g. \"2026-11-27T13:02:31Z\"");
	return 0;
}

int validate_replay_window(json_t *body, int64_t now, int64_t *since, int64_t *until,
			   struct validate_error *err)
{
	static const char *const allowed[] = {"since", "until", NULL};
	if (object_body(body, allowed, err) != 0)
		return -1;
	json_t *v = json_object_get(body, "since");
	if (v == NULL)
		return fail(err, "since", "required: the start of the window (RFC 3339)");
	if (check_time(v, "since", since, err) != 0)
		return -1;
	*until = now;
	v = json_object_get(body, "until");
	if (v != NULL && !json_is_null(v)) {
		if (check_time(v, "until", until, err) != 0)
			return -1;
		if (*since >= *until)
			return fail(err, "until", "must be after since");
	} else if (*since >= *until) {
		return fail(err, "since", "must be before until (now)");
	}
	return 0;
}

int validate_idempotency_key(const char *key, struct validate_error *err)
{
	size_t len = key ? strlen(key) : 0;
	if (len == 0 || len > VALIDATE_IDEM_KEY_MAX)
		return fail(err, "Idempotency-Key", "must be 1..%d printable ASCII characters",
			    VALIDATE_IDEM_KEY_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)key[i];
		if (c < 0x20 || c > 0x7e)
			return fail(err, "Idempotency-Key", "must be 1..%d printable ASCII "
							    "characters",
				    VALIDATE_IDEM_KEY_MAX);
	}
	return 0;
}

int validate_limit(const char *s, int *out, struct validate_error *err)
{
	if (s == NULL) {
		*out = VALIDATE_LIMIT_DEFAULT;
		return 0;
	}
	size_t len = strlen(s);
	int v = 0;
	if (len == 0 || len > 4)
		goto bad;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			goto bad;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > VALIDATE_LIMIT_MAX)
		goto bad;
	*out = v;
	return 0;
bad:
	return fail(err, "limit", "must be an integer 1..%d", VALIDATE_LIMIT_MAX);
}

static bool visible_ascii(const char *s, size_t min, size_t max)
{
	size_t len = strlen(s);
	if (len < min || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

int validate_cursor(const char *s, struct validate_error *err)
{
	if (s != NULL && !visible_ascii(s, 1, STORE_CURSOR_MAX - 1))
		return fail(err, "cursor", "not a cursor this server handed out");
	return 0;
}

int validate_query_id(const char *s, const char *field, struct validate_error *err)
{
	if (s != NULL && !visible_ascii(s, 1, ID_MAX - 1))
		return fail(err, field, "must be an id of 1..%d characters", ID_MAX - 1);
	return 0;
}

int validate_delivery_status(const char *s, int *out, struct validate_error *err)
{
	static const struct {
		const char *name;
		enum delivery_status st;
	} names[] = {
		{"pending", DELIVERY_PENDING},
		{"succeeded", DELIVERY_SUCCEEDED},
		{"dead", DELIVERY_DEAD},
	};
	if (s == NULL) {
		*out = -1;
		return 0;
	}
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcmp(s, names[i].name) == 0) {
			*out = (int)names[i].st;
			return 0;
		}
	}
	return fail(err, "status", "must be pending, succeeded or dead");
}

int validate_query_type(const char *s, const char *field, struct validate_error *err)
{
	if (s == NULL)
		return 0;
	if (strcmp(s, "*") == 0)
		return fail(err, field, "must be one event type (leave it out for every type)");
	return validate_event_type(s, true, field, err);
}

/* One optional RFC 3339 query time. */
static int query_time(const char *s, const char *field, bool *has, int64_t *ms,
		      struct validate_error *err)
{
	*has = s != NULL;
	if (s != NULL && (strlen(s) > 64 || rfc3339_parse(s, ms) != 0))
		return fail(err, field, "must be an RFC 3339 time, e.g. 2026-11-27T13:02:31Z");
	return 0;
}

int validate_query_window(const char *since, const char *until, bool *has_since,
			  int64_t *since_ms, bool *has_until, int64_t *until_ms,
			  struct validate_error *err)
{
	if (query_time(since, "since", has_since, since_ms, err) != 0 ||
	    query_time(until, "until", has_until, until_ms, err) != 0)
		return -1;
	if (*has_since && *has_until && *since_ms >= *until_ms)
		return fail(err, "until", "must be after since");
	return 0;
}

bool validate_content_type_json(const char *ct)
{
	if (ct == NULL)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, "application/json", 16) != 0)
		return false;
	ct += 16;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* ---- the stored text of a JSON value ---- */

int validate_real_digits(double v)
{
	char buf[40];
	int p;
	for (p = 15; p < 17; p++) {
		snprintf(buf, sizeof buf, "%.*g", p, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return p;
}

size_t validate_real_text(double v, int prec, char out[VALIDATE_REAL_OUT])
{
	char buf[VALIDATE_REAL_OUT + 8];
	int n = snprintf(buf, sizeof buf, "%.*g", prec, v);
	size_t o = 0;
	if (n <= 0 || (size_t)n >= sizeof buf)
		return 0;
	const char *e = strchr(buf, 'e');
	if (e == NULL) {
		memcpy(out, buf, (size_t)n);
		o = (size_t)n;
		if (strchr(buf, '.') == NULL) {
			memcpy(out + o, ".0", 2);
			o += 2;
		}
		return o;
	}
	memcpy(out, buf, (size_t)(e - buf + 1));
	o = (size_t)(e - buf + 1);
	const char *x = e + 1;
	if (*x == '-')
		out[o++] = *x++;
	else if (*x == '+')
		x++;
	while (*x == '0' && x[1] != '\0')
		x++;
	while (*x)
		out[o++] = *x++;
	return o;
}

/* Largest validate_real_digits of any real in j. jansson prints every real
 * with 17 digits by default, which turns 0.92 into 0.92000000000000004; the
 * smallest lossless precision keeps what clients sent readable. */
static int real_precision(json_t *j, int depth)
{
	int p = 15;
	if (depth > 64)
		return 17;
	if (json_is_real(j)) {
		p = validate_real_digits(json_real_value(j));
	} else if (json_is_object(j)) {
		const char *k;
		json_t *v;
		json_object_foreach(j, k, v) {
			int q = real_precision(v, depth + 1);
			p = q > p ? q : p;
		}
	} else if (json_is_array(j)) {
		size_t i;
		json_t *v;
		json_array_foreach(j, i, v) {
			int q = real_precision(v, depth + 1);
			p = q > p ? q : p;
		}
	}
	return p;
}

char *validate_json_text(json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(real_precision(j, 0)));
}
