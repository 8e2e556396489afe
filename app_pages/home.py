"""Landing page: what speculative decoding is, and a bundled example run at once."""

import streamlit as st

from specviz import frames as F
from ui.common import bundled_files, load_bundled
from ui.plain import as_text
from ui.views import render_trace

st.title("specviz: speculative decoding, step by step")
st.markdown(
    "A small **draft** model (q) proposes γ tokens; the large **target** model (p) scores "
    "all of them in **one** forward pass. Each draft x is kept with probability "
    "min(1, p(x)/q(x)); at the first rejection the target draws a **correction** from "
    "norm(max(0, p − q)), and if every draft survives it adds a **bonus** token. The output "
    "has exactly the target's distribution, but each target pass can yield several tokens.\n\n"
    "Phases of every step: **draft → verify → accept → commit**. Below is a recorded run; "
    "*Live decoding* runs your own, *Trace inspector* opens trace files, *Theory* and *Toy "
    "lab* show why it works.")

files = bundled_files()
if not files:
    st.info("No bundled example trace yet (assets/traces/*.jsonl is empty). Open *Live "
            "decoding* to make one with the tiny demo models in a few seconds.")
    st.stop()
traces, error = load_bundled(files[0])
if error:
    st.error(f"The bundled example cannot be read: {as_text(error)}")
    st.stop()
spec = next((t for t in traces if not F.is_target_only(t)), traces[0])
base = F.baseline_for(spec, traces)
hw = spec.run.hardware
st.caption(as_text(f"Example: {files[0].name} · {F.run_name(spec)} · target "
                   f"{spec.run.target.get('source')} · recorded on "
                   f"{hw.get('gpu') or hw.get('cpu') or hw.get('device', '?')}"))
with st.expander("Prompt", expanded=False):
    st.text(spec.run.prompt_text)
render_trace(spec, key="home", baseline=base, source=files[0].name)
