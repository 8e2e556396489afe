"""Drafters: who proposes the gamma tokens the target verifies.

All share one small interface (after transformers' CandidateGenerator):
``get_candidates(seq, gamma, ...)`` proposes tokens, ``update(n_committed)`` is told how long the
committed sequence now is so that caches can be cut back, ``reset()`` starts a new sequence.
``has_probs`` says whether the drafter gives a draft distribution q; prompt lookup does not.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from .sampling import Sampling, choose, logits_to_probs

DRAFTERS = ("model", "prompt-lookup", "early-exit")


@dataclass
class Candidates:
    ids: torch.Tensor  # (k,) int64 on the model device, k <= gamma
    q_probs: torch.Tensor | None  # (k, vocab) draft distributions; None without q
    forward_passes: int = 0


class ModelDrafter:
    """A causal LM sharing the target's tokenizer, with its own KV cache."""

    has_probs = True
    name = "model"

    def __init__(self, model: torch.nn.Module, sampling: Sampling):
        self.model = model
        self.sampling = sampling
        self.reset()

    def reset(self) -> None:
        self.cache = DynamicCache(config=self.model.config)
        self.cached = 0  # tokens of the committed sequence held in the cache

    @torch.inference_mode()
    def get_candidates(self, seq: torch.Tensor, gamma: int, generator: torch.Generator | None,
                       stop_below: float | None = None) -> Candidates:
        """seq (n,) committed tokens. Drafts up to gamma tokens one at a time.

        With ``stop_below`` (confidence policy) drafting stops after a token whose top draft
        probability is below it; that check reads the value on the host.
        """
        new = seq[self.cached:][None, :]  # (1, n - cached)
        ids, probs = [], []
        for _ in range(gamma):
            logits = self.model(input_ids=new, past_key_values=self.cache, use_cache=True,
                                logits_to_keep=1).logits[0, -1]  # (V,)
            q = logits_to_probs(logits, self.sampling)  # (V,)
            tok = choose(q, self.sampling, generator)  # ()
            ids.append(tok)
            probs.append(q)
            new = tok.view(1, 1)
            if stop_below is not None and float(q.max()) < stop_below:
                break
        # the cache now holds seq and every draft but the last
        self.cached = seq.shape[0] + len(ids) - 1 if ids else self.cached
        if not ids:
            return Candidates(seq.new_zeros(0), None, 0)
        return Candidates(torch.stack(ids), torch.stack(probs), len(ids))

    def update(self, n_committed: int) -> None:
        """Cut the cache back to the committed prefix (all but its last token)."""
        keep = min(self.cached, n_committed - 1)
        crop_cache(self.cache, keep)
        self.cached = keep


def crop_cache(cache: DynamicCache, keep: int) -> None:
    """Cut a KV cache back to its first ``keep`` positions."""
    extra = cache.get_seq_length() - keep
    if extra > 0:
        cache.crop(-extra)  # a negative count removes that many (positive meanings vary)


class EarlyExitDrafter(ModelDrafter):
    """The target's first N layers plus its final norm and head, with a cache of its own."""

    name = "early-exit"

    def __init__(self, target: torch.nn.Module, n_layers: int, sampling: Sampling):
        check_early_exit_layers(target, n_layers)
        super().__init__(truncated_model(target, n_layers), sampling)


def check_early_exit_layers(target: torch.nn.Module, n_layers: int) -> None:
    """Early exit keeps 1 to all-but-one of the target's layers; raise ValueError otherwise."""
    total = target.config.num_hidden_layers
    if not 1 <= n_layers < total:
        raise ValueError(f"early exit needs 1 to {total - 1} layers, got {n_layers}")


def truncated_model(target: torch.nn.Module, n_layers: int) -> torch.nn.Module:
    """A view of ``target`` that runs only its first n_layers; weights are shared, not copied."""
    shallow = copy.copy(target)
    shallow._modules = dict(target._modules)
    inner = copy.copy(target.model)
    inner._modules = dict(target.model._modules)
    inner._modules["layers"] = torch.nn.ModuleList(list(target.model.layers)[:n_layers])
    config = copy.deepcopy(target.config)
    config.num_hidden_layers = n_layers
    if getattr(config, "layer_types", None):
        config.layer_types = config.layer_types[:n_layers]
    inner.config = config
    shallow._modules["model"] = inner
    shallow.config = config
    return shallow


class PromptLookupDrafter:
    """Drafts by copying: find the latest earlier occurrence of the last n-gram and propose
    the tokens that followed it (Saxena 2023; transformers' prompt lookup decoding).

    No model, no q: the verifier treats each proposal as certain (q = one-hot).
    """

    has_probs = False
    name = "prompt-lookup"

    def __init__(self, max_ngram: int = 3, min_ngram: int = 2):
        self.max_ngram, self.min_ngram = max_ngram, min_ngram

    def reset(self) -> None:
        pass

    def update(self, n_committed: int) -> None:
        pass

    def get_candidates(self, seq: torch.Tensor, gamma: int, generator: torch.Generator | None,
                       stop_below: float | None = None, seq_list: list[int] | None = None
                       ) -> Candidates:
        tokens = seq_list if seq_list is not None else seq.tolist()
        found = lookup(tokens, gamma, self.max_ngram, self.min_ngram)
        return Candidates(torch.tensor(found, dtype=torch.long, device=seq.device), None, 0)


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
