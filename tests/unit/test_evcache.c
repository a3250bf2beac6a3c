/* evcache: the dispatcher's copies of newly ingested events. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evcache.h"
#include "pending.h"

static struct evcache c;

static void setup(void) { cr_assert_eq(evcache_init(&c), 0); }
static void teardown(void) { evcache_free(&c); }

TestSuite(evcache, .init = setup, .fini = teardown);

static struct evcache_entry *entry(const char *id, const char *type, const char *data, int64_t at)
{
	struct event ev = {.type = (char *)type, .data = (char *)data, .created_at = at};
	snprintf(ev.id, sizeof ev.id, "%s", id);
	struct evcache_entry *e = evcache_entry_new(&ev);
	cr_assert_not_null(e);
	return e;
}

static bool cached(const char *id)
{
	struct event ev;
	int rc = evcache_view(&c, id, &ev);
	cr_assert(rc == 0 || rc == 1);
	return rc == 0;
}

Test(evcache, view_gives_the_event_as_put)
{
	evcache_put(&c, entry("evt_1", "media.created", "{\"a\":1}", 1234));
	struct event ev;
	cr_assert_eq(evcache_view(&c, "evt_1", &ev), 0);
	cr_assert_str_eq(ev.id, "evt_1");
	cr_assert_str_eq(ev.type, "media.created");
	cr_assert_str_eq(ev.data, "{\"a\":1}");
	cr_assert_eq(ev.created_at, 1234);
	/* The strings are the entry's, not copies (nothing to free). */
	struct event again;
	cr_assert_eq(evcache_view(&c, "evt_1", &again), 0);
	cr_assert_eq(again.data, ev.data);
	cr_assert_eq(evcache_view(&c, "evt_2", &ev), 1);
	cr_assert(cached("evt_1")); /* viewing leaves it cached */
}

Test(evcache, an_id_put_twice_keeps_the_first)
{
	evcache_put(&c, entry("evt_1", "t.one", "1", 1));
	evcache_put(&c, entry("evt_1", "t.two", "2", 2));
	struct event ev;
	cr_assert_eq(evcache_view(&c, "evt_1", &ev), 0);
	cr_assert_str_eq(ev.type, "t.one");
	cr_assert_eq(c.n, 1);
}

Test(evcache, oldest_go_first_at_the_entry_limit)
{
	char id[32];
	for (int i = 0; i < EVCACHE_MAX_ENTRIES + 10; i++) {
		snprintf(id, sizeof id, "evt_%d", i);
		evcache_put(&c, entry(id, "t", "{}", i));
	}
	cr_assert_eq(c.n, EVCACHE_MAX_ENTRIES);
	cr_assert_not(cached("evt_0"));
	cr_assert_not(cached("evt_9"));
	cr_assert(cached("evt_10"));
	snprintf(id, sizeof id, "evt_%d", EVCACHE_MAX_ENTRIES + 9);
	cr_assert(cached(id));
}

Test(evcache, oldest_go_first_at_the_byte_limit)
{
	size_t len = 512 * 1024;
	char *big = malloc(len + 1);
	cr_assert_not_null(big);
	memset(big, 'x', len);
	big[len] = '\0';
	char id[32];
	int n = (int)(EVCACHE_MAX_BYTES / len) + 4;
	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof id, "evt_%d", i);
		evcache_put(&c, entry(id, "t", big, i));
		cr_assert_leq(c.bytes, EVCACHE_MAX_BYTES);
	}
	cr_assert_not(cached("evt_0"));
	snprintf(id, sizeof id, "evt_%d", n - 1);
	cr_assert(cached(id));
	/* An event larger than the whole cache is not kept, nor does it
	 * empty the cache. */
	size_t n_before = c.n;
	char *huge = malloc(EVCACHE_MAX_BYTES + 2);
	cr_assert_not_null(huge);
	memset(huge, 'y', EVCACHE_MAX_BYTES + 1);
	huge[EVCACHE_MAX_BYTES + 1] = '\0';
	evcache_put(&c, entry("evt_huge", "t", huge, 0));
	cr_assert_not(cached("evt_huge"));
	cr_assert_eq(c.n, n_before);
	free(huge);
	free(big);
}

Test(evcache, a_cache_that_could_not_start_stores_nothing)
{
	struct evcache off = {0}; /* as left by a failed evcache_init */
	evcache_put(&off, entry("evt_1", "t", "{}", 1));
	struct event ev;
	cr_assert_eq(evcache_view(&off, "evt_1", &ev), 1);
	evcache_free(&off);
}

/* evcache_keep's test in the next case: endpoints ep_mine and ep_also. */
static bool mine(const char *endpoint_id, const void *arg)
{
	(void)arg;
	return strcmp(endpoint_id, "ep_mine") == 0 || strcmp(endpoint_id, "ep_also") == 0;
}

static struct pending delivery(const char *event_id, const char *endpoint_id)
{
	struct pending p = {0};
	snprintf(p.event_id, sizeof p.event_id, "%s", event_id);
	snprintf(p.endpoint_id, sizeof p.endpoint_id, "%s", endpoint_id);
	return p;
}

/* A node of several keeps the events of the deliveries it sends: one with
 * any delivery to an endpoint it owns stays (in the order given), one whose
 * deliveries are all other nodes' is freed (ASan's leak check: each entry
 * kept or freed once). */
Test(evcache, keep_holds_the_events_of_deliveries_kept)
{
	const char *ids[] = {"evt_a", "evt_b", "evt_c", "evt_d", "evt_e"};
	struct evcache_entry *list = NULL, **tail = &list;
	for (size_t i = 0; i < 5; i++) {
		*tail = entry(ids[i], "t", "{}", (int64_t)i);
		tail = &(*tail)->next;
	}
	struct pending items[] = {
		delivery("evt_a", "ep_theirs"), delivery("evt_b", "ep_theirs"),
		delivery("evt_b", "ep_mine"),   delivery("evt_c", "ep_other"),
		delivery("evt_d", "ep_also"),   delivery("evt_e", "ep_theirs"),
		delivery("evt_e", "ep_other"),
	};
	struct evcache_entry *kept = evcache_keep(list, items, 7, mine, NULL);
	const char *want[] = {"evt_b", "evt_d"};
	size_t n = 0;
	while (kept != NULL) {
		struct evcache_entry *next = kept->next;
		cr_assert_lt(n, 2, "kept %s", kept->id);
		cr_assert_str_eq(kept->id, want[n]);
		n++;
		free(kept);
		kept = next;
	}
	cr_assert_eq(n, 2);
	cr_assert_null(evcache_keep(NULL, items, 7, mine, NULL));
	/* An event none of the kept deliveries belongs to goes. */
	struct evcache_entry *one = entry("evt_z", "t", "{}", 0);
	cr_assert_null(evcache_keep(one, items, 7, mine, NULL));
}
