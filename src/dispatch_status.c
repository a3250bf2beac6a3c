/* dispatch_status: the dispatcher's per-endpoint state (dispatch_ep.h) and
 * its public view, dispatch_endpoint_status (dispatch.h). */
#include "dispatch_ep.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define EPS_TABLE_MIN 64

int dispatch_eps_init(struct dispatch_eps *t, int breaker_threshold, int64_t cooldown_ms)
{
	memset(t, 0, sizeof *t);
	if (idtable_init(&t->table, offsetof(struct dispatch_ep, id), 0, EPS_TABLE_MIN) != 0)
		return -1;
	t->breaker_threshold = breaker_threshold;
	t->breaker_cooldown_ms = cooldown_ms;
	pthread_mutex_init(&t->mu, NULL);
	return 0;
}

void dispatch_eps_free(struct dispatch_eps *t)
{
	if (t->table.slots == NULL)
		return;
	struct dispatch_ep *e;
	for (size_t pos = 0; (e = idtable_next(&t->table, &pos)) != NULL;) {
		while (e->retry != NULL) {
			struct dbatch *b = e->retry;
			e->retry = b->next;
			free(b->m);
			free(b->quiet);
			free(b->created_at);
			free(b);
		}
		free(e->q);
		free(e);
	}
	idtable_free(&t->table);
	pthread_mutex_destroy(&t->mu);
	memset(t, 0, sizeof *t);
}

struct dispatch_ep *dispatch_eps_find(struct dispatch_eps *t, const char *id)
{
	return idtable_find(&t->table, id);
}

struct dispatch_ep *dispatch_eps_get(struct dispatch_eps *t, const char *id)
{
	struct dispatch_ep *e = dispatch_eps_find(t, id);
	if (e != NULL)
		return e;
	e = calloc(1, sizeof *e);
	if (e == NULL)
		return NULL;
	size_t len = strnlen(id, ID_MAX - 1);
	memcpy(e->id, id, len);
	breaker_init(&e->br, t->breaker_threshold);
	e->br.cooldown_ms = t->breaker_cooldown_ms;
	bucket_init(&e->bucket, 0, 0);
	void *old;
	pthread_mutex_lock(&t->mu);
	int rc = idtable_put(&t->table, e, &old);
	pthread_mutex_unlock(&t->mu);
	if (rc != 0) {
		free(e);
		return NULL;
	}
	return e;
}

void dispatch_eps_remove(struct dispatch_eps *t, struct dispatch_ep *e)
{
	pthread_mutex_lock(&t->mu);
	if (idtable_find(&t->table, e->id) == e)
		idtable_remove(&t->table, e->id);
	pthread_mutex_unlock(&t->mu);
	free(e->q);
	free(e);
}

size_t dispatch_eps_count(struct dispatch_eps *t)
{
	pthread_mutex_lock(&t->mu);
	size_t n = t->table.n;
	pthread_mutex_unlock(&t->mu);
	return n;
}

bool dispatch_ep_idle(const struct dispatch_ep *e)
{
	return e->in_flight == 0 && e->q_n == 0 && e->retry == NULL && !e->in_run &&
	       !e->sleeping;
}

int dispatch_ep_push(struct dispatch_ep *e, const struct pending *p)
{
	if (e->q_n == e->q_cap) {
		size_t cap = e->q_cap ? e->q_cap * 2 : 16;
		struct pending *q = malloc(cap * sizeof *q);
		if (q == NULL)
			return -1;
		/* Unroll the ring into the new array, oldest first. */
		for (size_t i = 0; i < e->q_n; i++)
			q[i] = e->q[(e->q_head + i) % e->q_cap];
		free(e->q);
		e->q = q;
		e->q_cap = cap;
		e->q_head = 0;
	}
	e->q[(e->q_head + e->q_n) % e->q_cap] = *p;
	e->q_n++;
	return 0;
}

bool dispatch_ep_pop(struct dispatch_ep *e, struct pending *out)
{
	if (e->q_n == 0)
		return false;
	*out = e->q[e->q_head];
	e->q_head = (e->q_head + 1) % e->q_cap;
	e->q_n--;
	return true;
}

void dispatch_endpoint_status(struct dispatch *d, const char *endpoint_id,
			      struct dispatch_endpoint_status *out)
{
	out->circuit = "closed";
	out->next_probe_at = 0;
	out->paused_until = 0;
	out->in_flight = 0;
	if (d == NULL || endpoint_id == NULL)
		return;
	struct dispatch_eps *t = dispatch_eps_of(d);
	pthread_mutex_lock(&t->mu);
	struct dispatch_ep *e = dispatch_eps_find(t, endpoint_id);
	if (e != NULL) {
		out->circuit = breaker_state_name(e->br.state);
		out->next_probe_at = e->br.state == BREAKER_CLOSED ? 0 : e->br.next_probe_at;
		/* A pause that has ended is no pause, whether or not the
		 * dispatcher has woken up to it yet. */
		if (e->paused_until > now_ms())
			out->paused_until = e->paused_until;
		out->in_flight = e->in_flight;
	}
	pthread_mutex_unlock(&t->mu);
}

void dispatch_circuit_counts(struct dispatch *d, size_t *open, size_t *half_open,
			     size_t *paused)
{
	*open = *half_open = *paused = 0;
	if (d == NULL)
		return;
	struct dispatch_eps *t = dispatch_eps_of(d);
	int64_t now = now_ms();
	pthread_mutex_lock(&t->mu);
	const struct dispatch_ep *e;
	for (size_t pos = 0; (e = idtable_next(&t->table, &pos)) != NULL;) {
		*open += e->br.state == BREAKER_OPEN;
		*half_open += e->br.state == BREAKER_HALF_OPEN;
		*paused += e->paused_until > now;
	}
	pthread_mutex_unlock(&t->mu);
}

size_t dispatch_endpoint_states(struct dispatch *d)
{
	return d != NULL ? dispatch_eps_count(dispatch_eps_of(d)) : 0;
}

int dispatch_connections_open(struct dispatch *d)
{
	return d != NULL ? atomic_load_explicit(&dispatch_eps_of(d)->conns_open,
						 memory_order_relaxed)
			 : 0;
}
