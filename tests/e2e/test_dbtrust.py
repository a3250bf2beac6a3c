"""Issue 12, items 3 and 4: the database file is not trusted blindly, and one serve per SQLite file.

Start-up (serve and serve --check) refuses, with one "hookd serve: ..." line and without changing
the file, a database that is not hookd's, a read-only file or directory, and a file whose pages
fail quick_check (--check-integrity runs the full integrity_check). Damage found while serving
turns /healthz to 503 failing, is logged once, and ingest stops acknowledging. A second serve on
the same file exits at once naming the PID that holds it; a kill -9 leaves no lock behind.
"""
import os
import random
import re
import shutil
import sqlite3
import subprocess
import time
import unittest

from harness import HookdTestCase, API_KEY

HOOKD_APP_ID = 0x686F6F6B
PAGE = 16384  # the page size of a database hookd creates


def snapshot(path):
    """What must not change: the file's bytes and mtime, and what lies beside it."""
    d = os.path.dirname(path)
    with open(path, "rb") as f:
        data = f.read()
    return data, os.stat(path).st_mtime_ns, sorted(os.listdir(d))


def ro_connect(path):
    # immutable: a read-only connection would leave -wal and -shm beside a WAL file.
    return sqlite3.connect("file:%s?mode=ro&immutable=1" % path, uri=True)


def chattr(flag, path):
    return subprocess.run(["chattr", flag, path], capture_output=True, text=True).returncode == 0


class DbTrustTest(HookdTestCase):

    def refused(self, db, *extra, check=False):
        """Runs serve (or serve --check) on db; asserts it exits non-zero at once with one
        "hookd serve: ..." line on stderr and never listened. Returns that line."""
        args = ["serve", "--db", "sqlite:" + db, "--api-key", API_KEY, "--listen", "127.0.0.1:0"]
        if check:
            args.append("--check")
        try:
            res = self.run_hookd(*(args + list(extra)), timeout=20)
        except subprocess.TimeoutExpired:
            self.fail("hookd serve started on %s instead of refusing it" % db)
        self.assertNotEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertNotIn("listening", res.stdout)
        # One line, beside the log's (which start with their time stamp).
        lines = [ln for ln in res.stderr.splitlines() if not re.match(r"\d{4}-\d\d-\d\dT", ln)]
        self.assertEqual(len(lines), 1, res.stderr)
        self.assertTrue(lines[0].startswith("hookd serve: "), res.stderr)
        return lines[0]

    def make_hookd_db(self, name="hookd.db", events=0, ids=None):
        """A hookd database with some events, stopped cleanly (checkpointed, no -wal)."""
        db = os.path.join(self.tmp, name)
        serve = self.start_serve(db=db)
        for i in range(events):
            self.ingest(serve, data={"i": i})
        for evt_id in ids or []:
            self.ingest(serve, id=evt_id, data={"id": evt_id})
        self.stop_clean(serve)
        self.assertFalse(os.path.exists(db + "-wal"))
        return db

    def rootpage(self, db, name):
        with ro_connect(db) as c:
            row = c.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (name,)).fetchone()
        c.close()
        self.assertIsNotNone(row, name)
        return row[0]

    # -- not hookd's ------------------------------------------------------------------------

    def test_another_apps_file_is_refused_and_left_unchanged(self):
        db = os.path.join(self.tmp, "app.db")
        c = sqlite3.connect(db)
        c.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        c.execute("INSERT INTO users (name) VALUES ('ada')")
        c.commit()
        c.close()
        before = snapshot(db)
        for check in (False, True):
            line = self.refused(db, check=check)
            self.assertIn("not a hookd database", line)
            self.assertIn("users", line)
            self.assertEqual(snapshot(db), before, "the file or its directory changed")
        # `hookd key` goes through the same open and refuses it too.
        res = self.run_hookd("key", "list", "--db", "sqlite:" + db)
        self.assertNotEqual(res.returncode, 0, res.stdout)
        self.assertIn("not a hookd database", res.stderr)
        self.assertEqual(snapshot(db), before)
        with sqlite3.connect(db) as c:
            tables = [r[0] for r in c.execute("SELECT name FROM sqlite_schema WHERE type='table'")]
            mode = c.execute("PRAGMA journal_mode").fetchone()[0]
        c.close()
        self.assertEqual((tables, mode), (["users"], "delete"))

    def test_conflicting_table_or_application_id_is_refused_before_any_wal_switch(self):
        # A WAL-mode file of another program, with a table named like one of hookd's.
        db = os.path.join(self.tmp, "conflict.db")
        c = sqlite3.connect(db)
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("CREATE TABLE endpoints (name TEXT)")
        c.commit()
        c.close()
        before = snapshot(db)
        self.assertEqual(before[2], ["conflict.db"])
        line = self.refused(db)
        self.assertIn("endpoints", line)
        self.assertEqual(snapshot(db), before, "no -wal/-shm may appear, nothing may change")
        # Another program's application_id.
        other = os.path.join(self.tmp, "other.db")
        c = sqlite3.connect(other)
        c.execute("PRAGMA application_id = 42")
        c.execute("CREATE TABLE t (x)")
        c.commit()
        c.close()
        before = snapshot(other)
        line = self.refused(other, check=True)
        self.assertIn("application_id 0x0000002a", line)
        self.assertEqual(snapshot(other), before)

    def test_empty_file_is_fine_and_gets_hookds_application_id(self):
        db = os.path.join(self.tmp, "empty.db")
        open(db, "wb").close()
        res = self.run_hookd("serve", "--check", "--db", "sqlite:" + db, "--api-key", API_KEY)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(os.path.getsize(db), 0, "--check wrote to the file")
        serve = self.start_serve(db=db)
        self.stop_clean(serve)
        with ro_connect(db) as c:
            self.assertEqual(c.execute("PRAGMA application_id").fetchone()[0], HOOKD_APP_ID)
        c.close()

    def test_older_hookd_database_is_adopted_but_not_with_foreign_tables(self):
        db = self.make_hookd_db(events=2)
        # What an older hookd left: its schema, application_id 0.
        c = sqlite3.connect(db)
        c.execute("PRAGMA application_id = 0")
        c.commit()
        c.close()
        copy = os.path.join(self.tmp, "mixed.db")
        shutil.copy(db, copy)
        serve = self.start_serve(db=db)
        status, body = serve.api("GET", "/v1/events")
        self.assertEqual((status, len(body["data"])), (200, 2), body)
        self.stop_clean(serve)
        with ro_connect(db) as c:
            self.assertEqual(c.execute("PRAGMA application_id").fetchone()[0], HOOKD_APP_ID)
        c.close()
        # The same with another program's table beside hookd's: not adopted.
        c = sqlite3.connect(copy)
        c.execute("CREATE TABLE users (id INTEGER)")
        c.commit()
        c.close()
        before = snapshot(copy)
        line = self.refused(copy)
        self.assertIn("users", line)
        self.assertEqual(snapshot(copy), before)

    # -- read-only ----------------------------------------------------------------------------

    def make_read_only(self, path):
        """chattr +i as root (chmod does not stop root), chmod 0444 otherwise."""
        if os.geteuid() == 0:
            if not chattr("+i", path):
                self.skipTest("needs chattr +i on this file system")
            self.addCleanup(chattr, "-i", path)
        else:
            os.chmod(path, 0o444)

    def test_read_only_file_is_refused_with_what_to_fix(self):
        db = self.make_hookd_db(events=1)
        self.make_read_only(db)
        before = snapshot(db)
        for check in (True, False):
            line = self.refused(db, check=check)
            self.assertIn("database file %s is not writable" % db, line)
            self.assertIn("chattr -i" if os.geteuid() == 0 else "write permission", line)
            self.assertEqual(snapshot(db), before)

    def test_read_only_wal_left_by_a_crash_is_refused(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: chattr +i on the -wal file")
        db = os.path.join(self.tmp, "crash.db")
        serve = self.start_serve(db=db)
        self.ingest(serve)
        serve.kill9()
        self.assertTrue(os.path.exists(db + "-wal"))
        self.make_read_only(db + "-wal")
        line = self.refused(db)
        self.assertIn("%s-wal is not writable" % db, line)

    def test_read_only_directory_is_refused(self):
        d = os.path.join(self.tmp, "ro")
        os.mkdir(d)
        if os.geteuid() == 0:
            # A read-only tmpfs: neither chmod nor root gets a file created there.
            if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", d]).returncode:
                self.skipTest("needs root: cannot mount a tmpfs")
            self.addCleanup(subprocess.run, ["umount", "-l", d])
        db = os.path.join(d, "hookd.db")
        serve = self.start_serve(db=db)
        self.stop_clean(serve)
        if os.geteuid() == 0:
            self.assertEqual(subprocess.run(["mount", "-o", "remount,ro", d]).returncode, 0)
        else:
            os.chmod(d, 0o555)
            self.addCleanup(os.chmod, d, 0o755)
        before = snapshot(db)
        for check in (True, False):
            line = self.refused(db, check=check)
            self.assertIn("directory %s is not writable" % d, line)
            self.assertIn("-wal and -shm", line)
            self.assertEqual(snapshot(db), before)
        # A new database in that directory is refused just the same.
        line = self.refused(os.path.join(d, "new.db"), check=True)
        self.assertIn("not writable", line)

    # -- damaged pages --------------------------------------------------------------------------

    def test_random_bytes_in_an_index_page_fail_quick_check(self):
        db = self.make_hookd_db(events=20)
        page = self.rootpage(db, "events_created")
        with open(db, "r+b") as f:
            f.seek((page - 1) * PAGE)
            f.write(bytes([0]) + random.Random(12).randbytes(PAGE - 1))
        before = snapshot(db)
        for check in (True, False):
            line = self.refused(db, check=check)
            self.assertIn("quick_check failed", line)
            after = snapshot(db)
            self.assertEqual(after[:2], before[:2])
            self.assertFalse(os.path.exists(db + "-wal") or os.path.exists(db + "-shm"), after[2])
        line = self.refused(db, "--check-integrity")
        self.assertIn("integrity_check failed", line)

    def test_check_integrity_finds_what_quick_check_does_not(self):
        # An index entry changed in place, its order kept: the b-tree is well formed (quick_check
        # passes) but no longer matches the table, which only integrity_check compares.
        db = self.make_hookd_db(ids=["evk1", "evk3", "evk5"])
        page = self.rootpage(db, "sqlite_autoindex_events_1")
        with open(db, "r+b") as f:
            f.seek((page - 1) * PAGE)
            data = f.read(PAGE)
            self.assertEqual(data.count(b"evk3"), 1, "the index page holds the id once")
            f.seek((page - 1) * PAGE + data.index(b"evk3"))
            f.write(b"evk4")
        res = self.run_hookd("serve", "--check", "--db", "sqlite:" + db, "--api-key", API_KEY)
        self.assertEqual(res.returncode, 0, res.stderr)
        line = self.refused(db, "--check-integrity", check=True)
        self.assertIn("integrity_check failed", line)
        line = self.refused(db, "--check-integrity")
        self.assertIn("integrity_check failed", line)

    def test_damage_found_while_serving_fails_healthz_logged_once_and_ingest_not_acked(self):
        db = self.make_hookd_db(events=30)
        serve = self.start_serve(db=db)
        status, body = serve.api("GET", "/healthz")
        self.assertEqual((status, body["status"]), (200, "ok"), body)
        # The index /healthz's probe and ingest read (events by id), and the one the dispatcher
        # pages its due work through, damaged on disk.
        pages = [self.rootpage(db, "sqlite_autoindex_events_1"),
                 self.rootpage(db, "deliveries_pending_endpoint")]
        with open(db, "r+b") as f:
            for page in pages:
                f.seek((page - 1) * PAGE)
                f.write(bytes([0]) + random.Random(page).randbytes(PAGE - 1))
            f.flush()
            os.fsync(f.fileno())
        # A write elsewhere makes every connection drop the pages it had cached.
        self.create_endpoint(serve, "http://127.0.0.1:9/x")

        def failing():
            st, b = serve.api("GET", "/healthz")
            return (st, b) if st == 503 else None
        status, body = self.wait_for(failing, 10, "/healthz 503")
        self.assertEqual((body["status"], body["store"]), ("failing", "failing"), body)
        self.assertIn("damaged", body["reason"])
        status, body = serve.api("POST", "/v1/events", {"event": "media.created", "data": {}})
        self.assertEqual((status, body["error"]["code"]), (503, "store_failing"), body)
        status, stats = serve.api("GET", "/v1/stats")
        self.assertEqual(stats["store"]["status"], "failing", stats)
        # Further failures (probes, the dispatcher's reads) add no log line.
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            self.assertEqual(serve.api("GET", "/healthz")[0], 503)
            time.sleep(0.25)
        log = serve.stderr_text()
        self.assertEqual(len(re.findall(r"store condition on: corrupt", log)), 1, log)
        self.assertEqual(len([ln for ln in log.splitlines() if "malformed" in ln]), 1, log)

    # -- one serve per file -----------------------------------------------------------------------

    def test_second_serve_exits_naming_the_pid_and_kill9_leaves_no_lock(self):
        db = os.path.join(self.tmp, "hookd.db")
        first = self.start_serve(db=db)
        t0 = time.monotonic()
        line = self.refused(db)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn("pid %d" % first.p.pid, line)
        self.assertIn("PostgreSQL", line)
        with open(db + "-lock") as f:
            self.assertEqual(f.read().strip(), str(first.p.pid))
        # The first one is unharmed; --check and `hookd key` need no lock.
        self.assertEqual(first.api("GET", "/healthz")[0], 200)
        res = self.run_hookd("serve", "--check", "--db", "sqlite:" + db, "--api-key", API_KEY)
        self.assertEqual(res.returncode, 0, res.stderr)
        res = self.run_hookd("key", "list", "--db", "sqlite:" + db)
        self.assertEqual(res.returncode, 0, res.stderr)
        first.kill9()
        self.assertTrue(os.path.exists(db + "-lock"))
        second = self.start_serve(db=db)
        self.assertEqual(second.api("GET", "/healthz")[0], 200)
        with open(db + "-lock") as f:
            self.assertEqual(f.read().strip(), str(second.p.pid))
        self.stop_clean(second)


if __name__ == "__main__":
    unittest.main()
