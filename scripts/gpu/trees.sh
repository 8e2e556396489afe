#!/usr/bin/env bash
# Token trees on the GPU: the tree tests on CUDA (graphed tree passes = direct ones), then the
# chain against static and dynamic trees on the 24 held-out prompts (CUDA graphs, greedy,
# float32), and the same with the feature head's chain beside it for reference.
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
  run python3 -m pytest -q -p no:cacheprovider tests/test_tree_decoding.py
  run python3 -m specviz bench --device cuda --drafter model --gamma 4 \
    --trees "chain 2-2-1 3-2-1 dynamic:8:6 dynamic:16:6 dynamic:32:10" \
    --prompts assets/prompts/heldout.jsonl --repeats 1 --max-new-tokens 128 \
    --json "$res/trees.json" --markdown "$res/trees.md"
  date -u
} >"$res/log" 2>&1
touch "$res/DONE"
