/* client: the HTTP side of hookd's API client (client.h): server and key
 * resolution, one libcurl easy handle, bounded bodies, the API's errors. */
#include "client.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"

void client_default_api(char *out, size_t outlen)
{
	const char *listen = getenv("HOOKD_LISTEN");
	const char *colon = listen ? strrchr(listen, ':') : NULL;
	if (!colon || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
		snprintf(out, outlen, "http://127.0.0.1:%s", CLIENT_DEFAULT_PORT);
		return;
	}
	int hlen = (int)(colon - listen);
	bool any4 = hlen == 0 || (hlen == 7 && strncmp(listen, "0.0.0.0", 7) == 0);
	bool any6 = hlen == 4 && strncmp(listen, "[::]", 4) == 0;
	if (any4)
		snprintf(out, outlen, "http://127.0.0.1:%s", colon + 1);
	else if (any6)
		snprintf(out, outlen, "http://[::1]:%s", colon + 1);
	else
		snprintf(out, outlen, "http://%.*s:%s", hlen, listen, colon + 1);
}

char *client_default_key_file(void)
{
	const char *file = getenv("HOOKD_API_KEY_FILE");
	if (file && *file)
		return strdup(file);
	const char *db = getenv("HOOKD_DB");
	char *path = config_sqlite_path(db && *db ? db : CLIENT_DEFAULT_DB);
	if (!path || !*path) {
		free(path);
		return NULL;
	}
	size_t len = strlen(path) + sizeof ".api-key";
	char *out = malloc(len);
	if (out)
		snprintf(out, len, "%s.api-key", path);
	free(path);
	return out;
}

/* Reads the first line of a key file into key (CLIENT_KEY_MAX + 1 bytes).
 * Returns 0, or -1 with why filled. */
static int read_key_file(const char *path, char *key, char *why, size_t whylen)
{
	char buf[CLIENT_KEY_MAX + 2];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "cannot read the key file %s: %s", path, strerror(errno));
		return -1;
	}
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	size_t len = strlen(buf);
	if (len == 0 || len > CLIENT_KEY_MAX) {
		snprintf(why, whylen, "the key file %s holds no key (one line of 1..%d characters)",
			 path, CLIENT_KEY_MAX);
		memset(buf, 0, sizeof buf);
		return -1;
	}
	memcpy(key, buf, len + 1);
	memset(buf, 0, sizeof buf);
	return 0;
}

/* The key: --key, --key-file, $HOOKD_KEY, $HOOKD_KEY_FILE, the default key
 * file, in that order. Returns 0, or -1 after a message. */
static int resolve_key(const char *prog, const struct client_conf *conf, char *key)
{
	char why[512];
	const char *env_key = getenv("HOOKD_KEY"), *env_file = getenv("HOOKD_KEY_FILE");
	const char *direct = conf->key ? conf->key : NULL;
	const char *file = conf->key_file;
	if (!direct && !file) {
		direct = env_key && *env_key ? env_key : NULL;
		file = !direct && env_file && *env_file ? env_file : NULL;
	}
	if (direct) {
		if (strlen(direct) > CLIENT_KEY_MAX || strpbrk(direct, "\r\n")) {
			fprintf(stderr, "%s: the API key must be one line of 1..%d characters\n", prog,
				CLIENT_KEY_MAX);
			return -1;
		}
		snprintf(key, CLIENT_KEY_MAX + 1, "%s", direct);
		return 0;
	}
	if (file) {
		if (read_key_file(file, key, why, sizeof why) == 0)
			return 0;
		fprintf(stderr, "%s: %s\n", prog, why);
		return -1;
	}
	char *def = client_default_key_file();
	int rc = def ? read_key_file(def, key, why, sizeof why) : -1;
	if (rc != 0)
		fprintf(stderr, "%s: no API key: give --key KEY, --key-file PATH or set HOOKD_KEY "
				"(no readable key file at %s, where hookd serve keeps its key)\n",
			prog, def ? def : "<db>.api-key");
	free(def);
	return rc;
}

/* The base URL from --api, $HOOKD_API or the default, without trailing '/'.
 * Returns 0, or -1 after a message. */
static int resolve_base(struct client *c, const struct client_conf *conf)
{
	char def[300];
	const char *env = getenv("HOOKD_API");
	const char *api = conf->api ? conf->api : env && *env ? env : NULL;
	if (!api) {
		client_default_api(def, sizeof def);
		api = def;
	}
	bool http = strncmp(api, "http://", 7) == 0, https = strncmp(api, "https://", 8) == 0;
	size_t len = strlen(api);
	if ((!http && !https) || len > 2048 || len <= (size_t)(http ? 7 : 8) ||
	    strpbrk(api, " \t\r\n?#")) {
		fprintf(stderr, "%s: the API URL must be http://HOST:PORT or https://HOST:PORT "
				"(%s)\n", c->prog, conf->api ? "--api" : "HOOKD_API");
		return -1;
	}
	while (len > 0 && api[len - 1] == '/')
		len--;
	c->base = strndup(api, len);
	return c->base ? 0 : -1;
}

int client_open(struct client *c, const char *prog, const struct client_conf *conf)
{
	char key[CLIENT_KEY_MAX + 1] = "";
	memset(c, 0, sizeof *c);
	c->prog = prog;
	if (resolve_base(c, conf) != 0 || resolve_key(prog, conf, key) != 0)
		return CLIENT_EXIT_USAGE;
	size_t len = strlen(key) + sizeof "Authorization: Bearer ";
	c->auth = malloc(len);
	if (c->auth)
		snprintf(c->auth, len, "Authorization: Bearer %s", key);
	memset(key, 0, sizeof key);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !c->auth ||
	    !(c->curl = curl_easy_init())) {
		fprintf(stderr, "%s: cannot start libcurl (out of memory?)\n", prog);
		return CLIENT_EXIT_API;
	}
	return CLIENT_EXIT_OK;
}

void client_close(struct client *c)
{
	if (c->curl) {
		curl_easy_cleanup(c->curl);
		curl_global_cleanup();
	}
	if (c->auth) {
		memset(c->auth, 0, strlen(c->auth));
		free(c->auth);
	}
	free(c->base);
	c->curl = NULL;
	c->auth = NULL;
	c->base = NULL;
}

void client_resp_free(struct client_resp *r)
{
	dynbuf_free(&r->body);
	json_decref(r->json);
	r->json = NULL;
	r->status = 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct dynbuf *b = arg;
	return dynbuf_append(b, data, size * n) == 0 ? size * n : 0;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt, (void)dn, (void)ut, (void)un;
	volatile sig_atomic_t *stop = arg;
	return stop && *stop ? 1 : 0;
}

/* The API's error as "code: message (field F, HTTP S)", or the start of a
 * body that is not the API's JSON. */
static void api_error_text(const struct client_resp *r, char *err, size_t errlen)
{
	json_t *e = r->json ? json_object_get(r->json, "error") : NULL;
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	const char *field = json_string_value(json_object_get(e, "field"));
	if (msg) {
		snprintf(err, errlen, "%s%s%s%s%s (HTTP %ld)", code ? code : "", code ? ": " : "", msg,
			 field ? ", field " : "", field ? field : "", r->status);
		return;
	}
	char snippet[161] = "";
	size_t j = 0;
	for (size_t i = 0; i < r->body.len && j + 1 < sizeof snippet; i++) {
		unsigned char ch = (unsigned char)r->body.data[i];
		if (ch == '\n' || ch == '\r')
			break;
		snippet[j++] = isprint(ch) ? (char)ch : '?';
	}
	snippet[j] = 0;
	snprintf(err, errlen, "HTTP %ld%s%s", r->status, j ? ": " : "", snippet);
}

/* Sets up the handle for one request; headers are the caller's to free. */
static struct curl_slist *prepare(struct client *c, const char *method, const char *url,
				  const char *body, struct client_resp *resp)
{
	CURL *e = c->curl;
	curl_easy_reset(e);
	struct curl_slist *h = NULL, *t;
	const char *hdrs[] = {c->auth, "Accept: application/json", "Expect:",
			      body ? "Content-Type: application/json" : "Content-Type:",
			      c->extra_header};
	for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0] && hdrs[i]; i++) {
		if (!(t = curl_slist_append(h, hdrs[i]))) {
			curl_slist_free_all(h);
			return NULL;
		}
		h = t;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CLIENT_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, CLIENT_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "hookd/" HOOKD_VERSION);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &resp->body);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, c->stop);
	if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)(body ? strlen(body) : 0));
	}
	return h;
}

/* Why a transfer failed, naming the URL. */
static void net_error_text(const struct client *c, CURLcode cc, char *err, size_t errlen)
{
	if (cc == CURLE_WRITE_ERROR) /* only on_body fails a write: past the bound */
		snprintf(err, errlen, "the response from %s is larger than %u MiB", c->base,
			 CLIENT_BODY_MAX >> 20);
	else if (cc == CURLE_COULDNT_CONNECT)
		snprintf(err, errlen, "cannot connect to %s (connection refused or unreachable: is "
				      "hookd serve running there?)", c->base);
	else if (cc == CURLE_OPERATION_TIMEDOUT)
		snprintf(err, errlen, "no answer from %s in time (%ld s to connect, %ld s a request)",
			 c->base, CLIENT_CONNECT_TIMEOUT_MS / 1000, CLIENT_TIMEOUT_MS / 1000);
	else
		snprintf(err, errlen, "request to %s failed: %s", c->base, curl_easy_strerror(cc));
}

enum client_call_rc client_send(struct client *c, const char *method, const char *path,
				const char *body, struct client_resp *resp, char *err,
				size_t errlen)
{
	memset(resp, 0, sizeof *resp);
	dynbuf_init(&resp->body, CLIENT_BODY_MAX);
	char *url = malloc(strlen(c->base) + strlen(path) + 1);
	struct curl_slist *h = NULL;
	enum client_call_rc rc = CLIENT_CALL_NET;
	snprintf(err, errlen, "out of memory");
	if (!url)
		goto out;
	sprintf(url, "%s%s", c->base, path);
	if (!(h = prepare(c, method, url, body, resp)))
		goto out;
	CURLcode cc = curl_easy_perform(c->curl);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	if (cc == CURLE_ABORTED_BY_CALLBACK && c->stop && *c->stop) {
		rc = CLIENT_CALL_STOPPED;
		goto out;
	}
	if (cc != CURLE_OK) {
		net_error_text(c, cc, err, errlen);
		goto out;
	}
	if (resp->body.len > 0)
		resp->json = json_loadb(resp->body.data, resp->body.len, JSON_DECODE_ANY, NULL);
	if (resp->status >= 200 && resp->status < 300) {
		rc = CLIENT_CALL_OK;
		*err = 0;
	} else {
		api_error_text(resp, err, errlen);
		rc = CLIENT_CALL_HTTP;
	}
out:
	curl_slist_free_all(h);
	free(url);
	return rc;
}

int client_call(struct client *c, const char *method, const char *path, const char *body,
		struct client_resp *resp)
{
	char err[1024];
	enum client_call_rc rc = client_send(c, method, path, body, resp, err, sizeof err);
	if (rc == CLIENT_CALL_OK)
		return CLIENT_EXIT_OK;
	if (rc == CLIENT_CALL_STOPPED)
		fprintf(stderr, "%s: interrupted\n", c->prog);
	else
		fprintf(stderr, "%s: %s\n", c->prog, err);
	return CLIENT_EXIT_API;
}

int client_query_add(struct dynbuf *path, const char *name, const char *value)
{
	if (!value)
		return 0;
	char *esc = curl_easy_escape(NULL, value, 0);
	if (!esc)
		return -1;
	const char *sep = path->len > 0 && memchr(path->data, '?', path->len) ? "&" : "?";
	int rc = dynbuf_append(path, sep, 1) || dynbuf_append(path, name, strlen(name)) ||
			 dynbuf_append(path, "=", 1) || dynbuf_append(path, esc, strlen(esc))
		 ? -1
		 : 0;
	curl_free(esc);
	return rc;
}

int client_path_add_id(struct dynbuf *path, const char *id)
{
	char *esc = curl_easy_escape(NULL, id, 0);
	if (!esc)
		return -1;
	int rc = dynbuf_append(path, esc, strlen(esc));
	curl_free(esc);
	return rc;
}
