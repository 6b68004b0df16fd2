#!/usr/bin/env bash
# gen_while_training.sh - does training starve generation?
#
# Starts `codid serve` with the tiny random model on a free loopback port,
# times REQUESTS sequential POST /v1/generate calls (one 16x16 image,
# STEPS DDIM steps) with the daemon idle, then again while a training
# worker runs a long distill job on a synthetic dataset, and prints the
# latencies side by side with the training speed. Thread budgets come from
# the flags below (generation --threads, training --train-threads), so the
# table shows what that split buys. It measures and prints; it asserts
# nothing.
#
#   bench/gen_while_training.sh [REQUESTS=40] [STEPS=8] [THREADS=1] [TRAIN_THREADS=1]
set -u
cd "$(dirname "$0")/.."
BIN=$PWD/${BUILD:-build}/codid
REQUESTS=${1:-40} STEPS=${2:-8} THREADS=${3:-1} TRAIN_THREADS=${4:-1}
[ -x "$BIN" ] || { echo "build $BIN first (make)"; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

python3 - "$tmp/set.cds" <<'EOF'
import struct, sys
n, side, ch = 64, 16, 3
head = b"CODIDSET" + struct.pack("<6I", 1, n, side, side, ch, 0)
pix = bytes((x * 12 + y * 7 + c * 60 + i * 29) & 255
            for i in range(n) for y in range(side) for x in range(side) for c in range(ch))
open(sys.argv[1], "wb").write(head + b"\0" * (64 - len(head)) + pix)
EOF
"$BIN" jobs add-dataset --data-dir "$tmp/var" --name bench --file "$tmp/set.cds" >/dev/null 2>&1 || exit 1

(cd "$tmp" && exec "$BIN" serve --listen 127.0.0.1:0 --data-dir "$tmp/var" --model random-tiny \
    --workers 1 --threads "$THREADS" --train-threads "$TRAIN_THREADS") 2>"$tmp/log" &
pid=$!
port=
for _ in $(seq 600); do
    grep -q ' ready$' "$tmp/log" && port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "daemon did not start:"; cat "$tmp/log"; exit 1; }

# latencies FILE: REQUESTS timed generate calls, one per line, in ms
latencies() {
    for i in $(seq "$REQUESTS"); do
        curl -s -o /dev/null -w '%{time_total}\n' -H 'Accept: image/png' \
            -d "{\"n\":1,\"steps\":$STEPS,\"seed\":$i}" "http://127.0.0.1:$port/v1/generate"
    done | awk '{printf "%.1f\n", $1 * 1000}' >"$1"
}
# stats FILE: median, p90 and max
stats() { sort -n "$1" | awk '{v[NR] = $1} END {printf "%8.1f %8.1f %8.1f", v[int(NR * 0.5 + 0.5)], v[int(NR * 0.9 + 0.5)], v[NR]}'; }
# job_field COLUMN: step or it_per_s of the training job
job_field() {
    python3 - "$tmp/var/codid.db" "$1" <<'EOF'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=5)
step, rate = db.execute("SELECT step, it_per_s FROM jobs WHERE id = 1").fetchone()
print({"step": step, "it_per_s": rate}[sys.argv[2]])
EOF
}

latencies "$tmp/idle"
"$BIN" jobs submit --data-dir "$tmp/var" --json '{"kind":"distill","dataset":"bench","task":{"name":"sr","factor":2},
    "adapter_kind":"controlnet","steps":1000000,"batch_size":16,"n_grid":50,"checkpoint_every":100000}' >/dev/null 2>&1
for _ in $(seq 600); do [ "$(job_field step)" -ge 10 ] 2>/dev/null && break; sleep 0.2; done
latencies "$tmp/busy"
rate=$(job_field it_per_s)
"$BIN" jobs cancel 1 --data-dir "$tmp/var" >/dev/null 2>&1

echo "generate: 1 image 16x16, $STEPS DDIM steps, $REQUESTS sequential requests;"
echo "threads: generation $THREADS, training $TRAIN_THREADS; $(nproc) cores"
printf '%-22s %8s %8s %8s\n' "latency (ms)" median p90 max
printf '%-22s %s\n' "idle" "$(stats "$tmp/idle")"
printf '%-22s %s\n' "while training" "$(stats "$tmp/busy")"
printf 'training (controlnet, sr x2, batch 16): %.2f it/s\n' "$rate"
