/* queue_depth: the delivery queue's figures in memory (see queue_depth.h).
 *
 * Two levels of open addressing with linear probing and backward-shift
 * deletion (no tombstones, so a table never clogs): endpoint id -> struct
 * qd_ep (idtable.h), and in each endpoint, second -> count of its pending
 * deliveries (here: its slots hold the counts themselves).
 * A pending delivery costs nothing of its own: only each distinct second
 * with one or more has a 16-byte slot, in a table kept between 1/8 and 3/4
 * full once it has grown. */
#include "queue_depth.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "idtable.h"
#include "log.h"
#include "util.h"

#define QD_SLOTS_MIN 8
#define QD_EPS_MIN 16

/* Deliveries due in one second of one endpoint. */
struct qd_slot {
	int64_t sec;       /* next_attempt_at / 1000 */
	uint32_t count;    /* 0: the place is empty */
	uint32_t min_off;  /* the earliest ms into sec added since the slot filled */
};

struct qd_ep {
	char id[ID_MAX];
	int64_t dead;
	int64_t pending;        /* the sum of the slots' counts */
	struct qd_slot *slots;  /* NULL until the first pending */
	size_t cap;             /* a power of two, or 0 */
	size_t used;
};

struct queue_depth {
	pthread_mutex_t mu;
	struct idtable eps;     /* struct qd_ep by id */
	uint64_t misses;
	uint64_t lost;
};

/* The second of a next_attempt_at and the ms into it (times before the
 * epoch, which hookd never writes, count as its first ms). The store's
 * seed query groups by the same second. */
static int64_t sec_of(int64_t at) { return at < 0 ? 0 : at / 1000; }
static uint32_t off_of(int64_t at) { return at < 0 ? 0 : (uint32_t)(at % 1000); }

/* The earliest time a slot stands for. */
static int64_t slot_at(const struct qd_slot *s) { return s->sec * 1000 + s->min_off; }

static size_t sec_home(int64_t sec, size_t cap)
{
	uint64_t h = (uint64_t)sec * 0x9E3779B97F4A7C15ull;
	return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

/* ---- an endpoint's table of seconds ---- */

/* The place of sec in e's table, or the empty place where it would go.
 * e->cap > 0. */
static size_t slot_seek(const struct qd_ep *e, int64_t sec)
{
	size_t i = sec_home(sec, e->cap);
	while (e->slots[i].count != 0 && e->slots[i].sec != sec)
		i = (i + 1) & (e->cap - 1);
	return i;
}

/* Moves e's slots into a table of cap places; -1 (e unchanged) if out of memory. */
static int slots_resize(struct qd_ep *e, size_t cap)
{
	struct qd_slot *s = calloc(cap, sizeof *s);
	if (s == NULL)
		return -1;
	for (size_t i = 0; i < e->cap; i++) {
		if (e->slots[i].count == 0)
			continue;
		size_t j = sec_home(e->slots[i].sec, cap);
		while (s[j].count != 0)
			j = (j + 1) & (cap - 1);
		s[j] = e->slots[i];
	}
	free(e->slots);
	e->slots = s;
	e->cap = cap;
	return 0;
}

/* Adds n (> 0) deliveries due at (sec, off). Returns 0, or -1 if they
 * could not be counted (out of memory, or past what a slot counts). */
static int slot_add(struct qd_ep *e, int64_t sec, uint32_t off, int64_t n)
{
	struct qd_slot *s = e->cap > 0 ? &e->slots[slot_seek(e, sec)] : NULL;
	if (s == NULL || s->count == 0) {
		/* A new second: grow at 3/4; if that fails, go on while one
		 * place stays empty (probes end at one). */
		if ((e->used + 1) * 4 > e->cap * 3 &&
		    slots_resize(e, e->cap ? e->cap * 2 : QD_SLOTS_MIN) != 0 &&
		    e->used + 1 >= e->cap)
			return -1;
		s = &e->slots[slot_seek(e, sec)];
	}
	if (n > (int64_t)(UINT32_MAX - s->count))
		return -1;
	if (s->count == 0) {
		s->sec = sec;
		s->min_off = off;
		e->used++;
	} else if (off < s->min_off) {
		s->min_off = off;
	}
	s->count += (uint32_t)n;
	e->pending += n;
	return 0;
}

/* Empties place i and shifts back the run after it, so that every slot
 * stays reachable from its home without tombstones. */
static void slot_delete(struct qd_ep *e, size_t i)
{
	size_t mask = e->cap - 1;
	e->slots[i].count = 0;
	e->used--;
	for (size_t j = (i + 1) & mask; e->slots[j].count != 0; j = (j + 1) & mask) {
		size_t home = sec_home(e->slots[j].sec, e->cap);
		/* j stays if its home lies cyclically in (i, j]. */
		bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (stays)
			continue;
		e->slots[i] = e->slots[j];
		e->slots[j].count = 0;
		i = j;
	}
	/* Shrink a table left mostly empty (a backlog drained); failure is harmless. */
	if (e->cap > QD_SLOTS_MIN && e->used * 8 < e->cap)
		(void)slots_resize(e, e->cap / 2);
}

/* The place of e's earliest second, or SIZE_MAX if it has none. */
static size_t slot_earliest(const struct qd_ep *e)
{
	size_t best = SIZE_MAX;
	for (size_t i = 0; i < e->cap; i++)
		if (e->slots[i].count != 0 &&
		    (best == SIZE_MAX || e->slots[i].sec < e->slots[best].sec))
			best = i;
	return best;
}

/* Takes one delivery due at sec; from the earliest second if sec has none
 * (counted as a miss). */
static void slot_remove(struct queue_depth *q, struct qd_ep *e, int64_t sec)
{
	if (e->pending == 0) {
		q->misses++;
		return;
	}
	size_t i = slot_seek(e, sec);
	if (e->slots[i].count == 0) {
		q->misses++;
		i = slot_earliest(e);
	}
	e->pending--;
	if (--e->slots[i].count == 0)
		slot_delete(e, i);
}

/* ---- the endpoints ---- */

static struct qd_ep *ep_find(const struct queue_depth *q, const char *id)
{
	return idtable_find(&q->eps, id);
}

/* The endpoint's entry, made if it is new; NULL if out of memory. */
static struct qd_ep *ep_get(struct queue_depth *q, const char *id)
{
	struct qd_ep *e = ep_find(q, id);
	void *old;
	if (e != NULL)
		return e;
	e = calloc(1, sizeof *e);
	if (e == NULL)
		return NULL;
	memcpy(e->id, id, strnlen(id, ID_MAX - 1));
	if (idtable_put(&q->eps, e, &old) != 0) {
		free(e);
		return NULL;
	}
	return e;
}

static void ep_free(struct qd_ep *e)
{
	if (e == NULL)
		return;
	free(e->slots);
	free(e);
}

/* Drops the endpoint's entry. */
static void ep_delete(struct queue_depth *q, const char *id)
{
	ep_free(idtable_remove(&q->eps, id));
}

/* Empties q; the endpoint table keeps its size. */
static void clear(struct queue_depth *q)
{
	struct qd_ep *e;
	for (size_t pos = 0; (e = idtable_next(&q->eps, &pos)) != NULL;)
		ep_free(e);
	idtable_clear(&q->eps);
}

struct queue_depth *queue_depth_new(void)
{
	struct queue_depth *q = calloc(1, sizeof *q);
	if (q == NULL)
		return NULL;
	if (idtable_init(&q->eps, offsetof(struct qd_ep, id), 0, QD_EPS_MIN) != 0) {
		free(q);
		return NULL;
	}
	pthread_mutex_init(&q->mu, NULL);
	return q;
}

void queue_depth_free(struct queue_depth *q)
{
	if (q == NULL)
		return;
	clear(q);
	idtable_free(&q->eps);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

/* ---- seeding ---- */

static int seed_group(const struct store_queue_group *g, void *arg)
{
	struct queue_depth *q = arg;
	if (g->count <= 0)
		return STORE_OK;
	struct qd_ep *e = ep_get(q, g->endpoint_id);
	if (e == NULL)
		return STORE_ERROR;
	if (g->status == DELIVERY_DEAD) {
		e->dead += g->count;
		return STORE_OK;
	}
	if (g->status != DELIVERY_PENDING)
		return STORE_OK;
	/* min_at lies in the group's second; if a backend said otherwise,
	 * the second rules. */
	uint32_t off = sec_of(g->min_at) == g->second ? off_of(g->min_at) : 0;
	return slot_add(e, g->second, off, g->count) == 0 ? STORE_OK : STORE_ERROR;
}

int queue_depth_seed(struct queue_depth *q, struct store *st)
{
	if (q == NULL)
		return STORE_OK;
	pthread_mutex_lock(&q->mu);
	clear(q);
	int rc = store_queue_seed(st, seed_group, q);
	if (rc != STORE_OK)
		clear(q);
	pthread_mutex_unlock(&q->mu);
	if (rc != STORE_OK)
		log_error("queue depth: seeding from the store failed rc=%d", rc);
	return rc;
}

int queue_depth_refresh(struct queue_depth *q, struct store *st)
{
	if (q == NULL)
		return STORE_OK;
	struct queue_depth *fresh = queue_depth_new();
	if (fresh == NULL)
		return STORE_ERROR;
	int rc = store_queue_seed(st, seed_group, fresh);
	if (rc == STORE_OK) {
		pthread_mutex_lock(&q->mu);
		struct idtable old = q->eps;
		q->eps = fresh->eps;
		fresh->eps = old;
		pthread_mutex_unlock(&q->mu);
	}
	queue_depth_free(fresh); /* the old figures, or the half-read ones */
	return rc;
}

/* ---- feeding ---- */

void queue_depth_lock(struct queue_depth *q)
{
	if (q != NULL)
		pthread_mutex_lock(&q->mu);
}

void queue_depth_unlock(struct queue_depth *q)
{
	if (q != NULL)
		pthread_mutex_unlock(&q->mu);
}

void queue_depth_add_pending_locked(struct queue_depth *q, const char *endpoint_id, int64_t at,
				    int64_t n)
{
	if (q == NULL || n <= 0)
		return;
	struct qd_ep *e = ep_get(q, endpoint_id);
	if (e == NULL || slot_add(e, sec_of(at), off_of(at), n) != 0) {
		if (q->lost == 0)
			log_error("queue depth: out of memory: pending figures are short endpoint=%s",
				  endpoint_id);
		q->lost += (uint64_t)n;
	}
}

void queue_depth_remove_pending_locked(struct queue_depth *q, const char *endpoint_id, int64_t at)
{
	if (q == NULL)
		return;
	struct qd_ep *e = ep_find(q, endpoint_id);
	if (e == NULL) {
		q->misses++;
		return;
	}
	slot_remove(q, e, sec_of(at));
}

void queue_depth_add_dead_locked(struct queue_depth *q, const char *endpoint_id, int64_t n)
{
	if (q == NULL || n == 0)
		return;
	struct qd_ep *e = n > 0 ? ep_get(q, endpoint_id) : ep_find(q, endpoint_id);
	if (e == NULL) {
		if (n > 0)
			q->lost += (uint64_t)n;
		else
			q->misses++;
		return;
	}
	if (n < 0 && e->dead < -n) {
		q->misses++;
		e->dead = 0;
		return;
	}
	e->dead += n;
}

void queue_depth_created(struct queue_depth *q, const struct pending *items, size_t n)
{
	if (q == NULL || n == 0)
		return;
	pthread_mutex_lock(&q->mu);
	for (size_t i = 0; i < n; i++)
		queue_depth_add_pending_locked(q, items[i].endpoint_id, items[i].next_attempt_at, 1);
	pthread_mutex_unlock(&q->mu);
}

void queue_depth_dead_retried(struct queue_depth *q, const char *endpoint_id, int64_t at,
			      int64_t n)
{
	if (q == NULL || n <= 0)
		return;
	pthread_mutex_lock(&q->mu);
	queue_depth_add_dead_locked(q, endpoint_id, -n);
	queue_depth_add_pending_locked(q, endpoint_id, at, n);
	pthread_mutex_unlock(&q->mu);
}

void queue_depth_endpoint_deleted(struct queue_depth *q, const char *endpoint_id)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	ep_delete(q, endpoint_id);
	pthread_mutex_unlock(&q->mu);
}

/* ---- reading ---- */

/* Adds e's figures at now to *f; lowers *oldest to the earliest due time. */
static void ep_figures(const struct qd_ep *e, int64_t now, bool blocked, struct queue_figures *f,
		       int64_t *oldest)
{
	f->pending += e->pending;
	f->dead += e->dead;
	if (blocked) {
		f->waiting += e->pending;
		return;
	}
	for (size_t i = 0; i < e->cap; i++) {
		const struct qd_slot *s = &e->slots[i];
		if (s->count == 0)
			continue;
		int64_t at = slot_at(s);
		if (at > now) {
			f->scheduled += s->count;
			continue;
		}
		f->due += s->count;
		if (at < *oldest)
			*oldest = at;
	}
}

static double age_s(int64_t now, int64_t oldest)
{
	return oldest == INT64_MAX || oldest >= now ? 0.0 : (double)(now - oldest) / 1000.0;
}

static bool is_blocked(queue_depth_blocked_fn blocked, void *arg, const char *id)
{
	return blocked != NULL && blocked(id, arg);
}

void queue_depth_read(struct queue_depth *q, const char *endpoint_id, int64_t now_ms,
		      queue_depth_blocked_fn blocked, void *blocked_arg, struct queue_figures *out)
{
	int64_t oldest = INT64_MAX;
	memset(out, 0, sizeof *out);
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	if (endpoint_id != NULL) {
		const struct qd_ep *e = ep_find(q, endpoint_id);
		if (e != NULL)
			ep_figures(e, now_ms, is_blocked(blocked, blocked_arg, e->id), out, &oldest);
	} else {
		const struct qd_ep *e;
		for (size_t pos = 0; (e = idtable_next(&q->eps, &pos)) != NULL;)
			ep_figures(e, now_ms, is_blocked(blocked, blocked_arg, e->id), out, &oldest);
	}
	pthread_mutex_unlock(&q->mu);
	out->oldest_pending_age_s = age_s(now_ms, oldest);
}

int queue_depth_each(struct queue_depth *q, int64_t now_ms, queue_depth_blocked_fn blocked,
		     void *blocked_arg,
		     int (*fn)(const char *endpoint_id, const struct queue_figures *f, void *arg),
		     void *arg)
{
	int rc = 0;
	if (q == NULL)
		return 0;
	pthread_mutex_lock(&q->mu);
	const struct qd_ep *e;
	for (size_t pos = 0; rc == 0 && (e = idtable_next(&q->eps, &pos)) != NULL;) {
		struct queue_figures f = {0};
		int64_t oldest = INT64_MAX;
		ep_figures(e, now_ms, is_blocked(blocked, blocked_arg, e->id), &f, &oldest);
		f.oldest_pending_age_s = age_s(now_ms, oldest);
		rc = fn(e->id, &f, arg);
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

void queue_depth_health(struct queue_depth *q, struct queue_depth_health *out)
{
	memset(out, 0, sizeof *out);
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	out->misses = q->misses;
	out->lost = q->lost;
	pthread_mutex_unlock(&q->mu);
}
