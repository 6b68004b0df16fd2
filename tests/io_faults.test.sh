#!/usr/bin/env bash
# io_faults.test.sh - write, fsync and rename failing (ENOSPC, EIO) under a
# real daemon, by the LD_PRELOAD shim build/iofault.so (tests/iofault/
# iofault.c says why a shim), switched on and off through its control file
# while the daemon runs; and the database held locked by another process.
# Each fault hits one call site: a dataset import, a checkpoint, an adapter
# export, the database, key creation. Checks: the request or the job fails
# with the system's reason in its error, no temporary file is left, nothing
# committed before is lost, generation keeps being served, and the same
# operation succeeds once the fault is gone. A locked database answers 503
# with Retry-After within the busy timeout, never hangs.
source "$(dirname "$0")/tools/api_lib.sh"

SHIM=$ROOT/$BUILD/iofault.so
if [ ! -f "$SHIM" ]; then
    bad shim_built "$SHIM missing (make $BUILD/iofault.so)"
    finish
fi
preload=$SHIM
case "$BUILD" in *asan*) preload="$(cc -print-file-name=libasan.so):$SHIM" ;; esac
ctl=$tmp/iofault.ctl
: >"$ctl"
# the daemon, and only it, runs with the shim
real_bin=$BIN
BIN=$tmp/codid-faulty
printf '#!/bin/sh\nLD_PRELOAD="%s" IOFAULT_CONTROL="%s" exec "%s" "$@"\n' "$preload" "$ctl" "$real_bin" >"$BIN"
chmod +x "$BIN"
fault() { echo "$*" >"$ctl"; } # PATTERN OPS ERRNO [COUNT]
no_fault() { : >"$ctl"; }
detail() { jget 'd["detail"]'; }
temporaries() { find "$1" -name '*.tmp*' | wc -l; }

start_daemon main --workers 1
var=$tmp/main/var
make_png "$tmp/a.png" 16 16 3 1
make_png "$tmp/b.png" 20 18 3 2

job() { # NAME STEPS [EXTRA JSON FIELDS]
    call POST /v1/jobs -H 'Content-Type: application/json' -d "{\"kind\":\"distill\",\"dataset\":\"base\",
        \"task\":{\"name\":\"sr\",\"factor\":4},\"adapter_kind\":\"lite\",\"steps\":$2,\"batch_size\":2,
        \"n_grid\":8,\"name\":\"$1\"${3:-}}"
}
generate_ok() {
    call POST /v1/generate -H 'Accept: image/png' -d '{"n":1,"steps":2,"seed":7}'
    [ "$code" = 200 ] && [ "$(header content-type)" = image/png ]
}

# ---- what is committed before any fault ------------------------------------------
call POST /v1/datasets -F name=base -F "files=@$tmp/a.png" -F "files=@$tmp/b.png" -F size=16
expect committed_dataset test "$code" = 201
job keep 2
keep_id=$(jget 'd["id"]')
if wait_job "$keep_id" succeeded failed && call GET "/v1/jobs/$keep_id" && pycheck 'd["status"] == "succeeded"'; then ok committed_job; else bad committed_job "$(curl -s "$base/v1/jobs/$keep_id")"; fi

# ---- dataset import -------------------------------------------------------------
fault '*/datasets/*' write ENOSPC
call POST /v1/datasets -F name=full -F "files=@$tmp/a.png" -F size=16
expect import_write_enospc_500 test "$code" = 500
expect import_write_says_why pycheck '"No space left on device" in d["detail"]'
expect import_write_no_tmp test "$(temporaries "$var/datasets")" = 0
fault '*/datasets/*' rename EIO
call POST /v1/datasets -F name=full -F "files=@$tmp/a.png" -F size=16
expect import_rename_eio_500 pycheck 'd["status"] == 500 and "Input/output error" in d["detail"]'
expect import_rename_no_tmp test "$(temporaries "$var/datasets")" = 0
fault '*/datasets/*' fsync EIO
call POST /v1/datasets -F name=full -F "files=@$tmp/a.png" -F size=16
expect import_fsync_eio_500 pycheck 'd["status"] == 500 and "Input/output error" in d["detail"]'
expect import_fsync_no_tmp test "$(temporaries "$var/datasets")" = 0
expect generate_during_faults generate_ok
no_fault
call GET /v1/datasets
expect import_nothing_lost pycheck '[x["name"] for x in d["datasets"]] == ["base"]'
call POST /v1/datasets -F name=full -F "files=@$tmp/a.png" -F size=16
expect import_after_fault_201 test "$code" = 201

# ---- checkpoints: tried again, then the job fails with the reason ---------------------
fault '*/checkpoints/*' write ENOSPC
job ckpt 12 ',"checkpoint_every":2'
ckpt_id=$(jget 'd["id"]')
expect generate_while_checkpoints_fail generate_ok
if wait_job "$ckpt_id" failed succeeded; then
    call GET "/v1/jobs/$ckpt_id"
    expect checkpoint_job_fails_with_errno pycheck 'd["status"] == "failed" and "checkpoint" in d["error"]
        and "No space left on device" in d["error"]'
else bad checkpoint_job_fails_with_errno "$(curl -s "$base/v1/jobs/$ckpt_id")"; fi
expect checkpoint_no_tmp test "$(temporaries "$var/checkpoints")" = 0

# ---- adapter export ------------------------------------------------------------------
fault '*/adapters/*' fsync EIO
job export 2
export_id=$(jget 'd["id"]')
if wait_job "$export_id" failed succeeded; then
    call GET "/v1/jobs/$export_id"
    expect export_job_fails_with_errno pycheck 'd["status"] == "failed" and "export" in d["error"]
        and "Input/output error" in d["error"]'
else bad export_job_fails_with_errno "$(curl -s "$base/v1/jobs/$export_id")"; fi
expect export_no_tmp test "$(temporaries "$var/adapters")" = 0
no_fault
call GET /v1/adapters
expect export_nothing_lost pycheck '[a["name"] for a in d["adapters"]] == ["keep"]'
job export2 2
export2_id=$(jget 'd["id"]')
if wait_job "$export2_id" succeeded failed && call GET "/v1/jobs/$export2_id" && pycheck 'd["status"] == "succeeded"'; then ok export_after_fault; else bad export_after_fault "$(curl -s "$base/v1/jobs/$export2_id")"; fi

# ---- the database ----------------------------------------------------------------
fault '*/codid.db*' write EIO
job dbfail 2
expect db_write_eio_500 pycheck 'd["status"] == 500 and len(d["detail"]) > 0'
expect generate_while_db_fails generate_ok
no_fault
job dbok 2
expect db_after_fault_202 test "$code" = 202
call GET '/v1/jobs?limit=50'
expect db_nothing_lost pycheck '[j["id"] for j in d["jobs"]][-1] == '"$keep_id"' and "dbfail" not in json.dumps(d)'

# ---- SQLITE_BUSY: another process holds the write lock ------------------------------
/usr/bin/python3 - "$var/codid.db" "$tmp/locked" "$tmp/release" <<'PY' &
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
db.execute("UPDATE jobs SET total = total WHERE id = 0")
open(sys.argv[2], "w").close()
for _ in range(1200):  # until told, or at most 2 minutes
    if os.path.exists(sys.argv[3]):
        break
    time.sleep(0.1)
db.execute("ROLLBACK")
PY
locker=$!
for _ in $(seq 300); do [ -e "$tmp/locked" ] && break; sleep 0.1; done
start=$SECONDS
code=$(curl -s -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' --max-time 60 -X POST -H 'Content-Type: application/json' \
    -d '{"kind":"distill","dataset":"base","task":{"name":"sr","factor":4},"adapter_kind":"lite","steps":2,"name":"busy"}' \
    "$base/v1/jobs")
took=$((SECONDS - start))
expect busy_503 test "$code" = 503
expect busy_retry_after test -n "$(header retry-after)"
expect busy_says_locked pycheck '"locked" in d["detail"]'
# the busy timeout is 5 s (jobs/store.h); this bounds a hang, with room for a loaded machine
expect busy_answers_within_bound test "$took" -lt 30
call GET /healthz
expect busy_healthz_200 test "$code" = 200
touch "$tmp/release"
wait "$locker"
job busy 2
expect busy_after_release_202 test "$code" = 202

# ---- key creation (the CLI, beside the daemon; last: a key turns auth on) -------------
fault '*/codid.db*' write ENOSPC
if "$BIN" keys create --scope admin --data-dir "$var" >"$tmp/key" 2>"$tmp/key_err"; then
    bad key_create_fails "it succeeded: $(cat "$tmp/key")"
else
    [ -s "$tmp/key_err" ] && [ ! -s "$tmp/key" ] && ok key_create_fails || bad key_create_fails "$(cat "$tmp/key_err")"
fi
no_fault
expect key_no_tmp test "$(temporaries "$var")" = 0
"$real_bin" keys list --data-dir "$var" >"$tmp/keys" 2>&1
expect key_none_half_made test "$(grep -c admin "$tmp/keys")" = 0
"$real_bin" keys create --scope admin --data-dir "$var" >"$tmp/key" 2>"$tmp/key_err"
expect key_after_fault test -s "$tmp/key"

# ---- the database is whole ------------------------------------------------------------
integrity=$(/usr/bin/python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' "$var/codid.db")
expect db_integrity_ok test "$integrity" = ok
finish
