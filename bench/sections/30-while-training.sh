#!/usr/bin/env bash
# Generation latency while a training job runs vs idle (bench/gen_while_training.sh).
set -euo pipefail
requests=40
[[ ${BENCH_QUICK:-0} == 1 ]] && requests=12
out=$(bash bench/gen_while_training.sh "$requests" 8 1 1)
{
    echo "## Generation while a job trains"
    echo
    echo "\`bench/gen_while_training.sh $requests 8 1 1\`: the daemon serves the tiny random model (16x16, 8 DDIM steps," \
         "one generation thread) while one worker (one thread) trains a ControlNet sr x2 distill job;" \
         "$requests sequential requests idle, then as many while the job trains."
    echo
    echo '```'
    echo "$out"
    echo '```'
    echo
    awk '/^idle/ {i = $2} /^while training/ {t = $3} END {if (i > 0) printf "Median latency while training / idle: **%.2fx**.\n\n", t / i}' <<<"$out"
} >>"$BENCH_OUT"
