#!/usr/bin/env bash
# Reproduces the GPU figures of docs/benchmarks.md on a CUDA machine: the engine tests (eager
# and CUDA-graph traces compared on the embedded pair), the bench for the draft model and for
# prompt lookup, and an example trace of the graphed path.
# Usage: bash scripts/bench_gpu.sh [OUT_DIR]   (offline: set SPECVIZ_GGUF first)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-artifacts/gpu}
mkdir -p "$out"
python3 -m specviz fetch
python3 -m pytest -q -s -p no:cacheprovider tests/test_engine.py 2>&1 | tee "$out/engine-tests.txt"
python3 -m specviz bench --device cuda --drafter model --gamma 4 --max-new-tokens 64 \
    --repeats 2 --json "$out/bench-draft-g4.json" --markdown "$out/bench-draft-g4.md"
python3 -m specviz run --device cuda --prompts assets/prompts/examples.jsonl --baseline \
    --drafter model --gamma 4 --max-new-tokens 96 --label "h200 draft model, greedy, CUDA graphs" \
    --out "$out/h200-smollm2-draft-greedy-graphs.jsonl"
python3 -m specviz bench --device cuda --drafter prompt-lookup --gamma 4 --max-new-tokens 64 \
    --repeats 1 --json "$out/bench-lookup-g4.json" --markdown "$out/bench-lookup-g4.md"
