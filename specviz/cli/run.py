"""``specviz run``: decode prompts and write a trace."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from ..errors import one_line
from .common import (
    EXIT_INTERRUPTED,
    CliError,
    _command_line,
    _config,
    _precheck,
    load_for,
    model_command,
)
from .output import Output
from .prompts import _prompts


def register(sub) -> None:
    run = model_command(sub, "run", "decode prompts and write a trace (JSON Lines)", cmd_run)
    run.add_argument("--baseline", action="store_true",
                     help="measure the speed-up: both paths warmed up, then the speculative "
                          "and the target-only decode alternated for --rounds rounds; the "
                          "median round's pair goes into the file, linked, with every "
                          "round's tokens/s")
    run.add_argument("--rounds", type=int, default=3, metavar="N",
                     help="rounds of a --baseline measurement (default 3; 1: one sample, "
                          "no spread and no verdict)")
    run.add_argument("--top-alternatives", type=int, default=5, metavar="K",
                     help="top-k of p and q recorded per drafted position (default 5)")
    run.add_argument("--out", default=None,
                     help="trace file: .jsonl (JSON Lines) or .parquet (default "
                          "traces/run-TIME.jsonl); an existing file needs --force")
    run.add_argument("--force", action="store_true",
                     help="replace an existing trace file named by --out")
    run.add_argument("--label", default="", help="a label stored in each run record")
    run.add_argument("--engine", choices=["auto", "eager", "static", "graphs"], default="auto",
                     help="auto (default): CUDA graphs on a GPU, else transformers' eager "
                          "forward; static: the static-cache engine without graphs")
    run.add_argument("--verifier", choices=["exact", "correction-from-p", "accept-high-q"],
                     default="exact",
                     help="acceptance rule (default exact); the others are deliberately wrong "
                          "rules, for teaching how the output checks catch them")


def cmd_run(args) -> int:
    prompts = _prompts(args)
    _precheck(args)
    output = Output(args.out, force=args.force,
                    inputs=(args.prompts, args.gguf or os.environ.get("SPECVIZ_GGUF")))
    out = output.shown
    pair = load_for(args, prompts)
    writer = output.open()
    rows: list = []
    stop = _Interrupt()
    try:
        try:
            with stop:
                _decode_all(args, pair, prompts, writer, out, rows, stop)
        finally:
            writer.close()
            output.finish()  # the finished work is put in place, whatever stopped the run
    except OSError as e:  # the disk is full, the file went away, ...
        raise CliError(f"cannot write {out}: {e.strerror or one_line(e)}"
                       + (f" ({len(rows)} finished runs were written before)" if rows else "")
                       ) from None
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

    from ..decoding import DecodeError, speculative_decode
    _warm_up_graphs(args, pair, prompts[0], stop)
    with writer:
        for i, prompt in enumerate(prompts):
            cfg = _config(args, pair, args.seed + i)
            if stop.asked:
                return
            if args.baseline:
                _measure_one(args, pair, prompt, cfg, i, len(prompts), writer, out, rows,
                             stop)
                continue
            for mode, fn in (("speculative", speculative_decode),):
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


def _measure_one(args, pair, prompt: str, cfg, i: int, n: int, writer, out: Path,
                 rows: list, stop: _Interrupt) -> None:
    """A --baseline measurement of one prompt (specviz.measure): the kept pair is written
    when it is done (a stopped measurement writes the speculative run it had)."""
    from ..decoding import DecodeError
    from ..measure import measure_speedup
    if args.rounds < 1:
        raise CliError(f"--rounds must be at least 1, got {args.rounds}")

    def progress(what: str, fraction: float) -> None:
        print(f"prompt {i + 1}/{n}: {what} ({fraction:.0%})", file=sys.stderr, flush=True)
    try:
        m = measure_speedup(pair, prompt, cfg, rounds=args.rounds, should_stop=stop,
                            on_progress=progress, label=args.label,
                            command=_command_line())
    except ValueError as e:
        raise CliError(str(e)) from None
    except DecodeError as e:
        if e.partial is not None:
            _write(writer, e.partial)
        raise CliError(f"{e} (the failed run's finished steps are kept in {out})") from None
    for mode, t in (("speculative", m.spec), ("target-only", m.base)):
        if t is not None:
            _write(writer, t)
            rows.append((i, mode, t))


def _write(writer, trace) -> None:
    """Every record of ``trace`` into ``writer``."""
    writer.write(trace.run)
    for s in trace.steps:
        writer.write(s)
    if trace.summary is not None:
        writer.write(trace.summary)


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
    from ..measure import speedup_of
    base = {i: t for i, m, t in rows if m == "target-only"}
    print(f"{'prompt':>6} {'mode':<12} {'tokens':>6} {'steps':>5} {'alpha_hat':>9} "
          f"{'tok/step':>8} {'tok/s':>8} {'speedup':>7}  stop")
    for i, mode, t in rows:
        s = t.summary
        a = "-" if s.alpha_hat is None else f"{s.alpha_hat:.3f}"
        m = "-" if s.mean_accepted_length is None else f"{s.mean_accepted_length:.2f}"
        sp, measured = "-", None
        if (mode == "speculative" and i in base and base[i].summary.tokens_per_s > 0
                and _comparable(t, base[i])):
            measured = speedup_of(t, base[i])
            sp = f"{measured.median:.2f}x"
        print(f"{i + 1:>6} {mode:<12} {s.n_emitted:>6} {s.n_steps:>5} {a:>9} {m:>8} "
              f"{s.tokens_per_s:>8.2f} {sp:>7}  {s.stop_reason}")
        if measured is not None:
            print(f"{'':>6} speed-up {measured.describe().replace('×', 'x')}; median tok/s: "
                  f"speculative {measured.spec_tokens_per_s:.2f}, target alone "
                  f"{measured.base_tokens_per_s:.2f}")
    print(f"trace written to {out}")


