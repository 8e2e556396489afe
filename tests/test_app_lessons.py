"""The Lessons page under streamlit.testing's AppTest: every lesson renders from its prepared
runs, its experiment widget changes what is shown, and every quiz answers a wrong and the
right choice with that option's own feedback."""

from pathlib import Path

import pytest

from specviz import lessons as L

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")

# lesson number -> how to change its experiment: (widget kind, key, new value)
EXPERIMENT_CHANGES = {
    1: ("radio", "l1_drafter", L.CPU_BUNDLE[1]),
    2: ("radio", "l2_gamma", f"{L.LESSON_DIR}/gamma-8.jsonl"),
    3: ("radio", "l3_run", L.TAU[0.7]),
    4: ("radio", "l4_run", L.GREEDY),
    5: ("select_slider", "l5_step", 3),
    6: ("slider", "l6_alpha", 0.9),
    7: ("radio", "l7_roles", "swapped: the 135M model drafts"),
    8: ("radio", "l8_kind", L.BUDGET_KINDS[1]),
    9: ("selectbox", "l9_file", L.H200_BUNDLE[0]),
    10: ("radio", "l10_rule", "accept-high-q"),
    11: ("multiselect", "l11_fixes", [L.FIXES[0]]),
    12: ("checkbox", "l12_prefill", True),
}
FAILED_CHECK = "The identical-output check fails"  # lesson 10 shows it on purpose


@pytest.fixture(scope="module")
def at():
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    app.switch_page("app_pages/lessons.py")
    app.run()
    _ok(app)
    return app


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error if not e.value.startswith(FAILED_CHECK)]
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


def _n_correct(at: AppTest) -> int:
    text = at.get("progress")[0].proto.text  # "... answered correctly: K of 12"
    return int(text.rsplit("correctly: ", 1)[1].split(" of ")[0])


def _open(at: AppTest, number: int) -> None:
    at.selectbox(key="lesson_pick").set_value(number).run()
    _ok(at)


@pytest.mark.parametrize("number", range(1, 13))
def test_lesson_renders_experiments_and_answers(at, number):
    _open(at, number)
    lesson = L.lesson(number)
    assert at.header[0].value == f"{number}. {lesson.title}"
    assert any(lesson.explanation[:40] in m.value for m in at.markdown)
    assert at.get("progress")[0].proto.text.startswith(f"Lesson {number} of 12")
    assert at.get("plotly_chart") or at.dataframe  # views from the prepared runs
    assert any(d.value[L.COMMAND].str.startswith("python -m specviz run").any()
               for d in at.dataframe if L.COMMAND in d.value)  # provenance of the runs

    before = _shown(at)
    _change(at, *EXPERIMENT_CHANGES[number])
    _ok(at)
    assert _shown(at) != before, f"lesson {number}: the experiment changed nothing"

    quiz = at.radio(key=f"quiz_{number}")
    assert quiz.label == lesson.quiz.question
    wrong = next(o for o in lesson.quiz.options if not o.correct)
    quiz.set_value(wrong.text).run()
    _ok(at)
    assert at.warning[-1].value == f"Not quite. {wrong.feedback}"
    before = _n_correct(at)
    right = next(o for o in lesson.quiz.options if o.correct)
    at.radio(key=f"quiz_{number}").set_value(right.text).run()
    assert at.success[-1].value == f"Correct. {right.feedback}"
    assert _n_correct(at) == before + 1  # the progress bar counts it at once


def test_next_and_previous_lesson(at):
    _open(at, 3)
    at.button(key="lesson_next").click().run()
    assert at.header[0].value.startswith("4. ")
    at.button(key="lesson_prev").click().run()
    at.button(key="lesson_prev").click().run()
    assert at.header[0].value.startswith("2. ")
    _open(at, 12)
    assert not [b for b in at.button if b.key == "lesson_next"]  # the last lesson


def test_lesson_nine_reveals_the_diagnosis_after_a_guess(at):
    _open(at, 9)
    assert not any("Diagnosis computed from the trace" in m.value for m in at.markdown)
    at.radio(key="l9_guess").set_value("draft too slow").run()
    assert any("Diagnosis computed from the trace" in m.value for m in at.markdown)


def test_lesson_ten_shows_the_failed_identical_output_check(at):
    _open(at, 10)
    at.radio(key="l10_rule").set_value("accept-high-q").run()
    assert [e.value for e in at.error if e.value.startswith(FAILED_CHECK)]
    at.radio(key="l10_rule").set_value("exact").run()
    assert any("Identical output" in s.value for s in at.success)


def test_one_step_lessons_link_to_the_walkthrough(at):
    for number in (2, 4, 5):
        _open(at, number)
        links = [e.proto.page for e in at.get("page_link")]
        assert "walkthrough" in links, number
    _open(at, 6)
    assert not at.get("page_link")


@pytest.mark.parametrize("param, header", [("7", "7. "), ("99", "1. "), ("x", "1. ")])
def test_query_parameter_opens_a_lesson(param, header):
    app = AppTest.from_file(APP, default_timeout=120)
    app.query_params["lesson"] = param
    app.run()
    app.switch_page("app_pages/lessons.py")
    app.run()
    _ok(app)
    assert app.header[0].value.startswith(header)
