/* sign_internal: what sign.c and sign_ed25519.c share. Private to them. */
#ifndef HOOKD_SIGN_INTERNAL_H
#define HOOKD_SIGN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "sign.h"

/* A part of a signed message; the message is the parts in order. */
struct span {
	const void *p;
	size_t len;
};

/* One HMAC-SHA256 key (RFC 2104) as the digest states after its padded
 * block: `in` has absorbed key ^ ipad, `out` key ^ opad. */
struct hmac_prepared {
	EVP_MD_CTX *in, *out;
};

struct sign_prepared {
	enum sign_alg alg;
	struct hmac_prepared std; /* HMAC: the decoded Standard Webhooks key */
	struct hmac_prepared hex; /* HMAC: the whole secret string */
	EVP_PKEY *pkey;           /* Ed25519: the private key */
};

struct sign_work {
	EVP_MD_CTX *md;           /* HMAC digests */
	EVP_MD_CTX *sig;          /* Ed25519 signing, made on first use */
	unsigned char *msg;       /* Ed25519 needs the message in one piece */
	size_t msg_cap;
};

/* Sets k to the key bytes key[0..len) of kind alg, loaded from the string
 * secret (slen bytes): what every loader ends with. */
void sign_key_set(struct sign_key *k, enum sign_alg alg, const unsigned char *key, size_t len,
		  const char *secret, size_t slen);
/* Wipes and frees a decoded key (p may be NULL). */
void sign_key_bytes_free(unsigned char *p, size_t len);

/* sign_key_init for "whsk_" and "whpk_" strings (the prefix is checked by
 * the caller). Returns 0, or -1 with a reason in err. */
int sign_ed25519_key_init(struct sign_key *k, const char *secret, char *err, size_t errlen);

/* A fresh "whsk_" secret into out. Returns 0 or -1. */
int sign_ed25519_generate(char out[SIGN_SECRET_MAX]);

/* The private key of an Ed25519 k as an OpenSSL key (free it with
 * EVP_PKEY_free), or NULL (a public key, or OpenSSL failed). */
EVP_PKEY *sign_ed25519_pkey(const struct sign_key *k);

/* "v1a,<base64>" of the parts signed with pkey (k's key when pkey is NULL);
 * w (may be NULL) lends its scratch. out is "" on failure. */
void sign_ed25519_standard(EVP_PKEY *pkey, const struct sign_key *k, struct sign_work *w,
			   const struct span *parts, size_t nparts, char out[SIGN_STANDARD_LEN]);

/* The webhook-signature header's entries, the one reading of it both
 * schemes use (Standard Webhooks: a space-delimited list of
 * "<version>,<base64 signature>"): the next entry of version `version`
 * ("v1" or "v1a", compared exactly) after *p, whose signature text (after
 * the first comma, up to the next space; never empty) is put in *sig and
 * *sig_len; *p moves past it. Runs of spaces count as one and spaces at
 * either end are ignored; only the space delimits (a tab is part of an
 * entry); entries of other versions are skipped. False at the end. */
bool sign_header_next(const char **p, const char *version, const char **sig, size_t *sig_len);

/* True if some "v1a," entry of header verifies over the parts with k's
 * public key. The entry must be the canonical base64 of a 64-byte
 * signature, as a v1 entry must be exactly the one HMAC's base64. */
bool sign_ed25519_verify(const struct sign_key *k, const struct span *parts, size_t nparts,
			 const char *header);

#endif
