"""The experiment of lesson 15 (a small target and a large one): the measured pass times
against each target's floor, the data file they come from, and the speed-up the formula
gives for a draft cost the student chooses."""

from __future__ import annotations

import streamlit as st

from specviz.figures import pass_views
from specviz.teaching.lessons import pass_costs as PC
from specviz.teaching.lessons.content import md_escape
from ui.plain import visible_frame

PAIRS = {"s": "small", "l": "large"}


def _provenance(data: dict, name: str) -> None:
    with st.expander(f"Where these pass times come from ({name})"):
        hw = data.get("hardware") or {}
        st.markdown("\n".join(f"- **{k}**: {md_escape(str(v))}" for k, v in (
            ("command", data.get("command")), ("date", data.get("date")),
            ("hardware", hw.get("gpu") or hw.get("cpu")), ("torch", hw.get("torch")),
            ("rounds", data.get("rounds")), ("load average before", data.get("load_before")),
            ("load average after", data.get("load_after")),
            ("bandwidth", data.get("bandwidth_from"))) if v is not None))
        if data.get("sources"):
            st.caption("Each number's source file:")
            st.json(data["sources"], expanded=False)


def exp_pass_costs(files, nums: dict) -> None:
    """Pass times and floors of both targets; then a draft cost c for one pair."""
    try:
        data = PC.read_data(PC.DATA_DIR / nums["data_file"])
    except PC.PassDataError as e:
        st.error(str(e))
        return
    frame = PC.passes_frame(data)
    st.plotly_chart(pass_views.fig_pass_times(frame), key="l15_passes")
    st.caption(f"{nums['machines_note']} Points: median time of a pass over T tokens after a "
               "chat prompt (bars: min–max over the rounds, where the file has them); "
               "dashed lines: weights ÷ memory bandwidth.")
    shown = frame.dropna(axis=1, how="all").round({PC.MS: 3, PC.LOW: 3, PC.HIGH: 3,
                                                   PC.FLOOR: 3, PC.V: 2})
    st.dataframe(visible_frame(shown), hide_index=True)
    _provenance(data, nums["data_file"])
    c1, c2 = st.columns([1, 2])
    key = c1.radio("Pair", list(PAIRS), key="l15_pair",
                   format_func=lambda k: md_escape(f"{nums[f'{k}_name']} with "
                                                   f"{nums[f'{k}_draft']}"))
    c = c2.slider("Draft cost c (one draft pass, in target passes)", 0.0, 1.0,
                  value=round(float(nums[f"{key}_c"]), 2), step=0.01, key=f"l15_c_{key}")
    e, v = nums[f"{key}_e4"], nums[f"{key}_v5"]
    g = nums["gamma"]
    st.markdown(f"E(α̂, γ) / (γ c + v) = E({nums[f'{key}_alpha']:.3f}, {g}) / ({g} × {c:.2f} "
                f"+ {v:.2f}) = {e:.2f} / {g * c + v:.2f} = **{PC.speedup(e, c, v):.2f}×** "
                f"(the measured c = {nums[f'{key}_c']:.3f} gives "
                f"{nums[f'{key}_speed4']:.2f}×; break-even at c = "
                f"{max((e - v) / g, 0.0):.3f}).")
