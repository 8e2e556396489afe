"""Toy lab: speculative sampling over five tokens with the real verifier."""

import numpy as np
import pandas as pd
import streamlit as st

from specviz import figures as G
from specviz.teaching import toy

RULES = {"exact (correct)": "exact",
         "buggy: correction drawn from p": "correction-from-p",
         "buggy: also accept whenever q ≥ 0.5": "accept-high-q"}
START = pd.DataFrame({"token": list("ABCDE"), "p": [0.45, 0.25, 0.15, 0.10, 0.05],
                      "q": [0.10, 0.55, 0.15, 0.10, 0.10]})

st.title("Toy lab")
st.markdown(
    "Fixed distributions over five tokens: the target **p** and the draft **q**. Each step "
    "drafts γ tokens from q and runs the real verifier (`specviz.core.verify.verify_sampled`). "
    "With the exact rule the emitted tokens follow **p**, whatever q is; the acceptance "
    "probability of one draft is **Σ min(p, q)**. Switch to a buggy verifier: it accepts "
    "as much or more, and the output drifts away from p — fast but wrong.")

if "toy_dist" not in st.session_state:
    st.session_state.toy_dist = START.copy()


def _normalise_table() -> None:
    """Rewrite the table with each column divided by its sum (the editor starts afresh)."""
    edited = st.session_state.toy_edited
    table = edited.copy()
    for col in ("p", "q"):
        w = table[col].fillna(0).clip(lower=0)
        table[col] = (w / w.sum()).round(4) if w.sum() > 0 else w
    st.session_state.toy_dist = table
    st.session_state.pop("toy_editor", None)


left, right = st.columns([2, 3])
with left:
    edited = st.data_editor(st.session_state.toy_dist, hide_index=True, disabled=["token"],
                            key="toy_editor",
                            column_config={
                                "p": st.column_config.NumberColumn("p (target)", min_value=0.0,
                                                                   step=0.01),
                                "q": st.column_config.NumberColumn("q (draft)", min_value=0.0,
                                                                   step=0.01)})
    st.session_state.toy_edited = edited
    sums = edited[["p", "q"]].fillna(0).sum()
    st.caption(f"Column sums: p {sums['p']:.3f} · q {sums['q']:.3f} (each must be 1).")
    rule_name = st.radio("Verifier", list(RULES), key="toy_rule")
    gamma = st.slider("γ", 1, 8, 3, key="toy_gamma")
    n_steps = st.select_slider("steps", [100, 300, 1000, 3000, 10000], value=1000,
                               key="toy_steps")
    seed = st.number_input("seed", 0, 10_000, 0, key="toy_seed")


@st.cache_data(show_spinner="Simulating …", max_entries=32)
def simulate(p: tuple, q: tuple, gamma: int, n_steps: int, rule: str, seed: int):
    return toy.simulate(np.array(p), np.array(q), gamma=gamma, n_steps=n_steps, rule=rule,
                        seed=seed)


@st.cache_data(show_spinner=False, max_entries=32)
def noise_band(p: tuple, n_tokens: tuple) -> pd.DataFrame:
    return toy.tv_band(np.array(p), n_tokens)


try:
    p = toy.check_distribution("p", edited["p"].fillna(0).to_numpy())
    q = toy.check_distribution("q", edited["q"].fillna(0).to_numpy())
except ValueError as e:
    with right:
        st.error(f"Check the table: {e}. The lab uses the table exactly as typed, so each "
                 "column must sum to 1.")
        st.button("Normalise both columns (divide each by its sum)", key="toy_normalise",
                  on_click=_normalise_table)
    st.stop()
rule = RULES[rule_name]
res = simulate(tuple(p), tuple(q), int(gamma), int(n_steps), rule, int(seed))
with right:
    m1, m2 = st.columns(2)
    m1.metric("Σ min(p, q): theory", f"{toy.overlap(p, q):.3f}",
              help="Probability that one draft is accepted, by the theory.")
    m2.metric("acceptance: measured", f"{res.acceptance_rate:.3f}",
              help="Accepted / judged drafts in the simulation.")
    m3, m4 = st.columns(2)
    m3.metric("tokens per step", f"{res.tokens_per_step:.2f}")
    m4.metric("TV distance to p", f"{res.tv_distance:.4f}",
              help="½ Σ |empirical − p| over the emitted tokens; → 0 when the verifier is "
                   "exact.")
    st.plotly_chart(G.fig_toy_distribution(res.distribution_frame(),
                                           title=f"Emitted tokens after {res.n_emitted} "
                                                 f"tokens ({rule_name})"), key="toy_dist_fig")
exact = res.history if rule == "exact" else \
    simulate(tuple(p), tuple(q), int(gamma), int(n_steps), "exact", int(seed)).history
band = noise_band(tuple(p), tuple(res.history[toy.N_TOKENS].tolist()))
st.plotly_chart(G.fig_toy_convergence(res.history, band, None if rule == "exact" else exact,
                                      rule_name), key="toy_conv")
st.caption("The shaded band is where tokens drawn exactly from p land by chance (5–95 %); it "
           "shrinks like 1/√n. The exact rule's curve is one such draw: it stays in or near "
           "the band. A buggy rule levels off at a fixed gap above it.")
