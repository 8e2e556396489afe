#!/usr/bin/env bash
# The Qwen2.5-Coder pair (1.5B target, 0.5B draft) on this machine's CPU, float32: fetch and
# convert it once, then one `specviz bench` over the held-out prompts: target-only and
# speculative (the 0.5B drafting, gamma 4) on the eager engine, with each prompt's greedy
# output compared to the target's own (the lossless test: "identical to target" must be
# every prompt). Writes docs/bench/qwen/cpu-<stamp>.{json,md} and a log with the machine
# load before and after; the kernel comparison of scripts/bench_matmul_rows.py --cpu goes to
# cpu-<stamp>-matmul.txt (SKIP_MATMUL=1 leaves it out).
# Usage: bash scripts/qwen_pair_cpu.sh [PROMPTS] [MAX_NEW_TOKENS] [REPEATS]
#   PROMPTS defaults to assets/prompts/heldout.jsonl (24 prompts, 4 categories: about an
#   hour on an idle 2-core CPU); EXTRA adds bench options (e.g. "--no-transformers").
set -euo pipefail
cd "$(dirname "$0")/.."
prompts=${1:-assets/prompts/heldout.jsonl}
tokens=${2:-64}
repeats=${3:-1}
out=docs/bench/qwen
stamp=${STAMP:-$(date -u +%Y%m%d-%H%M)}
mkdir -p "$out"
log="$out/cpu-$stamp.log"
load() { echo "$(date -u +%H:%M:%S) load average $(cut -d' ' -f1-3 /proc/loadavg)"; }
{
  echo "# scripts/qwen_pair_cpu.sh $prompts $tokens $repeats ${EXTRA:-}"
  python3 -c "import os, torch; from specviz.models import cpu_name; print(cpu_name(), os.cpu_count(), 'cores, torch', torch.__version__, torch.get_num_threads(), 'threads')"
  free -g | head -2
  load
} | tee "$log"
python3 -m specviz fetch --pair qwen2.5-coder 2>&1 | tee -a "$log"
if [[ -z ${SKIP_MATMUL:-} ]]; then  # SKIP_MATMUL=1 leaves the kernel comparison out
  python3 scripts/bench_matmul_rows.py --cpu --rounds 3 --shapes qwen > "$out/cpu-$stamp-matmul.txt"
fi
load | tee -a "$log"
# shellcheck disable=SC2086
python3 -m specviz bench --target embedded:qwen2.5-coder-1.5b-instruct --device cpu \
  --drafter model --gamma 4 --prompts "$prompts" --max-new-tokens "$tokens" \
  --repeats "$repeats" --engines eager ${EXTRA:-} \
  --json "$out/cpu-$stamp.json" --markdown "$out/cpu-$stamp.md" 2>&1 | tee -a "$log"
load | tee -a "$log"
python3 - "$out/cpu-$stamp.json" <<'PY' | tee -a "$log"
import json, sys
r = json.load(open(sys.argv[1]))
rows = r if isinstance(r, list) else [r]
for x in rows:
    same = x.get("prompts_identical_to_target_greedy") or {}
    print("greedy outputs identical to target-only, prompts per method:", same)
PY
