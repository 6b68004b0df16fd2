#!/usr/bin/env bash
# Serving: POST /v1/generate under load (wrk), batcher on and off; the
# HTTP + JSON + PNG overhead at batch 1; CoDi K-step against the teacher's
# 50 DDIM steps, end to end.
set -euo pipefail
source bench/serve_lib.sh
command -v wrk >/dev/null || { echo "wrk is missing (make deps installs it)" >&2; exit 1; }
quick=${BENCH_QUICK:-0}
secs=20 clients="1 4 16 64" nseq=40
[[ $quick == 1 ]] && secs=5 clients="1 4 16" nseq=10
threads=$(nproc)

adapter=sr4 steps=4
if [[ ! -f models/adapters/sr4/sr4.safetensors ]]; then adapter=- steps=4; fi
label=$([[ $adapter == - ]] && echo "the base model alone, DDIM $steps steps" || echo "adapter $adapter, CoDi $steps steps")
request_body "$adapter" "$steps" >"$work/body.json"
wrk_lua "$work/body.json" >"$work/post.lua"

load_row() { # MODE CLIENTS
    local c=$2 t=$(( $2 < 2 ? 1 : 2 ))
    wrk -t"$t" -c"$c" -d"${secs}s" --timeout 120s -s "$work/post.lua" "$url/v1/generate" >"$work/wrk.out" 2>&1 || true
    local res; res=$(grep '^RESULT' "$work/wrk.out" || echo "RESULT 0 0 0 0 1")
    read -r _ req err p50 p99 dur <<<"$res"
    local rps; rps=$(awk -v r="$req" -v d="$dur" 'BEGIN {printf "%.2f", r / (d / 1e6)}')
    printf '| %s | %d | %.1f | %.1f | %s | %d |\n' "$1" "$c" "$p50" "$p99" "$rps" "$err"
    echo "$1 $c $rps" >>"$work/rps"
}

{
    echo "## Serving"
    echo
    echo "\`build/codid serve\` with models/cifar10-base (32x32), $threads generation threads, no training" \
         "workers; every request is one 32x32 image, $label, with no seed (so any batch may take it)." \
         "wrk runs $secs s per row over keep-alive connections; latencies are wrk's percentiles, errors" \
         "count non-200 answers and socket errors. Batcher on: \`--max-batch 16 --batch-wait-ms 5\`;" \
         "off: \`--max-batch 1\`."
    echo
    echo "| batcher | clients | p50 ms | p99 ms | requests/s | errors |"
    echo "|---|---|---|---|---|---|"
} >>"$BENCH_OUT"

: >"$work/rps"
for mode in on off; do
    mb=16; [[ $mode == off ]] && mb=1
    start_serve "load-$mode" --threads "$threads" --max-batch "$mb" --batch-wait-ms 5
    wrk -t1 -c4 -d2s -s "$work/post.lua" "$url/v1/generate" >/dev/null 2>&1 || true # warm-up
    for c in $clients; do load_row "$mode" "$c" >>"$BENCH_OUT"; done
    stop_serve
done
top=${clients##* }
gain=$(awk -v c="$top" '$2 == c {r[$1] = $3} END {printf "%.2f", (r["off"] > 0 ? r["on"] / r["off"] : 0)}' "$work/rps")
echo >>"$BENCH_OUT"
echo "Batching gain at $top clients (requests/s, on / off): **${gain}x**." >>"$BENCH_OUT"

# overhead: the same requests one at a time; the engine's own time comes
# back in the response (timings.inference_ms: the eng_generate call)
start_serve overhead --threads "$threads" --max-batch 16
read -r e2e inf p99 <<<"$(seq_client "$nseq" "$work/body.json")"
{
    echo
    echo "### HTTP + JSON + PNG overhead"
    echo
    echo "$nseq sequential requests over one keep-alive connection (Python http.client), batch 1:" \
         "median end to end ${e2e} ms (p99 ${p99}), median engine time ${inf} ms" \
         "(timings.inference_ms, the eng_generate call inside the daemon)."
    echo "End to end / engine: **$(awk -v a="$e2e" -v b="$inf" 'BEGIN {printf "%.3f", a / b}')** (goal <= 1.05)."
} >>"$BENCH_OUT"

# CoDi K steps against the teacher's 50 DDIM steps, same daemon, same image
if [[ -f models/adapters/sr4/sr4-teacher.safetensors ]]; then
    {
        echo
        echo "### CoDi vs the teacher, end to end"
        echo
        echo "sr4 (8x8 -> 32x32), batch 1, $nseq sequential requests each, median ms end to end;" \
             "ratio = teacher DDIM-50 / this row (the paper: about 9x for 4 vs 50 steps; our limit 12.5x)."
        echo
        echo "| sampler | median ms | engine ms | teacher-50 / this |"
        echo "|---|---|---|---|"
    } >>"$BENCH_OUT"
    request_body sr4-teacher 50 >"$work/t50.json"
    read -r t50 t50i _ <<<"$(seq_client "$nseq" "$work/t50.json")"
    for k in 1 2 4 8; do
        request_body sr4 "$k" >"$work/k.json"
        read -r ek ik _ <<<"$(seq_client "$nseq" "$work/k.json")"
        printf '| CoDi-%d | %.1f | %.1f | **%.1fx** |\n' "$k" "$ek" "$ik" \
            "$(awk -v a="$t50" -v b="$ek" 'BEGIN {print a / b}')" >>"$BENCH_OUT"
    done
    request_body sr4-teacher 4 >"$work/t4.json"
    read -r t4 t4i _ <<<"$(seq_client "$nseq" "$work/t4.json")"
    printf '| teacher DDIM-4 | %.1f | %.1f | %.1fx |\n' "$t4" "$t4i" "$(awk -v a="$t50" -v b="$t4" 'BEGIN {print a / b}')" >>"$BENCH_OUT"
    printf '| teacher DDIM-50 | %.1f | %.1f | 1.0x |\n' "$t50" "$t50i" >>"$BENCH_OUT"
fi
stop_serve
echo >>"$BENCH_OUT"
