#!/usr/bin/env bash
# The few-row kernel on the GPU. `rows.sh`: its tests and the CUDA tree/engine tests, the
# probe (the engine's tiles against cuBLAS; verify passes and tree steps with the kernel off
# and on), then the feature head's tree bench on the 24 held-out prompts with it (as
# scripts/gpu/trees.sh). `rows.sh model`: its tests, then the draft model's tree bench.
# Runs detached (setsid); writes $SV/rows/log (or model.log) and $SV/rows/DONE (model.DONE).
set -uo pipefail
source scripts/gpu/env.sh
own_tree rows
if [[ ${1:-} == model ]]; then
  { date -u
    run python3 -m pytest -q -p no:cacheprovider tests/test_skinny.py
    bench trees-model --drafter model --gamma 4 --trees "chain 3-2-1 dynamic:32:6 dynamic:64:7:8"
    date -u; } >"$res/model.log" 2>&1
  touch "$res/model.DONE"
  exit 0
fi
{
  date -u
  nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv
  run python3 -m pytest -q -p no:cacheprovider tests/test_skinny.py tests/test_engine.py \
    tests/test_tree_decoding.py -k "skinny or kernel or cuda or graphed or embedded_pair"
  date -u
  run python3 scripts/gpu/skinny_probe.py 8 quick
  date -u
  bench trees-head --drafter feature-head --gamma 3 \
    --trees "chain 3-2-1 4-2-1-1 dynamic:16:6 dynamic:32:6 dynamic:48:6:6 dynamic:64:7:8"
  nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv
  date -u
} >"$res/log" 2>&1
touch "$res/DONE"
