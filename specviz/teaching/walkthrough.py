"""One speculative step replayed as micro-steps, with narration from its own numbers.

A step of a trace becomes a list of ``MicroStep`` records, in the decoder's phase order:
draft (one per drafted token) -> verify (one target pass) -> accept (one per judged position)
-> add (the correction from norm(max(0, p - q)) or the bonus token) -> commit (the caches are
cut back). Each record carries a title and a narration written from the step's numbers, and
``strip_tokens`` / ``positions_frame`` / ``topk_view`` say what is visible at that micro-step.

Cache bookkeeping follows the decoder's invariant: a cache holds every committed token but
the last, which the next forward pass feeds; rejected positions are dropped.

Notation: p = target distribution, q = draft distribution. No streamlit here.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from ..traces import frames as F
from ..traces.records import StepRecord, Trace
from .walk_chain import _micro_steps
from .walk_records import (
    ACCEPTED,
    BONUS,
    CURRENT,
    DRAFT_CACHE_DRAFTERS,
    HELD_COMMITTED,
    HELD_DRAFTS,
    MARK,
    MOMENT,
    PENDING,
    PHASE_LABELS,
    PHASES,
    PREFIX,
    PREFIX_TOKENS,
    PROMPT,
    PROMPT_CHARS,
    REJECTED,
    RESAMPLED,
    RESIDUAL,
    STATE,
    UNJUDGED,
    Added,
    CacheCounts,
    MicroStep,
    Position,
    StepWalk,
    StripToken,
    WalkError,
    _top,
    num,
    quote,
)
from .walk_tree import DRAFTED, _drawn, _parent, _tree_micro_steps, judged_as, tree_view

__all__ = ["ACCEPTED", "BONUS", "CURRENT", "DRAFTED", "HELD_COMMITTED", "HELD_DRAFTS", "MARK",
           "MOMENT", "PENDING", "PHASE_LABELS", "PHASES", "PREFIX", "PROMPT", "REJECTED",
           "RESAMPLED", "RESIDUAL", "STATE", "UNJUDGED", "Added", "CacheCounts", "MicroStep",
           "Position", "StepWalk", "StripToken", "WalkError", "cache_counts", "cache_frame",
           "is_last", "is_walkable", "judged_as", "neighbour", "num", "positions_frame", "quote",
           "strip_tokens", "topk_view", "tree_view", "verify_table", "walk_step"]


# ---------------------------------------------------------------- building a walk

def is_walkable(trace: Trace) -> bool:
    """Whether a run has speculative steps to walk through (not target-only, has steps)."""
    return not F.is_target_only(trace) and len(trace.steps) > 0


def cache_counts(trace: Trace, step: int) -> CacheCounts:
    """Sequence and cache lengths around ``step``, from the decoder's invariants: before a
    step the target's cache holds every committed token but the last (the prompt's are
    written by a prefill pass), the draft model's every committed token but the last two
    (each step re-reads those two); drafting γ tokens feeds those two and the first γ - 1
    drafts. A step that drafts nothing (γ = 0: the run's last token) does not run the draft
    model, whose cache stays as it was."""
    n = len(trace.run.prompt_token_ids) + sum(len(s.emitted_ids)
                                              for s in trace.steps[:step])
    has_draft = trace.run.drafter in DRAFT_CACHE_DRAFTERS
    s = trace.steps[step]
    after = n + len(s.emitted_ids)
    before = max(n - 2, 0)
    drafted = (n + s.gamma - 1) if s.gamma else before
    return CacheCounts(
        prompt=len(trace.run.prompt_token_ids), committed_before=n, committed_after=after,
        target_before=n - 1, target_fed=1 + s.gamma,
        target_after_verify=n + s.gamma, target_kept=after - 1,
        draft_before=before if has_draft else None,
        draft_after_drafting=drafted if has_draft else None,
        draft_kept=(max(after - 2, 0) if s.gamma else before) if has_draft else None)


def _positions(s: StepRecord) -> tuple[Position, ...]:
    out = []
    for i in range(s.gamma):
        if s.tree_parent is not None:  # a tree: judged nodes carry an acceptance probability
            judged = s.accept_prob[i] is not None
            status = ACCEPTED if s.accepted[i] else (REJECTED if judged else UNJUDGED)
        else:
            status = ACCEPTED if s.accepted[i] else (REJECTED if i == s.n_accepted
                                                     else UNJUDGED)
        u = s.u[i] if s.u is not None and i < len(s.u) else None
        a = s.accept_prob[i]
        out.append(Position(i, s.drafted_ids[i], s.drafted_text[i],
                            None if s.q is None else float(s.q[i]), float(s.p[i]),
                            math.nan if a is None else float(a), None if u is None else float(u),
                            status))
    return tuple(out)


def _added(s: StepRecord) -> Added | None:
    n_acc = s.n_accepted
    if len(s.emitted_ids) <= n_acc:
        return None  # the run ended inside the step (end of sequence among the accepted)
    return Added(s.emitted_ids[n_acc], s.emitted_text[n_acc], s.emitted_kinds[n_acc])


def _prefix(trace: Trace, step: int) -> tuple[tuple[str, ...], str | None]:
    before = [t for s in trace.steps[:step] for t in s.emitted_text]
    tail = tuple(before[-PREFIX_TOKENS:])
    if len(before) >= PREFIX_TOKENS:
        return tail, None
    prompt = trace.run.prompt_text
    return tail, ("…" + prompt[-PROMPT_CHARS:]) if len(prompt) > PROMPT_CHARS else prompt


def walk_step(trace: Trace, step: int) -> StepWalk:
    """The micro-steps of one step of a speculative run, with their narration."""
    if F.is_target_only(trace):
        raise WalkError("a target-only run drafts nothing: there is no speculative step to "
                        "walk through (choose a speculative run)")
    if not 0 <= step < len(trace.steps):
        raise WalkError(f"step {step} is out of range: the run has {len(trace.steps)} steps")
    s = trace.steps[step]
    drafter = trace.run.drafter or "model"
    prefix, prompt_tail = _prefix(trace, step)
    walk = StepWalk(step=step, n_steps=len(trace.steps), greedy=s.u is None, drafter=drafter,
                    has_q=s.q is not None and drafter != "prompt-lookup",
                    positions=_positions(s), added=_added(s), prefix=prefix,
                    prompt_tail=prompt_tail, cache=cache_counts(trace, step), micro=(),
                    parents=None if s.tree_parent is None else tuple(s.tree_parent),
                    drawn=_drawn(trace, s))
    steps = _tree_micro_steps(s, walk) if walk.parents is not None else \
        _micro_steps(trace, s, walk)
    return replace(walk, micro=tuple(steps))


# ---------------------------------------------------------------- what a micro-step shows

def _visible(m: MicroStep, x: Position) -> bool:
    """Whether a drafted position has been proposed by micro-step ``m``."""
    return m.phase != "draft" or (m.position is not None and x.pos <= m.position)


def _state(w: StepWalk, m: MicroStep, x: Position) -> str:
    """A drafted position's state at micro-step ``m``: pending until judged; the drafts after
    a rejection show as unjudged from the rejection on."""
    order = PHASES.index(m.phase)
    if order > PHASES.index("accept"):
        return x.status
    if m.phase == "accept" and m.position is not None and (
            x.pos <= m.position or (x.status == UNJUDGED and m.position == w.n_accepted)):
        return x.status
    return PENDING


def strip_tokens(w: StepWalk, index: int) -> list[StripToken]:
    """The token strip at micro-step ``index``: the committed prefix, the drafts seen so far
    (pending, then accepted / rejected / unjudged), then the added token."""
    m = w.micro[index]
    out = [StripToken(w.prompt_tail, PROMPT, "prefix")] if w.prompt_tail else []
    out += [StripToken(t, PREFIX, "prefix") for t in w.prefix]
    if w.parents is not None:  # a tree: its nodes are alternatives; the text gets the path
        out += [StripToken(x.text, ACCEPTED, "drafts") for x in w.positions
                if x.status == ACCEPTED and _state(w, m, x) == ACCEPTED]
    else:
        out += [StripToken(x.text, _state(w, m, x), "drafts") for x in w.positions
                if _visible(m, x)]
    if PHASES.index(m.phase) >= PHASES.index("add") and w.added is not None:
        out.append(StripToken(w.added.text, w.added.kind, "added"))
    return out


def positions_frame(w: StepWalk, index: int) -> pd.DataFrame:
    """One row per drafted position, with only what is known at micro-step ``index``:
    p is NaN before the verify pass, u and the status are hidden until judged.
    Prompt lookup's q is 1 (one-hot)."""
    m = w.micro[index]
    seen_p = PHASES.index(m.phase) >= PHASES.index("verify")
    rows = []
    for x in w.positions:
        if not _visible(m, x):
            continue
        state = _state(w, m, x)
        q = x.q if w.has_q else 1.0
        judged = state in (ACCEPTED, REJECTED)
        rows.append((x.pos, x.text, q if q is not None else np.nan,
                     x.p if seen_p else np.nan, x.accept_prob if seen_p else np.nan,
                     x.u if judged and x.u is not None else np.nan, state,
                     m.position == x.pos))
    return pd.DataFrame(rows, columns=[F.POS, F.TEXT, F.Q, F.P, F.ACCEPT_PROB, F.U, STATE,
                                       CURRENT])


def verify_table(trace: Trace, w: StepWalk) -> pd.DataFrame:
    """What the one verify pass computed, as text for a table: one row per drafted
    position with the draft, its p, and p's recorded top-k."""
    s = trace.steps[w.step]
    rows = []
    for x in w.positions:
        texts = s.p_top_texts[x.pos] if s.p_top_texts else None
        probs = s.p_top_probs[x.pos] if s.p_top_probs else None
        top = _top(texts, probs, k=len(texts or ())) or "not recorded"
        if w.parents is None:
            rows.append((x.pos + 1, quote(x.text), num(x.p), top))
        else:  # a tree: which node, after which token (p and its top-k are at the parent)
            rows.append((x.pos + 1, s.tree_depth[x.pos], _parent(w, x.pos),
                         quote(x.text), num(x.p), top))
    if w.parents is not None:
        return pd.DataFrame(rows, columns=["node", "depth", "after", "draft", "p(draft)",
                                           "p's top-k there"])
    return pd.DataFrame(rows, columns=["position", "draft", "p(draft)", "p's top-k"])


def topk_view(trace: Trace, w: StepWalk, index: int) -> pd.DataFrame | None:
    """The recorded top-k of q (and of p once verified, and the residual at the correction)
    at the micro-step's drafted position; None when it is about no position.

    Columns: text, q, p, residual, mark ("drafted", "added" or "").
    """
    m = w.micro[index]
    if m.position is None or m.position >= w.gamma:
        return None
    topk = F.topk_frame(trace, w.step, m.position).copy()
    order = PHASES.index(m.phase)
    if order < PHASES.index("verify"):  # only q is known yet: its bars in q's order
        topk[F.P] = np.nan
        topk = topk[topk[F.Q].notna()].sort_values(F.Q, ascending=False, kind="stable")
    show_residual = (m.phase == "add" and not w.greedy and w.added is not None
                     and w.added.kind == RESAMPLED)
    if not show_residual:
        topk[RESIDUAL] = np.nan
    added = w.added.token_id if (w.added is not None and m.phase == "add") else None
    marks = np.where(topk[F.IS_DRAFTED], "drafted",
                     np.where(topk[F.TOKEN_ID] == added, "added", ""))
    out = topk.assign(**{MARK: marks})[[F.TEXT, F.Q, F.P, RESIDUAL, MARK]]
    return out.reset_index(drop=True)


def cache_frame(c: CacheCounts) -> pd.DataFrame:
    """One row per cache at one moment of the step: the committed positions it holds and
    the draft positions it holds beyond them (the draft's rows only for drafters with a
    cache)."""
    n = c.committed_before
    rows = [("target before the step", c.target_before),
            ("target after verify", c.target_after_verify),
            ("target after commit", c.target_kept)]
    if c.draft_kept is not None:
        rows += [("draft before drafting", c.draft_before),
                 ("draft after drafting", c.draft_after_drafting),
                 ("draft after commit", c.draft_kept)]
    out = []
    for moment, held in rows:
        committed = held if "commit" in moment else min(held, n)
        out.append((moment, committed, held - committed))
    return pd.DataFrame(out, columns=[MOMENT, HELD_COMMITTED, HELD_DRAFTS])


def neighbour(trace: Trace, step: int, index: int, delta: int) -> tuple[int, int]:
    """(step, micro-step index) one micro-step forward (delta = 1) or back (delta = -1),
    crossing into the next or previous step; it stays put at either end of the run."""
    n_micro = len(walk_step(trace, step).micro)
    index += delta
    if index >= n_micro:
        return (step + 1, 0) if step + 1 < len(trace.steps) else (step, n_micro - 1)
    if index < 0:
        if step == 0:
            return 0, 0
        return step - 1, len(walk_step(trace, step - 1).micro) - 1
    return step, index


def is_last(trace: Trace, step: int, index: int) -> bool:
    """Whether (step, index) is the run's very last micro-step."""
    return step == len(trace.steps) - 1 and index == len(walk_step(trace, step).micro) - 1
