"""The Lessons page under streamlit.testing's AppTest: every lesson renders from its prepared
runs with its claims checked, its experiment widget changes what is shown, every quiz answers
a wrong and the right choice with that option's own feedback, and every exercise (ordering,
numeric, case study) grades or reveals as it should."""

from pathlib import Path

import pytest

from specviz.teaching import lessons as L
from specviz.teaching.lessons import gamma_budget as L8
from specviz.teaching.lessons import low_speedup as L11
from specviz.teaching.lessons import runs as R

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests._lessons_app import lessons_page  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")

# lesson number -> how to change its experiment: (widget kind, key, new value)
EXPERIMENT_CHANGES = {
    1: ("radio", "l1_vocab", "same tokens, numbered differently"),
    2: ("radio", "l2_run", R.TAU[0.7]),
    3: ("radio", "l3_gamma", R.SWEEP[-1]),
    4: ("radio", "l4_run", R.GREEDY),
    5: ("select_slider", "l5_step", 3),
    6: ("slider", "l6_alpha", 0.9),
    7: ("radio", "l7_roles", "swapped: the 135M model drafts"),
    8: ("radio", "l8_kind", L8.POSITIONS),
    9: ("selectbox", "l9_file", R.H200_DRAFT),
    10: ("radio", "l10_rule", "accept-high-q"),
    11: ("multiselect", "l11_fixes", [L11.FIXES[0]]),
    12: ("checkbox", "l12_prefill", True),
    13: ("selectbox", "l13_prompt", 2),
    14: ("selectbox", "l14_prompt", 2),
}
# errors a lesson shows on purpose
SHOWN_FAILURES = ("The identical-output check fails", "Replayed over every step")


@pytest.fixture(scope="module")
def at():
    return lessons_page(_ok)


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error if not e.value.startswith(SHOWN_FAILURES)]
    assert not errors, errors


def _shown(at: AppTest) -> str:
    """What the main area shows: metrics, text, tables, chart specs, HTML."""
    parts = [m.value for m in at.metric] + [m.value for m in at.markdown]
    parts += [d.value.to_csv() for d in at.dataframe]
    parts += [c.proto.spec for c in at.get("plotly_chart")]
    parts += [h.proto.body for h in at.get("html")]
    return "\n".join(map(str, parts))


def _change(at: AppTest, kind: str, key: str, value) -> None:
    getattr(at, kind)(key=key).set_value(value)
    at.run()


def _progress(at: AppTest) -> tuple[int, int]:
    """(quizzes answered correctly, exercises done) from the progress bar's text."""
    text = at.get("progress")[0].proto.text
    quizzes = int(text.split("correctly: ", 1)[1].split(" of ")[0])
    exercises = int(text.split("exercises done: ", 1)[1].split(" of ")[0])
    return quizzes, exercises


def _open(at: AppTest, number: int) -> None:
    at.selectbox(key="lesson_pick").set_value(number).run()
    _ok(at)


def _filled(at: AppTest, number: int) -> L.Lesson:
    lesson = L.lesson(number)
    files = R.load_files(L.files_of(lesson))
    return L.render(lesson, files)[0]


@pytest.mark.parametrize("number", range(1, 14))
def test_lesson_renders_checks_its_claims_and_answers(at, number):
    _open(at, number)
    lesson = _filled(at, number)
    assert at.header[0].value == f"{number}. {lesson.title}"
    assert any(lesson.explanation[:40] in m.value for m in at.markdown)
    assert at.get("progress")[0].proto.text.startswith(f"Lesson {number} of {len(L.LESSONS)}")
    assert at.get("plotly_chart") or at.dataframe  # views from the prepared runs
    assert any(d.value[R.COMMAND].str.startswith("python -m specviz run").any()
               for d in at.dataframe if R.COMMAND in d.value)  # provenance of the runs
    ticks = [m.value for m in at.markdown if m.value.startswith(("✅", "❌"))]
    assert len(ticks) == len(lesson.claims) and all(t.startswith("✅") for t in ticks)
    assert not [w for w in at.warning if "contradict" in w.value]

    before = _shown(at)
    _change(at, *EXPERIMENT_CHANGES[number])
    _ok(at)
    assert _shown(at) != before, f"lesson {number}: the experiment changed nothing"

    quiz = at.radio(key=f"quiz_{number}")
    assert quiz.label == lesson.quiz.question
    assert list(quiz.options) == [o.text for o in lesson.quiz.options]  # the shuffled order
    wrong = next(o for o in lesson.quiz.options if not o.correct)
    quiz.set_value(wrong.text).run()
    _ok(at)
    assert f"Not quite. {wrong.feedback}" in [w.value for w in at.warning]
    before, _ = _progress(at)
    right = next(o for o in lesson.quiz.options if o.correct)
    at.radio(key=f"quiz_{number}").set_value(right.text).run()
    assert f"Correct. {right.feedback}" in [s.value for s in at.success]
    assert _progress(at)[0] == before + 1  # the progress bar counts it at once


def test_ordering_exercise_grades_the_order(at):
    _open(at, 5)
    ex = _filled(at, 5).exercises[0]
    box = at.multiselect(key="ex_5_cycle")
    assert list(box.options) == list(ex.shown)
    box.set_value(list(ex.events[:3])).run()
    assert any("3 of 7 events placed" in c.value for c in at.caption)
    swapped = [ex.events[1], ex.events[0], *ex.events[2:]]
    at.multiselect(key="ex_5_cycle").set_value(swapped).run()
    assert any(w.value.startswith("5 of 7 events are in the right place; places 1, 2")
               for w in at.warning)
    _, done = _progress(at)
    at.multiselect(key="ex_5_cycle").set_value(list(ex.events)).run()
    assert any(s.value.startswith("Correct order.") for s in at.success)
    assert _progress(at)[1] == done + 1


@pytest.mark.parametrize("number, key, answer", [(6, "expected_tokens", "e8"),
                                                 (11, "speedup", "cpu_pred"),
                                                 (11, "speedup-v1", "cpu_pred_v1"),
                                                 (1, "alpha-from-counts", "ex_alpha"),
                                                 (8, "position-budget", "ex_tokens")])
def test_numeric_exercise_checks_the_answer_against_the_run(at, number, key, answer):
    _open(at, number)
    lesson = L.lesson(number)
    value = L.numbers(lesson, R.load_files(L.files_of(lesson)))[answer]
    box = at.number_input(key=f"ex_{number}_{key}")
    box.set_value(round(value * 1.2, 3)).run()
    assert any(w.value.startswith("Not quite") for w in at.warning)
    at.number_input(key=f"ex_{number}_{key}").set_value(round(value, 3)).run()
    assert any(s.value.startswith(f"Correct: {value:.3f}") for s in at.success)


def test_a_usual_mistake_gets_its_own_feedback(at):
    _open(at, 4)
    lesson = _filled(at, 4)
    nums = L.numbers(lesson, R.load_files(L.files_of(lesson)))
    ex = next(e for e in lesson.exercises if e.key == "accept-prob")
    name, feedback = ex.mistakes[0]
    at.number_input(key="ex_4_accept-prob").set_value(round(nums[name], 3)).run()
    assert any(feedback in w.value for w in at.warning)
    _, done = _progress(at)
    at.number_input(key="ex_4_accept-prob").set_value(round(nums[ex.answer], 3)).run()
    assert any(s.value.startswith("Correct:") for s in at.success)
    assert _progress(at)[1] == done + 1


def test_a_second_question_answers_with_its_own_feedback(at):
    _open(at, 4)
    ex = next(e for e in _filled(at, 4).exercises if isinstance(e, L.Choice))
    box = at.radio(key="ex_4_after-refusal")
    assert box.label == ex.quiz.question
    wrong = next(o for o in ex.quiz.options if not o.correct)
    box.set_value(wrong.text).run()
    _ok(at)
    assert f"Not quite. {wrong.feedback}" in [w.value for w in at.warning]
    _, done = _progress(at)
    right = next(o for o in ex.quiz.options if o.correct)
    at.radio(key="ex_4_after-refusal").set_value(right.text).run()
    assert f"Correct. {right.feedback}" in [s.value for s in at.success]
    assert _progress(at)[1] == done + 1


def test_which_factor_matters_most(at):
    _open(at, 7)
    lesson = _filled(at, 7)
    ex = next(e for e in lesson.exercises if isinstance(e, L.Factor))
    nums = L.numbers(lesson, R.load_files(L.files_of(lesson)))
    right = L.factor_answer(ex, nums)
    wrong = next(t for t, _ in ex.choices if t != right)
    box = at.radio(key="ex_7_swap-factor")
    assert list(box.options) == [t for t, _ in ex.choices]
    box.set_value(wrong).run()
    _ok(at)
    assert any(w.value.startswith("Not quite: on these runs") for w in at.warning)
    _, done = _progress(at)
    at.radio(key="ex_7_swap-factor").set_value(right).run()
    assert any(s.value.startswith("Correct.") for s in at.success)
    assert _progress(at)[1] == done + 1


@pytest.mark.parametrize("number, key", [(9, "endpoint-review"), (10, "custom-stack"),
                                         (12, "production-service")])
def test_case_study_reveals_its_rubric_after_an_answer(at, number, key):
    _open(at, number)
    ex = next(e for e in _filled(at, number).exercises if isinstance(e, L.CaseStudy))
    base = f"ex_{number}_{key}"
    at.button(key=f"{base}_reveal").click().run()
    assert any(w.value.startswith("Write your answer first") for w in at.warning)
    assert not [c for c in at.checkbox if c.key.startswith(f"{base}_point")]
    at.text_area(key=f"{base}_answer").set_value("The limiter is acceptance.").run()
    at.button(key=f"{base}_reveal").click().run()
    points = [c for c in at.checkbox if c.key.startswith(f"{base}_point")]
    assert [c.label for c in points] == [r.point for r in ex.rubric]
    _, done = _progress(at)
    points[0].check().run()
    n = len(ex.rubric)
    assert any(i.value.startswith(f"Your answer covers 1 of {n}") for i in at.info)
    if n > 2:  # one point of several is not enough to count it done
        assert _progress(at)[1] == done
    for point in [c for c in at.checkbox if c.key.startswith(f"{base}_point")][1:(n + 1) // 2]:
        point.check().run()
    assert any("counted as done" in i.value for i in at.info)
    assert _progress(at)[1] == done + 1
    assert any(ex.model_answer[:40] in m.value for m in at.markdown)


def test_next_and_previous_lesson(at):
    _open(at, 3)
    at.button(key="lesson_next").click().run()
    assert at.header[0].value.startswith("4. ")
    at.button(key="lesson_prev").click().run()
    at.button(key="lesson_prev").click().run()
    assert at.header[0].value.startswith("2. ")
    _open(at, len(L.LESSONS))
    assert not [b for b in at.button if b.key == "lesson_next"]  # the last lesson


def test_lesson_nine_reveals_the_diagnosis_after_a_guess(at):
    _open(at, 9)
    at.selectbox(key="l9_file").set_value(R.CPU_EARLY_EXIT).run()
    assert not any("Diagnosis computed from the trace" in m.value for m in at.markdown)
    at.radio(key="l9_guess").set_value("acceptance too low").run()
    assert any("Diagnosis computed from the trace" in m.value for m in at.markdown)
    assert any("matches the diagnosis" in s.value for s in at.success)
    assert at.get("plotly_chart")[-1].proto.spec  # the gap split


def test_lesson_ten_shows_the_failed_identical_output_check(at):
    _open(at, 10)
    at.radio(key="l10_rule").set_value("accept-high-q").run()
    assert [e.value for e in at.error if e.value.startswith(SHOWN_FAILURES[0])]
    at.radio(key="l10_rule").set_value("exact").run()
    assert any("Identical output" in s.value for s in at.success)


def test_one_step_lessons_link_to_the_walkthrough(at):
    for number in (3, 4, 5):
        _open(at, number)
        links = [e.proto.page for e in at.get("page_link")]
        assert "walkthrough" in links, number
    _open(at, 6)
    assert not at.get("page_link")


def test_a_second_session_starts_with_its_own_progress(at):
    _open(at, 1)
    assert _progress(at)[0] >= 1  # this session answered quizzes above
    other = AppTest.from_file(APP, default_timeout=180)
    other.run()
    other.switch_page("app_pages/lessons.py")
    other.run()
    _ok(other)
    assert _progress(other) == (0, 0)


@pytest.mark.parametrize("param, header", [("7", "7. "), ("99", "1. "), ("x", "1. ")])
def test_query_parameter_opens_a_lesson(param, header):
    app = AppTest.from_file(APP, default_timeout=180)
    app.query_params["lesson"] = param
    app.run()
    app.switch_page("app_pages/lessons.py")
    app.run()
    _ok(app)
    assert app.header[0].value.startswith(header)


def test_progress_survives_a_reload_through_the_address():
    """A reload starts a new session: the progress comes back from the query parameters."""
    app = AppTest.from_file(APP, default_timeout=180)
    app.run()
    app.switch_page("app_pages/lessons.py")
    app.run()
    app.selectbox(key="lesson_pick").set_value(5).run()
    right = next(o for o in L.lesson(5).quiz.options if o.correct)
    app.radio(key="quiz_5").set_value(right.text).run()
    ex = _filled(app, 5).exercises[0]
    app.multiselect(key="ex_5_cycle").set_value(list(ex.events)).run()
    _ok(app)
    assert _progress(app) == (1, 1)
    params = dict(app.query_params)
    assert params["quizzes"] == "5" and params["exercises"] == "5.cycle"
    again = AppTest.from_file(APP, default_timeout=180)  # the reload
    again.run()
    again.switch_page("app_pages/lessons.py")
    for k, v in {**params, "exercises": "5.cycle,9.no-such,x"}.items():
        again.query_params[k] = v
    again.run()
    _ok(again)
    assert again.header[0].value.startswith("5. ")
    assert _progress(again) == (1, 1)  # unknown exercises left out
