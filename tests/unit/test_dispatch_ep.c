/* dispatch_ep: the dispatcher's per-endpoint table, its ready-queue ring and
 * the status view the API reads (dispatch_status.c), without a dispatcher. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dispatch_ep.h"
#include "util.h"

/* The test's table stands in for a dispatcher: dispatch_status.c only ever
 * asks a struct dispatch for its table. */
struct dispatch_eps *dispatch_eps_of(struct dispatch *d)
{
	return (struct dispatch_eps *)(void *)d;
}

static struct pending item(int i)
{
	struct pending p;
	memset(&p, 0, sizeof p);
	snprintf(p.id, sizeof p.id, "dlv_%04d", i);
	snprintf(p.endpoint_id, sizeof p.endpoint_id, "ep_1");
	p.next_attempt_at = i;
	return p;
}

Test(dispatch_ep, ready_queue_is_fifo_across_growth_and_wrap)
{
	struct dispatch_ep e;
	memset(&e, 0, sizeof e);
	struct pending out;
	cr_assert(!dispatch_ep_pop(&e, &out), "an empty queue pops nothing");
	int next_in = 0, next_out = 0;
	/* Fill part way (capacity 16), drain some so the head moves, then push
	 * past the end (the ring wraps) and on until it grows while wrapped. */
	for (; next_in < 12; next_in++) {
		struct pending p = item(next_in);
		cr_assert_eq(dispatch_ep_push(&e, &p), 0);
	}
	for (; next_out < 7; next_out++) {
		cr_assert(dispatch_ep_pop(&e, &out));
		cr_expect_str_eq(out.id, item(next_out).id);
	}
	for (; next_in < 100; next_in++) {
		struct pending p = item(next_in);
		cr_assert_eq(dispatch_ep_push(&e, &p), 0);
	}
	cr_expect_eq(e.q_n, 93u);
	while (dispatch_ep_pop(&e, &out)) {
		cr_expect_str_eq(out.id, item(next_out).id, "order kept");
		next_out++;
	}
	cr_expect_eq(next_out, 100);
	free(e.q);
}

Test(dispatch_ep, table_finds_every_entry_through_growth)
{
	struct dispatch_eps t;
	cr_assert_eq(dispatch_eps_init(&t, 3, 1000), 0);
	char id[ID_MAX];
	struct dispatch_ep *first = NULL;
	for (int i = 0; i < 300; i++) {
		snprintf(id, sizeof id, "ep_%d", i);
		cr_expect_null(dispatch_eps_find(&t, id));
		struct dispatch_ep *e = dispatch_eps_get(&t, id);
		cr_assert_not_null(e);
		cr_expect_eq(dispatch_eps_get(&t, id), e, "get returns the same entry");
		cr_expect_eq(e->br.threshold, 3);
		cr_expect_eq(e->br.cooldown_ms, 1000);
		if (i == 0)
			first = e;
	}
	cr_expect_eq(t.table.n, 300u);
	cr_expect_gt(t.table.cap, 64u, "the table grew");
	cr_expect_eq(dispatch_eps_find(&t, "ep_0"), first, "entries keep their address");
	for (int i = 0; i < 300; i++) {
		snprintf(id, sizeof id, "ep_%d", i);
		struct dispatch_ep *e = dispatch_eps_find(&t, id);
		cr_assert_not_null(e, "%s", id);
		cr_expect_str_eq(e->id, id);
	}
	/* A queued item and a waiting batch are freed with the table. */
	struct pending p = item(1);
	cr_assert_eq(dispatch_ep_push(first, &p), 0);
	struct dbatch *b = calloc(1, sizeof *b);
	b->m = calloc(2, sizeof *b->m);
	b->quiet = calloc(2, 1);
	b->n = 2;
	first->retry = b;
	dispatch_eps_free(&t);
}

Test(dispatch_ep, status_shows_breaker_and_live_pause_only)
{
	struct dispatch_eps t;
	cr_assert_eq(dispatch_eps_init(&t, 2, 1000), 0);
	struct dispatch *d = (struct dispatch *)(void *)&t;
	struct dispatch_endpoint_status st;

	dispatch_endpoint_status(NULL, "ep_x", &st);
	cr_expect_str_eq(st.circuit, "closed");
	cr_expect_eq(st.next_probe_at, 0);
	cr_expect_eq(st.paused_until, 0);
	dispatch_endpoint_status(d, "ep_unknown", &st);
	cr_expect_str_eq(st.circuit, "closed");
	cr_expect_eq(st.paused_until, 0);

	struct dispatch_ep *e = dispatch_eps_get(&t, "ep_a");
	int64_t now = now_ms();
	breaker_record(&e->br, false, now);
	breaker_record(&e->br, false, now);
	e->paused_until = now + 60000;
	dispatch_endpoint_status(d, "ep_a", &st);
	cr_expect_str_eq(st.circuit, "open");
	cr_expect_eq(st.next_probe_at, now + 1000);
	cr_expect_eq(st.paused_until, now + 60000);

	/* A pause that has ended shows as none; a success closes the circuit. */
	e->paused_until = now - 1;
	breaker_record(&e->br, true, now);
	dispatch_endpoint_status(d, "ep_a", &st);
	cr_expect_str_eq(st.circuit, "closed");
	cr_expect_eq(st.next_probe_at, 0);
	cr_expect_eq(st.paused_until, 0);
	dispatch_eps_free(&t);
}

/* A deleted endpoint's state leaves the table once idle; the others stay
 * findable, in whatever bucket they share with it. */
Test(dispatch_ep, remove_frees_one_entry_and_keeps_the_rest)
{
	struct dispatch_eps t;
	cr_assert_eq(dispatch_eps_init(&t, 3, 1000), 0);
	enum { N = 300 };
	char id[ID_MAX];
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof id, "ep_%d", i);
		cr_assert_not_null(dispatch_eps_get(&t, id));
	}
	cr_assert_eq(dispatch_eps_count(&t), (size_t)N);
	cr_assert_eq(dispatch_endpoint_states((struct dispatch *)(void *)&t), (size_t)N);
	for (int i = 0; i < N; i += 2) {
		snprintf(id, sizeof id, "ep_%d", i);
		struct dispatch_ep *e = dispatch_eps_find(&t, id);
		struct pending p = item(i);
		cr_assert_eq(dispatch_ep_push(e, &p), 0); /* a queue array to free */
		cr_assert(dispatch_ep_pop(e, &p));
		dispatch_eps_remove(&t, e);
	}
	cr_assert_eq(dispatch_eps_count(&t), (size_t)N / 2);
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof id, "ep_%d", i);
		struct dispatch_ep *e = dispatch_eps_find(&t, id);
		if (i % 2 == 0)
			cr_assert_null(e, "%s removed", id);
		else
			cr_assert(e != NULL && strcmp(e->id, id) == 0, "%s kept", id);
	}
	dispatch_eps_free(&t);
}

/* Idle means nothing but the table points at the state: each of the
 * things that may is enough to keep it. */
Test(dispatch_ep, idle_only_when_nothing_points_at_it)
{
	struct dispatch_eps t;
	cr_assert_eq(dispatch_eps_init(&t, 3, 1000), 0);
	struct dispatch_ep *e = dispatch_eps_get(&t, "ep_1");
	cr_assert(dispatch_ep_idle(e));
	e->in_flight = 1;
	cr_assert_not(dispatch_ep_idle(e), "a request in flight");
	e->in_flight = 0;
	struct pending p = item(1);
	cr_assert_eq(dispatch_ep_push(e, &p), 0);
	cr_assert_not(dispatch_ep_idle(e), "a ready queue");
	cr_assert(dispatch_ep_pop(e, &p));
	struct dbatch b = {.n = 0};
	e->retry = &b;
	cr_assert_not(dispatch_ep_idle(e), "a batch waiting for its retry");
	e->retry = NULL;
	e->in_run = true;
	cr_assert_not(dispatch_ep_idle(e), "on the run list");
	e->in_run = false;
	e->sleeping = true;
	cr_assert_not(dispatch_ep_idle(e), "asleep");
	e->sleeping = false;
	cr_assert(dispatch_ep_idle(e));
	dispatch_eps_free(&t);
}
