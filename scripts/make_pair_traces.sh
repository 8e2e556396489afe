#!/usr/bin/env bash
# Records both embedded pairs on the SAME code prompt(s), each speculative run (draft model,
# greedy, gamma 4) linked to a target-only baseline measured over rounds, into ONE file that
# the Overview reads to compare the pairs: assets/traces/cpu-pairs-code.jsonl.
#   135M pair: embedded:smollm2-135m-instruct (p) with its shipped draft (q)
#   1.5B pair: embedded:qwen2.5-coder-1.5b-instruct (p) with embedded:qwen2.5-coder-0.5b-instruct (q),
#              its linear layers in int8 (--draft-int8; QWEN_DRAFT_INT8=0 for float32)
# The bundled speed-ups must be measured on an IDLE machine: the script prints the load
# average before and after, and refuses to start when the 1-minute load is above 1.5 unless
# FORCE=1. Needs ~10 GB of free memory (the 1.5B pair in float32).
#
# Usage: bash scripts/make_pair_traces.sh
# Environment (defaults in brackets):
#   TOKENS [64] new tokens per run; ROUNDS [3] baseline rounds; DEVICE [cpu]
#   (the prompt: the code prompt of assets/prompts/examples.jsonl, also in the 135M bundled runs)
#   OUT [assets/traces/cpu-pairs-code.jsonl]; FORCE [0]
# A development run (fewer tokens, a loaded machine) should say so in its name, e.g.
#   FORCE=1 TOKENS=24 ROUNDS=1 OUT=assets/traces/cpu-pairs-code-provisional.jsonl bash scripts/make_pair_traces.sh
# Writing the default OUT removes assets/traces/cpu-pairs-code-provisional.jsonl, so the
# Overview never compares a provisional recording with the real one.
set -euo pipefail
cd "$(dirname "$0")/.."
tokens=${TOKENS:-64}
rounds=${ROUNDS:-3}
device=${DEVICE:-cpu}
final=assets/traces/cpu-pairs-code.jsonl
out=${OUT:-$final}
prompt='Write a Python function that checks whether a string is a palindrome.'

load() { python3 -c "import os; print('%.2f %.2f %.2f' % os.getloadavg())"; }
one=$(python3 -c "import os; print('%.2f' % os.getloadavg()[0])")
echo "load average (1, 5, 15 min) before: $(load) on $(nproc) cores"
if python3 -c "import sys; sys.exit(0 if float('$one') > 1.5 else 1)"; then
  if [[ "${FORCE:-0}" != 1 ]]; then
    echo "REFUSED: load average $one > 1.5. The bundled speed-ups must be measured on an idle" >&2
    echo "machine; stop the other work, or set FORCE=1 for a development recording (name it so)." >&2
    exit 2
  fi
  echo "!!!!!!!! WARNING: load average $one > 1.5 and FORCE=1: the speed-ups in $out are NOT" \
       "an idle machine's; do not bundle them as the real numbers. !!!!!!!!" >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() {
  python3 -m specviz run --prompt "$prompt" --baseline --rounds "$rounds" \
      --max-new-tokens "$tokens" --drafter model --gamma 4 --temperature 0 \
      --device "$device" --dtype float32 "$@"
}
echo "[1/2] the 135M pair ($(date -u +%H:%M:%S) UTC)"
run --target embedded:smollm2-135m-instruct \
    --label "$device pairs: 135M target, draft model, greedy" --out "$tmp/smollm2.jsonl"
echo "load average after the 135M pair: $(load)"
echo "[2/2] the 1.5B pair ($(date -u +%H:%M:%S) UTC)"
if [[ "${QWEN_DRAFT_INT8:-1}" == 1 ]]; then  # the 0.5B with int8 weights (--draft-int8)
  run --target embedded:qwen2.5-coder-1.5b-instruct --draft embedded:qwen2.5-coder-0.5b-instruct \
      --draft-int8 --label "$device pairs: 1.5B target, 0.5B draft (int8 weights), greedy" \
      --out "$tmp/qwen.jsonl"
else
  run --target embedded:qwen2.5-coder-1.5b-instruct --draft embedded:qwen2.5-coder-0.5b-instruct \
      --label "$device pairs: 1.5B target, 0.5B draft, greedy" --out "$tmp/qwen.jsonl"
fi
cat "$tmp/smollm2.jsonl" "$tmp/qwen.jsonl" > "$out"
if [[ "$out" == "$final" ]]; then rm -f assets/traces/cpu-pairs-code-provisional.jsonl; fi
echo "load average after: $(load) ($(date -u +%H:%M:%S) UTC)"
echo "wrote $out"
