/* metrics_prom: writes the metrics as Prometheus text (exposition format
 * 0.0.4): HELP and TYPE for every family, base units (seconds, bytes),
 * counters ending in _total, histograms as cumulative _bucket{le} with
 * _sum and _count. promtool check metrics accepts it without a warning
 * (tests/e2e/test_metrics.py). */
#include "metrics_prom.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue_depth.h"

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped. */
static void label_value(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

/* Microseconds as decimal seconds, exactly ("0.000016", "4294.967296"). */
static void seconds(FILE *f, uint64_t us)
{
	char frac[8];
	snprintf(frac, sizeof frac, "%06" PRIu64, us % 1000000);
	size_t n = strlen(frac);
	while (n > 0 && frac[n - 1] == '0')
		frac[--n] = '\0';
	fprintf(f, "%" PRIu64 "%s%s", us / 1000000, n ? "." : "", frac);
}

/* One histogram's samples; labels: "" or `route="…",` (with the comma). */
static void histogram(FILE *f, const char *name, const char *labels,
		      const struct metrics_phist_snap *h, bool us)
{
	uint64_t cum = 0;
	for (size_t i = 0; i < METRICS_PHIST_N; i++) {
		cum += h->n[i];
		fprintf(f, "%s_bucket{%sle=\"", name, labels);
		if (us)
			seconds(f, metrics_phist_bound(true, i));
		else
			fprintf(f, "%" PRIu64, metrics_phist_bound(false, i));
		fprintf(f, "\"} %" PRIu64 "\n", cum);
	}
	cum += h->n[METRICS_PHIST_N];
	fprintf(f, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, cum);
	/* A histogram's labels end in a comma for le; _sum and _count drop it. */
	int ll = (int)strlen(labels);
	if (ll > 0)
		fprintf(f, "%s_sum{%.*s} ", name, ll - 1, labels);
	else
		fprintf(f, "%s_sum ", name);
	if (us)
		seconds(f, h->sum);
	else
		fprintf(f, "%" PRIu64, h->sum);
	if (ll > 0)
		fprintf(f, "\n%s_count{%.*s} %" PRIu64 "\n", name, ll - 1, labels, h->count);
	else
		fprintf(f, "\n%s_count %" PRIu64 "\n", name, h->count);
}

static void counter(FILE *f, const char *name, const char *help, uint64_t v)
{
	family(f, name, "counter", help);
	fprintf(f, "%s %" PRIu64 "\n", name, v);
}

static void gauge(FILE *f, const char *name, const char *help, double v)
{
	family(f, name, "gauge", help);
	fprintf(f, "%s %.17g\n", name, v);
}

/* What a pass over the endpoint series writes. */
enum ep_pass { PASS_ATTEMPTS, PASS_CIRCUIT, PASS_PAUSED };

struct ep_ctx {
	FILE *f;
	struct dispatch *d;
	enum ep_pass pass;
};

/* hookd_endpoint_circuit_state or hookd_endpoint_paused of one endpoint. */
static void ep_state_line(struct ep_ctx *c, const char *id)
{
	struct dispatch_endpoint_status st;
	dispatch_endpoint_status(c->d, id, &st);
	int v = c->pass == PASS_PAUSED		 ? st.paused_until > 0
		: strcmp(st.circuit, "open") == 0 ? 2
						  : strcmp(st.circuit, "half_open") == 0;
	fprintf(c->f, "%s{endpoint=\"",
		c->pass == PASS_PAUSED ? "hookd_endpoint_paused" : "hookd_endpoint_circuit_state");
	label_value(c->f, id);
	fprintf(c->f, "\"} %d\n", v);
}

static void ep_line(void *arg, const char *id, const uint64_t *outcomes)
{
	struct ep_ctx *c = arg;
	if (c->pass != PASS_ATTEMPTS) {
		if (strcmp(id, "other") != 0)
			ep_state_line(c, id);
		return;
	}
	for (size_t o = 0; o < METRICS_N_OUTCOMES; o++) {
		if (outcomes[o] == 0)
			continue;
		fputs("hookd_attempts_total{endpoint=\"", c->f);
		label_value(c->f, id);
		fprintf(c->f, "\",outcome=\"%s\"} %" PRIu64 "\n",
			metrics_outcome_name((enum metrics_outcome)o), outcomes[o]);
	}
}

static void deliveries(FILE *f, const struct metrics_prom_src *src, const struct metrics_totals *t)
{
	counter(f, "hookd_events_ingested_total",
		"Events accepted by POST /v1/events (duplicates not counted).", t->events);
	counter(f, "hookd_deliveries_created_total",
		"Deliveries created by ingested events (one per subscribed endpoint).", t->created);
	counter(f, "hookd_deliveries_succeeded_total",
		"Deliveries that ended with a 2xx attempt.", t->delivered);
	counter(f, "hookd_deliveries_dead_total",
		"Deliveries moved to the dead-letter queue.", t->dead);
	family(f, "hookd_attempts_total", "counter",
	       "Delivery attempts by endpoint (the first --metrics-max-endpoints; the rest as "
	       "\"other\") and outcome (status class or failure code).");
	struct ep_ctx c = {f, src->d, PASS_ATTEMPTS};
	metrics_ep_each(src->m, ep_line, &c);
	family(f, "hookd_attempt_duration_seconds", "histogram",
	       "Duration of one delivery attempt, request to response.");
	histogram(f, "hookd_attempt_duration_seconds", "", &t->attempt_us, true);
	family(f, "hookd_ingest_to_delivered_seconds", "histogram",
	       "From an event's acceptance (its 202) to the end of its delivery's successful "
	       "attempt.");
	histogram(f, "hookd_ingest_to_delivered_seconds", "", &t->i2d_us, true);
	gauge(f, "hookd_deliveries_in_flight", "Delivery requests out now.", t->in_flight);
	counter(f, "hookd_connections_opened_total",
		"Connections opened to receivers (TCP connects that succeeded).", t->conns_opened);
	family(f, "hookd_tls_handshakes_total", "counter",
	       "TLS handshakes completed with receivers: full, or resuming a cached session.");
	fprintf(f, "hookd_tls_handshakes_total{resumed=\"false\"} %" PRIu64 "\n", t->tls_full);
	fprintf(f, "hookd_tls_handshakes_total{resumed=\"true\"} %" PRIu64 "\n", t->tls_resumed);
	struct queue_figures q;
	queue_depth_read(src->q, NULL, now_ms(), src->blocked, src->d, &q);
	family(f, "hookd_queue_deliveries", "gauge",
	       "Deliveries in the queue by state: due (may be sent now), scheduled (a retry's "
	       "backoff), waiting (endpoint disabled, paused or circuit open), dead (the DLQ).");
	fprintf(f, "hookd_queue_deliveries{state=\"due\"} %" PRId64 "\n", q.due);
	fprintf(f, "hookd_queue_deliveries{state=\"scheduled\"} %" PRId64 "\n", q.scheduled);
	fprintf(f, "hookd_queue_deliveries{state=\"waiting\"} %" PRId64 "\n", q.waiting);
	fprintf(f, "hookd_queue_deliveries{state=\"dead\"} %" PRId64 "\n", q.dead);
	gauge(f, "hookd_queue_oldest_pending_age_seconds",
	      "How long the longest-waiting due delivery has been due (0 when none is due).",
	      q.oldest_pending_age_s);
}

static void endpoints(FILE *f, const struct metrics_prom_src *src)
{
	family(f, "hookd_endpoint_circuit_state", "gauge",
	       "Circuit of an endpoint with a series of its own: 0 closed, 1 half open, 2 open.");
	struct ep_ctx c = {f, src->d, PASS_CIRCUIT};
	metrics_ep_each(src->m, ep_line, &c);
	family(f, "hookd_endpoint_paused", "gauge",
	       "1 if an endpoint with a series of its own is paused now by a receiver's "
	       "Retry-After, else 0.");
	c.pass = PASS_PAUSED;
	metrics_ep_each(src->m, ep_line, &c);
	size_t open, half, paused;
	dispatch_circuit_counts(src->d, &open, &half, &paused);
	gauge(f, "hookd_endpoints_circuit_open", "Endpoints whose circuit is open now.",
	      (double)open);
	gauge(f, "hookd_endpoints_circuit_half_open",
	      "Endpoints whose circuit is half open (a probe is allowed).", (double)half);
	gauge(f, "hookd_endpoints_paused", "Endpoints paused now by a receiver's Retry-After.",
	      (double)paused);
	gauge(f, "hookd_connections_open",
	      "Delivery connections open to receivers now (connecting, in use or idle).",
	      (double)dispatch_connections_open(src->d));
	gauge(f, "hookd_dispatcher_endpoint_states",
	      "Endpoints the dispatcher holds scheduling state for (deleted ones are freed once idle).",
	      (double)dispatch_endpoint_states(src->d));
}

static void api_routes(FILE *f, const struct metrics_prom_src *src)
{
	uint64_t codes[METRICS_API_CODES];
	struct metrics_phist_snap dur;
	char route[96], labels[128];
	family(f, "hookd_api_requests_total", "counter",
	       "API responses by route pattern and status code (\"other\": a code not listed).");
	for (size_t i = 0; i <= src->n_routes; i++) {
		if (!metrics_api_route(src->m, i, codes, &dur) || !src->route_label(i, route, sizeof route))
			continue;
		for (size_t k = 0; k < METRICS_API_CODES; k++) {
			if (codes[k] == 0)
				continue;
			fprintf(f, "hookd_api_requests_total{route=\"%s\",code=\"", route);
			if (metrics_api_codes[k] != 0)
				fprintf(f, "%u", metrics_api_codes[k]);
			else
				fputs("other", f);
			fprintf(f, "\"} %" PRIu64 "\n", codes[k]);
		}
	}
	family(f, "hookd_api_request_duration_seconds", "histogram",
	       "From an API request's arrival to its response being queued, by route pattern.");
	for (size_t i = 0; i <= src->n_routes; i++) {
		if (!metrics_api_route(src->m, i, codes, &dur) || !src->route_label(i, route, sizeof route))
			continue;
		snprintf(labels, sizeof labels, "route=\"%s\",", route);
		histogram(f, "hookd_api_request_duration_seconds", labels, &dur, true);
	}
}

/* Resident set size from /proc/self/statm; -1 if unreadable. */
static double rss_bytes(void)
{
	FILE *s = fopen("/proc/self/statm", "r");
	unsigned long long size, rss;
	int ok = s != NULL && fscanf(s, "%llu %llu", &size, &rss) == 2;
	if (s != NULL)
		fclose(s);
	return ok ? (double)rss * (double)sysconf(_SC_PAGESIZE) : -1;
}

/* hookd_store_size_bytes{file} and hookd_store_free_bytes
 * (docs/operations.md#retention). */
static void store_figures(FILE *f, const struct store_size *sz)
{
	if (sz == NULL)
		return;
	if (sz->file_bytes >= 0 || sz->wal_bytes >= 0)
		family(f, "hookd_store_size_bytes", "gauge",
		       "Size of the store on disk: the database file and its write-ahead log.");
	if (sz->file_bytes >= 0)
		fprintf(f, "hookd_store_size_bytes{file=\"database\"} %" PRId64 "\n",
			sz->file_bytes);
	if (sz->wal_bytes >= 0)
		fprintf(f, "hookd_store_size_bytes{file=\"wal\"} %" PRId64 "\n", sz->wal_bytes);
	if (sz->free_bytes >= 0)
		gauge(f, "hookd_store_free_bytes",
		      "Free pages inside the database file, reused for new rows before it grows.",
		      (double)sz->free_bytes);
}

static void process(FILE *f, const struct metrics_prom_src *src, const struct metrics_totals *t)
{
	family(f, "hookd_commit_group_size", "histogram",
	       "Writes committed together by one group commit (one fsync).");
	histogram(f, "hookd_commit_group_size", "", &t->commit_ops, false);
	family(f, "hookd_commit_duration_seconds", "histogram",
	       "Time of one group's COMMIT, its fsync included.");
	histogram(f, "hookd_commit_duration_seconds", "", &t->commit_us, true);
	double rss = rss_bytes();
	if (rss >= 0)
		gauge(f, "hookd_process_resident_memory_bytes", "Resident memory of the process.",
		      rss);
	if (src->open_connections >= 0)
		gauge(f, "hookd_api_open_connections", "Connections open to the API listener.",
		      (double)src->open_connections);
	if (src->n_conn_reasons > 0)
		family(f, "hookd_api_connections_refused_total", "counter",
		       "API connections closed by hookd: at accept when a cap is reached "
		       "(per_address, total) or while their request was read (request_timeout).");
	for (size_t i = 0; i < src->n_conn_reasons; i++)
		fprintf(f, "hookd_api_connections_refused_total{reason=\"%s\"} %" PRIu64 "\n",
			src->conn_reasons[i], src->conn_refused[i]);
	family(f, "hookd_process_start_time_seconds", "gauge",
	       "When the process started (and the counters with it), in seconds since the epoch.");
	fputs("hookd_process_start_time_seconds ", f);
	seconds(f, (uint64_t)metrics_started_ms(src->m) * 1000);
	fputc('\n', f);
}

char *metrics_prom_render(const struct metrics_prom_src *src, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	if (f == NULL)
		return NULL;
	struct metrics_totals t;
	metrics_totals(src->m, &t);
	deliveries(f, src, &t);
	endpoints(f, src);
	api_routes(f, src);
	process(f, src, &t);
	store_figures(f, src->store_size);
	if (ferror(f) != 0) {
		fclose(f);
		free(buf);
		return NULL;
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}
