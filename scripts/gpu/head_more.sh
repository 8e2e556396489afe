#!/usr/bin/env bash
# More training for the shipped feature head, on new target-written data: the target writes
# answers to prompts it writes itself under another seed (no seed prompts: their greedy
# answers would repeat the shipped head's data), then the head goes on training from the
# shipped one over the new data (and earlier folders given), is packed with its card and
# evaluated on the held-out prompts. Runs detached (setsid) past one command's limit;
# writes $SV/head-more/log and $SV/head-more/DONE; keep $SV/head-more/data-SEED (data.npz and
# data-meta.json) for the next round.
# Usage: bash scripts/gpu/head_more.sh SEED DATA_S TRAIN_S [EARLIER_DATA_FOLDERS,...]
set -uo pipefail
source scripts/gpu/env.sh
own_tree head-more-src
out=$SV/head-more
mkdir -p "$out"
seed=$1 data=$out/data-$1
{
  date -u
  run python3 -m specviz.distill data --out "$data" --seed "$seed" --n-seed 0 \
    --data-seconds "$2" --answer-batches 0 --n-self 16384 --batch-size 2048 &&
  run python3 -m specviz.distill head --out "$out" --data "$data${4:+,$4}" --init default \
    --train-seconds "$3" &&
  run python3 -m specviz.distill pack-head --out "$out" --dest "$out/packed" &&
  run python3 -m specviz.distill eval --drafter feature-head --head "$out/packed" \
    --n-per-category 6 --max-new-tokens 128 --temperatures 0 --json "$out/eval.json"
  echo "exit $?"
  date -u
} >"$out/log" 2>&1
touch "$out/DONE"
