/* dispatch_own: the dispatcher's side of endpoint ownership among several
 * nodes (docs/architecture.md#several-nodes; the cluster thread, cluster.c,
 * decides, this applies). Dispatcher thread only, but dispatch_own_gain,
 * dispatch_own_lose and dispatch_own_deadline, which the cluster thread
 * calls (a message in the inbox, an atomic).
 *
 * Without a cluster (SQLite) the owned set is not kept and the dispatcher
 * owns every endpoint. With one it owns only what it was given: rows of
 * other endpoints are dropped where they would enter scheduling (offers,
 * picks), like a disabled endpoint's; the store keeps them for their
 * owner. */
#include <stdlib.h>
#include <string.h>

#include "dispatch_clock.h"
#include "log.h"
#include "util.h"
#include "dispatch_internal.h"

/* A node learns of deliveries another node committed for its endpoints
 * by their notification (listen.c, dispatch_fetch.c) or by paging: while
 * it does not listen it pages everything again this often (bounded latency
 * for events ingested on another node). */
#define OWN_RESCAN_MS 5000
/* While it listens, every new row is announced (a listener that connects
 * again reloads and rescans, since what was sent meanwhile is lost): the
 * rescan is only a safety net. Each one reads the pending rows of every
 * endpoint up to the window again, which with three nodes and a backlog
 * was a sixth of the database's work per delivery (bench/pgcost.py). */
#define OWN_RESCAN_LISTENING_MS 60000

/* One owned endpoint in d->owned. */
struct own_item {
	char id[ID_MAX];
};

struct release_op {
	struct commit_op op;
	struct dispatch *d;
	char endpoint_id[ID_MAX];
};

int dispatch_own_init(struct dispatch *d)
{
	atomic_store(&d->own_deadline, 0);
	d->own_rescan_at = mono_ms() + OWN_RESCAN_MS;
	return idtable_init(&d->owned, offsetof(struct own_item, id), 0, 16);
}

/* Takes every item out of the owned set and frees it. */
static void owned_clear(struct dispatch *d)
{
	size_t pos = 0;
	struct own_item *it;
	while ((it = idtable_next(&d->owned, &pos)) != NULL)
		free(it);
	idtable_clear(&d->owned);
}

void dispatch_own_free(struct dispatch *d)
{
	owned_clear(d);
	idtable_free(&d->owned);
	free(d->releasing);
}

bool dispatch_owns(const struct dispatch *d, const char *endpoint_id)
{
	return !d->cfg.cluster || idtable_find(&d->owned, endpoint_id) != NULL;
}

/* ---- gain ---- */

struct gain_ctx {
	struct dispatch *d;
	const struct own_msg *m;
};

static bool msg_has(const struct own_msg *m, const char *id)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->ids[i], id) == 0)
			return true;
	return false;
}

/* store_endpoint_state_each's fn: the gained endpoints' stored states. */
static int gain_state(const struct endpoint_state *s, void *arg)
{
	struct gain_ctx *g = arg;
	if (!msg_has(g->m, s->endpoint_id))
		return 0;
	return dispatch_state_apply(g->d, s);
}

/* Forgets what this node remembers of e's circuit and pause from an earlier
 * ownership: the stored state, read next, is the one in force. */
static void state_reset(struct dispatch *d, struct dispatch_ep *e)
{
	pthread_mutex_lock(&d->eps.mu);
	breaker_init(&e->br, d->eps.breaker_threshold);
	e->br.cooldown_ms = d->eps.breaker_cooldown_ms;
	e->paused_until = 0;
	pthread_mutex_unlock(&d->eps.mu);
}

/* Adds id to the owned set (no-op if there). -1 out of memory. */
static int owned_add(struct dispatch *d, const char *id)
{
	if (idtable_find(&d->owned, id) != NULL)
		return 0;
	struct own_item *it = calloc(1, sizeof *it);
	void *old = NULL;
	if (it == NULL)
		return -1;
	snprintf(it->id, sizeof it->id, "%s", id);
	if (idtable_put(&d->owned, it, &old) != 0) {
		free(it);
		return -1;
	}
	return 0;
}

/* MSG_OWN_GAIN: the previous owner's state (its last results committed
 * before it released, or its lease ran out), then the rows. */
static void own_gain(struct dispatch *d, const struct own_msg *m)
{
	if (m->epoch != atomic_load(&d->own_epoch))
		return; /* the cluster gains them again in its new epoch */
	dispatch_own_check(d);
	d->owned_epoch = m->epoch;
	for (size_t i = 0; i < m->n; i++) {
		struct dispatch_ep *e = dispatch_eps_find(&d->eps, m->ids[i]);
		if (e != NULL)
			state_reset(d, e);
	}
	struct gain_ctx g = {d, m};
	if (store_endpoint_state_each(d->st, gain_state, &g) != STORE_OK)
		log_warn("dispatch: cannot read the gained endpoints' delivery state; their "
			 "circuits start closed count=%zu", m->n);
	for (size_t i = 0; i < m->n; i++)
		if (owned_add(d, m->ids[i]) != 0)
			log_error("dispatch: out of memory owning endpoint=%s", m->ids[i]);
	dwin_rescan(&d->win);
	atomic_store(&d->owned_seen, (long)d->owned.n);
	log_info("endpoints gained count=%zu node=%s", m->n, d->cfg.node_id);
}

/* ---- lose and release ---- */

static bool not_owned(const struct pending *p, void *arg)
{
	return !dispatch_owns(arg, p->endpoint_id);
}

/* Takes e off the sleepers (its work is dropped, nothing to wake for). */
static void unsleep(struct dispatch *d, struct dispatch_ep *e)
{
	for (size_t i = 0; e->sleeping && i < d->n_sleepers; i++) {
		if (d->sleepers[i] == e) {
			d->sleepers[i] = d->sleepers[--d->n_sleepers];
			e->sleeping = false;
		}
	}
}

static void releasing_add(struct dispatch *d, const char *id)
{
	char(*r)[ID_MAX] = array_grow(d->releasing, &d->cap_releasing, d->n_releasing + 1,
				       sizeof *r, 8);
	if (r == NULL) {
		/* The lease runs out instead. */
		log_error("dispatch: out of memory releasing endpoint=%s", id);
		return;
	}
	d->releasing = r;
	snprintf(d->releasing[d->n_releasing++], ID_MAX, "%s", id);
}

/* Drops ids[0..n) from the owned set and their queued work at once. */
static void lose(struct dispatch *d, const char (*ids)[ID_MAX], size_t n, bool release)
{
	for (size_t i = 0; i < n; i++) {
		free(idtable_remove(&d->owned, ids[i]));
		struct dispatch_ep *e = dispatch_eps_find(&d->eps, ids[i]);
		if (e != NULL) {
			dispatch_ep_drop(d, e, "endpoint_not_owned");
			unsleep(d, e);
		}
		if (release)
			releasing_add(d, ids[i]);
	}
	size_t dropped = dwin_drop_if(&d->win, not_owned, d);
	atomic_store(&d->owned_seen, (long)d->owned.n);
	log_info("endpoints lost count=%zu release=%s dropped=%zu node=%s", n,
		 release ? "true" : "false", dropped, d->cfg.node_id);
}

void dispatch_own_handle(struct dispatch *d, struct own_msg *m)
{
	if (!d->stopping) {
		if (m->m.kind == MSG_OWN_GAIN)
			own_gain(d, m);
		else
			lose(d, (const char(*)[ID_MAX])m->ids, m->n, m->release);
	}
	free(m);
}

static int release_apply(struct store *st, struct commit_op *op)
{
	struct release_op *r = CONTAINER_OF(op, struct release_op, op);
	return store_lease_release(st, r->d->cfg.node_id, r->endpoint_id);
}

static void release_done(struct commit_op *op, int rc)
{
	struct release_op *r = CONTAINER_OF(op, struct release_op, op);
	struct dispatch *d = r->d;
	if (rc != STORE_OK)
		log_warn("dispatch: releasing endpoint=%s failed rc=%d; its lease runs out instead",
			 r->endpoint_id, rc);
	free(r);
	dispatch_inbox_put(&d->inbox, NULL, true);
}

/* Submits the release of every lost endpoint that is idle: no request out,
 * nothing queued, its results flushed (the commit queue is FIFO, so the
 * release commits after them). Not while outcomes wait to be written again:
 * they would commit after it. */
static void release_idle(struct dispatch *d)
{
	if (d->n_releasing == 0 || dispatch_store_paused(d, mono_ms()))
		return;
	size_t kept = 0;
	for (size_t i = 0; i < d->n_releasing; i++) {
		const char *id = d->releasing[i];
		struct dispatch_ep *e = dispatch_eps_find(&d->eps, id);
		struct release_op *r = NULL;
		if (dispatch_owns(d, id))
			continue; /* owned again: keep the lease */
		if ((e != NULL && !dispatch_ep_idle(e)) || (r = calloc(1, sizeof *r)) == NULL) {
			memmove(d->releasing[kept++], id, ID_MAX);
			continue;
		}
		r->d = d;
		snprintf(r->endpoint_id, sizeof r->endpoint_id, "%s", id);
		r->op.apply = release_apply;
		r->op.done = release_done;
		dispatch_submit(d, &r->op);
	}
	d->n_releasing = kept;
}

void dispatch_own_check(struct dispatch *d)
{
	if (!d->cfg.cluster || d->owned.n == 0)
		return;
	/* The deadline first, then the epoch: the cluster writes them the other
	 * way round, so a new deadline is never seen with an old epoch. */
	int64_t deadline = atomic_load(&d->own_deadline);
	if (mono_ms() >= deadline || atomic_load(&d->own_epoch) != d->owned_epoch) {
		log_warn("dispatch: the leases could not be renewed in time; delivery of this "
			 "node's endpoints stops count=%zu node=%s", d->owned.n, d->cfg.node_id);
		owned_clear(d);
		lose(d, NULL, 0, false);
		/* The table's shape changes on this thread only. */
		struct dispatch_ep *e;
		size_t pos = 0;
		while ((e = idtable_next(&d->eps.table, &pos)) != NULL) {
			dispatch_ep_drop(d, e, "endpoint_not_owned");
			unsleep(d, e);
		}
	}
}

void dispatch_own_turn(struct dispatch *d)
{
	if (!d->cfg.cluster)
		return;
	int64_t mono = mono_ms();
	release_idle(d);
	if (!atomic_load(&d->listening) && d->own_rescan_at > mono + OWN_RESCAN_MS)
		d->own_rescan_at = mono + OWN_RESCAN_MS; /* it stopped listening */
	if (mono >= d->own_rescan_at) {
		d->own_rescan_at = mono + (atomic_load(&d->listening) ? OWN_RESCAN_LISTENING_MS
								      : OWN_RESCAN_MS);
		if (d->owned.n > 0)
			dwin_rescan(&d->win);
	}
}

int64_t dispatch_own_next(const struct dispatch *d)
{
	if (!d->cfg.cluster)
		return INT64_MAX;
	int64_t next = d->own_rescan_at;
	int64_t deadline = atomic_load(&d->own_deadline);
	if (d->owned.n > 0 && deadline < next)
		next = deadline;
	return next;
}

/* ---- the cluster thread's calls ---- */

static void post(struct dispatch *d, enum msg_kind kind, unsigned epoch, const char (*ids)[ID_MAX],
		 size_t n, bool release)
{
	if (d == NULL || n == 0)
		return;
	struct own_msg *m = malloc(sizeof *m + n * sizeof m->ids[0]);
	if (m == NULL) {
		/* A gain not told leaves its lease held and unused until the
		 * node loses it (a lose not told: the lease's end stops it). */
		log_error("dispatch: out of memory telling the dispatcher of %zu endpoints", n);
		return;
	}
	m->m.kind = kind;
	m->epoch = epoch;
	m->release = release;
	m->n = n;
	memcpy(m->ids, ids, n * sizeof m->ids[0]);
	dispatch_inbox_put(&d->inbox, &m->m, false);
}

void dispatch_own_gain(struct dispatch *d, unsigned epoch, const char (*ids)[ID_MAX], size_t n)
{
	post(d, MSG_OWN_GAIN, epoch, ids, n, false);
}

void dispatch_own_lose(struct dispatch *d, const char (*ids)[ID_MAX], size_t n, bool release)
{
	post(d, MSG_OWN_LOSE, 0, ids, n, release);
}

void dispatch_own_deadline(struct dispatch *d, unsigned epoch, int64_t mono)
{
	if (d == NULL)
		return;
	atomic_store(&d->own_epoch, epoch);
	atomic_store(&d->own_deadline, mono);
}

void dispatch_listening(struct dispatch *d, bool listening)
{
	if (d != NULL)
		atomic_store(&d->listening, listening);
}

long dispatch_owned_count(struct dispatch *d)
{
	if (d == NULL || !d->cfg.cluster)
		return -1;
	return atomic_load(&d->owned_seen);
}
