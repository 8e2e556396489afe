"""Records (dicts, as JSON gives them) -> traces: each field checked, and each record
against the others of its run."""

from __future__ import annotations

from dataclasses import fields
from typing import Iterable

from ...limits import (
    GAMMA_MAX,
    MAX_CONTEXT_TOKENS,
    MAX_PROMPT_CHARS,
    MAX_RUNS_PER_FILE,
    MAX_STEPS_PER_RUN,
    MAX_TRACE_MB,
    TEMPERATURE_MAX,
    TREE_NODES_MAX,
)
from .checker import MemoryBudget, _Checker, _is_int, _is_num, _show
from .model import (
    DRAFTER_KINDS,
    EMITTED_KINDS,
    MODES,
    SCHEMA_VERSION,
    STOP_REASONS,
    RunRecord,
    StepRecord,
    SummaryRecord,
    Trace,
    TraceError,
)
from .relations import (
    CONFIG_KEYS,
    HARDWARE_KEYS,
    MAX_TOKEN_ID,
    MODEL_KEYS,
    check_config,
    check_kinds,
    check_summary,
    check_timings,
    check_topk,
    free_object,
)

_MODEL_KEYS = ("source",)


def _parse_run(c: _Checker) -> RunRecord:
    version = c.int_("schema_version", lo=1)
    if version > SCHEMA_VERSION:
        raise c.fail("schema_version", f"is {version}; this specviz reads up to "
                     f"{SCHEMA_VERSION} (upgrade specviz)")
    mode = c.str_("mode", optional=True, default="speculative")
    if mode not in MODES:
        raise c.fail("mode", f"must be one of {', '.join(MODES)}, got {_show(mode)}")
    target = free_object(c, "target", MODEL_KEYS)
    draft = free_object(c, "draft", MODEL_KEYS, nullable=True, optional=True)
    for name, m in (("target", target), ("draft", draft)):
        if m is not None and not isinstance(m.get("source"), str):
            raise c.fail(name, "must name its 'source' as a string")
    drafter = c.get("drafter", optional=True)
    if drafter is not None and drafter not in DRAFTER_KINDS:
        raise c.fail("drafter", f"must be one of {', '.join(DRAFTER_KINDS)} or null, got "
                     f"{_show(drafter)}")
    config = free_object(c, "config", CONFIG_KEYS)
    gamma = config.get("gamma")
    if gamma is not None and not (_is_int(gamma) and 0 <= gamma <= GAMMA_MAX):
        raise c.fail("config", f"'gamma' must be an integer from 0 to {GAMMA_MAX}, got "
                     f"{_show(gamma)}")
    temp = config.get("temperature")
    if temp is not None and not (_is_num(temp) and temp >= 0):
        raise c.fail("config", f"'temperature' must be >= 0, got {_show(temp)}")
    check_config(c, config, GAMMA_MAX, TEMPERATURE_MAX)
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
        prompt_token_ids=c.list_("prompt_token_ids", "int", lo=0, hi=MAX_TOKEN_ID,
                                 max_len=MAX_CONTEXT_TOKENS),
        hardware=free_object(c, "hardware", HARDWARE_KEYS, optional=True),
        schema_version=version,
        label=c.str_("label", optional=True),
        command=c.str_("command", optional=True),
        prompt_last_text=c.str_("prompt_last_text", optional=True, max_chars=1000),
        baseline_of=c.str_("baseline_of", optional=True, max_chars=200),
    )


def _parse_step(c: _Checker) -> StepRecord:
    tree = c.obj.get("tree_parent") is not None
    g = c.int_("gamma", lo=0, hi=TREE_NODES_MAX if tree else GAMMA_MAX)  # nodes, or drafts
    drafted_ids = c.list_("drafted_ids", "int", length=g, lo=0, hi=MAX_TOKEN_ID)
    accepted = c.list_("accepted", "bool", length=g)
    parent = c.list_("tree_parent", "int", length=g, nullable=True, optional=True)
    if parent is None:
        _check_prefix(c, accepted)
        path = [i for i, a in enumerate(accepted) if a]
    else:
        path = _check_tree(c, parent, accepted)
    emitted_ids = c.list_("emitted_ids", "int", lo=0, hi=MAX_TOKEN_ID, max_len=g + 1)
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
    step = StepRecord(
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
        p_top_ids=topn("p_top_ids", "int", length=g, hi=MAX_TOKEN_ID),
        p_top_texts=topn("p_top_texts", "str", length=g),
        p_top_probs=topn("p_top_probs", "num", length=g, lo=0.0, hi=1.0),
        q_top_ids=topn("q_top_ids", "int", length=g, nullable=True, hi=MAX_TOKEN_ID),
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
    check_topk(c, step)
    check_kinds(c, step)
    return step


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


MAX_ROUNDS = 100  # measured rounds a summary may list


def _parse_summary(c: _Checker) -> SummaryRecord:
    return SummaryRecord(
        output_token_ids=c.list_("output_token_ids", "int", lo=0, hi=MAX_TOKEN_ID,
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
        round_tokens_per_s=c.list_("round_tokens_per_s", "num", optional=True,
                                   nullable=True, lo=0.0, max_len=MAX_ROUNDS),
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
            check_timings(c, st, steps[-1] if steps else None)
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
            check_summary(c, run, steps, summary)
        else:
            raise c.fail("record", f"must be 'run', 'step' or 'summary', got {_show(kind)}")
    close()
    if not traces:
        raise TraceError("holds no run record (is it a specviz trace?)", source=source,
                         line=None)
    return traces
