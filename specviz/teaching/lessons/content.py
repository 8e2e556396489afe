"""A lesson's content as data: what its YAML file holds, how it is read, and how the numbers
its code computes are filled into the text.

A lesson file (``<slug>.yaml`` beside ``<slug>.py``) holds the title, the explanation and
the experiment's instructions (markdown), the quiz (question, options, each with its own
feedback), the exercises (ordering, numeric, case study) and the claims: every quantitative
statement of the text, by id, each checked by the lesson's code (``checks``) against its runs.

Numbers enter the text as ``{{name}}`` or ``{{name:.2f}}`` (a Python format spec), filled from
the dict the lesson's ``numbers(files)`` returns. Single braces are left alone (LaTeX). A
string filled into markdown is escaped, so text from a trace is shown as text, never rendered.
"""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from specviz.traces.visible import visible

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*(?::([^}]*))?\}\}")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>$~&:])")

# text shared by every lesson that uses it: one speedup formula, stated with its terms
SNIPPETS = {
    "speedup_formula":
        "**speedup = E / (γ̄·c + v + o)**, where E is the tokens a verification step emits "
        "(measured for a run; E(α, γ) = (1 − α^(γ+1)) / (1 − α) in theory), γ̄ the drafted "
        "tokens per step, c the draft's cost per drafted token, v the cost of one "
        "verification pass and o the other per-step overhead (accepting, committing, "
        "bookkeeping), all costs in units of one target-only step.",
}


class LessonFormatError(ValueError):
    """A lesson file is malformed; the message names the file and the key."""


# ---------------------------------------------------------------- the content types


@dataclass(frozen=True)
class Option:
    """One answer of a quiz, with the feedback shown when it is chosen."""

    text: str
    correct: bool
    feedback: str


@dataclass(frozen=True)
class Quiz:
    question: str
    options: tuple[Option, ...]  # in the order shown (shuffled once, stably, per lesson)


@dataclass(frozen=True)
class Ordering:
    """Arrange events in the order they happen; ``events`` is the correct order, ``shown``
    the order the student first sees them (a stable shuffle, never the correct one)."""

    key: str
    prompt: str
    events: tuple[str, ...]  # plain text (shown in a widget, not as markdown)
    shown: tuple[str, ...]
    explanation: str  # markdown, shown with the result

    kind = "ordering"


@dataclass(frozen=True)
class Numeric:
    """Compute a number from a run's measurements; the answer is ``numbers[answer]``."""

    key: str
    question: str
    answer: str  # name of the number in the lesson's numbers
    tolerance: float  # relative
    worked: str  # markdown: the computation, shown after an answer
    # the usual wrong answers: (name of the number a mistake gives, markdown saying which)
    mistakes: tuple[tuple[str, str], ...] = ()

    kind = "numeric"


def close(value: float, target: float, tolerance: float) -> bool:
    """Is ``value`` within ``tolerance`` (relative) of ``target``?"""
    return abs(value - target) <= tolerance * abs(target)


def grade_numeric(ex: "Numeric", numbers: Mapping[str, Any], value: float
                  ) -> tuple[bool, str | None]:
    """(is the answer right, the feedback of the usual mistake it matches, if any): right
    when within the exercise's tolerance of ``numbers[ex.answer]``."""
    if close(value, float(numbers[ex.answer]), ex.tolerance):
        return True, None
    for name, feedback in ex.mistakes:
        if name in numbers and close(value, float(numbers[name]), ex.tolerance):
            return False, feedback
    return False, None


@dataclass(frozen=True)
class RubricPoint:
    point: str
    why: str


@dataclass(frozen=True)
class CaseStudy:
    """A production scenario built on real traces: write an answer, then compare it with a
    rubric (each point with why it matters) and a model answer."""

    key: str
    title: str
    scenario: str
    task: str
    rubric: tuple[RubricPoint, ...]
    model_answer: str

    kind = "case"


@dataclass(frozen=True)
class Factor:
    """Which factor matters most: each choice names the number that measures its effect
    (e.g. the speedup the formula predicts with that factor set to its ideal value); the
    right choice is the one whose number is largest on the lesson's runs, so the key comes
    from the data, never typed in."""

    key: str
    question: str  # markdown
    choices: tuple[tuple[str, str], ...]  # (plain text shown, name of its number)
    worked: str  # markdown: every factor's number, shown after an answer

    kind = "factor"


def factor_answer(ex: Factor, numbers: Mapping[str, Any]) -> str:
    """The text of the choice whose number is largest on these runs."""
    return max(ex.choices, key=lambda c: float(numbers[c[1]]))[0]


def grade_factor(ex: Factor, numbers: Mapping[str, Any], choice: str) -> bool:
    """Is ``choice`` the factor that matters most on these runs?"""
    return choice == factor_answer(ex, numbers)


@dataclass(frozen=True)
class Choice:
    """A second question where one quiz cannot test the idea: options with feedback on each,
    placed like a quiz's (the right one at a place set per lesson, not by a shuffle)."""

    key: str
    quiz: Quiz

    kind = "choice"


Exercise = Ordering | Numeric | CaseStudy | Factor | Choice


@dataclass(frozen=True)
class Lesson:
    number: int
    slug: str
    title: str
    explanation: str  # markdown
    experiment: str  # markdown: what the student changes and what to look for
    quiz: Quiz
    exercises: tuple[Exercise, ...]
    claims: tuple[tuple[str, str], ...]  # (claim id, the statement of the text it backs)
    constants: tuple[str, ...]  # decimal literals of the text that are settings, not measures


# ---------------------------------------------------------------- reading a lesson file


def _need(d: Mapping, key: str, kind: type, where: str):
    if key not in d:
        raise LessonFormatError(f"{where}: missing key '{key}'")
    value = d[key]
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise LessonFormatError(f"{where}: '{key}' must be a non-empty {kind.__name__}")
    return value.strip() if isinstance(value, str) else value


def _rng(*parts: str) -> random.Random:
    return random.Random(zlib.crc32("/".join(parts).encode()))


def shuffled(items: list, *seed: str) -> list:
    """A stable shuffle of ``items`` (the same every time for the same seed)."""
    out = list(items)
    _rng(*seed).shuffle(out)
    return out


# where each lesson's right answer stands among 4 options, by lesson number (1, 2, …): as
# often at each place, in no order a student could follow
ANSWER_PLACES = (2, 0, 3, 1, 1, 3, 0, 2, 3, 2, 1, 0, 0, 3, 2, 1)


def _quiz(d: Mapping, where: str, slug: str, number: int = 1, offset: int = 0) -> Quiz:
    options = [Option(_need(o, "text", str, w), bool(o.get("correct", False)),
                      _need(o, "feedback", str, w))
               for w, o in _mappings(d, "options", where, "option")]
    if sum(o.correct for o in options) != 1:
        raise LessonFormatError(f"{where}: exactly one option must be correct")
    wrong = [o for o in shuffled(options, slug, "quiz") if not o.correct]
    at = ANSWER_PLACES[(number - 1 + offset) % len(ANSWER_PLACES)] % len(options)
    right = next(o for o in options if o.correct)
    return Quiz(_need(d, "question", str, where), tuple(wrong[:at] + [right] + wrong[at:]))


def _mappings(d: Mapping, key: str, where: str, label: str) -> list[tuple[str, Mapping]]:
    """The entries of the list ``d[key]``, each a mapping, with where each one stands."""
    out = []
    for i, item in enumerate(_need(d, key, list, where)):
        w = f"{where}, {label} {i + 1}"
        if not isinstance(item, Mapping):
            raise LessonFormatError(f"{w}: must be a mapping")
        out.append((w, item))
    return out


def _exercise(d: Mapping, where: str, slug: str, number: int = 1) -> Exercise:
    kind = _need(d, "kind", str, where)
    key = _need(d, "key", str, where)
    if kind == "choice":  # a second question: its right answer placed as a later lesson's
        return Choice(key, _quiz(d, where, f"{slug}/{key}", number, offset=7))
    if kind == "ordering":
        events = [str(e).strip() for e in _need(d, "events", list, where)]
        if len(events) < 3 or len(set(events)) != len(events):
            raise LessonFormatError(f"{where}: 'events' needs at least 3 distinct events")
        shown = shuffled(events, slug, key)
        if shown == events:  # never show the answer
            shown = shown[1:] + shown[:1]
        return Ordering(key, _need(d, "prompt", str, where), tuple(events), tuple(shown),
                        _need(d, "explanation", str, where))
    if kind == "numeric":
        tol = float(d.get("tolerance", 0.02))
        if not 0 < tol < 1:
            raise LessonFormatError(f"{where}: 'tolerance' must be a fraction in (0, 1)")
        mistakes = d.get("mistakes") or {}
        if not isinstance(mistakes, Mapping):
            raise LessonFormatError(f"{where}: 'mistakes' must map numbers to feedback")
        return Numeric(key, _need(d, "question", str, where), _need(d, "answer", str, where),
                       tol, _need(d, "worked", str, where),
                       tuple((str(k), str(v).strip()) for k, v in mistakes.items()))
    if kind == "factor":
        choices = [(_need(c, "text", str, w), _need(c, "number", str, w))
                   for w, c in _mappings(d, "choices", where, "choice")]
        if len(choices) < 3:
            raise LessonFormatError(f"{where}: 'choices' needs at least 3 factors")
        return Factor(key, _need(d, "question", str, where), tuple(choices),
                      _need(d, "worked", str, where))
    if kind == "case":
        rubric = [RubricPoint(_need(r, "point", str, w), _need(r, "why", str, w))
                  for w, r in _mappings(d, "rubric", where, "rubric point")]
        return CaseStudy(key, _need(d, "title", str, where), _need(d, "scenario", str, where),
                         _need(d, "task", str, where), tuple(rubric),
                         _need(d, "model_answer", str, where))
    raise LessonFormatError(f"{where}: unknown exercise kind {kind!r} "
                            "(ordering, numeric, case, factor or choice)")


def read_lesson(path: Path, number: int) -> Lesson:
    """The lesson in ``path`` (YAML), numbered ``number``; LessonFormatError if malformed."""
    where = path.name
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise LessonFormatError(f"{where}: cannot be read as YAML ({e})") from e
    if not isinstance(d, Mapping):
        raise LessonFormatError(f"{where}: must hold a mapping")
    slug = _need(d, "slug", str, where)
    if slug != path.stem:
        raise LessonFormatError(f"{where}: slug '{slug}' must match the file name")
    exercises = tuple(_exercise(e, f"{where}, exercise {i + 1}", slug, number)
                      for i, e in enumerate(d.get("exercises") or []))
    if len({e.key for e in exercises}) != len(exercises):
        raise LessonFormatError(f"{where}: exercise keys must differ")
    claims = d.get("claims") or {}
    if not isinstance(claims, Mapping):
        raise LessonFormatError(f"{where}: 'claims' must map claim ids to statements")
    return Lesson(number=number, slug=slug, title=_need(d, "title", str, where),
                  explanation=_need(d, "explanation", str, where),
                  experiment=_need(d, "experiment", str, where),
                  quiz=_quiz(_need(d, "quiz", Mapping, where), f"{where}, quiz", slug,
                             number),
                  exercises=exercises,
                  claims=tuple((str(k), str(v).strip()) for k, v in claims.items()),
                  constants=tuple(str(c) for c in d.get("constants") or []))


# ---------------------------------------------------------------- filling in the numbers


def md_escape(text: str) -> str:
    """Text safe inside markdown: every markdown (and LaTeX, HTML) character escaped, and
    control and bidirectional characters written as escapes (specviz.traces.visible)."""
    return _MD_SPECIAL.sub(r"\\\1", visible(text))


def placeholders(text: str) -> set[str]:
    """The names of the numbers a template uses."""
    return {m.group(1) for m in PLACEHOLDER.finditer(text)}


def fill(text: str, numbers: Mapping[str, Any], markdown: bool = True) -> str:
    """The template with every ``{{name[:spec]}}`` replaced by ``numbers[name]`` formatted;
    strings are escaped for markdown when ``markdown``. KeyError names a missing number."""
    def one(m: re.Match) -> str:
        name, spec = m.group(1), m.group(2) or ""
        if name not in numbers:
            raise KeyError(f"the lesson's numbers have no '{name}'")
        value = numbers[name]
        if isinstance(value, str):
            if name in SNIPPETS:  # shared lesson text, markdown already
                return value
            return md_escape(value) if markdown else value
        return format(value, spec)
    return PLACEHOLDER.sub(one, text)


def templates(lesson: Lesson) -> list[str]:
    """Every text of a lesson that may hold numbers."""
    out = [lesson.explanation, lesson.experiment, lesson.quiz.question]
    out += [t for o in lesson.quiz.options for t in (o.text, o.feedback)]
    for e in lesson.exercises:
        if isinstance(e, Ordering):
            out += [e.prompt, *e.events, e.explanation]
        elif isinstance(e, Numeric):
            out += [e.question, e.worked, *(m for _, m in e.mistakes)]
        elif isinstance(e, Factor):
            out += [e.question, e.worked, *(t for t, _ in e.choices)]
        elif isinstance(e, Choice):
            out += [e.quiz.question, *(t for o in e.quiz.options for t in (o.text, o.feedback))]
        else:
            out += [e.title, e.scenario, e.task, e.model_answer]
            out += [t for r in e.rubric for t in (r.point, r.why)]
    return out + [s for _, s in lesson.claims]


def filled(lesson: Lesson, numbers: Mapping[str, Any]) -> Lesson:
    """The lesson with its numbers filled into every text (ordering events as plain text)."""
    n = {**SNIPPETS, **numbers}

    def f(text: str) -> str:
        return fill(text, n)

    def plain(text: str) -> str:
        return fill(text, n, markdown=False)

    def ex(e: Exercise) -> Exercise:
        if isinstance(e, Ordering):
            return replace(e, prompt=f(e.prompt), events=tuple(map(plain, e.events)),
                           shown=tuple(map(plain, e.shown)), explanation=f(e.explanation))
        if isinstance(e, Numeric):
            return replace(e, question=f(e.question), worked=f(e.worked),
                           mistakes=tuple((k, f(m)) for k, m in e.mistakes))
        if isinstance(e, Factor):
            return replace(e, question=f(e.question), worked=f(e.worked),
                           choices=tuple((plain(t), n) for t, n in e.choices))
        if isinstance(e, Choice):
            return replace(e, quiz=quiz_filled(e.quiz))
        return replace(e, title=f(e.title), scenario=f(e.scenario), task=f(e.task),
                       rubric=tuple(RubricPoint(f(r.point), f(r.why)) for r in e.rubric),
                       model_answer=f(e.model_answer))

    def quiz_filled(q: Quiz) -> Quiz:
        return Quiz(f(q.question), tuple(Option(f(o.text), o.correct, f(o.feedback))
                                         for o in q.options))

    return replace(lesson, explanation=f(lesson.explanation), experiment=f(lesson.experiment),
                   quiz=quiz_filled(lesson.quiz),
                   exercises=tuple(ex(e) for e in lesson.exercises),
                   claims=tuple((k, f(s)) for k, s in lesson.claims))
