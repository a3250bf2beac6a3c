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
