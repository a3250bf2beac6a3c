/* dispatch_clock: the dispatcher's clocks, wall and monotonic, in one place
 * so that tests can set them (docs/architecture.md#where-each-policy-lives).
 * The delivery decisions (dispatch_policy.h) take the time as an argument;
 * the dispatcher reads it here. */
#ifndef HOOKD_DISPATCH_CLOCK_H
#define HOOKD_DISPATCH_CLOCK_H

#include <stdint.h>

/* Wall-clock ms since the epoch: now_ms(), or the time a test set. Any
 * thread. */
int64_t dispatch_clock_now_ms(void);

/* Monotonic ms: mono_ms(), or the time a test set. Any thread. */
int64_t dispatch_clock_mono_ms(void);

/* For tests: from now on both clocks read wall and mono (each > 0), until
 * dispatch_clock_reset(). Not for the server: nothing calls it there. */
void dispatch_clock_set(int64_t wall, int64_t mono);

/* Back to the real clocks. */
void dispatch_clock_reset(void);

#endif
