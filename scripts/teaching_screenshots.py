"""The Lessons screenshot for the README, taken in headless Chromium from the bundled traces;
no model is loaded. (The Walkthrough's comes with the other pages' from app_screenshots.py.)

Usage:  PYTHONPATH=. python scripts/teaching_screenshots.py [--lessons 2,4,7]
Saves assets/images/lessons.png; with --lessons, instead, each named lesson's explanation,
quiz and exercises at 1400 px and at 1024×768 in artifacts/screenshots/lessons/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from app_screenshots import app_page  # same folder

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "images"
SHOTS = ROOT / "artifacts" / "screenshots" / "lessons"
SIZES = {"1400": {"width": 1400, "height": 1000}, "1024": {"width": 1024, "height": 768}}


def lesson_views(page, url: str, numbers: list[int]) -> None:
    """Each lesson's top, its quiz and its exercises, at each size, as PNG files."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        for n in numbers:
            page.goto(f"{url}/lessons?lesson={n}")
            page.get_by_role("heading", name="Check your understanding").wait_for()
            time.sleep(2)
            page.screenshot(path=str(SHOTS / f"lesson{n:02d}-top-{size}.png"))
            for part, heading in (("quiz", "Check your understanding"),
                                  ("exercises", "Exercises")):
                target = page.get_by_role("heading", name=heading)
                if target.count():
                    target.first.scroll_into_view_if_needed()
                    time.sleep(1)
                    page.screenshot(path=str(SHOTS / f"lesson{n:02d}-{part}-{size}.png"))
    print(f"saved {SHOTS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lessons", default="", help="lesson numbers, comma-separated")
    args = parser.parse_args()
    numbers = [int(x) for x in args.lessons.split(",") if x.strip()]
    OUT.mkdir(parents=True, exist_ok=True)
    with app_page(120_000) as (url, page):
        if numbers:
            lesson_views(page, url, numbers)
            return
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
