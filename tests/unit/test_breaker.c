/* breaker: the state machine, step by step, as a table. */
#include <criterion/criterion.h>

#include "breaker.h"

enum step_kind { ALLOW, FAIL, OK };

struct step {
	enum step_kind kind;
	int64_t at;
	bool want_allow;                 /* for ALLOW */
	enum breaker_state want_state;   /* after the step */
	int64_t want_next_probe;         /* checked when the state is open */
};

static void run(const struct step *steps, size_t n, int threshold)
{
	struct breaker b;
	breaker_init(&b, threshold);
	for (size_t i = 0; i < n; i++) {
		const struct step *s = &steps[i];
		if (s->kind == ALLOW)
			cr_expect_eq(breaker_allow(&b, s->at), s->want_allow, "step %zu allow", i);
		else
			breaker_record(&b, s->kind == OK, s->at);
		cr_expect_eq(b.state, s->want_state, "step %zu: state %s", i,
			     breaker_state_name(b.state));
		if (b.state == BREAKER_OPEN)
			cr_expect_eq(b.next_probe_at, s->want_next_probe, "step %zu next probe", i);
	}
}

Test(breaker, opens_probes_doubles_and_closes)
{
	const struct step steps[] = {
		{ALLOW, 0, true, BREAKER_CLOSED, 0},
		{FAIL, 10, false, BREAKER_CLOSED, 0},
		{FAIL, 20, false, BREAKER_CLOSED, 0},
		{OK, 30, false, BREAKER_CLOSED, 0},          /* a success resets the count */
		{FAIL, 40, false, BREAKER_CLOSED, 0},
		{FAIL, 50, false, BREAKER_CLOSED, 0},
		{FAIL, 60, false, BREAKER_OPEN, 60 + 30000}, /* third in a row: open 30 s */
		{ALLOW, 100, false, BREAKER_OPEN, 30060},
		{FAIL, 200, false, BREAKER_OPEN, 30060},     /* a late result changes nothing */
		{ALLOW, 30059, false, BREAKER_OPEN, 30060},
		{ALLOW, 30060, true, BREAKER_HALF_OPEN, 0},  /* the probe */
		{ALLOW, 30061, false, BREAKER_HALF_OPEN, 0}, /* only one */
		{FAIL, 31000, false, BREAKER_OPEN, 31000 + 60000}, /* probe failed: 60 s */
		{ALLOW, 91000, true, BREAKER_HALF_OPEN, 0},
		{FAIL, 92000, false, BREAKER_OPEN, 92000 + 120000},
		{ALLOW, 212000, true, BREAKER_HALF_OPEN, 0},
		{OK, 212500, false, BREAKER_CLOSED, 0},      /* probe succeeded */
		{FAIL, 213000, false, BREAKER_CLOSED, 0},
		{FAIL, 213100, false, BREAKER_CLOSED, 0},
		{FAIL, 213200, false, BREAKER_OPEN, 213200 + 30000}, /* cooldown was reset */
	};
	run(steps, sizeof steps / sizeof steps[0], 3);
}

Test(breaker, cooldown_caps_at_ten_minutes)
{
	struct breaker b;
	breaker_init(&b, 1);
	int64_t t = 0;
	breaker_record(&b, false, t);
	for (int i = 0; i < 10; i++) {
		t = b.next_probe_at;
		cr_assert(breaker_allow(&b, t));
		breaker_record(&b, false, t);
	}
	cr_assert_eq(b.next_probe_at - t, BREAKER_COOLDOWN_MAX_MS);
}

Test(breaker, threshold_zero_never_opens)
{
	struct breaker b;
	breaker_init(&b, 0);
	for (int i = 0; i < 1000; i++)
		breaker_record(&b, false, i);
	cr_assert_eq(b.state, BREAKER_CLOSED);
	cr_assert(breaker_allow(&b, 1000));
}
