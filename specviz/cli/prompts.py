"""Prompts from --prompt or a --prompts file, and the check that text from the command line
is text (no lone surrogates)."""

from __future__ import annotations

import os
import stat

from ..errors import clean
from ..limits import MAX_PROMPT_CHARS, MAX_PROMPTS_FILE_MB
from .common import CliError

MAX_PROMPTS_FILE_BYTES = MAX_PROMPTS_FILE_MB * 1_000_000


def has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (U+D800 to U+DFFF), which UTF-8 cannot encode:
    a JSON escape such as "\\ud800", or a byte of a command line that is not UTF-8 (Python
    keeps those as U+DC80 to U+DCFF)."""
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _read_bounded(path: str) -> bytes:
    """The bytes of a regular file of at most MAX_PROMPTS_FILE_BYTES. Devices (/dev/zero,
    /dev/urandom), FIFOs (a writer may never come), sockets and directories are refused before
    they are read, and a file is never read past the limit (it may grow while being read)."""
    def refuse(reason: str) -> CliError:
        return CliError(f"cannot read prompts file {path}: {reason}")

    try:
        st = os.stat(path)  # follows symbolic links: a link is judged by what it names
    except OSError as e:
        raise refuse(e.strerror or "cannot open it") from None
    if not stat.S_ISREG(st.st_mode):
        raise refuse(f"it is {_kind(st.st_mode)}, not a regular file")
    try:  # O_NONBLOCK: should a FIFO be swapped in after the stat, opening it does not hang
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise refuse(e.strerror or "cannot open it") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise refuse(f"it is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > MAX_PROMPTS_FILE_BYTES:
            raise refuse(f"it holds {st.st_size / 1e6:,.0f} MB; at most "
                         f"{MAX_PROMPTS_FILE_MB} MB are read")
        try:
            data = f.read(MAX_PROMPTS_FILE_BYTES + 1)
        except OSError as e:
            raise refuse(e.strerror or "cannot read it") from None
    if len(data) > MAX_PROMPTS_FILE_BYTES:
        raise refuse(f"it holds more than {MAX_PROMPTS_FILE_MB} MB")
    return data


def _read_stdin() -> bytes:
    """``--prompts -``: standard input (a pipe or a file), read to its end or the limit."""
    import sys
    data = sys.stdin.buffer.read(MAX_PROMPTS_FILE_BYTES + 1)
    if len(data) > MAX_PROMPTS_FILE_BYTES:
        raise CliError(f"cannot read prompts from standard input: more than "
                       f"{MAX_PROMPTS_FILE_MB} MB")
    return data


def read_prompts(path: str, categories: list | None = None) -> list[str]:
    """Prompts from a JSON Lines file with a 'prompt' field per line.

    Lines are split on \\n only (a \\r before it is dropped), as in trace files: a prompt
    may hold U+2028 and the like. The file must be a regular file of at most
    MAX_PROMPTS_FILE_MB (limits.py), in UTF-8 ("-": standard input, to the same limit); a
    prompt may not hold a lone surrogate. ``categories`` (if given) receives each prompt's
    'category' field (None where it has none or it is not a string).
    """
    from ..traces.records import loads_strict
    try:
        text = (_read_stdin() if path == "-" else _read_bounded(path)).decode("utf-8")
    except UnicodeDecodeError as e:
        raise CliError(f"cannot read prompts file {path}: not UTF-8 text (byte {e.start:,})"
                       ) from None
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
        if has_surrogate(obj["prompt"]):
            raise CliError(f"{path}, line {n}: the prompt holds a lone surrogate escape "
                           "(\\ud800-\\udfff), which is not text")
        prompts.append(obj["prompt"])
        if categories is not None:
            c = obj.get("category")
            categories.append(c if isinstance(c, str) and c.strip() else None)
    if not prompts:
        raise CliError(f"{path} holds no prompts")
    return prompts


def check_text_args(args) -> None:
    """Every text option of the command line (--prompt, --label, --out, a model source, ...)
    must be text: a byte that is not UTF-8 reaches Python as a lone surrogate, which neither
    a tokenizer nor a trace file can hold."""
    for name, value in vars(args).items():
        if isinstance(value, str) and has_surrogate(value):
            raise CliError(f"--{name.replace('_', '-')} holds bytes that are not UTF-8 text "
                           "(a lone surrogate); give it as UTF-8")


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
