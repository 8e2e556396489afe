"""The guided lessons as a library: complete content, prepared runs that load and say where
they come from, and numbers recomputed from the raw trace records."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import plotly.graph_objects as go
import pytest

from specviz import frames as F
from specviz import lessons as L
from specviz import toy
from specviz.diagnosis import measure
from specviz.figures import lesson_views as LV

LESSON_FILES = sorted((L.TRACES_ROOT / L.LESSON_DIR).glob("*.jsonl"))


@pytest.fixture(scope="module")
def files():
    names = sorted({f for lesson in L.LESSONS for f in lesson.files})
    return L.load_files(names)


def _raw_steps(path):
    """Step records of each run of a file, read as plain JSON (not through specviz.trace)."""
    runs = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec["record"] == "run":
            runs.append((rec, []))
        elif rec["record"] == "step":
            runs[-1][1].append(rec)
    return runs


# ---------------------------------------------------------------- content


def test_twelve_lessons_in_order_with_every_part():
    assert [x.number for x in L.LESSONS] == list(range(1, 13))
    assert len({x.slug for x in L.LESSONS}) == 12
    for lesson in L.LESSONS:
        assert lesson.title and len(lesson.explanation) > 200, lesson.slug
        assert lesson.files and lesson.experiment, lesson.slug
        quiz = lesson.quiz
        assert quiz.question.endswith("?"), lesson.slug
        assert len(quiz.options) >= 3
        assert sum(o.correct for o in quiz.options) >= 1, lesson.slug
        feedback = [o.feedback for o in quiz.options]
        assert all(len(f) > 30 for f in feedback), lesson.slug
        assert len(set(feedback)) == len(feedback), lesson.slug  # each answer its own why
        assert len({o.text for o in quiz.options}) == len(quiz.options)


def test_lesson_lookup():
    assert L.lesson(7).slug == "temperature-and-roles"
    with pytest.raises(ValueError, match="no lesson 13"):
        L.lesson(13)


def test_lessons_leave_streamlit_out():
    code = ("import sys, specviz.lessons, specviz.figures.lesson_views; "
            "sys.exit('streamlit' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ---------------------------------------------------------------- prepared runs


def test_every_lesson_file_exists_and_the_script_makes_the_lesson_folder():
    for lesson in L.LESSONS:
        for name in lesson.files:
            assert (L.TRACES_ROOT / name).is_file(), name
    script = (L.TRACES_ROOT.parent.parent / "scripts" / "make_lesson_traces.sh").read_text()
    assert "assets/traces/lessons" in script and "nice" in script
    assert len(LESSON_FILES) >= 12
    assert sum(p.stat().st_size for p in LESSON_FILES) < 4_000_000  # a few MB at most


@pytest.mark.parametrize("path", LESSON_FILES, ids=lambda p: p.name)
def test_lesson_trace_records_pair_hardware_command_and_label(path):
    traces = L.load_files([f"{L.LESSON_DIR}/{path.name}"])[f"{L.LESSON_DIR}/{path.name}"]
    assert L.speculative(traces)
    for t in traces:
        r = t.run
        assert t.complete
        assert r.target["source"].startswith("embedded:smollm2")
        assert r.hardware["device"] == "cpu" and r.hardware.get("cpu")
        assert r.label.startswith("lesson: ")
        assert r.command.startswith("python -m specviz run ")
        assert f"--out assets/traces/lessons/{path.name}" in r.command  # the file's own run
        if r.mode == "speculative":
            assert r.draft and r.draft["source"].startswith("embedded:smollm2")


def test_every_lesson_file_loads_with_its_runs(files):
    for name, traces in files.items():
        assert traces and all(t.complete for t in traces), name
        assert all(t.run.target.get("source") for t in traces)


# ---------------------------------------------------------------- numbers from the traces


def test_alpha_and_tokens_per_step_recomputed_from_raw_steps(files):
    sweep = L.sweep_frame({f: files[f] for f in L._sweep()})
    assert sweep["gamma"].tolist() == list(L.SWEEP_GAMMAS)
    for name, row in zip(sweep[L.FILE], sweep.itertuples()):
        acc = judged = steps = emitted = 0
        for run, recs in _raw_steps(L.TRACES_ROOT / name):
            if run["mode"] != "speculative":
                continue
            for s in recs:
                n_acc = sum(s["accepted"])
                acc += n_acc
                judged += min(s["gamma"], n_acc + 1)
                steps += 1
                emitted += len(s["emitted_ids"])
        assert row.alpha == pytest.approx(acc / judged)
        assert row.tokens_per_step == pytest.approx(emitted / steps)
        assert row.expected_tokens == pytest.approx(
            (1 - row.alpha ** (row.gamma + 1)) / (1 - row.alpha))


def test_pooled_costs_of_one_run_equal_the_diagnosis(files):
    spec, base = L.pairs(files[L.GREEDY])[0]
    mine, ref = L.pooled_costs([(spec, base)]), measure(spec, base)
    for k in ("alpha", "c", "v", "overhead", "mean_accepted_length", "target_step_ms"):
        assert getattr(mine, k) == pytest.approx(getattr(ref, k)), k
    # the summary's tokens/s is rounded to 3 decimals; the pooled one is not
    assert mine.speedup_measured == pytest.approx(ref.speedup_measured, rel=1e-3)


def test_verification_frame_counts_one_target_pass_per_step(files):
    verif = L.verification_frame({f: files[f] for f in L._sweep()})
    assert (verif[L.TARGET_PASSES] == verif[L.STEPS]).all()
    assert (verif[L.SCORED] > verif[L.STEPS]).all()
    assert (verif[L.V] > 0).all()


def test_every_recorded_decision_reproduces_and_a_tampered_one_does_not(files):
    for name in (L.TAU[0.7], L.GREEDY):
        trace = L.speculative(files[name])[0]
        d = L.decisions_frame(trace)
        assert len(d) > 10 and d[L.AGREES].all(), name
    trace = L.speculative(files[L.TAU[0.7]])[0]
    k, s = next((k, s) for k, s in enumerate(trace.steps) if s.n_accepted >= 1)
    flipped = dataclasses.replace(s, u=[1.0] + list(s.u[1:]))  # u = 1 never accepts
    steps = list(trace.steps)
    steps[k] = flipped
    bad = L.decisions_frame(dataclasses.replace(trace, steps=tuple(steps)))
    assert not bad[L.AGREES].all()


def test_step_structure_and_endings(files):
    for name in (L.GREEDY, L.TAU[0.7]):
        trace = L.speculative(files[name])[0]
        ok, n = L.steps_follow_rule(trace)
        assert n > 5 and ok == n
        ends = L.step_endings_frame(trace)
        assert ends[F.COUNT].sum() == sum(1 for s in trace.steps if s.gamma > 0)
        assert set(ends[L.ENDING]) <= {"resampled", "bonus"}


def test_draft_choice_greedy_always_takes_q_top(files):
    greedy = L.draft_choice_stats(L.speculative(files[L.GREEDY])[0])
    assert greedy["positions"] > 0 and greedy["drafted_is_top"] == greedy["positions"]
    sampled = L.draft_choice_stats(L.speculative(files[L.TAU[1.0]])[0])
    assert sampled["drafted_is_top"] <= sampled["positions"]
    qtop = L.q_topk_frame(L.speculative(files[L.GREEDY])[0], 1)
    assert qtop[L.IS_DRAFTED].sum() == L.speculative(files[L.GREEDY])[0].steps[1].gamma


def test_roles_and_shared_vocabulary(files):
    normal = L.roles_frame(L.speculative(files[L.GREEDY])[0])
    swapped = L.roles_frame(L.speculative(files[L.SWAPPED])[0])
    n = normal.set_index(L.ROLE)[L.N_PARAMS]
    s = swapped.set_index(L.ROLE)[L.N_PARAMS]
    assert n["draft (q)"] < n["target (p)"] and s["draft (q)"] > s["target (p)"]
    vocab = L.shared_vocabulary(L.speculative(files[L.GREEDY])[0])
    assert vocab["common_ids"] > 0 and vocab["same_text"] == vocab["common_ids"]


def test_saturation_curve():
    curve = L.saturation_frame(0.6, 16)
    assert curve["expected_tokens"].iloc[0] == pytest.approx(1.0)
    assert curve[L.CEILING].iloc[0] == pytest.approx(2.5)
    assert np.all(np.diff(curve["expected_tokens"]) > 0)
    assert curve["expected_tokens"].max() < 2.5


def test_budget_replay(files):
    sweep = {f: files[f] for f in L._sweep()}
    for kind in L.BUDGET_KINDS:
        limit = L.budget_limit(sweep, kind)
        small, large = (L.budget_frame(sweep, b, kind) for b in (limit / 4, limit))
        assert (small[L.USED] <= limit / 4).all() and (large[L.USED] <= limit).all()
        assert (large[L.TOKENS] >= small[L.TOKENS]).all()
    # scored positions: used = sum of (gamma + 1) of the replayed steps, recomputed
    table = L.budget_frame(sweep, 60, L.BUDGET_KINDS[1])
    for name, row in zip(table[L.FILE], table.itertuples()):
        steps = [s for t in L.speculative(sweep[name]) for s in t.steps[1:]][: row.steps]
        assert row.used == sum(s.gamma + 1 for s in steps)
        assert row.tokens == sum(len(s.emitted_ids) for s in steps)
    with pytest.raises(ValueError):
        L.budget_frame(sweep, 10, "tokens")


def test_per_token_latency_and_percentiles(files):
    trace = L.speculative(files[L.HEURISTIC])[0]
    lat = L.token_latency(trace, include_prefill=True)
    assert len(lat) == trace.summary.n_emitted
    assert lat.sum() == pytest.approx(sum(s.total_ms for s in trace.steps))
    table = L.latency_frame(L.speculative(files[L.HEURISTIC]))
    assert table[L.POLICY].tolist() == ["heuristic (start γ=4)"]
    pooled = np.concatenate([L.token_latency(t) for t in L.speculative(files[L.HEURISTIC])])
    assert table["p90_ms"].iloc[0] == pytest.approx(np.percentile(pooled, 90))
    names = L.latency_frame([t for f in L.CONFIDENCE for t in files[f]])[L.POLICY]
    assert len(set(names)) == 3 and all(n.startswith("confidence 0.") for n in names)


def test_wrong_verifier_changes_greedy_output_and_accepts_more(files):
    exact = [L.output_check(s, b) for s, b in L.pairs(files[L.GREEDY])]
    wrong = [L.output_check(s, b) for s, b in L.pairs(files[L.WRONG_GREEDY])]
    assert all(c["greedy"] for c in exact + wrong)
    assert any(c["first_divergence"] is not None for c in wrong)
    assert all(c["first_divergence"] is None for c in exact)
    # the exact rule, recomputed from the recorded p, q and u, disagrees with the wrong
    # verifier's decisions (drafts kept that it would have rejected), never with its own
    for exact_name, wrong_name in ((L.GREEDY, L.WRONG_GREEDY), (L.TAU[0.7], L.WRONG_SAMPLED)):
        agree = L.rule_check_frame(files[exact_name])
        assert (agree[L.DISAGREE] == 0).all(), exact_name
        wrong = L.rule_check_frame(files[wrong_name])
        assert wrong[L.DISAGREE].sum() > 0 and (wrong[L.KEPT_AGAINST_RULE]
                                                == wrong[L.DISAGREE]).all(), wrong_name


def test_distribution_check_separates_exact_from_wrong_rules(files):
    trace = L.speculative(files[L.TAU[0.7]])[0]
    spots = L.toy_positions(trace)
    assert spots
    tokens, p, q = L.toy_from_position(trace, *spots[0])
    assert len(tokens) == len(p) == len(q) and p.sum() == pytest.approx(1.0)
    tv = {rule: toy.simulate(p, q, gamma=3, n_steps=3000, rule=rule, seed=0).tv_distance
          for rule in ("exact", "accept-high-q", "correction-from-p")}
    assert tv["exact"] < 0.03
    assert max(tv["accept-high-q"], tv["correction-from-p"]) > 2 * tv["exact"]


def test_speedup_with_fixes(files):
    costs = L.file_costs(files[L.CPU_BUNDLE[1]])  # early exit: a costly draft
    now, same = L.speedup_with_fixes(costs, [])
    assert now == pytest.approx(same)
    _, no_draft = L.speedup_with_fixes(costs, [L.FIXES[0]])
    _, everything = L.speedup_with_fixes(costs, L.FIXES)
    assert no_draft > now and everything >= no_draft
    with pytest.raises(ValueError, match="unknown fix"):
        L.speedup_with_fixes(costs, ["free lunch"])


def test_phase_shares_add_up(files):
    shares = L.phase_shares(L.speculative(files[L.CPU_BUNDLE[1]])[0])
    assert shares["share"].sum() == pytest.approx(1.0)
    assert shares.set_index(L.COMPONENT)["share"]["draft"] > 0.3  # early exit drafts slowly


def test_lesson_figures(files):
    sweep = {f: files[f] for f in L._sweep()}
    greedy = L.speculative(files[L.GREEDY])[0]
    costs = L.file_costs(files[L.GREEDY])
    setups = L.setups_frame({"a": files[L.GREEDY], "b": files[L.SWAPPED]})
    budget = L.budget_frame(sweep, 50, L.BUDGET_KINDS[1])
    figs = [
        (LV.fig_role_time(L.roles_frame(greedy)), 1),
        (LV.fig_verify_cost(L.verification_frame(sweep)), 2),
        (LV.fig_q_topk(L.q_topk_frame(greedy, 1)), greedy.run.config["top_alternatives"]),
        (LV.fig_step_endings(L.step_endings_frame(greedy)), 2),
        (LV.fig_saturation(L.saturation_frame(0.7), L.sweep_frame(sweep)), 2),
        (LV.fig_setups(setups), 1),
        (LV.fig_budget(budget, "positions"), 1),
        (LV.fig_cost_ledger(L.cost_ledger(costs), costs.mean_accepted_length), 4),
        (LV.fig_latency_percentiles(L.latency_frame(files[L.GREEDY])), 3),
    ]
    for fig, n in figs:
        assert isinstance(fig, go.Figure) and len(fig.data) == n, fig.layout.title.text
    assert len(figs[6][0].data[0].x) == len(L.SWEEP_GAMMAS)  # one bar per gamma
