#!/usr/bin/env python3
"""bench/soak.py URL PID SECONDS ADAPTER_ID SIDE [CLIENTS] - the soak load.

CLIENTS (default 64) threads, each on its own keep-alive connection, loop
for SECONDS over a fixed mix of requests, each with the statuses it may
answer:
  45%  POST /v1/generate, no adapter, 1-3 steps                 200
  25%  POST /v1/generate with ADAPTER_ID and a SIDE x SIDE image 200
  20%  bad inputs: malformed JSON, steps over max_steps, an unknown adapter,
       an image that is no PNG, a wrong method               400 404 405 413 422
  10%  POST /v1/jobs (a tiny job) then POST /v1/jobs/{id}/cancel 202 / 200 409
A 429 (queue full, with Retry-After) is counted apart: the daemon said so
in the way the contract promises, and it is not a failure of the soak.
Every other answer, and every socket error, is unexpected.

Prints the answers by kind and status, p50/p99 latency per kind, and the
daemon's RSS (VmRSS of PID) after warm-up (the first tenth of the run, at
least 10 s) and at the end; the last line is a summary a caller can parse:
  SOAK requests=N unexpected=N rss_warm_kb=N rss_end_kb=N growth_pct=X
"""
import base64
import http.client
import json
import random
import struct
import sys
import threading
import time
import urllib.parse
import zlib

url, pid, seconds, adapter, side = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
clients = int(sys.argv[6]) if len(sys.argv) > 6 else 64
u = urllib.parse.urlparse(url)


def png(w, h, seed):
    rnd = random.Random(seed)
    raw = b"".join(b"\0" + bytes(rnd.randrange(256) for _ in range(w * 3)) for _ in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


cond = base64.b64encode(png(side, side, 1)).decode()
JOB = {"kind": "distill", "dataset": "soak", "task": {"name": "sr", "factor": 2}, "adapter_kind": "lite",
       "steps": 5, "batch_size": 2, "n_grid": 8, "seed": 1}
BAD = [
    ("POST", "/v1/generate", b'{"steps": 2,', {400}),
    ("POST", "/v1/generate", b'{"steps": 5000}', {400, 422}),
    ("POST", "/v1/generate", json.dumps({"adapter": 999999, "image": cond}).encode(), {400, 404}),
    ("POST", "/v1/generate", json.dumps({"adapter": adapter, "image": "bm90IGEgcG5n"}).encode(), {400, 422}),
    ("DELETE", "/v1/generate", b"", {405}),
]


def rss_kb():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


lock = threading.Lock()
counts = {}  # (kind, status) -> n
lat = {}  # kind -> [ms]
unexpected = []
stop_at = time.monotonic() + seconds


def record(kind, status, ms, allowed):
    with lock:
        counts[(kind, status)] = counts.get((kind, status), 0) + 1
        lat.setdefault(kind, []).append(ms)
        if status not in allowed and status != 429:
            unexpected.append((kind, status))


def client(index):
    rnd = random.Random(index)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)

    def call(method, path, body, kind, allowed):
        nonlocal conn
        t0 = time.perf_counter()
        try:
            conn.request(method, path, body, {"Content-Type": "application/json"} if body else {})
            r = conn.getresponse()
            data = r.read()
            status = r.status
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
            status, data = "socket:" + type(e).__name__, b""
        record(kind, status, (time.perf_counter() - t0) * 1000, allowed)
        return status, data

    while time.monotonic() < stop_at:
        x = rnd.random()
        if x < 0.45:
            call("POST", "/v1/generate", json.dumps({"steps": rnd.randint(1, 3)}).encode(), "generate", {200})
        elif x < 0.70:
            body = {"adapter": adapter, "image": cond, "steps": rnd.randint(1, 2)}
            call("POST", "/v1/generate", json.dumps(body).encode(), "generate+adapter", {200})
        elif x < 0.90:
            method, path, body, allowed = rnd.choice(BAD)
            call(method, path, body, "bad input", allowed)
        else:
            status, data = call("POST", "/v1/jobs", json.dumps(JOB).encode(), "job submit", {202})
            if status == 202:
                jid = json.loads(data)["id"]
                call("POST", "/v1/jobs/%s/cancel" % jid, b"", "job cancel", {200, 202, 409})
    conn.close()


threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
for t in threads:
    t.start()
time.sleep(max(10.0, seconds / 10))
warm = rss_kb()
for t in threads:
    t.join()
end = rss_kb()


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")


total = sum(counts.values())
print("| kind | status | answers |")
print("|---|---|---|")
for (kind, status), n in sorted(counts.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
    print("| %s | %s | %d |" % (kind, status, n))
print()
print("| kind | requests | p50 ms | p99 ms |")
print("|---|---|---|---|")
for kind in sorted(lat):
    print("| %s | %d | %.1f | %.1f |" % (kind, len(lat[kind]), pct(lat[kind], 0.5), pct(lat[kind], 0.99)))
print()
growth = 100.0 * (end - warm) / warm if warm else float("nan")
print("RSS after warm-up %d KiB, at the end %d KiB: %+.1f%%; %d unexpected answers of %d"
      % (warm, end, growth, len(unexpected), total))
if unexpected:
    seen = {}
    for k in unexpected:
        seen[k] = seen.get(k, 0) + 1
    print("unexpected: " + ", ".join("%s %s x%d" % (k[0], k[1], n) for k, n in sorted(seen.items(), key=str)))
print("SOAK requests=%d unexpected=%d rss_warm_kb=%d rss_end_kb=%d growth_pct=%.2f"
      % (total, len(unexpected), warm, end, growth))
