"""Speculative decoding, step by step: Algorithm 1 of Leviathan et al. (2023).

One step, with p = target and q = draft:
  1. draft   the drafter proposes x_1..x_γ (with q_1..q_γ when it has a distribution);
  2. verify  ONE target pass over [x_0, x_1..x_γ] (x_0 the last committed token) gives
             p_1..p_{γ+1};
  3. accept  keep x_i while u_i < min(1, p_i(x_i) / q_i(x_i)) (greedy: while x_i is p_i's
             argmax); then draw one more token: the correction from norm(max(0, p − q)) at
             the first rejection, or the bonus from p_{γ+1} when all γ were kept;
  4. commit  append the kept drafts and that token to the sequence.

Everything here runs on the device at fixed shapes, so an engine can replay each phase as a
CUDA graph; the host waits once per step, for the step's packed record data. Timing,
records and everything a user sees hang off ``steps`` (see specviz.decoding).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

from .layout import StepLayout
from .protocols import LM, Drafter, Phases
from .sampling import Sampling, logits_to_probs
from .state import RunState
from .verify import verify_greedy, verify_sampled


@dataclass
class Decoder:
    """Everything a step needs: the models, the run's device state, how to choose tokens."""

    target: LM
    drafter: Drafter | None  # None: the target alone (γ = 0 every step)
    state: RunState
    phases: Phases
    sampling: Sampling
    rule: str  # the acceptance rule: "exact", or a deliberately wrong one for teaching
    generator: torch.Generator
    fetch: Callable[[torch.Tensor], Any]  # starts the step's one device -> host copy
    wait: Callable[[Any], np.ndarray]  # waits for it
    detail: bool = True  # include the top-k alternatives of p and q
    k_top: int = 5
    clock: Callable[[], Any] = time.perf_counter  # phase marks (CUDA events on a GPU)

    @property
    def host(self) -> list[int]:
        """The committed tokens, on the host."""
        return self.state.host

    def start(self, prompt_ids: list[int]) -> None:
        """Prefill: every prompt token but the last into the caches (the first step feeds
        the last one)."""
        prompt, n = self.state.start(prompt_ids), len(prompt_ids)
        feats = None
        if self.drafter is not None and self.drafter.reads_features and n > 1:
            feats = torch.empty(n - 1, self.state.features.shape[1], device=prompt.device)
        if n > 1:
            self.target.forward(prompt[:-1], torch.arange(n - 1, device=prompt.device), "none",
                                feats)
        if self.drafter is not None:
            self.drafter.start(self.state, prompt, feats)

    # ------------------------------------------------------------------ one step
    def launch(self, want: int, stop_below: float | None) -> "Launched":
        st, s = self.state, self.sampling
        if not s.greedy:
            st.draw_noise(want, self.generator)  # outside the graphs, from the run's seed
        t0, marks = time.perf_counter(), [self.clock()]
        # 1. draft
        gamma = 0
        if self.drafter is not None and want > 0:
            gamma = self.drafter.propose(st, want, self.phases, stop_below)
        marks.append(self.clock())
        # 2. verify: one target pass
        p = self.phases.run(("verify", gamma, s), lambda: self._verify(gamma))
        marks.append(self.clock())
        # 3. accept, 4. commit (on the device), and the step's data packed for the host
        layout = StepLayout(gamma, self._has_q(gamma), not s.greedy, self.detail, self.k_top)
        packed = self.phases.run(("accept", layout, self.rule, s),
                                 lambda: self._accept_commit(gamma, p, layout))
        return Launched(self.fetch(packed), layout, marks, t0, gamma)

    def _has_q(self, gamma: int) -> bool:
        return self.drafter is not None and self.drafter.has_q and gamma > 0

    def _verify(self, gamma: int) -> torch.Tensor:
        st = self.state
        pos = st.P - 1 + st.offsets[:gamma + 1]  # (γ+1,)
        ids = torch.cat([st.seq.index_select(0, st.P - 1), st.drafts[:gamma]])
        feats = st.features[:gamma + 1] if st.features is not None else None
        return logits_to_probs(self.target.forward(ids, pos, "all", feats), self.sampling)

    def _accept_commit(self, gamma: int, p: torch.Tensor, layout: StepLayout) -> torch.Tensor:
        st = self.state
        x, q = st.drafts[:gamma], st.q[:gamma] if layout.has_q else None
        if self.sampling.greedy:
            v = verify_greedy(x, p, q, self.rule)
        else:
            v = verify_sampled(x, p, q, None, self.rule, u=st.u[:gamma], e=st.e_next)
        i = st.offsets[:gamma + 1]
        new = torch.where(i < v.n_accepted, torch.cat([x, x.new_zeros(1)]), v.next_token)
        st.seq.index_copy_(0, st.P + i, new)  # x_1..x_n, then the added token
        if self.drafter is not None:
            self.drafter.commit(st, gamma, v.n_accepted)
        st.P.add_(v.n_accepted + 1)
        return layout.pack_step(x, v, p[:gamma], q)

    def finish(self, launched: "Launched", eos: set[int]) -> "Step":
        """Wait for the step's data; the committed tokens on the host, cut at an EOS."""
        data = launched.layout.unpack(self.wait(launched.handle))
        n = int(data["n_accepted"][0])
        ids = data["drafted"].astype(np.int64).tolist()[:n] + [int(data["next_token"][0])]
        kinds = ["accepted"] * n + ["bonus" if n == launched.gamma else "resampled"]
        end = next((i for i, t in enumerate(ids) if t in eos), None)
        if end is not None:
            ids, kinds = ids[:end + 1], kinds[:end + 1]
        self.state.host.extend(ids)
        return Step(launched, data, n, ids, kinds, end is not None, time.perf_counter())


@dataclass
class Launched:
    handle: Any  # the pending device -> host copy
    layout: StepLayout | None  # None: a tree step (its data are already on the host)
    marks: list  # clock marks: draft start, verify start, verify end
    t0: float  # host time at launch
    gamma: int


@dataclass
class Step:
    """One finished step, as the host sees it."""

    launched: Launched
    data: dict[str, np.ndarray]  # the fields of StepLayout
    n_accepted: int
    new_ids: list[int]  # committed by this step (cut after an end-of-sequence token)
    kinds: list[str]  # accepted | resampled | bonus, per committed token
    eos: bool
    t1: float  # host time when its data arrived
    judged: int | None = None  # drafts the verifier judged, where not the chain's n + 1


def steps(dec: Decoder, next_gamma: Callable[[], int | None], eos: set[int],
          stop_below: float | None, overlap: bool, update: Callable[[int, int], None]
          ) -> Iterator[Step]:
    """Decode step after step. ``next_gamma()`` gives the next step's draft length, or None
    to stop; ``update(gamma, n_accepted)`` tells the policy what happened. With ``overlap``
    the next step is launched before this one is yielded, so the device runs it while the
    caller writes the record."""
    want = next_gamma()
    pending = dec.launch(want, stop_below) if want is not None else None
    while pending is not None:
        step = dec.finish(pending, eos)
        update(step.launched.gamma, step.n_accepted)
        pending = None
        if overlap and not step.eos and (want := next_gamma()) is not None:
            pending = dec.launch(want, stop_below)
        yield step
        if not overlap and not step.eos and (want := next_gamma()) is not None:
            pending = dec.launch(want, stop_below)
