/* api_internal: what api.c shares with the resource handlers
 * (api_endpoints.c, api_events.c, api_deliveries.c). Private to the API. */
#ifndef HOOKD_API_INTERNAL_H
#define HOOKD_API_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "api.h"
#include "metrics.h"
#include "model.h"
#include "netguard.h"
#include "store.h"
#include "util.h"
#include "validate.h"

/* Read connections: one per server thread is enough, as a handler holds one
 * only for the length of its reads. */
#define API_POOL_MAX 32

struct api {
	struct api_config cfg;
	struct MHD_Daemon *daemon;
	struct commit *writer;
	struct epcache *cache;
	struct dispatch *dispatch;
	unsigned port;

	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cv;
	struct store *pool[API_POOL_MAX];
	bool pool_busy[API_POOL_MAX];
	size_t pool_n;

	/* Requests waiting for the commit thread; api_stop waits for zero,
	 * as libmicrohttpd must not be stopped with suspended connections. */
	pthread_mutex_t wait_mu;
	pthread_cond_t wait_cv;
	size_t waiting;
	bool stopping;

	/* The destination guard, to refuse endpoint URLs at a blocked literal
	 * address (api_endpoints.c); the dispatcher applies it on every dial. */
	struct netguard netguard;
	/* api_guard.c: --api-allow, the request limits, API keys, --ingest-rate. */
	struct api_guard *guard;
	/* api_conns.c: the connection caps and the request deadline. */
	struct api_conns *conns;
	/* api_metrics.c: the --metrics-listen server, or NULL. */
	struct MHD_Daemon *metrics_daemon;
	unsigned metrics_port;
};

enum api_method { API_GET = 0, API_POST, API_PATCH, API_DELETE, API_OTHER };

struct api_req;

/* A write the request hands to the commit thread. Embed it first in a
 * handler's own struct; api_submit fills op.done. */
struct api_op {
	struct commit_op op;
	struct api_req *req;
	int rc;   /* apply's result (STORE_*), set before the request resumes */
	/* (docs/operations.md#faults-and-what-hookd-does) Rc is a failure and the store said its volume was full
	 * when it came back (set with rc; api_store_error answers 507). */
	bool storage_full;
	/* Commit thread, after a successful commit, before the request resumes:
	 * side effects that must follow the commit order (cache, dispatcher). */
	void (*committed)(struct api_op *o);
	/* Commit thread, after committed(): NULL or a function that returns
	 * true when o has another part to write (a large fan-out, written in
	 * parts); it has set o up for that part, which is queued again behind
	 * whatever other requests queued meanwhile. The request resumes after
	 * the last part (or the first that fails). */
	bool (*next_part)(struct api_op *o);
	/* Server thread, after the resume: fills the response from o. */
	void (*respond)(struct api_req *r, struct api_op *o);
	/* Frees o (and what it owns) when the request ends. */
	void (*destroy)(struct api_op *o);
};

/* One HTTP request, from its first header to its completion. */
struct api_req {
	struct api *api;
	struct MHD_Connection *conn;
	enum api_method method;
	const struct api_route *route;
	char id[ID_MAX];          /* the {id} of the path, if the route has one */
	bool has_body;            /* Content-Length > 0 or chunked */
	bool expect_continue;     /* Expect: 100-continue */
	unsigned long long announced; /* Content-Length, 0 if none */
	struct dynbuf body;
	bool too_large;           /* body went over max_body */
	size_t discarded;         /* bytes of a refused body dropped */
	bool dispatched;          /* the handler ran */
	/* The response to queue: status and JSON (NULL for an empty body). */
	unsigned status;
	json_t *resp;
	char *text;               /* or the body as JSON text (malloc'd), if set */
	size_t text_len;
	struct api_op *op;        /* the write in progress, if any */
	bool waiting;             /* counted in api.waiting until resumed */
	bool started;             /* the access handler has seen this request */
	bool read_whole;          /* header and body are in (api_conns clock stopped) */
	size_t url_len;           /* bytes of the raw request target (path and query) */
	unsigned retry_after;     /* seconds, sent as Retry-After when set (429) */
	int64_t t0_us;            /* monotonic us when the request arrived (metrics) */
	const char *ctype;        /* Content-Type of a text body; NULL = application/json */
	bool ui;                  /* a /ui path: the response gets api_ui_headers */
	struct MHD_Response *raw; /* or a response built whole (api_ui.c), queued as is */
	bool close;               /* the framing is unknown: answer at once, then close */
	bool ingest_scope;        /* authenticated with an ingest-scoped key */
};

struct api_route {
	const char *pattern;      /* "/v1/endpoints/{}" ({} = one path segment, the id) */
	unsigned methods;         /* 1 << enum api_method */
	const char *allow;        /* the Allow header for 405 */
	void (*handler[API_OTHER])(struct api_req *r);
};

/* Responses: set r->status and r->resp (taking the reference). */
void api_reply(struct api_req *r, unsigned status, json_t *body);
/* The same with a body already written as JSON text (malloc'd; taken). */
void api_reply_text(struct api_req *r, unsigned status, char *text, size_t len);
/* The contract's error body {"error":{"code","message","field"}}; field NULL
 * -> JSON null. */
void api_error(struct api_req *r, unsigned status, const char *code, const char *field,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void api_invalid(struct api_req *r, const struct validate_error *err);
/* 500 internal (after an unexpected store or memory failure). */
void api_internal_error(struct api_req *r, const char *what);
/* The status and error for a store result other than STORE_OK: 404, 409,
 * 507 storage_full while the store's volume is full (docs/operations.md#faults-and-what-hookd-does), else 500. */
void api_store_error(struct api_req *r, int rc, const char *what);
/* 507 storage_full with Retry-After (API_STORAGE_RETRY_AFTER_S) and why as
 * the message (docs/operations.md#faults-and-what-hookd-does). */
#define API_STORAGE_RETRY_AFTER_S 5
void api_storage_full(struct api_req *r, const char *why);
/* 503 store_unavailable with Retry-After: the database server cannot be
 * reached (STORE_COND_UNREACHABLE); nothing of the request was stored. */
#define API_STORE_UNAVAILABLE_RETRY_AFTER_S 5
void api_store_unavailable(struct api_req *r);

/* Compact JSON text of j, reals with the fewest digits that read back
 * exactly (malloc'd; NULL if out of memory). */
char *api_dump(json_t *j);
/* Parses the request body as a JSON object; on failure replies 400
 * invalid_json and returns NULL. */
json_t *api_body_json(struct api_req *r);
/* A query-string argument (decoded) or NULL. */
const char *api_arg(struct api_req *r, const char *name);
/* Checks that every query parameter is one of allowed (NULL-terminated;
 * NULL = none allowed), none is given twice and each has a value; else
 * replies 400 naming it (and the ones the route takes) and returns -1.
 * Every route's parameters are checked with it before its handler runs. */
int api_args_known(struct api_req *r, const char *const *allowed);
/* Reads limit and cursor; replies 400 and returns -1 if bad. */
int api_page_args(struct api_req *r, int *limit, const char **cursor);
/* {"data": items, "next_cursor": cursor or null} (takes items). */
json_t *api_list(json_t *items, const char *next_cursor);

/* A read connection from the pool (blocks while all are in use); put it
 * back with api_store_put. NULL if none could be opened. */
struct store *api_store_get(struct api *a);
void api_store_put(struct api *a, struct store *st);
/* The database's size now (store_size) through a read connection of the
 * pool; every figure -1 if it cannot be read. For GET /v1/stats and
 * /metrics (api_stats.c). */
void api_store_size(struct api *a, struct store_size *out);

/* Suspends the connection and queues o on the commit thread. o->op.apply,
 * o->respond and o->destroy must be set; o->committed may be NULL. The
 * handler must return right after: the response comes from o->respond. */
void api_submit(struct api_req *r, struct api_op *o);

/* api_guard.c. new: the guard for cfg (parses --api-allow); 0, or -1 with a
 * reason in err. free: NULL is fine. */
int api_guard_new(const struct api_config *cfg, struct api_guard **out, char *err,
		  size_t errlen);
void api_guard_free(struct api_guard *g);
/* Checks made before authentication, on every route: the client's address
 * against --api-allow (403 forbidden), the request target's length (414)
 * and the header fields' count and bytes (431). Returns true if the request
 * was refused (the response is set). */
bool api_guard_admit(struct api_req *r);
/* Authenticates a /v1 request (Authorization: Bearer): the configured keys
 * first (constant time, no lock), then keys made with `hookd key create`
 * (SHA-256, a cache re-checked against the store at least every second);
 * then the key's scope (403 insufficient_scope) and, on POST /v1/events,
 * --ingest-rate (429 rate_limited with Retry-After). Returns true if the
 * request was refused (the response is set). */
bool api_guard_auth(struct api_req *r, const char *url, const char *method);
/* The libmicrohttpd per-connection memory for the limits in cfg: room for a
 * request line and header section past the limits, so those are answered
 * with hookd's JSON errors; larger ones get the library's own 414/431. */
size_t api_guard_memory_limit(const struct api_config *cfg);

/* The Endpoint representation: the stored fields (endpoint_to_json) plus
 * the dispatcher's "circuit", "next_probe_at" and "paused_until". NULL if
 * out of memory. */
json_t *api_endpoint_json(struct api *a, const struct endpoint *e, bool with_secret);

/* "host:port" or "[v6]:port" -> a socket address: 0, or -1 with a reason. */
int api_resolve_listen(const char *listen, struct sockaddr_storage *out, char *err,
		       size_t errlen);
/* The label of route index i for the metrics ("/v1/endpoints/{id}"; the
 * index past the last route is "unmatched"); false past that. */
bool api_route_label(size_t i, char *buf, size_t len);
/* The number of routes (the "unmatched" index). */
size_t api_route_count(void);

/* api_metrics.c: GET /metrics (admin key) and the --metrics-listen server.
 * start: 0, or -1 with a reason in err. stop: NULL daemon is fine. */
void api_metrics(struct api_req *r);
int api_metrics_listen_start(struct api *a, char *err, size_t errlen);
void api_metrics_listen_stop(struct api *a);
/* api_stats.c: GET /v1/stats. */
void api_stats(struct api_req *r);

/* Handlers. */
void api_endpoints_create(struct api_req *r);
void api_endpoints_list(struct api_req *r);
void api_endpoints_get(struct api_req *r);
void api_endpoints_patch(struct api_req *r);
void api_endpoints_delete(struct api_req *r);
void api_endpoints_rotate(struct api_req *r);
void api_events_ingest(struct api_req *r);
void api_events_get(struct api_req *r);
void api_events_list(struct api_req *r);
/* api_tools.c: the testing tools. */
void api_endpoints_test(struct api_req *r);
void api_endpoints_replay(struct api_req *r);
void api_events_replay(struct api_req *r);
void api_deliveries_list(struct api_req *r);
void api_deliveries_get(struct api_req *r);
void api_dlq_list(struct api_req *r);
void api_dlq_retry_one(struct api_req *r);
void api_dlq_retry_endpoint(struct api_req *r);

/* api_ui.c: the inspector's files. path: true for /ui and /ui/... . headers:
 * adds the CSP, nosniff, Referrer-Policy and X-Frame-Options to resp. The
 * handlers set r->raw: /ui redirects to /ui/, /ui/ is index.html, /ui/{name}
 * an embedded file (404 if none). */
bool api_ui_path(const char *url);
void api_ui_headers(struct MHD_Response *resp);
void api_ui_redirect(struct api_req *r);
void api_ui_index(struct api_req *r);
void api_ui_file(struct api_req *r);

#endif
