/* store_sqlite_keys: the api_keys table (schema version 3) and the endpoint
 * count, for the SQLite backend. These run rarely (a key is looked up once
 * per second at most by a running server, an endpoint create counts once),
 * so each statement is prepared when used (and finalized) rather than
 * cached per connection. */
#include "store_sqlite_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

#define KEY_COLS "id, hash, prefix, scope, name, created_at, revoked_at"

/* Copies text column i (at most cap - 1 bytes) into out; -1 if it is NULL
 * or too long. */
static int col_text(sqlite3_stmt *s, int i, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	int n = sqlite3_column_bytes(s, i);
	if (t == NULL || n < 0 || (size_t)n >= cap)
		return -1;
	memcpy(out, t, (size_t)n);
	out[n] = '\0';
	return 0;
}

/* Reads one row of KEY_COLS into k. */
static int read_key(sqlite3_stmt *s, struct store_api_key *k)
{
	memset(k, 0, sizeof *k);
	if (sq_col_id(s, 0, k->id) != 0 ||
	    sqlite3_column_bytes(s, 1) != STORE_KEY_HASH_LEN ||
	    col_text(s, 2, k->prefix, sizeof k->prefix) != 0 ||
	    col_text(s, 3, k->scope, sizeof k->scope) != 0 ||
	    col_text(s, 4, k->name, sizeof k->name) != 0) {
		log_error("store: malformed api_keys row");
		return STORE_ERROR;
	}
	memcpy(k->hash, sqlite3_column_blob(s, 1), STORE_KEY_HASH_LEN);
	k->created_at = sqlite3_column_int64(s, 5);
	k->revoked_at = sqlite3_column_type(s, 6) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, 6);
	return STORE_OK;
}

int sq_api_key_insert(void *conn, const struct store_api_key *k)
{
	struct sq *c = conn;
	sqlite3_stmt *s = sq_prepare(c, "INSERT INTO api_keys (" KEY_COLS ")"
				     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)", "api_key_insert");
	if (s == NULL)
		return STORE_ERROR;
	sq_bind_text(s, 1, k->id);
	sqlite3_bind_blob(s, 2, k->hash, STORE_KEY_HASH_LEN, SQLITE_STATIC);
	sq_bind_text(s, 3, k->prefix);
	sq_bind_text(s, 4, k->scope);
	sq_bind_text(s, 5, k->name);
	sqlite3_bind_int64(s, 6, k->created_at);
	int rc = sq_exec_stmt(c, s, "api_key_insert");
	sqlite3_finalize(s);
	return rc;
}

int sq_api_key_find(void *conn, const unsigned char hash[STORE_KEY_HASH_LEN],
		    struct store_api_key *out)
{
	struct sq *c = conn;
	sqlite3_stmt *s = sq_prepare(c, "SELECT " KEY_COLS " FROM api_keys WHERE hash = ?1",
				  "api_key_find");
	if (s == NULL)
		return STORE_ERROR;
	sqlite3_bind_blob(s, 1, hash, STORE_KEY_HASH_LEN, SQLITE_STATIC);
	int step = sqlite3_step(s);
	int rc;
	if (step == SQLITE_ROW) {
		rc = read_key(s, out);
	} else if (step == SQLITE_DONE) {
		rc = STORE_NOTFOUND;
	} else {
		sq_log_error(c, "api_key_find", step);
		rc = STORE_ERROR;
	}
	sqlite3_finalize(s);
	return rc;
}

int sq_api_key_list(void *conn, struct store_api_key **out, size_t *n)
{
	struct sq *c = conn;
	struct store_api_key *arr = NULL;
	size_t got = 0, cap = 0;
	int rc = STORE_OK, step;
	*out = NULL;
	*n = 0;
	sqlite3_stmt *s = sq_prepare(c, "SELECT " KEY_COLS " FROM api_keys ORDER BY seq",
				  "api_key_list");
	if (s == NULL)
		return STORE_ERROR;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		void *grown = array_grow(arr, &cap, got + 1, sizeof *arr, 16);
		if (grown == NULL) {
			log_error("store: out of memory op=api_key_list");
			rc = STORE_ERROR;
			goto out;
		}
		arr = grown;
		if ((rc = read_key(s, &arr[got])) != STORE_OK)
			goto out;
		got++;
	}
	if (step != SQLITE_DONE) {
		sq_log_error(c, "api_key_list", step);
		rc = STORE_ERROR;
	}
out:
	sqlite3_finalize(s);
	if (rc != STORE_OK) {
		free(arr);
		return rc;
	}
	*out = got ? arr : NULL;
	if (!got)
		free(arr);
	*n = got;
	return STORE_OK;
}

int sq_api_key_revoke(void *conn, const char *id, int64_t now)
{
	struct sq *c = conn;
	sqlite3_stmt *s = sq_prepare(c, "UPDATE api_keys SET revoked_at = ?2"
				     " WHERE id = ?1 AND revoked_at IS NULL", "api_key_revoke");
	if (s == NULL)
		return STORE_ERROR;
	sq_bind_text(s, 1, id);
	sqlite3_bind_int64(s, 2, now);
	int rc = sq_exec_stmt(c, s, "api_key_revoke");
	sqlite3_finalize(s);
	if (rc != STORE_OK || sqlite3_changes(c->db) == 1)
		return rc;
	/* Nothing changed: no such key, or revoked before. */
	rc = STORE_ERROR;
	s = sq_prepare(c, "SELECT count(*) FROM api_keys WHERE id = ?1", "api_key_revoke");
	if (s == NULL)
		return STORE_ERROR;
	sq_bind_text(s, 1, id);
	int step = sqlite3_step(s);
	if (step == SQLITE_ROW)
		rc = sqlite3_column_int64(s, 0) > 0 ? STORE_CONFLICT : STORE_NOTFOUND;
	else
		sq_log_error(c, "api_key_revoke", step);
	sqlite3_finalize(s);
	return rc;
}

int sq_endpoint_count(void *conn, int64_t *n)
{
	struct sq *c = conn;
	int rc = STORE_ERROR;
	/* SQLite counts the rows of the smallest index (the ids): a few pages
	 * for thousands of endpoints. */
	sqlite3_stmt *s = sq_prepare(c, "SELECT count(*) FROM endpoints", "endpoint_count");
	if (s == NULL)
		return STORE_ERROR;
	int step = sqlite3_step(s);
	if (step == SQLITE_ROW) {
		*n = sqlite3_column_int64(s, 0);
		rc = STORE_OK;
	} else {
		sq_log_error(c, "endpoint_count", step);
	}
	sqlite3_finalize(s);
	return rc;
}
