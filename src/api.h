/* api: the HTTP API (docs/api.md) on libmicrohttpd. api.c owns the server,
 * authentication, body limits, routing and the JSON error shape; the
 * api_*.c files hold the handlers for each resource. */
#ifndef HOOKD_API_H
#define HOOKD_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "commit.h"
#include "dispatch.h"
#include "epcache.h"

struct api_config {
	const char *listen;          /* "host:port" */
	char *const *api_keys;       /* accepted bearer keys */
	size_t n_api_keys;
	size_t max_body;             /* request body limit in bytes */
	bool allow_http;             /* endpoints may have http:// URLs */
	int threads;                 /* libmicrohttpd worker threads */
	const char *db_url;          /* for the API's read connections */
	const char *node_id;         /* this node's --node-id, for GET /v1/stats (NULL: none) */
	int64_t secret_overlap_ms;   /* a rotated-out secret keeps signing this long */
	int64_t first_delay_ms;      /* --retry-schedule's first entry: an event's deliveries
				      * are due this long after it is accepted */
	/* The address guard's flags: an endpoint URL whose host is an address
	 * the guard blocks is refused (docs/security.md). */
	bool allow_private_networks;
	const char *allow_cidr;      /* CIDR,... or NULL */
	/* Who may call, and the limits of one request (docs/security.md). */
	const char *api_allow;       /* CIDR,... of allowed clients; NULL = everyone */
	int ingest_rate;             /* POST /v1/events per second per key; 0 = no limit */
	int max_json_depth;          /* nesting of a request body */
	int max_headers;             /* header fields of a request */
	size_t max_header_bytes;     /* names + values of all its header fields */
	size_t max_url;              /* bytes of the request target (path and query) */
	int max_endpoints;           /* endpoints stored, at most */
	int max_custom_headers;      /* custom headers of one endpoint */
	/* (docs/operations.md#faults-and-what-hookd-does) The fan-out of one POST /v1/events. */
	size_t max_deliveries;       /* created by one request, at most (else 422) */
	size_t max_listed;           /* listed one by one in its 202; above: counts */
	/* The queue figures the API's writes keep current (new deliveries,
	 * DLQ retries, endpoint deletes); NULL = none. Outlives the API. */
	struct queue_depth *queue;
	/* Monitoring (docs/operations.md#monitoring). */
	struct metrics *metrics;     /* fed and served; NULL = --metrics off */
	const char *metrics_listen;  /* "host:port" of the unauthenticated /metrics, or NULL */
	/* The store's conditions, shown by /healthz and GET /v1/stats; NULL =
	 * none tracked. Outlives the API. */
	struct store_health *health;
	/* Connection caps and the request deadline (api_conns.c). */
	unsigned max_connections;    /* open at once, all clients (>= 1) */
	unsigned max_connections_per_address; /* per IPv4 address or IPv6 /64; 0 = no cap */
	int64_t request_timeout_ms;  /* total time to read one request's header and body */
	int64_t idle_timeout_ms;     /* a connection with no traffic is closed after this */
	/* Sockets bound by api_listen_bind (api_listen.h) for listen and
	 * metrics_listen, which api_start owns from the call on; 0 (or -1):
	 * none, api_start binds the address itself. */
	int listen_fd;
	int metrics_listen_fd;
};

struct api;
struct metrics;
struct queue_depth;
struct store_health;

/* Starts serving. cfg's strings must outlive the server. Returns 0 and *out,
 * or -1 with a reason in err (e.g. the port is taken). */
int api_start(const struct api_config *cfg, struct commit *writer, struct epcache *cache,
	      struct dispatch *dispatch, struct api **out, char *err, size_t errlen);
/* The port actually bound (useful with ":0"). */
unsigned api_port(const struct api *a);
/* The port of the --metrics-listen listener (0 if none). */
unsigned api_metrics_port(const struct api *a);
/* Stops accepting, finishes requests, frees a. */
void api_stop(struct api *a);

#endif
