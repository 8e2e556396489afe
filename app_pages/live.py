"""Live decoding: run the pair on a prompt and watch each verification step arrive."""

import streamlit as st

from ui.common import PRESETS, load_pair_ui, settings
from ui.live import live_store, stream, wait_for_stopped_run
from ui.plain import as_text
from ui.views import baseline_check_ui, colored_text_ui, frames_of, render_trace, trace_key

HISTORY = 8

st.title("Live decoding")
s = settings()
st.caption(f"Target **{s.target}** · draft **{s.draft or 'none'}** · drafter **{s.drafter}** "
           f"· γ = {s.gamma} ({s.policy}) · τ = {s.temperature:g} · max {s.max_new_tokens} "
           f"tokens · engine {s.engine}. Change them in the sidebar.")

if "prompt" not in st.session_state:
    st.session_state.prompt = PRESETS["story"]


def _use_preset() -> None:
    st.session_state.prompt = PRESETS[st.session_state.preset]


st.selectbox("Preset", list(PRESETS), key="preset", on_change=_use_preset)
prompt = st.text_area("Prompt", key="prompt", height=120)
c1, c2, c3 = st.columns([1, 1, 3])
run = c1.button("Run", type="primary", key="run")
stop_slot = c2.empty()
with_base = c3.checkbox("Also run the target alone (baseline: speedup, identical output)",
                        key="with_baseline")

store = live_store()
if run:
    pair = load_pair_ui(s)
    if pair is not None:
        cfg = s.config(pair.default_drafter)
        live = st.empty()
        box = live.container()
        status, text_slot, tl_slot = box.empty(), box.empty(), box.empty()
        stop_slot.button("Stop", key="stop")
        store["busy"] = True
        try:
            out = stream(pair, prompt, cfg, target_only=False, label="speculative",
                         status=status, text_slot=text_slot, timeline_slot=tl_slot)
            base = None
            if with_base and out.interrupted is None and out.error is None:
                base = stream(pair, prompt, cfg, target_only=True, label="baseline",
                              status=status, text_slot=text_slot, timeline_slot=tl_slot)
            result = {"spec": out.trace, "base": base.trace if base else None,
                      "error": out.error or (base.error if base else None)}
            store["result"] = result
            if out.trace is not None and out.trace.steps:
                store["history"] = (store["history"] + [result])[-HISTORY:]
        finally:
            store["busy"] = False
        for o in (out, base):
            if o is not None and o.interrupted is not None:
                raise o.interrupted  # the click that stopped the run: let Streamlit go on
        live.empty()
        stop_slot.empty()

wait_for_stopped_run(store)
result = store["result"]
if result is None:
    st.info("Pick a preset or write a prompt, then press **Run**. Tip: choose "
            "embedded:tiny-random-target in the sidebar for an instant demo.")
    st.stop()
if result["error"]:
    st.error(f"The run stopped with an error: {as_text(result['error'])}" +
             (" The steps that finished are kept below." if result["spec"] else ""))
spec, base = result["spec"], result["base"]
if spec is None or not spec.steps:
    st.stop()
if spec.summary.stop_reason == "stopped":
    st.warning(f"Stopped after {len(spec.steps)} steps; the partial trace is kept.")

highlight = baseline_check_ui(spec, base)
render_trace(spec, key="live", baseline=base, highlight=highlight)
if base is not None:
    with st.expander("Target-only output", expanded=highlight is not None):
        colored_text_ui(frames_of(trace_key(base), base)["tokens"], highlight=highlight,
                        target_only=True)
