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
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..traces import frames as F
from ..traces.records import StepRecord, Trace

PHASES = ("draft", "verify", "accept", "add", "commit")
PHASE_LABELS = {"draft": "1 · draft", "verify": "2 · verify", "accept": "3 · accept",
                "add": "4 · correction or bonus", "commit": "5 · commit: cut the caches"}
PREFIX_TOKENS = 12  # committed tokens shown before the step in the token strip
PROMPT_CHARS = 48  # prompt tail shown when fewer tokens were generated
DRAFT_CACHE_DRAFTERS = ("model", "early-exit")  # drafters with a KV cache of their own

# strip token states
PREFIX = "prefix"
PROMPT = "prompt"
PENDING = "pending"  # drafted, not judged yet
ACCEPTED, REJECTED, UNJUDGED = "accepted", "rejected", "unjudged"
RESAMPLED, BONUS = "resampled", "bonus"

# positions_frame / topk_view columns (besides frames' P, Q, ACCEPT_PROB, U, TEXT, POS)
STATE = "state"
CURRENT = "current"
MARK = "mark"
RESIDUAL = F.RESIDUAL
MOMENT = "moment"  # cache_frame: which cache, when
HELD_COMMITTED = "held_committed"  # positions of committed tokens in the cache
HELD_DRAFTS = "held_drafts"  # positions of this step's drafts in the cache


class WalkError(ValueError):
    """A step that cannot be walked through (a target-only run, a step out of range)."""


@dataclass(frozen=True)
class Position:
    """One drafted position: the token, q (None without a draft distribution), p,
    min(1, p/q), the uniform draw u (None under greedy or when never judged), its fate."""

    pos: int
    token_id: int
    text: str
    q: float | None
    p: float
    accept_prob: float
    u: float | None
    status: str  # accepted | rejected | unjudged


@dataclass(frozen=True)
class Added:
    """The token the target added after the accepted drafts."""

    token_id: int
    text: str
    kind: str  # resampled | bonus


@dataclass(frozen=True)
class CacheCounts:
    """Sequence and KV-cache lengths around one step (positions, prompt included).

    The target feeds ``target_fed`` tokens (the uncached tail plus every draft) in its one
    verify pass; afterwards its cache holds ``target_after_verify`` and keeps ``target_kept``
    (every committed token but the last). The draft model's cache (None for prompt lookup)
    holds every committed token but the last two before drafting, and the committed tokens
    and every draft but the last after it.
    """

    prompt: int
    committed_before: int
    committed_after: int
    target_before: int
    target_fed: int
    target_after_verify: int
    target_kept: int
    draft_before: int | None = None
    draft_after_drafting: int | None = None
    draft_kept: int | None = None

    @property
    def target_dropped(self) -> int:
        return self.target_after_verify - self.target_kept

    @property
    def draft_dropped(self) -> int | None:
        if self.draft_kept is None or self.draft_after_drafting is None:
            return None
        return self.draft_after_drafting - self.draft_kept


@dataclass(frozen=True)
class MicroStep:
    """One thing to show: its phase, the drafted position it is about, title, narration."""

    index: int
    phase: str
    title: str
    narration: str
    position: int | None = None


@dataclass(frozen=True)
class StripToken:
    """One piece of the token strip: text, state (prefix, pending, accepted, ...) and the
    segment it belongs to (prefix | drafts | added)."""

    text: str
    state: str
    segment: str


@dataclass(frozen=True)
class StepWalk:
    """A step of a run, ready to replay: its positions, the added token, the caches and the
    micro-steps with their narration."""

    step: int
    n_steps: int
    greedy: bool
    drafter: str
    has_q: bool
    positions: tuple[Position, ...]
    added: Added | None
    prefix: tuple[str, ...]
    prompt_tail: str | None
    cache: CacheCounts
    micro: tuple[MicroStep, ...]
    parents: tuple[int, ...] | None = None  # a tree step: each node's parent (-1: x_0)
    # how a tree's children were chosen: "top-k" (greedy runs, dynamic trees: picked, not
    # drawn) or "sampled" (a static tree under sampling: drawn from q without replacement)
    drawn: str = "top-k"

    @property
    def gamma(self) -> int:
        return len(self.positions)

    @property
    def n_accepted(self) -> int:
        return sum(x.status == ACCEPTED for x in self.positions)

    def phase_start(self, phase: str) -> int:
        """Index of the first micro-step of a phase (-1 when the step has none)."""
        return next((m.index for m in self.micro if m.phase == phase), -1)


# ---------------------------------------------------------------- wording helpers

def num(x: float | None) -> str:
    """A probability as the narration writes it: 3 decimals, or 2 significant digits
    below 0.001."""
    if x is None or not math.isfinite(x):
        return "–"
    if x == 0 or x >= 0.001:
        return f"{x:.3f}"
    return f"{x:.1e}"


def quote(text: str) -> str:
    """A token quoted for the narration, with newlines and tabs made visible."""
    shown = text.replace("\n", "↵").replace("\t", "⇥")
    return f"'{shown}'" if shown else "∅ (empty)"


def _top(texts: list[str] | None, probs: list[float] | None, k: int = 3) -> str:
    if not texts or not probs:
        return ""
    return ", ".join(f"{quote(t)} {num(pr)}" for t, pr in zip(texts[:k], probs[:k]))


# ---------------------------------------------------------------- building a walk

def is_walkable(trace: Trace) -> bool:
    """Whether a run has speculative steps to walk through (not target-only, has steps)."""
    return not F.is_target_only(trace) and len(trace.steps) > 0


def cache_counts(trace: Trace, step: int) -> CacheCounts:
    """Sequence and cache lengths around ``step``, from the decoder's invariants: before a
    step the target's cache holds every committed token but the last (the prompt's are
    written by a prefill pass), the draft model's every committed token but the last two
    (each step re-reads those two); drafting γ tokens feeds those two and the first γ - 1
    drafts."""
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
        draft_kept=max(after - 2, 0) if has_draft else None)


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


_Item = tuple[str, str, str, int | None]  # phase, title, narration, drafted position


def _drawn(trace: Trace, s: StepRecord) -> str:
    """How a tree step's children were chosen (StepWalk.drawn)."""
    dynamic = str(trace.run.config.get("tree") or "").startswith("dynamic")
    return "sampled" if s.u is not None and not dynamic else "top-k"


def _names(w: StepWalk, nodes: list[int]) -> str:
    return ", ".join(quote(w.positions[i].text) for i in nodes)


def _parent(w: StepWalk, i: int) -> str:
    """Node i's parent, named: x₀ or its parent's token."""
    par = (w.parents or ())[i]
    return "x₀" if par < 0 else quote(w.positions[par].text)


def _after(w: StepWalk, i: int) -> str:
    """What node i follows, for the narration: x₀ said in full, or its parent's token."""
    name = _parent(w, i)
    return "x₀ (the last committed token)" if name == "x₀" else name


def _q_zero_note(w: StepWalk, nodes: list[int]) -> str:
    """For a sampled tree: which of these nodes have q = 0, and what the walk does with them."""
    cut = [i for i in nodes if w.positions[i].q == 0] if w.drawn == "sampled" else []
    if not cut:
        return ""
    one = len(cut) == 1
    return (f" {_names(w, cut)} {'has' if one else 'have'} q = 0: top-k / top-p left the draft "
            f"fewer tokens than the node has children, so {'it' if one else 'they'} could not "
            f"have been drawn, and the walk will skip {'it' if one else 'them'}.")


def _tree_drafting(s: StepRecord, w: StepWalk) -> list[_Item]:
    """The tree as the draft grows it, depth by depth."""
    depth = s.tree_depth
    reader, sees = (("The feature head", "each row reads its parent's guessed feature and "
                     "its own token, and sees the committed text and its own ancestors only")
                    if w.drafter == "feature-head" else
                    ("The draft model", "each sees the committed text and its own ancestors "
                     "only"))
    items: list[_Item] = []
    for d in sorted(set(depth)):
        nodes = [i for i in range(w.gamma) if depth[i] == d]
        by_parent: dict[int, list[int]] = {}
        for i in nodes:
            by_parent.setdefault((w.parents or ())[i], []).append(i)
        listed = "; ".join(f"after {_after(w, kids[0])}, " + ", ".join(
            quote(w.positions[i].text) + ("" if w.positions[i].q is None else
                                          f" (q {num(w.positions[i].q)})") for i in kids)
            for kids in by_parent.values())
        how = ("tokens drawn from q without replacement" if w.drawn == "sampled" else
               "its most probable tokens" if w.greedy else "the candidates most probable "
               "under q along their path (picked, not drawn)") if d == 1 or len(nodes) > 1 \
            else "its most probable token"
        items.append(("draft", f"Depth {d}: {len(nodes)} candidate{'s' * (len(nodes) > 1)}",
                      f"{reader} reads the newest nodes in one pass ({sees}) and proposes "
                      f"{how}: {listed}.{_q_zero_note(w, nodes)}", nodes[-1]))
    return items


def _tree_walk(s: StepRecord, w: StepWalk) -> list[_Item]:
    """The walk down the tree: greedy, one look per depth; sampled, node after node."""
    depth = s.tree_depth
    judged = [x for x in w.positions if x.status != UNJUDGED]
    items: list[_Item] = []
    if w.greedy:  # siblings are all compared with p's top token at their parent: one look
        for d in sorted({depth[x.pos] for x in judged}):
            kids = [x for x in judged if depth[x.pos] == d]
            won = [x for x in kids if x.status == ACCEPTED]
            names = ", ".join(f"{quote(x.text)} (p {num(x.p)})" for x in kids)
            one = len(kids) == 1
            verdict = (f"{quote(won[0].text)} is p's top token there: accepted, the walk goes "
                       "down into it" + ("" if one else " and the others are rejected")) \
                if won else ("it is not p's top token there: rejected" if one else
                             "none of them is p's top token there: all rejected")
            items.append(("accept", f"Depth {d}: compare with p's top token",
                          f"After {_after(w, kids[0].pos)} "
                          + (f"the candidate is {names}" if one else
                             f"the candidates are {names}") + f"; {verdict}.",
                          max(x.pos for x in kids)))
        return items
    tried_at: dict[int, int] = {}  # children already tried at each parent
    for x in judged:  # sampled: tried one after the other
        par = (w.parents or ())[x.pos]
        body = (f"{quote(x.text)} after {_after(w, x.pos)}: "
                + _tree_rule(w, x, tried_at.get(par, 0)))
        tried_at[par] = tried_at.get(par, 0) + 1
        items.append(("accept", f"Depth {depth[x.pos]}: try {quote(x.text)}", body, x.pos))
    return items


def _tree_rule(w: StepWalk, x: Position, earlier: int) -> str:
    """A sampled tree's judgement of node x, the ``earlier``-th child tried at its parent:
    its acceptance probability as the walk computes it, the draw, the verdict."""
    ok = x.status == ACCEPTED
    if w.drawn == "top-k":  # picked, not drawn: q is one-hot on it, so min(1, p/q) = p
        rule = ("a top-k pick, not a draw from q, so it is accepted with probability p(c) = "
                f"{num(x.accept_prob)}" if not earlier else
                f"a top-k pick, not a draw from q: after {earlier} rejected "
                f"sibling{'s' * (earlier > 1)}, what is left of p is p without their "
                f"tokens, so it is accepted with p(c) / (1 − their p) = {num(x.accept_prob)}"
                f" (its plain p is {num(x.p)})")
        after = "its token is taken out of p (renormalised) for its next sibling"
    else:
        rule = (f"min(1, p/q) = {num(x.accept_prob)}" if not earlier else
                f"after {earlier} rejected sibling{'s' * (earlier > 1)}, p is what is left "
                "(norm(max(0, p − q))) and q is q without their tokens (renormalised), so "
                f"min(1, p′/q′) = {num(x.accept_prob)} (plain p {num(x.p)}, q {num(x.q)})")
        after = "what is left of p for its next sibling is norm(max(0, p − q))"
    verdict = ("accepted, the walk goes down into it" if ok else f"rejected; {after}")
    return f"{rule}; u = {num(x.u)} {'<' if ok else '≥'} {num(x.accept_prob)}: {verdict}."



def _tree_ending(w: StepWalk) -> list[_Item]:
    """The token the target adds, and the commit of the accepted path."""
    a, n_acc, items = w.added, w.n_accepted, []
    if a is not None:
        last = [i for i in range(w.gamma) if w.positions[i].status == ACCEPTED]
        end = last[-1] if last else -1  # the node the walk ended on (-1: x₀)
        at = quote(w.positions[end].text) if last else "x₀"
        skipped = [i for i in range(w.gamma) if (w.parents or ())[i] == end
                   and w.drawn == "sampled" and w.positions[i].q == 0]
        why = ("The walk reached a leaf of the tree, so the target adds a bonus token from p "
               "there" if a.kind == "bonus" else
               f"Every child of {at} that was tried was rejected"
               + (f" ({_names(w, skipped)}, with q = 0, skipped)" if skipped else "")
               + ", so the target adds the token "
               + ("p ranks first there" if w.greedy else "drawn from what is left of p "
                  "there"))
        items.append(("add", "The target adds one token",
                      f"{why}: {quote(a.text)}. One verify pass gave {n_acc + 1} "
                      f"token{'s' * (n_acc > 0)}.", None))
    items.append(("commit", "Commit: keep the accepted path",
                  f"The accepted path ({n_acc} node{'s' * (n_acc != 1)}) and the added token "
                  "join the output. In the target's cache the path's keys and values move "
                  "right after the committed text; the slots of the other "
                  f"{w.gamma - n_acc} nodes are stale and get overwritten. The draft model "
                  "re-reads the new tokens at its next step.", None))
    return items


def _tree_micro_steps(s: StepRecord, w: StepWalk) -> list[MicroStep]:
    """A tree step: the draft grows the tree depth by depth; one target pass scores every
    node; the walk goes down from x_0, trying each node's children in order; the target adds
    one token; the accepted path is kept."""
    verify = ("verify", f"The target scores all {w.gamma} nodes in one pass",
              f"One target pass over x₀ and the {w.gamma} nodes gives p after every node. "
              "A tree mask lets each node attend to the committed text and its own "
              "ancestors only, and siblings share a position, so each node is scored as if "
              "its branch were the only continuation.", None)
    items = [*_tree_drafting(s, w), verify, *_tree_walk(s, w), *_tree_ending(w)]
    return [MicroStep(i, ph, title, text_, pos) for i, (ph, title, text_, pos)
            in enumerate(items)]


def _micro_steps(trace: Trace, s: StepRecord, w: StepWalk) -> list[MicroStep]:
    items: list[tuple[str, str, str, int | None]] = []
    lookup = w.drafter == "prompt-lookup"
    # 1. draft
    if not w.positions:
        why = ("prompt lookup found no earlier match of the last tokens" if lookup else
               "the draft length for this step is 0 (too few tokens left, or the policy "
               "asked for none)")
        items.append(("draft", "Nothing drafted",
                      f"The drafter proposes nothing in this step: {why}. The target will "
                      "add one token on its own, as in ordinary decoding.", None))
    for x in w.positions:
        items.append(("draft", f"Draft token {x.pos + 1} of {w.gamma}",
                      _draft_text(s, w, x), x.pos))
    # 2. verify
    title = "The target scores every draft in one pass" if w.positions else \
        "The target's one pass"
    items.append(("verify", title, _verify_text(s, w), None))
    # 3. accept
    for x in w.positions:
        if x.status == UNJUDGED:
            break
        items.append(("accept", f"Judge position {x.pos + 1}", _accept_text(s, w, x), x.pos))
    # 4. add
    items.append(("add", _add_title(w), _add_text(trace, s, w), w.n_accepted
                  if w.n_accepted < w.gamma else None))
    # 5. commit
    items.append(("commit", "Commit: cut the caches back", _commit_text(w), None))
    return [MicroStep(i, ph, title, text, pos) for i, (ph, title, text, pos)
            in enumerate(items)]


def _draft_text(s: StepRecord, w: StepWalk, x: Position) -> str:
    if w.drafter == "prompt-lookup":
        return (f"Prompt lookup copies {quote(x.text)}: it followed an earlier occurrence of "
                "the last few tokens. It has no distribution, so the verifier treats the "
                "proposal as certain: q is one-hot on it (q = 1).")
    if w.drafter == "feature-head":
        return _head_text(s, w, x)
    who = "The draft model" if w.drafter == "model" else "The early-exit draft (the " \
        "target's first layers)"
    how = "takes its most likely token" if w.greedy else "samples from q"
    top = _top(s.q_top_texts[x.pos] if s.q_top_texts else None,
               s.q_top_probs[x.pos] if s.q_top_probs else None)
    text = f"{who} {how}: {quote(x.text)} with q = {num(x.q)}."
    if top:
        text += f" q's top choices here: {top}."
    if x.pos + 1 < w.gamma:
        text += " It feeds this token back in to draft the next one."
    return text


def _head_text(s: StepRecord, w: StepWalk, x: Position) -> str:
    """A feature head's draft: what it reads and what it proposes."""
    n = w.cache.committed_before
    if x.pos == 0:
        reads = (f"The feature head reads the target's own last hidden state at position "
                 f"{n - 2} (computed by the target's previous pass, not a new one) with the "
                 f"embedding of the last committed token, guesses the target's hidden state "
                 f"at position {n - 1}, and turns that guess into q with the target's own "
                 "output layer.")
    else:
        reads = ("The target has not read the previous draft yet, so there is no hidden "
                 "state of it: the head feeds back its own guess of that hidden state, with "
                 "the embedding of the token it just drafted, and guesses the next one.")
    how = "It takes q's most likely token" if w.greedy else "It samples from q"
    top = _top(s.q_top_texts[x.pos] if s.q_top_texts else None,
               s.q_top_probs[x.pos] if s.q_top_probs else None)
    text = f"{reads} {how}: {quote(x.text)} with q = {num(x.q)}."
    if top:
        text += f" q's top choices here: {top}."
    return text


def _verify_text(s: StepRecord, w: StepWalk) -> str:
    c = w.cache
    tail = c.target_fed - w.gamma
    fed = (f"It feeds {c.target_fed} token{'s' if c.target_fed != 1 else ''}: "
           + (f"the whole prompt ({c.prompt} tokens, the prefill)" if c.target_before == 0
              else f"the {tail} committed token{'s' if tail != 1 else ''} not yet in its cache")
           + (f" and the {w.gamma} draft{'s' if w.gamma != 1 else ''}." if w.gamma else "."))
    if not w.positions:
        return "The target runs one forward pass, as in ordinary decoding. " + fed
    ps = "; ".join(f"p({quote(x.text)}) = {num(x.p)}" for x in w.positions)
    text = (f"The target runs one forward pass over all {w.gamma} drafted positions, plus one "
            f"position after them. {fed} It gives {ps}.")
    if w.greedy:
        text += (" (Greedy decoding: p and q are shown as the plain softmax; only the "
                 "target's most likely token decides.)")
    return text


def _accept_text(s: StepRecord, w: StepWalk, x: Position) -> str:
    verdict = "accepted" if x.status == ACCEPTED else "rejected"
    head = f"Position {x.pos + 1}, {quote(x.text)}: "
    if w.greedy:
        top_text = s.p_top_texts[x.pos][0] if s.p_top_texts and s.p_top_texts[x.pos] else None
        top_p = s.p_top_probs[x.pos][0] if s.p_top_probs and s.p_top_probs[x.pos] else None
        if x.status == ACCEPTED:
            text = head + (f"it is the target's most likely token (p = {num(x.p)}), so greedy "
                           "decoding keeps it: accepted.")
        elif top_text is not None:
            text = head + (f"the target's most likely token is {quote(top_text)} "
                           f"(p = {num(top_p)}), not this one (p = {num(x.p)}): rejected.")
        else:
            text = head + f"it is not the target's most likely token (p = {num(x.p)}): rejected."
    else:
        u = "–" if x.u is None else num(x.u)
        cmp = "<" if x.status == ACCEPTED else "≥"
        if not w.has_q:
            rule = (f"q is one-hot, so it is kept with probability min(1, p/1) = p = "
                    f"{num(x.accept_prob)}")
        elif x.accept_prob >= 1.0:
            rule = (f"p = {num(x.p)} ≥ q = {num(x.q)}, so it is kept with probability "
                    f"min(1, p/q) = 1")
        else:
            rule = (f"it is kept with probability min(1, p/q) = min(1, {num(x.p)}/{num(x.q)}) "
                    f"= {num(x.accept_prob)}")
        side = "below" if x.status == ACCEPTED else "not below"
        text = (head + rule + f"; the draw u = {u} is {side} that (u {cmp} "
                f"{num(x.accept_prob)}): {verdict}.")
    later = [p for p in w.positions if p.status == UNJUDGED]
    if x.status == REJECTED and later:
        names = ", ".join(quote(p.text) for p in later)
        text += (f" The draft{'s' if len(later) > 1 else ''} after it ({names}) "
                 f"{'are' if len(later) > 1 else 'is'} never judged: "
                 f"{'they' if len(later) > 1 else 'it'} followed a rejected token.")
    return text


def _add_title(w: StepWalk) -> str:
    if w.added is None:
        return "Nothing added: the run ended"
    return "The correction" if w.added.kind == RESAMPLED else "The bonus token"


def _add_text(trace: Trace, s: StepRecord, w: StepWalk) -> str:
    a = w.added
    if a is None:
        last = s.emitted_text[-1] if s.emitted_text else ""
        return (f"The accepted tokens end with {quote(last)}, where the run stopped (end of "
                "sequence or the end of the run): no token is added.")
    if a.kind == BONUS and not w.positions:
        how = "p's most likely token" if w.greedy else "drawn from p"
        return (f"With nothing drafted the target adds one token, {how}: {quote(a.text)}. "
                "This step costs a full target pass for one token.")
    if a.kind == BONUS:
        how = "p's most likely token there" if w.greedy else "drawn from p there"
        return (f"All {w.gamma} drafts were accepted. The target's pass also scored the "
                f"position after them, so it adds a bonus token for free, {how}: "
                f"{quote(a.text)} ({w.gamma + 1} tokens from one target pass; p at that "
                "position is not recorded in the trace).")
    pos = w.n_accepted
    x = w.positions[pos]
    if w.greedy:
        top = s.p_top_probs[pos][0] if s.p_top_probs and s.p_top_probs[pos] else None
        return (f"In place of the rejected {quote(x.text)} the target adds its own most likely "
                f"token at position {pos + 1}: {quote(a.text)}"
                + (f" (p = {num(top)})." if top is not None else "."))
    topk = F.topk_frame(trace, s.step, pos)
    row = topk[topk[F.TOKEN_ID] == a.token_id]
    head = (f"The correction {quote(a.text)} is drawn from the residual norm(max(0, p − q)) at "
            f"position {pos + 1}, which puts no weight on tokens the draft over-proposed "
            f"({quote(x.text)} among them).")
    if not w.has_q:
        p_y = float(row[F.P].iloc[0]) if len(row) and np.isfinite(row[F.P].iloc[0]) else None
        text = head + (f" With q one-hot the residual is p without {quote(x.text)}, "
                       "renormalised: p(y) / (1 − p(x))")
        if p_y is not None and x.p < 1:
            text += (f", here {num(p_y)} / (1 − {num(x.p)}) = {num(p_y / (1 - x.p))} for "
                     f"{quote(a.text)}.")
        else:
            text += f"; {quote(a.text)} is outside the recorded top-k of p."
        return text
    if len(row):
        r = row.iloc[0]
        q = f"q = {num(r[F.Q])}" if np.isfinite(r[F.Q]) else "q outside its recorded top-k"
        pq = f"p = {num(r[F.P])}, {q}"
        text = head + (f" For {quote(a.text)}: {pq}; its share of the residual, computed from "
                       f"the recorded top-k only, is about {num(float(r[RESIDUAL]))}.")
    else:
        text = head + f" {quote(a.text)} is outside the recorded top-k of p and q."
    return text + (" Only the top-k of p and q are recorded, so the residual shown is an "
                   "approximation; the decoder used the full distributions.")


def _commit_text(w: StepWalk) -> str:
    c = w.cache
    n_new = c.committed_after - c.committed_before
    text = (f"Before the step {c.committed_before} tokens were committed ({c.prompt} prompt + "
            f"{c.committed_before - c.prompt} generated). After the verify pass the target's "
            f"cache held {c.target_after_verify} positions. This step commits {n_new} "
            f"token{'s' if n_new != 1 else ''} (n = {c.committed_after}); the target cache "
            f"keeps {c.target_kept}: every committed token but the last, which the next "
            "pass feeds")
    dropped = c.target_dropped
    what = "the rejected draft" + (" and the drafts after it" if dropped > 1 else "")
    text += (f", and drops {dropped} position{'s' if dropped != 1 else ''} ({what})."
             if dropped else "; it drops nothing.")
    if c.draft_kept is not None and not w.positions:
        text += (f" The draft model drafted nothing; its cache holds {c.draft_after_drafting} "
                 f"and keeps {c.draft_kept}")
        text += (f", dropping {c.draft_dropped}." if c.draft_dropped else ".")
    elif c.draft_kept is not None:
        text += (f" The draft's cache held {c.draft_after_drafting} after drafting (the "
                 f"committed tokens and every draft but the last) and keeps {c.draft_kept}")
        text += (f", dropping {c.draft_dropped}." if c.draft_dropped else ".")
        text += (" It keeps every committed token but the last two, which its next pass "
                 "re-reads: after a step whose drafts were all kept, the last draft and the "
                 "bonus token are new to it.")
    elif w.drafter == "prompt-lookup":
        text += " Prompt lookup keeps no cache: it only searches the committed tokens."
    elif w.drafter == "feature-head":
        text += (" The feature head now reads the target's hidden states of the committed "
                 "tokens, which this verify pass has just computed, so its next draft starts "
                 "from the target's own view of the text.")
    return text


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


DRAFTED = "drafted"  # tree_view: a node proposed, not judged yet


def tree_view(s: StepRecord, w: StepWalk, index: int, root_text: str = "x₀") -> pd.DataFrame:
    """A tree step's ``frames.tree_frame`` as known at micro-step ``index``: nodes appear as
    the draft proposes them ("drafted"), take their verdict when judged, and the added token
    appears with the add phase."""
    m = w.micro[index]
    tree = F.tree_frame(s, root_text)
    order = PHASES.index(m.phase)
    nodes = tree[F.NODE]
    if m.phase == "draft":
        tree = tree[nodes <= (m.position if m.position is not None else -1)]
    if order < PHASES.index("add"):
        tree = tree[tree[F.NODE] < w.gamma]  # the added token comes later
    pending = (tree[F.NODE] >= 0) & (tree[F.NODE] < w.gamma)
    if order < PHASES.index("accept"):
        tree.loc[pending, F.KIND] = DRAFTED
    elif m.phase == "accept":
        final = dict(zip(tree[F.NODE], tree[F.KIND]))
        later = pending & (tree[F.NODE] > (m.position if m.position is not None else -1))
        tree.loc[later, F.KIND] = DRAFTED
        # a node below a rejected (or unreached) one can never be reached, and a sampled
        # child with q = 0 is never judged: faded (∅) at once
        shown = dict(zip(tree[F.NODE], tree[F.KIND]))
        for node, par, q in zip(tree[F.NODE], tree[F.PARENT], tree[F.Q]):
            if shown[node] == DRAFTED and final[node] == "unjudged" and (
                    shown.get(par) in ("rejected", "unjudged")
                    or (w.drawn == "sampled" and q == 0)):
                shown[node] = "unjudged"
        tree[F.KIND] = tree[F.NODE].map(shown)
    return tree


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
    if order < PHASES.index("verify"):
        topk[F.P] = np.nan
        topk = topk[topk[F.Q].notna()]
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
