/* model: the records hookd stores and their JSON form in the API.
 * Times are ms since the Unix epoch; the API shows them as RFC 3339. */
#ifndef HOOKD_MODEL_H
#define HOOKD_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util.h"

/* Operational events hookd emits itself; `*` subscriptions do not include
 * them, an endpoint must name them. Clients may not ingest types starting
 * with "delivery." or "endpoint.". */
#define EVENT_DEAD_LETTERED "delivery.dead_lettered"
#define EVENT_ENDPOINT_DISABLED "endpoint.disabled"
/* What POST /v1/endpoints/{id}/test sends. */
#define EVENT_TEST_WEBHOOK "test.webhook"

/* An endpoint's max_in_flight when none was set (0 in the struct). */
#define ENDPOINT_MAX_IN_FLIGHT_DEFAULT 10
/* batch.max_wait_ms when a batch object leaves it out. */
#define ENDPOINT_BATCH_WAIT_DEFAULT 1000

struct endpoint {
	char id[ID_MAX];        /* ep_... */
	char *url;
	char *description;      /* "" when none */
	json_t *events;         /* array of strings; ["*"] by default */
	char *secret;           /* whsec_... (HMAC) or whsk_... (Ed25519): the kind is its prefix */
	/* The secret before the last rotation, signing beside secret
	 * until secret_previous_until (ms epoch); NULL and 0 = none. */
	char *secret_previous;
	int64_t secret_previous_until;
	bool enabled;
	int64_t created_at;
	int64_t updated_at;
	/* Delivery control (docs/api.md#endpoint). A zeroed field means the default. */
	json_t *filters;        /* the filters object as given (filter.h), NULL = none */
	json_t *headers;        /* custom headers {name: value}, NULL = none ({}) */
	double rate_limit;      /* requests per second, 0 = no limit */
	int max_in_flight;      /* 0 = ENDPOINT_MAX_IN_FLIGHT_DEFAULT */
	int batch_max_events;   /* 0 = not batched */
	int batch_max_wait_ms;  /* with batch_max_events > 0 */
	char *disabled_reason;  /* why hookd disabled it (a 410), NULL if it did not */
	/* The signature schemes it gets (sign.h's SIGN_SCHEME_* bits), 0 = all
	 * three (the default). */
	unsigned signatures;
};

/* The endpoint's max_in_flight with the default applied. */
int endpoint_max_in_flight(const struct endpoint *e);

/* signatures as the API shows them: a new array of scheme names in
 * sign_scheme_name order (0 = all three). NULL if out of memory. */
json_t *endpoint_signatures_json(unsigned signatures);

/* The SIGN_SCHEME_* bits of an array of scheme names (as stored, or as
 * validated). Returns 0, or -1 if v is not a non-empty array of known
 * names (*bad then points at the offending element's name, or is NULL). */
int endpoint_signatures_parse(json_t *v, unsigned *signatures, const char **bad);

struct event {
	char id[ID_MAX];        /* evt_... or client-given */
	char *type;             /* "media.moderated" */
	char *data;             /* compact JSON text of the `data` object */
	int64_t created_at;
};

/* Room for a failure code (failure_code()'s longest is 19 bytes) with its
 * NUL. Codes live in the records by value: a static code is copied in, a
 * stored one read into it, nothing is freed. */
#define MODEL_CODE_MAX 32

/* Copies code (NULL = none) into dst, cut at MODEL_CODE_MAX - 1 bytes. */
void model_code_set(char dst[MODEL_CODE_MAX], const char *code);

enum delivery_status { DELIVERY_PENDING = 0, DELIVERY_SUCCEEDED, DELIVERY_DEAD };

struct delivery {
	int64_t seq;            /* the store's row (set by insert and reads), 0 if unknown */
	char id[ID_MAX];        /* dlv_... */
	char event_id[ID_MAX];
	char endpoint_id[ID_MAX];
	char *event_type;       /* copied from the event, for lists and filters */
	enum delivery_status status;
	int attempt_count;      /* attempts made in total (the log's numbering) */
	int schedule_index;     /* attempts made in the current round (reset by a DLQ retry) */
	int64_t next_attempt_at; /* when pending; 0 otherwise */
	int64_t created_at;
	int64_t updated_at;
	int last_status;        /* last HTTP status, 0 if none */
	/* Last failure code (failure_code()), "" if none: held by value, so no
	 * path frees or duplicates it (model_code_set fills it). */
	char last_error[MODEL_CODE_MAX];
	char *batch_id;         /* the batch (bat_…) it was last sent in, NULL if none */
};

/* How long each phase of an attempt's request took, in microseconds; -1 =
 * the phase did not happen or did not complete (ATTEMPT_TIMING_NONE). Each
 * is the phase's own duration (timings.h turns curl's cumulative marks
 * into these): dns, then connect (TCP), then tls (the handshake), then ttfb
 * (sending the request and waiting for the first response byte); total is
 * the whole transfer, set whenever one ran. */
struct attempt_timings {
	int64_t dns_us, connect_us, tls_us, ttfb_us, total_us;
};

#define ATTEMPT_TIMING_NONE (-1)
/* Room for an IPv6 address as text (INET6_ADDRSTRLEN). */
#define ATTEMPT_REMOTE_IP_MAX 46

struct attempt {
	char delivery_id[ID_MAX];
	int attempt;            /* 1-based, over the delivery's whole life */
	int64_t at;             /* when the request started */
	char *url;
	int status;             /* HTTP status, 0 if no response */
	int64_t duration_ms;
	char *response_body;    /* at most MODEL_RESPONSE_BODY_MAX bytes, may be NULL */
	char *headers;          /* response headers, JSON text {"lowercase name": "value"}, may be NULL */
	char error_code[MODEL_CODE_MAX]; /* failure_code(), "" on success; held by value */
	char *error_message;    /* human detail, NULL on success */
	/* Timings (docs/api.md#attempt). Set by attempt_measure_none() when
	 * no transfer ran or nothing is known (an attempt recorded before
	 * timings were kept). */
	struct attempt_timings timings;
	char remote_ip[ATTEMPT_REMOTE_IP_MAX]; /* the address dialled, "" = none */
	bool reused;            /* the request went over a kept-alive connection */
};

/* Sets every phase of *t to ATTEMPT_TIMING_NONE. */
void attempt_timings_none(struct attempt_timings *t);

/* Marks a's timings as unknown (every phase ATTEMPT_TIMING_NONE), with no
 * remote address and no reused connection. A zeroed struct attempt reads as
 * a transfer of 0 µs in every phase, so whoever makes one calls this. */
void attempt_measure_none(struct attempt *a);

#define MODEL_RESPONSE_BODY_MAX 4096

const char *delivery_status_name(enum delivery_status s);
/* Returns 0 and sets *out for "pending", "succeeded", "dead"; -1 otherwise. */
int delivery_status_parse(const char *s, enum delivery_status *out);

/* Frees the members (not the struct itself); safe on a zeroed struct. The
 * failure codes (last_error, error_code) are held by value, not freed. */
void endpoint_clear(struct endpoint *e);
void event_clear(struct event *e);
void delivery_clear(struct delivery *d);
void attempt_clear(struct attempt *a);

/* JSON views for the API. Each returns a new reference (NULL if out of memory).
 * endpoint_to_json includes the secret only if with_secret, and always
 * "signing" ("hmac"|"ed25519"), "public_key" (the "whpk_" key of an Ed25519
 * secret, else null) and "secret_previous_until" (when the secret replaced
 * by the last rotation stops or stopped signing, null if none); it shows the
 * stored fields only (the API adds the dispatcher's "circuit",
 * "next_probe_at" and "paused_until"). */
json_t *endpoint_to_json(const struct endpoint *e, bool with_secret);
/* The event with its `data` parsed back into an object. */
json_t *event_to_json(const struct event *e);
json_t *delivery_to_json(const struct delivery *d);
/* With "timings" {dns_ms, connect_ms, tls_ms, ttfb_ms, total_ms} (ms with
 * µs precision, null for ATTEMPT_TIMING_NONE), "remote_ip" (null if "") and
 * "connection_reused" (null when total_us is none: nothing is known). */
json_t *attempt_to_json(const struct attempt *a);

/* The exact body POSTed for a single event:
 * {"id":…,"event":…,"created_at":"RFC 3339","data":<data text>}.
 * Returns a malloc'd NUL-terminated string and its length, or NULL. */
char *event_delivery_body(const struct event *e, size_t *len);

#endif
