"""Figures of the toy lab, from ``specviz.toy`` frames."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from .. import toy
from .theme import KIND_COLORS, P_COLOR, Q_COLOR, themed


def fig_toy_distribution(dist: pd.DataFrame, title: str = "Output distribution") -> go.Figure:
    """One row of ``ToyResult.distribution_frame`` becomes one group of bars: p, q and the
    empirical frequency of the emitted tokens."""
    data = [go.Bar(x=dist[toy.TOKEN], y=dist[col], name=name, marker_color=color,
                   hovertemplate="%{x}: %{y:.3f}<extra>" + name + "</extra>")
            for col, name, color in ((toy.P, "p (target)", P_COLOR), (toy.Q, "q (draft)", Q_COLOR),
                                     (toy.EMPIRICAL, "emitted (empirical)",
                                      KIND_COLORS["accepted"]))]
    return themed(data, title, height=360, barmode="group", yaxis=dict(title="probability"))


def fig_toy_convergence(history: pd.DataFrame) -> go.Figure:
    """One row of ``ToyResult.history`` becomes one point: total variation distance between
    the emitted tokens' frequencies and p, against tokens emitted (log scale)."""
    line = go.Scatter(x=history[toy.N_TOKENS], y=history[toy.TV], mode="lines+markers",
                      name="TV(empirical, p)", line=dict(color=KIND_COLORS["rejected"]),
                      hovertemplate="%{x} tokens: %{y:.4f}<extra></extra>")
    return themed([line], "Distance of the output to p", height=360, legend=False,
                  xaxis=dict(title="tokens emitted", type="log"),
                  yaxis=dict(title="total variation distance to p", rangemode="tozero"))
