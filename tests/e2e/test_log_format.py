"""--log-format json (issue 11): a serve started with it prints only JSON objects on stderr, one a
line, through a start, deliveries (succeeded, failed, an endpoint disabled by a 410, whose
reason is a quoted value with spaces) and a stop; the fields are those of the text form."""

import json
import os
import unittest

from harness import HookdTestCase, RFC3339_MS


class LogFormatTest(HookdTestCase):

    def read_json_lines(self, serve):
        lines = []
        with open(serve.stderr_path, "rb") as f:
            for raw in f.read().split(b"\n"):
                if not raw:
                    continue
                try:
                    obj = json.loads(raw.decode("utf-8"))
                except ValueError as e:
                    self.fail("not a JSON line (%s): %r" % (e, raw))
                self.assertIsInstance(obj, dict, raw)
                self.assertEqual(list(obj)[:3], ["ts", "level", "msg"], raw)
                self.assertRegex(obj["ts"], RFC3339_MS)
                self.assertIn(obj["level"], ("debug", "info", "warn", "error"))
                for k, v in obj.items():
                    self.assertIsInstance(v, str, (k, raw))
                lines.append(obj)
        return lines

    def test_json_lines_from_start_to_stop(self):
        recv = self.start_receiver(lambda req: 410 if req["path"] == "/gone" else None)
        serve = self.start_serve("--log-format", "json", "--log-level", "debug", schedule="0")
        ok = self.create_endpoint(serve, recv.url + "/ok", events=["order.paid"])
        gone = self.create_endpoint(serve, recv.url + "/gone", events=["order.refunded"])
        ev = self.ingest(serve, "order.paid", {"n": 1})
        self.wait_delivery(serve, ev["deliveries"][0]["id"], "succeeded")
        self.ingest(serve, "order.refunded", {"n": 2})
        self.wait_endpoint(serve, gone["id"], lambda e: e.get("enabled") is False, 10,
                           "the 410 to disable the endpoint")
        self.stop_clean(serve)

        lines = self.read_json_lines(serve)
        by_msg = {}
        for obj in lines:
            by_msg.setdefault(obj["msg"], []).append(obj)
        started = by_msg["hookd started"][0]
        self.assertEqual(started["level"], "info")
        self.assertIn("version", started)
        self.assertRegex(started["listen"], r"^127\.0\.0\.1:\d+$")
        succeeded = [o for o in by_msg.get("delivery succeeded", [])
                     if o.get("endpoint") == ok["id"]]
        self.assertTrue(succeeded, lines)
        self.assertEqual(succeeded[0]["id"], ev["deliveries"][0]["id"])
        self.assertEqual(succeeded[0]["status"], "200")
        self.assertEqual(succeeded[0]["level"], "debug")
        disabled = by_msg["endpoint disabled"][0]
        self.assertEqual(disabled["endpoint"], gone["id"])
        self.assertEqual(disabled["reason"], "410 Gone from the receiver")
        self.assertEqual(disabled["level"], "warn")
        self.assertIn("signal", by_msg["stopping"][0])

    def test_text_is_the_default_and_env_twin_selects_json(self):
        serve = self.start_serve()
        self.stop_clean(serve)
        with open(serve.stderr_path, "rb") as f:
            text = f.read().decode()
        self.assertRegex(text, r"(?m)^\S+Z level=info hookd started version=")
        self.assertNotIn('{"ts"', text)

        serve = self.start_serve(db=os.path.join(self.tmp, "env.db"),
                                 env={"HOOKD_LOG_FORMAT": "json"})
        self.stop_clean(serve)
        msgs = [o["msg"] for o in self.read_json_lines(serve)]
        self.assertIn("hookd started", msgs)

        res = self.run_hookd("serve", "--check", "--log-format", "xml")
        self.assertEqual(res.returncode, 2)
        self.assertIn("--log-format", res.stderr)


if __name__ == "__main__":
    unittest.main()
