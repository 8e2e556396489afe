"""Figures of the guided lessons, each from a frame of ``specviz.lessons``.

Like the other figure modules: one figure per function, nothing mutated, the docstring says
what one row of the frame becomes.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from .. import frames as F
from .. import lessons as L
from .. import theory as T
from .theme import (
    KIND_COLORS,
    P_COLOR,
    PHASE_COLORS,
    Q_COLOR,
    SERIES,
    THEORY_COLOR,
    hline,
    show_token,
    themed,
)


def fig_role_time(roles: pd.DataFrame) -> go.Figure:
    """Time spent by each model: one row of ``lessons.roles_frame`` becomes one bar (its
    forward passes in the hover)."""
    bar = go.Bar(x=roles[L.ROLE], y=roles[L.TIME_MS] / 1e3,
                 marker_color=[Q_COLOR, P_COLOR][: len(roles)],
                 customdata=roles[[L.PASSES]], text=[f"{n} passes" for n in roles[L.PASSES]],
                 textposition="outside",
                 hovertemplate="%{x}: %{y:.2f} s in %{customdata[0]} forward passes"
                               "<extra></extra>")
    return themed([bar], "Time each model spent in this run", height=320, legend=False,
                  yaxis=dict(title="seconds", rangemode="tozero"))


def fig_verify_cost(verif: pd.DataFrame) -> go.Figure:
    """One verification pass vs one target-only step: one row of
    ``lessons.verification_frame`` becomes one bar (mean verify pass, ms) and one marker
    (mean target-only step of the same file's baselines)."""
    x = [f"γ = {g}" for g in verif[L.CONFIG_GAMMA]]
    data = [go.Bar(x=x, y=verif[L.VERIFY_MS], name="one verification pass (γ + 1 positions)",
                   marker_color=P_COLOR, hovertemplate="%{x}: %{y:.1f} ms<extra></extra>"),
            go.Scatter(x=x, y=verif[L.BASE_STEP_MS], mode="markers",
                       name="one target-only step (1 position)",
                       marker=dict(color=KIND_COLORS["target"], size=14, symbol="line-ew",
                                   line=dict(width=4, color=KIND_COLORS["target"])),
                       hovertemplate="%{x}: %{y:.1f} ms<extra></extra>")]
    return themed(data, "Measured time of one target pass", height=360,
                  yaxis=dict(title="ms (mean over steps, first step left out)",
                             rangemode="tozero"))


def fig_q_topk(qtop: pd.DataFrame) -> go.Figure:
    """q at each drafted position of one step: one row of ``lessons.q_topk_frame`` becomes
    one bar, grouped by position and labelled with its token; the drafted token is
    outlined."""
    data = []
    for rank, df in qtop.groupby(L.RANK):
        data.append(go.Bar(
            x=[f"position {p + 1}" for p in df[F.POS]], y=df[F.Q], name=f"rank {rank + 1}",
            text=[("▶ " if d else "") + show_token(t) for t, d in
                  zip(df[F.TEXT], df[L.IS_DRAFTED])],
            textposition="outside", textangle=0,
            marker=dict(color=Q_COLOR, opacity=1.0 if rank == 0 else 0.75 - 0.1 * rank,
                        line=dict(color=["black" if d else "white" for d in df[L.IS_DRAFTED]],
                                  width=2)),
            hovertemplate="%{x}, %{text}: q = %{y:.3f}<extra>rank " + str(rank + 1)
                          + "</extra>"))
    return themed(data, "q's top tokens at each drafted position (▶ the drafted token)",
                  height=420, barmode="group", legend=False,
                  yaxis=dict(title="q (draft probability)", range=[0, 1.08]))


def fig_step_endings(endings: pd.DataFrame) -> go.Figure:
    """How steps end: one row of ``lessons.step_endings_frame`` becomes one bar segment
    (steps that accepted k drafts and ended with a correction or a bonus token)."""
    data = [go.Bar(x=df[F.LENGTH], y=df[F.COUNT], name=name,
                   marker_color=KIND_COLORS[kind],
                   hovertemplate="%{x} accepted: %{y} steps<extra>" + name + "</extra>")
            for kind, name in (("resampled", "ended with a correction"),
                               ("bonus", "ended with a bonus token"))
            for df in [endings[endings[L.ENDING] == kind]]]
    return themed(data, "Steps by accepted drafts and how they ended", height=340,
                  barmode="stack", xaxis=dict(title="drafts accepted in the step", dtick=1),
                  yaxis=dict(title="steps"))


def fig_saturation(curve: pd.DataFrame, sweep: pd.DataFrame) -> go.Figure:
    """Tokens per step vs γ: one row of ``lessons.saturation_frame`` becomes one point of
    the theory line E(α, γ), the ceiling 1 / (1 − α) a dotted line; one row of
    ``lessons.sweep_frame`` becomes one measured marker."""
    ceiling = float(curve[L.CEILING].iloc[0])
    data = [go.Scatter(x=curve[T.GAMMA], y=curve[T.E], mode="lines+markers",
                       name="theory E(α, γ)", line=dict(color=THEORY_COLOR),
                       hovertemplate="γ=%{x}: E=%{y:.2f}<extra></extra>"),
            go.Scatter(x=sweep[T.GAMMA], y=sweep["tokens_per_step"], mode="markers",
                       name="measured (prepared runs)", text=sweep[L.FILE],
                       marker=dict(size=13, symbol="x", color="black"),
                       hovertemplate="%{text}: %{y:.2f} tokens/step<extra></extra>")]
    shapes = [hline(ceiling, SERIES[1])] if ceiling == ceiling else []
    return themed(data, f"Tokens per step saturate at 1 / (1 − α) = {ceiling:.2f}",
                  height=400, shapes=shapes,
                  xaxis=dict(title="γ (drafted tokens per step)", dtick=2),
                  yaxis=dict(title="tokens per verification step", rangemode="tozero"))


def fig_setups(setups: pd.DataFrame) -> go.Figure:
    """Measured speedup per setup: one row of ``lessons.setups_frame`` becomes one bar (α̂
    and c written on it); the dotted line is the target alone (1×)."""
    text = [f"α̂ {a:.2f} · c {c:.2f}" for a, c in zip(setups[T.ALPHA], setups[T.C])]
    bar = go.Bar(x=setups[L.SETUP], y=setups["speedup_measured"], text=text,
                 textposition="outside", marker_color=SERIES[0],
                 hovertemplate="%{x}: %{y:.2f}×<extra></extra>")
    return themed([bar], "Measured speedup over the target alone", height=380, legend=False,
                  shapes=[hline(1.0)], yaxis=dict(title="speedup (×)", rangemode="tozero"))


def fig_budget(budget: pd.DataFrame, unit: str) -> go.Figure:
    """Tokens delivered within one verification budget: one row of
    ``lessons.budget_frame`` becomes one bar (the best γ highlighted)."""
    best = budget["tokens"].max()
    bar = go.Bar(x=[f"γ = {g}" for g in budget[T.GAMMA]], y=budget["tokens"],
                 marker_color=[SERIES[2] if t == best else SERIES[0]
                               for t in budget["tokens"]],
                 customdata=budget[[L.STEPS, L.USED]], text=budget["tokens"],
                 textposition="outside",
                 hovertemplate="%{x}: %{y} tokens in %{customdata[0]} steps, "
                               "%{customdata[1]:.0f} " + unit + " used<extra></extra>")
    return themed([bar], "Tokens delivered within the budget", height=360, legend=False,
                  yaxis=dict(title="tokens emitted", rangemode="tozero"))


def fig_cost_ledger(ledger: pd.DataFrame, tokens_per_step: float) -> go.Figure:
    """Cost per step against tokens per step, in target-only steps: one row of
    ``lessons.cost_ledger`` becomes one segment of the cost bar; the second bar is the
    measured tokens per step. Speedup = tokens bar / cost bar."""
    colors = [PHASE_COLORS["draft"], PHASE_COLORS["verify"], PHASE_COLORS["overhead"]]
    data = [go.Bar(x=["cost per step"], y=[cost], name=name, marker_color=color,
                   hovertemplate=name + ": %{y:.2f} target steps<extra></extra>")
            for name, cost, color in zip(ledger[L.COMPONENT], ledger[L.COST], colors)]
    data.append(go.Bar(x=["tokens per step"], y=[tokens_per_step], name="tokens per step",
                       marker_color=KIND_COLORS["accepted"],
                       hovertemplate="%{y:.2f} tokens per step<extra></extra>"))
    return themed(data, "What a step costs vs what it yields (in target-only steps)",
                  height=380, barmode="stack",
                  yaxis=dict(title="target-only steps / tokens", rangemode="tozero"))


def fig_latency_percentiles(latency: pd.DataFrame) -> go.Figure:
    """Per-token latency percentiles: one row of ``lessons.latency_frame`` becomes one group
    of bars (p50, p90, p99)."""
    data = [go.Bar(x=latency[L.POLICY], y=latency[f"p{k}_ms"], name=f"p{k}",
                   marker_color=SERIES[i],
                   hovertemplate="%{x}: %{y:.1f} ms<extra>p" + str(k) + "</extra>")
            for i, k in enumerate(L.PERCENTILES)]
    return themed(data, "Per-token latency (step time / tokens it emitted)", height=400,
                  barmode="group", yaxis=dict(title="ms per token", rangemode="tozero"))
