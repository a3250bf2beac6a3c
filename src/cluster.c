/* cluster: the hookd-cluster thread (see cluster.h). Its state is its own
 * (the thread's alone) but for the stop flags under mu. What it tells the
 * dispatcher goes through dispatch_own_gain / dispatch_own_lose (the
 * dispatcher's inbox) and dispatch_own_deadline (an atomic). */
#include "cluster.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dispatch.h"
#include "epcache.h"
#include "log.h"
#include "store.h"

/* An endpoint this node holds a lease on, as the last renew returned it,
 * and whether the dispatcher was asked to release it. */
struct held {
	char id[ID_MAX];
	bool releasing;
};

/* The leases held, sorted by id (strcmp) for bsearch: a tick looks up
 * every endpoint of the cache. */
struct owned {
	struct held *h;
	size_t n;
};

struct cluster {
	struct cluster_config cfg;
	struct store *st;
	struct dispatch *d;
	pthread_t thread;
	bool started;

	pthread_mutex_t mu;
	pthread_cond_t cv;      /* a stop was asked */
	bool stop, quiet;       /* under mu */

	/* The thread's alone. */
	struct owned own;       /* what the dispatcher owns or is releasing */
	int64_t deadline;       /* monotonic ms; the dispatcher's too */
	unsigned epoch;         /* a new one each time the deadline passed (dispatch.h) */
	unsigned failures;      /* failed ticks in a row */
	size_t n_endpoints;     /* the cache's size at the last plan */
};

/* How often a wait between ticks looks at the endpoint cache: an endpoint
 * created (or deleted) on this node is claimed within this, not a tick. */
#define CLUSTER_WATCH_MS 50

/* A tick's reads: the live nodes and this node's renewed leases. */
struct tick {
	char (*live)[ID_MAX];
	size_t n_live;
	char (*held)[ID_MAX];
	size_t n_held;
};

static void tick_free(struct tick *t)
{
	free(t->live);
	free(t->held);
	memset(t, 0, sizeof *t);
}

static int id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Whether sorted ids[0..n) holds id. */
static bool ids_have(const char (*ids)[ID_MAX], size_t n, const char *id)
{
	return n > 0 && bsearch(id, ids, n, sizeof *ids, id_cmp) != NULL;
}

/* id's entry in o, or NULL. */
static struct held *owned_find(const struct owned *o, const char *id)
{
	return o->n > 0 ? bsearch(id, o->h, o->n, sizeof *o->h, id_cmp) : NULL;
}

static bool owned_releasing(const struct owned *o, const char *id)
{
	const struct held *h = owned_find(o, id);
	return h != NULL && h->releasing;
}

static void owned_free(struct owned *o)
{
	free(o->h);
	memset(o, 0, sizeof *o);
}

/* A growable list of ids for one tick. */
struct idlist {
	char (*ids)[ID_MAX];
	size_t n, cap;
};

static int idlist_add(struct idlist *l, const char *id)
{
	char(*ids)[ID_MAX] = array_grow(l->ids, &l->cap, l->n + 1, sizeof *ids, 16);
	if (ids == NULL)
		return -1;
	l->ids = ids;
	snprintf(l->ids[l->n++], ID_MAX, "%s", id);
	return 0;
}

/* Heartbeat, live nodes, renew: the tick's reads. STORE_OK or the
 * failure (logged by the store). */
static int tick_read(struct cluster *c, struct tick *t)
{
	int rc = store_node_heartbeat(c->st, c->cfg.node_id);
	if (rc == STORE_OK)
		rc = store_nodes_live(c->st, c->cfg.lease_ms, &t->live, &t->n_live);
	if (rc == STORE_OK)
		rc = store_lease_renew(c->st, c->cfg.node_id, c->cfg.lease_ms, &t->held,
				       &t->n_held);
	if (rc == STORE_OK && t->n_held > 1)
		qsort(t->held, t->n_held, sizeof *t->held, id_cmp);
	return rc;
}

/* Whether this node should own id among the live nodes (itself counted
 * live: its heartbeat just succeeded). */
static bool mine(const struct tick *t, const char *me, const char *id)
{
	if (t->n_live == 0)
		return true;
	return strcmp(t->live[cluster_owner((const char(*)[ID_MAX])t->live, t->n_live, id)],
		      me) == 0;
}

/* Sorts the endpoints of the cache: those this node should own and holds
 * no lease on go to claim, held ones another node should own (or that no
 * longer exist) to release, unless already being released. */
static int plan(struct cluster *c, const struct tick *t, struct idlist *claim,
		struct idlist *release)
{
	size_t n = 0;
	struct ep_entry **all = epcache_all(c->cfg.cache, &n);
	c->n_endpoints = n;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		const char *id = all[i]->id;
		bool held = ids_have((const char(*)[ID_MAX])t->held, t->n_held, id);
		bool want = mine(t, c->cfg.node_id, id);
		if (rc == 0 && want && !held)
			rc = idlist_add(claim, id);
		else if (rc == 0 && !want && held && !owned_releasing(&c->own, id))
			rc = idlist_add(release, id);
		ep_entry_release(all[i]);
	}
	free(all);
	for (size_t i = 0; rc == 0 && i < t->n_held; i++) {
		struct ep_entry *e = epcache_get(c->cfg.cache, t->held[i]);
		if (e == NULL && !owned_releasing(&c->own, t->held[i]))
			rc = idlist_add(release, t->held[i]); /* the endpoint was deleted */
		ep_entry_release(e);
	}
	return rc;
}

/* Tells the dispatcher what changed and keeps the new picture: the leases
 * held now (renewed, plus those just claimed), the ones gone since the
 * last tick (lost: another node took them after they ran out, or released),
 * the new ones (gained), and the ones to release. fresh: the dispatcher
 * owns nothing now (start, or its deadline passed). */
static int apply(struct cluster *c, const struct tick *t, const char (*got)[ID_MAX], size_t n_got,
		 const struct idlist *release, bool fresh)
{
	struct owned now = {0};
	struct idlist lost = {0}, gained = {0};
	size_t n = t->n_held + n_got;
	int rc = 0;
	now.h = n > 0 ? calloc(n, sizeof *now.h) : NULL;
	if (n > 0 && now.h == NULL)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const char *id = i < t->n_held ? t->held[i] : got[i - t->n_held];
		/* A lease just claimed is new whatever the last tick said: this
		 * node had none (its release committed), so the dispatcher owns
		 * it only through a gain, and nothing is left to release. */
		const struct held *was = i < t->n_held ? owned_find(&c->own, id) : NULL;
		bool rel = ids_have((const char(*)[ID_MAX])release->ids, release->n, id);
		snprintf(now.h[now.n].id, ID_MAX, "%s", id);
		now.h[now.n++].releasing = rel || (was != NULL && was->releasing);
		if (!rel && (fresh || was == NULL))
			rc = idlist_add(&gained, id);
	}
	if (now.n > 1)
		qsort(now.h, now.n, sizeof *now.h, id_cmp);
	for (size_t i = 0; rc == 0 && !fresh && i < c->own.n; i++)
		if (owned_find(&now, c->own.h[i].id) == NULL && !c->own.h[i].releasing)
			rc = idlist_add(&lost, c->own.h[i].id);
	if (rc == 0) {
		if (lost.n > 0)
			log_warn("cluster: endpoints lost to another node count=%zu", lost.n);
		dispatch_own_lose(c->d, (const char(*)[ID_MAX])lost.ids, lost.n, false);
		dispatch_own_lose(c->d, (const char(*)[ID_MAX])release->ids, release->n, true);
		dispatch_own_gain(c->d, c->epoch, (const char(*)[ID_MAX])gained.ids, gained.n);
		owned_free(&c->own);
		c->own = now;
	} else {
		owned_free(&now);
		log_error("cluster: out of memory; the ownership is looked at again next tick");
	}
	free(lost.ids);
	free(gained.ids);
	return rc;
}

/* Claims what plan found and applies the tick. */
static int tick_claim(struct cluster *c, const struct tick *t, bool fresh)
{
	struct idlist claim = {0}, release = {0};
	char(*got)[ID_MAX] = NULL;
	size_t n_got = 0;
	int rc = plan(c, t, &claim, &release) == 0 ? STORE_OK : STORE_ERROR;
	const char **ids = claim.n > 0 ? calloc(claim.n, sizeof *ids) : NULL;
	if (claim.n > 0 && ids == NULL)
		rc = STORE_ERROR;
	for (size_t i = 0; rc == STORE_OK && i < claim.n; i++)
		ids[i] = claim.ids[i];
	if (rc == STORE_OK && claim.n > 0)
		rc = store_lease_claim(c->st, c->cfg.node_id, c->cfg.lease_ms, ids, claim.n, &got,
				       &n_got);
	if (release.n > 1) /* apply looks them up */
		qsort(release.ids, release.n, sizeof *release.ids, id_cmp);
	if (rc == STORE_OK && apply(c, t, (const char(*)[ID_MAX])got, n_got, &release, fresh) != 0)
		rc = STORE_ERROR;
	if (n_got > 0 || release.n > 0)
		log_info("cluster: node=%s claimed=%zu releasing=%zu owned=%zu live_nodes=%zu",
			 c->cfg.node_id, n_got, release.n, c->own.n, t->n_live);
	free(ids);
	free(got);
	free(claim.ids);
	free(release.ids);
	return rc;
}

/* One tick. quiet: the stop began, keep the leases alive only. */
static int tick(struct cluster *c, bool quiet)
{
	struct tick t = {0};
	int64_t t0 = mono_ms();
	/* Past the deadline the dispatcher dropped (or, seeing the new epoch,
	 * drops) everything: a new epoch, and every lease held is a gain. */
	bool expired = c->deadline == 0 || t0 >= c->deadline;
	int rc = tick_read(c, &t);
	/* The deadline may also pass while the statements run (a slow database,
	 * a loaded host): the dispatcher then drops everything under the old
	 * epoch, and a new deadline with that epoch would never give them back.
	 * A tick's margin covers the moment between this look and the new
	 * deadline's store; a needless new epoch costs only a rescan. */
	if (!expired && mono_ms() + cluster_tick_ms(c->cfg.lease_ms) >= c->deadline)
		expired = true;
	bool fresh = c->own.n == 0 || expired;
	if (rc == STORE_OK) {
		if (expired) {
			c->epoch++;
			owned_free(&c->own);
		}
		c->deadline = cluster_deadline(t0, c->cfg.lease_ms);
		dispatch_own_deadline(c->d, c->epoch, c->deadline);
		if (!quiet)
			rc = tick_claim(c, &t, fresh);
	}
	tick_free(&t);
	return rc;
}

/* Waits up to ms for a stop; returns the stop flags. */
static void wait_slice(struct cluster *c, int64_t ms, bool *stop, bool *quiet)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->mu);
	while (!c->stop && ms > 0 && pthread_cond_timedwait(&c->cv, &c->mu, &ts) != ETIMEDOUT)
		;
	*stop = c->stop;
	*quiet = c->quiet;
	pthread_mutex_unlock(&c->mu);
}

/* Waits up to ms for a stop, in slices of CLUSTER_WATCH_MS, and less if
 * the endpoint cache's size changed (not when quiet: nothing is claimed
 * then); returns the stop flags. */
static void wait_stop(struct cluster *c, int64_t ms, bool *stop, bool *quiet)
{
	int64_t until = mono_ms() + ms;
	for (;;) {
		int64_t left = until - mono_ms();
		wait_slice(c, left < CLUSTER_WATCH_MS ? left : CLUSTER_WATCH_MS, stop, quiet);
		if (*stop || left <= CLUSTER_WATCH_MS ||
		    (!*quiet && epcache_count(c->cfg.cache) != c->n_endpoints))
			return;
	}
}

static void *run(void *arg)
{
	struct cluster *c = arg;
	int64_t every = cluster_tick_ms(c->cfg.lease_ms);
	bool stop = false, quiet = false;
	while (!stop) {
		int64_t t0 = mono_ms();
		int64_t wait = every;
		if (tick(c, quiet) == STORE_OK) {
			if (c->failures > 0)
				log_info("cluster: the database answers again node=%s", c->cfg.node_id);
			c->failures = 0;
		} else {
			if (c->failures++ == 0)
				log_warn("cluster: cannot renew the leases node=%s; delivery of this "
					 "node's endpoints stops at the lease's end unless it can",
					 c->cfg.node_id);
			wait = cluster_backoff_ms(c->cfg.lease_ms, c->failures);
		}
		int64_t mono = mono_ms();
		if (c->own.n > 0 && c->deadline != 0 && mono >= c->deadline)
			owned_free(&c->own); /* the dispatcher dropped them at the deadline */
		wait -= mono - t0;
		if (c->own.n > 0 && c->deadline - mono < wait)
			wait = c->deadline - mono;
		wait_stop(c, wait, &stop, &quiet);
	}
	return NULL;
}

int cluster_open(const struct cluster_config *cfg, struct cluster **out, char *err,
		 size_t errlen)
{
	*out = NULL;
	struct store *st = NULL;
	if (store_open(cfg->db_url, &st, err, errlen) != STORE_OK)
		return -1;
	if (!store_cluster_supported(st)) {
		store_close(st);
		return 0;
	}
	/* A hung lease statement fails well within the lease. */
	if (store_set_timeouts(st, cluster_statement_timeout_ms(cfg->lease_ms),
			       cluster_lock_timeout_ms(cfg->lease_ms)) != STORE_OK) {
		store_close(st);
		snprintf(err, errlen, "cluster: cannot set the statement timeouts");
		return -1;
	}
	struct cluster *c = calloc(1, sizeof *c);
	if (c == NULL) {
		store_close(st);
		snprintf(err, errlen, "cluster: out of memory");
		return -1;
	}
	c->cfg = *cfg;
	c->st = st;
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	*out = c;
	return 0;
}

int cluster_run(struct cluster *c, struct dispatch *d, char *err, size_t errlen)
{
	c->d = d;
	if (pthread_create(&c->thread, NULL, run, c) != 0) {
		snprintf(err, errlen, "cluster: cannot start the thread");
		return -1;
	}
	pthread_setname_np(c->thread, "hookd-cluster");
	c->started = true;
	log_info("cluster: node=%s lease_ms=%lld tick_ms=%lld", c->cfg.node_id,
		 (long long)c->cfg.lease_ms, (long long)cluster_tick_ms(c->cfg.lease_ms));
	return 0;
}

void cluster_quiesce(struct cluster *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->quiet = true;
	pthread_mutex_unlock(&c->mu);
}

void cluster_stop(struct cluster *c, bool leave)
{
	if (c == NULL)
		return;
	if (c->started) {
		pthread_mutex_lock(&c->mu);
		c->stop = true;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->thread, NULL);
	}
	if (leave) {
		if (store_node_leave(c->st, c->cfg.node_id) == STORE_OK)
			log_info("cluster: node=%s left; its endpoints go to the others now",
				 c->cfg.node_id);
		else
			log_warn("cluster: node=%s could not give its leases back; the others "
				 "take its endpoints when they run out", c->cfg.node_id);
	}
	owned_free(&c->own);
	store_close(c->st);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}
