"""Prompts from --prompt or a --prompts file."""

from __future__ import annotations

from pathlib import Path

from ..errors import clean
from ..limits import MAX_PROMPT_CHARS
from .common import CliError


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
