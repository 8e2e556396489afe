"""The target's features of the training data, computed once and kept on the device.

Training a head reads, per token, the target's features (one or several hidden states) and
its distribution p. Computing them anew in every epoch costs a full target pass per batch,
which for a 1.5 B target is most of a training step. ``FeatureStore`` makes that pass once:
it keeps the features (bfloat16), the target's argmax and log-normaliser (logsumexp of the
logits) of every token, and rebuilds p over the head's vocabulary from the last hidden state
with one product per batch (p = exp(logits - logsumexp)).
"""

from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch

from .head import target_features


def length_groups(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, about ``max_tokens`` tokens each
    (as ``specviz.distill.train.make_batches`` groups them)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    groups, cur = [], []
    for i in order:
        if cur and lengths[i] * (len(cur) + 1) > max_tokens:
            groups.append(cur)
            cur = []
        cur.append(i)
    return groups + [cur] if cur else groups


def store_nbytes(n_tokens: int, hidden: int, n_features: int, last_included: bool) -> int:
    """Device bytes a store of ``n_tokens`` tokens takes."""
    width = hidden * (n_features + (0 if last_included else 1))
    return n_tokens * (2 * width + 4 + 8 + 8)


def fits_on_device(target, seqs: list[np.ndarray], layers, max_len: int, log=print,
                   share: float = 0.5) -> bool:
    """Whether a store of ``seqs`` takes at most ``share`` of the device's free memory (on a
    CPU: always); says so when it does not."""
    dev = target.model.embed_tokens.weight.device
    if dev.type != "cuda":
        return True
    L = target.config.num_hidden_layers
    need = store_nbytes(sum(min(len(s), max_len) for s in seqs), target.config.hidden_size,
                        len(layers) if layers else 1, layers is None or layers[-1] == L)
    free = torch.cuda.mem_get_info(dev)[0]
    if need <= share * free:
        return True
    log(f"feature store of {need / 1e9:.1f} GB does not fit {share:.0%} of the "
        f"{free / 1e9:.1f} GB free: the target reads each batch instead")
    return False


class FeatureStore:
    """Every token's target features (N, n H), last hidden state, argmax and logsumexp."""

    def __init__(self, target, seqs: list[np.ndarray], layers: tuple[int, ...] | None, *,
                 max_tokens: int, max_len: int, autocast, log=print):
        dev = target.model.embed_tokens.weight.device
        H, L = target.config.hidden_size, target.config.num_hidden_layers
        self.lengths = [min(len(s), max_len) for s in seqs]
        offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self.offsets = torch.from_numpy(offsets).to(dev)
        n = int(offsets[-1])
        self.tokens = torch.from_numpy(np.concatenate(
            [np.asarray(s[:k], dtype=np.int64) for s, k in zip(seqs, self.lengths)])).to(dev)
        n_feat = len(layers) if layers else 1
        self.last_in_feats = layers is None or layers[-1] == L
        self.feats = torch.empty(n, n_feat * H, dtype=torch.bfloat16, device=dev)
        self.final = (None if self.last_in_feats else
                      torch.empty(n, H, dtype=torch.bfloat16, device=dev))
        self.arg = torch.empty(n, dtype=torch.long, device=dev)
        self.lse = torch.empty(n, dtype=torch.float32, device=dev)
        self.max_tokens, self.H = max_tokens, H
        lm_head = target.lm_head.weight
        with torch.no_grad(), autocast():
            for group in length_groups(self.lengths, max_tokens):
                ids, mask, index = self.batch(group)
                feats, final = target_features(target, ids, layers)
                self.feats[index[mask]] = feats[mask].to(torch.bfloat16)
                if self.final is not None:
                    self.final[index[mask]] = final[mask].to(torch.bfloat16)
                self.arg[index[mask]], self.lse[index[mask]] = _argmax_lse(final[mask],
                                                                           lm_head)
        log(f"feature store: {n} tokens, {len(seqs)} sequences, "
            f"{self.feats.numel() * 2 / 1e9:.2f} GB of features")

    def batch(self, group: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sequences ``group`` right-padded: ids (B, T), mask (B, T), index (B, T) into the
        store (padding rows point at each sequence's last token)."""
        lens = torch.tensor([self.lengths[i] for i in group], device=self.offsets.device)
        T = int(lens.max())
        t = torch.arange(T, device=lens.device)[None]
        mask = t < lens[:, None]
        start = self.offsets[torch.tensor(group, device=lens.device)][:, None]
        index = start + torch.minimum(t, lens[:, None] - 1)
        return self.tokens[index], mask, index

    def given(self, index: torch.Tensor, subset: torch.Tensor | None, lm_head: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What ``head._losses`` takes for a batch: features (B, T, n H) float32, p over the
        head's vocabulary (B, T, V_head) and the target's argmax (B, T)."""
        feats = self.feats[index]
        final = feats[..., -self.H:] if self.final is None else self.final[index]
        w = lm_head if subset is None else lm_head.index_select(0, subset)
        logits = torch.nn.functional.linear(final, w.to(final.dtype)).float()
        p = (logits - self.lse[index][..., None]).exp()
        return feats.float(), p, self.arg[index]

    def epochs(self, rng: random.Random, subset, lm_head
               ) -> Iterator[tuple[int, tuple]]:
        """(epochs completed, (ids, mask, given)), each epoch's batches shuffled anew."""
        groups = length_groups(self.lengths, self.max_tokens)
        epoch = 0
        while groups:
            rng.shuffle(groups)
            for g in groups:
                ids, mask, index = self.batch(g)
                yield epoch, (ids, mask, self.given(index, subset, lm_head))
            epoch += 1

    def all_batches(self, subset, lm_head) -> list[tuple]:
        """Every sequence once, as (ids, mask, given) batches (validation)."""
        out = []
        for g in length_groups(self.lengths, self.max_tokens):
            ids, mask, index = self.batch(g)
            out.append((ids, mask, self.given(index, subset, lm_head)))
        return out


def _argmax_lse(rows: torch.Tensor, lm_head: torch.Tensor, chunk: int = 4096
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The target's argmax and logsumexp of its logits for last hidden states ``rows``
    (n, H) -> (n,), (n,)."""
    args, lses = [rows.new_zeros(0, dtype=torch.long)], [rows.new_zeros(0).float()]
    for r in rows.split(chunk):
        logits = torch.nn.functional.linear(r, lm_head.to(r.dtype)).float()  # (n, V)
        args.append(logits.argmax(-1))
        lses.append(torch.logsumexp(logits, -1))
    return torch.cat(args), torch.cat(lses)
