"""What one step sends from the device to the host, described once.

A step's trace data crosses as ONE float32 tensor (one copy, one wait). ``StepLayout`` lists
its fields in order with their lengths; ``pack`` and ``unpack`` both walk that one list, so
the two sides cannot disagree. Token ids travel as float32, exact below 2**24.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class StepLayout:
    """The fields of one step's packed data, for a step of ``gamma`` drafts.

    ``has_q``: the drafter gave q; ``sampled``: τ > 0 (there are draws u); ``detail``: the
    top-``k`` alternatives of p (and q) at each drafted position are included.
    """

    gamma: int
    has_q: bool
    sampled: bool
    detail: bool
    k: int

    @property
    def fields(self) -> tuple[tuple[str, int], ...]:
        g, k = self.gamma, self.k
        out = [("drafted", g), ("accepted", g), ("accept_prob", g), ("p_tok", g),
               ("n_accepted", 1), ("next_token", 1)]
        if self.sampled:
            out.append(("u", g))
        if self.has_q:
            out.append(("q_tok", g))
        if self.has_q and self.sampled:
            out.append(("beta", g))
        if self.detail and g:
            out += [("p_top_ids", g * k), ("p_top_probs", g * k)]
            if self.has_q:
                out += [("q_top_ids", g * k), ("q_top_probs", g * k)]
        return tuple(out)

    def pack(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """The named tensors, flattened to float32 and joined in field order."""
        parts = []
        for name, n in self.fields:
            x = values[name].reshape(-1).float()
            assert x.shape[0] == n, (name, x.shape[0], n)
            parts.append(x)
        return torch.cat(parts)

    def pack_step(self, drafted: torch.Tensor, v, p: torch.Tensor, q: torch.Tensor | None
                  ) -> torch.Tensor:
        """A step's data: the drafts (γ,), the verifier's verdict, and with ``detail`` the
        top-k of p (γ, V) and q (γ, V) at each drafted position."""
        values = dict(drafted=drafted, accepted=v.accepted, accept_prob=v.accept_prob,
                      p_tok=v.p_tok, n_accepted=v.n_accepted, next_token=v.next_token,
                      u=v.u, q_tok=v.q_tok, beta=v.beta)
        if self.detail and self.gamma:
            for who, probs in (("p", p), ("q", q)) if self.has_q else (("p", p),):
                top = torch.topk(probs, min(self.k, probs.shape[-1]), dim=-1)
                values[f"{who}_top_ids"], values[f"{who}_top_probs"] = top.indices, top.values
        return self.pack(values)

    def unpack(self, host: np.ndarray) -> dict[str, np.ndarray]:
        """The packed host array back into named arrays (top-k fields shaped (gamma, k))."""
        out, at = {}, 0
        for name, n in self.fields:
            x = host[at:at + n]
            at += n
            out[name] = x.reshape(self.gamma, self.k) if name.endswith(("_ids", "_probs")) \
                else x
        if at != host.shape[0]:
            raise ValueError(f"packed step data has {host.shape[0]} values, layout {at}")
        return out
