"""Lesson 6, why tokens per step saturate: E(α, γ) and its ceiling 1 / (1 − α) beside the
γ sweep's measured tokens per step, per file and per prompt, and where the i.i.d. model's
assumptions fail on these runs (acceptance by position, spread between prompts)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ...traces import frames as F
from ...traces.records import Trace
from .. import theory
from .runs import (
    FILE,
    PROMPT,
    SWEEP,
    Files,
    file_costs,
    judged_alpha,
    predicted_speedup,
    short,
    speculative,
)
from .stats import Z95, two_proportion_z

FILES = SWEEP

CEILING = "ceiling"
TOKENS_PER_STEP = "tokens_per_step"
PREDICTED = "speedup_predicted"
MEASURED = "speedup_measured"


def sweep_frame(files: Files) -> pd.DataFrame:
    """One row per γ file: γ, α̂, measured tokens per step, E(α̂, γ), γ̄, c, v, overhead, the
    speedup the course's formula predicts from them (with the measured tokens per step) and
    the measured speedup."""
    rows = []
    for name, traces in files.items():
        specs = speculative(traces)
        if not specs:
            continue
        c = file_costs(traces)
        g = int(specs[0].run.config.get("gamma", 0))
        pred = predicted_speedup(c)
        rows.append((name, g, c.alpha, c.mean_accepted_length,
                     theory.expected_tokens(c.alpha, g), c.gamma, c.c, c.v, c.overhead,
                     F.NAN if pred is None else pred, c.speedup_measured))
    return pd.DataFrame(rows, columns=[FILE, theory.GAMMA, theory.ALPHA, TOKENS_PER_STEP,
                                       theory.E, "drafted_per_step", theory.C, theory.V,
                                       theory.OVERHEAD, PREDICTED, MEASURED])


def prompts_frame(files: Files) -> pd.DataFrame:
    """One row per speculative run of the γ files: file, γ, prompt, α̂, tokens per step, and
    the ceiling 1 / (1 − α̂) of that prompt alone."""
    rows = []
    for name, traces in files.items():
        for t in speculative(traces):
            sm = t.with_summary().summary
            a = sm.alpha_hat
            rows.append((name, int(t.run.config.get("gamma", 0)), short(t.run.prompt_text, 40),
                         a, sm.mean_accepted_length,
                         1.0 / (1.0 - a) if a is not None and a < 1 else F.NAN))
    return pd.DataFrame(rows, columns=[FILE, theory.GAMMA, PROMPT, theory.ALPHA,
                                       TOKENS_PER_STEP, CEILING])


def prompt_alphas(files: Files) -> pd.Series:
    """α̂ of each prompt, pooled over the γ files (Σ accepted / Σ judged), by short prompt."""
    runs: dict[str, list[Trace]] = {}
    for traces in files.values():
        for t in speculative(traces):
            runs.setdefault(short(t.run.prompt_text, 40), []).append(t)
    return pd.Series({p: judged_alpha(ts) for p, ts in runs.items()}, name=theory.ALPHA)


def position_rates(traces: Sequence[Trace]) -> np.ndarray:
    """Acceptance rate at each draft position (kept / judged), over the runs. Shape (γ,)."""
    kept, judged = position_counts(traces)
    return kept / np.maximum(judged, 1)


def position_counts(traces: Sequence[Trace]) -> tuple[np.ndarray, np.ndarray]:
    """(kept, judged) at each draft position, over the runs. Shapes (γ,), integers."""
    runs = speculative(traces)
    gamma = max(s.gamma for t in runs for s in t.steps)
    kept, judged = np.zeros(gamma), np.zeros(gamma)
    for t in runs:
        for s in t.steps:
            for i in range(s.n_evaluated):
                judged[i] += 1
                kept[i] += s.accepted[i]
    return kept.astype(int), judged.astype(int)


def saturation_frame(alpha: float, gamma_max: int = 16) -> pd.DataFrame:
    """E(α, γ) for γ = 0..gamma_max, with the ceiling 1 / (1 − α)."""
    g = np.arange(gamma_max + 1)
    ceiling = 1.0 / (1.0 - alpha) if alpha < 1 else F.NAN
    return pd.DataFrame({theory.GAMMA: g, theory.E: theory.expected_tokens(alpha, g),
                         CEILING: ceiling})


def numbers(files: Files) -> dict:
    sweep = sweep_frame(files).set_index(theory.GAMMA)
    alpha = judged_alpha([t for f in SWEEP for t in files[f]])
    prompts = prompts_frame(files)
    by_prompt = prompt_alphas(files)
    top = prompts.loc[prompts[TOKENS_PER_STEP].idxmax()]
    k4, n4 = position_counts(files[SWEEP[2]])
    k8, n8 = position_counts(files[SWEEP[3]])
    out = {f"tps{g}": float(r[TOKENS_PER_STEP]) for g, r in sweep.iterrows()}
    a8 = float(sweep.loc[8, theory.ALPHA])
    out.update({
        "alpha": alpha, "ceiling": 1 / (1 - alpha),
        "e8_pooled": theory.expected_tokens(alpha, 8),
        "e16": theory.expected_tokens(alpha, 16),
        "twice8": 2 * out["tps8"], "lin16": 1 + alpha * 16,
        "pos1": float(k4[0] / n4[0]), "pos4": float(k4[3] / n4[3]),
        "pos1_k": int(k4[0]), "pos1_n": int(n4[0]), "pos4_k": int(k4[3]), "pos4_n": int(n4[3]),
        "pos_z": two_proportion_z(int(k4[3]), int(n4[3]), int(k4[0]), int(n4[0])),
        "g8_pos1": float(k8[0] / n8[0]), "g8_pos4": float(k8[3] / n8[3]),
        "g8_pos1_k": int(k8[0]), "g8_pos1_n": int(n8[0]), "g8_pos4_k": int(k8[3]),
        "g8_pos4_n": int(n8[3]),
        "alpha_min": float(by_prompt.min()), "prompt_min": by_prompt.idxmin(),
        "alpha_max": float(by_prompt.max()), "prompt_max": by_prompt.idxmax(),
        "tps_max": float(top[TOKENS_PER_STEP]), "tps_max_gamma": int(top[theory.GAMMA]),
        "prompt_top": top[PROMPT],
        "alpha8": a8, "e8": theory.expected_tokens(a8, 8),
        "pred4": float(sweep.loc[4, PREDICTED]), "meas4": float(sweep.loc[4, MEASURED]),
    })
    return out


def checks(n: dict) -> dict[str, bool]:
    tps = [n[f"tps{g}"] for g in (1, 2, 4, 8)]
    return {
        "tokens_per_step_rise": all(a < b for a, b in zip(tps, tps[1:])),
        "each_gamma_adds_less": all(b - a > c - b for a, b, c in zip(tps, tps[1:], tps[2:])),
        "saturates": n["e16"] - n["e8_pooled"] < 0.3,
        "position_rates_unresolved": abs(n["pos_z"]) < Z95,
        "prompts_spread": n["alpha_max"] - n["alpha_min"] > 0.25,
        "prompt_above_ceiling": n["tps_max"] > n["ceiling"],
        "e8_close": abs(n["e8"] - n["tps8"]) / n["tps8"] < 0.1,
        "formula_close": abs(n["pred4"] - n["meas4"]) / n["meas4"] < 0.1,
    }
