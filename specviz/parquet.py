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

import io
import json
import os
from typing import IO, Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from .trace import StepRecord, Trace, TraceError, dumps, parse_lines

PARQUET_FORMAT = "specviz-trace-parquet"
PARQUET_VERSION = 1
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
    "evaluated": (_BOOL, "the verifier judged this position (position < n_evaluated)"),
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
                    "beta", "p_top_ids", "p_top_texts", "p_top_probs", "q_top_ids",
                    "q_top_texts", "q_top_probs")
_TOP_FIELDS = ("p_top_ids", "p_top_texts", "p_top_probs", "q_top_ids", "q_top_texts",
               "q_top_probs")
_COLUMN_OF = {"drafted_ids": "drafted_id"}  # step field -> column, where the names differ
_STEP_SCALARS = ("draft_ms", "verify_ms", "accept_ms", "total_ms", "t_end_s")


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
        row = dict(base, position=i, evaluated=i < s.n_evaluated)
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
                        source: str | None = None) -> list[Trace]:
    """Rebuild the traces of a ``traces_to_parquet`` export, equal to the originals.

    Raises TraceError for a file that is not Parquet, not a specviz export, or inconsistent.
    """
    if isinstance(path_or_bytes, (str, os.PathLike)):
        src = source or str(path_or_bytes)
    else:
        src = source or getattr(path_or_bytes, "name", "<parquet>")
    if isinstance(path_or_bytes, (bytes, bytearray)):
        path_or_bytes = io.BytesIO(path_or_bytes)
    try:
        pf = pq.ParquetFile(path_or_bytes)
    except (OSError, pa.ArrowException) as e:
        raise TraceError(f"is not a readable Parquet file ({_first_line(e)})",
                         source=src) from None
    with pf:
        _check_schema(pf.schema_arrow, src)
        try:
            rows = pf.read(columns=list(COLUMNS)).to_pylist()
        except (OSError, pa.ArrowException) as e:
            raise TraceError(f"cannot be read ({_first_line(e)})", source=src) from None
    if not rows:
        raise TraceError("holds no rows", source=src)
    return [_rebuild(group, f"{src}, run {index}") for index, group in _groups(rows, src)]


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
        raise TraceError(f"holds {fmt!r}, not a specviz trace export", source=src)
    if not isinstance(version, int) or version > PARQUET_VERSION:
        raise TraceError(f"is export version {version!r}; this specviz reads up to "
                         f"{PARQUET_VERSION} (upgrade specviz)", source=src)
    missing = [c for c in COLUMNS if schema.get_field_index(c) < 0]  # absent or repeated
    if missing:
        raise TraceError(f"lacks the column(s) {', '.join(missing)}", source=src)
    for name, (typ, _) in COLUMNS.items():
        found = schema.field(name).type
        if not found.equals(typ):
            raise TraceError(f"has type {found}, expected {typ}", source=src,
                             field_name=name)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def _groups(rows: list[dict], src: str) -> list[tuple[int, list[dict]]]:
    """Rows grouped by run_index, in order; each group sorted by step and position."""
    by_run: dict[int, list[dict]] = {}
    for r in rows:
        if not isinstance(r["run_index"], int):
            raise TraceError("has a row without run_index", source=src, field_name="run_index")
        by_run.setdefault(r["run_index"], []).append(r)
    big = 1 << 62
    return [(i, sorted(g, key=lambda r: (r["step"] if r["step"] is not None else -1,
                                         r["position"] if r["position"] is not None else big)))
            for i, g in sorted(by_run.items())]


def _rebuild(rows: list[dict], src: str) -> Trace:
    """One run's rows -> its JSON Lines records -> the validating loader -> a Trace.

    In error messages 'line' counts records within the run (1 = run, 2 = step 0, ...).
    """
    first = rows[0]
    for key in ("run_json", "summary_json"):
        if len({r[key] for r in rows}) != 1:
            raise TraceError("differs between rows of one run", source=src, field_name=key)
    if first["run_json"] is None:
        raise TraceError("is null", source=src, field_name="run_json")
    lines = [first["run_json"]]
    steps: dict[int, list[dict]] = {}
    for r in rows:
        if r["step"] is not None:
            steps.setdefault(r["step"], []).append(r)
    for n in sorted(steps):
        lines.append(json.dumps(_step_record(steps[n], src)))
    if first["summary_json"] is not None:
        lines.append(first["summary_json"])
    # each line ends with a newline: a broken record must raise, not pass as a cut-off write
    traces = parse_lines((line + "\n" for line in lines), source=src)
    if len(traces) != 1:
        raise TraceError(f"rebuilds into {len(traces)} runs, expected 1", source=src)
    return traces[0]


def _step_record(rows: list[dict], src: str) -> dict:
    """A step's rows -> its step record as a dict (the JSON Lines 'step' record)."""
    first = rows[0]
    rec: dict[str, Any] = {"record": "step", "step": first["step"], "gamma": first["step_gamma"]}
    null_fields = set(first["null_fields"] or ())
    empty_fields = set(first["empty_fields"] or ())
    drafted = first["step_gamma"] != 0 and first["position"] is not None
    if drafted and [r["position"] for r in rows] != list(range(len(rows))):
        raise TraceError(f"step {first['step']} has positions "
                         f"{[r['position'] for r in rows]}, expected 0, 1, ...",
                         source=src, field_name="position")
    for f in _POSITION_FIELDS:
        if f in null_fields:
            rec[f] = None
        elif f in empty_fields or not drafted:
            rec[f] = []
        else:
            rec[f] = [r[_COLUMN_OF.get(f, f)] for r in rows]
    for k in ("emitted_ids", "emitted_text", "emitted_kinds", *_STEP_SCALARS):
        rec[k] = first[k]
    return rec
