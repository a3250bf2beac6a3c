/* custom_headers: the `headers` an endpoint adds to every delivery request.
 * Pure validation, shared by the API (refuse bad input with 400) and the
 * dispatcher (which sends what was validated). */
#ifndef HOOKD_CUSTOM_HEADERS_H
#define HOOKD_CUSTOM_HEADERS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CUSTOM_HEADERS_MAX 32          /* headers per endpoint */
#define CUSTOM_HEADER_NAME_MAX 64      /* bytes */
#define CUSTOM_HEADER_VALUE_MAX 1024   /* bytes */
#define CUSTOM_HEADERS_TOTAL_MAX 8192  /* names + values, bytes */

/* True for a name hookd sets itself or that would break the request:
 * webhook-*, x-pixelpatrol-*, x-webhook-signature, content-type,
 * content-length, host, user-agent and the hop-by-hop headers
 * (connection, transfer-encoding, te, trailer, upgrade, keep-alive,
 * expect). Case-insensitive. */
bool custom_header_reserved(const char *name);

/* Checks a headers object {name: value, …}: names are RFC 7230 tokens, not
 * reserved and not repeated in another case; values are strings of visible
 * ASCII, spaces and tabs (no CR, LF or other control bytes), within the caps
 * above. Returns 0, or -1 with the field ("headers.X-Foo" or "headers") and
 * a reason. */
int custom_headers_validate(json_t *headers, char *field, size_t fieldlen, char *msg,
			    size_t msglen);

/* --max-custom-headers: 0 if the headers object holds at most max headers
 * (max itself at most CUSTOM_HEADERS_MAX, which custom_headers_validate
 * applies), else -1 with a reason naming the limit and its flag. */
int custom_headers_check_count(json_t *headers, int max, char *msg, size_t msglen);

#endif
