#!/usr/bin/env python3
"""bench/callgrind.py: hookd's instructions per delivery, counted by callgrind (docs/performance.md).

Why: on this virtual machine wall-clock rates drift 10-25 % within a minute, more than most
changes are worth. Instruction counts do not drift, so a change to hookd's own code is judged
here first, then confirmed with bench/knobs.py and bench/run.

What it runs: step b's shape, small. `hookd mock` natively; `hookd serve` under
`valgrind --tool=callgrind` with collection off while it starts and warms up (2,000
deliveries), then on for N events ingested in batches of 500 and delivered to the mock, then off.
The output file is callgrind's; read it with callgrind_annotate, e.g.

  python3 bench/callgrind.py --hookd build-bench/hookd 20000 /tmp/cg.out [--signatures standard] \
      [-- SERVE FLAGS]
  callgrind_annotate --inclusive=yes /tmp/cg.out | head -60

and divide by N. `--target mock` runs `hookd mock` under callgrind instead (hookd natively), so
the receiver's instructions per delivery can be set beside its instructions per request under
wrk, the ceiling's load: `--ceiling S` counts the mock while wrk POSTs step a's request to it
for S seconds (no hookd at all); divide by the requests printed.

Under valgrind OpenSSL takes its generic SHA-256 (no SHA-NI): its ~70k
instructions a delivery are about 1.5 us natively. libcurl, SQLite, libc and libmicrohttpd come
without symbols from Debian; to see inside libcurl, build the same version from
deb.debian.org's source with -g and run with LD_LIBRARY_PATH pointing at it.

Needs valgrind (`apt-get install valgrind`), which bench/run does not install.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

WARM_EVENTS = 2000


def ceiling(b, mock, o, tmp):
    """The mock under callgrind while wrk sends it step a's request for o.ceiling seconds."""
    _, body_path, hdr_path = b.ceiling_files()
    url = "http://127.0.0.1:%d/ceiling" % mock.port
    B.run_wrk(url, 1, body_path, hdr_path, False, tmp)  # warm-up, not counted
    b.mock_stats(mock, reset=True)
    control = ["callgrind_control", "-i"]
    subprocess.run(control + ["on", str(mock.p.pid)], check=True, capture_output=True)
    B.run_wrk(url, max(1, int(o.ceiling)), body_path, hdr_path, False, tmp)
    subprocess.run(control + ["off", str(mock.p.pid)], check=True, capture_output=True)
    n = b.mock_stats(mock)["requests"]
    mock.stop()
    print("wrote %s: divide its counts by %d requests" % (o.out, n))


def main():
    ap = argparse.ArgumentParser(description="hookd under callgrind, step b's shape")
    ap.add_argument("--hookd", required=True, help="the hookd binary (release build)")
    ap.add_argument("n", type=int, help="events to count (a multiple of 500)")
    ap.add_argument("out", help="callgrind output file")
    ap.add_argument("--signatures", default=None,
                    help="the endpoint's signature schemes, comma-separated (default: all "
                         "three), e.g. standard")
    ap.add_argument("--target", choices=("serve", "mock"), default="serve",
                    help="the process counted (default: hookd serve)")
    ap.add_argument("--ceiling", type=float, default=0, metavar="S",
                    help="with --target mock: count the mock under wrk for S seconds instead "
                         "(step a's load; n is ignored)")
    ap.add_argument("serve_args", nargs="*", help="extra `hookd serve` flags (after --), e.g. "
                    "-- --metrics off")
    o = ap.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("bench/callgrind.py: needs valgrind: apt-get install valgrind")
    o.hookd = os.path.abspath(o.hookd)
    o.quick, o.verify = True, False
    tmp = tempfile.mkdtemp(prefix="hookd-callgrind-")
    b = B.Bench(o, tmp)
    b.mock_secret = None
    try:
        cg = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + o.out,
              "--instr-atstart=no"]
        if o.target == "mock":
            # The mock prints its listening line only when it is up: valgrind is slow to start.
            args = cg + [o.hookd, "mock", "--listen", "127.0.0.1:0", "--quiet"]
            mock = B.Proc("mock", args, tmp).wait_listening(deadline_s=120)
        else:
            mock = b.start_mock("mock")
        if o.ceiling > 0:
            if o.target != "mock":
                sys.exit("bench/callgrind.py: --ceiling needs --target mock")
            ceiling(b, mock, o, tmp)
            return
        db = os.path.join(tmp, "serve.db")
        args = [o.hookd, "serve", "--listen", "127.0.0.1:0",
                "--db", "sqlite:" + db, "--api-key", b.key, "--allow-http",
                "--allow-private-networks"] + o.serve_args
        serve = B.Proc("serve", (cg if o.target == "serve" else []) + args,
                       tmp).wait_listening(deadline_s=120)
        counted = serve if o.target == "serve" else mock
        b.create_endpoint(serve, mock, "/x", ["bench.load"],
                          signatures=o.signatures.split(",") if o.signatures else None)
        batch = ('{"events":[' + ",".join([b.load_body] * B.BATCH) + "]}").encode()
        B.load_batches(serve.port, b.key, batch, WARM_EVENTS // B.BATCH, 2, 600)
        b.wait_mock(mock, WARM_EVENTS, 300, "warm-up")
        control = ["callgrind_control", "-i"]
        subprocess.run(control + ["on", str(counted.p.pid)], check=True, capture_output=True)
        B.load_batches(serve.port, b.key, batch, o.n // B.BATCH, 2, 600)
        b.wait_mock(mock, WARM_EVENTS + o.n // B.BATCH * B.BATCH, 300, "counted")
        subprocess.run(control + ["off", str(counted.p.pid)], check=True, capture_output=True)
        counted.stop()
        print("wrote %s: divide its counts by %d deliveries" % (o.out, o.n // B.BATCH * B.BATCH))
    finally:
        B.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
