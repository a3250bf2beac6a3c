/* store: picks the backend from the database URL and forwards every call
 * through its function table (store_backend.h). Nothing here knows SQL. */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_backend.h"
#include "store_health.h"
#include "util.h"

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Picks the backend for url and the target it gets; -1 with a reason. */
static int pick_backend(const char *url, const struct store_backend **be, const char **target,
			char *err, size_t errlen)
{
	if (!url || !*url) {
		snprintf(err, errlen, "empty database URL");
		return -1;
	}
	if (has_prefix(url, "postgres://") || has_prefix(url, "postgresql://")) {
		*be = &store_backend_pg;
		*target = url; /* libpq parses the whole URL */
		return 0;
	}
	if (has_prefix(url, "sqlite:")) {
		*be = &store_backend_sqlite;
		*target = url + strlen("sqlite:");
	} else if (strstr(url, "://")) {
		/* Some other scheme: refuse it rather than create a file named
		 * "mysql://…" next to the binary. */
		snprintf(err, errlen, "unsupported database URL scheme (use sqlite:PATH or "
				      "postgres://...)");
		return -1;
	} else {
		*be = &store_backend_sqlite;
		*target = url;
	}
	if (!**target) {
		snprintf(err, errlen, "empty database path");
		return -1;
	}
	return 0;
}

/* store_set_sync's and store_set_health's choices: written once before
 * serve's threads start, read by every open and by the backends. */
static enum store_sync store_sync_mode = STORE_SYNC_FULL;
static struct store_health *store_health_tracker;

void store_set_sync(enum store_sync mode) { store_sync_mode = mode; }
static char store_node_id[STORE_NODE_ID_MAX + 1];
void store_set_node_id(const char *node_id)
{
	snprintf(store_node_id, sizeof store_node_id, "%s", node_id ? node_id : "");
}
void store_set_health(struct store_health *h) { store_health_tracker = h; }
struct store_health *store_health_current(void) { return store_health_tracker; }

static int open_as(const char *url, bool writer, struct store **out, char *err, size_t errlen)
{
	const struct store_backend *be = NULL;
	const char *target = NULL;
	struct store *st = NULL;

	*out = NULL;
	if (pick_backend(url, &be, &target, err, errlen) != 0)
		return STORE_ERROR;
	st = calloc(1, sizeof *st);
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return STORE_ERROR;
	}
	st->be = be;
	struct store_open_opts opts = {
		.sync = store_sync_mode, .node_id = store_node_id, .writer = writer};
	if (be->open(target, &opts, &st->conn, err, errlen) != STORE_OK) {
		free(st);
		return STORE_ERROR;
	}
	*out = st;
	return STORE_OK;
}

int store_open(const char *url, struct store **out, char *err, size_t errlen)
{
	return open_as(url, false, out, err, errlen);
}

int store_open_writer(const char *url, struct store **out, char *err, size_t errlen)
{
	return open_as(url, true, out, err, errlen);
}

int store_check(const char *url, char *err, size_t errlen)
{
	const struct store_backend *be = NULL;
	const char *target = NULL;
	if (pick_backend(url, &be, &target, err, errlen) != 0)
		return STORE_ERROR;
	return be->check(target, err, errlen);
}

int store_verify(const char *url, bool full, char *err, size_t errlen)
{
	const struct store_backend *be = NULL;
	const char *target = NULL;
	if (pick_backend(url, &be, &target, err, errlen) != 0)
		return STORE_ERROR;
	return be->verify(target, full, err, errlen);
}

void store_close(struct store *st)
{
	if (!st)
		return;
	st->be->close(st->conn);
	free(st);
}

bool store_cursor_valid(const char *c)
{
	int64_t pos;
	return c && *c && store_cursor_parse(c, &pos) == 0;
}

int store_cursor_parse(const char *c, int64_t *pos)
{
	if (!c || !*c) {
		*pos = INT64_MAX;
		return 0;
	}
	if (c[0] != 'c' || c[1] < '0' || c[1] > '9')
		return -1;
	for (const char *p = c + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
	}
	errno = 0;
	char *end;
	long long v = strtoll(c + 1, &end, 10);
	if (errno || *end || v <= 0)
		return -1;
	*pos = v;
	return 0;
}

void store_cursor_format(int64_t pos, char out[STORE_CURSOR_MAX])
{
	snprintf(out, STORE_CURSOR_MAX, "c%" PRId64, pos);
}

int store_ep_texts_make(const struct endpoint *e, struct store_ep_texts *t)
{
	const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
	memset(t, 0, sizeof *t);
	t->events = e->events ? json_dumps(e->events, flags) : strdup("[\"*\"]");
	t->headers = e->headers ? json_dumps(e->headers, flags) : strdup("{}");
	if (e->filters)
		t->filters = json_dumps(e->filters, flags);
	json_t *sigs = endpoint_signatures_json(e->signatures);
	t->signatures = sigs ? json_dumps(sigs, flags) : NULL;
	json_decref(sigs);
	if (!t->events || !t->headers || !t->signatures)
		return -1;
	return e->filters && !t->filters ? -1 : 0;
}

int store_ep_signatures(struct endpoint *e, json_t *sigs)
{
	const char *bad;
	e->signatures = 0;
	if (sigs != NULL && endpoint_signatures_parse(sigs, &e->signatures, &bad) != 0) {
		log_error("store: endpoint signatures unreadable, all three used");
		e->signatures = 0;
	}
	return 0;
}

void store_ep_texts_free(struct store_ep_texts *t)
{
	free(t->events);
	free(t->filters);
	free(t->headers);
	free(t->signatures);
}

int store_limit_clamp(int limit)
{
	if (limit < 1)
		return 1;
	if (limit > STORE_LIMIT_MAX)
		return STORE_LIMIT_MAX;
	return limit;
}

int store_begin(struct store *st) { return st->be->begin(st->conn); }
int store_commit(struct store *st) { return st->be->commit(st->conn); }

enum store_fault store_fault_take(struct store *st, char *detail, size_t len, bool *wrote)
{
	if (len > 0)
		detail[0] = '\0';
	*wrote = true; /* a backend that cannot tell: every commit counts */
	return st->be->fault_take ? st->be->fault_take(st->conn, detail, len, wrote)
				  : STORE_FAULT_NONE;
}

int store_wal_truncate(struct store *st)
{
	return st->be->wal_truncate ? st->be->wal_truncate(st->conn) : STORE_OK;
}
void store_wal_counts(struct store *st, struct store_wal_counts *out)
{
	memset(out, 0, sizeof *out);
	out->ckpt_idle = true;
	if (st->be->wal_counts)
		st->be->wal_counts(st->conn, out);
}
bool store_shared(const struct store *st) { return st->be->shared; }

enum store_fault store_note_read(struct store *st, struct store_health *h)
{
	char detail[128];
	bool wrote;
	enum store_fault f = store_fault_take(st, detail, sizeof detail, &wrote);
	if (f == STORE_FAULT_UNREACHABLE)
		store_health_unreachable(h, detail, now_ms());
	else if (f == STORE_FAULT_NONE)
		store_health_clear(h, STORE_COND_UNREACHABLE);
	return f;
}

int store_rollback(struct store *st) { return st->be->rollback(st->conn); }
int store_savepoint(struct store *st) { return st->be->savepoint(st->conn); }
int store_release(struct store *st) { return st->be->release(st->conn); }
int store_rollback_to(struct store *st) { return st->be->rollback_to(st->conn); }

int store_endpoint_insert(struct store *st, const struct endpoint *e)
{
	return st->be->endpoint_insert(st->conn, e);
}

int store_endpoint_update(struct store *st, const struct endpoint *e)
{
	return st->be->endpoint_update(st->conn, e);
}

int store_endpoint_delete(struct store *st, const char *id)
{
	return st->be->endpoint_delete(st->conn, id);
}

int store_endpoint_get(struct store *st, const char *id, struct endpoint *out)
{
	return st->be->endpoint_get(st->conn, id, out);
}

int store_endpoint_list(struct store *st, const char *cursor, int limit, struct endpoint **out,
			size_t *n, char next_cursor[STORE_CURSOR_MAX])
{
	return st->be->endpoint_list(st->conn, cursor, limit, out, n, next_cursor);
}

int store_endpoint_each(struct store *st, int (*fn)(const struct endpoint *e, void *arg), void *arg)
{
	return st->be->endpoint_each(st->conn, fn, arg);
}

int store_endpoint_disable(struct store *st, const char *id, const char *reason, int64_t now)
{
	return st->be->endpoint_disable(st->conn, id, reason, now);
}

int store_endpoint_events(struct store *st, const char *endpoint_id, int64_t since, int64_t until,
			  size_t max, struct store_event_ref **out, size_t *n)
{
	return st->be->endpoint_events(st->conn, endpoint_id, since, until, max, out, n);
}

int store_event_insert(struct store *st, const struct event *e)
{
	return st->be->event_insert(st->conn, e);
}

int store_event_get(struct store *st, const char *id, struct event *out)
{
	return st->be->event_get(st->conn, id, out);
}

int store_event_list(struct store *st, const struct event_query *q, struct event **out,
		     size_t *n, char next_cursor[STORE_CURSOR_MAX])
{
	return st->be->event_list(st->conn, q, out, n, next_cursor);
}

void store_event_get_many(struct store *st, const char *const *ids, size_t n, struct event *out,
			  int *rcs)
{
	/* A shared snapshot costs about as much as a few rows read alone. */
	if (st->be->event_get_many && n >= 4) {
		st->be->event_get_many(st->conn, ids, n, out, rcs);
		return;
	}
	for (size_t i = 0; i < n; i++)
		rcs[i] = st->be->event_get(st->conn, ids[i], &out[i]);
}

int store_idem_get(struct store *st, const char *key, json_t **event_ids)
{
	return st->be->idem_get(st->conn, key, event_ids);
}

int store_idem_put(struct store *st, const char *key, json_t *event_ids, int64_t at)
{
	return st->be->idem_put(st->conn, key, event_ids, at);
}

int store_delivery_insert(struct store *st, struct delivery *d)
{
	return st->be->delivery_insert(st->conn, d);
}

int store_delivery_update_state(struct store *st, const struct delivery *d)
{
	return st->be->delivery_update_state(st->conn, d);
}

int store_event_insert_many(struct store *st, const struct event *evs, size_t n, int *rcs)
{
	if (n == 0)
		return STORE_OK;
	/* One row: the one-row statement, as cheap and planned once. */
	if (st->be->event_insert_many && n > 1)
		return st->be->event_insert_many(st->conn, evs, n, rcs);
	for (size_t i = 0; i < n; i++) {
		rcs[i] = st->be->event_insert(st->conn, &evs[i]);
		if (rcs[i] != STORE_OK && rcs[i] != STORE_CONFLICT)
			return rcs[i];
	}
	return STORE_OK;
}

int store_delivery_insert_many(struct store *st, struct delivery *ds, size_t n)
{
	if (n == 0)
		return STORE_OK;
	if (st->be->delivery_insert_many && n > 1)
		return st->be->delivery_insert_many(st->conn, ds, n);
	for (size_t i = 0; i < n; i++) {
		int rc = st->be->delivery_insert(st->conn, &ds[i]);
		if (rc != STORE_OK)
			return rc;
	}
	return STORE_OK;
}

int store_record_results(struct store *st, struct store_result *rs, size_t n)
{
	if (n == 0)
		return STORE_OK;
	if (st->be->record_results && n > 1)
		return st->be->record_results(st->conn, rs, n);
	for (size_t i = 0; i < n; i++) {
		int rc = st->be->delivery_update_state(st->conn, rs[i].dl);
		rs[i].missing = rc == STORE_NOTFOUND;
		if (rc == STORE_NOTFOUND)
			continue;
		if (rc == STORE_OK)
			rc = st->be->attempt_insert(st->conn, rs[i].a);
		if (rc != STORE_OK)
			return rc;
	}
	return STORE_OK;
}

int store_delivery_set_batch(struct store *st, const char *batch_id, const char *const *ids,
			     size_t n)
{
	return st->be->delivery_set_batch(st->conn, batch_id, ids, n);
}

int store_endpoint_state_put(struct store *st, const struct endpoint_state *s)
{
	return st->be->endpoint_state_put(st->conn, s);
}

int store_endpoint_state_each(struct store *st,
			      int (*fn)(const struct endpoint_state *s, void *arg), void *arg)
{
	return st->be->endpoint_state_each(st->conn, fn, arg);
}

int store_delivery_get(struct store *st, const char *id, struct delivery *out)
{
	return st->be->delivery_get(st->conn, id, out);
}

int store_delivery_list(struct store *st, const struct delivery_query *q, struct delivery **out,
			size_t *n, char next_cursor[STORE_CURSOR_MAX])
{
	return st->be->delivery_list(st->conn, q, out, n, next_cursor);
}

int store_attempt_insert(struct store *st, const struct attempt *a)
{
	return st->be->attempt_insert(st->conn, a);
}

int store_attempt_list(struct store *st, const char *delivery_id, struct attempt **out, size_t *n)
{
	return st->be->attempt_list(st->conn, delivery_id, out, n);
}

int store_pending_endpoints(struct store *st, char (**ids)[ID_MAX], size_t *n)
{
	*ids = NULL;
	*n = 0;
	return st->be->pending_endpoints(st->conn, ids, n);
}

int store_pending_page_endpoint(struct store *st, const char *endpoint_id, int64_t after_at,
				const char *after_id, int limit, struct pending **out, size_t *n)
{
	return st->be->pending_page_endpoint(st->conn, endpoint_id, after_at, after_id, limit, out,
					     n);
}

int store_batch_members(struct store *st, int64_t seq, const char *id, int64_t at,
			char batch_id[ID_MAX], struct pending **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	batch_id[0] = '\0';
	return st->be->batch_members(st->conn, seq, id, at, batch_id, out, n);
}

int store_dlq_retry_one(struct store *st, const char *delivery_id, int64_t now, struct pending *out)
{
	return st->be->dlq_retry_one(st->conn, delivery_id, now, out);
}

int store_dlq_retry_endpoint(struct store *st, const char *endpoint_id, int64_t now, int64_t *count)
{
	return st->be->dlq_retry_endpoint(st->conn, endpoint_id, now, count);
}

int store_purge_dead(struct store *st, int64_t before, int64_t *count,
		     int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg)
{
	return st->be->purge_dead(st->conn, before, count, fn, arg);
}

int store_purge_events(struct store *st, const struct store_retention *r,
		       struct store_retention_cursor *cur, struct store_retention_result *res,
		       int (*fn)(const char *endpoint_id, int64_t n, void *arg), void *arg)
{
	memset(res, 0, sizeof *res);
	if (st->be->purge_events == NULL) {
		res->done = true;
		return STORE_OK;
	}
	return st->be->purge_events(st->conn, r, cur, res, fn, arg);
}

int store_size(struct store *st, struct store_size *out)
{
	out->file_bytes = out->wal_bytes = out->free_bytes = -1;
	if (st->be->size == NULL)
		return STORE_OK;
	return st->be->size(st->conn, out);
}

int store_reclaim(struct store *st, int pages, int64_t *freed)
{
	*freed = 0;
	if (st->be->reclaim == NULL || pages <= 0)
		return STORE_OK;
	return st->be->reclaim(st->conn, pages, freed);
}

int store_queue_seed(struct store *st, int (*fn)(const struct store_queue_group *g, void *arg),
		     void *arg)
{
	return st->be->queue_seed(st->conn, fn, arg);
}

int store_delivery_each_of_event(struct store *st, const char *event_id,
				 int (*fn)(const struct delivery *d, void *arg), void *arg)
{
	char cursor[STORE_CURSOR_MAX] = "";
	int rc;
	do {
		struct delivery_query q = {
			.event_id = event_id,
			.status = -1,
			.cursor = cursor[0] ? cursor : NULL,
			.limit = 1000,
		};
		struct delivery *page = NULL;
		size_t n = 0;
		char next[STORE_CURSOR_MAX] = "";
		rc = store_delivery_list(st, &q, &page, &n, next);
		for (size_t i = 0; i < n; i++) {
			if (rc == STORE_OK)
				rc = fn(&page[i], arg);
			delivery_clear(&page[i]);
		}
		free(page);
		memcpy(cursor, next, sizeof cursor);
	} while (rc == STORE_OK && cursor[0] != '\0');
	return rc;
}

int store_api_key_insert(struct store *st, const struct store_api_key *k)
{
	return st->be->api_key_insert(st->conn, k);
}

int store_api_key_find(struct store *st, const unsigned char hash[STORE_KEY_HASH_LEN],
		       struct store_api_key *out)
{
	return st->be->api_key_find(st->conn, hash, out);
}

int store_api_key_list(struct store *st, struct store_api_key **out, size_t *n)
{
	return st->be->api_key_list(st->conn, out, n);
}

int store_api_key_revoke(struct store *st, const char *id, int64_t now)
{
	return st->be->api_key_revoke(st->conn, id, now);
}

int store_endpoint_count(struct store *st, int64_t *n)
{
	return st->be->endpoint_count(st->conn, n);
}

int store_pending_by_seq(struct store *st, const int64_t *seqs, size_t n, struct pending **out,
			 struct event **events, size_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	if (events != NULL)
		*events = NULL;
	if (st->be->pending_by_seq == NULL)
		return STORE_ERROR;
	return st->be->pending_by_seq(st->conn, seqs, n, out, events, n_out);
}

struct store_listen {
	const struct store_backend *be;
	void *conn;
};

bool store_listen_supported(const char *url)
{
	const struct store_backend *be = NULL;
	const char *target = NULL;
	char err[128]; /* pick_backend's longest message fits (-O3 checks) */
	return pick_backend(url, &be, &target, err, sizeof err) == 0 && be->listen_open != NULL;
}

int store_listen_open(const char *url, struct store_listen **out, char *err, size_t errlen)
{
	const struct store_backend *be = NULL;
	const char *target = NULL;
	*out = NULL;
	if (pick_backend(url, &be, &target, err, errlen) != 0)
		return STORE_ERROR;
	if (be->listen_open == NULL) {
		snprintf(err, errlen, "the %s backend has no notifications", be->name);
		return STORE_ERROR;
	}
	struct store_listen *l = calloc(1, sizeof *l);
	if (l == NULL) {
		snprintf(err, errlen, "out of memory");
		return STORE_ERROR;
	}
	l->be = be;
	struct store_open_opts opts = {.sync = store_sync_mode, .node_id = store_node_id};
	if (be->listen_open(target, &opts, &l->conn, err, errlen) != STORE_OK) {
		free(l);
		return STORE_ERROR;
	}
	*out = l;
	return STORE_OK;
}

int store_listen_wait(struct store_listen *l, int timeout_ms,
		      void (*fn)(const char *channel, const char *payload, void *arg), void *arg)
{
	return l->be->listen_wait(l->conn, timeout_ms, fn, arg);
}

void store_listen_close(struct store_listen *l)
{
	if (l == NULL)
		return;
	l->be->listen_close(l->conn);
	free(l);
}

bool store_cluster_supported(const struct store *st)
{
	return st->be->node_heartbeat != NULL;
}

/* The answer of a cluster operation on a backend without them. */
static int cluster_unsupported(const struct store *st, const char *op)
{
	log_error("store: %s is not supported by the %s backend (single node)", op, st->be->name);
	return STORE_ERROR;
}

int store_node_heartbeat(struct store *st, const char *node_id)
{
	if (!store_cluster_supported(st))
		return cluster_unsupported(st, "node_heartbeat");
	return st->be->node_heartbeat(st->conn, node_id);
}

int store_nodes_live(struct store *st, int64_t lease_ms, char (**ids)[ID_MAX], size_t *n)
{
	*ids = NULL;
	*n = 0;
	if (!store_cluster_supported(st))
		return cluster_unsupported(st, "nodes_live");
	return st->be->nodes_live(st->conn, lease_ms, ids, n);
}

int store_lease_renew(struct store *st, const char *node_id, int64_t lease_ms,
		      char (**ids)[ID_MAX], size_t *n)
{
	*ids = NULL;
	*n = 0;
	if (!store_cluster_supported(st))
		return cluster_unsupported(st, "lease_renew");
	return st->be->lease_renew(st->conn, node_id, lease_ms, ids, n);
}

int store_lease_claim(struct store *st, const char *node_id, int64_t lease_ms,
		      const char *const *ids, size_t n, char (**got)[ID_MAX], size_t *n_got)
{
	*got = NULL;
	*n_got = 0;
	if (!store_cluster_supported(st))
		return cluster_unsupported(st, "lease_claim");
	return st->be->lease_claim(st->conn, node_id, lease_ms, ids, n, got, n_got);
}

int store_lease_release(struct store *st, const char *node_id, const char *endpoint_id)
{
	if (!store_cluster_supported(st))
		return STORE_OK;
	return st->be->lease_release(st->conn, node_id, endpoint_id);
}

int store_node_leave(struct store *st, const char *node_id)
{
	if (!store_cluster_supported(st))
		return STORE_OK;
	return st->be->node_leave(st->conn, node_id);
}

int store_set_timeouts(struct store *st, int64_t statement_ms, int64_t lock_ms)
{
	if (st->be->set_timeouts == NULL)
		return STORE_OK;
	return st->be->set_timeouts(st->conn, statement_ms, lock_ms);
}
