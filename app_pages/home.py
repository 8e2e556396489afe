"""Landing page: what speculative decoding is, and a bundled example run at once."""

import streamlit as st

from specviz.traces import frames as F
from ui.common import bundled_files, load_bundled
from ui.overview import Example, comparison, comparison_ui, examples, spread_text, with_comparison
from ui.plain import as_text, visible
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


files = {f.name: f for f in bundled_files()}
versions = tuple((n, f.stat().st_mtime) for n, f in files.items())
runs = examples(versions)
pairs = comparison(versions) if runs else None
runs = with_comparison(runs, pairs)
if not runs:
    st.info("No bundled example trace yet (assets/traces/*.jsonl is empty). Open *Live "
            "decoding* to make one with the tiny demo models in a few seconds.")
    st.stop()


def _label(r: Example) -> str:
    traces, _ = load_bundled(files[r.file])
    speed = f" · {r.speedup:.2f}× the target alone" if r.speedup else ""
    return f"{r.file} · {F.run_label(r.index, traces[r.index], 36)}{speed}"


if pairs:
    comparison_ui(pairs)
first = "the run with the larger median speed-up first" if pairs else "a typical one first"
pick = st.selectbox(f"Example run (recorded; {first})", range(len(runs)),
                    format_func=lambda i: _label(runs[i]), key="home_run")
spread = spread_text(runs)
if spread and pairs and pick < 2:
    which = ("Not a typical run: the pair with the larger median speed-up, on the prompt both "
             "pairs ran (the other pair's run is next in the list)" if pick == 0 else
             "The other pair's run of the same prompt")
    st.caption(f"{which}. Across all bundled runs: {spread} (by pair, drafter, engine, "
               "device and prompt); a run below 1× comes with the reason.")
elif spread and pick == 0:
    st.caption(f"A typical run, not the fastest: a draft model's run whose speed-up is the "
               f"nearest to the median of all. "
               f"{spread} (by pair, drafter, engine, device and prompt). The others are in "
               "the list; a run below 1× comes with the reason.")
elif spread:
    st.caption(f"{spread}.")
name, index = runs[pick].file, runs[pick].index
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
    st.text(visible(spec.run.prompt_text))
render_trace(spec, key="home", baseline=base, source=name)
