#!/usr/bin/env bash
# bench/run.sh [--quick] - run every benchmark section and write bench/RESULTS.md.
#
# RESULTS.md is a header (machine, date, commit, load) followed by one
# section per script in bench/sections/, run in name order. A section script
# appends its own markdown (starting with a "## " heading) to the file named
# by $BENCH_OUT; it reads $BENCH_QUICK (1: a cheaper subset for
# `make bench-quick`, 0: `make bench`) and $BUILD (the build folder). To add
# a section, drop a script there (20-serving.sh, 30-quality.sh, ...).
# Benchmarks print figures; none of them asserts a timing.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
export BENCH_QUICK=$quick BUILD="${BUILD:-build}"
export BENCH_OUT
BENCH_OUT=$(mktemp "${TMPDIR:-/tmp}/codid-results.XXXXXX")
trap 'rm -f "$BENCH_OUT"' EXIT

busy() {  # processes using more than 20% of a CPU, other than this run's
    ps -eo pid=,pcpu=,comm=,args= --sort=-pcpu |
        awk -v me=$$ '$1 != me && $3 != "ps" && $2 > 20 {printf "%s (%s%% CPU); ", substr($0, index($0, $4), 60), $2}'
}

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit + uncommitted changes"
{
    echo "# codid benchmarks"
    echo
    echo "Written by \`make bench$([[ $quick == 1 ]] && echo -quick)\` (bench/run.sh); do not edit by hand."
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- commit: $commit"
    echo "- machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs," \
         "$(free -g | awk '/^Mem:/ {print $2}') GiB RAM, $(uname -sr)"
    echo "- torch: libtorch $(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null)," \
         "python3-torch $(dpkg-query -W -f='${Version}' python3-torch 2>/dev/null)," \
         "OpenBLAS $(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null)"
    echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- other busy processes at start: $(busy)"
    echo
} >"$BENCH_OUT"

for section in bench/sections/*.sh; do
    echo "bench: $section" >&2
    bash "$section"
done

{
    echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- other busy processes at end: $(busy)"
} >>"$BENCH_OUT"
cp "$BENCH_OUT" bench/RESULTS.md
echo "bench: wrote bench/RESULTS.md" >&2
