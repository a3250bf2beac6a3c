/* timings_from_marks: curl's cumulative marks to each phase's own duration,
 * and which phases did not happen. The marks are what libcurl 7.88 reported
 * for each kind of transfer over loopback (µs since the transfer started,
 * 0 = not reached). */
#include <criterion/criterion.h>
#include <stdio.h>

#include "timings.h"

#define NONE ATTEMPT_TIMING_NONE

struct marks_case {
	const char *name;
	struct timings_marks m;
	struct attempt_timings want;
	bool reused;
};

/* {namelookup, connect, appconnect, pretransfer, starttransfer, total,
 *  num_connects, host_is_ip} -> {dns, connect, tls, ttfb, total}, reused */
static const struct marks_case cases[] = {
	/* Fresh connections: each phase from the end of the one before. */
	{"fresh http, IP literal", {125, 1303, 0, 1372, 2622, 2803, 1, true},
	 {NONE, 1303, NONE, 1319, 2803}, false},
	{"fresh http, by name", {32, 968, 0, 1017, 1817, 1993, 1, false},
	 {32, 936, NONE, 849, 1993}, false},
	{"fresh https, IP literal", {31, 174, 9217, 10342, 52355, 52396, 1, true},
	 {NONE, 174, 9043, 43138, 52396}, false},
	{"fresh https, by name", {21, 882, 6488, 6596, 49604, 49653, 1, false},
	 {21, 861, 5606, 43116, 49653}, false},
	/* A kept-alive connection: no dns, connect or tls, though curl
	 * still marks a lookup; ttfb runs from the start. */
	{"reused http", {21, 0, 0, 56, 292, 40568, 0, true},
	 {NONE, NONE, NONE, 292, 40568}, true},
	{"reused https, by name", {47, 0, 0, 107, 1380, 43612, 0, false},
	 {NONE, NONE, NONE, 1380, 43612}, true},
	{"reused, no answer before the timeout", {10, 0, 0, 40, 0, 3000000, 0, false},
	 {NONE, NONE, NONE, NONE, 3000000}, true},
	/* A kept-alive connection found dead: curl opened a new one. */
	{"stale connection replaced", {15, 400, 0, 450, 900, 950, 1, false},
	 {15, 385, NONE, 500, 950}, false},
	/* Failures: the phase that failed and every later one are none;
	 * no connection means nothing was reused. */
	{"connection refused, IP literal", {30, 0, 0, 0, 0, 220, 0, true},
	 {NONE, NONE, NONE, NONE, 220}, false},
	{"connection refused, by name", {30, 0, 0, 0, 0, 260, 0, false},
	 {30, NONE, NONE, NONE, 260}, false},
	{"name not resolved", {0, 0, 0, 0, 0, 1450, 0, false},
	 {NONE, NONE, NONE, NONE, 1450}, false},
	{"address guard refused every address", {50, 0, 0, 0, 0, 60, 0, false},
	 {50, NONE, NONE, NONE, 60}, false},
	{"TLS handshake failed", {20, 500, 0, 0, 0, 3000, 1, false},
	 {20, 480, NONE, NONE, 3000}, false},
	{"fresh, no answer before the timeout", {20, 300, 0, 350, 0, 30000000, 1, false},
	 {20, 280, NONE, NONE, 30000000}, false},
	/* Marks out of order never make a negative duration. */
	{"marks out of order", {500, 400, 0, 450, 300, 600, 1, false},
	 {500, 0, NONE, 0, 600}, false},
};

Test(timings, phases_from_curls_cumulative_marks)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct marks_case *c = &cases[i];
		struct attempt_timings got;
		bool reused = timings_from_marks(&c->m, &got);
		cr_expect_eq(reused, c->reused, "%s: reused", c->name);
		cr_expect_eq(got.dns_us, c->want.dns_us, "%s: dns %lld", c->name,
			     (long long)got.dns_us);
		cr_expect_eq(got.connect_us, c->want.connect_us, "%s: connect %lld", c->name,
			     (long long)got.connect_us);
		cr_expect_eq(got.tls_us, c->want.tls_us, "%s: tls %lld", c->name,
			     (long long)got.tls_us);
		cr_expect_eq(got.ttfb_us, c->want.ttfb_us, "%s: ttfb %lld", c->name,
			     (long long)got.ttfb_us);
		cr_expect_eq(got.total_us, c->want.total_us, "%s: total %lld", c->name,
			     (long long)got.total_us);
	}
}

/* On a fresh connection the phases and the body's download add up to
 * curl's total: nothing is counted twice. */
Test(timings, fresh_phases_add_up_to_the_first_byte)
{
	struct timings_marks m = {21, 882, 6488, 6596, 49604, 49653, 1, false};
	struct attempt_timings t;
	timings_from_marks(&m, &t);
	cr_assert_eq(t.dns_us + t.connect_us + t.tls_us + t.ttfb_us, m.starttransfer_us);
}

struct host_case {
	const char *host;
	bool ip;
};

Test(timings, host_is_ip_as_curl_gives_the_host)
{
	static const struct host_case hosts[] = {
		{"127.0.0.1", true},
		{"10.1.2.3", true},
		{"[::1]", true},
		{"[2001:db8::1]", true},
		{"localhost", false},
		{"hooks.example.com", false},
		{"256.1.1.1", false},
		{"127.0.0.1.nip.io", false},
		{"", false},
		{NULL, false},
	};
	for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++)
		cr_expect_eq(timings_host_is_ip(hosts[i].host), hosts[i].ip, "%s",
			     hosts[i].host ? hosts[i].host : "(null)");
}
