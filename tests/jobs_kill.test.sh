#!/usr/bin/env bash
# jobs_kill.test.sh - SIGKILL at any moment loses nothing and duplicates
# nothing; a job that crashes at the same point every time is given up.
#
# A tiny distill job (tests/tools/jobs_lib.sh's fixtures, checkpoints every
# $EVERY steps) runs:
#   A: uninterrupted, for the reference adapter file;
#   B: killed with SIGKILL $RANDOM_KILLS+ times across its life and
#      restarted after each: once while queued (a daemon with no worker),
#      at random moments while it runs (a random delay after the start, or
#      a random number of steps after it resumed), and from inside the
#      daemon at the moments a delay rarely hits (util/crash.h's crash
#      points, CODID_CRASH_AT): after a step, mid checkpoint write (the
#      file fsynced under its temporary name, not renamed), before the
#      export, mid export, and between the export and the commit that
#      registers the adapter. Also killed mid dataset import (a tar upload
#      over HTTP), and `codid keys create` killed mid run, on their own
#      data directory.
#   C: a job whose worker crashes at the same step every time (a crash
#      point the job never gets past).
# After every kill the database passes PRAGMA integrity_check; after every
# restart each temporary file the kill left has been removed; B's job ends
# once, succeeded, its adapter registered once and byte-identical to A's;
# an interrupted import leaves a whole dataset or none, an interrupted key
# creation a whole key or none. C fails, at the first start-up after
# JOBS_MAX_STALLED_RECOVERIES + 1 crashes in a row without a new
# checkpoint, with the reason in its error.
#
# The random choices come from SEED (printed; SEED=N reruns a sequence).
# Kills never need luck to land: a random kill that would make a 4th crash
# in a row without progress (the limit C tests) waits for a new checkpoint
# first, which is the rule under test. About 2 min on 2 loaded cores.
# KEEP_TMP=1 keeps the logs and data directories.
source "$(dirname "$0")/tools/lib.sh"
STEPS=200
EVERY=4
RANDOM_KILLS=18
JOB='{"kind":"distill","dataset":"tiny","task":{"name":"sr","factor":2},"adapter_kind":"lite",
      "steps":'$STEPS',"batch_size":2,"warmup":5,"n_grid":8,"seed":9,"checkpoint_every":'$EVERY',
      "name":"crash"}'
source "$ROOT/tests/tools/jobs_lib.sh"
SEED=${SEED:-$(($$ % 32768))}
RANDOM=$SEED
echo "SEED=$SEED"

# integrity DIR: PRAGMA integrity_check of DIR's database (as a kill left it)
integrity() {
    python3 - "$1/codid.db" <<'PY' 2>&1
import sqlite3, sys
print(sqlite3.connect(sys.argv[1], timeout=5).execute("PRAGMA integrity_check").fetchone()[0])
PY
}

# temporaries DIR: the temporary files under DIR (jobs.c's names: *.tmp, *.tmp-XXXXXX)
temporaries() { find "$1" -type f \( -name '*.tmp' -o -name '*.tmp-*' \) | sort; }

# after_kill DIR WHAT: checks the database a kill left, and remembers its
# temporary files for after_restart
kills=0 integrity_bad=0 left_behind=0
declare -a kill_log=()
after_kill() {
    kills=$((kills + 1))
    kill_log+=("$2")
    local r
    r=$(integrity "$1")
    [ "$r" = ok ] || { integrity_bad=$((integrity_bad + 1)); echo "integrity after kill $kills ($2): $r"; }
    pending_tmp=$(temporaries "$1")
}

# after_restart LOG: every temporary file the last kill left was removed at start-up
after_restart() {
    local f
    while IFS= read -r f; do
        [ -z "$f" ] && continue
        grep -qF "removed $f, left by an interrupted write" "$1" ||
            { left_behind=$((left_behind + 1)); echo "not removed at start-up: $f"; }
    done <<<"$pending_tmp"
    pending_tmp=
}

# resumed_at LOG: the step the job resumed at in this life (0: from the start)
resumed_at() {
    local s
    s=$(sed -n 's/.*job 1: resumed at step \([0-9]*\) .*/\1/p' "$1" | head -n 1)
    echo "${s:-0}"
}

# kill_now: SIGKILL the daemon $pid and reap it
kill_now() {
    kill -9 "$pid" 2>/dev/null
    { wait "$pid"; } 2>/dev/null
    pid=
}

# crash_life DIR LOG POINT: a daemon armed with crash point POINT, run
# until it kills itself there; false (the daemon killed) when job 1 ends
# or leaves the running and queued states first
crash_life() {
    CRASH_AT=$3 launch "$1" "$2"
    for _ in $(seq 6000); do
        if ! kill -0 "$pid" 2>/dev/null; then
            { wait "$pid"; } 2>/dev/null
            pid=
            grep -qF "crash point $3 reached" "$2"
            return
        fi
        case "$(field "$1" status)" in queued | running | "") ;; *) break ;; esac
        sleep 0.1
    done
    kill_now
    return 1
}

# ---- A: uninterrupted -------------------------------------------------------
A=$tmp/a
prepare "$A" || { bad prepare "cannot register the dataset or submit the job"; finish; }
start "$A" "$tmp/a.log" || { bad start-a "daemon did not start: $(tail -5 "$tmp/a.log")"; finish; }
if wait_until "$A" '[ "$(field "$A" status)" = succeeded ]'; then ok uninterrupted_run
else bad uninterrupted_run "status $(field "$A" status); log: $(grep -E 'WARN|ERROR' "$tmp/a.log" | tail -3)"; finish; fi
stop_daemon

# ---- B: killed all along its life --------------------------------------------
B=$tmp/b
prepare "$B" || { bad prepare "cannot register the dataset or submit the job"; finish; }
life=0
next_log() { life=$((life + 1)); log=$tmp/b$life.log; : >"$log"; }

# queued: a daemon without workers, killed once up
next_log
WORKERS=0 start "$B" "$log" || { bad start-b "daemon did not start: $(tail -5 "$log")"; finish; }
kill_now
[ "$(field "$B" status)" = queued ] && ok killed_while_queued || bad killed_while_queued "status $(field "$B" status)"
after_kill "$B" queued

# mid checkpoint write (the first checkpoint: step 4)
next_log
crash_life "$B" "$log" rename:job-1.safetensors
if grep -qF "crash point rename:job-1.safetensors reached" "$log" && [ -f "$B/checkpoints/job-1.safetensors.tmp" ]; then
    ok killed_mid_checkpoint_write
else
    bad killed_mid_checkpoint_write "no crash there, or no temporary file; log: $(tail -3 "$log")"
fi
after_restart "$log"
after_kill "$B" checkpoint-write

# random moments while it runs
for _ in $(seq $RANDOM_KILLS); do
    [ "$(field "$B" checkpoint_step)" -ge $((STEPS - 40)) ] && break
    next_log
    start "$B" "$log" || { bad restart "daemon did not start: $(tail -5 "$log")"; finish; }
    after_restart "$log"
    # start-up has counted the last kill: a 4th crash in a row without a
    # new checkpoint would fail the job, so past 2 wait for a checkpoint
    # (read from the log: a database poll here would let the job run on)
    recovery=$(sed -n 's/.*job 1 found running after a crash, \([0-9]*\) in a row .*(at step \([0-9]*\)).*/\1 \2/p' "$log")
    read -r stalled recovered <<<"${recovery:-0 0}"
    if [ "$stalled" -ge 2 ]; then
        wait_until "$B" '[ "$(field "$B" checkpoint_step)" -gt "$recovered" ]'
    fi
    # each life runs at most EVERY + 1 steps past its resume, so that the
    # kills, not the job, run out last
    if [ $((RANDOM % 2)) = 0 ]; then
        # from the start: the claim, the resume, the first steps
        until_ns=$(($(date +%s%N) + (RANDOM % 300) * 1000000))
        while [ "$(date +%s%N)" -lt $until_ns ] && [ "$(last_step "$log")" -lt $(($(resumed_at "$log") + EVERY + 1)) ]; do
            sleep 0.01
        done
        what=delay
    else
        n=$((RANDOM % (EVERY + 2)))
        wait_until "$B" 'grep -q "job 1: resumed at step\|job 1: distill started" "$log"'
        wait_until "$B" '[ "$(last_step "$log")" -ge $(($(resumed_at "$log") + n)) ]'
        what=steps
    fi
    kill_now
    after_kill "$B" "$what@$(last_step "$log")"
done

# from inside: after a step, then the end's moments
next_log
crash_life "$B" "$log" "step:$((STEPS - 1))" && ok killed_after_a_step ||
    bad killed_after_a_step "no crash at step $((STEPS - 1)); log: $(tail -3 "$log")"
after_restart "$log"
after_kill "$B" "crash-point step"
for point in export:1 rename:crash-1.safetensors register:1; do
    next_log
    crash_life "$B" "$log" $point && ok "killed_at_${point%%:*}" ||
        bad "killed_at_${point%%:*}" "no crash there; log: $(tail -3 "$log")"
    after_restart "$log"
    after_kill "$B" "crash-point $point"
done
[ -f "$B/adapters/crash-1.safetensors.tmp" ] || [ -f "$B/adapters/crash-1.safetensors" ] &&
    ok export_files_left_by_the_kills || bad export_files_left_by_the_kills "neither the export nor its temporary"
[ "$(field "$B" status)" = running ] && ok still_running_after_the_kills ||
    bad still_running_after_the_kills "status $(field "$B" status)"

next_log
start "$B" "$log" || { bad restart "daemon did not start: $(tail -5 "$log")"; finish; }
after_restart "$log"
wait_until "$B" '[ "$(field "$B" status)" != running ] && [ "$(field "$B" status)" != queued ]'
[ "$(field "$B" status)" = succeeded ] && ok finishes_after_the_kills ||
    bad finishes_after_the_kills "status $(field "$B" status): $(field "$B" error)"
stop_daemon

[ $kills -ge 20 ] && ok "killed_${kills}_times" || bad killed_20_times "only $kills kills (${kill_log[*]})"
echo "kills: ${kill_log[*]}"
echo "crash recoveries of the job: $(field "$B" recoveries)"
[ $integrity_bad = 0 ] && ok integrity_after_every_kill || bad integrity_after_every_kill "$integrity_bad bad"
[ $left_behind = 0 ] && ok temporaries_removed_at_every_start || bad temporaries_removed_at_every_start "$left_behind"

# ---- B, meanwhile: a dataset import killed -----------------------------------
# a tar of PNGs, big enough that the import takes a while
python3 - "$tmp/set.tar" <<'PY'
import io, random, struct, sys, tarfile, zlib
rnd = random.Random(5)
def png(w, h):
    raw = b"".join(b"\0" + bytes(rnd.randrange(256) for _ in range(w * 3)) for _ in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
with tarfile.open(sys.argv[1], "w") as t:
    for i in range(1500):
        data = png(32, 32)
        info = tarfile.TarInfo("img%04d.png" % i)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
PY
imports_ok=1
for i in 1 2; do
    next_log
    start "$B" "$log" || { bad restart "daemon did not start: $(tail -5 "$log")"; finish; }
    after_restart "$log"
    port=$(sed -n 's/.*listening on http:\/\/[0-9.]*:\([0-9]*\).*/\1/p' "$log")
    curl -s -o /dev/null -H 'Content-Type: application/x-tar' --data-binary @"$tmp/set.tar" \
        "http://127.0.0.1:$port/v1/datasets?name=up$i" &
    curl_pid=$!
    sleep "0.$(printf '%03d' $((RANDOM % 1000)))"
    kill_now
    wait "$curl_pid" 2>/dev/null
    after_kill "$B" "import"
    # all or nothing: a registered dataset's file is whole, and no file is
    # left that no dataset names
    python3 - "$B" "up$i" <<'PY' || imports_ok=0
import os, sqlite3, struct, sys
db = sqlite3.connect("file:%s/codid.db?mode=ro" % sys.argv[1], uri=True)
row = db.execute("SELECT path, count, size, channels FROM datasets WHERE name = ?", (sys.argv[2],)).fetchone()
if row:
    path, count, size, ch = row
    head = open(path, "rb").read(64)
    n = struct.unpack("<6I", head[8:32])[1]
    assert n == count == 1500, (n, count)
    assert os.path.getsize(path) >= 64 + count * size * size * ch, "short file"
    print("import %s: complete" % sys.argv[2])
else:
    print("import %s: none" % sys.argv[2])
named = {p for (p,) in db.execute("SELECT path FROM datasets")}
d = os.path.join(sys.argv[1], "datasets")
orphans = [f for f in os.listdir(d) if ".tmp" not in f and os.path.join(d, f) not in named]
assert not orphans, "files no dataset names: %s" % orphans
PY
done
next_log
start "$B" "$log" || { bad restart "daemon did not start: $(tail -5 "$log")"; finish; }
after_restart "$log"
stop_daemon
[ $imports_ok = 1 ] && ok killed_imports_all_or_nothing || bad killed_imports_all_or_nothing
[ "$(integrity "$B")" = ok ] && [ $left_behind = 0 ] && [ -z "$(temporaries "$B")" ] && ok import_kills_leave_nothing ||
    bad import_kills_leave_nothing "integrity $(integrity "$B"); left: $(temporaries "$B")"

# ---- B: the job ended once, the same bytes, registered once -------------------
if cmp -s "$A/adapters/crash-1.safetensors" "$B/adapters/crash-1.safetensors"; then ok identical_adapter
else bad identical_adapter "$(cmp "$A/adapters/crash-1.safetensors" "$B/adapters/crash-1.safetensors" 2>&1)"; fi
ends=$(python3 - "$B/codid.db" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
ends = [json.loads(p)["status"] for (p,) in db.execute(
    "SELECT payload FROM job_events WHERE job_id = 1 AND kind = 'state' ORDER BY id")]
ends = [s for s in ends if s in ("succeeded", "failed", "cancelled")]
n = db.execute("SELECT count(*) FROM adapters WHERE job_id = 1").fetchone()[0]
print(",".join(ends), n)
PY
)
[ "$ends" = "succeeded 1" ] && ok ended_once_registered_once || bad ended_once_registered_once "final events, adapters: $ends"
[ ! -e "$B/checkpoints/job-1.safetensors" ] && ok checkpoint_removed || bad checkpoint_removed

# ---- keys: codid keys create killed mid run ----------------------------------
K=$tmp/k
# one whole run, for its length: the kills land across as long a run
t0=$(date +%s%N)
"$BIN" keys create --scope generate --data-dir "$K" >"$tmp/key0.out" 2>/dev/null
run_ms=$((($(date +%s%N) - t0) / 1000000))
keys_ok=1
for i in $(seq 4); do
    "$BIN" keys create --scope generate --data-dir "$K" >"$tmp/key$i.out" 2>/dev/null &
    kpid=$!
    sleep "$(awk -v ms=$((RANDOM % (run_ms + 1))) 'BEGIN { printf "%.3f", ms / 1000 }')"
    kill -9 "$kpid" 2>/dev/null
    { wait "$kpid"; } 2>/dev/null
    kills=$((kills + 1))
    [ "$(integrity "$K")" = ok ] || keys_ok=0
done
# each key row is whole; a key that was printed is in the table
python3 - "$K/codid.db" "$tmp"/key*.out <<'PY' || keys_ok=0
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT prefix, hash, scope FROM api_keys").fetchall()
assert all(p and h and s == "generate" for p, h, s in rows), rows
prefixes = {p for p, _, _ in rows}
for out in sys.argv[2:]:
    key = open(out).read().strip()
    if key:
        assert any(key.find(p) >= 0 for p in prefixes), "printed key %r is not stored" % key
assert open(sys.argv[2]).read().strip(), "the whole run printed no key"
print("keys stored: %d of %d runs (1 whole)" % (len(rows), len(sys.argv) - 2))
PY
[ $keys_ok = 1 ] && [ -z "$(temporaries "$K")" ] && ok killed_key_creation_all_or_nothing ||
    bad killed_key_creation_all_or_nothing

# ---- C: a poison job ---------------------------------------------------------
C=$tmp/c
prepare "$C" || { bad prepare "cannot register the dataset or submit the job"; finish; }
# checkpoints at steps 4 and 8, the crash at 10 each time: the first crash
# follows progress, the next ones none
crashes=0
for i in $(seq 8); do
    crash_life "$C" "$tmp/c$i.log" step:10 || break
    crashes=$((crashes + 1))
done
status=$(field "$C" status)
error=$(field "$C" error)
grep -q "job 1: resumed at step" "$tmp/c$((crashes + 1)).log" && bad poison_job_not_run_once_failed "claimed again"
[ "$status" = failed ] && ok poison_job_fails || bad poison_job_fails "status $status after $crashes crashes"
[ $crashes = 5 ] && ok poison_job_given_up_after_4_crashes_without_progress ||
    bad poison_job_given_up_after_4_crashes_without_progress "$crashes crashes"
case "$error" in
    *"4 times in a row"*"no new checkpoint"*"step 8"*"not retried"*) ok poison_job_says_why ;;
    *) bad poison_job_says_why "error: $error" ;;
esac
[ "$(integrity "$C")" = ok ] && ok poison_integrity || bad poison_integrity

echo "$kills kills in all"
finish
