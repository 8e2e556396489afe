"""What a run keeps while it runs: its running totals, its budget (when it ends and each
step's draft length), its step records, and automatic garbage collection held off."""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ..core.algorithm import Step
from ..decode_config import DecodeConfig
from ..traces.records import RunRecord, StepRecord, Trace, summarize

_GC_LOCK = threading.Lock()
_GC_HOLDERS = [0, False]  # runs inside _no_gc_pauses; whether automatic collection was on


@contextlib.contextmanager
def _no_gc_pauses():
    """Automatic garbage collection off while steps run (across threads: on again when the
    last run ends, if it was on before the first). A full collection walks every object of
    the process (~400 k with torch and transformers loaded: 60–160 ms), and the objects a
    traced run keeps make one due every few hundred steps; in the middle of a run it stalls
    the device for dozens of steps. Step records hold no reference cycles, so reference
    counting frees everything the loop drops."""
    with _GC_LOCK:
        if _GC_HOLDERS[0] == 0:
            _GC_HOLDERS[1] = gc.isenabled()
            gc.disable()
        _GC_HOLDERS[0] += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_HOLDERS[0] -= 1
            if _GC_HOLDERS[0] == 0 and _GC_HOLDERS[1]:
                gc.enable()


@dataclass
class _Totals:
    """A run's running totals (all an untraced run keeps of its steps)."""

    steps: int = 0
    emitted: int = 0
    drafted: int = 0
    accepted: int = 0
    evaluated: int = 0
    draft_passes: int = 0

    def add(self, step: Step, draft_passes: int) -> None:
        g, n = step.launched.gamma, step.n_accepted
        self.steps += 1
        self.emitted += len(step.new_ids)
        self.drafted += g
        self.accepted += n
        self.evaluated += min(g, n + 1) if step.judged is None else step.judged
        self.draft_passes = draft_passes

    def into(self, summary, output_ids: list[int], wall: float):
        """The summary of an untraced run: its totals from these counters."""
        return replace(summary, output_token_ids=output_ids, n_steps=self.steps,
                       n_drafted=self.drafted, n_accepted=self.accepted,
                       n_emitted=self.emitted,
                       alpha_hat=self.accepted / self.evaluated if self.evaluated else None,
                       mean_accepted_length=self.emitted / max(self.steps, 1),
                       tokens_per_s=round(self.emitted / wall, 3) if wall > 0 else 0.0)


class _Budget:
    """When a run ends, and each step's draft length until then."""

    def __init__(self, config: DecodeConfig, policy, should_stop, n_prompt: int, limit: int):
        self.config, self.policy, self.should_stop = config, policy, should_stop
        self.n_prompt, self.limit = n_prompt, limit
        self.host: list[int] = []  # the committed tokens (the decoder's, once it starts)
        self.stop_reason = "max_new_tokens"

    def next_gamma(self) -> int | None:
        """The next step's draft length, or None when the run ends (stop_reason set)."""
        remaining = self.config.max_new_tokens - (len(self.host) - self.n_prompt)
        room = self.limit - len(self.host)
        if remaining <= 0:
            return None
        if room <= 0:
            self.stop_reason = "context"
            return None
        if self.should_stop is not None and self.should_stop():
            self.stop_reason = "stopped"
            return None
        return min(self.policy.next_gamma(), remaining - 1, room - 1) if self.policy else 0

    def update(self, gamma: int, n_accepted: int) -> None:
        if self.policy is not None:
            self.policy.update(gamma, n_accepted)


@dataclass
class _Kept:
    """What a run keeps of its steps: records (traced), running totals (always)."""

    run: RunRecord
    tokenizer: Any
    budget: _Budget
    detail: bool
    t_start: float = 0.0
    records: list[StepRecord] = field(default_factory=list)
    totals: _Totals = field(default_factory=_Totals)

    def trace(self, reason: str) -> Trace:
        """The run so far as a trace that ended for ``reason``."""
        wall = time.perf_counter() - self.t_start
        new = self.budget.host[self.budget.n_prompt:]
        out = self.tokenizer.decode(new, skip_special_tokens=False)
        summary = summarize(self.run, self.records, wall_s=wall, output_text=out,
                            stop_reason=reason, target_forward_passes=self.totals.steps,
                            draft_forward_passes=self.totals.draft_passes)
        if not self.detail:  # no step records were kept: totals come from the counters
            summary = self.totals.into(summary, new, wall)
        return Trace(self.run, tuple(self.records), summary)
