/* verify: the input readers of `hookd verify` (verify.h): header lines as
 * curl -D writes them and the --request object, including the odd inputs
 * fuzz/fuzz_verify.c feeds them. */
#include <criterion/criterion.h>
#include <string.h>

#include "verify.h"

static json_t *headers_of(const char *text)
{
	json_t *h = verify_parse_header_lines(text, strlen(text));
	cr_assert_not_null(h);
	return h;
}

static const char *get(json_t *h, const char *name)
{
	return verify_header_lookup(h, name);
}

Test(verify, header_lines_crlf_lowercase_and_trimmed)
{
	json_t *h = headers_of("HTTP/1.1 200 OK\r\nWebhook-Id:  msg_1 \t\r\n"
			       "Content-Type: application/json\r\n\r\n");
	cr_assert_str_eq(get(h, "webhook-id"), "msg_1");
	cr_assert_str_eq(get(h, "WEBHOOK-ID"), "msg_1", "lookup ignores case");
	cr_assert_str_eq(get(h, "content-type"), "application/json");
	cr_assert_null(get(h, "webhook-signature"));
	cr_assert_eq(json_object_size(h), 2);
	json_decref(h);
}

Test(verify, header_lines_last_block_wins_and_repeats_join)
{
	json_t *h = headers_of("HTTP/1.1 100 Continue\n\nwebhook-id: old\n"
			       "HTTP/1.1 200 OK\nwebhook-signature: v1,a\n"
			       "webhook-signature: v1,b\n");
	cr_assert_null(get(h, "webhook-id"), "a status line starts a new block");
	cr_assert_str_eq(get(h, "webhook-signature"), "v1,a, v1,b");
	json_decref(h);
}

Test(verify, header_lines_skip_what_is_not_a_header)
{
	char long_name[VERIFY_HEADER_NAME_MAX + 2 + 8];
	memset(long_name, 'a', VERIFY_HEADER_NAME_MAX + 1);
	memcpy(long_name + VERIFY_HEADER_NAME_MAX + 1, ": x\n", 5);
	json_t *h = headers_of(long_name);
	cr_assert_eq(json_object_size(h), 0, "a name past the maximum is skipped");
	json_decref(h);

	h = headers_of("no colon\n: empty name\nbad name: x\nok:\nlast: no newline");
	cr_assert_eq(json_object_size(h), 2);
	cr_assert_str_eq(get(h, "ok"), "");
	cr_assert_str_eq(get(h, "last"), "no newline");
	json_decref(h);
}

Test(verify, header_lines_not_nul_terminated)
{
	/* Only len bytes are read: the rest of the buffer is not a header. */
	const char text[] = "a: 1\nb: 2\nc: 3";
	json_t *h = verify_parse_header_lines(text, 9);
	cr_assert_not_null(h);
	cr_assert_str_eq(get(h, "a"), "1");
	cr_assert_str_eq(get(h, "b"), "2");
	cr_assert_null(get(h, "c"));
	json_decref(h);

	h = verify_parse_header_lines("", 0);
	cr_assert_not_null(h);
	cr_assert_eq(json_object_size(h), 0);
	json_decref(h);
}

Test(verify, header_lines_keep_bytes_that_are_not_utf8)
{
	json_t *h = headers_of("x-bin: \xff\xfe\n\xff: dropped\n");
	cr_assert_str_eq(get(h, "x-bin"), "\xff\xfe", "a value is kept as bytes");
	cr_assert_eq(json_object_size(h), 1, "a name that is not UTF-8 is dropped");
	json_decref(h);
}

struct request_case {
	const char *text;
	int rc;
	const char *why;   /* start of the reason when rc is -1 */
	const char *body;  /* expected body when rc is 0 */
	size_t body_len;
};

Test(verify, request_objects)
{
	static const struct request_case cases[] = {
		{"{\"headers\":{\"a\":\"1\"},\"body\":\"hi\"}", 0, NULL, "hi", 2},
		{"{\"headers\":{},\"body\":\"a\\u0000b\"}", 0, NULL, "a\0b", 3},
		{"{\"headers\":{},\"body_base64\":\"//4A\"}", 0, NULL, "\xff\xfe\0", 3},
		{"{\"headers\":{},\"body\":\"s\",\"body_base64\":\"!!\"}", 0, NULL, "s", 1},
		{"", -1, "is not a JSON object", NULL, 0},
		{"[1]", -1, "is not a JSON object (wrong type)", NULL, 0},
		{"{\"headers\":[],\"body\":\"x\"}", -1, "\"headers\" must be an object", NULL, 0},
		{"{\"headers\":{}}", -1, "\"body\" must be a string", NULL, 0},
		{"{\"headers\":{},\"body_base64\":\"not*base64\"}", -1,
		 "\"body_base64\" is not base64", NULL, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct request_case *c = &cases[i];
		struct verify_request r;
		char why[256] = "";
		int rc = verify_request_parse(c->text, strlen(c->text), &r, why, sizeof why);
		cr_assert_eq(rc, c->rc, "case %zu (%s): rc %d, why %s", i, c->text, rc, why);
		if (rc == 0) {
			cr_assert(json_is_object(r.headers));
			cr_assert_eq(r.body_len, c->body_len, "case %zu", i);
			cr_assert(memcmp(r.body, c->body, c->body_len) == 0, "case %zu", i);
		} else {
			cr_assert(strncmp(why, c->why, strlen(c->why)) == 0, "case %zu: %s", i,
				  why);
		}
		verify_request_free(&r);
	}
}
