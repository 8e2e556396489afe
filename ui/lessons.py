"""Streamlit helpers of the Lessons page: lesson picker and progress, the prepared runs and
the lesson's numbers computed from them, the claims checked on those runs, each lesson's
quiz with feedback, navigation, and the student's progress kept in the page's address (so a
reload or a bookmark keeps it, per browser). The experiments are in ``ui.lesson_experiments``,
the exercises in ``ui.lesson_exercises``.
"""

from __future__ import annotations

import streamlit as st

from specviz.teaching import lessons as L
from specviz.teaching.lessons import runs as R
from ui.common import load_bundled
from ui.lesson_exercises import DONE
from ui.lesson_experiments import experiment_ui  # noqa: F401  (the page imports it from here)
from ui.plain import visible_frame

PICK = "lesson_pick"
CORRECT = "lessons_correct"  # lesson numbers whose quiz was answered correctly
N = len(L.LESSONS)
N_EXERCISES = sum(len(x.exercises) for x in L.LESSONS)
Files = L.Files


# ---------------------------------------------------------------- page frame


def _go(number: int) -> None:
    st.session_state[PICK] = number


QUIZZES_PARAM = "quizzes"  # query parameter: lesson numbers whose quiz was answered right
EXERCISES_PARAM = "exercises"  # query parameter: "<lesson>.<exercise key>" of exercises done
_RESTORED = "lessons_progress_restored"


def _known_exercises() -> set[str]:
    return {f"{x.number}.{e.key}" for x in L.LESSONS for e in x.exercises}


def progress_from_params(params) -> tuple[set[int], set[str]]:
    """The progress held in the page's query parameters: quizzes answered correctly (lesson
    numbers) and exercises done ("<lesson>/<key>"); anything unknown is left out."""
    quizzes = {int(x) for x in str(params.get(QUIZZES_PARAM, "")).split(",")
               if x.isdigit() and 1 <= int(x) <= N}
    known = _known_exercises()
    exercises = {x.replace(".", "/", 1) for x in str(params.get(EXERCISES_PARAM, "")).split(",")
                 if x in known}
    return quizzes, exercises


def progress_params(quizzes: set[int], exercises: set[str]) -> dict[str, str]:
    """The query parameters that hold this progress (empty values left out)."""
    out = {QUIZZES_PARAM: ",".join(str(n) for n in sorted(quizzes)),
           EXERCISES_PARAM: ",".join(sorted(x.replace("/", ".", 1) for x in exercises))}
    return {k: v for k, v in out.items() if v}


def _restore_progress() -> None:
    """Once per session: the progress a reload or a bookmark carries in the address."""
    if st.session_state.get(_RESTORED):
        return
    quizzes, exercises = progress_from_params(st.query_params)
    st.session_state.setdefault(CORRECT, set()).update(quizzes)
    st.session_state.setdefault(DONE, set()).update(exercises)
    st.session_state[_RESTORED] = True


def lesson_picker_ui() -> L.Lesson:
    """The lesson chosen in the selectbox (first visit: the ``?lesson=N`` query parameter,
    with the progress the address holds)."""
    _restore_progress()
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


def progress_ui(lesson: L.Lesson, slot) -> None:
    """Where the student is, and how many quizzes and exercises they have done, drawn into
    ``slot`` (an ``st.empty`` placed above the lesson and filled after it, so that an answer
    given on this run is counted at once); the progress is written into the address, so a
    reload keeps it."""
    done = st.session_state.setdefault(CORRECT, set())
    ex = st.session_state.setdefault(DONE, set())
    slot.progress(lesson.number / N, text=f"Lesson {lesson.number} of {N} · quizzes answered "
                                        f"correctly: {len(done)} of {N} · exercises done: "
                                        f"{len(ex)} of {N_EXERCISES}")
    params = progress_params(done, ex)
    for key in (QUIZZES_PARAM, EXERCISES_PARAM):
        if key not in params:
            if key in st.query_params:
                del st.query_params[key]
        elif st.query_params.get(key) != params[key]:
            st.query_params[key] = params[key]


def nav_ui(lesson: L.Lesson) -> None:
    """Previous and next lesson."""
    c1, _, c3 = st.columns([1, 3, 1])
    if lesson.number > 1:
        c1.button("← Previous lesson", key="lesson_prev", on_click=_go,
                  args=(lesson.number - 1,))
    if lesson.number < N:
        c3.button("Next lesson →", key="lesson_next", on_click=_go,
                  args=(lesson.number + 1,), type="primary")


def load_ui(lesson: L.Lesson) -> Files | None:
    """The lesson's trace files (cached); one error line and None if one cannot be read."""
    out = {}
    for name in L.files_of(lesson):
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


@st.cache_data(show_spinner="Computing the lesson's numbers from its runs…", max_entries=64)
def _numbers(number: int, stamps: tuple, _files: Files) -> dict:
    return L.numbers(L.lesson(number), _files)


def render_ui(lesson: L.Lesson, files: Files) -> tuple[L.Lesson, dict, dict[str, bool]]:
    """The lesson with its runs' numbers filled in, the numbers, and its claims checked."""
    stamps = tuple((n, (L.TRACES_ROOT / n).stat().st_mtime) for n in files)
    nums = _numbers(lesson.number, stamps, files)
    return L.filled(lesson, nums), nums, L.checks(lesson, nums)


def claims_ui(lesson: L.Lesson, checks: dict[str, bool]) -> None:
    """Each claim of the text, checked on the lesson's runs; a warning if one fails."""
    failed = [s for k, s in lesson.claims if not checks.get(k, False)]
    if failed:
        st.warning("The runs behind this lesson contradict its text here: "
                   + " ".join(failed) + " (Were the prepared runs re-recorded?)")
    with st.expander(f"What this lesson claims, checked on its runs "
                     f"({len(lesson.claims) - len(failed)} of {len(lesson.claims)} hold)"):
        for key, statement in lesson.claims:
            st.markdown(f"{'✅' if checks.get(key) else '❌'} {statement}")
        st.caption("Each statement is recomputed from the prepared runs whenever the page "
                   "opens, by the lesson's own code; the test suite asserts them too.")


def provenance_ui(files: Files) -> None:
    """The prepared runs the lesson shows: model pair, hardware and command of each."""
    with st.expander("The prepared runs behind this lesson (model pair, hardware, command)"):
        st.dataframe(visible_frame(R.provenance_frame(files)), hide_index=True)
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
