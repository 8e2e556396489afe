#!/usr/bin/env bash
# Two checks on the GPU engine's figures: (1) the fused engine in bfloat16 with torch.compile's
# recompilations logged (does a traced run compile new shapes part way?); (2) transformers'
# static-cache generate in float32 in a process where nothing else was compiled.
# Runs detached; writes $SV/probe/log and $SV/probe/DONE. Usage: bash scripts/gpu/engine_probe.sh
set -uo pipefail
source scripts/gpu/env.sh
own_tree probe
res=$SV/probe
mkdir -p "$res"
run() { echo "+ $*"; "$@"; }
{
  date -u
  TORCH_LOGS=recompiles run python3 -m specviz bench --device cuda --dtype bfloat16 \
    --drafter model --gamma 4 --engines graphs+fused --no-transformers --repeats 2 \
    --max-new-tokens 128 --json "$res/bf16-fused.json" 2>&1 |
    grep -E "Recompiling|bench|tokens/s|\| specviz|^\+" | grep -v "^V.*triggered"
  run python3 -m specviz bench --device cuda --drafter model --gamma 4 --engines graphs \
    --no-transformers --transformers-static --repeats 2 --max-new-tokens 128 \
    --json "$res/hf-static.json" --markdown "$res/hf-static.md"
  date -u
} >"$res/log" 2>&1
touch "$res/DONE"
