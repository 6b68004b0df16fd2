#!/usr/bin/env bash
# The quality pipeline end to end on tiny models (bench/eval_adapters.sh
# --quick): pretrain a tiny base, train CoDi, teacher and cm2 adapters for sr4
# and inpaint, and score them. The figures mean nothing at this size; the
# test checks that every stage runs and every table row is there.
source "$(dirname "$0")/tools/lib.sh"
BUILD=$BUILD bash bench/eval_adapters.sh --quick >"$tmp/out" 2>"$tmp/err"
expect_rc=$?
if [ $expect_rc = 0 ]; then ok pipeline_runs; else bad pipeline_runs "exit $expect_rc: $(tail -n 3 "$tmp/err")"; fi
for task in sr4 inpaint; do
    rows=$(awk -v t="### $task" '$0 == t {on = 1; next} /^### / {on = 0} on && /^\| (CoDi|teacher|cm2|bicubic|mean fill)/' "$tmp/out" | wc -l)
    if [ "$rows" = 8 ]; then ok "table_$task"; else bad "table_$task" "$rows rows: $(head -c 400 "$tmp/out")"; fi
done
finish
