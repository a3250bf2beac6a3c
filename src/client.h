/* client: hookd as a client of its own HTTP API (`hookd endpoint|event|
 * delivery|dlq|tail`, docs/cli.md). This module is the transport: where the
 * server is and which key to send (flags, then HOOKD_API / HOOKD_KEY /
 * HOOKD_KEY_FILE, then the local defaults `hookd serve` uses), one libcurl
 * easy handle with bounded responses and timeouts, and the API's errors
 * turned into one line on stderr. The key is never printed. */
#ifndef HOOKD_CLIENT_H
#define HOOKD_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "util.h"

/* Exit codes of every client command. */
enum client_exit {
	CLIENT_EXIT_OK = 0,
	CLIENT_EXIT_API = 1,   /* an API error, a connection failure, a bad response */
	CLIENT_EXIT_USAGE = 2, /* unknown verb or flag, missing or bad value */
};

#define CLIENT_BODY_MAX (16u << 20)      /* largest response body read */
#define CLIENT_CONNECT_TIMEOUT_MS 5000L
#define CLIENT_TIMEOUT_MS 30000L          /* a whole request */
#define CLIENT_KEY_MAX 256
#define CLIENT_DEFAULT_PORT "8080"        /* hookd serve's --listen default */
#define CLIENT_DEFAULT_DB "sqlite:./hookd.db"
/* JSON the client writes itself (tail's lines, --all's merged list): compact,
 * numbers as short as they round-trip (the API's 2.285, not 2.2850000000000001). */
#define CLIENT_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* Where the server is and how to authenticate, as given (NULL: not given). */
struct client_conf {
	const char *api;      /* --api */
	const char *key;      /* --key */
	const char *key_file; /* --key-file */
};

struct client {
	const char *prog;                    /* "hookd endpoint get": starts every message */
	char *base;                          /* "http://127.0.0.1:8080", no trailing '/' */
	char *auth;                          /* "Authorization: Bearer KEY"; wiped on close */
	void *curl;                          /* CURL *, reused (keep-alive) */
	volatile sig_atomic_t *stop;         /* non-NULL and set: abandon the transfer */
	const char *extra_header;            /* one more header line to send, or NULL */
};

struct client_resp {
	long status;       /* HTTP status, 0 if none came */
	struct dynbuf body; /* at most CLIENT_BODY_MAX bytes; NUL-terminated when len > 0 */
	json_t *json;      /* the body parsed, or NULL (empty or not JSON) */
};

enum client_call_rc {
	CLIENT_CALL_OK,      /* a 2xx answer */
	CLIENT_CALL_HTTP,    /* a non-2xx answer: err holds the API's message */
	CLIENT_CALL_NET,     /* no answer (refused, timeout, too large): err says why */
	CLIENT_CALL_STOPPED, /* *stop was set during the transfer */
};

/* Resolves the server URL and the key from conf, the environment and the
 * local defaults (docs/cli.md#server-and-key), and makes the curl handle.
 * Returns CLIENT_EXIT_OK, or CLIENT_EXIT_USAGE after one line on stderr (a
 * bad --api, no key found, an unreadable key file) or CLIENT_EXIT_API (curl
 * could not start). The caller calls client_close in every case. */
int client_open(struct client *c, const char *prog, const struct client_conf *conf);

/* Frees the handle and wipes the key. Safe on a zeroed or closed client. */
void client_close(struct client *c);

/* One request: method ("GET", "POST", "PATCH", "DELETE"), path with its
 * query (already escaped, starting with '/'), body as JSON text or NULL.
 * Fills *resp (free with client_resp_free, whatever the result) and, unless
 * CLIENT_CALL_OK, err with one line saying what failed (no key in it). */
enum client_call_rc client_send(struct client *c, const char *method, const char *path,
				const char *body, struct client_resp *resp, char *err,
				size_t errlen);

/* client_send that prints err as "PROG: err" to stderr. Returns
 * CLIENT_EXIT_OK for a 2xx, else CLIENT_EXIT_API. */
int client_call(struct client *c, const char *method, const char *path, const char *body,
		struct client_resp *resp);

void client_resp_free(struct client_resp *r);

/* Appends "?name=value" or "&name=value" to path, value URL-escaped, if
 * value is not NULL. Returns 0, or -1 (out of memory, too long). */
int client_query_add(struct dynbuf *path, const char *name, const char *value);

/* Appends s to path URL-escaped (for an id in a path). Returns 0 or -1. */
int client_path_add_id(struct dynbuf *path, const char *id);

/* The default API URL: http://127.0.0.1:PORT, PORT from $HOOKD_LISTEN (as
 * hookd serve reads it) or 8080; a wildcard host becomes loopback. Writes
 * into out. */
void client_default_api(char *out, size_t outlen);

/* The default key file: $HOOKD_API_KEY_FILE, else <database path>.api-key
 * with the database from $HOOKD_DB or ./hookd.db (where hookd serve writes
 * its key). Returns a malloc'd path or NULL (out of memory, or a database
 * URL that is not a file). */
char *client_default_key_file(void);

#endif
