/* seqrange: the seq ranges of a hookd_pending notification. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "seqrange.h"

struct enc_case {
	int64_t in[8];
	size_t n;
	const char *out;
};

static const struct enc_case enc_cases[] = {
	{{0}, 0, ""},
	{{7}, 1, "7"},
	{{1, 2, 3}, 3, "1-3"},
	{{5, 3, 4, 10, 12, 11, 20}, 7, "3-5,10-12,20"},
	{{9, 9, 8, 8}, 4, "8-9"},           /* duplicates go */
	{{1, 3, 5}, 3, "1,3,5"},
	{{INT64_MAX, INT64_MAX - 1}, 2, "9223372036854775806-9223372036854775807"},
};

Test(seqrange, encodes_sorted_ranges)
{
	for (size_t i = 0; i < sizeof enc_cases / sizeof enc_cases[0]; i++) {
		int64_t in[8];
		char out[128];
		memcpy(in, enc_cases[i].in, sizeof in);
		int len = seqrange_encode(in, enc_cases[i].n, out, sizeof out);
		cr_assert_eq(len, (int)strlen(enc_cases[i].out), "case %zu", i);
		cr_assert_str_eq(out, enc_cases[i].out, "case %zu", i);
	}
}

Test(seqrange, refuses_what_does_not_fit_or_is_not_positive)
{
	int64_t in[3] = {10, 20, 30};
	char out[16];
	cr_assert_eq(seqrange_encode(in, 3, out, 8), -1); /* "10,20,30" needs 9 */
	cr_assert_eq(seqrange_encode(in, 3, out, 9), 8);
	int64_t zero[2] = {0, 1};
	char big[32];
	cr_assert_eq(seqrange_encode(zero, 2, big, sizeof big), -1);
}

Test(seqrange, decodes_what_it_encodes)
{
	int64_t in[2000];
	for (size_t i = 0; i < 2000; i++)
		in[i] = (int64_t)(i * 7 % 1500) + 1 + (i % 3 == 0 ? 5000 : 0);
	char text[16384];
	cr_assert_geq(seqrange_encode(in, 2000, text, sizeof text), 0);
	int64_t *out = NULL;
	size_t n = 0;
	cr_assert_eq(seqrange_decode(text, 100000, &out, &n), 0);
	/* in is sorted and deduplicated by the encoder. */
	size_t m = 0;
	for (size_t i = 0; i < 2000; i++)
		if (i == 0 || in[i] != in[m - 1])
			in[m++] = in[i];
	cr_assert_eq(n, m);
	cr_assert_eq(memcmp(out, in, m * sizeof *in), 0);
	free(out);
}

Test(seqrange, decodes_ranges)
{
	int64_t *out = NULL;
	size_t n = 0;
	cr_assert_eq(seqrange_decode("3-5,10,12-13", 100, &out, &n), 0);
	int64_t want[] = {3, 4, 5, 10, 12, 13};
	cr_assert_eq(n, 6);
	cr_assert_eq(memcmp(out, want, sizeof want), 0);
	free(out);
}

Test(seqrange, refuses_malformed_text)
{
	static const char *const bad[] = {
		"", "*", "a", "1,", ",1", "1--2", "5-3", "3,3", "4,2", "0", "01", "-1", "1 2", "1,,2",
		"99999999999999999999", "1-", "1-2-3", "2-3,3",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t *out = (int64_t *)1;
		size_t n = 9;
		cr_assert_eq(seqrange_decode(bad[i], 100, &out, &n), -1, "'%s'", bad[i]);
		cr_assert_null(out, "'%s'", bad[i]);
		cr_assert_eq(n, 0, "'%s'", bad[i]);
	}
}

Test(seqrange, bounds_the_expansion)
{
	int64_t *out = NULL;
	size_t n = 0;
	cr_assert_eq(seqrange_decode("1-100", 100, &out, &n), 0);
	cr_assert_eq(n, 100);
	free(out);
	cr_assert_eq(seqrange_decode("1-101", 100, &out, &n), -2);
	cr_assert_null(out);
	cr_assert_eq(seqrange_decode("1-50,60-110", 100, &out, &n), -2);
	cr_assert_eq(seqrange_decode("1-9223372036854775807", 100, &out, &n), -2);
	cr_assert_null(out);
}
