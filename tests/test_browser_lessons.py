"""Lessons end to end in a real browser (Debian's headless Chromium via Playwright): open the
Lessons page, read the explanation, change the experiment, answer the quiz wrong and right,
go on to the next lesson; then the exercises: put a step's events in order, compute a
speedup, write a case-study answer and compare it with the rubric. Screenshots go to
artifacts/screenshots/.
"""


import pytest

from specviz.teaching import lessons as L
from specviz.teaching.lessons import runs as R
from tests._browser import SHOTS, browser_page, playwright_or_skip, serve_app

sync_api = playwright_or_skip()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    yield from serve_app(tmp_path_factory)


@pytest.fixture(scope="module")
def page(app_url):
    yield from browser_page(sync_api)


def _filled(number: int) -> tuple[L.Lesson, dict]:
    lesson = L.lesson(number)
    files = R.load_files(L.files_of(lesson))
    return L.render(lesson, files)[0], L.numbers(lesson, files)


def test_one_lesson_end_to_end(page, app_url):
    first, second = _filled(1)[0], L.lesson(2)
    page.goto(f"{app_url}/lessons")
    page.get_by_role("heading", name=f"1. {first.title}").wait_for()
    page.get_by_text("Speculative decoding pairs two language models").wait_for()
    page.get_by_text("Lesson 1 of 15").wait_for()
    page.locator(".st-key-l1_roles .js-plotly-plot").wait_for()
    n = len(first.claims)
    page.get_by_text(f"What this lesson claims, checked on its runs ({n} of {n} hold)").wait_for()
    page.screenshot(path=str(SHOTS / "lesson-1.png"), full_page=True)

    # the experiment: the same drafts through a renumbered vocabulary
    page.get_by_text("Replayed over every step of the greedy runs: 87").wait_for()
    page.locator(".st-key-l1_vocab").get_by_text("same tokens, numbered differently").click()
    page.get_by_text("Replayed over every step of the greedy runs: 0").wait_for()

    # the quiz: a wrong answer, then the right one, each with its own feedback
    quiz = page.locator(".st-key-quiz_1")
    wrong = next(o for o in first.quiz.options if not o.correct)
    right = next(o for o in first.quiz.options if o.correct)
    quiz.get_by_text(wrong.text, exact=True).click()
    page.get_by_text(f"Not quite. {wrong.feedback}").wait_for()
    quiz.get_by_text(right.text, exact=True).click()
    page.get_by_text(f"Correct. {right.feedback}").wait_for()
    page.get_by_text("quizzes answered correctly: 1 of 15").wait_for()
    page.screenshot(path=str(SHOTS / "lesson-1-answered.png"), full_page=True)

    # on to the next lesson
    page.locator(".st-key-lesson_next button").click()
    page.get_by_role("heading", name=f"2. {second.title}").wait_for()
    page.get_by_text("Lesson 2 of 15").wait_for()
    assert "lesson=2" in page.url
    page.locator(".st-key-l2_q .js-plotly-plot").wait_for()
    page.screenshot(path=str(SHOTS / "lesson-2.png"), full_page=True)

    # a reload keeps the lesson and the progress (held in the address)
    assert "quizzes=1" in page.url
    page.reload()
    page.get_by_text("Lesson 2 of 15").wait_for()
    page.get_by_text("quizzes answered correctly: 1 of 15").wait_for()


def _pick(page, box, text: str, tries: int = 4) -> None:
    """Choose one option of a multiselect: open its list (the chevron) unless it is open,
    click the option; again if a rerun of the page closed the list first."""
    for attempt in range(tries):
        if box.locator("[role='combobox']").get_attribute("aria-expanded") != "true":
            box.locator("button[aria-label='Open']").click()
        try:
            page.locator("[role='option']").get_by_text(text, exact=True).click(timeout=5_000)
            return
        except sync_api.TimeoutError:
            if attempt == tries - 1:
                raise


def _place(page, box, text: str, placed: str, tries: int = 4) -> None:
    """Pick an option, then wait until the page shows ``placed`` (it counted the pick); a pick
    that a rerun of the page swallowed (the option still offered) is made again."""
    for attempt in range(tries):
        _pick(page, box, text)
        try:
            page.get_by_text(placed).wait_for(timeout=15_000)
            return
        except sync_api.TimeoutError:
            if attempt == tries - 1:
                raise
            page.keyboard.press("Escape")  # close the list; the next try opens it afresh


def test_ordering_exercise_in_the_browser(page, app_url):
    ex = _filled(5)[0].exercises[0]
    page.goto(f"{app_url}/lessons?lesson=5")
    box = page.locator(".st-key-ex_5_cycle")
    page.get_by_text(f"0 of {len(ex.events)} events placed.").wait_for()  # the page is drawn
    for i, event in enumerate(ex.events, start=1):  # each pick counted before the next
        _place(page, box, event, f"{i} of {len(ex.events)} events placed."
               if i < len(ex.events) else "Correct order.")
    page.get_by_text("exercises done: 1 of").wait_for()
    box.screenshot(path=str(SHOTS / "lesson-5-ordering.png"))


def test_numeric_exercise_in_the_browser(page, app_url):
    _, nums = _filled(11)
    page.goto(f"{app_url}/lessons?lesson=11")
    field = page.locator(".st-key-ex_11_speedup input")
    field.wait_for()
    field.fill(f"{nums['cpu_pred'] * 2:.3f}")
    field.press("Enter")
    page.get_by_text("Not quite:").wait_for()
    field.fill(f"{nums['cpu_pred']:.3f}")
    field.press("Enter")
    page.get_by_text(f"Correct: {nums['cpu_pred']:.3f}").wait_for()


def test_case_study_in_the_browser(page, app_url):
    ex = next(e for e in _filled(12)[0].exercises if isinstance(e, L.CaseStudy))
    base = "ex_12_production-service"
    page.goto(f"{app_url}/lessons?lesson=12")
    answer = page.locator(f".st-key-{base}_answer textarea")
    answer.wait_for()
    answer.fill("Ship the target alone: it is the only option within the p99 objective.")
    answer.press("Control+Enter")
    # the "press Ctrl+Enter to apply" hint goes once the app has the text
    page.locator(f".st-key-{base}_answer").get_by_text("to apply").wait_for(state="hidden")
    page.locator(f".st-key-{base}_reveal button").click()
    page.get_by_text("Rubric.").wait_for()
    page.locator(f".st-key-{base}_point_0 label").click()
    page.get_by_text(f"Your answer covers 1 of {len(ex.rubric)} points").wait_for()
    page.locator(f".st-key-{base}_answer").locator("xpath=..").screenshot(
        path=str(SHOTS / "lesson-12-case.png"))
