/* failure_classify / failure_code: table of curl outcomes. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <string.h>

#include "failure.h"

struct classify_case {
	int curl;
	long status;
	bool too_large;
	enum failure_kind want;
	bool headers_cut; /* a status came, the header section did not end */
};

static const struct classify_case classify_cases[] = {
	/* Finished transfers: only 2xx succeeds. */
	{CURLE_OK, 200, false, FAILURE_NONE, false},
	{CURLE_OK, 201, false, FAILURE_NONE, false},
	{CURLE_OK, 204, false, FAILURE_NONE, false},
	{CURLE_OK, 299, false, FAILURE_NONE, false},
	{CURLE_OK, 100, false, FAILURE_HTTP_STATUS, false},
	{CURLE_OK, 199, false, FAILURE_HTTP_STATUS, false},
	{CURLE_OK, 300, false, FAILURE_HTTP_STATUS, false},
	{CURLE_OK, 301, false, FAILURE_HTTP_STATUS, false},
	{CURLE_OK, 302, false, FAILURE_HTTP_STATUS, false},
	{CURLE_OK, 307, false, FAILURE_HTTP_STATUS, false},
	{CURLE_OK, 400, false, FAILURE_HTTP_STATUS, false},
	{CURLE_OK, 404, false, FAILURE_HTTP_STATUS, false},
	{CURLE_OK, 410, false, FAILURE_HTTP_STATUS, false},
	{CURLE_OK, 429, false, FAILURE_HTTP_STATUS, false},
	{CURLE_OK, 500, false, FAILURE_HTTP_STATUS, false},
	{CURLE_OK, 503, false, FAILURE_HTTP_STATUS, false},
	{CURLE_OK, 599, false, FAILURE_HTTP_STATUS, false},
	{CURLE_OK, 0, false, FAILURE_CONNECTION, false},
	{CURLE_HTTP_RETURNED_ERROR, 500, false, FAILURE_HTTP_STATUS, false},
	/* Network outcomes. */
	{CURLE_OPERATION_TIMEDOUT, 0, false, FAILURE_TIMEOUT, false},
	{CURLE_OPERATION_TIMEDOUT, 200, false, FAILURE_TIMEOUT, false},
	{CURLE_COULDNT_CONNECT, 0, false, FAILURE_CONNECTION_REFUSED, false},
	{CURLE_COULDNT_RESOLVE_HOST, 0, false, FAILURE_DNS, false},
	{CURLE_COULDNT_RESOLVE_PROXY, 0, false, FAILURE_DNS, false},
	{CURLE_SSL_CONNECT_ERROR, 0, false, FAILURE_TLS, false},
	{CURLE_PEER_FAILED_VERIFICATION, 0, false, FAILURE_TLS, false},
	{CURLE_SSL_CACERT, 0, false, FAILURE_TLS, false},
	{CURLE_SSL_CACERT_BADFILE, 0, false, FAILURE_TLS, false},
	{CURLE_SSL_CERTPROBLEM, 0, false, FAILURE_TLS, false},
	{CURLE_SSL_CIPHER, 0, false, FAILURE_TLS, false},
	{CURLE_SSL_ISSUER_ERROR, 0, false, FAILURE_TLS, false},
	{CURLE_SSL_PINNEDPUBKEYNOTMATCH, 0, false, FAILURE_TLS, false},
	{CURLE_SSL_INVALIDCERTSTATUS, 0, false, FAILURE_TLS, false},
	{CURLE_SSL_SHUTDOWN_FAILED, 0, false, FAILURE_TLS, false},
	{CURLE_SSL_CRL_BADFILE, 0, false, FAILURE_TLS, false},
	{CURLE_SSL_CLIENTCERT, 0, false, FAILURE_TLS, false},
	{CURLE_RECV_ERROR, 0, false, FAILURE_CONNECTION, false},
	{CURLE_SEND_ERROR, 0, false, FAILURE_CONNECTION, false},
	{CURLE_GOT_NOTHING, 0, false, FAILURE_CONNECTION, false},
	{CURLE_WEIRD_SERVER_REPLY, 0, false, FAILURE_CONNECTION, false},
	{CURLE_PARTIAL_FILE, 200, false, FAILURE_CONNECTION, false},
	{CURLE_HTTP2, 0, false, FAILURE_CONNECTION, false},
	{CURLE_HTTP2_STREAM, 0, false, FAILURE_CONNECTION, false},
	{CURLE_BAD_CONTENT_ENCODING, 200, false, FAILURE_CONNECTION, false},
	/* Response too large: our own cap, or curl's max file size. */
	{CURLE_WRITE_ERROR, 200, true, FAILURE_RESPONSE_TOO_LARGE, false},
	{CURLE_WRITE_ERROR, 0, true, FAILURE_RESPONSE_TOO_LARGE, false},
	{CURLE_OK, 200, true, FAILURE_RESPONSE_TOO_LARGE, false},
	{CURLE_OPERATION_TIMEDOUT, 200, true, FAILURE_RESPONSE_TOO_LARGE, false},
	{CURLE_FILESIZE_EXCEEDED, 200, false, FAILURE_RESPONSE_TOO_LARGE, false},
	{CURLE_FILESIZE_EXCEEDED, 0, false, FAILURE_RESPONSE_TOO_LARGE, false},
	/* Policy and hookd's own faults. */
	{CURLE_UNSUPPORTED_PROTOCOL, 0, false, FAILURE_BLOCKED, false},
	{CURLE_URL_MALFORMAT, 0, false, FAILURE_INTERNAL, false},
	{CURLE_OUT_OF_MEMORY, 0, false, FAILURE_INTERNAL, false},
	{CURLE_FAILED_INIT, 0, false, FAILURE_INTERNAL, false},
	{CURLE_BAD_FUNCTION_ARGUMENT, 0, false, FAILURE_INTERNAL, false},
	{CURLE_WRITE_ERROR, 200, false, FAILURE_INTERNAL, false},
	{CURLE_ABORTED_BY_CALLBACK, 0, false, FAILURE_INTERNAL, false},
	/* A status line, then the connection closed inside the headers: curl
	 * reports CURLE_OK and the status; nothing was acknowledged. */
	{CURLE_OK, 200, false, FAILURE_INVALID_RESPONSE, true},
	{CURLE_OK, 204, false, FAILURE_INVALID_RESPONSE, true},
	{CURLE_OK, 500, false, FAILURE_INVALID_RESPONSE, true},
	/* Without a status there is no header section to have been cut. */
	{CURLE_OK, 0, false, FAILURE_CONNECTION, true},
	/* Other outcomes keep their kind. */
	{CURLE_OPERATION_TIMEDOUT, 200, false, FAILURE_TIMEOUT, true},
	{CURLE_RECV_ERROR, 200, false, FAILURE_CONNECTION, true},
	{CURLE_WRITE_ERROR, 200, true, FAILURE_RESPONSE_TOO_LARGE, true},
	/* Anything unknown is a connection problem. */
	{9999, 0, false, FAILURE_CONNECTION, false},
};

Test(failure, classify_table)
{
	for (size_t i = 0; i < sizeof classify_cases / sizeof classify_cases[0]; i++) {
		const struct classify_case *c = &classify_cases[i];
		enum failure_kind got =
			failure_classify(c->curl, c->status, c->too_large, c->headers_cut);
		cr_expect_eq(got, c->want,
			     "case %zu: curl=%d status=%ld too_large=%d headers_cut=%d: got %d want %d",
			     i, c->curl, c->status, c->too_large, c->headers_cut, got, c->want);
	}
}

struct code_case {
	enum failure_kind kind;
	const char *want;
};

static const struct code_case code_cases[] = {
	{FAILURE_HTTP_STATUS, "http_status"},
	{FAILURE_TIMEOUT, "timeout"},
	{FAILURE_CONNECTION_REFUSED, "connection_refused"},
	{FAILURE_DNS, "dns"},
	{FAILURE_TLS, "tls_error"},
	{FAILURE_RESPONSE_TOO_LARGE, "response_too_large"},
	{FAILURE_CONNECTION, "connection"},
	{FAILURE_BLOCKED, "blocked_destination"},
	{FAILURE_INTERNAL, "internal"},
	{FAILURE_INVALID_RESPONSE, "invalid_response"},
};

Test(failure, code_table)
{
	cr_expect_null(failure_code(FAILURE_NONE));
	for (size_t i = 0; i < sizeof code_cases / sizeof code_cases[0]; i++) {
		const char *got = failure_code(code_cases[i].kind);
		cr_assert_not_null(got, "kind %d", code_cases[i].kind);
		cr_expect_str_eq(got, code_cases[i].want);
	}
	/* A value outside the enum never reads as success. */
	cr_expect_str_eq(failure_code((enum failure_kind)99), "internal");
}
