"""Generate a synthetic runs dataset (specviz.runs.dataset layout) for the Runs page's benchmark.

    python3 scripts/make_runs_dataset.py OUT_DIR [--runs 10000] [--steps 5000000] [--seed 0]

Runs get a set-up drawn from a few pairs, drafters, γ, τ, devices, engines and prompt
categories; a run's steps accept a geometric number of drafts (i.i.d. with the run's α, as
the theory's model), so the aggregates have known answers. 60 % of the runs are
speculative; each target-only run names the speculative run it is the baseline of
(baseline_of), two thirds of the speculative runs have one. The runs have no traces (their
rows alone), so the Runs page says so when one is opened. Not for git: write it under /tmp.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from specviz.runs.dataset import write_tables  # noqa: E402
from specviz.runs.tables import RUN_SCHEMA, STEP_SCHEMA, shape_of  # noqa: E402

PAIRS = [("hf:meta-llama/Llama-3.1-8B-Instruct", "hf:meta-llama/Llama-3.2-1B-Instruct"),
         ("embedded:smollm2-135m-instruct", "embedded:smollm2-draft"),
         ("hf:Qwen/Qwen2.5-7B-Instruct", "hf:Qwen/Qwen2.5-0.5B-Instruct")]
DRAFTERS = {"model": 0.72, "feature-head": 0.78, "prompt-lookup": 0.45, "early-exit": 0.35}
GAMMAS = [2, 4, 6, 8]
TAUS = [0.0, 0.7, 1.0]
DEVICES = [("cpu", "eager"), ("cuda", "static"), ("cuda", "graphs")]
CATEGORIES = {"code": 0.08, "story": -0.06, "explanation": 0.0, "summary": 0.04}
DATES = [f"2026-11-{d:02d}" for d in range(20, 30)]


def _setups(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    cats = list(CATEGORIES)
    return {
        "pair": rng.integers(0, len(PAIRS), n), "drafter": rng.integers(0, len(DRAFTERS), n),
        "gamma": rng.choice(GAMMAS, n), "tau": rng.choice(TAUS, n),
        "device": rng.integers(0, len(DEVICES), n), "cat": rng.integers(0, len(cats), n),
        "prompt": rng.integers(0, 400, n), "date": rng.integers(0, len(DATES), n),
    }


def make(n_runs: int, n_steps: int, seed: int) -> tuple[pa.Table, pa.Table]:
    """(runs, steps) tables of a synthetic data set."""
    rng = np.random.default_rng(seed)
    n_spec = int(n_runs * 0.6)
    s = _setups(n_runs, rng)
    spec = np.arange(n_runs) < n_spec
    # target-only run j names speculative run j as the run it is the baseline of
    for k in ("pair", "tau", "device", "cat", "prompt", "date"):
        s[k][n_spec:] = s[k][:n_runs - n_spec]
    drafters = list(DRAFTERS)
    alpha = np.array([DRAFTERS[d] for d in drafters])[s["drafter"]] \
        - 0.12 * s["tau"] + np.array(list(CATEGORIES.values()))[s["cat"]] \
        + rng.normal(0, 0.05, n_runs)
    alpha = np.clip(alpha, 0.05, 0.95)
    gamma = np.where(spec, s["gamma"], 0)
    weight = rng.uniform(0.5, 1.5, n_runs)  # steps per run: n_steps in all, about ±50 %
    per_run = np.floor(weight / weight.sum() * n_steps).astype(np.int64)
    per_run[: n_steps - per_run.sum()] += 1
    run_of = np.repeat(np.arange(n_runs), per_run)  # (n_steps,)
    g = gamma[run_of]
    u = rng.random(len(run_of))
    n_acc = np.minimum(g, np.floor(np.log(u) / np.log(alpha[run_of]))).astype(np.int32)
    n_eval = np.minimum(g, n_acc + 1).astype(np.int32)
    # costs in ms: a target step of t, drafts at c·t each, overhead o
    t = np.array([45.0, 12.0, 9.0])[s["device"]] * (1 + 0.1 * s["pair"])
    c = np.array([0.08, 0.05, 0.02, 0.2])[s["drafter"]]
    verify = t[run_of] * (1 + 0.05 * g) * rng.lognormal(0, 0.1, len(run_of))
    draft = g * c[run_of] * t[run_of]
    total = verify + draft + 0.5
    wall = np.bincount(run_of, weights=total, minlength=n_runs) / 1000.0
    step_no = np.arange(len(run_of)) - np.repeat(np.cumsum(per_run) - per_run, per_run)
    keys = np.array([f"synthetic/{i:05d}.jsonl#0" for i in range(n_runs)], dtype=object)
    steps = pa.table({
        "run_key": pa.array(keys[run_of]), "step": step_no.astype(np.int32),
        "gamma": g.astype(np.int32), "n_accepted": n_acc, "n_evaluated": n_eval,
        "n_emitted": (n_acc + 1).astype(np.int32), "tree": np.zeros(len(run_of), bool),
        "draft_ms": draft, "verify_ms": verify, "total_ms": total}, schema=STEP_SCHEMA)
    return _runs(keys, s, spec, gamma, wall, n_spec), steps


def _runs(keys, s, spec, gamma, wall, n_spec) -> pa.Table:
    n = len(keys)
    rows = []
    cats = list(CATEGORIES)
    drafters = list(DRAFTERS)
    for i in range(n):
        target, draft = PAIRS[s["pair"][i]]
        device, engine = DEVICES[s["device"][i]]
        mode = "speculative" if spec[i] else "target-only"
        drafter = drafters[s["drafter"][i]] if spec[i] else None
        draft_src = (draft if drafter in ("model", "feature-head") else
                     f"{target} (first 4 layers)" if drafter == "early-exit" else None)
        rows.append({
            "run_key": keys[i], "run_id": f"{i:012x}", "source": keys[i][:-2], "run_index": 0,
            "mode": mode, "label": "", "pair": f"{target} ← {draft_src}" if draft_src else target,
            "target": target, "draft": draft_src, "drafter": drafter,
            "shape": shape_of(mode, int(gamma[i]) if spec[i] else None, None),
            "gamma": int(gamma[i]) if spec[i] else None, "tree": None, "policy": "fixed",
            "temperature": float(s["tau"][i]), "top_k": 0, "top_p": 1.0, "seed": i,
            "max_new_tokens": 512, "chat": True, "device": device, "engine": engine,
            "category": cats[s["cat"][i]], "prompt": f"{cats[s['cat'][i]]} prompt {s['prompt'][i]}",
            "created": f"{DATES[s['date'][i]]}T12:00:00+00:00", "date": DATES[s["date"][i]],
            "baseline_of": None if spec[i] else f"{i - n_spec:012x}", "complete": True,
            "stop_reason": "max_new_tokens", "wall_s": float(wall[i]), "trace_file": None})
    return pa.Table.from_pylist(rows, schema=RUN_SCHEMA)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=5_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batches", type=int, default=2, help="write in this many parts")
    args = ap.parse_args()
    t0 = time.perf_counter()
    runs, steps = make(args.runs, args.steps, args.seed)
    bounds = np.linspace(0, args.runs, args.batches + 1).astype(int)
    keys = runs.column("run_key").to_numpy(zero_copy_only=False)
    step_keys = steps.column("run_key").to_numpy(zero_copy_only=False)
    for a, b in zip(bounds[:-1], bounds[1:]):
        lo, hi = keys[a], keys[b - 1]
        mask = (step_keys >= lo) & (step_keys <= hi)
        write_tables(args.out, runs.slice(a, b - a), steps.filter(pa.array(mask)))
    print(f"{args.runs:,} runs, {steps.num_rows:,} steps written to {args.out} in "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
