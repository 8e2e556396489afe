"""Trace records: what one speculative decoding run did, step by step.

A trace file is JSON Lines. Each run is a ``run`` record, then one ``step`` record per
verification step, then a ``summary`` record. Several runs may share one file. The format is
documented in docs/trace-format.md; the key names here are that document's.

Notation: p = target distribution, q = draft distribution.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from ..core import DRAFTERS
from ..errors import clean
from ..limits import (
    GAMMA_MAX,
    MAX_CONTEXT_TOKENS,
    MAX_LINE_CHARS,
    MAX_PROMPT_CHARS,
    MAX_RUNS_PER_FILE,
    MAX_STEPS_PER_RUN,
    MAX_TOKEN_CHARS,
    MAX_TRACE_MB,
    TOP_ALTERNATIVES_MAX,
    TREE_NODES_MAX,
)

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


# ---------------------------------------------------------------- validation and loading

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    # an int beyond float range would make math.isfinite raise OverflowError
    return abs(v) <= sys.float_info.max if isinstance(v, int) else math.isfinite(v)


class MemoryBudget:
    """What the values read so far from one file take in memory (estimated in bytes, as
    _cost says), against a limit: a file's size on disk says little about it."""

    def __init__(self, limit_mb: float | None):
        self.limit = None if limit_mb is None else int(limit_mb * 2**20)
        self.used = 0


def _cost(v: list | str) -> int:
    """Bytes a list of values or a string takes in CPython, an upper estimate: 64 for a
    list, 48 for a number (its slot and object), 96 + 4 per character for a string."""
    if isinstance(v, str):
        return 96 + 4 * len(v)
    return 64 + sum(96 + 4 * len(x) if isinstance(x, str) else 48 for x in v)


class _Checker:
    def __init__(self, source: str, line: int, obj: dict, budget: MemoryBudget | None = None):
        self.source, self.line, self.obj = source, line, obj
        self.budget = budget or MemoryBudget(None)

    def fail(self, name: str | None, msg: str) -> TraceError:
        return TraceError(msg, source=self.source, line=self.line, field_name=name)

    def spend(self, name: str, v: list | str) -> None:
        b = self.budget
        b.used += _cost(v)
        if b.limit is not None and b.used > b.limit:
            raise OverBudget(f"brings the file past {b.limit / 2**20:,.0f} MB in memory "
                             "(estimated), the most one trace file may take",
                             source=self.source, line=self.line, field_name=name)

    def get(self, name: str, *, optional: bool = False, default: Any = None) -> Any:
        if name not in self.obj:
            if optional:
                return default
            raise self.fail(name, "is missing")
        return self.obj[name]

    def int_(self, name: str, *, lo: int | None = None, hi: int | None = None,
             optional: bool = False, default: int = 0) -> int:
        v = self.get(name, optional=optional, default=default)
        if not _is_int(v):
            raise self.fail(name, f"must be an integer, got {_show(v)}")
        if lo is not None and v < lo:
            raise self.fail(name, f"must be >= {lo}, got {v}")
        if hi is not None and v > hi:
            raise self.fail(name, f"must be <= {hi:,}, got {_show(v)}")
        return v

    def num(self, name: str, *, optional: bool = False, nullable: bool = False,
            default: float = 0.0, lo: float | None = None, hi: float | None = None) -> Any:
        v = self.get(name, optional=optional, default=default)
        if v is None and nullable:
            return None
        if not _is_num(v):
            raise self.fail(name, f"must be a finite number, got {_show(v)}")
        if hi is None and lo is not None and v < lo:
            raise self.fail(name, f"must be >= {lo}, got {v}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.fail(name, f"must lie in [{lo}, {hi}], got {v}")
        return float(v)

    def str_(self, name: str, *, optional: bool = False, default: str = "",
             max_chars: int | None = None) -> str:
        v = self.get(name, optional=optional, default=default)
        if not isinstance(v, str):
            raise self.fail(name, f"must be a string, got {_show(v)}")
        if max_chars is not None and len(v) > max_chars:
            raise self.fail(name, f"has {len(v):,} characters; at most {max_chars:,} are "
                            "allowed")
        self.spend(name, v)
        return v

    def dict_(self, name: str, *, nullable: bool = False, optional: bool = False) -> Any:
        v = self.get(name, optional=optional, default=None if nullable else {})
        if v is None and nullable:
            return None
        if not isinstance(v, dict):
            raise self.fail(name, f"must be an object, got {_show(v)}")
        return v

    def list_(self, name: str, kind: str, *, length: int | None = None,
              nullable: bool = False, optional: bool = False, lo: float | None = None,
              hi: float | None = None, items_nullable: bool = False,
              max_len: int | None = None) -> Any:
        v = self.get(name, optional=optional, default=None if nullable else [])
        if v is None and nullable:
            return None
        if not isinstance(v, list):
            raise self.fail(name, f"must be a list, got {_show(v)}")
        if length is not None and len(v) != length:
            raise self.fail(name, f"must have {length} entries, has {len(v)}")
        if max_len is not None and len(v) > max_len:
            raise self.fail(name, f"has {len(v):,} entries; at most {max_len:,} are allowed")
        test = _TESTS[kind]
        for i, x in enumerate(v):
            if x is None and items_nullable:
                continue
            if not test(x):
                raise self.fail(name, f"entry {i} must be of type {kind}, got {_show(x)}")
            if kind == "num" and ((lo is not None and x < lo) or (hi is not None and x > hi)):
                raise self.fail(name, f"entry {i} must lie in [{lo}, {hi}], got {x}")
            if kind == "int" and lo is not None and x < lo:
                raise self.fail(name, f"entry {i} must be >= {lo}, got {x}")
            if kind == "str" and len(x) > MAX_TOKEN_CHARS:
                raise self.fail(name, f"entry {i} has {len(x):,} characters; a token's text "
                                f"has at most {MAX_TOKEN_CHARS:,}")
        self.spend(name, v)
        return v

    def nested(self, name: str, kind: str, *, length: int, nullable: bool = False,
               lo: float | None = None, hi: float | None = None) -> Any:
        """A top-k field: ``length`` rows (or none) of at most TOP_ALTERNATIVES_MAX entries."""
        v = self.get(name, optional=True, default=None if nullable else [])
        if v is None and nullable:
            return None
        if not isinstance(v, list):
            raise self.fail(name, f"must be a list, got {_show(v)}")
        if v and len(v) != length:
            raise self.fail(name, f"must have {length} entries, has {len(v)}")
        test = _TESTS[kind]
        for i, row in enumerate(v):
            if not isinstance(row, list):
                raise self.fail(name, f"entry {i} must be a list, got {_show(row)}")
            if len(row) > TOP_ALTERNATIVES_MAX:
                raise self.fail(name, f"entry {i} has {len(row):,} alternatives; at most "
                                f"{TOP_ALTERNATIVES_MAX} are recorded")
            for x in row:
                if not test(x) or (kind == "num" and ((lo is not None and x < lo)
                                                      or (hi is not None and x > hi))):
                    raise self.fail(name, f"entry {i} holds an invalid value {_show(x)}")
                if kind == "str" and len(x) > MAX_TOKEN_CHARS:
                    raise self.fail(name, f"entry {i} holds a text of {len(x):,} characters; "
                                    f"a token's text has at most {MAX_TOKEN_CHARS:,}")
            self.spend(name, row)
        return v


_TESTS = {"int": _is_int, "num": _is_num, "str": lambda x: isinstance(x, str),
          "bool": lambda x: isinstance(x, bool)}


def _show(v: Any) -> str:
    try:
        s = json.dumps(v, ensure_ascii=True, default=str)
    except RecursionError:  # nested almost as deep as json.loads allows
        s = f"a {type(v).__name__} nested too deep to show"
    return s if len(s) <= 40 else s[:37] + "..."


_MODEL_KEYS = ("source",)


def _parse_run(c: _Checker) -> RunRecord:
    version = c.int_("schema_version", lo=1)
    if version > SCHEMA_VERSION:
        raise c.fail("schema_version", f"is {version}; this specviz reads up to "
                     f"{SCHEMA_VERSION} (upgrade specviz)")
    mode = c.str_("mode", optional=True, default="speculative")
    if mode not in MODES:
        raise c.fail("mode", f"must be one of {', '.join(MODES)}, got {_show(mode)}")
    target = c.dict_("target")
    draft = c.dict_("draft", nullable=True, optional=True)
    for name, m in (("target", target), ("draft", draft)):
        if m is not None and not isinstance(m.get("source"), str):
            raise c.fail(name, "must name its 'source' as a string")
    drafter = c.get("drafter", optional=True)
    if drafter is not None and drafter not in DRAFTER_KINDS:
        raise c.fail("drafter", f"must be one of {', '.join(DRAFTER_KINDS)} or null, got "
                     f"{_show(drafter)}")
    config = c.dict_("config")
    gamma = config.get("gamma")
    if gamma is not None and not (_is_int(gamma) and 0 <= gamma <= GAMMA_MAX):
        raise c.fail("config", f"'gamma' must be an integer from 0 to {GAMMA_MAX}, got "
                     f"{_show(gamma)}")
    temp = config.get("temperature")
    if temp is not None and not (_is_num(temp) and temp >= 0):
        raise c.fail("config", f"'temperature' must be >= 0, got {_show(temp)}")
    return RunRecord(
        run_id=c.str_("run_id", optional=True, default=f"line{c.line}"),
        mode=mode,
        created=c.str_("created", optional=True),
        specviz_version=c.str_("specviz_version", optional=True),
        target=target,
        draft=draft,
        drafter=drafter,
        config=config,
        prompt_text=c.str_("prompt_text", max_chars=MAX_PROMPT_CHARS),
        prompt_token_ids=c.list_("prompt_token_ids", "int", lo=0, max_len=MAX_CONTEXT_TOKENS),
        hardware=c.dict_("hardware", optional=True),
        schema_version=version,
        label=c.str_("label", optional=True),
        command=c.str_("command", optional=True),
        prompt_last_text=c.str_("prompt_last_text", optional=True, max_chars=1000),
        baseline_of=c.str_("baseline_of", optional=True, max_chars=200),
    )


def _parse_step(c: _Checker) -> StepRecord:
    tree = c.obj.get("tree_parent") is not None
    g = c.int_("gamma", lo=0, hi=TREE_NODES_MAX if tree else GAMMA_MAX)  # nodes, or drafts
    drafted_ids = c.list_("drafted_ids", "int", length=g, lo=0)
    accepted = c.list_("accepted", "bool", length=g)
    parent = c.list_("tree_parent", "int", length=g, nullable=True, optional=True)
    if parent is None:
        _check_prefix(c, accepted)
        path = [i for i, a in enumerate(accepted) if a]
    else:
        path = _check_tree(c, parent, accepted)
    emitted_ids = c.list_("emitted_ids", "int", lo=0, max_len=g + 1)
    kinds = c.list_("emitted_kinds", "str", length=len(emitted_ids))
    for i, k in enumerate(kinds):
        if k not in EMITTED_KINDS:
            raise c.fail("emitted_kinds", f"entry {i} must be one of "
                         f"{', '.join(EMITTED_KINDS)}, got {_show(k)}")
    n_acc = sum(accepted)
    if len(emitted_ids) > n_acc + 1:
        raise c.fail("emitted_ids", f"has {len(emitted_ids)} tokens, but only {n_acc} drafts "
                     "were accepted (at most accepted + 1 may be emitted)")
    kept = [drafted_ids[i] for i in path]
    if emitted_ids[:n_acc] != kept[:len(emitted_ids[:n_acc])]:
        raise c.fail("emitted_ids", "must begin with the accepted drafted tokens")
    topn = c.nested
    q = c.list_("q", "num", length=g, nullable=True, lo=0.0, hi=1.0)
    return StepRecord(
        step=c.int_("step", lo=0),
        gamma=g,
        drafted_ids=drafted_ids,
        drafted_text=c.list_("drafted_text", "str", length=g),
        q=q,
        p=c.list_("p", "num", length=g, lo=0.0, hi=1.0),
        accept_prob=c.list_("accept_prob", "num", length=g, lo=0.0, hi=1.0,
                            items_nullable=parent is not None),
        u=c.list_("u", "num", length=g, nullable=True, lo=0.0, hi=1.0, items_nullable=True),
        accepted=accepted,
        emitted_ids=emitted_ids,
        emitted_text=c.list_("emitted_text", "str", length=len(emitted_ids)),
        emitted_kinds=kinds,
        p_top_ids=topn("p_top_ids", "int", length=g),
        p_top_texts=topn("p_top_texts", "str", length=g),
        p_top_probs=topn("p_top_probs", "num", length=g, lo=0.0, hi=1.0),
        q_top_ids=topn("q_top_ids", "int", length=g, nullable=True),
        q_top_texts=topn("q_top_texts", "str", length=g, nullable=True),
        q_top_probs=topn("q_top_probs", "num", length=g, nullable=True, lo=0.0, hi=1.0),
        beta=c.list_("beta", "num", length=g, nullable=True, optional=True, lo=0.0, hi=1.0),
        draft_ms=c.num("draft_ms", optional=True, lo=0.0),
        verify_ms=c.num("verify_ms", optional=True, lo=0.0),
        accept_ms=c.num("accept_ms", optional=True, lo=0.0),
        total_ms=c.num("total_ms", optional=True, lo=0.0),
        t_end_s=c.num("t_end_s", optional=True, lo=0.0),
        tree_parent=parent,
    )


def _check_prefix(c: _Checker, accepted: list[bool]) -> None:
    """A chain's accepted drafts form a prefix: True... then False..."""
    seen_false = False
    for i, a in enumerate(accepted):
        if a and seen_false:
            raise c.fail("accepted", f"entry {i} is true after a rejection "
                         "(accepted tokens must form a prefix)")
        seen_false = seen_false or not a


def _check_tree(c: _Checker, parent: list[int], accepted: list[bool]) -> list[int]:
    """Parents come before their children; the accepted nodes form one path down from the
    root. Returns that path (node indices, root's child first)."""
    for i, par in enumerate(parent):
        if not -1 <= par < i:
            raise c.fail("tree_parent", f"entry {i} is {par}: a node's parent is -1 (the "
                         "root) or an earlier node")
    path = [i for i, a in enumerate(accepted) if a]
    for k, i in enumerate(path):
        if parent[i] != (path[k - 1] if k else -1):
            raise c.fail("accepted", f"node {i} is accepted but its parent is not the "
                         "accepted node above it (the accepted nodes must form one path)")
    return path


def _parse_summary(c: _Checker) -> SummaryRecord:
    return SummaryRecord(
        output_token_ids=c.list_("output_token_ids", "int", lo=0,
                                 max_len=MAX_STEPS_PER_RUN * (GAMMA_MAX + 1)),
        output_text=c.str_("output_text"),
        n_steps=c.int_("n_steps", lo=0, hi=MAX_STEPS_PER_RUN),
        n_drafted=c.int_("n_drafted", lo=0),
        n_accepted=c.int_("n_accepted", lo=0),
        n_emitted=c.int_("n_emitted", lo=0),
        target_forward_passes=c.int_("target_forward_passes", lo=0),
        alpha_hat=c.num("alpha_hat", nullable=True, lo=0.0, hi=1.0),
        mean_accepted_length=c.num("mean_accepted_length", nullable=True, lo=0.0),
        wall_s=c.num("wall_s", lo=0.0),
        tokens_per_s=c.num("tokens_per_s", lo=0.0),
        stop_reason=_stop_reason(c),
        draft_forward_passes=c.int_("draft_forward_passes", optional=True, lo=0),
        mean_beta=c.num("mean_beta", optional=True, nullable=True, default=None,
                        lo=0.0, hi=1.0),
    )


def _stop_reason(c: _Checker) -> str:
    v = c.str_("stop_reason", optional=True, default="max_new_tokens")
    if v not in STOP_REASONS:
        raise c.fail("stop_reason", f"must be one of {', '.join(STOP_REASONS)}, got {_show(v)}")
    return v


def _check_known(c: _Checker, cls: type) -> None:
    known = {f.name for f in fields(cls)} | {"record"}
    extra = sorted(set(c.obj) - known)
    if extra:
        raise c.fail(extra[0], "is not a known field of this record")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_PARTIAL_TOKEN = re.compile(r"[-+0-9.eE]*|t(r(ue?)?)?|f(a(l(se?)?)?)?|n(u(ll?)?)?")


def _cut_short(raw: str, e: Exception) -> bool:
    """Whether a line without its newline is a record cut off mid-write: valid JSON that
    stops early (inside a string, a number, a literal, or between tokens)."""
    if raw.endswith("\n") or not isinstance(e, json.JSONDecodeError):
        return False
    rest = raw[e.pos:]
    return (e.msg.startswith("Unterminated string")
            or (e.msg.startswith("Invalid \\uXXXX") and len(rest) < 12)
            or _PARTIAL_TOKEN.fullmatch(rest) is not None)


def _encodable(obj: Any) -> bool:
    """Whether every string of a parsed record can be written back as UTF-8 (JSON escapes
    can encode lone surrogates, which UTF-8 cannot). Iterative: records may nest deeply."""
    todo = [obj]
    while todo:
        v = todo.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(v, dict):
            todo += [*v.keys(), *v.values()]
        elif isinstance(v, list):
            todo += v
    return True


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object as a dict, refusing a key given twice (json.loads would keep the last)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return obj


def loads_strict(text: str) -> Any:
    """json.loads that refuses NaN, Infinity and a key given twice in one object (raising
    ValueError), as the trace format and the prompts files require."""
    return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)


def parse_lines(lines: Iterable[str], source: str = "<trace>", *,
                max_mb: float | None = MAX_TRACE_MB,
                budget: MemoryBudget | None = None) -> list[Trace]:
    """Parse JSON Lines into traces; raise TraceError naming line and field on bad input.

    Lines are split on \\n only (each may keep its newline). A file is held to the decoder's
    limits (gamma, steps per run, top-k, text lengths; see specviz.limits), and its values to
    ``max_mb`` of memory, estimated (None: no such limit), or to ``budget``, which several
    files may share.
    """
    return parse_records(_json_objects(lines, source), source,
                         budget or MemoryBudget(max_mb))


def _json_objects(lines: Iterable[str], source: str) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each non-blank line; a last line cut mid-write is dropped."""
    it = iter(lines)
    for n, raw in enumerate(it, start=1):
        if not raw.strip():
            continue
        try:
            yield n, _record(raw, source, n)
        except _CutShort as cut:
            if _cut_short(raw, cut.error) and next(it, None) is None:
                return  # the writer stopped mid-line: keep the complete records before it
            raise cut.trace_error from None


class _CutShort(Exception):
    """Invalid JSON that may be a last line cut mid-write (parse_lines decides)."""

    def __init__(self, error: Exception, trace_error: TraceError):
        self.error, self.trace_error = error, trace_error


def record_from_json(raw: str, source: str = "<trace>", line: int | None = None) -> dict:
    """One JSON Lines record as a dict; TraceError naming the line if it is not valid JSON,
    too long, not an object, repeats a key or holds a lone surrogate escape."""
    try:
        return _record(raw, source, line)
    except _CutShort as cut:
        raise cut.trace_error from None


def _record(raw: str, source: str, line: int | None) -> dict:
    if len(raw) > MAX_LINE_CHARS:
        raise TraceError(f"is longer than {MAX_LINE_CHARS:,} characters, the most one "
                         "record may have", source=source, line=line)
    try:
        obj = loads_strict(raw)
    except _DuplicateKey as e:
        raise TraceError("is given twice in one object (which value holds?)",
                         source=source, line=line, field_name=e.key) from None
    except (ValueError, RecursionError) as e:  # ValueError: JSONDecodeError, huge ints
        msg = getattr(e, "msg", None) or ("nesting too deep"
                                          if isinstance(e, RecursionError) else str(e))
        raise _CutShort(e, TraceError(f"is not valid JSON ({msg[:80]})", source=source,
                                      line=line)) from None
    if not isinstance(obj, dict):
        raise TraceError("must be a JSON object", source=source, line=line)
    if "\\u" in raw and not _encodable(obj):
        raise TraceError("holds a lone surrogate escape (\\ud800-\\udfff), which is not "
                         "text", source=source, line=line)
    return obj


def parse_records(records: Iterable[tuple[int, dict]], source: str = "<trace>",
                  budget: MemoryBudget | None = None) -> list[Trace]:
    """Records (line number, the record as a dict, as JSON would give it) -> traces, with
    every check of parse_lines; ``budget`` may be shared by several calls."""
    traces: list[Trace] = []
    run: RunRecord | None = None
    steps: list[StepRecord] = []
    summary: SummaryRecord | None = None
    budget = budget or MemoryBudget(MAX_TRACE_MB)

    def close() -> None:
        if run is not None:
            traces.append(Trace(run, tuple(steps), summary))

    for n, obj in records:
        c = _Checker(source, n, obj, budget)
        kind = obj.get("record")
        if kind == "run":
            _check_known(c, RunRecord)
            if len(traces) + (run is not None) >= MAX_RUNS_PER_FILE:
                raise c.fail("record", f"starts run {MAX_RUNS_PER_FILE + 1:,}; one file may "
                             f"hold at most {MAX_RUNS_PER_FILE:,} runs")
            close()
            run, steps, summary = _parse_run(c), [], None
        elif kind == "step":
            if run is None:
                raise c.fail("record", "a step record must follow a run record")
            if summary is not None:
                raise c.fail("record", "a step record follows this run's summary")
            if len(steps) >= MAX_STEPS_PER_RUN:
                raise c.fail("record", f"is step {len(steps):,} of its run; a run has at "
                             f"most {MAX_STEPS_PER_RUN:,} steps")
            _check_known(c, StepRecord)
            st = _parse_step(c)
            if st.step != len(steps):
                raise c.fail("step", f"must be {len(steps)} (steps count up from 0), "
                             f"got {st.step}")
            steps.append(st)
        elif kind == "summary":
            if run is None:
                raise c.fail("record", "a summary record must follow a run record")
            if summary is not None:
                raise c.fail("record", "this run already has a summary")
            _check_known(c, SummaryRecord)
            summary = _parse_summary(c)
            if summary.n_steps != len(steps):
                raise c.fail("n_steps", f"says {summary.n_steps} but the run has "
                             f"{len(steps)} step records")
        else:
            raise c.fail("record", f"must be 'run', 'step' or 'summary', got {_show(kind)}")
    close()
    if not traces:
        raise TraceError("holds no run record (is it a specviz trace?)", source=source,
                         line=None)
    return traces


def read_traces(path_or_file: str | os.PathLike | IO[str] | IO[bytes] | bytes,
                source: str | None = None, *,
                max_mb: float | None = MAX_TRACE_MB,
                budget: MemoryBudget | None = None) -> list[Trace]:
    """Load every run of a JSON Lines trace; a run without summary loads as incomplete.

    The content is read line by line (never copied whole); see parse_lines for the limits
    (``max_mb``, or a ``budget`` shared with other files).
    """
    if isinstance(path_or_file, (bytes, bytearray)):
        src = source or "<upload>"
        return parse_lines(_lines_of(bytes(path_or_file), src), src, max_mb=max_mb,
                           budget=budget)
    if isinstance(path_or_file, (str, os.PathLike)):
        src = source or str(path_or_file)
        try:
            data = Path(path_or_file).read_bytes()
        except OSError as e:
            raise TraceError(f"cannot be read ({e.strerror or e})", source=src) from None
        return parse_lines(_lines_of(data, src), src, max_mb=max_mb, budget=budget)
    src = source or str(getattr(path_or_file, "name", "<trace>"))
    try:
        data = path_or_file.read()
    except UnicodeDecodeError:  # a text-mode file of something else
        raise TraceError("is not UTF-8 text", source=src) from None
    return parse_lines(_lines_of(data, src), src, max_mb=max_mb, budget=budget)


def _lines_of(data: bytes | str, source: str) -> Iterator[str]:
    """The lines of a file, each with its newline, split on \\n only. Bytes are decoded
    (UTF-8) one line at a time; a last line cut inside a character loses that character."""
    nl = b"\n" if isinstance(data, bytes) else "\n"
    start, n, size = 0, 0, len(data)
    while start < size:
        end = data.find(nl, start)  # type: ignore[arg-type]
        end = size if end < 0 else end + 1
        n += 1
        chunk = data[start:end]
        if isinstance(chunk, bytes):
            if len(chunk) > 4 * MAX_LINE_CHARS:  # more characters than allowed, surely
                raise TraceError(f"is longer than {MAX_LINE_CHARS:,} characters, the most "
                                 "one record may have", source=source, line=n)
            chunk = _decode_line(chunk, source, n, last=end == size)
        yield chunk
        start = end


def _decode_line(data: bytes, source: str, line: int, last: bool) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        if last and e.reason == "unexpected end of data":  # cut inside the last character
            return data[: e.start].decode("utf-8")
        raise TraceError("is not UTF-8 text", source=source, line=line) from None


def read_trace(path: str | os.PathLike) -> Trace:
    """The first run of a trace file."""
    return read_traces(path)[0]
