/* filter: the seed's example first, then a table over types, operators,
 * missing paths and nesting, then compile errors. */
#include <criterion/criterion.h>
#include <string.h>

#include "filter.h"

static struct filter *compile(const char *json)
{
	json_t *j = json_loads(json, 0, NULL);
	cr_assert_not_null(j, "test JSON parses: %s", json);
	struct filter *f = NULL;
	char field[128], msg[256];
	int rc = filter_compile(j, &f, field, sizeof field, msg, sizeof msg);
	cr_assert_eq(rc, 0, "compiles %s: %s %s", json, field, msg);
	json_decref(j);
	return f;
}

static bool matches(struct filter *f, const char *data)
{
	json_t *d = json_loads(data, 0, NULL);
	cr_assert_not_null(d, "data parses: %s", data);
	bool m = filter_match(f, d);
	json_decref(d);
	return m;
}

Test(filter, seed_example)
{
	struct filter *f = compile("{\"events\":[\"media.moderated\"],\"status\":[\"rejected\",\"flagged\"],"
				   "\"confidence\":{\">=\":0.8}}");
	cr_assert(matches(f, "{\"status\":\"rejected\",\"confidence\":0.93}"));
	cr_assert(matches(f, "{\"status\":\"flagged\",\"confidence\":0.8}"));
	cr_assert(!matches(f, "{\"status\":\"approved\",\"confidence\":0.99}"));
	cr_assert(!matches(f, "{\"status\":\"rejected\",\"confidence\":0.79}"));
	cr_assert(!matches(f, "{\"status\":\"rejected\"}"), "a missing path fails >=");
	cr_assert(!matches(f, "{\"status\":\"rejected\",\"confidence\":\"0.9\"}"),
		  "a string is not a number");
	filter_free(f);
}

struct match_case {
	const char *filters;
	const char *data;
	bool want;
};

Test(filter, table)
{
	static const struct match_case cases[] = {
		/* scalars: equality by type and value */
		{"{\"a\":1}", "{\"a\":1}", true},
		{"{\"a\":1}", "{\"a\":1.0}", true},
		{"{\"a\":1}", "{\"a\":\"1\"}", false},
		{"{\"a\":\"x\"}", "{\"a\":\"x\"}", true},
		{"{\"a\":\"x\"}", "{\"a\":\"X\"}", false},
		{"{\"a\":true}", "{\"a\":true}", true},
		{"{\"a\":true}", "{\"a\":1}", false},
		{"{\"a\":null}", "{\"a\":null}", true},
		{"{\"a\":null}", "{}", false},
		{"{\"a\":\"x\"}", "{\"a\":[\"x\"]}", false},
		{"{\"a\":\"x\"}", "{\"a\":{\"b\":\"x\"}}", false},
		/* lists: membership */
		{"{\"a\":[1,\"two\",false]}", "{\"a\":\"two\"}", true},
		{"{\"a\":[1,\"two\",false]}", "{\"a\":false}", true},
		{"{\"a\":[1,\"two\",false]}", "{\"a\":2}", false},
		{"{\"a\":{\"in\":[3,4]}}", "{\"a\":4.0}", true},
		/* operators */
		{"{\"a\":{\"=\":5}}", "{\"a\":5}", true},
		{"{\"a\":{\"!=\":5}}", "{\"a\":5}", false},
		{"{\"a\":{\"!=\":5}}", "{\"a\":6}", true},
		{"{\"a\":{\"!=\":5}}", "{}", true},
		{"{\"a\":{\"!=\":\"5\"}}", "{\"a\":5}", true},
		{"{\"a\":{\">\":5}}", "{\"a\":5}", false},
		{"{\"a\":{\">\":5}}", "{\"a\":5.5}", true},
		{"{\"a\":{\"<\":5}}", "{\"a\":-1}", true},
		{"{\"a\":{\"<=\":5}}", "{\"a\":5}", true},
		{"{\"a\":{\"<=\":5}}", "{\"a\":\"4\"}", false},
		{"{\"a\":{\">=\":0.5,\"<\":0.9}}", "{\"a\":0.7}", true},
		{"{\"a\":{\">=\":0.5,\"<\":0.9}}", "{\"a\":0.9}", false},
		{"{\"t\":{\">=\":\"2026-01-01\"}}", "{\"t\":\"2026-11-27T13:00:00Z\"}", true},
		{"{\"t\":{\">=\":\"2026-01-01\"}}", "{\"t\":\"2025-12-31\"}", false},
		{"{\"t\":{\">\":\"ab\"}}", "{\"t\":\"abc\"}", true},
		{"{\"a\":{\">\":1}}", "{\"a\":true}", false},
		{"{\"a\":{\">\":1}}", "{\"a\":null}", false},
		/* missing paths and nesting */
		{"{\"a\":1}", "{}", false},
		{"{\"a.b\":1}", "{\"a\":{\"b\":1}}", true},
		{"{\"a.b.c\":\"deep\"}", "{\"a\":{\"b\":{\"c\":\"deep\"}}}", true},
		{"{\"a.b\":1}", "{\"a\":1}", false},
		{"{\"a.b\":1}", "{\"a\":null}", false},
		{"{\"labels.0\":\"nudity\"}", "{\"labels\":[\"nudity\",\"x\"]}", true},
		{"{\"labels.1\":\"nudity\"}", "{\"labels\":[\"nudity\"]}", false},
		{"{\"labels.x\":1}", "{\"labels\":[1]}", false},
		{"{\"m.ai.score\":{\">\":0.5},\"m.site\":[\"s1\"]}",
		 "{\"m\":{\"ai\":{\"score\":0.6},\"site\":\"s1\"}}", true},
		{"{\"m.ai.score\":{\">\":0.5},\"m.site\":[\"s1\"]}",
		 "{\"m\":{\"ai\":{\"score\":0.6},\"site\":\"s2\"}}", false},
		/* only events: no data condition */
		{"{\"events\":[\"x\"]}", "{}", true},
		{"{}", "{\"a\":1}", true},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct filter *f = compile(cases[i].filters);
		cr_expect_eq(matches(f, cases[i].data), cases[i].want, "case %zu: %s on %s", i,
			     cases[i].filters, cases[i].data);
		filter_free(f);
	}
}

struct bad_case {
	const char *filters;
	const char *field;
};

Test(filter, compile_errors_name_the_key)
{
	static const struct bad_case cases[] = {
		{"[]", "filters"},
		{"{\"a\":{\"~\":1}}", "filters.a.~"},
		{"{\"a\":{}}", "filters.a"},
		{"{\"a\":{\"in\":5}}", "filters.a.in"},
		{"{\"a\":{\"in\":[]}}", "filters.a.in"},
		{"{\"a\":{\">\":true}}", "filters.a.>"},
		{"{\"a\":{\">\":[1]}}", "filters.a.>"},
		{"{\"a\":[[1]]}", "filters.a"},
		{"{\"a\":[{\"b\":1}]}", "filters.a"},
		{"{\"a..b\":1}", "filters.a..b"},
		{"{\".a\":1}", "filters..a"},
		{"{\"a.b.c.d.e.f.g.h.i\":1}", "filters.a.b.c.d.e.f.g.h.i"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *j = json_loads(cases[i].filters, 0, NULL);
		cr_assert_not_null(j);
		struct filter *f = NULL;
		char field[128] = "", msg[256] = "";
		cr_expect_eq(filter_compile(j, &f, field, sizeof field, msg, sizeof msg), -1, "%s",
			     cases[i].filters);
		cr_expect_str_eq(field, cases[i].field, "%s", cases[i].filters);
		cr_expect_neq(msg[0], 0);
		cr_expect_null(f);
		json_decref(j);
	}
}

Test(filter, limits)
{
	/* 32 conditions compile, 33 do not. */
	char buf[4096] = "{";
	for (int i = 0; i < 33; i++) {
		char c[32];
		snprintf(c, sizeof c, "%s\"k%d\":1", i ? "," : "", i);
		strcat(buf, c);
		if (i == 31) {
			char ok[sizeof buf + 1];
			snprintf(ok, sizeof ok, "%s}", buf);
			filter_free(compile(ok));
		}
	}
	strcat(buf, "}");
	json_t *j = json_loads(buf, 0, NULL);
	struct filter *f = NULL;
	char field[128], msg[256];
	cr_assert_eq(filter_compile(j, &f, field, sizeof field, msg, sizeof msg), -1);
	json_decref(j);
	cr_assert(filter_match(NULL, NULL), "no filter matches everything");
}
