#!/usr/bin/env bash
# The decoding core before and after its rewrite, on this machine's CPU: the bench of a
# checkout of the earlier code (its specviz/ in OLD, default .old) and of this tree, taken in
# turn (before, after, before, after), each in its own process.
# Usage: bash scripts/bench_core_cpu.sh [OLD] [OUT]
set -euo pipefail
old=${1:-.old}
out=${2:-docs/bench/core-before-after}
mkdir -p "$out"
args=(bench --drafter model --gamma 4 --max-new-tokens 64 --repeats 2 --engines eager)
for round in 1 2; do
  for side in before after; do
    root=$([[ $side == before ]] && echo "$old" || echo .)
    echo "round $round, $side: load $(cut -d' ' -f1 /proc/loadavg)"
    PYTHONPATH=$root python3 -m specviz "${args[@]}" --json "$out/cpu-$side-$round.json" \
      > /dev/null
  done
done
