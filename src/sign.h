/* sign: the three signature schemes hookd sends (DESIGN §3) and checks.
 *  - Standard Webhooks: "v1," + base64(HMAC-SHA256(key, id "." ts "." body)),
 *    key = base64-decoded part of the "whsec_" secret.
 *  - PixelPatrol: lowercase hex HMAC-SHA256(secret string bytes, body).
 *  - GitHub style X-Webhook-Signature: "sha256=" + the same hex. */
#ifndef HOOKD_SIGN_H
#define HOOKD_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIGN_SECRET_PREFIX "whsec_"
#define SIGN_KEY_MIN 24
#define SIGN_KEY_MAX 64
/* "v1," + 44 chars of base64 + NUL */
#define SIGN_STANDARD_LEN 48
/* 64 hex chars + NUL */
#define SIGN_HEX_LEN 65

/* A secret prepared once: the decoded Standard Webhooks key and the raw string. */
struct sign_key {
	unsigned char key[SIGN_KEY_MAX];
	size_t key_len;
	char secret[128];  /* the whole "whsec_..." string */
};

/* Checks and prepares a secret "whsec_" + padded base64 of 24..64 bytes.
 * Returns 0, or -1 (and a reason in err) if it is malformed. */
int sign_key_init(struct sign_key *k, const char *secret, char *err, size_t errlen);

/* Generates a new secret "whsec_" + base64(24 random bytes) into out (64 bytes).
 * Returns 0 or -1 if the random source failed. */
int sign_secret_generate(char out[64]);

/* Standard Webhooks signature into out ("v1,<base64>"). */
void sign_standard(const struct sign_key *k, const char *msg_id, int64_t ts_sec,
		   const char *body, size_t body_len, char out[SIGN_STANDARD_LEN]);

/* Lowercase hex HMAC-SHA256 of body keyed with the whole secret string. */
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

/* Prepares both schemes' keys of k. Returns a new object (free it with
 * sign_prepared_free), or NULL if out of memory or OpenSSL failed. */
struct sign_prepared *sign_prepare(const struct sign_key *k);
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
 * "v1,<b64>" entries; unknown versions are skipped) in constant time.
 * Returns true if any v1 entry matches. */
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
 * Verified = at least one scheme present and every present one passes.
 * Fills *res (reasons never contain header values) and returns res->verified. */
bool sign_check_request(const struct sign_key *k, const struct sign_headers *h, const char *body,
			size_t body_len, int64_t now_ms, int64_t tolerance_s, bool ignore_ts,
			struct sign_check_result *res);

#endif
