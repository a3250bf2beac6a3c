/* custom_headers: see custom_headers.h. */
#include "custom_headers.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool is_tchar(unsigned char c)
{
	/* RFC 7230 §3.2.6 token characters. */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool custom_header_reserved(const char *name)
{
	static const char *const exact[] = {
		"x-webhook-signature", "content-type", "content-length", "host", "user-agent",
		"connection", "transfer-encoding", "te", "trailer", "upgrade", "keep-alive", "expect",
	};
	static const char *const prefixes[] = {"webhook-", "x-pixelpatrol-"};
	for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
		if (strcasecmp(name, exact[i]) == 0)
			return true;
	}
	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
		if (strncasecmp(name, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	}
	return false;
}

int custom_headers_check_count(json_t *headers, int max, char *msg, size_t msglen)
{
	if (max > CUSTOM_HEADERS_MAX)
		max = CUSTOM_HEADERS_MAX;
	if (json_object_size(headers) <= (size_t)max)
		return 0;
	snprintf(msg, msglen, "at most %d custom headers (--max-custom-headers)", max);
	return -1;
}

int custom_headers_validate(json_t *headers, char *field, size_t fieldlen, char *msg,
			    size_t msglen)
{
	snprintf(field, fieldlen, "headers");
	if (!json_is_object(headers)) {
		snprintf(msg, msglen, "headers must be an object of header names to string values");
		return -1;
	}
	if (custom_headers_check_count(headers, CUSTOM_HEADERS_MAX, msg, msglen) != 0)
		return -1;
	size_t total = 0;
	const char *name;
	json_t *value;
	json_object_foreach(headers, name, value) {
		snprintf(field, fieldlen, "headers.%.100s", name);
		size_t nlen = strlen(name);
		if (nlen == 0 || nlen > CUSTOM_HEADER_NAME_MAX) {
			snprintf(msg, msglen, "a header name is 1..%d characters",
				 CUSTOM_HEADER_NAME_MAX);
			return -1;
		}
		for (size_t i = 0; i < nlen; i++) {
			if (!is_tchar((unsigned char)name[i])) {
				snprintf(msg, msglen, "a header name is an RFC 7230 token "
						      "(letters, digits and !#$%%&'*+-.^_`|~)");
				return -1;
			}
		}
		if (custom_header_reserved(name)) {
			snprintf(msg, msglen, "%.64s is set by hookd and cannot be overridden", name);
			return -1;
		}
		const char *other;
		json_t *unused;
		json_object_foreach(headers, other, unused) {
			if (other != name && strcasecmp(other, name) == 0) {
				snprintf(msg, msglen, "the header is given twice (names are "
						      "case-insensitive)");
				return -1;
			}
		}
		if (!json_is_string(value)) {
			snprintf(msg, msglen, "a header value must be a string");
			return -1;
		}
		size_t vlen = json_string_length(value);
		const unsigned char *v = (const unsigned char *)json_string_value(value);
		if (vlen > CUSTOM_HEADER_VALUE_MAX) {
			snprintf(msg, msglen, "a header value is at most %d bytes",
				 CUSTOM_HEADER_VALUE_MAX);
			return -1;
		}
		for (size_t i = 0; i < vlen; i++) {
			if ((v[i] < 0x20 && v[i] != '\t') || v[i] >= 0x7f) {
				snprintf(msg, msglen, "a header value may hold visible ASCII, spaces "
						      "and tabs only (no CR, LF or control bytes)");
				return -1;
			}
		}
		total += nlen + vlen;
		if (total > CUSTOM_HEADERS_TOTAL_MAX) {
			snprintf(field, fieldlen, "headers");
			snprintf(msg, msglen, "custom headers total at most %d bytes",
				 CUSTOM_HEADERS_TOTAL_MAX);
			return -1;
		}
	}
	snprintf(field, fieldlen, "headers");
	return 0;
}
