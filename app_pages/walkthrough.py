"""Walkthrough: one speculative step replayed a micro-step at a time, for a classroom."""

import streamlit as st

from ui.plain import as_text
from ui.walkthrough import autoplay_ui, player_ui, presenter_ui, run_picker_ui, trace_source_ui

st.title("Walkthrough")
top = st.columns([1, 2])
with top[0]:
    presenter = presenter_ui()
# collapsed, and naming what is open: the player comes above the fold
chosen = st.session_state.get("wt_source")
with st.expander("Trace and run" + (f": {as_text(chosen)}" if chosen else ""), expanded=False):
    picked = trace_source_ui()
    trace = run_picker_ui(*picked) if picked else None
if trace is None:
    st.stop()
if not presenter:
    st.caption("The draft proposes γ tokens (q), the target scores them all in one pass (p), "
               "the longest acceptable prefix is kept and the target adds one token (a tree "
               "step: several continuations, one pass, a walk down the tree). "
               "Step with ◀ / ▶ (or the ← / → keys) through draft → verify → accept → "
               "correction or bonus → commit.")
with top[1]:
    interval = autoplay_ui()
player_ui(trace, interval, presenter)
