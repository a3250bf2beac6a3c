/* apikeys: see apikeys.h. */
#include "apikeys.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "util.h"

int apikeys_generate(char out[APIKEY_TEXT_LEN + 1])
{
	unsigned char raw[APIKEY_RANDOM_BYTES];
	int rc = -1;
	char *b64 = NULL;
	if (random_bytes(raw, sizeof raw) != 0)
		goto out;
	b64 = b64_encode(raw, sizeof raw);
	if (b64 == NULL)
		goto out;
	/* base64url without padding: no character a shell or a header needs
	 * quoted. 32 bytes are 43 characters and one '='. */
	size_t n = strcspn(b64, "=");
	if (3 + n != APIKEY_TEXT_LEN)
		goto out;
	for (size_t i = 0; i < n; i++)
		b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	memcpy(out, "hk_", 3);
	memcpy(out + 3, b64, n);
	out[APIKEY_TEXT_LEN] = '\0';
	rc = 0;
out:
	if (b64 != NULL) {
		memset(b64, 0, strlen(b64));
		free(b64);
	}
	memset(raw, 0, sizeof raw);
	return rc;
}

int apikeys_hash(const char *key, size_t len, unsigned char out[APIKEY_HASH_LEN])
{
	unsigned int n = 0;
	if (EVP_Digest(key, len, out, &n, EVP_sha256(), NULL) != 1 || n != APIKEY_HASH_LEN)
		return -1;
	return 0;
}

void apikeys_prefix(const char *key, char out[APIKEY_PREFIX_LEN + 1])
{
	size_t n = strnlen(key, APIKEY_PREFIX_LEN);
	memcpy(out, key, n);
	out[n] = '\0';
}

static const char *const scope_names[] = {[APIKEY_ADMIN] = "admin", [APIKEY_INGEST] = "ingest"};

int apikeys_scope_parse(const char *s, enum apikey_scope *out)
{
	for (size_t i = 0; s != NULL && i < sizeof scope_names / sizeof scope_names[0]; i++) {
		if (strcmp(s, scope_names[i]) == 0) {
			*out = (enum apikey_scope)i;
			return 0;
		}
	}
	return -1;
}

const char *apikeys_scope_name(enum apikey_scope s)
{
	return s == APIKEY_INGEST ? scope_names[APIKEY_INGEST] : scope_names[APIKEY_ADMIN];
}

bool apikeys_scope_allows(enum apikey_scope s, const char *method, const char *path)
{
	if (s == APIKEY_ADMIN)
		return true;
	return strcmp(method, "POST") == 0 && strcmp(path, "/v1/events") == 0;
}

bool apikeys_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n > APIKEY_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (name[i] < ' ' || name[i] > '~')
			return false;
	}
	return true;
}
