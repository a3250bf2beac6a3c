/* metrics_prom: the Prometheus text of known metrics, line by line: HELP
 * and TYPE once per family, exact le bounds, cumulative buckets, labels,
 * circuit and pause states from the dispatcher's table. (promtool itself
 * checks a live scrape in tests/e2e/test_metrics.py.) */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch_ep.h"
#include "metrics.h"
#include "metrics_prom.h"
#include "queue_depth.h"
#include "util.h"

/* The test's table stands in for a dispatcher (as in test_dispatch_ep.c). */
struct dispatch_eps *dispatch_eps_of(struct dispatch *d)
{
	return (struct dispatch_eps *)(void *)d;
}

static bool label(size_t i, char *buf, size_t len)
{
	if (i > 1)
		return false;
	snprintf(buf, len, "%s", i == 0 ? "/v1/events" : "unmatched");
	return true;
}

/* Endpoint ep_w cannot send (the queue's "waiting"). */
static bool blocked(const char *endpoint_id, void *arg)
{
	(void)arg;
	return strcmp(endpoint_id, "ep_w") == 0;
}

static char *render(struct metrics *m, struct dispatch_eps *t, struct queue_depth *q)
{
	struct metrics_prom_src src = {.m = m,
				       .d = (struct dispatch *)(void *)t,
				       .q = q,
				       .blocked = blocked,
				       .n_routes = 1,
				       .route_label = label,
				       .open_connections = 3};
	size_t len = 0;
	char *text = metrics_prom_render(&src, &len);
	cr_assert_not_null(text);
	cr_assert_eq(strlen(text), len);
	return text;
}

static void has_line(const char *text, const char *line)
{
	char want[512];
	snprintf(want, sizeof want, "\n%s\n", line);
	cr_assert_not_null(strstr(text, want), "missing line: %s\n---\n%s", line, text);
}

Test(metrics_prom, families_samples_and_bounds)
{
	struct dispatch_eps t;
	cr_assert_eq(dispatch_eps_init(&t, 5, 1000), 0);
	struct metrics *m = metrics_new(1);
	int64_t now = now_ms();
	struct dispatch_ep *a = dispatch_eps_get(&t, "ep_a"), *b = dispatch_eps_get(&t, "ep_b");
	a->br.state = BREAKER_OPEN;
	b->paused_until = now + 60000;
	struct metrics_ep *sa = metrics_ep_resolve(m, "ep_a", &a->mep, &a->mgen);
	struct metrics_ep *sb = metrics_ep_resolve(m, "ep_b", &b->mep, &b->mgen);
	metrics_attempt(m, sa, METRICS_5XX, 16, now);     /* <= 16 us */
	metrics_attempt(m, sa, METRICS_5XX, 17, now);     /* <= 64 us */
	metrics_attempt(m, sb, METRICS_2XX, 2000000, now); /* <= 4.194304 s */
	metrics_delivered(m, sb, 5000, now);
	metrics_ingested(m, 2, 3, now);
	metrics_commit_group(m, 3, 100);
	metrics_api_request(m, 0, 202, 20);
	metrics_api_request(m, 1, 404, 20);
	/* The queue: two due on ep_a (the older due 5 s ago), one retry 60 s
	 * ahead, one waiting on ep_w, one dead. */
	struct queue_depth *q = queue_depth_new();
	cr_assert_not_null(q);
	struct pending p[4] = {{.endpoint_id = "ep_a", .next_attempt_at = now - 5000},
			       {.endpoint_id = "ep_a", .next_attempt_at = now},
			       {.endpoint_id = "ep_a", .next_attempt_at = now + 60000},
			       {.endpoint_id = "ep_w", .next_attempt_at = now}};
	queue_depth_created(q, p, 4);
	queue_depth_lock(q);
	queue_depth_add_dead_locked(q, "ep_a", 1);
	queue_depth_unlock(q);
	char *text = render(m, &t, q);

	has_line(text, "hookd_queue_deliveries{state=\"due\"} 2");
	has_line(text, "hookd_queue_deliveries{state=\"scheduled\"} 1");
	has_line(text, "hookd_queue_deliveries{state=\"waiting\"} 1");
	has_line(text, "hookd_queue_deliveries{state=\"dead\"} 1");
	cr_assert_not_null(strstr(text, "hookd_queue_oldest_pending_age_seconds 5"),
			   "the oldest due delivery has waited 5 s");

	has_line(text, "# TYPE hookd_events_ingested_total counter");
	has_line(text, "hookd_events_ingested_total 2");
	has_line(text, "hookd_deliveries_created_total 3");
	has_line(text, "hookd_deliveries_succeeded_total 1");
	has_line(text, "hookd_attempts_total{endpoint=\"ep_a\",outcome=\"5xx\"} 2");
	has_line(text, "hookd_attempts_total{endpoint=\"other\",outcome=\"2xx\"} 1");
	has_line(text, "hookd_attempt_duration_seconds_bucket{le=\"0.000016\"} 1");
	has_line(text, "hookd_attempt_duration_seconds_bucket{le=\"0.000064\"} 2");
	has_line(text, "hookd_attempt_duration_seconds_bucket{le=\"1.048576\"} 2");
	has_line(text, "hookd_attempt_duration_seconds_bucket{le=\"4.194304\"} 3");
	has_line(text, "hookd_attempt_duration_seconds_bucket{le=\"17179.869184\"} 3");
	has_line(text, "hookd_attempt_duration_seconds_bucket{le=\"+Inf\"} 3");
	has_line(text, "hookd_attempt_duration_seconds_sum 2.000033");
	has_line(text, "hookd_attempt_duration_seconds_count 3");
	has_line(text, "hookd_ingest_to_delivered_seconds_sum 0.005");
	has_line(text, "hookd_endpoint_circuit_state{endpoint=\"ep_a\"} 2");
	has_line(text, "hookd_endpoint_paused{endpoint=\"ep_a\"} 0");
	has_line(text, "hookd_endpoints_circuit_open 1");
	has_line(text, "hookd_endpoints_paused 1");
	has_line(text, "hookd_dispatcher_endpoint_states 2");
	has_line(text, "hookd_api_requests_total{route=\"/v1/events\",code=\"202\"} 1");
	has_line(text, "hookd_api_requests_total{route=\"unmatched\",code=\"404\"} 1");
	has_line(text, "hookd_api_request_duration_seconds_bucket{route=\"/v1/events\",le=\"0.000064\"} 1");
	has_line(text, "hookd_api_request_duration_seconds_count{route=\"/v1/events\"} 1");
	has_line(text, "hookd_commit_group_size_bucket{le=\"2\"} 0");
	has_line(text, "hookd_commit_group_size_bucket{le=\"4\"} 1");
	has_line(text, "hookd_api_open_connections 3");
	/* ep_b is past the cap of 1: no series, so no circuit line of its own. */
	cr_assert_null(strstr(text, "endpoint=\"ep_b\""));

	/* Every family has one HELP and one TYPE, and each sample follows its TYPE. */
	char *copy = strdup(text), *save = NULL, family[128] = "";
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# TYPE ", 7) == 0) {
			sscanf(line + 7, "%127s", family);
			char help[160];
			snprintf(help, sizeof help, "# HELP %s ", family);
			cr_assert_not_null(strstr(text, help), "no HELP for %s", family);
			continue;
		}
		if (line[0] == '#')
			continue;
		cr_assert_eq(strncmp(line, family, strlen(family)), 0, "%s outside %s", line, family);
	}
	free(copy);
	free(text);
	metrics_free(m);
	queue_depth_free(q);
	dispatch_eps_free(&t);
}

/* The store's size: one gauge family by file, one for the free pages; a
 * figure the store cannot tell (-1) is left out, and so is all of it
 * without a size. */
Test(metrics_prom, store_size_gauges)
{
	struct metrics *m = metrics_new(1);
	struct store_size sz = {.file_bytes = 52428800, .wal_bytes = 4194304, .free_bytes = 16384};
	struct metrics_prom_src src = {.m = m, .open_connections = -1, .store_size = &sz};
	size_t len = 0;
	char *text = metrics_prom_render(&src, &len);
	cr_assert_not_null(text);
	has_line(text, "# TYPE hookd_store_size_bytes gauge");
	has_line(text, "hookd_store_size_bytes{file=\"database\"} 52428800");
	has_line(text, "hookd_store_size_bytes{file=\"wal\"} 4194304");
	has_line(text, "hookd_store_free_bytes 16384");
	free(text);

	sz.wal_bytes = -1;
	sz.free_bytes = -1;
	text = metrics_prom_render(&src, &len);
	has_line(text, "hookd_store_size_bytes{file=\"database\"} 52428800");
	cr_assert_null(strstr(text, "file=\"wal\""));
	cr_assert_null(strstr(text, "hookd_store_free_bytes"));
	free(text);

	src.store_size = NULL;
	text = metrics_prom_render(&src, &len);
	cr_assert_null(strstr(text, "hookd_store_"));
	free(text);
	metrics_free(m);
}
