/* api: the HTTP API (DESIGN §4) on libmicrohttpd. api.c owns the server,
 * authentication, body limits, routing and the JSON error shape; the
 * api_*.c files hold the handlers for each resource. */
#ifndef HOOKD_API_H
#define HOOKD_API_H

#include <stdbool.h>
#include <stddef.h>

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
};

struct api;

/* Starts serving. cfg's strings must outlive the server. Returns 0 and *out,
 * or -1 with a reason in err (e.g. the port is taken). */
int api_start(const struct api_config *cfg, struct commit *writer, struct epcache *cache,
	      struct dispatch *dispatch, struct api **out, char *err, size_t errlen);
/* The port actually bound (useful with ":0"). */
unsigned api_port(const struct api *a);
/* Stops accepting, finishes requests, frees a. */
void api_stop(struct api *a);

#endif
