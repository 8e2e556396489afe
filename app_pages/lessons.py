"""Lessons: one guided lesson per concept, each with real prepared runs, an experiment and a
question with feedback on every answer."""

import streamlit as st

from ui.lessons import (
    experiment_ui,
    lesson_picker_ui,
    load_ui,
    nav_ui,
    progress_ui,
    provenance_ui,
    quiz_ui,
)

st.title("Lessons")
lesson = lesson_picker_ui()
progress_ui(lesson)
st.header(f"{lesson.number}. {lesson.title}")
st.markdown(lesson.explanation)
files = load_ui(lesson)
if files is not None:
    provenance_ui(files)
    experiment_ui(lesson, files)
quiz_ui(lesson)
nav_ui(lesson)
