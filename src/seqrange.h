/* seqrange: a set of delivery seqs as the text of a hookd_pending
 * notification (docs/architecture.md#several-nodes-notifications): ranges
 * "a-b,c,d-e" in ascending order, each number a positive decimal. Pure
 * functions: the PostgreSQL backend encodes, the listener decodes. */
#ifndef HOOKD_SEQRANGE_H
#define HOOKD_SEQRANGE_H

#include <stddef.h>
#include <stdint.h>

/* Sorts seqs[0..n) in place, drops duplicates and writes them as ranges
 * into out (cap bytes, NUL included). Returns the length written, or -1 if
 * they do not fit (out then holds nothing usable: send "*" instead) or a
 * seq is not positive. n == 0 writes "". */
int seqrange_encode(int64_t *seqs, size_t n, char *out, size_t cap);

/* Parses text made by seqrange_encode into a malloc'd array *out of *n seqs
 * (ascending; caller frees; NULL when *n is 0). At most max seqs in all
 * (ranges expanded): more returns -2, nothing allocated (the caller then
 * rescans). Returns 0, -1 for text that is not such a list (empty text
 * included) or out of memory. */
int seqrange_decode(const char *text, size_t max, int64_t **out, size_t *n);

#endif
