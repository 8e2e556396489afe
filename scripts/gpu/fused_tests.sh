#!/usr/bin/env bash
# The CUDA tests of the graphed and fused engines (token trees, chains, the few-row kernel).
# Runs detached (setsid); writes $SV/fused-tests/log and $SV/fused-tests/DONE.
set -uo pipefail
source scripts/gpu/env.sh
own_tree fused-tests
{
  date -u
  run python3 -m pytest -q -p no:cacheprovider -W ignore::UserWarning tests/test_skinny.py \
    tests/test_tree_decoding.py \
    tests/test_engine.py -k "fused or cuda or graphed or kernel"
  date -u
} >"$res/log" 2>&1
touch "$res/DONE"
