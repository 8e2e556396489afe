"""A crafted trace in a real browser: every string it carries (hardware, engine, model source,
label, prompt, token texts) is shown as text. Markdown images, links, raw HTML, formulas and
Streamlit directives stay literal, and the browser never asks the host they name for
anything (every request to another host than the app's is blocked and recorded).

The trace is opened three ways: as the bundled example (home page), uploaded in the
inspector, and uploaded in the walkthrough.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlparse

import pytest

from specviz import write_traces
from tests._browser import SHOTS, browser_page, playwright_or_skip, serve_app
from tests._traces import tiny_runs
from ui.plain import WORD_JOINER

sync_api = playwright_or_skip()

BEACON = "http://beacon.invalid"
DEVICE = f"cpu ![d]({BEACON}/device.png)"
CPU = f"<img src={BEACON}/cpu.png> [click here]({BEACON}/phish)"
PATH = f"![p]({BEACON}/path.png)"
WHY = f":red[why] $x^2$ www.beacon.invalid ![w]({BEACON}/why.png)"
SOURCE = f"embedded:tiny ![t]({BEACON}/target.png)"
LABEL = f"![l]({BEACON}/label.png)"
PROMPT = f"![pr]({BEACON}/prompt.png) <script>fetch('{BEACON}/script')</script>"
TOKEN = f"<img src={BEACON}/token.png>"


def crafted_trace():
    """A real run of the tiny pair whose free-text strings all carry markup."""
    t = tiny_runs()["sampled"]
    hw = {**t.run.hardware, "device": DEVICE, "cpu": CPU,
          "engine": {"path": PATH, "cuda_graphs": False, "static_cache": False, "why": WHY}}
    hw.pop("gpu", None)
    run = dataclasses.replace(t.run, hardware=hw, target={**t.run.target, "source": SOURCE},
                              label=LABEL, prompt_text=PROMPT)
    first = t.steps[0]
    step = dataclasses.replace(first, emitted_text=[TOKEN] + first.emitted_text[1:])
    return dataclasses.replace(t, run=run, steps=(step,) + t.steps[1:])


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crafted")
    path = folder / "crafted.jsonl"
    write_traces(path, [crafted_trace()])
    return path


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, trace_file):
    yield from serve_app(tmp_path_factory, SPECVIZ_TRACES_DIR=str(trace_file.parent))


@pytest.fixture(scope="module")
def page(app_url):
    for pg in browser_page(sync_api):
        pg.outside = []
        pg.route("**/*", _only_the_app(pg.outside))
        yield pg


def _only_the_app(outside: list[str]):
    """A route handler: requests to the app's server go through; any other is recorded in
    ``outside`` and blocked."""
    def handle(route) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlparse(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(url)
            route.abort()
    return handle


def _beacons(page) -> list[str]:
    """Requests to the trace's host. (Every other host is blocked too; Streamlit itself asks
    fonts.gstatic.com for the page icon.)"""
    return [url for url in page.outside if "beacon" in url]


def _caption_text(page) -> str:
    """The captions' text as read (word joiners, which keep bare URLs from becoming links,
    are invisible)."""
    texts = page.locator("[data-testid='stCaptionContainer']").all_inner_texts()
    return " ".join(texts).replace(WORD_JOINER, "")


def _no_markup_rendered(page) -> None:
    """Nothing the trace carries became an image, a link, a formula or a coloured span."""
    main = page.locator("[data-testid='stMain']")
    for src in main.locator("img").evaluate_all("els => els.map(e => e.src)"):
        assert "beacon" not in src, src
    hrefs = main.locator("a").evaluate_all("els => els.map(e => e.href)")
    assert not [h for h in hrefs if "beacon" in h], hrefs
    assert main.locator(".katex").count() == 0


def test_home_shows_the_crafted_bundled_trace_as_text(page, app_url):
    page.goto(app_url)
    page.get_by_text("Ran on").first.wait_for()
    page.locator(".specviz-text").first.wait_for()
    captions = _caption_text(page)
    for literal in (DEVICE, CPU, PATH, WHY, SOURCE):
        assert literal in captions, (literal, captions)
    _no_markup_rendered(page)
    page.screenshot(path=str(SHOTS / "injection-home.png"), full_page=True)
    assert _beacons(page) == []


def test_inspector_upload_shows_the_crafted_trace_as_text(page, app_url, trace_file):
    page.goto(f"{app_url}/inspector")
    page.get_by_role("heading", name="Trace inspector").wait_for()
    page.locator(".st-key-insp_uploads input[type='file']").set_input_files(str(trace_file))
    page.get_by_text("One run in detail").wait_for()
    _pick_second_run(page)  # run 2 is the upload's (run 1, the bundled copy)
    page.get_by_text("Bottleneck diagnosis").wait_for()
    page.get_by_text("Ran on").first.wait_for()
    captions = _caption_text(page)
    for literal in (DEVICE, CPU, PATH, WHY):
        assert literal in captions, (literal, captions)
    _no_markup_rendered(page)
    page.screenshot(path=str(SHOTS / "injection-inspector.png"), full_page=True)
    assert _beacons(page) == []


def _pick_second_run(page) -> None:
    """Choose run 2 in the detail selectbox, once the upload has added it."""
    for _ in range(60):
        page.locator(".st-key-insp_pick [role='combobox']").click()
        options = page.get_by_role("option")
        if options.count() >= 2:
            options.nth(1).click()
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(1000)
    raise AssertionError("the uploaded run never appeared")


def test_walkthrough_upload_shows_the_crafted_trace_as_text(page, app_url, trace_file):
    page.goto(f"{app_url}/walkthrough")
    page.locator(".st-key-wt_source [role='combobox']").click()
    page.get_by_role("option", name="Upload a trace file…", exact=True).click()
    page.locator(".st-key-wt_upload input[type='file']").set_input_files(str(trace_file))
    page.locator(".st-key-wt_stage").wait_for()
    page.get_by_text("micro-step 1 of").wait_for()
    _no_markup_rendered(page)
    page.screenshot(path=str(SHOTS / "injection-walkthrough.png"), full_page=True)
    assert _beacons(page) == []


def test_an_oversized_upload_is_refused_in_plain_words(page, app_url, tmp_path):
    from specviz.limits import MAX_UPLOAD_MB
    big = tmp_path / "big.jsonl"
    big.write_bytes(b" " * (MAX_UPLOAD_MB * 2**20 + 1))
    page.goto(f"{app_url}/inspector")
    page.get_by_role("heading", name="Trace inspector").wait_for()
    page.get_by_text(f"up to {MAX_UPLOAD_MB} MB each").wait_for()
    page.locator(".st-key-insp_uploads input[type='file']").set_input_files(str(big))
    page.get_by_text(f"{MAX_UPLOAD_MB}.0MB or smaller").wait_for()
    page.screenshot(path=str(SHOTS / "upload-too-large.png"))
    assert page.locator("[data-testid='stException']").count() == 0
