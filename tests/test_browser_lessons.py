"""One lesson end to end in a real browser (Debian's headless Chromium via Playwright): open
the Lessons page, read the explanation, change the experiment, answer the quiz wrong and
right, read the feedback, go on to the next lesson. Screenshots go to artifacts/screenshots/.
"""


import pytest

from specviz import lessons as L
from tests._browser import SHOTS, browser_page, playwright_or_skip, serve_app

sync_api = playwright_or_skip()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    yield from serve_app(tmp_path_factory)


@pytest.fixture(scope="module")
def page(app_url):
    yield from browser_page(sync_api)


def test_one_lesson_end_to_end(page, app_url):
    first, second = L.lesson(1), L.lesson(2)
    page.goto(f"{app_url}/lessons")
    page.get_by_role("heading", name=f"1. {first.title}").wait_for()
    # the explanation
    page.get_by_text("Speculative decoding pairs two language models").wait_for()
    page.get_by_text("Lesson 1 of 12").wait_for()
    page.locator(".st-key-l1_roles .js-plotly-plot").wait_for()
    assert page.get_by_text("One tokenizer.").count() == 1  # the draft model has q
    page.screenshot(path=str(SHOTS / "lesson-1.png"), full_page=True)

    # the experiment: prompt lookup drafts without a model and without q
    page.locator(".st-key-l1_drafter").get_by_text("prompt lookup", exact=True).click()
    page.get_by_text("No draft distribution.").wait_for()
    assert page.get_by_text("One tokenizer.").count() == 0

    # the quiz: a wrong answer, then the right one, each with its own feedback
    quiz = page.locator(".st-key-quiz_1")
    wrong = next(o for o in first.quiz.options if not o.correct)
    right = next(o for o in first.quiz.options if o.correct)
    quiz.get_by_text(wrong.text, exact=True).click()
    page.get_by_text(f"Not quite. {wrong.feedback}").wait_for()
    quiz.get_by_text(right.text, exact=True).click()
    page.get_by_text(f"Correct. {right.feedback}").wait_for()
    page.get_by_text("quizzes answered correctly: 1 of 12").wait_for()
    page.screenshot(path=str(SHOTS / "lesson-1-answered.png"), full_page=True)

    # on to the next lesson
    page.locator(".st-key-lesson_next button").click()
    page.get_by_role("heading", name=f"2. {second.title}").wait_for()
    page.get_by_text("Lesson 2 of 12").wait_for()
    assert "lesson=2" in page.url
    page.locator(".st-key-l2_cost .js-plotly-plot").wait_for()
    page.screenshot(path=str(SHOTS / "lesson-2.png"), full_page=True)
