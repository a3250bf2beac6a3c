/* api_stats: GET /v1/stats (docs/api.md#get-v1stats), the health figures of a window
 * (5m, 1h or 24h) from the in-memory metrics, overall or for one endpoint,
 * with the endpoints from the endpoint cache: no table is read (the store's
 * size is the file sizes and two header fields, store_size). The JSON
 * contract is in docs/api.md. */
#include "api_internal.h"

#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "epcache.h"
#include "queue_depth.h"
#include "store_health.h"

/* A figure, or null when there is nothing to measure (ms from us). */
static json_t *ms_or_null(double us)
{
	return us < 0 ? json_null() : json_real(us / 1000.0);
}

static json_t *ratio_or_null(uint64_t part, uint64_t whole)
{
	return whole == 0 ? json_null() : json_real((double)part / (double)whole);
}

static json_t *count_or_null(bool known, uint64_t v)
{
	return known ? json_integer((json_int_t)v) : json_null();
}

static json_t *latency_json(const struct metrics_hsnap *h)
{
	return json_pack("{s:I, s:o, s:o, s:o, s:o}", "count", (json_int_t)h->count, "avg",
			 ms_or_null(metrics_hsnap_avg(h)), "p50",
			 ms_or_null(metrics_hsnap_quantile(h, 0.50)), "p95",
			 ms_or_null(metrics_hsnap_quantile(h, 0.95)), "p99",
			 ms_or_null(metrics_hsnap_quantile(h, 0.99)));
}

static json_t *by_outcome_json(const struct metrics_view *v)
{
	json_t *o = json_object();
	for (size_t i = 0; o != NULL && i < METRICS_N_OUTCOMES; i++) {
		/* "other" (1xx, the unforeseen) only shows when it happened. */
		if (i == METRICS_OTHER && v->outcome[i] == 0)
			continue;
		json_object_set_new(o, metrics_outcome_name((enum metrics_outcome)i),
				    json_integer((json_int_t)v->outcome[i]));
	}
	return o;
}

/* events, deliveries, attempts and latency of v; known: false for an
 * endpoint without a series of its own (its figures are null). */
static int figures_json(json_t *body, const struct metrics_view *v, bool overall, bool known)
{
	uint64_t ok = v->outcome[METRICS_2XX], final = v->delivered + v->dead;
	int rc = json_object_set_new(body, "events",
				     json_pack("{s:o}", "ingested", count_or_null(overall, v->events)));
	rc |= json_object_set_new(
		body, "deliveries",
		json_pack("{s:o, s:o, s:o, s:o, s:o}", "created", count_or_null(known, v->created),
			  "succeeded", count_or_null(known, v->delivered), "dead",
			  count_or_null(known, v->dead), "success_rate",
			  ratio_or_null(v->delivered, final), "error_rate",
			  ratio_or_null(v->dead, final)));
	rc |= json_object_set_new(
		body, "attempts",
		json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "total", count_or_null(known, v->attempts),
			  "succeeded", count_or_null(known, ok), "failed",
			  count_or_null(known, v->attempts - ok), "success_rate",
			  ratio_or_null(ok, v->attempts), "error_rate",
			  ratio_or_null(v->attempts - ok, v->attempts), "by_outcome",
			  known ? by_outcome_json(v) : json_null()));
	rc |= json_object_set_new(body, "latency",
				  json_pack("{s:o, s:o}", "attempt_ms", latency_json(&v->attempt_us),
					    "ingest_to_delivered_ms", latency_json(&v->i2d_us)));
	return rc;
}

static json_t *time_or_null(int64_t ms)
{
	char t[32];
	if (ms <= 0)
		return json_null();
	rfc3339_format(ms, t);
	return json_string(t);
}

static json_t *series_json(const struct metrics_point *pts, size_t n, enum metrics_window w,
			   bool overall)
{
	json_t *points = json_array();
	for (size_t i = 0; points != NULL && i < n; i++) {
		const struct metrics_point *p = &pts[i];
		json_array_append_new(
			points,
			json_pack("{s:o, s:o, s:I, s:I, s:I, s:I, s:o, s:o}", "t", time_or_null(p->t),
				  "events", count_or_null(overall, p->events), "deliveries",
				  (json_int_t)p->created, "attempts", (json_int_t)p->attempts,
				  "succeeded", (json_int_t)p->succeeded, "failed",
				  (json_int_t)p->failed, "attempt_p50_ms", ms_or_null(p->p50_us),
				  "attempt_p95_ms", ms_or_null(p->p95_us)));
	}
	return json_pack("{s:i, s:o}", "step_seconds", metrics_window_step(w), "points", points);
}

struct ep_list {
	struct api *a;
	enum metrics_window w;
	int64_t now;
	const char *only;        /* one endpoint's id, or NULL for all */
	struct metrics_view *v;  /* scratch */
};

/* One endpoint's state and window figures. */
static json_t *endpoint_json(struct ep_list *l, const struct ep_entry *e)
{
	struct dispatch_endpoint_status st;
	dispatch_endpoint_status(l->a->dispatch, e->id, &st);
	const struct metrics_ep *s = metrics_ep_find(l->a->cfg.metrics, e->id);
	int64_t from;
	if (s != NULL)
		metrics_read(l->a->cfg.metrics, s, l->w, l->now, l->v, NULL, &from);
	else
		memset(l->v, 0, sizeof *l->v);
	uint64_t ok = l->v->outcome[METRICS_2XX];
	struct queue_figures q;
	queue_depth_read(l->a->cfg.queue, e->id, l->now, dispatch_endpoint_blocked, l->a->dispatch,
			 &q);
	return json_pack("{s:s, s:s, s:b, s:o, s:s, s:i, s:o, s:o, s:o, s:I, s:I}", "id", e->id,
			 "url", e->url ? e->url : "", "enabled", e->enabled, "paused_until",
			 time_or_null(st.paused_until), "circuit", st.circuit, "in_flight",
			 st.in_flight, "attempts", count_or_null(s != NULL, l->v->attempts),
			 "success_rate", ratio_or_null(ok, l->v->attempts), "attempt_p95_ms",
			 ms_or_null(metrics_hsnap_quantile(&l->v->attempt_us, 0.95)), "pending",
			 (json_int_t)q.pending, "dead", (json_int_t)q.dead);
}

/* The endpoints array from the endpoint cache (every endpoint, ordered by
 * id, or only l->only); NULL if out of memory. */
static json_t *endpoints_json(struct ep_list *l)
{
	size_t n = 0;
	struct ep_entry **all = epcache_all(l->a->cache, &n);
	json_t *items = json_array();
	l->v = malloc(sizeof *l->v);
	for (size_t i = 0; i < n; i++) {
		if (items != NULL && l->v != NULL &&
		    (l->only == NULL || strcmp(l->only, all[i]->id) == 0) &&
		    json_array_append_new(items, endpoint_json(l, all[i])) != 0) {
			json_decref(items);
			items = NULL;
		}
		ep_entry_release(all[i]);
	}
	free(all);
	if (l->v == NULL) {
		json_decref(items);
		items = NULL;
	}
	free(l->v);
	return items;
}

/* Reads window and endpoint_id (api.c refused any other parameter);
 * replies (400/404) and returns -1 if bad. */
static int stats_args(struct api_req *r, enum metrics_window *w, const char **only)
{
	const char *win = api_arg(r, "window");
	if (win == NULL || strcmp(win, "1h") == 0)
		*w = METRICS_1H;
	else if (strcmp(win, "5m") == 0)
		*w = METRICS_5M;
	else if (strcmp(win, "24h") == 0)
		*w = METRICS_24H;
	else {
		api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_field", "window",
			  "window must be 5m, 1h or 24h");
		return -1;
	}
	*only = api_arg(r, "endpoint_id");
	struct ep_entry *e = *only != NULL ? epcache_get(r->api->cache, *only) : NULL;
	if (*only != NULL && e == NULL) {
		api_error(r, MHD_HTTP_NOT_FOUND, "not_found", "endpoint_id", "no such endpoint");
		return -1;
	}
	ep_entry_release(e);
	return 0;
}

static const char *window_name(enum metrics_window w)
{
	return w == METRICS_5M ? "5m" : w == METRICS_1H ? "1h" : "24h";
}

static json_t *queue_json(struct api *a, const char *only)
{
	struct metrics_totals t;
	struct dispatch_endpoint_status st;
	struct queue_figures q;
	metrics_totals(a->cfg.metrics, &t);
	if (only != NULL)
		dispatch_endpoint_status(a->dispatch, only, &st);
	queue_depth_read(a->cfg.queue, only, now_ms(), dispatch_endpoint_blocked, a->dispatch, &q);
	return json_pack("{s:I, s:I, s:I, s:I, s:i, s:I, s:f}", "pending", (json_int_t)q.pending,
			 "due", (json_int_t)q.due, "scheduled", (json_int_t)q.scheduled, "waiting",
			 (json_int_t)q.waiting, "in_flight", only != NULL ? st.in_flight : t.in_flight,
			 "dead", (json_int_t)q.dead, "oldest_pending_age_seconds",
			 q.oldest_pending_age_s);
}

void api_store_size(struct api *a, struct store_size *out)
{
	struct store *st = api_store_get(a);
	out->file_bytes = out->wal_bytes = out->free_bytes = -1;
	if (st == NULL)
		return;
	store_size(st, out);
	api_store_put(a, st);
}

static json_t *bytes_or_null(int64_t v)
{
	return v < 0 ? json_null() : json_integer((json_int_t)v);
}

/* The store's health: {"status": "ok"|"degraded"|"failing", "reason":
 * text or null, "since": time or null, "conditions": [names], "size":
 * {"file_bytes", "wal_bytes", "free_bytes"}}. */
/* This node (docs/scaling.md): its id and how many endpoints it owns (null
 * on a single node, which delivers every endpoint). */
static json_t *node_json(struct api *a)
{
	long owned = dispatch_owned_count(a->dispatch);
	return json_pack("{s:s, s:o}", "id", a->cfg.node_id != NULL ? a->cfg.node_id : "",
			 "endpoints_owned", owned < 0 ? json_null() : json_integer(owned));
}

static json_t *store_json(struct api *a)
{
	struct store_health *h = a->cfg.health;
	struct store_size sz;
	api_store_size(a, &sz);
	struct store_health_view hv;
	store_health_read(h, &hv);
	json_t *conds = json_array();
	for (int c = 0; conds != NULL && c < STORE_COND_COUNT; c++)
		if (hv.conds & (1u << c))
			json_array_append_new(conds, json_string(store_cond_name((enum store_cond)c)));
	return json_pack("{s:s, s:o, s:o, s:o, s:{s:o, s:o, s:o}}", "status",
			 store_health_level_name(hv.level), "reason",
			 hv.level == STORE_HEALTH_OK ? json_null() : json_string(hv.reason), "since",
			 hv.since_ms > 0 ? time_or_null(hv.since_ms) : json_null(), "conditions",
			 conds, "size", "file_bytes", bytes_or_null(sz.file_bytes), "wal_bytes",
			 bytes_or_null(sz.wal_bytes), "free_bytes", bytes_or_null(sz.free_bytes));
}

void api_stats(struct api_req *r)
{
	struct metrics *m = r->api->cfg.metrics;
	enum metrics_window w;
	const char *only;
	if (m == NULL) {
		api_error(r, MHD_HTTP_NOT_FOUND, "metrics_disabled", NULL,
			  "metrics are off (--metrics off)");
		return;
	}
	if (stats_args(r, &w, &only) != 0)
		return;
	int64_t now = now_ms(), from;
	size_t np = metrics_window_points(w);
	struct metrics_view *v = malloc(sizeof *v);
	struct metrics_point *pts = calloc(np, sizeof *pts);
	const struct metrics_ep *s = only != NULL ? metrics_ep_find(m, only) : NULL;
	struct ep_list l = {.a = r->api, .w = w, .now = now, .only = only};
	json_t *body = NULL;
	if (v == NULL || pts == NULL)
		goto out;
	metrics_read(m, s, w, now, v, pts, &from);
	if (only != NULL && s == NULL) {
		/* Past --metrics-max-endpoints: no figures of its own. */
		memset(v, 0, sizeof *v);
		memset(pts, 0, np * sizeof *pts);
		for (size_t i = 0; i < np; i++) {
			pts[i].t = from + (int64_t)i * metrics_window_step(w) * 1000;
			pts[i].p50_us = pts[i].p95_us = -1;
		}
	}
	body = json_pack("{s:s, s:i, s:o, s:o, s:o, s:o}", "window", window_name(w),
			 "window_seconds", metrics_window_seconds(w), "from", time_or_null(from),
			 "to", time_or_null(now), "started_at", time_or_null(metrics_started_ms(m)),
			 "endpoint_id", only ? json_string(only) : json_null());
	if (body == NULL || figures_json(body, v, only == NULL, only == NULL || s != NULL) != 0 ||
	    json_object_set_new(body, "queue", queue_json(r->api, only)) != 0 ||
	    json_object_set_new(body, "store", store_json(r->api)) != 0 ||
	    json_object_set_new(body, "node", node_json(r->api)) != 0 ||
	    json_object_set_new(body, "endpoints", endpoints_json(&l)) != 0 ||
	    json_object_set_new(body, "series", series_json(pts, np, w, only == NULL)) != 0) {
		json_decref(body);
		body = NULL;
	}
out:
	free(v);
	free(pts);
	if (body == NULL)
		api_internal_error(r, "stats");
	else
		api_reply(r, MHD_HTTP_OK, body);
}
