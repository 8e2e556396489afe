"""Checking one record's fields: types, ranges, lengths, and the memory what it becomes
takes (MemoryBudget)."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from ...limits import MAX_TOKEN_CHARS, TOP_ALTERNATIVES_MAX
from .model import OverBudget, TraceError

INT64_MAX = 2**63 - 1  # every integer of a trace fits int64 (Parquet's columns, numpy, torch)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    # an int beyond float range would make math.isfinite raise OverflowError
    return abs(v) <= sys.float_info.max if isinstance(v, int) else math.isfinite(v)


class MemoryBudget:
    """What the values read so far from one file take in memory (estimated in bytes, as
    _cost says), against a limit: a file's size on disk says little about it."""

    def __init__(self, limit_mb: float | None):
        self.limit = None if limit_mb is None else int(limit_mb * 2**20)
        self.used = 0


def _cost(v: list | str) -> int:
    """Bytes a list of values or a string takes in CPython, an upper estimate: 64 for a
    list, 48 for a number (its slot and object), 96 + 4 per character for a string."""
    if isinstance(v, str):
        return 96 + 4 * len(v)
    return 64 + sum(96 + 4 * len(x) if isinstance(x, str) else 48 for x in v)


class _Checker:
    def __init__(self, source: str, line: int, obj: dict, budget: MemoryBudget | None = None):
        self.source, self.line, self.obj = source, line, obj
        self.budget = budget or MemoryBudget(None)

    def fail(self, name: str | None, msg: str) -> TraceError:
        return TraceError(msg, source=self.source, line=self.line, field_name=name)

    def spend(self, name: str, v: list | str | int) -> None:
        """Count ``v`` (a list or a string, or a number of bytes) against the budget."""
        b = self.budget
        b.used += v if isinstance(v, int) else _cost(v)
        if b.limit is not None and b.used > b.limit:
            raise OverBudget(f"brings the file past {b.limit / 2**20:,.0f} MB in memory "
                             "(estimated), the most one trace file may take",
                             source=self.source, line=self.line, field_name=name)

    def get(self, name: str, *, optional: bool = False, default: Any = None) -> Any:
        if name not in self.obj:
            if optional:
                return default
            raise self.fail(name, "is missing")
        return self.obj[name]

    def int_(self, name: str, *, lo: int | None = None, hi: int | None = None,
             optional: bool = False, default: int = 0) -> int:
        v = self.get(name, optional=optional, default=default)
        if not _is_int(v):
            raise self.fail(name, f"must be an integer, got {_show(v)}")
        if lo is not None and v < lo:
            raise self.fail(name, f"must be >= {lo}, got {_show(v)}")
        hi = INT64_MAX if hi is None else hi
        if v > hi or v < -INT64_MAX:
            raise self.fail(name, f"must be <= {hi:,}, got {_show(v)}")
        return v

    def num(self, name: str, *, optional: bool = False, nullable: bool = False,
            default: float = 0.0, lo: float | None = None, hi: float | None = None) -> Any:
        v = self.get(name, optional=optional, default=default)
        if v is None and nullable:
            return None
        if not _is_num(v):
            raise self.fail(name, f"must be a finite number, got {_show(v)}")
        if hi is None and lo is not None and v < lo:
            raise self.fail(name, f"must be >= {lo}, got {v}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.fail(name, f"must lie in [{lo}, {hi}], got {v}")
        return float(v)

    def str_(self, name: str, *, optional: bool = False, default: str = "",
             max_chars: int | None = None) -> str:
        v = self.get(name, optional=optional, default=default)
        if not isinstance(v, str):
            raise self.fail(name, f"must be a string, got {_show(v)}")
        if max_chars is not None and len(v) > max_chars:
            raise self.fail(name, f"has {len(v):,} characters; at most {max_chars:,} are "
                            "allowed")
        self.spend(name, v)
        return v

    def dict_(self, name: str, *, nullable: bool = False, optional: bool = False) -> Any:
        v = self.get(name, optional=optional, default=None if nullable else {})
        if v is None and nullable:
            return None
        if not isinstance(v, dict):
            raise self.fail(name, f"must be an object, got {_show(v)}")
        return v

    def list_(self, name: str, kind: str, *, length: int | None = None,
              nullable: bool = False, optional: bool = False, lo: float | None = None,
              hi: float | None = None, items_nullable: bool = False,
              max_len: int | None = None) -> Any:
        v = self.get(name, optional=optional, default=None if nullable else [])
        if v is None and nullable:
            return None
        if not isinstance(v, list):
            raise self.fail(name, f"must be a list, got {_show(v)}")
        if length is not None and len(v) != length:
            raise self.fail(name, f"must have {length} entries, has {len(v)}")
        if max_len is not None and len(v) > max_len:
            raise self.fail(name, f"has {len(v):,} entries; at most {max_len:,} are allowed")
        test = _TESTS[kind]
        for i, x in enumerate(v):
            if x is None and items_nullable:
                continue
            if not test(x):
                raise self.fail(name, f"entry {i} must be of type {kind}, got {_show(x)}")
            if kind == "num" and ((lo is not None and x < lo) or (hi is not None and x > hi)):
                raise self.fail(name, f"entry {i} must lie in [{lo}, {hi}], got {x}")
            if kind == "int" and lo is not None and x < lo:
                raise self.fail(name, f"entry {i} must be >= {lo}, got {_show(x)}")
            if kind == "int" and abs(x) > (hi or INT64_MAX):
                raise self.fail(name, f"entry {i} must be <= {hi or INT64_MAX:,}, got "
                                f"{_show(x)}")
            if kind == "str" and len(x) > MAX_TOKEN_CHARS:
                raise self.fail(name, f"entry {i} has {len(x):,} characters; a token's text "
                                f"has at most {MAX_TOKEN_CHARS:,}")
        self.spend(name, v)
        return v

    def nested(self, name: str, kind: str, *, length: int, nullable: bool = False,
               lo: float | None = None, hi: float | None = None) -> Any:
        """A top-k field: ``length`` rows (or none) of at most TOP_ALTERNATIVES_MAX entries."""
        v = self.get(name, optional=True, default=None if nullable else [])
        if v is None and nullable:
            return None
        if not isinstance(v, list):
            raise self.fail(name, f"must be a list, got {_show(v)}")
        if v and len(v) != length:
            raise self.fail(name, f"must have {length} entries, has {len(v)}")
        test = _TESTS[kind]
        for i, row in enumerate(v):
            if not isinstance(row, list):
                raise self.fail(name, f"entry {i} must be a list, got {_show(row)}")
            if len(row) > TOP_ALTERNATIVES_MAX:
                raise self.fail(name, f"entry {i} has {len(row):,} alternatives; at most "
                                f"{TOP_ALTERNATIVES_MAX} are recorded")
            for x in row:
                if not test(x) or (kind == "num" and ((lo is not None and x < lo)
                                                      or (hi is not None and x > hi))) or (
                        kind == "int" and not 0 <= x <= (hi or INT64_MAX)):
                    raise self.fail(name, f"entry {i} holds an invalid value {_show(x)}")
                if kind == "str" and len(x) > MAX_TOKEN_CHARS:
                    raise self.fail(name, f"entry {i} holds a text of {len(x):,} characters; "
                                    f"a token's text has at most {MAX_TOKEN_CHARS:,}")
            self.spend(name, row)
        return v


_TESTS = {"int": _is_int, "num": _is_num, "str": lambda x: isinstance(x, str),
          "bool": lambda x: isinstance(x, bool)}


def _show(v: Any) -> str:
    try:
        s = json.dumps(v, ensure_ascii=True, default=str)
    except RecursionError:  # nested almost as deep as json.loads allows
        s = f"a {type(v).__name__} nested too deep to show"
    return s if len(s) <= 40 else s[:37] + "..."
