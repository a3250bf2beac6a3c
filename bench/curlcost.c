/* curlcost: client CPU per request for three ways of POSTing hookd's delivery request to a
 * receiver over K keep-alive connections. A measurement behind a proposal in
 * docs/performance.md ("The HTTP client"), not product code: nothing builds it but
 *   cc -std=c17 -O2 -Wall -Wextra -o build-bench/curlcost bench/curlcost.c -lcurl
 * and it is run against `hookd mock --quiet`. Its raw mode reads responses by hand, enough
 * for a receiver that answers with Content-Length; hookd itself would not.
 *   full     libcurl multi, hookd's header set (10 header lines, ~600 bytes)
 *   minimal  libcurl multi, only Content-Type (what the header printing costs)
 *   raw      libcurl CONNECT_ONLY connections; the request written once, sent with
 *            curl_easy_send, the response read with curl_easy_recv until its Content-Length
 * usage: curlcost PORT N K MODE     prints the process's user+sys CPU µs per request */
#define _GNU_SOURCE /* strcasestr */
#include <curl/curl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec +
	       ru.ru_stime.tv_usec;
}

static double wall(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static size_t sink(char *p, size_t s, size_t n, void *u)
{
	(void)p;
	(void)u;
	return s * n;
}

static const char *hdrs_full[] = {
	"Content-Type: application/json",
	"User-Agent: hookd/0.1.0",
	"webhook-id: evt_01KB7Q4Y8ZBENCHBENCHBENCHBE",
	"webhook-timestamp: 1796000000",
	"webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
	"X-PixelPatrol-Event: bench.load",
	"X-PixelPatrol-Timestamp: 1796000000123",
	"X-PixelPatrol-Signature: 3f5d3c0c2a9f0e8f6b4d2c1a0e9f8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e",
	"X-Webhook-Signature: sha256=3f5d3c0c2a9f0e8f6b4d2c1a0e9f8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e",
	"X-PixelPatrol-Delivery: dlv_01KB7Q4Y8ZBENCHBENCHBENCHBE",
	"Expect:",
	NULL,
};

static char body[1100];

static int run_curl(int port, long n, int k, int full)
{
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
	struct curl_slist *h = NULL;
	if (full)
		for (int i = 0; hdrs_full[i]; i++)
			h = curl_slist_append(h, hdrs_full[i]);
	else
		h = curl_slist_append(h, "Content-Type: application/json");
	CURLM *m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)k);
	long started = 0, done = 0;
	for (int i = 0; i < k; i++) {
		CURL *e = curl_easy_init();
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_multi_add_handle(m, e);
		started++;
	}
	while (done < n) {
		int running;
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			if (msg->data.result != CURLE_OK) {
				fprintf(stderr, "transfer failed: %s\n", curl_easy_strerror(msg->data.result));
				return 1;
			}
			CURL *e = msg->easy_handle;
			curl_multi_remove_handle(m, e);
			done++;
			if (started < n) {
				curl_multi_add_handle(m, e);
				started++;
			}
		}
		curl_multi_poll(m, NULL, 0, 1000, NULL);
	}
	return 0;
}

struct rawconn {
	CURL *e;
	curl_socket_t fd;
	char buf[4096];
	size_t have;
};

static int run_raw(int port, long n, int k)
{
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
	char req[4096];
	int len = snprintf(req, sizeof req, "POST /x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
					    "Content-Length: %zu\r\n", port, strlen(body));
	for (int i = 0; hdrs_full[i + 1]; i++) /* not "Expect:" */
		len += snprintf(req + len, sizeof req - (size_t)len, "%s\r\n", hdrs_full[i]);
	len += snprintf(req + len, sizeof req - (size_t)len, "\r\n%s", body);
	struct rawconn *c = calloc((size_t)k, sizeof *c);
	struct pollfd *pf = calloc((size_t)k, sizeof *pf);
	for (int i = 0; i < k; i++) {
		c[i].e = curl_easy_init();
		curl_easy_setopt(c[i].e, CURLOPT_URL, url);
		curl_easy_setopt(c[i].e, CURLOPT_CONNECT_ONLY, 1L);
		if (curl_easy_perform(c[i].e) != CURLE_OK)
			return 1;
		curl_easy_getinfo(c[i].e, CURLINFO_ACTIVESOCKET, &c[i].fd);
	}
	long started = 0, done = 0;
	for (int i = 0; i < k && started < n; i++, started++) {
		size_t sent;
		if (curl_easy_send(c[i].e, req, (size_t)len, &sent) != CURLE_OK || sent != (size_t)len)
			return 1;
	}
	while (done < n) {
		for (int i = 0; i < k; i++)
			pf[i] = (struct pollfd){.fd = c[i].fd, .events = POLLIN};
		poll(pf, (nfds_t)k, 1000);
		for (int i = 0; i < k; i++) {
			if (!(pf[i].revents & POLLIN))
				continue;
			size_t got = 0;
			CURLcode rc = curl_easy_recv(c[i].e, c[i].buf + c[i].have,
						     sizeof c[i].buf - c[i].have - 1, &got);
			if (rc == CURLE_AGAIN)
				continue;
			if (rc != CURLE_OK || got == 0)
				return 1;
			c[i].have += got;
			c[i].buf[c[i].have] = '\0';
			char *end = strstr(c[i].buf, "\r\n\r\n");
			if (end == NULL)
				continue;
			char *cl = strcasestr(c[i].buf, "\r\ncontent-length:");
			size_t blen = cl ? strtoul(cl + 17, NULL, 10) : 0;
			size_t total = (size_t)(end + 4 - c[i].buf) + blen;
			if (c[i].have < total)
				continue;
			memmove(c[i].buf, c[i].buf + total, c[i].have - total);
			c[i].have -= total;
			done++;
			if (started < n) {
				size_t sent;
				if (curl_easy_send(c[i].e, req, (size_t)len, &sent) != CURLE_OK ||
				    sent != (size_t)len)
					return 1;
				started++;
			}
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 5)
		return 2;
	int port = atoi(argv[1]);
	long n = atol(argv[2]);
	int k = atoi(argv[3]);
	memset(body, 'a', sizeof body - 1);
	body[0] = '{';
	body[sizeof body - 2] = '}';
	curl_global_init(CURL_GLOBAL_DEFAULT);
	double c0 = cpu_us(), w0 = wall();
	int rc = strcmp(argv[4], "raw") == 0 ? run_raw(port, n, k)
					     : run_curl(port, n, k, strcmp(argv[4], "full") == 0);
	double c1 = cpu_us(), w1 = wall();
	if (rc != 0) {
		fprintf(stderr, "failed\n");
		return 1;
	}
	printf("%-8s %ld requests over %d connections: %.2f us CPU per request, %.0f req/s\n",
	       argv[4], n, k, (c1 - c0) / n, n / (w1 - w0));
	return 0;
}
