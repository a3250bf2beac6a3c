/* listen: the other nodes' notifications (see listen.h). */
#include "listen.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dispatch.h"
#include "epcache.h"
#include "log.h"
#include "seqrange.h"
#include "store.h"
#include "util.h"

#define LISTEN_WAIT_MS 200       /* longest wait for news: the stop's latency */
#define LISTEN_BACKOFF_MIN_MS 100
#define LISTEN_BACKOFF_MAX_MS 5000
#define LISTEN_SEQS_MAX 10000    /* seqs one notification may name (else a rescan) */
#define RELOAD_PAGE 1000         /* endpoints read per list page */

struct listen {
	struct listen_config cfg;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;       /* stop, or an op done */
	bool stop;
	int ops;                 /* submitted, done() not yet run */
	bool reload;             /* a reload failed: reload every endpoint again */
	struct store_listen *conn; /* the thread's */
};

/* A read of one endpoint (id) or of every endpoint (all) on the commit
 * thread, applied in memory by its done(). */
struct reload_op {
	struct commit_op op;
	struct listen *l;
	bool all;
	char id[ID_MAX];
	int rc;
	struct endpoint ep;      /* one */
	struct endpoint *eps;    /* all: malloc'd */
	size_t n, cap;
};

static void reload_free(struct reload_op *r)
{
	endpoint_clear(&r->ep);
	for (size_t i = 0; i < r->n; i++)
		endpoint_clear(&r->eps[i]);
	free(r->eps);
	r->eps = NULL;
	r->n = r->cap = 0;
}

/* Reads every endpoint, page by page, into r->eps. */
static int read_all(struct store *st, struct reload_op *r)
{
	char cursor[STORE_CURSOR_MAX] = "", next[STORE_CURSOR_MAX];
	do {
		struct endpoint *page = NULL;
		size_t n = 0;
		int rc = store_endpoint_list(st, cursor[0] ? cursor : NULL, RELOAD_PAGE, &page,
					     &n, next);
		struct endpoint *grown = rc == STORE_OK && n > 0
			? array_grow(r->eps, &r->cap, r->n + n, sizeof *grown, 64) : r->eps;
		if (rc != STORE_OK || (n > 0 && grown == NULL)) {
			for (size_t i = 0; i < n; i++)
				endpoint_clear(&page[i]);
			free(page);
			return rc != STORE_OK ? rc : STORE_ERROR;
		}
		r->eps = grown;
		if (n > 0) /* takes their contents */
			memcpy(r->eps + r->n, page, n * sizeof *page);
		r->n += n;
		free(page);
		memcpy(cursor, next, sizeof cursor);
	} while (cursor[0] != '\0');
	return STORE_OK;
}

static int reload_apply(struct store *st, struct commit_op *op)
{
	struct reload_op *r = (struct reload_op *)op;
	reload_free(r); /* a try rolled back with its group */
	r->rc = r->all ? read_all(st, r) : store_endpoint_get(st, r->id, &r->ep);
	return r->rc == STORE_ERROR ? STORE_ERROR : STORE_OK;
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(((const struct endpoint *)a)->id, ((const struct endpoint *)b)->id);
}

/* Every endpoint as stored now: the cache takes each, loses those not
 * stored any more, and the dispatcher pages everything again. */
static void apply_all(const struct epsync *s, struct reload_op *r)
{
	for (size_t i = 0; i < r->n; i++)
		epsync_put(s, &r->eps[i], false);
	if (r->n > 0)
		qsort(r->eps, r->n, sizeof *r->eps, cmp_id);
	size_t n = 0;
	struct ep_entry **cached = epcache_all(s->cache, &n);
	for (size_t i = 0; i < n; i++) {
		struct endpoint key;
		memcpy(key.id, cached[i]->id, ID_MAX);
		if (r->n == 0 || bsearch(&key, r->eps, r->n, sizeof *r->eps, cmp_id) == NULL)
			epsync_deleted(s, key.id);
		ep_entry_release(cached[i]);
	}
	free(cached);
	if (s->dispatch != NULL)
		dispatch_rescan(s->dispatch);
}

static void reload_done(struct commit_op *op, int rc)
{
	struct reload_op *r = (struct reload_op *)op;
	struct listen *l = r->l;
	const struct epsync *s = &l->cfg.sync;
	if (rc == STORE_OK && r->all && r->rc == STORE_OK) {
		apply_all(s, r);
	} else if (rc == STORE_OK && r->rc == STORE_OK) {
		epsync_put(s, &r->ep, false);
	} else if (rc == STORE_OK && r->rc == STORE_NOTFOUND) {
		struct ep_entry *e = epcache_get(s->cache, r->id);
		ep_entry_release(e);
		if (e != NULL)
			epsync_deleted(s, r->id);
	}
	bool failed = rc != STORE_OK || r->rc == STORE_ERROR;
	if (failed)
		log_warn("listen: reading changed endpoints failed rc=%d read=%d all=%d; every "
			 "endpoint is read again", rc, r->rc, r->all);
	reload_free(r);
	free(r);
	pthread_mutex_lock(&l->mu);
	l->reload |= failed;
	l->ops--;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu); /* l may be freed from here on */
}

/* Submits a read of endpoint id (NULL: of every endpoint, then a rescan). */
static void reload(struct listen *l, const char *id)
{
	struct reload_op *r = calloc(1, sizeof *r);
	if (r == NULL) {
		log_error("listen: out of memory reloading endpoints");
		pthread_mutex_lock(&l->mu);
		l->reload = true;
		pthread_mutex_unlock(&l->mu);
		return;
	}
	r->l = l;
	r->all = id == NULL;
	if (id != NULL)
		snprintf(r->id, sizeof r->id, "%s", id);
	r->op.apply = reload_apply;
	r->op.done = reload_done;
	r->op.rerun_ok = true; /* it only reads */
	pthread_mutex_lock(&l->mu);
	l->ops++;
	pthread_mutex_unlock(&l->mu);
	commit_submit(l->cfg.writer, &r->op);
}

/* One notification: "<node_id> <what>" on channel. */
static void on_note(const char *channel, const char *payload, void *arg)
{
	struct listen *l = arg;
	const char *sp = strchr(payload, ' ');
	size_t own = strlen(l->cfg.node_id);
	if (sp == NULL)
		return; /* not hookd's */
	if ((size_t)(sp - payload) == own && memcmp(payload, l->cfg.node_id, own) == 0)
		return; /* this node's own: it acted on it already */
	const char *what = sp + 1;
	struct dispatch *d = l->cfg.sync.dispatch;
	if (strcmp(channel, STORE_CHANNEL_PENDING) == 0) {
		int64_t *seqs = NULL;
		size_t n = 0;
		if (strcmp(what, "*") != 0 && seqrange_decode(what, LISTEN_SEQS_MAX, &seqs, &n) == 0)
			dispatch_fetch(d, seqs, n);
		else if (d != NULL)
			dispatch_rescan(d); /* "*", too many, or unreadable */
		free(seqs);
	} else if (strcmp(channel, STORE_CHANNEL_ENDPOINTS) == 0) {
		if (strcmp(what, "*") == 0)
			reload(l, NULL);
		else if (strlen(what) < ID_MAX)
			reload(l, what);
	}
}

/* Waits up to ms for the stop; true if it came. */
static bool stop_wait(struct listen *l, int64_t ms)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += (time_t)(ms / 1000);
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&l->mu);
	while (!l->stop && pthread_cond_timedwait(&l->cv, &l->mu, &t) == 0)
		;
	bool stop = l->stop;
	pthread_mutex_unlock(&l->mu);
	return stop;
}

/* Takes the stop flag and a pending reload-everything request. */
static bool take_flags(struct listen *l, bool *again)
{
	pthread_mutex_lock(&l->mu);
	bool stop = l->stop;
	*again = l->reload;
	l->reload = false;
	pthread_mutex_unlock(&l->mu);
	return stop;
}

/* Opens the connection; on success reloads everything (what was sent
 * while there was none is lost). Logs when the state changes. */
static bool connect_once(struct listen *l, bool *down)
{
	char err[256];
	if (store_listen_open(l->cfg.db_url, &l->conn, err, sizeof err) != STORE_OK) {
		if (!*down)
			log_warn("listen: cannot connect, retrying (100 ms doubling to 5 s): %s", err);
		*down = true;
		return false;
	}
	log_info("listen: connected channels=%s,%s node=%s", STORE_CHANNEL_PENDING,
		 STORE_CHANNEL_ENDPOINTS, l->cfg.node_id);
	*down = false;
	reload(l, NULL);
	dispatch_listening(l->cfg.sync.dispatch, true);
	return true;
}

static void *run(void *arg)
{
	struct listen *l = arg;
	int64_t backoff = 0;
	bool down = false, again = false;
	while (!take_flags(l, &again)) {
		if (l->conn == NULL) {
			if (backoff > 0 && stop_wait(l, backoff))
				break;
			if (!connect_once(l, &down)) {
				backoff = backoff == 0 ? LISTEN_BACKOFF_MIN_MS : backoff * 2;
				if (backoff > LISTEN_BACKOFF_MAX_MS)
					backoff = LISTEN_BACKOFF_MAX_MS;
				continue;
			}
			backoff = 0;
		} else if (again) {
			reload(l, NULL);
		}
		if (store_listen_wait(l->conn, LISTEN_WAIT_MS, on_note, l) != STORE_OK) {
			log_warn("listen: connection lost, reconnecting");
			dispatch_listening(l->cfg.sync.dispatch, false);
			store_listen_close(l->conn);
			l->conn = NULL;
			down = true;
			backoff = LISTEN_BACKOFF_MIN_MS;
		}
	}
	dispatch_listening(l->cfg.sync.dispatch, false);
	store_listen_close(l->conn);
	l->conn = NULL;
	return NULL;
}

int listen_start(const struct listen_config *cfg, struct listen **out, char *err, size_t errlen)
{
	struct listen *l = calloc(1, sizeof *l);
	if (l == NULL) {
		snprintf(err, errlen, "listen: out of memory");
		return -1;
	}
	l->cfg = *cfg;
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	if (pthread_create(&l->thread, NULL, run, l) != 0) {
		snprintf(err, errlen, "listen: cannot start the thread");
		pthread_cond_destroy(&l->cv);
		pthread_mutex_destroy(&l->mu);
		free(l);
		return -1;
	}
	pthread_setname_np(l->thread, "hookd-listen");
	*out = l;
	return 0;
}

void listen_stop(struct listen *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = true;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->thread, NULL);
	/* Its reload ops' done() touch l: the commit thread runs them soon. */
	pthread_mutex_lock(&l->mu);
	while (l->ops > 0)
		pthread_cond_wait(&l->cv, &l->mu);
	pthread_mutex_unlock(&l->mu);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l);
	log_info("listen: stopped");
}
