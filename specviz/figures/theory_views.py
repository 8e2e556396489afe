"""Figures of the theory (Leviathan et al. 2023), from ``specviz.theory`` frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .. import theory as T
from .theme import SERIES, hline, themed, vline

MEASURED_LABEL = "label"


def fig_speedup_vs_gamma(curves: pd.DataFrame, measured: pd.DataFrame | None = None,
                         title: str = "Expected speedup vs γ") -> go.Figure:
    """One row of ``curves_frame`` becomes one point; one line per α. ``measured`` (columns
    alpha, gamma, speedup, label) adds measured runs as points."""
    data = [go.Scatter(x=df[T.GAMMA], y=df[T.SPEEDUP], mode="lines+markers",
                       name=f"α = {a:.2f}", line=dict(color=SERIES[i % len(SERIES)]),
                       hovertemplate="γ=%{x}: %{y:.2f}×<extra>α=" + f"{a:.2f}</extra>")
            for i, (a, df) in enumerate(curves.groupby(T.ALPHA))]
    data += _measured(measured, T.GAMMA, T.SPEEDUP)
    return themed(data, title, height=400, shapes=[hline(1.0)],
                  xaxis=dict(title="γ (drafted tokens per step)", dtick=2),
                  yaxis=dict(title="speedup over the target alone (×)"))


def fig_expected_tokens(curves: pd.DataFrame, measured: pd.DataFrame | None = None
                        ) -> go.Figure:
    """E = (1 − α^(γ+1)) / (1 − α): one row of ``curves_frame`` becomes one point; one line
    per γ. ``measured`` (columns alpha, expected_tokens, label) adds runs as points."""
    data = [go.Scatter(x=df[T.ALPHA], y=df[T.E], mode="lines", name=f"γ = {g}",
                       line=dict(color=SERIES[i % len(SERIES)]),
                       hovertemplate="α=%{x:.2f}: E=%{y:.2f}<extra>γ=" + str(g) + "</extra>")
            for i, (g, df) in enumerate(curves.groupby(T.GAMMA))]
    data += _measured(measured, T.ALPHA, T.E)
    return themed(data, "Expected tokens per verification step", height=400,
                  xaxis=dict(title="α (acceptance rate)", range=[0, 1]),
                  yaxis=dict(title="E: tokens per verification step"))


def fig_speedup_surface(curves: pd.DataFrame, best: pd.DataFrame | None = None
                        ) -> go.Figure:
    """Speedup over α × γ: one row of ``curves_frame`` becomes one cell; ``best`` (one row
    per α: alpha, gamma) draws the best γ as a line."""
    pivot = curves.pivot(index=T.GAMMA, columns=T.ALPHA, values=T.SPEEDUP)
    z = pivot.to_numpy()
    data = [go.Heatmap(z=z, x=pivot.columns.to_numpy(), y=pivot.index.to_numpy(),
                       colorscale="RdBu", zmid=1.0, colorbar=dict(title="speedup ×"),
                       hovertemplate="α=%{x:.2f}, γ=%{y}: %{z:.2f}×<extra></extra>")]
    if np.nanmax(z) > 1.0 > np.nanmin(z):
        data.append(go.Contour(z=z, x=pivot.columns.to_numpy(), y=pivot.index.to_numpy(),
                               contours=dict(start=1, end=1, size=1, coloring="none"),
                               line=dict(color="black", dash="dot"), showscale=False,
                               name="speedup = 1", hoverinfo="skip"))
    if best is not None:
        data.append(go.Scatter(x=best[T.ALPHA], y=best[T.GAMMA], mode="lines",
                               name="best γ", line=dict(color="black", width=3)))
    return themed(data, "Speedup over α and γ (dotted: break-even)", height=420,
                  xaxis=dict(title="α (acceptance rate)"), yaxis=dict(title="γ"))


def fig_what_if(scenarios: pd.DataFrame) -> go.Figure:
    """One row of ``theory.what_if`` becomes one horizontal bar of predicted speedup."""
    now = float(scenarios[T.SPEEDUP].iloc[0])
    colors = ["#555555" if i == 0 else (SERIES[2] if s >= now else SERIES[1])
              for i, s in enumerate(scenarios[T.SPEEDUP])]
    bar = go.Bar(x=scenarios[T.SPEEDUP], y=scenarios[T.SCENARIO], orientation="h",
                 marker_color=colors, text=[f"{s:.2f}×" for s in scenarios[T.SPEEDUP]],
                 textposition="outside", hovertemplate="%{y}: %{x:.2f}×<extra></extra>")
    return themed([bar], "What if…", height=80 + 34 * len(scenarios), legend=False,
                  shapes=[vline(1.0)], yaxis=dict(autorange="reversed"),
                  xaxis=dict(title="predicted speedup (×)"))


def _measured(measured: pd.DataFrame | None, x: str, y: str) -> list:
    if measured is None or measured.empty:
        return []
    return [go.Scatter(x=measured[x], y=measured[y], mode="markers", name="measured",
                       text=measured[MEASURED_LABEL],
                       marker=dict(size=12, symbol="x", color="black"),
                       hovertemplate="%{text}<br>(%{x:.2f}, %{y:.2f})<extra></extra>")]
