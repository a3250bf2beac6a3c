/* retry: the retry schedule as a pure function
 * (docs/operations.md#retries-and-the-dead-letter-queue). */
#include "retry.h"

#include <math.h>

/* Largest double that still converts to int64_t without overflow. */
#define RETRY_DELAY_CEIL 9.2e18

int64_t retry_next_delay(const struct retry_schedule *s, int attempts_made, double jitter)
{
	if (s == NULL || s->delays_ms == NULL)
		return -1;
	/* A negative count makes no sense; treat it as "nothing tried yet". */
	if (attempts_made < 0)
		attempts_made = 0;
	if ((size_t)attempts_made >= s->len)
		return -1;
	int64_t base = s->delays_ms[attempts_made];
	if (base <= 0)
		return 0;
	/* Out-of-range or NaN jitter must not widen the spread beyond ±10 %. */
	if (isnan(jitter))
		jitter = 0.0;
	else if (jitter < -1.0)
		jitter = -1.0;
	else if (jitter > 1.0)
		jitter = 1.0;
	double d = round((double)base * (1.0 + 0.1 * jitter));
	if (d <= 0.0)
		return 0;
	if (d >= RETRY_DELAY_CEIL)
		return INT64_MAX;
	return (int64_t)d;
}

int64_t retry_store_backoff_ms(unsigned failures)
{
	if (failures == 0)
		return 0;
	int64_t d = RETRY_STORE_BACKOFF_MIN_MS;
	/* Doubling from the first failure; the cap is reached after 9. */
	for (unsigned i = 1; i < failures && d < RETRY_STORE_BACKOFF_MAX_MS; i++)
		d *= 2;
	return d > RETRY_STORE_BACKOFF_MAX_MS ? RETRY_STORE_BACKOFF_MAX_MS : d;
}
