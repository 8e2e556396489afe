"""The Overview's example runs: every bundled speculative run with its measured speed-up, and
which one leads the page (``lead_run``: a typical run; ``with_comparison``: where the bundled
traces hold two pairs on one prompt, the faster pair's run leads and the other's follows)."""

from __future__ import annotations

import statistics
from typing import NamedTuple

import pandas as pd
import streamlit as st

from specviz.teaching.diagnosis import measure
from specviz.teaching.pairs import Comparison, compare, pair_run
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


@st.cache_data(show_spinner=False, max_entries=4)
def comparison(versions: tuple[tuple[str, float], ...]) -> Comparison | None:
    """Two pairs' runs of one prompt among the bundled traces (``versions``: the cache's key),
    the faster pair leading (specviz.teaching.pairs.compare); None without such runs."""
    found = []
    for f in bundled_files():
        traces, error = load_bundled(f)
        if error:
            continue
        found += [r for i, t in enumerate(traces) if (r := pair_run(f.name, i, t, traces))]
    return compare(found)


def with_comparison(runs: list[Example], cmp: Comparison | None) -> list[Example]:
    """The runs in the order the page lists them: the comparison's lead first and its other
    pair's run second, then the rest as ``examples`` orders them (typical first); without a
    comparison, ``runs`` unchanged."""
    if cmp is None:
        return runs
    at = {(r.file, r.index): r for r in runs}
    first = [at[k] for k in ((cmp.lead.file, cmp.lead.index), (cmp.other.file, cmp.other.index))
             if k in at]
    return first + [r for r in runs if r not in first]


def comparison_ui(cmp: Comparison) -> None:
    """The two pairs side by side: the headline, a compact table of each pair's speed-up,
    α̂, tokens per verification, c, v and predicted speed-up, and why each is what it is."""
    from specviz.teaching import pairs as P
    from ui.plain import as_text, visible_frame

    st.subheader("Two pairs, one prompt")
    st.markdown(as_text(P.headline(cmp)))
    st.dataframe(visible_frame(pd.DataFrame(P.table_rows(cmp))), hide_index=True,
                 width="content")
    lead_why, other_why = P.why_text(cmp.lead), P.why_text(cmp.other)
    limit = P.limiter_text(cmp.other)
    lead_title, other_title = P.why_titles(cmp)
    st.markdown(f"**{other_title}** {as_text(other_why)}" + (f" {as_text(limit)}" if limit
                                                               else ""))
    st.markdown(f"**{lead_title}** {as_text(lead_why)}")
    st.caption(as_text(
        f"One prompt, the same settings ({P.settings_text(cmp.lead)}); each speed-up is the "
        f"median of its rounds against its own target-only baseline, speculative and "
        f"target-only decodes alternated. c and v are in units of one target-only step of "
        f"the same pair; predicted = tokens per verification / (γ c + v + overhead). From "
        f"{cmp.lead.file}" + ("" if cmp.other.file == cmp.lead.file else
                              f" and {cmp.other.file}") + "."))
