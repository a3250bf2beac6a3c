/* Unit tests for model.c: status names, clearing, the API's JSON views
 * (api-contract.md "Representations") and the exact delivery body. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "sign.h"

/* 2026-11-27T13:02:31.123Z */
#define T1 INT64_C(1795784551123)
#define T1_TEXT "2026-11-27T13:02:31.123Z"
/* 2021-02-25T15:02:10.123Z */
#define T2 INT64_C(1614265330123)
#define T2_TEXT "2021-02-25T15:02:10.123Z"

/* Compact dump of j (keys in insertion order), freed by the caller. */
static char *dump(json_t *j)
{
	cr_assert_not_null(j);
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	cr_assert_not_null(s);
	return s;
}

static void assert_json(json_t *j, const char *want)
{
	char *got = dump(j);
	cr_assert_str_eq(got, want);
	free(got);
}

Test(model, status_names_round_trip)
{
	static const struct {
		enum delivery_status s;
		const char *name;
	} table[] = {
		{DELIVERY_PENDING, "pending"},
		{DELIVERY_SUCCEEDED, "succeeded"},
		{DELIVERY_DEAD, "dead"},
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		enum delivery_status parsed = (enum delivery_status)99;
		cr_assert_str_eq(delivery_status_name(table[i].s), table[i].name);
		cr_assert_eq(delivery_status_parse(table[i].name, &parsed), 0);
		cr_assert_eq(parsed, table[i].s);
	}
}

Test(model, status_parse_rejects_others)
{
	static const char *bad[] = {"", "Pending", "PENDING", "pending ", "failed", "deadx", "dea"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		enum delivery_status parsed = DELIVERY_SUCCEEDED;
		cr_assert_eq(delivery_status_parse(bad[i], &parsed), -1, "accepted \"%s\"", bad[i]);
		cr_assert_eq(parsed, DELIVERY_SUCCEEDED, "wrote *out for \"%s\"", bad[i]);
	}
	enum delivery_status parsed;
	cr_assert_eq(delivery_status_parse(NULL, &parsed), -1);
	cr_assert_str_eq(delivery_status_name((enum delivery_status)42), "unknown");
}

Test(model, clear_is_safe_on_zeroed_and_twice)
{
	struct endpoint ep = {0};
	struct event ev = {0};
	struct delivery d = {0};
	struct attempt a = {0};
	endpoint_clear(&ep);
	event_clear(&ev);
	delivery_clear(&d);
	attempt_clear(&a);

	ep.url = strdup("https://x.test/");
	ep.description = strdup("d");
	ep.secret = strdup("whsec_x");
	ep.events = json_pack("[s]", "*");
	endpoint_clear(&ep);
	cr_assert_null(ep.url);
	cr_assert_null(ep.events);
	endpoint_clear(&ep); /* a second clear must not double-free */

	ev.type = strdup("t");
	ev.data = strdup("{}");
	event_clear(&ev);
	cr_assert_null(ev.data);
	event_clear(&ev);

	d.event_type = strdup("t");
	model_code_set(d.last_error, "timeout");
	delivery_clear(&d);
	cr_assert_null(d.event_type);
	delivery_clear(&d);

	a.url = strdup("u");
	a.response_body = strdup("b");
	a.headers = strdup("{}");
	model_code_set(a.error_code, "dns");
	a.error_message = strdup("m");
	attempt_clear(&a);
	cr_assert_null(a.headers);
	attempt_clear(&a);
}

static struct endpoint sample_endpoint(void)
{
	struct endpoint e = {
		.url = "https://hooks.example.com/in",
		.description = "main",
		.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		.enabled = true,
		.created_at = T2,
		.updated_at = T1,
	};
	strcpy(e.id, "ep_01");
	e.events = json_pack("[ss]", "media.moderated", "delivery.dead_lettered");
	return e;
}

/* Failure codes are held by value: a copy, cut to fit, "" for none. */
Test(model, code_set_copies_and_cuts)
{
	char code[MODEL_CODE_MAX];
	char *heap = strdup("timeout");
	model_code_set(code, heap);
	free(heap);
	cr_assert_str_eq(code, "timeout");
	model_code_set(code, NULL);
	cr_assert_str_eq(code, "");
	char long_code[MODEL_CODE_MAX * 2];
	memset(long_code, 'x', sizeof long_code - 1);
	long_code[sizeof long_code - 1] = '\0';
	model_code_set(code, long_code);
	cr_assert_eq(strlen(code), MODEL_CODE_MAX - 1);
}

Test(model, endpoint_json_without_secret)
{
	struct endpoint e = sample_endpoint();
	json_t *j = endpoint_to_json(&e, false);
	assert_json(j, "{\"id\":\"ep_01\",\"url\":\"https://hooks.example.com/in\","
		       "\"description\":\"main\","
		       "\"events\":[\"media.moderated\",\"delivery.dead_lettered\"],"
		       "\"enabled\":true,\"created_at\":\"" T2_TEXT "\","
		       "\"updated_at\":\"" T1_TEXT "\",\"filters\":null,\"headers\":{},"
		       "\"rate_limit\":null,\"max_in_flight\":10,\"batch\":null,"
		       "\"disabled_reason\":null,\"signing\":\"hmac\",\"public_key\":null,"
		       "\"signatures\":[\"standard\",\"pixelpatrol\",\"webhook_signature\"],"
		       "\"secret_previous_until\":null}");
	/* The view owns a copy: changing it leaves the endpoint alone. */
	json_array_clear(json_object_get(j, "events"));
	cr_assert_eq(json_array_size(e.events), 2);
	json_decref(j);
	json_decref(e.events);
}

/* signatures: the chosen schemes in the API's order (0 = all three), and
 * back from names; an empty list or an unknown name is refused. */
Test(model, endpoint_signatures_round_trip)
{
	static const struct {
		unsigned bits;
		const char *json;
	} cases[] = {
		{0, "[\"standard\",\"pixelpatrol\",\"webhook_signature\"]"},
		{SIGN_SCHEME_STANDARD, "[\"standard\"]"},
		{SIGN_SCHEME_WEBHOOK_SIGNATURE | SIGN_SCHEME_PIXELPATROL,
		 "[\"pixelpatrol\",\"webhook_signature\"]"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *j = endpoint_signatures_json(cases[i].bits);
		char *got = dump(j);
		cr_assert_str_eq(got, cases[i].json);
		unsigned back = 99;
		const char *bad = "x";
		cr_assert_eq(endpoint_signatures_parse(j, &back, &bad), 0);
		cr_assert_eq(back, cases[i].bits ? cases[i].bits : SIGN_SCHEMES_ALL);
		free(got);
		json_decref(j);
	}
	const char *bad = NULL;
	unsigned s = 0;
	json_t *j = json_pack("[ss]", "standard", "v2");
	cr_assert_eq(endpoint_signatures_parse(j, &s, &bad), -1);
	cr_assert_str_eq(bad, "v2");
	json_decref(j);
	j = json_array();
	cr_assert_eq(endpoint_signatures_parse(j, &s, &bad), -1);
	json_decref(j);
}

/* An Ed25519 secret ("whsk_" + base64 of seed || public key) shows its
 * public half as "whpk_"; a rotation shows when the old secret stops. */
Test(model, endpoint_json_ed25519_and_rotation)
{
	unsigned char pair[64];
	for (int i = 0; i < 64; i++)
		pair[i] = (unsigned char)(i < 32 ? 1 : 200 + i - 32);
	char *b64 = b64_encode(pair, 64), *pub = b64_encode(pair + 32, 32);
	char secret[128], want[128];
	snprintf(secret, sizeof secret, "whsk_%s", b64);
	snprintf(want, sizeof want, "whpk_%s", pub);
	struct endpoint e = {.url = "https://a.test/", .secret = secret,
			     .secret_previous = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			     .secret_previous_until = T1};
	strcpy(e.id, "ep_03");
	json_t *j = endpoint_to_json(&e, false);
	cr_assert_str_eq(json_string_value(json_object_get(j, "signing")), "ed25519");
	cr_assert_str_eq(json_string_value(json_object_get(j, "public_key")), want);
	cr_assert_str_eq(json_string_value(json_object_get(j, "secret_previous_until")), T1_TEXT);
	cr_assert_null(json_object_get(j, "secret"));
	json_decref(j);
	free(b64);
	free(pub);
}

Test(model, endpoint_json_with_secret_and_defaults)
{
	struct endpoint e = sample_endpoint();
	json_t *j = endpoint_to_json(&e, true);
	cr_assert_str_eq(json_string_value(json_object_get(j, "secret")), e.secret);
	json_decref(j);
	json_decref(e.events);

	/* NULL description and events show the defaults; disabled shows false. */
	struct endpoint bare = {.url = "https://a.test/", .secret = "whsec_x", .enabled = false};
	strcpy(bare.id, "ep_02");
	j = endpoint_to_json(&bare, false);
	cr_assert_str_eq(json_string_value(json_object_get(j, "description")), "");
	assert_json(json_object_get(j, "events"), "[\"*\"]");
	cr_assert(json_is_false(json_object_get(j, "enabled")));
	cr_assert_null(json_object_get(j, "secret"));
	json_decref(j);
}

Test(model, endpoint_json_delivery_control_fields)
{
	/* Issue 4 fields as set: filters and headers as stored, a whole rate
	 * as an integer, batch as an object, the reason hookd disabled it. */
	struct endpoint e = sample_endpoint();
	e.filters = json_pack("{s:[s], s:{s:f}}", "events", "media.moderated", "confidence", ">=",
			      0.8);
	e.headers = json_pack("{s:s}", "X-Tenant", "acme");
	e.rate_limit = 20;
	e.max_in_flight = 3;
	e.batch_max_events = 50;
	e.batch_max_wait_ms = 1000;
	e.disabled_reason = "410 Gone from the receiver";
	json_t *j = endpoint_to_json(&e, false);
	cr_assert(json_equal(json_object_get(j, "filters"), e.filters));
	assert_json(json_object_get(j, "headers"), "{\"X-Tenant\":\"acme\"}");
	assert_json(json_object_get(j, "rate_limit"), "20");
	assert_json(json_object_get(j, "max_in_flight"), "3");
	assert_json(json_object_get(j, "batch"), "{\"max_events\":50,\"max_wait_ms\":1000}");
	cr_assert_str_eq(json_string_value(json_object_get(j, "disabled_reason")),
			 e.disabled_reason);
	json_decref(j);
	e.rate_limit = 0.5;
	j = endpoint_to_json(&e, false);
	cr_assert(json_is_real(json_object_get(j, "rate_limit")));
	cr_assert_float_eq(json_real_value(json_object_get(j, "rate_limit")), 0.5, 1e-12);
	json_decref(j);
	json_decref(e.events);
	json_decref(e.filters);
	json_decref(e.headers);
}

Test(model, delivery_json_batch_id)
{
	struct delivery d = {.event_type = "a.b", .status = DELIVERY_SUCCEEDED,
			     .batch_id = "bat_01"};
	strcpy(d.id, "dlv_3");
	json_t *j = delivery_to_json(&d);
	cr_assert_str_eq(json_string_value(json_object_get(j, "batch_id")), "bat_01");
	json_decref(j);
}

Test(model, event_json_parses_data)
{
	struct event e = {.type = "media.moderated",
			  .data = "{\"status\":\"rejected\",\"confidence\":0.5,\"tags\":[1,2]}",
			  .created_at = T1};
	strcpy(e.id, "evt_1");
	json_t *j = event_to_json(&e);
	assert_json(j, "{\"id\":\"evt_1\",\"event\":\"media.moderated\",\"created_at\":\"" T1_TEXT
		       "\",\"data\":{\"status\":\"rejected\",\"confidence\":0.5,\"tags\":[1,2]}}");
	json_decref(j);
}

Test(model, event_json_bad_data_is_null)
{
	struct event e = {.type = "t", .data = "{not json", .created_at = 0};
	strcpy(e.id, "evt_2");
	json_t *j = event_to_json(&e);
	cr_assert_not_null(j);
	cr_assert(json_is_null(json_object_get(j, "data")));
	cr_assert_str_eq(json_string_value(json_object_get(j, "created_at")),
			 "1970-01-01T00:00:00.000Z");
	json_decref(j);
}

Test(model, delivery_json_pending)
{
	struct delivery d = {.event_type = "media.moderated",
			     .status = DELIVERY_PENDING,
			     .attempt_count = 2,
			     .schedule_index = 2,
			     .next_attempt_at = T1,
			     .created_at = T2,
			     .updated_at = T2,
			     .last_status = 503,
			     .last_error = "http_status"};
	strcpy(d.id, "dlv_1");
	strcpy(d.event_id, "evt_1");
	strcpy(d.endpoint_id, "ep_1");
	json_t *j = delivery_to_json(&d);
	assert_json(j, "{\"id\":\"dlv_1\",\"event_id\":\"evt_1\",\"endpoint_id\":\"ep_1\","
		       "\"event\":\"media.moderated\",\"status\":\"pending\",\"attempt_count\":2,"
		       "\"next_attempt_at\":\"" T1_TEXT "\",\"last_status\":503,"
		       "\"last_error\":\"http_status\",\"batch_id\":null,"
		       "\"created_at\":\"" T2_TEXT "\",\"updated_at\":\"" T2_TEXT "\"}");
	json_decref(j);
}

Test(model, delivery_json_nulls)
{
	/* Not pending: no next attempt. No response yet: null status and error.
	 * The API adds "attempts" itself, so the view never has it. */
	static const enum delivery_status st[] = {DELIVERY_SUCCEEDED, DELIVERY_DEAD};
	for (size_t i = 0; i < 2; i++) {
		struct delivery d = {.event_type = "a.b", .status = st[i], .next_attempt_at = T1};
		strcpy(d.id, "dlv_2");
		strcpy(d.event_id, "evt_2");
		strcpy(d.endpoint_id, "ep_2");
		json_t *j = delivery_to_json(&d);
		cr_assert(json_is_null(json_object_get(j, "next_attempt_at")));
		cr_assert(json_is_null(json_object_get(j, "last_status")));
		cr_assert(json_is_null(json_object_get(j, "last_error")));
		cr_assert_null(json_object_get(j, "attempts"));
		cr_assert_str_eq(json_string_value(json_object_get(j, "status")),
				 delivery_status_name(st[i]));
		cr_assert(json_is_null(json_object_get(j, "batch_id")));
		cr_assert_eq(json_object_size(j), 12);
		json_decref(j);
	}
}

Test(model, attempt_json_success)
{
	struct attempt a = {.attempt = 1,
			    .at = T1,
			    .url = "https://hooks.example.com/in",
			    .status = 200,
			    .duration_ms = 42,
			    .response_body = "{\"received\":true}",
			    /* µs values exact in binary, so the dump is short. */
			    .timings = {.dns_us = 500, .connect_us = 1250, .tls_us = ATTEMPT_TIMING_NONE,
					.ttfb_us = 40125, .total_us = 41875},
			    .remote_ip = "2001:db8::7",
			    .reused = false};
	strcpy(a.delivery_id, "dlv_1");
	a.headers = "{\"content-type\":\"application/json\"}";
	json_t *j = attempt_to_json(&a);
	assert_json(j, "{\"attempt\":1,\"at\":\"" T1_TEXT "\","
		       "\"url\":\"https://hooks.example.com/in\","
		       "\"status\":200,\"duration_ms\":42,"
		       "\"response_body\":\"{\\\"received\\\":true}\","
		       "\"headers\":{\"content-type\":\"application/json\"},\"error\":null,"
		       "\"timings\":{\"dns_ms\":0.5,\"connect_ms\":1.25,\"tls_ms\":null,"
		       "\"ttfb_ms\":40.125,\"total_ms\":41.875},"
		       "\"remote_ip\":\"2001:db8::7\",\"connection_reused\":false}");
	json_decref(j);
}

/* Milliseconds keep the microseconds: 412 µs is 0.412 ms, not 0 or 1. */
Test(model, attempt_json_timings_keep_microseconds)
{
	struct attempt a = {.attempt = 2, .at = T1, .url = "http://127.0.0.1:9/"};
	attempt_measure_none(&a);
	a.timings.ttfb_us = 412;
	a.timings.total_us = 1000001;
	a.reused = true;
	json_t *j = attempt_to_json(&a);
	json_t *t = json_object_get(j, "timings");
	cr_assert(json_is_real(json_object_get(t, "ttfb_ms")));
	cr_assert_float_eq(json_real_value(json_object_get(t, "ttfb_ms")), 0.412, 1e-9);
	cr_assert_float_eq(json_real_value(json_object_get(t, "total_ms")), 1000.001, 1e-9);
	cr_assert(json_is_null(json_object_get(t, "dns_ms")));
	cr_assert(json_is_true(json_object_get(j, "connection_reused")));
	cr_assert(json_is_null(json_object_get(j, "remote_ip")));
	json_decref(j);
}

Test(model, attempt_json_failure)
{
	struct attempt a = {.attempt = 3,
			    .at = T2,
			    .url = "https://down.test/",
			    .duration_ms = 30000,
			    .error_code = "timeout",
			    .error_message = "no response in 30000 ms"};
	strcpy(a.delivery_id, "dlv_1");
	/* Nothing measured (an attempt stored before timings were kept):
	 * every phase, the address and the reuse are null. */
	attempt_measure_none(&a);
	json_t *j = attempt_to_json(&a);
	assert_json(j, "{\"attempt\":3,\"at\":\"" T2_TEXT "\",\"url\":\"https://down.test/\","
		       "\"status\":null,\"duration_ms\":30000,\"response_body\":null,"
		       "\"headers\":{},\"error\":{\"code\":\"timeout\","
		       "\"message\":\"no response in 30000 ms\"},"
		       "\"timings\":{\"dns_ms\":null,\"connect_ms\":null,\"tls_ms\":null,"
		       "\"ttfb_ms\":null,\"total_ms\":null},"
		       "\"remote_ip\":null,\"connection_reused\":null}");
	json_decref(j);

	/* A code without a message still gives a message string. */
	a.error_message = NULL;
	j = attempt_to_json(&a);
	assert_json(json_object_get(j, "error"), "{\"code\":\"timeout\",\"message\":\"\"}");
	json_decref(j);
}

Test(model, attempt_json_repairs_bad_utf8)
{
	/* A body cut mid-character and a stray Latin-1 byte: each bad byte
	 * becomes U+FFFD, the valid text around it stays. */
	static const struct {
		const char *in;
		const char *want;
	} table[] = {
		{"ok \xC3\xA9", "ok \xC3\xA9"},                       /* valid é */
		{"caf\xE9!", "caf\xEF\xBF\xBD!"},                      /* Latin-1 é */
		{"cut \xE2\x82", "cut \xEF\xBF\xBD\xEF\xBF\xBD"},      /* half a € */
		{"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},              /* overlong '/' */
		{"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate */
		{"\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"},              /* emoji */
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		struct attempt a = {.attempt = 1, .url = "u", .status = 500};
		a.response_body = (char *)table[i].in;
		json_t *j = attempt_to_json(&a);
		cr_assert_not_null(j, "row %zu", i);
		cr_assert_str_eq(json_string_value(json_object_get(j, "response_body")),
				 table[i].want, "row %zu", i);
		json_decref(j);
	}
}

Test(model, delivery_body_exact)
{
	struct event e = {.type = "media.moderated",
			  .data = "{\"status\":\"rejected\",\"confidence\":0.93}",
			  .created_at = T1};
	strcpy(e.id, "evt_01JDXYZ");
	size_t len = 0;
	char *body = event_delivery_body(&e, &len);
	const char *want = "{\"id\":\"evt_01JDXYZ\",\"event\":\"media.moderated\","
			   "\"created_at\":\"" T1_TEXT "\","
			   "\"data\":{\"status\":\"rejected\",\"confidence\":0.93}}";
	cr_assert_str_eq(body, want);
	cr_assert_eq(len, strlen(want));
	/* It is JSON a receiver can parse. */
	json_error_t jerr;
	json_t *j = json_loads(body, 0, &jerr);
	cr_assert_not_null(j, "%s", jerr.text);
	json_decref(j);
	free(body);
}

Test(model, delivery_body_data_verbatim_and_escaping)
{
	/* The data text is not re-serialized (spacing, key order and number
	 * spelling survive); the id and type are escaped as JSON strings. */
	struct event e = {.type = "a\"b", .data = "{ \"z\" : 1.50, \"a\":[ ] }", .created_at = T2};
	strcpy(e.id, "x\\y");
	size_t len = 0;
	char *body = event_delivery_body(&e, &len);
	cr_assert_str_eq(body, "{\"id\":\"x\\\\y\",\"event\":\"a\\\"b\",\"created_at\":\"" T2_TEXT
			       "\",\"data\":{ \"z\" : 1.50, \"a\":[ ] }}");
	cr_assert_eq(len, strlen(body));
	free(body);

	/* len may be NULL. */
	body = event_delivery_body(&e, NULL);
	cr_assert_not_null(body);
	free(body);
}
