"""Figure builders: each returns a go.Figure with the expected traces; no streamlit."""

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from specviz import figures as G
from specviz.teaching import theory as T
from specviz.teaching import toy
from specviz.traces import frames as F
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
    assert G.kind_name("bonus") in legend and G.kind_name("unjudged") in legend
    assert tokens.equals(F.tokens_frame(hand))  # the frame was not mutated


def test_draft_positions_are_numbered_from_1_in_every_view(hand):
    """Timeline, heatmap, inspector labels and colored-text hover all say position 1 for
    the first draft of a step."""
    tl = G.fig_timeline(F.tokens_frame(hand))
    assert list(tl.data[0].x)[:3] == [1, 2, 3]
    heat = G.fig_acceptance_heatmap(F.drafts_frame(hand))
    assert list(heat.data[1].x) == [1, 2, 3]
    assert "draft position 1)" in G.colored_text_html(F.tokens_frame(hand))


def test_timeline_title_is_optional(hand):
    """The page draws its own heading above the timeline: the figure then has no title."""
    assert G.fig_timeline(F.tokens_frame(hand), title=None).layout.title.text is None
    assert G.fig_timeline(F.tokens_frame(hand)).layout.title.text == "Token timeline"


def test_empty_timeline_is_a_figure(hand):
    fig = G.fig_timeline(F.tokens_frame(hand).iloc[0:0])
    assert isinstance(fig, go.Figure) and not fig.data


def test_heatmap_greys_cells_never_judged(hand):
    """Sampling: judged cells by min(1, p/q); cells after a rejection are grey, not data."""
    heat = G.fig_acceptance_heatmap(F.drafts_frame(hand))
    grey, data = heat.data[0], heat.data[1]
    never = np.asarray(grey.z, dtype=float)
    z = np.asarray(data.z, dtype=float)
    # step 2: position 1 rejected, 2 and 3 never judged
    assert np.isnan(z[2, 1]) and np.isnan(z[2, 2]) and np.isfinite(z[2, 0])
    assert np.isfinite(never[2, 1]) and np.isfinite(never[2, 2])
    assert np.isnan(never[0]).all()  # every draft of step 0 was judged
    assert grey.colorscale[0][1] == G.KIND_COLORS["unjudged"]
    marks = heat.data[2]
    assert marks.mode == "text" and "✗" in marks.text and "·" in marks.text
    assert marks.textfont.size >= 16  # legible marks


def test_heatmap_of_a_greedy_run_shows_the_argmax_check(hand):
    heat = G.fig_acceptance_heatmap(F.drafts_frame(hand), greedy=True)
    z = np.asarray(heat.data[1].z, dtype=float)
    assert z[0].tolist() == [1.0, 1.0, 0.0]  # accepted, accepted, rejected: two colors
    assert "top token" in heat.layout.title.text
    assert "is not the target's top token" in heat.data[1].customdata[0][2]
    assert "min(1, p/q)" not in heat.layout.title.text


def test_acceptance_views(hand):
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


def test_verify_inspector_greedy_checks_the_argmax(hand):
    """Greedy: no residual, no u, no acceptance bar; the title states the argmax check."""
    d = F.drafts_frame(hand).iloc[2]  # "c" drafted; p's top-k: c 0.1, j 0.2 -> argmax j
    fig = G.fig_verify_inspector(F.topk_frame(hand, 0, 2), d[F.ACCEPT_PROB], d[F.U],
                                 d[F.TEXT], d[F.STATUS], greedy=True)
    names = [t.name for t in fig.data]
    assert names == ["p (target)", "q (draft)"]
    assert "≠ the target's top token j" in fig.layout.title.text
    assert any(x.startswith("▲") for x in fig.data[0].x)
    ok = F.drafts_frame(hand).iloc[0]  # "b" drafted with p 0.6 > 0.2: the argmax
    fig = G.fig_verify_inspector(F.topk_frame(hand, 0, 0), ok[F.ACCEPT_PROB], ok[F.U],
                                 ok[F.TEXT], ok[F.STATUS], greedy=True)
    assert "= the target's top token b" in fig.layout.title.text


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
    speed = G.fig_compare_speed(table)
    assert speed.data[0].orientation == "h"  # names read along the bars, never rotated
    import html  # Plotly shows the names as text: '<' escaped as an entity
    hover = [html.unescape(c) for c in speed.data[0].customdata]
    assert hover == table[F.RUN_NAME].tolist()  # whole on hover
    shown = [html.unescape(y) for y in speed.data[0].y]  # cut for the axis, one bar each
    assert len(set(shown)) == len(shown) and all(len(y) <= 34 for y in shown)
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


def test_every_token_kind_has_a_second_channel(hand):
    """Each kind differs from every other one without its color: a mark in the figures and
    a line style in the text."""
    kinds = ("accepted", "rejected", "unjudged", "resampled", "bonus")
    marks = [G.KIND_MARKS[k] for k in kinds]
    assert all(marks) and len(set(marks)) == len(kinds)
    from specviz.figures.text import kind_style
    no_color = {k: re.sub(r"#[0-9A-Fa-f]{6,8}", "", kind_style(k)) for k in kinds}
    assert len(set(no_color.values())) == len(kinds)
    legend = G.legend_html(kinds)
    assert all(m in legend for m in marks)
    tl = G.fig_timeline(F.tokens_frame(hand))
    assert tl.data[0].text[0][2].startswith("✗") and tl.data[0].text[1][3].startswith("★")


# Machado, Oliveira & Fernandes (2009), severity 1: linear-RGB matrices
CVD = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                   [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                     [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                   [0.004733, 0.691367, 0.303900]],
}


def _lab(hex_color: str, matrix=None) -> np.ndarray:
    """CIELAB of a color, as seen with a color-vision deficiency when a matrix is given."""
    c = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    rgb = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    if matrix is not None:
        rgb = np.clip(np.array(matrix) @ rgb, 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ rgb / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


@pytest.mark.parametrize("vision", [None, *CVD])
def test_token_colors_stay_apart_for_colour_blind_readers(vision):
    """Every pair of token kinds differs by ΔE*ab ≥ 15 under normal vision and simulated
    protanopia, deuteranopia and tritanopia; a rejected draft and a correction (once
    orange beside vermillion) by ≥ 30."""
    matrix = CVD.get(vision)
    kinds = ("accepted", "rejected", "unjudged", "resampled", "bonus")
    lab = {k: _lab(G.KIND_COLORS[k], matrix) for k in kinds}
    for i, a in enumerate(kinds):
        for b in kinds[i + 1:]:
            assert np.linalg.norm(lab[a] - lab[b]) >= 15, (vision, a, b)
    assert np.linalg.norm(lab["rejected"] - lab["resampled"]) >= 30, vision


def test_theory_figures():
    curves = T.curves_frame([0.6, 0.8], range(1, 33), 0.05)
    measured = pd.DataFrame({T.ALPHA: [0.7, 0.5], T.GAMMA: [4, 3.9], T.E: [2.5, 1.9],
                             T.SPEEDUP: [1.8, 0.9], "label": ["run a", "run b"]})
    fig = G.fig_speedup_vs_gamma(curves, measured, highlight="run b")
    assert [t.name for t in fig.data] == ["α = 0.60", "α = 0.80", "measured runs",
                                          "the run the sliders come from"]
    assert list(fig.data[2].text) == ["run a", "run b"]  # hover names the runs
    assert list(fig.data[3].customdata) == ["run b"]
    assert list(fig.layout.xaxis.range) == [0.5, 32.5]  # γ from 1 to 32
    assert fig.layout.xaxis.tickvals[0] == 1
    assert len(G.fig_expected_tokens(curves, measured).data) == 32 + 1  # one line per γ


def test_theory_figures_read_on_a_small_screen():
    """1024×768: the curves' legends sit under the plots (never in a column that leaves the
    plot ~70 px wide, nor in rows over the title), and "this run" is an arrow's label off to
    the side, not text drawn over the measured markers."""
    curves = T.curves_frame([0.5, 0.6, 0.7, 0.8, 0.9], range(1, 33), 0.05)
    measured = pd.DataFrame({T.ALPHA: [0.7, 0.5], T.GAMMA: [4, 3.9], T.E: [2.5, 1.9],
                             T.SPEEDUP: [1.8, 0.9], "label": ["run a", "run b"]})
    for fig in (G.fig_speedup_vs_gamma(curves, measured, highlight="run b"),
                G.fig_expected_tokens(curves, measured)):
        legend = fig.layout.legend
        assert legend.orientation == "h" and legend.y < 0 and legend.yanchor == "top"
    fig = G.fig_speedup_vs_gamma(curves, measured, highlight="run b")
    picked = next(t for t in fig.data if t.name == "the run the sliders come from")
    assert picked.mode == "markers" and picked.text is None
    note = [a for a in fig.layout.annotations if a.text == "this run"]
    assert len(note) == 1 and note[0].showarrow and (note[0].ax, note[0].ay) != (0, 0)
    assert (note[0].x, note[0].y) == (3.9, 0.9)
    assert not [a for a in G.fig_speedup_vs_gamma(curves, measured).layout.annotations
                if a.text == "this run"]


def test_speedup_surface_is_log_scaled_around_1x():
    alphas = np.linspace(0, 0.95, 20)
    surf = G.fig_speedup_surface(T.curves_frame(alphas, range(1, 33), 0.3),
                                 T.best_gamma_frame(alphas, 0.3))
    heat = surf.data[0]
    assert heat.type == "heatmap" and "best γ" in [t.name for t in surf.data]
    assert heat.zmid == 0 and heat.zmin == -heat.zmax  # log2: 1× in the middle, symmetric
    ticks = list(heat.colorbar.ticktext)
    assert "1×" in ticks and all(not t.startswith("-") for t in ticks)
    raw = np.asarray(heat.customdata, dtype=float)
    assert np.allclose(np.asarray(heat.z, dtype=float), np.log2(raw))
    assert list(surf.layout.yaxis.range) == [0.5, 32.5]


def test_what_if_shows_the_runs_own_prediction():
    wi = G.fig_what_if(T.what_if(0.7, 4, 0.1), measured=1.44)
    assert len(wi.data[0].y) == 10
    assert any(a.text == "this run: 1.44×" for a in wi.layout.annotations)


def test_toy_figures():
    res = toy.simulate([0.5, 0.5], [0.9, 0.1], n_steps=50)
    dist = G.fig_toy_distribution(res.distribution_frame())
    assert [t.name for t in dist.data] == ["p (target)", "q (draft)", "emitted (empirical)"]
    conv = G.fig_toy_convergence(res.history)
    assert conv.layout.xaxis.type == "log"
    band = toy.tv_band(res.p, res.history[toy.N_TOKENS])
    exact = toy.simulate([0.5, 0.5], [0.9, 0.1], n_steps=50).history
    conv = G.fig_toy_convergence(res.history, band, exact, "buggy")
    names = [t.name for t in conv.data]
    assert "exact rule (same p, q, seed)" in names
    assert any(n and "1/√n" in n for n in names)


def test_theme_is_shared(hand):
    figs = [G.fig_latency(F.steps_frame(hand)), G.fig_timeline(F.tokens_frame(hand)),
            G.fig_gap_shares({"acceptance": 0.6, "draft cost": 0.4}, "acceptance"),
            G.fig_what_if(T.what_if(0.7, 4, 0.1))]
    for fig in figs:
        assert fig.layout.plot_bgcolor == "white"
        assert fig.layout.xaxis.gridcolor == fig.layout.yaxis.gridcolor
        assert fig.layout.legend.orientation == "h"


def test_importing_specviz_leaves_streamlit_out():
    code = ("import sys, specviz, specviz.traces.frames, specviz.figures, specviz.teaching.theory, "
            "specviz.teaching.toy, specviz.teaching.diagnosis; print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_theory_curves_differ_by_marker_and_dash_as_well_as_color():
    """Neighbouring hues (vermillion and orange, say) are hard to tell apart on a projector
    or for a colour-blind reader: every curve also has its own marker and dash."""
    from specviz.figures.theory_views import fig_expected_tokens, fig_speedup_vs_gamma
    from specviz.teaching import theory as T
    curves = T.curves_frame(alphas=[0.5, 0.6, 0.7, 0.8, 0.9], gammas=[1, 2, 3, 4, 6, 8, 12, 16],
                            c=0.05, v=1.0)
    for fig in (fig_speedup_vs_gamma(curves), fig_expected_tokens(curves)):
        styles = [(t.line.color, t.marker.symbol, t.line.dash) for t in fig.data]
        assert len({(m, d) for _, m, d in styles}) == len(styles) > 4


def test_a_tree_runs_timeline_names_the_trees_own_rules():
    """A tree run's timeline: its correction is drawn from what the walk left of p (not the
    chain's norm(max(0, p − q))), and a node's acceptance probability is P(accept), not
    min(1, p/q) of its plain p and q (bundled sampled tree run)."""
    from specviz import read_traces
    trace = read_traces("assets/traces/cpu-smollm2-draft-tree-t0.7.jsonl")[0]
    tokens = F.tokens_frame(trace)
    assert (tokens[F.KIND] == "resampled").any()
    fig = G.fig_timeline(tokens, tree=True)
    names = [t.name for t in fig.data if t.name]
    from specviz.figures.theme import TREE_CORRECTION
    assert any(TREE_CORRECTION in n for n in names)
    assert not any("norm(max(0, p − q))" in n for n in names)
    hover = " ".join(h for row in fig.data[0].customdata for h in row if h)
    assert f"{G.TREE_ACCEPT}=" in hover and "min(1,p/q)" not in hover
    assert "norm(max(0, p − q))" not in hover
    chain = G.fig_timeline(tokens)  # the chain's names stay the chain's
    assert any("norm(max(0, p − q))" in (t.name or "") for t in chain.data)
