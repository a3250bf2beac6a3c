/* Unit tests for cidr: list parsing (good and bad items) and matching,
 * IPv4-mapped IPv6 included. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "test_addr.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

Test(cidr, parse_valid)
{
	static const struct {
		const char *in;
		size_t n;
		int family0;
		int prefix0;
	} cases[] = {
		{"10.0.0.0/8", 1, AF_INET, 8},
		{"192.0.2.7", 1, AF_INET, 32},
		{"::1", 1, AF_INET6, 128},
		{"fd00::/8", 1, AF_INET6, 8},
		{"0.0.0.0/0", 1, AF_INET, 0},
		{"::/0", 1, AF_INET6, 0},
		{"10.0.0.0/8,fd00::/8,192.0.2.7", 3, AF_INET, 8},
		{"10.0.0.0/8, 192.168.0.0/16", 2, AF_INET, 8},
		{" 127.0.0.1/32 ", 1, AF_INET, 32},
		{"::ffff:127.0.0.1/128", 1, AF_INET6, 128},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct cidr_list l;
		char why[128] = "";
		cr_assert_eq(cidr_list_parse(cases[i].in, &l, why, sizeof why), 0, "%s: %s",
			     cases[i].in, why);
		cr_assert_eq(l.n, cases[i].n, "%s", cases[i].in);
		cr_assert_eq(l.v[0].family, cases[i].family0, "%s", cases[i].in);
		cr_assert_eq(l.v[0].prefix, cases[i].prefix0, "%s", cases[i].in);
	}
}

Test(cidr, parse_invalid)
{
	static const char *const cases[] = {
		"", "   ", ",", "10.0.0.0/8,", ",10.0.0.0/8", "10.0.0.0/33", "::/129",
		"10.0.0.0/-1", "10.0.0.0/", "10.0.0.0/8x", "10.0.0.0/ 8", "10.0.0.0/+8", "/8",
		"10.0.0", "127.1", "0177.0.0.1", "0x7f.0.0.1", "2130706433", "256.0.0.1",
		"example.com", "fe80::1%eth0",
		"10.0.0.0/0008", "1.2.3.4/8/8",
		"aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa",
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct cidr_list l;
		char why[128] = "";
		cr_assert_eq(cidr_list_parse(cases[i], &l, why, sizeof why), -1, "%s", cases[i]);
		cr_assert_neq(why[0], '\0', "%s: no reason", cases[i]);
		cr_assert_eq(cidr_list_check(cases[i], why, sizeof why), -1, "%s", cases[i]);
	}
	char why[128];
	cr_assert_eq(cidr_list_parse(NULL, &(struct cidr_list){0}, why, sizeof why), -1);
}

Test(cidr, parse_names_bad_item)
{
	struct cidr_list l;
	char why[128];
	cr_assert_eq(cidr_list_parse("10.0.0.0/8,bogus/3", &l, why, sizeof why), -1);
	cr_assert(strstr(why, "bogus/3") != NULL, "%s", why);
}

Test(cidr, parse_limit)
{
	/* CIDR_LIST_MAX items parse; one more does not. */
	char *buf = malloc((CIDR_LIST_MAX + 1) * 16);
	cr_assert_not_null(buf);
	size_t off = 0;
	for (int i = 0; i < CIDR_LIST_MAX; i++)
		off += (size_t)sprintf(buf + off, "%s10.0.%d.0/24", i ? "," : "", i);
	struct cidr_list l;
	char why[128];
	cr_assert_eq(cidr_list_parse(buf, &l, why, sizeof why), 0, "%s", why);
	cr_assert_eq(l.n, CIDR_LIST_MAX);
	strcpy(buf + off, ",10.1.0.0/24");
	cr_assert_eq(cidr_list_parse(buf, &l, why, sizeof why), -1);
	free(buf);
}

Test(cidr, host_bits_zeroed)
{
	struct cidr_list l;
	char why[128];
	cr_assert_eq(cidr_list_parse("10.1.2.3/8,fd12:3456::1/20", &l, why, sizeof why), 0);
	static const uint8_t want4[4] = {10, 0, 0, 0};
	cr_assert_arr_eq(l.v[0].addr, want4, 4);
	static const uint8_t want6[16] = {0xfd, 0x12, 0x30};
	cr_assert_arr_eq(l.v[1].addr, want6, 16);
}

Test(cidr, match)
{
	static const struct {
		const char *list;
		const char *addr;
		bool want;
	} cases[] = {
		{"10.0.0.0/8", "10.0.0.0", true},
		{"10.0.0.0/8", "10.255.255.255", true},
		{"10.0.0.0/8", "11.0.0.0", false},
		{"10.0.0.0/8", "9.255.255.255", false},
		{"172.16.0.0/12", "172.31.255.255", true},
		{"172.16.0.0/12", "172.32.0.0", false},
		{"100.64.0.0/10", "100.127.0.1", true},
		{"100.64.0.0/10", "100.128.0.1", false},
		{"127.0.0.1", "127.0.0.1", true},
		{"127.0.0.1", "127.0.0.2", false},
		{"127.0.0.1/32", "::ffff:127.0.0.1", true},   /* mapped matches as IPv4 */
		{"10.0.0.0/8", "::ffff:10.9.8.7", true},
		{"10.0.0.0/8", "::ffff:11.9.8.7", false},
		{"10.0.0.0/8", "::10.9.8.7", false},           /* IPv4-compatible is not mapped */
		{"::ffff:0:0/96", "::ffff:1.2.3.4", true},     /* and an IPv6 list still sees it */
		{"::ffff:0:0/96", "1.2.3.4", false},
		{"0.0.0.0/0", "203.0.113.9", true},
		{"0.0.0.0/0", "2001:db8::1", false},
		{"::/0", "2001:db8::1", true},
		{"::/0", "203.0.113.9", false},
		{"fd00::/8", "fdff::1", true},
		{"fd00::/8", "fc00::1", false},
		{"fe80::/10", "febf::1", true},
		{"fe80::/10", "fec0::1", false},
		{"2001:db8::/127", "2001:db8::1", true},
		{"2001:db8::/127", "2001:db8::2", false},
		{"::1", "::1", true},
		{"::1", "::2", false},
		{"192.168.0.0/16,fd00::/8,127.0.0.1", "127.0.0.1", true},
		{"192.168.0.0/16,fd00::/8,127.0.0.1", "fd01::5", true},
		{"192.168.0.0/16,fd00::/8,127.0.0.1", "8.8.8.8", false},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct cidr_list l;
		struct sockaddr_storage ss;
		char why[128];
		cr_assert_eq(cidr_list_parse(cases[i].list, &l, why, sizeof why), 0, "%s", why);
		const struct sockaddr *sa = test_addr(cases[i].addr, &ss);
		cr_assert_not_null(sa, "%s", cases[i].addr);
		cr_assert_eq(cidr_list_match(&l, sa), cases[i].want, "%s in %s", cases[i].addr,
			     cases[i].list);
	}
}

Test(cidr, match_other_family_and_null)
{
	struct cidr_list l;
	char why[128];
	cr_assert_eq(cidr_list_parse("0.0.0.0/0,::/0", &l, why, sizeof why), 0);
	struct sockaddr_storage ss = {.ss_family = AF_UNIX};
	cr_assert_not(cidr_list_match(&l, (const struct sockaddr *)&ss));
	cr_assert_not(cidr_list_match(&l, NULL));
	cr_assert_not(cidr_list_match(NULL, test_addr("1.2.3.4", &ss)));
	struct cidr_list empty = {.n = 0};
	cr_assert_not(cidr_list_match(&empty, test_addr("1.2.3.4", &ss)));
}
