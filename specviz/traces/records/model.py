"""The records of a trace: what one speculative decoding run did, step by step.

A trace file is JSON Lines. Each run is a ``run`` record, then one ``step`` record per
verification step, then a ``summary`` record. Several runs may share one file. The format is
documented in docs/trace-format.md; the key names here are that document's.

Notation: p = target distribution, q = draft distribution.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from ...core import DRAFTERS
from ...errors import clean

SCHEMA_VERSION = 5  # 2 added run.command; 3 tree steps (step.tree_parent); 4 run.prompt_last_text;
# 5 run.baseline_of (a target-only run names the speculative run it was measured against)
EMITTED_KINDS = ("accepted", "resampled", "bonus")
MODES = ("speculative", "target-only")
DRAFTER_KINDS = DRAFTERS
STOP_REASONS = ("max_new_tokens", "eos", "context", "stopped", "error")


class TraceError(ValueError):
    """A trace file is malformed. The message names the file, line and field."""

    def __init__(self, message: str, *, source: str = "<trace>", line: int | None = None,
                 field_name: str | None = None):
        self.source = source
        self.line = line
        self.field_name = field_name
        src = clean(str(source), 200)
        where = src if line is None else f"{src}, line {line}"
        what = f" field '{clean(field_name, 60)}'" if field_name else ""
        super().__init__(f"{where}:{what} {message}")


class OverBudget(TraceError):
    """A trace file would take more memory than its MemoryBudget allows."""


@dataclass(frozen=True)
class RunRecord:
    """How a run was set up: models, drafter, decoding configuration, prompt, hardware."""

    run_id: str
    mode: str  # "speculative" | "target-only"
    created: str
    specviz_version: str
    target: dict
    draft: dict | None
    drafter: str | None
    config: dict
    prompt_text: str
    prompt_token_ids: list[int]
    hardware: dict
    schema_version: int = SCHEMA_VERSION
    label: str = ""
    command: str = ""  # the command line that made the run, if any (schema 2)
    # the text of the prompt's last token: x_0, the root of the first step (schema 4)
    prompt_last_text: str = ""
    # a target-only run measured as the baseline of one speculative run: that run's run_id
    # (schema 5); "" for a run that is no baseline or comes from an older trace
    baseline_of: str = ""

    def to_json(self) -> dict:
        return {"record": "run", **asdict(self)}


@dataclass(frozen=True)
class StepRecord:
    """One verification step: what was drafted, how the target judged it, what was emitted.

    Lists indexed by draft position have length ``gamma``; the emitted lists have length
    ``n_accepted + 1`` (or less when the run stopped inside the step).

    A tree step (``tree_parent`` set) drafted ``gamma`` nodes: the lists are indexed by node,
    ``tree_parent[i]`` is node i's parent (-1: a child of the root, the last committed token),
    ``p`` and ``q`` are each node's token's probability at its parent, ``accepted`` marks the
    accepted path (one node per depth from the root), and ``accept_prob`` and ``u`` are None
    for nodes the verifier never reached.
    """

    step: int
    gamma: int
    drafted_ids: list[int]
    drafted_text: list[str]
    q: list[float] | None  # draft prob of each drafted token; None for drafters without q
    p: list[float]  # target prob of each drafted token
    accept_prob: list[float | None]  # min(1, p/q); greedy: 1.0 if it is the target's argmax
    u: list[float | None] | None  # uniform draw per evaluated position; None under greedy
    accepted: list[bool]
    emitted_ids: list[int]
    emitted_text: list[str]
    emitted_kinds: list[str]
    p_top_ids: list[list[int]] = field(default_factory=list)
    p_top_texts: list[list[str]] = field(default_factory=list)
    p_top_probs: list[list[float]] = field(default_factory=list)
    q_top_ids: list[list[int]] | None = None
    q_top_texts: list[list[str]] | None = None
    q_top_probs: list[list[float]] | None = None
    beta: list[float] | None = None  # sum_x min(p(x), q(x)) per position (sampling only)
    draft_ms: float = 0.0
    verify_ms: float = 0.0
    accept_ms: float = 0.0
    total_ms: float = 0.0
    t_end_s: float = 0.0  # seconds since the run started, at the end of this step
    tree_parent: list[int] | None = None  # a tree step: each node's parent (schema 3)

    @property
    def n_accepted(self) -> int:
        return sum(self.accepted)

    @property
    def n_evaluated(self) -> int:
        """Positions the verifier actually judged: the accepted ones plus the first rejection
        (in a tree: every node whose parent was reached, up to the accepted sibling)."""
        if self.tree_parent is not None:
            return sum(a is not None for a in self.accept_prob)
        return min(self.gamma, self.n_accepted + 1) if self.gamma else 0

    @property
    def tree_depth(self) -> list[int]:
        """Each node's depth (1: a child of the root); a chain's position + 1."""
        if self.tree_parent is None:
            return list(range(1, self.gamma + 1))
        depth: list[int] = []
        for par in self.tree_parent:
            depth.append(1 if par < 0 else depth[par] + 1)
        return depth

    def to_json(self) -> dict:
        return {"record": "step", **asdict(self)}


@dataclass(frozen=True)
class SummaryRecord:
    """Totals of a run. See docs/trace-format.md for the definitions of the rates."""

    output_token_ids: list[int]
    output_text: str
    n_steps: int
    n_drafted: int
    n_accepted: int
    n_emitted: int
    target_forward_passes: int
    alpha_hat: float | None
    mean_accepted_length: float | None
    wall_s: float
    tokens_per_s: float
    stop_reason: str = "max_new_tokens"  # "eos" | "max_new_tokens" | "stopped" | "context"
    draft_forward_passes: int = 0
    mean_beta: float | None = None
    # a speed-up measured over rounds (speculative and target-only decodes alternated): this
    # run's tokens/s in each round, in order; None for a run measured once (schema 5)
    round_tokens_per_s: list[float] | None = None

    def to_json(self) -> dict:
        return {"record": "summary", **asdict(self)}


@dataclass(frozen=True)
class Trace:
    """One run: its run record, its steps, and its summary (None while incomplete)."""

    run: RunRecord
    steps: tuple[StepRecord, ...] = ()
    summary: SummaryRecord | None = None

    @property
    def complete(self) -> bool:
        return self.summary is not None

    def lines(self) -> Iterator[str]:
        yield dumps(self.run.to_json())
        for s in self.steps:
            yield dumps(s.to_json())
        if self.summary is not None:
            yield dumps(self.summary.to_json())

    def with_summary(self) -> "Trace":
        """This trace with a summary computed from its steps (for incomplete runs)."""
        if self.summary is not None:
            return self
        return Trace(self.run, self.steps, summarize(self.run, self.steps, wall_s=None,
                                                     output_text="", stop_reason="stopped"))


def summarize(run: RunRecord, steps: Iterable[StepRecord], *, wall_s: float | None,
              output_text: str, stop_reason: str,
              target_forward_passes: int | None = None,
              draft_forward_passes: int = 0) -> SummaryRecord:
    """Totals and rates from step records.

    alpha_hat = accepted / evaluated, where evaluated counts each step's accepted positions
    plus its first rejected one (positions after a rejection are never judged). Under the
    i.i.d. model of Leviathan et al. this is the maximum-likelihood estimate of alpha.
    mean_accepted_length = emitted tokens per verification step (accepted drafts + the one
    target token), the expected value E = (1 - alpha^(gamma+1)) / (1 - alpha) of that paper.
    """
    steps = list(steps)
    out = [t for s in steps for t in s.emitted_ids]
    n_drafted = sum(s.gamma for s in steps)
    n_accepted = sum(s.n_accepted for s in steps)
    n_evaluated = sum(s.n_evaluated for s in steps)
    betas = [b for s in steps if s.beta for b in s.beta[: s.n_evaluated]]
    if wall_s is None:
        wall_s = steps[-1].t_end_s if steps else 0.0
    spec = run.mode == "speculative"
    return SummaryRecord(
        output_token_ids=out,
        output_text=output_text,
        n_steps=len(steps),
        n_drafted=n_drafted,
        n_accepted=n_accepted,
        n_emitted=len(out),
        target_forward_passes=len(steps) if target_forward_passes is None
        else target_forward_passes,
        alpha_hat=(n_accepted / n_evaluated) if (spec and n_evaluated) else None,
        mean_accepted_length=(len(out) / len(steps)) if steps else None,
        wall_s=round(wall_s, 6),
        tokens_per_s=round(len(out) / wall_s, 3) if wall_s > 0 else 0.0,
        stop_reason=stop_reason,
        draft_forward_passes=draft_forward_passes,
        mean_beta=(sum(betas) / len(betas)) if betas else None,
    )


def dumps(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class TraceWriter:
    """Writes records line by line, flushing each, so a crash loses at most one step."""

    def __init__(self, path_or_file: str | os.PathLike | IO[str], *, append: bool = False):
        if isinstance(path_or_file, (str, os.PathLike)):
            Path(path_or_file).parent.mkdir(parents=True, exist_ok=True)
            self._f: IO[str] = open(path_or_file, "a" if append else "w", encoding="utf-8")
            self._own = True
        else:
            self._f = path_or_file
            self._own = False

    def write(self, record: RunRecord | StepRecord | SummaryRecord) -> None:
        self._f.write(dumps(record.to_json()) + "\n")
        self._f.flush()

    def write_trace(self, trace: Trace) -> None:
        for line in trace.lines():
            self._f.write(line + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._own:
            self._f.close()

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def write_traces(path: str | os.PathLike, traces: Iterable[Trace]) -> None:
    with TraceWriter(path) as w:
        for t in traces:
            w.write_trace(t)


def traces_to_jsonl(traces: Iterable[Trace]) -> str:
    return "".join(line + "\n" for t in traces for line in t.lines())
