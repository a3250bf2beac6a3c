/* dispatch_policy: see dispatch_policy.h. Pure: no clock, no globals. */
#include "dispatch_policy.h"

#include <ctype.h>
#include <curl/curl.h>
#include <time.h>

bool dpol_retry_after_until(const char *v, int64_t now, int64_t max_ms, int64_t *until)
{
	while (*v == ' ' || *v == '\t')
		v++;
	int64_t wait;
	if (isdigit((unsigned char)*v)) {
		int64_t secs = 0;
		const char *c = v;
		for (; isdigit((unsigned char)*c); c++)
			if (secs < INT64_MAX / 10000) /* saturate: the bound cuts it anyway */
				secs = secs * 10 + (*c - '0');
		while (*c == ' ' || *c == '\t')
			c++;
		if (*c != '\0')
			return false;
		wait = secs * 1000;
	} else {
		time_t t = curl_getdate(v, NULL);
		if (t == (time_t)-1)
			return false;
		wait = (int64_t)t * 1000 - now;
	}
	if (wait < DPOL_RETRY_AFTER_MIN_MS)
		wait = DPOL_RETRY_AFTER_MIN_MS;
	if (wait > max_ms)
		wait = max_ms;
	*until = now + wait;
	return true;
}

/* The receiver's signals that cost no attempt (docs/receiving.md): 410
 * disables, 429/503 with a valid Retry-After pauses. True if in is one
 * (out filled). */
static bool receiver_signal(const struct dpol_outcome_in *in, struct dpol_outcome *out)
{
	if (in->kind != FAILURE_HTTP_STATUS)
		return false;
	if (in->status == 410) {
		out->fate = DPOL_DISABLE;
		out->at = in->now;
		out->delay = 0;
		return true;
	}
	if ((in->status != 429 && in->status != 503) || in->retry_after == NULL)
		return false;
	int64_t max = in->max_retry_after_ms > 0 ? in->max_retry_after_ms
						 : DPOL_RETRY_AFTER_DEFAULT_MAX_MS;
	int64_t until;
	if (!dpol_retry_after_until(in->retry_after, in->now, max, &until))
		return false; /* an unreadable value: an ordinary failure */
	out->fate = DPOL_PAUSE;
	out->at = until;
	out->delay = until - in->now;
	return true;
}

void dpol_outcome(const struct dpol_outcome_in *in, struct dpol_outcome *out)
{
	*out = (struct dpol_outcome){.fate = DPOL_SUCCEEDED,
				     .delay = -1,
				     .next_index = in->furthest_index};
	if (in->kind == FAILURE_NONE) {
		out->breaker_counts = true;
		return;
	}
	if (receiver_signal(in, out))
		return;
	out->breaker_counts = in->kind != FAILURE_BLOCKED && in->kind != FAILURE_INTERNAL;
	out->spent = true;
	out->next_index = in->furthest_index + 1;
	int64_t delay = retry_next_delay(in->schedule, out->next_index, in->jitter);
	if (delay < 0) {
		out->fate = DPOL_DEAD;
		return;
	}
	out->fate = DPOL_RETRY;
	out->delay = delay;
	out->at = delay > INT64_MAX - in->now ? INT64_MAX : in->now + delay;
}

static void decide(struct dpol_admission *out, enum dpol_admit a, enum dpol_why why,
		   int64_t wait_ms)
{
	out->admit = a;
	out->why = why;
	out->wait_ms = a == DPOL_WAIT ? (wait_ms > 0 ? wait_ms : 1) : 0;
}

/* Batching (docs/api.md#batches): a group goes when it is full, when its
 * oldest has waited batch_max_wait_ms, or when a failed batch's retry is
 * due. True if the endpoint may go on to the next checks (out->retry_batch
 * says which); false with out decided. An unbatched endpoint goes on if it
 * has ready deliveries. */
static bool batch_ready(const struct dpol_admit_in *in, struct dpol_admission *out)
{
	if (in->batch_max <= 0) {
		out->unbatch = in->has_retry;
		if (in->queued == 0) {
			decide(out, DPOL_SKIP, DPOL_EMPTY, 0);
			return false;
		}
		return true;
	}
	if (in->has_retry && in->retry_due_at <= in->now) {
		out->retry_batch = true;
		return true;
	}
	int64_t wake = in->has_retry ? in->retry_due_at : INT64_MAX;
	if (in->queued > 0) {
		int64_t ready_at = in->oldest_at + in->batch_max_wait_ms;
		if (in->queued >= (size_t)in->batch_max || in->now >= ready_at)
			return true;
		if (ready_at < wake)
			wake = ready_at;
	}
	if (wake == INT64_MAX)
		decide(out, DPOL_SKIP, DPOL_BATCH_FILLING, 0);
	else
		decide(out, DPOL_WAIT, DPOL_BATCH_FILLING, wake - in->now);
	return false;
}

/* The checks up to the circuit, in order; false with out decided when one
 * says no. */
static bool admit_endpoint(const struct dpol_admit_in *in, struct dpol_admission *out)
{
	if (in->queued == 0 && !in->has_retry)
		decide(out, DPOL_SKIP, DPOL_EMPTY, 0);
	else if (!in->known)
		decide(out, DPOL_SKIP, DPOL_GONE, 0);
	else if (!in->enabled || in->disabling)
		decide(out, DPOL_SKIP, DPOL_DISABLED, 0);
	else if (in->paused_until > in->now)
		decide(out, DPOL_WAIT, DPOL_PAUSED, in->paused_until - in->now);
	else
		return batch_ready(in, out);
	return false;
}

void dpol_admit(const struct dpol_admit_in *in, struct breaker *br, struct bucket *bk,
		struct dpol_admission *out)
{
	*out = (struct dpol_admission){.admit = DPOL_SEND, .why = DPOL_OK};
	out->cap = in->max_in_flight > 0 ? in->max_in_flight : DPOL_DEFAULT_MAX_IN_FLIGHT;
	if (in->share > 0 && in->share < out->cap)
		out->cap = in->share;
	if (!admit_endpoint(in, out))
		return;
	if (!breaker_allow(br, in->now)) {
		if (br->state == BREAKER_OPEN)
			decide(out, DPOL_WAIT, DPOL_CIRCUIT_OPEN, br->next_probe_at - in->now);
		else
			decide(out, DPOL_SKIP, DPOL_CIRCUIT_PROBING, 0);
		return;
	}
	if (in->in_flight >= out->cap) {
		decide(out, DPOL_SKIP, DPOL_AT_CAP, 0);
		return;
	}
	double rate = in->rate_limit > 0 ? in->rate_limit : 0;
	if (bk->rate != rate)
		bucket_init(bk, rate, in->mono);
	if (!bucket_take(bk, in->mono))
		decide(out, DPOL_WAIT, DPOL_RATE_LIMITED, bucket_wait_ms(bk, in->mono));
}
