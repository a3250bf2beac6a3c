/* mock_record: the bookkeeping of `hookd mock` (see mock.c): the --record
 * JSON line of each request, the GET /_mock/stats counters, and the request
 * headers as the signature checks read them. */
#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "log.h"
#include "mock_internal.h"
#include "sign.h"
#include "util.h"

/* Wall clock, microseconds since the Unix epoch. */
int64_t mock_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Lowers *a to v if v is smaller (or *a is 0, "unset"). */
static void atomic_min_set(atomic_llong *a, long long v)
{
	long long cur = atomic_load(a);
	while ((cur == 0 || v < cur) && !atomic_compare_exchange_weak(a, &cur, v))
		;
}

static void atomic_max_set(atomic_llong *a, long long v)
{
	long long cur = atomic_load(a);
	while (v > cur && !atomic_compare_exchange_weak(a, &cur, v))
		;
}

void mock_stats_init(struct mock_stats *st)
{
	atomic_init(&st->requests, 0);
	atomic_init(&st->verified, 0);
	atomic_init(&st->unverified, 0);
	atomic_init(&st->skipped, 0);
	atomic_init(&st->replied_2xx, 0);
	atomic_init(&st->replied_other, 0);
	atomic_init(&st->body_bytes, 0);
	atomic_init(&st->first_at_us, 0);
	atomic_init(&st->last_at_us, 0);
}

/* Counts one answered request for GET /_mock/stats. */
void mock_stats_count(struct mock_stats *st, const struct mock_request *req, int verified,
		      int status)
{
	atomic_fetch_add(&st->requests, 1);
	atomic_fetch_add(verified < 0 ? &st->skipped : verified ? &st->verified : &st->unverified,
			 1);
	atomic_fetch_add(status >= 200 && status < 300 ? &st->replied_2xx : &st->replied_other, 1);
	if (!req->too_large)
		atomic_fetch_add(&st->body_bytes, (long long)req->body.len);
	atomic_min_set(&st->first_at_us, req->at_us);
	atomic_max_set(&st->last_at_us, req->at_us);
}

/* The counters as a JSON object; with reset, they restart from zero. */
char *mock_stats_json(struct mock_server *srv, bool reset)
{
	struct mock_stats *st = &srv->stats;
	long long first, last;
	char buf[512];

	long requests = reset ? atomic_exchange(&st->requests, 0) : atomic_load(&st->requests);
	long verified = reset ? atomic_exchange(&st->verified, 0) : atomic_load(&st->verified);
	long unverified = reset ? atomic_exchange(&st->unverified, 0)
				: atomic_load(&st->unverified);
	long skipped = reset ? atomic_exchange(&st->skipped, 0) : atomic_load(&st->skipped);
	long ok = reset ? atomic_exchange(&st->replied_2xx, 0) : atomic_load(&st->replied_2xx);
	long other = reset ? atomic_exchange(&st->replied_other, 0)
			   : atomic_load(&st->replied_other);
	long long bytes = reset ? atomic_exchange(&st->body_bytes, 0)
				: atomic_load(&st->body_bytes);
	first = reset ? atomic_exchange(&st->first_at_us, 0) : atomic_load(&st->first_at_us);
	last = reset ? atomic_exchange(&st->last_at_us, 0) : atomic_load(&st->last_at_us);

	char first_s[24] = "null", last_s[24] = "null";
	if (first != 0)
		snprintf(first_s, sizeof first_s, "%lld", first);
	if (last != 0)
		snprintf(last_s, sizeof last_s, "%lld", last);
	snprintf(buf, sizeof buf,
		 "{\"requests\":%ld,\"verified\":%ld,\"unverified\":%ld,\"skipped\":%ld,"
		 "\"replied_2xx\":%ld,\"replied_other\":%ld,\"body_bytes\":%lld,"
		 "\"first_at_us\":%s,\"last_at_us\":%s,\"now_us\":%lld,"
		 "\"verifying\":%s,\"reset\":%s}",
		 requests, verified, unverified, skipped, ok, other, bytes, first_s, last_s,
		 (long long)mock_now_us(), srv->cfg.have_secret ? "true" : "false",
		 reset ? "true" : "false");
	return strdup(buf);
}

/* A JSON string of s; bytes that are not valid UTF-8 become '?'. */
static json_t *json_lossy_string(const char *s, size_t len)
{
	json_t *j = json_stringn(s, len);
	if (j != NULL)
		return j;
	char *copy = malloc(len + 1);
	if (copy == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++)
		copy[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
	copy[len] = '\0';
	j = json_stringn(copy, len);
	free(copy);
	return j;
}

/* Adds one request header to the object under its lowercase name; a repeated
 * header is joined with ", " as HTTP allows. */
enum MHD_Result mock_collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
				    const char *value)
{
	json_t *headers = cls;
	char name[256];
	size_t n = strlen(key);

	(void)kind;
	if (n >= sizeof name)
		return MHD_YES; /* longer names than any header we care about */
	for (size_t i = 0; i <= n; i++)
		name[i] = (char)tolower((unsigned char)key[i]);
	if (value == NULL)
		value = "";

	json_t *old = json_object_get(headers, name);
	json_t *val;
	if (old != NULL) {
		const char *prev = json_string_value(old);
		size_t plen = json_string_length(old), vlen = strlen(value);
		char *joined = malloc(plen + 2 + vlen + 1);
		if (joined == NULL)
			return MHD_YES;
		memcpy(joined, prev, plen);
		memcpy(joined + plen, ", ", 2);
		memcpy(joined + plen + 2, value, vlen + 1);
		val = json_lossy_string(joined, plen + 2 + vlen);
		free(joined);
	} else {
		val = json_lossy_string(value, strlen(value));
	}
	if (val != NULL)
		json_object_set_new(headers, name, val);
	return MHD_YES;
}

const char *mock_header_lookup(void *ctx, const char *name)
{
	return json_string_value(json_object_get(ctx, name));
}

static json_t *check_json(bool have, enum sign_check_state st)
{
	if (!have || st == SIGN_CHECK_ABSENT)
		return json_null();
	return json_boolean(st == SIGN_CHECK_PASS);
}

/* Appends the request to --record as one JSON line with a single write(), so
 * concurrent requests (and other writers of the file) never interleave. */
void mock_record_request(struct mock_server *srv, struct mock_request *req, const char *method,
			 const char *url, json_t *headers, int status, int verified,
			 const struct sign_check_result *res, const char *reason)
{
	bool have = srv->cfg.have_secret && !req->too_large;
	json_t *rec = json_object();
	char *line = NULL;

	if (rec == NULL)
		goto out;
	json_object_set_new(rec, "seq", json_integer(req->seq));
	json_object_set_new(rec, "at", json_integer(req->at_us / 1000));
	if (srv->cfg.record_us)
		json_object_set_new(rec, "at_us", json_integer(req->at_us));
	json_object_set_new(rec, "method", json_lossy_string(method, strlen(method)));
	json_object_set_new(rec, "path", json_lossy_string(url, strlen(url)));
	json_object_set_new(rec, "remote_addr", json_string(req->remote_addr));
	json_object_set(rec, "headers", headers);
	if (req->too_large) {
		json_object_set_new(rec, "body", json_null());
	} else {
		const char *data = req->body.len > 0 ? req->body.data : "";
		json_t *body = json_stringn(data, req->body.len);
		if (body != NULL) {
			json_object_set_new(rec, "body", body);
		} else {
			/* Not UTF-8, so not a JSON string: keep the exact bytes in base64. */
			char *b64 = b64_encode((const unsigned char *)data, req->body.len);
			json_object_set_new(rec, "body", json_null());
			json_object_set_new(rec, "body_base64", b64 != NULL ? json_string(b64)
									  : json_null());
			free(b64);
		}
	}
	json_object_set_new(rec, "status", json_integer(status));
	json_object_set_new(rec, "verified", verified < 0 ? json_null() : json_boolean(verified));
	json_t *checks = json_object();
	if (checks != NULL) {
		json_object_set_new(checks, "standard", check_json(have, res->standard));
		json_object_set_new(checks, "pixelpatrol", check_json(have, res->pixelpatrol));
		json_object_set_new(checks, "webhook_signature",
				    check_json(have, res->webhook_signature));
		json_object_set_new(rec, "checks", checks);
	}
	json_object_set_new(rec, "reason", reason != NULL ? json_string(reason) : json_null());

	line = json_dumps(rec, JSON_COMPACT);
	if (line == NULL) {
		log_error("mock record failed seq=%ld reason=json", req->seq);
		goto out;
	}
	size_t len = strlen(line);
	line[len] = '\n'; /* replaces the NUL; the write below is length-bounded */
	ssize_t n = write(srv->record_fd, line, len + 1);
	if (n < 0 || (size_t)n != len + 1)
		log_error("mock record failed seq=%ld reason=write errno=%d", req->seq,
			  n < 0 ? errno : 0);
out:
	free(line);
	json_decref(rec);
}
