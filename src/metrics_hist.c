/* metrics_hist: the histogram arithmetic of metrics.h (pure): log-linear
 * bucket indexes and bounds, percentiles interpolated inside a bucket, the
 * exposition's bucket bounds, and the outcome names. */
#include "metrics.h"

#include <stddef.h>

size_t metrics_hist_index(uint64_t v)
{
	if (v < METRICS_HIST_SUB)
		return (size_t)v;
	if (v >= METRICS_HIST_MAX_US)
		return METRICS_HIST_N - 1;
	unsigned k = 63u - (unsigned)__builtin_clzll(v); /* 3 .. 31 */
	size_t sub = (size_t)((v >> (k - 3)) & (METRICS_HIST_SUB - 1));
	return METRICS_HIST_SUB + (size_t)(k - 3) * METRICS_HIST_SUB + sub;
}

uint64_t metrics_hist_lower(size_t i)
{
	if (i < METRICS_HIST_SUB)
		return i;
	size_t k = (i - METRICS_HIST_SUB) / METRICS_HIST_SUB + 3;
	uint64_t sub = (i - METRICS_HIST_SUB) % METRICS_HIST_SUB;
	return (METRICS_HIST_SUB + sub) << (k - 3);
}

uint64_t metrics_hist_upper(size_t i)
{
	return metrics_hist_lower(i + 1);
}

void metrics_hsnap_add(struct metrics_hsnap *s, uint64_t v)
{
	s->n[metrics_hist_index(v)]++;
	s->count++;
	s->sum_us += v;
}

double metrics_hsnap_quantile(const struct metrics_hsnap *s, double q)
{
	if (s->count == 0)
		return -1;
	/* The rank of the wanted sample, 1-based: ceil(q * count). */
	double want = q * (double)s->count;
	uint64_t rank = (uint64_t)want;
	if ((double)rank < want || rank == 0)
		rank++;
	if (rank > s->count)
		rank = s->count;
	uint64_t before = 0;
	for (size_t i = 0; i < METRICS_HIST_N; i++) {
		if (s->n[i] == 0 || before + s->n[i] < rank) {
			before += s->n[i];
			continue;
		}
		/* The bucket's samples, taken as spread evenly over it: the
		 * j-th of c sits at lower + (j - 0.5) / c of its width. */
		double lo = (double)metrics_hist_lower(i), hi = (double)metrics_hist_upper(i);
		double frac = ((double)(rank - before) - 0.5) / (double)s->n[i];
		return lo + frac * (hi - lo);
	}
	return (double)METRICS_HIST_MAX_US;
}

double metrics_hsnap_avg(const struct metrics_hsnap *s)
{
	if (s->count == 0)
		return -1;
	return (double)s->sum_us / (double)s->count;
}

uint64_t metrics_phist_bound(bool us, size_t i)
{
	/* us: 2^(4+2i), 16 us .. 2^34 us (about 4.8 h); plain: 2^i, 1 .. 32768. */
	return us ? UINT64_C(1) << (4 + 2 * i) : UINT64_C(1) << i;
}

const char *metrics_outcome_name(enum metrics_outcome o)
{
	static const char *const names[METRICS_N_OUTCOMES] = {
		"2xx", "3xx", "4xx", "5xx", "timeout", "connection_refused", "dns",
		"tls_error", "connection", "response_too_large", "blocked_destination",
		"internal", "invalid_response", "other",
	};
	return (unsigned)o < METRICS_N_OUTCOMES ? names[o] : "other";
}

enum metrics_outcome metrics_outcome_of(enum failure_kind kind, long status)
{
	switch (kind) {
	case FAILURE_NONE:
		return METRICS_2XX;
	case FAILURE_HTTP_STATUS:
		switch (status / 100) {
		case 2: return METRICS_2XX;
		case 3: return METRICS_3XX;
		case 4: return METRICS_4XX;
		case 5: return METRICS_5XX;
		default: return METRICS_OTHER;
		}
	case FAILURE_TIMEOUT: return METRICS_TIMEOUT;
	case FAILURE_CONNECTION_REFUSED: return METRICS_CONNECTION_REFUSED;
	case FAILURE_DNS: return METRICS_DNS;
	case FAILURE_TLS: return METRICS_TLS_ERROR;
	case FAILURE_RESPONSE_TOO_LARGE: return METRICS_RESPONSE_TOO_LARGE;
	case FAILURE_CONNECTION: return METRICS_CONNECTION;
	case FAILURE_BLOCKED: return METRICS_BLOCKED;
	case FAILURE_INTERNAL: return METRICS_INTERNAL;
	case FAILURE_INVALID_RESPONSE: return METRICS_INVALID_RESPONSE;
	}
	return METRICS_OTHER;
}
