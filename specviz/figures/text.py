"""Colored text: the output as HTML spans, each token styled by how it came to be.

Each kind has its color and a line style that needs no color (solid underline: accepted;
double underline: correction; wavy underline: bonus; struck through: rejected; dotted and
faded: never judged). The hover title gives p, q, min(1, p/q) (in a tree: the node's
acceptance probability at its turn in the walk) and u. Token text is
HTML-escaped, so a token such as ``<script>`` shows as text, and its control and
bidirectional characters are written as escapes (each span isolated too), so a token holding
U+202E cannot draw the text after it reversed.
"""

from __future__ import annotations

import html
import math

import pandas as pd

from ..traces import frames as F
from .theme import (
    CHAIN_ACCEPT,
    KIND_COLORS,
    KIND_LABELS,
    KIND_MARKS,
    TREE_CORRECTION,
    accept_label,
    visible,
)

TOKEN_COLUMNS = [F.STEP, F.POS, F.TEXT, F.KIND, F.EMITTED, F.OUT_INDEX, F.P, F.Q,
                 F.ACCEPT_PROB, F.U]
GHOSTS = {"none": (), "rejected": ("rejected",), "all": ("rejected", "unjudged")}


def _fmt(x: float) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _hover(step: int, pos: int, kind: str, p: float, q: float, a: float, u: float,
           accept: str = CHAIN_ACCEPT) -> str:
    where = f"step {step}" + (f", draft position {pos + 1}" if kind in ("accepted", "rejected",
                                                                        "unjudged") else "")
    probs = (f"\np = {_fmt(p)}   q = {_fmt(q)}\n{accept} = {_fmt(a)}   u = {_fmt(u)}"
             if math.isfinite(p) else "")
    mark = KIND_MARKS[kind]
    return f"{mark + ' ' if mark else ''}{KIND_LABELS[kind]} ({where}){probs}"


def kind_style(kind: str) -> str:
    """The CSS of a token of this kind: its color and its line style."""
    c = KIND_COLORS[kind]
    base = "padding:0 1px;margin:0 1px"
    return {
        "accepted": f"border-bottom:3px solid {c};background:{c}1f;{base}",
        "resampled": f"text-decoration:underline double {c};text-decoration-thickness:2px;"
                     f"text-underline-offset:3px;background:{c}2e;font-weight:700;{base}",
        "bonus": f"text-decoration:underline wavy {c};text-decoration-thickness:2px;"
                 f"text-underline-offset:3px;background:{c}24;font-weight:700;{base}",
        "rejected": f"color:{c};text-decoration:line-through 2px;font-size:0.95em;{base}",
        "unjudged": f"color:#666;text-decoration:line-through dotted 2px;font-size:0.95em;"
                    f"{base}",
        "target": f"border-bottom:1px solid {c}66;padding:0 1px",
    }[kind]


def legend_html(kinds=("accepted", "resampled", "bonus", "rejected"), tree: bool = False) -> str:
    """A one-line key of the token styles (each with its mark, as in the figures); a tree
    run's correction comes from what the walk left of p, not from one norm(max(0, p − q))."""
    label = {**KIND_LABELS, "resampled": TREE_CORRECTION} if tree else KIND_LABELS
    items = "".join(_span(f"{KIND_MARKS[k]} {label[k]}".strip(), k, "") + " "
                    for k in kinds)
    return f'<div style="font-size:1em;margin:0.2em 0 0.6em 0">{items}</div>'


def _span(text: str, kind: str, title: str, highlight: bool = False) -> str:
    style = kind_style(kind)
    if highlight:
        style += ";outline:2px solid #d00;background:#ffd6d6"
    shown = html.escape(visible(text)).replace("\n", "↵<br>")
    return (f'<span title="{html.escape(title, quote=True)}" style="{style};'
            f'unicode-bidi:isolate">{shown}</span>')


def token_spans(tokens: pd.DataFrame, ghosts: str = "rejected",
                highlight: int | None = None, tree: bool = False) -> list[str]:
    """One HTML span per row of ``tokens_frame`` that is shown (emitted tokens, and the
    thrown-away drafts that ``ghosts`` asks for), in reading order."""
    show, accept = GHOSTS[ghosts], accept_label(tree)
    spans = []
    for step, pos, text, kind, emitted, idx, p, q, a, u in tokens[TOKEN_COLUMNS].itertuples(
            index=False):
        if not emitted and kind not in show:
            continue
        spans.append(_span(text, kind, _hover(step, pos, kind, p, q, a, u, accept),
                           highlight is not None and idx == highlight))
    return spans


def text_block_html(spans: list[str], lead: str = "") -> str:
    """Spans (of ``token_spans``) in the colored-text block; ``lead`` goes first (e.g. the
    prompt, or a note that earlier tokens are left out)."""
    return ('<div class="specviz-text" style="font-family:ui-monospace,Menlo,Consolas,'
            'monospace;white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.9;'
            'font-size:0.95em">'
            f"{lead}{''.join(spans)}</div>")


def colored_text_html(tokens: pd.DataFrame, ghosts: str = "rejected",
                      highlight: int | None = None, prompt: str | None = None,
                      tree: bool = False) -> str:
    """The output text: one row of ``tokens_frame`` becomes one span.

    ``ghosts``: which thrown-away drafts to show struck through: "rejected" (the first
    rejection of each step), "all" (also the drafts after it), or "none".
    ``highlight``: output index of a token to mark (e.g. the first divergence from a baseline).
    """
    spans = token_spans(tokens, ghosts, highlight, tree)
    n_out = int(tokens[F.OUT_INDEX].max()) + 1 if len(tokens) else 0
    if highlight is not None and highlight >= n_out:
        spans.append(_span("⟂ (output ends here)", "rejected", "first divergence", True))
    lead = (f'<span style="color:#888;unicode-bidi:isolate">{html.escape(visible(prompt))}'
            "</span>" if prompt else "")
    return text_block_html(spans, lead)


# ---------------------------------------------------------------- the live view
# Painted several times a second while a run decodes: small markup (a class per kind, one
# style block, no hover titles), so that the browser's work per paint stays small.

LIVE_KINDS = ("accepted", "rejected", "unjudged", "resampled", "bonus", "target")


def live_css() -> str:
    """One style block with a class per token kind (``sv-<kind>``), as ``kind_style``. (Put
    it after some content: a leading style block is moved out of the body by sanitisers.)"""
    rules = "".join(f".sv-{k}{{{kind_style(k)}}}" for k in LIVE_KINDS)
    return (f"<style>{rules}.sv-tl td{{padding:1px 6px;font-family:ui-monospace,monospace;"
            "font-size:0.85em;white-space:pre}.sv-tl td.sv-step{color:#888;text-align:right}"
            "[class^=sv-]{unicode-bidi:isolate}"
            "</style>")


def _piece(text: str, kind: str, mark: bool = False, breaks: bool = False) -> str:
    shown = html.escape(visible(text)).replace("\n", "↵<br>" if breaks else "↵")
    if mark and KIND_MARKS[kind]:
        shown = f"{KIND_MARKS[kind]} {shown}"
    return f'<span class="sv-{kind}">{shown}</span>'


def live_spans(tokens: pd.DataFrame) -> list[str]:
    """Compact spans (class, no title) of the rows of ``tokens_frame`` the text shows: the
    emitted tokens and the first rejected draft of each step."""
    shown = tokens[tokens[F.EMITTED] | (tokens[F.KIND] == "rejected")]
    return [_piece(t, k, breaks=True) for t, k in zip(shown[F.TEXT], shown[F.KIND])]


def live_timeline_row(tokens: pd.DataFrame) -> str:
    """One step of ``tokens_frame`` as a table row: its number, then each drafted token and
    the token the target added, marked and styled by kind."""
    step = int(tokens[F.STEP].iloc[0])
    cells = "".join(f"<td>{_piece(t, k, mark=True)}</td>"
                    for t, k in zip(tokens[F.TEXT], tokens[F.KIND]))
    return f'<tr><td class="sv-step">{step}</td>{cells}</tr>'


def live_timeline_html(rows: list[str]) -> str:
    """Rows of ``live_timeline_row`` as a small table, the latest step last."""
    return f'<table class="sv-tl" style="border-collapse:collapse">{"".join(rows)}</table>'
