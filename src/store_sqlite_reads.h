/* store_sqlite_reads: bulk reads of the SQLite backend (its table's
 * event_get_many). */
#ifndef HOOKD_STORE_SQLITE_READS_H
#define HOOKD_STORE_SQLITE_READS_H

#include <stddef.h>

#include "store.h"

/* store_event_get_many for SQLite: the reads share one read transaction. */
void sq_event_get_many(void *conn, const char *const *ids, size_t n, struct event *out,
		       int *rcs);

#endif
