"""Lesson 9, reading a trace: where each step's time goes, and the diagnosis (what part of
the gap to the ideal speedup each factor takes) of every bundled CPU and H200 run; the
numbers of the quiz and of the endpoint-review case study."""

from __future__ import annotations

import pandas as pd

from ...traces import frames as F
from ...traces.records import Trace
from ..diagnosis import FACTORS, Diagnosis, diagnose, measure
from .runs import (
    CPU_BUNDLE,
    CPU_DRAFT,
    CPU_EARLY_EXIT,
    CPU_LOOKUP,
    H200_BUNDLE,
    H200_DRAFT,
    H200_EARLY_EXIT,
    H200_GRAPHS,
    H200_LOOKUP,
    SWAPPED,
    Files,
    file_costs,
    pairs,
    predicted_speedup,
)

FILES = (*CPU_BUNDLE, *H200_BUNDLE, SWAPPED)

# the student's readings, each one of the diagnosis's factors
READINGS = {
    "drafts too short": "short drafts",
    "acceptance too low": "acceptance",
    "draft too slow": "draft cost",
    "verification too costly": "verification cost",
    "per-step overhead": "overhead",
}

COMPONENT = "component"
TIME_MS = "time_ms"
SHARE = "share"
FACTOR = "factor"


def phase_shares(trace: Trace) -> pd.DataFrame:
    """Share of the run's step time spent drafting, verifying and elsewhere (overhead)."""
    steps = F.steps_frame(trace)
    total = steps[F.TOTAL_MS].sum()
    parts = {"draft": steps[F.DRAFT_MS].sum(), "verify": steps[F.VERIFY_MS].sum(),
             "overhead": steps[F.OVERHEAD_MS].sum()}
    return pd.DataFrame([(k, v, v / total if total else F.NAN) for k, v in parts.items()],
                        columns=[COMPONENT, TIME_MS, SHARE])


def gap_frame(dg: Diagnosis) -> pd.DataFrame:
    """The diagnosis's split of the gap to the ideal speedup: one row per factor, its share."""
    return pd.DataFrame([(k, dg.shares.get(k, F.NAN)) for k in FACTORS],
                        columns=[FACTOR, SHARE])


def diagnoses(traces: list[Trace]) -> list[Diagnosis]:
    """The diagnosis of every speculative run of a file, against its baseline."""
    return [diagnose(measure(t, b)) for t, b in pairs(traces)]


def _limiters(files: Files, names: tuple[str, ...]) -> list[str]:
    return [d.limiter for n in names for d in diagnoses(files[n])]


def numbers(files: Files) -> dict:
    ee_runs = [t for n in (CPU_EARLY_EXIT, H200_EARLY_EXIT) for t, _ in pairs(files[n])]
    ee_alphas = [F.trace_alpha(t) for t in ee_runs]
    pl, ee_cpu, ee_h200, dm_cpu = (file_costs(files[n]) for n in (
        CPU_LOOKUP, CPU_EARLY_EXIT, H200_EARLY_EXIT, CPU_DRAFT))
    graphs, dm_h200, sw = (file_costs(files[n]) for n in (H200_GRAPHS, H200_DRAFT, SWAPPED))
    ee_cfg = pairs(files[H200_EARLY_EXIT])[0][0].run.config
    ee_lim = _limiters(files, (CPU_EARLY_EXIT, H200_EARLY_EXIT))
    pl_lim = _limiters(files, (CPU_LOOKUP, H200_LOOKUP))
    sw_lim = _limiters(files, (SWAPPED,))
    return {
        "ee_n": len(ee_lim), "ee_acceptance_n": ee_lim.count("acceptance"),
        "pl_n": len(pl_lim), "pl_short_n": pl_lim.count("short drafts"),
        "sw_n": len(sw_lim), "sw_draft_n": sw_lim.count("draft cost"),
        "ee_alpha_min": min(ee_alphas), "ee_alpha_max": max(ee_alphas),
        "ee_alpha": ee_cpu.alpha, "ee_c_cpu": ee_cpu.c, "ee_c_h200": ee_h200.c,
        "ee_layers": int(ee_cfg.get("early_exit_layers", 0)),
        "pl_gamma": pl.gamma, "pl_gamma_cfg": pl.gamma_config, "pl_alpha": pl.alpha,
        "pl_c": pl.c, "pl_v": pl.v, "pl_s": pl.speedup_measured,
        "pl_max_e": pl.gamma + 1,  # tokens per step if every draft were kept
        "c_swap": sw.c, "v_cpu": dm_cpu.v, "o_cpu": dm_cpu.overhead,
        "o_graphs": graphs.overhead,
        # the endpoint-review case study: early exit on the H200
        "cs_tps": ee_h200.tokens_per_s, "cs_s": ee_h200.speedup_measured,
        "cs_alpha": ee_h200.alpha, "cs_e": ee_h200.mean_accepted_length,
        "cs_gamma": ee_h200.gamma, "cs_c": ee_h200.c, "cs_v": ee_h200.v,
        "cs_o": ee_h200.overhead, "cs_pred": predicted_speedup(ee_h200),
        "cs_cost": ee_h200.gamma * ee_h200.c + ee_h200.v + ee_h200.overhead,
        "cs_n_runs": len(pairs(files[H200_EARLY_EXIT])),
        "cs_tokens": sum(t.with_summary().summary.n_emitted
                         for t, _ in pairs(files[H200_EARLY_EXIT])),
        "dm_h200_alpha": dm_h200.alpha, "dm_h200_s": dm_h200.speedup_measured,
    }


def checks(n: dict) -> dict[str, bool]:
    return {
        "early_exit_is_acceptance": n["ee_acceptance_n"] == n["ee_n"] > 0,
        "lookup_is_short_drafts": n["pl_short_n"] == n["pl_n"] > 0,
        "swap_is_draft_cost": n["sw_draft_n"] == n["sw_n"] > 0,
        "early_exit_rarely_agrees": n["ee_alpha_max"] < 0.1,
        "early_exit_drafts_cheaply": max(n["ee_c_cpu"], n["ee_c_h200"]) < 0.5,
        "lookup_rarely_drafts": n["pl_gamma"] < 0.25 * n["pl_gamma_cfg"],
        "gpu_overhead_larger": n["o_graphs"] > 2 * n["o_cpu"],
        "cpu_verify_costly": n["v_cpu"] > 1.5,
        "case_slower_than_target": n["cs_s"] < 1 < n["dm_h200_s"],
        "case_formula_close": abs(n["cs_pred"] - n["cs_s"]) / n["cs_s"] < 0.15,
    }
