/* queue_refresh: the periodic re-read of the queue figures (see the
 * header). */
#include "queue_refresh.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "store.h"

struct queue_refresh {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC */
	bool stopping;
	struct store *st;
	struct queue_depth *q;
	struct store_health *health;
	int64_t every_ms;
};

/* With r->mu held: waits every_ms or until the stop. True if stopping. */
static bool wait_period(struct queue_refresh *r)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += r->every_ms / 1000;
	until.tv_nsec += (r->every_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (!r->stopping)
		if (pthread_cond_timedwait(&r->cv, &r->mu, &until) != 0)
			break; /* the time is up */
	return r->stopping;
}

static void *refresh_thread(void *arg)
{
	struct queue_refresh *r = arg;
	pthread_setname_np(pthread_self(), "hookd-queue");
	bool failing = false;
	pthread_mutex_lock(&r->mu);
	while (!wait_period(r)) {
		pthread_mutex_unlock(&r->mu);
		int rc = queue_depth_refresh(r->q, r->st);
		enum store_fault f = store_note_read(r->st, r->health);
		/* One line when refreshing starts failing for another reason
		 * than an unreachable server (the health says that one), one
		 * when it works again. */
		if (rc != STORE_OK && f != STORE_FAULT_UNREACHABLE && !failing)
			log_warn("queue figures: refreshing from the store failed rc=%d", rc);
		else if (rc == STORE_OK && failing)
			log_info("queue figures: refreshed from the store again");
		failing = rc != STORE_OK && (failing || f != STORE_FAULT_UNREACHABLE);
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static void refresh_free(struct queue_refresh *r)
{
	if (r->st != NULL)
		store_close(r->st);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

int queue_refresh_start(const char *db_url, struct queue_depth *q, struct store_health *h,
			int64_t every_ms, struct queue_refresh **out, char *err, size_t errlen)
{
	struct queue_refresh *r = calloc(1, sizeof *r);
	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&r->mu, NULL);
	r->q = q;
	r->health = h;
	r->every_ms = every_ms > 0 ? every_ms : QUEUE_REFRESH_MS;
	if (store_open(db_url, &r->st, err, errlen) != STORE_OK) {
		r->st = NULL;
		refresh_free(r);
		return -1;
	}
	if (pthread_create(&r->thread, NULL, refresh_thread, r) != 0) {
		snprintf(err, errlen, "cannot start the thread");
		refresh_free(r);
		return -1;
	}
	log_info("queue figures: refreshed from the store every %lld ms (other nodes may write it)",
		 (long long)r->every_ms);
	*out = r;
	return 0;
}

void queue_refresh_stop(struct queue_refresh *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->stopping = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	refresh_free(r);
}
