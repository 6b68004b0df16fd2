#!/usr/bin/env bash
# config_precedence.test.sh - settings through the real binary: flag >
# environment > config file > default, as `codid config` reports them (value
# and origin) and as `codid serve` applies them; refusals that name their
# source; and every setting documented in deploy/codid.conf and README.md.
source "$(dirname "$0")/tools/lib.sh"
clear_codid_env

# setting FILE KEY: "VALUE|ORIGIN" from `codid config` output in FILE
setting() {
    awk -v k="$2" '$1 == k {
        line = $0; sub(/^[^=]*= */, "", line)
        i = index(line, " # "); value = substr(line, 1, i - 1); origin = substr(line, i + 3)
        sub(/ +$/, "", value); print value "|" origin }' "$1"
}
# expect NAME FILE KEY VALUE ORIGIN
expect() {
    local got
    got=$(setting "$2" "$3")
    if [ "$got" = "$4|$5" ]; then ok "$1"; else bad "$1" "$3: got '$got', expected '$4|$5'"; fi
}

# ---- defaults -----------------------------------------------------------------
(cd "$tmp" && "$BIN" config) >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ $rc = 0 ] && [ -s "$tmp/out" ] && ! grep -qv '# default$' "$tmp/out"; then ok all_defaults
else bad all_defaults "exit $rc: $(grep -v '# default$' "$tmp/out" | head -3) $(cat "$tmp/err")"; fi
expect default_max_batch "$tmp/out" max_batch 8 default
expect default_listen "$tmp/out" listen 127.0.0.1:8080 default
expect default_size_suffix "$tmp/out" max_body_bytes 8M default
expect default_log_level "$tmp/out" log_level info default

# ---- each layer over the one below ------------------------------------------
cat >"$tmp/codid.conf" <<'EOF'
# settings for the precedence test
threads = 3
max_batch = 4
queue_max = 5
max_n = 6
log_level = warn
EOF
CODID_MAX_BATCH=7 CODID_QUEUE_MAX=8 CODID_MAX_STEPS=9 \
    "$BIN" config --config "$tmp/codid.conf" --queue-max 10 --max-body-bytes=2048 >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc = 0 ] || bad layered_exit "exit $rc: $(cat "$tmp/err")"
expect file_over_default "$tmp/out" threads 3 "file $tmp/codid.conf"
expect env_over_file "$tmp/out" max_batch 7 "env CODID_MAX_BATCH"
expect flag_over_env_and_file "$tmp/out" queue_max 10 "flag --queue-max"
expect env_over_default "$tmp/out" max_steps 9 "env CODID_MAX_STEPS"
expect flag_over_default "$tmp/out" max_body_bytes 2K "flag --max-body-bytes"
expect file_level "$tmp/out" log_level warn "file $tmp/codid.conf"
expect untouched_default "$tmp/out" max_pixels 1M default
expect config_key_from_flag "$tmp/out" config "$tmp/codid.conf" "flag --config"

# The file named by --config beats the one named by CODID_CONFIG.
printf 'max_n = 2\n' >"$tmp/other.conf"
CODID_CONFIG=$tmp/other.conf "$BIN" config --config "$tmp/codid.conf" >"$tmp/out" 2>&1
expect config_flag_over_config_env "$tmp/out" max_n 6 "file $tmp/codid.conf"
CODID_CONFIG=$tmp/other.conf "$BIN" config >"$tmp/out" 2>&1
expect config_env_names_file "$tmp/out" max_n 2 "file $tmp/other.conf"

# ---- refusals name their source, and exit 2 as serve does ----------------------
printf 'threads = 1\nmax_n = lots\n' >"$tmp/bad.conf"
"$BIN" config --config "$tmp/bad.conf" >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc = 2 ] && grep -q "bad.conf:2" "$tmp/err" && grep -q max_n "$tmp/err"; then ok bad_file_value
else bad bad_file_value "exit $rc: $(cat "$tmp/err")"; fi
CODID_MAX_BATCH=0 "$BIN" config >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc = 2 ] && grep -q CODID_MAX_BATCH "$tmp/err"; then ok bad_env_value
else bad bad_env_value "exit $rc: $(cat "$tmp/err")"; fi
"$BIN" config --max-bacth 3 >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc = 2 ] && grep -q -- --max-bacth "$tmp/err"; then ok unknown_flag
else bad unknown_flag "exit $rc: $(cat "$tmp/err")"; fi

# ---- serve applies the same order ---------------------------------------------
# File: a listen address and data_dir that must lose, a max_n that must win.
cat >"$tmp/serve.conf" <<EOF
listen = 127.0.0.1:1
data_dir = $tmp/from-file
model = random-tiny
max_n = 2
EOF
(cd "$tmp" && CODID_DATA_DIR=$tmp/from-env exec "$BIN" serve --config "$tmp/serve.conf" \
    --listen 127.0.0.1:0) 2>"$tmp/log" &
pid=$!
await_port "$tmp/log"
if [ -n "$port" ] && [ "$port" != 1 ] && grep -q "(data in $tmp/from-env)" "$tmp/log" &&
    [ -d "$tmp/from-env" ] && [ ! -e "$tmp/from-file" ]; then
    ok serve_flag_and_env_win
else bad serve_flag_and_env_win "port '$port'; log: $(head -c 600 "$tmp/log")"; fi
if [ -n "$port" ]; then
    await_ok "http://127.0.0.1:$port/readyz" || bad serve_ready "/readyz never answered 200; log: $(tail -n 5 "$tmp/log")"
    code=$(curl -s -o "$tmp/body" -w '%{http_code}' -d '{"n":3,"steps":1}' "http://127.0.0.1:$port/v1/generate")
    if [ "$code" = 400 ] && grep -q max_n "$tmp/body"; then ok serve_file_value_applies
    else bad serve_file_value_applies "$code $(cat "$tmp/body")"; fi
fi
stop_daemon 2>/dev/null

# ---- every setting is documented ------------------------------------------------
"$BIN" config >"$tmp/out" 2>/dev/null
keys=$(awk '{print $1}' "$tmp/out")
missing=
for k in $keys; do
    [ "$k" = config ] && continue # names the file; not a key inside it
    grep -Eq "^(# )?$k =" deploy/codid.conf || missing="$missing $k"
done
if [ -n "$keys" ] && [ -z "$missing" ]; then ok example_config_has_every_key
else bad example_config_has_every_key "not in deploy/codid.conf:$missing"; fi
missing=
for k in $keys; do
    [ "$k" = config ] && continue # the text under the table names it
    grep -q "^| \`$k\`" README.md || missing="$missing $k"
done
if [ -z "$missing" ]; then ok readme_table_has_every_key
else bad readme_table_has_every_key "not in README.md's table:$missing"; fi
# The example config loads as it is, and sets what a service needs.
(cd "$tmp" && "$BIN" config --config "$ROOT/deploy/codid.conf") >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ $rc = 0 ] && [ "$(setting "$tmp/out" data_dir)" = "/var/lib/codid|file $ROOT/deploy/codid.conf" ] &&
    [ "$(setting "$tmp/out" listen)" = "127.0.0.1:8080|file $ROOT/deploy/codid.conf" ]; then
    ok example_config_loads
else bad example_config_loads "exit $rc: $(cat "$tmp/err")"; fi
# Every flag of serve --help is a key.
"$BIN" serve --help >"$tmp/help" 2>&1
flags=$(grep -oE '^  --[a-z0-9-]+' "$tmp/help" | sed 's/^  --//' | tr - _)
missing=
for f in $flags; do grep -qx "$f" <<<"$keys" || missing="$missing $f"; done
if [ -n "$flags" ] && [ -z "$missing" ]; then ok every_flag_is_a_key
else bad every_flag_is_a_key "flags without a key:$missing"; fi

finish
