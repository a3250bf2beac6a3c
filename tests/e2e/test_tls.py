"""TLS to receivers (issue 5): `hookd mock --tls-cert --tls-key` serves HTTPS; hookd verifies the
certificate and the host name, trusts --ca-file beside the system store (the CA directory, here
pointed at a test "system" CA with OpenSSL's SSL_CERT_DIR), and records a failed handshake as a
tls_error naming curl's reason. The CAs and certificates are made at test time with `openssl`."""

import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import unittest

from harness import HookdTestCase


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True,
                   timeout=60)


def make_ca(d, name):
    """A self-signed CA in d: returns (cert path, key path)."""
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=hookd test " + name,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return cert, key


def make_server_cert(d, name, ca):
    """A server certificate for localhost and 127.0.0.1 signed by ca: (cert path, key path)."""
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    csr, ext = os.path.join(d, name + ".csr"), os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=localhost", cwd=d)
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", ext, cwd=d)
    return cert, key


class IdleClosingTlsReceiver:
    """HTTPS/1.1 receiver: answers 200 after delay seconds, keeps the connection, and once it has
    been idle for idle seconds sends a TLS close_notify and closes it, as nginx does at its
    keep-alive timeout. Counts requests and the connections it closed so."""

    def __init__(self, cert, delay, idle):
        self.delay, self.idle = delay, idle
        self.requests, self.idle_closed = 0, 0
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert[0], cert[1])
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.url = "https://127.0.0.1:%d/idle" % self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, raw):
        try:
            c = self.ctx.wrap_socket(raw, server_side=True)
            buf = b""
            while not self.stop.is_set():
                c.settimeout(self.idle)
                try:
                    chunk = c.recv(65536)
                except socket.timeout:
                    with self.lock:
                        self.idle_closed += 1
                    c.settimeout(1)
                    c.unwrap()  # close_notify, and the peer's if it answers
                    break
                if not chunk:
                    break
                buf += chunk
                head, sep, rest = buf.partition(b"\r\n\r\n")
                n = int((re.search(rb"(?i)content-length: *(\d+)", head) or [0, b"0"])[1])
                if not sep or len(rest) < n:
                    continue
                buf = rest[n:]
                time.sleep(self.delay)
                with self.lock:
                    self.requests += 1
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        except (OSError, ssl.SSLError):
            pass
        finally:
            raw.close()

    def close(self):
        self.stop.set()
        self.sock.close()


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command (scripts/install-deps)")
class TlsTest(HookdTestCase):

    serve_schedule = "0"

    def setUp(self):
        super().setUp()
        self.ca = make_ca(self.tmp, "ca")
        self.srv = make_server_cert(self.tmp, "server", self.ca)

    def start_tls_mock(self, cert):
        return self.start_mock("--tls-cert", cert[0], "--tls-key", cert[1])

    def test_https_delivery_with_ca_file(self):
        mock = self.start_tls_mock(self.srv)
        self.assertTrue(mock.url.startswith("https://127.0.0.1:"), mock.url)
        serve = self.start_serve("--ca-file", self.ca[0], allow_http=False)
        d = self.deliver_one(serve, mock.url + "/tls")
        self.assertEqual(d["status"], "succeeded", d)
        recs = mock.records()
        self.assertEqual([r["path"] for r in recs], ["/tls"])
        self.assertEqual(recs[0]["headers"]["webhook-id"], d["event_id"])

    def test_untrusted_certificate_is_a_tls_error(self):
        mock = self.start_tls_mock(self.srv)
        serve = self.start_serve(allow_http=False)
        d = self.deliver_one(serve, mock.url + "/untrusted")
        self.assertEqual(d["status"], "dead", d)
        a = d["attempts"][0]
        self.assertIsNone(a["status"], a)
        self.assertEqual(a["error"]["code"], "tls_error", a)
        self.assertIn("certificate", a["error"]["message"], a)
        self.assertEqual(mock.records(), [], "the request went out over an untrusted connection")

    def test_host_name_is_verified(self):
        mock = self.start_tls_mock(self.srv)
        # A name the certificate does not carry, pinned to the mock's address.
        serve = self.start_serve("--ca-file", self.ca[0], "--resolve",
                                 "hooks.test:%d:127.0.0.1" % mock.port, allow_http=False)
        d = self.deliver_one(serve, "https://hooks.test:%d/name" % mock.port)
        a = d["attempts"][0]
        self.assertEqual(a["error"]["code"], "tls_error", a)
        self.assertIn("hooks.test", a["error"]["message"], a)
        self.assertEqual(mock.records(), [])

    def test_system_store_still_trusted_beside_ca_file(self):
        # A second CA stands for the system store: a hashed directory named by SSL_CERT_DIR.
        sysdir = os.path.join(self.tmp, "system-certs")
        os.mkdir(sysdir)
        sys_ca = make_ca(self.tmp, "sysca")
        h = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", sys_ca[0]],
                           check=True, capture_output=True, text=True).stdout.strip()
        shutil.copy(sys_ca[0], os.path.join(sysdir, h + ".0"))
        sys_srv = make_server_cert(self.tmp, "sysserver", sys_ca)
        mock_ca = self.start_tls_mock(self.srv)
        mock_sys = self.start_tls_mock(sys_srv)

        serve = self.start_serve("--ca-file", self.ca[0], allow_http=False,
                                 env={"SSL_CERT_DIR": sysdir})
        for mock, path in ((mock_ca, "/by-ca-file"), (mock_sys, "/by-system")):
            d = self.deliver_one(serve, mock.url + path)
            self.assertEqual(d["status"], "succeeded", (path, d))
            self.assertEqual([r["path"] for r in mock.records()], [path])

        # Control: without that directory the "system" CA is not trusted.
        serve2 = self.start_serve("--ca-file", self.ca[0], allow_http=False,
                                  db=os.path.join(self.tmp, "control.db"))
        d = self.deliver_one(serve2, mock_sys.url + "/control")
        self.assertEqual(d["attempts"][0]["error"]["code"], "tls_error", d)

    def connection_counters(self, serve):
        """(connections opened, full TLS handshakes, resumed ones) from /metrics."""
        st, _, raw = serve.request("GET", "/metrics")
        self.assertEqual(st, 200, raw[:300])
        text = raw.decode()

        def value(pattern):
            m = re.search("^" + pattern + r" (\d+)$", text, re.M)
            self.assertIsNotNone(m, "no %s in /metrics" % pattern)
            return int(m.group(1))
        return (value("hookd_connections_opened_total"),
                value(r'hookd_tls_handshakes_total\{resumed="false"\}'),
                value(r'hookd_tls_handshakes_total\{resumed="true"\}'))

    def deliver_all(self, serve, ep, event, n):
        """Ingests n events of type event (ep is their one subscriber) and waits until ep's
        n deliveries succeeded."""
        out = self.ingest_many(serve, [{"event": event, "data": {"i": i}} for i in range(n)])
        ids = [d["id"] for r in out for d in r["deliveries"]]
        self.assertEqual(len(ids), n, out[:2])

        def done():
            st, page = serve.api("GET", "/v1/deliveries?endpoint_id=%s&status=succeeded&limit=1000"
                                 % ep["id"])
            return st == 200 and len(page["data"]) == n
        self.wait_for(done, 30, "%d deliveries to %s to succeed" % (n, ep["url"]))

    def test_connections_are_reused_and_tls_sessions_resumed(self):
        # Two senders (the default, said here); the mock issues TLS session tickets.
        mock = self.start_tls_mock(self.srv)
        serve = self.start_serve("--ca-file", self.ca[0], "--senders", "2", allow_http=False)
        self.assertEqual(self.connection_counters(serve), (0, 0, 0))
        # One request at a time: keep-alive carries all 20 deliveries over at most one
        # connection per sender, and only the very first one makes a full handshake.
        one = self.create_endpoint(serve, mock.url + "/one", events=["seq"], max_in_flight=1)
        self.deliver_all(serve, one, "seq", 20)
        opened, full, resumed = self.connection_counters(serve)
        self.assertTrue(1 <= opened <= 2, opened)
        self.assertEqual((full, resumed), (1, opened - 1))
        # Eight at a time: new connections are needed, from either sender and from request
        # handles that never connected. The session cache shared by every handle and sender
        # lets them resume the first connection's session. OpenSSL's client uses a TLS 1.3
        # session for one resumption and libcurl keeps one session per host, so connections
        # opened at the same instant may still make full handshakes (docs/performance.md).
        burst = self.create_endpoint(serve, mock.url + "/burst", events=["burst"],
                                     max_in_flight=8)
        self.deliver_all(serve, burst, "burst", 80)
        opened2, full2, resumed2 = self.connection_counters(serve)
        self.assertGreater(opened2, opened, "the burst opened no connection")
        self.assertLessEqual(opened2, 2 + 8, "connections were not reused")
        self.assertEqual(full2 + resumed2, opened2)
        self.assertGreater(resumed2, resumed, "no new connection resumed a session")
        self.assertEqual(len(mock.records()), 100)

    def test_mock_flags(self):
        r = self.run_hookd("mock", "--tls-cert", self.srv[0])
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("--tls-cert and --tls-key go together", r.stderr)
        r = self.run_hookd("mock", "--tls-cert", self.srv[0], "--tls-key",
                           os.path.join(self.tmp, "missing.key"))
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("missing.key", r.stderr)
        r = self.run_hookd("mock", "--help")
        self.assertIn("--tls-cert FILE", r.stdout)

    def test_connections_closed_with_close_notify_are_not_reused(self):
        # Six deliveries at once leave six kept connections to one receiver; it closes each once
        # idle with a close_notify. The next delivery must go out on a new connection at its
        # first attempt. (Before, the close_notify waiting on those sockets made libcurl think
        # them alive: it wrote to one closed connection after another, and gave up after five:
        # "Connection died, tried 5 times before giving up".)
        rcv = IdleClosingTlsReceiver(self.srv, delay=0.3, idle=0.5)
        self.addCleanup(rcv.close)
        serve = self.start_serve("--ca-file", self.ca[0], "--senders", "1", allow_http=False)
        ep = self.create_endpoint(serve, rcv.url, events=["tls.idle"], max_in_flight=6)
        self.ingest_many(serve, [{"event": "tls.idle", "data": {"n": i}} for i in range(6)])
        self.wait_for(lambda: rcv.idle_closed >= 6, 30, "six connections closed idle")
        d = self.deliver_to(serve, ep)
        self.assertEqual(d["status"], "succeeded", d)
        self.assertEqual(len(d["attempts"]), 1, d["attempts"])

    def deliver_to(self, serve, ep):
        resp = self.ingest(serve, "tls.idle")
        return self.wait_delivery(serve, self.deliveries_to(resp, ep["id"])[0], "succeeded",
                                  timeout=30)

    def test_ca_file_must_hold_a_certificate(self):
        bogus = os.path.join(self.tmp, "bogus.pem")
        with open(bogus, "w") as f:
            f.write("not a certificate\n")
        for path, says in ((bogus, "no PEM certificate"),
                           (os.path.join(self.tmp, "nope.pem"), "No such file")):
            r = self.run_hookd("serve", "--listen", "127.0.0.1:0", "--api-key", "test-key-1234",
                               "--db", "sqlite:" + os.path.join(self.tmp, "ca.db"),
                               "--ca-file", path)
            self.assertNotEqual(r.returncode, 0, r)
            self.assertIn(says, r.stderr, r.stderr)


if __name__ == "__main__":
    unittest.main()
