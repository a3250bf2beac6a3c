/* api_conns: the total connection cap computed from the open-files limit
 * leaves the reserve free, stays within its bounds, and never reaches the
 * limit itself. */
#include <criterion/criterion.h>

#include "api_conns.h"

struct total_case {
	uint64_t nofile;
	unsigned reserve;
	unsigned want;
};

Test(api_conns, auto_total_table)
{
	static const struct total_case cases[] = {
		{1024, 672, 352},         /* ulimit -n 1024 with the default reserve */
		{1024, 100, 924},
		{736, 672, 64},           /* exactly 64 above the reserve */
		{735, 672, 183},          /* less: a quarter of the limit */
		{256, 672, 64},
		{32, 672, 16},            /* never under 16 */
		{1048576, 672, API_CONNS_MAX_TOTAL},
		{UINT64_MAX, 672, API_CONNS_MAX_TOTAL},
		{API_CONNS_MAX_TOTAL + 672, 672, API_CONNS_MAX_TOTAL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct total_case *c = &cases[i];
		unsigned got = api_conns_auto_total(c->nofile, c->reserve);
		cr_assert_eq(got, c->want, "nofile=%llu reserve=%u: got %u, want %u",
			     (unsigned long long)c->nofile, c->reserve, got, c->want);
		if (c->nofile >= 64)
			cr_assert_lt(got, c->nofile, "the cap must stay below the limit");
	}
}

Test(api_conns, reason_names)
{
	cr_assert_str_eq(api_conns_reason_name(API_CONNS_PER_ADDRESS), "per_address");
	cr_assert_str_eq(api_conns_reason_name(API_CONNS_TOTAL), "total");
	cr_assert_str_eq(api_conns_reason_name(API_CONNS_DEADLINE), "request_timeout");
	cr_assert_str_eq(api_conns_reason_name(API_CONNS_N_REASONS), "unknown");
}
