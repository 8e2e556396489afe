#!/usr/bin/env bash
# Regenerates the traces the guided lessons read, into assets/traces/lessons/, on this machine
# (the hardware and the command line are recorded in each run record). Three prompts, 48 new
# tokens each: a few minutes on 2 CPU cores. Usage: bash scripts/make_lesson_traces.sh
# Which lesson reads which file: FILES in each specviz/teaching/lessons/<slug>.py. Every claim a
# lesson's text makes is checked against these runs by tests/test_lessons.py, so a re-recording
# that contradicts a text fails the tests: re-read the failing claims and the text then.
set -euo pipefail
cd "$(dirname "$0")/.."
out=assets/traces/lessons
mkdir -p "$out"
prompts=assets/prompts/lessons.jsonl  # the first three prompts of examples.jsonl
run() { nice -n 10 python3 -m specviz run --prompts "$prompts" --max-new-tokens 48 --drafter model "$@"; }

# draft length sweep, greedy, each with its own target-only baseline (efficiency-limits,
# gamma-budget, parallel-verification, architecture and others read gamma-4)
for g in 1 2 4 8; do
  run --gamma "$g" --baseline --label "lesson: draft model, greedy, gamma $g" --out "$out/gamma-$g.jsonl"
done
# temperature-and-roles: temperature (greedy is gamma-4.jsonl) and the roles swapped
for t in 0.7 1.0; do
  run --gamma 4 --temperature "$t" --seed 1 --baseline --label "lesson: draft model, tau $t" \
      --out "$out/tau-$t.jsonl"
done
run --target embedded:smollm2-draft --draft embedded:smollm2-135m-instruct --gamma 4 --baseline \
    --label "lesson: roles swapped (135M model drafts for the small one)" --out "$out/roles-swapped.jsonl"
# draft-length-policy (and parallel-verification, for passes of every length): the policies
run --gamma 4 --policy heuristic --label "lesson: heuristic policy, start gamma 4" \
    --out "$out/policy-heuristic.jsonl"
for th in 0.3 0.5 0.7; do
  run --gamma 8 --policy confidence --confidence-threshold "$th" \
      --label "lesson: confidence policy, threshold $th, gamma up to 8" --out "$out/policy-confidence-$th.jsonl"
done
# fast-but-wrong: a deliberately wrong verifier, greedy with its baseline, and sampled
run --gamma 4 --verifier accept-high-q --baseline --label "lesson: wrong verifier accept-high-q, greedy" \
    --out "$out/wrong-accept-high-q-greedy.jsonl"
run --gamma 4 --temperature 0.7 --seed 1 --verifier accept-high-q \
    --label "lesson: wrong verifier accept-high-q, tau 0.7" --out "$out/wrong-accept-high-q-t0.7.jsonl"
# feature-head: the feature head and the draft model on the same prompts, back to back
run --gamma 4 --drafter feature-head --baseline --label "lesson: feature head, greedy, gamma 4" \
    --out "$out/feature-head.jsonl"
run --gamma 4 --drafter model --baseline \
    --label "lesson: draft model beside the feature head, greedy, gamma 4" --out "$out/draft-beside-head.jsonl"
# token-trees: the chain and two trees on the static engine (trees run there), back to back
run --gamma 4 --engine static --baseline --label "lesson: chain of 4, static engine, greedy" \
    --out "$out/tree-chain.jsonl"
run --tree 3,2,1 --baseline --label "lesson: static tree 3-2-1, greedy" --out "$out/tree-static.jsonl"
run --tree dynamic:16:6 --baseline --label "lesson: dynamic tree, 16 nodes, greedy" \
    --out "$out/tree-dynamic.jsonl"
