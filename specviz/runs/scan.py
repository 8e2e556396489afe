"""Trace files and folders read into the runs and steps tables, bounded, never failing whole.

A folder is listed entry by entry (names only; never all at once) up to MAX_ENTRIES_LISTED
entries, and up to MAX_FILES_READ trace files are read; each file is held to the trace
loaders' memory budget (MAX_TRACE_MB) and the whole to MAX_STEPS_LOADED steps. Whatever is
left out says so in one plain line (a file that is not a trace, one too large, what was not
listed or read), and the rest is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa

from ..errors import clean, one_line
from ..limits import MAX_TRACE_MB
from ..traces.records import MemoryBudget, Trace, TraceError, loads_strict, read_traces
from .tables import TableBuilder

MAX_ENTRIES_LISTED = 1_000_000  # directory entries looked at (names only), in all
MAX_FILES_READ = 500  # trace files read
MAX_CANDIDATES = 5_000  # trace files' names kept per folder
MAX_STEPS_LOADED = 2_000_000  # steps held (a larger set: write a dataset, docs/runs.md)
MAX_PROBLEM_LINES = 50
TRACE_SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass
class Loaded:
    """Runs and steps tables, and one plain line per thing left out."""

    runs: pa.Table
    steps: pa.Table
    problems: list[str] = field(default_factory=list)
    files_read: int = 0


class Lines:
    def __init__(self):
        self.lines: list[str] = []
        self.more = 0

    def add(self, line: str) -> None:
        if len(self.lines) < MAX_PROBLEM_LINES:
            self.lines.append(clean(line, 400))
        else:
            self.more += 1

    def done(self) -> list[str]:
        return self.lines + ([f"… and {self.more:,} more files left out"] if self.more else [])


def read_trace_file(path: str | os.PathLike, source: str | None = None) -> list[Trace]:
    """All runs of one JSON Lines or Parquet trace file, held to MAX_TRACE_MB; TraceError
    (one line, naming the file) for anything that is not a readable trace."""
    src = source or str(path)
    budget = MemoryBudget(MAX_TRACE_MB)
    if str(path).lower().endswith(".parquet"):
        from ..traces.parquet import read_parquet_traces
        try:
            return read_parquet_traces(path, source=src, budget=budget)
        except TraceError:
            raise
        except Exception as e:  # pyarrow's own errors, said in one line
            raise TraceError(f"cannot be read as Parquet ({one_line(e, 200)})",
                             source=src) from None
    try:
        return read_traces(path, source=src, budget=budget)
    except TraceError:
        raise
    except MemoryError:
        raise TraceError("does not fit in memory", source=src) from None


def _walk(root: Path, lines: Lines, counts: dict[str, int]) -> Iterator[Path]:
    """Trace files under ``root`` (depth first, sorted within each folder). Names are
    listed entry by entry, at most MAX_ENTRIES_LISTED in all; only trace files' names and
    folders are kept (others counted in ``counts['other']``), and of those at most
    ``MAX_CANDIDATES`` a folder."""
    seen = 0
    stack = [root]
    while stack:
        folder = stack.pop()
        files, subdirs = [], []
        try:
            with os.scandir(folder) as it:
                for e in it:
                    seen += 1
                    if seen > MAX_ENTRIES_LISTED:
                        lines.add(f"{root}: stopped listing after {MAX_ENTRIES_LISTED:,} "
                                  "entries; the rest of the folder was not looked at")
                        stack = []
                        break
                    try:
                        if e.is_dir(follow_symlinks=False):
                            subdirs.append(e.name)
                        elif not e.name.lower().endswith(TRACE_SUFFIXES):
                            counts["other"] += 1
                        elif len(files) < MAX_CANDIDATES and e.is_file():
                            files.append(e.name)
                        else:
                            counts["unlisted"] += 1
                    except OSError:
                        continue
        except OSError as e:
            lines.add(f"{folder}: cannot be listed ({e.strerror or e})")
            continue
        for name in sorted(files):
            yield Path(folder) / name
        stack.extend(Path(folder) / d for d in sorted(subdirs, reverse=True))


def read_categories(path: str | os.PathLike) -> dict[str, str]:
    """prompt -> category from a prompts file (JSON Lines with 'prompt' and 'category');
    lines without both are skipped. Raises TraceError for an unreadable file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TraceError(f"cannot be read ({getattr(e, 'strerror', None) or 'not UTF-8'})",
                         source=str(path)) from None
    out = {}
    for line in text.split("\n"):
        try:
            obj = loads_strict(line) if line.strip() else None
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict) and isinstance(obj.get("prompt"), str) \
                and isinstance(obj.get("category"), str):
            out[obj["prompt"]] = obj["category"][:100]
    return out


def trace_files(paths: Iterable[str | os.PathLike], lines: Lines,
                max_files: int | None = None) -> Iterator[tuple[Path, str]]:
    """(file, its name below the folder given) of each trace file among ``paths``, folders
    searched below (bounded); what is left out is said in ``lines``, one line each."""
    max_files = MAX_FILES_READ if max_files is None else max_files
    counts = {"other": 0, "unlisted": 0, "over": 0}
    files = 0
    for p in paths:
        root = Path(p)
        if root.is_dir():
            candidates: Iterable[Path] = _walk(root, lines, counts)
        elif root.exists():
            candidates = [root]
        else:
            lines.add(f"{root}: no such file or folder")
            continue
        for f in candidates:
            if files >= max_files:
                counts["over"] += 1
            else:
                files += 1
                yield f, _name(root, f)
    if counts["other"]:
        lines.add(f"{counts['other']:,} files that are not .jsonl, .json or .parquet were "
                  "skipped")
    if counts["over"] or counts["unlisted"]:
        lines.add(f"{counts['over'] + counts['unlisted']:,} more trace files were not read: at "
                  f"most {max_files:,} are read at once (write a runs dataset for more: "
                  "specviz runs PATH --write-dataset DIR)")


def load_paths(paths: Iterable[str | os.PathLike], categories: dict[str, str] | None = None
               ) -> Loaded:
    """Trace files and folders (searched below, bounded) -> runs and steps tables."""
    lines = Lines()
    builder = TableBuilder()
    files = 0
    for f, name in trace_files(paths, lines):
        if builder.n_steps >= MAX_STEPS_LOADED:
            lines.add(f"{f}: not read: {MAX_STEPS_LOADED:,} steps are held already")
            continue
        files += 1
        add_file(builder, f, name, categories, lines)
    runs, steps = builder.tables()
    return Loaded(runs, steps, lines.done(), files)


def _name(root: Path, f: Path) -> str:
    try:
        return str(f.relative_to(root)) if root.is_dir() else f.name
    except ValueError:
        return f.name


def add_file(builder: TableBuilder, path: Path, name: str, categories: dict[str, str] | None,
             lines: Lines) -> None:
    """One file's runs into ``builder``, or one line in ``lines`` saying why not."""
    try:
        traces = read_trace_file(path, name)
    except TraceError as e:
        lines.add(str(e))
        return
    except Exception as e:  # anything else, still one line, and the next file is read
        lines.add(f"{name}: cannot be read ({one_line(e, 200)})")
        return
    builder.add_all(traces, name, categories=categories, trace_file=str(path))


def load_traces(named: Iterable[tuple[str, list[Trace]]],
                categories: dict[str, str] | None = None) -> Loaded:
    """Traces already read (e.g. uploads): (source name, its traces) -> tables."""
    builder = TableBuilder()
    for name, traces in named:
        builder.add_all(traces, name, categories=categories)
    runs, steps = builder.tables()
    return Loaded(runs, steps, [], 0)
