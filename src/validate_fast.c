/* validate_fast: the ingest fast path (validate_ingest_fast, see validate.h).
 *
 * A POST /v1/events body is parsed by jansson into a tree, checked, and its
 * `data` printed back to text: most of an ingest request's CPU. The fast
 * path reads the bytes once instead, checking the JSON grammar as jansson
 * does and writing each `data` straight in the form validate_json_text
 * gives (no whitespace, escapes and reals as jansson prints them). It only
 * says yes to what it fully understands: anything else, valid or not, goes
 * to the full path (validate.c), which also words every error.
 *
 * validate_json_depth, the --max-json-depth check of every API body, is
 * here too: it reads raw bytes as well. */
#include "validate.h"
#include "validate_fast_internal.h"
#include "util.h"

#include <errno.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#define FAST_DEPTH_MAX 32     /* nesting inside data, at most (and --max-json-depth) */
#define FAST_KEYS_MAX 256     /* keys of the objects open at once */
#define FAST_OBJ_KEYS_MAX 64  /* keys of one object (duplicates: compared pairwise) */
#define FAST_INT_DIGITS 18    /* any 18-digit integer fits json_int_t */
#define FAST_REAL_MAX 64      /* longest real literal taken */
#define FAST_REALS_MAX 32     /* reals of a data object put right in place */

enum { FAST_OK = 0, FAST_SLOW = 1, FAST_OOM = -1 };

struct fast {
	const char *p;
	const char *end;
	/* The data text being written. Between values, cap - len >= the input
	 * left + 1: no input byte makes more than one output byte, but reals,
	 * which reserve their own room. */
	char *out;
	size_t len;
	size_t cap;
	size_t key_off[FAST_KEYS_MAX];
	size_t key_len[FAST_KEYS_MAX];
	size_t nkeys;
	int depth;
	int max_depth;      /* nesting allowed inside data: FAST_DEPTH_MAX or less */
	int body_depth;     /* --max-json-depth of the whole body */
	/* The reals of a data object are printed with the precision the worst
	 * of them needs (validate_json_text), known only at its end. The first
	 * pass (prec 0) copies them as written, noting where (reals) and what
	 * precision each needs (need, 0 if none); they are then put right in
	 * place, or, past FAST_REALS_MAX of them, by a second pass with
	 * prec = need. */
	int prec;
	int need;
	size_t nreals;
	struct {
		size_t off;
		size_t len;
		double v;
		bool plain; /* "%.15g" prints it as written */
	} reals[FAST_REALS_MAX];
};

static int fast_reserve(struct fast *f, size_t extra)
{
	size_t want = (size_t)(f->end - f->p) + 1 + extra;
	if (f->cap - f->len >= want)
		return FAST_OK;
	size_t cap = f->cap ? f->cap : 256;
	while (cap - f->len < want)
		cap *= 2;
	char *o = realloc(f->out, cap);
	if (o == NULL)
		return FAST_OOM;
	f->out = o;
	f->cap = cap;
	return FAST_OK;
}

static void fast_ws(struct fast *f)
{
	while (f->p < f->end && (*f->p == ' ' || *f->p == '\n' || *f->p == '\r' || *f->p == '\t'))
		f->p++;
}


static int fast_hex4(const unsigned char *p, const unsigned char *end, unsigned *out)
{
	unsigned v = 0;
	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		unsigned c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Writes code point cp as jansson's dump does: the two-character escapes,
 * \u00XX (upper-case hex) for the other control characters, UTF-8 else. */
static char *fast_put_cp(char *o, unsigned cp)
{
	static const char hex[] = "0123456789ABCDEF";
	switch (cp) {
	case '"': *o++ = '\\'; *o++ = '"'; return o;
	case '\\': *o++ = '\\'; *o++ = '\\'; return o;
	case '\b': *o++ = '\\'; *o++ = 'b'; return o;
	case '\f': *o++ = '\\'; *o++ = 'f'; return o;
	case '\n': *o++ = '\\'; *o++ = 'n'; return o;
	case '\r': *o++ = '\\'; *o++ = 'r'; return o;
	case '\t': *o++ = '\\'; *o++ = 't'; return o;
	default: break;
	}
	if (cp < 0x20) {
		memcpy(o, "\\u00", 4);
		o[4] = hex[cp >> 4];
		o[5] = hex[cp & 15];
		return o + 6;
	}
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xC0 | (cp >> 6));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xE0 | (cp >> 12));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else {
		*o++ = (char)(0xF0 | (cp >> 18));
		*o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	}
	return o;
}

/* True if none of the 8 bytes in v needs a look: each is 0x20..0x7f and
 * neither '"' nor '\\' (the classic "has a byte less than n" and "has a
 * zero byte" word tricks, exact for the question "any?"). */
static inline bool fast_plain8(uint64_t v)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t ctl = (v - ones * 0x20) & ~v & high;
	uint64_t q = v ^ (ones * '"');
	uint64_t b = v ^ (ones * '\\');
	q = (q - ones) & ~q & high;
	b = (b - ones) & ~b & high;
	return ((ctl | q | b | (v & high))) == 0;
}

/* A string (f->p at its opening quote), written in jansson's form. Every
 * escape is at least as long as what it becomes, so the output never
 * outgrows the input. */
static int fast_string(struct fast *f)
{
	const unsigned char *p = (const unsigned char *)f->p + 1;
	const unsigned char *end = (const unsigned char *)f->end;
	char *o = f->out + f->len;
	*o++ = '"';
	for (;;) {
		/* Runs of plain characters, eight at a time. */
		while (end - p >= 8) {
			uint64_t v;
			memcpy(&v, p, 8);
			if (!fast_plain8(v))
				break;
			memcpy(o, p, 8);
			o += 8;
			p += 8;
		}
		if (p >= end)
			return FAST_SLOW;
		unsigned c = *p;
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			*o++ = (char)c;
			p++;
			continue;
		}
		if (c == '"')
			break;
		if (c < 0x20)
			return FAST_SLOW; /* a raw control character: invalid */
		if (c >= 0x80) {
			size_t n = utf8_seq_len(p, (size_t)(end - p));
			if (n == 0)
				return FAST_SLOW;
			memcpy(o, p, n);
			o += n;
			p += n;
			continue;
		}
		/* An escape. */
		if (end - p < 2)
			return FAST_SLOW;
		c = p[1];
		p += 2;
		switch (c) {
		case '"': case '\\': case 'b': case 'f': case 'n': case 'r': case 't':
			*o++ = '\\';
			*o++ = (char)c;
			continue;
		case '/':
			*o++ = '/';
			continue;
		case 'u':
			break;
		default:
			return FAST_SLOW;
		}
		unsigned cp, lo;
		if (fast_hex4(p, end, &cp) != 0)
			return FAST_SLOW;
		p += 4;
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
			    fast_hex4(p + 2, end, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
				return FAST_SLOW;
			p += 6;
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
		} else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0) {
			return FAST_SLOW; /* a lone low surrogate; \u0000 */
		}
		o = fast_put_cp(o, cp);
	}
	*o++ = '"';
	f->p = (const char *)p + 1;
	f->len = (size_t)(o - f->out);
	return FAST_OK;
}

static bool fast_digit(const char *p, const char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

/* Of a real literal s (n bytes, valid JSON): *sig, its digits from the
 * first non-zero one on (at least the significant ones), and *plain, true
 * when "%.15g" prints its value exactly as s is written: no exponent, a
 * fraction not ending in 0, at most 15 such digits, and a decimal exponent
 * in -4..14 (where %g does not switch to e-notation). */
static void fast_real_shape(const char *s, size_t n, int *sig, bool *plain)
{
	const char *p = s, *end = s + n;
	int digits = 0, x = 0;
	bool started = false, point = false, expo = false;
	if (*p == '-')
		p++;
	for (; p < end; p++) {
		if (*p == '.') {
			point = true;
		} else if (*p == 'e' || *p == 'E') {
			expo = true;
			break;
		} else if (started || *p != '0') {
			if (!started)
				x = point ? x - 1 : 0;
			else if (!point)
				x++;
			started = true;
			digits++;
		} else if (point) {
			x--; /* a zero between the point and the first digit */
		}
	}
	*sig = digits;
	*plain = !expo && point && started && s[n - 1] != '0' && digits <= 15 && x >= -4 &&
		 x <= 14;
}

static int fast_number(struct fast *f)
{
	const char *s = f->p, *p = s, *end = f->end;
	bool real = false;
	if (*p == '-')
		p++;
	if (!fast_digit(p, end))
		return FAST_SLOW;
	if (*p == '0') {
		p++;
		if (fast_digit(p, end))
			return FAST_SLOW; /* a leading zero: invalid */
	} else {
		while (fast_digit(p, end))
			p++;
	}
	if (p < end && *p == '.') {
		real = true;
		p++;
		if (!fast_digit(p, end))
			return FAST_SLOW;
		while (fast_digit(p, end))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		real = true;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!fast_digit(p, end))
			return FAST_SLOW;
		while (fast_digit(p, end))
			p++;
	}
	size_t n = (size_t)(p - s);
	if (!real) {
		if (n - (s[0] == '-') > FAST_INT_DIGITS)
			return FAST_SLOW; /* jansson decides whether it fits */
		if (n == 2 && s[0] == '-' && s[1] == '0') {
			f->out[f->len++] = '0'; /* -0 is the integer 0 */
		} else {
			memcpy(f->out + f->len, s, n);
			f->len += n;
		}
		f->p = p;
		return FAST_OK;
	}
	char tok[FAST_REAL_MAX];
	int sig;
	bool plain;
	/* strtod and "%g" follow the locale; jansson converts, this does not. */
	if (n >= sizeof tok || localeconv()->decimal_point[0] != '.')
		return FAST_SLOW;
	fast_real_shape(s, n, &sig, &plain);
	memcpy(tok, s, n);
	tok[n] = '\0';
	errno = 0;
	char *te;
	double v = strtod(tok, &te);
	if (errno != 0 || te != tok + n)
		return FAST_SLOW; /* overflow (refused) or underflow: the full path */
	f->p = p;
	if (f->prec == 0) {
		/* Up to 15 significant digits read back from "%.15g" exactly
		 * (DBL_DIG), which saves printing it to find out. */
		int d = sig <= 15 ? 15 : validate_real_digits(v);
		f->need = d > f->need ? d : f->need;
		if (f->nreals < FAST_REALS_MAX) {
			f->reals[f->nreals].off = f->len;
			f->reals[f->nreals].len = n;
			f->reals[f->nreals].v = v;
			f->reals[f->nreals].plain = plain;
		}
		f->nreals++;
		memcpy(f->out + f->len, s, n);
		f->len += n;
		return FAST_OK;
	}
	if (fast_reserve(f, VALIDATE_REAL_OUT) != FAST_OK)
		return FAST_OOM;
	char txt[VALIDATE_REAL_OUT];
	size_t tn = validate_real_text(v, f->prec, txt);
	if (tn == 0)
		return FAST_SLOW;
	memcpy(f->out + f->len, txt, tn);
	f->len += tn;
	return FAST_OK;
}

static int fast_literal(struct fast *f, const char *word, size_t n)
{
	if ((size_t)(f->end - f->p) < n || memcmp(f->p, word, n) != 0)
		return FAST_SLOW;
	memcpy(f->out + f->len, word, n);
	f->len += n;
	f->p += n;
	return FAST_OK;
}

static int fast_value(struct fast *f);

static int fast_object(struct fast *f)
{
	int rc;
	size_t base = f->nkeys;
	if (++f->depth > f->max_depth)
		return FAST_SLOW;
	f->p++;
	f->out[f->len++] = '{';
	fast_ws(f);
	if (f->p < f->end && *f->p == '}') {
		f->p++;
		goto close;
	}
	for (;;) {
		if (f->p >= f->end || *f->p != '"')
			return FAST_SLOW;
		size_t koff = f->len;
		if ((rc = fast_string(f)) != FAST_OK)
			return rc;
		size_t klen = f->len - koff;
		if (f->nkeys >= FAST_KEYS_MAX || f->nkeys - base >= FAST_OBJ_KEYS_MAX)
			return FAST_SLOW;
		/* Keys are compared as written here, which is one text per
		 * string, so equal texts are equal keys: a duplicate. */
		for (size_t i = base; i < f->nkeys; i++) {
			if (f->key_len[i] == klen &&
			    memcmp(f->out + f->key_off[i], f->out + koff, klen) == 0)
				return FAST_SLOW;
		}
		f->key_off[f->nkeys] = koff;
		f->key_len[f->nkeys] = klen;
		f->nkeys++;
		fast_ws(f);
		if (f->p >= f->end || *f->p != ':')
			return FAST_SLOW;
		f->p++;
		f->out[f->len++] = ':';
		fast_ws(f);
		if ((rc = fast_value(f)) != FAST_OK)
			return rc;
		fast_ws(f);
		if (f->p < f->end && *f->p == ',') {
			f->p++;
			f->out[f->len++] = ',';
			fast_ws(f);
			continue;
		}
		if (f->p < f->end && *f->p == '}') {
			f->p++;
			break;
		}
		return FAST_SLOW;
	}
close:
	f->out[f->len++] = '}';
	f->nkeys = base;
	f->depth--;
	return FAST_OK;
}

static int fast_array(struct fast *f)
{
	int rc;
	if (++f->depth > f->max_depth)
		return FAST_SLOW;
	f->p++;
	f->out[f->len++] = '[';
	fast_ws(f);
	if (f->p < f->end && *f->p == ']') {
		f->p++;
		goto close;
	}
	for (;;) {
		if ((rc = fast_value(f)) != FAST_OK)
			return rc;
		fast_ws(f);
		if (f->p < f->end && *f->p == ',') {
			f->p++;
			f->out[f->len++] = ',';
			fast_ws(f);
			continue;
		}
		if (f->p < f->end && *f->p == ']') {
			f->p++;
			break;
		}
		return FAST_SLOW;
	}
close:
	f->out[f->len++] = ']';
	f->depth--;
	return FAST_OK;
}

static int fast_value(struct fast *f)
{
	if (f->p >= f->end)
		return FAST_SLOW;
	switch (*f->p) {
	case '{': return fast_object(f);
	case '[': return fast_array(f);
	case '"': return fast_string(f);
	case 't': return fast_literal(f, "true", 4);
	case 'f': return fast_literal(f, "false", 5);
	case 'n': return fast_literal(f, "null", 4);
	default: return fast_number(f);
	}
}

/* The first pass's text with each real printed as validate_json_text
 * prints it, into a malloc'd *text. Most reals read as written ("19.99"
 * stays), and then the text is copied as it is. */
static int fast_place_reals(struct fast *f, char **text)
{
	char txt[FAST_REALS_MAX][VALIDATE_REAL_OUT];
	size_t tn[FAST_REALS_MAX];
	size_t len = f->len;
	for (size_t i = 0; i < f->nreals; i++) {
		if (f->need == 15 && f->reals[i].plain) {
			tn[i] = f->reals[i].len;
			memcpy(txt[i], f->out + f->reals[i].off, tn[i]);
			continue;
		}
		tn[i] = validate_real_text(f->reals[i].v, f->need, txt[i]);
		if (tn[i] == 0)
			return FAST_SLOW;
		len = len - f->reals[i].len + tn[i];
	}
	char *o = malloc(len + 1);
	if (o == NULL)
		return FAST_OOM;
	size_t from = 0, at = 0;
	for (size_t i = 0; i < f->nreals; i++) {
		size_t seg = f->reals[i].off - from;
		memcpy(o + at, f->out + from, seg);
		at += seg;
		memcpy(o + at, txt[i], tn[i]);
		at += tn[i];
		from = f->reals[i].off + f->reals[i].len;
	}
	memcpy(o + at, f->out + from, f->len - from);
	at += f->len - from;
	o[at] = '\0';
	*text = o;
	return FAST_OK;
}

/* The `data` object at f->p, into a malloc'd *text. */
static int fast_data(struct fast *f, char **text)
{
	const char *start = f->p;
	int rc;
	if (f->p >= f->end || *f->p != '{')
		return FAST_SLOW;
	f->len = 0;
	if (fast_reserve(f, 0) != FAST_OK)
		return FAST_OOM;
	f->need = 0;
	f->prec = 0;
	f->nreals = 0;
	rc = fast_object(f);
	if (rc == FAST_OK && f->nreals > FAST_REALS_MAX) {
		f->p = start;
		f->len = 0;
		f->prec = f->need;
		rc = fast_object(f);
		f->prec = 0;
		f->nreals = 0;
	}
	if (rc != FAST_OK)
		return rc;
	return fast_place_reals(f, text);
}

/* A string of at most max plain characters (no escapes: the values taken
 * here, ids and types, cannot hold one) into out. */
static int fast_plain(struct fast *f, char *out, size_t max)
{
	const char *p = f->p + 1;
	size_t n = 0;
	if (f->p >= f->end || *f->p != '"')
		return FAST_SLOW;
	while (p < f->end && *p != '"') {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c >= 0x7f || c == '\\' || n == max)
			return FAST_SLOW;
		out[n++] = (char)c;
		p++;
	}
	if (p >= f->end)
		return FAST_SLOW;
	out[n] = '\0';
	f->p = p + 1;
	return FAST_OK;
}

/* Which of the known top-level keys the raw key at f->p is (index into
 * names), or -1. */
static int fast_key(struct fast *f, const char *const *names)
{
	char key[8];
	if (fast_plain(f, key, sizeof key - 1) != FAST_OK)
		return -1;
	for (int i = 0; names[i] != NULL; i++) {
		if (strcmp(key, names[i]) == 0)
			return i;
	}
	return -1;
}

/* One event object {id?, event, data} at f->p. */
static int fast_event(struct fast *f, struct validate_fast_event *ev)
{
	static const char *const names[] = {"id", "event", "data", NULL};
	struct validate_error err;
	bool seen[3] = {false, false, false};
	int rc;
	ev->id[0] = '\0';
	if (f->p >= f->end || *f->p != '{')
		return FAST_SLOW;
	f->p++;
	fast_ws(f);
	for (;;) {
		int k = fast_key(f, names);
		if (k < 0 || seen[k])
			return FAST_SLOW;
		seen[k] = true;
		fast_ws(f);
		if (f->p >= f->end || *f->p != ':')
			return FAST_SLOW;
		f->p++;
		fast_ws(f);
		if (k == 0) {
			if ((size_t)(f->end - f->p) >= 4 && memcmp(f->p, "null", 4) == 0) {
				f->p += 4;
			} else if (fast_plain(f, ev->id, VALIDATE_ID_MAX) != FAST_OK ||
				   validate_event_id(ev->id, "id", &err) != 0) {
				return FAST_SLOW;
			}
		} else if (k == 1) {
			if (fast_plain(f, ev->type, VALIDATE_TYPE_MAX) != FAST_OK ||
			    validate_event_type(ev->type, false, "event", &err) != 0)
				return FAST_SLOW;
		} else if ((rc = fast_data(f, &ev->data)) != FAST_OK) {
			return rc;
		}
		fast_ws(f);
		if (f->p < f->end && *f->p == ',') {
			f->p++;
			fast_ws(f);
			continue;
		}
		if (f->p < f->end && *f->p == '}') {
			f->p++;
			break;
		}
		return FAST_SLOW;
	}
	return seen[1] && seen[2] ? FAST_OK : FAST_SLOW;
}

/* The next event of the array: grows out->events as needed. */
static struct validate_fast_event *fast_next(struct validate_fast *out, size_t *cap)
{
	if (out->n == *cap) {
		size_t ncap = *cap ? *cap * 4 : 16;
		if (ncap > VALIDATE_BATCH_MAX)
			ncap = VALIDATE_BATCH_MAX;
		void *a = realloc(out->events, ncap * sizeof *out->events);
		if (a == NULL)
			return NULL;
		out->events = a;
		*cap = ncap;
	}
	struct validate_fast_event *ev = &out->events[out->n++];
	memset(ev, 0, sizeof *ev);
	return ev;
}

/* The nesting data may have, with `outer` levels around it (1: the body;
 * 3: the body, "events" and the event), within --max-json-depth. */
static void fast_depth_room(struct fast *f, int outer)
{
	int room = f->body_depth - outer;
	f->max_depth = room < FAST_DEPTH_MAX ? room : FAST_DEPTH_MAX;
}

static int fast_body(struct fast *f, struct validate_fast *out)
{
	static const char *const batch_key[] = {"events", NULL};
	size_t cap = 0;
	int rc;
	fast_ws(f);
	if (f->p >= f->end || *f->p != '{')
		return FAST_SLOW;
	/* {"events": [...]} if that is its first key; else one event. */
	const char *q = f->p + 1;
	while (q < f->end && (*q == ' ' || *q == '\n' || *q == '\r' || *q == '\t'))
		q++;
	if ((size_t)(f->end - q) < 8 || memcmp(q, "\"events\"", 8) != 0) {
		fast_depth_room(f, 1);
		struct validate_fast_event *ev = fast_next(out, &cap);
		if (ev == NULL)
			return FAST_OOM;
		if ((rc = fast_event(f, ev)) != FAST_OK)
			return rc;
		goto end;
	}
	out->batch = true;
	fast_depth_room(f, 3);
	f->p = q;
	if (fast_key(f, batch_key) != 0)
		return FAST_SLOW;
	fast_ws(f);
	if (f->p >= f->end || *f->p != ':')
		return FAST_SLOW;
	f->p++;
	fast_ws(f);
	if (f->p >= f->end || *f->p != '[')
		return FAST_SLOW;
	f->p++;
	fast_ws(f);
	for (;;) {
		if (out->n == VALIDATE_BATCH_MAX)
			return FAST_SLOW;
		struct validate_fast_event *ev = fast_next(out, &cap);
		if (ev == NULL)
			return FAST_OOM;
		if ((rc = fast_event(f, ev)) != FAST_OK)
			return rc;
		fast_ws(f);
		if (f->p < f->end && *f->p == ',') {
			f->p++;
			fast_ws(f);
			continue;
		}
		if (f->p < f->end && *f->p == ']') {
			f->p++;
			break;
		}
		return FAST_SLOW;
	}
	fast_ws(f);
	if (f->p >= f->end || *f->p != '}')
		return FAST_SLOW; /* another key beside "events" */
	f->p++;
end:
	fast_ws(f);
	return f->p == f->end ? FAST_OK : FAST_SLOW;
}

int validate_ingest_fast(const char *body, size_t len, int max_depth, struct validate_fast *out)
{
	/* On the stack, and only the scalars set: the key tables are written
	 * before they are read. */
	struct fast f;
	int rc = FAST_SLOW;
	memset(out, 0, sizeof *out);
	f.p = body;
	f.end = body + len;
	f.out = NULL;
	f.len = f.cap = f.nkeys = 0;
	f.depth = f.prec = f.need = 0;
	f.max_depth = 0;
	f.body_depth = max_depth;
	f.nreals = 0;
	if (body != NULL)
		rc = fast_body(&f, out);
	free(f.out);
	if (rc != FAST_OK)
		validate_fast_free(out);
	return rc;
}

void validate_fast_free(struct validate_fast *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->events[i].data);
	free(v->events);
	memset(v, 0, sizeof *v);
}

int validate_json_depth(const char *text, size_t len, int max)
{
	int depth = 0;
	bool in_string = false;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (in_string) {
			if (c == '\\')
				i++; /* the escaped character, '"' included */
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '{' || c == '[') {
			if (++depth > max)
				return -1;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return 0;
}
