/* ratelimit: the token bucket never lets more through than rate × time + burst. */
#include <criterion/criterion.h>

#include "ratelimit.h"

Test(ratelimit, burst_then_steady_rate)
{
	struct bucket b;
	bucket_init(&b, 20, 1000);
	int sent = 0;
	for (int i = 0; i < 100; i++)
		sent += bucket_take(&b, 1000);
	cr_assert_eq(sent, 20, "a full bucket holds one second's worth");
	cr_assert_eq(bucket_wait_ms(&b, 1000), 50, "the next token comes after 1/20 s");
	cr_assert(!bucket_take(&b, 1049));
	cr_assert(bucket_take(&b, 1050));

	/* Over 10 s of constant demand, at most burst + rate × 10 s go out. */
	bucket_init(&b, 20, 0);
	sent = 0;
	for (int64_t t = 0; t <= 10000; t++) {
		while (bucket_take(&b, t))
			sent++;
	}
	cr_assert_eq(sent, 20 + 200, "sent %d", sent);
}

Test(ratelimit, every_window_is_bounded)
{
	/* Requests asked for every ms; any 1 s window holds at most burst + rate. */
	struct bucket b;
	bucket_init(&b, 7, 0);
	static int64_t times[20000];
	int n = 0;
	for (int64_t t = 0; t < 20000; t++) {
		if (bucket_take(&b, t))
			times[n++] = t;
	}
	for (int i = 0; i < n; i++) {
		int in_window = 0;
		for (int j = i; j < n && times[j] < times[i] + 1000; j++)
			in_window++;
		cr_assert_leq(in_window, 7 + 7, "window at %lld holds %d", (long long)times[i],
			      in_window);
	}
	cr_assert_geq(n, 7 * 20, "the limit is reached, not undershot: %d", n);
}

Test(ratelimit, fractional_and_unlimited)
{
	struct bucket b;
	bucket_init(&b, 0.5, 0); /* one request every 2 s, burst 1 */
	cr_assert(bucket_take(&b, 0));
	cr_assert(!bucket_take(&b, 1999));
	cr_assert_eq(bucket_wait_ms(&b, 1999), 1);
	cr_assert(bucket_take(&b, 2000));
	bucket_init(&b, 0, 0);
	for (int i = 0; i < 1000; i++)
		cr_assert(bucket_take(&b, 0), "rate 0 means no limit");
	cr_assert_eq(bucket_wait_ms(&b, 0), 0);
}

Test(ratelimit, clock_going_back_adds_nothing)
{
	struct bucket b;
	bucket_init(&b, 10, 5000);
	for (int i = 0; i < 10; i++)
		cr_assert(bucket_take(&b, 5000));
	cr_assert(!bucket_take(&b, 4000));
	cr_assert(!bucket_take(&b, 5000));
}
