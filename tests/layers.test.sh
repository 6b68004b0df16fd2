#!/usr/bin/env bash
# The layer rule, checked over every source file: a file includes headers of
# its own layer and of the layers below it, never of a layer above.
#
# This list is the one place the allowed edges are written down; each layer
# may include its own headers and those of every layer before it:
#
#   util    PNG, capped buffers, logging, base64, sha256, clocks, messages, images
#   engine  engine.h over libtorch (C++ behind a C ABI)
#   jobs    durable state (SQLite), the job state machine, training workers
#   api     HTTP: routes, codecs of requests, the generation runtime (batcher,
#           adapter cache), SSE
#   server  the binary: main, config, command line, start-up and shutdown
#
# tests/ and bench/ sit above all of them. `bash tests/layers.test.sh DIR`
# checks another tree (the test below plants an upward include in a copy).
set -u
LAYERS=(util engine jobs api server)

rank_of() {
    local i
    for i in "${!LAYERS[@]}"; do [ "${LAYERS[$i]}" = "$1" ] && { echo "$i"; return; }; done
    echo -1
}

# Prints one line per upward or unknown include in tree $1; returns 1 if any.
check_tree() {
    local root=$1 bad=0 f layer rank line inc target trank
    while IFS= read -r f; do
        layer=${f%%/*}
        rank=$(rank_of "$layer")
        while IFS= read -r line; do
            inc=${line#*\"}; inc=${inc%%\"*}
            target=${inc%%/*}
            [ "$target" = "$inc" ] && continue # a header beside the file
            trank=$(rank_of "$target")
            if [ "$trank" -lt 0 ]; then
                echo "$f includes \"$inc\": not a layer (${LAYERS[*]})"
                bad=1
            elif [ "$trank" -gt "$rank" ]; then
                echo "$f includes \"$inc\": $layer may not include $target (layers: ${LAYERS[*]})"
                bad=1
            fi
        done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$root/$f")
    done < <(cd "$root" && for l in "${LAYERS[@]}"; do
                 find "$l" -type f \( -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.hpp' \) 2>/dev/null
             done | sort)
    return $bad
}

if [ $# -gt 0 ]; then check_tree "$1"; exit; fi

cd "$(dirname "$0")/.." || exit 1
passed=0 failed=0
check() { # name, command...
    local name=$1; shift
    if "$@"; then echo "ok $name"; passed=$((passed + 1)); else echo "FAIL $name"; failed=$((failed + 1)); fi
}

out=$(check_tree .)
check "no file includes a header of a layer above its own" test -z "$out"
[ -n "$out" ] && echo "$out" | sed 's/^/    /'

# The check itself must catch a planted upward include (jobs -> api).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for l in "${LAYERS[@]}"; do cp -r "$l" "$tmp/"; done
printf '#include "api/api.h"\n' >>"$tmp/jobs/jobs.h"
planted=$(check_tree "$tmp")
check "a planted upward include (jobs/jobs.h -> api/api.h) is reported" \
    grep -q 'jobs/jobs.h includes "api/api.h"' <<<"$planted"
printf '#include "tests/test.h"\n' >>"$tmp/util/buf.h"
planted=$(check_tree "$tmp")
check "an include of a folder that is no layer is reported" grep -q 'util/buf.h includes "tests/test.h"' <<<"$planted"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
