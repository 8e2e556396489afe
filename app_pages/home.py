"""Landing page: what speculative decoding is, and a bundled example run at once."""

import streamlit as st

from specviz.teaching.diagnosis import measure
from specviz.traces import frames as F
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


@st.cache_data(show_spinner=False, max_entries=4)
def examples(versions: tuple[tuple[str, float], ...]) -> list[tuple[str, int, float | None]]:
    """Every bundled speculative run as (file, index in the file, measured speedup), the
    fastest against its own target-only baseline first (the run that shows the method at
    work leads; the others follow in file order)."""
    rows = []
    for f in bundled_files():
        traces, error = load_bundled(f)
        for i, t in enumerate(traces):
            if error or F.is_target_only(t):
                continue
            base = F.baseline_for(t, traces)
            rows.append((f.name, i, measure(t, base).speedup_measured if base else None))
    best = max(rows, key=lambda r: r[2] or 0.0, default=None)
    return [best] + [r for r in rows if r is not best] if best else []


files = {f.name: f for f in bundled_files()}
runs = examples(tuple((n, f.stat().st_mtime) for n, f in files.items()))
if not runs:
    st.info("No bundled example trace yet (assets/traces/*.jsonl is empty). Open *Live "
            "decoding* to make one with the tiny demo models in a few seconds.")
    st.stop()


def _label(r: tuple[str, int, float | None]) -> str:
    traces, _ = load_bundled(files[r[0]])
    speed = f" · {r[2]:.2f}× the target alone" if r[2] else ""
    return f"{r[0]} · {F.run_label(r[1], traces[r[1]], 36)}{speed}"


pick = st.selectbox("Example run (recorded; the fastest first)", range(len(runs)),
                    format_func=lambda i: _label(runs[i]), key="home_run")
speeds = sorted(r[2] for r in runs if r[2])
if len(speeds) > 1:
    st.caption(f"The fastest of {len(speeds)} bundled runs with a target-only baseline; they "
               f"range from {speeds[0]:.2f}× to {speeds[-1]:.2f}× (median "
               f"{speeds[len(speeds) // 2]:.2f}×), by pair, drafter, engine, device and "
               "prompt. The others are in the list; a run below 1× comes with the reason.")
name, index, _ = runs[pick]
traces, error = load_bundled(files[name])
if error:
    st.error(f"The bundled example cannot be read: {as_text(error)}")
    st.stop()
spec = traces[index]
base = F.baseline_for(spec, traces)
hw = spec.run.hardware
st.caption(as_text(f"Example: {name} · {F.run_name(spec)} · target "
                   f"{spec.run.target.get('source')} · recorded on "
                   f"{hw.get('gpu') or hw.get('cpu') or hw.get('device', '?')}"))
with st.expander("Prompt", expanded=False):
    st.text(spec.run.prompt_text)
render_trace(spec, key="home", baseline=base, source=name)
