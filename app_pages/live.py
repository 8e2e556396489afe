"""Live decoding: run the pair on a prompt and watch each verification step arrive."""

import html

import streamlit as st

from ui.common import PRESETS, SAMPLING, load_pair_ui, settings_ui, use_sampling_preset
from ui.live import MAX_ROUNDS, busy, live_store, start, stop_current, watch
from ui.plain import as_text
from ui.race import race_ui
from ui.views import baseline_check_ui, colored_text_ui, frames_of, render_trace, trace_key

st.title("Live decoding")
if "prompt" not in st.session_state:
    st.session_state.prompt = PRESETS["story"]


def _use_preset() -> None:
    st.session_state.prompt = PRESETS[st.session_state.preset]


def _use_sampling() -> None:
    use_sampling_preset(st.session_state.sampling_preset)


c1, c2 = st.columns(2)
c1.selectbox("Prompt preset", list(PRESETS), key="preset", on_change=_use_preset)
c2.selectbox("Sampling preset", list(SAMPLING), key="sampling_preset", on_change=_use_sampling,
             help="Sets τ, top-k and top-p below. With top-k and top-p cutting the long tail, "
                  "the 135M target still writes sensible text when it samples.")
# One form: a Run reads the prompt and every setting together, exactly as shown when it is
# clicked (moving a slider does not rerun the page).
with st.form("live_form", border=False, enter_to_submit=False):
    st.text_area("Prompt", key="prompt", height=120)
    s = settings_ui()
    c1, c2, c3 = st.columns([1, 3, 1], vertical_alignment="center")
    run_clicked = c1.form_submit_button("Run", type="primary", key="run")
    c2.checkbox("Measure against the target alone (speed-up over rounds, identical output)",
                key="with_baseline",
                help="Both paths are warmed up, then the speculative and the target-only "
                     "decode run alternately for the rounds chosen; the speed-up is their "
                     "median, with its range.")
    c3.number_input("rounds", 1, MAX_ROUNDS, key="rounds",
                    help="Rounds of speculative + target-only decoding. One round gives no "
                         "spread, so no verdict.")
stop_slot = st.empty()
# One slot for everything below: the live view while a run decodes, then the run's views.
# Its first paint replaces the previous run's views at once (they would otherwise stay on the
# page, greyed out, for the browser to keep drawing while the decoder works).
out = st.empty()

store = live_store()
if run_clicked and not st.session_state.prompt.strip():
    st.error("The prompt is empty: write one, or pick a prompt preset.")
elif run_clicked:
    pair = load_pair_ui(s)
    if pair is not None:
        start(pair, st.session_state.prompt, s.config(pair.default_drafter),
              st.session_state.with_baseline, s.describe(), int(st.session_state.rounds))
run = busy(store)
if run is not None:  # a run of this session is decoding: paint it until it ends
    stop_slot.button("Stop", key="stop", on_click=stop_current,
                     help="Ends the run after its current step; the steps so far are kept.")
    watch(run, out)
    stop_slot.empty()


def _result_ui(result: dict | None) -> None:
    """The last run of this session: a line naming it, its views, the baseline check."""
    if result is None:
        st.info("Pick a preset or write a prompt, then press **Run**. Tip, for a demo of "
                "the mechanics only: embedded:tiny-random-target as the target runs in "
                "seconds, but its random weights write gibberish, accept almost no draft "
                "and are slower with drafts than without. It shows how the page works, not "
                "what speculative decoding gains.")
        return
    spec, base, speedup = result["spec"], result["base"], result.get("speedup")
    run_id = spec.run.run_id if spec is not None else ""
    rate = spec.summary.tokens_per_s if spec is not None and spec.steps else 0.0
    made = f"{spec.summary.n_emitted} tokens at {rate:.1f} tokens/s · " if rate else ""
    if speedup is not None and speedup.median is not None:
        over = f"medians of {speedup.n} rounds" if speedup.repeated else "one round"
        made = (f"{spec.summary.n_emitted} tokens at {speedup.spec_tokens_per_s:.1f} "
                f"tokens/s, the target alone {speedup.base_tokens_per_s:.1f} ({over}) · "
                f"speed-up {html.escape(speedup.describe())} · ")
    what = f"Last run {html.escape(run_id)}" if run_id else "Not run (refused before it began)"
    st.html(f'<div class="specviz-last-run" data-run-id="{html.escape(run_id)}" '
            f'data-tokens-per-s="{rate:.4f}" style="color:#666;font-size:0.85em">'
            f"{what}: {made}{html.escape(result['settings'])}</div>")
    if result["error"] and spec is None:  # refused before it began: one state, "Not run"
        st.error(f"Not run: {as_text(result['error'])}")
    elif result["error"]:
        st.error(f"The run stopped with an error: {as_text(result['error'])}" +
                 (" The steps that finished are kept below." if spec.steps else ""))
    if spec is None or not spec.steps:
        if spec is not None and spec.summary.stop_reason == "stopped":
            st.info("Stopped before its first step was verified: there are no steps to show.")
        return
    if result.get("note"):
        st.warning(result["note"])
    if spec.summary.stop_reason == "stopped":
        st.warning(f"Stopped after {len(spec.steps)} steps; the partial trace is kept.")
    if base is not None:
        if base.summary.n_emitted < spec.summary.n_emitted:
            st.caption(f"A long run: the target alone was measured on its first "
                       f"{base.summary.n_emitted} tokens in each round, and its tokens/s "
                       "compared (the identical-output check covers those tokens).")
        race_ui(spec, base, speedup, key="live")
    highlight = baseline_check_ui(spec, base)
    render_trace(spec, key="live", baseline=base, highlight=highlight)
    if base is not None:
        with st.expander("Target-only output", expanded=highlight is not None):
            colored_text_ui(frames_of(trace_key(base), base)["tokens"], highlight=highlight,
                            target_only=True)


with out.container():
    _result_ui(store["result"])
