/* retry_next_delay: the schedule table, jitter bounds and edge cases. */
#include <criterion/criterion.h>
#include <math.h>
#include <limits.h>
#include <stdint.h>

#include "retry.h"

#define MIN 60000LL
#define HOUR (60 * MIN)

static const int64_t seed[] = {0, 1 * MIN, 5 * MIN, 30 * MIN, 2 * HOUR};
static const struct retry_schedule seed_schedule = {seed, 5};

struct delay_case {
	const int64_t *delays;
	size_t len;
	int attempts_made;
	double jitter;
	int64_t want;
};

static const int64_t one[] = {0};
static const int64_t one_later[] = {5000};
static const int64_t secs[] = {0, 1000, 1000};
static const int64_t odd[] = {0, 15, 1001};
static const int64_t huge[] = {0, INT64_MAX};

static const struct delay_case delay_cases[] = {
	/* The seed schedule: five attempts, then dead. */
	{seed, 5, 0, 0.0, 0},
	{seed, 5, 1, 0.0, 1 * MIN},
	{seed, 5, 2, 0.0, 5 * MIN},
	{seed, 5, 3, 0.0, 30 * MIN},
	{seed, 5, 4, 0.0, 2 * HOUR},
	{seed, 5, 5, 0.0, -1},
	{seed, 5, 6, 0.0, -1},
	{seed, 5, 1000, 0.0, -1},
	/* Extreme jitter is exactly ±10 %. */
	{seed, 5, 1, 1.0, 66000},
	{seed, 5, 1, -1.0, 54000},
	{seed, 5, 4, 1.0, 7920000},
	{seed, 5, 4, -1.0, 6480000},
	{seed, 5, 2, 0.5, 315000},
	{seed, 5, 2, -0.5, 285000},
	/* Out-of-range jitter is clamped, NaN counts as none. */
	{seed, 5, 1, 7.0, 66000},
	{seed, 5, 1, -7.0, 54000},
	{seed, 5, 1, NAN, 60000},
	/* Zero stays zero whatever the jitter. */
	{seed, 5, 0, 1.0, 0},
	{seed, 5, 0, -1.0, 0},
	/* Rounding to the nearest ms. */
	{odd, 3, 1, 0.1, 15},   /* 15.15 */
	{odd, 3, 1, 0.4, 16},   /* 15.6 */
	{odd, 3, 2, -1.0, 901}, /* 900.9 */
	/* A schedule of length 1: one attempt, no retry. */
	{one, 1, 0, 0.0, 0},
	{one, 1, 1, 0.0, -1},
	{one, 1, 1, 1.0, -1},
	{one_later, 1, 0, 0.0, 5000},
	{one_later, 1, 1, 0.0, -1},
	/* The test suite's short schedule. */
	{secs, 3, 1, 0.0, 1000},
	{secs, 3, 2, -1.0, 900},
	{secs, 3, 3, 0.0, -1},
	/* Negative attempts are treated as none yet. */
	{secs, 3, -1, 0.0, 0},
	/* No overflow on absurd delays. */
	{huge, 2, 1, 1.0, INT64_MAX},
	/* Empty schedule: nothing to try. */
	{seed, 0, 0, 0.0, -1},
};

Test(retry, table)
{
	for (size_t i = 0; i < sizeof delay_cases / sizeof delay_cases[0]; i++) {
		const struct delay_case *c = &delay_cases[i];
		struct retry_schedule s = {c->delays, c->len};
		int64_t got = retry_next_delay(&s, c->attempts_made, c->jitter);
		cr_expect_eq(got, c->want, "case %zu: attempts=%d jitter=%g: got %lld want %lld", i,
			     c->attempts_made, c->jitter, (long long)got, (long long)c->want);
	}
}

Test(retry, jitter_stays_within_ten_percent)
{
	for (int attempts = 1; attempts <= 4; attempts++) {
		int64_t base = seed[attempts];
		int64_t lo = base - base / 10, hi = base + base / 10;
		for (int k = -100; k <= 100; k++) {
			double j = k / 100.0;
			int64_t got = retry_next_delay(&seed_schedule, attempts, j);
			cr_expect(got >= lo && got <= hi, "attempts=%d jitter=%g: %lld not in [%lld,%lld]",
				  attempts, j, (long long)got, (long long)lo, (long long)hi);
		}
	}
}

Test(retry, jitter_is_monotonic)
{
	int64_t prev = -1;
	for (int k = -100; k <= 100; k++) {
		int64_t got = retry_next_delay(&seed_schedule, 3, k / 100.0);
		cr_expect(got >= prev, "jitter %d/100 gave %lld after %lld", k, (long long)got,
			  (long long)prev);
		prev = got;
	}
}

Test(retry, null_schedule_is_dead)
{
	cr_expect_eq(retry_next_delay(NULL, 1, 0.0), -1);
	struct retry_schedule s = {NULL, 3};
	cr_expect_eq(retry_next_delay(&s, 1, 0.0), -1);
}

/* The pause after attempt outcomes could not be written (issue 12). */
Test(retry, store_backoff_doubles_to_its_cap)
{
	static const struct {
		unsigned failures;
		int64_t ms;
	} cases[] = {
		{0, 0},     {1, 100},    {2, 200},    {3, 400},    {4, 800},
		{5, 1600},  {6, 3200},   {7, 6400},   {8, 12800},  {9, 25600},
		{10, 30000}, {11, 30000}, {1000, 30000}, {UINT_MAX, 30000},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(retry_store_backoff_ms(cases[i].failures), cases[i].ms,
			     "failures=%u: %lld, want %lld", cases[i].failures,
			     (long long)retry_store_backoff_ms(cases[i].failures),
			     (long long)cases[i].ms);
}
