"""Logged runs as a Parquet dataset with Hive-style partitions, for DuckDB, Spark or Trino.

Layout (docs/runs.md)::

    DATASET/_specviz_runs.json                  {"format": "specviz-runs-dataset", "version": 1}
    DATASET/runs/pair=P/drafter=D/date=YYYY-MM-DD/part-<id>.parquet       one row per run
    DATASET/positions/pair=P/drafter=D/date=…/part-<id>.parquet           run × draft position
    DATASET/steps/pair=P/drafter=D/date=…/part-<id>.parquet               one row per step
    DATASET/traces/pair=P/drafter=D/date=…/part-<id>.parquet              the traces themselves
                                                                          (specviz's export)

The partition columns (pair, drafter, date) live in the folder names only, as Hive does;
their values are escaped as Spark escapes them (``%`` + two hex digits for ``"#%'*/:=?\\{[]^``,
control characters and DEL), a null drafter (target-only runs) is
``__HIVE_DEFAULT_PARTITION__``. Each write adds new part files (a unique id each), never
rewrites old ones, so several writers may add to one dataset.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ..limits import MAX_RUNS_PER_FILE
from ..traces.records import Trace, TraceError
from .db import POSITIONS_SQL, TOTALS_SQL
from .tables import STEP_COLUMNS, TableBuilder

FORMAT = "specviz-runs-dataset"
VERSION = 1
MARKER = "_specviz_runs.json"
PARTITIONS = ("pair", "drafter", "date")
TABLES = ("runs", "positions", "steps")
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
_ESCAPE = set('"#%\'*/:=?\\{[]^') | {chr(c) for c in range(1, 32)} | {"\x7f"}


def escape(value: str | None) -> str:
    """A partition value as a folder name, escaped as Spark's escapePathName does."""
    if value is None:
        return NULL_PARTITION
    return "".join(f"%{ord(c):02X}" if c in _ESCAPE else c for c in value) or NULL_PARTITION


def is_dataset(path: str | Path) -> bool:
    return (Path(path) / MARKER).is_file()


def _check_marker(root: Path) -> None:
    try:
        info = json.loads((root / MARKER).read_text(encoding="utf-8"))
        fmt, version = info["format"], info["version"]
    except (OSError, ValueError, TypeError, KeyError):
        raise TraceError(f"has an unreadable {MARKER}", source=str(root)) from None
    if fmt != FORMAT or not isinstance(version, int) or version > VERSION:
        raise TraceError(f"is a runs dataset of another format or a newer version "
                         f"({json.dumps(fmt)[:40]}, {json.dumps(version)[:10]}); this specviz "
                         f"reads {FORMAT} up to {VERSION}", source=str(root))


def derived_tables(runs: pa.Table, steps: pa.Table) -> dict[str, pa.Table]:
    """runs (with totals), positions and steps, computed in SQL as the app computes them."""
    con = duckdb.connect(":memory:", config={"threads": 2, "memory_limit": "1GB"})
    try:
        con.register("runs_in", runs)
        con.register("steps", steps)
        return {
            "runs": con.sql(TOTALS_SQL.format(runs="runs_in", steps="steps")
                                ).to_arrow_table(),
            "positions": con.sql(
                "SELECT r.pair, r.drafter, r.date, p.* FROM ("
                + POSITIONS_SQL.format(steps="steps") + ") p JOIN runs_in r USING (run_key)"
            ).to_arrow_table(),
            "steps": con.sql("SELECT r.pair, r.drafter, r.date, s.* FROM steps s "
                                 "JOIN runs_in r USING (run_key)").to_arrow_table(),
        }
    finally:
        con.close()


def _partitions(table: pa.Table) -> Iterable[tuple[tuple, pa.Table]]:
    """(pair, drafter, date) -> the rows of that partition, partition columns dropped."""
    keys = list(zip(*(table.column(c).to_pylist() for c in PARTITIONS)))
    rows: dict[tuple, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        rows[k].append(i)
    rest = [c for c in table.column_names if c not in PARTITIONS]
    for k, idx in rows.items():
        yield k, table.select(rest).take(pa.array(idx, pa.int64()))


def _folder(root: Path, table: str, key: tuple) -> Path:
    return root / table / "/".join(f"{name}={escape(v)}" for name, v in zip(PARTITIONS, key))


def prepare(root: str | Path) -> Path:
    """A new dataset at ``root`` (an empty or new folder), or the one already there."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise TraceError("is a file, not a folder", source=str(root))
    if root.exists() and any(root.iterdir()) and not is_dataset(root):
        raise TraceError(f"is a folder that is not a runs dataset (no {MARKER}); give a new "
                         "or empty folder", source=str(root))
    root.mkdir(parents=True, exist_ok=True)
    if not is_dataset(root):
        (root / MARKER).write_text(json.dumps({"format": FORMAT, "version": VERSION}) + "\n")
    _check_marker(root)
    return root


def write_tables(root: str | Path, runs: pa.Table, steps: pa.Table) -> dict[str, int]:
    """Add runs and their steps (specviz.runs.tables) to the dataset at ``root`` (made if
    new). Returns the rows written per table."""
    root = prepare(root)
    written = {}
    part = uuid.uuid4().hex[:16]
    for name, table in derived_tables(runs, steps).items():
        for key, rows in _partitions(table):
            folder = _folder(root, name, key)
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(rows, folder / f"part-{part}.parquet", compression="zstd")
        written[name] = table.num_rows
    return written


def write_traces_dataset(root: str | Path, named: Iterable[tuple[str, list[Trace]]],
                         categories: dict[str, str] | None = None) -> dict[str, int]:
    """Add traces (source name, its runs) to the dataset at ``root``: the runs, positions
    and steps tables, and the traces themselves (specviz's Parquet export, one file per
    partition and source, at most MAX_RUNS_PER_FILE runs each) so any run opens again in
    the Trace inspector."""
    from ..traces.parquet import traces_to_parquet
    root = prepare(root)
    builder = TableBuilder()
    by_part: dict[tuple, list[tuple[Trace, str]]] = defaultdict(list)
    part = uuid.uuid4().hex[:16]
    for source, traces in named:
        for i, t in enumerate(traces):
            row_before = len(builder.runs)
            builder.add(t, source, i, categories)
            row = builder.runs[row_before]
            by_part[(row["pair"], row["drafter"], row["date"], source)].append((t, row["run_key"]))
    # where each run's trace goes: a file of its partition, its index in that file
    rows = {r["run_key"]: r for r in builder.runs}
    for k, ((pair, drafter, date, _), items) in enumerate(by_part.items()):
        folder = _folder(root, "traces", (pair, drafter, date))
        for n, a in enumerate(range(0, len(items), MAX_RUNS_PER_FILE)):
            chunk = items[a:a + MAX_RUNS_PER_FILE]
            rel = folder.relative_to(root) / f"part-{part}-{k}-{n}.parquet"
            for j, (_, key) in enumerate(chunk):
                rows[key]["trace_file"] = f"{rel.as_posix()}#{j}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            traces_to_parquet([t for t, _ in chunk], root / rel)
    runs, steps = builder.tables()
    written = write_tables(root, runs, steps)
    written["traces"] = runs.num_rows
    return written


_SQL_TYPE = {pa.string(): "VARCHAR", pa.bool_(): "BOOLEAN", pa.float64(): "DOUBLE",
             pa.int32(): "INTEGER", pa.int64(): "BIGINT"}
_EMPTY = {  # a table no write has had rows for (e.g. no chain step anywhere: no positions)
    "positions": "CREATE TABLE positions (pair VARCHAR, drafter VARCHAR, date VARCHAR, "
                 "run_key VARCHAR, position INTEGER, judged BIGINT, accepted BIGINT)",
    "steps": "CREATE TABLE steps (pair VARCHAR, drafter VARCHAR, date VARCHAR, "
             + ", ".join(f"{k} {_SQL_TYPE[t]}" for k, (t, _) in STEP_COLUMNS.items()) + ")",
}


def dataset_views(root: Path) -> list[str]:
    """The statements that make a dataset's tables (read in place, Hive partitions)."""
    _check_marker(root)
    out = []
    hive = "{'pair': 'VARCHAR', 'drafter': 'VARCHAR', 'date': 'VARCHAR'}"
    for name in TABLES:
        if not any((root / name).glob("**/*.parquet")):
            if name == "runs":
                raise TraceError("has no runs files", source=str(root))
            out.append(_EMPTY[name])
            continue
        glob = (root / name).as_posix().replace("'", "''") + "/**/*.parquet"
        # runs and positions are small (a row per run, per run and position): held in
        # memory; steps (a row per step) stay on disk, read when a query needs them
        kind, target = ("VIEW", name) if name == "steps" else \
            ("TABLE", "runs_base" if name == "runs" else name)
        out.append(f"CREATE {kind} {target} AS SELECT * FROM read_parquet('{glob}', "
                   f"hive_partitioning = true, hive_types = {hive})")
    return out


def resolve_trace(root: str | Path, trace_file: str) -> tuple[Path, int]:
    """A runs row's ``trace_file`` ('traces/…/part-….parquet#3') -> (file, run index), the
    file inside the dataset's traces folder (TraceError otherwise)."""
    rel, _, index = trace_file.rpartition("#")
    root = Path(root).resolve()
    path = (root / rel).resolve()
    if not index.isdigit() or not path.is_relative_to(root / "traces") or not path.is_file():
        raise TraceError("names no trace file of this dataset", source=trace_file[:200])
    return path, int(index)
