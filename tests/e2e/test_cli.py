"""`hookd endpoint|event|delivery|dlq|tail`: the command-line client against a live `hookd serve`
(docs/cli.md). Every verb; exit codes 0 (done), 1 (the API's error, with its message and HTTP
status, or no connection) and 2 (usage); --json printing the API's body unchanged; the server and
key from flags, the environment and serve's key file; `hookd tail` printing a delivery and its
attempt made after it started, and exiting 0 on SIGINT."""

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
import unittest
from urllib.parse import quote

from harness import API_KEY, HookdTestCase, Proc, clean_env, free_port, new_secret

USAGE_RE = re.compile(r"^usage: hookd ", re.M)
ANSI = "\x1b["


class CliCase(HookdTestCase):
    """A serve and a healthy mock for each test; `cli` runs the client against them."""

    serve_extra = ()

    def setUp(self):
        super().setUp()
        self.mock = self.start_mock()
        self.serve = self.start_serve(*self.serve_extra)

    def cli(self, *args, env=None, api=True, key=True, input=None):
        """Runs `hookd ARGS` with --api/--key for the test's serve unless told not to."""
        extra = []
        if api:
            extra += ["--api", self.serve.base_url]
        if key:
            extra += ["--key", API_KEY]
        return self.run_hookd(*(list(args) + extra), env=env, input=input)

    def ok(self, *args, **kw):
        r = self.cli(*args, **kw)
        self.assertEqual(r.returncode, 0, "hookd %s: rc %d\nstdout: %s\nstderr: %s" % (
            " ".join(args), r.returncode, r.stdout, r.stderr))
        self.assertNotIn(API_KEY, r.stdout + r.stderr)
        return r

    def ok_json(self, *args, **kw):
        return json.loads(self.ok(*(list(args) + ["--json"]), **kw).stdout)

    def raw_get(self, path):
        status, _, raw = self.serve.request("GET", path)
        self.assertEqual(status, 200, "GET %s: %r" % (path, raw))
        return raw.decode()

    def assert_body_printed(self, r, path):
        """stdout is exactly the body GET path answers now (plus the newline it ends with)."""
        self.assertEqual(r.stdout, self.raw_get(path) + "\n")

    def assert_usage(self, r, what):
        """Exit 2, a first stderr line saying what, then the verb's usage."""
        self.assertEqual(r.returncode, 2, "stdout: %s\nstderr: %s" % (r.stdout, r.stderr))
        first = r.stderr.splitlines()[0]
        self.assertIn(what, first, r.stderr)
        self.assertRegex(r.stderr, USAGE_RE)
        self.assertEqual(r.stdout, "")

    def assert_api_error(self, r, status, message):
        """Exit 1 with the API's message and its HTTP status on stderr, nothing on stdout."""
        self.assertEqual(r.returncode, 1, "stdout: %s\nstderr: %s" % (r.stdout, r.stderr))
        self.assertIn(message, r.stderr)
        self.assertIn("HTTP %d" % status, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertNotIn(API_KEY, r.stderr)

    def create(self, *extra):
        return self.ok_json("endpoint", "create", "--url", self.mock.url + "/hook", *extra)

    def wait_status(self, dlv_id, status, timeout=15.0):
        return self.wait_delivery(self.serve, dlv_id, status, timeout)


class EndpointVerbsTest(CliCase):

    def test_create_list_get_json_and_tables(self):
        secret = new_secret()
        ep = self.create("--events", "a.b, c.d", "--secret", secret, "--description", "orders")
        self.assertEqual(ep["events"], ["a.b", "c.d"])
        self.assertEqual(ep["secret"], secret)
        self.assertEqual(ep["description"], "orders")
        self.assertTrue(ep["id"].startswith("ep_"), ep)
        # What create printed is what the API stored.
        st, stored = self.serve.api("GET", "/v1/endpoints/" + ep["id"])
        self.assertEqual((st, stored), (200, ep))

        # get --json and list --json: the API's body, byte for byte.
        self.assert_body_printed(self.ok("endpoint", "get", ep["id"], "--json"),
                                 "/v1/endpoints/" + ep["id"])
        self.assert_body_printed(self.ok("endpoint", "list", "--json"), "/v1/endpoints")

        # The tables: a header, one aligned row per endpoint, times as ISO 8601 UTC.
        out = self.ok("endpoint", "list").stdout.splitlines()
        self.assertEqual(out[0].split()[:3], ["ID", "URL", "EVENTS"])
        row = [l for l in out if l.startswith(ep["id"])]
        self.assertEqual(len(row), 1, out)
        self.assertIn(self.mock.url + "/hook", row[0])
        self.assertIn("a.b,c.d", row[0])
        self.assertRegex(row[0], r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
        self.assertEqual(out[0].index("URL"), row[0].index(self.mock.url))

        view = self.ok("endpoint", "get", ep["id"]).stdout
        fields = dict(re.findall(r"^(\w+):\s+(.*)$", view, re.M))
        self.assertEqual(fields["id"], ep["id"])
        self.assertEqual(fields["secret"], secret)
        self.assertEqual(fields["events"], "a.b,c.d")

        human = self.ok("endpoint", "create", "--url", self.mock.url + "/two")
        self.assertRegex(human.stdout, r"(?m)^secret:\s+whsec_")

    def test_get_unknown_is_the_apis_404(self):
        st, body = self.serve.api("GET", "/v1/endpoints/ep_nope")
        self.assertEqual(st, 404)
        r = self.cli("endpoint", "get", "ep_nope")
        self.assert_api_error(r, 404, body["error"]["message"])
        r = self.cli("endpoint", "get", "ep_nope", "--json")
        self.assert_api_error(r, 404, body["error"]["message"])

    def test_update_pause_resume_rotate_test_replay_delete(self):
        ep = self.create("--events", "a.b")
        eid = ep["id"]
        up = self.ok_json("endpoint", "update", eid, "--url", self.mock.url + "/new",
                          "--description", "d2", "--header", "X-Tenant: acme", "--header",
                          "X-Two:2", "--rate-limit", "5", "--max-in-flight", "3", "--filters",
                          '{"n": {">": 0}}', "--batch", "null", "--events", "a.b,e.f")
        stored = self.get_endpoint(self.serve, eid)
        self.assertEqual(up, stored)
        self.assertEqual(stored["url"], self.mock.url + "/new")
        self.assertEqual(stored["headers"], {"X-Tenant": "acme", "X-Two": "2"})
        self.assertEqual(stored["rate_limit"], 5)
        self.assertEqual(stored["max_in_flight"], 3)
        self.assertEqual(stored["filters"], {"n": {">": 0}})
        self.assertEqual(stored["events"], ["a.b", "e.f"])
        self.ok("endpoint", "update", eid, "--no-headers", "--description", "", "--rate-limit",
                "0")
        stored = self.get_endpoint(self.serve, eid)
        self.assertEqual((stored["headers"], stored["description"]), ({}, ""))
        self.assertIn(stored["rate_limit"], (None, 0))
        # --signatures (issue 16): comma-separated, on update as on create.
        self.assertEqual(stored["signatures"], ["standard", "pixelpatrol", "webhook_signature"])
        up = self.ok_json("endpoint", "update", eid, "--signatures", "webhook_signature, standard")
        self.assertEqual(up["signatures"], ["standard", "webhook_signature"])
        self.assertEqual(self.get_endpoint(self.serve, eid)["signatures"], up["signatures"])
        self.assertEqual(self.create("--signatures", "pixelpatrol")["signatures"], ["pixelpatrol"])

        # The API refuses a value: exit 1 with its message, naming the field.
        st, body = self.serve.api("PATCH", "/v1/endpoints/" + eid, {"url": "ftp://x"})
        self.assertEqual(st, 400)
        r = self.cli("endpoint", "update", eid, "--url", "ftp://x")
        self.assert_api_error(r, 400, body["error"]["message"])
        self.assertIn("url", r.stderr)

        self.assertFalse(self.ok_json("endpoint", "pause", eid)["enabled"])
        self.assertFalse(self.get_endpoint(self.serve, eid)["enabled"])
        self.assertTrue(self.ok_json("endpoint", "resume", eid)["enabled"])
        self.assertTrue(self.get_endpoint(self.serve, eid)["enabled"])

        rot = self.ok_json("endpoint", "rotate", eid)
        self.assertNotEqual(rot["secret"], ep["secret"])
        self.assertIsNotNone(rot["secret_previous_until"])
        self.assertEqual(self.get_endpoint(self.serve, eid)["secret"], rot["secret"])

        test = self.ok_json("endpoint", "test", eid, "--data", '{"hello": "world"}')
        self.assertEqual(test["event"], "test.webhook")
        got = self.wait_for(lambda: self.mock.records_for(test["id"]), 15,
                            "the test event at the mock")
        self.assertEqual(json.loads(got[0]["body"])["data"], {"hello": "world"})
        self.wait_status(test["deliveries"][0]["id"], "succeeded")

        r = self.ok("endpoint", "replay", eid, "--since", "1h")
        self.assertRegex(r.stdout, r"^replayed 1 events\n$")

        r = self.ok("endpoint", "delete", eid)
        self.assertEqual(r.stdout, "deleted %s\n" % eid)
        self.assertEqual(self.serve.api("GET", "/v1/endpoints/" + eid)[0], 404)
        self.assert_api_error(self.cli("endpoint", "delete", eid), 404, "")


class EventDeliveryVerbsTest(CliCase):

    def test_send_get_list_replay_and_deliveries(self):
        ep = self.create("--events", "order.paid,order.void")
        sent = self.ok_json("event", "send", "--type", "order.paid", "--data", '{"n": 7}')
        self.assertEqual(sent["event"], "order.paid")
        self.assertEqual([d["endpoint_id"] for d in sent["deliveries"]], [ep["id"]])
        dlv = sent["deliveries"][0]["id"]
        st, stored = self.serve.api("GET", "/v1/events/" + sent["id"])
        self.assertEqual(st, 200)
        self.assertEqual(stored["data"], {"n": 7})
        self.wait_status(dlv, "succeeded")

        # --data @PATH and @- (stdin).
        path = os.path.join(self.tmp, "data.json")
        with open(path, "w") as f:
            f.write('{"from": "file"}')
        for arg, stdin, want in ((("@" + path), None, {"from": "file"}),
                                 ("@-", '{"from": "stdin"}', {"from": "stdin"})):
            r = self.ok("event", "send", "--type", "order.paid", "--data", arg, "--json",
                        input=stdin)
            ev = json.loads(r.stdout)
            self.assertEqual(self.serve.api("GET", "/v1/events/" + ev["id"])[1]["data"], want)
            for d in ev["deliveries"]:
                self.wait_status(d["id"], "succeeded")

        human = self.ok("event", "send", "--type", "order.void", "--id", "void-1").stdout
        self.assertRegex(human, r"(?m)^id:\s+void-1$")
        self.assertIn(ep["id"], human)

        # Idempotency-Key: the second send answers the first event, marked duplicate.
        first = self.ok_json("event", "send", "--type", "order.paid", "--idempotency-key", "k-1")
        again = self.ok_json("event", "send", "--type", "order.paid", "--idempotency-key", "k-1")
        self.assertEqual(again["id"], first["id"])
        self.assertTrue(again.get("duplicate"), again)
        for d in first["deliveries"]:
            self.wait_status(d["id"], "succeeded")
        self.wait_status(self.ok_json("event", "get", "void-1")["deliveries"][0]["id"],
                         "succeeded")

        self.assert_body_printed(self.ok("event", "get", sent["id"], "--json"),
                                 "/v1/events/" + sent["id"])
        view = self.ok("event", "get", sent["id"]).stdout
        self.assertIn(dlv, view)
        self.assertRegex(view, r"(?m)^data:\s+\{\"n\":7\}$")
        self.assert_body_printed(self.ok("event", "list", "--type", "order.paid", "--json"),
                                 "/v1/events?type=order.paid")
        rows = self.ok("event", "list", "--type", "order.void").stdout.splitlines()
        self.assertEqual([r.split()[0] for r in rows[1:]], ["void-1"])

        rep = self.ok_json("event", "replay", sent["id"], "--endpoint", ep["id"])
        self.assertEqual(rep["id"], sent["id"])
        self.assertEqual(len(rep["deliveries"]), 1)
        self.assertNotEqual(rep["deliveries"][0]["id"], dlv)
        self.wait_status(rep["deliveries"][0]["id"], "succeeded")

        self.assert_body_printed(self.ok("delivery", "list", "--status", "succeeded", "--json"),
                                 "/v1/deliveries?status=succeeded")
        self.assert_body_printed(
            self.ok("delivery", "list", "--endpoint", ep["id"], "--event", sent["id"], "--json"),
            "/v1/deliveries?endpoint_id=%s&event_id=%s" % (ep["id"], sent["id"]))
        rows = self.ok("delivery", "list", "--event", sent["id"]).stdout.splitlines()
        self.assertEqual(rows[0].split()[:4], ["ID", "EVENT", "ENDPOINT", "STATUS"])
        self.assertEqual(len(rows), 3, rows)  # the delivery and its replay
        self.assertTrue(all("succeeded" in r for r in rows[1:]), rows)
        self.assert_body_printed(self.ok("delivery", "get", dlv, "--json"),
                                 "/v1/deliveries/" + dlv)
        view = self.ok("delivery", "get", dlv).stdout
        self.assertRegex(view, r"(?m)^status:\s+succeeded$")
        self.assertRegex(view, r"(?m)^1\s+\S+Z\s+200\s+\d+ ms")

    def test_api_and_usage_errors(self):
        st, body = self.serve.api("GET", "/v1/deliveries?status=bogus")
        self.assertEqual(st, 400)
        self.assert_api_error(self.cli("delivery", "list", "--status", "bogus"), 400,
                              body["error"]["message"])
        st, body = self.serve.api("POST", "/v1/events", {"event": "a.b", "data": [1]})
        self.assertEqual(st, 400)
        self.assert_api_error(self.cli("event", "send", "--type", "a.b", "--data", "[1]"), 400,
                              body["error"]["message"])
        self.assert_usage(self.cli("event", "send", "--data", "{}"), "missing --type")
        self.assert_usage(self.cli("event", "send", "--type", "a.b", "--data", "{nope"),
                          "--data is not valid JSON")
        self.assert_usage(self.cli("event", "send", "--type", "a.b", "--data", "@/nonexistent"),
                          "--data @/nonexistent")
        self.assert_usage(self.cli("endpoint", "create", "--events", "a"), "missing --url")
        self.assert_usage(self.cli("endpoint", "get"), "missing an endpoint id")
        self.assert_usage(self.cli("endpoint", "get", "a", "b"), "unexpected argument 'b'")
        self.assert_usage(self.cli("endpoint", "list", "--frob"), "unknown option '--frob'")
        self.assert_usage(self.cli("endpoint", "list", "--limit", "0"), "--limit")
        self.assert_usage(self.cli("endpoint", "update", "ep_x"), "nothing to change")
        self.assert_usage(self.cli("dlq", "retry"), "either a delivery id or --endpoint")
        r = self.cli("endpoint", "frob")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown verb 'frob'", r.stderr.splitlines()[0])
        self.assertIn("rotate", r.stderr)  # the noun's verbs follow
        r = self.run_hookd("endpoint")
        self.assertEqual(r.returncode, 2)
        r = self.run_hookd("endpoint", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("create", r.stdout)
        r = self.run_hookd("endpoint", "create", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--rate-limit", r.stdout)
        r = self.run_hookd("--help")
        for noun in ("endpoint", "event", "delivery", "dlq", "tail"):
            self.assertRegex(r.stdout, r"(?m)^  %s\s" % noun)


class DlqPagingTest(CliCase):

    serve_schedule = "0,200ms,200ms"
    serve_extra = ("--breaker-failures", "0")  # retries go on however many failed

    def test_dlq_list_and_retry(self):
        dead_url = "http://127.0.0.1:%d/gone" % free_port()
        ep = self.ok_json("endpoint", "create", "--url", dead_url, "--events", "x.y")
        ids = [self.ok_json("event", "send", "--type", "x.y")["deliveries"][0]["id"]
               for _ in range(2)]
        for d in ids:
            self.wait_status(d, "dead")
        self.assert_body_printed(self.ok("dlq", "list", "--json"), "/v1/dlq")
        self.assert_body_printed(self.ok("dlq", "list", "--endpoint", ep["id"], "--json"),
                                 "/v1/dlq?endpoint_id=" + ep["id"])
        rows = self.ok("dlq", "list").stdout.splitlines()
        self.assertEqual(sorted(r.split()[0] for r in rows[1:]), sorted(ids))
        self.assertTrue(all("connection_refused" in r for r in rows[1:]), rows)

        again = self.ok_json("delivery", "retry", ids[0])
        self.assertEqual((again["id"], again["status"]), (ids[0], "pending"))
        self.wait_for(lambda: self.get_delivery(self.serve, ids[0])["attempt_count"] == 6, 15,
                      "the retried delivery's second round")
        self.wait_status(ids[0], "dead")
        r = self.ok("dlq", "retry", "--endpoint", ep["id"])
        self.assertEqual(r.stdout, "retried 2 dead deliveries\n")
        self.wait_for(lambda: self.get_delivery(self.serve, ids[1])["attempt_count"] == 6, 15,
                      "the second round of the endpoint's dead letters")
        # A delivery that is not dead: the API's 409, exit 1.
        ok_ep = self.create("--events", "ok.ok")
        done = self.ok_json("event", "send", "--type", "ok.ok")["deliveries"][0]["id"]
        self.wait_status(done, "succeeded")
        st, body = self.serve.api("POST", "/v1/dlq/%s/retry" % done)
        self.assertEqual(st, 409, body)
        self.assert_api_error(self.cli("dlq", "retry", done), 409, body["error"]["message"])
        self.assert_api_error(self.cli("delivery", "retry", done), 409, body["error"]["message"])
        self.assertTrue(ok_ep["id"])

    def test_limit_cursor_all(self):
        made = [self.create()["id"] for _ in range(5)]
        r = self.ok("endpoint", "list", "--limit", "2")
        self.assertEqual(len(r.stdout.splitlines()), 3)
        m = re.search(r"--cursor (\S+)$", r.stderr, re.M)
        self.assertIsNotNone(m, r.stderr)
        page2 = self.ok("endpoint", "list", "--limit", "2", "--cursor", m.group(1), "--json")
        self.assert_body_printed(page2, "/v1/endpoints?limit=2&cursor=" + quote(m.group(1)))
        listed = self.ok_json("endpoint", "list", "--limit", "2", "--all")
        self.assertEqual(listed["next_cursor"], None)
        self.assertEqual(sorted(e["id"] for e in listed["data"]), sorted(made))
        self.assertEqual(listed["data"], self.list_all(self.serve, "/v1/endpoints"))
        rows = self.ok("endpoint", "list", "--all", "--limit", "2").stdout.splitlines()
        self.assertEqual(sorted(r.split()[0] for r in rows[1:]), sorted(made))


class ServerAndKeyTest(HookdTestCase):
    """--api/--key beat HOOKD_API/HOOKD_KEY, which beat serve's key file."""

    def test_flags_env_and_key_file(self):
        db = os.path.join(self.tmp, "data", "hookd.db")
        os.makedirs(os.path.dirname(db))
        serve = self.start_serve(db=db, api_key=None)  # serve makes <db>.api-key
        with open(db + ".api-key") as f:
            file_key = f.read().strip()
        serve.api_key = file_key
        url = serve.base_url
        dead = "http://127.0.0.1:%d" % free_port()

        def run(*args, env=None):
            r = self.run_hookd("endpoint", "list", *args, env=env)
            self.assertNotIn(file_key, r.stdout + r.stderr)
            return r

        self.assertEqual(run("--api", url, "--key", file_key).returncode, 0)
        self.assertEqual(run(env={"HOOKD_API": url, "HOOKD_KEY": file_key}).returncode, 0)
        # A flag wins over its variable.
        self.assertEqual(run("--api", url, env={"HOOKD_API": dead, "HOOKD_KEY": file_key})
                         .returncode, 0)
        self.assertEqual(run("--key", file_key, env={"HOOKD_API": url, "HOOKD_KEY": "wrong"})
                         .returncode, 0)
        r = run("--key", "wrong-key", env={"HOOKD_API": url, "HOOKD_KEY": file_key})
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("HTTP 401", r.stderr)
        self.assertNotIn("wrong-key", r.stderr)
        # --key-file, and HOOKD_KEY_FILE.
        self.assertEqual(run("--api", url, "--key-file", db + ".api-key").returncode, 0)
        self.assertEqual(run("--api", url, env={"HOOKD_KEY_FILE": db + ".api-key"})
                         .returncode, 0)
        # No key given: the file beside serve's database, from HOOKD_DB as serve reads it.
        self.assertEqual(run("--api", url, env={"HOOKD_DB": "sqlite:" + db}).returncode, 0)
        # ... or ./hookd.db.api-key in the working directory.
        os.link(db + ".api-key", os.path.join(self.tmp, "hookd.db.api-key"))
        self.assertEqual(run("--api", url).returncode, 0)
        os.unlink(os.path.join(self.tmp, "hookd.db.api-key"))
        r = run("--api", url)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("no API key", r.stderr)
        self.assertIn("hookd.db.api-key", r.stderr)
        r = run("--api", url, "--key-file", os.path.join(self.tmp, "missing"))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("missing", r.stderr)
        # The default server: 127.0.0.1 on HOOKD_LISTEN's port, as serve reads it.
        env = {"HOOKD_LISTEN": "0.0.0.0:%d" % serve.port, "HOOKD_KEY": file_key}
        self.assertEqual(run(env=env).returncode, 0)

    def test_connection_refused_names_the_url(self):
        dead = "http://127.0.0.1:%d" % free_port()
        for args in (["endpoint", "list"], ["event", "send", "--type", "a.b"], ["tail"]):
            r = self.run_hookd(*args, "--api", dead, "--key", "k-123456")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(dead, r.stderr)
            self.assertIn("cannot connect", r.stderr)
            self.assertNotIn("k-123456", r.stderr)
        r = self.run_hookd("endpoint", "list", "--api", "ftp://x", "--key", "k")
        self.assertEqual(r.returncode, 2, r.stderr)


class TailTest(CliCase):

    serve_schedule = "0,300ms,300ms"

    def start_tail(self, *args):
        env = clean_env({"HOOKD_API": self.serve.base_url, "HOOKD_KEY": API_KEY})
        p = Proc("tail", [self.bin, "tail"] + list(args), self.tmp, env=env)
        self.procs.append(p)
        # Ready once it has read where the list stands: later deliveries are new.
        self.wait_for(lambda: "following deliveries" in p.stderr_text() or p.p.poll() is not None,
                      15, "tail to start")
        self.assertIsNone(p.p.poll(), p.stderr_text())
        return p

    def stop_tail(self, p):
        self.assertEqual(p.stop(signal.SIGINT), 0, p.stderr_text())

    def test_prints_new_deliveries_and_attempts(self):
        ep = self.create("--events", "a.b,c.d")
        old = self.ok_json("event", "send", "--type", "a.b")["deliveries"][0]["id"]
        self.wait_status(old, "succeeded")
        dead = self.ok_json("endpoint", "create", "--url",
                            "http://127.0.0.1:%d/x" % free_port(), "--events", "c.d")
        tail = self.start_tail()
        jtail = self.start_tail("--json")
        ftail = self.start_tail("--event-type", "a.b", "--status", "succeeded")

        skipped = self.ok_json("event", "send", "--type", "c.d")
        sent = self.ok_json("event", "send", "--type", "a.b", "--data", '{"n": 2}')
        dlv = sent["deliveries"][0]["id"]
        tail.wait_line(re.compile(r"^\S+Z\s+a\.b\s+%s\s+pending\s+-\s+-\s+%s$" % (ep["id"], dlv)),
                       15)
        tail.wait_line(re.compile(r"^\S+Z\s+a\.b\s+%s\s+succeeded\s+200\s+\d+ms\s+%s$" % (
            ep["id"], dlv)), 15)
        # The failing endpoint's delivery: failed attempts, then dead.
        dead_dlv = [d["id"] for d in skipped["deliveries"] if d["endpoint_id"] == dead["id"]][0]
        tail.wait_line(re.compile(r"^\S+Z\s+c\.d\s+%s\s+failed\s+-\s+\d+ms\s+%s "
                                  r"connection_refused$" % (dead["id"], dead_dlv)), 15)
        tail.wait_line(re.compile(r"\sdead\s.*%s connection_refused$" % dead_dlv), 15)
        self.assertFalse([l for l in tail.lines if old in l], tail.lines)  # from before it
        self.assertFalse([l for l in tail.lines if ANSI in l], tail.lines)  # not a terminal

        jtail.wait_line(re.compile(r'"type":"attempt".*"delivery_id":"%s"' % dlv), 15)
        objs = [json.loads(l) for l in jtail.lines]
        mine = [o for o in objs if o.get("delivery", {}).get("id") == dlv or
                o.get("delivery_id") == dlv]
        self.assertEqual([o["type"] for o in mine], ["delivery", "attempt"], objs)
        self.assertEqual(mine[0]["delivery"]["endpoint_id"], ep["id"])
        self.assertEqual(mine[1]["attempt"]["status"], 200)
        self.assertEqual(mine[1]["status"], "succeeded")
        self.assertEqual(mine[1]["attempt"], self.get_delivery(self.serve, dlv)["attempts"][0])

        ftail.wait_line(re.compile(r"\ssucceeded\s+200\s.*%s$" % dlv), 15)
        for p in (tail, jtail):
            p.wait_line(re.compile(r"%s" % dead_dlv), 15)
        self.assertEqual([l for l in ftail.lines if "succeeded" not in l or "a.b" not in l], [],
                         ftail.lines)
        for p in (tail, jtail, ftail):
            self.stop_tail(p)

    def read_until(self, fd, want, timeout=15):
        """Reads fd until want appears, the end, or timeout seconds; returns what came."""
        out = b""
        deadline = time.monotonic() + timeout
        while want not in out and time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # a pty whose other side closed
                    break
                if not chunk:
                    break
                out += chunk
        return out

    def test_colour_on_a_terminal_unless_no_color(self):
        self.create("--events", "a.b")
        for no_color, want in ((None, True), ("1", False)):
            master, slave = pty.openpty()
            env = {"HOOKD_API": self.serve.base_url, "HOOKD_KEY": API_KEY, "TERM": "xterm"}
            if no_color:
                env["NO_COLOR"] = no_color
            p = subprocess.Popen([self.bin, "tail"], stdout=slave, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL, env=clean_env(env), cwd=self.tmp)
            os.close(slave)
            try:
                # stderr's ready line, then a delivery
                self.assertIn(b"following deliveries", self.read_until(p.stderr.fileno(),
                                                                       b"\n"))
                dlv = self.ok_json("event", "send", "--type", "a.b")["deliveries"][0]["id"]
                text = self.read_until(master, b"200").decode("utf-8", "replace")
                self.assertIn(dlv, text)
                self.assertIn("200", text)
                self.assertEqual(ANSI in text, want, repr(text))
            finally:
                p.send_signal(signal.SIGINT)
                self.assertEqual(p.wait(timeout=15), 0)
                p.stderr.close()
                os.close(master)


if __name__ == "__main__":
    unittest.main()
