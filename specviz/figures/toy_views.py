"""Figures of the toy lab, from ``specviz.teaching.toy`` frames."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ..teaching import toy
from .theme import KIND_COLORS, P_COLOR, Q_COLOR, THEORY_COLOR, themed

LOG_TICKS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]


def fig_toy_distribution(dist: pd.DataFrame, title: str = "Output distribution") -> go.Figure:
    """One row of ``ToyResult.distribution_frame`` becomes one group of bars: p, q and the
    empirical frequency of the emitted tokens."""
    data = [go.Bar(x=dist[toy.TOKEN], y=dist[col], name=name, marker_color=color,
                   hovertemplate="%{x}: %{y:.3f}<extra>" + name + "</extra>")
            for col, name, color in ((toy.P, "p (target)", P_COLOR), (toy.Q, "q (draft)", Q_COLOR),
                                     (toy.EMPIRICAL, "emitted (empirical)",
                                      KIND_COLORS["accepted"]))]
    return themed(data, title, height=360, barmode="group", yaxis=dict(title="probability"))


def fig_toy_convergence(history: pd.DataFrame, band: pd.DataFrame | None = None,
                        exact: pd.DataFrame | None = None, rule: str = "") -> go.Figure:
    """Distance of the output to p against tokens emitted (log-log): one row of
    ``ToyResult.history`` becomes one point. ``band`` (``toy.tv_band``) shades where an
    exact sampler lands by chance (5–95 %, shrinking like 1/√n); ``exact`` (the history of
    the exact rule on the same p, q and seed) is the reference line when the rule is
    another one."""
    data = []
    if band is not None and not band.empty:
        data += [go.Scatter(x=band[toy.N_TOKENS], y=band[toy.HIGH], mode="lines",
                            line=dict(width=0), showlegend=False, hoverinfo="skip"),
                 go.Scatter(x=band[toy.N_TOKENS], y=band[toy.LOW], mode="lines",
                            line=dict(width=0), fill="tonexty", fillcolor="rgba(0,114,178,0.15)",
                            name="sampling noise of exact draws from p (5–95 %, ∝ 1/√n)",
                            hoverinfo="skip"),
                 go.Scatter(x=band[toy.N_TOKENS], y=band[toy.MEDIAN], mode="lines",
                            line=dict(color="#0072B2", dash="dot", width=1),
                            name="its median", hovertemplate="%{x} tokens: %{y:.4f}"
                                                             "<extra>median noise</extra>")]
    if exact is not None and not exact.empty:
        data.append(go.Scatter(x=exact[toy.N_TOKENS], y=exact[toy.TV], mode="lines",
                               name="exact rule (same p, q, seed)",
                               line=dict(color=THEORY_COLOR, dash="dash", width=2),
                               hovertemplate="%{x} tokens: %{y:.4f}<extra>exact</extra>"))
    data.append(go.Scatter(x=history[toy.N_TOKENS], y=history[toy.TV], mode="lines+markers",
                           name=f"this rule{f' ({rule})' if rule else ''}",
                           line=dict(color=KIND_COLORS["rejected"], width=3),
                           hovertemplate="%{x} tokens: %{y:.4f}<extra></extra>"))
    return themed(data, "Distance of the output to p", height=400,
                  xaxis=dict(title="tokens emitted", type="log",
                             tickvals=[1, 10, 100, 1000, 10_000, 100_000]),
                  yaxis=dict(title="total variation distance to p", type="log",
                             tickvals=LOG_TICKS, ticktext=[f"{t:g}" for t in LOG_TICKS]))
