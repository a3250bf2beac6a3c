/* verify: `hookd verify`, checks a captured request (a mock --record line, or
 * a headers file and a body file) against a secret with the same logic as
 * `hookd mock` (sign_check_request). Exit 0 verified, 1 not, 2 usage error. */
#include "verify.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli.h"
#include "flags.h"
#include "sign.h"
#include "util.h"

/* Largest input file read: a 10 MiB body JSON-escaped in a record line fits. */
#define VERIFY_MAX_FILE ((size_t)128 * 1024 * 1024)

struct verify_opts {
	const char *secret;
	const char *request;
	const char *headers;
	const char *body;
	int64_t tolerance_ms;
	int64_t tolerance_s;
	bool ignore_ts;
};

#define XSTR(x) STR(x)
#define STR(x) #x
#define OFF(f) offsetof(struct verify_opts, f)

static const struct flag_spec verify_opts_table[] = {
	{"secret", FLAG_STRING, NULL, 0, 0, OFF(secret),
	 "the endpoint's secret (whsec_...), or for an Ed25519 endpoint its public_key (whpk_...) "
	 "or secret (whsk_...)", NULL, NULL, "S", FLAG_SECRET},
	{"request", FLAG_STRING, NULL, 0, 0, OFF(request),
	 "a JSON object with \"headers\" (object) and \"body\" (string), e.g. one line of "
	 "`hookd mock --record`; - reads stdin", NULL, NULL, "FILE", 0},
	{"headers", FLAG_STRING, NULL, 0, 0, OFF(headers),
	 "\"Name: value\" lines (curl -D output works); - reads stdin", NULL, NULL, "FILE", 0},
	{"body", FLAG_STRING, NULL, 0, 0, OFF(body), "the exact body bytes; - reads stdin", NULL,
	 NULL, "FILE", 0},
	{"tolerance", FLAG_DURATION, XSTR(SIGN_TOLERANCE_S), 0, INT64_MAX, OFF(tolerance_ms),
	 "allowed clock difference for the timestamps (bare number: seconds)", NULL, NULL,
	 "SECONDS", 0},
	{"ignore-timestamp", FLAG_SWITCH, NULL, 0, 0, OFF(ignore_ts),
	 "do not check the timestamps' age", NULL, NULL, NULL, 0},
};

static const struct flag_set verify_flags = {
	.prog = "hookd verify",
	.usage = "usage: hookd verify --secret whsec_...|whpk_...\n"
		 "                    (--request FILE | --headers FILE --body FILE)\n"
		 "                    [--tolerance SECONDS] [--ignore-timestamp]\n\n"
		 "Checks every signature header of a captured request (webhook-signature,\n"
		 "X-PixelPatrol-Signature, X-Webhook-Signature) against the secret.\n\n",
	.footer = "\nExit 0 and `verified: <schemes>`, exit 1 and `not verified: <reason>`,\n"
		  "exit 2 on a usage error.\n",
	.specs = verify_opts_table,
	.n = sizeof verify_opts_table / sizeof verify_opts_table[0],
};

/* Returns 0 to run, 1 when --help was printed, 2 on a usage error (message printed). */
static int parse_flags(int argc, char **argv, struct verify_opts *o)
{
	memset(o, 0, sizeof *o);
	int rc = flags_parse(&verify_flags, argc, argv, 1, o);
	if (rc != 0)
		return rc == 1 ? 1 : 2;
	o->tolerance_s = o->tolerance_ms / 1000;
	if (o->secret == NULL) {
		fprintf(stderr, "hookd verify: --secret is required\n");
		return 2;
	}
	if ((o->request != NULL) == (o->headers != NULL || o->body != NULL) ||
	    (o->request == NULL && (o->headers == NULL || o->body == NULL))) {
		fprintf(stderr, "hookd verify: give either --request FILE "
				"or both --headers FILE and --body FILE\n");
		return 2;
	}
	if (o->headers != NULL && strcmp(o->headers, "-") == 0 && strcmp(o->body, "-") == 0) {
		fprintf(stderr, "hookd verify: --headers and --body cannot both read stdin\n");
		return 2;
	}
	return 0;
}

/* Reads a whole file ("-" = stdin) into b, up to VERIFY_MAX_FILE bytes.
 * Returns 0, or -1 with a message printed. */
static int read_file(const char *flag, const char *path, struct dynbuf *b)
{
	int rc = -1;
	bool is_stdin = strcmp(path, "-") == 0;
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
	char chunk[65536];
	size_t n;

	dynbuf_init(b, VERIFY_MAX_FILE);
	if (f == NULL) {
		fprintf(stderr, "hookd verify: %s: cannot open %s: %s\n", flag, path,
			strerror(errno));
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (dynbuf_append(b, chunk, n) != 0) {
			fprintf(stderr, "hookd verify: %s: %s is larger than %zu bytes\n", flag,
				path, VERIFY_MAX_FILE);
			goto out;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "hookd verify: %s: cannot read %s\n", flag, path);
		goto out;
	}
	rc = 0;
out:
	if (!is_stdin)
		fclose(f);
	if (rc != 0)
		dynbuf_free(b);
	return rc;
}

const char *verify_header_lookup(void *ctx, const char *name)
{
	const char *key;
	json_t *val;
	json_object_foreach((json_t *)ctx, key, val)
	{
		if (strcasecmp(key, name) == 0 && json_is_string(val))
			return json_string_value(val);
	}
	return NULL;
}

/* Sets obj[name] = value; a repeated header is joined with ", " as HTTP
 * does (and as mock records it). */
static void add_header(json_t *obj, const char *name, const char *value, size_t len)
{
	json_t *old = json_object_get(obj, name);
	json_t *s = NULL;

	if (old == NULL) {
		s = json_stringn_nocheck(value, len);
	} else {
		size_t olen = json_string_length(old);
		char *joined = malloc(olen + 2 + len);
		if (joined == NULL)
			return;
		memcpy(joined, json_string_value(old), olen);
		memcpy(joined + olen, ", ", 2);
		memcpy(joined + olen + 2, value, len);
		s = json_stringn_nocheck(joined, olen + 2 + len);
		free(joined);
	}
	if (s != NULL)
		json_object_set_new(obj, name, s);
}

json_t *verify_parse_header_lines(const char *text, size_t len)
{
	json_t *obj = json_object();
	const char *p = text, *end = text + len;

	if (obj == NULL)
		return NULL;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl != NULL ? nl : end;
		const char *line_end = eol;
		if (line_end > p && line_end[-1] == '\r')
			line_end--;
		size_t llen = (size_t)(line_end - p);
		const char *colon = memchr(p, ':', llen);

		if (llen >= 5 && memcmp(p, "HTTP/", 5) == 0) {
			json_object_clear(obj);
		} else if (colon != NULL && colon > p) {
			char name[VERIFY_HEADER_NAME_MAX + 1];
			size_t nlen = (size_t)(colon - p);
			const char *v = colon + 1, *vend = line_end;
			while (v < vend && (*v == ' ' || *v == '\t'))
				v++;
			while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
				vend--;
			if (nlen < sizeof name && memchr(p, ' ', nlen) == NULL) {
				for (size_t i = 0; i < nlen; i++)
					name[i] = (char)tolower((unsigned char)p[i]);
				name[nlen] = '\0';
				add_header(obj, name, v, (size_t)(vend - v));
			}
		}
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return obj;
}

int verify_request_parse(const char *text, size_t len, struct verify_request *out, char *why,
			 size_t whylen)
{
	json_error_t jerr;

	memset(out, 0, sizeof *out);
	out->root = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
	if (out->root == NULL || !json_is_object(out->root)) {
		snprintf(why, whylen, "is not a JSON object (%s)",
			 out->root == NULL ? jerr.text : "wrong type");
		json_decref(out->root);
		out->root = NULL;
		return -1;
	}
	out->headers = json_object_get(out->root, "headers");
	if (!json_is_object(out->headers)) {
		snprintf(why, whylen, "\"headers\" must be an object");
		return -1;
	}
	json_t *jb = json_object_get(out->root, "body");
	json_t *jb64 = json_object_get(out->root, "body_base64");
	if (json_is_string(jb)) {
		out->body = json_string_value(jb);
		out->body_len = json_string_length(jb);
	} else if (json_is_string(jb64)) {
		/* mock records a non-UTF-8 body in base64. */
		if (b64_decode(json_string_value(jb64), &out->decoded, &out->body_len) != 0) {
			snprintf(why, whylen, "\"body_base64\" is not base64");
			return -1;
		}
		out->body = (const char *)out->decoded;
	} else {
		snprintf(why, whylen, "\"body\" must be a string");
		return -1;
	}
	return 0;
}

void verify_request_free(struct verify_request *r)
{
	json_decref(r->root);
	free(r->decoded);
	memset(r, 0, sizeof *r);
}

int verify_main(int argc, char **argv)
{
	struct verify_opts o;
	struct sign_key key;
	struct dynbuf req_buf, hdr_buf, body_buf;
	struct verify_request req = {0};
	json_t *headers = NULL;
	const char *body = "";
	size_t body_len = 0;
	int rc = 2;

	dynbuf_init(&req_buf, 0);
	dynbuf_init(&hdr_buf, 0);
	dynbuf_init(&body_buf, 0);
	memset(&key, 0, sizeof key);

	int pf = parse_flags(argc, argv, &o);
	if (pf == 1)
		return 0;
	if (pf != 0)
		return pf;

	char err[128];
	if (sign_key_init(&key, o.secret, err, sizeof err) != 0) {
		fprintf(stderr, "hookd verify: --secret: %s\n", err);
		goto out;
	}

	if (o.request != NULL) {
		char why[256];
		if (read_file("--request", o.request, &req_buf) != 0)
			goto out;
		const char *text = req_buf.len > 0 ? req_buf.data : "";
		if (verify_request_parse(text, req_buf.len, &req, why, sizeof why) != 0) {
			/* "FILE is not a JSON object (…)", else the field's complaint. */
			bool name_file = req.root == NULL;
			fprintf(stderr, "hookd verify: --request: %s%s%s\n",
				name_file ? o.request : "", name_file ? " " : "", why);
			goto out;
		}
		headers = json_incref(req.headers);
		body = req.body;
		body_len = req.body_len;
	} else {
		if (read_file("--headers", o.headers, &hdr_buf) != 0 ||
		    read_file("--body", o.body, &body_buf) != 0)
			goto out;
		headers = verify_parse_header_lines(hdr_buf.len > 0 ? hdr_buf.data : "",
						    hdr_buf.len);
		if (headers == NULL) {
			fprintf(stderr, "hookd verify: out of memory\n");
			goto out;
		}
		body = body_buf.len > 0 ? body_buf.data : "";
		body_len = body_buf.len;
	}

	struct sign_headers h;
	struct sign_check_result res;
	sign_headers_collect(&h, verify_header_lookup, headers);
	if (sign_check_request(&key, &h, body, body_len, now_ms(), o.tolerance_s, o.ignore_ts,
			       &res)) {
		const char *names[3];
		int n = 0;
		if (res.standard == SIGN_CHECK_PASS)
			names[n++] = "standard";
		if (res.pixelpatrol == SIGN_CHECK_PASS)
			names[n++] = "pixelpatrol";
		if (res.webhook_signature == SIGN_CHECK_PASS)
			names[n++] = "webhook_signature";
		printf("verified:");
		for (int i = 0; i < n; i++)
			printf(" %s%s", names[i], i + 1 < n ? "," : "");
		printf("\n");
		rc = 0;
	} else {
		printf("not verified: %s\n", res.reason);
		rc = 1;
	}
out:
	json_decref(headers);
	verify_request_free(&req);
	dynbuf_free(&req_buf);
	dynbuf_free(&hdr_buf);
	dynbuf_free(&body_buf);
	OPENSSL_cleanse(&key, sizeof key);
	return rc;
}
