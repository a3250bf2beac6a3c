/* Unit tests for sign: the Standard Webhooks vectors, the seed's hex scheme,
 * verification of headers, secret validation and the whole-request check. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <inttypes.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sign.h"
#include "sign_internal.h"
#include "util.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* "whsec_" + base64 of 64 bytes of 'k' (padded with "==") */
#define SECRET_64 \
	"whsec_a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2" \
	"tra2tra2tra2traw=="

static void key_init_ok(struct sign_key *k, const char *secret)
{
	char err[128] = "";
	cr_assert_eq(sign_key_init(k, secret, err, sizeof err), 0, "secret %s: %s", secret, err);
}

/* The Standard Webhooks test vectors (from the spec's reference libraries). */
static const struct {
	const char *secret, *id;
	int64_t ts;
	const char *body, *sig;
} std_vectors[] = {
	{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
	 "{\"test\": 2432232314}", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
	{"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553,
	 "{\"email\":\"test@example.com\",\"username\":\"test_user\"}",
	 "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="},
	/* A 64-byte key (padded base64), computed with Python's hmac module. */
	{SECRET_64, "evt_1", 1700000000, "{\"a\":1}",
	 "v1,A74IpRRk44Tei3lZpbZ9dfbuvO/1dHanzXmDjglIK/8="},
};

Test(standard, vectors)
{
	for (size_t i = 0; i < N_ELEMS(std_vectors); i++) {
		struct sign_key k;
		char sig[SIGN_STANDARD_LEN];
		key_init_ok(&k, std_vectors[i].secret);
		sign_standard(&k, std_vectors[i].id, std_vectors[i].ts, std_vectors[i].body,
			      strlen(std_vectors[i].body), sig);
		cr_assert_str_eq(sig, std_vectors[i].sig, "vector %zu", i);
	}
}

/* The signed bytes are msg_id "." ts "." body however the message id and
 * timestamp are laid out for the HMAC (std_parts writes the prefix in one
 * piece when the id is shorter than ID_MAX, else the id goes alone): both
 * forms, ids around that bound, and extreme timestamps, against OpenSSL's
 * one-shot HMAC of the message written out with snprintf. */
Test(standard, message_layouts_agree_with_one_shot_hmac)
{
	static const size_t id_lens[] = {1, 5, ID_MAX - 2, ID_MAX - 1, ID_MAX, ID_MAX + 1, 200};
	static const int64_t stamps[] = {0, 1, 9, 10, 1700000000, -1, INT64_MAX, INT64_MIN};
	const char *body = "{\"a\":1}";
	struct sign_key k;
	key_init_ok(&k, SECRET_64);
	struct sign_prepared *p = sign_prepare(&k);
	struct sign_work *w = sign_work_new();
	cr_assert(p != NULL && w != NULL);
	for (size_t i = 0; i < N_ELEMS(id_lens); i++) {
		char id[256];
		for (size_t j = 0; j < id_lens[i]; j++)
			id[j] = (char)('a' + j % 26);
		id[id_lens[i]] = '\0';
		for (size_t t = 0; t < N_ELEMS(stamps); t++) {
			char msg[512], want[SIGN_STANDARD_LEN], got[SIGN_STANDARD_LEN];
			int n = snprintf(msg, sizeof msg, "%s.%" PRId64 ".%s", id, stamps[t], body);
			unsigned char mac[32];
			unsigned int mac_len = 0;
			cr_assert_not_null(HMAC(EVP_sha256(), k.key, (int)k.key_len,
						(const unsigned char *)msg, (size_t)n, mac, &mac_len));
			memcpy(want, "v1,", 3);
			EVP_EncodeBlock((unsigned char *)want + 3, mac, (int)mac_len);
			sign_standard(&k, id, stamps[t], body, strlen(body), got);
			cr_assert_str_eq(got, want, "id length %zu ts %" PRId64, id_lens[i], stamps[t]);
			sign_standard_prepared(p, w, id, stamps[t], body, strlen(body), got);
			cr_assert_str_eq(got, want, "prepared, id length %zu ts %" PRId64, id_lens[i],
					 stamps[t]);
		}
	}
	sign_work_free(w);
	sign_prepared_free(p);
}

Test(standard, vector_keys_are_24_bytes)
{
	struct sign_key k;
	key_init_ok(&k, std_vectors[0].secret);
	cr_assert_eq(k.key_len, 24);
	key_init_ok(&k, std_vectors[1].secret);
	cr_assert_eq(k.key_len, 24);
	cr_assert_str_eq(k.secret, std_vectors[1].secret);
}

/* The seed's hex scheme: HMAC-SHA256 keyed with the whole secret string.
 * Expected values from `echo -n BODY | openssl dgst -sha256 -hmac SECRET`. */
static const struct {
	const char *secret, *body, *hex;
} hex_vectors[] = {
	{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "{\"test\": 2432232314}",
	 "80ec8a89ce3cd22133a1066caecb4d04fea7467657c8514d717ec42c38a5c94c"},
	{"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
	 "{\"email\":\"test@example.com\",\"username\":\"test_user\"}",
	 "e0fc16c6d4a28f39a6e0935569f05d86e87367db24a4b6d9271215c603e49f6a"},
	{SECRET_64, "{\"a\":1}",
	 "1cf8de1e612c6267b57ddb9477ba12efdae86d77cc22dfa9d9989615fb3f1a57"},
};

Test(hex, vectors)
{
	for (size_t i = 0; i < N_ELEMS(hex_vectors); i++) {
		struct sign_key k;
		char hex[SIGN_HEX_LEN];
		key_init_ok(&k, hex_vectors[i].secret);
		sign_hex(&k, hex_vectors[i].body, strlen(hex_vectors[i].body), hex);
		cr_assert_str_eq(hex, hex_vectors[i].hex, "vector %zu", i);
	}
}

/* ---- prepared keys: the same signatures as the functions above ---- */

Test(prepared, vectors)
{
	struct sign_work *w = sign_work_new();
	cr_assert_not_null(w);
	for (size_t i = 0; i < N_ELEMS(std_vectors); i++) {
		struct sign_key k;
		char sig[SIGN_STANDARD_LEN];
		key_init_ok(&k, std_vectors[i].secret);
		struct sign_prepared *p = sign_prepare(&k);
		cr_assert_not_null(p);
		sign_standard_prepared(p, w, std_vectors[i].id, std_vectors[i].ts,
				       std_vectors[i].body, strlen(std_vectors[i].body), sig);
		cr_assert_str_eq(sig, std_vectors[i].sig, "vector %zu", i);
		sign_prepared_free(p);
	}
	for (size_t i = 0; i < N_ELEMS(hex_vectors); i++) {
		struct sign_key k;
		char hex[SIGN_HEX_LEN];
		key_init_ok(&k, hex_vectors[i].secret);
		struct sign_prepared *p = sign_prepare(&k);
		cr_assert_not_null(p);
		sign_hex_prepared(p, w, hex_vectors[i].body, strlen(hex_vectors[i].body), hex);
		cr_assert_str_eq(hex, hex_vectors[i].hex, "vector %zu", i);
		sign_prepared_free(p);
	}
	sign_work_free(w);
}

/* Every key size (the hex scheme's key, the secret string, runs from 38 to
 * 94 bytes: across the 64-byte HMAC block, where a longer key is hashed)
 * and body lengths around the SHA-256 padding boundaries. */
Test(prepared, matches_unprepared)
{
	static const size_t body_lens[] = {0, 1, 55, 56, 63, 64, 65, 119, 120, 1000};
	char body[1000];
	for (size_t i = 0; i < sizeof body; i++)
		body[i] = (char)('!' + (i * 7) % 90);
	struct sign_work *w = sign_work_new();
	cr_assert_not_null(w);
	for (size_t kl = SIGN_KEY_MIN; kl <= SIGN_KEY_MAX; kl++) {
		unsigned char raw[SIGN_KEY_MAX];
		for (size_t i = 0; i < kl; i++)
			raw[i] = (unsigned char)(kl * 31 + i * 17);
		char *b64 = b64_encode(raw, kl);
		cr_assert_not_null(b64);
		char secret[128];
		snprintf(secret, sizeof secret, "whsec_%s", b64);
		free(b64);
		struct sign_key k;
		key_init_ok(&k, secret);
		struct sign_prepared *p = sign_prepare(&k);
		cr_assert_not_null(p);
		for (size_t j = 0; j < N_ELEMS(body_lens); j++) {
			size_t bl = body_lens[j];
			char a[SIGN_STANDARD_LEN], b[SIGN_STANDARD_LEN];
			char ha[SIGN_HEX_LEN], hb[SIGN_HEX_LEN];
			sign_standard(&k, "evt_x", 1700000000 + (int64_t)j, body, bl, a);
			sign_standard_prepared(p, w, "evt_x", 1700000000 + (int64_t)j, body, bl, b);
			cr_assert_str_eq(b, a, "key %zu body %zu", kl, bl);
			cr_assert_eq(strncmp(a, "v1,", 3), 0);
			sign_hex(&k, body, bl, ha);
			sign_hex_prepared(p, w, body, bl, hb);
			cr_assert_str_eq(hb, ha, "key %zu body %zu", kl, bl);
			cr_assert_eq(strlen(ha), SIGN_HEX_LEN - 1);
		}
		sign_prepared_free(p);
	}
	sign_work_free(w);
}

/* A prepared key is not changed by use: two scratch states interleaved give
 * the same signatures, and a signature does not depend on the one before. */
Test(prepared, reusable_and_shared)
{
	struct sign_key k;
	key_init_ok(&k, std_vectors[0].secret);
	struct sign_prepared *p = sign_prepare(&k);
	struct sign_work *w1 = sign_work_new(), *w2 = sign_work_new();
	cr_assert(p != NULL && w1 != NULL && w2 != NULL);
	char s1[SIGN_STANDARD_LEN], s2[SIGN_STANDARD_LEN], h1[SIGN_HEX_LEN], h2[SIGN_HEX_LEN];
	for (int round = 0; round < 3; round++) {
		sign_hex_prepared(p, w1, "other body", 10, h1);
		sign_standard_prepared(p, w2, "other", 1, "x", 1, s2);
		sign_standard_prepared(p, w1, std_vectors[0].id, std_vectors[0].ts,
				       std_vectors[0].body, strlen(std_vectors[0].body), s1);
		cr_assert_str_eq(s1, std_vectors[0].sig, "round %d", round);
		sign_hex_prepared(p, w2, hex_vectors[0].body, strlen(hex_vectors[0].body), h2);
		cr_assert_str_eq(h2, hex_vectors[0].hex, "round %d", round);
	}
	sign_work_free(w1);
	sign_work_free(w2);
	sign_prepared_free(p);
	sign_prepared_free(NULL);
	sign_work_free(NULL);
}

Test(hex, verify)
{
	struct sign_key k;
	key_init_ok(&k, hex_vectors[0].secret);
	const char *body = hex_vectors[0].body;
	size_t len = strlen(body);
	char gh[80];
	snprintf(gh, sizeof gh, "sha256=%s", hex_vectors[0].hex);

	cr_assert(sign_verify_hex(&k, body, len, hex_vectors[0].hex, NULL));
	cr_assert(sign_verify_hex(&k, body, len, gh, "sha256="));
	/* Wrong prefix handling, tampering, truncation, case, garbage. */
	cr_assert_not(sign_verify_hex(&k, body, len, hex_vectors[0].hex, "sha256="));
	cr_assert_not(sign_verify_hex(&k, body, len, gh, NULL));
	cr_assert_not(sign_verify_hex(&k, body, len - 1, hex_vectors[0].hex, NULL));
	cr_assert_not(sign_verify_hex(&k, "{\"test\": 2432232315}", len, hex_vectors[0].hex, NULL));
	cr_assert_not(sign_verify_hex(&k, body, len, hex_vectors[1].hex, NULL));
	char trunc[64];
	memcpy(trunc, hex_vectors[0].hex, 63);
	trunc[63] = '\0';
	cr_assert_not(sign_verify_hex(&k, body, len, trunc, NULL));
	cr_assert_not(sign_verify_hex(&k, body, len, "", NULL));
	cr_assert_not(sign_verify_hex(&k, body, len, "sha256=", "sha256="));
	cr_assert_not(sign_verify_hex(&k, body, len, NULL, NULL));
	/* Uppercase hex is not what the seed's checks compare against. */
	const char *upper = "80EC8A89CE3CD22133A1066CAECB4D04FEA7467657C8514D717EC42C38A5C94C";
	cr_assert_not(sign_verify_hex(&k, body, len, upper, NULL));
}

Test(standard, verify_headers)
{
	struct sign_key k;
	key_init_ok(&k, std_vectors[0].secret);
	const char *id = std_vectors[0].id, *body = std_vectors[0].body;
	const char *good = std_vectors[0].sig;
	const char *other = std_vectors[1].sig;
	size_t len = strlen(body);
	char buf[256];

	static const struct {
		const char *fmt; /* %1$s = the good signature, %2$s = another valid-looking one */
		bool ok;
	} cases[] = {
		{"%1$s", true},
		{"%2$s %1$s", true},
		{"%1$s %2$s", true},
		{"v2,abc %1$s", true},            /* unknown versions are skipped */
		{"v1a,xyz %1$s v0,zz", true},
		{"  %1$s  ", true},               /* stray spaces are tolerated */
		{"%2$s", false},
		{"v2,%1$s", false},
		{"", false},
		{" ", false},
		{"v1,", false},
		{"v1", false},
		{",,,", false},
		{"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE", false},  /* no padding */
		{"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE==", false},
		{"v1,G0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", false},
		{"V1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", false},
		{"%1$s,", false},
		{"x%1$s", false},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		snprintf(buf, sizeof buf, cases[i].fmt, good, other);
#pragma GCC diagnostic pop
		bool ok = sign_verify_standard(&k, id, "1614265330", body, len, buf);
		cr_assert_eq(ok, cases[i].ok, "header '%s'", buf);
	}

	/* Tampered body, timestamp or id. */
	cr_assert_not(sign_verify_standard(&k, id, "1614265330", body, len - 1, good));
	cr_assert_not(sign_verify_standard(&k, id, "1614265331", body, len, good));
	const char *other_id = "msg_p5jXN8AQM9LWM0D4loKWxJeK";
	cr_assert_not(sign_verify_standard(&k, other_id, "1614265330", body, len, good));
	/* Malformed timestamps are refused, not parsed leniently. */
	static const char *bad_ts[] = {"", "-1614265330", "1614265330 ", " 1614265330", "1.6e9",
				       "abc", "99999999999999999999"};
	for (size_t i = 0; i < N_ELEMS(bad_ts); i++)
		cr_assert_not(sign_verify_standard(&k, id, bad_ts[i], body, len, good), "ts '%s'",
			      bad_ts[i]);
	cr_assert_not(sign_verify_standard(&k, NULL, "1614265330", body, len, good));
	cr_assert_not(sign_verify_standard(&k, id, NULL, body, len, good));
	cr_assert_not(sign_verify_standard(&k, id, "1614265330", body, len, NULL));
	/* Another secret does not verify. */
	struct sign_key k2;
	key_init_ok(&k2, std_vectors[1].secret);
	cr_assert_not(sign_verify_standard(&k2, id, "1614265330", body, len, good));
}

Test(standard, verify_long_header_does_not_crash)
{
	struct sign_key k;
	key_init_ok(&k, std_vectors[0].secret);
	size_t n = 100000;
	char *h = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		h[i] = "v1, ,,=a"[i % 8];
	h[n] = '\0';
	cr_assert_not(sign_verify_standard(&k, "id", "1", "", 0, h));
	free(h);
}

Test(secret, invalid)
{
	static const char *cases[] = {
		"",
		"whsec_",
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",           /* no prefix */
		"WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",     /* wrong case */
		"whsec-MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",      /* not a multiple of 4 */
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS*",     /* bad character */
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ",    /* trailing space */
		"whsec_MfKQ9r8GKYqrTwjUPD8I-PZIo2LaLaSw",     /* base64url */
		"whsec_a2tra2tra2tra2tra2tra2tra2s=",          /* 23 bytes */
		"whsec_a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tr"
		"a2tra2tra2tra2tra2tra2s=", /* 65 bytes */
		"whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"
		"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"
		"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB", /* longer than the secret buffer */
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct sign_key k;
		char err[128] = "";
		cr_assert_eq(sign_key_init(&k, cases[i], err, sizeof err), -1, "'%s' accepted",
			     cases[i]);
		cr_assert_neq(err[0], '\0', "an error message for '%s'", cases[i]);
		/* Never echo the secret back in the message. */
		if (strlen(cases[i]) > 10)
			cr_assert_null(strstr(err, cases[i] + 6), "err leaks the secret: %s", err);
	}
}

Test(secret, valid_sizes)
{
	static const struct {
		const char *secret;
		size_t key_len;
	} cases[] = {
		{"whsec_CwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsL", 24},
		{SECRET_64, 64},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct sign_key k;
		key_init_ok(&k, cases[i].secret);
		cr_assert_eq(k.key_len, cases[i].key_len);
	}
}

Test(secret, generated_are_valid_and_24_bytes)
{
	char prev[64] = "";
	for (int i = 0; i < 50; i++) {
		char s[64];
		struct sign_key k;
		cr_assert_eq(sign_secret_generate(s), 0);
		cr_assert_eq(strncmp(s, "whsec_", 6), 0, "%s", s);
		cr_assert_eq(strlen(s), 6 + 32, "%s", s);
		cr_assert_null(strchr(s, '='), "24 bytes need no padding: %s", s);
		key_init_ok(&k, s);
		cr_assert_eq(k.key_len, 24);
		cr_assert_str_neq(s, prev);
		memcpy(prev, s, sizeof prev);
	}
}

/* ---- sign_check_request ---- */

/* A request signed in all three schemes at `now`, as hookd sends it. */
struct signed_req {
	char ts_s[24], ts_ms[24], std[SIGN_STANDARD_LEN], hex[SIGN_HEX_LEN], gh[SIGN_HEX_LEN + 8];
	struct sign_headers h;
};

static const char *BODY = "{\"id\":\"evt_1\",\"event\":\"media.moderated\",\"data\":{}}";
static const char *SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

static void make_req(struct signed_req *r, const struct sign_key *k, int64_t at_ms)
{
	snprintf(r->ts_s, sizeof r->ts_s, "%lld", (long long)(at_ms / 1000));
	snprintf(r->ts_ms, sizeof r->ts_ms, "%lld", (long long)at_ms);
	sign_standard(k, "evt_1", at_ms / 1000, BODY, strlen(BODY), r->std);
	sign_hex(k, BODY, strlen(BODY), r->hex);
	snprintf(r->gh, sizeof r->gh, "sha256=%s", r->hex);
	r->h = (struct sign_headers){
		.webhook_id = "evt_1",
		.webhook_timestamp = r->ts_s,
		.webhook_signature = r->std,
		.pp_timestamp = r->ts_ms,
		.pp_signature = r->hex,
		.x_webhook_signature = r->gh,
	};
}

#define NOW 1795784551123LL

Test(check, all_three_pass)
{
	struct sign_key k;
	struct signed_req r;
	struct sign_check_result res;
	key_init_ok(&k, SECRET);
	make_req(&r, &k, NOW);
	cr_assert(sign_check_request(&k, &r.h, BODY, strlen(BODY), NOW, 300, false, &res), "%s",
		  res.reason);
	cr_assert(res.verified);
	cr_assert_eq(res.standard, SIGN_CHECK_PASS);
	cr_assert_eq(res.pixelpatrol, SIGN_CHECK_PASS);
	cr_assert_eq(res.webhook_signature, SIGN_CHECK_PASS);
	cr_assert_str_eq(res.reason, "");
}

Test(check, table)
{
	enum { A = SIGN_CHECK_ABSENT, P = SIGN_CHECK_PASS, F = SIGN_CHECK_FAIL };
	static const struct {
		const char *name;
		int64_t sign_at;     /* when the request was signed, relative to NOW (ms) */
		/* Headers removed, a bit mask: 1 id, 2 ts, 4 std, 8 ppts, 16 pp, 32 gh */
		int drop;
		const char *body;    /* NULL = the signed body */
		bool ignore_ts;
		bool verified;
		int std, pp, gh;
		const char *reason;  /* substring expected in the reason, or NULL */
	} cases[] = {
		{"all", 0, 0, NULL, false, true, P, P, P, NULL},
		{"only standard", 0, 8 | 16 | 32, NULL, false, true, P, A, A, NULL},
		{"only pixelpatrol", 0, 1 | 2 | 4 | 32, NULL, false, true, A, P, A, NULL},
		{"only x-webhook-signature", 0, 31, NULL, false, true, A, A, P, NULL},
		{"none", 0, 63, NULL, false, false, A, A, A, "no signature headers"},
		{"id/ts without signature is absent", 0, 4 | 16 | 32, NULL, false, false, A, A, A,
		 "no signature headers"},
		{"tampered body", 0, 0, "{\"id\":\"evt_2\"}", false, false, F, F, F,
		 "webhook-signature does not match"},
		{"299 s old", -299000, 0, NULL, false, true, P, P, P, NULL},
		{"301 s old", -301000, 0, NULL, false, false, F, F, P, "webhook-timestamp too old"},
		{"301 s ahead", 301000, 0, NULL, false, false, F, F, P, "too far in the future"},
		{"old but ignored", -86400000, 0, NULL, true, true, P, P, P, NULL},
		{"missing webhook-id", 0, 1, NULL, false, false, F, P, P, "webhook-id missing"},
		{"missing webhook-timestamp", 0, 2, NULL, false, false, F, P, P,
		 "webhook-timestamp missing"},
		{"missing pp timestamp", 0, 8, NULL, false, false, P, F, P,
		 "x-pixelpatrol-timestamp missing"},
		{"missing pp timestamp ignored", 0, 8, NULL, true, true, P, P, P, NULL},
		{"one bad scheme fails the whole", 0, 0, NULL, false, false, P, P, F,
		 "x-webhook-signature does not match"},
	};
	struct sign_key k;
	key_init_ok(&k, SECRET);
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct signed_req r;
		struct sign_check_result res;
		make_req(&r, &k, NOW + cases[i].sign_at);
		if (cases[i].drop & 1)
			r.h.webhook_id = NULL;
		if (cases[i].drop & 2)
			r.h.webhook_timestamp = NULL;
		if (cases[i].drop & 4)
			r.h.webhook_signature = NULL;
		if (cases[i].drop & 8)
			r.h.pp_timestamp = NULL;
		if (cases[i].drop & 16)
			r.h.pp_signature = NULL;
		if (cases[i].drop & 32)
			r.h.x_webhook_signature = NULL;
		if (strcmp(cases[i].name, "one bad scheme fails the whole") == 0)
			r.h.x_webhook_signature = r.hex; /* missing its "sha256=" prefix */
		const char *body = cases[i].body != NULL ? cases[i].body : BODY;
		bool v = sign_check_request(&k, &r.h, body, strlen(body), NOW, 300,
					    cases[i].ignore_ts, &res);
		cr_assert_eq(v, cases[i].verified, "%s: %s", cases[i].name, res.reason);
		cr_assert_eq(res.verified, v);
		cr_assert_eq((int)res.standard, cases[i].std, "%s: standard", cases[i].name);
		cr_assert_eq((int)res.pixelpatrol, cases[i].pp, "%s: pixelpatrol", cases[i].name);
		cr_assert_eq((int)res.webhook_signature, cases[i].gh, "%s: x-webhook-signature",
			     cases[i].name);
		if (cases[i].verified)
			cr_assert_str_eq(res.reason, "", "%s", cases[i].name);
		else
			cr_assert_neq(res.reason[0], '\0', "%s has a reason", cases[i].name);
		if (cases[i].reason != NULL)
			cr_assert_not_null(strstr(res.reason, cases[i].reason), "%s: reason '%s'",
					   cases[i].name, res.reason);
	}
}

Test(check, malformed_values_do_not_crash)
{
	static const char *junk[] = {"", " ", "v1,", "-1", "999999999999999999999999", "sha256=",
				     "\x01\x02", "v1,==== v1,!!!", "1e10"};
	struct sign_key k;
	key_init_ok(&k, SECRET);
	for (size_t i = 0; i < N_ELEMS(junk); i++) {
		struct sign_headers h = {junk[i], junk[i], junk[i], junk[i], junk[i], junk[i]};
		struct sign_check_result res;
		cr_assert_not(sign_check_request(&k, &h, "", 0, NOW, 300, false, &res), "'%s'",
			      junk[i]);
		cr_assert_eq(res.standard, SIGN_CHECK_FAIL);
		cr_assert_eq(res.pixelpatrol, SIGN_CHECK_FAIL);
		cr_assert_eq(res.webhook_signature, SIGN_CHECK_FAIL);
	}
}

static const char *lookup(void *ctx, const char *name)
{
	const char *const *kv = ctx;
	for (; kv[0] != NULL; kv += 2) {
		if (strcmp(kv[0], name) == 0)
			return kv[1];
	}
	return NULL;
}

Test(check, headers_collect)
{
	const char *kv[] = {"webhook-id", "a", "webhook-timestamp", "b", "webhook-signature", "c",
			    "x-pixelpatrol-timestamp", "d", "x-pixelpatrol-signature", "e",
			    "x-webhook-signature", "f", NULL, NULL};
	struct sign_headers h;
	sign_headers_collect(&h, lookup, kv);
	cr_assert_str_eq(h.webhook_id, "a");
	cr_assert_str_eq(h.webhook_timestamp, "b");
	cr_assert_str_eq(h.webhook_signature, "c");
	cr_assert_str_eq(h.pp_timestamp, "d");
	cr_assert_str_eq(h.pp_signature, "e");
	cr_assert_str_eq(h.x_webhook_signature, "f");
	const char *none[] = {NULL, NULL};
	sign_headers_collect(&h, lookup, none);
	cr_assert_null(h.webhook_id);
	cr_assert_null(h.x_webhook_signature);
}

/* ---- Ed25519 (v1a) and several signatures in one header (issue 5) ---- */

/* RFC 8032 test 1's seed and public key in the "whsk_" layout (seed, then
 * public key) and as "whpk_"; the v1a signature of std_vectors[0]'s
 * message was made with Node's crypto.sign(null, …), independently of
 * this code. */
#define ED_SECRET                                                                                  \
	"whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy89qm" \
	"IyWvAhpo9wdRGg=="
#define ED_PUBLIC "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
#define ED_SIG                                                                                     \
	"v1a,fldxM4gAKugP6nnt1hdz3sgGfZ6d99nzrMFnZOELIxbzEHoVmAb2ADpkJK7zgPePmPsle0zV9jSe" \
	"GlHFG2NVAw=="

Test(ed25519, known_vector)
{
	struct sign_key k;
	char sig[SIGN_STANDARD_LEN];
	key_init_ok(&k, ED_SECRET);
	cr_assert_eq(k.alg, SIGN_ED25519);
	cr_assert_eq(k.key_len, 64);
	sign_standard(&k, std_vectors[0].id, std_vectors[0].ts, std_vectors[0].body,
		      strlen(std_vectors[0].body), sig);
	cr_assert_str_eq(sig, ED_SIG);
	/* The prepared path gives the same bytes (Ed25519 is deterministic). */
	struct sign_prepared *p = sign_prepare(&k);
	struct sign_work *w = sign_work_new();
	cr_assert(p != NULL && w != NULL);
	char again[SIGN_STANDARD_LEN], hex[SIGN_HEX_LEN];
	for (int i = 0; i < 3; i++) {
		sign_standard_prepared(p, w, std_vectors[0].id, std_vectors[0].ts,
				       std_vectors[0].body, strlen(std_vectors[0].body), again);
		cr_assert_str_eq(again, ED_SIG);
	}
	/* No hex scheme for an Ed25519 secret. */
	sign_hex_prepared(p, w, "x", 1, hex);
	cr_assert_str_eq(hex, "");
	sign_hex(&k, "x", 1, hex);
	cr_assert_str_eq(hex, "");
	sign_prepared_free(p);
	sign_work_free(w);
}

Test(ed25519, verify_with_public_or_secret_key)
{
	struct sign_key sk, pk;
	const char *id = std_vectors[0].id, *body = std_vectors[0].body;
	key_init_ok(&sk, ED_SECRET);
	key_init_ok(&pk, ED_PUBLIC);
	cr_assert_eq(pk.alg, SIGN_ED25519_PUBLIC);
	cr_assert_eq(pk.key_len, 32);
	cr_assert_null(sign_prepare(&pk), "a public key cannot sign");
	char sig[SIGN_STANDARD_LEN];
	sign_standard(&pk, id, 1, body, strlen(body), sig);
	cr_assert_str_eq(sig, "");
	const struct sign_key *keys[] = {&sk, &pk};
	for (size_t i = 0; i < N_ELEMS(keys); i++) {
		const struct sign_key *k = keys[i];
		cr_assert(sign_verify_standard(k, id, "1614265330", body, strlen(body), ED_SIG));
		cr_assert_not(
			sign_verify_standard(k, id, "1614265331", body, strlen(body), ED_SIG));
		cr_assert_not(sign_verify_standard(k, "msg_other", "1614265330", body, strlen(body),
						   ED_SIG));
		cr_assert_not(sign_verify_standard(k, id, "1614265330", "{}", 2, ED_SIG));
		/* Among other entries, in any position; v1 entries are not v1a. */
		cr_assert(sign_verify_standard(k, id, "1614265330", body, strlen(body),
					       "v1,AAAA " ED_SIG " v1a,AAAA"));
		cr_assert_not(sign_verify_standard(
			k, id, "1614265330", body, strlen(body),
			"v1,fldxM4gAKugP6nnt1hdz3sgGfZ6d99nzrMFnZOELIxbzEHoVmAb2ADpkJK7zgPeP"
			"mPsle0zV9jSeGlHFG2NVAw=="));
		/* Damaged entries: truncated, bad base64, one character changed. */
		cr_assert_not(sign_verify_standard(k, id, "1614265330", body, strlen(body),
						   "v1a,fldxM4gAKugP6nnt"));
		cr_assert_not(sign_verify_standard(
			k, id, "1614265330", body, strlen(body),
			"v1a,!ldxM4gAKugP6nnt1hdz3sgGfZ6d99nzrMFnZOELIxbzEHoVmAb2ADpkJK7zgPeP"
			"mPsle0zV9jSeGlHFG2NVAw=="));
		cr_assert_not(sign_verify_standard(
			k, id, "1614265330", body, strlen(body),
			"v1a,gldxM4gAKugP6nnt1hdz3sgGfZ6d99nzrMFnZOELIxbzEHoVmAb2ADpkJK7zgPeP"
			"mPsle0zV9jSeGlHFG2NVAw=="));
	}
	/* An HMAC key never accepts a v1a entry, and an Ed25519 key no v1 one. */
	struct sign_key hk;
	key_init_ok(&hk, std_vectors[0].secret);
	cr_assert_not(sign_verify_standard(&hk, id, "1614265330", body, strlen(body), ED_SIG));
	cr_assert_not(sign_verify_standard(&sk, id, "1614265330", body, strlen(body),
					   std_vectors[0].sig));
}

Test(ed25519, malformed_keys_refused)
{
	static const char *const bad[] = {
		/* 32 bytes where a secret needs 64 */
		"whsk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
		/* the public half changed: it no longer matches the seed */
		"whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy89qm"
		"IyWvAhpo9wdRGw==",
		/* 64 bytes where a public key needs 32 */
		"whpk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy89qm"
		"IyWvAhpo9wdRGg==",
		"whsk_", "whpk_", "whsk_not base64!", "whsk", "wh_x",
	};
	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		struct sign_key k;
		char err[128] = "";
		cr_assert_eq(sign_key_init(&k, bad[i], err, sizeof err), -1, "%s", bad[i]);
		cr_assert_neq(err[0], '\0', "a reason for %s", bad[i]);
	}
}

Test(ed25519, generated_secrets_sign_and_verify)
{
	char prev[SIGN_SECRET_MAX] = "";
	for (int i = 0; i < 20; i++) {
		char s[SIGN_SECRET_MAX], sig[SIGN_STANDARD_LEN];
		struct sign_key k;
		cr_assert_eq(sign_secret_new(SIGN_ED25519, s), 0);
		cr_assert_eq(strncmp(s, "whsk_", 5), 0, "%s", s);
		cr_assert_eq(strlen(s), 5 + 88, "%s", s);
		key_init_ok(&k, s); /* its public half matches its seed */
		sign_standard(&k, "evt_1", 1700000000, "{}", 2, sig);
		cr_assert_eq(strncmp(sig, "v1a,", 4), 0, "%s", sig);
		cr_assert_eq(strlen(sig), 4 + 88);
		cr_assert(sign_verify_standard(&k, "evt_1", "1700000000", "{}", 2, sig));
		cr_assert_str_neq(s, prev);
		memcpy(prev, s, sizeof prev);
	}
	char s[SIGN_SECRET_MAX];
	cr_assert_eq(sign_secret_new(SIGN_HMAC, s), 0);
	cr_assert_eq(strncmp(s, "whsec_", 6), 0);
	cr_assert_eq(sign_secret_new(SIGN_ED25519_PUBLIC, s), -1);
}

/* A rotation's header: the new secret's entry first, then the old one's,
 * one space between. Each key finds its own entry; a third finds none. */
Test(multi, every_valid_secret_verifies_its_entry)
{
	const char *const secrets[] = {SECRET, "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
				       ED_SECRET};
	const char *body = BODY;
	for (size_t a = 0; a < N_ELEMS(secrets); a++) {
		for (size_t b = 0; b < N_ELEMS(secrets); b++) {
			if (a == b)
				continue;
			struct sign_key ka, kb, other;
			char sa[SIGN_STANDARD_LEN], sb[SIGN_STANDARD_LEN], header[SIGN_HEADER_LEN];
			key_init_ok(&ka, secrets[a]);
			key_init_ok(&kb, secrets[b]);
			key_init_ok(&other, secrets[3 - a - b]);
			sign_standard(&ka, "evt_1", 1700000000, body, strlen(body), sa);
			sign_standard(&kb, "evt_1", 1700000000, body, strlen(body), sb);
			snprintf(header, sizeof header, "%s %s", sa, sb);
			cr_assert_lt(strlen(header), SIGN_HEADER_LEN);
			cr_assert(sign_verify_standard(&ka, "evt_1", "1700000000", body,
						       strlen(body), header),
				  "%zu in %s", a, header);
			cr_assert(sign_verify_standard(&kb, "evt_1", "1700000000", body,
						       strlen(body), header),
				  "%zu in %s", b, header);
			cr_assert_not(sign_verify_standard(&other, "evt_1", "1700000000", body,
							   strlen(body), header));
		}
	}
}

/* With an Ed25519 key, a request's hex headers (HMAC schemes) are not
 * checked: webhook-signature alone decides. */
Test(check, ed25519_key_checks_webhook_signature_only)
{
	struct sign_key k, pk;
	char ts[24], sig[SIGN_STANDARD_LEN];
	struct sign_check_result res;
	key_init_ok(&k, ED_SECRET);
	key_init_ok(&pk, ED_PUBLIC);
	snprintf(ts, sizeof ts, "%lld", NOW / 1000);
	sign_standard(&k, "evt_1", NOW / 1000, BODY, strlen(BODY), sig);
	struct sign_headers h = {.webhook_id = "evt_1", .webhook_timestamp = ts,
				 .webhook_signature = sig, .pp_signature = "00",
				 .x_webhook_signature = "sha256=00"};
	cr_assert(sign_check_request(&pk, &h, BODY, strlen(BODY), NOW, 300, false, &res), "%s",
		  res.reason);
	cr_assert_eq(res.standard, SIGN_CHECK_PASS);
	cr_assert_eq(res.pixelpatrol, SIGN_CHECK_ABSENT);
	cr_assert_eq(res.webhook_signature, SIGN_CHECK_ABSENT);
	cr_assert_not(sign_check_request(&pk, &h, "{}", 2, NOW, 300, false, &res));
	cr_assert_eq(res.standard, SIGN_CHECK_FAIL);
}

Test(choice, table)
{
	static const struct {
		const char *secret, *signing;
		int rc;
		enum sign_alg alg;
		const char *field;
	} cases[] = {
		{NULL, NULL, 0, SIGN_HMAC, NULL},
		{NULL, "hmac", 0, SIGN_HMAC, NULL},
		{NULL, "ed25519", 0, SIGN_ED25519, NULL},
		{NULL, "rsa", -1, 0, "signing"},
		{NULL, "", -1, 0, "signing"},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", NULL, 0, SIGN_HMAC, NULL},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "hmac", 0, SIGN_HMAC, NULL},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "ed25519", -1, 0, "secret"},
		{ED_SECRET, NULL, 0, SIGN_ED25519, NULL},
		{ED_SECRET, "ed25519", 0, SIGN_ED25519, NULL},
		{ED_SECRET, "hmac", -1, 0, "secret"},
		{ED_PUBLIC, NULL, -1, 0, "secret"},
		{"whsec_short", NULL, -1, 0, "secret"},
		{ED_SECRET, "bogus", -1, 0, "signing"},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		enum sign_alg alg = 99;
		const char *field = NULL;
		char msg[192] = "";
		int rc = sign_choice(cases[i].secret, cases[i].signing, &alg, &field, msg,
				     sizeof msg);
		cr_assert_eq(rc, cases[i].rc, "case %zu: %s", i, msg);
		if (rc == 0) {
			cr_assert_eq(alg, cases[i].alg, "case %zu", i);
		} else {
			cr_assert_str_eq(field, cases[i].field, "case %zu", i);
			cr_assert_neq(msg[0], '\0', "case %zu", i);
		}
	}
	cr_assert_str_eq(sign_alg_name(SIGN_HMAC), "hmac");
	cr_assert_str_eq(sign_alg_name(SIGN_ED25519), "ed25519");
}

/* ---- reading the webhook-signature header (one tokenizer, both schemes) ---- */

/* sign_header_next, entry by entry: what it yields of version "v1". */
Test(header, tokenizer_entries)
{
	static const struct {
		const char *header;
		const char *want[3]; /* the v1 signature texts, in order */
	} cases[] = {
		{"v1,a", {"a"}},
		{"  v1,a   v1,b  ", {"a", "b"}},        /* runs of spaces, both ends */
		{"v1a,x v1,a v2,y", {"a"}},            /* other versions skipped */
		{"V1,a v1,b", {"b"}},                  /* the version is exact */
		{"v1, v1,,a v1", {",a"}},              /* empty signature skipped; after the first comma */
		{"v1,a\tv1,b", {"a\tv1,b"}},           /* a tab is no delimiter */
		{"v1,a,b", {"a,b"}},
		{"", {NULL}},
		{"   ", {NULL}},
		{"v1", {NULL}},
		{"v1a,a", {NULL}},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		const char *p = cases[i].header, *sig;
		size_t len, n = 0;
		while (sign_header_next(&p, "v1", &sig, &len)) {
			cr_assert_lt(n, 3, "header '%s'", cases[i].header);
			cr_assert_not_null(cases[i].want[n], "header '%s': extra '%.*s'",
					   cases[i].header, (int)len, sig);
			cr_expect_eq(len, strlen(cases[i].want[n]), "header '%s' #%zu", cases[i].header, n);
			cr_expect(strncmp(sig, cases[i].want[n], len) == 0, "header '%s' #%zu: '%.*s'",
				  cases[i].header, n, (int)len, sig);
			n++;
		}
		cr_expect(n == 3 || cases[i].want[n] == NULL, "header '%s': %zu entries",
			  cases[i].header, n);
		cr_expect_eq(*p, '\0', "header '%s': read to the end", cases[i].header);
	}
}

/* The HMAC (v1) and Ed25519 (v1a) verifiers read a header alike. They used
 * two loops: an Ed25519 entry in non-canonical base64 (the unused low bits
 * of its last character set) verified while the same v1 entry did not;
 * now both refuse it (a signature is the base64 the signer writes). */
Test(header, both_schemes_read_alike)
{
	static const struct {
		const char *fmt;   /* %1$s the right entry, %2$s its version, %3$s its signature */
		bool ok;
	} cases[] = {
		{"%1$s", true},
		{"   %1$s   ", true},
		{"x,abc  %1$s", true},
		{"%2$s,AAAA %1$s", true},
		{"%1$s\tv2,x", false},
		{"\t%1$s", false},
		{"%2$s, %3$s", false},
		{"%2$s,,%3$s", false},
		{"%2$s;%3$s", false},
		{"%1$s,", false},
		{"%1$s=", false},
		{"%3$s", false},
	};
	struct sign_key hk, ek;
	key_init_ok(&hk, std_vectors[0].secret);
	key_init_ok(&ek, ED_SECRET);
	const struct {
		const struct sign_key *k;
		const char *entry, *version;
		size_t unused_at; /* the last data character of the base64 */
	} schemes[] = {
		{&hk, std_vectors[0].sig, "v1", 3 + 42},
		{&ek, ED_SIG, "v1a", 4 + 85},
	};
	const char *id = std_vectors[0].id, *body = std_vectors[0].body;
	char buf[512];
	for (size_t s = 0; s < N_ELEMS(schemes); s++) {
		const char *entry = schemes[s].entry;
		const char *sig = strchr(entry, ',') + 1;
		for (size_t i = 0; i < N_ELEMS(cases); i++) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
			snprintf(buf, sizeof buf, cases[i].fmt, entry, schemes[s].version, sig);
#pragma GCC diagnostic pop
			bool ok = sign_verify_standard(schemes[s].k, id, "1614265330", body,
						       strlen(body), buf);
			cr_expect_eq(ok, cases[i].ok, "%s: header '%s'", schemes[s].version, buf);
		}
		/* The same bytes in non-canonical base64: refused by both. */
		snprintf(buf, sizeof buf, "%s", entry);
		cr_assert(buf[schemes[s].unused_at] == 'E' || buf[schemes[s].unused_at] == 'w');
		buf[schemes[s].unused_at]++;
		cr_expect_not(sign_verify_standard(schemes[s].k, id, "1614265330", body, strlen(body),
						   buf), "%s: non-canonical '%s'", schemes[s].version, buf);
	}
}
