"""Lesson 8, tuning γ under a fixed verification budget: the γ sweep's steps replayed in
recorded order until a budget of target passes, target time or scored positions is spent,
beside the target alone under the same budget."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...traces import frames as F
from .. import theory
from .runs import FILE, SWEEP, Files, baselines, file_costs, later_steps, speculative
from .stats import relative_spread

FILES = SWEEP

PASSES, TIME_MS, TIME_STEPS, POSITIONS = ("target passes", "target time (ms)",
                                          "target time (target-only steps)",
                                          "scored positions")
BUDGET_KINDS = (PASSES, TIME_MS, TIME_STEPS, POSITIONS)
UNITS = {PASSES: "passes", TIME_MS: "ms", TIME_STEPS: "target-only steps",
         POSITIONS: "positions"}
DEFAULT_BUDGET = {PASSES: 30, TIME_MS: 3500, TIME_STEPS: 40, POSITIONS: 200}
TARGET_ONLY = "target only"
EXERCISE_BUDGET = 100  # scored positions

STEPS = "steps"
TOKENS = "tokens"
USED = "used"
PER_UNIT = "tokens_per_unit"


def _check(kind: str) -> None:
    if kind not in BUDGET_KINDS:
        raise ValueError(f"unknown budget kind {kind!r}; choose from {', '.join(BUDGET_KINDS)}")


def _step_cost(s, kind: str, base_ms: float) -> float:
    return {PASSES: 1.0, TIME_MS: s.verify_ms, TIME_STEPS: s.verify_ms / base_ms,
            POSITIONS: s.gamma + 1.0}[kind]


def budget_frame(files: Files, budget: float, kind: str) -> pd.DataFrame:
    """Replay each γ file's speculative steps (runs in file order, steps in recorded order,
    the first step of each run left out: it also processes the prompt) until the budget is
    spent; a step counts only if it fits whole. One more row, γ = 0, is the target alone:
    one token per pass, per position and per target-only step; under a budget in ms, one
    token per mean target-only step of the files' baselines.

    kind: a step costs one pass; its verify_ms; its verify_ms over the file's mean
    target-only step; or its γ + 1 scored positions.
    Columns: file, gamma, steps, tokens, used, tokens per unit of budget.
    """
    _check(kind)
    rows = []
    base_steps = [s.total_ms for traces in files.values() for b in baselines(traces)
                  for s in later_steps(b)]
    if base_steps:
        mean_ms = float(np.mean(base_steps))
        unit = mean_ms if kind == TIME_MS else 1.0
        n = int(budget // unit)
        rows.append((TARGET_ONLY, 0, n, n, n * unit, n / (n * unit) if n else F.NAN))
    for name, traces in files.items():
        specs = speculative(traces)
        if not specs:
            continue
        base_ms = file_costs(traces).target_step_ms or F.NAN
        used = 0.0
        n_steps = tokens = 0
        for s in (s for t in specs for s in later_steps(t)):
            cost = _step_cost(s, kind, base_ms)
            if used + cost > budget:
                break
            used += cost
            n_steps += 1
            tokens += len(s.emitted_ids)
        rows.append((name, int(specs[0].run.config.get("gamma", 0)), n_steps, tokens, used,
                     tokens / used if used else F.NAN))
    return pd.DataFrame(rows, columns=[FILE, theory.GAMMA, STEPS, TOKENS, USED, PER_UNIT])


def budget_limit(files: Files, kind: str) -> float:
    """The largest budget every file can fill: the smallest total over the files."""
    _check(kind)
    totals = []
    for traces in files.values():
        base_ms = file_costs(traces).target_step_ms or F.NAN
        steps = [s for t in speculative(traces) for s in later_steps(t)]
        if steps:
            totals.append(sum(_step_cost(s, kind, base_ms) for s in steps))
    return float(min(totals)) if totals else 0.0


def _tokens(files: Files, kind: str) -> dict[int, int]:
    t = budget_frame(files, DEFAULT_BUDGET[kind], kind)
    return dict(zip(t[theory.GAMMA].astype(int), t[TOKENS].astype(int)))


def numbers(files: Files) -> dict:
    out: dict = {}
    for kind, tag in ((PASSES, "p"), (TIME_MS, "ms"), (TIME_STEPS, "ts"), (POSITIONS, "pos")):
        out[f"budget_{tag}"] = DEFAULT_BUDGET[kind]
        for g, n in _tokens(files, kind).items():
            out[f"{tag}{g}"] = n
    bases = {int(speculative(files[f])[0].run.config["gamma"]): file_costs(files[f])
             for f in SWEEP}
    for g, c in bases.items():
        out[f"e{g}"] = c.mean_accepted_length
        out[f"per_pos{g}"] = c.mean_accepted_length / (g + 1)
        out[f"base_ms{g}"] = c.target_step_ms
    others = [c.target_step_ms for g, c in bases.items() if g != 4]
    out["base_ms_others_min"], out["base_ms_others_max"] = min(others), max(others)
    out["ex_budget"] = EXERCISE_BUDGET  # the numeric exercise: γ = 4 under 100 positions
    out["ex_tokens"] = EXERCISE_BUDGET * out["e4"] / 5
    out["ex_per_gamma"] = EXERCISE_BUDGET * out["e4"] / 4
    out["ex_per_step"] = EXERCISE_BUDGET * out["e4"]
    out["base_spread"] = relative_spread([c.target_step_ms for c in bases.values()])
    for f in SWEEP:  # whole runs: tokens per target-only step of the file's own baseline
        g = int(speculative(files[f])[0].run.config["gamma"])
        used = sum(_step_cost(s, TIME_STEPS, bases[g].target_step_ms)
                   for t in speculative(files[f]) for s in later_steps(t))
        emitted = sum(len(s.emitted_ids) for t in speculative(files[f]) for s in later_steps(t))
        out[f"whole_ts{g}"] = emitted / used
    out["whole_gap84"] = abs(out["whole_ts8"] / out["whole_ts4"] - 1)
    return out


def checks(n: dict) -> dict[str, bool]:
    gs = (1, 2, 4, 8)
    return {
        "passes_favour_long_drafts": all(n[f"p{a}"] < n[f"p{b}"] for a, b in zip(gs, gs[1:]))
                                     and n["p1"] > n["p0"],
        "positions_favour_the_target": all(n[f"pos{g}"] < n["pos0"] for g in gs)
                                       and all(n[f"per_pos{g}"] < 1 for g in gs),
        "ms_gamma4_wins": n["ms4"] == max(n[f"ms{g}"] for g in (0, *gs)),
        "ms_gamma8_beats_gamma2": n["ms8"] > n["ms2"],
        "gamma4_file_ran_faster": n["base_ms4"] < n["base_ms_others_min"],
        "target_steps_gamma8_wins": n["ts8"] == max(n[f"ts{g}"] for g in (0, *gs)),
        "target_steps_top_two_tie": n["whole_gap84"] < n["base_spread"],
    }
