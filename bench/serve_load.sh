#!/usr/bin/env bash
# serve_load.sh - the batching gain: generate throughput with 1 client and
# with 16 concurrent clients against a daemon serving the tiny random model,
# measured with wrk (a Lua script makes each request a POST /v1/generate).
#
#   bench/serve_load.sh [SECONDS] [STEPS]      defaults: 20 s, 10 steps
#
# Requests carry no seed, so the batcher may group them (max_batch 16); the
# table gives requests/s, mean latency, and the ratio of 16 clients over 1.
# The numbers depend on the machine and on what else runs on it.
set -eu
cd "$(dirname "$0")/.."
BIN=$PWD/${BUILD:-build}/codid
secs=${1:-20}
steps=${2:-10}
threads=${THREADS:-1}
command -v wrk >/dev/null || { echo "wrk is missing (make deps installs it)"; exit 1; }
[ -x "$BIN" ] || { echo "$BIN is missing (make)"; exit 1; }

tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
# a free port, so that the daemon can log at warn (no line per request)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$tmp" && exec "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$tmp/var" --model random-tiny \
    --threads "$threads" --workers 0 --max-batch 16 --batch-wait-ms 5 --queue-max 256 \
    --log-level warn) 2>"$tmp/log" &
pid=$!
up=0
for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && up=1 && break
    sleep 0.1
done
[ $up = 1 ] || { echo "the daemon did not start:"; cat "$tmp/log"; exit 1; }
url=http://127.0.0.1:$port/v1/generate

cat >"$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"steps":$steps}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %d\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency.mean / 1000, summary.duration))
end
LUA

run() { # CLIENTS -> "requests/s mean_ms errors"
    local c=$1 t=$(( $1 < 2 ? 1 : 2 ))
    wrk -t"$t" -c"$c" -d"${secs}s" --timeout 60s -s "$tmp/post.lua" "$url" >"$tmp/wrk.$c" 2>&1
    awk '/^RESULT/ {printf "%.2f %.1f %d\n", $2 / ($5 / 1e6), $4, $3}' "$tmp/wrk.$c"
}
# warm-up: the first calls allocate
wrk -t1 -c4 -d2s -s "$tmp/post.lua" "$url" >/dev/null 2>&1 || true
read -r r1 l1 e1 <<<"$(run 1)"
read -r r16 l16 e16 <<<"$(run 16)"
batches=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^codid_generate_batch_images_(sum|count) / {v[$1] = $2} END {if (v["codid_generate_batch_images_count"]) printf "%.1f", v["codid_generate_batch_images_sum"] / v["codid_generate_batch_images_count"]}')

# the engine alone: milliseconds per image of one call of n = 1 and of n = 16
# (alternated, medians of 5), to tell batching's compute gain from HTTP's share
per_image() {
    curl -s -X POST "$url" -H 'Content-Type: application/json' -d "{\"steps\":$steps,\"n\":$1}" |
        /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['timings']['inference_ms'] / $1)"
}
: >"$tmp/e1"
: >"$tmp/e16"
for _ in 1 2 3 4 5; do
    per_image 1 >>"$tmp/e1"
    per_image 16 >>"$tmp/e16"
done
median() { sort -g "$1" | awk '{v[NR] = $1} END {printf "%.1f", v[int((NR + 1) / 2)]}'; }

printf '\ngenerate throughput, tiny random model (16x16), %d steps, %d s per run, %d generation thread(s)\n' "$steps" "$secs" "$threads"
printf '%-10s %12s %14s %8s\n' clients 'requests/s' 'mean latency' errors
printf '%-10s %12s %11s ms %8s\n' 1 "$r1" "$l1" "$e1" 16 "$r16" "$l16" "$e16"
printf 'engine, ms per image: %s alone, %s in a call of 16\n' "$(median "$tmp/e1")" "$(median "$tmp/e16")"
printf 'batching gain (16 clients / 1 client): %sx; mean images per engine call seen by requests: %s\n' \
    "$(awk -v a="$r16" -v b="$r1" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')" "${batches:-?}"
