/* dispatch_policy: the dispatcher's delivery decisions as pure functions
 * over plain values (docs/architecture.md#where-each-policy-lives): what an
 * attempt's outcome does to its delivery and endpoint (docs/receiving.md),
 * and whether an endpoint may start a request now (docs/api.md#rate-limits-
 * and-isolation). No clock, no locks, no dispatcher state: the caller
 * passes the time and applies the decision. Table-tested in
 * tests/unit/test_dispatch_policy.c. */
#ifndef HOOKD_DISPATCH_POLICY_H
#define HOOKD_DISPATCH_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "breaker.h"
#include "failure.h"
#include "ratelimit.h"
#include "retry.h"

#define DPOL_RETRY_AFTER_MIN_MS 1000 /* a Retry-After pause lasts at least this */
#define DPOL_RETRY_AFTER_DEFAULT_MAX_MS (3600 * 1000) /* --max-retry-after's default */
#define DPOL_DEFAULT_MAX_IN_FLIGHT 10 /* an endpoint's max_in_flight when unset */

/* The end of the pause a Retry-After value v asks for, as wall ms in *until:
 * delta-seconds or an HTTP-date, surrounding blanks allowed, bounded to
 * [now + DPOL_RETRY_AFTER_MIN_MS, now + max_ms]. Returns false (and leaves
 * *until alone) if v is neither. */
bool dpol_retry_after_until(const char *v, int64_t now, int64_t max_ms, int64_t *until);

/* ---- the outcome of an attempt ---- */

enum dpol_fate {
	DPOL_SUCCEEDED,  /* the delivery is done */
	DPOL_RETRY,      /* pending again at `at`, its schedule position moved on */
	DPOL_DEAD,       /* no attempt left on the schedule */
	/* 429/503 with a valid Retry-After: the endpoint pauses until `at`; the
	 * attempt is recorded, the schedule position stays, the delivery is
	 * pending again at `at`. */
	DPOL_PAUSE,
	/* 410 Gone: the endpoint is disabled; the attempt is recorded, the
	 * schedule position stays, the delivery is pending at `at` (now) and
	 * waits as for any disabled endpoint. */
	DPOL_DISABLE,
};

struct dpol_outcome_in {
	enum failure_kind kind;
	long status;                /* HTTP status, 0 if none */
	const char *retry_after;    /* the response's Retry-After value, NULL if absent */
	int furthest_index;         /* the furthest schedule position among the attempt's deliveries */
	const struct retry_schedule *schedule;
	int64_t now;                /* wall ms */
	double jitter;              /* in [-1, 1], for retry_next_delay */
	int64_t max_retry_after_ms; /* --max-retry-after; <= 0: the default */
};

struct dpol_outcome {
	enum dpol_fate fate;
	int64_t at;          /* RETRY, PAUSE, DISABLE: when the delivery is next due (wall ms) */
	int64_t delay;       /* at - now for those; -1 for DEAD and SUCCEEDED */
	/* The attempt spends a schedule position: each delivery's position
	 * moves on by one (RETRY and DEAD). */
	bool spent;
	int next_index;      /* RETRY: furthest_index + 1 */
	/* The circuit breaker counts it: the receiver's answers and the
	 * network's failures, not hookd's own (blocked, internal) nor a
	 * receiver's 410 or Retry-After. */
	bool breaker_counts;
};

/* Decides what the attempt described by in does. */
void dpol_outcome(const struct dpol_outcome_in *in, struct dpol_outcome *out);

/* ---- admission: may an endpoint start a request now? ---- */

enum dpol_admit {
	DPOL_SEND,  /* start one now (a batch endpoint: a due retry or a new group) */
	DPOL_WAIT,  /* nothing before wait_ms from now: sleep until then */
	DPOL_SKIP,  /* not now; something else brings the endpoint back */
};

enum dpol_why {
	DPOL_OK,
	DPOL_EMPTY,            /* SKIP: nothing ready */
	DPOL_GONE,             /* SKIP: the endpoint was deleted (drop its ready deliveries) */
	DPOL_DISABLED,         /* SKIP: disabled or being disabled (drop them; the store keeps them) */
	DPOL_PAUSED,           /* WAIT: a Retry-After pause */
	DPOL_BATCH_FILLING,    /* WAIT (or SKIP with nothing to wait for): no group ready */
	DPOL_CIRCUIT_OPEN,     /* WAIT: until the probe time */
	DPOL_CIRCUIT_PROBING,  /* SKIP: half open, the probe's finish brings it back */
	DPOL_AT_CAP,           /* SKIP: max_in_flight reached, a finish brings it back */
	DPOL_RATE_LIMITED,     /* WAIT: until the bucket has a token */
};

struct dpol_admit_in {
	bool known;                 /* the endpoint exists */
	bool enabled;
	bool disabling;             /* a 410 is disabling it */
	int64_t paused_until;       /* wall ms, 0 = not paused */
	size_t queued;              /* ready deliveries */
	int64_t oldest_at;          /* the oldest ready one's next_attempt_at (if queued) */
	bool has_retry;             /* failed batches wait for their retry */
	int64_t retry_due_at;       /* the earliest one's due time (if has_retry) */
	int batch_max;              /* batch.max_events; <= 0: no batching */
	int64_t batch_max_wait_ms;
	int in_flight;
	int max_in_flight;          /* <= 0: DPOL_DEFAULT_MAX_IN_FLIGHT */
	double rate_limit;          /* requests per second; <= 0: none */
	int share;                  /* fair share of the global cap; <= 0: none */
	int64_t now;                /* wall ms: pause, batches, breaker */
	int64_t mono;               /* monotonic ms: the bucket */
};

struct dpol_admission {
	enum dpol_admit admit;
	enum dpol_why why;
	int64_t wait_ms;     /* WAIT: >= 1 */
	bool retry_batch;    /* SEND on a batch endpoint: the due retry, else a new group */
	/* The endpoint is no longer batched but failed batches wait: break them
	 * up (whatever the admission says). */
	bool unbatch;
	int cap;             /* the endpoint's in-flight cap (its fair share if lower) */
};

/* Decides whether the endpoint described by in may start a request now.
 * br (the endpoint's circuit, wall ms) and bk (its token bucket, monotonic
 * ms) are updated as the decision uses them: an open circuit past its probe
 * time turns half open, a bucket whose rate changed starts again full, a
 * SEND takes a token. The checks run in this order: nothing ready, gone or
 * disabled, paused, batch readiness, circuit, in-flight cap, rate limit. */
void dpol_admit(const struct dpol_admit_in *in, struct breaker *br, struct bucket *bk,
		struct dpol_admission *out);

#endif
