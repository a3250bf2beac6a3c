/* Several nodes on one PostgreSQL (docs/architecture.md#several-nodes-
 * notifications): what a commit tells the other nodes (hookd_pending,
 * hookd_endpoints), that a rolled-back savepoint or transaction tells
 * nothing, the listening connection, and store_pending_by_seq.
 * PostgreSQL only: registered through tests/pg/with-cluster.sh. Other
 * tests of the run notify on the same channels: each test has a node id of
 * its own and keeps only its payloads. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seqrange.h"
#include "store.h"
#include "store_pg_internal.h"
#include "test_store_db.h"

static struct test_db tdb;
static struct store *st;
static struct store_listen *lsn;
static char node[32];

static void setup(void)
{
	cr_assert_not_null(test_db_pg_admin(), "HOOKD_TEST_PG_URL (run through with-cluster.sh)");
	test_db_make(&tdb, "hookd-notify");
	snprintf(node, sizeof node, "t%d", (int)getpid());
	store_set_node_id(node);
	st = test_db_open(&tdb);
	char err[256] = "";
	cr_assert_eq(store_listen_open(tdb.url, &lsn, err, sizeof err), STORE_OK, "listen: %s",
		     err);
}

static void teardown(void)
{
	store_listen_close(lsn);
	lsn = NULL;
	test_db_close(&tdb, &st);
}

TestSuite(notify, .init = setup, .fini = teardown);

/* What this test's node sent, "channel what" each. */
struct heard {
	char items[16][8192];
	size_t n;
};

static void on_note(const char *channel, const char *payload, void *arg)
{
	struct heard *h = arg;
	size_t len = strlen(node);
	if (strncmp(payload, node, len) != 0 || payload[len] != ' ' || h->n == 16)
		return;
	snprintf(h->items[h->n++], sizeof h->items[0], "%s %s", channel, payload + len + 1);
}

/* Listens for up to ms (stopping early once want items came). */
static void hear(struct heard *h, size_t want, int ms)
{
	memset(h, 0, sizeof *h);
	for (int waited = 0; waited < ms && h->n < want; waited += 50)
		cr_assert_eq(store_listen_wait(lsn, 50, on_note, h), STORE_OK);
}

static void add_event(const char *id)
{
	struct event ev = {.type = "order.paid", .data = "{}", .created_at = 5};
	snprintf(ev.id, sizeof ev.id, "%s", id);
	cr_assert_eq(store_event_insert(st, &ev), STORE_OK);
}

/* A delivery of evt_1 to endpoint ep; returns its seq. */
static int64_t add_delivery(const char *id, const char *ep, enum delivery_status status,
			    int64_t at)
{
	struct delivery d = {.event_type = "order.paid", .status = status,
			     .next_attempt_at = at, .created_at = 5, .updated_at = 5};
	snprintf(d.id, sizeof d.id, "%s", id);
	snprintf(d.event_id, sizeof d.event_id, "evt_1");
	snprintf(d.endpoint_id, sizeof d.endpoint_id, "%s", ep);
	cr_assert_eq(store_delivery_insert(st, &d), STORE_OK, "%s", id);
	return d.seq;
}

/* Endpoints ep_a, ep_b, event evt_1, and what notified of them heard. */
static void base(void)
{
	struct heard h;
	cr_assert_eq(store_begin(st), STORE_OK);
	test_db_add_endpoint(st, "ep_a", true);
	test_db_add_endpoint(st, "ep_off", false);
	add_event("evt_1");
	cr_assert_eq(store_commit(st), STORE_OK);
	hear(&h, 2, 2000);
	cr_assert_eq(h.n, 2, "one notification per endpoint written");
	cr_assert_str_eq(h.items[0], "hookd_endpoints ep_a");
	cr_assert_str_eq(h.items[1], "hookd_endpoints ep_off");
}

Test(notify, commit_names_new_pending_rows_once_and_forgets_a_rolled_back_savepoint)
{
	base();
	struct heard h;
	cr_assert_eq(store_begin(st), STORE_OK);
	int64_t s1 = add_delivery("dlv_1", "ep_a", DELIVERY_PENDING, 10);
	int64_t s2 = add_delivery("dlv_2", "ep_a", DELIVERY_PENDING, 10);
	add_delivery("dlv_done", "ep_a", DELIVERY_SUCCEEDED, 0); /* not pending: not named */
	cr_assert_eq(store_savepoint(st), STORE_OK);
	add_delivery("dlv_undone", "ep_a", DELIVERY_PENDING, 10);
	cr_assert_eq(store_rollback_to(st), STORE_OK);
	cr_assert_eq(store_savepoint(st), STORE_OK);
	int64_t s4 = add_delivery("dlv_4", "ep_a", DELIVERY_PENDING, 10);
	cr_assert_eq(store_release(st), STORE_OK);
	hear(&h, 1, 300);
	cr_assert_eq(h.n, 0, "nothing is heard before the commit");
	cr_assert_eq(store_commit(st), STORE_OK);
	hear(&h, 2, 2000);
	cr_assert_eq(h.n, 1, "one notification per commit");
	int64_t want[] = {s1, s2, s4};
	char ranges[128], expect[160];
	cr_assert_geq(seqrange_encode(want, 3, ranges, sizeof ranges), 0);
	snprintf(expect, sizeof expect, "hookd_pending %s", ranges);
	cr_assert_str_eq(h.items[0], expect);
}

Test(notify, rollback_and_rescheduled_records_tell_nothing)
{
	base();
	struct heard h;
	cr_assert_eq(store_begin(st), STORE_OK);
	add_delivery("dlv_1", "ep_a", DELIVERY_PENDING, 10);
	cr_assert_eq(store_rollback(st), STORE_OK);
	cr_assert_eq(store_begin(st), STORE_OK);
	int64_t seq = add_delivery("dlv_2", "ep_a", DELIVERY_PENDING, 10);
	cr_assert_eq(store_commit(st), STORE_OK);
	hear(&h, 1, 2000);
	cr_assert_eq(h.n, 1);
	/* The owner's own record of a failed attempt: pending again, later. */
	struct delivery d = {.seq = seq, .status = DELIVERY_PENDING, .attempt_count = 1,
			     .schedule_index = 1, .next_attempt_at = 60000, .updated_at = 6};
	snprintf(d.id, sizeof d.id, "dlv_2");
	cr_assert_eq(store_begin(st), STORE_OK);
	cr_assert_eq(store_delivery_update_state(st, &d), STORE_OK);
	cr_assert_eq(store_commit(st), STORE_OK);
	hear(&h, 1, 500);
	cr_assert_eq(h.n, 0, "a rescheduled retry is the owner's business");
}

Test(notify, dead_letter_retries_notify)
{
	base();
	struct heard h;
	cr_assert_eq(store_begin(st), STORE_OK);
	int64_t s1 = add_delivery("dlv_1", "ep_a", DELIVERY_DEAD, 0);
	add_delivery("dlv_2", "ep_a", DELIVERY_DEAD, 0);
	add_delivery("dlv_3", "ep_a", DELIVERY_DEAD, 0);
	cr_assert_eq(store_commit(st), STORE_OK);
	hear(&h, 1, 300);
	cr_assert_eq(h.n, 0, "dead rows are not pending");
	struct pending p;
	cr_assert_eq(store_begin(st), STORE_OK);
	cr_assert_eq(store_dlq_retry_one(st, "dlv_1", 100, &p), STORE_OK);
	cr_assert_eq(store_commit(st), STORE_OK);
	hear(&h, 1, 2000);
	char expect[64];
	snprintf(expect, sizeof expect, "hookd_pending %lld", (long long)s1);
	cr_assert_eq(h.n, 1);
	cr_assert_str_eq(h.items[0], expect);
	int64_t count = 0;
	cr_assert_eq(store_begin(st), STORE_OK);
	cr_assert_eq(store_dlq_retry_endpoint(st, "ep_a", 100, &count), STORE_OK);
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert_eq(count, 2);
	hear(&h, 1, 2000);
	cr_assert_eq(h.n, 1);
	cr_assert_str_eq(h.items[0], "hookd_pending *", "a bulk retry: everyone rescans");
}

Test(notify, too_many_ranges_say_star)
{
	base();
	struct heard h;
	cr_assert_eq(store_begin(st), STORE_OK);
	/* Seqs no range joins: 2000 of them need about 10 KB. */
	for (int64_t i = 1; i <= 2000; i++)
		pg_notes_pending(st->conn, 1000000 + 2 * i);
	cr_assert_eq(store_commit(st), STORE_OK);
	hear(&h, 1, 2000);
	cr_assert_eq(h.n, 1);
	cr_assert_str_eq(h.items[0], "hookd_pending *");
}

Test(notify, endpoint_writes_notify_in_their_transaction)
{
	base();
	struct heard h;
	struct endpoint e = {0};
	cr_assert_eq(store_endpoint_get(st, "ep_a", &e), STORE_OK);
	e.updated_at = 9;
	cr_assert_eq(store_begin(st), STORE_OK);
	cr_assert_eq(store_endpoint_update(st, &e), STORE_OK);
	cr_assert_eq(store_endpoint_update(st, &e), STORE_OK);
	cr_assert_eq(store_rollback(st), STORE_OK);
	hear(&h, 1, 300);
	cr_assert_eq(h.n, 0, "a rolled-back update tells nothing");
	cr_assert_eq(store_begin(st), STORE_OK);
	cr_assert_eq(store_endpoint_update(st, &e), STORE_OK);
	cr_assert_eq(store_endpoint_update(st, &e), STORE_OK);
	cr_assert_eq(store_endpoint_disable(st, "ep_off", "410", 10), STORE_OK);
	cr_assert_eq(store_commit(st), STORE_OK);
	endpoint_clear(&e);
	hear(&h, 2, 2000);
	cr_assert_eq(h.n, 2, "each endpoint once");
	cr_assert_str_eq(h.items[0], "hookd_endpoints ep_a");
	cr_assert_str_eq(h.items[1], "hookd_endpoints ep_off");
	/* Outside a transaction (committed on its own): at once. */
	cr_assert_eq(store_endpoint_delete(st, "ep_off"), STORE_OK);
	hear(&h, 1, 2000);
	cr_assert_eq(h.n, 1);
	cr_assert_str_eq(h.items[0], "hookd_endpoints ep_off");
}

/* pending_by_seq_reads_the_listed_rows_still_pending's fetch of the six
 * seqs, without and with the events: ep_a's two pending rows, in key
 * order. */
static void fetch_mine(const int64_t seqs[6], int64_t late, int64_t early)
{
	struct pending *items = NULL;
	size_t n = 0;
	size_t held = pg_leases_held();
	cr_assert_eq(store_pending_by_seq(st, seqs, 6, &items, NULL, &n), STORE_OK);
	cr_assert_eq(n, 2, "held %zu: only pending rows of enabled endpoints this node owns, only "
			   "those listed", held);
	cr_assert_str_eq(items[0].id, "dlv_early", "in key order, as a page");
	cr_assert_eq(items[0].seq, early);
	cr_assert_eq(items[0].next_attempt_at, 100);
	cr_assert_str_eq(items[0].event_id, "evt_1");
	cr_assert_str_eq(items[0].endpoint_id, "ep_a");
	cr_assert_str_eq(items[1].id, "dlv_late");
	cr_assert_eq(items[1].seq, late);
	free(items);
	/* With their events, read in the same statement: the owner need not
	 * read them back. */
	struct event *evs = NULL;
	cr_assert_eq(store_pending_by_seq(st, seqs, 6, &items, &evs, &n), STORE_OK);
	cr_assert_eq(n, 2, "held %zu", held);
	cr_assert_not_null(evs);
	cr_assert_str_eq(items[0].id, "dlv_early");
	cr_assert_str_eq(items[1].id, "dlv_late");
	for (size_t i = 0; i < n; i++) {
		cr_assert_str_eq(evs[i].id, "evt_1");
		cr_assert_str_eq(evs[i].type, "order.paid");
		cr_assert_str_eq(evs[i].data, "{}");
		cr_assert_eq(evs[i].created_at, 5);
		event_clear(&evs[i]);
	}
	free(evs);
	free(items);
}

Test(notify, pending_by_seq_reads_the_listed_rows_still_pending)
{
	base();
	cr_assert_eq(store_begin(st), STORE_OK);
	int64_t late = add_delivery("dlv_late", "ep_a", DELIVERY_PENDING, 900);
	int64_t early = add_delivery("dlv_early", "ep_a", DELIVERY_PENDING, 100);
	int64_t done = add_delivery("dlv_done", "ep_a", DELIVERY_SUCCEEDED, 0);
	int64_t off = add_delivery("dlv_off", "ep_off", DELIVERY_PENDING, 100);
	int64_t other = add_delivery("dlv_other", "ep_a", DELIVERY_PENDING, 50);
	test_db_add_endpoint(st, "ep_theirs", true);
	int64_t theirs = add_delivery("dlv_theirs", "ep_theirs", DELIVERY_PENDING, 10);
	cr_assert_eq(store_commit(st), STORE_OK);
	(void)other;
	/* This node owns ep_a and ep_off; another node owns ep_theirs. */
	const char *mine[] = {"ep_a", "ep_off"}, *their[] = {"ep_theirs"};
	char(*got)[ID_MAX] = NULL;
	size_t n_got = 0;
	cr_assert_eq(store_lease_claim(st, node, 60000, mine, 2, &got, &n_got), STORE_OK);
	cr_assert_eq(n_got, 2);
	free(got);
	cr_assert_eq(store_lease_claim(st, "another", 60000, their, 1, &got, &n_got), STORE_OK);
	free(got);
	int64_t seqs[] = {late, done, off, early, 999999, theirs};
	/* The same rows whichever way the fetch reads them: probing the
	 * endpoints this node holds (few held) or scanning the listed runs
	 * (many held), pg_pending_by_seq. */
	const size_t held[] = {0, 100000};
	for (size_t k = 0; k < 2; k++) {
		pg_leases_held_set(held[k]);
		fetch_mine(seqs, late, early);
	}
	struct pending *items = NULL;
	size_t n = 0;
	cr_assert_eq(store_pending_by_seq(st, seqs, 0, &items, NULL, &n), STORE_OK);
	cr_assert_eq(n, 0);
	cr_assert_null(items);
}

Test(notify, a_lost_listening_connection_says_so)
{
	/* The listening connection names itself "hookd listen <node id>". */
	char sql[256];
	snprintf(sql, sizeof sql,
		 "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
		 " WHERE application_name = 'hookd listen %s'"
		 " AND datname = current_database()", node);
	struct heard h;
	memset(&h, 0, sizeof h);
	cr_assert_eq(store_listen_wait(lsn, 10, on_note, &h), STORE_OK);
	test_db_admin_exec(sql);
	int rc = STORE_OK;
	for (int i = 0; i < 100 && rc == STORE_OK; i++)
		rc = store_listen_wait(lsn, 50, on_note, &h);
	cr_assert_eq(rc, STORE_ERROR, "the wait reports the lost connection");
}

/* docs/scaling.md#notifications-between-nodes: the channels are named per
 * schema, "public" keeping the plain names. */
Test(notify, channel_names_are_per_schema)
{
	char a[PG_CHANNEL_MAX], b[PG_CHANNEL_MAX], c[PG_CHANNEL_MAX];
	pg_channel_name(STORE_CHANNEL_PENDING, "public", a);
	cr_assert_str_eq(a, "hookd_pending");
	pg_channel_name(STORE_CHANNEL_PENDING, NULL, a);
	cr_assert_str_eq(a, "hookd_pending");
	pg_channel_name(STORE_CHANNEL_PENDING, "tenant_a", a);
	pg_channel_name(STORE_CHANNEL_PENDING, "tenant_b", b);
	pg_channel_name(STORE_CHANNEL_ENDPOINTS, "tenant_a", c);
	cr_assert_eq(strncmp(a, "hookd_pending_", 14), 0, "%s", a);
	cr_assert_eq(strlen(a), 14 + 16, "%s", a);
	cr_assert_str_neq(a, b);
	cr_assert_eq(strncmp(c, "hookd_endpoints_", 16), 0, "%s", c);
	cr_assert_str_eq(a + 14, c + 16, "one suffix per schema");
	/* Any schema name fits an identifier (63 bytes). */
	char longname[200];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	pg_channel_name(STORE_CHANNEL_ENDPOINTS, longname, c);
	cr_assert_lt(strlen(c), 64);
}

/* Two deployments on one database, in two schemas: what one commits is
 * heard by its own listener only. */
Test(notify, another_schema_hears_nothing)
{
	struct test_db other;
	test_db_make(&other, "hookd-notify-other");
	char err[256] = "";
	struct store_listen *olsn = NULL;
	cr_assert_eq(store_listen_open(other.url, &olsn, err, sizeof err), STORE_OK, "%s", err);
	base(); /* heard on this schema's listener (asserted there) */
	struct heard h;
	memset(&h, 0, sizeof h);
	for (int waited = 0; waited < 1000; waited += 50)
		cr_assert_eq(store_listen_wait(olsn, 50, on_note, &h), STORE_OK);
	cr_assert_eq(h.n, 0, "the other schema heard %zu notifications: %s", h.n, h.items[0]);
	store_listen_close(olsn);
	test_db_remove(&other);
}
