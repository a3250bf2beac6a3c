/* api_endpoints: /v1/endpoints. Writes go through the commit thread; once a
 * write committed, the endpoint cache is updated on that same thread, so the
 * cache follows the commit order and a later ingest sees the change. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "api_internal.h"
#include "custom_headers.h"
#include "dispatch.h"
#include "epcache.h"
#include "epsync.h"
#include "log.h"
#include "model.h"
#include "queue_depth.h"
#include "sign.h"

struct ep_op {
	struct api_op base;
	struct endpoint ep;       /* create: the new endpoint; patch: the change, then the result */
	unsigned fields;          /* patch: VALIDATE_EP_* given */
	bool invalid;             /* patch: refused against the stored endpoint (err) */
	int max_endpoints;        /* create: --max-endpoints */
	bool limit_reached;       /* create: refused, max_endpoints exist */
	struct validate_error err;
	/* rotate: the new secret's kind when the body named one (else the
	 * current secret's), and how long the old secret keeps signing. */
	bool alg_given;
	enum sign_alg alg;
	int64_t overlap_ms;
};

static void ep_destroy(struct api_op *o)
{
	struct ep_op *e = (struct ep_op *)o;
	endpoint_clear(&e->ep);
	free(e);
}

static struct ep_op *ep_op_new(int (*apply)(struct store *, struct commit_op *),
			       void (*committed)(struct api_op *),
			       void (*respond)(struct api_req *, struct api_op *))
{
	struct ep_op *e = calloc(1, sizeof *e);
	if (e == NULL)
		return NULL;
	e->base.op.apply = apply;
	e->base.committed = committed;
	e->base.respond = respond;
	e->base.destroy = ep_destroy;
	return e;
}

/* Copies the validated fields v into ep (strings duplicated). */
static int copy_fields(struct endpoint *ep, const struct validate_endpoint *v)
{
	if (v->fields & VALIDATE_EP_URL && (ep->url = strdup(v->url)) == NULL)
		return -1;
	if (v->fields & VALIDATE_EP_DESCRIPTION &&
	    (ep->description = strdup(v->description)) == NULL)
		return -1;
	if (v->fields & VALIDATE_EP_EVENTS && (ep->events = json_deep_copy(v->events)) == NULL)
		return -1;
	if (v->fields & VALIDATE_EP_SECRET && (ep->secret = strdup(v->secret)) == NULL)
		return -1;
	if (v->fields & VALIDATE_EP_ENABLED)
		ep->enabled = v->enabled;
	if (v->fields & VALIDATE_EP_FILTERS && v->filters != NULL &&
	    (ep->filters = json_deep_copy(v->filters)) == NULL)
		return -1;
	if (v->fields & VALIDATE_EP_HEADERS && v->headers != NULL &&
	    (ep->headers = json_deep_copy(v->headers)) == NULL)
		return -1;
	if (v->fields & VALIDATE_EP_RATE_LIMIT)
		ep->rate_limit = v->rate_limit;
	if (v->fields & VALIDATE_EP_MAX_IN_FLIGHT)
		ep->max_in_flight = v->max_in_flight;
	if (v->fields & VALIDATE_EP_BATCH) {
		ep->batch_max_events = v->batch_max_events;
		ep->batch_max_wait_ms = v->batch_max_wait_ms;
	}
	return 0;
}

json_t *api_endpoint_json(struct api *a, const struct endpoint *e, bool with_secret)
{
	struct dispatch_endpoint_status ds;
	char t[32];
	json_t *j = endpoint_to_json(e, with_secret);
	if (j == NULL)
		return NULL;
	dispatch_endpoint_status(a->dispatch, e->id, &ds);
	const char *circuit = ds.circuit ? ds.circuit : "closed";
	int bad = json_object_set_new(j, "circuit", json_string(circuit));
	if (ds.next_probe_at > 0)
		rfc3339_format(ds.next_probe_at, t);
	bad |= json_object_set_new(j, "next_probe_at",
				   ds.next_probe_at > 0 ? json_string(t) : json_null());
	/* A pause that has ended is no pause. */
	bool paused = ds.paused_until > now_ms();
	if (paused)
		rfc3339_format(ds.paused_until, t);
	bad |= json_object_set_new(j, "paused_until", paused ? json_string(t) : json_null());
	if (bad) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* True if url's host is an IP address (in any spelling libcurl reads as
 * one: 127.1, 0x7f000001, [::1]) that the address guard would refuse to
 * dial, with netguard_message's reason in msg. A host name is judged when
 * it is resolved, on each dial. */
static bool url_blocked(const struct netguard *g, const char *url, char *msg, size_t len)
{
	CURLU *u = curl_url();
	char *host = NULL;
	struct sockaddr_storage ss;
	struct netguard_why why;
	bool blocked = false;
	if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    netguard_ip_parse(host, &ss) != 0 &&
	    !netguard_allows(g, (const struct sockaddr *)&ss, &why)) {
		netguard_message((const struct sockaddr *)&ss, &why, msg, len);
		blocked = true;
	}
	curl_free(host);
	curl_url_cleanup(u);
	return blocked;
}

/* Parses and validates the body; replies 400 and returns NULL on error. */
static json_t *endpoint_body(struct api_req *r, bool create, struct validate_endpoint *v)
{
	struct validate_error err;
	json_t *body = api_body_json(r);
	if (body == NULL)
		return NULL;
	if (validate_endpoint(body, create, r->api->cfg.allow_http, v, &err) != 0) {
		api_invalid(r, &err);
		json_decref(body);
		return NULL;
	}
	if ((v->fields & VALIDATE_EP_HEADERS) && v->headers != NULL &&
	    custom_headers_check_count(v->headers, r->api->cfg.max_custom_headers, err.message,
				       sizeof err.message) != 0) {
		api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_field", v->headers_field, "%s",
			  err.message);
		json_decref(body);
		return NULL;
	}
	char why[NETGUARD_MSG_MAX];
	if ((v->fields & VALIDATE_EP_URL) && url_blocked(&r->api->netguard, v->url, why,
							 sizeof why)) {
		api_error(r, MHD_HTTP_BAD_REQUEST, "invalid_field", "url",
			  "deliveries to this URL would be refused by the address guard: %s", why);
		json_decref(body);
		return NULL;
	}
	return body;
}

/* What a committed change touches in memory (epsync.h: the same for a
 * change another node made). */
static struct epsync ep_sync(struct api *a)
{
	return (struct epsync){a->cache, a->dispatch, a->cfg.queue, a->cfg.metrics};
}

/* A PATCH's or rotation's done(): the cache, and the dispatcher if the
 * endpoint is enabled again. */
static void cache_put(struct api_op *o)
{
	struct epsync s = ep_sync(o->req->api);
	epsync_put(&s, &((struct ep_op *)o)->ep, false);
}

/* A create's done(): nothing of a new endpoint waits in the store. */
static void cache_put_new(struct api_op *o)
{
	struct epsync s = ep_sync(o->req->api);
	epsync_put(&s, &((struct ep_op *)o)->ep, true);
}

/* A secret's kind, from its prefix (checked when it was accepted). */
static enum sign_alg secret_alg(const char *secret)
{
	const char *ed = SIGN_ED25519_SECRET_PREFIX;
	return secret != NULL && strncmp(secret, ed, strlen(ed)) == 0 ? SIGN_ED25519 : SIGN_HMAC;
}

/* The Ed25519 private key ("whsk_") is shown only in the responses that
 * made it (create and rotate): receivers need only its public key. An HMAC
 * secret is shared by nature and shown wherever the endpoint is read alone. */
static bool secret_shown(const struct endpoint *e)
{
	return secret_alg(e->secret) == SIGN_HMAC;
}

/* ---- POST /v1/endpoints ---- */

static int create_apply(struct store *st, struct commit_op *op)
{
	struct ep_op *e = (struct ep_op *)op;
	int64_t n = 0;
	/* Counted in the create's own transaction: creates in one commit
	 * group see each other, so the limit holds exactly. */
	int rc = store_endpoint_count(st, &n);
	if (rc != STORE_OK)
		return rc;
	if (n >= e->max_endpoints) {
		e->limit_reached = true;
		return STORE_CONFLICT;
	}
	return store_endpoint_insert(st, &e->ep);
}

static void create_respond(struct api_req *r, struct api_op *o)
{
	struct ep_op *e = (struct ep_op *)o;
	if (e->limit_reached) {
		api_error(r, MHD_HTTP_CONFLICT, "limit_reached", NULL,
			  "%d endpoints exist, the limit (--max-endpoints); delete one first",
			  e->max_endpoints);
		return;
	}
	if (o->rc != STORE_OK) {
		api_store_error(r, o->rc, "endpoint");
		return;
	}
	log_info("endpoint created id=%s enabled=%d signing=%s", e->ep.id, e->ep.enabled,
		 sign_alg_name(secret_alg(e->ep.secret)));
	api_reply(r, MHD_HTTP_CREATED, api_endpoint_json(r->api, &e->ep, true));
}

void api_endpoints_create(struct api_req *r)
{
	struct validate_endpoint v;
	json_t *body = endpoint_body(r, true, &v);
	if (body == NULL)
		return;
	struct ep_op *e = ep_op_new(create_apply, cache_put_new, create_respond);
	if (e == NULL)
		goto oom;
	struct endpoint *ep = &e->ep;
	e->max_endpoints = r->api->cfg.max_endpoints;
	ep->enabled = true;
	if (copy_fields(ep, &v) != 0 || id_new("ep", ep->id) != 0)
		goto oom;
	if (ep->description == NULL && (ep->description = strdup("")) == NULL)
		goto oom;
	if (ep->events == NULL && (ep->events = json_pack("[s]", "*")) == NULL)
		goto oom;
	if (ep->headers == NULL && (ep->headers = json_object()) == NULL)
		goto oom;
	if (ep->max_in_flight == 0)
		ep->max_in_flight = ENDPOINT_MAX_IN_FLIGHT_DEFAULT;
	if (ep->secret == NULL) {
		char secret[SIGN_SECRET_MAX];
		if (sign_secret_new(v.signing, secret) != 0 ||
		    (ep->secret = strdup(secret)) == NULL)
			goto oom;
	}
	ep->created_at = ep->updated_at = now_ms();
	json_decref(body);
	api_submit(r, &e->base);
	return;
oom:
	json_decref(body);
	if (e != NULL)
		ep_destroy(&e->base);
	api_internal_error(r, "endpoint create");
}

/* ---- GET /v1/endpoints, GET /v1/endpoints/{id} ---- */

void api_endpoints_list(struct api_req *r)
{
	int limit;
	const char *cursor;
	struct endpoint *eps = NULL;
	size_t n = 0;
	char next[STORE_CURSOR_MAX] = "";
	if (api_page_args(r, &limit, &cursor) != 0)
		return;
	struct store *st = api_store_get(r->api);
	int rc = st ? store_endpoint_list(st, cursor, limit, &eps, &n, next) : STORE_ERROR;
	if (st)
		api_store_put(r->api, st);
	if (rc != STORE_OK) {
		api_store_error(r, rc == STORE_NOTFOUND ? STORE_ERROR : rc, "endpoint list");
		return;
	}
	json_t *items = json_array();
	for (size_t i = 0; i < n; i++) {
		if (items &&
		    json_array_append_new(items, api_endpoint_json(r->api, &eps[i], false)) != 0) {
			json_decref(items);
			items = NULL;
		}
		endpoint_clear(&eps[i]);
	}
	free(eps);
	api_reply(r, MHD_HTTP_OK, api_list(items, next));
}

void api_endpoints_get(struct api_req *r)
{
	struct endpoint ep = {0};
	struct store *st = api_store_get(r->api);
	int rc = st ? store_endpoint_get(st, r->id, &ep) : STORE_ERROR;
	if (st)
		api_store_put(r->api, st);
	if (rc == STORE_OK)
		api_reply(r, MHD_HTTP_OK, api_endpoint_json(r->api, &ep, secret_shown(&ep)));
	else
		api_store_error(r, rc, "endpoint");
	endpoint_clear(&ep);
}

/* ---- PATCH /v1/endpoints/{id} ---- */

static void swap_str(char **a, char **b)
{
	char *t = *a;
	*a = *b;
	*b = t;
}

static void swap_json(json_t **a, json_t **b)
{
	json_t *t = *a;
	*a = *b;
	*b = t;
}

/* filters.events and events stay one list: a change of either must agree
 * with the other as stored. Fills e->err and returns -1 if not. */
static int check_one_list(struct ep_op *e, const struct endpoint *cur)
{
	json_t *fe = cur->filters ? json_object_get(cur->filters, "events") : NULL;
	if (fe == NULL || validate_events_same(cur->events, fe))
		return 0;
	e->invalid = true;
	if (e->fields & VALIDATE_EP_FILTERS) {
		snprintf(e->err.field, sizeof e->err.field, "filters.events");
		snprintf(e->err.message, sizeof e->err.message,
			 "differs from the endpoint's events: they are one list, give it once or "
			 "the same in both");
	} else {
		snprintf(e->err.field, sizeof e->err.field, "events");
		snprintf(e->err.message, sizeof e->err.message,
			 "differs from the endpoint's filters.events: they are one list; send "
			 "both, or filters without \"events\"");
	}
	return -1;
}

/* Read-modify-write on the commit thread, so two PATCHes never lose one
 * another's fields. */
/* Stores cur, the endpoint as changed, and makes it e's result (the op's
 * answer and the cache refresh read e->ep). Takes cur's contents. */
static int save_as_result(struct store *st, struct ep_op *e, struct endpoint *cur, int64_t now)
{
	cur->updated_at = now;
	int rc = store_endpoint_update(st, cur);
	endpoint_clear(&e->ep);
	e->ep = *cur;
	return rc;
}

static int patch_apply(struct store *st, struct commit_op *op)
{
	struct ep_op *e = (struct ep_op *)op;
	struct endpoint cur = {0};
	int rc = store_endpoint_get(st, e->ep.id, &cur);
	if (rc != STORE_OK)
		goto out;
	/* Swap each given field of the change into the current record; the
	 * old values leave with the change and are freed below. */
	if (e->fields & VALIDATE_EP_URL)
		swap_str(&cur.url, &e->ep.url);
	if (e->fields & VALIDATE_EP_DESCRIPTION)
		swap_str(&cur.description, &e->ep.description);
	if (e->fields & VALIDATE_EP_SECRET) {
		/* Replaced at once: a rotation's old secret stops with it (an
		 * overlap is what POST .../secret/rotate is for). */
		swap_str(&cur.secret, &e->ep.secret);
		free(cur.secret_previous);
		cur.secret_previous = NULL;
		cur.secret_previous_until = 0;
	}
	if (e->fields & VALIDATE_EP_EVENTS)
		swap_json(&cur.events, &e->ep.events);
	if (e->fields & VALIDATE_EP_FILTERS)
		swap_json(&cur.filters, &e->ep.filters);
	if (e->fields & VALIDATE_EP_HEADERS)
		swap_json(&cur.headers, &e->ep.headers);
	if (e->fields & VALIDATE_EP_RATE_LIMIT)
		cur.rate_limit = e->ep.rate_limit;
	if (e->fields & VALIDATE_EP_MAX_IN_FLIGHT)
		cur.max_in_flight = e->ep.max_in_flight;
	if (e->fields & VALIDATE_EP_BATCH) {
		cur.batch_max_events = e->ep.batch_max_events;
		cur.batch_max_wait_ms = e->ep.batch_max_wait_ms;
	}
	if (e->fields & VALIDATE_EP_ENABLED) {
		cur.enabled = e->ep.enabled;
		/* Enabled again by hand: why hookd disabled it is history. */
		if (cur.enabled) {
			free(cur.disabled_reason);
			cur.disabled_reason = NULL;
		}
	}
	if (check_one_list(e, &cur) != 0) {
		rc = STORE_CONFLICT;
		goto out;
	}
	return save_as_result(st, e, &cur, now_ms());
out:
	endpoint_clear(&cur);
	return rc;
}

/* Answers a PATCH or rotation that did not happen (bad input found on the
 * commit thread, or a store error); false if it did. */
static bool ep_op_failed(struct api_req *r, struct ep_op *e)
{
	if (e->invalid) {
		api_invalid(r, &e->err);
		return true;
	}
	if (e->base.rc != STORE_OK) {
		api_store_error(r, e->base.rc, "endpoint");
		return true;
	}
	return false;
}

static void patch_respond(struct api_req *r, struct api_op *o)
{
	struct ep_op *e = (struct ep_op *)o;
	if (ep_op_failed(r, e))
		return;
	log_info("endpoint updated id=%s enabled=%d", e->ep.id, e->ep.enabled);
	api_reply(r, MHD_HTTP_OK, api_endpoint_json(r->api, &e->ep, secret_shown(&e->ep)));
}

void api_endpoints_patch(struct api_req *r)
{
	struct validate_endpoint v;
	json_t *body = endpoint_body(r, false, &v);
	if (body == NULL)
		return;
	struct ep_op *e = ep_op_new(patch_apply, cache_put, patch_respond);
	if (e == NULL || copy_fields(&e->ep, &v) != 0) {
		json_decref(body);
		if (e != NULL)
			ep_destroy(&e->base);
		api_internal_error(r, "endpoint patch");
		return;
	}
	json_decref(body);
	e->fields = v.fields;
	memcpy(e->ep.id, r->id, ID_MAX);
	api_submit(r, &e->base);
}

/* ---- DELETE /v1/endpoints/{id} ---- */

static int delete_apply(struct store *st, struct commit_op *op)
{
	return store_endpoint_delete(st, ((struct ep_op *)op)->ep.id);
}

static void delete_committed(struct api_op *o)
{
	struct epsync s = ep_sync(o->req->api);
	epsync_deleted(&s, ((struct ep_op *)o)->ep.id);
}

static void delete_respond(struct api_req *r, struct api_op *o)
{
	if (o->rc != STORE_OK) {
		api_store_error(r, o->rc, "endpoint");
		return;
	}
	log_info("endpoint deleted id=%s", ((struct ep_op *)o)->ep.id);
	api_reply(r, MHD_HTTP_NO_CONTENT, NULL);
}

void api_endpoints_delete(struct api_req *r)
{
	struct ep_op *e = ep_op_new(delete_apply, delete_committed, delete_respond);
	if (e == NULL) {
		api_internal_error(r, "endpoint delete");
		return;
	}
	memcpy(e->ep.id, r->id, ID_MAX);
	api_submit(r, &e->base);
}

/* ---- POST /v1/endpoints/{id}/secret/rotate ---- */

/* The optional body {"secret"?: "whsec_…"|"whsk_…", "signing"?: "hmac"|
 * "ed25519"}: body may be NULL. Fills e's secret (NULL = generate) and
 * kind. Returns 0, -1 with err filled, or -2 if out of memory. */
static int rotate_body(json_t *body, struct ep_op *e, struct validate_error *err)
{
	const char *key, *field;
	json_t *v;
	memset(err, 0, sizeof *err);
	if (body == NULL)
		return 0;
	json_object_foreach(body, key, v) {
		bool known = strcmp(key, "secret") == 0 || strcmp(key, "signing") == 0;
		if (!known || !json_is_string(v)) {
			snprintf(err->field, sizeof err->field, "%s", key);
			snprintf(err->message, sizeof err->message, "%s",
				 known ? "must be a string"
				       : "unknown field (allowed: secret, signing)");
			return -1;
		}
	}
	const char *secret = json_string_value(json_object_get(body, "secret"));
	const char *signing = json_string_value(json_object_get(body, "signing"));
	if (sign_choice(secret, signing, &e->alg, &field, err->message, sizeof err->message) != 0) {
		snprintf(err->field, sizeof err->field, "%s", field);
		return -1;
	}
	e->alg_given = secret != NULL || signing != NULL;
	if (secret != NULL && (e->ep.secret = strdup(secret)) == NULL)
		return -2;
	return 0;
}

/* On the commit thread: the current secret becomes the previous one (any
 * older previous is dropped: one is kept) and signs until now + overlap;
 * the new one signs from now on. */
static int rotate_apply(struct store *st, struct commit_op *op)
{
	struct ep_op *e = (struct ep_op *)op;
	struct endpoint cur = {0};
	char fresh[SIGN_SECRET_MAX];
	int rc = store_endpoint_get(st, e->ep.id, &cur);
	if (rc != STORE_OK)
		goto out;
	if (e->ep.secret != NULL && strcmp(e->ep.secret, cur.secret) == 0) {
		e->invalid = true;
		snprintf(e->err.field, sizeof e->err.field, "secret");
		snprintf(e->err.message, sizeof e->err.message,
			 "is the endpoint's current secret: rotate to a new one");
		rc = STORE_CONFLICT;
		goto out;
	}
	if (e->ep.secret == NULL) {
		enum sign_alg alg = e->alg_given ? e->alg : secret_alg(cur.secret);
		if (sign_secret_new(alg, fresh) != 0 || (e->ep.secret = strdup(fresh)) == NULL) {
			rc = STORE_ERROR;
			goto out;
		}
	}
	int64_t now = now_ms();
	free(cur.secret_previous);
	cur.secret_previous = NULL;
	cur.secret_previous_until = 0;
	if (e->overlap_ms > 0) {
		swap_str(&cur.secret_previous, &cur.secret);
		cur.secret_previous_until = now + e->overlap_ms;
	}
	swap_str(&cur.secret, &e->ep.secret);
	return save_as_result(st, e, &cur, now);
out:
	endpoint_clear(&cur);
	return rc;
}

static void rotate_respond(struct api_req *r, struct api_op *o)
{
	struct ep_op *e = (struct ep_op *)o;
	if (ep_op_failed(r, e))
		return;
	log_info("endpoint secret rotated id=%s signing=%s overlap_ms=%lld", e->ep.id,
		 sign_alg_name(secret_alg(e->ep.secret)), (long long)e->overlap_ms);
	/* The new secret is shown here, whatever its kind: this made it. */
	api_reply(r, MHD_HTTP_OK, api_endpoint_json(r->api, &e->ep, true));
}

void api_endpoints_rotate(struct api_req *r)
{
	struct validate_error err;
	json_t *body = r->body.len > 0 ? api_body_json(r) : NULL;
	if (r->body.len > 0 && body == NULL)
		return; /* api_body_json replied 400 */
	struct ep_op *e = ep_op_new(rotate_apply, cache_put, rotate_respond);
	int rc = e != NULL ? rotate_body(body, e, &err) : -2;
	json_decref(body);
	if (rc != 0) {
		if (rc == -1)
			api_invalid(r, &err);
		else
			api_internal_error(r, "secret rotate");
		if (e != NULL)
			ep_destroy(&e->base);
		return;
	}
	memcpy(e->ep.id, r->id, ID_MAX);
	e->overlap_ms = r->api->cfg.secret_overlap_ms;
	api_submit(r, &e->base);
}
