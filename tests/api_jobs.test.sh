#!/usr/bin/env bash
# api_jobs.test.sh - the resources over real HTTP: datasets (built-in,
# multipart, tar, folder), jobs (submit, list and paging, get, cancel, the
# event stream, the loss curve as CSV and PNG), adapters (list, get, lazy
# loading, delete), generation with an adapter (JSON, data URL, multipart,
# PNG answer, preprocessing, determinism), /metrics and CORS. Every JSON
# answer, and every event of the stream, is held to openapi.yaml.
source "$(dirname "$0")/tools/api_lib.sh"

start_daemon main --workers 1 --cors-origins 'https://app.example'
make_png "$tmp/a.png" 16 16 3 1
make_png "$tmp/b.png" 24 20 3 2
make_png "$tmp/low.png" 4 4 3 3
make_png "$tmp/gray.png" 16 16 1 4
make_png "$tmp/mask.png" 16 16 1 5

# ---- datasets -------------------------------------------------------------
call POST /v1/datasets -H 'Content-Type: application/json' \
    -d '{"builtin":"cifar10","split":"test","name":"small","limit":12}'
expect dataset_builtin_201 pycheck 'd["name"] == "small" and d["count"] == 12 and d["size"] == 16
    and d["channels"] == 3 and d["split"] == "test" and d["source"] == "cifar10" and d["labelled"]'
[ "$code" = 201 ] && [ "$(header location)" = "/v1/datasets/$(jget 'd["id"]')" ] && ok dataset_location ||
    bad dataset_location "$(header location)"
ds_id=$(jget 'd["id"]')

call POST /v1/datasets -F name=uploaded -F "files=@$tmp/a.png" -F "files=@$tmp/b.png" -F size=8
expect dataset_multipart_201 pycheck 'd["count"] == 2 and d["size"] == 8 and d["source"] == "upload"'
[ "$code" = 201 ] || bad dataset_multipart_status "$code"

/usr/bin/python3 - "$tmp" <<'PY'
import io, sys, tarfile
d = sys.argv[1]
with tarfile.open(d + "/set.tar", "w") as t:
    for name in ("x/one.png", "x/two.png", "x/._hidden.png"):
        data = open(d + "/a.png", "rb").read()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
PY
call POST '/v1/datasets?name=from-tar' -H 'Content-Type: application/x-tar' --data-binary @"$tmp/set.tar"
expect dataset_tar_201 pycheck 'd["name"] == "from-tar" and d["count"] == 2'

mkdir -p "$tmp/folder"
cp "$tmp/a.png" "$tmp/b.png" "$tmp/folder/"
echo junk >"$tmp/folder/notes.txt"
call POST /v1/datasets -H 'Content-Type: application/json' -d "{\"folder\":\"$tmp/folder\",\"name\":\"folder-set\"}"
expect dataset_folder_201 pycheck 'd["count"] == 2 and d["skipped"] >= 1 and len(d["warnings"]) >= 1'

call GET /v1/datasets
expect datasets_list pycheck '[x["name"] for x in d["datasets"]] == ["small", "uploaded", "from-tar", "folder-set"]'
call GET /v1/datasets/small
expect dataset_get_by_name pycheck "d['id'] == $ds_id"
call GET "/v1/datasets/$ds_id"
expect dataset_get_by_id pycheck 'd["name"] == "small"'
call DELETE /v1/datasets/from-tar
expect dataset_delete_204 test "$code" = 204
call GET /v1/datasets/from-tar
expect dataset_gone_404 test "$code" = 404

# ---- jobs -------------------------------------------------------------------
job() { # NAME STEPS [EXTRA JSON FIELDS]
    call POST /v1/jobs -H 'Content-Type: application/json' -d "{\"kind\":\"distill\",\"dataset\":\"small\",
        \"task\":{\"name\":\"sr\",\"factor\":4},\"adapter_kind\":\"lite\",\"steps\":$2,\"batch_size\":2,
        \"n_grid\":8,\"name\":\"$1\"${3:-}}"
}
job sr4 20
expect job_202 pycheck 'd["status"] in ("queued", "running") and d["kind"] == "distill"
    and d["links"]["events"] == "/v1/jobs/%d/events" % d["id"]'
j1=$(jget 'd["id"]')
[ "$(header location)" = "/v1/jobs/$j1" ] && ok job_location || bad job_location "$(header location)"

# the stream runs until the job's end; curl -N prints events as they come
curl -sN "$base/v1/jobs/$j1/events" -D "$tmp/sse_hdr" -o "$tmp/sse" --max-time 600
if wait_job "$j1" succeeded; then ok job_succeeded; else bad job_succeeded "$(curl -s "$base/v1/jobs/$j1")"; fi
if tr -d '\r' <"$tmp/sse_hdr" | grep -qi '^content-type: text/event-stream'; then ok sse_content_type
else bad sse_content_type "$(cat "$tmp/sse_hdr")"; fi
/usr/bin/python3 - "$tmp/sse" <<'PY' >"$tmp/sse_check" 2>&1
import json, sys
sys.path.insert(0, "tests/tools")
import yaml, openapi_check
doc = yaml.safe_load(open("openapi.yaml"))
v = openapi_check.Validator(doc)
schemas = {"job": "Job", "progress": "ProgressEvent"}
events, cur = [], {}
for line in open(sys.argv[1]).read().split("\n"):
    if line == "":
        if cur: events.append(cur)
        cur = {}
    elif not line.startswith(":"):
        k, _, val = line.partition(": ")
        cur[k] = val
kinds = [e.get("event") for e in events]
errors = []
for e in events:
    data = json.loads(e["data"])
    name = schemas.get(e["event"])
    if name:
        errors += v.errors({"$ref": "#/components/schemas/" + name}, data)
    if e["event"] == "state" and data.get("status") not in ("queued", "running", "succeeded", "failed", "cancelled"):
        errors.append("bad state " + e["data"])
ids = [int(e["id"]) for e in events if "id" in e]
ok = (kinds[0] == "job" and "progress" in kinds and kinds[-1] == "state"
      and json.loads(events[-1]["data"])["status"] == "succeeded" and "result" in kinds
      and ids == sorted(ids) and not errors)
print(kinds, errors[:3])
sys.exit(0 if ok else 1)
PY
if [ $? = 0 ]; then ok sse_events_in_order_and_valid; else bad sse_events_in_order_and_valid "$(cat "$tmp/sse_check")"; fi
# resuming after the last event sends only the job and the end
last_id=$(grep '^id: ' "$tmp/sse" | tail -n 1 | cut -d' ' -f2)
curl -sN "$base/v1/jobs/$j1/events" -H "Last-Event-ID: $last_id" -o "$tmp/sse2" --max-time 60
if ! grep -q '^id: ' "$tmp/sse2" && grep -q '^event: job' "$tmp/sse2"; then ok sse_resume_last_event_id
else bad sse_resume_last_event_id "$(head -c 300 "$tmp/sse2")"; fi

call GET "/v1/jobs/$j1"
expect job_get_result pycheck 'd["status"] == "succeeded" and d["progress"]["step"] == 20
    and isinstance(d["result"]["adapter_id"], int) and d["links"]["adapter"].startswith("/v1/adapters/")'
call GET "/v1/jobs/$j1/loss"
if [ "$code" = 200 ] && [[ $(header content-type) == text/csv* ]] && head -n 1 "$tmp/body" | grep -qx 'step,loss,loss_smooth,lr' &&
    [ "$(tail -n +2 "$tmp/body" | wc -l)" -ge 2 ] && tail -n 1 "$tmp/body" | grep -q '^20,'; then
    ok loss_csv
else bad loss_csv "$code $(head -c 200 "$tmp/body")"; fi
call GET "/v1/jobs/$j1/loss?format=png&width=320&height=200"
size=$(/usr/bin/python3 -c 'import struct,sys; b=open(sys.argv[1],"rb").read(); print(*struct.unpack(">II", b[16:24]) if b[:8]==b"\x89PNG\r\n\x1a\n" else "")' "$tmp/body")
if [ "$code" = 200 ] && [ "$(header content-type)" = image/png ] && [ "$size" = "320 200" ]; then ok loss_png
else bad loss_png "$code $(header content-type) size=$size"; fi
call GET "/v1/jobs/$j1/loss" -H 'Accept: image/png'
expect loss_png_by_accept test "$(header content-type)" = image/png

# a long job runs while a second waits: cancel both
job long 100000
j2=$(jget 'd["id"]')
job waiting 5
j3=$(jget 'd["id"]')
wait_job "$j2" running
call POST "/v1/jobs/$j3/cancel"
expect cancel_queued pycheck 'd["status"] == "cancelled"'
call POST "/v1/jobs/$j2/cancel"
expect cancel_running pycheck 'd["cancel_requested"] is True'
if wait_job "$j2" cancelled; then ok running_job_cancelled; else bad running_job_cancelled "$(curl -s "$base/v1/jobs/$j2")"; fi
call POST "/v1/jobs/$j2/cancel"
expect cancel_finished_409 test "$code" = 409

call GET '/v1/jobs?limit=2'
expect jobs_page_1 pycheck "[j['id'] for j in d['jobs']] == [$j3, $j2] and d['next_cursor'] == $j2"
call GET "/v1/jobs?limit=2&cursor=$j2"
expect jobs_page_2 pycheck "[j['id'] for j in d['jobs']] == [$j1] and d['next_cursor'] is None"
call GET '/v1/jobs?status=cancelled'
expect jobs_status_filter pycheck "sorted(j['id'] for j in d['jobs']) == [$j2, $j3]"

# ---- adapters ---------------------------------------------------------------------
call GET /v1/adapters
expect adapters_list pycheck '[a["name"] for a in d["adapters"]] == ["sr4"] and d["adapters"][0]["task"] == "sr"
    and d["adapters"][0]["loaded"] is False'
call GET /v1/adapters/sr4
expect adapter_by_name pycheck 'd["kind"] == "lite"'
ad_id=$(jget 'd["id"]')

# ---- generate with the adapter ---------------------------------------------------
b64=$(base64 -w0 "$tmp/low.png")
call POST /v1/generate -H 'Content-Type: application/json' -d "{\"adapter\":\"sr4\",\"image\":\"$b64\",\"seed\":5,\"steps\":2}"
expect generate_adapter_json pycheck 'len(d["images"]) == 1 and d["seed"] == 5 and d["steps"] == 2'
jget 'd["images"][0]' | base64 -d >"$tmp/g1.png"
call POST /v1/generate -H 'Accept: image/png' \
    -d "{\"adapter\":$ad_id,\"image\":\"data:image/png;base64,$b64\",\"seed\":5,\"steps\":2}"
if [ "$code" = 200 ] && [ "$(header content-type)" = image/png ] && cmp -s "$tmp/body" "$tmp/g1.png"; then
    ok generate_adapter_png_by_id_data_url_same_bytes
else bad generate_adapter_png_by_id_data_url_same_bytes "$code"; fi
call POST /v1/generate -H 'Accept: image/png' -F adapter=sr4 -F "image=@$tmp/low.png" -F seed=5 -F steps=2
if [ "$code" = 200 ] && cmp -s "$tmp/body" "$tmp/g1.png"; then ok generate_multipart_same_bytes
else bad generate_multipart_same_bytes "$code $(head -c 200 "$tmp/body")"; fi
# the stochastic CoDi sampler: other bytes than the deterministic one for the
# same seed, and the same bytes again for the same request
call POST /v1/generate -H 'Accept: image/png' -F adapter=sr4 -F "image=@$tmp/low.png" -F seed=5 -F steps=2 -F stochastic=true
cp "$tmp/body" "$tmp/s1.png"
if [ "$code" = 200 ] && ! cmp -s "$tmp/s1.png" "$tmp/g1.png"; then ok generate_stochastic_differs
else bad generate_stochastic_differs "$code $(head -c 200 "$tmp/body")"; fi
call POST /v1/generate -H 'Accept: image/png' -d "{\"adapter\":\"sr4\",\"image\":\"$b64\",\"seed\":5,\"steps\":2,\"stochastic\":true}"
if [ "$code" = 200 ] && cmp -s "$tmp/body" "$tmp/s1.png"; then ok generate_stochastic_repeats
else bad generate_stochastic_repeats "$code"; fi
call POST /v1/generate -d "{\"adapter\":\"sr4\",\"image\":\"$b64\",\"n\":3,\"seed\":9}"
expect generate_adapter_n3_default_steps pycheck 'len(d["images"]) == 3 and d["steps"] == 4'
call POST /v1/generate -d "{\"adapter\":\"sr4\",\"image\":\"$(base64 -w0 "$tmp/b.png")\",\"preprocess\":\"task\",\"seed\":1,\"steps\":1}"
expect generate_preprocess_task pycheck 'len(d["images"]) == 1'
call GET /v1/adapters/sr4
expect adapter_loaded_after_use pycheck 'd["loaded"] is True'

# ---- metrics ------------------------------------------------------------------------
call GET /metrics
if [ "$code" = 200 ] && grep -q '^codid_http_requests_total{method="POST",route="/v1/generate",status="200"} [1-9]' "$tmp/body" &&
    grep -q '^codid_http_request_duration_seconds_bucket{method="POST",route="/v1/generate",le="+Inf"} [1-9]' "$tmp/body" &&
    grep -q '^codid_generate_batch_images_count [1-9]' "$tmp/body" &&
    grep -q '^codid_generate_queue_depth 0' "$tmp/body" &&
    grep -q '^codid_jobs{state="cancelled"} 2' "$tmp/body" &&
    grep -q '^codid_jobs{state="succeeded"} 1' "$tmp/body" &&
    grep -q '^codid_model_memory_bytes{model="[^"]*",device="cpu"} [1-9]' "$tmp/body" &&
    grep -q '^codid_adapters_loaded 1' "$tmp/body" && grep -q '^codid_adapter_memory_bytes [1-9]' "$tmp/body" &&
    grep -q '^codid_http_requests_total{method="GET",route="/v1/datasets/{id}",status="404"} 1' "$tmp/body"; then
    ok metrics_content
else bad metrics_content "$(grep -v '^#' "$tmp/body" | grep -E 'generate|jobs\{|memory|adapters_loaded|datasets/\{id\}' | head -n 20)"; fi

# ---- CORS ----------------------------------------------------------------------------
call OPTIONS /v1/generate -H 'Origin: https://app.example' -H 'Access-Control-Request-Method: POST' \
    -H 'Access-Control-Request-Headers: content-type, authorization'
if [ "$code" = 204 ] && [ "$(header access-control-allow-origin)" = https://app.example ] &&
    [ "$(header access-control-allow-methods)" = POST ] &&
    [[ $(header access-control-allow-headers) == *Authorization* ]] &&
    [ "$(header access-control-allow-credentials)" = true ] && [[ $(header vary) == *Origin* ]]; then
    ok cors_preflight
else bad cors_preflight "$code $(tr -d '\r' <"$tmp/hdr" | grep -i access-control)"; fi
call OPTIONS /v1/generate -H 'Origin: https://evil.example' -H 'Access-Control-Request-Method: POST'
expect cors_preflight_bad_origin_403 pycheck '"Origin" in d["detail"] and "cors_origins" in d["detail"]'
[ -z "$(header access-control-allow-origin)" ] || bad cors_no_allow_for_bad_origin "$(header access-control-allow-origin)"
call OPTIONS /v1/generate -H 'Origin: https://app.example' -H 'Access-Control-Request-Method: DELETE'
expect cors_preflight_bad_method_403 pycheck 'd["status"] == 403 and "DELETE" in d["detail"]'
call OPTIONS /v1/generate -H 'Origin: https://app.example' -H 'Access-Control-Request-Method: POST' \
    -H 'Access-Control-Request-Headers: x-secret'
expect cors_preflight_bad_header_403 pycheck 'd["status"] == 403 and "x-secret" in d["detail"]'
call GET /v1/models -H 'Origin: https://app.example'
if [ "$code" = 200 ] && [ "$(header access-control-allow-origin)" = https://app.example ] &&
    [[ $(header access-control-expose-headers) == *X-Request-Id* ]]; then ok cors_simple_request
else bad cors_simple_request "$(tr -d '\r' <"$tmp/hdr" | grep -i access-control)"; fi
call GET /v1/nothing -H 'Origin: https://app.example'
expect cors_on_errors_too test "$(header access-control-allow-origin)" = https://app.example
call OPTIONS /v1/jobs
if [ "$code" = 204 ] && [ "$(header allow)" = "POST, GET" ]; then ok plain_options_allow
else bad plain_options_allow "$code $(header allow)"; fi

# ---- delete the adapter while it is loaded ----------------------------------------
call DELETE /v1/adapters/sr4
expect adapter_delete_204 test "$code" = 204
call POST /v1/generate -d "{\"adapter\":\"sr4\",\"image\":\"$b64\"}"
expect generate_deleted_adapter_400 pycheck '"no adapter" in d["detail"]'
# freed off the event loop, some time after (polled: a bound on a hang, not a speed test)
for _ in $(seq 1200); do
    call GET /metrics
    grep -q '^codid_adapters_loaded 0' "$tmp/body" && grep -q '^codid_adapter_memory_bytes 0' "$tmp/body" && break
    sleep 0.1
done
expect adapter_freed_after_delete grep -q '^codid_adapter_memory_bytes 0' "$tmp/body"
expect adapter_unloaded_after_delete grep -q '^codid_adapters_loaded 0' "$tmp/body"

# ---- shutdown with a stream open: it is ended, not left suspended ----------------
job endless 100000
j4=$(jget 'd["id"]')
curl -sN "$base/v1/jobs/$j4/events" -o "$tmp/sse_open" --max-time 300 &
curl_pid=$!
# the stream is open once its first event came (bounded: a hang, not speed)
for _ in $(seq 1200); do
    grep -q '^event: job' "$tmp/sse_open" 2>/dev/null && break
    kill -0 "$curl_pid" 2>/dev/null || break
    sleep 0.1
done
expect stream_open_before_shutdown grep -q '^event: job' "$tmp/sse_open"
stop_daemon
expect sigterm_clean_exit test "$stop_rc" = 0
wait "$curl_pid"
expect open_stream_ended_at_shutdown grep -q '^event: shutdown' "$tmp/sse_open"
finish
