"""Reading JSON Lines: text -> records (strict JSON, one object a line, a last line cut
mid-write forgiven) -> traces."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from ...limits import MAX_LINE_CHARS, MAX_TRACE_MB
from .checker import MemoryBudget
from .model import Trace, TraceError
from .parse import parse_records


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_PARTIAL_TOKEN = re.compile(r"[-+0-9.eE]*|t(r(ue?)?)?|f(a(l(se?)?)?)?|n(u(ll?)?)?")


def _cut_short(raw: str, e: Exception) -> bool:
    """Whether a line without its newline is a record cut off mid-write: valid JSON that
    stops early (inside a string, a number, a literal, or between tokens)."""
    if raw.endswith("\n") or not isinstance(e, json.JSONDecodeError):
        return False
    rest = raw[e.pos:]
    return (e.msg.startswith("Unterminated string")
            or (e.msg.startswith("Invalid \\uXXXX") and len(rest) < 12)
            or _PARTIAL_TOKEN.fullmatch(rest) is not None)


def _encodable(obj: Any) -> bool:
    """Whether every string of a parsed record can be written back as UTF-8 (JSON escapes
    can encode lone surrogates, which UTF-8 cannot). Iterative: records may nest deeply."""
    todo = [obj]
    while todo:
        v = todo.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(v, dict):
            todo += [*v.keys(), *v.values()]
        elif isinstance(v, list):
            todo += v
    return True


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object as a dict, refusing a key given twice (json.loads would keep the last)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return obj


def loads_strict(text: str) -> Any:
    """json.loads that refuses NaN, Infinity and a key given twice in one object (raising
    ValueError), as the trace format and the prompts files require."""
    return _DECODER.decode(text)


# one decoder for every line: one made per call (json.loads with options) leaves small
# objects among a parse's memory that keep it from going back to the system
_DECODER = json.JSONDecoder(parse_constant=_no_constant, object_pairs_hook=_unique_keys)


def parse_lines(lines: Iterable[str], source: str = "<trace>", *,
                max_mb: float | None = MAX_TRACE_MB,
                budget: MemoryBudget | None = None) -> list[Trace]:
    """Parse JSON Lines into traces; raise TraceError naming line and field on bad input.

    Lines are split on \\n only (each may keep its newline). A file is held to the decoder's
    limits (gamma, steps per run, top-k, text lengths; see specviz.limits), and its values to
    ``max_mb`` of memory, estimated (None: no such limit), or to ``budget``, which several
    files may share.
    """
    return parse_records(_json_objects(enumerate(lines, start=1), source), source,
                         budget or MemoryBudget(max_mb))


def _json_objects(lines: Iterable[tuple[int, str]], source: str
                  ) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each non-blank (line number, line); a last line cut
    mid-write is dropped."""
    it = iter(lines)
    for n, raw in it:
        if not raw.strip():
            continue
        try:
            yield n, _record(raw, source, n)
        except _CutShort as cut:
            if _cut_short(raw, cut.error) and next(it, None) is None:
                return  # the writer stopped mid-line: keep the complete records before it
            raise cut.trace_error from None


class _CutShort(Exception):
    """Invalid JSON that may be a last line cut mid-write (parse_lines decides)."""

    def __init__(self, error: Exception, trace_error: TraceError):
        self.error, self.trace_error = error, trace_error


def record_from_json(raw: str, source: str = "<trace>", line: int | None = None) -> dict:
    """One JSON Lines record as a dict; TraceError naming the line if it is not valid JSON,
    too long, not an object, repeats a key or holds a lone surrogate escape."""
    try:
        return _record(raw, source, line)
    except _CutShort as cut:
        raise cut.trace_error from None


# Objects and lists one record may hold, counted before it is parsed: json.loads made 2.5
# million Python objects (530 MB) of one 7.5 MB line of [{}, {}, ...]. A step holds a few
# hundred; a run record's target, draft, config and hardware at most 10 000 values each.
MAX_CONTAINERS = 50_000
_SCAN_FROM = 100_000  # characters: a shorter line cannot hold that many
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')


def _containers(raw: str) -> int:
    """Objects and lists in a line of JSON: its '{' and '[' outside strings."""
    bare = _JSON_STRING.sub("", raw)
    return bare.count("{") + bare.count("[")


def _record(raw: str, source: str, line: int | None) -> dict:
    if len(raw) > MAX_LINE_CHARS:
        raise TraceError(f"is longer than {MAX_LINE_CHARS:,} characters, the most one "
                         "record may have", source=source, line=line)
    if len(raw) > _SCAN_FROM and _containers(raw) > MAX_CONTAINERS:
        raise TraceError(f"holds more than {MAX_CONTAINERS:,} objects and lists; a record "
                         "holds far fewer", source=source, line=line)
    try:
        obj = loads_strict(raw)
    except _DuplicateKey as e:
        raise TraceError("is given twice in one object (which value holds?)",
                         source=source, line=line, field_name=e.key) from None
    except (ValueError, RecursionError) as e:  # ValueError: JSONDecodeError, huge ints
        msg = getattr(e, "msg", None) or ("nesting too deep"
                                          if isinstance(e, RecursionError) else str(e))
        raise _CutShort(e, TraceError(f"is not valid JSON ({msg[:80]})", source=source,
                                      line=line)) from None
    if not isinstance(obj, dict):
        raise TraceError("must be a JSON object", source=source, line=line)
    if "\\u" in raw and not _encodable(obj):
        raise TraceError("holds a lone surrogate escape (\\ud800-\\udfff), which is not "
                         "text", source=source, line=line)
    return obj


def read_traces(path_or_file: str | os.PathLike | IO[str] | IO[bytes] | bytes,
                source: str | None = None, *,
                max_mb: float | None = MAX_TRACE_MB,
                budget: MemoryBudget | None = None) -> list[Trace]:
    """Load every run of a JSON Lines trace; a run without summary loads as incomplete.

    The content is read line by line (never copied whole); see parse_lines for the limits
    (``max_mb``, or a ``budget`` shared with other files).
    """
    if isinstance(path_or_file, (bytes, bytearray)):
        src = source or "<upload>"
        return _parse_numbered(_lines_of(bytes(path_or_file), src), src, max_mb, budget)
    if isinstance(path_or_file, (str, os.PathLike)):
        src = source or str(path_or_file)
        try:
            data = Path(path_or_file).read_bytes()
        except OSError as e:
            raise TraceError(f"cannot be read ({e.strerror or e})", source=src) from None
        return _parse_numbered(_lines_of(data, src), src, max_mb, budget)
    src = source or str(getattr(path_or_file, "name", "<trace>"))
    try:
        data = path_or_file.read()
    except UnicodeDecodeError:  # a text-mode file of something else
        raise TraceError("is not UTF-8 text", source=src) from None
    return _parse_numbered(_lines_of(data, src), src, max_mb, budget)


def _parse_numbered(lines: Iterable[tuple[int, str]], source: str, max_mb: float | None,
                    budget: MemoryBudget | None) -> list[Trace]:
    return parse_records(_json_objects(lines, source), source, budget or MemoryBudget(max_mb))


# a run of blank lines (ASCII whitespace), skipped at once: 49 MB of them, a line at a time,
# took 30 s
_BLANKS = (re.compile(rb"[ \t\r\f\v\n]*\n"), re.compile(r"[ \t\r\f\v\n]*\n"))


def _lines_of(data: bytes | str, source: str) -> Iterator[tuple[int, str]]:
    """(line number, line with its newline) for the lines of a file, split on \\n only; runs
    of blank lines are left out. Bytes are decoded (UTF-8) one line at a time; a last line cut
    inside a character loses that character."""
    nl = b"\n" if isinstance(data, bytes) else "\n"
    blanks = _BLANKS[0 if isinstance(data, bytes) else 1]
    start, n, size = 0, 0, len(data)
    while start < size:
        run = blanks.match(data, start)
        if run is not None:
            n += data.count(nl, start, run.end())
            start = run.end()
            continue
        end = data.find(nl, start)  # type: ignore[arg-type]
        end = size if end < 0 else end + 1
        n += 1
        chunk = data[start:end]
        if isinstance(chunk, bytes):
            if len(chunk) > 4 * MAX_LINE_CHARS:  # more characters than allowed, surely
                raise TraceError(f"is longer than {MAX_LINE_CHARS:,} characters, the most "
                                 "one record may have", source=source, line=n)
            chunk = _decode_line(chunk, source, n, last=end == size)
        yield n, chunk
        start = end


def _decode_line(data: bytes, source: str, line: int, last: bool) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        if last and e.reason == "unexpected end of data":  # cut inside the last character
            return data[: e.start].decode("utf-8")
        raise TraceError("is not UTF-8 text", source=source, line=line) from None


def read_trace(path: str | os.PathLike) -> Trace:
    """The first run of a trace file."""
    return read_traces(path)[0]
