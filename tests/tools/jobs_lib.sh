# jobs_lib.sh - shared by the tests that run a training job in real
# `codid serve` daemons and stop them (tests/jobs_crash.test.sh,
# tests/jobs_kill.test.sh); sourced after lib.sh, with JOB (the job's JSON)
# set. It makes the fixtures (a tiny random base model made by bench_engine
# create in $tmp/model, a synthetic 16x16 dataset in $tmp/tiny.cds) and
# defines the helpers below.
# shellcheck shell=bash
TOOL=$ROOT/$BUILD/tools/bench_engine
[ -x "$TOOL" ] || { bad build "$TOOL is missing (make $TOOL)"; finish; }

# ---- fixtures: a tiny model folder and a dataset file ----------------------
cat >"$tmp/config.json" <<'JSON'
{"_class_name": "UNet2DModel", "sample_size": 16, "in_channels": 3, "out_channels": 3,
 "block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 4,
 "attention_head_dim": 8, "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
 "up_block_types": ["AttnUpBlock2D", "UpBlock2D"]}
JSON
"$TOOL" create --config "$tmp/config.json" --out "$tmp/model" --seed 3 >/dev/null 2>"$tmp/create.log" ||
    { bad fixtures "bench_engine create failed: $(cat "$tmp/create.log")"; finish; }
# the dataset file layout of jobs/dataset.h: 64-byte header, then pixels
python3 - "$tmp/tiny.cds" <<'PY'
import struct, sys
n, side, ch = 16, 16, 3
head = b"CODIDSET" + struct.pack("<6I", 1, n, side, side, ch, 0)
pix = bytes((x * 12 + y * 7 + c * 60 + i * 29) & 255
            for i in range(n) for y in range(side) for x in range(side) for c in range(ch))
open(sys.argv[1], "wb").write(head + b"\0" * (64 - len(head)) + pix)
PY

# prepare DIR: a data directory with the dataset registered and the job queued
prepare() {
    "$BIN" jobs add-dataset --data-dir "$1" --name tiny --file "$tmp/tiny.cds" >/dev/null 2>>"$tmp/cli.log" &&
        "$BIN" jobs submit --data-dir "$1" --json "$JOB" >/dev/null 2>>"$tmp/cli.log"
}

# launch DIR LOG: a daemon on DIR in the background (pid in $pid), with
# $WORKERS workers (default 1) and CODID_CRASH_AT=$CRASH_AT (default none)
launch() {
    (cd "$tmp" && CODID_CRASH_AT=${CRASH_AT:-} exec "$BIN" serve --listen 127.0.0.1:0 --data-dir "$1" \
        --model "$tmp/model" --workers "${WORKERS:-1}" --train-threads 1 --threads 1 --log-level debug) 2>>"$2" &
    pid=$!
}

# start DIR LOG: launch, then wait for the daemon's ready line
start() {
    launch "$1" "$2"
    for _ in $(seq 1200); do
        grep -q ' ready$' "$2" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# field DIR COLUMN: a column of job 1, read-only from the database (codid
# jobs get would load libtorch on every poll). Kills are timed from the
# daemon's debug log instead, which a loaded machine reads without lagging
# many steps behind.
field() {
    python3 - "$1/codid.db" "$2" <<'PY' 2>/dev/null
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=5)
v = db.execute("SELECT %s FROM jobs WHERE id = 1" % sys.argv[2]).fetchone()[0]
print("" if v is None else v)
PY
}

# wait_until DIR COND: polls until the shell condition holds (the daemon must stay up)
wait_until() {
    for _ in $(seq 6000); do
        eval "$2" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# last_step LOG: the last step the worker logged as done (0: none yet)
last_step() {
    local s
    s=$(sed -n 's/.*job 1: step \([0-9]*\)\/.*/\1/p' "$1" | tail -n 1)
    echo "${s:-0}"
}

# freeze_when DIR COND: waits for COND as wait_until does, then stops the
# daemon with SIGSTOP and checks COND again on the frozen process, whose log
# and database no longer move: a SIGKILL next meets the state COND
# describes, however far the worker got between the poll and the signal.
# False when COND no longer holds frozen.
freeze_when() {
    wait_until "$1" "$2" || return 1
    kill -STOP "$pid"
    eval "$2"
}
