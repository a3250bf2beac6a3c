/* fuzz_verify: the signature-header side of `hookd verify` and `hookd mock`.
 *
 * The input is a captured request in one of verify's two forms:
 *   - starting with '{': a --request object {"headers":{…},"body":"…"} (or
 *     "body_base64"), read by verify_request_parse;
 *   - else --headers text ("Name: value" lines, curl -D style) read by
 *     verify_parse_header_lines, a blank line, then the body bytes.
 * The headers found go through sign_headers_collect and sign_check_request
 * with fixed keys (an HMAC "whsec_" secret, an Ed25519 "whsk_" secret and
 * its "whpk_" public key) and clock (FUZZ_NOW_MS), with and without the
 * timestamp check. Laws checked: a request verified with the timestamp check
 * is verified without it; verified iff the reason is empty; the Ed25519
 * secret and its public key give the same answers; and the signatures hookd
 * itself makes for this id, timestamp and body verify. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sign.h"
#include "verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The Standard Webhooks documentation's example secret. */
#define FUZZ_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
/* An Ed25519 key pair (seed bytes 1, 8, 15, ...) made with Node's crypto. */
#define FUZZ_ED_SECRET                                                                     \
	"whsk_AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09rkAwmYz9WtFyPBaflWqgueuGGbWZK9YSwq9Cjr" \
	"x5+N8A=="
#define FUZZ_ED_PUBLIC "whpk_5AMJmM/VrRcjwWn5VqoLnrhhm1mSvWEsKvQo68efjfA="
/* 2023-11-14T22:13:20Z: seeds carry webhook-timestamp 1700000000. */
#define FUZZ_NOW_MS INT64_C(1700000000000)

static struct sign_key key, ed_key, ed_public;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[128];
	(void)argc;
	(void)argv;
	if (sign_key_init(&key, FUZZ_SECRET, err, sizeof err) != 0 ||
	    sign_key_init(&ed_key, FUZZ_ED_SECRET, err, sizeof err) != 0 ||
	    sign_key_init(&ed_public, FUZZ_ED_PUBLIC, err, sizeof err) != 0) {
		fprintf(stderr, "fuzz_verify: bad built-in key: %s\n", err);
		abort();
	}
	return 0;
}

static void broken(const char *law)
{
	fprintf(stderr, "verify law broken: %s\n", law);
	abort();
}

/* Where the body starts: after the first blank line (LF or CRLF). *hlen is
 * the header text's length. */
static size_t split_headers(const char *p, size_t size, size_t *hlen)
{
	for (size_t i = 0; i + 1 < size; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i + 1] == '\n') {
			*hlen = i + 1;
			return i + 2;
		}
		if (i + 2 < size && p[i + 1] == '\r' && p[i + 2] == '\n') {
			*hlen = i + 1;
			return i + 3;
		}
	}
	*hlen = size;
	return size;
}

/* Signs this request's id, timestamp and body the way hookd sends them and
 * checks that sign_check_request takes the result. */
static void check_own_signatures(const struct sign_key *k, const struct sign_headers *h,
				 const char *body, size_t body_len)
{
	struct sign_headers own = {0};
	struct sign_check_result res;
	char std[SIGN_STANDARD_LEN], hex[SIGN_HEX_LEN], gh[SIGN_HEX_LEN + 8];
	char *end;

	if (h->webhook_id == NULL || h->webhook_timestamp == NULL)
		return;
	if (h->webhook_timestamp[0] < '0' || h->webhook_timestamp[0] > '9')
		return;
	long long ts = strtoll(h->webhook_timestamp, &end, 10);
	if (*end != '\0' || ts < 0 || ts > INT64_MAX / 1000 || strlen(h->webhook_timestamp) > 18)
		return;
	sign_standard(k, h->webhook_id, ts, body, body_len, std);
	sign_hex(k, body, body_len, hex);
	snprintf(gh, sizeof gh, "sha256=%s", hex);
	own.webhook_id = h->webhook_id;
	own.webhook_timestamp = h->webhook_timestamp;
	own.webhook_signature = std;
	own.x_webhook_signature = gh;
	own.pp_signature = hex;
	if (!sign_check_request(k, &own, body, body_len, FUZZ_NOW_MS, SIGN_TOLERANCE_S, true,
				&res))
		broken("hookd's own signatures verify (timestamp ignored)");
}

/* The laws for one key; returns the answers without and with ignore_ts in
 * bits 0 and 1. */
static int check_key(const struct sign_key *k, bool can_sign, const struct sign_headers *h,
		     const char *body, size_t body_len)
{
	struct sign_check_result strict, loose;
	bool s = sign_check_request(k, h, body, body_len, FUZZ_NOW_MS, SIGN_TOLERANCE_S, false,
				    &strict);
	bool l = sign_check_request(k, h, body, body_len, FUZZ_NOW_MS, SIGN_TOLERANCE_S, true,
				    &loose);
	if (s != strict.verified || l != loose.verified)
		broken("the return value is res.verified");
	if (s && !l)
		broken("verified with the timestamp check but not without it");
	if (s != (strict.reason[0] == '\0') || l != (loose.reason[0] == '\0'))
		broken("verified iff no reason");
	if (memchr(strict.reason, '\0', sizeof strict.reason) == NULL)
		broken("the reason is a terminated string");
	if (can_sign)
		check_own_signatures(k, h, body, body_len);
	return (s ? 1 : 0) | (l ? 2 : 0);
}

static void check(const struct sign_headers *h, const char *body, size_t body_len)
{
	check_key(&key, true, h, body, body_len);
	int ed = check_key(&ed_key, true, h, body, body_len);
	if (check_key(&ed_public, false, h, body, body_len) != ed)
		broken("an Ed25519 secret and its public key verify alike");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct sign_headers h;

	if (size > 0 && text[0] == '{') {
		struct verify_request req;
		char why[256];
		if (verify_request_parse(text, size, &req, why, sizeof why) == 0) {
			sign_headers_collect(&h, verify_header_lookup, req.headers);
			check(&h, req.body, req.body_len);
		} else if (why[0] == '\0') {
			broken("a refused --request says why");
		}
		verify_request_free(&req);
		return 0;
	}

	size_t hlen;
	size_t body_at = split_headers(text, size, &hlen);
	json_t *headers = verify_parse_header_lines(text, hlen);
	if (headers == NULL)
		abort(); /* out of memory */
	const char *name;
	json_t *val;
	json_object_foreach(headers, name, val) {
		if (!json_is_string(val))
			broken("header values are strings");
		for (const char *c = name; *c; c++) {
			if (*c >= 'A' && *c <= 'Z')
				broken("header names are lowercased");
		}
	}
	sign_headers_collect(&h, verify_header_lookup, headers);
	check(&h, text + body_at, size - body_at);
	json_decref(headers);
	return 0;
}
