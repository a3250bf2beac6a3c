/* client_print: the API client's tables and cells (times, values, alignment,
 * sanitizing, cutting). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "client_print.h"

struct tcase {
	const char *in;
	bool with_ms;
	const char *want;
};

Test(client_print, times)
{
	static const struct tcase cases[] = {
		{"2026-11-27T13:02:31.123Z", false, "2026-11-27T13:02:31Z"},
		{"2026-11-27T13:02:31.123Z", true, "2026-11-27T13:02:31.123Z"},
		{"2026-11-27T14:02:31+01:00", false, "2026-11-27T13:02:31Z"},
		{"2026-11-27T00:30:00.5-02:00", true, "2026-11-27T02:30:00.500Z"},
		{"not a time", false, "not a time"},
		{NULL, false, "-"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[40];
		cp_time(cases[i].in, cases[i].with_ms, out);
		cr_expect_str_eq(out, cases[i].want, "case %zu", i);
	}
}

struct vcase {
	const char *key;
	const char *json; /* NULL: missing */
	const char *want;
};

Test(client_print, values)
{
	static const struct vcase cases[] = {
		{"url", "\"https://x\"", "https://x"},
		{"url", "null", "-"},
		{"url", NULL, "-"},
		{"max_in_flight", "10", "10"},
		{"rate_limit", "2.5", "2.5"},
		{"enabled", "false", "false"},
		{"events", "[\"a.b\",\"c.d\"]", "a.b,c.d"},
		{"events", "[]", "[]"},
		{"mixed", "[1,\"a\"]", "[1,\"a\"]"},
		{"headers", "{\"X-A\":\"1\"}", "{\"X-A\":\"1\"}"},
		{"created_at", "\"2026-11-27T13:02:31.123Z\"", "2026-11-27T13:02:31Z"},
		{"paused_until", "\"2026-11-27T13:02:31.999Z\"", "2026-11-27T13:02:31Z"},
		{"at", "\"2026-11-27T13:02:31.123Z\"", "2026-11-27T13:02:31Z"},
		{"description", "\"2026-11-27T13:02:31.123Z\"", "2026-11-27T13:02:31.123Z"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *v = cases[i].json ? json_loads(cases[i].json, JSON_DECODE_ANY, NULL) : NULL;
		char out[256];
		cp_value(cases[i].key, v, true, out, sizeof out);
		cr_expect_str_eq(out, cases[i].want, "case %zu (%s)", i, cases[i].json);
		json_decref(v);
	}
}

/* The table printed into a string (caller frees). */
static char *printed(const struct cp_table *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cr_assert_not_null(f);
	cp_table_print(t, f);
	fclose(f);
	return buf;
}

Test(client_print, columns_aligned_without_trailing_blanks)
{
	struct cp_table t;
	cr_assert_eq(cp_table_init(&t, 3, (const char *const[]){"ID", "STATUS", "CREATED"}), 0);
	cr_assert_eq(cp_table_add(&t, (const char *const[]){"dlv_1", "succeeded", NULL}), 0);
	cr_assert_eq(cp_table_add(&t, (const char *const[]){"dlv_22", "café", "x"}), 0);
	char *out = printed(&t);
	cr_expect_str_eq(out, "ID      STATUS     CREATED\n"
			      "dlv_1   succeeded  -\n"
			      "dlv_22  café       x\n");
	free(out);
	cp_table_free(&t);
}

Test(client_print, control_characters_replaced_and_long_cells_cut)
{
	struct cp_table t;
	char longcell[CP_CELL_MAX + 50];
	memset(longcell, 'a', sizeof longcell - 1);
	longcell[sizeof longcell - 1] = 0;
	cr_assert_eq(cp_table_init(&t, 1, (const char *const[]){"D"}), 0);
	cr_assert_eq(cp_table_add(&t, (const char *const[]){"a\033[31mred\nb\tc"}), 0);
	cr_assert_eq(cp_table_add(&t, (const char *const[]){longcell}), 0);
	cr_expect_str_eq(t.cells[1], "a?[31mred?b?c");
	cr_expect_eq(strlen(t.cells[2]), CP_CELL_MAX + 3);
	cr_expect_str_eq(t.cells[2] + CP_CELL_MAX, "...");
	cp_table_free(&t);
}

Test(client_print, a_cut_keeps_utf8_whole)
{
	struct cp_table t;
	char cell[CP_CELL_MAX + 16];
	memset(cell, 'a', CP_CELL_MAX - 1);
	strcpy(cell + CP_CELL_MAX - 1, "é and more"); /* é straddles the cut */
	cr_assert_eq(cp_table_init(&t, 1, (const char *const[]){"D"}), 0);
	cr_assert_eq(cp_table_add(&t, (const char *const[]){cell}), 0);
	cr_expect_eq(strlen(t.cells[1]), CP_CELL_MAX - 1 + 3);
	cr_expect_str_eq(t.cells[1] + CP_CELL_MAX - 1, "...");
	cp_table_free(&t);
}

Test(client_print, a_list_of_deliveries)
{
	json_t *data = json_loads(
		"[{\"id\":\"dlv_1\",\"event\":\"a.b\",\"endpoint_id\":\"ep_1\",\"status\":\"dead\","
		"\"attempt_count\":3,\"last_status\":null,\"last_error\":\"timeout\","
		"\"next_attempt_at\":null,\"created_at\":\"2026-12-06T14:04:04.878Z\"}]",
		0, NULL);
	cr_assert_not_null(data);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cp_deliveries(f, data);
	fclose(f);
	cr_expect_str_eq(buf, "ID     EVENT  ENDPOINT  STATUS  ATTEMPTS  LAST     NEXT ATTEMPT  CREATED\n"
			      "dlv_1  a.b    ep_1      dead    3         timeout  -             "
			      "2026-12-06T14:04:04Z\n");
	free(buf);
	json_decref(data);
}
