"""Lesson 7, choosing τ and which model drafts: acceptance at each temperature (greedy and
sampled acceptance measure different events, kept in separate columns), the overlap
Σ min(p, q), and what swapping the two models' roles costs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...traces import frames as F
from .. import theory
from .runs import DRAFT, GREEDY, SWAPPED, TARGET, TAU, Files, file_costs, speculative
from .stats import Z95, two_proportion_z

FILES = (GREEDY, TAU[0.7], TAU[1.0], SWAPPED)

SETUP = "setup"
ALPHA_GREEDY = "alpha_greedy"  # kept iff the draft is the target's top token
ALPHA_SAMPLED = "alpha_sampled"  # kept with probability min(1, p/q)
BETA = "mean_overlap"  # mean Σ min(p, q) over judged positions
SPEEDUP = "speedup_measured"


def setups_frame(named: dict[str, list]) -> pd.DataFrame:
    """One row per named setup (its runs pooled): τ, target, draft, α̂ under greedy or under
    sampling (the other column NaN), mean Σ min(p, q) (sampling), c, v, tokens per step,
    tokens/s and measured speedup against its own baselines."""
    rows = []
    for name, traces in named.items():
        c = file_costs(traces)
        r = speculative(traces)[0].run
        tau = r.config.get("temperature", 0.0)
        rows.append((name, tau, r.target.get("source", ""), (r.draft or {}).get("source", ""),
                     c.alpha if tau == 0 else F.NAN, c.alpha if tau > 0 else F.NAN,
                     c.mean_beta if c.mean_beta is not None else F.NAN, c.c, c.v,
                     c.mean_accepted_length, c.tokens_per_s, c.speedup_measured))
    return pd.DataFrame(rows, columns=[SETUP, F.TEMPERATURE, TARGET, DRAFT, ALPHA_GREEDY,
                                       ALPHA_SAMPLED, BETA, theory.C, theory.V,
                                       "tokens_per_step", F.TOKENS_PER_S, SPEEDUP])


def _counts(traces) -> tuple[int, int]:
    steps = [s for t in speculative(traces) for s in t.steps]
    return sum(s.n_accepted for s in steps), sum(s.n_evaluated for s in steps)


def _betas(traces) -> np.ndarray:
    return np.array([b for t in speculative(traces) for s in t.steps if s.beta
                     for b in s.beta[: s.n_evaluated]])


def _formula(e: float, gamma: float, c: float, v: float, o: float) -> float:
    return e / (gamma * c + v + o)


def numbers(files: Files) -> dict:
    g, s07, s10, sw = (file_costs(files[f]) for f in (GREEDY, TAU[0.7], TAU[1.0], SWAPPED))
    swap_run = speculative(files[SWAPPED])[0].run
    (k07, n07), (k10, n10) = _counts(files[TAU[0.7]]), _counts(files[TAU[1.0]])
    b07, b10 = _betas(files[TAU[0.7]]), _betas(files[TAU[1.0]])
    se = float(np.sqrt(b07.var(ddof=1) / len(b07) + b10.var(ddof=1) / len(b10)))
    e, gm = sw.mean_accepted_length, sw.gamma
    swap = (e, gm, sw.c, sw.v, sw.overhead)
    return {
        "k07": k07, "n07": n07, "k10": k10, "n10": n10,
        "z_tau": two_proportion_z(k07, n07, k10, n10),
        "beta_n07": len(b07), "beta_n10": len(b10),
        "z_beta": float(b07.mean() - b10.mean()) / se if se else 0.0,
        # the swapped pair with one of its measures replaced by the normal pair's
        "swap_pred": _formula(*swap),
        "swap_fix_c": _formula(e, gm, g.c, sw.v, sw.overhead),
        "swap_fix_v": _formula(e, gm, sw.c, g.v, sw.overhead),
        "swap_fix_o": _formula(e, gm, sw.c, sw.v, g.overhead),
        "swap_fix_e": _formula(g.mean_accepted_length, gm, sw.c, sw.v, sw.overhead),
        "v_normal": g.v, "o_normal": g.overhead, "e_normal": g.mean_accepted_length,
        "o_swap": sw.overhead,"a0": g.alpha, "a07": s07.alpha, "a10": s10.alpha,
            "beta07": s07.mean_beta, "beta10": s10.mean_beta,
            "c_normal": g.c, "s_normal": g.speedup_measured,
            "a_swap": sw.alpha, "c_swap": sw.c, "s_swap": sw.speedup_measured,
            "v_swap": sw.v, "step_swap": sw.gamma * sw.c + sw.v + sw.overhead,
            "g_swap": sw.gamma, "gc_swap": sw.gamma * sw.c, "e_swap": sw.mean_accepted_length,
            "swap_draft_m": swap_run.draft["n_params"] / 1e6,
            "swap_target_m": swap_run.target["n_params"] / 1e6}


def checks(n: dict) -> dict[str, bool]:
    return {
        "overlap_falls_07_to_10": n["beta07"] > n["beta10"] and n["z_beta"] >= Z95,
        "sampled_alpha_falls_07_to_10": n["a07"] > n["a10"] and 0 < n["z_tau"] < Z95,
        "factor_c_matters_most": n["swap_fix_c"] == max(
            n[k] for k in ("swap_fix_c", "swap_fix_v", "swap_fix_o", "swap_fix_e")),
        "swap_drafts_expensively": n["c_swap"] > 1 > 0.3 > n["c_normal"],
        "swap_slower_than_target": n["s_swap"] < 1 < n["s_normal"],
        "swap_keeps_as_many": abs(n["a_swap"] - n["a0"]) < 0.1,
    }
