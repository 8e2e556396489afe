"""Command line: ``specviz run | fetch | bench | app`` (also ``python -m specviz ...``).

Bad input ends with a one-line error on stderr and exit code 2, never a traceback. Ctrl-C
ends a command with exit code 130; during ``run`` it stops the run after its current step
(the finished steps and the run's summary are written) and starts nothing new.

One module per subcommand (run.py, fetch.py, bench_command.py, app.py), registered in
parser.COMMANDS;
common.py holds what they share and prompts.py reads prompts.
"""

from __future__ import annotations

import sys

from ..errors import one_line
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, CliError
from .parser import COMMANDS, build_parser
from .prompts import check_text_args, read_prompts
from .run import _print_summary, cmd_run

__all__ = ["COMMANDS", "CliError", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_USAGE",
           "_print_summary", "build_parser", "cmd_run", "main", "read_prompts"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and not hasattr(args, "passthrough"):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if extra:
            args.passthrough = extra  # options for the program a command starts (app)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        check_text_args(args)
        if getattr(args, "models", True):
            import transformers
            transformers.logging.set_verbosity_error()
        return args.func(args)
    except CliError as e:
        print(f"specviz: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("specviz: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # last resort: still one line, never a traceback
        print(f"specviz: error: {one_line(e)}", file=sys.stderr)
        return EXIT_FAILED
