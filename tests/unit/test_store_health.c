/* store_health: conditions on and off, the worst one wins, one log line per
 * change (not per report). */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <string.h>

#include "store_health.h"

Test(store_health, empty_is_ok)
{
	struct store_health *h = store_health_new();
	struct store_health_view v;
	store_health_read(h, &v);
	cr_assert_eq(v.level, STORE_HEALTH_OK);
	cr_assert_eq(v.conds, 0u);
	cr_assert_str_eq(v.reason, "");
	cr_assert_eq(v.since_ms, 0);
	store_health_free(h);
	/* NULL is a valid, always-ok tracker. */
	store_health_set(NULL, STORE_COND_FULL, "x", 1);
	cr_assert_not(store_health_has(NULL, STORE_COND_FULL));
	store_health_read(NULL, &v);
	cr_assert_eq(v.level, STORE_HEALTH_OK);
}

Test(store_health, worst_condition_wins_and_clears)
{
	struct store_health *h = store_health_new();
	struct store_health_view v;
	store_health_set(h, STORE_COND_LOW_SPACE, "12 MiB free, below 64 MiB", 1000);
	store_health_read(h, &v);
	cr_assert_eq(v.level, STORE_HEALTH_DEGRADED);
	cr_assert_str_eq(v.reason, "low_space: 12 MiB free, below 64 MiB");
	cr_assert_eq(v.since_ms, 1000);

	store_health_set(h, STORE_COND_CORRUPT, "database disk image is malformed", 2000);
	store_health_read(h, &v);
	cr_assert_eq(v.level, STORE_HEALTH_FAILING);
	cr_assert_str_eq(v.reason, "corrupt: database disk image is malformed");
	cr_assert_eq(v.conds, (1u << STORE_COND_LOW_SPACE) | (1u << STORE_COND_CORRUPT));

	/* Set again: the detail follows, the start time stays. */
	store_health_set(h, STORE_COND_CORRUPT, "index deliveries_dead", 3000);
	store_health_read(h, &v);
	cr_assert_str_eq(v.reason, "corrupt: index deliveries_dead");
	cr_assert_eq(v.since_ms, 2000);

	store_health_clear(h, STORE_COND_CORRUPT);
	store_health_read(h, &v);
	cr_assert_eq(v.level, STORE_HEALTH_DEGRADED);
	cr_assert(store_health_has(h, STORE_COND_LOW_SPACE));
	cr_assert_not(store_health_has(h, STORE_COND_CORRUPT));
	store_health_clear(h, STORE_COND_LOW_SPACE);
	store_health_clear(h, STORE_COND_LOW_SPACE); /* already off: no-op */
	store_health_read(h, &v);
	cr_assert_eq(v.level, STORE_HEALTH_OK);
	store_health_free(h);
}

Test(store_health, names_and_levels)
{
	static const struct {
		enum store_cond c;
		const char *name;
		enum store_health_level level;
	} rows[] = {
		{STORE_COND_FULL, "storage_full", STORE_HEALTH_DEGRADED},
		{STORE_COND_LOW_SPACE, "low_space", STORE_HEALTH_DEGRADED},
		{STORE_COND_WRITE, "write_failed", STORE_HEALTH_DEGRADED},
		{STORE_COND_CORRUPT, "corrupt", STORE_HEALTH_FAILING},
		{STORE_COND_UNREACHABLE, "unreachable", STORE_HEALTH_FAILING},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		cr_assert_str_eq(store_cond_name(rows[i].c), rows[i].name);
		cr_assert_eq(store_cond_level(rows[i].c), rows[i].level);
	}
	cr_assert_str_eq(store_health_level_name(STORE_HEALTH_DEGRADED), "degraded");
}

/* A condition's log line comes once when it starts, not once per report:
 * 1,000 failed writes in a row are one line. */
Test(store_health, logs_once_per_change, .init = cr_redirect_stderr)
{
	struct store_health *h = store_health_new();
	for (int i = 0; i < 1000; i++)
		store_health_set(h, STORE_COND_FULL, "database or disk is full", i);
	store_health_clear(h, STORE_COND_FULL);
	store_health_clear(h, STORE_COND_FULL);
	store_health_free(h);
	fflush(stderr);
	FILE *f = cr_get_redirected_stderr();
	char line[512];
	int on = 0, off = 0, other = 0;
	while (fgets(line, sizeof line, f) != NULL) {
		if (strstr(line, "store condition on: storage_full") != NULL)
			on++;
		else if (strstr(line, "store condition off: storage_full") != NULL)
			off++;
		else
			other++;
	}
	cr_assert_eq(on, 1);
	cr_assert_eq(off, 1);
	cr_assert_eq(other, 0);
}
