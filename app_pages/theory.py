"""Theory: expected tokens per step and speedup (Leviathan et al. 2023), measured runs
overlaid."""

import numpy as np
import pandas as pd
import streamlit as st

from specviz import figures as G
from specviz import frames as F
from specviz import theory as T
from specviz.diagnosis import measure
from specviz.figures.theory_views import MEASURED_LABEL
from specviz.limits import GAMMA_MAX, GAMMA_MIN
from ui.common import bundled_files, load_bundled
from ui.live import live_store

st.title("Theory")
st.markdown(
    "With acceptance rate α (i.i.d. per draft) and γ drafts per step, a verification step "
    "yields on average  \n"
    "**E = (1 − α^(γ+1)) / (1 − α)** tokens.  \n"
    "If a draft token costs **c** target steps and a verification pass costs **v** (the "
    "paper takes v = 1), the speedup over the target alone is  \n"
    "**speedup = E / (γ c + v)**.  \n"
    "Longer drafts help only while the extra expected tokens outweigh their cost.")

c1, c2, c3, c4 = st.columns(4)
alpha = c1.slider("α (acceptance rate)", 0.0, 0.99, 0.7, 0.01, key="th_alpha")
gamma = c2.slider("γ", GAMMA_MIN, GAMMA_MAX, 4, key="th_gamma")
c = c3.slider("c (draft cost / target step)", 0.0, 1.0, 0.05, 0.005, key="th_c")
v = c4.slider("v (verify cost / target step)", 0.5, 4.0, 1.0, 0.05, key="th_v")
g_best, s_best = T.best_gamma(alpha, c, v)
m1, m2, m3 = st.columns(3)
m1.metric("E (tokens per step)", f"{T.expected_tokens(alpha, gamma):.2f}")
m2.metric("speedup at this γ", f"{T.speedup(alpha, gamma, c, v):.2f}×")
m3.metric("best γ", f"{g_best} → {s_best:.2f}×")


def _measured() -> pd.DataFrame:
    """Measured runs: bundled traces and this session's live runs."""
    pairs = []
    for f in bundled_files():
        traces, _ = load_bundled(f)
        pairs += [(t, F.baseline_for(t, traces), f.name) for t in traces
                  if not F.is_target_only(t)]
    for r in live_store()["history"]:
        pairs.append((r["spec"], r["base"], "live"))
    rows = []
    for t, base, src in pairs:
        k = measure(t, base)
        if k.alpha is None:
            continue
        rows.append((k.alpha, k.gamma, k.mean_accepted_length,
                     k.speedup_measured if k.speedup_measured else np.nan,
                     f"{F.run_name(t)} ({src})"))
    return pd.DataFrame(rows, columns=[T.ALPHA, T.GAMMA, T.E, T.SPEEDUP, MEASURED_LABEL])


measured = _measured()
alphas = sorted({0.5, 0.6, 0.7, 0.8, 0.9, round(alpha, 2)})
curves = T.curves_frame(alphas, np.arange(1, 33), c, v)
with_speed = measured.dropna(subset=[T.SPEEDUP])
left, right = st.columns(2)
left.plotly_chart(G.fig_speedup_vs_gamma(curves, with_speed,
                                      title=f"Speedup vs γ (c = {c:g}, v = {v:g})"),
               key="th_speedup")
grid = T.curves_frame(np.linspace(0, 1, 101), [1, 2, 3, 4, 6, 8, 12, 16], c, v)
right.plotly_chart(G.fig_expected_tokens(grid, measured), key="th_e")
surface_alphas = np.linspace(0.0, 0.98, 50)
surface = T.curves_frame(surface_alphas, np.arange(1, 33), c, v)
st.plotly_chart(G.fig_speedup_surface(surface, T.best_gamma_frame(surface_alphas, c, v)),
                key="th_surface")
if measured.empty:
    st.caption("No measured runs yet: bundled traces and your live runs appear as ✕ points.")
else:
    st.caption("✕: measured runs (bundled traces and this session's live runs). On the E "
               "plot, their mean accepted length against α̂; on the speedup plot, runs with "
               "a target-only baseline (their own c and v differ from the sliders').")
