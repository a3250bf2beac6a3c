/* store_pg_keys: the api_keys table for the PostgreSQL backend (the SQLite
 * twin: store_sqlite_keys.c). Each operation is one statement, so `hookd
 * key` runs them outside a transaction. */
#include "store_pg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

#define KEY_COLS "id, hash, prefix, scope, name, created_at, revoked_at"

static const struct pg_stmt KEY_INSERT = {
	"api_key_insert", "INSERT INTO api_keys (" KEY_COLS ")"
			  " VALUES ($1, $2, $3, $4, $5, $6, NULL) ON CONFLICT DO NOTHING"};
static const struct pg_stmt KEY_FIND = {"api_key_find",
					"SELECT " KEY_COLS " FROM api_keys WHERE hash = $1"};
static const struct pg_stmt KEY_LIST = {"api_key_list",
					"SELECT " KEY_COLS " FROM api_keys ORDER BY seq"};
/* Revokes and tells why nothing changed, in one round trip: (revoked now,
 * key exists). */
static const struct pg_stmt KEY_REVOKE = {
	"api_key_revoke",
	"WITH u AS (UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL"
	" RETURNING 1)"
	" SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM api_keys WHERE id = $1)"};

/* Reads row `row` of KEY_COLS into k. */
static int read_key(const PGresult *r, int row, struct store_api_key *k)
{
	memset(k, 0, sizeof *k);
	if (pg_get_id(r, row, 0, k->id) != 0 ||
	    pg_get_bytes(r, row, 1, k->hash, STORE_KEY_HASH_LEN) != 0 ||
	    pg_get_text(r, row, 2, k->prefix, sizeof k->prefix) != 0 ||
	    pg_get_text(r, row, 3, k->scope, sizeof k->scope) != 0 ||
	    pg_get_text(r, row, 4, k->name, sizeof k->name) != 0) {
		log_error("store: malformed api_keys row");
		return STORE_ERROR;
	}
	k->created_at = pg_get_int64(r, row, 5);
	k->revoked_at = pg_get_int64(r, row, 6); /* NULL reads 0: not revoked */
	return STORE_OK;
}

int pg_api_key_insert(void *conn, const struct store_api_key *k)
{
	struct pg_params p;
	PGresult *r = NULL;
	pg_params_init(&p);
	pg_param_text(&p, k->id);
	pg_param_bytes(&p, k->hash, STORE_KEY_HASH_LEN);
	pg_param_text(&p, k->prefix);
	pg_param_text(&p, k->scope);
	pg_param_text(&p, k->name);
	pg_param_int(&p, k->created_at);
	/* The id or the hash exists: nothing inserted. */
	int rc = pg_exec(conn, &KEY_INSERT, &p, &r);
	if (rc == STORE_OK && pg_affected(r) == 0)
		rc = STORE_CONFLICT;
	PQclear(r);
	return rc;
}

int pg_api_key_find(void *conn, const unsigned char hash[STORE_KEY_HASH_LEN],
		    struct store_api_key *out)
{
	struct pg_params p;
	PGresult *r = NULL;
	pg_params_init(&p);
	pg_param_bytes(&p, hash, STORE_KEY_HASH_LEN);
	int rc = pg_exec(conn, &KEY_FIND, &p, &r);
	if (rc == STORE_OK)
		rc = PQntuples(r) == 0 ? STORE_NOTFOUND : read_key(r, 0, out);
	PQclear(r);
	return rc;
}

int pg_api_key_list(void *conn, struct store_api_key **out, size_t *n)
{
	PGresult *r = NULL;
	*out = NULL;
	*n = 0;
	int rc = pg_exec(conn, &KEY_LIST, NULL, &r);
	int rows = rc == STORE_OK ? PQntuples(r) : 0;
	struct store_api_key *arr = rows > 0 ? calloc((size_t)rows, sizeof *arr) : NULL;
	if (rows > 0 && !arr) {
		log_error("store: out of memory op=api_key_list");
		rc = STORE_ERROR;
	}
	for (int i = 0; rc == STORE_OK && i < rows; i++)
		rc = read_key(r, i, &arr[i]);
	PQclear(r);
	if (rc != STORE_OK) {
		free(arr);
		return rc;
	}
	*out = arr;
	*n = (size_t)rows;
	return STORE_OK;
}

int pg_api_key_revoke(void *conn, const char *id, int64_t now)
{
	struct pg_params p;
	PGresult *r = NULL;
	pg_params_init(&p);
	pg_param_text(&p, id);
	pg_param_int(&p, now);
	int rc = pg_exec(conn, &KEY_REVOKE, &p, &r);
	if (rc == STORE_OK && pg_get_int64(r, 0, 0) == 0)
		rc = pg_get_int64(r, 0, 1) > 0 ? STORE_CONFLICT : STORE_NOTFOUND;
	PQclear(r);
	return rc;
}
