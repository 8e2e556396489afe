"""Screenshots of the teaching pages for the README (Walkthrough and Lessons), taken in
headless Chromium from the bundled traces; no model is loaded.

Usage:  PYTHONPATH=. python scripts/teaching_screenshots.py
Saves assets/images/walkthrough.png and assets/images/lessons.png.
"""

from __future__ import annotations

import time
from pathlib import Path

from app_screenshots import app_page  # same folder

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "images"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with app_page(120_000) as (url, page):
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
    print(f"saved {OUT / 'walkthrough.png'} and {OUT / 'lessons.png'}")


if __name__ == "__main__":
    main()
