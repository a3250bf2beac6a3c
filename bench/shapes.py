#!/usr/bin/env python3
"""bench/shapes.py: issue 16 step 3 (slow receivers mixed in). Step 2 (many endpoints, over
HTTPS) is bench/many.py.

    bench/shapes.py --hookd build-bench/hookd [--quick] [--scheme http] [--tmpdir DIR]
                    [-- SERVE FLAGS...]

Of M endpoints, 10% go to a mock answering after 5 s and 5% to a black hole (accepts, reads,
never answers); the fast endpoints' rate and p99 are compared with a run with no slow ones.
The fast endpoints are reached through distinct 127.0.x.y addresses of one mock bound to
0.0.0.0 (each a separate libcurl connection-pool key). Plain http. Every process it starts is
stopped. Figures are JSON on stdout.
"""
import argparse, http.client, json, os, re, shutil, socket, subprocess, sys, tempfile
import threading, time

KEY = "bench-shapes-key"
LISTEN = re.compile(r"listening on https?://([^\s:]+):(\d+)")


def start(args, tmp, name):
    err = open(os.path.join(tmp, name + ".stderr"), "wb")
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        m = LISTEN.search(line or "")
        if m:
            threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
            return p, int(m.group(2))
        if not line and p.poll() is not None:
            break
    p.kill()
    sys.exit("bench/shapes.py: %s did not start; see %s/%s.stderr" % (name, tmp, name))


def call(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request(method, path, json.dumps(body).encode() if body is not None else None,
              {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def mock_requests(port):
    return json.loads(call(port, "GET", "/_mock/stats")[1])["requests"]


def addr(i):
    return "127.0.%d.%d" % (1 + i // 250, 1 + i % 250)


def endpoints(port, urls, event):
    for u in urls:
        st, body = call(port, "POST", "/v1/endpoints", {"url": u, "events": [event]})
        if st != 201:
            sys.exit("create endpoint: %d %r" % (st, body[:200]))


def post(port, event, n, t_us=None):
    """n events of type event, in batches of 100."""
    while n > 0:
        k = min(100, n)
        evs = [{"event": event, "data": {"t_us": t_us or time.time_ns() // 1000}}
               for _ in range(k)]
        st, body = call(port, "POST", "/v1/events", {"events": evs})
        if st != 202:
            sys.exit("ingest: %d %r" % (st, body[:200]))
        n -= k


def established(pid, rport):
    """hookd's established TCP connections to port rport."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            inodes.add(t[8:-1])
    n = 0
    with open("/proc/%d/net/tcp" % pid) as f:
        for line in f.readlines()[1:]:
            c = line.split()
            if c[3] == "01" and int(c[2].split(":")[1], 16) == rport and c[9] in inodes:
                n += 1
    return n


def drain(serve_pid, mport, want, limit_s, conns):
    """Waits until the mock has counted want requests; returns seconds taken (peak connections
    go into conns[0])."""
    t0 = time.monotonic()
    while mock_requests(mport) < want:
        conns[0] = max(conns[0], established(serve_pid, mport))
        if time.monotonic() - t0 > limit_s:
            sys.exit("bench/shapes.py: %d of %d deliveries after %d s" % (
                mock_requests(mport), want, limit_s))
        time.sleep(0.02)
    return time.monotonic() - t0


def latencies(record, path_re):
    out = []
    with open(record) as f:
        for line in f:
            r = json.loads(line)
            if re.search(path_re, r["path"]):
                out.append((r["at_us"] - json.loads(r["body"])["data"]["t_us"]) / 1000)
    return out


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100 * len(xs)))], 2) if xs else None


def serve(a, tmp, name):
    return start([a.hookd, "serve", "--listen", "127.0.0.1:0", "--db",
                  "sqlite:%s/%s.db" % (tmp, name), "--api-key", KEY, "--allow-http",
                  "--allow-private-networks"] + a.serve_flags, tmp, name)


def mock(a, tmp, name, extra):
    rec = os.path.join(tmp, name + ".jsonl")
    p, port = start([a.hookd, "mock", "--listen", "0.0.0.0:0", "--quiet", "--record", rec,
                     "--record-us"] + extra, tmp, name)
    return p, port, rec


def black_hole(stop):
    """Accepts and reads, never answers; returns its port."""
    ls = socket.socket()
    ls.bind(("0.0.0.0", 0))
    ls.listen(512)
    ls.settimeout(0.2)
    held = []

    def run():
        while not stop.is_set():
            try:
                held.append(ls.accept()[0])
            except socket.timeout:
                pass
        for c in held:
            c.close()
        ls.close()
    threading.Thread(target=run, daemon=True).start()
    return ls.getsockname()[1]


def slow_phase(a, tmp, procs, name, with_slow, stop):
    m, k = 100, (50 if a.quick else 500)  # endpoints, of which fast n_fast; events
    n_fast = m - 15
    f, fport, rec = mock(a, tmp, name + "-fast", [])
    procs.append(f)
    s, sport = serve(a, tmp, name + "-serve")
    procs.append(s)
    endpoints(sport, ["%s://%s:%d/fast/%d" % (a.scheme, addr(i), fport, i)
                      for i in range(n_fast)], "x")
    if with_slow:
        w, wport, _ = mock(a, tmp, name + "-slow", ["--latency", "5000"])
        procs.append(w)
        hport = black_hole(stop)
        endpoints(sport, ["%s://%s:%d/slow/%d" % (a.scheme, addr(100 + i), wport, i)
                          for i in range(10)], "x")
        endpoints(sport, ["%s://%s:%d/hole/%d" % (a.scheme, addr(110 + i), hport, i)
                          for i in range(5)], "x")
    t0 = time.monotonic()
    post(sport, "x", k)  # saturation: the fast endpoints' delivery rate
    drain(s.pid, fport, k * n_fast, 300, [0])
    secs = time.monotonic() - t0
    steady = 40 if a.quick else 200  # then 20 events/s (1,700 fast deliveries/s): latency
    for _ in range(steady):
        t = time.monotonic()
        post(sport, "x", 1)
        time.sleep(max(0, 0.05 - (time.monotonic() - t)))
    drain(s.pid, fport, (k + steady) * n_fast, 120, [0])
    lat = latencies(rec, r"^/fast/")[k * n_fast:]
    return {"fast_per_s": round(k * n_fast / secs),
            "steady_fast_per_s": 20 * n_fast,
            "fast_p50_ms": pct(lat, 50), "fast_p99_ms": pct(lat, 99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hookd", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--scheme", default="http", choices=["http"])
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument("serve_flags", nargs="*")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="hookd-shapes-", dir=a.tmpdir)
    procs, stop = [], threading.Event()
    try:
        out = {}
        base = slow_phase(a, tmp, procs, "noslow", False, stop)
        for p in procs:
            p.terminate()
        procs.clear()
        mixed = slow_phase(a, tmp, procs, "mixed", True, stop)
        mixed["ratio"] = round(mixed["fast_per_s"] / base["fast_per_s"], 2)
        out["slow_mixed"] = {"no_slow": base, "with_slow": mixed}
        print(json.dumps(out, indent=1))
    finally:
        stop.set()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if a.tmpdir is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
