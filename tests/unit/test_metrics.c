/* Unit tests for metrics: histogram buckets and percentiles against a sorted
 * reference, windows and series, endpoint slots and their reuse. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* ---- buckets ---- */

Test(metrics_hist, buckets_tile_the_range_without_gaps)
{
	cr_assert_eq(metrics_hist_lower(0), 0);
	for (size_t i = 0; i + 1 < METRICS_HIST_N; i++)
		cr_assert_eq(metrics_hist_upper(i), metrics_hist_lower(i + 1), "bucket %zu", i);
	cr_assert_eq(metrics_hist_upper(METRICS_HIST_N - 1), METRICS_HIST_MAX_US);
	for (size_t i = METRICS_HIST_SUB; i < METRICS_HIST_N; i++) {
		uint64_t lo = metrics_hist_lower(i), hi = metrics_hist_upper(i);
		cr_assert(hi > lo);
		/* The width is at most 1/8 of the lower bound. */
		cr_assert_leq((hi - lo) * METRICS_HIST_SUB, lo, "bucket %zu [%lu, %lu)", i,
			      (unsigned long)lo, (unsigned long)hi);
	}
}

Test(metrics_hist, every_value_lands_in_its_bucket)
{
	static const uint64_t values[] = {0, 1, 7, 8, 9, 15, 16, 17, 100, 1000, 1023, 1024,
					  65535, 65536, 999999, 30000000, (UINT64_C(1) << 32) - 1};
	for (size_t k = 0; k < sizeof values / sizeof values[0]; k++) {
		size_t i = metrics_hist_index(values[k]);
		cr_assert_lt(i, METRICS_HIST_N);
		cr_assert_leq(metrics_hist_lower(i), values[k], "v=%lu", (unsigned long)values[k]);
		cr_assert_lt(values[k], metrics_hist_upper(i), "v=%lu", (unsigned long)values[k]);
	}
	/* Past the range: the last bucket. */
	cr_assert_eq(metrics_hist_index(METRICS_HIST_MAX_US), METRICS_HIST_N - 1);
	cr_assert_eq(metrics_hist_index(UINT64_MAX), METRICS_HIST_N - 1);
}

/* ---- percentiles against a sorted reference ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The reference q-quantile: the sample at rank ceil(q * n). */
static uint64_t ref_quantile(const uint64_t *sorted, size_t n, double q)
{
	size_t rank = (size_t)ceil(q * (double)n);
	if (rank == 0)
		rank = 1;
	return sorted[rank - 1];
}

enum dist { D_CONST, D_UNIFORM, D_EXP, D_BIMODAL, D_ONE, D_SMALL };

struct pct_case {
	const char *name;
	enum dist dist;
	size_t n;
	uint64_t scale;
};

static uint64_t draw(enum dist d, uint64_t scale, size_t i, unsigned *seed)
{
	double u = (double)rand_r(seed) / ((double)RAND_MAX + 1.0);
	switch (d) {
	case D_CONST: return scale;
	case D_UNIFORM: return (uint64_t)(u * (double)scale);
	case D_EXP: return (uint64_t)(-log(1.0 - u) * (double)scale);
	case D_BIMODAL: return i % 10 == 0 ? scale * 100 + (uint64_t)(u * scale) : (uint64_t)(u * scale);
	case D_ONE: return scale;
	case D_SMALL: return (uint64_t)(u * 8);
	}
	return 0;
}

static const struct pct_case pct_cases[] = {
	{"constant 5 ms", D_CONST, 1000, 5000},
	{"uniform to 100 ms", D_UNIFORM, 20000, 100000},
	{"exponential mean 8 ms", D_EXP, 50000, 8000},
	{"bimodal fast and slow", D_BIMODAL, 10000, 2000},
	{"one sample", D_ONE, 1, 12345},
	{"values under 8 us", D_SMALL, 500, 0},
	{"exponential mean 40 s", D_EXP, 5000, 40000000},
};

Test(metrics_hist, percentiles_match_a_sorted_reference)
{
	static const double qs[] = {0.5, 0.95, 0.99, 1.0};
	for (size_t c = 0; c < sizeof pct_cases / sizeof pct_cases[0]; c++) {
		const struct pct_case *pc = &pct_cases[c];
		uint64_t *v = malloc(pc->n * sizeof *v);
		struct metrics_hsnap *s = calloc(1, sizeof *s);
		unsigned seed = (unsigned)c + 1;
		double sum = 0;
		for (size_t i = 0; i < pc->n; i++) {
			v[i] = draw(pc->dist, pc->scale, i, &seed);
			metrics_hsnap_add(s, v[i]);
			sum += (double)v[i];
		}
		qsort(v, pc->n, sizeof *v, cmp_u64);
		cr_assert_eq(s->count, pc->n, "%s", pc->name);
		for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
			uint64_t want = ref_quantile(v, pc->n, qs[k]);
			double got = metrics_hsnap_quantile(s, qs[k]);
			/* Same bucket as the reference: off by at most its width. */
			size_t b = metrics_hist_index(want);
			double width = (double)(metrics_hist_upper(b) - metrics_hist_lower(b));
			cr_assert_leq(fabs(got - (double)want), width, "%s: q=%.2f got %.1f want %lu",
				      pc->name, qs[k], got, (unsigned long)want);
			cr_assert_leq(fabs(got - (double)want), (double)want / 8 + 1.0,
				      "%s: q=%.2f relative error", pc->name, qs[k]);
		}
		cr_assert_float_eq(metrics_hsnap_avg(s), sum / (double)pc->n, 1e-6, "%s", pc->name);
		free(v);
		free(s);
	}
}

Test(metrics_hist, empty_has_no_percentile_and_huge_values_clamp)
{
	struct metrics_hsnap *s = calloc(1, sizeof *s);
	cr_assert_eq(metrics_hsnap_quantile(s, 0.5), -1);
	cr_assert_eq(metrics_hsnap_avg(s), -1);
	/* Ten hours: past the last bucket. The percentile is capped at the
	 * range's end; the average stays exact. */
	uint64_t huge = UINT64_C(36000) * 1000000;
	metrics_hsnap_add(s, huge);
	metrics_hsnap_add(s, huge);
	double p99 = metrics_hsnap_quantile(s, 0.99);
	cr_assert_leq(p99, (double)METRICS_HIST_MAX_US);
	cr_assert_geq(p99, (double)metrics_hist_lower(METRICS_HIST_N - 1));
	cr_assert_float_eq(metrics_hsnap_avg(s), (double)huge, 1e-3);
	free(s);
}

Test(metrics_hist, outcomes_follow_the_status_class_and_failure)
{
	static const struct {
		enum failure_kind k;
		long status;
		const char *name;
	} cases[] = {
		{FAILURE_NONE, 200, "2xx"}, {FAILURE_NONE, 204, "2xx"},
		{FAILURE_HTTP_STATUS, 301, "3xx"}, {FAILURE_HTTP_STATUS, 410, "4xx"},
		{FAILURE_HTTP_STATUS, 503, "5xx"}, {FAILURE_HTTP_STATUS, 101, "other"},
		{FAILURE_TIMEOUT, 0, "timeout"}, {FAILURE_CONNECTION_REFUSED, 0, "connection_refused"},
		{FAILURE_DNS, 0, "dns"}, {FAILURE_TLS, 0, "tls_error"},
		{FAILURE_RESPONSE_TOO_LARGE, 0, "response_too_large"},
		{FAILURE_CONNECTION, 0, "connection"}, {FAILURE_BLOCKED, 0, "blocked_destination"},
		{FAILURE_INTERNAL, 0, "internal"}, {FAILURE_INVALID_RESPONSE, 200, "invalid_response"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_assert_str_eq(metrics_outcome_name(metrics_outcome_of(cases[i].k, cases[i].status)),
				 cases[i].name, "case %zu", i);
}

/* ---- windows ---- */

#define MIN_MS 60000LL
/* A fixed wall clock: the start of a quarter hour, plus a little. */
#define T0 (1800000000000LL - 1800000000000LL % (15 * MIN_MS) + 5000)

static struct metrics_view *read_view(struct metrics *m, const struct metrics_ep *ep,
				      enum metrics_window w, int64_t now, struct metrics_point *pts)
{
	struct metrics_view *v = calloc(1, sizeof *v);
	int64_t from;
	metrics_read(m, ep, w, now, v, pts, &from);
	int64_t step = metrics_window_step(w) * 1000LL;
	cr_assert_eq(from, (now / step - (int64_t)metrics_window_points(w) + 1) * step);
	return v;
}

Test(metrics_window, windows_sum_the_buckets_that_cover_them)
{
	struct metrics *m = metrics_new(10);
	cr_assert_not_null(m);
	/* One attempt a minute for 90 minutes, a 5xx every third. */
	for (int i = 0; i < 90; i++) {
		int64_t t = T0 + i * MIN_MS;
		enum metrics_outcome o = i % 3 == 0 ? METRICS_5XX : METRICS_2XX;
		metrics_attempt(m, NULL, o, 1000 + (uint64_t)i, t);
		if (o == METRICS_2XX)
			metrics_delivered(m, NULL, 5000, t);
		metrics_ingested(m, 1, 2, t);
	}
	int64_t now = T0 + 89 * MIN_MS;
	static const struct {
		enum metrics_window w;
		uint64_t attempts;
	} cases[] = {{METRICS_5M, 5}, {METRICS_1H, 60}, {METRICS_24H, 90}};
	for (size_t c = 0; c < 3; c++) {
		size_t np = metrics_window_points(cases[c].w);
		struct metrics_point *pts = calloc(np, sizeof *pts);
		struct metrics_view *v = read_view(m, NULL, cases[c].w, now, pts);
		cr_assert_eq(v->attempts, cases[c].attempts, "window %zu", c);
		cr_assert_eq(v->events, cases[c].attempts, "window %zu", c);
		cr_assert_eq(v->created, 2 * cases[c].attempts, "window %zu", c);
		cr_assert_eq(v->outcome[METRICS_2XX] + v->outcome[METRICS_5XX], v->attempts);
		cr_assert_eq(v->delivered, v->outcome[METRICS_2XX]);
		cr_assert_eq(v->attempt_us.count, v->attempts);
		uint64_t sum = 0;
		for (size_t j = 0; j < np; j++) {
			sum += pts[j].attempts;
			cr_assert_eq(pts[j].succeeded + pts[j].failed, pts[j].attempts);
			if (j > 0)
				cr_assert_gt(pts[j].t, pts[j - 1].t);
		}
		cr_assert_eq(sum, v->attempts, "window %zu", c);
		free(v);
		free(pts);
	}
	/* Two hours later the one-hour window is empty, the day is not. */
	struct metrics_view *v = read_view(m, NULL, METRICS_1H, now + 120 * MIN_MS, NULL);
	cr_assert_eq(v->attempts, 0);
	cr_assert_eq(metrics_hsnap_quantile(&v->attempt_us, 0.5), -1);
	free(v);
	v = read_view(m, NULL, METRICS_24H, now + 120 * MIN_MS, NULL);
	cr_assert_eq(v->attempts, 90);
	free(v);
	metrics_free(m);
}

Test(metrics_window, a_reused_bucket_forgets_its_old_minute)
{
	struct metrics *m = metrics_new(1);
	metrics_attempt(m, NULL, METRICS_2XX, 10, T0);
	/* 60 minutes later the same slot of the minute ring is reused. */
	metrics_attempt(m, NULL, METRICS_4XX, 10, T0 + 60 * MIN_MS);
	struct metrics_view *v = read_view(m, NULL, METRICS_5M, T0 + 60 * MIN_MS, NULL);
	cr_assert_eq(v->attempts, 1);
	cr_assert_eq(v->outcome[METRICS_4XX], 1);
	free(v);
	metrics_free(m);
}

/* ---- endpoint slots ---- */

Test(metrics_ep, the_first_n_endpoints_get_a_series_the_rest_share_other)
{
	struct metrics *m = metrics_new(2);
	struct metrics_ep *ca = NULL, *cb = NULL, *cc = NULL;
	uint32_t ga = 0, gb = 0, gc = 0;
	struct metrics_ep *a = metrics_ep_resolve(m, "ep_a", &ca, &ga);
	struct metrics_ep *b = metrics_ep_resolve(m, "ep_b", &cb, &gb);
	struct metrics_ep *c = metrics_ep_resolve(m, "ep_c", &cc, &gc);
	cr_assert(a != b && b != c && a != c);
	cr_assert_eq(metrics_ep_find(m, "ep_a"), a);
	cr_assert_eq(metrics_ep_find(m, "ep_b"), b);
	cr_assert_null(metrics_ep_find(m, "ep_c"), "past the cap: no series of its own");
	/* The memo answers without the table. */
	cr_assert_eq(metrics_ep_resolve(m, "ep_a", &ca, &ga), a);
	metrics_attempt(m, a, METRICS_2XX, 100, T0);
	metrics_attempt(m, c, METRICS_5XX, 100, T0);
	metrics_ep_created(m, a, 3, T0);
	struct metrics_view *v = read_view(m, a, METRICS_5M, T0, NULL);
	cr_assert_eq(v->attempts, 1);
	cr_assert_eq(v->created, 3);
	free(v);
	v = read_view(m, c, METRICS_5M, T0, NULL);
	cr_assert_eq(v->outcome[METRICS_5XX], 1);
	free(v);
	v = read_view(m, NULL, METRICS_5M, T0, NULL);
	cr_assert_eq(v->attempts, 2, "the overall series counts every endpoint");
	free(v);
	metrics_free(m);
}

struct each_seen {
	char ids[8][ID_MAX];
	uint64_t o2xx[8];
	size_t n;
};

static void each_cb(void *arg, const char *id, const uint64_t *outcomes)
{
	struct each_seen *s = arg;
	if (s->n < 8) {
		snprintf(s->ids[s->n], ID_MAX, "%s", id);
		s->o2xx[s->n++] = outcomes[METRICS_2XX];
	}
}

Test(metrics_ep, a_deleted_endpoints_series_is_reused_zeroed)
{
	struct metrics *m = metrics_new(1);
	struct metrics_ep *ca = NULL, *cb = NULL;
	uint32_t ga = 0, gb = 0;
	struct metrics_ep *a = metrics_ep_resolve(m, "ep_a", &ca, &ga);
	metrics_attempt(m, a, METRICS_2XX, 100, T0);
	metrics_ep_forget(m, "ep_a");
	cr_assert_null(metrics_ep_find(m, "ep_a"));
	/* A late attempt of the deleted endpoint counts as other. */
	struct metrics_ep *late = metrics_ep_resolve(m, "ep_a", &ca, &ga);
	cr_assert_neq(late, a);
	/* The next new endpoint gets the freed slot, zeroed: no new memory. */
	struct metrics_ep *b = metrics_ep_resolve(m, "ep_b", &cb, &gb);
	cr_assert_eq(b, a, "the slot is reused");
	struct metrics_view *v = read_view(m, b, METRICS_5M, T0, NULL);
	cr_assert_eq(v->attempts, 0, "the reused series starts from zero");
	free(v);
	struct each_seen seen = {0};
	metrics_ep_each(m, each_cb, &seen);
	cr_assert_eq(seen.n, 2);
	cr_assert_str_eq(seen.ids[0], "ep_b");
	cr_assert_eq(seen.o2xx[0], 0);
	cr_assert_str_eq(seen.ids[1], "other");
	metrics_free(m);
}

Test(metrics_ep, off_means_null_and_nothing_fed)
{
	struct metrics_ep *c = NULL;
	uint32_t g = 0;
	cr_assert_null(metrics_ep_resolve(NULL, "ep_a", &c, &g));
	metrics_attempt(NULL, NULL, METRICS_2XX, 1, T0);
	metrics_ingested(NULL, 1, 1, T0);
	metrics_api_request(NULL, 0, 200, 1);
}

/* ---- totals ---- */

Test(metrics_totals, exposition_histograms_count_values_up_to_each_bound)
{
	struct metrics *m = metrics_new(0);
	static const uint64_t ops[] = {1, 1, 2, 3, 4, 5, 4096, 40000};
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
		metrics_commit_group(m, ops[i], 64);
	metrics_api_request(m, 3, 202, 16);
	metrics_api_request(m, 3, 202, 17);
	metrics_api_request(m, 3, 418, 17);
	struct metrics_totals t;
	metrics_totals(m, &t);
	cr_assert_eq(t.commit_ops.count, 8);
	/* Cumulative by bound: <=1: 2, <=2: 3, <=4: 5, <=8: 6. */
	uint64_t cum = 0;
	static const uint64_t want[] = {2, 3, 5, 6};
	for (size_t i = 0; i < 4; i++) {
		cum += t.commit_ops.n[i];
		cr_assert_eq(metrics_phist_bound(false, i), UINT64_C(1) << i);
		cr_assert_eq(cum, want[i], "le=%zu", i);
	}
	cr_assert_eq(t.commit_ops.n[METRICS_PHIST_N], 1, "40000 is above every bound");
	cr_assert_eq(t.commit_us.n[1], 8, "64 us: the second bound, 64 us, holds it");
	uint64_t codes[METRICS_API_CODES];
	struct metrics_phist_snap dur;
	cr_assert(metrics_api_route(m, 3, codes, &dur));
	cr_assert_not(metrics_api_route(m, 4, codes, &dur));
	metrics_api_route(m, 3, codes, &dur);
	cr_assert_eq(codes[2], 2, "202");
	cr_assert_eq(codes[METRICS_API_CODES - 1], 1, "418 counts as another status");
	cr_assert_eq(dur.n[0], 1, "16 us <= 16 us");
	cr_assert_eq(dur.n[1], 2);
	metrics_free(m);
}
