"""Screenshots of the teaching pages for the README (Walkthrough and Lessons), taken in
headless Chromium from the bundled traces; no model is loaded.

Usage:  PYTHONPATH=. python scripts/teaching_screenshots.py
Saves assets/images/walkthrough.png and assets/images/lessons.png.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from app_screenshots import ARGS, _port  # same folder
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "images"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    port = _port()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py",
                               "--server.headless", "true", "--server.port", str(port),
                               "--server.fileWatcherType", "none"], cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        time.sleep(4)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(f"{url}/walkthrough")
            page.get_by_role("heading", name="Walkthrough").wait_for()
            nxt = page.locator(".st-key-wt_next button")
            nxt.wait_for()
            for _ in range(6):  # through the drafts and the verify pass, to the judging
                nxt.click()
                time.sleep(0.8)
            time.sleep(2)
            page.screenshot(path=str(OUT / "walkthrough.png"))
            page.goto(f"{url}/lessons?lesson=4")
            page.get_by_role("heading", name="Lessons").wait_for()
            time.sleep(4)
            page.screenshot(path=str(OUT / "lessons.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"saved {OUT / 'walkthrough.png'} and {OUT / 'lessons.png'}")


if __name__ == "__main__":
    main()
