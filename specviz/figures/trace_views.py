"""Figures of one run (or several), each from a tidy frame of ``specviz.frames``.

Each builder copies nothing it does not need, mutates nothing it is given, and returns a
``go.Figure``; the docstring says what one row of its frame becomes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .. import frames as F
from .theme import (
    KIND_COLORS,
    KIND_LABELS,
    P_COLOR,
    PHASE_COLORS,
    Q_COLOR,
    RESIDUAL_COLOR,
    SERIES,
    THEORY_COLOR,
    show_token,
    themed,
)

KIND_CODES = {k: i for i, k in enumerate(F.KINDS)}


def _fmt(x: float, digits: int = 3) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _legend_keys(kinds) -> list:
    """Legend entries for colors drawn by a heatmap (which has no legend of its own)."""
    return [go.Scatter(x=[None], y=[None], mode="markers", name=KIND_LABELS[k],
                       marker=dict(color=KIND_COLORS[k], size=12, symbol="square"),
                       hoverinfo="skip") for k in kinds]


def _grid(df: pd.DataFrame, col: str, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scatter rows (step, col) into a (n_steps, n_cols) grid; returns grid, steps, row idx."""
    steps = np.sort(df[F.STEP].unique())
    rows = np.searchsorted(steps, df[F.STEP].to_numpy())
    n_cols = int(df[col].max()) + 1 if len(df) else 1
    grid = np.full((len(steps), n_cols), np.nan, dtype=object if values.dtype == object
                   else float)
    grid[rows, df[col].to_numpy()] = values
    return grid, steps, rows


def fig_timeline(tokens: pd.DataFrame, max_text_steps: int = 80) -> go.Figure:
    """Token timeline: one row of ``tokens_frame`` becomes one cell.

    Steps run down, draft positions across; each drafted token is colored by its fate
    (accepted / rejected / not judged); the token the target added (correction or bonus)
    sits right after the step's drafts. Hover shows p, q, min(1, p/q) and u.
    """
    if tokens.empty:
        return themed([], "Token timeline (no steps yet)", height=200)
    codes = tokens[F.KIND].map(KIND_CODES).to_numpy(dtype=float)
    z, steps, rows = _grid(tokens, F.COL, codes)
    cols = tokens[F.COL].to_numpy()
    hover = np.full(z.shape, "", dtype=object)
    labels = np.full(z.shape, "", dtype=object)
    for r, c, text, kind, p, q, a, u in zip(rows, cols, tokens[F.TEXT], tokens[F.KIND],
                                            tokens[F.P], tokens[F.Q], tokens[F.ACCEPT_PROB],
                                            tokens[F.U]):
        shown = show_token(text)
        labels[r, c] = shown
        hover[r, c] = (f"<b>{shown}</b> · {KIND_LABELS[kind]}"
                       + (f"<br>p={_fmt(p)} q={_fmt(q)} min(1,p/q)={_fmt(a)} u={_fmt(u)}"
                          if np.isfinite(p) else ""))
    n = len(KIND_CODES)
    scale = []
    for k, i in KIND_CODES.items():
        scale += [[i / n, KIND_COLORS[k]], [(i + 1) / n, KIND_COLORS[k]]]
    big = len(steps) > max_text_steps
    heat = go.Heatmap(
        z=z, x=np.arange(z.shape[1]), y=steps, zmin=0, zmax=n, colorscale=scale,
        showscale=False, xgap=2, ygap=2, customdata=hover,
        text=None if big else labels, texttemplate=None if big else "%{text}",
        hovertemplate="step %{y}, column %{x}<br>%{customdata}<extra></extra>")
    present = [k for k in F.KINDS if k in set(tokens[F.KIND])]
    height = int(min(max(260, 26 * len(steps) + 120), 900))
    return themed([heat, *_legend_keys(present)], "Token timeline", height=height,
                  yaxis=dict(title="step", autorange="reversed"),
                  xaxis=dict(title="draft position, then the target's token", dtick=1,
                             showgrid=False, zeroline=False))


def fig_acceptance_heatmap(drafts: pd.DataFrame, max_text_steps: int = 80) -> go.Figure:
    """Acceptance heatmap: one row of ``drafts_frame`` becomes one cell (step × position),
    colored by min(1, p/q); ✓ marks accepted drafts, ✗ the first rejection."""
    if drafts.empty:
        return themed([], "Acceptance heatmap (no drafts)", height=200)
    z, steps, rows = _grid(drafts, F.POS, drafts[F.ACCEPT_PROB].to_numpy(dtype=float))
    marks = {"accepted": "✓", "rejected": "✗", "unjudged": "·"}
    text = np.full(z.shape, "", dtype=object)
    hover = np.full(z.shape, "", dtype=object)
    for r, c, s, tok, p, q, u in zip(rows, drafts[F.POS], drafts[F.STATUS], drafts[F.TEXT],
                                     drafts[F.P], drafts[F.Q], drafts[F.U]):
        text[r, c] = marks[s]
        hover[r, c] = (f"<b>{show_token(tok)}</b> · {s}<br>p={_fmt(p)} q={_fmt(q)} "
                       f"u={_fmt(u)}")
    big = len(steps) > max_text_steps
    heat = go.Heatmap(
        z=z, x=np.arange(1, z.shape[1] + 1), y=steps, zmin=0, zmax=1, colorscale="Viridis",
        colorbar=dict(title="min(1, p/q)"), xgap=1, ygap=1, customdata=hover,
        text=None if big else text, texttemplate=None if big else "%{text}",
        hovertemplate="step %{y}, position %{x}<br>min(1,p/q)=%{z:.3f}<br>%{customdata}"
                      "<extra></extra>")
    height = int(min(max(260, 18 * len(steps) + 120), 900))
    return themed([heat], "Acceptance probability min(1, p/q)", height=height, legend=False,
                  yaxis=dict(title="step", autorange="reversed"),
                  xaxis=dict(title="draft position", dtick=1))


def fig_position_acceptance(position: pd.DataFrame) -> go.Figure:
    """Per-position acceptance: one row of ``position_frame`` becomes one x position.

    Solid: measured; dashed: the i.i.d. prediction from α̂ (α when judged, α^i when drafted).
    """
    x = position[F.POS] + 1
    data = [
        go.Scatter(x=x, y=position[F.RATE_JUDGED], mode="lines+markers",
                   name="accepted / judged", line=dict(color=SERIES[0]),
                   customdata=position[[F.N_ACCEPTED_AT, F.N_JUDGED]],
                   hovertemplate="position %{x}: %{y:.3f} "
                                 "(%{customdata[0]} of %{customdata[1]})<extra></extra>"),
        go.Scatter(x=x, y=position[F.PRED_JUDGED], mode="lines", name="i.i.d.: α̂",
                   line=dict(color=SERIES[0], dash="dash")),
        go.Scatter(x=x, y=position[F.RATE_DRAFTED], mode="lines+markers",
                   name="accepted / drafted", line=dict(color=SERIES[1]),
                   customdata=position[[F.N_ACCEPTED_AT, F.N_REACHED]],
                   hovertemplate="position %{x}: %{y:.3f} "
                                 "(%{customdata[0]} of %{customdata[1]})<extra></extra>"),
        go.Scatter(x=x, y=position[F.PRED_DRAFTED], mode="lines", name="i.i.d.: α̂^i",
                   line=dict(color=SERIES[1], dash="dash")),
    ]
    return themed(data, "Acceptance by draft position vs the i.i.d. model", height=360,
                  xaxis=dict(title="draft position i", dtick=1),
                  yaxis=dict(title="acceptance rate", range=[0, 1.05]))


def fig_accepted_length(lengths: pd.DataFrame) -> go.Figure:
    """Accepted drafts per step: one row of ``accepted_length_frame`` becomes one bar, with
    the theoretical distribution α^k (1 − α) (and α^γ for all accepted) as markers."""
    data = [
        go.Bar(x=lengths[F.LENGTH], y=lengths[F.FRACTION], name="measured",
               marker_color=KIND_COLORS["accepted"], customdata=lengths[F.COUNT],
               hovertemplate="%{x} accepted: %{y:.3f} (%{customdata} steps)<extra></extra>"),
        go.Scatter(x=lengths[F.LENGTH], y=lengths[F.PRED_FRACTION], mode="markers+lines",
                   name="theory (i.i.d., α̂)", line=dict(color=THEORY_COLOR, dash="dot"),
                   marker=dict(size=9, symbol="diamond")),
    ]
    return themed(data, "Accepted length per step vs theory", height=360,
                  xaxis=dict(title="drafts accepted in a step", dtick=1),
                  yaxis=dict(title="fraction of steps"))


def fig_verify_inspector(topk: pd.DataFrame, accept_prob: float, u: float | None,
                         drafted_text: str, status: str) -> go.Figure:
    """The verifier at one drafted position: one row of ``topk_frame`` becomes one token on
    the x axis, with bars for p, q and the residual norm(max(0, p − q)); below, the draw u
    against the acceptance line min(1, p/q) (accept when u < min(1, p/q))."""
    labels = [("▶ " if d else "") + show_token(t) for t, d in zip(topk[F.TEXT],
                                                                   topk[F.IS_DRAFTED])]
    data = [go.Bar(x=labels, y=topk[col], name=name, marker_color=color,
                   hovertemplate="%{x}: %{y:.4f}<extra>" + name + "</extra>")
            for col, name, color in ((F.P, "p (target)", P_COLOR), (F.Q, "q (draft)", Q_COLOR),
                                     (F.RESIDUAL, "norm(max(0, p − q))", RESIDUAL_COLOR))]
    data.append(go.Bar(x=[accept_prob], y=["min(1, p/q)"], orientation="h", showlegend=False,
                       xaxis="x2", yaxis="y2", marker_color=KIND_COLORS["accepted"],
                       opacity=0.5, hovertemplate="min(1, p/q) = %{x:.4f}<extra></extra>"))
    if u is not None and np.isfinite(u):
        data.append(go.Scatter(x=[u], y=["min(1, p/q)"], mode="markers", name="u",
                               xaxis="x2", yaxis="y2",
                               marker=dict(symbol="line-ns-open", size=30, color="black",
                                           line=dict(width=3)),
                               hovertemplate="u = %{x:.4f}<extra></extra>"))
    title = f"Verify inspector: draft {show_token(drafted_text)} was {status}"
    return themed(data, title, height=460, barmode="group",
                  xaxis=dict(anchor="y", title="top-k tokens of p and q (▶ the draft)"),
                  yaxis=dict(domain=[0.42, 1.0], title="probability"),
                  xaxis2=dict(anchor="y2", range=[0, 1], title="accept if u < min(1, p/q)",
                              gridcolor="#EBF0F8"),
                  yaxis2=dict(domain=[0.0, 0.16]))


def fig_latency(steps: pd.DataFrame) -> go.Figure:
    """Per-step latency: one row of ``steps_frame`` becomes one stacked bar
    (draft, verify, overhead = everything else in the step), in milliseconds."""
    data = [go.Bar(x=steps[F.STEP], y=steps[col], name=name, marker_color=PHASE_COLORS[name],
                   hovertemplate="step %{x}: %{y:.2f} ms<extra>" + name + "</extra>")
            for col, name in ((F.DRAFT_MS, "draft"), (F.VERIFY_MS, "verify"),
                              (F.OVERHEAD_MS, "overhead"))]
    return themed(data, "Latency per step", height=340, barmode="stack", bargap=0.1,
                  xaxis=dict(title="step"), yaxis=dict(title="ms"))


def fig_tokens_vs_time(steps: pd.DataFrame) -> go.Figure:
    """Tokens emitted vs wall time: one row of a ``steps_frame`` (with a ``run`` column
    naming the run) becomes one point; one line per run."""
    data = [go.Scatter(x=df[F.T_END_S], y=df[F.TOKENS_CUM], name=str(name),
                       mode="lines+markers" if len(df) <= 200 else "lines",
                       line=dict(color=SERIES[i % len(SERIES)], shape="hv"),
                       hovertemplate="%{x:.3f} s: %{y} tokens<extra></extra>")
            for i, (name, df) in enumerate(steps.groupby(F.RUN_NAME, sort=False))]
    return themed(data, "Tokens emitted vs wall time", height=360,
                  xaxis=dict(title="wall time (s)", rangemode="tozero"),
                  yaxis=dict(title="tokens emitted", rangemode="tozero"))


def fig_wall_clock(steps: pd.DataFrame) -> go.Figure:
    """Runs on one wall clock: one row of a ``steps_frame`` (with a ``run`` column) becomes
    segments of one horizontal lane (draft, verify, overhead), placed at its start time."""
    data = []
    for phase, col in (("draft", F.DRAFT_MS), ("verify", F.VERIFY_MS),
                       ("overhead", F.OVERHEAD_MS)):
        offset = {"draft": 0.0, "verify": steps[F.DRAFT_MS] / 1e3,
                  "overhead": (steps[F.DRAFT_MS] + steps[F.VERIFY_MS]) / 1e3}[phase]
        data.append(go.Bar(
            x=steps[col] / 1e3, base=steps[F.T_START_S] + offset, y=steps[F.RUN_NAME],
            orientation="h", name=phase, marker_color=PHASE_COLORS[phase],
            marker_line_width=0, customdata=steps[[F.STEP, F.N_EMITTED]],
            hovertemplate="step %{customdata[0]} (%{customdata[1]} tokens): "
                          "%{x:.4f} s<extra>" + phase + "</extra>"))
    n = steps[F.RUN_NAME].nunique()
    return themed(data, "Runs on one wall clock", height=180 + 60 * n, barmode="overlay",
                  xaxis=dict(title="wall time (s)", rangemode="tozero"))


def fig_compare_positions(position: pd.DataFrame) -> go.Figure:
    """Per-position acceptance of several runs: one row of ``position_frame`` (with a
    ``run`` column) becomes one point; one line per run, dashed: its i.i.d. α̂^i."""
    data = []
    for i, (name, df) in enumerate(position.groupby(F.RUN_NAME, sort=False)):
        color = SERIES[i % len(SERIES)]
        data.append(go.Scatter(x=df[F.POS] + 1, y=df[F.RATE_DRAFTED], name=str(name),
                               mode="lines+markers", line=dict(color=color)))
        data.append(go.Scatter(x=df[F.POS] + 1, y=df[F.PRED_DRAFTED], showlegend=False,
                               mode="lines", line=dict(color=color, dash="dash"),
                               hovertemplate="i.i.d. %{y:.3f}<extra></extra>"))
    return themed(data, "Acceptance by position (dashed: i.i.d. α̂^i)", height=360,
                  xaxis=dict(title="draft position i", dtick=1),
                  yaxis=dict(title="accepted / drafted", range=[0, 1.05]))


def fig_compare_speed(runs: pd.DataFrame) -> go.Figure:
    """Tokens per second: one row of ``runs_frame`` becomes one bar."""
    colors = [KIND_COLORS["target"] if m == "target-only" else SERIES[0]
              for m in runs[F.MODE]]
    bar = go.Bar(x=runs[F.RUN_NAME], y=runs[F.TOKENS_PER_S], marker_color=colors,
                 hovertemplate="%{x}: %{y:.2f} tokens/s<extra></extra>")
    return themed([bar], "Throughput (grey: target only)", height=340, legend=False,
                  yaxis=dict(title="tokens / s"))
