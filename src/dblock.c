/* dblock: the one-writer lock of an SQLite database file (dblock.h). */
#include "dblock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOCK_SUFFIX "-lock"
#define LOCK_PATH_MAX 4096

struct dblock {
	int fd;
};

/* The PID written in the lock file, or 0 if it holds none. */
static pid_t pid_in_file(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	long v = strtol(buf, NULL, 10);
	return v > 0 ? (pid_t)v : 0;
}

/* Who holds the lock on fd: the kernel's answer, else the file's. */
static pid_t lock_holder(int fd)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK && fl.l_pid > 0)
		return fl.l_pid;
	return pid_in_file(fd);
}

/* Records this process in the lock file (for people; the lock is what counts). */
static int write_pid(int fd)
{
	char buf[32];
	int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len)
		return -1;
	return 0;
}

int dblock_acquire(const char *db_path, struct dblock **out, pid_t *holder, char *err,
		   size_t errlen)
{
	char path[LOCK_PATH_MAX];
	struct dblock *l = NULL;
	int fd = -1;
	*out = NULL;
	*holder = 0;
	int w = snprintf(path, sizeof path, "%s%s", db_path, LOCK_SUFFIX);
	if (w < 0 || (size_t)w >= sizeof path) {
		snprintf(err, errlen, "the database path is too long for its lock file");
		goto fail;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open the lock file %s: %s", path, strerror(errno));
		goto fail;
	}
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	if (fcntl(fd, F_SETLK, &fl) != 0) {
		if (errno != EAGAIN && errno != EACCES) {
			snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
			goto fail;
		}
		*holder = lock_holder(fd);
		snprintf(err, errlen,
			 "the database is in use by another hookd serve (pid %ld holds %s): one "
			 "process per SQLite file; stop it first (several processes on one store "
			 "is what the PostgreSQL backend is for)",
			 (long)*holder, path);
		goto fail;
	}
	if (write_pid(fd) != 0) {
		snprintf(err, errlen, "cannot write the lock file %s: %s", path, strerror(errno));
		goto fail;
	}
	l = malloc(sizeof *l);
	if (!l) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	l->fd = fd;
	*out = l;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

void dblock_release(struct dblock *l)
{
	if (!l)
		return;
	close(l->fd); /* drops the fcntl lock */
	free(l);
}
