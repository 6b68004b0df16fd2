# api_lib.sh - shared by the tests/api_*.test.sh scripts (sourced).
#
# start_daemon starts build/codid serve with the tiny random model on a free
# loopback port (port 0; the bound port is read from the log) and a
# temporary data dir; call makes one request and records it, so that finish
# can hold every response received to openapi.yaml (tests/tools/
# openapi_check.py) before printing "N passed, N failed". Daemons are killed
# on exit. The rest of the start (counters, $tmp, $BIN) is lib.sh's.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CIFAR_DIR=$ROOT/data/cifar10
# expect NAME COMMAND...: ok when the command succeeds, else the last answer
expect() {
    local name=$1
    shift
    if "$@"; then ok "$name"; else bad "$name" "$code $(head -c 400 "$tmp/body" 2>/dev/null)"; fi
}

daemon_pids=() # every daemon started, killed at exit
cleanup_more() {
    local p
    for p in "${daemon_pids[@]}"; do
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    pid= # killed above, and reaped
}
mkdir -p "$tmp/rec"
RECORDS=$tmp/records.tsv
: >"$RECORDS"
nrec=0
code=
auth_args=()

finish() {
    if [ "$nrec" -gt 0 ]; then
        local out
        if out=$(/usr/bin/python3 tests/tools/openapi_check.py openapi.yaml "$RECORDS" 2>&1); then
            ok "responses_match_openapi ($(tail -n 1 <<<"$out"))"
        else
            bad responses_match_openapi "$(tail -n 20 <<<"$out")"
        fi
    fi
    echo "$passed passed, $failed failed"
    exit $((failed > 0))
}

# start_daemon NAME [serve flags...]: $base, $pid and $log of the new daemon
start_daemon() {
    local name=$1
    shift
    log=$tmp/$name.log
    : >"$log"
    mkdir -p "$tmp/$name"
    # from the temp dir, so that no models/cifar10-base is found by accident
    (cd "$tmp/$name" && exec "$BIN" serve --listen 127.0.0.1:0 --data-dir "$tmp/$name/var" \
        --model random-tiny --cifar10-dir "$CIFAR_DIR" --threads 1 --train-threads 1 "$@") 2>"$log" &
    pid=$!
    daemon_pids+=("$pid")
    local port # await_port sets this one, not a global
    if ! await_port "$log"; then
        bad "start_$name" "no 'listening on' line; log: $(tail -n 5 "$log")"
        finish
    fi
    base=http://127.0.0.1:$port
    await_ok "$base/readyz" && return 0
    bad "start_$name" "/readyz never answered 200; log: $(tail -n 5 "$log")"
    finish
}

# call METHOD PATH [curl args]: status in $code, body in $tmp/body,
# headers in $tmp/hdr; the response is recorded for finish's schema check.
call() {
    local method=$1 path=$2
    shift 2
    code=$(curl -s -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' -X "$method" "$@" "$base$path")
    if [ "$code" != 000 ]; then
        nrec=$((nrec + 1))
        cp "$tmp/body" "$tmp/rec/$nrec"
        printf '%s\t%s\t%s\t%s\t%s\n' "$method" "$path" "$code" "$(header content-type)" \
            "$tmp/rec/$nrec" >>"$RECORDS"
    fi
}
# header NAME: its value in the last response
header() {
    tr -d '\r' <"$tmp/hdr" | awk -v n="$(tr 'A-Z' 'a-z' <<<"$1")" -F': ' 'tolower($1) == n {print $2}' |
        tail -n 1
}
# pycheck EXPR [ARGS]: EXPR over d (the JSON body) and argv, true or not
pycheck() {
    /usr/bin/python3 - "$tmp/body" "${@:2}" <<PY 2>/dev/null
import json, sys
d = json.load(open(sys.argv[1]))
argv = sys.argv[2:]
sys.exit(0 if ($1) else 1)
PY
}
# jget EXPR: EXPR over d (the JSON body), printed
jget() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$tmp/body" 2>/dev/null; }

# wait_job ID STATES...: polls the job until its status is one of STATES
# (at most 10 minutes: a bound on a hang, not a speed test)
wait_job() {
    local id=$1 st want
    shift
    for _ in $(seq 3000); do
        st=$(curl -s "${auth_args[@]}" "$base/v1/jobs/$id" |
            /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null)
        for want in "$@"; do [ "$st" = "$want" ] && return 0; done
        sleep 0.2
    done
    return 1
}

# make_png FILE W H CHANNELS [SEED]: a PNG of random pixels, written by
# python (zlib + struct) rather than by the encoder under test.
make_png() {
    /usr/bin/python3 - "$@" <<'PY'
import random, struct, sys, zlib
path, w, h, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(int(sys.argv[5]) if len(sys.argv) > 5 else 1)
ctype = {1: 0, 3: 2, 4: 6}[c]
raw = b"".join(b"\0" + bytes(rnd.randrange(256) for _ in range(w * c)) for _ in range(h))
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
open(path, "wb").write(png)
PY
}
