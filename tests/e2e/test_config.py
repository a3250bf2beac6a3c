"""`hookd serve` configuration: --help, --check, bad values, environment twins, the API key file
when no key is given, a port already taken, and clean exits on signals."""

import os
import signal
import socket
import stat
import unittest

from harness import HookdTestCase, LISTEN_RE, START_DEADLINE

FLAGS = ["--listen", "--db", "--api-key", "--retry-schedule", "--timeout", "--allow-http",
         "--allow-private-networks", "--dlq-retention", "--max-body", "--max-in-flight",
         "--window", "--senders", "--api-threads", "--log-level", "--check", "--help", "--sync", "--ca-file",
         "--allow-cidr", "--source-address", "--resolve", "--api-allow", "--secret-overlap",
         "--ingest-rate", "--max-json-depth", "--max-headers", "--max-header-bytes", "--max-url",
         "--max-endpoints", "--max-custom-headers", "--max-response-bytes", "--api-key-file"]
FLAGS += ["--retention"]
FLAGS += ["--max-connections"]


class ConfigTest(HookdTestCase):

    def test_help_lists_every_flag(self):
        res = self.run_hookd("serve", "--help")
        self.assertEqual(res.returncode, 0, res.stderr)
        for flag in FLAGS:
            self.assertIn(flag, res.stdout, "serve --help does not mention " + flag)
        for env in ("HOOKD_LISTEN", "HOOKD_API_KEY", "HOOKD_RETRY_SCHEDULE"):
            self.assertIn(env, res.stdout, "serve --help does not mention " + env)

    def test_check_validates_and_masks_keys(self):
        db = os.path.join(self.tmp, "c.db")
        res = self.run_hookd("serve", "--check", "--db", "sqlite:" + db,
                             "--api-key", "super-secret-key-123", "--listen", "127.0.0.1:9999",
                             "--retry-schedule", "0,2s,1m")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("127.0.0.1:9999", res.stdout)
        self.assertNotIn("super-secret-key-123", res.stdout + res.stderr)
        self.assertNotIn("hookd listening", res.stdout)
        # A database that cannot be opened fails the check.
        res = self.run_hookd("serve", "--check", "--db",
                             "sqlite:" + os.path.join(self.tmp, "no", "such", "dir", "x.db"),
                             "--api-key", "check-key-1")
        self.assertNotEqual(res.returncode, 0, res.stdout)
        self.assertTrue(res.stderr.strip())
        # A bare path works as --db.
        res = self.run_hookd("serve", "--check", "--db", os.path.join(self.tmp, "bare.db"),
                             "--api-key", "check-key-1")
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_bad_values_exit_2_naming_the_flag(self):
        db = "sqlite:" + os.path.join(self.tmp, "bad.db")
        cases = [
            (["--timeout", "abc"], "timeout"),
            (["--timeout", "-5s"], "timeout"),
            (["--retry-schedule", "1x"], "retry-schedule"),
            (["--retry-schedule", ""], "retry-schedule"),
            (["--retry-schedule", "0,,1s"], "retry-schedule"),
            (["--listen", "nonsense"], "listen"),
            (["--listen", "127.0.0.1:99999"], "listen"),
            (["--max-body", "-1"], "max-body"),
            (["--max-body", "lots"], "max-body"),
            (["--max-in-flight", "0"], "max-in-flight"),
            (["--max-connections", "0"], "max-connections"),
            (["--api-threads", "x"], "api-threads"),
            (["--senders", "0"], "senders"),
            (["--senders", "65"], "senders"),
            (["--dlq-retention", "forever"], "dlq-retention"),
            (["--retention", "forever"], "retention"),
            (["--retention", "500ms"], "retention"),
            (["--log-level", "loud"], "log-level"),
            (["--sync", "fast"], "sync"),
            (["--db", "mysql://x"], "db"),
            (["--bogus-flag"], "bogus-flag"),
            (["--timeout"], "timeout"),  # missing value
            (["extra-positional"], "extra-positional"),
        ]
        for args, name in cases:
            with self.subTest(args=args):
                res = self.run_hookd("serve", "--check", "--db", db, "--api-key", "check-key-1", *args,
                                     timeout=20)
                self.assertEqual(res.returncode, 2, (args, res.stdout, res.stderr))
                self.assertIn(name, res.stderr, "the message names the flag: %r" % res.stderr)
        env_cases = [
            ({"HOOKD_TIMEOUT": "abc"}, "TIMEOUT"),
            ({"HOOKD_RETRY_SCHEDULE": "1x"}, "RETRY_SCHEDULE"),
            ({"HOOKD_LISTEN": "nonsense"}, "LISTEN"),
            ({"HOOKD_ALLOW_HTTP": "maybe"}, "ALLOW_HTTP"),
        ]
        for env, name in env_cases:
            with self.subTest(env=env):
                res = self.run_hookd("serve", "--check", "--db", db, "--api-key", "check-key-1", env=env,
                                     timeout=20)
                self.assertEqual(res.returncode, 2, (env, res.stdout, res.stderr))
                low = res.stderr.lower()
                self.assertTrue(name in res.stderr or name.lower().replace("_", "-") in low,
                                "the message names the variable or flag: %r" % res.stderr)

    def test_environment_twins(self):
        db = os.path.join(self.tmp, "env.db")
        env = {"HOOKD_LISTEN": "127.0.0.1:0", "HOOKD_DB": "sqlite:" + db,
               "HOOKD_API_KEY": "env-key-1,env-key-2", "HOOKD_ALLOW_HTTP": "true",
               "HOOKD_ALLOW_PRIVATE_NETWORKS": "1", "HOOKD_MAX_BODY": "2000",
               "HOOKD_RETRY_SCHEDULE": "0,1s"}
        serve = self.spawn_serve([], env=env, api_key="env-key-1")
        self.assertTrue(os.path.exists(db), "HOOKD_DB is used")
        for key in ("env-key-1", "env-key-2"):
            st, body = serve.api("GET", "/v1/endpoints", key=key)
            self.assertEqual(st, 200, (key, body))
        st, _ = serve.api("GET", "/v1/endpoints", key="env-key-1,env-key-2")
        self.assertEqual(st, 401)
        st, ep = serve.api("POST", "/v1/endpoints", {"url": "http://127.0.0.1:1/x",
                                                     "enabled": False})
        self.assertEqual(st, 201, "HOOKD_ALLOW_HTTP=true allows http:// (%r)" % ep)
        st, body = serve.api("POST", "/v1/events", {"event": "a", "data": {"x": "y" * 2100}})
        self.assertEqual(st, 413, "HOOKD_MAX_BODY=2000 applies (%r)" % body)
        self.assertFalse(os.path.exists(db + ".api-key"), "no key file when keys are given")
        self.stop_clean(serve)

        # Flags win over the environment.
        env2 = dict(env, HOOKD_ALLOW_HTTP="0", HOOKD_MAX_BODY="1500")
        serve = self.spawn_serve(["--max-body", "100000", "--api-key", "flag-key"], env=env2,
                                 api_key="flag-key")
        st, body = serve.api("POST", "/v1/events", {"event": "a", "data": {"x": "y" * 2100}})
        self.assertEqual(st, 202, body)
        st, body = serve.api("POST", "/v1/endpoints", {"url": "http://127.0.0.1:1/x"})
        self.assertEqual(st, 400, "HOOKD_ALLOW_HTTP=0 refuses http:// (%r)" % body)
        self.assertEqual(body["error"]["field"], "url")
        self.stop_clean(serve)

    def test_no_api_key_uses_a_key_file_beside_the_db(self):
        db = os.path.join(self.tmp, "k.db")
        keyfile = db + ".api-key"
        serve = self.start_serve(db=db, api_key=None)
        self.assertTrue(os.path.exists(keyfile), "the key file is created")
        mode = stat.S_IMODE(os.stat(keyfile).st_mode)
        self.assertEqual(mode, 0o600, oct(mode))
        with open(keyfile) as f:
            key = f.read().strip()
        self.assertGreaterEqual(len(key), 20, "an unguessable key")
        serve.api_key = key
        st, body = serve.api("GET", "/v1/endpoints")
        self.assertEqual(st, 200, body)
        st, _ = serve.api("GET", "/v1/endpoints", key=False)
        self.assertEqual(st, 401)
        st, _ = serve.api("GET", "/v1/endpoints", key="test-key")
        self.assertEqual(st, 401)
        self.stop_clean(serve)
        err = serve.stderr_text()
        self.assertIn("no --api-key given", err)
        self.assertIn(keyfile, err)
        self.assertNotIn(key, err, "the key itself is never logged")
        self.assertNotIn(key, "\n".join(serve.lines))

        # A restart reuses the same key.
        serve = self.start_serve(db=db, api_key=None)
        serve.api_key = key
        st, _ = serve.api("GET", "/v1/endpoints")
        self.assertEqual(st, 200)
        with open(keyfile) as f:
            self.assertEqual(f.read().strip(), key)
        self.stop_clean(serve)
        self.assertNotIn(key, serve.stderr_text())

    def test_api_key_file_flag(self):
        db = os.path.join(self.tmp, "f.db")
        keyfile = os.path.join(self.tmp, "keys", "serve.key")
        os.mkdir(os.path.dirname(keyfile))
        serve = self.start_serve("--api-key-file", keyfile, db=db, api_key=None)
        self.assertTrue(os.path.exists(keyfile), "the named key file is created")
        self.assertFalse(os.path.exists(db + ".api-key"), "not the default one")
        self.assertEqual(stat.S_IMODE(os.stat(keyfile).st_mode), 0o600)
        with open(keyfile) as f:
            serve.api_key = f.read().strip()
        self.assertEqual(serve.api("GET", "/v1/endpoints")[0], 200)
        self.stop_clean(serve)
        self.assertIn(keyfile, serve.stderr_text())

    def test_postgres_url_needs_a_key_and_never_shows_its_password(self):
        # Nothing listens on port 1: these fail before any database work.
        url = "postgres://hookd:pg-pass-7731@127.0.0.1:1/hookd"
        res = self.run_hookd("serve", "--db", url, "--listen", "127.0.0.1:0", timeout=20)
        self.assertEqual(res.returncode, 1, res.stderr)
        lines = res.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, res.stderr)
        self.assertIn("--api-key-file", lines[0])
        self.assertIn("PostgreSQL", lines[0])
        # With a key: the database is refused, shown without its password.
        res = self.run_hookd("serve", "--db", url, "--api-key", "check-key-1",
                             "--listen", "127.0.0.1:0", timeout=20)
        self.assertNotEqual(res.returncode, 0, res.stderr)
        self.assertIn("postgres://hookd:***@127.0.0.1:1/hookd", res.stderr)
        self.assertIn("cannot connect to PostgreSQL", res.stderr)
        res2 = self.run_hookd("serve", "--check", "--db", url + "?bogus_param=1",
                              "--api-key", "check-key-1", timeout=20)
        self.assertEqual(res2.returncode, 2, res2.stderr)
        self.assertIn("--db", res2.stderr)
        res3 = self.run_hookd("key", "list", "--db", url, timeout=20)
        self.assertEqual(res3.returncode, 1, res3.stderr)
        self.assertIn("***", res3.stderr)
        for r in (res, res2, res3):
            self.assertNotIn("pg-pass-7731", r.stdout + r.stderr)

    def test_port_taken_is_refused_with_a_message(self):
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        serve = self.start_serve(listen="127.0.0.1:%d" % port, wait=False)
        serve.killed = True  # a non-zero exit is what this test wants; checked below
        try:
            rc = serve.p.wait(timeout=START_DEADLINE)
        except Exception:
            self.fail("serve kept running on a taken port")
        self.assertNotEqual(rc, 0)
        serve.stop()
        err = serve.stderr_text()
        self.assertTrue(str(port) in err or "listen" in err.lower(), err)
        self.assertFalse(any(LISTEN_RE["serve"].match(l) for l in serve.lines), serve.lines)

    def test_sigint_and_sigterm_exit_0(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with self.subTest(sig=sig):
                serve = self.start_serve(db=os.path.join(self.tmp, "s%d.db" % sig))
                st, _ = serve.api("GET", "/healthz", key=False)
                self.assertEqual(st, 200)
                self.stop_clean(serve, sig)

    def test_version_and_top_level_usage(self):
        res = self.run_hookd("version")
        self.assertEqual(res.returncode, 0)
        self.assertRegex(res.stdout, r"^hookd \d+\.\d+\.\d+")
        res = self.run_hookd()
        self.assertEqual(res.returncode, 2)
        res = self.run_hookd("frobnicate")
        self.assertEqual(res.returncode, 2)
        self.assertIn("frobnicate", res.stderr)


if __name__ == "__main__":
    unittest.main()
