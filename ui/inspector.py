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
    num = st.column_config.NumberColumn
    defs = METRIC_DEFINITIONS
    return {
        "run": st.column_config.TextColumn("run", width="medium"),
        "α̂": num("α̂", format="%.2f", help=defs.get("alpha_hat")),
        "accepted length": num("accepted length", format="%.2f",
                               help=defs.get("mean_accepted_length")),
        "tokens/s": num("tokens/s", format="%.1f", help="Emitted tokens / wall time."),
        "speed-up": num("speed-up", format="%.2f×", help=defs.get("speedup")),
        "c": num("c", format="%.3f", help=defs.get("c")),
        "v": num("v", format="%.2f", help=defs.get("v")),
        "overhead": num("overhead", format="%.2f", help=defs.get("overhead")),
        "why below 1×": st.column_config.TextColumn("why below 1×", width="large"),
    }
