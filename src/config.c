/* config: one table describes every `hookd serve` setting; parsing of flags
 * and environment twins, --help and --check all come from it. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "netguard.h"
#include "util.h"

enum opt_type { OPT_STRING, OPT_DURATION, OPT_SIZE, OPT_INT, OPT_BOOL, OPT_SCHEDULE, OPT_KEYS,
		OPT_LOGLEVEL };

struct opt {
	const char *name;   /* flag without "--"; env twin is HOOKD_ + upper-case, '-' -> '_' */
	enum opt_type type;
	const char *def;    /* default as text, parsed like user input; NULL = none */
	int64_t min, max;   /* bounds for DURATION (ms), SIZE (bytes), INT */
	size_t offset;      /* where in struct serve_config */
	const char *help;
	/* Extra check of a value beyond its type and bounds (NULL: none); fills why. */
	int (*check)(const char *val, char *why, size_t whylen);
};

static int check_sync(const char *val, char *why, size_t whylen)
{
	if (strcmp(val, "full") == 0 || strcmp(val, "normal") == 0)
		return 0;
	snprintf(why, whylen, "expected full or normal");
	return -1;
}

#define OFF(f) offsetof(struct serve_config, f)
#define DAY (24LL * 3600 * 1000)

static const struct opt opts[] = {
	{"listen", OPT_STRING, "127.0.0.1:8080", 0, 0, OFF(listen),
	 "address the API listens on, HOST:PORT (port 0 picks a free one)", NULL},
	{"db", OPT_STRING, "sqlite:./hookd.db", 0, 0, OFF(db),
	 "store: sqlite:PATH (or a bare PATH)", NULL},
	{"api-key", OPT_KEYS, NULL, 0, 0, OFF(api_keys),
	 "bearer key accepted by the API (repeatable; env: comma-separated). "
	 "None: the key in <db>.api-key is used, created if missing", NULL},
	{"retry-schedule", OPT_SCHEDULE, "0,1m,5m,30m,2h", 0, 0, OFF(schedule_ms),
	 "delays before each attempt (units ms,s,m,h,d); the length is the number of attempts", NULL},
	{"timeout", OPT_DURATION, "30s", 100, 5 * 60 * 1000, OFF(timeout_ms),
	 "connect + response timeout of one delivery attempt", NULL},
	{"allow-http", OPT_BOOL, "false", 0, 0, OFF(allow_http),
	 "accept plain http:// endpoint URLs (default: https only)", NULL},
	{"allow-private-networks", OPT_BOOL, "false", 0, 0, OFF(allow_private_networks),
	 "allow deliveries to loopback and private addresses", NULL},
	{"dlq-retention", OPT_DURATION, "30d", 1000, 3650 * DAY, OFF(dlq_retention_ms),
	 "how long dead letters are kept (purged every quarter of this, at most hourly)", NULL},
	{"max-body", OPT_SIZE, "1048576", 1024, 64 * 1024 * 1024, OFF(max_body),
	 "largest API request body in bytes", NULL},
	{"max-in-flight", OPT_INT, "256", 1, 10000, OFF(max_in_flight),
	 "deliveries in flight at once, over all endpoints", NULL},
	{"senders", OPT_INT, "2", 1, 64, OFF(senders),
	 "threads that run the delivery HTTP transfers (the dispatcher thread schedules them); "
	 "more than the machine's cores gains nothing", NULL},
	{"window", OPT_SIZE, "10000", 100, 10000000, OFF(window),
	 "pending deliveries the dispatcher holds in memory; the rest wait in the store", NULL},
	{"max-retry-after", OPT_DURATION, "1h", 1000, DAY, OFF(max_retry_after_ms),
	 "longest pause a receiver's Retry-After (on 429/503) may impose on its endpoint", NULL},
	{"breaker-failures", OPT_INT, "10", 0, 1000000, OFF(breaker_failures),
	 "consecutive failed attempts that open an endpoint's circuit (0: never)", NULL},
	{"breaker-cooldown", OPT_DURATION, "30s", 100, 10 * 60 * 1000, OFF(breaker_cooldown_ms),
	 "first open period of a circuit before its probe; doubles per failed probe, "
	 "to at most 20 times this (and 10m)", NULL},
	{"sync", OPT_STRING, "full", 0, 0, OFF(sync),
	 "full: every commit is fsynced before its 202 (survives power loss); normal: fsync only "
	 "at checkpoints (survives a crash of hookd, not of the machine)", check_sync},
	{"ca-file", OPT_STRING, NULL, 0, 0, OFF(ca_file),
	 "PEM file of CA certificates trusted for https:// endpoints, beside the system ones", NULL},
	{"allow-cidr", OPT_STRING, NULL, 0, 0, OFF(allow_cidr),
	 "CIDR,... of destinations allowed although private (e.g. 10.1.2.0/24,fd00::/8)",
	 cidr_list_check},
	{"source-address", OPT_STRING, NULL, 0, 0, OFF(source_address),
	 "local IP address deliveries are sent from, so receivers can allowlist it",
	 netguard_source_check},
	{"resolve", OPT_STRING, NULL, 0, 0, OFF(resolve),
	 "HOST:PORT:ADDR,... pinned name resolutions for deliveries (like curl --resolve); "
	 "the address guard still applies", netguard_resolve_check},
	{"api-allow", OPT_STRING, NULL, 0, 0, OFF(api_allow),
	 "CIDR,... of clients allowed to call the API; others get 403 (default: all)",
	 cidr_list_check},
	{"secret-overlap", OPT_DURATION, "24h", 0, 30 * DAY, OFF(secret_overlap_ms),
	 "after a secret rotation, how long the old secret keeps signing beside the new one", NULL},
	{"ingest-rate", OPT_INT, "0", 0, 1000000, OFF(ingest_rate),
	 "POST /v1/events requests per second per API key, then 429 (0: no limit)", NULL},
	{"max-json-depth", OPT_INT, "32", 2, 256, OFF(max_json_depth),
	 "deepest nesting of arrays and objects in an API request body", NULL},
	{"max-headers", OPT_INT, "64", 8, 1000, OFF(max_headers),
	 "header fields in one API request", NULL},
	{"max-header-bytes", OPT_SIZE, "16384", 1024, 1048576, OFF(max_header_bytes),
	 "bytes of all header fields of one API request", NULL},
	{"max-url", OPT_SIZE, "2048", 256, 65536, OFF(max_url),
	 "bytes of an API request's target (path and query)", NULL},
	{"max-endpoints", OPT_INT, "10000", 1, 1000000, OFF(max_endpoints),
	 "endpoints one server holds", NULL},
	{"max-custom-headers", OPT_INT, "32", 0, 32, OFF(max_custom_headers),
	 "custom headers per endpoint", NULL},
	{"max-response-bytes", OPT_SIZE, "65536", 0, 64 * 1024 * 1024, OFF(max_response_bytes),
	 "bytes of a receiver's response body read (the first 4096 are kept); the rest is discarded", NULL},
	{"api-threads", OPT_INT, "2", 1, 64, OFF(api_threads), "API server threads", NULL},
	{"log-level", OPT_LOGLEVEL, "info", 0, 0, OFF(log_level), "debug, info, warn, error or off", NULL},
	{"check", OPT_BOOL, "false", 0, 0, OFF(check),
	 "validate the configuration and the database, print it, and exit", NULL},
};

#define N_OPTS (sizeof opts / sizeof opts[0])

static void env_name(const struct opt *o, char out[64])
{
	size_t j = 0;
	j += (size_t)snprintf(out, 64, "HOOKD_");
	for (const char *p = o->name; *p && j < 63; p++)
		out[j++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
	out[j] = 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static int parse_int64(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || !isdigit((unsigned char)s[0]))
		return -1;
	*out = v;
	return 0;
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

static int check_listen(const char *s)
{
	const char *colon = strrchr(s, ':');
	int64_t port;
	if (!colon || colon == s || parse_int64(colon + 1, &port) != 0 || port < 0 || port > 65535)
		return -1;
	if (s[0] == '[' && colon[-1] != ']')
		return -1;
	return 0;
}

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

char *config_sqlite_path(const char *db)
{
	if (strncmp(db, "sqlite:", 7) == 0)
		return *db ? strdup(db + 7) : NULL;
	if (strstr(db, "://"))
		return NULL;
	return strdup(db);
}

/* Sets one option from text. `source` names where it came from for the message. */
static int set_opt(struct serve_config *cfg, const struct opt *o, const char *val, const char *source)
{
	char *base = (char *)cfg;
	char why[160] = "";
	int64_t v;

	switch (o->type) {
	case OPT_STRING: {
		char **dst = (char **)(base + o->offset);
		if (!*val) {
			snprintf(why, sizeof why, "must not be empty");
			goto bad;
		}
		if (strcmp(o->name, "listen") == 0 && check_listen(val) != 0) {
			snprintf(why, sizeof why, "expected HOST:PORT, e.g. 127.0.0.1:8080");
			goto bad;
		}
		if (strcmp(o->name, "db") == 0) {
			char *path = config_sqlite_path(val);
			if (!path || !*path) {
				free(path);
				snprintf(why, sizeof why,
					 "expected sqlite:PATH or a file path (PostgreSQL is not supported yet)");
				goto bad;
			}
			free(path);
		}
		if (o->check && o->check(val, why, sizeof why) != 0)
			goto bad;
		char *copy = strdup(val);
		if (!copy)
			goto oom;
		free(*dst);
		*dst = copy;
		return 0;
	}
	case OPT_DURATION:
		if (duration_parse_ms(val, &v) != 0) {
			snprintf(why, sizeof why, "expected a duration such as 500ms, 30s, 5m, 2h or 30d");
			goto bad;
		}
		goto bounded;
	case OPT_SIZE:
	case OPT_INT:
		if (parse_int64(val, &v) != 0) {
			snprintf(why, sizeof why, "expected a whole number");
			goto bad;
		}
		goto bounded;
	case OPT_BOOL:
		if (parse_bool(val, (bool *)(base + o->offset)) != 0) {
			snprintf(why, sizeof why, "expected true or false");
			goto bad;
		}
		return 0;
	case OPT_SCHEDULE: {
		int n = config_parse_schedule(val, cfg->schedule_ms, CONFIG_MAX_SCHEDULE);
		if (n < 1) {
			snprintf(why, sizeof why,
				 "expected 1..%d comma-separated delays (each at most 30d), e.g. 0,1m,5m,30m,2h",
				 CONFIG_MAX_SCHEDULE);
			goto bad;
		}
		cfg->schedule_len = (size_t)n;
		return 0;
	}
	case OPT_KEYS: {
		const char *p = val;
		while (*p) {
			const char *comma = strchr(p, ',');
			size_t len = comma ? (size_t)(comma - p) : strlen(p);
			if (add_key(cfg, p, len, why, sizeof why) != 0)
				goto bad;
			p += len + (comma ? 1 : 0);
		}
		if (cfg->n_api_keys == 0) {
			snprintf(why, sizeof why, "must not be empty");
			goto bad;
		}
		return 0;
	}
	case OPT_LOGLEVEL:
		if (log_parse_level(val, &cfg->log_level) != 0) {
			snprintf(why, sizeof why, "expected debug, info, warn, error or off");
			goto bad;
		}
		return 0;
	}
	return -1;

bounded:
	if (v < o->min || v > o->max) {
		if (o->type == OPT_DURATION)
			snprintf(why, sizeof why, "must be between %lldms and %lldms", (long long)o->min,
				 (long long)o->max);
		else
			snprintf(why, sizeof why, "must be between %lld and %lld", (long long)o->min,
				 (long long)o->max);
		goto bad;
	}
	if (o->type == OPT_DURATION)
		*(int64_t *)(base + o->offset) = v;
	else if (o->type == OPT_SIZE)
		*(size_t *)(base + o->offset) = (size_t)v;
	else
		*(int *)(base + o->offset) = (int)v;
	return 0;
oom:
	snprintf(why, sizeof why, "out of memory");
bad:
	/* API keys are secrets: never echo their value. */
	if (o->type == OPT_KEYS)
		fprintf(stderr, "hookd serve: invalid %s (%s): %s\n", "--api-key", source, why);
	else
		fprintf(stderr, "hookd serve: invalid --%s '%s' (%s): %s\n", o->name, val, source, why);
	return -1;
}

static void print_help(void)
{
	printf("usage: hookd serve [options]\n\n"
	       "Runs the webhook API and the delivery engine. Every option also reads an\n"
	       "environment variable (shown); a flag wins over its variable.\n\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		char env[64];
		env_name(&opts[i], env);
		bool flag_only = opts[i].type == OPT_BOOL;
		printf("  --%s%s\n      %s\n      env %s%s%s%s\n", opts[i].name, flag_only ? "" : " VALUE",
		       opts[i].help, env, opts[i].def ? ", default " : "", opts[i].def ? opts[i].def : "",
		       "");
	}
	printf("  --help\n      print this help\n");
}

static const struct opt *find_opt(const char *name, size_t len)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
			return &opts[i];
	}
	return NULL;
}

int config_parse(int argc, char **argv, struct serve_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	for (size_t i = 0; i < N_OPTS; i++) {
		if (opts[i].def && set_opt(cfg, &opts[i], opts[i].def, "default") != 0)
			goto fail;
	}
	for (size_t i = 0; i < N_OPTS; i++) {
		char env[64];
		env_name(&opts[i], env);
		const char *v = getenv(env);
		if (v && set_opt(cfg, &opts[i], v, env) != 0)
			goto fail;
	}
	bool keys_from_flags = false;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			print_help();
			config_free(cfg);
			return 1;
		}
		if (strncmp(arg, "--", 2) != 0) {
			fprintf(stderr, "hookd serve: unexpected argument '%s' (see hookd serve --help)\n", arg);
			goto fail;
		}
		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const struct opt *o = find_opt(name, len);
		if (!o) {
			fprintf(stderr, "hookd serve: unknown option '%.*s' (see hookd serve --help)\n",
				(int)len + 2, arg);
			goto fail;
		}
		const char *val;
		if (o->type == OPT_BOOL) {
			val = eq ? eq + 1 : "true";
		} else if (eq) {
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			fprintf(stderr, "hookd serve: option --%s needs a value\n", o->name);
			goto fail;
		}
		if (o->type == OPT_KEYS && !keys_from_flags) {
			clear_keys(cfg); /* flags replace keys from the environment */
			keys_from_flags = true;
		}
		if (set_opt(cfg, o, val, "flag") != 0)
			goto fail;
	}
	return 0;
fail:
	config_free(cfg);
	return -1;
}

void config_free(struct serve_config *cfg)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		if (opts[i].type == OPT_STRING) {
			char **p = (char **)((char *)cfg + opts[i].offset);
			free(*p);
		}
	}
	clear_keys(cfg);
	memset(cfg, 0, sizeof *cfg);
}

void config_print(const struct serve_config *c)
{
	const char *base = (const char *)c;
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt *o = &opts[i];
		const void *f = base + o->offset;
		if (strcmp(o->name, "check") == 0)
			continue;
		printf("%s = ", o->name);
		switch (o->type) {
		case OPT_STRING:
			printf("%s\n", *(char *const *)f ? *(char *const *)f : "(none)");
			break;
		case OPT_DURATION:
			printf("%lldms\n", (long long)*(const int64_t *)f);
			break;
		case OPT_SIZE:
			printf("%zu\n", *(const size_t *)f);
			break;
		case OPT_INT:
			printf("%d\n", *(const int *)f);
			break;
		case OPT_BOOL:
			printf("%s\n", *(const bool *)f ? "true" : "false");
			break;
		case OPT_SCHEDULE:
			for (size_t k = 0; k < c->schedule_len; k++)
				printf("%s%lldms", k ? "," : "", (long long)c->schedule_ms[k]);
			printf("\n");
			break;
		case OPT_KEYS:
			printf("%zu configured%s\n", c->n_api_keys,
			       c->n_api_keys ? " (values hidden)"
					     : " (the key file beside the database is used)");
			break;
		case OPT_LOGLEVEL:
			printf("%s\n", log_level_name(c->log_level));
			break;
		}
	}
}
