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
    """A transformers causal LM with its own DynamicCache. ``key_pos`` (the cache slots a run
    may use) and ``shape.group`` let a token tree build its attention bias as for the static
    engine (specviz.core.tree)."""

    def __init__(self, model: torch.nn.Module, max_len: int = 0):
        self.model = model
        self.cache = DynamicCache(config=model.config)
        self.embed = model.get_input_embeddings().weight
        self.key_pos = torch.arange(max_len, device=self.embed.device)
        self.shape = _OneGroup()
        self.feature_layers = None  # hidden states written as features (None: the last)

    def forward(self, ids: torch.Tensor, pos: torch.Tensor, logits: str = "all",
                features: torch.Tensor | None = None, slots: torch.Tensor | None = None,
                bias: torch.Tensor | None = None) -> torch.Tensor | None:
        """ids (T,), pos (T,) -> logits (T, V), (1, V) for "last", or None.

        Rows go to the cache after its first ``slots[0]`` entries (default: the first
        position), so ``slots`` must be consecutive. A token tree's pass gives ``bias``
        (T, >= slots[0] + T) additive, 0 where a row may attend (rotary positions ``pos`` by
        depth); without it the pass is causal. A position repeated at the start (a re-read
        clamped at 0) is fed once."""
        first = (pos if slots is None else slots)[:2].tolist()  # a host read: not captured
        start = first[0]
        if slots is None and first[1:] == [start]:  # a re-read clamped at position 0
            last = torch.cat([pos[1:] != pos[:-1], pos.new_ones(1, dtype=torch.bool)])
            ids, pos = ids[last], pos[last]
        crop_cache(self.cache, start)
        mask = None
        if bias is not None:
            T = ids.shape[0]
            floor = torch.finfo(self.embed.dtype).min
            mask = torch.where(bias[:T, :start + T] == 0, 0.0, floor).to(self.embed.dtype)
            mask = mask[None, None]  # (1, 1, T, start + T): used as given
        out = self.model(input_ids=ids[None], position_ids=pos[None], attention_mask=mask,
                         use_cache=True, past_key_values=self.cache,
                         logits_to_keep=0 if logits == "all" else 1,
                         output_hidden_states=features is not None)
        if features is not None:  # (T, H) after the final norm, or the layers a head reads
            hs, taps = out.hidden_states, self.feature_layers
            features.copy_(hs[-1][0] if taps is None else
                           torch.cat([hs[j][0] for j in taps], dim=-1))
        return None if logits == "none" else out.logits[0]

    def move_kv(self, src: torch.Tensor, dst: torch.Tensor) -> None:
        """Keys and values at cache slots ``src`` copied to ``dst`` in every layer (read
        first), as ``StaticLlama.move_kv``: a tree's accepted path after the prefix."""
        for layer in self.cache.layers:
            for name in ("keys", "values"):
                cache = getattr(layer, name)  # (1, heads, length, head_dim)
                cache.index_copy_(2, dst, cache.index_select(2, src))


class _OneGroup:
    group = 1  # CachedLM reads the first T rows of a bias: one row per query


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
