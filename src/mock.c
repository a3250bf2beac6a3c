/* mock: `hookd mock`, a webhook receiver for testing. It verifies every
 * signature header with --secret, prints one line per request (unless
 * --quiet), records each request as a JSON line with --record, counts them
 * (GET /_mock/stats, answered by the mock itself), and injects failures
 * (--status, --fail-first, --fail-rate, --latency). With --tls-cert and
 * --tls-key it speaks HTTPS.
 * It is also the receiver of bench/run, so without --latency it serves from a
 * thread pool over epoll rather than a thread per connection. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include "cli.h"
#include "flags.h"
#include "log.h"
#include "mock_internal.h"
#include "sign.h"
#include "util.h"

#define MOCK_DEFAULT_LISTEN "127.0.0.1:9000"
#define MOCK_DEFAULT_MAX_BODY ((size_t)10 * 1024 * 1024)
#define MOCK_MAX_LATENCY_MS 3600000
#define MOCK_IDLE_TIMEOUT_S 30
/* Above hookd's default --max-connections (1536), which bench/many.py's
 * 1,000 endpoints at one mock come near. */
#define MOCK_MAX_CONNECTIONS 4096
#define MOCK_MAX_THREADS 64
/* The mock's own route: counters since start or the last reset. */
#define MOCK_STATS_PATH "/_mock/stats"
/* Largest --tls-cert or --tls-key file read. */
#define MOCK_TLS_FILE_MAX (1024 * 1024)
/* Longest id/event/path echoed on a stdout line. */
#define MOCK_PRINT_MAX 200

static volatile sig_atomic_t mock_stop;

static void on_signal(int sig)
{
	(void)sig;
	mock_stop = 1;
}

/* ---- flags ---- */

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Splits "host:port" or "[v6]:port". Returns 0, or -1 if malformed. */
static int parse_listen(const char *s, struct mock_config *cfg)
{
	const char *colon;
	const char *host = s;
	size_t hlen;
	long port;

	cfg->ipv6_literal = false;
	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		host = s + 1;
		hlen = (size_t)(close - host);
		colon = close + 1;
		cfg->ipv6_literal = true;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen) != NULL)
			return -1; /* a bare IPv6 address needs brackets */
	}
	if (hlen == 0 || hlen >= sizeof cfg->host || parse_long(colon + 1, 0, 65535, &port) != 0)
		return -1;
	memcpy(cfg->host, host, hlen);
	cfg->host[hlen] = '\0';
	snprintf(cfg->port, sizeof cfg->port, "%ld", port);
	return 0;
}

static int parse_listen_flag(void *obj, const char *val, bool replace, char *why, size_t whylen)
{
	(void)replace;
	if (parse_listen(val, obj) == 0)
		return 0;
	snprintf(why, whylen, "expected HOST:PORT, e.g. 127.0.0.1:0");
	return -1;
}

static int parse_secret(void *obj, const char *val, bool replace, char *why, size_t whylen)
{
	struct mock_config *cfg = obj;
	(void)replace;
	if (sign_key_init(&cfg->key, val, why, whylen) != 0)
		return -1;
	cfg->have_secret = true;
	return 0;
}

#define OFF(f) offsetof(struct mock_config, f)

static const struct flag_spec mock_opts[] = {
	{"listen", FLAG_CUSTOM, MOCK_DEFAULT_LISTEN, 0, 0, 0,
	 "address to bind (port 0 picks a free one)", NULL, parse_listen_flag, "HOST:PORT", 0},
	{"secret", FLAG_CUSTOM, NULL, 0, 0, 0,
	 "verify every signature header present with this secret", NULL, parse_secret,
	 "whsec_...", FLAG_SECRET},
	{"record", FLAG_STRING, NULL, 0, 0, OFF(record_path),
	 "append one JSON line per request to FILE", NULL, NULL, "FILE", 0},
	{"status", FLAG_INT, NULL, 200, 599, OFF(status), "reply CODE instead of 200", NULL, NULL,
	 "CODE", 0},
	{"fail-first", FLAG_LONG, NULL, 0, LONG_MAX, OFF(fail_first),
	 "the first N requests fail (500, or --status CODE), later ones get 200", NULL, NULL, "N",
	 0},
	{"fail-rate", FLAG_DOUBLE, NULL, 0, 1, OFF(fail_rate),
	 "each request fails with probability P", NULL, NULL, "P", 0},
	{"latency", FLAG_LONG, NULL, 0, MOCK_MAX_LATENCY_MS, OFF(latency_ms),
	 "wait MS milliseconds before replying", NULL, NULL, "MS", 0},
	{"reject-invalid", FLAG_SWITCH, NULL, 0, 0, OFF(reject_invalid),
	 "reply 401 to a request that fails verification (needs --secret)", NULL, NULL, NULL, 0},
	{"max-body", FLAG_SIZE, "10485760", 0, INT64_MAX, OFF(max_body),
	 "largest body accepted; larger ones get 413", NULL, NULL, "BYTES", 0},
	{"quiet", FLAG_SWITCH, NULL, 0, 0, OFF(quiet), "no stdout line per request", NULL, NULL,
	 NULL, 0},
	{"record-us", FLAG_SWITCH, NULL, 0, 0, OFF(record_us),
	 "--record lines also carry \"at_us\", the arrival time in unix microseconds", NULL, NULL,
	 NULL, 0},
	{"threads", FLAG_LONG, NULL, 1, MOCK_MAX_THREADS, OFF(threads),
	 "server threads when --latency is 0 (default: one per CPU)", NULL, NULL, "N", 0},
	{"tls-cert", FLAG_STRING, NULL, 0, 0, OFF(tls_cert),
	 "serve HTTPS with this PEM certificate (chain); needs --tls-key", NULL, NULL, "FILE", 0},
	{"tls-key", FLAG_STRING, NULL, 0, 0, OFF(tls_key), "the PEM private key of --tls-cert", NULL,
	 NULL, "FILE", 0},
};

static const struct flag_set mock_flags = {
	.prog = "hookd mock",
	.usage = "usage: hookd mock [options]\n\n"
		 "A webhook receiver for testing: verifies, prints and records every request.\n\n",
	.footer = "\nPrints `mock listening on http[s]://HOST:PORT` once bound, then one line per\n"
		  "request:\n"
		  "  mock: POST /path id=<webhook-id> event=<type> verified=yes|no|skipped\n"
		  "        status=<code> [reason=\"...\"]\n"
		  "GET " MOCK_STATS_PATH " answers the counts since start (DELETE resets them):\n"
		  "  {\"requests\":N,\"verified\":N,\"unverified\":N,\"skipped\":N,...}\n",
	.specs = mock_opts,
	.n = sizeof mock_opts / sizeof mock_opts[0],
};

/* Returns 0 to run, 1 when --help was printed, 2 on a usage error (message printed). */
static int parse_flags(int argc, char **argv, struct mock_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	int rc = flags_parse(&mock_flags, argc, argv, 1, cfg);
	if (rc != 0)
		return rc == 1 ? 1 : 2;
	if (cfg->reject_invalid && !cfg->have_secret) {
		fprintf(stderr, "hookd mock: --reject-invalid needs --secret\n");
		return 2;
	}
	if (cfg->record_us && cfg->record_path == NULL) {
		fprintf(stderr, "hookd mock: --record-us needs --record\n");
		return 2;
	}
	if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
		fprintf(stderr, "hookd mock: --tls-cert and --tls-key go together\n");
		return 2;
	}
	if (cfg->threads > 0 && cfg->latency_ms > 0) {
		fprintf(stderr, "hookd mock: --threads does not go with --latency "
				"(each connection gets its own thread then)\n");
		return 2;
	}
	return 0;
}

/* ---- the request handler ---- */

/* Copies s for a stdout line: no spaces, quotes or control bytes, capped. */
static void printable(const char *s, char *out, size_t outlen)
{
	size_t i = 0;
	if (s == NULL || *s == '\0')
		s = "-";
	for (; s[i] != '\0' && i + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];
		out[i] = c < 0x21 || c > 0x7e || c == '"' ? '?' : (char)c;
	}
	out[i] = '\0';
}

/* Waits ms milliseconds, or less if the server is stopping. */
static void latency_wait(struct mock_server *srv, long ms)
{
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&srv->stop_lock);
	while (!srv->stopping) {
		int e = pthread_cond_timedwait(&srv->stop_cond, &srv->stop_lock, &deadline);
		if (e == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&srv->stop_lock);
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, int status, const char *why)
{
	char body[128] = "";
	struct MHD_Response *resp;
	enum MHD_Result ret;

	/* 204 and 304 must not carry a body. */
	if (status >= 200 && status < 300 && status != 204)
		snprintf(body, sizeof body, "{\"received\":true}");
	else if (status != 204 && status != 304)
		snprintf(body, sizeof body, "{\"received\":false,\"error\":\"%s\"}", why);
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	if (body[0] != '\0')
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	/* A redirect with somewhere to go, so a sender that follows redirects shows it. */
	if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, "/redirected");
	ret = MHD_queue_response(conn, (unsigned int)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Answers GET (counters) or DELETE (counters, then reset) on /_mock/stats. */
static enum MHD_Result handle_stats(struct mock_server *srv, struct MHD_Connection *conn,
				    const char *method)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *body = mock_stats_json(srv, strcmp(method, MHD_HTTP_METHOD_DELETE) == 0);

	if (body == NULL)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result handle_complete(struct mock_server *srv, struct MHD_Connection *conn,
				       const char *url, const char *method,
				       struct mock_request *req)
{
	const struct mock_config *cfg = &srv->cfg;
	struct sign_check_result res;
	const char *reason = NULL;
	const char *why = "";
	int verified = -1; /* -1 skipped, 0 no, 1 yes */
	int status;
	enum MHD_Result ret;
	json_t *headers = json_object();

	if (headers == NULL)
		return MHD_NO;
	MHD_get_connection_values(conn, MHD_HEADER_KIND, mock_collect_header, headers);
	memset(&res, 0, sizeof res);

	if (req->too_large) {
		reason = "body larger than --max-body";
		if (cfg->have_secret)
			verified = 0;
	} else if (cfg->have_secret) {
		struct sign_headers h;
		sign_headers_collect(&h, mock_header_lookup, headers);
		verified = sign_check_request(&cfg->key, &h, req->body.data, req->body.len,
					      now_ms(), SIGN_TOLERANCE_S, false, &res);
		if (!verified)
			reason = res.reason;
	}

	bool injecting = cfg->fail_first > 0 || cfg->fail_rate > 0.0;
	if (req->too_large) {
		status = MHD_HTTP_CONTENT_TOO_LARGE;
		why = "payload too large";
	} else if (cfg->reject_invalid && verified == 0) {
		status = MHD_HTTP_UNAUTHORIZED;
		why = "signature verification failed";
	} else if (injecting && (req->seq <= cfg->fail_first ||
				 (cfg->fail_rate > 0.0 && random_unit() < cfg->fail_rate))) {
		status = cfg->status != 0 ? cfg->status : MHD_HTTP_INTERNAL_SERVER_ERROR;
		why = "injected failure";
	} else if (!injecting && cfg->status != 0) {
		status = cfg->status;
		why = "status set by --status";
	} else {
		status = MHD_HTTP_OK;
	}

	if (cfg->latency_ms > 0)
		latency_wait(srv, cfg->latency_ms);

	/* Record and print before replying, so whoever sees the reply can also
	 * see the record. */
	if (srv->record_fd >= 0)
		mock_record_request(srv, req, method, url, headers, status, verified, &res, reason);
	mock_stats_count(&srv->stats, req, verified, status);
	if (cfg->quiet)
		goto reply;

	char p_path[MOCK_PRINT_MAX], p_id[MOCK_PRINT_MAX], p_event[MOCK_PRINT_MAX];
	printable(url, p_path, sizeof p_path);
	printable(mock_header_lookup(headers, "webhook-id"), p_id, sizeof p_id);
	printable(mock_header_lookup(headers, "x-pixelpatrol-event"), p_event, sizeof p_event);
	pthread_mutex_lock(&srv->out_lock);
	printf("mock: %s %s id=%s event=%s verified=%s status=%d", method, p_path, p_id, p_event,
	       verified < 0 ? "skipped" : verified ? "yes" : "no", status);
	if (reason != NULL)
		printf(" reason=\"%s\"", reason);
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&srv->out_lock);

reply:
	ret = send_reply(conn, status, why);
	json_decref(headers);
	return ret;
}

/* The client's IP address as text into out ("" if MHD does not know it). */
static void client_address(struct MHD_Connection *conn, char *out, size_t outlen)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	out[0] = '\0';
	if (ci == NULL || ci->client_addr == NULL)
		return;
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
			  (socklen_t)outlen);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
			  out, (socklen_t)outlen);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct mock_server *srv = cls;
	struct mock_request *req = *con_cls;

	(void)version;
	if (req == NULL) {
		req = calloc(1, sizeof *req);
		if (req == NULL)
			return MHD_NO;
		dynbuf_init(&req->body, srv->cfg.max_body);
		req->at_us = mock_now_us();
		client_address(conn, req->remote_addr, sizeof req->remote_addr);
		/* GET/DELETE /_mock/stats is the mock's own: it takes no sequence
		 * number, so --fail-first counts deliveries only. */
		req->stats_route = strcmp(url, MOCK_STATS_PATH) == 0 &&
				   (strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
				    strcmp(method, MHD_HTTP_METHOD_DELETE) == 0);
		if (!req->stats_route)
			req->seq = atomic_fetch_add(&srv->seq, 1) + 1;
		*con_cls = req;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (req->stats_route) {
			*upload_data_size = 0; /* a body on the stats route is ignored */
			return MHD_YES;
		}
		/* Past --max-body the rest is read and dropped, then answered with 413:
		 * replying before the body is read would reset the sender's upload. */
		if (!req->too_large) {
			if (*upload_data_size > req->body.max - req->body.len) {
				req->too_large = true;
				dynbuf_free(&req->body);
			} else if (dynbuf_append(&req->body, upload_data, *upload_data_size) != 0) {
				log_error("mock out of memory seq=%ld", req->seq);
				return MHD_NO;
			}
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (req->stats_route)
		return handle_stats(srv, conn, method);
	return handle_complete(srv, conn, url, method, req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct mock_request *req = *con_cls;
	(void)cls;
	(void)conn;
	(void)toe;
	if (req == NULL)
		return;
	dynbuf_free(&req->body);
	free(req);
	*con_cls = NULL;
}

/* ---- main ---- */

/* Reads a whole PEM file (at most MOCK_TLS_FILE_MAX bytes) as a string the
 * caller frees. Returns NULL after printing why. */
static char *read_pem(const char *flag, const char *path)
{
	struct dynbuf b;
	char chunk[4096];
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "hookd mock: %s: cannot open %s: %s\n", flag, path,
			strerror(errno));
		return NULL;
	}
	dynbuf_init(&b, MOCK_TLS_FILE_MAX);
	size_t n;
	int bad = 0;
	while (!bad && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		bad = dynbuf_append(&b, chunk, n);
	bad = bad || ferror(f) || dynbuf_append(&b, "", 1) != 0;
	fclose(f);
	if (bad) {
		fprintf(stderr, "hookd mock: %s: cannot read %s (at most %d bytes)\n", flag, path,
			MOCK_TLS_FILE_MAX);
		dynbuf_free(&b);
		return NULL;
	}
	return b.data;
}

/* libmicrohttpd's own error messages, as log lines. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	(void)cls;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	vsnprintf(msg, sizeof msg, fmt, ap);
#pragma GCC diagnostic pop
	msg[strcspn(msg, "\n")] = '\0';
	log_warn("mock httpd msg=\"%s\"", msg);
}

/* MHD_OPTION_NOTIFY_CONNECTION with TLS: lets each new connection's GnuTLS
 * session issue session tickets under the mock's key (cls), so a client
 * that connects again resumes its session (an abbreviated handshake), as
 * real HTTPS receivers allow. libmicrohttpd has no option for it; the
 * session exists, its handshake not yet begun, when MHD reports the start. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	(void)socket_context;
	if (code != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (ci != NULL && ci->tls_session != NULL &&
	    gnutls_session_ticket_enable_server(ci->tls_session, cls) != GNUTLS_E_SUCCESS)
		log_warn("mock: session tickets unavailable on a connection");
}

/* The HTTPS options of the daemon: certificate and key (read from the
 * --tls-cert and --tls-key files into *cert, *key) and session tickets
 * under a key made now (*ticket). Returns 0, or 2 with a message printed. */
static int tls_options(const struct mock_config *cfg, struct MHD_OptionItem opts[4],
		       char **cert, char **key, gnutls_datum_t *ticket)
{
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		fprintf(stderr, "hookd mock: this libmicrohttpd was built without TLS\n");
		return 2;
	}
	*cert = read_pem("--tls-cert", cfg->tls_cert);
	*key = *cert ? read_pem("--tls-key", cfg->tls_key) : NULL;
	if (*key == NULL)
		return 2;
	if (gnutls_session_ticket_key_generate(ticket) != GNUTLS_E_SUCCESS) {
		fprintf(stderr, "hookd mock: cannot make a TLS session ticket key\n");
		return 2;
	}
	opts[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, *key};
	opts[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, *cert};
	opts[2] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection,
					  ticket};
	opts[3] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	return 0;
}

int mock_main(int argc, char **argv)
{
	struct mock_server srv;
	struct MHD_Daemon *d = NULL;
	struct addrinfo hints, *ai = NULL;
	sigset_t block, old_mask, wait_mask;
	struct sigaction sa, old_int, old_term, old_pipe;
	bool signals_set = false;
	char *tls_cert = NULL, *tls_key = NULL;
	gnutls_datum_t ticket_key = {NULL, 0};
	int rc = 1;

	memset(&srv, 0, sizeof srv);
	srv.record_fd = -1;
	int pf = parse_flags(argc, argv, &srv.cfg);
	if (pf == 1)
		return 0;
	if (pf != 0)
		return pf;
	atomic_init(&srv.seq, 0);
	mock_stats_init(&srv.stats);
	pthread_mutex_init(&srv.out_lock, NULL);
	pthread_mutex_init(&srv.stop_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&srv.stop_cond, &ca);
	pthread_condattr_destroy(&ca);

	if (srv.cfg.record_path != NULL) {
		srv.record_fd = open(srv.cfg.record_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
				     0600);
		if (srv.record_fd < 0) {
			fprintf(stderr, "hookd mock: --record: cannot open %s: %s\n",
				srv.cfg.record_path, strerror(errno));
			rc = 2;
			goto out;
		}
	}

	/* HTTPS: MHD takes the certificate and key from memory. */
	struct MHD_OptionItem tls_opts[4] = {{MHD_OPTION_END, 0, NULL}};
	if (srv.cfg.tls_cert != NULL) {
		rc = tls_options(&srv.cfg, tls_opts, &tls_cert, &tls_key, &ticket_key);
		if (rc != 0)
			goto out;
		rc = 1;
	}

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int gai = getaddrinfo(srv.cfg.host, srv.cfg.port, &hints, &ai);
	if (gai != 0) {
		fprintf(stderr, "hookd mock: --listen: cannot resolve %s: %s\n", srv.cfg.host,
			gai_strerror(gai));
		rc = 2;
		goto out;
	}

	/* Signals are blocked in every thread (MHD's inherit the mask) and taken
	 * only in sigsuspend below, so the handler just sets mock_stop. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, &old_pipe);
	signals_set = true;
	mock_stop = 0;

	/* --latency blocks the thread that answers, so it keeps a thread per
	 * connection; otherwise a small pool over epoll answers far more requests
	 * per second (bench/run's receiver). */
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
	unsigned int pool = 0;
	if (srv.cfg.latency_ms > 0) {
		flags |= MHD_USE_THREAD_PER_CONNECTION;
	} else {
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		long n = srv.cfg.threads > 0 ? srv.cfg.threads : ncpu;
		pool = (unsigned int)(n < 1 ? 1 : n > MOCK_MAX_THREADS ? MOCK_MAX_THREADS : n);
	}
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (tls_key != NULL)
		flags |= MHD_USE_TLS;
	/* The idle timeout must outlast --latency, which MHD may count as idle time. */
	unsigned int timeout = MOCK_IDLE_TIMEOUT_S + (unsigned int)(srv.cfg.latency_ms / 1000);
	d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, &srv,
			     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
			     MHD_OPTION_SOCK_ADDR, ai->ai_addr,
			     MHD_OPTION_CONNECTION_TIMEOUT, timeout,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned int)MOCK_MAX_CONNECTIONS,
			     MHD_OPTION_NOTIFY_COMPLETED, on_completed, &srv,
			     MHD_OPTION_ARRAY, tls_opts,
			     /* per connection: the list ends here and pool is not read */
			     pool > 0 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, pool,
			     MHD_OPTION_END);
	if (d == NULL) {
		fprintf(stderr, "hookd mock: --listen: cannot listen on %s:%s\n", srv.cfg.host,
			srv.cfg.port);
		goto out;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	unsigned int port = info != NULL ? info->port : 0;
	const char *lb = srv.cfg.ipv6_literal ? "[" : "", *rb = srv.cfg.ipv6_literal ? "]" : "";
	printf("mock listening on %s://%s%s%s:%u\n", tls_key ? "https" : "http", lb, srv.cfg.host,
	       rb, port);
	fflush(stdout);
	char threads[16] = "per-connection";
	if (pool > 0)
		snprintf(threads, sizeof threads, "%u", pool);
	log_info("mock started port=%u verify=%s record=%s threads=%s tls=%s", port,
		 srv.cfg.have_secret ? "yes" : "no", srv.record_fd >= 0 ? "yes" : "no", threads,
		 tls_key ? "yes" : "no");

	wait_mask = old_mask;
	sigdelset(&wait_mask, SIGINT);
	sigdelset(&wait_mask, SIGTERM);
	while (!mock_stop)
		sigsuspend(&wait_mask);

	pthread_mutex_lock(&srv.stop_lock);
	srv.stopping = true;
	pthread_cond_broadcast(&srv.stop_cond);
	pthread_mutex_unlock(&srv.stop_lock);
	log_info("mock stopping requests=%ld", (long)atomic_load(&srv.seq));
	rc = 0;
out:
	if (d != NULL)
		MHD_stop_daemon(d);
	if (signals_set) {
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
		sigaction(SIGPIPE, &old_pipe, NULL);
		pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	}
	if (ai != NULL)
		freeaddrinfo(ai);
	if (srv.record_fd >= 0)
		close(srv.record_fd);
	pthread_cond_destroy(&srv.stop_cond);
	pthread_mutex_destroy(&srv.stop_lock);
	pthread_mutex_destroy(&srv.out_lock);
	OPENSSL_cleanse(&srv.cfg.key, sizeof srv.cfg.key);
	if (tls_key != NULL)
		OPENSSL_cleanse(tls_key, strlen(tls_key));
	free(tls_key);
	free(tls_cert);
	if (ticket_key.data != NULL) {
		OPENSSL_cleanse(ticket_key.data, ticket_key.size);
		gnutls_free(ticket_key.data);
	}
	return rc;
}
