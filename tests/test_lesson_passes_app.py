"""Lesson 15 on the Lessons page under AppTest: it renders from its data file with every claim
checked (on two visits), its figure and table show, the experiment's draft cost changes the
speed-up shown, the quiz and the numeric exercise answer."""


import pytest

from specviz.teaching import lessons as L
from specviz.teaching.lessons import pass_costs as PC
from specviz.teaching.lessons import runs as R

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests._lessons_app import lessons_page  # noqa: E402

NUMBER = L.ORDER.index("pass-costs") + 1


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _open(at: AppTest) -> None:
    at.selectbox(key="lesson_pick").set_value(NUMBER).run()
    _ok(at)


def _markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


@pytest.fixture(scope="module")
def at():
    return lessons_page(_ok)


@pytest.fixture(scope="module")
def nums():
    return PC.numbers(R.load_files(PC.FILES))


def test_the_lesson_renders_twice_with_its_numbers(at, nums):
    lesson, _ = L.render(L.lesson(NUMBER), R.load_files(PC.FILES))
    for _ in range(2):  # two visits: away and back
        _open(at)
        assert at.header[0].value == f"{NUMBER}. {lesson.title}"
        shown = _markdown(at)
        assert lesson.explanation[:60] in shown
        assert f"{nums['l_t1']:,.4g} ms" in shown and f"{nums['s_speed4']:.2f}×" in shown
        ticks = [m.value for m in at.markdown if m.value.startswith(("✅", "❌"))]
        assert len(ticks) == len(lesson.claims) and all(t.startswith("✅") for t in ticks)
        assert len(at.get("plotly_chart")) == 1
        assert any(PC.MS in d.value.columns for d in at.dataframe)
        at.selectbox(key="lesson_pick").set_value(1).run()
        _ok(at)


def test_the_draft_cost_changes_the_speedup_shown(at, nums):
    _open(at)
    at.radio(key="l15_pair").set_value("l").run()
    at.slider(key="l15_c_l").set_value(0.05).run()
    _ok(at)
    e, v = nums["l_e4"], nums["l_v5"]
    assert f"**{PC.speedup(e, 0.05, v):.2f}×**" in _markdown(at)
    at.slider(key="l15_c_l").set_value(0.5).run()
    assert f"**{PC.speedup(e, 0.5, v):.2f}×**" in _markdown(at)


def test_the_quiz_and_the_exercise_answer(at, nums):
    _open(at)
    lesson, _ = L.render(L.lesson(NUMBER), R.load_files(PC.FILES))
    wrong = next(o for o in lesson.quiz.options if not o.correct)
    right = next(o for o in lesson.quiz.options if o.correct)
    at.radio(key=f"quiz_{NUMBER}").set_value(wrong.text).run()
    assert any(w.value.startswith("Not quite") for w in at.warning)
    at.radio(key=f"quiz_{NUMBER}").set_value(right.text).run()
    assert any(s.value.startswith("Correct") for s in at.success)
    box = f"ex_{NUMBER}_large-pair-speedup"
    at.number_input(key=box).set_value(round(nums["ex_once"], 3)).run()
    assert any("once per step" in w.value for w in at.warning)
    at.number_input(key=box).set_value(round(nums["l_speed4"], 3)).run()
    assert any(s.value.startswith("Correct") for s in at.success)
