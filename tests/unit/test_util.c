/* Unit tests for util: durations, RFC 3339, base64, hex, ids, ct_streq, dynbuf. */
#include <criterion/criterion.h>
#include <jansson.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- durations ---- */

Test(duration, valid)
{
	static const struct {
		const char *in;
		int64_t ms;
	} cases[] = {
		{"0", 0},
		{"30", 30000},
		{"250ms", 250},
		{"0ms", 0},
		{"30s", 30000},
		{"5m", 300000},
		{"1m", 60000},
		{"2h", 7200000},
		{"30d", 2592000000},
		{"007s", 7000},
		{"9223372036854775807ms", INT64_MAX},
		{"9223372036854775", 9223372036854775000},
		{"2h30m", 9000000},
		{"1m30s500ms", 90500},
		{"1d1ms", 86400001},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		int64_t ms = -1;
		cr_assert_eq(duration_parse_ms(cases[i].in, &ms), 0, "parse '%s'", cases[i].in);
		cr_assert_eq(ms, cases[i].ms, "'%s' -> %lld, want %lld", cases[i].in, (long long)ms,
			     (long long)cases[i].ms);
	}
}

Test(duration, invalid)
{
	static const char *cases[] = {
		"",     "s",    "ms",   "-1",   "+1",   "1.5s", "1 s",  " 1",   "1 ",   "1S",
		"1sec", "1w",   "1y",   "1mss", "1hh",  "abc",  "1e3",  "0x10", "1s5",
		"9223372036854775808ms", /* overflow in the number */
		"9223372036854776s",     /* overflow in the unit */
		"106751991168d",
		"30m2h", "1h1h", "1m1m", "2h30", "1s 1ms", "1ms1s",
		"106751991167d86400000s", /* overflow in the sum */
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		int64_t ms = 12345;
		cr_assert_eq(duration_parse_ms(cases[i], &ms), -1, "'%s' should fail", cases[i]);
		cr_assert_eq(ms, 12345, "'%s' changed *ms on failure", cases[i]);
	}
}

/* What --check prints: the largest units first, read back as the same. */
Test(duration, format_round_trips)
{
	static const struct {
		int64_t ms;
		const char *out;
	} cases[] = {
		{0, "0"},          {500, "500ms"},       {30000, "30s"},
		{9000000, "2h30m"}, {90500, "1m30s500ms"}, {2592000000, "30d"},
		{86400001, "1d1ms"},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		char buf[DURATION_FORMAT_MAX];
		int64_t back = -1;
		cr_assert_str_eq(duration_format(cases[i].ms, buf, sizeof buf), cases[i].out);
		cr_assert_eq(duration_parse_ms(buf, &back), 0, "'%s' reads back", buf);
		cr_assert_eq(back, cases[i].ms, "'%s' -> %lld", buf, (long long)back);
	}
}

/* ---- RFC 3339 ---- */

Test(rfc3339, format)
{
	static const struct {
		int64_t ms;
		const char *out;
	} cases[] = {
		{0, "1970-01-01T00:00:00.000Z"},
		{1795784551123, "2026-11-27T13:02:31.123Z"},
		{951782400000, "2000-02-29T00:00:00.000Z"},
		{1709208000000, "2024-02-29T12:00:00.000Z"},
		{253402300799999, "9999-12-31T23:59:59.999Z"},
		{-1, "1969-12-31T23:59:59.999Z"},
		{-62135596800000, "0001-01-01T00:00:00.000Z"},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		char buf[32];
		rfc3339_format(cases[i].ms, buf);
		cr_assert_str_eq(buf, cases[i].out);
		int64_t back = 0;
		cr_assert_eq(rfc3339_parse(buf, &back), 0, "parse '%s'", buf);
		cr_assert_eq(back, cases[i].ms, "round trip of %s", buf);
	}
	/* Past year 9999 the digits grow rather than wrap. */
	char big[32];
	rfc3339_format(253402300800000, big);
	cr_assert_str_eq(big, "10000-01-01T00:00:00.000Z");
}

Test(rfc3339, parse_valid)
{
	static const struct {
		const char *in;
		int64_t ms;
	} cases[] = {
		{"2026-11-27T13:02:31Z", 1795784551000},
		{"2026-11-27T13:02:31.123Z", 1795784551123},
		{"2026-11-27t13:02:31.123z", 1795784551123},
		{"2026-11-27T13:02:31.1Z", 1795784551100},
		{"2026-11-27T13:02:31.12Z", 1795784551120},
		{"2026-11-27T13:02:31.123456789Z", 1795784551123},
		{"2026-11-27T14:02:31.123+01:00", 1795784551123},
		{"2026-11-27T08:32:31.123-04:30", 1795784551123},
		{"2026-11-27T13:02:31.123+00:00", 1795784551123},
		{"2026-11-27T13:02:31.123-00:00", 1795784551123},
		{"2000-02-29T00:00:00Z", 951782400000},
		{"1970-01-01T00:00:00Z", 0},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		int64_t ms = -1;
		cr_assert_eq(rfc3339_parse(cases[i].in, &ms), 0, "parse '%s'", cases[i].in);
		cr_assert_eq(ms, cases[i].ms, "'%s' -> %lld", cases[i].in, (long long)ms);
	}
}

Test(rfc3339, parse_invalid)
{
	static const char *cases[] = {
		"",
		"2026-11-27",
		"2026-11-27T13:02Z",
		"2026-11-27T13:02:31",           /* no zone */
		"2026-11-27 13:02:31Z",          /* space separator */
		"2026-11-27T13:02:31.Z",         /* empty fraction */
		"2026-11-27T13:02:31.1234567890Z",
		"2026-13-01T00:00:00Z",
		"2026-00-01T00:00:00Z",
		"2026-01-00T00:00:00Z",
		"2026-01-32T00:00:00Z",
		"2026-04-31T00:00:00Z",
		"2023-02-29T00:00:00Z",
		"1900-02-29T00:00:00Z",
		"2026-11-27T24:00:00Z",
		"2026-11-27T23:60:00Z",
		"2026-11-27T23:59:60Z",
		"2026-11-27T13:02:31+01",
		"2026-11-27T13:02:31+0100",
		"2026-11-27T13:02:31+24:00",
		"2026-11-27T13:02:31+01:60",
		"2026-11-27T13:02:31Zjunk",
		"2026-11-27T13:02:31Z ",
		" 2026-11-27T13:02:31Z",
		"26-11-27T13:02:31Z",
		"2026-1-27T13:02:31Z",
		"2026-11-27T13:02:31.12aZ",
		"abcd-ef-ghTij:kl:mnZ",
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		int64_t ms = 777;
		cr_assert_eq(rfc3339_parse(cases[i], &ms), -1, "'%s' should fail", cases[i]);
		cr_assert_eq(ms, 777);
	}
}

/* ---- base64 ---- */

Test(base64, rfc4648_vectors)
{
	static const struct {
		const char *raw, *enc;
	} cases[] = {
		{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},        {"foo", "Zm9v"},
		{"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		char *enc = b64_encode((const unsigned char *)cases[i].raw, strlen(cases[i].raw));
		cr_assert_not_null(enc);
		cr_assert_str_eq(enc, cases[i].enc);
		free(enc);

		unsigned char *dec = NULL;
		size_t len = 99;
		cr_assert_eq(b64_decode(cases[i].enc, &dec, &len), 0, "decode '%s'", cases[i].enc);
		cr_assert_eq(len, strlen(cases[i].raw), "length of '%s' = %zu", cases[i].enc, len);
		cr_assert_eq(memcmp(dec, cases[i].raw, len), 0);
		free(dec);
	}
}

Test(base64, binary_round_trip)
{
	unsigned char raw[256];
	for (int i = 0; i < 256; i++)
		raw[i] = (unsigned char)(255 - i);
	for (size_t n = 0; n <= sizeof raw; n++) {
		char *enc = b64_encode(raw, n);
		cr_assert_not_null(enc);
		cr_assert_eq(strlen(enc), (n + 2) / 3 * 4);
		unsigned char *dec = NULL;
		size_t len = 0;
		cr_assert_eq(b64_decode(enc, &dec, &len), 0, "n=%zu", n);
		cr_assert_eq(len, n);
		cr_assert_eq(memcmp(dec, raw, n), 0);
		free(dec);
		free(enc);
	}
}

Test(base64, invalid)
{
	static const char *cases[] = {
		"Zg",       /* missing padding */
		"Zg=",      /* short padding */
		"Zg===",    /* too much padding */
		"Z===",     /* three '=' */
		"====",     /* only padding */
		"Zm9vY",    /* not a multiple of 4 */
		"Zm=v",     /* '=' in the middle */
		"Zg==Zm8=", /* padding before the end */
		"Zm9v\n",   /* whitespace */
		" Zm9v",
		"Zm 9v",
		"Zm9-",     /* base64url alphabet */
		"Zm9_",
		"Zm9*",
		"Zh==",     /* non-zero bits under the padding */
		"Zm9=",
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		unsigned char *dec = (unsigned char *)"untouched";
		size_t len = 42;
		cr_assert_eq(b64_decode(cases[i], &dec, &len), -1, "'%s' should fail", cases[i]);
		cr_assert_eq(len, 42);
	}
}

Test(hex, encode)
{
	const unsigned char in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
	char out[2 * sizeof in + 1];
	hex_encode(in, sizeof in, out);
	cr_assert_str_eq(out, "00017f80abff");
	hex_encode(in, 0, out);
	cr_assert_str_eq(out, "");
}

/* ---- ids ---- */

static bool is_crockford(char c)
{
	return c != '\0' && strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", c) != NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

Test(ids, format)
{
	static const char *prefixes[] = {"evt", "ep", "dlv", "bat"};
	for (size_t i = 0; i < N_ELEMS(prefixes); i++) {
		char id[ID_MAX];
		cr_assert_eq(id_new(prefixes[i], id), 0);
		size_t plen = strlen(prefixes[i]);
		cr_assert_eq(strlen(id), plen + 1 + 26, "id '%s'", id);
		cr_assert_eq(strncmp(id, prefixes[i], plen), 0);
		cr_assert_eq(id[plen], '_');
		for (size_t j = plen + 1; id[j] != '\0'; j++)
			cr_assert(is_crockford(id[j]), "'%c' in '%s'", id[j], id);
		cr_assert(id_is_valid_client(id), "a generated id is a valid client id");
	}
}

Test(ids, time_prefix_is_now)
{
	/* The first 10 chars are the ms time; decode them and compare with now. */
	static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	int64_t before = now_ms();
	char id[ID_MAX];
	cr_assert_eq(id_new("evt", id), 0);
	int64_t after = now_ms();
	int64_t t = 0;
	for (int i = 0; i < 10; i++)
		t = t * 32 + (strchr(alphabet, id[4 + i]) - alphabet);
	/* Monotonic ids may borrow from the last id's ms, never from the future of now. */
	cr_assert(t >= before - 1000 && t <= after, "t=%lld before=%lld", (long long)t,
		  (long long)before);
}

Test(ids, too_long_prefix)
{
	char id[ID_MAX];
	char prefix[64];
	memset(prefix, 'p', sizeof prefix - 1);
	prefix[sizeof prefix - 1] = '\0';
	cr_assert_eq(id_new(prefix, id), -1);
}

#define N_IDS 20000

Test(ids, unique_and_sorted_in_creation_order)
{
	char **ids = calloc(N_IDS, sizeof *ids);
	char **sorted = calloc(N_IDS, sizeof *sorted);
	cr_assert_not_null(ids);
	cr_assert_not_null(sorted);
	for (int i = 0; i < N_IDS; i++) {
		ids[i] = malloc(ID_MAX);
		cr_assert_eq(id_new("evt", ids[i]), 0);
		sorted[i] = ids[i];
	}
	/* Many ids share a millisecond: they must still be strictly increasing. */
	for (int i = 1; i < N_IDS; i++)
		cr_assert(strcmp(ids[i - 1], ids[i]) < 0, "%s !< %s", ids[i - 1], ids[i]);
	qsort(sorted, N_IDS, sizeof *sorted, cmp_str);
	for (int i = 1; i < N_IDS; i++)
		cr_assert_neq(strcmp(sorted[i - 1], sorted[i]), 0, "duplicate %s", sorted[i]);
	for (int i = 0; i < N_IDS; i++)
		free(ids[i]);
	free(ids);
	free(sorted);
}

Test(ids, client_validation)
{
	static const struct {
		const char *in;
		bool ok;
	} cases[] = {
		{"a", true},
		{"evt_123-abc", true},
		{"ABCxyz_-09", true},
		{"0123456789012345678901234567890123456789012345678901234567890123", true},
		{"01234567890123456789012345678901234567890123456789012345678901234", false},
		{"", false},
		{"a b", false},
		{"a.b", false},
		{"a/b", false},
		{"é", false},
		{"a\n", false},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++)
		cr_assert_eq(id_is_valid_client(cases[i].in), cases[i].ok, "'%s'", cases[i].in);
}

/* ---- misc ---- */

Test(ct_streq, table)
{
	static const struct {
		const char *a, *b;
		bool eq;
	} cases[] = {
		{"", "", true},        {"abc", "abc", true}, {"abc", "abd", false},
		{"abc", "ab", false},  {"ab", "abc", false}, {"", "a", false},
		{"abc", "Abc", false},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++)
		cr_assert_eq(ct_streq(cases[i].a, cases[i].b), cases[i].eq, "'%s' vs '%s'",
			     cases[i].a, cases[i].b);
}

Test(random, bytes_and_unit)
{
	unsigned char a[32] = {0}, b[32] = {0};
	cr_assert_eq(random_bytes(a, sizeof a), 0);
	cr_assert_eq(random_bytes(b, sizeof b), 0);
	cr_assert_neq(memcmp(a, b, sizeof a), 0);
	double sum = 0;
	for (int i = 0; i < 10000; i++) {
		double u = random_unit();
		cr_assert(u >= 0.0 && u < 1.0, "u=%f", u);
		sum += u;
	}
	/* The mean of 10000 uniform draws is 0.5 +- 0.003 (1 sigma); allow 10 sigma. */
	cr_assert(sum / 10000 > 0.47 && sum / 10000 < 0.53, "mean %f", sum / 10000);
}

Test(dynbuf, limit)
{
	struct dynbuf b;
	dynbuf_init(&b, 10);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(dynbuf_append(&b, "", 0), 0);
	cr_assert_eq(dynbuf_append(&b, "hello", 5), 0);
	cr_assert_str_eq(b.data, "hello");
	cr_assert_eq(dynbuf_append(&b, "world!", 6), -1, "11 bytes is over the max of 10");
	cr_assert_eq(b.len, 5, "a failed append leaves the buffer unchanged");
	cr_assert_str_eq(b.data, "hello");
	cr_assert_eq(dynbuf_append(&b, "world", 5), 0, "exactly the max is fine");
	cr_assert_eq(b.len, 10);
	cr_assert_str_eq(b.data, "helloworld");
	cr_assert_eq(dynbuf_append(&b, "x", 1), -1);
	cr_assert_eq(b.len, 10);
	dynbuf_free(&b);
	cr_assert_null(b.data);
	cr_assert_eq(b.len, 0);
}

Test(dynbuf, grows_past_initial_capacity)
{
	struct dynbuf b;
	dynbuf_init(&b, 1 << 20);
	char chunk[1000];
	memset(chunk, 'x', sizeof chunk);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(dynbuf_append(&b, chunk, sizeof chunk), 0);
	cr_assert_eq(b.len, 1000000);
	cr_assert_eq(b.data[b.len], '\0');
	static char tail[48577];
	cr_assert_eq(dynbuf_append(&b, tail, sizeof tail), -1, "1048577 bytes is one over");
	cr_assert_eq(dynbuf_append(&b, tail, sizeof tail - 1), 0, "1048576 is exactly the max");
	cr_assert_eq(b.len, (size_t)1 << 20);
	dynbuf_free(&b);
}

Test(xstrdup, null_and_copy)
{
	cr_assert_null(xstrdup(NULL));
	char *s = xstrdup("abc");
	cr_assert_str_eq(s, "abc");
	free(s);
}

struct utf8_case {
	const char *bytes;
	size_t avail;
	size_t want;
};

Test(util, utf8_seq_len_table)
{
	static const struct utf8_case cases[] = {
		{"a", 1, 1},
		{"\xC3\xA9", 2, 2},             /* é */
		{"\xC3", 1, 0},                 /* cut short */
		{"\xC0\xAF", 2, 0},             /* overlong '/' */
		{"\xC1\xBF", 2, 0},             /* overlong */
		{"\xE2\x82\xAC", 3, 3},         /* € */
		{"\xE0\x80\xAF", 3, 0},         /* overlong */
		{"\xED\xA0\x80", 3, 0},         /* a surrogate */
		{"\xED\x9F\xBF", 3, 3},         /* U+D7FF */
		{"\xF0\x9F\x98\x80", 4, 4},     /* emoji */
		{"\xF0\x8F\xBF\xBF", 4, 0},     /* overlong */
		{"\xF4\x90\x80\x80", 4, 0},     /* past U+10FFFF */
		{"\xF5\x80\x80\x80", 4, 0},
		{"\x80", 1, 0},                 /* a lone continuation byte */
		{"\xE2\x28\xA1", 3, 0},         /* bad second byte */
		{"\xE2\x82\x28", 3, 0},         /* bad third byte */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(utf8_seq_len((const unsigned char *)cases[i].bytes, cases[i].avail),
			     cases[i].want, "case %zu", i);
}

Test(util, array_grow_doubles_keeps_and_refuses_overflow)
{
	int *a = NULL;
	size_t cap = 0;
	int *g = array_grow(a, &cap, 1, sizeof *a, 4);
	cr_assert_not_null(g);
	cr_assert_eq(cap, 4);
	a = g;
	for (int i = 0; i < 4; i++)
		a[i] = i;
	/* Room enough: the same array, nothing moved. */
	cr_assert_eq(array_grow(a, &cap, 4, sizeof *a, 4), a);
	cr_assert_eq(cap, 4);
	/* Doubling until it fits; the elements come along. */
	g = array_grow(a, &cap, 9, sizeof *a, 4);
	cr_assert_not_null(g);
	cr_assert_eq(cap, 16);
	a = g;
	for (int i = 0; i < 4; i++)
		cr_assert_eq(a[i], i);
	/* A size that would overflow is refused; the array and cap stay. */
	cr_assert_null(array_grow(a, &cap, SIZE_MAX / 2, sizeof *a, 4));
	cr_assert_null(array_grow(a, &cap, SIZE_MAX, 1, 4));
	cr_assert_eq(cap, 16);
	cr_assert_eq(a[3], 3);
	free(a);
}

/* ---- JSON strings ---- */

/* json_put_str writes what jansson writes for the same string: response
 * headers are stored as this text and read back with jansson. */
Test(json_put_str, escapes_as_jansson)
{
	static const struct {
		const char *s;
		size_t n;
	} cases[] = {
		{"text/plain", 10},
		{"a\"b\\c/d", 7},
		{"t\tn\nr\rb\bf\f\x01\x1f", 12},
		{"caf\xc3\xa9 \xe2\x82\xac", 9},
		{"", 0},
		{"a\0b", 3},
	};
	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		char out[6 * 16 + 2];
		cr_assert_leq(cases[i].n, 16);
		char *end = json_put_str(out, cases[i].s, cases[i].n);
		json_t *j = json_stringn(cases[i].s, cases[i].n);
		char *want = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		cr_assert_not_null(want);
		cr_expect_eq((size_t)(end - out), strlen(want), "case %zu", i);
		cr_expect(memcmp(out, want, strlen(want)) == 0, "case %zu: %.*s, want %s", i,
			  (int)(end - out), out, want);
		free(want);
		json_decref(j);
	}
}

/* The ingest response's appender: jansson's text for every byte value, and
 * a buffer whose max the escaped text exactly fits (or misses by one). */
Test(json_put_str, dynbuf_append_as_jansson)
{
	char s[128];
	for (size_t i = 0; i < sizeof s; i++)
		s[i] = (char)i; /* every ASCII byte, NUL and DEL included */
	json_t *j = json_stringn(s, sizeof s);
	char *want = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	cr_assert_not_null(want);
	size_t wlen = strlen(want);
	struct dynbuf b;
	dynbuf_init(&b, 1 << 20);
	cr_assert_eq(dynbuf_append(&b, "x", 1), 0);
	cr_assert_eq(dynbuf_append_json_str(&b, s, sizeof s), 0);
	cr_expect_eq(b.len, wlen + 1);
	cr_expect_str_eq(b.data + 1, want);
	dynbuf_free(&b);

	/* Exactly fits: the exact length is used when the worst case would not. */
	dynbuf_init(&b, wlen + 1);
	cr_assert_eq(dynbuf_append(&b, "x", 1), 0);
	cr_assert_eq(dynbuf_append_json_str(&b, s, sizeof s), 0);
	cr_expect_str_eq(b.data + 1, want);
	dynbuf_free(&b);

	/* One byte short: refused, b unchanged. */
	dynbuf_init(&b, wlen);
	cr_assert_eq(dynbuf_append(&b, "x", 1), 0);
	cr_expect_eq(dynbuf_append_json_str(&b, s, sizeof s), -1);
	cr_expect_eq(b.len, 1);
	cr_expect_str_eq(b.data, "x");
	dynbuf_free(&b);
	free(want);
	json_decref(j);
}

/* utf8_clean as it was before its ASCII fast path (session 10), kept as
 * the reference the fast one must match byte for byte. */
static size_t utf8_clean_ref(char *s, size_t len, bool strict, bool cut)
{
	unsigned char *u = (unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		unsigned c = u[i];
		size_t need;
		unsigned min;
		if (c < 0x80) {
			if (c == 0 || (strict && (c < 0x20 || c == 0x7f) && c != '\t'))
				u[i] = '?';
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			need = 1, min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3, min = 0x10000;
		} else {
			u[i++] = '?';
			continue;
		}
		if (i + need >= len) {
			bool prefix = cut;
			for (size_t k = i + 1; k < len; k++)
				if ((u[k] & 0xc0) != 0x80)
					prefix = false;
			if (prefix)
				return i;
			u[i++] = '?';
			continue;
		}
		unsigned cp = c & (0x3f >> need);
		bool ok = true;
		for (size_t k = 1; k <= need; k++) {
			if ((u[i + k] & 0xc0) != 0x80) {
				ok = false;
				break;
			}
			cp = (cp << 6) | (u[i + k] & 0x3f);
		}
		if (!ok || cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
			u[i++] = '?';
			continue;
		}
		i += need + 1;
	}
	return len;
}

Test(utf8_clean, table)
{
	static const struct {
		const char *in;
		bool strict, cut;
		const char *out;
	} cases[] = {
		{"plain text", false, false, "plain text"},
		{"caf\xc3\xa9", true, false, "caf\xc3\xa9"},
		{"a\tb\r\nc\x7f", true, false, "a\tb??c?"},
		{"a\tb\r\nc\x7f", false, false, "a\tb\r\nc\x7f"},
		{"\xff\xfe ok", false, false, "?? ok"},
		{"\xc0\xaf", false, false, "??"},           /* overlong */
		{"\xed\xa0\x80", false, false, "???"},      /* a surrogate */
		{"\xf4\x90\x80\x80", false, false, "????"}, /* past U+10FFFF */
		{"ab\xe2\x82", false, true, "ab"},          /* split by the cap: dropped */
		{"ab\xe2\x82", false, false, "ab??"},       /* not cut: junk */
		{"\xf0\x9f\x98\x80!", true, false, "\xf0\x9f\x98\x80!"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char buf[64];
		size_t n = strlen(cases[i].in);
		memcpy(buf, cases[i].in, n);
		n = utf8_clean(buf, n, cases[i].strict, cases[i].cut);
		cr_assert_eq(n, strlen(cases[i].out), "case %zu", i);
		cr_assert_eq(memcmp(buf, cases[i].out, n), 0, "case %zu", i);
	}
	char nul[] = {'a', '\0', 'b'};
	cr_assert_eq(utf8_clean(nul, 3, false, false), 3);
	cr_assert_eq(memcmp(nul, "a?b", 3), 0);
}

/* The fast path against the reference on 40,000 random texts made of the
 * bytes where the rules change (ASCII edges, control characters, sequence
 * leads and continuations at their limits), every strict/cut pair. */
Test(utf8_clean, matches_the_reference)
{
	static const unsigned char alphabet[] = {
		0x00, 0x09, 0x0a, 0x1f, 0x20, 'a', 0x7e, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0,
		0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff};
	uint64_t x = 0x9e3779b97f4a7c15u;
	for (int t = 0; t < 40000; t++) {
		char a[48], b[48];
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t len = (size_t)(x % sizeof a);
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* Mostly ASCII letters, as real text, so runs form. */
			a[i] = (x >> 8) % 3 == 0 ? (char)alphabet[(x >> 16) % sizeof alphabet] : 'x';
		}
		bool strict = t & 1, cut = t & 2;
		memcpy(b, a, len);
		size_t na = utf8_clean(a, len, strict, cut);
		size_t nb = utf8_clean_ref(b, len, strict, cut);
		cr_assert_eq(na, nb, "text %d", t);
		cr_assert_eq(memcmp(a, b, na), 0, "text %d", t);
	}
}

/* put_i64 writes what snprintf's %lld does, at the ends of the range too. */
Test(util, put_i64_writes_decimal_like_snprintf)
{
	static const int64_t cases[] = {0, 1, -1, 9, 10, -10, 1733520000, -1733520000,
					INT64_MAX, INT64_MIN, INT64_MIN + 1};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char got[UTIL_I64_DIGITS_MAX + 1], want[32];
		char *end = put_i64(got, cases[i]);
		cr_assert_leq((size_t)(end - got), UTIL_I64_DIGITS_MAX);
		*end = '\0';
		snprintf(want, sizeof want, "%lld", (long long)cases[i]);
		cr_expect_str_eq(got, want, "case %zu", i);
	}
}
