/* Unit tests for the SQLite write-ahead log's checkpoints and bounds
 * (SQLite only: docs/operations.md#disk-space). Every connection goes
 * through a VFS of the test's own over the default one, which passes
 * everything on except when a test arms its gate: then it holds the next sync
 * of a database file a checkpoint makes, as a checkpointer thread
 * descheduled on a loaded machine holds the checkpoint lock (e2e
 * test_storage saw the log reach 10.8 MiB that way). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "test_store_db.h"

/* The gate: once armed, the next sync of a main database file waits until
 * the gate opens. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool armed, held, open;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, false};

static sqlite3_vfs *base; /* the default VFS, wrapped */
static sqlite3_vfs shim;

/* A file of the shim: its methods, then the base VFS's file. */
struct shim_file {
	sqlite3_file f;
	bool main_db;
};
#define REAL(p) ((sqlite3_file *)((struct shim_file *)(p) + 1))

static int shim_sync(sqlite3_file *f, int flags)
{
	if (((struct shim_file *)f)->main_db) {
		pthread_mutex_lock(&gate.mu);
		if (gate.armed) {
			gate.armed = false;
			gate.held = true;
			pthread_cond_broadcast(&gate.cv);
			while (!gate.open)
				pthread_cond_wait(&gate.cv, &gate.mu);
		}
		pthread_mutex_unlock(&gate.mu);
	}
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

/* Everything else goes to the base file as it is. */
static int shim_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int shim_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
	return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int shim_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
	return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int shim_truncate(sqlite3_file *f, sqlite3_int64 n)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), n);
}
static int shim_size(sqlite3_file *f, sqlite3_int64 *n)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), n);
}
static int shim_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int shim_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int shim_reserved(sqlite3_file *f, int *r)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r);
}
static int shim_control(sqlite3_file *f, int op, void *a)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, a);
}
static int shim_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int shim_chars(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int shim_shm_map(sqlite3_file *f, int i, int sz, int ext, void volatile **p)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), i, sz, ext, p);
}
static int shim_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void shim_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int shim_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int shim_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **p)
{
	return REAL(f)->pMethods->xFetch(REAL(f), o, n, p);
}
static int shim_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), o, p);
}

static const sqlite3_io_methods SHIM_METHODS = {
	3,	       shim_close,     shim_read,	 shim_write,	   shim_truncate,
	shim_sync,     shim_size,      shim_lock,	 shim_unlock,	   shim_reserved,
	shim_control,  shim_sector,    shim_chars,	 shim_shm_map,	   shim_shm_lock,
	shim_shm_barrier, shim_shm_unmap, shim_fetch, shim_unfetch,
};

static int shim_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out)
{
	(void)v;
	struct shim_file *s = (struct shim_file *)f;
	s->main_db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
	int rc = base->xOpen(base, name, REAL(f), flags, out);
	/* SQLite calls xClose only on a file whose pMethods is set. */
	f->pMethods = REAL(f)->pMethods != NULL ? &SHIM_METHODS : NULL;
	return rc;
}

static struct test_db tdb;
#define db_path (tdb.path)
#define db_url (tdb.url)
static struct store *st; /* a connection of the test's thread, as a CLI command's */

static void setup(void)
{
	base = sqlite3_vfs_find(NULL);
	cr_assert_not_null(base);
	cr_assert_geq(base->iVersion, 1);
	shim = *base;
	shim.zName = "hookd-test-gate";
	shim.szOsFile = (int)sizeof(struct shim_file) + base->szOsFile;
	shim.xOpen = shim_open;
	/* The default VFS from now on: every connection the store opens. */
	cr_assert_eq(sqlite3_vfs_register(&shim, 1), SQLITE_OK);
	test_db_make(&tdb, "hookd-store-wal");
	cr_assert(!tdb.pg, "SQLite only");
	st = test_db_open(&tdb);
}

static void teardown(void)
{
	test_db_close(&tdb, &st);
	sqlite3_vfs_unregister(&shim);
}

TestSuite(store_wal, .init = setup, .fini = teardown);

/* Commits n events of 8 KB each (about 60 log pages of 16 KiB) on w, in one
 * transaction, with ids from first on. */
static void commit_fat_events(struct store *w, int first, int n)
{
	static char data[8200];
	memset(data, 'p', sizeof data - 1);
	memcpy(data, "{\"p\":\"", 6);
	memcpy(data + sizeof data - 3, "\"}", 3);
	cr_assert_eq(store_begin(w), STORE_OK);
	for (int i = first; i < first + n; i++) {
		struct event e = {.type = "wal.test", .data = data, .created_at = 1};
		snprintf(e.id, sizeof e.id, "evt_wal_%d", i);
		cr_assert_eq(store_event_insert(w, &e), STORE_OK);
	}
	cr_assert_eq(store_commit(w), STORE_OK);
}

static off_t wal_bytes(void)
{
	char wal[4300];
	struct stat sb;
	snprintf(wal, sizeof wal, "%s-wal", db_path);
	return stat(wal, &sb) == 0 ? sb.st_size : 0;
}

/* Waits (10 s at most) until w's checkpointer has no run going or due. */
static void wait_ckpt_idle(struct store *w)
{
	struct store_wal_counts n;
	for (int i = 0; i < 10000; i++) {
		store_wal_counts(w, &n);
		if (n.ckpt_idle)
			return;
		usleep(1000);
	}
	cr_assert_fail("the checkpointer did not finish within 10 s");
}

/* The writer's commits run no checkpoint: its thread does them, and the log
 * still starts over at 4 MiB (256 pages) plus one commit. */
Test(store_wal, writer_checkpoints_on_its_own_thread)
{
	struct store *w = NULL;
	char err[256] = "";
	cr_assert_eq(store_open_writer(db_url, &w, err, sizeof err), STORE_OK, "%s", err);
	off_t largest = 0;
	for (int round = 0; round < 24; round++) { /* about 23 MiB of log in all */
		commit_fat_events(w, round * 100, 100);
		wait_ckpt_idle(w);
		if (wal_bytes() > largest)
			largest = wal_bytes();
	}
	struct store_wal_counts n;
	store_wal_counts(w, &n);
	cr_assert_eq(n.commits, 24);
	cr_assert_eq(n.self_ckpts, 0, "the writer checkpointed %llu times in its commits",
		     (unsigned long long)n.self_ckpts);
	cr_assert_geq(n.ckpt_runs, 4, "checkpointer runs: %llu", (unsigned long long)n.ckpt_runs);
	cr_assert_geq(n.ckpt_frames, 4 * 256, "frames copied: %llu",
		      (unsigned long long)n.ckpt_frames);
	cr_assert_lt(n.frames_max, 512, "longest log %llu pages", (unsigned long long)n.frames_max);
	cr_assert_leq(largest, 6 << 20, "the log reached %lld bytes", (long long)largest);
	store_close(w);
}

/* A connection of another thread (a CLI command, a test) checkpoints in its
 * own commits at 256 pages, as wal_autocheckpoint did. */
Test(store_wal, other_connections_checkpoint_in_their_commits)
{
	off_t largest = 0;
	for (int round = 0; round < 24; round++) {
		commit_fat_events(st, round * 100, 100);
		if (wal_bytes() > largest)
			largest = wal_bytes();
	}
	struct store_wal_counts n;
	store_wal_counts(st, &n);
	cr_assert_geq(n.self_ckpts, 4, "self checkpoints: %llu", (unsigned long long)n.self_ckpts);
	cr_assert_eq(n.ckpt_runs, 0);
	cr_assert_leq(largest, 6 << 20, "the log reached %lld bytes", (long long)largest);
}

/* A read that holds the log back: the checkpointer cannot copy past it, so
 * at 512 pages (8 MiB) the writer checkpoints in its commits again; once
 * the read ends the log starts over and is cut back to 4 MiB. */
Test(store_wal, writer_takes_over_at_the_cap_until_the_log_restarts)
{
	struct store *w = NULL;
	char err[256] = "";
	cr_assert_eq(store_open_writer(db_url, &w, err, sizeof err), STORE_OK, "%s", err);
	commit_fat_events(w, 0, 10);
	sqlite3 *r;
	cr_assert_eq(sqlite3_open(db_path, &r), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(r, "BEGIN; SELECT count(*) FROM events", NULL, NULL, NULL),
		     SQLITE_OK);
	struct store_wal_counts n = {0};
	int round = 1;
	for (; round < 40 && n.self_ckpts == 0; round++) {
		commit_fat_events(w, round * 100, 100);
		wait_ckpt_idle(w);
		store_wal_counts(w, &n);
	}
	cr_assert_gt(n.self_ckpts, 0, "the writer never took over (longest log %llu pages)",
		     (unsigned long long)n.frames_max);
	cr_assert_geq(n.frames_max, 512);
	cr_assert_gt(wal_bytes(), 8 << 20, "the read held the log back");

	cr_assert_eq(sqlite3_exec(r, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(r);
	for (int i = 0; i < 3; i++, round++) {
		commit_fat_events(w, round * 100, 100);
		wait_ckpt_idle(w);
	}
	cr_assert_leq(wal_bytes(), 4 << 20, "the log was not cut back: %lld bytes",
		      (long long)wal_bytes());
	store_close(w);
}

/* Opens the gate when the test's commits are done or after *arg seconds,
 * whichever comes first: a writer that waits at the cap for the held
 * checkpoint cannot say it is done. */
static bool commits_done;
static void *opener(void *arg)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += *(const int *)arg;
	pthread_mutex_lock(&gate.mu);
	while (!commits_done)
		if (pthread_cond_timedwait(&gate.cv, &gate.mu, &until) != 0)
			break;
	gate.open = true;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
	return NULL;
}

/* Opens a writer on the test's database and commits until the
 * checkpointer's run (past 256 pages) stops at the armed gate; then eight
 * more commits (about 480 pages, past the cap of 512 by several) while
 * opener(open_after_s) holds the gate. Returns the writer and, in *secs,
 * how long those eight commits took. */
static struct store *commit_past_a_held_checkpoint(int open_after_s, double *secs)
{
	struct store *w = NULL;
	char err[256] = "";
	cr_assert_eq(store_open_writer(tdb.url, &w, err, sizeof err), STORE_OK, "%s", err);
	commit_fat_events(w, 0, 10);
	pthread_mutex_lock(&gate.mu);
	gate.armed = true;
	pthread_mutex_unlock(&gate.mu);

	int round = 1;
	for (bool held = false; !held; round++) {
		cr_assert_lt(round, 20, "the checkpointer never reached the gate");
		commit_fat_events(w, round * 100, 100);
		for (int i = 0; i < 2000 && !held; i++) {
			pthread_mutex_lock(&gate.mu);
			held = gate.held;
			pthread_mutex_unlock(&gate.mu);
			if (!held)
				usleep(1000);
		}
	}
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, opener, &open_after_s), 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 8; i++, round++)
		commit_fat_events(w, round * 100, 100);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_mutex_lock(&gate.mu);
	commits_done = true;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
	pthread_join(t, NULL);
	*secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	return w;
}

/* The checkpointer's run is held (its sync of the database file waits) while
 * the writer's commits reach the cap (512 pages). The writer must wait for
 * that run and checkpoint itself, not commit on past the cap with its own
 * checkpoint refused (SQLITE_BUSY: one checkpoint at a time): the log
 * stays at the cap plus one commit. */
Test(store_wal, the_writer_waits_at_the_cap_for_a_checkpoint_in_progress)
{
	double secs;
	struct store *w = commit_past_a_held_checkpoint(1, &secs);
	struct store_wal_counts n;
	store_wal_counts(w, &n);
	cr_assert_gt(n.self_ckpts, 0, "the writer never checkpointed at the cap");
	cr_assert_lt(n.frames_max, 512 + 100,
		     "the log reached %llu pages: the writer committed on past the cap",
		     (unsigned long long)n.frames_max);
	store_close(w);
}

/* The wait is bounded (SQ_WAL_CAP_WAIT_MS, 2 s) and made once per run: a
 * checkpoint held longer (here until the commits end, 20 s at most) delays
 * the writer's commits by 2 s, then they go on, the log past the cap,
 * rather than hang or wait 2 s at every commit. */
Test(store_wal, the_writers_wait_at_the_cap_is_bounded)
{
	double secs;
	struct store *w = commit_past_a_held_checkpoint(20, &secs);
	cr_assert_geq(secs, 1.9, "the writer did not wait for the held checkpoint (%.2f s)", secs);
	struct store_wal_counts n;
	store_wal_counts(w, &n);
	cr_assert_eq(n.cap_waits_given_up, 1, "the writer gave up waiting %llu times for one run",
		     (unsigned long long)n.cap_waits_given_up);
	cr_assert_gt(n.frames_max, 512 + 100, "the log stayed at %llu pages",
		     (unsigned long long)n.frames_max);
	store_close(w);
}
