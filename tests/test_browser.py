"""End to end in a real browser: headless Chromium (Debian's) driven by Playwright opens the
app, runs a decode with the tiny random models, and finds the timeline and the colored text.

Screenshots are kept in artifacts/screenshots/ as test artefacts.
"""

from pathlib import Path

import pytest

from specviz import read_traces
from tests._browser import LOGS, SHOTS, browser_page, playwright_or_skip, serve_app

sync_api = playwright_or_skip()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    no_traces = str(tmp_path_factory.mktemp("no-traces"))
    yield from serve_app(tmp_path_factory, SPECVIZ_TRACES_DIR=no_traces)


@pytest.fixture(scope="module")
def page(app_url):
    yield from browser_page(sync_api)


def _choose(page, key: str, option: str) -> None:
    page.locator(f".st-key-{key} [role='combobox']").click()
    page.get_by_role("option", name=option, exact=True).click()


def test_landing_page(page, app_url):
    page.goto(app_url)
    page.get_by_text("speculative decoding, step by step").wait_for()
    page.get_by_text("No bundled example trace yet").wait_for()
    page.screenshot(path=str(SHOTS / "landing.png"))


def test_live_decode_shows_timeline_and_colored_text(page, app_url):
    page.goto(f"{app_url}/live")
    page.get_by_role("heading", name="Live decoding").wait_for()
    _choose(page, "target", "embedded:tiny-random-target")
    thumb = page.locator(".st-key-max_new_tokens input[type='range']")
    thumb.focus()
    thumb.press("Home")  # 8 tokens
    thumb.press("ArrowRight")  # 16 tokens
    page.wait_for_timeout(500)
    page.locator(".st-key-run button").click()
    text = page.locator(".specviz-text").first
    text.wait_for()
    page.locator(".st-key-live_timeline .js-plotly-plot").wait_for()
    page.locator(".st-key-live_timeline .heatmaplayer").wait_for(state="attached")
    spans = page.locator(".specviz-text span")
    assert spans.count() >= 16  # every emitted token is a styled span
    assert page.locator(".specviz-text span[title*='step 0']").count() >= 1
    page.get_by_text("mean accepted length").first.wait_for()
    page.screenshot(path=str(SHOTS / "live.png"), full_page=True)
    page.locator(".st-key-live_timeline").screenshot(path=str(SHOTS / "timeline.png"))
    # the trace and a figure download as files
    page.get_by_role("tab", name="Download").click()
    with page.expect_download() as dl:
        page.locator(".st-key-live_dl_trace button").click()
    traces = read_traces(dl.value.path())
    assert traces[0].run.target["source"] == "embedded:tiny-random-target"
    assert traces[0].summary.n_emitted == 16
    with page.expect_download() as dl:
        page.locator(".st-key-live_dl_fig button").click()
    assert "plotly" in Path(dl.value.path()).read_text()[:200_000].lower()


LAST_RUN = ("() => { const e = document.querySelector('.specviz-last-run');"
            " return e ? e.dataset.runId : ''; }")


def _run_and_wait(page) -> str:
    """Click Run and wait for this run's result; returns its run id."""
    before = page.evaluate(LAST_RUN)
    page.locator(".st-key-run button").click()
    page.wait_for_function(f"() => !['', '{before}'].includes(({LAST_RUN})()) || "
                           "document.body.innerText.includes('Cannot load the models')",
                           timeout=600_000)
    assert page.get_by_text("Cannot load the models").count() == 0
    page.locator(".specviz-text").first.wait_for()
    return page.evaluate(LAST_RUN)


def _set_tokens(page, presses: int) -> None:
    thumb = page.locator(".st-key-max_new_tokens input[type='range']")
    thumb.focus()
    thumb.press("Home")  # 8 tokens
    for _ in range(presses):
        thumb.press("ArrowRight")  # + 8 each


def test_real_pair_runs_twice_and_from_a_second_session(page, app_url):
    """The default pair (embedded target + shipped draft): Run, Run again, then Run from a
    second session; every run decodes, and the server log stays quiet."""
    page.goto(f"{app_url}/live")
    page.get_by_role("heading", name="Live decoding").wait_for()
    _set_tokens(page, 1)  # 16 tokens
    ids = [_run_and_wait(page), _run_and_wait(page)]
    other = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        fresh = other.new_page()
        fresh.set_default_timeout(600_000)
        fresh.goto(f"{app_url}/live")
        fresh.get_by_role("heading", name="Live decoding").wait_for()
        _set_tokens(fresh, 1)
        ids.append(_run_and_wait(fresh))
        assert fresh.get_by_text("Cannot load the models").count() == 0
        fresh.screenshot(path=str(SHOTS / "live-real-second-session.png"), full_page=True)
    finally:
        other.close()
    assert len(set(ids)) == 3 and all(ids)
    assert page.get_by_text("Cannot load the models").count() == 0
    assert page.get_by_text("16 tokens at").count() == 1
    log = LOGS[app_url].read_text()
    for alarming in ("Loading weights", "clean_up_tokenization_spaces", "Traceback",
                     "Error", "%|"):
        assert alarming not in log, log[-3000:]


def test_run_right_after_a_slider_uses_the_value_shown(page, app_url):
    """As it was found: after a first run (a page full of views, slow to rerun), keys on the
    max-tokens slider, then Run at once. The run uses the value the slider shows (the
    settings are one form, read together when Run is clicked)."""
    page.goto(f"{app_url}/live")
    page.get_by_role("heading", name="Live decoding").wait_for()
    _set_tokens(page, 1)
    _run_and_wait(page)
    before = page.evaluate(LAST_RUN)
    _set_tokens(page, 0)
    thumb = page.locator(".st-key-max_new_tokens input[type='range']")
    for _ in range(40):
        thumb.press("ArrowRight")  # 8 + 40 × 8 = 328 tokens
    shown = page.locator(".st-key-max_new_tokens [data-testid='stSliderThumbValue']")
    assert shown.inner_text() == "328"
    page.locator(".st-key-run button").click()
    # the run's end, or its live view past step 0 (then Stop: no need to wait for 328 tokens;
    # the first run's text stays on the page until the live view's first paint)
    page.wait_for_function(f"() => !['', '{before}'].includes(({LAST_RUN})()) || "
                           "/step [1-9]/.test(document.querySelector('.sv-status')"
                           "?.textContent || '')", timeout=300_000)
    stop = page.locator(".st-key-stop").get_by_role("button", name="Stop")
    if stop.count():
        stop.click()
    page.wait_for_function(f"() => !['', '{before}'].includes(({LAST_RUN})())",
                           timeout=300_000)
    page.get_by_role("tab", name="Download").click()
    with page.expect_download() as dl:
        page.locator(".st-key-live_dl_trace button").click()
    assert read_traces(dl.value.path())[0].run.config["max_new_tokens"] == 328


def test_stop_keeps_the_partial_trace(page, app_url):
    page.goto(f"{app_url}/live")
    page.get_by_role("heading", name="Live decoding").wait_for()
    _choose(page, "target", "embedded:tiny-random-target")
    thumb = page.locator(".st-key-max_new_tokens input[type='range']")
    thumb.focus()
    thumb.press("End")  # 512 tokens: long enough to stop it part way
    page.wait_for_timeout(500)
    page.locator(".st-key-run button").click()
    page.wait_for_function("() => /step [1-9]/.test(document.querySelector('.sv-status')"
                           "?.textContent || '')")  # the first steps are painted
    page.locator(".st-key-stop").get_by_role("button", name="Stop").click()
    page.get_by_text("the partial trace is kept").wait_for()
    page.locator(".st-key-live_timeline .js-plotly-plot").wait_for()
    page.screenshot(path=str(SHOTS / "stopped.png"))


def test_sessions_keep_their_own_runs(page, app_url):
    """The previous tests ran decodes in this session; a new session starts empty."""
    other = page.context.browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        fresh = other.new_page()
        fresh.set_default_timeout(120_000)
        fresh.goto(f"{app_url}/live")
        fresh.get_by_text("then press Run").wait_for()
        assert fresh.locator(".specviz-text").count() == 0
    finally:
        other.close()
    page.goto(f"{app_url}/live")  # a new page load is a new session too, by design
    page.get_by_role("heading", name="Live decoding").wait_for()


def test_toy_lab_in_browser(page, app_url):
    page.goto(f"{app_url}/toy_lab")
    page.get_by_role("heading", name="Toy lab").wait_for()
    page.locator(".st-key-toy_dist_fig .js-plotly-plot").wait_for()
    page.screenshot(path=str(SHOTS / "toy_lab.png"), full_page=True)
