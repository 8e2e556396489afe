"""The Lessons screenshot for the README, taken in headless Chromium from the bundled traces;
no model is loaded. (The Walkthrough's comes with the other pages' from app_screenshots.py.)

Usage:  PYTHONPATH=. python scripts/teaching_screenshots.py
Saves assets/images/lessons.png.
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
    print(f"saved {OUT / 'lessons.png'}")


if __name__ == "__main__":
    main()
