/* metrics: hookd's in-memory health figures (docs/operations.md#monitoring),
 * read by GET /v1/stats (api_stats.c) and GET /metrics (metrics_prom.c).
 *
 * Every figure has one writing thread, so the hot path takes no lock and
 * does no read-modify-write: the dispatcher thread feeds attempts, finished
 * deliveries and per-endpoint figures; the commit thread feeds ingests and
 * group commits; API threads (several) add to their request counters with
 * atomic fetch_add. Readers on API threads load with relaxed atomics and
 * may see a figure one update old, never a torn one.
 *
 * Windows: each series keeps a ring of 60 one-minute buckets and one of 96
 * fifteen-minute buckets; a bucket is tagged with the minute (or quarter
 * hour) it counts and is zeroed by its writer when it is reused. Each bucket
 * holds the counters and two log-linear latency histograms (metrics_hist).
 *
 * Endpoints: the first max_endpoints endpoints seen get a series of their
 * own; the rest share the "other" series. A deleted endpoint's series is
 * given to the next new endpoint (zeroed first). Everything starts at zero
 * when the process starts. */
#ifndef HOOKD_METRICS_H
#define HOOKD_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "failure.h"
#include "util.h"

/* ---- histograms (pure; metrics.c) ----
 * Log-linear buckets over microseconds: values 0..7 have a bucket each;
 * from 8 on, each power of two is cut into METRICS_HIST_SUB equal buckets,
 * up to 2^32 us (about 71.6 minutes). Larger values count in the last
 * bucket. A bucket's width is at most 1/8 of its lower bound, which bounds
 * the error of a percentile read from it. */
#define METRICS_HIST_SUB 8
#define METRICS_HIST_N 240
#define METRICS_HIST_MAX_US (UINT64_C(1) << 32)

/* The bucket of value v (us). */
size_t metrics_hist_index(uint64_t v);
/* The bucket's bounds: values in [lower, upper). */
uint64_t metrics_hist_lower(size_t i);
uint64_t metrics_hist_upper(size_t i);

/* A histogram summed for reading (plain numbers, one thread). */
struct metrics_hsnap {
	uint64_t n[METRICS_HIST_N];
	uint64_t count;
	uint64_t sum_us;
};

/* Adds one value (us) to s. */
void metrics_hsnap_add(struct metrics_hsnap *s, uint64_t v);
/* The q-quantile (0 < q <= 1) in us, interpolated inside its bucket; -1 if
 * s is empty. */
double metrics_hsnap_quantile(const struct metrics_hsnap *s, double q);
/* The mean in us; -1 if s is empty. */
double metrics_hsnap_avg(const struct metrics_hsnap *s);

/* ---- outcomes ---- */

/* The by_outcome keys of GET /v1/stats and the outcome label of /metrics. */
enum metrics_outcome {
	METRICS_2XX = 0,
	METRICS_3XX,
	METRICS_4XX,
	METRICS_5XX,
	METRICS_TIMEOUT,
	METRICS_CONNECTION_REFUSED,
	METRICS_DNS,
	METRICS_TLS_ERROR,
	METRICS_CONNECTION,
	METRICS_RESPONSE_TOO_LARGE,
	METRICS_BLOCKED,
	METRICS_INTERNAL,
	METRICS_INVALID_RESPONSE,
	METRICS_OTHER,           /* 1xx and anything unforeseen */
	METRICS_N_OUTCOMES
};

/* The outcome of an attempt that ended as kind with HTTP status (0: none). */
enum metrics_outcome metrics_outcome_of(enum failure_kind kind, long status);
/* "2xx", …, "timeout", …, "other" (static). */
const char *metrics_outcome_name(enum metrics_outcome o);

/* ---- the store ---- */

struct metrics;
struct metrics_ep;

/* A new, empty set of metrics; NULL if out of memory. max_endpoints: how
 * many endpoints get a series of their own (>= 0). */
struct metrics *metrics_new(int max_endpoints);
/* Frees m (NULL is fine). No thread may feed or read it any more. */
void metrics_free(struct metrics *m);
/* Wall ms when m was made: when the counters started. */
int64_t metrics_started_ms(const struct metrics *m);

/* ---- feeding. m may be NULL (metrics off): nothing happens. ---- */

/* Dispatcher thread: the series of endpoint_id. *cache and *gen are the
 * caller's memo (start NULL/0; the dispatcher keeps them per endpoint): a
 * hit costs one atomic load; a miss takes the slot table's mutex once. An
 * endpoint past the cap, or one deleted since it was memoized, gets the
 * "other" series. NULL only if m is NULL. */
struct metrics_ep *metrics_ep_resolve(struct metrics *m, const char *endpoint_id,
				      struct metrics_ep **cache, uint32_t *gen);
/* Dispatcher thread: one attempt of ep (may be NULL) finished, with its
 * duration in us, at wall ms now. */
void metrics_attempt(struct metrics *m, struct metrics_ep *ep, enum metrics_outcome o,
		     uint64_t duration_us, int64_t now);
/* Dispatcher thread: a delivery of ep succeeded, latency_us after its
 * event was accepted. */
void metrics_delivered(struct metrics *m, struct metrics_ep *ep, uint64_t latency_us,
		       int64_t now);
/* Dispatcher thread: a delivery of ep went to the dead-letter queue. */
void metrics_dead(struct metrics *m, struct metrics_ep *ep, int64_t now);
/* Dispatcher thread: n new deliveries for ep were handed over after their
 * ingest committed (the per-endpoint "created"). */
void metrics_ep_created(struct metrics *m, struct metrics_ep *ep, uint64_t n, int64_t now);
/* Dispatcher thread: a transfer opened opened new connections to a
 * receiver, and tls_full + tls_resumed (0 or 1) TLS handshakes completed on
 * them: full, or resuming a cached session. */
void metrics_connections(struct metrics *m, uint64_t opened, uint64_t tls_full,
			 uint64_t tls_resumed);
/* Dispatcher thread: requests out now. */
void metrics_set_in_flight(struct metrics *m, int n);
/* Commit thread: an ingest committed events new events with deliveries
 * new deliveries. */
void metrics_ingested(struct metrics *m, uint64_t events, uint64_t deliveries, int64_t now);
/* Commit thread: a group of ops ops committed; commit_us = the COMMIT
 * (with its fsync). */
void metrics_commit_group(struct metrics *m, uint64_t ops, uint64_t commit_us);
/* Any API thread: a response to route (index < METRICS_API_ROUTES) with
 * HTTP status was queued duration_us after the request arrived. */
#define METRICS_API_ROUTES 32
void metrics_api_request(struct metrics *m, size_t route, unsigned status, uint64_t duration_us);
/* Any thread (the commit thread, after a delete committed): endpoint_id's
 * series is free for the next new endpoint; its later attempts count as
 * "other". */
void metrics_ep_forget(struct metrics *m, const char *endpoint_id);

/* ---- reading (any thread) ---- */

/* The figures of a window (or of one bucket). */
struct metrics_view {
	uint64_t outcome[METRICS_N_OUTCOMES];
	uint64_t attempts;       /* sum of outcome[] */
	uint64_t created;
	uint64_t delivered;      /* deliveries succeeded */
	uint64_t dead;
	uint64_t events;         /* events ingested (overall only) */
	struct metrics_hsnap attempt_us;
	struct metrics_hsnap i2d_us; /* ingest -> delivered */
};

enum metrics_window { METRICS_5M = 0, METRICS_1H, METRICS_24H };

/* One point of a window's series: a bucket. */
struct metrics_point {
	int64_t t;               /* wall ms of the bucket's start */
	uint64_t events, created, attempts, succeeded, failed;
	double p50_us, p95_us;   /* -1: no attempt */
};

/* The window's step in seconds, its number of buckets, its nominal length
 * in seconds. */
int metrics_window_step(enum metrics_window w);
size_t metrics_window_points(enum metrics_window w);
int metrics_window_seconds(enum metrics_window w);

/* Sums the window w ending at wall ms now for ep (NULL: overall) into
 * *out; if pts is not NULL it gets metrics_window_points(w) points, oldest
 * first. *from is the start of the oldest bucket (wall ms). */
void metrics_read(const struct metrics *m, const struct metrics_ep *ep, enum metrics_window w,
		  int64_t now, struct metrics_view *out, struct metrics_point *pts, int64_t *from);

/* The series of endpoint_id if it has one of its own, else NULL (the
 * pointer stays valid while m lives; it may be reused after a delete). */
const struct metrics_ep *metrics_ep_find(struct metrics *m, const char *endpoint_id);

/* For the exposition: calls fn for each endpoint series in use (id "other"
 * for the shared one, last) with its attempts by outcome since it was
 * given to that endpoint. */
void metrics_ep_each(struct metrics *m,
		     void (*fn)(void *arg, const char *id, const uint64_t *outcomes), void *arg);

/* Cumulative histogram for the exposition: bucket i counts values <= bound[i]. */
#define METRICS_PHIST_N 16
struct metrics_phist_snap {
	uint64_t n[METRICS_PHIST_N + 1]; /* the last: above every bound */
	uint64_t count;
	uint64_t sum;            /* us, or ops for the group size */
};
/* The bounds of the exposition's histograms: us (16 us .. 2^34 us, about
 * 4.8 h, powers of 4) or plain numbers (1 .. 2^15, powers of 2). */
uint64_t metrics_phist_bound(bool us, size_t i);

struct metrics_totals {
	uint64_t events, created, delivered, dead;
	uint64_t conns_opened, tls_full, tls_resumed; /* see metrics_connections */
	int in_flight;
	struct metrics_phist_snap attempt_us, i2d_us, commit_us, commit_ops;
};
/* Figures since start. */
void metrics_totals(const struct metrics *m, struct metrics_totals *out);
/* The API request counters of route: counts by status, for each status in
 * metrics_api_codes (the last entry 0 = any other status), and the
 * duration histogram. Returns false if the route was never used. */
extern const unsigned metrics_api_codes[];
#define METRICS_API_CODES 19
bool metrics_api_route(const struct metrics *m, size_t route, uint64_t *codes,
		       struct metrics_phist_snap *dur);

#endif
