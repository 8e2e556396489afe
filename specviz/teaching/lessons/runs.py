"""The prepared runs the lessons read, and what several lessons compute from them: which runs
are speculative, their baselines, pooled rates and costs, where each run comes from.

Lesson runs live in ``assets/traces/lessons/`` (made by ``scripts/make_lesson_traces.sh``);
some lessons also read the bundled CPU and H200 example runs in ``assets/traces/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ...paths import TRACES
from ...traces import frames as F
from ...traces.records import Trace, read_traces
from ..diagnosis import Costs

Files = dict[str, list[Trace]]  # trace file name (relative to TRACES_ROOT) -> its runs

TRACES_ROOT = TRACES
LESSON_DIR = "lessons"
SWEEP_GAMMAS = (1, 2, 4, 8)
SWEEP = tuple(f"{LESSON_DIR}/gamma-{g}.jsonl" for g in SWEEP_GAMMAS)
GREEDY = f"{LESSON_DIR}/gamma-4.jsonl"
TAU = {0.0: GREEDY, 0.7: f"{LESSON_DIR}/tau-0.7.jsonl", 1.0: f"{LESSON_DIR}/tau-1.0.jsonl"}
SWAPPED = f"{LESSON_DIR}/roles-swapped.jsonl"
HEURISTIC = f"{LESSON_DIR}/policy-heuristic.jsonl"
CONFIDENCE = tuple(f"{LESSON_DIR}/policy-confidence-{t}.jsonl" for t in ("0.3", "0.5", "0.7"))
WRONG_GREEDY = f"{LESSON_DIR}/wrong-accept-high-q-greedy.jsonl"
WRONG_SAMPLED = f"{LESSON_DIR}/wrong-accept-high-q-t0.7.jsonl"
CPU_DRAFT, CPU_EARLY_EXIT, CPU_LOOKUP = ("cpu-smollm2-draft-greedy.jsonl",
                                         "cpu-smollm2-early-exit-greedy.jsonl",
                                         "cpu-smollm2-prompt-lookup-greedy.jsonl")
CPU_BUNDLE = (CPU_DRAFT, CPU_EARLY_EXIT, CPU_LOOKUP)
H200_DRAFT, H200_EARLY_EXIT, H200_LOOKUP, H200_GRAPHS = (
    "h200-smollm2-draft-greedy.jsonl", "h200-smollm2-early-exit-greedy.jsonl",
    "h200-smollm2-prompt-lookup-greedy.jsonl", "h200-smollm2-draft-greedy-graphs.jsonl")
H200_BUNDLE = (H200_DRAFT, H200_EARLY_EXIT, H200_LOOKUP, H200_GRAPHS)  # eager but the last

FILE = "file"
LABEL = "label"
TARGET = "target"
DRAFT = "draft"
HARDWARE = "hardware"
COMMAND = "command"
PROMPT = "prompt"
MODE = "mode"


def load_files(files: Sequence[str], root: Path = TRACES_ROOT) -> Files:
    """The runs of each trace file, by its name relative to ``root``."""
    return {name: read_traces(root / name) for name in files}


def speculative(traces: Sequence[Trace]) -> list[Trace]:
    return [t for t in traces if not F.is_target_only(t)]


def baselines(traces: Sequence[Trace]) -> list[Trace]:
    return [t for t in traces if F.is_target_only(t)]


def pairs(traces: Sequence[Trace]) -> list[tuple[Trace, Trace | None]]:
    """Each speculative run with its target-only baseline from the same file (or None)."""
    return [(t, F.baseline_for(t, traces)) for t in speculative(traces)]


def later_steps(trace: Trace) -> list:
    """The steps after the first (which also processes the prompt); all if there is one."""
    return list(trace.steps[1:]) if len(trace.steps) > 1 else list(trace.steps)


def hardware_name(trace: Trace) -> str:
    hw = trace.run.hardware
    return str(hw.get("gpu") or hw.get("cpu") or hw.get("device") or "unknown")


def short(text: str, n: int = 60) -> str:
    """Text on one line, cut to n characters."""
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def visible(token: str) -> str:
    """A token's text with its whitespace made visible (plain text, not escaped)."""
    shown = token.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")
    return shown or "∅"


def provenance_frame(files: Files) -> pd.DataFrame:
    """One row per run of the lesson's files: file, label, mode, target, draft, hardware,
    command (empty for files written before commands were recorded), prompt."""
    rows = []
    for name, traces in files.items():
        for t in traces:
            r = t.run
            rows.append((name, r.label, r.mode, r.target.get("source", ""),
                         (r.draft or {}).get("source", r.drafter or "none"),
                         hardware_name(t), r.command or "(not recorded: older file)",
                         short(r.prompt_text, 48)))
    return pd.DataFrame(rows, columns=[FILE, LABEL, MODE, TARGET, DRAFT, HARDWARE, COMMAND,
                                       PROMPT])


def pooled_costs(runs: Sequence[tuple[Trace, Trace | None]]) -> Costs:
    """Rates and costs of several runs of one setup (different prompts), pooled.

    α̂ = Σ accepted / Σ judged; tokens per step = Σ emitted / Σ steps; tokens/s and the
    speedup from summed tokens and wall times; c, v, overhead as in ``diagnosis.measure``
    (first step of each run left out), against the mean target-only step of the baselines.
    """
    specs = [t.with_summary() for t, _ in runs]
    bases = [b.with_summary() for _, b in runs if b is not None]
    acc = sum(s.n_accepted for t in specs for s in t.steps)
    judged = sum(s.n_evaluated for t in specs for s in t.steps)
    n_steps = sum(len(t.steps) for t in specs)
    emitted = sum(t.summary.n_emitted for t in specs)
    wall = sum(t.summary.wall_s for t in specs)
    later = [s for t in specs for s in later_steps(t)]
    drafting = [s for s in later if s.gamma > 0]
    base_steps = [s.total_ms for b in bases for s in later_steps(b)]
    base_ms, source = (float(np.mean(base_steps)), "baseline") if base_steps else (None, "")
    if base_ms is None and later:
        base_ms, source = float(np.mean([s.verify_ms for s in later])), \
            "verify pass (v = 1 assumed)"
    c = v = overhead = None
    if base_ms and later:
        n_drafted = sum(s.gamma for s in drafting)
        c = sum(s.draft_ms for s in drafting) / n_drafted / base_ms if n_drafted else 0.0
        v = float(np.mean([s.verify_ms for s in later])) / base_ms
        overhead = float(np.mean([max(s.total_ms - s.draft_ms - s.verify_ms, 0.0)
                                  for s in later])) / base_ms
    speed = None
    if bases and len(bases) == len(specs):
        b_tps = sum(b.summary.n_emitted for b in bases) / sum(b.summary.wall_s for b in bases)
        speed = (emitted / wall) / b_tps if wall and b_tps else None
    betas = [b for t in specs for s in t.steps if s.beta for b in s.beta[: s.n_evaluated]]
    gamma_cfg = specs[0].run.config.get("gamma") if specs else None
    return Costs(alpha=acc / judged if judged else None,
                 gamma=float(np.mean([s.gamma for t in specs for s in t.steps]))
                 if n_steps else 0.0,
                 mean_accepted_length=emitted / n_steps if n_steps else None,
                 tokens_per_target_pass=emitted / n_steps if n_steps else None,
                 tokens_per_s=emitted / wall if wall else 0.0, c=c, v=v, overhead=overhead,
                 target_step_ms=base_ms, target_step_from=source, speedup_measured=speed,
                 mean_beta=float(np.mean(betas)) if betas else None,
                 gamma_config=int(gamma_cfg) if isinstance(gamma_cfg, int) else None)


def file_costs(traces: Sequence[Trace]) -> Costs:
    """``pooled_costs`` of every speculative run in one file, with their baselines."""
    return pooled_costs(pairs(traces))


def predicted_speedup(costs: Costs) -> float | None:
    """The course's formula on measured values: E / (γ̄·c + v + o), E the measured tokens
    per step, γ̄ the drafted tokens per step; None without the measurements."""
    e, c, v, o = costs.mean_accepted_length, costs.c, costs.v, costs.overhead
    if None in (e, c, v, o):
        return None
    return e / (costs.gamma * c + v + o)


def judged_alpha(traces: Sequence[Trace]) -> float | None:
    """α̂ over every speculative run of ``traces``: Σ accepted / Σ judged."""
    steps = [s for t in speculative(traces) for s in t.steps]
    judged = sum(s.n_evaluated for s in steps)
    return sum(s.n_accepted for s in steps) / judged if judged else None
