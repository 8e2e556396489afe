"""The race's chart: tokens emitted against wall time for a run and its baseline, drawn to
be read on a projector (large type, few words, each line told apart by colour, dash and
marker)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ..traces import frames as F
from .theme import INK, KIND_COLORS, themed

RACE_STYLES = {  # side -> (colour, dash, marker): distinct without colour too
    "speculative": (KIND_COLORS["accepted"], "solid", "circle"),
    "target alone": (KIND_COLORS["target"], "dash", "square"),
}
BIG = 20  # projector type size


def fig_race(steps: pd.DataFrame) -> go.Figure:
    """Tokens emitted vs wall time, large: one row of a ``steps_frame`` with a ``run`` column
    ("speculative" or "target alone") becomes one point; one stepped line per run, named
    with its tokens and seconds."""
    data = []
    for name, df in steps.groupby(F.RUN_NAME, sort=False):
        color, dash, symbol = RACE_STYLES.get(str(name), (INK, "dot", "diamond"))
        x, y = [0.0, *df[F.T_END_S]], [0, *df[F.TOKENS_CUM]]
        data.append(go.Scatter(
            x=x, y=y, name=f"{name}: {y[-1]} tokens in {x[-1]:.2f} s",
            mode="lines+markers" if len(df) <= 80 else "lines",
            line=dict(color=color, dash=dash, width=4, shape="hv"),
            marker=dict(symbol=symbol, size=8, color=color),
            hovertemplate="%{x:.2f} s: %{y} tokens<extra>" + str(name) + "</extra>"))
    fig = themed(data, "Tokens emitted vs wall time", height=400,
                 xaxis=dict(title="wall time (s)", rangemode="tozero",
                            tickfont=dict(size=BIG - 4, color=INK),
                            title_font=dict(size=BIG - 2, color=INK)),
                 yaxis=dict(title="tokens", rangemode="tozero",
                            tickfont=dict(size=BIG - 4, color=INK),
                            title_font=dict(size=BIG - 2, color=INK)))
    fig.update_layout(font=dict(size=BIG - 2), legend=dict(font=dict(size=BIG - 2)),
                      title=dict(font=dict(size=BIG)), margin=dict(l=70, r=30, t=110, b=60))
    return fig
