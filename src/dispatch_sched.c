/* dispatch_sched: per-endpoint scheduling in the delivery loop (see
 * dispatch.c): the run and sleep lists, ready queues, rate limits, pauses,
 * the circuit breaker, batching and starting requests. */
#include "dispatch.h"


#include <curl/curl.h>
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>

#include "dispatch_clock.h"
#include "dispatch_ep.h"
#include "dispatch_http.h"
#include "dispatch_policy.h"
#include "dispatch_window.h"
#include "failure.h"
#include "log.h"
#include "util.h"
#include "dispatch_internal.h"

/* ---- per-endpoint scheduling ----
 *
 * Due deliveries leave the window's heap for their endpoint's ready queue
 * (dispatch_ep.h), where they stay held: to the window they are still "in
 * memory", so paging and its watermark work as before. The run list holds
 * the endpoints that may start a delivery now and is served round-robin,
 * one delivery per endpoint per turn, so an endpoint at its in-flight cap,
 * out of tokens, paused or with an open circuit holds up only itself. An
 * endpoint leaves the run list when it cannot start: a finished request
 * brings it back (its cap), or the sleep list does at its wake time. */

/* Puts e at the back of the run list if it has work and is not there or
 * asleep. */
void dispatch_run_add(struct dispatch *d, struct dispatch_ep *e)
{
	if (e->in_run || e->sleeping || (e->q_n == 0 && e->retry == NULL))
		return;
	if (d->run_n == d->run_cap) {
		size_t cap = d->run_cap ? d->run_cap * 2 : 64;
		struct dispatch_ep **r = malloc(cap * sizeof *r);
		if (r == NULL) {
			/* Left off the list until its next finish or wake. */
			log_error("dispatch: out of memory scheduling endpoint=%s", e->id);
			return;
		}
		for (size_t i = 0; i < d->run_n; i++)
			r[i] = d->run[(d->run_head + i) % d->run_cap];
		free(d->run);
		d->run = r;
		d->run_cap = cap;
		d->run_head = 0;
	}
	d->run[(d->run_head + d->run_n) % d->run_cap] = e;
	d->run_n++;
	e->in_run = true;
}

static struct dispatch_ep *run_pop(struct dispatch *d)
{
	if (d->run_n == 0)
		return NULL;
	struct dispatch_ep *e = d->run[d->run_head];
	d->run_head = (d->run_head + 1) % d->run_cap;
	d->run_n--;
	e->in_run = false;
	return e;
}

/* e cannot start before mono time `at`: off the run list until then. */
static void sleep_until(struct dispatch *d, struct dispatch_ep *e, int64_t at)
{
	if (e->sleeping) {
		if (at < e->wake_at)
			e->wake_at = at;
		return;
	}
	if (d->n_sleepers == d->cap_sleepers) {
		size_t cap = d->cap_sleepers ? d->cap_sleepers * 2 : 16;
		struct dispatch_ep **s = realloc(d->sleepers, cap * sizeof *s);
		if (s == NULL) {
			/* Stays runnable: it is looked at again next turn. */
			log_error("dispatch: out of memory scheduling endpoint=%s", e->id);
			dispatch_run_add(d, e);
			return;
		}
		d->sleepers = s;
		d->cap_sleepers = cap;
	}
	e->sleeping = true;
	e->wake_at = at;
	d->sleepers[d->n_sleepers++] = e;
}

/* Moves every sleeper whose time has come back to the run list. */
static void wake_sleepers(struct dispatch *d, int64_t mono)
{
	for (size_t i = 0; i < d->n_sleepers;) {
		struct dispatch_ep *e = d->sleepers[i];
		if (e->wake_at > mono) {
			i++;
			continue;
		}
		d->sleepers[i] = d->sleepers[--d->n_sleepers];
		e->sleeping = false;
		dispatch_run_add(d, e);
	}
}

/* Empties e's ready queue: its endpoint was deleted (its rows went with it),
 * disabled (the store keeps them; enabling it rescans) or is not this
 * node's (its owner pages them in). */
void dispatch_ep_drop(struct dispatch *d, struct dispatch_ep *e, const char *reason)
{
	struct pending p;
	while (dispatch_ep_pop(e, &p)) {
		log_debug("delivery skipped id=%s endpoint=%s reason=%s", p.id, p.endpoint_id,
			  reason);
		d->ready_total--;
		dwin_release(&d->win, p.seq, p.id);
	}
	while (e->retry != NULL) {
		struct dbatch *b = e->retry;
		e->retry = b->next;
		d->ready_total -= b->n;
		for (size_t i = 0; i < b->n; i++)
			dwin_release(&d->win, b->m[i].seq, b->m[i].id);
		dispatch_batch_free(b); /* created_at too */
	}
}

/* Moves the window's due deliveries to their endpoints' ready queues, up to
 * ready_cap in all (beyond it they wait in the heap, in due order). */
void dispatch_take_due(struct dispatch *d, int64_t now)
{
	const struct pending *top;
	while (d->ready_total < d->ready_cap && (top = dwin_peek(&d->win)) != NULL &&
	       top->next_attempt_at <= now) {
		struct pending p;
		dwin_pop(&d->win, &p);
		struct dispatch_ep *e = dispatch_eps_get(&d->eps, p.endpoint_id);
		/* A failed batch's member after a restart or a move: its batch. */
		if (e != NULL && p.batch_wait && dispatch_batch_rejoin(d, e, &p))
			continue;
		if (e == NULL || dispatch_ep_push(e, &p) != 0) {
			/* The row is in the store: let a page find it again. */
			log_error("dispatch: out of memory queueing id=%s", p.id);
			dwin_release(&d->win, p.seq, p.id);
			dwin_rescan(&d->win);
			return;
		}
		d->ready_total++;
		dispatch_run_add(d, e);
		/* A batch endpoint asleep until its group's wait ends goes as
		 * soon as the group is full. */
		if (e->sleeping && e->batch_max > 0 && e->q_n >= (size_t)e->batch_max)
			e->wake_at = 0;
	}
}

/* ---- results ---- */

/* Feeds one attempt's outcome to e's circuit breaker, with hookd's
 * configured cooldown in place of breaker.c's default: the first open
 * period is --breaker-cooldown and doubling stops at 20 times it. */
bool dispatch_breaker_note(struct dispatch *d, struct dispatch_ep *e, bool success, int64_t now)
{
	int64_t base = d->eps.breaker_cooldown_ms;
	pthread_mutex_lock(&d->eps.mu);
	enum breaker_state before = e->br.state;
	breaker_record(&e->br, success, now);
	if (success)
		e->br.cooldown_ms = base;
	else if (e->br.cooldown_ms > 20 * base)
		e->br.cooldown_ms = 20 * base;
	enum breaker_state after = e->br.state;
	int64_t probe_at = e->br.next_probe_at;
	pthread_mutex_unlock(&d->eps.mu);
	if (after == BREAKER_OPEN && before != BREAKER_OPEN)
		log_warn("circuit opened endpoint=%s next_probe_in_ms=%lld", e->id,
			 (long long)(probe_at - now));
	else if (after == BREAKER_CLOSED && before != BREAKER_CLOSED)
		log_info("circuit closed endpoint=%s", e->id);
	return after != before; /* half_open -> open: a failed probe, a new period */
}

/* Starts the delivery p (from e's ready queue, still held, already
 * counted in e->in_flight) to ep (a reference, which the request keeps) with
 * its event ev (NULL if it could not be read). Returns false if nothing more
 * should be started now (out of memory; p is back in the window). */
static bool start_one(struct dispatch *d, const struct pending *p, struct dispatch_ep *e,
		      struct ep_entry *ep, const struct event *ev)
{
	struct dispatch_req *x = dispatch_req_get(d);
	if (x == NULL) {
		log_error("dispatch: out of memory starting id=%s", p->id);
		ep_entry_release(ep);
		dispatch_ep_unhold(d, e);
		if (dwin_push(&d->win, p) != 0) {
			dwin_release(&d->win, p->seq, p->id);
			dwin_rescan(&d->win);
		}
		return false;
	}
	x->ep = ep;
	x->sched = e;
	x->ev_created_at = ev != NULL ? ev->created_at : 0;
	const char *why;
	enum failure_kind kind = dispatch_http_prepare(&d->reqs, &x->http, p, ep, ev, &why);
	if (kind == FAILURE_NONE)
		dispatch_send(d, x);
	else
		dispatch_finish(d, x, kind, 0, why);
	return true;
}

/* The batch setting was removed: e's waiting batches come apart, their
 * members back in the window to be sent one by one. */
static void unbatch(struct dispatch *d, struct dispatch_ep *e)
{
	while (e->retry != NULL) {
		struct dbatch *b = e->retry;
		e->retry = b->next;
		d->ready_total -= b->n;
		for (size_t i = 0; i < b->n; i++)
			if (dwin_push(&d->win, &b->m[i]) != 0) {
				dwin_release(&d->win, b->m[i].seq, b->m[i].id);
				dwin_rescan(&d->win);
			}
		dispatch_batch_free(b);
	}
}

/* A new batch of up to max of e's ready deliveries, oldest first; NULL if
 * out of memory (nothing taken). */
static struct dbatch *batch_form(struct dispatch *d, struct dispatch_ep *e, size_t max)
{
	size_t n = e->q_n < max ? e->q_n : max;
	struct dbatch *b = calloc(1, sizeof *b);
	if (b == NULL || (b->m = malloc(n * sizeof *b->m)) == NULL ||
	    (b->quiet = calloc(n, 1)) == NULL ||
	    (b->created_at = calloc(n, sizeof *b->created_at)) == NULL ||
	    id_new("bat", b->id) != 0) {
		dispatch_batch_free(b);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		dispatch_ep_pop(e, &b->m[i]);
	b->n = n;
	d->ready_total -= n;
	return b;
}

/* Reads the m events of miss_ids from the store into evs/rcs at miss_at.
 * True if the database server could not be reached (the health told). */
static bool read_misses(struct dispatch *d, const char **miss_ids, const size_t *miss_at,
			size_t m, struct event *evs, int *rcs)
{
	struct event got[START_BATCH];
	int grc[START_BATCH];
	store_event_get_many(d->st, miss_ids, m, got, grc);
	for (size_t j = 0; j < m; j++) {
		evs[miss_at[j]] = got[j];
		rcs[miss_at[j]] = grc[j];
	}
	return store_note_read(d->st, d->cfg.health) == STORE_FAULT_UNREACHABLE;
}

/* The events of ids into evs (rcs[i]: STORE_OK or the store's error): from
 * the event cache when they were handed over with their deliveries, the
 * rest read from the store, START_BATCH at a time. owned[i] says whether
 * evs[i]'s strings are the caller's (read from the store: events_drop frees
 * them) or the cache's (evcache_view: valid until the cache is next given
 * an entry, which does not happen while a round is started). True if the
 * database server could not be reached for some. */
static bool events_get(struct dispatch *d, const char **ids, size_t n, struct event *evs,
		       int *rcs, bool *owned)
{
	const char *miss_ids[START_BATCH];
	size_t miss_at[START_BATCH];
	size_t m = 0;
	bool unreachable = false;
	for (size_t i = 0; i < n; i++) {
		int rc = evcache_view(&d->events, ids[i], &evs[i]);
		rcs[i] = rc == 0 ? STORE_OK : STORE_ERROR;
		owned[i] = rc != 0;
		if (rc != 1)
			continue;
		if (m == START_BATCH) {
			unreachable |= read_misses(d, miss_ids, miss_at, m, evs, rcs);
			m = 0;
		}
		miss_ids[m] = ids[i];
		miss_at[m++] = i;
	}
	if (m > 0)
		unreachable |= read_misses(d, miss_ids, miss_at, m, evs, rcs);
	return unreachable;
}

/* Lets go of events_get's events: frees those read from the store (a
 * failed read leaves nothing to free: store.h). */
static void events_drop(struct event *evs, const int *rcs, const bool *owned, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (owned[i] && rcs[i] == STORE_OK)
			event_clear(&evs[i]);
}

/* Batch b's members go back to the window unsent (a rescan if one cannot),
 * e's hold and the endpoint reference ep are let go. */
static void batch_give_back(struct dispatch *d, struct dispatch_ep *e, struct ep_entry *ep,
			    struct dbatch *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (dwin_push(&d->win, &b->m[i]) != 0) {
			dwin_release(&d->win, b->m[i].seq, b->m[i].id);
			dwin_rescan(&d->win);
		}
	dispatch_batch_free(b);
	dispatch_ep_unhold(d, e);
	ep_entry_release(ep);
}

/* Starts batch b (its members held, counted in e->in_flight) to ep (a
 * reference, which the request keeps). */
static void start_batch(struct dispatch *d, struct dispatch_ep *e, struct ep_entry *ep,
			struct dbatch *b)
{
	size_t n = b->n;
	const char **ids = malloc(n * sizeof *ids);
	struct event *evs = calloc(n, sizeof *evs);
	const struct event **evp = malloc(n * sizeof *evp);
	int *rcs = malloc(n * sizeof *rcs);
	bool *owned = malloc(n * sizeof *owned);
	struct dispatch_req *x = NULL;
	if (ids == NULL || evs == NULL || evp == NULL || rcs == NULL || owned == NULL ||
	    (x = dispatch_req_get(d)) == NULL) {
		/* Out of memory: the members go back to the window. */
		log_error("dispatch: out of memory starting batch=%s", b->id);
		batch_give_back(d, e, ep, b);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		ids[i] = b->m[i].event_id;
	if (events_get(d, ids, n, evs, rcs, owned)) {
		/* Not the deliveries' fault: they wait, unsent and not counted
		 * as an attempt, and the dispatcher pauses with the store's
		 * backoff. */
		events_drop(evs, rcs, owned, n);
		dispatch_req_put(d, x);
		batch_give_back(d, e, ep, b);
		dispatch_store_unreachable(d);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		evp[i] = rcs[i] == STORE_OK ? &evs[i] : NULL;
		b->quiet[i] = evp[i] == NULL || evs[i].type == NULL ||
			      strcmp(evs[i].type, EVENT_DEAD_LETTERED) == 0;
		b->created_at[i] = evp[i] != NULL ? evs[i].created_at : 0;
	}
	x->ep = ep;
	x->sched = e;
	x->batch = b;
	const char *why;
	enum failure_kind kind =
		dispatch_http_prepare_batch(&d->reqs, &x->http, b->id, &b->m[0], n, ep, evp, &why);
	if (kind == FAILURE_NONE) {
		log_debug("batch started id=%s endpoint=%s size=%zu", b->id, e->id, n);
		dispatch_send(d, x);
	} else {
		dispatch_finish(d, x, kind, 0, why);
	}
	events_drop(evs, rcs, owned, n);
out:
	free(ids);
	free(evs);
	free(evp);
	free(rcs);
	free(owned);
}

/* e's fair share of the global in-flight cap while other endpoints want
 * slots: the cap over the endpoints with requests out or waiting on the run
 * list (one that is both counted twice: the share is then at most halved),
 * e counted, at least 1. 0 (no share) while e is alone, so one busy
 * endpoint still reaches its own max_in_flight. Without it endpoints
 * that answer slowly or never hold most of the global slots and starve the
 * fast ones (bench/shapes.py, step 3). Counting the busy ones even when
 * the run list is empty keeps the last endpoint of a turn from taking many
 * slots (and as many connections, each a TLS handshake) that the others
 * then need: with 1,000 endpoints the connection cache overflowed and
 * churned (bench/many.py). */
static int fair_share(const struct dispatch *d, const struct dispatch_ep *e)
{
	/* Endpoints with requests out or rows ready, or, if more, those
	 * with rows in the window or waiting in the store for its refills
	 * (each endpoint pages itself: their rows come back in bursts, and
	 * counting only the ready ones let a few take several slots and
	 * connections each; bench/many.py, docs/performance.md). */
	size_t busy = (size_t)d->eps_busy + d->run_n;
	if (d->win.eps.n > busy)
		busy = d->win.eps.n;
	size_t want = busy + (e->in_flight == 0 ? 1 : 0);
	if (want <= 1)
		return 0;
	size_t share = (size_t)d->cfg.max_in_flight / want;
	return share > 0 ? (int)share : 1;
}

/* The admission decision for e (ep: its endpoint, NULL if deleted), its
 * circuit and bucket updated as the decision used them. */
static void admit(struct dispatch *d, struct dispatch_ep *e, const struct ep_entry *ep,
		  int64_t now, int64_t mono, struct dpol_admission *a)
{
	int64_t retry_due_at = INT64_MAX;
	for (const struct dbatch *b = e->retry; b != NULL; b = b->next)
		if (b->due_at < retry_due_at)
			retry_due_at = b->due_at;
	struct dpol_admit_in in = {
		.known = ep != NULL,
		.enabled = ep != NULL && ep->enabled,
		.disabling = e->disabling,
		.paused_until = e->paused_until,
		.queued = e->q_n,
		.oldest_at = e->q_n > 0 ? e->q[e->q_head].next_attempt_at : 0,
		.has_retry = e->retry != NULL,
		.retry_due_at = retry_due_at,
		.batch_max = ep != NULL ? ep->batch_max_events : 0,
		.batch_max_wait_ms = ep != NULL ? ep->batch_max_wait_ms : 0,
		.in_flight = e->in_flight,
		.max_in_flight = ep != NULL ? ep->max_in_flight : 0,
		.rate_limit = ep != NULL ? ep->rate_limit : 0,
		.share = fair_share(d, e),
		.now = now,
		.mono = mono,
	};
	/* The circuit is read by API threads. */
	pthread_mutex_lock(&d->eps.mu);
	dpol_admit(&in, &e->br, &e->bucket, a);
	pthread_mutex_unlock(&d->eps.mu);
}

/* The fewest rows ep's endpoint must be let hold in the window: one more
 * than it may have in flight, each a batch if it batches (a full batch
 * waiting while the others are out). */
static size_t window_need(const struct ep_entry *ep)
{
	size_t batch = ep->batch_max_events > 0 ? (size_t)ep->batch_max_events : 1;
	size_t in_flight = ep->max_in_flight > 0 ? (size_t)ep->max_in_flight : 1;
	return (in_flight + 1) * batch;
}

/* Applies an admission that is not a SEND: drops the ready deliveries of a
 * deleted or disabled endpoint, or puts e to sleep until it may go. Also
 * breaks up its waiting batches if it is no longer batched, and notes its
 * batch size once past the endpoint checks. Returns true for a SEND. */
static bool admit_apply(struct dispatch *d, struct dispatch_ep *e, const struct ep_entry *ep,
			const struct dpol_admission *a, int64_t mono)
{
	if (a->why == DPOL_GONE || a->why == DPOL_DISABLED) {
		dispatch_ep_drop(d, e, a->why == DPOL_GONE ? "endpoint_gone" : "endpoint_disabled");
		if (a->why == DPOL_GONE)
			dispatch_ep_gone(d, e); /* freed once idle */
		return false;
	}
	if (a->why != DPOL_PAUSED)
		e->batch_max = ep->batch_max_events;
	/* Only a need above the cap it starts with changes anything. */
	size_t need = window_need(ep);
	const struct dwin_ep *we;
	if (need > d->win.ep_cap && (we = dwin_ep_find(&d->win, e->id)) != NULL &&
	    we->need != need)
		dwin_ep_need(&d->win, e->id, need);
	if (a->unbatch)
		unbatch(d, e);
	if (a->admit == DPOL_WAIT)
		sleep_until(d, e, mono + a->wait_ms);
	return a->admit == DPOL_SEND;
}

/* The first of e's waiting batches due at now (the admission said one is). */
static struct dbatch *retry_take(struct dispatch *d, struct dispatch_ep *e, int64_t now)
{
	struct dbatch **bp = &e->retry;
	while ((*bp)->due_at > now)
		bp = &(*bp)->next;
	struct dbatch *b = *bp;
	*bp = b->next;
	b->next = NULL;
	d->ready_total -= b->n;
	return b;
}

/* Starts a batch to batched endpoint e (ep: a reference, which the request
 * keeps or this releases): the due retry or a new group. */
static void start_group(struct dispatch *d, struct dispatch_ep *e, struct ep_entry *ep,
			const struct dpol_admission *a, int64_t now)
{
	struct dbatch *b = a->retry_batch ? retry_take(d, e, now)
					  : batch_form(d, e, (size_t)ep->batch_max_events);
	if (b == NULL) {
		log_error("dispatch: out of memory forming a batch endpoint=%s", e->id);
		ep_entry_release(ep);
		return;
	}
	dispatch_ep_hold(d, e);
	start_batch(d, e, ep, b);
	if (e->in_flight < a->cap)
		dispatch_run_add(d, e);
}

/* Picks up to START_BATCH deliveries that may start now, round-robin over
 * the run list, under the global cap and each endpoint's admission
 * (dpol_admit), with a reference to each one's endpoint. Batches start
 * here. Returns how many. */
static size_t pick(struct dispatch *d, int64_t now, int64_t mono, struct pending *out,
		   struct dispatch_ep **es, struct ep_entry **eps)
{
	size_t n = 0;
	struct dispatch_ep *e;
	while (n < START_BATCH && d->in_flight + (int)n < d->cfg.max_in_flight &&
	       (e = run_pop(d)) != NULL) {
		if (e->q_n == 0 && e->retry == NULL)
			continue;
		if (!dispatch_owns(d, e->id)) {
			/* Another node's now: its owner pages the rows in. */
			dispatch_ep_drop(d, e, "endpoint_not_owned");
			continue;
		}
		struct ep_entry *ep = epcache_get(d->cache, e->id);
		struct dpol_admission a;
		admit(d, e, ep, now, mono, &a);
		if (!admit_apply(d, e, ep, &a, mono)) {
			ep_entry_release(ep);
			continue;
		}
		if (ep->batch_max_events > 0) {
			start_group(d, e, ep, &a, now);
			continue;
		}
		dispatch_ep_pop(e, &out[n]);
		d->ready_total--;
		dispatch_ep_hold(d, e);
		es[n] = e;
		eps[n] = ep;
		n++;
		if (e->in_flight < a.cap)
			dispatch_run_add(d, e);
	}
	return n;
}

void dispatch_start_due(struct dispatch *d)
{
	int64_t now = dispatch_clock_now_ms();
	int64_t mono = dispatch_clock_mono_ms();
	struct pending batch[START_BATCH];
	struct dispatch_ep *es[START_BATCH];
	struct ep_entry *eps[START_BATCH];
	struct event evs[START_BATCH];
	const char *ids[START_BATCH];
	int rcs[START_BATCH];
	bool owned[START_BATCH];
	size_t n;
	wake_sleepers(d, mono);
	dispatch_take_due(d, now);
	while (!dispatch_store_paused(d, mono_ms()) && (n = pick(d, now, mono, batch, es, eps)) > 0) {
		for (size_t i = 0; i < n; i++)
			ids[i] = batch[i].event_id;
		memset(evs, 0, n * sizeof *evs);
		/* The server unreachable: all go back unsent (i = -1), and the
		 * dispatcher pauses with the store's backoff. */
		bool unreachable = events_get(d, ids, n, evs, rcs, owned);
		size_t i = 0;
		for (; i < n && !unreachable; i++)
			if (!start_one(d, &batch[i], es[i], eps[i],
				       rcs[i] == STORE_OK ? &evs[i] : NULL))
				break;
		if (unreachable) {
			i = (size_t)-1;
			dispatch_store_unreachable(d);
		}
		for (size_t j = i + 1; j < n; j++) {
			/* Out of memory: the rest go back to the window. */
			ep_entry_release(eps[j]);
			dispatch_ep_unhold(d, es[j]);
			if (dwin_push(&d->win, &batch[j]) != 0) {
				dwin_release(&d->win, batch[j].seq, batch[j].id);
				dwin_rescan(&d->win);
			}
		}
		events_drop(evs, rcs, owned, n);
		/* Each round's requests go out now, one chain per sender, so
		 * the senders send while the next round is prepared. */
		dispatch_post_all(d);
		if (i < n || unreachable)
			break;
		dispatch_take_due(d, now);
	}
	/* Batches started by pick itself. */
	dispatch_post_all(d);
}

void dispatch_ep_hold(struct dispatch *d, struct dispatch_ep *e)
{
	if (e->in_flight++ == 0)
		d->eps_busy++;
}

void dispatch_ep_unhold(struct dispatch *d, struct dispatch_ep *e)
{
	if (--e->in_flight == 0)
		d->eps_busy--;
}
