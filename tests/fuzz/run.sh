#!/usr/bin/env bash
# make fuzz: runs each harness (built in $FUZZ_BUILD) for $FUZZ_SECONDS over a
# working copy of its committed corpus, then prints one line per harness:
# executions, executions per second, CPU seconds (user + system), and findings. A finding
# (crash-*, leak-*, timeout-*, oom-*) is left in build/fuzz-findings/TARGET/;
# once fixed, copy it into tests/fuzz/corpus/TARGET/ so make test replays it.
# New inputs that add coverage stay in build/fuzz-work/TARGET/; merge the
# few worth keeping with `-merge=1` into the corpus (keep it small).
set -u
cd "$(dirname "$0")/../.." || exit 1
FUZZ_BUILD=${FUZZ_BUILD:-build/fuzz-clang}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
status=0
printf '%-14s %12s %10s %8s %s\n' harness execs exec/s cpu_s findings
for t in "$@"; do
    work=build/fuzz-work/$t findings=build/fuzz-findings/$t
    mkdir -p "$work" "$findings" "tests/fuzz/corpus/$t"
    log=build/fuzz-work/$t.log
    TIMEFORMAT='%U %S'
    { time "$FUZZ_BUILD/fuzz_$t" -max_total_time="$FUZZ_SECONDS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$findings/" -print_final_stats=1 "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1; } 2>"$log.time"
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    n=$(find "$findings" -type f | wc -l)
    cpu=$(awk '{printf "%.0f", $1 + $2}' "$log.time")
    printf '%-14s %12s %10s %8s %s\n' "$t" "${execs:-?}" "${rate:-?}" "$cpu" "$n"
    if [ "$rc" -ne 0 ] || [ "$n" -ne 0 ]; then
        status=1
        grep -m 5 -E 'ERROR|SUMMARY|invariant' "$log" | sed 's/^/    /'
    fi
done
exit $status
