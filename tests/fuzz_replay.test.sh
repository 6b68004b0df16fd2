#!/usr/bin/env bash
# Every fuzz harness (tests/fuzz/fuzz_*.c) replays its committed corpus
# (tests/fuzz/corpus/TARGET/: the seeds and every past finding) once; a
# crash, an abort on a broken invariant, or (under make asan) a leak or an
# overflow fails the harness with the input it died on.
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
passed=0 failed=0
for src in tests/fuzz/fuzz_*.c; do
    t=$(basename "$src" .c); t=${t#fuzz_}
    bin=$BUILD/fuzz/replay_$t corpus=tests/fuzz/corpus/$t
    if [ ! -x "$bin" ]; then echo "FAIL $t: $bin is missing"; failed=$((failed + 1)); continue; fi
    if [ -z "$(ls -A "$corpus" 2>/dev/null)" ]; then echo "FAIL $t: no corpus in $corpus"; failed=$((failed + 1)); continue; fi
    out=$("$bin" "$corpus" 2>&1)
    rc=$?
    if [ $rc -eq 0 ]; then
        echo "ok $t: $(ls "$corpus" | wc -l) inputs"
        passed=$((passed + 1))
    else
        echo "FAIL $t: exit $rc on $(grep '^replay: ' <<<"$out" | tail -n 1 | sed 's/^replay: //')"
        grep -vE '^replay: ' <<<"$out" | head -n 15 | sed 's/^/    /'
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
