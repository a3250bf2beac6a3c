/* breaker: an endpoint's circuit breaker as a pure state machine.
 * closed: requests flow; `threshold` consecutive failed attempts open it.
 * open: nothing is sent (due deliveries wait without spending attempts)
 *   until next_probe_at; then it turns half_open and lets one probe out.
 * half_open: one probe in flight; success closes the circuit, failure opens
 *   it again with the cooldown doubled (30 s, 60 s, … at most 10 min). */
#ifndef HOOKD_BREAKER_H
#define HOOKD_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#define BREAKER_COOLDOWN_MIN_MS (30 * 1000)
#define BREAKER_COOLDOWN_MAX_MS (10 * 60 * 1000)

enum breaker_state { BREAKER_CLOSED = 0, BREAKER_OPEN, BREAKER_HALF_OPEN };

struct breaker {
	enum breaker_state state;
	int threshold;          /* consecutive failures that open it; 0 = never */
	int failures;           /* consecutive failed attempts */
	int64_t cooldown_ms;    /* the next open period */
	int64_t next_probe_at;  /* when open: wall-clock ms of the next probe */
};

void breaker_init(struct breaker *b, int threshold);

/* May a request start now? In open state past next_probe_at this moves to
 * half_open and returns true once (the probe); otherwise open and half_open
 * return false. */
bool breaker_allow(struct breaker *b, int64_t now_ms);

/* Records a finished attempt. */
void breaker_record(struct breaker *b, bool success, int64_t now_ms);

/* "closed", "open", "half_open". */
const char *breaker_state_name(enum breaker_state s);

#endif
