"""What a browser keeps across a reload: the Live page's settings in the address (query
parameters, ``live-<setting>=value``, only those that differ from the defaults) and its last
finished result in a small store on the server, keyed by a per-browser id that the address
also holds (``b=<id>``).

A reload starts a new Streamlit session, which forgets ``st.session_state``; the address
survives it. Values read back from the address are checked (a known option, a number in its
range) and an unknown or malformed one is left out, so an edited link never breaks a page.
The store holds at most ``MAX_BROWSERS`` browsers, the least recently seen dropped first.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from typing import Any, Callable

import streamlit as st

BROWSER_PARAM = "b"
PREFIX = "live-"
MAX_BROWSERS = 16  # browsers whose last Live result the server keeps
MAX_PROMPT_CHARS = 2000  # a longer prompt is not put into the address
_ID = re.compile(r"[0-9a-f]{16}")

_STORE: OrderedDict[str, dict] = OrderedDict()
_LOCK = threading.Lock()


def browser_id() -> str:
    """This browser's id, from the address (a new one is put there when it has none)."""
    bid = st.query_params.get(BROWSER_PARAM, "")
    if not _ID.fullmatch(bid):
        bid = secrets.token_hex(8)
        st.query_params[BROWSER_PARAM] = bid
    return bid


def browser_store(make: Callable[[], dict]) -> dict:
    """This browser's dict on the server (``make()`` the first time): the same object for
    every session of the browser, so a reload finds what the last session left there."""
    bid = browser_id()
    with _LOCK:
        if bid not in _STORE:
            _STORE[bid] = make()
        _STORE.move_to_end(bid)
        while len(_STORE) > MAX_BROWSERS:
            _STORE.popitem(last=False)
        return _STORE[bid]


def encode(value: Any) -> str:
    """A setting as the address writes it."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def decode(text: str, like: Any, check: Callable[[Any], bool]) -> Any:
    """A setting read from the address, typed like ``like`` and passing ``check``; None when
    it is malformed or refused."""
    try:
        if isinstance(like, bool):
            if text not in ("0", "1"):
                return None
            value: Any = text == "1"
        elif isinstance(like, int):
            value = int(text)
        elif isinstance(like, float):
            value = float(text)
        else:
            value = text
        return value if check(value) else None
    except (TypeError, ValueError):
        return None


def restore(defaults: dict[str, Any], checks: dict[str, Callable[[Any], bool]]) -> None:
    """Put the settings the address holds into this session (only where the session has no
    value yet: a fresh session after a reload)."""
    for key, default in defaults.items():
        text = st.query_params.get(PREFIX + key)
        if text is None or key in st.session_state:
            continue
        value = decode(text, default, checks.get(key, lambda v: True))
        if value is not None:
            st.session_state[key] = value


def remember(defaults: dict[str, Any]) -> None:
    """Write this session's settings into the address: those that differ from their
    defaults; a setting back at its default leaves the address."""
    for key, default in defaults.items():
        if key not in st.session_state:
            continue
        value, name = st.session_state[key], PREFIX + key
        keep = value != default and not (key == "prompt" and len(value) > MAX_PROMPT_CHARS)
        if keep and st.query_params.get(name) != encode(value):
            st.query_params[name] = encode(value)
        elif not keep and name in st.query_params:
            del st.query_params[name]
