/* api_ui: serves the webhook inspector (ui/, embedded by ui/embed.py) under
 * /ui/. The files need no key: the page asks for one and reads the API with
 * it. Every /ui response carries the security headers (a strict CSP, no
 * sniffing, no referrer), error responses included. */
#include "api_internal.h"

#include <string.h>

#include "ui_assets.h"

#define UI_CSP "default-src 'none'; script-src 'self'; style-src 'self'; " \
	       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; " \
	       "base-uri 'none'; form-action 'none'"

bool api_ui_path(const char *url)
{
	return strncmp(url, "/ui", 3) == 0 && (url[3] == '\0' || url[3] == '/');
}

void api_ui_headers(struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "Content-Security-Policy", UI_CSP);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
}

static const struct ui_asset *find_asset(const char *name)
{
	for (size_t i = 0; i < ui_assets_n; i++) {
		if (strcmp(ui_assets[i].name, name) == 0)
			return &ui_assets[i];
	}
	return NULL;
}

/* Sets r->raw to a response of the asset (or 304 when the client's
 * If-None-Match holds its ETag). The bytes are static: no copy. */
static void reply_asset(struct api_req *r, const struct ui_asset *as)
{
	const char *inm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
						      MHD_HTTP_HEADER_IF_NONE_MATCH);
	bool fresh = inm != NULL && strstr(inm, as->etag) != NULL;
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		fresh ? 0 : as->len, fresh ? NULL : (void *)as->data, MHD_RESPMEM_PERSISTENT);
	if (resp == NULL) {
		api_internal_error(r, "ui response");
		return;
	}
	if (!fresh)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, as->type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, as->etag);
	/* Revalidate every time (the names carry no version); the ETag makes
	 * that a 304 without a body. */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	r->raw = resp;
	r->status = fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK;
}

void api_ui_redirect(struct api_req *r)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL,
								    MHD_RESPMEM_PERSISTENT);
	if (resp == NULL) {
		api_internal_error(r, "ui redirect");
		return;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, "/ui/");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	r->raw = resp;
	r->status = MHD_HTTP_MOVED_PERMANENTLY;
}

void api_ui_index(struct api_req *r)
{
	const struct ui_asset *as = find_asset("index.html");
	if (as == NULL) {
		api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "this build has no inspector");
		return;
	}
	reply_asset(r, as);
}

void api_ui_file(struct api_req *r)
{
	const struct ui_asset *as = find_asset(r->id);
	if (as == NULL) {
		api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no such file");
		return;
	}
	reply_asset(r, as);
}
