/* client_internal: what the API client's files share (client_args.c parses
 * a command line into struct cmd_args and picks the verb; client_cmds.c and
 * client_tail.c run it). Private to the client_* files. */
#ifndef HOOKD_CLIENT_INTERNAL_H
#define HOOKD_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "client.h"

struct cmd_args;

/* A verb's run function: returns the exit code (enum client_exit), after
 * its messages. */
typedef int (*verb_fn)(struct client *c, struct cmd_args *a);

enum verb_pos {
	POS_NONE,     /* no positional argument */
	POS_ID,       /* one id, required */
	POS_OPT_ID,   /* one id, optional */
};

struct verb {
	const char *noun;     /* "endpoint"; "tail" for tail */
	const char *name;     /* "list"; NULL for tail */
	const char *synopsis; /* after "hookd NOUN VERB": "ID [--json]" */
	const char *summary;  /* one line for the noun's help */
	const char *const *opts; /* the options beyond the common ones, NULL-ended */
	enum verb_pos pos;
	const char *pos_name; /* "ID" of what: "an endpoint id (ep_...)" */
	verb_fn run;
	const char *required; /* a string option that must be given ("url"), or NULL */
};

/* Every option of every verb; a verb reads the ones it takes. */
struct cmd_args {
	const struct verb *verb;
	const char *prog; /* "hookd endpoint get" */
	const char *pos;  /* the positional id, or NULL */
	/* connection and output */
	const char *api, *key, *key_file;
	bool json, all;
	int limit;
	const char *cursor;
	/* filters */
	const char *status, *endpoint, *event, *event_type, *type, *since, *until;
	/* request bodies */
	const char *url, *events, *description, *secret, *signing, *filters, *batch, *data, *id,
		*idempotency_key, *rate_limit;
	const char *signatures; /* --signatures a,b */
	int max_in_flight;
	bool disabled, no_headers, description_set;
	json_t *headers; /* --header K:V, repeatable: {"K": "V", ...} or NULL */
	/* tail */
	int64_t interval_ms;
	/* room for --since/--until given as a duration ("1h": an hour ago) */
	char since_buf[32], until_buf[32];
};

/* Prints "PROG: what" and the verb's usage line to stderr. Returns
 * CLIENT_EXIT_USAGE. */
int cmd_usage_error(const struct cmd_args *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The verbs (client_cmds.c). */
int cmd_endpoint_list(struct client *c, struct cmd_args *a);
int cmd_endpoint_get(struct client *c, struct cmd_args *a);
int cmd_endpoint_create(struct client *c, struct cmd_args *a);
int cmd_endpoint_update(struct client *c, struct cmd_args *a);
int cmd_endpoint_delete(struct client *c, struct cmd_args *a);
int cmd_endpoint_pause(struct client *c, struct cmd_args *a);
int cmd_endpoint_resume(struct client *c, struct cmd_args *a);
int cmd_endpoint_test(struct client *c, struct cmd_args *a);
int cmd_endpoint_rotate(struct client *c, struct cmd_args *a);
int cmd_endpoint_replay(struct client *c, struct cmd_args *a);
int cmd_event_send(struct client *c, struct cmd_args *a);
int cmd_event_get(struct client *c, struct cmd_args *a);
int cmd_event_list(struct client *c, struct cmd_args *a);
int cmd_event_replay(struct client *c, struct cmd_args *a);
int cmd_delivery_list(struct client *c, struct cmd_args *a);
int cmd_delivery_get(struct client *c, struct cmd_args *a);
int cmd_delivery_retry(struct client *c, struct cmd_args *a);
int cmd_dlq_list(struct client *c, struct cmd_args *a);
int cmd_dlq_retry(struct client *c, struct cmd_args *a);
/* client_tail.c */
int cmd_tail(struct client *c, struct cmd_args *a);

#endif
