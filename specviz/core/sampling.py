"""Logits to probabilities (temperature, top-k, top-p) and sampling without host syncs."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sampling:
    """How tokens are chosen. temperature == 0 means greedy (argmax)."""

    temperature: float = 0.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def logits_to_probs(logits: torch.Tensor, s: Sampling) -> torch.Tensor:
    """(..., vocab) logits -> (..., vocab) float32 probabilities.

    Under greedy decoding this is the plain softmax (temperature 1, no filtering): the choice
    is the argmax, and these probabilities are what the trace shows beside it.
    """
    logits = logits.float()
    if s.greedy:
        return torch.softmax(logits, dim=-1)
    logits = logits / s.temperature
    if s.top_k and s.top_k < logits.shape[-1]:
        kth = torch.topk(logits, s.top_k, dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if s.top_p < 1.0:
        sorted_logits, idx = torch.sort(logits, dim=-1, descending=True)
        sorted_probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # mass ranked above
        drop_sorted = before >= s.top_p  # the top token always stays
        drop = torch.zeros_like(drop_sorted).scatter(-1, idx, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return torch.softmax(logits, dim=-1)


def sample(probs: torch.Tensor, generator: torch.Generator | None,
           e: torch.Tensor | None = None) -> torch.Tensor:
    """Draw one index per row of (..., vocab) probabilities; returns (...,) int64.

    Uses the exponential-race trick (argmax of probs / E, E ~ Exp(1)), which samples exactly
    from probs and needs no host synchronisation on a GPU. ``e`` gives E pre-drawn (same
    shape as probs), as the CUDA-graph engine does; else it is drawn from ``generator``.
    """
    if e is None:
        e = torch.empty_like(probs).exponential_(1.0, generator=generator)
    return torch.argmax(probs / e, dim=-1)


def choose(probs: torch.Tensor, s: Sampling, generator: torch.Generator | None,
           e: torch.Tensor | None = None) -> torch.Tensor:
    """argmax under greedy decoding, else a sample (with pre-drawn ``e`` if given)."""
    return torch.argmax(probs, dim=-1) if s.greedy else sample(probs, generator, e)
