"""Valid but odd traces (tests/_fuzz_traces.py) load, write back (JSON Lines and Parquet),
and every view and page draws them without an exception. Bounded for CI: a few examples
each; SPECVIZ_FUZZ_EXAMPLES=200 (say) runs more, with no deadline."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
import plotly.io as pio
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from specviz import figures as G
from specviz import write_traces
from specviz.teaching import walkthrough as W
from specviz.teaching.diagnosis import diagnose, measure
from specviz.traces import frames as F
from specviz.traces.parquet import read_parquet_traces, traces_to_parquet
from specviz.traces.records import read_traces, traces_to_jsonl
from tests._fuzz_traces import trace_files

ROOT = Path(__file__).resolve().parent.parent
N = int(os.environ.get("SPECVIZ_FUZZ_EXAMPLES", "0"))
# in CI: a fixed set of examples, reported as found (no shrinking, no example database)
_CI = dict(derandomize=True, database=None, phases=[Phase.explicit, Phase.generate])
_RUN = {} if N else _CI
FAST = settings(max_examples=N or 10, deadline=None, suppress_health_check=list(HealthCheck),
                **_RUN)
VIEWS = settings(max_examples=N or 5, deadline=None, suppress_health_check=list(HealthCheck),
                 **_RUN)
PAGES = settings(max_examples=max(N // 10, 1), deadline=None,
                 suppress_health_check=list(HealthCheck), **_RUN)


@FAST
@given(trace_files())
def test_odd_traces_load_and_write_back(traces):
    again = read_traces(traces_to_jsonl(traces).encode(), source="fuzz.jsonl")
    assert again == traces
    buf = io.BytesIO()
    traces_to_parquet(traces, buf)
    assert read_parquet_traces(buf.getvalue(), source="fuzz.parquet") == traces


def _every_view(traces) -> None:
    table = F.runs_frame(traces)
    G.fig_compare_speed(table)
    for t in traces:
        base = F.baseline_for(t, traces)
        fr = {"steps": F.steps_frame(t), "drafts": F.drafts_frame(t),
              "tokens": F.tokens_frame(t), "position": F.position_frame(t),
              "lengths": F.accepted_length_frame(t)}
        F.engine_summary(t)
        G.colored_text_html(fr["tokens"], tree=F.is_tree(t))
        figs = [G.fig_timeline(fr["tokens"], tree=F.is_tree(t)),
                G.fig_acceptance_heatmap(fr["drafts"], greedy=F.is_greedy(t),
                                         tree=F.is_tree(t)),
                G.fig_position_acceptance(fr["position"]),
                G.fig_accepted_length(fr["lengths"]), G.fig_latency(fr["steps"]),
                G.fig_tokens_vs_time(F.tag(fr["steps"], "r")),
                G.fig_wall_clock(F.tag(fr["steps"], "r"))]
        if not F.is_target_only(t):
            dg = diagnose(measure(t, base))
            if dg.shares:
                figs.append(G.fig_gap_shares(dg.shares, dg.limiter))
        for _, d in fr["drafts"].head(3).iterrows():
            figs.append(G.fig_verify_inspector(F.topk_frame(t, int(d[F.STEP]), int(d[F.POS])),
                                               d[F.ACCEPT_PROB], d[F.U], d[F.TEXT],
                                               d[F.STATUS]))
        for i, s in enumerate(t.steps):
            if s.tree_parent is not None and s.gamma:
                figs.append(G.fig_tree_step(F.tree_frame(s, F.last_committed_text(t, i))))
            if W.is_walkable(t):
                w = W.walk_step(t, i)
                for m in range(len(w.micro)):
                    W.strip_tokens(w, m)
                    W.positions_frame(w, m)
                    W.topk_view(t, w, m)
                W.verify_table(t, w)
        for f in figs:
            pio.to_json(f, validate=False)


@VIEWS
@given(trace_files())
def test_odd_traces_draw_every_view(traces):
    _every_view(read_traces(traces_to_jsonl(traces).encode()))


@pytest.fixture(scope="module")
def app_test():
    from streamlit.testing.v1 import AppTest
    return AppTest


@PAGES
@given(traces=trace_files())
def test_odd_traces_render_every_page(app_test, traces, tmp_path_factory):
    """Home, inspector, walkthrough and theory on the generated file, twice each."""
    folder = tmp_path_factory.mktemp("fuzz")
    write_traces(folder / "fuzz.jsonl", traces)
    old = os.environ.get("SPECVIZ_TRACES_DIR")
    os.environ["SPECVIZ_TRACES_DIR"] = str(folder)
    try:
        for page in ("app_pages/home.py", "app_pages/inspector.py",
                     "app_pages/walkthrough.py", "app_pages/theory.py"):
            at = app_test.from_file(str(ROOT / "app.py"), default_timeout=120)
            at.run()
            at.switch_page(page)
            for _ in range(2):
                at.run()
                assert not at.exception, (page, [e.value for e in at.exception])
    finally:
        if old is None:
            os.environ.pop("SPECVIZ_TRACES_DIR")
        else:
            os.environ["SPECVIZ_TRACES_DIR"] = old


def test_a_frame_of_no_runs_is_empty():
    assert isinstance(F.runs_frame([]), pd.DataFrame)
