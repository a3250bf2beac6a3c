/* epcache: subscription matching, replacement and references. */
#include <criterion/criterion.h>
#include <string.h>

#include "epcache.h"

static struct endpoint ep(const char *id, const char *events_json, bool enabled)
{
	struct endpoint e = {0};
	snprintf(e.id, sizeof e.id, "%s", id);
	e.url = "https://example.com/hook";
	e.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
	e.events = json_loads(events_json, 0, NULL);
	e.enabled = enabled;
	return e;
}

struct match_case {
	const char *events;
	const char *type;
	bool want;
};

Test(epcache, events_match_table)
{
	static const struct match_case cases[] = {
		{"[\"*\"]", "media.created", true},
		{"[\"*\"]", "test.webhook", true},
		{"[\"*\"]", "delivery.dead_lettered", false}, /* operational: must be named */
		{"[\"*\"]", "endpoint.disabled", false},
		{"[\"delivery.dead_lettered\"]", "delivery.dead_lettered", true},
		{"[\"media.moderated\"]", "media.created", false},
		{"[\"media.moderated\",\"media.created\"]", "media.created", true},
		{"[\"media\"]", "media.created", false},
		{"[]", "media.created", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *ev = json_loads(cases[i].events, 0, NULL);
		cr_expect_eq(epcache_events_match(ev, cases[i].type), cases[i].want, "%s vs %s",
			     cases[i].events, cases[i].type);
		json_decref(ev);
	}
}

Test(epcache, match_put_replace_remove)
{
	struct epcache *c = epcache_new();
	struct endpoint a = ep("ep_a", "[\"*\"]", true);
	struct endpoint b = ep("ep_b", "[\"media.moderated\"]", false);
	cr_assert_eq(epcache_put(c, &a), 0);
	cr_assert_eq(epcache_put(c, &b), 0);

	size_t n;
	char(*ids)[ID_MAX] = epcache_match(c, "media.moderated", NULL, &n);
	cr_assert_eq(n, 2, "disabled endpoints still get deliveries created");
	free(ids);
	ids = epcache_match(c, "media.created", NULL, &n);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(ids[0], "ep_a");
	free(ids);

	/* A reader keeps its version while the entry is replaced. */
	struct ep_entry *old = epcache_get(c, "ep_b");
	cr_assert_not_null(old);
	json_decref(b.events);
	b = ep("ep_b", "[\"*\"]", true);
	cr_assert_eq(epcache_put(c, &b), 0);
	cr_assert(!old->enabled);
	struct ep_entry *cur = epcache_get(c, "ep_b");
	cr_assert(cur->enabled);
	cr_assert_eq(cur->key.key_len, 24);
	ep_entry_release(old);
	ep_entry_release(cur);

	epcache_remove(c, "ep_a");
	cr_assert_null(epcache_get(c, "ep_a"));
	ids = epcache_match(c, "media.created", NULL, &n);
	cr_assert_eq(n, 1);
	free(ids);

	/* A bad secret is refused and leaves the cache as it was. */
	struct endpoint bad = ep("ep_c", "[\"*\"]", true);
	bad.secret = "not-a-secret";
	cr_assert_eq(epcache_put(c, &bad), -1);
	cr_assert_null(epcache_get(c, "ep_c"));

	json_decref(a.events);
	json_decref(b.events);
	json_decref(bad.events);
	epcache_free(c);
}

Test(epcache, many_endpoints_grow_the_table)
{
	struct epcache *c = epcache_new();
	for (int i = 0; i < 500; i++) {
		char id[32];
		snprintf(id, sizeof id, "ep_%d", i);
		struct endpoint e = ep(id, "[\"*\"]", true);
		cr_assert_eq(epcache_put(c, &e), 0);
		json_decref(e.events);
	}
	for (int i = 0; i < 500; i += 37) {
		char id[32];
		snprintf(id, sizeof id, "ep_%d", i);
		struct ep_entry *e = epcache_get(c, id);
		cr_assert_not_null(e, "%s", id);
		ep_entry_release(e);
	}
	size_t n;
	free(epcache_match(c, "x.y", NULL, &n));
	cr_assert_eq(n, 500);
	epcache_free(c);
}

/* The ids of a match as one "a,b," string, sorted (the table has no order);
 * frees ids. */
static void match_ids(char (*ids)[ID_MAX], size_t n, char *out, size_t outlen)
{
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		for (size_t j = i + 1; j < n; j++) {
			if (strcmp(ids[j], ids[i]) < 0) {
				char t[ID_MAX];
				memcpy(t, ids[i], ID_MAX);
				memcpy(ids[i], ids[j], ID_MAX);
				memcpy(ids[j], t, ID_MAX);
			}
		}
		strncat(out, ids[i], outlen - strlen(out) - 1);
		strncat(out, ",", outlen - strlen(out) - 1);
	}
	free(ids);
}

Test(epcache, filters_decide_fan_out_from_data_or_text)
{
	struct epcache *c = epcache_new();
	struct endpoint seed = ep("ep_seed", "[\"media.moderated\"]", true);
	seed.filters = json_loads("{\"events\":[\"media.moderated\"],\"status\":[\"rejected\","
				  "\"flagged\"],\"confidence\":{\">=\":0.8}}", 0, NULL);
	struct endpoint all = ep("ep_all", "[\"*\"]", true);
	struct endpoint other = ep("ep_other", "[\"media.created\"]", true);
	other.filters = json_loads("{\"kind\":\"image\"}", 0, NULL);
	cr_assert_not(epcache_has_filters(c));
	cr_assert_eq(epcache_put(c, &all), 0);
	cr_assert_not(epcache_has_filters(c));
	cr_assert_eq(epcache_put(c, &seed), 0);
	cr_assert_eq(epcache_put(c, &other), 0);
	cr_assert(epcache_has_filters(c));

	char(*ids)[ID_MAX];
	struct {
		const char *type;
		const char *data;
		const char *want;
	} cases[] = {
		{"media.moderated", "{\"status\":\"rejected\",\"confidence\":0.93}",
		 "ep_all,ep_seed,"},
		{"media.moderated", "{\"status\":\"flagged\",\"confidence\":0.8}",
		 "ep_all,ep_seed,"},
		{"media.moderated", "{\"status\":\"flagged\",\"confidence\":0.79}", "ep_all,"},
		{"media.moderated", "{\"status\":\"approved\",\"confidence\":0.9}", "ep_all,"},
		{"media.moderated", "{\"status\":\"rejected\"}", "ep_all,"},
		{"media.moderated", "{\"status\":\"rejected\",\"confidence\":\"0.9\"}", "ep_all,"},
		{"media.created", "{\"status\":\"rejected\",\"confidence\":0.9}", "ep_all,"},
		{"media.created", "{\"kind\":\"image\"}", "ep_all,ep_other,"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char got[256];
		size_t n;
		json_t *data = json_loads(cases[i].data, 0, NULL);
		ids = epcache_match(c, cases[i].type, data, &n);
		match_ids(ids, n, got, sizeof got);
		cr_expect_str_eq(got, cases[i].want, "tree: %s %s", cases[i].type, cases[i].data);
		/* The fast path's text gives the same answer. */
		ids = epcache_match_text(c, cases[i].type, cases[i].data, &n);
		match_ids(ids, n, got, sizeof got);
		cr_expect_str_eq(got, cases[i].want, "text: %s %s", cases[i].type, cases[i].data);
		json_decref(data);
	}
	/* No data: every path is missing, so only unfiltered endpoints match. */
	char got[256];
	size_t n;
	ids = epcache_match(c, "media.moderated", NULL, &n);
	match_ids(ids, n, got, sizeof got);
	cr_expect_str_eq(got, "ep_all,");

	/* Replacing or removing the filtered endpoints clears the hint. */
	json_decref(seed.filters);
	seed.filters = NULL;
	cr_assert_eq(epcache_put(c, &seed), 0);
	cr_assert(epcache_has_filters(c));
	epcache_remove(c, "ep_other");
	cr_assert_not(epcache_has_filters(c));
	ids = epcache_match_text(c, "media.moderated", "{\"status\":\"x\"}", &n);
	match_ids(ids, n, got, sizeof got);
	cr_expect_str_eq(got, "ep_all,ep_seed,");

	json_decref(seed.events);
	json_decref(all.events);
	json_decref(other.events);
	json_decref(other.filters);
	epcache_free(c);
}

Test(epcache, entries_carry_the_delivery_controls)
{
	struct epcache *c = epcache_new();
	struct endpoint e = ep("ep_a", "[\"*\"]", true);
	e.headers = json_loads("{\"X-Tenant\":\"acme\",\"Authorization\":\"Bearer t\","
			       "\"X-Empty\":\"\"}", 0, NULL);
	e.rate_limit = 20;
	e.max_in_flight = 3;
	e.batch_max_events = 50;
	e.batch_max_wait_ms = 250;
	cr_assert_eq(epcache_put(c, &e), 0);
	struct ep_entry *x = epcache_get(c, "ep_a");
	cr_assert_not_null(x);
	cr_assert(json_equal(x->headers, e.headers));
	cr_assert_eq(x->n_header_lines, 3);
	cr_assert_str_eq(x->header_lines[0], "X-Tenant: acme");
	cr_assert_str_eq(x->header_lines[1], "Authorization: Bearer t");
	cr_assert_str_eq(x->header_lines[2], "X-Empty;", "curl's spelling of an empty header");
	cr_assert_float_eq(x->rate_limit, 20, 1e-12);
	cr_assert_eq(x->max_in_flight, 3);
	cr_assert_eq(x->batch_max_events, 50);
	cr_assert_eq(x->batch_max_wait_ms, 250);
	cr_assert_null(x->filter);
	ep_entry_release(x);

	/* Defaults from a zeroed endpoint. */
	struct endpoint d = ep("ep_d", "[\"*\"]", true);
	cr_assert_eq(epcache_put(c, &d), 0);
	x = epcache_get(c, "ep_d");
	cr_assert(json_is_object(x->headers) && json_object_size(x->headers) == 0);
	cr_assert_eq(x->n_header_lines, 0);
	cr_assert_eq(x->rate_limit, 0);
	cr_assert_eq(x->max_in_flight, ENDPOINT_MAX_IN_FLIGHT_DEFAULT);
	cr_assert_eq(x->batch_max_events, 0);
	ep_entry_release(x);

	json_decref(e.events);
	json_decref(e.headers);
	json_decref(d.events);
	epcache_free(c);
}

/* Issue 5: an entry carries a rotation's previous secret, prepared, while
 * it still signs; an expired or malformed previous secret is left out and
 * the entry is still made. */
Test(epcache, previous_secret)
{
	static const struct {
		const char *previous;
		int64_t until_from_now;
		bool kept;
	} cases[] = {
		{"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", 60000, true},
		{"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", -1, false},
		{"whsec_bad", 60000, false},
		{NULL, 60000, false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct epcache *c = epcache_new();
		struct endpoint e = ep("ep_p", "[\"*\"]", true);
		e.secret_previous = (char *)cases[i].previous;
		e.secret_previous_until = now_ms() + cases[i].until_from_now;
		cr_assert_eq(epcache_put(c, &e), 0, "case %zu", i);
		struct ep_entry *got = epcache_get(c, "ep_p");
		cr_assert_not_null(got);
		cr_assert_str_eq(got->key.secret, e.secret);
		if (cases[i].kept) {
			cr_assert_eq(got->prev_until, e.secret_previous_until, "case %zu", i);
			cr_assert_str_eq(got->prev_key.secret, cases[i].previous);
			cr_assert_not_null(got->prev_prep);
		} else {
			cr_assert_eq(got->prev_until, 0, "case %zu", i);
			cr_assert_null(got->prev_prep, "case %zu", i);
		}
		ep_entry_release(got);
		json_decref(e.events);
		epcache_free(c);
	}
}

Test(epcache, all_lists_every_entry_by_id_with_a_reference)
{
	struct epcache *c = epcache_new();
	size_t n = 1;
	cr_assert_null(epcache_all(c, &n));
	cr_assert_eq(n, 0);
	static const char *const ids[] = {"ep_c", "ep_a", "ep_d", "ep_b"};
	for (size_t i = 0; i < 4; i++) {
		struct endpoint e = ep(ids[i], "[\"*\"]", i != 2);
		cr_assert_eq(epcache_put(c, &e), 0);
		json_decref(e.events);
	}
	epcache_remove(c, "ep_b");
	struct ep_entry **all = epcache_all(c, &n);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(all[0]->id, "ep_a");
	cr_assert_str_eq(all[1]->id, "ep_c");
	cr_assert_str_eq(all[2]->id, "ep_d");
	cr_assert_not(all[2]->enabled);
	/* The references outlive the cache's own. */
	epcache_remove(c, "ep_a");
	cr_assert_str_eq(all[0]->url, "https://example.com/hook");
	for (size_t i = 0; i < n; i++)
		ep_entry_release(all[i]);
	free(all);
	epcache_free(c);
}
