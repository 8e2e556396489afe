"""Colored text: the output as HTML spans, each token styled by how it came to be.

Accepted drafts, corrections and bonus tokens get their kind's color; rejected drafts show as
struck-through ghost text. The hover title gives p, q, min(1, p/q) and u. Token text is
HTML-escaped, so a token such as ``<script>`` shows as text.
"""

from __future__ import annotations

import html
import math

import pandas as pd

from .. import frames as F
from .theme import KIND_COLORS, KIND_LABELS


def _fmt(x: float) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _hover(step: int, pos: int, kind: str, p: float, q: float, a: float, u: float) -> str:
    where = f"step {step}" + (f", draft {pos + 1}" if kind in ("accepted", "rejected",
                                                               "unjudged") else "")
    probs = (f"\np = {_fmt(p)}   q = {_fmt(q)}\nmin(1, p/q) = {_fmt(a)}   u = {_fmt(u)}"
             if math.isfinite(p) else "")
    return f"{KIND_LABELS[kind]} ({where}){probs}"


def legend_html(kinds=("accepted", "resampled", "bonus", "rejected")) -> str:
    """A one-line key of the token styles."""
    items = "".join(_span(KIND_LABELS[k], k, "") for k in kinds)
    return f'<div style="font-size:0.85em;margin:0.2em 0 0.6em 0">{items}</div>'


def _span(text: str, kind: str, title: str, highlight: bool = False) -> str:
    color = KIND_COLORS[kind]
    style = f"border-bottom:3px solid {color};background:{color}22;padding:0 1px;margin:0 1px"
    if kind in ("rejected", "unjudged"):
        style = (f"color:{color};text-decoration:line-through;opacity:0.75;"
                 "padding:0 1px;margin:0 1px;font-size:0.9em")
    elif kind == "target":
        style = f"border-bottom:1px solid {color}66;padding:0 1px"
    if highlight:
        style += ";outline:2px solid #d00;background:#ffd6d6"
    shown = html.escape(text).replace("\n", "↵<br>")
    return f'<span title="{html.escape(title, quote=True)}" style="{style}">{shown}</span>'


def colored_text_html(tokens: pd.DataFrame, ghosts: str = "rejected",
                      highlight: int | None = None, prompt: str | None = None) -> str:
    """The output text: one row of ``tokens_frame`` becomes one span.

    ``ghosts``: which thrown-away drafts to show struck through: "rejected" (the first
    rejection of each step), "all" (also the drafts after it), or "none".
    ``highlight``: output index of a token to mark (e.g. the first divergence from a baseline).
    """
    show = {"none": (), "rejected": ("rejected",), "all": ("rejected", "unjudged")}[ghosts]
    parts = []
    if prompt:
        parts.append(f'<span style="color:#888">{html.escape(prompt)}</span>')
    cols = [F.STEP, F.POS, F.TEXT, F.KIND, F.EMITTED, F.OUT_INDEX, F.P, F.Q, F.ACCEPT_PROB,
            F.U]
    for step, pos, text, kind, emitted, idx, p, q, a, u in tokens[cols].itertuples(
            index=False):
        if not emitted and kind not in show:
            continue
        parts.append(_span(text, kind, _hover(step, pos, kind, p, q, a, u),
                           highlight is not None and idx == highlight))
    n_out = int(tokens[F.OUT_INDEX].max()) + 1 if len(tokens) else 0
    if highlight is not None and highlight >= n_out:
        parts.append(_span("⟂ (output ends here)", "rejected", "first divergence", True))
    body = "".join(parts)
    return ('<div class="specviz-text" style="font-family:ui-monospace,Menlo,Consolas,'
            'monospace;white-space:pre-wrap;line-height:1.9;font-size:0.95em">'
            f"{body}</div>")
