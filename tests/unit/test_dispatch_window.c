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
	cr_assert_eq(dwin_init(&w, 100), 0);
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
	cr_assert_eq(dwin_init(&w, 10), 0);
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
	cr_assert_eq(dwin_init(&w, 1), 0);
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
	cr_assert_eq(dwin_init(&w, 10), 0);
	struct pending gone = mk(5, "dlv_gone"), fresh = mk(6, "dlv_fresh");
	struct pending paged = mk(7, "dlv_paged");
	gone.seq = fresh.seq = paged.seq = 42;
	int64_t after_at;
	char after_id[ID_MAX];
	/* An empty page: everything pending is in memory (W = +infinity). */
	dwin_page_done(&w, dwin_page_begin(&w, 10, &after_at, after_id), NULL, 0);
	cr_assert_not(w.overflow);
	cr_assert_eq(dwin_hold(&w, gone.seq, gone.id), 0);
	cr_assert_eq(dwin_hold(&w, gone.seq, gone.id), 0);
	cr_expect_eq(dwin_offer(&w, &fresh), DWIN_INSERTED, "offered: the new row is taken");
	cr_expect_eq(w.n, 1);
	/* The deleted row's holds end; the new row's stays. */
	dwin_release(&w, gone.seq, gone.id);
	dwin_release(&w, gone.seq, gone.id);
	cr_expect(dwin_held(&w, fresh.seq, fresh.id), "the new row is still held");
	cr_expect_eq(dwin_offer(&w, &fresh), DWIN_DUPLICATE);
	/* Paged in while another row with the seq is held: taken too. */
	dwin_rescan(&w);
	unsigned gen = dwin_page_begin(&w, 10, &after_at, after_id);
	cr_expect_eq(dwin_page_done(&w, gen, &paged, 1), 1, "paged: the new row is taken");
	cr_expect_eq(w.n, 2);
	dwin_free(&w);
}

Test(dwin, starts_wanting_a_full_page_from_minus_infinity)
{
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 1000), 0);
	size_t limit = 0;
	cr_assert(dwin_want_page(&w, &limit));
	cr_expect_eq(limit, 1000);
	int64_t at;
	char id[ID_MAX];
	dwin_page_begin(&w, limit, &at, id);
	cr_expect_eq(at, INT64_MIN);
	cr_expect_str_eq(id, "");
	/* One page at a time. */
	cr_expect_not(dwin_want_page(&w, &limit));
	dwin_free(&w);
}

struct limit_case {
	size_t window;
	size_t heap;
	size_t want_limit;
};

static const struct limit_case limit_cases[] = {
	{1000, 0, 1000},
	{1000, 100, 900},
	{1000, 499, 501},
	{10000, 4000, 6000},
	{10, 0, 10},           /* small windows page at most the window */
	{10, 4, 6},
	{10, 9, 3},            /* floor: window/4 + 1 */
	{300, 100, 200},
	{10000, 9900, 256},    /* never a trickle below DWIN_PAGE_MIN */
	{10000, 12000, 256},
};

Test(dwin, page_limit_table)
{
	for (size_t i = 0; i < sizeof limit_cases / sizeof limit_cases[0]; i++) {
		const struct limit_case *c = &limit_cases[i];
		struct dwin w;
		cr_assert_eq(dwin_init(&w, c->window), 0);
		int bad = 0;
		for (size_t k = 0; k < c->heap; k++) {
			struct pending p = mkn(100, (int)k);
			bad += dwin_push(&w, &p) != 0;
		}
		cr_assert_eq(bad, 0);
		/* W below every key, so a page is wanted at any size. */
		w.w_at = 50;
		size_t limit = 0;
		cr_expect(dwin_want_page(&w, &limit), "case %zu", i);
		cr_expect_eq(limit, c->want_limit, "case %zu: limit %zu", i, limit);
		dwin_free(&w);
	}
}

struct want_case {
	bool overflow;
	bool outstanding;
	size_t heap;          /* of a window of 100 */
	int64_t min_at;       /* key of the heap's items */
	int64_t w_at;
	bool want;
};

static const struct want_case want_cases[] = {
	{false, false, 0, 0, 0, false},    /* everything in memory */
	{true, true, 0, 0, 0, false},      /* a page is on its way */
	{true, false, 0, 0, 0, true},      /* empty */
	{true, false, 49, 10, 20, true},   /* below half the window */
	{true, false, 50, 10, 20, false},  /* half full, earliest in memory */
	{true, false, 90, 10, 20, false},
	{true, false, 90, 30, 20, true},   /* store may hold rows before the heap's min */
	{true, false, 90, 20, 20, false},  /* min == W (same id below) */
};

Test(dwin, want_page_table)
{
	for (size_t i = 0; i < sizeof want_cases / sizeof want_cases[0]; i++) {
		const struct want_case *c = &want_cases[i];
		struct dwin w;
		cr_assert_eq(dwin_init(&w, 100), 0);
		for (size_t k = 0; k < c->heap; k++) {
			struct pending p = mkn(c->min_at, (int)k);
			cr_assert_eq(dwin_push(&w, &p), 0);
		}
		w.overflow = c->overflow;
		w.page_outstanding = c->outstanding;
		w.w_at = c->w_at;
		snprintf(w.w_id, sizeof w.w_id, "dlv_000000");
		size_t limit;
		cr_expect_eq(dwin_want_page(&w, &limit), c->want, "case %zu", i);
		dwin_free(&w);
	}
}

struct offer_case {
	bool overflow;
	int64_t w_at;
	const char *w_id;
	int64_t at;
	const char *id;
	bool held;
	enum dwin_offer want;
};

static const struct offer_case offer_cases[] = {
	{false, 0, "", 500, "dlv_b", false, DWIN_INSERTED},     /* W = +inf */
	{true, 100, "dlv_m", 50, "dlv_z", false, DWIN_INSERTED},
	{true, 100, "dlv_m", 100, "dlv_a", false, DWIN_INSERTED},
	{true, 100, "dlv_m", 100, "dlv_m", false, DWIN_INSERTED}, /* key == W */
	{true, 100, "dlv_m", 100, "dlv_n", false, DWIN_ABOVE},
	{true, 100, "dlv_m", 101, "dlv_a", false, DWIN_ABOVE},
	{true, INT64_MIN, "", 0, "dlv_a", false, DWIN_ABOVE},   /* W = -inf */
	{false, 0, "", 5, "dlv_a", true, DWIN_DUPLICATE},
	{true, 100, "dlv_m", 5, "dlv_a", true, DWIN_DUPLICATE},
};

Test(dwin, offer_table)
{
	for (size_t i = 0; i < sizeof offer_cases / sizeof offer_cases[0]; i++) {
		const struct offer_case *c = &offer_cases[i];
		struct dwin w;
		cr_assert_eq(dwin_init(&w, 100), 0);
		w.overflow = c->overflow;
		w.w_at = c->w_at;
		snprintf(w.w_id, sizeof w.w_id, "%s", c->w_id);
		if (c->held)
			cr_assert_eq(dwin_hold(&w, row(c->id), c->id), 0);
		struct pending p = mk(c->at, c->id);
		enum dwin_offer got = dwin_offer(&w, &p);
		cr_expect_eq(got, c->want, "case %zu: got %d", i, got);
		size_t want_n = c->want == DWIN_INSERTED ? 1 : 0;
		cr_expect_eq(w.n, want_n, "case %zu: heap size", i);
		int want_holds = c->held ? 1 : (c->want == DWIN_INSERTED ? 1 : 0);
		cr_expect_eq(dwin_hold_count(&w, row(c->id), c->id), want_holds, "case %zu: holds", i);
		dwin_free(&w);
	}
}

struct resched_case {
	bool overflow;
	int64_t w_at;
	bool outstanding;
	int64_t new_at;
	bool kept;
};

static const struct resched_case resched_cases[] = {
	{false, 0, false, 1000000, true},   /* everything fits in memory */
	{true, 500, false, 400, true},      /* covered */
	{true, 500, false, 600, false},     /* above W: the store has it */
	{true, 500, true, 600, true},       /* a page may have read the old row */
	{true, INT64_MIN, false, 0, false},
	{true, INT64_MIN, true, 0, true},
};

Test(dwin, reschedule_table)
{
	for (size_t i = 0; i < sizeof resched_cases / sizeof resched_cases[0]; i++) {
		const struct resched_case *c = &resched_cases[i];
		struct dwin w;
		cr_assert_eq(dwin_init(&w, 100), 0);
		w.overflow = c->overflow;
		w.w_at = c->w_at;
		snprintf(w.w_id, sizeof w.w_id, "dlv_zzz");
		w.page_outstanding = c->outstanding;
		/* In flight: one in-memory hold, one for its pending record. */
		cr_assert_eq(dwin_hold(&w, row("dlv_a"), "dlv_a"), 0);
		cr_assert_eq(dwin_hold(&w, row("dlv_a"), "dlv_a"), 0);
		struct pending p = mk(c->new_at, "dlv_a");
		cr_expect_eq(dwin_reschedule(&w, &p), c->kept, "case %zu", i);
		cr_expect_eq(w.n, c->kept ? 1u : 0u, "case %zu", i);
		cr_expect_eq(dwin_hold_count(&w, row("dlv_a"), "dlv_a"), c->kept ? 2 : 1, "case %zu", i);
		dwin_free(&w);
	}
}

Test(dwin, full_page_moves_watermark_and_skips_held)
{
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 4), 0);
	size_t limit = 0;
	cr_assert(dwin_want_page(&w, &limit));
	cr_assert_eq(limit, 4);
	int64_t at;
	char after[ID_MAX];
	unsigned gen = dwin_page_begin(&w, limit, &at, after);
	/* dlv_b is in flight already. */
	cr_assert_eq(dwin_hold(&w, row("dlv_b"), "dlv_b"), 0);
	struct pending page[4] = {mk(1, "dlv_a"), mk(2, "dlv_b"), mk(2, "dlv_c"), mk(3, "dlv_d")};
	cr_expect_eq(dwin_page_done(&w, gen, page, 4), 3);
	cr_expect_eq(w.n, 3);
	cr_expect_eq(dwin_hold_count(&w, row("dlv_b"), "dlv_b"), 1);
	cr_expect(w.overflow, "a full page means more may follow");
	cr_expect_eq(w.w_at, 3);
	cr_expect_str_eq(w.w_id, "dlv_d");
	cr_expect_not(w.page_outstanding);
	/* 3 of 4 held, min <= W: no page wanted. */
	cr_expect_not(dwin_want_page(&w, &limit));
	dwin_free(&w);
}

Test(dwin, short_page_clears_overflow)
{
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 100), 0);
	size_t limit;
	cr_assert(dwin_want_page(&w, &limit));
	int64_t at;
	char after[ID_MAX];
	unsigned gen = dwin_page_begin(&w, limit, &at, after);
	struct pending page[2] = {mk(1, "dlv_a"), mk(9, "dlv_b")};
	cr_expect_eq(dwin_page_done(&w, gen, page, 2), 2);
	cr_expect_not(w.overflow);
	cr_expect_not(dwin_want_page(&w, &limit));
	/* Now everything is covered. */
	struct pending late = mk(INT64_MAX, "dlv_z");
	cr_expect_eq(dwin_offer(&w, &late), DWIN_INSERTED);
	dwin_free(&w);
}

Test(dwin, empty_store_page)
{
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 100), 0);
	size_t limit;
	cr_assert(dwin_want_page(&w, &limit));
	int64_t at;
	char after[ID_MAX];
	unsigned gen = dwin_page_begin(&w, limit, &at, after);
	cr_expect_eq(dwin_page_done(&w, gen, NULL, 0), 0);
	cr_expect_not(w.overflow);
	cr_expect_not(w.page_outstanding);
	dwin_free(&w);
}

Test(dwin, rescan_makes_outstanding_page_stale)
{
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 100), 0);
	size_t limit;
	cr_assert(dwin_want_page(&w, &limit));
	int64_t at;
	char after[ID_MAX];
	unsigned gen = dwin_page_begin(&w, limit, &at, after);
	dwin_rescan(&w);
	cr_expect_not(dwin_want_page(&w, &limit), "still one page at a time");
	struct pending page[1] = {mk(1, "dlv_a")};
	cr_expect_eq(dwin_page_done(&w, gen, page, 1), 0);
	cr_expect_eq(w.n, 0);
	cr_expect_not(dwin_held(&w, row("dlv_a"), "dlv_a"));
	cr_expect(w.overflow);
	cr_expect_eq(w.w_at, INT64_MIN);
	cr_expect(dwin_want_page(&w, &limit), "the rescan's page goes next");
	dwin_free(&w);
}

Test(dwin, failed_page_changes_nothing)
{
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 100), 0);
	size_t limit;
	cr_assert(dwin_want_page(&w, &limit));
	int64_t at;
	char after[ID_MAX];
	unsigned gen = dwin_page_begin(&w, limit, &at, after);
	dwin_page_failed(&w, gen);
	cr_expect(w.overflow);
	cr_expect_eq(w.w_at, INT64_MIN);
	cr_expect(dwin_want_page(&w, &limit));
	dwin_free(&w);
}

Test(dwin, evict_keeps_lowest_three_quarters)
{
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 100), 0);
	w.overflow = false; /* everything fitted so far */
	/* 125 is window + slack: nothing happens yet. */
	for (int i = 0; i < 125; i++) {
		struct pending p = mkn(1000 - i, i);
		cr_assert_eq(dwin_offer(&w, &p), DWIN_INSERTED);
	}
	cr_expect_eq(dwin_evict(&w), 0);
	struct pending p = mkn(5000, 999);
	cr_assert_eq(dwin_offer(&w, &p), DWIN_INSERTED);
	cr_expect_eq(dwin_evict(&w), 126 - 75);
	cr_expect_eq(w.n, 75);
	cr_expect(w.overflow);
	/* Keys were 876..1000 and 5000: the 75 lowest are 876..950. */
	cr_expect_eq(w.w_at, 950);
	cr_expect_str_eq(w.w_id, "dlv_000050");
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
	/* Evicted keys are above W now: a new one there is left to paging. */
	struct pending q = mkn(960, 500);
	cr_expect_eq(dwin_offer(&w, &q), DWIN_ABOVE);
	dwin_free(&w);
}

Test(dwin, evict_never_raises_watermark)
{
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 8), 0);
	w.overflow = true;
	w.w_at = 3;
	snprintf(w.w_id, sizeof w.w_id, "dlv_000000");
	/* Rescheduled during an outstanding page: keys above W. */
	w.page_outstanding = true;
	for (int i = 0; i < 11; i++) {
		struct pending p = mkn(10 + i, i);
		cr_assert_eq(dwin_hold(&w, p.seq, p.id), 0);
		cr_assert(dwin_reschedule(&w, &p));
	}
	cr_expect_eq(dwin_evict(&w), 0, "not while a page is outstanding");
	w.page_outstanding = false;
	cr_expect_eq(dwin_evict(&w), 11 - 6);
	cr_expect_eq(w.w_at, 3);
	cr_expect_str_eq(w.w_id, "dlv_000000");
	dwin_free(&w);
}

Test(dwin, evict_keeps_record_holds)
{
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 4), 0);
	w.overflow = false;
	for (int i = 0; i < 6; i++) {
		struct pending p = mkn(i, i);
		cr_assert_eq(dwin_offer(&w, &p), DWIN_INSERTED);
	}
	/* dlv_000005 has a result waiting for its commit. */
	cr_assert_eq(dwin_hold(&w, row("dlv_000005"), "dlv_000005"), 0);
	cr_expect_eq(dwin_evict(&w), 3);
	cr_expect_eq(dwin_hold_count(&w, row("dlv_000005"), "dlv_000005"), 1);
	cr_expect_not(dwin_held(&w, row("dlv_000004"), "dlv_000004"));
	/* Two go out, so the window wants a page. */
	for (int i = 0; i < 2; i++) {
		struct pending p;
		dwin_pop(&w, &p);
		dwin_release(&w, p.seq, p.id);
	}
	/* A page that still shows it must not load it twice. */
	size_t limit;
	cr_assert(dwin_want_page(&w, &limit));
	int64_t at;
	char after[ID_MAX];
	unsigned gen = dwin_page_begin(&w, limit, &at, after);
	cr_expect_eq(at, 2);
	struct pending page[3] = {mkn(3, 3), mkn(4, 4), mkn(5, 5)};
	cr_assert_eq(limit, 3);
	cr_expect_eq(dwin_page_done(&w, gen, page, 3), 2);
	cr_expect(w.overflow, "a full page");
	cr_expect_str_eq(w.w_id, "dlv_000005");
	cr_expect_eq(dwin_hold_count(&w, row("dlv_000005"), "dlv_000005"), 1);
	dwin_free(&w);
}

/* A backlog drained through pages, with the store simulated as a sorted
 * array: every row comes out exactly once, in key order. */
Test(dwin, backlog_drains_once_in_order)
{
	enum { ROWS = 5000 };
	static struct pending store[ROWS];
	static bool done[ROWS];
	for (int i = 0; i < ROWS; i++) {
		store[i] = mkn(i / 3, i); /* ties on time, ids break them */
		done[i] = false;
	}
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 300), 0);
	struct pending last = mk(INT64_MIN, "");
	int sent = 0, pages = 0;
	while (sent < ROWS) {
		size_t limit;
		if (dwin_want_page(&w, &limit)) {
			int64_t at;
			char after[ID_MAX];
			unsigned gen = dwin_page_begin(&w, limit, &at, after);
			/* store_pending_page: rows after the key, not yet sent. */
			static struct pending out[ROWS];
			size_t n = 0;
			for (int i = 0; i < ROWS && n < limit; i++) {
				if (done[i])
					continue;
				if (dwin_key_cmp(store[i].next_attempt_at, store[i].id, at, after) > 0)
					out[n++] = store[i];
			}
			dwin_page_done(&w, gen, out, n);
			pages++;
			cr_assert(pages < 1000, "paging does not converge");
			continue;
		}
		cr_assert_gt(w.n, 0, "nothing to send and no page wanted after %d", sent);
		struct pending p;
		dwin_pop(&w, &p);
		cr_assert(dwin_key_cmp(last.next_attempt_at, last.id, p.next_attempt_at, p.id) < 0);
		last = p;
		int k = atoi(p.id + 4);
		cr_assert_not(done[k], "%s sent twice", p.id);
		done[k] = true;
		dwin_release(&w, p.seq, p.id);
		sent++;
	}
	cr_expect_eq(w.n, 0);
	cr_expect_eq(w.slot_n, 0);
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
enum sim_op_kind { SIM_INGEST, SIM_RECORD, SIM_PAGE, SIM_REFILL, SIM_GAIN, SIM_LOSE, SIM_RELEASE };

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
	struct pending *items;         /* page result */
	int ep;                        /* gain, lose, release */
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
			dwin_page_done(&s->w, m->gen, m->items, m->n);
			free(m->items);
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
	/* The watermark invariant: every pending row the dispatcher knows of,
	 * not in flight, with a key <= W, is in the heap. */
	memset(s->in_heap, 0, sizeof s->in_heap);
	for (size_t i = 0; i < s->w.n; i++)
		s->in_heap[atoi(s->w.heap[i].id + 4)] = true;
	for (int k = 0; k < s->n_live; k++) {
		int i = s->live[k];
		struct sim_row *r = &s->rows[i];
		if (!r->known || r->truth != SIM_PENDING || r->in_flight || s->in_heap[i])
			continue;
		if (s->owning && !s->mem_owned[i % SIM_EPS])
			continue; /* its owner's */
		struct pending p = sim_pending(i, r->truth_at, 0);
		if (dwin_covered_row(&s->w, &p))
			s->lost++;
	}
	size_t limit;
	if (dwin_want_page(&s->w, &limit)) {
		struct sim_op *pg = calloc(1, sizeof *pg);
		pg->kind = SIM_PAGE;
		pg->limit = limit;
		pg->gen = dwin_page_begin(&s->w, limit, &pg->after_at, pg->after_id);
		sim_push(&s->cq_tail, pg);
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

/* ep_cap: 0 = no per-endpoint cap. owning: endpoints move in and out of
 * this node's ownership (none owned at the start). */
static void sim_run(unsigned seed, size_t ep_cap, bool owning)
{
	static struct sim s;
	memset(&s, 0, sizeof s);
	s.cq_tail = &s.cq;
	s.inbox_tail = &s.inbox;
	cr_assert_eq(dwin_init(&s.w, SIM_WINDOW), 0);
	if (ep_cap > 0)
		cr_assert_eq(dwin_cap_endpoints(&s.w, ep_cap), 0);
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
	if (ep_cap > 0) {
		cr_expect_eq(s.w.eps.n, 0, "seed %u: endpoint entries left", seed);
		cr_expect_eq(s.w.refills_out, 0, "seed %u: refills left outstanding", seed);
	}
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
	cr_assert_eq(dwin_init(&w, 100), 0);
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
	cr_assert_eq(dwin_init(&w, 1000), 0);
	cr_assert_eq(dwin_cap_endpoints(&w, 10), 0);
	dwin_page_done(&w, dwin_page_begin(&w, 1000, &(int64_t){0}, (char[ID_MAX]){0}), NULL, 0);
	cr_assert_not(w.overflow);
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

/* A page reads past a capped endpoint's rows (W moves on) without keeping
 * them, so the next page does not read them again. */
Test(dwin, page_moves_past_a_capped_endpoints_rows)
{
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 1000), 0);
	cr_assert_eq(dwin_cap_endpoints(&w, 10), 0);
	struct pending items[40];
	for (int i = 0; i < 40; i++)
		items[i] = i % 4 == 3 ? mke("fast", i, i) : mke("slow", i, i);
	size_t limit;
	cr_assert(dwin_want_page(&w, &limit));
	int64_t at;
	char after[ID_MAX];
	unsigned gen = dwin_page_begin(&w, 40, &at, after);
	cr_expect_eq(dwin_page_done(&w, gen, items, 40), 20); /* 10 slow, 10 fast */
	cr_expect_eq(w.w_at, 39, "W is past every row read");
	cr_expect_eq(dwin_ep_find(&w, "slow")->held, 10);
	cr_expect_eq(dwin_ep_find(&w, "fast")->held, 10);
	/* The next page starts after the last row read: none of the 20 slow
	 * rows left behind is read again by paging. */
	gen = dwin_page_begin(&w, 100, &at, after);
	cr_expect_eq(at, 39);
	cr_expect_str_eq(after, items[39].id);
	dwin_free(&w);
}

/* The endpoint drains to half its cap: it asks for its rows back from
 * just below the first row left behind, and gets up to its cap again; a
 * short refill says the store has no more of it. */
Test(dwin, refill_when_the_endpoint_drains)
{
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 1000), 0);
	cr_assert_eq(dwin_cap_endpoints(&w, 10), 0);
	w.overflow = false;
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
	cr_assert_eq(dwin_init(&w, 1000), 0);
	cr_assert_eq(dwin_cap_endpoints(&w, 4), 0);
	w.overflow = false;
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
	cr_assert_eq(dwin_init(&w, 1000), 0);
	cr_assert_eq(dwin_cap_endpoints(&w, 8), 0);
	w.overflow = false;
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

/* Without dwin_cap_endpoints nothing changes: one endpoint may fill the
 * window as before. */
Test(dwin, cap_off_by_default)
{
	struct dwin w;
	cr_assert_eq(dwin_init(&w, 100), 0);
	w.overflow = false;
	for (int i = 0; i < 100; i++) {
		struct pending p = mke("ep", i, i);
		cr_expect_eq(dwin_offer(&w, &p), DWIN_INSERTED);
	}
	cr_expect_null(dwin_ep_find(&w, "ep"));
	dwin_free(&w);
}
