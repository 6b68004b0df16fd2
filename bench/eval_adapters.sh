#!/usr/bin/env bash
# The quality table of CODI.md's protocol, per task: CoDi at 1/2/4/8 steps,
# the teacher with DDIM at 4 and 50 steps, cm2 at 4 steps and the task's
# plain reference, scored on held-out CIFAR-10 test images (PSNR, SSIM,
# condition consistency, FID-proxy).
#
#   bench/eval_adapters.sh           the default adapters under models/adapters/
#                                    on the default base, 256 test images; the
#                                    figures are also written into each adapter
#                                    file (codid.eval) and its grid.png redrawn
#   bench/eval_adapters.sh --quick   the whole pipeline in a few minutes: a
#                                    tiny base pretrained for a few steps on
#                                    16x16 test images, tiny adapters trained
#                                    for a few steps; the figures say nothing
#                                    about quality, only that every stage runs
#
# Writes the tables to stdout and, with OUT=FILE, to FILE as markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
codid=$BUILD/codid
quick=0
[ "${1:-}" = "--quick" ] && quick=1
out=${OUT:-/dev/null}
[ "$out" = /dev/null ] || : >"$out"
threads=${THREADS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

[ -f data/cifar10/.done ] || make -s data

if [ $quick = 1 ]; then
    n=64
    $codid dataset import --source cifar10 --split test --size 16 --limit 512 --out "$work/set.cds" >/dev/null
    cat >"$work/config.json" <<'JSON'
{"_class_name":"UNet2DModel","sample_size":16,"in_channels":3,"out_channels":3,
 "block_out_channels":[16,32],"down_block_types":["DownBlock2D","AttnDownBlock2D"],
 "up_block_types":["AttnUpBlock2D","UpBlock2D"],"layers_per_block":1,"norm_num_groups":8,
 "attention_head_dim":16}
JSON
    $codid pretrain --data "$work/set.cds" --config "$work/config.json" --out "$work/base" \
        --steps 30 --batch 16 --threads "$threads" --log-every 1000 2>/dev/null
    base=$work/base
    testset=$work/set.cds
    tasks="sr4 inpaint"
    for name in $tasks; do
        case $name in
        sr4) task='{"name":"sr","factor":4}' ;;
        inpaint) task='{"name":"inpaint"}' ;;
        esac
        common="\"task\":$task,\"steps\":8,\"batch_size\":8,\"seed\":1"
        mkdir -p "$work/$name"
        $codid adapter train --model "$base" --data "$work/set.cds" --threads "$threads" \
            --out "$work/$name/$name.safetensors" --spec "{\"kind\":\"distill\",$common,\"n_grid\":10}" 2>/dev/null
        $codid adapter train --model "$base" --data "$work/set.cds" --threads "$threads" \
            --out "$work/$name/$name-teacher.safetensors" --spec "{\"kind\":\"teacher\",$common}" 2>/dev/null
        $codid adapter train --model "$base" --data "$work/set.cds" --threads "$threads" \
            --teacher "$work/$name/$name-teacher.safetensors" \
            --out "$work/$name/$name-cm2.safetensors" --spec "{\"kind\":\"cm2\",$common,\"n_grid\":10}" 2>/dev/null
    done
    adapters=$work
    classifier=()
else
    n=${N:-256}
    base=models/cifar10-base
    testset=$work/test.cds
    $codid dataset import --source cifar10 --split test --out "$testset" >/dev/null
    adapters=models/adapters
    tasks=${TASKS:-"sr4 inpaint colorize edges"}
    classifier=(--classifier models/cifar10-classifier)
fi

for name in $tasks; do
    dir=$adapters/$name
    [ -f "$dir/$name.safetensors" ] || { echo "skipping $name: no $dir/$name.safetensors"; continue; }
    case $name in
    sr4) args=(--task sr --factor 4 --plain bicubic) ;;
    inpaint) args=(--task inpaint --plain "mean fill") ;;
    colorize) args=(--task colorize --plain grey) ;;
    edges) args=(--task edges --canny 1) ;;
    *) echo "unknown task $name" >&2; exit 2 ;;
    esac
    methods=()
    for k in 1 2 4 8; do
        [ $quick = 1 ] && [ $k -gt 8 ] && continue
        methods+=(--method "CoDi-$k=$dir/$name.safetensors@$k")
    done
    if [ -f "$dir/$name-teacher.safetensors" ]; then
        methods+=(--method "teacher DDIM-4=$dir/$name-teacher.safetensors@4:ddim")
        methods+=(--method "teacher DDIM-50=$dir/$name-teacher.safetensors@50:ddim")
    fi
    [ -f "$dir/$name-cm2.safetensors" ] && methods+=(--method "cm2-4=$dir/$name-cm2.safetensors@4")
    grid=()
    [ $quick = 0 ] && grid=(--grid "$dir/grid.png" --record)
    {
        echo "### $name"
        echo
        $codid adapter eval --model "$base" --data "$testset" --n "$n" --threads "$threads" \
            "${args[@]}" "${methods[@]}" "${classifier[@]}" "${grid[@]}" 2>/dev/null
        echo
    } | tee -a "$out"
done
