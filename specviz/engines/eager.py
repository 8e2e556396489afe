"""transformers' forward with a DynamicCache, behind the LM interface of the decoding core.

The reference path: it runs any causal LM transformers can load. Positions come as a device
tensor (as the static engine takes them); the cache is cut back to the first position fed
before each pass, so entries past the committed tokens never leak into attention.
"""

from __future__ import annotations

import copy

import torch
from transformers import DynamicCache


def crop_cache(cache: DynamicCache, keep: int) -> None:
    """Cut a KV cache back to its first ``keep`` positions."""
    extra = cache.get_seq_length() - keep
    if extra > 0:
        cache.crop(-extra)  # a negative count removes that many (positive meanings vary)


class CachedLM:
    """A transformers causal LM with its own DynamicCache."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.cache = DynamicCache(config=model.config)

    def forward(self, ids: torch.Tensor, pos: torch.Tensor, logits: str = "all",
                features: torch.Tensor | None = None) -> torch.Tensor | None:
        """ids (T,), pos (T,) consecutive -> logits (T, V), (1, V) for "last", or None."""
        crop_cache(self.cache, int(pos[0]))  # a host read: this path is not captured
        out = self.model(input_ids=ids[None], position_ids=pos[None], use_cache=True,
                         past_key_values=self.cache, logits_to_keep=0 if logits == "all" else 1,
                         output_hidden_states=features is not None)
        if features is not None:
            features.copy_(out.hidden_states[-1][0])  # (T, H), after the final norm
        return None if logits == "none" else out.logits[0]


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
