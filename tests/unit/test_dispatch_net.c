/* Unit tests for dispatch_net: the socket-open callback (the address guard
 * as curl calls it) and dispatch_net_setup's start-up checks of the
 * destination flags. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dispatch_http.h"
#include "test_addr.h"

static struct dispatch_http_pool pool;

static void setup(void)
{
	cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
	memset(&pool, 0, sizeof pool);
	pool.timeout_ms = 1000;
}

static void teardown(void)
{
	dispatch_http_pool_free(&pool);
	curl_global_cleanup();
}

/* curl's address record with room for an IPv6 address (curl allocates it
 * the same way: struct curl_sockaddr ends with a struct sockaddr). */
struct addr_buf {
	struct curl_sockaddr a;
	struct sockaddr_in6 room;
};

/* Calls the callback for text as curl would; returns the socket. */
static curl_socket_t open_as_curl(struct dispatch_http_req *r, curlsocktype purpose,
				  const char *text)
{
	struct addr_buf *b = calloc(1, sizeof *b);
	struct sockaddr_storage ss;
	const struct sockaddr *sa = test_addr(text, &ss);
	cr_assert_not_null(b);
	cr_assert_not_null(sa, "%s", text);
	size_t len = sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
					       : sizeof(struct sockaddr_in6);
	b->a.family = sa->sa_family;
	b->a.socktype = SOCK_STREAM;
	b->a.protocol = IPPROTO_TCP;
	b->a.addrlen = (unsigned int)len;
	memcpy((char *)b + offsetof(struct curl_sockaddr, addr), sa, len);
	curl_socket_t fd = dispatch_net_open_socket(r, purpose, &b->a);
	free(b);
	return fd;
}

static int setup_net(const struct dispatch_net_config *net, char *err, size_t errlen)
{
	err[0] = '\0';
	return dispatch_net_setup(&pool, net, err, errlen);
}

Test(dispatch_net, guard_refuses_and_names_the_first_address, .init = setup, .fini = teardown)
{
	char err[256];
	cr_assert_eq(setup_net(&(struct dispatch_net_config){.max_response_bytes = 100}, err,
			       sizeof err), 0, "%s", err);
	struct dispatch_http_req *r = dispatch_http_get(&pool);
	cr_assert_not_null(r);
	r->blocked[0] = '\0';
	cr_assert_eq(open_as_curl(r, CURLSOCKTYPE_IPCXN, "127.0.0.1"), CURL_SOCKET_BAD);
	cr_assert_str_eq(r->blocked, "blocked 127.0.0.1: loopback (allow with "
				     "--allow-private-networks or --allow-cidr)");
	cr_assert_eq(open_as_curl(r, CURLSOCKTYPE_IPCXN, "::ffff:10.0.0.1"), CURL_SOCKET_BAD);
	cr_assert(strstr(r->blocked, "127.0.0.1") != NULL, "the first one stays: %s", r->blocked);
	curl_socket_t fd = open_as_curl(r, CURLSOCKTYPE_IPCXN, "93.184.216.34");
	cr_assert_neq(fd, CURL_SOCKET_BAD, "a public address gets its socket");
	close(fd);
	cr_assert_eq(open_as_curl(r, CURLSOCKTYPE_ACCEPT, "93.184.216.34"), CURL_SOCKET_BAD);
	cr_assert_eq(pool.max_response_bytes, 100);
	dispatch_http_put(&pool, r);
}

Test(dispatch_net, exceptions_open_the_guard, .init = setup, .fini = teardown)
{
	char err[256];
	cr_assert_eq(setup_net(&(struct dispatch_net_config){.allow_cidr = "127.0.0.0/8"}, err,
			       sizeof err), 0, "%s", err);
	struct dispatch_http_req *r = dispatch_http_get(&pool);
	r->blocked[0] = '\0';
	curl_socket_t fd = open_as_curl(r, CURLSOCKTYPE_IPCXN, "127.0.0.1");
	cr_assert_neq(fd, CURL_SOCKET_BAD);
	close(fd);
	cr_assert_eq(open_as_curl(r, CURLSOCKTYPE_IPCXN, "10.0.0.1"), CURL_SOCKET_BAD);
	cr_assert(strstr(r->blocked, "10.0.0.1: private network") != NULL, "%s", r->blocked);
	dispatch_http_put(&pool, r);
	dispatch_http_pool_free(&pool);

	pool.timeout_ms = 1000;
	cr_assert_eq(setup_net(&(struct dispatch_net_config){.allow_private_networks = true}, err,
			       sizeof err), 0, "%s", err);
	r = dispatch_http_get(&pool);
	fd = open_as_curl(r, CURLSOCKTYPE_IPCXN, "10.0.0.1");
	cr_assert_neq(fd, CURL_SOCKET_BAD);
	close(fd);
	dispatch_http_put(&pool, r);
}

Test(dispatch_net, setup_checks_the_flags, .init = setup, .fini = teardown)
{
	char dir[] = "/tmp/hookd-dnet-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char notpem[64], missing[64];
	snprintf(notpem, sizeof notpem, "%s/notpem", dir);
	snprintf(missing, sizeof missing, "%s/missing.pem", dir);
	FILE *f = fopen(notpem, "w");
	cr_assert_not_null(f);
	fputs("-----BEGIN NOTHING-----\nabc\n-----END NOTHING-----\n", f);
	fclose(f);

	static const struct {
		struct dispatch_net_config net;
		const char *says;
	} bad[] = {
		{{.allow_cidr = "10.0.0.0/33"}, "--allow-cidr"},
		{{.ca_file = "/nonexistent/ca.pem"}, "No such file"},
		{{.source_address = "192.0.2.77"}, "cannot bind"},
		{{.source_address = "localhost"}, "not an IP address"},
		{{.resolve = "a.test:443"}, "bad --resolve item"},
	};
	char err[256];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cr_assert_eq(setup_net(&bad[i].net, err, sizeof err), -1, "case %zu", i);
		cr_assert(strstr(err, bad[i].says) != NULL, "case %zu: %s", i, err);
		dispatch_http_pool_free(&pool);
	}
	struct dispatch_net_config c = {.ca_file = notpem};
	cr_assert_eq(setup_net(&c, err, sizeof err), -1);
	cr_assert(strstr(err, "no PEM certificate") != NULL, "%s", err);
	c.ca_file = missing;
	cr_assert_eq(setup_net(&c, err, sizeof err), -1);
	cr_assert(strstr(err, "missing.pem") != NULL, "%s", err);
	unlink(notpem);
	rmdir(dir);
}

Test(dispatch_net, setup_fills_the_pool, .init = setup, .fini = teardown)
{
	char err[256];
	struct dispatch_net_config c = {
		.source_address = "127.0.0.1",
		.resolve = "a.test:443:127.0.0.1, b.test:8443:::1,c.test:1:[fd00::2]",
		.max_response_bytes = 65536,
	};
	cr_assert_eq(setup_net(&c, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(pool.source_text, "127.0.0.1");
	cr_assert_eq(pool.source_len, sizeof(struct sockaddr_in));
	cr_assert_eq(pool.source.ss_family, AF_INET);
	static const char *const want[] = {"a.test:443:127.0.0.1", "b.test:8443:[::1]",
					   "c.test:1:[fd00::2]"};
	size_t n = 0;
	for (const struct curl_slist *l = pool.resolve; l != NULL; l = l->next, n++) {
		cr_assert_lt(n, 3);
		cr_assert_str_eq(l->data, want[n]);
	}
	cr_assert_eq(n, 3);
	cr_assert_not(pool.guard.allow_private);
	cr_assert_eq(pool.guard.allow.n, 0);
	/* Requests made now carry the options (curl accepts them). */
	struct dispatch_http_req *r = dispatch_http_get(&pool);
	cr_assert_not_null(r);
	dispatch_http_put(&pool, r);
}

/* CURLOPT_DEBUGFUNCTION: curl's informational lines, appended to a
 * fixed buffer (what does not fit is dropped). */
struct curl_text {
	char buf[8192];
	size_t n;
};

static int keep_text(CURL *e, curl_infotype type, char *data, size_t size, void *ud)
{
	(void)e;
	struct curl_text *t = ud;
	if (type != CURLINFO_TEXT || size >= sizeof t->buf - t->n)
		return 0;
	memcpy(t->buf + t->n, data, size);
	t->n += size;
	t->buf[t->n] = '\0';
	return 0;
}

/* Runs one transfer of r to url (it fails: the guard refuses loopback);
 * returns whether curl took url's host from its DNS cache (libcurl's
 * informational line "Hostname ... was found in DNS cache", as in 7.88). */
static bool from_dns_cache(struct dispatch_http_req *r, const char *url)
{
	struct curl_text t = {.n = 0};
	t.buf[0] = '\0';
	curl_easy_setopt(r->easy, CURLOPT_URL, url);
	curl_easy_setopt(r->easy, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt(r->easy, CURLOPT_DEBUGFUNCTION, keep_text);
	curl_easy_setopt(r->easy, CURLOPT_DEBUGDATA, &t);
	cr_assert_neq(curl_easy_perform(r->easy), CURLE_OK);
	curl_easy_setopt(r->easy, CURLOPT_VERBOSE, 0L);
	return strstr(t.buf, "found in DNS cache") != NULL;
}

/* Deliveries keep no DNS answers: each new connection looks its host name
 * up again, so a receiver's new address is used at once (and libcurl's
 * expiry walk over a cache of every endpoint's name is not paid per
 * delivery). Names pinned with --resolve stay pinned. */
Test(dispatch_net, each_new_connection_looks_the_name_up_again, .init = setup, .fini = teardown)
{
	char err[256];
	struct dispatch_net_config c = {.resolve = "pinned.test:443:127.0.0.1",
					.max_response_bytes = 65536};
	cr_assert_eq(setup_net(&c, err, sizeof err), 0, "%s", err);
	struct dispatch_http_req *r = dispatch_http_get(&pool);
	cr_assert_not_null(r);
	cr_assert_not(from_dns_cache(r, "https://localhost:9/hook"));
	cr_assert_not(from_dns_cache(r, "https://localhost:9/hook"),
		      "the second connection reused the first one's DNS answer");
	cr_assert(from_dns_cache(r, "https://pinned.test/hook"));
	cr_assert(from_dns_cache(r, "https://pinned.test/hook"));
	dispatch_http_put(&pool, r);
}

/* A loopback HTTP server for the source-address test: answers every
 * connection with 204 and keeps the address each came from. */
struct peer_server {
	int fd, port, n;
	char from[4][INET6_ADDRSTRLEN];
	pthread_t thread;
};

static void *peer_serve(void *arg)
{
	struct peer_server *s = arg;
	for (;;) {
		struct sockaddr_in peer;
		socklen_t len = sizeof peer;
		int c = accept(s->fd, (struct sockaddr *)&peer, &len);
		if (c < 0)
			return NULL; /* shut down by the test */
		if (s->n < 4)
			inet_ntop(AF_INET, &peer.sin_addr, s->from[s->n++], INET6_ADDRSTRLEN);
		char buf[2048];
		size_t got = 0, room = sizeof buf - 1;
		ssize_t k;
		while (got < room && (k = recv(c, buf + got, room - got, 0)) > 0) {
			got += (size_t)k;
			buf[got] = '\0';
			if (strstr(buf, "\r\n\r\n") != NULL)
				break;
		}
		static const char ans[] = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
		if (send(c, ans, sizeof ans - 1, MSG_NOSIGNAL) < 0)
			perror("peer_serve send");
		close(c);
	}
}

static void peer_start(struct peer_server *s)
{
	memset(s, 0, sizeof *s);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	cr_assert(s->fd >= 0 && bind(s->fd, (struct sockaddr *)&a, len) == 0 &&
		  listen(s->fd, 8) == 0 && getsockname(s->fd, (struct sockaddr *)&a, &len) == 0);
	s->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&s->thread, NULL, peer_serve, s), 0);
}

static void peer_stop(struct peer_server *s)
{
	shutdown(s->fd, SHUT_RDWR); /* wakes accept */
	pthread_join(s->thread, NULL);
	close(s->fd);
}

/* What the source-address test's debug callback does: the first time
 * libcurl says it looked a name up for the local end of the socket (its
 * bindlocal), it runs another request to the end, as a second sender
 * finishing a transfer at that moment would. */
struct other_sender {
	struct dispatch_http_req *other;
	bool looked_up;
	CURLcode other_cc;
};

static int on_text_run_other(CURL *e, curl_infotype type, char *data, size_t size, void *ud)
{
	(void)e;
	struct other_sender *o = ud;
	if (type != CURLINFO_TEXT || o->looked_up || memmem(data, size, "resolved to", 11) == NULL)
		return 0;
	o->looked_up = true;
	o->other_cc = curl_easy_perform(o->other->easy);
	return 0;
}

/* --source-address binds hookd's own socket (the socket-open callback), so
 * libcurl never looks the address up. Through CURLOPT_INTERFACE it did, for
 * every new connection, in the DNS cache the senders share; with entries
 * that expire at once (CURLOPT_DNS_CACHE_TIMEOUT 0), another sender's
 * lookup or end of transfer dropped the cache's hold on the entry, and
 * libcurl 7.88 read it after letting go of its own (bindlocal reads
 * h->addr after Curl_resolv_unlock): a use after free, seen once as a
 * crash in a sender (docs/architecture.md, "Known gaps"). Here the other
 * sender's transfer runs at exactly that moment; before the fix the first
 * request crashed or found looked_up set. */
Test(dispatch_net, the_source_address_is_bound_without_a_lookup, .init = setup, .fini = teardown)
{
	struct peer_server srv;
	peer_start(&srv);
	char err[256];
	struct dispatch_net_config c = {.allow_private_networks = true,
					.source_address = "127.0.0.2",
					.max_response_bytes = 65536};
	pool.allow_http = true;
	cr_assert_eq(setup_net(&c, err, sizeof err), 0, "%s", err);
	struct dispatch_http_req *r = dispatch_http_get(&pool), *other = dispatch_http_get(&pool);
	cr_assert(r != NULL && other != NULL);
	/* Bare GETs: the header lists are built when a delivery is prepared. */
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(other->easy, CURLOPT_HTTPHEADER, NULL);
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/first", srv.port);
	curl_easy_setopt(r->easy, CURLOPT_URL, url);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/other", srv.port);
	curl_easy_setopt(other->easy, CURLOPT_URL, url);
	struct other_sender o = {.other = other, .looked_up = false};
	curl_easy_setopt(r->easy, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt(r->easy, CURLOPT_DEBUGFUNCTION, on_text_run_other);
	curl_easy_setopt(r->easy, CURLOPT_DEBUGDATA, &o);
	CURLcode cc = curl_easy_perform(r->easy);
	curl_easy_setopt(r->easy, CURLOPT_VERBOSE, 0L);
	cr_assert_not(o.looked_up, "libcurl looked the source address up (CURLOPT_INTERFACE)");
	cr_assert_eq(cc, CURLE_OK, "%s", curl_easy_strerror(cc));
	cr_assert_eq(curl_easy_perform(other->easy), CURLE_OK);
	peer_stop(&srv);
	cr_assert_eq(srv.n, 2);
	cr_assert_str_eq(srv.from[0], "127.0.0.2", "the receiver sees the source address");
	cr_assert_str_eq(srv.from[1], "127.0.0.2");
	dispatch_http_put(&pool, other);
	dispatch_http_put(&pool, r);
}

/* The socket-open callback binds every socket to --source-address, and
 * skips (with the reason kept for the attempt) an address of the other
 * family. */
Test(dispatch_net, open_binds_the_source_address, .init = setup, .fini = teardown)
{
	char err[256];
	struct dispatch_net_config c = {.allow_private_networks = true,
					.source_address = "127.0.0.2"};
	cr_assert_eq(setup_net(&c, err, sizeof err), 0, "%s", err);
	struct dispatch_http_req *r = dispatch_http_get(&pool);
	cr_assert_not_null(r);
	r->unbound[0] = '\0';
	cr_assert_eq(open_as_curl(r, CURLSOCKTYPE_IPCXN, "::1"), CURL_SOCKET_BAD);
	cr_assert_str_eq(r->unbound, "cannot connect to ::1 from --source-address 127.0.0.2: "
				     "other address family");
	curl_socket_t fd = open_as_curl(r, CURLSOCKTYPE_IPCXN, "127.0.0.1");
	cr_assert_neq(fd, CURL_SOCKET_BAD);
	cr_assert_str_eq(r->unbound, "", "a socket was made: curl's own reason applies");
	struct sockaddr_in local;
	socklen_t len = sizeof local;
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&local, &len), 0);
	char text[INET_ADDRSTRLEN];
	cr_assert_str_eq(inet_ntop(AF_INET, &local.sin_addr, text, sizeof text), "127.0.0.2");
	close(fd);
	long status;
	char detail[256];
	/* As libcurl's own bind failure (CURLE_INTERFACE_FAILED) was: internal. */
	strcpy(r->unbound, "cannot bind --source-address 127.0.0.2: x");
	r->bind_failed = true;
	cr_assert_eq(dispatch_http_outcome(r, CURLE_COULDNT_CONNECT, &status, detail,
					   sizeof detail), FAILURE_INTERNAL);
	cr_assert_str_eq(detail, "cannot bind --source-address 127.0.0.2: x");
	/* The other family only: as before, the connection failed. */
	cr_assert_eq(open_as_curl(r, CURLSOCKTYPE_IPCXN, "::1"), CURL_SOCKET_BAD);
	cr_assert_not(r->bind_failed);
	cr_assert_eq(dispatch_http_outcome(r, CURLE_COULDNT_CONNECT, &status, detail,
					   sizeof detail), FAILURE_CONNECTION_REFUSED);
	cr_assert(strstr(detail, "other address family") != NULL, "%s", detail);
	dispatch_http_put(&pool, r);
}
