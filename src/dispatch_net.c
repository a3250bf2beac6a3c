/* dispatch_net: where the dispatcher's requests may go
 * (docs/security.md#destinations-tls-and-the-address-guard): the address
 * guard as curl's socket-open callback, and the pool's destination settings
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

/* Keeps sa's address as text in x->dialled: the remote_ip of an attempt
 * whose connection failed, which curl does not report. */
static void remember_dialled(struct dispatch_http_req *x, const struct sockaddr *sa)
{
	const void *addr = NULL;
	if (sa->sa_family == AF_INET)
		addr = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		addr = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (addr == NULL || inet_ntop(sa->sa_family, addr, x->dialled, sizeof x->dialled) == NULL)
		x->dialled[0] = '\0';
}

/* CURLOPT_OPENSOCKETFUNCTION: curl calls it for every new connection with
 * the address it is about to dial (after resolution, --resolve included,
 * and for each address it tries), never for a reused connection. A refused
 * address gets no packet at all; curl moves on to the next address, and when
 * none is left the transfer fails with CURLE_COULDNT_CONNECT, which
 * dispatch_http_outcome reports with the reason kept here. */
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
	curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	if (fd != CURL_SOCKET_BAD && x->pool->socket_opened != NULL)
		x->pool->socket_opened(fd);
	if (fd != CURL_SOCKET_BAD)
		remember_dialled(x, &a->addr);
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

/* Binds a throwaway socket to addr (port 0), so a source address this host
 * does not have fails at start rather than on every delivery. text gets the
 * address as curl's "host!" form wants it (no brackets). */
static int source_check(const char *addr, char text[INET6_ADDRSTRLEN], char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len = netguard_ip_parse(addr, &ss);
	if (len == 0) {
		snprintf(err, errlen, "--source-address %s: not an IP address", addr);
		return -1;
	}
	const void *bytes = ss.ss_family == AF_INET
				    ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
				    : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
	inet_ntop(ss.ss_family, bytes, text, INET6_ADDRSTRLEN);
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) != 0) {
		snprintf(err, errlen, "--source-address %s: cannot bind: %s", addr,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
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
	pool->interface[0] = '\0';
	if (net->source_address != NULL) {
		char text[INET6_ADDRSTRLEN];
		if (source_check(net->source_address, text, err, errlen) != 0)
			return -1;
		snprintf(pool->interface, sizeof pool->interface, "host!%s", text);
	}
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
