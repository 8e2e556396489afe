#!/usr/bin/env bash
# The feature head's recipe on the GPU: the target writes the data, the head is trained on it
# and packed with its model card. Runs detached (setsid) past one command's limit; writes
# $SV/head/pipeline.log and $SV/head/DONE. Usage: bash scripts/gpu/head_pipeline.sh DATA_S TRAIN_S
set -uo pipefail
source scripts/gpu/env.sh
out=$SV/head
mkdir -p "$out"
{
  date -u
  python3 -m specviz.distill data --out "$out" --data-seconds "${1:-200}" --answer-batches 0 \
    --n-self 16384 --batch-size 2048 &&
  python3 -m specviz.distill head --out "$out" --train-seconds "${2:-450}" &&
  python3 -m specviz.distill pack-head --out "$out" --dest "$SV/packed"
  echo "exit $?"
  date -u
} >"$out/pipeline.log" 2>&1
touch "$out/DONE"
