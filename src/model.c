/* model: clearing the records and their JSON views (the API's
 * "Representations"). The views never fail on odd bytes: a response body or
 * an error message captured from a receiver may be cut mid-character or not
 * be UTF-8 at all, and jansson refuses such strings, so they are repaired
 * (each bad byte becomes U+FFFD) instead of dropping the whole view. */
#include "model.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sign.h"

static const char *const status_names[] = {
	[DELIVERY_PENDING] = "pending",
	[DELIVERY_SUCCEEDED] = "succeeded",
	[DELIVERY_DEAD] = "dead",
};

const char *delivery_status_name(enum delivery_status s)
{
	if ((unsigned)s < sizeof status_names / sizeof status_names[0])
		return status_names[s];
	return "unknown";
}

int delivery_status_parse(const char *s, enum delivery_status *out)
{
	if (!s)
		return -1;
	for (size_t i = 0; i < sizeof status_names / sizeof status_names[0]; i++) {
		if (strcmp(s, status_names[i]) == 0) {
			*out = (enum delivery_status)i;
			return 0;
		}
	}
	return -1;
}

void endpoint_clear(struct endpoint *e)
{
	free(e->url);
	free(e->description);
	json_decref(e->events);
	free(e->secret);
	free(e->secret_previous);
	json_decref(e->filters);
	json_decref(e->headers);
	free(e->disabled_reason);
	e->url = NULL;
	e->description = NULL;
	e->events = NULL;
	e->secret = NULL;
	e->secret_previous = NULL;
	e->filters = NULL;
	e->headers = NULL;
	e->disabled_reason = NULL;
}

int endpoint_max_in_flight(const struct endpoint *e)
{
	return e->max_in_flight > 0 ? e->max_in_flight : ENDPOINT_MAX_IN_FLIGHT_DEFAULT;
}

json_t *endpoint_signatures_json(unsigned signatures)
{
	unsigned s = signatures == 0 ? SIGN_SCHEMES_ALL : signatures;
	json_t *a = json_array();
	for (int i = 0; a != NULL && i < SIGN_SCHEME_COUNT; i++) {
		if ((s & (1u << i)) && json_array_append_new(a, json_string(sign_scheme_name(i)))) {
			json_decref(a);
			a = NULL;
		}
	}
	return a;
}

int endpoint_signatures_parse(json_t *v, unsigned *signatures, const char **bad)
{
	size_t i;
	json_t *el;
	unsigned s = 0;
	*bad = NULL;
	if (!json_is_array(v) || json_array_size(v) == 0)
		return -1;
	json_array_foreach(v, i, el) {
		const char *name = json_string_value(el);
		unsigned bit = name ? sign_scheme_bit(name) : 0;
		if (bit == 0) {
			*bad = name;
			return -1;
		}
		s |= bit;
	}
	*signatures = s;
	return 0;
}

void event_clear(struct event *e)
{
	free(e->type);
	free(e->data);
	e->type = NULL;
	e->data = NULL;
}

void model_code_set(char dst[MODEL_CODE_MAX], const char *code)
{
	size_t n = code != NULL ? strnlen(code, MODEL_CODE_MAX - 1) : 0;
	memcpy(dst, code != NULL ? code : "", n);
	dst[n] = '\0';
}

void delivery_clear(struct delivery *d)
{
	free(d->event_type);
	free(d->batch_id);
	d->event_type = NULL;
	d->batch_id = NULL;
}

void attempt_clear(struct attempt *a)
{
	free(a->url);
	free(a->response_body);
	free(a->headers);
	free(a->error_message);
	a->url = NULL;
	a->response_body = NULL;
	a->headers = NULL;
	a->error_message = NULL;
}

void attempt_timings_none(struct attempt_timings *t)
{
	*t = (struct attempt_timings){
		.dns_us = ATTEMPT_TIMING_NONE,
		.connect_us = ATTEMPT_TIMING_NONE,
		.tls_us = ATTEMPT_TIMING_NONE,
		.ttfb_us = ATTEMPT_TIMING_NONE,
		.total_us = ATTEMPT_TIMING_NONE,
	};
}

void attempt_measure_none(struct attempt *a)
{
	attempt_timings_none(&a->timings);
	a->remote_ip[0] = '\0';
	a->reused = false;
}

/* A JSON string for s, with every byte that is not part of valid UTF-8
 * replaced by U+FFFD. NULL only if out of memory. */
static json_t *json_string_lossy(const char *s)
{
	json_t *j = json_string(s);
	if (j)
		return j;
	size_t len = strlen(s);
	char *fixed = malloc(len * 3 + 1);
	if (!fixed)
		return NULL;
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq_len(p + i, len - i);
		if (n == 0) {
			memcpy(fixed + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
		} else {
			memcpy(fixed + o, p + i, n);
			o += n;
			i += n;
		}
	}
	fixed[o] = '\0';
	j = json_string(fixed);
	free(fixed);
	return j;
}

/* NULL-safe string view: JSON null for a NULL pointer. */
static json_t *json_string_or_null(const char *s)
{
	return s ? json_string_lossy(s) : json_null();
}

static json_t *json_time(int64_t ms)
{
	char buf[32];
	rfc3339_format(ms, buf);
	return json_string(buf);
}

/* Sets key to v, taking the reference; -1 if v is NULL (out of memory) or
 * the set fails, so a chain of sets is checked once at the end. */
static int set_new(json_t *obj, const char *key, json_t *v)
{
	if (!v)
		return -1;
	return json_object_set_new(obj, key, v);
}

/* A rate as the client most likely wrote it: 20, not 20.0; null for none. */
static json_t *json_rate(double r)
{
	if (r <= 0)
		return json_null();
	if (r < 1e15 && r == (double)(json_int_t)r)
		return json_integer((json_int_t)r);
	return json_real(r);
}

static json_t *json_batch(const struct endpoint *e)
{
	if (e->batch_max_events <= 0)
		return json_null();
	return json_pack("{s:i, s:i}", "max_events", e->batch_max_events, "max_wait_ms",
			 e->batch_max_wait_ms);
}

#define ED25519_SECRET_PREFIX "whsk_" /* SIGN_ED25519_SECRET_PREFIX */

static bool is_ed25519(const char *secret)
{
	return secret && strncmp(secret, ED25519_SECRET_PREFIX, strlen(ED25519_SECRET_PREFIX)) == 0;
}

/* The "whpk_" public key of an Ed25519 "whsk_" secret: its second half
 * (sign.h's layout, checked when the secret was accepted), so no crypto is
 * needed here. JSON null for an HMAC secret. */
static json_t *json_public_key(const char *secret)
{
	unsigned char *raw = NULL;
	size_t len = 0;
	json_t *j = NULL;
	if (!is_ed25519(secret) ||
	    b64_decode(secret + strlen(ED25519_SECRET_PREFIX), &raw, &len) != 0 || len != 64) {
		/* A damaged row shows no key rather than failing the read. */
		j = json_null();
	} else {
		char *pub = b64_encode(raw + 32, 32);
		if (pub) {
			j = json_sprintf("whpk_%s", pub);
			free(pub);
		}
	}
	if (raw) {
		memset(raw, 0, len);
		free(raw);
	}
	return j;
}

json_t *endpoint_to_json(const struct endpoint *e, bool with_secret)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_t *events = e->events ? json_deep_copy(e->events) : json_pack("[s]", "*");
	json_t *filters = e->filters ? json_deep_copy(e->filters) : json_null();
	json_t *headers = e->headers ? json_deep_copy(e->headers) : json_object();
	int bad = 0;
	bad |= set_new(o, "id", json_string_lossy(e->id));
	bad |= set_new(o, "url", json_string_lossy(e->url ? e->url : ""));
	bad |= set_new(o, "description", json_string_lossy(e->description ? e->description : ""));
	bad |= set_new(o, "events", events);
	bad |= set_new(o, "enabled", json_boolean(e->enabled));
	bad |= set_new(o, "created_at", json_time(e->created_at));
	bad |= set_new(o, "updated_at", json_time(e->updated_at));
	bad |= set_new(o, "filters", filters);
	bad |= set_new(o, "headers", headers);
	bad |= set_new(o, "rate_limit", json_rate(e->rate_limit));
	bad |= set_new(o, "max_in_flight", json_integer(endpoint_max_in_flight(e)));
	bad |= set_new(o, "batch", json_batch(e));
	bad |= set_new(o, "disabled_reason", json_string_or_null(e->disabled_reason));
	bad |= set_new(o, "signing", json_string(is_ed25519(e->secret) ? "ed25519" : "hmac"));
	bad |= set_new(o, "public_key", json_public_key(e->secret));
	bad |= set_new(o, "signatures", endpoint_signatures_json(e->signatures));
	bad |= set_new(o, "secret_previous_until",
		       e->secret_previous ? json_time(e->secret_previous_until) : json_null());
	if (with_secret)
		bad |= set_new(o, "secret", json_string_lossy(e->secret ? e->secret : ""));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *event_to_json(const struct event *e)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_t *data;
	if (e->data) {
		json_error_t jerr;
		data = json_loads(e->data, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		if (!data) {
			/* Stored by ingest from a parsed object, so this is a bug or
			 * damage; show null rather than failing the whole read. */
			log_error("model: stored event data does not parse id=%s line=%d", e->id,
				  jerr.line);
			data = json_null();
		}
	} else {
		data = json_null();
	}
	int bad = 0;
	bad |= set_new(o, "id", json_string_lossy(e->id));
	bad |= set_new(o, "event", json_string_lossy(e->type ? e->type : ""));
	bad |= set_new(o, "created_at", json_time(e->created_at));
	bad |= set_new(o, "data", data);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *delivery_to_json(const struct delivery *d)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	int bad = 0;
	bad |= set_new(o, "id", json_string_lossy(d->id));
	bad |= set_new(o, "event_id", json_string_lossy(d->event_id));
	bad |= set_new(o, "endpoint_id", json_string_lossy(d->endpoint_id));
	bad |= set_new(o, "event", json_string_lossy(d->event_type ? d->event_type : ""));
	bad |= set_new(o, "status", json_string(delivery_status_name(d->status)));
	bad |= set_new(o, "attempt_count", json_integer(d->attempt_count));
	/* Only a pending delivery has a next attempt. */
	bad |= set_new(o, "next_attempt_at",
		       d->status == DELIVERY_PENDING ? json_time(d->next_attempt_at) : json_null());
	bad |= set_new(o, "last_status",
		       d->last_status ? json_integer(d->last_status) : json_null());
	bad |= set_new(o, "last_error", json_string_or_null(d->last_error[0] ? d->last_error : NULL));
	bad |= set_new(o, "batch_id", json_string_or_null(d->batch_id));
	bad |= set_new(o, "created_at", json_time(d->created_at));
	bad |= set_new(o, "updated_at", json_time(d->updated_at));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* µs as a JSON number of ms (0.412 for 412), null for none. */
static json_t *json_ms(int64_t us)
{
	return us < 0 ? json_null() : json_real((double)us / 1000.0);
}

static json_t *json_timings(const struct attempt_timings *t)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	int bad = 0;
	bad |= set_new(o, "dns_ms", json_ms(t->dns_us));
	bad |= set_new(o, "connect_ms", json_ms(t->connect_us));
	bad |= set_new(o, "tls_ms", json_ms(t->tls_us));
	bad |= set_new(o, "ttfb_ms", json_ms(t->ttfb_us));
	bad |= set_new(o, "total_ms", json_ms(t->total_us));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *attempt_to_json(const struct attempt *a)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	int bad = 0;
	json_t *error;
	if (a->error_code[0]) {
		error = json_object();
		if (error) {
			bad |= set_new(error, "code", json_string_lossy(a->error_code));
			const char *msg = a->error_message ? a->error_message : "";
			bad |= set_new(error, "message", json_string_lossy(msg));
		}
	} else {
		error = json_null();
	}
	/* Stored as JSON text; anything but an object reads as none. */
	json_t *headers = a->headers ? json_loads(a->headers, JSON_DECODE_ANY, NULL) : NULL;
	if (!json_is_object(headers)) {
		json_decref(headers);
		headers = json_object();
	}
	bad |= set_new(o, "attempt", json_integer(a->attempt));
	bad |= set_new(o, "at", json_time(a->at));
	bad |= set_new(o, "url", json_string_lossy(a->url ? a->url : ""));
	bad |= set_new(o, "status", a->status ? json_integer(a->status) : json_null());
	bad |= set_new(o, "duration_ms", json_integer(a->duration_ms));
	bad |= set_new(o, "response_body", json_string_or_null(a->response_body));
	bad |= set_new(o, "headers", headers);
	bad |= set_new(o, "error", error);
	bad |= set_new(o, "timings", json_timings(&a->timings));
	bad |= set_new(o, "remote_ip", a->remote_ip[0] ? json_string_lossy(a->remote_ip)
							 : json_null());
	bad |= set_new(o, "connection_reused",
		       a->timings.total_us < 0 ? json_null() : json_boolean(a->reused));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* A malloc'd JSON string literal (quotes and escapes) for s, or NULL. */
static char *json_quote(const char *s)
{
	json_t *j = json_string_lossy(s);
	if (!j)
		return NULL;
	char *q = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
	json_decref(j);
	return q;
}

char *event_delivery_body(const struct event *e, size_t *len)
{
	char *id = json_quote(e->id);
	char *type = json_quote(e->type ? e->type : "");
	char *body = NULL;
	char created[32];
	const char *data = e->data ? e->data : "null";

	if (!id || !type)
		goto out;
	rfc3339_format(e->created_at, created);
	/* The data text goes in verbatim: these are the bytes signed and sent. */
	const char *parts[] = {
		"{\"id\":", id, ",\"event\":", type, ",\"created_at\":\"", created, "\",\"data\":",
		data, "}",
	};
	size_t total = 0;
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
		total += strlen(parts[i]);
	body = malloc(total + 1);
	if (!body)
		goto out;
	size_t o = 0;
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		size_t n = strlen(parts[i]);
		memcpy(body + o, parts[i], n);
		o += n;
	}
	body[o] = '\0';
	if (len)
		*len = o;
out:
	free(id);
	free(type);
	return body;
}
