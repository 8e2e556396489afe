"""What limits a run's speedup: measured alpha, c, v and overhead, and the theory's verdict.

Costs are expressed in units of one target-only step (T). With a target-only baseline of the
same setup, T is its mean step time; without one, T is taken as the mean verification pass
(v = 1 is then assumed, as in Leviathan et al.). The first step of each run is left out of
the means: it also processes the prompt. Means (not medians) are used so that the costs add
up to the wall time the throughput is measured on.

    c = draft time per drafted token / T
    v = verification pass time / T
    overhead = (step time - draft - verify) / T     accept, commit, bookkeeping
    predicted speedup = E(alpha, gamma) / (gamma c + v + overhead)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import theory
from .limits import GAMMA_MAX
from .trace import Trace

METRIC_DEFINITIONS = {
    "alpha_hat": "α̂ = accepted drafts / drafts the verifier judged (each step's accepted ones "
                 "plus its first rejection). Under the i.i.d. model this is the maximum-"
                 "likelihood estimate of the acceptance rate α.",
    "mean_accepted_length": "Tokens emitted per verification step: accepted drafts + the one "
                            "token the target adds. Theory: E = (1 − α^(γ+1)) / (1 − α).",
    "tokens_per_target_pass": "Emitted tokens / target forward passes. Target-only decoding "
                              "gets exactly 1.",
    "speedup": "Tokens per second of this run / tokens per second of the target alone "
               "(measured, same prompt and settings).",
    "c": "Draft cost: time per drafted token / time of one target-only step.",
    "v": "Verify cost: time of one verification pass (γ + 1 tokens) / time of one "
         "target-only step. The theory assumes v = 1 (memory-bound decoding).",
    "overhead": "Per-step time outside drafting and verifying (acceptance, commit, "
                "bookkeeping) / time of one target-only step.",
    "mean_beta": "β = Σ min(p, q) per judged position, averaged: the acceptance rate the "
                 "theory predicts for these distributions (sampling only).",
}


@dataclass(frozen=True)
class Costs:
    """Measured rates and costs of one speculative run (costs in target-only steps)."""

    alpha: float | None
    gamma: float  # mean drafted tokens per step
    mean_accepted_length: float | None
    tokens_per_target_pass: float | None
    tokens_per_s: float
    c: float | None
    v: float | None
    overhead: float | None
    target_step_ms: float | None
    target_step_from: str  # "baseline" | "verify pass (v = 1 assumed)" | "unknown"
    speedup_measured: float | None
    mean_beta: float | None


def _mean(xs) -> float | None:
    xs = [x for x in xs if x is not None and np.isfinite(x)]
    return float(np.mean(xs)) if xs else None


def _later(steps):
    return steps[1:] if len(steps) > 1 else steps


def measure(trace: Trace, baseline: Trace | None = None) -> Costs:
    """Rates and costs of a speculative run, against its target-only baseline if given."""
    t = trace.with_summary()
    sm = t.summary
    steps = _later(t.steps)
    drafting = [s for s in steps if s.gamma > 0]
    gamma = float(np.mean([s.gamma for s in t.steps])) if t.steps else 0.0
    base_ms, source = None, "unknown"
    if baseline is not None and baseline.steps:
        base_ms, source = _mean([s.total_ms for s in _later(baseline.steps)]), "baseline"
    if base_ms is None:
        base_ms = _mean([s.verify_ms for s in steps])
        source = "verify pass (v = 1 assumed)" if base_ms is not None else "unknown"
    c = v = overhead = None
    if base_ms:
        n_drafted = sum(s.gamma for s in drafting)
        c = (sum(s.draft_ms for s in drafting) / n_drafted / base_ms) if n_drafted else 0.0
        v = _mean([s.verify_ms for s in steps]) / base_ms
        overhead = _mean([max(s.total_ms - s.draft_ms - s.verify_ms, 0.0)
                            for s in steps]) / base_ms
    speed = None
    if baseline is not None:
        b = baseline.with_summary().summary
        if b.tokens_per_s > 0:
            speed = sm.tokens_per_s / b.tokens_per_s
    return Costs(alpha=sm.alpha_hat, gamma=gamma,
                 mean_accepted_length=sm.mean_accepted_length,
                 tokens_per_target_pass=(sm.n_emitted / sm.target_forward_passes
                                         if sm.target_forward_passes else None),
                 tokens_per_s=sm.tokens_per_s, c=c, v=v, overhead=overhead,
                 target_step_ms=base_ms, target_step_from=source, speedup_measured=speed,
                 mean_beta=sm.mean_beta)


@dataclass(frozen=True)
class Diagnosis:
    """The verdict on one run: what limits it and what to try."""

    limiter: str  # acceptance | draft cost | verification cost | overhead | draft length
    headline: str
    findings: list[str] = field(default_factory=list)
    predicted_speedup: float | None = None
    gains: dict[str, float] = field(default_factory=dict)  # fix -> predicted speedup
    best_gamma: int | None = None


def diagnose(costs: Costs, gamma_max: int = GAMMA_MAX) -> Diagnosis:
    """Say what limits the speedup: remove each cost in turn (alpha -> +0.1, c -> 0, v -> 1,
    overhead -> 0, gamma -> best) and see which removal the formula rewards most."""
    a, c, v, o = costs.alpha, costs.c, costs.v, costs.overhead
    if a is None or c is None or v is None or o is None:
        return Diagnosis("unknown", "Not enough measurements to diagnose this run (it needs "
                         "drafted steps with timings).")
    g = max(int(round(costs.gamma)), 1)
    now = theory.speedup(a, g, c, v, o)
    g_best, s_best = theory.best_gamma(a, c, v, o, gamma_max)
    gains = {
        "acceptance": theory.speedup(min(a + 0.1, 0.999), g, c, v, o),
        "draft cost": theory.speedup(a, g, 0.0, v, o),
        "verification cost": theory.speedup(a, g, c, min(v, 1.0), o),
        "overhead": theory.speedup(a, g, c, v, 0.0),
        "draft length": s_best,
    }
    limiter = max(gains, key=lambda k: gains[k])
    total = g * c + v + o
    findings = [
        f"Each step costs {total:.2f} target steps: drafting {g * c:.2f} ({g} × c = "
        f"{c:.3f}), verifying {v:.2f}, overhead {o:.2f}; it yields "
        f"E = {theory.expected_tokens(a, g):.2f} tokens at α̂ = {a:.2f}.",
        f"Predicted speedup {now:.2f}×"
        + (f"; measured {costs.speedup_measured:.2f}×." if costs.speedup_measured else "."),
    ]
    if a < 0.5:
        findings.append(f"Acceptance is low (α̂ = {a:.2f}): most drafts are thrown away. A "
                        "draft closer to the target, a lower temperature, or prompt lookup "
                        "on repetitive text raises α.")
    if g * c > 0.5 * total:
        findings.append(f"Drafting takes {g * c / total:.0%} of each step: the draft is too "
                        "slow relative to the target (smaller draft, or prompt lookup).")
    if v > 1.5:
        findings.append(f"A verification pass costs {v:.2f} target steps: scoring γ + 1 "
                        "tokens is not free here (compute-bound, e.g. on a CPU), so long "
                        "drafts cost more than the theory's v = 1 assumes.")
    if o > 0.3:
        findings.append(f"Per-step overhead is {o:.2f} target steps (Python, sampling, "
                        "tracing): at this model size it eats the gain.")
    if g_best != g and s_best > now * 1.05:
        findings.append(f"γ = {g_best} would be better than γ = {g} ({s_best:.2f}× vs "
                        f"{now:.2f}×).")
    if now < 1.0:
        findings.append("Predicted below 1×: with these costs speculative decoding is slower "
                        "than the target alone.")
    headlines = {
        "acceptance": "Limited by acceptance: too few drafts survive verification.",
        "draft cost": "Limited by draft cost: drafting takes too long per token.",
        "verification cost": "Limited by verification cost: scoring the drafts costs more "
                             "than one target step.",
        "overhead": "Limited by per-step overhead outside the models.",
        "draft length": f"Limited by the draft length: γ = {g_best} fits this α̂ and c better.",
    }
    return Diagnosis(limiter, headlines[limiter], findings, now, gains, g_best)
