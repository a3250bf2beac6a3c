/* failure: classifies one attempt's outcome
 * (docs/receiving.md#replies-success-and-failure). Pure. */
#include "failure.h"

#include <curl/curl.h>
#include <stddef.h>

const char *failure_code(enum failure_kind k)
{
	switch (k) {
	case FAILURE_NONE:
		return NULL;
	case FAILURE_HTTP_STATUS:
		return "http_status";
	case FAILURE_TIMEOUT:
		return "timeout";
	case FAILURE_CONNECTION_REFUSED:
		return "connection_refused";
	case FAILURE_DNS:
		return "dns";
	case FAILURE_TLS:
		return "tls_error";
	case FAILURE_RESPONSE_TOO_LARGE:
		return "response_too_large";
	case FAILURE_CONNECTION:
		return "connection";
	case FAILURE_BLOCKED:
		return "blocked_destination";
	case FAILURE_INTERNAL:
		return "internal";
	case FAILURE_INVALID_RESPONSE:
		return "invalid_response";
	}
	/* An out-of-range value is a bug in the caller; never hand back NULL,
	 * which would read as success. */
	return "internal";
}

/* Curl codes that mean the transfer died somewhere in TLS: handshake,
 * certificate chain, host name, pinning, or our own TLS configuration. */
static bool is_tls_error(int code)
{
	switch (code) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_PEER_FAILED_VERIFICATION: /* also CURLE_SSL_CACERT */
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
		return true;
	default:
		return false;
	}
}

enum failure_kind failure_classify(int curl_code, long http_status, bool too_large,
				   bool headers_cut)
{
	/* hookd aborted the read itself: whatever curl reports (usually a
	 * write error) is a consequence of that. */
	if (too_large)
		return FAILURE_RESPONSE_TOO_LARGE;
	if (is_tls_error(curl_code))
		return FAILURE_TLS;
	switch (curl_code) {
	case CURLE_OK:
		/* A receiver that closed inside its headers acknowledged nothing,
		 * even if its status line said 200. */
		if (http_status > 0 && headers_cut)
			return FAILURE_INVALID_RESPONSE;
		if (http_status >= 200 && http_status <= 299)
			return FAILURE_NONE;
		/* A finished transfer without a status line cannot be HTTP. */
		if (http_status <= 0)
			return FAILURE_CONNECTION;
		return FAILURE_HTTP_STATUS;
	case CURLE_HTTP_RETURNED_ERROR:
		return http_status > 0 ? FAILURE_HTTP_STATUS : FAILURE_CONNECTION;
	case CURLE_OPERATION_TIMEDOUT:
		return FAILURE_TIMEOUT;
	case CURLE_COULDNT_CONNECT:
		return FAILURE_CONNECTION_REFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return FAILURE_DNS;
	case CURLE_FILESIZE_EXCEEDED:
		return FAILURE_RESPONSE_TOO_LARGE;
	case CURLE_UNSUPPORTED_PROTOCOL:
		/* Only http(s) is enabled per request: anything else (or
		 * http:// without --allow-http) is refused by policy. */
		return FAILURE_BLOCKED;
	case CURLE_URL_MALFORMAT:
	case CURLE_FAILED_INIT:
	case CURLE_NOT_BUILT_IN:
	case CURLE_OUT_OF_MEMORY:
	case CURLE_BAD_FUNCTION_ARGUMENT:
	case CURLE_UNKNOWN_OPTION:
	case CURLE_SETOPT_OPTION_SYNTAX:
	case CURLE_READ_ERROR:
	case CURLE_WRITE_ERROR:
	case CURLE_ABORTED_BY_CALLBACK:
	case CURLE_RECURSIVE_API_CALL:
	case CURLE_INTERFACE_FAILED:
		/* hookd could not build or send the request; a write error
		 * without too_large means our own callback refused the data. */
		return FAILURE_INTERNAL;
	default:
		return FAILURE_CONNECTION;
	}
}
