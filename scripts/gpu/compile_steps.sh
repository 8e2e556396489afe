#!/usr/bin/env bash
# Fused graphed steps on the GPU: the CUDA tests of the fused engine, then
# scripts/gpu/compile_probe.py (plain against fused, side by side) on 8 held-out prompts.
# Runs detached (setsid); writes $SV/compile/log and $SV/compile/DONE.
set -uo pipefail
source scripts/gpu/env.sh
own_tree compile
{
  date -u
  nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv
  run python3 -m pytest -q -p no:cacheprovider tests/test_tree_decoding.py -k fused
  date -u
  run python3 scripts/gpu/compile_probe.py 8 plain,fused "${1:-chain:3,3-2-1,dynamic:48:6:6}"
  nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv
  date -u
} >"$res/log" 2>&1
touch "$res/DONE"
