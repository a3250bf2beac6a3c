/* config: one table describes every `hookd serve` setting; parsing of flags
 * and environment twins, --help and --check all come from it. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cidr.h"
#include "flags.h"
#include "netguard.h"
#include "util.h"

static int check_sync(const char *val, char *why, size_t whylen)
{
	if (strcmp(val, "full") == 0 || strcmp(val, "normal") == 0)
		return 0;
	snprintf(why, whylen, "expected full or normal");
	return -1;
}

static int add_key(struct serve_config *cfg, const char *k, size_t len, char *why, size_t whylen)
{
	if (len < 8 || len > 256) {
		snprintf(why, whylen, "an API key must be 8..256 characters");
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (k[i] <= ' ' || k[i] > '~') {
			snprintf(why, whylen, "an API key must be printable ASCII without spaces");
			return -1;
		}
	}
	if (cfg->n_api_keys == CONFIG_MAX_KEYS) {
		snprintf(why, whylen, "at most %d API keys", CONFIG_MAX_KEYS);
		return -1;
	}
	char *copy = strndup(k, len);
	if (!copy) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	cfg->api_keys[cfg->n_api_keys++] = copy;
	return 0;
}

static void clear_keys(struct serve_config *cfg)
{
	for (size_t i = 0; i < cfg->n_api_keys; i++) {
		/* Keys are secrets: wipe before freeing. */
		memset(cfg->api_keys[i], 0, strlen(cfg->api_keys[i]));
		free(cfg->api_keys[i]);
		cfg->api_keys[i] = NULL;
	}
	cfg->n_api_keys = 0;
}

/* --api-key: the first flag replaces keys from the environment, later ones add. */
static int parse_keys(void *obj, const char *val, bool replace, char *why, size_t whylen)
{
	struct serve_config *cfg = obj;
	if (replace)
		clear_keys(cfg);
	for (const char *p = val; *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (add_key(cfg, p, len, why, whylen) != 0)
			return -1;
		p += len + (comma ? 1 : 0);
	}
	if (cfg->n_api_keys == 0) {
		snprintf(why, whylen, "must not be empty");
		return -1;
	}
	return 0;
}

static int parse_schedule(void *obj, const char *val, bool replace, char *why, size_t whylen)
{
	struct serve_config *cfg = obj;
	(void)replace;
	int n = config_parse_schedule(val, cfg->schedule_ms, CONFIG_MAX_SCHEDULE);
	if (n < 1) {
		snprintf(why, whylen,
			 "expected 1..%d comma-separated delays (each at most 30d), e.g. 0,1m,5m,30m,2h",
			 CONFIG_MAX_SCHEDULE);
		return -1;
	}
	cfg->schedule_len = (size_t)n;
	return 0;
}

/* --retention: a duration of at least 1s, or off (also 0). */
static int parse_retention(void *obj, const char *val, bool replace, char *why, size_t whylen)
{
	struct serve_config *cfg = obj;
	int64_t ms;
	(void)replace;
	if (strcmp(val, "off") == 0) {
		cfg->retention_ms = 0;
		return 0;
	}
	if (duration_parse_ms(val, &ms) != 0 ||
	    (ms != 0 && (ms < 1000 || ms > 3650LL * 24 * 3600 * 1000))) {
		snprintf(why, whylen, "expected off, 0, or a duration from 1s to 3650d such as 30d");
		return -1;
	}
	cfg->retention_ms = ms;
	return 0;
}

bool config_node_id_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > CONFIG_NODE_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* --node-id: copied into the fixed field (no default: config_parse makes
 * a random one when none is given). */
static int parse_node_id(void *obj, const char *val, bool replace, char *why, size_t whylen)
{
	struct serve_config *cfg = obj;
	(void)replace;
	if (!config_node_id_valid(val)) {
		snprintf(why, whylen, "expected 1..%d characters of A-Z a-z 0-9 . _ -",
			 CONFIG_NODE_ID_MAX);
		return -1;
	}
	snprintf(cfg->node_id, sizeof cfg->node_id, "%s", val);
	return 0;
}

static int parse_log_level(void *obj, const char *val, bool replace, char *why, size_t whylen)
{
	(void)replace;
	if (log_parse_level(val, &((struct serve_config *)obj)->log_level) == 0)
		return 0;
	snprintf(why, whylen, "expected debug, info, warn, error or off");
	return -1;
}

static int check_log_format(const char *val, char *why, size_t whylen)
{
	enum log_format f;
	if (log_parse_format(val, &f) == 0)
		return 0;
	snprintf(why, whylen, "expected text or json");
	return -1;
}

static int check_listen(const char *s, char *why, size_t whylen)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long port = colon ? strtol(colon + 1, &end, 10) : -1;
	if (!colon || colon == s || !isdigit((unsigned char)colon[1]) || *end || port > 65535 ||
	    (s[0] == '[' && colon[-1] != ']')) {
		snprintf(why, whylen, "expected HOST:PORT, e.g. 127.0.0.1:8080");
		return -1;
	}
	return 0;
}

static int check_on_off(const char *val, char *why, size_t whylen)
{
	if (strcmp(val, "on") == 0 || strcmp(val, "off") == 0)
		return 0;
	snprintf(why, whylen, "expected on or off");
	return -1;
}

static bool is_postgres_url(const char *db)
{
	return strncmp(db, "postgres://", 11) == 0 || strncmp(db, "postgresql://", 13) == 0;
}

/* A PostgreSQL URL as libpq reads it; the reason quotes libpq only when the
 * URL carries no password (its messages quote pieces of the URL). */
static int check_postgres_url(const char *val, char *why, size_t whylen)
{
	char *msg = NULL;
	PQconninfoOption *o = PQconninfoParse(val, &msg);
	if (o) {
		PQconninfoFree(o);
		return 0;
	}
	char shown[512];
	config_db_display(val, shown, sizeof shown);
	bool secret = strcmp(shown, val) != 0;
	if (msg)
		msg[strcspn(msg, "\n")] = '\0';
	snprintf(why, whylen, "'%s': not a valid PostgreSQL URL%s%s", shown,
		 msg && !secret ? ": " : "", msg && !secret ? msg : "");
	PQfreemem(msg);
	return -1;
}

static int check_db(const char *val, char *why, size_t whylen)
{
	if (is_postgres_url(val))
		return check_postgres_url(val, why, whylen);
	char *path = config_sqlite_path(val);
	bool ok = path && *path;
	free(path);
	if (!ok)
		snprintf(why, whylen, "expected sqlite:PATH, a file path, or postgres://USER@HOST:PORT/DB");
	return ok ? 0 : -1;
}

#define NODE_LEASE_DEFAULT_MS 10000
#define NODE_LEASE_MIN_MS 2000
#define NODE_LEASE_MAX_MS (10 * 60 * 1000)

/* --node-lease: a duration from 2s to 10m (PostgreSQL only, checked once
 * --db is known: config_parse). */
static int parse_node_lease(void *obj, const char *val, bool replace, char *why, size_t whylen)
{
	struct serve_config *cfg = obj;
	int64_t ms;
	(void)replace;
	if (duration_parse_ms(val, &ms) != 0 || ms < NODE_LEASE_MIN_MS || ms > NODE_LEASE_MAX_MS) {
		snprintf(why, whylen, "expected a duration from 2s to 10m such as 10s");
		return -1;
	}
	cfg->node_lease_ms = ms;
	cfg->node_lease_given = true;
	return 0;
}

#define OFF(f) offsetof(struct serve_config, f)
#define DAY (24LL * 3600 * 1000)

static const struct flag_spec opts[] = {
	{"listen", FLAG_STRING, "127.0.0.1:8080", 0, 0, OFF(listen),
	 "address the API listens on, HOST:PORT (port 0 picks a free one)",
	 check_listen, NULL, NULL, 0},
	{"db", FLAG_STRING, "sqlite:./hookd.db", 0, 0, OFF(db),
	 "store: sqlite:PATH (or a bare PATH), or PostgreSQL: postgres://USER:PASSWORD@HOST:PORT/DB "
	 "(also postgresql://; libpq's PG* variables fill what the URL leaves out)", check_db, NULL,
	 NULL, FLAG_SECRET},
	{"check-integrity", FLAG_BOOL, "false", 0, 0, OFF(check_integrity),
	 "at start run SQLite's full integrity_check instead of quick_check: it also compares "
	 "every index with its table, about 3 times as long (7-9 s for 1M deliveries)", NULL, NULL,
	 NULL, 0},
	{"api-key", FLAG_CUSTOM, NULL, 0, 0, OFF(api_keys),
	 "bearer key accepted by the API (repeatable; env: comma-separated). "
	 "None: the key in --api-key-file is used, created if missing", NULL, parse_keys, NULL,
	 FLAG_SECRET},
	{"api-key-file", FLAG_STRING, NULL, 0, 0, OFF(api_key_file),
	 "file holding the API key used when no --api-key is given, created (mode 0600) with a "
	 "new key if missing. Default: <db>.api-key beside a SQLite database; none for "
	 "PostgreSQL (give --api-key or this)", NULL, NULL, NULL, 0},
	{"retry-schedule", FLAG_CUSTOM, "0,1m,5m,30m,2h", 0, 0, OFF(schedule_ms),
	 "delays before each attempt (units ms,s,m,h,d); the length is the number of attempts", NULL,
	 parse_schedule, NULL, 0},
	{"timeout", FLAG_DURATION, "30s", 100, 5 * 60 * 1000, OFF(timeout_ms),
	 "connect + response timeout of one delivery attempt", NULL, NULL, NULL, 0},
	{"allow-http", FLAG_BOOL, "false", 0, 0, OFF(allow_http),
	 "accept plain http:// endpoint URLs (default: https only)", NULL, NULL, NULL, 0},
	{"allow-private-networks", FLAG_BOOL, "false", 0, 0, OFF(allow_private_networks),
	 "allow deliveries to loopback and private addresses", NULL, NULL, NULL, 0},
	{"dlq-retention", FLAG_DURATION, "30d", 1000, 3650 * DAY, OFF(dlq_retention_ms),
	 "how long dead letters are kept (purged every quarter of this, at most hourly)",
	 NULL, NULL, NULL, 0},
	{"retention", FLAG_CUSTOM, "30d", 0, 0, OFF(retention_ms),
	 "events older than this whose deliveries are all final (succeeded, or dead past "
	 "--dlq-retention) are deleted with their deliveries, attempts and idempotency keys, in "
	 "small batches (off or 0: kept forever)", NULL, parse_retention, "DURATION", 0},
	{"max-body", FLAG_SIZE, "1048576", 1024, 64 * 1024 * 1024, OFF(max_body),
	 "largest API request body in bytes", NULL, NULL, NULL, 0},
	{"min-free-space", FLAG_SIZE, "67108864", 0, 1LL << 50, OFF(min_free_space),
	 "bytes to keep free on the database's volume: below it (looked at once a second) new "
	 "events get 507 storage_full while deliveries go on (0: off)", NULL, NULL, NULL, 0},
	{"max-in-flight", FLAG_INT, "256", 1, 10000, OFF(max_in_flight),
	 "deliveries in flight at once, over all endpoints", NULL, NULL, NULL, 0},
	{"max-connections", FLAG_INT, "1536", 1, 100000, OFF(max_connections),
	 "delivery connections open at once, in use and idle, over all receivers (at least "
	 "--max-in-flight); past it the longest idle one is closed before a new one opens",
	 NULL, NULL, NULL, 0},
	{"senders", FLAG_INT, "2", 1, 64, OFF(senders),
	 "threads that run the delivery HTTP transfers (the dispatcher thread schedules them); "
	 "more than the machine's cores gains nothing", NULL, NULL, NULL, 0},
	{"window", FLAG_SIZE, "10000", 100, 10000000, OFF(window),
	 "pending deliveries the dispatcher holds in memory; the rest wait in the store",
	 NULL, NULL, NULL, 0},
	{"max-retry-after", FLAG_DURATION, "1h", 1000, DAY, OFF(max_retry_after_ms),
	 "longest pause a receiver's Retry-After (on 429/503) may impose on its endpoint",
	 NULL, NULL, NULL, 0},
	{"breaker-failures", FLAG_INT, "10", 0, 1000000, OFF(breaker_failures),
	 "consecutive failed attempts that open an endpoint's circuit (0: never)",
	 NULL, NULL, NULL, 0},
	{"breaker-cooldown", FLAG_DURATION, "30s", 100, 10 * 60 * 1000, OFF(breaker_cooldown_ms),
	 "first open period of a circuit before its probe; doubles per failed probe, "
	 "to at most 20 times this (and 10m)", NULL, NULL, NULL, 0},
	{"sync", FLAG_STRING, "full", 0, 0, OFF(sync),
	 "full: every commit is fsynced before its 202 (survives power loss); normal: fsync only "
	 "at checkpoints (survives a crash of hookd, not of the machine). PostgreSQL: "
	 "synchronous_commit on (full) or off (normal)",
	 check_sync, NULL, NULL, 0},
	{"ca-file", FLAG_STRING, NULL, 0, 0, OFF(ca_file),
	 "PEM file of CA certificates trusted for https:// endpoints, beside the system ones",
	 NULL, NULL, NULL, 0},
	{"allow-cidr", FLAG_STRING, NULL, 0, 0, OFF(allow_cidr),
	 "CIDR,... of destinations allowed although private (e.g. 10.1.2.0/24,fd00::/8)",
	 cidr_list_check, NULL, NULL, 0},
	{"source-address", FLAG_STRING, NULL, 0, 0, OFF(source_address),
	 "local IP address deliveries are sent from, so receivers can allowlist it",
	 netguard_source_check, NULL, NULL, 0},
	{"resolve", FLAG_STRING, NULL, 0, 0, OFF(resolve),
	 "HOST:PORT:ADDR,... pinned name resolutions for deliveries (like curl --resolve); "
	 "the address guard still applies", netguard_resolve_check, NULL, NULL, 0},
	{"api-allow", FLAG_STRING, NULL, 0, 0, OFF(api_allow),
	 "CIDR,... of clients allowed to call the API; others get 403 (default: all)",
	 cidr_list_check, NULL, NULL, 0},
	{"secret-overlap", FLAG_DURATION, "24h", 0, 30 * DAY, OFF(secret_overlap_ms),
	 "after a secret rotation, how long the old secret keeps signing beside the new one",
	 NULL, NULL, NULL, 0},
	{"ingest-rate", FLAG_INT, "0", 0, 1000000, OFF(ingest_rate),
	 "POST /v1/events requests per second per API key, then 429 (0: no limit)",
	 NULL, NULL, NULL, 0},
	{"max-json-depth", FLAG_INT, "32", 2, 256, OFF(max_json_depth),
	 "deepest nesting of arrays and objects in an API request body", NULL, NULL, NULL, 0},
	{"max-headers", FLAG_INT, "64", 8, 1000, OFF(max_headers),
	 "header fields in one API request", NULL, NULL, NULL, 0},
	{"max-header-bytes", FLAG_SIZE, "16384", 1024, 1048576, OFF(max_header_bytes),
	 "bytes of all header fields of one API request", NULL, NULL, NULL, 0},
	{"max-url", FLAG_SIZE, "2048", 256, 65536, OFF(max_url),
	 "bytes of an API request's target (path and query)", NULL, NULL, NULL, 0},
	{"max-endpoints", FLAG_INT, "10000", 1, 1000000, OFF(max_endpoints),
	 "endpoints one server holds", NULL, NULL, NULL, 0},
	{"max-custom-headers", FLAG_INT, "32", 0, 32, OFF(max_custom_headers),
	 "custom headers per endpoint", NULL, NULL, NULL, 0},
	{"max-response-bytes", FLAG_SIZE, "65536", 0, 64 * 1024 * 1024, OFF(max_response_bytes),
	 "bytes of a receiver's response body read (the first 4096 are kept); the rest is discarded",
	 NULL, NULL, NULL, 0},
	{"max-deliveries-per-request", FLAG_INT, "100000", 1, 100000000,
	 OFF(max_deliveries_per_request),
	 "deliveries one POST /v1/events may create (events x matching endpoints); a request over "
	 "it is refused with 422 too_many_deliveries before anything is written",
	 NULL, NULL, NULL, 0},
	{"max-listed-deliveries", FLAG_INT, "1000", 0, 100000000, OFF(max_listed_deliveries),
	 "deliveries a 202 from POST /v1/events lists one by one; a request with more gets a "
	 "count per event instead (deliveries_count, deliveries_truncated)", NULL, NULL, NULL, 0},
	{"api-threads", FLAG_INT, "2", 1, 64, OFF(api_threads), "API server threads",
	 NULL, NULL, NULL, 0},
	{"api-max-connections", FLAG_INT, "0", 0, 65536, OFF(api_max_connections),
	 "API connections open at once, all clients; past it new ones are closed at once "
	 "(0: the open-files limit minus a reserve for the store, the senders and the metrics "
	 "listener)", NULL, NULL, NULL, 0},
	{"api-max-connections-per-address", FLAG_INT, "256", 0, 65536,
	 OFF(api_max_connections_per_address),
	 "API connections open at once from one client address (an IPv6 client counts by its "
	 "/64); past it its new ones are closed at once (0: no per-address cap)",
	 NULL, NULL, NULL, 0},
	{"api-request-timeout", FLAG_DURATION, "60s", 1000, 3600 * 1000, OFF(api_request_timeout_ms),
	 "total time to receive one API request's header and body, counted from the connection's "
	 "start or its previous response; then the connection is closed", NULL, NULL, NULL, 0},
	{"api-idle-timeout", FLAG_DURATION, "30s", 1000, 3600 * 1000, OFF(api_idle_timeout_ms),
	 "an API connection that sends and receives nothing this long is closed (whole seconds)",
	 NULL, NULL, NULL, 0},
	{"metrics", FLAG_STRING, "on", 0, 0, OFF(metrics),
	 "on: count deliveries, attempts and API requests in memory for GET /v1/stats and "
	 "GET /metrics; off: count nothing (both routes answer 404)", check_on_off, NULL, NULL, 0},
	{"metrics-max-endpoints", FLAG_INT, "100", 0, 100000, OFF(metrics_max_endpoints),
	 "endpoints that get metrics series of their own (the first seen); the rest share "
	 "endpoint=\"other\"", NULL, NULL, NULL, 0},
	{"metrics-listen", FLAG_STRING, NULL, 0, 0, OFF(metrics_listen),
	 "HOST:PORT of a second listener serving only GET /metrics, without authentication: "
	 "bind it to a private address", check_listen, NULL, NULL, 0},
	{"log-level", FLAG_CUSTOM, "info", 0, 0, OFF(log_level), "debug, info, warn, error or off", NULL,
	 parse_log_level, NULL, 0},
	{"log-format", FLAG_STRING, "text", 0, 0, OFF(log_format),
	 "text (key=value lines) or json (one JSON object a line, for log shippers)",
	 check_log_format, NULL, NULL, 0},
	{"node-id", FLAG_CUSTOM, NULL, 0, 0, OFF(node_id),
	 "this node's name among several hookd serve on one PostgreSQL database, 1..64 of "
	 "A-Z a-z 0-9 . _ - (default: a random 16-hex id made at start; logged)", NULL,
	 parse_node_id, "NAME", 0},
	{"node-lease", FLAG_CUSTOM, NULL, 0, 0, OFF(node_lease_ms),
	 "PostgreSQL only: how long a node's hold on its endpoints lasts without being renewed "
	 "(renewed every tenth of it); a dead node's endpoints move to the others within about "
	 "this plus a tenth (default 10s, 2s..10m)", NULL, parse_node_lease, "DURATION", 0},
	{"check", FLAG_BOOL, "false", 0, 0, OFF(check),
	 "validate the configuration and the database, print it, and exit", NULL, NULL, NULL, 0},
};

#define N_OPTS (sizeof opts / sizeof opts[0])

int config_parse_schedule(const char *s, int64_t *out, size_t max)
{
	size_t n = 0;
	const char *p = s;
	if (!*s)
		return -1;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char item[32];
		if (len == 0 || len >= sizeof item || n == max)
			return -1;
		memcpy(item, p, len);
		item[len] = 0;
		if (duration_parse_ms(item, &out[n]) != 0 || out[n] > 30 * DAY)
			return -1;
		n++;
		if (!comma)
			break;
		p = comma + 1;
	}
	return (int)n;
}

/* Appends n bytes of s to out (cap bytes), always NUL-terminated. */
static void put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
	while (n-- > 0 && *o + 1 < cap)
		out[(*o)++] = *s++;
	out[*o] = '\0';
}

void config_db_display(const char *db, char *out, size_t len)
{
	if (len == 0)
		return;
	if (!is_postgres_url(db)) {
		snprintf(out, len, "%s", db);
		return;
	}
	/* The user part: postgres://user:PASSWORD@host, before the first / ? #. */
	const char *auth = strstr(db, "://") + 3;
	size_t alen = strcspn(auth, "/?#");
	const char *at = memrchr(auth, '@', alen);
	const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	const char *query = strchr(auth + alen, '?');
	size_t o = 0;
	out[0] = '\0';
	for (const char *p = db; *p;) {
		if (colon && p == colon + 1) {
			put(out, len, &o, "***", 3);
			p = at;
		} else if (query && p > query && (p[-1] == '?' || p[-1] == '&') &&
			   strncmp(p, "password=", 9) == 0) {
			put(out, len, &o, "password=***", 12);
			p += 9 + strcspn(p + 9, "&#");
		} else {
			put(out, len, &o, p++, 1);
		}
	}
}

char *config_sqlite_path(const char *db)
{
	if (strncmp(db, "sqlite:", 7) == 0)
		return *db ? strdup(db + 7) : NULL;
	if (strstr(db, "://"))
		return NULL;
	return strdup(db);
}

static const struct flag_set serve_flags = {
	.prog = "hookd serve",
	.usage = "usage: hookd serve [options]\n\n"
		 "Runs the webhook API and the delivery engine. Every option also reads an\n"
		 "environment variable (shown); a flag wins over its variable.\n\n",
	.specs = opts,
	.n = N_OPTS,
	.env_prefix = "HOOKD_",
	.own_strings = true,
};

/* The node settings once every flag is read: --node-lease only with a
 * PostgreSQL --db, its default, and a random node id when none was given.
 * 0, or -1 after a message naming the flag. */
static int nodes_settle(struct serve_config *cfg)
{
	if (cfg->node_lease_given && !is_postgres_url(cfg->db)) {
		fprintf(stderr, "%s: --node-lease needs a PostgreSQL --db (postgres://...): "
				"SQLite runs a single node\n", serve_flags.prog);
		return -1;
	}
	if (!cfg->node_lease_given)
		cfg->node_lease_ms = NODE_LEASE_DEFAULT_MS;
	if (cfg->node_id[0] == '\0') {
		unsigned char r[8];
		if (random_bytes(r, sizeof r) != 0) {
			fprintf(stderr, "%s: cannot make a node id: no random bytes\n",
				serve_flags.prog);
			return -1;
		}
		for (size_t i = 0; i < sizeof r; i++)
			snprintf(cfg->node_id + 2 * i, 3, "%02x", r[i]);
	}
	return 0;
}

int config_parse(int argc, char **argv, struct serve_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	int rc = flags_parse(&serve_flags, argc, argv, 1, cfg);
	if (rc == 0)
		rc = nodes_settle(cfg);
	if (rc != 0)
		config_free(cfg);
	return rc;
}

void config_free(struct serve_config *cfg)
{
	flags_free(&serve_flags, cfg);
	clear_keys(cfg);
	memset(cfg, 0, sizeof *cfg);
}

void config_print(const struct serve_config *c)
{
	const char *base = (const char *)c;
	char d[DURATION_FORMAT_MAX];
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct flag_spec *o = &opts[i];
		const void *f = base + o->offset;
		if (strcmp(o->name, "check") == 0)
			continue;
		printf("%s = ", o->name);
		switch (o->type) {
		case FLAG_STRING:
			if (o->offset == OFF(db)) {
				char shown[1024];
				config_db_display(c->db, shown, sizeof shown);
				printf("%s\n", shown);
			} else {
				printf("%s\n", *(char *const *)f ? *(char *const *)f : "(none)");
			}
			break;
		case FLAG_DURATION:
			printf("%s\n", duration_format(*(const int64_t *)f, d, sizeof d));
			break;
		case FLAG_SIZE:
			printf("%zu\n", *(const size_t *)f);
			break;
		case FLAG_INT:
			printf("%d\n", *(const int *)f);
			break;
		case FLAG_BOOL:
			printf("%s\n", *(const bool *)f ? "true" : "false");
			break;
		default:
			if (o->parse == parse_schedule) {
				for (size_t k = 0; k < c->schedule_len; k++)
					printf("%s%s", k ? "," : "",
					       duration_format(c->schedule_ms[k], d, sizeof d));
				printf("\n");
			} else if (o->parse == parse_retention) {
				if (c->retention_ms == 0)
					printf("off\n");
				else
					printf("%lldms\n", (long long)c->retention_ms);
			} else if (o->parse == parse_node_id) {
				printf("%s\n", c->node_id);
			} else if (o->parse == parse_node_lease) {
				printf("%s\n", duration_format(c->node_lease_ms, d, sizeof d));
			} else if (o->parse == parse_keys) {
				printf("%zu configured%s\n", c->n_api_keys,
				       c->n_api_keys ? " (values hidden)"
						     : " (the key file beside the database is used)");
			} else {
				printf("%s\n", log_level_name(c->log_level));
			}
			break;
		}
	}
}
