"""The walkthrough's records and wording: what one step replayed as micro-steps holds
(``StepWalk``, ``Position``, ``MicroStep`` ...), the state names the views use, and how the
narration writes a probability or a token. Shared by the chain's and the tree's narration
(``walk_chain``, ``walk_tree``) and re-exported by ``specviz.teaching.walkthrough``.

Notation: p = target distribution, q = draft distribution. No streamlit here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..traces import frames as F

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


_Item = tuple[str, str, str, int | None]  # phase, title, narration, drafted position
