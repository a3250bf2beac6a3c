/* dblock: one `hookd serve` per SQLite file (docs/operations.md#faults-and-what-hookd-does). Two processes
 * writing one file each keep their own endpoint cache and queue, so one
 * acknowledges events the other never delivers. serve takes an exclusive
 * lock on "<db>-lock" before it opens the database and holds it until it
 * exits; the kernel drops it when the process ends, even by kill -9, so a
 * lock file left behind never blocks a restart. The file holds the PID of
 * the holder, for people; the holder named in a refusal comes from the
 * kernel's lock table. Several hookd processes on one store are for the
 * PostgreSQL backend (planned), not for SQLite. */
#ifndef HOOKD_DBLOCK_H
#define HOOKD_DBLOCK_H

#include <stddef.h>
#include <sys/types.h>

struct dblock;

/* Takes the lock of the database file db_path (the lock file is db_path
 * with "-lock" appended, created mode 0600 if missing) without waiting,
 * and writes this process's PID into it. Returns 0 and the held lock in
 * *out, or -1 with a one-line reason in err; if another process holds the
 * lock, *holder is its PID (else 0). The lock is per process (fcntl):
 * take it once, and do not open the lock file elsewhere. */
int dblock_acquire(const char *db_path, struct dblock **out, pid_t *holder, char *err,
		   size_t errlen);

/* Releases the lock and frees l (the file stays: removing it could race a
 * process about to lock it). l may be NULL. */
void dblock_release(struct dblock *l);

#endif
