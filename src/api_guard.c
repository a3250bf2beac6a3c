/* api_guard: who may call the API and how much one request may carry
 * (docs/security.md): --api-allow, the URL and header limits, authentication with
 * configured and stored API keys, key scopes and --ingest-rate.
 *
 * Keys from --api-key (or the key file) are admin keys compared in constant
 * time, as before, without a lock or a store query. Keys made by `hookd key
 * create` (another process, maybe while hookd runs) live in the store as
 * SHA-256 hashes: a presented key that is not a configured one is hashed and
 * looked up in a small cache; an entry older than GUARD_RECHECK_MS is read
 * from the store again before it is trusted, so a key revoked by the CLI
 * stops working within that time, and a new key works at its first use. */
#include "api_internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apikeys.h"
#include "cidr.h"
#include "idtable.h"
#include "ratelimit.h"

/* A stored key's cache entry is trusted this long before the store is asked
 * again: the longest a revoked key keeps working in a running server. */
#define GUARD_RECHECK_MS 1000
/* Stored keys cached at once. Past the cap the least recently used entry
 * goes (its ingest bucket starts full again). */
#define GUARD_CACHE_MAX 4096

struct key_entry {
	unsigned char hash[APIKEY_HASH_LEN];
	enum apikey_scope scope;
	int64_t checked_ms;          /* mono_ms of the last store read */
	int64_t used_ms;             /* mono_ms of the last use */
	struct bucket bucket;        /* --ingest-rate */
};

struct api_guard {
	bool has_allow;
	struct cidr_list allow;
	int ingest_rate;
	pthread_mutex_t mu;          /* the cache and every bucket */
	struct bucket *cfg_buckets;  /* one per configured key */
	struct idtable cache;        /* struct key_entry by hash */
};

/* Who a request authenticated as. */
struct guard_who {
	enum apikey_scope scope;
	int cfg_index;               /* the configured key's index, or -1 for a stored key */
	unsigned char hash[APIKEY_HASH_LEN];
};

int api_guard_new(const struct api_config *cfg, struct api_guard **out, char *err,
		  size_t errlen)
{
	struct api_guard *g = calloc(1, sizeof *g);
	char why[160] = "";
	*out = NULL;
	if (g == NULL)
		goto oom;
	if (idtable_init(&g->cache, offsetof(struct key_entry, hash), APIKEY_HASH_LEN, 64) != 0) {
		free(g);
		goto oom;
	}
	if (cfg->api_allow != NULL) {
		if (cidr_list_parse(cfg->api_allow, &g->allow, why, sizeof why) != 0) {
			snprintf(err, errlen, "--api-allow: %s", why);
			idtable_free(&g->cache);
			free(g);
			return -1;
		}
		g->has_allow = true;
	}
	g->ingest_rate = cfg->ingest_rate;
	if (cfg->n_api_keys > 0) {
		g->cfg_buckets = calloc(cfg->n_api_keys, sizeof *g->cfg_buckets);
		if (g->cfg_buckets == NULL) {
			idtable_free(&g->cache);
			free(g);
			goto oom;
		}
	}
	int64_t now = mono_ms();
	for (size_t i = 0; i < cfg->n_api_keys; i++)
		bucket_init(&g->cfg_buckets[i], g->ingest_rate, now);
	pthread_mutex_init(&g->mu, NULL);
	*out = g;
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

void api_guard_free(struct api_guard *g)
{
	if (g == NULL)
		return;
	struct key_entry *e;
	for (size_t pos = 0; (e = idtable_next(&g->cache, &pos)) != NULL;)
		free(e);
	idtable_free(&g->cache);
	pthread_mutex_destroy(&g->mu);
	free(g->cfg_buckets);
	free(g);
}

size_t api_guard_memory_limit(const struct api_config *cfg)
{
	/* The request line and header section are read whole into this memory,
	 * with the library's record of each header field (48 bytes) beside
	 * them, and the response is built in it: the limits, 64 bytes a field
	 * and 8 KiB leave room to see a request a little past the limits and
	 * answer it with our JSON error (tested at each boundary). With the
	 * default limits this is libmicrohttpd's own default, 32 KiB, which it
	 * mallocs; a larger pool is mmap'd per connection. */
	size_t want = cfg->max_url + cfg->max_header_bytes + 64 * (size_t)cfg->max_headers + 8192;
	return want > 32768 ? want : 32768;
}

/* ---- before authentication ---- */

struct header_tally {
	size_t n;
	size_t bytes;
};

static enum MHD_Result tally_header(void *cls, enum MHD_ValueKind kind, const char *key,
				    const char *value)
{
	struct header_tally *t = cls;
	(void)kind;
	t->n++;
	t->bytes += strlen(key) + (value ? strlen(value) : 0);
	return MHD_YES;
}

bool api_guard_admit(struct api_req *r)
{
	struct api_guard *g = r->api->guard;
	const struct api_config *cfg = &r->api->cfg;
	if (g->has_allow) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (ci == NULL || ci->client_addr == NULL ||
		    !cidr_list_match(&g->allow, ci->client_addr)) {
			api_error(r, MHD_HTTP_FORBIDDEN, "forbidden", NULL,
				  "this client address may not call the API (--api-allow)");
			return true;
		}
	}
	if (r->url_len > cfg->max_url) {
		api_error(r, MHD_HTTP_URI_TOO_LONG, "url_too_long", NULL,
			  "the request target is %zu bytes, over the limit of %zu (--max-url)",
			  r->url_len, cfg->max_url);
		return true;
	}
	struct header_tally t = {0, 0};
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, tally_header, &t);
	if (t.n > (size_t)cfg->max_headers) {
		api_error(r, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large", NULL,
			  "%zu header fields, over the limit of %d (--max-headers)", t.n,
			  cfg->max_headers);
		return true;
	}
	if (t.bytes > cfg->max_header_bytes) {
		api_error(r, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large", NULL,
			  "%zu bytes of header names and values, over the limit of %zu "
			  "(--max-header-bytes)", t.bytes, cfg->max_header_bytes);
		return true;
	}
	return false;
}

/* ---- the stored keys' cache (g->mu held) ---- */

static struct key_entry *cache_find(struct api_guard *g, const unsigned char *hash)
{
	return idtable_find(&g->cache, hash);
}

static void cache_remove(struct api_guard *g, const unsigned char *hash)
{
	free(idtable_remove(&g->cache, hash));
}

static void cache_evict_oldest(struct api_guard *g)
{
	struct key_entry *oldest = NULL, *e;
	for (size_t pos = 0; (e = idtable_next(&g->cache, &pos)) != NULL;) {
		if (oldest == NULL || e->used_ms < oldest->used_ms)
			oldest = e;
	}
	if (oldest != NULL)
		cache_remove(g, oldest->hash);
}

/* The entry for hash, made if missing (its bucket full). NULL if out of memory. */
static struct key_entry *cache_put(struct api_guard *g, const unsigned char *hash,
				   enum apikey_scope scope, int64_t now)
{
	struct key_entry *e = cache_find(g, hash);
	if (e == NULL) {
		void *old;
		if (g->cache.n >= GUARD_CACHE_MAX)
			cache_evict_oldest(g);
		e = calloc(1, sizeof *e);
		if (e == NULL)
			return NULL;
		memcpy(e->hash, hash, APIKEY_HASH_LEN);
		bucket_init(&e->bucket, g->ingest_rate, now);
		if (idtable_put(&g->cache, e, &old) != 0) {
			free(e);
			return NULL;
		}
	}
	e->scope = scope;
	e->checked_ms = now;
	return e;
}

/* ---- authentication ---- */

/* True if key has the shape `hookd key create` gives ("hk_" + 43 base64url
 * characters): anything else cannot be a stored key and costs no lookup. */
static bool stored_key_shape(const char *key)
{
	if (strlen(key) != APIKEY_TEXT_LEN || strncmp(key, "hk_", 3) != 0)
		return false;
	for (const char *p = key + 3; *p; p++) {
		char c = *p;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

enum { WHO_OK = 0, WHO_UNKNOWN, WHO_ERROR };

/* A stored key: the cache if fresh, else the store. */
static int who_stored(struct api_req *r, const char *key, struct guard_who *who)
{
	struct api_guard *g = r->api->guard;
	struct store_api_key k;
	enum apikey_scope scope;
	int64_t now = mono_ms();
	if (apikeys_hash(key, strlen(key), who->hash) != 0)
		return WHO_ERROR;
	pthread_mutex_lock(&g->mu);
	struct key_entry *e = cache_find(g, who->hash);
	if (e != NULL && now - e->checked_ms < GUARD_RECHECK_MS) {
		e->used_ms = now;
		who->scope = e->scope;
		pthread_mutex_unlock(&g->mu);
		return WHO_OK;
	}
	pthread_mutex_unlock(&g->mu);

	struct store *st = api_store_get(r->api);
	int rc = st ? store_api_key_find(st, who->hash, &k) : STORE_ERROR;
	if (st)
		api_store_put(r->api, st);
	if (rc == STORE_ERROR)
		return WHO_ERROR;
	bool valid = rc == STORE_OK && k.revoked_at == 0 &&
		     apikeys_scope_parse(k.scope, &scope) == 0;
	pthread_mutex_lock(&g->mu);
	if (!valid) {
		cache_remove(g, who->hash);
	} else if ((e = cache_put(g, who->hash, scope, now)) != NULL) {
		e->used_ms = now;
	}
	pthread_mutex_unlock(&g->mu);
	if (!valid)
		return WHO_UNKNOWN;
	who->scope = scope;
	return WHO_OK;
}

static int who_is(struct api_req *r, struct guard_who *who)
{
	const struct api_config *cfg = &r->api->cfg;
	const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return WHO_UNKNOWN;
	const char *key = h + 7;
	while (*key == ' ')
		key++;
	/* Every configured key is compared, so the time taken does not say
	 * which matched. */
	int hit = -1;
	for (size_t i = 0; i < cfg->n_api_keys; i++) {
		bool eq = ct_streq(key, cfg->api_keys[i]);
		hit = eq ? (int)i : hit;
	}
	who->cfg_index = hit;
	if (hit >= 0) {
		who->scope = APIKEY_ADMIN;
		return WHO_OK;
	}
	if (!stored_key_shape(key))
		return WHO_UNKNOWN;
	return who_stored(r, key, who);
}

/* --ingest-rate for who: takes a token, or returns the seconds to wait. */
static unsigned take_token(struct api_guard *g, const struct guard_who *who)
{
	unsigned wait_s = 0;
	int64_t now = mono_ms();
	pthread_mutex_lock(&g->mu);
	struct bucket *b = NULL;
	if (who->cfg_index >= 0) {
		b = &g->cfg_buckets[who->cfg_index];
	} else {
		struct key_entry *e = cache_find(g, who->hash);
		b = e ? &e->bucket : NULL;
	}
	if (b != NULL && !bucket_take(b, now)) {
		int64_t ms = bucket_wait_ms(b, now);
		wait_s = ms > 1000 ? (unsigned)((ms + 999) / 1000) : 1;
	}
	pthread_mutex_unlock(&g->mu);
	return wait_s;
}

bool api_guard_auth(struct api_req *r, const char *url, const char *method)
{
	struct api_guard *g = r->api->guard;
	struct guard_who who = {.cfg_index = -1};
	int rc = who_is(r, &who);
	if (rc == WHO_ERROR) {
		/* 503 store_unavailable while the database cannot be reached. */
		api_store_error(r, STORE_ERROR, "API key lookup");
		return true;
	}
	if (rc != WHO_OK) {
		api_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized", NULL,
			  "missing or wrong API key (Authorization: Bearer <key>)");
		return true;
	}
	if (!apikeys_scope_allows(who.scope, method, url)) {
		api_error(r, MHD_HTTP_FORBIDDEN, "insufficient_scope", NULL,
			  "this API key has scope %s, which may only POST /v1/events",
			  apikeys_scope_name(who.scope));
		return true;
	}
	/* Some answers show an ingest key less (a duplicate: api_events.c). */
	r->ingest_scope = who.scope == APIKEY_INGEST;
	if (g->ingest_rate > 0 && strcmp(method, "POST") == 0 && strcmp(url, "/v1/events") == 0) {
		unsigned wait_s = take_token(g, &who);
		if (wait_s > 0) {
			r->retry_after = wait_s;
			api_error(r, MHD_HTTP_TOO_MANY_REQUESTS, "rate_limited", NULL,
				  "over %d requests a second with this API key (--ingest-rate); "
				  "retry in %u s", g->ingest_rate, wait_s);
			return true;
		}
	}
	return false;
}
