/* seqrange: delivery seqs as "a-b,c,d-e" (see seqrange.h). */
#include "seqrange.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp_seq(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Appends "lo" or "lo-hi" (with a comma before unless first) at *at. */
static int put_range(char *out, size_t cap, size_t *at, int64_t lo, int64_t hi, bool first)
{
	int w = lo == hi ? snprintf(out + *at, cap - *at, "%s%" PRId64, first ? "" : ",", lo)
			 : snprintf(out + *at, cap - *at, "%s%" PRId64 "-%" PRId64,
				    first ? "" : ",", lo, hi);
	if (w < 0 || (size_t)w >= cap - *at)
		return -1;
	*at += (size_t)w;
	return 0;
}

int seqrange_encode(int64_t *seqs, size_t n, char *out, size_t cap)
{
	if (cap == 0)
		return -1;
	out[0] = '\0';
	qsort(seqs, n, sizeof *seqs, cmp_seq);
	size_t at = 0;
	for (size_t i = 0; i < n;) {
		if (seqs[i] <= 0)
			return -1;
		int64_t lo = seqs[i], hi = lo;
		while (++i < n && (seqs[i] == hi || seqs[i] == hi + 1))
			hi = seqs[i];
		if (put_range(out, cap, &at, lo, hi, at == 0) != 0)
			return -1;
	}
	return (int)at;
}

/* A positive decimal at *p (no sign, no leading zero, fits int64); moves
 * *p past it. -1 if there is none. */
static int read_num(const char **p, int64_t *v)
{
	const char *s = *p;
	if (*s < '1' || *s > '9')
		return -1;
	int64_t x = 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (x > (INT64_MAX - (*s - '0')) / 10)
			return -1;
		x = x * 10 + (*s - '0');
	}
	*v = x;
	*p = s;
	return 0;
}

/* Reads the ranges of text, checking they ascend, and writes their seqs
 * into dst (NULL: only counts them) and their number into *total; -2 past
 * max, -1 if text is not a list of ranges. */
static int walk(const char *text, size_t max, int64_t *dst, size_t *total)
{
	const char *p = text;
	int64_t last = 0;
	*total = 0;
	for (;;) {
		int64_t lo, hi;
		if (read_num(&p, &lo) != 0)
			return -1;
		hi = lo;
		if (*p == '-' && (p++, read_num(&p, &hi) != 0))
			return -1;
		if (lo <= last || hi < lo)
			return -1;
		if ((uint64_t)(hi - lo) + 1 > (uint64_t)(max - *total))
			return -2;
		for (int64_t s = lo; dst != NULL && s <= hi; s++)
			dst[*total + (size_t)(s - lo)] = s;
		*total += (size_t)(hi - lo) + 1;
		last = hi;
		if (*p == '\0')
			return 0;
		if (*p++ != ',')
			return -1;
	}
}

int seqrange_decode(const char *text, size_t max, int64_t **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	size_t total;
	int rc = walk(text, max, NULL, &total);
	if (rc != 0)
		return rc;
	int64_t *arr = malloc(total * sizeof *arr);
	if (arr == NULL)
		return -1;
	walk(text, max, arr, &total);
	*out = arr;
	*n = total;
	return 0;
}
