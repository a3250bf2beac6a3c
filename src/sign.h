/* sign: the signature schemes hookd sends (docs/receiving.md#headers) and checks.
 *  - Standard Webhooks: "v1," + base64(HMAC-SHA256(key, id "." ts "." body)),
 *    key = base64-decoded part of the "whsec_" secret; or, for an endpoint
 *    with Ed25519 signing, "v1a," + base64(Ed25519 signature of the same
 *    bytes) with the "whsk_" secret (receivers verify with its "whpk_" key).
 *  - PixelPatrol: lowercase hex HMAC-SHA256(secret string bytes, body).
 *  - GitHub style X-Webhook-Signature: "sha256=" + the same hex.
 * The two hex schemes exist for HMAC secrets only. */
#ifndef HOOKD_SIGN_H
#define HOOKD_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SIGN_SECRET_PREFIX "whsec_"
#define SIGN_KEY_MIN 24
#define SIGN_KEY_MAX 64
/* Ed25519 (Standard Webhooks "asymmetric"): the secret is "whsk_" + padded
 * base64 of 64 bytes, the 32-byte seed then the 32-byte public key (the
 * libsodium / Svix layout); the public key is "whpk_" + base64 of 32 bytes. */
#define SIGN_ED25519_SECRET_PREFIX "whsk_"
#define SIGN_ED25519_PUBLIC_PREFIX "whpk_"
#define SIGN_ED25519_SEED_LEN 32
#define SIGN_ED25519_PUBLIC_LEN 32
/* One signature: "v1a," + 88 chars of base64 + NUL ("v1," + 44 is shorter). */
#define SIGN_STANDARD_LEN 96
/* A webhook-signature value during a rotation: two signatures and a space. */
#define SIGN_HEADER_LEN (2 * SIGN_STANDARD_LEN)
/* 64 hex chars + NUL */
#define SIGN_HEX_LEN 65
/* Any secret or public key string with its NUL. */
#define SIGN_SECRET_MAX 128

enum sign_alg {
	SIGN_HMAC = 0,       /* "whsec_": v1, and the two hex schemes */
	SIGN_ED25519,        /* "whsk_": signs (and verifies) v1a */
	SIGN_ED25519_PUBLIC, /* "whpk_": verifies v1a only */
};

/* The signature schemes an endpoint can get (its "signatures",
 * docs/api.md#endpoint), one bit each; an endpoint gets all three unless it
 * chose fewer. The hex schemes are HMAC only: an Ed25519 endpoint signs
 * with SIGN_SCHEME_STANDARD ("v1a") alone. */
enum sign_scheme {
	SIGN_SCHEME_STANDARD = 1 << 0,          /* "standard": webhook-signature */
	SIGN_SCHEME_PIXELPATROL = 1 << 1,       /* "pixelpatrol": X-PixelPatrol-Signature */
	SIGN_SCHEME_WEBHOOK_SIGNATURE = 1 << 2, /* "webhook_signature": X-Webhook-Signature */
};
#define SIGN_SCHEMES_ALL 7u
#define SIGN_SCHEMES_HEX (SIGN_SCHEME_PIXELPATROL | SIGN_SCHEME_WEBHOOK_SIGNATURE)
#define SIGN_SCHEME_COUNT 3

/* The API name of scheme bit i (0..SIGN_SCHEME_COUNT-1), in the order the
 * API lists them: "standard", "pixelpatrol", "webhook_signature"; NULL past
 * them. (Inline, so model.c needs no OpenSSL.) */
static inline const char *sign_scheme_name(int i)
{
	static const char *const names[SIGN_SCHEME_COUNT] = {"standard", "pixelpatrol",
							     "webhook_signature"};
	return i >= 0 && i < SIGN_SCHEME_COUNT ? names[i] : NULL;
}

/* The bit of a scheme named name, or 0 if it names none. */
static inline unsigned sign_scheme_bit(const char *name)
{
	for (int i = 0; i < SIGN_SCHEME_COUNT; i++)
		if (strcmp(name, sign_scheme_name(i)) == 0)
			return 1u << i;
	return 0;
}

/* The schemes an endpoint with secret kind alg and choice schemes (0 = all)
 * signs with: an Ed25519 key makes only the standard one. 0 = none. */
static inline unsigned sign_schemes_effective(enum sign_alg alg, unsigned schemes)
{
	unsigned s = schemes == 0 ? SIGN_SCHEMES_ALL : schemes & SIGN_SCHEMES_ALL;
	return alg == SIGN_HMAC ? s : s & SIGN_SCHEME_STANDARD;
}

/* A secret prepared once: its kind, the decoded key and the raw string.
 * Plain data (no pointers), so it may be copied. */
struct sign_key {
	enum sign_alg alg;
	/* HMAC: the decoded key; Ed25519: seed then public key; public: the
	 * public key. */
	unsigned char key[SIGN_KEY_MAX];
	size_t key_len;
	char secret[SIGN_SECRET_MAX];  /* the whole "whsec_..."/"whsk_..."/"whpk_..." string */
};

/* Checks and prepares a secret: "whsec_" + padded base64 of 24..64 bytes,
 * "whsk_" + padded base64 of an Ed25519 seed and its public key (64 bytes,
 * the public half must match the seed), or "whpk_" + padded base64 of an
 * Ed25519 public key (32 bytes; it can only verify). Returns 0, or -1 (and
 * a reason in err) if it is malformed. */
int sign_key_init(struct sign_key *k, const char *secret, char *err, size_t errlen);

/* A new secret of kind alg into out: SIGN_HMAC as sign_secret_generate,
 * SIGN_ED25519 a fresh key pair as "whsk_...". Returns 0, or -1 if the
 * random source or OpenSSL failed (or alg cannot sign). */
int sign_secret_new(enum sign_alg alg, char out[SIGN_SECRET_MAX]);

/* What an endpoint create or rotation asked for: secret (NULL = generate
 * one) and signing ("hmac", "ed25519", or NULL = the secret's kind, else
 * hmac). Returns 0 and the kind in *alg, or -1 with the field at fault
 * ("secret" or "signing", static) in *field and why in msg: a malformed
 * secret, an unknown signing, the two disagreeing, or a "whpk_" public
 * key (it cannot sign). */
int sign_choice(const char *secret, const char *signing, enum sign_alg *alg, const char **field,
		char *msg, size_t msglen);

/* The name of an algorithm as the API shows it ("hmac" or "ed25519"). */
const char *sign_alg_name(enum sign_alg alg);

/* Generates a new secret "whsec_" + base64(24 random bytes) into out (64 bytes).
 * Returns 0 or -1 if the random source failed. */
int sign_secret_generate(char out[64]);

/* Standard Webhooks signature into out ("v1,<base64>", or "v1a,<base64>"
 * for an Ed25519 secret; "" for a public key or on an OpenSSL failure). */
void sign_standard(const struct sign_key *k, const char *msg_id, int64_t ts_sec,
		   const char *body, size_t body_len, char out[SIGN_STANDARD_LEN]);

/* Lowercase hex HMAC-SHA256 of body keyed with the whole secret string
 * ("" unless k is an HMAC secret). */
void sign_hex(const struct sign_key *k, const char *body, size_t body_len,
	      char out[SIGN_HEX_LEN]);

/* ---- prepared keys (the dispatcher's fast path) ----
 * The same signatures as sign_standard and sign_hex, with each HMAC key's
 * inner and outer SHA-256 states computed once per endpoint instead of once
 * per message. A struct sign_prepared never changes after sign_prepare, so
 * any number of threads may share it; a struct sign_work is scratch space for
 * one thread at a time. */
struct sign_prepared;
struct sign_work;

/* Prepares both schemes' keys of an HMAC k, or the Ed25519 private key of
 * an Ed25519 k. Returns a new object (free it with sign_prepared_free), or
 * NULL if out of memory, OpenSSL failed or k is a public key. */
struct sign_prepared *sign_prepare(const struct sign_key *k);

/* sign_prepare for the chosen schemes only (SIGN_SCHEME_* bits, 0 = all):
 * an HMAC k's standard key when SIGN_SCHEME_STANDARD is in schemes, its hex
 * key when either hex scheme is. A prepared function asked for a scheme
 * that was not prepared writes "" (as on an OpenSSL failure). */
struct sign_prepared *sign_prepare_schemes(const struct sign_key *k, unsigned schemes);
void sign_prepared_free(struct sign_prepared *p);

/* Scratch state for the prepared functions. NULL if out of memory. */
struct sign_work *sign_work_new(void);
void sign_work_free(struct sign_work *w);

/* sign_standard with a prepared key: the same output (out is "" on an
 * OpenSSL failure). */
void sign_standard_prepared(const struct sign_prepared *p, struct sign_work *w,
			    const char *msg_id, int64_t ts_sec, const char *body, size_t body_len,
			    char out[SIGN_STANDARD_LEN]);

/* sign_hex with a prepared key: the same output ("" on an OpenSSL failure). */
void sign_hex_prepared(const struct sign_prepared *p, struct sign_work *w, const char *body,
		       size_t body_len, char out[SIGN_HEX_LEN]);

/* Verifies a "webhook-signature" header value (one or more space-separated
 * entries; entries of other versions are skipped): "v1,<b64>" entries in
 * constant time for an HMAC key, "v1a,<b64>" entries with the public key of
 * an Ed25519 key. Returns true if any entry matches. */
bool sign_verify_standard(const struct sign_key *k, const char *msg_id, const char *ts,
			  const char *body, size_t body_len, const char *header);

/* Verifies a hex signature ("X-PixelPatrol-Signature") or, with prefix
 * "sha256=", an "X-Webhook-Signature" value, in constant time. */
bool sign_verify_hex(const struct sign_key *k, const char *body, size_t body_len,
		     const char *header, const char *prefix);

/* ---- checking a received request (shared by `hookd mock` and `hookd verify`) ---- */

/* Default allowed clock difference: every Standard Webhooks library uses
 * 300 s; the seed's TypeScript check allows 300000 ms. */
#define SIGN_TOLERANCE_S 300

/* The outcome of one scheme in sign_check_request. */
enum sign_check_state {
	SIGN_CHECK_ABSENT = 0, /* its signature header was not sent */
	SIGN_CHECK_PASS,
	SIGN_CHECK_FAIL,
};

/* The header values a check reads; NULL when a header is absent. */
struct sign_headers {
	const char *webhook_id;
	const char *webhook_timestamp;   /* unix seconds */
	const char *webhook_signature;   /* "v1,<b64>[ v1,<b64>...]" */
	const char *pp_timestamp;        /* X-PixelPatrol-Timestamp, unix ms */
	const char *pp_signature;        /* X-PixelPatrol-Signature, hex */
	const char *x_webhook_signature; /* X-Webhook-Signature, "sha256=<hex>" */
};

/* Fills h by calling get(ctx, name) once per header, with the lowercase name
 * ("webhook-id", "webhook-timestamp", "webhook-signature",
 * "x-pixelpatrol-timestamp", "x-pixelpatrol-signature", "x-webhook-signature");
 * get returns the value (borrowed, must outlive h) or NULL. */
void sign_headers_collect(struct sign_headers *h, const char *(*get)(void *ctx, const char *name),
			  void *ctx);

struct sign_check_result {
	bool verified;
	enum sign_check_state standard;          /* webhook-signature */
	enum sign_check_state pixelpatrol;       /* X-PixelPatrol-Signature */
	enum sign_check_state webhook_signature; /* X-Webhook-Signature */
	/* Why not verified ("; "-separated, one per failing scheme); "" if verified. */
	char reason[256];
};

/* Checks every signature header present in h against key k:
 *  - webhook-signature needs webhook-id and webhook-timestamp, the timestamp within
 *    +-tolerance_s of now_ms;
 *  - X-PixelPatrol-Signature needs X-PixelPatrol-Timestamp (ms) within +-tolerance_s*1000;
 *  - X-Webhook-Signature has no timestamp.
 * ignore_ts skips both time windows (and the need for X-PixelPatrol-Timestamp).
 * With an Ed25519 key ("whsk_"/"whpk_") only webhook-signature (v1a) is
 * checked: the two hex headers are HMAC schemes and count as absent.
 * Verified = at least one scheme present and every present one passes.
 * Fills *res (reasons never contain header values) and returns res->verified. */
bool sign_check_request(const struct sign_key *k, const struct sign_headers *h, const char *body,
			size_t body_len, int64_t now_ms, int64_t tolerance_s, bool ignore_ts,
			struct sign_check_result *res);

#endif
