/* verify: the parts of `hookd verify` (verify.c) that read untrusted input,
 * exposed so a fuzz target (fuzz/fuzz_verify.c) and tests can call them.
 * verify_main itself is declared in cli.h. */
#ifndef HOOKD_VERIFY_H
#define HOOKD_VERIFY_H

#include <stddef.h>

#include <jansson.h>

/* The longest header name kept; longer names (and names holding a space)
 * are skipped, as are lines without a ':'. */
#define VERIFY_HEADER_NAME_MAX 255

/* Parses "Name: value" lines (LF or CRLF; curl -D output works) into a new
 * JSON object of lowercase name -> value, values trimmed of spaces and tabs.
 * A status line ("HTTP/...") starts a new header block, so for several
 * responses the last block wins; a repeated header is joined with ", " as
 * HTTP does. text need not be NUL-terminated. Returns the object (the caller
 * owns it) or NULL if out of memory. */
json_t *verify_parse_header_lines(const char *text, size_t len);

/* Case-insensitive lookup of name in ctx, a JSON object of name -> string
 * (the "headers" of a --request file, or verify_parse_header_lines' result):
 * the sign_headers_collect getter. Returns the value (borrowed from ctx) or
 * NULL when absent or not a string. */
const char *verify_header_lookup(void *ctx, const char *name);

/* A captured request in the --request form: a JSON object with "headers"
 * (object of name -> string) and "body" (string) or, for a body that is not
 * UTF-8, "body_base64" (one line of `hookd mock --record`). */
struct verify_request {
	json_t *root;          /* the whole object (owned) */
	json_t *headers;       /* borrowed from root */
	const char *body;      /* borrowed from root, or decoded */
	size_t body_len;
	unsigned char *decoded; /* malloc'd body_base64 bytes, or NULL */
};

/* Parses text (len bytes, need not be NUL-terminated; NUL allowed inside
 * strings) into *out. Returns 0, or -1 with why ("is not a JSON object (…)",
 * "\"headers\" must be an object", …; out->root is NULL only for the
 * first). Free *out with verify_request_free either way. */
int verify_request_parse(const char *text, size_t len, struct verify_request *out, char *why,
			 size_t whylen);
void verify_request_free(struct verify_request *r);

#endif
