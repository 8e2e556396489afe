"""A run's state on the device: everything a step reads and writes lives at a fixed address,
so that each phase has fixed shapes and can be replayed as a CUDA graph.

The committed sequence ``seq`` and its length ``P`` stay on the device (the host keeps its
own copy of the tokens, ``host``, for prompt lookup and the records); drafts and their q go
to ``drafts`` / ``q``; the noise a sampled step needs is drawn into ``u`` (the acceptance
draws), ``e_draft`` and ``e_next`` (Exp(1) races for the draft's and the target's tokens)
before the step, with the run's generator.
"""

from __future__ import annotations

import torch

from ..limits import GAMMA_MAX, TREE_NODES_MAX


class RunState:
    """Device buffers of one run (or of several runs of the same shape, one at a time)."""

    def __init__(self, max_len: int, vocab: int, device: torch.device,
                 hidden_size: int | None = None):
        self.max_len, self.vocab, self.device = max_len, vocab, device
        self.seq = torch.zeros(max_len, dtype=torch.long, device=device)
        self.P = torch.zeros(1, dtype=torch.long, device=device)  # committed length
        self.drafts = torch.zeros(GAMMA_MAX, dtype=torch.long, device=device)
        self.q = torch.zeros(GAMMA_MAX, vocab, dtype=torch.float32, device=device)
        self.u = torch.zeros(GAMMA_MAX, dtype=torch.float32, device=device)
        self.e_draft = torch.ones(GAMMA_MAX, vocab, dtype=torch.float32, device=device)
        self.e_next = torch.ones(vocab, dtype=torch.float32, device=device)
        self.offsets = torch.arange(GAMMA_MAX + 1, device=device)  # 0..GAMMA_MAX
        # the target's last hidden states of the latest verify pass (a chain's, or a token
        # tree's), for drafters that read them (a feature-level draft head)
        self.features = (None if hidden_size is None else
                         torch.zeros(max(GAMMA_MAX, TREE_NODES_MAX) + 1, hidden_size,
                                     device=device))
        # a sampled token tree step's draws, per (tree shape, phase): made before the phase
        # (specviz.core.tree_decoder), kept here so that a graph captured in one run reads
        # the buffers the next run fills
        self.tree_draws: dict = {}
        self._staging = torch.zeros(GAMMA_MAX, dtype=torch.long,
                                    pin_memory=device.type == "cuda")
        self.host: list[int] = []

    def start(self, prompt_ids: list[int]) -> torch.Tensor:
        """Write the prompt as the committed sequence; returns it as a device tensor."""
        n = len(prompt_ids)
        ids = torch.tensor(prompt_ids, dtype=torch.long, device=self.device)
        self.seq[:n] = ids
        self.P.fill_(n)
        self.host = list(prompt_ids)
        return ids

    def draw_noise(self, gamma: int, generator: torch.Generator) -> None:
        """Fresh randomness for a sampled step (outside any graph)."""
        self.e_draft[:gamma].exponential_(1.0, generator=generator)
        self.u[:gamma].uniform_(0.0, 1.0, generator=generator)
        self.e_next.exponential_(1.0, generator=generator)

    def put_drafts(self, ids: list[int]) -> None:
        """Drafts proposed on the host into the device buffer, without a synchronisation."""
        k = len(ids)
        self._staging[:k] = torch.tensor(ids, dtype=torch.long)
        self.drafts[:k].copy_(self._staging[:k], non_blocking=True)
