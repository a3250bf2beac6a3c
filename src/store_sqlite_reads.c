/* store_sqlite_reads: bulk reads for the dispatcher (see store_sqlite_reads.h).
 * Outside a transaction every SELECT is its own read transaction: it takes
 * the WAL read lock, checks the WAL index and, when another connection
 * committed since, drops its page cache. A batch of reads inside one BEGIN
 * pays that once. */
#include "store_sqlite_reads.h"

#include "store_sqlite_internal.h"

void sq_event_get_many(void *conn, const char *const *ids, size_t n, struct event *out,
		       int *rcs)
{
	struct sq *c = conn;
	/* If BEGIN fails the reads still work, each in its own transaction. */
	bool txn = sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
	for (size_t i = 0; i < n; i++)
		rcs[i] = sq_event_get(conn, ids[i], &out[i]);
	if (txn && sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}
