"""End to end in a real browser: headless Chromium (Debian's) driven by Playwright opens the
app, runs a decode with the tiny random models, and finds the timeline and the colored text.

Screenshots are kept in artifacts/screenshots/ as test artefacts.
"""

from pathlib import Path

import pytest

from specviz import read_traces
from tests._browser import SHOTS, browser_page, playwright_or_skip, serve_app

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


def test_stop_keeps_the_partial_trace(page, app_url):
    page.goto(f"{app_url}/live")
    page.get_by_role("heading", name="Live decoding").wait_for()
    _choose(page, "target", "embedded:tiny-random-target")
    thumb = page.locator(".st-key-max_new_tokens input[type='range']")
    thumb.focus()
    thumb.press("End")  # 512 tokens: long enough to stop it part way
    page.wait_for_timeout(500)
    page.locator(".st-key-run button").click()
    page.locator(".specviz-text span").first.wait_for()  # the first steps are painted
    page.locator(".st-key-stop button").click()
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
