"""How long do the views of a 1000-step trace take to build? Target: all of them in <= 1 s.

Usage:  PYTHONPATH=. python scripts/bench_views.py [--trace FILE] [--steps 1000] [--repeat 5]

Without --trace, a real run of the tiny random pair is made once (sampling, gamma 4, about a
minute on 2 cores) and kept in artifacts/bench/; the tiny target's context is widened for the
purpose (its rotary positions work past its nominal 512). The timings cover what a page does
for one run: derive the frames, build every figure and the colored text, measure and
diagnose, and serialise each figure to JSON as Streamlit does before sending it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import plotly  # noqa: E402
import plotly.io as pio  # noqa: E402

from specviz import figures as G  # noqa: E402
from specviz import read_traces, write_traces  # noqa: E402
from specviz.models import cpu_name  # noqa: E402
from specviz.teaching.diagnosis import diagnose, measure  # noqa: E402
from specviz.traces import frames as F  # noqa: E402

WINDOW = 40  # steps the app's timeline shows at once


def make_trace(steps: int, path: Path):
    from specviz import DecodeConfig, load_pair, speculative_decode
    pair = load_pair("embedded:tiny-random-target")
    pair.context_length = 8192
    pair.eos_ids = []  # keep going: this trace measures rendering, not text
    cfg = DecodeConfig(drafter="model", gamma=4, temperature=1.0, max_new_tokens=10**6,
                       chat=False, seed=0)
    n = [0]

    def stop() -> bool:
        return n[0] >= steps

    def count(_rec) -> None:
        n[0] += 1

    t0 = time.perf_counter()
    trace = speculative_decode(pair, "Once upon a time", cfg, on_step=count, should_stop=stop,
                               label=f"bench-{steps}")
    print(f"made a {len(trace.steps)}-step trace in {time.perf_counter() - t0:.1f} s -> {path}")
    write_traces(path, [trace])
    return trace


def render_all(trace) -> dict[str, float]:
    """Every view of one run, as ui.views.render_trace builds them; seconds per part."""
    t: dict[str, float] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        t[name] = time.perf_counter() - t0
        return out

    fr = timed("frames", lambda: {"steps": F.steps_frame(trace), "drafts": F.drafts_frame(trace),
                                  "tokens": F.tokens_frame(trace),
                                  "position": F.position_frame(trace),
                                  "lengths": F.accepted_length_frame(trace)})
    timed("metrics + diagnosis", lambda: diagnose(measure(trace)))
    timed("colored text", lambda: G.colored_text_html(fr["tokens"]))
    last = fr["tokens"][F.STEP] >= len(trace.steps) - WINDOW
    figs = {}
    figs["timeline (40-step window)"] = timed("timeline (40-step window)",
                                              lambda: G.fig_timeline(fr["tokens"][last]))
    figs["acceptance heatmap"] = timed("acceptance heatmap",
                                       lambda: G.fig_acceptance_heatmap(fr["drafts"]))
    figs["position"] = timed("position", lambda: G.fig_position_acceptance(fr["position"]))
    figs["accepted length"] = timed("accepted length",
                                    lambda: G.fig_accepted_length(fr["lengths"]))
    d = fr["drafts"].iloc[0]
    figs["inspector"] = timed("inspector", lambda: G.fig_verify_inspector(
        F.topk_frame(trace, int(d[F.STEP]), int(d[F.POS])), d[F.ACCEPT_PROB], d[F.U],
        d[F.TEXT], d[F.STATUS]))
    figs["latency"] = timed("latency", lambda: G.fig_latency(fr["steps"]))
    tagged = F.tag(fr["steps"], "run")
    figs["tokens vs time"] = timed("tokens vs time", lambda: G.fig_tokens_vs_time(tagged))
    figs["wall clock"] = timed("wall clock", lambda: G.fig_wall_clock(tagged))
    timed("figures -> JSON", lambda: [pio.to_json(f, validate=False) for f in figs.values()])
    t["total"] = sum(t.values())
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, help="a JSONL trace (its first run is used)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if args.trace:
        trace = read_traces(args.trace)[0]
    else:
        path = ROOT / "artifacts" / "bench" / f"tiny-{args.steps}-steps.jsonl"
        trace = read_traces(path)[0] if path.exists() else make_trace(args.steps, path)
    n_drafts = sum(s.gamma for s in trace.steps)
    print(f"trace: {len(trace.steps)} steps, {n_drafts} drafted positions, "
          f"{trace.with_summary().summary.n_emitted} tokens")
    print(f"hardware: {platform.processor() or platform.machine()} · {cpu_name()} · "
          f"{os.cpu_count()} logical CPUs · Python {platform.python_version()} · "
          f"pandas {pd.__version__} · plotly {plotly.__version__}")
    render_all(trace)  # warm-up (imports, caches)
    runs = [render_all(trace) for _ in range(args.repeat)]
    print(f"\nmedian of {args.repeat} runs (ms):")
    for k in runs[0]:
        print(f"  {k:28s} {1e3 * statistics.median(r[k] for r in runs):8.1f}")
    total = statistics.median(r["total"] for r in runs)
    print(f"\nall views: {total:.3f} s (target <= 1 s): {'OK' if total <= 1.0 else 'SLOW'}")


if __name__ == "__main__":
    main()
