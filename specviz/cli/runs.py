"""``specviz runs``: many runs at once, on DuckDB (the Runs page's aggregates as text).

    specviz runs PATH...                      groups (α̂, tokens/step, speed-up), slowest runs
    specviz runs PATH... --sql "SELECT ..."   a read-only query over runs, positions, steps
    specviz runs PATH... --write-dataset DIR  add the runs to a Hive-partitioned dataset
    specviz runs --vllm SCRAPE [SCRAPE2]      vLLM's spec-decode counters (totals, or interval)

PATH: trace files (JSON Lines or Parquet), folders of them, or a runs dataset. Files left
out are named on stderr, one line each; the rest is read.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from ..errors import one_line
from .common import CliError


def register(sub) -> None:
    p = sub.add_parser("runs", help="aggregate many runs (DuckDB), write a runs dataset, or "
                                    "read vLLM's spec-decode metrics")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="trace files, folders of them, or a runs dataset")
    p.add_argument("--by", default="pair,drafter,shape,temperature,device,engine",
                   help="group columns, comma-separated (default: %(default)s)")
    p.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                   help="keep runs with this value (repeatable; e.g. drafter=model)")
    p.add_argument("--order", choices=["slowest first", "least accepted first",
                                       "fastest first"], default="slowest first")
    p.add_argument("--top", type=int, default=10, help="runs listed (default 10)")
    p.add_argument("--sql", default=None, help="one read-only SELECT over runs, positions, steps")
    p.add_argument("--write-dataset", default=None, metavar="DIR",
                   help="add the runs (and their traces) to this Parquet dataset")
    p.add_argument("--categories", default=None, metavar="FILE",
                   help="prompts file (JSON Lines with prompt and category) naming categories")
    p.add_argument("--vllm", nargs="+", default=None, metavar="SCRAPE",
                   help="one or two Prometheus /metrics scrapes of a vLLM server")
    p.add_argument("--interval", type=float, default=None, metavar="SECONDS",
                   help="seconds between the two scrapes (for drafts per second)")
    p.set_defaults(func=cmd_runs)


def cmd_runs(args) -> int:
    if args.vllm:
        return _vllm(args.vllm, args.interval)
    if not args.paths:
        raise CliError("give trace files, folders or a runs dataset (or --vllm SCRAPE)")
    from ..traces.records import TraceError
    try:
        if args.write_dataset:
            return _write(args)
        db = _open(args.paths, args.categories)
    except TraceError as e:
        raise CliError(str(e)) from None
    if args.sql:
        return _sql(db, args.sql)
    return _summary(db, args)


def _categories(path: str | None) -> dict[str, str] | None:
    from ..runs.scan import read_categories
    return read_categories(path) if path else None


def _open(paths: list[str], categories: str | None):
    from ..runs.dataset import is_dataset
    from ..runs.db import RunsDB
    from ..runs.scan import load_paths
    if len(paths) == 1 and is_dataset(paths[0]):
        return RunsDB.from_dataset(paths[0])
    loaded = load_paths(paths, _categories(categories))
    for line in loaded.problems:
        print(f"specviz: {line}", file=sys.stderr)
    if not loaded.runs.num_rows:
        raise CliError("no runs could be read")
    return RunsDB.from_tables(loaded.runs, loaded.steps)


def _write(args) -> int:
    from ..runs.dataset import write_traces_dataset
    from ..runs.scan import Lines, read_trace_file, trace_files
    cats = _categories(args.categories)
    lines = Lines()
    named, runs, steps = [], 0, 0

    def flush():
        nonlocal named, runs, steps
        if named:
            w = write_traces_dataset(args.write_dataset, named, cats)
            runs, steps, named = runs + w["runs"], steps + w["steps"], []

    for f, name in trace_files(args.paths, lines, max_files=100_000):
        try:
            named.append((name, read_trace_file(f, name)))
        except Exception as e:  # one line each; the other files are written
            lines.add(str(e) if isinstance(e, ValueError) else f"{name}: {one_line(e)}")
        if len(named) >= 200:  # a part file per partition and 200 trace files
            flush()
    flush()
    for line in lines.done():
        print(f"specviz: {line}", file=sys.stderr)
    if not runs:
        raise CliError("no runs could be read")
    print(f"added {runs:,} runs, {steps:,} steps to {args.write_dataset}")
    return 0


def _filters(where: list[str]):
    from ..runs.queries import FILTER_COLUMNS, Filters
    values: dict[str, tuple[str, ...]] = {}
    for w in where:
        col, sep, value = w.partition("=")
        if not sep or col not in FILTER_COLUMNS:
            raise CliError(f"--where takes COLUMN=VALUE with a column of "
                           f"{', '.join(FILTER_COLUMNS)}; got {w[:60]!r}")
        values[col] = values.get(col, ()) + (value,)
    return Filters(values)


def _summary(db, args) -> int:
    from ..runs import queries as Q
    f = _filters(args.where)
    by = tuple(c for c in args.by.split(",") if c)
    try:
        groups = Q.group_table(db, f, by)
    except ValueError as e:
        raise CliError(str(e)) from None
    o = Q.overview(db, f)
    print(f"{o['runs']:,} speculative runs ({o['steps']:,} steps, {o['with_baseline']:,} with a "
          f"target-only baseline) of {o['all_runs']:,} runs")
    for _, g in groups.iterrows():
        name = " · ".join(str(g[c]) for c in by) or "all runs"
        print(f"  {name}\n    runs {g['runs']:,}  α̂ {_n(g['alpha_hat'])} "
              f"[{_n(g['alpha_lo'])}, {_n(g['alpha_hi'])}]  tokens/step "
              f"{_n(g['tokens_per_step'], 2)}  speed-up {_n(g['speedup'], 2)}× "
              f"[{_n(g['speedup_lo'], 2)}, {_n(g['speedup_hi'], 2)}] "
              f"(n={g['with_baseline']})")
    runs = Q.run_table(db, f, args.order, max(args.top, 0))
    print(f"runs, {args.order}:")
    for _, r in runs.iterrows():
        print(f"  {r['run_key']}  {r['shape']}  α̂ {_n(r['alpha_hat'])}  speed-up "
              f"{_n(r['speedup'], 2)}×  {str(r['prompt'])[:40]!r}")
    return 0


def _n(x, digits: int = 3) -> str:
    try:
        return "–" if x is None or not math.isfinite(float(x)) else f"{float(x):.{digits}f}"
    except (TypeError, ValueError):
        return "–"


def _sql(db, sql: str) -> int:
    from ..runs.sandbox import SqlRefused, run_user_sql
    try:
        df, more = run_user_sql(db, sql)
    except SqlRefused as e:
        raise CliError(f"query not run: {e}") from None
    print(df.to_csv(index=False), end="")
    if more:
        print("specviz: more rows than shown (first 1,000)", file=sys.stderr)
    return 0


def _vllm(paths: list[str], seconds: float | None) -> int:
    from ..runs import vllm as V
    if len(paths) > 2:
        raise CliError("--vllm takes one scrape (totals) or two (the interval between them)")
    scrapes = []
    for p in paths:
        try:
            text = Path(p).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise CliError(f"cannot read {p}: {getattr(e, 'strerror', None) or 'not UTF-8'}"
                           ) from None
        try:
            scrapes.append(V.parse_scrape(text, p))
        except V.ScrapeError as e:
            raise CliError(str(e)) from None
    for s in scrapes:
        for line in s.problems:
            print(f"specviz: {line}", file=sys.stderr)
    try:
        stats = V.interval(*scrapes, seconds) if len(scrapes) == 2 else V.totals(scrapes[0])
    except V.ScrapeError as e:
        raise CliError(str(e)) from None
    if not stats:
        raise CliError("no vLLM spec-decode counters in the scrape")
    for s in stats:
        for note in s.notes:
            print(f"specviz: {note}", file=sys.stderr)
        print(f"{s.model or '(no model_name)'}: drafts {s.drafts:,.0f}, α̂ {_n(s.alpha_hat)}, "
              f"tokens/step {_n(s.mean_accepted_length, 2)}, accepted/drafted "
              f"{_n(s.acceptance_rate)}, drafts/s {_n(s.drafts_per_s, 1)}")
        print("  α by position: " + ", ".join(f"{i + 1}: {_n(a)}"
                                             for i, a in enumerate(s.alpha_by_position)))
    return 0
