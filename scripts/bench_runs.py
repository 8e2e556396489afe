"""Time the Runs page over a runs dataset: first view, filter changes, server memory.

    python3 scripts/make_runs_dataset.py /tmp/specviz_runs_10k     # 10,000 runs, 5,000,000 steps
    python3 scripts/bench_runs.py /tmp/specviz_runs_10k [--repeat 3] [--out docs/bench/runs/x.txt]

The app runs in this process under streamlit.testing's AppTest (the server's side of a
first view: the page's script, its DuckDB queries and figures; not the browser's drawing),
with SPECVIZ_RUNS_DIR pointing at the dataset. Each measurement is a fresh process-wide
cache for "first view" (the dataset opened, every query run), then filter changes on the
warm page. Peak memory is this process's maximum resident set (AppTest, Streamlit, pandas,
DuckDB and the data). The machine's load is printed before and after: on a shared machine
the times move with it.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.2f} {b:.2f} {c:.2f} on {os.cpu_count()} CPUs"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


CPU: list[float] = []  # CPU seconds of this process (all its threads) per measurement


def _timed(fn) -> float:
    t, c = time.perf_counter(), time.process_time()
    fn()
    CPU.append(time.process_time() - c)
    return time.perf_counter() - t


def _page(at, failures: list[str]):
    if at.exception:
        failures.append(str([e.value for e in at.exception])[:300])
    return at


def bench(dataset: str, repeat: int) -> list[str]:
    from streamlit.testing.v1 import AppTest
    os.environ["SPECVIZ_RUNS_DIR"] = dataset
    lines, failures = [], []
    first, session, filt, group, order = [], [], [], [], []
    for _ in range(repeat):
        import streamlit as st
        st.cache_resource.clear()
        st.cache_data.clear()
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.switch_page("app_pages/runs.py")  # straight to it, as a link to /runs opens
        first.append(_timed(lambda a=at: _page(a.run(), failures)))
        runs = at.metric[0].value
        # a second visitor: the dataset is open (shared), the page runs for a new session
        other = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        other.switch_page("app_pages/runs.py")
        session.append(_timed(lambda a=other: _page(a.run(), failures)))
        # two filter changes: a drafter, then a τ as well
        for key, value in (("runs_f_drafter", "model"), ("runs_f_temperature", "0.7")):
            ms = at.multiselect(key=key)
            filt.append(_timed(lambda m=ms, v=value: _page(m.set_value([v]).run(), failures)))
        filtered = at.metric[0].value
        g = at.multiselect(key="runs_by")
        group.append(_timed(lambda m=g: _page(m.set_value(["drafter", "shape"]).run(),
                                              failures)))
        r = at.radio(key="runs_order")
        order.append(_timed(lambda m=r: _page(m.set_value("least accepted first").run(),
                                              failures)))
    lines.append(f"speculative runs shown at first: {runs}; after two filters (drafter = "
                 f"model, τ = 0.7): {filtered}")
    rows = list(zip(*[iter(CPU[-6 * repeat:])] * 6))
    cpu_of = {"first view": [r[0] for r in rows], "new session": [r[1] for r in rows],
              "filter change": [x for r in rows for x in r[2:4]],
              "group change": [r[4] for r in rows], "order change": [r[5] for r in rows]}
    for name, xs in (("first view", first), ("new session", session), ("filter change", filt),
                     ("group change", group), ("order change", order)):
        lines.append(f"{name:14s} median {statistics.median(xs):.2f} s, max {max(xs):.2f} s "
                     f"(n={len(xs)}: {', '.join(f'{x:.2f}' for x in xs)}); CPU time median "
                     f"{statistics.median(cpu_of[name]):.2f} s")
    lines.append(f"peak resident memory of this process: {_rss_mb():.0f} MB")
    if failures:
        lines.append(f"FAILURES: {failures[:3]}")
    return lines


def library(dataset: str) -> list[str]:
    """The same queries without Streamlit, cold then warm."""
    from specviz.runs import queries as Q
    from specviz.runs.db import RunsDB
    from specviz.runs.sandbox import run_user_sql
    t = time.perf_counter()
    db = RunsDB.from_dataset(dataset)
    out = [f"library: open the dataset {time.perf_counter() - t:.2f} s"]
    f = Q.Filters()
    for name, fn in (("overview", lambda: Q.overview(db, f)),
                     ("groups", lambda: Q.group_table(db, f)),
                     ("positions", lambda: Q.position_table(db, f)),
                     ("runs (200, slowest)", lambda: Q.run_table(db, f)),
                     ("options", lambda: Q.filter_options(db)),
                     ("user SQL over 5M steps", lambda: run_user_sql(
                         db, "SELECT gamma, avg(n_accepted) FROM steps GROUP BY ALL"))):
        out.append(f"library: {name} {_timed(fn):.3f} s")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import duckdb
    import streamlit
    head = [f"specviz Runs page benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
            f"Streamlit {streamlit.__version__}",
            f"dataset: {args.dataset}", f"before: {_load()}"]
    lines = head + library(args.dataset) + bench(args.dataset, args.repeat) + [f"after: {_load()}"]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
