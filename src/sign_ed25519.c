/* sign_ed25519: the Standard Webhooks asymmetric scheme, "v1a," + base64
 * of an Ed25519 signature of id "." timestamp "." body, with OpenSSL's
 * EVP Ed25519 (libcrypto). Secrets are "whsk_" + base64(seed || public key),
 * the 64-byte layout of libsodium and Svix; public keys "whpk_" + base64 of
 * the 32-byte key. */
#include "sign_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "log.h"
#include "util.h"

#define ED25519_SIG_LEN 64
#define V1A "v1a,"

/* A key object from raw bytes: private from a seed, else public. */
static EVP_PKEY *raw_key(const unsigned char *bytes, bool private_key)
{
	if (private_key)
		return EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, bytes,
						    SIGN_ED25519_SEED_LEN);
	return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, bytes, SIGN_ED25519_PUBLIC_LEN);
}

/* The public key of a seed into pub. Returns 0 or -1. */
static int public_of_seed(const unsigned char *seed, unsigned char pub[SIGN_ED25519_PUBLIC_LEN])
{
	size_t len = SIGN_ED25519_PUBLIC_LEN;
	EVP_PKEY *pk = raw_key(seed, true);
	int rc = pk != NULL && EVP_PKEY_get_raw_public_key(pk, pub, &len) == 1 &&
			 len == SIGN_ED25519_PUBLIC_LEN
		 ? 0
		 : -1;
	EVP_PKEY_free(pk);
	return rc;
}

int sign_ed25519_key_init(struct sign_key *k, const char *secret, char *err, size_t errlen)
{
	const char *sk = SIGN_ED25519_SECRET_PREFIX;
	bool is_secret = strncmp(secret, sk, strlen(sk)) == 0;
	const char *prefix = is_secret ? SIGN_ED25519_SECRET_PREFIX : SIGN_ED25519_PUBLIC_PREFIX;
	size_t want = is_secret ? SIGN_ED25519_SEED_LEN + SIGN_ED25519_PUBLIC_LEN
				: SIGN_ED25519_PUBLIC_LEN;
	unsigned char *raw = NULL, pub[SIGN_ED25519_PUBLIC_LEN];
	size_t len = 0, slen = strlen(secret);
	int rc = -1;

	if (slen >= sizeof k->secret) {
		snprintf(err, errlen, "%s key is too long", prefix);
		goto out;
	}
	if (b64_decode(secret + strlen(prefix), &raw, &len) != 0 || len != want) {
		snprintf(err, errlen,
			 "after \"%s\" must come padded standard base64 of %zu bytes%s", prefix,
			 want, is_secret ? " (the Ed25519 seed, then its public key)" : "");
		goto out;
	}
	/* A secret whose public half is not its seed's would sign with one key
	 * while the API shows another. */
	if (is_secret && (public_of_seed(raw, pub) != 0 ||
			  CRYPTO_memcmp(pub, raw + SIGN_ED25519_SEED_LEN, sizeof pub) != 0)) {
		snprintf(err, errlen, "the public key in the \"%s\" secret does not match its seed",
			 prefix);
		goto out;
	}
	sign_key_set(k, is_secret ? SIGN_ED25519 : SIGN_ED25519_PUBLIC, raw, len, secret, slen);
	rc = 0;
out:
	sign_key_bytes_free(raw, len);
	return rc;
}

int sign_ed25519_generate(char out[SIGN_SECRET_MAX])
{
	unsigned char pair[SIGN_ED25519_SEED_LEN + SIGN_ED25519_PUBLIC_LEN];
	char *b64 = NULL;
	int rc = -1;

	if (random_bytes(pair, SIGN_ED25519_SEED_LEN) != 0 ||
	    public_of_seed(pair, pair + SIGN_ED25519_SEED_LEN) != 0)
		goto out;
	b64 = b64_encode(pair, sizeof pair);
	if (b64 == NULL)
		goto out;
	snprintf(out, SIGN_SECRET_MAX, "%s%s", SIGN_ED25519_SECRET_PREFIX, b64);
	rc = 0;
out:
	OPENSSL_cleanse(pair, sizeof pair);
	if (b64 != NULL) {
		OPENSSL_cleanse(b64, strlen(b64));
		free(b64);
	}
	return rc;
}

EVP_PKEY *sign_ed25519_pkey(const struct sign_key *k)
{
	return k->alg == SIGN_ED25519 ? raw_key(k->key, true) : NULL;
}

/* The parts as one buffer (Ed25519 signs a message in one pass): w's
 * scratch, grown as needed, or a new allocation in *owned. */
static unsigned char *flatten(struct sign_work *w, const struct span *parts, size_t nparts,
			      size_t *len, unsigned char **owned)
{
	size_t total = 0;
	for (size_t i = 0; i < nparts; i++)
		total += parts[i].len;
	unsigned char *buf;
	*owned = NULL;
	if (w != NULL) {
		if (total + 1 > w->msg_cap) {
			unsigned char *nb = realloc(w->msg, total + 1);
			if (nb == NULL)
				return NULL;
			w->msg = nb;
			w->msg_cap = total + 1;
		}
		buf = w->msg;
	} else if ((buf = *owned = malloc(total + 1)) == NULL) {
		return NULL;
	}
	size_t o = 0;
	for (size_t i = 0; i < nparts; i++) {
		if (parts[i].len > 0)
			memcpy(buf + o, parts[i].p, parts[i].len);
		o += parts[i].len;
	}
	*len = total;
	return buf;
}

void sign_ed25519_standard(EVP_PKEY *pkey, const struct sign_key *k, struct sign_work *w,
			   const struct span *parts, size_t nparts, char out[SIGN_STANDARD_LEN])
{
	EVP_PKEY *own_key = NULL;
	EVP_MD_CTX *own_ctx = NULL, *ctx;
	unsigned char *owned = NULL, sig[ED25519_SIG_LEN];
	size_t msg_len = 0, sig_len = sizeof sig;

	out[0] = '\0';
	if (pkey == NULL && k->alg != SIGN_ED25519)
		return; /* a public key cannot sign */
	if (pkey == NULL && (pkey = own_key = sign_ed25519_pkey(k)) == NULL)
		goto out;
	if (w != NULL) {
		if (w->sig == NULL && (w->sig = EVP_MD_CTX_new()) == NULL)
			goto out;
		ctx = w->sig;
		EVP_MD_CTX_reset(ctx);
	} else if ((ctx = own_ctx = EVP_MD_CTX_new()) == NULL) {
		goto out;
	}
	const unsigned char *msg = flatten(w, parts, nparts, &msg_len, &owned);
	if (msg == NULL || EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) != 1 ||
	    EVP_DigestSign(ctx, sig, &sig_len, msg, msg_len) != 1 || sig_len != ED25519_SIG_LEN)
		goto out;
	memcpy(out, V1A, sizeof V1A - 1);
	EVP_EncodeBlock((unsigned char *)out + sizeof V1A - 1, sig, ED25519_SIG_LEN);
out:
	if (out[0] == '\0')
		log_error("sign failed scheme=ed25519 reason=openssl");
	free(owned);
	EVP_MD_CTX_free(own_ctx);
	EVP_PKEY_free(own_key);
}

/* Decodes the base64 of one "v1a," entry into sig; false unless it is
 * exactly the canonical base64 of a 64-byte signature (what sign_standard
 * writes: the unused bits of its last character zero). */
static bool entry_sig(const char *b64, size_t len, unsigned char sig[ED25519_SIG_LEN])
{
	/* 64 bytes are 88 base64 characters ending "==". */
	unsigned char buf[90], again[90];
	if (len != 88)
		return false;
	int n = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)len);
	if (n != 66 || b64[86] != '=' || b64[87] != '=')
		return false;
	EVP_EncodeBlock(again, buf, ED25519_SIG_LEN);
	if (memcmp(again, b64, len) != 0)
		return false;
	memcpy(sig, buf, ED25519_SIG_LEN);
	return true;
}

bool sign_ed25519_verify(const struct sign_key *k, const struct span *parts, size_t nparts,
			 const char *header)
{
	const unsigned char *pub = k->alg == SIGN_ED25519 ? k->key + SIGN_ED25519_SEED_LEN : k->key;
	EVP_PKEY *pk = NULL;
	EVP_MD_CTX *ctx = NULL;
	unsigned char *owned = NULL, sig[ED25519_SIG_LEN];
	size_t msg_len = 0;
	bool match = false;

	if (k->alg == SIGN_HMAC || (pk = raw_key(pub, false)) == NULL ||
	    (ctx = EVP_MD_CTX_new()) == NULL)
		goto out;
	const unsigned char *msg = flatten(NULL, parts, nparts, &msg_len, &owned);
	if (msg == NULL)
		goto out;
	/* A public-key check reveals nothing by its time: stop at the first match. */
	const char *p = header, *b64;
	size_t len;
	while (!match && sign_header_next(&p, "v1a", &b64, &len)) {
		if (!entry_sig(b64, len, sig))
			continue;
		EVP_MD_CTX_reset(ctx);
		match = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
			EVP_DigestVerify(ctx, sig, sizeof sig, msg, msg_len) == 1;
	}
out:
	free(owned);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return match;
}
