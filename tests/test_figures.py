"""Figure builders: each returns a go.Figure with the expected traces; no streamlit."""

import subprocess
import sys

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from specviz import figures as G
from specviz import frames as F
from specviz import theory as T
from specviz import toy
from tests._traces import handmade_trace, tiny_runs


@pytest.fixture(scope="module")
def hand():
    return handmade_trace()


def _types(fig):
    return [t.type for t in fig.data]


def test_timeline(hand):
    tokens = F.tokens_frame(hand)
    fig = G.fig_timeline(tokens)
    assert isinstance(fig, go.Figure)
    heat = fig.data[0]
    assert heat.type == "heatmap"
    z = np.asarray(heat.z, dtype=float)
    assert z.shape == (3, 4)  # 3 steps; 3 draft positions + the target's token
    codes = {k: i for i, k in enumerate(F.KINDS)}
    assert z[0].tolist() == [codes["accepted"], codes["accepted"], codes["rejected"],
                             codes["resampled"]]
    assert z[1, 3] == codes["bonus"]
    assert "&lt;b&gt;" in heat.text[0][3]  # token text is escaped for Plotly
    legend = {t.name for t in fig.data[1:]}
    assert G.KIND_LABELS["bonus"] in legend and G.KIND_LABELS["unjudged"] in legend
    assert tokens.equals(F.tokens_frame(hand))  # the frame was not mutated


def test_empty_timeline_is_a_figure(hand):
    fig = G.fig_timeline(F.tokens_frame(hand).iloc[0:0])
    assert isinstance(fig, go.Figure) and not fig.data


def test_acceptance_views(hand):
    heat = G.fig_acceptance_heatmap(F.drafts_frame(hand))
    assert _types(heat) == ["heatmap"]
    assert heat.data[0].text[0][2] == "✗"
    pos = G.fig_position_acceptance(F.position_frame(hand))
    assert _types(pos) == ["scatter"] * 4
    length = G.fig_accepted_length(F.accepted_length_frame(hand))
    assert _types(length) == ["bar", "scatter"]


def test_verify_inspector(hand):
    d = F.drafts_frame(hand).iloc[2]
    fig = G.fig_verify_inspector(F.topk_frame(hand, 0, 2), d[F.ACCEPT_PROB], d[F.U],
                                 d[F.TEXT], d[F.STATUS])
    names = [t.name for t in fig.data]
    assert names[:3] == ["p (target)", "q (draft)", "norm(max(0, p − q))"]
    assert "u" in names
    u_trace = fig.data[names.index("u")]
    assert u_trace.x[0] == pytest.approx(0.9)


def test_latency_and_clock_views():
    runs = tiny_runs()
    spec, base = runs["sampled"], runs["sampled-base"]
    steps = F.steps_frame(spec)
    lat = G.fig_latency(steps)
    assert [t.name for t in lat.data] == ["draft", "verify", "overhead"]
    both = pd.concat([F.tag(steps, "spec"), F.tag(F.steps_frame(base), "base")])
    tvt = G.fig_tokens_vs_time(both)
    assert [t.name for t in tvt.data] == ["spec", "base"]
    assert tvt.data[0].y[-1] == spec.summary.n_emitted
    clock = G.fig_wall_clock(both)
    assert [t.name for t in clock.data] == ["draft", "verify", "overhead"]
    assert len(clock.data[1].x) == len(spec.steps) + len(base.steps)


def test_compare_views():
    runs = tiny_runs()
    traces = list(runs.values())
    table = F.runs_frame(traces)
    assert len(G.fig_compare_speed(table).data[0].x) == 4
    pos = pd.concat([F.tag(F.position_frame(runs[k]), k) for k in ("sampled", "greedy")])
    assert len(G.fig_compare_positions(pos).data) == 4


def test_colored_text_escapes_and_styles(hand):
    html = G.colored_text_html(F.tokens_frame(hand), highlight=2)
    assert "<b>" not in html.replace("<br>", "")  # the "<b>" token is shown as text
    assert "&lt;b&gt;" in html
    assert "line-through" in html  # rejected drafts as ghost text
    assert html.count("outline:2px") == 1  # the highlighted token
    assert "u = 0.900" in html  # hover carries the draw
    none = G.colored_text_html(F.tokens_frame(hand), ghosts="none")
    assert "line-through" not in none
    assert "rejected draft" in G.legend_html()


def test_theory_figures():
    curves = T.curves_frame([0.6, 0.8], range(1, 9), 0.05)
    measured = pd.DataFrame({T.ALPHA: [0.7], T.GAMMA: [4], T.E: [2.5], T.SPEEDUP: [1.8],
                             "label": ["run"]})
    fig = G.fig_speedup_vs_gamma(curves, measured)
    assert [t.name for t in fig.data] == ["α = 0.60", "α = 0.80", "measured"]
    assert len(G.fig_expected_tokens(curves, measured).data) == len(range(1, 9)) + 1
    surf = G.fig_speedup_surface(T.curves_frame(np.linspace(0, 0.95, 20), range(1, 9), 0.3),
                                 T.best_gamma_frame(np.linspace(0, 0.95, 20), 0.3))
    assert _types(surf)[0] == "heatmap" and "best γ" in [t.name for t in surf.data]
    wi = G.fig_what_if(T.what_if(0.7, 4, 0.1))
    assert len(wi.data[0].y) == 10


def test_toy_figures():
    res = toy.simulate([0.5, 0.5], [0.9, 0.1], n_steps=50)
    dist = G.fig_toy_distribution(res.distribution_frame())
    assert [t.name for t in dist.data] == ["p (target)", "q (draft)", "emitted (empirical)"]
    conv = G.fig_toy_convergence(res.history)
    assert conv.layout.xaxis.type == "log"


def test_theme_is_shared(hand):
    figs = [G.fig_latency(F.steps_frame(hand)), G.fig_timeline(F.tokens_frame(hand)),
            G.fig_what_if(T.what_if(0.7, 4, 0.1))]
    for fig in figs:
        assert fig.layout.plot_bgcolor == "white"
        assert fig.layout.xaxis.gridcolor == fig.layout.yaxis.gridcolor
        assert fig.layout.legend.orientation == "h"


def test_importing_specviz_leaves_streamlit_out():
    code = ("import sys, specviz, specviz.frames, specviz.figures, specviz.theory, "
            "specviz.toy, specviz.diagnosis; print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
