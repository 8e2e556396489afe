"""Streamlit helpers of the Lessons page: each lesson's experiment, widgets that change what is
computed from the lesson's prepared runs (``experiment_ui`` picks the lesson's own)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from specviz import Trace
from specviz import figures as G
from specviz.figures import lesson_views as LV
from specviz.teaching import lessons as L
from specviz.teaching.diagnosis import diagnose, measure
from specviz.teaching.lessons import acceptance_rule as L4
from specviz.teaching.lessons import architecture as L1
from specviz.teaching.lessons import draft_distribution as L2
from specviz.teaching.lessons import draft_length_policy as L12
from specviz.teaching.lessons import efficiency_limits as L6
from specviz.teaching.lessons import fast_but_wrong as L10
from specviz.teaching.lessons import feature_head as L13
from specviz.teaching.lessons import gamma_budget as L8
from specviz.teaching.lessons import low_speedup as L11
from specviz.teaching.lessons import parallel_verification as L3
from specviz.teaching.lessons import reading_a_trace as L9
from specviz.teaching.lessons import runs as R
from specviz.teaching.lessons import step_structure as L5
from specviz.teaching.lessons import temperature_and_roles as L7
from specviz.teaching.lessons import token_trees as L14
from specviz.traces import frames as F
from specviz.traces.visible import visible
from ui.lesson_passes import exp_pass_costs
from ui.plain import visible_frame

ROOT = Path(__file__).resolve().parent.parent
WALKTHROUGH = ROOT / "app_pages" / "walkthrough.py"
ONE_STEP = ("parallel-verification", "acceptance-rule", "step-structure")
Files = L.Files


def _fmt(x: float | None, spec: str = "{:.2f}") -> str:
    return "–" if x is None or not np.isfinite(x) else spec.format(x)

# ---------------------------------------------------------------- experiments


def _first_spec(traces: list[Trace]) -> Trace:
    return R.speculative(traces)[0]


def _run_picker(traces: list[Trace], key: str) -> Trace:
    specs = R.speculative(traces)
    i = st.selectbox("Prompt", range(len(specs)), key=key,
                     format_func=lambda j: visible(R.short(specs[j].run.prompt_text, 70)))
    return specs[int(i)]


def _file_label(traces: list[Trace]) -> str:
    t = traces[0]
    return f"{t.run.label or t.run.run_id} ({R.hardware_name(t)})"


def _tau_label(traces: list[Trace]) -> str:
    tau = _first_spec(traces).run.config.get("temperature", 0.0)
    return "greedy (τ = 0)" if tau == 0 else f"sampled (τ = {tau:g})"


def exp_architecture(files: Files, nums: dict) -> None:
    kinds = {"model": "draft model", "early-exit": "early exit", "prompt-lookup": "prompt lookup"}
    labels = {n: kinds.get(_first_spec(files[n]).run.drafter, "?") for n in files}
    name = st.radio("Drafter", list(files), format_func=lambda n: labels[n], horizontal=True,
                    key="l1_drafter")
    roles = L1.roles_frame(_first_spec(files[name]))
    c1, c2 = st.columns([3, 2])
    c1.dataframe(visible_frame(roles.round(1).rename(columns={
        L1.N_PARAMS: "parameters", L1.N_LAYERS: "layers", L1.PASSES: "forward passes",
        L1.TIME_MS: "time (ms)"})), hide_index=True)
    c2.plotly_chart(LV.fig_role_time(roles), key="l1_roles")

    st.markdown("**Handing the draft's ids to the target** (the greedy run, first prompt)")
    runs = R.speculative(files[R.GREEDY])
    trace = runs[0]
    vocab = st.radio("Draft vocabulary", ["shared with the target",
                                          "same tokens, numbered differently"],
                     horizontal=True, key="l1_vocab")
    mapping = None if vocab.startswith("shared") else L1.renumbering(runs)
    step = L1.demo_step(trace)
    st.dataframe(visible_frame(L1.mismatch_frame(trace, step, mapping)), hide_index=True)
    acc, judged = L1.replay_greedy(runs, mapping)
    msg = (f"Replayed over every step of the greedy runs: {acc} of {judged} judged drafts "
           f"kept (α̂ = {acc / judged:.3f}; recorded: {nums['alpha_recorded']:.3f}).")
    (st.success if mapping is None else st.error)(msg)
    st.markdown(f"**Another vocabulary.** Step {step}'s drafts in the "
                f"{nums['char_vocab']}-id character vocabulary of specviz's tiny test models:")
    st.dataframe(visible_frame(L1.char_view(trace, step)), hide_index=True)


def exp_draft_distribution(files: Files, nums: dict) -> None:
    name = st.radio("Run", list(files), horizontal=True, key="l2_run",
                    format_func=lambda n: _tau_label(files[n]))
    trace = _run_picker(files[name], "l2_prompt")
    drafting = [s.step for s in trace.steps if s.gamma > 0]
    step = st.select_slider("Step", drafting, value=drafting[0], key="l2_step")
    stats = L2.draft_choice_stats([trace])
    c1, c2, c3 = st.columns(3)
    c1.metric("drafted token = q's top token", f"{stats['drafted_is_top']} of "
                                               f"{stats['positions']}")
    c2.metric("mean q of the drafted token", _fmt(stats["mean_q_drafted"], "{:.3f}"))
    c3.metric("mean top probability of q", _fmt(stats["mean_q_top"], "{:.3f}"))
    st.plotly_chart(LV.fig_q_topk(L2.q_topk_frame(trace, step)), key="l2_q")
    st.caption("Greedy drafting always takes q's top token; sampled drafting draws from q, "
               "so it sometimes proposes a lower-ranked token. Under greedy the recorded q "
               "is the plain softmax (temperature 1).")
    st.plotly_chart(LV.fig_acceptance_by_q(L2.acceptance_by_q(R.speculative(files[name]))),
                    key="l2_by_q")
    st.caption("All prompts of the chosen run pooled; judged drafts only.")


def exp_verification(files: Files, nums: dict) -> None:
    sweep = [n for n in R.SWEEP if n in files]
    name = st.radio("γ (prepared runs)", sweep, horizontal=True, key="l3_gamma",
                    format_func=lambda n: f"γ = {_first_spec(files[n]).run.config['gamma']}")
    trace = _first_spec(files[name])
    drafting = [s.step for s in trace.steps if s.gamma > 0]
    step = st.select_slider("Step", drafting, value=drafting[min(1, len(drafting) - 1)],
                            key="l3_step")
    rec = trace.steps[step]
    plural = "s" if rec.gamma > 1 else ""
    st.markdown(f"Step {step} drafted **{rec.gamma}** token{plural}. The target scored all of "
                f"them (and the position after them) in **one** forward pass of "
                f"{rec.verify_ms:.1f} ms:")
    df = L3.step_frame(trace, step)[[F.POS, F.TEXT, F.Q, F.P, F.ACCEPT_PROB, F.STATUS]]
    st.dataframe(visible_frame(df.assign(**{F.POS: df[F.POS] + 1})), hide_index=True)
    sm = trace.summary
    c1, c2, c3 = st.columns(3)
    c1.metric("target forward passes (this run)", sm.target_forward_passes)
    c2.metric("verification steps", sm.n_steps)
    c3.metric("tokens emitted", sm.n_emitted)
    c1, c2 = st.columns(2)
    c1.plotly_chart(LV.fig_verify_cost(L3.verification_frame(files)), key="l3_cost")
    by_pos = L3.positions_frame([t for f in L3.POLICY_FILES for t in files[f]])
    c2.plotly_chart(LV.fig_verify_by_positions(by_pos), key="l3_positions")
    st.caption("Left: each file's mean verify pass over its mean target-only step (first step "
               "of each run left out), the dotted line one target-only step. Right: the CPU "
               "policy runs, whose draft length changes from step to step, by positions "
               "scored (n = passes).")


def exp_acceptance(files: Files, nums: dict) -> None:
    name = st.radio("Decoding", list(files), horizontal=True, key="l4_run",
                    format_func=lambda n: _tau_label(files[n]))
    trace = _first_spec(files[name])
    decisions = L4.decisions_frame(trace)
    steps = sorted(decisions[F.STEP].unique().tolist())
    c1, c2 = st.columns([3, 1])
    step = c1.select_slider("Step", steps, value=steps[0], key="l4_step")
    rows = decisions[decisions[F.STEP] == step]
    pos = c2.selectbox("Position", rows[F.POS].tolist(), key="l4_pos",
                       format_func=lambda i: f"{i + 1}: {G.show_token(rows[F.TEXT].iloc[i])}")
    row = rows[rows[F.POS] == pos].iloc[0]
    drafts = L3.step_frame(trace, step)
    status = drafts[F.STATUS].iloc[int(pos)]
    st.plotly_chart(G.fig_verify_inspector(F.topk_frame(trace, step, int(pos)),
                                           float(row[L4.RECOMPUTED_PROB]), float(row[F.U]),
                                           str(row[F.TEXT]), status), key="l4_insp")
    if np.isfinite(row[F.U]):
        rule = (f"min(1, p/q) = min(1, {row[F.P]:.4f} / {row[F.Q]:.4f}) = "
                f"{row[L4.RECOMPUTED_PROB]:.4f}; u = {row[F.U]:.4f} → "
                f"{'accept' if row[L4.RECOMPUTED] else 'reject'}")
    else:
        rule = ("greedy: the draft is " + ("" if row[L4.RECOMPUTED] else "not ")
                + "the target's top token → " + ("accept" if row[L4.RECOMPUTED] else "reject"))
    st.markdown(f"**This position:** {rule}.")
    agree = int(decisions[L4.AGREES].sum())
    msg = (f"Recomputed from the recorded p, q and u, {agree} of {len(decisions)} judged "
           "decisions of this run match what the verifier did.")
    (st.success if agree == len(decisions) else st.warning)(msg)


def exp_step_structure(files: Files, nums: dict) -> None:
    name = st.radio("Run", list(files), horizontal=True, key="l5_run",
                    format_func=lambda n: _tau_label(files[n]))
    trace = _first_spec(files[name])
    drafting = [s.step for s in trace.steps if s.gamma > 0]
    step = st.select_slider("Step", drafting, value=drafting[0], key="l5_step")
    rec = trace.steps[step]
    tokens = F.tokens_frame(trace)
    st.html(G.legend_html(("accepted", "resampled", "bonus", "rejected", "unjudged"))
            + G.colored_text_html(tokens[tokens[F.STEP] == step], ghosts="all"))
    extra = rec.emitted_kinds[rec.n_accepted] if len(rec.emitted_kinds) > rec.n_accepted \
        else "none (end of sequence)"
    kind = {"resampled": "a correction from norm(max(0, p − q))",
            "bonus": "a bonus token from p"}.get(extra, extra)
    st.markdown(f"Step {step}: drafted {rec.gamma}, accepted {rec.n_accepted}, then "
                f"{kind}: **{len(rec.emitted_ids)}** tokens appended.")
    ok, n = L5.steps_follow_rule(trace)
    st.caption(f"Checked over the run: {ok} of {n} steps appended exactly their accepted "
               "drafts plus one target token.")
    st.plotly_chart(LV.fig_step_endings(L5.step_endings_frame(trace)), key="l5_endings")


def exp_efficiency(files: Files, nums: dict) -> None:
    sweep = L6.sweep_frame(files)
    measured = nums["alpha"]
    alpha = st.slider("α (starts at α̂ measured over the sweep)", 0.05, 0.95,
                      float(min(max(measured, 0.05), 0.95)), 0.001, format="%.3f",
                      key="l6_alpha")
    st.plotly_chart(LV.fig_saturation(L6.saturation_frame(alpha), sweep,
                                      L6.prompts_frame(files)), key="l6_sat")
    st.markdown(f"With α = {alpha:.3f}, the i.i.d. model's tokens per step approach "
                f"1 / (1 − α) = **{1 / (1 - alpha):.2f}** however long the draft (α̂ over the "
                f"sweep: {measured:.3f}). A ceiling of the model, not of every prompt: circles "
                "above the dotted line are prompts that accept more than the pooled α̂.")
    show = sweep[["gamma", "alpha", "tokens_per_step", "expected_tokens", "drafted_per_step",
                  "c", "v", "overhead", L6.PREDICTED, L6.MEASURED]]
    st.dataframe(visible_frame(show.round(3)), hide_index=True)
    st.caption("Speedup predicted = E / (γ̄·c + v + o) with each run's measured tokens per "
               "step E, drafted tokens per step γ̄, c, v and o; measured = tokens/s over the "
               "target-only baseline of the same file.")


def exp_roles(files: Files, nums: dict) -> None:
    by_tau = {_first_spec(files[n]).run.config.get("temperature", 0.0): n
              for n in R.TAU.values() if n in files}
    setups = {f"draft model, {_tau_label(files[n])}": files[n] for n in by_tau.values()}
    setups["roles swapped, greedy"] = files[R.SWAPPED]
    c1, c2 = st.columns(2)
    roles = c1.radio("Roles", ["normal: the small draft drafts",
                               "swapped: the 135M model drafts"], key="l7_roles")
    swapped = roles.startswith("swapped")
    taus = sorted(by_tau)
    tau = c2.radio("τ (prepared runs)", taus, key="l7_tau", disabled=swapped,
                   format_func=lambda t: "0 (greedy)" if t == 0 else f"{t:g}")
    chosen = "roles swapped, greedy" if swapped else \
        f"draft model, {_tau_label(files[by_tau[tau]])}"
    if swapped:
        st.caption("The swapped pair was prepared greedy only.")
    table = L7.setups_frame(setups)
    row = table[table[L7.SETUP] == chosen].iloc[0]
    greedy = row[F.TEMPERATURE] == 0
    m = st.columns(5)
    m[0].metric("target (p)", row[R.TARGET].replace("embedded:", ""))
    m[1].metric("α̂ (greedy)" if greedy else "α̂ (sampled)",
                _fmt(row[L7.ALPHA_GREEDY if greedy else L7.ALPHA_SAMPLED], "{:.3f}"))
    m[2].metric("c (draft cost)", _fmt(row["c"], "{:.3f}"))
    m[3].metric("tokens / s", _fmt(row[F.TOKENS_PER_S], "{:.1f}"))
    m[4].metric("speedup (measured)", _fmt(row[L7.SPEEDUP], "{:.2f}×"))
    st.dataframe(visible_frame(table.drop(columns=[R.TARGET, R.DRAFT]).round(3)), hide_index=True)
    st.caption("α̂ greedy: the draft is the target's top token. α̂ sampled: kept with "
               "probability min(1, p/q); its average is the mean overlap Σ min(p, q).")
    trace = R.speculative(setups[chosen])[0]
    st.markdown("**Output of the first prompt with this setup** (the target's text):")
    st.html(G.colored_text_html(F.tokens_frame(trace), ghosts="none"))
    st.plotly_chart(LV.fig_setups(table), key="l7_setups")


def exp_budget(files: Files, nums: dict) -> None:
    c1, c2 = st.columns(2)
    kind = c1.radio("Budget", L8.BUDGET_KINDS, key="l8_kind")
    unit = L8.UNITS[kind]
    limit = L8.budget_limit(files, kind)
    default = L8.DEFAULT_BUDGET[kind]
    step = {L8.TIME_MS: 250}.get(kind, 5)
    top = int(max(default, limit // step * step))
    budget = c2.slider(f"Budget size ({unit})", step, top, default, step,
                       key=f"l8_budget_{kind}")
    table = L8.budget_frame(files, budget, kind)
    st.plotly_chart(LV.fig_budget(table, unit), key="l8_fig")
    best = table.loc[table[L8.TOKENS].idxmax()]
    who = "the target alone" if best["gamma"] == 0 else f"γ = {int(best['gamma'])}"
    st.markdown(f"With {budget:g} {unit}, **{who}** delivers the most tokens "
                f"({int(best[L8.TOKENS])}).")
    st.dataframe(visible_frame(table.round(3)), hide_index=True)
    st.caption("Steps are replayed in recorded order (all prompts of each file, one after "
               "another, each run's first step left out since it also processes the prompt); "
               "a step counts only if it fits the budget whole. The target alone: one token "
               "per pass, per position and per target-only step; in ms, one token per mean "
               "target-only step of the files' baselines.")


def exp_reading(files: Files, nums: dict) -> None:
    name = st.selectbox("Prepared run", list(files), key="l9_file",
                        format_func=lambda n: _file_label(files[n]))
    trace = _run_picker(files[name], "l9_prompt")
    base = F.baseline_for(trace, files[name])
    shares = L9.phase_shares(trace)
    m = st.columns(5)
    for col, (_, r) in zip(m, shares.iterrows()):
        col.metric(f"{r[L9.COMPONENT]} share of step time", f"{r[L9.SHARE]:.0%}")
    m[3].metric("α̂", _fmt(F.trace_alpha(trace), "{:.3f}"))
    m[4].metric("drafted per step", f"{np.mean([s.gamma for s in trace.steps]):.2f} of "
                                    f"{trace.run.config.get('gamma')}")
    steps = F.steps_frame(trace)
    c1, c2 = st.columns(2)
    c1.plotly_chart(G.fig_latency(steps), key="l9_lat")
    c2.plotly_chart(G.fig_accepted_length(F.accepted_length_frame(trace)), key="l9_len")
    guess = st.radio("What limits this run?", list(L9.READINGS), index=None, key="l9_guess",
                     horizontal=True)
    if guess is None:
        return
    dg = diagnose(measure(trace, base))
    with st.container(border=True):
        st.markdown(f"**Diagnosis computed from the trace.** {dg.headline}")
        for line in dg.findings:
            st.markdown(f"- {line}")
        if dg.shares:
            st.plotly_chart(LV.fig_gap_shares(L9.gap_frame(dg)), key="l9_gap")
        if L9.READINGS[guess] == dg.limiter:
            st.success(f"Your reading ({guess}) matches the diagnosis.")
        else:
            st.info(f"Your reading was {guess}; the diagnosis points to {dg.limiter}.")
        st.caption("The diagnosis splits ln(ideal / predicted speedup) into short drafts, "
                   "acceptance, draft cost, verification cost and overhead, and names the "
                   "largest part.")


def exp_wrong_verifier(files: Files, nums: dict) -> None:
    rule = st.radio("Verifier of the prepared greedy runs", ["exact", "accept-high-q"],
                    horizontal=True, key="l10_rule")
    traces = files[R.GREEDY if rule == "exact" else R.WRONG_GREEDY]
    costs = R.file_costs(traces)
    m = st.columns(3)
    m[0].metric("α̂", _fmt(costs.alpha, "{:.3f}"))
    m[1].metric("tokens per step", _fmt(costs.mean_accepted_length))
    m[2].metric("speedup (measured)", _fmt(costs.speedup_measured, "{:.2f}×"))
    st.caption(f"The files' target-only steps took {nums['base_ms_min']:.0f}–"
               f"{nums['base_ms_max']:.0f} ms depending on when each was recorded: speedups "
               f"that differ by less than {nums['base_spread']:.0%} are not told apart.")
    rules = L10.rule_check_frame(traces)
    st.dataframe(visible_frame(rules), hide_index=True)
    st.caption(f"The exact rule replayed on the recorded p and q: {rules[L10.DISAGREE].sum()} "
               f"of {rules['judged'].sum()} judged drafts were decided differently, "
               f"{rules[L10.KEPT_AGAINST_RULE].sum()} of them kept although the exact rule "
               "rejects them. Different text after the first such draft also makes α̂ of the "
               "two runs measured on different contexts.")
    checked = [(spec, L10.output_check(spec, base)["first_divergence"])
               for spec, base in R.pairs(traces)]
    rows = [(R.short(spec.run.prompt_text, 50), spec.summary.n_emitted,
             "identical" if div is None else f"differs from token {div}")
            for spec, div in checked]
    st.dataframe(visible_frame(pd.DataFrame(
        rows, columns=["prompt", "tokens", "identical-output check"])), hide_index=True)
    spec, div = next((c for c in checked if c[1] is not None), checked[0])
    if div is None:
        st.success("Identical output on every prompt: speculative decoding returned the "
                   "target's own greedy text.")
    else:
        st.error(f"The identical-output check fails: on the prompt below the output leaves "
                 f"the target's greedy text at token {div} (highlighted).")
    st.html(G.colored_text_html(F.tokens_frame(spec), ghosts="none", highlight=div))
    _distribution_check_ui(files)


def _distribution_check_ui(files: Files) -> None:
    st.subheader("Distribution check (sampling)")
    sampled = _first_spec(files[R.TAU[0.7]])
    spots = L10.toy_positions(sampled)[:40]
    if not spots:
        st.info("No recorded position of this run has p and q far enough apart.")
        return
    c1, c2 = st.columns([2, 1])
    spot = c1.selectbox("p and q from a recorded position of the τ = 0.7 run (top-k tokens, "
                        "renormalised)", range(len(spots)), key="l10_spot",
                        format_func=lambda i: f"step {spots[i][0]}, position {spots[i][1] + 1}")
    toy_rule = c2.radio("Rule", ["exact", "accept-high-q", "correction-from-p"],
                        key="l10_toy_rule")
    step, pos = spots[int(spot)]
    texts, p, q = L10.toy_from_position(sampled, step, pos)
    labels = [f"{i}: {G.show_token(t)}" for i, t in enumerate(texts)]
    res = _simulate(tuple(p), tuple(q), tuple(labels), toy_rule)
    m = st.columns(3)
    m[0].metric("acceptance (measured)", f"{res.acceptance_rate:.3f}")
    m[1].metric("Σ min(p, q)", f"{float(np.minimum(p, q).sum()):.3f}")
    m[2].metric("TV distance of the output to p", f"{res.tv_distance:.4f}")
    st.plotly_chart(G.fig_toy_distribution(res.distribution_frame(),
                                           title=f"{res.n_emitted} tokens from the real "
                                                 f"verifier, rule {toy_rule}"),
                    key="l10_toy")
    st.caption(f"The real verifier (specviz.core.verify) run for {L10.TOY_STEPS} steps of "
               f"γ = {L10.TOY_GAMMA} on these fixed p and q. Exact: the output frequencies "
               "match p up to sampling noise. A wrong rule leaves a gap that more samples do "
               "not close.")


@st.cache_data(show_spinner="Running the verifier…", max_entries=64)
def _simulate(p: tuple, q: tuple, tokens: tuple, rule: str):
    return L10.distribution_check(np.array(p), np.array(q), rule, list(tokens))


def exp_low_speedup(files: Files, nums: dict) -> None:
    name = st.selectbox("Prepared run (all prompts of the file pooled)", list(files),
                        key="l11_file", format_func=lambda n: _file_label(files[n]))
    costs = R.file_costs(files[name])
    fixes = st.multiselect("Set to its ideal value (the other measured values kept)",
                           L11.FIXES, key="l11_fixes")
    try:
        now, fixed = L11.speedup_with_fixes(costs, fixes)
    except ValueError as e:
        st.error(f"{e}.")
        return
    m = st.columns(4)
    m[0].metric("α̂", _fmt(costs.alpha, "{:.3f}"))
    m[1].metric("speedup (measured)", _fmt(costs.speedup_measured, "{:.2f}×"))
    m[2].metric("predicted from measured values", f"{now:.2f}×")
    m[3].metric("predicted with the ideal values", f"{fixed:.2f}×",
                delta=f"{fixed - now:+.2f}×" if fixes else None)
    st.plotly_chart(LV.fig_cost_ledger(L11.cost_ledger(costs),
                                       costs.mean_accepted_length or 0), key="l11_ledger")
    st.caption(f"Costs in target-only steps ({_fmt(costs.target_step_ms, '{:.1f}')} ms, from "
               f"the {costs.target_step_from}): γ̄ = {costs.gamma:.2f} drafted per step, "
               f"c = {_fmt(costs.c, '{:.3f}')}, v = {_fmt(costs.v)}, "
               f"o = {_fmt(costs.overhead, '{:.3f}')}; E = "
               f"{_fmt(costs.mean_accepted_length)} tokens per step.")


def exp_policy(files: Files, nums: dict) -> None:
    c1, c2 = st.columns([3, 1])
    include = c2.checkbox("count the first step (prompt prefill)", key="l12_prefill")
    table = L12.latency_frame(L12.lesson_runs(files), include_prefill=include)
    names = table[L12.POLICY].tolist()
    default = [n for n in names if n.startswith(("fixed γ=4", "heuristic", "confidence 0.5",
                                                 L12.TARGET_ONLY))]
    chosen = c1.multiselect("Policies to compare", names, default=default, key="l12_pick")
    if not chosen:
        st.info("Choose at least one policy.")
        return
    shown = table[table[L12.POLICY].isin(chosen)]
    st.plotly_chart(LV.fig_latency_percentiles(shown), key="l12_fig")
    st.dataframe(visible_frame(shown.round(2)), hide_index=True)
    best = shown.loc[shown["p99_ms"].idxmin()]
    st.markdown(f"Lowest p99 among these: **{best[L12.POLICY]}** ({best['p99_ms']:.1f} ms per "
                "token).")
    st.caption("Per-token latency = the step's total time / the tokens it emitted, so every "
               "token of one step shares its latency. 'target only' is the baseline of the "
               "γ = 4 file, the fastest-recorded one: the target-only runs of the four γ files "
               f"had p99 {nums['p99_t_min']:.0f}–{nums['p99_t_max']:.0f} ms and mean "
               f"{nums['mean_t_min']:.0f}–{nums['mean_t_max']:.0f} ms per token, recorded at "
               "different moments on a 2-core CPU whose speed drifts. Differences smaller "
               f"than that spread ({nums['base_spread']:.0%}) are noise; target passes per "
               "token does not depend on timing.")


def exp_feature_head(files: Files, nums: dict) -> None:
    st.plotly_chart(LV.fig_kept_by_position(L13.by_position(files)), key="l13_pos")
    st.caption("Each bar: kept / judged at that position, with its 95 % interval (Wilson). "
               "With tens of drafts per position the intervals are wide: where they overlap, "
               "these runs do not tell the two rates apart.")
    head, draft = R.speculative(files[L13.HEAD]), R.speculative(files[L13.DRAFT])
    prompts = [t.run.prompt_text for t in head]
    i = st.selectbox("Prompt", range(len(prompts)), key="l13_prompt",
                     format_func=lambda k: visible(R.short(prompts[k], 70)))
    cols = st.columns(2)
    for col, (who, runs) in zip(cols, (("feature head", head), ("draft model", draft))):
        t = next((r for r in runs if r.run.prompt_text == prompts[i]), None)
        if t is None:
            continue
        fr = F.tokens_frame(t)
        col.markdown(f"**{who}**: α̂ = {_fmt(F.trace_alpha(t), '{:.3f}')}, "
                     f"{_fmt(t.with_summary().summary.mean_accepted_length)} tokens per step")
        with col:
            st.html(G.legend_html() + G.colored_text_html(fr))
    st.caption("Both runs are greedy, so their output text is the target's own and the same; "
               "what differs is which drafts were kept (coloured) and thrown away (struck "
               "through). Recorded one after the other on a 2-core CPU.")


def exp_token_trees(files: Files, nums: dict) -> None:
    st.plotly_chart(LV.fig_chain_vs_tree(L14.per_method(files)), key="l14_bars")
    runs = L14.tree_runs(files)
    prompts = [t.run.prompt_text for t in runs]
    c1, c2 = st.columns([2, 3])
    i = c1.selectbox("Prompt", range(len(prompts)), key="l14_prompt",
                     format_func=lambda k: visible(R.short(prompts[k], 60)))
    trace = runs[i]
    steps = [s.step for s in trace.steps if s.gamma]
    step = c2.select_slider("Step of the dynamic tree's run", steps, value=steps[0],
                            key="l14_step")
    rec = trace.steps[int(step)]
    root = F.last_committed_text(trace, int(step))
    st.plotly_chart(G.fig_tree_step(F.tree_frame(rec, root), greedy=True,
                                    title=f"Step {step}: {rec.gamma} nodes, accepted depth "
                                          f"{rec.n_accepted}"), key="l14_tree")
    st.caption("Greedy: a node is accepted when it is the target's top token after its "
               "parent; all siblings are checked against the same p. Thick green edges: the "
               "accepted path; ✗ rejected; faded: never reached. Recorded on a 2-core CPU.")


EXPERIMENTS = {
    "architecture": exp_architecture,
    "draft-distribution": exp_draft_distribution,
    "parallel-verification": exp_verification,
    "acceptance-rule": exp_acceptance,
    "step-structure": exp_step_structure,
    "efficiency-limits": exp_efficiency,
    "temperature-and-roles": exp_roles,
    "gamma-budget": exp_budget,
    "reading-a-trace": exp_reading,
    "fast-but-wrong": exp_wrong_verifier,
    "low-speedup": exp_low_speedup,
    "draft-length-policy": exp_policy,
    "feature-head": exp_feature_head,
    "token-trees": exp_token_trees,
    "pass-costs": exp_pass_costs,
}


def experiment_ui(lesson: L.Lesson, files: Files, nums: dict) -> None:
    """The lesson's experiment: widgets that change what is computed from the runs."""
    st.subheader("Experiment")
    st.markdown(lesson.experiment)
    EXPERIMENTS[lesson.slug](files, nums)
    if lesson.slug in ONE_STEP and WALKTHROUGH.is_file():
        st.page_link(str(WALKTHROUGH.relative_to(ROOT)), icon=":material/slideshow:",
                     label="Replay one step micro-step by micro-step in the Walkthrough")
