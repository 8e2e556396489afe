"""Toy lab: speculative sampling over five tokens with the real verifier."""

import numpy as np
import pandas as pd
import streamlit as st

from specviz import figures as G
from specviz import toy

RULES = {"exact (correct)": "exact",
         "buggy: correction drawn from p": "correction-from-p",
         "buggy: also accept whenever q ≥ 0.5": "accept-high-q"}

st.title("Toy lab")
st.markdown(
    "Fixed distributions over five tokens: the target **p** and the draft **q**. Each step "
    "drafts γ tokens from q and runs the real verifier (`specviz.verify.verify_sampled`). "
    "With the exact rule the emitted tokens follow **p**, whatever q is; the acceptance "
    "probability of one draft is **Σ min(p, q)**. Switch to a buggy verifier: it accepts "
    "as much or more, and the output drifts away from p — fast but wrong.")

if "toy_dist" not in st.session_state:
    st.session_state.toy_dist = pd.DataFrame(
        {"token": list("ABCDE"), "p": [0.45, 0.25, 0.15, 0.10, 0.05],
         "q": [0.10, 0.55, 0.15, 0.10, 0.10]})
left, right = st.columns([2, 3])
with left:
    edited = st.data_editor(st.session_state.toy_dist, hide_index=True, disabled=["token"],
                            key="toy_editor",
                            column_config={
                                "p": st.column_config.NumberColumn("p (target)", min_value=0.0,
                                                                   step=0.01),
                                "q": st.column_config.NumberColumn("q (draft)", min_value=0.0,
                                                                   step=0.01)})
    rule_name = st.radio("Verifier", list(RULES), key="toy_rule")
    gamma = st.slider("γ", 1, 8, 3, key="toy_gamma")
    n_steps = st.select_slider("steps", [100, 300, 1000, 3000, 10000], value=1000,
                               key="toy_steps")
    seed = st.number_input("seed", 0, 10_000, 0, key="toy_seed")


@st.cache_data(show_spinner="Simulating …", max_entries=32)
def simulate(p: tuple, q: tuple, gamma: int, n_steps: int, rule: str, seed: int):
    return toy.simulate(np.array(p), np.array(q), gamma=gamma, n_steps=n_steps, rule=rule,
                        seed=seed)


try:
    p = toy.normalise(edited["p"].fillna(0).to_numpy())
    q = toy.normalise(edited["q"].fillna(0).to_numpy())
except ValueError as e:
    st.error(f"Check the table: {e}.")
    st.stop()
res = simulate(tuple(p), tuple(q), int(gamma), int(n_steps), RULES[rule_name], int(seed))
with right:
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Σ min(p, q)", f"{toy.overlap(p, q):.3f}",
              help="Probability that one draft is accepted, by the theory.")
    m2.metric("acceptance (measured)", f"{res.acceptance_rate:.3f}",
              help="Accepted / judged drafts in the simulation.")
    m3.metric("tokens per step", f"{res.tokens_per_step:.2f}")
    m4.metric("TV distance to p", f"{res.tv_distance:.4f}",
              help="½ Σ |empirical − p| over the emitted tokens; → 0 when the verifier is "
                   "exact.")
    st.plotly_chart(G.fig_toy_distribution(res.distribution_frame(),
                                           title=f"Emitted tokens after {res.n_emitted} "
                                                 f"tokens ({rule_name})"), key="toy_dist_fig")
st.plotly_chart(G.fig_toy_convergence(res.history), key="toy_conv")
st.caption("Rows are normalised to sum to 1. With the exact rule the distance shrinks like "
           "1/√n; a buggy rule levels off at a fixed gap.")
