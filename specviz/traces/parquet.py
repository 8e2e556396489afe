"""Many traces as one tidy Parquet table: one row per drafted position, for pandas/DuckDB.

A step that drafted nothing (target-only runs, prompt lookup finding no match, the last step
of a run with one token left) still gets one row, with ``position`` null; a run without steps
gets one row with ``step`` null. Nothing is lost: ``read_parquet_traces`` rebuilds the
original traces exactly, from the tidy columns plus the run and summary records kept as JSON
strings, and passes them through the same validation as the JSON Lines loader.

Notation: p = target, q = draft. Column names live in ``COLUMNS`` and nowhere else; the
format is documented in docs/trace-format.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from typing import IO, Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import one_line
from ..limits import (
    GAMMA_MAX,
    MAX_PARQUET_DECODED_MB,
    MAX_PARQUET_ROWS,
    MAX_RUNS_PER_FILE,
    MAX_STEPS_PER_RUN,
    MAX_TRACE_MB,
    TOP_ALTERNATIVES_MAX,
)
from .parquet_footer import (
    MAX_PAGES,
    MAX_ROW_GROUPS,
    FooterError,
    chunk_pages,
    footer_bytes,
    row_groups,
)
from .records import (
    MemoryBudget,
    OverBudget,
    StepRecord,
    Trace,
    TraceError,
    dumps,
    parse_records,
    record_from_json,
)

PARQUET_FORMAT = "specviz-trace-parquet"
PARQUET_VERSION = 2  # 2 added tree_parent (token trees)
METADATA_KEY = b"specviz"

_INT, _F64, _STR, _BOOL = pa.int64(), pa.float64(), pa.string(), pa.bool_()

# name -> (Arrow type, what one value means). Run-level columns repeat on every row of a run,
# step-level ones on every row of a step.
COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    # run level
    "run_index": (_INT, "order of the run in the export, from 0"),
    "run_id": (_STR, "run record's run_id"),
    "mode": (_STR, "'speculative' or 'target-only'"),
    "label": (_STR, "run record's label"),
    "target_source": (_STR, "target model source, e.g. 'embedded:smollm2-135m-instruct'"),
    "draft_source": (_STR, "draft model source; null without a draft model"),
    "drafter": (_STR, "'model', 'prompt-lookup', 'early-exit'; null for target-only"),
    "config_gamma": (_INT, "config gamma (initial/maximum draft length); null if absent"),
    "policy": (_STR, "config policy: 'fixed', 'heuristic', 'confidence'"),
    "temperature": (_F64, "config temperature; 0 = greedy"),
    "top_k": (_INT, "config top_k; 0 = off"),
    "top_p": (_F64, "config top_p; 1 = off"),
    "seed": (_INT, "config seed"),
    "max_new_tokens": (_INT, "config max_new_tokens"),
    "complete": (_BOOL, "the run has its summary record"),
    "run_json": (_STR, "the whole run record as JSON (for an exact rebuild)"),
    "summary_json": (_STR, "the whole summary record as JSON; null for an incomplete run"),
    # step level
    "step": (_INT, "step number from 0; null for a run without steps"),
    "step_gamma": (_INT, "tokens drafted in this step"),
    "n_accepted": (_INT, "drafted tokens accepted in this step"),
    "n_evaluated": (_INT, "positions judged: accepted + the first rejection (<= gamma)"),
    "emitted_ids": (pa.list_(_INT), "tokens this step added to the output"),
    "emitted_text": (pa.list_(_STR), "their text"),
    "emitted_kinds": (pa.list_(_STR), "each 'accepted', 'resampled' or 'bonus'"),
    "draft_ms": (_F64, "time drafting"),
    "verify_ms": (_F64, "time in the target's forward pass"),
    "accept_ms": (_F64, "time accepting and committing"),
    "total_ms": (_F64, "whole step"),
    "t_end_s": (_F64, "seconds since the run started, at the end of the step"),
    "null_fields": (pa.list_(_STR), "position fields that are null for the whole step"),
    "empty_fields": (pa.list_(_STR), "top-k fields recorded as an empty list"),
    # position level (null when the step drafted nothing)
    "position": (_INT, "draft position within the step, from 0"),
    "drafted_id": (_INT, "drafted token"),
    "drafted_text": (_STR, "its text"),
    "q": (_F64, "q(drafted token); null for drafters without q"),
    "p": (_F64, "p(drafted token)"),
    "accept_prob": (_F64, "min(1, p/q); greedy: 1 if it is p's argmax else 0"),
    "u": (_F64, "uniform draw compared with accept_prob; null if not drawn or greedy"),
    "accepted": (_BOOL, "the target kept this drafted token"),
    "tree_parent": (_INT, "a tree step: this node's parent position (-1: the last committed "
                          "token); null in a chain (export version 2)"),
    "evaluated": (_BOOL, "the verifier judged this position (position < n_evaluated; a tree: "
                         "the walk reached this node)"),
    "beta": (_F64, "sum_x min(p(x), q(x)) at this position; null without q or greedy"),
    "p_top_ids": (pa.list_(_INT), "top-k tokens of p at this position"),
    "p_top_texts": (pa.list_(_STR), "their text"),
    "p_top_probs": (pa.list_(_F64), "their p"),
    "q_top_ids": (pa.list_(_INT), "top-k tokens of q at this position"),
    "q_top_texts": (pa.list_(_STR), "their text"),
    "q_top_probs": (pa.list_(_F64), "their q"),
}

SCHEMA = pa.schema([(name, typ) for name, (typ, _) in COLUMNS.items()])

# StepRecord fields indexed by draft position, and the subset holding a top-k row each
_POSITION_FIELDS = ("drafted_ids", "drafted_text", "q", "p", "accept_prob", "u", "accepted",
                    "tree_parent", "beta", "p_top_ids", "p_top_texts", "p_top_probs", "q_top_ids",
                    "q_top_texts", "q_top_probs")
_TOP_FIELDS = ("p_top_ids", "p_top_texts", "p_top_probs", "q_top_ids", "q_top_texts",
               "q_top_probs")
_COLUMN_OF = {"drafted_ids": "drafted_id"}  # step field -> column, where the names differ
_STEP_SCALARS = ("draft_ms", "verify_ms", "accept_ms", "total_ms", "t_end_s")
_SINCE = {"tree_parent": 2}  # columns added after export version 1: the version adding them


def _typed(v: Any, kind: type) -> Any:
    """A config value if it has the column's type, else null (run_json keeps the truth)."""
    if kind is float:
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    if kind is int:
        return v if isinstance(v, int) and not isinstance(v, bool) else None
    return v if isinstance(v, kind) else None


def _run_columns(index: int, trace: Trace) -> dict:
    run, cfg = trace.run, trace.run.config
    return {
        "run_index": index,
        "run_id": run.run_id,
        "mode": run.mode,
        "label": run.label,
        "target_source": _typed(run.target.get("source"), str),
        "draft_source": _typed((run.draft or {}).get("source"), str),
        "drafter": run.drafter,
        "config_gamma": _typed(cfg.get("gamma"), int),
        "policy": _typed(cfg.get("policy"), str),
        "temperature": _typed(cfg.get("temperature"), float),
        "top_k": _typed(cfg.get("top_k"), int),
        "top_p": _typed(cfg.get("top_p"), float),
        "seed": _typed(cfg.get("seed"), int),
        "max_new_tokens": _typed(cfg.get("max_new_tokens"), int),
        "complete": trace.complete,
        "run_json": dumps(run.to_json()),
        "summary_json": dumps(trace.summary.to_json()) if trace.summary else None,
    }


def _step_rows(s: StepRecord) -> list[dict]:
    null_fields = [f for f in _POSITION_FIELDS if getattr(s, f) is None]
    empty_fields = [f for f in _TOP_FIELDS
                    if s.gamma and getattr(s, f) is not None and not getattr(s, f)]
    base = {
        "step": s.step, "step_gamma": s.gamma, "n_accepted": s.n_accepted,
        "n_evaluated": s.n_evaluated, "emitted_ids": s.emitted_ids,
        "emitted_text": s.emitted_text, "emitted_kinds": s.emitted_kinds,
        **{k: getattr(s, k) for k in _STEP_SCALARS},
        "null_fields": null_fields, "empty_fields": empty_fields,
    }
    if not s.gamma:
        return [base]
    rows = []
    for i in range(s.gamma):
        judged = (s.accept_prob[i] is not None if s.tree_parent is not None
                  else i < s.n_evaluated)  # a tree: the nodes the walk reached
        row = dict(base, position=i, evaluated=judged)
        for f in _POSITION_FIELDS:
            values = getattr(s, f)
            row[_COLUMN_OF.get(f, f)] = values[i] if values else None
        rows.append(row)
    return rows


def traces_to_rows(traces: Iterable[Trace]) -> list[dict]:
    """Tidy rows (dicts keyed by COLUMNS) of several traces, one per drafted position."""
    rows = []
    for index, trace in enumerate(traces):
        run_cols = _run_columns(index, trace)
        step_rows = [r for s in trace.steps for r in _step_rows(s)] or [{}]
        rows += [{**run_cols, **r} for r in step_rows]
    return rows


def traces_to_parquet(traces: Iterable[Trace], path: str | os.PathLike | IO[bytes]) -> None:
    """Write traces to one Parquet file (or binary file object), one row per drafted position.

    Columns are ``COLUMNS``; ``pandas.read_parquet`` and DuckDB read it directly.
    """
    rows = traces_to_rows(traces)
    if not rows:
        raise ValueError("no traces to export")
    try:
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
    except (pa.ArrowException, OverflowError) as e:  # e.g. a token id beyond int64
        raise ValueError(f"these traces cannot be stored in Parquet: {_first_line(e)}") from None
    meta = json.dumps({"format": PARQUET_FORMAT, "version": PARQUET_VERSION}).encode()
    table = table.replace_schema_metadata({METADATA_KEY: meta})
    pq.write_table(table, path, compression="zstd")


def read_parquet_traces(path_or_bytes: str | os.PathLike | bytes | IO[bytes],
                        source: str | None = None, *,
                        max_mb: float | None = MAX_TRACE_MB,
                        budget: MemoryBudget | None = None) -> list[Trace]:
    """Rebuild the traces of a ``traces_to_parquet`` export, equal to the originals.

    Bounded before anything is materialised: the footer's row count, values per row and
    decoded sizes are checked first (MAX_PARQUET_ROWS, MAX_PARQUET_DECODED_MB), rows are read
    in batches with text kept dictionary-encoded, and what the rows would take as
    Python objects is estimated and held to ``max_mb`` (or to a ``budget`` shared with other
    files), as the JSON Lines loader does, before any row becomes one. Raises TraceError for
    a file that is not Parquet, not a specviz export, too large, or inconsistent.
    """
    if isinstance(path_or_bytes, (str, os.PathLike)):
        src = source or str(path_or_bytes)
    else:
        src = source or getattr(path_or_bytes, "name", "<parquet>")
    if isinstance(path_or_bytes, (bytes, bytearray)):
        path_or_bytes = io.BytesIO(path_or_bytes)
    try:
        return _read_parquet(path_or_bytes, src, max_mb, budget)
    finally:  # Arrow's buffers of a refused (or read) file, back to the system
        pa.default_memory_pool().release_unused()


def _read_parquet(path_or_bytes: Any, src: str, max_mb: float | None,
                  budget: MemoryBudget | None) -> list[Trace]:
    try:  # its size first: pyarrow would decode a footer of any size
        footer = footer_bytes(path_or_bytes)
    except FooterError as e:
        raise TraceError(f"is not a readable Parquet file ({e})", source=src) from None
    except OSError as e:
        raise TraceError(f"is not a readable Parquet file ({e.strerror or e})",
                         source=src) from None
    try:
        pf = pq.ParquetFile(path_or_bytes)
    except (OSError, pa.ArrowException) as e:
        raise TraceError(f"is not a readable Parquet file ({_first_line(e)})",
                         source=src) from None
    except UnicodeDecodeError:  # e.g. a column name that is not UTF-8
        raise TraceError("is not a readable Parquet file (a name in it is not UTF-8)",
                         source=src) from None
    with pf:
        try:
            _check_schema(pf.schema_arrow, src)
            leaves = _check_footer(pf.metadata, footer, src, path_or_bytes)
            table = _read_bounded(pf, path_or_bytes, leaves, src)
        except (OSError, pa.ArrowException) as e:
            raise TraceError(f"cannot be read ({_first_line(e)})", source=src) from None
        except FooterError as e:
            raise TraceError(f"has a corrupt footer ({e})", source=src) from None
        except UnicodeDecodeError:
            raise TraceError("cannot be read (a name or text in it is not UTF-8)",
                             source=src) from None
    if table.num_rows == 0:
        raise TraceError("holds no rows", source=src)
    _check_arrays(table, src)
    table = _sorted(table, src)
    budget = budget or MemoryBudget(max_mb)
    if budget.limit is not None and budget.used + _python_cost(table) > budget.limit:
        raise OverBudget(f"would take more than {budget.limit / 2**20:,.0f} MB in memory "
                         "(estimated), the most one trace file may take", source=src)
    bounds = _run_bounds(table)
    if len(bounds) > MAX_RUNS_PER_FILE:
        raise TraceError(f"holds {len(bounds):,} runs; one file may hold at most "
                         f"{MAX_RUNS_PER_FILE:,}", source=src)
    traces = []
    for index, a, b in bounds:
        run_src = f"{src}, run {index}"
        try:
            traces.append(_rebuild(table.slice(a, b - a), run_src, budget))
        except UnicodeDecodeError:  # Parquet does not check that its strings are UTF-8
            raise TraceError("holds text that is not valid UTF-8", source=run_src) from None
        except pa.ArrowException as e:  # what validation let through and Arrow refuses
            raise TraceError(f"cannot be read ({_first_line(e)})", source=run_src) from None
    return traces


# the columns a rebuild reads (the others repeat what run_json holds) and their parts
_RUN_COLUMNS = ("run_index", "run_json", "summary_json")
_STEP_COLUMNS = ("step", "step_gamma", "emitted_ids", "emitted_text", "emitted_kinds",
                 *_STEP_SCALARS, "null_fields", "empty_fields")
_POSITION_COLUMNS = ("position", *(_COLUMN_OF.get(f, f) for f in _POSITION_FIELDS))
_READ = (*_RUN_COLUMNS, *_STEP_COLUMNS, *_POSITION_COLUMNS)
# the most entries one row of a list column holds; every other column holds one value a row
_PER_ROW = {"emitted_ids": GAMMA_MAX + 1, "emitted_text": GAMMA_MAX + 1,
            "emitted_kinds": GAMMA_MAX + 1, "null_fields": len(_POSITION_FIELDS),
            "empty_fields": len(_TOP_FIELDS), **dict.fromkeys(_TOP_FIELDS, TOP_ALTERNATIVES_MAX)}


def _check_footer(meta: pq.FileMetaData, footer: bytes, src: str, source: Any
                  ) -> list[tuple[int, str, str]]:
    """Rows, values per row and decoded size, from the footer and the page headers, before
    any page is read. Returns the leaf columns to read: (index, top-level name, path). Row
    groups and column chunks come from ``footer`` as decoded by parquet_footer: pyarrow's own
    objects for them can end the process on a corrupt footer. The size each page
    decompresses to comes from its header (what pyarrow allocates; a footer may understate
    it). Raises FooterError for a footer or page header it refuses."""
    if meta.num_rows > MAX_PARQUET_ROWS:
        raise TraceError(f"has {meta.num_rows:,} rows; at most {MAX_PARQUET_ROWS:,} are read "
                         "(one per drafted position)", source=src)
    if meta.num_row_groups > MAX_ROW_GROUPS:
        raise TraceError(f"has {meta.num_row_groups:,} row groups; at most {MAX_ROW_GROUPS} "
                         "are read (an export has one per 2^20 rows)", source=src)
    schema = meta.schema
    columns = [schema.column(j) for j in range(meta.num_columns)]
    leaves = [(j, c.path.split(".")[0], c.path) for j, c in enumerate(columns)
              if c.path.split(".")[0] in _READ]
    levels = [(c.max_repetition_level, c.max_definition_level,
               c.physical_type == "BYTE_ARRAY") for c in columns]
    groups = row_groups(footer, levels)
    if len(groups) != meta.num_row_groups:
        raise FooterError(f"the footer lists {len(groups)} row groups, its header "
                          f"{meta.num_row_groups}")
    decoded, pages_left = 0, [MAX_PAGES]
    for i, (rows, chunks) in enumerate(groups):
        for j, top, _ in leaves:
            col = chunks[j]
            most = rows * _PER_ROW.get(top, 1)
            if col.num_values > most:
                raise TraceError(f"holds {col.num_values:,} values in the {rows:,} rows "
                                 f"of row group {i}; an export holds at most "
                                 f"{_PER_ROW.get(top, 1)} a row", source=src, field_name=top)
            # the values they decode to (8 bytes each, plus offsets)
            decoded += 12 * col.num_values
    _check_decoded(decoded, src)
    with _binary(source) as f:
        for i, (_, chunks) in enumerate(groups):
            for j, top, _ in leaves:
                col = chunks[j]
                pages = chunk_pages(f, col, f"row group {i}, column '{top}'", pages_left)
                # the pages as decompressed, by the footer's word or their headers' if larger
                decoded += max(col.total_uncompressed_size, pages.uncompressed)
                _check_decoded(decoded, src)
    return leaves


def _check_decoded(decoded: int, src: str) -> None:
    if decoded > MAX_PARQUET_DECODED_MB * 2**20:
        raise TraceError(f"decodes to {decoded / 2**20:,.0f} MB or more; at most "
                         f"{MAX_PARQUET_DECODED_MB} MB are read", source=src)


@contextlib.contextmanager
def _binary(source: Any):
    """A seekable binary file of ``source`` (a path, or a file whose position is kept)."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            yield f
        return
    where = source.tell()
    try:
        yield source
    finally:
        source.seek(where)


def _read_bounded(pf: pq.ParquetFile, source: Any, leaves: list[tuple[int, str, str]],
                  src: str) -> pa.Table:
    """The columns a rebuild needs, a batch of rows at a time, with text dictionary-encoded
    (a text repeated on many rows is held once); stops as soon as the data read passes the
    limit."""
    schema = pf.metadata.schema
    text = [path for j, _, path in leaves if schema.column(j).physical_type == "BYTE_ARRAY"]
    reader = pq.ParquetFile(source, metadata=pf.metadata, read_dictionary=text)
    batches, size = [], 0
    with reader:
        present = [c for c in _READ if pf.schema_arrow.get_field_index(c) >= 0]
        for batch in reader.iter_batches(batch_size=_BATCH_ROWS, columns=present,
                                         use_threads=False):
            size += batch.nbytes
            if size > MAX_PARQUET_DECODED_MB * 2**20:
                raise TraceError(f"decodes to more than {MAX_PARQUET_DECODED_MB} MB",
                                 source=src)
            batches.append(batch)
    if not batches:
        return pa.table({name: pa.array([], COLUMNS[name][0]) for name in _READ})
    table = pa.Table.from_batches(batches)
    pa.default_memory_pool().release_unused()  # decoding buffers, back to the system
    for name in _SINCE:  # an older export: the later columns as nulls (chains)
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, COLUMNS[name][0]))
    return table


_BATCH_ROWS = 8192


def _check_arrays(table: pa.Table, src: str) -> None:
    """Arrow's full validation of each column read: decoding pages checks neither that a
    dictionary index lies within its dictionary nor that text is UTF-8."""
    for name in table.column_names:
        try:
            table.column(name).validate(full=True)
        except pa.ArrowException as e:
            if "UTF8" in str(e):
                raise TraceError("holds text that is not valid UTF-8", source=src,
                                 field_name=name) from None
            if "Dictionary indices invalid" in str(e):
                raise TraceError("is corrupt: a row's dictionary index points past its "
                                 "dictionary", source=src, field_name=name) from None
            raise TraceError(f"cannot be read ({_first_line(e)})", source=src,
                             field_name=name) from None


def _sorted(table: pa.Table, src: str) -> pa.Table:
    """Rows by run, then step (a run's step-less row first), then position (null last)."""
    runs = table.column("run_index")
    if runs.null_count:
        raise TraceError("has a row without run_index", source=src, field_name="run_index")
    keys = [runs.to_numpy(), pc.fill_null(table.column("step"), -1).to_numpy(),
            pc.fill_null(table.column("position"), 1 << 62).to_numpy()]
    order = np.lexsort(keys[::-1])  # stable, by run, then step, then position
    if np.array_equal(order, np.arange(len(order))):
        return table  # written in order (as traces_to_parquet does): no copy
    return table.take(pa.array(order))


def _run_bounds(table: pa.Table) -> list[tuple[int, int, int]]:
    """(run_index, first row, end row) of each run of a sorted table."""
    runs = table.column("run_index").to_numpy()
    starts = np.flatnonzero(np.diff(runs)) + 1
    edges = [0, *starts.tolist(), len(runs)]
    return [(int(runs[a]), a, b) for a, b in zip(edges[:-1], edges[1:])]


def _step_starts(table: pa.Table) -> np.ndarray:
    """Rows of a sorted table where a new (run, step) begins (rows without a step excluded)."""
    runs = table.column("run_index").to_numpy()
    steps = pc.fill_null(table.column("step"), -1).to_numpy()
    new = np.ones(len(runs), dtype=bool)
    new[1:] = (np.diff(runs) != 0) | (np.diff(steps) != 0)
    return np.flatnonzero(new & (steps >= 0))


def _python_cost(table: pa.Table) -> int:
    """What the rebuilt traces' lists would take in memory, estimated as the JSON Lines
    loader counts it (MemoryBudget: lists and the values in them), from the Arrow data
    alone."""
    starts = _step_starts(table)
    # each step's per-position lists (a top-k field's rows are counted as the lists below)
    cost = 64 * (len(_POSITION_FIELDS) - len(_TOP_FIELDS) - len(_SINCE)) * len(starts)
    for name in _POSITION_COLUMNS[1:]:
        col = table.column(name)
        if name in _SINCE:  # null in a chain: no list at all
            n = len(col) - col.null_count
            cost += 48 * n + 64 * len(starts) if n else 0
        else:
            cost += _cost(col)
    for name in ("emitted_ids", "emitted_text", "emitted_kinds"):
        cost += _cost(table.column(name).take(pa.array(starts, pa.int64())))
    return cost


def _cost(col: pa.ChunkedArray) -> int:
    if pa.types.is_list(col.type):
        return 64 * len(col) + _cost(pc.list_flatten(col))
    if pa.types.is_dictionary(col.type) or pa.types.is_string(col.type):
        return 96 * len(col) + 4 * _text_chars(col)
    return 48 * len(col)


def _text_chars(col: pa.ChunkedArray) -> int:
    """Characters of text a string column holds once every row has its own copy."""
    total = 0
    for chunk in col.chunks:
        if pa.types.is_dictionary(chunk.type):
            lengths = pc.take(pc.utf8_length(chunk.dictionary), chunk.indices)
        else:
            lengths = pc.utf8_length(chunk)
        total += pc.sum(lengths).as_py() or 0
    return total


def _check_schema(schema: pa.Schema, src: str) -> None:
    """The file says it is a specviz export of a version we read, with our columns."""
    meta = (schema.metadata or {}).get(METADATA_KEY)
    if meta is None:
        raise TraceError("is a Parquet file but not a specviz trace export (no 'specviz' "
                         "metadata; write it with traces_to_parquet)", source=src)
    try:
        info = json.loads(meta)
        fmt, version = info["format"], info["version"]
    except (ValueError, TypeError, KeyError):
        raise TraceError("has unreadable 'specviz' metadata", source=src) from None
    if fmt != PARQUET_FORMAT:
        raise TraceError(f"holds {json.dumps(fmt)[:40]}, not a specviz trace export", source=src)
    if not isinstance(version, int) or version > PARQUET_VERSION:
        raise TraceError(f"is export version {json.dumps(version)[:20]}; this specviz reads up to "
                         f"{PARQUET_VERSION} (upgrade specviz)", source=src)
    expected = [c for c in COLUMNS if _SINCE.get(c, 1) <= version]
    missing = [c for c in expected if schema.get_field_index(c) < 0]  # absent or repeated
    if missing:
        raise TraceError(f"lacks the column(s) {', '.join(missing)}", source=src)
    if len(schema) != len(expected):
        raise TraceError(f"has {len(schema):,} columns; an export has exactly "
                         f"{len(expected)}", source=src)
    for name in expected:
        typ = COLUMNS[name][0]
        found = schema.field(name).type
        if not found.equals(typ):
            raise TraceError(f"has type {found}, expected {typ}", source=src,
                             field_name=name)


def _first_line(e: BaseException) -> str:
    return one_line(e, 200, with_type=False)


def _one_value(table: pa.Table, name: str, src: str) -> str | None:
    """The value a run-level column holds on every row of one run (read without decoding
    the column row by row)."""
    values: set = set()
    for chunk in table.column(name).chunks:
        if pa.types.is_dictionary(chunk.type):
            used = pc.unique(chunk.indices.drop_null())
            values.update(chunk.dictionary.take(used).to_pylist())
            if chunk.null_count:
                values.add(None)
        else:
            values.update(pc.unique(chunk).to_pylist())
    if len(values) != 1:
        raise TraceError("differs between rows of one run", source=src, field_name=name)
    return values.pop()


def _rebuild(table: pa.Table, src: str, budget: MemoryBudget) -> Trace:
    """One run's rows (sorted) -> its records -> the validating loader -> a Trace.

    In error messages 'line' counts records within the run (1 = run, 2 = step 0, ...).
    """
    run_json = _one_value(table, "run_json", src)
    summary_json = _one_value(table, "summary_json", src)
    if run_json is None:
        raise TraceError("is null", source=src, field_name="run_json")
    starts = _step_starts(table)
    if len(starts) > MAX_STEPS_PER_RUN:
        raise TraceError(f"has {len(starts):,} steps; a run has at most "
                         f"{MAX_STEPS_PER_RUN:,}", source=src, field_name="step")

    def records():
        yield 1, record_from_json(run_json, src, 1)
        yield from _step_records(table, starts, src)
        if summary_json is not None:
            yield len(starts) + 2, record_from_json(summary_json, src, len(starts) + 2)

    traces = parse_records(records(), src, budget)
    if len(traces) != 1:
        raise TraceError(f"rebuilds into {len(traces)} runs, expected 1", source=src)
    return traces[0]


def _step_records(table: pa.Table, starts: np.ndarray, src: str):
    """(record number, step record as a dict) for each step of one run's sorted rows. Each
    column becomes Python values once; a step's lists are slices of them."""
    first = table.select(list(_STEP_COLUMNS)).take(pa.array(starts, pa.int64())).to_pydict()
    pos = {c: table.column(c).to_pylist() for c in _POSITION_COLUMNS}
    ends = [*starts[1:].tolist(), table.num_rows]
    for i, (a, b) in enumerate(zip(starts.tolist(), ends)):
        step = {k: v[i] for k, v in first.items()}
        rec: dict[str, Any] = {"record": "step", "step": step["step"],
                               "gamma": step["step_gamma"]}
        null_fields = set(step["null_fields"] or ())
        empty_fields = set(step["empty_fields"] or ())
        positions = pos["position"][a:b]
        drafted = step["step_gamma"] != 0 and positions[0] is not None
        if drafted and positions != list(range(b - a)):
            shown = ", ".join(map(str, positions[:8])) + (", ..." if b - a > 8 else "")
            raise TraceError(f"step {step['step']} has positions {shown}; expected 0, 1, ...",
                             source=src, field_name="position")
        for f in _POSITION_FIELDS:
            if f in null_fields or (f in _SINCE and drafted and all(
                    x is None for x in pos[f][a:b])):  # an older export: a chain
                rec[f] = None
            elif f in empty_fields or not drafted:
                rec[f] = []
            else:
                rec[f] = pos[_COLUMN_OF.get(f, f)][a:b]
        for k in ("emitted_ids", "emitted_text", "emitted_kinds", *_STEP_SCALARS):
            rec[k] = step[k]
        yield i + 2, rec
