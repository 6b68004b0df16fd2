#!/usr/bin/env bash
# api_basic.test.sh - the daemon's shell and first endpoints, over real HTTP.
#
# Starts build/codid serve with the tiny random model on a free loopback port
# (port 0; the bound port is read from the log) and a temporary data dir,
# then checks probes, /v1/models, /v1/generate (PNG and JSON, determinism,
# every validation error), routing errors, the body cap, bad start-up
# settings, and a clean exit on SIGTERM.
source "$(dirname "$0")/tools/lib.sh"

# From the temp dir, so that no models/cifar10-base is found by accident.
(cd "$tmp" && exec "$BIN" serve --listen 127.0.0.1:0 --data-dir "$tmp/var" \
    --model random-tiny --max-body-bytes 64K --log-level info) 2>"$tmp/log" &
pid=$!

if ! await_port "$tmp/log"; then
    bad start "no 'listening on' line; log:"
    sed 's/^/    /' "$tmp/log"
    finish
fi
base=http://127.0.0.1:$port
await_ok "$base/healthz" || { bad start "/healthz never answered"; finish; }
# /healthz answers while the model loads, /readyz and generation once it is
# loaded: wait for that, so that no check below races with the load.
await_ok "$base/readyz" || { bad start "/readyz never answered 200; log: $(tail -n 5 "$tmp/log")"; finish; }

# SIGTERM and SIGINT are blocked in every thread, the libraries' own
# included, so that only the thread in sigwait() takes them (a thread with
# them open would end the process with 143 instead of a clean stop).
open_threads=0 threads=0
for st in /proc/"$pid"/task/*/status; do
    blk=$(awk '/^SigBlk/ {print $2}' "$st" 2>/dev/null) || continue
    [ -n "$blk" ] || continue
    threads=$((threads + 1))
    (((0x$blk >> 14) & 1 && (0x$blk >> 1) & 1)) || open_threads=$((open_threads + 1))
done
if [ "$threads" -gt 2 ] && [ "$open_threads" -le 1 ]; then ok "stop_signals_blocked_in_all_threads ($threads threads)"
else bad stop_signals_blocked_in_all_threads "$open_threads of $threads threads take SIGTERM/SIGINT"; fi
if [ "$(cat /proc/"$pid"/comm)" = codid ]; then ok process_named_codid
else bad process_named_codid "comm is '$(cat /proc/"$pid"/comm)'"; fi

# call METHOD PATH [curl args]: status in $code, body in $tmp/body,
# headers in $tmp/hdr.
call() {
    local method=$1 path=$2
    shift 2
    code=$(curl -s -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' -X "$method" "$@" "$base$path")
}
# header NAME: its value in the last response
header() { tr -d '\r' <"$tmp/hdr" | awk -v n="$(tr 'A-Z' 'a-z' <<<"$1")" -F': ' 'tolower($1) == n {print $2}'; }
# pycheck EXPR [ARGS]: EXPR over d (the JSON body) and argv, true or not
pycheck() {
    python3 - "$tmp/body" "${@:2}" <<EOF 2>/dev/null
import json, sys
d = json.load(open(sys.argv[1]))
argv = sys.argv[2:]
sys.exit(0 if ($1) else 1)
EOF
}
# png_size FILE: "WIDTH HEIGHT" when FILE is a PNG, else nothing
png_size() {
    python3 - "$1" <<'EOF'
import struct, sys
b = open(sys.argv[1], 'rb').read()
if b[:8] == b'\x89PNG\r\n\x1a\n' and b[12:16] == b'IHDR':
    print(*struct.unpack('>II', b[16:24]))
EOF
}

# ---- probes ---------------------------------------------------------------
call GET /healthz
if [ "$code" = 200 ] && pycheck 'd == {"status": "ok"}' && [ "$(header content-type)" = application/json ]; then
    ok healthz
else bad healthz "$code $(cat "$tmp/body")"; fi

rid1=$(header x-request-id)
call GET /healthz
rid2=$(header x-request-id)
if [[ $rid1 =~ ^[0-9a-f]{16}$ ]] && [[ $rid2 =~ ^[0-9a-f]{16}$ ]] && [ "$rid1" != "$rid2" ]; then
    ok request_id_header
else bad request_id_header "'$rid1' '$rid2'"; fi
if await_log "$tmp/log" "GET /healthz 200 .* id=$rid1"; then ok request_log_line
else bad request_log_line "no log line for id $rid1"; fi

call GET /readyz
if [ "$code" = 200 ] && pycheck 'd["status"] == "ready" and isinstance(d["model"], str) and d["model"]'; then
    ok readyz
else bad readyz "$code $(cat "$tmp/body")"; fi

# ---- models ---------------------------------------------------------------
call GET /v1/models
if [ "$code" = 200 ] && pycheck '
len(d["models"]) == 1 and all(k in d["models"][0] for k in
  ["id", "name", "trained", "sample_size", "in_channels", "out_channels", "parameters",
   "memory_bytes", "device", "prediction_type", "train_timesteps", "hash", "config"])'; then
    ok models_fields
else bad models_fields "$code $(cat "$tmp/body")"; fi
if pycheck '[m for m in d["models"]
 if m["trained"] is False and "random" in m["note"] and m["sample_size"] == 16
 and m["config"]["sample_size"] == 16 and m["config"]["block_out_channels"] == [32, 64]
 and m["parameters"] > 0 and m["memory_bytes"] > 0 and m["device"] == "cpu"
 and m["prediction_type"] == "v_prediction" and len(m["hash"]) == 16]'; then
    ok models_untrained_tiny
else bad models_untrained_tiny "$(cat "$tmp/body")"; fi

# ---- generate -------------------------------------------------------------
call POST /v1/generate -H 'Accept: image/png' -d '{"n":1,"steps":3,"seed":42}'
cp "$tmp/body" "$tmp/a.png"
if [ "$code" = 200 ] && [ "$(header content-type)" = image/png ] && [ "$(header x-seed)" = 42 ] &&
    [ "$(png_size "$tmp/a.png")" = "16 16" ]; then
    ok generate_png
else bad generate_png "$code $(header content-type) seed=$(header x-seed) size=$(png_size "$tmp/a.png")"; fi

call POST /v1/generate -H 'Accept: image/png' -d '{"n":1,"steps":3,"seed":42}'
if [ "$code" = 200 ] && cmp -s "$tmp/body" "$tmp/a.png"; then ok same_seed_same_bytes
else bad same_seed_same_bytes "$code, or the bytes differ"; fi

call POST /v1/generate -H 'Accept: image/png' -d '{"n":1,"steps":3,"seed":43}'
if [ "$code" = 200 ] && [ "$(png_size "$tmp/body")" = "16 16" ] && ! cmp -s "$tmp/body" "$tmp/a.png"; then
    ok other_seed_other_bytes
else bad other_seed_other_bytes "$code, or seed 43 gave seed 42's image"; fi

call POST /v1/generate -d '{"n":2,"steps":3,"seed":42,"eta":0}'
if [ "$code" = 200 ] && [ "$(header content-type)" = application/json ] && pycheck '
len(d["images"]) == 2 and d["seed"] == 42 and d["steps"] == 3
and set(d["timings"]) == {"queue_ms", "inference_ms", "encode_ms", "total_ms"}'; then
    ok generate_json_two
else bad generate_json_two "$code $(head -c 300 "$tmp/body")"; fi
# image 0 of seed 42 is the PNG of seed 42 alone; image 1 is seed 43's
python3 - "$tmp/body" "$tmp" <<'EOF'
import base64, json, sys
d = json.load(open(sys.argv[1]))
for i, img in enumerate(d["images"]):
    open(f"{sys.argv[2]}/j{i}.png", "wb").write(base64.b64decode(img))
EOF
if [ "$(png_size "$tmp/j1.png")" = "16 16" ] && cmp -s "$tmp/j0.png" "$tmp/a.png" &&
    ! cmp -s "$tmp/j0.png" "$tmp/j1.png"; then
    ok json_images_are_seeded_pngs
else bad json_images_are_seeded_pngs "image 0 differs from the PNG of seed 42, or 0 == 1"; fi

call POST /v1/generate -d '{"steps":2}'
seed=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seed"])' "$tmp/body" 2>/dev/null)
if [ "$code" = 200 ] && [[ $seed =~ ^[0-9]+$ ]] && [ "$seed" -lt 9007199254740992 ] &&
    [ "$(header x-seed)" = "$seed" ] && pycheck 'len(d["images"]) == 1'; then
    ok random_seed_returned
else bad random_seed_returned "$code seed='$seed' header=$(header x-seed)"; fi

call POST /v1/generate -H 'Accept: image/png' -d '{"n":2,"steps":2}'
if [ "$code" = 406 ] && [ "$(header content-type)" = application/problem+json ]; then
    ok png_for_two_images_406
else bad png_for_two_images_406 "$code"; fi

# expect_400 NAME BODY FIELD: a 400 problem+json whose detail names FIELD
expect_400() {
    call POST /v1/generate -d "$2"
    if [ "$code" = 400 ] && [ "$(header content-type)" = application/problem+json ] && pycheck '
set(d) >= {"type", "title", "status", "detail"} and d["status"] == 400
and d["title"] == "Bad Request" and d["detail"].startswith(argv[0])' "$3"; then
        ok "$1"
    else bad "$1" "$code $(cat "$tmp/body")"; fi
}
expect_400 invalid_json '{"n":1,' body
expect_400 not_an_object '[1,2]' body
expect_400 n_zero '{"n":0}' n
expect_400 n_over_max_n '{"n":17}' n
expect_400 steps_zero '{"steps":0}' steps
expect_400 steps_over_max '{"steps":1001}' steps
expect_400 seed_negative '{"seed":-1}' seed
expect_400 seed_too_big '{"seed":9007199254740992}' seed
expect_400 seed_fraction '{"seed":1.5}' seed
expect_400 steps_string '{"steps":"3"}' steps
expect_400 n_bool '{"n":true}' n
expect_400 eta_out_of_range '{"eta":1.5}' eta
expect_400 unknown_field '{"n":1,"colour":"red"}' colour
expect_400 repeated_field '{"n":1,"n":2}' n
call POST /v1/generate -d '{"n":17}'
if pycheck '"max_n" in d["detail"]'; then ok n_names_max_n; else bad n_names_max_n "$(cat "$tmp/body")"; fi

# ---- routing and limits ---------------------------------------------------
call GET /v1/nothing-here
if [ "$code" = 404 ] && [ "$(header content-type)" = application/problem+json ] &&
    pycheck 'd["status"] == 404 and d["title"] == "Not Found"'; then
    ok unknown_route_404
else bad unknown_route_404 "$code $(cat "$tmp/body")"; fi

call GET /v1/generate
if [ "$code" = 405 ] && [ "$(header allow)" = POST ] && pycheck 'd["status"] == 405'; then
    ok wrong_method_405
else bad wrong_method_405 "$code allow='$(header allow)'"; fi
call DELETE /healthz
if [ "$code" = 405 ] && [ "$(header allow)" = GET ]; then ok wrong_method_405_allow_get
else bad wrong_method_405_allow_get "$code allow='$(header allow)'"; fi

head -c 70000 /dev/zero | tr '\0' ' ' >"$tmp/big"
call POST /v1/generate --data-binary @"$tmp/big"
if [ "$code" = 413 ] && pycheck 'd["status"] == 413 and "max_body_bytes" in d["detail"]'; then
    ok oversized_body_413
else bad oversized_body_413 "$code $(cat "$tmp/body")"; fi
call POST /v1/generate -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/big"
if [ "$code" = 413 ] && pycheck '"max_body_bytes" in d["detail"]'; then ok oversized_chunked_413
else bad oversized_chunked_413 "$code $(cat "$tmp/body")"; fi
# whitespace padding under the cap is still a valid body
head -c 60000 /dev/zero | tr '\0' ' ' >"$tmp/padded"
echo '{"n":1,"steps":2,"seed":3}' >>"$tmp/padded"
call POST /v1/generate --data-binary @"$tmp/padded"
if [ "$code" = 200 ]; then ok body_under_cap_accepted; else bad body_under_cap_accepted "$code"; fi

# ---- start-up errors ------------------------------------------------------
"$BIN" serve --threads many --data-dir "$tmp/var2" >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc = 2 ] && grep -q -- '--threads' "$tmp/err"; then ok bad_flag_exit_2
else bad bad_flag_exit_2 "exit $rc: $(cat "$tmp/err")"; fi
printf 'max_batch = 4\nmax_bacth = 5\n' >"$tmp/codid.conf"
CODID_CONFIG=$tmp/codid.conf "$BIN" serve --data-dir "$tmp/var2" >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc = 2 ] && grep -q "codid.conf:2" "$tmp/err" && grep -q max_bacth "$tmp/err"; then
    ok bad_config_file_exit_2
else bad bad_config_file_exit_2 "exit $rc: $(cat "$tmp/err")"; fi
(cd "$tmp" && "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$tmp/var2" --model random-tiny) \
    >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc = 2 ] && grep -qi "in use" "$tmp/err"; then ok bind_failure_exit_2
else bad bind_failure_exit_2 "exit $rc: $(cat "$tmp/err")"; fi

# ---- shutdown -------------------------------------------------------------
stop_daemon
if [ $stop_rc = 0 ] && grep -q "SIGTERM: shutting down" "$tmp/log" && grep -q "stopped" "$tmp/log"; then
    ok sigterm_exit_0
else bad sigterm_exit_0 "exit $stop_rc"; fi

finish
