/* fuzz_url: endpoint URL and destination-list validation.
 *
 * The input is one string (cut at the first NUL), handed to
 *   - validate_url, with and without --allow-http, and validate_endpoint on
 *     {"url": input} (the API's path to it);
 *   - libcurl's URL parser: every URL hookd accepts, libcurl must parse too
 *     (else the endpoint is saved but never deliverable);
 *   - the address guard (netguard_classify/netguard_allows) on the host
 *     libcurl finds when it is an IP address in any spelling (decimal,
 *     octal, hex, IPv6), and on the input's first 4 and 16 bytes taken as
 *     raw IPv4 and IPv6 addresses;
 *   - cidr_list_parse / cidr_list_check (--allow-cidr, --api-allow) and
 *     netguard_init with the input as --allow-cidr;
 *   - netguard_resolve_next over the input as a --resolve list.
 * Laws checked: an https-only accept is an --allow-http accept;
 * validate_endpoint agrees with validate_url; a special address is refused
 * by default and allowed by --allow-private-networks, a public one always
 * allowed; an IPv4 address and its IPv4-mapped, NAT64 and 6to4 forms are
 * judged alike; cidr_list_check agrees with cidr_list_parse; a parsed list
 * holds at most CIDR_LIST_MAX networks with in-range prefixes and zero host
 * bits, and each network's own address (and, for IPv4, its IPv4-mapped IPv6
 * form) matches the list and is allowed by a guard built from it. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cidr.h"
#include "netguard.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longer inputs only repeat the length checks. */
#define FUZZ_URL_INPUT_MAX 4096

static void broken(const char *law, const char *s)
{
	fprintf(stderr, "url law broken: %s\ninput: %.300s\n", law, s);
	abort();
}

static const struct netguard guard_default = {0};
static const struct netguard guard_private = {.allow_private = true};

/* The guard's laws for one address. */
static void check_guard(const struct sockaddr *sa, const char *s)
{
	struct netguard_why why, why2;
	char msg[NETGUARD_MSG_MAX];
	bool special = netguard_classify(sa, &why);
	if (special && why.what == NULL)
		broken("a special address says what it is", s);
	if (!special && (why.what != NULL || why.via != NULL))
		broken("a public address has no reason", s);
	if (netguard_allows(&guard_default, sa, &why2) == special)
		broken("by default the guard refuses exactly the special addresses", s);
	if (!netguard_allows(&guard_private, sa, &why2))
		broken("--allow-private-networks allows every IP address", s);
	if (special) {
		netguard_message(sa, &why, msg, sizeof msg);
		if (strncmp(msg, "blocked ", 8) != 0 || strlen(msg) + 1 >= sizeof msg)
			broken("the message starts \"blocked \" and fits NETGUARD_MSG_MAX", s);
	}
}

/* An IPv4 address is judged alike in each IPv6 form that carries it. */
static void check_guard_v4(const uint8_t v4[4], const char *s)
{
	struct sockaddr_in sin = {0};
	struct sockaddr_in6 forms[3];
	struct netguard_why why, why6;
	sin.sin_family = AF_INET;
	memcpy(&sin.sin_addr, v4, 4);
	check_guard((const struct sockaddr *)&sin, s);
	bool special = netguard_classify((const struct sockaddr *)&sin, &why);

	memset(forms, 0, sizeof forms);
	for (int i = 0; i < 3; i++)
		forms[i].sin6_family = AF_INET6;
	uint8_t *m = forms[0].sin6_addr.s6_addr; /* ::ffff:a.b.c.d */
	m[10] = m[11] = 0xff;
	memcpy(m + 12, v4, 4);
	uint8_t *n = forms[1].sin6_addr.s6_addr; /* 64:ff9b::a.b.c.d */
	n[1] = 0x64;
	n[2] = 0xff;
	n[3] = 0x9b;
	memcpy(n + 12, v4, 4);
	uint8_t *t = forms[2].sin6_addr.s6_addr; /* 2002:aabb:ccdd:: */
	t[0] = 0x20;
	t[1] = 0x02;
	memcpy(t + 2, v4, 4);
	for (int i = 0; i < 3; i++) {
		const struct sockaddr *sa6 = (const struct sockaddr *)&forms[i];
		check_guard(sa6, s);
		if (netguard_classify(sa6, &why6) != special)
			broken("an IPv4 address and its IPv6 forms are judged alike", s);
		if (special && why6.via == NULL)
			broken("a blocked embedded IPv4 address names its IPv6 form", s);
	}
}

/* The host libcurl found, when it is an IP address: the guard judges what
 * the resolver would return for it (inet_aton's spellings for IPv4). */
static void check_url_host(CURLU *u, const char *s)
{
	char *host = NULL;
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host == NULL)
		broken("libcurl finds a host in every URL hookd accepts", s);
	size_t len = strlen(host);
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		char addr[64];
		struct sockaddr_in6 sin6 = {0};
		char *pct = memchr(host, '%', len); /* a zone id: "[fe80::1%25eth0]" */
		size_t alen = (pct ? (size_t)(pct - host) : len - 1) - 1;
		if (alen < sizeof addr) {
			memcpy(addr, host + 1, alen);
			addr[alen] = '\0';
			sin6.sin6_family = AF_INET6;
			if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1)
				check_guard((const struct sockaddr *)&sin6, s);
		}
	} else {
		struct in_addr a;
		if (inet_aton(host, &a) == 1)
			check_guard_v4((const uint8_t *)&a, s);
	}
	curl_free(host);
}

static void check_url(const char *s)
{
	struct validate_error err;
	int strict = validate_url(s, false, &err);
	int loose = validate_url(s, true, &err);
	if (strict == 0 && loose != 0)
		broken("accepted without --allow-http but refused with it", s);
	if (loose != 0 && strcmp(err.field, "url") != 0)
		broken("a URL error names the field url", s);

	json_t *body = json_pack("{s:s}", "url", s);
	if (body != NULL) { /* NULL: not UTF-8, which the API's JSON parse never hands over */
		struct validate_endpoint ep;
		if ((validate_endpoint(body, true, false, &ep, &err) == 0) != (strict == 0))
			broken("validate_endpoint agrees with validate_url (https only)", s);
		if ((validate_endpoint(body, true, true, &ep, &err) == 0) != (loose == 0))
			broken("validate_endpoint agrees with validate_url (--allow-http)", s);
		json_decref(body);
	}

	if (loose == 0) {
		CURLU *u = curl_url();
		if (u == NULL)
			abort();
		CURLUcode rc = curl_url_set(u, CURLUPART_URL, s, 0);
		if (rc != CURLUE_OK) {
			fprintf(stderr, "curl: %s\n", curl_url_strerror(rc));
			broken("libcurl parses every URL hookd accepts", s);
		}
		check_url_host(u, s);
		curl_url_cleanup(u);
	}
}

/* The network's own address as a socket address, and for IPv4 also its
 * IPv4-mapped IPv6 form: both must match the list. */
static void check_network_matches(const struct cidr_list *l, const struct cidr *c, const char *s)
{
	if (c->family == AF_INET) {
		struct sockaddr_in sin = {0};
		struct sockaddr_in6 mapped = {0};
		sin.sin_family = AF_INET;
		memcpy(&sin.sin_addr, c->addr, 4);
		if (!cidr_list_match(l, (const struct sockaddr *)&sin))
			broken("an IPv4 network's address matches its list", s);
		mapped.sin6_family = AF_INET6;
		mapped.sin6_addr.s6_addr[10] = 0xff;
		mapped.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&mapped.sin6_addr.s6_addr[12], c->addr, 4);
		if (!cidr_list_match(l, (const struct sockaddr *)&mapped))
			broken("an IPv4 network's mapped address matches its list", s);
	} else {
		struct sockaddr_in6 sin6 = {0};
		sin6.sin6_family = AF_INET6;
		memcpy(&sin6.sin6_addr, c->addr, 16);
		if (!cidr_list_match(l, (const struct sockaddr *)&sin6))
			broken("an IPv6 network's address matches its list", s);
	}
}

static void check_cidr(const char *s)
{
	struct cidr_list l;
	char why[160] = "", why2[160] = "";
	int rc = cidr_list_parse(s, &l, why, sizeof why);
	if ((cidr_list_check(s, why2, sizeof why2) == 0) != (rc == 0))
		broken("cidr_list_check agrees with cidr_list_parse", s);
	if (rc != 0) {
		if (why[0] == '\0')
			broken("a refused CIDR list says why", s);
		return;
	}
	if (l.n > CIDR_LIST_MAX)
		broken("at most CIDR_LIST_MAX networks", s);
	for (size_t i = 0; i < l.n; i++) {
		const struct cidr *c = &l.v[i];
		int bytes = c->family == AF_INET ? 4 : 16;
		if (c->family != AF_INET && c->family != AF_INET6)
			broken("a network is IPv4 or IPv6", s);
		if (c->prefix < 0 || c->prefix > bytes * 8)
			broken("a prefix is 0..32 or 0..128", s);
		for (int b = c->prefix; b < bytes * 8; b++) {
			if (c->addr[b / 8] & (0x80 >> (b % 8)))
				broken("host bits are zero", s);
		}
		check_network_matches(&l, c, s);
	}

	struct netguard g;
	if (netguard_init(&g, false, s, why, sizeof why) != 0) {
		if (s[0] != '\0')
			broken("netguard_init takes what cidr_list_parse takes", s);
		return;
	}
	for (size_t i = 0; i < g.allow.n; i++) {
		const struct cidr *c = &g.allow.v[i];
		struct sockaddr_storage ss = {0};
		struct netguard_why nw;
		if (c->family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, c->addr, 4);
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, c->addr, 16);
		}
		if (!netguard_allows(&g, (const struct sockaddr *)&ss, &nw))
			broken("--allow-cidr allows the networks it lists", s);
	}
}

/* --resolve HOST:PORT:ADDR,...: each item read moves forward. */
static void check_resolve(const char *s)
{
	const char *p = s, *end = s + strlen(s);
	struct netguard_resolve r;
	char why[160];
	int rc, n = 0;
	while ((rc = netguard_resolve_next(&p, &r, why, sizeof why)) == 1) {
		if (p < s || p > end)
			broken("--resolve parsing stays inside the text", s);
		if (memchr(r.host, '\0', sizeof r.host) == NULL ||
		    memchr(r.addr, '\0', sizeof r.addr) == NULL)
			broken("--resolve fields are terminated", s);
		if (++n > 4096)
			broken("--resolve parsing ends", s);
	}
	if ((netguard_resolve_check(s, why, sizeof why) == 0) != (rc == 0 && n > 0))
		broken("netguard_resolve_check agrees with netguard_resolve_next", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_URL_INPUT_MAX)
		return 0;
	char *s = malloc(size + 1);
	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	check_url(s);
	check_cidr(s);
	check_resolve(s);
	if (size >= 4)
		check_guard_v4(data, s);
	if (size >= 16) {
		struct sockaddr_in6 sin6 = {0};
		sin6.sin6_family = AF_INET6;
		memcpy(&sin6.sin6_addr, data, 16);
		check_guard((const struct sockaddr *)&sin6, s);
	}
	free(s);
	return 0;
}
