#!/usr/bin/env bash
# Sampled token trees on the graphed engine: the CUDA tree tests (graphed sampled steps decide
# as direct ones), then `bench` at temperature 0.7 with sampled tree steps replayed as CUDA
# graphs (specviz.decoding.GRAPH_SAMPLED_TREES, the default) and run directly, each in its own
# process (ratios against that process's graphed target-only); `graphed-only` leaves out the
# direct run. Writes $SV/sampled-trees/log and $SV/sampled-trees/DONE (run it detached, with
# setsid, when it may outlast a command).
# Usage: bash scripts/gpu/sampled_trees.sh [graphed-only]
set -uo pipefail
source scripts/gpu/env.sh
own_tree sampled-trees
args=(--drafter feature-head --gamma 3 --temperature 0.7 --trees "chain 3-2-1 dynamic:48:6:6")
{
  date -u
  run python3 -m pytest -q -p no:cacheprovider -W ignore::UserWarning \
    tests/test_tree_decoding.py -k "cuda or graphed"
  bench graphed "${args[@]}"
  [[ ${1:-} == graphed-only ]] && { date -u; touch "$res/DONE"; exit 0; }
  echo "+ the same with GRAPH_SAMPLED_TREES = False"
  python3 - "$res" "${args[@]}" <<'PY'
import sys
import specviz.decoding as decoding
from specviz.cli import main
decoding.GRAPH_SAMPLED_TREES = False
res = sys.argv[1]
main(["bench", "--device", "cuda", "--prompts", "assets/prompts/heldout.jsonl", "--repeats", "1",
      "--max-new-tokens", "128", "--json", f"{res}/direct.json", "--markdown",
      f"{res}/direct.md", *sys.argv[2:]])
PY
  date -u
} >"$res/log" 2>&1
touch "$res/DONE"
