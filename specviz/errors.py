"""One way to say an error in one line, for the CLI, the app and the loaders alike."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f]")
_BREAKS = re.compile(r"[\n\x0b\x0c\r\x1c-\x1e\x85\u2028\u2029]+")


def clean(text: str, limit: int = 300) -> str:
    """``text`` as one line: line breaks become spaces, terminal escapes and other control
    characters go, and it is cut to ``limit`` characters."""
    return _CONTROL.sub("", _BREAKS.sub(" ", text)).strip()[:limit]


def one_line(e: BaseException, limit: int = 300, with_type: bool = True) -> str:
    """``Type: first line of the message`` with terminal escapes and control characters
    removed, cut to ``limit`` characters; the type alone when the message is empty."""
    text = str(e).strip()
    first = clean(text.splitlines()[0], limit) if text else ""
    if not with_type:
        return first or type(e).__name__
    return f"{type(e).__name__}: {first}" if first else type(e).__name__
