/* sign: HMAC-SHA256 signatures in the three schemes hookd sends, their
 * constant-time verification, and the whole-request check that `hookd mock`
 * and `hookd verify` share. Ed25519 keys (v1a) are handed to
 * sign_ed25519.c. */
#include "sign.h"
#include "sign_internal.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "log.h"
#include "util.h"

#define HMAC_LEN 32

/* Fetching the HMAC implementation is slow (a provider lookup), so it is done
 * once per process; an EVP_MAC is safe to share between threads. */
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;
static EVP_MAC *hmac_impl;

static void hmac_fetch(void)
{
	hmac_impl = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

/* The bytes every Standard Webhooks signature covers, msg_id "." ts "."
 * body, as parts; returns how many (at most STD_PARTS). The prefix
 * msg_id "." ts "." is written into pre when it fits (every id hookd makes
 * does), so the HMAC takes two pieces instead of five, and the timestamp
 * is written without snprintf: together about 1k instructions a delivery
 * (docs/performance.md, session 10). A longer msg_id (a header being
 * verified) goes as its own part. */
#define STD_PARTS 3
#define STD_PRE_MAX (ID_MAX + UTIL_I64_DIGITS_MAX + 2)
static size_t std_parts(struct span parts[STD_PARTS], const char *msg_id, int64_t ts_sec,
			char pre[STD_PRE_MAX], const char *body, size_t body_len)
{
	size_t id_len = strlen(msg_id), n = 0, k = 0;
	/* "." ts ".": at most 1 + UTIL_I64_DIGITS_MAX + 1 bytes after the id. */
	if (id_len < ID_MAX) {
		memcpy(pre, msg_id, id_len);
		n = id_len;
	} else {
		parts[k++] = (struct span){msg_id, id_len};
	}
	pre[n++] = '.';
	n = (size_t)(put_i64(pre + n, ts_sec) - pre);
	pre[n++] = '.';
	parts[k++] = (struct span){pre, n};
	parts[k++] = (struct span){body, body_len};
	return k;
}

/* HMAC-SHA256 of the concatenated parts. Returns 0, or -1 if OpenSSL failed. */
static int hmac_sha256(const void *key, size_t key_len, const struct span *parts, size_t nparts,
		       unsigned char out[HMAC_LEN])
{
	int rc = -1;
	EVP_MAC_CTX *ctx = NULL;
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};
	size_t out_len = 0;

	pthread_once(&hmac_once, hmac_fetch);
	if (hmac_impl == NULL)
		goto out;
	ctx = EVP_MAC_CTX_new(hmac_impl);
	if (ctx == NULL || EVP_MAC_init(ctx, key, key_len, params) != 1)
		goto out;
	for (size_t i = 0; i < nparts; i++) {
		if (parts[i].len > 0 && EVP_MAC_update(ctx, parts[i].p, parts[i].len) != 1)
			goto out;
	}
	if (EVP_MAC_final(ctx, out, &out_len, HMAC_LEN) != 1 || out_len != HMAC_LEN)
		goto out;
	rc = 0;
out:
	EVP_MAC_CTX_free(ctx);
	return rc;
}

/* ---- prepared keys ---- */

#define HMAC_BLOCK 64

static pthread_once_t sha_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha_impl;

static void sha_fetch(void)
{
	sha_impl = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static void hmac_prepared_clear(struct hmac_prepared *h)
{
	EVP_MD_CTX_free(h->in);
	EVP_MD_CTX_free(h->out);
	h->in = h->out = NULL;
}

static int hmac_prepare(struct hmac_prepared *h, const void *key, size_t key_len)
{
	unsigned char block[HMAC_BLOCK], pad[HMAC_BLOCK];
	unsigned int n = 0;
	int rc = -1;

	memset(block, 0, sizeof block);
	h->in = EVP_MD_CTX_new();
	h->out = EVP_MD_CTX_new();
	if (sha_impl == NULL || h->in == NULL || h->out == NULL)
		goto out;
	if (key_len > HMAC_BLOCK) {
		/* A key longer than the block is replaced by its digest. */
		if (EVP_DigestInit_ex(h->in, sha_impl, NULL) != 1 ||
		    EVP_DigestUpdate(h->in, key, key_len) != 1 ||
		    EVP_DigestFinal_ex(h->in, block, &n) != 1)
			goto out;
	} else {
		memcpy(block, key, key_len);
	}
	for (size_t i = 0; i < HMAC_BLOCK; i++)
		pad[i] = block[i] ^ 0x36;
	if (EVP_DigestInit_ex(h->in, sha_impl, NULL) != 1 ||
	    EVP_DigestUpdate(h->in, pad, HMAC_BLOCK) != 1)
		goto out;
	for (size_t i = 0; i < HMAC_BLOCK; i++)
		pad[i] = block[i] ^ 0x5c;
	if (EVP_DigestInit_ex(h->out, sha_impl, NULL) != 1 ||
	    EVP_DigestUpdate(h->out, pad, HMAC_BLOCK) != 1)
		goto out;
	rc = 0;
out:
	OPENSSL_cleanse(block, sizeof block);
	OPENSSL_cleanse(pad, sizeof pad);
	if (rc != 0)
		hmac_prepared_clear(h);
	return rc;
}

/* HMAC-SHA256 of the concatenated parts with a prepared key; w's digest
 * state is overwritten. Returns 0, or -1 if OpenSSL failed. */
static int hmac_prepared_run(const struct hmac_prepared *h, struct sign_work *w,
			     const struct span *parts, size_t nparts, unsigned char out[HMAC_LEN])
{
	unsigned char inner[HMAC_LEN];
	unsigned int n = 0;

	if (h->in == NULL || EVP_MD_CTX_copy_ex(w->md, h->in) != 1)
		return -1; /* not prepared (sign_prepare_schemes) */
	for (size_t i = 0; i < nparts; i++) {
		if (parts[i].len > 0 && EVP_DigestUpdate(w->md, parts[i].p, parts[i].len) != 1)
			return -1;
	}
	if (EVP_DigestFinal_ex(w->md, inner, &n) != 1 || n != HMAC_LEN)
		return -1;
	if (EVP_MD_CTX_copy_ex(w->md, h->out) != 1 ||
	    EVP_DigestUpdate(w->md, inner, HMAC_LEN) != 1 ||
	    EVP_DigestFinal_ex(w->md, out, &n) != 1 || n != HMAC_LEN)
		return -1;
	return 0;
}

struct sign_prepared *sign_prepare(const struct sign_key *k)
{
	return sign_prepare_schemes(k, SIGN_SCHEMES_ALL);
}

struct sign_prepared *sign_prepare_schemes(const struct sign_key *k, unsigned schemes)
{
	if (schemes == 0)
		schemes = SIGN_SCHEMES_ALL;
	pthread_once(&sha_once, sha_fetch);
	if (k->alg == SIGN_ED25519_PUBLIC)
		return NULL;
	struct sign_prepared *p = calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	p->alg = k->alg;
	if (k->alg == SIGN_ED25519) {
		if ((p->pkey = sign_ed25519_pkey(k)) == NULL) {
			free(p);
			return NULL;
		}
		return p;
	}
	if ((schemes & SIGN_SCHEME_STANDARD && hmac_prepare(&p->std, k->key, k->key_len) != 0) ||
	    (schemes & SIGN_SCHEMES_HEX &&
	     hmac_prepare(&p->hex, k->secret, strlen(k->secret)) != 0)) {
		sign_prepared_free(p);
		return NULL;
	}
	return p;
}

void sign_prepared_free(struct sign_prepared *p)
{
	if (p == NULL)
		return;
	hmac_prepared_clear(&p->std);
	hmac_prepared_clear(&p->hex);
	EVP_PKEY_free(p->pkey);
	free(p);
}

struct sign_work *sign_work_new(void)
{
	struct sign_work *w = calloc(1, sizeof *w);
	if (w == NULL)
		return NULL;
	w->md = EVP_MD_CTX_new();
	if (w->md == NULL) {
		free(w);
		return NULL;
	}
	return w;
}

void sign_work_free(struct sign_work *w)
{
	if (w == NULL)
		return;
	EVP_MD_CTX_free(w->md);
	EVP_MD_CTX_free(w->sig);
	free(w->msg);
	free(w);
}

void sign_standard_prepared(const struct sign_prepared *p, struct sign_work *w,
			    const char *msg_id, int64_t ts_sec, const char *body, size_t body_len,
			    char out[SIGN_STANDARD_LEN])
{
	char pre[STD_PRE_MAX];
	unsigned char mac[HMAC_LEN];
	struct span parts[STD_PARTS];
	size_t np = std_parts(parts, msg_id, ts_sec, pre, body, body_len);

	out[0] = '\0';
	if (p->alg == SIGN_ED25519) {
		sign_ed25519_standard(p->pkey, NULL, w, parts, np, out);
		return;
	}
	if (hmac_prepared_run(&p->std, w, parts, np, mac) != 0) {
		log_error("sign failed scheme=standard reason=openssl");
		return;
	}
	memcpy(out, "v1,", 3);
	EVP_EncodeBlock((unsigned char *)out + 3, mac, HMAC_LEN);
}

void sign_hex_prepared(const struct sign_prepared *p, struct sign_work *w, const char *body,
		       size_t body_len, char out[SIGN_HEX_LEN])
{
	unsigned char mac[HMAC_LEN];
	struct span part = {body, body_len};

	if (p->alg != SIGN_HMAC) {
		out[0] = '\0'; /* no hex scheme for an Ed25519 key */
		return;
	}
	if (hmac_prepared_run(&p->hex, w, &part, 1, mac) != 0) {
		log_error("sign failed scheme=hex reason=openssl");
		out[0] = '\0';
		return;
	}
	hex_encode(mac, HMAC_LEN, out);
}

int sign_key_init(struct sign_key *k, const char *secret, char *err, size_t errlen)
{
	int rc = -1;
	unsigned char *key = NULL;
	size_t key_len = 0;
	size_t plen = strlen(SIGN_SECRET_PREFIX);
	size_t slen = strlen(secret);

	if (strncmp(secret, SIGN_ED25519_SECRET_PREFIX, strlen(SIGN_ED25519_SECRET_PREFIX)) == 0 ||
	    strncmp(secret, SIGN_ED25519_PUBLIC_PREFIX, strlen(SIGN_ED25519_PUBLIC_PREFIX)) == 0)
		return sign_ed25519_key_init(k, secret, err, errlen);
	if (strncmp(secret, SIGN_SECRET_PREFIX, plen) != 0) {
		snprintf(err, errlen, "secret must start with \"%s\" (HMAC) or \"%s\" (Ed25519)",
			 SIGN_SECRET_PREFIX, SIGN_ED25519_SECRET_PREFIX);
		goto out;
	}
	if (slen >= sizeof k->secret) {
		snprintf(err, errlen, "secret is too long (the key must be %d..%d bytes)",
			 SIGN_KEY_MIN, SIGN_KEY_MAX);
		goto out;
	}
	if (b64_decode(secret + plen, &key, &key_len) != 0) {
		snprintf(err, errlen, "secret after \"%s\" must be padded standard base64",
			 SIGN_SECRET_PREFIX);
		goto out;
	}
	if (key_len < SIGN_KEY_MIN || key_len > SIGN_KEY_MAX) {
		snprintf(err, errlen, "secret key must be %d..%d bytes, got %zu", SIGN_KEY_MIN,
			 SIGN_KEY_MAX, key_len);
		goto out;
	}
	sign_key_set(k, SIGN_HMAC, key, key_len, secret, slen);
	rc = 0;
out:
	sign_key_bytes_free(key, key_len);
	return rc;
}

void sign_key_set(struct sign_key *k, enum sign_alg alg, const unsigned char *key, size_t len,
		  const char *secret, size_t slen)
{
	memset(k, 0, sizeof *k);
	k->alg = alg;
	memcpy(k->key, key, len);
	k->key_len = len;
	memcpy(k->secret, secret, slen + 1);
}

void sign_key_bytes_free(unsigned char *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

int sign_secret_generate(char out[64])
{
	unsigned char key[SIGN_KEY_MIN];
	char *b64 = NULL;
	int rc = -1;

	/* 24 bytes: base64 without '=' (Go's library compares base64 strings). */
	if (random_bytes(key, sizeof key) != 0)
		goto out;
	b64 = b64_encode(key, sizeof key);
	if (b64 == NULL)
		goto out;
	snprintf(out, 64, "%s%s", SIGN_SECRET_PREFIX, b64);
	rc = 0;
out:
	OPENSSL_cleanse(key, sizeof key);
	free(b64);
	return rc;
}

int sign_secret_new(enum sign_alg alg, char out[SIGN_SECRET_MAX])
{
	if (alg == SIGN_HMAC)
		return sign_secret_generate(out);
	if (alg == SIGN_ED25519)
		return sign_ed25519_generate(out);
	return -1;
}

const char *sign_alg_name(enum sign_alg alg)
{
	return alg == SIGN_HMAC ? "hmac" : "ed25519";
}

int sign_choice(const char *secret, const char *signing, enum sign_alg *alg, const char **field,
		char *msg, size_t msglen)
{
	struct sign_key k;
	enum sign_alg want = SIGN_HMAC;

	*field = "signing";
	if (signing != NULL && strcmp(signing, "hmac") != 0 && strcmp(signing, "ed25519") != 0) {
		snprintf(msg, msglen, "must be \"hmac\" or \"ed25519\"");
		return -1;
	}
	if (signing != NULL && strcmp(signing, "ed25519") == 0)
		want = SIGN_ED25519;
	if (secret == NULL) {
		*alg = want;
		return 0;
	}
	*field = "secret";
	if (sign_key_init(&k, secret, msg, msglen) != 0)
		return -1;
	OPENSSL_cleanse(k.key, sizeof k.key);
	if (k.alg == SIGN_ED25519_PUBLIC) {
		snprintf(msg, msglen, "a \"%s\" public key cannot sign: give the \"%s\" secret",
			 SIGN_ED25519_PUBLIC_PREFIX, SIGN_ED25519_SECRET_PREFIX);
		return -1;
	}
	if (signing != NULL && k.alg != want) {
		snprintf(msg, msglen, "a \"%s\" secret does not fit signing \"%s\"",
			 k.alg == SIGN_HMAC ? SIGN_SECRET_PREFIX : SIGN_ED25519_SECRET_PREFIX,
			 signing);
		return -1;
	}
	*alg = k.alg;
	return 0;
}

/* On an OpenSSL failure out is "", which never verifies. */
void sign_standard(const struct sign_key *k, const char *msg_id, int64_t ts_sec, const char *body,
		   size_t body_len, char out[SIGN_STANDARD_LEN])
{
	char pre[STD_PRE_MAX];
	unsigned char mac[HMAC_LEN];
	struct span parts[STD_PARTS];
	size_t np = std_parts(parts, msg_id, ts_sec, pre, body, body_len);

	out[0] = '\0';
	if (k->alg != SIGN_HMAC) {
		sign_ed25519_standard(NULL, k, NULL, parts, np, out);
		return;
	}
	if (hmac_sha256(k->key, k->key_len, parts, np, mac) != 0) {
		log_error("sign failed scheme=standard reason=openssl");
		return;
	}
	memcpy(out, "v1,", 3);
	EVP_EncodeBlock((unsigned char *)out + 3, mac, HMAC_LEN);
}

void sign_hex(const struct sign_key *k, const char *body, size_t body_len, char out[SIGN_HEX_LEN])
{
	unsigned char mac[HMAC_LEN];
	struct span part = {body, body_len};

	/* The seed's verifySignature keys the HMAC with the whole secret string. */
	if (k->alg != SIGN_HMAC) {
		out[0] = '\0';
		return;
	}
	if (hmac_sha256(k->secret, strlen(k->secret), &part, 1, mac) != 0) {
		log_error("sign failed scheme=hex reason=openssl");
		out[0] = '\0';
		return;
	}
	hex_encode(mac, HMAC_LEN, out);
}

/* Parses a non-negative decimal integer with no sign, spaces or junk. */
static int parse_uint(const char *s, int64_t *out)
{
	int64_t v = 0;
	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (INT64_MAX - (*s - '0')) / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return 0;
}

/* Constant-time equality of two byte strings; the time depends only on lengths. */
static bool ct_memeq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return false;
	return CRYPTO_memcmp(a, b, alen) == 0;
}

bool sign_header_next(const char **p, const char *version, const char **sig, size_t *sig_len)
{
	size_t vlen = strlen(version);
	const char *s = *p;
	for (;;) {
		while (*s == ' ')
			s++;
		if (*s == '\0')
			break;
		const char *end = s;
		while (*end != '\0' && *end != ' ')
			end++;
		size_t len = (size_t)(end - s);
		if (len > vlen + 1 && memcmp(s, version, vlen) == 0 && s[vlen] == ',') {
			*sig = s + vlen + 1;
			*sig_len = len - vlen - 1;
			*p = end;
			return true;
		}
		s = end;
	}
	*p = s;
	return false;
}

bool sign_verify_standard(const struct sign_key *k, const char *msg_id, const char *ts,
			  const char *body, size_t body_len, const char *header)
{
	int64_t ts_sec;
	char expected[SIGN_STANDARD_LEN];
	bool match = false;

	if (msg_id == NULL || ts == NULL || header == NULL || parse_uint(ts, &ts_sec) != 0)
		return false;
	if (k->alg != SIGN_HMAC) {
		char pre[STD_PRE_MAX];
		struct span parts[STD_PARTS];
		size_t np = std_parts(parts, msg_id, ts_sec, pre, body, body_len);
		return sign_ed25519_verify(k, parts, np, header);
	}
	/* The reference libraries parse the timestamp and sign its integer form. */
	sign_standard(k, msg_id, ts_sec, body, body_len, expected);
	if (expected[0] == '\0')
		return false;
	size_t elen = strlen(expected);

	/* Every entry is compared so the time does not reveal which one matched. */
	const char *p = header, *sig;
	size_t len;
	while (sign_header_next(&p, "v1", &sig, &len)) {
		if (ct_memeq(sig, len, expected + 3, elen - 3))
			match = true;
	}
	return match;
}

bool sign_verify_hex(const struct sign_key *k, const char *body, size_t body_len,
		     const char *header, const char *prefix)
{
	char expected[SIGN_HEX_LEN];

	if (header == NULL)
		return false;
	if (prefix != NULL) {
		size_t plen = strlen(prefix);
		if (strncmp(header, prefix, plen) != 0)
			return false;
		header += plen;
	}
	sign_hex(k, body, body_len, expected);
	if (expected[0] == '\0')
		return false;
	return ct_streq(header, expected);
}

void sign_headers_collect(struct sign_headers *h, const char *(*get)(void *ctx, const char *name),
			  void *ctx)
{
	h->webhook_id = get(ctx, "webhook-id");
	h->webhook_timestamp = get(ctx, "webhook-timestamp");
	h->webhook_signature = get(ctx, "webhook-signature");
	h->pp_timestamp = get(ctx, "x-pixelpatrol-timestamp");
	h->pp_signature = get(ctx, "x-pixelpatrol-signature");
	h->x_webhook_signature = get(ctx, "x-webhook-signature");
}

/* Appends "; "-separated text to the reason. */
static void add_reason(struct sign_check_result *res, const char *text)
{
	size_t len = strlen(res->reason);
	snprintf(res->reason + len, sizeof res->reason - len, "%s%s", len > 0 ? "; " : "", text);
}

/* Returns NULL if ts (in units per second) is within tolerance of now, else why not. */
static const char *check_window(const char *ts, int64_t now, int64_t tolerance, bool ignore_ts,
				const char *missing, const char *bad, const char *old,
				const char *future)
{
	int64_t v;
	if (ts == NULL)
		return missing;
	if (parse_uint(ts, &v) != 0)
		return bad;
	if (ignore_ts)
		return NULL;
	if (v < now && now - v > tolerance)
		return old;
	if (v > now && v - now > tolerance)
		return future;
	return NULL;
}

static enum sign_check_state check_standard(const struct sign_key *k, const struct sign_headers *h,
					    const char *body, size_t body_len, int64_t now_ms,
					    int64_t tolerance_s, bool ignore_ts,
					    struct sign_check_result *res)
{
	const char *why;
	if (h->webhook_signature == NULL)
		return SIGN_CHECK_ABSENT;
	if (h->webhook_id == NULL) {
		add_reason(res, "webhook-id missing");
		return SIGN_CHECK_FAIL;
	}
	why = check_window(h->webhook_timestamp, now_ms / 1000, tolerance_s, ignore_ts,
			   "webhook-timestamp missing", "webhook-timestamp is not unix seconds",
			   "webhook-timestamp too old", "webhook-timestamp too far in the future");
	if (why != NULL) {
		add_reason(res, why);
		return SIGN_CHECK_FAIL;
	}
	if (!sign_verify_standard(k, h->webhook_id, h->webhook_timestamp, body, body_len,
				  h->webhook_signature)) {
		add_reason(res, "webhook-signature does not match");
		return SIGN_CHECK_FAIL;
	}
	return SIGN_CHECK_PASS;
}

static enum sign_check_state check_pixelpatrol(const struct sign_key *k,
					       const struct sign_headers *h, const char *body,
					       size_t body_len, int64_t now_ms, int64_t tolerance_s,
					       bool ignore_ts, struct sign_check_result *res)
{
	if (h->pp_signature == NULL || k->alg != SIGN_HMAC)
		return SIGN_CHECK_ABSENT;
	/* The seed's verifySignature needs the timestamp even though it is not
	 * signed; with ignore_ts a missing one is fine. */
	if (!ignore_ts || h->pp_timestamp != NULL) {
		int64_t tol_ms = tolerance_s > INT64_MAX / 1000 ? INT64_MAX : tolerance_s * 1000;
		const char *why = check_window(h->pp_timestamp, now_ms, tol_ms, ignore_ts,
					       "x-pixelpatrol-timestamp missing",
					       "x-pixelpatrol-timestamp is not unix milliseconds",
					       "x-pixelpatrol-timestamp too old",
					       "x-pixelpatrol-timestamp too far in the future");
		if (why != NULL) {
			add_reason(res, why);
			return SIGN_CHECK_FAIL;
		}
	}
	if (!sign_verify_hex(k, body, body_len, h->pp_signature, NULL)) {
		add_reason(res, "x-pixelpatrol-signature does not match");
		return SIGN_CHECK_FAIL;
	}
	return SIGN_CHECK_PASS;
}

bool sign_check_request(const struct sign_key *k, const struct sign_headers *h, const char *body,
			size_t body_len, int64_t now_ms, int64_t tolerance_s, bool ignore_ts,
			struct sign_check_result *res)
{
	memset(res, 0, sizeof *res);
	res->standard =
		check_standard(k, h, body, body_len, now_ms, tolerance_s, ignore_ts, res);
	res->pixelpatrol =
		check_pixelpatrol(k, h, body, body_len, now_ms, tolerance_s, ignore_ts, res);
	res->webhook_signature = SIGN_CHECK_ABSENT;
	if (h->x_webhook_signature != NULL && k->alg == SIGN_HMAC) {
		if (sign_verify_hex(k, body, body_len, h->x_webhook_signature, "sha256=")) {
			res->webhook_signature = SIGN_CHECK_PASS;
		} else {
			add_reason(res, "x-webhook-signature does not match");
			res->webhook_signature = SIGN_CHECK_FAIL;
		}
	}

	bool any = res->standard != SIGN_CHECK_ABSENT || res->pixelpatrol != SIGN_CHECK_ABSENT ||
		   res->webhook_signature != SIGN_CHECK_ABSENT;
	bool failed = res->standard == SIGN_CHECK_FAIL || res->pixelpatrol == SIGN_CHECK_FAIL ||
		      res->webhook_signature == SIGN_CHECK_FAIL;
	if (!any)
		add_reason(res, "no signature headers");
	res->verified = any && !failed;
	return res->verified;
}
