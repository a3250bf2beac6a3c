/* Unit tests for dispatch_send: sender threads run posted requests and give
 * every one back, finished with curl's result or, at the stop, abandoned;
 * a request moved to another sender keeps its --resolve pins. A small HTTP
 * server on loopback (a thread here) answers 200, or never answers. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dispatch_send.h"
#include "util.h"

#define MAX_CONNS 32
#define N_REQS 12

/* ---- a loopback HTTP/1.1 server: 200 to every request, or silence ---- */

struct server {
	int lfd, port;
	bool silent;             /* accept and read, never answer */
	const char *reply;       /* the whole response; NULL = 200 with "ok" */
	int stop_pipe[2];
	pthread_t thread;
	_Atomic int open;        /* connections accepted and not yet closed */
};

/* True once buf holds a whole request (headers and Content-Length bytes);
 * *used is its length. */
static bool whole_request(const char *buf, size_t len, size_t *used)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	if (end == NULL)
		return false;
	size_t head = (size_t)(end - buf) + 4, body = 0;
	const char *cl = strcasestr(buf, "content-length:");
	if (cl != NULL && cl < end)
		body = strtoul(cl + 15, NULL, 10);
	if (len < head + body)
		return false;
	*used = head + body;
	return true;
}

static void *serve(void *arg)
{
	struct server *sv = arg;
	struct pollfd fds[MAX_CONNS + 2];
	char bufs[MAX_CONNS + 2][8192];
	size_t lens[MAX_CONNS + 2];
	int n = 2;
	fds[0] = (struct pollfd){.fd = sv->stop_pipe[0], .events = POLLIN};
	fds[1] = (struct pollfd){.fd = sv->lfd, .events = POLLIN};
	for (;;) {
		if (poll(fds, (nfds_t)n, -1) < 0 || fds[0].revents)
			break;
		if (fds[1].revents && n < MAX_CONNS + 2) {
			int c = accept(sv->lfd, NULL, NULL);
			if (c >= 0) {
				fds[n] = (struct pollfd){.fd = c, .events = POLLIN};
				lens[n++] = 0;
				atomic_fetch_add(&sv->open, 1);
			}
		}
		for (int i = 2; i < n; i++) {
			if (!fds[i].revents)
				continue;
			ssize_t r = read(fds[i].fd, bufs[i] + lens[i], sizeof bufs[i] - lens[i] - 1);
			if (r <= 0) {
				close(fds[i].fd);
				atomic_fetch_sub(&sv->open, 1);
				fds[i] = fds[n - 1];
				memcpy(bufs[i], bufs[n - 1], lens[n - 1]);
				lens[i] = lens[n - 1];
				n--;
				i--;
				continue;
			}
			lens[i] += (size_t)r;
			bufs[i][lens[i]] = '\0';
			size_t used;
			while (!sv->silent && whole_request(bufs[i], lens[i], &used)) {
				const char *ok = sv->reply != NULL
							 ? sv->reply
							 : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
				ssize_t n_ok = (ssize_t)strlen(ok);
				cr_assert_eq(write(fds[i].fd, ok, (size_t)n_ok), n_ok);
				memmove(bufs[i], bufs[i] + used, lens[i] - used);
				lens[i] -= used;
				bufs[i][lens[i]] = '\0';
			}
		}
	}
	for (int i = 2; i < n; i++)
		close(fds[i].fd);
	return NULL;
}

static void server_start_replying(struct server *sv, bool silent, const char *reply)
{
	memset(sv, 0, sizeof *sv);
	sv->silent = silent;
	sv->reply = reply;
	sv->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(sv->lfd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	cr_assert_eq(bind(sv->lfd, (struct sockaddr *)&a, len), 0);
	cr_assert_eq(listen(sv->lfd, 64), 0);
	cr_assert_eq(getsockname(sv->lfd, (struct sockaddr *)&a, &len), 0);
	sv->port = ntohs(a.sin_port);
	cr_assert_eq(pipe(sv->stop_pipe), 0);
	cr_assert_eq(pthread_create(&sv->thread, NULL, serve, sv), 0);
}

static void server_start(struct server *sv, bool silent)
{
	server_start_replying(sv, silent, NULL);
}

static void server_stop(struct server *sv)
{
	cr_assert_eq(write(sv->stop_pipe[1], "x", 1), 1);
	pthread_join(sv->thread, NULL);
	close(sv->stop_pipe[0]);
	close(sv->stop_pipe[1]);
	close(sv->lfd);
}

/* ---- what the senders give back ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct dispatch_send_job *back_reqs[64];
static size_t n_back, n_chains;

static void on_back(void *ctx, struct dispatch_send_chain *back)
{
	(void)ctx;
	pthread_mutex_lock(&mu);
	n_chains++;
	struct dispatch_send_job *last = back->last, *j;
	while ((j = dispatch_send_chain_pop(back)) != NULL) {
		cr_assert_lt(n_back, sizeof back_reqs / sizeof back_reqs[0]);
		back_reqs[n_back++] = j;
		if (back->first == NULL)
			cr_assert_eq(j, last, "the chain ends at last");
	}
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

/* Waits up to 10 s for n requests back in all. */
static void wait_back(size_t n)
{
	int64_t until = mono_ms() + 10000;
	pthread_mutex_lock(&mu);
	while (n_back < n && mono_ms() < until) {
		pthread_mutex_unlock(&mu);
		usleep(2000);
		pthread_mutex_lock(&mu);
	}
	size_t got = n_back;
	pthread_mutex_unlock(&mu);
	cr_assert_eq(got, n, "%zu of %zu requests given back", got, n);
}

static struct dispatch_http_pool pool;
/* Each request's job, as the dispatcher's struct dispatch_req pairs them. */
static struct dispatch_send_job jobs[64];
static size_t n_jobs;

static void setup_pool(const char *resolve)
{
	cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
	memset(&pool, 0, sizeof pool);
	pool.timeout_ms = 5000;
	pool.allow_http = true;
	char err[256];
	struct dispatch_net_config net = {.allow_private_networks = true,
					  .max_response_bytes = 65536, .resolve = resolve};
	cr_assert_eq(dispatch_net_setup(&pool, &net, err, sizeof err), 0, "%s", err);
	n_back = n_chains = n_jobs = 0;
}

static void setup(void)
{
	setup_pool(NULL);
}

static void teardown(void)
{
	dispatch_http_pool_free(&pool);
	curl_global_cleanup();
}

/* The job of a request to url with a small body, as if prepared by the
 * dispatcher. */
static struct dispatch_send_job *mkreq(const char *url)
{
	struct dispatch_http_req *x = dispatch_http_get(&pool);
	cr_assert_not_null(x);
	cr_assert_lt(n_jobs, sizeof jobs / sizeof jobs[0]);
	snprintf(x->url, sizeof x->url, "%s", url);
	curl_easy_setopt(x->easy, CURLOPT_URL, x->url);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, "{}");
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, NULL);
	x->started = mono_ms();
	x->ended = 0;
	struct dispatch_send_job *j = &jobs[n_jobs++];
	memset(j, 0, sizeof *j);
	j->http = x;
	return j;
}

/* Posts reqs[from..to) as one chain. */
static void post_chain(struct dispatch_send *s, struct dispatch_send_job **reqs, size_t from,
		       size_t to)
{
	struct dispatch_send_chain c = {0};
	for (size_t i = from; i < to; i++)
		dispatch_send_chain_add(&c, reqs[i]);
	dispatch_send_post(s, &c);
	cr_assert_null(c.first, "the chain was taken over");
}

static void post_one(struct dispatch_send *s, struct dispatch_send_job *j)
{
	post_chain(s, &j, 0, 1);
}

static void put_all(void)
{
	for (size_t i = 0; i < n_back; i++)
		dispatch_http_put(&pool, back_reqs[i]->http);
}

Test(send, runs_chains_on_two_senders_and_gives_each_back, .init = setup, .fini = teardown)
{
	struct server sv;
	server_start(&sv, false);
	struct dispatch_send *s[2];
	char err[128];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(dispatch_send_start(i, 8, on_back, NULL, &s[i], err, sizeof err), 0,
			     "%s", err);
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", sv.port);
	struct dispatch_send_job *reqs[N_REQS];
	for (size_t i = 0; i < N_REQS; i++)
		reqs[i] = mkreq(url);
	post_chain(s[0], reqs, 0, N_REQS / 2);
	post_chain(s[1], reqs, N_REQS / 2, N_REQS);
	wait_back(N_REQS);
	for (size_t i = 0; i < n_back; i++) {
		struct dispatch_send_job *j = back_reqs[i];
		cr_assert_eq(j->fate, DISPATCH_SEND_DONE);
		cr_assert_eq(j->cc, CURLE_OK, "%s", j->http->errbuf);
		cr_assert_gt(j->http->ended, 0, "the end time is the sender's");
		long status;
		char detail[256];
		cr_assert_eq(dispatch_http_outcome(j->http, j->cc, &status, detail, sizeof detail),
			     FAILURE_NONE, "%s", detail);
		cr_assert_eq(status, 200);
		cr_assert(j->http->resp_len == 2 && memcmp(j->http->resp, "ok", 2) == 0);
	}
	cr_assert_leq(n_chains, N_REQS, "finished requests come back in chains");
	/* Each request once. */
	for (size_t i = 0; i < n_back; i++)
		for (size_t j = i + 1; j < n_back; j++)
			cr_assert_neq(back_reqs[i], back_reqs[j]);
	dispatch_send_stop(s[0]);
	dispatch_send_stop(s[1]);
	cr_assert_eq(n_back, N_REQS, "a stop with nothing in flight gives nothing back");
	put_all();
	server_stop(&sv);
}

Test(send, a_refused_connection_comes_back_with_curls_result, .init = setup, .fini = teardown)
{
	/* A port nobody listens on: bind one, then close it. */
	struct server sv;
	server_start(&sv, false);
	int port = sv.port;
	server_stop(&sv);
	struct dispatch_send *s;
	char err[128], url[64];
	cr_assert_eq(dispatch_send_start(0, 8, on_back, NULL, &s, err, sizeof err), 0, "%s", err);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
	struct dispatch_send_job *j = mkreq(url);
	post_one(s, j);
	wait_back(1);
	cr_assert_eq(j->fate, DISPATCH_SEND_DONE);
	cr_assert_eq(j->cc, CURLE_COULDNT_CONNECT);
	/* Issue 11: curl names no address for a failed connection; the one
	 * dialled is still known. No connection: nothing reused, no phase
	 * after the (absent) lookup, the total measured. */
	cr_assert_str_eq(j->http->remote_ip, "127.0.0.1");
	cr_assert_not(j->http->reused);
	cr_assert_eq(j->http->timings.connect_us, ATTEMPT_TIMING_NONE);
	cr_assert_eq(j->http->timings.tls_us, ATTEMPT_TIMING_NONE);
	cr_assert_eq(j->http->timings.ttfb_us, ATTEMPT_TIMING_NONE);
	cr_assert_geq(j->http->timings.total_us, 0);
	dispatch_send_stop(s);
	put_all();
}

/* Issue 11: the sender measures each transfer where it ends. The same
 * handle twice to one receiver: the first opens a connection (connect and
 * ttfb measured), the second reuses it (no connect phase), both to the
 * address dialled. The attempt carries what was measured. */
Test(send, each_transfer_is_measured_fresh_then_reused, .init = setup, .fini = teardown)
{
	struct server sv;
	server_start(&sv, false);
	struct dispatch_send *s;
	char err[128], url[64];
	cr_assert_eq(dispatch_send_start(0, 8, on_back, NULL, &s, err, sizeof err), 0, "%s", err);
	snprintf(url, sizeof url, "http://localhost:%d/hook", sv.port);
	struct dispatch_send_job *j = mkreq(url);
	struct attempt_timings first;
	for (size_t round = 0; round < 2; round++) {
		post_one(s, j);
		wait_back(round + 1);
		cr_assert_eq(j->cc, CURLE_OK, "round %zu: %s", round, j->http->errbuf);
		cr_assert_str_eq(j->http->remote_ip, "127.0.0.1", "round %zu", round);
		cr_assert_eq(j->http->reused, round == 1, "round %zu", round);
		cr_assert_geq(j->http->timings.ttfb_us, 0, "round %zu", round);
		cr_assert_geq(j->http->timings.total_us, j->http->timings.ttfb_us, "round %zu", round);
		cr_assert_eq(j->http->timings.tls_us, ATTEMPT_TIMING_NONE, "plain http");
		if (round == 0)
			first = j->http->timings;
	}
	cr_assert_geq(first.dns_us, 0, "localhost is a name");
	cr_assert_geq(first.connect_us, 0);
	cr_assert_eq(j->http->timings.dns_us, ATTEMPT_TIMING_NONE);
	cr_assert_eq(j->http->timings.connect_us, ATTEMPT_TIMING_NONE);
	struct attempt a;
	memset(&a, 0, sizeof a);
	dispatch_http_attempt(j->http, FAILURE_NONE, 200, NULL, &a);
	cr_assert(a.reused);
	cr_assert_str_eq(a.remote_ip, "127.0.0.1");
	cr_assert_eq(a.timings.ttfb_us, j->http->timings.ttfb_us);
	cr_assert_eq(a.timings.total_us, j->http->timings.total_us);
	free(a.url);
	free(a.response_body);
	free(a.headers);
	dispatch_send_stop(s);
	dispatch_http_put(&pool, j->http);
	server_stop(&sv);
}

Test(send, an_idle_connection_is_closed_with_nothing_to_send, .init = setup, .fini = teardown)
{
	struct server sv;
	server_start(&sv, false);
	struct dispatch_send *s;
	char err[128], url[64];
	/* As dispatch.c wires them: the sender knows its connection sockets. */
	pool.socket_opened = dispatch_send_socket_opened;
	pool.socket_closed = dispatch_send_socket_closed;
	cr_assert_eq(dispatch_send_start(0, 8, on_back, NULL, &s, err, sizeof err), 0, "%s", err);
	dispatch_send_set_idle_close(s, 200);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", sv.port);
	struct dispatch_send_job *j = mkreq(url);
	post_one(s, j);
	wait_back(1);
	cr_assert_eq(j->cc, CURLE_OK, "%s", j->http->errbuf);
	cr_assert_eq(atomic_load(&sv.open), 1, "the connection is kept after the transfer");
	/* No transfer follows: only the sender's sweep can close it. */
	int64_t end = mono_ms() + 5000;
	while (atomic_load(&sv.open) > 0 && mono_ms() < end)
		usleep(10 * 1000);
	cr_assert_eq(atomic_load(&sv.open), 0, "the idle connection is still open after 5 s");
	/* The sender still delivers, on a new connection. */
	post_one(s, j);
	wait_back(2);
	cr_assert_eq(j->cc, CURLE_OK, "%s", j->http->errbuf);
	cr_assert_not(j->http->reused, "a closed connection was reused");
	dispatch_send_stop(s);
	dispatch_http_put(&pool, j->http);
	server_stop(&sv);
}

Test(send, stop_gives_back_what_still_runs_as_abandoned, .init = setup, .fini = teardown)
{
	struct server sv;
	server_start(&sv, true);
	struct dispatch_send *s;
	char err[128], url[64];
	cr_assert_eq(dispatch_send_start(0, 8, on_back, NULL, &s, err, sizeof err), 0, "%s", err);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", sv.port);
	struct dispatch_send_job *reqs[3];
	for (size_t i = 0; i < 3; i++)
		reqs[i] = mkreq(url);
	post_chain(s, reqs, 0, 3);
	usleep(200 * 1000); /* connected and sent, waiting for an answer that never comes */
	cr_assert_eq(n_back, 0);
	int64_t t0 = mono_ms();
	dispatch_send_stop(s);
	cr_assert_lt(mono_ms() - t0, 1000, "the stop does not wait for the transfers");
	cr_assert_eq(n_back, 3, "every request is back when the stop returns");
	for (size_t i = 0; i < n_back; i++)
		cr_assert_eq(back_reqs[i]->fate, DISPATCH_SEND_ABANDONED);
	/* The handles left the multi handle: they can be reused at once. */
	put_all();
	server_stop(&sv);
}

Test(send, a_request_moved_to_another_sender_keeps_its_resolve_pins, .fini = teardown)
{
	struct server sv;
	server_start(&sv, false);
	char pin[64], url[64], err[128];
	snprintf(pin, sizeof pin, "pinned.invalid:%d:127.0.0.1", sv.port);
	setup_pool(pin);
	struct dispatch_send *s[2];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(dispatch_send_start(i, 8, on_back, NULL, &s[i], err, sizeof err), 0,
			     "%s", err);
	snprintf(url, sizeof url, "http://pinned.invalid:%d/hook", sv.port);
	struct dispatch_send_job *j = mkreq(url);
	/* The same handle on sender 0, then 1, then 0 again: a .invalid name
	 * resolves only through the pin. */
	for (size_t round = 0; round < 3; round++) {
		post_one(s[round % 2], j);
		wait_back(round + 1);
		cr_assert_eq(j->fate, DISPATCH_SEND_DONE);
		cr_assert_eq(j->cc, CURLE_OK, "round %zu: %s", round, j->http->errbuf);
	}
	dispatch_send_stop(s[0]);
	dispatch_send_stop(s[1]);
	dispatch_http_put(&pool, j->http);
	server_stop(&sv);
}

/* The policy reads Retry-After as on_header kept it (the final response's,
 * blanks trimmed, whatever its case), not from the attempt's JSON. */
Test(send, retry_after_is_read_from_the_kept_headers, .init = setup, .fini = teardown)
{
	struct server sv;
	server_start_replying(&sv, false,
			      "HTTP/1.1 100 Continue\r\nRetry-After: 5\r\n\r\n"
			      "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n"
			      "RETRY-AFTER:  120 \r\n\r\n");
	struct dispatch_send *s;
	char err[128], url[64];
	cr_assert_eq(dispatch_send_start(0, 8, on_back, NULL, &s, err, sizeof err), 0, "%s", err);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", sv.port);
	struct dispatch_send_job *j = mkreq(url);
	post_one(s, j);
	wait_back(1);
	cr_assert_eq(j->cc, CURLE_OK, "%s", j->http->errbuf);
	long status;
	char detail[256];
	cr_assert_eq(dispatch_http_outcome(j->http, j->cc, &status, detail, sizeof detail),
		     FAILURE_HTTP_STATUS, "%s", detail);
	cr_assert_eq(status, 429);
	const char *ra = dispatch_http_resp_header(j->http, "retry-after");
	cr_assert_not_null(ra);
	cr_expect_str_eq(ra, "120");
	cr_expect_null(dispatch_http_resp_header(j->http, "x-missing"));
	dispatch_send_stop(s);
	put_all();
	server_stop(&sv);
}

/* The response headers an attempt records: the final response's only (not
 * a 1xx's), names lowercased, a repeated name's values joined with ", ",
 * in the order first seen, as compact JSON text. */
Test(send, the_attempt_keeps_the_final_responses_headers_as_json, .init = setup,
     .fini = teardown)
{
	struct server sv;
	server_start_replying(&sv, false,
			      "HTTP/1.1 100 Continue\r\nX-Early: 1\r\n\r\n"
			      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Dup: a\r\n"
			      "Set-Cookie: s=1\r\nx-dup: b\r\nX-Tab: p\tq \r\n"
			      "X-Quote: \"q\\\r\n\r\nok");
	struct dispatch_send *s;
	char err[128], url[64];
	cr_assert_eq(dispatch_send_start(0, 8, on_back, NULL, &s, err, sizeof err), 0, "%s", err);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", sv.port);
	struct dispatch_send_job *j = mkreq(url);
	post_one(s, j);
	wait_back(1);
	cr_assert_eq(j->cc, CURLE_OK, "%s", j->http->errbuf);
	long status;
	char detail[256];
	cr_assert_eq(dispatch_http_outcome(j->http, j->cc, &status, detail, sizeof detail),
		     FAILURE_NONE, "%s", detail);
	struct attempt a;
	memset(&a, 0, sizeof a);
	dispatch_http_attempt(j->http, FAILURE_NONE, status, NULL, &a);
	cr_assert_str_eq(a.headers, "{\"content-length\":\"2\",\"x-dup\":\"a, b\","
				    "\"set-cookie\":\"s=1\",\"x-tab\":\"p\\tq\","
				    "\"x-quote\":\"\\\"q\\\\\"}");
	free(a.url);
	free(a.response_body);
	free(a.headers);
	dispatch_send_stop(s);
	put_all();
	server_stop(&sv);
}

/* Repeated names are stored again, joined, each time they come: a reply of
 * many short repeats (under the header byte limit) must not grow the
 * buffer past its cap, and what is kept is still valid JSON. */
Test(send, repeated_response_headers_stay_within_the_buffer_cap, .init = setup,
     .fini = teardown)
{
	enum { NAMES = 40, REPEATS = 60 };
	static char reply[NAMES * REPEATS * 24 + 128];
	char *o = reply;
	o += sprintf(o, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
	for (int r = 0; r < REPEATS; r++)
		for (int k = 0; k < NAMES; k++)
			o += sprintf(o, "X-R%02d: abcdefghij\r\n", k);
	sprintf(o, "\r\nok");
	struct server sv;
	server_start_replying(&sv, false, reply);
	struct dispatch_send *s;
	char err[128], url[64];
	cr_assert_eq(dispatch_send_start(0, 8, on_back, NULL, &s, err, sizeof err), 0, "%s", err);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", sv.port);
	struct dispatch_send_job *j = mkreq(url);
	post_one(s, j);
	wait_back(1);
	cr_assert_eq(j->cc, CURLE_OK, "%s", j->http->errbuf);
	cr_assert_leq(j->http->hbuf_cap, 2 * 64 * 1024, "the buffer stays within its cap");
	cr_assert_eq(j->http->n_headers, NAMES + 1);
	struct attempt a;
	memset(&a, 0, sizeof a);
	dispatch_http_attempt(j->http, FAILURE_NONE, 200, NULL, &a);
	json_error_t jerr;
	json_t *h = json_loads(a.headers, 0, &jerr);
	cr_assert(json_is_object(h), "%s", jerr.text);
	cr_assert_eq(json_object_size(h), NAMES + 1);
	const char *v = json_string_value(json_object_get(h, "x-r00"));
	cr_assert_not_null(v);
	cr_assert(strncmp(v, "abcdefghij, abcdefghij", 22) == 0, "%s", v);
	json_decref(h);
	free(a.url);
	free(a.response_body);
	free(a.headers);
	dispatch_send_stop(s);
	put_all();
	server_stop(&sv);
}
