#!/usr/bin/env bash
# Token-tree steps on the GPU after a change to how they are built: the CUDA tests of the
# kernel, the graphed engine and the trees; the probe of the few-row kernel with the MLP's
# SwiGLU inside (products, verify passes by rows, tree steps: outside and inside); then the
# tree bench on the 24 held-out prompts for the feature head and for the draft model (as
# scripts/gpu/trees.sh). `tree_steps.sh quick`: the kernel's tests, the probe's products and
# passes, and the feature head's bench only.
# Runs detached (setsid); writes $SV/steps/log and $SV/steps/DONE.
set -uo pipefail
source scripts/gpu/env.sh
own_tree steps
quick=${1:-}
{
  date -u
  nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv
  if [[ $quick == quick ]]; then
    run python3 -m pytest -q -p no:cacheprovider tests/test_skinny.py
    run python3 scripts/gpu/prologue_probe.py 0
  else
    run python3 -m pytest -q -p no:cacheprovider tests/test_skinny.py tests/test_engine.py \
      tests/test_tree_decoding.py tests/test_tree.py \
      -k "skinny or kernel or cuda or graphed or embedded_pair or device"
    run python3 scripts/gpu/prologue_probe.py 8
  fi
  date -u
  bench trees-head --drafter feature-head --gamma 3 \
    --trees "chain 3-2-1 4-2-1-1 dynamic:16:6 dynamic:32:6 dynamic:48:6:6 dynamic:64:7:8"
  date -u
  if [[ $quick != quick ]]; then
    bench trees-model --drafter model --gamma 4 --trees "chain 3-2-1 dynamic:32:6 dynamic:64:7:8"
  fi
  nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv
  date -u
} >"$res/log" 2>&1
touch "$res/DONE"
