/* Unit tests for dispatch_http's request building: the body is byte for byte
 * event_delivery_body, the header lines are exact and their signatures
 * verify, and the reused buffers (body, created_at, URL) never carry
 * anything over from the attempt before. */
#include <criterion/criterion.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch_http.h"
#include "util.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static struct dispatch_http_pool pool;
static struct ep_entry ep;

static void setup(void)
{
	cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
	memset(&pool, 0, sizeof pool);
	pool.timeout_ms = 1000;
	pool.allow_http = true;
	memset(&ep, 0, sizeof ep);
	snprintf(ep.id, sizeof ep.id, "ep_1");
	ep.url = "http://127.0.0.1:9/hook";
	ep.enabled = true;
	char err[128];
	cr_assert_eq(sign_key_init(&ep.key, SECRET, err, sizeof err), 0);
	ep.prep = sign_prepare(&ep.key);
	cr_assert_not_null(ep.prep);
}

static void teardown(void)
{
	dispatch_http_pool_free(&pool);
	sign_prepared_free(ep.prep);
	curl_global_cleanup();
}

static struct pending mkp(const char *id, const char *event_id)
{
	struct pending p;
	memset(&p, 0, sizeof p);
	snprintf(p.id, sizeof p.id, "%s", id);
	snprintf(p.event_id, sizeof p.event_id, "%s", event_id);
	snprintf(p.endpoint_id, sizeof p.endpoint_id, "ep_1");
	return p;
}

/* The value of header `name` in r's list ("name: value"), or NULL. */
static const char *header(const struct dispatch_http_req *r, const char *name)
{
	size_t nl = strlen(name);
	for (const struct curl_slist *h = &r->hdr[0]; h != NULL; h = h->next)
		if (strncmp(h->data, name, nl) == 0 && h->data[nl] == ':')
			return h->data[nl + 1] == ' ' ? h->data + nl + 2 : h->data + nl + 1;
	return NULL;
}

/* Prepares a delivery of ev and checks everything a receiver would see. */
static void check_request(const struct event *ev, const char *dlv_id)
{
	struct dispatch_http_req *r = dispatch_http_get(&pool);
	cr_assert_not_null(r);
	struct pending p = mkp(dlv_id, ev->id);
	const char *why = "unset";
	enum failure_kind kind = dispatch_http_prepare(&pool, r, &p, &ep, ev, &why);
	cr_assert_eq(kind, FAILURE_NONE, "prepare failed: %s", why ? why : "");

	size_t want_len = 0;
	char *want = event_delivery_body(ev, &want_len);
	cr_assert_not_null(want);
	cr_assert_eq(strlen(r->body), want_len, "body length for %s", ev->id);
	cr_assert_str_eq(r->body, want);

	char ts[32], pts[32];
	snprintf(ts, sizeof ts, "%lld", (long long)(r->at / 1000));
	snprintf(pts, sizeof pts, "%lld", (long long)r->at);
	cr_assert_str_eq(header(r, "content-type"), "application/json");
	cr_assert_str_eq(header(r, "user-agent"), "hookd/" HOOKD_VERSION);
	cr_assert_str_eq(header(r, "webhook-id"), ev->id);
	cr_assert_str_eq(header(r, "webhook-timestamp"), ts);
	cr_assert_str_eq(header(r, "X-PixelPatrol-Event"), ev->type);
	cr_assert_str_eq(header(r, "X-PixelPatrol-Timestamp"), pts);
	cr_assert_str_eq(header(r, "X-PixelPatrol-Delivery"), dlv_id);
	cr_assert(sign_verify_standard(&ep.key, ev->id, ts, want, want_len,
				       header(r, "webhook-signature")));
	char hex[SIGN_HEX_LEN], wsig[8 + SIGN_HEX_LEN];
	sign_hex(&ep.key, want, want_len, hex);
	snprintf(wsig, sizeof wsig, "sha256=%s", hex);
	cr_assert_str_eq(header(r, "X-PixelPatrol-Signature"), hex);
	cr_assert_str_eq(header(r, "X-Webhook-Signature"), wsig);
	cr_assert_str_eq(header(r, "Expect"), "");
	cr_assert_str_eq(r->type, ev->type);
	cr_assert_str_eq(r->url, ep.url);
	free(want);
	dispatch_http_put(&pool, r);
}

Test(body, matches_event_delivery_body, .init = setup, .fini = teardown)
{
	/* created_at values: same second twice (the cached prefix), the next
	 * second, before the epoch, a leap day and the year 10000. */
	static const struct {
		const char *id, *type, *data;
		int64_t created_at;
	} cases[] = {
		{"evt_1", "media.moderated", "{\"a\":1}", 1700000000123},
		{"evt_2", "media.moderated", "{\"a\":2}", 1700000000999},
		{"evt_3", "media.created", "{\"b\":[1,2,3]}", 1700000001000},
		{"evt_4", "x", NULL, 0},
		{"evt_5", "x", "{}", -1},
		{"evt_6", "x", "{}", -86400001},
		{"evt_7", "x", "{}", 951782400000 + 5},
		{"evt_8", "x", "{}", 253402300800000 + 42},
		{"evt_9", "x", "{}", 253402300800000 + 43},
		/* Ids and types that need escaping take the general path. */
		{"evt_\"q\"", "t\\x", "{\"c\":\"\\u00e9\"}", 1700000000123},
		{"evt_10", "caf\xc3\xa9", "{}", 1700000000123},
		{"evt_11", "tab\there", "{}", 1700000000124},
		{"evt_12", "back\\slash", "{}", 1700000000125},
		{"evt_13", "quo\"te", "{}", 1700000000126},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct event ev;
		memset(&ev, 0, sizeof ev);
		snprintf(ev.id, sizeof ev.id, "%s", cases[i].id);
		ev.type = (char *)cases[i].type;
		ev.data = (char *)cases[i].data;
		ev.created_at = cases[i].created_at;
		check_request(&ev, "dlv_x");
	}
}

/* A request reused for a smaller event, a larger one and another endpoint
 * URL carries nothing over. */
Test(body, reused_request_carries_nothing_over, .init = setup, .fini = teardown)
{
	static char big[20000];
	memset(big, 0, sizeof big);
	big[0] = '"';
	memset(big + 1, 'y', sizeof big - 3);
	big[sizeof big - 2] = '"';
	const char *datas[] = {"{\"k\":\"a longer value than the next one\"}", "1", big, "[]"};
	for (size_t i = 0; i < sizeof datas / sizeof datas[0]; i++) {
		struct event ev;
		memset(&ev, 0, sizeof ev);
		snprintf(ev.id, sizeof ev.id, "evt_r%zu", i);
		ev.type = "reuse.test";
		ev.data = (char *)datas[i];
		ev.created_at = 1700000000000 + (int64_t)i * 1500;
		ep.url = i % 2 ? "http://127.0.0.1:9/other" : "http://127.0.0.1:9/hook";
		check_request(&ev, "dlv_reuse");
	}
	/* One request serves every attempt in turn. */
	cr_assert_eq(pool.n, 1);
}

Test(prepare, failures, .init = setup, .fini = teardown)
{
	struct dispatch_http_req *r = dispatch_http_get(&pool);
	cr_assert_not_null(r);
	struct pending p = mkp("dlv_f", "evt_f");
	const char *why = NULL;
	cr_assert_eq(dispatch_http_prepare(&pool, r, &p, &ep, NULL, &why), FAILURE_INTERNAL);
	cr_assert_str_eq(why, "event could not be read");
	cr_assert_str_eq(r->type, "");

	static char long_type[DISPATCH_HTTP_TYPE_MAX + 2];
	memset(long_type, 't', sizeof long_type - 1);
	struct event ev;
	memset(&ev, 0, sizeof ev);
	snprintf(ev.id, sizeof ev.id, "evt_f");
	ev.type = long_type;
	ev.data = "{}";
	cr_assert_eq(dispatch_http_prepare(&pool, r, &p, &ep, &ev, &why), FAILURE_INTERNAL);
	cr_assert_str_eq(why, "event type too long");

	ev.type = "ok";
	pool.allow_http = false;
	cr_assert_eq(dispatch_http_prepare(&pool, r, &p, &ep, &ev, &why), FAILURE_BLOCKED);
	cr_assert_str_eq(r->type, "ok");
	dispatch_http_put(&pool, r);
}

/* Without prepared keys (sign_prepare failed) the signatures are the same. */
Test(prepare, unprepared_key_signs_the_same, .init = setup, .fini = teardown)
{
	struct event ev;
	memset(&ev, 0, sizeof ev);
	snprintf(ev.id, sizeof ev.id, "evt_u");
	ev.type = "media.moderated";
	ev.data = "{\"u\":1}";
	ev.created_at = 1700000000000;
	sign_prepared_free(ep.prep);
	ep.prep = NULL;
	check_request(&ev, "dlv_u");
}

/* Issue 5: a rotation's previous secret signs webhook-signature after the
 * new one until prev_until (and only it: the hex headers use the new
 * secret); an Ed25519 endpoint sends v1a and no hex headers. */
Test(sign, rotation_overlap_and_ed25519, .init = setup, .fini = teardown)
{
	static const char *const ed =
		"whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy89qm"
		"IyWvAhpo9wdRGg==";
	char err[128], ts[32], hex[SIGN_HEX_LEN];
	struct event ev = {.id = "evt_r", .type = "media.moderated", .data = "{}",
			   .created_at = 1700000000123};
	struct pending p = mkp("dlv_r", ev.id);
	const char *why = NULL;
	size_t blen = 0;
	char *body = event_delivery_body(&ev, &blen);
	cr_assert_not_null(body);

	/* Overlap: "new old", one space; X-PixelPatrol-Signature by the new one. */
	struct sign_key newk;
	cr_assert_eq(sign_key_init(&newk, "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", err,
				   sizeof err), 0);
	ep.prev_key = ep.key;
	ep.prev_prep = ep.prep;
	ep.key = newk;
	ep.prep = NULL; /* the unprepared path for the new key, prepared for the old */
	ep.prev_until = now_ms() + 60000;
	struct dispatch_http_req *r = dispatch_http_get(&pool);
	cr_assert_eq(dispatch_http_prepare(&pool, r, &p, &ep, &ev, &why), FAILURE_NONE);
	snprintf(ts, sizeof ts, "%lld", (long long)(r->at / 1000));
	const char *sig = header(r, "webhook-signature");
	char one[SIGN_STANDARD_LEN], two[SIGN_STANDARD_LEN], want[SIGN_HEADER_LEN];
	sign_standard(&ep.key, ev.id, r->at / 1000, body, blen, one);
	sign_standard(&ep.prev_key, ev.id, r->at / 1000, body, blen, two);
	snprintf(want, sizeof want, "%s %s", one, two);
	cr_assert_str_eq(sig, want);
	sign_hex(&ep.key, body, blen, hex);
	cr_assert_str_eq(header(r, "X-PixelPatrol-Signature"), hex);
	dispatch_http_put(&pool, r);

	/* After prev_until: the new secret alone. */
	ep.prev_until = now_ms() - 1;
	r = dispatch_http_get(&pool);
	cr_assert_eq(dispatch_http_prepare(&pool, r, &p, &ep, &ev, &why), FAILURE_NONE);
	sign_standard(&ep.key, ev.id, r->at / 1000, body, blen, one);
	cr_assert_str_eq(header(r, "webhook-signature"), one);
	dispatch_http_put(&pool, r);

	/* Ed25519: a single v1a entry, and neither hex header. */
	cr_assert_eq(sign_key_init(&ep.key, ed, err, sizeof err), 0, "%s", err);
	ep.prep = sign_prepare(&ep.key);
	cr_assert_not_null(ep.prep);
	r = dispatch_http_get(&pool);
	cr_assert_eq(dispatch_http_prepare(&pool, r, &p, &ep, &ev, &why), FAILURE_NONE);
	snprintf(ts, sizeof ts, "%lld", (long long)(r->at / 1000));
	sig = header(r, "webhook-signature");
	cr_assert_eq(strncmp(sig, "v1a,", 4), 0, "%s", sig);
	cr_assert_null(strchr(sig, ' '), "%s", sig);
	cr_assert(sign_verify_standard(&ep.key, ev.id, ts, body, blen, sig));
	cr_assert_null(header(r, "X-PixelPatrol-Signature"));
	cr_assert_null(header(r, "X-Webhook-Signature"));
	cr_assert_str_eq(header(r, "X-PixelPatrol-Delivery"), "dlv_r");
	cr_assert_str_eq(header(r, "Expect"), "");
	dispatch_http_put(&pool, r);

	/* teardown frees ep.prep; the old key's prepared form is ours. */
	sign_prepared_free(ep.prev_prep);
	ep.prev_prep = NULL;
	free(body);
}

/* An endpoint's signatures (issue 16) choose the signature headers: each
 * scheme brings its own, the ids and the event type always come, and a
 * prepared key made for fewer schemes still signs the chosen ones. */
Test(headers, only_the_chosen_schemes, .init = setup, .fini = teardown)
{
	static const struct {
		unsigned chosen;
		bool std, pts, psig, wsig;
	} cases[] = {
		{0, true, true, true, true},
		{SIGN_SCHEMES_ALL, true, true, true, true},
		{SIGN_SCHEME_STANDARD, true, false, false, false},
		{SIGN_SCHEME_PIXELPATROL, false, true, true, false},
		{SIGN_SCHEME_WEBHOOK_SIGNATURE, false, true, false, true},
		{SIGN_SCHEME_STANDARD | SIGN_SCHEME_WEBHOOK_SIGNATURE, true, true, false, true},
	};
	struct event ev = {.id = "evt_s", .type = "media.moderated", .data = "{\"n\":1}",
			   .created_at = 1700000000123};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		sign_prepared_free(ep.prep);
		ep.chosen = cases[i].chosen;
		ep.schemes = sign_schemes_effective(ep.key.alg, ep.chosen);
		ep.prep = sign_prepare_schemes(&ep.key, ep.schemes);
		cr_assert_not_null(ep.prep);
		struct dispatch_http_req *r = dispatch_http_get(&pool);
		struct pending p = mkp("dlv_s", ev.id);
		const char *why = NULL;
		cr_assert_eq(dispatch_http_prepare(&pool, r, &p, &ep, &ev, &why), FAILURE_NONE);
		const char *body = r->body;
		char ts[32], hex[SIGN_HEX_LEN];
		snprintf(ts, sizeof ts, "%lld", (long long)(r->at / 1000));
		sign_hex(&ep.key, body, strlen(body), hex);
		cr_assert_str_eq(header(r, "webhook-id"), ev.id, "case %zu", i);
		cr_assert_str_eq(header(r, "X-PixelPatrol-Event"), ev.type, "case %zu", i);
		cr_assert_str_eq(header(r, "X-PixelPatrol-Delivery"), "dlv_s", "case %zu", i);
		cr_assert_eq(header(r, "webhook-signature") != NULL, cases[i].std, "case %zu", i);
		cr_assert_eq(header(r, "webhook-timestamp") != NULL, cases[i].std, "case %zu", i);
		cr_assert_eq(header(r, "X-PixelPatrol-Timestamp") != NULL, cases[i].pts, "case %zu",
			     i);
		cr_assert_eq(header(r, "X-PixelPatrol-Signature") != NULL, cases[i].psig,
			     "case %zu", i);
		cr_assert_eq(header(r, "X-Webhook-Signature") != NULL, cases[i].wsig, "case %zu",
			     i);
		if (cases[i].std)
			cr_assert(sign_verify_standard(&ep.key, ev.id, ts, body, strlen(body),
						       header(r, "webhook-signature")),
				  "case %zu", i);
		if (cases[i].psig)
			cr_assert_str_eq(header(r, "X-PixelPatrol-Signature"), hex, "case %zu", i);
		if (cases[i].wsig)
			cr_assert_str_eq(header(r, "X-Webhook-Signature") + 7, hex, "case %zu", i);
		dispatch_http_put(&pool, r);
	}
}
