"""The walkthrough's views of one step: figures from the frames of ``specviz.teaching.walkthrough``,
and small HTML pieces (token strip, phase bar, narration). Token text is HTML-escaped.

Notation: p = target, q = draft.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..teaching import walkthrough as W
from ..traces import frames as F
from .text import kind_style
from .theme import (
    KIND_COLORS,
    KIND_MARKS,
    P_COLOR,
    Q_COLOR,
    RESIDUAL_COLOR,
    show_token,
    themed,
    visible,
)

STATE_MARKS = {W.PENDING: "", W.ACCEPTED: f" {KIND_MARKS['accepted']}",
               W.REJECTED: f" {KIND_MARKS['rejected']}", W.UNJUDGED: f" {KIND_MARKS['unjudged']}"}


def fig_step_probabilities(positions: pd.DataFrame, greedy: bool = False,
                           has_q: bool = True) -> go.Figure:
    """The drafted positions of one step: one row of ``walkthrough.positions_frame`` becomes
    one position on the x axis, with a q bar and a p bar, the acceptance line min(1, p/q)
    (greedy: 1 where the draft is p's top token, else 0) and the draw u as a marker.
    The current position is shaded; rows not known yet are NaN and draw nothing."""
    if positions.empty:
        return themed([], "Nothing drafted in this step", height=240)
    labels = [f"{pos + 1}: {show_token(t)}{STATE_MARKS[s]}"
              for pos, t, s in zip(positions[F.POS], positions[F.TEXT], positions[W.STATE])]
    q_name = "q (draft)" if has_q else "q = 1 (one-hot: prompt lookup)"
    accept_name = "p is the top token (greedy)" if greedy else "min(1, p/q)"
    data = [
        go.Bar(x=labels, y=positions[F.Q], name=q_name, marker_color=Q_COLOR,
               hovertemplate="%{x}: q = %{y:.4f}<extra></extra>"),
        go.Bar(x=labels, y=positions[F.P], name="p (target)", marker_color=P_COLOR,
               hovertemplate="%{x}: p = %{y:.4f}<extra></extra>"),
        go.Scatter(x=labels, y=positions[F.ACCEPT_PROB], name=accept_name, mode="markers",
                   marker=dict(symbol="line-ew-open", size=34, color=KIND_COLORS["accepted"],
                               line=dict(width=4)),
                   hovertemplate="%{x}: " + accept_name + " = %{y:.4f}<extra></extra>"),
    ]
    if not greedy:
        data.append(go.Scatter(
            x=labels, y=positions[F.U], name="u (accept if u < min(1, p/q))", mode="markers",
            marker=dict(symbol="diamond", size=13, color="black"),
            hovertemplate="%{x}: u = %{y:.4f}<extra></extra>"))
    current = np.flatnonzero(positions[W.CURRENT].to_numpy())
    shapes = [dict(type="rect", xref="x", yref="paper", x0=i - 0.5, x1=i + 0.5, y0=0, y1=1,
                   fillcolor="#FFE9A8", opacity=0.45, line_width=0, layer="below")
              for i in current]
    return themed(data, "Drafted tokens: q, p and the acceptance test", height=380,
                  barmode="group", shapes=shapes,
                  xaxis=dict(title="draft position (✓ accepted, ✗ rejected, · never judged)",
                             tickfont=dict(size=14), categoryorder="array",
                             categoryarray=labels),
                  yaxis=dict(title="probability", range=[0, 1.05]))


def fig_topk_alternatives(topk: pd.DataFrame, title: str, added_kind: str = "resampled"
                          ) -> go.Figure:
    """The recorded alternatives at one drafted position: one row of
    ``walkthrough.topk_view`` becomes one token (▶ the draft; the token the target added
    with its kind's mark, ◆ correction or ★ bonus), with bars for q, p (once verified) and
    the residual norm(max(0, p − q)) (at a correction; over the recorded tokens only)."""
    marks = {"drafted": "▶ ", "added": f"{KIND_MARKS[added_kind]} ", "": ""}
    labels = [marks[m] + show_token(t) for t, m in zip(topk[F.TEXT], topk[W.MARK])]
    data = []
    for col, name, color in ((F.Q, "q (draft)", Q_COLOR), (F.P, "p (target)", P_COLOR),
                             (W.RESIDUAL, "norm(max(0, p − q)), top-k only", RESIDUAL_COLOR)):
        if topk[col].notna().any():
            data.append(go.Bar(y=labels, x=topk[col], name=name, marker_color=color,
                               orientation="h",
                               hovertemplate="%{y}: %{x:.4f}<extra>" + name + "</extra>"))
    return themed(data, title, height=160 + 26 * max(len(topk), 1), barmode="group",
                  xaxis=dict(title="probability", range=[0, 1.05]),
                  yaxis=dict(autorange="reversed", tickfont=dict(size=14)))


def fig_cache_lengths(cache: pd.DataFrame) -> go.Figure:
    """The KV caches around the step: one row of ``walkthrough.cache_frame`` becomes one
    horizontal bar (a cache at one moment), split into the committed prefix it holds and
    the draft positions it holds beyond it."""
    if cache.empty:
        return themed([], "Caches", height=200)
    data = [go.Bar(y=cache[W.MOMENT], x=cache[col], name=name, orientation="h",
                   marker_color=color, text=cache[col], textposition="inside",
                   hovertemplate="%{y}: %{x} positions<extra>" + name + "</extra>")
            for col, name, color in ((W.HELD_COMMITTED, "committed tokens held", "#56B4E9"),
                                     (W.HELD_DRAFTS, "draft positions held",
                                      KIND_COLORS["unjudged"]))]
    lo = int(cache[W.HELD_COMMITTED].min())
    hi = int((cache[W.HELD_COMMITTED] + cache[W.HELD_DRAFTS]).max())
    start = max(0, lo - 4)
    return themed(data, "KV cache lengths (positions)", height=140 + 42 * len(cache),
                  barmode="stack", xaxis=dict(range=[start, hi + 2], title="positions"),
                  yaxis=dict(autorange="reversed"))


# ---------------------------------------------------------------- HTML pieces

STRIP_STYLES = {
    W.PROMPT: "color:#888",
    W.PREFIX: "color:#333",
    W.PENDING: "border:1px dashed #888;background:#f4f4f4;border-radius:3px",
    # the same color and line style as everywhere else (specviz.figures.text)
    W.ACCEPTED: kind_style("accepted"),
    W.REJECTED: kind_style("rejected"),
    W.UNJUDGED: kind_style("unjudged"),
    W.RESAMPLED: kind_style("resampled"),
    W.BONUS: kind_style("bonus"),
}
STRIP_TITLES = {W.PROMPT: "prompt", W.PREFIX: "committed before this step",
                W.PENDING: "drafted, not judged yet", W.ACCEPTED: "accepted draft",
                W.REJECTED: "rejected draft", W.UNJUDGED: "never judged (after a rejection)",
                W.RESAMPLED: "correction from norm(max(0, p − q))",
                W.BONUS: "bonus token from p"}
SEPARATOR = ('<span class="wt-sep" style="color:#bbb;font-weight:300;margin:0 0.35em">'
             '│</span>')


def _token(text: str) -> str:
    shown = html.escape(visible(text)).replace("\n", "↵").replace("\t", "⇥")
    return shown if shown else "∅"


def token_strip_html(tokens: list[W.StripToken]) -> str:
    """The sequence as prefix │ drafts │ added token, each token styled by its state;
    rejected and never-judged drafts struck through. Text is HTML-escaped."""
    parts = []
    segment = None
    for t in tokens:
        if segment is not None and t.segment != segment:
            parts.append(SEPARATOR)
        segment = t.segment
        if t.state in (W.PROMPT, W.PREFIX):
            text = html.escape(visible(t.text)).replace("\n", "↵")
        else:
            text = _token(t.text)
        parts.append(f'<span class="wt-tok wt-{t.state}" title="{STRIP_TITLES[t.state]}" '
                     f'style="{STRIP_STYLES[t.state]};padding:0 2px;margin:0 1px;'
                     'unicode-bidi:isolate">'
                     f"{text}</span>")
    return ('<div class="wt-strip" style="font-family:ui-monospace,Menlo,Consolas,monospace;'
            'white-space:pre-wrap;line-height:2.1;font-size:1.05em">'
            + "".join(parts) + "</div>")


def phase_bar_html(current: str) -> str:
    """The five phases in a row, the current one highlighted."""
    items = []
    for ph in W.PHASES:
        on = ph == current
        style = ("background:#0072B2;color:white" if on else "background:#eef2f7;color:#555")
        items.append(f'<span class="wt-phase{" wt-on" if on else ""}" style="{style};'
                     f'border-radius:12px;padding:2px 10px;margin-right:6px;'
                     f'font-size:0.9em">{html.escape(W.PHASE_LABELS[ph])}</span>')
    return f'<div class="wt-phases" style="margin:0.3em 0 0.6em 0">{"".join(items)}</div>'


def narration_html(title: str, narration: str) -> str:
    """A micro-step's title and narration as an escaped block (token text can hold markup;
    markdown would also read * _ $ in tokens)."""
    return ('<div class="wt-narration" style="font-size:1.1em;line-height:1.55;'
            'white-space:pre-wrap;border-left:4px solid #0072B2;padding:0.3em 0 0.3em 0.8em">'
            f'<div class="wt-title" style="font-weight:700;margin-bottom:0.2em">'
            f"{html.escape(visible(title))}</div>{html.escape(visible(narration))}</div>")
