/* store_sqlite_check: what the SQLite backend checks on a database file
 * before it writes anything to it (docs/operations.md#faults-and-what-hookd-does): that the file is hookd's (or
 * new), that hookd can write it and the files SQLite makes beside it, and
 * that its pages are sound (quick_check / integrity_check). Every check
 * reads only: a refused file keeps its bytes, its mtime, and gets no -wal
 * or -shm beside it. The judgements are pure functions, unit-tested in
 * tests/unit/test_store_check.c. */
#ifndef HOOKD_STORE_SQLITE_CHECK_H
#define HOOKD_STORE_SQLITE_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* PRAGMA application_id of a database hookd made: "hook" in ASCII. */
#define SQ_APPLICATION_ID 0x686f6f6bu
#define SQ_APPLICATION_ID_TEXT "1752133483" /* the same, for PRAGMA */

/* What a database file is, as sq_identity_judge sees it. */
enum sq_ident {
	SQ_IDENT_NEW = 0, /* no file, an empty file, or an SQLite file with nothing in it */
	SQ_IDENT_HOOKD,   /* hookd's application_id */
	SQ_IDENT_ADOPT,   /* application_id 0, but an older hookd's schema: adopted */
	SQ_IDENT_FOREIGN, /* anything else: refused */
};

/* Judges a database from its application_id, user_version and the names
 * of its tables and views (sqlite_* left out). schema_version is the
 * newest schema this hookd knows. A file with application_id 0 is adopted
 * only if its user_version is a hookd version (1..schema_version) and its
 * tables are exactly hookd's for that version. On SQ_IDENT_FOREIGN (and
 * on a hookd file whose schema is newer than this hookd) why says what was
 * found; the return is then SQ_IDENT_FOREIGN. */
enum sq_ident sq_identity_judge(uint32_t app_id, int user_version, int schema_version,
				const char *const *tables, size_t n_tables, char *why,
				size_t whylen);

/* Writes the SQLite URI that opens path read-only ("file:...?mode=ro",
 * with "&immutable=1" if immutable), percent-encoding what a URI cannot
 * hold. Returns 0, or -1 if out is too small. */
int sq_ro_uri(const char *path, bool immutable, char *out, size_t outlen);

/* Checks that path is a database hookd may open: new, hookd's, or an older
 * hookd's (sq_identity_judge), reading it through a read-only connection
 * that creates nothing beside it. schema_version as above. Sets *is_new
 * (the file is absent or empty). Returns 0, or -1 with a one-line reason. */
int sq_check_identity(const char *path, int schema_version, bool *is_new, char *err,
		      size_t errlen);

/* Checks that hookd can write path, its -wal and -shm if present, and the
 * directory SQLite creates them in (a missing file: that the directory is
 * there and writable). Uses access(2) only, so it opens no descriptor on
 * the file (closing one would drop SQLite's locks). Returns 0, or -1 with a
 * one-line reason naming what to fix. */
int sq_check_writable(const char *path, char *err, size_t errlen);

/* Runs PRAGMA quick_check (full: integrity_check) on an existing file,
 * read-only. Returns 0 if it says "ok" (or the file is absent or empty), or
 * -1 with the first problem it reported. */
int sq_check_pages(const char *path, bool full, char *err, size_t errlen);

#endif
