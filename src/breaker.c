/* breaker: see breaker.h. Kept pure so every transition is table-tested. */
#include "breaker.h"

void breaker_init(struct breaker *b, int threshold)
{
	b->state = BREAKER_CLOSED;
	b->threshold = threshold;
	b->failures = 0;
	b->cooldown_ms = BREAKER_COOLDOWN_MIN_MS;
	b->next_probe_at = 0;
}

bool breaker_allow(struct breaker *b, int64_t now_ms)
{
	switch (b->state) {
	case BREAKER_CLOSED:
		return true;
	case BREAKER_OPEN:
		if (now_ms < b->next_probe_at)
			return false;
		b->state = BREAKER_HALF_OPEN;
		return true;
	case BREAKER_HALF_OPEN:
		return false;
	}
	return false;
}

static void trip(struct breaker *b, int64_t now_ms)
{
	b->state = BREAKER_OPEN;
	b->next_probe_at = now_ms + b->cooldown_ms;
	b->cooldown_ms *= 2;
	if (b->cooldown_ms > BREAKER_COOLDOWN_MAX_MS)
		b->cooldown_ms = BREAKER_COOLDOWN_MAX_MS;
}

void breaker_record(struct breaker *b, bool success, int64_t now_ms)
{
	if (success) {
		b->state = BREAKER_CLOSED;
		b->failures = 0;
		b->cooldown_ms = BREAKER_COOLDOWN_MIN_MS;
		b->next_probe_at = 0;
		return;
	}
	b->failures++;
	if (b->state == BREAKER_HALF_OPEN) {
		trip(b, now_ms); /* the probe failed */
	} else if (b->state == BREAKER_CLOSED && b->threshold > 0 && b->failures >= b->threshold) {
		trip(b, now_ms);
	}
	/* A failure reported while open comes from a request that started
	 * before the circuit opened: it changes nothing. */
}

const char *breaker_state_name(enum breaker_state s)
{
	return s == BREAKER_OPEN ? "open" : s == BREAKER_HALF_OPEN ? "half_open" : "closed";
}
