"""Lesson 3, one target pass scores every draft: target passes per step, and what one
verification pass costs against a target-only step, measured on the CPU (by draft length,
across files and within one set of runs) and on an NVIDIA H200."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ...traces import frames as F
from ...traces.records import Trace
from .runs import (
    CONFIDENCE,
    H200_DRAFT,
    H200_GRAPHS,
    HEURISTIC,
    SWEEP,
    Files,
    baselines,
    file_costs,
    hardware_name,
    later_steps,
    speculative,
)
from .stats import relative_spread

FILES = (*SWEEP, HEURISTIC, *CONFIDENCE, H200_DRAFT, H200_GRAPHS)
POLICY_FILES = (HEURISTIC, *CONFIDENCE)  # draft length changes from step to step

CONFIG_GAMMA = "gamma"
STEPS = "steps"
TARGET_PASSES = "target_passes"
SCORED = "positions_scored"
VERIFY_MS = "verify_ms"
BASE_STEP_MS = "target_step_ms"
V = "v"
POSITIONS = "positions"
PASSES = "passes"
FILE = "file"
HARDWARE = "hardware"  # CPU or GPU
DEVICE = "device"  # the processor's name, as recorded


def verification_frame(files: Files) -> pd.DataFrame:
    """One row per file of speculative runs: CPU or GPU, its name, configured γ, steps,
    target forward passes, positions the target scored (Σ (γ_step + 1)), mean verify pass
    (ms, first step of each run left out), mean target-only step (ms, from the file's
    baselines; NaN without them) and their ratio v."""
    rows = []
    for name, traces in files.items():
        specs = speculative(traces)
        if not specs:
            continue
        costs = file_costs(traces)
        steps = [s for t in specs for s in t.steps]
        later = [s for t in specs for s in later_steps(t)]
        base = costs.target_step_from == "baseline"
        hw = specs[0].run.hardware
        rows.append((name, "GPU" if hw.get("gpu") else "CPU", hardware_name(specs[0]),
                     specs[0].run.config.get("gamma", 0), len(steps),
                     sum(t.with_summary().summary.target_forward_passes for t in specs),
                     sum(s.gamma + 1 for s in steps),
                     float(np.mean([s.verify_ms for s in later])),
                     costs.target_step_ms if base else F.NAN, costs.v if base else F.NAN))
    return pd.DataFrame(rows, columns=[FILE, HARDWARE, DEVICE, CONFIG_GAMMA, STEPS,
                                       TARGET_PASSES, SCORED, VERIFY_MS, BASE_STEP_MS, V])


def positions_frame(traces: Sequence[Trace]) -> pd.DataFrame:
    """Verify passes of the runs (first step of each left out) by the positions they scored
    (γ of the step + 1): positions, passes, mean verify ms."""
    rows = [(s.gamma + 1, s.verify_ms) for t in speculative(traces) for s in later_steps(t)]
    df = pd.DataFrame(rows, columns=[POSITIONS, VERIFY_MS])
    return (df.groupby(POSITIONS)[VERIFY_MS].agg(**{PASSES: "size", VERIFY_MS: "mean"})
            .reset_index())


def step_frame(trace: Trace, step: int) -> pd.DataFrame:
    """The drafted positions of one step: token, q, p, min(1, p/q), u, status."""
    drafts = F.drafts_frame(trace)
    return drafts[drafts[F.STEP] == step].reset_index(drop=True)


def _mean_ms(by_pos: pd.DataFrame, lo: int, hi: int) -> tuple[float, int]:
    rows = by_pos[(by_pos[POSITIONS] >= lo) & (by_pos[POSITIONS] <= hi)]
    n = int(rows[PASSES].sum())
    return (float((rows[VERIFY_MS] * rows[PASSES]).sum() / n) if n else F.NAN), n


def numbers(files: Files) -> dict:
    sweep = verification_frame({f: files[f] for f in SWEEP}).set_index(CONFIG_GAMMA)
    out: dict = {"passes_sweep": int(sweep[TARGET_PASSES].sum()),
                 "steps_sweep": int(sweep[STEPS].sum())}
    for g, row in sweep.iterrows():
        out[f"v{g}"] = float(row[V])
        out[f"vp{g}"] = float(row[VERIFY_MS])
        out[f"base{g}"] = float(row[BASE_STEP_MS])
    by_pos = positions_frame([t for f in POLICY_FILES for t in files[f]])
    out["one_ms"], out["one_n"] = _mean_ms(by_pos, 1, 1)
    out["two_ms"], out["two_n"] = _mean_ms(by_pos, 2, 2)
    out["many_ms"], out["many_n"] = _mean_ms(by_pos, 6, 9)
    out["v_h200"] = file_costs(files[H200_DRAFT]).v
    out["v_graphs"] = file_costs(files[H200_GRAPHS]).v
    vs = [out[f"v{g}"] for g in sweep.index]
    out["v_min"], out["v_max"] = min(vs), max(vs)
    out["v_proportional"] = out["v1"] * 5 / 2  # v at 5 positions if cost grew per position
    g4 = file_costs(files[SWEEP[2]])  # the numeric exercise: a step's break-even E at γ = 4
    out.update({"be_gamma": g4.gamma, "be_c": g4.c, "be_v": g4.v, "be_o": g4.overhead,
                "be_e": g4.mean_accepted_length,
                "be_cost": g4.gamma * g4.c + g4.v + g4.overhead,
                "be_positions": g4.gamma + 1})
    bases = [out[f"base{g}"] for g in sweep.index]
    out["base_min"], out["base_max"] = min(bases), max(bases)
    out["base_spread"] = relative_spread(bases)
    out["base_n"] = sum(len(later_steps(b)) for f in SWEEP for b in baselines(files[f]))
    return out


def checks(n: dict) -> dict[str, bool]:
    return {
        "one_pass_per_step": n["passes_sweep"] == n["steps_sweep"],
        "cpu_v_well_above_one": n["v_min"] > 1.5,
        "cpu_v_flat": n["v_max"] / n["v_min"] < 1.15,
        "jump_within_runs": (n["two_ms"] / n["one_ms"] > 1 + n["base_spread"]
                             and n["one_n"] >= 3 and n["two_n"] >= 10),
        "jump_beyond_baselines": n["two_ms"] > n["base_max"] * (1 + n["base_spread"]),
        "slow_rise_within_runs": (n["many_ms"] / n["two_ms"] < 1 + n["base_spread"]
                                  and n["many_n"] >= 10),
        "gpu_near_one": max(n["v_h200"], n["v_graphs"]) < 1.25 < n["v_min"],
        "prediction_holds": min(n["v1"], n["v8"]) - 0.15 <= n["v4"]
                            <= max(n["v1"], n["v8"]) + 0.15,
    }
