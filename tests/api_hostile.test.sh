#!/usr/bin/env bash
# Hostile clients (api/guard.c): a header or a body trickled byte by byte is
# cut after header_timeout_s / body_timeout_s while others are served; open
# connections beyond max_connections or max_connections_per_client get 503
# with Retry-After; a client over its rate gets 429 with Retry-After (loopback
# exempt unless rate_limit_loopback); too many or too large header fields
# get 431. Deadlines here are bounds on a hang, never speed verdicts.
source "$(dirname "$0")/tools/api_lib.sh"
HOSTILE=(/usr/bin/python3 tests/tools/hostile.py)
port_of() { sed 's/.*://' <<<"$base"; }

# ---- deadlines --------------------------------------------------------------
start_daemon deadlines --header-timeout-s 2 --body-timeout-s 2
p=$(port_of)
"${HOSTILE[@]}" slow-header "$p" 0.5 60 >"$tmp/slowloris" &
slow=$!
sleep 1 # the slow client is connected and trickling while others are served
call GET /healthz
expect "served while a slow header trickles" test "$code" = 200
call POST /v1/generate -H 'Content-Type: application/json' -d '{"steps":2,"seed":1}'
expect "generation served while a slow header trickles" test "$code" = 200
wait "$slow"
out=$(cat "$tmp/slowloris")
expect "a header trickled byte by byte is cut (header_timeout_s): $out" grep -q '^cut' <<<"$out"
out=$("${HOSTILE[@]}" slow-body "$p" 0.3 60)
expect "a body trickled byte by byte is cut (body_timeout_s): $out" grep -q '^cut' <<<"$out"
grep -q 'request header not complete after 2 s' "$log"
expect "the cut is logged with its reason" test $? = 0
call GET /healthz
expect "still serving afterwards" test "$code" = 200

# ---- connection caps ---------------------------------------------------------
for spec in "per_client --max-connections-per-client max_connections_per_client" \
            "total --max-connections max_connections"; do
    read -r name flag setting <<<"$spec"
    start_daemon "cap_$name" "$flag" 4 --header-timeout-s 0
    p=$(port_of)
    coproc HOLD { exec "${HOSTILE[@]}" hold "$p" 4 120; }
    read -r held <&"${HOLD[0]}"
    call GET /healthz
    expect "$name: beyond 4 open connections a request gets 503 ($held)" test "$code" = 503
    expect "$name: the 503 names $setting" grep -q "$setting" "$tmp/body"
    expect "$name: the 503 has Retry-After" test -n "$(header retry-after)"
    kill "$HOLD_PID" 2>/dev/null
    wait "$HOLD_PID" 2>/dev/null
    await_ok "$base/healthz" 300
    expect "$name: served again once the connections close" test $? = 0
done

# ---- rate limits ----------------------------------------------------------------
# (start_daemon's readiness polls take tokens too: so a burst of 10, and
# the check is that 200s come first, then only 429s)
start_daemon rate --rate-limit-per-min 1 --rate-limit-burst 10 --rate-limit-loopback
codes=
for _ in $(seq 12); do call GET /healthz; codes="$codes $code"; done
expect "rate: the burst passes, then every request gets 429 ($codes)" \
    grep -Eq '^( 200)+( 429)+$' <<<"$codes"
expect "rate: the 429 has Retry-After (a minute's token: $(header retry-after) s)" \
    test "$(header retry-after)" -ge 1
expect "rate: the 429 names the setting" grep -q rate_limit_per_min "$tmp/body"
start_daemon rate_loopback --rate-limit-per-min 1 --rate-limit-burst 1
codes=
for _ in 1 2 3; do call GET /healthz; codes="$codes $code"; done
expect "rate: loopback clients are not limited by default ($codes)" test "$codes" = " 200 200 200"

# ---- header limits ------------------------------------------------------------
start_daemon headers --max-headers 32 --max-header-bytes 8K
p=$(port_of)
expect "10 header fields pass" test "$("${HOSTILE[@]}" headers "$p" 10 10)" = 200
expect "40 header fields (max_headers 32) get 431" test "$("${HOSTILE[@]}" headers "$p" 40 10)" = 431
expect "a 10 KB header (max_header_bytes 8K) gets 431" test "$("${HOSTILE[@]}" headers "$p" 1 10000)" = 431
out=$("${HOSTILE[@]}" headers "$p" 1 200000)
expect "a 200 KB header is refused ($out)" test "$out" = 431 -o "$out" = closed
call GET /healthz -H "X-Big: $(head -c 9000 /dev/zero | tr '\0' a)"
expect "the 431 is problem+json naming max_header_bytes" grep -q max_header_bytes "$tmp/body"
call GET /healthz
expect "still serving afterwards" test "$code" = 200

finish
