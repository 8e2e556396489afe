"""Runs: many logged runs at once, on DuckDB: aggregates with their uncertainty, the slowest
and least accepted runs first (one opens in the Trace inspector), read-only SQL, and vLLM's
speculative decoding metrics."""

import streamlit as st

from ui.runs import aggregates_ui, filters_ui, runs_table_ui, source_ui, sql_ui, vllm_ui

st.title("Runs")
runs_tab, sql_tab, vllm_tab = st.tabs(["Runs", "SQL", "vLLM metrics"])
with vllm_tab:
    vllm_ui()
with runs_tab:
    db, key = source_ui()
if db is None:
    st.stop()
with runs_tab:
    f, by = filters_ui(db, key)
    aggregates_ui(db, key, f, by)
    st.subheader("Runs")
    runs_table_ui(db, key, f)
with sql_tab:
    sql_ui(db)
