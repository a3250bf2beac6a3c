/* netguard: the destination guard (see netguard.h). The ranges come from
 * the IANA special-purpose address registries (RFC 6890 and successors):
 * everything a webhook has no business reaching is refused, whether it is
 * internal (loopback, RFC 1918, CGNAT, link-local with the cloud metadata
 * address 169.254.169.254, ULA), not a unicast host (multicast, broadcast,
 * unspecified, reserved) or never routed on the internet (documentation,
 * benchmarking, discard-only). IPv6 forms that carry an IPv4 address
 * (IPv4-mapped, NAT64, 6to4) are judged by the IPv4 address they carry;
 * the deprecated IPv4-compatible form and Teredo are refused outright. */
#include "netguard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct special {
	struct cidr net;
	const char *what;
};

/* First match wins, so a narrower range goes before a wider one. */
static const struct special special_v4[] = {
	{{AF_INET, {0}, 8}, "\"this network\" (0.0.0.0/8)"},
	{{AF_INET, {10}, 8}, "private network (RFC 1918)"},
	{{AF_INET, {100, 64}, 10}, "shared address space (CGNAT, RFC 6598)"},
	{{AF_INET, {127}, 8}, "loopback"},
	{{AF_INET, {169, 254}, 16}, "link-local (cloud metadata)"},
	{{AF_INET, {172, 16}, 12}, "private network (RFC 1918)"},
	{{AF_INET, {192, 0, 0}, 24}, "IETF protocol assignments (192.0.0.0/24)"},
	{{AF_INET, {192, 0, 2}, 24}, "documentation (TEST-NET-1)"},
	{{AF_INET, {192, 88, 99}, 24}, "6to4 relay anycast (deprecated)"},
	{{AF_INET, {192, 168}, 16}, "private network (RFC 1918)"},
	{{AF_INET, {198, 18}, 15}, "benchmarking (RFC 2544)"},
	{{AF_INET, {198, 51, 100}, 24}, "documentation (TEST-NET-2)"},
	{{AF_INET, {203, 0, 113}, 24}, "documentation (TEST-NET-3)"},
	{{AF_INET, {224}, 4}, "multicast"},
	{{AF_INET, {255, 255, 255, 255}, 32}, "broadcast"},
	{{AF_INET, {240}, 4}, "reserved (240.0.0.0/4)"},
};

static const struct special special_v6[] = {
	{{AF_INET6, {0}, 128}, "unspecified address (::)"},
	{{AF_INET6, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128}, "loopback"},
	{{AF_INET6, {0}, 96}, "IPv4-compatible IPv6 (deprecated)"},
	{{AF_INET6, {0, 0x64, 0xff, 0x9b, 0, 1}, 48}, "local-use NAT64 (RFC 8215)"},
	{{AF_INET6, {0x01, 0x00}, 64}, "discard-only (RFC 6666)"},
	{{AF_INET6, {0x20, 0x01, 0, 0}, 32}, "Teredo tunnel"},
	{{AF_INET6, {0x20, 0x01, 0, 0x02, 0, 0}, 48}, "benchmarking (RFC 5180)"},
	{{AF_INET6, {0x20, 0x01, 0x0d, 0xb8}, 32}, "documentation (2001:db8::/32)"},
	{{AF_INET6, {0xfc}, 7}, "unique local address (fc00::/7)"},
	{{AF_INET6, {0xfe, 0x80}, 10}, "link-local"},
	{{AF_INET6, {0xfe, 0xc0}, 10}, "site-local (deprecated)"},
	{{AF_INET6, {0xff}, 8}, "multicast"},
};

/* IPv6 ranges whose addresses carry an IPv4 address at byte offset v4_at. */
struct embedding {
	struct cidr net;
	int v4_at;
	const char *via;
};

static const struct embedding embeddings[] = {
	{{AF_INET6, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96}, 12, "IPv4-mapped IPv6"},
	{{AF_INET6, {0, 0x64, 0xff, 0x9b}, 96}, 12, "NAT64 (64:ff9b::/96)"},
	{{AF_INET6, {0x20, 0x02}, 16}, 2, "6to4 (2002::/16)"},
};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* The reason of the first range of table[0..n) holding addr, or NULL. */
static const char *lookup(const struct special *table, size_t n, int family, const uint8_t *addr)
{
	for (size_t i = 0; i < n; i++)
		if (cidr_contains(&table[i].net, family, addr))
			return table[i].what;
	return NULL;
}

int netguard_init(struct netguard *g, bool allow_private, const char *allow_cidr, char *why,
		  size_t whylen)
{
	memset(g, 0, sizeof *g);
	g->allow_private = allow_private;
	if (allow_cidr == NULL || *allow_cidr == '\0')
		return 0;
	if (cidr_list_parse(allow_cidr, &g->allow, why, whylen) != 0)
		return -1;
	return 0;
}

/* The address bytes of sa (4 for AF_INET, 16 for AF_INET6), or NULL. */
static const uint8_t *sa_bytes(const struct sockaddr *sa)
{
	if (sa != NULL && sa->sa_family == AF_INET)
		return (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	if (sa != NULL && sa->sa_family == AF_INET6)
		return (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	return NULL;
}

bool netguard_classify(const struct sockaddr *sa, struct netguard_why *why)
{
	const uint8_t *a = sa_bytes(sa);
	why->what = NULL;
	why->via = NULL;
	if (a == NULL) {
		why->what = "not an IP address";
		return true;
	}
	if (sa->sa_family == AF_INET) {
		why->what = lookup(special_v4, N_ELEMS(special_v4), AF_INET, a);
		return why->what != NULL;
	}
	for (size_t i = 0; i < N_ELEMS(embeddings); i++) {
		if (!cidr_contains(&embeddings[i].net, AF_INET6, a))
			continue;
		/* Whoever routes it delivers to the IPv4 address inside. */
		const uint8_t *v4 = a + embeddings[i].v4_at;
		why->what = lookup(special_v4, N_ELEMS(special_v4), AF_INET, v4);
		if (why->what != NULL)
			why->via = embeddings[i].via;
		return why->what != NULL;
	}
	why->what = lookup(special_v6, N_ELEMS(special_v6), AF_INET6, a);
	return why->what != NULL;
}

bool netguard_allows(const struct netguard *g, const struct sockaddr *sa, struct netguard_why *why)
{
	if (!netguard_classify(sa, why))
		return true;
	if (sa_bytes(sa) == NULL)
		return false; /* no flag opens other families */
	return g->allow_private || cidr_list_match(&g->allow, sa);
}

void netguard_message(const struct sockaddr *sa, const struct netguard_why *why, char *out,
		      size_t outlen)
{
	char text[INET6_ADDRSTRLEN] = "?";
	const uint8_t *a = sa_bytes(sa);
	if (a != NULL)
		inet_ntop(sa->sa_family, a, text, sizeof text);
	snprintf(out, outlen, "blocked %s: %s%s%s (allow with --allow-private-networks or "
		 "--allow-cidr)", text, why->what ? why->what : "special address",
		 why->via ? " in " : "", why->via ? why->via : "");
}

/* Parses an IP literal of len bytes at s (IPv6 optionally in brackets).
 * Returns AF_INET or AF_INET6, or 0; out gets the bare text. */
static int ip_literal(const char *s, size_t len, char out[NETGUARD_ADDR_TEXT_MAX])
{
	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
		if (memchr(s, ':', len) == NULL)
			return 0; /* brackets are for IPv6 only */
	}
	if (len == 0 || len >= NETGUARD_ADDR_TEXT_MAX)
		return 0;
	memcpy(out, s, len);
	out[len] = '\0';
	unsigned char buf[16];
	if (inet_pton(AF_INET, out, buf) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, out, buf) == 1)
		return AF_INET6;
	return 0;
}

socklen_t netguard_ip_parse(const char *text, struct sockaddr_storage *ss)
{
	char bare[NETGUARD_ADDR_TEXT_MAX];
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	switch (text ? ip_literal(text, strlen(text), bare) : 0) {
	case AF_INET:
		in4->sin_family = AF_INET;
		inet_pton(AF_INET, bare, &in4->sin_addr);
		return sizeof *in4;
	case AF_INET6:
		in6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, bare, &in6->sin6_addr);
		return sizeof *in6;
	default:
		return 0;
	}
}

int netguard_source_check(const char *val, char *why, size_t whylen)
{
	struct sockaddr_storage ss;
	if (netguard_ip_parse(val, &ss) == 0) {
		snprintf(why, whylen, "'%.64s' is not an IPv4 or IPv6 address", val ? val : "");
		return -1;
	}
	return 0;
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_';
}

int netguard_resolve_next(const char **p, struct netguard_resolve *out, char *why,
			  size_t whylen)
{
	const char *s = *p;
	while (*s == ' ')
		s++;
	if (*s == '\0') {
		*p = s;
		return 0;
	}
	const char *end = strchr(s, ',');
	size_t len = end ? (size_t)(end - s) : strlen(s);
	while (len > 0 && s[len - 1] == ' ')
		len--;
	*p = end ? end + 1 : s + strlen(s);
	if (end != NULL && **p == '\0')
		goto bad; /* a trailing comma: an empty item */

	/* HOST:PORT:ADDR, ADDR possibly an IPv6 address with colons of its own. */
	const char *c1 = memchr(s, ':', len);
	const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - s)) : NULL;
	if (c1 == NULL || c2 == NULL || c1 == s || (size_t)(c1 - s) > NETGUARD_HOST_MAX)
		goto bad;
	/* A leading '-' or '+' means something else to curl (remove, timeout). */
	if (!host_char(*s) || *s == '-' || *s == '.')
		goto bad;
	for (const char *h = s; h < c1; h++)
		if (!host_char(*h))
			goto bad;
	unsigned port = 0;
	if (c2 == c1 + 1 || c2 - c1 > 6)
		goto bad;
	for (const char *d = c1 + 1; d < c2; d++) {
		if (*d < '0' || *d > '9')
			goto bad;
		port = port * 10 + (unsigned)(*d - '0');
	}
	if (port == 0 || port > 65535)
		goto bad;
	char bare[NETGUARD_ADDR_TEXT_MAX];
	int family = ip_literal(c2 + 1, len - (size_t)(c2 + 1 - s), bare);
	if (family == 0)
		goto bad;
	memcpy(out->host, s, (size_t)(c1 - s));
	out->host[c1 - s] = '\0';
	out->port = port;
	snprintf(out->addr, sizeof out->addr, family == AF_INET6 ? "[%s]" : "%s", bare);
	return 1;
bad:
	snprintf(why, whylen, "bad --resolve item '%.*s' (want HOST:PORT:ADDR, ADDR an IP address)",
		 (int)(len > 80 ? 80 : len), s);
	return -1;
}

int netguard_resolve_check(const char *val, char *why, size_t whylen)
{
	struct netguard_resolve r;
	const char *p = val ? val : "";
	int n = 0, rc;
	while ((rc = netguard_resolve_next(&p, &r, why, whylen)) == 1)
		n++;
	if (rc < 0)
		return -1;
	if (n == 0) {
		snprintf(why, whylen, "empty --resolve list");
		return -1;
	}
	return 0;
}
