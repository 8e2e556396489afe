"""One lesson end to end in a real browser (Debian's headless Chromium via Playwright): open
the Lessons page, read the explanation, change the experiment, answer the quiz wrong and
right, read the feedback, go on to the next lesson. Screenshots go to artifacts/screenshots/.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from specviz import lessons as L

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "artifacts" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is absent (install Debian's chromium to run the browser test)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
             "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited: {log.read_text()[-2000:]}")
            time.sleep(0.3)
    else:
        proc.terminate()
        pytest.fail("streamlit did not start within 60 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def page(app_url):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(120_000)
        yield pg
        browser.close()


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
