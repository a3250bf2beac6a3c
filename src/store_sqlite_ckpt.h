/* store_sqlite_ckpt: the write-ahead log checkpointed off the writer.
 *
 * The writer's connection (store_open_writer) copies no log back into the
 * database file in its commits: its wal hook (store_sqlite.c) tells this
 * module how long the log is, and past SQ_WAL_CHECKPOINT_PAGES a thread of
 * its own (hookd-ckpt) runs a PASSIVE checkpoint on a connection of its
 * own. PASSIVE takes no lock the writer or a reader waits for: it copies
 * what no reader still needs and leaves the rest for the next run. The log
 * starts over from its beginning at the writer's next transaction once it
 * is all copied. Should the log still reach SQ_WAL_CAP_PAGES, the writer
 * checkpoints in its own commit, after pausing this thread (sq_ckpt_pause):
 * one checkpoint runs at a time. Private to the SQLite backend. */
#ifndef HOOKD_STORE_SQLITE_CKPT_H
#define HOOKD_STORE_SQLITE_CKPT_H

#include <stddef.h>

#include "store.h"

struct sq_ckpt;

/* Opens a connection of its own to the WAL database at path (which must
 * exist: open it with the writer first), with the writer's sync mode, and
 * starts the thread. STORE_OK and *out, or STORE_ERROR with a reason in
 * err (nothing left running). */
int sq_ckpt_start(const char *path, enum store_sync sync, struct sq_ckpt **out, char *err,
		  size_t errlen);

/* The writer's wal hook, after each commit: the log holds frames pages.
 * At SQ_WAL_CHECKPOINT_PAGES or more, wakes the thread (a mutex held for a
 * few instructions; never waits for a checkpoint). */
void sq_ckpt_note(struct sq_ckpt *k, int frames);

/* The writer at the cap (store_sqlite.c): waits up to timeout_ms for a run
 * in progress to end, then keeps the thread from starting another until
 * sq_ckpt_resume, so the writer's own checkpoint gets the lock. A run it
 * gave up on once is not waited for again. */
void sq_ckpt_pause(struct sq_ckpt *k, int timeout_ms);

/* Ends sq_ckpt_pause: the thread runs again when a commit asks. */
void sq_ckpt_resume(struct sq_ckpt *k);

/* Adds the thread's figures (ckpt_*) to *out. Any thread. */
void sq_ckpt_counts(struct sq_ckpt *k, struct store_wal_counts *out);

/* Stops and joins the thread (a run in progress finishes first), then
 * closes its connection. NULL: nothing. */
void sq_ckpt_stop(struct sq_ckpt *k);

#endif
