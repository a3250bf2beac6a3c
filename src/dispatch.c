/* dispatch: the delivery loop (see dispatch.h; docs/architecture.md#delivery
 * and #the-inbox-protocol).
 *
 * One thread owns everything here except the inbox: the window of pending
 * deliveries (dispatch_window.h), the per-endpoint scheduling state, the
 * request pool and the read connection to the store. Other threads talk to
 * it only through the inbox (mutex-protected lists plus an eventfd wakeup):
 * new deliveries from dispatch_enqueue, the done() of every commit op the
 * dispatcher submitted (pages of pending rows, recorded attempt results),
 * and the requests the sender threads give back. Because the commit thread
 * runs ops and calls done() in submission order, the inbox sees store
 * changes in the order they were committed; the paging rules in
 * dispatch_window.c depend on that.
 *
 * The HTTP transfers themselves run on --senders sender threads
 * (dispatch_send.h): each turn the dispatcher prepares what may start (body,
 * headers, signatures) and posts it, one chain per sender; finished
 * requests come back through the inbox and are recorded here as before.
 * Every decision stays on this thread, so the caps, rate limits, breaker and
 * batches need no locks of their own.
 *
 * Per-endpoint scheduling lives in dispatch_sched.c, finished requests and
 * the ops that record them in dispatch_record.c; dispatch_internal.h holds
 * what the three share. */
#include "dispatch.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch_clock.h"
#include "dispatch_ep.h"
#include "dispatch_http.h"
#include "dispatch_inbox.h"
#include "dispatch_send.h"
#include "dispatch_window.h"
#include "log.h"
#include "queue_depth.h"
#include "retry.h"
#include "store_health.h"
#include "util.h"
#include "dispatch_internal.h"

/* ---- op bookkeeping ---- */

void dispatch_submit(struct dispatch *d, struct commit_op *op)
{
	dispatch_inbox_op_begin(&d->inbox);
	commit_submit(d->writer, op);
}

/* ---- handing requests to the senders and taking them back ---- */

/* An endpoint with this many requests in flight or more may spread over
 * the senders (one busy endpoint then uses every sender's CPU); below it,
 * its requests stay on its home sender. */
#define SEND_SPREAD_IN_FLIGHT 4

/* The sender for a request to endpoint id (sched: its scheduling state,
 * NULL if none): its home sender (by a hash of the id), so the endpoint's
 * connections live in one sender's cache and are reused. Spread over the
 * senders (deliveries alternating between them), each cache opened its own
 * connections to every endpoint: with 1,000 endpoints, twice the connection
 * cap, and each new one a TLS handshake (bench/many.py: 32 connections
 * opened per endpoint). A hot endpoint (SEND_SPREAD_IN_FLIGHT or more in
 * flight) goes to the least loaded sender once its home one is more than
 * a little ahead. A sender never holds more transfers than its share of
 * the connection cap (per_sender), so none waits in curl's pending queue. */
static int pick_sender(const struct dispatch *d, const char *id,
		       const struct dispatch_ep *sched)
{
	int least = 0;
	for (int i = 1; i < d->n_senders; i++)
		if (d->senders[i].load < d->senders[least].load)
			least = i;
	int share = (d->cfg.max_in_flight + d->n_senders - 1) / d->n_senders;
	int home = (int)(str_hash(id) % (uint32_t)d->n_senders);
	int load = d->senders[home].load;
	bool hot = sched != NULL && sched->in_flight >= SEND_SPREAD_IN_FLIGHT;
	if (load < d->per_sender &&
	    (!hot || load - d->senders[least].load <= 1 + share / 16))
		return home;
	return least;
}

void dispatch_send(struct dispatch *d, struct dispatch_req *x)
{
	int best = pick_sender(d, x->ep->id, x->sched);
	struct send_slot *slot = &d->senders[best];
	x->sender = best;
	dispatch_send_chain_add(&slot->ready, &x->job);
	slot->load++;
	d->in_flight++;
	atomic_store_explicit(&d->in_flight_seen, d->in_flight, memory_order_relaxed);
	metrics_set_in_flight(d->cfg.metrics, d->in_flight);
}

void dispatch_post_all(struct dispatch *d)
{
	for (int i = 0; i < d->n_senders; i++) {
		struct send_slot *slot = &d->senders[i];
		if (slot->ready.first != NULL)
			dispatch_send_post(slot->s, &slot->ready);
	}
}

/* dispatch_send_back_fn: a sender gives back a chain of requests. Sender
 * thread. */
static void sent_back(void *ctx, struct dispatch_send_chain *back)
{
	struct dispatch *d = ctx;
	dispatch_inbox_sent(&d->inbox, back);
}

/* Stops every sender; what they still held comes back abandoned, into the
 * inbox, before this returns. */
static void stop_senders(struct dispatch *d)
{
	for (int i = 0; i < d->n_senders; i++) {
		dispatch_send_stop(d->senders[i].s);
		d->senders[i].s = NULL;
	}
}

static int page_apply(struct store *st, struct commit_op *op)
{
	struct page_op *p = CONTAINER_OF(op, struct page_op, op);
	if (p->endpoint_id[0] != '\0')
		p->rc = store_pending_page_endpoint(st, p->endpoint_id, p->after_at, p->after_id,
						    p->limit, &p->items, &p->n);
	else
		p->rc = store_pending_endpoints(st, &p->ids, &p->n_ids);
	return p->rc;
}

static void page_done(struct commit_op *op, int rc)
{
	struct page_op *p = CONTAINER_OF(op, struct page_op, op);
	/* A group that failed to commit may have shown rows that are gone. */
	if (rc != STORE_OK)
		p->rc = rc;
	dispatch_inbox_put(&p->d->inbox, &p->m, true);
}

/* A page op: a refill of up to limit rows (its key and endpoint left for
 * the caller to set), or the listing (no endpoint); NULL when out of
 * memory. */
static struct page_op *page_op_new(struct dispatch *d, size_t limit)
{
	struct page_op *p = calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	p->m.kind = MSG_PAGE;
	p->d = d;
	p->limit = limit > INT_MAX ? INT_MAX : (int)limit;
	p->op.apply = page_apply;
	p->op.done = page_done;
	return p;
}

/* A rescan: asks the store which endpoints have pending rows
 * (dwin_listing_done makes each read them back by refills). */
static void request_listing(struct dispatch *d)
{
	if (d->page_retry_at != 0) {
		if (mono_ms() < d->page_retry_at)
			return;
		d->page_retry_at = 0;
	}
	if (!dwin_want_listing(&d->win))
		return;
	struct page_op *p = page_op_new(d, 0);
	if (p == NULL)
		return;
	dwin_listing_begin(&d->win);
	dispatch_submit(d, &p->op);
}

/* Asks the store for the rows of the endpoints that left some there (their
 * cap, an eviction, a rescan) and want them back now (dwin_refill_next),
 * one op each, after this turn's results (so a refill sees them). */
static void request_refills(struct dispatch *d)
{
	if (d->page_retry_at != 0 && mono_ms() < d->page_retry_at)
		return;
	struct dwin_refill r;
	while (dwin_refill_next(&d->win, &r)) {
		struct page_op *p = page_op_new(d, r.limit);
		if (p == NULL) {
			dwin_refill_failed(&d->win, r.endpoint_id);
			return;
		}
		memcpy(p->endpoint_id, r.endpoint_id, ID_MAX);
		p->after_at = r.after_at;
		memcpy(p->after_id, r.after_id, ID_MAX);
		dispatch_submit(d, &p->op);
	}
}

/* Notes how many dead letters of an endpoint the purge deletes. */
static int note_purged(const char *endpoint_id, int64_t n, void *arg)
{
	struct purge_op *p = arg;
	struct purge_count *c = array_grow(p->counts, &p->cap_counts, p->n_counts + 1,
					   sizeof *c, 8);
	if (c == NULL)
		return STORE_ERROR;
	p->counts = c;
	c = &p->counts[p->n_counts++];
	snprintf(c->endpoint_id, sizeof c->endpoint_id, "%s", endpoint_id);
	c->n = n;
	return STORE_OK;
}

static int purge_apply(struct store *st, struct commit_op *op)
{
	struct purge_op *p = CONTAINER_OF(op, struct purge_op, op);
	int64_t count = 0;
	p->n_counts = 0;
	int rc = store_purge_dead(st, p->before, &count,
				  p->d->cfg.queue != NULL ? note_purged : NULL, p);
	if (rc == STORE_OK && count > 0)
		log_info("dead letters purged count=%lld", (long long)count);
	return rc;
}

static void purge_done(struct commit_op *op, int rc)
{
	struct purge_op *p = CONTAINER_OF(op, struct purge_op, op);
	struct dispatch *d = p->d;
	/* An unreachable server is the store's health's to say, once. */
	if (rc != STORE_OK && op->fault != STORE_FAULT_UNREACHABLE)
		log_warn("dead letter purge failed rc=%d", rc);
	if (rc == STORE_OK && p->n_counts > 0) {
		queue_depth_lock(d->cfg.queue);
		for (size_t i = 0; i < p->n_counts; i++)
			queue_depth_add_dead_locked(d->cfg.queue, p->counts[i].endpoint_id,
						    -p->counts[i].n);
		queue_depth_unlock(d->cfg.queue);
	}
	free(p->counts);
	free(p);
	dispatch_inbox_put(&d->inbox, NULL, true);
}

/* A quarter of the retention, between 1 s and 1 h: a dead letter outlives its
 * retention by at most that much, and a long retention costs one purge an hour. */
static int64_t purge_every(const struct dispatch *d)
{
	int64_t every = d->cfg.dlq_retention_ms / 4;
	return every < 1000 ? 1000 : every > PURGE_EVERY_MAX_MS ? PURGE_EVERY_MAX_MS : every;
}

static void maybe_purge(struct dispatch *d)
{
	int64_t mono = mono_ms();
	if (mono < d->next_purge)
		return;
	d->next_purge = mono + purge_every(d);
	struct purge_op *p = calloc(1, sizeof *p);
	if (p == NULL)
		return;
	p->d = d;
	p->before = now_ms() - d->cfg.dlq_retention_ms;
	p->op.apply = purge_apply;
	p->op.done = purge_done;
	dispatch_submit(d, &p->op);
}

/* ---- the loop ---- */

void dispatch_offer_all(struct dispatch *d, const struct pending *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!dispatch_owns(d, items[i].endpoint_id))
			continue; /* another node's: its owner pages it in */
		else if (dwin_offer(&d->win, &items[i]) == DWIN_NOMEM) {
			log_error("dispatch: out of memory queueing id=%s", items[i].id);
			dwin_rescan(&d->win);
		}
}

/* Counts new deliveries per endpoint in the metrics (one per item). */
static void count_created(struct dispatch *d, const struct pending *items, size_t n)
{
	struct metrics *m = d->cfg.metrics;
	int64_t now = now_ms();
	for (size_t i = 0; m != NULL && i < n; i++) {
		struct dispatch_ep *e = dispatch_eps_get(&d->eps, items[i].endpoint_id);
		if (e != NULL)
			metrics_ep_created(m, metrics_ep_resolve(m, e->id, &e->mep, &e->mgen), 1,
					   now);
	}
}

/* evcache_keep's test: a delivery this node schedules. */
static bool owned_endpoint(const char *endpoint_id, const void *arg)
{
	return dispatch_owns(arg, endpoint_id);
}

/* MSG_ENQUEUE: new or pending-again rows, and the events handed over with
 * them. With several nodes, only the events of deliveries this node owns
 * go to the cache: an ingest hands over every event it wrote, and with
 * three nodes caching them all left 45 % of the events a node sent to be
 * read back (10 % with one node; bench/pgcost.py, docs/performance.md). */
static void handle_enqueue(struct dispatch *d, struct enqueue_msg *e)
{
	if (d->cfg.cluster && !d->stopping)
		e->events = evcache_keep(e->events, e->items, e->n, owned_endpoint, d);
	while (e->events != NULL) {
		struct evcache_entry *ev = e->events;
		e->events = ev->next;
		if (d->stopping)
			free(ev);
		else
			evcache_put(&d->events, ev);
	}
	if (!d->stopping)
		dispatch_offer_all(d, e->items, e->n);
	if (e->created)
		count_created(d, e->items, e->n);
	free(e);
}

/* MSG_PAGE: an endpoint's refill, or the listing, came back (or failed). */
static void handle_page(struct dispatch *d, struct page_op *p)
{
	bool refill = p->endpoint_id[0] != '\0';
	if (p->rc == STORE_OK && refill) {
		dwin_refill_done(&d->win, p->endpoint_id, p->items, p->n);
	} else if (p->rc == STORE_OK) {
		if (dwin_listing_done(&d->win, (const char(*)[ID_MAX])p->ids, p->n_ids) != 0)
			log_error("dispatch: out of memory listing endpoints; rescanning");
	} else {
		/* A damaged file or an unreachable server is in the store's
		 * health, logged once. */
		if (!store_health_has(d->cfg.health, STORE_COND_CORRUPT) &&
		    !store_health_has(d->cfg.health, STORE_COND_UNREACHABLE))
			log_warn("dispatch: reading pending deliveries failed rc=%d", p->rc);
		if (refill)
			dwin_refill_failed(&d->win, p->endpoint_id);
		else
			dwin_listing_failed(&d->win);
		d->page_retry_at = mono_ms() + PAGE_RETRY_MS;
	}
	free(p->items);
	free(p->ids);
	free(p);
}

/* MSG_RECORD: a record op came back: its rows' result holds end, a 410's
 * endpoint stops disabling, and the notices' new deliveries are offered. */
static void handle_record(struct dispatch *d, struct record_op *r)
{
	if (dispatch_record_back(d, r))
		return; /* kept, written again after the backoff */
	for (size_t i = 0; i < r->n; i++) {
		dwin_release(&d->win, r->res[i].dl.seq, r->res[i].dl.id);
		if (r->res[i].gone) {
			/* Committed (the cache now says disabled) or failed
			 * (nothing changed): either way the cache decides. */
			struct dispatch_ep *e = dispatch_eps_find(&d->eps, r->res[i].dl.endpoint_id);
			if (e != NULL)
				e->disabling = false;
		}
	}
	if (r->rc != STORE_OK) {
		/* Not a store fault (or the stop): the store still has the
		 * old rows; page them in again once the backoff ends. */
		log_error("dispatch: recording %zu attempts failed rc=%d", r->n, r->rc);
		dwin_rescan(&d->win);
	} else if (!d->stopping) {
		dispatch_offer_all(d, r->notes.new_pending, r->notes.n_new_pending);
	}
	dispatch_record_free(r);
}

static void handle(struct dispatch *d, struct msg *m)
{
	switch (m->kind) {
	case MSG_ENQUEUE:
		handle_enqueue(d, CONTAINER_OF(m, struct enqueue_msg, m));
		break;
	case MSG_PAGE:
		handle_page(d, CONTAINER_OF(m, struct page_op, m));
		break;
	case MSG_RECORD:
		handle_record(d, CONTAINER_OF(m, struct record_op, m));
		break;
	case MSG_FETCH_REQ:
		dispatch_fetch_gather(d, m);
		break;
	case MSG_FETCH:
		dispatch_fetch_done(d, m);
		break;
	case MSG_EP_DELETED: {
		struct gone_msg *g = CONTAINER_OF(m, struct gone_msg, m);
		struct dispatch_ep *e = dispatch_eps_find(&d->eps, g->endpoint_id);
		if (e != NULL)
			dispatch_ep_gone(d, e);
		free(g);
		break;
	}
	case MSG_OWN_GAIN:
	case MSG_OWN_LOSE:
		dispatch_own_handle(d, CONTAINER_OF(m, struct own_msg, m));
		break;
	}
}

/* Handles messages m (oldest first, linked by next). */
static void handle_all(struct dispatch *d, struct msg *m)
{
	while (m != NULL) {
		struct msg *next = m->next;
		handle(d, m);
		m = next;
	}
}

static void drain_inbox(struct dispatch *d)
{
	struct dispatch_inbox_news news;
	dispatch_inbox_take(&d->inbox, &news);
	if (news.stop)
		d->stopping = true;
	if (news.stop_now)
		d->stopping_now = true;
	handle_all(d, news.msgs);
	struct dispatch_send_job *j;
	while ((j = dispatch_send_chain_pop(&news.sent)) != NULL) {
		struct dispatch_req *x = DISPATCH_REQ_OF_JOB(j);
		d->senders[x->sender].load--;
		dispatch_sent(d, x);
	}
	if (news.rescan)
		dwin_rescan(&d->win);
}

static int poll_timeout(struct dispatch *d)
{
	int64_t t = POLL_MAX_MS;
	/* The clocks the sleepers' wake times and the due times were read on. */
	int64_t mono = dispatch_clock_mono_ms();
	const struct pending *top = dwin_peek(&d->win);
	bool paused = dispatch_store_paused(d, mono);
	if (paused && d->store_retry_at > mono && d->store_retry_at - mono < t)
		t = d->store_retry_at - mono;
	if (!d->stopping && !paused) {
		if (d->run_n > 0 && d->in_flight < d->cfg.max_in_flight)
			t = 0;
		if (top != NULL && d->ready_total < d->ready_cap) {
			int64_t now = dispatch_clock_now_ms();
			int64_t due = top->next_attempt_at <= now ? 0 : top->next_attempt_at - now;
			if (due < t)
				t = due;
		}
		for (size_t i = 0; i < d->n_sleepers; i++)
			if (d->sleepers[i]->wake_at - mono < t)
				t = d->sleepers[i]->wake_at - mono;
	}
	if (!d->stopping && d->next_purge - mono < t)
		t = d->next_purge - mono;
	if (!d->stopping && d->page_retry_at != 0 && d->page_retry_at - mono < t)
		t = d->page_retry_at - mono;
	if (!d->stopping && dispatch_own_next(d) - mono < t)
		t = dispatch_own_next(d) - mono;
	if (d->stopping && d->stop_deadline - mono < t)
		t = d->stop_deadline - mono;
	if (t < 0)
		t = 0;
	return t > POLL_MAX_MS ? POLL_MAX_MS : (int)t;
}

static void *run(void *arg)
{
	struct dispatch *d = arg;
	for (;;) {
		/* Messages, then the requests the senders finished. */
		drain_inbox(d);
		if (!d->stopping)
			dispatch_own_check(d);
		if (d->stopping && d->stop_deadline == 0)
			d->stop_deadline = mono_ms() + d->cfg.timeout_ms + STOP_GRACE_MS;
		/* While attempt outcomes cannot be written, nothing new
		 * starts (docs/operations.md#faults-and-what-hookd-does): a request whose outcome is not recorded
		 * would only be sent again. */
		bool paused = dispatch_store_paused(d, mono_ms());
		if (!d->stopping && !paused)
			dispatch_start_due(d);
		dispatch_reap_gone(d);
		/* Results go to the commit thread before any new page, so the
		 * page sees them (see dispatch_window.h). */
		dispatch_flush_results(d);
		if (d->stopping) {
			if (d->in_flight == 0 || d->stopping_now || mono_ms() >= d->stop_deadline)
				break;
		} else {
			dispatch_retry_records(d, false);
			dispatch_own_turn(d);
			dwin_evict(&d->win);
			if (!paused) {
				request_listing(d);
				request_refills(d);
			}
			dispatch_fetch_submit(d);
			maybe_purge(d);
		}
		dispatch_inbox_wait(&d->inbox, poll_timeout(d));
	}
	/* What is still in flight comes back abandoned (the senders cut it),
	 * along with anything that finished meanwhile, which is recorded. */
	stop_senders(d);
	drain_inbox(d);
	if (d->abandoned > 0)
		log_warn("dispatch: stopped with %zu deliveries in flight; they stay pending",
			 d->abandoned);
	dispatch_flush_results(d);
	/* Outcomes kept after a failed write get one last try. */
	dispatch_retry_records(d, true);
	/* Every op's done() posts here; wait for the last before d goes away. */
	dispatch_inbox_wait_ops(&d->inbox);
	drain_inbox(d);
	dispatch_drop_parked(d);
	return NULL;
}

/* ---- public ---- */

static void dispatch_free(struct dispatch *d)
{
	/* Senders first: none may hold a request when the pool goes. They are
	 * stopped already unless the start failed, when they hold nothing. */
	if (d->senders != NULL)
		stop_senders(d);
	free(d->senders);
	for (size_t i = 0; i < d->reqs.n; i++) {
		struct dispatch_req *x = DISPATCH_REQ_OF_HTTP(d->reqs.all[i]);
		ep_entry_release(x->ep);
		x->ep = NULL;
	}
	dispatch_http_pool_free(&d->reqs);
	if (d->st != NULL)
		store_close(d->st);
	struct dispatch_inbox_news left;
	dispatch_inbox_take(&d->inbox, &left);
	d->stopping = true; /* what is left is only freed */
	handle_all(d, left.msgs);
	free(d->fetch_seqs);
	dispatch_own_free(d);
	dispatch_inbox_free(&d->inbox);
	dwin_free(&d->win);
	evcache_free(&d->events);
	dispatch_eps_free(&d->eps);
	free(d->run);
	free(d->sleepers);
	free((void *)d->schedule.delays_ms);
	free(d);
	curl_global_cleanup();
}

/* Starts d's senders and its thread (what started is stopped by
 * dispatch_free). Returns 0, or -1 with a message in err. */
static int start_threads(struct dispatch *d, char *err, size_t errlen)
{
	d->senders = calloc((size_t)d->cfg.senders, sizeof *d->senders);
	if (d->senders == NULL) {
		snprintf(err, errlen, "dispatch: out of memory");
		return -1;
	}
	/* Each sender holds at most its share of the in-flight cap (see
	 * pick_sender) and its share of the connection cap, never below
	 * that: it always has a connection for a transfer. */
	int conns = d->cfg.max_connections > d->cfg.max_in_flight ? d->cfg.max_connections
								   : d->cfg.max_in_flight;
	long per_sender = (conns + d->cfg.senders - 1) / d->cfg.senders;
	d->per_sender = (int)per_sender;
	for (int i = 0; i < d->cfg.senders; i++) {
		if (dispatch_send_start(i, per_sender, sent_back, d, &d->senders[i].s, err,
					errlen) != 0)
			return -1;
		dispatch_send_count_connections(d->senders[i].s, &d->eps.conns_open);
		d->n_senders = i + 1;
	}
	if (pthread_create(&d->thread, NULL, run, d) != 0) {
		snprintf(err, errlen, "dispatch: cannot start the thread");
		return -1;
	}
	pthread_setname_np(d->thread, "hookd-dispatch"); /* for top -H and perf */
	return 0;
}

/* A new dispatcher for cfg: its settings copied and its inbox ready, nothing
 * else made yet (dispatch_open). NULL with a message in err. */
static struct dispatch *dispatch_new(const struct dispatch_config *cfg, struct commit *writer,
				     struct epcache *cache, char *err, size_t errlen)
{
	struct dispatch *d = calloc(1, sizeof *d);
	int64_t *sched = malloc(cfg->schedule_len * sizeof *sched);
	if (d == NULL || sched == NULL || dispatch_inbox_init(&d->inbox) != 0) {
		if (d != NULL && sched != NULL)
			snprintf(err, errlen, "dispatch: eventfd failed: %s", strerror(errno));
		else
			snprintf(err, errlen, "dispatch: out of memory");
		free(d);
		free(sched);
		return NULL;
	}
	memcpy(sched, cfg->schedule_ms, cfg->schedule_len * sizeof *sched);
	d->cfg = *cfg;
	d->cfg.schedule_ms = sched;
	d->cfg.db_url = NULL; /* only needed by dispatch_open */
	d->schedule.delays_ms = sched;
	d->schedule.len = cfg->schedule_len;
	d->writer = writer;
	d->cache = cache;
	d->reqs.timeout_ms = cfg->timeout_ms;
	d->reqs.socket_opened = dispatch_send_socket_opened;
	d->reqs.socket_closed = dispatch_send_socket_closed;
	d->reqs.allow_http = cfg->allow_http;
	d->reqs.wrap_size = sizeof(struct dispatch_req);
	d->reqs.wrap_offset = offsetof(struct dispatch_req, http);
	d->parked_tail = &d->parked;
	d->next_purge = mono_ms() + PURGE_FIRST_MS;
	if (dispatch_own_init(d) != 0) {
		snprintf(err, errlen, "dispatch: out of memory");
		dispatch_inbox_free(&d->inbox);
		free(d);
		free(sched);
		return NULL;
	}
	return d;
}

/* Seeds d's per-endpoint table with one stored endpoint state
 * (docs/architecture.md#durable-endpoint-state), at start and when this node
 * gains the endpoint from another (dispatch_own.c). Times are wall-clock ms
 * in the store as in the breaker and the pause (dispatch_clock_now_ms), so
 * they carry over as they are. A circuit stored half open had its probe cut
 * short by the stop: it is open again, due for a probe at once. States with
 * nothing in force make no entry. */
int dispatch_state_apply(struct dispatch *d, const struct endpoint_state *s)
{
	int64_t now = dispatch_clock_now_ms();
	bool open = strcmp(s->circuit, "open") == 0 || strcmp(s->circuit, "half_open") == 0;
	if (!open && s->paused_until <= now)
		return 0;
	struct dispatch_ep *e = dispatch_eps_get(&d->eps, s->endpoint_id);
	if (e == NULL)
		return STORE_ERROR;
	pthread_mutex_lock(&d->eps.mu); /* API threads read the circuit */
	if (open) {
		e->br.state = BREAKER_OPEN;
		e->br.failures = s->failures > INT_MAX ? INT_MAX : (int)s->failures;
		if (s->cooldown_ms > 0)
			e->br.cooldown_ms = s->cooldown_ms;
		e->br.next_probe_at = s->open_until;
		log_info("circuit open endpoint=%s next_probe_in_ms=%lld (kept from before the "
			 "restart)", e->id, (long long)(s->open_until - now));
	}
	if (s->paused_until > now) {
		e->paused_until = s->paused_until;
		log_info("endpoint paused endpoint=%s until_ms=%lld (kept from before the restart)",
			 e->id, (long long)s->paused_until);
	}
	pthread_mutex_unlock(&d->eps.mu);
	return 0;
}

static int seed_state(const struct endpoint_state *s, void *arg)
{
	return dispatch_state_apply(arg, s);
}

/* Makes d's window, per-endpoint table, event cache, destination rules and
 * read connection (cfg: d's settings, with the store's URL). Returns 0, or
 * -1 with a message in err (dispatch_free frees what was made). */
static int dispatch_open(struct dispatch *d, const struct dispatch_config *cfg, char *err,
			 size_t errlen)
{
	int64_t cooldown = cfg->breaker_cooldown_ms > 0 ? cfg->breaker_cooldown_ms
							 : BREAKER_COOLDOWN_MIN_MS;
	if (dwin_init(&d->win, cfg->window, dwin_ep_cap_start(cfg->window)) != 0 ||
	    dispatch_eps_init(&d->eps, cfg->breaker_failures, cooldown) != 0) {
		snprintf(err, errlen, "dispatch: out of memory");
		return -1;
	}
	if (evcache_init(&d->events) != 0)
		log_warn("dispatch: out of memory for the event cache; events are read from the store");
	if (dispatch_net_setup(&d->reqs, &cfg->net, err, errlen) != 0)
		return -1;
	if (store_open(cfg->db_url, &d->st, err, errlen) != STORE_OK) {
		d->st = NULL;
		return -1;
	}
	if (store_endpoint_state_each(d->st, seed_state, d) != STORE_OK) {
		snprintf(err, errlen, "dispatch: cannot read the endpoints' delivery state");
		return -1;
	}
	/* Ready queues may hold as much again as the heap: past that, due
	 * deliveries wait in the heap (see take_due). */
	d->ready_cap = d->win.window;
	return 0;
}

int dispatch_start(const struct dispatch_config *cfg, struct commit *writer, struct epcache *cache,
		   struct dispatch **out, char *err, size_t errlen)
{
	if (cfg->schedule_len == 0 || cfg->timeout_ms <= 0 || cfg->max_in_flight <= 0 ||
	    cfg->senders <= 0) {
		snprintf(err, errlen, "dispatch: empty retry schedule, bad timeout, in-flight cap "
			 "or sender count");
		return -1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "dispatch: libcurl failed to initialise");
		return -1;
	}
	struct dispatch *d = dispatch_new(cfg, writer, cache, err, errlen);
	if (d == NULL) {
		curl_global_cleanup();
		return -1;
	}
	if (dispatch_open(d, cfg, err, errlen) != 0 || start_threads(d, err, errlen) != 0) {
		dispatch_free(d);
		return -1;
	}
	log_info("dispatcher started max_in_flight=%d max_connections=%d window=%zu timeout_ms=%lld "
		 "attempts=%zu senders=%d", cfg->max_in_flight,
		 cfg->max_connections > cfg->max_in_flight ? cfg->max_connections : cfg->max_in_flight,
		 d->win.window, (long long)cfg->timeout_ms, cfg->schedule_len, cfg->senders);
	*out = d;
	return 0;
}

struct dispatch_eps *dispatch_eps_of(struct dispatch *d)
{
	return &d->eps;
}

bool dispatch_endpoint_blocked(const char *endpoint_id, void *arg)
{
	struct dispatch *d = arg;
	struct ep_entry *e = epcache_get(d->cache, endpoint_id);
	bool disabled = e == NULL || !e->enabled;
	ep_entry_release(e);
	if (disabled)
		return true;
	struct dispatch_endpoint_status st;
	dispatch_endpoint_status(d, endpoint_id, &st);
	return st.paused_until > 0 || strcmp(st.circuit, "open") == 0;
}

/* created: the items are new deliveries of an ingest (counted in the
 * per-endpoint metrics), not ones pending again. */
static void enqueue(struct dispatch *d, const struct pending *items, size_t n,
		    struct evcache_entry *events, bool created)
{
	struct enqueue_msg *e = n > 0 ? malloc(sizeof *e + n * sizeof *items) : NULL;
	if (e == NULL) {
		while (events != NULL) {
			struct evcache_entry *next = events->next;
			free(events);
			events = next;
		}
		if (n > 0) {
			/* The rows are committed; a rescan pages them in. */
			log_error("dispatch: out of memory enqueueing %zu deliveries", n);
			dispatch_rescan(d);
		}
		return;
	}
	e->m.kind = MSG_ENQUEUE;
	e->created = created;
	e->events = events;
	e->n = n;
	memcpy(e->items, items, n * sizeof *items);
	dispatch_inbox_put(&d->inbox, &e->m, false);
}

void dispatch_enqueue_events(struct dispatch *d, const struct pending *items, size_t n,
			     struct evcache_entry *events)
{
	enqueue(d, items, n, events, true);
}

void dispatch_enqueue(struct dispatch *d, const struct pending *items, size_t n)
{
	enqueue(d, items, n, NULL, false);
}

void dispatch_endpoint_deleted(struct dispatch *d, const char *endpoint_id)
{
	if (d == NULL)
		return;
	struct gone_msg *g = calloc(1, sizeof *g);
	if (g == NULL) {
		/* Its state stays until pick finds the endpoint gone. */
		log_error("dispatch: out of memory noting endpoint=%s deleted", endpoint_id);
		return;
	}
	g->m.kind = MSG_EP_DELETED;
	memcpy(g->endpoint_id, endpoint_id, strnlen(endpoint_id, ID_MAX - 1));
	dispatch_inbox_put(&d->inbox, &g->m, false);
}

void dispatch_rescan(struct dispatch *d)
{
	dispatch_inbox_rescan(&d->inbox);
}

void dispatch_halt(struct dispatch *d)
{
	if (d == NULL)
		return;
	dispatch_inbox_stop(&d->inbox);
	pthread_join(d->thread, NULL);
	log_info("dispatcher stopped");
}

void dispatch_stop_now(struct dispatch *d)
{
	if (d == NULL)
		return;
	dispatch_inbox_stop_now(&d->inbox);
}

int dispatch_in_flight(struct dispatch *d)
{
	return d != NULL ? atomic_load_explicit(&d->in_flight_seen, memory_order_relaxed) : 0;
}

int64_t dispatch_stop_wait_ms(const struct dispatch *d)
{
	return d != NULL ? d->cfg.timeout_ms + STOP_GRACE_MS : 0;
}

size_t dispatch_abandoned(const struct dispatch *d)
{
	return d != NULL ? d->abandoned : 0;
}

void dispatch_destroy(struct dispatch *d)
{
	if (d != NULL)
		dispatch_free(d);
}

void dispatch_stop(struct dispatch *d)
{
	dispatch_halt(d);
	dispatch_destroy(d);
}
