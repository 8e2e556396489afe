"""Screenshots of the app's main views for the README, taken in headless Chromium.

Usage:  PYTHONPATH=. python scripts/app_screenshots.py [--target embedded:smollm2-135m-instruct]

Starts `streamlit run app.py`, runs the repetitive-summary preset with the chosen target
(greedy, with the target-only baseline), and saves PNGs into assets/images/.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--preset", default="story", choices=list(PRESETS))
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with app_page(600_000) as (url, page):
        page.goto(f"{url}/live")
        page.get_by_role("heading", name="Live decoding").wait_for()
        page.locator(".st-key-target [role='combobox']").click()
        page.get_by_role("option", name=args.target, exact=True).click()
        page.locator(".st-key-preset [role='combobox']").click()
        page.get_by_role("option", name=args.preset, exact=True).click()
        page.wait_for_function("p => document.querySelector('.st-key-prompt textarea')"
                               ".value === p", arg=PRESETS[args.preset])
        page.locator(".st-key-with_baseline label").click()
        page.wait_for_timeout(1000)
        page.locator(".st-key-run button").click()
        page.locator(".st-key-live_dl_trace").wait_for(state="attached")  # run + baseline done
        page.wait_for_timeout(2000)
        page.screenshot(path=str(OUT / "live.png"))
        page.locator(".specviz-text").first.screenshot(path=str(OUT / "colored-text.png"))
        page.locator(".st-key-live_timeline").screenshot(path=str(OUT / "timeline.png"))
        for tab, name in (("Acceptance", "acceptance"), ("Verify inspector", "inspector"),
                          ("Latency", "latency")):
            page.get_by_role("tab", name=tab).click()
            page.wait_for_timeout(4000)
            panel = page.locator("[role='tabpanel']:visible").first
            panel.screenshot(path=str(OUT / f"{name}.png"))
        for path, name in (("theory", "theory"), ("toy_lab", "toy-lab")):
            page.goto(f"{url}/{path}")
            page.locator(".js-plotly-plot").first.wait_for()
            page.wait_for_timeout(2000)
            page.screenshot(path=str(OUT / f"{name}.png"))
    print("\n".join(str(p.relative_to(ROOT)) for p in sorted(OUT.glob("*.png"))))


if __name__ == "__main__":
    main()
