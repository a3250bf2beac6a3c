/* dispatch_internal: what dispatch.c, dispatch_sched.c and dispatch_record.c
 * share (private to them): the dispatcher struct, its request, the messages
 * its inbox (dispatch_inbox.h) carries and its commit ops, and the functions
 * one file calls in another. Dispatcher thread only unless a comment says
 * otherwise. */
#ifndef HOOKD_DISPATCH_INTERNAL_H
#define HOOKD_DISPATCH_INTERNAL_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "commit.h"
#include "dispatch.h"
#include "dispatch_ep.h"
#include "dispatch_http.h"
#include "dispatch_inbox.h"
#include "dispatch_send.h"
#include "dispatch_window.h"
#include "evcache.h"
#include "failure.h"
#include "idtable.h"
#include "ingest.h"
#include "metrics.h"
#include "retry.h"
#include "store.h"

#define POLL_MAX_MS 1000
#define PAGE_RETRY_MS 1000             /* after a failed page */
#define PURGE_FIRST_MS 1000             /* soon after start, then every purge_every() */
#define PURGE_EVERY_MAX_MS (3600 * 1000)
#define STOP_GRACE_MS 1000             /* on top of the request timeout */
#define START_BATCH 64                 /* deliveries prepared together */
#define GONE_REASON "410 Gone from the receiver"

#define CONTAINER_OF(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

struct enqueue_msg {
	struct msg m;
	bool created;            /* new deliveries of an ingest (dispatch_enqueue_events) */
	struct evcache_entry *events; /* their events, for d->events (may be NULL) */
	size_t n;
	struct pending items[];
};

/* dispatch_endpoint_deleted's message. */
struct gone_msg {
	struct msg m;
	char endpoint_id[ID_MAX];
};

/* dispatch_own_gain's and dispatch_own_lose's message. */
struct own_msg {
	struct msg m;
	unsigned epoch;          /* a gain's */
	bool release;
	size_t n;
	char ids[][ID_MAX];
};

struct page_op {
	struct commit_op op;
	struct msg m;
	struct dispatch *d;
	/* A refill of this endpoint's rows (dwin_refill_next); "": the
	 * listing of the endpoints with pending rows (a rescan). */
	char endpoint_id[ID_MAX];
	int64_t after_at;
	char after_id[ID_MAX];
	int limit;
	struct pending *items;
	size_t n;
	char (*ids)[ID_MAX];     /* the listing's */
	size_t n_ids;
	enum store_rc rc;
};

/* dispatch_fetch.c's op: the rows among seqs that are pending now. */
struct fetch_op {
	struct commit_op op;
	struct msg m;
	struct dispatch *d;
	int64_t *seqs;
	size_t n_seqs;
	struct pending *items;
	struct event *events;    /* parallel to items: each one's event, if carried */
	size_t n;
	enum store_rc rc;
	int64_t done_us;         /* mono_us when done() posted it (hops.h) */
};

/* One finished attempt and the delivery's new state. a.error_code and
 * dl.last_error hold their failure code by value (model.h); results_free
 * frees a's other strings and `disabled`. */
struct result {
	struct attempt a;
	struct delivery dl;
	bool notify;             /* newly dead: emit delivery.dead_lettered */
	/* A 410 Gone: disable the endpoint (and emit endpoint.disabled). */
	bool gone;
	struct endpoint *disabled; /* the endpoint as disabled, for the cache */
	char batch_id[ID_MAX];   /* the batch it went in, "" if none */
	/* For the queue figures: the next_attempt_at the delivery was pending
	 * at before this attempt, and whether record_apply found its row gone
	 * (deleted with its endpoint meanwhile: nothing moved). */
	int64_t was_at;
	bool missing;
	/* Its endpoint's circuit or pause changed with this attempt: the new
	 * state, written in the same commit (docs/architecture.md#durable-endpoint-state). */
	bool has_state;
	struct endpoint_state state;
};

struct record_op {
	struct commit_op op;
	struct msg m;
	struct dispatch *d;
	struct result *res;
	size_t n;
	struct ingest_batch notes;
	enum store_rc rc;
	/* (docs/operations.md#faults-and-what-hookd-does) The commit failed on a store fault (a full disk, a failed
	 * write: store_health said so), so the op is kept and written again
	 * after the backoff rather than its deliveries sent again. */
	bool store_fault;
	bool retried;            /* submitted again from d->parked */
	struct record_op *next_parked;
};

/* The dispatcher's side of one sender thread. */
struct send_slot {
	struct dispatch_send *s;
	int load;                /* requests posted to it and not yet back */
	/* Prepared this turn, posted together (one lock, one wakeup). */
	struct dispatch_send_chain ready;
};

/* One request of the dispatcher: the HTTP request (dispatch_http.c's), the
 * job the senders run (dispatch_send.c's while posted) and the dispatcher's
 * own state for it. The request pool makes each inside one (reqs.wrap_size);
 * DISPATCH_REQ_OF_HTTP and DISPATCH_REQ_OF_JOB get it back. Dispatcher
 * thread, except while a sender holds the job. */
struct dispatch_req {
	struct dispatch_http_req http;
	struct dispatch_send_job job;
	/* The endpoint as it was when the attempt was prepared: a reference,
	 * kept while curl may read its custom header lines. */
	struct ep_entry *ep;
	struct dispatch_ep *sched; /* its endpoint's scheduling state, NULL if none */
	struct dbatch *batch;    /* the batch it carries, NULL for a single delivery */
	int64_t ev_created_at;   /* the event's created_at (wall ms; 0 = unknown), for metrics */
	int sender;              /* the sender it was posted to */
};

#define DISPATCH_REQ_OF_HTTP(h) CONTAINER_OF(h, struct dispatch_req, http)
#define DISPATCH_REQ_OF_JOB(j) CONTAINER_OF(j, struct dispatch_req, job)

struct purge_op {
	struct commit_op op;
	struct dispatch *d;
	int64_t before;
	/* Dead letters purged per endpoint, for the queue figures once the
	 * purge has committed (malloc'd). */
	struct purge_count {
		char endpoint_id[ID_MAX];
		int64_t n;
	} *counts;
	size_t n_counts, cap_counts;
};

/* The dispatcher. Three kinds of fields: set by dispatch_start before the
 * thread starts and only read after; shared with other threads, each
 * behind its own lock (the inbox, the per-endpoint table); and, below
 * those, the dispatcher thread's alone. */
struct dispatch {
	/* Set at the start, read-only after. */
	struct dispatch_config cfg;
	struct retry_schedule schedule;
	struct commit *writer;
	struct epcache *cache;
	pthread_t thread;

	/* Shared: the one way in (dispatch_inbox.h says who touches what). */
	struct dispatch_inbox inbox;
	/* Shared: per-endpoint state; its mutex guards what API threads read
	 * (dispatch_ep.h). */
	struct dispatch_eps eps;
	/* Shared: in_flight as other threads may read it (dispatch_in_flight);
	 * written by the dispatcher thread only. */
	atomic_int in_flight_seen;

	/* Dispatcher thread only. */
	struct store *st;        /* its read connection (events) */
	bool stopping;           /* the stop was taken from the inbox */
	bool stopping_now;       /* so was dispatch_stop_now: abandon what is in flight */
	struct dwin win;
	struct evcache events;   /* the new deliveries' events, as ingested */
	/* Endpoints with due deliveries in their ready queue that may be able
	 * to start one: a ring, served round-robin one delivery at a time. */
	struct dispatch_ep **run;
	size_t run_head, run_n, run_cap;
	/* Endpoints waiting for a token (or a pause or probe time). */
	struct dispatch_ep **sleepers;
	size_t n_sleepers, cap_sleepers;
	/* States of deleted endpoints, linked by next_gone, freed once idle
	 * (dispatch_gone.c). */
	struct dispatch_ep *gone;
	size_t ready_total;      /* deliveries in ready queues and waiting batches */
	size_t ready_cap;        /* most held in ready queues (the window) */
	struct dispatch_http_pool reqs;
	struct send_slot *senders;
	int n_senders;
	int per_sender; /* each sender's share of the connection cap (pick_sender) */
	int in_flight;           /* requests posted to senders and not yet back */
	int eps_busy;            /* endpoints with a request out (their in_flight > 0) */
	size_t abandoned;        /* given back unfinished at the stop */
	struct result *results;  /* finished since the last flush */
	size_t n_results, cap_results;
	int64_t next_purge;      /* monotonic */
	int64_t page_retry_at;   /* monotonic; 0 = page when wanted */
	int64_t stop_deadline;   /* monotonic; when stopping, in-flight requests are abandoned */
	/* Store failures (docs/operations.md#faults-and-what-hookd-does): record ops whose commit failed on a
	 * store fault, oldest first, kept to be written again when the
	 * backoff ends; their deliveries stay held meanwhile, and no request
	 * starts while any is kept or being written again, or the backoff
	 * runs (dispatch_store_paused). */
	struct record_op *parked, **parked_tail;
	unsigned store_failures; /* failed rounds in a row; 0 = writing fine */
	int64_t store_retry_at;  /* monotonic ms the backoff ends; 0 = none */
	/* The backoff began or grew while the database server was
	 * unreachable: it ends early once the health says the server is back
	 * (dispatch_store_paused), so delivery resumes within a poll of the
	 * server's return rather than at the backoff's next try. */
	bool store_unreachable;
	int records_retrying;    /* parked ops submitted again, not back yet */
	/* Seqs other nodes made pending, gathered for the next fetch op
	 * (dispatch_fetch.c); fetch_rescan: too many, rescan instead. */
	int64_t *fetch_seqs;
	size_t n_fetch, cap_fetch;
	bool fetch_rescan;
	/* Ownership (dispatch_own.c; cfg.cluster only). owned: the endpoints
	 * this node may schedule (struct own_item by id); releasing: lost ones
	 * whose lease is deleted once idle; own_rescan_at: the next safety
	 * rescan (monotonic). own_deadline is shared: the cluster thread
	 * writes it (dispatch_own_deadline). */
	struct idtable owned;
	char (*releasing)[ID_MAX];
	size_t n_releasing, cap_releasing;
	int64_t own_rescan_at;
	atomic_bool listening;   /* dispatch_listening: the listener's state */
	_Atomic int64_t own_deadline;
	_Atomic unsigned own_epoch; /* published with own_deadline */
	unsigned owned_epoch;    /* the epoch of what is owned */
	atomic_long owned_seen;  /* owned.n as other threads may read it */
};

/* ---- dispatch.c ---- */

/* Submits op to the commit thread, counted until its done() calls
 * dispatch_inbox_put with op_done. */
void dispatch_submit(struct dispatch *d, struct commit_op *op);
/* Queues prepared request x for the least loaded sender and counts it in
 * flight; dispatch_post_all hands the queues over. */
void dispatch_send(struct dispatch *d, struct dispatch_req *x);
/* Posts what dispatch_send queued, one chain per sender. */
void dispatch_post_all(struct dispatch *d);

/* Offers newly pending rows to the window (MSG_ENQUEUE's rule: held →
 * ignored, not covered by the watermark → dropped). */
void dispatch_offer_all(struct dispatch *d, const struct pending *items, size_t n);

/* ---- dispatch_fetch.c: rows other nodes made pending ---- */

/* MSG_FETCH_REQ: gathers its seqs for the next fetch op (frees m). */
void dispatch_fetch_gather(struct dispatch *d, struct msg *m);
/* Submits one fetch op for what was gathered (once per loop turn). */
void dispatch_fetch_submit(struct dispatch *d);
/* MSG_FETCH: the fetch op came back: offers its rows (frees it). */
void dispatch_fetch_done(struct dispatch *d, struct msg *m);

/* ---- dispatch_sched.c: per-endpoint scheduling ---- */

/* Puts e at the back of the run list if it has work and is not there or
 * asleep. */
void dispatch_run_add(struct dispatch *d, struct dispatch_ep *e);

/* Counts one more request out to e (e->in_flight), and e as busy in
 * d->eps_busy when it had none. Dispatcher thread. */
void dispatch_ep_hold(struct dispatch *d, struct dispatch_ep *e);

/* Counts one request of e back; e is no longer busy when it was the last. */
void dispatch_ep_unhold(struct dispatch *d, struct dispatch_ep *e);
/* Moves the window's due deliveries (wall ms now) to their endpoints' ready
 * queues, up to ready_cap in all. */
void dispatch_take_due(struct dispatch *d, int64_t now);
/* Feeds one request outcome of e to its circuit breaker. Returns whether
 * the circuit changed state (opened, closed, opened again). */
bool dispatch_breaker_note(struct dispatch *d, struct dispatch_ep *e, bool success, int64_t now);
/* Starts what may start now from the run list. */
void dispatch_start_due(struct dispatch *d);

/* ---- dispatch_rejoin.c: a failed batch after its members left memory ---- */

/* p (popped from the window's heap, held, its endpoint's entry e) waits for
 * its batch's retry and e is batched: rebuilds that batch from the store
 * (same id, every member still waiting that is not held elsewhere, each
 * then held, p's hold with p) onto e's waiting batches and returns true.
 * False when p goes on alone (not waiting, not batched, the store not
 * answering, out of memory): nothing changed. */
bool dispatch_batch_rejoin(struct dispatch *d, struct dispatch_ep *e, const struct pending *p);

/* Applies a stored endpoint state to its entry (made if missing): an open
 * circuit, a pause still in force. 0, or STORE_ERROR out of memory. */
int dispatch_state_apply(struct dispatch *d, const struct endpoint_state *s);

/* Empties e's ready queue and waiting batches, releasing their holds (the
 * store keeps the rows): its endpoint was deleted, disabled or lost to
 * another node. reason goes in the debug log. */
void dispatch_ep_drop(struct dispatch *d, struct dispatch_ep *e, const char *reason);

/* ---- dispatch_own.c: endpoint ownership (several nodes) ---- */

/* Returns 0 or -1 (out of memory). dispatch_own_free frees it. */
int dispatch_own_init(struct dispatch *d);
void dispatch_own_free(struct dispatch *d);
/* Whether this node may schedule endpoint_id's deliveries now: always
 * without a cluster; else if it is in the owned set. */
bool dispatch_owns(const struct dispatch *d, const char *endpoint_id);
/* MSG_OWN_GAIN / MSG_OWN_LOSE (frees m). */
void dispatch_own_handle(struct dispatch *d, struct own_msg *m);
/* Once a loop turn, before anything starts: past the deadline
 * (dispatch_own_deadline) drops everything owned, as a lose without
 * release; so a node that was frozen or cut off sends nothing it no longer
 * owns when it runs again. */
void dispatch_own_check(struct dispatch *d);
/* Once a loop turn, after the results were flushed: submits the releases
 * of idle lost endpoints and asks for the periodic rescan. */
void dispatch_own_turn(struct dispatch *d);
/* The next monotonic ms dispatch_own_turn has something to do (INT64_MAX:
 * nothing), for the loop's wait. */
int64_t dispatch_own_next(const struct dispatch *d);

/* ---- dispatch_gone.c: freeing the state of deleted endpoints ---- */

/* e's endpoint is gone (deleted): puts e on the gone list (once) and takes
 * it off the sleepers, so its queued work is dropped on the next pick
 * rather than at its wake time. */
void dispatch_ep_gone(struct dispatch *d, struct dispatch_ep *e);
/* Frees every state on the gone list that is idle (dispatch_ep_idle). */
void dispatch_reap_gone(struct dispatch *d);

/* ---- dispatch_record.c: finished requests and their commit ops ---- */

/* An idle request from the pool (its HTTP request marked busy, its job
 * pointing at it, the dispatcher's fields cleared); NULL if out of
 * memory. */
struct dispatch_req *dispatch_req_get(struct dispatch *d);
/* Returns x to the pool with its endpoint reference released. */
void dispatch_req_put(struct dispatch *d, struct dispatch_req *x);
/* Frees a batch (its members' holds are the caller's business). */
void dispatch_batch_free(struct dbatch *b);
/* Ends request x with the outcome kind/status/detail: records the
 * attempt(s), schedules retries or dead letters, and returns x to the pool. */
void dispatch_finish(struct dispatch *d, struct dispatch_req *x, enum failure_kind kind,
		     long status, const char *detail);
/* Takes back request x from its sender (its fate says how it ended):
 * finishes it, or, abandoned at the stop, drops it with its deliveries left
 * pending. */
void dispatch_sent(struct dispatch *d, struct dispatch_req *x);
/* Frees a record op and what it owns. */
void dispatch_record_free(struct record_op *r);
/* Submits the results gathered since the last flush as one record op. */
void dispatch_flush_results(struct dispatch *d);
/* (docs/operations.md#faults-and-what-hookd-does) True while deliveries are paused because attempt outcomes
 * could not be written: outcomes are kept, being written again, or the
 * backoff (retry_store_backoff_ms) has not ended at monotonic ms mono. */
bool dispatch_store_paused(const struct dispatch *d, int64_t mono);
/* The dispatcher's own read of the store found the database server
 * unreachable (the health told): starts or lengthens the pause as a failed
 * record does, so no request starts until the backoff ends. */
void dispatch_store_unreachable(struct dispatch *d);
/* A record op came back from the commit thread: counts it in the backoff
 * (a failure starts or lengthens a pause, a success after failures ends
 * it). Returns true if the op was kept to be written again (the caller
 * leaves it alone), false if the caller handles it as before. */
bool dispatch_record_back(struct dispatch *d, struct record_op *r);
/* Submits the kept record ops again, in their order, once the backoff has
 * ended (or at once if force: the stop's last try). */
void dispatch_retry_records(struct dispatch *d, bool force);
/* Frees the kept record ops, releasing their deliveries' holds: they stay
 * pending in the store and go out again on the next start (at the stop). */
void dispatch_drop_parked(struct dispatch *d);

#endif
