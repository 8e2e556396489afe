"""What every subcommand shares: the one-line error, exit codes, the model arguments and loading."""

from __future__ import annotations

import argparse
import sys

from ..limits import (
    GAMMA_MAX,
    GAMMA_MIN,
    MAX_PROMPT_CHARS,
    TEMPERATURE_MAX,
    TEMPERATURE_MIN,
    TOP_P_MIN,
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
                        "(default: embedded:smollm2-135m-instruct; the larger pair: "
                        "embedded:qwen2.5-coder-1.5b-instruct, whose draft is the 0.5B)")
    p.add_argument("--draft", default="default",
                   help="draft model source (default: the shipped draft of an embedded target, "
                        "if any); 'none' for no draft model")
    p.add_argument("--drafter", choices=["model", "feature-head", "prompt-lookup", "early-exit"],
                   default=None,
                   help="who drafts (default: the draft model if loaded, else prompt lookup)")
    p.add_argument("--early-exit-layers", type=int, default=4, metavar="N")
    p.add_argument("--draft-int8", action="store_true",
                   help="the draft model's linear layers with int8 weights (CPU, eager engine): "
                        "it reads a quarter of the bytes; output unchanged, acceptance may drop")
    p.add_argument("--gguf", default=None,
                   help="path to the embedded target's GGUF, for offline machines "
                        "(SmolLM2: also $SPECVIZ_GGUF; the Qwen2.5-Coder pair: "
                        "$SPECVIZ_GGUF_QWEN_1_5B and $SPECVIZ_GGUF_QWEN_0_5B)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--dtype", default="auto",
                   help="auto (float32), float32, bfloat16, float16 (bench: several, "
                        "comma-separated, measured one after the other)")
    p.add_argument("--prompt", default=None, help="the prompt text")
    p.add_argument("--prompts", default=None, metavar="FILE",
                   help="JSON Lines file, one object with a 'prompt' field per line (at most "
                        f"{MAX_PROMPT_CHARS:,} characters a prompt); - reads standard input")
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
    p.add_argument("--top-p", type=float, default=1.0,
                   help=f"nucleus sampling: {TOP_P_MIN:g} to 1 (default 1 = off)")
    p.add_argument("--seed", type=int, default=0, help="run i of a prompts file uses seed + i")


def model_command(sub, name: str, help: str, func) -> argparse.ArgumentParser:
    """A subcommand that loads a model pair: its parser, with the shared model arguments."""
    p = sub.add_parser(name, help=help)
    _common_model_args(p)
    p.set_defaults(func=func)
    return p


def load_for(args, prompts: list[str] | None):
    """The pair named by ``args``, with every prompt checked against its context."""
    pair = _load(args)
    if prompts:
        _check_prompt_sizes(pair, prompts)
    return pair


def _command_line() -> str:
    """How this process was started, as recorded in traces and bench results."""
    return " ".join(["python -m specviz"] + sys.argv[1:])


def _check_prompt_sizes(pair, prompts: list[str]) -> None:
    """Every prompt that cannot fit the target's context is refused before any decoding."""
    from ..models import check_prompt_size
    for i, prompt in enumerate(prompts):
        try:
            check_prompt_size(pair.tokenizer, prompt, pair.context_length)
        except ValueError as e:
            raise CliError(f"prompt {i + 1}: {e}" if len(prompts) > 1 else str(e)) from None


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
    if 0 < args.top_p < TOP_P_MIN:
        raise CliError(f"top-p {args.top_p:g} is too small: float32 cannot hold the cut and "
                       f"sampling turns p and q into NaN; use at least {TOP_P_MIN:g} (any "
                       "top-p that small keeps only the most probable token)")
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
    """Progress on stderr: on a terminal one line redrawn in place; otherwise a line when the
    stage changes or every 10 %, so a conversion's hundreds of tensors stay a few lines."""
    tty = sys.stderr.isatty()
    last = {"stage": None, "tenth": -1}

    def progress(message: str, fraction: float | None) -> None:
        pct = "" if fraction is None else f"{100 * fraction:3.0f} % "
        if tty:
            print(f"\r\033[K  {pct}{message}", end="", file=sys.stderr, flush=True)
            if fraction is None or fraction >= 1.0:
                print(file=sys.stderr)
            return
        stage, tenth = message.split(":")[0], -1 if fraction is None else int(fraction * 10)
        if stage != last["stage"] or tenth != last["tenth"]:
            print(f"  {pct}{message}", file=sys.stderr, flush=True)
        last.update(stage=stage, tenth=tenth)
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
                         progress=_progress_printer(), gguf=args.gguf,
                         draft_int8=getattr(args, "draft_int8", False))
    except ModelSourceError as e:
        raise CliError(str(e)) from None
    if args.drafter == "model" and pair.draft is None:
        raise CliError("--drafter model needs a draft model (--draft SOURCE)")
    if args.drafter == "feature-head" and pair.head is None:
        raise CliError("--drafter feature-head needs a feature head; this target has none")
    return pair
