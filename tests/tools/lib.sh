# lib.sh - the start every tests/*.test.sh script shares (sourced first).
#
# It moves to the checkout's root and sets ROOT, BUILD and BIN (the codid
# under test); ok/bad count the checks and finish prints the line
# tests/run.sh sums, "N passed, N failed", and exits. $tmp is a fresh
# directory; at exit the script's own cleanup_more runs (when it defines
# one), the daemon in $pid (when set) is killed and $tmp is removed, or
# kept with KEEP_TMP=1. A missing $BIN ends the script as a failed check.
# shellcheck shell=bash
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BUILD=${BUILD:-build}
BIN=$ROOT/$BUILD/codid
passed=0 failed=0
ok() { echo "ok $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1: ${2:-}"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; exit $((failed > 0)); }

tmp=$(mktemp -d)
pid=
cleanup() {
    if declare -F cleanup_more >/dev/null; then cleanup_more; fi
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    if [ -n "${KEEP_TMP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

if [ ! -x "$BIN" ]; then
    bad build "$BIN is missing"
    finish
fi

# clear_codid_env: no CODID_* variable of the caller's reaches the daemon,
# only what each case sets.
clear_codid_env() {
    local var
    while read -r var; do unset "$var"; done < <(compgen -e | grep '^CODID_')
}

# await_port LOG: waits for the 'listening on' line of the daemon $pid in
# LOG (it binds port 0: the kernel picks a free one) and sets $port from it;
# false when the daemon exits first or 90 s pass.
await_port() {
    port=
    for _ in $(seq 900); do
        port=$(sed -n 's/.*listening on http:\/\/[0-9.]*:\([0-9]*\).*/\1/p' "$1")
        [ -n "$port" ] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# await_ok URL [TRIES]: polls URL every 0.1 s until it answers with success
# (curl -f: a status under 400), true; false when the daemon $pid exits
# first or after TRIES polls (default 900: 90 s).
await_ok() {
    for _ in $(seq "${2:-900}"); do
        curl -sf -o /dev/null "$1" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# await_log FILE PATTERN [TRIES]: polls every 0.1 s until a line of FILE
# matches the extended regular expression PATTERN, true; false when the
# daemon $pid exits first (after one last look) or after TRIES polls
# (default 900: 90 s). The daemon logs a request, and counts it in
# /metrics, once it is done with it: that may come after the client has
# read the whole answer, so a check of the request's log line waits for it.
await_log() {
    for _ in $(seq "${3:-900}"); do
        grep -Eq -- "$2" "$1" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { grep -Eq -- "$2" "$1" 2>/dev/null; return; }
        sleep 0.1
    done
    return 1
}

# stop_daemon: SIGTERM the daemon $pid and wait for it; its exit status in
# $stop_rc, and $pid cleared (nothing left for cleanup to kill).
stop_daemon() {
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    stop_rc=$?
    pid=
}
