#!/usr/bin/env bash
# The GPU engine's figures: graphs against graphs with fused (torch.compile) layers, float32
# and bfloat16, beside transformers' static-cache generate; the feature head in bfloat16.
# Runs detached (setsid) past one command's limit; writes $SV/engine/log and $SV/engine/DONE.
# Usage: bash scripts/gpu/engine_bench.sh
set -uo pipefail
source scripts/gpu/env.sh
res=$SV/engine
mkdir -p "$res"
run() { echo "+ $*"; "$@"; }
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,utilization.gpu --format=csv
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  run python3 -m specviz bench --device cuda --drafter model --gamma 4 \
    --engines graphs,graphs+fused --transformers-static --repeats 2 --max-new-tokens 128 \
    --json "$res/fp32.json" --markdown "$res/fp32.md"
  run python3 -m specviz bench --device cuda --dtype bfloat16 --drafter model --gamma 4 \
    --engines graphs,graphs+fused --no-transformers --repeats 2 --max-new-tokens 128 \
    --json "$res/bf16.json" --markdown "$res/bf16.md"
  run python3 -m specviz bench --device cuda --dtype bfloat16 --drafter feature-head --gamma 3 \
    --engines graphs,graphs+fused --no-transformers --repeats 2 --max-new-tokens 128 \
    --json "$res/bf16-head.json" --markdown "$res/bf16-head.md"
  date -u
} >"$res/log" 2>&1
touch "$res/DONE"
