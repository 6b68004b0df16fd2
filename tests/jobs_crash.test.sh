#!/usr/bin/env bash
# jobs_crash.test.sh - a training job survives the daemon's death.
#
# A tiny distill job (a tiny random base model made by bench_engine create,
# a synthetic 16x16 dataset) runs twice in real `codid serve` daemons:
#   A: uninterrupted, to the end;
#   B: killed with SIGKILL once a checkpoint exists, restarted (the job is
#      found `running`, requeued and resumed from its checkpoint), then
#      stopped with SIGTERM mid-run (the worker checkpoints and requeues:
#      nothing is redone), restarted again, and run to the end.
# B's adapter file must equal A's byte for byte, and be registered once.
# Prints how many steps the kill -9 cost (steps done again after resuming).
# KEEP_TMP=1 keeps the daemons' logs and data directories for a look.
source "$(dirname "$0")/tools/lib.sh"
STEPS=160
EVERY=20
JOB='{"kind":"distill","dataset":"tiny","task":{"name":"sr","factor":2},"adapter_kind":"lite",
      "steps":'$STEPS',"batch_size":2,"warmup":5,"n_grid":8,"seed":9,"checkpoint_every":'$EVERY',
      "name":"crash"}'

source "$ROOT/tests/tools/jobs_lib.sh"

# ---- A: uninterrupted -------------------------------------------------------
A=$tmp/a
prepare "$A" || { bad prepare "cannot register the dataset or submit the job"; finish; }
start "$A" "$tmp/a.log" || { bad start-a "daemon did not start: $(tail -5 "$tmp/a.log")"; finish; }
if wait_until "$A" '[ "$(field "$A" status)" = succeeded ]'; then ok uninterrupted_run
else bad uninterrupted_run "status $(field "$A" status); log: $(grep -E 'WARN|ERROR' "$tmp/a.log" | tail -3)"; finish; fi
stop_daemon
[ $stop_rc -eq 0 ] && ok clean_exit_a || bad clean_exit_a "exit status $stop_rc"

# ---- B: kill -9, restart, SIGTERM, restart ----------------------------------
B=$tmp/b
prepare "$B" || { bad prepare "cannot register the dataset or submit the job"; finish; }
start "$B" "$tmp/b1.log" || { bad start-b "daemon did not start: $(tail -5 "$tmp/b1.log")"; finish; }
# past a checkpoint and short of the end
if freeze_when "$B" 'grep -q "job 1: checkpoint at step" "$tmp/b1.log" && [ "$(last_step "$tmp/b1.log")" -ge $((EVERY + 10)) ] &&
    [ "$(last_step "$tmp/b1.log")" -lt $STEPS ]'; then
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    pid=
    killed_after=$(last_step "$tmp/b1.log")
    ok killed_mid_run
else
    bad killed_mid_run "no checkpoint, or past the end (step $(last_step "$tmp/b1.log"), status $(field "$B" status))"
    finish
fi
[ "$(field "$B" status)" = running ] && ok left_running_by_the_kill || bad left_running_by_the_kill "status $(field "$B" status)"

start "$B" "$tmp/b2.log" || { bad restart "daemon did not start: $(tail -5 "$tmp/b2.log")"; finish; }
grep -q '1 job found running after a crash: queued to resume' "$tmp/b2.log" && ok requeued_at_start ||
    bad requeued_at_start "no requeue line in the log"
wait_until "$B" 'grep -q "job 1: resumed at step" "$tmp/b2.log"'
resumed_at=$(sed -n 's/.*job 1: resumed at step \([0-9]*\) .*/\1/p' "$tmp/b2.log" | head -n 1)
if [ -n "$resumed_at" ] && [ -n "$killed_after" ] && [ "$resumed_at" -gt 0 ] && [ "$resumed_at" -le "$killed_after" ] &&
    [ $((killed_after - resumed_at)) -le $EVERY ]; then
    ok resumed_from_checkpoint
else
    bad resumed_from_checkpoint "killed after step ${killed_after:-?}, resumed at ${resumed_at:-?}"
fi
redone=$((killed_after - resumed_at))

# SIGTERM mid-run: finish the step, checkpoint, requeue
# Not frozen for this one: a SIGTERM that meets a stopped daemon, or one
# just continued, can be taken by a thread that does not block it (OpenBLAS
# starts its threads before serve.c blocks the signal) and end the process
# with exit 143. The margin below is 40 steps at the least.
wait_until "$B" '[ "$(last_step "$tmp/b2.log")" -ge $((resumed_at + 10)) ] && [ "$(last_step "$tmp/b2.log")" -lt $((STEPS - 40)) ]' ||
    bad sigterm_mid_run "step $(last_step "$tmp/b2.log") of $STEPS"
stop_daemon
stopped_at=$(sed -n 's/.*job 1: stopped at step \([0-9]*\);.*/\1/p' "$tmp/b2.log" | tail -n 1)
[ $stop_rc -eq 0 ] && [ -n "$stopped_at" ] && [ "$stopped_at" -lt $STEPS ] && ok sigterm_checkpoints_and_stops ||
    bad sigterm_checkpoints_and_stops "exit $stop_rc, stopped at '${stopped_at}'"
[ "$(field "$B" status)" = queued ] && ok requeued_by_sigterm || bad requeued_by_sigterm "status $(field "$B" status)"

start "$B" "$tmp/b3.log" || { bad restart2 "daemon did not start: $(tail -5 "$tmp/b3.log")"; finish; }
wait_until "$B" '[ "$(field "$B" status)" = succeeded ]'
status=$("$BIN" jobs get 1 --data-dir "$B" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
[ "$status" = succeeded ] && ok resumed_run_succeeds || bad resumed_run_succeeds "status $status"
resumed2=$(sed -n 's/.*job 1: resumed at step \([0-9]*\) .*/\1/p' "$tmp/b3.log" | head -n 1)
[ "${resumed2:-x}" = "${stopped_at:-y}" ] && ok sigterm_loses_no_step ||
    bad sigterm_loses_no_step "stopped at ${stopped_at:-?}, resumed at ${resumed2:-?}"
stop_daemon

# ---- the same bytes, registered once ---------------------------------------
if cmp -s "$A/adapters/crash-1.safetensors" "$B/adapters/crash-1.safetensors"; then ok identical_adapter
else bad identical_adapter "$(cmp "$A/adapters/crash-1.safetensors" "$B/adapters/crash-1.safetensors" 2>&1)"; fi
n=$("$BIN" jobs adapters --data-dir "$B" | python3 -c 'import json,sys; a=json.load(sys.stdin); print(sum(1 for x in a if x["job_id"] == 1))')
[ "$n" = 1 ] && ok registered_once || bad registered_once "$n adapters of job 1"
left=$(find "$B" -name '*.tmp' -o -name 'job-1.safetensors' | wc -l)
[ "$left" = 0 ] && ok no_leftovers || bad no_leftovers "$left temporary or checkpoint files left"

echo "steps redone after kill -9: $redone (killed after step $killed_after, resumed at step $resumed_at; checkpoint every $EVERY)"
finish
