/* hops: per-stage latency histograms (see hops.h). */
#include "hops.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

static const char *const hop_names[HOP_N] = {
	[HOP_INGEST_QUEUE] = "ingest_queue",
	[HOP_INGEST_APPLY] = "ingest_apply",
	[HOP_INGEST_AFTER] = "ingest_after",
	[HOP_FETCH_QUEUE] = "fetch_queue",
	[HOP_FETCH_APPLY] = "fetch_apply",
	[HOP_FETCH_AFTER] = "fetch_after",
	[HOP_RECORD_QUEUE] = "record_queue",
	[HOP_RECORD_APPLY] = "record_apply",
	[HOP_RECORD_AFTER] = "record_after",
	[HOP_GROUP_COMMIT] = "group_commit",
	[HOP_LISTEN_TO_DISPATCH] = "listen_to_dispatch",
	[HOP_FETCH_BACK] = "fetch_back",
	[HOP_SENDER_PICKUP] = "sender_pickup",
	[HOP_SEND] = "send",
};

struct hop_hist {
	_Atomic uint64_t n[METRICS_HIST_N];
	_Atomic uint64_t max_us;
};

static struct hop_hist hists[HOP_N];

void hops_add(enum hop h, int64_t us)
{
	if (h <= HOP_NONE || h >= HOP_N)
		return;
	uint64_t v = us > 0 ? (uint64_t)us : 0;
	struct hop_hist *x = &hists[h];
	atomic_fetch_add_explicit(&x->n[metrics_hist_index(v)], 1, memory_order_relaxed);
	uint64_t m = atomic_load_explicit(&x->max_us, memory_order_relaxed);
	while (v > m && !atomic_compare_exchange_weak_explicit(&x->max_us, &m, v,
							       memory_order_relaxed,
							       memory_order_relaxed))
		;
}

void hops_since(enum hop h, int64_t since_us)
{
	if (since_us != 0)
		hops_add(h, mono_us() - since_us);
}

void hops_log(void)
{
	for (int h = HOP_NONE + 1; h < HOP_N; h++) {
		struct metrics_hsnap s;
		memset(&s, 0, sizeof s);
		for (size_t i = 0; i < METRICS_HIST_N; i++) {
			s.n[i] = atomic_load_explicit(&hists[h].n[i], memory_order_relaxed);
			s.count += s.n[i];
		}
		if (s.count == 0)
			continue;
		log_info("hops: %s n=%llu p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%llu",
			 hop_names[h], (unsigned long long)s.count,
			 metrics_hsnap_quantile(&s, 0.50), metrics_hsnap_quantile(&s, 0.90),
			 metrics_hsnap_quantile(&s, 0.99),
			 (unsigned long long)atomic_load_explicit(&hists[h].max_us,
								  memory_order_relaxed));
	}
}
