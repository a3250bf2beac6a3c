/* ratelimit: a token bucket per endpoint (requests per second). Pure: the
 * caller passes the time, so it is table-tested without clocks. */
#ifndef HOOKD_RATELIMIT_H
#define HOOKD_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct bucket {
	double rate;       /* tokens added per second; 0 = unlimited */
	double burst;      /* most tokens held: one second's worth, at least 1 */
	double tokens;
	int64_t last_ms;   /* when tokens was last brought up to date */
};

/* A full bucket for `rate` requests per second (0 = no limit). */
void bucket_init(struct bucket *b, double rate, int64_t now_ms);

/* Takes one token if there is one. Returns true when the request may go. */
bool bucket_take(struct bucket *b, int64_t now_ms);

/* Milliseconds until a token is available (0 when one is now). */
int64_t bucket_wait_ms(struct bucket *b, int64_t now_ms);

#endif
