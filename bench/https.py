#!/usr/bin/env python3
"""bench/https.py: issue 16 step 1, delivery to an HTTPS receiver.

    bench/https.py --hookd build-bench/hookd [--quick] [--tmpdir DIR] [--keep]
                   [-- SERVE FLAGS...]

Makes a throwaway CA and a certificate for 127.0.0.1 with the openssl command in its temp dir
and starts `hookd mock --tls-cert --tls-key` (TLS 1.3, session tickets on). Ceiling (h_ceiling):
wrk POSTs the same ~1 KiB signed body hookd delivers to the mock over HTTPS with keep-alive (64
connections, as bench.py's phase a), before and after the end-to-end run; the ratio is against
their mean. End to end: `hookd serve --ca-file CA`, one endpoint at the mock (max_in_flight 64),
E events in batches of 500; deliveries/s from the mock's first to its last arrival. From hookd's
/metrics: connections opened and TLS handshakes (full and resumed) per 1,000 deliveries. Every
process it starts is stopped. Figures are JSON on stdout; progress on stderr.
"""
import argparse
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402  (the processes, loaders and wrk of bench.py)

SIZES = {"full": {"ceiling_s": 10, "events": 100_000, "deadline_s": 600},
         "quick": {"ceiling_s": 3, "events": 10_000, "deadline_s": 120}}


def openssl(tmp, *args):
    subprocess.run(["openssl"] + list(args), cwd=tmp, check=True, capture_output=True,
                   timeout=60)


def make_certs(tmp, ips=("127.0.0.1",)):
    """A CA and a server certificate for the addresses ips (subjectAltName IP entries) signed
    by it: (ca, cert, key) paths."""
    openssl(tmp, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=hookd bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    with open(os.path.join(tmp, "server.ext"), "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n" % ",".join(
            "IP:" + ip for ip in ips) +
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl(tmp, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    openssl(tmp, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
    return tuple(os.path.join(tmp, n) for n in ("ca.pem", "server.pem", "server.key"))


def connection_counters(serve, key):
    """hookd's connections opened and full / resumed TLS handshakes, from /metrics."""
    st, raw = b.Client(serve.port, key).request("GET", "/metrics")
    if st != 200:
        raise b.BenchError("GET /metrics -> %d" % st)
    text = raw.decode()

    def value(pattern):
        m = re.search("^" + pattern + r" (\d+)$", text, re.M)
        if m is None:
            raise b.BenchError("no %s in /metrics (a hookd without the counters?)" % pattern)
        return int(m.group(1))
    return (value("hookd_connections_opened_total"),
            value(r'hookd_tls_handshakes_total\{resumed="false"\}'),
            value(r'hookd_tls_handshakes_total\{resumed="true"\}'))


def ceiling(bn, mock, seconds, body_path, hdr_path):
    """wrk -> the mock over HTTPS: requests/s."""
    bn.mock_stats(mock, reset=True)
    w = b.run_wrk("https://127.0.0.1:%d/ceiling" % mock.port, seconds, body_path, hdr_path,
                  False, bn.tmp)
    bn.mock_stats(mock, reset=True)
    if w["errors"] or w["status_errors"]:
        b.log("h: wrk saw %d socket errors, %d bad statuses" % (w["errors"], w["status_errors"]))
    b.log("h: ceiling %.0f req/s" % w["rate"])
    return w["rate"]


def ceiling_files(bn):
    """The ceiling's body and signed headers, as bench.py's phase a writes them."""
    body = json.dumps({"id": "evt_01BENCHBENCHBENCHBENCHBENC", "event": "bench.load",
                       "created_at": "2026-01-01T00:00:00.000Z",
                       "data": json.loads(bn.load_body)["data"]}, separators=(",", ":")).encode()
    body_path = os.path.join(bn.tmp, "https-body.json")
    hdr_path = os.path.join(bn.tmp, "https-headers.txt")
    with open(body_path, "wb") as f:
        f.write(body)
    with open(hdr_path, "w") as f:
        for k, v in b.signed_headers(b.new_secret(), "evt_01BENCHBENCHBENCHBENCHBENC", body,
                                     "bench.load").items():
            f.write("%s: %s\n" % (k, v))
    return body_path, hdr_path


def e2e(bn, serve, mock, events, deadline_s):
    """Batches of events -> hookd -> the mock over HTTPS: deliveries/s and the count."""
    ep = {"url": "https://127.0.0.1:%d/webhooks" % mock.port, "events": ["bench.load"],
          "max_in_flight": b.EP_MAX_IN_FLIGHT}
    b.Client(serve.port, bn.key).json("POST", "/v1/endpoints", ep, expect=(201,))
    n_batches = (events + b.BATCH - 1) // b.BATCH
    batch = ('{"events":[' + ",".join([bn.load_body] * b.BATCH) + "]}").encode()
    bn.mock_stats(mock, reset=True)
    ld = b.load_batches(serve.port, bn.key, batch, n_batches, b.LOAD_CONNS, deadline_s)
    if ld["errors"]:
        raise b.BenchError("h: %d batch requests failed, first: %s" % (
            ld["errors"], ld["first_error"]))
    st = bn.wait_mock(mock, ld["deliveries"], deadline_s, "h")
    span = (st["last_at_us"] - st["first_at_us"]) / 1e6 if st["first_at_us"] else 0
    got = st["requests"]
    if got < ld["deliveries"]:
        raise b.BenchError("h: %d of %d deliveries arrived" % (got, ld["deliveries"]))
    rate = (got - 1) / span if span > 0 else None
    b.log("h: end to end %.0f deliveries/s (%d)" % (rate or 0, got))
    return rate, got


def run(o, tmp):
    sz = SIZES["quick" if o.quick else "full"]
    bn = b.Bench(o, tmp)  # its key, body, mock_stats and wait_mock
    ca, cert, key = make_certs(tmp)
    mock = bn.start_mock("https-mock", "--tls-cert", cert, "--tls-key", key)
    mock.tls = ssl.create_default_context(cafile=ca)  # for GET /_mock/stats
    body_path, hdr_path = ceiling_files(bn)
    before = ceiling(bn, mock, sz["ceiling_s"], body_path, hdr_path)
    serve = b.Proc("https-serve", [o.hookd, "serve", "--listen", "127.0.0.1:0", "--db",
                                   "sqlite:" + os.path.join(tmp, "https.db"), "--api-key",
                                   bn.key, "--allow-private-networks", "--ca-file", ca]
                   + o.serve_args, tmp).wait_listening()
    rate, n = e2e(bn, serve, mock, sz["events"], sz["deadline_s"])
    opened, full, resumed = connection_counters(serve, bn.key)
    serve.stop()
    after = ceiling(bn, mock, sz["ceiling_s"], body_path, hdr_path)
    ceil = (before + after) / 2
    return {"ceiling_per_s": round(ceil), "ceilings": [round(before), round(after)],
            "deliveries": n, "deliveries_per_s": round(rate) if rate else None,
            "ratio": round(rate / ceil, 3) if rate else None, "goal_ratio": 0.35,
            "connections_opened": opened, "tls_full": full, "tls_resumed": resumed,
            "connections_per_1000": round(1000 * opened / n, 2),
            "handshakes_per_1000": round(1000 * (full + resumed) / n, 2),
            "full_handshakes_per_1000": round(1000 * full / n, 2)}


def main():
    ap = argparse.ArgumentParser(description="hookd HTTPS bench (run it through bench/run)")
    ap.add_argument("--hookd", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument("serve_args", nargs="*", help="extra `hookd serve` flags (after --)")
    o = ap.parse_args()
    o.hookd = os.path.abspath(o.hookd)

    def on_term(sig, frame):  # timeout(1) in bench/run: stop the children on the way out
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    tmp = tempfile.mkdtemp(prefix="hookd-https-", dir=o.tmpdir)
    ok = False
    try:
        t0 = time.monotonic()
        out = run(o, tmp)
        out["seconds"] = round(time.monotonic() - t0, 1)
        print(json.dumps({"https": out}, indent=1))
        ok = True
    except (b.BenchError, subprocess.CalledProcessError) as e:
        b.log("failed: %s" % e)
    finally:
        b.stop_all()
        if o.keep or not ok:
            b.log("temp dir kept: %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
