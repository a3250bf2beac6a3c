/* Unit tests for netguard: the table of special addresses (each range at
 * its edges, IPv6 forms carrying IPv4), the exceptions, the message, and
 * the --source-address and --resolve checks. */
#include <criterion/criterion.h>

#include <string.h>

#include "netguard.h"
#include "test_addr.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* want: NULL = public (allowed), else a substring of the reason; via the
 * substring of the IPv4-in-IPv6 form or NULL. */
static const struct {
	const char *addr;
	const char *want;
	const char *via;
} classify_cases[] = {
	/* IPv4 */
	{"0.0.0.0", "this network", NULL},
	{"0.255.255.255", "this network", NULL},
	{"1.0.0.0", NULL, NULL},
	{"9.255.255.255", NULL, NULL},
	{"10.0.0.0", "RFC 1918", NULL},
	{"10.255.255.255", "RFC 1918", NULL},
	{"11.0.0.0", NULL, NULL},
	{"100.63.255.255", NULL, NULL},
	{"100.64.0.0", "CGNAT", NULL},
	{"100.127.255.255", "CGNAT", NULL},
	{"100.128.0.0", NULL, NULL},
	{"126.255.255.255", NULL, NULL},
	{"127.0.0.1", "loopback", NULL},
	{"127.255.255.254", "loopback", NULL},
	{"128.0.0.0", NULL, NULL},
	{"169.253.255.255", NULL, NULL},
	{"169.254.169.254", "metadata", NULL},
	{"169.254.0.1", "link-local", NULL},
	{"169.255.0.0", NULL, NULL},
	{"172.15.255.255", NULL, NULL},
	{"172.16.0.0", "RFC 1918", NULL},
	{"172.31.255.255", "RFC 1918", NULL},
	{"172.32.0.0", NULL, NULL},
	{"192.0.0.8", "IETF protocol", NULL},
	{"192.0.0.170", "IETF protocol", NULL},
	{"192.0.1.1", NULL, NULL},
	{"192.0.2.1", "documentation", NULL},
	{"192.88.99.1", "6to4 relay", NULL},
	{"192.167.255.255", NULL, NULL},
	{"192.168.0.1", "RFC 1918", NULL},
	{"192.168.255.255", "RFC 1918", NULL},
	{"192.169.0.0", NULL, NULL},
	{"198.17.255.255", NULL, NULL},
	{"198.18.0.1", "benchmarking", NULL},
	{"198.19.255.255", "benchmarking", NULL},
	{"198.20.0.0", NULL, NULL},
	{"198.51.100.7", "documentation", NULL},
	{"203.0.113.9", "documentation", NULL},
	{"203.0.114.1", NULL, NULL},
	{"8.8.8.8", NULL, NULL},
	{"93.184.216.34", NULL, NULL},
	{"223.255.255.255", NULL, NULL},
	{"224.0.0.1", "multicast", NULL},
	{"239.255.255.255", "multicast", NULL},
	{"240.0.0.1", "reserved", NULL},
	{"255.255.255.254", "reserved", NULL},
	{"255.255.255.255", "broadcast", NULL},
	/* IPv6 */
	{"::", "unspecified", NULL},
	{"::1", "loopback", NULL},
	{"::2", "IPv4-compatible", NULL},
	{"::127.0.0.1", "IPv4-compatible", NULL},
	{"::8.8.8.8", "IPv4-compatible", NULL},
	{"::ffff:127.0.0.1", "loopback", "IPv4-mapped"},
	{"::ffff:10.1.2.3", "RFC 1918", "IPv4-mapped"},
	{"::ffff:169.254.169.254", "metadata", "IPv4-mapped"},
	{"::ffff:0.0.0.0", "this network", "IPv4-mapped"},
	{"::ffff:8.8.8.8", NULL, NULL},
	{"64:ff9b::7f00:1", "loopback", "NAT64"},
	{"64:ff9b::192.168.1.1", "RFC 1918", "NAT64"},
	{"64:ff9b::8.8.8.8", NULL, NULL},
	{"64:ff9b:1::1", "local-use NAT64", NULL},
	{"2002:7f00:1::1", "loopback", "6to4"},
	{"2002:a9fe:a9fe::", "metadata", "6to4"},
	{"2002:c0a8:101::5", "RFC 1918", "6to4"},
	{"2002:808:808::1", NULL, NULL},
	{"2001::1", "Teredo", NULL},
	{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo", NULL},
	{"2001:1::1", NULL, NULL},
	{"2001:2::1", "benchmarking", NULL},
	{"2001:db8::1", "documentation", NULL},
	{"2001:db9::1", NULL, NULL},
	{"2001:4860:4860::8888", NULL, NULL},
	{"2606:4700::1111", NULL, NULL},
	{"100::1", "discard-only", NULL},
	{"100:0:0:1::1", NULL, NULL},
	{"fbff:ffff::1", NULL, NULL},
	{"fc00::1", "unique local", NULL},
	{"fd12:3456::1", "unique local", NULL},
	{"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "unique local", NULL},
	{"fe80::1", "link-local", NULL},
	{"febf::1", "link-local", NULL},
	{"fec0::1", "site-local", NULL},
	{"ff02::1", "multicast", NULL},
	{"ff0e::1", "multicast", NULL},
};

Test(netguard, classify_table)
{
	for (size_t i = 0; i < N_ELEMS(classify_cases); i++) {
		struct sockaddr_storage ss;
		struct netguard_why why;
		const char *a = classify_cases[i].addr;
		const struct sockaddr *sa = test_addr(a, &ss);
		cr_assert_not_null(sa, "%s", a);
		bool special = netguard_classify(sa, &why);
		if (classify_cases[i].want == NULL) {
			cr_assert_not(special, "%s: unexpectedly special (%s)", a, why.what);
			cr_assert_null(why.what, "%s", a);
			continue;
		}
		cr_assert(special, "%s: not special", a);
		cr_assert(strstr(why.what, classify_cases[i].want) != NULL, "%s: %s", a, why.what);
		if (classify_cases[i].via == NULL)
			cr_assert_null(why.via, "%s: via %s", a, why.via);
		else
			cr_assert(why.via && strstr(why.via, classify_cases[i].via), "%s", a);
	}
}

Test(netguard, other_families_are_special)
{
	struct sockaddr_storage ss = {.ss_family = AF_UNIX};
	struct netguard_why why;
	cr_assert(netguard_classify((const struct sockaddr *)&ss, &why));
	cr_assert_str_eq(why.what, "not an IP address");
	cr_assert(netguard_classify(NULL, &why));
	struct netguard g;
	char err[128];
	cr_assert_eq(netguard_init(&g, true, "0.0.0.0/0,::/0", err, sizeof err), 0);
	cr_assert_not(netguard_allows(&g, (const struct sockaddr *)&ss, &why));
}

Test(netguard, default_blocks_every_special_and_allows_public)
{
	struct netguard g;
	char err[128];
	cr_assert_eq(netguard_init(&g, false, NULL, err, sizeof err), 0);
	for (size_t i = 0; i < N_ELEMS(classify_cases); i++) {
		struct sockaddr_storage ss;
		struct netguard_why why;
		const struct sockaddr *sa = test_addr(classify_cases[i].addr, &ss);
		cr_assert_eq(netguard_allows(&g, sa, &why), classify_cases[i].want == NULL, "%s",
			     classify_cases[i].addr);
	}
}

Test(netguard, allow_private_allows_everything_ip)
{
	struct netguard g;
	char err[128];
	cr_assert_eq(netguard_init(&g, true, NULL, err, sizeof err), 0);
	for (size_t i = 0; i < N_ELEMS(classify_cases); i++) {
		struct sockaddr_storage ss;
		struct netguard_why why;
		const struct sockaddr *sa = test_addr(classify_cases[i].addr, &ss);
		cr_assert(netguard_allows(&g, sa, &why), "%s", classify_cases[i].addr);
	}
}

Test(netguard, allow_cidr_exceptions)
{
	static const struct {
		const char *addr;
		bool want;
	} cases[] = {
		{"127.0.0.1", true},
		{"127.0.0.2", false},
		{"::ffff:127.0.0.1", true},  /* the same host, IPv4-mapped */
		{"10.1.2.3", true},
		{"10.2.0.1", false},
		{"fd00::5", true},
		{"fe80::1", false},
		{"169.254.169.254", false},
		{"8.8.8.8", true},           /* public: needs no exception */
	};
	struct netguard g;
	char err[128];
	cr_assert_eq(netguard_init(&g, false, "127.0.0.1/32, 10.1.0.0/16,fd00::/8", err,
				   sizeof err), 0, "%s", err);
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct sockaddr_storage ss;
		struct netguard_why why;
		const struct sockaddr *sa = test_addr(cases[i].addr, &ss);
		cr_assert_eq(netguard_allows(&g, sa, &why), cases[i].want, "%s", cases[i].addr);
	}
	cr_assert_eq(netguard_init(&g, false, "10.0.0.0/33", err, sizeof err), -1);
	cr_assert(strstr(err, "10.0.0.0/33") != NULL, "%s", err);
	cr_assert_eq(netguard_init(&g, false, "", err, sizeof err), 0);
	cr_assert_eq(g.allow.n, 0);
}

Test(netguard, message)
{
	static const struct {
		const char *addr;
		const char *want;
	} cases[] = {
		{"127.0.0.1", "blocked 127.0.0.1: loopback (allow with --allow-private-networks or "
			      "--allow-cidr)"},
		{"::ffff:10.0.0.1", "blocked ::ffff:10.0.0.1: private network (RFC 1918) in "
				    "IPv4-mapped IPv6 (allow with --allow-private-networks or "
				    "--allow-cidr)"},
		{"fe80::1", "blocked fe80::1: link-local (allow with --allow-private-networks or "
			    "--allow-cidr)"},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct sockaddr_storage ss;
		struct netguard_why why;
		const struct sockaddr *sa = test_addr(cases[i].addr, &ss);
		cr_assert(netguard_classify(sa, &why));
		char msg[NETGUARD_MSG_MAX];
		netguard_message(sa, &why, msg, sizeof msg);
		cr_assert_str_eq(msg, cases[i].want);
	}
	/* The longest reason still fits. */
	struct sockaddr_storage ss;
	struct netguard_why why;
	const struct sockaddr *sa = test_addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", &ss);
	cr_assert(netguard_classify(sa, &why));
	why.what = "shared address space (CGNAT, RFC 6598)";
	why.via = "IPv4-mapped IPv6";
	char msg[NETGUARD_MSG_MAX];
	netguard_message(sa, &why, msg, sizeof msg);
	cr_assert(strstr(msg, "--allow-cidr)") != NULL, "%s", msg);
}

Test(netguard, source_check)
{
	static const char *const good[] = {"127.0.0.2", "0.0.0.0", "::1", "[::1]", "fd00::1",
					   "203.0.113.5"};
	static const char *const bad[] = {"", "localhost", "127.1", "2130706433", "[127.0.0.1]",
					  "1.2.3.4:80", "::1%lo", "eth0", "1.2.3.4 "};
	char why[128];
	for (size_t i = 0; i < N_ELEMS(good); i++)
		cr_assert_eq(netguard_source_check(good[i], why, sizeof why), 0, "%s", good[i]);
	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		why[0] = '\0';
		cr_assert_eq(netguard_source_check(bad[i], why, sizeof why), -1, "%s", bad[i]);
		cr_assert_neq(why[0], '\0');
	}
}

Test(netguard, ip_parse)
{
	struct sockaddr_storage ss, want;
	cr_assert_eq(netguard_ip_parse("127.0.0.2", &ss), sizeof(struct sockaddr_in));
	cr_assert_eq(ss.ss_family, AF_INET);
	cr_assert_arr_eq(&((struct sockaddr_in *)&ss)->sin_addr,
			 &((const struct sockaddr_in *)test_addr("127.0.0.2", &want))->sin_addr, 4);
	cr_assert_eq(((struct sockaddr_in *)&ss)->sin_port, 0);
	cr_assert_eq(netguard_ip_parse("[fd00::1]", &ss), sizeof(struct sockaddr_in6));
	cr_assert_eq(ss.ss_family, AF_INET6);
	const struct sockaddr_in6 *w6 = (const void *)test_addr("fd00::1", &want);
	cr_assert_arr_eq(&((struct sockaddr_in6 *)&ss)->sin6_addr, &w6->sin6_addr, 16);
	cr_assert_eq(netguard_ip_parse("fd00::1", &ss), sizeof(struct sockaddr_in6));
	cr_assert_eq(netguard_ip_parse("[10.0.0.1]", &ss), 0);
	cr_assert_eq(netguard_ip_parse(NULL, &ss), 0);
}

Test(netguard, resolve_parse)
{
	const char *p = "example.com:443:127.0.0.1, hooks.test:8443:::1,a-b_c.x:1:[fd00::2]";
	struct netguard_resolve r;
	char why[160];
	cr_assert_eq(netguard_resolve_next(&p, &r, why, sizeof why), 1, "%s", why);
	cr_assert_str_eq(r.host, "example.com");
	cr_assert_eq(r.port, 443);
	cr_assert_str_eq(r.addr, "127.0.0.1");
	cr_assert_eq(netguard_resolve_next(&p, &r, why, sizeof why), 1, "%s", why);
	cr_assert_str_eq(r.host, "hooks.test");
	cr_assert_eq(r.port, 8443);
	cr_assert_str_eq(r.addr, "[::1]");
	cr_assert_eq(netguard_resolve_next(&p, &r, why, sizeof why), 1, "%s", why);
	cr_assert_str_eq(r.host, "a-b_c.x");
	cr_assert_eq(r.port, 1);
	cr_assert_str_eq(r.addr, "[fd00::2]");
	cr_assert_eq(netguard_resolve_next(&p, &r, why, sizeof why), 0);
	cr_assert_eq(netguard_resolve_check("h:65535:10.0.0.1", why, sizeof why), 0, "%s", why);
}

Test(netguard, resolve_invalid)
{
	static const char *const bad[] = {
		"", " ", ",", "h:443:127.0.0.1,", ",h:443:127.0.0.1", "h:443:127.0.0.1,,h:1:::1",
		"h:443", "h::127.0.0.1", ":443:127.0.0.1", "h:0:127.0.0.1", "h:65536:127.0.0.1",
		"h:443x:127.0.0.1", "h:1234567:127.0.0.1", "h:443:localhost", "h:443:127.1",
		"h:443:[127.0.0.1]", "h:443:", "h/x:443:127.0.0.1", "+h:443:127.0.0.1",
		"-h:443:127.0.0.1", "*:443:127.0.0.1", "h:443:127.0.0.1:80", "h:-1:127.0.0.1",
	};
	char why[160];
	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		why[0] = '\0';
		cr_assert_eq(netguard_resolve_check(bad[i], why, sizeof why), -1, "'%s'", bad[i]);
		cr_assert_neq(why[0], '\0', "'%s'", bad[i]);
	}
	cr_assert_eq(netguard_resolve_check(NULL, why, sizeof why), -1);
}
