/* config: `hookd serve` settings as one table (name, type, default, bounds,
 * environment twin) from which flag parsing, --help and --check come. */
#ifndef HOOKD_CONFIG_H
#define HOOKD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define CONFIG_MAX_KEYS 16
#define CONFIG_MAX_SCHEDULE 32
#define CONFIG_NODE_ID_MAX 64

struct serve_config {
	char *listen;                 /* --listen host:port, default 127.0.0.1:8080 */
	char *db;                     /* --db sqlite:PATH | PATH | postgres://..., default sqlite:./hookd.db */
	bool check_integrity;         /* --check-integrity: integrity_check, not quick_check, at start */
	char *api_keys[CONFIG_MAX_KEYS]; /* --api-key (repeatable; env: comma-separated) */
	size_t n_api_keys;
	char *api_key_file;           /* --api-key-file: the key when none is given; NULL = default */
	int64_t schedule_ms[CONFIG_MAX_SCHEDULE]; /* --retry-schedule, default 0,1m,5m,30m,2h */
	size_t schedule_len;
	int64_t timeout_ms;           /* --timeout, default 30s */
	bool allow_http;              /* --allow-http */
	bool allow_private_networks;  /* --allow-private-networks */
	int64_t dlq_retention_ms;     /* --dlq-retention, default 30d */
	int64_t retention_ms;         /* --retention, default 30d; 0 = off (operations.md#retention) */
	size_t max_body;              /* --max-body bytes, default 1 MiB */
	size_t min_free_space;        /* --min-free-space bytes (docs/operations.md#faults-and-what-hookd-does), default 64 MiB; 0 = off */
	int max_in_flight;            /* --max-in-flight, global cap, default 256 */
	int max_connections;          /* --max-connections: delivery connections open, default 1536 */
	int senders;                  /* --senders: threads running the HTTP transfers, default 2 */
	size_t window;                /* --window: due deliveries held in memory, default 10000 */
	int api_threads;              /* --api-threads, default 2 */
	int64_t max_retry_after_ms;   /* --max-retry-after: longest Retry-After pause, default 1h */
	int breaker_failures;         /* --breaker-failures, default 10; 0 = no breaker */
	int64_t breaker_cooldown_ms;  /* --breaker-cooldown: first open period, default 30s */
	/* Security (docs/security.md). Strings are NULL when not given. */
	char *ca_file;                /* --ca-file: extra CAs (PEM) beside the system store */
	char *allow_cidr;             /* --allow-cidr CIDR,...: destinations allowed though private */
	char *source_address;         /* --source-address: local IP deliveries are sent from */
	char *resolve;                /* --resolve HOST:PORT:ADDR,...: pinned name resolutions */
	char *sync;                   /* --sync full|normal: when a commit is fsynced */
	char *api_allow;              /* --api-allow CIDR,...: who may call the API (NULL = all) */
	int64_t secret_overlap_ms;    /* --secret-overlap: old secret signs after a rotation, 24h */
	int ingest_rate;              /* --ingest-rate: requests/s per API key on POST /v1/events */
	int max_json_depth;           /* --max-json-depth: nesting of API request bodies */
	int max_headers;              /* --max-headers: header fields in one API request */
	size_t max_header_bytes;      /* --max-header-bytes: all header fields of one API request */
	size_t max_url;               /* --max-url: request target (path + query) of an API request */
	int max_endpoints;            /* --max-endpoints: endpoints one server holds */
	int max_custom_headers;       /* --max-custom-headers: custom headers per endpoint */
	size_t max_response_bytes;    /* --max-response-bytes: read from a receiver, rest discarded */
	/* Fan-out bounds (docs/api.md#large-fan-outs). */
	int max_deliveries_per_request; /* --max-deliveries-per-request: refused above (422) */
	int max_listed_deliveries;    /* --max-listed-deliveries: above it the 202 lists counts */
	/* Monitoring (docs/operations.md#monitoring). */
	char *metrics;                /* --metrics on|off: feed and serve the metrics */
	int metrics_max_endpoints;    /* --metrics-max-endpoints: endpoints with series of their own */
	char *metrics_listen;         /* --metrics-listen HOST:PORT: unauthenticated /metrics, or NULL */
	/* API connection caps and the request deadline (docs/operations.md#connections). */
	int api_max_connections;      /* --api-max-connections: 0 = from the open-files limit */
	int api_max_connections_per_address; /* --api-max-connections-per-address, 256; 0 = none */
	int64_t api_request_timeout_ms; /* --api-request-timeout: header + body, total, 60s */
	int64_t api_idle_timeout_ms;  /* --api-idle-timeout: no traffic, 30s */
	enum log_level log_level;     /* --log-level, default info */
	char *log_format;             /* --log-format: text (default) or json */
	bool check;                   /* --check: validate and exit */
	/* Several nodes on one PostgreSQL (docs/scaling.md). --node-id NAME:
	 * 1..64 of [A-Za-z0-9._-]; default a random 16-hex id made at start. */
	char node_id[CONFIG_NODE_ID_MAX + 1];
	int64_t node_lease_ms;        /* --node-lease: PostgreSQL only, default 10s, at least 2s */
	bool node_lease_given;        /* --node-lease (or its variable) was given */
};

/* Fills cfg from defaults, then environment (HOOKD_*), then argv (flags win).
 * Returns 0 on success; 1 if --help was printed (caller exits 0); -1 on a bad
 * flag or value, after printing a message naming it to stderr. On success the
 * caller owns cfg and frees it with config_free. */
int config_parse(int argc, char **argv, struct serve_config *cfg);
void config_free(struct serve_config *cfg);

/* True if s is a valid --node-id: 1..CONFIG_NODE_ID_MAX characters of
 * [A-Za-z0-9._-]. */
bool config_node_id_valid(const char *s);

/* Prints the effective configuration (API keys masked) to stdout. */
void config_print(const struct serve_config *cfg);

/* Parses "0,1m,5m,30m,2h" into out (max CONFIG_MAX_SCHEDULE entries).
 * The first entry is the delay before the first attempt. Returns the number
 * of entries, or -1 on a bad or empty list. */
int config_parse_schedule(const char *s, int64_t *out, size_t max);

/* The --db value as it may be shown (logs, messages): a PostgreSQL URL's
 * password, in the user part or a password= parameter, becomes "***".
 * Writes at most len bytes (NUL included) into out. */
void config_db_display(const char *db, char *out, size_t len);

/* Path of the SQLite file from a --db value ("sqlite:PATH" or a bare path),
 * malloc'd; NULL if the value names another scheme. */
char *config_sqlite_path(const char *db);

#endif
