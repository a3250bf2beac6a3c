/* apikeys: API keys created with `hookd key create`. A key is "hk_" and 43
 * characters of base64url (32 random bytes); the database keeps only its
 * SHA-256 and a short prefix to recognise it by. A key has a scope: admin
 * (every route) or ingest (only POST /v1/events). Pure functions: the store
 * keeps the keys, api_guard.c checks requests, keycmd.c is the CLI. */
#ifndef HOOKD_APIKEYS_H
#define HOOKD_APIKEYS_H

#include <stdbool.h>
#include <stddef.h>

#define APIKEY_HASH_LEN 32      /* SHA-256 */
#define APIKEY_RANDOM_BYTES 32
#define APIKEY_TEXT_LEN 46      /* "hk_" + 43 base64url characters */
#define APIKEY_PREFIX_LEN 11    /* "hk_" + 8 characters: shown by `hookd key list` */
#define APIKEY_NAME_MAX 64      /* bytes of a key's name */

enum apikey_scope {
	APIKEY_ADMIN = 0,   /* every route */
	APIKEY_INGEST,      /* POST /v1/events only */
};

/* Writes a new random key (APIKEY_TEXT_LEN characters and a NUL) into out.
 * Returns 0, or -1 if the random source failed. */
int apikeys_generate(char out[APIKEY_TEXT_LEN + 1]);

/* SHA-256 of the len bytes of key into out. Returns 0, or -1 if OpenSSL
 * failed. */
int apikeys_hash(const char *key, size_t len, unsigned char out[APIKEY_HASH_LEN]);

/* The first APIKEY_PREFIX_LEN characters of key (fewer if it is shorter)
 * and a NUL, into out. */
void apikeys_prefix(const char *key, char out[APIKEY_PREFIX_LEN + 1]);

/* "admin" or "ingest" to a scope: 0, or -1 for anything else. */
int apikeys_scope_parse(const char *s, enum apikey_scope *out);
/* The scope's name ("admin", "ingest"). */
const char *apikeys_scope_name(enum apikey_scope s);

/* True if a key of scope s may make this request: admin may call anything,
 * ingest only POST /v1/events (path without the query string). */
bool apikeys_scope_allows(enum apikey_scope s, const char *method, const char *path);

/* A key name: at most APIKEY_NAME_MAX bytes of printable ASCII (spaces
 * allowed), so `hookd key list` prints it on one line. */
bool apikeys_name_valid(const char *name);

#endif
