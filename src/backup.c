/* backup: `hookd backup [--db sqlite:PATH] DEST`, a consistent copy of the
 * database while `hookd serve` runs on it (docs/operations.md#backup). It
 * uses SQLite's online backup API in one step: one read transaction sees one
 * snapshot, and in WAL mode that never blocks the server's writes (a copy
 * taken in several steps would restart at every commit of a busy server).
 * The copy is written beside DEST under a temporary name, checked with
 * quick_check, made durable and then linked to DEST, so DEST is either
 * absent or complete, and an existing DEST is never overwritten. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cli.h"
#include "config.h"
#include "flags.h"
#include "store_sqlite_check.h"
#include "util.h"

#define DEFAULT_DB "sqlite:./hookd.db"
#define BACKUP_PATH_MAX 4096
#define BUSY_WAIT_MS 30000

static const char backup_usage[] =
	"usage: hookd backup [--db sqlite:PATH] DEST\n"
	"\n"
	"Copies the SQLite database to the new file DEST while hookd serve may run on it\n"
	"(SQLite's online backup: one consistent snapshot; the server keeps writing).\n"
	"DEST must not exist. The copy is checked (quick_check) and fsynced before it\n"
	"appears under its name; it is a database hookd serve --db sqlite:DEST opens.\n"
	"\n";

struct backup_args {
	const char *db;
	const char *dest;
};

static const struct flag_spec backup_opts[] = {
	{"db", FLAG_STRING, NULL, 0, 0, offsetof(struct backup_args, db),
	 "the database to copy (default: $HOOKD_DB, else " DEFAULT_DB ", as hookd serve)", NULL,
	 NULL, "sqlite:PATH", 0},
};

static int dest_positional(void *obj, const char *arg)
{
	struct backup_args *a = obj;
	if (a->dest != NULL) {
		fprintf(stderr, "hookd backup: one DEST only (got '%s' and '%s')\n", a->dest, arg);
		return -1;
	}
	a->dest = arg;
	return 0;
}

/* The directory part of path ("." for a bare name) into out. */
static void dir_of(const char *path, char *out, size_t outlen)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		snprintf(out, outlen, ".");
	else if (slash == path)
		snprintf(out, outlen, "/");
	else
		snprintf(out, outlen, "%.*s", (int)(slash - path), path);
}

/* The source: an existing hookd database, opened without creating anything.
 * Returns 0, or 1 after a message. */
static int open_source(const char *path, sqlite3 **db)
{
	sqlite3_stmt *s = NULL;
	*db = NULL;
	if (access(path, F_OK) != 0) {
		fprintf(stderr, "hookd backup: no database at %s: give the server's with --db "
				"sqlite:PATH (or $HOOKD_DB)\n", path);
		return 1;
	}
	if (sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		fprintf(stderr, "hookd backup: cannot open %s: %s\n", path, sqlite3_errmsg(*db));
		return 1;
	}
	sqlite3_busy_timeout(*db, BUSY_WAIT_MS);
	int64_t app_id = -1, version = 0;
	if (sqlite3_prepare_v2(*db, "SELECT (SELECT application_id FROM pragma_application_id), "
				    "(SELECT user_version FROM pragma_user_version)",
			       -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		app_id = sqlite3_column_int64(s, 0);
		version = sqlite3_column_int64(s, 1);
	}
	sqlite3_finalize(s);
	if (app_id != (int64_t)SQ_APPLICATION_ID && !(app_id == 0 && version > 0)) {
		fprintf(stderr, "hookd backup: %s is not a hookd database (%s)\n", path,
			app_id < 0 ? sqlite3_errmsg(*db) : "its application_id is not hookd's");
		return 1;
	}
	return 0;
}

/* Copies src into the new file tmp (mode 0600; *made once it exists) and
 * checks the copy. Returns 0 and the copy's page count, or 1 after a message. */
static int copy_to(sqlite3 *src, const char *tmp, int *pages, bool *made)
{
	sqlite3 *dst = NULL;
	sqlite3_stmt *s = NULL;
	int rc = 1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "hookd backup: cannot create %s: %s\n", tmp, strerror(errno));
		return 1;
	}
	close(fd);
	*made = true;
	if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK)
		goto fail;
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
	if (b == NULL)
		goto fail;
	int64_t deadline = mono_ms() + BUSY_WAIT_MS;
	int step;
	while ((step = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || step == SQLITE_LOCKED) {
		if (mono_ms() >= deadline)
			break;
		sqlite3_sleep(50);
	}
	*pages = sqlite3_backup_pagecount(b);
	if (sqlite3_backup_finish(b) != SQLITE_OK || step != SQLITE_DONE) {
		fprintf(stderr, "hookd backup: the copy failed: %s\n",
			step == SQLITE_DONE ? sqlite3_errmsg(dst) : sqlite3_errstr(step));
		goto out;
	}
	if (sqlite3_prepare_v2(dst, "PRAGMA quick_check(1)", -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW ||
	    strcmp((const char *)sqlite3_column_text(s, 0), "ok") != 0) {
		fprintf(stderr, "hookd backup: the copy fails quick_check: %s\n",
			s && sqlite3_column_text(s, 0) ? (const char *)sqlite3_column_text(s, 0)
						       : sqlite3_errmsg(dst));
		goto out;
	}
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "hookd backup: cannot write %s: %s\n", tmp,
		dst ? sqlite3_errmsg(dst) : "out of memory");
out:
	sqlite3_finalize(s);
	if (sqlite3_close(dst) != SQLITE_OK && rc == 0) {
		fprintf(stderr, "hookd backup: cannot close %s\n", tmp);
		rc = 1;
	}
	return rc;
}

/* fsyncs path (a file or a directory): 0, or -1 with errno. */
static int sync_path(const char *path, bool dir)
{
	int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* Makes the checked copy tmp durable and gives it the name dest, which must
 * not exist (link, not rename: an existing dest is never replaced). */
static int publish(const char *tmp, const char *dest)
{
	char dir[BACKUP_PATH_MAX];
	dir_of(dest, dir, sizeof dir);
	if (sync_path(tmp, false) != 0) {
		fprintf(stderr, "hookd backup: cannot fsync %s: %s\n", tmp, strerror(errno));
		return 1;
	}
	if (link(tmp, dest) != 0) {
		fprintf(stderr, "hookd backup: cannot name the copy %s: %s%s\n", dest,
			strerror(errno), errno == EEXIST ? " (hookd backup never overwrites)" : "");
		return 1;
	}
	unlink(tmp);
	if (sync_path(dir, true) != 0) {
		fprintf(stderr, "hookd backup: cannot fsync the directory %s: %s\n", dir,
			strerror(errno));
		return 1;
	}
	return 0;
}

/* DEST is new and its directory exists: 0, or 1 after a message. */
static int check_dest(const char *dest)
{
	struct stat sb;
	char dir[BACKUP_PATH_MAX];
	if (lstat(dest, &sb) == 0) {
		fprintf(stderr, "hookd backup: %s exists: hookd backup never overwrites; give a new "
				"name or remove it first\n", dest);
		return 1;
	}
	dir_of(dest, dir, sizeof dir);
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "hookd backup: the directory %s of %s does not exist: create it "
				"first\n", dir, dest);
		return 1;
	}
	return 0;
}

/* Parses argv (argv[0] is "backup"): 0, 1 after --help, 2 after a message. */
static int parse_args(int argc, char **argv, struct backup_args *a)
{
	memset(a, 0, sizeof *a);
	a->db = getenv("HOOKD_DB") ? getenv("HOOKD_DB") : DEFAULT_DB;
	struct flag_set fs = {.prog = "hookd backup", .usage = backup_usage, .specs = backup_opts,
			      .n = 1, .positional = dest_positional};
	int rc = flags_parse(&fs, argc, argv, 1, a);
	if (rc != 0)
		return rc == 1 ? 1 : 2;
	if (a->dest == NULL || *a->dest == '\0' || strlen(a->dest) >= BACKUP_PATH_MAX - 32) {
		fprintf(stderr, "hookd backup: give the path of the copy to make (hookd backup "
				"--help)\n");
		return 2;
	}
	return 0;
}

int backup_main(int argc, char **argv)
{
	struct backup_args a;
	sqlite3 *src = NULL;
	char tmp[BACKUP_PATH_MAX];
	int pages = 0;
	bool made = false;
	int rc = parse_args(argc, argv, &a);
	if (rc != 0)
		return rc == 1 ? 0 : rc;
	char *path = config_sqlite_path(a.db);
	if (path == NULL || *path == '\0') {
		fprintf(stderr, "hookd backup: --db must be sqlite:PATH or a file path (a PostgreSQL "
				"store is backed up with pg_dump)\n");
		free(path);
		return 2;
	}
	int64_t t0 = mono_ms();
	snprintf(tmp, sizeof tmp, "%s.tmp-%ld", a.dest, (long)getpid());
	rc = check_dest(a.dest) || open_source(path, &src) || copy_to(src, tmp, &pages, &made);
	if (rc == 0)
		rc = publish(tmp, a.dest);
	if (made)
		unlink(tmp); /* after a failure; gone already after publish */
	sqlite3_close(src);
	if (rc == 0) {
		struct stat sb;
		long long size = stat(a.dest, &sb) == 0 ? (long long)sb.st_size : -1;
		printf("backup: %s -> %s pages=%d bytes=%lld ms=%lld quick_check=ok\n", path, a.dest,
		       pages, size, (long long)(mono_ms() - t0));
	}
	free(path);
	return rc == 0 ? 0 : 1;
}
