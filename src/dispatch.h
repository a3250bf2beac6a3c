/* dispatch: the delivery loop (docs/architecture.md#delivery). One thread
 * decides, --senders threads run the HTTP transfers. It holds a bounded
 * window of pending deliveries in a min-heap by (next_attempt_at, id) and
 * pages the rest in from the store in that order, so a backlog costs disk,
 * not RAM. New deliveries arrive by dispatch_enqueue
 * after their commit; attempt results go back to the store in batches through
 * the commit thread. No timer scans the database. */
#ifndef HOOKD_DISPATCH_H
#define HOOKD_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "commit.h"
#include "epcache.h"
#include "store.h"

/* Where deliveries may go and how they get there (see netguard.h and
 * docs/security.md#destinations-tls-and-the-address-guard). Strings are NULL
 * when not set and must outlive the dispatcher. */
struct dispatch_net_config {
	bool allow_private_networks;  /* the address guard lets every address through */
	const char *allow_cidr;       /* CIDR,... exceptions to the guard */
	const char *ca_file;          /* PEM CAs trusted beside the system store */
	const char *source_address;   /* local IP outbound connections bind to */
	const char *resolve;          /* HOST:PORT:ADDR,... pinned resolutions */
	size_t max_response_bytes;    /* response body bytes read per attempt */
};

struct dispatch_config {
	const int64_t *schedule_ms;   /* retry schedule (see retry.h) */
	size_t schedule_len;
	int64_t timeout_ms;           /* connect + total per attempt */
	int max_in_flight;            /* global cap on concurrent requests */
	int max_connections;          /* delivery connections open at once (raised to max_in_flight) */
	int senders;                  /* threads that run the HTTP transfers (>= 1) */
	size_t window;                /* pending deliveries held in memory */
	int64_t dlq_retention_ms;     /* dead letters older than this are purged */
	bool allow_http;              /* http:// URLs may be dialled (else refused) */
	const char *db_url;           /* for the dispatcher's own read connection */
	int64_t max_retry_after_ms;   /* longest Retry-After pause; 0 = 1 h */
	int breaker_failures;         /* consecutive failures that open a circuit; 0 = never */
	int64_t breaker_cooldown_ms;  /* first open period; 0 = BREAKER_COOLDOWN_MIN_MS */
	struct dispatch_net_config net;
	/* The queue figures to keep current (attempt results, notices, the
	 * purge); NULL = none. Must outlive the dispatcher. */
	struct queue_depth *queue;
	struct metrics *metrics;      /* fed with attempts and deliveries; NULL = off */
	/* Where the dispatcher reports what it sees of the store (failed
	 * reads and writes); NULL = nowhere. Must outlive the dispatcher. */
	struct store_health *health;
	/* Several nodes (docs/architecture.md#several-nodes): true when a
	 * cluster thread shares the endpoints out (PostgreSQL); the dispatcher
	 * then delivers only the endpoints it was given (dispatch_own_gain).
	 * false: it owns every endpoint. node_id (must outlive the dispatcher)
	 * names this node in the lease releases. */
	bool cluster;
	const char *node_id;
};

struct dispatch;
struct metrics;
struct queue_depth;
struct store_health;

/* Starts the dispatcher thread. cfg is copied; writer and cache must outlive
 * it. Returns 0 and *out, or -1 with a reason in err. */
int dispatch_start(const struct dispatch_config *cfg, struct commit *writer, struct epcache *cache,
		   struct dispatch **out, char *err, size_t errlen);
/* Hands newly committed pending deliveries to the dispatcher (thread-safe;
 * copies the items). Call it from the committing op's done(), on the commit
 * thread: the dispatcher's paging relies on hearing about commits in commit
 * order. Not after dispatch_stop has begun. */
void dispatch_enqueue(struct dispatch *d, const struct pending *items, size_t n);
/* The same, with the events of those deliveries as evcache entries (a
 * list linked by next; taken, freed whatever happens), so the dispatcher
 * need not read them back from the store. */
struct evcache_entry;
void dispatch_enqueue_events(struct dispatch *d, const struct pending *items, size_t n,
			     struct evcache_entry *events);
/* Endpoint ownership (cluster.h; only with cfg.cluster). The cluster
 * thread calls these. gain: the node now holds the leases of ids[0..n):
 * the dispatcher loads their endpoint_state rows, owns them and pages
 * their pending rows in. lose: it must stop scheduling them at once (their
 * ready queues, heap entries and waiting batches are dropped; requests in
 * flight finish and are recorded); with release, once each is idle and its
 * results are committed, the dispatcher deletes its lease (a commit op, so
 * after those results). deadline: the monotonic ms until which the node
 * may schedule what it owns; past it the dispatcher drops everything, as a
 * lose without release. epoch: the cluster starts a new one whenever its
 * deadline passed before a renew succeeded; what was owned in an older
 * epoch is dropped at once, and a gain of an older epoch is ignored (the
 * deadline and the epoch are published together, epoch first). ids are
 * copied; n == 0 does nothing. */
void dispatch_own_gain(struct dispatch *d, unsigned epoch, const char (*ids)[ID_MAX], size_t n);
void dispatch_own_lose(struct dispatch *d, const char (*ids)[ID_MAX], size_t n, bool release);
void dispatch_own_deadline(struct dispatch *d, unsigned epoch, int64_t mono_ms);
/* How many endpoints this node owns now, or -1 without a cluster (it owns
 * every endpoint). Any thread. */
long dispatch_owned_count(struct dispatch *d);

/* Pending rows may exist below the dispatcher's paging watermark (an endpoint
 * was enabled, a bulk DLQ retry): page the store again from the start. Call
 * it after the change committed (e.g. from done()). */
void dispatch_rescan(struct dispatch *d);
/* Another node made the deliveries with these seqs pending (listen.c heard
 * it; thread-safe, copies seqs): the dispatcher reads those still pending
 * in one fetch op on the commit thread, ordered with its own ops as a page
 * is, and offers them as dispatch_enqueue's. Too many (or out of memory):
 * a rescan. d may be NULL. */
void dispatch_fetch(struct dispatch *d, const int64_t *seqs, size_t n);
/* The listener (listen.c) has its connection (true: every other node's new
 * rows are announced to this node) or lost it. While it listens, the
 * safety rescan of what this node owns runs every OWN_RESCAN_LISTENING_MS
 * instead of every OWN_RESCAN_MS (dispatch_own.c). Thread-safe; d may be
 * NULL. */
void dispatch_listening(struct dispatch *d, bool listening);
/* An endpoint's delivery state as the dispatcher holds it (in memory: a
 * restart starts closed and unpaused), for the Endpoint representation. */
struct dispatch_endpoint_status {
	const char *circuit;     /* "closed", "open" or "half_open" (static string) */
	int64_t next_probe_at;   /* when open: ms of the next probe; 0 = none */
	int64_t paused_until;    /* Retry-After pause: ms it ends; 0 = not paused */
	int in_flight;           /* its requests out now */
};

/* Fills *out for endpoint_id (thread-safe; any thread). An endpoint the
 * dispatcher knows nothing of is closed, with no probe and no pause. d may be
 * NULL (no dispatcher): the same. */
void dispatch_endpoint_status(struct dispatch *d, const char *endpoint_id,
			      struct dispatch_endpoint_status *out);

/* Whether endpoint_id cannot send now: disabled (or unknown), paused by a
 * receiver's Retry-After, or its circuit open. arg is the struct dispatch;
 * the shape is queue_depth_blocked_fn's (the queue figures' "waiting").
 * Any thread. */
bool dispatch_endpoint_blocked(const char *endpoint_id, void *arg);

/* Counts the endpoints the dispatcher knows whose circuit is open, half
 * open, or that are paused now (thread-safe; any thread; d may be NULL). */
void dispatch_circuit_counts(struct dispatch *d, size_t *open, size_t *half_open,
			     size_t *paused);

/* endpoint_id was deleted (call it after the delete committed, from its
 * done(); thread-safe; not after dispatch_stop began; d may be NULL): the
 * dispatcher frees its state for the endpoint once nothing of it is in
 * flight or waiting (docs/architecture.md). */
void dispatch_endpoint_deleted(struct dispatch *d, const char *endpoint_id);
/* How many endpoints the dispatcher holds state for (thread-safe; d may be
 * NULL: 0): those it has seen work for, less the deleted ones freed. */
size_t dispatch_endpoint_states(struct dispatch *d);

/* Finishes the requests in flight (bounded by the timeout), records them,
 * stops the thread and frees d: dispatch_halt, then dispatch_destroy. */
void dispatch_stop(struct dispatch *d);

/* The stop in two steps, so another thread may cut it short
 * (docs/operations.md#stopping). dispatch_halt: waits for the requests in
 * flight (at most dispatch_stop_wait_ms, or until dispatch_stop_now), has
 * the senders abandon the rest (they stay pending: sent again at the next
 * start), records what finished and joins the thread; d stays allocated.
 * dispatch_destroy frees it (after dispatch_halt; d may be NULL). */
void dispatch_halt(struct dispatch *d);
void dispatch_destroy(struct dispatch *d);
/* Makes a running or starting dispatch_halt stop waiting for the requests in
 * flight. Any thread, until dispatch_destroy; d may be NULL. */
void dispatch_stop_now(struct dispatch *d);
/* Delivery requests out now (any thread; a snapshot; d may be NULL: 0). */
int dispatch_in_flight(struct dispatch *d);
/* Delivery connections open now, connecting, in use or idle (any thread;
 * a snapshot; d may be NULL: 0). */
int dispatch_connections_open(struct dispatch *d);
/* The longest dispatch_halt waits for them: --timeout plus a grace. */
int64_t dispatch_stop_wait_ms(const struct dispatch *d);
/* How many requests dispatch_halt abandoned (after it returned). */
size_t dispatch_abandoned(const struct dispatch *d);

#endif
