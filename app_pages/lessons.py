"""Lessons: one guided lesson per concept, each with real prepared runs, the claims of its
text checked on them, an experiment, a question with feedback on every answer, exercises."""

import streamlit as st

from ui.lesson_exercises import exercises_ui
from ui.lessons import (
    claims_ui,
    experiment_ui,
    lesson_picker_ui,
    load_ui,
    nav_ui,
    progress_ui,
    provenance_ui,
    quiz_ui,
    render_ui,
)

st.title("Lessons")
item = lesson_picker_ui()
progress = st.empty()
st.header(f"{item.number}. {item.title}")
files = load_ui(item)
if files is not None:
    lesson, numbers, checks = render_ui(item, files)
    st.markdown(lesson.explanation)
    claims_ui(lesson, checks)
    provenance_ui(files)
    experiment_ui(lesson, files, numbers)
    quiz_ui(lesson)
    exercises_ui(lesson, numbers)
nav_ui(item)
progress_ui(item, progress)
