"""Model source strings, the embedded models' names, and the switch for custom sources."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

from ..errors import clean
from ..paths import MODELS

DEFAULT_TARGET = "embedded:smollm2-135m-instruct"
DRAFT_ASSET = MODELS / "smollm2-draft"
HEAD_ASSET = MODELS / "smollm2-feature-head"
# the Qwen2.5-Coder pair (fetched from PyPI like the SmolLM2 target: specviz.models.embedded)
QWEN_TARGET = "embedded:qwen2.5-coder-1.5b-instruct"
QWEN_DRAFT = "embedded:qwen2.5-coder-0.5b-instruct"
QWEN_HEAD_ASSET = MODELS / "qwen2.5-coder-1.5b-feature-head"

ALLOW_CUSTOM_ENV = "SPECVIZ_ALLOW_CUSTOM_MODELS"
GGUF_ENV = "SPECVIZ_GGUF"
CACHE_ENV = "SPECVIZ_CACHE"

Progress = Callable[[str, float | None], None]


class ModelSourceError(ValueError):
    """A model source that cannot be used; the message says why, in one line."""


def _quiet(message: str, fraction: float | None = None) -> None:
    pass


# embedded models made in memory (specviz.models.tiny): no download, gibberish text
TINY = ("tiny-random-target", "tiny-random-draft", "tiny-random-qwen2-target",
        "tiny-random-qwen2-draft")
# embedded models that are drafts (listed as drafts, not as targets)
DRAFT_NAMES = ("smollm2-draft", "qwen2.5-coder-0.5b-instruct", "tiny-random-draft",
               "tiny-random-qwen2-draft")


def embedded_names() -> list[str]:
    names = ["smollm2-135m-instruct", "qwen2.5-coder-1.5b-instruct",
             "qwen2.5-coder-0.5b-instruct", *TINY]
    if (DRAFT_ASSET / "config.json").exists():
        names.insert(1, "smollm2-draft")
    return names


def embedded_targets() -> list[str]:
    """The embedded models offered as targets (source strings)."""
    return [f"embedded:{n}" for n in embedded_names() if n not in DRAFT_NAMES]


def embedded_drafts() -> list[str]:
    """The embedded models offered as drafts (source strings)."""
    return [f"embedded:{n}" for n in embedded_names() if n in DRAFT_NAMES]


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "specviz")


_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off")


def custom_sources_allowed() -> bool:
    """Whether hf: ids and local directories may be loaded: $SPECVIZ_ALLOW_CUSTOM_MODELS unset
    or one of 1/true/yes/on. Any other value turns them off (fail closed)."""
    value = os.environ.get(ALLOW_CUSTOM_ENV)
    return value is None or value.strip().lower() in _YES


def custom_sources_switch() -> str | None:
    """A line about $SPECVIZ_ALLOW_CUSTOM_MODELS when it holds a value that is neither yes nor
    no (custom sources are then off); None when it is unset or clear."""
    value = os.environ.get(ALLOW_CUSTOM_ENV)
    if value is None or value.strip().lower() in _YES + _NO:
        return None
    return (f"{ALLOW_CUSTOM_ENV}={clean(value, 40)!r} is not one of {'/'.join(_YES)} or "
            f"{'/'.join(_NO)}; custom model sources stay off")


def parse_source(spec: str) -> tuple[str, str]:
    """'embedded:NAME' | 'hf:ORG/NAME' | a local directory -> (kind, value)."""
    spec = (spec or "").strip()
    if not spec:
        raise ModelSourceError("no model source given")
    if spec.startswith("embedded:"):
        name = spec.split(":", 1)[1]
        if name not in embedded_names():
            raise ModelSourceError(f"unknown embedded model {name!r}; available: "
                                   f"{', '.join(embedded_names())}")
        return "embedded", name
    if spec.startswith("hf:"):
        repo = spec[3:]
        if not _HUB_ID.fullmatch(repo) or ".." in repo or "--" in repo or len(repo) > 96:
            raise ModelSourceError(f"{clean(spec, 60)!r} is not a Hub id: use hf:ORG/NAME "
                                   "(letters, digits, '-', '_' and '.')")
        if Path(repo).exists():  # transformers would load the folder, not the Hub's model
            raise ModelSourceError(f"{spec!r} names a local path ({repo}); give a model folder "
                                   "as the source itself")
        return "hf", repo
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelSourceError(f"{path} holds no config.json (not a transformers model)")
        return "local", str(path)
    raise ModelSourceError(f"unknown model source {spec!r}: give a local model directory, "
                           "hf:ORG/NAME or embedded:NAME "
                           f"(embedded: {', '.join(embedded_names())})")


_HUB_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?/"
                     r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
