/* dispatch: the delivery loop (DESIGN §2; see dispatch.h).
 *
 * One thread owns everything here except the inbox: the window of pending
 * deliveries (dispatch_window.h), the libcurl multi handle, the transfers
 * and the read connection to the store. Other threads talk to it only
 * through the inbox (a mutex-protected list plus an eventfd wakeup): new
 * deliveries from dispatch_enqueue, and the done() of every commit op the
 * dispatcher submitted (pages of pending rows, recorded attempt results).
 * Because the commit thread runs ops and calls done() in submission order,
 * the inbox sees store changes in the order they were committed; the paging
 * rules in dispatch_window.c depend on that.
 *
 * The loop drives libcurl with curl_multi_socket_action over epoll (libcurl's
 * docs/examples/ephiperfifo.c): curl says which sockets to watch and when its
 * timer fires, so one turn costs what became ready, not a scan of every
 * transfer in flight. */
#include "dispatch.h"

#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "dispatch_ep.h"
#include "dispatch_http.h"
#include "dispatch_window.h"
#include "failure.h"
#include "ingest.h"
#include "log.h"
#include "retry.h"
#include "util.h"

#define POLL_MAX_MS 1000
#define PAGE_RETRY_MS 1000             /* after a failed page */
#define PURGE_FIRST_MS 1000             /* soon after start, then every purge_every() */
#define PURGE_EVERY_MAX_MS (3600 * 1000)
#define STOP_GRACE_MS 1000             /* on top of the request timeout */
#define START_BATCH 64                 /* deliveries prepared together */
#define EPOLL_EVENTS 256
#define RETRY_AFTER_MIN_MS 1000        /* a Retry-After pause lasts at least this */
#define RETRY_AFTER_DEFAULT_MAX_MS (3600 * 1000)
#define GONE_REASON "410 Gone from the receiver"

#define CONTAINER_OF(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

enum msg_kind { MSG_ENQUEUE, MSG_PAGE, MSG_RECORD };

struct msg {
	enum msg_kind kind;
	struct msg *next;
};

struct enqueue_msg {
	struct msg m;
	size_t n;
	struct pending items[];
};

struct page_op {
	struct commit_op op;
	struct msg m;
	struct dispatch *d;
	unsigned gen;
	int64_t after_at;
	char after_id[ID_MAX];
	int limit;
	struct pending *items;
	size_t n;
	int rc;
};

/* One finished attempt and the delivery's new state. error_code and
 * dl.last_error point at failure_code()'s static strings. */
struct result {
	struct attempt a;
	struct delivery dl;
	bool notify;             /* newly dead: emit delivery.dead_lettered */
	/* A 410 Gone: disable the endpoint (and emit endpoint.disabled). */
	bool gone;
	struct endpoint *disabled; /* the endpoint as disabled, for the cache */
	char batch_id[ID_MAX];   /* the batch it went in, "" if none */
};

struct record_op {
	struct commit_op op;
	struct msg m;
	struct dispatch *d;
	struct result *res;
	size_t n;
	struct ingest_batch notes;
	int rc;
};

struct purge_op {
	struct commit_op op;
	struct dispatch *d;
	int64_t before;
};

struct dispatch {
	struct dispatch_config cfg;
	struct retry_schedule schedule;
	struct commit *writer;
	struct epcache *cache;
	struct store *st;
	CURLM *multi;
	int epfd;                /* curl's sockets and wakefd */
	int wakefd;              /* eventfd: the inbox has news */
	pthread_t thread;

	pthread_mutex_t mu;      /* guards the fields down to ops_outstanding */
	pthread_cond_t cv;
	struct msg *inbox, **inbox_tail;
	bool stop_requested;
	bool rescan_requested;
	int ops_outstanding;     /* submitted ops whose done() has not run */

	/* Per-endpoint state; its mutex guards what API threads read. */
	struct dispatch_eps eps;

	/* Dispatcher thread only. */
	struct dwin win;
	/* Endpoints with due deliveries in their ready queue that may be able
	 * to start one: a ring, served round-robin one delivery at a time. */
	struct dispatch_ep **run;
	size_t run_head, run_n, run_cap;
	/* Endpoints waiting for a token (or a pause or probe time). */
	struct dispatch_ep **sleepers;
	size_t n_sleepers, cap_sleepers;
	size_t ready_total;      /* deliveries in ready queues and waiting batches */
	size_t ready_cap;        /* most held in ready queues (the window) */
	struct dispatch_http_pool reqs;
	int in_flight;
	struct result *results;  /* finished since the last flush */
	size_t n_results, cap_results;
	int64_t next_purge;      /* monotonic */
	int64_t page_retry_at;   /* monotonic; 0 = page when wanted */
	int64_t curl_due_us;     /* monotonic µs when curl's timer fires; -1 = none */
	bool stopping;
};

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Wakes the dispatcher thread out of epoll_wait. */
static void wake(struct dispatch *d)
{
	uint64_t one = 1;
	/* Only EAGAIN can fail here (the counter is saturated): already awake. */
	if (write(d->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
		log_warn("dispatch: wakeup failed errno=%d", errno);
}

/* ---- inbox and op bookkeeping ---- */

static void inbox_put(struct dispatch *d, struct msg *m, bool op_done)
{
	pthread_mutex_lock(&d->mu);
	bool was_empty = d->inbox == NULL;
	if (m != NULL) {
		m->next = NULL;
		*d->inbox_tail = m;
		d->inbox_tail = &m->next;
	}
	/* One wakeup per batch of messages: the loop drains the whole list.
	 * Called before giving up the lock, because once ops_outstanding hits
	 * zero the dispatcher may free everything, the eventfd included. */
	if (m != NULL && was_empty)
		wake(d);
	if (op_done) {
		d->ops_outstanding--;
		pthread_cond_broadcast(&d->cv);
	}
	pthread_mutex_unlock(&d->mu);
}

static void submit(struct dispatch *d, struct commit_op *op)
{
	pthread_mutex_lock(&d->mu);
	d->ops_outstanding++;
	pthread_mutex_unlock(&d->mu);
	commit_submit(d->writer, op);
}

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
static void run_add(struct dispatch *d, struct dispatch_ep *e)
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
			run_add(d, e);
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
		run_add(d, e);
	}
}

/* Empties e's ready queue: its endpoint was deleted (its rows went with it)
 * or disabled (the store keeps them; enabling it rescans). */
static void drop_ready(struct dispatch *d, struct dispatch_ep *e, const char *reason)
{
	struct pending p;
	while (dispatch_ep_pop(e, &p)) {
		log_debug("delivery skipped id=%s endpoint=%s reason=%s", p.id, p.endpoint_id,
			  reason);
		d->ready_total--;
		dwin_release(&d->win, p.id);
	}
	while (e->retry != NULL) {
		struct dbatch *b = e->retry;
		e->retry = b->next;
		d->ready_total -= b->n;
		for (size_t i = 0; i < b->n; i++)
			dwin_release(&d->win, b->m[i].id);
		free(b->m);
		free(b->quiet);
		free(b);
	}
}

/* Moves the window's due deliveries to their endpoints' ready queues, up to
 * ready_cap in all (beyond it they wait in the heap, in due order). */
static void take_due(struct dispatch *d, int64_t now)
{
	const struct pending *top;
	while (d->ready_total < d->ready_cap && (top = dwin_peek(&d->win)) != NULL &&
	       top->next_attempt_at <= now) {
		struct pending p;
		dwin_pop(&d->win, &p);
		struct dispatch_ep *e = dispatch_eps_get(&d->eps, p.endpoint_id);
		if (e == NULL || dispatch_ep_push(e, &p) != 0) {
			/* The row is in the store: let a page find it again. */
			log_error("dispatch: out of memory queueing id=%s", p.id);
			dwin_release(&d->win, p.id);
			dwin_rescan(&d->win);
			return;
		}
		d->ready_total++;
		run_add(d, e);
		/* A batch endpoint asleep until its group's wait ends goes as
		 * soon as the group is full. */
		if (e->sleeping && e->batch_max > 0 && e->q_n >= (size_t)e->batch_max)
			e->wake_at = 0;
	}
}

/* The in-flight cap of ep. */
static int ep_cap(const struct ep_entry *ep)
{
	return ep->max_in_flight > 0 ? ep->max_in_flight : DISPATCH_EP_DEFAULT_MAX_IN_FLIGHT;
}

/* ---- results ---- */

/* The pause a Retry-After value asks for, as the wall-clock ms it ends
 * (delta-seconds or an HTTP-date), bounded to [now + RETRY_AFTER_MIN_MS,
 * now + max_ms]. Returns false if v is neither. */
static bool retry_after_until(const char *v, int64_t now, int64_t max_ms, int64_t *until)
{
	while (*v == ' ' || *v == '\t')
		v++;
	int64_t wait;
	if (isdigit((unsigned char)*v)) {
		int64_t secs = 0;
		const char *c = v;
		for (; isdigit((unsigned char)*c); c++)
			if (secs < INT64_MAX / 10000) /* saturate: the bound cuts it anyway */
				secs = secs * 10 + (*c - '0');
		while (*c == ' ' || *c == '\t')
			c++;
		if (*c != '\0')
			return false;
		wait = secs * 1000;
	} else {
		time_t t = curl_getdate(v, NULL);
		if (t == (time_t)-1)
			return false;
		wait = (int64_t)t * 1000 - now;
	}
	if (wait < RETRY_AFTER_MIN_MS)
		wait = RETRY_AFTER_MIN_MS;
	if (wait > max_ms)
		wait = max_ms;
	*until = now + wait;
	return true;
}

/* Feeds one attempt's outcome to e's circuit breaker, with hookd's
 * configured cooldown in place of breaker.c's default: the first open
 * period is --breaker-cooldown and doubling stops at 20 times it. */
static void breaker_note(struct dispatch *d, struct dispatch_ep *e, bool success, int64_t now)
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
}

/* Returns x to the pool with its endpoint reference released. */
static void req_put(struct dispatch *d, struct dispatch_http_req *x)
{
	ep_entry_release(x->ep);
	x->ep = NULL;
	x->sched = NULL;
	dispatch_http_put(&d->reqs, x);
}

/* Frees a batch (its members' holds are the caller's business). */
static void batch_free(struct dbatch *b)
{
	if (b == NULL)
		return;
	free(b->m);
	free(b->quiet);
	free(b);
}

/* Copies src (the batch's first attempt) as member m's attempt. */
static void attempt_copy(const struct attempt *src, const struct pending *m, struct attempt *a)
{
	*a = *src;
	memcpy(a->delivery_id, m->id, ID_MAX);
	a->attempt = m->attempt_count + 1;
	a->url = src->url ? xstrdup(src->url) : NULL;
	a->response_body = src->response_body ? xstrdup(src->response_body) : NULL;
	a->error_message = src->error_message ? xstrdup(src->error_message) : NULL;
	a->headers = json_incref(src->headers);
}

/* Records the outcome of x's attempt and moves its deliveries on (one, or
 * every member of a batch, which moves as a unit): succeeded, pending again
 * (back in the window if it belongs there; a batch waits for its retry on
 * its endpoint) or dead. */
static void finish(struct dispatch *d, struct dispatch_http_req *x, enum failure_kind kind,
		   long status, const char *detail)
{
	int64_t now = now_ms();
	struct dispatch_ep *e = x->sched;
	struct dbatch *b = x->batch;
	x->batch = NULL;
	const struct pending *members = b != NULL ? b->m : &x->p;
	size_t n = b != NULL ? b->n : 1;
	if (e != NULL) {
		e->in_flight--;
		run_add(d, e);
	}
	if (d->n_results + n > d->cap_results) {
		size_t cap = d->cap_results ? d->cap_results * 2 : 64;
		while (cap < d->n_results + n)
			cap *= 2;
		struct result *r = realloc(d->results, cap * sizeof *r);
		if (r == NULL) {
			/* Without a result the rows stay as they were in the
			 * store; a rescan sends them again. */
			log_error("dispatch: out of memory recording id=%s", members[0].id);
			for (size_t i = 0; i < n; i++)
				dwin_release(&d->win, members[i].id);
			dwin_rescan(&d->win);
			batch_free(b);
			req_put(d, x);
			return;
		}
		d->results = r;
		d->cap_results = cap;
	}
	struct result *first = &d->results[d->n_results];
	memset(first, 0, sizeof *first);
	const char *code = failure_code(kind);
	dispatch_http_attempt(x, kind, status, detail, &first->a);

	/* Receiver signals that cost no attempt (issue 4): 410 Gone disables
	 * the endpoint; 429/503 with Retry-After pauses it. The attempt is
	 * recorded either way; the schedule position stays where it was. */
	int64_t pause_until = 0;
	bool gone = false;
	/* What the breaker counts: the receiver's answers and the network's
	 * failures, not hookd's own (blocked, internal) nor the signals below. */
	bool counts = kind != FAILURE_BLOCKED && kind != FAILURE_INTERNAL;
	if (kind == FAILURE_HTTP_STATUS && status == 410) {
		gone = true;
	} else if (kind == FAILURE_HTTP_STATUS && (status == 429 || status == 503)) {
		json_t *ra = first->a.headers ? json_object_get(first->a.headers, "retry-after")
					      : NULL;
		int64_t max = d->cfg.max_retry_after_ms > 0 ? d->cfg.max_retry_after_ms
							     : RETRY_AFTER_DEFAULT_MAX_MS;
		if (json_is_string(ra) &&
		    !retry_after_until(json_string_value(ra), now, max, &pause_until))
			pause_until = 0;
	}
	if (gone || pause_until > 0)
		counts = false;
	if (e != NULL && counts)
		breaker_note(d, e, kind == FAILURE_NONE, now);
	if (e != NULL && pause_until > 0) {
		pthread_mutex_lock(&d->eps.mu);
		if (pause_until > e->paused_until)
			e->paused_until = pause_until;
		pthread_mutex_unlock(&d->eps.mu);
		log_info("endpoint paused endpoint=%s status=%ld until_ms=%lld",
			 members[0].endpoint_id, status, (long long)pause_until);
	}
	bool disable = false;
	if (gone && e != NULL && !e->disabling) {
		/* The first 410 disables it; others already in flight only
		 * record their attempt. */
		struct ep_entry *cur = epcache_get(d->cache, members[0].endpoint_id);
		if (cur != NULL && cur->enabled) {
			e->disabling = true;
			disable = true;
			log_warn("endpoint disabled endpoint=%s reason=\"%s\"",
				 members[0].endpoint_id, GONE_REASON);
		}
		ep_entry_release(cur);
	}

	/* The next attempt: one time for the whole batch, from its furthest
	 * schedule position. */
	int64_t delay = -1, next_at = 0;
	bool spent = kind != FAILURE_NONE && !gone && pause_until == 0;
	if (gone || pause_until > 0) {
		next_at = gone ? now : pause_until;
		delay = next_at - now;
	} else if (spent) {
		int si = 0;
		for (size_t i = 0; i < n; i++)
			if (members[i].schedule_index > si)
				si = members[i].schedule_index;
		delay = retry_next_delay(&d->schedule, si + 1, random_unit() * 2 - 1);
		if (delay >= 0)
			next_at = delay > INT64_MAX - now ? INT64_MAX : now + delay;
	}

	for (size_t i = 0; i < n; i++) {
		const struct pending *p = &members[i];
		struct result *r = &d->results[d->n_results++];
		if (i > 0) {
			memset(r, 0, sizeof *r);
			attempt_copy(&first->a, p, &r->a);
		}
		if (b != NULL)
			memcpy(r->batch_id, b->id, ID_MAX);
		r->gone = disable && i == 0;
		struct delivery *dl = &r->dl;
		memcpy(dl->id, p->id, ID_MAX);
		memcpy(dl->event_id, p->event_id, ID_MAX);
		memcpy(dl->endpoint_id, p->endpoint_id, ID_MAX);
		dl->attempt_count = p->attempt_count + 1;
		dl->schedule_index = spent ? p->schedule_index + 1 : p->schedule_index;
		dl->updated_at = now;
		dl->last_status = (int)status;
		dl->last_error = (char *)code;
		if (kind == FAILURE_NONE) {
			dl->status = DELIVERY_SUCCEEDED;
		} else {
			dl->status = delay >= 0 ? DELIVERY_PENDING : DELIVERY_DEAD;
			dl->next_attempt_at = next_at;
			/* A dead notification never emits another. */
			bool quiet = b != NULL ? b->quiet[i] != 0
					       : x->type[0] == '\0' ||
							 strcmp(x->type, EVENT_DEAD_LETTERED) == 0;
			r->notify = delay < 0 && !quiet;
		}
		/* Until this result is committed the store shows the old row:
		 * hold the id so no page loads it again meanwhile. */
		if (dwin_hold(&d->win, p->id) != 0)
			log_warn("dispatch: out of memory holding id=%s", p->id);
		if (dl->status == DELIVERY_PENDING && b == NULL) {
			struct pending np = *p;
			np.attempt_count = dl->attempt_count;
			np.schedule_index = dl->schedule_index;
			np.next_attempt_at = dl->next_attempt_at;
			dwin_reschedule(&d->win, &np);
		} else if (dl->status == DELIVERY_PENDING) {
			/* Stays held in the batch, which is retried as a unit. */
			b->m[i].attempt_count = dl->attempt_count;
			b->m[i].schedule_index = dl->schedule_index;
			b->m[i].next_attempt_at = dl->next_attempt_at;
		} else {
			dwin_release(&d->win, p->id);
		}
		if (kind == FAILURE_NONE)
			log_debug("delivery succeeded id=%s endpoint=%s status=%ld attempt=%d "
				  "ms=%lld", p->id, p->endpoint_id, status, r->a.attempt,
				  (long long)r->a.duration_ms);
		else if (dl->status == DELIVERY_PENDING)
			log_info("delivery failed id=%s endpoint=%s attempt=%d error=%s status=%ld "
				 "retry_in_ms=%lld", p->id, p->endpoint_id, r->a.attempt, code,
				 status, (long long)delay);
		else
			log_warn("delivery dead id=%s endpoint=%s attempts=%d error=%s status=%ld",
				 p->id, p->endpoint_id, r->a.attempt, code, status);
	}
	if (b != NULL && kind != FAILURE_NONE && delay >= 0 && e != NULL) {
		b->due_at = next_at;
		b->next = e->retry;
		e->retry = b;
		/* Held outside the heap: counted with the ready queues, so a
		 * failing batch endpoint's backlog stays bounded too. */
		d->ready_total += b->n;
	} else {
		if (b != NULL && kind != FAILURE_NONE && delay >= 0)
			for (size_t i = 0; i < n; i++)
				dwin_release(&d->win, b->m[i].id);
		batch_free(b);
	}
	if (e != NULL)
		run_add(d, e);
	req_put(d, x);
}

/* A transfer curl finished. */
static void complete(struct dispatch *d, struct dispatch_http_req *x, CURLcode cc)
{
	long status;
	char detail[CURL_ERROR_SIZE + 32];
	enum failure_kind kind = dispatch_http_outcome(x, cc, &status, detail, sizeof detail);
	curl_multi_remove_handle(d->multi, x->easy);
	d->in_flight--;
	finish(d, x, kind, status, detail);
}

static void reap(struct dispatch *d)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(d->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		char *priv = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		CURLcode cc = m->data.result;
		if (priv != NULL)
			complete(d, (struct dispatch_http_req *)(void *)priv, cc);
	}
}

/* Starts the delivery p (from e's ready queue, still held, already
 * counted in e->in_flight) to ep (a reference, which the request keeps) with
 * its event ev (NULL if it could not be read). Returns false if nothing more
 * should be started now (out of memory; p is back in the window). */
static bool start_one(struct dispatch *d, const struct pending *p, struct dispatch_ep *e,
		      struct ep_entry *ep, const struct event *ev)
{
	struct dispatch_http_req *x = dispatch_http_get(&d->reqs);
	if (x == NULL) {
		log_error("dispatch: out of memory starting id=%s", p->id);
		ep_entry_release(ep);
		e->in_flight--;
		if (dwin_push(&d->win, p) != 0) {
			dwin_release(&d->win, p->id);
			dwin_rescan(&d->win);
		}
		return false;
	}
	x->ep = ep;
	x->sched = e;
	const char *why;
	enum failure_kind kind = dispatch_http_prepare(&d->reqs, x, p, ep, ev, &why);
	if (kind == FAILURE_NONE) {
		if (curl_multi_add_handle(d->multi, x->easy) == CURLM_OK) {
			d->in_flight++;
		} else {
			kind = FAILURE_INTERNAL;
			why = "could not start the transfer";
		}
	}
	if (kind != FAILURE_NONE)
		finish(d, x, kind, 0, why);
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
				dwin_release(&d->win, b->m[i].id);
				dwin_rescan(&d->win);
			}
		batch_free(b);
	}
}

/* A new batch of up to max of e's ready deliveries, oldest first; NULL if
 * out of memory (nothing taken). */
static struct dbatch *batch_form(struct dispatch *d, struct dispatch_ep *e, size_t max)
{
	size_t n = e->q_n < max ? e->q_n : max;
	struct dbatch *b = calloc(1, sizeof *b);
	if (b == NULL || (b->m = malloc(n * sizeof *b->m)) == NULL ||
	    (b->quiet = calloc(n, 1)) == NULL || id_new("bat", b->id) != 0) {
		batch_free(b);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		dispatch_ep_pop(e, &b->m[i]);
	b->n = n;
	d->ready_total -= n;
	return b;
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
	struct dispatch_http_req *x = NULL;
	if (ids == NULL || evs == NULL || evp == NULL || rcs == NULL ||
	    (x = dispatch_http_get(&d->reqs)) == NULL) {
		/* Out of memory: the members go back to the window. */
		log_error("dispatch: out of memory starting batch=%s", b->id);
		for (size_t i = 0; i < n; i++)
			if (dwin_push(&d->win, &b->m[i]) != 0) {
				dwin_release(&d->win, b->m[i].id);
				dwin_rescan(&d->win);
			}
		batch_free(b);
		e->in_flight--;
		ep_entry_release(ep);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		ids[i] = b->m[i].event_id;
	store_event_get_many(d->st, ids, n, evs, rcs);
	for (size_t i = 0; i < n; i++) {
		evp[i] = rcs[i] == STORE_OK ? &evs[i] : NULL;
		b->quiet[i] = evp[i] == NULL || evs[i].type == NULL ||
			      strcmp(evs[i].type, EVENT_DEAD_LETTERED) == 0;
	}
	x->ep = ep;
	x->sched = e;
	x->batch = b;
	const char *why;
	enum failure_kind kind =
		dispatch_http_prepare_batch(&d->reqs, x, b->id, &b->m[0], n, ep, evp, &why);
	if (kind == FAILURE_NONE) {
		if (curl_multi_add_handle(d->multi, x->easy) == CURLM_OK) {
			d->in_flight++;
			log_debug("batch started id=%s endpoint=%s size=%zu", b->id, e->id, n);
		} else {
			kind = FAILURE_INTERNAL;
			why = "could not start the transfer";
		}
	}
	if (kind != FAILURE_NONE)
		finish(d, x, kind, 0, why);
	for (size_t i = 0; i < n; i++)
		if (rcs[i] == STORE_OK)
			event_clear(&evs[i]);
out:
	free(ids);
	free(evs);
	free(evp);
	free(rcs);
}

/* Picks up to START_BATCH deliveries that may start now, round-robin over
 * the run list, under the global cap and each endpoint's own limits, with a
 * reference to each one's endpoint. Returns how many. */
static size_t pick(struct dispatch *d, int64_t now, int64_t mono, struct pending *out,
		   struct dispatch_ep **es, struct ep_entry **eps)
{
	size_t n = 0;
	struct dispatch_ep *e;
	while (n < START_BATCH && d->in_flight + (int)n < d->cfg.max_in_flight &&
	       (e = run_pop(d)) != NULL) {
		if (e->q_n == 0 && e->retry == NULL)
			continue;
		struct ep_entry *ep = epcache_get(d->cache, e->id);
		if (ep == NULL || !ep->enabled || e->disabling) {
			drop_ready(d, e, ep == NULL ? "endpoint_gone" : "endpoint_disabled");
			ep_entry_release(ep);
			continue;
		}
		if (e->paused_until > now) {
			/* Retry-After: nothing goes out before the pause ends. */
			sleep_until(d, e, mono + (e->paused_until - now));
			ep_entry_release(ep);
			continue;
		}
		/* Batching: a group goes when it is full, when its oldest has
		 * waited max_wait_ms, or when a failed batch's retry is due. */
		e->batch_max = ep->batch_max_events;
		if (ep->batch_max_events <= 0 && e->retry != NULL)
			unbatch(d, e);
		struct dbatch **due_retry = NULL;
		if (ep->batch_max_events > 0) {
			int64_t wake = INT64_MAX;
			for (struct dbatch **bp = &e->retry; *bp != NULL; bp = &(*bp)->next) {
				if ((*bp)->due_at <= now) {
					due_retry = bp;
					break;
				}
				if ((*bp)->due_at < wake)
					wake = (*bp)->due_at;
			}
			bool group = false;
			if (due_retry == NULL && e->q_n > 0) {
				int64_t ready_at = e->q[e->q_head].next_attempt_at +
						   ep->batch_max_wait_ms;
				if (e->q_n >= (size_t)ep->batch_max_events || now >= ready_at)
					group = true;
				else if (ready_at < wake)
					wake = ready_at;
			}
			if (due_retry == NULL && !group) {
				if (wake != INT64_MAX)
					sleep_until(d, e, mono + (wake > now ? wake - now : 1));
				ep_entry_release(ep);
				continue;
			}
		} else if (e->q_n == 0) {
			ep_entry_release(ep);
			continue;
		}
		pthread_mutex_lock(&d->eps.mu);
		bool allowed = breaker_allow(&e->br, now);
		enum breaker_state bs = e->br.state;
		int64_t probe_at = e->br.next_probe_at;
		pthread_mutex_unlock(&d->eps.mu);
		if (!allowed) {
			/* Open: wait for the probe time. Half open: the probe's
			 * finish brings it back. */
			if (bs == BREAKER_OPEN)
				sleep_until(d, e, mono + (probe_at > now ? probe_at - now : 1));
			ep_entry_release(ep);
			continue;
		}
		int cap = ep_cap(ep);
		if (e->in_flight >= cap) {
			/* Back on the run list when one of its requests ends. */
			ep_entry_release(ep);
			continue;
		}
		if (e->bucket.rate != (ep->rate_limit > 0 ? ep->rate_limit : 0))
			bucket_init(&e->bucket, ep->rate_limit, mono);
		if (!bucket_take(&e->bucket, mono)) {
			int64_t wait = bucket_wait_ms(&e->bucket, mono);
			sleep_until(d, e, mono + (wait > 0 ? wait : 1));
			ep_entry_release(ep);
			continue;
		}
		if (ep->batch_max_events > 0) {
			struct dbatch *b;
			if (due_retry != NULL) {
				b = *due_retry;
				*due_retry = b->next;
				b->next = NULL;
				d->ready_total -= b->n;
			} else if ((b = batch_form(d, e, (size_t)ep->batch_max_events)) == NULL) {
				log_error("dispatch: out of memory forming a batch endpoint=%s",
					  e->id);
				ep_entry_release(ep);
				continue;
			}
			e->in_flight++;
			start_batch(d, e, ep, b);
			if (e->in_flight < cap)
				run_add(d, e);
			continue;
		}
		dispatch_ep_pop(e, &out[n]);
		d->ready_total--;
		e->in_flight++;
		es[n] = e;
		eps[n] = ep;
		n++;
		if (e->in_flight < cap)
			run_add(d, e);
	}
	return n;
}

static void start_due(struct dispatch *d)
{
	int64_t now = now_ms();
	int64_t mono = mono_ms();
	struct pending batch[START_BATCH];
	struct dispatch_ep *es[START_BATCH];
	struct ep_entry *eps[START_BATCH];
	struct event evs[START_BATCH];
	const char *ids[START_BATCH];
	int rcs[START_BATCH];
	size_t n;
	wake_sleepers(d, mono);
	take_due(d, now);
	while ((n = pick(d, now, mono, batch, es, eps)) > 0) {
		for (size_t i = 0; i < n; i++)
			ids[i] = batch[i].event_id;
		memset(evs, 0, n * sizeof *evs);
		store_event_get_many(d->st, ids, n, evs, rcs);
		size_t i = 0;
		for (; i < n; i++)
			if (!start_one(d, &batch[i], es[i], eps[i],
				       rcs[i] == STORE_OK ? &evs[i] : NULL))
				break;
		for (size_t j = i + 1; j < n; j++) {
			/* Out of memory: the rest go back to the window. */
			ep_entry_release(eps[j]);
			es[j]->in_flight--;
			if (dwin_push(&d->win, &batch[j]) != 0) {
				dwin_release(&d->win, batch[j].id);
				dwin_rescan(&d->win);
			}
		}
		for (size_t j = 0; j < n; j++)
			event_clear(&evs[j]);
		if (i < n)
			break;
		take_due(d, now);
	}
}

/* ---- commit ops ---- */

static int record_apply(struct store *st, struct commit_op *op)
{
	struct record_op *r = CONTAINER_OF(op, struct record_op, op);
	for (size_t i = 0; i < r->n; i++) {
		int rc = store_delivery_update_state(st, &r->res[i].dl);
		if (rc == STORE_NOTFOUND)
			continue; /* deleted with its endpoint meanwhile */
		if (rc != STORE_OK)
			return rc;
		rc = store_attempt_insert(st, &r->res[i].a);
		if (rc != STORE_OK)
			return rc;
		if (r->res[i].batch_id[0] != '\0') {
			const char *id = r->res[i].dl.id;
			rc = store_delivery_set_batch(st, r->res[i].batch_id, &id, 1);
			if (rc != STORE_OK)
				return rc;
		}
		if (r->res[i].gone) {
			const char *id = r->res[i].dl.endpoint_id;
			rc = store_endpoint_disable(st, id, GONE_REASON, r->res[i].dl.updated_at);
			if (rc == STORE_NOTFOUND)
				continue;
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
			r->res[i].disabled = ep;
		}
	}
	if (r->notes.n > 0)
		return ingest_apply(st, &r->notes);
	return STORE_OK;
}

static void record_done(struct commit_op *op, int rc)
{
	struct record_op *r = CONTAINER_OF(op, struct record_op, op);
	r->rc = rc;
	/* The cache learns of a disable once it is committed, here on the
	 * commit thread, in order with the API's own endpoint changes. */
	for (size_t i = 0; rc == STORE_OK && i < r->n; i++)
		if (r->res[i].disabled != NULL &&
		    epcache_put(r->d->cache, r->res[i].disabled) != 0)
			log_error("dispatch: endpoint disabled but not cached id=%s",
				  r->res[i].disabled->id);
	inbox_put(r->d, &r->m, true);
}

/* Frees what finish() allocated for each result, and the array. */
static void results_free(struct result *res, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct attempt *a = &res[i].a;
		free(a->url);
		free(a->response_body);
		json_decref(a->headers);
		free(a->error_message);
		if (res[i].disabled != NULL) {
			endpoint_clear(res[i].disabled);
			free(res[i].disabled);
		}
	}
	free(res);
}

static void record_free(struct record_op *r)
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
		json_t *last_error = r->dl.last_error ? json_string(r->dl.last_error) : json_null();
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
static void flush_results(struct dispatch *d)
{
	if (d->n_results == 0)
		return;
	struct record_op *r = calloc(1, sizeof *r);
	if (r == NULL) {
		/* The rows stay as they were; a rescan sends them again. */
		log_error("dispatch: out of memory flushing %zu results", d->n_results);
		for (size_t i = 0; i < d->n_results; i++)
			dwin_release(&d->win, d->results[i].dl.id);
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
	if (notices > 0 && (r->notes.items = calloc(notices, sizeof *r->notes.items)) != NULL) {
		for (size_t i = 0; i < r->n; i++)
			if ((r->res[i].notify || r->res[i].gone) &&
			    prepare_notice(d, &r->res[i], &r->notes.items[r->notes.n]) == 0)
				r->notes.n++;
	}
	r->op.apply = record_apply;
	r->op.done = record_done;
	submit(d, &r->op);
reset:
	d->results = NULL;
	d->n_results = d->cap_results = 0;
}

static int page_apply(struct store *st, struct commit_op *op)
{
	struct page_op *p = CONTAINER_OF(op, struct page_op, op);
	p->rc = store_pending_page(st, p->after_at, p->after_id, p->limit, &p->items, &p->n);
	return p->rc;
}

static void page_done(struct commit_op *op, int rc)
{
	struct page_op *p = CONTAINER_OF(op, struct page_op, op);
	/* A group that failed to commit may have shown rows that are gone. */
	if (rc != STORE_OK)
		p->rc = rc;
	inbox_put(p->d, &p->m, true);
}

static void request_page(struct dispatch *d)
{
	size_t limit;
	if (d->page_retry_at != 0) {
		if (mono_ms() < d->page_retry_at)
			return;
		d->page_retry_at = 0;
	}
	if (!dwin_want_page(&d->win, &limit))
		return;
	struct page_op *p = calloc(1, sizeof *p);
	if (p == NULL)
		return;
	p->m.kind = MSG_PAGE;
	p->d = d;
	p->limit = limit > INT_MAX ? INT_MAX : (int)limit;
	p->gen = dwin_page_begin(&d->win, (size_t)p->limit, &p->after_at, p->after_id);
	p->op.apply = page_apply;
	p->op.done = page_done;
	submit(d, &p->op);
}

static int purge_apply(struct store *st, struct commit_op *op)
{
	struct purge_op *p = CONTAINER_OF(op, struct purge_op, op);
	int64_t count = 0;
	int rc = store_purge_dead(st, p->before, &count);
	if (rc == STORE_OK && count > 0)
		log_info("dead letters purged count=%lld", (long long)count);
	return rc;
}

static void purge_done(struct commit_op *op, int rc)
{
	struct purge_op *p = CONTAINER_OF(op, struct purge_op, op);
	struct dispatch *d = p->d;
	if (rc != STORE_OK)
		log_warn("dead letter purge failed rc=%d", rc);
	free(p);
	inbox_put(d, NULL, true);
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
	submit(d, &p->op);
}

/* ---- the loop ---- */

static void offer_all(struct dispatch *d, const struct pending *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (dwin_offer(&d->win, &items[i]) == DWIN_NOMEM) {
			log_error("dispatch: out of memory queueing id=%s", items[i].id);
			dwin_rescan(&d->win);
		}
}

static void handle(struct dispatch *d, struct msg *m)
{
	switch (m->kind) {
	case MSG_ENQUEUE: {
		struct enqueue_msg *e = CONTAINER_OF(m, struct enqueue_msg, m);
		if (!d->stopping)
			offer_all(d, e->items, e->n);
		free(e);
		break;
	}
	case MSG_PAGE: {
		struct page_op *p = CONTAINER_OF(m, struct page_op, m);
		if (p->rc == STORE_OK) {
			dwin_page_done(&d->win, p->gen, p->items, p->n);
		} else {
			log_warn("dispatch: reading pending deliveries failed rc=%d", p->rc);
			dwin_page_failed(&d->win, p->gen);
			d->page_retry_at = mono_ms() + PAGE_RETRY_MS;
		}
		free(p->items);
		free(p);
		break;
	}
	case MSG_RECORD: {
		struct record_op *r = CONTAINER_OF(m, struct record_op, m);
		for (size_t i = 0; i < r->n; i++) {
			dwin_release(&d->win, r->res[i].dl.id);
			if (r->res[i].gone) {
				/* Committed (the cache now says disabled) or failed
				 * (nothing changed): either way the cache decides. */
				struct dispatch_ep *e =
					dispatch_eps_find(&d->eps, r->res[i].dl.endpoint_id);
				if (e != NULL)
					e->disabling = false;
			}
		}
		if (r->rc != STORE_OK) {
			/* The store still has the old rows: page them in again. */
			log_error("dispatch: recording %zu attempts failed rc=%d", r->n, r->rc);
			dwin_rescan(&d->win);
		} else if (!d->stopping) {
			offer_all(d, r->notes.new_pending, r->notes.n_new_pending);
		}
		record_free(r);
		break;
	}
	}
}

static void drain_inbox(struct dispatch *d)
{
	pthread_mutex_lock(&d->mu);
	struct msg *m = d->inbox;
	d->inbox = NULL;
	d->inbox_tail = &d->inbox;
	bool rescan = d->rescan_requested;
	d->rescan_requested = false;
	if (d->stop_requested)
		d->stopping = true;
	pthread_mutex_unlock(&d->mu);
	while (m != NULL) {
		struct msg *next = m->next;
		handle(d, m);
		m = next;
	}
	if (rescan)
		dwin_rescan(&d->win);
}

/* ---- libcurl over epoll ---- */

/* CURLMOPT_SOCKETFUNCTION: watch s for what curl wants. socketp is non-NULL
 * once s is in the epoll set (curl_multi_assign), so a change is one MOD. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	(void)easy;
	struct dispatch *d = userp;
	if (what == CURL_POLL_REMOVE) {
		/* Fails harmlessly if curl closed s already (closing leaves the set). */
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	struct epoll_event ev = {
		.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) |
			  ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u),
		.data.fd = s,
	};
	int op = socketp != NULL ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(d->epfd, op, s, &ev) != 0) {
		/* A descriptor number reused after a close, or one that left the
		 * set on close: the other operation is the right one. */
		op = op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
		if (epoll_ctl(d->epfd, op, s, &ev) != 0) {
			/* Unwatched, the transfer ends at its timeout and is retried. */
			log_error("dispatch: epoll_ctl failed fd=%d errno=%d", (int)s, errno);
			return 0;
		}
	}
	if (socketp == NULL)
		curl_multi_assign(d->multi, s, d);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: when curl wants curl_multi_socket_action with
 * CURL_SOCKET_TIMEOUT (-1: never). Only records it; the loop acts. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct dispatch *d = userp;
	d->curl_due_us = timeout_ms < 0 ? -1 : mono_us() + (int64_t)timeout_ms * 1000;
	return 0;
}

/* Runs curl's timer if it is due: new transfers start, timeouts expire. */
static void curl_timer_run(struct dispatch *d)
{
	if (d->curl_due_us < 0 || mono_us() < d->curl_due_us)
		return;
	int running;
	d->curl_due_us = -1; /* curl sets the next one from inside the call */
	curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &running);
}

/* Waits up to timeout_ms for sockets, the wakeup or curl's timer, and hands
 * every ready socket to curl. */
static void wait_io(struct dispatch *d, int timeout_ms)
{
	struct epoll_event evs[EPOLL_EVENTS];
	int n = epoll_wait(d->epfd, evs, EPOLL_EVENTS, timeout_ms);
	if (n < 0 && errno != EINTR)
		log_warn("dispatch: epoll_wait failed errno=%d", errno);
	for (int i = 0; i < n; i++) {
		int fd = evs[i].data.fd;
		uint32_t e = evs[i].events;
		if (fd == d->wakefd) {
			uint64_t count;
			if (read(fd, &count, sizeof count) < 0 && errno != EAGAIN)
				log_warn("dispatch: wakeup read failed errno=%d", errno);
			continue;
		}
		int flags = ((e & (EPOLLIN | EPOLLHUP | EPOLLERR)) ? CURL_CSELECT_IN : 0) |
			    ((e & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
			    ((e & EPOLLERR) ? CURL_CSELECT_ERR : 0);
		int running;
		curl_multi_socket_action(d->multi, fd, flags, &running);
	}
	curl_timer_run(d);
}

static int poll_timeout(struct dispatch *d)
{
	int64_t t = POLL_MAX_MS;
	int64_t mono = mono_ms();
	const struct pending *top = dwin_peek(&d->win);
	if (!d->stopping) {
		if (d->run_n > 0 && d->in_flight < d->cfg.max_in_flight)
			t = 0;
		if (top != NULL && d->ready_total < d->ready_cap) {
			int64_t now = now_ms();
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
	if (d->curl_due_us >= 0) {
		/* Rounded up, so curl's timer has expired when the wait ends. */
		int64_t us = d->curl_due_us - mono_us();
		int64_t ms = us <= 0 ? 0 : (us + 999) / 1000;
		if (ms < t)
			t = ms;
	}
	if (t < 0)
		t = 0;
	return t > POLL_MAX_MS ? POLL_MAX_MS : (int)t;
}

/* Drops the transfers still running at the end of the stop grace: their
 * rows stay pending and go out again on the next start (at-least-once). */
static void abandon_in_flight(struct dispatch *d)
{
	size_t dropped = 0;
	for (size_t i = 0; i < d->reqs.n; i++) {
		struct dispatch_http_req *x = d->reqs.all[i];
		if (!x->busy)
			continue;
		curl_multi_remove_handle(d->multi, x->easy);
		dwin_release(&d->win, x->p.id);
		if (x->sched != NULL)
			((struct dispatch_ep *)x->sched)->in_flight--;
		req_put(d, x);
		d->in_flight--;
		dropped++;
	}
	if (dropped > 0)
		log_warn("dispatch: stopped with %zu deliveries in flight; they stay pending", dropped);
}

static void *run(void *arg)
{
	struct dispatch *d = arg;
	int64_t deadline = 0;
	for (;;) {
		drain_inbox(d);
		if (d->stopping && deadline == 0)
			deadline = mono_ms() + d->cfg.timeout_ms + STOP_GRACE_MS;
		if (!d->stopping)
			start_due(d);
		curl_timer_run(d);
		reap(d);
		/* Results go to the commit thread before any new page, so the
		 * page sees them (see dispatch_window.h). */
		flush_results(d);
		if (d->stopping) {
			if (d->in_flight == 0 || mono_ms() >= deadline)
				break;
		} else {
			dwin_evict(&d->win);
			request_page(d);
			maybe_purge(d);
		}
		wait_io(d, poll_timeout(d));
		reap(d);
	}
	abandon_in_flight(d);
	flush_results(d);
	/* Every op's done() posts here; wait for the last before d goes away. */
	pthread_mutex_lock(&d->mu);
	while (d->ops_outstanding > 0)
		pthread_cond_wait(&d->cv, &d->mu);
	pthread_mutex_unlock(&d->mu);
	drain_inbox(d);
	return NULL;
}

/* ---- public ---- */

static void dispatch_free(struct dispatch *d)
{
	for (size_t i = 0; i < d->reqs.n; i++) {
		ep_entry_release(d->reqs.all[i]->ep);
		d->reqs.all[i]->ep = NULL;
	}
	dispatch_http_pool_free(&d->reqs);
	/* Before the epoll set: cleanup may still report sockets to remove. */
	if (d->multi != NULL)
		curl_multi_cleanup(d->multi);
	if (d->epfd >= 0)
		close(d->epfd);
	if (d->wakefd >= 0)
		close(d->wakefd);
	if (d->st != NULL)
		store_close(d->st);
	while (d->inbox != NULL) {
		struct msg *m = d->inbox;
		d->inbox = m->next;
		handle(d, m);
	}
	dwin_free(&d->win);
	dispatch_eps_free(&d->eps);
	free(d->run);
	free(d->sleepers);
	free((void *)d->schedule.delays_ms);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	free(d);
	curl_global_cleanup();
}

int dispatch_start(const struct dispatch_config *cfg, struct commit *writer, struct epcache *cache,
		   struct dispatch **out, char *err, size_t errlen)
{
	if (cfg->schedule_len == 0 || cfg->timeout_ms <= 0 || cfg->max_in_flight <= 0) {
		snprintf(err, errlen, "dispatch: empty retry schedule, bad timeout or in-flight cap");
		return -1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "dispatch: libcurl failed to initialise");
		return -1;
	}
	struct dispatch *d = calloc(1, sizeof *d);
	int64_t *sched = malloc(cfg->schedule_len * sizeof *sched);
	if (d == NULL || sched == NULL) {
		free(d);
		free(sched);
		curl_global_cleanup();
		snprintf(err, errlen, "dispatch: out of memory");
		return -1;
	}
	memcpy(sched, cfg->schedule_ms, cfg->schedule_len * sizeof *sched);
	d->cfg = *cfg;
	d->cfg.schedule_ms = sched;
	d->cfg.db_url = NULL; /* only needed here */
	d->schedule.delays_ms = sched;
	d->schedule.len = cfg->schedule_len;
	d->writer = writer;
	d->cache = cache;
	d->reqs.timeout_ms = cfg->timeout_ms;
	d->reqs.allow_http = cfg->allow_http;
	d->inbox_tail = &d->inbox;
	d->next_purge = mono_ms() + PURGE_FIRST_MS;
	d->curl_due_us = -1;
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	d->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	if (dwin_init(&d->win, cfg->window) != 0 || dispatch_eps_init(&d->eps, cfg->breaker_failures,
							      cfg->breaker_cooldown_ms > 0
								      ? cfg->breaker_cooldown_ms
								      : BREAKER_COOLDOWN_MIN_MS) != 0) {
		snprintf(err, errlen, "dispatch: out of memory");
		goto fail;
	}
	if (store_open(cfg->db_url, &d->st, err, errlen) != STORE_OK) {
		d->st = NULL;
		goto fail;
	}
	/* Ready queues may hold as much again as the heap: past that, due
	 * deliveries wait in the heap (see take_due). */
	d->ready_cap = d->win.window;
	struct epoll_event wev = {.events = EPOLLIN, .data.fd = d->wakefd};
	if (d->epfd < 0 || d->wakefd < 0 ||
	    epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->wakefd, &wev) != 0) {
		snprintf(err, errlen, "dispatch: epoll or eventfd failed: %s", strerror(errno));
		goto fail;
	}
	d->multi = curl_multi_init();
	if (d->multi == NULL) {
		snprintf(err, errlen, "dispatch: curl_multi_init failed");
		goto fail;
	}
	curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
	curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
	/* Connections are bounded by the in-flight cap (one transfer, one
	 * connection) plus the idle cache below. No CURLMOPT_MAX_TOTAL_ or
	 * MAX_HOST_CONNECTIONS: at those limits curl parks transfers in a
	 * pending queue where their timeout runs (and in 7.88 some sat there
	 * until it expired); the per-endpoint cap belongs to the dispatcher's
	 * own scheduling. */
	curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)cfg->max_in_flight);
	if (pthread_create(&d->thread, NULL, run, d) != 0) {
		snprintf(err, errlen, "dispatch: cannot start the thread");
		goto fail;
	}
	pthread_setname_np(d->thread, "hookd-dispatch"); /* for top -H and perf */
	log_info("dispatcher started max_in_flight=%d window=%zu timeout_ms=%lld attempts=%zu",
		 cfg->max_in_flight, d->win.window, (long long)cfg->timeout_ms, cfg->schedule_len);
	*out = d;
	return 0;
fail:
	dispatch_free(d);
	return -1;
}

struct dispatch_eps *dispatch_eps_of(struct dispatch *d)
{
	return &d->eps;
}

void dispatch_enqueue(struct dispatch *d, const struct pending *items, size_t n)
{
	if (n == 0)
		return;
	struct enqueue_msg *e = malloc(sizeof *e + n * sizeof *items);
	if (e == NULL) {
		/* The rows are committed; a rescan pages them in. */
		log_error("dispatch: out of memory enqueueing %zu deliveries", n);
		dispatch_rescan(d);
		return;
	}
	e->m.kind = MSG_ENQUEUE;
	e->n = n;
	memcpy(e->items, items, n * sizeof *items);
	inbox_put(d, &e->m, false);
}

void dispatch_rescan(struct dispatch *d)
{
	pthread_mutex_lock(&d->mu);
	d->rescan_requested = true;
	wake(d);
	pthread_mutex_unlock(&d->mu);
}

void dispatch_stop(struct dispatch *d)
{
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	d->stop_requested = true;
	wake(d);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->thread, NULL);
	log_info("dispatcher stopped");
	dispatch_free(d);
}
