#!/usr/bin/env bash
# The trained head against the target alone and against the draft model, on the GPU:
# held-out prompts per category at τ = 0, 0.7, 1.0 (CUDA graphs), a γ sweep of the bench, and
# the full bench at the best γ. Results into $OUT/head-results.tgz, the packed head into
# $OUT/head.tgz. Usage: bash scripts/gpu/head_eval.sh
set -uo pipefail
source scripts/gpu/env.sh
res=$SV/results
mkdir -p "$res"
head=$SV/packed
save() { cp "$SV"/head/*.log "$res/" 2>/dev/null; tar czf "$OUT/head-results.tgz" -C "$SV" results; }
tar czf "$OUT/head.tgz" -C "$SV" packed
run python3 -m specviz.distill eval --drafter feature-head --head "$head" --n-per-category 6 \
  --max-new-tokens 128 --json "$res/eval-head.json" > "$res/eval-head.md"
save
run python3 -m specviz.distill eval --drafter model --n-per-category 6 \
  --max-new-tokens 128 --temperatures 0 --json "$res/eval-draft.json" > "$res/eval-draft.md"
save
for g in 3 4 5 6; do
  run python3 -m specviz bench --device cuda --drafter feature-head --gamma $g \
    --engines graphs --no-transformers --repeats 2 --max-new-tokens 128 \
    --json "$res/sweep-head-g$g.json" > /dev/null
done
python3 - "$res" <<'PY' > "$res/sweep.md"
import json, sys, glob
rows = []
for f in sorted(glob.glob(sys.argv[1] + "/sweep-head-g*.json")):
    r = json.load(open(f)); e = r["per_engine"]["graphs"]
    rows.append((r["gamma"], e["speedup_vs_target_only"], e["alpha_hat"],
                 e["mean_accepted_length"], e["c"], e["v"]))
print("| γ | speedup vs graphed target-only | α̂ | tokens per step | c | v |")
print("|---:|---:|---:|---:|---:|---:|")
for g, s, a, L, c, v in rows:
    print(f"| {g} | {s:.3f} | {a:.3f} | {L:.2f} | {c:.3f} | {v:.3f} |")
best = max(rows, key=lambda r: r[1])[0]
print(f"\nbest gamma: {best}")
open(sys.argv[1] + "/best_gamma", "w").write(str(best))
PY
cat "$res/sweep.md"
save
g=$(cat "$res/best_gamma")
run python3 -m specviz bench --device cuda --drafter feature-head --gamma "$g" \
  --engines graphs --repeats 2 --max-new-tokens 128 --json "$res/bench-head.json" \
  --markdown "$res/bench-head.md" > /dev/null
run python3 -m specviz bench --device cuda --drafter model --gamma 4 \
  --engines graphs --repeats 2 --max-new-tokens 128 --json "$res/bench-draft.json" \
  --markdown "$res/bench-draft.md" > /dev/null
cat "$res"/eval-head.md "$res"/bench-head.md
save
