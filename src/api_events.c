/* api_events: POST /v1/events (ingest), GET /v1/events (the list) and
 * GET /v1/events/{id}. Ingest validates and fans out on the server thread,
 * then hands one op to the commit thread; the 202 goes out only after the group holding it is
 * durably committed, and the new deliveries reach the dispatcher right then. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "store_health.h"
#include "dispatch.h"
#include "evcache.h"
#include "hops.h"
#include "ingest.h"
#include "log.h"
#include "model.h"
#include "queue_depth.h"

/* Deliveries of one event are read in pages of this size. */

struct ingest_op {
	struct api_op base;
	struct ingest_batch batch;
	bool batch_form;   /* the request used {"events":[…]} */
	/* Copies of the events, made before the commit (on this API thread,
	 * not the commit thread) and handed to the dispatcher with their
	 * deliveries; one per item (NULL: none), n_entries == batch.n. */
	struct evcache_entry **entries;
	size_t n_entries;
	/* The fan-out: deliveries the prepared items would create. Above
	 * api_config.max_deliveries the request is refused (over); above
	 * INGEST_PART_DELIVERIES it is written in parts [from, to). */
	size_t total;
	bool over;
	bool in_parts;
	size_t from, to;
	/* The 202 gives counts, not ids (more than api_config.max_listed);
	 * each part's ids are freed once committed. */
	bool compact;
};

static void ingest_destroy(struct api_op *o)
{
	struct ingest_op *io = (struct ingest_op *)o;
	ingest_batch_clear(&io->batch);
	for (size_t i = 0; i < io->n_entries; i++)
		free(io->entries[i]);
	free(io->entries);
	free(io);
}

static int ingest_op_apply(struct store *st, struct commit_op *op)
{
	struct ingest_op *io = (struct ingest_op *)op;
	if (io->in_parts)
		return ingest_apply_part(st, &io->batch, io->from, io->to);
	return ingest_apply(st, &io->batch);
}

/* The items the commit just written covers: the current part, or all. */
static void written_range(const struct ingest_op *io, size_t *from, size_t *to)
{
	bool part = io->in_parts && !io->batch.idem_replay;
	*from = part ? io->from : 0;
	*to = part ? io->to : io->batch.n;
}

/* After a commit of a compact request: the ids just written are no longer
 * needed (the 202 lists counts), so a large fan-out does not hold them all. */
static void drop_written_ids(struct ingest_op *io)
{
	size_t from, to;
	written_range(io, &from, &to);
	for (size_t i = from; io->compact && i < to; i++)
		ingest_item_drop_ids(&io->batch.items[i]);
}

/* Commit thread: a request in parts moves on to its next part (api_op
 * next_part); the first part's key lookup may have replayed instead. */
static bool ingest_next_part(struct api_op *o)
{
	struct ingest_op *io = (struct ingest_op *)o;
	if (!io->in_parts || io->batch.idem_replay || io->to >= io->batch.n)
		return false;
	io->from = io->to;
	io->to = ingest_part_end(&io->batch, io->from);
	return true;
}

static void ingest_committed(struct api_op *o)
{
	struct ingest_op *io = (struct ingest_op *)o;
	struct ingest_batch *b = &io->batch;
	struct dispatch *d = o->req->api->dispatch;
	size_t from, to;
	written_range(io, &from, &to);
	queue_depth_created(o->req->api->cfg.queue, b->new_pending, b->n_new_pending);
	if (!b->idem_replay) {
		uint64_t events = 0;
		for (size_t i = from; i < to; i++)
			events += !b->items[i].duplicate;
		metrics_ingested(o->req->api->cfg.metrics, events, b->n_new_pending, now_ms());
	}
	if (d == NULL || b->n_new_pending == 0) {
		drop_written_ids(io);
		return;
	}
	/* The events written now go along; a duplicate's copy is not what the
	 * store holds, and a replayed key wrote nothing. */
	struct evcache_entry *list = NULL, **tail = &list;
	for (size_t i = from; !b->idem_replay && io->n_entries == b->n && i < to; i++) {
		if (io->entries[i] == NULL || b->items[i].duplicate)
			continue;
		*tail = io->entries[i];
		tail = &io->entries[i]->next;
		io->entries[i] = NULL;
	}
	*tail = NULL;
	dispatch_enqueue_events(d, b->new_pending, b->n_new_pending, list);
	/* The dispatcher has its copy: a part's pending list is not kept. */
	free(b->new_pending);
	b->new_pending = NULL;
	b->n_new_pending = 0;
	drop_written_ids(io);
}

/* Copies each event with deliveries for the dispatcher (see struct
 * ingest_op). Out of memory, an event is left out: it is then read from
 * the store. */
static void copy_events(struct ingest_op *io)
{
	io->entries = calloc(io->batch.n, sizeof *io->entries);
	if (io->entries == NULL)
		return;
	io->n_entries = io->batch.n;
	for (size_t i = 0; i < io->batch.n; i++)
		if (io->batch.items[i].n > 0)
			io->entries[i] = evcache_entry_new(&io->batch.items[i].ev);
}

/* One event of the 202. A duplicate stands for the stored original (its
 * type, time and deliveries), which only a key that may read events is
 * shown: an ingest-scoped key learns the id and that it was taken (by an
 * earlier event or Idempotency-Key), what a retry needs and nothing more. */
static int append_item(const struct api_req *r, bool compact, struct dynbuf *text,
		       const struct ingest_item *item)
{
	if (item->duplicate && r->ingest_scope)
		return ingest_item_append_brief(text, item);
	return compact ? ingest_item_append_count(text, item) : ingest_item_append_text(text, item);
}

/* The 202 body is written as text: building a JSON tree only to print it
 * cost more than the rest of the response. */
static void ingest_respond(struct api_req *r, struct api_op *o)
{
	struct ingest_op *io = (struct ingest_op *)o;
	struct ingest_batch *b = &io->batch;
	struct dynbuf text;
	int bad = 0;
	if (o->rc != STORE_OK) {
		/* Nothing of this request was stored (its savepoint was undone). */
		api_store_error(r, o->rc == STORE_NOTFOUND ? STORE_ERROR : o->rc, "event");
		return;
	}
	/* A replay or duplicates may list more than were prepared. */
	size_t listed = 0;
	for (size_t i = 0; i < b->n; i++)
		listed += b->items[i].n;
	bool compact = io->compact || listed > r->api->cfg.max_listed;
	dynbuf_init(&text, SIZE_MAX);
	if (!io->batch_form && b->n == 1) {
		bad = append_item(r, compact, &text, &b->items[0]);
	} else {
		/* A batch, or a replayed key whose first request was a batch. */
		bad = dynbuf_append(&text, "{\"events\":[", 11);
		for (size_t i = 0; i < b->n && !bad; i++) {
			bad = (i ? dynbuf_append(&text, ",", 1) : 0) |
			      append_item(r, compact, &text, &b->items[i]);
		}
		bad |= dynbuf_append(&text, "]}", 2);
	}
	if (bad) {
		dynbuf_free(&text);
		api_internal_error(r, "ingest response");
		return;
	}
	api_reply_text(r, MHD_HTTP_ACCEPTED, text.data, text.len);
}

/* A new op for n events (items zeroed), with the Idempotency-Key if any;
 * its deliveries are due first_delay_ms after the events' acceptance. */
static struct ingest_op *ingest_op_new(size_t n, bool batch_form, const char *key,
				       int64_t first_delay_ms)
{
	struct ingest_op *io = calloc(1, sizeof *io);
	if (io == NULL)
		return NULL;
	io->base.op.apply = ingest_op_apply;
	io->base.op.rerun_ok = true; /* ingest_apply resets what it hands back */
	io->base.op.hop = HOP_INGEST_QUEUE;
	io->base.committed = ingest_committed;
	io->base.next_part = ingest_next_part;
	io->base.respond = ingest_respond;
	io->base.destroy = ingest_destroy;
	io->batch_form = batch_form;
	io->batch.first_delay_ms = first_delay_ms;
	io->batch.items = calloc(n, sizeof *io->batch.items);
	if (key != NULL)
		io->batch.idem_key = strdup(key);
	if (io->batch.items == NULL || (key != NULL && io->batch.idem_key == NULL)) {
		ingest_destroy(&io->base);
		return NULL;
	}
	return io;
}

/* Adds item's fan-out to the request's. Past --max-deliveries-per-request
 * the request will be refused: counting goes on (the error gives the whole
 * count) but no item keeps its ids from then on, so memory stays bounded by
 * the limit and one event's fan-out. */
static void count_fanout(struct api_req *r, struct ingest_op *io, struct ingest_item *item)
{
	size_t max = r->api->cfg.max_deliveries ? r->api->cfg.max_deliveries : SIZE_MAX;
	io->total += item->n;
	if (io->total <= max)
		return;
	if (!io->over) {
		io->over = true;
		for (size_t i = 0; i < io->batch.n; i++)
			ingest_item_drop_ids(&io->batch.items[i]);
	}
	ingest_item_drop_ids(item);
}

/* 422 too_many_deliveries naming the limit and the count; field is
 * "events" for a batch, "event" for one event. */
static void refuse_fanout(struct api_req *r, const struct ingest_op *io)
{
	api_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "too_many_deliveries",
		  io->batch_form ? "events" : "event",
		  "this request would create %zu deliveries (events x matching endpoints); the "
		  "limit is %zu (--max-deliveries-per-request): send the events in smaller batches",
		  io->total, r->api->cfg.max_deliveries);
}

/* Sets up a large fan-out to be written in parts and a compact 202. */
static void plan_parts(struct api_req *r, struct ingest_op *io)
{
	io->compact = io->total > r->api->cfg.max_listed;
	if (io->total <= INGEST_PART_DELIVERIES)
		return;
	io->in_parts = true;
	io->batch.in_parts = true;
	io->base.op.rerun_ok = false; /* each part runs once */
	io->base.op.alone = true;
	io->from = 0;
	io->to = ingest_part_end(&io->batch, 0);
}

/* The fast path (validate_ingest_fast): 0 and the op in *out, 1 if the body
 * needs the full path, -1 if out of memory. */
static int ingest_fast(struct api_req *r, const char *key, int64_t now, struct ingest_op **out)
{
	struct validate_fast v;
	int rc = validate_ingest_fast(r->body.data, r->body.len, r->api->cfg.max_json_depth, &v);
	if (rc != 0)
		return rc;
	struct ingest_op *io = ingest_op_new(v.n, v.batch, key, r->api->cfg.first_delay_ms);
	rc = io != NULL ? 0 : -1;
	for (size_t i = 0; i < v.n && rc == 0; i++) {
		char *type = strdup(v.events[i].type);
		/* prepare owns type and data from here, failing or not. */
		rc = ingest_item_prepare(&io->batch.items[i], r->api->cache, v.events[i].id, type,
					 v.events[i].data, NULL, now);
		v.events[i].data = NULL;
		io->batch.n = i + 1;
		if (rc == 0)
			count_fanout(r, io, &io->batch.items[i]);
	}
	validate_fast_free(&v);
	if (rc != 0 && io != NULL)
		ingest_destroy(&io->base);
	*out = rc == 0 ? io : NULL;
	return rc;
}

/* The full path: a JSON tree, validate_ingest, the error words. 0 and the
 * op in *out; -1 with the response set. */
static int ingest_full(struct api_req *r, const char *key, int64_t now, struct ingest_op **out)
{
	struct validate_ingest v = {0};
	struct validate_error err;
	struct ingest_op *io = NULL;
	int rc = -1;
	json_t *body = api_body_json(r);
	if (body == NULL)
		return -1;
	if (validate_ingest(body, &v, &err) != 0) {
		api_invalid(r, &err);
		goto out;
	}
	io = ingest_op_new(v.n, v.batch, key, r->api->cfg.first_delay_ms);
	if (io == NULL)
		goto oom;
	for (size_t i = 0; i < v.n; i++) {
		char *type = strdup(v.events[i].type);
		char *data = validate_json_text(v.events[i].data);
		/* prepare owns type and data from here, failing or not. */
		int prc = ingest_item_prepare(&io->batch.items[i], r->api->cache, v.events[i].id,
					      type, data, v.events[i].data, now);
		io->batch.n = i + 1;
		if (prc != 0)
			goto oom;
		count_fanout(r, io, &io->batch.items[i]);
	}
	*out = io;
	io = NULL;
	rc = 0;
	goto out;
oom:
	api_internal_error(r, "ingest");
out:
	if (io != NULL)
		ingest_destroy(&io->base);
	validate_ingest_free(&v);
	json_decref(body);
	return rc;
}

void api_events_ingest(struct api_req *r)
{
	struct validate_error err;
	struct ingest_op *io = NULL;
	const char *key = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Idempotency-Key");
	int64_t now = now_ms();
	/* Below --min-free-space, new events are refused before anything is
	 * written, so the space left goes to the deliveries' records. */
	if (store_health_has(r->api->cfg.health, STORE_COND_LOW_SPACE)) {
		api_storage_full(r, "low space: free space on the database's volume is below "
				    "--min-free-space; new events are refused until there is more; "
				    "retry later");
		return;
	}
	int rc = ingest_fast(r, key, now, &io);
	if (rc < 0) {
		api_internal_error(r, "ingest");
		return;
	}
	if (rc > 0 && ingest_full(r, key, now, &io) != 0)
		return;
	/* The body is good: the header is checked after it, as it always was. */
	if (key != NULL && validate_idempotency_key(key, &err) != 0) {
		api_invalid(r, &err);
		ingest_destroy(&io->base);
		return;
	}
	if (io->over) {
		refuse_fanout(r, io);
		ingest_destroy(&io->base);
		return;
	}
	plan_parts(r, io);
	if (r->api->dispatch != NULL)
		copy_events(io);
	api_submit(r, &io->base);
}

static int append_delivery(const struct delivery *d, void *arg)
{
	return json_array_append_new(arg, delivery_to_json(d)) == 0 ? STORE_OK : STORE_ERROR;
}

/* Every delivery of an event as a JSON array (NULL on error, rc set). */
static json_t *event_deliveries(struct store *st, const char *event_id, int *rc)
{
	json_t *arr = json_array();
	*rc = arr ? store_delivery_each_of_event(st, event_id, append_delivery, arr) : STORE_ERROR;
	if (*rc != STORE_OK) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

void api_events_get(struct api_req *r)
{
	struct event ev = {0};
	json_t *deliveries = NULL;
	struct store *st = api_store_get(r->api);
	int rc = st ? store_event_get(st, r->id, &ev) : STORE_ERROR;
	if (rc == STORE_OK)
		deliveries = event_deliveries(st, r->id, &rc);
	if (st)
		api_store_put(r->api, st);
	if (rc != STORE_OK) {
		api_store_error(r, rc, "event");
		goto out;
	}
	json_t *j = event_to_json(&ev);
	if (j == NULL) {
		json_decref(deliveries);
	} else if (json_object_set_new(j, "deliveries", deliveries) != 0) {
		json_decref(j); /* set_new took deliveries even so */
		j = NULL;
	}
	deliveries = NULL;
	api_reply(r, MHD_HTTP_OK, j);
out:
	json_decref(deliveries);
	event_clear(&ev);
}

/* The data of one page of GET /v1/events may add up to this many bytes;
 * past it the page ends early with a next_cursor. A page holds at least
 * one event, however large (up to --max-body). */
#define API_EVENTS_PAGE_BYTES (4u << 20)

/* {"data":[Event, …],"next_cursor":…} as text: each event is written as
 * it is sent to receivers (its data verbatim), which a JSON tree of a page
 * of payloads would cost several times the memory to rebuild. */
static char *events_page_text(const struct event *evs, size_t n, const char *next, size_t *len)
{
	struct dynbuf b;
	int bad = 0;
	dynbuf_init(&b, SIZE_MAX);
	bad |= dynbuf_append(&b, "{\"data\":[", 9);
	for (size_t i = 0; i < n && !bad; i++) {
		size_t elen = 0;
		char *e = event_delivery_body(&evs[i], &elen);
		bad |= e == NULL || (i > 0 && dynbuf_append(&b, ",", 1) != 0) ||
		       dynbuf_append(&b, e, elen) != 0;
		free(e);
	}
	bad |= dynbuf_append(&b, "],\"next_cursor\":", 16);
	if (next[0] != '\0') /* "c" and digits: nothing to escape */
		bad |= dynbuf_append(&b, "\"", 1) | dynbuf_append(&b, next, strlen(next)) |
		       dynbuf_append(&b, "\"", 1);
	else
		bad |= dynbuf_append(&b, "null", 4);
	bad |= dynbuf_append(&b, "}", 1);
	if (bad) {
		dynbuf_free(&b);
		return NULL;
	}
	*len = b.len;
	return b.data;
}

/* Reads GET /v1/events's filters into q: 0, or -1 with a 400 sent. */
static int events_list_args(struct api_req *r, struct event_query *q)
{
	struct validate_error err;
	q->type = api_arg(r, "type");
	q->endpoint_id = api_arg(r, "endpoint_id");
	if (validate_query_type(q->type, "type", &err) != 0 ||
	    validate_query_window(api_arg(r, "since"), api_arg(r, "until"), &q->has_since,
				  &q->since, &q->has_until, &q->until, &err) != 0 ||
	    validate_query_id(q->endpoint_id, "endpoint_id", &err) != 0) {
		api_invalid(r, &err);
		return -1;
	}
	return api_page_args(r, &q->limit, &q->cursor);
}

/* GET /v1/events?type&since&until&endpoint_id&limit&cursor: newest first,
 * without their deliveries (GET /v1/events/{id} has them). */
void api_events_list(struct api_req *r)
{
	struct event_query q = {.max_bytes = API_EVENTS_PAGE_BYTES};
	struct event *evs = NULL;
	size_t n = 0, len = 0;
	char next[STORE_CURSOR_MAX] = "";
	if (events_list_args(r, &q) != 0)
		return;
	struct store *st = api_store_get(r->api);
	int rc = st ? store_event_list(st, &q, &evs, &n, next) : STORE_ERROR;
	if (st)
		api_store_put(r->api, st);
	if (rc == STORE_NOTFOUND) {
		api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_field", "cursor",
			  "not a cursor of this list");
	} else if (rc != STORE_OK) {
		api_internal_error(r, "event list");
	} else {
		char *text = events_page_text(evs, n, next, &len);
		if (text == NULL)
			api_internal_error(r, "event list");
		else
			api_reply_text(r, MHD_HTTP_OK, text, len);
	}
	for (size_t i = 0; i < n; i++)
		event_clear(&evs[i]);
	free(evs);
}
