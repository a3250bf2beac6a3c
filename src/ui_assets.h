/* ui_assets: the inspector's files (ui/), embedded at build time by
 * ui/embed.py into a generated ui_assets.c. Read-only data; api_ui.c serves
 * them under /ui/. */
#ifndef HOOKD_UI_ASSETS_H
#define HOOKD_UI_ASSETS_H

#include <stddef.h>

struct ui_asset {
	const char *name;          /* base name: "index.html", "app.js" */
	const char *type;          /* Content-Type */
	const unsigned char *data; /* the file's bytes (static) */
	size_t len;
	const char *etag;          /* strong ETag, quoted */
};

extern const struct ui_asset ui_assets[];
extern const size_t ui_assets_n;

#endif
