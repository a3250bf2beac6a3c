/* dispatch_net: where the dispatcher's requests may go
 * (docs/security.md#destinations-tls-and-the-address-guard): the address
 * guard as curl's socket-open callback (which also binds --source-address),
 * and the pool's destination settings
 * (--allow-private-networks, --allow-cidr, --ca-file, --source-address,
 * --resolve, --max-response-bytes) checked at start.
 *
 * Why CURLOPT_OPENSOCKETFUNCTION and not CURLOPT_PREREQFUNCTION: the socket
 * callback sees the resolved address before anything is sent, so a refused
 * host gets no SYN and no TLS ClientHello, and it runs once per new
 * connection; the prereq callback runs after the connection (and its TLS
 * handshake) is made, and again for every request on a reused connection. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dispatch_http.h"
#include "log.h"

/* sa's address as text into buf; "" if it is not IPv4 or IPv6. */
static void addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	const void *addr = NULL;
	if (sa->sa_family == AF_INET)
		addr = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		addr = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (addr == NULL || inet_ntop(sa->sa_family, addr, buf, (socklen_t)len) == NULL)
		buf[0] = '\0';
}

/* Keeps sa's address as text in x->dialled: the remote_ip of an attempt
 * whose connection failed, which curl does not report. */
static void remember_dialled(struct dispatch_http_req *x, const struct sockaddr *sa)
{
	addr_text(sa, x->dialled, sizeof x->dialled);
}

/* Binds fd, a new socket to sa, to --source-address (port 0: the kernel
 * picks one at connect). Returns 0, or -1 with the reason in x->unbound.
 *
 * Why here and not CURLOPT_INTERFACE: libcurl 7.88 (lib/cf-socket.c,
 * bindlocal) looks the interface string up as a host name for every new
 * connection, in the DNS cache the senders share, and reads the entry's
 * address family after releasing its hold on it. With entries that expire
 * at once (CURLOPT_DNS_CACHE_TIMEOUT 0, dispatch_http.c), another sender's
 * lookup or end of transfer in that window dropped the cache's hold, so the
 * release freed the entry just before the read: a sender crashed once in
 * the e2e cluster test. Bound here, curl has no local address to bind and
 * makes no lookup at all. */
static int bind_source(struct dispatch_http_req *x, curl_socket_t fd, const struct sockaddr *sa)
{
	const struct dispatch_http_pool *pool = x->pool;
	if (sa->sa_family != pool->source.ss_family) {
		char to[INET6_ADDRSTRLEN];
		addr_text(sa, to, sizeof to);
		snprintf(x->unbound, sizeof x->unbound,
			 "cannot connect to %s from --source-address %s: other address family", to,
			 pool->source_text);
		x->bind_failed = false;
		return -1;
	}
#ifdef IP_BIND_ADDRESS_NO_PORT
	/* The port is chosen at connect, with the destination known, so many
	 * connections from one address do not run out of ports (as curl does). */
	int on = 1;
	(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on);
#endif
	if (bind(fd, (const struct sockaddr *)&pool->source, pool->source_len) != 0) {
		snprintf(x->unbound, sizeof x->unbound, "cannot bind --source-address %s: %s",
			 pool->source_text, strerror(errno));
		x->bind_failed = true;
		return -1;
	}
	return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION: curl calls it for every new connection with
 * the address it is about to dial (after resolution, --resolve included,
 * and for each address it tries), never for a reused connection. A refused
 * address gets no packet at all; curl moves on to the next address, and when
 * none is left the transfer fails with CURLE_COULDNT_CONNECT, which
 * dispatch_http_outcome reports with the reason kept here. With
 * --source-address the socket is bound to it here (bind_source); an address
 * of the other family, or a failed bind, is skipped the same way. */
curl_socket_t dispatch_net_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct dispatch_http_req *x = ud;
	struct netguard_why why;
	if (purpose != CURLSOCKTYPE_IPCXN)
		return CURL_SOCKET_BAD; /* only outgoing connections are expected */
	if (!netguard_allows(&x->pool->guard, &a->addr, &why)) {
		if (x->blocked[0] == '\0') /* name the first address refused */
			netguard_message(&a->addr, &why, x->blocked, sizeof x->blocked);
		return CURL_SOCKET_BAD;
	}
	remember_dialled(x, &a->addr);
	curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	if (fd == CURL_SOCKET_BAD)
		return CURL_SOCKET_BAD;
	if (x->pool->source_len > 0 && bind_source(x, fd, &a->addr) != 0) {
		close(fd);
		return CURL_SOCKET_BAD;
	}
	x->unbound[0] = '\0'; /* a socket was made: curl's reason tells the rest */
	x->bind_failed = false;
	if (x->pool->socket_opened != NULL)
		x->pool->socket_opened(fd);
	return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: curl keeps it, and its data (the pool, which
 * outlives the senders and so every connection), with the connection. */
int dispatch_net_close_socket(void *ud, curl_socket_t fd)
{
	struct dispatch_http_pool *pool = ud;
	if (pool->socket_closed != NULL)
		pool->socket_closed(fd);
	return close(fd);
}

/* Reads the first certificate of a PEM file: is it a CA file at all? */
static int ca_file_check(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "--ca-file %s: %s", path, strerror(errno));
		return -1;
	}
	X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (cert == NULL) {
		ERR_clear_error(); /* leave nothing for curl's TLS code to find */
		snprintf(err, errlen, "--ca-file %s: no PEM certificate in it", path);
		return -1;
	}
	X509_free(cert);
	return 0;
}

/* Parses addr into pool->source (port 0) and binds a throwaway socket to
 * it, so a source address this host does not have fails at start rather
 * than on every delivery. */
static int source_check(const char *addr, struct dispatch_http_pool *pool, char *err,
			size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len = netguard_ip_parse(addr, &ss);
	if (len == 0) {
		snprintf(err, errlen, "--source-address %s: not an IP address", addr);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) != 0) {
		snprintf(err, errlen, "--source-address %s: cannot bind: %s", addr,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	addr_text((const struct sockaddr *)&ss, pool->source_text, sizeof pool->source_text);
	pool->source = ss;
	pool->source_len = len;
	return 0;
}

int dispatch_net_setup(struct dispatch_http_pool *pool, const struct dispatch_net_config *net,
		       char *err, size_t errlen)
{
	char why[160];
	if (netguard_init(&pool->guard, net->allow_private_networks, net->allow_cidr, why,
			  sizeof why) != 0) {
		snprintf(err, errlen, "--allow-cidr: %s", why);
		return -1;
	}
	pool->max_response_bytes = net->max_response_bytes;
	if (net->ca_file != NULL && ca_file_check(net->ca_file, err, errlen) != 0)
		return -1;
	pool->ca_file = net->ca_file;
	/* --ca-file replaces curl's default bundle file; the system store
	 * stays trusted through the CA directory: SSL_CERT_DIR when set (as
	 * for any OpenSSL program), else curl's default, else OpenSSL's. */
	const char *dir = getenv(X509_get_default_cert_dir_env());
	if (dir != NULL && *dir != '\0') {
		pool->ca_dir = dir;
	} else if (net->ca_file != NULL) {
		CURL *e = curl_easy_init();
		char *def = NULL;
		if (e != NULL)
			curl_easy_getinfo(e, CURLINFO_CAPATH, &def);
		if (def == NULL)
			pool->ca_dir = X509_get_default_cert_dir();
		curl_easy_cleanup(e);
	}
	pool->source_len = 0;
	pool->source_text[0] = '\0';
	if (net->source_address != NULL &&
	    source_check(net->source_address, pool, err, errlen) != 0)
		return -1;
	const char *p = net->resolve != NULL ? net->resolve : "";
	struct netguard_resolve item;
	int more;
	while ((more = netguard_resolve_next(&p, &item, why, sizeof why)) == 1) {
		char line[NETGUARD_HOST_MAX + NETGUARD_ADDR_TEXT_MAX + 16];
		snprintf(line, sizeof line, "%s:%u:%s", item.host, item.port, item.addr);
		struct curl_slist *l = curl_slist_append(pool->resolve, line);
		if (l == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		pool->resolve = l;
	}
	if (more < 0) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	pool->share = dispatch_share_new();
	if (pool->share == NULL) {
		snprintf(err, errlen, "cannot make libcurl's shared TLS session and DNS caches");
		return -1;
	}
	log_info("destinations allow_private=%s allow_cidr=%zu ca_file=%s ca_dir=%s source=%s "
		 "resolve=%s max_response_bytes=%zu", pool->guard.allow_private ? "yes" : "no",
		 pool->guard.allow.n, pool->ca_file ? pool->ca_file : "default",
		 pool->ca_dir ? pool->ca_dir : "default",
		 net->source_address ? net->source_address : "any", pool->resolve ? "yes" : "no",
		 pool->max_response_bytes);
	return 0;
}
