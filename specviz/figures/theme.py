"""One look for every figure: colors by meaning, and a shared layout helper."""

from __future__ import annotations

import html
import re

import numpy as np
import plotly.graph_objects as go

from ..traces.visible import visible

# Every token kind has its own hue (Okabe-Ito, chosen to stay apart for colour-blind
# readers: tests/test_figures.py checks them under simulated protanopia, deuteranopia and
# tritanopia) AND a second channel that needs no colour: a mark in the figures and a line
# style in the text. The same pair is used by every view.
KIND_COLORS = {
    "accepted": "#009E73",  # bluish green: draft kept
    "rejected": "#D55E00",  # vermillion: draft thrown away at the first rejection
    "unjudged": "#C8C8C8",  # light grey: drafts after a rejection, never judged
    "resampled": "#CC79A7",  # reddish purple: correction drawn from norm(max(0, p - q))
    "bonus": "#0072B2",  # blue: token drawn from p after every draft was accepted
    "target": "#555555",  # dark grey: target-only decoding
}
KIND_MARKS = {  # the second channel in figures, legends and hover texts
    "accepted": "✓",
    "rejected": "✗",
    "unjudged": "·",
    "resampled": "◆",
    "bonus": "★",
    "target": "",
}
KIND_SYMBOLS = {  # the same marks as Plotly marker symbols (legend keys, scatter points)
    "accepted": "circle",
    "rejected": "x",
    "unjudged": "circle-open",
    "resampled": "diamond",
    "bonus": "star",
    "target": "square",
}
KIND_TEXT_STYLES = {  # the second channel in the colored text: a line style per kind
    "accepted": "solid underline",
    "rejected": "struck through",
    "unjudged": "dotted strike, faded",
    "resampled": "double underline, bold",
    "bonus": "wavy underline, bold",
    "target": "thin underline",
}
KIND_LABELS = {
    "accepted": "accepted draft",
    "rejected": "rejected draft",
    "unjudged": "not judged (after a rejection)",
    "resampled": "correction from norm(max(0, p − q))",
    "bonus": "bonus token from p",
    "target": "target-only token",
}
P_COLOR = "#332288"  # target (indigo)
Q_COLOR = "#E69F00"  # draft (orange; no token kind is orange)
RESIDUAL_COLOR = KIND_COLORS["resampled"]  # the correction's distribution
THEORY_COLOR = "#444444"
PHASE_COLORS = {"draft": Q_COLOR, "verify": P_COLOR, "overhead": "#999999"}
SERIES = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
          "#000000"]


def kind_name(kind: str) -> str:
    """A token kind's label with its mark, e.g. "✓ accepted draft"."""
    mark = KIND_MARKS[kind]
    return f"{mark} {KIND_LABELS[kind]}" if mark else KIND_LABELS[kind]


# A chain's draft is accepted with min(1, p/q); a tree node with its probability at its turn in
# the walk (min(1, p/q) for the first child tried at a node; for a later sibling, with what is
# left of p and of q after the earlier siblings' rejections; for top-k children, which were
# picked, not drawn, p(c) / (1 - p of the siblings tried before)): not min(1, p/q) of the
# plain p and q shown beside it
CHAIN_ACCEPT = "min(1, p/q)"
TREE_ACCEPT = "P(accept)"
TREE_CORRECTION = "correction drawn from what is left of p"  # after the walk's rejections


def accept_label(tree: bool) -> str:
    """The name of a draft's acceptance probability: a chain's, or a tree node's."""
    return TREE_ACCEPT if tree else CHAIN_ACCEPT

TREE_ACCEPT_NOTE = ("P(accept): the node's acceptance probability at its turn in the walk. "
                    "For the first child tried at a node it is min(1, p/q); for a later "
                    "sibling, p is what is left after the earlier siblings' rejections (and "
                    "q, for sampled children, q without them); top-k children were picked, "
                    "not drawn, so theirs is p(c) / (1 − p of the siblings tried before).")
Q_ZERO_MARK = "∅"  # a sampled tree's child the draft gave q = 0: never judged, never drawable
Q_ZERO_LABEL = "∅ q = 0: the draft could not draw it (top-k / top-p cut), so not judged"


def unjudged_why(q_draft: float, tree: bool) -> str:
    """Why a drafted token was never judged. A sampled tree can hold a child the draft gives
    q = 0 (its top-k / top-p cut removed it, yet it was among the top children): the draft
    could never have drawn it, so it is skipped though its parent was reached."""
    if tree and q_draft == 0:
        return "never judged: q = 0, the draft could not have drawn it (cut by top-k / top-p)"
    if tree:
        return "never judged: the walk down the tree never reached its branch"
    return "never judged: an earlier draft of the step was rejected"


GRID = "#EBF0F8"
INK = "#31333F"  # text: dark enough to read on a projector
AXIS = dict(gridcolor=GRID, zerolinecolor=GRID, linecolor="#BCC3CC", automargin=True,
            tickfont=dict(color=INK, size=13), title_font=dict(color=INK, size=14))


def layout(title: str | None = None, height: int | None = None, legend: bool = True,
           **extra) -> dict:
    """The shared layout as a plain dict: white background, light grid, compact margins,
    horizontal legend on top. ``extra`` adds to it (axes are merged with the axis style).

    Built as one dict and given to the Figure constructor: a Plotly template or later
    ``update_layout`` calls cost tens of milliseconds per figure.
    """
    out = dict(
        paper_bgcolor="white", plot_bgcolor="white", colorway=SERIES,
        # the title at the very top, the legend between it and the plot
        title=dict(text=title, x=0.0, xanchor="left", y=1.0, yanchor="top",
                   yref="container", pad=dict(t=12)) if title else None,
        height=height,
        margin=dict(l=50, r=20, t=(100 if legend else 55) if title else 30, b=40),
        font=dict(size=14, color=INK),
        showlegend=legend,
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0.0),
        hoverlabel=dict(font_size=13),
    )
    for key in ("xaxis", "yaxis"):
        out[key] = {**AXIS, **extra.pop(key, {})}
    out.update(extra)
    return out


def themed(data: list, title: str | None = None, height: int | None = None,
           legend: bool = True, **extra) -> go.Figure:
    """A figure of ``data`` traces with the shared layout (see ``layout``)."""
    return go.Figure(data=data, layout=layout(title, height, legend, **extra))


def apply_theme(fig: go.Figure, title: str | None = None, height: int | None = None,
                legend: bool = True) -> go.Figure:
    """The shared layout applied to an existing figure (e.g. one made with subplots)."""
    theme = layout(title, height, legend)
    theme.pop("xaxis")
    theme.pop("yaxis")
    fig.update_layout(theme)
    fig.update_xaxes(AXIS)
    fig.update_yaxes(AXIS)
    return fig


def hline(y: float, color: str = "#999") -> dict:
    """A horizontal line across the plot, as a layout shape."""
    return dict(type="line", xref="paper", x0=0, x1=1, y0=y, y1=y,
                line=dict(color=color, dash="dot"))


def vline(x: float, color: str = "#999") -> dict:
    """A vertical line across the plot, as a layout shape."""
    return dict(type="line", yref="paper", y0=0, y1=1, x0=x, x1=x,
                line=dict(color=color, dash="dot"))


def show_token(text: str) -> str:
    """Token text made visible and safe for Plotly labels: HTML-escaped, whitespace shown,
    control and bidirectional characters written as escapes (see ``visible``)."""
    shown = visible(text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥"))
    return html.escape(shown if shown else "∅", quote=False)


# ---------------------------------------------------------------- Plotly strings as text
# Plotly draws a subset of HTML in every label, legend, title, tick and hover text
# (<a href>, <span style>: links, and fetches through CSS). Figures get their strings from
# traces and models; ``plain_figure`` walks a finished figure and makes every string text:
# strings that are data (trace names, categories, ticks, legend groups) are escaped whole;
# the strings the figures format on purpose (hover and text templates, hover texts, text
# labels, titles, annotations) keep only Plotly's formatting tags without attributes
# (<b>, <i>, <br>, <sup>, <sub>, <extra>, ...), every other '<' escaped. Entities already
# written (show_token's &lt;) stay as they are, so escaping twice changes nothing. Control
# and bidirectional characters are written as escapes everywhere (``visible``).
_FORMATTED_KEYS = frozenset({"hovertemplate", "texttemplate", "text", "hovertext",
                             "customdata", "meta"})
_SKIP_KEYS = frozenset({"template", "tickformat", "hoverformat", "xhoverformat",
                        "yhoverformat", "valueformat"})
_TAG = re.compile(r"<(/?)(b|i|em|s|u|sup|sub|br|extra)\s*/?>", re.IGNORECASE)
_AMP = re.compile(r"&(?!#\d{1,7};|#x[0-9a-fA-F]{1,6};|[a-zA-Z][a-zA-Z0-9]{1,31};)")


def plotly_text(s: str) -> str:
    """``s`` as text for any Plotly string (a label, a template's value): every '<', '>' and
    '&' that is not an entity escaped, control and bidirectional characters as escapes. For a
    trace's string put into a field a figure formats (hover text, customdata, text)."""
    return _escape_data(str(s))


def _escape_data(s: str) -> str:
    s = visible(s)
    if "<" not in s and ">" not in s and "&" not in s:
        return s
    return _AMP.sub("&amp;", s).replace("<", "&lt;").replace(">", "&gt;")


def _escape_formatted(s: str) -> str:
    s = visible(s)
    if "<" not in s and ">" not in s and "&" not in s:
        return s
    parts, last = [], 0
    for m in _TAG.finditer(s):
        parts.append(_escape_data(s[last:m.start()]))
        parts.append(f"<{m[1]}{m[2].lower()}>")
        last = m.end()
    parts.append(_escape_data(s[last:]))
    return "".join(parts)


def _plain(v, esc):
    """``v`` with every string in it passed through ``esc`` (lists, tuples, numpy arrays of
    objects or strings, nested); numbers and arrays of numbers come back as they are."""
    if isinstance(v, str):
        return esc(v)
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(x, esc) for x in v)
    if isinstance(v, np.ndarray):
        if v.dtype.kind not in "OUS":
            return v
        return np.array([_plain(x, esc) for x in v.tolist()], dtype=object)
    if isinstance(v, dict):
        return _plain_dict(v, esc)
    return v


def _plain_dict(d: dict, esc=None) -> dict:
    for k, v in list(d.items()):
        if k in _SKIP_KEYS or isinstance(v, (bool, int, float)) or v is None:
            continue
        if isinstance(v, dict):
            # a title's or annotation's text is formatted; other dicts follow their own keys
            _plain_dict(v, esc)
            continue
        how = _escape_formatted if (k in _FORMATTED_KEYS
                                    or k.endswith("template")) else (esc or _escape_data)
        if k == "annotations" or k == "shapes" or k == "images":
            how = None
        d[k] = _plain(v, how) if how is not None else [
            _plain_dict(x) if isinstance(x, dict) else x for x in v]
    return d


def plain_figure(fig: go.Figure) -> go.Figure:
    """``fig`` with every string from a trace or a model made text for Plotly (in place; the
    figure is returned). See the note above ``_FORMATTED_KEYS``."""
    for trace in fig._data:  # the figure's own dicts: no validation of every array again
        _plain_dict(trace)
    _plain_dict(fig._layout)
    return fig
