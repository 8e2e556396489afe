"""The lessons' exercises as Streamlit widgets: put events in order, compute a number from a
run's measurements, choose the factor that matters most, write a case-study answer and
compare it with a rubric. Each exercise's
content comes from the lesson's data file, its numbers from the lesson's runs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from specviz.teaching import lessons as L

DONE = "lessons_exercises_done"  # "<lesson number>/<exercise key>" of exercises completed


def _key(lesson: L.Lesson, ex: L.Exercise) -> str:
    return f"ex_{lesson.number}_{ex.key}"


def _done(lesson: L.Lesson, ex: L.Exercise, done: bool = True) -> None:
    mark = f"{lesson.number}/{ex.key}"
    marks = st.session_state.setdefault(DONE, set())
    if done:
        marks.add(mark)
    else:
        marks.discard(mark)


def case_passes(covered: int, points: int) -> bool:
    """A case study counts as done when the answer covers at least half the rubric's points
    (by the student's own reading), never with none."""
    return covered >= max(1, -(-points // 2))


def ordering_ui(lesson: L.Lesson, ex: L.Ordering) -> None:
    """Pick the events one by one in the order they happen; graded when all are placed."""
    key = _key(lesson, ex)
    st.markdown(f"**Put in order.** {ex.prompt}")
    picked = st.multiselect("Click the events in the order they happen (remove one to undo)",
                            list(ex.shown), key=key, placeholder="Choose the first event")
    if picked:
        st.dataframe(pd.DataFrame({"your order": picked}, index=range(1, len(picked) + 1)))
    if len(picked) < len(ex.events):
        st.caption(f"{len(picked)} of {len(ex.events)} events placed.")
        return
    right = [a == b for a, b in zip(picked, ex.events)]
    if all(right):
        _done(lesson, ex)
        st.success(f"Correct order. {ex.explanation}")
        return
    wrong = ", ".join(str(i + 1) for i, ok in enumerate(right) if not ok)
    st.warning(f"{sum(right)} of {len(right)} events are in the right place; places {wrong} "
               "are not. Remove from the first wrong one and try again.")
    with st.expander("Show the order they happened in"):
        st.dataframe(pd.DataFrame({"event": ex.events}, index=range(1, len(ex.events) + 1)))
        st.markdown(ex.explanation)


def numeric_ui(lesson: L.Lesson, ex: L.Numeric, numbers: dict) -> None:
    """A number to compute from a run's measurements, checked against the lesson's value."""
    key = _key(lesson, ex)
    st.markdown(f"**Compute.** {ex.question}")
    value = st.number_input("Your answer", value=None, step=0.01, format="%.3f", key=key)
    if value is None:
        st.caption(f"Answers within {ex.tolerance:.0%} of the value count as correct.")
        return
    target = float(numbers[ex.answer])
    right, mistake = L.grade_numeric(ex, numbers, value)
    if right:
        _done(lesson, ex)
        st.success(f"Correct: {target:.3f}. {ex.worked}")
        return
    st.warning(f"Not quite: {value:.3f} is more than {ex.tolerance:.0%} away from the value "
               "on this run. " + (mistake or "Check each term and try again."))
    with st.expander("Show the computation"):
        st.markdown(ex.worked)


def case_ui(lesson: L.Lesson, ex: L.CaseStudy) -> None:
    """A scenario, a written answer, then the rubric to check it against and a model answer."""
    key = _key(lesson, ex)
    with st.container(border=True):
        st.markdown(f"**{ex.title}**")
        st.markdown(ex.scenario)
        st.markdown(f"**Your task.** {ex.task}")
        answer = st.text_area("Your answer", key=f"{key}_answer", height=180)
        shown = f"{key}_rubric"
        if st.button("Compare with the rubric", key=f"{key}_reveal"):
            if (answer or "").strip():
                st.session_state[shown] = True
            else:
                st.warning("Write your answer first: the rubric is for checking it.")
        if not st.session_state.get(shown):
            st.caption("Write your answer, then compare it with the rubric and a model answer.")
            return
        st.markdown("**Rubric.** Tick each point your answer covers.")
        covered = 0
        for i, point in enumerate(ex.rubric):
            covered += st.checkbox(point.point, key=f"{key}_point_{i}")
            st.caption(point.why)
        n = len(ex.rubric)
        passed = case_passes(covered, n)
        _done(lesson, ex, passed)
        need = max(1, -(-n // 2))
        verdict = ("counted as done" if passed else
                   f"it counts as done once it covers {need} of them; revise it with the model "
                   "answer below")
        st.info(f"Your answer covers {covered} of {n} points (by your own reading of it): "
                f"{verdict}.")
        with st.expander("A model answer"):
            st.markdown(ex.model_answer)


def factor_ui(lesson: L.Lesson, ex: L.Factor, numbers: dict) -> None:
    """Which factor matters most: one choice, graded against the lesson's runs."""
    key = _key(lesson, ex)
    st.markdown(f"**Which factor matters most?** {ex.question}")
    texts = [t for t, _ in ex.choices]
    choice = st.radio("The factor that matters most", texts, index=None, key=key)
    if choice is None:
        st.caption("Choose one; the answer is computed from the lesson's runs.")
        return
    if L.grade_factor(ex, numbers, choice):
        _done(lesson, ex)
        st.success(f"Correct. {ex.worked}")
    else:
        st.warning("Not quite: on these runs another factor weighs more. Try again, or open "
                   "the computation.")
        with st.expander("Show the computation"):
            st.markdown(ex.worked)


def choice_ui(lesson: L.Lesson, ex: L.Choice) -> None:
    """A second question: one answer, with that option's own feedback."""
    key = _key(lesson, ex)
    texts = [o.text for o in ex.quiz.options]
    st.markdown("**A second question.**")
    choice = st.radio(ex.quiz.question, texts, index=None, key=key)
    if choice is None:
        return
    option = ex.quiz.options[texts.index(choice)]
    _done(lesson, ex, option.correct)
    if option.correct:
        st.success(f"Correct. {option.feedback}")
    else:
        st.warning(f"Not quite. {option.feedback}")


def exercises_ui(lesson: L.Lesson, numbers: dict) -> None:
    """The lesson's exercises, if it has any."""
    if not lesson.exercises:
        return
    st.subheader("Exercises")
    for ex in lesson.exercises:
        if isinstance(ex, L.Ordering):
            ordering_ui(lesson, ex)
        elif isinstance(ex, L.Numeric):
            numeric_ui(lesson, ex, numbers)
        elif isinstance(ex, L.Factor):
            factor_ui(lesson, ex, numbers)
        elif isinstance(ex, L.Choice):
            choice_ui(lesson, ex)
        else:
            case_ui(lesson, ex)
