/* store_sqlite_ckpt: WAL checkpoints on a thread and connection of their
 * own (store_sqlite_ckpt.h; docs/operations.md#disk-space). */
#include "store_sqlite_ckpt.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "store_sqlite_internal.h"
#include "util.h"

struct sq_ckpt {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	sqlite3 *db; /* the thread's own connection */
	/* Under mu: a commit left the log past the threshold since the last
	 * run started; stop asked; the figures (ckpt_* of store_wal_counts). */
	bool due;
	bool running;
	bool paused; /* sq_ckpt_pause: the writer checkpoints itself */
	bool stopping;
	/* Runs started, and the run a pause last gave up waiting for: the
	 * writer waits for any one run once, not at every commit it lasts. */
	uint64_t run_seq, gave_up_on;
	struct store_wal_counts n;
	/* Thread only: the log's length and how much of it was copied after
	 * the last run, to count the frames each run copies. */
	int last_log, last_done;
};

/* One PASSIVE checkpoint; its figures go to k->n. */
static void ckpt_run(struct sq_ckpt *k)
{
	static struct log_limit limit;
	uint64_t dropped;
	int log_frames = -1, done = -1;
	int64_t t0 = mono_us();
	int rc = sqlite3_wal_checkpoint_v2(k->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames,
					   &done);
	uint64_t us = (uint64_t)(mono_us() - t0);
	uint64_t copied = 0;
	if (rc == SQLITE_OK && done >= 0) {
		/* A shorter log than last time: it started over in between. */
		bool restarted = log_frames < k->last_log || done < k->last_done;
		copied = (uint64_t)(restarted ? done : done - k->last_done);
		k->last_log = log_frames;
		k->last_done = done;
	} else if (rc != SQLITE_BUSY && log_limit_allow(&limit, 10000, &dropped)) {
		/* SQLITE_FULL included: the file could not grow; the next
		 * commit past the threshold tries again. */
		log_warn("store: wal checkpoint failed rc=%d err=\"%s\" not_logged=%llu", rc,
			 sqlite3_errmsg(k->db), (unsigned long long)dropped);
	}
	pthread_mutex_lock(&k->mu);
	k->n.ckpt_runs++;
	k->n.ckpt_us += us;
	if (us > k->n.ckpt_max_us)
		k->n.ckpt_max_us = us;
	k->n.ckpt_frames += copied;
	if (rc == SQLITE_BUSY) /* another checkpoint (the writer's) was running */
		k->n.ckpt_busy++;
	pthread_mutex_unlock(&k->mu);
}

static void *ckpt_thread(void *arg)
{
	struct sq_ckpt *k = arg;
	/* A name of its own, so top -H and profiles tell it from the others. */
	pthread_setname_np(pthread_self(), "hookd-ckpt");
	pthread_mutex_lock(&k->mu);
	for (;;) {
		while ((!k->due || k->paused) && !k->stopping)
			pthread_cond_wait(&k->cv, &k->mu);
		if (k->stopping)
			break;
		/* Commits during the run set it again: one more run then,
		 * for the frames they added. */
		k->due = false;
		k->running = true;
		k->run_seq++;
		pthread_mutex_unlock(&k->mu);
		ckpt_run(k);
		pthread_mutex_lock(&k->mu);
		k->running = false;
		pthread_cond_broadcast(&k->cv); /* a writer in sq_ckpt_pause */
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

/* The thread's connection: the writer's sync mode (a checkpoint fsyncs the
 * log before it copies and the file after), and a first read so the WAL is
 * open before the first checkpoint. */
static int ckpt_connect(struct sq_ckpt *k, const char *path, enum store_sync sync, char *err,
			size_t errlen)
{
	int rc = sqlite3_open_v2(path, &k->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(k->db, SQ_BUSY_TIMEOUT_MS);
		rc = sqlite3_exec(k->db,
				  sync == STORE_SYNC_NORMAL ? "PRAGMA synchronous = NORMAL"
							    : "PRAGMA synchronous = FULL",
				  NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(k->db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s for checkpoints: %s", path,
			 k->db ? sqlite3_errmsg(k->db) : sqlite3_errstr(rc));
		return STORE_ERROR;
	}
	return STORE_OK;
}

int sq_ckpt_start(const char *path, enum store_sync sync, struct sq_ckpt **out, char *err,
		  size_t errlen)
{
	*out = NULL;
	struct sq_ckpt *k = calloc(1, sizeof *k);
	if (k == NULL) {
		snprintf(err, errlen, "out of memory");
		return STORE_ERROR;
	}
	if (ckpt_connect(k, path, sync, err, errlen) != STORE_OK) {
		sqlite3_close(k->db);
		free(k);
		return STORE_ERROR;
	}
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
	if (pthread_create(&k->thread, NULL, ckpt_thread, k) != 0) {
		snprintf(err, errlen, "cannot start the checkpoint thread");
		pthread_mutex_destroy(&k->mu);
		pthread_cond_destroy(&k->cv);
		sqlite3_close(k->db);
		free(k);
		return STORE_ERROR;
	}
	*out = k;
	return STORE_OK;
}

void sq_ckpt_note(struct sq_ckpt *k, int frames)
{
	if (frames < SQ_WAL_CHECKPOINT_PAGES)
		return;
	pthread_mutex_lock(&k->mu);
	k->due = true;
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
}

void sq_ckpt_pause(struct sq_ckpt *k, int timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&k->mu);
	k->paused = true;
	while (k->running && k->gave_up_on != k->run_seq)
		if (pthread_cond_timedwait(&k->cv, &k->mu, &until) != 0 && k->running) {
			k->gave_up_on = k->run_seq; /* the writer tries anyway */
			k->n.cap_waits_given_up++;
			break;
		}
	pthread_mutex_unlock(&k->mu);
}

void sq_ckpt_resume(struct sq_ckpt *k)
{
	pthread_mutex_lock(&k->mu);
	k->paused = false;
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
}

void sq_ckpt_counts(struct sq_ckpt *k, struct store_wal_counts *out)
{
	pthread_mutex_lock(&k->mu);
	out->ckpt_runs += k->n.ckpt_runs;
	out->ckpt_us += k->n.ckpt_us;
	if (k->n.ckpt_max_us > out->ckpt_max_us)
		out->ckpt_max_us = k->n.ckpt_max_us;
	out->ckpt_frames += k->n.ckpt_frames;
	out->ckpt_busy += k->n.ckpt_busy;
	out->cap_waits_given_up += k->n.cap_waits_given_up;
	out->ckpt_idle = !k->due && !k->running;
	pthread_mutex_unlock(&k->mu);
}

void sq_ckpt_stop(struct sq_ckpt *k)
{
	if (k == NULL)
		return;
	pthread_mutex_lock(&k->mu);
	k->stopping = true;
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
	pthread_join(k->thread, NULL);
	int rc = sqlite3_close(k->db);
	if (rc != SQLITE_OK)
		log_error("store: sqlite close failed rc=%d (checkpoint connection)", rc);
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->cv);
	free(k);
}
