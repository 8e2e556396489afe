"""``specviz bench``: measure speed against transformers' generate (measured in bench.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import (
    CliError,
    _check_prompt_sizes,
    _command_line,
    _common_model_args,
    _config,
    _load,
    _precheck,
)
from .prompts import _prompts


def register(sub) -> None:
    bench = sub.add_parser("bench", help="measure speed against transformers' generate")
    _common_model_args(bench)
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--engines", default=None,
                       help="comma-separated engines to compare: eager, static, graphs, and "
                            "static+fused or graphs+fused (their layers, and on graphs a token "
                            "tree's draft phase, compiled by torch.compile) (default: "
                            "eager,graphs on a GPU, eager on a CPU)")
    bench.add_argument("--json", default=None, metavar="FILE", help="write results as JSON")
    bench.add_argument("--no-transformers", action="store_true",
                       help="leave out transformers' generate (faster sweeps)")
    bench.add_argument("--transformers-static", action="store_true",
                       help="add transformers' generate with its static cache, which it "
                            "compiles on the first call (a minute or more on a GPU)")
    bench.add_argument("--trees", default=None, metavar="LIST",
                       help="compare the chain with token trees instead of engines: "
                            "space-separated trees, e.g. 'chain 2-2-1 3-2-1 dynamic:16:6' "
                            "(dashes or commas between a static tree's numbers)")
    bench.add_argument("--markdown", default=None, metavar="FILE",
                       help="write the table as markdown")
    bench.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from .bench import by_dtype, run_bench
    prompts = _prompts(args) if (args.prompt or args.prompts) else None
    _precheck(args)
    _check_result_files(args)
    if args.repeats < 1:
        raise CliError("--repeats must be >= 1")
    engines = None
    if args.engines:
        engines = [e.strip() for e in args.engines.split(",") if e.strip()]
        known = ("eager", "static", "graphs", "static+fused", "graphs+fused")
        bad = [e for e in engines if e not in known]
        if bad or not engines:
            raise CliError(f"--engines takes {', '.join(known)}, got {args.engines!r}")
    if args.trees:
        return _bench_trees(args, prompts, engines)
    from ..models import DTYPES
    dtypes = [d.strip() for d in args.dtype.split(",") if d.strip()] or ["auto"]
    if bad := [d for d in dtypes if d != "auto" and d not in DTYPES]:
        raise CliError(f"unknown dtype {bad[0]!r}; use auto, {', '.join(DTYPES)}")
    results = []
    for dtype in dtypes:  # one process: the dtypes run one after the other, same prompts
        pair = _load(argparse.Namespace(**{**vars(args), "dtype": dtype}))
        if prompts:
            _check_prompt_sizes(pair, prompts)
        if engines and any(e.startswith("graphs") for e in engines) and \
                pair.device.type != "cuda":
            raise CliError(f"the graphs engine needs a CUDA device; the models are on "
                           f"{pair.device}")
        cfg = _config(args, pair, args.seed)
        results.append(run_bench(
            pair, cfg, prompts=prompts, repeats=args.repeats, engines=engines,
            command=_command_line(), transformers=not args.no_transformers,
            transformers_static=args.transformers_static,
            progress=lambda msg, d=dtype: print(f"bench ({d}): {msg}", file=sys.stderr,
                                                flush=True)))
        del pair
    text = "\n\n".join(r["markdown"] for r in results)
    if len(results) > 1:
        text += "\n\n" + by_dtype(results)
    print(text)
    if args.json:
        out = results[0] if len(results) == 1 else {"by_dtype": results,
                                                     "markdown": text}
        _write(args.json, json.dumps(out, indent=1))
    if args.markdown:
        _write(args.markdown, text + "\n")
    return 0


def _bench_trees(args, prompts, engines: list[str] | None) -> int:
    from ..core.tree_decoder import parse_tree
    from .bench import run_tree_bench
    trees = args.trees.split()
    if engines not in (None, ["graphs"], ["static"], ["graphs+fused"], ["static+fused"]):
        raise CliError("--trees runs every method on one engine: graphs on a GPU, static "
                       "elsewhere, or the same with +fused")
    for t in trees:
        try:
            parse_tree(t)
        except ValueError as e:
            raise CliError(str(e)) from None
    if "," in args.dtype:
        raise CliError("--trees measures one dtype at a time")
    pair = _load(args)
    if prompts:
        _check_prompt_sizes(pair, prompts)
    cfg = _config(args, pair, args.seed)
    if cfg.drafter not in ("model", "early-exit", "feature-head"):
        raise CliError("token trees are drafted by a drafter with a distribution q: use "
                       "--drafter model, early-exit or feature-head")
    result = run_tree_bench(pair, cfg, trees, prompts=prompts, repeats=args.repeats,
                            command=_command_line(), fused=bool(engines) and "+fused" in
                            engines[0],
                            progress=lambda m: print(f"bench: {m}", file=sys.stderr,
                                                     flush=True))
    print(result["markdown"])
    if args.json:
        _write(args.json, json.dumps(result, indent=1))
    if args.markdown:
        _write(args.markdown, result["markdown"] + "\n")
    return 0


def _check_result_files(args) -> None:
    """--json and --markdown, checked before the (long) measurement: a file name, not a
    directory, not a file the bench reads, not both the same file."""
    import os

    from .output import _same_file
    inputs = {"--prompts": args.prompts, "--gguf": args.gguf or os.environ.get("SPECVIZ_GGUF")}
    names = [(flag, value) for flag, value in (("--json", args.json),
                                               ("--markdown", args.markdown)) if value is not None]
    for flag, value in names:
        if not value.strip():
            raise CliError(f"{flag} is empty; give a file name")
        path = Path(value)
        if path.is_dir():
            raise CliError(f"{flag} {value} is a directory; give a file name")
        for name, source in inputs.items():
            if _same_file(path, source):
                raise CliError(f"{flag} {value} is the {name} file the bench reads; give "
                               "another file name")
    if len(names) == 2 and os.path.realpath(names[0][1]) == os.path.realpath(names[1][1]):
        raise CliError("--json and --markdown name the same file")


def _write(path: str, text: str) -> None:
    """A results file, written beside its place and moved in (never half written)."""
    import os
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file():  # /dev/null, /dev/stdout, a pipe
        try:
            with open(target, "w", encoding="utf-8") as f:
                f.write(text)
            return
        except OSError as e:
            raise CliError(f"cannot write {path}: {e.strerror or e}") from None
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CliError(f"cannot write {path}: {e.strerror or e} (the results are printed "
                       "above)") from None
