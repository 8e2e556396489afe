"""The Runs page's widgets: where the runs come from, filters, the aggregates, the runs
table with a run to open in the Trace inspector, read-only SQL, and vLLM's metrics.

The data live in a RunsDB (specviz.runs.db: DuckDB, locked down), one per source, shared
by every session (st.cache_resource); query results are cached per source and filters.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from specviz import Trace, TraceError
from specviz import figures as G
from specviz.errors import one_line
from specviz.figures import runs_views as RV
from specviz.figures.theory_views import MEASURED_LABEL
from specviz.limits import GAMMA_MAX, GAMMA_MIN
from specviz.paths import PROMPTS
from specviz.runs import queries as Q
from specviz.runs import vllm as V
from specviz.runs.db import RunsDB
from specviz.runs.sandbox import MAX_ROWS, SqlRefused, run_user_sql
from specviz.runs.scan import load_paths, load_traces, read_categories, read_trace_file
from specviz.teaching import theory as T
from specviz.traces.visible import visible
from ui.common import TRACES_DIR, TRACES_ENV
from ui.plain import as_text, visible_frame
from ui.uploads import MAX_UPLOAD_MB, UPLOAD_TYPES, read_uploads, upload_label

DATASET_ENV = "SPECVIZ_RUNS_DIR"  # a runs dataset (or folder of traces) this server offers
BUNDLED, UPLOADED = "Bundled traces", "Uploaded traces"
OPENED = "runs_opened"  # session key: the run (and its baselines) to show in the inspector
POINTS = "runs_vllm_points"  # session key: vLLM intervals placed on the Theory page
SHOWN_RUNS = 200
DEFAULT_SQL = ("SELECT drafter, shape, count(*) AS runs, avg(alpha_hat) AS mean_alpha,\n"
               "       median(speedup) AS median_speedup\n"
               "FROM runs WHERE mode = 'speculative' GROUP BY ALL ORDER BY median_speedup")


# ---------------------------------------------------------------- sources
def _categories() -> dict[str, str]:
    out: dict[str, str] = {}
    for f in sorted(PROMPTS.glob("*.jsonl")) if PROMPTS.is_dir() else []:
        try:
            out.update(read_categories(f))
        except TraceError:
            continue
    return out


@st.cache_resource(show_spinner="Reading the runs …", max_entries=4)
def _folder_db(path: str, stamp: float) -> tuple[RunsDB, list[str]]:
    """A folder of traces or a runs dataset -> (RunsDB, lines about what was left out)."""
    from specviz.runs.dataset import is_dataset
    if is_dataset(path):
        return RunsDB.from_dataset(path), []
    loaded = load_paths([path], categories=_categories())
    return RunsDB.from_tables(loaded.runs, loaded.steps, path), loaded.problems


@st.cache_resource(show_spinner="Reading the runs …", max_entries=4)
def _uploads_db(key: str, _named: list[tuple[str, list[Trace]]]) -> RunsDB:
    loaded = load_traces(_named, categories=_categories())
    return RunsDB.from_tables(loaded.runs, loaded.steps, "uploads")


def _stamp(path: Path) -> float:
    try:
        return path.stat().st_mtime + sum(p.stat().st_mtime for p in path.iterdir())
    except OSError:
        return 0.0


def source_ui() -> tuple[RunsDB | None, str]:
    """Where the runs come from -> (RunsDB or None, a key naming this data for caches)."""
    dataset = os.environ.get(DATASET_ENV)
    options = [BUNDLED, UPLOADED] + ([f"Logged runs: {dataset}"] if dataset else [])
    if "runs_source" not in st.session_state:
        st.session_state.runs_source = options[-1] if dataset else BUNDLED
    left, right = st.columns([5, 1])
    choice = left.radio("Runs from", options, key="runs_source", horizontal=True)
    if choice == UPLOADED:
        return _uploads_ui()
    if right.button("Read again", key="runs_reload", help="Read the folder or dataset again "
                    "(runs added since it was opened)"):
        _folder_db.clear()
    path = Path(dataset if choice != BUNDLED else os.environ.get(TRACES_ENV) or TRACES_DIR)
    if not path.is_dir():
        st.error(f"{as_text(path)} is not a folder.")
        return None, ""
    try:
        db, problems = _folder_db(str(path), _stamp(path))
    except TraceError as e:
        st.error(as_text(e))
        return None, ""
    except Exception as e:  # one plain line, never a traceback
        st.error(f"Cannot read the runs: {as_text(one_line(e))}")
        return None, ""
    _problems_ui(problems)
    return db, db.token


def _problems_ui(problems: list[str]) -> None:
    if problems:
        with st.expander(f"{len(problems)} note(s) on files left out", expanded=False):
            for line in problems:
                st.caption(as_text(line))


def _uploads_ui() -> tuple[RunsDB | None, str]:
    files = st.file_uploader(upload_label("Trace files", each=True), type=UPLOAD_TYPES,
                             accept_multiple_files=True, max_upload_size=MAX_UPLOAD_MB,
                             key="runs_uploads")
    named, problems = [], []
    for name, traces, error in read_uploads(files or []):
        if error:
            problems.append(error)
        elif traces:
            named.append((name, traces))
    for line in problems:
        st.error(as_text(line))
    if not named:
        st.info("Upload trace files (JSON Lines or Parquet), or choose the bundled traces.")
        return None, ""
    key = hashlib.sha256("|".join(f"{n}:{t[0].run.run_id}:{len(t)}" for n, t in named)
                         .encode()).hexdigest()[:16]
    return _uploads_db(key, named), key


# ---------------------------------------------------------------- filters and aggregates
@st.cache_data(show_spinner=False, max_entries=16)
def _options(key: str, _db: RunsDB) -> dict[str, list[tuple[str, int]]]:
    return Q.filter_options(_db)


def filters_ui(db: RunsDB, key: str) -> tuple[Q.Filters, tuple[str, ...]]:
    """Filters (values per column, prompt text) and the group columns."""
    options = _options(key, db)
    names = {"pair": "pair (target ← draft)", "drafter": "drafter", "shape": "γ or tree",
             "temperature": "τ", "device": "device", "engine": "engine",
             "category": "category", "source": "file"}
    chosen = {}
    with st.expander("Filters", expanded=True):
        cols = st.columns(4)
        for i, col in enumerate(Q.FILTER_COLUMNS):
            values = [v for v, _ in options.get(col, [])]
            counts = dict(options.get(col, []))
            chosen[col] = tuple(cols[i % 4].multiselect(
                names[col], values, key=f"runs_f_{col}", placeholder="all",
                format_func=lambda v, c=counts: f"{visible(str(v))} ({c.get(v, 0):,})"))
        prompt = st.text_input("Prompt contains", key="runs_f_prompt", max_chars=200)
    by = st.multiselect("Group by", Q.GROUP_COLUMNS, default=list(Q.DEFAULT_GROUP),
                        key="runs_by")
    return Q.Filters({k: v for k, v in chosen.items() if v}, prompt.strip()), tuple(by)


def _fkey(f: Q.Filters) -> tuple:
    return tuple(sorted(f.values.items())), f.prompt_contains


@st.cache_data(show_spinner=False, max_entries=64)
def _aggregates(key: str, fkey: tuple, by: tuple, _db: RunsDB, _f: Q.Filters) -> dict:
    groups = Q.group_table(_db, _f, by)
    groups[RV.GROUP] = Q.group_label(groups, by)
    pos = Q.position_table(_db, _f, by)
    pos[RV.GROUP] = Q.group_label(pos, by)
    return {"overview": Q.overview(_db, _f), "groups": groups, "positions": pos}


def aggregates_ui(db: RunsDB, key: str, f: Q.Filters, by: tuple[str, ...]) -> None:
    """Counts, the groups' table, speed-up and acceptance by position."""
    agg = _aggregates(key, _fkey(f), by, db, f)
    o = agg["overview"]
    m = st.columns(4)
    m[0].metric("speculative runs", f"{o['runs']:,}", help=f"of {o['all_runs']:,} runs; "
                f"{o['target_only']:,} target-only runs serve as baselines")
    m[1].metric("verification steps", f"{o['steps']:,}")
    m[2].metric("with a baseline", f"{o['with_baseline']:,}",
                help="a target-only run that names the run (baseline_of), else the one "
                     "target-only run of the same file and set-up")
    m[3].metric("incomplete / tree runs", f"{o['incomplete']:,} / {o['trees']:,}")
    if not o["runs"]:
        st.info("No speculative run matches these filters.")
        return
    groups = agg["groups"]
    st.dataframe(visible_frame(_groups_shown(groups, by)), hide_index=True, key="runs_groups")
    st.caption("α̂ pools the group's judged positions; its 95 % Wilson interval treats "
               "positions as independent, so read it with the runs' quartiles beside it. "
               "Speed-up: geometric mean of the runs with a baseline, 95 % t-interval, "
               "range. Slowest groups first.")
    if groups["speedup"].notna().any():
        st.plotly_chart(RV.fig_group_speedup(groups), key="runs_fig_speed")
    else:
        st.info("No run here has a target-only baseline: no speed-up to show.")
    left_out = Q.positions_left_out(o)
    if not agg["positions"].empty:
        st.plotly_chart(RV.fig_position_acceptance(agg["positions"]), key="runs_fig_pos")
        st.caption(f"Up to {RV.MAX_LINES} groups, those with the most judged positions. "
                   + (left_out or "Every run here is a chain: all are shown."))
    elif left_out:
        st.info(f"Acceptance by position: none to show. {left_out}")


def _groups_shown(groups: pd.DataFrame, by) -> pd.DataFrame:
    d = groups.copy()

    def rng(lo, hi, fmt="{:.3f}"):
        return [("–" if pd.isna(a) else f"{fmt.format(a)}–{fmt.format(b)}")
                for a, b in zip(d[lo], d[hi])]
    d["α̂ 95 %"] = rng("alpha_lo", "alpha_hi")
    d["α̂ runs' IQR"] = rng("alpha_q1", "alpha_q3")
    d["speed-up 95 %"] = rng("speedup_lo", "speedup_hi", "{:.2f}")
    d["speed-up range"] = rng("speedup_min", "speedup_max", "{:.2f}")
    keep = [*Q._by(by), "runs", "steps", "alpha_hat", "α̂ 95 %", "α̂ runs' IQR",
            "tokens_per_step", "tokens_per_step_sd", "with_baseline", "speedup",
            "speed-up 95 %", "speed-up range"]
    return d[[c for c in keep if c in d.columns]].rename(columns={
        "alpha_hat": "α̂", "tokens_per_step": "tokens / step",
        "tokens_per_step_sd": "tokens / step (sd over runs)", "with_baseline": "runs with baseline",
        "speedup": "speed-up (×)"})


# ---------------------------------------------------------------- runs and opening one
@st.cache_data(show_spinner=False, max_entries=64)
def _runs(key: str, fkey: tuple, order: str, _db: RunsDB, _f: Q.Filters) -> pd.DataFrame:
    return Q.run_table(_db, _f, order, SHOWN_RUNS)


def runs_table_ui(db: RunsDB, key: str, f: Q.Filters) -> None:
    """The runs, slowest or least accepted first, and a button that opens one."""
    order = st.radio("Order", list(Q.ORDERS), horizontal=True, key="runs_order")
    runs = _runs(key, _fkey(f), order, db, f)
    if runs.empty:
        return
    every = st.checkbox("all columns", key="runs_all_columns",
                        help="Also the prompt, pair, drafter, τ, device, engine, category, "
                             "tokens/s, the baseline's kind, steps and file (the table then "
                             "scrolls sideways on a narrow screen).")
    st.dataframe(visible_frame(runs.drop(columns=["trace_file", "run_index"])), hide_index=True,
                 key="runs_table", column_order=None if every else RUNS_DEFAULT,
                 column_config=_runs_config(every))
    st.caption(f"The first {min(len(runs), SHOWN_RUNS)} runs in this order; narrow the "
               "filters or use SQL below for the others.")
    st.plotly_chart(RV.fig_runs_scatter(runs), key="runs_fig_scatter")
    c1, c2 = st.columns([3, 1])
    pick = c1.selectbox("Run to open", runs["run_key"].tolist(), key="runs_pick",
                        format_func=lambda v: visible(str(v)))
    if c2.button("Open in the Trace inspector", key="runs_open", type="primary"):
        error = open_run(db, pick)
        if error:
            st.error(as_text(error))
        else:
            st.switch_page("app_pages/inspector.py")


# The runs table's default view fits the main area at 1024 px (~560 px): which run, its
# shape and what it gave; every other column one checkbox away.
RUNS_DEFAULT = ["run_key", "shape", "alpha_hat", "tokens_per_step", "speedup"]


def _runs_config(every: bool) -> dict:
    cc = st.column_config
    return {
        "run_key": cc.TextColumn("run", width=280 if not every else "medium", pinned=every,
                                 help="file#index: the run (open it below)"),
        "shape": cc.TextColumn("shape", width=64),
        "alpha_hat": cc.NumberColumn("α̂", format="%.2f", width=52,
                                     help="accepted / judged drafted tokens"),
        "tokens_per_step": cc.NumberColumn("tok/step", format="%.2f", width=70,
                                           help="tokens emitted per verification step"),
        "speedup": cc.NumberColumn("speed-up", format="%.2f×", width=74,
                                   help="tokens/s over its target-only baseline's"),
        "tokens_per_s": cc.NumberColumn("tokens/s", format="%.1f"),
        "temperature": cc.NumberColumn("τ", format="%.2f"),
        "prompt": cc.TextColumn("prompt", width="large"),
    }


def _read_run(db: RunsDB, row: dict) -> Trace:
    from specviz.runs.dataset import is_dataset, resolve_trace
    where = row.get("trace_file")
    if not isinstance(where, str) or not where:
        raise TraceError("has no trace file to open (its runs table row alone was logged)",
                         source=str(row["run_key"]))
    if is_dataset(db.description):
        path, index = resolve_trace(db.description, where)
    else:
        path, index = Path(where), int(row["run_index"])
    traces = read_trace_file(path, str(row["source"]))
    if index >= len(traces):
        raise TraceError(f"has no run {index + 1}", source=str(row["source"]))
    return traces[index]


def open_run(db: RunsDB, run_key: str) -> str | None:
    """Read a run (and its baselines) for the Trace inspector; an error line or None."""
    try:
        row = Q.run_row(db, run_key)
        if row is None:
            return "That run is no longer in the data."
        traces = [_read_run(db, row)]
        for k in Q.baseline_keys(db, run_key):
            traces.append(_read_run(db, Q.run_row(db, k)))
    except TraceError as e:
        return f"Cannot open the run: {e}"
    except Exception as e:  # one plain line
        return f"Cannot open the run: {one_line(e)}"
    st.session_state[OPENED] = {"name": f"from Runs: {row['source']}", "traces": traces}
    for k in ("insp_pick", "insp_compare"):  # the inspector starts at the opened run
        st.session_state.pop(k, None)
    return None


def opened_runs() -> list[tuple[Trace, str]]:
    """For the Trace inspector: the run opened from the Runs page (first) and its
    baselines, as (trace, source name)."""
    got = st.session_state.get(OPENED)
    return [(t, got["name"]) for t in got["traces"]] if got else []


# ---------------------------------------------------------------- SQL
def sql_ui(db: RunsDB) -> None:
    """A read-only query over runs, positions and steps; the result or one plain line."""
    st.caption("Tables: **runs** (a row per run, with alpha_hat, tokens_per_step, speedup), "
               "**positions** (run_key, position from 0, judged, accepted), **steps** (a row "
               "per step), and the macros wilson_lo(k, n), wilson_hi(k, n). One SELECT, "
               f"read-only, no files or extensions, at most {MAX_ROWS:,} rows and 10 s.")
    with st.form("runs_sql_form"):
        sql = st.text_area("SQL", DEFAULT_SQL, height=120, key="runs_sql")
        submitted = st.form_submit_button("Run query")
    if not submitted:
        return
    try:
        df, more = run_user_sql(db, sql)
    except SqlRefused as e:
        st.error(as_text(f"Not run: {e}"))
        return
    st.dataframe(visible_frame(df), hide_index=True, key="runs_sql_result")
    if more:
        st.caption(f"The first {MAX_ROWS:,} rows; the query returned more.")


# ---------------------------------------------------------------- vLLM
def _scrape_input(label: str, key: str) -> str:
    up = st.file_uploader(f"{label}: upload a /metrics scrape", type=["txt", "prom", "metrics"],
                          key=f"{key}_file", max_upload_size=20)
    text = st.text_area(f"…or paste it ({label})", key=f"{key}_text", height=120)
    if up is not None:
        try:
            return up.getvalue().decode("utf-8")
        except UnicodeDecodeError:
            st.error(f"{label}: the file is not UTF-8 text.")
            return ""
    return text


def vllm_ui() -> None:
    """One scrape (totals) or two (the interval): α per position, tokens per step,
    drafts/s; what is missing said plainly; a what-if and the Theory page when c and v are
    given."""
    st.caption("vLLM's speculative decoding counters from its Prometheus /metrics endpoint "
               "(`curl -s http://HOST:8000/metrics`). One scrape gives totals since the server "
               "started; two, taken apart in time, give the interval between them.")
    a, b = st.columns(2)
    with a:
        first = _scrape_input("First scrape", "runs_vllm_a")
    with b:
        second = _scrape_input("Second scrape (optional)", "runs_vllm_b")
    c1, c2, c3, c4 = st.columns(4)
    seconds = c1.number_input("Seconds between the scrapes", 0.0, 1e7, 0.0, key="runs_vllm_s",
                              help="0: unknown (then no drafts per second, unless the "
                                   "samples carry timestamps)")
    c = c2.number_input("c: draft cost / target step (if known)", 0.0, 1.0, 0.0, 0.005,
                        key="runs_vllm_c", help="0: unknown")
    v = c3.number_input("v: verify cost / target step (if known)", 0.0, 4.0, 0.0, 0.01,
                        key="runs_vllm_v", help="0: unknown")
    o = c4.number_input("o: overhead / target step", 0.0, 1.0, 0.0, 0.01, key="runs_vllm_o")
    if not first.strip():
        st.info("Paste or upload a scrape.")
        return
    try:
        stats, problems = _read_scrapes(first, second, seconds or None)
    except V.ScrapeError as e:
        st.error(as_text(e))
        return
    for line in problems:
        st.warning(as_text(line))
    for s in stats:
        _stats_ui(s, c or None, v or None, o)


def _read_scrapes(first: str, second: str, seconds: float | None
                  ) -> tuple[list[V.SpecStats], list[str]]:
    a = V.parse_scrape(first, "first scrape")
    if not second.strip():
        return V.totals(a), a.problems
    b = V.parse_scrape(second, "second scrape")
    return V.interval(a, b, seconds), a.problems + b.problems


def _fmt(x, f="{:.3f}") -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f.format(x)


def _stats_ui(s: V.SpecStats, c: float | None, v: float | None, o: float) -> None:
    name = s.model or "(no model_name label)"
    with st.container(border=True):
        st.markdown(f"**{as_text(name)}** · {s.engines} engine(s) · "
                    + ("interval" + (f" of {s.interval_s:g} s" if s.interval_s else "")
                       if s.interval_s is not None or s.notes else "totals since start"))
        if s.drafts <= 0:
            st.warning("No drafts counted here: nothing to show.")
            return
        m = st.columns(5)
        m[0].metric("α̂", _fmt(s.alpha_hat), help="accepted / judged positions (the accepted "
                    "ones and each draft's first rejection), as a specviz trace's α̂")
        m[1].metric("tokens / step", _fmt(s.mean_accepted_length, "{:.2f}"),
                    help="1 + accepted / drafts: vLLM's mean acceptance length")
        m[2].metric("drafts", f"{s.drafts:,.0f}")
        m[3].metric("drafts / s", _fmt(s.drafts_per_s, "{:.1f}"))
        m[4].metric("accepted / drafted", _fmt(s.acceptance_rate),
                    help="vLLM's acceptance rate: counts the positions after a rejection, never "
                         "judged, as rejected, so it is not α")
        for note in s.notes:
            st.warning(as_text(note))
        st.caption("Missing from a scrape, and so not shown: per-step data (no step or "
                   "token views, no spread over requests), and c and v (draft and verify "
                   "costs) unless given above.")
        pos = pd.DataFrame({"position": np.arange(1, s.gamma + 1),
                            "alpha": [np.nan if x is None else x for x in s.alpha_by_position],
                            "rate": [np.nan if x is None else x for x in s.rate_by_position]})
        if s.gamma:
            st.plotly_chart(RV.fig_vllm_positions(pos), key=f"runs_vllm_fig_{name}")
        if s.alpha_hat is None or not s.gamma or s.mean_accepted_length is None:
            return
        if c is None or v is None:
            st.info("Give c and v above to see the what-if and to place this interval on the "
                    "Theory page with its costs; without them it goes there by α and tokens "
                    "per step only.")
        else:
            _what_if(s, c, v, o, name)
        if st.button("Place on the Theory page", key=f"runs_vllm_place_{name}"):
            _place(s, c, v, o, name)
            st.success("Placed: the Theory page shows it among the measured runs.")


def _what_if(s: V.SpecStats, c: float, v: float, o: float, name: str) -> None:
    """The what-if of the Trace inspector, from the scrape's α and γ and the given costs."""
    gamma = int(min(max(s.gamma, GAMMA_MIN), GAMMA_MAX))
    table = T.what_if(min(s.alpha_hat, 0.99), gamma, c, v, o)
    measured = s.mean_accepted_length / (gamma * c + v + o)
    st.plotly_chart(G.fig_what_if(table, measured=measured), key=f"runs_vllm_whatif_{name}")
    st.caption("“now”: E(α, γ) of the i.i.d. model at the scrape's α̂ and γ; dashed: the "
               "scrape's measured tokens per step over the cost you gave, E / (γ·c + v + o).")


def _place(s: V.SpecStats, c: float | None, v: float | None, o: float, name: str) -> None:
    points = [p for p in st.session_state.get(POINTS, []) if p[MEASURED_LABEL] != f"vLLM: {name}"]
    known = c is not None and v is not None
    points.append({T.ALPHA: s.alpha_hat, T.GAMMA: float(s.gamma), T.E: s.mean_accepted_length,
                   T.SPEEDUP: np.nan, T.C: c if known else np.nan, T.V: v if known else np.nan,
                   T.OVERHEAD: o if known else np.nan, MEASURED_LABEL: f"vLLM: {name}"})
    st.session_state[POINTS] = points


def with_vllm_points(measured: pd.DataFrame) -> pd.DataFrame:
    """For the Theory page: its measured runs plus the vLLM intervals placed from the Runs
    page (no measured speed-up; c, v and o only where the user gave them)."""
    points = st.session_state.get(POINTS, [])
    if not points:
        return measured
    extra = pd.DataFrame(points, columns=measured.columns)
    return pd.concat([measured, extra], ignore_index=True) if not measured.empty else extra
