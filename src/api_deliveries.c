/* api_deliveries: /v1/deliveries (the inspector's reads) and /v1/dlq (dead
 * letters and their retry). A retry is a write: it goes through the commit
 * thread and, once committed, the dispatcher learns of the pending work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "dispatch.h"
#include "log.h"
#include "model.h"
#include "queue_depth.h"

/* Replies with one page of deliveries matching q. */
static void list_page(struct api_req *r, struct delivery_query *q)
{
	struct delivery *ds = NULL;
	size_t n = 0;
	char next[STORE_CURSOR_MAX] = "";
	struct store *st = api_store_get(r->api);
	int rc = st ? store_delivery_list(st, q, &ds, &n, next) : STORE_ERROR;
	if (st)
		api_store_put(r->api, st);
	if (rc != STORE_OK) {
		api_store_error(r, rc == STORE_NOTFOUND ? STORE_ERROR : rc, "delivery list");
		return;
	}
	json_t *items = json_array();
	for (size_t i = 0; i < n; i++) {
		if (items && json_array_append_new(items, delivery_to_json(&ds[i])) != 0) {
			json_decref(items);
			items = NULL;
		}
		delivery_clear(&ds[i]);
	}
	free(ds);
	api_reply(r, MHD_HTTP_OK, api_list(items, next));
}

/* The filters both lists take: event_type, since and until (on the
 * delivery's created_at). 0, or -1 with a 400 sent. */
static int time_type_args(struct api_req *r, struct delivery_query *q)
{
	struct validate_error err;
	q->event_type = api_arg(r, "event_type");
	if (validate_query_type(q->event_type, "event_type", &err) != 0 ||
	    validate_query_window(api_arg(r, "since"), api_arg(r, "until"), &q->has_since,
				  &q->since, &q->has_until, &q->until, &err) != 0) {
		api_invalid(r, &err);
		return -1;
	}
	return 0;
}

/* GET /v1/deliveries?endpoint_id&event_id&status&event_type&since&until&limit&cursor */
void api_deliveries_list(struct api_req *r)
{
	struct validate_error err;
	struct delivery_query q = {
		.endpoint_id = api_arg(r, "endpoint_id"),
		.event_id = api_arg(r, "event_id"),
	};
	if (validate_query_id(q.endpoint_id, "endpoint_id", &err) != 0 ||
	    validate_query_id(q.event_id, "event_id", &err) != 0 ||
	    validate_delivery_status(api_arg(r, "status"), &q.status, &err) != 0) {
		api_invalid(r, &err);
		return;
	}
	if (time_type_args(r, &q) != 0 || api_page_args(r, &q.limit, &q.cursor) != 0)
		return;
	list_page(r, &q);
}

/* GET /v1/deliveries/{id}: the delivery with every attempt, oldest first. */
void api_deliveries_get(struct api_req *r)
{
	struct delivery d = {0};
	struct attempt *as = NULL;
	size_t n = 0;
	struct store *st = api_store_get(r->api);
	int rc = st ? store_delivery_get(st, r->id, &d) : STORE_ERROR;
	if (rc == STORE_OK)
		rc = store_attempt_list(st, r->id, &as, &n);
	if (st)
		api_store_put(r->api, st);
	if (rc != STORE_OK) {
		api_store_error(r, rc, "delivery");
		goto out;
	}
	json_t *attempts = json_array();
	for (size_t i = 0; i < n && attempts != NULL; i++) {
		if (json_array_append_new(attempts, attempt_to_json(&as[i])) != 0) {
			json_decref(attempts);
			attempts = NULL;
		}
	}
	json_t *j = delivery_to_json(&d);
	if (j == NULL || attempts == NULL) {
		json_decref(j);
		json_decref(attempts);
		j = NULL;
	} else if (json_object_set_new(j, "attempts", attempts) != 0) {
		json_decref(j);
		j = NULL;
	}
	api_reply(r, MHD_HTTP_OK, j);
out:
	for (size_t i = 0; i < n; i++)
		attempt_clear(&as[i]);
	free(as);
	delivery_clear(&d);
}

/* GET /v1/dlq?endpoint_id&event_type&since&until&limit&cursor */
void api_dlq_list(struct api_req *r)
{
	struct validate_error err;
	struct delivery_query q = {
		.endpoint_id = api_arg(r, "endpoint_id"),
		.status = DELIVERY_DEAD,
	};
	if (validate_query_id(q.endpoint_id, "endpoint_id", &err) != 0) {
		api_invalid(r, &err);
		return;
	}
	if (time_type_args(r, &q) != 0 || api_page_args(r, &q.limit, &q.cursor) != 0)
		return;
	list_page(r, &q);
}

struct retry_op {
	struct api_op base;
	char id[ID_MAX];          /* delivery (one) or endpoint (all) */
	struct pending pending;   /* one: what the dispatcher gets */
	struct delivery d;        /* one: the delivery after the retry */
	int64_t count;            /* all: how many were retried */
	int64_t at;               /* all: when (their next_attempt_at) */
};

static void retry_destroy(struct api_op *o)
{
	struct retry_op *ro = (struct retry_op *)o;
	delivery_clear(&ro->d);
	free(ro);
}

static struct retry_op *retry_op_new(struct api_req *r,
				     int (*apply)(struct store *, struct commit_op *),
				     void (*committed)(struct api_op *),
				     void (*respond)(struct api_req *, struct api_op *))
{
	struct retry_op *ro = calloc(1, sizeof *ro);
	if (ro == NULL) {
		api_internal_error(r, "dlq retry");
		return NULL;
	}
	ro->base.op.apply = apply;
	ro->base.committed = committed;
	ro->base.respond = respond;
	ro->base.destroy = retry_destroy;
	return ro;
}

/* ---- POST /v1/dlq/{delivery_id}/retry ---- */

static int retry_one_apply(struct store *st, struct commit_op *op)
{
	struct retry_op *ro = (struct retry_op *)op;
	int rc = store_dlq_retry_one(st, ro->id, now_ms(), &ro->pending);
	if (rc != STORE_OK)
		return rc;
	/* Read back inside the transaction for the response. */
	delivery_clear(&ro->d);
	return store_delivery_get(st, ro->id, &ro->d);
}

static void retry_one_committed(struct api_op *o)
{
	struct retry_op *ro = (struct retry_op *)o;
	queue_depth_dead_retried(o->req->api->cfg.queue, ro->pending.endpoint_id,
				 ro->pending.next_attempt_at, 1);
	if (o->req->api->dispatch != NULL)
		dispatch_enqueue(o->req->api->dispatch, &ro->pending, 1);
}

static void retry_one_respond(struct api_req *r, struct api_op *o)
{
	struct retry_op *ro = (struct retry_op *)o;
	if (o->rc == STORE_CONFLICT) {
		api_error(r, MHD_HTTP_CONFLICT, "conflict", NULL,
			  "delivery %s is not dead: only dead letters can be retried", ro->id);
		return;
	}
	if (o->rc != STORE_OK) {
		api_store_error(r, o->rc, "delivery");
		return;
	}
	log_info("dead letter retried delivery=%s endpoint=%s", ro->id, ro->d.endpoint_id);
	api_reply(r, MHD_HTTP_ACCEPTED, delivery_to_json(&ro->d));
}

void api_dlq_retry_one(struct api_req *r)
{
	struct retry_op *ro = retry_op_new(r, retry_one_apply, retry_one_committed,
					   retry_one_respond);
	if (ro == NULL)
		return;
	memcpy(ro->id, r->id, ID_MAX);
	api_submit(r, &ro->base);
}

/* ---- POST /v1/dlq/retry {"endpoint_id"} ---- */

static int retry_all_apply(struct store *st, struct commit_op *op)
{
	struct retry_op *ro = (struct retry_op *)op;
	struct endpoint ep = {0};
	/* 404 for an endpoint that does not exist (rather than "0 retried"). */
	int rc = store_endpoint_get(st, ro->id, &ep);
	endpoint_clear(&ep);
	if (rc != STORE_OK)
		return rc;
	ro->at = now_ms();
	return store_dlq_retry_endpoint(st, ro->id, ro->at, &ro->count);
}

static void retry_all_committed(struct api_op *o)
{
	struct retry_op *ro = (struct retry_op *)o;
	queue_depth_dead_retried(o->req->api->cfg.queue, ro->id, ro->at, ro->count);
	/* The rows may sit below the dispatcher's paging watermark. */
	if (ro->count > 0 && o->req->api->dispatch != NULL)
		dispatch_rescan(o->req->api->dispatch);
}

static void retry_all_respond(struct api_req *r, struct api_op *o)
{
	struct retry_op *ro = (struct retry_op *)o;
	if (o->rc != STORE_OK) {
		api_store_error(r, o->rc, "endpoint");
		return;
	}
	log_info("dead letters retried endpoint=%s count=%lld", ro->id, (long long)ro->count);
	api_reply(r, MHD_HTTP_ACCEPTED, json_pack("{s:I}", "retried", (json_int_t)ro->count));
}

void api_dlq_retry_endpoint(struct api_req *r)
{
	struct validate_error err;
	const char *endpoint_id;
	json_t *body = api_body_json(r);
	if (body == NULL)
		return;
	if (validate_dlq_retry(body, &endpoint_id, &err) != 0) {
		api_invalid(r, &err);
		json_decref(body);
		return;
	}
	struct retry_op *ro = retry_op_new(r, retry_all_apply, retry_all_committed,
					   retry_all_respond);
	if (ro != NULL)
		snprintf(ro->id, sizeof ro->id, "%s", endpoint_id);
	json_decref(body);
	if (ro != NULL)
		api_submit(r, &ro->base);
}
