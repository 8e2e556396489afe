#!/usr/bin/env bash
# A feature head for Qwen2.5-Coder-1.5B-Instruct in one go on one GPU (H100/H200): the target
# (de-quantised from its GGUF) writes its training data, the head is trained, evaluated on the
# held-out prompts against the 0.5B draft model, and packed with its model card.
#
# Usage, from the project's root on the GPU machine:
#   bash scripts/gpu/qwen_head.sh [GGUF_DIR] [SECONDS] [EXTRA ARGS for qwen-head...]
# GGUF_DIR (default /tmp/qwen) holds qwen2.5-coder-1.5b-instruct-q4_k_m.gguf and
# qwen2.5-coder-0.5b-instruct-q4_k_m.gguf; SECONDS (default 470) is the Python run's budget
# (loading included; the whole script stays under ~9 minutes on an H100 with the default).
# `--tiny` among the extra args runs tiny random models on the CPU instead (a test).
# The machine has no `gguf` package: carry its wheel (.carry/whl, from
# ../shared/tools/gpu-carry-prep) or put it in GGUF_DIR; the script installs it.
#
# Results go to $OUT (the device tool's folder; default /tmp/qwen-head/out), in at most 8
# files of at most 15 MiB: log.txt, summary.json, summary.md and head.tar.partNN (the packed
# head folder as a tar, split). Join them with
#   cat head.tar.part* | tar -xf - -C assets/models && mv assets/models/head \
#       assets/models/qwen2.5-coder-1.5b-feature-head
set -uo pipefail
gguf=${1:-/tmp/qwen}
secs=${2:-470}
shift $(( $# < 2 ? $# : 2 ))
export PYTHONUNBUFFERED=1
export PYTHONPATH=/tmp/qwen-head/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
out=${OUT:-/tmp/qwen-head/out}
work=/tmp/qwen-head/work
rm -rf "$work" && mkdir -p "$out" "$work" /tmp/qwen-head/site
# transformers reads GGUFs with the gguf package: install its wheel if python lacks it
if ! python3 -c "import gguf" 2>/dev/null; then
  wheels=$(ls .carry/whl/gguf-*.whl "$gguf"/gguf-*.whl 2>/dev/null | head -1)
  if [[ -n $wheels ]]; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/qwen-head/site "$wheels"
  else
    echo "warning: no gguf package and no gguf wheel in .carry/whl or $gguf" >&2
  fi
fi
{
  date -u
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
  echo "+ python3 -m specviz.distill qwen-head $gguf $work/result --seconds $secs --work $work/scratch $*"
  python3 -m specviz.distill qwen-head "$gguf" "$work/result" --seconds "$secs" \
    --work "$work/scratch" "$@"
  echo $? > "$work/status"
  echo "exit $(cat "$work/status")"
  date -u
} 2>&1 | tee "$out/log.txt"
cp "$work"/result/summary.json "$work"/result/summary.md "$out"/ 2>/dev/null
if [[ -d $work/result/head ]]; then
  tar -C "$work/result" -cf - head | split -b 15m -d - "$out/head.tar.part"
fi
ls -l "$out"
exit "$(cat "$work/status" 2>/dev/null || echo 1)"
