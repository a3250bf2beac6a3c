/* ingest: accepted events -> stored events + one pending delivery per
 * matching endpoint. Fan-out happens in ingest_item_prepare on the caller's
 * thread; ingest_apply only writes, on the commit thread, so a group commit
 * stays short. */
#include "ingest.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* Deliveries of one event are read back in pages of this size. */

int ingest_item_prepare(struct ingest_item *item, struct epcache *cache, const char *given_id,
			char *type, char *data_text, json_t *data, int64_t now)
{
	memset(item, 0, sizeof *item);
	/* Owned from here on, so ingest_batch_clear frees them on any failure. */
	item->ev.type = type;
	item->ev.data = data_text;
	item->ev.created_at = now;
	if (type == NULL || data_text == NULL)
		return -1;
	if (given_id != NULL && given_id[0] != '\0') {
		if (strlen(given_id) >= ID_MAX)
			return -1;
		strcpy(item->ev.id, given_id);
	} else if (id_new("evt", item->ev.id) != 0) {
		return -1;
	}
	size_t n = 0;
	/* Without a tree (the fast path) the text is parsed only if a filter
	 * needs it. */
	if (data != NULL)
		item->endpoint_ids = epcache_match(cache, type, data, &n);
	else
		item->endpoint_ids = epcache_match_text(cache, type, data_text, &n);
	if (n == 0)
		return 0;
	item->delivery_ids = malloc(n * sizeof *item->delivery_ids);
	if (item->delivery_ids == NULL) {
		free(item->endpoint_ids);
		item->endpoint_ids = NULL;
		return -1;
	}
	item->n = n;
	for (size_t i = 0; i < n; i++) {
		if (id_new("dlv", item->delivery_ids[i]) != 0)
			return -1;
	}
	return 0;
}

static void item_clear(struct ingest_item *item)
{
	event_clear(&item->ev);
	free(item->endpoint_ids);
	free(item->delivery_ids);
	item->endpoint_ids = NULL;
	item->delivery_ids = NULL;
	item->n = 0;
}

static int item_copy(struct ingest_item *dst, const struct ingest_item *src)
{
	memset(dst, 0, sizeof *dst);
	dst->ev = src->ev;
	dst->ev.type = xstrdup(src->ev.type);
	dst->ev.data = xstrdup(src->ev.data);
	dst->n = src->n;
	dst->duplicate = src->duplicate;
	if (src->n > 0) {
		size_t size = src->n * sizeof *dst->endpoint_ids;
		dst->endpoint_ids = malloc(size);
		dst->delivery_ids = malloc(size);
		if (dst->endpoint_ids != NULL)
			memcpy(dst->endpoint_ids, src->endpoint_ids, size);
		if (dst->delivery_ids != NULL)
			memcpy(dst->delivery_ids, src->delivery_ids, size);
	}
	if ((src->ev.type && !dst->ev.type) || (src->ev.data && !dst->ev.data) ||
	    (src->n > 0 && (!dst->endpoint_ids || !dst->delivery_ids))) {
		item_clear(dst);
		return -1;
	}
	return 0;
}

/* Called before a run first replaces an item: keeps the batch's items as
 * they were prepared (every run starts from them, see restore_prepared). */
static int keep_prepared(struct ingest_batch *b)
{
	if (b->prepared != NULL || b->in_parts)
		return 0;
	struct ingest_item *p = calloc(b->n ? b->n : 1, sizeof *p);
	if (p == NULL)
		return -1;
	for (size_t i = 0; i < b->n; i++) {
		if (item_copy(&p[i], &b->items[i]) != 0) {
			for (size_t k = 0; k < i; k++)
				item_clear(&p[k]);
			free(p);
			return -1;
		}
	}
	b->prepared = p;
	b->n_prepared = b->n;
	return 0;
}

/* At the start of a run: if an earlier run (since rolled back) replaced
 * items, the items as prepared again. */
static void restore_prepared(struct ingest_batch *b)
{
	if (b->prepared == NULL)
		return;
	for (size_t i = 0; i < b->n; i++)
		item_clear(&b->items[i]);
	free(b->items);
	b->items = b->prepared;
	b->n = b->n_prepared;
	b->prepared = NULL;
	b->n_prepared = 0;
}

struct dlv_pair {
	char delivery_id[ID_MAX];
	char endpoint_id[ID_MAX];
};

static int pair_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dlv_pair *)a)->delivery_id,
		      ((const struct dlv_pair *)b)->delivery_id);
}

/* Puts item's deliveries in id order, which is the order they were made in
 * (ids sort by creation), so a duplicate lists them as the original did. */
static int sort_deliveries(struct ingest_item *item)
{
	if (item->n < 2)
		return 0;
	struct dlv_pair *p = malloc(item->n * sizeof *p);
	if (p == NULL)
		return -1;
	for (size_t i = 0; i < item->n; i++) {
		memcpy(p[i].delivery_id, item->delivery_ids[i], ID_MAX);
		memcpy(p[i].endpoint_id, item->endpoint_ids[i], ID_MAX);
	}
	qsort(p, item->n, sizeof *p, pair_cmp);
	for (size_t i = 0; i < item->n; i++) {
		memcpy(item->delivery_ids[i], p[i].delivery_id, ID_MAX);
		memcpy(item->endpoint_ids[i], p[i].endpoint_id, ID_MAX);
	}
	free(p);
	return 0;
}

/* Appends one stored delivery's ids to item (growing its arrays by pages). */
static int add_original_delivery(const struct delivery *d, void *arg)
{
	struct ingest_item *item = arg;
	/* The arrays hold a power of two: at n = 0, 1, 2, 4, … they are full. */
	if ((item->n & (item->n - 1)) == 0) {
		size_t ncap = item->n ? item->n * 2 : 1;
		void *a = realloc(item->endpoint_ids, ncap * sizeof *item->endpoint_ids);
		if (a != NULL)
			item->endpoint_ids = a;
		void *b = realloc(item->delivery_ids, ncap * sizeof *item->delivery_ids);
		if (b != NULL)
			item->delivery_ids = b;
		if (a == NULL || b == NULL)
			return STORE_ERROR;
	}
	memcpy(item->endpoint_ids[item->n], d->endpoint_id, ID_MAX);
	memcpy(item->delivery_ids[item->n], d->id, ID_MAX);
	item->n++;
	return STORE_OK;
}

/* Replaces item with the stored event `id` and its deliveries (the original
 * a duplicate stands for). */
static int load_original(struct store *st, struct ingest_item *item, const char *id)
{
	struct event ev = {0};
	char ev_id[ID_MAX];
	snprintf(ev_id, sizeof ev_id, "%s", id); /* id may point into item */

	int rc = store_event_get(st, ev_id, &ev);
	if (rc != STORE_OK)
		return rc;
	item_clear(item);
	item->ev = ev;
	item->duplicate = true;
	rc = store_delivery_each_of_event(st, ev_id, add_original_delivery, item);
	if (rc != STORE_OK)
		return rc;
	return sort_deliveries(item) == 0 ? STORE_OK : STORE_ERROR;
}

/* The key was used before: the batch becomes the original request's events. */
static int replay(struct store *st, struct ingest_batch *b, json_t *ids)
{
	for (size_t i = 0; i < b->n; i++)
		item_clear(&b->items[i]);
	b->n = 0;
	size_t want = json_array_size(ids);
	if (want > 0) {
		struct ingest_item *items = realloc(b->items, want * sizeof *items);
		if (items == NULL)
			return STORE_ERROR;
		b->items = items;
	}
	b->idem_replay = true;
	for (size_t i = 0; i < want; i++) {
		const char *id = json_string_value(json_array_get(ids, i));
		struct ingest_item *item = &b->items[b->n];
		memset(item, 0, sizeof *item);
		if (id == NULL)
			continue;
		int rc = load_original(st, item, id);
		if (rc == STORE_NOTFOUND) {
			/* Retention deleted it while another event of the key is still
			 * kept (the key goes with the last one): show what is left. */
			log_debug("ingest: idempotency key names a deleted event id=%s", id);
			item_clear(item);
			continue;
		}
		b->n++;
		if (rc != STORE_OK)
			return rc;
	}
	return STORE_OK;
}

static int add_pending(struct ingest_batch *b, size_t *cap, const struct delivery *d)
{
	struct pending *np = array_grow(b->new_pending, cap, b->n_new_pending + 1, sizeof *np, 16);
	if (np == NULL)
		return -1;
	b->new_pending = np;
	struct pending *p = &b->new_pending[b->n_new_pending++];
	memset(p, 0, sizeof *p);
	p->seq = d->seq;
	memcpy(p->id, d->id, ID_MAX);
	memcpy(p->event_id, d->event_id, ID_MAX);
	memcpy(p->endpoint_id, d->endpoint_id, ID_MAX);
	p->attempt_count = d->attempt_count;
	p->schedule_index = d->schedule_index;
	p->next_attempt_at = d->next_attempt_at;
	return 0;
}

/* The pending deliveries of the items [from, to) whose event is new
 * (rcs[i - from] STORE_OK), in item order, into a malloc'd *out. */
static int new_deliveries(const struct ingest_batch *b, size_t from, size_t to, const int *rcs,
			  struct delivery **out, size_t *n)
{
	size_t total = 0;
	for (size_t i = from; i < to; i++)
		total += rcs[i - from] == STORE_OK ? b->items[i].n : 0;
	*n = 0;
	*out = calloc(total ? total : 1, sizeof **out);
	if (*out == NULL)
		return STORE_ERROR;
	for (size_t i = from; i < to; i++) {
		const struct ingest_item *item = &b->items[i];
		for (size_t k = 0; rcs[i - from] == STORE_OK && k < item->n; k++) {
			struct delivery *d = &(*out)[(*n)++];
			d->status = DELIVERY_PENDING;
			d->event_type = item->ev.type;
			d->next_attempt_at = item->ev.created_at + b->first_delay_ms;
			d->created_at = d->updated_at = item->ev.created_at;
			memcpy(d->id, item->delivery_ids[k], ID_MAX);
			memcpy(d->event_id, item->ev.id, ID_MAX);
			memcpy(d->endpoint_id, item->endpoint_ids[k], ID_MAX);
		}
	}
	return STORE_OK;
}

/* Inserts the events of the items [from, to) (rcs[i - from]: STORE_OK if
 * new, STORE_CONFLICT if the id was there) and the deliveries of the new
 * ones, each set-based (store_event_insert_many: a round trip each on
 * PostgreSQL, not one per row). */
static int insert_rows(struct store *st, struct ingest_batch *b, size_t from, size_t to,
		       int *rcs, size_t *cap)
{
	size_t n = to - from, nd = 0;
	struct event *evs = malloc(n * sizeof *evs);
	struct delivery *ds = NULL;
	if (evs == NULL)
		return STORE_ERROR;
	for (size_t i = 0; i < n; i++)
		evs[i] = b->items[from + i].ev; /* borrowed, not owned */
	int rc = store_event_insert_many(st, evs, n, rcs);
	free(evs);
	if (rc == STORE_OK)
		rc = new_deliveries(b, from, to, rcs, &ds, &nd);
	if (rc == STORE_OK)
		rc = store_delivery_insert_many(st, ds, nd);
	for (size_t i = 0; rc == STORE_OK && i < nd; i++)
		if (add_pending(b, cap, &ds[i]) != 0)
			rc = STORE_ERROR;
	free(ds);
	return rc;
}

/* Writes the items [from, to): the rows first, then each item whose id was
 * given before (by an earlier request or an earlier item of this batch,
 * whose rows are in by then) becomes the original, for the answer. */
static int insert_items(struct store *st, struct ingest_batch *b, size_t from, size_t to,
			size_t *cap)
{
	int *rcs = malloc((to - from) * sizeof *rcs);
	if (rcs == NULL)
		return STORE_ERROR;
	int rc = insert_rows(st, b, from, to, rcs, cap);
	for (size_t i = from; rc == STORE_OK && i < to; i++) {
		if (rcs[i - from] != STORE_CONFLICT)
			continue;
		if (keep_prepared(b) != 0)
			rc = STORE_ERROR;
		else
			rc = load_original(st, &b->items[i], b->items[i].ev.id);
	}
	free(rcs);
	return rc;
}

/* Writes the items [from, to) of b: the key is looked up at from == 0 and
 * stored at to == b->n. */
static int apply_range(struct store *st, struct ingest_batch *b, size_t from, size_t to)
{
	json_t *ids = NULL;
	size_t cap = 0;
	int rc;

	free(b->new_pending);
	b->new_pending = NULL;
	b->n_new_pending = 0;
	b->idem_replay = false;
	if (b->idem_key != NULL && from == 0) {
		rc = store_idem_get(st, b->idem_key, &ids);
		if (rc == STORE_OK) {
			rc = keep_prepared(b) == 0 ? replay(st, b, ids) : STORE_ERROR;
			goto out;
		}
		if (rc != STORE_NOTFOUND)
			goto out;
		ids = NULL;
	}
	rc = from < to ? insert_items(st, b, from, to, &cap) : STORE_OK;
	if (rc != STORE_OK)
		goto out;
	if (b->idem_key != NULL && to == b->n) {
		ids = json_array();
		if (ids == NULL) {
			rc = STORE_ERROR;
			goto out;
		}
		for (size_t i = 0; i < b->n; i++) {
			if (json_array_append_new(ids, json_string(b->items[i].ev.id)) != 0) {
				rc = STORE_ERROR;
				goto out;
			}
		}
		rc = store_idem_put(st, b->idem_key, ids, now_ms());
	}
out:
	json_decref(ids);
	return rc;
}

int ingest_apply(struct store *st, struct ingest_batch *b)
{
	/* A run again after a rollback starts from the batch as prepared and
	 * must not hand out the first run's deliveries (apply_range resets
	 * them). */
	restore_prepared(b);
	return apply_range(st, b, 0, b->n);
}

int ingest_apply_part(struct store *st, struct ingest_batch *b, size_t from, size_t to)
{
	if (from >= to || to > b->n)
		return STORE_ERROR;
	return apply_range(st, b, from, to);
}

size_t ingest_part_end(const struct ingest_batch *b, size_t from)
{
	size_t sum = 0, i = from;
	while (i < b->n && (i == from || sum < INGEST_PART_DELIVERIES)) {
		/* Stop before an item that would take the part far past its size. */
		if (i > from && sum + b->items[i].n > 2 * INGEST_PART_DELIVERIES)
			break;
		sum += b->items[i++].n;
	}
	return i;
}

void ingest_item_drop_ids(struct ingest_item *item)
{
	free(item->endpoint_ids);
	free(item->delivery_ids);
	item->endpoint_ids = NULL;
	item->delivery_ids = NULL;
}

void ingest_batch_clear(struct ingest_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		item_clear(&b->items[i]);
	free(b->items);
	for (size_t i = 0; i < b->n_prepared; i++)
		item_clear(&b->prepared[i]);
	free(b->prepared);
	free(b->idem_key);
	free(b->new_pending);
	memset(b, 0, sizeof *b);
}

json_t *ingest_item_to_json(const struct ingest_item *item)
{
	char created[32];
	rfc3339_format(item->ev.created_at, created);
	json_t *dl = json_array();
	json_t *o = json_pack("{s:s, s:s, s:s}", "id", item->ev.id, "event",
			      item->ev.type ? item->ev.type : "", "created_at", created);
	if (o == NULL || dl == NULL)
		goto oom;
	for (size_t i = 0; i < item->n; i++) {
		json_t *d = json_pack("{s:s, s:s}", "id", item->delivery_ids[i], "endpoint_id",
				      item->endpoint_ids[i]);
		if (d == NULL || json_array_append_new(dl, d) != 0)
			goto oom;
	}
	if (json_object_set_new(o, "deliveries", dl) != 0) {
		dl = NULL;
		goto oom;
	}
	dl = NULL;
	if (item->duplicate && json_object_set_new(o, "duplicate", json_true()) != 0)
		goto oom;
	return o;
oom:
	json_decref(dl);
	json_decref(o);
	return NULL;
}

static int put_json_str(struct dynbuf *b, const char *s)
{
	return dynbuf_append_json_str(b, s, strlen(s));
}

static int put_lit(struct dynbuf *b, const char *s)
{
	return dynbuf_append(b, s, strlen(s));
}

int ingest_item_append_text(struct dynbuf *b, const struct ingest_item *item)
{
	char created[32];
	rfc3339_format(item->ev.created_at, created);
	int bad = put_lit(b, "{\"id\":") | put_json_str(b, item->ev.id) |
		  put_lit(b, ",\"event\":") | put_json_str(b, item->ev.type ? item->ev.type : "") |
		  put_lit(b, ",\"created_at\":") | put_json_str(b, created) |
		  put_lit(b, ",\"deliveries\":[");
	for (size_t i = 0; i < item->n && !bad; i++) {
		bad |= put_lit(b, i ? ",{\"id\":" : "{\"id\":") |
		       put_json_str(b, item->delivery_ids[i]) | put_lit(b, ",\"endpoint_id\":") |
		       put_json_str(b, item->endpoint_ids[i]) | put_lit(b, "}");
	}
	bad |= put_lit(b, item->duplicate ? "],\"duplicate\":true}" : "]}");
	return bad ? -1 : 0;
}

int ingest_item_append_count(struct dynbuf *b, const struct ingest_item *item)
{
	char created[32], count[32];
	rfc3339_format(item->ev.created_at, created);
	snprintf(count, sizeof count, "%zu", item->n);
	int bad = put_lit(b, "{\"id\":") | put_json_str(b, item->ev.id) |
		  put_lit(b, ",\"event\":") | put_json_str(b, item->ev.type ? item->ev.type : "") |
		  put_lit(b, ",\"created_at\":") | put_json_str(b, created) |
		  put_lit(b, ",\"deliveries_count\":") | put_lit(b, count) |
		  put_lit(b, ",\"deliveries_truncated\":true");
	bad |= put_lit(b, item->duplicate ? ",\"duplicate\":true}" : "}");
	return bad ? -1 : 0;
}

int ingest_item_append_brief(struct dynbuf *b, const struct ingest_item *item)
{
	int bad = put_lit(b, "{\"id\":") | put_json_str(b, item->ev.id) |
		  put_lit(b, ",\"duplicate\":true}");
	return bad ? -1 : 0;
}
