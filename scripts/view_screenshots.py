"""Screenshots of the Overview, Theory, Trace inspector, Walkthrough (normal and presenter
mode, a chain step and a tree step) and the Live page's settings, at 1400 px wide and at
1024×768, in headless Chromium; also lists any request the pages made off this machine.

Usage:  PYTHONPATH=. python scripts/view_screenshots.py [--out DIR] [--only NAME ...]
(DIR defaults to /tmp/specviz-shots)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_screenshots import app_page, choose  # noqa: E402

SIZES = {"wide": (1400, 1000), "small": (1024, 768)}


def overview(page, url, shot):
    page.goto(url)
    page.get_by_role("heading", name="speculative decoding, step by step").wait_for()
    page.locator(".st-key-home_timeline .js-plotly-plot").wait_for()
    page.wait_for_timeout(2500)
    shot("overview")
    page.locator("[data-testid='stMetric']").first.scroll_into_view_if_needed()
    page.wait_for_timeout(1500)
    shot("overview-metrics")


def theory(page, url, shot):
    page.goto(f"{url}/theory")
    page.locator(".js-plotly-plot").first.wait_for()
    page.locator(".st-key-th_run [role='combobox']").click()
    page.keyboard.type("h200-smollm2-draft-greedy.jsonl: 5.")
    page.keyboard.press("Enter")
    page.wait_for_timeout(4000)
    page.get_by_text("Speedup vs γ").first.scroll_into_view_if_needed()
    page.wait_for_timeout(1500)
    shot("theory")
    page.mouse.wheel(0, 500)
    page.wait_for_timeout(1500)
    shot("theory-2")


def inspector(page, url, shot):
    page.goto(f"{url}/inspector")
    page.get_by_role("heading", name="Trace inspector").wait_for()
    page.get_by_role("heading", name="Compare runs").wait_for()
    page.wait_for_timeout(4000)
    page.get_by_role("heading", name="Compare runs").scroll_into_view_if_needed()
    page.wait_for_timeout(1500)
    shot("inspector-compare")
    page.get_by_role("heading", name="One run in detail").scroll_into_view_if_needed()
    page.wait_for_timeout(2500)
    shot("inspector-detail")


def walkthrough(page, url, shot):
    page.goto(f"{url}/walkthrough")
    page.get_by_role("heading", name="Walkthrough").wait_for()
    nxt = page.locator(".st-key-wt_next button")
    nxt.wait_for()
    page.wait_for_timeout(2000)
    nxt.click()
    page.wait_for_timeout(2500)
    shot("walkthrough-draft")
    for _ in range(5):
        nxt.click()
        page.wait_for_timeout(900)
    page.wait_for_timeout(2000)
    shot("walkthrough-accept")
    page.locator(".st-key-wt_presenter label").click()
    page.wait_for_timeout(3000)
    shot("walkthrough-presenter")
    page.locator(".st-key-wt_presenter label").click()
    page.wait_for_timeout(2000)
    page.get_by_text("Trace and run").first.click()  # the expander starts collapsed
    page.wait_for_timeout(1000)
    page.locator(".st-key-wt_source [role='combobox']").click()
    page.get_by_role("option", name="cpu-smollm2-draft-tree-greedy.jsonl").click()
    page.wait_for_timeout(2500)
    for _ in range(5):
        nxt.click()
        page.wait_for_timeout(900)
    page.wait_for_timeout(2000)
    shot("walkthrough-tree")


def live(page, url, shot):
    page.goto(f"{url}/live")
    page.get_by_role("heading", name="Live decoding").wait_for()
    page.locator(".st-key-run button").wait_for()
    page.wait_for_timeout(2000)
    page.locator(".st-key-gamma").scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    shot("live-settings")


VIEWS = {"overview": overview, "theory": theory, "inspector": inspector,
         "walkthrough": walkthrough, "live": live}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/specviz-shots")
    ap.add_argument("--only", nargs="*", choices=list(VIEWS), default=list(VIEWS))
    ap.add_argument("--sizes", nargs="*", choices=list(SIZES), default=list(SIZES))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    offsite: set[str] = set()
    with app_page(120_000) as (url, page):  # a view that hangs fails after 2 minutes
        page.on("request", lambda r: offsite.add(r.url) if not r.url.startswith(url)
                and not r.url.startswith("data:") else None)
        for size in args.sizes:
            w, h = SIZES[size]
            page.set_viewport_size({"width": w, "height": h})
            for name in args.only:
                def shot(what, size=size):
                    page.screenshot(path=str(out / f"{what}-{size}.png"))
                try:
                    VIEWS[name](page, url, shot)
                except Exception as e:  # one view failing leaves the others
                    print(f"{name} at {size}: {type(e).__name__}: {e}".splitlines()[0])
    print("\n".join(str(p) for p in sorted(out.glob("*.png"))))
    print("requests off this machine:", sorted(offsite) or "none")


if __name__ == "__main__":
    _ = choose  # the helper this script shares with app_screenshots.py
    main()
