"""Figures of many runs (the Runs page): one figure per function, each from a tidy frame of
specviz.runs.queries or specviz.runs.vllm. Group names and run labels come from traces:
they are HTML-escaped before Plotly draws them."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

from .theme import SERIES, themed, vline

GROUP = "group"  # the column holding a row's group name (queries.group_label)
MAX_LINES = 8  # groups drawn as lines; the rest are in the table
LOG_TICKS = [0.125, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 8]


def _esc(s: object, limit: int = 80) -> str:
    text = str(s)
    return html.escape(text if len(text) <= limit else text[:limit - 1] + "…", quote=False)


def fig_position_acceptance(pos: pd.DataFrame) -> go.Figure:
    """One row (group, position from 1, alpha_hat, alpha_lo, alpha_hi, judged) becomes one
    point of its group's line, with the Wilson interval as error bars; at most MAX_LINES
    groups, those with the most judged positions."""
    top = (pos.groupby(GROUP)["judged"].sum().sort_values(ascending=False)
           .index[:MAX_LINES].tolist())
    traces = []
    for i, g in enumerate(top):
        d = pos[(pos[GROUP] == g) & (pos["judged"] > 0)]
        traces.append(go.Scatter(
            x=d["position"], y=d["alpha_hat"], mode="lines+markers", name=_esc(g, 90),
            line=dict(color=SERIES[i % len(SERIES)]),
            error_y=dict(type="data", symmetric=False, array=d["alpha_hi"] - d["alpha_hat"],
                         arrayminus=d["alpha_hat"] - d["alpha_lo"], thickness=1.2),
            customdata=d[["judged", "accepted", "alpha_lo", "alpha_hi"]].to_numpy(),
            hovertemplate=("position %{x}: α̂ %{y:.3f} (95 % %{customdata[2]:.3f}–"
                           "%{customdata[3]:.3f}), %{customdata[1]:,} of %{customdata[0]:,} "
                           "judged<extra>" + _esc(g, 60) + "</extra>")))
    fig = themed(traces, title="Acceptance by draft position (α̂, Wilson 95 %)",
                 height=460 + 22 * len(top), xaxis=dict(title="draft position", dtick=1),
                 yaxis=dict(title="α̂ = accepted / judged", range=[0, 1.02]))
    # the legend under the plot: group names are long
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.18, x=0.0),
                      margin=dict(t=60, b=40 + 22 * len(top)))
    return fig


def fig_group_speedup(groups: pd.DataFrame) -> go.Figure:
    """One row (group, speedup, speedup_lo, speedup_hi, with_baseline) becomes one point
    with its 95 % interval, slowest at the top; groups without a baseline are left out."""
    d = groups.dropna(subset=["speedup"]).iloc[:40]
    names = [f"{_esc(g, 48)} (n={int(n)})" for g, n in zip(d[GROUP], d["with_baseline"])]
    lo = (d["speedup"] - d["speedup_lo"]).fillna(0)
    hi = (d["speedup_hi"] - d["speedup"]).fillna(0)
    point = go.Scatter(
        x=d["speedup"], y=names, mode="markers", marker=dict(size=10, color=SERIES[0]),
        error_x=dict(type="data", symmetric=False, array=hi, arrayminus=lo, thickness=1.5),
        customdata=list(zip(d["speedup_min"], d["speedup_max"], [_esc(g, 300) for g in d[GROUP]])),
        hovertemplate=("%{customdata[2]}: %{x:.2f}× (geometric mean; runs from "
                       "%{customdata[0]:.2f}× to %{customdata[1]:.2f}×)<extra></extra>"),
        showlegend=False)
    more = f" — the {len(d)} slowest of {groups['speedup'].notna().sum()} groups" \
        if groups["speedup"].notna().sum() > len(d) else ""
    return themed([point], title=f"Speed-up against the target-only runs (95 % interval){more}",
                  height=max(260, 90 + 26 * len(d)), legend=False,
                  xaxis=dict(title="speed-up (×)", type="log", tickvals=LOG_TICKS,
                             ticktext=[f"{t:g}×" for t in LOG_TICKS]),
                  yaxis=dict(autorange="reversed"), shapes=[vline(1.0)])


def fig_runs_scatter(runs: pd.DataFrame) -> go.Figure:
    """One row of queries.run_table (alpha_hat, speedup or tokens_per_s, label, shape)
    becomes one point: α̂ against speed-up (tokens/s where no run has a baseline)."""
    y, title = ("speedup", "speed-up (×)") if runs["speedup"].notna().any() \
        else ("tokens_per_s", "tokens/s")
    d = runs.dropna(subset=["alpha_hat", y])
    text = [f"{_esc(k, 60)}<br>{_esc(s)} · {_esc(p, 50)}"
            for k, s, p in zip(d["run_key"], d["shape"], d["prompt"])]
    pts = go.Scattergl(x=d["alpha_hat"], y=d[y], mode="markers", text=text,
                       marker=dict(size=7, color=SERIES[1], opacity=0.7),
                       hovertemplate="%{text}<br>α̂ %{x:.3f}, %{y:.2f}<extra></extra>")
    return themed([pts], title=f"Runs: α̂ against {title}", height=380, legend=False,
                  xaxis=dict(title="α̂ (run)", range=[0, 1.02]), yaxis=dict(title=title))


def fig_vllm_positions(pos: pd.DataFrame) -> go.Figure:
    """One row (position from 1, alpha, rate) becomes a bar of α at that position (of the
    drafts that reached it, the share accepted there) and a point of vLLM's own rate
    (accepted there / all drafts)."""
    bars = go.Bar(x=pos["position"], y=pos["alpha"], name="α at the position",
                  marker_color=SERIES[0],
                  hovertemplate="position %{x}: α %{y:.3f}<extra></extra>")
    rate = go.Scatter(x=pos["position"], y=pos["rate"], mode="lines+markers",
                      name="accepted there / all drafts (vLLM's rate)",
                      line=dict(color=SERIES[1], dash="dash"),
                      hovertemplate="position %{x}: %{y:.3f} of all drafts<extra></extra>")
    return themed([bars, rate], title="vLLM: acceptance by draft position", height=360,
                  xaxis=dict(title="draft position", dtick=1),
                  yaxis=dict(title="share", range=[0, 1.02]))
