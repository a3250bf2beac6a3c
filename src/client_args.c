/* client_args: the API client's command line (`hookd NOUN VERB [ID]
 * [options]`): the verbs, their options as one flags.h table, usage and
 * --help, then the run. docs/cli.md is the user's page. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client_internal.h"
#include "flags.h"

#define OFF(f) offsetof(struct cmd_args, f)
#define MAX_OPTS 40

/* --description may be empty (it clears the description). */
static int parse_description(void *obj, const char *val, bool replace, char *why, size_t n)
{
	(void)replace, (void)why, (void)n;
	struct cmd_args *a = obj;
	a->description = val;
	a->description_set = true;
	return 0;
}

/* --header "Name: value", repeatable. */
static int parse_header(void *obj, const char *val, bool replace, char *why, size_t n)
{
	(void)replace;
	struct cmd_args *a = obj;
	const char *colon = strchr(val, ':');
	if (!colon || colon == val) {
		snprintf(why, n, "expected NAME:VALUE");
		return -1;
	}
	char name[128];
	snprintf(name, sizeof name, "%.*s", (int)(colon - val > 127 ? 127 : colon - val), val);
	const char *v = colon + 1;
	v += strspn(v, " \t");
	if (!a->headers && !(a->headers = json_object())) {
		snprintf(why, n, "out of memory");
		return -1;
	}
	if (json_object_get(a->headers, name)) {
		snprintf(why, n, "header %s given twice", name);
		return -1;
	}
	if (json_object_set_new(a->headers, name, json_string(v)) != 0) {
		snprintf(why, n, "the value is not UTF-8");
		return -1;
	}
	return 0;
}

/* Every option; a verb lists the names it takes (the first four: all). */
static const struct flag_spec all_opts[] = {
	{"api", FLAG_STRING, NULL, 0, 0, OFF(api),
	 "the API's URL (default: $HOOKD_API, else http://127.0.0.1:8080, the port from "
	 "$HOOKD_LISTEN)", NULL, NULL, "URL", FLAG_NO_ENV},
	{"key", FLAG_STRING, NULL, 0, 0, OFF(key),
	 "the API key (default: $HOOKD_KEY, else the key file)", NULL, NULL, "KEY",
	 FLAG_SECRET | FLAG_NO_ENV},
	{"key-file", FLAG_STRING, NULL, 0, 0, OFF(key_file),
	 "read the API key from this file (default: $HOOKD_KEY_FILE, else the file hookd serve "
	 "keeps beside its database: $HOOKD_API_KEY_FILE, else $HOOKD_DB.api-key, else "
	 "./hookd.db.api-key)", NULL, NULL, "PATH", FLAG_NO_ENV},
	{"json", FLAG_SWITCH, NULL, 0, 0, OFF(json),
	 "print the API's JSON answer unchanged (tail: one JSON object per line)", NULL, NULL,
	 NULL, FLAG_NO_ENV},
	{"limit", FLAG_INT, NULL, 1, 1000, OFF(limit),
	 "items per page (the API's default: 100; with --all: 1000)", NULL, NULL, "N",
	 FLAG_NO_ENV},
	{"cursor", FLAG_STRING, NULL, 0, 0, OFF(cursor),
	 "start at this page (a next_cursor from an earlier page)", NULL, NULL, "CURSOR",
	 FLAG_NO_ENV},
	{"all", FLAG_SWITCH, NULL, 0, 0, OFF(all),
	 "follow next_cursor to the end (at most 100 pages) and print one list", NULL, NULL,
	 NULL, FLAG_NO_ENV},
	{"status", FLAG_STRING, NULL, 0, 0, OFF(status), "only deliveries in this state",
	 NULL, NULL, "pending|succeeded|dead", FLAG_NO_ENV},
	{"endpoint", FLAG_STRING, NULL, 0, 0, OFF(endpoint), "only this endpoint", NULL, NULL,
	 "ENDPOINT_ID", FLAG_NO_ENV},
	{"event", FLAG_STRING, NULL, 0, 0, OFF(event), "only the deliveries of this event",
	 NULL, NULL, "EVENT_ID", FLAG_NO_ENV},
	{"event-type", FLAG_STRING, NULL, 0, 0, OFF(event_type), "only this event type", NULL,
	 NULL, "TYPE", FLAG_NO_ENV},
	{"type", FLAG_STRING, NULL, 0, 0, OFF(type), "the event type", NULL, NULL, "TYPE",
	 FLAG_NO_ENV},
	{"since", FLAG_STRING, NULL, 0, 0, OFF(since),
	 "from this time: RFC 3339 (2026-11-27T13:00:00Z) or a duration ago (30m, 2h, 7d)",
	 NULL, NULL, "TIME", FLAG_NO_ENV},
	{"until", FLAG_STRING, NULL, 0, 0, OFF(until),
	 "before this time: RFC 3339 or a duration ago", NULL, NULL, "TIME", FLAG_NO_ENV},
	{"url", FLAG_STRING, NULL, 0, 0, OFF(url), "the receiver's URL", NULL, NULL, "URL",
	 FLAG_NO_ENV},
	{"events", FLAG_STRING, NULL, 0, 0, OFF(events),
	 "the event types it receives, comma-separated ('*': every application event)", NULL,
	 NULL, "a,b", FLAG_NO_ENV},
	{"description", FLAG_CUSTOM, NULL, 0, 0, OFF(description), "a description ('' clears it)",
	 NULL, parse_description, "TEXT", FLAG_NO_ENV},
	{"secret", FLAG_STRING, NULL, 0, 0, OFF(secret),
	 "the signing secret, whsec_... or whsk_... (default: generated)", NULL, NULL, "SECRET",
	 FLAG_SECRET | FLAG_NO_ENV},
	{"signing", FLAG_STRING, NULL, 0, 0, OFF(signing), "hmac or ed25519", NULL, NULL,
	 "hmac|ed25519", FLAG_NO_ENV},
	{"filters", FLAG_STRING, NULL, 0, 0, OFF(filters),
	 "conditions on the event's data, a JSON object (null removes them; docs/api.md#filters)",
	 NULL, NULL, "JSON", FLAG_NO_ENV},
	{"header", FLAG_CUSTOM, NULL, 0, 0, OFF(headers),
	 "a custom header sent with every delivery (repeatable; on update the given set replaces "
	 "the old one)", NULL, parse_header, "NAME:VALUE", FLAG_NO_ENV},
	{"no-headers", FLAG_SWITCH, NULL, 0, 0, OFF(no_headers), "remove every custom header",
	 NULL, NULL, NULL, FLAG_NO_ENV},
	{"rate-limit", FLAG_STRING, NULL, 0, 0, OFF(rate_limit),
	 "most requests a second to it (0: no limit)", NULL, NULL, "N", FLAG_NO_ENV},
	{"signatures", FLAG_STRING, NULL, 0, 0, OFF(signatures),
	 "the signature schemes it gets, comma-separated: standard, pixelpatrol, "
	 "webhook_signature (default: all three)", NULL, NULL, "a,b", FLAG_NO_ENV},
	{"max-in-flight", FLAG_INT, NULL, 1, 1000, OFF(max_in_flight),
	 "most requests open to it at once", NULL, NULL, "N", FLAG_NO_ENV},
	{"batch", FLAG_STRING, NULL, 0, 0, OFF(batch),
	 "batches, as JSON: '{\"max_events\":50,\"max_wait_ms\":1000}', or null for none", NULL,
	 NULL, "JSON", FLAG_NO_ENV},
	{"disabled", FLAG_SWITCH, NULL, 0, 0, OFF(disabled),
	 "create it paused (deliveries wait until resume)", NULL, NULL, NULL, FLAG_NO_ENV},
	{"data", FLAG_STRING, NULL, 0, 0, OFF(data),
	 "the event's data, a JSON object; @PATH reads it from a file, @- from stdin", NULL, NULL,
	 "JSON", FLAG_NO_ENV},
	{"id", FLAG_STRING, NULL, 0, 0, OFF(id),
	 "the event's id (default: generated); a second event with it is not stored again",
	 NULL, NULL, "ID", FLAG_NO_ENV},
	{"idempotency-key", FLAG_STRING, NULL, 0, 0, OFF(idempotency_key),
	 "sent as Idempotency-Key: a retry with the same key is not stored again", NULL, NULL,
	 "KEY", FLAG_NO_ENV},
	{"interval", FLAG_DURATION, NULL, 100, 60000, OFF(interval_ms),
	 "time between two polls (default 500ms)", NULL, NULL, "DURATION", FLAG_NO_ENV},
};

#define N_COMMON 4
#define LIST_OPTS "limit", "cursor", "all"
#define EP_FIELDS "url", "events", "description", "secret", "filters", "header", \
		  "rate-limit", "max-in-flight", "batch", "signatures"

static const char *const o_none[] = {NULL};
static const char *const o_list[] = {LIST_OPTS, NULL};
static const char *const o_create[] = {EP_FIELDS, "signing", "disabled", NULL};
static const char *const o_update[] = {EP_FIELDS, "no-headers", NULL};
static const char *const o_test[] = {"data", NULL};
static const char *const o_rotate[] = {"secret", "signing", NULL};
static const char *const o_ep_replay[] = {"since", "until", NULL};
static const char *const o_send[] = {"type", "data", "id", "idempotency-key", NULL};
static const char *const o_ev_list[] = {"type", "endpoint", "since", "until", LIST_OPTS, NULL};
static const char *const o_ev_replay[] = {"endpoint", NULL};
static const char *const o_dl_list[] = {"status", "endpoint", "event", "event-type", "since",
					"until", LIST_OPTS, NULL};
static const char *const o_dlq_list[] = {"endpoint", "event-type", "since", "until", LIST_OPTS,
					 NULL};
static const char *const o_dlq_retry[] = {"endpoint", NULL};
static const char *const o_tail[] = {"endpoint", "event-type", "status", "interval", NULL};

#define EP_ID "an endpoint id (ep_...)"
static const struct verb verbs[] = {
	{"endpoint", "list", "[--limit N] [--cursor C | --all]", "list the endpoints", o_list,
	 POS_NONE, NULL, cmd_endpoint_list, NULL},
	{"endpoint", "get", "ID", "show one endpoint, its secret included", o_none, POS_ID, EP_ID,
	 cmd_endpoint_get, NULL},
	{"endpoint", "create", "--url URL [--events a,b] [--secret S] [...]",
	 "create an endpoint (prints its secret)", o_create, POS_NONE, NULL, cmd_endpoint_create,
	 "url"},
	{"endpoint", "update", "ID [--url URL] [--events a,b] [--description T] [...]",
	 "change an endpoint's fields", o_update, POS_ID, EP_ID, cmd_endpoint_update, NULL},
	{"endpoint", "delete", "ID", "delete an endpoint with its deliveries", o_none, POS_ID,
	 EP_ID, cmd_endpoint_delete, NULL},
	{"endpoint", "pause", "ID", "stop sending to it (deliveries wait)", o_none, POS_ID, EP_ID,
	 cmd_endpoint_pause, NULL},
	{"endpoint", "resume", "ID", "send to it again (the waiting deliveries go out)", o_none,
	 POS_ID, EP_ID, cmd_endpoint_resume, NULL},
	{"endpoint", "test", "ID [--data JSON]", "send it a test.webhook event", o_test, POS_ID,
	 EP_ID, cmd_endpoint_test, NULL},
	{"endpoint", "rotate", "ID [--secret S] [--signing hmac|ed25519]",
	 "give it a new secret (the old one signs beside it for a while)", o_rotate, POS_ID,
	 EP_ID, cmd_endpoint_rotate, NULL},
	{"endpoint", "replay", "ID --since TIME [--until TIME]",
	 "send it again every event it had in a time window", o_ep_replay, POS_ID, EP_ID,
	 cmd_endpoint_replay, "since"},
	{"event", "send", "--type TYPE [--data JSON] [--id ID] [--idempotency-key K]",
	 "send an event", o_send, POS_NONE, NULL, cmd_event_send, "type"},
	{"event", "get", "ID", "show an event with its deliveries", o_none, POS_ID,
	 "an event id (evt_...)", cmd_event_get, NULL},
	{"event", "list", "[--type T] [--endpoint ID] [--since T] [--until T] [--all]",
	 "list the stored events", o_ev_list, POS_NONE, NULL, cmd_event_list, NULL},
	{"event", "replay", "ID [--endpoint ENDPOINT_ID]",
	 "send a stored event again (to one endpoint, or to every one that had it)", o_ev_replay,
	 POS_ID, "an event id (evt_...)", cmd_event_replay, NULL},
	{"delivery", "list", "[--status S] [--endpoint ID] [--event ID] [--event-type T] [--all]",
	 "list deliveries", o_dl_list, POS_NONE, NULL, cmd_delivery_list, NULL},
	{"delivery", "get", "ID", "show a delivery with its attempts", o_none, POS_ID,
	 "a delivery id (dlv_...)", cmd_delivery_get, NULL},
	{"delivery", "retry", "ID", "send a dead delivery again", o_none, POS_ID,
	 "a delivery id (dlv_...)", cmd_delivery_retry, NULL},
	{"dlq", "list", "[--endpoint ID] [--event-type T] [--since T] [--until T] [--all]",
	 "list the dead letters", o_dlq_list, POS_NONE, NULL, cmd_dlq_list, NULL},
	{"dlq", "retry", "ID | --endpoint ENDPOINT_ID",
	 "send a dead delivery again, or every dead letter of an endpoint", o_dlq_retry,
	 POS_OPT_ID, "a delivery id (dlv_...)", cmd_dlq_retry, NULL},
	{"tail", NULL, "[--endpoint ID] [--event-type T] [--status S]",
	 "print new deliveries and attempts as they happen, until Ctrl-C", o_tail, POS_NONE, NULL,
	 cmd_tail, NULL},
};
#define N_VERBS (sizeof verbs / sizeof verbs[0])

static void verb_usage_line(const struct verb *v, FILE *f)
{
	fprintf(f, "usage: hookd %s%s%s %s [--api URL] [--key KEY] [--json]\n", v->noun,
		v->name ? " " : "", v->name ? v->name : "", v->synopsis);
}

int cmd_usage_error(const struct cmd_args *a, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", a->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	verb_usage_line(a->verb, stderr);
	return CLIENT_EXIT_USAGE;
}

/* The nouns' help: their verbs, one line each. */
static void noun_usage(const char *noun, FILE *f)
{
	fprintf(f, "usage: hookd %s <verb> [ID] [options]   (hookd %s <verb> --help)\n\nverbs:\n",
		noun, noun);
	for (size_t i = 0; i < N_VERBS; i++)
		if (strcmp(verbs[i].noun, noun) == 0 && verbs[i].name)
			fprintf(f, "  %-8s %s\n", verbs[i].name, verbs[i].summary);
	fputs("\nSee docs/cli.md. Exit codes: 0 done, 1 API or connection error, 2 usage.\n", f);
}

static int positional(void *obj, const char *arg)
{
	struct cmd_args *a = obj;
	if (a->verb->pos == POS_NONE || a->pos) {
		fprintf(stderr, "%s: unexpected argument '%.80s'\n", a->prog, arg);
		return -1; /* parse() prints the usage */
	}
	a->pos = arg;
	return 0;
}

/* The verb's options: the common ones, then those it names. */
static size_t verb_specs(const struct verb *v, struct flag_spec *out)
{
	size_t n = 0;
	for (size_t i = 0; i < N_COMMON; i++)
		out[n++] = all_opts[i];
	for (size_t j = 0; v->opts[j] && n < MAX_OPTS; j++)
		for (size_t i = N_COMMON; i < sizeof all_opts / sizeof all_opts[0]; i++)
			if (strcmp(all_opts[i].name, v->opts[j]) == 0)
				out[n++] = all_opts[i];
	return n;
}

static const struct verb *find_verb(const char *noun, const char *name)
{
	for (size_t i = 0; i < N_VERBS; i++)
		if (strcmp(verbs[i].noun, noun) == 0 &&
		    (verbs[i].name == NULL || (name && strcmp(verbs[i].name, name) == 0)))
			return &verbs[i];
	return NULL;
}

/* Parses the options after the verb. Returns 0, 1 after --help, or
 * CLIENT_EXIT_USAGE after a message. */
static int parse(const struct verb *v, int argc, char **argv, int first, struct cmd_args *a)
{
	struct flag_spec specs[MAX_OPTS];
	char usage[1024];
	snprintf(usage, sizeof usage,
		 "usage: hookd %s%s%s %s [options]\n\n%s.\n\noptions:\n", v->noun, v->name ? " " : "",
		 v->name ? v->name : "", v->synopsis, v->summary);
	struct flag_set fs = {.prog = a->prog, .usage = usage, .specs = specs,
			      .n = verb_specs(v, specs), .positional = positional,
			      .footer = "\nExit codes: 0 done, 1 API or connection error, 2 usage. "
					"See docs/cli.md.\n"};
	int rc = flags_parse(&fs, argc, argv, first, a);
	if (rc == 1)
		return 1;
	if (rc != 0) {
		verb_usage_line(v, stderr);
		return CLIENT_EXIT_USAGE;
	}
	if (v->pos == POS_ID && !a->pos)
		return cmd_usage_error(a, "missing %s", v->pos_name);
	for (size_t i = 0; v->required && i < fs.n; i++)
		if (strcmp(specs[i].name, v->required) == 0 &&
		    *(const char **)((const char *)a + specs[i].offset) == NULL)
			return cmd_usage_error(a, "missing --%s", v->required);
	return 0;
}

/* Picks the verb from argv ("endpoint", "list", ...). Returns it, or NULL
 * with *rc set (0 after the noun's --help, 2 after a message). */
static const struct verb *pick(int argc, char **argv, int *first, int *rc)
{
	const char *noun = argv[0];
	const struct verb *v = find_verb(noun, NULL);
	*first = 1;
	if (v && v->name == NULL)
		return v;
	*rc = CLIENT_EXIT_USAGE;
	if (argc < 2) {
		fprintf(stderr, "hookd %s: missing the verb\n", noun);
		noun_usage(noun, stderr);
		return NULL;
	}
	const char *name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
		noun_usage(noun, stdout);
		*rc = CLIENT_EXIT_OK;
		return NULL;
	}
	if (!(v = find_verb(noun, name))) {
		fprintf(stderr, "hookd %s: unknown verb '%.40s'\n", noun, name);
		noun_usage(noun, stderr);
		return NULL;
	}
	*first = 2;
	return v;
}

int client_main(int argc, char **argv)
{
	struct cmd_args a;
	struct client c;
	char prog[64];
	int first, rc = CLIENT_EXIT_OK;
	memset(&a, 0, sizeof a);
	memset(&c, 0, sizeof c);
	const struct verb *v = pick(argc, argv, &first, &rc);
	if (!v)
		return rc;
	snprintf(prog, sizeof prog, "hookd %s%s%s", v->noun, v->name ? " " : "",
		 v->name ? v->name : "");
	a.verb = v;
	a.prog = prog;
	a.interval_ms = 500;
	rc = parse(v, argc, argv, first, &a);
	if (rc == 1) {
		rc = CLIENT_EXIT_OK;
		goto out;
	}
	if (rc != 0)
		goto out;
	struct client_conf conf = {.api = a.api, .key = a.key, .key_file = a.key_file};
	rc = client_open(&c, prog, &conf);
	if (rc == CLIENT_EXIT_OK)
		rc = v->run(&c, &a);
out:
	client_close(&c);
	json_decref(a.headers);
	return rc;
}

void client_usage(FILE *f)
{
	fputs("  endpoint  list, get, create, update, delete, pause, resume, test, rotate, replay\n"
	      "            endpoints through the API (hookd endpoint --help)\n"
	      "  event     send, get, list, replay events through the API\n"
	      "  delivery  list, get, retry deliveries through the API\n"
	      "  dlq       list, retry dead letters through the API\n"
	      "  tail      print new deliveries and attempts as they happen\n",
	      f);
}
