"""The models of a run per engine: which engine runs (resolve_engine), and the target's
forward, the drafter, the device state and the phases for it (eager: fresh for every run;
static and graphs: a workspace cached per shape of run, so CUDA graphs are captured once)."""

from __future__ import annotations

import threading
import weakref
from typing import Callable

import torch

from ..core.drafters import FeatureHeadDrafter, ModelDrafter, PromptLookupDrafter
from ..core.state import RunState
from ..decode_config import DecodeConfig
from ..engines import skinny
from ..engines.eager import CachedLM, truncated_model
from ..engines.phases import EagerPhases, GraphPhases
from ..engines.static import (
    StaticLlama,
    Unsupported,
    bucket,
    check_against,
    check_supported,
    fused_layers,
    stacked_layers,
)
from ..models.feature_head import StaticHead


def resolve_engine(pair, config: DecodeConfig, mode: str) -> tuple[str, str]:
    """Which engine runs: ("eager" | "static" | "graphs", why). Raises ValueError when an
    engine asked for by name cannot run this pair."""
    want = config.engine
    tree = mode == "speculative" and config.tree_shape is not None
    if want == "eager":
        return "eager", "asked for"
    cuda = pair.device.type == "cuda"
    models = [pair.target]
    if mode == "speculative" and config.drafter == "model" and pair.draft is not None:
        models.append(pair.draft)
    try:
        for m in models:
            check_supported(m)
    except Unsupported as e:
        if want == "auto":
            return "eager", str(e)
        raise ValueError(str(e)) from None
    if tree and want == "auto":
        return ("graphs", "token tree, CUDA device") if cuda else ("static", "token tree")
    if want == "graphs" and not cuda:
        raise ValueError(f"CUDA graphs need a CUDA device; this pair is on {pair.device}")
    if want == "auto":
        return ("graphs", "CUDA device") if cuda else ("eager", "no CUDA device")
    return want, "asked for"


def _engine_info(pair, path: str, why: str) -> dict:
    rows = (path != "eager" and pair.device.type == "cuda" and skinny.available()
            and pair.target.dtype == torch.float32)  # float32 few-row products on Triton
    return {"path": path, "cuda_graphs": path == "graphs", "static_cache": path != "eager",
            "row_kernel": rows, "fused": path != "eager" and fused_layers(), "why": why}


# ---------------------------------------------------------------- the models per engine

def _eager_parts(pair, config: DecodeConfig, kind: str | None, max_len: int):
    """transformers' forward with dynamic caches: fresh for every run."""
    s = config.sampling
    drafter = None
    if kind == "model":
        drafter = ModelDrafter(CachedLM(pair.draft, max_len), s)
    elif kind == "early-exit":
        drafter = ModelDrafter(CachedLM(truncated_model(pair.target, config.early_exit_layers),
                                        max_len), s)
    elif kind == "prompt-lookup":
        drafter = PromptLookupDrafter()
    elif kind == "feature-head":
        drafter = FeatureHeadDrafter(StaticHead(pair.head, pair.target, max_len), s)
    state = RunState(max_len, pair.target.config.vocab_size, pair.device,
                     _hidden(pair) if kind == "feature-head" else None)
    target = CachedLM(pair.target, max_len)
    if kind == "feature-head":  # the hidden states the head reads
        target.feature_layers = pair.head.feature_taps
    return target, drafter, state, EagerPhases(), None


def _hidden(pair) -> int:
    """Width of the features a head reads (its target's hidden size per layer read)."""
    return getattr(pair.head, "feature_width", pair.target.config.hidden_size)


class _Workspace:
    """The static engine's state for one shape of run, reused by later runs of that shape
    (so CUDA graphs are captured once): the static forwards, the device buffers, the graphs.
    ``lock`` keeps two runs from sharing it at once."""

    def __init__(self, target: StaticLlama, draft: StaticLlama | StaticHead | None,
                 vocab: int, graphs: bool):
        self.target, self.draft = target, draft
        hidden = draft.feature_width if isinstance(draft, StaticHead) else None
        if isinstance(draft, StaticHead):  # the hidden states the head reads
            target.feature_layers = draft.feature_taps
        self.state = RunState(target.max_len, vocab, target.embed.device, hidden)
        self.phases = GraphPhases(self._save_p, fused_layers()) if graphs else EagerPhases()
        self.lock = threading.Lock()

    def _save_p(self) -> Callable[[], None]:
        saved = self.state.P.clone()
        return lambda: self.state.P.copy_(saved)


# model -> {shape key: workspace}; model -> its stacked layers; models checked once
_WORKSPACES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_LAYERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_CHECKED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _layers(model) -> list:
    if model not in _LAYERS:
        _LAYERS[model] = stacked_layers(model)
    return _LAYERS[model]


def _static_lm(model, n_layers: int | None, max_len: int) -> StaticLlama:
    layers = _layers(model)[:n_layers] if n_layers else _layers(model)
    lm = StaticLlama(model, layers, max_len)
    if n_layers is None and model not in _CHECKED:
        check_against(model, lm)
        _CHECKED[model] = True
    return lm


def _static_parts(pair, config: DecodeConfig, kind: str | None, max_len: int, graphs: bool):
    """A free workspace of the right shape (cached), or a private one if it is in use."""
    draft_model = pair.draft if kind == "model" else None
    n_layers = config.early_exit_layers if kind == "early-exit" else None
    max_len = bucket(max_len)
    key = (id(draft_model), id(pair.head) if kind == "feature-head" else None, kind, n_layers,
           max_len, graphs, fused_layers(), skinny.enabled())
    spaces = _WORKSPACES.setdefault(pair.target, {})
    ws = spaces.get(key)
    release = None
    if ws is None or not ws.lock.acquire(blocking=False):
        draft = None
        if draft_model is not None:
            draft = _static_lm(draft_model, None, max_len)
        elif kind == "feature-head":
            draft = StaticHead(pair.head, pair.target, max_len)
        elif n_layers is not None:  # its range was checked by check_drafter
            draft = StaticLlama(pair.target, _layers(pair.target)[:n_layers], max_len)
        fresh = _Workspace(_static_lm(pair.target, None, max_len), draft,
                           pair.target.config.vocab_size, graphs)
        if ws is None:  # the first of its shape: cache it
            spaces[key] = ws = fresh
            ws.lock.acquire()
        else:  # the cached one is busy (another run): a private one
            ws = fresh
            fresh.lock.acquire()
    release = ws.lock.release
    s = config.sampling
    if isinstance(ws.draft, StaticHead):
        drafter = FeatureHeadDrafter(ws.draft, s)
    elif ws.draft is not None:
        drafter = ModelDrafter(ws.draft, s)
    else:
        drafter = PromptLookupDrafter() if kind == "prompt-lookup" else None
    return ws.target, drafter, ws.state, ws.phases, release
