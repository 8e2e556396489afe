"""Screenshots of the app's main views for the README, taken in headless Chromium.

Usage:  PYTHONPATH=. python scripts/app_screenshots.py [--target embedded:smollm2-135m-instruct]

Starts `streamlit run app.py`; takes the Overview (the bundled run that leads it), runs a
preset on the Live page with the chosen target (greedy, with the target-only baseline) and
takes its views, then the Trace inspector, Theory, Toy lab and Walkthrough pages; saves PNGs
into assets/images/ (lessons.png comes from scripts/teaching_screenshots.py).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import sync_playwright

from ui.common import PRESETS

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "images"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_page(timeout_ms: int):
    """Start `streamlit run app.py` on a free port and yield (base URL, a Chromium page)."""
    port = _port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py",
                               "--server.headless", "true", "--server.port", str(port),
                               "--server.fileWatcherType", "none"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(4)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(timeout_ms)
            yield f"http://127.0.0.1:{port}", page
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def choose(page, key: str, option: str) -> None:
    """Pick an option of the selectbox with this widget key."""
    page.locator(f".st-key-{key} [role='combobox']").click()
    page.get_by_role("option", name=option, exact=True).click()


def open_live(page, url: str, preset: str) -> None:
    """The Live page with the prompt preset chosen (its prompt in the text area)."""
    page.goto(f"{url}/live")
    page.get_by_role("heading", name="Live decoding").wait_for()
    choose(page, "preset", preset)
    page.wait_for_function("p => document.querySelector('.st-key-prompt textarea')"
                           ".value === p", arg=PRESETS[preset])


def live_run(page, url: str, target: str, preset: str) -> None:
    """Run the preset on the Live page with the target-only baseline; wait for the views."""
    open_live(page, url, preset)
    choose(page, "target", target)  # the baseline (a measurement over rounds) is on
    page.locator(".st-key-run button").click()
    page.locator(".st-key-live_dl_trace").wait_for(state="attached")  # run + baseline done
    page.wait_for_timeout(2000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--preset", default="code", choices=list(PRESETS))
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with app_page(900_000) as (url, page):
        page.goto(url)
        page.get_by_role("heading", name="speculative decoding, step by step").wait_for()
        page.locator(".st-key-home_timeline .js-plotly-plot").wait_for()
        page.wait_for_timeout(2000)
        page.screenshot(path=str(OUT / "overview.png"))
        live_run(page, url, args.target, args.preset)
        page.locator(".specviz-last-run").scroll_into_view_if_needed()
        page.mouse.move(800, 500)
        page.mouse.wheel(0, -250)  # the Run button above the run's first views
        page.wait_for_timeout(1000)
        page.screenshot(path=str(OUT / "live.png"))
        page.locator(".specviz-text").first.screenshot(path=str(OUT / "colored-text.png"))
        page.locator(".st-key-live_timeline").screenshot(path=str(OUT / "timeline.png"))
        for tab, name in (("Acceptance", "acceptance"), ("Verify inspector", "inspector"),
                          ("Latency", "latency")):
            page.get_by_role("tab", name=tab).first.click()
            page.wait_for_timeout(4000)
            panel = page.locator("[role='tabpanel']:visible").first
            panel.screenshot(path=str(OUT / f"{name}.png"))
        page.goto(f"{url}/inspector")
        page.get_by_role("heading", name="Trace inspector").wait_for()
        page.locator(".st-key-insp_shares .js-plotly-plot").wait_for()
        page.wait_for_timeout(3000)
        page.get_by_text("Bottleneck diagnosis").first.scroll_into_view_if_needed()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(OUT / "trace-inspector.png"))
        page.set_viewport_size({"width": 1400, "height": 1700})
        page.goto(f"{url}/theory")
        page.locator(".js-plotly-plot").first.wait_for()
        page.locator(".st-key-th_run [role='combobox']").click()
        page.keyboard.type("h200-smollm2-draft-greedy.jsonl: 5.")  # the code prompt
        page.keyboard.press("Enter")
        page.wait_for_timeout(4000)
        page.screenshot(path=str(OUT / "theory.png"))
        page.goto(f"{url}/toy_lab")
        page.locator(".js-plotly-plot").first.wait_for()
        page.get_by_text("buggy: also accept whenever q ≥ 0.5").click()
        page.wait_for_timeout(4000)
        page.screenshot(path=str(OUT / "toy-lab.png"))
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.goto(f"{url}/walkthrough")
        page.get_by_role("heading", name="Walkthrough").wait_for()
        nxt = page.locator(".st-key-wt_next button")
        nxt.wait_for()
        for _ in range(6):  # through the drafts and the verify pass, to the judging
            nxt.click()
            page.wait_for_timeout(800)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(OUT / "walkthrough.png"))
    print("\n".join(str(p.relative_to(ROOT)) for p in sorted(OUT.glob("*.png"))))


if __name__ == "__main__":
    main()
