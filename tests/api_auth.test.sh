#!/usr/bin/env bash
# api_auth.test.sh - API keys and where the daemon may listen: keys made by
# `codid keys create` (printed once, stored hashed), 401 without or with a
# bad key, 403 for a generate key on admin routes, public probes, revocation
# seen by a running daemon, and the refusal to listen beyond loopback
# without a key unless --insecure.
source "$(dirname "$0")/tools/api_lib.sh"

data=$tmp/keys/var
mkdir -p "$data"

# ---- no key: loopback only, unless --insecure --------------------------------
"$BIN" serve --listen 0.0.0.0:0 --data-dir "$tmp/open" --model random-tiny >/dev/null 2>"$tmp/err" &
p=$!
daemon_pids+=("$p")
wait "$p"
rc=$?
if [ $rc = 2 ] && grep -q 'no API key is configured' "$tmp/err" && grep -q -- '--insecure' "$tmp/err"; then
    ok refuses_public_listen_without_key
else bad refuses_public_listen_without_key "exit $rc: $(tail -n 3 "$tmp/err")"; fi

start_daemon insecure --listen 0.0.0.0:0 --insecure
# the 0.0.0.0 listener is reached over loopback
call GET /v1/models
expect insecure_serves_without_key test "$code" = 200
stop_daemon

# ---- keys ---------------------------------------------------------------------
admin=$("$BIN" keys create --scope admin --data-dir "$data" 2>"$tmp/kerr")
gen=$("$BIN" keys create --scope generate --data-dir "$data" 2>>"$tmp/kerr")
if [[ $admin =~ ^codid_[0-9a-f]{12}_[0-9a-f]{48}$ ]] && [[ $gen =~ ^codid_[0-9a-f]{12}_[0-9a-f]{48}$ ]] &&
    [ "$admin" != "$gen" ]; then
    ok keys_created
else bad keys_created "'$admin' '$gen' $(cat "$tmp/kerr")"; fi
if ! grep -rqa "${admin#codid_????????????_}" "$data" &&
    /usr/bin/python3 -c 'import sqlite3,sys; print("\n".join(r[0] for r in sqlite3.connect(sys.argv[1]).execute("SELECT hash FROM api_keys")))' \
        "$data/codid.db" 2>/dev/null | grep -qx "$(printf '%s' "$admin" | sha256sum | cut -d' ' -f1)"; then
    ok key_stored_as_sha256_only
else bad key_stored_as_sha256_only "secret found in the data dir, or no matching hash"; fi
"$BIN" keys create --scope root --data-dir "$data" >/dev/null 2>&1
expect bad_scope_exit_2 test $? = 2

# keys exist now, so a public address is allowed
start_daemon keys --data-dir "$data" --listen 0.0.0.0:0
call GET /healthz
expect probes_are_public test "$code" = 200
call GET /readyz
expect readyz_is_public test "$code" = 200
call GET /v1/models
if [ "$code" = 401 ] && [[ $(header www-authenticate) == Bearer* ]] && pycheck '"API key" in d["detail"]'; then
    ok no_key_401
else bad no_key_401 "$code $(cat "$tmp/body")"; fi
call GET /v1/models -H "Authorization: Bearer codid_000000000000_$(printf '0%.0s' $(seq 48))"
expect unknown_key_401 pycheck 'd["status"] == 401 and "unknown" in d["detail"]'
call GET /v1/models -H "Authorization: Bearer ${admin}x"
expect malformed_key_401 test "$code" = 401
call GET /v1/models -H "Authorization: Basic $(printf 'a:b' | base64)"
expect basic_auth_401 test "$code" = 401
# same prefix, other secret: the hash comparison refuses it
forged=${gen:0:19}$(printf 'f%.0s' $(seq 48))
call GET /v1/models -H "Authorization: Bearer $forged"
expect forged_secret_401 test "$code" = 401

call GET /v1/models -H "Authorization: Bearer $gen"
expect generate_key_reads_models test "$code" = 200
call POST /v1/generate -H "X-API-Key: $gen" -d '{"steps":2,"seed":1}'
expect generate_key_generates pycheck 'len(d["images"]) == 1'
call GET /metrics -H "Authorization: Bearer $gen"
expect generate_key_metrics_403 pycheck 'd["status"] == 403 and "admin" in d["detail"]'
call DELETE /v1/adapters/anything -H "Authorization: Bearer $gen"
expect generate_key_delete_403 test "$code" = 403
call POST /v1/datasets -H "Authorization: Bearer $gen" -H 'Content-Type: application/json' -d '{"folder":"/tmp"}'
expect generate_key_folder_403 pycheck 'd["status"] == 403 and d["detail"].startswith("folder:")'
call GET /metrics -H "Authorization: Bearer $admin"
expect admin_key_metrics test "$code" = 200
call DELETE /v1/adapters/anything -H "Authorization: Bearer $admin"
expect admin_key_delete_reaches_handler test "$code" = 404

# a 401 is answered before a large body is read
head -c 5000000 /dev/zero >"$tmp/zeros"
call POST /v1/datasets -H 'Content-Type: application/x-tar' --data-binary @"$tmp/zeros"
expect unauthenticated_upload_401 test "$code" = 401

# what a generate key sees: no server path (dataset, adapter, job result,
# event stream); an admin key sees them
make_png "$tmp/p1.png" 16 16 3 1
make_png "$tmp/p2.png" 16 16 3 2
G=(-H "Authorization: Bearer $gen") A=(-H "Authorization: Bearer $admin")
call POST /v1/datasets "${G[@]}" -F name=keyed -F "files=@$tmp/p1.png" -F "files=@$tmp/p2.png" -F size=16
expect generate_key_uploads test "$code" = 201
no_paths() { ! grep -q '"path"\|adapter_path\|model_path' "$tmp/body" && ! grep -qF "$data" "$tmp/body"; }
expect upload_answer_has_no_path no_paths
call POST /v1/jobs "${G[@]}" -H 'Content-Type: application/json' \
    -d '{"kind":"distill","dataset":"keyed","task":{"name":"sr","factor":2},"adapter_kind":"lite","steps":2,"batch_size":2,"name":"keyed-sr"}'
job=$(jget 'd["id"]')
auth_args=("${A[@]}")
wait_job "$job" succeeded failed && [ "$(curl -s "${A[@]}" "$base/v1/jobs/$job" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)[\"status\"])")" = succeeded ]
expect keyed_job_succeeds test $? = 0
call GET "/v1/jobs/$job" "${G[@]}"
adapter=$(jget 'd["result"]["adapter_id"]')
for path in /v1/datasets /v1/datasets/keyed /v1/adapters "/v1/adapters/$adapter" "/v1/jobs/$job" /v1/jobs; do
    call GET "$path" "${G[@]}"
    expect "generate_key_sees_no_server_path $path ($code)" test "$code" = 200
    expect "generate_key_sees_no_server_path $path" no_paths
done
curl -s -N --max-time 30 "${G[@]}" "$base/v1/jobs/$job/events" >"$tmp/body"
expect "generate_key_event_stream_has_no_server_path" no_paths
expect "the event stream was read" grep -q 'event: state' "$tmp/body"
call GET "/v1/adapters/$adapter" "${A[@]}"
expect admin_key_sees_the_adapter_path pycheck 'd["path"].endswith(".safetensors")'
call GET /v1/datasets/keyed "${A[@]}"
expect admin_key_sees_the_dataset_path pycheck 'd["path"] is not None'
auth_args=()

# revocation is seen at the next request
gen_id=$("$BIN" keys list --data-dir "$data" | awk -v p="${gen:6:12}" '$2 ~ p {print $1}')
"$BIN" keys revoke "$gen_id" --data-dir "$data" 2>/dev/null
call GET /v1/models -H "Authorization: Bearer $gen"
expect revoked_key_401 test "$code" = 401
"$BIN" keys list --data-dir "$data" | grep -q "^$gen_id.*revoked$"
expect keys_list_shows_revoked test $? = 0

stop_daemon
expect sigterm_clean_exit test "$stop_rc" = 0
finish
