/* dispatch_http: one delivery attempt as an HTTP request (see
 * dispatch_http.h). Everything here runs on the dispatcher thread but the
 * response callbacks (on_body, on_header), which the sender thread's libcurl
 * calls while it runs the transfer. Requests
 * are reused, so their header lines and response buffer are fixed-size
 * fields, and every read from the receiver is capped. */
#include "dispatch_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/ssl.h>

#include "hops.h"
#include "log.h"
#include "timings.h"
#include "util.h"

#define RESPONSE_HEADERS_MAX (64 * 1024) /* response header bytes read, then too large */
#define HEADER_NAME_MAX 64
#define HEADER_VALUE_MAX 1024
/* x->hbuf's cap: header bytes are capped above, but a repeated name is
 * stored again, joined, each time it comes. */
#define HEADER_BUF_MAX (2 * RESPONSE_HEADERS_MAX)
#define BODY_KEEP_MAX 4096             /* a request keeps a body buffer up to this */
#define HEADER_BUF_KEEP 4096           /* and a response header buffer up to this */

static char hdr_content_type[] = "content-type: application/json";
static char hdr_user_agent[] = "user-agent: hookd/" HOOKD_VERSION;
static char hdr_expect[] = "Expect:";

/* ---- response capture ---- */

/* Reads at most pool->max_response_bytes of the body, keeping the first
 * sizeof resp. Past the limit it stops the transfer (curl ends with
 * CURLE_WRITE_ERROR and closes the connection): the receiver is sending more
 * than any acknowledgement needs, and its status line is already in. */
static size_t on_body(char *buf, size_t size, size_t nmemb, void *ud)
{
	struct dispatch_http_req *x = ud;
	size_t len = size * nmemb;
	size_t max = x->pool->max_response_bytes;
	size_t use = len;
	if (use > max - x->resp_total) {
		use = max - x->resp_total;
		x->body_cut = true;
	}
	x->resp_total += use;
	size_t room = sizeof x->resp - x->resp_len;
	size_t take = use < room ? use : room;
	memcpy(x->resp + x->resp_len, buf, take);
	x->resp_len += take;
	return x->body_cut ? CURL_WRITEFUNC_ERROR : len;
}

static bool is_token_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c);
}

/* Copies n bytes of s into x->hbuf, NUL-terminated. Returns the offset, or
 * -1 when the buffer is at its cap or out of memory (the header is then
 * not kept, as past DISPATCH_HTTP_RESP_HEADERS_MAX). */
static long hbuf_add(struct dispatch_http_req *x, const char *s, size_t n)
{
	size_t need = x->hbuf_len + n + 1;
	if (need > HEADER_BUF_MAX)
		return -1;
	char *b = array_grow(x->hbuf, &x->hbuf_cap, need, 1, 512);
	if (b == NULL)
		return -1;
	x->hbuf = b;
	long off = (long)x->hbuf_len;
	memcpy(x->hbuf + off, s, n);
	x->hbuf[off + (long)n] = '\0';
	x->hbuf_len += n + 1;
	return off;
}

/* The name of header line buf (n bytes, no line end), lowercased, into
 * name. Returns its length, or 0 if the line has no valid name (no colon,
 * empty, too long, not a token). */
static size_t header_name(const char *buf, size_t n, char name[HEADER_NAME_MAX + 1])
{
	const char *colon = memchr(buf, ':', n);
	if (colon == NULL || colon == buf || (size_t)(colon - buf) > HEADER_NAME_MAX)
		return 0;
	size_t nl = (size_t)(colon - buf);
	for (size_t i = 0; i < nl; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (!is_token_char(c) || c == 0)
			return 0;
		name[i] = (char)c;
	}
	name[nl] = '\0';
	return nl;
}

/* Keeps response header name (lowercase, nl bytes) with value v (vlen
 * bytes, trimmed): a new entry, or joined with ", " to the one kept for a
 * repeated name. Dropped past DISPATCH_HTTP_RESP_HEADERS_MAX, a joined
 * value's cap or the buffer's. */
static void header_keep(struct dispatch_http_req *x, const char *name, size_t nl, const char *v,
			size_t vlen)
{
	struct resp_header *h = NULL;
	for (int i = 0; i < x->n_headers && h == NULL; i++)
		if (strcmp(x->hbuf + x->rh[i].name, name) == 0)
			h = &x->rh[i];
	char val[HEADER_VALUE_MAX];
	size_t vl = 0;
	if (h != NULL) {
		size_t ol = strlen(x->hbuf + h->value);
		if (ol + 2 >= sizeof val)
			return;
		memcpy(val, x->hbuf + h->value, ol);
		memcpy(val + ol, ", ", 2);
		vl = ol + 2;
	} else if (x->n_headers >= DISPATCH_HTTP_RESP_HEADERS_MAX) {
		return;
	}
	size_t take = vlen;
	bool cut = take > sizeof val - vl;
	if (cut)
		take = sizeof val - vl;
	memcpy(val + vl, v, take);
	vl = utf8_clean(val, vl + take, true, cut);
	long name_off = h != NULL ? (long)h->name : hbuf_add(x, name, nl);
	long value_off = name_off < 0 ? -1 : hbuf_add(x, val, vl);
	if (value_off < 0)
		return;
	if (h == NULL) {
		h = &x->rh[x->n_headers++];
		h->name = (uint32_t)name_off;
	}
	h->value = (uint32_t)value_off;
}

/* Keeps up to DISPATCH_HTTP_RESP_HEADERS_MAX response headers, names
 * lowercased, values capped and cleaned to UTF-8; repeated names are joined
 * with ", ". They go into x->hbuf, plain bytes: this runs on the sender for
 * every response, and the JSON text is made once, on the dispatcher
 * (dispatch_http_attempt). */
static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
	struct dispatch_http_req *x = ud;
	size_t len = size * nitems;
	x->header_bytes += len;
	if (x->header_bytes > RESPONSE_HEADERS_MAX) {
		x->too_large = true;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		/* A status line: a new response (after a 1xx), start over. */
		x->n_headers = 0;
		x->hbuf_len = 0;
		x->headers_ended = false;
		return len;
	}
	size_t n = len;
	while (n > 0 && (buf[n - 1] == '\r' || buf[n - 1] == '\n'))
		n--;
	/* The empty line that ends the section: without it the response was
	 * cut off inside its headers (curl still reports it complete). */
	if (n == 0 && len > 0)
		x->headers_ended = true;
	if (n == 0 || buf[0] == ' ' || buf[0] == '\t')
		return len;
	char name[HEADER_NAME_MAX + 1];
	size_t nl = header_name(buf, n, name);
	if (nl == 0)
		return len;
	const char *v = buf + nl + 1, *end = buf + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	header_keep(x, name, nl, v, (size_t)(end - v));
	return len;
}

const char *dispatch_http_resp_header(const struct dispatch_http_req *r, const char *name)
{
	for (int i = 0; i < r->n_headers; i++)
		if (strcmp(r->hbuf + r->rh[i].name, name) == 0)
			return r->hbuf + r->rh[i].value;
	return NULL;
}

/* The kept response headers as compact JSON text, {"name":"value",...} in
 * the order first seen (what json_dumps of the same object gives), or NULL
 * if there are none or memory ran out. */
static char *headers_json(const struct dispatch_http_req *x)
{
	if (x->n_headers == 0)
		return NULL;
	/* Every byte may need escaping: 6 each, plus quotes, ':' and ','. */
	char *text = malloc(6 * x->hbuf_len + 6 * (size_t)x->n_headers + 3);
	if (text == NULL)
		return NULL;
	char *o = text;
	*o++ = '{';
	for (int i = 0; i < x->n_headers; i++) {
		const char *name = x->hbuf + x->rh[i].name, *value = x->hbuf + x->rh[i].value;
		if (i > 0)
			*o++ = ',';
		o = json_put_str(o, name, strlen(name));
		*o++ = ':';
		o = json_put_str(o, value, strlen(value));
	}
	*o++ = '}';
	*o = '\0';
	return text;
}

/* CURLOPT_PREREQFUNCTION, on the sender: the connection is ready (a new
 * one has finished its TLS handshake) and the request not yet sent. Notes
 * whether a new TLS connection resumed a cached session, which only the
 * TLS library knows; the session object lives only while the transfer
 * holds the connection, so it is asked here, not after the transfer.
 * Always lets the request go. */
static int on_prereq(void *ud, char *ip, char *local_ip, int port, int local_port)
{
	(void)ip;
	(void)local_ip;
	(void)port;
	(void)local_port;
	struct dispatch_http_req *x = ud;
	long n = 0;
	struct curl_tlssessioninfo *ti = NULL;
	if (curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &n) == CURLE_OK && n > 0 &&
	    curl_easy_getinfo(x->easy, CURLINFO_TLS_SSL_PTR, &ti) == CURLE_OK && ti != NULL &&
	    ti->backend == CURLSSLBACKEND_OPENSSL && ti->internals != NULL)
		x->tls = SSL_session_reused(ti->internals) ? DISPATCH_TLS_RESUMED
							   : DISPATCH_TLS_FULL;
	return CURL_PREREQFUNC_OK;
}

/* ---- the pool ---- */

/* Creates r's easy handle. r stays at the same address while the handle
 * lives (callbacks and the header list point into it). */
static int req_init(struct dispatch_http_req *r, const struct dispatch_http_pool *pool)
{
	r->pool = pool;
	r->easy = curl_easy_init();
	if (r->easy == NULL)
		return -1;
	CURL *e = r->easy;
	/* What keeps deliveries where they belong must not fail silently: no
	 * proxy (from *_proxy in the environment: the guard judges the
	 * receiver's own address), the guard on every new connection, and
	 * certificate and host name verification. NOPROXY "*" says the same
	 * as the empty proxy; without it libcurl reads no_proxy and NO_PROXY
	 * from the environment for every transfer (getenv walks environ):
	 * 0.7k instructions a delivery (docs/performance.md, session 10). */
	if (curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOPROXY, "*") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, dispatch_net_open_socket) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, dispatch_net_close_socket) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, pool) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    (pool->ca_file && curl_easy_setopt(e, CURLOPT_CAINFO, pool->ca_file) != CURLE_OK) ||
	    (pool->ca_dir && curl_easy_setopt(e, CURLOPT_CAPATH, pool->ca_dir) != CURLE_OK) ||
	    (pool->resolve && curl_easy_setopt(e, CURLOPT_RESOLVE, pool->resolve) != CURLE_OK) ||
	    (pool->share && curl_easy_setopt(e, CURLOPT_SHARE, dispatch_share_handle(pool->share)) !=
				    CURLE_OK)) {
		log_error("dispatch: libcurl refused a destination option");
		curl_easy_cleanup(e);
		r->easy = NULL;
		return -1;
	}
	/* Options that never change between requests; connections live in
	 * the multi handle's cache and are reused across easy handles. */
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)pool->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)pool->timeout_ms);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, pool->allow_http ? "http,https" : "https");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	/* CURLOPT_TCP_NODELAY is not set: libcurl's default has been 1 since 7.50.2. */
	curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, (long)DISPATCH_HTTP_IDLE_CLOSE_S);
	/* No DNS cache: a new connection looks its host name up again (a
	 * kept-alive one never does; --resolve's pins stay). libcurl 7.88
	 * walks its whole DNS cache at the end of every transfer to expire
	 * entries, under the share's lock: with a name a minute for each of
	 * 1,000 endpoints that walk cost about 30 µs a delivery
	 * (docs/performance.md, issue 16 step 2). */
	curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdr);
	curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
	curl_easy_setopt(e, CURLOPT_PREREQDATA, r);
	return 0;
}

/* Frees what the last attempt left in r; a small body buffer is kept for
 * the next attempt, so memory stays bounded by BODY_KEEP_MAX per request. */
static void req_release(struct dispatch_http_req *r, bool all)
{
	if (all || r->body_cap > BODY_KEEP_MAX) {
		free(r->body);
		r->body = NULL;
		r->body_cap = 0;
	}
	if (all || r->hbuf_cap > HEADER_BUF_KEEP) {
		free(r->hbuf);
		r->hbuf = NULL;
		r->hbuf_cap = 0;
	}
	r->hbuf_len = 0;
	r->n_headers = 0;
}

struct dispatch_http_req *dispatch_http_get(struct dispatch_http_pool *pool)
{
	struct dispatch_http_req *r = pool->free_list;
	if (r != NULL) {
		pool->free_list = r->next_free;
		r->busy = true;
		return r;
	}
	struct dispatch_http_req **all = realloc(pool->all, (pool->n + 1) * sizeof *all);
	if (all == NULL)
		return NULL;
	pool->all = all;
	size_t size = pool->wrap_size > 0 ? pool->wrap_size : sizeof *r;
	char *block = calloc(1, size);
	if (block == NULL)
		return NULL;
	r = (struct dispatch_http_req *)(void *)(block + pool->wrap_offset);
	if (req_init(r, pool) != 0) {
		free(block);
		return NULL;
	}
	pool->all[pool->n++] = r;
	r->busy = true;
	return r;
}

void dispatch_http_put(struct dispatch_http_pool *pool, struct dispatch_http_req *r)
{
	req_release(r, false);
	r->busy = false;
	r->next_free = pool->free_list;
	pool->free_list = r;
}

void dispatch_http_pool_free(struct dispatch_http_pool *pool)
{
	for (size_t i = 0; i < pool->n; i++) {
		curl_easy_cleanup(pool->all[i]->easy);
		curl_url_cleanup(pool->all[i]->uh);
		req_release(pool->all[i], true);
		free((char *)pool->all[i] - pool->wrap_offset);
	}
	free(pool->all);
	dispatch_share_free(pool->share); /* after every easy handle that used it */
	curl_slist_free_all(pool->resolve);
	sign_work_free(pool->sign);
	memset(pool, 0, sizeof *pool);
}

/* ---- one attempt ---- */

/* Appends n bytes of s at *p; the callers size their buffers for the
 * longest value (ids < ID_MAX, types <= DISPATCH_HTTP_TYPE_MAX). */
static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

/* Sets one header line "name: value" into buf (NUL-terminated). */
static void set_line(char *buf, size_t cap, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	if (nl + vl + 1 > cap)
		vl = cap > nl + 1 ? cap - nl - 1 : 0;
	char *p = put(buf, name, nl);
	p = put(p, value, vl);
	*p = '\0';
}

static void set_line_i64(char *buf, size_t cap, const char *name, int64_t v)
{
	char num[UTIL_I64_DIGITS_MAX + 1];
	*put_i64(num, v) = '\0';
	set_line(buf, cap, name, num);
}

/* One "v1,…" (or "v1a,…") signature with k, through its prepared form p
 * when there is one. */
static void sign_one(struct dispatch_http_pool *pool, const struct sign_key *k,
		     const struct sign_prepared *p, const char *msg_id, int64_t ts,
		     const char *body, size_t body_len, char out[SIGN_STANDARD_LEN])
{
	if (p != NULL && pool->sign == NULL)
		pool->sign = sign_work_new();
	if (p != NULL && pool->sign != NULL)
		sign_standard_prepared(p, pool->sign, msg_id, ts, body, body_len, out);
	else
		sign_standard(k, msg_id, ts, body, body_len, out);
}

/* Links x's header nodes: the n_own lines, then ep's custom ones. */
static void link_headers(struct dispatch_http_req *x, const struct ep_entry *ep, char **lines,
			 size_t n_own)
{
	size_t n_custom = ep->n_header_lines;
	if (n_custom > CUSTOM_HEADERS_MAX)
		n_custom = CUSTOM_HEADERS_MAX; /* the API refuses more */
	size_t total = n_own + n_custom;
	for (size_t i = 0; i < total; i++) {
		/* Custom headers go after hookd's own, which they cannot name
		 * (custom_header_reserved), so they never replace one. */
		x->hdr[i].data = i < n_own ? lines[i] : ep->header_lines[i - n_own];
		x->hdr[i].next = i + 1 < total ? &x->hdr[i + 1] : NULL;
	}
}

/* The signatures of x's body for ep's schemes: sig the webhook-signature
 * value (with a rotation's previous secret after the current one), hex the
 * hex HMAC of both hex schemes; each "" when its schemes are not sent. */
static void sign_request(struct dispatch_http_pool *pool, const struct dispatch_http_req *x,
			 const struct ep_entry *ep, unsigned schemes, const char *msg_id,
			 size_t body_len, char sig[SIGN_HEADER_LEN], char hex[SIGN_HEX_LEN])
{
	int64_t ts = x->at / 1000;
	sig[0] = hex[0] = '\0';
	if (schemes & SIGN_SCHEME_STANDARD)
		sign_one(pool, &ep->key, ep->prep, msg_id, ts, x->body, body_len, sig);
	if ((schemes & SIGN_SCHEMES_HEX) && ep->prep != NULL && pool->sign == NULL)
		pool->sign = sign_work_new();
	if ((schemes & SIGN_SCHEMES_HEX) && ep->prep != NULL && pool->sign != NULL)
		sign_hex_prepared(ep->prep, pool->sign, x->body, body_len, hex);
	else if (schemes & SIGN_SCHEMES_HEX)
		sign_hex(&ep->key, x->body, body_len, hex);
	/* During a rotation's overlap the previous secret signs too, after the
	 * new one (Standard Webhooks: a receiver accepts any entry that
	 * verifies). Only webhook-signature carries it. */
	if ((schemes & SIGN_SCHEME_STANDARD) && ep->prev_until > x->at) {
		size_t n = strlen(sig);
		sig[n] = ' ';
		sign_one(pool, &ep->prev_key, ep->prev_prep, msg_id, ts, x->body, body_len,
			 sig + n + 1);
		if (sig[n + 1] == '\0')
			sig[n] = '\0'; /* never a trailing space (Python's library fails on it) */
	}
}

/* Fills x's header list for this attempt: hookd's own lines, only those of
 * the endpoint's signature schemes (docs/receiving.md#headers), then its
 * custom ones. The nodes and strings live in x, so building it allocates
 * nothing. */
static void build_headers(struct dispatch_http_pool *pool, struct dispatch_http_req *x,
			  const struct ep_entry *ep, size_t body_len)
{
	char sig[SIGN_HEADER_LEN], hex[SIGN_HEX_LEN];
	/* A batch is signed and named by its batch id. */
	const char *msg_id = x->batch_n > 0 ? x->batch_id : x->p.event_id;
	/* The hex schemes are HMAC: an Ed25519 endpoint sends neither. */
	unsigned schemes = sign_schemes_effective(ep->key.alg, ep->schemes);
	if (schemes == 0)
		schemes = SIGN_SCHEME_STANDARD;
	sign_request(pool, x, ep, schemes, msg_id, body_len, sig, hex);
	char *lines[DISPATCH_HTTP_HEADERS + 1];
	size_t n_own = 0;
	/* "Expect:" (no value) only tells curl not to add one; it is not sent,
	 * so its place does not change the request. First, because curl walks
	 * the list for every header it may add itself and stops at a match:
	 * for Expect at the end that walk was the whole list. */
	lines[n_own++] = hdr_expect;
	lines[n_own++] = hdr_content_type;
	lines[n_own++] = hdr_user_agent;
	set_line(x->h_id, sizeof x->h_id, "webhook-id: ", msg_id);
	lines[n_own++] = x->h_id;
	if (schemes & SIGN_SCHEME_STANDARD) {
		set_line_i64(x->h_ts, sizeof x->h_ts, "webhook-timestamp: ", x->at / 1000);
		set_line(x->h_sig, sizeof x->h_sig, "webhook-signature: ", sig);
		lines[n_own++] = x->h_ts;
		lines[n_own++] = x->h_sig;
	}
	set_line(x->h_event, sizeof x->h_event, "X-PixelPatrol-Event: ", x->type);
	lines[n_own++] = x->h_event;
	if (sign_schemes_effective(SIGN_HMAC, ep->chosen) & SIGN_SCHEMES_HEX) {
		set_line_i64(x->h_pts, sizeof x->h_pts, "X-PixelPatrol-Timestamp: ", x->at);
		lines[n_own++] = x->h_pts;
	}
	if (schemes & SIGN_SCHEME_PIXELPATROL) {
		set_line(x->h_psig, sizeof x->h_psig, "X-PixelPatrol-Signature: ", hex);
		lines[n_own++] = x->h_psig;
	}
	if (schemes & SIGN_SCHEME_WEBHOOK_SIGNATURE) {
		set_line(x->h_wsig, sizeof x->h_wsig, "X-Webhook-Signature: sha256=", hex);
		lines[n_own++] = x->h_wsig;
	}
	set_line(x->h_dlv, sizeof x->h_dlv, "X-PixelPatrol-Delivery: ",
		 x->batch_n > 0 ? x->batch_id : x->p.id);
	lines[n_own++] = x->h_dlv;
	if (x->batch_n > 0) {
		set_line_i64(x->h_bsize, sizeof x->h_bsize, "X-PixelPatrol-Batch-Size: ",
			     (int64_t)x->batch_n);
		lines[n_own++] = x->h_bsize;
	}
	link_headers(x, ep, lines, n_own);
}

/* True if s needs no escaping inside a JSON string: printable ASCII other
 * than '"' and '\\' is written as is by every encoder, jansson included. */
static bool json_plain(const char *s)
{
	for (const unsigned char *u = (const unsigned char *)s; *u; u++)
		if (*u < 0x20 || *u >= 0x7f || *u == '"' || *u == '\\')
			return false;
	return true;
}

/* Makes room for n bytes plus a NUL in r->body. Returns 0 or -1. */
static int body_reserve(struct dispatch_http_req *r, size_t n)
{
	if (n < r->body_cap)
		return 0;
	size_t cap = n + 1 < 1024 ? 1024 : n + 1;
	char *b = realloc(r->body, cap);
	if (b == NULL)
		return -1;
	r->body = b;
	r->body_cap = cap;
	return 0;
}

/* Builds ev's delivery body into r->body: byte for byte what
 * event_delivery_body makes (the bytes signed and sent), written straight
 * into the reused buffer when the id and type need no escaping, as every
 * validated id and type does. Returns 0 and *len, or -1 (out of memory). */
static int build_body(struct dispatch_http_req *r, const struct event *ev, size_t *len)
{
	const char *type = ev->type;
	if (!json_plain(ev->id) || !json_plain(type)) {
		size_t n = 0;
		char *b = event_delivery_body(ev, &n);
		if (b == NULL || body_reserve(r, n) != 0) {
			free(b);
			return -1;
		}
		memcpy(r->body, b, n + 1);
		free(b);
		*len = n;
		return 0;
	}
	const char *data = ev->data ? ev->data : "null";
	size_t il = strlen(ev->id), tl = strlen(type), dl = strlen(data);
	char created[32];
	rfc3339_format(ev->created_at, created);
	size_t cl = strlen(created);
	static const char p1[] = "{\"id\":\"", p2[] = "\",\"event\":\"",
			  p3[] = "\",\"created_at\":\"", p4[] = "\",\"data\":";
	size_t total = sizeof p1 + sizeof p2 + sizeof p3 + sizeof p4 - 4 + il + tl + cl + dl + 1;
	if (body_reserve(r, total) != 0)
		return -1;
	char *o = r->body;
	o = PUT_LIT(o, p1);
	o = put(o, ev->id, il);
	o = PUT_LIT(o, p2);
	o = put(o, type, tl);
	o = PUT_LIT(o, p3);
	o = put(o, created, cl);
	o = PUT_LIT(o, p4);
	o = put(o, data, dl);
	*o++ = '}';
	*o = '\0';
	*len = (size_t)(o - r->body);
	return 0;
}

/* Points r's handle at r->url, parsed once here: given a CURLU, curl
 * copies it for each transfer instead of parsing the URL and writing it
 * back out (about 6k instructions a request). If curl's parser refuses
 * the URL, the handle gets the text alone and the transfer fails as it
 * would have. The text is set either way (what curl reports as the URL). */
static void set_url(struct dispatch_http_req *r)
{
	if (r->uh == NULL)
		r->uh = curl_url();
	bool parsed = r->uh != NULL &&
		      curl_url_set(r->uh, CURLUPART_URL, r->url,
				   CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK;
	curl_easy_setopt(r->easy, CURLOPT_CURLU, parsed ? r->uh : NULL);
	curl_easy_setopt(r->easy, CURLOPT_URL, r->url);
	/* The host as curl will dial it (an IP literal has no DNS phase in the
	 * timings): once per URL change, beside the parse above, not per
	 * attempt. */
	char *host = NULL;
	r->host_is_ip = parsed && curl_url_get(r->uh, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
			timings_host_is_ip(host);
	curl_free(host);
}

/* Signs r's body (r->body, body_len bytes) for ep and sets the request on
 * its easy handle, ready to start. */
static enum failure_kind arm(struct dispatch_http_pool *pool, struct dispatch_http_req *r,
			     const struct ep_entry *ep, size_t body_len)
{
	build_headers(pool, r, ep, body_len);
	if (!r->url_set) {
		set_url(r);
		r->url_set = true;
	}
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
	r->started = mono_ms();
	return FAILURE_NONE;
}

enum failure_kind dispatch_http_prepare(struct dispatch_http_pool *pool,
					struct dispatch_http_req *r, const struct pending *p,
					const struct ep_entry *ep, const struct event *ev,
					const char **why)
{
	r->p = *p;
	r->batch_n = 0;
	r->batch_id[0] = '\0';
	r->type[0] = '\0';
	r->resp_len = r->resp_total = r->header_bytes = 0;
	r->too_large = r->body_cut = r->headers_ended = false;
	r->blocked[0] = '\0';
	r->unbound[0] = '\0';
	r->bind_failed = false;
	r->n_headers = 0;
	r->hbuf_len = 0;
	r->errbuf[0] = '\0';
	r->started = 0;
	r->ended = 0;
	r->dialled[0] = '\0';
	attempt_timings_none(&r->timings);
	r->remote_ip[0] = '\0';
	r->reused = false;
	r->conns_opened = 0;
	r->tls = DISPATCH_TLS_NONE;
	r->at = now_ms();
	size_t ul = strlen(ep->url);
	size_t keep = ul > DISPATCH_HTTP_URL_MAX ? DISPATCH_HTTP_URL_MAX : ul;
	if (!r->url_set || strncmp(r->url, ep->url, keep) != 0 || r->url[keep] != '\0') {
		memcpy(r->url, ep->url, keep);
		r->url[keep] = '\0';
		r->url_set = false;
	}

	*why = NULL;
	enum failure_kind kind = FAILURE_INTERNAL;
	size_t body_len = 0;
	if (ul > DISPATCH_HTTP_URL_MAX) {
		*why = "endpoint URL too long";
	} else if (!pool->allow_http && strncasecmp(r->url, "https://", 8) != 0) {
		kind = FAILURE_BLOCKED;
		*why = "only https:// URLs are allowed (see --allow-http)";
	} else if (ev == NULL || ev->type == NULL) {
		*why = "event could not be read";
	} else if (strlen(ev->type) > DISPATCH_HTTP_TYPE_MAX) {
		*why = "event type too long";
	} else if (build_body(r, ev, &body_len) != 0) {
		*why = "out of memory building the body";
	}
	if (ev != NULL && ev->type != NULL && strlen(ev->type) <= DISPATCH_HTTP_TYPE_MAX)
		memcpy(r->type, ev->type, strlen(ev->type) + 1);
	if (*why != NULL)
		return kind;
	return arm(pool, r, ep, body_len);
}

/* Builds the batch body into r->body. Returns 0 and *len, or -1 (out of
 * memory). */
static int build_batch_body(struct dispatch_http_req *r, const char *batch_id,
			    const struct event *const *evs, size_t n, size_t *len)
{
	static const char p1[] = "{\"batch_id\":\"", p2[] = "\",\"events\":[", p3[] = "]}";
	char **parts = calloc(n, sizeof *parts);
	size_t *lens = calloc(n, sizeof *lens);
	int rc = -1;
	if (parts == NULL || lens == NULL)
		goto out;
	size_t total = sizeof p1 + sizeof p2 + sizeof p3 - 3 + strlen(batch_id) + n;
	for (size_t i = 0; i < n; i++) {
		if ((parts[i] = event_delivery_body(evs[i], &lens[i])) == NULL)
			goto out;
		total += lens[i];
	}
	if (body_reserve(r, total) != 0)
		goto out;
	char *o = r->body;
	o = PUT_LIT(o, p1);
	o = put(o, batch_id, strlen(batch_id));
	o = PUT_LIT(o, p2);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			*o++ = ',';
		o = put(o, parts[i], lens[i]);
	}
	o = PUT_LIT(o, p3);
	*o = '\0';
	*len = (size_t)(o - r->body);
	rc = 0;
out:
	for (size_t i = 0; parts != NULL && i < n; i++)
		free(parts[i]);
	free(parts);
	free(lens);
	return rc;
}

enum failure_kind dispatch_http_prepare_batch(struct dispatch_http_pool *pool,
					      struct dispatch_http_req *r, const char *batch_id,
					      const struct pending *first, size_t n,
					      const struct ep_entry *ep,
					      const struct event *const *evs, const char **why)
{
	/* The single path sets up everything but the body, with no event. */
	enum failure_kind kind = dispatch_http_prepare(pool, r, first, ep, NULL, why);
	size_t il = strnlen(batch_id, ID_MAX - 1);
	memcpy(r->batch_id, batch_id, il);
	r->batch_id[il] = '\0';
	r->batch_n = n;
	memcpy(r->type, "batch", sizeof "batch");
	bool no_event_only = *why != NULL && strcmp(*why, "event could not be read") == 0;
	if (kind == FAILURE_BLOCKED || (*why != NULL && !no_event_only))
		return kind;
	*why = NULL;
	size_t body_len = 0;
	for (size_t i = 0; i < n; i++)
		if (evs[i] == NULL || evs[i]->type == NULL)
			*why = "event could not be read";
	if (*why == NULL && build_batch_body(r, batch_id, evs, n, &body_len) != 0)
		*why = "out of memory building the body";
	if (*why != NULL)
		return FAILURE_INTERNAL;
	return arm(pool, r, ep, body_len);
}

enum failure_kind dispatch_http_outcome(struct dispatch_http_req *r, CURLcode cc, long *status,
					char *detail, size_t detail_len)
{
	*status = 0;
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, status);
	/* hookd stopped reading a long body itself: the status decides. */
	if (r->body_cut && cc == CURLE_WRITE_ERROR)
		cc = CURLE_OK;
	enum failure_kind kind =
		failure_classify((int)cc, *status, r->too_large, *status > 0 && !r->headers_ended);
	if (r->blocked[0] != '\0' && cc == CURLE_COULDNT_CONNECT)
		kind = FAILURE_BLOCKED; /* every address was refused by the guard */
	else if (r->bind_failed && r->unbound[0] != '\0' && cc == CURLE_COULDNT_CONNECT)
		kind = FAILURE_INTERNAL; /* this host could not use --source-address */
	if (kind == FAILURE_NONE)
		detail[0] = '\0'; /* a success records no message */
	else if (kind == FAILURE_BLOCKED && r->blocked[0] != '\0')
		snprintf(detail, detail_len, "%s", r->blocked);
	else if (cc == CURLE_COULDNT_CONNECT && r->unbound[0] != '\0')
		snprintf(detail, detail_len, "%s", r->unbound);
	else if (kind == FAILURE_RESPONSE_TOO_LARGE)
		snprintf(detail, detail_len, "response headers exceeded %d bytes",
			 RESPONSE_HEADERS_MAX);
	else if (kind == FAILURE_INVALID_RESPONSE)
		snprintf(detail, detail_len,
			 "HTTP %ld, but the connection closed inside the response headers", *status);
	else if (kind == FAILURE_HTTP_STATUS && r->body_cut)
		snprintf(detail, detail_len, "HTTP %ld (body read up to --max-response-bytes %zu)",
			 *status, r->pool->max_response_bytes);
	else if (kind == FAILURE_HTTP_STATUS)
		snprintf(detail, detail_len, "HTTP %ld", *status);
	else if (r->errbuf[0] != '\0')
		snprintf(detail, detail_len, "%s", r->errbuf);
	else
		snprintf(detail, detail_len, "%s", curl_easy_strerror(cc));
	return kind;
}

/* A curl time (µs) as int64, 0 if curl has none. */
static int64_t curl_us(CURL *easy, CURLINFO what)
{
	curl_off_t v = 0;
	if (curl_easy_getinfo(easy, what, &v) != CURLE_OK || v < 0)
		return 0;
	return (int64_t)v;
}

/* Copies the NUL-terminated s into out[ATTEMPT_REMOTE_IP_MAX], cut if longer. */
static void set_ip(char out[ATTEMPT_REMOTE_IP_MAX], const char *s)
{
	size_t n = strnlen(s, ATTEMPT_REMOTE_IP_MAX - 1);
	memcpy(out, s, n);
	out[n] = '\0';
}

void dispatch_http_measure(struct dispatch_http_req *r)
{
	r->ended = mono_ms();
	struct timings_marks m = {
		.namelookup_us = curl_us(r->easy, CURLINFO_NAMELOOKUP_TIME_T),
		.connect_us = curl_us(r->easy, CURLINFO_CONNECT_TIME_T),
		.appconnect_us = curl_us(r->easy, CURLINFO_APPCONNECT_TIME_T),
		.pretransfer_us = curl_us(r->easy, CURLINFO_PRETRANSFER_TIME_T),
		.starttransfer_us = curl_us(r->easy, CURLINFO_STARTTRANSFER_TIME_T),
		.total_us = curl_us(r->easy, CURLINFO_TOTAL_TIME_T),
		.num_connects = 0,
		.host_is_ip = r->host_is_ip,
	};
	if (curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &m.num_connects) != CURLE_OK)
		m.num_connects = 1; /* unknown: do not claim a reuse */
	r->reused = timings_from_marks(&m, &r->timings);
	hops_add(HOP_SEND, m.total_us);
	r->conns_opened = m.num_connects;
	/* curl's is the connection used (a reused one's too); it has none for
	 * a connection that failed, whose address the socket callback kept. */
	char *ip = NULL;
	if (curl_easy_getinfo(r->easy, CURLINFO_PRIMARY_IP, &ip) != CURLE_OK || ip == NULL ||
	    ip[0] == '\0')
		ip = r->dialled;
	set_ip(r->remote_ip, ip);
}

void dispatch_http_attempt(struct dispatch_http_req *r, enum failure_kind kind, long status,
			   const char *detail, struct attempt *a)
{
	memcpy(a->delivery_id, r->p.id, ID_MAX);
	a->attempt = r->p.attempt_count + 1;
	a->at = r->at;
	a->url = xstrdup(r->url);
	a->status = (int)status;
	/* The sender's end time: the wait for the dispatcher to read the
	 * result is not the receiver's. */
	int64_t end = r->ended ? r->ended : mono_ms();
	a->duration_ms = r->started ? end - r->started : 0;
	if (status > 0) {
		size_t n = utf8_clean(r->resp, r->resp_len, false, r->resp_total > r->resp_len);
		a->response_body = malloc(n + 1);
		if (a->response_body != NULL) {
			memcpy(a->response_body, r->resp, n);
			a->response_body[n] = '\0';
		}
	}
	a->headers = headers_json(r);
	model_code_set(a->error_code, failure_code(kind));
	a->error_message = kind != FAILURE_NONE ? xstrdup(detail) : NULL;
	a->timings = r->timings;
	memcpy(a->remote_ip, r->remote_ip, sizeof a->remote_ip);
	a->reused = r->reused;
}
