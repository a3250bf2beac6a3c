/* store_sqlite_check: which database files hookd adopts (a table of
 * application_id / user_version / tables), the read-only URI, the checks
 * on real files (nothing beside them changes), and dblock: one holder at a
 * time, named in the refusal, gone with its process. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dblock.h"
#include "store.h"
#include "store_health.h"
#include "store_sqlite_check.h"

#define V 6 /* the schema version these cases assume hookd knows */

struct ident_case {
	const char *name;
	uint32_t app_id;
	int user_version;
	const char *tables[8];
	enum sq_ident want;
	const char *why_has; /* a part of the reason, for refusals */
};

static const struct ident_case ident_cases[] = {
	{"empty sqlite file", 0, 0, {NULL}, SQ_IDENT_NEW, NULL},
	{"hookd's", SQ_APPLICATION_ID, V, {"endpoints", "events"}, SQ_IDENT_HOOKD, NULL},
	{"hookd's, older version", SQ_APPLICATION_ID, 2, {"endpoints"}, SQ_IDENT_HOOKD, NULL},
	{"hookd's, newer than us", SQ_APPLICATION_ID, V + 1, {NULL}, SQ_IDENT_FOREIGN, "newer"},
	{"older hookd v6", 0, V,
	 {"api_keys", "attempts", "deliveries", "endpoints", "events", "idempotency_keys"},
	 SQ_IDENT_ADOPT, NULL},
	{"older hookd v2 (no api_keys yet)", 0, 2,
	 {"attempts", "deliveries", "endpoints", "events", "idempotency_keys"}, SQ_IDENT_ADOPT,
	 NULL},
	{"v2 with api_keys", 0, 2,
	 {"api_keys", "attempts", "deliveries", "endpoints", "events", "idempotency_keys"},
	 SQ_IDENT_FOREIGN, "api_keys"},
	{"another app", 0, 0, {"users"}, SQ_IDENT_FOREIGN, "tables: users"},
	{"a conflicting table", 0, 0, {"endpoints"}, SQ_IDENT_FOREIGN, "tables: endpoints"},
	{"hookd's tables and users", 0, V,
	 {"api_keys", "attempts", "deliveries", "endpoints", "events", "idempotency_keys", "users"},
	 SQ_IDENT_FOREIGN, "does not own: users"},
	{"hookd version, tables missing", 0, 3, {"endpoints"}, SQ_IDENT_FOREIGN, "missing: events"},
	{"unknown user_version", 0, 99, {"endpoints"}, SQ_IDENT_FOREIGN, "user_version 99"},
	{"another app's id", 42, 0, {NULL}, SQ_IDENT_FOREIGN, "application_id 0x0000002a"},
};

Test(store_check, identity_table)
{
	for (size_t i = 0; i < sizeof ident_cases / sizeof ident_cases[0]; i++) {
		const struct ident_case *c = &ident_cases[i];
		size_t n = 0;
		while (n < 8 && c->tables[n])
			n++;
		char why[512];
		enum sq_ident got =
			sq_identity_judge(c->app_id, c->user_version, V, c->tables, n, why, sizeof why);
		cr_expect_eq(got, c->want, "%s: got %d want %d (%s)", c->name, got, c->want, why);
		if (c->why_has)
			cr_expect(strstr(why, c->why_has) != NULL, "%s: reason \"%s\" lacks \"%s\"",
				  c->name, why, c->why_has);
	}
}

Test(store_check, ro_uri)
{
	char out[128];
	cr_assert_eq(sq_ro_uri("/var/lib/hookd/h.db", false, out, sizeof out), 0);
	cr_assert_str_eq(out, "file:/var/lib/hookd/h.db?mode=ro");
	cr_assert_eq(sq_ro_uri("a b?c#d%e.db", true, out, sizeof out), 0);
	cr_assert_str_eq(out, "file:a%20b%3Fc%23d%25e.db?mode=ro&immutable=1");
	cr_assert_eq(sq_ro_uri("/a/very/long/path.db", false, out, 20), -1);
}

static char dir[4096];

static void mkdir_tmp(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/hookd-check-XXXXXX", tmp ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

/* Makes path an SQLite file with one table of another program, in WAL mode. */
static void make_foreign(const char *path)
{
	sqlite3 *db;
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db,
				  "PRAGMA journal_mode = WAL; CREATE TABLE users (id INTEGER);"
				  "INSERT INTO users VALUES (1)",
				  NULL, NULL, NULL),
		     SQLITE_OK);
	cr_assert_eq(sqlite3_close(db), SQLITE_OK);
}

Test(store_check, foreign_file_refused_and_nothing_created, .init = mkdir_tmp, .fini = rm_tmp)
{
	char path[4200], side[4300], err[512];
	bool is_new = true;
	snprintf(path, sizeof path, "%s/app.db", dir);
	make_foreign(path);
	struct stat before, after;
	cr_assert_eq(stat(path, &before), 0);
	cr_assert_eq(sq_check_identity(path, V, &is_new, err, sizeof err), -1);
	cr_expect(strstr(err, "users") != NULL, "%s", err);
	cr_assert_eq(sq_check_pages(path, false, err, sizeof err), 0, "%s", err);
	cr_assert_eq(stat(path, &after), 0);
	cr_expect_eq(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
	cr_expect_eq(before.st_size, after.st_size);
	snprintf(side, sizeof side, "%s-wal", path);
	cr_expect_neq(access(side, F_OK), 0, "a -wal appeared");
	snprintf(side, sizeof side, "%s-shm", path);
	cr_expect_neq(access(side, F_OK), 0, "a -shm appeared");
}

Test(store_check, absent_and_empty_files_are_new, .init = mkdir_tmp, .fini = rm_tmp)
{
	char path[4200], err[512];
	bool is_new = false;
	snprintf(path, sizeof path, "%s/new.db", dir);
	cr_assert_eq(sq_check_identity(path, V, &is_new, err, sizeof err), 0, "%s", err);
	cr_assert(is_new);
	cr_assert_eq(sq_check_writable(path, err, sizeof err), 0, "%s", err);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	is_new = false;
	cr_assert_eq(sq_check_identity(path, V, &is_new, err, sizeof err), 0, "%s", err);
	cr_assert(is_new);
	snprintf(path, sizeof path, "%s/no/such/dir/x.db", dir);
	cr_assert_eq(sq_check_writable(path, err, sizeof err), -1);
	cr_expect(strstr(err, "directory") != NULL, "%s", err);
}

Test(store_check, not_sqlite_refused, .init = mkdir_tmp, .fini = rm_tmp)
{
	char path[4200], err[512];
	bool is_new;
	snprintf(path, sizeof path, "%s/notes.txt", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("these are not the pages you are looking for\n", f);
	fclose(f);
	cr_assert_eq(sq_check_identity(path, V, &is_new, err, sizeof err), -1);
	cr_expect(strstr(err, "not an SQLite database") != NULL, "%s", err);
}

/* Contention and kill -9 need a second process: tests/e2e/test_dbtrust.py
 * runs two serves (fcntl locks are per process, and Criterion's runner does
 * not take a forked holder kindly). Here: the file and its PID. */
Test(store_check, lock_records_the_pid_and_is_taken_again_after_release, .init = mkdir_tmp,
     .fini = rm_tmp)
{
	char path[4200], lockfile[4300], err[512], buf[32] = "";
	struct dblock *l = NULL;
	pid_t holder = -1;
	snprintf(path, sizeof path, "%s/h.db", dir);
	snprintf(lockfile, sizeof lockfile, "%s-lock", path);
	/* A stale file (a PID of a process long gone) does not block. */
	FILE *f = fopen(lockfile, "w");
	cr_assert_not_null(f);
	fputs("999999\n", f);
	fclose(f);
	cr_assert_eq(dblock_acquire(path, &l, &holder, err, sizeof err), 0, "%s", err);
	cr_assert_eq(holder, 0);
	f = fopen(lockfile, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(buf, sizeof buf, f));
	fclose(f);
	cr_expect_eq(strtol(buf, NULL, 10), (long)getpid());
	dblock_release(l);
	cr_assert_eq(dblock_acquire(path, &l, &holder, err, sizeof err), 0, "%s", err);
	dblock_release(l);
	/* One it creates is the owner's only. */
	struct stat sb;
	snprintf(path, sizeof path, "%s/fresh.db", dir);
	snprintf(lockfile, sizeof lockfile, "%s-lock", path);
	cr_assert_eq(dblock_acquire(path, &l, &holder, err, sizeof err), 0, "%s", err);
	cr_assert_eq(stat(lockfile, &sb), 0);
	cr_expect_eq(sb.st_mode & 0777, 0600);
	dblock_release(l);
	snprintf(path, sizeof path, "%s/no/such/dir/h.db", dir);
	cr_assert_eq(dblock_acquire(path, &l, &holder, err, sizeof err), -1);
	cr_expect(strstr(err, "cannot open the lock file") != NULL, "%s", err);
}

/* Reads rootpage of an index of path (read-only, immutable: creates nothing). */
static int rootpage_of(const char *path, const char *name)
{
	char uri[4400];
	sqlite3 *db;
	sqlite3_stmt *s;
	snprintf(uri, sizeof uri, "file:%s?mode=ro&immutable=1", path);
	cr_assert_eq(sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL),
		     SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
					-1, &s, NULL),
		     SQLITE_OK);
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
	int page = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return page;
}

/* A statement that finds the file damaged turns the store's health to
 * corrupt (any connection, after store_set_health). */
Test(store_check, damage_found_by_a_read_sets_corrupt, .init = mkdir_tmp, .fini = rm_tmp)
{
	char path[4200], url[4300], err[512];
	struct store *st = NULL;
	snprintf(path, sizeof path, "%s/h.db", dir);
	snprintf(url, sizeof url, "sqlite:%s", path);
	cr_assert_eq(store_open(url, &st, err, sizeof err), STORE_OK, "%s", err);
	struct event e = {.type = "a.b", .data = "{}", .created_at = 1};
	snprintf(e.id, sizeof e.id, "evt_1");
	cr_assert_eq(store_event_insert(st, &e), STORE_OK);
	store_close(st); /* the last connection: checkpointed, no -wal */

	int page = rootpage_of(path, "sqlite_autoindex_events_1");
	unsigned char junk[16384];
	memset(junk, 0xa5, sizeof junk);
	junk[0] = 0; /* no b-tree page type */
	int fd = open(path, O_WRONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, junk, sizeof junk, (off_t)(page - 1) * (off_t)sizeof junk),
		     (ssize_t)sizeof junk);
	close(fd);

	struct store_health *h = store_health_new();
	store_set_health(h);
	cr_assert_eq(store_open(url, &st, err, sizeof err), STORE_OK, "%s", err);
	cr_assert_not(store_health_has(h, STORE_COND_CORRUPT));
	struct event got = {0};
	cr_assert_eq(store_event_get(st, "evt_1", &got), STORE_ERROR);
	cr_assert(store_health_has(h, STORE_COND_CORRUPT));
	struct store_health_view v;
	store_health_read(h, &v);
	cr_expect_eq(v.level, STORE_HEALTH_FAILING);
	cr_expect(strstr(v.reason, "damaged") != NULL, "%s", v.reason);
	cr_assert_eq(sq_check_pages(path, false, err, sizeof err), -1);
	cr_expect(strchr(err, '\n') == NULL, "%s", err);
	store_close(st);
	store_set_health(NULL);
	store_health_free(h);
}
