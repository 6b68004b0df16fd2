#!/usr/bin/env bash
# Soak: SOAK_MINUTES (default 10; 1 with make bench-quick) of 64 concurrent
# clients (bench/soak.py) mixing good generations with and without an
# adapter, bad inputs, and job submissions with their cancels, against
# one daemon (random-tiny base, one training worker). A tiny adapter is
# trained first, over HTTP, for the adapter requests. Prints the answers
# by status, p50/p99 latency, and the daemon's RSS after warm-up and at
# the end; the goals are RSS growth under 5% and no unexpected answer.
# Alone: `bash bench/sections/50-soak.sh` prints the section to stdout
# (SOAK_MINUTES=2 for a shorter run, SOAK_CLIENTS for other than 64).
set -euo pipefail
source bench/serve_lib.sh
quick=${BENCH_QUICK:-0}
minutes=${SOAK_MINUTES:-$([[ $quick == 1 ]] && echo 1 || echo 10)}
clients=${SOAK_CLIENTS:-64}
out=${BENCH_OUT:-/dev/stdout}

start_serve soak --model random-tiny --workers 1 --train-threads 1 --threads "$(nproc)" --max-batch 16 \
    --batch-wait-ms 5
side=$(curl -sf "$url/v1/models" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["models"][0]["config"]["sample_size"])')

# the adapter: a dataset of 16 PNGs uploaded as a tar, a 30-step distill job
/usr/bin/python3 - "$work/set.tar" "$side" <<'PY'
import io, random, struct, sys, tarfile, zlib
side, rnd = int(sys.argv[2]), random.Random(3)
def png():
    raw = b"".join(b"\0" + bytes(rnd.randrange(256) for _ in range(side * 3)) for _ in range(side))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
with tarfile.open(sys.argv[1], "w") as t:
    for i in range(16):
        data = png()
        info = tarfile.TarInfo("%02d.png" % i)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
PY
curl -sf -o /dev/null -H 'Content-Type: application/x-tar' --data-binary @"$work/set.tar" "$url/v1/datasets?name=soak"
job=$(curl -sf -H 'Content-Type: application/json' "$url/v1/jobs" -d '{"kind":"distill","dataset":"soak",
    "task":{"name":"sr","factor":2},"adapter_kind":"lite","steps":30,"batch_size":2,"n_grid":8,"seed":1,
    "name":"soak"}' | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
adapter=
for _ in $(seq 3000); do
    adapter=$(curl -sf "$url/v1/jobs/$job" | /usr/bin/python3 -c '
import json, sys
j = json.load(sys.stdin)
if j["status"] == "succeeded": print(j["result"]["adapter_id"])
elif j["status"] in ("failed", "cancelled"): print("-")')
    [ -n "$adapter" ] && break
    sleep 0.2
done
[[ -n $adapter && $adapter != - ]] || { echo "the soak adapter was not trained" >&2; exit 1; }

/usr/bin/python3 bench/soak.py "$url" "$serve_pid" $((minutes * 60)) "$adapter" "$side" "$clients" >"$work/soak.out"
stop_serve
{
    echo "## Soak"
    echo
    echo "\`build/codid serve --model random-tiny\` ($side x $side), one training worker, $(nproc) generation" \
         "threads, batcher \`--max-batch 16 --batch-wait-ms 5\`; bench/soak.py: $clients clients on keep-alive" \
         "connections for $minutes min, each looping over 45% generations without an adapter (1-3 steps)," \
         "25% with a 30-step lite sr adapter trained first, 20% bad inputs (malformed JSON, steps over max_steps," \
         "an unknown adapter, an image that is no PNG, a wrong method) and 10% job submissions each" \
         "followed by its cancel. Unexpected: any status outside those the kind may answer (429 counted" \
         "apart), or a socket error. RSS is the daemon's VmRSS after warm-up (a tenth of the run, at" \
         "least 10 s) and at the end; goals: growth under 5%, no unexpected answer."
    echo
    grep -v '^SOAK ' "$work/soak.out"
    echo
} >>"$out"
grep '^SOAK ' "$work/soak.out" >&2
