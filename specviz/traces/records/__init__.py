"""Trace records: what one speculative decoding run did, step by step.

A trace file is JSON Lines. Each run is a ``run`` record, then one ``step`` record per
verification step, then a ``summary`` record. Several runs may share one file. The format is
documented in docs/trace-format.md; the key names here are that document's.

The parts: ``model`` (the records as frozen dataclasses, totals, writing), ``checker`` (one
field's type, range and memory), ``parse`` (records -> traces, each record against its run),
``jsonl`` (JSON Lines text -> records). Every public name is importable from here.

Notation: p = target distribution, q = draft distribution.
"""

from .checker import MemoryBudget, _Checker, _cost, _is_int, _is_num, _show
from .jsonl import (
    loads_strict,
    parse_lines,
    read_trace,
    read_traces,
    record_from_json,
)
from .model import (
    DRAFTER_KINDS,
    EMITTED_KINDS,
    MODES,
    SCHEMA_VERSION,
    STOP_REASONS,
    OverBudget,
    RunRecord,
    StepRecord,
    SummaryRecord,
    Trace,
    TraceError,
    TraceWriter,
    dumps,
    summarize,
    traces_to_jsonl,
    write_traces,
)
from .parse import parse_records

__all__ = [
    "DRAFTER_KINDS", "EMITTED_KINDS", "MODES", "SCHEMA_VERSION", "STOP_REASONS", "MemoryBudget",
    "OverBudget", "RunRecord", "StepRecord", "SummaryRecord", "Trace", "TraceError",
    "TraceWriter", "dumps", "loads_strict", "parse_lines", "parse_records", "read_trace",
    "read_traces", "record_from_json", "summarize", "traces_to_jsonl", "write_traces",
    "_Checker", "_cost", "_is_int", "_is_num", "_show",
]
