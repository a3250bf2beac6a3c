"""Start-up checks (issue 15, part 3): `hookd serve` checks everything before it creates anything.
Each refused start prints one line `hookd serve: ...` naming what to fix, exits 1, and leaves the
directory exactly as it was: a --db in a missing directory, a --db that names a directory, a port
in use (the API's or the metrics listener's), a key file that cannot be read. `hookd key` refuses
a missing database unless `create --create` is given."""

import os
import socket
import subprocess
import unittest

from harness import HookdTestCase


def tree(root):
    """Every path under root (relative), directories marked with a trailing /."""
    out = set()
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        for n in dirs:
            out.add(os.path.normpath(os.path.join(rel, n)) + "/")
        for n in files:
            out.add(os.path.normpath(os.path.join(rel, n)))
    return out


class StartupTest(HookdTestCase):

    def setUp(self):
        super().setUp()
        self.work = os.path.join(self.tmp, "work")  # only what the test and hookd make
        os.mkdir(self.work)

    def refused(self, *args, needles=(), env=None):
        """Runs `hookd serve ARGS` that must refuse to start: exit 1, one `hookd serve:` line
        holding every needle, no listening line, and nothing new in the work directory."""
        before = tree(self.work)
        try:
            r = self.run_hookd("serve", *args, env=env, timeout=30)
        except subprocess.TimeoutExpired:
            self.fail("hookd serve %s kept running instead of refusing" % " ".join(args))
        self.assertEqual(r.returncode, 1, (r.stdout, r.stderr))
        self.assertNotIn("hookd listening", r.stdout)
        lines = [l for l in r.stderr.splitlines() if l.startswith("hookd serve: ")]
        self.assertEqual(len(lines), 1, r.stderr)
        for n in needles:
            self.assertIn(n, lines[0], r.stderr)
        self.assertEqual(tree(self.work), before, "a refused start created or removed files")
        return lines[0]

    def held_port(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        return s.getsockname()[1]

    def test_db_in_a_missing_directory(self):
        missing = os.path.join(self.work, "no", "such")
        line = self.refused("--db", "sqlite:" + missing + "/hookd.db", "--listen", "127.0.0.1:0",
                            needles=("does not exist", "mkdir -p " + missing))
        self.assertNotIn("api-key", line, "the key file is not what is wrong")

    def test_db_naming_a_directory(self):
        d = os.path.join(self.work, "data")
        os.mkdir(d)
        self.refused("--db", "sqlite:" + d, "--listen", "127.0.0.1:0",
                     needles=("is a directory", d + "/hookd.db"))
        self.assertFalse(os.path.exists(d + ".api-key"))

    def test_port_in_use_creates_no_database(self):
        port = self.held_port()
        db = os.path.join(self.work, "hookd.db")
        self.refused("--db", "sqlite:" + db, "--listen", "127.0.0.1:%d" % port,
                     needles=("cannot listen on 127.0.0.1:%d" % port, "--listen",
                              "Address already in use", "choose another port"))
        # The metrics listener is bound before anything is created too.
        self.refused("--db", "sqlite:" + db, "--listen", "127.0.0.1:0",
                     "--metrics-listen", "127.0.0.1:%d" % port,
                     needles=("--metrics-listen", "Address already in use"))
        # With an API key given as well: still nothing made.
        self.refused("--db", "sqlite:" + db, "--listen", "127.0.0.1:%d" % port,
                     "--api-key", "a-long-enough-key", needles=("Address already in use",))

    def test_key_file_that_cannot_be_read(self):
        db = os.path.join(self.work, "hookd.db")
        os.mkdir(db + ".api-key")
        self.refused("--db", "sqlite:" + db, "--listen", "127.0.0.1:0",
                     needles=(db + ".api-key", "not a regular file", "--api-key"))
        os.rmdir(db + ".api-key")
        with open(db + ".api-key", "w") as f:
            f.write("short\n")
        self.refused("--db", "sqlite:" + db, "--listen", "127.0.0.1:0",
                     needles=(db + ".api-key", "8..256"))

    def test_database_that_is_not_hookds_is_refused_before_the_key_file(self):
        db = os.path.join(self.work, "other.db")
        with open(db, "wb") as f:
            f.write(b"this is not SQLite at all, just a file in the way" * 40)
        self.refused("--db", "sqlite:" + db, "--listen", "127.0.0.1:0",
                     needles=("refusing the database", db))
        self.assertFalse(os.path.exists(db + ".api-key"))

    def test_a_good_start_still_creates_the_database_and_key(self):
        db = os.path.join(self.work, "hookd.db")
        serve = self.start_serve(db=db, api_key=None)
        self.assertTrue(os.path.isfile(db))
        with open(db + ".api-key") as f:
            serve.api_key = f.read().strip()
        st, body = serve.api("GET", "/v1/endpoints")
        self.assertEqual(st, 200, body)
        self.stop_clean(serve)

    # -- hookd key -----------------------------------------------------------------------------

    def test_key_commands_refuse_a_missing_database(self):
        db = os.path.join(self.work, "typo.db")
        before = tree(self.work)
        for args in (["create", "--scope", "admin"], ["list"], ["revoke", "key_x"]):
            with self.subTest(args=args):
                r = self.run_hookd("key", *args, "--db", "sqlite:" + db)
                self.assertEqual(r.returncode, 1, (r.stdout, r.stderr))
                self.assertIn("no database at " + db, r.stderr)
                self.assertEqual(r.stdout, "", "no key printed for a database never made")
                self.assertEqual(tree(self.work), before)
        r = self.run_hookd("key", "create", "--scope", "admin", "--db", "sqlite:" + db)
        self.assertIn("--create", r.stderr, "the refusal says how to make one on purpose")
        # Run where no database is (the default ./hookd.db): the same refusal.
        r = subprocess.run([self.bin, "key", "create", "--scope", "admin"], cwd=self.work,
                           capture_output=True, text=True, timeout=30,
                           env={k: v for k, v in os.environ.items()
                                if not k.startswith("HOOKD_")})
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("no database at ./hookd.db", r.stderr)
        self.assertEqual(tree(self.work), before)
        # A directory is refused as serve refuses it.
        r = self.run_hookd("key", "create", "--scope", "admin", "--create", "--db",
                           "sqlite:" + self.work)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("is a directory", r.stderr)

    def test_key_create_with_create_makes_a_database_serve_accepts(self):
        db = os.path.join(self.work, "new.db")
        r = self.run_hookd("key", "create", "--scope", "admin", "--create", "--db", "sqlite:" + db)
        self.assertEqual(r.returncode, 0, r.stderr)
        key = [l.split()[1] for l in r.stdout.splitlines() if l.startswith("key:")][0]
        serve = self.start_serve(db=db, api_key=None)
        st, body = serve.api("GET", "/v1/endpoints", key=key)
        self.assertEqual(st, 200, body)
        self.stop_clean(serve)


if __name__ == "__main__":
    unittest.main()
