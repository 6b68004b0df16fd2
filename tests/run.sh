#!/usr/bin/env bash
# Runs every test program (build/tests/test_*) and every script test
# (tests/*.test.sh), sums their "N passed, N failed" lines and ends with the
# total in the same form. A program that crashes or prints no summary counts
# as one failure.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
passed=0 failed=0
log_dir=$BUILD/test-logs
mkdir -p "$log_dir"

run_one() { # name, command...
    local name=$1; shift
    local log=$log_dir/$name.log
    local start=$SECONDS
    "$@" >"$log" 2>&1
    local rc=$?
    local line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        echo "FAIL $name: no summary (exit $rc); log: $log"
        tail -n 20 "$log" | sed 's/^/    /'
        failed=$((failed + 1))
        return
    fi
    local p f
    p=$(awk '{print $1}' <<<"$line"); f=$(awk '{print $3}' <<<"$line")
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    passed=$((passed + p)); failed=$((failed + f))
    printf '%-28s %s (%ds)\n' "$name" "$line" $((SECONDS - start))
    if [ "$f" -ne 0 ]; then grep -E '^(FAIL|  also)' "$log" | sed 's/^/    /'; fi
}

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.o|*.d) continue ;; esac
    run_one "$(basename "$t")" "$t"
done
for t in tests/*.test.sh; do
    [ -f "$t" ] || continue
    run_one "$(basename "$t" .test.sh)" bash "$t"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
