"""Drafters: who proposes the γ tokens the target verifies (the ``Drafter`` protocol of
specviz.core.algorithm).

- ``ModelDrafter``: a draft LM, the separate draft model or the target's own first layers
  (early exit), fed its own guesses one token at a time; it gives q.
- ``FeatureHeadDrafter``: a small head that drafts from the target's own last hidden states
  (EAGLE-style; specviz.models.feature_head); it gives q.
- ``PromptLookupDrafter``: copies what followed the latest earlier match of the last n-gram
  (Saxena 2023); no model and no q (the verifier takes q = one-hot).

Either runs on every engine: the draft LM is whatever the engine provides (transformers'
forward, or the static one that CUDA graphs replay).
"""

from __future__ import annotations

import torch

from . import DRAFTERS  # noqa: F401  (the drafter kinds, listed where the loader reads them)
from .sampling import Sampling, choose, logits_to_probs
from .state import RunState


class ModelDrafter:
    """Drafts with a causal LM that shares the target's tokenizer.

    Its cache holds every committed token but the last two, which each step re-reads: after
    a step whose drafts were all kept, the last draft and the bonus token are new to it.
    """

    has_q, reads_features = True, False

    def __init__(self, lm, sampling: Sampling):
        self.lm, self.sampling = lm, sampling

    def start(self, state: RunState, prompt: torch.Tensor, features=None) -> None:
        """Prefill: every prompt token but the last two (the first step reads those)."""
        n = prompt.shape[0]
        if n > 2:
            self.lm.forward(prompt[:-2], torch.arange(n - 2, device=prompt.device), "none")

    def propose(self, state: RunState, gamma: int, phases, stop_below: float | None) -> int:
        """Draft gamma tokens; with ``stop_below`` (the confidence policy) keep them up to the
        first whose top probability is below it (a host read)."""
        tail = min(2, len(state.host))
        if stop_below is None or phases.captures:
            phases.run(("draft", gamma, tail, self.sampling),
                       lambda: self._draft(state, gamma, tail, None))
            return gamma if stop_below is None else _first_unsure(state.q[:gamma], stop_below)
        return self._draft(state, gamma, tail, stop_below)  # eager: stop drafting right there

    def _draft(self, st: RunState, gamma: int, tail: int, stop_below: float | None) -> int:
        s = self.sampling
        pos = st.P - tail + st.offsets[:tail]  # (tail,) the newest committed positions
        logits = self.lm.forward(st.seq.index_select(0, pos), pos, "last")[0]  # (V,)
        for i in range(gamma):
            q = logits_to_probs(logits, s)  # (V,)
            tok = choose(q, s, None, None if s.greedy else st.e_draft[i])  # ()
            st.q[i].copy_(q)
            st.drafts[i].copy_(tok)
            if stop_below is not None and float(q.max()) < stop_below:
                return i + 1
            if i + 1 < gamma:
                logits = self.lm.forward(tok.view(1), st.P + i, "last")[0]
        return gamma

    def commit(self, state: RunState, gamma: int, n_accepted: torch.Tensor) -> None:
        pass  # the next step re-reads the newest committed tokens


class FeatureHeadDrafter:
    """Drafts with a feature-level head (specviz.models.feature_head.StaticHead).

    The head reads the target's features of the committed tokens, which the verify pass
    already computed (state.features): its rows are written in the accept phase (``commit``),
    and ``head.h`` keeps its guess of the next feature, from which the next step's first
    draft comes. Drafting then feeds the head its own guesses, one row per draft.
    """

    has_q, reads_features = True, True

    def __init__(self, head, sampling: Sampling):
        self.head, self.sampling = head, sampling
        self.h = head.h  # (H,) at a fixed address, like every buffer a graph replays

    def start(self, state: RunState, prompt: torch.Tensor, features) -> None:
        """Rows 0..n-2 from the prefill's features; a 1-token prompt has none: zeros."""
        n = prompt.shape[0]
        if n < 2:
            self.h.zero_()
            return
        h = self.head.rows(features, prompt[1:], torch.arange(n - 1, device=prompt.device))
        self.h.copy_(h[-1])

    def propose(self, state: RunState, gamma: int, phases, stop_below: float | None) -> int:
        if stop_below is None or phases.captures:
            phases.run(("draft", gamma, self.sampling), lambda: self._draft(state, gamma, None))
            return gamma if stop_below is None else _first_unsure(state.q[:gamma], stop_below)
        return self._draft(state, gamma, stop_below)

    def _draft(self, st: RunState, gamma: int, stop_below: float | None) -> int:
        s, head, h = self.sampling, self.head, self.h
        for i in range(gamma):
            q = head.spread(logits_to_probs(head.logits(h), s))  # (V,), zero off its vocab
            tok = choose(q, s, None, None if s.greedy else st.e_draft[i])  # ()
            st.q[i].copy_(q)
            st.drafts[i].copy_(tok)
            if stop_below is not None and float(q.max()) < stop_below:
                return i + 1
            if i + 1 < gamma:  # row P-1+i: its own guess h in place of the target's feature
                h = head.rows(h[None], tok.view(1), st.P - 1 + i)[0]
        return gamma

    def commit(self, state: RunState, gamma: int, n_accepted: torch.Tensor) -> None:
        """Rows P-1..P-1+γ from the verify pass's features and the committed tokens (rows past
        the accepted ones are overwritten later); h from row n."""
        st = state
        idx = st.offsets[:gamma + 1]
        h = self.head.rows(st.features[:gamma + 1], st.seq.index_select(0, st.P + idx),
                           st.P - 1 + idx)
        self.h.copy_(h.index_select(0, n_accepted.view(1))[0])


def _first_unsure(q: torch.Tensor, stop_below: float) -> int:
    """Drafts kept under the confidence policy: up to the first with max q < stop_below."""
    low = (q.amax(-1) < stop_below).nonzero().flatten().tolist()
    return low[0] + 1 if low else q.shape[0]


class PromptLookupDrafter:
    """Drafts by copying: the tokens that followed the latest earlier occurrence of the last
    n-gram (Saxena 2023; transformers' prompt lookup decoding). No q."""

    has_q, reads_features = False, False

    def __init__(self, max_ngram: int = 3, min_ngram: int = 2):
        self.max_ngram, self.min_ngram = max_ngram, min_ngram

    def start(self, state: RunState, prompt: torch.Tensor, features=None) -> None:
        pass

    def propose(self, state: RunState, gamma: int, phases, stop_below: float | None) -> int:
        found = lookup(state.host, gamma, self.max_ngram, self.min_ngram)
        if found:
            state.put_drafts(found)
        return len(found)

    def commit(self, state: RunState, gamma: int, n_accepted: torch.Tensor) -> None:
        pass


def lookup(tokens: list[int], gamma: int, max_ngram: int = 3, min_ngram: int = 2) -> list[int]:
    """Up to gamma tokens that followed the latest earlier match of the trailing n-gram.

    Matches of fewer than min_ngram tokens are not used: a lone repeated token predicts its
    successor poorly, and every rejected draft costs verify work.
    """
    n = len(tokens)
    if gamma <= 0:
        return []
    for size in range(min(max_ngram, n - 1), min_ngram - 1, -1):
        tail = tokens[n - size:]
        for start in range(n - size - 1, -1, -1):  # latest match first
            if tokens[start:start + size] == tail:
                follow = tokens[start + size:start + size + gamma]
                if follow:
                    return follow
    return []


def check_early_exit_layers(target: torch.nn.Module, n_layers: int) -> None:
    """Early exit keeps 1 to all-but-one of the target's layers; raise ValueError otherwise."""
    total = target.config.num_hidden_layers
    if not 1 <= n_layers < total:
        raise ValueError(f"early exit needs 1 to {total - 1} layers, got {n_layers}")
