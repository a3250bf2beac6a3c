/* dispatch_http: one delivery attempt as an HTTP request, for dispatch.c
 * only (private header). It owns the pool of reusable easy handles and what
 * goes with each: the signed request (headers, body), the capped response
 * capture and the translation of a finished transfer into a struct attempt.
 * The dispatcher keeps the window and the delivery's state; the sender
 * threads (dispatch_send.h) run the transfers. Dispatcher thread only,
 * except where a comment names the sender. */
#ifndef HOOKD_DISPATCH_HTTP_H
#define HOOKD_DISPATCH_HTTP_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "custom_headers.h"
#include "dispatch_share.h"
#include "dispatch.h"
#include "epcache.h"
#include "failure.h"
#include "model.h"
#include "netguard.h"
#include "sign.h"
#include "store.h"

#define DISPATCH_HTTP_URL_MAX 2048
#define DISPATCH_HTTP_TYPE_MAX 128
#define DISPATCH_HTTP_HEADERS 11    /* request header lines */
/* A connection idle this long is closed rather than reused (CURLOPT_MAXAGE_CONN, and the
 * senders' sweep of idle sockets; libcurl's default is 118 s): load balancers commonly drop
 * idle connections at 60 s, and at a thousand endpoints every idle socket is held for
 * nothing. docs/operations.md, "Delivery connections". */
#define DISPATCH_HTTP_IDLE_CLOSE_S 55

struct dispatch_http_pool;

/* A transfer's TLS handshake: none (plain http, a reused connection, a
 * handshake that failed, or a TLS library other than OpenSSL behind
 * libcurl, which hookd cannot ask), a full one, or one that resumed a
 * cached session (OpenSSL's SSL_session_reused). */
enum dispatch_tls { DISPATCH_TLS_NONE = 0, DISPATCH_TLS_FULL, DISPATCH_TLS_RESUMED };

#define DISPATCH_HTTP_RESP_HEADERS_MAX 50 /* response headers kept per attempt */

/* One reusable request: its easy handle, fixed header buffers and the
 * response capture; every field is dispatch_http.c's. Its owner reads
 * easy, p and type (and what the contracts below name) and keeps what it
 * needs of its own beside it: the pool makes each request inside the
 * owner's struct (the pool's wrap_size and wrap_offset), as the
 * dispatcher's struct dispatch_req holds this request, the sender's job
 * and the dispatcher's state. A request belongs to one thread at a time:
 * the dispatcher's until it posts it to a sender, that sender's until it
 * gives it back (the queues' mutexes order the handovers), so none of its
 * fields needs a lock. While a sender holds it, the sender's libcurl runs
 * the response callbacks and the address guard on it (they write the
 * capture fields and read only the pool's fixed settings), and the sender
 * owns the handle's CURLOPT_PRIVATE. */
struct dispatch_http_req {
	CURL *easy;
	const struct dispatch_http_pool *pool; /* its pool (guard, limits) */
	struct dispatch_http_req *next_free;
	bool busy;               /* handed out by dispatch_http_get */
	struct pending p;        /* the delivery being attempted (set by prepare) */
	/* A batch request (batch_n > 0): its id stands in for the event id
	 * (webhook-id, signing) and the delivery id; p is its first member. */
	char batch_id[ID_MAX];
	size_t batch_n;
	char url[DISPATCH_HTTP_URL_MAX + 1];
	bool url_set;            /* easy's URL is url (see set_url) */
	bool host_is_ip;         /* url's host is an address (set_url; for the timings) */
	CURLU *uh;               /* url parsed, for CURLOPT_CURLU; NULL until needed */
	char type[DISPATCH_HTTP_TYPE_MAX + 1]; /* event type, "" if unknown */
	char *body;              /* kept between attempts unless large */
	size_t body_cap;
	int64_t at;              /* wall clock at the start */
	int64_t ev_created_at;   /* the event's created_at (wall ms; 0 = unknown), for metrics */
	int64_t started;         /* monotonic; 0 = never sent */
	char resp[MODEL_RESPONSE_BODY_MAX];
	size_t resp_len, resp_total;
	size_t header_bytes;     /* response header bytes read, all responses */
	bool too_large;          /* the headers passed their cap: reading stopped */
	bool headers_ended;      /* the last response's header section ended (empty line) */
	bool body_cut;           /* the body passed max_response_bytes: reading stopped */
	char blocked[NETGUARD_MSG_MAX]; /* why the guard refused an address, "" = it did not */
	/* Why no socket could be made from --source-address (the other
	 * address family, or bind failed: bind_failed), "" = no such failure
	 * since the last socket made. */
	char unbound[NETGUARD_MSG_MAX];
	bool bind_failed;
	/* The last address the guard let curl open a socket to, "" = none
	 * (written by dispatch_net_open_socket): curl reports no address for a
	 * connection that failed. */
	char dialled[ATTEMPT_REMOTE_IP_MAX];
	/* Response headers kept (on_header): offsets of NUL-terminated names
	 * and values in hbuf, kept between attempts unless large. */
	struct resp_header {
		uint32_t name, value;
	} rh[DISPATCH_HTTP_RESP_HEADERS_MAX];
	int n_headers;
	char *hbuf;
	size_t hbuf_len, hbuf_cap;
	char errbuf[CURL_ERROR_SIZE];
	/* When the transfer ended (monotonic ms), its phases, address and
	 * reuse (dispatch_http_measure); 0, none, "" and false until it ran. */
	int64_t ended;
	struct attempt_timings timings;
	char remote_ip[ATTEMPT_REMOTE_IP_MAX];
	bool reused;
	/* The connections the transfer opened (curl's CURLINFO_NUM_CONNECTS,
	 * dispatch_http_measure) and the TLS handshake of its new connection
	 * (on_prereq, on the sender); 0 and DISPATCH_TLS_NONE until it ran. */
	long conns_opened;
	enum dispatch_tls tls;
	/* hookd's own lines (one more for a batch), then the endpoint's custom
	 * ones (they point into the prepared endpoint's header_lines: its owner
	 * keeps that endpoint for the transfer). */
	struct curl_slist hdr[DISPATCH_HTTP_HEADERS + 1 + CUSTOM_HEADERS_MAX];
	char h_id[16 + ID_MAX], h_ts[48], h_sig[32 + SIGN_HEADER_LEN];
	char h_event[32 + DISPATCH_HTTP_TYPE_MAX], h_pts[48], h_psig[32 + SIGN_HEX_LEN];
	char h_wsig[40 + SIGN_HEX_LEN], h_dlv[32 + ID_MAX], h_bsize[48];
};

/* Every request ever made (all[0..n), busy or not) and the idle ones. Zero
 * it, set timeout_ms and allow_http (and wrap_size, wrap_offset if the
 * requests live in a bigger struct) and call dispatch_net_setup before the
 * first get. */
struct dispatch_http_pool {
	struct dispatch_http_req **all;
	size_t n;
	struct dispatch_http_req *free_list;
	/* Each request is made inside a zeroed block of wrap_size bytes, at
	 * wrap_offset (its owner's struct: see CONTAINER_OF); 0 = a bare
	 * request. The block lives as long as the request. */
	size_t wrap_size, wrap_offset;
	int64_t timeout_ms;      /* connect + total per attempt */
	bool allow_http;         /* else curl may only speak https */
	/* Destinations, from dispatch_net_setup. Zeroed, the guard blocks
	 * every special address and no response body is read. */
	struct netguard guard;
	size_t max_response_bytes;
	const char *ca_file;     /* CURLOPT_CAINFO, NULL = curl's default bundle */
	const char *ca_dir;      /* CURLOPT_CAPATH, NULL = curl's default */
	/* --source-address, which dispatch_net_open_socket binds every
	 * connection socket to (source_len 0 = any; source_text for messages).
	 * Not CURLOPT_INTERFACE: libcurl 7.88 looked that up in the shared DNS
	 * cache for each connection and read the entry after releasing it, a
	 * use after free when another sender's lookup expired it at that
	 * moment (docs/architecture.md, "Known gaps"). */
	struct sockaddr_storage source;
	socklen_t source_len;
	char source_text[NETGUARD_ADDR_TEXT_MAX];
	struct curl_slist *resolve; /* CURLOPT_RESOLVE entries, owned */
	struct sign_work *sign;  /* scratch for prepared keys, made on first use */
	/* TLS sessions and DNS answers shared by every request, whichever
	 * sender runs it (dispatch_share.h; made by dispatch_net_setup). */
	struct dispatch_share *share;
	/* Told of each connection socket curl opens and closes, on the thread
	 * that runs the transfer (the sender's); NULL = nobody to tell. */
	void (*socket_opened)(curl_socket_t fd);
	void (*socket_closed)(curl_socket_t fd);
};

/* dispatch_net.c: sets pool's destination rules from net: the address
 * guard, CAs, source address, pinned resolutions and the response limit.
 * Checks what can be checked before the first delivery (the CA file holds a
 * certificate, the source address can be bound). Returns 0, or -1 with a
 * reason in err. Call it before the first dispatch_http_get;
 * dispatch_http_pool_free undoes it. */
int dispatch_net_setup(struct dispatch_http_pool *pool, const struct dispatch_net_config *net,
		       char *err, size_t errlen);

/* dispatch_net.c: the CURLOPT_OPENSOCKETFUNCTION of every request (data: the
 * struct dispatch_http_req): opens the socket if the pool's guard allows the
 * address, else records why in the request and refuses it. */
curl_socket_t dispatch_net_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a);
/* dispatch_net.c: the CURLOPT_CLOSESOCKETFUNCTION of every request (data:
 * the pool). */
int dispatch_net_close_socket(void *ud, curl_socket_t fd);

/* Returns an idle request marked busy, making one (with its easy handle,
 * inside a new zeroed block of wrap_size bytes) if none is idle; NULL if
 * out of memory. The pool keeps ownership; the rest of the block keeps
 * what its owner left in it. */
struct dispatch_http_req *dispatch_http_get(struct dispatch_http_pool *pool);

/* Frees what r's attempt did not take (a large body, unclaimed response
 * headers) and returns r to the idle list. What the owner keeps beside r
 * (an endpoint reference) is the owner's to release first. r->easy must
 * not be in a multi handle. */
void dispatch_http_put(struct dispatch_http_pool *pool, struct dispatch_http_req *r);

/* Closes every easy handle and frees every request; pool is zeroed. */
void dispatch_http_pool_free(struct dispatch_http_pool *pool);

/* Prepares r (from pool) to attempt delivery p to endpoint ep now: builds
 * the body of event ev (NULL if it could not be read) and signs the headers
 * (per attempt, so a retry carries its own timestamp). Returns FAILURE_NONE
 * when r->easy is ready to add to a multi handle; otherwise the failure kind,
 * with a static reason in *why, and r is ready for dispatch_http_attempt.
 * Either way r->type is set if ev was given. r's header list points into
 * ep's custom header lines: the caller keeps ep until the transfer ended. */
enum failure_kind dispatch_http_prepare(struct dispatch_http_pool *pool,
					struct dispatch_http_req *r, const struct pending *p,
					const struct ep_entry *ep, const struct event *ev,
					const char **why);

/* The same for a batch (docs/api.md#batches): n due deliveries of ep, first = the
 * first of them, evs[i] the event of the i-th (NULL if it could not be
 * read), sent as one request with body {"batch_id":…,"events":[…]}, each
 * element the single delivery body of its event. r->type is "batch". */
enum failure_kind dispatch_http_prepare_batch(struct dispatch_http_pool *pool,
					      struct dispatch_http_req *r, const char *batch_id,
					      const struct pending *first, size_t n,
					      const struct ep_entry *ep,
					      const struct event *const *evs, const char **why);

/* Classifies r's finished transfer (cc is curl's result), before or after
 * r->easy left its multi handle (curl keeps the transfer's info in the easy
 * handle). Sets *status (0 if no response) and writes a human detail into
 * detail ("" for a success). */
enum failure_kind dispatch_http_outcome(struct dispatch_http_req *r, CURLcode cc, long *status,
					char *detail, size_t detail_len);

/* The sender, when r's transfer has finished: notes the end time and reads
 * curl's timing info, the address dialled, whether the connection was
 * reused and how many it opened into r (r->ended, timings, remote_ip,
 * reused, conns_opened). A few
 * curl_easy_getinfo calls, no allocation. */
void dispatch_http_measure(struct dispatch_http_req *r);

/* The value of response header name (lowercase) as on_header kept it
 * (blanks trimmed, repeats joined with ", "), or NULL if the last response
 * had none (or it was not kept). Points into r, valid until r is used
 * again. */
const char *dispatch_http_resp_header(const struct dispatch_http_req *r, const char *name);

/* Fills a (zeroed by the caller) with r's attempt: kind, status and detail
 * as from dispatch_http_outcome or _prepare. a takes r's response headers;
 * a->url, response_body and error_message are allocated (NULL if out of
 * memory) and the caller frees them; error_code gets a copy of
 * failure_code()'s string ("" on success). a gets r's timings, remote_ip and reused (none when no transfer
 * ran). */
void dispatch_http_attempt(struct dispatch_http_req *r, enum failure_kind kind, long status,
			   const char *detail, struct attempt *a);

#endif
