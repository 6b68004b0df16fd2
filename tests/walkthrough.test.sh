#!/usr/bin/env bash
# walkthrough.test.sh - runs the README's curl walkthrough, exactly the
# commands between its walkthrough markers, against a daemon serving the
# tiny random model (BASE points them at it), then checks what they left:
# the dataset, a job that succeeded with its events streamed, and the PNGs.
source "$(dirname "$0")/tools/api_lib.sh"

script=$tmp/walkthrough.sh
awk '/<!-- walkthrough:begin -->/ {on = 1; next} /<!-- walkthrough:end -->/ {on = 0} on' README.md |
    grep -v '^```' >"$script"
if grep -q 'curl' "$script"; then ok walkthrough_found
else
    bad walkthrough_found "no commands between the walkthrough markers in README.md"
    finish
fi

start_daemon walk --workers 1
mkdir -p "$tmp/work"
(cd "$tmp/work" && BASE=$base bash -e "$script") >"$tmp/out" 2>"$tmp/err"
rc=$?
expect walkthrough_runs test $rc = 0
[ $rc = 0 ] || echo "    $(tail -n 5 "$tmp/err")"

# what the commands printed: the dataset, the job, then the event stream
if grep -q '"name":"cifar-small"' "$tmp/out" && grep -q '"count":64' "$tmp/out"; then ok dataset_made
else bad dataset_made "$(head -c 300 "$tmp/out")"; fi
if grep -q '^event: progress' "$tmp/out" && grep -q '^event: result' "$tmp/out" &&
    grep '^data: ' "$tmp/out" | tail -n 1 | grep -q '"status":"succeeded"'; then
    ok events_streamed_to_success
else bad events_streamed_to_success "$(grep -E '^(event|data):' "$tmp/out" | tail -n 4)"; fi
call GET /v1/jobs/1
expect job_succeeded pycheck 'd["status"] == "succeeded" and d["progress"]["step"] == 30'
call GET /v1/adapters/sr4-demo
expect adapter_registered pycheck 'd["task"] == "sr" and d["loaded"] is True'
for f in photo restored loss; do
    size=$(/usr/bin/python3 -c 'import struct,sys; b=open(sys.argv[1],"rb").read(); print(*struct.unpack(">II", b[16:24]) if b[:8]==b"\x89PNG\r\n\x1a\n" else "")' "$tmp/work/$f.png" 2>/dev/null)
    want="16 16"
    [ $f = loss ] && want="640 360"
    expect "png_$f" test "$size" = "$want"
done
finish
