"""A token tree of one step: what the draft proposed, what the target kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..traces import frames as F
from .theme import (
    INK,
    KIND_COLORS,
    KIND_SYMBOLS,
    Q_COLOR,
    Q_ZERO_LABEL,
    Q_ZERO_MARK,
    TREE_ACCEPT,
    TREE_CORRECTION,
    kind_name,
    layout,
    show_token,
    unjudged_why,
)

ROOT_COLOR = "#555555"
DRAFTED = "drafted"  # a node proposed, not judged yet (the walkthrough's earlier moments)
EDGE_FADED = "#D6D6D6"


def _fmt(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.3f}"


FADED = ("unjudged", "q0")  # drawn faded: never judged
_SYMBOLS = {DRAFTED: "hexagon-open", "q0": "circle-x-open"}
_COLOR_OF = {"q0": "unjudged"}
_UNREACHED = "· never reached by the walk"


def _groups(tree: pd.DataFrame, greedy: bool) -> list[tuple[str, pd.DataFrame, str]]:
    """The nodes by how they are drawn, with their legend names: a sampled tree's children
    the draft gave q = 0 apart from the nodes the walk never reached."""
    out = []
    for kind in ("accepted", "resampled", "bonus", "rejected", "unjudged", DRAFTED):
        part = tree[tree[F.KIND] == kind]
        if kind == "unjudged" and not greedy:
            zero = part[F.Q] == 0
            out += [(kind, part[~zero], _UNREACHED), ("q0", part[zero], Q_ZERO_LABEL)]
        elif kind == "resampled":
            out.append((kind, part, "◆ the target's own token (p's top, in place of a "
                                    "rejected draft)" if greedy else
                        f"◆ {TREE_CORRECTION} after the rejections"))
        else:
            out.append((kind, part, {DRAFTED: "drafted, not judged yet",
                                     "unjudged": _UNREACHED}.get(kind) or kind_name(kind)))
    return out


def _edges(tree: pd.DataFrame) -> list[go.Scatter]:
    """The tree's edges: faded ones first, then the kept path (thick) over them."""
    by_node = tree.set_index(F.NODE)
    kept = set(tree.loc[tree[F.KIND].isin(["accepted", "resampled", "bonus"]), F.NODE])
    data = []
    for faded in (True, False):  # faded edges first, under the kept path
        xs, ys = [], []
        for _, r in tree[tree[F.NODE] >= 0].iterrows():
            if (r[F.NODE] in kept) == faded:
                continue
            par = by_node.loc[r[F.PARENT]]
            xs += [par[F.DEPTH], r[F.DEPTH], None]
            ys += [par[F.Y], r[F.Y], None]
        data.append(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                               line=dict(color=EDGE_FADED if faded else KIND_COLORS["accepted"],
                                         width=1.5 if faded else 4)))
    return data


def fig_tree_step(tree: pd.DataFrame, title: str | None = "Token tree of the step",
                  greedy: bool = False) -> go.Figure:
    """One step's tree from ``tree_frame``: depth across, the root x₀ (the last committed
    token) on the left. The accepted path and the token the target added are drawn in full
    with thick edges; rejected nodes (✗) keep their color; nodes the verifier never reached
    (·) and their edges are faded. Hover: p and q of the token at its parent, its acceptance
    probability at its turn in the walk (``TREE_ACCEPT``) and u (greedy: whether it is p's
    top token)."""
    data: list = _edges(tree)
    root = tree[tree[F.KIND] == F.ROOT]
    root_text = str(root[F.TEXT].iloc[0]) if len(root) else "x₀"
    data.append(go.Scatter(x=root[F.DEPTH], y=root[F.Y], mode="markers",
                           name="x₀: the last committed token",
                           marker=dict(symbol="square", size=16, color=ROOT_COLOR),
                           hovertemplate="x₀, the last committed token<extra></extra>"))
    labels = [dict(x=float(root[F.DEPTH].iloc[0]), y=float(root[F.Y].iloc[0]),
                   text=show_token(root_text) if root_text != "x₀" else "x₀",
                   xanchor="right", xshift=-12, showarrow=False,
                   font=dict(color=INK, size=14))] if len(root) else []
    for kind, part, name in _groups(tree, greedy):
        if part.empty:
            continue
        labels += _node_labels(kind, part)
        color = Q_COLOR if kind == DRAFTED else KIND_COLORS[_COLOR_OF.get(kind, kind)]
        data.append(go.Scatter(
            x=part[F.DEPTH], y=part[F.Y], mode="markers", name=name,
            marker=dict(symbol=_SYMBOLS.get(kind) or KIND_SYMBOLS[kind],
                        size=11 if kind in FADED else 15, color=color,
                        line=dict(width=2, color=color)),
            opacity=0.55 if kind in FADED else 1.0,
            customdata=_node_hovers(kind, part, name, greedy),
            hovertemplate="%{customdata}<extra></extra>"))
    return go.Figure(data=data, layout=_tree_layout(tree, title, labels))


def _node_labels(kind: str, part: pd.DataFrame) -> list[dict]:
    """The text beside each node of one group: its mark (✓ ✗ ◆ ★) and its token."""
    mark = {"accepted": "✓ ", "rejected": "✗ ", "resampled": "◆ ", "bonus": "★ ",
            "q0": Q_ZERO_MARK + " "}.get(kind, "")
    return [dict(x=float(r[F.DEPTH]), y=float(r[F.Y]), text=mark + show_token(r[F.TEXT]),
                 xanchor="left", xshift=10, showarrow=False, bgcolor="rgba(255,255,255,0.9)",
                 font=dict(color="#8A8A8A" if kind in FADED else INK, size=14))
            for _, r in part.iterrows()]


def _node_hovers(kind: str, part: pd.DataFrame, name: str, greedy: bool) -> list[str]:
    """Each node's hover text: its token and group, then p, q and the walk's verdict."""
    hover = []
    for _, r in part.iterrows():
        text = f"<b>{show_token(r[F.TEXT])}</b> · {name} · depth {r[F.DEPTH]}"
        if kind in ("resampled", "bonus"):
            hover.append(text + "<br>added by the target")
            continue
        verdict = (f"p's top token: {'yes' if r[F.ACCEPT_PROB] >= 1 else 'no'}" if greedy
                   else f"{TREE_ACCEPT}={_fmt(r[F.ACCEPT_PROB])} u={_fmt(r[F.U])}")
        if kind == DRAFTED:
            hover.append(f"{text}<br>q={_fmt(r[F.Q])}")
            continue
        hover.append(f"{text}<br>p={_fmt(r[F.P])} q={_fmt(r[F.Q])} · "
                     + (unjudged_why(r[F.Q], True) if kind in FADED else verdict))
    return hover


def _tree_layout(tree: pd.DataFrame, title: str | None, labels: list[dict]) -> dict:
    """The tree's layout: as tall as its rows of labels, the legend under the plot."""
    n_rows = int(tree[F.Y].max()) + 1 if len(tree) else 1
    depth = int(tree[F.DEPTH].max()) if len(tree) else 1
    # a row of labels needs ~34 px (a 64-node tree: up to ~2,300 px, scrolled, not squeezed);
    # the legend goes under the plot, where its wrapped lines take no room from the tree
    legend_px = 120
    height = int(max(260, 34 * n_rows + 150)) + legend_px
    lay = layout(title, height, annotations=labels,
                 xaxis=dict(title="depth: tokens after x₀", dtick=1, showgrid=False,
                            zeroline=False, range=[-0.8, depth + 0.9]),
                 yaxis=dict(visible=False, autorange="reversed"),
                 margin=dict(l=50, r=20, t=60 if title else 30, b=40 + legend_px))
    lay["legend"] = dict(orientation="h", yanchor="top", y=(legend_px - 8) / height,
                         yref="container", xanchor="left", x=0.0)
    return lay
