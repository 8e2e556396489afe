#!/usr/bin/env bash
# Regenerates the bundled example traces in assets/traces/ on this machine (the hardware is
# recorded in each run record). Usage: bash scripts/make_example_traces.sh [PREFIX]
# PREFIX defaults to "cpu"; on a GPU box use e.g. "h200" (add --device cuda via EXTRA). The
# bundled h200-* files were made with EXTRA="--device cuda --engine eager" (transformers'
# forward); h200-smollm2-draft-greedy-graphs.jsonl comes from scripts/bench_gpu.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-cpu}
extra=${EXTRA:-}
prompts=assets/prompts/examples.jsonl
run() { python3 -m specviz run --prompts "$prompts" --baseline --max-new-tokens 96 $extra "$@"; }
if python3 -c "import sys; from specviz.models import embedded_names; sys.exit('smollm2-draft' not in embedded_names())"; then
  run --drafter model --gamma 4 --label "$prefix draft model, greedy" \
      --out "assets/traces/$prefix-smollm2-draft-greedy.jsonl"
  run --drafter model --gamma 4 --temperature 0.7 --label "$prefix draft model, tau 0.7" \
      --out "assets/traces/$prefix-smollm2-draft-t0.7.jsonl"
  # token trees (the static engine, where trees run on a CPU): a static tree, greedy, and a
  # dynamic one under sampling, whose walk the walkthrough tells child by child
  run --drafter model --tree 3,2,1 --engine static --label "$prefix draft model, tree 3-2-1, greedy" \
      --out "assets/traces/$prefix-smollm2-draft-tree-greedy.jsonl"
  run --drafter model --tree dynamic:16:6 --engine static --temperature 0.7 \
      --label "$prefix draft model, dynamic tree 16, tau 0.7" \
      --out "assets/traces/$prefix-smollm2-draft-tree-t0.7.jsonl"
fi
run --drafter prompt-lookup --gamma 4 --label "$prefix prompt lookup, greedy" \
    --out "assets/traces/$prefix-smollm2-prompt-lookup-greedy.jsonl"
run --drafter early-exit --early-exit-layers 8 --gamma 4 --label "$prefix early exit (8 layers), greedy" \
    --out "assets/traces/$prefix-smollm2-early-exit-greedy.jsonl"
