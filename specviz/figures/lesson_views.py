"""Figures of the guided lessons, each from a frame of a lesson's module in
``specviz.teaching.lessons``.

Like the other figure modules: one figure per function, nothing mutated, the docstring says
what one row of the frame becomes.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ..teaching import theory as T
from ..teaching.lessons import architecture as L1
from ..teaching.lessons import draft_distribution as L2
from ..teaching.lessons import draft_length_policy as L12
from ..teaching.lessons import efficiency_limits as L6
from ..teaching.lessons import feature_head as L13
from ..teaching.lessons import gamma_budget as L8
from ..teaching.lessons import low_speedup as L11
from ..teaching.lessons import parallel_verification as L3
from ..teaching.lessons import reading_a_trace as L9
from ..teaching.lessons import step_structure as L5
from ..teaching.lessons import temperature_and_roles as L7
from ..teaching.lessons import token_trees as L14
from ..traces import frames as F
from .theme import (
    KIND_COLORS,
    P_COLOR,
    PHASE_COLORS,
    Q_COLOR,
    SERIES,
    THEORY_COLOR,
    hline,
    plotly_text,
    show_token,
    themed,
)

HARDWARE_COLORS = {"CPU": SERIES[1], "GPU": SERIES[0]}


def fig_role_time(roles: pd.DataFrame) -> go.Figure:
    """Time spent by each model: one row of ``architecture.roles_frame`` becomes one bar (its
    forward passes written on it)."""
    bar = go.Bar(x=roles[L1.ROLE], y=roles[L1.TIME_MS] / 1e3,
                 marker_color=[Q_COLOR, P_COLOR][: len(roles)],
                 customdata=roles[[L1.PASSES]], text=[f"{n} passes" for n in roles[L1.PASSES]],
                 textposition="outside",
                 hovertemplate="%{x}: %{y:.2f} s in %{customdata[0]} forward passes"
                               "<extra></extra>")
    return themed([bar], "Time each model spent in this run", height=320, legend=False,
                  yaxis=dict(title="seconds", rangemode="tozero"))


def fig_verify_cost(verif: pd.DataFrame) -> go.Figure:
    """The cost v of one verification pass in target-only steps: one row of
    ``parallel_verification.verification_frame`` (with a baseline) becomes one bar, colored
    by hardware; the dotted line is one target-only step (v = 1)."""
    rows = verif[verif[L3.V].notna()]
    x = [f"CPU γ={g}" if h == "CPU" else
         f"{d.split()[-1]} γ={g} {'graphs' if 'graphs' in f else 'eager'}"
         for h, d, g, f in zip(rows[L3.HARDWARE], rows[L3.DEVICE], rows[L3.CONFIG_GAMMA],
                               rows[L3.FILE])]
    data = [go.Bar(x=[xi for xi, h in zip(x, rows[L3.HARDWARE]) if h == hw],
                   y=rows.loc[rows[L3.HARDWARE] == hw, L3.V], name=hw,
                   marker_color=HARDWARE_COLORS[hw],
                   text=[f"{v:.2f}" for v in rows.loc[rows[L3.HARDWARE] == hw, L3.V]],
                   textposition="outside",
                   customdata=rows.loc[rows[L3.HARDWARE] == hw, [L3.VERIFY_MS, L3.BASE_STEP_MS]],
                   hovertemplate="%{x}: v = %{y:.2f} (%{customdata[0]:.1f} ms pass, "
                                 "%{customdata[1]:.1f} ms target-only step)<extra></extra>")
            for hw in ("CPU", "GPU") if (rows[L3.HARDWARE] == hw).any()]
    return themed(data, "One verification pass (γ + 1 positions), in target-only steps",
                  height=380, shapes=[hline(1.0)],
                  yaxis=dict(title="v (target-only steps)", rangemode="tozero"))


def fig_verify_by_positions(by_pos: pd.DataFrame) -> go.Figure:
    """Verify pass time by the positions it scored: one row of
    ``parallel_verification.positions_frame`` becomes one bar (its pass count on it)."""
    bar = go.Bar(x=by_pos[L3.POSITIONS], y=by_pos[L3.VERIFY_MS],
                 text=[f"{n}" for n in by_pos[L3.PASSES]], textposition="outside",
                 marker_color=P_COLOR, customdata=by_pos[[L3.PASSES]],
                 hovertemplate="%{x} positions: %{y:.1f} ms (mean of %{customdata[0]} "
                               "passes)<extra></extra>")
    return themed([bar], "CPU verify pass time by positions (number of passes on each bar)",
                  height=360, legend=False,
                  xaxis=dict(title="positions scored in the pass (γ of the step + 1)", dtick=1),
                  yaxis=dict(title="ms (mean)", rangemode="tozero"))


def fig_q_topk(qtop: pd.DataFrame) -> go.Figure:
    """q at each drafted position of one step: one row of ``draft_distribution.q_topk_frame``
    becomes one bar, grouped by position and labelled with its token; the drafted token is
    outlined."""
    data = []
    for rank, df in qtop.groupby(L2.RANK):
        data.append(go.Bar(
            x=[f"position {p + 1}" for p in df[F.POS]], y=df[F.Q], name=f"rank {rank + 1}",
            text=[("▶ " if d else "") + show_token(t) for t, d in
                  zip(df[F.TEXT], df[L2.IS_DRAFTED])],
            textposition="outside", textangle=0,
            marker=dict(color=Q_COLOR, opacity=1.0 if rank == 0 else 0.75 - 0.1 * rank,
                        line=dict(color=["black" if d else "white" for d in df[L2.IS_DRAFTED]],
                                  width=2)),
            hovertemplate="%{x}, %{text}: q = %{y:.3f}<extra>rank " + str(rank + 1)
                          + "</extra>"))
    return themed(data, "q's top tokens at each drafted position (▶ the drafted token)",
                  height=420, barmode="group", legend=False,
                  yaxis=dict(title="q (draft probability)", range=[0, 1.08]))


def fig_acceptance_by_q(by_q: pd.DataFrame) -> go.Figure:
    """How often drafts of each confidence were kept: one row of
    ``draft_distribution.acceptance_by_q`` becomes one bar (kept / judged, the counts on
    it)."""
    bar = go.Bar(x=by_q[L2.BIN].astype(str), y=by_q[L2.RATE],
                 text=[f"{k} of {j}" for k, j in zip(by_q[L2.KEPT], by_q[L2.JUDGED])],
                 textposition="outside", marker_color=KIND_COLORS["accepted"],
                 hovertemplate="%{x}: %{y:.0%} kept (%{text})<extra></extra>")
    return themed([bar], "Drafts kept, by the draft's own confidence q", height=340,
                  legend=False, xaxis=dict(title="q of the drafted token"),
                  yaxis=dict(title="share kept", range=[0, 1.15], tickformat=".0%"))


def fig_step_endings(endings: pd.DataFrame) -> go.Figure:
    """How steps end: one row of ``step_structure.step_endings_frame`` becomes one bar
    segment (steps that accepted k drafts and ended with a correction or a bonus token)."""
    data = [go.Bar(x=df[F.LENGTH], y=df[F.COUNT], name=name,
                   marker_color=KIND_COLORS[kind],
                   hovertemplate="%{x} accepted: %{y} steps<extra>" + name + "</extra>")
            for kind, name in (("resampled", "ended with a correction"),
                               ("bonus", "ended with a bonus token"))
            for df in [endings[endings[L5.ENDING] == kind]]]
    return themed(data, "Steps by accepted drafts and how they ended", height=340,
                  barmode="stack", xaxis=dict(title="drafts accepted in the step", dtick=1),
                  yaxis=dict(title="steps"))


def fig_saturation(curve: pd.DataFrame, sweep: pd.DataFrame,
                   prompts: pd.DataFrame) -> go.Figure:
    """Tokens per step vs γ: one row of ``efficiency_limits.saturation_frame`` becomes one
    point of the theory line E(α, γ), the ceiling 1 / (1 − α) a dotted line; one row of
    ``sweep_frame`` one measured cross (all prompts of a file), one row of ``prompts_frame``
    one open circle (one prompt)."""
    ceiling = float(curve[L6.CEILING].iloc[0])
    data = [go.Scatter(x=curve[T.GAMMA], y=curve[T.E], mode="lines+markers",
                       name="theory E(α, γ)", line=dict(color=THEORY_COLOR),
                       hovertemplate="γ=%{x}: E=%{y:.2f}<extra></extra>"),
            go.Scatter(x=prompts[T.GAMMA], y=prompts[L6.TOKENS_PER_STEP], mode="markers",
                       name="measured, one prompt",
                       text=[plotly_text(s) for s in prompts[L6.PROMPT]],
                       marker=dict(size=10, symbol="circle-open", color=SERIES[0],
                                   line=dict(width=2)),
                       hovertemplate="%{text}: %{y:.2f} tokens/step<extra></extra>"),
            go.Scatter(x=sweep[T.GAMMA], y=sweep[L6.TOKENS_PER_STEP], mode="markers",
                       name="measured, all prompts",
                       text=[plotly_text(s) for s in sweep[L6.FILE]],
                       marker=dict(size=13, symbol="x", color="black"),
                       hovertemplate="%{text}: %{y:.2f} tokens/step<extra></extra>")]
    shapes = [hline(ceiling, SERIES[1])] if ceiling == ceiling else []
    return themed(data, f"Tokens per step saturate at 1 / (1 − α) = {ceiling:.2f}",
                  height=420, shapes=shapes,
                  xaxis=dict(title="γ (drafted tokens per step)", dtick=2),
                  yaxis=dict(title="tokens per verification step", rangemode="tozero"))


def fig_setups(setups: pd.DataFrame) -> go.Figure:
    """Measured speedup per setup: one row of ``temperature_and_roles.setups_frame`` becomes
    one bar (its α̂, greedy or sampled, and c written on it); the dotted line is the target
    alone (1×)."""
    alpha = setups[L7.ALPHA_GREEDY].fillna(setups[L7.ALPHA_SAMPLED])
    text = [f"α̂ {a:.2f} ({'greedy' if t == 0 else 'sampled'}) · c {c:.2f}"
            for a, t, c in zip(alpha, setups[F.TEMPERATURE], setups[T.C])]
    bar = go.Bar(x=setups[L7.SETUP], y=setups[L7.SPEEDUP], text=text,
                 textposition="outside", marker_color=SERIES[0],
                 hovertemplate="%{x}: %{y:.2f}×<extra></extra>")
    return themed([bar], "Measured speedup over the target alone", height=380, legend=False,
                  shapes=[hline(1.0)], yaxis=dict(title="speedup (×)", rangemode="tozero"))


def fig_budget(budget: pd.DataFrame, unit: str) -> go.Figure:
    """Tokens delivered within one budget: one row of ``gamma_budget.budget_frame`` becomes
    one bar (the target alone grey, the best highlighted)."""
    best = budget[L8.TOKENS].max()
    colors = [KIND_COLORS["target"] if g == 0 else SERIES[2] if t == best else SERIES[0]
              for g, t in zip(budget[T.GAMMA], budget[L8.TOKENS])]
    bar = go.Bar(x=["target alone" if g == 0 else f"γ = {g}" for g in budget[T.GAMMA]],
                 y=budget[L8.TOKENS], marker_color=colors,
                 customdata=budget[[L8.STEPS, L8.USED]], text=budget[L8.TOKENS],
                 textposition="outside",
                 hovertemplate="%{x}: %{y} tokens in %{customdata[0]} steps, "
                               "%{customdata[1]:.0f} " + unit + " used<extra></extra>")
    return themed([bar], "Tokens delivered within the budget", height=360, legend=False,
                  yaxis=dict(title="tokens emitted", rangemode="tozero"))


def fig_gap_shares(gap: pd.DataFrame) -> go.Figure:
    """What separates a run from the ideal speedup: one row of ``reading_a_trace.gap_frame``
    becomes one horizontal bar (the factor's share of the gap; negative when it gains)."""
    bar = go.Bar(y=gap[L9.FACTOR], x=gap[L9.SHARE], orientation="h",
                 marker_color=[SERIES[1] if s == gap[L9.SHARE].max() else SERIES[0]
                               for s in gap[L9.SHARE]],
                 text=[f"{s:.0%}" for s in gap[L9.SHARE]], textposition="outside",
                 hovertemplate="%{y}: %{x:.0%} of the gap<extra></extra>")
    return themed([bar], "Share of the gap to the ideal speedup, by factor", height=300,
                  legend=False, xaxis=dict(title="share of ln(ideal / predicted)",
                                           tickformat=".0%"),
                  yaxis=dict(autorange="reversed"))


def fig_cost_ledger(ledger: pd.DataFrame, tokens_per_step: float) -> go.Figure:
    """Cost per step against tokens per step, in target-only steps: one row of
    ``low_speedup.cost_ledger`` becomes one segment of the cost bar; the second bar is the
    measured tokens per step. Speedup = tokens bar / cost bar."""
    colors = [PHASE_COLORS["draft"], PHASE_COLORS["verify"], PHASE_COLORS["overhead"]]
    data = [go.Bar(x=["cost per step"], y=[cost], name=name, marker_color=color,
                   hovertemplate=name + ": %{y:.2f} target steps<extra></extra>")
            for name, cost, color in zip(ledger[L11.COMPONENT], ledger[L11.COST], colors)]
    data.append(go.Bar(x=["tokens per step"], y=[tokens_per_step], name="tokens per step (E)",
                       marker_color=KIND_COLORS["accepted"],
                       hovertemplate="%{y:.2f} tokens per step<extra></extra>"))
    return themed(data, "What a step costs vs what it yields (in target-only steps)",
                  height=380, barmode="stack",
                  yaxis=dict(title="target-only steps / tokens", rangemode="tozero"))


def fig_latency_percentiles(latency: pd.DataFrame) -> go.Figure:
    """Per-token latency percentiles: one row of ``draft_length_policy.latency_frame``
    becomes one group of bars (p50, p90, p99)."""
    data = [go.Bar(x=latency[L12.POLICY], y=latency[f"p{k}_ms"], name=f"p{k}",
                   marker_color=SERIES[i],
                   hovertemplate="%{x}: %{y:.1f} ms<extra>p" + str(k) + "</extra>")
            for i, k in enumerate(L12.PERCENTILES)]
    return themed(data, "Per-token latency (step time / tokens it emitted)", height=400,
                  barmode="group", yaxis=dict(title="ms per token", rangemode="tozero"))


def fig_kept_by_position(by_pos: pd.DataFrame) -> go.Figure:
    """Drafts kept at each draft position, per drafter: one row of
    ``feature_head.by_position`` becomes one bar (kept / judged, the counts on it, its 95 %
    interval as an error bar: overlapping bars are not told apart by these counts); the counts
    sit at the bars' feet, clear of the error bars."""
    data = []
    for i, (who, df) in enumerate(by_pos.groupby(L13.DRAFTER, sort=False)):
        data.append(go.Bar(x=df[F.POS], y=df[L13.RATE], name=str(who),
                           marker_color=SERIES[i % len(SERIES)],
                           marker_pattern_shape=["", "/"][i % 2],
                           error_y=dict(type="data", symmetric=False,
                                        array=df[L13.HIGH] - df[L13.RATE],
                                        arrayminus=df[L13.RATE] - df[L13.LOW],
                                        color="#555", thickness=1.2),
                           text=[f"{k}/{j}" for k, j in zip(df[F.N_ACCEPTED_AT],
                                                            df[F.N_JUDGED])],
                           textposition="inside", insidetextanchor="start",
                           textfont=dict(color=["white", "#222"][i % 2]),
                           hovertemplate="position %{x}: %{y:.0%} kept (%{text})"
                                         "<extra>" + str(who) + "</extra>"))
    return themed(data, "Drafts kept at each position (bars: 95 % interval)",
                  height=380, barmode="group",
                  xaxis=dict(title="draft position", dtick=1),
                  yaxis=dict(title="kept / judged", range=[0, 1.15], tickformat=".0%"))


def fig_chain_vs_tree(methods: pd.DataFrame) -> go.Figure:
    """Tokens per verification of the chain and the trees (``token_trees.per_method``): one
    bar per method, labelled with its nodes per pass and the share of them kept."""
    text = [f"{e:.2f} tokens · {n:.1f} nodes/pass, {u:.0%} kept"
            for e, n, u in zip(methods[L14.PER_PASS], methods[L14.NODES], methods[L14.USEFUL])]
    bar = go.Bar(x=methods[L14.METHOD], y=methods[L14.PER_PASS], text=text,
                 textposition="outside", marker_color=SERIES[:len(methods)],
                 marker_pattern_shape=["", "/", "x"][:len(methods)],
                 hovertemplate="%{x}: %{text}<extra></extra>", showlegend=False)
    top = float(methods[L14.PER_PASS].max()) if len(methods) else 1.0
    return themed([bar], "Tokens per verification: chain and trees, same prompts",
                  height=380, legend=False,
                  yaxis=dict(title="tokens per verification", range=[0, top * 1.25]),
                  xaxis=dict(title=None))
