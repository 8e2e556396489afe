"""The Overview's example runs: every bundled speculative run with its measured speed-up, and
which one leads the page (``lead_run``: the one place that choice is made)."""

from __future__ import annotations

import statistics
from typing import NamedTuple

import streamlit as st

from specviz.teaching.diagnosis import measure
from specviz.traces import frames as F
from ui.common import bundled_files, load_bundled


class Example(NamedTuple):
    """A bundled speculative run: its file, its index in the file, its measured speed-up
    against its own target-only baseline (None without one), and whether it shows the
    method as the page explains it (a draft model proposing a chain of drafts)."""

    file: str
    index: int
    speedup: float | None
    shows_method: bool = True


def lead_run(runs: list[Example]) -> Example | None:
    """The run the Overview opens on: typical, not the fastest. Among the runs that show the
    method (a draft model's chain; else among all), the one whose speed-up is nearest the
    median of every bundled run's (the first such in file order); without any speed-up,
    the first run."""
    timed = [r for r in runs if r.speedup]
    if not timed:
        return runs[0] if runs else None
    mid = statistics.median(r.speedup for r in timed)
    shown = [r for r in timed if r.shows_method] or timed
    return min(shown, key=lambda r: abs(r.speedup - mid))


def spread_text(runs: list[Example]) -> str:
    """The spread the lead run sits in: count, median, middle half and range of the speed-ups
    (empty with fewer than two)."""
    speeds = sorted(r.speedup for r in runs if r.speedup)
    if len(speeds) < 2:
        return ""
    q1, mid, q3 = statistics.quantiles(speeds, n=4, method="inclusive")
    below = sum(x < 1.0 for x in speeds)
    return (f"{len(speeds)} bundled runs have a target-only baseline: median {mid:.2f}×, the "
            f"middle half {q1:.2f}–{q3:.2f}×, the range {speeds[0]:.2f}–{speeds[-1]:.2f}×; "
            f"{below} of them below 1×")


@st.cache_data(show_spinner=False, max_entries=4)
def examples(versions: tuple[tuple[str, float], ...]) -> list[Example]:
    """Every bundled speculative run (``versions``: the files' names and times, the cache's
    key), the lead run first, the others in file order."""
    rows = []
    for f in bundled_files():
        traces, error = load_bundled(f)
        for i, t in enumerate(traces):
            if error or F.is_target_only(t):
                continue
            base = F.baseline_for(t, traces)
            rows.append(Example(f.name, i, measure(t, base).speedup_measured if base else None,
                                t.run.drafter == "model" and not F.is_tree(t)))
    lead = lead_run(rows)
    return [lead] + [r for r in rows if r is not lead] if lead else []
