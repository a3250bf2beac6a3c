/* custom_headers: names, values, reserved names and caps. */
#include <criterion/criterion.h>
#include <string.h>

#include "custom_headers.h"

struct hcase {
	const char *json;
	const char *field; /* NULL: valid */
};

Test(custom_headers, table)
{
	static const struct hcase cases[] = {
		{"{}", NULL},
		{"{\"X-API-Key\":\"your-api-key\",\"X-Environment\":\"production\"}", NULL},
		{"{\"X-Tab\":\"a\\tb\",\"X-Empty\":\"\"}", NULL},
		{"{\"X~odd!#$%&'*+-.^_`|\":\"v\"}", NULL},
		{"[]", "headers"},
		{"{\"X-A\":1}", "headers.X-A"},
		{"{\"X-A\":null}", "headers.X-A"},
		{"{\"X A\":\"v\"}", "headers.X A"},
		{"{\"X:A\":\"v\"}", "headers.X:A"},
		{"{\"\":\"v\"}", "headers."},
		{"{\"X-A\":\"line\\r\\nInjected: yes\"}", "headers.X-A"},
		{"{\"X-A\":\"nl\\n\"}", "headers.X-A"},
		{"{\"X-A\":\"caf\\u00e9\"}", "headers.X-A"},
		{"{\"X-A\":\"del\\u007f\"}", "headers.X-A"},
		{"{\"Webhook-Id\":\"forged\"}", "headers.Webhook-Id"},
		{"{\"webhook-signature\":\"v1,x\"}", "headers.webhook-signature"},
		{"{\"X-PixelPatrol-Event\":\"x\"}", "headers.X-PixelPatrol-Event"},
		{"{\"x-pixelpatrol-anything\":\"x\"}", "headers.x-pixelpatrol-anything"},
		{"{\"X-Webhook-Signature\":\"x\"}", "headers.X-Webhook-Signature"},
		{"{\"Content-Type\":\"text/plain\"}", "headers.Content-Type"},
		{"{\"content-length\":\"1\"}", "headers.content-length"},
		{"{\"Host\":\"evil\"}", "headers.Host"},
		{"{\"User-Agent\":\"x\"}", "headers.User-Agent"},
		{"{\"Transfer-Encoding\":\"chunked\"}", "headers.Transfer-Encoding"},
		{"{\"X-A\":\"1\",\"x-a\":\"2\"}", "headers.X-A"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *j = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
		cr_assert_not_null(j, "%s", cases[i].json);
		char field[128] = "", msg[256] = "";
		int rc = custom_headers_validate(j, field, sizeof field, msg, sizeof msg);
		if (cases[i].field) {
			cr_expect_eq(rc, -1, "case %zu %s should be refused", i, cases[i].json);
			cr_expect_str_eq(field, cases[i].field, "case %zu", i);
			cr_expect_neq(msg[0], 0);
		} else {
			cr_expect_eq(rc, 0, "case %zu %s: %s", i, cases[i].json, msg);
		}
		json_decref(j);
	}
}

Test(custom_headers, caps_at_and_past_the_boundary)
{
	char field[128], msg[256];
	json_t *h = json_object();
	for (int i = 0; i < CUSTOM_HEADERS_MAX; i++) {
		char name[16];
		snprintf(name, sizeof name, "X-H%d", i);
		json_object_set_new(h, name, json_string("v"));
	}
	cr_assert_eq(custom_headers_validate(h, field, sizeof field, msg, sizeof msg), 0);
	json_object_set_new(h, "X-One-Too-Many", json_string("v"));
	cr_assert_eq(custom_headers_validate(h, field, sizeof field, msg, sizeof msg), -1);
	json_decref(h);

	char name[CUSTOM_HEADER_NAME_MAX + 2];
	memset(name, 'n', sizeof name);
	name[CUSTOM_HEADER_NAME_MAX] = 0;
	h = json_object();
	json_object_set_new(h, name, json_string("v"));
	cr_assert_eq(custom_headers_validate(h, field, sizeof field, msg, sizeof msg), 0);
	json_decref(h);
	name[CUSTOM_HEADER_NAME_MAX] = 'n';
	name[CUSTOM_HEADER_NAME_MAX + 1] = 0;
	h = json_object();
	json_object_set_new(h, name, json_string("v"));
	cr_assert_eq(custom_headers_validate(h, field, sizeof field, msg, sizeof msg), -1);
	json_decref(h);

	char value[CUSTOM_HEADER_VALUE_MAX + 2];
	memset(value, 'v', sizeof value);
	value[CUSTOM_HEADER_VALUE_MAX] = 0;
	h = json_object();
	json_object_set_new(h, "X-V", json_string(value));
	cr_assert_eq(custom_headers_validate(h, field, sizeof field, msg, sizeof msg), 0);
	value[CUSTOM_HEADER_VALUE_MAX] = 'v';
	value[CUSTOM_HEADER_VALUE_MAX + 1] = 0;
	json_object_set_new(h, "X-V", json_string(value));
	cr_assert_eq(custom_headers_validate(h, field, sizeof field, msg, sizeof msg), -1);
	json_decref(h);

	/* Total: 9 values of 1000 bytes pass each cap alone but not together. */
	h = json_object();
	value[1000] = 0;
	for (int i = 0; i < 9; i++) {
		char n[16];
		snprintf(n, sizeof n, "X-T%d", i);
		json_object_set_new(h, n, json_string(value));
	}
	cr_assert_eq(custom_headers_validate(h, field, sizeof field, msg, sizeof msg), -1);
	cr_assert_str_eq(field, "headers");
	json_decref(h);
}

Test(custom_headers, count_from_config)
{
	char msg[256];
	json_t *h = json_pack("{s:s, s:s, s:s}", "A", "1", "B", "2", "C", "3");
	cr_assert_not_null(h);
	cr_expect_eq(custom_headers_check_count(h, 3, msg, sizeof msg), 0);
	cr_expect_eq(custom_headers_check_count(h, 2, msg, sizeof msg), -1);
	cr_expect(strstr(msg, "at most 2") != NULL, "%s", msg);
	cr_expect(strstr(msg, "--max-custom-headers") != NULL, "%s", msg);
	cr_expect_eq(custom_headers_check_count(h, 0, msg, sizeof msg), -1);
	/* The compile-time cap stays the upper bound. */
	cr_expect_eq(custom_headers_check_count(h, CUSTOM_HEADERS_MAX + 100, msg, sizeof msg), 0);
	json_t *empty = json_object();
	cr_expect_eq(custom_headers_check_count(empty, 0, msg, sizeof msg), 0);
	json_decref(empty);
	json_decref(h);
}
