#!/usr/bin/env bash
# Speed: codid's engine vs PyTorch eager on the same weights (bench/speed.py).
set -euo pipefail
args=(--out "$BENCH_OUT" --json var/bench/speed.json --build "$BUILD")
[[ "${BENCH_QUICK:-0}" == 1 ]] && args+=(--quick)
mkdir -p var/bench
/usr/bin/python3 bench/speed.py "${args[@]}"
