/* store_sqlite_reads: bulk reads for the dispatcher (see store_sqlite_reads.h).
 * Outside a transaction every SELECT is its own read transaction: it takes
 * the WAL read lock, checks the WAL index and, when another connection
 * committed since, drops its page cache. A batch of reads inside one BEGIN
 * pays that once.
 *
 * The events of a batch are mostly neighbours: a backlog is delivered in
 * the order it was ingested, and event ids grow with time. So they are
 * read in one pass over the id index, from the smallest wanted id to the
 * largest, rather than one lookup each (a lookup per event was a third of
 * the dispatcher's time while it drained a backlog). The pass reads at
 * most RANGE_ROWS_PER_ID rows per wanted id; whatever it did not reach is
 * looked up one by one, so ids far apart cost no more than before. */
#include "store_sqlite_reads.h"

#include <stdlib.h>
#include <string.h>

#include "store_sqlite_internal.h"

#define RANGE_CHUNK 64       /* ids sorted and read in one pass */
#define RANGE_ROWS_PER_ID 4  /* rows a pass may read per wanted id */

/* Sorts order[0..n) so that ids[order[i]] ascend (strcmp, the id index's
 * BINARY order). Insertion sort: n is small and the ids mostly sorted. */
static void sort_ids(const char *const *ids, size_t *order, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		size_t v = order[i], j = i;
		while (j > 0 && strcmp(ids[order[j - 1]], ids[v]) > 0) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = v;
	}
}

/* Reads the n (<= RANGE_CHUNK) events of ids into out/rcs: one pass over
 * the id index, then lookups for what the pass did not reach. */
static void read_chunk(struct sq *c, const char *const *ids, size_t n, struct event *out,
		       int *rcs)
{
	size_t order[RANGE_CHUNK];
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	sort_ids(ids, order, n);
	size_t j = 0; /* wanted ids below order[j] are settled */
	sqlite3_stmt *s = n > 1 ? sq_stmt_get(c, S_EV_RANGE) : NULL;
	if (s != NULL) {
		sq_bind_text(s, 1, ids[order[0]]);
		sq_bind_text(s, 2, ids[order[n - 1]]);
		sqlite3_bind_int64(s, 3, (sqlite3_int64)(n * RANGE_ROWS_PER_ID));
		while (j < n && sqlite3_step(s) == SQLITE_ROW) {
			const char *row = (const char *)sqlite3_column_text(s, 0);
			if (row == NULL)
				break;
			/* The pass is in id order: a wanted id below this row
			 * is not in the table. */
			while (j < n && strcmp(ids[order[j]], row) < 0) {
				memset(&out[order[j]], 0, sizeof out[order[j]]);
				rcs[order[j++]] = STORE_NOTFOUND;
			}
			while (j < n && strcmp(ids[order[j]], row) == 0) {
				rcs[order[j]] = sq_event_row(s, &out[order[j]]);
				j++;
			}
		}
		sq_stmt_done(s);
	}
	/* Past the pass's end (its row limit, an error, or a single id): the
	 * ids from order[j] on are the ones it did not settle. */
	for (; j < n; j++)
		rcs[order[j]] = sq_event_get(c, ids[order[j]], &out[order[j]]);
}

void sq_event_get_many(void *conn, const char *const *ids, size_t n, struct event *out,
		       int *rcs)
{
	struct sq *c = conn;
	/* If BEGIN fails the reads still work, each in its own transaction.
	 * Prepared statements: sqlite3_exec parsed the SQL on every call. */
	sqlite3_stmt *begin = sq_stmt_get(c, S_BEGIN_READ);
	bool txn = begin != NULL && sq_exec_stmt(c, begin, "read_begin") == STORE_OK;
	for (size_t i = 0; i < n; i += RANGE_CHUNK)
		read_chunk(c, ids + i, n - i < RANGE_CHUNK ? n - i : RANGE_CHUNK, out + i, rcs + i);
	if (!txn)
		return;
	sqlite3_stmt *end = sq_stmt_get(c, S_COMMIT);
	if (end == NULL || sq_exec_stmt(c, end, "read_commit") != STORE_OK) {
		sqlite3_stmt *undo = sq_stmt_get(c, S_ROLLBACK);
		if (undo != NULL)
			sq_exec_stmt(c, undo, "read_rollback");
	}
}
