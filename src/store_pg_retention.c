/* store_pg_retention: the PostgreSQL backend's retention figures: the size
 * of hookd's own tables. (The purge of old events is not implemented here
 * yet: purge_events stays NULL, see docs/operations.md#retention.) */
#include "store_pg_internal.h"

#include "log.h"

/* hookd's tables, with their indexes and TOAST (pg_total_relation_size),
 * resolved through the connection's search_path like every other statement:
 * a database shared with other applications reports only hookd's data, and
 * schema_version (shared between applications) is left out. The WAL is the
 * cluster's, not hookd's, and free space inside the tables is not known
 * without reading every page (pgstattuple): both are -1. */
int pg_size(void *conn, struct store_size *out)
{
	static const struct pg_stmt SIZE = {
		"size",
		"SELECT coalesce(sum(pg_total_relation_size(to_regclass(t))), 0)::bigint"
		" FROM unnest(ARRAY['endpoints', 'events', 'idempotency_keys', 'deliveries',"
		" 'attempts', 'api_keys']) AS t WHERE to_regclass(t) IS NOT NULL"};
	out->file_bytes = out->wal_bytes = out->free_bytes = -1;
	PGresult *res = NULL;
	int rc = pg_exec(conn, &SIZE, NULL, &res);
	if (rc == STORE_OK)
		out->file_bytes = pg_get_int64(res, 0, 0);
	PQclear(res);
	return rc;
}
