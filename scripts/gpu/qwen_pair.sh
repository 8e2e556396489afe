#!/usr/bin/env bash
# The Qwen2.5-Coder pair on one GPU (H100/H200), in stages run from the project's root on the
# device machine, each a command of its own (each well under ten minutes):
#
#   bash scripts/gpu/qwen_pair.sh assemble   # GGUF parts in /tmp/q (t?? the 1.5B, d?? the 0.5B)
#                                            # joined and checked, both converted into the cache,
#                                            # one lossless run on the CUDA-graph engine
#                                            # (LOSSLESS=0 skips it: the bench checks too)
#   bash scripts/gpu/qwen_pair.sh head SECS  # the feature head (scripts/gpu/qwen_head.sh) from
#                                            # the converted models, into assets/models
#   bash scripts/gpu/qwen_pair.sh data SECS  # or the same in two runs: the target writes the
#   bash scripts/gpu/qwen_pair.sh train SECS # data, then the head trains on all of it
#   bash scripts/gpu/qwen_pair.sh bench [N [PARTS]]  # target-only, draft model, feature head,
#                                            # trees and transformers' assisted generation over N
#                                            # held-out prompts a category; PARTS picks among
#                                            # draft,head,trees (default all)
#
# The parts come from splitting the two GGUFs named in docs/qwen.md (split -b 58M -d -a 2);
# the gguf wheel in .carry/whl. Results go to $OUT (the device tool's folder).
set -uo pipefail
stage=${1:?stage: assemble, head or bench}
shift
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
export SPECVIZ_CACHE=/tmp/svc PYTHONPATH=/tmp/site:$PWD
out=${OUT:-/tmp/qwen-out}
mkdir -p "$out" /tmp/qwen /tmp/site
T=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
D=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
T_SHA=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
D_SHA=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
TARGET=embedded:qwen2.5-coder-1.5b-instruct
HEAD_DIR=assets/models/qwen2.5-coder-1.5b-feature-head

env_line() {
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
}

# held-out prompts: N per category (the bench's prompt set)
prompts() {
  python3 - "$1" <<'EOF'
import json, sys
n, seen = int(sys.argv[1]), {}
for line in open("assets/prompts/heldout.jsonl"):
    r = json.loads(line)
    if seen.get(r["category"], 0) < n:
        seen[r["category"]] = seen.get(r["category"], 0) + 1
        print(json.dumps(r))
EOF
}

case $stage in
assemble)
  env_line | tee "$out/assemble.log"
  # the draft's parts (d??) may stay behind: then only the target is assembled (the head
  # and its benches need no draft model; the draft-model bench does)
  cat /tmp/q/t?? > /tmp/qwen/$T || exit 1
  echo "$T_SHA  /tmp/qwen/$T" > /tmp/qwen/sha
  if ls /tmp/q/d?? >/dev/null 2>&1; then
    cat /tmp/q/d?? > /tmp/qwen/$D && echo "$D_SHA  /tmp/qwen/$D" >> /tmp/qwen/sha
  fi
  sha256sum -c /tmp/qwen/sha 2>&1 | tee -a "$out/assemble.log" || exit 1
  rm -f /tmp/q/t?? /tmp/q/d??
  python3 -c "import gguf" 2>/dev/null || \
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .carry/whl/gguf-*.whl
  if [[ -f /tmp/qwen/$D ]]; then
    { time python3 -m specviz fetch --pair qwen2.5-coder --gguf /tmp/qwen/$T \
        --draft-gguf /tmp/qwen/$D; } 2>&1 | grep -v '%|' | tee -a "$out/assemble.log"
  else
    { time python3 -c "import sys; from specviz.models import fetch_embedded
print(fetch_embedded('qwen2.5-coder-1.5b-instruct', sys.argv[1]))" /tmp/qwen/$T; } \
      2>&1 | tee -a "$out/assemble.log"
  fi
  [[ ${LOSSLESS:-1} == 0 ]] && exit 0  # LOSSLESS=0: no check here (the bench checks too)
  prompts 1 > /tmp/qwen/one.jsonl
  python3 -m specviz run --target $TARGET --device cuda --engine graphs --drafter model \
    --prompts /tmp/qwen/one.jsonl --max-new-tokens 64 --baseline --rounds 1 \
    --out "$out/lossless-graphs.jsonl" 2>&1 | tee -a "$out/assemble.log"
  ;;
head|data|train)
  # head: data and training in one run; data then train: the same in two runs (each up to
  # ten minutes), the data kept in the scratch folder between them
  extra=()
  [[ $stage == data ]] && extra=(--data-only)
  [[ $stage == train ]] && extra=(--reuse-data)
  # the converted models as the head's scratch folder (no second conversion)
  # (qwen-head converts into WORK/models/NAME unless NAME/config.json is there)
  scratch=/tmp/qwen-scratch && mkdir -p $scratch/models
  ln -sfn $SPECVIZ_CACHE/models/qwen2.5-coder-1.5b-instruct $scratch/models/${T%.gguf}
  ln -sfn $SPECVIZ_CACHE/models/qwen2.5-coder-0.5b-instruct $scratch/models/${D%.gguf}
  bash scripts/gpu/qwen_head.sh /tmp/qwen "${1:-420}" --work $scratch "${extra[@]}" "${@:2}"
  if [[ $stage != data ]]; then
    rm -rf /tmp/qwen-head-keep && cp -r /tmp/qwen-head/work/result/head /tmp/qwen-head-keep
  fi
  ;;
bench)
  env_line | tee "$out/bench.log"
  if [[ -d /tmp/qwen-head-keep ]]; then
    mkdir -p assets/models && rm -rf $HEAD_DIR && cp -r /tmp/qwen-head-keep $HEAD_DIR
  fi
  n=${1:-2}
  parts=${2:-draft,head,trees}  # which benches: draft, head, trees (comma-separated)
  prompts "$n" > /tmp/qwen/bench.jsonl
  common=(--target $TARGET --device cuda --prompts /tmp/qwen/bench.jsonl --max-new-tokens 128
          --repeats 2)
  [[ ,$parts, == *,draft,* ]] && python3 -m specviz bench "${common[@]}" --drafter model \
    --engines graphs --gamma 4 \
    --json "$out/bench-draft.json" --markdown "$out/bench-draft.md" 2>&1 | tee -a "$out/bench.log"
  if [[ -d $HEAD_DIR ]]; then
    [[ ,$parts, == *,head,* ]] && python3 -m specviz bench "${common[@]}" \
      --drafter feature-head --draft none --engines graphs --gamma 4 \
      --no-transformers --json "$out/bench-head.json" --markdown "$out/bench-head.md" \
      2>&1 | tee -a "$out/bench.log"
    [[ ,$parts, == *,trees,* ]] && python3 -m specviz bench "${common[@]}" \
      --drafter feature-head --draft none --engines graphs --trees "chain 3-2-1 dynamic:16:6 dynamic:32:8" --no-transformers \
      --json "$out/bench-trees.json" --markdown "$out/bench-trees.md" 2>&1 | tee -a "$out/bench.log"
  fi
  ;;
*) echo "unknown stage $stage" >&2; exit 2 ;;
esac
