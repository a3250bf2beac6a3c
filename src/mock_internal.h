/* mock_internal: what mock.c (flags, server, request handling) shares with
 * mock_record.c (record lines, stats, header glue). Private to `hookd mock`. */
#ifndef HOOKD_MOCK_INTERNAL_H
#define HOOKD_MOCK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "sign.h"
#include "util.h"

struct mock_config {
	char host[256]; /* as given, IPv6 without brackets */
	char port[8];
	bool ipv6_literal;
	bool have_secret;
	struct sign_key key;
	const char *record_path;
	int status; /* 0 = not given */
	long fail_first;
	double fail_rate;
	long latency_ms;
	bool reject_invalid;
	size_t max_body;
	bool quiet;      /* no stdout line per request */
	bool record_us;  /* --record lines also carry "at_us" */
	long threads;    /* thread pool size without --latency; 0 = one per CPU */
	const char *tls_cert; /* --tls-cert: PEM certificate (chain) file; NULL = plain HTTP */
	const char *tls_key;  /* --tls-key: PEM private key file */
};

/* Counters for GET /_mock/stats. Updated without a lock; a reset while
 * requests are arriving may keep some of them (reset when idle). */
struct mock_stats {
	atomic_long requests;
	atomic_long verified;
	atomic_long unverified;
	atomic_long skipped;
	atomic_long replied_2xx;
	atomic_long replied_other;
	atomic_llong body_bytes;
	atomic_llong first_at_us; /* 0 = no request yet */
	atomic_llong last_at_us;
};

struct mock_server {
	struct mock_config cfg;
	int record_fd;
	atomic_long seq;
	struct mock_stats stats;
	pthread_mutex_t out_lock; /* one stdout line at a time */
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond; /* wakes --latency waits at shutdown */
	bool stopping;
};

/* Per-request state, from the first callback to the completion notice. */
struct mock_request {
	struct dynbuf body;
	bool too_large;
	bool stats_route; /* GET or DELETE /_mock/stats: not counted, printed or recorded */
	long seq;
	int64_t at_us;    /* arrival (headers read), unix microseconds */
	char remote_addr[64]; /* the client's IP address as text ("" if unknown) */
};

/* Wall clock, microseconds since the Unix epoch. Never fails. */
int64_t mock_now_us(void);

/* Zeroes every counter of st (before the server starts). */
void mock_stats_init(struct mock_stats *st);

/* Counts one answered request for GET /_mock/stats; verified is -1 (skipped),
 * 0 or 1, status the reply's. Lock-free. */
void mock_stats_count(struct mock_stats *st, const struct mock_request *req, int verified,
		      int status);

/* The counters as a JSON object text; with reset, they restart from zero.
 * Returns a malloc'd string the caller frees, or NULL when out of memory. */
char *mock_stats_json(struct mock_server *srv, bool reset);

/* MHD_KeyValueIterator: adds one request header to the json_t object cls
 * under its lowercase name; a repeated header is joined with ", ". Always
 * MHD_YES (a header it cannot store is skipped). */
enum MHD_Result mock_collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
				    const char *value);

/* sign_headers_collect lookup over an object filled by mock_collect_header:
 * the value of header name (lowercase), or NULL. Borrowed from ctx. */
const char *mock_header_lookup(void *ctx, const char *name);

/* Appends the request to srv->record_fd as one JSON line with a single
 * write(), so concurrent requests never interleave. Failures are logged, not
 * returned: recording never changes the reply. verified is -1, 0 or 1; res
 * the signature check (zeroed if none ran); reason NULL or why it failed. */
void mock_record_request(struct mock_server *srv, struct mock_request *req, const char *method,
			 const char *url, json_t *headers, int status, int verified,
			 const struct sign_check_result *res, const char *reason);

#endif
