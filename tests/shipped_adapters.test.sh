#!/usr/bin/env bash
# Adapters shipped beside the model (models/adapters/<folder>/<name>.safetensors
# next to models/cifar10-base) are registered when the daemon starts: those
# trained for the loaded base only, once however often it restarts, under
# their file names, and they generate at once. Tiny bases and adapters,
# trained here for a few steps, stand in for the real ones.
source "$(dirname "$0")/tools/api_lib.sh"

models=$tmp/models
mkdir -p "$models/adapters/sr2" "$models/adapters/other" "$models/adapters/junk"
"$BIN" dataset import --source cifar10 --split test --size 16 --limit 32 --out "$tmp/set.cds" >/dev/null 2>&1
cat >"$tmp/config.json" <<'JSON'
{"_class_name":"UNet2DModel","sample_size":16,"in_channels":3,"out_channels":3,
 "block_out_channels":[16,16],"down_block_types":["DownBlock2D","DownBlock2D"],
 "up_block_types":["UpBlock2D","UpBlock2D"],"layers_per_block":1,"norm_num_groups":8}
JSON
for b in tiny twin; do # the same architecture, different weights
    seed=1; [ $b = twin ] && seed=2
    "$BIN" pretrain --data "$tmp/set.cds" --config "$tmp/config.json" --out "$models/$b" --steps 2 \
        --batch 4 --seed $seed --threads 1 >/dev/null 2>&1
done
train() { # BASE OUT
    "$BIN" adapter train --model "$1" --data "$tmp/set.cds" --out "$2" --threads 1 \
        --spec '{"kind":"distill","task":{"name":"sr","factor":2},"adapter_kind":"lite","steps":2,"batch_size":4,"n_grid":10}' \
        >/dev/null 2>&1
}
train "$models/tiny" "$models/adapters/sr2/sr2.safetensors"
train "$models/twin" "$models/adapters/other/other.safetensors"
# the figures of an evaluation travel in the file (codid.eval) to the registry
"$BIN" adapter eval --model "$models/tiny" --data "$tmp/set.cds" --n 8 --threads 1 --task sr --factor 2 \
    --method "K2=$models/adapters/sr2/sr2.safetensors@2" --plain bicubic --record >/dev/null 2>&1
echo "not a safetensors file" >"$models/adapters/junk/junk.safetensors"
echo "a file beside the folders is ignored" >"$models/adapters/README.md"
if [ -f "$models/adapters/sr2/sr2.safetensors" ] && [ -f "$models/adapters/other/other.safetensors" ]; then
    ok tiny_models_trained
else
    bad tiny_models_trained "pretrain or adapter train failed"
    finish
fi

names() { jget '",".join(sorted(a["name"] for a in d["adapters"]))'; }

start_daemon first --model "$models/tiny"
call GET /v1/adapters
expect registers_only_this_bases_adapters test "$(names)" = sr2
sr2_id=$(jget 'd["adapters"][0]["id"]')
expect registered_from_the_shipped_file pycheck 'd["adapters"][0]["path"].endswith("/adapters/sr2/sr2.safetensors")
    and d["adapters"][0]["task"] == "sr" and d["adapters"][0]["kind"] == "lite"'
call GET /v1/adapters/sr2
expect metadata_from_the_file pycheck 'd["metadata"]["recipe"]["trainer"] == "distill"
    and d["metadata"]["recipe"]["steps"] == 2 and d["metadata"]["factor"] == "2"'
expect evaluation_recorded_in_metadata pycheck 'd["metadata"]["eval"]["n"] == 8
    and d["metadata"]["eval"]["results"]["K2"]["steps"] == 2
    and 0 < d["metadata"]["eval"]["results"]["K2"]["psnr"] < 100 and "bicubic" not in d["metadata"]["eval"]["results"]'
if grep -q "other.safetensors: trained for base" "$log" && grep -q "junk.safetensors: unreadable" "$log"; then
    ok skipped_files_logged
else bad skipped_files_logged "$(grep -i shipped "$log")"; fi
make_png "$tmp/low.png" 16 16 3
call POST /v1/generate -H 'Accept: image/png' -F adapter=sr2 -F "image=@$tmp/low.png" -F seed=3 -F steps=2
expect shipped_adapter_generates test "$code" = 200 -a "$(header content-type)" = image/png
stop_daemon

# a restart on the same data dir: the same registration, not a second one
start_daemon first --model "$models/tiny" --data-dir "$tmp/first/var"
call GET /v1/adapters
expect restart_registers_nothing_twice pycheck 'len(d["adapters"]) == 1 and d["adapters"][0]["id"] == int(argv[0])' "$sr2_id"
# deleting it unregisters it but leaves the shipped file in place
call DELETE /v1/adapters/sr2
expect delete_keeps_shipped_file test "$code" = 204 -a -f "$models/adapters/sr2/sr2.safetensors"
stop_daemon

# the other base picks its own; none turns the folder off; another folder
start_daemon twin --model "$models/twin"
call GET /v1/adapters
expect other_base_gets_its_own test "$(names)" = other
stop_daemon
start_daemon off --model "$models/tiny" --adapters-dir none
call GET /v1/adapters
expect adapters_dir_none test "$code" = 200 -a -z "$(names)"
stop_daemon
mkdir -p "$tmp/elsewhere/x"
cp "$models/adapters/sr2/sr2.safetensors" "$tmp/elsewhere/x/sr2-copy.safetensors"
start_daemon explicit --model "$models/tiny" --adapters-dir "$tmp/elsewhere"
call GET /v1/adapters
expect adapters_dir_explicit test "$(names)" = sr2-copy
stop_daemon
start_daemon missing --model "$models/tiny" --adapters-dir "$tmp/no-such-folder"
call GET /v1/adapters
expect missing_folder_is_no_adapters test "$code" = 200 -a -z "$(names)"
stop_daemon
# The real thing: the README's commands for the adapters shipped under
# models/adapters/, against the default base they were trained for.
script=$tmp/adapters.sh
awk '/<!-- adapters:begin -->/ {on = 1; next} /<!-- adapters:end -->/ {on = 0} on' README.md |
    grep -v '^```' >"$script"
start_daemon shipped --model "$ROOT/models/cifar10-base" --threads 2
call GET /v1/adapters
expect default_adapters_registered pycheck '{"sr4", "inpaint", "colorize", "edges", "sr4-teacher", "sr4-cm2",
    "inpaint-teacher", "inpaint-cm2"} <= {a["name"] for a in d["adapters"]}'
mkdir -p "$tmp/readme"
(cd "$tmp/readme" && sed "s#http://127.0.0.1:8080#$base#g" "$script" | bash -e) >"$tmp/readme.out" 2>&1
expect readme_adapter_commands_run test $? = 0
pngs() { /usr/bin/python3 - "$tmp/readme" <<'PY'
import struct, sys, hashlib
seen = set()
for f in ["photo", "sr4", "inpaint", "colorize", "edges"]:
    b = open(f"{sys.argv[1]}/{f}.png", "rb").read()
    assert b[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", b[16:24]) == (32, 32), f
    seen.add(hashlib.sha256(b).hexdigest())
assert len(seen) == 5, "two outputs are the same image"
PY
}
expect readme_adapter_outputs_are_distinct_32px_pngs pngs
stop_daemon
finish
