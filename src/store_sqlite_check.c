/* store_sqlite_check: the read-only checks the SQLite backend runs on a
 * database file before writing to it (store_sqlite_check.h). */
#include "store_sqlite_check.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tables hookd's schema has had, with the schema version that added each. */
static const struct {
	const char *name;
	int since;
} hookd_tables[] = {
	{"endpoints", 1},  {"events", 1},   {"idempotency_keys", 1}, {"deliveries", 1},
	{"attempts", 1},   {"api_keys", 3}, {"endpoint_state", 8},
};
#define N_HOOKD_TABLES (sizeof hookd_tables / sizeof hookd_tables[0])

/* How many table names a refusal lists, and how long each may be. */
#define MAX_TABLES 64
#define TABLE_NAME_MAX 64
#define PATH_URI_MAX 8192

/* True if name is one of hookd's tables at schema version (none below 1). */
static bool is_hookd_table(const char *name, int version)
{
	if (version < 1)
		return false;
	for (size_t i = 0; i < N_HOOKD_TABLES; i++)
		if (strcmp(name, hookd_tables[i].name) == 0)
			return version >= hookd_tables[i].since;
	return false;
}

/* Appends the names of tables (not) hookd's at version to out, comma
 * separated; returns how many. */
static size_t list_tables(const char *const *tables, size_t n, int version, bool hookd, char *out,
			  size_t outlen)
{
	size_t found = 0, len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (is_hookd_table(tables[i], version) != hookd)
			continue;
		int w = snprintf(out + len, outlen - len, "%s%s", found ? ", " : "", tables[i]);
		if (w > 0 && (size_t)w < outlen - len)
			len += (size_t)w;
		found++;
	}
	return found;
}

/* Names the tables of hookd's version that are missing from tables. */
static size_t list_missing(const char *const *tables, size_t n, int version, char *out,
			   size_t outlen)
{
	size_t missing = 0, len = 0;
	out[0] = '\0';
	for (size_t t = 0; t < N_HOOKD_TABLES; t++) {
		if (version < hookd_tables[t].since)
			continue;
		bool have = false;
		for (size_t i = 0; i < n && !have; i++)
			have = strcmp(tables[i], hookd_tables[t].name) == 0;
		if (have)
			continue;
		int w = snprintf(out + len, outlen - len, "%s%s", missing ? ", " : "",
				 hookd_tables[t].name);
		if (w > 0 && (size_t)w < outlen - len)
			len += (size_t)w;
		missing++;
	}
	return missing;
}

/* application_id 0: adopted if it is an older hookd's database. */
static enum sq_ident judge_unmarked(int user_version, int schema_version,
				    const char *const *tables, size_t n, char *why, size_t whylen)
{
	char names[256];
	if (n == 0 && user_version == 0)
		return SQ_IDENT_NEW;
	if (user_version < 1 || user_version > schema_version) {
		list_tables(tables, n, 0, false, names, sizeof names);
		snprintf(why, whylen,
			 "not a hookd database (application_id 0, user_version %d, tables: %s)",
			 user_version, n ? names : "none");
		return SQ_IDENT_FOREIGN;
	}
	if (list_tables(tables, n, user_version, false, names, sizeof names) > 0) {
		snprintf(why, whylen,
			 "not a hookd database (application_id 0, user_version %d, tables hookd "
			 "does not own: %s)",
			 user_version, names);
		return SQ_IDENT_FOREIGN;
	}
	if (list_missing(tables, n, user_version, names, sizeof names) > 0) {
		snprintf(why, whylen,
			 "not a hookd database (application_id 0, user_version %d, hookd's tables "
			 "missing: %s)",
			 user_version, names);
		return SQ_IDENT_FOREIGN;
	}
	return SQ_IDENT_ADOPT;
}

enum sq_ident sq_identity_judge(uint32_t app_id, int user_version, int schema_version,
				const char *const *tables, size_t n_tables, char *why,
				size_t whylen)
{
	why[0] = '\0';
	if (app_id == SQ_APPLICATION_ID) {
		if (user_version > schema_version || user_version < 0) {
			snprintf(why, whylen,
				 "its schema version %d is newer than this hookd's (%d): run the "
				 "hookd that made it",
				 user_version, schema_version);
			return SQ_IDENT_FOREIGN;
		}
		return SQ_IDENT_HOOKD;
	}
	if (app_id != 0) {
		snprintf(why, whylen,
			 "not a hookd database: application_id 0x%08x belongs to another program "
			 "(hookd's is 0x%08x)",
			 app_id, SQ_APPLICATION_ID);
		return SQ_IDENT_FOREIGN;
	}
	return judge_unmarked(user_version, schema_version, tables, n_tables, why, whylen);
}

int sq_ro_uri(const char *path, bool immutable, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	static const char *const tail[] = {"?mode=ro", "?mode=ro&immutable=1"};
	size_t len = 0;
	const char *t = tail[immutable];
	if (outlen < 6)
		return -1;
	memcpy(out, "file:", 5);
	len = 5;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || strchr("/._-~", *p) != NULL;
		if (len + (plain ? 1 : 3) >= outlen)
			return -1;
		if (plain) {
			out[len++] = (char)*p;
		} else {
			out[len++] = '%';
			out[len++] = hex[*p >> 4];
			out[len++] = hex[*p & 15];
		}
	}
	if (len + strlen(t) + 1 > outlen)
		return -1;
	memcpy(out + len, t, strlen(t) + 1);
	return 0;
}

/* path + suffix into out; -1 if it does not fit. */
static int path_with(const char *path, const char *suffix, char *out, size_t outlen)
{
	int w = snprintf(out, outlen, "%s%s", path, suffix);
	return w < 0 || (size_t)w >= outlen ? -1 : 0;
}

/* Opens path read-only so that nothing is created beside it: a database
 * with no -wal file is opened immutable (nothing can be in a log that is
 * not there, and SQLite would otherwise create -wal and -shm for a WAL
 * file even read-only). */
static int open_ro(const char *path, sqlite3 **db, char *err, size_t errlen)
{
	char uri[PATH_URI_MAX], wal[PATH_URI_MAX];
	*db = NULL;
	if (path_with(path, "-wal", wal, sizeof wal) != 0 ||
	    sq_ro_uri(path, access(wal, F_OK) != 0, uri, sizeof uri) != 0) {
		snprintf(err, errlen, "the database path is too long");
		return -1;
	}
	int rc = sqlite3_open_v2(uri, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI |
					  SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open it read-only: %s",
			 *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
		sqlite3_close(*db);
		*db = NULL;
		return -1;
	}
	sqlite3_busy_timeout(*db, 5000);
	return 0;
}

/* Reads an integer pragma; -1 with SQLite's message if it fails. */
static int read_int(sqlite3 *db, const char *sql, int64_t *v, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		snprintf(err, errlen, "not an SQLite database hookd can read (%s)",
			 sqlite3_errmsg(db));
		sqlite3_finalize(s);
		return -1;
	}
	*v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return 0;
}

/* The names of the tables and views, sqlite_* left out, at most MAX_TABLES. */
static int read_tables(sqlite3 *db, char names[MAX_TABLES][TABLE_NAME_MAX], size_t *n, char *err,
		       size_t errlen)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db,
				    "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view')"
				    " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
				    -1, &s, NULL);
	*n = 0;
	while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(s, 0);
		if (*n < MAX_TABLES)
			snprintf(names[(*n)++], TABLE_NAME_MAX, "%s", t ? t : "");
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "not an SQLite database hookd can read (%s)",
			 sqlite3_errmsg(db));
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	return 0;
}

/* Reads what sq_identity_judge needs from an open connection and judges. */
static int judge_db(sqlite3 *db, int schema_version, bool *is_new, char *err, size_t errlen)
{
	char(*names)[TABLE_NAME_MAX] = calloc(MAX_TABLES, sizeof *names);
	const char *ptrs[MAX_TABLES];
	int64_t app_id = 0, version = 0;
	size_t n = 0;
	int rc = -1;
	if (!names) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (read_int(db, "PRAGMA application_id", &app_id, err, errlen) != 0 ||
	    read_int(db, "PRAGMA user_version", &version, err, errlen) != 0 ||
	    read_tables(db, names, &n, err, errlen) != 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		ptrs[i] = names[i];
	enum sq_ident id = sq_identity_judge((uint32_t)app_id, (int)version, schema_version, ptrs,
					     n, err, errlen);
	if (id != SQ_IDENT_FOREIGN) {
		*is_new = id == SQ_IDENT_NEW;
		rc = 0;
	}
out:
	free(names);
	return rc;
}

int sq_check_identity(const char *path, int schema_version, bool *is_new, char *err,
		      size_t errlen)
{
	struct stat sb;
	sqlite3 *db = NULL;
	*is_new = false;
	if (stat(path, &sb) != 0) {
		if (errno == ENOENT) {
			*is_new = true;
			return 0;
		}
		snprintf(err, errlen, "cannot stat it: %s", strerror(errno));
		return -1;
	}
	if (S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "it is a directory: --db names the database file, e.g. "
				      "sqlite:%s/hookd.db", path);
		return -1;
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "it is not a regular file");
		return -1;
	}
	if (sb.st_size == 0) {
		*is_new = true;
		return 0;
	}
	if (open_ro(path, &db, err, errlen) != 0)
		return -1;
	int rc = judge_db(db, schema_version, is_new, err, errlen);
	sqlite3_close(db);
	return rc;
}

/* The directory part of path ("." for a bare name) into out. */
static void dir_of(const char *path, char *out, size_t outlen)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(out, outlen, ".");
	else if (slash == path)
		snprintf(out, outlen, "/");
	else
		snprintf(out, outlen, "%.*s", (int)(slash - path), path);
}

/* Why writing failed, with what to do about it. */
static const char *fix_for(int e)
{
	switch (e) {
	case EROFS:
		return "the file system is mounted read-only: remount it read-write";
	case EPERM:
		return "the immutable attribute is set: chattr -i";
	case EACCES:
		return "give hookd's user write permission";
	default:
		return "make it writable";
	}
}

/* If what exists, it must be writable; -1 with a reason if not. */
static int writable_if_there(const char *what, const char *kind, char *err, size_t errlen)
{
	if (access(what, F_OK) != 0)
		return 0;
	if (access(what, R_OK | W_OK) == 0)
		return 0;
	int e = errno;
	snprintf(err, errlen, "the %s %s is not writable (%s): %s", kind, what, strerror(e),
		 fix_for(e));
	return -1;
}

int sq_check_writable(const char *path, char *err, size_t errlen)
{
	char dir[PATH_URI_MAX], side[PATH_URI_MAX];
	dir_of(path, dir, sizeof dir);
	if (access(dir, F_OK) != 0) {
		int e = errno;
		if (e == ENOENT)
			snprintf(err, errlen, "its directory %s does not exist: create it (mkdir -p "
					      "%s) or correct --db", dir, dir);
		else
			snprintf(err, errlen, "its directory %s cannot be used: %s", dir, strerror(e));
		return -1;
	}
	if (access(dir, W_OK | X_OK) != 0) {
		int e = errno;
		snprintf(err, errlen,
			 "its directory %s is not writable (%s): SQLite creates the -wal and -shm "
			 "files there; %s",
			 dir, strerror(e), fix_for(e));
		return -1;
	}
	if (writable_if_there(path, "database file", err, errlen) != 0)
		return -1;
	static const char *const sides[] = {"-wal", "-shm"};
	for (size_t i = 0; i < 2; i++) {
		if (path_with(path, sides[i], side, sizeof side) != 0) {
			snprintf(err, errlen, "the database path is too long");
			return -1;
		}
		if (writable_if_there(side, "file", err, errlen) != 0)
			return -1;
	}
	return 0;
}

int sq_check_pages(const char *path, bool full, char *err, size_t errlen)
{
	struct stat sb;
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	const char *what = full ? "integrity_check" : "quick_check";
	int rc = -1;
	if (stat(path, &sb) != 0 || sb.st_size == 0)
		return 0; /* nothing there yet (the identity check saw why) */
	if (open_ro(path, &db, err, errlen) != 0)
		return -1;
	/* One problem is enough to refuse; the first says where to look. */
	int step = sqlite3_prepare_v2(db, full ? "PRAGMA integrity_check(1)" : "PRAGMA quick_check(1)",
				      -1, &s, NULL);
	if (step == SQLITE_OK)
		step = sqlite3_step(s);
	if (step != SQLITE_ROW) {
		snprintf(err, errlen, "%s could not run: %s", what, sqlite3_errmsg(db));
		goto out;
	}
	const char *res = (const char *)sqlite3_column_text(s, 0);
	if (!res || strcmp(res, "ok") != 0) {
		snprintf(err, errlen, "%s failed: %s: restore the database from a backup", what,
			 res ? res : "(no answer)");
		/* SQLite's report spans lines; the refusal is one. */
		for (char *p = err; *p; p++)
			if (*p == '\n' || *p == '\r' || *p == '\t')
				*p = ' ';
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(s);
	sqlite3_close(db);
	return rc;
}
