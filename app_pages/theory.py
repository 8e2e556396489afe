"""Theory: expected tokens per step and speedup (Leviathan et al. 2023), measured runs
overlaid."""

import numpy as np
import pandas as pd
import streamlit as st

from specviz import figures as G
from specviz.figures.theory_views import MEASURED_LABEL
from specviz.limits import GAMMA_MAX, GAMMA_MIN
from specviz.teaching import theory as T
from specviz.teaching.diagnosis import measure
from specviz.traces import frames as F
from ui.common import bundled_files, load_bundled
from ui.live import live_store
from ui.runs import with_vllm_points

NONE = "— (set the sliders yourself)"
TAKEN = ["th_alpha", "th_gamma", "th_c", "th_v", "th_o"]

st.title("Theory")
st.markdown(
    "With acceptance rate **α** (each draft accepted independently) and **γ** drafts per "
    "step, one verification step yields on average  \n"
    "**E = (1 − α^(γ+1)) / (1 − α)** tokens.  \n"
    "A step costs **γ·c + v + o** target steps: γ drafts at **c** each, one verification "
    "pass **v** (the paper takes v = 1: scoring γ + 1 tokens costs one target step) and "
    "**o**, the per-step overhead outside the models (acceptance, commit, bookkeeping). "
    "The speedup over the target alone is  \n"
    "**speedup = E / (γ·c + v + o)**.  \n"
    "The Trace inspector's diagnosis uses the same formula with a run's measured E. Longer "
    "drafts help only while the extra expected tokens outweigh their cost.")


def _measured() -> pd.DataFrame:
    """Measured runs (bundled traces and this session's live runs): α̂, mean drafted γ,
    measured E and speedup, c, v, overhead, named by file, setup and prompt."""
    pairs = []  # (run, its baseline, file, number in the file)
    for f in bundled_files():
        traces, _ = load_bundled(f)
        pairs += [(t, F.baseline_for(t, traces), f.name, i) for i, t in enumerate(traces)
                  if not F.is_target_only(t) and not F.is_tree(t)]
    for i, r in enumerate(live_store()["history"]):
        if not F.is_tree(r["spec"]):  # the formula models a chain of γ drafts
            pairs.append((r["spec"], r["base"], "live", i))
    rows = []
    for t, base, src, i in pairs:
        k = measure(t, base)
        if k.alpha is None:
            continue
        # costs in target steps need the run's own target-only baseline (without one, v = 1
        # would only be assumed): such runs are plotted by α and E, not offered below
        costs = (k.c, k.v, k.overhead) if k.target_step_from == "baseline" else (np.nan,) * 3
        rows.append((k.alpha, k.gamma, k.mean_accepted_length,
                     k.speedup_measured if k.speedup_measured else np.nan,
                     *costs, f"{src}: {F.run_label(i, t, 24)}"))
    return pd.DataFrame(rows, columns=[T.ALPHA, T.GAMMA, T.E, T.SPEEDUP, T.C, T.V,
                                       T.OVERHEAD, MEASURED_LABEL])


measured = with_vllm_points(_measured())  # and vLLM intervals placed from the Runs page
takeable = measured.dropna(subset=[T.C, T.V, T.OVERHEAD])


def _take_run() -> None:
    """Set the sliders to the chosen run's α̂, γ, c, v and overhead."""
    pick = st.session_state.th_run
    if pick == NONE:
        return
    r = takeable[takeable[MEASURED_LABEL] == pick].iloc[0]
    st.session_state.th_alpha = float(np.clip(round(r[T.ALPHA], 2), 0.0, 0.99))
    st.session_state.th_gamma = int(np.clip(round(r[T.GAMMA]), GAMMA_MIN, GAMMA_MAX))
    st.session_state.th_c = float(np.clip(round(r[T.C], 3), 0.0, 1.0))
    st.session_state.th_v = float(np.clip(round(r[T.V], 2), 0.5, 4.0))
    st.session_state.th_o = float(np.clip(round(r[T.OVERHEAD], 2), 0.0, 1.0))


st.selectbox("Take α, γ, c, v and o from a measured run", [NONE, *takeable[MEASURED_LABEL]],
             key="th_run", on_change=_take_run,
             help="Sets the sliders to the run's measured values, so the curve at its α "
                  "can be read against its measured point (drawn large). Only runs with a "
                  "target-only baseline are listed: c, v and o are measured in its steps. "
                  "Token-tree runs are left out: the formula models a chain of γ drafts.")
for key, value in zip(TAKEN, (0.7, 4, 0.05, 1.0, 0.0)):
    if key not in st.session_state:
        st.session_state[key] = value
c1, c2, c3, c4, c5 = st.columns(5)
alpha = c1.slider("α (acceptance rate)", 0.0, 0.99, step=0.01, key="th_alpha")
gamma = c2.slider("γ", GAMMA_MIN, GAMMA_MAX, key="th_gamma")
c = c3.slider("c (draft cost / target step)", 0.0, 1.0, step=0.005, key="th_c")
v = c4.slider("v (verify cost / target step)", 0.5, 4.0, step=0.01, key="th_v")
o = c5.slider("o (overhead / target step)", 0.0, 1.0, step=0.01, key="th_o")
g_best, s_best = T.best_gamma(alpha, c, v, o)
m1, m2, m3 = st.columns(3)
m1.metric("E (tokens per step)", f"{T.expected_tokens(alpha, gamma):.2f}")
m2.metric("speedup at this γ", f"{T.speedup(alpha, gamma, c, v, o):.2f}×")
m3.metric("best γ", f"{g_best} → {s_best:.2f}×")

picked = st.session_state.th_run if st.session_state.th_run != NONE else None
gammas = np.arange(GAMMA_MIN, GAMMA_MAX + 1)
alphas = sorted({0.5, 0.6, 0.7, 0.8, 0.9, round(alpha, 2)})
curves = T.curves_frame(alphas, gammas, c, v, o)
with_speed = measured.dropna(subset=[T.SPEEDUP])
# one figure per row: two side by side leave each ~350 px at 1024 px (ticks collide)
st.plotly_chart(G.fig_speedup_vs_gamma(curves, with_speed, highlight=picked,
                                       title=f"Speedup vs γ (c = {c:g}, v = {v:g}, "
                                             f"o = {o:g})"), key="th_speedup")
grid = T.curves_frame(np.linspace(0, 1, 101), [1, 2, 3, 4, 6, 8, 12, 16], c, v, o)
st.plotly_chart(G.fig_expected_tokens(grid, measured), key="th_e")
surface_alphas = np.linspace(0.0, 0.98, 50)
surface = T.curves_frame(surface_alphas, gammas, c, v, o)
st.plotly_chart(G.fig_speedup_surface(surface, T.best_gamma_frame(surface_alphas, c, v, o)),
                key="th_surface")
if measured.empty:
    st.caption("No measured runs yet: bundled traces and your live runs appear as ✕ points.")
else:
    st.caption("✕: measured runs (bundled traces and this session's live runs); hover for "
               "their names. On the E plot, mean tokens per step against α̂; on the speedup "
               "plot, runs with a target-only baseline at their mean drafted γ. Each run has "
               "its own c, v and o: take them from a run (above) to read it against the "
               "curves.")
