"""Figures of the theory (Leviathan et al. 2023), from ``specviz.teaching.theory`` frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..teaching import theory as T
from .theme import SERIES, hline, plotly_text, themed, vline

MEASURED_LABEL = "label"
# a second channel beside color for the curves of one figure (marker, then dash), so that
# neighbouring hues stay apart for a colour-blind reader and on a projector
CURVE_MARKERS = ["circle", "square", "diamond", "triangle-up", "cross", "triangle-down",
                 "star", "hexagon"]
CURVE_DASHES = ["solid", "dash", "dot", "dashdot"]


def _curve_style(i: int) -> dict:
    """Line and marker of the i-th curve: its own color, marker symbol and dash."""
    color = SERIES[i % len(SERIES)]
    return dict(line=dict(color=color, dash=CURVE_DASHES[i % len(CURVE_DASHES)]),
                marker=dict(color=color, symbol=CURVE_MARKERS[i % len(CURVE_MARKERS)],
                            size=7, maxdisplayed=14))
GAMMA_TICKS = [1, 4, 8, 12, 16, 20, 24, 28, 32]
# many curves: their legend in rows under the plot (Plotly makes room for it), never in
# rows over the title on a narrow screen, nor in a column that squeezes the plot
LEGEND_BELOW = dict(legend=dict(orientation="h", x=0.0, xanchor="left", y=-0.17,
                                yanchor="top"), margin=dict(l=50, r=20, t=50, b=40))
LOG_TICKS = [0.125, 0.25, 0.5, 1, 2, 4, 8]


def _gamma_axis(gammas, title: str = "γ (drafted tokens per step)") -> dict:
    """γ from its first to its last value (never below 1), ticks at whole draft lengths."""
    lo, hi = int(np.min(gammas)), int(np.max(gammas))
    return dict(title=title, range=[lo - 0.5, hi + 0.5],
                tickvals=[t for t in GAMMA_TICKS if lo <= t <= hi])


def fig_speedup_vs_gamma(curves: pd.DataFrame, measured: pd.DataFrame | None = None,
                         title: str = "Expected speedup vs γ",
                         highlight: str | None = None) -> go.Figure:
    """One row of ``curves_frame`` becomes one point; one line per α. ``measured`` (columns
    alpha, gamma, speedup, label) adds measured runs as points at their mean drafted γ,
    named on hover; the run named ``highlight`` (the one whose α, c, v, o the curves use)
    is drawn large and labelled."""
    data = [go.Scatter(x=df[T.GAMMA], y=df[T.SPEEDUP], mode="lines+markers",
                       name=f"α = {a:.2f}", **_curve_style(i),
                       hovertemplate="γ=%{x}: %{y:.2f}×<extra>α=" + f"{a:.2f}</extra>")
            for i, (a, df) in enumerate(curves.groupby(T.ALPHA))]
    data += _measured(measured, T.GAMMA, T.SPEEDUP, highlight)
    return themed(data, title, height=470, shapes=[hline(1.0)],
                  annotations=_highlight_note(measured, T.GAMMA, T.SPEEDUP, highlight),
                  xaxis=_gamma_axis(curves[T.GAMMA]),
                  yaxis=dict(title="speedup over the target alone (×)", rangemode="tozero")
                  ).update_layout(LEGEND_BELOW)


def fig_expected_tokens(curves: pd.DataFrame, measured: pd.DataFrame | None = None
                        ) -> go.Figure:
    """E = (1 − α^(γ+1)) / (1 − α): one row of ``curves_frame`` becomes one point; one line
    per γ. ``measured`` (columns alpha, expected_tokens, label) adds runs as points."""
    data = [go.Scatter(x=df[T.ALPHA], y=df[T.E], mode="lines+markers", name=f"γ = {g}",
                       **_curve_style(i),
                       hovertemplate="α=%{x:.2f}: E=%{y:.2f}<extra>γ=" + str(g) + "</extra>")
            for i, (g, df) in enumerate(curves.groupby(T.GAMMA))]
    data += _measured(measured, T.ALPHA, T.E)
    return themed(data, "Expected tokens per verification step", height=470,
                  xaxis=dict(title="α (acceptance rate)", range=[0, 1]),
                  yaxis=dict(title="E: tokens per verification step")
                  ).update_layout(LEGEND_BELOW)


def fig_speedup_surface(curves: pd.DataFrame, best: pd.DataFrame | None = None
                        ) -> go.Figure:
    """Speedup over α × γ: one row of ``curves_frame`` becomes one cell, colored on a log
    scale centred at 1× (red: slower than the target alone, blue: faster; the scale is
    symmetric, so 0.5× and 2× are equally strong); ``best`` (one row per α: alpha, gamma)
    draws the best γ as a line, the dotted line is the break-even 1×."""
    pivot = curves.pivot(index=T.GAMMA, columns=T.ALPHA, values=T.SPEEDUP)
    z = pivot.to_numpy()
    with np.errstate(divide="ignore"):
        logz = np.log2(np.clip(z, 1e-6, None))  # (gamma, alpha)
    span = float(np.clip(np.nanmax(np.abs(logz)), 1.0, 3.0))  # at most 1/8× … 8×
    ticks = [t for t in LOG_TICKS if abs(np.log2(t)) <= span + 1e-9]
    data = [go.Heatmap(z=logz, x=pivot.columns.to_numpy(), y=pivot.index.to_numpy(),
                       customdata=z, colorscale="RdBu", zmin=-span, zmax=span, zmid=0.0,
                       colorbar=dict(title="speedup", tickvals=np.log2(ticks).tolist(),
                                     ticktext=[f"{t:g}×" for t in ticks]),
                       hovertemplate="α=%{x:.2f}, γ=%{y}: %{customdata:.2f}×<extra></extra>")]
    if np.nanmax(z) > 1.0 > np.nanmin(z):
        data.append(go.Contour(z=z, x=pivot.columns.to_numpy(), y=pivot.index.to_numpy(),
                               contours=dict(start=1, end=1, size=1, coloring="none"),
                               line=dict(color="black", dash="dot"), showscale=False,
                               name="speedup = 1×", hoverinfo="skip"))
    if best is not None:
        data.append(go.Scatter(x=best[T.ALPHA], y=best[T.GAMMA], mode="lines",
                               name="best γ", line=dict(color="black", width=3)))
    return themed(data, "Speedup over α and γ (log scale, white = 1×; dotted: break-even)",
                  height=440, xaxis=dict(title="α (acceptance rate)"),
                  yaxis=_gamma_axis(pivot.index.to_numpy(), "γ"))


def fig_what_if(scenarios: pd.DataFrame, measured: float | None = None) -> go.Figure:
    """One row of ``theory.what_if`` becomes one horizontal bar of predicted speedup;
    ``measured`` (a run's prediction from its measured tokens per step) is a dashed line."""
    now = float(scenarios[T.SPEEDUP].iloc[0])
    colors = ["#555555" if i == 0 else (SERIES[2] if s >= now else SERIES[1])
              for i, s in enumerate(scenarios[T.SPEEDUP])]
    bar = go.Bar(x=scenarios[T.SPEEDUP], y=scenarios[T.SCENARIO], orientation="h",
                 marker_color=colors, text=[f"{s:.2f}×" for s in scenarios[T.SPEEDUP]],
                 textposition="outside", hovertemplate="%{y}: %{x:.2f}×<extra></extra>")
    shapes = [vline(1.0)]
    notes = []
    if measured is not None and np.isfinite(measured):
        shapes.append(dict(type="line", yref="paper", y0=0, y1=1, x0=measured, x1=measured,
                           line=dict(color=SERIES[0], dash="dash", width=2)))
        notes.append(dict(x=measured, y=1, yref="paper", yanchor="bottom", showarrow=False,
                          text=f"this run: {measured:.2f}×", font=dict(color=SERIES[0])))
    return themed([bar], "What if…", height=110 + 34 * len(scenarios), legend=False,
                  shapes=shapes, annotations=notes, yaxis=dict(autorange="reversed"),
                  xaxis=dict(title="predicted speedup (×)", rangemode="tozero"))


def _measured(measured: pd.DataFrame | None, x: str, y: str,
              highlight: str | None = None) -> list:
    if measured is None or measured.empty:
        return []
    data = [go.Scatter(x=measured[x], y=measured[y], mode="markers", name="measured runs",
                       text=[plotly_text(s) for s in measured[MEASURED_LABEL]],
                       marker=dict(size=10, symbol="x", color="black",
                                   opacity=0.35 if highlight else 0.9),
                       hovertemplate="%{text}<br>(%{x:.2f}, %{y:.2f})<extra></extra>")]
    picked = measured[measured[MEASURED_LABEL] == highlight] if highlight else measured[:0]
    if not picked.empty:  # named by an arrow from the side (_highlight_note), not over them
        data.append(go.Scatter(x=picked[x], y=picked[y], mode="markers",
                               name="the run the sliders come from",
                               customdata=[plotly_text(s) for s in picked[MEASURED_LABEL]],
                               marker=dict(size=16, symbol="x", color=SERIES[1],
                                           line=dict(width=1, color="black")),
                               hovertemplate="%{customdata}<br>(%{x:.2f}, %{y:.2f})"
                                             "<extra></extra>"))
    return data


def _highlight_note(measured: pd.DataFrame | None, x: str, y: str,
                    highlight: str | None) -> list[dict]:
    """An arrow naming the run the sliders come from, its label off to the upper right on a
    white box, so it covers none of the measured markers around the point."""
    if measured is None or measured.empty or not highlight:
        return []
    picked = measured[measured[MEASURED_LABEL] == highlight]
    return [dict(x=float(px), y=float(py), text="this run", showarrow=True, arrowhead=2,
                 ax=46, ay=-38, bgcolor="white", bordercolor=SERIES[1], borderpad=3,
                 font=dict(color=SERIES[1], size=14))
            for px, py in zip(picked[x], picked[y])]
