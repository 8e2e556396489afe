#!/usr/bin/env bash
# Token trees on the GPU: the tree tests on CUDA (graphed tree steps = direct ones, for the
# draft model and the feature head), then on the 24 held-out prompts (greedy, float32) the
# chain against static and dynamic trees: the feature head on CUDA graphs, the same with fused
# layers, and the draft model; each bench in one process with its own target-only baseline on
# the same engine, every method traced and untraced.
# Runs detached (setsid) past one command's limit; writes $SV/trees/log and $SV/trees/DONE.
# Usage: bash scripts/gpu/trees.sh
set -uo pipefail
source scripts/gpu/env.sh
own_tree trees
{
  date -u
  nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv
  run python3 -m pytest -q -p no:cacheprovider tests/test_tree_decoding.py
  bench trees-head --drafter feature-head --gamma 3 \
    --trees "chain 3-2-1 4-2-1-1 dynamic:16:6 dynamic:32:6 dynamic:48:6:6 dynamic:64:7:8"
  bench trees-head-fused --drafter feature-head --gamma 3 --engines graphs+fused \
    --trees "chain dynamic:32:6 dynamic:64:7:8"
  bench trees-model --drafter model --gamma 4 --trees "chain 3-2-1 dynamic:32:6 dynamic:64:7:8"
  nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv
  date -u
} >"$res/log" 2>&1
touch "$res/DONE"
