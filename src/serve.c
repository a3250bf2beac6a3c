/* serve: `hookd serve` — wires the modules together and waits for a signal.
 * Start order follows the data path backwards (store writer, endpoint cache,
 * dispatcher, then the API), so nothing accepts work before what handles it
 * is running; shutdown runs the other way. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "api.h"
#include "api_conns.h"
#include "api_listen.h"
#include "cli.h"
#include "commit.h"
#include "cluster.h"
#include "config.h"
#include "dblock.h"
#include "dispatch.h"
#include "epcache.h"
#include "hops.h"
#include "listen.h"
#include "log.h"
#include "queue_depth.h"
#include "queue_refresh.h"
#include "retention.h"
#include "store_health.h"
#include "metrics.h"
#include "store.h"
#include "util.h"

#define KEY_FILE_SUFFIX ".api-key"
#define KEY_MAX 256

/* Reads the key file at path (start-up, before anything is created).
 * Returns 0 and a malloc'd key in *out, 1 if there is no such file, or -1
 * after one line "hookd serve: ..." saying what to fix. */
static int key_file_read(const char *path, char **out)
{
	char buf[KEY_MAX + 2];
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 1;
	if (fd < 0) {
		fprintf(stderr, "hookd serve: cannot read the API key file %s: %s: give hookd's "
				"user read access to it, or pass --api-key\n", path, strerror(errno));
		return -1;
	}
	ssize_t n = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) ? read(fd, buf, sizeof buf - 1) : -2;
	close(fd);
	if (n == -2) {
		fprintf(stderr, "hookd serve: the API key file %s is not a regular file: remove "
				"it (a key file is made there), or pass --api-key\n", path);
		return -1;
	}
	buf[n > 0 ? n : 0] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	if (n <= 0 || strlen(buf) < 8 || strlen(buf) > KEY_MAX) {
		fprintf(stderr, "hookd serve: the API key file %s holds no key of 8..256 characters "
				"on its first line: write one, or delete the file to have a new key "
				"made\n", path);
		return -1;
	}
	*out = strdup(buf);
	if (*out == NULL)
		return -1;
	log_info("no --api-key given: using the key stored in %s", path);
	return 0;
}

/* Creates the key file at path with a new random key (mode 0600), after
 * the start-up checks passed. Returns 0 and a malloc'd key in *out, or -1
 * after one line "hookd serve: ..." (a partly written file is removed). */
static int key_file_create(const char *path, char **out)
{
	char buf[KEY_MAX + 2];
	unsigned char raw[24];
	if (random_bytes(raw, sizeof raw) != 0)
		return -1;
	char *b64 = b64_encode(raw, sizeof raw);
	if (!b64)
		return -1;
	/* base64url, so the key needs no quoting in a shell or a header. */
	for (char *p = b64; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	int len = snprintf(buf, sizeof buf, "hk_%s\n", b64);
	free(b64);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "hookd serve: cannot create the API key file %s: %s: make its "
				"directory writable for hookd's user, or pass --api-key\n", path,
			strerror(errno));
		return -1;
	}
	if (write(fd, buf, (size_t)len) != len || fsync(fd) != 0) {
		fprintf(stderr, "hookd serve: cannot write the API key file %s: %s\n", path,
			strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	buf[len - 1] = 0;
	*out = strdup(buf);
	log_info("no --api-key given: created a key and stored it in %s (mode 0600)", path);
	return *out ? 0 : -1;
}

/* The start-up checks (docs/operations.md#faults-and-what-hookd-does), before anything opens the database for
 * writing: it is hookd's (or new) and writable; then, if lock is not NULL
 * (serve, not --check) and the database is a SQLite file, the one-writer
 * lock, so a second serve is turned away at once rather than after a long
 * page check; then its pages (quick_check, or integrity_check with
 * --check-integrity). Each check only reads: a refused file is left as it
 * was. shown is the URL as messages may show it (config_db_display). On
 * refusal prints one line "hookd serve: ..." to stderr and returns -1;
 * *lock is then NULL. */
static int check_database(const struct serve_config *cfg, const char *shown, struct dblock **lock)
{
	char err[512];
	if (store_check(cfg->db, err, sizeof err) != STORE_OK) {
		fprintf(stderr, "hookd serve: refusing the database %s: %s\n", shown, err);
		return -1;
	}
	char *path = config_sqlite_path(cfg->db); /* NULL: not a file (PostgreSQL) */
	/* PostgreSQL checks its own pages: only the schema was looked at. */
	const char *what = path == NULL ? "schema check"
			   : cfg->check_integrity ? "integrity_check" : "quick_check";
	if (lock != NULL && path != NULL) {
		pid_t holder;
		if (dblock_acquire(path, lock, &holder, err, sizeof err) != 0) {
			fprintf(stderr, "hookd serve: %s: %s\n", shown, err);
			free(path);
			return -1;
		}
	}
	free(path);
	int64_t t0 = mono_ms();
	if (store_verify(cfg->db, cfg->check_integrity, err, sizeof err) != STORE_OK) {
		fprintf(stderr, "hookd serve: refusing the database %s: %s\n", shown, err);
		if (lock != NULL) {
			dblock_release(*lock);
			*lock = NULL;
		}
		return -1;
	}
	log_info("store: %s ok db=%s ms=%lld", what, shown, (long long)(mono_ms() - t0));
	return 0;
}

/* The key file used when no --api-key is given: --api-key-file, else
 * <db>.api-key beside a SQLite file. Returns a malloc'd path, or NULL
 * after printing why there is none (a PostgreSQL database has no
 * directory of its own to keep it in). */
static char *key_file_path(const struct serve_config *cfg)
{
	if (cfg->api_key_file != NULL)
		return strdup(cfg->api_key_file);
	char *db_path = config_sqlite_path(cfg->db);
	if (db_path == NULL) {
		fprintf(stderr, "hookd serve: no API key: with a PostgreSQL --db give --api-key, "
				"HOOKD_API_KEY or --api-key-file\n");
		return NULL;
	}
	size_t len = strlen(db_path) + sizeof KEY_FILE_SUFFIX;
	char *path = malloc(len);
	if (path)
		snprintf(path, len, "%s%s", db_path, KEY_FILE_SUFFIX);
	free(db_path);
	return path;
}

static int load_endpoints(struct epcache *cache, const char *db)
{
	struct store *st;
	char err[256];
	if (store_open(db, &st, err, sizeof err) != STORE_OK) {
		log_error("cannot open the database: %s", err);
		return -1;
	}
	int rc = epcache_load(cache, st);
	store_close(st);
	return rc;
}

/* The queue figures, seeded from the store before anything writes;
 * *shared: whether other processes may write the store too. */
static int load_queue(struct queue_depth *q, const char *db, bool *shared)
{
	struct store *st;
	char err[256];
	if (store_open(db, &st, err, sizeof err) != STORE_OK) {
		log_error("cannot open the database: %s", err);
		return -1;
	}
	int rc = queue_depth_seed(q, st);
	*shared = store_shared(st);
	store_close(st);
	return rc == STORE_OK ? 0 : -1;
}

/* Raises the soft open-files limit to the hard one (every API connection is
 * a descriptor) and logs it. Returns the soft limit in force afterwards. */
static uint64_t raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_warn("cannot read the open-files limit error=%s; assuming 1024", strerror(errno));
		return 1024;
	}
	rlim_t before = rl.rlim_cur;
	if (rl.rlim_cur != rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			log_warn("cannot raise the open-files limit to the hard limit %llu error=%s",
				 (unsigned long long)rl.rlim_max, strerror(errno));
			rl.rlim_cur = before;
		}
	}
	uint64_t now = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
	log_info("open-files limit=%llu (soft limit was %llu, hard limit %llu)",
		 (unsigned long long)now, (unsigned long long)before,
		 (unsigned long long)rl.rlim_max);
	return now;
}

/* The delivery connection cap (docs/operations.md#delivery-connections):
 * --max-connections, raised to --max-in-flight (a request needs a
 * connection) and lowered, with a warning, to half the open-files limit so
 * the API and the store keep room. */
static int delivery_conns(const struct serve_config *cfg, uint64_t nofile)
{
	int64_t n = cfg->max_connections;
	if (n > (int64_t)(nofile / 2)) {
		n = (int64_t)(nofile / 2);
		log_info("--max-connections %d is above half the open-files limit %llu; using %lld",
			 cfg->max_connections, (unsigned long long)nofile, (long long)n);
	}
	return n > cfg->max_in_flight ? (int)n : cfg->max_in_flight;
}

/* The API's total connection cap: --api-max-connections, or (0) the
 * open-files limit minus what the rest of hookd may hold open at once: the
 * store's files, the senders' sockets (in flight and idle: at most
 * max_connections, see delivery_conns), each thread's own
 * descriptors and the metrics listener's 64 connections. An explicit cap
 * above that room is lowered to it. */
static unsigned api_total_cap(const struct serve_config *cfg, uint64_t nofile)
{
	unsigned reserve = 128 + (unsigned)cfg->max_connections +
			   8 * (unsigned)(cfg->api_threads + cfg->senders) +
			   (cfg->metrics_listen != NULL ? 64 : 0);
	unsigned room = api_conns_auto_total(nofile, reserve);
	if (cfg->api_max_connections == 0)
		return room;
	if ((unsigned)cfg->api_max_connections > room) {
		log_warn("--api-max-connections %d is above what the open-files limit %llu leaves "
			 "(%u after a reserve of %u); using %u", cfg->api_max_connections,
			 (unsigned long long)nofile, room, reserve, room);
		return room;
	}
	return (unsigned)cfg->api_max_connections;
}

/* --min-free-space: the commit thread watches the database file's volume.
 * Returns 0, or -1 (logged). */
static int watch_space(struct commit *writer, const struct serve_config *cfg)
{
	char *path = config_sqlite_path(cfg->db);
	if (path == NULL) {
		/* PostgreSQL: its volume is the server's, not ours to watch; a full
		 * disk still shows as the store's health (storage_full). */
		log_info("--min-free-space does not apply: the database is not a local file");
		return 0;
	}
	int rc = commit_set_min_free(writer, path, cfg->min_free_space);
	if (rc != 0)
		log_error("out of memory watching the database's free space");
	free(path);
	return rc;
}

/* The sockets bound at start (api_listen.h), -1 when not bound (or handed
 * to the API, which owns them from api_start on). */
struct listeners {
	int api_fd;
	int metrics_fd;
};

static void close_listeners(struct listeners *l)
{
	if (l->api_fd >= 0)
		close(l->api_fd);
	if (l->metrics_fd >= 0)
		close(l->metrics_fd);
	l->api_fd = l->metrics_fd = -1;
}

/* Binds --listen and --metrics-listen. Returns 0, or -1 after one line
 * "hookd serve: ..." (nothing stays bound). */
static int bind_listeners(const struct serve_config *cfg, struct listeners *l)
{
	char err[512];
	l->api_fd = l->metrics_fd = -1;
	if (api_listen_bind(cfg->listen, "--listen", &l->api_fd, err, sizeof err) != 0 ||
	    (cfg->metrics_listen != NULL &&
	     api_listen_bind(cfg->metrics_listen, "--metrics-listen", &l->metrics_fd, err,
			     sizeof err) != 0)) {
		fprintf(stderr, "hookd serve: %s\n", err);
		close_listeners(l);
		return -1;
	}
	return 0;
}

/* The directory part of path ("." for a bare name) into out. */
static void dir_of(const char *path, char *out, size_t outlen)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		snprintf(out, outlen, ".");
	else
		snprintf(out, outlen, "%.*s", slash == path ? 1 : (int)(slash - path), path);
}

/* A missing key file can be made at path: its directory exists and hookd
 * may write it (checked before anything is created; the file itself is made
 * after the database checks). In the database's directory the database
 * checks say it, naming the database. Returns 0, or -1 after one line. */
static int key_file_creatable(const char *path, const char *db)
{
	char dir[4096], db_dir[4096];
	char *db_path = config_sqlite_path(db);
	dir_of(path, dir, sizeof dir);
	dir_of(db_path ? db_path : "", db_dir, sizeof db_dir);
	free(db_path);
	if (strcmp(dir, db_dir) == 0 || access(dir, W_OK | X_OK) == 0)
		return 0;
	fprintf(stderr, "hookd serve: cannot create the API key file %s: its directory %s %s: "
			"%s, or pass --api-key\n", path, dir,
		errno == ENOENT ? "does not exist" : "is not writable",
		errno == ENOENT ? "create it" : "give hookd's user write permission");
	return -1;
}

/* Start-up, in an order that creates nothing until every check passed
 * (docs/operations.md#start-up-checks): binds the listeners (a port in use),
 * reads an existing key file, checks the database (its directory, its type,
 * whether it can be written, its pages) and takes its lock; only then makes
 * a missing key file. On refusal one line "hookd serve: ..." says what to
 * fix, and -1 is returned with nothing bound, locked or created; *key_path
 * (malloc'd, or NULL with --api-key) is the caller's either way. */
static int start_checks(struct serve_config *cfg, const char *shown, struct listeners *l,
			struct dblock **lock, char **key_path)
{
	bool need_key = cfg->n_api_keys == 0;
	if (bind_listeners(cfg, l) != 0)
		return -1;
	if (need_key) {
		*key_path = key_file_path(cfg); /* NULL: said why (or out of memory) */
		int kr = *key_path != NULL ? key_file_read(*key_path, &cfg->api_keys[0]) : -1;
		if (kr < 0)
			goto fail;
		cfg->n_api_keys = kr == 0 ? 1 : 0;
	}
	if (need_key && cfg->n_api_keys == 0 && key_file_creatable(*key_path, cfg->db) != 0)
		goto fail;
	if (check_database(cfg, shown, lock) != 0)
		goto fail;
	if (need_key && cfg->n_api_keys == 0) {
		if (key_file_create(*key_path, &cfg->api_keys[0]) != 0) {
			dblock_release(*lock);
			*lock = NULL;
			goto fail;
		}
		cfg->n_api_keys = 1;
	}
	return 0;
fail:
	close_listeners(l);
	return -1;
}

/* The second signal's watcher (docs/operations.md#stopping): while serve
 * waits for the deliveries in flight, another SIGINT or SIGTERM makes it
 * stop waiting. */
struct stop_watch {
	pthread_t thread;
	sigset_t sigs;
	struct dispatch *dispatch;
	atomic_bool done;  /* set by serve before it wakes the thread to end it */
};

static const char *signal_name(int sig)
{
	return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal";
}

static void *watch_second_signal(void *arg)
{
	struct stop_watch *w = arg;
	int sig = 0;
	if (sigwait(&w->sigs, &sig) != 0 || atomic_load(&w->done))
		return NULL;
	log_warn("stopping now signal=%s deliveries_in_flight=%d note=\"not waiting for them; they "
		 "stay pending and are sent again after the restart (at-least-once)\"",
		 signal_name(sig), dispatch_in_flight(w->dispatch));
	dispatch_stop_now(w->dispatch);
	return NULL;
}

/* Says what the stop waits for and starts the second signal's watcher.
 * Returns 0, or -1 if the watcher could not start (the stop then waits). */
static int stop_begin(struct stop_watch *w, int sig, const sigset_t *sigs,
		      struct dispatch *dispatch)
{
	int64_t wait_ms = dispatch_stop_wait_ms(dispatch);
	log_info("stopping signal=%s deliveries_in_flight=%d wait_max_ms=%lld note=\"no new "
		 "requests; waiting up to %lld s for the deliveries in flight; send SIGINT or SIGTERM "
		 "again to stop at once (those are then sent again after the restart: "
		 "at-least-once)\"",
		 signal_name(sig), dispatch_in_flight(dispatch), (long long)wait_ms,
		 (long long)((wait_ms + 999) / 1000));
	w->sigs = *sigs;
	w->dispatch = dispatch;
	atomic_init(&w->done, false);
	if (pthread_create(&w->thread, NULL, watch_second_signal, w) != 0) {
		log_warn("cannot watch for a second signal; the stop waits as said");
		return -1;
	}
	return 0;
}

/* Ends the watcher: after dispatch_halt, before dispatch_destroy. */
static void stop_end(struct stop_watch *w)
{
	atomic_store(&w->done, true);
	pthread_kill(w->thread, SIGTERM); /* taken by its sigwait (blocked everywhere) */
	pthread_join(w->thread, NULL);
}

/* On a database several nodes share (PostgreSQL), the listener that hears
 * the others (listen.h); none on SQLite. Returns 0 or -1 (logged). */
static int start_listen(const struct serve_config *cfg, struct commit *writer,
			struct epcache *cache, struct dispatch *dispatch, struct queue_depth *queue,
			struct metrics *metrics, struct listen **out)
{
	char err[256];
	if (!store_listen_supported(cfg->db))
		return 0;
	struct listen_config lc = {
		.db_url = cfg->db,
		.node_id = cfg->node_id,
		.writer = writer,
		.sync = {cache, dispatch, queue, metrics},
	};
	if (listen_start(&lc, out, err, sizeof err) != 0) {
		log_error("cannot start the listener: %s", err);
		return -1;
	}
	return 0;
}

int serve_main(int argc, char **argv)
{
	struct serve_config cfg;
	struct commit *writer = NULL;
	struct epcache *cache = NULL;
	struct queue_depth *queue = NULL;
	struct store_health *health = NULL;
	struct dispatch *dispatch = NULL;
	struct retention *retention = NULL;
	struct listen *listener = NULL;
	struct queue_refresh *refresh = NULL;
	bool shared = false;
	struct cluster *cluster = NULL;
	struct api *api = NULL;
	struct metrics *metrics = NULL;
	struct dblock *lock = NULL;
	struct listeners listeners = {-1, -1};
	struct stop_watch watch;
	bool watching = false;
	int64_t stop_t0 = 0;
	char *key_path = NULL;
	char err[256];
	bool curl_ready = false;
	int rc = 1;

	int pr = config_parse(argc, argv, &cfg);
	if (pr == 1)
		return 0;
	if (pr != 0)
		return 2;
	log_set_level(cfg.log_level);
	enum log_format log_format = LOG_FORMAT_TEXT;
	log_parse_format(cfg.log_format, &log_format); /* checked by config_parse */
	log_set_format(log_format);
	store_set_sync(strcmp(cfg.sync, "normal") == 0 ? STORE_SYNC_NORMAL : STORE_SYNC_FULL);
	store_set_node_id(cfg.node_id);

	char db_shown[1024];
	config_db_display(cfg.db, db_shown, sizeof db_shown);

	if (cfg.check) {
		if (check_database(&cfg, db_shown, NULL) != 0)
			goto out;
		config_print(&cfg);
		printf("configuration ok\n");
		rc = 0;
		goto out;
	}

	if (start_checks(&cfg, db_shown, &listeners, &lock, &key_path) != 0)
		goto out;

	/* Signals are taken by sigwait() below; every thread started from here
	 * inherits the mask, so none of them is interrupted. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	uint64_t nofile = raise_nofile();
	cfg.max_connections = delivery_conns(&cfg, nofile);

	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
		log_error("curl_global_init failed");
		goto out;
	}
	curl_ready = true;
	if (strcmp(cfg.metrics, "on") == 0 &&
	    (metrics = metrics_new(cfg.metrics_max_endpoints)) == NULL) {
		log_error("out of memory making the metrics");
		goto out;
	}
	if ((health = store_health_new()) == NULL) {
		log_error("out of memory making the store's health");
		goto out;
	}
	store_set_health(health); /* before any connection is open */
	if (commit_start(cfg.db, &writer, err, sizeof err) != 0) {
		log_error("cannot open the database db=%s: %s", db_shown, err);
		goto out;
	}
	commit_set_metrics(writer, metrics);
	commit_set_health(writer, health);
	if (watch_space(writer, &cfg) != 0)
		goto out;
	cache = epcache_new();
	if (!cache || load_endpoints(cache, cfg.db) != 0)
		goto out;
	queue = queue_depth_new();
	if (!queue || load_queue(queue, cfg.db, &shared) != 0)
		goto out;
	/* Other nodes write the store too: their moves reach these figures
	 * only by reading them again. */
	if (shared && queue_refresh_start(cfg.db, queue, health, QUEUE_REFRESH_MS, &refresh, err,
					  sizeof err) != 0) {
		log_error("cannot start the queue figures' refresh: %s", err);
		goto out;
	}

	/* Several nodes (docs/scaling.md): PostgreSQL only; nothing on SQLite. */
	struct cluster_config cc = {
		.db_url = cfg.db,
		.node_id = cfg.node_id,
		.lease_ms = cfg.node_lease_ms,
		.cache = cache,
	};
	if (cluster_open(&cc, &cluster, err, sizeof err) != 0) {
		log_error("cannot open the cluster's connection db=%s: %s", db_shown, err);
		goto out;
	}
	struct dispatch_config dc = {
		.schedule_ms = cfg.schedule_ms,
		.schedule_len = cfg.schedule_len,
		.timeout_ms = cfg.timeout_ms,
		.max_in_flight = cfg.max_in_flight,
		.max_connections = cfg.max_connections,
		.senders = cfg.senders,
		.window = cfg.window,
		.dlq_retention_ms = cfg.dlq_retention_ms,
		.allow_http = cfg.allow_http,
		.db_url = cfg.db,
		.max_retry_after_ms = cfg.max_retry_after_ms,
		.breaker_failures = cfg.breaker_failures,
		.breaker_cooldown_ms = cfg.breaker_cooldown_ms,
		.net = {
			.allow_private_networks = cfg.allow_private_networks,
			.allow_cidr = cfg.allow_cidr,
			.ca_file = cfg.ca_file,
			.source_address = cfg.source_address,
			.resolve = cfg.resolve,
			.max_response_bytes = cfg.max_response_bytes,
		},
		.queue = queue,
		.metrics = metrics,
		.health = health,
		.cluster = cluster != NULL,
		.node_id = cfg.node_id,
	};
	if (dispatch_start(&dc, writer, cache, &dispatch, err, sizeof err) != 0) {
		log_error("cannot start the dispatcher: %s", err);
		goto out;
	}
	if (cluster != NULL && cluster_run(cluster, dispatch, err, sizeof err) != 0) {
		log_error("cannot start the cluster thread: %s", err);
		goto out;
	}
	struct retention_config rc_cfg = {
		.retention_ms = cfg.retention_ms,
		.dlq_retention_ms = cfg.dlq_retention_ms,
		.queue = queue,
	};
	if (cfg.retention_ms > 0 &&
	    retention_start(&rc_cfg, writer, &retention, err, sizeof err) != 0) {
		log_error("cannot start retention: %s", err);
		goto out;
	}
	if (start_listen(&cfg, writer, cache, dispatch, queue, metrics, &listener) != 0)
		goto out;
	struct api_config ac = {
		.listen = cfg.listen,
		.api_keys = cfg.api_keys,
		.n_api_keys = cfg.n_api_keys,
		.max_body = cfg.max_body,
		.allow_http = cfg.allow_http,
		.threads = cfg.api_threads,
		.db_url = cfg.db,
		.node_id = cfg.node_id,
		.api_allow = cfg.api_allow,
		.ingest_rate = cfg.ingest_rate,
		.max_json_depth = cfg.max_json_depth,
		.max_headers = cfg.max_headers,
		.max_header_bytes = cfg.max_header_bytes,
		.max_url = cfg.max_url,
		.max_endpoints = cfg.max_endpoints,
		.max_custom_headers = cfg.max_custom_headers,
		.max_deliveries = (size_t)cfg.max_deliveries_per_request,
		.max_listed = (size_t)cfg.max_listed_deliveries,
		.secret_overlap_ms = cfg.secret_overlap_ms,
		.first_delay_ms = cfg.schedule_len > 0 ? cfg.schedule_ms[0] : 0,
		.allow_private_networks = cfg.allow_private_networks,
		.allow_cidr = cfg.allow_cidr,
		.queue = queue,
		.metrics = metrics,
		.metrics_listen = cfg.metrics_listen,
		.health = health,
		.max_connections = api_total_cap(&cfg, nofile),
		.max_connections_per_address = (unsigned)cfg.api_max_connections_per_address,
		.request_timeout_ms = cfg.api_request_timeout_ms,
		.idle_timeout_ms = cfg.api_idle_timeout_ms,
		.listen_fd = listeners.api_fd,
		.metrics_listen_fd = listeners.metrics_fd,
	};
	listeners.api_fd = listeners.metrics_fd = -1; /* api_start owns them now */
	if (api_start(&ac, writer, cache, dispatch, &api, err, sizeof err) != 0) {
		log_error("cannot start the API listen=%s: %s", cfg.listen, err);
		fprintf(stderr, "hookd serve: cannot listen on %s: %s\n", cfg.listen, err);
		goto out;
	}

	char host[256];
	snprintf(host, sizeof host, "%s", cfg.listen);
	*strrchr(host, ':') = 0; /* config_parse checked the HOST:PORT shape */
	if (cfg.metrics_listen != NULL) {
		/* Before the API's line, which tells a reader everything is up. */
		char mhost[256];
		snprintf(mhost, sizeof mhost, "%s", cfg.metrics_listen);
		*strrchr(mhost, ':') = 0;
		printf("hookd metrics on http://%s:%u/metrics\n", mhost, api_metrics_port(api));
	}
	printf("hookd listening on http://%s:%u\n", host, api_port(api));
	fflush(stdout);
	log_info("hookd started version=%s listen=%s:%u db=%s attempts=%zu node=%s", HOOKD_VERSION,
		 host, api_port(api), db_shown, cfg.schedule_len, cfg.node_id);

	int sig = 0;
	sigwait(&sigs, &sig);
	stop_t0 = mono_ms();
	watching = stop_begin(&watch, sig, &sigs, dispatch) == 0;
	rc = 0;
out:
	/* Reverse order: no new requests, then no new deliveries, then flush the writer. */
	close_listeners(&listeners);
	if (api)
		api_stop(api);
	retention_stop(retention);
	listen_stop(listener); /* its ops touch the dispatcher */
	queue_refresh_stop(refresh);
	/* The leases stay renewed while the dispatcher finishes what is in
	 * flight; given back once its results are committed. */
	cluster_quiesce(cluster);
	dispatch_halt(dispatch);
	if (watching)
		stop_end(&watch);
	if (writer)
		commit_stop(writer);
	cluster_stop(cluster, stop_t0 != 0);
	if (stop_t0 != 0)
		hops_log(); /* where events' time went (hops.h) */
	if (stop_t0 != 0)
		log_info("hookd stopped ms=%lld abandoned=%zu", (long long)(mono_ms() - stop_t0),
			 dispatch_abandoned(dispatch));
	dispatch_destroy(dispatch);
	metrics_free(metrics);
	epcache_free(cache);
	queue_depth_free(queue);
	store_set_health(NULL); /* every connection is closed by now */
	store_health_free(health);
	dblock_release(lock);
	if (curl_ready)
		curl_global_cleanup();
	free(key_path);
	config_free(&cfg);
	return rc;
}
