/* Table tests for validate.c: every rule of the API contract's request
 * checks, with the field path each refusal names. */
#include <criterion/criterion.h>
#include <string.h>

#include "model.h"
#include "validate.h"

/* A string of n copies of c (static buffer, one at a time). */
static const char *rep(char c, size_t n)
{
	static char buf[4096];
	cr_assert(n < sizeof buf);
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	cr_assert_not_null(j, "bad test JSON %s: %s", text, e.text);
	return j;
}

Test(validate, event_types)
{
	struct {
		const char *type;
		bool subscription;
		int rc;
	} cases[] = {
		{"media.moderated", false, 0},
		{"a", false, 0},
		{"A-z_0:9.x", false, 0},
		{"", false, -1},
		{"has space", false, -1},
		{"é", false, -1},
		{"slash/no", false, -1},
		{"*", false, -1},
		{"*", true, 0},
		{"delivery.dead_lettered", false, -1},
		{"delivery.dead_lettered", true, 0},
		{"delivery.other", true, -1},
		{"delivery.x", false, -1},
		{"endpoint.disabled", false, -1},
		{"endpoint.disabled", true, 0},
		{"endpoint.other", true, -1},
		{"deliveryx", false, 0},
		{"endpoints.x", false, 0},
		{"media.*", true, -1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct validate_error err = {0};
		int rc = validate_event_type(cases[i].type, cases[i].subscription, "event", &err);
		cr_expect_eq(rc, cases[i].rc, "type '%s' sub=%d: got %d", cases[i].type,
			     cases[i].subscription, rc);
		if (rc != 0)
			cr_expect_str_eq(err.field, "event");
	}
	struct validate_error err;
	cr_expect_eq(validate_event_type(rep('a', 128), false, "event", &err), 0);
	cr_expect_eq(validate_event_type(rep('a', 129), false, "event", &err), -1);
	cr_expect_eq(validate_event_type(NULL, false, "event", &err), -1);
}

Test(validate, event_ids)
{
	struct validate_error err;
	cr_expect_eq(validate_event_id("evt_1", "id", &err), 0);
	cr_expect_eq(validate_event_id("order-42_A", "id", &err), 0);
	cr_expect_eq(validate_event_id(rep('x', 64), "id", &err), 0);
	cr_expect_eq(validate_event_id(rep('x', 65), "id", &err), -1);
	cr_expect_eq(validate_event_id("", "id", &err), -1);
	cr_expect_eq(validate_event_id("a.b", "id", &err), -1);
	cr_expect_eq(validate_event_id("a b", "id", &err), -1);
	cr_expect_eq(validate_event_id(NULL, "id", &err), -1);
	cr_expect_str_eq(err.field, "id");
}

Test(validate, urls)
{
	struct {
		const char *url;
		bool allow_http;
		int rc;
	} cases[] = {
		{"https://example.com", false, 0},
		{"https://example.com/hooks?x=1#f", false, 0},
		{"HTTPS://Example.COM:8443/p", false, 0},
		{"http://127.0.0.1:9000/hook", true, 0},
		{"http://127.0.0.1:9000/hook", false, -1},
		{"https://[::1]:8443/x", false, 0},
		{"https://[::1]/x", false, 0},
		{"https://[::1", false, -1},
		{"https://[zz::1]/", false, -1},
		{"https://[::1]x/", false, -1},
		{"https://host:0/", false, -1},
		{"https://host:65535/", false, 0},
		{"https://host:65536/", false, -1},
		{"https://host:/", false, -1},
		{"https://host:12a/", false, -1},
		{"https:///path", false, -1},
		{"https://", false, -1},
		{"https://:443/", false, -1},
		{"https://user:pw@host/", false, -1},
		{"ftp://host/", true, -1},
		{"example.com/hook", true, -1},
		{"/relative", true, -1},
		{"", true, -1},
		{"https://ex ample.com/", false, -1},
		{"https://example.com/a b", false, -1},
		{"https://exa\x01mple.com/", false, -1},
		{"https://bücher.de/", false, -1},
		{"https://ho!st/", false, -1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct validate_error err = {0};
		int rc = validate_url(cases[i].url, cases[i].allow_http, &err);
		cr_expect_eq(rc, cases[i].rc, "url '%s' allow_http=%d: got %d (%s)", cases[i].url,
			     cases[i].allow_http, rc, err.message);
		if (rc != 0)
			cr_expect_str_eq(err.field, "url");
	}
	/* Length limit: 2048 chars in all. */
	char url[2100];
	strcpy(url, "https://h/");
	strcat(url, rep('a', 2048 - strlen("https://h/")));
	struct validate_error err;
	cr_expect_eq(validate_url(url, false, &err), 0);
	strcat(url, "a");
	cr_expect_eq(validate_url(url, false, &err), -1);
}

Test(validate, ingest_single)
{
	struct {
		const char *body;
		int rc;
		const char *field;
	} cases[] = {
		{"{\"event\":\"a.b\",\"data\":{}}", 0, NULL},
		{"{\"id\":\"x1\",\"event\":\"a.b\",\"data\":{\"k\":[1,2]}}", 0, NULL},
		{"{\"id\":null,\"event\":\"a.b\",\"data\":{}}", 0, NULL},
		{"{\"event\":\"a.b\"}", -1, "data"},
		{"{\"event\":\"a.b\",\"data\":[]}", -1, "data"},
		{"{\"event\":\"a.b\",\"data\":\"x\"}", -1, "data"},
		{"{\"event\":\"a.b\",\"data\":null}", -1, "data"},
		{"{\"data\":{}}", -1, "event"},
		{"{\"event\":7,\"data\":{}}", -1, "event"},
		{"{\"event\":\"delivery.dead_lettered\",\"data\":{}}", -1, "event"},
		{"{\"event\":\"bad type\",\"data\":{}}", -1, "event"},
		{"{\"id\":\"a.b\",\"event\":\"a.b\",\"data\":{}}", -1, "id"},
		{"{\"id\":5,\"event\":\"a.b\",\"data\":{}}", -1, "id"},
		{"{\"event\":\"a.b\",\"data\":{},\"extra\":1}", -1, "extra"},
		{"[]", -1, ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *j = parse(cases[i].body);
		struct validate_ingest v;
		struct validate_error err = {0};
		int rc = validate_ingest(j, &v, &err);
		cr_expect_eq(rc, cases[i].rc, "body %s: got %d (%s %s)", cases[i].body, rc,
			     err.field, err.message);
		if (rc == 0) {
			cr_expect_eq(v.n, 1);
			cr_expect_not(v.batch);
			cr_expect_str_eq(v.events[0].type, "a.b");
			cr_expect(json_is_object(v.events[0].data));
			validate_ingest_free(&v);
		} else if (cases[i].field) {
			cr_expect_str_eq(err.field, cases[i].field, "body %s", cases[i].body);
			cr_expect_null(v.events);
		}
		json_decref(j);
	}
	json_t *j = parse("{\"id\":\"given-1\",\"event\":\"a.b\",\"data\":{\"x\":1}}");
	struct validate_ingest v;
	struct validate_error err;
	cr_assert_eq(validate_ingest(j, &v, &err), 0);
	cr_expect_str_eq(v.events[0].id, "given-1");
	cr_expect_eq(json_integer_value(json_object_get(v.events[0].data, "x")), 1);
	validate_ingest_free(&v);
	json_decref(j);
}

Test(validate, ingest_batch)
{
	struct {
		const char *body;
		int rc;
		const char *field;
	} cases[] = {
		{"{\"events\":[{\"event\":\"a\",\"data\":{}},{\"event\":\"b\",\"data\":{}}]}", 0,
		 NULL},
		{"{\"events\":[]}", -1, "events"},
		{"{\"events\":{}}", -1, "events"},
		{"{\"events\":[{\"event\":\"a\",\"data\":{}}],\"x\":1}", -1, "x"},
		{"{\"events\":[{\"event\":\"a\",\"data\":{}},7]}", -1, "events[1]"},
		{"{\"events\":[{\"event\":\"a\",\"data\":{}},{\"data\":{}}]}", -1,
		 "events[1].event"},
		{"{\"events\":[{\"event\":\"a\"}]}", -1, "events[0].data"},
		{"{\"events\":[{\"event\":\"a\",\"data\":{}},{\"event\":\"a\",\"data\":{}},"
		 "{\"event\":\"a\",\"data\":{},\"zz\":0}]}",
		 -1, "events[2].zz"},
		{"{\"events\":[{\"id\":\"bad id\",\"event\":\"a\",\"data\":{}}]}", -1,
		 "events[0].id"},
		{"{\"events\":[{\"event\":\"endpoint.x\",\"data\":{}}]}", -1, "events[0].event"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *j = parse(cases[i].body);
		struct validate_ingest v;
		struct validate_error err = {0};
		int rc = validate_ingest(j, &v, &err);
		cr_expect_eq(rc, cases[i].rc, "body %s: got %d (%s %s)", cases[i].body, rc,
			     err.field, err.message);
		if (rc == 0) {
			cr_expect(v.batch);
			cr_expect_eq(v.n, 2);
			cr_expect_str_eq(v.events[1].type, "b");
			validate_ingest_free(&v);
		} else {
			cr_expect_str_eq(err.field, cases[i].field, "body %s", cases[i].body);
		}
		json_decref(j);
	}
}

static json_t *batch_of(size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:s, s:{}}", "event", "x.y", "data"));
	return json_pack("{s:o}", "events", arr);
}

Test(validate, ingest_batch_limits)
{
	struct validate_ingest v;
	struct validate_error err;
	json_t *j = batch_of(1000);
	cr_assert_eq(validate_ingest(j, &v, &err), 0);
	cr_expect_eq(v.n, 1000);
	validate_ingest_free(&v);
	json_decref(j);
	j = batch_of(1001);
	cr_expect_eq(validate_ingest(j, &v, &err), -1);
	cr_expect_str_eq(err.field, "events");
	json_decref(j);
}

#define SECRET24 "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

Test(validate, endpoint_bodies)
{
	struct {
		const char *body;
		bool create;
		bool allow_http;
		int rc;
		const char *field;
	} cases[] = {
		{"{\"url\":\"https://h/x\"}", true, false, 0, NULL},
		{"{\"url\":\"http://h/x\"}", true, false, -1, "url"},
		{"{\"url\":\"http://h/x\"}", true, true, 0, NULL},
		{"{}", true, false, -1, "url"},
		{"{}", false, false, 0, NULL},
		{"{\"url\":5}", true, false, -1, "url"},
		{"{\"url\":\"https://h\",\"description\":\"hi\",\"events\":[\"*\","
		 "\"delivery.dead_lettered\",\"a.b\"],\"secret\":\"" SECRET24
		 "\",\"enabled\":false}",
		 true, false, 0, NULL},
		{"{\"url\":\"https://h\",\"description\":3}", true, false, -1, "description"},
		{"{\"url\":\"https://h\",\"events\":[]}", true, false, -1, "events"},
		{"{\"url\":\"https://h\",\"events\":\"*\"}", true, false, -1, "events"},
		{"{\"url\":\"https://h\",\"events\":[\"a\",\"bad type\"]}", true, false, -1,
		 "events[1]"},
		{"{\"url\":\"https://h\",\"events\":[\"a\",3]}", true, false, -1, "events[1]"},
		{"{\"url\":\"https://h\",\"events\":[\"endpoint.x\"]}", true, false, -1,
		 "events[0]"},
		{"{\"url\":\"https://h\",\"secret\":\"nope\"}", true, false, -1, "secret"},
		{"{\"url\":\"https://h\",\"secret\":\"whsec_c2hvcnQ=\"}", true, false, -1,
		 "secret"},
		{"{\"url\":\"https://h\",\"secret\":7}", true, false, -1, "secret"},
		{"{\"url\":\"https://h\",\"enabled\":\"yes\"}", true, false, -1, "enabled"},
		{"{\"url\":\"https://h\",\"filters\":{}}", true, false, 0, NULL},
		{"{\"url\":\"https://h\",\"filters\":[]}", true, false, -1, "filters"},
		{"{\"enabled\":true}", false, false, 0, NULL},
		{"{\"id\":\"ep_x\"}", false, false, -1, "id"},
		{"[1]", false, false, -1, ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *j = parse(cases[i].body);
		struct validate_endpoint v;
		struct validate_error err = {0};
		int rc = validate_endpoint(j, cases[i].create, cases[i].allow_http, &v, &err);
		cr_expect_eq(rc, cases[i].rc, "body %s: got %d (%s %s)", cases[i].body, rc,
			     err.field, err.message);
		if (rc != 0)
			cr_expect_str_eq(err.field, cases[i].field, "body %s", cases[i].body);
		json_decref(j);
	}
}

Test(validate, endpoint_delivery_control_fields)
{
	struct {
		const char *body;
		int rc;
		const char *field;
	} cases[] = {
		/* filters: the seed's example; errors name the key. */
		{"{\"filters\":{\"events\":[\"media.moderated\"],\"status\":[\"rejected\","
		 "\"flagged\"],\"confidence\":{\">=\":0.8}}}", 0, NULL},
		{"{\"filters\":null}", 0, NULL},
		{"{\"filters\":{\"confidence\":{\"~=\":1}}}", -1, "filters.confidence.~="},
		{"{\"filters\":{\"a..b\":1}}", -1, "filters.a..b"},
		{"{\"filters\":\"status=x\"}", -1, "filters"},
		{"{\"filters\":{\"events\":\"a\"}}", -1, "filters.events"},
		{"{\"filters\":{\"events\":[\"bad type\"]}}", -1, "filters.events[0]"},
		/* One list under two spellings. */
		{"{\"events\":[\"a\",\"b\"],\"filters\":{\"events\":[\"b\",\"a\"]}}", 0, NULL},
		{"{\"events\":[\"a\",\"b\"],\"filters\":{\"events\":[\"a\"]}}", -1,
		 "filters.events"},
		{"{\"events\":[\"*\"],\"filters\":{\"events\":[\"a\"]}}", -1, "filters.events"},
		/* headers */
		{"{\"headers\":{\"X-Tenant\":\"acme\"}}", 0, NULL},
		{"{\"headers\":null}", 0, NULL},
		{"{\"headers\":{\"Webhook-Id\":\"x\"}}", -1, "headers.Webhook-Id"},
		{"{\"headers\":{\"X-A\":\"a\\r\\nB: c\"}}", -1, "headers.X-A"},
		{"{\"headers\":[\"X-A: 1\"]}", -1, "headers"},
		/* the seed's name for headers: same rules, named as given, not both */
		{"{\"custom_headers\":{\"X-Tenant\":\"acme\"}}", 0, NULL},
		{"{\"custom_headers\":null}", 0, NULL},
		{"{\"custom_headers\":{\"Host\":\"x\"}}", -1, "custom_headers.Host"},
		{"{\"custom_headers\":7}", -1, "custom_headers"},
		{"{\"headers\":{},\"custom_headers\":{}}", -1, "custom_headers"},
		/* rate_limit, max_in_flight */
		{"{\"rate_limit\":20}", 0, NULL},
		{"{\"rate_limit\":0.5}", 0, NULL},
		{"{\"rate_limit\":0}", 0, NULL},
		{"{\"rate_limit\":null}", 0, NULL},
		{"{\"rate_limit\":10000}", 0, NULL},
		{"{\"rate_limit\":10000.5}", -1, "rate_limit"},
		{"{\"rate_limit\":-1}", -1, "rate_limit"},
		{"{\"rate_limit\":\"20\"}", -1, "rate_limit"},
		{"{\"rate_limit\":true}", -1, "rate_limit"},
		{"{\"max_in_flight\":1}", 0, NULL},
		{"{\"max_in_flight\":1000}", 0, NULL},
		{"{\"max_in_flight\":0}", -1, "max_in_flight"},
		{"{\"max_in_flight\":1001}", -1, "max_in_flight"},
		{"{\"max_in_flight\":2.5}", -1, "max_in_flight"},
		{"{\"max_in_flight\":null}", -1, "max_in_flight"},
		/* batch */
		{"{\"batch\":null}", 0, NULL},
		{"{\"batch\":{\"max_events\":1,\"max_wait_ms\":0}}", 0, NULL},
		{"{\"batch\":{\"max_events\":1000,\"max_wait_ms\":60000}}", 0, NULL},
		{"{\"batch\":{\"max_wait_ms\":10}}", -1, "batch.max_events"},
		{"{\"batch\":{\"max_events\":0}}", -1, "batch.max_events"},
		{"{\"batch\":{\"max_events\":10,\"max_wait_ms\":60001}}", -1, "batch.max_wait_ms"},
		{"{\"batch\":{\"max_events\":10,\"extra\":1}}", -1, "batch.extra"},
		{"{\"batch\":50}", -1, "batch"},
		/* read-only */
		{"{\"circuit\":\"closed\"}", -1, "circuit"},
		{"{\"next_probe_at\":null}", -1, "next_probe_at"},
		{"{\"paused_until\":null}", -1, "paused_until"},
		{"{\"disabled_reason\":\"x\"}", -1, "disabled_reason"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *j = parse(cases[i].body);
		struct validate_endpoint v;
		struct validate_error err = {0};
		int rc = validate_endpoint(j, false, false, &v, &err);
		cr_expect_eq(rc, cases[i].rc, "body %s: got %d (%s %s)", cases[i].body, rc,
			     err.field, err.message);
		if (rc != 0)
			cr_expect_str_eq(err.field, cases[i].field, "body %s", cases[i].body);
		json_decref(j);
	}
}

Test(validate, endpoint_control_fields_out)
{
	json_t *j = parse("{\"filters\":{\"events\":[\"a\"],\"k\":1},\"rate_limit\":0.5,"
			  "\"max_in_flight\":3,\"batch\":{\"max_events\":50},\"headers\":null}");
	struct validate_endpoint v;
	struct validate_error err;
	cr_assert_eq(validate_endpoint(j, false, false, &v, &err), 0, "%s", err.message);
	cr_expect_eq(v.fields, VALIDATE_EP_FILTERS | VALIDATE_EP_EVENTS | VALIDATE_EP_RATE_LIMIT |
				       VALIDATE_EP_MAX_IN_FLIGHT | VALIDATE_EP_BATCH |
				       VALIDATE_EP_HEADERS);
	/* filters.events given alone is the endpoint's events too. */
	cr_expect_eq(v.events, json_object_get(v.filters, "events"));
	cr_expect_eq(v.filter_events, v.events);
	cr_expect_float_eq(v.rate_limit, 0.5, 1e-12);
	cr_expect_eq(v.max_in_flight, 3);
	cr_expect_eq(v.batch_max_events, 50);
	cr_expect_eq(v.batch_max_wait_ms, 1000, "the default wait");
	cr_expect_null(v.headers);
	json_decref(j);

	j = parse("{\"filters\":null,\"batch\":null}");
	cr_assert_eq(validate_endpoint(j, false, false, &v, &err), 0);
	cr_expect_eq(v.fields, VALIDATE_EP_FILTERS | VALIDATE_EP_BATCH);
	cr_expect_null(v.filters);
	cr_expect_eq(v.batch_max_events, 0);
	json_decref(j);
}

Test(validate, events_same_as_sets)
{
	json_t *a = parse("[\"x\",\"y\"]"), *b = parse("[\"y\",\"x\",\"x\"]"),
	       *c = parse("[\"x\"]");
	cr_expect(validate_events_same(a, b));
	cr_expect_not(validate_events_same(a, c));
	cr_expect_not(validate_events_same(c, a));
	json_decref(a);
	json_decref(b);
	json_decref(c);
}

Test(validate, tool_bodies)
{
	struct validate_error err;
	json_t *data;
	const char *ep;
	cr_expect_eq(validate_test_body(NULL, &data, &err), 0);
	cr_expect_null(data);
	json_t *j = parse("{\"data\":{\"a\":1}}");
	cr_expect_eq(validate_test_body(j, &data, &err), 0);
	cr_expect_eq(data, json_object_get(j, "data"));
	json_decref(j);
	j = parse("{\"data\":[1]}");
	cr_expect_eq(validate_test_body(j, &data, &err), -1);
	cr_expect_str_eq(err.field, "data");
	json_decref(j);
	j = parse("{\"other\":1}");
	cr_expect_eq(validate_test_body(j, &data, &err), -1);
	cr_expect_str_eq(err.field, "other");
	json_decref(j);

	cr_expect_eq(validate_event_replay(NULL, &ep, &err), 0);
	cr_expect_null(ep);
	j = parse("{\"endpoint_id\":\"ep_1\"}");
	cr_expect_eq(validate_event_replay(j, &ep, &err), 0);
	cr_expect_str_eq(ep, "ep_1");
	json_decref(j);
	j = parse("{\"endpoint_id\":5}");
	cr_expect_eq(validate_event_replay(j, &ep, &err), -1);
	cr_expect_str_eq(err.field, "endpoint_id");
	json_decref(j);
}

Test(validate, replay_windows)
{
	/* now = 2026-11-27T13:02:31.123Z */
	const int64_t now = INT64_C(1795784551123);
	struct {
		const char *body;
		int rc;
		const char *field;
		int64_t since, until;
	} cases[] = {
		{"{\"since\":\"2026-11-27T13:00:00Z\"}", 0, NULL, INT64_C(1795784400000), now},
		{"{\"since\":\"2026-11-27T13:00:00.000Z\",\"until\":\"2026-11-27T13:01:00Z\"}", 0,
		 NULL, INT64_C(1795784400000), INT64_C(1795784460000)},
		{"{}", -1, "since", 0, 0},
		{"{\"since\":\"yesterday\"}", -1, "since", 0, 0},
		{"{\"since\":5}", -1, "since", 0, 0},
		{"{\"since\":\"2026-11-27T13:00:00Z\",\"until\":\"tomorrow\"}", -1, "until", 0, 0},
		{"{\"since\":\"2026-11-27T13:00:00Z\",\"until\":\"2026-11-27T13:00:00Z\"}", -1,
		 "until", 0, 0},
		{"{\"since\":\"2026-11-27T14:00:00Z\"}", -1, "since", 0, 0},
		{"{\"since\":\"2026-11-27T13:00:00Z\",\"x\":1}", -1, "x", 0, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *j = parse(cases[i].body);
		struct validate_error err = {0};
		int64_t since = 0, until = 0;
		int rc = validate_replay_window(j, now, &since, &until, &err);
		cr_expect_eq(rc, cases[i].rc, "body %s: got %d (%s)", cases[i].body, rc,
			     err.message);
		if (rc != 0) {
			cr_expect_str_eq(err.field, cases[i].field, "body %s", cases[i].body);
		} else {
			cr_expect_eq(since, cases[i].since, "body %s", cases[i].body);
			cr_expect_eq(until, cases[i].until, "body %s", cases[i].body);
		}
		json_decref(j);
	}
}

Test(validate, endpoint_fields_out)
{
	json_t *j = parse("{\"url\":\"https://h/x\",\"events\":[\"a\"],\"enabled\":false}");
	struct validate_endpoint v;
	struct validate_error err;
	cr_assert_eq(validate_endpoint(j, true, false, &v, &err), 0);
	cr_expect_eq(v.fields, VALIDATE_EP_URL | VALIDATE_EP_EVENTS | VALIDATE_EP_ENABLED);
	cr_expect_str_eq(v.url, "https://h/x");
	cr_expect_eq(json_array_size(v.events), 1);
	cr_expect_not(v.enabled);
	cr_expect_null(v.description);
	json_decref(j);
}

Test(validate, endpoint_limits)
{
	struct validate_endpoint v;
	struct validate_error err;
	/* description: 1024 characters, counted as code points (é is 2 bytes). */
	json_t *j = json_pack("{s:s, s:s}", "url", "https://h", "description", rep('d', 1024));
	cr_expect_eq(validate_endpoint(j, true, false, &v, &err), 0);
	json_decref(j);
	j = json_pack("{s:s, s:s}", "url", "https://h", "description", rep('d', 1025));
	cr_expect_eq(validate_endpoint(j, true, false, &v, &err), -1);
	cr_expect_str_eq(err.field, "description");
	json_decref(j);
	char desc[2100] = "";
	for (int i = 0; i < 1024; i++)
		strcat(desc, "\xc3\xa9");
	j = json_pack("{s:s, s:s}", "url", "https://h", "description", desc);
	cr_expect_eq(validate_endpoint(j, true, false, &v, &err), 0);
	json_decref(j);
	/* events: 1..256 entries. */
	json_t *arr = json_array();
	for (int i = 0; i < 256; i++)
		json_array_append_new(arr, json_string("t"));
	j = json_pack("{s:s, s:O}", "url", "https://h", "events", arr);
	cr_expect_eq(validate_endpoint(j, true, false, &v, &err), 0);
	json_decref(j);
	json_array_append_new(arr, json_string("t"));
	j = json_pack("{s:s, s:O}", "url", "https://h", "events", arr);
	cr_expect_eq(validate_endpoint(j, true, false, &v, &err), -1);
	cr_expect_str_eq(err.field, "events");
	json_decref(j);
	json_decref(arr);
}

Test(validate, dlq_retry_body)
{
	struct {
		const char *body;
		int rc;
		const char *field;
	} cases[] = {
		{"{\"endpoint_id\":\"ep_1\"}", 0, NULL},
		{"{}", -1, "endpoint_id"},
		{"{\"endpoint_id\":1}", -1, "endpoint_id"},
		{"{\"endpoint_id\":\"\"}", -1, "endpoint_id"},
		{"{\"endpoint_id\":\"ep_1\",\"all\":true}", -1, "all"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *j = parse(cases[i].body);
		const char *id = NULL;
		struct validate_error err = {0};
		int rc = validate_dlq_retry(j, &id, &err);
		cr_expect_eq(rc, cases[i].rc, "body %s", cases[i].body);
		if (rc == 0)
			cr_expect_str_eq(id, "ep_1");
		else
			cr_expect_str_eq(err.field, cases[i].field, "body %s", cases[i].body);
		json_decref(j);
	}
}

Test(validate, idempotency_keys)
{
	struct validate_error err;
	cr_expect_eq(validate_idempotency_key("k", &err), 0);
	cr_expect_eq(validate_idempotency_key("order 42/retry~!", &err), 0);
	cr_expect_eq(validate_idempotency_key(rep('k', 255), &err), 0);
	cr_expect_eq(validate_idempotency_key(rep('k', 256), &err), -1);
	cr_expect_eq(validate_idempotency_key("", &err), -1);
	cr_expect_eq(validate_idempotency_key(NULL, &err), -1);
	cr_expect_eq(validate_idempotency_key("tab\there", &err), -1);
	cr_expect_eq(validate_idempotency_key("caf\xc3\xa9", &err), -1);
	cr_expect_eq(validate_idempotency_key("del\x7f", &err), -1);
	cr_expect_str_eq(err.field, "Idempotency-Key");
}

Test(validate, limits)
{
	struct {
		const char *s;
		int rc;
		int v;
	} cases[] = {
		{NULL, 0, 100}, {"1", 0, 1},      {"1000", 0, 1000}, {"0042", 0, 42},
		{"0", -1, 0},   {"1001", -1, 0},  {"", -1, 0},       {"-1", -1, 0},
		{"+5", -1, 0},  {"5x", -1, 0},    {"99999", -1, 0},  {"1e2", -1, 0},
		{" 5", -1, 0},  {"10000", -1, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int v = -7;
		struct validate_error err = {0};
		int rc = validate_limit(cases[i].s, &v, &err);
		cr_expect_eq(rc, cases[i].rc, "limit '%s'", cases[i].s ? cases[i].s : "(null)");
		if (rc == 0)
			cr_expect_eq(v, cases[i].v);
		else
			cr_expect_str_eq(err.field, "limit");
	}
}

Test(validate, cursors_and_query_ids)
{
	struct validate_error err;
	cr_expect_eq(validate_cursor(NULL, &err), 0);
	cr_expect_eq(validate_cursor("abc123", &err), 0);
	cr_expect_eq(validate_cursor(rep('c', 31), &err), 0);
	cr_expect_eq(validate_cursor(rep('c', 32), &err), -1);
	cr_expect_eq(validate_cursor("", &err), -1);
	cr_expect_eq(validate_cursor("a b", &err), -1);
	cr_expect_str_eq(err.field, "cursor");
	cr_expect_eq(validate_query_id(NULL, "event_id", &err), 0);
	cr_expect_eq(validate_query_id("evt_1", "event_id", &err), 0);
	cr_expect_eq(validate_query_id(rep('e', 64), "event_id", &err), 0);
	cr_expect_eq(validate_query_id(rep('e', 65), "event_id", &err), -1);
	cr_expect_str_eq(err.field, "event_id");
	cr_expect_eq(validate_query_id("", "endpoint_id", &err), -1);
	cr_expect_str_eq(err.field, "endpoint_id");
}

Test(validate, delivery_status_names)
{
	struct validate_error err;
	int st = 9;
	cr_expect_eq(validate_delivery_status(NULL, &st, &err), 0);
	cr_expect_eq(st, -1);
	cr_expect_eq(validate_delivery_status("pending", &st, &err), 0);
	cr_expect_eq(st, DELIVERY_PENDING);
	cr_expect_eq(validate_delivery_status("succeeded", &st, &err), 0);
	cr_expect_eq(st, DELIVERY_SUCCEEDED);
	cr_expect_eq(validate_delivery_status("dead", &st, &err), 0);
	cr_expect_eq(st, DELIVERY_DEAD);
	cr_expect_eq(validate_delivery_status("DEAD", &st, &err), -1);
	cr_expect_eq(validate_delivery_status("failed", &st, &err), -1);
	cr_expect_eq(validate_delivery_status("", &st, &err), -1);
	cr_expect_str_eq(err.field, "status");
}

Test(validate, content_types)
{
	cr_expect(validate_content_type_json("application/json"));
	cr_expect(validate_content_type_json("Application/JSON"));
	cr_expect(validate_content_type_json("application/json; charset=utf-8"));
	cr_expect(validate_content_type_json("application/json;charset=UTF-8"));
	cr_expect(validate_content_type_json(" application/json "));
	cr_expect_not(validate_content_type_json(NULL));
	cr_expect_not(validate_content_type_json(""));
	cr_expect_not(validate_content_type_json("text/plain"));
	cr_expect_not(validate_content_type_json("application/x-www-form-urlencoded"));
	cr_expect_not(validate_content_type_json("application/jsonp"));
	cr_expect_not(validate_content_type_json("application/json-patch+json"));
}

/* ---- the ingest fast path against the full path ---- */

/* What the full path makes of body: 0 and, per event, "id|type|data text"
 * lines in *out (malloc'd), or -1 if it refuses the body. */
static int full_path(const char *body, size_t len, char **out, bool *batch)
{
	json_error_t jerr;
	struct validate_ingest v;
	struct validate_error err;
	*out = NULL;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL || !json_is_object(j) || validate_ingest(j, &v, &err) != 0) {
		json_decref(j);
		return -1;
	}
	size_t cap = 64, n = 0;
	char *s = malloc(cap);
	cr_assert_not_null(s);
	s[0] = '\0';
	for (size_t i = 0; i < v.n; i++) {
		char *data = validate_json_text(v.events[i].data);
		cr_assert_not_null(data);
		size_t need = n + strlen(data) + 256;
		if (need > cap) {
			cap = need * 2;
			s = realloc(s, cap);
			cr_assert_not_null(s);
		}
		n += (size_t)sprintf(s + n, "%s|%s|%s\n", v.events[i].id ? v.events[i].id : "",
				     v.events[i].type, data);
		free(data);
	}
	*batch = v.batch;
	validate_ingest_free(&v);
	json_decref(j);
	*out = s;
	return 0;
}

/* The fast path's answer for body: 0 with the same lines, 1 (full path
 * needed) or -1. */
static int fast_path(const char *body, size_t len, char **out, bool *batch)
{
	struct validate_fast v;
	*out = NULL;
	/* The largest --max-json-depth: nesting is test_validate_depth.c's. */
	int rc = validate_ingest_fast(body, len, 256, &v);
	if (rc != 0) {
		cr_assert_eq(v.n, 0);
		cr_assert_null(v.events);
		return rc;
	}
	size_t total = 1;
	for (size_t i = 0; i < v.n; i++)
		total += strlen(v.events[i].data) + 256;
	char *s = malloc(total);
	cr_assert_not_null(s);
	size_t n = 0;
	s[0] = '\0';
	for (size_t i = 0; i < v.n; i++)
		n += (size_t)sprintf(s + n, "%s|%s|%s\n", v.events[i].id, v.events[i].type,
				     v.events[i].data);
	*batch = v.batch;
	validate_fast_free(&v);
	*out = s;
	return 0;
}

/* The fast path never disagrees with the full path: when it answers, the
 * full path accepts the body and gives the same events and data text.
 * Returns the fast path's rc. */
static int check_same(const char *body, size_t len)
{
	char *full = NULL, *fast = NULL;
	bool fb = false, qb = false;
	int frc = full_path(body, len, &full, &fb);
	int qrc = fast_path(body, len, &fast, &qb);
	cr_assert_neq(qrc, -1, "out of memory");
	if (qrc == 0) {
		cr_assert_eq(frc, 0, "fast path took a body the full path refuses: %.*s", (int)len,
			     body);
		cr_assert_str_eq(fast, full, "body %.*s\nfast %s\nfull %s", (int)len, body, fast,
				 full);
		cr_assert_eq(qb, fb);
	}
	free(full);
	free(fast);
	return qrc;
}

static int check_same_str(const char *body)
{
	return check_same(body, strlen(body));
}

Test(validate, ingest_fast_takes_the_common_bodies)
{
	const char *taken[] = {
		"{\"event\":\"a.b\",\"data\":{}}",
		" {\n \"id\" : \"ord-1\", \"event\" : \"order.created\",\n"
		" \"data\" : {\"a\" : 1} }\n",
		"{\"id\":null,\"event\":\"a.b\",\"data\":{\"n\":null,\"t\":true,\"f\":false}}",
		"{\"data\":{\"x\":[1,-2,0,-0,[],{}]},\"event\":\"a.b\"}",
		"{\"event\":\"a.b\",\"data\":{\"amount\":19.99,\"r\":0.1,\"e\":1e5,\"E\":-2.5E-3}}",
		"{\"event\":\"a.b\",\"data\":{\"big\":1.7976931348623157e308,\"tiny\":5e-300}}",
		"{\"event\":\"a.b\",\"data\":{\"s\":"
		"\"caf\\u00e9 \\ud83d\\ude00 \\/ \\\" \\\\ \\n\\t\\u001f\"}}",
		"{\"event\":\"a.b\",\"data\":{\"s\":\"caf\xc3\xa9 \xf0\x9f\x98\x80 \x7f\"}}",
		"{\"event\":\"a.b\",\"data\":{\"\\u0041\":1,\"A2\":2}}",
		"{\"events\":[{\"event\":\"a.b\",\"data\":{\"i\":1}},{\"id\":\"x\",\"event\":\"c\","
		"\"data\":{\"i\":2.50}}]}",
		"{ \"events\" : [ {\"event\":\"a.b\",\"data\":{}} ] }",
		"{\"event\":\"a.b\",\"data\":{\"n\":123456789012345678,\"m\":-123456789012345678}}",
	};
	for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++)
		cr_expect_eq(check_same_str(taken[i]), 0, "not taken: %s", taken[i]);

	/* Many reals, some printed otherwise than written (1e5, 2.50), past
	 * the number put right in place. */
	for (int count = 1; count <= 80; count += 13) {
		char body[4096];
		size_t n = (size_t)sprintf(body, "{\"event\":\"a.b\",\"data\":{\"r\":[");
		for (int i = 0; i < count; i++)
			n += (size_t)sprintf(body + n, "%s%s", i ? "," : "",
					     i % 3 == 0 ? "1e5" : i % 3 == 1 ? "2.50" : "0.1");
		strcpy(body + n, "]}}");
		cr_expect_eq(check_same_str(body), 0, "%d reals", count);
	}

	/* The data text is what the full path stores, byte for byte. */
	struct validate_fast v;
	const char *body =
		"{\"event\":\"a\",\"data\":{ \"k\" : [ 1.5e0 , \"\\u00e9\" ] , \"z\":-0}}";
	cr_assert_eq(validate_ingest_fast(body, strlen(body), 32, &v), 0);
	cr_expect_str_eq(v.events[0].data, "{\"k\":[1.5,\"\xc3\xa9\"],\"z\":0}");
	cr_expect_str_eq(v.events[0].type, "a");
	cr_expect_str_eq(v.events[0].id, "");
	cr_expect_not(v.batch);
	validate_fast_free(&v);
}

Test(validate, ingest_fast_leaves_the_rest_to_the_full_path)
{
	const char *left[] = {
		"", "[]", "{}", "null", "{\"event\":\"a.b\"}", "{\"event\":\"a.b\",\"data\":[]}",
		"{\"event\":\"a.b\",\"data\":{},\"x\":1}",
		"{\"event\":\"a.b\",\"data\":{},\"event\":\"a.b\"}",
		"{\"event\":\"a.b\",\"data\":{\"k\":1,\"k\":2}}",
		"{\"event\":\"a.b\",\"data\":{\"k\":1,\"\\u006b\":2}}",
		"{\"event\":\"delivery.x\",\"data\":{}}",
		"{\"event\":\"a b\",\"data\":{}}",
		"{\"id\":\"\",\"event\":\"a.b\",\"data\":{}}",
		"{\"id\":\"a.b\",\"event\":\"a.b\",\"data\":{}}",
		"{\"event\":\"a.b\",\"data\":{}} x",
		"{\"event\":\"a.b\",\"data\":{\"n\":01}}",
		"{\"event\":\"a.b\",\"data\":{\"n\":1.}}",
		"{\"event\":\"a.b\",\"data\":{\"n\":1e999}}",
		"{\"event\":\"a.b\",\"data\":{\"n\":12345678901234567890}}",
		"{\"event\":\"a.b\",\"data\":{\"s\":\"\\u0000\"}}",
		"{\"event\":\"a.b\",\"data\":{\"s\":\"\\ud800\"}}",
		"{\"event\":\"a.b\",\"data\":{\"s\":\"\\udc00\"}}",
		"{\"event\":\"a.b\",\"data\":{\"s\":\"\\x\"}}",
		"{\"event\":\"a.b\",\"data\":{\"s\":\"\xc0\xaf\"}}",
		"{\"event\":\"a.b\",\"data\":{\"s\":\"\xed\xa0\x80\"}}",
		"{\"event\":\"a.b\",\"data\":{\"s\":\"tab\there\"}}",
		"{\"event\":\"a.b\",\"data\":{\"t\":tru}}",
		"{\"event\":\"a.b\",\"data\":{\"a\":[1,]}}",
		"{\"event\":\"a.b\",\"data\":{\"a\":1,}}",
		"{\"events\":[]}",
		"{\"events\":[{\"event\":\"a.b\",\"data\":{}}],\"x\":1}",
		"{\"events\":[{\"event\":\"a.b\",\"data\":{}},7]}",
		"{\"ev\\u0065nt\":\"a.b\",\"data\":{}}",
	};
	for (size_t i = 0; i < sizeof left / sizeof left[0]; i++)
		cr_expect_eq(check_same_str(left[i]), 1, "taken: %s", left[i]);
	/* Deep nesting goes to the full path too (which takes it). */
	char deep[512] = "{\"event\":\"a\",\"data\":";
	for (int i = 0; i < 40; i++)
		strcat(deep, "{\"k\":");
	strcat(deep, "1");
	for (int i = 0; i < 41; i++)
		strcat(deep, "}");
	strcat(deep, "}");
	cr_expect_eq(check_same_str(deep), 1);
	/* A batch over the limit. */
	size_t cap = (VALIDATE_BATCH_MAX + 1) * 40 + 32, n = 0;
	char *big = malloc(cap);
	cr_assert_not_null(big);
	n += (size_t)sprintf(big, "{\"events\":[");
	for (int i = 0; i <= VALIDATE_BATCH_MAX; i++)
		n += (size_t)sprintf(big + n, "%s{\"event\":\"a\",\"data\":{}}", i ? "," : "");
	strcpy(big + n, "]}");
	cr_expect_eq(check_same_str(big), 1);
	free(big);
}

/* ---- random bodies ---- */

static unsigned long rng_state = 88172645463325252ul;

static unsigned rnd(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

struct gen {
	char *s;
	size_t n, cap;
};

static void put(struct gen *g, const char *t)
{
	size_t l = strlen(t);
	if (g->n + l + 1 > g->cap) {
		g->cap = (g->n + l + 1) * 2;
		g->s = realloc(g->s, g->cap);
		cr_assert_not_null(g->s);
	}
	memcpy(g->s + g->n, t, l + 1);
	g->n += l;
}

static void ws(struct gen *g)
{
	static const char *const w[] = {"", "", "", " ", "\n", "\t ", "\r\n  "};
	put(g, w[rnd(7)]);
}

static void gen_string(struct gen *g)
{
	static const char *const parts[] = {
		"a", "Z", "0", " ", "/", "~", "\x7f", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n",
		"\\r", "\\t", "\\u0041", "\\u00e9", "\\u00E9", "\\u001f", "\\u0008", "\\u0022",
		"\\u005c", "\\u002F", "\\u2028", "\\uffff", "\\ud83d\\ude00", "\xc3\xa9",
		"\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xef\xbf\xbf", "k",
	};
	put(g, "\"");
	unsigned n = rnd(6);
	for (unsigned i = 0; i < n; i++)
		put(g, parts[rnd(sizeof parts / sizeof parts[0])]);
	put(g, "\"");
}

static void gen_number(struct gen *g)
{
	static const char *const nums[] = {
		"0", "-0", "1", "-1", "42", "123456789012345678", "-999999999999999999",
		"9223372036854775807", "0.0", "-0.0", "1.5", "19.99", "0.1", "0.92", "1e5", "1E5",
		"1e+5", "2.5e-3", "-2.5E-03", "1e300", "1.7976931348623157e308", "5e-324",
		"4.9e-324", "1e-310", "123456789.123456789", "0.30000000000000004", "3.14159",
		"100", "1e22", "1e21", "1.0e0", "7e-7", "1e-5", "1e-4", "0.000123",
		"12345678901234567", "1234567890123456789012", "0.0001", "0.00001", "-0.0001",
		"12345678901234.5", "123456789012345.5", "99999999999999.9", "999999999999999.9",
		"0.1234567890123456", "0.123456789012345", "5.0", "10.50", "1.25", "-7.125",
	};
	put(g, nums[rnd(sizeof nums / sizeof nums[0])]);
}

static void gen_value(struct gen *g, int depth);

static void gen_object(struct gen *g, int depth)
{
	static const char *const keys[] = {"\"a\"", "\"b\"", "\"k\"", "\"\\u006b\"", "\"\"",
					   "\"caf\\u00e9\"", "\"caf\xc3\xa9\""};
	put(g, "{");
	ws(g);
	unsigned n = rnd(5);
	for (unsigned i = 0; i < n; i++) {
		if (i) {
			put(g, ",");
			ws(g);
		}
		if (rnd(3) == 0)
			put(g, keys[rnd(sizeof keys / sizeof keys[0])]);
		else
			gen_string(g);
		ws(g);
		put(g, ":");
		ws(g);
		gen_value(g, depth + 1);
		ws(g);
	}
	put(g, "}");
}

static void gen_value(struct gen *g, int depth)
{
	unsigned k = rnd(depth > 4 ? 6 : 8);
	switch (k) {
	case 0: put(g, "true"); break;
	case 1: put(g, "false"); break;
	case 2: put(g, "null"); break;
	case 3: gen_string(g); break;
	case 4: case 5: gen_number(g); break;
	case 6: gen_object(g, depth); break;
	default: {
		put(g, "[");
		ws(g);
		unsigned n = rnd(4);
		for (unsigned i = 0; i < n; i++) {
			if (i) {
				put(g, ",");
				ws(g);
			}
			gen_value(g, depth + 1);
			ws(g);
		}
		put(g, "]");
	}
	}
}

static void gen_event(struct gen *g)
{
	static const char *const ids[] = {"\"ord-1\"", "null", "\"a_b-C9\"", "\"\"",
					  "\"a b\"", "7"};
	static const char *const types[] = {"\"a.b\"", "\"order.created\"", "\"x:y-z_1\"",
					    "\"delivery.x\"", "\"\"", "\"a\\u002eb\""};
	put(g, "{");
	ws(g);
	bool id = rnd(3) == 0;
	unsigned order = rnd(2);
	if (id) {
		put(g, "\"id\":");
		put(g, ids[rnd(sizeof ids / sizeof ids[0])]);
		put(g, ",");
		ws(g);
	}
	if (order == 0) {
		put(g, "\"event\":");
		ws(g);
		put(g, types[rnd(sizeof types / sizeof types[0])]);
		put(g, ",\"data\":");
		gen_object(g, 0);
	} else {
		put(g, "\"data\" :");
		gen_object(g, 0);
		put(g, ",");
		ws(g);
		put(g, "\"event\":");
		put(g, types[rnd(sizeof types / sizeof types[0])]);
	}
	ws(g);
	put(g, "}");
}

Test(validate, ingest_fast_agrees_with_the_full_path_on_random_bodies)
{
	struct gen g = {0};
	int taken = 0, total = 0;
	for (int iter = 0; iter < 12000; iter++) {
		g.n = 0;
		put(&g, "");
		ws(&g);
		if (rnd(4) == 0) {
			put(&g, "{\"events\":[");
			unsigned n = 1 + rnd(3);
			for (unsigned i = 0; i < n; i++) {
				if (i)
					put(&g, ",");
				gen_event(&g);
			}
			put(&g, "]}");
		} else {
			gen_event(&g);
		}
		ws(&g);
		total++;
		taken += check_same(g.s, g.n) == 0;
		/* And broken copies: a byte changed, or the body cut short. */
		char *m = malloc(g.n + 1);
		cr_assert_not_null(m);
		memcpy(m, g.s, g.n + 1);
		size_t at = rnd((unsigned)g.n);
		static const char junk[] = "{}[]\",:\\ 0-e.\x80\xc3 tnu";
		m[at] = junk[rnd(sizeof junk - 1)];
		check_same(m, g.n);
		check_same(g.s, rnd((unsigned)g.n));
		free(m);
	}
	free(g.s);
	/* The generator makes mostly valid bodies: the fast path must take
	 * many of them, or it is not a fast path. */
	cr_expect_gt(taken, total / 4, "taken %d of %d", taken, total);
}

/* The list filters of issue 11: since/until windows and exact types. */
Test(validate, query_window_and_type)
{
	static const struct {
		const char *since, *until;
		const char *field; /* NULL: accepted */
		long long want_since, want_until;
	} table[] = {
		{NULL, NULL, NULL, 0, 0},
		{"2026-11-27T13:02:31Z", NULL, NULL, 1795784551000LL, 0},
		{NULL, "2026-11-27T13:02:31.5Z", NULL, 0, 1795784551500LL},
		{"2026-11-27T14:02:31+01:00", "2026-11-27T13:02:31.001Z", NULL, 1795784551000LL,
		 1795784551001LL},
		{"2026-11-27T13:02:31Z", "2026-11-27T13:02:31Z", "until", 0, 0},
		{"2026-11-28T00:00:00Z", "2026-11-27T00:00:00Z", "until", 0, 0},
		{"yesterday", NULL, "since", 0, 0},
		{"", NULL, "since", 0, 0},
		{NULL, "1795784551", "until", 0, 0},
		{NULL, "2026-11-27T13:02:31Z" "                                              ",
		 "until", 0, 0},
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		struct validate_error err = {0};
		bool hs = true, hu = true;
		int64_t s = 0, u = 0;
		int rc = validate_query_window(table[i].since, table[i].until, &hs, &s, &hu, &u,
					       &err);
		if (table[i].field != NULL) {
			cr_assert_eq(rc, -1, "row %zu", i);
			cr_assert_str_eq(err.field, table[i].field, "row %zu", i);
			continue;
		}
		cr_assert_eq(rc, 0, "row %zu: %s", i, err.message);
		cr_assert_eq(hs, table[i].since != NULL, "row %zu", i);
		cr_assert_eq(hu, table[i].until != NULL, "row %zu", i);
		if (hs)
			cr_assert_eq(s, table[i].want_since, "row %zu: %lld", i, (long long)s);
		if (hu)
			cr_assert_eq(u, table[i].want_until, "row %zu: %lld", i, (long long)u);
	}

	struct validate_error err = {0};
	cr_assert_eq(validate_query_type(NULL, "type", &err), 0);
	cr_assert_eq(validate_query_type("order.paid", "type", &err), 0);
	cr_assert_eq(validate_query_type("delivery.dead_lettered", "event_type", &err), 0);
	static const char *const bad[] = {"*", "", "a b", "delivery.other", "x!"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cr_assert_eq(validate_query_type(bad[i], "event_type", &err), -1, "%s", bad[i]);
		cr_assert_str_eq(err.field, "event_type");
	}
}
