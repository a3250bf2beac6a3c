/* metrics_prom: the Prometheus text exposition (format 0.0.4) of the
 * metrics, for GET /metrics. */
#ifndef HOOKD_METRICS_PROM_H
#define HOOKD_METRICS_PROM_H

#include <stdbool.h>
#include <stddef.h>

#include "dispatch.h"
#include "metrics.h"
#include "store.h"

/* What the exposition reads besides the metrics. */
struct metrics_prom_src {
	struct metrics *m;
	struct dispatch *d;       /* circuit states; may be NULL */
	struct queue_depth *q;    /* queue figures; may be NULL (zeros) */
	/* Which endpoints cannot send (arg: d); NULL = all can. */
	bool (*blocked)(const char *endpoint_id, void *d);
	size_t n_routes;          /* route indexes 0..n_routes (the last: unmatched) */
	bool (*route_label)(size_t i, char *buf, size_t len);
	long open_connections;    /* API connections open now; < 0 = unknown */
	/* API connections refused or cut off, by reason: n_conn_reasons label
	 * values and counts (0: the family is left out). */
	size_t n_conn_reasons;
	const char *const *conn_reasons;
	const uint64_t *conn_refused;
	/* The database's size (store_size); a figure < 0 is left out, and so
	 * is the whole family when store_size is NULL. */
	const struct store_size *store_size;
};

/* The exposition text (malloc'd, *len bytes), or NULL if out of memory. */
char *metrics_prom_render(const struct metrics_prom_src *src, size_t *len);

/* The Content-Type of the exposition. */
#define METRICS_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
