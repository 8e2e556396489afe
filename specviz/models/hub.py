"""Hugging Face Hub sources: from the local cache, else from the Hub when it answers."""

from __future__ import annotations

import logging
import os
import socket
import threading
from contextlib import contextmanager
from urllib.parse import urlparse

from ..errors import clean
from .sources import _YES, ModelSourceError


def _from_hub(spec: str, load):
    """A Hub model from the local cache, else from the Hub if it answers within seconds;
    otherwise one line saying so (no minute of retries, no screen of warnings)."""
    with _quiet_hub():
        try:
            return load(True)
        except Exception:  # not (completely) in the cache
            pass
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _YES:
            raise ModelSourceError(f"cannot load {spec}: it is not in the local Hugging Face "
                                   "cache and HF_HUB_OFFLINE is set")
        reason = _hub_unreachable()
        if reason:
            raise ModelSourceError(f"cannot load {spec}: it is not in the local Hugging Face "
                                   f"cache and the Hub cannot be reached ({reason})")
        return load(False)


HUB_TIMEOUT_S = 5.0


def _hub_unreachable(timeout: float = HUB_TIMEOUT_S) -> str | None:
    """Why the Hub's host cannot be reached (name lookup and a TCP connection, within
    ``timeout`` seconds), or None when it can."""
    from huggingface_hub import constants
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (
        443 if url.scheme == "https" else 80)
    result: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as e:
            result.append(f"{host}: {e.strerror or clean(str(e), 80)}")

    t = threading.Thread(target=probe, daemon=True)  # a name lookup ignores socket timeouts
    t.start()
    t.join(timeout)
    return result[0] if result else f"{host}: no answer within {timeout:g} s"


@contextmanager
def _quiet_hub():
    """The Hub client's retry warnings and progress bars off while loading."""
    names = ("huggingface_hub", "urllib3", "filelock")
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)
