"""Streamlit helpers of the Lessons page: lesson picker and progress, the prepared runs,
each lesson's experiment (drawn from real traces), the quiz with feedback, navigation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from specviz import Trace, toy
from specviz import figures as G
from specviz import frames as F
from specviz import lessons as L
from specviz.diagnosis import diagnose, measure
from specviz.figures import lesson_views as LV
from ui.common import load_bundled

ROOT = Path(__file__).resolve().parent.parent
WALKTHROUGH = ROOT / "app_pages" / "walkthrough.py"
ONE_STEP = ("parallel-verification", "acceptance-rule", "step-structure")
PICK = "lesson_pick"
CORRECT = "lessons_correct"  # lesson numbers whose quiz was answered correctly
N = len(L.LESSONS)


def _fmt(x: float | None, spec: str = "{:.2f}") -> str:
    return "–" if x is None or not np.isfinite(x) else spec.format(x)


# ---------------------------------------------------------------- page frame


def _go(number: int) -> None:
    st.session_state[PICK] = number


def lesson_picker_ui() -> L.Lesson:
    """The lesson chosen in the selectbox (first visit: the ``?lesson=N`` query parameter)."""
    if PICK not in st.session_state:
        try:
            wanted = int(st.query_params.get("lesson", 1))
        except ValueError:
            wanted = 1
        st.session_state[PICK] = wanted if 1 <= wanted <= N else 1
    number = st.selectbox("Lesson", [x.number for x in L.LESSONS], key=PICK,
                          format_func=lambda n: f"{n}. {L.lesson(n).title}")
    st.query_params["lesson"] = str(number)
    return L.lesson(number)


def progress_ui(lesson: L.Lesson) -> None:
    """Where the student is, and how many quizzes they have answered correctly."""
    done = st.session_state.setdefault(CORRECT, set())
    st.progress(lesson.number / N, text=f"Lesson {lesson.number} of {N} · quizzes answered "
                                        f"correctly: {len(done)} of {N}")


def nav_ui(lesson: L.Lesson) -> None:
    """Previous and next lesson."""
    c1, _, c3 = st.columns([1, 3, 1])
    if lesson.number > 1:
        c1.button("← Previous lesson", key="lesson_prev", on_click=_go,
                  args=(lesson.number - 1,))
    if lesson.number < N:
        c3.button("Next lesson →", key="lesson_next", on_click=_go,
                  args=(lesson.number + 1,), type="primary")


def load_ui(lesson: L.Lesson) -> dict[str, list[Trace]] | None:
    """The lesson's trace files (cached); one error line and None if one cannot be read."""
    out = {}
    for name in lesson.files:
        path = L.TRACES_ROOT / name
        if not path.is_file():
            st.error(f"The prepared run {name} is missing (make it with "
                     "scripts/make_lesson_traces.sh).")
            return None
        traces, error = load_bundled(path)
        if error:
            st.error(f"Cannot read the prepared run {name}: {error}")
            return None
        out[name] = traces
    return out


def provenance_ui(files: dict[str, list[Trace]]) -> None:
    """The prepared runs the lesson shows: model pair, hardware and command of each."""
    with st.expander("The prepared runs behind this lesson (model pair, hardware, command)"):
        st.dataframe(L.provenance_frame(files), hide_index=True)
        st.caption("Every number on this page is computed from these recorded runs. CPU "
                   "timings vary from run to run by tens of percent on the 2-core machine, "
                   "so read small timing differences between files as noise.")


def _record(lesson: L.Lesson) -> None:
    """Count a correct answer before the page redraws (so the progress bar shows it)."""
    chosen = st.session_state.get(f"quiz_{lesson.number}")
    done = st.session_state.setdefault(CORRECT, set())
    if any(o.correct and o.text == chosen for o in lesson.quiz.options):
        done.add(lesson.number)


def quiz_ui(lesson: L.Lesson) -> L.Option | None:
    """The check-your-understanding question; the chosen answer's feedback below it."""
    st.subheader("Check your understanding")
    quiz = lesson.quiz
    texts = [o.text for o in quiz.options]
    choice = st.radio(quiz.question, texts, index=None, key=f"quiz_{lesson.number}",
                      on_change=_record, args=(lesson,))
    if choice is None:
        st.caption("Choose an answer to see why it is right or wrong.")
        return None
    option = quiz.options[texts.index(choice)]
    if option.correct:
        st.success(f"Correct. {option.feedback}")
    else:
        st.warning(f"Not quite. {option.feedback}")
    return option


# ---------------------------------------------------------------- experiments


def _first_spec(traces: list[Trace]) -> Trace:
    return L.speculative(traces)[0]


def _run_picker(traces: list[Trace], key: str) -> Trace:
    specs = L.speculative(traces)
    i = st.selectbox("Prompt", range(len(specs)), key=key,
                     format_func=lambda j: L.short(specs[j].run.prompt_text, 70))
    return specs[int(i)]


def _file_label(traces: list[Trace]) -> str:
    t = traces[0]
    return f"{t.run.label or t.run.run_id} ({L.hardware_name(t)})"


def exp_architecture(files: dict[str, list[Trace]]) -> None:
    names = list(files)
    kinds = {"model": "draft model", "early-exit": "early exit", "prompt-lookup": "prompt lookup"}
    labels = {n: kinds.get(_first_spec(files[n]).run.drafter, "?") for n in names}
    name = st.radio("Drafter", names, format_func=lambda n: labels[n], horizontal=True,
                    key="l1_drafter")
    trace = _first_spec(files[name])
    roles = L.roles_frame(trace)
    c1, c2 = st.columns([3, 2])
    c1.dataframe(roles.round(1).rename(columns={
        L.N_PARAMS: "parameters", L.N_LAYERS: "layers", L.PASSES: "forward passes",
        L.TIME_MS: "time (ms)"}), hide_index=True)
    c2.plotly_chart(LV.fig_role_time(roles), key="l1_roles")
    vocab = L.shared_vocabulary(trace)
    if vocab["positions"]:
        k = trace.run.config.get("top_alternatives", "k")
        st.markdown(f"**One tokenizer.** Over {vocab['positions']} drafted positions, "
                    f"{vocab['common_ids']} token ids appear in both the top-{k} of p and "
                    f"of q; {vocab['same_text']} of them decode to the same text in both "
                    "lists. The draft's ids go into the target unchanged.")
    else:
        st.markdown("**No draft distribution.** This drafter records no q: it proposes "
                    "token ids copied from the context, which the target's own tokenizer "
                    "made, so they are valid target tokens by construction.")


def exp_verification(files: dict[str, list[Trace]]) -> None:
    names = list(files)
    name = st.radio("γ (prepared runs)", names, horizontal=True, key="l2_gamma",
                    format_func=lambda n: f"γ = {_first_spec(files[n]).run.config['gamma']}")
    trace = _first_spec(files[name])
    drafting = [s.step for s in trace.steps if s.gamma > 0]
    step = st.select_slider("Step", drafting, value=drafting[min(1, len(drafting) - 1)],
                            key="l2_step")
    rec = trace.steps[step]
    plural = "s" if rec.gamma > 1 else ""
    st.markdown(f"Step {step} drafted **{rec.gamma}** token{plural}. The target scored all of "
                f"them (and the position after them) in **one** forward pass of "
                f"{rec.verify_ms:.1f} ms:")
    df = L.step_frame(trace, step)[[F.POS, F.TEXT, F.Q, F.P, F.ACCEPT_PROB, F.STATUS]]
    st.dataframe(df.assign(**{F.POS: df[F.POS] + 1}), hide_index=True)
    sm = trace.summary
    c1, c2, c3 = st.columns(3)
    c1.metric("target forward passes (this run)", sm.target_forward_passes)
    c2.metric("verification steps", sm.n_steps)
    c3.metric("tokens emitted", sm.n_emitted)
    st.plotly_chart(LV.fig_verify_cost(L.verification_frame(files)), key="l2_cost")
    st.caption("Bars: one verification pass over γ + 1 positions; markers: one target-only "
               "step over one position, both measured in the same file.")


def exp_draft_distribution(files: dict[str, list[Trace]]) -> None:
    names = list(files)
    name = st.radio("Run", names, horizontal=True, key="l3_run",
                    format_func=lambda n: _tau_label(files[n]))
    trace = _run_picker(files[name], "l3_prompt")
    drafting = [s.step for s in trace.steps if s.gamma > 0]
    step = st.select_slider("Step", drafting, value=drafting[0], key="l3_step")
    stats = L.draft_choice_stats(trace)
    c1, c2, c3 = st.columns(3)
    c1.metric("drafted token = q's top token", f"{stats['drafted_is_top']} of "
                                               f"{stats['positions']}")
    c2.metric("mean q of the drafted token", _fmt(stats["mean_q_drafted"], "{:.3f}"))
    c3.metric("mean top probability of q", _fmt(stats["mean_q_top"], "{:.3f}"))
    st.plotly_chart(LV.fig_q_topk(L.q_topk_frame(trace, step)), key="l3_q")
    st.caption("Greedy drafting always takes q's top token; sampled drafting draws from q, "
               "so it sometimes proposes a lower-ranked token. Under greedy the recorded q "
               "is the plain softmax (temperature 1).")


def _tau_label(traces: list[Trace]) -> str:
    tau = _first_spec(traces).run.config.get("temperature", 0.0)
    return "greedy (τ = 0)" if tau == 0 else f"sampled (τ = {tau:g})"


def exp_acceptance(files: dict[str, list[Trace]]) -> None:
    names = list(files)
    name = st.radio("Decoding", names, horizontal=True, key="l4_run",
                    format_func=lambda n: _tau_label(files[n]))
    trace = _first_spec(files[name])
    decisions = L.decisions_frame(trace)
    steps = sorted(decisions[F.STEP].unique().tolist())
    c1, c2 = st.columns([3, 1])
    step = c1.select_slider("Step", steps, value=steps[0], key="l4_step")
    rows = decisions[decisions[F.STEP] == step]
    pos = c2.selectbox("Position", rows[F.POS].tolist(), key="l4_pos",
                       format_func=lambda i: f"{i + 1}: {G.show_token(rows[F.TEXT].iloc[i])}")
    row = rows[rows[F.POS] == pos].iloc[0]
    drafts = L.step_frame(trace, step)
    status = drafts[F.STATUS].iloc[int(pos)]
    st.plotly_chart(G.fig_verify_inspector(F.topk_frame(trace, step, int(pos)),
                                           float(row[L.RECOMPUTED_PROB]), float(row[F.U]),
                                           str(row[F.TEXT]), status), key="l4_insp")
    if np.isfinite(row[F.U]):
        rule = (f"min(1, p/q) = min(1, {row[F.P]:.4f} / {row[F.Q]:.4f}) = "
                f"{row[L.RECOMPUTED_PROB]:.4f}; u = {row[F.U]:.4f} → "
                f"{'accept' if row[L.RECOMPUTED] else 'reject'}")
    else:
        rule = ("greedy: the draft is " + ("" if row[L.RECOMPUTED] else "not ")
                + "the target's top token → " + ("accept" if row[L.RECOMPUTED] else "reject"))
    st.markdown(f"**This position:** {rule}.")
    agree = int(decisions[L.AGREES].sum())
    msg = (f"Recomputed from the recorded p, q and u, {agree} of {len(decisions)} judged "
           "decisions of this run match what the verifier did.")
    (st.success if agree == len(decisions) else st.warning)(msg)


def exp_step_structure(files: dict[str, list[Trace]]) -> None:
    names = list(files)
    name = st.radio("Run", names, horizontal=True, key="l5_run",
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
    ok, n = L.steps_follow_rule(trace)
    st.caption(f"Checked over the run: {ok} of {n} steps appended exactly their accepted "
               "drafts plus one target token.")
    st.plotly_chart(LV.fig_step_endings(L.step_endings_frame(trace)), key="l5_endings")


def exp_efficiency(files: dict[str, list[Trace]]) -> None:
    sweep = L.sweep_frame(files)
    measured = L.pooled_alpha(files)
    alpha = st.slider("α (starts at α̂ measured over the sweep)", 0.05, 0.95,
                      float(round(min(max(measured, 0.05), 0.95), 2)), 0.01, key="l6_alpha")
    st.plotly_chart(LV.fig_saturation(L.saturation_frame(alpha), sweep), key="l6_sat")
    st.markdown(f"Measured over the sweep: α̂ = **{measured:.3f}**, so tokens per step "
                f"cannot exceed 1 / (1 − α̂) = **{1 / (1 - measured):.2f}** however long the "
                "draft.")
    show = sweep[["gamma", "alpha", "tokens_per_step", "expected_tokens", "c", "v",
                  "overhead", "speedup_predicted", "speedup_measured"]]
    st.dataframe(show.round(3), hide_index=True)
    st.caption("Speedup predicted = E / (γ c + v + overhead) from each run's measured values; "
               "measured = tokens/s over the target-only baseline of the same file.")


def exp_roles(files: dict[str, list[Trace]]) -> None:
    by_tau = {_first_spec(files[n]).run.config.get("temperature", 0.0): n
              for n in L.TAU.values() if n in files}
    setups = {f"draft model, {_tau_label(files[n])}": files[n] for n in by_tau.values()}
    setups["roles swapped, greedy"] = files[L.SWAPPED]
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
    table = L.setups_frame(setups)
    row = table[table[L.SETUP] == chosen].iloc[0]
    m = st.columns(5)
    m[0].metric("target (p)", row[L.TARGET].replace("embedded:", ""))
    m[1].metric("α̂", _fmt(row["alpha"], "{:.3f}"))
    m[2].metric("c (draft cost)", _fmt(row["c"], "{:.3f}"))
    m[3].metric("tokens / s", _fmt(row[F.TOKENS_PER_S], "{:.1f}"))
    m[4].metric("speedup (measured)", _fmt(row["speedup_measured"], "{:.2f}×"))
    trace = L.speculative(setups[chosen])[0]
    st.markdown("**Output of the first prompt with this setup** (the target's text):")
    st.html(G.colored_text_html(F.tokens_frame(trace), ghosts="none"))
    st.plotly_chart(LV.fig_setups(table), key="l7_setups")


def exp_budget(files: dict[str, list[Trace]]) -> None:
    c1, c2 = st.columns(2)
    kind = c1.radio("Budget", L.BUDGET_KINDS, key="l8_kind")
    limit = L.budget_limit(files, kind)
    step = 10 if kind == L.BUDGET_KINDS[1] else 250
    top = int(max(step, limit // step * step))
    budget = c2.slider(f"Budget size ({'ms' if step == 250 else 'positions'})", step, top,
                       max(step, top // 2 // step * step), step, key=f"l8_budget_{kind}")
    table = L.budget_frame(files, budget, kind)
    unit = "ms" if kind == L.BUDGET_KINDS[0] else "positions"
    st.plotly_chart(LV.fig_budget(table, unit), key="l8_fig")
    best = table.loc[table["tokens"].idxmax()]
    st.markdown(f"With {budget:.0f} {unit} of verification, **γ = {int(best['gamma'])}** "
                f"delivers the most tokens ({int(best['tokens'])}).")
    st.dataframe(table.round(3), hide_index=True)
    st.caption("Steps are replayed in recorded order (all prompts of each file, one after "
               "another, each run's first step left out since it also processes the prompt); "
               "a step counts only if it fits the budget whole.")


READINGS = {"draft too slow": "draft cost", "α too low": "acceptance",
            "verification too costly": "verification cost",
            "per-step overhead": "overhead", "γ badly chosen": "draft length"}


def exp_reading(files: dict[str, list[Trace]]) -> None:
    names = list(files)
    name = st.selectbox("Prepared run", names, key="l9_file",
                        format_func=lambda n: _file_label(files[n]))
    trace = _run_picker(files[name], "l9_prompt")
    base = F.baseline_for(trace, files[name])
    shares = L.phase_shares(trace)
    m = st.columns(4)
    for col, (_, r) in zip(m, shares.iterrows()):
        col.metric(f"{r[L.COMPONENT]} share of step time", f"{r['share']:.0%}")
    m[3].metric("α̂", _fmt(F.trace_alpha(trace), "{:.3f}"))
    steps = F.steps_frame(trace)
    c1, c2 = st.columns(2)
    c1.plotly_chart(G.fig_latency(steps), key="l9_lat")
    c2.plotly_chart(G.fig_accepted_length(F.accepted_length_frame(trace)), key="l9_len")
    guess = st.radio("What limits this run?", list(READINGS), index=None, key="l9_guess",
                     horizontal=True)
    if guess is not None:
        dg = diagnose(measure(trace, base))
        with st.container(border=True):
            st.markdown(f"**Diagnosis computed from the trace.** {dg.headline}")
            for line in dg.findings:
                st.markdown(f"- {line}")
            if READINGS[guess] == dg.limiter:
                st.success(f"Your reading ({guess}) matches the diagnosis.")
            else:
                st.info(f"Your reading was {guess}; the diagnosis points to {dg.limiter}.")
            st.caption("The diagnosis removes each measured cost in turn (α̂ + 0.1, c → 0, "
                       "v → 1, overhead → 0, best γ) and names the one whose removal the "
                       "formula rewards most.")


def exp_wrong_verifier(files: dict[str, list[Trace]]) -> None:
    rule = st.radio("Verifier of the prepared greedy runs", ["exact", "accept-high-q"],
                    horizontal=True, key="l10_rule")
    name = L.GREEDY if rule == "exact" else L.WRONG_GREEDY
    traces = files[name]
    costs = L.file_costs(traces)
    m = st.columns(3)
    m[0].metric("α̂", _fmt(costs.alpha, "{:.3f}"))
    m[1].metric("tokens per step", _fmt(costs.mean_accepted_length))
    m[2].metric("speedup (measured)", _fmt(costs.speedup_measured, "{:.2f}×"))
    rules = L.rule_check_frame(traces)
    st.dataframe(rules, hide_index=True)
    st.caption(f"The exact rule replayed on the recorded p and q: {rules[L.DISAGREE].sum()} of "
               f"{rules['judged'].sum()} judged drafts were decided differently, "
               f"{rules[L.KEPT_AGAINST_RULE].sum()} of them kept although the exact rule "
               "rejects them. Different text after the first such draft also makes α̂ of the "
               "two runs measured on different contexts.")
    rows = []
    for spec, base in L.pairs(traces):
        chk = L.output_check(spec, base)
        div = chk["first_divergence"]
        rows.append((L.short(spec.run.prompt_text, 50), chk["compared"],
                     "identical" if div is None else f"differs from token {div}"))
    st.dataframe(pd.DataFrame(rows, columns=["prompt", "tokens compared",
                                             "identical-output check"]), hide_index=True)
    checked = [(spec, base, L.output_check(spec, base)["first_divergence"])
               for spec, base in L.pairs(traces)]
    spec, base, div = next((c for c in checked if c[2] is not None), checked[0])
    if div is None:
        st.success("Identical output on every prompt: speculative decoding returned the "
                   "target's own greedy text.")
    else:
        st.error(f"The identical-output check fails: on the prompt below the output leaves "
                 f"the target's greedy text at token {div} (highlighted).")
    st.html(G.colored_text_html(F.tokens_frame(spec), ghosts="none", highlight=div))

    st.subheader("Distribution check (sampling)")
    exact_s, wrong_s = L.file_costs(files[L.TAU[0.7]]), L.file_costs(files[L.WRONG_SAMPLED])
    st.markdown(f"Prepared runs at τ = 0.7: α̂ = {_fmt(exact_s.alpha, '{:.3f}')} with the exact "
                f"rule, {_fmt(wrong_s.alpha, '{:.3f}')} with accept-high-q. One sampled "
                "output cannot tell which is right; many samples can.")
    sampled = _first_spec(files[L.TAU[0.7]])
    spots = L.toy_positions(sampled)[:40]
    if not spots:
        st.info("No recorded position of this run has p and q far enough apart.")
        return
    c1, c2 = st.columns([2, 1])
    spot = c1.selectbox("p and q from a recorded position (top-k tokens, renormalised)",
                        range(len(spots)), key="l10_spot",
                        format_func=lambda i: f"step {spots[i][0]}, position {spots[i][1] + 1}")
    toy_rule = c2.radio("Rule", ["exact", "accept-high-q", "correction-from-p"],
                        key="l10_toy_rule")
    step, pos = spots[int(spot)]
    tokens, p, q = L.toy_from_position(sampled, step, pos)
    res = _simulate(tuple(p), tuple(q), tuple(tokens), toy_rule)
    m = st.columns(3)
    m[0].metric("acceptance (measured)", f"{res.acceptance_rate:.3f}")
    m[1].metric("Σ min(p, q)", f"{toy.overlap(p, q):.3f}")
    m[2].metric("TV distance of the output to p", f"{res.tv_distance:.4f}")
    st.plotly_chart(G.fig_toy_distribution(res.distribution_frame(),
                                           title=f"{res.n_emitted} tokens from the real "
                                                 f"verifier, rule {toy_rule}"),
                    key="l10_toy")
    st.caption("The real verifier (specviz.verify) run for 3000 steps of γ = 3 on these fixed "
               "p and q. Exact: the output frequencies match p up to sampling noise. A wrong "
               "rule leaves a gap that more samples do not close.")


@st.cache_data(show_spinner="Running the verifier…", max_entries=64)
def _simulate(p: tuple, q: tuple, tokens: tuple, rule: str) -> toy.ToyResult:
    return toy.simulate(np.array(p), np.array(q), gamma=3, n_steps=3000, rule=rule, seed=0,
                        tokens=list(tokens))


def exp_low_speedup(files: dict[str, list[Trace]]) -> None:
    names = list(files)
    name = st.selectbox("Prepared run (all prompts of the file pooled)", names,
                        key="l11_file", format_func=lambda n: _file_label(files[n]))
    costs = L.file_costs(files[name])
    fixes = st.multiselect("Remove a cost (the other measured values kept)", L.FIXES,
                           key="l11_fixes")
    try:
        now, fixed = L.speedup_with_fixes(costs, fixes)
    except ValueError as e:
        st.error(f"{e}.")
        return
    m = st.columns(4)
    m[0].metric("α̂", _fmt(costs.alpha, "{:.3f}"))
    m[1].metric("speedup (measured)", _fmt(costs.speedup_measured, "{:.2f}×"))
    m[2].metric("predicted from measured costs", f"{now:.2f}×")
    m[3].metric("predicted with the costs removed", f"{fixed:.2f}×",
                delta=f"{fixed - now:+.2f}×" if fixes else None)
    st.plotly_chart(LV.fig_cost_ledger(L.cost_ledger(costs), costs.mean_accepted_length or 0),
                    key="l11_ledger")
    st.caption(f"Costs in target-only steps ({_fmt(costs.target_step_ms, '{:.1f}')} ms, from "
               f"the {costs.target_step_from}). c = {_fmt(costs.c, '{:.3f}')}, "
               f"v = {_fmt(costs.v)}, overhead = {_fmt(costs.overhead)}, mean γ = "
               f"{costs.gamma:.2f}.")


def exp_policy(files: dict[str, list[Trace]]) -> None:
    traces = [t for name, ts in files.items() for t in ts
              if not F.is_target_only(t) or name == L.GREEDY]
    c1, c2 = st.columns([3, 1])
    include = c2.checkbox("count the first step (prompt prefill)", key="l12_prefill")
    table = L.latency_frame(traces, include_prefill=include)
    names = table[L.POLICY].tolist()
    default = [n for n in names if n.startswith(("fixed γ=4", "heuristic", "confidence 0.5",
                                                 "target only"))]
    chosen = c1.multiselect("Policies to compare", names, default=default, key="l12_pick")
    if not chosen:
        st.info("Choose at least one policy.")
        return
    shown = table[table[L.POLICY].isin(chosen)]
    st.plotly_chart(LV.fig_latency_percentiles(shown), key="l12_fig")
    st.dataframe(shown.round(2), hide_index=True)
    best = shown.loc[shown["p99_ms"].idxmin()]
    st.markdown(f"Lowest p99 among these: **{best[L.POLICY]}** ({best['p99_ms']:.1f} ms per "
                "token).")
    st.caption("Per-token latency = the step's total time / the tokens it emitted, so every "
               "token of one step shares its latency. 'target only' is the baseline of the "
               "γ = 4 file. The files were recorded one after another on a 2-core CPU whose "
               "speed varies from run to run, so small differences are noise; target passes "
               "per token does not depend on timing.")


EXPERIMENTS = {
    "architecture": exp_architecture,
    "parallel-verification": exp_verification,
    "draft-distribution": exp_draft_distribution,
    "acceptance-rule": exp_acceptance,
    "step-structure": exp_step_structure,
    "efficiency-limits": exp_efficiency,
    "temperature-and-roles": exp_roles,
    "gamma-budget": exp_budget,
    "reading-a-trace": exp_reading,
    "fast-but-wrong": exp_wrong_verifier,
    "low-speedup": exp_low_speedup,
    "draft-length-policy": exp_policy,
}


def experiment_ui(lesson: L.Lesson, files: dict[str, list[Trace]]) -> None:
    """The lesson's experiment: a widget that changes what is computed from the runs."""
    st.subheader("Experiment")
    st.markdown(lesson.experiment)
    EXPERIMENTS[lesson.slug](files)
    if lesson.slug in ONE_STEP and WALKTHROUGH.is_file():
        st.page_link(str(WALKTHROUGH.relative_to(ROOT)), icon=":material/slideshow:",
                     label="Replay one step micro-step by micro-step in the Walkthrough")

