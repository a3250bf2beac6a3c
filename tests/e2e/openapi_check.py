"""Checks API responses against docs/openapi.yaml (issue 15, part 5).

harness.Serve.request calls check_response for every response the e2e tests receive from
`hookd serve`; a response the spec does not describe fails the test with the method, the path,
the JSON pointer of the bad value and why.

How a response is matched: the request path (query dropped) against the spec's path templates
(`{id}` is one segment), then the method, then the status. A path no template matches is not
checked (tests of unknown routes). A documented path with a status the spec does not list for
the method fails, except the statuses the spec's description allows on every route (400, 403,
414, 431). A method the path does not have must be answered 405 (or 401, 403, 414, 431, which come
first) with the Error body, and the 405's Allow header must list the spec's methods.
A JSON body is validated against the status's `application/json` schema; a body in another
content type only needs the spec to list that content type for the status.

OpenAPI 3.0 schemas are translated to JSON Schema draft 4, strictly: `nullable: true` adds
"null" to `type` only where the same schema has a `type` (OpenAPI 3.0.3, "nullable"), so a
nullable `allOf`/`$ref` or an `enum` without null refuses null, as generated clients do; `$ref`s
are inlined; the OpenAPI-only keywords (readOnly, example, ...) are dropped. Validation uses
python3-jsonschema (Debian); the spec is read with python3-yaml.

Set HOOKD_E2E_OPENAPI=0 to turn the checks off (e.g. to bisect a failure); they are on by
default and the e2e suite runs with them on.
"""

import json
import os
import re
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC_PATH = os.path.join(os.path.dirname(os.path.dirname(HERE)), "docs", "openapi.yaml")

# Statuses any route may answer besides those it lists (the spec's info.description): 400 for a
# query parameter the route does not take, 403 --api-allow, 414 --max-url, 431 the header limits.
ANY_ROUTE_STATUSES = ("400", "403", "414", "431")
# Keywords of OpenAPI's schema object that JSON Schema does not have.
OPENAPI_ONLY = ("nullable", "readOnly", "writeOnly", "example", "examples", "discriminator",
                "xml", "externalDocs", "deprecated")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def enabled():
    return os.environ.get("HOOKD_E2E_OPENAPI", "1") not in ("0", "off", "false", "no")


def _load_yaml(path):
    try:
        import yaml
    except ImportError as e:
        raise AssertionError("the e2e tests check responses against docs/openapi.yaml and need "
                             "python3-yaml (scripts/install-deps --test): %s" % e)
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _validator_class():
    try:
        import jsonschema
    except ImportError as e:
        raise AssertionError("the e2e tests check responses against docs/openapi.yaml and need "
                             "python3-jsonschema (scripts/install-deps --test): %s" % e)
    return jsonschema.Draft4Validator


def resolve_ref(spec, ref):
    """The object a local "#/a/b" $ref names; AssertionError if it names nothing."""
    if not ref.startswith("#/"):
        raise AssertionError("only local $refs are supported: %r" % ref)
    node = spec
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise AssertionError("$ref %r names nothing in %s" % (ref, SPEC_PATH))
        node = node[part]
    return node


def to_json_schema(spec, schema, seen=()):
    """An OpenAPI 3.0 schema object as JSON Schema draft 4 (see the module's docstring)."""
    if isinstance(schema, list):
        return [to_json_schema(spec, s, seen) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        ref = schema["$ref"]
        if ref in seen:
            raise AssertionError("recursive $ref %r is not supported" % ref)
        return to_json_schema(spec, resolve_ref(spec, ref), seen + (ref,))
    out = {}
    for k, v in schema.items():
        if k in OPENAPI_ONLY:
            continue
        if k in ("properties", "patternProperties", "definitions"):
            out[k] = {name: to_json_schema(spec, s, seen) for name, s in v.items()}
        elif k in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[k] = to_json_schema(spec, v, seen)
        else:
            out[k] = v  # a keyword's value (enum, required, default, description, ...)
    if schema.get("nullable") is True and "type" in schema:
        out["type"] = [schema["type"], "null"]
    return out


def _template_regex(template):
    parts = re.split(r"(\{[^}/]+\})", template)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p)
                                    for p in parts) + "$")


class Spec:
    """docs/openapi.yaml, with a validator per (path template, method, status), made on first
    use."""

    def __init__(self, path=SPEC_PATH):
        self.path = path
        self.doc = _load_yaml(path)
        self.validator_class = _validator_class()
        # Literal templates first, so /v1/dlq/retry is not taken for /v1/dlq/{delivery_id}/...
        templates = sorted(self.doc.get("paths", {}), key=lambda t: (t.count("{"), t))
        self.templates = [(t, _template_regex(t)) for t in templates]
        self._validators = {}
        self._lock = threading.Lock()

    def match(self, path):
        """The path template a request path (no query) falls under, or None."""
        for t, rx in self.templates:
            if rx.match(path):
                return t
        return None

    def response(self, template, method, status):
        """The response object for template/method/status: (response, where) or (None, why)."""
        item = self.doc["paths"][template]
        op = item.get(method.lower())
        if op is None:
            # A method the path does not have: 405 (with Allow, see problems), or what is
            # answered before the method is looked at (the key, --api-allow, the limits).
            if str(status) in ("405", "401") + ANY_ROUTE_STATUSES:
                return self.error_response(), "%s %s (a method it does not have) %s" % (
                    method, template, status)
            return None, "%s %s is not in the spec (it lists %s), and the answer is %s, not " \
                "405" % (method, template, ", ".join(self.methods(template)), status)
        responses = op.get("responses", {})
        key = str(status)
        if key not in responses:
            if key in ANY_ROUTE_STATUSES or "default" in responses:
                resp = responses.get("default") or self.error_response()
                return resp, "%s %s %s (an error any route may answer)" % (method, template,
                                                                            key)
            return None, "status %s is not documented for %s %s (it lists %s)" % (
                key, method, template, ", ".join(sorted(responses)))
        resp = responses[key]
        if "$ref" in resp:
            resp = resolve_ref(self.doc, resp["$ref"])
        return resp, "%s %s %s" % (method, template, key)

    def methods(self, template):
        """The methods the spec gives template, upper case, in the spec's order."""
        return [m.upper() for m in self.doc["paths"][template] if m in METHODS]

    @staticmethod
    def error_response():
        return {"content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"}}}}

    def validator(self, template, method, status, schema):
        k = (template, method, str(status))
        with self._lock:
            v = self._validators.get(k)
            if v is None:
                js = to_json_schema(self.doc, schema)
                self.validator_class.check_schema(js)
                v = self._validators[k] = self.validator_class(js)
        return v


_spec = None
_spec_lock = threading.Lock()


def spec():
    """The spec, loaded once per process."""
    global _spec
    with _spec_lock:
        if _spec is None:
            _spec = Spec()
        return _spec


def pointer(error):
    """The JSON pointer of a jsonschema error's instance ("" is the whole body)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1")
                   for p in error.absolute_path)


def _media_type(headers):
    return (headers.get("content-type") or "").split(";")[0].strip().lower()


def problems(method, path, status, headers, body, the_spec=None):
    """Why the response does not match the spec (a list of strings; empty when it does).
    headers: lowercase names; body: bytes."""
    sp = the_spec or spec()
    template = sp.match(path.split("?", 1)[0])
    if template is None:
        return []
    resp, where = sp.response(template, method, status)
    if resp is None:
        return [where]
    out = []
    if status == 405:
        allow = sorted(m.strip() for m in (headers.get("allow") or "").split(",") if m.strip())
        if allow != sorted(sp.methods(template)):
            out.append("%s: Allow is %r, the spec gives the path %s" % (
                where, headers.get("allow"), ", ".join(sp.methods(template))))
    content = resp.get("content") or {}
    mt = _media_type(headers)
    if not body:
        return out  # 204, 304, or a HEAD-like empty answer: nothing to validate
    if mt != "application/json":
        listed = [c.split(";")[0].strip().lower() for c in content]
        if mt in listed or not content or status >= 400:
            # Listed, or no content type given, or an error answered by the HTTP library
            # itself in plain text (docs/api.md, Request bodies).
            return out
        return out + ["%s: the body is %s, the spec lists %s" % (where, mt or "untyped",
                                                                 ", ".join(content))]
    media = content.get("application/json")
    if media is None:
        return out + ["%s: the body is JSON, the spec lists %s" % (
            where, ", ".join(content) or "no body")]
    if "schema" not in media:
        return out
    try:
        doc = json.loads(body)
    except ValueError as e:
        return out + ["%s: the body is not JSON: %s" % (where, e)]
    v = sp.validator(template, method, status, media["schema"])
    errors = sorted(v.iter_errors(doc), key=lambda e: (len(e.absolute_path), pointer(e)))
    for e in errors[:5]:
        out.append("%s at %s: %s" % (where, pointer(e) or "/ (the whole body)",
                                     _short(e.message)))
    return out


def _short(s, n=300):
    return s if len(s) <= n else s[:n] + "…"


def check_response(method, path, status, headers, body):
    """Fails (AssertionError) when the response does not match docs/openapi.yaml."""
    if not enabled():
        return
    found = problems(method, path, status, headers, body)
    if found:
        raise AssertionError("response of %s %s (%s) does not match docs/openapi.yaml:\n  %s"
                             "\nbody: %s" % (method, path, status, "\n  ".join(found),
                                             _short(body.decode("utf-8", "replace"), 600)))
