"""docs/openapi.yaml is tested (issue 15, part 5): the spec is consistent (the checks below; its
validation against the official OpenAPI 3.0 schema is tests/openapi, the meson test 'openapi'),
and the response check every e2e test runs (openapi_check.py, from harness.Serve.request) catches
a response that breaks it."""

import copy
import json
import re
import unittest

import openapi_check
from harness import HookdTestCase

# The keywords of OpenAPI 3.0's Schema Object; anything else in a schema is a typo (a YAML flow
# mapping split by a comma, say) that generated clients would trip over.
SCHEMA_KEYWORDS = {
    "title", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxProperties",
    "minProperties", "required", "enum", "type", "allOf", "oneOf", "anyOf", "not", "items",
    "properties", "additionalProperties", "description", "format", "default", "nullable",
    "discriminator", "readOnly", "writeOnly", "xml", "externalDocs", "example", "deprecated",
    "$ref"}


def schemas_in(doc):
    """Every schema object of the spec, with where it is."""
    out = []

    def schema(node, where):
        if not isinstance(node, dict):
            return
        out.append((where, node))
        for k in ("allOf", "oneOf", "anyOf"):
            for i, s in enumerate(node.get(k, [])):
                schema(s, "%s/%s/%d" % (where, k, i))
        for k in ("items", "not"):
            if isinstance(node.get(k), dict):
                schema(node[k], "%s/%s" % (where, k))
        if isinstance(node.get("additionalProperties"), dict):
            schema(node["additionalProperties"], where + "/additionalProperties")
        for name, s in (node.get("properties") or {}).items():
            schema(s, "%s/properties/%s" % (where, name))

    def walk(node, where):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "schema":
                    schema(v, where + "/schema")
                else:
                    walk(v, "%s/%s" % (where, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, "%s/%d" % (where, i))
    walk(doc.get("paths", {}), "#/paths")
    for name, s in doc.get("components", {}).get("schemas", {}).items():
        schema(s, "#/components/schemas/" + name)
    for kind in ("parameters", "responses"):
        walk(doc.get("components", {}).get(kind, {}), "#/components/" + kind)
    return out


class SpecTest(unittest.TestCase):

    def setUp(self):
        self.spec = openapi_check.spec()

    def test_spec_is_consistent(self):
        doc = self.spec.doc
        self.assertTrue(doc["openapi"].startswith("3.0."), doc["openapi"])
        problems = []
        for where, s in schemas_in(doc):
            unknown = set(s) - SCHEMA_KEYWORDS
            if unknown:
                problems.append("%s: not schema keywords: %s" % (where, sorted(unknown)))
            if "$ref" in s:
                try:
                    openapi_check.resolve_ref(doc, s["$ref"])
                except AssertionError as e:
                    problems.append("%s: %s" % (where, e))
                if len(s) > 1:
                    problems.append("%s: keywords beside $ref are ignored: %s" % (where, sorted(s)))
            if s.get("nullable") is True and "type" not in s:
                problems.append("%s: nullable without type has no effect (OpenAPI 3.0.3)" % where)
            if s.get("nullable") is True and "enum" in s and None not in s["enum"]:
                problems.append("%s: a nullable enum must list null" % where)
            try:
                self.spec.validator_class.check_schema(openapi_check.to_json_schema(doc, s))
            except Exception as e:  # jsonschema's SchemaError, or a bad $ref
                problems.append("%s: %s" % (where, str(e).splitlines()[0]))
        for template, item in doc["paths"].items():
            params = set(re.findall(r"\{([^}]+)\}", template))
            for method in openapi_check.METHODS:
                op = item.get(method)
                if op is None:
                    continue
                if not op.get("responses"):
                    problems.append("%s %s: no responses" % (method, template))
                declared = {p.get("name") for p in item.get("parameters", []) + op.get(
                    "parameters", []) if p.get("in") == "path"}
                if declared != params:
                    problems.append("%s %s: path parameters %s declared as %s" % (
                        method, template, sorted(params), sorted(declared)))
                for status, resp in op.get("responses", {}).items():
                    if "$ref" in resp:
                        try:
                            openapi_check.resolve_ref(doc, resp["$ref"])
                        except AssertionError as e:
                            problems.append("%s %s %s: %s" % (method, template, status, e))
        self.assertEqual(problems, [], "\n".join(problems))

    def test_nullable_is_read_strictly(self):
        doc = self.spec.doc
        js = openapi_check.to_json_schema(doc, {"type": "string", "nullable": True})
        self.assertEqual(js, {"type": ["string", "null"]})
        # Beside allOf (no type of its own) nullable adds nothing: the issue's broken times.
        js = openapi_check.to_json_schema(doc, {"allOf": [{"$ref": "#/components/schemas/Time"}],
                                                "nullable": True})
        v = self.spec.validator_class(js)
        self.assertFalse(v.is_valid(None))
        self.assertTrue(v.is_valid("2026-11-27T13:02:31.123Z"))


class ResponseCheckTest(HookdTestCase):

    def problems(self, method, path, status, body, headers=None):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        h = {"content-type": "application/json"}
        h.update(headers or {})
        return openapi_check.problems(method, path, status, h, raw)

    def test_wrong_responses_are_caught(self):
        serve = self.start_serve()
        mock = self.start_mock()
        ep = self.create_endpoint(serve, mock.url + "/ok", events=["check.me"])
        path = "/v1/endpoints/" + ep["id"]
        got = self.get_endpoint(serve, ep["id"])
        self.assertEqual(self.problems("GET", path, 200, got), [])

        bad = dict(got, paused_until=5)
        found = self.problems("GET", path, 200, bad)
        self.assertTrue(found and "at /paused_until" in found[0], found)
        bad = {k: v for k, v in got.items() if k != "circuit"}
        found = self.problems("GET", path, 200, bad)
        self.assertTrue(any("'circuit' is a required property" in p for p in found), found)

        dlv = self.ingest(serve, "check.me")["deliveries"][0]["id"]
        d = self.wait_delivery(serve, dlv, "succeeded")
        self.assertIsNone(d["last_error"])  # null is valid (the issue's missing enum null)
        bad = dict(d, last_error="bogus")
        found = self.problems("GET", "/v1/deliveries/" + dlv, 200, bad)
        self.assertTrue(found and "at /last_error" in found[0], found)
        bad = copy.deepcopy(d)
        bad["attempts"][0]["timings"]["ttfb_ms"] = "slow"
        found = self.problems("GET", "/v1/deliveries/" + dlv, 200, bad)
        self.assertTrue(found and "at /attempts/0/timings/ttfb_ms" in found[0], found)

        # An undocumented status, a wrong content type, a 405 whose Allow disagrees.
        found = self.problems("GET", "/v1/endpoints", 418, {"error": {}})
        self.assertTrue(found and "status 418 is not documented" in found[0], found)
        found = self.problems("GET", path, 200, b"<html>", {"content-type": "text/html"})
        self.assertTrue(found and "the body is text/html" in found[0], found)
        err = {"error": {"code": "method_not_allowed", "message": "x", "field": None}}
        self.assertEqual(self.problems("PUT", path, 405, err,
                                       {"allow": "GET, PATCH, DELETE"}), [])
        found = self.problems("PUT", path, 405, err, {"allow": "GET, PATCH"})
        self.assertTrue(found and "Allow is" in found[0], found)
        # An error code the spec does not list.
        found = self.problems("GET", path, 404, {"error": {"code": "gone", "message": "x",
                                                           "field": None}})
        self.assertTrue(found and "at /error/code" in found[0], found)

    def test_the_harness_fails_a_test_on_a_mismatch(self):
        # Every request of the harness goes through the check: with a spec that wants a field
        # hookd does not send, an ordinary request fails with the path, the pointer and why.
        serve = self.start_serve()
        ep = self.create_endpoint(serve, "https://hooks.example.com/x")
        real = openapi_check.spec()
        strict = openapi_check.Spec()
        strict.doc = copy.deepcopy(real.doc)
        schema = strict.doc["components"]["schemas"]["Endpoint"]
        schema["required"] = schema["required"] + ["colour"]
        openapi_check._spec = strict
        try:
            with self.assertRaises(AssertionError) as cm:
                serve.api("GET", "/v1/endpoints/" + ep["id"])
        finally:
            openapi_check._spec = real
        msg = str(cm.exception)
        self.assertIn("GET /v1/endpoints/%s (200) does not match docs/openapi.yaml" % ep["id"],
                      msg)
        self.assertIn("'colour' is a required property", msg)
        self.get_endpoint(serve, ep["id"])  # and with the real spec it passes


if __name__ == "__main__":
    unittest.main()
