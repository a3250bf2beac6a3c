#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util.h"

static enum log_level min_level = LOG_LEVEL_INFO;
static enum log_format out_format = LOG_FORMAT_TEXT;

void log_set_level(enum log_level level) { min_level = level; }
void log_set_format(enum log_format format) { out_format = format; }

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

const char *log_level_name(enum log_level level)
{
	return level <= LOG_LEVEL_OFF ? level_names[level] : "?";
}

int log_parse_level(const char *s, enum log_level *out)
{
	const char *const *names = level_names;
	for (int i = 0; i <= LOG_LEVEL_OFF; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

int log_parse_format(const char *s, enum log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = LOG_FORMAT_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else
		return -1;
	return 0;
}

/* ---- the JSON form (log_json_line) ---- */

#define JSON_TAIL ",\"truncated\":\"true\"}"
#define KEY_MAX 64
#define FIELDS_MAX 64
#define NAME_BUF (KEY_MAX + 8) /* a key, "_" and a number */

/* A JSON text being written into a fixed buffer. cap leaves room for
 * JSON_TAIL and the NUL, so the object can always be closed. */
struct jw {
	char *out;
	size_t cap;
	size_t len;
};

/* Appends n bytes if they fit, else -1 (nothing written). */
static int jw_raw(struct jw *w, const char *s, size_t n)
{
	if (n > w->cap - w->len)
		return -1;
	memcpy(w->out + w->len, s, n);
	w->len += n;
	return 0;
}

/* Appends the character at s (avail bytes) escaped for a JSON string:
 * returns the bytes of s it took, or -1 if there is no room. */
static int jw_char(struct jw *w, const unsigned char *s, size_t avail)
{
	static const char hex[] = "0123456789abcdef";
	char esc[8] = {'\\', 0, 0, 0, 0, 0, 0, 0};
	const char *src = esc;
	size_t in = 1, n = 2;
	unsigned char c = s[0];
	if (c == '"' || c == '\\') {
		esc[1] = (char)c;
	} else if (c == '\n' || c == '\r' || c == '\t') {
		esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
	} else if (c < 0x20) {
		memcpy(esc + 1, "u00", 3);
		esc[4] = hex[c >> 4];
		esc[5] = hex[c & 15];
		n = 6;
	} else if ((in = utf8_seq_len(s, avail)) == 0) {
		src = "\\ufffd"; /* not UTF-8: one byte becomes U+FFFD */
		in = 1;
		n = 6;
	} else {
		src = (const char *)s;
		n = in;
	}
	return jw_raw(w, src, n) == 0 ? (int)in : -1;
}

/* Appends s[0..n) as escaped text (no quotes); -1 when out of room. */
static int jw_text(struct jw *w, const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		int k = jw_char(w, (const unsigned char *)s + i, n - i);
		if (k < 0)
			return -1;
		i += (size_t)k;
	}
	return 0;
}

static int jw_str(struct jw *w, const char *s, size_t n)
{
	if (jw_raw(w, "\"", 1) || jw_text(w, s, n))
		return -1;
	return jw_raw(w, "\"", 1);
}

/* One token of a message: a field (key set) or a word (key NULL). */
struct tok {
	const char *key;
	size_t klen;
	const char *val;
	size_t vlen;
};

static bool key_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool key_char(char c)
{
	return key_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

/* Reads the token at *p (spaces before it skipped) and moves *p past it;
 * false at the end of the message. */
static bool next_tok(const char **p, struct tok *t)
{
	const char *s = *p, *k;
	while (*s == ' ')
		s++;
	if (*s == '\0') {
		*p = s;
		return false;
	}
	t->key = NULL;
	for (k = s; key_start(*s) && key_char(*k); k++)
		;
	if (k > s && *k == '=' && (size_t)(k - s) <= KEY_MAX) {
		t->key = s;
		t->klen = (size_t)(k - s);
		s = k + 1;
		if (*s == '"') {
			const char *e = ++s;
			while (*e != '\0' && !(*e == '"' && (e[1] == ' ' || e[1] == '\0')))
				e++;
			t->val = s;
			t->vlen = (size_t)(e - s);
			*p = *e != '\0' ? e + 1 : e;
			return true;
		}
	}
	t->val = s;
	t->vlen = strcspn(s, " ");
	*p = s + t->vlen;
	return true;
}

/* The names a line's object has so far: ts, level, msg and its fields. */
struct names {
	char v[FIELDS_MAX + 3][NAME_BUF];
	size_t n;
};

static bool names_has(const struct names *ns, const char *name)
{
	for (size_t i = 0; i < ns->n; i++) {
		if (strcmp(ns->v[i], name) == 0)
			return true;
	}
	return false;
}

/* Adds key's name to ns, made unique with "_2", "_3"…; returns it. */
static const char *names_add(struct names *ns, const char *key, size_t klen)
{
	char *out = ns->v[ns->n];
	snprintf(out, NAME_BUF, "%.*s", (int)klen, key);
	for (int i = 2; names_has(ns, out); i++)
		snprintf(out, NAME_BUF, "%.*s_%d", (int)klen, key, i);
	ns->n++;
	return out;
}

/* "msg": the words of msg joined by one space, as much as fits. */
static int write_msg(struct jw *w, const char *msg)
{
	struct tok t;
	bool first = true;
	int rc = jw_raw(w, ",\"msg\":\"", 8);
	w->cap--; /* room for the closing quote */
	while (rc == 0 && next_tok(&msg, &t)) {
		if (t.key != NULL)
			continue;
		if (!first)
			rc = jw_raw(w, " ", 1);
		first = false;
		if (rc == 0)
			rc = jw_text(w, t.val, t.vlen);
	}
	w->cap++;
	jw_raw(w, "\"", 1);
	return rc;
}

/* The fields of msg, in order; a field that does not fit is left out
 * whole, with every one after it (-1). */
static int write_fields(struct jw *w, const char *msg, struct names *ns)
{
	struct tok t;
	while (next_tok(&msg, &t)) {
		if (t.key == NULL)
			continue;
		if (ns->n == sizeof ns->v / sizeof ns->v[0])
			return -1;
		size_t mark = w->len;
		const char *name = names_add(ns, t.key, t.klen);
		if (jw_raw(w, ",", 1) || jw_str(w, name, strlen(name)) || jw_raw(w, ":", 1) ||
		    jw_str(w, t.val, t.vlen)) {
			w->len = mark;
			return -1;
		}
	}
	return 0;
}

size_t log_json_line(const char *ts, const char *level, const char *msg, char *out, size_t cap)
{
	struct names ns = {.v = {"ts", "level", "msg"}, .n = 3};
	if (cap < 128)
		return 0;
	struct jw w = {.out = out, .cap = cap - sizeof JSON_TAIL, .len = 0};
	if (jw_raw(&w, "{\"ts\":", 6) || jw_str(&w, ts, strlen(ts)) ||
	    jw_raw(&w, ",\"level\":", 9) || jw_str(&w, level, strlen(level))) {
		out[0] = '\0';
		return 0;
	}
	bool cut = write_msg(&w, msg) != 0;
	if (!cut)
		cut = write_fields(&w, msg, &ns) != 0;
	w.cap += sizeof JSON_TAIL - 1;
	if (cut)
		jw_raw(&w, JSON_TAIL, sizeof JSON_TAIL - 1);
	else
		jw_raw(&w, "}", 1);
	out[w.len] = '\0';
	return w.len;
}

/* ---- writing ---- */

static const char *const tags[] = {"debug", "info", "warn", "error"};

/* One line in the JSON form (--log-format json). */
static void write_json(enum log_level level, const char *ts, const char *fmt, va_list ap)
{
	char msg[LOG_MSG_MAX];
	char out[LOG_JSON_MAX + 1];
	if (vsnprintf(msg, sizeof msg, fmt, ap) < 0)
		return;
	size_t n = log_json_line(ts, tags[level], msg, out, sizeof out - 1);
	if (n == 0)
		return;
	out[n++] = '\n';
	fwrite(out, 1, n, stderr);
}

static void log_write(enum log_level level, const char *fmt, va_list ap)
{
	if (level < min_level)
		return;
	char ts[128]; /* room for any int the compiler imagines */
	char line[LOG_MSG_MAX];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 now.tv_nsec / 1000000);
	if (out_format == LOG_FORMAT_JSON) {
		write_json(level, ts, fmt, ap);
		return;
	}
	int n = snprintf(line, sizeof line, "%s level=%s ", ts, tags[level]);
	if (n < 0 || (size_t)n >= sizeof line)
		return;
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	if (m < 0)
		return;
	size_t len = strlen(line);
	line[len++] = '\n';
	/* One fwrite per line so lines from different threads do not interleave. */
	fwrite(line, 1, len, stderr);
}

#define LOG_FN(name, level)                                                                        \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		log_write(level, fmt, ap);                                                         \
		va_end(ap);                                                                        \
	}

LOG_FN(log_debug, LOG_LEVEL_DEBUG)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_warn, LOG_LEVEL_WARN)
LOG_FN(log_error, LOG_LEVEL_ERROR)

bool log_limit_allow(struct log_limit *l, int64_t every_ms, uint64_t *dropped)
{
	int64_t now = mono_ms();
	int64_t next = atomic_load(&l->next_ms);
	/* One thread wins the slot; the others count as refused. */
	if (now < next || !atomic_compare_exchange_strong(&l->next_ms, &next, now + every_ms)) {
		atomic_fetch_add(&l->dropped, 1);
		return false;
	}
	*dropped = atomic_exchange(&l->dropped, 0);
	return true;
}
