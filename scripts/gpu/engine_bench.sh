#!/usr/bin/env bash
# The GPU engine's figures: graphs against graphs with fused (torch.compile) layers, float32
# and bfloat16 side by side in one process, beside transformers' static-cache generate; the
# feature head in bfloat16. First the fused engine's own tests on CUDA (when they fail, the
# fused engines are left out of the bench, and the log says so).
# Runs detached (setsid) past one command's limit; writes $SV/engine/log and $SV/engine/DONE.
# Usage: bash scripts/gpu/engine_bench.sh
set -uo pipefail
source scripts/gpu/env.sh
own_tree engine
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,utilization.gpu --format=csv
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  engines=graphs,graphs+fused
  if ! run python3 -m pytest -q -p no:cacheprovider tests/test_engine.py -k "cuda"; then
    echo "the CUDA engine tests failed: the bench runs without the fused engine"
    engines=graphs
  fi
  run python3 -m specviz bench --device cuda --dtype float32,bfloat16 --drafter model \
    --gamma 4 --engines $engines --no-transformers --transformers-static --repeats 2 \
    --max-new-tokens 128 --json "$res/dtypes.json" --markdown "$res/dtypes.md"
  run python3 -m specviz bench --device cuda --dtype bfloat16 --drafter feature-head --gamma 3 \
    --engines $engines --no-transformers --repeats 2 --max-new-tokens 128 \
    --json "$res/bf16-head.json" --markdown "$res/bf16-head.md"
  date -u
} >"$res/log" 2>&1
touch "$res/DONE"
