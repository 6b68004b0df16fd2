# serve_lib.sh - sourced by bench sections that drive a real daemon.
#
# start_serve NAME [serve flags...] starts build/codid serve on a free
# loopback port with the default base model (and so the adapters shipped
# beside it) and sets $url to its base URL; the daemon logs (one line per
# request at the default level, as in production) to $work/NAME.log and is stopped by stop_serve or on exit. seq_client and
# the wrk Lua body below measure what users see.
BIN=$PWD/${BUILD:-build}/codid
work=$(mktemp -d)
serve_pid=
trap '[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

start_serve() {
    local name=$1
    shift
    local port
    port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    (exec "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$work/$name" --workers 0 \
        --queue-max 4096 "$@") 2>"$work/$name.log" &
    serve_pid=$!
    url=http://127.0.0.1:$port
    for _ in $(seq 1200); do
        curl -sf "$url/readyz" >/dev/null && return 0
        kill -0 "$serve_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "the daemon did not start:" >&2
    cat "$work/$name.log" >&2
    exit 1
}

stop_serve() {
    kill -TERM "$serve_pid" 2>/dev/null
    wait "$serve_pid" 2>/dev/null
    serve_pid=
}

# request_body ADAPTER STEPS [SEED]: a generate request as JSON, on stdout.
# With an adapter, its task's condition comes from a CIFAR-10 test image
# (an 8x8 downsample for sr4, the whole image otherwise).
request_body() {
    /usr/bin/python3 - "$@" <<'PY'
import base64, json, struct, sys, zlib
adapter, steps = sys.argv[1], int(sys.argv[2])
body = {"steps": steps}
if len(sys.argv) > 3:
    body["seed"] = int(sys.argv[3])
def png(side, rows):
    raw = b"".join(b"\0" + bytes(r) for r in rows)
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
if adapter != "-":
    # a smooth synthetic photo-like image (no data set needed)
    side = 8 if adapter.startswith("sr4") else 32
    rows = [[int(127 + 100 * ((x * 7 + y * 3 + c * 11) % side) / side) for x in range(side) for c in range(3)]
            for y in range(side)]
    body["adapter"] = adapter
    body["image"] = base64.b64encode(png(side, rows)).decode()
print(json.dumps(body))
PY
}

# seq_client N BODYFILE: N sequential requests over one keep-alive
# connection; prints "median_e2e_ms median_inference_ms p99_e2e_ms".
seq_client() {
    /usr/bin/python3 - "$url" "$@" <<'PY'
import http.client, json, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
n, body = int(sys.argv[2]), open(sys.argv[3], "rb").read()
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
e2e, inf = [], []
for i in range(n + 2):
    t0 = time.perf_counter()
    conn.request("POST", "/v1/generate", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    t1 = time.perf_counter()
    if r.status != 200:
        sys.exit("generate: %d %s" % (r.status, data[:300]))
    if i >= 2:  # two warm-up calls
        e2e.append((t1 - t0) * 1000)
        inf.append(json.loads(data)["timings"]["inference_ms"])
e2e.sort(); inf.sort()
med = lambda v: v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
print("%.2f %.2f %.2f" % (med(e2e), med(inf), e2e[min(len(e2e) - 1, int(len(e2e) * 0.99))]))
PY
}

# wrk_lua BODYFILE > SCRIPT: a wrk script posting the body and printing
# "RESULT requests errors p50_ms p99_ms duration_us".
wrk_lua() {
    /usr/bin/python3 - "$1" <<'PY'
import sys
body = open(sys.argv[1]).read().strip().replace("\\", "\\\\").replace("'", "\\'")
print("""wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%.2f %%.2f %%d\\n", summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.duration))
end""" % body)
PY
}
