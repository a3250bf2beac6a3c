/* util: ids, clocks, RFC 3339 times, durations, base64/hex, randomness,
 * constant-time comparison and a bounded buffer. */
#include "util.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* ---- ids ---- */

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#define ID_RAND_BYTES 10 /* 80 bits */
#define ID_TIME_CHARS 10 /* 48 bits of ms time, 5 bits a char (the top 2 bits are 0) */
#define ID_BODY_CHARS 26

/* The last id's time and random part, so ids made in the same millisecond
 * (or after the wall clock stepped back) still sort in creation order:
 * the random part is then incremented instead of drawn again. */
static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t id_last_ms = -1;
static unsigned char id_last_rand[ID_RAND_BYTES];

/* Adds one to a big-endian number. Returns false if it wrapped to zero. */
static bool be_increment(unsigned char *p, size_t len)
{
	for (size_t i = len; i > 0; i--) {
		if (++p[i - 1] != 0)
			return true;
	}
	return false;
}

int id_new(const char *prefix, char out[ID_MAX])
{
	size_t plen = strlen(prefix);
	if (plen + 1 + ID_BODY_CHARS + 1 > ID_MAX)
		return -1;

	unsigned char rnd[ID_RAND_BYTES];
	int64_t ms = now_ms();
	pthread_mutex_lock(&id_lock);
	if (ms <= id_last_ms) {
		ms = id_last_ms;
		memcpy(rnd, id_last_rand, sizeof rnd);
		if (!be_increment(rnd, sizeof rnd)) {
			/* 2^80 ids in one millisecond: borrow the next one. */
			ms++;
		}
	} else if (random_bytes(rnd, sizeof rnd) != 0) {
		pthread_mutex_unlock(&id_lock);
		return -1;
	}
	id_last_ms = ms;
	memcpy(id_last_rand, rnd, sizeof rnd);
	pthread_mutex_unlock(&id_lock);

	memcpy(out, prefix, plen);
	char *p = out + plen;
	*p++ = '_';
	uint64_t t = (uint64_t)ms & 0xFFFFFFFFFFFFull;
	for (int i = ID_TIME_CHARS - 1; i >= 0; i--) {
		p[i] = crockford[t & 31];
		t >>= 5;
	}
	p += ID_TIME_CHARS;
	/* 80 bits = 16 chars of 5 bits, taken from the most significant end. */
	for (int i = 0; i < 16; i++) {
		int bit = i * 5;
		int byte = bit / 8, off = bit % 8;
		unsigned v = (unsigned)rnd[byte] << 8;
		if (byte + 1 < ID_RAND_BYTES)
			v |= rnd[byte + 1];
		p[i] = crockford[(v >> (11 - off)) & 31];
	}
	p[16] = '\0';
	return 0;
}

bool id_is_valid_client(const char *s)
{
	size_t n = 0;
	for (; s[n] != '\0'; n++) {
		char c = s[n];
		if (n >= 64)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return n > 0;
}

/* ---- clocks ---- */

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- RFC 3339 ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so parsing does not depend on timegm or the TZ. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* Writes v (0 <= v < 10^n) as n decimal digits at p. */
static void put_digits(char *p, int n, int v)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

void rfc3339_format(int64_t ms, char out[32])
{
	int64_t secs = ms / 1000, frac = ms % 1000;
	if (frac < 0) {
		frac += 1000;
		secs--;
	}
	int64_t days = secs / 86400, sod = secs % 86400;
	if (sod < 0) {
		sod += 86400;
		days--;
	}
	int64_t y;
	int m, d;
	civil_from_days(days, &y, &m, &d);
	if (y < 0 || y > 9999) {
		snprintf(out, 32, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
			 (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (int)frac);
		return;
	}
	/* Digits by hand: every event's created_at is formatted on the
	 * ingest and delivery paths, and snprintf cost 3,400 instructions. */
	static const char shape[] = "0000-00-00T00:00:00.000Z";
	memcpy(out, shape, sizeof shape);
	put_digits(out, 4, (int)y);
	put_digits(out + 5, 2, m);
	put_digits(out + 8, 2, d);
	put_digits(out + 11, 2, (int)(sod / 3600));
	put_digits(out + 14, 2, (int)(sod / 60 % 60));
	put_digits(out + 17, 2, (int)(sod % 60));
	put_digits(out + 20, 3, (int)frac);
}

/* Reads exactly n digits. Returns -1 if any is not a digit. */
static int read_digits(const char **s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*s)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*s += n;
	return v;
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int rfc3339_parse(const char *s, int64_t *ms)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *p = s;
	int y, mo, d, h, mi, se, frac = 0;

	if ((y = read_digits(&p, 4)) < 0 || *p++ != '-' || (mo = read_digits(&p, 2)) < 0 ||
	    *p++ != '-' || (d = read_digits(&p, 2)) < 0)
		return -1;
	if (*p != 'T' && *p != 't')
		return -1;
	p++;
	if ((h = read_digits(&p, 2)) < 0 || *p++ != ':' || (mi = read_digits(&p, 2)) < 0 ||
	    *p++ != ':' || (se = read_digits(&p, 2)) < 0)
		return -1;
	if (*p == '.') {
		p++;
		int n = 0;
		while (*p >= '0' && *p <= '9') {
			/* Keep milliseconds; further digits are truncated. */
			if (n < 3)
				frac = frac * 10 + (*p - '0');
			n++;
			p++;
		}
		if (n == 0 || n > 9)
			return -1;
		for (; n < 3; n++)
			frac *= 10;
	}
	int offset_min = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1;
		int oh, om;
		if ((oh = read_digits(&p, 2)) < 0 || *p++ != ':' || (om = read_digits(&p, 2)) < 0)
			return -1;
		if (oh > 23 || om > 59)
			return -1;
		offset_min = sign * (oh * 60 + om);
	} else {
		return -1;
	}
	if (*p != '\0')
		return -1;

	if (mo < 1 || mo > 12 || d < 1)
		return -1;
	int dim = mdays[mo - 1] + (mo == 2 && is_leap(y));
	/* Leap seconds (":60") are refused: hookd never produces them. */
	if (d > dim || h > 23 || mi > 59 || se > 59)
		return -1;

	int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	secs -= (int64_t)offset_min * 60;
	*ms = secs * 1000 + frac;
	return 0;
}

/* ---- durations ---- */

/* Duration units, largest first (duration_format writes them in this order). */
static const struct {
	const char *name;
	int64_t ms;
} duration_units[] = {
	{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1},
};
#define N_DURATION_UNITS (sizeof duration_units / sizeof duration_units[0])

/* One "<digits><unit>" at *p, its unit after the previous one (*unit, the
 * index of the last unit read): adds it to *total; -1 if it is not one. */
static int duration_part(const char **p, size_t *unit, int64_t *total)
{
	int64_t v = 0;
	if (**p < '0' || **p > '9')
		return -1;
	for (; **p >= '0' && **p <= '9'; (*p)++) {
		int digit = **p - '0';
		if (v > (INT64_MAX - digit) / 10)
			return -1;
		v = v * 10 + digit;
	}
	for (size_t i = *unit; i < N_DURATION_UNITS; i++) {
		size_t n = strlen(duration_units[i].name);
		/* "m" is not the start of "ms". */
		if (strncmp(*p, duration_units[i].name, n) != 0 || (n == 1 && (*p)[1] == 's'))
			continue;
		if (v > INT64_MAX / duration_units[i].ms ||
		    v * duration_units[i].ms > INT64_MAX - *total)
			return -1;
		*total += v * duration_units[i].ms;
		*p += n;
		*unit = i + 1;
		return 0;
	}
	return -1;
}

int duration_parse_ms(const char *s, int64_t *ms)
{
	const char *p = s;
	int64_t total = 0, secs = 0;
	size_t unit = 0;
	/* A bare number is seconds. */
	if (*s != '\0' && s[strspn(s, "0123456789")] == '\0') {
		for (; *p != '\0'; p++) {
			if (secs > (INT64_MAX / 1000 - (*p - '0')) / 10)
				return -1;
			secs = secs * 10 + (*p - '0');
		}
		*ms = secs * 1000;
		return 0;
	}
	do {
		if (duration_part(&p, &unit, &total) != 0)
			return -1;
	} while (*p != '\0');
	*ms = total;
	return 0;
}

char *duration_format(int64_t ms, char *buf, size_t len)
{
	size_t o = 0;
	if (len == 0)
		return buf;
	buf[0] = '\0';
	if (ms <= 0) {
		snprintf(buf, len, "%lld", (long long)(ms < 0 ? ms : 0));
		return buf;
	}
	for (size_t i = 0; i < N_DURATION_UNITS && ms > 0 && o < len; i++) {
		int64_t n = ms / duration_units[i].ms;
		if (n == 0)
			continue;
		o += (size_t)snprintf(buf + o, len - o, "%lld%s", (long long)n,
				      duration_units[i].name);
		ms -= n * duration_units[i].ms;
	}
	return buf;
}

/* ---- base64 and hex ---- */

char *b64_encode(const unsigned char *in, size_t len)
{
	if (len > (size_t)INT_MAX / 4 * 3 - 3)
		return NULL;
	size_t outlen = (len + 2) / 3 * 4;
	char *out = malloc(outlen + 1);
	if (out == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	out[outlen] = '\0';
	return out;
}

static bool b64_is_alpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : 63;
}

int b64_decode(const char *s, unsigned char **out, size_t *out_len)
{
	size_t n = strlen(s);
	/* EVP_DecodeBlock skips whitespace and is loose about padding, so the
	 * input is checked here first: only the alphabet, length a multiple of 4,
	 * at most two '=' and only at the end, and no stray bits before them. */
	if (n % 4 != 0 || n > (size_t)INT_MAX)
		return -1;
	size_t pad = 0;
	if (n > 0 && s[n - 1] == '=')
		pad++;
	if (n > 1 && s[n - 2] == '=')
		pad++;
	for (size_t i = 0; i < n - pad; i++) {
		if (!b64_is_alpha(s[i]))
			return -1;
	}
	if (pad == 1 && (b64_value(s[n - 2]) & 0x03) != 0)
		return -1;
	if (pad == 2 && (b64_value(s[n - 3]) & 0x0f) != 0)
		return -1;

	unsigned char *buf = malloc(n / 4 * 3 + 1);
	if (buf == NULL)
		return -1;
	int got = n > 0 ? EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n) : 0;
	/* EVP_DecodeBlock counts the padding as decoded zero bytes. */
	if (got < 0 || (size_t)got != n / 4 * 3) {
		free(buf);
		return -1;
	}
	*out = buf;
	*out_len = (size_t)got - pad;
	return 0;
}

void hex_encode(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

/* ---- randomness ---- */

int random_bytes(unsigned char *out, size_t len)
{
	while (len > 0) {
		int chunk = len > INT_MAX ? INT_MAX : (int)len;
		if (RAND_bytes(out, chunk) != 1)
			return -1;
		out += chunk;
		len -= (size_t)chunk;
	}
	return 0;
}

/* xorshift64* per thread: no lock, and good enough for jitter and fail-rate. */
static _Thread_local uint64_t rng_state;

double random_unit(void)
{
	if (rng_state == 0) {
		uint64_t seed = 0;
		if (random_bytes((unsigned char *)&seed, sizeof seed) != 0 || seed == 0) {
			/* Fall back to something that differs per thread and per run. */
			seed = (uint64_t)mono_ms() ^ ((uint64_t)(uintptr_t)&rng_state << 16) ^
			       0x9E3779B97F4A7C15ull;
		}
		rng_state = seed;
	}
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53;
}

/* ---- comparison ---- */

bool ct_streq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb) {
		/* Still spend time proportional to the longer one, then fail. */
		const char *longer = la > lb ? a : b;
		(void)CRYPTO_memcmp(longer, longer, la > lb ? la : lb);
		return false;
	}
	return CRYPTO_memcmp(a, b, la) == 0;
}

/* ---- arrays and hashing ---- */

uint32_t str_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h;
}

void *array_grow(void *arr, size_t *cap, size_t need, size_t size, size_t first)
{
	if (need <= *cap)
		return arr;
	size_t n = *cap ? *cap : (first ? first : 1);
	while (n < need) {
		if (n > SIZE_MAX / 2)
			return NULL;
		n *= 2;
	}
	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	void *grown = realloc(arr, n * size);
	if (grown != NULL)
		*cap = n;
	return grown;
}

/* ---- dynbuf ---- */

void dynbuf_init(struct dynbuf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

/* Makes room for len more bytes and the NUL: 0, or -1 past max or out of memory. */
static int dynbuf_reserve(struct dynbuf *b, size_t len)
{
	if (len > b->max - b->len)
		return -1;
	if (b->len + len == SIZE_MAX)
		return -1;
	size_t need = b->len + len + 1; /* room for the NUL */
	if (need > b->cap) {
		size_t cap = b->cap > 0 ? b->cap : 256;
		while (cap < need)
			cap = cap > SIZE_MAX / 2 ? need : cap * 2;
		if (b->max < SIZE_MAX && cap > b->max + 1)
			cap = b->max + 1;
		char *p = realloc(b->data, cap);
		if (p == NULL)
			return -1;
		b->data = p;
		b->cap = cap;
	}
	return 0;
}

int dynbuf_append(struct dynbuf *b, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	if (dynbuf_reserve(b, len) != 0)
		return -1;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

void dynbuf_free(struct dynbuf *b)
{
	free(b->data);
	dynbuf_init(b, b->max);
}

char *xstrdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

size_t utf8_clean(char *s, size_t len, bool strict, bool cut)
{
	unsigned char *u = (unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		/* Runs of plain ASCII, nearly all of a receiver's text, in a
		 * tight loop: about 3 instructions a byte instead of 10. */
		if (strict)
			while (i < len && u[i] >= 0x20 && u[i] < 0x7f)
				i++;
		else
			while (i < len && u[i] - 1u < 0x7fu) /* 0x01..0x7f */
				i++;
		if (i == len)
			break;
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
			/* Not enough bytes left: a sequence split by the cap is
			 * dropped, anything else is junk. */
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

size_t utf8_seq_len(const unsigned char *p, size_t avail)
{
	unsigned char c = p[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xBF; /* bounds of the second byte */

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else
		return 0;
	if (avail < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++) {
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	}
	return n;
}

char *json_put_str(char *o, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch != '"' && ch != '\\') {
			*o++ = (char)ch;
			continue;
		}
		*o++ = '\\';
		switch (ch) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			memcpy(o, "u00", 3);
			o[3] = hex[ch >> 4];
			o[4] = hex[ch & 15];
			o += 5;
		}
	}
	*o++ = '"';
	return o;
}

/* The length of s[0..n) as json_put_str writes it. */
static size_t json_str_len(const char *s, size_t n)
{
	size_t len = 2;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch != '"' && ch != '\\')
			len += 1;
		else if (ch == '"' || ch == '\\' || ch == '\b' || ch == '\f' || ch == '\n' ||
			 ch == '\r' || ch == '\t')
			len += 2;
		else
			len += 6;
	}
	return len;
}

int dynbuf_append_json_str(struct dynbuf *b, const char *s, size_t n)
{
	/* Room for the worst case, one pass; near max, the exact length. */
	size_t need = n <= (SIZE_MAX - 2) / 6 ? 6 * n + 2 : SIZE_MAX;
	if (need > b->max - b->len)
		need = json_str_len(s, n);
	if (dynbuf_reserve(b, need) != 0)
		return -1;
	char *end = json_put_str(b->data + b->len, s, n);
	b->len = (size_t)(end - b->data);
	b->data[b->len] = '\0';
	return 0;
}

char *put_i64(char *p, int64_t v)
{
	char tmp[UTIL_I64_DIGITS_MAX];
	size_t n = 0;
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u > 0);
	if (v < 0)
		*p++ = '-';
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}
