"""The views of one run (colored text, timeline, acceptance, inspector, latency, metrics),
drawn from a trace; reused by every page."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from specviz import Trace
from specviz import figures as G
from specviz.limits import GAMMA_MAX, GAMMA_MIN
from specviz.measure import NO_DIFFERENCE, Speedup
from specviz.teaching import theory
from specviz.teaching.diagnosis import METRIC_DEFINITIONS, Costs, diagnose, measure
from specviz.traces import frames as F
from specviz.traces.records import traces_to_jsonl
from ui.plain import as_text

TIMELINE_WINDOW = 40


def trace_key(trace: Trace, source: str = "") -> str:
    """A cache key of a trace: its source, run id and length (runs only grow)."""
    return f"{source}|{trace.run.run_id}|{len(trace.steps)}|{trace.complete}"


@st.cache_data(show_spinner=False, max_entries=64)
def frames_of(key: str, _trace: Trace) -> dict[str, pd.DataFrame]:
    """The tidy frames of a trace, computed once per trace."""
    return {"steps": F.steps_frame(_trace), "drafts": F.drafts_frame(_trace),
            "tokens": F.tokens_frame(_trace), "position": F.position_frame(_trace),
            "lengths": F.accepted_length_frame(_trace)}


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if x is None or not math.isfinite(x) else fmt.format(x)


def metrics_ui(trace: Trace, baseline: Trace | None = None) -> Costs:
    """Key metrics as st.metric, and a table with their definitions beside them."""
    costs = measure(trace, baseline)
    sm = trace.with_summary().summary
    tree = F.is_tree(trace)  # a tree's tab names the mean accepted length this way too
    length = "tokens per verification" if tree else "mean accepted length"
    rows = [("α̂ per judged node" if tree else "α̂", _num(costs.alpha, "{:.3f}"), "alpha_hat"),
            (length, _num(costs.mean_accepted_length), "mean_accepted_length"),
            ("tokens per target pass", _num(costs.tokens_per_target_pass),
             "tokens_per_target_pass"),
            ("speedup", _speedup_text(costs) if baseline else "no baseline", "speedup"),
            ("c (draft cost)", _num(costs.c, "{:.3f}"), "c"),
            ("v (verify cost)", _num(costs.v, "{:.2f}"), "v"),
            ("overhead", _num(costs.overhead, "{:.2f}"), "overhead")]
    cols = st.columns(5)
    cols[0].metric(rows[0][0], rows[0][1], help=METRIC_DEFINITIONS["alpha_hat"])
    cols[1].metric(length, rows[1][1],
                   help=METRIC_DEFINITIONS["mean_accepted_length"])
    cols[2].metric("tokens / s", _num(sm.tokens_per_s if trace.complete else None, "{:.1f}"),
                   help="Emitted tokens / wall time of the run (prefill included).")
    sp = costs.speedup
    cols[3].metric("speedup", _num(costs.speedup_measured, "{:.2f}×") if baseline else
                   "no baseline", help=METRIC_DEFINITIONS["speedup"],
                   delta=_spread(sp), delta_color="off", delta_arrow="off")
    cols[4].metric("tokens / steps", f"{sm.n_emitted} / {sm.n_steps}",
                   help=f"Tokens emitted / verification steps. Stop reason: {sm.stop_reason}")
    if sp is not None and sp.verdict == NO_DIFFERENCE:
        st.info(f"No measurable difference on this machine: the speed-up ranged "
                f"{sp.low:.2f}–{sp.high:.2f}× over {sp.n} rounds (median {sp.median:.2f}×; "
                f"speculative {sp.spec_tokens_per_s:.1f}, target alone "
                f"{sp.base_tokens_per_s:.1f} tokens/s). No bottleneck is named: it would "
                "explain noise.")
    elif costs.speedup_measured is not None and costs.speedup_measured < 1.0:
        why = (f"Each tree step gave {_num(costs.mean_accepted_length)} tokens but took "
               f"longer than {_num(costs.mean_accepted_length)} steps of the target alone: "
               f"drafting {_num(costs.gamma, '{:.0f}')} nodes on average and scoring them all "
               "in one pass (the Token tree tab: nodes per pass, useful nodes). The chain's "
               "diagnosis does not model a tree." if tree else
               f"{diagnose(costs).headline} (Trace inspector: the numbers behind it.)")
        st.warning(f"Slower than the target alone ({costs.speedup_measured:.2f}×). {why}")
    with st.expander("All metrics, with their definitions", expanded=False):
        table = pd.DataFrame([(name, value, METRIC_DEFINITIONS[k]) for name, value, k in rows],
                             columns=["metric", "value", "definition"])
        st.table(table.set_index("metric"))
        st.caption(f"Costs are in units of one target-only step "
                   f"({_num(costs.target_step_ms, '{:.2f}')} ms, from the "
                   f"{costs.target_step_from}).")
    return costs


def _spread(sp: Speedup | None) -> str | None:
    """The speed-up's spread under its metric (short: it fits at 1024 px): the range over
    the rounds (their number is in the line above the race and the metrics table), or 'one
    sample'."""
    if sp is None or sp.median is None:
        return None
    if not sp.repeated:
        return "one sample"
    return f"{sp.low:.2f}–{sp.high:.2f}×"


def _speedup_text(costs: Costs) -> str:
    sp = costs.speedup
    if sp is None or sp.median is None:
        return "–"
    return sp.describe()


def colored_text_ui(tokens: pd.DataFrame, highlight: int | None = None,
                    ghosts: str = "rejected", target_only: bool = False,
                    tree: bool = False) -> None:
    """The output as colored text (hover a token for p, q, min(1, p/q) or a tree node's
    P(accept), u)."""
    kinds = ("target",) if target_only else ("accepted", "resampled", "bonus") if tree \
        else ("accepted", "resampled", "bonus", "rejected")  # a tree's text: its accepted path
    st.html(G.legend_html(kinds, tree=tree) + G.colored_text_html(tokens, ghosts=ghosts,
                                                       highlight=highlight, tree=tree))


def _window(tokens: pd.DataFrame, key: str, n_steps: int) -> pd.DataFrame:
    if n_steps <= TIMELINE_WINDOW:
        return tokens
    start = st.slider(f"first step shown ({TIMELINE_WINDOW} at a time)", 0, n_steps - 1, 0,
                      key=f"{key}_tl_start")
    sel = tokens[F.STEP].between(start, start + TIMELINE_WINDOW - 1)
    return tokens[sel]


@st.fragment
def timeline_ui(tokens: pd.DataFrame, n_steps: int, key: str, tree: bool = False) -> None:
    """The token timeline, a window of steps at a time (moving it reruns only this part)."""
    st.plotly_chart(G.fig_timeline(_window(tokens, key, n_steps), title=None, tree=tree),
                    key=f"{key}_timeline")


def _status_word(status: str, q_draft: float) -> str:
    """A tree node's status in a few words, for the node picker."""
    if status != "unjudged":
        return status
    return "q = 0, never drawable" if q_draft == 0 else "never reached"


@st.fragment
def inspector_ui(trace: Trace, drafts: pd.DataFrame, key: str) -> None:
    """Verify inspector: pick a step and a draft position; only this fragment reruns."""
    if drafts.empty:
        st.info("This run drafted nothing, so there is nothing to verify.")
        return
    steps = sorted(drafts[F.STEP].unique().tolist())
    c1, c2 = st.columns([3, 1])
    step = c1.select_slider("step", steps, value=steps[0], key=f"{key}_insp_step")
    rows = drafts[drafts[F.STEP] == step]
    rec = trace.steps[int(step)]
    if rec.tree_parent is not None:  # a tree: which node, where
        depth = rec.tree_depth
        labels = [f"node {p + 1}, depth {depth[p]}"
                  + (f" after {G.show_token(rec.drafted_text[rec.tree_parent[p]])}"
                     if rec.tree_parent[p] >= 0 else "")
                  + f": {G.show_token(t)} ({_status_word(s, q)})"
                  for p, t, s, q in zip(rows[F.POS], rows[F.TEXT], rows[F.STATUS], rows[F.Q])]
    else:
        labels = [f"{p + 1}: {G.show_token(t)} ({s})" for p, t, s in
                  zip(rows[F.POS], rows[F.TEXT], rows[F.STATUS])]
    choice = c2.selectbox("draft position", range(len(rows)), format_func=labels.__getitem__,
                          key=f"{key}_insp_pos")
    row = rows.iloc[int(choice)]
    topk = F.topk_frame(trace, int(step), int(row[F.POS]))
    greedy = F.is_greedy(trace)
    fig = G.fig_verify_inspector(topk, float(row[F.ACCEPT_PROB]), float(row[F.U]),
                                 str(row[F.TEXT]), str(row[F.STATUS]), greedy=greedy,
                                 tree=rec.tree_parent is not None)
    st.plotly_chart(fig, key=f"{key}_inspector")
    st.caption("Greedy decoding draws nothing at random: a draft is accepted exactly when it "
               "is the target's top token (▲)" + (
                   "; in a tree, the sibling that is the top token is followed, and where no "
                   "sibling is, the target adds that top token." if rec.tree_parent is not None
                   else ", and a rejected draft is replaced by that top token.")
               + " ▶ marks the drafted token." if greedy else
               "▶ marks the drafted token. " + (G.TREE_ACCEPT_NOTE if rec.tree_parent is not None
               else "The residual is computed over the tokens shown (top-k of p and q), so it "
               "is approximate when the lists differ."))


@st.fragment
def tree_ui(trace: Trace, key: str) -> None:
    """A tree run: its statistics and one step's tree (moving the step reruns only this)."""
    stats = F.tree_steps_frame(trace)  # every step, as the run's own figures count them
    if (stats[F.NODES] == 0).all():
        st.info("This run drafted no tree.")
        return
    c = st.columns(4)
    c[0].metric("nodes per pass", _num(stats[F.NODES].mean(), "{:.1f}"),
                help="Tree nodes drafted per verification step (all scored in one target "
                     "pass).")
    c[1].metric("accepted depth", _num(stats[F.N_ACCEPTED].mean()),
                help="Drafted nodes kept per step: how deep the walk down the tree went "
                     "(tokens per verification is this + 1).")
    c[2].metric("tokens per verification", _num(stats[F.N_EMITTED].mean()),
                help="Accepted depth + the one token the target adds.")
    useful = stats[F.N_ACCEPTED].sum() / max(stats[F.NODES].sum(), 1)
    c[3].metric("useful nodes", _num(100 * useful, "{:.0f} %"),
                help="Accepted nodes / drafted nodes: the share of the tree that ended up in "
                     "the output. The rest was verified for nothing.")
    steps = stats[stats[F.NODES] > 0][F.STEP].tolist()
    step = st.select_slider("step", steps, value=steps[0], key=f"{key}_tree_step")
    rec = trace.steps[int(step)]
    st.plotly_chart(G.fig_tree_step(F.tree_frame(rec, F.last_committed_text(trace, int(step))),
                                    greedy=F.is_greedy(trace),
                                    title=f"Step {step}: {rec.gamma} nodes, accepted depth "
                                          f"{rec.n_accepted}"),
                    key=f"{key}_tree")
    st.caption("The square is x₀, the last committed token. Each node is a drafted token, a "
               "child of the token before it; siblings are alternatives for the same position. "
               "The target scored every node in one pass and walked down from x₀ along "
               "accepted nodes (thick green edges, ✓), then added one token itself (◆ in "
               "place of a rejected draft, or ★ bonus after a leaf). ✗: judged and rejected; "
               "faded ·: never reached (∅: a sampled child the draft gave q = 0, cut by "
               "top-k / top-p, so it could not have been drawn and is skipped). Hover a node "
               "for p and q of its token at its parent. "
               "The colored text and the timeline show the accepted path only."
               + ("" if F.is_greedy(trace) else " " + G.TREE_ACCEPT_NOTE))


def run_figures(fr: dict[str, pd.DataFrame], trace: Trace, name: str,
                baseline: Trace | None = None, base_fr: dict | None = None) -> dict:
    """Every figure of a run, by title (for drawing and for download); the full timeline
    comes as a function, built only when it is downloaded (the page draws a window)."""
    tokens = fr["tokens"]
    figs = {"timeline": lambda: G.fig_timeline(tokens, tree=F.is_tree(trace)),  # on download
            "acceptance heatmap": G.fig_acceptance_heatmap(fr["drafts"],
                                                           greedy=F.is_greedy(trace),
                                                           tree=F.is_tree(trace)),
            "acceptance by position": G.fig_position_acceptance(fr["position"]),
            "accepted length": G.fig_accepted_length(fr["lengths"]),
            "latency": G.fig_latency(fr["steps"])}
    clocks = [F.tag(fr["steps"], name)]
    if baseline is not None and base_fr is not None:
        clocks.append(F.tag(base_fr["steps"], F.run_name(baseline)))
    both = pd.concat(clocks, ignore_index=True)
    figs["tokens vs time"] = G.fig_tokens_vs_time(both)
    figs["wall clock"] = G.fig_wall_clock(both)
    return figs


def downloads_ui(traces: list[Trace], figs: dict, key: str) -> None:
    """Download the trace (JSON Lines or Parquet) and any figure (self-contained HTML)."""
    c1, c4, c2, c3 = st.columns([1, 1, 1, 1])
    c1.download_button("Download trace (JSONL)", data=lambda: traces_to_jsonl(traces),
                       file_name=f"specviz-{traces[0].run.run_id}.jsonl",
                       mime="application/jsonl", on_click="ignore", key=f"{key}_dl_trace")
    c4.download_button("Download trace (Parquet)", data=lambda: _parquet_bytes(traces),
                       file_name=f"specviz-{traces[0].run.run_id}.parquet",
                       mime="application/vnd.apache.parquet", on_click="ignore",
                       key=f"{key}_dl_parquet",
                       help="One row per drafted position; pandas and DuckDB read it "
                            "directly, and the Trace inspector opens it.")
    which = c2.selectbox("figure", list(figs), key=f"{key}_dl_which",
                         label_visibility="collapsed")
    fig = figs[which]

    def html() -> str:
        return (fig() if callable(fig) else fig).to_html(include_plotlyjs=True, full_html=True)

    c3.download_button("Download figure (HTML)", data=html,
                       file_name=f"specviz-{which.replace(' ', '-')}.html", mime="text/html",
                       on_click="ignore", key=f"{key}_dl_fig")


def _parquet_bytes(traces: list[Trace]) -> bytes:
    """The traces as a Parquet file (specviz.traces.parquet), as `specviz run --out x.parquet`
    writes them."""
    import io

    from specviz.traces.parquet import traces_to_parquet
    buf = io.BytesIO()
    traces_to_parquet(traces, buf)
    return buf.getvalue()


def render_trace(trace: Trace, key: str, baseline: Trace | None = None, source: str = "",
                 highlight: int | None = None, downloads: bool = True) -> None:
    """All views of one run (and its target-only baseline, when given)."""
    fr = frames_of(trace_key(trace, source), trace)
    base_fr = frames_of(trace_key(baseline, source), baseline) if baseline else None
    name = F.run_name(trace)
    target_only = F.is_target_only(trace)
    st.caption(as_text(F.engine_summary(trace)))
    if not trace.complete:
        st.warning(f"This run is incomplete: the file ends before its summary (cut off, or "
                   f"written while the run was still going). Its {len(trace.steps)} finished "
                   "steps are shown; its wall time and tokens/s are unknown.")
    if not target_only:
        metrics_ui(trace, baseline)
    st.subheader("Colored text")
    colored_text_ui(fr["tokens"], highlight=highlight, target_only=target_only,
                    tree=F.is_tree(trace))
    st.subheader("Token timeline")
    timeline_ui(fr["tokens"], len(trace.steps), key, tree=F.is_tree(trace))
    figs = run_figures(fr, trace, name, baseline, base_fr)
    tree = F.is_tree(trace)
    names = ["Acceptance", "Verify inspector", "Latency", "Download"]
    tabs = st.tabs(["Token tree", *names] if tree else names)
    if tree:
        with tabs[0]:
            tree_ui(trace, key)
        tabs = tabs[1:]
    with tabs[0]:
        if tree:
            st.caption("A tree run: the heatmap's columns are the nodes of each step's tree "
                       "in drafting order (not positions in the text; · there: never reached; "
                       "∅: q = 0, the draft could not have drawn it). "
                       "Acceptance by position and accepted length against the i.i.d. model "
                       "describe chains, so they are left out: the Token tree tab has the "
                       "tree's own figures.")
        st.plotly_chart(figs["acceptance heatmap"], key=f"{key}_heat")
        if not tree:
            c1, c2 = st.columns(2)
            c1.plotly_chart(figs["acceptance by position"], key=f"{key}_pos")
            c2.plotly_chart(figs["accepted length"], key=f"{key}_len")
    with tabs[1]:
        inspector_ui(trace, fr["drafts"], key)
    with tabs[2]:
        st.plotly_chart(figs["latency"], key=f"{key}_lat")
        c1, c2 = st.columns(2)
        c1.plotly_chart(figs["tokens vs time"], key=f"{key}_tvt")
        c2.plotly_chart(figs["wall clock"], key=f"{key}_clock")
    with tabs[3]:
        if downloads:
            downloads_ui([trace] + ([baseline] if baseline else []), figs, key)


def baseline_check_ui(spec: Trace, base: Trace | None) -> int | None:
    """Compare a run with its target-only baseline; under greedy decoding the outputs must be
    identical. Returns the output index of the first divergence (to highlight), if any."""
    if base is None:
        return None
    greedy = F.is_greedy(spec)
    a, b = spec.summary.output_token_ids, base.summary.output_token_ids
    n = min(len(a), len(b))
    div = F.first_divergence(a[:n], b[:n])
    if not greedy:
        st.info("Sampling (τ > 0): the outputs differ token by token, but both follow the "
                "target's distribution.")
    elif div is None:
        st.success(f"Identical output: the speculative run and the target alone agree on "
                   f"all {n} tokens (greedy decoding, as the theory promises).")
    else:
        st.warning(f"The outputs differ from token {div} on (highlighted). Under greedy "
                   "decoding they should match; tiny numerical differences between the "
                   "batched verify pass and one-token steps can flip near-ties.")
    return div if greedy else None


def diagnosis_ui(trace: Trace, baseline: Trace | None, key: str) -> None:
    """What limits this run's speedup, with the shares of the gap that chose the label, and
    a what-if over α, γ, c, v and the overhead (its sliders start at this run's values)."""
    if F.is_tree(trace):
        st.caption("Bottleneck diagnosis and what-if: they model a chain of γ drafts, so they "
                   "are not shown for a tree run; its Token tree tab has the tree's figures.")
        return
    costs = measure(trace, baseline)
    dg = diagnose(costs)
    if costs.speedup is not None and costs.speedup.verdict == NO_DIFFERENCE:
        st.caption(f"Bottleneck diagnosis withheld. {dg.headline}")
        return
    with st.container(border=True):
        left, right = st.columns([3, 2])
        with left:
            st.markdown(f"**Bottleneck diagnosis.** {dg.headline}")
            for line in dg.findings:
                st.markdown(f"- {line}")
            if baseline is None:
                st.caption("No target-only baseline of this setup in the file: costs are "
                           "relative to the verify pass (v = 1 assumed).")
        if dg.shares:
            right.plotly_chart(G.fig_gap_shares(dg.shares, dg.limiter),
                               key=f"{key}_shares")
            right.caption("The label names the largest share. The parts add up to the gap "
                          "between the ideal speedup (γ + 1) and the predicted one, in log "
                          "units; see the findings for the numbers.")
        if costs.alpha is None or costs.c is None:
            return
        _what_if_ui(costs, dg, f"{key}_{trace.run.run_id}")


def _what_if_ui(costs: Costs, dg, key: str) -> None:
    """Sliders keyed per run (a run's own values, never the previous run's)."""
    st.markdown("**What if…** speedup = E / (γ·c + v + o), with E = (1 − α^(γ+1)) / (1 − α) "
                "for i.i.d. acceptance. The sliders start at this run's measured values.")
    c1, c2, c3, c4, c5 = st.columns(5)
    a = c1.slider("α", 0.0, 0.99, float(min(costs.alpha, 0.99)), 0.01, key=f"{key}_wi_a")
    g = c2.slider("γ", GAMMA_MIN, GAMMA_MAX, max(int(round(costs.gamma)), 1),
                  key=f"{key}_wi_g")
    c = c3.slider("c", 0.0, 1.0, float(min(costs.c, 1.0)), 0.005, key=f"{key}_wi_c")
    v = c4.slider("v", 0.5, 4.0, float(min(max(costs.v, 0.5), 4.0)), 0.01, key=f"{key}_wi_v")
    o = c5.slider("o (overhead)", 0.0, 1.0, float(min(costs.overhead, 1.0)), 0.01,
                  key=f"{key}_wi_o")
    table = theory.what_if(a, g, c, v, o)
    st.plotly_chart(G.fig_what_if(table, measured=dg.predicted_speedup),
                    key=f"{key}_whatif")
    st.caption("“now” uses E(α, γ) of the i.i.d. model; the dashed line is this run's "
               "prediction from its measured tokens per step (the diagnosis' number). They "
               "differ where acceptance is not i.i.d.")
