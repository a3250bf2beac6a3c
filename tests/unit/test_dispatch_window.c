/* dispatch_window: heap order, the id holds, and the paging/eviction rules. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch_window.h"

/* The row a test id stands for: holds are by row (seq). A 63-bit FNV-1a
 * of the id, so the same id is always the same row. */
static int64_t row(const char *id)
{
	uint64_t h = 1469598103934665603ull;
	for (const unsigned char *c = (const unsigned char *)id; *c; c++)
		h = (h ^ *c) * 1099511628211ull;
	return (int64_t)(h >> 1) | 1;
}

static struct pending mk(int64_t at, const char *id)
{
	struct pending p;
	memset(&p, 0, sizeof p);
	p.next_attempt_at = at;
	p.seq = row(id);
	snprintf(p.id, sizeof p.id, "%s", id);
	snprintf(p.event_id, sizeof p.event_id, "evt_%s", id);
	snprintf(p.endpoint_id, sizeof p.endpoint_id, "ep_1");
	return p;
}

static struct pending mkn(int64_t at, int n)
{
	char id[32];
	snprintf(id, sizeof id, "dlv_%06d", n);
	return mk(at, id);
}

/* dwin_init, then the start's rescan done with an empty store: everything
 * pending is in memory, so offers go in. */
static int init_settled(struct dwin *w, size_t window, size_t ep_cap)
{
	if (dwin_init(w, window, ep_cap) != 0)
		return -1;
	dwin_listing_begin(w);
	return dwin_listing_done(w, NULL, 0);
}

struct cmp_case {
	int64_t a_at;
	const char *a_id;
	int64_t b_at;
	const char *b_id;
	int sign;
};

static const struct cmp_case cmp_cases[] = {
	{1, "a", 2, "a", -1},
	{2, "a", 1, "a", 1},
	{1, "a", 1, "b", -1},
	{1, "b", 1, "a", 1},
	{1, "a", 1, "a", 0},
	{INT64_MIN, "", 0, "dlv_x", -1},
	{INT64_MIN, "", INT64_MIN, "a", -1},
	{5, "dlv_B", 5, "dlv_a", -1}, /* BINARY collation: uppercase first */
	{-1, "z", 0, "a", -1},
};

Test(dwin, key_cmp_table)
{
	for (size_t i = 0; i < sizeof cmp_cases / sizeof cmp_cases[0]; i++) {
		const struct cmp_case *c = &cmp_cases[i];
		int got = dwin_key_cmp(c->a_at, c->a_id, c->b_at, c->b_id);
		int sign = got < 0 ? -1 : got > 0 ? 1 : 0;
		cr_expect_eq(sign, c->sign, "case %zu", i);
	}
}

Test(dwin, heap_pops_in_key_order)
{
	struct dwin w;
	cr_assert_eq(init_settled(&w, 100, 100), 0);
	srand(7);
	int bad = 0;
	for (int i = 0; i < 1000; i++) {
		struct pending p = mkn(rand() % 50, i);
		bad += dwin_push(&w, &p) != 0;
	}
	cr_assert_eq(bad, 0);
	cr_expect_eq(w.n, 1000);
	struct pending prev, cur;
	dwin_pop(&w, &prev);
	for (int i = 1; i < 1000; i++) {
		cr_assert_not_null(dwin_peek(&w));
		dwin_pop(&w, &cur);
		cr_assert(dwin_key_cmp(prev.next_attempt_at, prev.id, cur.next_attempt_at, cur.id) < 0,
			  "pop %d out of order", i);
		prev = cur;
	}
	cr_expect_null(dwin_peek(&w));
	dwin_free(&w);
}

Test(dwin, holds_count_and_forget)
{
	struct dwin w;
	cr_assert_eq(init_settled(&w, 10, 10), 0);
	cr_expect_not(dwin_held(&w, row("dlv_a"), "dlv_a"));
	cr_assert_eq(dwin_hold(&w, row("dlv_a"), "dlv_a"), 0);
	cr_assert_eq(dwin_hold(&w, row("dlv_a"), "dlv_a"), 0);
	cr_expect_eq(dwin_hold_count(&w, row("dlv_a"), "dlv_a"), 2);
	dwin_release(&w, row("dlv_a"), "dlv_a");
	cr_expect(dwin_held(&w, row("dlv_a"), "dlv_a"));
	dwin_release(&w, row("dlv_a"), "dlv_a");
	cr_expect_not(dwin_held(&w, row("dlv_a"), "dlv_a"));
	cr_expect_eq(w.slot_n, 0);
	/* Releasing what is not held changes nothing. */
	dwin_release(&w, row("dlv_a"), "dlv_a");
	cr_expect_eq(w.slot_n, 0);
	dwin_free(&w);
}

/* Row k of holds_vs_reference: numbered from 1 up as the store numbers
 * them, every fourth number given to three rows (a deleted row's number
 * given again), told apart by their ids. */
static int64_t ref_seq(int k)
{
	return k % 4 == 0 ? k / 12 * 4 + 1 : k + 1;
}

static const char *ref_id(int k)
{
	static char id[32];
	snprintf(id, sizeof id, "dlv_%d", k);
	return id;
}

/* Random holds and releases against a plain reference array, across table
 * growth and backward-shift deletion (churn near the load limit makes probe
 * runs wrap around the end of the table), with rows that share a seq. */
static void holds_vs_reference(int ids, int ops, int hold_pct, unsigned seed)
{
	int *ref = calloc((size_t)ids, sizeof *ref);
	cr_assert_not_null(ref);
	struct dwin w;
	cr_assert_eq(init_settled(&w, 1, 1), 0);
	srand(seed);
	for (int op = 1; op <= ops; op++) {
		int k = rand() % ids;
		if (rand() % 100 < hold_pct) {
			if (dwin_hold(&w, ref_seq(k), ref_id(k)) != 0)
				cr_assert_fail("hold failed");
			ref[k]++;
		} else {
			dwin_release(&w, ref_seq(k), ref_id(k));
			if (ref[k] > 0)
				ref[k]--;
		}
		if (op % 2000 != 0 && op != ops)
			continue;
		size_t distinct = 0;
		for (int j = 0; j < ids; j++) {
			if (dwin_hold_count(&w, ref_seq(j), ref_id(j)) != ref[j])
				cr_assert_fail("seed %u op %d row %d: %d holds, want %d", seed, op, j + 1,
					       dwin_hold_count(&w, ref_seq(j), ref_id(j)), ref[j]);
			distinct += ref[j] > 0;
		}
		if (w.slot_n != distinct)
			cr_assert_fail("seed %u op %d: %zu ids held, want %zu", seed, op, w.slot_n,
				       distinct);
	}
	dwin_free(&w);
	free(ref);
}

Test(dwin, holds_match_reference)
{
	holds_vs_reference(3000, 60000, 67, 11);  /* growth */
	holds_vs_reference(200, 100000, 50, 12);  /* churn in a table of 256 */
	holds_vs_reference(120, 100000, 60, 13);
}

/* The store may give a deleted row's seq to a new row (store.h): when an
 * endpoint is deleted, its deliveries go, and one still held (in flight,
 * its result not yet committed, waiting in the heap) keeps its holds. A new
 * delivery with that seq is another row: offered or paged in, it is taken,
 * and each row's holds are its own. */
Test(dwin, a_reused_seq_is_another_row)
{
	struct dwin w;
	cr_assert_eq(init_settled(&w, 10, 10), 0);
	struct pending gone = mk(5, "dlv_gone"), fresh = mk(6, "dlv_fresh");
	struct pending paged = mk(7, "dlv_paged");
	gone.seq = fresh.seq = paged.seq = 42;
	cr_assert_eq(dwin_hold(&w, gone.seq, gone.id), 0);
	cr_assert_eq(dwin_hold(&w, gone.seq, gone.id), 0);
	cr_expect_eq(dwin_offer(&w, &fresh), DWIN_INSERTED, "offered: the new row is taken");
	cr_expect_eq(w.n, 1);
	/* The deleted row's holds end; the new row's stays. */
	dwin_release(&w, gone.seq, gone.id);
	dwin_release(&w, gone.seq, gone.id);
	cr_expect(dwin_held(&w, fresh.seq, fresh.id), "the new row is still held");
	cr_expect_eq(dwin_offer(&w, &fresh), DWIN_DUPLICATE);
	/* Refilled while another row with the seq is held: taken too. */
	const char ids[1][ID_MAX] = {"ep_1"};
	dwin_listing_begin(&w);
	cr_assert_eq(dwin_listing_done(&w, ids, 1), 0);
	struct dwin_refill r;
	cr_assert(dwin_refill_next(&w, &r));
	cr_expect_eq(dwin_refill_done(&w, "ep_1", &paged, 1), 1, "refilled: the new row is taken");
	cr_expect_eq(w.n, 2);
	dwin_free(&w);
}

Test(dwin, starts_wanting_the_listing)
{
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 1000, 100), 0);
	cr_assert(dwin_want_listing(&w), "after a start the store may hold anything");
	dwin_listing_begin(&w);
	cr_expect_not(dwin_want_listing(&w), "one listing at a time");
	/* A rescan while it is out: another listing after it. */
	dwin_rescan(&w);
	const char ids[2][ID_MAX] = {"ep_1", "ep_2"};
	cr_assert_eq(dwin_listing_done(&w, ids, 2), 0);
	cr_expect(dwin_want_listing(&w), "the rescan asked during the listing");
	/* Each listed endpoint reads all its rows back, from the lowest key. */
	for (int i = 0; i < 2; i++) {
		const struct dwin_ep *e = dwin_ep_find(&w, ids[i]);
		cr_assert_not_null(e);
		cr_expect(e->more);
		cr_expect_eq(e->lim_at, INT64_MIN);
		cr_expect_str_eq(e->lim_id, "");
	}
	struct dwin_refill r;
	cr_assert(dwin_refill_next(&w, &r));
	cr_expect_str_eq(r.endpoint_id, "ep_1");
	cr_expect_eq(r.after_at, INT64_MIN);
	cr_expect_str_eq(r.after_id, "");
	cr_expect_eq(r.limit, 500, "its cap (100), or the free half's room (500) if more");
	cr_assert(dwin_refill_next(&w, &r));
	cr_expect_str_eq(r.endpoint_id, "ep_2");
	cr_expect_not(dwin_refill_next(&w, &r));
	/* An empty store: short refills, and the entries go. */
	dwin_refill_done(&w, "ep_1", NULL, 0);
	dwin_refill_done(&w, "ep_2", NULL, 0);
	cr_expect_null(dwin_ep_find(&w, "ep_1"));
	cr_expect_null(dwin_ep_find(&w, "ep_2"));
	dwin_free(&w);
}

Test(dwin, failed_listing_is_asked_again)
{
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 100, 10), 0);
	dwin_listing_begin(&w);
	dwin_listing_failed(&w);
	cr_expect(dwin_want_listing(&w));
	dwin_listing_begin(&w);
	cr_assert_eq(dwin_listing_done(&w, NULL, 0), 0);
	cr_expect_not(dwin_want_listing(&w), "nothing pending anywhere");
	dwin_free(&w);
}

/* During a rescan an endpoint's older rows may be in the store only: a
 * new row is not taken ahead of them (it would be sent first). The
 * endpoint reads all its rows back in key order instead, at once. */
Test(dwin, offers_during_a_rescan_wait_for_the_refill)
{
	struct dwin w;
	cr_assert_eq(init_settled(&w, 100, 10), 0);
	struct pending before = mk(5, "dlv_a");
	cr_expect_eq(dwin_offer(&w, &before), DWIN_INSERTED, "no rescan: taken");
	dwin_rescan(&w);
	for (int listing_out = 0; listing_out < 2; listing_out++) {
		struct pending p = mkn(50, listing_out);
		cr_expect_eq(dwin_offer(&w, &p), DWIN_CAPPED, "listing out: %d", listing_out);
		const struct dwin_ep *e = dwin_ep_find(&w, "ep_1");
		cr_assert_not_null(e);
		cr_expect(e->more);
		cr_expect_eq(e->lim_at, INT64_MIN);
		cr_expect_not(dwin_covered_row(&w, &p));
		if (listing_out == 0) {
			struct dwin_refill r;
			cr_assert(dwin_refill_next(&w, &r), "its refill goes without the listing");
			cr_expect_eq(r.after_at, INT64_MIN);
			dwin_refill_failed(&w, "ep_1");
			dwin_listing_begin(&w);
		}
	}
	cr_assert_eq(dwin_listing_done(&w, NULL, 0), 0);
	struct pending after = mk(1, "dlv_z");
	snprintf(after.endpoint_id, sizeof after.endpoint_id, "ep_2");
	cr_expect_eq(dwin_offer(&w, &after), DWIN_INSERTED, "the rescan is over");
	dwin_free(&w);
}

/* The refills fill the heap up to the window, no further: past it the
 * endpoints wait, their refills asked for as rows leave. */
Test(dwin, refills_wait_for_room_in_the_window)
{
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 10, 8), 0);
	const char ids[2][ID_MAX] = {"ep_a", "ep_b"};
	dwin_listing_begin(&w);
	cr_assert_eq(dwin_listing_done(&w, ids, 2), 0);
	struct dwin_refill r;
	cr_assert(dwin_refill_next(&w, &r));
	cr_expect_eq(r.limit, 8);
	struct pending a[8];
	for (int i = 0; i < 8; i++) {
		char id[ID_MAX];
		snprintf(id, sizeof id, "dlv_a%d", i);
		a[i] = mk(i, id);
		snprintf(a[i].endpoint_id, sizeof a[i].endpoint_id, "ep_a");
	}
	cr_expect_eq(dwin_refill_done(&w, "ep_a", a, 8), 8);
	/* ep_b's refill: the 2 places left. */
	cr_assert(dwin_refill_next(&w, &r));
	cr_expect_str_eq(r.endpoint_id, "ep_b");
	cr_expect_eq(r.limit, 2, "the room left in the window");
	struct pending b[2] = {mk(1, "dlv_b0"), mk(2, "dlv_b1")};
	for (int i = 0; i < 2; i++)
		snprintf(b[i].endpoint_id, sizeof b[i].endpoint_id, "ep_b");
	cr_expect_eq(dwin_refill_done(&w, "ep_b", b, 2), 2);
	const struct dwin_ep *e = dwin_ep_find(&w, "ep_b");
	cr_assert_not_null(e);
	cr_expect(e->more, "a full refill: there may be more");
	/* 2 of 8 held: it wants more, but the window is full. */
	cr_expect_not(dwin_refill_next(&w, &r));
	struct pending p;
	dwin_pop(&w, &p);
	dwin_release(&w, p.seq, p.id);
	cr_assert(dwin_refill_next(&w, &r), "one place free");
	cr_expect_str_eq(r.endpoint_id, "ep_b");
	cr_expect_eq(r.limit, 1);
	cr_expect_str_eq(r.after_id, "dlv_b1");
	dwin_free(&w);
}

struct offer_case {
	bool more;
	int64_t lim_at;
	const char *lim_id;
	size_t held_before;   /* rows of the endpoint already held (cap 3) */
	int64_t at;
	const char *id;
	bool held;
	enum dwin_offer want;
};

static const struct offer_case offer_cases[] = {
	{false, 0, "", 0, 500, "dlv_b", false, DWIN_INSERTED},      /* no entry: all in memory */
	{false, 0, "", 2, 500, "dlv_b", false, DWIN_INSERTED},
	{false, 0, "", 3, 500, "dlv_b", false, DWIN_CAPPED},        /* at its cap */
	{true, 100, "dlv_m", 0, 50, "dlv_z", false, DWIN_INSERTED},
	{true, 100, "dlv_m", 0, 100, "dlv_a", false, DWIN_INSERTED},
	{true, 100, "dlv_m", 0, 100, "dlv_m", false, DWIN_INSERTED}, /* key == lim */
	{true, 100, "dlv_m", 0, 100, "dlv_n", false, DWIN_CAPPED},   /* above lim */
	{true, 100, "dlv_m", 0, 101, "dlv_a", false, DWIN_CAPPED},
	{true, INT64_MIN, "", 0, 0, "dlv_a", false, DWIN_CAPPED},    /* after a listing */
	{false, 0, "", 0, 5, "dlv_a", true, DWIN_DUPLICATE},
	{true, 100, "dlv_m", 0, 5, "dlv_a", true, DWIN_DUPLICATE},
};

Test(dwin, offer_table)
{
	for (size_t i = 0; i < sizeof offer_cases / sizeof offer_cases[0]; i++) {
		const struct offer_case *c = &offer_cases[i];
		struct dwin w;
		cr_assert_eq(init_settled(&w, 100, 3), 0);
		w.free_rows = 0; /* caps strictly (the free half has a test of its own) */
		for (size_t k = 0; k < c->held_before; k++) {
			struct pending q = mkn(1, (int)k);
			cr_assert_eq(dwin_offer(&w, &q), DWIN_INSERTED);
		}
		if (c->more) {
			const char ids[1][ID_MAX] = {"ep_1"};
			dwin_listing_begin(&w);
			cr_assert_eq(dwin_listing_done(&w, ids, 1), 0);
			struct dwin_ep *e = (struct dwin_ep *)dwin_ep_find(&w, "ep_1");
			e->lim_at = c->lim_at;
			snprintf(e->lim_id, sizeof e->lim_id, "%s", c->lim_id);
		}
		if (c->held)
			cr_assert_eq(dwin_hold(&w, row(c->id), c->id), 0);
		size_t n0 = w.n;
		struct pending p = mk(c->at, c->id);
		enum dwin_offer got = dwin_offer(&w, &p);
		cr_expect_eq(got, c->want, "case %zu: got %d", i, got);
		cr_expect_eq(w.n, n0 + (c->want == DWIN_INSERTED ? 1 : 0), "case %zu: heap size", i);
		int want_holds = c->held ? 1 : (c->want == DWIN_INSERTED ? 1 : 0);
		cr_expect_eq(dwin_hold_count(&w, row(c->id), c->id), want_holds, "case %zu: holds", i);
		if (c->want == DWIN_CAPPED)
			cr_expect_not(dwin_covered_row(&w, &p), "case %zu: left to a refill", i);
		dwin_free(&w);
	}
}

struct resched_case {
	bool more;
	int64_t lim_at;
	bool refilling;
	int64_t new_at;
	bool kept;
};

static const struct resched_case resched_cases[] = {
	{false, 0, false, 1000000, true},   /* everything of it is in memory */
	{true, 500, false, 400, true},      /* below its lim */
	{true, 500, false, 600, false},     /* above lim: the store has it */
	{true, 500, true, 600, true},       /* a refill may have read the old row */
	{true, INT64_MIN, false, 0, false},
	{true, INT64_MIN, true, 0, true},
};

Test(dwin, reschedule_table)
{
	for (size_t i = 0; i < sizeof resched_cases / sizeof resched_cases[0]; i++) {
		const struct resched_case *c = &resched_cases[i];
		struct dwin w;
		cr_assert_eq(init_settled(&w, 100, 10), 0);
		/* In flight: one in-memory hold, one for its pending record. */
		struct pending p = mk(1, "dlv_a");
		cr_assert_eq(dwin_offer(&w, &p), DWIN_INSERTED);
		dwin_pop(&w, &p);
		cr_assert_eq(dwin_hold(&w, p.seq, p.id), 0);
		if (c->more) {
			const char ids[1][ID_MAX] = {"ep_1"};
			dwin_listing_begin(&w);
			cr_assert_eq(dwin_listing_done(&w, ids, 1), 0);
			struct dwin_refill r;
			if (c->refilling)
				cr_assert(dwin_refill_next(&w, &r));
			struct dwin_ep *e = (struct dwin_ep *)dwin_ep_find(&w, "ep_1");
			e->lim_at = c->lim_at;
			snprintf(e->lim_id, sizeof e->lim_id, "dlv_zzz");
		}
		p.next_attempt_at = c->new_at;
		cr_expect_eq(dwin_reschedule(&w, &p), c->kept, "case %zu", i);
		cr_expect_eq(w.n, c->kept ? 1u : 0u, "case %zu", i);
		cr_expect_eq(dwin_hold_count(&w, row("dlv_a"), "dlv_a"), c->kept ? 2 : 1, "case %zu", i);
		dwin_free(&w);
	}
}

Test(dwin, evict_keeps_lowest_three_quarters)
{
	struct dwin w;
	cr_assert_eq(init_settled(&w, 100, 100), 0);
	/* 125 is window + slack: nothing happens yet. Two endpoints, each
	 * under its cap (the window). */
	for (int i = 0; i < 125; i++) {
		struct pending p = mkn(1000 - i, i);
		p.endpoint_id[3] = (char)('1' + i % 2);
		cr_assert_eq(dwin_offer(&w, &p), DWIN_INSERTED);
	}
	cr_expect_eq(dwin_evict(&w), 0);
	struct pending p = mkn(5000, 999);
	cr_assert_eq(dwin_offer(&w, &p), DWIN_INSERTED);
	cr_expect_eq(dwin_evict(&w), 126 - 75);
	cr_expect_eq(w.n, 75);
	/* Keys were 876..1000 and 5000: the 75 lowest are 876..950. ep_2's
	 * rows (odd i) from 951 on and ep_1's (even i) from 952 on are the
	 * store's now. */
	const struct dwin_ep *e1 = dwin_ep_find(&w, "ep_1"), *e2 = dwin_ep_find(&w, "ep_2");
	cr_assert_not_null(e1);
	cr_assert_not_null(e2);
	cr_expect(e1->more && e2->more);
	cr_expect_eq(e2->lim_at, 950);
	cr_expect_eq(e1->lim_at, 951);
	cr_expect_str_eq(e1->lim_id, "");
	cr_expect_eq(e1->held + e2->held, 75);
	cr_expect_eq(w.slot_n, 75);
	cr_expect(dwin_held(&w, row("dlv_000124"), "dlv_000124"), "key 876 kept");
	cr_expect_not(dwin_held(&w, row("dlv_000049"), "dlv_000049"), "key 951 evicted");
	cr_expect_not(dwin_held(&w, row("dlv_000999"), "dlv_000999"));
	/* The array is still a heap. */
	struct pending prev, cur;
	dwin_pop(&w, &prev);
	cr_expect_eq(prev.next_attempt_at, 876);
	while (w.n > 0) {
		dwin_pop(&w, &cur);
		cr_assert(cur.next_attempt_at > prev.next_attempt_at);
		prev = cur;
	}
	/* An evicted key is above lim now: a new one there is left to the
	 * refill; one below goes in. */
	struct pending q = mkn(960, 500), r = mkn(900, 502);
	cr_expect_eq(dwin_offer(&w, &q), DWIN_CAPPED);
	cr_expect_eq(dwin_offer(&w, &r), DWIN_INSERTED);
	dwin_free(&w);
}

Test(dwin, evict_keeps_record_holds)
{
	struct dwin w;
	cr_assert_eq(init_settled(&w, 4, 4), 0);
	/* ep_2 holds the three earliest, ep_1 the three latest. */
	for (int i = 0; i < 6; i++) {
		struct pending p = mkn(i, i);
		if (i < 3)
			p.endpoint_id[3] = '2';
		cr_assert_eq(dwin_offer(&w, &p), DWIN_INSERTED);
	}
	/* dlv_000005 has a result waiting for its commit. */
	cr_assert_eq(dwin_hold(&w, row("dlv_000005"), "dlv_000005"), 0);
	cr_expect_eq(dwin_evict(&w), 3);
	cr_expect_eq(dwin_hold_count(&w, row("dlv_000005"), "dlv_000005"), 1);
	cr_expect_not(dwin_held(&w, row("dlv_000004"), "dlv_000004"));
	/* ep_1's held row is the one with a result: it wants its rows back
	 * (two of ep_2's go out first, so the window has room for three). */
	struct dwin_refill r;
	cr_expect_eq(dwin_ep_find(&w, "ep_1")->held, 1);
	for (int i = 0; i < 2; i++) {
		struct pending p;
		dwin_pop(&w, &p);
		dwin_release(&w, p.seq, p.id);
	}
	cr_assert(dwin_refill_next(&w, &r));
	cr_expect_eq(r.after_at, 2, "from just below the first row evicted (3)");
	cr_expect_eq(r.limit, 3, "the room left in the window");
	/* A refill that still shows it must not load it twice. */
	struct pending rows[3] = {mkn(3, 3), mkn(4, 4), mkn(5, 5)};
	cr_expect_eq(dwin_refill_done(&w, "ep_1", rows, 3), 2);
	cr_expect_eq(dwin_hold_count(&w, row("dlv_000005"), "dlv_000005"), 1);
	cr_expect(dwin_ep_find(&w, "ep_1")->more, "a full refill");
	cr_expect_eq(dwin_ep_find(&w, "ep_1")->lim_at, 5);
	dwin_free(&w);
}

/* A backlog of three endpoints drained through the listing and refills,
 * with the store simulated as a sorted array: every row comes out exactly
 * once, each endpoint's in key order. */
Test(dwin, backlog_drains_once_in_order)
{
	enum { ROWS = 5000, EPS = 3 };
	static struct pending store[ROWS];
	static bool done[ROWS];
	for (int i = 0; i < ROWS; i++) {
		store[i] = mkn(i / 3, i); /* ties on time, ids break them */
		snprintf(store[i].endpoint_id, sizeof store[i].endpoint_id, "ep_%d", i % EPS);
		done[i] = false;
	}
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 300, 64), 0);
	struct pending last[EPS];
	for (int k = 0; k < EPS; k++)
		last[k] = mk(INT64_MIN, "");
	int sent = 0, refills = 0;
	if (dwin_want_listing(&w)) {
		const char ids[EPS][ID_MAX] = {"ep_0", "ep_1", "ep_2"};
		dwin_listing_begin(&w);
		cr_assert_eq(dwin_listing_done(&w, ids, EPS), 0);
	}
	while (sent < ROWS) {
		struct dwin_refill r;
		if (dwin_refill_next(&w, &r)) {
			/* store_pending_page_endpoint: its rows after the key, not
			 * yet sent. */
			static struct pending out[ROWS];
			size_t n = 0;
			for (int i = 0; i < ROWS && n < r.limit; i++) {
				if (done[i] || strcmp(store[i].endpoint_id, r.endpoint_id) != 0)
					continue;
				if (dwin_key_cmp(store[i].next_attempt_at, store[i].id, r.after_at,
						 r.after_id) > 0)
					out[n++] = store[i];
			}
			dwin_refill_done(&w, r.endpoint_id, out, n);
			refills++;
			cr_assert(refills < 1000, "paging does not converge");
			continue;
		}
		cr_assert_gt(w.n, 0, "nothing to send and no refill wanted after %d", sent);
		struct pending p;
		dwin_pop(&w, &p);
		int k = atoi(p.id + 4);
		int ep = k % EPS;
		cr_assert(dwin_key_cmp(last[ep].next_attempt_at, last[ep].id, p.next_attempt_at,
				       p.id) < 0);
		last[ep] = p;
		cr_assert_not(done[k], "%s sent twice", p.id);
		done[k] = true;
		dwin_release(&w, p.seq, p.id);
		sent++;
	}
	cr_expect_eq(w.n, 0);
	cr_expect_eq(w.slot_n, 0);
	cr_expect_eq(w.eps.n, 0, "every endpoint's entry gone");
	dwin_free(&w);
}

/* ---- the whole protocol, simulated ----
 * A model of the dispatcher and the commit thread: a FIFO of commit ops
 * (ingest, record, page) applied to a simulated store, whose done messages
 * reach the dispatcher's inbox in the same order. Random ingests, sends,
 * failures with retries, rescans and a small window. Checks that no stale
 * copy of a delivery is ever sent (which would be a duplicate send), and that
 * every delivery ends succeeded or dead. */

enum { SIM_ROWS = 1500, SIM_OPS = 200000, SIM_WINDOW = 40, SIM_CAP = 8 };

enum sim_state { SIM_NONE = 0, SIM_PENDING, SIM_DONE };

struct sim_row {
	enum sim_state state;     /* in the store */
	int64_t at;
	int attempts;
	enum sim_state truth;     /* including results not committed yet */
	int truth_attempts;
	int64_t truth_at;
	bool known;               /* the dispatcher has seen its ingest commit */
	bool in_flight;
};

/* SIM_GAIN and SIM_LOSE are the cluster thread's messages (straight to
 * the inbox); SIM_RELEASE is the lost endpoint's release, a commit op. */
/* SIM_FETCHREQ is the listener's notice of another node's ingest; SIM_FETCH
 * the fetch op it makes, an early op (commit.h): it runs before the ops
 * already queued. */
enum sim_op_kind { SIM_INGEST, SIM_RECORD, SIM_LIST, SIM_REFILL, SIM_GAIN, SIM_LOSE, SIM_RELEASE,
		   SIM_FETCHREQ, SIM_FETCH };

enum { SIM_EPS = 3 };

struct sim_op {
	enum sim_op_kind kind;
	struct sim_op *next;
	size_t n;
	int ids[SIM_CAP + 1];          /* ingest: new rows; record: results */
	enum sim_state states[SIM_CAP + 1];
	int64_t ats[SIM_CAP + 1];
	int attempts[SIM_CAP + 1];
	int64_t after_at;              /* page */
	char after_id[ID_MAX];
	size_t limit;
	unsigned gen;
	char endpoint_id[ID_MAX];      /* refill */
	struct pending *items;         /* refill result */
	char list[SIM_EPS][ID_MAX];    /* listing result */
	size_t n_list;
	int ep;                        /* gain, lose, release */
	bool remote;                   /* ingest: another node's (heard of by a fetch) */
};

struct sim {
	struct sim_row rows[SIM_ROWS];
	int n_rows;
	struct sim_op *cq, **cq_tail;  /* commit queue */
	struct sim_op *inbox, **inbox_tail;
	struct dwin w;
	bool in_heap[SIM_ROWS];
	/* The rows whose truth is SIM_PENDING (the only ones the watermark
	 * check below looks at), so that check need not walk finished rows. */
	int live[SIM_ROWS], live_at[SIM_ROWS];
	int n_live;
	int in_flight[SIM_CAP];
	int n_in_flight;
	int64_t now;
	int sends, stale, lost;
	/* Ownership (when `owning`), as with several nodes: the store's
	 * endpoint_owner rows (pages and refills read only the owned
	 * endpoints' rows) and the dispatcher's owned set (offers skip, picks
	 * drop the others' rows). A gain is written to the store before its
	 * message; a loss reaches the dispatcher first and the store after. */
	bool owning;
	bool db_owned[SIM_EPS], mem_owned[SIM_EPS];
	bool moving[SIM_EPS];          /* a gain or a loss is on its way */
};

static int sim_ep_of(const char *endpoint_id)
{
	return atoi(endpoint_id + 3);
}

/* SIM_EPS endpoints: rows go to ep_0, ep_1, ep_2 by id. */
static struct pending sim_pending(int id, int64_t at, int attempts)
{
	char name[32];
	snprintf(name, sizeof name, "dlv_%06d", id);
	struct pending p = mk(at, name);
	p.attempt_count = attempts;
	snprintf(p.endpoint_id, sizeof p.endpoint_id, "ep_%d", id % SIM_EPS);
	return p;
}

static void sim_push(struct sim_op ***tail, struct sim_op *op)
{
	op->next = NULL;
	**tail = op;
	*tail = &op->next;
}

static struct sim_op *sim_take(struct sim_op **head, struct sim_op ***tail)
{
	struct sim_op *op = *head;
	if (op != NULL) {
		*head = op->next;
		if (*head == NULL)
			*tail = head;
	}
	return op;
}

/* The commit thread: applies one op, then its done() posts to the inbox. */
static void sim_commit_one(struct sim *s)
{
	struct sim_op *op = sim_take(&s->cq, &s->cq_tail);
	if (op == NULL)
		return;
	if (op->kind == SIM_INGEST) {
		for (size_t i = 0; i < op->n; i++) {
			struct sim_row *r = &s->rows[op->ids[i]];
			r->state = SIM_PENDING;
		}
		if (op->remote) {
			/* Another node's commit: this node hears of it by a
			 * notice (its own done() is the other node's). */
			op->kind = SIM_FETCHREQ;
			sim_push(&s->inbox_tail, op);
			return;
		}
	} else if (op->kind == SIM_FETCH) {
		/* store_pending_by_seq: those still pending, of owned endpoints. */
		op->items = malloc((op->n + 1) * sizeof *op->items);
		size_t k = 0;
		for (size_t i = 0; i < op->n; i++) {
			const struct sim_row *r = &s->rows[op->ids[i]];
			if (r->state == SIM_PENDING && (!s->owning || s->db_owned[op->ids[i] % SIM_EPS]))
				op->items[k++] = sim_pending(op->ids[i], r->at, r->attempts);
		}
		op->n_list = k;
	} else if (op->kind == SIM_RECORD) {
		for (size_t i = 0; i < op->n; i++) {
			struct sim_row *r = &s->rows[op->ids[i]];
			r->state = op->states[i];
			r->at = op->ats[i];
			r->attempts = op->attempts[i];
		}
	} else if (op->kind == SIM_RELEASE) {
		s->db_owned[op->ep] = false;
		s->moving[op->ep] = false;
		free(op);
		return;
	} else if (op->kind == SIM_LIST) {
		/* store_pending_endpoints: those with a pending row (owned). */
		for (int ep = 0; ep < SIM_EPS; ep++) {
			bool any = false;
			for (int i = ep; i < s->n_rows && !any; i += SIM_EPS)
				any = s->rows[i].state == SIM_PENDING;
			if (any && (!s->owning || s->db_owned[ep]))
				snprintf(op->list[op->n_list++], ID_MAX, "ep_%d", ep);
		}
	} else {
		/* store_pending_page over the committed rows, in key order. The
		 * key's id is "dlv_" and the row number in six digits, so it
		 * compares as the number does ("" is below every id). */
		op->items = malloc(op->limit * sizeof *op->items);
		op->n = 0;
		int64_t last_at = op->after_at;
		int last_k = op->after_id[0] != '\0' ? atoi(op->after_id + 4) : -1;
		int refill_ep = op->kind == SIM_REFILL ? sim_ep_of(op->endpoint_id) : -1;
		while (op->n < op->limit) {
			int best = -1;
			for (int i = 0; i < s->n_rows; i++) {
				const struct sim_row *r = &s->rows[i];
				if (r->state != SIM_PENDING)
					continue;
				if (refill_ep >= 0 && i % SIM_EPS != refill_ep)
					continue; /* store_pending_page_endpoint */
				if (s->owning && !s->db_owned[i % SIM_EPS])
					continue; /* another node's */
				if (r->at < last_at || (r->at == last_at && i <= last_k))
					continue;
				if (best < 0 || r->at < s->rows[best].at)
					best = i; /* ties: the lower row first, as i grows */
			}
			if (best < 0)
				break;
			op->items[op->n++] =
				sim_pending(best, s->rows[best].at, s->rows[best].attempts);
			last_at = s->rows[best].at;
			last_k = best;
		}
	}
	sim_push(&s->inbox_tail, op);
}

static void sim_ingest(struct sim *s)
{
	struct sim_op *op = calloc(1, sizeof *op);
	op->kind = SIM_INGEST;
	op->remote = s->owning && rand() % 2 == 0;
	int k = 1 + rand() % 4;
	for (int i = 0; i < k && s->n_rows < SIM_ROWS; i++) {
		int id = s->n_rows++;
		struct sim_row *r = &s->rows[id];
		r->at = s->now + rand() % 20;
		r->truth = SIM_PENDING;
		r->truth_at = r->at;
		s->live_at[id] = s->n_live;
		s->live[s->n_live++] = id;
		op->ids[op->n] = id;
		op->ats[op->n++] = r->at;
	}
	sim_push(&s->cq_tail, op);
}

static bool sim_not_owned(const struct pending *p, void *arg)
{
	const struct sim *s = arg;
	return !s->mem_owned[sim_ep_of(p->endpoint_id)];
}

/* The cluster thread moves endpoint ep: gains it (the store first, then
 * the message) or gives it up (the message; the dispatcher releases it). */
static void sim_cluster(struct sim *s, int ep)
{
	if (s->moving[ep])
		return;
	struct sim_op *m = calloc(1, sizeof *m);
	m->ep = ep;
	if (!s->db_owned[ep]) {
		s->db_owned[ep] = true;
		m->kind = SIM_GAIN;
	} else {
		m->kind = SIM_LOSE;
	}
	s->moving[ep] = true;
	sim_push(&s->inbox_tail, m);
}

/* One dispatcher iteration. */
static void sim_dispatch(struct sim *s, bool rescan)
{
	struct sim_op *m;
	while ((m = sim_take(&s->inbox, &s->inbox_tail)) != NULL) {
		if (m->kind == SIM_INGEST) {
			for (size_t i = 0; i < m->n; i++) {
				struct pending p = sim_pending(m->ids[i], m->ats[i], 0);
				if (!s->owning || s->mem_owned[sim_ep_of(p.endpoint_id)])
					dwin_offer(&s->w, &p);
				s->rows[m->ids[i]].known = true;
			}
		} else if (m->kind == SIM_FETCHREQ) {
			/* The fetch op goes ahead of the queued ops. */
			m->kind = SIM_FETCH;
			m->next = s->cq;
			if (s->cq == NULL)
				s->cq_tail = &m->next;
			s->cq = m;
			continue;
		} else if (m->kind == SIM_FETCH) {
			for (size_t i = 0; i < m->n_list; i++) {
				struct pending p = m->items[i];
				int id = atoi(p.id + 4);
				if (s->mem_owned[sim_ep_of(p.endpoint_id)])
					dwin_offer(&s->w, &p);
				s->rows[id].known = true;
			}
			free(m->items);
		} else if (m->kind == SIM_GAIN) {
			s->mem_owned[m->ep] = true;
			s->moving[m->ep] = false;
			dwin_rescan(&s->w);
		} else if (m->kind == SIM_LOSE) {
			s->mem_owned[m->ep] = false;
			dwin_drop_if(&s->w, sim_not_owned, s);
			struct sim_op *rel = calloc(1, sizeof *rel);
			rel->kind = SIM_RELEASE;
			rel->ep = m->ep;
			sim_push(&s->cq_tail, rel);
		} else if (m->kind == SIM_RECORD) {
			for (size_t i = 0; i < m->n; i++) {
				struct pending p = sim_pending(m->ids[i], 0, 0);
				dwin_release(&s->w, p.seq, p.id);
			}
		} else if (m->kind == SIM_REFILL) {
			dwin_refill_done(&s->w, m->endpoint_id, m->items, m->n);
			free(m->items);
		} else {
			dwin_listing_done(&s->w, (const char(*)[ID_MAX])m->list, m->n_list);
		}
		free(m);
	}
	if (rescan)
		dwin_rescan(&s->w);
	/* Start what is due. */
	const struct pending *top;
	while (s->n_in_flight < SIM_CAP && (top = dwin_peek(&s->w)) != NULL &&
	       top->next_attempt_at <= s->now) {
		struct pending p;
		dwin_pop(&s->w, &p);
		int id = atoi(p.id + 4);
		struct sim_row *r = &s->rows[id];
		if (s->owning && !s->mem_owned[sim_ep_of(p.endpoint_id)]) {
			dwin_release(&s->w, p.seq, p.id); /* its owner's */
			continue;
		}
		if (r->in_flight || r->truth != SIM_PENDING || r->truth_attempts != p.attempt_count) {
			s->stale++;
			dwin_release(&s->w, p.seq, p.id);
			continue;
		}
		r->in_flight = true;
		s->in_flight[s->n_in_flight++] = id;
		s->sends++;
	}
	/* Some finish: succeed, or fail and retry up to 3 attempts. */
	struct sim_op *rec = calloc(1, sizeof *rec);
	rec->kind = SIM_RECORD;
	for (int i = 0; i < s->n_in_flight;) {
		if (rand() % 2) {
			i++;
			continue;
		}
		int id = s->in_flight[i];
		s->in_flight[i] = s->in_flight[--s->n_in_flight];
		struct sim_row *r = &s->rows[id];
		r->in_flight = false;
		r->truth_attempts++;
		struct pending p = sim_pending(id, 0, r->truth_attempts);
		bool ok = rand() % 3 == 0;
		if (ok || r->truth_attempts >= 3) {
			r->truth = SIM_DONE;
			int last = s->live[--s->n_live];
			s->live[s->live_at[id]] = last;
			s->live_at[last] = s->live_at[id];
		}
		dwin_hold(&s->w, p.seq, p.id);
		rec->ids[rec->n] = id;
		rec->states[rec->n] = r->truth;
		rec->attempts[rec->n] = r->truth_attempts;
		if (r->truth == SIM_PENDING) {
			p.next_attempt_at = s->now + 1 + rand() % 30;
			rec->ats[rec->n] = p.next_attempt_at;
			r->truth_at = p.next_attempt_at;
			dwin_reschedule(&s->w, &p);
		} else {
			dwin_release(&s->w, p.seq, p.id);
		}
		rec->n++;
	}
	if (rec->n > 0)
		sim_push(&s->cq_tail, rec);
	else
		free(rec);
	dwin_evict(&s->w);
	/* The window's invariant, outside a rescan (which says rows of any
	 * endpoint may be missing until its listing is done): every pending
	 * row the dispatcher knows of, not in flight, that its endpoint does
	 * not leave to a refill (dwin_covered_row), is in the heap. */
	bool rescanning = s->w.rescan || s->w.listing_outstanding;
	memset(s->in_heap, 0, sizeof s->in_heap);
	for (size_t i = 0; i < s->w.n; i++)
		s->in_heap[atoi(s->w.heap[i].id + 4)] = true;
	for (int k = 0; k < s->n_live; k++) {
		int i = s->live[k];
		struct sim_row *r = &s->rows[i];
		if (rescanning || !r->known || r->truth != SIM_PENDING || r->in_flight ||
		    s->in_heap[i])
			continue;
		if (s->owning && !s->mem_owned[i % SIM_EPS])
			continue; /* its owner's */
		struct pending p = sim_pending(i, r->truth_at, 0);
		if (dwin_covered_row(&s->w, &p))
			s->lost++;
	}
	if (dwin_want_listing(&s->w)) {
		struct sim_op *ls = calloc(1, sizeof *ls);
		ls->kind = SIM_LIST;
		dwin_listing_begin(&s->w);
		sim_push(&s->cq_tail, ls);
	}
	struct dwin_refill rf;
	while (dwin_refill_next(&s->w, &rf)) {
		struct sim_op *op = calloc(1, sizeof *op);
		op->kind = SIM_REFILL;
		op->limit = rf.limit;
		op->after_at = rf.after_at;
		memcpy(op->after_id, rf.after_id, ID_MAX);
		memcpy(op->endpoint_id, rf.endpoint_id, ID_MAX);
		sim_push(&s->cq_tail, op);
	}
}

/* ep_cap: the endpoints' cap (0: the window, no cap in effect). owning:
 * endpoints move in and out of this node's ownership (none owned at the
 * start). */
static void sim_run(unsigned seed, size_t ep_cap, bool owning)
{
	static struct sim s;
	memset(&s, 0, sizeof s);
	s.cq_tail = &s.cq;
	s.inbox_tail = &s.inbox;
	cr_assert_eq(dwin_init(&s.w, SIM_WINDOW, ep_cap > 0 ? ep_cap : SIM_WINDOW), 0);
	s.owning = owning;
	srand(seed);
	for (int step = 0; step < SIM_OPS; step++) {
		int r = rand() % 100;
		if (owning && rand() % 500 == 0)
			sim_cluster(&s, rand() % SIM_EPS);
		if (r < 8 && s.n_rows < SIM_ROWS)
			sim_ingest(&s);
		else if (r < 50)
			sim_commit_one(&s);
		else if (r < 90)
			sim_dispatch(&s, rand() % 200 == 0);
		else
			s.now++;
	}
	/* Quiesce: no new work, let everything finish. */
	for (int round = 0; round < 100000; round++) {
		for (int ep = 0; owning && ep < SIM_EPS; ep++)
			if (!s.db_owned[ep])
				sim_cluster(&s, ep); /* every endpoint owned in the end */
		bool busy = s.cq != NULL || s.inbox != NULL || s.n_in_flight > 0;
		for (int i = 0; i < s.n_rows && !busy; i++)
			busy = s.rows[i].truth != SIM_DONE;
		if (!busy)
			break;
		sim_commit_one(&s);
		sim_dispatch(&s, false);
		s.now++;
	}
	int undone = 0;
	for (int i = 0; i < s.n_rows; i++)
		undone += s.rows[i].truth != SIM_DONE || s.rows[i].state != SIM_DONE;
	cr_expect_eq(undone, 0, "seed %u: %d deliveries never finished", seed, undone);
	cr_expect_eq(s.n_live, 0, "seed %u: the live list missed a finished row", seed);
	cr_expect_eq(s.stale, 0, "seed %u: %d stale copies reached the send path", seed, s.stale);
	cr_expect_eq(s.lost, 0, "seed %u: %d times a covered row was not in memory", seed, s.lost);
	cr_expect_eq(s.w.slot_n, 0, "seed %u: holds left", seed);
	cr_expect_gt(s.sends, s.n_rows, "seed %u: retries happened", seed);
	cr_expect_eq(s.w.eps.n, 0, "seed %u: endpoint entries left", seed);
	cr_expect_eq(s.w.refills_out, 0, "seed %u: refills left outstanding", seed);
	dwin_free(&s.w);
}

Test(dwin, protocol_simulation, .timeout = 60)
{
	for (unsigned seed = 1; seed <= 5; seed++)
		sim_run(seed, 0, false);
}

/* The same with a per-endpoint cap of 4 rows in a window of 40: rows left
 * in the store past the cap come back by refills, none lost, none sent
 * twice from a stale copy. */
Test(dwin, protocol_simulation_with_endpoint_cap, .timeout = 60)
{
	for (unsigned seed = 1; seed <= 5; seed++)
		sim_run(seed, 4, false);
}

/* The same with endpoints gained and lost at random, as with several
 * nodes (dispatch_own.c): pages and refills read only what the store says
 * is owned, which a gain changes before its message and a loss after. */
Test(dwin, protocol_simulation_with_moving_ownership, .timeout = 60)
{
	for (unsigned seed = 1; seed <= 5; seed++) {
		sim_run(seed, 4, true);
		sim_run(seed, 0, true);
	}
}

static bool of_ep_2(const struct pending *p, void *arg)
{
	(void)arg;
	return strcmp(p->endpoint_id, "ep_2") == 0;
}

/* An endpoint lost to another node: its heap entries go and their holds
 * with them; the rest keep their order. */
Test(dwin, drop_if_takes_one_endpoints_rows_out)
{
	struct dwin w;
	cr_assert_eq(init_settled(&w, 100, 100), 0);
	for (int i = 0; i < 20; i++) {
		struct pending p = mkn(1000 - i, i);
		if (i % 3 == 0)
			snprintf(p.endpoint_id, sizeof p.endpoint_id, "ep_2");
		cr_assert_eq(dwin_hold(&w, p.seq, p.id), 0);
		cr_assert_eq(dwin_push(&w, &p), 0);
	}
	cr_assert_eq(dwin_drop_if(&w, of_ep_2, NULL), 7);
	cr_assert_eq(w.n, 13);
	for (int i = 0; i < 20; i++) {
		struct pending p = mkn(1000 - i, i);
		cr_assert_eq(dwin_held(&w, p.seq, p.id), i % 3 != 0, "dlv %d", i);
	}
	int64_t last = INT64_MIN;
	struct pending out;
	while (dwin_peek(&w) != NULL) {
		dwin_pop(&w, &out);
		cr_assert_str_eq(out.endpoint_id, "ep_1");
		cr_assert_geq(out.next_attempt_at, last);
		last = out.next_attempt_at;
	}
	cr_assert_eq(dwin_drop_if(&w, of_ep_2, NULL), 0);
	dwin_free(&w);
}

/* ---- the per-endpoint cap ---- */

/* Row n of endpoint ep at time at. */
static struct pending mke(const char *ep, int64_t at, int n)
{
	char id[32];
	snprintf(id, sizeof id, "dlv_%s_%04d", ep, n);
	struct pending p = mk(at, id);
	snprintf(p.endpoint_id, sizeof p.endpoint_id, "%s", ep);
	return p;
}

Test(dwin, cap_start_table)
{
	static const struct { size_t window, cap; } cases[] = {
		{10000, 156}, {200, 32}, {100, 32}, {20, 20}, {1000000, 15625},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(dwin_ep_cap_start(cases[i].window), cases[i].cap, "window %zu",
			     cases[i].window);
}

/* A slow endpoint's backlog stops at its cap; another endpoint's rows
 * still get in; the rows past the cap are left to the store, and nothing
 * counts them as in memory. */
Test(dwin, cap_leaves_an_endpoints_rows_past_it_in_the_store)
{
	struct dwin w;
	cr_assert_eq(init_settled(&w, 1000, 10), 0);
	w.free_rows = 0; /* caps strictly (the free half has a test of its own) */
	for (int i = 0; i < 15; i++) {
		struct pending p = mke("slow", 100 + i, i);
		cr_expect_eq(dwin_offer(&w, &p), i < 10 ? DWIN_INSERTED : DWIN_CAPPED, "row %d", i);
	}
	for (int i = 0; i < 5; i++) {
		struct pending p = mke("fast", 200 + i, i);
		cr_expect_eq(dwin_offer(&w, &p), DWIN_INSERTED, "fast row %d", i);
	}
	cr_expect_eq(w.n, 15);
	const struct dwin_ep *e = dwin_ep_find(&w, "slow");
	cr_assert_not_null(e);
	cr_expect_eq(e->held, 10);
	cr_expect(e->more);
	/* The endpoint's lim is just below the first row left behind (at 110):
	 * (109, ""), below the rows at 109 too, which a refill skips as held. */
	struct pending kept = mke("slow", 108, 8), left = mke("slow", 110, 10);
	cr_expect(dwin_covered_row(&w, &kept));
	cr_expect_not(dwin_covered_row(&w, &left), "a row left in the store is not claimed");
	cr_expect_eq(dwin_ep_find(&w, "fast")->held, 5);
	cr_expect_not(dwin_ep_find(&w, "fast")->more);
	/* Nothing to refill while it holds more than half its cap. */
	struct dwin_refill r;
	cr_expect_not(dwin_refill_next(&w, &r));
	dwin_free(&w);
}

/* The endpoint drains to half its cap: it asks for its rows back from
 * just below the first row left behind, and gets up to its cap again; a
 * short refill says the store has no more of it. */
Test(dwin, refill_when_the_endpoint_drains)
{
	struct dwin w;
	cr_assert_eq(init_settled(&w, 1000, 10), 0);
	w.free_rows = 0; /* caps strictly (the free half has a test of its own) */
	struct pending rows[30];
	for (int i = 0; i < 30; i++) {
		rows[i] = mke("slow", 100 + i, i);
		dwin_offer(&w, &rows[i]);
	}
	struct pending p;
	struct dwin_refill r;
	for (int i = 0; i < 4; i++) { /* sent and recorded: 6 held */
		dwin_pop(&w, &p);
		dwin_release(&w, p.seq, p.id);
	}
	cr_expect_not(dwin_refill_next(&w, &r), "6 held > half of 10");
	dwin_pop(&w, &p);
	dwin_release(&w, p.seq, p.id);
	cr_assert(dwin_refill_next(&w, &r), "5 held: wants its rows back");
	cr_expect_str_eq(r.endpoint_id, "slow");
	cr_expect_eq(r.after_at, 109, "from just below the first row left (110)");
	cr_expect_eq(r.limit, 5);
	cr_expect_not(dwin_refill_next(&w, &r), "one refill at a time per endpoint");
	/* The store's answer: rows above (109, "") in key order. */
	cr_expect_eq(dwin_refill_done(&w, "slow", &rows[10], 5), 5);
	const struct dwin_ep *e = dwin_ep_find(&w, "slow");
	cr_expect_eq(e->held, 10);
	cr_expect(e->more, "a full refill: there may be more");
	cr_expect_eq(e->lim_at, 114);
	/* Drain it all; the refills bring the rest, in key order. */
	int64_t last = 104;
	int sent = 5;
	while (w.n > 0) {
		dwin_pop(&w, &p);
		cr_expect_gt(p.next_attempt_at, last, "in key order");
		last = p.next_attempt_at;
		dwin_release(&w, p.seq, p.id);
		sent++;
		if (dwin_refill_next(&w, &r)) {
			size_t from = (size_t)(r.after_at - 100 + 1);
			size_t n = from < 30 ? 30 - from : 0;
			if (n > r.limit)
				n = r.limit;
			dwin_refill_done(&w, "slow", &rows[from], n);
		}
	}
	cr_expect_eq(sent, 30);
	cr_expect_null(dwin_ep_find(&w, "slow"), "a short refill: nothing left, the entry goes");
	cr_expect_eq(w.slot_n, 0);
	dwin_free(&w);
}

/* While the endpoint is `more`, a row above its lim stays in the store
 * even under the cap (its refill loads it, in key order), and a failed
 * retry above lim is let go rather than kept. */
Test(dwin, rows_above_lim_wait_for_the_refill)
{
	struct dwin w;
	cr_assert_eq(init_settled(&w, 1000, 4), 0);
	w.free_rows = 0; /* caps strictly (the free half has a test of its own) */
	for (int i = 0; i < 5; i++) {
		struct pending p = mke("ep", 100 + i, i);
		dwin_offer(&w, &p);
	}
	struct pending p;
	dwin_pop(&w, &p); /* in flight: 4 held, one free place after it ends */
	struct pending later = mke("ep", 500, 50);
	cr_expect_eq(dwin_offer(&w, &later), DWIN_CAPPED);
	/* The attempt failed: pending again at 600, above lim (103). */
	p.next_attempt_at = 600;
	cr_expect_not(dwin_reschedule(&w, &p));
	cr_expect_not(dwin_held(&w, p.seq, p.id));
	cr_expect_eq(dwin_ep_find(&w, "ep")->held, 3);
	/* Under the cap now, but the new row is above lim all the same. */
	struct pending newer = mke("ep", 700, 70);
	cr_expect_eq(dwin_offer(&w, &newer), DWIN_CAPPED);
	/* Below lim it goes in. */
	struct pending early = mke("ep", 50, 5);
	cr_expect_eq(dwin_offer(&w, &early), DWIN_INSERTED);
	dwin_free(&w);
}

/* A refill whose endpoint sent an eighth of its cap or more while it was
 * out doubles the cap (a fast endpoint); a slow one keeps it. */
Test(dwin, refill_moves_on_and_a_fast_endpoint_grows)
{
	struct dwin w;
	cr_assert_eq(init_settled(&w, 1000, 8), 0);
	w.free_rows = 0; /* caps strictly (the free half has a test of its own) */
	struct pending rows[40];
	for (int i = 0; i < 40; i++) {
		rows[i] = mke("ep", 100 + i, i);
		dwin_offer(&w, &rows[i]);
	}
	struct pending p;
	for (int i = 0; i < 4; i++) {
		dwin_pop(&w, &p);
		dwin_release(&w, p.seq, p.id);
	}
	struct dwin_refill r;
	cr_assert(dwin_refill_next(&w, &r));
	cr_expect_eq(r.limit, 4);
	/* Meanwhile it sends all it holds: drained to 0 of 8. */
	while (w.n > 0) {
		dwin_pop(&w, &p);
		dwin_release(&w, p.seq, p.id);
	}
	cr_expect_eq(dwin_refill_done(&w, "ep", &rows[8], 4), 4);
	const struct dwin_ep *e = dwin_ep_find(&w, "ep");
	cr_expect_eq(dwin_ep_cap(&w, e), 16, "drained while the refill was out: doubled");
	/* 4 held of 16: it wants more at once, from its new lim. */
	cr_assert(dwin_refill_next(&w, &r));
	cr_expect_eq(r.after_at, 111);
	cr_expect_eq(r.limit, 12);
	/* This time it sends nothing meanwhile: the cap stays. */
	cr_expect_eq(dwin_refill_done(&w, "ep", &rows[12], 12), 12);
	cr_expect_eq(dwin_ep_cap(&w, e), 16);
	cr_expect_eq(e->held, 16);
	/* The need the dispatcher gives (a batch endpoint) raises the cap. */
	dwin_ep_need(&w, "ep", 40);
	cr_expect_eq(dwin_ep_cap(&w, e), 40);
	cr_assert(dwin_refill_next(&w, &r));
	cr_expect_eq(r.limit, 24);
	dwin_free(&w);
}

/* A row left to the store while its endpoint's refill is out, above where
 * the refill began (here a retry kept because of that refill, then
 * evicted): the refill may have read the store before it, so its lim stops
 * just below it instead of moving past it (the simulation found this). */
Test(dwin, refill_does_not_move_past_a_row_left_meanwhile)
{
	struct dwin w;
	cr_assert_eq(init_settled(&w, 4, 4), 0);
	w.free_rows = 0; /* caps strictly (the free half has a test of its own) */
	for (int i = 1; i <= 5; i++) {
		struct pending p = mke("ep_1", i, i);
		cr_expect_eq(dwin_offer(&w, &p), i <= 4 ? DWIN_INSERTED : DWIN_CAPPED, "row %d", i);
	}
	struct pending p;
	for (int i = 0; i < 2; i++) { /* keys 1 and 2 sent and recorded */
		dwin_pop(&w, &p);
		dwin_release(&w, p.seq, p.id);
	}
	struct dwin_refill r;
	cr_assert(dwin_refill_next(&w, &r));
	cr_expect_eq(r.after_at, 4);
	cr_expect_eq(r.limit, 2);
	/* Key 3 goes out and fails: pending again at 50. Its record is not
	 * committed yet, so the refill (out already) cannot see the new row;
	 * the window keeps it. */
	dwin_pop(&w, &p);
	cr_assert_eq(dwin_hold(&w, p.seq, p.id), 0); /* the result's hold */
	p.next_attempt_at = 50;
	cr_assert(dwin_reschedule(&w, &p), "kept: a refill of it is out");
	/* Another endpoint's rows push the heap past the window: the row at
	 * 50 is evicted, so from 50 on ep_1's rows are the store's. */
	for (int i = 5; i <= 8; i++) {
		struct pending q = mke("ep_2", i, i);
		cr_assert_eq(dwin_offer(&w, &q), DWIN_INSERTED);
	}
	cr_expect_eq(dwin_evict(&w), 3);
	cr_expect_eq(dwin_hold_count(&w, p.seq, p.id), 1, "only the result's hold is left");
	/* The refill read the store before the record: its rows above 4 are
	 * the capped one at 5 and one at 60, a full refill. */
	struct pending rows[2] = {mke("ep_1", 5, 5), mke("ep_1", 60, 60)};
	cr_expect_eq(dwin_refill_done(&w, "ep_1", rows, 2), 2);
	const struct dwin_ep *e = dwin_ep_find(&w, "ep_1");
	cr_assert_not_null(e);
	cr_expect(e->more);
	cr_expect_eq(e->lim_at, 49, "stops just below the row left at 50, not at 60");
	cr_expect_str_eq(e->lim_id, "");
	cr_expect_not(dwin_covered_row(&w, &p), "the retry at 50 is the store's, for a refill");
	dwin_free(&w);
}

/* While the window holds less than half its rows, an endpoint at its cap
 * still takes new rows (a lone busy endpoint is not held to its small cap);
 * past that half its cap holds again. */
Test(dwin, a_mostly_free_window_takes_rows_past_a_cap)
{
	struct dwin w;
	cr_assert_eq(init_settled(&w, 100, 10), 0);
	cr_expect_eq(w.free_rows, 50);
	for (int i = 0; i < 60; i++) {
		struct pending p = mke("busy", i, i);
		cr_expect_eq(dwin_offer(&w, &p), i < 50 ? DWIN_INSERTED : DWIN_CAPPED, "row %d", i);
	}
	const struct dwin_ep *e = dwin_ep_find(&w, "busy");
	cr_expect_eq(e->held, 50);
	cr_expect(e->more);
	cr_expect_eq(e->lim_at, 49, "the rest from its first row left behind");
	/* Another endpoint under its cap is not kept out. */
	struct pending other = mke("other", 1, 1);
	cr_expect_eq(dwin_offer(&w, &other), DWIN_INSERTED);
	/* Sent until the window holds under half its free part (25 rows): it
	 * wants its rows back before it has drained to half its cap (5), and
	 * may take the free part's room, not only its cap's (none). */
	struct dwin_refill r;
	struct pending p;
	while (w.slot_n > 25) {
		dwin_pop(&w, &p);
		dwin_release(&w, p.seq, p.id);
	}
	cr_expect_not(dwin_refill_next(&w, &r), "25 held: not under half the free part");
	dwin_pop(&w, &p);
	dwin_release(&w, p.seq, p.id);
	cr_assert(dwin_refill_next(&w, &r), "24 held: under half the free part");
	cr_expect_str_eq(r.endpoint_id, "busy");
	cr_expect_eq(r.limit, 26, "the free part's room: 50 - 24");
	struct pending rows[26];
	for (int i = 0; i < 26; i++)
		rows[i] = mke("busy", 50 + i, 50 + i);
	cr_expect_eq(dwin_refill_done(&w, "busy", rows, 26), 26, "past its cap of 10");
	cr_expect_eq(w.slot_n, 50);
	dwin_free(&w);
}

/* Endpoints waiting for refills share the room left: each refill takes
 * the room over those still waiting (at least DWIN_REFILL_PART_MIN), not
 * its whole cap, so rows spread over the endpoints instead of the first
 * few refilled taking the window (bench/many.py). */
Test(dwin, waiting_endpoints_share_the_room)
{
	struct dwin w;
	cr_assert_eq(init_settled(&w, 1000, 500), 0);
	char ids[10][ID_MAX];
	for (int i = 0; i < 10; i++)
		snprintf(ids[i], ID_MAX, "ep_%d", i);
	dwin_listing_begin(&w);
	cr_assert_eq(dwin_listing_done(&w, (const char(*)[ID_MAX])ids, 10), 0);
	struct dwin_refill r;
	cr_assert(dwin_refill_next(&w, &r));
	cr_expect_eq(r.limit, 100, "1,000 rows of room over the 10 waiting");
	cr_assert(dwin_refill_next(&w, &r));
	cr_expect_eq(r.limit, 111, "over the 9 left");
	for (int i = 2; i < 10; i++)
		cr_assert(dwin_refill_next(&w, &r));
	cr_expect_eq(r.limit, 500, "the last one alone: its cap");
	dwin_free(&w);
}
