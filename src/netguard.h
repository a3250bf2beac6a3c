/* netguard: the destination guard
 * (docs/security.md#destinations-tls-and-the-address-guard). It judges the
 * address a delivery is about to dial, after name resolution, so a name that resolves
 * (or re-resolves) to an internal address is refused like the literal
 * address. Also the syntax checks of the other destination flags
 * (--source-address, --resolve). Pure: no curl, no I/O. */
#ifndef HOOKD_NETGUARD_H
#define HOOKD_NETGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "cidr.h"

#define NETGUARD_MSG_MAX 200        /* netguard_message's longest output */
#define NETGUARD_HOST_MAX 253       /* a --resolve host name */
#define NETGUARD_ADDR_TEXT_MAX 64   /* an IP address as text, brackets included */

struct netguard {
	bool allow_private;      /* --allow-private-networks: nothing is blocked */
	struct cidr_list allow;  /* --allow-cidr; n == 0: no exceptions */
};

/* Why an address is not a public unicast one: what (a static phrase such as
 * "loopback") and, when the address carries an IPv4 address inside an IPv6
 * one, via (the form, e.g. "NAT64"), else NULL. */
struct netguard_why {
	const char *what;
	const char *via;
};

/* Sets g from the flags; allow_cidr may be NULL. Returns 0, or -1 with a
 * reason in why (a bad CIDR list). */
int netguard_init(struct netguard *g, bool allow_private, const char *allow_cidr, char *why,
		  size_t whylen);

/* True if sa is special (loopback, private, link-local, multicast,
 * reserved, documentation, ...), with the reason in *why. An address that is
 * not AF_INET or AF_INET6 counts as special ("not an IP address"). */
bool netguard_classify(const struct sockaddr *sa, struct netguard_why *why);

/* True if g lets sa be dialled: a public address, or a special one that
 * --allow-private-networks or --allow-cidr permits. Otherwise false, with
 * the reason in *why. */
bool netguard_allows(const struct netguard *g, const struct sockaddr *sa, struct netguard_why *why);

/* Writes "blocked ADDR: WHAT[ in VIA] (allow with --allow-private-networks or
 * --allow-cidr)" into out (NETGUARD_MSG_MAX is enough). */
void netguard_message(const struct sockaddr *sa, const struct netguard_why *why, char *out,
		      size_t outlen);

/* Parses an IPv4 or IPv6 literal (IPv6 with or without brackets) into ss
 * (port 0). Returns the length of the address in ss, or 0 if text is not
 * one. */
socklen_t netguard_ip_parse(const char *text, struct sockaddr_storage *ss);

/* --source-address check (struct opt.check): an IPv4 or IPv6 literal. */
int netguard_source_check(const char *val, char *why, size_t whylen);

/* One --resolve item: HOST:PORT:ADDR (ADDR an IP literal, IPv6 with or
 * without brackets). */
struct netguard_resolve {
	char host[NETGUARD_HOST_MAX + 1];
	unsigned port;
	char addr[NETGUARD_ADDR_TEXT_MAX]; /* IPv6 in brackets, as curl wants it */
};

/* Parses the item of a comma-separated --resolve list at *p and moves *p
 * past it (and its comma). Returns 1 with *out filled, 0 at the end of the
 * list, or -1 with a reason in why. */
int netguard_resolve_next(const char **p, struct netguard_resolve *out, char *why,
			  size_t whylen);

/* --resolve check (struct opt.check): a non-empty list of good items. */
int netguard_resolve_check(const char *val, char *why, size_t whylen);

#endif
