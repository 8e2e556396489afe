"""Traces as the two plain tables the Runs views query: one row per run, one per step.

``runs`` holds a run's setup (what the filters and groups use) and what only the run record
or summary knows (wall time, stop reason); ``steps`` holds, per verification step, the counts
the aggregates need. Everything else (per-run totals, α̂, acceptance by draft position,
speed-ups) is computed from these two in SQL (specviz.runs.queries), on DuckDB. Column
names and types live in RUN_COLUMNS and STEP_COLUMNS and nowhere else; docs/runs.md
describes them.
"""

from __future__ import annotations

from typing import Iterable

import pyarrow as pa

from ..traces.records import Trace

_I, _I32, _F, _S, _B = pa.int64(), pa.int32(), pa.float64(), pa.string(), pa.bool_()

# name -> (Arrow type, meaning)
RUN_COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    "run_key": (_S, "unique key of the run in this data set: '<source>#<run_index>'"),
    "run_id": (_S, "the run record's run_id"),
    "source": (_S, "the trace file the run came from (its name)"),
    "run_index": (_I, "order of the run in that file, from 0"),
    "mode": (_S, "'speculative' or 'target-only'"),
    "label": (_S, "the run record's label"),
    "pair": (_S, "target and draft sources: 'target ← draft', or the target alone"),
    "target": (_S, "target model source"),
    "draft": (_S, "draft model source; null without one"),
    "drafter": (_S, "'model', 'feature-head', 'prompt-lookup', 'early-exit'; null: target only"),
    "shape": (_S, "'γ=4' (a chain of γ drafts), 'tree 3,2,1' or 'target only'"),
    "gamma": (_I, "config gamma; null for target-only runs"),
    "tree": (_S, "config tree; null for a chain"),
    "policy": (_S, "draft-length policy"),
    "temperature": (_F, "τ; 0 = greedy"),
    "top_k": (_I, "config top_k"),
    "top_p": (_F, "config top_p"),
    "seed": (_I, "config seed"),
    "max_new_tokens": (_I, "config max_new_tokens"),
    "chat": (_B, "the prompt went through the chat template"),
    "device": (_S, "hardware.device ('cpu', 'cuda', ...)"),
    "engine": (_S, "the engine that ran (hardware.engine.path), else the one asked for"),
    "category": (_S, "the prompt's category, when a prompts file gave one"),
    "prompt": (_S, "the prompt text (cut to 500 characters)"),
    "created": (_S, "UTC start time, ISO 8601"),
    "date": (_S, "the start's date, YYYY-MM-DD ('unknown' without one)"),
    "baseline_of": (_S, "a target-only run: the run_id of the run it is the baseline of"),
    "complete": (_B, "the run has its summary"),
    "stop_reason": (_S, "summary stop reason ('stopped' for an incomplete run)"),
    "wall_s": (_F, "seconds from start to end (incomplete: the last step's clock)"),
    "trace_file": (_S, "where the whole trace can be read back (a path), if anywhere"),
}
STEP_COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    "run_key": (_S, "the run"),
    "step": (_I32, "step number from 0"),
    "gamma": (_I32, "tokens (a tree: nodes) drafted in the step"),
    "n_accepted": (_I32, "drafted tokens accepted"),
    "n_evaluated": (_I32, "positions judged: the accepted ones and the first rejection"),
    "n_emitted": (_I32, "tokens the step added to the output"),
    "tree": (_B, "the step drafted a token tree (its positions are nodes, not depths)"),
    "draft_ms": (_F, "time drafting"),
    "verify_ms": (_F, "time in the target's forward pass"),
    "total_ms": (_F, "the whole step"),
}
RUN_SCHEMA = pa.schema([(k, t) for k, (t, _) in RUN_COLUMNS.items()])
STEP_SCHEMA = pa.schema([(k, t) for k, (t, _) in STEP_COLUMNS.items()])
PROMPT_CHARS = 500


def _str(v) -> str | None:
    return v if isinstance(v, str) else None


def _int(v) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _float(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def shape_of(mode: str, gamma: int | None, tree: str | None) -> str:
    if mode == "target-only":
        return "target only"
    return f"tree {tree}" if tree else f"γ={gamma if gamma is not None else '?'}"


def run_row(trace: Trace, source: str, index: int, categories: dict[str, str] | None = None,
            trace_file: str | None = None) -> dict:
    """One row of RUN_COLUMNS for a trace."""
    r, cfg, hw = trace.run, trace.run.config, trace.run.hardware or {}
    target = _str(r.target.get("source")) or "?"
    draft = _str((r.draft or {}).get("source"))
    engine = hw.get("engine")
    engine = _str(engine.get("path")) if isinstance(engine, dict) else None
    tree = _str(cfg.get("tree")) or None
    gamma = _int(cfg.get("gamma")) if r.mode != "target-only" else None
    summary = trace.summary or trace.with_summary().summary
    created = r.created if isinstance(r.created, str) else ""
    return {
        "run_key": f"{source}#{index}", "run_id": r.run_id, "source": source, "run_index": index,
        "mode": r.mode, "label": r.label,
        "pair": f"{target} ← {draft}" if draft else target,
        "target": target, "draft": draft, "drafter": r.drafter,
        "shape": shape_of(r.mode, gamma, tree), "gamma": gamma, "tree": tree,
        "policy": _str(cfg.get("policy")), "temperature": _float(cfg.get("temperature")),
        "top_k": _int(cfg.get("top_k")), "top_p": _float(cfg.get("top_p")),
        "seed": _int(cfg.get("seed")), "max_new_tokens": _int(cfg.get("max_new_tokens")),
        "chat": cfg.get("chat") if isinstance(cfg.get("chat"), bool) else None,
        "device": _str(hw.get("device")) or _str(r.target.get("device")),
        "engine": engine or _str(cfg.get("engine")),
        "category": (categories or {}).get(r.prompt_text),
        "prompt": r.prompt_text[:PROMPT_CHARS],
        "created": created, "date": created[:10] if len(created) >= 10 else "unknown",
        "baseline_of": r.baseline_of or None, "complete": trace.complete,
        "stop_reason": summary.stop_reason, "wall_s": summary.wall_s,
        "trace_file": trace_file,
    }


def step_rows(trace: Trace, run_key: str) -> dict[str, list]:
    """The steps of one trace as columns of STEP_COLUMNS."""
    steps = trace.steps
    return {
        "run_key": [run_key] * len(steps),
        "step": [s.step for s in steps],
        "gamma": [s.gamma for s in steps],
        "n_accepted": [s.n_accepted for s in steps],
        "n_evaluated": [s.n_evaluated for s in steps],
        "n_emitted": [len(s.emitted_ids) for s in steps],
        "tree": [s.tree_parent is not None for s in steps],
        "draft_ms": [s.draft_ms for s in steps],
        "verify_ms": [s.verify_ms for s in steps],
        "total_ms": [s.total_ms for s in steps],
    }


class TableBuilder:
    """Collects runs and steps of many traces, then hands them over as Arrow tables."""

    def __init__(self):
        self.runs: list[dict] = []
        self.steps: list[pa.RecordBatch] = []
        self.n_steps = 0

    def add(self, trace: Trace, source: str, index: int,
            categories: dict[str, str] | None = None, trace_file: str | None = None) -> None:
        row = run_row(trace, source, index, categories, trace_file)
        self.runs.append(row)
        if trace.steps:
            self.steps.append(pa.RecordBatch.from_pydict(step_rows(trace, row["run_key"]),
                                                         schema=STEP_SCHEMA))
            self.n_steps += len(trace.steps)

    def add_all(self, traces: Iterable[Trace], source: str, **kw) -> None:
        for i, t in enumerate(traces):
            self.add(t, source, i, **kw)

    def tables(self) -> tuple[pa.Table, pa.Table]:
        runs = pa.Table.from_pylist(self.runs, schema=RUN_SCHEMA)
        steps = (pa.Table.from_batches(self.steps, schema=STEP_SCHEMA) if self.steps
                 else STEP_SCHEMA.empty_table())
        return runs, steps
