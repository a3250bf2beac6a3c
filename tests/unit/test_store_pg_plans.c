/* Unit tests of the PostgreSQL backend's query plans: the dispatcher's
 * listing and refills, the delivery lists, the purge and the seed must walk their
 * indexes, not scan or sort the deliveries table, on a table big enough
 * (and analysed) for the planner to have a choice. The plans are the ones
 * the store's own statements get: auto_explain on the store's connection
 * sends each as a notice, which the test collects. Registered only through
 * tests/pg/with-cluster.sh (tests/meson.build). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_pg_internal.h"
#include "test_store_db.h"

static struct test_db tdb;
static struct store *st;

/* The plans auto_explain sent since plans_reset. */
static char plans[65536];

static void collect(void *arg, const char *message)
{
	(void)arg;
	size_t have = strlen(plans);
	snprintf(plans + have, sizeof plans - have, "%s", message);
}

static void plans_reset(void) { plans[0] = '\0'; }

/* 20,000 deliveries over 200 endpoints (every tenth disabled): 2 % pending,
 * 1 % dead, the rest succeeded; then ANALYZE, as autovacuum would. */
static void fill(void)
{
	test_db_pg_exec(&tdb,
			"INSERT INTO endpoints (id, url, events, secret, enabled, created_at,"
			" updated_at) SELECT 'ep_' || lpad(i::text, 4, '0'), 'https://h.test/',"
			" '[\"*\"]', 'whsec_x', CASE WHEN i % 10 = 0 THEN 0 ELSE 1 END, 0, 0"
			" FROM generate_series(1, 200) AS i;"
			"INSERT INTO deliveries (id, event_id, endpoint_id, event_type, status,"
			" next_attempt_at, created_at, updated_at)"
			" SELECT 'dlv_' || lpad(i::text, 6, '0'), 'evt_' || lpad((i / 2)::text, 6, '0'),"
			" 'ep_' || lpad((1 + i % 200)::text, 4, '0'), 't' || i % 7,"
			" CASE WHEN i % 50 = 0 THEN 0 WHEN i % 97 = 0 THEN 2 ELSE 1 END,"
			" CASE WHEN i % 50 = 0 THEN 1000000 + i ELSE 0 END, i, i"
			" FROM generate_series(1, 20000) AS i;"
			"ANALYZE endpoints; ANALYZE deliveries");
}

static void setup(void)
{
	cr_assert_not_null(test_db_pg_admin(), "HOOKD_TEST_PG_URL (run through with-cluster.sh)");
	test_db_make(&tdb, "hookd-plans");
	st = test_db_open(&tdb);
	fill();
	struct pg *c = st->conn;
	PQsetNoticeProcessor(c->db, collect, NULL);
	cr_assert_eq(pg_simple(c,
			       "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;"
			       " SET auto_explain.log_level = notice",
			       "test"),
		     STORE_OK);
	plans_reset();
}

static void teardown(void)
{
	test_db_close(&tdb, &st);
}

TestSuite(pg_plans, .init = setup, .fini = teardown);

/* The plans collected use `index` and neither read the deliveries table
 * whole nor sort (unless sort_ok: a sort of a page's own rows). */
static void assert_plan(const char *what, const char *index, bool sort_ok)
{
	cr_assert_neq(plans[0], '\0', "%s: no plan collected", what);
	cr_assert_not_null(strstr(plans, index), "%s: %s not used:\n%s", what, index, plans);
	cr_assert_null(strstr(plans, "Seq Scan on deliveries"), "%s:\n%s", what, plans);
	cr_assert_null(strstr(plans, "Hash Join"), "%s:\n%s", what, plans);
	if (!sort_ok)
		cr_assert_null(strstr(plans, "Sort"), "%s:\n%s", what, plans);
}

/* The window's rescan lists the enabled endpoints with a pending delivery
 * by one probe of the pending index per endpoint, never a walk of every
 * pending row, with the plan made for the values and with the generic one a
 * prepared statement gets after five runs. */
Test(pg_plans, pending_endpoints_probes_the_pending_index)
{
	static const char *const modes[] = {"force_custom_plan", "force_generic_plan"};
	for (size_t m = 0; m < 2; m++) {
		char sql[64];
		snprintf(sql, sizeof sql, "SET plan_cache_mode = %s", modes[m]);
		cr_assert_eq(pg_simple(st->conn, sql, "test"), STORE_OK);
		for (int k = 0; k < 6; k++) {
			char(*ids)[ID_MAX] = NULL;
			size_t n = 0;
			plans_reset();
			cr_assert_eq(store_pending_endpoints(st, &ids, &n), STORE_OK);
			/* fill: the pending rows (every fiftieth) are ep_0001's,
			 * ep_0051's, ep_0101's and ep_0151's. */
			free(ids);
			cr_assert_eq(n, 4);
			assert_plan(modes[m], "deliveries_pending_endpoint", false);
		}
	}
}

/* The window's refill of one endpoint reads that endpoint's part of its
 * own pending index, not every endpoint's pending rows. A few rows
 * expected (as here) may be read by a bitmap scan and sorted: that sort
 * is of the endpoint's own pending rows above the key. */
Test(pg_plans, pending_page_endpoint_walks_its_index)
{
	static const char *const modes[] = {"force_custom_plan", "force_generic_plan"};
	for (size_t m = 0; m < 2; m++) {
		char sql[64];
		snprintf(sql, sizeof sql, "SET plan_cache_mode = %s", modes[m]);
		cr_assert_eq(pg_simple(st->conn, sql, "test"), STORE_OK);
		for (int k = 0; k < 6; k++) {
			struct pending *arr = NULL;
			size_t n = 0;
			plans_reset();
			cr_assert_eq(store_pending_page_endpoint(st, "ep_0051", k % 2 ? 1010000 : INT64_MIN,
								 k % 2 ? "dlv_x" : "", 20, &arr, &n),
				     STORE_OK);
			cr_assert_eq(n, 20);
			for (size_t i = 0; i < n; i++)
				cr_assert_str_eq(arr[i].endpoint_id, "ep_0051");
			free(arr);
			assert_plan(modes[m], "deliveries_pending_endpoint", true);
		}
	}
}

/* The buffers the first plan collected since plans_reset touched
 * (auto_explain with log_analyze and log_buffers: "shared hit=N read=M"
 * of the top node), or -1 if it says none. */
static long plan_buffers(void)
{
	const char *b = strstr(plans, "Buffers: shared");
	if (b == NULL)
		return -1;
	long total = 0;
	const char *end = strchr(b, '\n');
	for (const char *k = b; (k = strpbrk(k, "=")) != NULL && (end == NULL || k < end); k++)
		total += strtol(k + 1, NULL, 10);
	return total;
}

/* The lowest seq of the deliveries whose id is LIKE pattern. */
static int64_t first_seq(struct pg *c, const char *pattern)
{
	const char *params[] = {pattern};
	PGresult *res = PQexecParams(c->db, "SELECT min(seq) FROM deliveries WHERE id LIKE $1", 1,
				     NULL, params, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	int64_t first = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return first;
}

/* From now on the plans c's statements send carry their buffers
 * (plan_buffers). */
static void count_buffers(struct pg *c)
{
	cr_assert_eq(pg_simple(c, "SET auto_explain.log_analyze = on;"
			       " SET auto_explain.log_buffers = on", "test"), STORE_OK);
}

/* Announced rows come in runs of consecutive seqs (a commit group's): a
 * fetch reads each run as one range of the primary key, a few buffers per
 * page of rows, not three per row (one lookup per seq: over 3,000 for
 * these 1,000 rows with the endpoint check); the endpoint check costs at
 * most two per row (none when the planner memoizes it per endpoint). The
 * rows were added after the table was analysed, as in a database younger
 * than autovacuum's first pass. */
Test(pg_plans, pending_by_seq_reads_a_run_as_one_range)
{
	test_db_pg_exec(&tdb, "INSERT INTO deliveries (id, event_id, endpoint_id, event_type,"
			      " status, next_attempt_at, created_at, updated_at)"
			      " SELECT 'dlv_r' || lpad(i::text, 6, '0'), 'evt_r', 'ep_0001', 't', 0,"
			      " 2000000 + i, i, i FROM generate_series(1, 1000) AS i");
	struct pg *c = st->conn;
	int64_t first = first_seq(c, "dlv_r%");
	int64_t seqs[1000];
	for (int i = 0; i < 1000; i++)
		seqs[i] = first + 999 - i; /* any order */
	count_buffers(c);
	static const char *const modes[] = {"force_custom_plan", "force_generic_plan"};
	for (size_t m = 0; m < 2; m++) {
		char sql[64];
		snprintf(sql, sizeof sql, "SET plan_cache_mode = %s", modes[m]);
		cr_assert_eq(pg_simple(c, sql, "test"), STORE_OK);
		struct pending *arr = NULL;
		size_t n = 0;
		plans_reset();
		cr_assert_eq(store_pending_by_seq(st, seqs, 1000, &arr, NULL, &n), STORE_OK);
		cr_assert_eq(n, 1000, "%s: %zu rows", modes[m], n);
		free(arr);
		long buffers = plan_buffers();
		cr_log_info("%s: %ld buffers", modes[m], buffers);
		cr_assert(buffers > 0 && buffers < 2200, "%s: %ld buffers:\n%s", modes[m], buffers,
			  plans);
	}
}

/* A store connection of node id, its plans collected as st's are. */
static struct store *open_node(const char *id)
{
	store_set_node_id(id);
	struct store *node = test_db_open(&tdb);
	store_set_node_id(NULL);
	struct pg *c = node->conn;
	PQsetNoticeProcessor(c->db, collect, NULL);
	cr_assert_eq(pg_simple(c,
			       "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;"
			       " SET auto_explain.log_level = notice",
			       "test"),
		     STORE_OK);
	return node;
}

/* A node's fetch of a run that other nodes' rows fill probes, for each
 * endpoint it holds, that endpoint's rows in the run (deliveries_endpoint),
 * and so reads its own rows only: here 20 of 1,000, in 30-40 buffers where
 * the scan of the run reads 400-3,800. Holding many endpoints against the
 * rows of the run, it scans the run by primary key instead (a probe per
 * endpoint held would cost more than the rows). */
Test(pg_plans, a_nodes_fetch_probes_its_own_endpoints)
{
	test_db_pg_exec(&tdb, "INSERT INTO deliveries (id, event_id, endpoint_id, event_type,"
			      " status, next_attempt_at, created_at, updated_at)"
			      " SELECT 'dlv_n' || lpad(i::text, 6, '0'), 'evt_n',"
			      " 'ep_' || lpad((1 + i % 100)::text, 4, '0'), 't', 0, 3000000 + i, i, i"
			      " FROM generate_series(1, 1000) AS i;"
			      "INSERT INTO endpoint_owner (endpoint_id, node_id, lease_until)"
			      " SELECT id, CASE WHEN id IN ('ep_0002', 'ep_0003') THEN 'me' ELSE"
			      " 'other' END, now() + interval '1 hour' FROM endpoints;"
			      " ANALYZE endpoint_owner");
	struct store *node = open_node("me");
	struct pg *c = node->conn;
	int64_t first = first_seq(c, "dlv_n%");
	int64_t seqs[1000];
	for (int i = 0; i < 1000; i++)
		seqs[i] = first + i;
	count_buffers(c);
	const struct {
		size_t held;
		const char *index;
		long min_buffers, max_buffers;
	} cases[] = {{2, "deliveries_endpoint", 1, 150}, {1000, "deliveries_pkey", 300, 8000}};
	static const char *const modes[] = {"force_custom_plan", "force_generic_plan"};
	for (size_t k = 0; k < 2; k++) {
		pg_leases_held_set(cases[k].held);
		for (size_t m = 0; m < 4; m++) { /* without and with the events */
			char sql[64];
			snprintf(sql, sizeof sql, "SET plan_cache_mode = %s", modes[m % 2]);
			cr_assert_eq(pg_simple(c, sql, "test"), STORE_OK);
			struct pending *arr = NULL;
			struct event *evs = NULL;
			size_t n = 0;
			plans_reset();
			cr_assert_eq(store_pending_by_seq(node, seqs, 1000, &arr, m >= 2 ? &evs : NULL,
							  &n),
				     STORE_OK);
			cr_assert_eq(n, 20, "held %zu, %s: %zu rows", cases[k].held, modes[m % 2], n);
			for (size_t i = 0; i < n; i++) {
				cr_assert(strcmp(arr[i].endpoint_id, "ep_0002") == 0 ||
					  strcmp(arr[i].endpoint_id, "ep_0003") == 0);
				cr_assert(i == 0 || arr[i - 1].next_attempt_at < arr[i].next_attempt_at,
					  "in key order");
			}
			for (size_t i = 0; evs != NULL && i < n; i++)
				event_clear(&evs[i]);
			free(evs);
			free(arr);
			long buffers = plan_buffers();
			cr_log_info("held %zu, %s: %ld buffers", cases[k].held, modes[m % 2], buffers);
			cr_assert_not_null(strstr(plans, cases[k].index), "held %zu, %s:\n%s",
					   cases[k].held, modes[m % 2], plans);
			cr_assert(buffers >= cases[k].min_buffers && buffers <= cases[k].max_buffers,
				  "held %zu, %s: %ld buffers:\n%s", cases[k].held, modes[m % 2],
				  buffers, plans);
		}
	}
	store_close(node);
}

/* A node's listing (a connection opened with a node id) reads its own
 * endpoints (a third are another node's) and still probes the pending
 * index per endpoint. */
Test(pg_plans, a_nodes_listing_probes_the_pending_index)
{
	test_db_pg_exec(&tdb, "INSERT INTO endpoint_owner (endpoint_id, node_id, lease_until)"
			      " SELECT id, CASE WHEN seq % 3 = 0 THEN 'other' ELSE 'me' END,"
			      " now() + interval '1 hour' FROM endpoints; ANALYZE endpoint_owner");
	struct store *node = open_node("me");
	struct pg *c = node->conn;
	size_t mine = 0;
	static const char *const modes[] = {"force_custom_plan", "force_generic_plan"};
	for (size_t m = 0; m < 2; m++) {
		char sql[64];
		snprintf(sql, sizeof sql, "SET plan_cache_mode = %s", modes[m]);
		cr_assert_eq(pg_simple(c, sql, "test"), STORE_OK);
		char(*ids)[ID_MAX] = NULL;
		size_t n = 0;
		plans_reset();
		cr_assert_eq(store_pending_endpoints(node, &ids, &n), STORE_OK);
		free(ids);
		/* Of ep_0001, ep_0051, ep_0101 and ep_0151 (fill), the
		 * ones whose seq is not a multiple of 3. */
		if (mine == 0)
			mine = n;
		cr_assert_eq(n, mine);
		cr_assert_gt(n, 0);
		cr_assert_lt(n, 4, "only this node's");
		assert_plan(modes[m], "deliveries_pending_endpoint", false);
		cr_assert_not_null(strstr(plans, "endpoint_owner"), "no probe of endpoint_owner:\n%s", plans);
	}
	store_close(node);
}

/* Each list with an index for its filters walks it newest first; a list
 * without one walks the primary key downwards within its window. */
Test(pg_plans, delivery_lists_walk_their_indexes)
{
	const struct {
		struct delivery_query q;
		const char *index;
		bool sort_ok;
	} cases[] = {
		{{.status = -1, .limit = 50}, "deliveries_pkey", false},
		{{.endpoint_id = "ep_0007", .status = -1, .limit = 20}, "deliveries_endpoint", false},
		{{.event_id = "evt_000100", .status = -1, .limit = 20}, "deliveries_event", false},
		{{.status = DELIVERY_DEAD, .limit = 20}, "deliveries_dead", false},
		{{.endpoint_id = "ep_0002", .status = DELIVERY_DEAD, .limit = 20},
		 "deliveries_dead_endpoint", false},
		/* Windowed: the outer ORDER BY sorts the page's own rows. */
		{{.status = DELIVERY_PENDING, .limit = 20}, "Index Scan Backward using deliveries_pkey",
		 true},
		{{.status = -1, .event_type = "t3", .limit = 20},
		 "Index Scan Backward using deliveries_pkey", true},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct delivery *arr = NULL;
		size_t n = 0;
		char next[STORE_CURSOR_MAX];
		plans_reset();
		cr_assert_eq(store_delivery_list(st, &cases[i].q, &arr, &n, next), STORE_OK);
		cr_assert_gt(n, 0, "case %zu", i);
		for (size_t k = 0; k < n; k++)
			delivery_clear(&arr[k]);
		free(arr);
		char what[32];
		snprintf(what, sizeof what, "list case %zu", i);
		assert_plan(what, cases[i].index, cases[i].sort_ok);
	}
}

static int count_purged(const char *endpoint_id, int64_t n, void *arg)
{
	(void)endpoint_id;
	*(int64_t *)arg += n;
	return STORE_OK;
}

/* The DLQ retry of an endpoint finds its dead letters through their own
 * index, the purge the expired ones through their age index. */
Test(pg_plans, dead_letters_use_their_indexes)
{
	int64_t told = 0, count = 0;
	/* dlv_000097 is dead (every 97th), of ep_0098. */
	cr_assert_eq(store_dlq_retry_endpoint(st, "ep_0098", 1, &count), STORE_OK);
	cr_assert_gt(count, 0);
	assert_plan("retry endpoint", "deliveries_dead_endpoint", true);
	plans_reset();
	cr_assert_eq(store_purge_dead(st, 5000, &count, count_purged, &told), STORE_OK);
	cr_assert_gt(count, 0);
	cr_assert_eq(told, count);
	assert_plan("purge", "deliveries_dead_age", true);
}

/* Retention's batch walks the events by age, each event's deliveries
 * through deliveries_event, and the idempotency keys by age: no statement
 * reads a whole table. */
Test(pg_plans, retention_walks_its_indexes)
{
	test_db_pg_exec(&tdb,
			"INSERT INTO events (id, type, data, created_at)"
			" SELECT 'evt_' || lpad(i::text, 6, '0'), 't', '{}', i"
			" FROM generate_series(1, 10000) AS i;"
			"INSERT INTO idempotency_keys (key, event_ids, created_at)"
			" SELECT 'k' || i, '[\"evt_' || lpad(i::text, 6, '0') || '\"]', i"
			" FROM generate_series(1, 10000) AS i;"
			"ANALYZE events; ANALYZE idempotency_keys");
	struct store_retention r = {.before = 200, .dead_before = 0, .max_events = 50,
				    .max_deliveries = 1000, .max_scan = 100};
	struct store_retention_cursor cur = STORE_RETENTION_START;
	struct store_retention_result res;
	int64_t told = 0;
	plans_reset();
	cr_assert_eq(store_begin(st), STORE_OK);
	cr_assert_eq(store_purge_events(st, &r, &cur, &res, count_purged, &told), STORE_OK);
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert_gt(res.events, 0);
	assert_plan("retention events", "events_created", true);
	assert_plan("retention deliveries", "deliveries_event", true);
	assert_plan("retention keys", "idempotency_keys_created", true);
	cr_assert_null(strstr(plans, "Seq Scan on events"), "%s", plans);
	cr_assert_null(strstr(plans, "Seq Scan on idempotency_keys"), "%s", plans);
}

/* A fetch of the rows another node announced reads them by primary key,
 * whatever the table's size: no walk of the pending index or the table.
 * Sorting its own few rows into key order is fine. */
Test(pg_plans, pending_by_seq_reads_by_primary_key)
{
	int64_t seqs[20];
	for (int i = 0; i < 20; i++)
		seqs[i] = 50 * (i + 1); /* pending rows (fill: every fiftieth) */
	static const char *const modes[] = {"force_custom_plan", "force_generic_plan"};
	for (size_t m = 0; m < 4; m++) { /* without and with the events */
		char sql[64];
		snprintf(sql, sizeof sql, "SET plan_cache_mode = %s", modes[m % 2]);
		cr_assert_eq(pg_simple(st->conn, sql, "test"), STORE_OK);
		struct pending *arr = NULL;
		struct event *evs = NULL;
		size_t n = 0;
		plans_reset();
		cr_assert_eq(store_pending_by_seq(st, seqs, 20, &arr, m >= 2 ? &evs : NULL, &n),
			     STORE_OK);
		cr_assert_gt(n, 0);
		cr_assert_leq(n, 20);
		for (size_t i = 0; evs != NULL && i < n; i++)
			event_clear(&evs[i]);
		free(evs);
		free(arr);
		assert_plan(modes[m % 2], "deliveries_pkey", true);
		cr_assert_null(strstr(plans, "deliveries_pending"), "%s:\n%s", modes[m % 2], plans);
		cr_assert_null(strstr(plans, "Seq Scan on events"), "%s:\n%s", modes[m % 2], plans);
	}
}

/* A batch's deliveries go in with a plain INSERT: their ids are hookd's
 * own, so `ON CONFLICT` would only cost each row a speculative insertion (a
 * probe of the id index, a lock, one more WAL record). A duplicate id is
 * still a conflict, which the caller rolls back. */
Test(pg_plans, delivery_insert_many_is_a_plain_insert)
{
	struct delivery ds[3];
	for (int i = 0; i < 3; i++) {
		ds[i] = (struct delivery){.event_type = "t", .status = DELIVERY_PENDING,
					  .next_attempt_at = 5, .created_at = 5, .updated_at = 5};
		snprintf(ds[i].id, sizeof ds[i].id, "dlv_plain_%d", i);
		snprintf(ds[i].event_id, sizeof ds[i].event_id, "evt_plain");
		snprintf(ds[i].endpoint_id, sizeof ds[i].endpoint_id, "ep_0001");
	}
	plans_reset();
	cr_assert_eq(store_delivery_insert_many(st, ds, 3), STORE_OK);
	cr_assert_not_null(strstr(plans, "Insert on deliveries"), "%s", plans);
	cr_assert_null(strstr(plans, "Conflict"), "%s", plans);
	cr_assert_eq(store_delivery_insert_many(st, ds + 1, 2), STORE_CONFLICT);
}

/* The same for a record op's attempts: a plain INSERT in the statement. */
Test(pg_plans, record_results_inserts_attempts_plainly)
{
	struct delivery ds[2];
	struct attempt as[2];
	struct store_result rs[2];
	for (int i = 0; i < 2; i++) {
		ds[i] = (struct delivery){.event_type = "t", .status = DELIVERY_PENDING,
					  .next_attempt_at = 5, .created_at = 5, .updated_at = 5};
		snprintf(ds[i].id, sizeof ds[i].id, "dlv_rec_%d", i);
		snprintf(ds[i].event_id, sizeof ds[i].event_id, "evt_rec");
		snprintf(ds[i].endpoint_id, sizeof ds[i].endpoint_id, "ep_0001");
		as[i] = (struct attempt){.attempt = 1, .at = 6, .url = "https://h.test/",
					 .status = 200, .duration_ms = 1};
		attempt_measure_none(&as[i]);
		snprintf(as[i].delivery_id, sizeof as[i].delivery_id, "%s", ds[i].id);
		rs[i] = (struct store_result){.dl = &ds[i], .a = &as[i]};
	}
	cr_assert_eq(store_delivery_insert_many(st, ds, 2), STORE_OK);
	ds[0].status = ds[1].status = DELIVERY_SUCCEEDED;
	plans_reset();
	cr_assert_eq(store_record_results(st, rs, 2), STORE_OK);
	cr_assert_not_null(strstr(plans, "Insert on attempts"), "%s", plans);
	cr_assert_null(strstr(plans, "Conflict"), "%s", plans);
	cr_assert_eq(store_record_results(st, rs, 2), STORE_CONFLICT);
}
