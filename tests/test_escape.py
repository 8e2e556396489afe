"""Every string from a trace or a model is shown as text in figures (Plotly draws a subset of
HTML: links, and CSS that fetches) and wherever token text is drawn (bidirectional controls
shown as escapes). The guarantee is central: every fig_* function returns its figure through
specviz.figures.theme.plain_figure (specviz/figures/plain.py)."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import pytest

import specviz.figures as G
from specviz import read_traces, write_traces
from specviz.figures.plain import FIGURE_MODULES
from specviz.figures.theme import plain_figure, show_token, visible
from specviz.traces.records import Trace, summarize
from tests._hostile import RLO, hostile, payload, raw_markup

ROOT = Path(__file__).resolve().parent.parent
H = payload("http://127.0.0.1:9", "x")


def _short(t: Trace, n: int) -> Trace:
    steps = t.steps[:n]
    return Trace(t.run, steps, summarize(t.run, steps, wall_s=None, output_text="",
                                         stop_reason="max_new_tokens"))


def hostile_files(folder: Path) -> Path:
    """Two bundled examples (a chain and a tree, each with its baseline), cut to a few steps,
    with every string hostile: the folder that holds them."""
    for name in ("cpu-smollm2-draft-t0.7", "cpu-smollm2-draft-tree-t0.7"):
        runs = read_traces(ROOT / "assets" / "traces" / f"{name}.jsonl")[:2]
        write_traces(folder / f"{name}.jsonl", [hostile(_short(t, 6)) for t in runs])
    return folder


def test_plain_figure_makes_every_field_text():
    fig = go.Figure(
        [go.Bar(x=[H, "b"], y=[1, 2], name=H, text=[H, "<b>ok</b>"], hovertext=[H, H],
                customdata=[[H], [H]], legendgroup=H, legendgrouptitle_text=H,
                hovertemplate="<b>%{x}</b><br>%{customdata[0]}<extra>" + H + "</extra>"),
         go.Heatmap(z=[[1, 2]], x=[H, "b"], y=[H], text=[[H, H]]),
         go.Scatter(x=[1], y=[2], mode="markers+text", text=H, name="plain")],
        layout=dict(title=dict(text="<b>Title</b> " + H),
                    xaxis=dict(title=dict(text=H), tickvals=[H], ticktext=[H],
                               categoryarray=[H, "b"]),
                    annotations=[dict(x=H, y=1, text=H)],
                    legend=dict(title=dict(text=H))))
    js = pio.to_json(plain_figure(fig))
    assert raw_markup(js) == [], raw_markup(js)
    d = json.loads(js)
    # categories, category order, tick values and annotation positions stay the same strings
    cat = d["data"][0]["x"][0]
    assert d["layout"]["xaxis"]["categoryarray"][0] == cat
    assert d["layout"]["xaxis"]["tickvals"][0] == cat
    assert d["layout"]["annotations"][0]["x"] == cat
    assert cat.startswith("&lt;a href=") and "\\u202e12345" in cat
    # the project's own formatting stays
    assert d["data"][0]["hovertemplate"].startswith("<b>%{x}</b><br>")
    assert d["data"][0]["text"][1] == "<b>ok</b>"
    assert d["layout"]["title"]["text"].startswith("<b>Title</b> &lt;a")
    # an entity already written is kept (so show_token's escapes are not escaped twice):
    # a trace's "&amp;" shows as "&", never as markup
    assert "&amp;![i]" in cat


def test_plain_figure_is_idempotent_and_keeps_escaped_tokens():
    fig = go.Figure(go.Bar(x=[show_token("<b>")], y=[1], name="a & b"))
    once = pio.to_json(plain_figure(fig))
    assert pio.to_json(plain_figure(fig)) == once
    d = json.loads(once)
    assert d["data"][0]["x"] == ["&lt;b&gt;"]  # shown as "<b>", not as "&lt;b&gt;"
    assert d["data"][0]["name"] == "a &amp; b"


def test_every_figure_function_is_guarded():
    """Each fig_* of every module of specviz/figures returns through plain_figure (a new
    module must be added to plain.FIGURE_MODULES)."""
    names = [m.name for m in pkgutil.iter_modules(G.__path__)]
    missing = []
    for name in names:
        mod = importlib.import_module(f"specviz.figures.{name}")
        for attr, fn in vars(mod).items():
            if attr.startswith("fig_") and callable(fn) and not getattr(fn, "__plain__", 0):
                missing.append(f"{name}.{attr}")
    assert missing == [], f"figure functions outside the guarantee: {missing}"
    assert all(getattr(G, n).__plain__ for n in dir(G) if n.startswith("fig_"))
    assert {m.__name__.rsplit(".", 1)[1] for m in FIGURE_MODULES} >= {
        n for n in names if n.endswith("_views")}
    assert all(getattr(m, n).__plain__ for m in FIGURE_MODULES for n in dir(m)
               if n.startswith("fig_"))


@pytest.mark.parametrize("text", ["12345" + RLO + "678", "a\u2066b\u2069", "x\x1b[31m",
                                  "\u200f\u061c", "line\u2028sep", "\ufeffbom"])
def test_bidi_and_control_characters_are_shown_as_escapes(text):
    shown = visible(text)
    assert all(ord(c) >= 0x20 or c in "\n\t" for c in shown)
    for c in "\u202e\u2066\u2069\x1b\u200f\u061c\u2028\ufeff":
        assert c not in shown and c not in show_token(text)
    assert visible("naïve 😀\u200d😀 日本") == "naïve 😀\u200d😀 日本"  # text and emoji stay


def test_colored_text_isolates_and_escapes_tokens():
    from specviz.traces import frames as F
    from tests._traces import handmade_trace
    t = hostile(handmade_trace())
    html = G.colored_text_html(F.tokens_frame(t))
    assert raw_markup(html) == []
    assert "\\u202e12345" in html and "unicode-bidi:isolate" in html


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory):
    return hostile_files(tmp_path_factory.mktemp("hostile"))


PAGES = ["app_pages/home.py", "app_pages/inspector.py", "app_pages/walkthrough.py",
         "app_pages/theory.py"]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_draws_hostile_traces_as_text(page, hostile_dir, monkeypatch):
    """The pages that draw bundled traces, on hostile ones, twice: no exception, no markup
    and no raw override in any figure or HTML they send."""
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("SPECVIZ_TRACES_DIR", str(hostile_dir))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page(page)
    for _ in range(2):
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        sent = [c.proto.spec for c in at.get("plotly_chart")]
        sent += [h.proto.body for h in at.get("html")]
        for s in sent:
            assert raw_markup(s) == [], (page, raw_markup(s), s[:300])
        assert any("&lt;a href" in s for s in sent), "the hostile strings were not drawn"


def test_tables_show_bidi_characters_as_escapes():
    import pandas as pd

    from ui.plain import visible_frame
    df = pd.DataFrame({"token": ["x" + RLO + "12", None], "n": [1, 2]})
    shown = visible_frame(df)
    assert shown["token"][0] == "x\\u202e12" and shown["n"].tolist() == [1, 2]
    assert df["token"][0] == "x" + RLO + "12"  # a copy
