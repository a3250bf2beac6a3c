/* client_tail: `hookd tail`, new deliveries and their attempts as they
 * happen, by polling the API (docs/cli.md#tail).
 *
 * GET /v1/deliveries lists newest first by the store's insertion order, so
 * a delivery committed since the last poll is always at the top, whatever
 * its created_at says. Each poll reads the newest page (only --endpoint is
 * sent as a filter: it is served by an index, where event_type, status and
 * since make the server walk up to 262144 rows a request) and follows
 * next_cursor only while every row is new, up to TAIL_PAGES pages. A row
 * not seen before is printed; a row whose attempt_count or status moved has
 * its new attempts read from GET /v1/deliveries/{id}. Deliveries still
 * pending that fell off the first page are read one by one once their
 * next attempt is due, at most TAIL_GETS a poll. --event-type and --status
 * are applied here, to the lines. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client_internal.h"
#include "idtable.h"

#define TAIL_PAGE "200"            /* rows a list request */
#define TAIL_PAGES 5               /* list requests a poll, at most */
#define TAIL_GETS 32               /* delivery reads a poll, at most */
#define TAIL_TRACK_MAX 50000       /* deliveries followed at once */
#define TAIL_OLD_MS (5 * 60 * 1000) /* an unseen row this much older than the newest is history */
#define TAIL_BACKOFF_MAX_MS 30000  /* longest wait between two reads of an unchanged delivery */

struct tracked {
	char id[ID_MAX + 8];
	char event[136];
	char endpoint[ID_MAX + 8];
	char status[16];
	int64_t created_ms, next_ms;
	long attempts;        /* attempts known (printed, or there before tail started) */
	unsigned long gen;    /* the last poll that saw it in a list */
	int64_t recheck_mono; /* read it again no earlier than this */
	int64_t backoff_ms;
};

struct tail {
	struct client *c;
	struct cmd_args *a;
	struct idtable seen;
	unsigned long gen;
	int64_t newest_ms;
	bool started; /* the first list came: from then on, failures are retried */
	bool color, net_down, warned_cap;
};

static volatile sig_atomic_t tail_stop;

static void on_signal(int sig)
{
	(void)sig;
	tail_stop = 1;
}

static int64_t time_ms(json_t *v)
{
	int64_t ms = 0;
	const char *s = json_string_value(v);
	return s && rfc3339_parse(s, &ms) == 0 ? ms : 0;
}

static void copy_str(char *dst, size_t n, json_t *v)
{
	snprintf(dst, n, "%s", json_string_value(v) ? json_string_value(v) : "-");
}

/* Whether a line for a delivery now in state status passes --status. */
static bool status_wanted(const struct tail *t, const char *line_status)
{
	const char *want = t->a->status;
	if (!want)
		return true;
	if (strcmp(want, "pending") == 0)
		return strcmp(line_status, "pending") == 0 || strcmp(line_status, "failed") == 0;
	return strcmp(want, line_status) == 0;
}

static const char *status_color(const char *s)
{
	if (strcmp(s, "succeeded") == 0)
		return "\033[32m";
	if (strcmp(s, "dead") == 0)
		return "\033[31m";
	if (strcmp(s, "failed") == 0)
		return "\033[33m";
	return "\033[36m";
}

/* Prints text from the server with control characters replaced. */
static void put_clean(const char *s, int width)
{
	int n = 0;
	for (; *s; s++, n++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
	for (; n < width; n++)
		putchar(' ');
}

/* One human line: time, event type, endpoint, status, HTTP code, duration,
 * delivery id and, for a failed attempt, its error. */
static void line(const struct tail *t, const char *at, const struct tracked *d, const char *status,
		 const char *code, const char *dur, const char *err)
{
	char tm[40];
	snprintf(tm, sizeof tm, "%s", at ? at : "-");
	printf("%s%-24s%s  ", t->color ? "\033[2m" : "", tm, t->color ? "\033[0m" : "");
	put_clean(d->event, 24);
	printf("  %-29s  %s%-9s%s  %3s  %7s  %s", d->endpoint, t->color ? status_color(status) : "",
	       status, t->color ? "\033[0m" : "", code, dur, d->id);
	if (err && *err) {
		putchar(' ');
		put_clean(err, 0);
	}
	putchar('\n');
}

/* Prints obj as one JSON line. */
static void json_line(json_t *obj)
{
	char *text = obj ? json_dumps(obj, CLIENT_JSON_FLAGS) : NULL;
	if (text)
		puts(text);
	free(text);
	json_decref(obj);
}

static void print_delivery(struct tail *t, const struct tracked *d, json_t *row)
{
	if (t->a->event_type && strcmp(t->a->event_type, d->event) != 0)
		return;
	if (!status_wanted(t, "pending"))
		return;
	if (t->a->json)
		json_line(json_pack("{s:s,s:O?,s:O}", "type", "delivery", "at",
				    json_object_get(row, "created_at"), "delivery", row));
	else
		line(t, json_string_value(json_object_get(row, "created_at")), d, "pending", "-", "-",
		     NULL);
	fflush(stdout);
}

/* succeeded, dead (the last attempt of a dead delivery) or failed. */
static const char *attempt_status(json_t *att, bool last, const char *dstatus)
{
	if (json_is_null(json_object_get(att, "error")))
		return "succeeded";
	return last && strcmp(dstatus, "dead") == 0 ? "dead" : "failed";
}

static void print_attempt(struct tail *t, const struct tracked *d, json_t *att, const char *st)
{
	if (t->a->event_type && strcmp(t->a->event_type, d->event) != 0)
		return;
	if (!status_wanted(t, st))
		return;
	if (t->a->json) {
		json_line(json_pack("{s:s,s:O?,s:s,s:s,s:s,s:s,s:O}", "type", "attempt", "at",
				    json_object_get(att, "at"), "delivery_id", d->id, "event",
				    d->event, "endpoint_id", d->endpoint, "status", st, "attempt",
				    att));
	} else {
		char code[16] = "-", dur[24] = "-";
		json_t *s = json_object_get(att, "status"), *ms = json_object_get(att, "duration_ms");
		if (json_is_integer(s))
			snprintf(code, sizeof code, "%lld", (long long)json_integer_value(s));
		if (json_is_integer(ms))
			snprintf(dur, sizeof dur, "%lldms", (long long)json_integer_value(ms));
		json_t *e = json_object_get(att, "error");
		line(t, json_string_value(json_object_get(att, "at")), d, st, code, dur,
		     json_string_value(json_object_get(e, "code")));
	}
	fflush(stdout);
}

/* Reports a failed request: 1 to stop tail (the API refused: the key, a
 * filter), 0 to go on polling (no answer, a 5xx, a vanished delivery). */
static int poll_error(struct tail *t, enum client_call_rc rc, const struct client_resp *r,
		      const char *err)
{
	bool refused = rc == CLIENT_CALL_HTTP && r->status >= 400 && r->status < 500 &&
		       r->status != 404 && r->status != 429;
	if (refused || !t->started) {
		fprintf(stderr, "%s: %s\n", t->a->prog, err);
		return 1;
	}
	if (rc == CLIENT_CALL_NET && !t->net_down) {
		fprintf(stderr, "%s: %s; trying again\n", t->a->prog, err);
		t->net_down = true;
	}
	return 0;
}

/* One GET; CLIENT_CALL_OK with r filled, else after poll_error. *fatal is
 * set when tail must stop. */
static enum client_call_rc get(struct tail *t, const char *path, struct client_resp *r,
			       bool *fatal)
{
	char err[1024];
	enum client_call_rc rc = client_send(t->c, "GET", path, NULL, r, err, sizeof err);
	if (rc == CLIENT_CALL_OK && t->net_down) {
		fprintf(stderr, "%s: connected again\n", t->a->prog);
		t->net_down = false;
	}
	if (rc != CLIENT_CALL_OK && rc != CLIENT_CALL_STOPPED && poll_error(t, rc, r, err))
		*fatal = true;
	return rc;
}

/* Reads d's attempts and prints those after the ones known. Returns 0, -1
 * if it could not be read (d is kept), or 1 if tail must stop. */
static int fetch_attempts(struct tail *t, struct tracked *d)
{
	struct dynbuf p;
	struct client_resp r;
	bool fatal = false;
	dynbuf_init(&p, 1024);
	if (dynbuf_append(&p, "/v1/deliveries/", 15) != 0 || client_path_add_id(&p, d->id) != 0) {
		dynbuf_free(&p);
		return -1;
	}
	enum client_call_rc rc = get(t, p.data, &r, &fatal);
	dynbuf_free(&p);
	json_t *atts = json_object_get(r.json, "attempts");
	if (rc == CLIENT_CALL_OK && json_is_array(atts)) {
		copy_str(d->status, sizeof d->status, json_object_get(r.json, "status"));
		d->next_ms = time_ms(json_object_get(r.json, "next_attempt_at"));
		size_t n = json_array_size(atts);
		for (size_t i = (size_t)d->attempts; i < n; i++)
			print_attempt(t, d, json_array_get(atts, i),
				      attempt_status(json_array_get(atts, i), i + 1 == n, d->status));
		d->attempts = (long)n;
	} else if (rc == CLIENT_CALL_HTTP && r.status == 404) {
		strcpy(d->status, "gone"); /* deleted with its endpoint: forget it */
	}
	client_resp_free(&r);
	return fatal ? 1 : rc == CLIENT_CALL_OK ? 0 : -1;
}

/* A row not seen before: tracked (unless at the cap), printed unless
 * baseline. Returns the entry, or NULL. */
static struct tracked *add_row(struct tail *t, json_t *row, bool baseline)
{
	struct tracked *d = calloc(1, sizeof *d);
	void *old = NULL;
	if (!d)
		return NULL;
	copy_str(d->id, sizeof d->id, json_object_get(row, "id"));
	copy_str(d->event, sizeof d->event, json_object_get(row, "event"));
	copy_str(d->endpoint, sizeof d->endpoint, json_object_get(row, "endpoint_id"));
	copy_str(d->status, sizeof d->status, json_object_get(row, "status"));
	d->created_ms = time_ms(json_object_get(row, "created_at"));
	d->next_ms = time_ms(json_object_get(row, "next_attempt_at"));
	d->attempts = baseline ? (long)json_integer_value(json_object_get(row, "attempt_count")) : 0;
	d->gen = t->gen;
	if (!baseline)
		print_delivery(t, d, row);
	if (t->seen.n >= TAIL_TRACK_MAX || idtable_put(&t->seen, d, &old) != 0) {
		if (!t->warned_cap)
			fprintf(stderr, "%s: following %d deliveries already: the attempts of newer "
					"ones are not shown\n", t->a->prog, TAIL_TRACK_MAX);
		t->warned_cap = true;
		free(d);
		return NULL;
	}
	free(old);
	return d;
}

/* One list row: new ones printed, moved ones' attempts read. Returns 1 if
 * tail must stop, else 0. *known is set for a row seen before (or history). */
static int take_row(struct tail *t, json_t *row, bool baseline, bool *known, int *gets)
{
	const char *id = json_string_value(json_object_get(row, "id"));
	if (!id)
		return 0;
	struct tracked *d = idtable_find(&t->seen, id);
	int64_t created = time_ms(json_object_get(row, "created_at"));
	if (!d && !baseline && t->newest_ms && created < t->newest_ms - TAIL_OLD_MS) {
		*known = true; /* history the first page never showed (rows deleted above it) */
		return 0;
	}
	*known = d != NULL;
	if (created > t->newest_ms)
		t->newest_ms = created;
	if (!d && !(d = add_row(t, row, baseline)))
		return 0;
	d->gen = t->gen;
	long count = (long)json_integer_value(json_object_get(row, "attempt_count"));
	const char *status = json_string_value(json_object_get(row, "status"));
	bool moved = count > d->attempts || (status && strcmp(status, d->status) != 0);
	if (moved && *gets < TAIL_GETS) {
		(*gets)++;
		if (fetch_attempts(t, d) == 1)
			return 1;
	}
	return 0;
}

/* GET one page of the newest deliveries (cursor: NULL for the first).
 * Returns CLIENT_CALL_OK with r filled, or after poll_error. */
static enum client_call_rc list_page(struct tail *t, const char *cursor, struct client_resp *r,
				     bool *fatal)
{
	struct dynbuf p;
	dynbuf_init(&p, 4096);
	if (dynbuf_append(&p, "/v1/deliveries", 14) != 0 ||
	    client_query_add(&p, "limit", TAIL_PAGE) != 0 ||
	    client_query_add(&p, "endpoint_id", t->a->endpoint) != 0 ||
	    client_query_add(&p, "cursor", cursor) != 0) {
		dynbuf_free(&p);
		memset(r, 0, sizeof *r);
		return CLIENT_CALL_NET;
	}
	enum client_call_rc rc = get(t, p.data, r, fatal);
	dynbuf_free(&p);
	return rc;
}

/* Reads the newest pages: the first always whole, the next ones while no
 * row on them was known. Returns 1 if tail must stop, else 0. */
static int poll_lists(struct tail *t, bool baseline, int *gets)
{
	char *cursor = NULL;
	int rc = 0;
	for (int page = 0; page < (baseline ? 1 : TAIL_PAGES) && rc == 0; page++) {
		struct client_resp r;
		bool fatal = false, any_known = false;
		if (list_page(t, cursor, &r, &fatal) != CLIENT_CALL_OK) {
			client_resp_free(&r);
			rc = fatal ? 1 : 0;
			break;
		}
		size_t i;
		json_t *row, *data = json_object_get(r.json, "data");
		json_array_foreach(data, i, row) {
			bool known = false;
			if ((rc = take_row(t, row, baseline, &known, gets)) != 0)
				break;
			any_known |= known;
		}
		const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
		free(cursor);
		cursor = next && !any_known ? strdup(next) : NULL;
		client_resp_free(&r);
		if (!cursor)
			break;
		if (page + 1 == TAIL_PAGES)
			fprintf(stderr, "%s: more than %d pages of new deliveries since the last poll: "
					"some were not shown\n", t->a->prog, TAIL_PAGES);
	}
	free(cursor);
	return rc;
}

/* Pending deliveries no list showed this poll: read those whose next
 * attempt is due, backing off while nothing changes. Drops the final ones
 * no list showed. Returns 1 if tail must stop. */
static int poll_rest(struct tail *t, int *gets)
{
	size_t pos = 0;
	struct tracked *d, *drop[256];
	size_t ndrop = 0;
	int64_t now = now_ms(), mono = mono_ms();
	while ((d = idtable_next(&t->seen, &pos)) != NULL) {
		bool final = strcmp(d->status, "pending") != 0;
		if (d->gen == t->gen)
			continue;
		if (final) {
			if (ndrop < sizeof drop / sizeof drop[0])
				drop[ndrop++] = d;
			continue;
		}
		if (*gets >= TAIL_GETS || d->next_ms > now || d->recheck_mono > mono)
			continue;
		(*gets)++;
		long before = d->attempts;
		if (fetch_attempts(t, d) == 1)
			return 1;
		d->backoff_ms = d->attempts != before ? 0
				: d->backoff_ms ? (d->backoff_ms * 2 > TAIL_BACKOFF_MAX_MS
							   ? TAIL_BACKOFF_MAX_MS
							   : d->backoff_ms * 2)
						: 1000;
		d->recheck_mono = mono + d->backoff_ms;
	}
	for (size_t i = 0; i < ndrop; i++)
		free(idtable_remove(&t->seen, drop[i]->id));
	return 0;
}

/* Sleeps ms, or less when a signal came. */
static void nap(int64_t ms)
{
	while (ms > 0 && !tail_stop) {
		int64_t step = ms < 50 ? ms : 50;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)step * 1000000L};
		nanosleep(&ts, NULL);
		ms -= step;
	}
}

static bool want_color(void)
{
	const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");
	return isatty(STDOUT_FILENO) && !(nc && *nc) && !(term && strcmp(term, "dumb") == 0);
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int cmd_tail(struct client *c, struct cmd_args *a)
{
	struct tail t = {.c = c, .a = a, .color = !a->json && want_color()};
	const char *st = a->status;
	if (st && strcmp(st, "pending") != 0 && strcmp(st, "succeeded") != 0 &&
	    strcmp(st, "dead") != 0)
		return cmd_usage_error(a, "--status must be pending, succeeded or dead");
	if (idtable_init(&t.seen, offsetof(struct tracked, id), 0, 1024) != 0)
		return CLIENT_EXIT_API;
	tail_stop = 0;
	install_signals();
	c->stop = &tail_stop;
	int gets = 0, rc = poll_lists(&t, true, &gets);
	t.started = true;
	if (rc == 0)
		fprintf(stderr, "%s: following deliveries at %s (Ctrl-C to stop)\n", a->prog,
			c->base);
	while (rc == 0 && !tail_stop) {
		int64_t start = mono_ms();
		t.gen++;
		gets = 0;
		rc = poll_lists(&t, false, &gets);
		if (rc == 0)
			rc = poll_rest(&t, &gets);
		nap(a->interval_ms - (mono_ms() - start));
	}
	size_t pos = 0;
	void *d;
	while ((d = idtable_next(&t.seen, &pos)) != NULL)
		free(d);
	idtable_free(&t.seen);
	c->stop = NULL;
	return rc == 0 ? CLIENT_EXIT_OK : CLIENT_EXIT_API;
}
