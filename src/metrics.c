/* metrics: the series, their rings of time buckets, the endpoint slots, the
 * feeds and the reads (see metrics.h for the threading rules). */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING_MIN 60              /* one-minute buckets */
#define RING_Q 96                /* fifteen-minute buckets */
#define STEP_MIN_MS 60000
#define STEP_Q_MS 900000

#define RLX memory_order_relaxed
/* Adds v to an atomic that only one thread writes: no read-modify-write. */
#define BUMP(p, v) atomic_store_explicit((p), atomic_load_explicit((p), RLX) + (v), RLX)
#define LOAD(p) atomic_load_explicit((p), RLX)
#define STORE(p, v) atomic_store_explicit((p), (v), RLX)

/* A latency histogram in a time bucket (counts per bucket stay small). */
struct bhist {
	_Atomic uint32_t n[METRICS_HIST_N];
	_Atomic uint64_t sum_us;
};

/* The dispatcher's figures for one time bucket. */
struct dbucket {
	_Atomic int64_t tag;     /* the minute (or quarter hour) counted; -1 while zeroed */
	_Atomic uint32_t outcome[METRICS_N_OUTCOMES];
	_Atomic uint32_t created, delivered, dead;
	struct bhist att, i2d;
};

/* The commit thread's figures for one time bucket. */
struct ibucket {
	_Atomic int64_t tag;
	_Atomic uint32_t events, created;
};

/* A cumulative histogram for the exposition; bucket i counts v <= bound i. */
struct phist {
	_Atomic uint64_t n[METRICS_PHIST_N + 1];
	_Atomic uint64_t count, sum;
};

/* One series: an endpoint's, "other" or the overall one. */
struct metrics_ep {
	_Atomic uint32_t gen;    /* bumped when the slot changes hands */
	bool used;               /* under mu */
	char id[ID_MAX];         /* under mu */
	_Atomic uint64_t total[METRICS_N_OUTCOMES];
	struct dbucket min[RING_MIN];
	struct dbucket q[RING_Q];
};

struct api_route_stats {
	_Atomic uint64_t codes[METRICS_API_CODES];
	struct phist dur;
};

struct metrics {
	int64_t started_ms;
	pthread_mutex_t mu;      /* the slot table's ids and use */
	struct metrics_ep **slots;
	size_t n_slots;
	struct metrics_ep *other;
	struct metrics_ep *all;
	struct ibucket imin[RING_MIN];
	struct ibucket iq[RING_Q];
	_Atomic uint64_t events, created, delivered, dead;
	_Atomic uint64_t conns_opened, tls_full, tls_resumed;
	_Atomic int in_flight;
	struct phist attempt_us, i2d_us, commit_us, commit_ops;
	struct api_route_stats api[METRICS_API_ROUTES];
};

const unsigned metrics_api_codes[METRICS_API_CODES] = {
	200, 201, 202, 204, 400, 401, 403, 404, 405, 409, 413, 414, 415, 429, 431, 500, 503,
	304, 0,
};

/* ---- buckets ---- */

/* Zeroes b for tag (its writer's thread): readers see tag -1 meanwhile. */
static void dbucket_reset(struct dbucket *b, int64_t tag)
{
	STORE(&b->tag, -1);
	atomic_thread_fence(memory_order_release);
	for (size_t i = 0; i < METRICS_N_OUTCOMES; i++)
		STORE(&b->outcome[i], 0);
	STORE(&b->created, 0);
	STORE(&b->delivered, 0);
	STORE(&b->dead, 0);
	for (size_t i = 0; i < METRICS_HIST_N; i++) {
		STORE(&b->att.n[i], 0);
		STORE(&b->i2d.n[i], 0);
	}
	STORE(&b->att.sum_us, 0);
	STORE(&b->i2d.sum_us, 0);
	atomic_store_explicit(&b->tag, tag, memory_order_release);
}

/* The buckets of both rings of s for wall ms now, zeroed if they counted
 * an older period. */
static void dbuckets(struct metrics_ep *s, int64_t now, struct dbucket **a, struct dbucket **b)
{
	int64_t mi = now / STEP_MIN_MS, qi = now / STEP_Q_MS;
	*a = &s->min[mi % RING_MIN];
	*b = &s->q[qi % RING_Q];
	if (LOAD(&(*a)->tag) != mi)
		dbucket_reset(*a, mi);
	if (LOAD(&(*b)->tag) != qi)
		dbucket_reset(*b, qi);
}

static struct ibucket *ibucket_at(struct ibucket *ring, size_t n, int64_t idx)
{
	struct ibucket *b = &ring[idx % (int64_t)n];
	if (LOAD(&b->tag) != idx) {
		STORE(&b->tag, -1);
		atomic_thread_fence(memory_order_release);
		STORE(&b->events, 0);
		STORE(&b->created, 0);
		atomic_store_explicit(&b->tag, idx, memory_order_release);
	}
	return b;
}

static size_t phist_index(bool us, uint64_t v)
{
	if (us) {
		if (v <= 16)
			return 0;
		unsigned bits = 64u - (unsigned)__builtin_clzll(v - 1); /* v <= 2^bits */
		size_t i = (bits - 3) / 2;
		return i < METRICS_PHIST_N ? i : METRICS_PHIST_N;
	}
	if (v <= 1)
		return 0;
	size_t i = 64u - (unsigned)__builtin_clzll(v - 1);
	return i < METRICS_PHIST_N ? i : METRICS_PHIST_N;
}

/* One writer. */
static void phist_add(struct phist *h, bool us, uint64_t v)
{
	BUMP(&h->n[phist_index(us, v)], 1);
	BUMP(&h->count, 1);
	BUMP(&h->sum, v);
}

/* Several writers. */
static void phist_add_shared(struct phist *h, uint64_t v)
{
	atomic_fetch_add_explicit(&h->n[phist_index(true, v)], 1, RLX);
	atomic_fetch_add_explicit(&h->count, 1, RLX);
	atomic_fetch_add_explicit(&h->sum, v, RLX);
}

static void phist_read(const struct phist *h, struct metrics_phist_snap *out)
{
	for (size_t i = 0; i <= METRICS_PHIST_N; i++)
		out->n[i] = LOAD(&h->n[i]);
	out->count = LOAD(&h->count);
	out->sum = LOAD(&h->sum);
}

/* ---- life ---- */

struct metrics *metrics_new(int max_endpoints)
{
	struct metrics *m = calloc(1, sizeof *m);
	if (m == NULL)
		return NULL;
	pthread_mutex_init(&m->mu, NULL);
	m->n_slots = max_endpoints > 0 ? (size_t)max_endpoints : 0;
	m->slots = m->n_slots ? calloc(m->n_slots, sizeof *m->slots) : NULL;
	m->other = calloc(1, sizeof *m->other);
	m->all = calloc(1, sizeof *m->all);
	if ((m->n_slots && m->slots == NULL) || m->other == NULL || m->all == NULL) {
		metrics_free(m);
		return NULL;
	}
	m->other->used = true;
	memcpy(m->other->id, "other", sizeof "other");
	m->started_ms = now_ms();
	return m;
}

void metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_slots && m->slots; i++)
		free(m->slots[i]);
	free(m->slots);
	free(m->other);
	free(m->all);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

int64_t metrics_started_ms(const struct metrics *m)
{
	return m->started_ms;
}

/* ---- endpoint slots ---- */

/* Zeroes a slot's series before it changes hands (the feeding thread). */
static void series_reset(struct metrics_ep *s)
{
	for (size_t i = 0; i < METRICS_N_OUTCOMES; i++)
		STORE(&s->total[i], 0);
	for (size_t i = 0; i < RING_MIN; i++)
		dbucket_reset(&s->min[i], -1);
	for (size_t i = 0; i < RING_Q; i++)
		dbucket_reset(&s->q[i], -1);
}

/* With mu held: the slot of id, else a new one (free or never used), else
 * other. */
static struct metrics_ep *slot_take(struct metrics *m, const char *id)
{
	size_t free_at = m->n_slots;
	for (size_t i = 0; i < m->n_slots; i++) {
		struct metrics_ep *s = m->slots[i];
		if (s != NULL && s->used && strcmp(s->id, id) == 0)
			return s;
		if ((s == NULL || !s->used) && free_at == m->n_slots)
			free_at = i;
	}
	if (free_at == m->n_slots)
		return m->other;
	struct metrics_ep *s = m->slots[free_at];
	if (s == NULL) {
		/* Large and zeroed: its pages cost memory only once written. */
		s = calloc(1, sizeof *s);
		if (s == NULL)
			return m->other;
		m->slots[free_at] = s;
	} else {
		series_reset(s);
	}
	s->used = true;
	snprintf(s->id, sizeof s->id, "%s", id);
	atomic_fetch_add_explicit(&s->gen, 1, memory_order_release);
	return s;
}

struct metrics_ep *metrics_ep_resolve(struct metrics *m, const char *endpoint_id,
				      struct metrics_ep **cache, uint32_t *gen)
{
	if (m == NULL)
		return NULL;
	struct metrics_ep *s = *cache;
	if (s != NULL && atomic_load_explicit(&s->gen, memory_order_acquire) == *gen)
		return s;
	pthread_mutex_lock(&m->mu);
	/* A memo gone stale means the endpoint was deleted: its late
	 * attempts count as other. */
	s = s != NULL ? m->other : slot_take(m, endpoint_id);
	*gen = atomic_load_explicit(&s->gen, memory_order_acquire);
	pthread_mutex_unlock(&m->mu);
	*cache = s;
	return s;
}

void metrics_ep_forget(struct metrics *m, const char *endpoint_id)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->n_slots; i++) {
		struct metrics_ep *s = m->slots[i];
		if (s != NULL && s->used && strcmp(s->id, endpoint_id) == 0) {
			s->used = false;
			s->id[0] = '\0';
			atomic_fetch_add_explicit(&s->gen, 1, memory_order_release);
		}
	}
	pthread_mutex_unlock(&m->mu);
}

const struct metrics_ep *metrics_ep_find(struct metrics *m, const char *endpoint_id)
{
	const struct metrics_ep *found = NULL;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->n_slots && found == NULL; i++) {
		const struct metrics_ep *s = m->slots[i];
		if (s != NULL && s->used && strcmp(s->id, endpoint_id) == 0)
			found = s;
	}
	pthread_mutex_unlock(&m->mu);
	return found;
}

void metrics_ep_each(struct metrics *m,
		     void (*fn)(void *arg, const char *id, const uint64_t *outcomes), void *arg)
{
	uint64_t o[METRICS_N_OUTCOMES];
	char id[ID_MAX];
	for (size_t i = 0; i <= m->n_slots; i++) {
		pthread_mutex_lock(&m->mu);
		const struct metrics_ep *s = i < m->n_slots ? m->slots[i] : m->other;
		bool used = s != NULL && s->used;
		if (used)
			memcpy(id, s->id, ID_MAX);
		pthread_mutex_unlock(&m->mu);
		if (!used)
			continue;
		for (size_t k = 0; k < METRICS_N_OUTCOMES; k++)
			o[k] = LOAD(&s->total[k]);
		fn(arg, id, o);
	}
}

/* ---- feeding ---- */

static void attempt_into(struct metrics_ep *s, enum metrics_outcome o, size_t hi,
			 uint64_t us, int64_t now)
{
	struct dbucket *a, *b;
	dbuckets(s, now, &a, &b);
	BUMP(&s->total[o], 1);
	BUMP(&a->outcome[o], 1);
	BUMP(&b->outcome[o], 1);
	BUMP(&a->att.n[hi], 1);
	BUMP(&b->att.n[hi], 1);
	BUMP(&a->att.sum_us, us);
	BUMP(&b->att.sum_us, us);
}

void metrics_attempt(struct metrics *m, struct metrics_ep *ep, enum metrics_outcome o,
		     uint64_t duration_us, int64_t now)
{
	if (m == NULL)
		return;
	size_t hi = metrics_hist_index(duration_us);
	attempt_into(m->all, o, hi, duration_us, now);
	if (ep != NULL)
		attempt_into(ep, o, hi, duration_us, now);
	phist_add(&m->attempt_us, true, duration_us);
}

static void delivered_into(struct metrics_ep *s, size_t hi, uint64_t us, int64_t now)
{
	struct dbucket *a, *b;
	dbuckets(s, now, &a, &b);
	BUMP(&a->delivered, 1);
	BUMP(&b->delivered, 1);
	BUMP(&a->i2d.n[hi], 1);
	BUMP(&b->i2d.n[hi], 1);
	BUMP(&a->i2d.sum_us, us);
	BUMP(&b->i2d.sum_us, us);
}

void metrics_delivered(struct metrics *m, struct metrics_ep *ep, uint64_t latency_us,
		       int64_t now)
{
	if (m == NULL)
		return;
	size_t hi = metrics_hist_index(latency_us);
	delivered_into(m->all, hi, latency_us, now);
	if (ep != NULL)
		delivered_into(ep, hi, latency_us, now);
	BUMP(&m->delivered, 1);
	phist_add(&m->i2d_us, true, latency_us);
}

void metrics_dead(struct metrics *m, struct metrics_ep *ep, int64_t now)
{
	if (m == NULL)
		return;
	struct dbucket *a, *b;
	for (int i = 0; i < 2; i++) {
		struct metrics_ep *s = i == 0 ? m->all : ep;
		if (s == NULL)
			continue;
		dbuckets(s, now, &a, &b);
		BUMP(&a->dead, 1);
		BUMP(&b->dead, 1);
	}
	BUMP(&m->dead, 1);
}

void metrics_ep_created(struct metrics *m, struct metrics_ep *ep, uint64_t n, int64_t now)
{
	if (m == NULL || ep == NULL)
		return;
	struct dbucket *a, *b;
	dbuckets(ep, now, &a, &b);
	BUMP(&a->created, n);
	BUMP(&b->created, n);
}

void metrics_connections(struct metrics *m, uint64_t opened, uint64_t tls_full,
			 uint64_t tls_resumed)
{
	if (m == NULL)
		return;
	BUMP(&m->conns_opened, opened);
	BUMP(&m->tls_full, tls_full);
	BUMP(&m->tls_resumed, tls_resumed);
}

void metrics_set_in_flight(struct metrics *m, int n)
{
	if (m != NULL)
		STORE(&m->in_flight, n);
}

void metrics_ingested(struct metrics *m, uint64_t events, uint64_t deliveries, int64_t now)
{
	if (m == NULL)
		return;
	struct ibucket *a = ibucket_at(m->imin, RING_MIN, now / STEP_MIN_MS);
	struct ibucket *b = ibucket_at(m->iq, RING_Q, now / STEP_Q_MS);
	BUMP(&a->events, events);
	BUMP(&b->events, events);
	BUMP(&a->created, deliveries);
	BUMP(&b->created, deliveries);
	BUMP(&m->events, events);
	BUMP(&m->created, deliveries);
}

void metrics_commit_group(struct metrics *m, uint64_t ops, uint64_t commit_us)
{
	if (m == NULL)
		return;
	phist_add(&m->commit_ops, false, ops);
	phist_add(&m->commit_us, true, commit_us);
}

void metrics_api_request(struct metrics *m, size_t route, unsigned status, uint64_t duration_us)
{
	if (m == NULL || route >= METRICS_API_ROUTES)
		return;
	size_t c = 0;
	while (c < METRICS_API_CODES - 1 && metrics_api_codes[c] != status)
		c++;
	atomic_fetch_add_explicit(&m->api[route].codes[c], 1, RLX);
	phist_add_shared(&m->api[route].dur, duration_us);
}

/* ---- reading ---- */

int metrics_window_step(enum metrics_window w)
{
	return w == METRICS_24H ? STEP_Q_MS / 1000 : STEP_MIN_MS / 1000;
}

size_t metrics_window_points(enum metrics_window w)
{
	return w == METRICS_5M ? 5 : w == METRICS_1H ? RING_MIN : RING_Q;
}

int metrics_window_seconds(enum metrics_window w)
{
	return w == METRICS_5M ? 300 : w == METRICS_1H ? 3600 : 86400;
}

static void hist_sum(const struct bhist *h, struct metrics_hsnap *out)
{
	for (size_t i = 0; i < METRICS_HIST_N; i++) {
		uint64_t c = LOAD(&h->n[i]);
		out->n[i] += c;
		out->count += c;
	}
	out->sum_us += LOAD(&h->sum_us);
}

/* Adds bucket b to v if it counts period idx; false if it does not (or was
 * being zeroed while read). */
static bool dbucket_read(const struct dbucket *b, int64_t idx, struct metrics_view *v)
{
	if (atomic_load_explicit(&b->tag, memory_order_acquire) != idx)
		return false;
	for (size_t i = 0; i < METRICS_N_OUTCOMES; i++) {
		uint64_t c = LOAD(&b->outcome[i]);
		v->outcome[i] += c;
		v->attempts += c;
	}
	v->created += LOAD(&b->created);
	v->delivered += LOAD(&b->delivered);
	v->dead += LOAD(&b->dead);
	hist_sum(&b->att, &v->attempt_us);
	hist_sum(&b->i2d, &v->i2d_us);
	atomic_thread_fence(memory_order_acquire);
	return LOAD(&b->tag) == idx;
}

static void ibucket_read(const struct ibucket *b, int64_t idx, struct metrics_view *v)
{
	if (atomic_load_explicit(&b->tag, memory_order_acquire) != idx)
		return;
	uint64_t e = LOAD(&b->events), c = LOAD(&b->created);
	atomic_thread_fence(memory_order_acquire);
	if (LOAD(&b->tag) != idx)
		return;
	v->events += e;
	v->created += c;
}

static void view_add(struct metrics_view *to, const struct metrics_view *v)
{
	for (size_t i = 0; i < METRICS_N_OUTCOMES; i++)
		to->outcome[i] += v->outcome[i];
	to->attempts += v->attempts;
	to->created += v->created;
	to->delivered += v->delivered;
	to->dead += v->dead;
	to->events += v->events;
	for (size_t i = 0; i < METRICS_HIST_N; i++) {
		to->attempt_us.n[i] += v->attempt_us.n[i];
		to->i2d_us.n[i] += v->i2d_us.n[i];
	}
	to->attempt_us.count += v->attempt_us.count;
	to->attempt_us.sum_us += v->attempt_us.sum_us;
	to->i2d_us.count += v->i2d_us.count;
	to->i2d_us.sum_us += v->i2d_us.sum_us;
}

void metrics_read(const struct metrics *m, const struct metrics_ep *ep, enum metrics_window w,
		  int64_t now, struct metrics_view *out, struct metrics_point *pts, int64_t *from)
{
	bool quarter = w == METRICS_24H;
	int64_t step = quarter ? STEP_Q_MS : STEP_MIN_MS;
	size_t n = metrics_window_points(w), ring = quarter ? RING_Q : RING_MIN;
	const struct metrics_ep *s = ep != NULL ? ep : m->all;
	const struct dbucket *db = quarter ? s->q : s->min;
	const struct ibucket *ib = quarter ? m->iq : m->imin;
	int64_t first = now / step - (int64_t)n + 1;
	struct metrics_view *v = malloc(sizeof *v);
	memset(out, 0, sizeof *out);
	*from = first * step;
	for (size_t j = 0; j < n && v != NULL; j++) {
		int64_t idx = first + (int64_t)j;
		memset(v, 0, sizeof *v);
		if (!dbucket_read(&db[idx % (int64_t)ring], idx, v))
			memset(v, 0, sizeof *v);
		if (ep == NULL) {
			v->created = 0; /* overall: created is the commit thread's */
			ibucket_read(&ib[idx % (int64_t)ring], idx, v);
		}
		view_add(out, v);
		if (pts == NULL)
			continue;
		struct metrics_point *p = &pts[j];
		p->t = idx * step;
		p->events = v->events;
		p->created = v->created;
		p->attempts = v->attempts;
		p->succeeded = v->outcome[METRICS_2XX];
		p->failed = v->attempts - p->succeeded;
		p->p50_us = metrics_hsnap_quantile(&v->attempt_us, 0.50);
		p->p95_us = metrics_hsnap_quantile(&v->attempt_us, 0.95);
	}
	free(v);
}

void metrics_totals(const struct metrics *m, struct metrics_totals *out)
{
	out->events = LOAD(&m->events);
	out->created = LOAD(&m->created);
	out->delivered = LOAD(&m->delivered);
	out->dead = LOAD(&m->dead);
	out->conns_opened = LOAD(&m->conns_opened);
	out->tls_full = LOAD(&m->tls_full);
	out->tls_resumed = LOAD(&m->tls_resumed);
	out->in_flight = LOAD(&m->in_flight);
	phist_read(&m->attempt_us, &out->attempt_us);
	phist_read(&m->i2d_us, &out->i2d_us);
	phist_read(&m->commit_us, &out->commit_us);
	phist_read(&m->commit_ops, &out->commit_ops);
}

bool metrics_api_route(const struct metrics *m, size_t route, uint64_t *codes,
		       struct metrics_phist_snap *dur)
{
	if (route >= METRICS_API_ROUTES)
		return false;
	const struct api_route_stats *r = &m->api[route];
	uint64_t any = 0;
	for (size_t i = 0; i < METRICS_API_CODES; i++) {
		codes[i] = LOAD(&r->codes[i]);
		any += codes[i];
	}
	phist_read(&r->dur, dur);
	return any > 0;
}
