/* ratelimit: token bucket. Tokens accrue continuously at `rate` per second
 * up to `burst`; each request takes one. */
#include "ratelimit.h"

#include <math.h>

void bucket_init(struct bucket *b, double rate, int64_t now_ms)
{
	b->rate = rate > 0 ? rate : 0;
	b->burst = b->rate >= 1 ? b->rate : 1;
	b->tokens = b->burst;
	b->last_ms = now_ms;
}

static void refill(struct bucket *b, int64_t now_ms)
{
	if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * b->rate / 1000.0;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->last_ms = now_ms;
	}
}

bool bucket_take(struct bucket *b, int64_t now_ms)
{
	if (b->rate == 0)
		return true;
	refill(b, now_ms);
	if (b->tokens < 1.0)
		return false;
	b->tokens -= 1.0;
	return true;
}

int64_t bucket_wait_ms(struct bucket *b, int64_t now_ms)
{
	if (b->rate == 0)
		return 0;
	refill(b, now_ms);
	if (b->tokens >= 1.0)
		return 0;
	return (int64_t)ceil((1.0 - b->tokens) * 1000.0 / b->rate);
}
