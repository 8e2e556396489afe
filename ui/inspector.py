"""The Trace inspector's comparison table: each compared run's measured costs, rounded to
what the measurement carries, with short headers and the run's full name on hover."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from specviz.teaching.diagnosis import METRIC_DEFINITIONS
from specviz.traces import frames as F
from ui.plain import visible_frame

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


# The runs table: what tells runs apart and how they went, in ~550 px (the main area at
# 1024 px); the rest of the columns one checkbox away (that wide view scrolls sideways).
RUNS_DEFAULT = [F.RUN_NAME, F.ALPHA_HAT, F.MEAN_ACCEPTED_LENGTH, F.TOKENS_PER_S, F.N_EMITTED]


def runs_table_ui(runs: pd.DataFrame) -> None:
    """The loaded runs (a ``runs_frame``, run_id left out): the default columns fit 1024 px
    without scrolling sideways; "all columns" shows every one."""
    every = st.checkbox("all columns", key="insp_all_columns",
                        help="Also the file, mode, target, drafter, γ, τ, steps, wall time, "
                             "stop reason, device, prompt and start time (the table then "
                             "scrolls sideways on a narrow screen).")
    st.dataframe(visible_frame(runs), hide_index=True,
                 column_order=None if every else RUNS_DEFAULT,
                 column_config=_runs_config(every))


def _runs_config(every: bool) -> dict:
    defs, cc = METRIC_DEFINITIONS, st.column_config

    def num(label: str, fmt: str, help: str | None, width: int = 64):
        return cc.NumberColumn(label, format=fmt, help=help, width=width)

    return {
        F.RUN_NAME: cc.TextColumn("run", width=294 if not every else "large", pinned=every,
                                  help="Number, set-up and the prompt's start; drag the "
                                       "column's edge to widen it."),
        F.ALPHA_HAT: num("α̂", "%.2f", defs.get("alpha_hat"), 52),
        F.MEAN_ACCEPTED_LENGTH: num("acc. len", "%.2f", defs.get("mean_accepted_length"), 70),
        F.TOKENS_PER_S: num("tokens/s", "%.1f", "Emitted tokens / wall time.", 72),
        F.N_EMITTED: num("tokens", "%d", "Tokens emitted.", 60),
        F.GAMMA: num("γ", "%d", "Drafts per step (a chain; 0 for the target alone).", 44),
        F.TEMPERATURE: num("τ", "%.2f", "Sampling temperature (0 = greedy).", 52),
        F.N_STEPS: num("steps", "%d", "Verification steps.", 60),
        F.WALL_S: num("wall s", "%.2f", "Seconds from start to end.", 64),
    }
