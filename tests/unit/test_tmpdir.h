/* test_tmpdir: a temporary directory of a unit test's own under $TMPDIR (or
 * /tmp), and its removal with everything in it. Header-only: each test binary
 * that needs it includes it. */
#ifndef HOOKD_TEST_TMPDIR_H
#define HOOKD_TEST_TMPDIR_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

static int test_tmpdir_rm_entry(const char *path, const struct stat *sb, int flag,
				struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Makes "$TMPDIR/<prefix>-XXXXXX" into dir (len bytes); the test fails if
 * it cannot. */
static inline void test_tmpdir_make(char *dir, size_t len, const char *prefix)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, len, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
	cr_assert_not_null(mkdtemp(dir), "mkdtemp %s", dir);
}

/* Removes dir and everything below it. */
static inline void test_tmpdir_remove(const char *dir)
{
	nftw(dir, test_tmpdir_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

#endif
