"""``specviz bench``: measure speed against transformers' generate (measured in bench.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import common
from .common import CliError
from .prompts import _prompts, read_prompts


def register(sub) -> None:
    bench = common.model_command(sub, "bench", "measure speed against transformers' generate",
                                 cmd_bench)
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
    bench.add_argument("--no-float32-reference", action="store_true",
                       help="in bfloat16 or float16, greedy: skip the comparison with the "
                            "float32 target-only output (by default a float32 copy of the "
                            "target gives the exact reference, and where an output first "
                            "differs the target's top-2 logit gap is reported)")
    bench.add_argument("--float32-reference", default=None, metavar="FILE",
                       help="the --json of a float32 bench of the same prompts and length: "
                            "its target-only outputs are the reference of a half-precision "
                            "bench (instead of decoding them again)")


def _bench_prompts(args) -> tuple[list[str] | None, list[str | None] | None]:
    """The prompts, and from a prompts file each prompt's category (None where it has none)."""
    if args.prompts and args.prompt is None:
        categories: list[str | None] = []
        return read_prompts(args.prompts, categories), categories
    return (_prompts(args) if (args.prompt or args.prompts) else None), None


def _engines(args) -> list[str] | None:
    if not args.engines:
        return None
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    known = ("eager", "static", "graphs", "static+fused", "graphs+fused")
    bad = [e for e in engines if e not in known]
    if bad or not engines:
        raise CliError(f"--engines takes {', '.join(known)}, got {args.engines!r}")
    return engines


def cmd_bench(args) -> int:
    from ..models import DTYPES
    prompts, categories = _bench_prompts(args)
    common._precheck(args)
    _check_result_files(args)
    if args.repeats < 1:
        raise CliError("--repeats must be >= 1")
    engines = _engines(args)
    if args.trees:
        return _bench_trees(args, prompts, categories, engines)
    dtypes = [d.strip() for d in args.dtype.split(",") if d.strip()] or ["auto"]
    if bad := [d for d in dtypes if d != "auto" and d not in DTYPES]:
        raise CliError(f"unknown dtype {bad[0]!r}; use auto, {', '.join(DTYPES)}")
    results = _bench_dtypes(args, prompts, categories, engines, dtypes)
    text = "\n\n".join(r["markdown"] for r in results)
    if len(results) > 1:
        from .bench import by_dtype
        text += "\n\n" + by_dtype(results)
    print(text)
    if args.json:
        out = results[0] if len(results) == 1 else {"by_dtype": results,
                                                     "markdown": text}
        _write(args.json, json.dumps(out, indent=1))
    if args.markdown:
        _write(args.markdown, text + "\n")
    return 0


def _bench_dtypes(args, prompts, categories, engines, dtypes: list[str]) -> list[dict]:
    """One bench per dtype, in one process, one after the other, on the same prompts; a
    half-precision run is compared with the float32 reference (bench_reference)."""
    from .bench import DEFAULT_PROMPTS, run_bench
    from .bench_reference import reference_for
    reference = reference_for(args, prompts or DEFAULT_PROMPTS, dtypes)
    results = []
    for dtype in dtypes:
        pair = common.load_for(argparse.Namespace(**{**vars(args), "dtype": dtype}), prompts)
        if engines and any(e.startswith("graphs") for e in engines) and \
                pair.device.type != "cuda":
            raise CliError(f"the graphs engine needs a CUDA device; the models are on "
                           f"{pair.device}")
        cfg = common._config(args, pair, args.seed)
        r = run_bench(
            pair, cfg, prompts=prompts, repeats=args.repeats, engines=engines,
            command=common._command_line(), transformers=not args.no_transformers,
            transformers_static=args.transformers_static, categories=categories,
            progress=lambda msg, d=dtype: print(f"bench ({d}): {msg}", file=sys.stderr,
                                                flush=True))
        _compare_with_reference(reference, r, pair, cfg, r["engines"][0])
        results.append(r)
        del pair
    return results


def _compare_with_reference(reference, result: dict, pair, cfg, engine: str) -> None:
    """A float32 run gives the reference; a half-precision run is compared with it."""
    from .bench import _base
    from .bench_divergence import HALF
    if reference is None:
        return
    dtype = result["target"]["dtype"]
    if dtype == "float32" and reference.outputs is None:
        base = _base(engine) if _base(engine) in result["outputs"] else \
            f"target-only, {engine}"
        reference.take(result["outputs"][base], f"float32 {base}, in this bench")
    elif dtype in HALF:
        print(f"bench ({dtype}): comparing with the float32 reference", file=sys.stderr,
              flush=True)
        reference.attach(result, pair, cfg)


def _bench_trees(args, prompts, categories, engines: list[str] | None) -> int:
    from ..core.tree_decoder import parse_tree
    from .bench import DEFAULT_PROMPTS, run_tree_bench
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
    pair = common.load_for(args, prompts)
    cfg = common._config(args, pair, args.seed)
    if cfg.drafter not in ("model", "early-exit", "feature-head"):
        raise CliError("token trees are drafted by a drafter with a distribution q: use "
                       "--drafter model, early-exit or feature-head")
    result = run_tree_bench(pair, cfg, trees, prompts=prompts, repeats=args.repeats,
                            command=common._command_line(), fused=bool(engines) and
                            "+fused" in engines[0], categories=categories,
                            progress=lambda m: print(f"bench: {m}", file=sys.stderr,
                                                     flush=True))
    from .bench_reference import reference_for
    _compare_with_reference(reference_for(args, prompts or DEFAULT_PROMPTS, [args.dtype]),
                            result, pair, cfg, result["engine"])
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
    inputs = {"--prompts": args.prompts, "--gguf": args.gguf or os.environ.get("SPECVIZ_GGUF"),
              "--float32-reference": args.float32_reference}
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
