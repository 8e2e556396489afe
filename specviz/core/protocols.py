"""The small interfaces the algorithm (specviz.core.algorithm) is written against.

An engine provides the ``LM`` forward passes and the ``Phases`` runner; a drafter kind
implements ``Drafter``. Every engine runs every drafter through the one loop.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import torch

from .state import RunState


class LM(Protocol):
    """A causal LM with a KV cache: ``forward(ids (T,), pos (T,))`` writes the tokens' keys
    and values at those positions (later entries are stale and get overwritten) and returns
    logits (T, V), the last row (1, V) or None; ``features`` receives its last hidden states."""

    def forward(self, ids: torch.Tensor, pos: torch.Tensor, logits: str = "all",
                features: torch.Tensor | None = None) -> torch.Tensor | None: ...


class Phases(Protocol):
    """Runs a phase: eagerly, or captured once per key as a CUDA graph and replayed (with
    ``fuse``, compiled first where the engine is fused)."""

    captures: bool

    def run(self, key: tuple, fn: Callable[[], Any], fuse: bool = False) -> Any: ...


class Drafter(Protocol):
    """Proposes the drafts: writes x_1..x_k to state.drafts (and q to state.q if has_q)."""

    has_q: bool  # False: no distribution; the verifier takes q = one-hot (prompt lookup)
    reads_features: bool  # needs the target's hidden states (state.features)

    def start(self, state: RunState, prompt: torch.Tensor,
              features: torch.Tensor | None) -> None: ...

    def propose(self, state: RunState, gamma: int, phases: Phases,
                stop_below: float | None) -> int: ...

    def commit(self, state: RunState, gamma: int, n_accepted: torch.Tensor) -> None:
        """Inside the accept phase, on the device, before P advances."""
