/* failure: classifies one attempt's outcome
 * (docs/receiving.md#replies-success-and-failure). Pure. */
#ifndef HOOKD_FAILURE_H
#define HOOKD_FAILURE_H

#include <stdbool.h>

enum failure_kind {
	FAILURE_NONE = 0,          /* 2xx: success */
	FAILURE_HTTP_STATUS,       /* any other status, 3xx included (never followed) */
	FAILURE_TIMEOUT,           /* connect or total timeout */
	FAILURE_CONNECTION_REFUSED,
	FAILURE_DNS,               /* name did not resolve */
	FAILURE_TLS,               /* handshake, certificate or host name */
	FAILURE_RESPONSE_TOO_LARGE,
	FAILURE_CONNECTION,        /* reset, closed, other network error */
	FAILURE_BLOCKED,           /* refused by policy before connecting: the
				    * address guard or a scheme (http://) */
	FAILURE_INTERNAL,          /* hookd could not build or send the request */
	FAILURE_INVALID_RESPONSE,  /* a status line, but the header section never
				    * ended (cut off): nothing was acknowledged */
};

/* Stable lowercase code used in the API and logs: "http_status", "timeout",
 * "connection_refused", "dns", "tls_error", "response_too_large",
 * "connection", "blocked_destination", "internal", "invalid_response"; NULL
 * for FAILURE_NONE. */
const char *failure_code(enum failure_kind k);

/* Classifies a finished transfer: curl_code is the CURLcode (as int) and
 * http_status the response status (0 if none). `too_large` is set when
 * hookd itself stopped reading because the response headers exceeded their
 * cap (a body past --max-response-bytes is cut without failing: the caller
 * passes CURLE_OK and the status then). `headers_cut` is set when a status
 * line came but the header section did not end with its empty line (curl
 * reports such a response as a complete one): with CURLE_OK it is
 * FAILURE_INVALID_RESPONSE, whatever the status. */
enum failure_kind failure_classify(int curl_code, long http_status, bool too_large,
				   bool headers_cut);

#endif
