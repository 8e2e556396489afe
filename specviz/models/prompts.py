"""Prompt size against the target's context, checked before tokenizing."""

from __future__ import annotations

import json
import math
import weakref

from ..limits import MAX_PROMPT_CHARS


def check_prompt_size(tokenizer, prompt: str, context_length: int) -> None:
    """Refuse (ValueError, one line), before tokenizing, a prompt that cannot fit the context.

    A prompt over MAX_PROMPT_CHARS is refused outright. For a tokenizer whose tokens each
    cover at most L characters of the text (max_chars_per_token), a prompt of n characters
    has at least n / L tokens, so n > L * (context - 1) cannot fit; whitespace at its ends is
    not counted (a chat template may trim it). Tokenizing such a prompt could take gigabytes.
    """
    n = len(prompt)
    if n > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt has {n:,} characters; at most {MAX_PROMPT_CHARS:,} are "
                         "accepted")
    per_token = max_chars_per_token(tokenizer)
    core = len(prompt.strip())
    if per_token and core > per_token * (context_length - 1):
        raise ValueError(f"the prompt has {n:,} characters, so at least "
                         f"{math.ceil(core / per_token):,} tokens (a token of this tokenizer "
                         f"covers at most {per_token} characters); the target's context holds "
                         f"{context_length}")


_PER_TOKEN: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
# normalizers and pre-tokenizers that never drop or merge characters of the text
_KEEPS_TEXT = {"Prepend", "Lowercase", "NFD", "NFKD", "ByteLevel", "Metaspace", "Digits",
               "Punctuation", "Split"}


def max_chars_per_token(tokenizer) -> int | None:
    """The most characters of text one token can stand for (its longest vocabulary entry),
    or None when the tokenizer's normalizer or pre-tokenizer may drop characters (then no
    bound follows). Computed once per tokenizer."""
    try:
        return _PER_TOKEN[tokenizer]
    except (KeyError, TypeError):
        pass
    bound = None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and all(_keeps_text(_spec(part)) for part in
                                   (backend.normalizer, backend.pre_tokenizer)):
        bound = max((len(t) for t in tokenizer.get_vocab()), default=None)
    try:
        _PER_TOKEN[tokenizer] = bound
    except TypeError:  # cannot be weakly referenced: computed again next time
        pass
    return bound


def _spec(part) -> dict | None:
    """A tokenizers normalizer or pre-tokenizer as its JSON description."""
    return None if part is None else json.loads(part.__getstate__())


def _keeps_text(part: dict | None) -> bool:
    if part is None:
        return True
    kind = part.get("type")
    if kind == "Sequence":
        inner = part.get("normalizers", part.get("pretokenizers", []))
        return all(_keeps_text(p) for p in inner)
    if kind == "Split":
        return part.get("behavior") != "Removed"
    if kind == "Replace":
        pattern = (part.get("pattern") or {}).get("String")
        return pattern is not None and len(part.get("content", "")) >= len(pattern)
    return kind in _KEEPS_TEXT
