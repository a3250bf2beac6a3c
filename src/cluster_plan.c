/* cluster_plan: the pure rules of endpoint ownership (cluster.h;
 * docs/architecture.md#several-nodes): who should own an endpoint among the
 * live nodes, the tick, the local deadline and the reconnect back-off.
 * Table-tested in tests/unit/test_cluster_plan.c. */
#include "cluster.h"

#include <string.h>

uint64_t cluster_score(const char *node_id, const char *endpoint_id)
{
	/* FNV-1a over "node\0endpoint", then splitmix64's finalizer so the
	 * scores of similar ids spread over the whole range. */
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const unsigned char *p = (const unsigned char *)node_id; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	h = (h ^ 0xffu) * 0x100000001b3ULL; /* the separator: ("ab","c") != ("a","bc") */
	for (const unsigned char *p = (const unsigned char *)endpoint_id; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

size_t cluster_owner(const char (*nodes)[ID_MAX], size_t n, const char *endpoint_id)
{
	size_t best = 0;
	uint64_t best_score = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t s = cluster_score(nodes[i], endpoint_id);
		if (i == 0 || s > best_score ||
		    (s == best_score && strcmp(nodes[i], nodes[best]) < 0)) {
			best = i;
			best_score = s;
		}
	}
	return best;
}

int64_t cluster_tick_ms(int64_t lease_ms)
{
	int64_t t = lease_ms / 10;
	return t < CLUSTER_TICK_MIN_MS ? CLUSTER_TICK_MIN_MS : t;
}

int64_t cluster_deadline(int64_t renew_started_mono, int64_t lease_ms)
{
	return renew_started_mono + lease_ms - cluster_tick_ms(lease_ms);
}

int64_t cluster_statement_timeout_ms(int64_t lease_ms) { return lease_ms / 4; }

int64_t cluster_lock_timeout_ms(int64_t lease_ms) { return cluster_tick_ms(lease_ms); }

int64_t cluster_backoff_ms(int64_t lease_ms, unsigned failures)
{
	int64_t tick = cluster_tick_ms(lease_ms);
	int64_t cap = lease_ms / 2;
	int64_t b = tick;
	for (unsigned i = 1; i < failures && b < cap; i++)
		b *= 2;
	return b > cap ? cap : b;
}
