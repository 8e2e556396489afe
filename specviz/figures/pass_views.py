"""What a pass of a target over T tokens costs, against its weight-reading floor (the data of
lesson 15, ``specviz.teaching.lessons.pass_costs``)."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from ..teaching.lessons import pass_costs as PC
from .theme import SERIES, themed

# each target its own colour (Okabe-Ito), marker and dash, so no line needs colour to be told
_STYLES = (("#0072B2", "circle", "solid", "dash"), ("#D55E00", "square", "dashdot", "dot"),
           (SERIES[2], "diamond", "longdash", "longdashdot"))


def fig_pass_times(passes: pd.DataFrame) -> go.Figure:
    """Time per pass against tokens per pass (``pass_costs.passes_frame``): one line of
    points per target (median, with its min-max range where the data has one) and one
    horizontal line per target at its weight-reading floor, each labelled with its numbers.
    The time axis is logarithmic (floors differ many times over between targets)."""
    data = []
    tokens = sorted(set(passes[PC.TOKENS].astype(int))) or [1]
    x_max = max(tokens)
    for i, (name, rows) in enumerate(passes.groupby(PC.TARGET, sort=False)):
        color, symbol, dash, floor_dash = _STYLES[i % len(_STYLES)]
        rows = rows.sort_values(PC.TOKENS)
        spread = rows[PC.HIGH].notna().all() and rows[PC.LOW].notna().all()
        error = dict(type="data", symmetric=False, array=rows[PC.HIGH] - rows[PC.MS],
                     arrayminus=rows[PC.MS] - rows[PC.LOW], color=color,
                     thickness=1.5) if spread else None
        # labels at one token, at the lesson's pass of 5 and at the largest pass (the rest in
        # the hover and the table): neighbouring points sit too close for more
        ts = rows[PC.TOKENS].astype(int).tolist()
        keep = {ts[0], 5, ts[-1]}
        labels = [(f"{_ms(ms)} ms" if t == ts[0] else f"v {v:.2f}") if t in keep else ""
                  for t, ms, v in zip(ts, rows[PC.MS], rows[PC.V])]
        where = ["top left" if t == ts[-1] and t != ts[0] else "top center" for t in ts]
        data.append(go.Scatter(
            x=rows[PC.TOKENS], y=rows[PC.MS], mode="lines+markers+text", name=f"{name}: pass",
            cliponaxis=False,
            text=labels, textposition=where, textfont=dict(size=12, color=color),
            line=dict(color=color, dash=dash, width=2.5),
            marker=dict(symbol=symbol, size=10, color=color), error_y=error,
            customdata=rows[PC.V],
            hovertemplate=f"{name}<br>%{{x}} tokens: %{{y:.3f}} ms, v %{{customdata:.2f}}"
                          "<extra></extra>"))
        floor = float(rows[PC.FLOOR].iloc[0])  # its value in the legend, clear of the points
        data.append(go.Scatter(
            x=[min(tokens) - 0.4, x_max + 0.4], y=[floor, floor], mode="lines",
            name=f"{name}: floor {_ms(floor)} ms", line=dict(color=color, dash=floor_dash,
                                                            width=2),
            hovertemplate=f"{name}: weights read once, {floor:.3f} ms<extra></extra>"))
    values = [*passes[PC.MS], *passes[PC.FLOOR], *passes[PC.HIGH].dropna()]
    lo = min(values) if values else 0.1
    hi = max(values) if values else 1.0
    # the legend under the plot: at 1024 px its four entries wrap without covering the title
    return themed(data, "Time per pass against tokens per pass", height=500, legend=True,
                  margin=dict(l=60, r=20, t=50, b=150),
                  legend_orientation="h", legend_y=-0.2, legend_yanchor="top",
                  xaxis=dict(title="tokens per pass (T)", tickmode="array", tickvals=tokens,
                             range=[min(tokens) - 0.6, x_max + 0.8]),
                  yaxis=dict(title="ms per pass (log scale)", type="log",
                             range=[math.log10(lo) - 0.3, math.log10(hi) + 0.35],
                             tickvals=_ticks(lo / 2, hi * 2),
                             ticktext=[_ms(t) for t in _ticks(lo / 2, hi * 2)]))


def _ms(x: float) -> str:
    """A time in ms, short: 0.112, 3.93, 765, 19,400."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _ticks(lo: float, hi: float) -> list[float]:
    """1, 2, 5 times the powers of ten between lo and hi (a log axis's few labels)."""
    out = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        out += [k * 10.0 ** e for k in (1, 2, 5) if lo <= k * 10.0 ** e <= hi]
    return out
