"""Live page tokens/s against `python -m specviz run` tokens/s: same prompt, pair, settings
and machine.

Usage:  PYTHONPATH=. python scripts/bench_live.py [--tokens 64 512] [--repeats 3]
                                                  [--preset code] [--json FILE] [--no-browser]

A Streamlit server runs the app and headless Chromium (Debian's) clicks Run on the Live
page, the page painting the run as it goes, and reads the tokens/s the page reports (its
"Last run" line: the figure of its "tokens / s" metric). `python -m specviz run` decodes the
same prompt twice per process (the first run a warm-up, left out). Both sides use the
page's default settings (embedded target + shipped draft, γ = 4, greedy, chat template,
eager engine on a CPU). After a warm-up run of the page, the two sides take turns (CLI,
page, CLI, page, …) so that both meet the same load from anything else on the machine; the
table gives medians and the median of the per-turn ratios. Both figures are the decoder's
own measure: emitted tokens / wall time of the decode (prefill included). Prints the
machine, versions, load and a table; --json keeps it all.

--no-browser drives the page with streamlit.testing's AppTest instead (the page script, its
decoding thread and its painting, without a browser drawing them): for a machine without
Chromium, such as the GPU machine.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from specviz import read_traces  # noqa: E402
from ui.common import PRESETS  # noqa: E402

SETTLED_JS = """() => !document.querySelector('[data-stale="true"]') &&
  !!document.querySelector('.st-key-live_dl_trace[data-stale="false"]')"""
SETTLE_MS = 3000
LAST_RUN_JS = """() => {
  const e = document.querySelector('.specviz-last-run');
  return e ? e.dataset.runId + ' ' + e.dataset.tokensPerS : '';
}"""


def cli_rates(prompt: str, tokens: int, runs: int) -> list[float]:
    """tokens/s of `python -m specviz run` on the prompt, ``runs`` times in one process."""
    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp) / "prompts.jsonl"
        prompts.write_text("".join(json.dumps({"prompt": prompt}) + "\n" for _ in range(runs)))
        out = Path(tmp) / "cli.jsonl"
        subprocess.run([sys.executable, "-m", "specviz", "run", "--prompts", str(prompts),
                        "--max-new-tokens", str(tokens), "--out", str(out)], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
        return [t.summary.tokens_per_s for t in read_traces(out)]


def _set_max_tokens(page, tokens: int) -> None:
    """Move the page's max-new-tokens slider (8 … 512, step 8) to ``tokens``."""
    thumb = page.locator(".st-key-max_new_tokens input[type='range']")
    thumb.focus()
    thumb.press("Home")
    for _ in range((tokens - 8) // 8):
        thumb.press("ArrowRight")


def open_live_page(page, url: str, preset: str, tokens: int) -> None:
    from app_screenshots import open_live  # the browser side only: it needs playwright
    """The Live page with the preset's prompt and ``tokens`` new tokens set."""
    open_live(page, url, preset)
    _set_max_tokens(page, tokens)


def page_rate(page) -> float:
    """Click Run on the open Live page; the tokens/s it reports for that run."""
    before = page.evaluate(LAST_RUN_JS)
    page.locator(".st-key-run button").click()
    page.wait_for_function(f"() => !['', {json.dumps(before)}].includes(({LAST_RUN_JS})())",
                           timeout=1_800_000)
    rate = float(page.evaluate(LAST_RUN_JS).split()[1])
    # let the page finish drawing the run's views before anything else runs
    page.wait_for_function(SETTLED_JS, timeout=600_000)
    page.wait_for_timeout(SETTLE_MS)
    return rate


class AppTestPage:
    """The Live page under streamlit.testing: the same script and decoding thread, no
    browser."""

    def __init__(self, preset: str, tokens: int):
        from streamlit.testing.v1 import AppTest
        self.at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800)
        self.at.run()
        self.at.switch_page("app_pages/live.py")
        self.at.run()
        self.at.selectbox(key="preset").set_value(preset)
        self.at.run()
        self.at.slider(key="max_new_tokens").set_value(tokens)

    def rate(self) -> float:
        self.at.button(key="run").click()
        self.at.run()
        if self.at.exception or self.at.error:
            raise SystemExit(f"the Live page failed: {[e.value for e in self.at.exception]}"
                             f" {[e.value for e in self.at.error]}")
        return self.at.session_state["live_store"]["result"]["spec"].summary.tokens_per_s


def paint_costs(steps_total: int = 1000, every: int = 2) -> list[dict]:
    """What one live paint costs the page script, in process (no browser), at several points
    of a long run: turning the new steps into text pieces and timeline rows, then the HTML
    of the bounded window that is sent. Steps come from the bundled CPU run, repeated."""
    from specviz.paths import TRACES
    from ui.live import _Painter
    trace = read_traces(TRACES / "cpu-smollm2-draft-greedy.jsonl")[0]
    steps = (list(trace.steps) * (steps_total // len(trace.steps) + 1))[:steps_total]
    painter = _Painter(target_only=False)
    rows: dict[int, list[tuple[float, int]]] = {}
    for i in range(0, len(steps), every):
        t0 = time.perf_counter()
        painter.add(steps[i:i + every])
        size = len(painter.html("speculative", 1.0))
        rows.setdefault(painter.n_steps * 5 // steps_total, []).append(
            (time.perf_counter() - t0, size))
    return [{"steps": f"{k * steps_total // 5}–{(k + 1) * steps_total // 5}",
             "paint_ms": 1e3 * statistics.median(t for t, _ in v),
             "html_kb": statistics.median(n for _, n in v) / 1e3}
            for k, v in sorted(rows.items()) if k < 5]


def _versions(no_browser: bool = False) -> dict:
    import plotly
    import streamlit
    import torch
    import transformers
    chromium = (subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True,
                               text=True).stdout.strip()
                if Path("/usr/bin/chromium").exists() and not no_browser else "not used (AppTest)")
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "streamlit": streamlit.__version__,
            "plotly": plotly.__version__, "chromium": chromium}


def _machine() -> str:
    import torch

    from specviz.models import cpu_name
    gpu = f"{torch.cuda.get_device_name()} + " if torch.cuda.is_available() else ""
    return f"{gpu}{cpu_name()}, {os.cpu_count()} cores"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, nargs="+", default=[64, 512])
    ap.add_argument("--repeats", type=int, default=3, help="measured runs per side")
    ap.add_argument("--preset", default="code", choices=list(PRESETS))
    ap.add_argument("--json", default=None, metavar="FILE")
    ap.add_argument("--no-browser", action="store_true",
                    help="drive the page with streamlit.testing instead of Chromium")
    args = ap.parse_args()
    prompt = PRESETS[args.preset]
    info = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": _machine(), "versions": _versions(args.no_browser),
            "command": "PYTHONPATH=. python scripts/bench_live.py " + " ".join(sys.argv[1:]),
            "preset": args.preset, "load_before": os.getloadavg(), "rows": []}
    print(f"{info['date']} · {info['machine']} · load average {info['load_before'][0]:.2f}",
          flush=True)
    with contextlib.ExitStack() as stack:
        if not args.no_browser:
            from app_screenshots import app_page
            url, page = stack.enter_context(app_page(1_800_000))
        for n in args.tokens:
            t0 = time.perf_counter()
            if args.no_browser:
                rate = AppTestPage(args.preset, n).rate
            else:
                open_live_page(page, url, args.preset, n)
                rate = functools.partial(page_rate, page)
            rate()  # warm-up of the page's decoding thread, left out
            cli, live = [], []
            for _ in range(args.repeats):  # the two sides in turn, under the same load
                cli.append(cli_rates(prompt, n, 2)[1])  # the first run warms the process up
                live.append(rate())
            ratios = [a / b for a, b in zip(live, cli)]
            row = {"tokens": n, "cli": cli, "page": live, "ratios": ratios,
                   "cli_median": statistics.median(cli),
                   "page_median": statistics.median(live),
                   "ratio": statistics.median(ratios),
                   "load": os.getloadavg()[0], "seconds": time.perf_counter() - t0}
            info["rows"].append(row)
            print(f"  {n} tokens: CLI {[round(x, 2) for x in cli]} · page "
                  f"{[round(x, 2) for x in live]} tokens/s (load average {row['load']:.2f})",
                  flush=True)
    info["load_after"] = os.getloadavg()
    info["paint"] = paint_costs()
    print()
    print(f"Measured {info['date']} on {info['machine']}; " + ", ".join(
        f"{k} {v}" for k, v in info["versions"].items()) + ".")
    print(f"Command: `{info['command']}`; prompt preset {args.preset!r}; {args.repeats} "
          "runs per side, taken in turn (CLI, page, CLI, page, …) after a warm-up run per "
          "side; medians, and the median of the per-turn ratios.")
    print(f"Load average (1 min) before {info['load_before'][0]:.2f}, after "
          f"{info['load_after'][0]:.2f}.")
    print()
    print("| new tokens | `specviz run` tokens/s | Live page tokens/s | page / CLI (per turn) |")
    print("|---:|---:|---:|---:|")
    for r in info["rows"]:
        print(f"| {r['tokens']} | {r['cli_median']:.2f} | {r['page_median']:.2f} | "
              f"{r['ratio']:.2f} |")
    print()
    print("Per paint of the live view (every 0.5 s), in the page script (medians):")
    print()
    print("| steps so far | paint ms | HTML sent (kB) |")
    print("|---|---:|---:|")
    for r in info["paint"]:
        print(f"| {r['steps']} | {r['paint_ms']:.1f} | {r['html_kb']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
