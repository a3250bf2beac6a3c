/* dispatch_record: finished requests in the delivery loop (see dispatch.c):
 * attempt results, retries and dead letters, 410 disables, and the commit
 * ops that record them. */
#include "dispatch.h"


#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "dispatch_clock.h"
#include "dispatch_ep.h"
#include "dispatch_http.h"
#include "dispatch_policy.h"
#include "dispatch_window.h"
#include "failure.h"
#include "hops.h"
#include "ingest.h"
#include "log.h"
#include "queue_depth.h"
#include "retry.h"
#include "store_health.h"
#include "util.h"
#include "dispatch_internal.h"

struct dispatch_req *dispatch_req_get(struct dispatch *d)
{
	struct dispatch_http_req *h = dispatch_http_get(&d->reqs);
	if (h == NULL)
		return NULL;
	struct dispatch_req *x = DISPATCH_REQ_OF_HTTP(h);
	x->job.http = h;
	x->ep = NULL;
	x->sched = NULL;
	x->batch = NULL;
	x->ev_created_at = 0;
	return x;
}

void dispatch_req_put(struct dispatch *d, struct dispatch_req *x)
{
	ep_entry_release(x->ep);
	x->ep = NULL;
	x->sched = NULL;
	dispatch_http_put(&d->reqs, &x->http);
}

/* Frees a batch (its members' holds are the caller's business). */
void dispatch_batch_free(struct dbatch *b)
{
	if (b == NULL)
		return;
	free(b->m);
	free(b->quiet);
	free(b->created_at);
	free(b);
}

/* Copies src (the batch's first attempt) as member m's attempt. The
 * timings, remote_ip and reused are copied as they are: one request, one
 * measure for every member. */
static void attempt_copy(const struct attempt *src, const struct pending *m, struct attempt *a)
{
	*a = *src;
	memcpy(a->delivery_id, m->id, ID_MAX);
	a->attempt = m->attempt_count + 1;
	a->url = src->url ? xstrdup(src->url) : NULL;
	a->response_body = src->response_body ? xstrdup(src->response_body) : NULL;
	a->error_message = src->error_message ? xstrdup(src->error_message) : NULL;
	a->headers = xstrdup(src->headers);
}

/* Feeds the metrics (if on) with one member's attempt of dur_us and, if it
 * reached a final state, its delivery; created_at: its event's (0 =
 * unknown, then no ingest-to-delivered sample). */
static void feed_metrics(struct dispatch *d, struct dispatch_ep *e, const struct delivery *dl,
			 enum metrics_outcome o, uint64_t dur_us, int64_t created_at, int64_t now)
{
	struct metrics *m = d->cfg.metrics;
	if (m == NULL)
		return;
	struct metrics_ep *s = e != NULL ? metrics_ep_resolve(m, e->id, &e->mep, &e->mgen) : NULL;
	metrics_attempt(m, s, o, dur_us, now);
	if (dl->status == DELIVERY_SUCCEEDED && created_at > 0)
		metrics_delivered(m, s, now > created_at ? (uint64_t)(now - created_at) * 1000 : 0,
				  now);
	else if (dl->status == DELIVERY_DEAD)
		metrics_dead(m, s, now);
}

/* One finished request on its way through dispatch_finish's steps. */
struct finish {
	struct dispatch_req *x;
	struct dispatch_ep *e;   /* its endpoint's state, NULL if none */
	struct dbatch *b;        /* its batch, NULL for a single delivery */
	const struct pending *members; /* b's members, or x's one delivery */
	size_t n;
	enum failure_kind kind;
	long status;
	int64_t now;
	struct dpol_outcome o;   /* what the attempt does (dispatch_policy.h) */
	bool disable;            /* this attempt disables the endpoint (the first 410) */
	enum metrics_outcome mo;
	uint64_t attempt_us;     /* the attempt's duration, for the metrics */
	bool state_changed;      /* the endpoint's circuit or pause changed */
	struct endpoint_state state; /* its new state, when state_changed */
};

/* Makes room for f's n results. Returns false if out of memory: then the
 * rows stay as they were in the store (a rescan sends them again) and x is
 * back in the pool. */
static bool results_reserve(struct dispatch *d, struct finish *f)
{
	size_t n = f->n;
	if (d->n_results + n <= d->cap_results)
		return true;
	size_t cap = d->cap_results ? d->cap_results * 2 : 64;
	while (cap < d->n_results + n)
		cap *= 2;
	struct result *r = realloc(d->results, cap * sizeof *r);
	if (r == NULL) {
		log_error("dispatch: out of memory recording id=%s", f->members[0].id);
		for (size_t i = 0; i < n; i++)
			dwin_release(&d->win, f->members[i].seq, f->members[i].id);
		dwin_rescan(&d->win);
		dispatch_batch_free(f->b);
		dispatch_req_put(d, f->x);
		return false;
	}
	d->results = r;
	d->cap_results = cap;
	return true;
}

/* The outcome decision for f's attempt: one for the whole batch, from its
 * furthest schedule position, with Retry-After as the response had it. */
static void decide_outcome(const struct dispatch *d, struct finish *f)
{
	int si = 0;
	for (size_t i = 0; i < f->n; i++)
		if (f->members[i].schedule_index > si)
			si = f->members[i].schedule_index;
	struct dpol_outcome_in in = {
		.kind = f->kind,
		.status = f->status,
		.retry_after = f->kind == FAILURE_HTTP_STATUS
				       ? dispatch_http_resp_header(&f->x->http, "retry-after")
				       : NULL,
		.furthest_index = si,
		.schedule = &d->schedule,
		.now = f->now,
		.jitter = f->kind != FAILURE_NONE ? random_unit() * 2 - 1 : 0,
		.max_retry_after_ms = d->cfg.max_retry_after_ms,
	};
	dpol_outcome(&in, &f->o);
}

/* f's endpoint's circuit and pause as they are now, into f->state (the row
 * of store_endpoint_state_put). */
static void snapshot_state(struct dispatch *d, struct finish *f)
{
	const struct dispatch_ep *e = f->e;
	struct endpoint_state *st = &f->state;
	memset(st, 0, sizeof *st);
	memcpy(st->endpoint_id, e->id, ID_MAX);
	pthread_mutex_lock(&d->eps.mu);
	snprintf(st->circuit, sizeof st->circuit, "%s", breaker_state_name(e->br.state));
	st->failures = e->br.failures;
	st->cooldown_ms = e->br.cooldown_ms;
	st->open_until = e->br.state == BREAKER_CLOSED ? 0 : e->br.next_probe_at;
	st->paused_until = e->paused_until;
	pthread_mutex_unlock(&d->eps.mu);
	if (st->paused_until > f->now && f->o.fate == DPOL_PAUSE)
		snprintf(st->pause_reason, sizeof st->pause_reason, "%ld", f->status);
	st->updated_at = f->now;
}

/* Applies the endpoint's side of f's outcome: the breaker, a Retry-After
 * pause, a 410 disable (the first one; others already in flight only record
 * their attempt). */
static void apply_endpoint(struct dispatch *d, struct finish *f)
{
	struct dispatch_ep *e = f->e;
	const char *ep_id = f->members[0].endpoint_id;
	if (e == NULL)
		return;
	if (f->o.breaker_counts)
		f->state_changed = dispatch_breaker_note(d, e, f->kind == FAILURE_NONE, f->now);
	if (f->o.fate == DPOL_PAUSE) {
		pthread_mutex_lock(&d->eps.mu);
		if (f->o.at > e->paused_until) {
			e->paused_until = f->o.at;
			f->state_changed = true;
		}
		pthread_mutex_unlock(&d->eps.mu);
		log_info("endpoint paused endpoint=%s status=%ld until_ms=%lld", ep_id, f->status,
			 (long long)f->o.at);
	}
	if (f->state_changed)
		snapshot_state(d, f);
	if (f->o.fate != DPOL_DISABLE || e->disabling)
		return;
	struct ep_entry *cur = epcache_get(d->cache, ep_id);
	if (cur != NULL && cur->enabled) {
		e->disabling = true;
		f->disable = true;
		log_warn("endpoint disabled endpoint=%s reason=\"%s\"", ep_id, GONE_REASON);
	}
	ep_entry_release(cur);
}

/* Member i's new delivery state into r (its attempt is already there). */
static void fill_result(const struct finish *f, size_t i, struct result *r)
{
	const struct pending *p = &f->members[i];
	if (f->b != NULL)
		memcpy(r->batch_id, f->b->id, ID_MAX);
	r->gone = f->disable && i == 0;
	r->was_at = p->next_attempt_at; /* before b->m[i] (p) moves on */
	struct delivery *dl = &r->dl;
	dl->seq = p->seq;
	memcpy(dl->id, p->id, ID_MAX);
	memcpy(dl->event_id, p->event_id, ID_MAX);
	memcpy(dl->endpoint_id, p->endpoint_id, ID_MAX);
	dl->attempt_count = p->attempt_count + 1;
	dl->schedule_index = f->o.spent ? p->schedule_index + 1 : p->schedule_index;
	dl->updated_at = f->now;
	dl->last_status = (int)f->status;
	model_code_set(dl->last_error, failure_code(f->kind));
	if (f->o.fate == DPOL_SUCCEEDED) {
		dl->status = DELIVERY_SUCCEEDED;
		return;
	}
	dl->status = f->o.fate == DPOL_DEAD ? DELIVERY_DEAD : DELIVERY_PENDING;
	dl->next_attempt_at = f->o.at;
	/* A dead notification never emits another. */
	const char *type = f->x->http.type;
	bool quiet = f->b != NULL ? f->b->quiet[i] != 0
				  : type[0] == '\0' || strcmp(type, EVENT_DEAD_LETTERED) == 0;
	r->notify = f->o.fate == DPOL_DEAD && !quiet;
}

/* Member i's place in the window: held until its result is committed (so
 * no page loads the old row meanwhile), and back in the heap if pending (a
 * batch's members stay held in the batch, retried as a unit). */
static void move_member(struct dispatch *d, const struct finish *f, size_t i,
			const struct delivery *dl)
{
	const struct pending *p = &f->members[i];
	if (dwin_hold(&d->win, p->seq, p->id) != 0)
		log_warn("dispatch: out of memory holding id=%s", p->id);
	if (dl->status != DELIVERY_PENDING) {
		dwin_release(&d->win, p->seq, p->id);
		return;
	}
	struct pending np = *p;
	np.attempt_count = dl->attempt_count;
	np.schedule_index = dl->schedule_index;
	np.next_attempt_at = dl->next_attempt_at;
	np.batch_wait = f->b != NULL; /* should it leave memory, it rejoins its batch */
	if (f->b == NULL)
		dwin_reschedule(&d->win, &np);
	else
		f->b->m[i] = np;
}

static void log_member(const struct finish *f, const struct pending *p, const struct result *r)
{
	const char *code = failure_code(f->kind);
	/* A blocked attempt says why: which address, which rule, which flag
	 * (netguard_message); no other message goes to the log. */
	const char *why = f->kind == FAILURE_BLOCKED && r->a.error_message != NULL ?
				  r->a.error_message : NULL;
	if (f->kind == FAILURE_NONE)
		log_debug("delivery succeeded id=%s endpoint=%s status=%ld attempt=%d ms=%lld",
			  p->id, p->endpoint_id, f->status, r->a.attempt,
			  (long long)r->a.duration_ms);
	else if (r->dl.status == DELIVERY_PENDING)
		log_info("delivery failed id=%s endpoint=%s attempt=%d error=%s status=%ld "
			 "retry_in_ms=%lld%s%s%s", p->id, p->endpoint_id, r->a.attempt, code,
			 f->status, (long long)f->o.delay, why ? " reason=\"" : "", why ? why : "",
			 why ? "\"" : "");
	else
		log_warn("delivery dead id=%s endpoint=%s attempts=%d error=%s status=%ld%s%s%s",
			 p->id, p->endpoint_id, r->a.attempt, code, f->status,
			 why ? " reason=\"" : "", why ? why : "", why ? "\"" : "");
}

/* One result per member: the first holds the attempt (already filled),
 * the others a copy of it. */
static void record_members(struct dispatch *d, const struct finish *f)
{
	const struct attempt *first = &d->results[d->n_results].a;
	for (size_t i = 0; i < f->n; i++) {
		const struct pending *p = &f->members[i];
		struct result *r = &d->results[d->n_results++];
		if (i > 0) {
			memset(r, 0, sizeof *r);
			attempt_copy(first, p, &r->a);
		}
		int64_t was_created = f->b != NULL ? f->b->created_at[i] : f->x->ev_created_at;
		fill_result(f, i, r);
		if (i == 0 && f->state_changed) {
			r->has_state = true;
			r->state = f->state;
		}
		log_member(f, p, r); /* before move_member: p may be b->m[i] */
		move_member(d, f, i, &r->dl);
		feed_metrics(d, f->e, &r->dl, f->mo, f->attempt_us, was_created, f->now);
	}
}

/* A failed batch with an attempt left waits on its endpoint for its retry;
 * otherwise it is freed (its members released if it cannot wait). */
static void batch_after(struct dispatch *d, const struct finish *f)
{
	struct dbatch *b = f->b;
	bool again = b != NULL && f->kind != FAILURE_NONE && f->o.fate != DPOL_DEAD;
	if (again && f->e != NULL) {
		b->due_at = f->o.at;
		b->next = f->e->retry;
		f->e->retry = b;
		/* Held outside the heap: counted with the ready queues, so a
		 * failing batch endpoint's backlog stays bounded too. */
		d->ready_total += b->n;
		return;
	}
	if (again)
		for (size_t i = 0; i < b->n; i++)
			dwin_release(&d->win, b->m[i].seq, b->m[i].id);
	dispatch_batch_free(b);
}

/* Records the outcome of x's attempt and moves its deliveries on (one, or
 * every member of a batch, which moves as a unit): the outcome decision
 * (dpol_outcome) applied to the endpoint, each delivery, the window and
 * the metrics. */
void dispatch_finish(struct dispatch *d, struct dispatch_req *x, enum failure_kind kind,
		     long status, const char *detail)
{
	struct finish f = {.x = x, .e = x->sched, .b = x->batch, .kind = kind, .status = status,
			   .now = dispatch_clock_now_ms()};
	x->batch = NULL;
	f.members = f.b != NULL ? f.b->m : &x->http.p;
	f.n = f.b != NULL ? f.b->n : 1;
	if (f.e != NULL) {
		dispatch_ep_unhold(d, f.e);
		dispatch_run_add(d, f.e);
	}
	if (!results_reserve(d, &f))
		return;
	struct result *first = &d->results[d->n_results];
	memset(first, 0, sizeof *first);
	dispatch_http_attempt(&x->http, kind, status, detail, &first->a);
	decide_outcome(d, &f);
	apply_endpoint(d, &f);
	f.mo = metrics_outcome_of(kind, status);
	/* curl's total when a transfer ran, else the coarse wall time. */
	f.attempt_us = first->a.timings.total_us >= 0 ? (uint64_t)first->a.timings.total_us
		       : first->a.duration_ms > 0    ? (uint64_t)first->a.duration_ms * 1000
						     : 0;
	record_members(d, &f);
	uint64_t opened = x->http.conns_opened > 0 ? (uint64_t)x->http.conns_opened : 0;
	metrics_connections(d->cfg.metrics, opened, x->http.tls == DISPATCH_TLS_FULL,
			    x->http.tls == DISPATCH_TLS_RESUMED);
	batch_after(d, &f);
	if (f.e != NULL)
		dispatch_run_add(d, f.e);
	dispatch_req_put(d, x);
}

/* Drops x, still in flight when the stop's grace ran out: no attempt is
 * recorded, its deliveries stay pending in the store and go out again on
 * the next start (at-least-once). */
static void abandon(struct dispatch *d, struct dispatch_req *x)
{
	struct dbatch *b = x->batch;
	x->batch = NULL;
	if (b != NULL)
		for (size_t i = 0; i < b->n; i++)
			dwin_release(&d->win, b->m[i].seq, b->m[i].id);
	else
		dwin_release(&d->win, x->http.p.seq, x->http.p.id);
	dispatch_batch_free(b);
	if (x->sched != NULL)
		dispatch_ep_unhold(d, x->sched);
	dispatch_req_put(d, x);
	d->abandoned++;
}

void dispatch_sent(struct dispatch *d, struct dispatch_req *x)
{
	d->in_flight--;
	atomic_store_explicit(&d->in_flight_seen, d->in_flight, memory_order_relaxed);
	metrics_set_in_flight(d->cfg.metrics, d->in_flight);
	if (x->job.fate == DISPATCH_SEND_ABANDONED) {
		abandon(d, x);
		return;
	}
	if (x->job.fate == DISPATCH_SEND_NOT_STARTED) {
		dispatch_finish(d, x, FAILURE_INTERNAL, 0, "could not start the transfer");
		return;
	}
	long status;
	char detail[CURL_ERROR_SIZE + 32];
	enum failure_kind kind =
		dispatch_http_outcome(&x->http, x->job.cc, &status, detail, sizeof detail);
	dispatch_finish(d, x, kind, status, detail);
}

/* ---- commit ops ---- */

/* Every result's delivery state and attempt, set-based (store_record_results:
 * one statement on PostgreSQL); sets each result's missing. */
static int record_rows(struct store *st, struct record_op *r)
{
	struct store_result *rs = calloc(r->n ? r->n : 1, sizeof *rs);
	if (rs == NULL)
		return STORE_ERROR;
	for (size_t i = 0; i < r->n; i++) {
		rs[i].dl = &r->res[i].dl;
		rs[i].a = &r->res[i].a;
	}
	int rc = store_record_results(st, rs, r->n);
	for (size_t i = 0; i < r->n; i++)
		r->res[i].missing = rc == STORE_OK && rs[i].missing;
	free(rs);
	return rc;
}

/* A 410's endpoint: disabled, and read back for the cache (res->disabled). */
static int record_gone(struct store *st, struct result *res)
{
	const char *id = res->dl.endpoint_id;
	int rc = store_endpoint_disable(st, id, GONE_REASON, res->dl.updated_at);
	if (rc == STORE_NOTFOUND)
		return STORE_OK;
	struct endpoint *ep = calloc(1, sizeof *ep);
	if (rc != STORE_OK || ep == NULL) {
		free(ep);
		return rc != STORE_OK ? rc : STORE_ERROR;
	}
	rc = store_endpoint_get(st, id, ep);
	if (rc != STORE_OK) {
		endpoint_clear(ep);
		free(ep);
		return rc;
	}
	res->disabled = ep;
	return STORE_OK;
}

static int record_apply(struct store *st, struct commit_op *op)
{
	struct record_op *r = CONTAINER_OF(op, struct record_op, op);
	for (size_t i = 0; i < r->n; i++) {
		/* Written again after a failed commit (docs/operations.md#faults-and-what-hookd-does): forget what
		 * the failed try read. */
		if (r->res[i].disabled != NULL) {
			endpoint_clear(r->res[i].disabled);
			free(r->res[i].disabled);
			r->res[i].disabled = NULL;
		}
	}
	int rc = record_rows(st, r);
	for (size_t i = 0; rc == STORE_OK && i < r->n; i++) {
		if (r->res[i].missing)
			continue; /* deleted with its endpoint meanwhile */
		if (r->res[i].has_state)
			rc = store_endpoint_state_put(st, &r->res[i].state);
		if (rc == STORE_OK && r->res[i].batch_id[0] != '\0') {
			const char *id = r->res[i].dl.id;
			rc = store_delivery_set_batch(st, r->res[i].batch_id, &id, 1);
		}
		if (rc == STORE_OK && r->res[i].gone)
			rc = record_gone(st, &r->res[i]);
	}
	if (rc != STORE_OK)
		return rc;
	if (r->notes.n > 0)
		return ingest_apply(st, &r->notes);
	return STORE_OK;
}

/* The committed results' moves, into the queue figures (one lock for all). */
static void record_queue(struct queue_depth *q, const struct record_op *r)
{
	if (q == NULL)
		return;
	queue_depth_lock(q);
	for (size_t i = 0; i < r->n; i++) {
		const struct result *res = &r->res[i];
		if (res->missing)
			continue;
		queue_depth_remove_pending_locked(q, res->dl.endpoint_id, res->was_at);
		if (res->dl.status == DELIVERY_PENDING)
			queue_depth_add_pending_locked(q, res->dl.endpoint_id,
						       res->dl.next_attempt_at, 1);
		else if (res->dl.status == DELIVERY_DEAD)
			queue_depth_add_dead_locked(q, res->dl.endpoint_id, 1);
	}
	for (size_t i = 0; i < r->notes.n_new_pending; i++)
		queue_depth_add_pending_locked(q, r->notes.new_pending[i].endpoint_id,
					       r->notes.new_pending[i].next_attempt_at, 1);
	queue_depth_unlock(q);
}

static void record_done(struct commit_op *op, int rc)
{
	struct record_op *r = CONTAINER_OF(op, struct record_op, op);
	r->rc = rc;
	/* The commit thread noted the fault in the health before this runs. */
	r->store_fault = rc != STORE_OK &&
			 (op->fault != STORE_FAULT_NONE ||
			  store_health_has(r->d->cfg.health, STORE_COND_FULL) ||
			  store_health_has(r->d->cfg.health, STORE_COND_WRITE) ||
			  store_health_has(r->d->cfg.health, STORE_COND_UNREACHABLE));
	if (rc == STORE_OK)
		record_queue(r->d->cfg.queue, r);
	/* The cache learns of a disable once it is committed, here on the
	 * commit thread, in order with the API's own endpoint changes. */
	for (size_t i = 0; rc == STORE_OK && i < r->n; i++)
		if (r->res[i].disabled != NULL &&
		    epcache_put(r->d->cache, r->res[i].disabled) != 0)
			log_error("dispatch: endpoint disabled but not cached id=%s",
				  r->res[i].disabled->id);
	dispatch_inbox_put(&r->d->inbox, &r->m, true);
}

/* Frees what dispatch_finish() allocated for each result, and the array. */
static void results_free(struct result *res, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct attempt *a = &res[i].a;
		free(a->url);
		free(a->response_body);
		free(a->headers);
		free(a->error_message);
		if (res[i].disabled != NULL) {
			endpoint_clear(res[i].disabled);
			free(res[i].disabled);
		}
	}
	free(res);
}

void dispatch_record_free(struct record_op *r)
{
	results_free(r->res, r->n);
	ingest_batch_clear(&r->notes);
	free(r);
}

/* Prepares the delivery.dead_lettered event for a newly dead delivery, or
 * endpoint.disabled for a 410 that disabled its endpoint (fan-out happens
 * here, on the dispatcher thread). Returns 0 if item holds
 * an event with at least one subscriber, -1 otherwise (item left empty). */
static int prepare_notice(struct dispatch *d, const struct result *r, struct ingest_item *item)
{
	json_t *data;
	const char *event_type = EVENT_DEAD_LETTERED;
	if (r->gone) {
		char at[32];
		rfc3339_format(r->dl.updated_at, at);
		event_type = EVENT_ENDPOINT_DISABLED;
		data = json_pack("{s:s, s:s, s:s, s:s}", "endpoint_id", r->dl.endpoint_id,
				 "url", r->a.url ? r->a.url : "", "reason", GONE_REASON,
				 "disabled_at", at);
	} else {
		json_t *last_error = r->dl.last_error[0] ? json_string(r->dl.last_error) : json_null();
		json_t *last_status =
			r->dl.last_status > 0 ? json_integer(r->dl.last_status) : json_null();
		data = json_pack("{s:s, s:s, s:s, s:s, s:i, s:o, s:o}", "delivery_id", r->dl.id,
				 "event_id", r->dl.event_id, "endpoint_id", r->dl.endpoint_id,
				 "url", r->a.url ? r->a.url : "", "attempts",
				 r->dl.attempt_count, "last_error", last_error, "last_status",
				 last_status);
	}
	char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
	char *type = xstrdup(event_type);
	int rc = -1;
	memset(item, 0, sizeof *item);
	if (text == NULL || type == NULL) {
		free(text);
		free(type);
		goto out;
	}
	if (ingest_item_prepare(item, d->cache, NULL, type, text, data, now_ms()) != 0)
		goto out;
	if (item->n == 0)
		goto out; /* nobody subscribed: nothing worth storing */
	rc = 0;
out:
	if (rc != 0) {
		event_clear(&item->ev);
		free(item->endpoint_ids);
		free(item->delivery_ids);
		memset(item, 0, sizeof *item);
	}
	json_decref(data);
	return rc;
}

/* Hands every result gathered this iteration to the commit thread as one op. */
void dispatch_flush_results(struct dispatch *d)
{
	if (d->n_results == 0)
		return;
	struct record_op *r = calloc(1, sizeof *r);
	if (r == NULL) {
		/* The rows stay as they were; a rescan sends them again. */
		log_error("dispatch: out of memory flushing %zu results", d->n_results);
		for (size_t i = 0; i < d->n_results; i++)
			dwin_release(&d->win, d->results[i].dl.seq, d->results[i].dl.id);
		results_free(d->results, d->n_results);
		dwin_rescan(&d->win);
		goto reset;
	}
	r->m.kind = MSG_RECORD;
	r->d = d;
	r->res = d->results;
	r->n = d->n_results;
	size_t notices = 0;
	for (size_t i = 0; i < r->n; i++)
		notices += r->res[i].notify || r->res[i].gone;
	/* hookd's own events wait for the schedule's first delay like any. */
	r->notes.first_delay_ms = d->cfg.schedule_len > 0 ? d->cfg.schedule_ms[0] : 0;
	if (notices > 0 && (r->notes.items = calloc(notices, sizeof *r->notes.items)) != NULL) {
		for (size_t i = 0; i < r->n; i++)
			if ((r->res[i].notify || r->res[i].gone) &&
			    prepare_notice(d, &r->res[i], &r->notes.items[r->notes.n]) == 0)
				r->notes.n++;
	}
	r->op.apply = record_apply;
	r->op.done = record_done;
	r->op.can_wait = true;
	r->op.hop = HOP_RECORD_QUEUE;
	/* record_apply recomputes everything it hands back (missing, disabled,
	 * the notices' rows), as a retry after a failed commit needs anyway:
	 * consecutive records share one savepoint (two round trips each fewer
	 * on PostgreSQL). */
	r->op.rerun_ok = true;
	dispatch_submit(d, &r->op);
reset:
	d->results = NULL;
	d->n_results = d->cap_results = 0;
}

/* ---- store failures (docs/operations.md#faults-and-what-hookd-does) ---- */

/* True while the backoff runs at monotonic ms mono: until its end, or
 * until the server that was unreachable is reached again. */
static bool backoff_runs(const struct dispatch *d, int64_t mono)
{
	if (d->store_retry_at == 0 || mono >= d->store_retry_at)
		return false;
	return !d->store_unreachable ||
	       store_health_has(d->cfg.health, STORE_COND_UNREACHABLE);
}

bool dispatch_store_paused(const struct dispatch *d, int64_t mono)
{
	return d->parked != NULL || d->records_retrying > 0 || backoff_runs(d, mono);
}

/* A failed record: starts the pause, or lengthens it once per round (the
 * ops of one round fail together and count once). */
static void store_backoff(struct dispatch *d, int64_t mono)
{
	if (backoff_runs(d, mono))
		return;
	d->store_unreachable = store_health_has(d->cfg.health, STORE_COND_UNREACHABLE);
	if (d->store_failures == 0)
		log_warn("dispatch: paused: the store cannot be written or read; no request "
			 "starts until it can (see the store's health)");
	if (d->store_failures < UINT_MAX)
		d->store_failures++;
	d->store_retry_at = mono + retry_store_backoff_ms(d->store_failures);
}

void dispatch_store_unreachable(struct dispatch *d) { store_backoff(d, mono_ms()); }

bool dispatch_record_back(struct dispatch *d, struct record_op *r)
{
	if (r->retried)
		d->records_retrying--;
	if (r->rc == STORE_OK) {
		if (d->store_failures > 0 && d->parked == NULL && d->records_retrying == 0) {
			log_info("dispatch: resumed: attempt outcomes are written again tries=%u",
				 d->store_failures);
			d->store_failures = 0;
			d->store_retry_at = 0;
		}
		return false;
	}
	store_backoff(d, mono_ms());
	if (!r->store_fault || d->stopping)
		return false;
	r->next_parked = NULL;
	*d->parked_tail = r;
	d->parked_tail = &r->next_parked;
	return true;
}

void dispatch_retry_records(struct dispatch *d, bool force)
{
	if (d->parked == NULL || d->records_retrying > 0)
		return;
	if (!force && backoff_runs(d, mono_ms()))
		return;
	struct record_op *r = d->parked;
	d->parked = NULL;
	d->parked_tail = &d->parked;
	while (r != NULL) {
		struct record_op *next = r->next_parked;
		r->next_parked = NULL;
		r->retried = true;
		r->rc = STORE_OK;
		d->records_retrying++;
		dispatch_submit(d, &r->op);
		r = next;
	}
}

void dispatch_drop_parked(struct dispatch *d)
{
	while (d->parked != NULL) {
		struct record_op *r = d->parked;
		d->parked = r->next_parked;
		for (size_t i = 0; i < r->n; i++)
			dwin_release(&d->win, r->res[i].dl.seq, r->res[i].dl.id);
		dispatch_record_free(r);
	}
	d->parked_tail = &d->parked;
}
