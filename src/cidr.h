/* cidr: lists of IPv4/IPv6 networks ("10.0.0.0/8,fd00::/8,192.0.2.7") and
 * matching a socket address against them. Used by the destination guard
 * (--allow-cidr) and the API allowlist (--api-allow). An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) matches as the IPv4 address it carries. */
#ifndef HOOKD_CIDR_H
#define HOOKD_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CIDR_LIST_MAX 64   /* networks in one list */

struct cidr {
	int family;          /* AF_INET or AF_INET6 */
	uint8_t addr[16];    /* network bytes (4 used for AF_INET), host bits zeroed */
	int prefix;          /* 0..32 or 0..128 */
};

struct cidr_list {
	struct cidr v[CIDR_LIST_MAX];
	size_t n;
};

/* Parses "NET[/PREFIX],..." (a bare address is a /32 or /128; spaces after
 * commas allowed). Returns 0, or -1 with why naming the bad item. */
int cidr_list_parse(const char *text, struct cidr_list *out, char *why, size_t whylen);

/* The config check form of cidr_list_parse (struct opt.check). */
int cidr_list_check(const char *text, char *why, size_t whylen);

/* True if addr (4 bytes for AF_INET, 16 for AF_INET6, network order) lies in
 * network c of the same family. No IPv4-mapped handling: the raw form. */
bool cidr_contains(const struct cidr *c, int family, const uint8_t *addr);

/* True if sa (AF_INET or AF_INET6) lies in one of the list's networks. */
bool cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa);

#endif
