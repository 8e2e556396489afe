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
        # lesson 3: the verify pass measured on the CPU and on the H200, and the quiz that
        # asks for a prediction from those numbers
        page.goto(f"{url}/lessons?lesson=3")
        page.locator(".st-key-l3_cost .js-plotly-plot").wait_for()
        page.locator(".st-key-quiz_3").get_by_text("About the same as both ends").click()
        page.get_by_text("Correct.").wait_for()
        time.sleep(2)
        page.locator(".st-key-l3_cost").scroll_into_view_if_needed()
        page.mouse.wheel(0, 250)
        time.sleep(1)
        page.screenshot(path=str(OUT / "lessons.png"))
    print(f"saved {OUT / 'walkthrough.png'} and {OUT / 'lessons.png'}")


if __name__ == "__main__":
    main()
