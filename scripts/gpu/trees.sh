#!/usr/bin/env bash
# Token trees on the GPU: the tree tests on CUDA (graphed tree steps = direct ones, for the
# draft model and the feature head), then on the 24 held-out prompts (CUDA graphs, greedy,
# float32) the feature head's chain against its static and dynamic trees, and the same for the
# draft model; each bench in one process with its own graphed target-only baseline.
# Runs detached (setsid) past one command's limit; writes $SV/trees/log and $SV/trees/DONE.
# Usage: bash scripts/gpu/trees.sh
set -uo pipefail
source scripts/gpu/env.sh
own_tree trees
res=$SV/trees
mkdir -p "$res"
run() { echo "+ $*"; "$@"; }
{
  date -u
  nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv
  run python3 -m pytest -q -p no:cacheprovider tests/test_tree_decoding.py
  run python3 -m specviz bench --device cuda --drafter feature-head --gamma 3 \
    --trees "chain 2-2-1 3-2-1 4-2-1-1 2-2-2-1 dynamic:16:6 dynamic:24:6 dynamic:32:6 dynamic:32:8:4" \
    --prompts assets/prompts/heldout.jsonl --repeats 1 --max-new-tokens 128 \
    --json "$res/trees-head.json" --markdown "$res/trees-head.md"
  run python3 -m specviz bench --device cuda --drafter model --gamma 4 \
    --trees "chain 3-2-1 dynamic:16:6 dynamic:32:8:4" \
    --prompts assets/prompts/heldout.jsonl --repeats 1 --max-new-tokens 128 \
    --json "$res/trees-model.json" --markdown "$res/trees-model.md"
  nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv
  date -u
} >"$res/log" 2>&1
touch "$res/DONE"
