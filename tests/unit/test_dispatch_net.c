/* Unit tests for dispatch_net: the socket-open callback (the address guard
 * as curl calls it) and dispatch_net_setup's start-up checks of the
 * destination flags. */
#include <criterion/criterion.h>

#include <curl/curl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	cr_assert_str_eq(pool.interface, "host!127.0.0.1");
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
