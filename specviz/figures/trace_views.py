"""Figures of one run (or several), each from a tidy frame of ``specviz.traces.frames``.

Each builder copies nothing it does not need, mutates nothing it is given, and returns a
``go.Figure``; the docstring says what one row of its frame becomes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..traces import frames as F
from .theme import (
    KIND_COLORS,
    KIND_MARKS,
    KIND_SYMBOLS,
    P_COLOR,
    PHASE_COLORS,
    Q_COLOR,
    Q_ZERO_LABEL,
    Q_ZERO_MARK,
    RESIDUAL_COLOR,
    SERIES,
    THEORY_COLOR,
    TREE_CORRECTION,
    accept_label,
    kind_name,
    plotly_text,
    show_token,
    themed,
    unjudged_why,
)

KIND_CODES = {k: i for i, k in enumerate(F.KINDS)}


def _fmt(x: float, digits: int = 3) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


TREE_UNJUDGED = "not judged (its branch never reached)"


def _legend_keys(kinds, tree: bool = False, q_zero: bool = False) -> list:
    """Legend entries for colors drawn by a heatmap (which has no legend of its own);
    ``q_zero``: one more for a sampled tree's children the draft gave q = 0."""
    def name(k: str) -> str:
        return tree_kind_name(k) if tree else kind_name(k)

    keys = [go.Scatter(x=[None], y=[None], mode="markers", name=name(k),
                       marker=dict(color=KIND_COLORS[k], size=13, symbol=KIND_SYMBOLS[k],
                                   line=dict(width=2, color=KIND_COLORS[k])),
                       hoverinfo="skip") for k in kinds]
    if q_zero:
        grey = KIND_COLORS["unjudged"]
        keys.append(go.Scatter(x=[None], y=[None], mode="markers", name=Q_ZERO_LABEL,
                               marker=dict(color=grey, size=13, symbol="circle-x-open",
                                           line=dict(width=2, color=grey)),
                               hoverinfo="skip"))
    return keys


def tree_kind_name(kind: str) -> str:
    """A token kind's label in a tree run: its correction comes from what the walk left of p
    (``TREE_CORRECTION``), not from the chain's norm(max(0, p − q)); a node never judged was
    never reached."""
    if kind == "resampled":
        return f"{KIND_MARKS[kind]} {TREE_CORRECTION}"
    return TREE_UNJUDGED if kind == "unjudged" else kind_name(kind)


def _grid(df: pd.DataFrame, col: str, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scatter rows (step, col) into a (n_steps, n_cols) grid; returns grid, steps, row idx."""
    steps = np.sort(df[F.STEP].unique())
    rows = np.searchsorted(steps, df[F.STEP].to_numpy())
    n_cols = int(df[col].max()) + 1 if len(df) else 1
    grid = np.full((len(steps), n_cols), np.nan, dtype=object if values.dtype == object
                   else float)
    grid[rows, df[col].to_numpy()] = values
    return grid, steps, rows


def fig_timeline(tokens: pd.DataFrame, max_text_steps: int = 80,
                 title: str | None = "Token timeline", tree: bool = False) -> go.Figure:
    """Token timeline: one row of ``tokens_frame`` becomes one cell.

    Steps run down (from the first step shown), draft positions across, numbered from 1;
    each drafted token is colored by its fate and marked (✓ accepted, ✗ rejected, · not
    judged); the token the target added (◆ correction, ★ bonus) sits right after the step's
    drafts. Hover shows p, q, min(1, p/q) and u. A tree run (``tree``): its accepted path
    by depth, the correction named as drawn from what the walk left of p, and a node's
    acceptance probability as ``TREE_ACCEPT`` (not min(1, p/q) of its plain p and q).
    """
    accept, name = accept_label(tree), (tree_kind_name if tree else kind_name)
    if tokens.empty:
        return themed([], (title or "Token timeline") + " (no steps yet)", height=200)
    codes = tokens[F.KIND].map(KIND_CODES).to_numpy(dtype=float)
    z, steps, rows = _grid(tokens, F.COL, codes)
    cols = tokens[F.COL].to_numpy()
    hover = np.full(z.shape, "", dtype=object)
    labels = np.full(z.shape, "", dtype=object)
    for r, c, text, kind, p, q, a, u in zip(rows, cols, tokens[F.TEXT], tokens[F.KIND],
                                            tokens[F.P], tokens[F.Q], tokens[F.ACCEPT_PROB],
                                            tokens[F.U]):
        shown = show_token(text)
        mark = KIND_MARKS[kind]
        labels[r, c] = f"{mark} {shown}" if mark else shown
        hover[r, c] = (f"<b>{shown}</b> · {name(kind)}"
                       + (f"<br>p={_fmt(p)} q={_fmt(q)} {accept}={_fmt(a)} u={_fmt(u)}"
                          if np.isfinite(p) else ""))
    n = len(KIND_CODES)
    scale = []
    for k, i in KIND_CODES.items():
        scale += [[i / n, KIND_COLORS[k]], [(i + 1) / n, KIND_COLORS[k]]]
    big = len(steps) > max_text_steps
    heat = go.Heatmap(
        z=z, x=np.arange(1, z.shape[1] + 1), y=steps, zmin=0, zmax=n, colorscale=scale,
        showscale=False, xgap=2, ygap=2, customdata=hover,
        text=None if big else labels, texttemplate=None if big else "%{text}",
        textfont=dict(size=13),  # black or white, whichever reads on the cell
        hovertemplate="step %{y}, column %{x}<br>%{customdata}<extra></extra>")
    present = [k for k in F.KINDS if k in set(tokens[F.KIND])]
    height = int(min(max(260, 26 * len(steps) + 120), 900))
    across = ("the accepted path by depth, then the token the target added" if tree else
              "draft position 1…γ, then the token the target added")
    return themed([heat, *_legend_keys(present, tree)], title, height=height,
                  yaxis=dict(title="step", autorange="reversed", dtick=1 if len(steps) <= 40
                             else None),
                  xaxis=dict(title=across, dtick=1, showgrid=False, zeroline=False))


def _heat_cells(drafts: pd.DataFrame, rows, shape: tuple[int, int], greedy: bool,
                tree: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each heatmap cell's mark and hover text (why the draft was accepted or not)."""
    accept = accept_label(tree)
    text = np.full(shape, "", dtype=object)
    hover = np.full(shape, "", dtype=object)
    for r, c, st, tok, p, q, a, u in zip(rows, drafts[F.POS], drafts[F.STATUS],
                                         drafts[F.TEXT], drafts[F.P], drafts[F.Q],
                                         drafts[F.ACCEPT_PROB], drafts[F.U]):
        zero = tree and st == "unjudged" and q == 0
        text[r, c] = Q_ZERO_MARK if zero else KIND_MARKS[st]
        if st == "unjudged":
            why = unjudged_why(q, tree)
        elif greedy:
            why = (f"greedy: the draft {'is' if st == 'accepted' else 'is not'} the target's "
                   f"top token (argmax p) → {st}")
        else:
            why = f"{accept} = {_fmt(a)}, u = {_fmt(u)} → {st}"
        hover[r, c] = f"<b>{show_token(tok)}</b> · p={_fmt(p)} q={_fmt(q)}<br>{why}"
    return text, hover


def fig_acceptance_heatmap(drafts: pd.DataFrame, greedy: bool = False,
                           max_text_steps: int = 80, tree: bool = False) -> go.Figure:
    """Acceptance heatmap: one row of ``drafts_frame`` becomes one cell (step × draft
    position, numbered from 1), marked ✓ accepted, ✗ rejected, · never judged (in a sampled
    tree, ∅ for a child the draft gave q = 0: it could not have been drawn).

    Sampling: judged cells are colored by min(1, p/q), the probability the rule accepts (in a
    tree, the node's acceptance probability at its turn in the walk, ``TREE_ACCEPT``).
    Greedy: nothing is drawn at random; a draft is accepted exactly when it is the target's
    top token, so judged cells show accepted / rejected in their two colors and the hover
    gives that check. Cells never judged (after a rejection; in a tree, nodes whose branch
    the walk never reached) are grey in both cases.
    """
    if drafts.empty:
        return themed([], "Acceptance heatmap (no drafts)", height=200)
    status = drafts[F.STATUS].to_numpy()
    judged = status != "unjudged"
    z, steps, rows = _grid(drafts, F.POS, np.where(judged, drafts[F.ACCEPT_PROB], np.nan)
                           .astype(float))
    if greedy:
        z, _, _ = _grid(drafts, F.POS, np.where(judged, (status == "accepted") * 1.0,
                                                np.nan))
    never, _, _ = _grid(drafts, F.POS, np.where(judged, np.nan, 0.0))
    q_zero = tree and bool(((status == "unjudged") & (drafts[F.Q].to_numpy() == 0)).any())
    text, hover = _heat_cells(drafts, rows, z.shape, greedy, tree)
    big = len(steps) > max_text_steps
    x = np.arange(1, z.shape[1] + 1)
    common = dict(x=x, y=steps, xgap=1, ygap=1, customdata=hover,
                  hovertemplate="step %{y}, position %{x}<br>%{customdata}<extra></extra>")
    grey = go.Heatmap(z=never, colorscale=[[0, KIND_COLORS["unjudged"]],
                                           [1, KIND_COLORS["unjudged"]]],
                      showscale=False, zmin=0, zmax=1, **common)
    if greedy:
        scale = [[0, KIND_COLORS["rejected"]], [0.5, KIND_COLORS["rejected"]],
                 [0.5, KIND_COLORS["accepted"]], [1, KIND_COLORS["accepted"]]]
        heat = go.Heatmap(z=z, zmin=0, zmax=1, colorscale=scale, showscale=False, **common)
        title = "Greedy acceptance: is the draft the target's top token?"
        keys = _legend_keys(["accepted", "rejected", "unjudged"], tree, q_zero)
    else:
        heat = go.Heatmap(z=z, zmin=0, zmax=1, colorscale="Viridis",
                          colorbar=dict(title=accept_label(tree)), **common)
        title = ("Acceptance probability at each node's turn in the walk (grey: never judged)"
                 if tree else "Acceptance probability min(1, p/q) (grey: never judged)")
        keys = _legend_keys(["unjudged"], tree, q_zero)
    data = [grey, heat]
    if not big:  # the marks, in black or white to read on their cell
        data.append(_marks(text, z, steps, x, greedy))
    height = int(min(max(260, 22 * len(steps) + 120), 900))
    return themed(data + keys, title, height=height,
                  yaxis=dict(title="step", autorange="reversed"),
                  xaxis=dict(title="tree node, in drafting order" if tree else "draft position",
                             dtick=1 if len(x) <= 20 else 5, range=[0.5, len(x) + 0.5],
                             showgrid=False))


def _marks(text: np.ndarray, z: np.ndarray, steps: np.ndarray, x: np.ndarray,
           greedy: bool) -> go.Scatter:
    """✓ / ✗ / · at the cell centres, large and bold, white on dark cells, black on light."""
    rr, cc = np.nonzero(text != "")
    values = z[rr, cc]
    if greedy:  # on the green and the vermillion, black reads best
        colors = ["black"] * len(rr)
    else:  # Viridis is dark below about 0.55
        colors = ["black" if (np.isfinite(v) and v >= 0.55) or not np.isfinite(v) else "white"
                  for v in values]
    return go.Scatter(x=x[cc], y=steps[rr], mode="text", text=text[rr, cc].tolist(),
                      textfont=dict(size=17, color=colors, family="Arial Black, Arial"),
                      hoverinfo="skip", showlegend=False)


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
                         drafted_text: str, status: str, greedy: bool = False,
                         tree: bool = False) -> go.Figure:
    """The verifier at one drafted position: one row of ``topk_frame`` becomes one token on
    the x axis (▶ the draft, ▲ the target's top token).

    Sampling: bars for p, q and the residual norm(max(0, p − q)); below, the draw u against
    the acceptance line min(1, p/q) (accept when u < min(1, p/q)). A tree's node (``tree``):
    no residual bar (the walk's p and q at the node's turn are not the plain ones shown), and
    the line is its acceptance probability at that turn (``TREE_ACCEPT``).
    Greedy: bars for p and q, and the one check greedy verification makes: is the draft
    the target's top token (argmax p)? No draw, no residual (the target's own top token is
    what replaces a rejected draft).
    """
    top = int(np.nanargmax(topk[F.P].to_numpy())) if topk[F.P].notna().any() else -1
    marks = ["▶ " if d else "" for d in topk[F.IS_DRAFTED]]
    if greedy and top >= 0:
        marks[top] += "▲ "
    labels = [m + show_token(t) for m, t in zip(marks, topk[F.TEXT])]
    series = [(F.P, "p (target)", P_COLOR), (F.Q, "q (draft)", Q_COLOR)]
    if not greedy and not tree:
        series.append((F.RESIDUAL, "norm(max(0, p − q))", RESIDUAL_COLOR))
    data = [go.Bar(x=labels, y=topk[col], name=name, marker_color=color,
                   hovertemplate="%{x}: %{y:.4f}<extra>" + name + "</extra>")
            for col, name, color in series]
    verdict = f"{KIND_MARKS.get(status, '')} {status}".strip()
    if status == "unjudged":
        verdict = ("never judged (the walk did not reach it)" if tree else
                   "never judged (an earlier draft of the step was rejected)")
    if greedy:
        if status == "unjudged":
            check = f"draft {show_token(drafted_text)} was {verdict}"
        elif top < 0:
            check = "greedy: the target's top token is not recorded here"
        else:
            argmax = show_token(str(topk[F.TEXT].iloc[top]))
            same = bool(topk[F.IS_DRAFTED].iloc[top])
            check = (f"greedy check: draft {show_token(drafted_text)} "
                     f"{'=' if same else '≠'} the target's top token {argmax} → {verdict}")
        return themed(data, f"Verify inspector (greedy): {check}", height=420, barmode="group",
                      xaxis=dict(title="top-k tokens of p and q (▶ the draft, ▲ argmax p)"),
                      yaxis=dict(title="probability"))
    accept = accept_label(tree)
    data.append(go.Bar(x=[accept_prob], y=[accept], orientation="h", showlegend=False,
                       xaxis="x2", yaxis="y2", marker_color=KIND_COLORS["accepted"],
                       opacity=0.5, hovertemplate=accept + " = %{x:.4f}<extra></extra>"))
    if u is not None and np.isfinite(u):
        data.append(go.Scatter(x=[u], y=[accept], mode="markers", name="u",
                               xaxis="x2", yaxis="y2",
                               marker=dict(symbol="line-ns-open", size=30, color="black",
                                           line=dict(width=3)),
                               hovertemplate="u = %{x:.4f}<extra></extra>"))
    title = f"Verify inspector: draft {show_token(drafted_text)} was {verdict}"
    return themed(data, title, height=460, barmode="group",
                  xaxis=dict(anchor="y", title="top-k tokens of p and q (▶ the draft)"),
                  yaxis=dict(domain=[0.42, 1.0], title="probability"),
                  xaxis2=dict(anchor="y2", range=[0, 1], title=f"accept if u < {accept}",
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
    """Tokens per second: one row of ``runs_frame`` becomes one horizontal bar (run names
    read along the bars, never rotated)."""
    colors = [KIND_COLORS["target"] if m == "target-only" else SERIES[0]
              for m in runs[F.MODE]]
    names = runs[F.RUN_NAME].astype(str).tolist()  # long: cut on the axis, whole on hover
    short = [n if len(n) <= 34 else n[:33] + "…" for n in names]
    speed = runs[F.TOKENS_PER_S].astype(float)
    bar = go.Bar(y=short, x=speed, orientation="h", marker_color=colors,
                 customdata=[plotly_text(n) for n in names],
                 text=["–" if not np.isfinite(v) else f"{v:.1f}" for v in speed],
                 textposition="outside", cliponaxis=False,
                 hovertemplate="%{customdata}: %{x:.2f} tokens/s<extra></extra>")
    title = "Throughput" + (" (grey: target only)" if (runs[F.MODE] == "target-only").any()
                            else "")
    top = float(np.nanmax(speed)) if np.isfinite(speed).any() else 1.0
    return themed([bar], title, height=120 + 34 * len(runs),
                  legend=False, yaxis=dict(autorange="reversed"),
                  xaxis=dict(title="tokens / s", range=[0, 1.2 * top]))


def fig_gap_shares(shares: dict[str, float], limiter: str) -> go.Figure:
    """What keeps a run from the ideal speedup: one factor of ``diagnosis.FACTORS`` becomes
    one horizontal bar, its share of ln(ideal / predicted); the limiter is the longest bar
    (drawn dark). Negative shares gain time back (e.g. a verify pass cheaper than a step)."""
    names = list(shares)
    values = [100 * shares[k] for k in names]
    colors = [THEORY_COLOR if k == limiter else "#9DB5CF" for k in names]
    bar = go.Bar(y=names, x=values, orientation="h", marker_color=colors,
                 text=[f"{v:.0f} %" for v in values], textposition="outside", cliponaxis=False,
                 hovertemplate="%{y}: %{x:.1f} % of the gap<extra></extra>")
    return themed([bar], "Share of the gap to the ideal speedup", height=260, legend=False,
                  yaxis=dict(autorange="reversed"),
                  xaxis=dict(title="% of ln(ideal / predicted)", zeroline=True,
                             zerolinecolor="#888"))
