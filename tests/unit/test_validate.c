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
		{"endpoint.disabled", true, -1},
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
		{"{\"url\":\"https://h\",\"filters\":{}}", true, false, -1, "filters"},
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
