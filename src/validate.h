/* validate: pure checks of API input (request bodies, headers, query
 * parameters). No store, no HTTP server: each validator looks only at its
 * arguments, so they can be table-tested and fuzzed. A validator returns 0,
 * or -1 after filling *err with the JSON path of the bad field ("url",
 * "events[3].event", "data") and a human message. Values handed back point
 * into the caller's JSON (borrowed, valid while it lives). */
#ifndef HOOKD_VALIDATE_H
#define HOOKD_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sign.h"

#define VALIDATE_TYPE_MAX 128
#define VALIDATE_ID_MAX 64
#define VALIDATE_BATCH_MAX 1000
#define VALIDATE_URL_MAX 2048
#define VALIDATE_DESCRIPTION_MAX 1024   /* characters (UTF-8 code points) */
#define VALIDATE_EVENTS_MAX 256
#define VALIDATE_IDEM_KEY_MAX 255
#define VALIDATE_LIMIT_MAX 1000
#define VALIDATE_LIMIT_DEFAULT 100
#define VALIDATE_RATE_LIMIT_MAX 10000   /* requests per second */
#define VALIDATE_MAX_IN_FLIGHT_MAX 1000
#define VALIDATE_BATCH_EVENTS_MAX 1000
#define VALIDATE_BATCH_WAIT_MAX 60000   /* ms */
#define VALIDATE_REPLAY_MAX 10000       /* events one endpoint replay may resend */

struct validate_error {
	char field[128];    /* JSON path or parameter name; "" when the body as a whole is bad */
	char message[256];
};

/* An event type. Clients may send 1..128 chars of [A-Za-z0-9_.:-] not
 * starting "delivery." or "endpoint."; with `subscription` the value is an
 * entry of an endpoint's events list, where "*" and hookd's operational
 * types (EVENT_DEAD_LETTERED, EVENT_ENDPOINT_DISABLED) are also allowed. */
int validate_event_type(const char *type, bool subscription, const char *field,
			struct validate_error *err);

/* A client-given event id: 1..64 chars of [A-Za-z0-9_-]. */
int validate_event_id(const char *id, const char *field, struct validate_error *err);

/* An endpoint URL: absolute http or https with a host (and optional port
 * 1..65535), at most 2048 printable ASCII chars, no user info. http:// only
 * with allow_http. Errors name field "url". */
int validate_url(const char *url, bool allow_http, struct validate_error *err);

/* One event of POST /v1/events. */
struct validate_event {
	const char *id;     /* NULL when not given */
	const char *type;
	json_t *data;       /* an object */
};

/* A POST /v1/events body: one event {id?, event, data} or a batch
 * {"events":[…]} of 1..1000. On success out->events is a malloc'd array of
 * out->n (free it with validate_ingest_free) and out->batch says which form
 * it was. Field paths: "event", "data", "events[3].event", … */
struct validate_ingest {
	struct validate_event *events;
	size_t n;
	bool batch;
};
int validate_ingest(json_t *body, struct validate_ingest *out, struct validate_error *err);
void validate_ingest_free(struct validate_ingest *v);

/* The text hookd stores and sends for a JSON value: compact, keys in their
 * order, every real printed with the fewest digits (15..17) that read back
 * exactly for all the reals of j. malloc'd; NULL if out of memory. */
char *validate_json_text(json_t *j);

/* One event of validate_ingest_fast. */
struct validate_fast_event {
	char id[VALIDATE_ID_MAX + 1];          /* "" when not given (or null) */
	char type[VALIDATE_TYPE_MAX + 1];
	char *data;                            /* malloc'd: validate_json_text of `data` */
};

struct validate_fast {
	struct validate_fast_event *events;    /* malloc'd array of n */
	size_t n;
	bool batch;
};

/* The fast path of POST /v1/events: reads the raw body without building a
 * JSON tree. Returns 0 only for a body that json_loadb (rejecting duplicate
 * keys) and validate_ingest accept and that nests at most max_depth levels
 * (validate_json_depth), with out holding exactly what they and
 * validate_json_text of each `data` give; 1 when the body needs the full
 * path (anything invalid, and valid but unusual input such as deep nesting,
 * many keys or huge integers); -1 if out of memory. Free with
 * validate_fast_free (also safe after 1 or -1). */
int validate_ingest_fast(const char *body, size_t len, int max_depth, struct validate_fast *out);
void validate_fast_free(struct validate_fast *v);

/* Fields present in an endpoint body (bit set in validate_endpoint.fields). */
enum {
	VALIDATE_EP_URL = 1 << 0,
	VALIDATE_EP_DESCRIPTION = 1 << 1,
	VALIDATE_EP_EVENTS = 1 << 2,
	VALIDATE_EP_SECRET = 1 << 3,
	VALIDATE_EP_ENABLED = 1 << 4,
	VALIDATE_EP_FILTERS = 1 << 5,
	VALIDATE_EP_HEADERS = 1 << 6,
	VALIDATE_EP_RATE_LIMIT = 1 << 7,
	VALIDATE_EP_MAX_IN_FLIGHT = 1 << 8,
	VALIDATE_EP_BATCH = 1 << 9,
	VALIDATE_EP_SIGNING = 1 << 10,  /* create only */
	VALIDATE_EP_SIGNATURES = 1 << 11,
};

struct validate_endpoint {
	unsigned fields;          /* VALIDATE_EP_* of the fields given */
	const char *url;
	const char *description;
	json_t *events;           /* array of strings (from filters.events if only there) */
	const char *secret;
	/* The secret's kind: from "signing" (create only) or the secret given;
	 * SIGN_HMAC when neither was. */
	enum sign_alg signing;
	bool enabled;
	json_t *filters;          /* object; NULL when given as null (remove them) */
	json_t *filter_events;    /* filters.events if given, else NULL */
	json_t *headers;          /* object; NULL when given as null (none) */
	/* The name the body gave it under: "headers" or the seed's
	 * "custom_headers" (errors name the field as given). */
	const char *headers_field;
	double rate_limit;        /* 0 = no limit (null or 0 given) */
	int max_in_flight;        /* 1..1000 */
	int batch_max_events;     /* 0 = batch null (not batched) */
	int batch_max_wait_ms;    /* default ENDPOINT_BATCH_WAIT_DEFAULT */
	unsigned signatures;      /* SIGN_SCHEME_* bits given (never 0 when given) */
};

/* A POST /v1/endpoints (create: url required) or PATCH body (any subset).
 * "signatures" is a non-empty array of known scheme names (sign.h); on a
 * create whose secret is Ed25519 it must hold "standard" (a PATCH is checked
 * against the stored secret by the caller).
 * Unknown fields are refused, and so are the read-only ones (circuit,
 * next_probe_at, paused_until, disabled_reason, id, created_at, updated_at,
 * public_key, secret_previous_until). "secret" and "signing" (create only)
 * are checked together by sign_choice.
 * filters are compiled to check them (errors name the key, e.g.
 * "filters.confidence.>="); headers are checked by custom_headers_validate.
 * "custom_headers" (the seed's name) is "headers" under a second name: the
 * same rules, errors named after it; giving both is refused.
 * filters.events and events are one list: given only in filters it is also
 * returned as events; given in both they must hold the same types (as sets)
 * or the field is "filters.events". Defaults are not applied here. */
int validate_endpoint(json_t *body, bool create, bool allow_http, struct validate_endpoint *out,
		      struct validate_error *err);

/* True if the events lists a and b hold the same strings (as sets). */
bool validate_events_same(json_t *a, json_t *b);

/* The optional POST /v1/endpoints/{id}/test body {"data": {…}}: body may
 * be NULL (no body). *data is the object given, or NULL for the default. */
int validate_test_body(json_t *body, json_t **data, struct validate_error *err);

/* The optional POST /v1/events/{id}/replay body {"endpoint_id": "…"}: body
 * may be NULL. *endpoint_id is NULL when not given. */
int validate_event_replay(json_t *body, const char **endpoint_id, struct validate_error *err);

/* The POST /v1/endpoints/{id}/replay body {"since": RFC 3339, "until"?:
 * RFC 3339}: until defaults to now; since must be before until. */
int validate_replay_window(json_t *body, int64_t now, int64_t *since, int64_t *until,
			   struct validate_error *err);

/* The POST /v1/dlq/retry body {"endpoint_id": "…"}. */
int validate_dlq_retry(json_t *body, const char **endpoint_id, struct validate_error *err);

/* Idempotency-Key header: 1..255 printable ASCII chars (0x20..0x7e). */
int validate_idempotency_key(const char *key, struct validate_error *err);

/* Query parameter `limit`: NULL means the default (100); else 1..1000 in
 * plain decimal. */
int validate_limit(const char *s, int *out, struct validate_error *err);

/* Query parameter `cursor`: NULL (first page) or an opaque token of 1..31
 * visible ASCII chars, as the store hands out. */
int validate_cursor(const char *s, struct validate_error *err);

/* An id in a query parameter (endpoint_id, event_id): NULL (absent) or
 * 1..64 visible ASCII chars. */
int validate_query_id(const char *s, const char *field, struct validate_error *err);

/* Query parameter `status`: NULL -> *out = -1 (any); else "pending",
 * "succeeded" or "dead" -> enum delivery_status. */
int validate_delivery_status(const char *s, int *out, struct validate_error *err);

/* An event type in a query parameter (field: "type" or "event_type"):
 * NULL (absent), a type a client may send, or one of hookd's operational
 * types; not "*" (the filter is an exact type). */
int validate_query_type(const char *s, const char *field, struct validate_error *err);

/* Query parameters `since` (inclusive) and `until` (exclusive): each NULL
 * (absent: *has_ false) or an RFC 3339 time (at most 64 chars) into ms;
 * both given, since must be before until (else the error names "until"). */
int validate_query_window(const char *since, const char *until, bool *has_since,
			  int64_t *since_ms, bool *has_until, int64_t *until_ms,
			  struct validate_error *err);

/* --max-json-depth: 0 if the JSON text nests arrays and objects at most max
 * levels deep (the outermost value is level 1: {"a":{}} has depth 2), else -1.
 * Reads the raw bytes (strings skipped), so it runs before a parser builds
 * anything; text that is not JSON at all is left to the parser. */
int validate_json_depth(const char *text, size_t len, int max);

/* True if a Content-Type header value is application/json, optionally with
 * parameters ("application/json; charset=utf-8"); case-insensitive. */
bool validate_content_type_json(const char *ct);

#endif
