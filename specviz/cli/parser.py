"""The command line's parser: one module per subcommand, listed in COMMANDS."""

from __future__ import annotations

import argparse
import importlib

from .common import _Parser

# A subcommand is a module of this package with ``register(sub)``, which adds its parser to
# the subparsers ``sub`` and sets ``func`` (the function that runs it) as a default, and
# ``models=False`` when it loads no model (transformers is then not imported). Adding a
# subcommand is adding its line here.
COMMANDS = [
    "run",
    "fetch",
    "bench_command",
    "app",
    "runs",
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="specviz", description="Instrumented speculative decoding.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser
