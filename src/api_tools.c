/* api_tools: the testing tools (docs/api.md#testing-tools). POST /v1/endpoints/{id}/test
 * sends a test.webhook event to one endpoint; POST /v1/events/{id}/replay
 * and POST /v1/endpoints/{id}/replay send stored events again as new
 * deliveries (same event, so the same body and webhook-id). Like ingest,
 * the writes go through the commit thread and the new deliveries reach the
 * dispatcher right after their commit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "dispatch.h"
#include "ingest.h"
#include "log.h"
#include "model.h"
#include "queue_depth.h"

/* Deliveries of one event are read in pages of this size. */

/* The body if one was sent (NULL if none); replies 400 and sets *bad if it
 * is not a JSON object. */
static json_t *optional_body(struct api_req *r, bool *bad)
{
	*bad = false;
	if (r->body.len == 0)
		return NULL;
	json_t *body = api_body_json(r);
	*bad = body == NULL;
	return body;
}

/* ---- POST /v1/endpoints/{id}/test ---- */

struct test_op {
	struct api_op base;
	struct ingest_batch batch;   /* one item: the test event, to this endpoint only */
};

static void test_destroy(struct api_op *o)
{
	struct test_op *t = (struct test_op *)o;
	ingest_batch_clear(&t->batch);
	free(t);
}

static int test_apply(struct store *st, struct commit_op *op)
{
	struct test_op *t = (struct test_op *)op;
	struct endpoint ep = {0};
	/* 404 for an endpoint deleted since the request came in. */
	int rc = store_endpoint_get(st, t->batch.items[0].endpoint_ids[0], &ep);
	endpoint_clear(&ep);
	if (rc != STORE_OK)
		return rc;
	return ingest_apply(st, &t->batch);
}

static void test_committed(struct api_op *o)
{
	struct ingest_batch *b = &((struct test_op *)o)->batch;
	queue_depth_created(o->req->api->cfg.queue, b->new_pending, b->n_new_pending);
	if (o->req->api->dispatch != NULL && b->n_new_pending > 0)
		dispatch_enqueue(o->req->api->dispatch, b->new_pending, b->n_new_pending);
}

static void test_respond(struct api_req *r, struct api_op *o)
{
	struct test_op *t = (struct test_op *)o;
	struct dynbuf text;
	if (o->rc != STORE_OK) {
		api_store_error(r, o->rc, "endpoint");
		return;
	}
	log_info("test event sent id=%s endpoint=%s", t->batch.items[0].ev.id, r->id);
	dynbuf_init(&text, SIZE_MAX);
	if (ingest_item_append_text(&text, &t->batch.items[0]) != 0) {
		dynbuf_free(&text);
		api_internal_error(r, "test response");
		return;
	}
	api_reply_text(r, MHD_HTTP_ACCEPTED, text.data, text.len);
}

/* The data of a test event sent without one. */
static char *default_test_data(const char *endpoint_id)
{
	json_t *d = json_pack("{s:s, s:s}", "message", "A test webhook from hookd.",
			      "endpoint_id", endpoint_id);
	char *text = d ? validate_json_text(d) : NULL;
	json_decref(d);
	return text;
}

/* The one item of t: the test event and its delivery to endpoint_id,
 * made here rather than by ingest_item_prepare, as a test bypasses the
 * endpoint's events and filters. */
static int test_item(struct ingest_item *item, const char *endpoint_id, json_t *data)
{
	item->ev.type = strdup(EVENT_TEST_WEBHOOK);
	item->ev.data = data ? validate_json_text(data) : default_test_data(endpoint_id);
	item->ev.created_at = now_ms();
	item->endpoint_ids = malloc(sizeof *item->endpoint_ids);
	item->delivery_ids = malloc(sizeof *item->delivery_ids);
	if (!item->ev.type || !item->ev.data || !item->endpoint_ids || !item->delivery_ids)
		return -1;
	item->n = 1;
	memcpy(item->endpoint_ids[0], endpoint_id, ID_MAX);
	if (id_new("evt", item->ev.id) != 0 || id_new("dlv", item->delivery_ids[0]) != 0)
		return -1;
	return 0;
}

void api_endpoints_test(struct api_req *r)
{
	struct validate_error err;
	json_t *data = NULL;
	bool bad;
	json_t *body = optional_body(r, &bad);
	if (bad)
		return;
	if (validate_test_body(body, &data, &err) != 0) {
		api_invalid(r, &err);
		json_decref(body);
		return;
	}
	struct test_op *t = calloc(1, sizeof *t);
	if (t != NULL) {
		t->base.op.apply = test_apply;
		t->base.committed = test_committed;
		t->base.respond = test_respond;
		t->base.destroy = test_destroy;
		t->batch.items = calloc(1, sizeof *t->batch.items);
		t->batch.n = t->batch.items ? 1 : 0;
	}
	if (t == NULL || t->batch.items == NULL ||
	    test_item(&t->batch.items[0], r->id, data) != 0) {
		json_decref(body);
		if (t != NULL)
			test_destroy(&t->base);
		api_internal_error(r, "endpoint test");
		return;
	}
	json_decref(body);
	api_submit(r, &t->base);
}

/* ---- the replays ---- */

struct replay_op {
	struct api_op base;
	char event_id[ID_MAX];        /* event replay: the event */
	/* Endpoint replay: the endpoint; event replay: the one endpoint asked
	 * for, "" for all. */
	char endpoint_id[ID_MAX];
	int64_t since, until;         /* endpoint replay: the window */
	const char *missing;          /* on STORE_NOTFOUND: "event" or "endpoint" */
	bool too_many;                /* endpoint replay: the window holds too many events */
	/* The new deliveries, also as pending rows for the dispatcher. */
	struct pending *made;
	size_t n, cap;
};

static void replay_destroy(struct api_op *o)
{
	struct replay_op *ro = (struct replay_op *)o;
	free(ro->made);
	free(ro);
}

static struct replay_op *replay_op_new(struct api_req *r,
				       int (*apply)(struct store *, struct commit_op *),
				       void (*respond)(struct api_req *, struct api_op *));

/* Inserts a new pending delivery of the event (id, type) to endpoint_id,
 * due now, and notes it in ro->made. */
static int redeliver(struct store *st, struct replay_op *ro, const char *event_id,
		     const char *type, const char *endpoint_id, int64_t now)
{
	struct pending *made = array_grow(ro->made, &ro->cap, ro->n + 1, sizeof *made, 16);
	if (made == NULL)
		return STORE_ERROR;
	ro->made = made;
	struct delivery d = {
		.status = DELIVERY_PENDING,
		.event_type = (char *)type,
		.next_attempt_at = now,
		.created_at = now,
		.updated_at = now,
	};
	if (id_new("dlv", d.id) != 0)
		return STORE_ERROR;
	snprintf(d.event_id, sizeof d.event_id, "%s", event_id);
	snprintf(d.endpoint_id, sizeof d.endpoint_id, "%s", endpoint_id);
	int rc = store_delivery_insert(st, &d);
	if (rc != STORE_OK)
		return rc;
	struct pending *p = &ro->made[ro->n++];
	memset(p, 0, sizeof *p);
	p->seq = d.seq;
	memcpy(p->id, d.id, ID_MAX);
	memcpy(p->event_id, d.event_id, ID_MAX);
	memcpy(p->endpoint_id, d.endpoint_id, ID_MAX);
	p->next_attempt_at = now;
	return STORE_OK;
}

static void replay_committed(struct api_op *o)
{
	struct replay_op *ro = (struct replay_op *)o;
	queue_depth_created(o->req->api->cfg.queue, ro->made, ro->n);
	if (o->req->api->dispatch != NULL && ro->n > 0)
		dispatch_enqueue(o->req->api->dispatch, ro->made, ro->n);
}

static int id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

struct id_list {
	char (*ids)[ID_MAX];
	size_t len, cap;
};

static int collect_endpoint(const struct delivery *d, void *arg)
{
	struct id_list *l = arg;
	char(*ids)[ID_MAX] = array_grow(l->ids, &l->cap, l->len + 1, sizeof *ids, 16);
	if (ids == NULL)
		return STORE_ERROR;
	l->ids = ids;
	memcpy(l->ids[l->len++], d->endpoint_id, ID_MAX);
	return STORE_OK;
}

/* Every endpoint with a delivery of event_id, each once, in id order
 * (which is creation order), into a malloc'd *out of *n. */
static int endpoints_of_event(struct store *st, const char *event_id, char (**out)[ID_MAX],
			      size_t *n)
{
	struct id_list l = {0};
	int rc = store_delivery_each_of_event(st, event_id, collect_endpoint, &l);
	if (rc != STORE_OK) {
		free(l.ids);
		return rc;
	}
	char(*ids)[ID_MAX] = l.ids;
	size_t len = l.len;
	/* An endpoint with several deliveries of it (earlier replays) once. */
	size_t u = 0;
	if (len > 0)
		qsort(ids, len, sizeof *ids, id_cmp);
	for (size_t i = 0; i < len; i++) {
		if (u == 0 || strcmp(ids[u - 1], ids[i]) != 0)
			memmove(ids[u++], ids[i], ID_MAX);
	}
	*out = ids;
	*n = u;
	return STORE_OK;
}

/* ---- POST /v1/events/{id}/replay ---- */

static int event_replay_apply(struct store *st, struct commit_op *op)
{
	struct replay_op *ro = (struct replay_op *)op;
	struct event ev = {0};
	struct endpoint ep = {0};
	char(*eps)[ID_MAX] = NULL;
	size_t n_eps = 0;
	int64_t now = now_ms();
	ro->n = 0;
	ro->missing = "event";
	int rc = store_event_get(st, ro->event_id, &ev);
	if (rc != STORE_OK)
		goto out;
	if (ro->endpoint_id[0] != '\0') {
		/* One endpoint, which need not have had a delivery of it. */
		ro->missing = "endpoint";
		rc = store_endpoint_get(st, ro->endpoint_id, &ep);
		if (rc == STORE_OK)
			rc = redeliver(st, ro, ev.id, ev.type, ro->endpoint_id, now);
		goto out;
	}
	rc = endpoints_of_event(st, ev.id, &eps, &n_eps);
	for (size_t i = 0; i < n_eps && rc == STORE_OK; i++)
		rc = redeliver(st, ro, ev.id, ev.type, eps[i], now);
out:
	free(eps);
	endpoint_clear(&ep);
	event_clear(&ev);
	return rc;
}

static void event_replay_respond(struct api_req *r, struct api_op *o)
{
	struct replay_op *ro = (struct replay_op *)o;
	if (o->rc != STORE_OK) {
		api_store_error(r, o->rc, o->rc == STORE_NOTFOUND ? ro->missing : "event replay");
		return;
	}
	log_info("event replayed id=%s deliveries=%zu", ro->event_id, ro->n);
	json_t *dl = json_array();
	for (size_t i = 0; i < ro->n && dl != NULL; i++) {
		json_t *d = json_pack("{s:s, s:s}", "id", ro->made[i].id, "endpoint_id",
				      ro->made[i].endpoint_id);
		if (json_array_append_new(dl, d) != 0) {
			json_decref(dl);
			dl = NULL;
		}
	}
	api_reply(r, MHD_HTTP_ACCEPTED,
		  dl ? json_pack("{s:s, s:o}", "id", ro->event_id, "deliveries", dl) : NULL);
}

void api_events_replay(struct api_req *r)
{
	struct validate_error err;
	const char *endpoint_id = NULL;
	bool bad;
	json_t *body = optional_body(r, &bad);
	if (bad)
		return;
	if (validate_event_replay(body, &endpoint_id, &err) != 0) {
		api_invalid(r, &err);
		json_decref(body);
		return;
	}
	struct replay_op *ro = replay_op_new(r, event_replay_apply, event_replay_respond);
	if (ro != NULL) {
		memcpy(ro->event_id, r->id, ID_MAX);
		snprintf(ro->endpoint_id, sizeof ro->endpoint_id, "%s",
			 endpoint_id ? endpoint_id : "");
		api_submit(r, &ro->base);
	}
	json_decref(body);
}

/* ---- POST /v1/endpoints/{id}/replay ---- */

static int endpoint_replay_apply(struct store *st, struct commit_op *op)
{
	struct replay_op *ro = (struct replay_op *)op;
	struct endpoint ep = {0};
	struct store_event_ref *refs = NULL;
	size_t n_refs = 0;
	int64_t now = now_ms();
	ro->n = 0;
	ro->too_many = false;
	ro->missing = "endpoint";
	int rc = store_endpoint_get(st, ro->endpoint_id, &ep);
	if (rc != STORE_OK)
		goto out;
	/* One more than allowed tells "too many" without counting them all. */
	rc = store_endpoint_events(st, ro->endpoint_id, ro->since, ro->until,
				   VALIDATE_REPLAY_MAX + 1, &refs, &n_refs);
	if (rc != STORE_OK)
		goto out;
	if (n_refs > VALIDATE_REPLAY_MAX) {
		ro->too_many = true;
		rc = STORE_CONFLICT;
		goto out;
	}
	for (size_t i = 0; i < n_refs && rc == STORE_OK; i++)
		rc = redeliver(st, ro, refs[i].id, refs[i].type, ro->endpoint_id, now);
out:
	free(refs);
	endpoint_clear(&ep);
	return rc;
}

static void endpoint_replay_respond(struct api_req *r, struct api_op *o)
{
	struct replay_op *ro = (struct replay_op *)o;
	if (ro->too_many) {
		api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_field", "since",
			  "the window holds more than %d events: narrow the window",
			  VALIDATE_REPLAY_MAX);
		return;
	}
	if (o->rc != STORE_OK) {
		api_store_error(r, o->rc,
				o->rc == STORE_NOTFOUND ? ro->missing : "endpoint replay");
		return;
	}
	log_info("endpoint replayed id=%s events=%zu", ro->endpoint_id, ro->n);
	api_reply(r, MHD_HTTP_ACCEPTED, json_pack("{s:I}", "replayed", (json_int_t)ro->n));
}

void api_endpoints_replay(struct api_req *r)
{
	struct validate_error err;
	int64_t since, until;
	json_t *body = api_body_json(r);
	if (body == NULL)
		return;
	if (validate_replay_window(body, now_ms(), &since, &until, &err) != 0) {
		api_invalid(r, &err);
		json_decref(body);
		return;
	}
	json_decref(body);
	struct replay_op *ro = replay_op_new(r, endpoint_replay_apply, endpoint_replay_respond);
	if (ro == NULL)
		return;
	memcpy(ro->endpoint_id, r->id, ID_MAX);
	ro->since = since;
	ro->until = until;
	api_submit(r, &ro->base);
}

/* A new replay op, or NULL after replying 500. */
static struct replay_op *replay_op_new(struct api_req *r,
				       int (*apply)(struct store *, struct commit_op *),
				       void (*respond)(struct api_req *, struct api_op *))
{
	struct replay_op *ro = calloc(1, sizeof *ro);
	if (ro == NULL) {
		api_internal_error(r, "replay");
		return NULL;
	}
	ro->base.op.apply = apply;
	ro->base.committed = replay_committed;
	ro->base.respond = respond;
	ro->base.destroy = replay_destroy;
	return ro;
}
