/* log: one line per event, key=value fields, to stderr. Never log a secret,
 * an API key or a whole payload. */
#ifndef HOOKD_LOG_H
#define HOOKD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR, LOG_LEVEL_OFF };

/* Sets the lowest level printed (default INFO). Call before starting threads. */
void log_set_level(enum log_level level);
/* Parses "debug|info|warn|error|off". Returns 0 and sets *out, or -1. */
int log_parse_level(const char *s, enum log_level *out);
/* The name log_parse_level accepts for level. */
const char *log_level_name(enum log_level level);

/* text: "TS level=L words key=value …"; json: one JSON object a line
 * (log_json_line). Default text. Call before starting threads. */
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };
void log_set_format(enum log_format format);
/* Parses "text|json". Returns 0 and sets *out, or -1. */
int log_parse_format(const char *s, enum log_format *out);

/* Room log_json_line needs for any message of up to LOG_MSG_MAX bytes (each
 * byte may become a 6-byte escape), so the log itself never truncates. */
#define LOG_MSG_MAX 2048
#define LOG_JSON_MAX (6 * LOG_MSG_MAX + 512)

/* Writes the JSON object for one log line into out (cap bytes, NUL
 * included) and returns its length (0 if cap is under 64): {"ts":ts,
 * "level":level,"msg":…, then one string field per key=value of msg}.
 * msg is split at spaces; a token key=value (key: a letter or _, then
 * letters, digits, _ . -) is a field, any other token a word of "msg"
 * (words are joined by one space, wherever they stood). A value starting
 * with " runs to the next " that ends the line or is followed by a space
 * (the quotes dropped, the text between kept verbatim), or to the end of
 * the line if there is none. Values stay strings. A key met again, or
 * named ts, level or msg, gets "_2", "_3"… Bytes that are not UTF-8 become
 * U+FFFD. If out is too small the fields that fit are kept and
 * "truncated":"true" is added; the object is valid JSON either way. */
size_t log_json_line(const char *ts, const char *level, const char *msg, char *out, size_t cap);

/* A limit on how often one kind of line is written, for faults that repeat
 * on every request (the database unreachable): at most one line per
 * every_ms. Zero-initialise it (static storage); any thread. */
struct log_limit {
	_Atomic int64_t next_ms;   /* monotonic ms the next line may be written */
	_Atomic uint64_t dropped;  /* lines refused since the last one written */
};
/* True if a line may be written now (the limit then runs again for
 * every_ms), with *dropped set to how many were refused since the last
 * written one (the caller says so in its line); false otherwise (counted). */
bool log_limit_allow(struct log_limit *l, int64_t every_ms, uint64_t *dropped);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
