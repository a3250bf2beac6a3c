/* dispatch_policy: the outcome and admission decisions as tables, one row
 * per rule of docs/receiving.md (retries, Retry-After, 410, the circuit
 * breaker) and docs/api.md#rate-limits-and-isolation (rate_limit,
 * max_in_flight, batches). The time comes from dispatch_clock, set by the
 * test: nothing sleeps. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dispatch_clock.h"
#include "dispatch_policy.h"
#include "util.h"

/* 2023-11-14T22:13:20Z (a Tuesday) and an arbitrary monotonic time. */
#define WALL 1700000000000LL
#define MONO 5000000LL
#define H (3600 * 1000LL)

static void set_clock(void)
{
	dispatch_clock_set(WALL, MONO);
}

static void reset_clock(void)
{
	dispatch_clock_reset();
}

/* The default --retry-schedule 0,1m,5m,30m,2h: five attempts. */
static const int64_t delays[] = {0, 60000, 300000, 1800000, 7200000};
static const struct retry_schedule sched = {delays, 5};

struct outcome_case {
	const char *name;
	enum failure_kind kind;
	long status;
	const char *retry_after;  /* NULL: absent */
	int furthest;
	double jitter;
	int64_t max_ra;           /* --max-retry-after; 0: default */
	enum dpol_fate fate;
	int64_t after;            /* at - now (RETRY, PAUSE, DISABLE) */
	bool spent;
	bool counts;
};

static const struct outcome_case outcome_cases[] = {
	/* retries on the schedule */
	{"2xx succeeds", FAILURE_NONE, 200, NULL, 0, 0, 0, DPOL_SUCCEEDED, 0, false, true},
	{"2xx ignores Retry-After", FAILURE_NONE, 204, "60", 2, 0, 0, DPOL_SUCCEEDED, 0, false, true},
	{"500 after attempt 1: 1m", FAILURE_HTTP_STATUS, 500, NULL, 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"500 jitter +10%", FAILURE_HTTP_STATUS, 500, NULL, 0, 1, 0, DPOL_RETRY, 66000, true, true},
	{"500 jitter -10%", FAILURE_HTTP_STATUS, 500, NULL, 0, -1, 0, DPOL_RETRY, 54000, true, true},
	{"500 after attempt 2: 5m", FAILURE_HTTP_STATUS, 500, NULL, 1, 0, 0, DPOL_RETRY, 300000, true, true},
	{"500 after attempt 4: 2h", FAILURE_HTTP_STATUS, 500, NULL, 3, 0, 0, DPOL_RETRY, 7200000, true, true},
	{"500 after the last: dead", FAILURE_HTTP_STATUS, 500, NULL, 4, 0, 0, DPOL_DEAD, 0, true, true},
	{"past the schedule: dead", FAILURE_HTTP_STATUS, 500, NULL, 9, 0, 0, DPOL_DEAD, 0, true, true},
	{"3xx is a failure", FAILURE_HTTP_STATUS, 301, NULL, 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"404 retries", FAILURE_HTTP_STATUS, 404, NULL, 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"timeout", FAILURE_TIMEOUT, 0, NULL, 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"refused", FAILURE_CONNECTION_REFUSED, 0, NULL, 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"dns", FAILURE_DNS, 0, NULL, 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"tls", FAILURE_TLS, 0, NULL, 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"too large", FAILURE_RESPONSE_TOO_LARGE, 200, NULL, 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"invalid response", FAILURE_INVALID_RESPONSE, 200, NULL, 0, 0, 0, DPOL_RETRY, 60000, true, true},
	/* hookd's own failures spend an attempt but do not trip the circuit */
	{"blocked: not counted", FAILURE_BLOCKED, 0, NULL, 0, 0, 0, DPOL_RETRY, 60000, true, false},
	{"internal: not counted", FAILURE_INTERNAL, 0, NULL, 0, 0, 0, DPOL_RETRY, 60000, true, false},
	{"blocked at the last: dead", FAILURE_BLOCKED, 0, NULL, 4, 0, 0, DPOL_DEAD, 0, true, false},
	/* 410 Gone: disable, no attempt spent, not counted, whatever else */
	{"410 disables", FAILURE_HTTP_STATUS, 410, NULL, 0, 0, 0, DPOL_DISABLE, 0, false, false},
	{"410 at the last: not dead", FAILURE_HTTP_STATUS, 410, NULL, 4, 0, 0, DPOL_DISABLE, 0, false, false},
	{"410 with Retry-After", FAILURE_HTTP_STATUS, 410, "60", 0, 0, 0, DPOL_DISABLE, 0, false, false},
	/* 429/503 with Retry-After: pause, no attempt spent, not counted */
	{"429 delta-seconds", FAILURE_HTTP_STATUS, 429, "120", 0, 0, 0, DPOL_PAUSE, 120000, false, false},
	{"503 delta-seconds", FAILURE_HTTP_STATUS, 503, "120", 0, 0, 0, DPOL_PAUSE, 120000, false, false},
	{"429 at the last: not dead", FAILURE_HTTP_STATUS, 429, "5", 4, 0, 0, DPOL_PAUSE, 5000, false, false},
	{"blanks around", FAILURE_HTTP_STATUS, 429, " \t30 \t", 0, 0, 0, DPOL_PAUSE, 30000, false, false},
	{"HTTP-date", FAILURE_HTTP_STATUS, 503, "Tue, 14 Nov 2023 22:15:20 GMT", 0, 0, 0, DPOL_PAUSE, 120000, false, false},
	{"HTTP-date past: the minimum", FAILURE_HTTP_STATUS, 503, "Tue, 14 Nov 2023 20:00:00 GMT", 0, 0, 0, DPOL_PAUSE, 1000, false, false},
	{"HTTP-date far: the maximum", FAILURE_HTTP_STATUS, 429, "Fri, 01 Jan 2100 00:00:00 GMT", 0, 0, 0, DPOL_PAUSE, H, false, false},
	{"0: the minimum", FAILURE_HTTP_STATUS, 429, "0", 0, 0, 0, DPOL_PAUSE, 1000, false, false},
	{"above the default max", FAILURE_HTTP_STATUS, 429, "7200", 0, 0, 0, DPOL_PAUSE, H, false, false},
	{"above --max-retry-after", FAILURE_HTTP_STATUS, 429, "120", 0, 0, 60000, DPOL_PAUSE, 60000, false, false},
	{"below --max-retry-after", FAILURE_HTTP_STATUS, 503, "30", 0, 0, 60000, DPOL_PAUSE, 30000, false, false},
	{"huge number: the maximum", FAILURE_HTTP_STATUS, 429, "99999999999999999999999999", 0, 0, 0, DPOL_PAUSE, H, false, false},
	/* without a readable Retry-After: an ordinary failure */
	{"429 without", FAILURE_HTTP_STATUS, 429, NULL, 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"503 without", FAILURE_HTTP_STATUS, 503, NULL, 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"503 without, at the last", FAILURE_HTTP_STATUS, 503, NULL, 4, 0, 0, DPOL_DEAD, 0, true, true},
	{"empty", FAILURE_HTTP_STATUS, 429, "", 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"words", FAILURE_HTTP_STATUS, 429, "soon", 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"negative", FAILURE_HTTP_STATUS, 429, "-5", 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"fraction", FAILURE_HTTP_STATUS, 503, "1.5", 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"trailing junk", FAILURE_HTTP_STATUS, 429, "12abc", 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"two values", FAILURE_HTTP_STATUS, 429, "5, 10", 0, 0, 0, DPOL_RETRY, 60000, true, true},
	/* Retry-After only on 429/503 */
	{"500 with Retry-After", FAILURE_HTTP_STATUS, 500, "120", 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"502 with Retry-After", FAILURE_HTTP_STATUS, 502, "120", 0, 0, 0, DPOL_RETRY, 60000, true, true},
	{"timeout, no status", FAILURE_TIMEOUT, 0, "120", 0, 0, 0, DPOL_RETRY, 60000, true, true},
};

Test(dpol, outcome_table, .init = set_clock, .fini = reset_clock)
{
	int64_t now = dispatch_clock_now_ms();
	cr_assert_eq(now, WALL);
	for (size_t i = 0; i < sizeof outcome_cases / sizeof outcome_cases[0]; i++) {
		const struct outcome_case *c = &outcome_cases[i];
		struct dpol_outcome_in in = {.kind = c->kind, .status = c->status,
					     .retry_after = c->retry_after,
					     .furthest_index = c->furthest, .schedule = &sched,
					     .now = now, .jitter = c->jitter,
					     .max_retry_after_ms = c->max_ra};
		struct dpol_outcome o;
		dpol_outcome(&in, &o);
		cr_expect_eq(o.fate, c->fate, "%s: fate %d", c->name, o.fate);
		cr_expect_eq(o.spent, c->spent, "%s: spent", c->name);
		cr_expect_eq(o.breaker_counts, c->counts, "%s: breaker counts", c->name);
		bool timed = c->fate == DPOL_RETRY || c->fate == DPOL_PAUSE || c->fate == DPOL_DISABLE;
		if (timed) {
			cr_expect_eq(o.at - now, c->after, "%s: at now+%lld", c->name,
				     (long long)(o.at - now));
			cr_expect_eq(o.delay, c->after, "%s: delay", c->name);
		} else {
			cr_expect_eq(o.delay, -1, "%s: no delay", c->name);
		}
		cr_expect_eq(o.next_index, c->spent ? c->furthest + 1 : c->furthest, "%s: index",
			     c->name);
	}
}

Test(dpol, retry_never_overflows, .init = set_clock, .fini = reset_clock)
{
	static const int64_t big[] = {0, INT64_MAX / 2};
	struct retry_schedule s = {big, 2};
	struct dpol_outcome_in in = {.kind = FAILURE_TIMEOUT, .schedule = &s,
				     .now = INT64_MAX - 10, .jitter = 1};
	struct dpol_outcome o;
	dpol_outcome(&in, &o);
	cr_assert_eq(o.fate, DPOL_RETRY);
	cr_expect_eq(o.at, INT64_MAX);
}

Test(dpol, retry_after_bad_value_leaves_until, .init = set_clock, .fini = reset_clock)
{
	int64_t until = 42;
	cr_expect_not(dpol_retry_after_until("Someday", dispatch_clock_now_ms(), H, &until));
	cr_expect_eq(until, 42);
	cr_expect(dpol_retry_after_until("Tuesday, 14-Nov-23 22:14:20 GMT", WALL, H, &until));
	cr_expect_eq(until, WALL + 60000, "RFC 850 date: %lld", (long long)(until - WALL));
}

/* ---- admission ---- */

struct admit_case {
	const char *name;
	struct dpol_admit_in in;       /* now and mono filled from the clock */
	enum breaker_state br;
	int64_t probe_in;              /* next_probe_at - now */
	double bucket_rate;            /* the bucket as it was (re-made if the rate changed) */
	double tokens;                 /* < 0: full */
	enum dpol_admit admit;
	enum dpol_why why;
	int64_t wait_ms;
	bool retry_batch, unbatch;
	enum breaker_state br_after;
	double tokens_after;           /* < 0: not checked */
};

/* An enabled endpoint with ready work and room: the base of most rows. */
#define EN .known = true, .enabled = true
#define OK EN, .queued = 1
#define NOW_OFF(x) (WALL + (x))

static const struct admit_case admit_cases[] = {
	{"ready: send", {OK}, BREAKER_CLOSED, 0, 0, -1, DPOL_SEND, DPOL_OK, 0, false, false, BREAKER_CLOSED, -1},
	{"nothing ready", {.known = true, .enabled = true}, BREAKER_CLOSED, 0, 0, -1, DPOL_SKIP, DPOL_EMPTY, 0, false, false, BREAKER_CLOSED, -1},
	{"deleted", {.queued = 1}, BREAKER_CLOSED, 0, 0, -1, DPOL_SKIP, DPOL_GONE, 0, false, false, BREAKER_CLOSED, -1},
	{"disabled", {.known = true, .queued = 1}, BREAKER_CLOSED, 0, 0, -1, DPOL_SKIP, DPOL_DISABLED, 0, false, false, BREAKER_CLOSED, -1},
	{"being disabled by a 410", {OK, .disabling = true}, BREAKER_CLOSED, 0, 0, -1, DPOL_SKIP, DPOL_DISABLED, 0, false, false, BREAKER_CLOSED, -1},
	{"disabled beats paused", {.known = true, .queued = 1, .paused_until = NOW_OFF(5000)}, BREAKER_CLOSED, 0, 0, -1, DPOL_SKIP, DPOL_DISABLED, 0, false, false, BREAKER_CLOSED, -1},
	/* Retry-After pauses */
	{"paused", {OK, .paused_until = NOW_OFF(5000)}, BREAKER_CLOSED, 0, 0, -1, DPOL_WAIT, DPOL_PAUSED, 5000, false, false, BREAKER_CLOSED, -1},
	{"pause ends now", {OK, .paused_until = NOW_OFF(0)}, BREAKER_CLOSED, 0, 0, -1, DPOL_SEND, DPOL_OK, 0, false, false, BREAKER_CLOSED, -1},
	{"pause ended", {OK, .paused_until = NOW_OFF(-1)}, BREAKER_CLOSED, 0, 0, -1, DPOL_SEND, DPOL_OK, 0, false, false, BREAKER_CLOSED, -1},
	{"paused beats an open circuit", {OK, .paused_until = NOW_OFF(5000)}, BREAKER_OPEN, 30000, 0, -1, DPOL_WAIT, DPOL_PAUSED, 5000, false, false, BREAKER_OPEN, -1},
	/* the circuit */
	{"open: wait for the probe", {OK}, BREAKER_OPEN, 30000, 0, -1, DPOL_WAIT, DPOL_CIRCUIT_OPEN, 30000, false, false, BREAKER_OPEN, -1},
	{"open, probe time: send the probe", {OK}, BREAKER_OPEN, 0, 0, -1, DPOL_SEND, DPOL_OK, 0, false, false, BREAKER_HALF_OPEN, -1},
	{"open, probe time passed", {OK}, BREAKER_OPEN, -5000, 0, -1, DPOL_SEND, DPOL_OK, 0, false, false, BREAKER_HALF_OPEN, -1},
	{"half open: the probe is out", {OK}, BREAKER_HALF_OPEN, -5000, 0, -1, DPOL_SKIP, DPOL_CIRCUIT_PROBING, 0, false, false, BREAKER_HALF_OPEN, -1},
	{"open beats the cap", {OK, .in_flight = 10}, BREAKER_OPEN, 30000, 0, -1, DPOL_WAIT, DPOL_CIRCUIT_OPEN, 30000, false, false, BREAKER_OPEN, -1},
	/* max_in_flight */
	{"default cap 10: 9 open", {OK, .in_flight = 9}, BREAKER_CLOSED, 0, 0, -1, DPOL_SEND, DPOL_OK, 0, false, false, BREAKER_CLOSED, -1},
	{"default cap 10: 10 open", {OK, .in_flight = 10}, BREAKER_CLOSED, 0, 0, -1, DPOL_SKIP, DPOL_AT_CAP, 0, false, false, BREAKER_CLOSED, -1},
	{"cap 1: 1 open", {OK, .in_flight = 1, .max_in_flight = 1}, BREAKER_CLOSED, 0, 0, -1, DPOL_SKIP, DPOL_AT_CAP, 0, false, false, BREAKER_CLOSED, -1},
	{"cap 1000: 999 open", {OK, .in_flight = 999, .max_in_flight = 1000}, BREAKER_CLOSED, 0, 0, -1, DPOL_SEND, DPOL_OK, 0, false, false, BREAKER_CLOSED, -1},
	{"at cap: no token taken", {OK, .in_flight = 3, .max_in_flight = 3, .rate_limit = 2}, BREAKER_CLOSED, 0, 2, 2, DPOL_SKIP, DPOL_AT_CAP, 0, false, false, BREAKER_CLOSED, 2},
	/* fair share of the global cap (others wait): the lower of it and max_in_flight */
	{"share 2 of cap 10: 2 open", {OK, .in_flight = 2, .share = 2}, BREAKER_CLOSED, 0, 0, -1, DPOL_SKIP, DPOL_AT_CAP, 0, false, false, BREAKER_CLOSED, -1},
	{"share 2 of cap 10: 1 open", {OK, .in_flight = 1, .share = 2}, BREAKER_CLOSED, 0, 0, -1, DPOL_SEND, DPOL_OK, 0, false, false, BREAKER_CLOSED, -1},
	{"share above the cap: the cap", {OK, .in_flight = 3, .max_in_flight = 3, .share = 50}, BREAKER_CLOSED, 0, 0, -1, DPOL_SKIP, DPOL_AT_CAP, 0, false, false, BREAKER_CLOSED, -1},
	{"no share: the cap", {OK, .in_flight = 9, .share = 0}, BREAKER_CLOSED, 0, 0, -1, DPOL_SEND, DPOL_OK, 0, false, false, BREAKER_CLOSED, -1},
	/* rate_limit: a bucket of one second's worth (at least 1) */
	{"no limit", {OK, .rate_limit = 0}, BREAKER_CLOSED, 0, 0, -1, DPOL_SEND, DPOL_OK, 0, false, false, BREAKER_CLOSED, -1},
	{"token: send and take it", {OK, .rate_limit = 2}, BREAKER_CLOSED, 0, 2, 2, DPOL_SEND, DPOL_OK, 0, false, false, BREAKER_CLOSED, 1},
	{"no token at 2/s: 500 ms", {OK, .rate_limit = 2}, BREAKER_CLOSED, 0, 2, 0, DPOL_WAIT, DPOL_RATE_LIMITED, 500, false, false, BREAKER_CLOSED, 0},
	{"no token at 0.5/s: 2 s", {OK, .rate_limit = 0.5}, BREAKER_CLOSED, 0, 0.5, 0, DPOL_WAIT, DPOL_RATE_LIMITED, 2000, false, false, BREAKER_CLOSED, 0},
	{"half a token at 1/s: 500 ms", {OK, .rate_limit = 1}, BREAKER_CLOSED, 0, 1, 0.5, DPOL_WAIT, DPOL_RATE_LIMITED, 500, false, false, BREAKER_CLOSED, 0.5},
	{"rate changed: a full bucket", {OK, .rate_limit = 2}, BREAKER_CLOSED, 0, 5, 0, DPOL_SEND, DPOL_OK, 0, false, false, BREAKER_CLOSED, 1},
	{"limit removed: sends", {OK, .rate_limit = 0}, BREAKER_CLOSED, 0, 5, 0, DPOL_SEND, DPOL_OK, 0, false, false, BREAKER_CLOSED, -1},
	/* batches */
	{"batch filling: wait for max_wait", {EN, .queued = 3, .batch_max = 10, .batch_max_wait_ms = 1000, .oldest_at = NOW_OFF(-400)}, BREAKER_CLOSED, 0, 0, -1, DPOL_WAIT, DPOL_BATCH_FILLING, 600, false, false, BREAKER_CLOSED, -1},
	{"batch full: send", {EN, .queued = 10, .batch_max = 10, .batch_max_wait_ms = 1000, .oldest_at = NOW_OFF(0)}, BREAKER_CLOSED, 0, 0, -1, DPOL_SEND, DPOL_OK, 0, false, false, BREAKER_CLOSED, -1},
	{"batch waited max_wait: send", {EN, .queued = 2, .batch_max = 10, .batch_max_wait_ms = 1000, .oldest_at = NOW_OFF(-1000)}, BREAKER_CLOSED, 0, 0, -1, DPOL_SEND, DPOL_OK, 0, false, false, BREAKER_CLOSED, -1},
	{"batch retry due: send it", {.known = true, .enabled = true, .has_retry = true, .retry_due_at = NOW_OFF(-1), .batch_max = 10, .batch_max_wait_ms = 1000}, BREAKER_CLOSED, 0, 0, -1, DPOL_SEND, DPOL_OK, 0, true, false, BREAKER_CLOSED, -1},
	{"batch retry not due: wait", {.known = true, .enabled = true, .has_retry = true, .retry_due_at = NOW_OFF(2000), .batch_max = 10, .batch_max_wait_ms = 1000}, BREAKER_CLOSED, 0, 0, -1, DPOL_WAIT, DPOL_BATCH_FILLING, 2000, false, false, BREAKER_CLOSED, -1},
	{"batch: the earlier of retry and group", {EN, .queued = 3, .has_retry = true, .retry_due_at = NOW_OFF(2000), .batch_max = 10, .batch_max_wait_ms = 1000, .oldest_at = NOW_OFF(-500)}, BREAKER_CLOSED, 0, 0, -1, DPOL_WAIT, DPOL_BATCH_FILLING, 500, false, false, BREAKER_CLOSED, -1},
	{"batch full, retry not due: a new group", {EN, .queued = 10, .has_retry = true, .retry_due_at = NOW_OFF(2000), .batch_max = 10, .batch_max_wait_ms = 1000, .oldest_at = NOW_OFF(0)}, BREAKER_CLOSED, 0, 0, -1, DPOL_SEND, DPOL_OK, 0, false, false, BREAKER_CLOSED, -1},
	{"batch ready, circuit open", {EN, .queued = 10, .batch_max = 10, .batch_max_wait_ms = 1000}, BREAKER_OPEN, 30000, 0, -1, DPOL_WAIT, DPOL_CIRCUIT_OPEN, 30000, false, false, BREAKER_OPEN, -1},
	{"batch filling, circuit open", {EN, .queued = 3, .batch_max = 10, .batch_max_wait_ms = 1000, .oldest_at = NOW_OFF(-400)}, BREAKER_OPEN, 30000, 0, -1, DPOL_WAIT, DPOL_BATCH_FILLING, 600, false, false, BREAKER_OPEN, -1},
	{"batch removed, retries wait: unbatch", {.known = true, .enabled = true, .has_retry = true, .retry_due_at = NOW_OFF(2000)}, BREAKER_CLOSED, 0, 0, -1, DPOL_SKIP, DPOL_EMPTY, 0, false, true, BREAKER_CLOSED, -1},
	{"batch removed, ready too: unbatch and send", {OK, .has_retry = true, .retry_due_at = NOW_OFF(2000)}, BREAKER_CLOSED, 0, 0, -1, DPOL_SEND, DPOL_OK, 0, false, true, BREAKER_CLOSED, -1},
	{"paused: no unbatch yet", {.known = true, .enabled = true, .has_retry = true, .paused_until = NOW_OFF(5000)}, BREAKER_CLOSED, 0, 0, -1, DPOL_WAIT, DPOL_PAUSED, 5000, false, false, BREAKER_CLOSED, -1},
};

Test(dpol, admit_table, .init = set_clock, .fini = reset_clock)
{
	int64_t now = dispatch_clock_now_ms(), mono = dispatch_clock_mono_ms();
	cr_assert_eq(now, WALL);
	cr_assert_eq(mono, MONO);
	for (size_t i = 0; i < sizeof admit_cases / sizeof admit_cases[0]; i++) {
		const struct admit_case *c = &admit_cases[i];
		struct dpol_admit_in in = c->in;
		in.now = now;
		in.mono = mono;
		struct breaker br;
		breaker_init(&br, 10);
		br.state = c->br;
		br.next_probe_at = c->br == BREAKER_CLOSED ? 0 : now + c->probe_in;
		struct bucket bk;
		bucket_init(&bk, c->bucket_rate, mono);
		if (c->tokens >= 0)
			bk.tokens = c->tokens;
		struct dpol_admission a;
		dpol_admit(&in, &br, &bk, &a);
		cr_expect_eq(a.admit, c->admit, "%s: admit %d", c->name, a.admit);
		cr_expect_eq(a.why, c->why, "%s: why %d", c->name, a.why);
		cr_expect_eq(a.wait_ms, c->wait_ms, "%s: wait %lld", c->name, (long long)a.wait_ms);
		cr_expect_eq(a.retry_batch, c->retry_batch, "%s: retry_batch", c->name);
		cr_expect_eq(a.unbatch, c->unbatch, "%s: unbatch", c->name);
		cr_expect_eq(br.state, c->br_after, "%s: circuit %d", c->name, br.state);
		if (c->tokens_after >= 0)
			cr_expect_float_eq(bk.tokens, c->tokens_after, 1e-9, "%s: tokens %f", c->name,
					   bk.tokens);
		int cap = c->in.max_in_flight > 0 ? c->in.max_in_flight : 10;
		if (c->in.share > 0 && c->in.share < cap)
			cap = c->in.share;
		cr_expect_eq(a.cap, cap, "%s: cap", c->name);
	}
}

/* A rate-limited endpoint's sends over simulated time: the burst, then one
 * every 1/rate s, each wait exactly as long as the bucket needs. */
Test(dpol, rate_limit_paces_sends, .init = set_clock, .fini = reset_clock)
{
	struct dpol_admit_in in = {OK, .rate_limit = 4, .now = dispatch_clock_now_ms()};
	struct breaker br;
	breaker_init(&br, 10);
	struct bucket bk;
	bucket_init(&bk, 0, 0);
	int sent = 0;
	int64_t waited = 0;
	for (int64_t mono = MONO; sent < 12; ) {
		dispatch_clock_set(WALL + (mono - MONO), mono);
		in.mono = dispatch_clock_mono_ms();
		struct dpol_admission a;
		dpol_admit(&in, &br, &bk, &a);
		if (a.admit == DPOL_SEND) {
			sent++;
			continue;
		}
		cr_assert_eq(a.admit, DPOL_WAIT);
		cr_assert_eq(a.why, DPOL_RATE_LIMITED);
		mono += a.wait_ms;
		waited += a.wait_ms;
	}
	/* 4 at once, then 8 more at 4 a second. */
	cr_expect_eq(waited, 2000, "waited %lld ms", (long long)waited);
}

Test(dpol, clock_set_and_reset)
{
	dispatch_clock_set(WALL, MONO);
	cr_expect_eq(dispatch_clock_now_ms(), WALL);
	cr_expect_eq(dispatch_clock_mono_ms(), MONO);
	dispatch_clock_reset();
	int64_t real = now_ms();
	cr_expect(dispatch_clock_now_ms() >= real && dispatch_clock_now_ms() < real + 60000);
	cr_expect_neq(dispatch_clock_mono_ms(), MONO);
}

/* One outcome fed to the breaker as dispatch_finish does. */
static void feed(struct breaker *br, enum failure_kind kind, long status, const char *ra,
		 int64_t now)
{
	struct dpol_outcome_in in = {.kind = kind, .status = status, .retry_after = ra,
				     .schedule = &sched, .now = now};
	struct dpol_outcome o;
	dpol_outcome(&in, &o);
	if (o.breaker_counts)
		breaker_record(br, kind == FAILURE_NONE, now);
}

static enum dpol_admit admit_now(struct breaker *br, int64_t now, struct dpol_admission *a)
{
	struct dpol_admit_in in = {OK, .now = now, .mono = MONO};
	struct bucket bk;
	bucket_init(&bk, 0, MONO);
	dpol_admit(&in, br, &bk, a);
	return a->admit;
}

/* --breaker-failures 3: three failures in a row open the circuit; nothing
 * goes until the probe time, then one probe; its success closes it. Signals
 * (410, Retry-After) and hookd's own failures never open it. */
Test(dpol, breaker_opens_probes_and_closes, .init = set_clock, .fini = reset_clock)
{
	int64_t now = dispatch_clock_now_ms();
	struct breaker br;
	breaker_init(&br, 3);
	struct dpol_admission a;
	for (int i = 0; i < 10; i++) {
		feed(&br, FAILURE_HTTP_STATUS, 429, "30", now);
		feed(&br, FAILURE_HTTP_STATUS, 503, "Tue, 14 Nov 2023 22:15:20 GMT", now);
		feed(&br, FAILURE_HTTP_STATUS, 410, NULL, now);
		feed(&br, FAILURE_BLOCKED, 0, NULL, now);
		feed(&br, FAILURE_INTERNAL, 0, NULL, now);
	}
	cr_assert_eq(br.state, BREAKER_CLOSED, "signals and hookd's own failures opened it");
	feed(&br, FAILURE_HTTP_STATUS, 500, NULL, now);
	feed(&br, FAILURE_TIMEOUT, 0, NULL, now);
	feed(&br, FAILURE_NONE, 200, NULL, now); /* a success in between starts over */
	feed(&br, FAILURE_HTTP_STATUS, 500, NULL, now);
	feed(&br, FAILURE_HTTP_STATUS, 429, NULL, now); /* 429 without Retry-After counts */
	cr_assert_eq(br.state, BREAKER_CLOSED);
	cr_assert_eq(admit_now(&br, now, &a), DPOL_SEND);
	feed(&br, FAILURE_CONNECTION_REFUSED, 0, NULL, now);
	cr_assert_eq(br.state, BREAKER_OPEN);
	int64_t probe = br.next_probe_at;
	cr_assert_gt(probe, now);
	cr_expect_eq(admit_now(&br, now, &a), DPOL_WAIT);
	cr_expect_eq(a.why, DPOL_CIRCUIT_OPEN);
	cr_expect_eq(a.wait_ms, probe - now);
	dispatch_clock_set(probe, MONO + (probe - now));
	now = dispatch_clock_now_ms();
	cr_expect_eq(admit_now(&br, now, &a), DPOL_SEND, "the probe");
	cr_expect_eq(admit_now(&br, now, &a), DPOL_SKIP, "a second request while probing");
	cr_expect_eq(a.why, DPOL_CIRCUIT_PROBING);
	feed(&br, FAILURE_NONE, 204, NULL, now);
	cr_expect_eq(br.state, BREAKER_CLOSED);
	cr_expect_eq(admit_now(&br, now, &a), DPOL_SEND);
}

/* The default schedule end to end: a delivery failing every time spends
 * five attempts, at +0, +1m, +5m, +30m, +2h, then is dead; a Retry-After
 * pause on the way (an extra attempt, recorded) spends none of them and
 * leaves the position where it was. */
Test(dpol, schedule_walk_with_a_pause, .init = set_clock, .fini = reset_clock)
{
	static const int64_t gaps[] = {60000, 300000, 1800000, 7200000};
	int64_t now = dispatch_clock_now_ms();
	int index = 0, tries = 1, paused = 0;
	for (;;) {
		const char *ra = tries == 3 && paused == 0 ? "120" : NULL;
		struct dpol_outcome_in in = {.kind = FAILURE_HTTP_STATUS, .status = 503,
					     .retry_after = ra, .furthest_index = index,
					     .schedule = &sched, .now = now};
		struct dpol_outcome o;
		dpol_outcome(&in, &o);
		if (o.fate == DPOL_DEAD)
			break;
		if (o.fate == DPOL_PAUSE) {
			paused++;
			cr_assert_eq(o.at - now, 120000);
			cr_assert_not(o.spent);
			cr_assert_eq(o.next_index, index);
		} else {
			cr_assert_eq(o.fate, DPOL_RETRY);
			cr_assert_lt(index, 4);
			cr_assert_eq(o.at - now, gaps[index], "gap after try %d", tries);
			index = o.next_index;
			tries++;
		}
		dispatch_clock_set(o.at, MONO);
		now = dispatch_clock_now_ms();
	}
	cr_expect_eq(tries, 5);
	cr_expect_eq(paused, 1);
	cr_expect_eq(index, 4);
}
