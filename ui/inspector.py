"""The Trace inspector's comparison table: each compared run's measured costs, rounded to
what the measurement carries, with short headers and the run's full name on hover."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from specviz.teaching.diagnosis import METRIC_DEFINITIONS

COLUMNS = ["run", "α̂", "accepted length", "tokens/s", "speed-up", "c", "v", "overhead",
           "why below 1×"]


def compare_table_ui(rows: list[tuple]) -> None:
    """One row per compared speculative run: (name, α̂, mean accepted length, tokens/s,
    measured speed-up, c, v, overhead, why below 1×), None where not measured."""
    st.dataframe(pd.DataFrame(rows, columns=COLUMNS), hide_index=True,
                 column_config=_config())


def _config() -> dict:
    def num(label: str, fmt: str, help: str | None):  # narrow: the row fits 1024 px
        return st.column_config.NumberColumn(label, format=fmt, help=help, width="small")

    defs = METRIC_DEFINITIONS
    return {  # the run's name stays in view while the row scrolls sideways
        "run": st.column_config.TextColumn("run", width="medium", pinned=True),
        "α̂": num("α̂", "%.2f", defs.get("alpha_hat")),
        "accepted length": num("accepted length", "%.2f", defs.get("mean_accepted_length")),
        "tokens/s": num("tokens/s", "%.1f", "Emitted tokens / wall time."),
        "speed-up": num("speed-up", "%.2f×", defs.get("speedup")),
        "c": num("c", "%.3f", defs.get("c")),
        "v": num("v", "%.2f", defs.get("v")),
        "overhead": num("overhead", "%.2f", defs.get("overhead")),
        "why below 1×": st.column_config.TextColumn("why below 1×", width="large"),
    }
