/* dispatch_ep: the dispatcher's per-endpoint scheduling state (private to
 * dispatch*.c). Each endpoint with work in memory has a ready queue of due
 * deliveries that could not start yet (its in-flight cap, its token bucket,
 * a Retry-After pause or an open circuit), its count of requests in flight,
 * its bucket, breaker and pause. The dispatcher thread owns everything but
 * the fields marked "under mu", which API threads read through
 * dispatch_endpoint_status. A deleted endpoint's entry is freed once idle
 * (dispatch_gone.c). */
#ifndef HOOKD_DISPATCH_EP_H
#define HOOKD_DISPATCH_EP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "breaker.h"
#include "dispatch.h"
#include "idtable.h"
#include "ratelimit.h"
#include "metrics.h"
#include "pending.h"

#define DISPATCH_EP_DEFAULT_MAX_IN_FLIGHT 10

/* A batch (docs/api.md#batches): due deliveries of one endpoint sent as one request and
 * retried as a unit under the same id. Its members stay held in the window
 * while it waits for a retry (on its endpoint's retry list). */
struct dbatch {
	char id[ID_MAX];         /* bat_… */
	struct pending *m;       /* members, in the order of the body */
	size_t n;
	unsigned char *quiet;    /* per member: dead, it emits no delivery.dead_lettered */
	int64_t *created_at;     /* per member: its event's created_at (wall ms; 0 = unknown) */
	int64_t due_at;          /* wall ms of its retry */
	struct dbatch *next;
};

struct dispatch_ep {
	char id[ID_MAX];
	/* Ready queue: a ring of due deliveries, each held in the window. */
	struct pending *q;
	size_t q_head, q_n, q_cap;
	/* Requests started and not yet finished; written by the dispatcher
	 * thread, atomic so dispatch_endpoint_status may read it. */
	_Atomic int in_flight;
	struct bucket bucket;    /* monotonic ms */
	bool in_run;             /* on the run list */
	bool sleeping;           /* on the sleep list until wake_at */
	int64_t wake_at;         /* monotonic ms */
	bool disabling;          /* a 410 is being recorded: send nothing */
	struct dbatch *retry;    /* failed batches waiting for their retry */
	int batch_max;           /* the endpoint's batch max_events when last seen */
	struct metrics_ep *mep;  /* its metrics series, memoized (metrics_ep_resolve) */
	uint32_t mgen;
	/* Its endpoint was deleted: on the dispatcher's gone list
	 * (dispatch_gone.c), freed once dispatch_ep_idle. */
	bool gone;
	struct dispatch_ep *next_gone;
	/* Under mu (written by the dispatcher thread, read by any). */
	struct breaker br;
	int64_t paused_until;    /* wall ms; 0 = not paused */
};

struct dispatch_eps {
	pthread_mutex_t mu;      /* guards the table's shape and the "under mu" fields */
	struct idtable table;    /* struct dispatch_ep by id */
	int breaker_threshold;   /* for new entries */
	int64_t breaker_cooldown_ms;
	/* The senders' sockets to receivers open now (counted by the senders,
	 * dispatch_send_count_connections; read by dispatch_connections_open):
	 * here beside the other figures API threads read of the dispatcher. */
	atomic_int conns_open;
};

/* Returns 0 or -1 (out of memory). */
int dispatch_eps_init(struct dispatch_eps *t, int breaker_threshold, int64_t cooldown_ms);
/* Frees every entry (their queues included; holds are not released). */
void dispatch_eps_free(struct dispatch_eps *t);
/* The entry for id, or NULL. Dispatcher thread (or under mu). */
struct dispatch_ep *dispatch_eps_find(struct dispatch_eps *t, const char *id);
/* The entry for id, made (empty, closed, unpaused) if missing; NULL if out
 * of memory. Dispatcher thread only. */
struct dispatch_ep *dispatch_eps_get(struct dispatch_eps *t, const char *id);

/* Unlinks e from t and frees it (its ready queue array included). e must be
 * idle (dispatch_ep_idle). Dispatcher thread only. */
void dispatch_eps_remove(struct dispatch_eps *t, struct dispatch_ep *e);
/* How many entries t holds (any thread). */
size_t dispatch_eps_count(struct dispatch_eps *t);
/* Whether nothing but the table points at e: no request in flight (each
 * carries e as its sched, batches included), nothing in its ready queue, no
 * batch waiting for a retry, not on the run list nor the sleepers. */
bool dispatch_ep_idle(const struct dispatch_ep *e);

/* Ready queue. push returns 0 or -1 (out of memory, nothing changed). */
int dispatch_ep_push(struct dispatch_ep *e, const struct pending *p);
/* Removes the oldest into *out; false when empty. */
bool dispatch_ep_pop(struct dispatch_ep *e, struct pending *out);

/* The dispatcher's table (defined in dispatch.c). */
struct dispatch_eps *dispatch_eps_of(struct dispatch *d);

#endif
