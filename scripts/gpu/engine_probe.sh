#!/usr/bin/env bash
# Where a traced run on the fused graphed engine spends its time, run by run
# (scripts/gpu/fused_probe.py), with torch.compile's recompilations logged.
# Runs detached; writes $SV/probe/log and $SV/probe/DONE. Usage: bash scripts/gpu/engine_probe.sh
set -uo pipefail
source scripts/gpu/env.sh
own_tree probe
{
  date -u
  TORCH_LOGS=recompiles python3 scripts/gpu/fused_probe.py bfloat16
  date -u
} >"$res/log" 2>&1
touch "$res/DONE"
