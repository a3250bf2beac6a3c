/* cidr: parsing "NET[/PREFIX],..." lists and matching socket addresses.
 * Addresses are parsed with inet_pton only, so the numeric spellings libc's
 * inet_aton would accept (0177.0.0.1, 0x7f.1, 2130706433) are rejected here:
 * an operator's list means exactly what it says. */
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest item we accept: a full IPv6 text form plus "/128" and some slack. */
#define CIDR_ITEM_MAX 64

/* Zeroes the bits of addr past prefix. */
static void cidr_mask(uint8_t *addr, int nbytes, int prefix)
{
	for (int i = 0; i < nbytes; i++) {
		int bits = prefix - i * 8;
		if (bits >= 8)
			continue;
		addr[i] = bits <= 0 ? 0 : (uint8_t)(addr[i] & (0xff << (8 - bits)));
	}
}

/* Parses one item "ADDR" or "ADDR/PREFIX" (item is NUL-terminated). */
static int cidr_parse_one(const char *item, struct cidr *out)
{
	char addr[CIDR_ITEM_MAX];
	const char *slash = strchr(item, '/');
	size_t alen = slash ? (size_t)(slash - item) : strlen(item);
	if (alen == 0 || alen >= sizeof addr)
		return -1;
	memcpy(addr, item, alen);
	addr[alen] = '\0';

	memset(out, 0, sizeof *out);
	int maxp;
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = AF_INET;
		maxp = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = AF_INET6;
		maxp = 128;
	} else {
		return -1;
	}

	out->prefix = maxp;
	if (slash) {
		const char *p = slash + 1;
		if (*p < '0' || *p > '9' || strlen(p) > 3)
			return -1;
		char *end;
		long v = strtol(p, &end, 10);
		if (*end != '\0' || v < 0 || v > maxp)
			return -1;
		out->prefix = (int)v;
	}
	cidr_mask(out->addr, maxp / 8, out->prefix);
	return 0;
}

int cidr_list_parse(const char *text, struct cidr_list *out, char *why, size_t whylen)
{
	out->n = 0;
	if (!text || !*text) {
		snprintf(why, whylen, "empty CIDR list");
		return -1;
	}
	const char *p = text;
	for (;;) {
		while (*p == ' ')
			p++;
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		while (len > 0 && p[len - 1] == ' ')
			len--;
		char item[CIDR_ITEM_MAX];
		if (len == 0) {
			snprintf(why, whylen, "empty item in CIDR list");
			return -1;
		}
		if (len >= sizeof item) {
			snprintf(why, whylen, "CIDR item too long: %.*s...", 20, p);
			return -1;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		if (out->n == CIDR_LIST_MAX) {
			snprintf(why, whylen, "more than %d networks in CIDR list", CIDR_LIST_MAX);
			return -1;
		}
		if (cidr_parse_one(item, &out->v[out->n]) != 0) {
			snprintf(why, whylen, "bad CIDR '%s' (want ADDR or ADDR/PREFIX)", item);
			return -1;
		}
		out->n++;
		if (!end)
			return 0;
		p = end + 1;
	}
}

int cidr_list_check(const char *text, char *why, size_t whylen)
{
	/* The list is large (~1.5 KB); keep it off a caller's small stack. */
	struct cidr_list *l = malloc(sizeof *l);
	if (!l) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	int rc = cidr_list_parse(text, l, why, whylen);
	free(l);
	return rc;
}

/* True if the first prefix bits of a and b agree. */
static bool cidr_prefix_eq(const uint8_t *a, const uint8_t *b, int prefix)
{
	int full = prefix / 8, rest = prefix % 8;
	if (memcmp(a, b, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t m = (uint8_t)(0xff << (8 - rest));
	return (a[full] & m) == (b[full] & m);
}

bool cidr_contains(const struct cidr *c, int family, const uint8_t *addr)
{
	return c->family == family && cidr_prefix_eq(addr, c->addr, c->prefix);
}

bool cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa)
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	uint8_t v4[4], v6[16];
	bool has4 = false, has6 = false;

	if (!l || !sa)
		return false;
	if (sa->sa_family == AF_INET) {
		memcpy(v4, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		has4 = true;
	} else if (sa->sa_family == AF_INET6) {
		memcpy(v6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
		has6 = true;
		/* ::ffff:a.b.c.d is the IPv4 host a.b.c.d: let IPv4 networks match it. */
		if (memcmp(v6, v4mapped, sizeof v4mapped) == 0) {
			memcpy(v4, v6 + 12, 4);
			has4 = true;
		}
	} else {
		return false;
	}

	for (size_t i = 0; i < l->n; i++) {
		const struct cidr *c = &l->v[i];
		if (has4 && cidr_contains(c, AF_INET, v4))
			return true;
		if (has6 && cidr_contains(c, AF_INET6, v6))
			return true;
	}
	return false;
}
