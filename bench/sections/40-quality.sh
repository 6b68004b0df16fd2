#!/usr/bin/env bash
# Quality: the CoDi table of the default adapters (bench/eval_adapters.sh);
# the quick run trains a tiny base and tiny adapters and says nothing about
# quality, only that the pipeline runs.
set -euo pipefail
{
    echo "## Quality"
    echo
    if [[ ${BENCH_QUICK:-0} == 1 ]]; then
        echo "\`bench/eval_adapters.sh --quick\`: a tiny base and tiny adapters trained for a few steps;" \
             "the figures check the pipeline, not quality (\`make bench\` scores the default adapters)."
        echo
        bash bench/eval_adapters.sh --quick
    else
        echo "\`bench/eval_adapters.sh\`: the default adapters on the default base, 256 CIFAR-10 test images" \
             "(CODI.md's protocol; the same tables go to bench/ADAPTERS.md and the model cards under" \
             "models/adapters/, and the figures into each adapter file)."
        echo
        OUT=bench/ADAPTERS.md.new bash bench/eval_adapters.sh
        mv bench/ADAPTERS.md.new bench/ADAPTERS.md
    fi
} >>"$BENCH_OUT"
