"""Lesson 11, low speedup despite parallel verification: the course's formula on each run's
measured values (tokens per step, γ̄, c, v, o), what a step costs against what it yields,
and the speedup with one cost set to its ideal value, the others kept."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from ...traces import frames as F
from ..diagnosis import Costs
from .runs import (
    CPU_BUNDLE,
    CPU_DRAFT,
    CPU_EARLY_EXIT,
    CPU_LOOKUP,
    H200_BUNDLE,
    H200_DRAFT,
    H200_GRAPHS,
    SWAPPED,
    SWEEP,
    Files,
    file_costs,
    later_steps,
    predicted_speedup,
    speculative,
)

FILES = (*CPU_BUNDLE, *H200_BUNDLE, SWAPPED, SWEEP[-1])

COMPONENT = "component"
COST = "cost"

# each sets one factor to its ideal value, so the gains are comparable
FIXES = ("draft cost c → 0", "verify cost v → 1", "overhead o → 0",
         "every draft kept (E → γ̄ + 1)")


def cost_ledger(costs: Costs) -> pd.DataFrame:
    """A step's measured cost in target-only steps: drafting γ̄·c, verifying v, overhead o;
    rows component, cost."""
    rows = [("draft (γ̄ × c)", costs.gamma * (costs.c or 0.0)), ("verify (v)", costs.v or 0.0),
            ("overhead (o)", costs.overhead or 0.0)]
    return pd.DataFrame(rows, columns=[COMPONENT, COST])


def speedup_with_fixes(costs: Costs, fixes: Sequence[str]) -> tuple[float, float]:
    """(predicted speedup from the measured values, the same with ``fixes`` applied):
    E / (γ̄·c + v + o), E the measured tokens per step, γ̄ the drafted tokens per step."""
    for fix in fixes:
        if fix not in FIXES:
            raise ValueError(f"unknown fix {fix!r}")
    now = predicted_speedup(costs)
    if now is None:
        raise ValueError("this run lacks the measurements the formula needs")
    g = costs.gamma
    e = g + 1 if FIXES[3] in fixes else costs.mean_accepted_length
    c = 0.0 if FIXES[0] in fixes else costs.c
    v = min(costs.v, 1.0) if FIXES[1] in fixes else costs.v
    o = 0.0 if FIXES[2] in fixes else costs.overhead
    return now, e / (g * c + v + o)


def numbers(files: Files) -> dict:
    dm, pl, ee = (file_costs(files[f]) for f in (CPU_DRAFT, CPU_LOOKUP, CPU_EARLY_EXIT))
    graphs, gpu = file_costs(files[H200_GRAPHS]), file_costs(files[H200_DRAFT])
    cost = dm.gamma * dm.c + dm.v + dm.overhead
    return {
        "cpu_alpha": dm.alpha, "cpu_tps": dm.mean_accepted_length, "cpu_gamma": dm.gamma,
        "cpu_c": dm.c, "cpu_v": dm.v, "cpu_o": dm.overhead, "cpu_cost": cost,
        "cpu_draft_cost": dm.gamma * dm.c,
        "cpu_pred": predicted_speedup(dm), "cpu_meas": dm.speedup_measured,
        "cpu_pred_v1": speedup_with_fixes(dm, [FIXES[1]])[1],
        "cpu_pred_c0": speedup_with_fixes(dm, [FIXES[0]])[1],
        "cpu_pred_o0": speedup_with_fixes(dm, [FIXES[2]])[1],
        "cpu_pred_all_kept": speedup_with_fixes(dm, [FIXES[3]])[1],
        "gpu_alpha": gpu.alpha, "gpu_c": gpu.c, "gpu_v": gpu.v, "gpu_o": gpu.overhead,
        "gpu_meas": gpu.speedup_measured,
        "pl_gamma": pl.gamma, "pl_alpha": pl.alpha, "pl_pred": predicted_speedup(pl),
        "pl_meas": pl.speedup_measured, "pl_v": pl.v,
        "ee_alpha": ee.alpha, "ee_tps": ee.mean_accepted_length,
        "ee_meas": ee.speedup_measured, "o_graphs": graphs.overhead,
        "cpu_base_ms": dm.target_step_ms, "gpu_base_ms": gpu.target_step_ms,
        "gpu_pred": predicted_speedup(gpu), "graphs_pred": predicted_speedup(graphs),
        "graphs_meas": graphs.speedup_measured,
        "gpu_outside": outside_steps(files[H200_DRAFT]),
        "graphs_outside": outside_steps(files[H200_GRAPHS]),
        "cpu_outside": outside_steps(files[CPU_DRAFT]),
    }


def outside_steps(traces) -> float:
    """The share of the speculative runs' wall time that the formula leaves out: the first
    step of each run (the prompt's prefill, and on a GPU its warm-up) and the host's time
    between steps, which no step record holds."""
    specs = [t.with_summary() for t in speculative(traces)]
    wall = sum(t.summary.wall_s for t in specs) * 1000
    later = sum(s.total_ms for t in specs for s in later_steps(t))
    return 1 - later / wall if wall else F.NAN


def checks(n: dict) -> dict[str, bool]:
    def close(a: float, b: float) -> bool:
        return abs(a - b) / b < 0.1

    return {
        "formula_reproduces_cpu": close(n["cpu_pred"], n["cpu_meas"]),
        "formula_reproduces_lookup": close(n["pl_pred"], n["pl_meas"]),
        "both_near_one": all(0.9 < n[k] < 1.2 for k in ("cpu_meas", "pl_meas")),
        "early_exit_slower": n["ee_meas"] < 1 and n["ee_alpha"] < 0.1,
        "cpu_keeps_many": n["cpu_alpha"] > 0.5,
        "cpu_verify_dominates": n["cpu_v"] > 1.5 and n["cpu_v"] > 2 * n["cpu_draft_cost"],
        "lookup_rarely_drafts": n["pl_gamma"] < 1,
        "fixes_ranked": (n["cpu_pred_all_kept"] > n["cpu_pred_v1"] > n["cpu_pred_c0"]
                         > n["cpu_pred_o0"] > n["cpu_pred"]),
        "same_alpha_both_machines": abs(n["gpu_alpha"] - n["cpu_alpha"]) < 1e-9,
        "gpu_faster_by_v": (n["gpu_meas"] > n["cpu_meas"] and n["gpu_v"] < n["cpu_v"] - 0.3
                            and abs(n["gpu_c"] - n["cpu_c"]) < 0.03
                            and n["gpu_o"] > n["cpu_o"]),
        "graphs_overhead": n["o_graphs"] > 3 * n["cpu_o"],
        "formula_misses_h200": (n["gpu_pred"] - n["gpu_meas"] > 0.1
                                and n["graphs_pred"] - n["graphs_meas"] > 0.1),
        "h200_leaves_out_more": min(n["gpu_outside"], n["graphs_outside"])
        > 2 * n["cpu_outside"],
    }
