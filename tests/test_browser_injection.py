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
    page.get_by_text("Trace and run").first.click()  # the expander starts closed
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


# ---------------------------------------------------------------- Plotly's HTML, bidi controls
# Plotly draws a subset of HTML in every label, legend, axis and hover text: a trace whose
# strings hold <span style="background-image:url(...)"> or <a href> made the browser fetch
# from a host of the trace's choosing and showed links. Here the host is a listener on
# 127.0.0.1 (the app's own address, which the route above lets through): it must hear
# nothing, no link may point at it, and no U+202E may reach the page's text.

@pytest.fixture(scope="module")
def listener():
    """A tiny HTTP server on 127.0.0.1 that records every path asked of it."""
    import http.server
    import threading
    heard: list[str] = []

    class Ear(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the server's own name
            heard.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ear)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.heard = heard
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def hostile_file(tmp_path_factory, listener):
    from tests._hostile import hostile
    host = f"http://127.0.0.1:{listener.server_address[1]}"
    folder = tmp_path_factory.mktemp("hostile-plotly")
    runs = tiny_runs()
    path = folder / "hostile.jsonl"
    write_traces(path, [hostile(runs["sampled"], host), hostile(runs["sampled-base"], host)])
    return path


@pytest.fixture(scope="module")
def hostile_url(tmp_path_factory, hostile_file):
    yield from serve_app(tmp_path_factory, SPECVIZ_TRACES_DIR=str(hostile_file.parent))


@pytest.fixture(scope="module")
def open_page(page, hostile_url):
    """A second page of the same browser (one Playwright per process)."""
    pg = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.set_default_timeout(120_000)

    def only_app(route) -> None:  # the app, and the listener (127.0.0.1 too) let through
        u = urlparse(route.request.url)
        if route.request.url.startswith(("data:", "blob:")) or u.hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()
    pg.route("**/*", only_app)
    yield pg
    pg.close()


def _nothing_fetched_or_linked(page, listener) -> None:
    from tests._hostile import RLO
    page.wait_for_timeout(2000)  # CSS images load after the SVG is drawn
    main = page.locator("[data-testid='stMain']")
    hrefs = main.locator("a").evaluate_all(
        "els => els.map(e => e.href || e.getAttribute('xlink:href') || '')")
    port = str(listener.server_address[1])
    assert not [h for h in hrefs if port in h], hrefs
    styled = main.locator(f"[style*='127.0.0.1:{port}']").count()  # Plotly's own: url(#clip)
    assert styled == 0
    assert RLO not in main.inner_text()
    assert listener.heard == [], listener.heard


def _hover_every_plot(page) -> None:
    """Move the mouse over each chart, so that hover labels are drawn too."""
    page.wait_for_timeout(1500)  # the page settled after its last rerun
    for plot in page.locator(".js-plotly-plot").all()[:12]:
        try:
            box = plot.bounding_box(timeout=5000)
        except sync_api.Error:  # redrawn meanwhile
            continue
        if box:
            for fx in (0.3, 0.5, 0.7):
                page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * 0.5)
                page.wait_for_timeout(150)


def test_plotly_draws_a_hostile_trace_as_text_on_the_home_page(open_page, hostile_url,
                                                                 listener):
    page = open_page
    page.goto(hostile_url)
    page.get_by_text("Ran on").first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for(state="attached")
    page.locator(".specviz-text").first.wait_for()
    _hover_every_plot(page)
    text = page.locator(".specviz-text").first.inner_text()
    assert "\\u202e12345" in text  # shown as an escape, the digits in their order
    _nothing_fetched_or_linked(page, listener)
    page.screenshot(path=str(SHOTS / "injection-plotly-home.png"), full_page=True)


def test_plotly_draws_a_hostile_trace_as_text_in_the_inspector(open_page, hostile_url,
                                                                 listener):
    page = open_page
    page.goto(f"{hostile_url}/inspector")
    page.get_by_text("One run in detail").wait_for()
    page.get_by_text("Bottleneck diagnosis").wait_for()
    page.locator(".js-plotly-plot").first.wait_for(state="attached")
    for tab in page.get_by_role("tab").all():
        tab.click()
        page.wait_for_timeout(500)
        _hover_every_plot(page)
    _nothing_fetched_or_linked(page, listener)


def test_plotly_draws_a_hostile_trace_as_text_in_the_walkthrough(open_page, hostile_url,
                                                                   listener):
    page = open_page
    page.goto(f"{hostile_url}/walkthrough")
    page.get_by_text("micro-step 1 of").wait_for()
    for _ in range(6):
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(400)
    _hover_every_plot(page)
    _nothing_fetched_or_linked(page, listener)
