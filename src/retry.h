/* retry: the retry schedule as a pure function
 * (docs/operations.md#retries-and-the-dead-letter-queue). */
#ifndef HOOKD_RETRY_H
#define HOOKD_RETRY_H

#include <stddef.h>
#include <stdint.h>

/* The schedule: schedule[0] is the delay before the first attempt (0 = at
 * once), schedule[i] the delay between attempt i and attempt i+1. So the
 * seed's 0,1m,5m,30m,2h is five attempts. */
struct retry_schedule {
	const int64_t *delays_ms;
	size_t len;
};

/* Delay in ms before the next attempt after `attempts_made` attempts of the
 * current round have failed (1 = the first attempt failed), with jitter:
 * `jitter` in [-1, 1] scales a ±10 % spread (0 = exact). Returns -1 when no
 * attempt is left (the delivery is dead). Never returns less than 0. */
int64_t retry_next_delay(const struct retry_schedule *s, int attempts_made, double jitter);

/* The dispatcher's pause after its attempt outcomes could not be written to
 * the store (a full disk, a failing write; docs/operations.md#faults-and-what-hookd-does): no new request starts
 * until it ends, then the unwritten outcomes are written again. `failures`
 * counts the consecutive failed tries (1 = the first): 100 ms, doubling on
 * each, at most 30 s. 0 failures: 0. */
#define RETRY_STORE_BACKOFF_MIN_MS 100
#define RETRY_STORE_BACKOFF_MAX_MS 30000
int64_t retry_store_backoff_ms(unsigned failures);

#endif
