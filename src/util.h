/* util: small helpers shared by every module: ids, clocks, durations,
 * base64/hex, random bytes, constant-time compare and a bounded buffer. */
#ifndef HOOKD_UTIL_H
#define HOOKD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest id hookd stores: a client-given event id is 1..64 chars. */
#define ID_MAX 65
/* Generated ids: prefix ("evt", "ep", "dlv", "bat") + '_' + 26 chars of
 * Crockford base32 (48-bit ms time + 80 random bits), so they sort by time. */

/* Writes a new id "<prefix>_<26 chars>" into out (ID_MAX bytes).
 * Returns 0, or -1 if the random source failed. */
int id_new(const char *prefix, char out[ID_MAX]);

/* True if s is 1..64 chars of [A-Za-z0-9_-] (a client-given event id). */
bool id_is_valid_client(const char *s);

/* Wall clock, milliseconds since the Unix epoch. */
int64_t now_ms(void);
/* Monotonic clock in milliseconds (for timeouts and durations). */
int64_t mono_ms(void);
/* Monotonic clock in microseconds (for durations measured in µs). */
int64_t mono_us(void);

/* Formats ms-since-epoch as RFC 3339 UTC with milliseconds,
 * "2026-11-27T13:02:31.123Z". out must hold 32 bytes. */
void rfc3339_format(int64_t ms, char out[32]);
/* Parses RFC 3339 ("2026-11-27T13:02:31Z", optional fraction, 'Z' or +hh:mm).
 * Returns 0 and sets *ms, or -1. */
int rfc3339_parse(const char *s, int64_t *ms);

/* Parses a duration "250ms", "30s", "5m", "2h", "30d", several of them
 * largest unit first ("2h30m", "1m30s500ms"), or a bare number of seconds
 * ("30"). Returns 0 and sets *ms, or -1 (empty, junk, negative, overflow,
 * units out of order or repeated). */
int duration_parse_ms(const char *s, int64_t *ms);
/* Writes ms as duration_parse_ms reads it, largest unit first ("2h30m",
 * "30s", "1m500ms"; 0 is "0") into buf (at most len bytes); returns buf. */
#define DURATION_FORMAT_MAX 64
char *duration_format(int64_t ms, char *buf, size_t len);

/* Standard padded base64 (RFC 4648 §4). encode: returns a malloc'd string or NULL.
 * decode: returns 0 and a malloc'd buffer in out and out_len, or -1 if s is not
 * valid padded base64. */
char *b64_encode(const unsigned char *in, size_t len);
int b64_decode(const char *s, unsigned char **out, size_t *out_len);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void hex_encode(const unsigned char *in, size_t len, char *out);

/* Cryptographically secure random bytes (OpenSSL RAND_bytes). Returns 0 or -1. */
int random_bytes(unsigned char *out, size_t len);
/* Random double in [0,1) from a fast non-crypto source (jitter, fail-rate). */
double random_unit(void);

/* Compares two strings in time that depends only on their lengths. */
bool ct_streq(const char *a, const char *b);

/* FNV-1a of a NUL-terminated string: for hash tables keyed by ids, which
 * are short and random in their tail. */
uint32_t str_hash(const char *s);

/* Room for at least `need` elements of `size` bytes in arr, an array of
 * capacity *cap elements (NULL when 0), doubling from `first`: returns the
 * array to use from now on (arr itself when it had room), or NULL if memory
 * ran out or the size would overflow (arr and *cap are unchanged then). */
void *array_grow(void *arr, size_t *cap, size_t need, size_t size, size_t first);

/* A growable byte buffer with a hard maximum: appends past max fail. */
struct dynbuf {
	char *data;   /* NUL-terminated when len > 0 */
	size_t len;
	size_t cap;
	size_t max;
};
void dynbuf_init(struct dynbuf *b, size_t max);
/* Returns 0, or -1 if the result would exceed max or memory ran out
 * (b is unchanged then). */
int dynbuf_append(struct dynbuf *b, const void *data, size_t len);
void dynbuf_free(struct dynbuf *b);

/* Length of the valid UTF-8 sequence starting at p (RFC 3629, as jansson
 * checks it: no overlongs, no surrogates, at most U+10FFFF; 1 for ASCII), or
 * 0 if the bytes there are not one. avail is how many bytes p holds (>= 1). */
size_t utf8_seq_len(const unsigned char *p, size_t avail);

/* Makes s[0..len) valid UTF-8 without NUL bytes, in place and never longer:
 * invalid bytes (and, with strict, control characters other than tab)
 * become '?'; if the text was cut at a cap (cut), a sequence split by the
 * cut is dropped. Returns the new length. (Response bodies and header
 * values a receiver sent, before they are stored and shown as JSON.) */
size_t utf8_clean(char *s, size_t len, bool strict, bool cut);

/* Writes v in decimal at p (at most UTIL_I64_DIGITS_MAX bytes, no NUL) and
 * returns the end: what snprintf("%lld") writes, for hot paths. */
#define UTIL_I64_DIGITS_MAX 20
char *put_i64(char *p, int64_t v);

/* strdup that returns NULL for NULL. */
char *xstrdup(const char *s);
/* Writes s[0..n) at o as a JSON string literal, quotes included, escaped as
 * jansson escapes; o needs room for 6 * n + 2 bytes. Returns the end. */
char *json_put_str(char *o, const char *s, size_t n);
/* Appends s[0..n) to b as json_put_str writes it. Returns 0, or -1 if the
 * result would exceed b's max or memory ran out (b is unchanged then). */
int dynbuf_append_json_str(struct dynbuf *b, const char *s, size_t n);

#endif
