/* store_pg_notify: what the PostgreSQL backend tells the other hookd nodes
 * on the same database, and the connection that hears them
 * (docs/architecture.md#several-nodes-notifications).
 *
 * Each transaction notes the seq of every delivery row that becomes pending
 * by an insert or a dead-letter retry (a bulk retry notes "all"), and the
 * id of every endpoint it writes. A savepoint rolled back forgets what was
 * noted inside it. The COMMIT then goes out as one round trip of two
 * statements: "SELECT pg_notify(...), ...; COMMIT", so PostgreSQL delivers
 * the notifications exactly when (and only if) the transaction commits, and
 * the notes cost no extra round trip. Payloads are "<node_id> <what>":
 * hookd_pending: seq ranges (seqrange.h), or "*" past PG_NOTIFY_PAYLOAD_MAX
 * bytes; hookd_endpoints: one endpoint id, or "*" for more than
 * PG_NOTES_EPS_MAX of them in one transaction. */
#include "store_pg_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "seqrange.h"

/* PostgreSQL refuses payloads of 8000 bytes or more. */
#define PG_NOTIFY_PAYLOAD_MAX 7000
/* Seqs one transaction keeps; past it the notification says "*". */
#define PG_NOTES_SEQS_MAX 65536

void pg_channel_name(const char *base, const char *schema, char out[PG_CHANNEL_MAX])
{
	if (schema == NULL || strcmp(schema, "public") == 0) {
		snprintf(out, PG_CHANNEL_MAX, "%s", base);
		return;
	}
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const unsigned char *s = (const unsigned char *)schema; *s; s++) {
		h ^= *s;
		h *= 0x100000001b3ULL;
	}
	snprintf(out, PG_CHANNEL_MAX, "%s_%016llx", base, (unsigned long long)h);
}

int pg_channels(struct pg *c)
{
	if (c->chan_pending[0] != '\0')
		return STORE_OK;
	PGresult *r = NULL;
	int rc = pg_query(c, "SELECT current_schema()", NULL, &r, "current_schema");
	if (rc == STORE_OK) {
		const char *schema = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)
					     ? PQgetvalue(r, 0, 0) : NULL;
		pg_channel_name(STORE_CHANNEL_PENDING, schema, c->chan_pending);
		pg_channel_name(STORE_CHANNEL_ENDPOINTS, schema, c->chan_endpoints);
	}
	PQclear(r);
	return rc;
}

/* Before a note: the channels known (one query, once per connection), so
 * the COMMIT can name them. Without, the commit notifies nothing (logged). */
static void channels_ready(struct pg *c)
{
	if (c->chan_pending[0] == '\0' && c->node_id[0] != '\0')
		pg_channels(c);
}

void pg_notes_pending(struct pg *c, int64_t seq)
{
	struct pg_notes *n = &c->notes;
	channels_ready(c);
	if (!n->all && n->n == n->cap) {
		size_t cap = n->cap ? n->cap * 2 : 256;
		int64_t *s = cap <= PG_NOTES_SEQS_MAX ? realloc(n->seqs, cap * sizeof *s) : NULL;
		if (s == NULL) {
			n->all = true; /* too many (or out of memory): everyone rescans */
		} else {
			n->seqs = s;
			n->cap = cap;
		}
	}
	if (!n->all)
		n->seqs[n->n++] = seq;
	pg_notes_autoflush(c);
}

void pg_notes_pending_all(struct pg *c)
{
	channels_ready(c);
	c->notes.all = true;
	pg_notes_autoflush(c);
}

void pg_notes_endpoint(struct pg *c, const char *id)
{
	struct pg_notes *n = &c->notes;
	channels_ready(c);
	for (size_t i = 0; i < n->n_eps; i++)
		if (strcmp(n->eps[i], id) == 0)
			return;
	if (n->n_eps == PG_NOTES_EPS_MAX)
		n->eps_all = true;
	else
		snprintf(n->eps[n->n_eps++], ID_MAX, "%s", id);
	pg_notes_autoflush(c);
}

void pg_notes_mark(const struct pg *c, struct pg_notes_mark *m)
{
	m->n = c->notes.n;
	m->n_eps = c->notes.n_eps;
	m->all = c->notes.all;
	m->eps_all = c->notes.eps_all;
}

void pg_notes_rewind(struct pg *c, const struct pg_notes_mark *m)
{
	struct pg_notes *n = &c->notes;
	if (m->n <= n->n)
		n->n = m->n;
	if (m->n_eps <= n->n_eps)
		n->n_eps = m->n_eps;
	n->all = m->all;
	n->eps_all = m->eps_all;
}

void pg_notes_clear(struct pg *c)
{
	c->notes.n = 0;
	c->notes.n_eps = 0;
	c->notes.all = false;
	c->notes.eps_all = false;
}

void pg_notes_free(struct pg *c)
{
	free(c->notes.seqs);
	memset(&c->notes, 0, sizeof c->notes);
}

/* Appends ", pg_notify('channel', '<node> what')" (the first without the
 * comma) to f. -1 if the literal could not be made. */
static int put_notify(struct pg *c, FILE *f, bool *first, const char *channel, const char *what)
{
	char payload[STORE_NODE_ID_MAX + 1 + PG_NOTIFY_PAYLOAD_MAX + 2];
	snprintf(payload, sizeof payload, "%s %s", c->node_id, what);
	char *lit = PQescapeLiteral(c->db, payload, strlen(payload));
	if (lit == NULL)
		return -1;
	fprintf(f, "%spg_notify('%s', %s)", *first ? "SELECT " : ", ", channel, lit);
	PQfreemem(lit);
	*first = false;
	return 0;
}

/* The pending notification's "what": ranges, or "*". */
static void pending_what(struct pg *c, char out[PG_NOTIFY_PAYLOAD_MAX])
{
	struct pg_notes *n = &c->notes;
	if (n->all || seqrange_encode(n->seqs, n->n, out, PG_NOTIFY_PAYLOAD_MAX) < 0)
		snprintf(out, PG_NOTIFY_PAYLOAD_MAX, "*");
}

/* "SELECT pg_notify(...), ...; " for what this transaction noted, malloc'd;
 * NULL if it noted nothing (or out of memory: logged, the others then learn
 * of it at their next page or reconnect). */
static char *notes_sql(struct pg *c)
{
	struct pg_notes *n = &c->notes;
	if (c->node_id[0] == '\0' || (n->n == 0 && !n->all && n->n_eps == 0 && !n->eps_all))
		return NULL;
	if (c->chan_pending[0] == '\0') {
		/* Read before the first note (channels_ready); it failed, and a
		 * query here, in the COMMIT's round trip, cannot be made. */
		log_error("store: the notification channels are not known; notifying nothing");
		return NULL;
	}
	char *sql = NULL, what[PG_NOTIFY_PAYLOAD_MAX];
	size_t len = 0;
	bool first = true;
	int bad = 0;
	FILE *f = open_memstream(&sql, &len);
	if (f == NULL)
		goto oom;
	if (n->eps_all)
		bad |= put_notify(c, f, &first, c->chan_endpoints, "*");
	for (size_t i = 0; !n->eps_all && i < n->n_eps; i++)
		bad |= put_notify(c, f, &first, c->chan_endpoints, n->eps[i]);
	if (n->n > 0 || n->all) {
		pending_what(c, what);
		bad |= put_notify(c, f, &first, c->chan_pending, what);
	}
	fputs("; ", f);
	if (fclose(f) != 0 || bad)
		goto oom;
	return sql;
oom:
	free(sql);
	log_error("store: out of memory making the notifications of a commit");
	return NULL;
}

int pg_notes_commit(struct pg *c, PGresult **out, const char *op)
{
	char *notes = notes_sql(c);
	pg_notes_clear(c);
	if (notes == NULL)
		return pg_multi(c, "COMMIT", out, op);
	size_t len = strlen(notes);
	char *sql = realloc(notes, len + sizeof "COMMIT");
	if (sql == NULL) {
		free(notes);
		log_error("store: out of memory making the notifications of a commit");
		return pg_multi(c, "COMMIT", out, op);
	}
	memcpy(sql + len, "COMMIT", sizeof "COMMIT");
	int rc = pg_multi(c, sql, out, op);
	free(sql);
	return rc;
}

void pg_notes_autoflush(struct pg *c)
{
	/* Outside a transaction the write committed on its own: tell now.
	 * (A BEGIN not sent yet is a transaction all the same.) */
	if (PQtransactionStatus(c->db) != PQTRANS_IDLE || c->deferred == PG_DEFER_BEGIN)
		return;
	char *sql = notes_sql(c);
	pg_notes_clear(c);
	if (sql != NULL) {
		size_t len = strlen(sql);
		sql[len - 2] = '\0'; /* the "; " */
		pg_multi(c, sql, NULL, "notify");
	}
	free(sql);
}

/* ---- the listening connection ---- */

int pg_listen_open(const char *url, const struct store_open_opts *o, void **conn, char *err,
		   size_t errlen)
{
	*conn = NULL;
	/* Named so an operator (and the tests) can find it. */
	char app[STORE_NODE_ID_MAX + 16];
	snprintf(app, sizeof app, "hookd listen %s", o->node_id ? o->node_id : "");
	struct pg *c = pg_connect(url, o, app, err, errlen);
	if (c == NULL)
		return STORE_ERROR;
	char sql[2 * PG_CHANNEL_MAX + 32];
	if (pg_channels(c) == STORE_OK)
		snprintf(sql, sizeof sql, "LISTEN %s; LISTEN %s", c->chan_pending,
			 c->chan_endpoints);
	if (c->chan_pending[0] == '\0' || pg_multi(c, sql, NULL, "listen") != STORE_OK) {
		snprintf(err, errlen, "LISTEN failed: %s", PQerrorMessage(c->db));
		err[strcspn(err, "\n")] = '\0';
		pg_disconnect(c);
		return STORE_ERROR;
	}
	*conn = c;
	return STORE_OK;
}

/* Hands every notification libpq has read to fn. */
static void drain(struct pg *c, void (*fn)(const char *, const char *, void *), void *arg)
{
	PGnotify *n;
	while ((n = PQnotifies(c->db)) != NULL) {
		/* The caller knows the channels by their base names. */
		const char *ch = strcmp(n->relname, c->chan_pending) == 0     ? STORE_CHANNEL_PENDING
				 : strcmp(n->relname, c->chan_endpoints) == 0 ? STORE_CHANNEL_ENDPOINTS
									      : NULL;
		if (ch != NULL)
			fn(ch, n->extra, arg);
		PQfreemem(n);
	}
}

int pg_listen_wait(void *conn, int timeout_ms,
		   void (*fn)(const char *channel, const char *payload, void *arg), void *arg)
{
	struct pg *c = conn;
	if (PQstatus(c->db) != CONNECTION_OK || !PQconsumeInput(c->db))
		return STORE_ERROR;
	drain(c, fn, arg);
	struct pollfd p = {.fd = PQsocket(c->db), .events = POLLIN};
	if (p.fd < 0)
		return STORE_ERROR;
	int r = poll(&p, 1, timeout_ms);
	if (r < 0 && errno != EINTR)
		return STORE_ERROR;
	if (r > 0 && (!PQconsumeInput(c->db) || PQstatus(c->db) != CONNECTION_OK))
		return STORE_ERROR;
	drain(c, fn, arg);
	return STORE_OK;
}
