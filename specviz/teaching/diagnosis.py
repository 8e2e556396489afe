"""What limits a run's speedup: measured alpha, c, v and overhead, and the theory's verdict.

Costs are expressed in units of one target-only step (T). With a target-only baseline of the
same setup, T is its mean step time; without one, T is taken as the mean verification pass
(v = 1 is then assumed, as in Leviathan et al.). The first step of each run is left out of
the means: it also processes the prompt. Means (not medians) are used so that the costs add
up to the wall time the throughput is measured on.

    c = draft time per drafted token / T
    v = verification pass time / T
    overhead = (step time - draft - verify) / T     accept, commit, bookkeeping
    predicted speedup = E / (gamma c + v + overhead)

with E the tokens per verification step (measured for a run; E(alpha, gamma) in theory) and
gamma the drafted tokens per step.

The diagnosis splits the gap between the ideal speedup (gamma + 1: every draft accepted,
drafting, verifying and bookkeeping free beyond one target step) and the predicted one into
comparable parts, in log units so that they add up:

    ln(ideal / predicted) = ln((g + 1) / (gamma + 1))      short drafts (g: the gamma asked for)
                          + ln((gamma + 1) / E)             rejected drafts (acceptance)
                          + ln(gamma c + v + overhead)      shared by draft, verify and overhead
                                                            in proportion to gamma c, v - 1 and
                                                            overhead
The largest part names the limiter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..limits import GAMMA_MAX
from ..measure import NO_DIFFERENCE, Speedup, speedup_of
from ..traces.records import Trace
from . import theory

METRIC_DEFINITIONS = {
    "alpha_hat": "α̂ = accepted drafts / drafts the verifier judged (each step's accepted ones "
                 "plus its first rejection; in a token tree, every node the walk reached). "
                 "Under the i.i.d. model (chains) this is the maximum-likelihood estimate of "
                 "the acceptance rate α.",
    "mean_accepted_length": "Tokens emitted per verification step: accepted drafts + the one "
                            "token the target adds. Theory for a chain: "
                            "E = (1 − α^(γ+1)) / (1 − α).",
    "tokens_per_target_pass": "Emitted tokens / target forward passes. Target-only decoding "
                              "gets exactly 1.",
    "speedup": "Tokens per second of this run / tokens per second of the target alone "
               "(measured, same prompt and settings): the median over the rounds measured "
               "(speculative and target-only decodes alternated), with their range.",
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
    gamma_config: int | None = None  # the γ the run asked for (its policy's starting γ)
    speedup: Speedup | None = None  # the measured speed-up over rounds (median, range)


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
    if base_ms and steps:  # a baseline's time, and steps of this run to set against it
        n_drafted = sum(s.gamma for s in drafting)
        c = (sum(s.draft_ms for s in drafting) / n_drafted / base_ms) if n_drafted else 0.0
        v = _mean([s.verify_ms for s in steps]) / base_ms
        overhead = _mean([max(s.total_ms - s.draft_ms - s.verify_ms, 0.0)
                            for s in steps]) / base_ms
    measured = speedup_of(t, baseline.with_summary()) if baseline is not None else None
    speed = measured.median if measured is not None else None  # the rounds' median
    return Costs(alpha=sm.alpha_hat, gamma=gamma,
                 mean_accepted_length=sm.mean_accepted_length,
                 tokens_per_target_pass=(sm.n_emitted / sm.target_forward_passes
                                         if sm.target_forward_passes else None),
                 tokens_per_s=sm.tokens_per_s, c=c, v=v, overhead=overhead,
                 target_step_ms=base_ms, target_step_from=source, speedup_measured=speed,
                 mean_beta=sm.mean_beta, gamma_config=_int_or_none(t.run.config.get("gamma")),
                 speedup=measured)


def _int_or_none(x) -> int | None:
    return int(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


FACTORS = ("short drafts", "acceptance", "draft cost", "verification cost", "overhead")


@dataclass(frozen=True)
class Diagnosis:
    """The verdict on one run: what limits it, with the numbers that chose the label."""

    limiter: str  # one of FACTORS, or "unknown"
    headline: str
    findings: list[str] = field(default_factory=list)
    predicted_speedup: float | None = None
    ideal_speedup: float | None = None  # gamma + 1: every draft kept, all costs but 1 gone
    shares: dict[str, float] = field(default_factory=dict)  # factor -> share of the gap
    best_gamma: int | None = None


def gap_shares(tokens_per_step: float, gamma_drafted: float, gamma_asked: float, c: float,
               v: float, overhead: float) -> dict[str, float]:
    """Each factor's part of ln(ideal / predicted) (see the module docstring), as a share
    of the whole; parts can be negative (e.g. v < 1 gains back time). Empty if there is no
    gap to split."""
    g_ref = max(gamma_asked, gamma_drafted)
    total = gamma_drafted * c + v + overhead
    parts = {"short drafts": np.log((g_ref + 1) / (gamma_drafted + 1)),
             "acceptance": np.log((gamma_drafted + 1) / max(tokens_per_step, 1e-9))}
    excess = {"draft cost": gamma_drafted * c, "verification cost": v - 1.0,
              "overhead": overhead}
    spent = sum(excess.values())  # = total - 1
    for k, x in excess.items():
        parts[k] = np.log(total) * x / spent if abs(spent) > 1e-9 else 0.0
    gap = sum(parts.values())
    if not gap > 1e-9:
        return {}
    return {k: float(parts[k] / gap) for k in FACTORS}


def diagnose(costs: Costs, gamma_max: int = GAMMA_MAX) -> Diagnosis:
    """Say what limits the speedup, by splitting the gap between the ideal and the predicted
    speedup into comparable parts (module docstring), and show those parts."""
    refused = _undiagnosable(costs)
    if refused is not None:
        return refused
    a, c, v, o = costs.alpha, costs.c, costs.v, costs.overhead
    e = costs.mean_accepted_length
    g = costs.gamma  # drafted tokens per step (mean)
    g_asked = costs.gamma_config or max(int(round(g)), 1)
    g_ref = max(g_asked, g)
    total = g * c + v + o
    now = e / total
    ideal = g_ref + 1
    shares = gap_shares(e, g, g_asked, c, v, o)
    g_int = max(int(round(g)), 1)
    g_best, s_best = theory.best_gamma(a, c, v, o, gamma_max)
    s_here = theory.speedup(a, g_int, c, v, o)
    findings = [
        f"Each step costs {total:.2f} target steps: drafting {g * c:.2f} ({g:.2f} drafted "
        f"× c = {c:.3f}), verifying {v:.2f}, overhead {o:.2f}; it yields {e:.2f} tokens "
        f"(α̂ = {a:.2f}).",
        f"Predicted speedup {e:.2f} / {total:.2f} = {now:.2f}×"
        + (f"; measured {costs.speedup_measured:.2f}×." if costs.speedup_measured else "."),
    ]
    if shares:
        parts = ", ".join(f"{k} {shares[k]:.0%}" for k in FACTORS if abs(shares[k]) >= 0.005)
        findings.append(f"Of the gap between the ideal {ideal:.2f}× (γ = {g_ref:g}, every draft "
                        f"kept, each step costing one target step) and {now:.2f}×: {parts}.")
    findings += _cost_findings(a, v, o, g, g_asked)
    if g >= 0.75 * g_asked and g_best != g_int and s_best > s_here * 1.05:
        findings.append(f"By the i.i.d. model, γ = {g_best} would be better than γ = {g_int} "
                        f"({s_best:.2f}× vs {s_here:.2f}×).")
    if now < 1.0:
        findings.append("Predicted below 1×: with these costs speculative decoding is slower "
                        "than the target alone.")
    if not shares:
        return Diagnosis("unknown", "Nothing to improve: this run reaches the ideal "
                         "speedup.", findings, now, ideal, shares, g_best)
    limiter = max(shares, key=lambda k: shares[k])
    return Diagnosis(limiter, _headline(limiter, a, c, v, o, g, g_asked), findings, now, ideal,
                     shares, g_best)


def _undiagnosable(costs: Costs) -> Diagnosis | None:
    """The "unknown" diagnosis of a run whose costs name no bottleneck; None if they can."""
    a, c, v, o = costs.alpha, costs.c, costs.v, costs.overhead
    if a is None or c is None or v is None or o is None or costs.mean_accepted_length is None:
        return Diagnosis("unknown", "Not enough measurements to diagnose this run (it needs "
                         "drafted steps with timings).")
    if costs.speedup is not None and costs.speedup.verdict == NO_DIFFERENCE:
        sp = costs.speedup
        return Diagnosis("unknown", f"No measurable difference on this machine: the speed-up "
                         f"ranged {sp.low:.2f}–{sp.high:.2f}× over {sp.n} rounds (median "
                         f"{sp.median:.2f}×), so no bottleneck is named: it would explain "
                         "noise.")
    if not costs.gamma * c + v + o > 0:  # steps of 0 ms: no clock measured them
        return Diagnosis("unknown", "The run's steps record no time (0 ms), so no speed-up "
                         "can be predicted from them.")
    return None


def _cost_findings(a: float, v: float, o: float, g: float, g_asked: int) -> list[str]:
    """The findings on each measured cost that is out of the ordinary."""
    findings = []
    if g < 0.75 * g_asked:
        findings.append(f"The drafter proposed {g:.2f} tokens per step on average, of γ = "
                        f"{g_asked}: prompt lookup finds no earlier match in most steps, or "
                        "the confidence policy stops early.")
    if a < 0.5:
        findings.append(f"Acceptance is low (α̂ = {a:.2f}): most drafts are thrown away. A "
                        "draft closer to the target, or prompt lookup on repetitive text, "
                        "raises α; under sampling a lower temperature does too.")
    if v > 1.5:
        findings.append(f"A verification pass costs {v:.2f} target steps: scoring γ + 1 "
                        "tokens is not free here (on a CPU the pass for several positions "
                        "costs more than the one-token step).")
    if o > 0.3:
        findings.append(f"Per-step overhead is {o:.2f} target steps (Python, sampling, "
                        "tracing): at this model size it eats the gain.")
    return findings


def _headline(limiter: str, a: float, c: float, v: float, o: float, g: float,
              g_asked: int) -> str:
    """The diagnosis's one line for the factor that limits the speedup most."""
    headlines = {
        "short drafts": f"Limited by short drafts: {g:.2f} tokens drafted per step of γ = "
                        f"{g_asked}.",
        "acceptance": f"Limited by acceptance: too few drafts survive (α̂ = {a:.2f}).",
        "draft cost": f"Limited by draft cost: drafting takes {g * c:.2f} target steps per "
                      "step.",
        "verification cost": f"Limited by verification cost: one verify pass costs {v:.2f} "
                             "target steps.",
        "overhead": f"Limited by per-step overhead outside the models ({o:.2f} target steps).",
    }
    return headlines[limiter]
