"""The formulas of Leviathan et al. (2023) for speculative decoding, vectorised.

alpha = acceptance rate of a drafted token (i.i.d. model), gamma = drafted tokens per step,
c = cost of one draft token relative to one target step, v = cost of one verification pass
(gamma + 1 tokens) relative to one target step (the paper assumes v = 1), overhead = any other
per-step cost relative to one target step.

    E(alpha, gamma) = (1 - alpha^(gamma + 1)) / (1 - alpha)      tokens per verification step
    speedup = E / (gamma * c + v + overhead)                     vs target-only decoding
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..limits import GAMMA_MAX

ALPHA = "alpha"
GAMMA = "gamma"
C = "c"
V = "v"
OVERHEAD = "overhead"
E = "expected_tokens"
SPEEDUP = "speedup"
SCENARIO = "scenario"


def accepted_length_pmf(alpha: float, gamma: int) -> np.ndarray:
    """P(k drafts accepted), k = 0..gamma, under i.i.d. acceptance with rate alpha.

    alpha^k (1 - alpha) for k < gamma; alpha^gamma for k = gamma. Shape (gamma + 1,).
    """
    k = np.arange(gamma + 1)
    pmf = float(alpha) ** k * (1.0 - alpha)
    pmf[gamma] = alpha ** gamma
    return pmf


def expected_tokens(alpha, gamma):
    """E = (1 - alpha^(gamma+1)) / (1 - alpha); gamma + 1 at alpha = 1. Broadcasts."""
    a = np.asarray(alpha, dtype=float)
    g = np.asarray(gamma, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = (1.0 - a ** (g + 1.0)) / (1.0 - a)
    e = np.where(np.isclose(a, 1.0), g + 1.0, e)
    return e.item() if e.ndim == 0 else e


def speedup(alpha, gamma, c, v=1.0, overhead=0.0):
    """Expected speedup over target-only decoding: E / (gamma c + v + overhead). Broadcasts."""
    s = np.asarray(expected_tokens(alpha, gamma)) / (np.asarray(gamma, dtype=float)
                                                     * np.asarray(c, dtype=float)
                                                     + np.asarray(v, dtype=float)
                                                     + np.asarray(overhead, dtype=float))
    return s.item() if s.ndim == 0 else s


def best_gamma(alpha: float, c: float, v: float = 1.0, overhead: float = 0.0,
               gamma_max: int = GAMMA_MAX) -> tuple[int, float]:
    """The gamma in 1..gamma_max with the highest expected speedup, and that speedup."""
    g = np.arange(1, gamma_max + 1)
    s = speedup(alpha, g, c, v, overhead)
    i = int(np.argmax(s))
    return int(g[i]), float(s[i])


def curves_frame(alphas, gammas, c: float, v: float = 1.0,
                 overhead: float = 0.0) -> pd.DataFrame:
    """One row per (alpha, gamma): E and speedup, for curves and surfaces."""
    a, g = np.meshgrid(np.asarray(alphas, dtype=float), np.asarray(gammas), indexing="ij")
    a, g = a.ravel(), g.ravel()
    return pd.DataFrame({ALPHA: a, GAMMA: g.astype(int), E: expected_tokens(a, g),
                         SPEEDUP: speedup(a, g, c, v, overhead)})


def best_gamma_frame(alphas, c: float, v: float = 1.0, overhead: float = 0.0,
                     gamma_max: int = GAMMA_MAX) -> pd.DataFrame:
    """One row per alpha: the best gamma and its speedup."""
    rows = [(a, *best_gamma(a, c, v, overhead, gamma_max)) for a in alphas]
    return pd.DataFrame(rows, columns=[ALPHA, GAMMA, SPEEDUP])


def what_if(alpha: float, gamma: int, c: float, v: float = 1.0, overhead: float = 0.0,
            gamma_max: int = GAMMA_MAX) -> pd.DataFrame:
    """Predicted speedup of the current setting and of single changes to it.

    Rows: now; gamma - 1 / + 1 / best; a draft that is accepted more (alpha + 0.1, e.g. a
    larger draft or a lower temperature) or less (alpha - 0.1); a draft half or twice as
    costly; verification at the cost of one target step (v = 1); no per-step overhead.
    """
    g_best, _ = best_gamma(alpha, c, v, overhead, gamma_max)
    a_up, a_dn = min(alpha + 0.1, 0.999), max(alpha - 0.1, 0.0)
    rows = [("now", alpha, gamma, c, v, overhead),
            (f"γ − 1 (γ={max(gamma - 1, 1)})", alpha, max(gamma - 1, 1), c, v, overhead),
            (f"γ + 1 (γ={gamma + 1})", alpha, gamma + 1, c, v, overhead),
            (f"best γ (γ={g_best})", alpha, g_best, c, v, overhead),
            (f"α + 0.1 (α={a_up:.2f}: closer draft or lower τ)", a_up, gamma, c, v, overhead),
            (f"α − 0.1 (α={a_dn:.2f}: weaker draft or higher τ)", a_dn, gamma, c, v,
             overhead),
            (f"draft half as costly (c={c / 2:.3f})", alpha, gamma, c / 2, v, overhead),
            (f"draft twice as costly (c={2 * c:.3f})", alpha, gamma, 2 * c, v, overhead),
            ("verify costs one target step (v=1)", alpha, gamma, c, 1.0, overhead),
            ("no per-step overhead", alpha, gamma, c, v, 0.0)]
    df = pd.DataFrame(rows, columns=[SCENARIO, ALPHA, GAMMA, C, V, OVERHEAD])
    df[E] = expected_tokens(df[ALPHA].to_numpy(), df[GAMMA].to_numpy())
    df[SPEEDUP] = speedup(df[ALPHA].to_numpy(), df[GAMMA].to_numpy(), df[C].to_numpy(),
                          df[V].to_numpy(), df[OVERHEAD].to_numpy())
    return df
