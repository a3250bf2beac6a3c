/* apikeys (generation, hashing, scopes) and the store's api_keys table. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apikeys.h"
#include "store.h"
#include "test_store_db.h"
#include "util.h"

Test(apikeys, generate_shape_and_uniqueness)
{
	char a[APIKEY_TEXT_LEN + 1], b[APIKEY_TEXT_LEN + 1];
	cr_assert_eq(apikeys_generate(a), 0);
	cr_assert_eq(apikeys_generate(b), 0);
	cr_expect_eq(strlen(a), APIKEY_TEXT_LEN);
	cr_expect_eq(strncmp(a, "hk_", 3), 0);
	for (const char *p = a + 3; *p; p++)
		cr_expect(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
				 *p) != NULL, "bad character %c in %s", *p, a);
	cr_expect_str_neq(a, b);
}

Test(apikeys, hash_is_sha256)
{
	/* FIPS 180-2 test vector "abc". */
	static const unsigned char want[APIKEY_HASH_LEN] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
		0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
		0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
	unsigned char h[APIKEY_HASH_LEN];
	cr_assert_eq(apikeys_hash("abc", 3, h), 0);
	cr_expect_eq(memcmp(h, want, sizeof want), 0);
}

Test(apikeys, prefix)
{
	char p[APIKEY_PREFIX_LEN + 1];
	apikeys_prefix("hk_abcdefghijklmnop", p);
	cr_expect_str_eq(p, "hk_abcdefg"
			    "h");
	apikeys_prefix("hk_ab", p);
	cr_expect_str_eq(p, "hk_ab");
}

Test(apikeys, scopes)
{
	enum apikey_scope s;
	cr_expect_eq(apikeys_scope_parse("admin", &s), 0);
	cr_expect_eq(s, APIKEY_ADMIN);
	cr_expect_eq(apikeys_scope_parse("ingest", &s), 0);
	cr_expect_eq(s, APIKEY_INGEST);
	cr_expect_eq(apikeys_scope_parse("Admin", &s), -1);
	cr_expect_eq(apikeys_scope_parse("", &s), -1);
	cr_expect_eq(apikeys_scope_parse(NULL, &s), -1);
	cr_expect_str_eq(apikeys_scope_name(APIKEY_ADMIN), "admin");
	cr_expect_str_eq(apikeys_scope_name(APIKEY_INGEST), "ingest");

	static const struct {
		enum apikey_scope scope;
		const char *method, *path;
		bool allowed;
	} t[] = {
		{APIKEY_ADMIN, "GET", "/v1/endpoints", true},
		{APIKEY_ADMIN, "POST", "/v1/events", true},
		{APIKEY_ADMIN, "DELETE", "/v1/endpoints/ep_1", true},
		{APIKEY_INGEST, "POST", "/v1/events", true},
		{APIKEY_INGEST, "GET", "/v1/events", false},
		{APIKEY_INGEST, "POST", "/v1/events/evt_1/replay", false},
		{APIKEY_INGEST, "GET", "/v1/events/evt_1", false},
		{APIKEY_INGEST, "POST", "/v1/endpoints", false},
		{APIKEY_INGEST, "GET", "/v1/deliveries", false},
		{APIKEY_INGEST, "POST", "/v1/events/", false},
		{APIKEY_INGEST, "post", "/v1/events", false},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		cr_expect_eq(apikeys_scope_allows(t[i].scope, t[i].method, t[i].path), t[i].allowed,
			     "%s %s %s", apikeys_scope_name(t[i].scope), t[i].method, t[i].path);
}

Test(apikeys, names)
{
	char long_name[APIKEY_NAME_MAX + 2];
	memset(long_name, 'n', sizeof long_name - 1);
	long_name[APIKEY_NAME_MAX + 1] = '\0';
	cr_expect(apikeys_name_valid(""));
	cr_expect(apikeys_name_valid("ci deploys"));
	cr_expect_not(apikeys_name_valid("tab\there"));
	cr_expect_not(apikeys_name_valid("new\nline"));
	cr_expect_not(apikeys_name_valid("caf\xc3\xa9"));
	cr_expect_not(apikeys_name_valid(long_name));
	long_name[APIKEY_NAME_MAX] = '\0';
	cr_expect(apikeys_name_valid(long_name));
}

/* ---- the api_keys table ---- */

/* The test's database (test_store_db.h: SQLite or PostgreSQL). */
static struct test_db db;
static struct store *st;

static void open_store(void)
{
	char err[256];
	test_db_make(&db, "hookd-apikeys");
	cr_assert_eq(store_open(db.url, &st, err, sizeof err), STORE_OK, "%s", err);
}

static void close_store(void)
{
	store_close(st);
	st = NULL;
	test_db_remove(&db);
}

/* Makes and stores a key of scope; its text in text. */
static void make_key(const char *scope, const char *name, struct store_api_key *k,
		     char text[APIKEY_TEXT_LEN + 1])
{
	memset(k, 0, sizeof *k);
	cr_assert_eq(apikeys_generate(text), 0);
	cr_assert_eq(apikeys_hash(text, strlen(text), k->hash), 0);
	cr_assert_eq(id_new("key", k->id), 0);
	apikeys_prefix(text, k->prefix);
	snprintf(k->scope, sizeof k->scope, "%s", scope);
	snprintf(k->name, sizeof k->name, "%s", name);
	k->created_at = now_ms();
	cr_assert_eq(store_api_key_insert(st, k), STORE_OK);
}

Test(apikeys, store_insert_find_list_revoke, .init = open_store, .fini = close_store)
{
	struct store_api_key a, b, got;
	char ta[APIKEY_TEXT_LEN + 1], tb[APIKEY_TEXT_LEN + 1];
	unsigned char h[APIKEY_HASH_LEN];
	make_key("ingest", "ci", &a, ta);
	make_key("admin", "", &b, tb);

	cr_assert_eq(apikeys_hash(ta, strlen(ta), h), 0);
	cr_assert_eq(store_api_key_find(st, h, &got), STORE_OK);
	cr_expect_str_eq(got.id, a.id);
	cr_expect_str_eq(got.scope, "ingest");
	cr_expect_str_eq(got.name, "ci");
	cr_expect_str_eq(got.prefix, a.prefix);
	cr_expect_eq(got.created_at, a.created_at);
	cr_expect_eq(got.revoked_at, 0);
	h[0] ^= 1;
	cr_expect_eq(store_api_key_find(st, h, &got), STORE_NOTFOUND);

	/* The same hash twice is refused. */
	struct store_api_key dup = a;
	cr_assert_eq(id_new("key", dup.id), 0);
	cr_expect_eq(store_api_key_insert(st, &dup), STORE_CONFLICT);

	struct store_api_key *all = NULL;
	size_t n = 0;
	cr_assert_eq(store_api_key_list(st, &all, &n), STORE_OK);
	cr_assert_eq(n, 2);
	cr_expect_str_eq(all[0].id, a.id);
	cr_expect_str_eq(all[1].id, b.id);
	cr_expect_str_eq(all[1].scope, "admin");
	free(all);

	cr_expect_eq(store_api_key_revoke(st, a.id, 1234), STORE_OK);
	cr_expect_eq(store_api_key_revoke(st, a.id, 5678), STORE_CONFLICT);
	cr_expect_eq(store_api_key_revoke(st, "key_nope", 1), STORE_NOTFOUND);
	cr_assert_eq(store_api_key_find(st, a.hash, &got), STORE_OK);
	cr_expect_eq(got.revoked_at, 1234);
	cr_assert_eq(store_api_key_find(st, b.hash, &got), STORE_OK);
	cr_expect_eq(got.revoked_at, 0);
}

Test(apikeys, store_empty_list_and_endpoint_count, .init = open_store, .fini = close_store)
{
	struct store_api_key *all = (void *)1;
	size_t n = 7;
	int64_t count = -1;
	cr_assert_eq(store_api_key_list(st, &all, &n), STORE_OK);
	cr_expect_eq(n, 0);
	cr_expect_null(all);
	cr_assert_eq(store_endpoint_count(st, &count), STORE_OK);
	cr_expect_eq(count, 0);
}
