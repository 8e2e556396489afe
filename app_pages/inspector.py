"""Trace inspector: open bundled or uploaded traces, compare runs, diagnose one."""

import pandas as pd
import streamlit as st

from specviz import Trace
from specviz import figures as G
from specviz.teaching.diagnosis import diagnose, measure
from specviz.traces import frames as F
from ui.common import bundled_files, load_bundled
from ui.inspector import compare_table_ui, runs_table_ui
from ui.plain import as_text
from ui.runs import opened_runs
from ui.uploads import MAX_UPLOAD_MB, UPLOAD_TYPES, read_uploads, upload_label
from ui.views import diagnosis_ui, frames_of, render_trace, trace_key

st.title("Trace inspector")
files = {f.name: f for f in bundled_files()}
chosen = st.multiselect("Bundled example traces (real runs, hardware recorded)", list(files),
                        default=list(files)[:1], key="insp_bundled")
uploads = st.file_uploader(upload_label("…or upload traces", each=True), type=UPLOAD_TYPES,
                           accept_multiple_files=True, max_upload_size=MAX_UPLOAD_MB,
                           key="insp_uploads")
if not files:
    st.caption("No bundled traces in assets/traces/ yet.")

loaded: list[tuple[Trace, str]] = opened_runs()  # a run opened from the Runs page
for name, traces, error in read_uploads(uploads or []):  # uploads first: what the user brought
    if error:
        st.error(f"Cannot open this file. {as_text(error)}")
    loaded += [(t, name) for t in traces]
n_uploaded = len(loaded)
for name in chosen:
    traces, error = load_bundled(files[name])
    if error:
        st.error(as_text(error))
    loaded += [(t, name) for t in traces]
if not loaded:
    st.info("Choose a bundled trace or upload one (made by the Live page's download, "
            "`python -m specviz run --out run.jsonl`, or `write_traces`).")
    st.stop()

traces = [t for t, _ in loaded]
sources = [s for _, s in loaded]
runs = F.runs_frame(traces, sources)
labels = runs[F.RUN_NAME].tolist()  # numbered, with the prompt: distinct
st.subheader("Runs")
runs_table_ui(runs.drop(columns=[F.RUN_ID]))


def _baseline(i: int):
    same_file = [t for t, s in loaded if s == sources[i]]
    return F.baseline_for(traces[i], same_file)


spec_idx = [i for i, t in enumerate(traces) if not F.is_target_only(t)]
st.subheader("Compare runs")
# the first two speculative runs to start with; a new upload brings its own runs in at once;
# otherwise the choice stays, less runs no longer loaded
upload_names = tuple(f.name for f in uploads or [])
if upload_names and upload_names != st.session_state.get("insp_seen_uploads") \
        and any(i < n_uploaded for i in spec_idx):
    st.session_state.insp_compare = [labels[i] for i in spec_idx if i < n_uploaded][:2]
elif "insp_compare" not in st.session_state:
    st.session_state.insp_compare = [labels[i] for i in spec_idx[:2]]
else:
    st.session_state.insp_compare = [c for c in st.session_state.insp_compare if c in labels]
st.session_state.insp_seen_uploads = upload_names
compare = st.multiselect("Runs side by side", labels, key="insp_compare")
if compare:
    idx = [labels.index(c) for c in compare]
    tagged = [(labels[i], frames_of(trace_key(traces[i], sources[i]), traces[i])) for i in idx]
    speed = runs.iloc[idx]
    c1 = c2 = st.container()  # one figure per row: side by side they are cut at 1024 px
    # by draft position: a chain's idea (a tree's positions are nodes, not depths)
    pos = [F.tag(fr["position"], name) for (name, fr), i in zip(tagged, idx)
           if not fr["position"].empty and not F.is_tree(traces[i])]
    if pos:
        c1.plotly_chart(G.fig_compare_positions(pd.concat(pos, ignore_index=True)),
                        key="insp_cmp_pos")
    if any(F.is_tree(traces[i]) for i in idx):
        c1.caption("Token-tree runs are left out of acceptance by position (a chain's "
                   "figure); a tree run's own views below have a Token tree tab with its "
                   "accepted depth per step.")
    c2.plotly_chart(G.fig_compare_speed(speed), key="insp_cmp_speed")
    st.plotly_chart(G.fig_wall_clock(pd.concat([F.tag(fr["steps"], name)
                                                for name, fr in tagged], ignore_index=True)),
                    key="insp_cmp_clock")
    rows = []
    for i in idx:
        if F.is_target_only(traces[i]):
            continue
        c = measure(traces[i], _baseline(i))
        slow = c.speedup_measured is not None and c.speedup_measured < 1.0
        rows.append((labels[i], c.alpha, c.mean_accepted_length, c.tokens_per_s,
                     c.speedup_measured, c.c, c.v, c.overhead,
                     ("a tree step cost more than its tokens were worth (the chain's "
                      "diagnosis does not model a tree)" if F.is_tree(traces[i]) else
                      diagnose(c).headline) if slow else ""))
    if rows:
        compare_table_ui(rows)

st.subheader("One run in detail")
pick = st.selectbox("Run", labels, index=spec_idx[0] if spec_idx else 0, key="insp_pick")
i = labels.index(pick)
trace, base = traces[i], _baseline(i)

if not F.is_target_only(trace):
    diagnosis_ui(trace, base, key="insp")
render_trace(trace, key="insp", baseline=base, source=sources[i])
