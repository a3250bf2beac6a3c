/* Unit tests of cluster_plan.c: rendezvous hashing spreads endpoints evenly
 * over the live nodes and moves only a joining or leaving node's share; the
 * tick, the local deadline and the back-off follow the lease. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"

#define N_EPS 3000

static char eps[N_EPS][ID_MAX];

static void make_eps(void)
{
	for (int i = 0; i < N_EPS; i++)
		snprintf(eps[i], ID_MAX, "ep_%08dX%04x", i, (unsigned)(i * 2654435761u) & 0xffff);
}

/* The owner's id of every endpoint among nodes[0..n). */
static void owners(const char (*nodes)[ID_MAX], size_t n, const char *out[N_EPS])
{
	for (int i = 0; i < N_EPS; i++)
		out[i] = nodes[cluster_owner(nodes, n, eps[i])];
}

Test(cluster_plan, balanced_over_three_nodes)
{
	make_eps();
	static const char nodes[3][ID_MAX] = {"node-a", "node-b", "node-c"};
	int count[3] = {0};
	for (int i = 0; i < N_EPS; i++)
		count[cluster_owner(nodes, 3, eps[i])]++;
	for (int k = 0; k < 3; k++) /* 1000 each expected; well within +-15 % */
		cr_expect(count[k] > 850 && count[k] < 1150, "node %d owns %d of %d", k, count[k],
			  N_EPS);
}

Test(cluster_plan, a_joining_node_takes_only_its_share)
{
	make_eps();
	static const char before[2][ID_MAX] = {"node-a", "node-b"};
	static const char after[3][ID_MAX] = {"node-a", "node-b", "node-c"};
	static const char *o1[N_EPS], *o2[N_EPS];
	owners(before, 2, o1);
	owners(after, 3, o2);
	int moved = 0;
	for (int i = 0; i < N_EPS; i++) {
		if (strcmp(o1[i], o2[i]) == 0)
			continue;
		moved++;
		/* Nothing moves between the nodes that stay. */
		cr_assert_str_eq(o2[i], "node-c", "%s moved from %s to %s", eps[i], o1[i], o2[i]);
	}
	cr_expect(moved > 850 && moved < 1150, "moved %d of %d", moved, N_EPS);
}

Test(cluster_plan, a_leaving_node_gives_only_its_own)
{
	make_eps();
	static const char before[3][ID_MAX] = {"node-a", "node-b", "node-c"};
	static const char after[2][ID_MAX] = {"node-a", "node-c"};
	static const char *o1[N_EPS], *o2[N_EPS];
	owners(before, 3, o1);
	owners(after, 2, o2);
	for (int i = 0; i < N_EPS; i++)
		if (strcmp(o1[i], "node-b") != 0)
			cr_assert_str_eq(o1[i], o2[i], "%s moved though its owner stayed", eps[i]);
}

Test(cluster_plan, the_order_of_the_nodes_does_not_matter)
{
	make_eps();
	static const char ab[2][ID_MAX] = {"node-a", "node-b"};
	static const char ba[2][ID_MAX] = {"node-b", "node-a"};
	for (int i = 0; i < N_EPS; i++)
		cr_assert_str_eq(ab[cluster_owner(ab, 2, eps[i])], ba[cluster_owner(ba, 2, eps[i])]);
}

Test(cluster_plan, the_score_tells_the_parts_apart)
{
	cr_expect_neq(cluster_score("ab", "c"), cluster_score("a", "bc"));
	cr_expect_eq(cluster_score("a", "b"), cluster_score("a", "b"));
}

Test(cluster_plan, lease_arithmetic)
{
	const struct {
		int64_t lease, tick, deadline_from_1000;
	} cases[] = {
		{10000, 1000, 1000 + 10000 - 1000},
		{2000, 200, 1000 + 2000 - 200},
		{500, CLUSTER_TICK_MIN_MS, 1000 + 500 - CLUSTER_TICK_MIN_MS},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cr_expect_eq(cluster_tick_ms(cases[i].lease), cases[i].tick, "lease %lld",
			     (long long)cases[i].lease);
		/* The node stops a tick before its lease can run out. */
		cr_expect_eq(cluster_deadline(1000, cases[i].lease), cases[i].deadline_from_1000);
		cr_expect_lt(cluster_deadline(1000, cases[i].lease), 1000 + cases[i].lease);
		/* A hung statement fails with room for a retry before the
		 * deadline; a lock wait within a tick. */
		int64_t stmt = cluster_statement_timeout_ms(cases[i].lease);
		cr_expect_gt(stmt, 0);
		cr_expect_leq(2 * stmt + cluster_tick_ms(cases[i].lease),
			      cluster_deadline(0, cases[i].lease));
		cr_expect_leq(cluster_lock_timeout_ms(cases[i].lease), stmt);
	}
	/* Back-off: a tick, doubling, at most half the lease. */
	cr_expect_eq(cluster_backoff_ms(10000, 1), 1000);
	cr_expect_eq(cluster_backoff_ms(10000, 2), 2000);
	cr_expect_eq(cluster_backoff_ms(10000, 3), 4000);
	cr_expect_eq(cluster_backoff_ms(10000, 4), 5000);
	cr_expect_eq(cluster_backoff_ms(10000, 100), 5000);
}
