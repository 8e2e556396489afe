"""The toy lab: speculative sampling over a small vocabulary with fixed p and q.

Every step drafts gamma tokens from q and runs the real verifier
(``specviz.core.verify.verify_sampled``) against p. Because p and q do not depend on the context,
every emitted token should be distributed as p; the buggy verifier rules break that.

Notation: p = target distribution, q = draft distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..core.verify import RULES, verify_sampled

TOKEN = "token"
P = "p"
Q = "q"
EMPIRICAL = "empirical"
N_TOKENS = "n_tokens"
TV = "tv_distance"
STEP = "step"
LOW = "low"  # tv_band: quantiles of the distance from sampling noise alone
MEDIAN = "median"
HIGH = "high"
SUM_TOLERANCE = 0.005  # a typed column may sum to 1 ± this and be used as it is


@dataclass(frozen=True)
class ToyResult:
    """Counts and rates of a toy simulation; counts has shape (vocab,)."""

    tokens: list[str]
    p: np.ndarray  # (V,)
    q: np.ndarray  # (V,)
    counts: np.ndarray  # (V,) emitted tokens of each kind
    n_steps: int
    n_drafted: int
    n_accepted: int
    n_judged: int
    history: pd.DataFrame  # step, n_tokens, tv_distance (at checkpoints)
    rule: str

    @property
    def n_emitted(self) -> int:
        return int(self.counts.sum())

    @property
    def empirical(self) -> np.ndarray:
        return self.counts / max(self.n_emitted, 1)

    @property
    def acceptance_rate(self) -> float:
        """Accepted / judged drafts (alpha_hat)."""
        return self.n_accepted / self.n_judged if self.n_judged else float("nan")

    @property
    def tokens_per_step(self) -> float:
        return self.n_emitted / max(self.n_steps, 1)

    @property
    def tv_distance(self) -> float:
        return tv_distance(self.empirical, self.p)

    def distribution_frame(self) -> pd.DataFrame:
        return pd.DataFrame({TOKEN: self.tokens, P: self.p, Q: self.q,
                             EMPIRICAL: self.empirical})


def normalise(weights) -> np.ndarray:
    """Non-negative weights -> a probability vector; raise ValueError if they sum to 0."""
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("probabilities must be finite and non-negative")
    total = w.sum()
    if total <= 0:
        raise ValueError("probabilities must not all be zero")
    return w / total


def check_distribution(name: str, weights) -> np.ndarray:
    """A typed probability column as it will be used: finite, non-negative and summing to 1
    (within SUM_TOLERANCE, then normalised); ValueError with a one-line message otherwise."""
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    total = float(w.sum())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise ValueError(f"{name} sums to {total:.3f}, not 1")
    return w / total


def tv_band(p, n_tokens, draws: int = 2000, seed: int = 0,
            quantiles: tuple[float, float] = (0.05, 0.95)) -> pd.DataFrame:
    """How far n tokens drawn exactly from p land from p by chance: the median and a
    quantile band of TV(empirical, p) for each n in ``n_tokens`` (multinomial draws). It
    shrinks like 1/√n; an exact verifier's curve stays inside it."""
    p = normalise(p)
    rng = np.random.default_rng(seed)
    rows = []
    for n in np.asarray(n_tokens, dtype=int):
        counts = rng.multinomial(int(n), p, size=draws)  # (draws, V)
        tv = 0.5 * np.abs(counts / max(int(n), 1) - p).sum(axis=1)
        lo, hi = np.quantile(tv, quantiles)
        rows.append((int(n), float(lo), float(np.median(tv)), float(hi)))
    return pd.DataFrame(rows, columns=[N_TOKENS, LOW, MEDIAN, HIGH])


def overlap(p, q) -> float:
    """beta = sum_x min(p(x), q(x)): the probability that one draft is accepted."""
    return float(np.minimum(np.asarray(p), np.asarray(q)).sum())


def tv_distance(a, b) -> float:
    """Total variation distance: half the L1 distance of two distributions."""
    return float(0.5 * np.abs(np.asarray(a) - np.asarray(b)).sum())


def simulate(p, q, *, gamma: int = 3, n_steps: int = 2000, rule: str = "exact",
             seed: int = 0, tokens: list[str] | None = None,
             checkpoints: int = 40) -> ToyResult:
    """Run n_steps speculative steps with fixed p (V,) and q (V,) through the real verifier.

    ``rule`` is "exact" or one of the deliberately wrong rules of ``verify_sampled``.
    """
    if rule not in RULES:
        raise ValueError(f"unknown verifier rule {rule!r}; choose from {', '.join(RULES)}")
    if gamma < 1:
        raise ValueError("gamma must be at least 1")
    p_np, q_np = normalise(p), normalise(q)
    vocab = len(p_np)
    if len(q_np) != vocab:
        raise ValueError("p and q need the same vocabulary")
    tokens = tokens or [chr(ord("A") + i) for i in range(vocab)]
    gen = torch.Generator().manual_seed(seed)
    p_t = torch.tensor(p_np, dtype=torch.float32)
    q_t = torch.tensor(q_np, dtype=torch.float32)
    p_probs = p_t.expand(gamma + 1, vocab)  # (gamma+1, V): p does not depend on the context
    q_probs = q_t.expand(gamma, vocab)  # (gamma, V)
    counts = np.zeros(vocab, dtype=np.int64)
    n_acc = n_judged = 0
    marks = set(np.unique(np.geomspace(1, n_steps, num=min(checkpoints, n_steps))
                          .astype(int)).tolist()) | {n_steps}
    hist = []
    for step in range(1, n_steps + 1):
        drafted = torch.multinomial(q_t, gamma, replacement=True, generator=gen)  # (gamma,)
        v = verify_sampled(drafted, p_probs, q_probs, gen, rule=rule)
        n = int(v.n_accepted)
        for t in drafted[:n].tolist():
            counts[t] += 1
        counts[int(v.next_token)] += 1
        n_acc += n
        n_judged += min(gamma, n + 1)
        if step in marks:
            total = counts.sum()
            hist.append((step, int(total), tv_distance(counts / total, p_np)))
    history = pd.DataFrame(hist, columns=[STEP, N_TOKENS, TV])
    return ToyResult(tokens, p_np, q_np, counts, n_steps, n_steps * gamma, n_acc, n_judged,
                     history, rule)
