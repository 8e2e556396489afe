"""Screenshots of the token-tree views, taken in headless Chromium: a dynamic tree run on
the Live page (its Token tree and Acceptance tabs), the walkthrough of one of its steps, and
lesson 14.

Usage:  PYTHONPATH=. python scripts/tree_screenshots.py [--out DIR] [--drafter D] [--tree T]
(assets/images/ by default; the README shows tree.png)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app_screenshots import OUT, app_page, choose, open_live


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--drafter", default="", help="a Drafter option (default: auto)")
    ap.add_argument("--tree", default="dynamic tree, 16 nodes (EAGLE-2)",
                    help="a Draft shape option")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with app_page(900_000) as (url, page):
        open_live(page, url, "explanation")
        choose(page, "tree", args.tree)
        if args.drafter:
            choose(page, "drafter", args.drafter)
        page.locator(".st-key-run button").click()  # the baseline is on by default
        page.locator(".st-key-live_dl_trace").wait_for(state="attached")
        page.wait_for_timeout(2000)
        page.get_by_role("tab", name="Token tree").first.click()
        page.wait_for_timeout(3000)
        page.locator("[role='tabpanel']:visible").first.screenshot(path=str(out / "tree.png"))
        page.get_by_role("tab", name="Acceptance").first.click()
        page.wait_for_timeout(3000)
        page.locator("[role='tabpanel']:visible").first.screenshot(
            path=str(out / "tree-acceptance.png"))
        page.get_by_role("link", name="Walkthrough").click()  # same session: the live run
        page.get_by_role("heading", name="Walkthrough").wait_for()
        nxt = page.locator(".st-key-wt_next button")
        nxt.wait_for()
        page.wait_for_timeout(1500)
        for i in range(8):
            page.mouse.wheel(0, 500)
            page.wait_for_timeout(1200)
            page.screenshot(path=str(out / f"tree-walk-{i}.png"))
            nxt.click()
        page.goto(f"{url}/lessons?lesson=14")
        page.wait_for_timeout(6000)
        page.get_by_role("heading", name="Experiment").scroll_into_view_if_needed()
        page.wait_for_timeout(2000)
        page.screenshot(path=str(out / "tree-lesson.png"), full_page=False)


if __name__ == "__main__":
    main()
