"""Guided lessons on speculative decoding: content as data, numbers from real traces.

Each lesson is two files side by side in this folder:

- ``<slug>.yaml``: its content (title, explanation, experiment, quiz with feedback on every
  option, exercises, and the claims its text makes), read by ``content.read_lesson``;
- ``<slug>.py``: the code that computes its numbers from its prepared runs: ``FILES`` (the
  trace files it reads), ``numbers(files)`` (every number its text uses) and
  ``checks(numbers)`` (each claim of its text, true or false on these runs), plus the frames
  its experiment draws.

Adding a lesson: write both files and put its slug in ``ORDER``.

Notation: p = target distribution, q = draft distribution.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

from .content import (
    SNIPPETS,
    CaseStudy,
    Choice,
    Exercise,
    Factor,
    Lesson,
    LessonFormatError,
    Numeric,
    Option,
    Ordering,
    Quiz,
    RubricPoint,
    factor_answer,
    filled,
    grade_factor,
    grade_numeric,
    read_lesson,
)
from .runs import LESSON_DIR, TRACES_ROOT, Files, load_files

HERE = Path(__file__).resolve().parent

# the course in the algorithm's order: who drafts, drafting, verifying, accepting, committing;
# then what limits the speedup, the engineer's questions, and a draft that reads the target;
# last, what a pass costs a small target and a large one
ORDER = (
    "architecture",
    "draft-distribution",
    "parallel-verification",
    "acceptance-rule",
    "step-structure",
    "efficiency-limits",
    "temperature-and-roles",
    "gamma-budget",
    "reading-a-trace",
    "fast-but-wrong",
    "low-speedup",
    "draft-length-policy",
    "feature-head",
    "token-trees",
    "pass-costs",
)

LESSONS: tuple[Lesson, ...] = tuple(read_lesson(HERE / f"{slug}.yaml", i + 1)

                                    for i, slug in enumerate(ORDER))


def lesson(number: int) -> Lesson:
    """The lesson with this number (1-based); ValueError if there is none."""
    for item in LESSONS:
        if item.number == number:
            return item
    raise ValueError(f"there is no lesson {number} (lessons 1–{len(LESSONS)})")


def code(item: Lesson) -> ModuleType:
    """The module that computes the lesson's numbers."""
    return importlib.import_module(f"{__name__}.{item.slug.replace('-', '_')}")


def files_of(item: Lesson) -> tuple[str, ...]:
    """The trace files the lesson reads, relative to ``TRACES_ROOT``."""
    return tuple(code(item).FILES)


def numbers(item: Lesson, files: Files) -> dict[str, Any]:
    """Every number the lesson's text uses, computed from its runs."""
    return code(item).numbers(files)


def checks(item: Lesson, nums: Mapping[str, Any]) -> dict[str, bool]:
    """Each claim of the lesson's text: does it hold on these runs?"""
    return {k: bool(v) for k, v in code(item).checks(nums).items()}


def render(item: Lesson, files: Files) -> tuple[Lesson, dict[str, bool]]:
    """The lesson with its runs' numbers filled in, and its claims checked on those runs."""
    nums = numbers(item, files)
    return filled(item, nums), checks(item, nums)


__all__ = [
    "LESSONS", "LESSON_DIR", "ORDER", "SNIPPETS", "TRACES_ROOT", "CaseStudy", "Choice", "Exercise",
    "Files", "Lesson", "LessonFormatError", "Numeric", "Option", "Ordering", "Quiz",
    "RubricPoint", "Factor", "checks", "code", "factor_answer", "files_of", "filled",
    "grade_factor", "grade_numeric", "lesson", "load_files", "numbers", "render",
]
