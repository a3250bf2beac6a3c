/* Unit tests for the retention job's rules (retention.h): how often it runs,
 * how long it pauses after a batch, when free pages are given back. */
#include <criterion/criterion.h>

#include "retention.h"

#define S 1000LL
#define MIB (1LL << 20)

Test(retention, every_is_a_quarter_between_1s_and_60s)
{
	static const struct {
		int64_t retention, every;
	} cases[] = {
		{1 * S, 1 * S},     {2 * S, 1 * S},          {4 * S, 1 * S},     {10 * S, 2500},
		{240 * S, 60 * S},  {30 * 86400 * S, 60 * S}, {100 * S, 25 * S},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(retention_every_ms(cases[i].retention), cases[i].every,
			     "retention %lld", (long long)cases[i].retention);
}

Test(retention, pause_is_three_times_the_batch_within_bounds)
{
	static const struct {
		int64_t op, pause;
	} cases[] = {
		{-5, 20},   {0, 20},     {6, 20},        {7, 21},        {10, 30},
		{100, 300}, {1666, 4998}, {1667, 5000}, {1000000, 5000}, {INT64_MAX, 5000},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(retention_pause_ms(cases[i].op), cases[i].pause, "op %lld ms",
			     (long long)cases[i].op);
}

Test(retention, batches_shrink_when_slow_and_grow_when_fast)
{
	static const struct {
		int events;
		int64_t op_us;
		int next;
	} cases[] = {
		/* Target 2000 us: halved above it, doubled under 2000 / 3 us (666). */
		{100, 0, 200},    {100, 665, 200},  {100, 666, 100},      {100, 2000, 100},
		{100, 2001, 50},  {500, 0, 500},    {300, 0, 500},        {250, 0, 500},
		{249, 0, 498},    {500, 200000, 250}, {10, 1000000, 10},  {12, 2500, 10},
		{1000, 1000, 500}, {5, 1000, 10},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(retention_next_batch(cases[i].events, cases[i].op_us), cases[i].next,
			     "%d events in %lld us", cases[i].events, (long long)cases[i].op_us);
}

Test(retention, reclaim_keeps_an_eighth_of_the_file_at_least_4_mib)
{
	static const struct {
		int64_t free, file;
		int due;
	} cases[] = {
		{0, 100 * MIB, 0},           {4 * MIB, 10 * MIB, 0},     {4 * MIB + 1, 10 * MIB, 1},
		{12 * MIB, 100 * MIB, 0},    {13 * MIB, 100 * MIB, 1},   {100 * MIB, 800 * MIB, 0},
		{100 * MIB + 1, 800 * MIB, 1}, {-1, 100 * MIB, 0},       {50 * MIB, -1, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(retention_reclaim_due(cases[i].free, cases[i].file), cases[i].due,
			     "free %lld of %lld", (long long)cases[i].free,
			     (long long)cases[i].file);
}
