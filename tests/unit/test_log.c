/* Unit tests for --log-format json: log_json_line turns a key=value log
 * message into one JSON object, whatever the message holds. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define TS "2026-11-27T13:02:31.123Z"
#define HEAD "{\"ts\":\"" TS "\",\"level\":\"info\","

static const char *convert(const char *msg, char *out, size_t cap)
{
	size_t n = log_json_line(TS, "info", msg, out, cap);
	cr_assert_eq(n, strlen(out), "%s", msg);
	cr_assert_lt(n, cap);
	return out;
}

/* The object is valid JSON (jansson, strict) and has only string values. */
static void assert_valid(const char *json)
{
	json_error_t e;
	json_t *j = json_loads(json, JSON_REJECT_DUPLICATES, &e);
	cr_assert_not_null(j, "not JSON (%s): %s", e.text, json);
	cr_assert(json_is_object(j));
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v) cr_assert(json_is_string(v), "%s is not a string", k);
	json_decref(j);
}

Test(log, json_lines)
{
	static const struct {
		const char *msg;
		const char *want; /* after HEAD */
	} table[] = {
		{"api listening port=8080 threads=2",
		 "\"msg\":\"api listening\",\"port\":\"8080\",\"threads\":\"2\"}"},
		/* Quoted values keep their spaces; the quotes go. */
		{"store: sqlite failed op=ev rc=19 err=\"UNIQUE constraint failed: events.id\"",
		 "\"msg\":\"store: sqlite failed\",\"op\":\"ev\",\"rc\":\"19\","
		 "\"err\":\"UNIQUE constraint failed: events.id\"}"},
		{"endpoint disabled endpoint=ep_1 reason=\"410 Gone from the receiver\" x=1",
		 "\"msg\":\"endpoint disabled\",\"endpoint\":\"ep_1\","
		 "\"reason\":\"410 Gone from the receiver\",\"x\":\"1\"}"},
		/* A quote inside a quoted value ends it only before a space or the end. */
		{"q err=\"near \"SELEC\": syntax error\" op=prepare",
		 "\"msg\":\"q\",\"err\":\"near \\\"SELEC\\\": syntax error\",\"op\":\"prepare\"}"},
		{"q a=\"\" b=\"x\"", "\"msg\":\"q\",\"a\":\"\",\"b\":\"x\"}"},
		/* Unterminated: to the end of the line. */
		{"q k=\"abc def", "\"msg\":\"q\",\"k\":\"abc def\"}"},
		{"q k=\"", "\"msg\":\"q\",\"k\":\"\"}"},
		/* A quote not at the start of a value is part of it. */
		{"q k=a\"b c", "\"msg\":\"q c\",\"k\":\"a\\\"b\"}"},
		/* Words after fields join the message; empty values; '=' in values. */
		{"epcache: cannot load endpoint id=ep_1: bad json here",
		 "\"msg\":\"epcache: cannot load endpoint bad json here\",\"id\":\"ep_1:\"}"},
		{"x k= y", "\"msg\":\"x y\",\"k\":\"\"}"},
		{"u=http://h/p?a=b&c=d", "\"msg\":\"\",\"u\":\"http://h/p?a=b&c=d\"}"},
		{"k==v", "\"msg\":\"\",\"k\":\"=v\"}"},
		/* Not keys: a digit or other first character, or longer than 64. */
		{"1a=b -x=y =z .k=v", "\"msg\":\"1a=b -x=y =z .k=v\"}"},
		{"a_b.c-d=1 _x=2", "\"msg\":\"\",\"a_b.c-d\":\"1\",\"_x\":\"2\"}"},
		{"k234567890123456789012345678901234567890123456789012345678901234=v",
		 "\"msg\":\"\",\"k234567890123456789012345678901234567890123456789012345678901234\":"
		 "\"v\"}"},
		{"k2345678901234567890123456789012345678901234567890123456789012345=v",
		 "\"msg\":\"k2345678901234567890123456789012345678901234567890123456789012345=v\"}"},
		/* Keys met again, or named like the fixed fields, get a suffix. */
		{"m status=1 status=2 ts=x level=y msg=z status_2=w",
		 "\"msg\":\"m\",\"status\":\"1\",\"status_2\":\"2\",\"ts_2\":\"x\",\"level_2\":\"y\","
		 "\"msg_2\":\"z\",\"status_2_2\":\"w\"}"},
		/* Escapes: backslash, quote, control characters. */
		{"a\tb c=x\\y\x01 d=\"q\nr\"",
		 "\"msg\":\"a\\tb\",\"c\":\"x\\\\y\\u0001\",\"d\":\"q\\nr\"}"},
		{"cr\r del\x7f", "\"msg\":\"cr\\r del\x7f\"}"},
		/* UTF-8 stays; bytes that are not UTF-8 become U+FFFD. */
		{"caf\xc3\xa9 bad=\xff\xfe ok \xe2\x82", "\"msg\":\"caf\xc3\xa9 ok \\ufffd\\ufffd\","
							  "\"bad\":\"\\ufffd\\ufffd\"}"},
		{"", "\"msg\":\"\"}"},
		{"   ", "\"msg\":\"\"}"},
		{"  spaced   out  k=v  ", "\"msg\":\"spaced out\",\"k\":\"v\"}"},
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		char out[LOG_JSON_MAX];
		char want[1024];
		snprintf(want, sizeof want, "%s%s", HEAD, table[i].want);
		convert(table[i].msg, out, sizeof out);
		cr_assert_str_eq(out, want, "row %zu", i);
		assert_valid(out);
	}
}

/* The longest message, all of it escaped six-fold, fits LOG_JSON_MAX. */
Test(log, worst_case_fits)
{
	char msg[LOG_MSG_MAX];
	char out[LOG_JSON_MAX];
	memset(msg, '\x01', sizeof msg - 1);
	msg[sizeof msg - 1] = '\0';
	convert(msg, out, sizeof out);
	assert_valid(out);
	cr_assert_null(strstr(out, "truncated"));
	memcpy(msg, "k=\"", 3);
	convert(msg, out, sizeof out);
	assert_valid(out);
	cr_assert_null(strstr(out, "truncated"));
}

/* A buffer too small for the whole line: valid JSON with the fields that
 * fit whole, and "truncated"; never past cap. */
Test(log, small_buffers_truncate_cleanly)
{
	const char *msg = "delivery failed with a long message id=dlv_0123456789 "
			  "endpoint=ep_abcdef reason=\"a reason with \xc3\xa9 and \x02 in it\" "
			  "status=503 attempt=3 words after";
	char full[LOG_JSON_MAX];
	convert(msg, full, sizeof full);
	assert_valid(full);
	cr_assert_null(strstr(full, "truncated"));
	size_t len = strlen(full);
	for (size_t cap = 128; cap <= len + 32; cap++) {
		char out[512];
		memset(out, 'X', sizeof out);
		convert(msg, out, cap);
		cr_assert_eq(out[cap], 'X', "wrote past cap %zu", cap);
		assert_valid(out);
		const char *cut = strstr(out, ",\"truncated\":\"true\"}");
		if (cut == NULL) {
			cr_assert_str_eq(out, full, "cap %zu", cap);
			continue;
		}
		/* The room kept for the marker is all that may go unused. */
		cr_assert_lt(cap, len + sizeof ",\"truncated\":\"true\"}", "cap %zu", cap);
		/* Whatever fields are there are whole: a prefix of the full line. */
		if (strstr(out, "\"id\":") != NULL)
			cr_assert_eq(strncmp(out, full, (size_t)(cut - out)), 0, "cap %zu: %s", cap,
				     out);
	}
	char tiny[127];
	cr_assert_eq(log_json_line(TS, "info", msg, tiny, sizeof tiny), 0);
}

/* More fields than the object may hold: the rest are dropped, marked. */
Test(log, many_fields)
{
	char msg[LOG_MSG_MAX] = "many";
	for (int i = 0; i < 100; i++) {
		char f[16];
		snprintf(f, sizeof f, " k=%d", i);
		strcat(msg, f);
	}
	char out[LOG_JSON_MAX];
	convert(msg, out, sizeof out);
	assert_valid(out);
	cr_assert_not_null(strstr(out, "\"k_64\":\"63\""), "%s", out);
	cr_assert_null(strstr(out, "\"k_65\""), "%s", out);
	cr_assert_not_null(strstr(out, ",\"truncated\":\"true\"}"));
}

Test(log, parse_format)
{
	enum log_format f = LOG_FORMAT_JSON;
	cr_assert_eq(log_parse_format("text", &f), 0);
	cr_assert_eq(f, LOG_FORMAT_TEXT);
	cr_assert_eq(log_parse_format("json", &f), 0);
	cr_assert_eq(f, LOG_FORMAT_JSON);
	cr_assert_eq(log_parse_format("JSON", &f), -1);
	cr_assert_eq(log_parse_format("", &f), -1);
}

/* log_limit: the first line passes, the next ones within the period are
 * refused and counted, and the line after the period says how many. */
Test(log, limit_lets_one_line_a_period_through)
{
	static struct log_limit l;
	uint64_t dropped = 99;
	cr_assert(log_limit_allow(&l, 200, &dropped));
	cr_assert_eq(dropped, 0);
	for (int i = 0; i < 5; i++)
		cr_assert_not(log_limit_allow(&l, 200, &dropped));
	struct timespec ts = {0, 250 * 1000000L};
	nanosleep(&ts, NULL);
	cr_assert(log_limit_allow(&l, 200, &dropped));
	cr_assert_eq(dropped, 5);
	cr_assert_not(log_limit_allow(&l, 200, &dropped));
}
